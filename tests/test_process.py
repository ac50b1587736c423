"""process.run: a crash or hang loses only the item in flight; resume redoes nothing."""

import os
import sys

from harness import process
from harness.backends.base import LocalPython

STUB = os.path.join(os.path.dirname(__file__), "stub_worker.py")


def _request(tmp_path, keys, timeout=30.0):
    return process.WorkerRequest(
        env_id="e", launcher=LocalPython(sys.executable), phase="check", mode="plain",
        items=tuple({"key": k} for k in keys), journal=str(tmp_path / "j.jsonl"),
        timeout=timeout, worker_main=STUB, cwd=str(tmp_path))


def test_all_items_done_in_one_process(tmp_path):
    out = process.run(_request(tmp_path, ["a", "b", "c"]))
    assert sorted(out.done) == ["a", "b", "c"]
    assert out.failed == {}
    assert out.processes == 1


def test_crash_is_retried_alone_then_recorded_and_the_rest_goes_on(tmp_path):
    out = process.run(_request(tmp_path, ["a", "segv-b", "c"]))
    assert sorted(out.done) == ["a", "c"]
    assert out.failed["segv-b"]["outcome"] == "crash"
    assert "SIGSEGV" in out.failed["segv-b"]["message"]
    # first batch, the retry alone, then the rest
    assert out.processes == 3


def test_flaky_crash_passes_on_retry(tmp_path):
    out = process.run(_request(tmp_path, ["a", "flaky-b", "c"]))
    assert sorted(out.done) == ["a", "c", "flaky-b"]
    assert out.failed == {}


def test_hang_becomes_timeout(tmp_path):
    out = process.run(_request(tmp_path, ["hang-a", "b"], timeout=1.0))
    assert out.failed["hang-a"]["outcome"] == "timeout"
    assert sorted(out.done) == ["b"]


def test_resume_redoes_nothing(tmp_path):
    process.run(_request(tmp_path, ["a", "segv-b"]))
    again = process.run(_request(tmp_path, ["a", "segv-b", "c"]))
    assert again.processes == 1  # only "c" ran
    assert sorted(again.done) == ["a", "c"]
    assert again.failed["segv-b"]["outcome"] == "crash"


def test_worker_that_cannot_start_is_env_error(tmp_path):
    req = _request(tmp_path, ["a"])
    req = process.WorkerRequest(**{**req.__dict__, "worker_main": str(tmp_path / "missing.py")})
    out = process.run(req)
    assert out.failed["a"]["outcome"] == "env-error"


def test_stop_kills_the_worker_at_once_and_keeps_what_finished(tmp_path):
    import threading
    import time

    import pytest

    raised = []

    def watch():
        try:
            process.run(_request(tmp_path, ["a", "hang-b", "c"], timeout=600.0))
        except process.Interrupted:
            raised.append(True)

    thread = threading.Thread(target=watch)
    thread.start()
    journal = tmp_path / "j.jsonl"
    deadline = time.time() + 20
    while time.time() < deadline and not (journal.exists() and '"hang-b"' in journal.read_text()):
        time.sleep(0.1)
    process.STOP.set()
    try:
        thread.join(10)
        assert not thread.is_alive() and raised == [True]
    finally:
        process.STOP.clear()
    j = process.read_journal(str(tmp_path / "j.jsonl"))
    done, failed = j.done, j.failed
    assert list(done) == ["a"] and failed == {}  # nothing recorded for the item in flight
    pid = [e["pid"] for e in process.results.read(str(tmp_path / "j.jsonl")) if e.get("event") == "ready"][0]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the hung worker is gone
    again = process.run(_request(tmp_path, ["a", "c"]))
    assert sorted(again.done) == ["a", "c"] and again.processes == 1
