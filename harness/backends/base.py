"""The backend interface (after nox's virtualenv classes): one object per matrix environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from abc import ABC, abstractmethod
from functools import cache

from ..matrix import EnvSpec


class Backend(ABC):
    """An isolated environment for one EnvSpec.

    `create()` makes it (or reuses it when its recorded state matches the spec) and returns True
    when it had to (re)build. `command()` is how to start its Python. `network_off_env()` is the
    best the backend can do to keep check phases off the network.
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
    def command(self) -> tuple[str, ...]:
        """Argv prefix that runs the env's Python."""

    def env_vars(self) -> dict[str, str]:
        return dict(self.spec.env_vars())

    def offline_prefix(self) -> tuple[str, ...]:
        """Argv prefix that runs a command with no network, or () where this backend cannot."""
        return _unshare_net()

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
