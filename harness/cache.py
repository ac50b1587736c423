"""The result cache (`.tfcompat/cache/`): artifacts and cell records kept across runs, keyed by all
a result depends on, so a run computes only what changed.

- env fingerprint: the resolved spec (requirements, env vars) and what is installed, as listed in
  the env (Python version and every distribution's version); the backend is not part of it, so the
  same packages under tox or Docker share results;
- artifact key: producer fingerprint, fixture source hash, format, worker version;
- cell key: producer and consumer fingerprints, fixture source hash, format, worker version, the
  check settings (tolerances, timeout).

Artifacts are kept like gold files: an entry points at the artifact dir of the run that saved it
(runs are never rewritten), so a new consumer reads it without the producer env. An entry that does
not parse, or whose artifact no longer matches its recorded digest, is dropped and recomputed.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re

from .matrix import EnvSpec
from .outcomes import CACHEABLE
from .resolve import SEEDS, normalise
from .results import write_json
from .worker import WORKER_VERSION

# Outcomes worth keeping are the outcome table's `cacheable` ones (harness/outcomes.py).
CACHED_OUTCOMES = CACHEABLE
CACHED_SAVES = {"saved", "not-applicable", "save-error"}


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def env_fingerprint(spec: EnvSpec, installed: dict) -> str:
    """What an env is, for its results: `installed` is {"python": "3.11.7", "packages": {name: version}},
    as the env lists it or as its requirements resolve (harness/resolve.py). A Python env's packages
    count by their PEP 503 names (uv's, where the env listing keeps dots) and without the installer's
    seeds (pip: a Docker venv has it, a tox-uv venv and a resolution do not), so the env and the
    resolution of its requirements give one fingerprint when nothing drifted."""
    packages = installed.get("packages") or {}
    if spec.kind != "tfjs":
        packages = {normalise(n): v for n, v in packages.items() if normalise(n) not in SEEDS}
    return _digest({"requirements": spec.requirements(), "env_vars": spec.env_vars(),
                    "python": installed.get("python"), "packages": packages})


def _spec_digest(spec: EnvSpec) -> str:
    return _digest([spec.python, spec.requirements(), spec.env_vars()])


_REQUIRES = re.compile(r"""require\(\s*['"]\./([\w.-]+\.js)['"]\s*\)""")


def fixture_hash(path: str) -> str:
    """The fixture module's source plus the sibling modules it imports (its helpers), transitively."""
    folder = os.path.dirname(path)
    seen: dict[str, bytes] = {}
    # Its TF.js twin (<name>.js, what TF.js envs build and register) and the .js files that requires.
    todo = [path, os.path.splitext(path)[0] + ".js"]
    while todo:
        current = todo.pop()
        if current in seen or not os.path.isfile(current):
            continue
        with open(current, "rb") as fh:
            seen[current] = fh.read()
        if current.endswith(".js"):
            todo += [os.path.join(folder, name) for name in _REQUIRES.findall(seen[current].decode("utf-8", "replace"))]
            continue
        try:
            tree = ast.parse(seen[current])
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] + [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                todo.append(os.path.join(folder, name.split(".")[0] + ".py"))
    return _digest({os.path.basename(p): hashlib.sha256(src).hexdigest() for p, src in sorted(seen.items())})


def artifact_key(producer_fp: str, fixture_hash_: str, fmt: str) -> str:
    return _digest(["artifact", producer_fp, fixture_hash_, fmt, WORKER_VERSION])


def cell_key(producer_fp: str, consumer_fp: str, fixture_hash_: str, fmt: str, tolerances: dict,
             timeout: float) -> str:
    return _digest(["cell", producer_fp, consumer_fp, fixture_hash_, fmt, WORKER_VERSION, tolerances, timeout])


def artifact_digest(artifact_dir: str) -> str | None:
    """Names and sizes of every file under the artifact dir, and meta.json's bytes: enough to see an
    artifact that was moved, cut short or rewritten."""
    if not os.path.isdir(artifact_dir):
        return None
    files = []
    for root, _, names in os.walk(artifact_dir):
        for name in names:
            full = os.path.join(root, name)
            files.append((os.path.relpath(full, artifact_dir), os.path.getsize(full)))
    meta = os.path.join(artifact_dir, "meta.json")
    meta_sha = None
    if os.path.exists(meta):
        with open(meta, "rb") as fh:
            meta_sha = hashlib.sha256(fh.read()).hexdigest()
    return _digest({"files": sorted(files), "meta": meta_sha})


class ResultCache:
    """`<state_dir>/cache/{artifacts,cells}/<key[:2]>/<key>.json`."""

    def __init__(self, state_dir: str) -> None:
        self.dir = os.path.join(state_dir, "cache")
        self.dropped = 0  # corrupt or stale entries found (and removed) by this process

    def _path(self, kind: str, key: str) -> str:
        return os.path.join(self.dir, kind, key[:2], key + ".json")

    def _read(self, kind: str, key: str) -> dict | None:
        path = self._path(kind, key)
        try:
            with open(path) as fh:
                entry = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return self._drop(kind, key)
        if not isinstance(entry, dict) or entry.get("key") != key:
            return self._drop(kind, key)
        return entry

    def _drop(self, kind: str, key: str) -> dict | None:
        """Remove an entry that cannot be trusted; None, so `return self._drop(...)` reads as a miss."""
        self.dropped += 1
        try:
            os.remove(self._path(kind, key))
        except OSError:
            pass
        return None

    def _write(self, kind: str, key: str, entry: dict) -> None:
        write_json(self._path(kind, key), dict(entry, key=key), sort_keys=True, default=str)

    def artifact(self, key: str) -> dict | None:
        """{"meta", "artifact_dir", "run_id", "versions", "digest"}, if the artifact is still as saved."""
        entry = self._read("artifacts", key)
        if entry is None:
            return None
        if not isinstance(entry.get("meta"), dict):
            return self._drop("artifacts", key)
        if entry["meta"].get("status") == "saved" and artifact_digest(entry.get("artifact_dir") or "") != entry.get(
                "digest"):
            return self._drop("artifacts", key)
        return entry

    def put_artifact(self, key: str, meta: dict, artifact_dir: str, run_id: str, versions: dict | None) -> None:
        if meta.get("status") not in CACHED_SAVES:
            return
        self._write("artifacts", key, {"meta": meta, "artifact_dir": artifact_dir, "run_id": run_id,
                                       "versions": versions, "digest": artifact_digest(artifact_dir)})

    def cell(self, key: str) -> dict | None:
        """The record first computed for this cell key, as it was."""
        entry = self._read("cells", key)
        if entry is None:
            return None
        record = entry.get("record")
        if not isinstance(record, dict) or record.get("outcome") not in CACHED_OUTCOMES:
            return self._drop("cells", key)
        return entry

    # The last fingerprint seen per env spec: what a machine that has not built the env yet (a
    # planner, a CI job) assumes; the env's own listing replaces it once the env is made.
    def remembered(self, env_id: str, spec: EnvSpec) -> str | None:
        entry = self._fingerprints().get(env_id) or {}
        return entry.get("fp") if entry.get("spec") == _spec_digest(spec) else None

    def remember(self, fps: dict[str, str | None], specs: dict[str, EnvSpec]) -> None:
        data = self._fingerprints()
        data.update({e: {"spec": _spec_digest(specs[e]), "fp": fp} for e, fp in fps.items() if fp and e in specs})
        write_json(os.path.join(self.dir, "fingerprints.json"), data, indent=1, sort_keys=True)

    def _fingerprints(self) -> dict:
        try:
            with open(os.path.join(self.dir, "fingerprints.json")) as fh:
                data = json.load(fh)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def put_cell(self, key: str, record: dict) -> None:
        if record.get("outcome") in CACHED_OUTCOMES and not record.get("cached"):
            self._write("cells", key, {"record": record})
