"""An env whose creation is killed halfway (tox and uv with it, as a closed terminal does, while
packages are being installed) is found incomplete and built again by the next run, which then
completes: real tox, uv and TensorFlow, in a tox work dir of the test's own (TFCOMPAT_TOX_WORKDIR)."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = "tf2.15"


def cmd(base):
    return [sys.executable, "-m", "harness", "--matrix", os.path.join(ROOT, "matrix.yaml"), "--state-dir",
            str(base / "state"), "--reports", str(base / "reports"), "run", "--only", ENV, "--fixtures", "control",
            "--formats", "h5"]


def test_a_creation_killed_halfway_is_rebuilt_by_the_next_run(tmp_path):
    env = dict(os.environ, TFCOMPAT_TOX_WORKDIR=str(tmp_path / "tox"), CI="true")
    site = str(tmp_path / "tox" / ENV / "lib" / "python*" / "site-packages")
    p = subprocess.Popen(cmd(tmp_path), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.time() + 600
    # wait until the install is under way (its packages are arriving in site-packages), then kill it all
    while time.time() < deadline and p.poll() is None:
        if glob.glob(os.path.join(site, "numpy*")) or glob.glob(os.path.join(site, "tensorflow*")):
            break
        time.sleep(0.02)
    assert p.poll() is None, "the run ended before its env was half built"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    state = tmp_path / "state" / "envs" / ("%s.json" % ENV)
    assert not state.exists()  # no env-state record: the env was never finished
    assert (tmp_path / "tox" / (".%s.creating" % ENV)).exists()  # and its marker says so
    proc = subprocess.run(cmd(tmp_path), cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(state.read_text())
    assert record["tox"]["installed"]["packages"]["tensorflow"] == "2.15.1"
    with open(tmp_path / "reports" / "results.jsonl") as fh:
        outcomes = [json.loads(line)["outcome"] for line in fh]
    assert outcomes == ["pass"]
