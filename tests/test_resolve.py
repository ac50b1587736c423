"""Drift: an env's requirements resolved as they would install today (a real uv, a loopback index
of tiny wheels built here: nothing leaves the host), compared with what the env holds."""

import base64
import dataclasses
import hashlib
import http.server
import io
import os
import subprocess
import sys
import threading
import zipfile

import pytest

from harness import resolve
from harness.backends import build_secrets
from harness.backends.base import Where
from harness.backends.docker import DockerBackend
from harness.backends.tox import ToxBackend, installer_env
from harness.cache import _digest, env_fingerprint
from harness.errors import InterpreterNotFound
from harness.matrix import EnvSpec

PYTHON = "%d.%d" % sys.version_info[:2]  # an interpreter find_python finds wherever the tests run


def wheel(folder, name, version, requires=()):
    """A minimal wheel: METADATA, WHEEL and a RECORD, nothing to import."""
    dist = "%s-%s" % (name.replace("-", "_"), version)
    files = {
        dist + ".dist-info/METADATA": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n%s" % (
            name, version, "".join("Requires-Dist: %s\n" % r for r in requires)),
        dist + ".dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tfcompat-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ["%s,sha256=%s,%d" % (path, base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())
                                   .rstrip(b"=").decode(), len(text.encode())) for path, text in files.items()]
    files[dist + ".dist-info/RECORD"] = "\n".join(record + [dist + ".dist-info/RECORD,,"]) + "\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    (folder / ("%s-py3-none-any.whl" % dist)).write_bytes(buf.getvalue())


class _Index(http.server.BaseHTTPRequestHandler):
    """PEP 503 pages made from the wheel folder at each request (a wheel added is a release made)."""

    folder = None

    def do_GET(self, head=False):
        parts = self.path.strip("/").split("/")
        if parts[0] == "simple" and len(parts) == 2:
            name = resolve.normalise(parts[1])
            files = sorted(f for f in os.listdir(self.folder) if resolve.normalise(f.split("-")[0]) == name)
            body = "".join('<a href="/files/%s">%s</a>\n' % (f, f) for f in files).encode()
            code = 200 if files else 404
        elif parts[0] == "files" and os.path.isfile(os.path.join(self.folder, parts[-1])):
            with open(os.path.join(self.folder, parts[-1]), "rb") as fh:
                body, code = fh.read(), 200
        else:
            body, code = b"", 404
        self.send_response(code)
        self.send_header("Content-Type", "text/html")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_HEAD(self):  # uv asks whether the server reads ranges before it fetches a wheel
        self.do_GET(head=True)

    def log_message(self, *args):
        pass


@pytest.fixture
def index(tmp_path, monkeypatch):
    """A loopback index of the wheels in tmp/wheels; uv's settings (index, cache, no retries) in the
    environment, as a user's UV_* variables reach tox-uv."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    handler = type("Index", (_Index,), {"folder": str(folder)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/simple" % server.server_port
    for var in [v for v in os.environ if v.startswith(("UV_", "PIP_"))]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("UV_INDEX_URL", url)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    monkeypatch.setenv("UV_NO_CONFIG", "1")  # no uv.toml of the machine's user
    resolve.forget()
    yield folder, url
    server.shutdown()
    server.server_close()
    resolve.forget()


def spec(**pins):
    return EnvSpec(id="probe", python=PYTHON, tensorflow="2.15.1", keras="bundled", pins=pins)


def tox_backend(tmp_path, s):
    return ToxBackend(s, Where(str(tmp_path), str(tmp_path / "state"), str(tmp_path / "logs"), str(tmp_path / "m.yaml")))


def test_an_env_resolves_to_what_the_index_offers_today_and_drift_names_the_new_release(tmp_path, index):
    folder, _ = index
    wheel(folder, "tensorflow", "2.15.1", ["tfc-probe"])
    wheel(folder, "tfc-probe", "1.0")
    s = spec(**{"tfc-probe": ">=1.0"})
    backend = tox_backend(tmp_path, s)
    first = resolve.resolve(backend.resolution_request())
    assert first.known and first.reason == ""
    assert first.packages == {"tensorflow": "2.15.1", "tfc-probe": "1.0"}
    installed = {"python": "3.11.7", "packages": dict(first.packages)}  # the env built from it
    assert resolve.drift(installed["packages"], first.packages) == []
    assert env_fingerprint(s, installed) == env_fingerprint(s, dict(installed, packages=first.packages))

    wheel(folder, "tfc-probe", "1.1", ["tfc_Extra>=0.1"])  # a release: 1.1, with a new dependency
    wheel(folder, "tfc-extra", "0.1")
    assert resolve.resolve(backend.resolution_request()) is first  # kept for the process
    resolve.forget()
    today = resolve.resolve(backend.resolution_request())
    assert today.packages == {"tensorflow": "2.15.1", "tfc-probe": "1.1", "tfc-extra": "0.1"}
    changes = resolve.drift(installed["packages"], today.packages)
    assert changes == [("tfc-extra", None, "0.1"), ("tfc-probe", "1.0", "1.1")]
    assert [resolve.describe(c) for c in changes] == ["+tfc-extra 0.1", "tfc-probe 1.0 -> 1.1"]
    assert resolve.summary(changes, limit=1) == "+tfc-extra 0.1 (+1 more)"
    assert env_fingerprint(s, installed) != env_fingerprint(s, dict(installed, packages=today.packages))


def test_a_venv_seeded_by_python_m_venv_keeps_its_setuptools_in_the_resolution(tmp_path, index, monkeypatch):
    # The Docker image: `python -m venv` seeds pip and (Python < 3.12) setuptools, and pip keeps a
    # seed that satisfies the requirements; tox-uv's venv holds no seed, so uv takes the newest.
    folder, url = index
    wheel(folder, "tensorflow", "2.15.1", ["setuptools"])
    wheel(folder, "setuptools", "65.5.0")
    wheel(folder, "setuptools", "80.10.2")
    monkeypatch.setenv("PIP_INDEX_URL", url)  # what a build is handed (build_secrets.pip_settings)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(build_secrets, "PIP_CONFIGS", ())  # not the machine's pip.conf
    s = spec()
    tox = resolve.resolve(tox_backend(tmp_path, s).resolution_request())
    assert tox.packages == {"tensorflow": "2.15.1", "setuptools": "80.10.2"}
    image = {"python": "3.11.9", "packages": {"pip": "23.2.1", "setuptools": "65.5.0", "tensorflow": "2.15.1"}}
    docker = DockerBackend(dataclasses.replace(s, backend={"name": "docker"}),
                           Where(str(tmp_path), str(tmp_path / "state"), str(tmp_path / "logs"), "m.yaml"))
    request = docker.resolution_request(image)
    assert request.python == "3.11.9" and dict(request.prefer) == {"pip": "23.2.1", "setuptools": "65.5.0"}
    newer = docker.resolution_request(dict(image, python="3.12.8"))  # ensurepip stopped seeding setuptools
    assert dict(newer.prefer) == {"pip": "23.2.1"}
    assert request.args[:3] == ("--no-config", "--index-strategy", "unsafe-best-match")
    assert ("--index-url", url) == request.args[3:5] and "UV_INDEX_URL" not in dict(request.env)
    seeded = resolve.resolve(request)
    assert seeded.packages == {"tensorflow": "2.15.1", "setuptools": "65.5.0"}, seeded.reason
    assert resolve.drift(image["packages"], seeded.packages) == []  # pip is a seed, not drift
    assert env_fingerprint(s, image) == env_fingerprint(s, dict(image, packages=seeded.packages))


@pytest.mark.parametrize("case, says", [
    ("unreachable", "Connection refused"),
    ("no solution", "tfc-probe"),
])
def test_a_resolution_that_fails_is_unknown_with_one_line(tmp_path, index, monkeypatch, case, says):
    folder, _ = index
    wheel(folder, "tensorflow", "2.15.1")
    wheel(folder, "tfc-probe", "1.0")
    if case == "unreachable":
        import socket

        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:%d/simple" % port)
    got = resolve.resolve(tox_backend(tmp_path, spec(**{"tfc-probe": ">=9"})).resolution_request())
    assert not got.known and got.packages is None
    assert says in got.reason and "\n" not in got.reason and "Traceback" not in got.reason


def test_no_uv_no_interpreter_and_a_hung_index_are_unknown_too(tmp_path, monkeypatch):
    request = resolve.Request(("tfc-probe",), sys.executable, str(tmp_path))
    resolve.forget()

    def missing():
        raise resolve.TfcompatError("uv not found (No module named 'uv'); pip install uv")

    monkeypatch.setattr(resolve, "uv_binary", missing)
    assert resolve.resolve(request).reason == "uv not found (No module named 'uv'); pip install uv"
    resolve.forget()
    monkeypatch.setattr(resolve, "uv_binary", lambda: "uv")

    def hangs(cmd, **kw):
        raise subprocess.TimeoutExpired(cmd, kw["timeout"])

    monkeypatch.setattr(subprocess, "run", hangs)
    assert resolve.resolve(request, timeout=7).reason == \
        "uv pip compile took over 7s (is the package index reachable?)"

    class NoPython(ToxBackend):
        def resolution_request(self, installed=None):
            raise InterpreterNotFound("no Python 3.99 interpreter found")

    out = resolve.resolve_backends({"x": NoPython(spec(), Where(str(tmp_path), str(tmp_path), str(tmp_path), "m"))})
    assert out["x"] == resolve.Resolution(None, "no Python 3.99 interpreter found")
    resolve.forget()


def test_many_envs_resolve_at_once_and_each_request_once_per_process(monkeypatch, tmp_path):
    calls = []
    gate = threading.Barrier(2, timeout=10)  # two distinct requests run side by side

    def fake(request, timeout):
        calls.append(request.requirements)
        gate.wait()
        return resolve.Resolution({"tensorflow": request.requirements[0].split("==")[1]})

    monkeypatch.setattr(resolve, "_compile", fake)
    resolve.forget()
    a = resolve.Request(("tensorflow==2.15.1",), sys.executable, str(tmp_path))
    b = resolve.Request(("tensorflow==2.16.2",), sys.executable, str(tmp_path))
    out = resolve.resolve_many({"one": a, "same": a, "two": b}, jobs=4)
    assert {k: v.packages["tensorflow"] for k, v in out.items()} == {"one": "2.15.1", "same": "2.15.1", "two": "2.16.2"}
    assert sorted(calls) == [a.requirements, b.requirements]
    assert resolve.resolve_many({"again": b})["again"] is out["two"] and len(calls) == 2
    resolve.forget()


def test_drift_compares_pep_503_names_and_leaves_an_unasked_seed_out():
    installed = {"h5py": "3.14.0", "ruamel.yaml": "0.18", "pip": "23.2.1", "old": "1.0", "typing-extensions": "4.1"}
    resolved = {"h5py": "3.15.0", "ruamel-yaml": "0.18", "typing_extensions": "4.1"}
    changes = resolve.drift(installed, resolved)
    assert [resolve.describe(c) for c in changes] == ["h5py 3.14.0 -> 3.15.0", "-old 1.0"]
    assert resolve.drift({"pip": "23.2.1"}, {"pip": "24.0"}) == [("pip", "23.2.1", "24.0")]  # asked for: compared


def test_the_fingerprint_leaves_out_pip_and_counts_pep_503_names_only_for_python_envs():
    s = spec()
    plain = {"python": "3.11.7", "packages": {"h5py": "3.14.0", "tensorflow": "2.15.1"}}
    # a record without pip or dotted names keeps the fingerprint it had (the cache stays valid)
    assert env_fingerprint(s, plain) == _digest({"requirements": s.requirements(), "env_vars": s.env_vars(),
                                                 "python": "3.11.7", "packages": plain["packages"]})
    seeded = dict(plain, packages=dict(plain["packages"], pip="23.2.1"))
    assert env_fingerprint(s, seeded) == env_fingerprint(s, plain)
    dotted = {"python": "3.11.7", "packages": {"ruamel.yaml": "0.18"}}
    assert env_fingerprint(s, dotted) == env_fingerprint(s, dict(dotted, packages={"ruamel-yaml": "0.18"}))
    js = EnvSpec(id="js", python="", tensorflow="", keras="tfjs", kind="tfjs", tfjs="4.22.0")
    worker = {"python": None, "packages": {"tfcompat-worker.js": "abc", "node": "v20"}}
    assert env_fingerprint(js, worker) == _digest({"requirements": js.requirements(), "env_vars": js.env_vars(),
                                                   "python": None, "packages": worker["packages"]})


def test_tox_resolves_with_what_tox_hands_uv():
    s = EnvSpec(id="e", python=PYTHON, tensorflow="2.15.1", keras="bundled", set_env={"UV_PRERELEASE": "allow"})
    env = installer_env(s, {"UV_INDEX_URL": "https://mirror.example/simple", "UV_PYTHON": "3.9", "HOME": "/h",
                            "XDG_CACHE_HOME": "/x", "PATH": "/bin", "OTHER": "1", "UV_PRERELEASE": "disallow"})
    assert env == {"UV_INDEX_URL": "https://mirror.example/simple", "HOME": "/h", "PATH": "/bin",
                   "UV_PRERELEASE": "allow", "TF_CPP_MIN_LOG_LEVEL": "2"}
