"""Artifacts corrupted after saving: a seeded fuzz over real artifacts (tf2.15), each mutant checked by
the real worker. Every mutant ends as a cell result (usually a load-error with the real exception),
a recorded crash or a timeout; never a harness-error, never a lost item, never an orchestrator crash."""

import json
import os
import random
import shutil
import subprocess
import sys
import zipfile

import pytest

from harness import process
from harness.backends.base import LocalPython
from harness.matrix import FixtureSpec
from harness.worker.slots import SLOTS_FILE

# The slow tier (`tox -e tests -- -m slow`, nightly: .github/workflows/slow-tests.yml).
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = "tf2.15"
FIXTURES = ("control", "custom_layer")
FORMATS = ("h5", "keras", "savedmodel", "weights", "checkpoint")
PER_ARTIFACT = 20  # 10 artifacts x 20 mutants


def _files(root):
    """The artifact's own files: not the references the harness keeps beside them (the .npy arrays,
    the optimizer slots, meta.json), which the fuzz leaves alone."""
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if not f.endswith(".npy")
                  and f not in ("meta.json", SLOTS_FILE))


def mutate(rng, src, dest):
    """One seeded corruption of the artifact dir `src` into `dest`; returns what was done."""
    shutil.copytree(src, dest)
    files = _files(dest)
    target = rng.choice(files)
    size = os.path.getsize(target)
    how = rng.choice(["truncate", "flip", "zero", "delete", "zip-drop", "zip-garble", "append"])
    if how == "zip-drop" or how == "zip-garble":
        zips = [f for f in files if zipfile.is_zipfile(f)]
        if zips:
            target = zips[0]
            with zipfile.ZipFile(target) as z:
                members = {n: z.read(n) for n in z.namelist()}
            victim = rng.choice(sorted(members))
            if how == "zip-drop":
                del members[victim]
            else:
                data = bytearray(members[victim])
                for _ in range(max(1, len(data) // 50)):
                    if data:
                        data[rng.randrange(len(data))] = rng.randrange(256)
                members[victim] = bytes(data)
            with zipfile.ZipFile(target, "w") as z:
                for name, data in members.items():
                    z.writestr(name, data)
            return "%s %s of %s" % (how, victim, os.path.relpath(target, dest))
        how = "flip"
    if how == "truncate":
        with open(target, "r+b") as fh:
            fh.truncate(rng.randrange(size) if size else 0)
    elif how in ("flip", "zero"):
        with open(target, "r+b") as fh:
            for _ in range(rng.randint(1, 20)):
                if size:
                    fh.seek(rng.randrange(size))
                    fh.write(bytes([0 if how == "zero" else rng.randrange(256)]))
    elif how == "delete":
        os.remove(target)
    elif how == "append":
        with open(target, "ab") as fh:
            fh.write(bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096))))
    return "%s %s" % (how, os.path.relpath(target, dest))


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    proc = subprocess.run([sys.executable, "-m", "harness", "--matrix", os.path.join(ROOT, "matrix.yaml"),
                           "--state-dir", str(base / "state"), "--reports", str(base / "reports"), "run", "--only",
                           ENV, "--fixtures", ",".join(FIXTURES), "--formats", ",".join(FORMATS)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_id,) = os.listdir(base / "state" / "runs")
    artifacts = base / "state" / "runs" / run_id / "artifacts" / ENV
    rng = random.Random(20261201)
    items = {"plain": [], "remedies": []}
    done_how = {}
    for fx in FIXTURES:
        spec = FixtureSpec(name=fx, path=os.path.join(ROOT, "fixtures", fx + ".py"))
        for fmt in FORMATS:
            src = artifacts / fx / fmt
            with open(src / "meta.json") as fh:
                if json.load(fh).get("status") != "saved":
                    continue
            for n in range(PER_ARTIFACT):
                dest = base / "mutants" / fx / fmt / str(n)
                key = "check|%s|%s|%s|%s#%d" % (ENV, ENV, fx, fmt, n)
                done_how[key] = mutate(rng, str(src), str(dest))
                mode = "remedies" if fmt in ("weights", "checkpoint") else "plain"
                items[mode].append({"key": key, "producer": ENV, "fixture": fx, "format": fmt,
                                    "artifact_dir": str(dest), "fixture_path": spec.path,
                                    "tolerances": spec.tolerances()})
    python = os.path.join(ROOT, ".tox", ENV, "bin", "python")
    outcomes = {}
    for mode, batch in items.items():
        req = process.WorkerRequest(env_id=ENV, launcher=LocalPython(python), phase="check", mode=mode,
                                    items=tuple(batch), journal=str(base / ("%s.jsonl" % mode)), timeout=60,
                                    cwd=str(base), offline=True)
        outcomes[mode] = (batch, process.run(req))
    return {"outcomes": outcomes, "how": done_how}


def test_every_mutant_is_a_result_or_a_recorded_failure(fuzzed):
    total = 0
    for batch, out in fuzzed["outcomes"].values():
        for item in batch:
            total += 1
            key = item["key"]
            assert key in out.done or key in out.failed, (key, fuzzed["how"][key])
            if key in out.failed:
                assert out.failed[key]["outcome"] in ("crash", "timeout"), out.failed[key]
                continue
            attempts = out.done[key]["attempts"]
            assert attempts, (key, fuzzed["how"][key], out.done[key])
            for a in attempts:
                assert a["outcome"] in ("pass", "degraded", "load-error", "wrong-output"), (key, a)
                assert a["outcome"] != "harness-error", (key, fuzzed["how"][key], a)
                if a["outcome"] == "load-error":
                    assert a["error_type"] and a["message"] is not None, a  # the real exception, named
    assert total == len(fuzzed["how"]) >= 150


def test_most_corruptions_are_load_errors_with_the_real_exception(fuzzed):
    errors = [a for _, (batch, out) in fuzzed["outcomes"].items() for r in out.done.values()
              for a in r["attempts"] if a["outcome"] == "load-error"]
    assert len(errors) >= 50
    assert len({a["error_type"] for a in errors}) >= 3  # OSError, ValueError, ... as the libraries raised them
