"""Expected wall times from recorded costs: the `full` profile on K machines, and a check of the cost
model against a real run.

    python bench/shard_plan.py --state STATE [--profile full] [--machines 1,2,4,8]
    python bench/shard_plan.py --state STATE --measure [--costs-from OTHER_STATE ...]

Without --measure: `tfcompat plan --shards K` for each K, with the recorded costs of the runs under
STATE (run.json files), printing each stage's longest job against the ideal total/machines.

--measure: copies only the run.json files (the recorded costs) of each --costs-from state (default
STATE) into a fresh state dir, asks `plan` what one machine should take for the repo's matrix,
then runs it there for real (empty result cache; envs are the repo's tox envs) and prints predicted
against measured wall time, per env phase too. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tfcompat(state: str, *args: str, reports: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "harness", "--state-dir", state]
    if reports:
        cmd += ["--reports", reports]
    proc = subprocess.run(cmd + list(args), cwd=ROOT, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.exit(proc.stdout + proc.stderr)
    return proc


def predict(state: str, profile: str | None, machines: list[int]) -> None:
    sel = ["--profile", profile] if profile else []
    for k in machines:
        plan = json.loads(tfcompat(state, *sel, "plan", "--shards", str(k), "--json").stdout)
        exp = plan["shards"]["expected"]
        if "wall_s" not in exp:
            sys.exit("no run under %s was ever timed: nothing to predict from" % state)
        print("%-8s %d machine(s) x %d envs at once: %2d save + %2d check jobs; expected wall %6.1f min "
              "(save %5.1f + check %6.1f); ideal total/machines %6.1f min; %.2fx; %d of %d envs modelled" % (
                  profile or "matrix", k, exp["save"]["slots"], exp["save"]["jobs"], exp["check"]["jobs"],
                  exp["wall_s"] / 60, exp["save"]["longest_s"] / 60, exp["check"]["longest_s"] / 60,
                  (exp["save"]["ideal_s"] + exp["check"]["ideal_s"]) / 60, exp["ratio_to_ideal"],
                  len(exp["check"]["modelled"]), len(plan["environments"])), flush=True)


def measure(sources: list[str]) -> None:
    with tempfile.TemporaryDirectory() as work:
        predictions = {}
        for i, src in enumerate(sources):
            state = os.path.join(work, "costs%d" % i)
            for path in glob.glob(os.path.join(src, "runs", "*", "run.json")):
                dest = os.path.join(state, "runs", os.path.basename(os.path.dirname(path)), "run.json")
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copy(path, dest)
            plan = json.loads(tfcompat(state, "plan", "--json").stdout)
            predictions[src] = plan["expected"]
        state = os.path.join(work, "run")
        t = time.time()
        tfcompat(state, "run", reports=os.path.join(work, "reports"))
        wall = time.time() - t
        with open(os.path.join(work, "reports", "run.json")) as fh:
            timings = json.load(fh)["segments"][-1]["timings"]
        for src, exp in predictions.items():
            print("costs from %s (%d of %d envs modelled): predicted %.1f min (save %.1f + check %.1f)" % (
                src, len(exp["check"]["modelled"]), len(plan["environments"]), exp["wall_s"] / 60,
                exp["save"]["longest_s"] / 60, exp["check"]["longest_s"] / 60))
        print("measured: %.1f min (create and save %.1f + check %.1f)" % (
            wall / 60, timings.get("wall_create_and_save_s", 0) / 60, timings.get("wall_check_s", 0) / 60), flush=True)
        for src, exp in predictions.items():
            print("  measured / predicted (costs from %s): %.2f" % (src, wall / exp["wall_s"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state", default=os.path.join(ROOT, ".tfcompat"), help="a state dir with timed runs")
    ap.add_argument("--profile", default="full")
    ap.add_argument("--machines", default="1,2,4,8")
    ap.add_argument("--measure", action="store_true", help="check the model: predict, then run the matrix")
    ap.add_argument("--costs-from", action="append", default=[], metavar="STATE",
                    help="with --measure: predict from this state's recorded runs (repeatable)")
    args = ap.parse_args()
    if args.measure:
        measure(args.costs_from or [args.state])
    else:
        predict(args.state, args.profile, [int(k) for k in args.machines.split(",")])


if __name__ == "__main__":
    main()
