"""Where the time of a TF.js run goes: the `tfjs` profile from a fresh state dir, then again (cached).

    python bench/tfjs.py                  # profiles/tfjs.yaml, all its fixtures and formats
    python bench/tfjs.py -- --fixtures control,custom_layer

Prints the wall time of each run, each env's phase times (the converter's conversions included), the
TF.js workers' start-up (require + tf.ready()) and per-item times from their journals, and what the
second run took from the cache. The envs are built if missing (their build time is printed too).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(state: str, args: list[str]) -> tuple[float, dict]:
    t = time.time()
    subprocess.run([sys.executable, "-m", "harness", "--profile", "tfjs", "--state-dir", state, "--reports",
                    os.path.join(state, "reports"), "run", "--jobs", "2", *args], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    with open(os.path.join(state, "reports", "run.json")) as fh:
        return time.time() - t, json.load(fh)


def journal_figures(run_dir: str) -> list[tuple[str, str, int, float, float]]:
    """(env, phase, processes, start-up s, mean item s) of each JS worker journal."""
    out = []
    folder = os.path.join(run_dir, "journals")
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".jsonl"):
            continue
        events = [json.loads(line) for line in open(os.path.join(folder, name)) if line.strip()]
        ready = [e for e in events if e.get("event") == "ready"]
        if not ready or not str(ready[0].get("worker_version", "")).startswith("js"):
            continue
        done = [e.get("duration_s") or 0.0 for e in events if e.get("event") == "done"]
        env, _, phase = name[:-6].rpartition(".")
        out.append((env, phase, len(ready), max(e.get("import_s", 0.0) for e in ready),
                    sum(done) / len(done) if done else 0.0))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("args", nargs="*", help="more arguments for `tfcompat run` (after --)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tfcompat-bench-tfjs-") as state:
        first, meta = run(state, a.args)
        print("first run: %.1f s wall, %d records %s" % (first, meta["checks"], json.dumps(meta["outcome_counts"],
                                                                                           sort_keys=True)))
        for env, times in sorted(meta["segments"][-1]["env_timings"].items()):
            print("  %-16s %s" % (env, ", ".join("%s %s" % (k, v) for k, v in sorted(times.items()))))
        run_dir = os.path.join(state, "runs", meta["run_id"])
        print("TF.js workers (env, phase, processes, start-up s, mean s per item):")
        for env, phase, n, start, item in journal_figures(run_dir):
            print("  %-10s %-15s %d  %.3f  %.4f" % (env, phase, n, start, item))
        second, again = run(state, a.args)
        cache = again["cache"]
        print("second run: %.1f s wall, %d cells and %d artifacts from the cache" % (
            second, cache["cells_reused"], cache["artifacts_reused"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
