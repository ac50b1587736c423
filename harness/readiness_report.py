"""Write a readiness (harness/readiness.py) as `readiness-A-to-B.md` and `.html` (self-contained, the
grid's look), and say it on the terminal: one line per fixture kind."""

from __future__ import annotations

import os

import jinja2
from markupsafe import Markup

from .readiness import SAVE_CODE, STATUSES, VERDICTS, Cell, Fixture, Readiness
from .report import TEMPLATES, _asset
from .tfjs import TFJS_FORMATS

# status -> the grid's colour class
COLOURS = {"ready": "pass", "ready-with-remedy": "pass-with-remedy", "loses-state": "degraded",
           "serving-only": "degraded", "legacy-only": "load-error", "breaks": "load-error",
           "wrong-output": "wrong-output", "cannot-save": "save-error", "not-applicable": "not-applicable",
           "unknown": "env-error", "missing": "env-error"}


def write(r: Readiness, out_dir: str, rerun: str | None = None, stem: str = "readiness") -> tuple[str, str]:
    """Write both files (`<stem>-A-to-B.md` and `.html`); returns (markdown path, html path)."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, "%s-%s-to-%s" % (stem, r.a, r.b))
    view = _view(r, rerun)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    html = env.get_template("readiness.html.j2").render(css=Markup(_asset("report.css")), **view)
    for path, text in ((base + ".md", markdown(r, rerun)), (base + ".html", html)):
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(path + ".tmp", path)
    return base + ".md", base + ".html"


def lines(r: Readiness) -> list[str]:
    """One line per fixture kind, for the terminal."""
    out = []
    for f in r.fixtures:
        line = "%s: %s" % (f.name, "does not load in A" if r.labels and f.verdict == "cannot-save"
                           else VERDICTS[f.verdict][0])
        if f.move_with:
            line += "; move with %s%s" % (f.move_with.format, " (%s)" % f.move_with.remedy if f.move_with.remedy
                                          else "")
        elif f.via:
            line += "; via %s: %s there, then %s" % (f.via["env"], f.via["first"].format, f.via["then"].format)
        elif f.serve_with:
            line += "; serve with %s" % f.serve_with.format
        kept = [t for t in r.migrations.get(f.name) or [] if t.get("kept")]
        if kept:
            line += "; migrated (%s route): %s" % (kept[0]["route"], kept[0]["kept"])
        if f.avoid:
            line += "; WRONG OUTPUT in %s" % ", ".join(avoided(f, r))
        out.append(line)
    return out


def avoided(f: Fixture, r: Readiness) -> list[str]:
    """The fixture kind's formats that load wrong, each naming the re-save cell where that, not the
    A->B cell, is what loads wrong: "keras (re-saved in B: custom_layer~A)"."""
    out = []
    for fmt in f.avoid:
        c = next((x for x in r.cells if (x.fixture, x.format) == (f.name, fmt)), None)
        out.append("%s (re-saved in %s: %s)" % (fmt, r.b, c.resave.fixture) if c and c.resave and c.decided_by_resave
                   else fmt)
    return out


def wrong_line(r: Readiness) -> str | None:
    """One line naming what loads wrong moving from A to B (None when nothing does): the exit code's why."""
    kinds = "; ".join("%s in %s" % (f.name, ", ".join(avoided(f, r))) for f in r.fixtures if f.avoid)
    if not kinds:
        return None
    return "WRONG OUTPUT moving %s -> %s: %s: existing files load silently wrong" % (r.a, r.b, kinds)


def markdown(r: Readiness, rerun: str | None = None) -> str:
    kind = "artifacts" if r.labels else "fixture kinds"
    md = ["# Upgrade readiness: %s -> %s%s" % (r.a, r.b, " (your models)" if r.labels else ""), "",
          "Run `%s`. %d of %d %s can move (exit code %d)." % (r.run_id, r.can_move, len(r.fixtures), kind,
                                                             r.exit_code), ""]
    if r.labels:
        md += ["Artifacts:", ""] + ["- `%s`: `%s`" % kv for kv in r.labels.items()] + [""]
    if r.skipped:
        md += ["Skipped:", ""] + ["- `%s`: %s" % kv for kv in r.skipped] + [""]
    if r.missing:
        md += ["**%d cell(s) are missing** from the run; the verdicts below do not count them. Run them with:"
               % len(r.missing), "", "```sh", rerun or "", "```", ""]
    md += ["## Summary", "", "| %s | verdict | move with | serve with | do not move with |" % kind[:-1],
           "| --- | --- | --- | --- | --- |"]
    for f in r.fixtures:
        md.append("| %s | %s | %s | %s | %s |" % (
            f.name, VERDICTS[f.verdict][0], _md_cell(f.move_with) if f.move_with else (
                "via `%s`: `%s` there, then `%s`" % (f.via["env"], f.via["first"].format, f.via["then"].format)
                if f.via else "-"),
            _md_cell(f.serve_with) if f.serve_with else "-", ", ".join(_md_avoid(x) for x in avoided(f, r)) or "-"))
    for f in r.fixtures:
        md += ["", "## %s" % f.name, "", "**%s**: %s." % VERDICTS[f.verdict], ""]
        for note in r.notes.get(f.name) or []:
            md += ["- %s" % note]
        if r.notes.get(f.name):
            md.append("")
        if f.move_with:
            md += _md_move(f.move_with, r)
        md += _md_migrations(r.migrations.get(f.name) or [], r)
        if f.via:
            md += ["Through `%s`: load the `%s` artifact there and re-save it, then load it in %s:" % (
                f.via["env"], f.via["first"].format, r.b), "", "```python", "# in %s" % f.via["env"],
                f.via["first"].load_code(), SAVE_CODE[f.via["then"].format], "# in %s" % r.b,
                f.via["then"].load_code(), "```", ""]
        trip = not r.labels  # a scanned artifact has no round trip: B never made it
        md += ["| format | %s -> %s | what breaks | the load that works | what it costs |%s" % (
            r.a, r.b, " %s -> %s | %s's file re-saved in %s |" % (r.b, r.b, r.a, r.b) if trip else ""),
            "| --- | --- | --- | --- | --- |" + (" --- | --- |" if trip else "")]
        for c in r.cells:
            if c.fixture != f.name:
                continue
            md.append("| `%s` | %s | %s | %s | %s |" % (
                c.format, _label(c, r) + (" (lost: %s)" % ", ".join(c.lost) if c.lost else ""),
                _md_text(_breaks(c, r), c.references), "`%s`" % _one_line(c.load_code()) if c.loads else "-",
                (c.cost or "nothing") if c.remedy else "-") + (
                " %s | %s |" % (_trip(c), _md_text(resave_text(c.resave, r), [])) if trip else ""))
    md += ["", "## How to read this", ""]
    md += ["- **%s**: %s" % (label, meaning) for label, meaning in STATUSES.values()]
    md += ["- The legacy `tf_keras` and the inference-only loaders (`TFSMLayer`, `tf.saved_model.load`) are never "
           "counted as ready, in the %s -> %s cell or in a round trip." % (r.a, r.b)]
    if not r.labels:
        md += ["- `%s -> %s` is the round trip: a model saved in %s in that format loads there, in %s's own Keras. "
               "`%s's file re-saved in %s` is the path the upgrade takes (the run's re-save variant "
               "`<fixture>~%s`): %s's file loaded in %s, saved again there, loaded there; where the run has it, "
               "a format moves only if it does too, and loads wrong if it does." % (
                   r.b, r.b, r.b, r.b, r.a, r.b, r.a, r.a, r.b)]
    return "\n".join(md + [""])


def resave_text(c: Cell | None, r: Readiness) -> str | None:
    """The re-save cell in words: which cell, its status, and how B loaded A's file to save it again."""
    if c is None:
        return None
    how = (c.resaved or {}).get("loaded_with")
    return "`%s` %s -> %s: %s%s" % (c.fixture, r.b, r.b, resave_label(c, r), (
        " (%s loaded %s's file with %s to save it again)" % (r.b, r.a, how) if how else ""))


def _breaks(c: Cell, r: Readiness, tick: str = "`") -> str | None:
    """What breaks: the A->B cell's error, or the re-save cell's where that is what decided it."""
    if not c.decided_by_resave or c.resave is None:
        return c.error
    return "re-saved in %s (%s%s%s %s -> %s): %s%s" % (r.b, tick, c.resave.fixture, tick, r.b, r.b,
                                                       resave_label(c.resave, r),
                                                       ": %s" % c.resave.error if c.resave.error else "")


def resave_label(c: Cell, r: Readiness) -> str:
    """A re-save cell's status in words; its producer is B, so "cannot save" is B's."""
    return "%s could not save it again" % r.b if c.status == "cannot-save" else STATUSES[c.status][0]


def _trip(c: Cell) -> str:
    """B's own round trip, classed: "loads only through tf_keras" is no round trip in B's own Keras."""
    return STATUSES[c.round_trip_status][0] if c.round_trip_status else "not run"


def _chip(status: str | None) -> dict:
    """A status as the HTML shows it: its colour class, label and meaning."""
    if status is None:
        return {"colour": None, "label": "not run", "meaning": "no record for this cell in the run"}
    return {"colour": COLOURS[status], "label": STATUSES[status][0], "meaning": STATUSES[status][1]}


def _md_avoid(text: str) -> str:
    fmt, _, why = text.partition(" ")
    return "`%s`%s" % (fmt, " " + why if why else "")


def _md_move(c: Cell, r: Readiness) -> list[str]:
    if r.labels:
        return ["Load it in %s:" % r.b, "", "```python", c.load_code(), "```", ""] + (
            ["What it costs: %s." % c.cost, ""] if c.cost else [])
    if c.format in TFJS_FORMATS:  # made by the converter env, loaded in JavaScript
        how, fence = "convert %s's file with the tensorflowjs converter, load it in %s" % (r.a, r.b), ""
        at_a = "# in the converter env (pip install tensorflowjs), on %s's file" % r.a
        at_b = "// in %s (JavaScript)" % r.b
    else:
        how, fence = "save in %s, load in %s" % (r.a, r.b), "python"
        at_a, at_b = "# in %s" % r.a, "# in %s" % r.b
    return ["Move with `%s` (keeps: %s): %s:" % (c.format, ", ".join(c.keeps), how), "", "```" + fence, at_a,
            SAVE_CODE[c.format], at_b, c.load_code(), "```", ""] + (
        ["What it costs: %s." % c.cost, ""] if c.cost else [])


def _md_migrations(tried: list, r: Readiness) -> list[str]:
    if not tried:
        return []
    out = ["Verified migration (executed, then checked in %s against %s's outputs):" % (r.b, r.a), ""]
    for t in tried:
        out.append("- route `%s`: %s%s" % (t["route"], t["outcome"] or "not made", " with %s" % t["remedy"]
                                            if t.get("remedy") else ""))
        out += ["  - %s" % step for step in t["steps"]]
        if t.get("message") and t["outcome"] not in ("pass",):
            out.append("  - %s%s" % ("without the remedy: " if t["outcome"] == "pass-with-remedy" else "",
                                     t["message"].splitlines()[0][:300]))
        out += ["  - %s" % n for n in t["notes"]]
        if t.get("kept"):
            out.append("  - **kept**: `%s` (with `proof.json` beside it)" % t["kept"])
    if not any(t.get("kept") for t in tried):
        out.append("- no route gave a copy that loads in %s and predicts the same: nothing is offered" % r.b)
    return out + [""]


def _label(c: Cell, r: Readiness) -> str:
    return "does not load in A" if r.labels and c.status == "cannot-save" else STATUSES[c.status][0]


def _one_line(code: str) -> str:
    return "; ".join(line.split("  #")[0] for line in code.splitlines())


def _md_cell(c: Cell) -> str:
    return "`%s`%s" % (c.format, " with `%s`" % c.remedy if c.remedy else "")


def _md_text(text: str | None, refs: list) -> str:
    if not text:
        return "-"
    text = text.replace("|", "\\|").replace("\n", " ")
    return text + (" (%s)" % ", ".join(refs) if refs else "")


def _view(r: Readiness, rerun: str | None) -> dict:
    fixtures = []
    for f in r.fixtures:
        rows = [{"c": c, "label": _label(c, r), "meaning": STATUSES[c.status][1],
                 "colour": COLOURS[c.status], "code": c.load_code() if c.loads else None,
                 "breaks": _breaks(c, r, tick=""), "trip": _chip(c.round_trip_status),
                 "resave": dict(_chip(c.resave.status), label=resave_label(c.resave, r), fixture=c.resave.fixture,
                                how=(c.resave.resaved or {}).get("loaded_with")) if c.resave else None}
                for c in r.cells if c.fixture == f.name]
        fixtures.append({"f": f, "verdict": "%s: %s." % VERDICTS[f.verdict], "label": VERDICTS[f.verdict][0],
                         "rows": rows, "avoid": avoided(f, r),
                         "save": SAVE_CODE.get(f.move_with.format) if f.move_with else None,
                         "via_save": SAVE_CODE.get(f.via["then"].format) if f.via else None})
    return {"r": r, "fixtures": fixtures, "ready": r.can_move, "rerun": rerun, "kind": "artifacts" if r.labels
            else "fixture kinds",
            "legend": [(COLOURS[s], label, meaning) for s, (label, meaning) in STATUSES.items()]}
