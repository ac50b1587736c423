"""Robustness figures for the README: the bad-input corpus (tests/corpus.py) by category, and the
artifact fuzz (tests/test_fault_artifacts.py's mutations) by outcome.

    python bench/robustness.py [--fuzz]

Prints counts; asserts nothing. --fuzz needs the tf2.15 tox env (it runs a small real save first).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)


def corpus() -> None:
    from corpus import CASES

    seen: dict = collections.defaultdict(collections.Counter)
    for category, _name, setup in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            args, want = setup(tmp)
            try:
                proc = subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True,
                                      text=True, timeout=60)
            except subprocess.TimeoutExpired:
                seen[category]["hang"] += 1
                continue
            lines = proc.stderr.strip().splitlines()
            if "Traceback" in proc.stderr:
                seen[category]["traceback"] += 1
            elif proc.returncode == 0:
                seen[category]["accepted"] += 1
            elif len(lines) == 1 and want in lines[0]:
                seen[category]["one clear line"] += 1
            else:
                seen[category]["other"] += 1
    total = collections.Counter()
    for category, counts in seen.items():
        total.update(counts)
        print("%-9s %3d inputs: %s" % (category, sum(counts.values()),
                                       ", ".join("%s %d" % kv for kv in counts.items())))
    print("all       %3d inputs: %s" % (sum(total.values()), ", ".join("%s %d" % kv for kv in total.items())))


def fuzz() -> None:
    import test_fault_artifacts as t

    gen = t.fuzzed.__wrapped__ if hasattr(t.fuzzed, "__wrapped__") else None
    if gen is None:
        sys.exit("cannot reach the fuzz fixture")

    class Factory:
        def mktemp(self, name):
            import pathlib

            return pathlib.Path(tempfile.mkdtemp(prefix=name))

    result = gen(Factory())
    outcomes: collections.Counter = collections.Counter()
    errors: collections.Counter = collections.Counter()
    for _, (batch, out) in result["outcomes"].items():
        for item in batch:
            key = item["key"]
            if key in out.failed:
                outcomes[out.failed[key]["outcome"]] += 1
                continue
            first = out.done[key]["attempts"][0]
            outcomes[first["outcome"]] += 1
            if first["outcome"] == "load-error":
                errors[first["error_type"]] += 1
    print("fuzz: %d mutants of %d real artifacts; first attempt: %s; lost: %d" % (
        len(result["how"]), len(result["how"]) // t.PER_ARTIFACT, ", ".join("%s %d" % kv for kv in outcomes.items()),
        len(result["how"]) - sum(outcomes.values())))
    print("fuzz: load-errors by exception: " + ", ".join("%s %d" % kv for kv in errors.most_common()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fuzz", action="store_true")
    args = ap.parse_args()
    corpus()
    if args.fuzz:
        fuzz()


if __name__ == "__main__":
    main()
