"""Docker backend: one image per env spec, built from a Jinja2 Dockerfile by the engine that
DOCKER_HOST names (else the default socket); every worker runs in its own container with no
network, the run dir and the worker bound at their own absolute paths.

Binding each path at itself is the one mapping under which a path written into an artifact (a
Hub module's handle, a checkpoint's prefix) means the same file in every container and on the host.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading

from ..envstate import EnvStates
from ..errors import BackendUnavailable, EnvError
from ..matrix import EnvSpec
from ..resolve import Request
from .base import INSTALLED, Backend, Launch, Launcher, Where
from .build_secrets import BuildSecrets, pip_settings

REPOSITORY = "tfcompat-env"
TEMPLATE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates", "Dockerfile.j2")
VENV_PYTHON = "/opt/venv/bin/python"
LABEL = "tfcompat."  # label prefix: tfcompat.env, tfcompat.spec_hash, tfcompat.run

# uv settings a pip build does not read: left out of its resolution (how uv fetches stays).
_UV_RESOLUTION_VARS = ("UV_CONSTRAINT", "UV_DEFAULT_INDEX", "UV_EXCLUDE_NEWER", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS",
                       "UV_INDEX", "UV_INDEX_STRATEGY", "UV_INDEX_URL", "UV_NO_INDEX", "UV_OVERRIDE", "UV_PRERELEASE",
                       "UV_RESOLUTION", "UV_TORCH_BACKEND", "UV_PYTHON", "UV_CONFIG_FILE")
# Runs first in the container: points stdout/stderr at the log file in the bound run dir (a real
# file, which the worker reads back for TF's native log lines), then becomes the worker.
TRAMPOLINE = ("import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644); "
              "os.dup2(fd, 1); os.dup2(fd, 2); os.execv(sys.executable, [sys.executable] + sys.argv[2:])")


def venv_seeds(python: str) -> tuple[str, ...]:
    """What `python -m venv` puts in the image's venv before `pip install -r` (ensurepip: pip, and
    setuptools before Python 3.12). pip keeps a seed that satisfies the requirements, so the
    resolution prefers the listed versions of these (and of no other package: a fresh build takes
    the newest of the rest)."""
    parts = tuple(int(p) for p in python.split(".")[:2] if p.isdigit())
    return ("pip", "setuptools") if parts < (3, 12) else ("pip",)


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def unreachable(exc: BaseException | None = None) -> str:
    why = " (%s)" % _short(exc) if exc is not None else ""
    return "docker: cannot reach the engine at %s%s; start dockerd or use the tox backend" % (engine_address(), why)


def client():
    """A Docker SDK client for the engine DOCKER_HOST names; BackendUnavailable when it does not answer."""
    import docker

    try:
        c = docker.from_env(timeout=600)
        c.ping()
    except Exception as exc:  # the SDK raises DockerException, requests' and OS errors alike
        raise BackendUnavailable(unreachable(exc)) from None
    return c


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:200]


class DockerBackend(Backend):
    """`create()` builds `tfcompat-env:<id>-<hash12>` unless an image with that spec hash exists."""

    name = "docker"

    def __init__(self, spec: EnvSpec, where: Where) -> None:
        super().__init__(spec, where)
        self.image: str | None = None

    @property
    def options(self) -> dict:
        return self.spec.backend if self.spec.backend.get("name") == self.name else {}

    def base_image(self) -> str:
        return self.options.get("base_image") or "python:%s-slim" % self.spec.python

    def dockerfile(self) -> str:
        import jinja2

        with open(TEMPLATE, encoding="utf-8") as fh:
            template = jinja2.Template(fh.read(), keep_trailing_newline=True)
        return template.render(env_id=self.spec.id, describe=self.spec.describe(), base_image=self.base_image(),
                               python=self.spec.python, build_args=sorted(self.options.get("build_args", {})))

    def identity(self, base_id: str) -> str:
        """What the interpreter is to this backend: the base image (by id), the build args and the
        Dockerfile as rendered. Goes into the spec hash."""
        return json.dumps({"base_image": self.base_image(), "base_id": base_id,
                           "build_args": self.options.get("build_args", {}),
                           "dockerfile": hashlib.sha256(self.dockerfile().encode()).hexdigest()}, sort_keys=True)

    def wanted(self, engine) -> tuple[str, str]:
        """(spec hash, image tag) this spec asks for now."""
        base = self.base_image()
        try:
            base_id = engine.images.get(base).id
        except Exception as exc:
            if not _not_found(exc):
                raise EnvError("%s: %s" % (self.spec.id, unreachable(exc))) from None
            try:
                base_id = engine.images.pull(base).id
            except Exception as pull_exc:
                raise EnvError("%s: docker: base image %r is not on the engine and could not be pulled (%s); "
                               "pull or build it, or set backend.docker.base_image" % (
                                   self.spec.id, base, _short(pull_exc))) from None
        spec_hash = self.spec.spec_hash(self.identity(base_id))
        return spec_hash, "%s:%s-%s" % (REPOSITORY, self.spec.id, spec_hash[:12])

    def wanted_state(self) -> dict:
        try:
            spec_hash, tag = self.wanted(client())
        except BackendUnavailable as exc:
            raise EnvError("%s: %s" % (self.spec.id, exc)) from None
        return {"spec_hash": spec_hash, "image": tag, "base_image": self.base_image()}

    def present(self, recorded: dict) -> bool:
        image = _image(client(), recorded.get("image") or "")
        return image is not None and image.id == recorded.get("image_id", image.id)

    def resolution_request(self, installed: dict | None = None) -> Request:
        """The image's `pip install -r` as a resolution: the pip settings a build is handed (index
        URLs, trusted hosts, CA), pip's choice of the best version across indexes, no uv config,
        the image's Python version (from its listing, else the spec's), and the versions its venv
        was seeded with preferred where they satisfy, as pip keeps them. Not the engine's platform
        tags: the host's are used."""
        settings = pip_settings()
        args = ["--no-config", "--index-strategy", "unsafe-best-match"]
        urls = settings.get("index-url", "").split()
        if urls:
            args += ["--index-url", urls[0]]
        for url in urls[1:] + settings.get("extra-index-url", "").split():
            args += ["--extra-index-url", url]
        for host in settings.get("trusted-host", "").split():
            args += ["--allow-insecure-host", host]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in _UV_RESOLUTION_VARS}
        env["SSL_CERT_FILE"] = settings["cert"]
        packages = (installed or {}).get("packages") or {}
        python = (installed or {}).get("python") or self.spec.python
        prefer = tuple((name, packages[name]) for name in venv_seeds(python) if packages.get(name))
        return Request(tuple(self.spec.requirements()), python, self.root, tuple(sorted(env.items())), tuple(args),
                       prefer)

    def create(self) -> bool:
        try:
            engine = client()
        except BackendUnavailable as exc:
            raise EnvError("%s: %s" % (self.spec.id, exc)) from None
        spec_hash, tag = self.wanted(engine)
        want = {"spec_hash": spec_hash, "image": tag, "base_image": self.base_image()}
        self.image = tag
        existing = _image(engine, tag)
        recorded = self.recorded_state() or {}
        stale = recorded.get("stale")  # invalidate(): built again, past the build cache, though the spec is the same
        if existing is not None and existing.labels.get(LABEL + "spec_hash") == spec_hash and not stale:
            if recorded.get("image_id") == existing.id and recorded.get("installed"):
                return False
            self.record_state(dict(want, image_id=existing.id, installed=self.list_installed(engine, tag)))
            return False
        image_id = self._build(engine, tag, spec_hash, why="stale: %s" % stale if stale else "")
        self.record_state(dict(want, image_id=image_id, installed=self.list_installed(engine, tag)))
        if existing is not None and existing.id != image_id:
            try:
                engine.images.remove(existing.id)  # the image the tag left: nothing names it now
            except Exception:
                pass  # another tag or a container still uses it
        return True

    def list_installed(self, engine, tag: str) -> dict:
        """{"python", "packages"} as the image holds them, from a short container with no network."""
        try:
            out = engine.containers.run(tag, [VENV_PYTHON, "-I", "-c", INSTALLED], network_mode="none",
                                        remove=True, stdout=True, stderr=False)
            return json.loads(out)
        except Exception as exc:
            raise EnvError("%s: cannot list what image %s holds: %s" % (self.spec.id, tag, _short(exc))) from None

    def _build(self, engine, tag: str, spec_hash: str, why: str = "") -> str:
        """Build the image; `why` (a drift) also skips the build cache, whose pip layer would
        install what it installed before."""
        os.makedirs(self.log_dir, exist_ok=True)
        log = os.path.join(self.log_dir, "create-%s.log" % self.spec.id)
        labels = {LABEL + "env": self.spec.id, LABEL + "spec_hash": spec_hash, LABEL + "spec": self.spec.describe(),
                  LABEL + "base_image": self.base_image()}
        context = _context({"Dockerfile": self.dockerfile(),
                            "requirements.txt": "\n".join(self.spec.requirements()) + "\n"})
        image_id = None
        last: list[str] = []
        with open(log, "w") as fh, BuildSecrets(pip_settings()) as secrets_url:
            if why:
                fh.write("tfcompat: rebuilding %s, %s\n" % (self.spec.id, why))
            try:
                # Builds reach the index through the host's network (never the default bridge);
                # the checks that run in the image later have none.
                stream = engine.api.build(fileobj=context, custom_context=True, tag=tag, labels=labels, rm=True,
                                          forcerm=True, network_mode="host", decode=True, nocache=bool(why),
                                          buildargs={"TFCOMPAT_SECRETS_URL": secrets_url,
                                                     **self.options.get("build_args", {})})
                for chunk in stream:
                    text = chunk.get("stream") or chunk.get("status") or ""
                    if text:
                        fh.write(text if text.endswith("\n") else text + "\n")
                        last = (last + [ln for ln in text.splitlines() if ln.strip()])[-20:]
                    if "error" in chunk:
                        fh.write("ERROR: %s\n" % chunk["error"])
                        raise EnvError("%s: docker could not build the image (see %s): %s" % (
                            self.spec.id, log, _build_error(chunk["error"], last)))
                    if isinstance(chunk.get("aux"), dict) and chunk["aux"].get("ID"):
                        image_id = chunk["aux"]["ID"]
            except EnvError:
                raise
            except Exception as exc:
                raise EnvError("%s: %s" % (self.spec.id, unreachable(exc))) from None
        return image_id or engine.images.get(tag).id

    def launcher(self) -> Launcher:
        if self.image is None:
            raise EnvError("%s: the image was not made (create() first)" % self.spec.id)
        return ContainerLauncher(self.image, self.spec.id, self.where.run_id)

    @classmethod
    def preflight(cls) -> None:
        client()

    @classmethod
    def cleanup(cls, run_id: str) -> None:
        try:
            engine = client()
            for c in engine.containers.list(all=True, filters={"label": "%srun=%s" % (LABEL, run_id)}):
                c.remove(force=True)
        except Exception:
            pass  # nothing reachable is nothing left running

    @classmethod
    def listing(cls, where: Where, specs: dict[str, EnvSpec]) -> list[dict]:
        engine = client()
        out = []
        wanted: dict[str, str | None] = {}
        for image in engine.images.list(filters={"label": LABEL + "env"}):
            env_id = image.labels[LABEL + "env"]
            tags = [t for t in image.tags if t.startswith(REPOSITORY + ":")] or [image.short_id]
            if env_id not in specs:
                state = "unused"
            else:
                if env_id not in wanted:
                    try:
                        wanted[env_id] = cls(specs[env_id], where).wanted(engine)[0]
                    except EnvError:
                        wanted[env_id] = None
                state = "current" if image.labels.get(LABEL + "spec_hash") == wanted[env_id] else "stale"
            for tag in tags:
                out.append({"backend": cls.name, "id": env_id, "where": tag, "state": state})
        return out

    @classmethod
    def remove(cls, where: Where, entry: dict) -> None:
        client().images.remove(entry["where"], force=True)
        states = EnvStates(where.state_dir)
        if (states.get(entry["id"], cls.name) or {}).get("image") == entry["where"]:
            states.drop(entry["id"], cls.name)


class ContainerLauncher(Launcher):
    """Each launch is one container of the env's image: `network_mode="none"` (the worker never needs
    the network, in either phase), this user's uid, the Launch's mounts bound at their own paths."""

    def __init__(self, image: str, env_id: str, run_id: str) -> None:
        self.image = image
        self.env_id = env_id
        self.run_id = run_id

    def launch(self, launch: Launch) -> ContainerProcess:
        env = {k: v for k, v in os.environ.items() if k.startswith("TFCOMPAT_WORKER_")}  # fault injection
        env.update(launch.env)
        env["HOME"] = "/tmp"  # the image's HOME may belong to another user
        volumes = {m.host: {"bind": m.inside, "mode": "ro" if m.read_only else "rw"} for m in launch.mounts}
        try:
            container = client().containers.run(
                self.image, [VENV_PYTHON, "-c", TRAMPOLINE, launch.log, *launch.args], detach=True,
                network_mode="none", working_dir=launch.cwd, environment=env, volumes=volumes,
                user="%d:%d" % (os.getuid(), os.getgid()),
                labels={LABEL + "run": self.run_id, LABEL + "env": self.env_id})
        except BackendUnavailable as exc:
            raise EnvError("%s: %s" % (self.env_id, exc)) from None
        except Exception as exc:
            try:
                client()  # an engine going away refuses first, then stops answering: say the cause
            except BackendUnavailable as gone:
                raise EnvError("%s: %s" % (self.env_id, gone)) from None
            raise EnvError("%s: docker could not start a container of %s: %s" % (
                self.env_id, self.image, _short(exc))) from None
        return ContainerProcess(container, launch.log)

    def kill(self, proc) -> None:
        proc.stop()

    def goes_offline(self) -> bool:
        return True


class ContainerProcess:
    """A running container, seen as subprocess.Popen sees a process: poll() is None until it ends,
    then the exit code (a kill's 128+N is reported as -N, as Popen does). Removed once it ends."""

    def __init__(self, container, log: str) -> None:
        self.container = container
        self.log = log
        self.returncode: int | None = None
        self._done = threading.Event()
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self) -> None:
        try:
            code = int(self.container.wait()["StatusCode"])
        except Exception as exc:
            code = 255  # the engine went away: the caller sees a dead worker and retries
            _note(self.log, "tfcompat: lost the container: %s" % unreachable(exc))
        try:
            self.container.remove(force=True)
        except Exception:
            pass
        self.returncode = -(code - 128) if 128 < code < 160 else code
        self._done.set()

    def poll(self) -> int | None:
        return self.returncode

    def stop(self) -> None:
        """Kill the container (all its processes) and remove it; returns once it is gone."""
        try:
            self.container.kill()
        except Exception:
            pass
        self._done.wait(60)
        try:
            self.container.remove(force=True)
        except Exception:
            pass


def _note(log: str, line: str) -> None:
    try:
        with open(log, "a") as fh:
            fh.write(line + "\n")
    except OSError:
        pass


def _image(engine, tag: str):
    try:
        return engine.images.get(tag)
    except Exception as exc:
        if _not_found(exc):
            return None
        raise EnvError(unreachable(exc)) from None


def _not_found(exc: BaseException) -> bool:
    import docker.errors

    return isinstance(exc, docker.errors.NotFound)


def _context(files: dict[str, str]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _build_error(error: str, last: list[str]) -> str:
    # pip's own reason is usually a few lines above Docker's "returned a non-zero code".
    for line in reversed(last):
        low = line.lower()
        if "error" in low or "tfcompat:" in low or "no matching distribution" in low:
            return line.strip()[:400]
    return error.strip()[:400]

