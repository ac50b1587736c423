"""A real Docker engine for the tests, and a Python base image built here (no registry is reachable).

`engine()` starts dockerd as root with no bridge, no iptables and no masquerading, its own data root
and socket (or reuses one already answering there); `base_image()` makes a minimal Debian with
python3, venv and pip by debootstrap and `docker import`, cached as a tarball between runs.
Also runnable by hand: `python tests/docker_engine.py` prints the DOCKER_HOST to export.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tfcompat-tests")
ROOT = os.environ.get("TFCOMPAT_TEST_DOCKER_ROOT") or "/var/tmp/tfcompat-test-docker"
SOCKET = os.path.join(ROOT, "docker.sock")
BASE_IMAGE = "tfcompat-test/debian-python:bookworm"
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
PACKAGES = "python3,python3-venv,python3-pip"


class Engine:
    """A dockerd this process started (stop() ends it) or found running at SOCKET."""

    def __init__(self) -> None:
        self.host = "unix://" + SOCKET
        self.proc: subprocess.Popen | None = None

    def answers(self) -> bool:
        import docker

        try:
            docker.DockerClient(base_url=self.host, timeout=5).ping()
            return True
        except Exception:
            return False

    def start(self) -> Engine:
        if self.answers():
            return self
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        if os.geteuid() != 0 or not os.path.exists(dockerd):
            raise RuntimeError("the Docker tests start dockerd as root: install Debian's docker.io "
                               "(apt-get install docker.io debootstrap) and run as root")
        for sub in ("data", "exec"):
            os.makedirs(os.path.join(ROOT, sub), exist_ok=True)
        log = open(os.path.join(ROOT, "dockerd.log"), "ab")
        # No bridge, no iptables, no masquerading: containers get host networking (builds) or none.
        self.proc = subprocess.Popen(
            [dockerd, "--bridge=none", "--iptables=false", "--ip-masq=false",
             "--data-root", os.path.join(ROOT, "data"), "--exec-root", os.path.join(ROOT, "exec"),
             "--host", self.host, "--pidfile", os.path.join(ROOT, "dockerd.pid")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.answers():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError("dockerd did not come up; see %s" % os.path.join(ROOT, "dockerd.log"))

    def terminate(self) -> None:
        """SIGTERM the dockerd at SOCKET, whoever started it, and wait until it no longer answers."""
        import signal

        with open(os.path.join(ROOT, "dockerd.pid")) as fh:
            os.kill(int(fh.read().strip()), signal.SIGTERM)
        deadline = time.time() + 90
        while self.answers() and time.time() < deadline:
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def base_image(host: str) -> str:
    """BASE_IMAGE on the engine at `host`: imported from the cached tarball, else debootstrapped."""
    import docker

    client = docker.DockerClient(base_url=host, timeout=600)
    try:
        client.images.get(BASE_IMAGE)
        return BASE_IMAGE
    except docker.errors.ImageNotFound:
        pass
    tarball = os.path.join(CACHE, "debian-python-%s.tar" % SUITE)
    if not os.path.exists(tarball):
        _debootstrap(tarball)
    with open(tarball, "rb") as fh:
        client.api.import_image_from_data(fh.read(), repository=BASE_IMAGE.split(":")[0], tag=BASE_IMAGE.split(":")[1])
    return BASE_IMAGE


def _debootstrap(tarball: str) -> None:
    tool = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not os.path.exists(tool):
        raise RuntimeError("the Docker tests build their base image with debootstrap: apt-get install debootstrap")
    os.makedirs(CACHE, exist_ok=True)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        rootfs = os.path.join(tmp, "rootfs")
        subprocess.run([tool, "--variant=minbase", "--include=" + PACKAGES, SUITE, rootfs, MIRROR],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        shutil.rmtree(os.path.join(rootfs, "var/cache/apt/archives"), ignore_errors=True)
        os.makedirs(os.path.join(rootfs, "var/cache/apt/archives/partial"), exist_ok=True)
        subprocess.run(["tar", "-C", rootfs, "-cf", tarball + ".tmp", "."], check=True)
        os.replace(tarball + ".tmp", tarball)


if __name__ == "__main__":
    eng = Engine().start()
    print("export DOCKER_HOST=%s  # base image: %s" % (eng.host, base_image(eng.host)))
    sys.exit(0)
