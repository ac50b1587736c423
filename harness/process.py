"""Running the in-env worker: request/outcome value objects, journal polling, crash and hang handling.

A worker journals `start`/`done` per item. When it dies or hangs, the item in flight is retried once,
alone, in a fresh process; a second failure is recorded as `crash` or `timeout`, and the remaining
items go on in another fresh process. Nothing finished is ever redone: the journal is the record.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import results
from .backends.base import Launch, Launcher, Mount
from .errors import TfcompatError
from .worker.capture import DISK_FULL  # nothing is journaled for the item in flight

WORKER_MAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker", "main.py")

# Set on Ctrl-C/SIGTERM: every watcher kills its worker (in its own session, so the terminal's
# signal does not reach it) and raises Interrupted; the journals keep all that finished.
STOP = threading.Event()


class Interrupted(Exception):
    """The run was asked to stop; `tfcompat run --resume` goes on from the journals."""


@dataclass(frozen=True)
class WorkerRequest:
    """One batch of items for one env, phase and mode."""

    env_id: str
    launcher: Launcher  # starts and kills processes in the env (the backend's launch contract)
    phase: str  # "save" | "check"
    mode: str | None  # "plain" | "remedies" for checks
    items: tuple[dict, ...]
    journal: str
    timeout: float  # per item
    import_timeout: float = 600.0
    env: dict = field(default_factory=dict)
    cwd: str = "."
    offline: bool = False  # check phases: no network, where the backend can
    mounts: tuple[Mount, ...] = ()  # what a contained worker must see: run dir, worker, fixtures
    worker_main: str = WORKER_MAIN
    on_done: Callable[[str], None] | None = None  # called with each item key finished (progress)
    run_id: str = ""  # stamped into the journal (a `run` event), so a merge can refuse another run's


@dataclass
class WorkerOutcome:
    """What came back: a result (or a failure) per item, and how many processes imported TF."""

    done: dict = field(default_factory=dict)  # key -> worker result
    failed: dict = field(default_factory=dict)  # key -> {"outcome": crash|timeout|env-error, ...}
    processes: int = 0  # fresh worker processes started (each imports TF once)
    ready: dict | None = None  # the last `ready` event (versions, import time)
    import_s: float = 0.0


@dataclass
class Journal:
    """What a journal holds: results, recorded failures, and the attempts of unfinished items."""

    done: dict = field(default_factory=dict)  # key -> worker result
    failed: dict = field(default_factory=dict)  # key -> orchestrator-recorded failure event
    ready: dict | None = None  # the last `ready` event
    readies: int = 0  # `ready` events: one per TF import
    attempts: dict = field(default_factory=dict)  # key -> attempts journaled since its last start
    rung: dict = field(default_factory=dict)  # key -> the ladder rung last started (None: no remedy)
    retried: dict = field(default_factory=dict)  # key -> [failures retried in a fresh process: rung, attempts made]
    paths: tuple[str, ...] = ()  # the journal files read
    run_ids: set = field(default_factory=set)  # the runs whose orchestrator wrote to it (`run` events)

    def attempts_of(self, key: str, phase: str) -> tuple[list[dict], float]:
        """Every attempt this journal holds for a cell, in the order made, and the seconds spent:
        the attempts a process made before it died or hung, that failure as one more attempt at the
        rung in flight, then the attempts of the process that finished the cell."""
        out: list[dict] = []
        if key not in self.done and key not in self.failed:
            return out, 0.0
        for retried in self.retried.get(key, []):
            out += list(retried.get("made") or []) + [failure_attempt(retried, phase)]
        if key in self.done:
            out += self.done[key].get("attempts", [])
            return out, float(self.done[key].get("duration_s") or 0.0)
        out += self.attempts.get(key, [])
        out.append(failure_attempt(dict(self.failed[key], remedy=self.rung.get(key)), phase))
        return out, 0.0


def failure_attempt(event: dict, phase: str) -> dict:
    """A worker process that died or hung on this cell, as one attempt at the rung in flight."""
    return {"remedy": event.get("remedy"), "loader": None, "outcome": event["outcome"],
            "error_type": event.get("error_type"), "message": event.get("message"),
            "traceback": event.get("traceback"), "lost": [], "checks": {}, "warnings": [], "phase": phase}


def read_journal(path: str) -> Journal:
    """Everything a journal says, later events winning."""
    j = Journal(paths=(path,))
    for event in results.read(path):
        kind = event.get("event")
        if kind == "done":
            j.done[event["key"]] = dict(event["result"], duration_s=event.get("duration_s"))
        elif kind == "failed":
            j.failed[event["key"]] = event
        elif kind == "ready":
            j.ready, j.readies = event, j.readies + 1
        elif kind == "start":
            j.attempts[event["key"]] = []
            j.rung.pop(event["key"], None)
        elif kind == "retry":
            # The fresh process starts the cell again: what the dead one made stays with the failure.
            key = event["key"]
            j.retried.setdefault(key, []).append(dict(event, remedy=j.rung.get(key), made=j.attempts.get(key, [])))
        elif kind == "run":
            j.run_ids.add(event.get("run_id"))
        elif kind == "attempt":
            if event.get("result") is None:
                j.rung[event["key"]] = event.get("remedy")
            else:
                j.attempts.setdefault(event["key"], []).append(event["result"])
    return j


class ShardConflict(TfcompatError):
    """Two journals give one cell different results: no choice between them is honest."""


def merge_journals(journals: list[Journal]) -> Journal:
    """Several journals of one env and phase (a consumer checked in parts) as one. A cell that two
    of them finished with different results is a ShardConflict naming both files."""
    if len(journals) == 1:
        return journals[0]
    out = Journal()
    source: dict[str, tuple[str, ...]] = {}
    for j in journals:
        for key in set(j.done) | set(j.failed):
            if key in source and _result_of(out, key) != _result_of(j, key):
                raise ShardConflict("%s is in %s and in %s with different results (%s / %s): one of them is "
                                    "another run's or a shard ran twice; merge only one run's shards" % (
                                        key, ", ".join(source[key]), ", ".join(j.paths), _result_of(out, key),
                                        _result_of(j, key)))
            source.setdefault(key, j.paths)
        for mine, theirs in ((out.done, j.done), (out.failed, j.failed), (out.attempts, j.attempts),
                             (out.rung, j.rung), (out.retried, j.retried)):
            for key, value in theirs.items():
                mine.setdefault(key, value)
        out.ready = j.ready or out.ready
        out.readies += j.readies
        out.paths += j.paths
        out.run_ids |= j.run_ids
    return out


def _result_of(j: Journal, key: str) -> tuple:
    """What a journal says of a cell, for comparing two copies: each attempt's rung, outcome and
    losses (timings and messages aside), or the failure."""
    if key in j.done:
        return tuple((a.get("remedy"), a.get("outcome"), tuple(sorted(a.get("lost") or [])))
                     for a in j.done[key].get("attempts") or []) or (j.done[key].get("status"),)
    return ("failed", j.failed[key].get("outcome"))


class DiskFull(TfcompatError):
    """A disk filled up: the run stops, nothing about the item in flight is recorded, `--resume` redoes it."""


def run(request: WorkerRequest) -> WorkerOutcome:
    """Run every item of the request to a result or a recorded failure (resuming from the journal)."""
    out = WorkerOutcome()
    journal = read_journal(request.journal)
    out.done.update(journal.done)
    out.failed.update(journal.failed)
    out.ready = journal.ready
    pending = [it for it in request.items if it["key"] not in out.done and it["key"] not in out.failed]
    if pending and request.run_id and request.run_id not in journal.run_ids:
        results.append(request.journal, [{"event": "run", "run_id": request.run_id}])
    tries: dict[str, int] = {}
    while pending:
        alone = [it for it in pending if tries.get(it["key"], 0) > 0][:1]
        batch = alone or pending
        status, in_flight, detail = _spawn(request, batch, out)
        journal = read_journal(request.journal)
        out.ready = journal.ready or out.ready
        for it in batch:
            if it["key"] in journal.done:
                out.done[it["key"]] = journal.done[it["key"]]
        pending = [it for it in pending if it["key"] not in out.done]
        if status == "ok":
            continue
        if status == "no-import":
            for it in pending:
                _fail(request, out, it["key"], "env-error", detail)
            break
        if in_flight is None:  # died between items: just go on with a fresh process
            tries["__between__"] = tries.get("__between__", 0) + 1
            if tries["__between__"] > 3:
                for it in pending:
                    _fail(request, out, it["key"], "crash", detail)
                break
            continue
        tries[in_flight] = tries.get(in_flight, 0) + 1
        if tries[in_flight] >= 2:
            _fail(request, out, in_flight, status, detail)
            pending = [it for it in pending if it["key"] != in_flight]
        else:
            # Journaled, so the cell says a process died or hung on it even when the retry passes.
            results.append(request.journal, [{"event": "retry", "key": in_flight, "outcome": status, **detail}])
    return out


def _fail(request: WorkerRequest, out: WorkerOutcome, key: str, outcome: str, detail: dict) -> None:
    event = {"event": "failed", "key": key, "outcome": outcome, **detail}
    results.append(request.journal, [event])
    out.failed[key] = event
    if request.on_done is not None:
        request.on_done(key)


def _spawn(request: WorkerRequest, items: list[dict], out: WorkerOutcome):
    """Start one worker on `items`; watch its journal. Returns (status, key in flight, detail)."""
    os.makedirs(os.path.dirname(request.journal), exist_ok=True)
    job_path = request.journal + ".job.json"
    with open(job_path, "w") as fh:
        json.dump({"phase": request.phase, "mode": request.mode, "env_id": request.env_id,
                   "journal": request.journal, "items": list(items), "timeout": request.timeout}, fh)
    log_path = request.journal + ".log"
    offset = os.path.getsize(request.journal) if os.path.exists(request.journal) else 0
    proc = request.launcher.launch(Launch(args=request.launcher.argv(request.worker_main, job_path), cwd=request.cwd,
                                          log=log_path, env=dict(request.env), offline=request.offline,
                                          mounts=request.mounts))
    out.processes += 1
    started = time.monotonic()
    ready = False
    current, current_t = None, None
    pos = offset
    while True:
        if STOP.is_set():
            request.launcher.kill(proc)
            raise Interrupted(request.env_id)
        pos, events = _new_events(request.journal, pos)
        for ev in events:
            if ev.get("event") == "ready":
                ready = True
                out.import_s += float(ev.get("import_s", 0.0))
            elif ev.get("event") == "start":
                current, current_t = ev["key"], time.monotonic()
            elif ev.get("event") == "done":
                current, current_t = None, None
                if request.on_done is not None:
                    request.on_done(ev["key"])
        code = proc.poll()
        if code is not None:
            pos, events = _new_events(request.journal, pos)
            for ev in events:
                if ev.get("event") == "ready":
                    ready = True
                elif ev.get("event") == "start":
                    current = ev["key"]
                elif ev.get("event") == "done":
                    current = None
            if code == 0 and current is None:
                return "ok", None, {}
            if code == DISK_FULL:
                raise DiskFull("%s: no space left on device while the %s worker was on %s (see %s); free space, "
                               "then `tfcompat run --resume`" % (request.env_id, request.phase,
                                                                 current or "its journal", log_path))
            detail = {"message": _exit_text(code), "error_type": "WorkerDied",
                      "traceback": _tail(log_path), "exit_code": code}
            if not ready:
                return "no-import", None, {**detail, "message": "the environment's Python could not "
                                            "start the worker or import TensorFlow (" + _exit_text(code) + ")"}
            return "crash", current, detail
        now = time.monotonic()
        if not ready and now - started > request.import_timeout:
            request.launcher.kill(proc)
            return "no-import", None, {"message": "TensorFlow import took over %ss" % request.import_timeout,
                                       "error_type": "Timeout", "traceback": _tail(log_path)}
        if current is not None and current_t is not None and now - current_t > request.timeout:
            request.launcher.kill(proc)
            return "timeout", current, {"message": "no result within %ss; the process was killed"
                                        % request.timeout, "error_type": "Timeout",
                                        "traceback": _tail(log_path)}
        time.sleep(0.2)


def _new_events(path: str, pos: int) -> tuple[int, list[dict]]:
    if not os.path.exists(path):
        return pos, []
    with open(path, "rb") as fh:
        fh.seek(pos)
        data = fh.read()
    end = data.rfind(b"\n")
    if end < 0:
        return pos, []
    events = []
    for line in data[: end + 1].splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return pos + end + 1, events


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return "killed by signal %s" % signal.Signals(-code).name
        except ValueError:
            return "killed by signal %d" % -code
    return "exited with code %d" % code


def _tail(path: str, limit: int = 3000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
