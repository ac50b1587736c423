"""Changes since a baseline run, cell by cell (producer, consumer, fixture, format).

`classify` puts every transition of a cell in exactly one class, with a short `what`:
- regression: a verdict that got worse (a worse outcome; at the same outcome, a property newly
  lost or a more invasive remedy), or a wrong-output that was not wrong-output in the baseline
  (a non-verdict or a new cell before it included);
- coverage (coverage lost): a verdict that became a non-verdict (env-error, harness-error,
  not-applicable, save-error) or left the grid;
- improvement: a verdict that got better, or a verdict where there was none (coverage gained, a
  new cell);
- unchanged: the same verdict, or one non-verdict (or no cell) for another.
A per-artifact record (a save-error, consumer null) stands for every cell of its artifact, so
cells are compared, never raw records. A change is `expected` when the current record's
expectation is met: an expected change never fails the gate (`failing`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from . import outcomes, results
from .errors import TfcompatError

CLASSES = ("regression", "coverage", "improvement", "unchanged")
TITLES = {"regression": "Regressions", "coverage": "Coverage lost", "improvement": "Improvements",
          "unchanged": "Other changes (no verdict either side)"}
GATED = ("regression", "coverage")  # the classes `--fail-on` can fail a run on
SHOWN = 50  # lines per class on the page and in changes.md


def cell_id(rec: dict) -> tuple:
    return (rec.get("producer"), rec.get("consumer"), rec.get("fixture"), rec.get("format"))


@dataclass
class Change:
    """One cell's transition: its class, what the two sides were, and why it is in that class."""

    kind: str  # regression | coverage | improvement | unchanged
    cell: tuple
    before: str | None
    after: str | None
    what: str = ""
    expected: bool = False  # a met expectation covers the cell now

    def line(self) -> str:
        p, c, fx, fmt = self.cell
        return "%s -> %s %s/%s: %s -> %s%s%s" % (p, c or "*", fx, fmt, self.before or "(none)",
                                                 self.after or "(none)", "; " + self.what if self.what else "",
                                                 " (expected)" if self.expected else "")


@dataclass
class Diff:
    """The cells that changed (an unchanged cell only where its outcome text did), and how many
    cells each class holds."""

    baseline: str
    changes: list[Change] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))

    def of(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def failing(self, kinds) -> list[Change]:
        """The changes of these classes that no met expectation covers: what fails the gate."""
        return [c for c in self.changes if c.kind in kinds and not c.expected]

    def summary(self) -> dict:
        return {"baseline": self.baseline, **self.counts,
                "expected": {k: sum(1 for c in self.of(k) if c.expected) for k in GATED}}


def load_baseline(ref: str, state_dir: str) -> tuple[str, list[dict]]:
    """A run id under the state dir, a run or reports dir, or a results.jsonl file."""
    candidates = [ref, os.path.join(ref, "results.jsonl"), os.path.join(state_dir, "runs", ref, "results.jsonl")]
    for path in candidates:
        if os.path.isfile(path):
            return path, list(results.read(path))
    raise TfcompatError("--baseline: %s is neither a results.jsonl, a dir holding one, nor a run id under %s"
                        % (ref, os.path.join(state_dir, "runs")))


def cells(records: list[dict]) -> dict[tuple, dict]:
    """Cell -> record; a per-artifact record (consumer null) stands for the cells of every env of
    its run (the producers and consumers its records name) that no own record holds."""
    envs = {r.get("producer") for r in records} | {r.get("consumer") for r in records if r.get("consumer")}
    out = {cell_id(r): r for r in records if r.get("consumer")}
    for r in records:
        if not r.get("consumer"):
            for c in sorted(e for e in envs if e):
                out.setdefault((r.get("producer"), c, r.get("fixture"), r.get("format")), r)
    return out


def _outcome(rec: dict | None) -> str | None:
    return str(rec.get("outcome")) if rec is not None else None


def classify(before: dict | None, after: dict | None) -> tuple[str, str]:
    """(class, what) of one cell's transition from the baseline's record to the current one (None:
    no such cell on that side)."""
    a, b = _outcome(before), _outcome(after)
    if b == "wrong-output" and a != "wrong-output":
        return "regression", "new wrong-output" + (" (new cell)" if a is None else "")
    if a is not None and outcomes.is_verdict(a):
        if b is None:
            return "coverage", "missing"
        if not outcomes.is_verdict(b):
            return "coverage", "verdict -> %s" % b
        return _graded(before or {}, after or {})
    if b is not None and outcomes.is_verdict(b):
        return "improvement", "new cell" if a is None else "verdict gained"
    if a == b:
        return "unchanged", ""
    return "unchanged", "new cell" if a is None else "no longer in the grid" if b is None else "no verdict either side"


def _graded(before: dict, after: dict) -> tuple[str, str]:
    """Verdict -> verdict: a worse outcome is a regression and a better one an improvement; at the
    same outcome, where it is graded, any property newly lost or a more invasive remedy is a
    regression, else any fewer lost or a less invasive remedy an improvement."""
    a, b = str(before["outcome"]), str(after["outcome"])
    if a != b:
        return ("regression", "worse outcome") if outcomes.severity(b) > outcomes.severity(a) \
            else ("improvement", "better outcome")
    if a not in outcomes.GRADED:
        return "unchanged", ""
    was, now = set(before.get("lost") or []), set(after.get("lost") or [])
    r1, r2 = before.get("remedy"), after.get("remedy")
    i1, i2 = outcomes.invasiveness(r1), outcomes.invasiveness(r2)
    remedy = "%s -> %s" % (r1 or "none", r2 or "none")
    worse = (["more lost: " + ", ".join(sorted(now - was))] if now - was else []) + \
        (["bigger remedy: " + remedy] if i2 > i1 else [])
    if worse:
        return "regression", "; ".join(worse)
    better = (["fewer lost: " + ", ".join(sorted(was - now))] if was - now else []) + \
        (["smaller remedy: " + remedy] if i2 < i1 else [])
    return ("improvement", "; ".join(better)) if better else ("unchanged", "")


def diff(baseline: list[dict], current: list[dict], name: str, scope: dict | None = None) -> Diff:
    """Every cell of either side classified; the changes listed regressions first, then coverage
    lost, improvements and other changes, each by cell. `scope`: the current run's selection
    ({envs, fixtures, formats}); a baseline cell outside it (an env taken out of the matrix, a
    smaller profile, `--only`) was not asked for, so its absence is no coverage lost."""
    old, new = cells(baseline), cells(current)
    out = Diff(name)
    for key in sorted(set(old) | set(new), key=lambda k: tuple(str(x) for x in k)):
        before, after = old.get(key), new.get(key)
        if after is None and scope is not None and not _within(key, scope):
            kind, what = "unchanged", "outside this run's selection"
        else:
            kind, what = classify(before, after)
        out.counts[kind] += 1
        if kind == "unchanged" and not what:
            continue
        expectation = (after or {}).get("expectation") or {}
        out.changes.append(Change(kind, key, _outcome(before), _outcome(after), what, bool(expectation.get("met"))))
    out.changes.sort(key=lambda c: CLASSES.index(c.kind))
    return out


def _within(cell: tuple, scope: dict) -> bool:
    p, c, fx, fmt = cell
    envs = set(scope.get("envs") or ())
    return p in envs and (c is None or c in envs) and fx in set(scope.get("fixtures") or ()) and \
        fmt in set(scope.get("formats") or ())


def counts_line(s: dict) -> str:
    """The summary's counts in one line (the CLI, changes.md and the page say the same)."""
    return "%d regression(s) (%d expected), %d coverage lost (%d expected), %d improvement(s), %d unchanged" % (
        s["regression"], s["expected"]["regression"], s["coverage"], s["expected"]["coverage"], s["improvement"],
        s["unchanged"])


def sections(d: Diff, shown: int = SHOWN) -> list[tuple[str, str, list[str], int]]:
    """(class, title, the first `shown` lines, how many more) for each class with a listed change."""
    return [(kind, title, [c.line() for c in d.of(kind)[:shown]], max(0, len(d.of(kind)) - shown))
            for kind, title in TITLES.items() if d.of(kind)]


def markdown(d: Diff, shown: int = SHOWN) -> str:
    """The changes as Markdown (a CI job summary)."""
    lines = ["## Changes since %s" % d.baseline, "", counts_line(d.summary()), ""]
    for _, title, items, more in sections(d, shown):
        lines += ["### %s (%d)" % (title, len(items) + more), ""]
        lines += ["- `%s`" % line for line in items]
        if more:
            lines.append("- ... and %d more (reports/changes.json)" % more)
        lines.append("")
    return "\n".join(lines)


def write(d: Diff, reports_dir: str) -> None:
    """reports/changes.md and reports/changes.json."""
    with open(os.path.join(reports_dir, "changes.md"), "w") as fh:
        fh.write(markdown(d))
    with open(os.path.join(reports_dir, "changes.json"), "w") as fh:
        json.dump({"summary": d.summary(), "changes": [asdict(c) for c in d.changes]}, fh, indent=1)
