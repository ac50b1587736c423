"""Synthetic run stores: journals written as the real worker and orchestrator write them, so tests
of records.assemble and of the report use records the engine really produces (no TensorFlow)."""

from __future__ import annotations

import json
import os

from harness import records, results
from harness.matrix import FixtureSpec, Matrix
from harness.matrix_defaults import RESAVED
from harness.store import RunStore, Selection, check_key, save_key
from harness.worker.formats import promises


def att(remedy, outcome, lost=(), message=None, **extra) -> dict:
    """One attempt as the worker's check.py records it."""
    a = {"remedy": remedy, "loader": "model", "outcome": outcome, "lost": list(lost), "checks": {},
         "message": message, "error_type": None if outcome in ("pass", "degraded") else "ValueError",
         "warnings": [], "max_abs_diff": 0.0 if outcome != "load-error" else None, "max_rel_diff": 0.0
         if outcome != "load-error" else None}
    if remedy is None:
        a["fixtures_absent"] = True
    a.update(extra)
    return a


def versions(env: str) -> dict:
    return {"python": "3.11.9", "tensorflow": "2.15.1" if "k3" not in env else "2.16.2",
            "keras": "2.15.0" if "k3" not in env else "3.3.3",
            "packages": {"tensorflow": "2.15.1", "h5py": "3.11.0", "numpy": "1.26.4", "protobuf": "4.25.3"}}


class SynthRun:
    """A run dir (`tmp_path/name`) with journals for `envs` x `fixtures` x `formats`; cells are set one
    by one. Under a state dir, `SynthRun(state / "runs", ..., name=RUN_ID)` is a run `report --run` finds."""

    def __init__(self, tmp_path, envs, fixtures=("control",), formats=("h5",), name="run") -> None:
        self.store = RunStore(str(tmp_path / name))
        os.makedirs(self.store.path("journals"), exist_ok=True)
        self.sel = Selection(tuple(envs), tuple(fixtures), tuple(formats))
        for env in envs:
            for phase in ("save", "check-plain", "check-remedies"):
                self._write(env, phase, {"event": "ready", "pid": 1, "import_s": 1.0, "versions": versions(env)})

    def _write(self, env: str, phase: str, *events: dict) -> None:
        results.append(self.store.journal(env, phase), events)

    # -- save phase ------------------------------------------------------------------------
    def saved(self, producer, fixture, fmt, warnings=(), classes=None, **extra) -> None:
        """`extra`: more meta, e.g. a re-save variant's `origin` and `loaded_with`."""
        meta = {"status": "saved", "fixture": fixture, "format": fmt, "promises": promises(fmt),
                "warnings": list(warnings), "classes": classes or {}, **extra}
        self._done(producer, "save", save_key(fixture, fmt), meta)

    def save_error(self, producer, fixture, fmt, message, error_type="NotImplementedError", **extra) -> None:
        meta = {"status": "save-error", "fixture": fixture, "format": fmt, "error_type": error_type,
                "message": message, "traceback": "Traceback ...\n%s: %s" % (error_type, message), "warnings": [],
                **extra}
        self._done(producer, "save", save_key(fixture, fmt), meta)

    def not_applicable(self, producer, fixture, fmt, reason, source, refusal=None) -> None:
        meta = {"status": "not-applicable", "fixture": fixture, "format": fmt, "reason": reason, "source": source,
                "refusal": refusal}
        self._done(producer, "save", save_key(fixture, fmt), meta)

    def save_lost(self, producer, fixture, fmt, outcome="crash") -> None:
        key = save_key(fixture, fmt)
        self._write(producer, "save", {"event": "start", "key": key, "t": 0.0},
                    {"event": "failed", "key": key, "outcome": outcome, "error_type": "WorkerDied",
                     "message": "killed by signal SIGSEGV", "traceback": "Fatal Python error: Segmentation fault"})

    def _done(self, env, phase, key, result) -> None:
        self._write(env, phase, {"event": "start", "key": key, "t": 0.0},
                    {"event": "done", "key": key, "duration_s": 0.5, "result": result})

    # -- check phase -----------------------------------------------------------------------
    def checked(self, producer, consumer, fixture, fmt, plain=(), remedies=()) -> None:
        key = check_key(producer, consumer, fixture, fmt)
        if plain:
            self._done(consumer, "check-plain", key, {"mode": "plain", "attempts": list(plain)})
        if remedies:
            self._done(consumer, "check-remedies", key, {"mode": "remedies", "attempts": list(remedies)})

    def check_lost(self, producer, consumer, fixture, fmt, phase, outcome, made=(), rung=None) -> None:
        """A worker that died (crash) or hung (timeout) in `phase` on `rung`, after the attempts `made`."""
        key = check_key(producer, consumer, fixture, fmt)
        events = [{"event": "start", "key": key, "t": 0.0}]
        for a in made:
            events += [{"event": "attempt", "key": key, "remedy": a["remedy"], "result": None},
                       {"event": "attempt", "key": key, "remedy": a["remedy"], "result": a}]
        events += [{"event": "attempt", "key": key, "remedy": rung, "result": None},
                   {"event": "failed", "key": key, "outcome": outcome, "error_type": "WorkerDied",
                    "message": "killed by signal SIGSEGV" if outcome == "crash" else "no result within 60s",
                    "traceback": "worker log tail"}]
        self._write(consumer, "check-" + phase, *events)

    def env_error(self, env, message, phase="env") -> None:
        self.store.set_env_error(env, message, phase)

    # -- assembling ------------------------------------------------------------------------
    def matrix(self, exclusions=(), expectations=()) -> Matrix:
        # a re-save variant `<fixture>~<origin>` in the selection: its fixture re-saves that origin's files
        variants = [f.partition(RESAVED) for f in self.sel.fixtures if RESAVED in f]
        fixtures = [FixtureSpec(name=f, path="/nonexistent/%s.py" % f,
                                resave=tuple(origin for base, _, origin in variants if base == f))
                    for f in self.sel.fixtures if RESAVED not in f]
        return Matrix(path=str(self.store.path("matrix.yaml")), environments=[], fixtures=fixtures,
                      formats=list(self.sel.formats), exclusions=list(exclusions), expectations=list(expectations))

    def assemble(self, exclusions=(), expectations=()) -> list[dict]:
        return records.assemble(self.store, self.matrix(exclusions, expectations), self.sel)

    def cells(self, **kw) -> dict:
        """(producer, consumer, fixture, format) -> record."""
        return {(r["producer"], r["consumer"], r["fixture"], r["format"]): r for r in self.assemble(**kw)}

    def write_results(self, **kw) -> list[dict]:
        recs = self.assemble(**kw)
        self.store.write_results(recs)
        with open(self.store.path("run.json"), "w") as fh:
            json.dump({"run_id": self.store.run_id}, fh)
        return recs

# The least a fixture module is (the matrix check parses it for build and data): for tests that run nothing.
STUB_FIXTURE = "def data(ctx):\n    pass\n\n\ndef build(ctx):\n    pass\n"
