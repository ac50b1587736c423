"""Find an absolute interpreter path for a Python version ("3.11").

Standard library only: toxfile.py imports this inside tox's own process.
uv and tox do not look in pyenv by themselves, and uv would try to download a
missing interpreter, so the harness always hands them an absolute path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache

from harness.errors import InterpreterNotFound

_VERSION_RE = re.compile(r"^\d+\.\d+$")


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str | None:
    """stdout of `cmd` stripped, or None when it cannot run or fails."""
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=30, env=env, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip()


def _reports_version(path: str, version: str) -> bool:
    """Whether the interpreter at `path` runs and is `version` (major.minor)."""
    out = _run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    return out == version


def _from_pyenv(version: str) -> str | None:
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return None
    # `pyenv prefix 3.11` resolves the newest installed 3.11.x; it may print
    # several prefixes (one per line) when given several versions.
    out = _run([pyenv, "prefix", version])
    if not out:
        return None
    candidate = os.path.join(out.splitlines()[0], "bin", f"python{version}")
    if os.access(candidate, os.X_OK) and _reports_version(candidate, version):
        return candidate
    return None


def _from_path(version: str) -> str | None:
    found = shutil.which(f"python{version}")
    if found is None:
        return None
    found = os.path.abspath(found)
    # A pyenv shim exists for every version pyenv knows, installed or not.
    return found if _reports_version(found, version) else None


def _from_uv(version: str) -> str | None:
    uv = shutil.which("uv")
    if uv is None:
        return None
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never")
    out = _run([uv, "python", "find", "--no-project", version], env=env)
    if not out:
        return None
    candidate = out.splitlines()[-1]
    if os.path.isabs(candidate) and _reports_version(candidate, version):
        return candidate
    return None


@cache
def find_python(version: str) -> str:
    """Return an absolute path to a CPython `version` ("3.11") interpreter.

    Looks in pyenv (`pyenv prefix`), then `python<version>` on PATH, then
    `uv python find` (never downloading). Results are cached per version.
    Raises InterpreterNotFound with one line saying how to provide it.
    """
    if not _VERSION_RE.match(version):
        raise InterpreterNotFound(
            f"python {version!r} is not a major.minor version such as 3.11"
        )
    for finder in (_from_pyenv, _from_path, _from_uv):
        path = finder(version)
        if path:
            return path
    raise InterpreterNotFound(
        f"no Python {version} interpreter found (looked in pyenv, PATH, uv); "
        f"install one with `pyenv install {version}` or `uv python install {version}`, "
        f"or put python{version} on PATH"
    )
