"""The tox backend's env-state record: reuse when the spec is unchanged, recreate when it changes."""

import os
import subprocess

import pytest

from harness.backends.base import Where
from harness.backends.tox import ToxBackend
from harness.errors import EnvError
from harness.interpreters import find_python
from harness.matrix import EnvSpec


def spec(**kw):
    base = dict(id="tfx", python="3.11", tensorflow="2.15.1", keras="bundled",
                pins={"setuptools": "<81"})
    base.update(kw)
    return EnvSpec(**base)


class FakeTox:
    """Stands in for the `tox run` subprocess: records the call and makes the env's python."""

    def __init__(self, backend, code=0):
        self.backend, self.code, self.calls = backend, code, []

    def __call__(self, cmd, **kw):
        if cmd[1:2] == ["-I"]:  # the listing of what the env holds
            return subprocess.CompletedProcess(cmd, 0, stdout='{"python": "3.11.7", "packages": {"tensorflow": "2.15.1"}}')
        self.calls.append(cmd)
        if self.code == 0:
            py = self.backend.python()
            os.makedirs(os.path.dirname(py), exist_ok=True)
            open(py, "w").close()
        return subprocess.CompletedProcess(cmd, self.code)


def make(tmp_path, monkeypatch, s):
    find_python(s.python)  # resolved (and cached) with the real subprocess
    monkeypatch.setenv("TFCOMPAT_TOX_WORKDIR", str(tmp_path / "tox"))
    where = Where(str(tmp_path), str(tmp_path / "state"), str(tmp_path / "logs"), str(tmp_path / "matrix.yaml"))
    backend = ToxBackend(s, where)
    fake = FakeTox(backend)
    monkeypatch.setattr(subprocess, "run", fake)
    return backend, fake


def test_first_create_builds_then_reuses(tmp_path, monkeypatch):
    backend, fake = make(tmp_path, monkeypatch, spec())
    assert backend.create() is True
    cmd = fake.calls[0]
    assert "--recreate" not in cmd and cmd[cmd.index("-e") + 1] == "tfx" and "--notest" in cmd
    assert backend.create() is False  # unchanged spec: no tox call at all
    assert len(fake.calls) == 1


def test_changed_spec_recreates(tmp_path, monkeypatch):
    backend, fake = make(tmp_path, monkeypatch, spec())
    backend.create()
    changed, fake2 = make(tmp_path, monkeypatch, spec(pins={"setuptools": "<80"}))
    assert changed.create() is True
    assert "--recreate" in fake2.calls[0]


def test_env_state_lives_in_the_state_dir_and_a_new_one_lets_tox_reconcile(tmp_path, monkeypatch):
    import json

    backend, fake = make(tmp_path, monkeypatch, spec())
    backend.create()
    record = json.loads((tmp_path / "state" / "envs" / "tfx.json").read_text())
    assert record["tox"]["spec_hash"] == spec().spec_hash(find_python("3.11"))
    assert not list((tmp_path / "tox" / "tfx").glob(".tfcompat*"))  # nothing of ours inside the env
    (tmp_path / "state" / "envs" / "tfx.json").unlink()
    assert backend.create() is True  # no record: tox is asked, but to reconcile, not to rebuild
    assert "--recreate" not in fake.calls[-1]


def test_failed_build_is_env_error_with_the_reason(tmp_path, monkeypatch):
    backend, fake = make(tmp_path, monkeypatch, spec())
    fake.code = 1
    (tmp_path / "logs").mkdir()

    def failing(cmd, stdout=None, **kw):
        stdout.write("  x No solution found\n  Because there is no version of tensorflow==9.9\n")
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(subprocess, "run", failing)
    with pytest.raises(EnvError, match="no version of tensorflow==9.9"):
        backend.create()


def test_local_launcher_keeps_the_launch_contract(tmp_path, monkeypatch):
    # process.py only says Launch(args, cwd, log, env, offline): the launcher starts the env's Python
    # with them, in its own session, offline in a fresh network namespace where that works here.
    import sys

    from harness.backends.base import Launch, LocalPython

    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    launcher = LocalPython(sys.executable)
    code = ("import os, socket; print(sorted(n for _, n in socket.if_nameindex()), os.getcwd(), "
            "os.environ.get('X'), os.environ.get('PYTHONPATH'), os.getsid(0) == os.getpid())")
    log = tmp_path / "log"
    proc = launcher.launch(Launch(args=("-c", code), cwd=str(tmp_path), log=str(log), env={"X": "1"}, offline=True))
    assert proc.wait(timeout=60) == 0
    out = log.read_text()
    assert "%s 1 None True" % tmp_path in out  # cwd, env, no PYTHONPATH, its own session
    assert out.startswith("['lo']") == launcher.goes_offline()
    hung = launcher.launch(Launch(args=("-c", "import time; time.sleep(600)"), cwd=str(tmp_path), log=str(log)))
    launcher.kill(hung)
    assert hung.returncode is not None


def test_a_record_whose_env_folder_is_gone_is_not_current(tmp_path, monkeypatch):
    # A night restores .tfcompat but not .tox: the record alone must not pass for a built env.
    backend, fake = make(tmp_path, monkeypatch, spec())
    backend.create()
    assert backend.current_state()["installed"]["packages"] == {"tensorflow": "2.15.1"}
    os.remove(backend.python())
    assert backend.current_state() is None
    assert backend.create() is True and len(fake.calls) == 2  # built again


def test_an_invalidated_env_is_stale_and_recreated_from_scratch_saying_why(tmp_path, monkeypatch):
    backend, fake = make(tmp_path, monkeypatch, spec())
    backend.create()
    backend.invalidate("h5py 3.14.0 -> 3.15.0")
    assert backend.current_state() is None and backend.stale_reason() == "h5py 3.14.0 -> 3.15.0"
    again, fake2 = make(tmp_path, monkeypatch, spec())  # the next run: same spec, stale record
    assert again.current_state() is None
    assert again.create() is True and "--recreate" in fake2.calls[0]
    log = (tmp_path / "logs" / "create-tfx.log").read_text()
    assert log.splitlines()[0] == "tfcompat: rebuilding tfx, stale: h5py 3.14.0 -> 3.15.0"
    assert again.stale_reason() is None and again.current_state() is not None  # the new record is current
    assert again.create() is False and len(fake2.calls) == 1


def test_invalidating_an_unrecorded_env_recreates_the_folder_tox_has(tmp_path, monkeypatch):
    backend, fake = make(tmp_path, monkeypatch, spec())
    backend.create()
    (tmp_path / "state" / "envs" / "tfx.json").unlink()  # built from another state dir
    backend.invalidate("numpy 1.26.4 -> 1.26.5")
    assert backend.create() is True and "--recreate" in fake.calls[-1]  # not tox's reconcile
