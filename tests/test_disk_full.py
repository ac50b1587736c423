"""A disk that fills up mid-run (a small tmpfs as the state dir, mounted by the test as root): the run
stops with one line saying what filled up, no cell records the full disk as a verdict, and once the
filesystem is grown `--resume` completes with the grid of an unhindered run."""

import collections
import json
import os
import subprocess
import sys

import pytest
from corpus import tmpfs

# The slow tier (`tox -e tests -- -m slow`, nightly: .github/workflows/slow-tests.yml).
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SELECT = ["--only", "tf2.15,tf2.16-keras3", "--fixtures", "control,custom_layer", "--formats", "h5,keras,savedmodel"]


def run(base, state, *args):
    return subprocess.run([sys.executable, "-m", "harness", "--matrix", os.path.join(ROOT, "matrix.yaml"),
                           "--state-dir", str(state), "--reports", str(base / "reports"), *args],
                          cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, CI="true"))


def cells(base):
    with open(base / "reports" / "results.jsonl") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture()
def small_fs(tmp_path):
    with tmpfs(tmp_path / "small", "size=600k") as where:
        yield where


def test_a_full_disk_stops_the_run_in_one_line_and_resume_completes(tmp_path, small_fs):
    ref = tmp_path / "ref"
    ref.mkdir()
    proc = run(ref, ref / "state", "run", *SELECT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    want = {(r["producer"], r["consumer"], r["fixture"], r["format"]): r["outcome"] for r in cells(ref)}

    state = small_fs / "state"
    full = run(tmp_path, state, "run", *SELECT)
    assert full.returncode == 1, full.stdout + full.stderr
    assert "Traceback" not in full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("tfcompat: error:")]
    assert len(errors) == 1 and "no space left on device" in errors[0], full.stderr
    assert "tfcompat run --resume" in errors[0]

    subprocess.run(["mount", "-o", "remount,size=2g", str(small_fs)], check=True)
    resumed = run(tmp_path, state, "run", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    got = cells(tmp_path)
    keys = collections.Counter((r["producer"], r["consumer"], r["fixture"], r["format"]) for r in got)
    assert all(n == 1 for n in keys.values()) and set(keys) == set(want)
    assert not [r for r in got if "No space left" in json.dumps(r)]  # the full disk is in no cell
    assert {k: r["outcome"] for k, r in zip(keys, got)} == want
