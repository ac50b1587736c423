"""Where the time of a matrix run went: wall time, env creation, TF imports, saving, checking.

    python bench/matrix_timing.py                 # the latest run in .tfcompat/ (or reports/run.json)
    python bench/matrix_timing.py --run -- --only tf2.15,tf2.16-keras3   # run first, then report

Figures come from the run's own records: run.json (phase timers per env) and the journals
(`ready` events carry each worker process's TF import time; one `ready` = one TF import).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def latest_run(state_dir: str) -> str:
    runs = sorted(glob.glob(os.path.join(state_dir, "runs", "*", "run.json")))
    if not runs:
        sys.exit("no run under %s" % state_dir)
    return os.path.dirname(runs[-1])


def journal_figures(run_dir: str) -> dict:
    out = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "journals", "*.jsonl"))):
        env, phase = os.path.basename(path)[: -len(".jsonl")].rsplit(".", 1)
        imports, import_s, work_s, items = 0, 0.0, 0.0, 0
        with open(path) as fh:
            for line in fh:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("event") == "ready":
                    imports += 1
                    import_s += float(ev.get("import_s") or 0)
                elif ev.get("event") == "done":
                    items += 1
                    work_s += float(ev.get("duration_s") or 0)
        out.setdefault(env, {})[phase] = {"tf_imports": imports, "import_s": round(import_s, 1),
                                           "work_s": round(work_s, 1), "items": items}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state-dir", default=os.path.join(ROOT, ".tfcompat"))
    p.add_argument("--run", action="store_true", help="run `python -m harness run ARGS` first and time it")
    p.add_argument("args", nargs="*", help="arguments for `tfcompat run` (after --)")
    a = p.parse_args()
    if a.run:
        t = time.time()
        subprocess.run([sys.executable, "-m", "harness", "--state-dir", a.state_dir, "run", *a.args],
                       cwd=ROOT, check=True)
        print("measured wall time of `tfcompat run %s`: %.1f s" % (" ".join(a.args), time.time() - t))
    run_dir = latest_run(a.state_dir)
    meta = json.load(open(os.path.join(run_dir, "run.json")))
    print("run %s: %d records, wall %.1f s" % (meta["run_id"], meta.get("checks", 0), meta.get("duration_s", 0)))
    print("phase sums over envs (s): " + ", ".join("%s %s" % kv for kv in sorted(meta.get("phase_times", {}).items())))
    figs = journal_figures(run_dir)
    total_imports = total_import_s = 0
    print("%-16s %-15s %8s %9s %9s %7s" % ("env", "phase", "imports", "import_s", "work_s", "items"))
    for env, phases in sorted(figs.items()):
        for phase, f in sorted(phases.items()):
            total_imports += f["tf_imports"]
            total_import_s += f["import_s"]
            print("%-16s %-15s %8d %9.1f %9.1f %7d"
                  % (env, phase, f["tf_imports"], f["import_s"], f["work_s"], f["items"]))
    print("TF imports: %d in all, %.1f s of import time" % (total_imports, total_import_s))
    for env, t in sorted((meta.get("segments") or [{}])[-1].get("env_timings", {}).items()):
        print("%-16s %s" % (env, ", ".join("%s %s" % kv for kv in sorted(t.items()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
