"""CLI behaviour that needs no TensorFlow: one-line handled errors and their exit codes."""

import json
import os
import subprocess
import sys

from synth import STUB_FIXTURE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_resume_refuses_a_run_made_by_another_worker(tmp_path):
    run_dir = tmp_path / "state" / "runs" / "20240101-000000"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({
        "run_id": "20240101-000000", "worker_version": "0.0.1+w0",
        "selection": {"envs": ["tf2.15"], "fixtures": ["control"], "formats": ["h5"]}}))
    proc = subprocess.run([sys.executable, "-m", "harness", "--matrix", os.path.join(ROOT, "matrix.yaml"),
                           "--state-dir", str(tmp_path / "state"), "run", "--resume"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "20240101-000000 was made by other worker code (0.0.1+w0 unknown" in proc.stderr
    assert "start a new run (without --resume)" in proc.stderr


def test_a_harness_defect_fails_the_run_loudly_and_names_the_cell(tmp_path):
    # A failed honesty check is not a verdict: the report is written, the cell named, the exit code 1.
    from synth import SynthRun, att

    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "control.py").write_text(STUB_FIXTURE)
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text('version: 1\nenvironments:\n  - {id: a, python: "3.11", tensorflow: "2.15.1", keras: bundled}\n'
                      "fixtures: [control]\nformats: [h5]\n")
    r = SynthRun(tmp_path / "state" / "runs", ["a"])  # the run dir: state/runs/run
    r.saved("a", "control", "h5")
    r.checked("a", "a", "control", "h5", plain=[att(None, "pass", fixtures_absent=False)])
    r.write_results()
    proc = subprocess.run([sys.executable, "-m", "harness", "--matrix", str(matrix), "--state-dir",
                           str(tmp_path / "state"), "--reports", str(tmp_path / "reports"), "report"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "harness defect in a -> a control/h5: honesty check failed" in proc.stderr
    assert (tmp_path / "reports" / "index.html").exists()
    assert json.loads((tmp_path / "reports" / "run.json").read_text())["harness_defects"][0]["fixture"] == "control"


def test_plan_into_a_closed_pipe_says_nothing_more(tmp_path, monkeypatch):
    # `tfcompat plan | head -1`: the reader has closed the pipe; the CLI stops quietly with exit 0.
    from harness.cli import main

    read_end, write_end = os.pipe()
    os.close(read_end)
    closed = os.fdopen(write_end, "w", buffering=1)  # line-buffered: the first line meets the closed pipe
    monkeypatch.setattr(sys, "stdout", closed)
    assert main(["--matrix", os.path.join(ROOT, "matrix.yaml"), "--state-dir", str(tmp_path / "s"), "plan"]) == 0
