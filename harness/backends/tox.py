"""tox backend: each matrix env is a generated tox env (toxfile.py), built by tox 4 with tox-uv."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ..errors import EnvError, TfcompatError
from ..interpreters import find_python
from ..matrix import EnvSpec
from ..resolve import Request
from .base import INSTALLED, Backend, Launcher, LocalPython, Where

# What tox 4 hands an env's commands, tox-uv's `uv pip install` among them, from the caller's
# environment (tox's `_default_pass_env`, tox-uv adds UV_*); XDG_CACHE_HOME and XDG_CONFIG_HOME are
# not passed, so that uv uses ~/.cache/uv and ~/.config/uv.
TOX_PASS_ENV = ("https_proxy", "http_proxy", "no_proxy", "LANG", "LANGUAGE", "CURL_CA_BUNDLE", "SSL_CERT_FILE",
                "REQUESTS_CA_BUNDLE", "HOME", "NETRC", "TMPDIR", "PATH")
TOX_PASS_PREFIXES = ("UV_", "PIP_")


def tox_workdir(root: str) -> str:
    return os.environ.get("TFCOMPAT_TOX_WORKDIR") or os.path.join(root, ".tox")


def installer_env(spec: EnvSpec, environ: dict | None = None) -> dict[str, str]:
    """The environment tox-uv runs `uv pip install` with for this env: what tox passes of
    `environ`, then the env's own variables (its set_env)."""
    environ = dict(os.environ if environ is None else environ)
    env = {k: v for k, v in environ.items() if k in TOX_PASS_ENV or k.startswith(TOX_PASS_PREFIXES)}
    env.update(spec.env_vars())
    env.pop("UV_PYTHON", None)  # tox-uv drops it too (the env's interpreter is given)
    return env


class ToxBackend(Backend):
    """`tox run -e <id> --notest` makes `.tox/<id>`; a recorded spec hash that differs adds `--recreate`."""

    name = "tox"

    def location(self) -> str:
        return os.path.join(tox_workdir(self.root), self.spec.id)

    def python(self) -> str:
        return os.path.join(self.location(), "bin", "python")

    def launcher(self) -> Launcher:
        return LocalPython(self.python())

    def wanted_state(self) -> dict:
        return {"spec_hash": self.spec.spec_hash(find_python(self.spec.python)), "location": self.location()}

    def present(self, recorded: dict) -> bool:
        return os.path.exists(self.python())

    def resolution_request(self, installed: dict | None = None) -> Request:
        """tox-uv's install as a resolution: the env's interpreter, tox's environment (UV_* index
        settings), and the project dir, whose uv.toml / pyproject.toml uv reads as it did there.
        A tox-uv venv is not seeded: it holds exactly what the requirements resolve to."""
        try:
            python = find_python(self.spec.python)
        except TfcompatError:
            # A machine that plans but never builds this env (a CI plan job without that Python):
            # the version's markers on this platform give the same resolution.
            python = (installed or {}).get("python") or self.spec.python
        return Request(tuple(self.spec.requirements()), python, self.root,
                       tuple(sorted(installer_env(self.spec).items())))

    def create(self) -> bool:
        want = self.wanted_state()
        recorded = self.recorded_state() or {}
        stale = recorded.get("stale")  # invalidate(): rebuilt from scratch although the spec is the same
        current = bool(recorded) and not stale and all(recorded.get(k) == v for k, v in want.items())
        # A creation that was killed (a closed terminal, kill -9: tox and uv with it) leaves a venv
        # with packages half installed that tox would take as built: its marker says to rebuild.
        marker = os.path.join(tox_workdir(self.root), ".%s.creating" % self.spec.id)
        interrupted = os.path.exists(marker)
        if current and not interrupted and os.path.exists(self.python()) and recorded.get("installed"):
            return False
        rebuilt = interrupted or not (current and os.path.exists(self.python()))
        if rebuilt:
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            with open(marker, "w") as fh:
                fh.write("tfcompat is creating this env (pid %d); if this file stays, the creation was cut short "
                         "and the next run rebuilds the env\n" % os.getpid())
            self._tox(recreate=(bool(recorded) or interrupted) and os.path.isdir(self.location()),
                      why="stale: %s" % stale if stale else "")
        self.record_state(dict(want, installed=self.list_installed()))
        if os.path.exists(marker):
            os.remove(marker)
        return rebuilt

    def list_installed(self) -> dict:
        """{"python": "3.11.7", "packages": {name: version}} as the env holds them (no TF import)."""
        proc = subprocess.run([self.python(), "-I", "-c", INSTALLED], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=120)
        try:
            return json.loads(proc.stdout)
        except ValueError:
            raise EnvError("%s: cannot list what the env holds: %s" % (
                self.spec.id, (proc.stderr.strip().splitlines() or ["no output"])[-1])) from None

    def _tox(self, recreate: bool, why: str = "") -> None:
        # With no record (a new state dir) tox itself reconciles the env it has: it reinstalls only
        # when deps or the interpreter changed. A record that differs is a spec change, a stale one
        # a drift (`why`, the log's first line): recreate.
        cmd = [sys.executable, "-m", "tox", "run", "-c", os.path.join(self.root, "tox.ini"),
               "-e", self.spec.id, "--notest"]
        if recreate:
            cmd.append("--recreate")
        if os.environ.get("TFCOMPAT_TOX_WORKDIR"):
            cmd += ["--workdir", os.environ["TFCOMPAT_TOX_WORKDIR"]]
        os.makedirs(self.log_dir, exist_ok=True)
        log = os.path.join(self.log_dir, "create-%s.log" % self.spec.id)
        env = dict(os.environ)
        env["TFCOMPAT_MATRIX"] = self.matrix_path
        for var in ("TOX_ENV_NAME", "TOX_WORK_DIR", "TOX_ENV_DIR", "VIRTUAL_ENV", "TOX_PACKAGE"):
            env.pop(var, None)
        with open(log, "w") as fh:
            if why:
                fh.write("tfcompat: rebuilding %s, %s\n" % (self.spec.id, why))
                fh.flush()
            proc = subprocess.run(cmd, cwd=self.root, stdout=fh, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env)
        if proc.returncode != 0:
            raise EnvError("%s: tox could not build the environment (exit %d): %s" % (
                self.spec.id, proc.returncode, _last_error(log)))

    @classmethod
    def listing(cls, where: Where, specs: dict[str, EnvSpec]) -> list[dict]:
        work = tox_workdir(where.root)
        out = []
        names = sorted(n for n in os.listdir(work) if os.path.isfile(os.path.join(work, n, "bin", "python"))) \
            if os.path.isdir(work) else []
        for name in names:
            if name in ("tests", "matrix", ".pkg") or name.startswith("."):
                continue  # tox.ini's own envs, not matrix envs
            # an unrecorded env was built outside this state dir: the next run lets tox reconcile it
            out.append(cls.folder_entry(where, specs, name, os.path.join(work, name)))
        return out

    @classmethod
    def remove(cls, where: Where, entry: dict) -> None:
        cls.remove_folder(where, entry)


def _last_error(log: str) -> str:
    try:
        with open(log, encoding="utf-8", errors="replace") as fh:
            lines = [ln.strip() for ln in fh if ln.strip()]
    except OSError:
        return "no log"
    for ln in reversed(lines):
        low = ln.lower()
        if "error" in low or "no solution" in low or "because" in low:
            return ln[:400]
    return lines[-1][:400] if lines else "no output"
