"""tox backend: each matrix env is a generated tox env (toxfile.py), built by tox 4 with tox-uv."""

from __future__ import annotations

import os
import subprocess
import sys

from ..errors import EnvError
from ..interpreters import find_python
from .base import Backend, Launcher, LocalPython


class ToxBackend(Backend):
    """`tox run -e <id> --notest` makes `.tox/<id>`; a changed spec hash adds `--recreate`."""

    name = "tox"

    def location(self) -> str:
        work = os.environ.get("TFCOMPAT_TOX_WORKDIR") or os.path.join(self.root, ".tox")
        return os.path.join(work, self.spec.id)

    def python(self) -> str:
        return os.path.join(self.location(), "bin", "python")

    def launcher(self) -> Launcher:
        return LocalPython(self.python())

    def create(self) -> bool:
        python = find_python(self.spec.python)
        want = {"spec_hash": self.spec.spec_hash(python), "backend": self.name}
        fresh = self.recorded_state() == want and os.path.exists(self.python())
        if fresh:
            return False
        cmd = [sys.executable, "-m", "tox", "run", "-c", os.path.join(self.root, "tox.ini"),
               "-e", self.spec.id, "--notest"]
        if os.path.isdir(self.location()):
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
            proc = subprocess.run(cmd, cwd=self.root, stdout=fh, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env)
        if proc.returncode != 0:
            raise EnvError("%s: tox could not build the environment (exit %d): %s" % (
                self.spec.id, proc.returncode, _last_error(log)))
        self.record_state(want)
        return True


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
