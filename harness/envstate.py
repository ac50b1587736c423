"""Env-state records (after tox 4's): what each backend last built for an env id, kept in the state
dir (`.tfcompat/envs/<id>.json`), not inside the env. A record that differs from what the spec asks
for now means re-create; `tfcompat envs` reads them all."""

from __future__ import annotations

import json
import os

from . import results


class EnvStates:
    """`<state_dir>/envs/<id>.json` = {backend name: record}; one backend's record never touches another's."""

    def __init__(self, state_dir: str) -> None:
        self.dir = os.path.join(state_dir, "envs")

    def path(self, env_id: str) -> str:
        return os.path.join(self.dir, env_id + ".json")

    def read(self, env_id: str) -> dict:
        try:
            with open(self.path(env_id)) as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return {}  # a missing or corrupt record is no record: the backend reconciles
        return data if isinstance(data, dict) else {}

    def get(self, env_id: str, backend: str) -> dict | None:
        """The record `backend` wrote for `env_id`, or None."""
        record = self.read(env_id).get(backend)
        return record if isinstance(record, dict) else None

    def put(self, env_id: str, backend: str, record: dict) -> None:
        data = self.read(env_id)
        data[backend] = record
        self._write(env_id, data)

    def drop(self, env_id: str, backend: str) -> None:
        data = self.read(env_id)
        data.pop(backend, None)
        if data:
            self._write(env_id, data)
        elif os.path.exists(self.path(env_id)):
            os.remove(self.path(env_id))

    def all(self) -> dict[str, dict]:
        """env id -> {backend: record} for every record in the store."""
        if not os.path.isdir(self.dir):
            return {}
        return {name[:-5]: self.read(name[:-5]) for name in sorted(os.listdir(self.dir)) if name.endswith(".json")}

    def _write(self, env_id: str, data: dict) -> None:
        results.write_json(self.path(env_id), data, indent=1, sort_keys=True)
