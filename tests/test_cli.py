"""CLI behaviour that needs no TensorFlow: one-line handled errors and their exit codes."""

import json
import os
import subprocess
import sys

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
    assert "20240101-000000 was made by worker 0.0.1+w0" in proc.stderr
    assert "start a new run (without --resume)" in proc.stderr
