"""What an env's requirements would install today, without installing: uv's resolver
(`uv pip compile`) run with the settings the env's installer used, so that an env just built shows
no drift and a new release of an unpinned dependency (h5py, protobuf, numpy) does.

- `Request`: the requirements, the interpreter (or Python version) and the installer's settings;
  each backend makes its own (`Backend.resolution_request`).
- `resolve(request)` / `resolve_many({env: request})` -> `Resolution`: {name: version}, or unknown
  with a one-line reason (no index, no solution, no uv, a time-out); never raises for those.
  Answers are kept per process.
- `drift(installed, resolved)` -> [(name, installed version or None, resolved version or None)];
  `describe(change)` -> "h5py 3.14.0 -> 3.15.0", "+pkg 1.0", "-pkg 1.0".

Names are compared in their PEP 503 form (`normalise`): uv prints that form, the env listing
(`backends.base.INSTALLED`) keeps dots ("ruamel.yaml").
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from .errors import TfcompatError

if TYPE_CHECKING:
    from .backends.base import Backend

TIMEOUT_S = 300.0  # one resolution; a cold uv cache and a slow index take tens of seconds
# What the installer puts in every venv it makes whatever the requirements say: never a requirement
# of a TF env, nothing a check depends on. Left out of drift (when nothing asks for it) and of the
# env fingerprint (harness/cache.py), so a Docker env (`python -m venv` seeds pip) and the
# resolution of its requirements agree.
SEEDS = frozenset({"pip"})

Change = tuple[str, Optional[str], Optional[str]]  # (name, installed version, resolved version)


def normalise(name: str) -> str:
    """PEP 503's form of a distribution name: lower case, runs of `-_.` as one `-` (for names the
    env listing gives, only dots change: it already lowercases and turns `_` into `-`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Request:
    """One resolution: the requirements, for which Python, with which installer settings."""

    requirements: tuple[str, ...]
    python: str  # an interpreter's path (its markers), or a version "3.11" / "3.11.7" (--python-version)
    cwd: str  # uv reads uv.toml / pyproject.toml [tool.uv] from here up, as the installer did from there
    env: tuple[tuple[str, str], ...] = ()  # the whole environment uv runs with (UV_* index settings)
    args: tuple[str, ...] = ()  # more `uv pip compile` options (a Docker build's pip index settings)
    prefer: tuple[tuple[str, str], ...] = ()  # versions kept where they satisfy (a venv's seeded setuptools)


@dataclass(frozen=True)
class Resolution:
    """{name: version} the requirements resolve to now (names in PEP 503 form), or None when
    unknown, with `reason` (one line) saying why."""

    packages: dict[str, str] | None
    reason: str = ""
    seconds: float = 0.0

    @property
    def known(self) -> bool:
        return self.packages is not None


_memo: dict[tuple, Resolution] = {}
_memo_lock = threading.Lock()


def forget() -> None:
    """Drop this process's resolutions (tests add releases to their index between two)."""
    with _memo_lock:
        _memo.clear()


def resolve(request: Request, timeout: float = TIMEOUT_S) -> Resolution:
    """The versions `request.requirements` resolve to today (once per process per request)."""
    key = (request, timeout)
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    result = _compile(request, timeout)
    with _memo_lock:
        _memo.setdefault(key, result)
        return _memo[key]


def resolve_many(requests: Mapping[str, Request], jobs: int = 4, timeout: float = TIMEOUT_S) -> dict[str, Resolution]:
    """`resolve` for every request at once (threads; the same request twice is resolved once)."""
    unique = list(dict.fromkeys(requests.values()))
    if not unique:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(unique)))) as pool:
        done = dict(zip(unique, pool.map(lambda r: resolve(r, timeout), unique)))
    return {name: done[request] for name, request in requests.items()}


def resolve_backends(backends: Mapping[str, Backend], installed: Mapping[str, dict | None] | None = None,
                     jobs: int = 4, timeout: float = TIMEOUT_S) -> dict[str, Resolution]:
    """Each backend's env resolved as its installer would now. `installed` (env -> the env-state
    record's `installed`) lets a backend hold the versions its venv was seeded with. Envs whose
    backend does not resolve (TF.js: one exact npm pin) are left out; a request that cannot be made
    (no interpreter) is an unknown resolution."""
    requests: dict[str, Request] = {}
    out: dict[str, Resolution] = {}
    for env, backend in backends.items():
        try:
            request = backend.resolution_request((installed or {}).get(env))
        except TfcompatError as exc:
            out[env] = Resolution(None, _one_line(str(exc)))
            continue
        if request is not None:
            requests[env] = request
    out.update(resolve_many(requests, jobs=jobs, timeout=timeout))
    return out


def drift(installed: Mapping[str, str], resolved: Mapping[str, str]) -> list[Change]:
    """What differs between the packages an env holds and those its requirements resolve to, by
    name: (name, installed version or None, resolved version or None). Names compare in PEP 503
    form; a seed (pip) that the resolution does not name is not drift."""
    have = {normalise(n): v for n, v in installed.items()}
    want = {normalise(n): v for n, v in resolved.items()}
    out: list[Change] = []
    for name in sorted(have.keys() | want.keys()):
        before, after = have.get(name), want.get(name)
        if before == after or (after is None and name in SEEDS):
            continue
        out.append((name, before, after))
    return out


def describe(change: Change) -> str:
    """`h5py 3.14.0 -> 3.15.0`; `+pkg 1.0` (the resolution adds it); `-pkg 1.0` (it drops it)."""
    name, before, after = change
    if before is None:
        return "+%s %s" % (name, after)
    if after is None:
        return "-%s %s" % (name, before)
    return "%s %s -> %s" % (name, before, after)


def summary(changes: list[Change], limit: int = 3) -> str:
    """One line for a log or an env-state record: the first `limit` changes, then how many more."""
    text = ", ".join(describe(c) for c in changes[:limit])
    return text + (" (+%d more)" % (len(changes) - limit) if len(changes) > limit else "")


# -- running uv -------------------------------------------------------------------------------------
_PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def uv_binary() -> str:
    """The uv of the `uv` package (the one tox-uv drives); TfcompatError when it is missing. Found
    once per process, under a lock: its lookup reads `sysconfig`, whose first use is not thread-safe
    (two threads at once can see a half-made config and fail with a TypeError)."""
    global _uv
    with _uv_lock:
        if _uv is None:
            try:
                import uv

                _uv = uv.find_uv_bin()
            except (ImportError, FileNotFoundError) as exc:
                raise TfcompatError("uv not found (%s); pip install uv" % _one_line(
                    str(exc) or type(exc).__name__)) from None
        return _uv


_uv: str | None = None
_uv_lock = threading.Lock()


def _compile(request: Request, timeout: float) -> Resolution:
    started = time.monotonic()

    def unknown(reason: str) -> Resolution:
        return Resolution(None, _one_line(reason), time.monotonic() - started)

    try:
        uv = uv_binary()
    except TfcompatError as exc:
        return unknown(str(exc))
    python = ["--python", request.python] if os.path.isabs(request.python) else ["--python-version", request.python]
    with tempfile.TemporaryDirectory(prefix="tfcompat-resolve-") as tmp:
        reqs = os.path.join(tmp, "requirements.in")
        out = os.path.join(tmp, "requirements.txt")
        with open(reqs, "w") as fh:
            fh.write("".join(r + "\n" for r in request.requirements))
        # An existing output file's pins are preferences: uv keeps them where they satisfy, as pip
        # keeps what a venv was seeded with.
        with open(out, "w") as fh:
            fh.write("".join("%s==%s\n" % kv for kv in request.prefer))
        cmd = [uv, "pip", "compile", *python, "--no-header", "--no-annotate", "--quiet", *request.args,
               "-o", out, reqs]
        try:
            proc = subprocess.run(cmd, cwd=request.cwd, env=dict(request.env), capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL, timeout=timeout)
        except subprocess.TimeoutExpired:
            return unknown("uv pip compile took over %.0fs (is the package index reachable?)" % timeout)
        except OSError as exc:
            return unknown("cannot run uv: %s" % exc)
        if proc.returncode != 0:
            return unknown(_uv_error(proc.stderr) or "uv pip compile failed (exit %d)" % proc.returncode)
        with open(out) as fh:
            lines = [ln.strip() for ln in fh if ln.strip() and not ln.lstrip().startswith(("#", "-"))]
    packages = {}
    for line in lines:
        match = _PINNED.match(line)
        if match is None:
            return unknown("resolved %r, which is not a name==version pin" % line[:100])
        packages[normalise(match.group(1))] = match.group(2)
    return Resolution(packages, "", time.monotonic() - started)


def _uv_error(stderr: str) -> str:
    """uv's error as one line: its `error:` line and the first and last `cause:` below it (the last
    is the root: "Connection refused", "no version of h5py>=9")."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    heads = [i for i, ln in enumerate(lines) if ln.startswith("error:")]
    if not heads:
        return lines[-1] if lines else ""
    first = heads[-1]
    text = lines[first][len("error:"):].strip()
    causes = [ln[len("cause:"):].strip() for ln in lines[first + 1:] if ln.startswith("cause:")]
    for cause in dict.fromkeys(causes[:1] + causes[-1:]):
        text += ": " + cause
    if not causes and first + 1 < len(lines):
        text += ": " + " ".join(lines[first + 1:first + 3])  # "No solution found" explains itself below
    return text


def _one_line(text: str, limit: int = 400) -> str:
    return " ".join(text.split())[:limit]
