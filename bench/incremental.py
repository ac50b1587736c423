"""What the result cache saves, on the default matrix (5 envs, all fixtures and formats):

    python bench/incremental.py [--add-env tf2.13]

1. a full run with an empty cache;
2. the same run again (nothing changed): wall time and TF imports;
3. one env added (from profiles/history.yaml): checks run (plan says (2n+1) x fixtures x formats) and
   wall time against step 1;
4. one fixture's source edited: which cells were recomputed, wall time.

Prints figures; asserts nothing. Uses a fresh state dir in a temp dir; envs are the repo's tox envs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tfcompat(workdir: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "--matrix", os.path.join(workdir, "matrix.yaml"),
                           "--state-dir", os.path.join(workdir, "state"), "--reports",
                           os.path.join(workdir, "reports"), *args], cwd=ROOT, capture_output=True, text=True)


def step(workdir: str, label: str) -> dict:
    t = time.time()
    proc = tfcompat(workdir, "run")
    wall = time.time() - t
    if proc.returncode not in (0, 1):
        sys.exit(proc.stdout + proc.stderr)
    with open(os.path.join(workdir, "reports", "run.json")) as fh:
        meta = json.load(fh)
    with open(os.path.join(workdir, "reports", "results.jsonl")) as fh:
        records = [json.loads(line) for line in fh]
    # cells a worker checked in this run (not-applicable and excluded cells need no check)
    computed = [r for r in records if r["consumer"] and not r["cached"] and r["attempts"]]
    imports = sum(sum(v.values()) for v in meta["tf_imports"].values())
    print("%-28s %6.1f s wall, %4d records, %4d cells checked, %4d from the cache, %2d TF imports" % (
        label, wall, len(records), len(computed), meta["cache"]["cells_reused"], imports), flush=True)
    return {"wall": wall, "computed": computed, "meta": meta}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--add-env", default="tf2.13", help="an env id of profiles/history.yaml (default tf2.13)")
    ap.add_argument("--edit-fixture", default="custom_layer")
    args = ap.parse_args()
    with open(os.path.join(ROOT, "matrix.yaml")) as fh:
        matrix = yaml.safe_load(fh)
    with open(os.path.join(ROOT, "profiles", "history.yaml")) as fh:
        history = yaml.safe_load(fh)
    added = next(e for e in history["environments"] if e.get("id") == args.add_env)
    with tempfile.TemporaryDirectory() as workdir:
        def write(m: dict) -> None:
            with open(os.path.join(workdir, "matrix.yaml"), "w") as fh:
                yaml.safe_dump(m, fh, sort_keys=False)

        write(matrix)
        n = len(matrix["environments"])
        fx, fmts = len(matrix["fixtures"]), len(matrix["formats"])
        full = step(workdir, "1. full run (empty cache)")
        step(workdir, "2. nothing changed")
        matrix["environments"].append(dict(added, python=added.get("python") or matrix["defaults"]["python"]))
        write(matrix)
        plan = json.loads(tfcompat(workdir, "plan", "--json").stdout)
        print("   plan with %s added: %d checks to run of %d; (2n+1) x fixtures x formats = %d" % (
            args.add_env, plan["checks_to_run"], plan["checks"], (2 * n + 1) * fx * fmts))
        more = step(workdir, "3. one env added")
        print("   cost against step 1: %.0f%%" % (100 * more["wall"] / full["wall"]))
        os.makedirs(os.path.join(workdir, "fixtures"))
        src = os.path.join(ROOT, "fixtures", args.edit_fixture + ".py")
        shutil.copy(src, os.path.join(workdir, "fixtures", args.edit_fixture + ".py"))
        with open(os.path.join(workdir, "fixtures", args.edit_fixture + ".py"), "a") as fh:
            fh.write("\n# edited by bench/incremental.py\n")
        edited = step(workdir, "4. %s edited" % args.edit_fixture)
        print("   fixtures recomputed: %s" % sorted({r["fixture"] for r in edited["computed"]}))


if __name__ == "__main__":
    main()
