"""The backend interface (after nox's virtualenv classes): one object per matrix environment."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cache

from ..matrix import EnvSpec


@dataclass(frozen=True)
class Launch:
    """One worker process to start in an environment: all that process.py says to a backend."""

    args: tuple[str, ...]  # after the env's Python, e.g. ("-I", worker_main, job_path)
    cwd: str
    log: str  # stdout and stderr are appended here
    env: dict = field(default_factory=dict)  # variables on top of the caller's environment
    offline: bool = False  # no network for this process, where the backend can cut it
    mounts: tuple[tuple[str, str], ...] = ()  # (host path, path inside): where a backend must bind them


class Launcher(ABC):
    """Starts and kills worker processes for one environment (the launch contract)."""

    @abstractmethod
    def launch(self, launch: Launch) -> subprocess.Popen:
        """Start the process; it must not share the caller's session (a terminal's Ctrl-C is the
        caller's to handle)."""

    @abstractmethod
    def kill(self, proc: subprocess.Popen) -> None:
        """Kill the process and everything it started, then reap it."""

    @abstractmethod
    def goes_offline(self) -> bool:
        """Whether `offline=True` really leaves the process without a network here."""


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


class Backend(ABC):
    """An isolated environment for one EnvSpec.

    `create()` makes it (or reuses it when its recorded state matches the spec) and returns True
    when it had to (re)build. `launcher()` starts and kills worker processes in it.
    """

    name = "base"

    def __init__(self, spec: EnvSpec, root: str, log_dir: str, matrix_path: str) -> None:
        self.spec = spec
        self.root = root  # the project dir (holds tox.ini)
        self.log_dir = log_dir
        self.matrix_path = os.path.abspath(matrix_path)

    @abstractmethod
    def create(self) -> bool:
        """Make the environment if missing or stale; True if it was (re)built."""

    @abstractmethod
    def launcher(self) -> Launcher:
        """How worker processes start in this environment."""

    def env_vars(self) -> dict[str, str]:
        return dict(self.spec.env_vars())

    # An env-state record (after tox 4): a stored hash of the spec; a mismatch means re-create.
    def state_path(self) -> str:
        return os.path.join(self.location(), ".tfcompat-state.json")

    @abstractmethod
    def location(self) -> str:
        """Where the environment lives."""

    def recorded_state(self) -> dict | None:
        try:
            with open(self.state_path()) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def record_state(self, state: dict) -> None:
        with open(self.state_path(), "w") as fh:
            json.dump(state, fh, indent=1, sort_keys=True)


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
