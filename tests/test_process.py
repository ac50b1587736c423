"""process.run: a crash or hang loses only the item in flight; resume redoes nothing."""

import os
import sys

from harness import process

STUB = os.path.join(os.path.dirname(__file__), "stub_worker.py")


def _request(tmp_path, keys, timeout=30.0):
    return process.WorkerRequest(
        env_id="e", command=(sys.executable,), phase="check", mode="plain",
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
