"""Changes since a baseline run: regressions first, then fixes, then other changes and new cells.

A cell is (producer, consumer, fixture, format). A regression is a verdict that got worse for the
same cell, or a new cell (a new release, say) whose expectation is not met; it is `expected` when
an expectation in the matrix covers the cell and is met. A fix is a verdict that got better.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from . import results
from .errors import TfcompatError


def cell_id(rec: dict) -> tuple:
    return (rec.get("producer"), rec.get("consumer"), rec.get("fixture"), rec.get("format"))


@dataclass
class Change:
    """One cell that differs from the baseline."""

    kind: str  # regression | fix | changed | new | gone
    cell: tuple
    before: str | None
    after: str | None
    expected: bool = False  # a met expectation covers the cell now
    detail: str = ""

    def line(self) -> str:
        p, c, fx, fmt = self.cell
        where = "%s -> %s %s/%s" % (p, c or "*", fx, fmt)
        return "%s: %s -> %s%s%s" % (where, self.before or "(none)", self.after or "(none)",
                                    " (expected)" if self.expected else "", "; " + self.detail if self.detail else "")


@dataclass
class Diff:
    """The changes, and what the baseline was."""

    baseline: str
    changes: list[Change] = field(default_factory=list)

    def of(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def summary(self) -> dict:
        return {"baseline": self.baseline, **{k: len(self.of(k)) for k in ("regression", "fix", "changed", "new",
                                                                              "gone")},
                "unexpected_regressions": sum(1 for c in self.of("regression") if not c.expected)}


def load_baseline(ref: str, state_dir: str) -> tuple[str, list[dict]]:
    """A run id under the state dir, a run or reports dir, or a results.jsonl file."""
    candidates = [ref, os.path.join(ref, "results.jsonl"), os.path.join(state_dir, "runs", ref, "results.jsonl")]
    for path in candidates:
        if os.path.isfile(path):
            return path, list(results.read(path))
    raise TfcompatError("--baseline: %s is neither a results.jsonl, a dir holding one, nor a run id under %s"
                        % (ref, os.path.join(state_dir, "runs")))


def diff(baseline: list[dict], current: list[dict], name: str) -> Diff:
    """Cell by cell: verdict severity decides regression or fix; remedy or lost decide `changed`."""
    before = {cell_id(r): r for r in baseline}
    out = Diff(name)
    for rec in current:
        key = cell_id(rec)
        old = before.pop(key, None)
        expected = bool(rec.get("expectation") and rec["expectation"].get("met"))
        if old is None:
            unmet = bool(rec.get("expectation")) and not expected
            out.changes.append(Change("regression" if unmet else "new", key, None, rec["outcome"], expected,
                                      "expectation not met" if unmet else ""))
            continue
        a, b = str(old.get("outcome")), str(rec.get("outcome"))
        if results.is_verdict(a) and results.is_verdict(b) and results.severity(a) != results.severity(b):
            kind = "regression" if results.severity(b) > results.severity(a) else "fix"
            out.changes.append(Change(kind, key, a, b, expected))
        elif a != b:
            out.changes.append(Change("changed", key, a, b, expected))
        elif (old.get("remedy"), sorted(old.get("lost") or [])) != (rec.get("remedy"), sorted(rec.get("lost") or [])):
            out.changes.append(Change("changed", key, a, b, expected, "remedy %s -> %s, lost %s -> %s" % (
                old.get("remedy"), rec.get("remedy"), old.get("lost") or [], rec.get("lost") or [])))
    for key, old in before.items():
        out.changes.append(Change("gone", key, old.get("outcome"), None))
    return out


TITLES = {"regression": "Regressions", "fix": "Fixes", "changed": "Other changes", "new": "New cells",
          "gone": "Cells no longer in the grid"}


def markdown(d: Diff, shown: int = 50) -> str:
    """The changes as Markdown (a CI job summary)."""
    s = d.summary()
    lines = ["## Changes since %s" % d.baseline, "",
             "%d regression(s) (%d not expected), %d fix(es), %d other change(s), %d new cell(s), %d gone" % (
                 s["regression"], s["unexpected_regressions"], s["fix"], s["changed"], s["new"], s["gone"]), ""]
    for kind, title in TITLES.items():
        items = d.of(kind)
        if not items:
            continue
        lines += ["### %s (%d)" % (title, len(items)), ""]
        lines += ["- `%s`" % c.line() for c in items[:shown]]
        if len(items) > shown:
            lines.append("- ... and %d more (reports/changes.json)" % (len(items) - shown))
        lines.append("")
    return "\n".join(lines)


def write(d: Diff, reports_dir: str) -> None:
    with open(os.path.join(reports_dir, "changes.md"), "w") as fh:
        fh.write(markdown(d))
    with open(os.path.join(reports_dir, "changes.json"), "w") as fh:
        json.dump({"summary": d.summary(), "changes": [c.__dict__ for c in d.changes]}, fh, indent=1, default=list)
