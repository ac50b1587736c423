"""An env that cannot be built is env-error with the installer's reason; a hung check is a timeout;
the rest of the run completes. Real tox/uv and a real TF env."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUNG = "check|tf2.15|tf2.15|control|keras"


def test_broken_env_and_hung_check_do_not_stop_the_run(tmp_path):
    with open(os.path.join(ROOT, "matrix.yaml")) as fh:
        text = fh.read()
    # one env the installer cannot make (a real TF, a pin no release satisfies: tfcompat checks TF
    # versions against the index, not every pin) beside the real tf2.15, whose tox env is reused
    text = text.replace("environments:\n", "environments:\n  - id: tfcompat-broken\n"
                        "    tensorflow: \"2.15.1\"\n    keras: bundled\n    pins: {numpy: \"==0.0.99\"}\n", 1)
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(text)
    env = {**os.environ, "TFCOMPAT_WORKER_PAUSE": HUNG, "TFCOMPAT_WORKER_PAUSE_S": "600"}
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "--matrix", str(matrix), "--state-dir", str(tmp_path / "state"),
         "--reports", str(tmp_path / "reports"), "run", "--only", "tfcompat-broken,tf2.15",
         "--fixtures", "control", "--formats", "h5,keras", "--timeout", "10"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(tmp_path / "reports" / "results.jsonl") as fh:
        recs = [json.loads(line) for line in fh]
    broken = [r for r in recs if "tfcompat-broken" in (r["producer"], r["consumer"])]
    assert broken and all(r["outcome"] == "env-error" for r in broken)
    assert "tox could not build" in broken[0]["message"] and "numpy" in broken[0]["message"]
    hung = [r for r in recs if (r["producer"], r["consumer"], r["format"]) == ("tf2.15", "tf2.15", "keras")]
    assert [r["outcome"] for r in hung] == ["timeout"]
    fine = [r for r in recs if (r["producer"], r["consumer"], r["format"]) == ("tf2.15", "tf2.15", "h5")]
    assert [r["outcome"] for r in fine] == ["pass"]
