"""The baseline diff and JUnit XML (pure: records in, changes and XML out), and the CLI's exit code."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

from harness.diff import diff, markdown
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
         rec("a", "b", "control", "keras", "pass"),  # fix
         rec("a", "b", "custom_layer", "h5", "pass-with-remedy", "compile_false"),  # changed
         rec("a", "b", "custom_layer", "keras", "degraded", lost=["optimizer_state"],
             expectation={"outcome": "degraded", "met": True, "reason": "known"}),  # expected regression
         rec("a", "new", "control", "h5", "load-error",
             expectation={"outcome": "pass", "met": False, "reason": "should load"}),  # new, unmet
         rec("a", "new", "control", "keras", "pass")]  # new


def test_diff_orders_regressions_fixes_changes_new_and_gone():
    d = diff(BEFORE, AFTER, "base")
    kinds = {(c.cell, c.kind) for c in d.changes}
    assert (("a", "b", "control", "h5"), "regression") in kinds
    assert (("a", "b", "control", "keras"), "fix") in kinds
    assert (("a", "b", "custom_layer", "h5"), "changed") in kinds
    assert (("a", "new", "control", "h5"), "regression") in kinds  # a new cell whose expectation is unmet
    assert (("a", "new", "control", "keras"), "new") in kinds
    assert (("a", "old", "control", "h5"), "gone") in kinds
    expected = [c for c in d.of("regression") if c.expected]
    assert [c.cell for c in expected] == [("a", "b", "custom_layer", "keras")]
    assert d.summary()["unexpected_regressions"] == 2
    text = markdown(d)
    assert text.index("### Regressions") < text.index("### Fixes") < text.index("### Other changes") \
        < text.index("### New cells")
    assert "a -> b control/h5: pass -> wrong-output" in text


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
    missing = report("--baseline", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "--baseline:" in missing.stderr
