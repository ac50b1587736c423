"""A stand-in backend and worker for driving the real Runner without TensorFlow: the env is a
record (its "packages" come from a scenario file), the worker is tests/stub_matrix_worker.py run by
this Python. Tests of the cache, the merge and the gates use it to see which cells really ran.

Scenario (JSON at $TFCOMPAT_STUB): {"log": path (one line per item a worker ran),
"nonce": text written into every saved file (change it and a re-save makes other bytes),
"envs_dir": where the envs are (default: the state dir's stub-envs),
"packages": {env: {name: version}} (what a build installs), "resolved": {env: {name: version}} (what
the requirements resolve to today: tests hand it to the runner in place of uv), "cells": {check key: {"plain": [attempt...], "remedies": [...]}}}.
"""

from __future__ import annotations

import json
import os
import sys

from harness.backends.base import Backend, Launcher, LocalPython

HERE = os.path.dirname(os.path.abspath(__file__))


def scenario() -> dict:
    with open(os.environ["TFCOMPAT_STUB"]) as fh:
        return json.load(fh)


def write_scenario(path: str, **changes) -> None:
    data = {}
    if os.path.exists(path):
        with open(path) as fh:
            data = json.load(fh)
    data.update(changes)
    with open(path, "w") as fh:
        json.dump(data, fh)


def ran(path: str) -> list[str]:
    """The items the stub workers ran, as `phase|mode|key` lines."""
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [line.strip() for line in fh if line.strip()]


class StubBackend(Backend):
    name = "stub"

    def folder(self) -> str:
        """The env itself: under the state dir, or in the scenario's `envs_dir` (shared by state
        dirs, as .tox is)."""
        return os.path.join(scenario().get("envs_dir") or os.path.join(self.where.state_dir, "stub-envs"),
                            self.spec.id)

    def wanted_state(self) -> dict:
        return {"spec_hash": self.spec.spec_hash("stub"), "location": self.folder()}

    def present(self, recorded: dict) -> bool:
        return os.path.isdir(self.folder())

    def installed(self) -> dict:
        packages = {"tensorflow": self.spec.tensorflow or "0"}
        packages.update((scenario().get("packages") or {}).get(self.spec.id) or {})
        return {"python": "3.11.7", "packages": packages}

    def create(self) -> bool:
        """As tox does: a current env is kept; with no record, an env folder that is there is
        reconciled as it stands (its packages kept); a stale record or no folder installs anew."""
        if self.current_state():
            return False
        held = os.path.join(self.folder(), "installed.json")
        if os.path.exists(held) and not (self.recorded_state() or {}).get("stale"):
            with open(held) as fh:
                installed = json.load(fh)
        else:
            os.makedirs(self.folder(), exist_ok=True)
            installed = self.installed()
            with open(held, "w") as fh:
                json.dump(installed, fh)
        self.record_state(dict(self.wanted_state(), installed=installed))
        with open(scenario()["log"], "a") as fh:
            fh.write("create|%s\n" % self.spec.id)
        return True

    def launcher(self) -> Launcher:
        return LocalPython(sys.executable)

    def worker_main(self) -> str:
        return os.path.join(HERE, "stub_matrix_worker.py")
