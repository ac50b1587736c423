"""The baseline diff and JUnit XML (pure: records in, changes and XML out), and the CLI's exit code."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from harness.diff import CLASSES, classify, diff, markdown
from harness.junit import junit_xml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rec(p, c, fx, fmt, outcome, remedy=None, lost=(), expectation=None):
    return {"producer": p, "consumer": c, "fixture": fx, "format": fmt, "outcome": outcome, "remedy": remedy,
            "lost": list(lost), "expectation": expectation, "message": "m", "duration_s": 1.0}


BEFORE = [rec("a", "b", "control", "h5", "pass"),
          rec("a", "b", "control", "keras", "load-error"),
          rec("a", "b", "custom_layer", "h5", "pass-with-remedy", "custom_objects"),
          rec("a", "b", "custom_layer", "keras", "pass"),
          rec("a", "old", "control", "h5", "pass")]
AFTER = [rec("a", "b", "control", "h5", "wrong-output"),  # regression
         rec("a", "b", "control", "keras", "pass"),  # improvement
         rec("a", "b", "custom_layer", "h5", "pass-with-remedy", "compile_false"),  # bigger remedy: regression
         rec("a", "b", "custom_layer", "keras", "degraded", lost=["optimizer_state"],
             expectation={"outcome": "degraded", "met": True, "reason": "known"}),  # expected regression
         rec("a", "new", "control", "h5", "load-error",
             expectation={"outcome": "pass", "met": False, "reason": "should load"}),  # new cell
         rec("a", "new", "control", "keras", "pass")]  # new cell


def r(outcome, remedy=None, lost=(), expectation=None):
    return rec("a", "b", "control", "h5", outcome, remedy, lost, expectation)


CO, CO_NC = "custom_objects", "custom_objects+compile_false"
OPT, OPT_CC = ["optimizer_state"], ["optimizer_state", "custom_classes"]

TRANSITIONS = [
    # regression: a worse outcome, more lost, a bigger remedy, any new wrong-output
    (r("pass"), r("degraded", lost=OPT), "regression", "worse outcome"),
    (r("pass"), r("pass-with-remedy", CO), "regression", "worse outcome"),
    (r("degraded", lost=OPT), r("degraded", lost=OPT_CC), "regression", "more lost: custom_classes"),
    (r("degraded", lost=OPT), r("degraded", lost=["custom_classes"]), "regression", "more lost: custom_classes"),
    (r("pass-with-remedy", CO), r("pass-with-remedy", CO_NC), "regression",
     "bigger remedy: custom_objects -> custom_objects+compile_false"),
    (r("degraded", CO, OPT), r("degraded", "compile_false", OPT), "regression",
     "bigger remedy: custom_objects -> compile_false"),
    (r("degraded", None, OPT), r("degraded", CO, OPT_CC), "regression",
     "more lost: custom_classes; bigger remedy: none -> custom_objects"),
    (r("pass"), r("wrong-output"), "regression", "new wrong-output"),
    (r("env-error"), r("wrong-output"), "regression", "new wrong-output"),
    (r("harness-error"), r("wrong-output"), "regression", "new wrong-output"),
    (r("save-error"), r("wrong-output"), "regression", "new wrong-output"),
    (None, r("wrong-output"), "regression", "new wrong-output (new cell)"),
    # coverage lost: a verdict that became a non-verdict or left the grid
    (r("pass"), r("env-error"), "coverage", "verdict -> env-error"),
    (r("load-error"), r("not-applicable"), "coverage", "verdict -> not-applicable"),
    (r("pass"), r("harness-error"), "coverage", "verdict -> harness-error"),
    (r("wrong-output"), r("save-error"), "coverage", "verdict -> save-error"),
    (r("pass"), None, "coverage", "missing"),
    # improvement: a better verdict, or a verdict where there was none
    (r("load-error"), r("pass"), "improvement", "better outcome"),
    (r("wrong-output"), r("load-error"), "improvement", "better outcome"),
    # a better outcome is one, whatever its rung and losses (a load-error's say nothing)
    (r("load-error"), r("degraded", CO, OPT), "improvement", "better outcome"),
    (r("degraded", None, ["custom_classes"]), r("pass-with-remedy", CO), "improvement", "better outcome"),
    (r("degraded", lost=OPT_CC), r("degraded", lost=OPT), "improvement", "fewer lost: custom_classes"),
    (r("pass-with-remedy", CO_NC), r("pass-with-remedy", CO), "improvement",
     "smaller remedy: custom_objects+compile_false -> custom_objects"),
    (r("env-error"), r("pass"), "improvement", "verdict gained"),
    (r("not-applicable"), r("load-error"), "improvement", "verdict gained"),
    (None, r("pass"), "improvement", "new cell"),
    # unchanged: the same verdict (rungs and losses only grade pass, pass-with-remedy, degraded)
    (r("pass"), r("pass"), "unchanged", ""),
    (r("degraded", CO, OPT), r("degraded", CO, list(reversed(OPT))), "unchanged", ""),
    (r("wrong-output", None), r("wrong-output", CO), "unchanged", ""),
    (r("load-error", None), r("load-error", CO_NC), "unchanged", ""),
    (r("env-error"), r("not-applicable"), "unchanged", "no verdict either side"),
    (r("env-error"), r("env-error"), "unchanged", ""),
    (None, r("save-error"), "unchanged", "new cell"),
    (r("not-applicable"), None, "unchanged", "no longer in the grid"),
]


@pytest.mark.parametrize("before,after,kind,what", TRANSITIONS,
                         ids=["%s->%s" % (b and b["outcome"], a and a["outcome"]) for b, a, _, _ in TRANSITIONS])
def test_every_transition_has_one_class_and_says_why(before, after, kind, what):
    assert classify(before, after) == (kind, what)


def test_the_diff_lists_regressions_then_coverage_lost_then_improvements():
    d = diff(BEFORE, AFTER + [rec("a", "new", "control", "savedmodel", "env-error")], "base")
    kinds = {c.cell: (c.kind, c.what) for c in d.changes}
    assert kinds == {
        ("a", "b", "control", "h5"): ("regression", "new wrong-output"),
        ("a", "b", "custom_layer", "h5"): ("regression", "bigger remedy: custom_objects -> compile_false"),
        ("a", "b", "custom_layer", "keras"): ("regression", "worse outcome"),
        ("a", "old", "control", "h5"): ("coverage", "missing"),
        ("a", "b", "control", "keras"): ("improvement", "better outcome"),
        ("a", "new", "control", "h5"): ("improvement", "new cell"),
        ("a", "new", "control", "keras"): ("improvement", "new cell"),
        ("a", "new", "control", "savedmodel"): ("unchanged", "new cell")}
    assert [c.kind for c in d.changes] == sorted((c.kind for c in d.changes), key=CLASSES.index)
    expected = [c.cell for c in d.changes if c.expected]
    assert expected == [("a", "b", "custom_layer", "keras")]  # the met expectation
    assert [c.cell for c in d.failing(("regression",))] == [("a", "b", "control", "h5"),
                                                            ("a", "b", "custom_layer", "h5")]
    s = d.summary()
    assert (s["regression"], s["coverage"], s["improvement"], s["unchanged"]) == (3, 1, 3, 1)
    assert s["expected"] == {"regression": 1, "coverage": 0}
    text = markdown(d)
    assert text.index("### Regressions") < text.index("### Coverage lost") < text.index("### Improvements") \
        < text.index("### Other changes")
    assert "a -> b control/h5: pass -> wrong-output; new wrong-output" in text
    assert "a -> b custom_layer/keras: pass -> degraded; worse outcome (expected)" in text


def test_a_save_error_stands_for_every_cell_of_its_artifact_both_ways():
    passes = [rec(p, c, "control", "h5", "pass") for p in "ab" for c in "ab"]
    saved_not = [rec("a", None, "control", "h5", "save-error")] + passes[2:]
    lost = diff(passes, saved_not, "base")
    assert [(c.cell, c.kind, c.before, c.after, c.what) for c in lost.changes] == [
        (("a", c, "control", "h5"), "coverage", "pass", "save-error", "verdict -> save-error") for c in "ab"]
    assert lost.summary()["unchanged"] == 2
    gained = diff(saved_not, passes, "base")
    assert [(c.cell, c.kind, c.what) for c in gained.changes] == [
        (("a", c, "control", "h5"), "improvement", "verdict gained") for c in "ab"]
    # the same save-error both nights: every cell unchanged, none listed; a new consumer's cell is new
    again = saved_not + [rec(p, "c", "control", "h5", "pass") for p in "bc"] + [rec("c", c, "control", "h5", "pass")
                                                                               for c in "ab"]
    d = diff(saved_not, again, "base")
    assert {c.cell: (c.kind, c.what) for c in d.changes if c.cell[0] == "a"} == {
        ("a", "c", "control", "h5"): ("unchanged", "new cell")}
    # an expectation met by the save-error covers each of its cells
    met = dict(saved_not[0], expectation={"outcome": "save-error", "met": True, "reason": "known"})
    assert diff(passes, [met] + passes[2:], "base").failing(("coverage",)) == []


def test_cells_outside_the_runs_selection_are_not_coverage_lost():
    """An env taken out of the matrix (or a smaller profile, `--only`) was not asked for: its cells'
    absence is listed, not failed. A cell inside the selection that is missing is coverage lost."""
    before = [rec(p, c, "control", "h5", "pass") for p in ("a", "b", "old") for c in ("a", "b", "old")]
    after = [rec(p, c, "control", "h5", "pass") for p in "ab" for c in "ab" if (p, c) != ("b", "a")]
    d = diff(before, after, "base", scope={"envs": ["a", "b"], "fixtures": ["control"], "formats": ["h5"]})
    assert [c.cell for c in d.failing(("coverage",))] == [("b", "a", "control", "h5")]
    assert {c.what for c in d.changes if c.cell[0] == "old" or c.cell[1] == "old"} == {
        "outside this run's selection"}
    assert diff(before, after, "base").summary()["coverage"] == 6  # without a scope every absence counts


def test_junit_has_one_testcase_per_cell_and_fails_only_unexpected_non_passes():
    recs = AFTER + [rec("a", None, "control", "savedmodel", "save-error"),
                    rec("a", "b", "control", "checkpoint", "harness-error")]
    root = ET.fromstring(junit_xml(recs, "r1"))
    cases = root.findall(".//testcase")
    assert len(cases) == len(recs) and root.get("tests") == str(len(recs))
    failed = {(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None}
    assert failed == {("control.h5", "a -> b"), ("control.h5", "a -> new")}  # not the expected degraded one
    assert root.get("failures") == "2" and root.get("errors") == "1" and root.get("skipped") == "1"


def test_report_baseline_exit_code_follows_fail_on(tmp_path):
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("version: 1\ndefaults: {python: \"3.11\"}\nenvironments:\n"
                      "  - {id: a, tensorflow: \"2.15.1\", keras: bundled}\n"
                      "  - {id: b, tensorflow: \"2.15.1\", keras: bundled}\n"
                      "fixtures: [control, custom_layer]\nformats: [h5, keras]\n")
    run_dir = tmp_path / "state" / "runs" / "20260101-000000"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": "20260101-000000", "envs": []}))
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in AFTER[:4]))
    base = tmp_path / "base.jsonl"
    base.write_text("".join(json.dumps(r) + "\n" for r in BEFORE))

    def report(*args):
        return subprocess.run([sys.executable, "-m", "harness", "--matrix", str(matrix), "--state-dir",
                               str(tmp_path / "state"), "--reports", str(tmp_path / "reports"), "report",
                               "--baseline", str(base), *args], cwd=ROOT, capture_output=True, text=True)

    proc = report()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "regression: a -> b control/h5: pass -> wrong-output" in proc.stderr
    assert (tmp_path / "reports" / "changes.md").read_text().startswith("## Changes since")
    assert ET.parse(tmp_path / "reports" / "junit.xml").getroot().get("tests") == "4"
    assert 'id="changes"' in (tmp_path / "reports" / "index.html").read_text()
    assert report("--fail-on", "never").returncode == 0
    for bad in ("regresion", "never,regression", ","):
        wrong = report("--fail-on", bad)
        assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1, wrong.stderr
        assert "--fail-on" in wrong.stderr and "regression, coverage, unmet-expectation, or never" in wrong.stderr
    missing = report("--baseline", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "--baseline:" in missing.stderr
