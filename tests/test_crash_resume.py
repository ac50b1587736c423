"""A killed worker loses only the check in flight; a killed run resumes without redoing work.

Real TF env (tf2.15), real worker processes, real SIGKILLs.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

# The slow tier (`tox -e tests -- -m slow`, nightly): the quick tier keeps the crash/hang logic on a
# stand-in worker (tests/test_process.py) and the attempts a retry keeps (tests/test_trust.py).
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = "tf2.15"
KEY = "check|%s|%s|custom_layer|keras" % (ENV, ENV)
ARGS = ["run", "--only", ENV, "--fixtures", "control,custom_layer", "--formats", "h5,keras,savedmodel"]


def start(tmp_path, *args, env=None):
    cmd = [sys.executable, "-m", "harness", "--matrix", os.path.join(ROOT, "matrix.yaml"),
           "--state-dir", str(tmp_path / "state"), "--reports", str(tmp_path / "reports"), *args]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, preexec_fn=_as_a_terminal)


def _as_a_terminal() -> None:
    # A terminal's Ctrl-C reaches a program with SIGINT at its default; a background job of a
    # non-interactive shell (as CI may run us) inherits SIGINT ignored, and Python keeps that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def events(path):
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as fh:
        for line in fh:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def journal(tmp_path, phase):
    runs = tmp_path / "state" / "runs"
    names = sorted(os.listdir(runs)) if runs.exists() else []
    return str(runs / names[-1] / "journals" / ("%s.%s.jsonl" % (ENV, phase))) if names else ""


def wait_for_start(tmp_path, key, proc, limit=900):
    deadline = time.time() + limit
    while time.time() < deadline:
        evs = events(journal(tmp_path, "check-plain"))
        if any(e.get("event") == "start" and e.get("key") == key for e in evs):
            return [e for e in evs if e.get("event") == "ready"][-1]["pid"]
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.5)
    raise AssertionError("the check never started")


def records(tmp_path):
    with open(tmp_path / "reports" / "results.jsonl") as fh:
        return [json.loads(line) for line in fh]


def test_killed_worker_loses_only_the_check_in_flight(tmp_path):
    proc = start(tmp_path, *ARGS, env={"TFCOMPAT_WORKER_PAUSE": KEY, "TFCOMPAT_WORKER_PAUSE_S": "600",
                                        "TFCOMPAT_WORKER_PAUSE_ONCE": str(tmp_path / "paused")})
    pid = wait_for_start(tmp_path, KEY, proc)
    os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    evs = events(journal(tmp_path, "check-plain"))
    starts = [e for e in evs if e.get("event") == "start" and e["key"] == KEY]
    dones = [e for e in evs if e.get("event") == "done" and e["key"] == KEY]
    assert len(starts) == 2 and len(dones) == 1  # retried once, in a fresh process
    # every other check ran exactly once
    for key in {e["key"] for e in evs if e.get("event") == "done"}:
        assert sum(1 for e in evs if e.get("event") == "done" and e["key"] == key) == 1
    recs = records(tmp_path)
    assert len(recs) == 2 * 3
    rec = next(r for r in recs if r["fixture"] == "custom_layer" and r["format"] == "keras")
    assert rec["outcome"] == "pass-with-remedy"  # the real verdict, not a crash
    meta = json.load(open(tmp_path / "reports" / "run.json"))
    assert meta["tf_imports"][ENV]["plain"] == 3  # first process, the retry alone, the rest


def test_killed_run_resumes_without_redoing_finished_work(tmp_path):
    proc = start(tmp_path, *ARGS, env={"TFCOMPAT_WORKER_PAUSE": KEY, "TFCOMPAT_WORKER_PAUSE_S": "600"})
    worker = wait_for_start(tmp_path, KEY, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the orchestrator dies...
    os.kill(worker, signal.SIGKILL)  # ...and its worker with it, as in a machine crash
    proc.wait()
    save_before = [e for e in events(journal(tmp_path, "save")) if e.get("event") == "done"]
    plain_before = [e["key"] for e in events(journal(tmp_path, "check-plain")) if e.get("event") == "done"]
    assert len(save_before) == 6 and KEY not in plain_before
    resumed = start(tmp_path, "run", "--resume")
    out, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, out
    assert "resuming" in out
    save_after = [e for e in events(journal(tmp_path, "save")) if e.get("event") == "done"]
    assert len(save_after) == 6  # nothing saved twice
    plain_after = [e["key"] for e in events(journal(tmp_path, "check-plain")) if e.get("event") == "done"]
    assert sorted(set(plain_after)) == sorted(plain_after)  # no check done twice
    assert KEY in plain_after
    recs = records(tmp_path)
    assert len(recs) == 6 and all(r["outcome"] not in ("crash", "timeout") for r in recs)


def test_ctrl_c_stops_at_once_and_resume_finishes(tmp_path):
    proc = start(tmp_path, *ARGS, env={"TFCOMPAT_WORKER_PAUSE": KEY, "TFCOMPAT_WORKER_PAUSE_S": "600"})
    worker = wait_for_start(tmp_path, KEY, proc)
    t = time.time()
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends; workers have their own session
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.time() - t < 30, out
    assert "interrupted; finish with `tfcompat run --resume`" in out
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)  # the paused worker was killed, not left running for 600 s
    plain = [e for e in events(journal(tmp_path, "check-plain")) if e.get("event") in ("done", "failed")]
    assert KEY not in [e["key"] for e in plain]  # nothing recorded for the check in flight
    resumed = start(tmp_path, "run", "--resume")
    out, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, out
    recs = records(tmp_path)
    assert len(recs) == 6 and all(r["outcome"] not in ("crash", "timeout") for r in recs)


def test_a_hang_mid_ladder_is_one_more_attempt_not_the_verdict(tmp_path):
    # A Keras 2 SavedModel of a custom layer loads with no remedy, degraded (placeholder class, no
    # optimizer state). The custom_objects rung then hangs, twice: the timeout joins the attempts and
    # the cell stays what the user got. On the engine before worker w3 the cell said `timeout`.
    key = "check|%s|%s|custom_layer|savedmodel" % (ENV, ENV)
    proc = start(tmp_path, "run", "--only", ENV, "--fixtures", "custom_layer", "--formats", "savedmodel",
                 "--timeout", "20", env={"TFCOMPAT_WORKER_PAUSE": key + "|rung:custom_objects",
                                         "TFCOMPAT_WORKER_PAUSE_S": "600"})
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    (rec,) = records(tmp_path)
    # both hangs are in the cell: the first (then retried alone) and the second (recorded)
    assert [(a["remedy"], a["outcome"]) for a in rec["attempts"]] == [(None, "degraded"),
                                                                      ("custom_objects", "timeout"),
                                                                      ("custom_objects", "timeout")]
    assert rec["outcome"] == "degraded" and "custom_classes" in rec["lost"]
    evs = events(journal(tmp_path, "check-remedies"))
    assert sum(1 for e in evs if e.get("event") == "start" and e["key"] == key) == 2  # retried once, alone


def test_an_artifact_whose_save_hangs_is_one_save_error_and_the_rest_goes_on(tmp_path):
    # The save worker hangs on one artifact, twice: that artifact is a save-error of kind timeout,
    # shown once (not a crash per consumer); the other artifact is saved and checked as usual.
    proc = start(tmp_path, "run", "--only", ENV, "--fixtures", "control", "--formats", "h5,keras",
                 "--timeout", "20", env={"TFCOMPAT_WORKER_PAUSE": "save|control|h5", "TFCOMPAT_WORKER_PAUSE_S": "600"})
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    recs = {r["format"]: r for r in records(tmp_path)}
    assert len(records(tmp_path)) == 2
    assert recs["h5"]["outcome"] == "save-error" and recs["h5"]["consumer"] is None
    assert recs["h5"]["save_error_kind"] == "timeout" and "hung" in recs["h5"]["message"]
    assert recs["keras"]["outcome"] == "pass"
