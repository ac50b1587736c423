"""The result cache (`.tfcompat/cache/`): artifacts and cell attempts kept across runs, keyed by all
a result depends on, so a run computes only what changed (docs/DESIGN.md, "Trust rules").

- env fingerprint: the resolved spec (requirements, env vars) and what is installed, as listed in
  the env (Python version and every distribution's version); the backend is not part of it, so the
  same packages under tox or Docker share results;
- code digest: the bytes of the code that makes artifacts and attempts (the worker, the JS worker,
  the journal reader), not a version string someone must remember to bump;
- artifact key: producer fingerprint, fixture closure hash, format, code digest;
- cell key: producer and consumer fingerprints, fixture closure hash, format, code digest, the
  check settings (tolerances, timeout) and the digest of the artifact's bytes it loaded.

A cell entry keeps the attempts, never a verdict to replay: every assembly judges them again with
today's judging code (harness/records.py, verdict.py, outcomes.py), so a judging fix reaches every
cached cell without TensorFlow. Artifacts are kept like gold files: an entry points at the artifact
dir of the run that saved it (runs are never rewritten), so a new consumer reads it without the
producer env. An entry that does not parse, or whose artifact's bytes moved, is dropped and recomputed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import re

from .matrix import EnvSpec
from .outcomes import CACHEABLE
from .resolve import SEEDS, normalise
from .results import write_json

# Outcomes worth keeping are the outcome table's `cacheable` ones (harness/outcomes.py).
CACHED_OUTCOMES = CACHEABLE
CACHED_SAVES = {"saved", "not-applicable", "save-error"}
HARNESS = os.path.dirname(os.path.abspath(__file__))
# The code whose bytes make artifacts and attempts: any change to it changes every key.
ATTEMPT_CODE = ("worker", "worker_js", "process.py")
# The code that turns attempts into outcomes: cached attempts are judged by it at every assembly,
# so it is recorded with each run (run.json `code`) but is no part of a key.
JUDGING_CODE = ("verdict.py", "records.py", "outcomes.py", "results.py")


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


def code_digest(parts: tuple[str, ...] = ATTEMPT_CODE, root: str = HARNESS) -> str:
    """sha256 of every source file under `parts` (files or folders of `root`), by relative path.
    The running harness's own code is read once per process."""
    return _own_code_digest(parts) if root == HARNESS else _code_digest(parts, root)


@functools.cache
def _own_code_digest(parts: tuple[str, ...]) -> str:
    return _code_digest(parts, HARNESS)


def _code_digest(parts: tuple[str, ...], root: str) -> str:
    files = {}
    for part in parts:
        for path in _files(os.path.join(root, part)):
            if path.endswith((".py", ".js", ".json")):
                files[os.path.relpath(path, root)] = _file_sha(path)
    return _digest(files)


def _files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    out = []
    for folder, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "node_modules") and not d.startswith("."))
        out += [os.path.join(folder, n) for n in sorted(names)]
    return out


def _file_sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_REQUIRES = re.compile(r"""require\(\s*['"]\./([\w.-]+\.js)['"]\s*\)""")
_DATA_NAME = re.compile(r"^[\w. /-]{1,200}$")


def fixture_hash(path: str) -> str:
    """The fixture's whole unit: its module, the modules and packages it imports from its folder
    (transitively, relative imports too), the files and folders its code names by a string literal
    relative to a module's folder (a JSON table beside it), and its TF.js twin with the `.js` files
    that requires. What a fixture reads under a name built at run time is not seen: name it literally."""
    root = os.path.dirname(os.path.abspath(path))
    seen: dict[str, str] = {}
    todo = [os.path.abspath(path), os.path.splitext(os.path.abspath(path))[0] + ".js"]
    while todo:
        current = todo.pop()
        if current in seen or not os.path.isfile(current) or not _inside(current, root):
            continue
        with open(current, "rb") as fh:
            data = fh.read()
        seen[current] = hashlib.sha256(data).hexdigest()
        here = os.path.dirname(current)
        if current.endswith(".js"):
            todo += [os.path.join(here, n) for n in _REQUIRES.findall(data.decode("utf-8", "replace"))]
        elif current.endswith(".py"):
            todo += _python_deps(data, current, root)
    return _digest({os.path.relpath(p, root): sha for p, sha in sorted(seen.items())})


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([os.path.abspath(path), root]) == root


def _python_deps(source: bytes, path: str, root: str) -> list[str]:
    """Files a fixture module depends on: imported modules and packages under `root`, and data
    files or folders named by string literals."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    here = os.path.dirname(path)
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out += _module_files(root, alias.name.split("."))
        elif isinstance(node, ast.ImportFrom):
            base = here
            for _ in range(max(0, node.level - 1)):
                base = os.path.dirname(base)
            start = base if node.level else root
            dotted = (node.module or "").split(".") if node.module else []
            out += _module_files(start, dotted)
            for alias in node.names:  # `from pkg import mod` may name a submodule
                out += _module_files(start, dotted + [alias.name])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _DATA_NAME.match(node.value):
            for base in {here, root}:
                target = os.path.normpath(os.path.join(base, node.value))
                if target != base and _inside(target, root):
                    out += _files(target) if os.path.isdir(target) else [target] if os.path.isfile(target) else []
    return out


def _module_files(start: str, dotted: list[str]) -> list[str]:
    """The files of a dotted module under `start`: each package's __init__.py on the way, and the
    module itself (a .py file or a package)."""
    out = []
    folder = start
    for name in (n for n in dotted if n):
        out += [os.path.join(folder, name + ".py"), os.path.join(folder, name, "__init__.py")]
        folder = os.path.join(folder, name)
    return out


def artifact_key(producer_fp: str, fixture_hash_: str, fmt: str, code: str | None = None) -> str:
    return _digest(["artifact", producer_fp, fixture_hash_, fmt, code or code_digest()])


def cell_key(producer_fp: str, consumer_fp: str, fixture_hash_: str, fmt: str, tolerances: dict,
             timeout: float, artifact: str, code: str | None = None) -> str:
    """`artifact`: the digest of the artifact the cell loads (`artifact_digest`): a freshly saved
    file never inherits the cells of the one it replaced."""
    return _digest(["cell", producer_fp, consumer_fp, fixture_hash_, fmt, code or code_digest(), tolerances,
                    timeout, artifact])


def artifact_digest(artifact_dir: str) -> str | None:
    """The bytes of every file under the artifact dir, by relative path, and of the Hub module dir
    its meta names (formats that refer to the module by path load it too): what a check loads."""
    if not os.path.isdir(artifact_dir):
        return None
    files = {os.path.relpath(p, artifact_dir): _file_sha(p) for p in _files(artifact_dir)}
    module = _module_dir(artifact_dir)
    if module and os.path.isdir(module):
        files.update({"<module>/" + os.path.relpath(p, module): _file_sha(p) for p in _files(module)})
    return _digest(files)


def _module_dir(artifact_dir: str) -> str | None:
    try:
        with open(os.path.join(artifact_dir, "meta.json")) as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return None
    module = meta.get("module_dir") if isinstance(meta, dict) else None
    return module if isinstance(module, str) else None


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
        """{"record"}: the record first computed for this cell key, whose `attempts` the caller
        judges again (its outcome is what the judging code of that run said, not a verdict to replay)."""
        entry = self._read("cells", key)
        if entry is None:
            return None
        record = entry.get("record")
        if not isinstance(record, dict) or not isinstance(record.get("attempts"), list) or not record["attempts"]:
            return self._drop("cells", key)
        return entry

    # The last fingerprint seen per env spec: what a machine that has not built the env yet (a
    # planner, a CI job) assumes; the env's own listing replaces it once the env is made.
    def remembered(self, env_id: str, spec: EnvSpec) -> str | None:
        entry = self._fingerprints().get(env_id) or {}
        return entry.get("fp") if entry.get("spec") == _spec_digest(spec) else None

    def remembered_python(self, env_id: str, spec: EnvSpec) -> str | None:
        """The Python X.Y.Z the env had when last seen (with the resolution of its requirements, the
        fingerprint of an env not built here)."""
        entry = self._fingerprints().get(env_id) or {}
        return entry.get("python") if entry.get("spec") == _spec_digest(spec) else None

    def remember(self, fps: dict[str, str | None], specs: dict[str, EnvSpec],
                 pythons: dict[str, str | None] | None = None) -> None:
        data = self._fingerprints()
        data.update({e: {"spec": _spec_digest(specs[e]), "fp": fp, "python": (pythons or {}).get(e)}
                     for e, fp in fps.items() if fp and e in specs})
        write_json(os.path.join(self.dir, "fingerprints.json"), data, indent=1, sort_keys=True)

    def _fingerprints(self) -> dict:
        try:
            with open(os.path.join(self.dir, "fingerprints.json")) as fh:
                data = json.load(fh)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def put_cell(self, key: str, record: dict) -> None:
        """File a cell computed by this run: a cacheable outcome reached by attempts (never a
        not-applicable decided at assembly, never a record replayed from the cache)."""
        if record.get("outcome") in CACHED_OUTCOMES and not record.get("cached") and record.get("attempts"):
            self._write("cells", key, {"record": record})
