"""Make sure a headless Chromium is there for the browser tests (tox -e tests runs this first).

On Debian as root it installs Debian's `chromium` package; elsewhere it says how, and fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def found() -> str | None:
    for name in (os.environ.get("TFCOMPAT_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def main() -> int:
    if found():
        return 0
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("tests: installing Debian's chromium for the report's browser test (apt-get)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    if not found():
        print("tests: no chromium: install Debian's `chromium` (or set TFCOMPAT_CHROMIUM to a "
              "Chromium binary) for the report's browser test", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
