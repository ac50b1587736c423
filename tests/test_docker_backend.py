"""The Docker backend's pure parts (no engine): the matrix's `backend:` key, the Dockerfile, what a
build is handed and how, the container-as-process view, and the one line when no engine answers."""

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from harness.backends import docker as dk
from harness.backends.base import Where
from harness.backends.build_secrets import BuildSecrets, pip_conf, pip_settings
from harness.errors import ConfigError
from harness.matrix import EnvSpec, load_matrix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_matrix(tmp_path, envs, defaults=""):
    path = tmp_path / "matrix.yaml"
    path.write_text("version: 1\ndefaults:\n  python: \"3.11\"\n%s\nenvironments:\n%s\nfixtures: [control]\n"
                    "formats: [keras]\n" % (defaults, envs))
    return str(path)


def test_backend_key_forms_and_defaults_merge(tmp_path):
    path = write_matrix(tmp_path, """
  - {id: a, tensorflow: "2.15.1", keras: bundled}
  - {id: b, tensorflow: "2.15.1", keras: bundled, backend: tox}
  - {id: c, tensorflow: "2.15.1", keras: bundled, backend: {docker: {build_args: {APT_PACKAGES: libgomp1}}}}
""", defaults="  backend: {docker: {base_image: \"img:1\", build_args: {X: 1}}}")
    envs = {e.id: e for e in load_matrix(path).environments}
    assert envs["a"].backend == {"name": "docker", "base_image": "img:1", "build_args": {"X": "1"}}
    assert envs["b"].backend == {"name": "tox"}
    # same backend as defaults: options merge, the env's build args beside the defaults'
    assert envs["c"].backend == {"name": "docker", "base_image": "img:1",
                                 "build_args": {"X": "1", "APT_PACKAGES": "libgomp1"}}
    assert EnvSpec(id="d", python="3.11", tensorflow="2.15.1", keras="bundled").backend_name("docker") == "docker"
    assert envs["b"].backend_name("docker") == "tox"


@pytest.mark.parametrize("value, says", [
    ("dockr", "unknown backend 'dockr' (did you mean 'docker'?); use one of: tox, docker"),
    ("{docker: {base_img: x}}", "environments[0].backend.docker.base_img: unknown option (did you mean 'base_image'?)"),
    ("{docker: {base_image: \"\"}}", "is not an image name"),
    ("{docker: {build_args: [1]}}", "expected a mapping of NAME: value"),
    ("{docker: {}, tox: {}}", "is not a backend; use one of: tox, docker"),
])
def test_bad_backend_is_one_line_naming_the_key(tmp_path, value, says):
    path = write_matrix(tmp_path, "  - {id: a, tensorflow: \"2.15.1\", keras: bundled, backend: %s}" % value)
    with pytest.raises(ConfigError) as err:
        load_matrix(path)
    assert len(err.value.problems) == 1
    assert says in err.value.problems[0] and "matrix.yaml" in err.value.problems[0]


def spec(**backend):
    return EnvSpec(id="tfx", python="3.11", tensorflow="2.15.1", keras="bundled",
                   backend={"name": "docker", **backend})


def where(tmp_path):
    return Where(str(tmp_path), str(tmp_path / "state"), str(tmp_path / "logs"), str(tmp_path / "m.yaml"), "r1")


def test_dockerfile_declares_build_args_and_holds_no_credentials(tmp_path):
    backend = dk.DockerBackend(spec(base_image="base:1", build_args={"APT_PACKAGES": "libgomp1"}), where(tmp_path))
    text = backend.dockerfile()
    assert text.startswith("# tfcompat env tfx:") and "FROM base:1" in text
    assert "ARG APT_PACKAGES" in text and "apt-get install" in text and "$APT_PACKAGES" in text
    assert "sys.version_info" in text and "'3.11'" in text  # the base image's Python is checked
    assert "rm -rf /tmp/tfcompat-build" in text and "BEGIN CERTIFICATE" not in text
    plain = dk.DockerBackend(spec(), where(tmp_path))
    assert "FROM python:3.11-slim" in plain.dockerfile() and "apt-get" not in plain.dockerfile()
    # the image identity (in the spec hash) moves with the base image id, build args and template
    ids = {plain.identity("sha256:a"), plain.identity("sha256:b"), backend.identity("sha256:a")}
    assert len(ids) == 3


def test_pip_settings_keep_what_a_container_can_use(tmp_path):
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\n"
                    "extra-index-url = file:///opt/pypi/simple https://extra.example/simple\n"
                    "find-links = /opt/wheels\nconstraint = /etc/c.txt\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    settings = pip_settings({"PIP_CONFIG_FILE": str(conf), "SSL_CERT_FILE": str(ca), "HOME": str(tmp_path)})
    assert settings["extra-index-url"] == "https://extra.example/simple"  # a file:// index is a host path
    assert "find-links" not in settings and "constraint" not in settings
    assert settings["cert"] in (str(ca), "/etc/ssl/certs/ca-certificates.crt") or os.path.isfile(settings["cert"])
    env_wins = pip_settings({"PIP_CONFIG_FILE": str(conf), "PIP_INDEX_URL": "https://other.example/simple",
                             "PIP_CERT": str(ca)})
    assert env_wins["index-url"] == "https://other.example/simple" and env_wins["cert"] == str(ca)
    text = pip_conf(env_wins)
    assert "index-url = https://other.example/simple" in text and "cert" not in text


def test_build_secrets_are_served_on_loopback_only_for_the_build(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"PEM")
    with BuildSecrets({"cert": str(ca), "index-url": "https://i.example/simple"}) as url:
        assert url.startswith("http://127.0.0.1:")
        assert urllib.request.urlopen(url + "ca.pem").read() == b"PEM"
        assert b"index-url = https://i.example/simple" in urllib.request.urlopen(url + "pip.conf").read()
        base = url.rsplit("/", 2)[0]
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(base + "/guess/ca.pem")
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "ca.pem", timeout=2)


class FakeContainer:
    def __init__(self, code):
        self.code, self.killed, self.removed = code, False, 0
        self.gate = threading.Event()

    def wait(self):
        self.gate.wait(10)
        return {"StatusCode": 137 if self.killed else self.code}

    def kill(self):
        self.killed = True
        self.gate.set()

    def remove(self, force=False):
        self.removed += 1


def test_a_container_is_seen_as_popen_sees_a_process(tmp_path):
    done = FakeContainer(3)
    proc = dk.ContainerProcess(done, str(tmp_path / "log"))
    assert proc.poll() is None
    done.gate.set()
    proc._done.wait(5)
    assert proc.poll() == 3 and done.removed >= 1
    hung = FakeContainer(0)
    proc = dk.ContainerProcess(hung, str(tmp_path / "log"))
    dk.ContainerLauncher("img", "tfx", "r1").kill(proc)  # kill, wait, remove
    assert proc.poll() == -9 and hung.killed and hung.removed >= 1


def test_no_engine_is_one_line_and_exit_2_before_any_work(tmp_path):
    path = write_matrix(tmp_path, "  - {id: a, tensorflow: \"2.15.1\", keras: bundled, backend: docker}")
    env = dict(os.environ, DOCKER_HOST="unix://%s/nothing.sock" % tmp_path)
    proc = subprocess.run([sys.executable, "-m", "harness", "--matrix", path, "--state-dir",
                           str(tmp_path / "state"), "run"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "tfcompat: error: docker: cannot reach the engine at unix://%s/nothing.sock" % tmp_path)
    assert lines[0].endswith("start dockerd or use the tox backend")
    assert not (tmp_path / "state").exists()  # no run was started
    # --backend docker asks the same of every env that names none
    plain = write_matrix(tmp_path, "  - {id: a, tensorflow: \"2.15.1\", keras: bundled}")
    proc = subprocess.run([sys.executable, "-m", "harness", "--matrix", plain, "--state-dir",
                           str(tmp_path / "state"), "run", "--backend", "docker"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "cannot reach the engine" in proc.stderr


def test_envs_lists_tox_envs_with_their_state_and_says_when_docker_is_away(tmp_path, monkeypatch):
    from harness.envs import envs
    from harness.envstate import EnvStates
    from harness.interpreters import find_python

    work = tmp_path / "tox"
    for name in ("keep", "old", "gone"):
        (work / name / "bin").mkdir(parents=True)
        (work / name / "bin" / "python").write_text("")
    monkeypatch.setenv("TFCOMPAT_TOX_WORKDIR", str(work))
    monkeypatch.setenv("TFCOMPAT_NODE_WORKDIR", str(tmp_path / "tfjs"))  # never the checkout's TF.js envs
    monkeypatch.setenv("DOCKER_HOST", "unix://%s/nothing.sock" % tmp_path)
    path = write_matrix(tmp_path, "  - {id: keep, tensorflow: \"2.15.1\", keras: bundled}\n"
                                  "  - {id: old, tensorflow: \"2.15.1\", keras: bundled}")
    matrix = load_matrix(path)
    states = EnvStates(str(tmp_path / "state"))
    # the record create() writes: the spec hash and where the env lives
    states.put("keep", "tox", {"spec_hash": matrix.env("keep").spec_hash(find_python("3.11")),
                               "location": str(work / "keep")})
    states.put("old", "tox", {"spec_hash": "before"})
    lines: list[str] = []
    envs(matrix, str(tmp_path), str(tmp_path / "state"), prune=True, say=lines.append)
    text = "\n".join(lines)
    assert "cannot reach the engine" in text
    rows = {ln.split()[1]: ln.split()[2] for ln in lines if ln.startswith("tox ")}
    assert rows == {"keep": "current", "old": "stale", "gone": "unused"}
    assert (work / "keep").exists() and not (work / "old").exists() and not (work / "gone").exists()
    assert states.get("old", "tox") is None and json.loads(open(states.path("keep")).read())["tox"]


class FakeEngine:
    """Stands in for the Docker SDK client in create()/current_state(): images by tag, builds that
    make a new image id, and the listing container's output."""

    class Image:
        def __init__(self, id, labels):
            self.id, self.labels, self.tags = id, labels, []

    def __init__(self):
        import types

        self.by_tag = {"python:3.11-slim": self.Image("sha256:base", {})}
        self.builds, self.removed = [], []
        self.images = types.SimpleNamespace(get=self.get, pull=self.get, remove=self.removed.append)
        self.containers = types.SimpleNamespace(
            run=lambda *a, **kw: b'{"python": "3.11.9", "packages": {"pip": "23.2.1", "tensorflow": "2.15.1"}}')
        self.api = types.SimpleNamespace(build=self.build)

    def get(self, tag):
        import docker.errors

        if tag not in self.by_tag:
            raise docker.errors.NotFound("no such image: %s" % tag)
        return self.by_tag[tag]

    def build(self, tag, labels, **kw):
        self.builds.append(kw)
        image = self.Image("sha256:%d" % len(self.builds), labels)
        self.by_tag[tag] = image
        return iter([{"stream": "Step 1/5 : FROM python:3.11-slim"}, {"aux": {"ID": image.id}}])


def test_a_docker_env_whose_image_is_gone_or_invalidated_is_built_again(tmp_path, monkeypatch):
    engine = FakeEngine()
    monkeypatch.setattr(dk, "client", lambda: engine)
    make = lambda: dk.DockerBackend(spec(), where(tmp_path))  # noqa: E731 (each run makes its own)
    assert make().create() is True and len(engine.builds) == 1
    assert make().current_state()["image_id"] == "sha256:1"
    assert make().create() is False and len(engine.builds) == 1
    tag = make().current_state()["image"]
    del engine.by_tag[tag]  # `docker image rm`, or a new engine with the old state dir
    assert make().current_state() is None
    assert make().create() is True and len(engine.builds) == 2 and not engine.builds[-1]["nocache"]
    make().invalidate("h5py 3.14.0 -> 3.15.0")
    assert make().current_state() is None and make().stale_reason() == "h5py 3.14.0 -> 3.15.0"
    assert make().create() is True and len(engine.builds) == 3
    assert engine.builds[-1]["nocache"] is True  # the build cache's pip layer would install the old h5py
    assert engine.removed == ["sha256:2"]  # the image the tag left
    log = (tmp_path / "logs" / "create-tfx.log").read_text().splitlines()
    assert log[0] == "tfcompat: rebuilding tfx, stale: h5py 3.14.0 -> 3.15.0"
    assert make().current_state()["image_id"] == "sha256:3" and make().stale_reason() is None
