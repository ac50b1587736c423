"""`kill -9` of the orchestrator itself, at seeded random moments, again and again: `run --resume`
completes the run with every cell present exactly once and the same grid as an uninterrupted run."""

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

# The slow tier (`tox -e tests -- -m slow`, nightly: .github/workflows/slow-tests.yml).
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SELECT = ["--only", "tf2.15,tf2.16-keras3", "--fixtures", "control,custom_layer", "--formats", "h5,keras"]


def cmd(base, *args):
    return [sys.executable, "-m", "harness", "--matrix", os.path.join(ROOT, "matrix.yaml"), "--state-dir",
            str(base / "state"), "--reports", str(base / "reports"), *args]


def grid(base):
    with open(base / "reports" / "results.jsonl") as fh:
        records = [json.loads(line) for line in fh]
    keys = collections.Counter((r["producer"], r["consumer"], r["fixture"], r["format"]) for r in records)
    return records, keys


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    ref = tmp_path_factory.mktemp("reference")
    proc = subprocess.run(cmd(ref, "run", *SELECT), cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    killed = tmp_path_factory.mktemp("killed")
    rng = random.Random(7)
    kills = []
    args = ["run", *SELECT]
    for _ in range(4):
        p = subprocess.Popen(cmd(killed, *args), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait = rng.uniform(4, 25)
        try:
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)  # the orchestrator only: its workers notice and stop
            p.wait()
            kills.append(round(wait, 1))
        args = ["run", "--resume"]
        time.sleep(1)
    proc = subprocess.run(cmd(killed, *args), cwd=ROOT, capture_output=True, text=True)
    return {"ref": ref, "killed": killed, "kills": kills, "final": proc}


def test_resume_after_repeated_kill_9_completes_every_cell_exactly_once(runs):
    final = runs["final"]
    assert final.returncode == 0, final.stdout + final.stderr
    assert runs["kills"], "no run was killed: the kill times are too late for this machine"
    records, keys = grid(runs["killed"])
    _, want = grid(runs["ref"])
    assert set(keys) == set(want) and all(n == 1 for n in keys.values()), keys
    assert not [r for r in records if r["outcome"] == "harness-error"]


def test_the_killed_run_gives_the_uninterrupted_grid(runs):
    got = {(r["producer"], r["consumer"], r["fixture"], r["format"]): r["outcome"] for r in grid(runs["killed"])[0]}
    want = {(r["producer"], r["consumer"], r["fixture"], r["format"]): r["outcome"] for r in grid(runs["ref"])[0]}
    assert got == want
