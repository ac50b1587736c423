"""Node backend: a TF.js env is a folder where npm installed one pinned @tensorflow/tfjs (the pure
JavaScript package: no native add-on, no binary download); its worker is harness/worker_js/worker.js."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from functools import cache

from ..errors import BackendUnavailable, EnvError
from ..matrix import EnvSpec
from .base import Backend, Launch, Launcher, LocalPython, Where

WORKER_JS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "worker_js", "worker.js")
PACKAGE = "@tensorflow/tfjs"
MIN_NODE = 14  # the oldest Node @tensorflow/tfjs 3.x and 4.x support


def node_workdir(root: str) -> str:
    return os.environ.get("TFCOMPAT_NODE_WORKDIR") or os.path.join(root, ".tfjs")


def node_binary() -> str | None:
    return shutil.which("node") or shutil.which("nodejs")


class LocalNode(LocalPython):
    """Node on this host, in its own session, resolving packages from the env's node_modules."""

    def __init__(self, node: str, node_modules: str) -> None:
        super().__init__(node)
        self.node_modules = node_modules

    def argv(self, script: str, job: str) -> tuple[str, ...]:
        return (script, job)

    def launch(self, launch: Launch):
        env = dict(launch.env, NODE_PATH=self.node_modules)
        return super().launch(Launch(args=launch.args, cwd=launch.cwd, log=launch.log, env=env,
                                     offline=launch.offline, mounts=launch.mounts))


class NodeBackend(Backend):
    """`npm install --prefix .tfjs/<id> @tensorflow/tfjs@<version>`; a recorded spec hash that differs
    (another version, another Node) makes the folder again."""

    name = "node"

    def location(self) -> str:
        return os.path.join(node_workdir(self.root), self.spec.id)

    def worker_main(self) -> str:
        return WORKER_JS

    def launcher(self) -> Launcher:
        node = node_binary()
        if node is None:
            raise EnvError("%s: no node on PATH; install Debian's nodejs" % self.spec.id)
        return LocalNode(node, os.path.join(self.location(), "node_modules"))

    def current_state(self) -> dict | None:
        """The env-state record, its `installed` also naming the JS worker's source (a changed worker
        is a changed env for the result cache, as a Python worker change bumps its version)."""
        state = super().current_state()
        if state is None or not state.get("installed"):
            return state
        installed = dict(state["installed"])
        installed["packages"] = dict(installed.get("packages") or {}, **{"tfcompat-worker.js": _worker_digest()})
        return dict(state, installed=installed)

    def wanted_state(self) -> dict:
        return {"spec_hash": self.spec.spec_hash(_node_identity()), "location": self.location()}

    def present(self, recorded: dict) -> bool:
        return self._installed_version() == self.spec.tfjs

    def create(self) -> bool:
        want = self.wanted_state()
        recorded = self.recorded_state() or {}
        marker = os.path.join(node_workdir(self.root), ".%s.creating" % self.spec.id)
        stale = recorded.get("stale")  # invalidate(): installed again although the spec is the same
        current = bool(recorded) and not stale and all(recorded.get(k) == v for k, v in want.items())
        # With no record (a new state dir) a complete folder of the right version is the env: npm
        # installs the same pure-JS files whatever Node runs them.
        if (current or not recorded) and not os.path.exists(marker) and self._installed_version() == self.spec.tfjs:
            if not current:
                self.record_state(dict(want, installed=self.list_installed()))
            return False
        os.makedirs(node_workdir(self.root), exist_ok=True)
        with open(marker, "w") as fh:
            fh.write("tfcompat is creating this env (pid %d)\n" % os.getpid())
        shutil.rmtree(self.location(), ignore_errors=True)
        os.makedirs(self.location())
        with open(os.path.join(self.location(), "package.json"), "w") as fh:
            json.dump({"name": "tfcompat-env", "private": True, "description": self.spec.describe()}, fh)
        self._npm(why="stale: %s" % stale if stale else "")
        got = self._installed_version()
        if got != self.spec.tfjs:
            raise EnvError("%s: npm installed %s %s, not %s" % (self.spec.id, PACKAGE, got, self.spec.tfjs))
        self.record_state(dict(want, installed=self.list_installed()))
        os.remove(marker)
        return True

    def list_installed(self) -> dict:
        """{"python": None, "packages": {name: version, "node": version}} of the env's folder."""
        packages = {}
        top = os.path.join(self.location(), "node_modules", "@tensorflow")
        for name in sorted(os.listdir(top)) if os.path.isdir(top) else []:
            try:
                with open(os.path.join(top, name, "package.json")) as fh:
                    packages["@tensorflow/" + name] = json.load(fh)["version"]
            except (OSError, ValueError, KeyError):
                continue
        packages["node"] = _node_identity().split(" ")[-1]  # the runtime is part of what the env is
        return {"python": None, "packages": packages}

    def _installed_version(self) -> str | None:
        return self.list_installed()["packages"].get(PACKAGE)

    def _npm(self, why: str = "") -> None:
        npm = shutil.which("npm")
        if npm is None:
            raise EnvError("%s: no npm on PATH; install Debian's npm" % self.spec.id)
        os.makedirs(self.log_dir, exist_ok=True)
        log = os.path.join(self.log_dir, "create-%s.log" % self.spec.id)
        env = dict(os.environ)
        # The registry is reached through a TLS proxy whose CA is in the system bundle.
        bundle = "/etc/ssl/certs/ca-certificates.crt"
        if os.path.exists(bundle):
            env.setdefault("NODE_EXTRA_CA_CERTS", bundle)
        cmd = [npm, "install", "--prefix", self.location(), "--no-audit", "--no-fund", "--no-save",
               "--loglevel=error", "%s@%s" % (PACKAGE, self.spec.tfjs)]
        with open(log, "w") as fh:
            if why:
                fh.write("tfcompat: reinstalling %s, %s\n" % (self.spec.id, why))
            fh.write("$ %s\n" % " ".join(cmd))
            fh.flush()
            proc = subprocess.run(cmd, cwd=self.location(), stdout=fh, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, timeout=1800)
        if proc.returncode != 0:
            with open(log, encoding="utf-8", errors="replace") as fh:
                lines = [ln.strip() for ln in fh if ln.strip()]
            err = next((ln for ln in reversed(lines) if "ERR" in ln), lines[-1] if lines else "no output")
            raise EnvError("%s: npm could not install %s@%s (exit %d): %s" % (
                self.spec.id, PACKAGE, self.spec.tfjs, proc.returncode, err[:300]))

    @classmethod
    def preflight(cls) -> None:
        version = _node_identity()
        if not version:
            raise BackendUnavailable("node: no Node.js on PATH; a kind: tfjs env needs it (apt-get install nodejs npm)")
        major = int(version.split(" ")[-1].lstrip("v").split(".")[0] or 0)
        if major < MIN_NODE:
            raise BackendUnavailable("node: Node %s is too old for @tensorflow/tfjs; install Node %d or newer"
                                     % (version, MIN_NODE))

    @classmethod
    def listing(cls, where: Where, specs: dict[str, EnvSpec]) -> list[dict]:
        work = node_workdir(where.root)
        out = []
        for name in sorted(os.listdir(work)) if os.path.isdir(work) else []:
            if name.startswith(".") or not os.path.isdir(os.path.join(work, name)):
                continue
            out.append(cls.folder_entry(where, specs, name, os.path.join(work, name)))
        return out

    @classmethod
    def remove(cls, where: Where, entry: dict) -> None:
        cls.remove_folder(where, entry)


@cache
def _node_identity() -> str:
    """'<path> v20.1.0': which Node runs the env's worker (part of the env's spec hash); asked once
    per process (create(), current_state() and list_installed() all need it)."""
    node = node_binary()
    if node is None:
        return ""
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return "%s %s" % (os.path.realpath(node), version)


def _worker_digest() -> str:
    with open(WORKER_JS, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:16]
