"""The backend interface (after nox's virtualenv classes): one object per matrix environment."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

from ..envstate import EnvStates
from ..errors import TfcompatError
from ..matrix import EnvSpec
from ..resolve import Request


@dataclass(frozen=True)
class Mount:
    """A host path a contained worker needs, bound at `inside` (tfcompat binds every path at itself)."""

    host: str
    inside: str
    read_only: bool = True


@dataclass(frozen=True)
class Launch:
    """One worker process to start in an environment: all that process.py says to a backend."""

    args: tuple[str, ...]  # after the env's Python, e.g. ("-I", worker_main, job_path)
    cwd: str
    log: str  # stdout and stderr are appended here
    env: dict = field(default_factory=dict)  # variables on top of the caller's environment
    offline: bool = False  # no network for this process, where the backend can cut it
    mounts: tuple[Mount, ...] = ()  # what a contained process must see (a local one sees all)


class Handle(Protocol):
    """A started worker: `poll()` is None while it runs, then its exit code (negative: the signal
    that killed it), as subprocess.Popen gives it."""

    def poll(self) -> int | None: ...


class Launcher(ABC):
    """Starts and kills worker processes for one environment (the launch contract)."""

    @abstractmethod
    def launch(self, launch: Launch) -> Handle:
        """Start the process; it must not share the caller's session (a terminal's Ctrl-C is the
        caller's to handle). Raises EnvError when the environment cannot start anything."""

    @abstractmethod
    def kill(self, proc) -> None:
        """Kill the process and everything it started, then reap it."""

    @abstractmethod
    def goes_offline(self) -> bool:
        """Whether `offline=True` really leaves the process without a network here."""

    def argv(self, script: str, job: str) -> tuple[str, ...]:
        """The worker's arguments after the env's interpreter (Python: isolated mode)."""
        return ("-I", script, job)


class LocalPython(Launcher):
    """A Python on this host (a virtualenv's), in its own session; offline in a fresh network namespace."""

    def __init__(self, python: str) -> None:
        self.python = python

    def launch(self, launch: Launch) -> subprocess.Popen:
        prefix = _unshare_net() if launch.offline else ()
        env = dict(os.environ)
        env.update(launch.env)
        env.pop("PYTHONPATH", None)
        with open(launch.log, "ab") as log:
            return subprocess.Popen([*prefix, self.python, *launch.args], cwd=launch.cwd, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def kill(self, proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()

    def goes_offline(self) -> bool:
        return bool(_unshare_net())


@dataclass(frozen=True)
class Where:
    """What every backend of a run shares: the project, the state dir and the run."""

    root: str  # the project dir (holds tox.ini and fixtures/)
    state_dir: str  # .tfcompat: runs/, envs/ (env-state records)
    log_dir: str  # creation logs
    matrix_path: str
    run_id: str = ""


class Backend(ABC):
    """An isolated environment for one EnvSpec.

    `create()` makes it (or reuses it when its env-state record matches the spec) and returns True
    when it had to (re)build. `launcher()` starts and kills worker processes in it. The class
    methods speak for every env of the backend: `preflight()` before any work, `cleanup(run_id)`
    after a run (or an interrupted one), `listing()`/`remove()` for `tfcompat envs`.
    """

    name = "base"

    def __init__(self, spec: EnvSpec, where: Where) -> None:
        self.spec = spec
        self.where = where
        self.root = where.root
        self.log_dir = where.log_dir
        self.matrix_path = os.path.abspath(where.matrix_path)
        self.states = EnvStates(where.state_dir)

    @abstractmethod
    def create(self) -> bool:
        """Make the environment if missing or stale; True if it was (re)built."""

    @abstractmethod
    def launcher(self) -> Launcher:
        """How worker processes start in this environment."""

    def worker_main(self) -> str:
        """The worker script processes of this env run (the Python worker; Node runs the JS one)."""
        from ..process import WORKER_MAIN

        return WORKER_MAIN

    def env_vars(self) -> dict[str, str]:
        return dict(self.spec.env_vars())

    def recorded_state(self) -> dict | None:
        """This backend's env-state record for the env (`.tfcompat/envs/<id>.json`)."""
        return self.states.get(self.spec.id, self.name)

    def wanted_state(self) -> dict:
        """What the record must say for the env to be current (spec hash and where it lives)."""
        raise NotImplementedError(self.name)

    def current_state(self) -> dict | None:
        """The env-state record if it was made for the spec as it is now, was not invalidated, and
        the env it describes is still there (nothing is built or started): its `installed` gives
        the env's fingerprint before any work."""
        recorded = self.recorded_state()
        if not recorded or recorded.get("stale"):
            return None
        try:
            want = self.wanted_state()
            if all(recorded.get(k) == v for k, v in want.items()) and self.present(recorded):
                return recorded
        except TfcompatError:
            pass
        return None

    def present(self, recorded: dict) -> bool:
        """Whether the env `recorded` describes is still there (a folder, an image): a record
        restored without its env is not current."""
        return True

    def record_state(self, state: dict) -> None:
        self.states.put(self.spec.id, self.name, state)

    def invalidate(self, reason: str) -> None:
        """Make the env stale although its spec did not change (`reason`, one line: what drifted):
        `current_state()` is None from now on and the next `create()` builds it from scratch (tox
        --recreate, a new image without the build cache, a new npm folder), saying why in its
        creation log. The rebuilt env's record no longer holds the reason."""
        self.record_state(dict(self.recorded_state() or {}, stale=" ".join(reason.split()) or "invalidated"))

    def stale_reason(self) -> str | None:
        """Why the env was invalidated (see invalidate()), or None."""
        return (self.recorded_state() or {}).get("stale") or None

    def resolution_request(self, installed: dict | None = None) -> Request | None:
        """How to resolve the env's requirements as its installer would today, or None where this
        backend does not resolve. `installed` is the env-state record's, where there is one. Raises
        TfcompatError when it cannot be made (no interpreter)."""
        return None

    @classmethod
    def preflight(cls) -> None:
        """Raise BackendUnavailable (one line, exit 2) when the backend cannot work at all."""
        return None

    @classmethod
    def cleanup(cls, run_id: str) -> None:
        """Remove whatever a run (even a killed one) left running."""
        return None

    @classmethod
    def listing(cls, where: Where, specs: dict[str, EnvSpec]) -> list[dict]:
        """Every env this backend holds: {"backend", "id", "where", "state"}; state is "current"
        (built from the spec `specs` now gives for its id), "stale" (built from another spec) or
        "unused" (no matrix or profile names the id)."""
        return []

    @classmethod
    def remove(cls, where: Where, entry: dict) -> None:
        """Delete one env from listing()."""
        raise NotImplementedError(cls.name)

    # -- for backends whose env is a folder of this host (tox, node) --------------------------
    @classmethod
    def folder_entry(cls, where: Where, specs: dict[str, EnvSpec], name: str, path: str) -> dict:
        """listing()'s row for the env folder `path` named `name`: "unused" when no matrix names it,
        "unrecorded" when this state dir holds no record of it (built from another state dir: the
        next run there reuses or rebuilds it; never pruned), else "current" or "stale"."""
        if name not in specs:
            state = "unused"
        else:
            backend = cls(specs[name], where)
            if not backend.recorded_state():
                state = "unrecorded"
            else:
                state = "current" if backend.current_state() else "stale"
        return {"backend": cls.name, "id": name, "where": path, "state": state}

    @classmethod
    def remove_folder(cls, where: Where, entry: dict) -> None:
        """remove() of a folder env: the folder and its env-state record."""
        shutil.rmtree(entry["where"], ignore_errors=True)
        EnvStates(where.state_dir).drop(entry["id"], cls.name)


# Lists what an env holds without importing TensorFlow (Python 3.7 has no importlib.metadata).
INSTALLED = (
    "import json, sys\n"
    "try:\n"
    "    import importlib.metadata as m\n"
    "    dists = [(d.metadata['Name'], d.version) for d in m.distributions()]\n"
    "except ImportError:\n"
    "    import pkg_resources\n"
    "    dists = [(d.project_name, d.version) for d in pkg_resources.working_set]\n"
    "print(json.dumps({'python': '%d.%d.%d' % sys.version_info[:3], 'packages': "
    "dict(sorted((str(n).lower().replace('_', '-'), v) for n, v in dists if n))}))\n"
)


@cache
def _unshare_net() -> tuple[str, ...]:
    # A fresh network namespace has no interfaces: checks cannot reach anything.
    tool = shutil.which("unshare")
    if not tool:
        return ()
    try:
        ok = subprocess.run([tool, "-n", "--", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return (tool, "-n", "--") if ok else ()
