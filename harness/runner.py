"""The run: make envs, save phase (every env writes every artifact), check phase (every env checks
every artifact of every env), then one results record per cell and the report.

All state lives in the run dir and its journals, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import __version__, process, results
from .backends import get_backend
from .errors import ConfigError, EnvError, TfcompatError
from .matrix import Matrix
from .records import annotate_expectations, assemble, expectation_summary
from .worker.formats import FORMATS

WORKER_VERSION = __version__ + "+w2"


@dataclass(frozen=True)
class Selection:
    """What to run: env ids (producers and consumers), fixtures, formats."""

    envs: tuple[str, ...]
    fixtures: tuple[str, ...]
    formats: tuple[str, ...]


@dataclass
class RunState:
    """Everything a phase leaves for the next, rebuilt from the run dir on resume."""

    run_id: str
    run_dir: str
    env_errors: dict = field(default_factory=dict)  # env id -> message
    timings: dict = field(default_factory=dict)  # phase -> seconds (wall)
    env_timings: dict = field(default_factory=dict)  # env id -> {phase: seconds}


def select(matrix: Matrix, only: list[str] | None, fixtures: list[str] | None,
           formats: list[str] | None) -> Selection:
    """Validate a CLI selection against the matrix; every unknown name is one line."""
    problems = []
    env_ids = [e.id for e in matrix.environments]
    fx_names = [f.name for f in matrix.fixtures]

    def pick(given, known, flag, what):
        if not given:
            return tuple(known)
        for name in given:
            if name not in known:
                problems.append("%s: unknown %s %r; choose from: %s" % (flag, what, name, ", ".join(known)))
        return tuple(n for n in known if n in given)

    sel = Selection(pick(only, env_ids, "--only", "environment"),
                    pick(fixtures, fx_names, "--fixtures", "fixture"),
                    pick(formats, list(matrix.formats), "--formats", "format"))
    if problems:
        raise ConfigError(problems)
    return sel


def new_run_dir(state_dir: str) -> tuple[str, str]:
    run_id = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = os.path.join(state_dir, "runs", run_id)
    n = 1
    while os.path.exists(run_dir):
        n += 1
        run_dir = os.path.join(state_dir, "runs", "%s-%d" % (run_id, n))
    os.makedirs(run_dir)
    return os.path.basename(run_dir), run_dir


def latest_run_dir(state_dir: str) -> str:
    runs = os.path.join(state_dir, "runs")
    names = sorted(n for n in os.listdir(runs) if os.path.isfile(os.path.join(runs, n, "run.json"))) \
        if os.path.isdir(runs) else []
    if not names:
        raise TfcompatError("--resume: no earlier run under %s; start one with `tfcompat run`" % runs)
    return os.path.join(runs, names[-1])


def project_root(matrix_path: str) -> str:
    """The dir holding tox.ini: next to the matrix, else the checkout this harness runs from."""
    here = os.path.dirname(os.path.abspath(matrix_path))
    if os.path.exists(os.path.join(here, "tox.ini")):
        return here
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.exists(os.path.join(checkout, "tox.ini")):
        return checkout
    raise TfcompatError("no tox.ini next to %s nor in %s; run from a tfcompat checkout" % (matrix_path, checkout))


class Runner:
    """One run of the matrix with one backend."""

    def __init__(self, matrix: Matrix, selection: Selection, run_dir: str, *, backend: str = "tox",
                 jobs: int = 2, timeout: float | None = None, log=None) -> None:
        self.matrix = matrix
        self.sel = selection
        self.run_dir = run_dir
        self.run_id = os.path.basename(run_dir)
        self.jobs = max(1, jobs)
        self.timeout = float(timeout or matrix.check_timeout)
        self.log = log or _say
        self.root = project_root(matrix.path)
        backend_cls = get_backend(backend)
        self.backend_name = backend
        self.backends = {e: backend_cls(matrix.env(e), self.root, self._path("logs"), matrix.path)
                         for e in selection.envs}
        self.state = RunState(self.run_id, run_dir)

    # -- paths -------------------------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return os.path.join(self.run_dir, *parts)

    def artifact_dir(self, env: str, fixture: str, fmt: str) -> str:
        return self._path("artifacts", env, fixture, fmt)

    def journal(self, env: str, phase: str) -> str:
        return self._path("journals", "%s.%s.jsonl" % (env, phase))

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> dict:
        """Both phases for the selection; returns the run meta (also written to run.json)."""
        started = time.time()
        meta = self._load_meta() or {"run_id": self.run_id, "started": _iso(started),
                                     "matrix_path": self.matrix.path, "backend": self.backend_name,
                                     "selection": self.sel.__dict__, "worker_version": WORKER_VERSION,
                                     "fixtures": list(self.sel.fixtures), "formats": list(self.sel.formats)}
        self._save_meta(meta)
        t = time.time()
        self._parallel(self._create_and_save, self.sel.envs)
        self.state.timings["wall_create_and_save_s"] = round(time.time() - t, 1)
        t = time.time()
        ok = [e for e in self.sel.envs if e not in self.state.env_errors]
        self._parallel(self._check, ok)
        self.state.timings["wall_check_s"] = round(time.time() - t, 1)
        records = assemble(self)
        path = self._path("results.jsonl")
        if os.path.exists(path):
            os.remove(path)
        results.append(path, records)
        meta.update(self._meta_tail(started, meta, records))
        self._save_meta(meta)
        return meta

    def _parallel(self, fn, envs) -> None:
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            try:
                for env, err in zip(envs, pool.map(self._guard(fn), envs)):
                    if err:
                        self.state.env_errors[env] = err
                        self.log("%-18s env-error: %s" % (env, err))
            except (KeyboardInterrupt, process.Interrupted):
                # Stop every watcher (each kills its worker) before the pool waits for them.
                process.STOP.set()
                raise KeyboardInterrupt from None

    def _guard(self, fn):
        def call(env):
            try:
                fn(env)
                return None
            except EnvError as exc:
                return str(exc)
        return call

    def _create_and_save(self, env: str) -> None:
        backend = self.backends[env]
        t = time.time()
        rebuilt = backend.create()
        self._time(env, "create_s", t)
        self.log("%-18s env %s (%.0fs)" % (env, "built" if rebuilt else "reused", time.time() - t))
        items = []
        for fx in self.sel.fixtures:
            spec = self.matrix.fixture(fx)
            for fmt in self.sel.formats:
                items.append({"key": "save|%s|%s" % (fx, fmt), "fixture": fx, "fixture_path": spec.path,
                              "format": fmt, "out_dir": self.artifact_dir(env, fx, fmt),
                              "module_dir": self._path("artifacts", env, fx, "_module")})
        t = time.time()
        out = self._worker(env, "save", None, items, timeout=self.timeout)
        self._time(env, "save_s", t)
        if not out.ready and all(f.get("outcome") == "env-error" for f in out.failed.values()) and out.failed:
            first = next(iter(out.failed.values()))
            raise EnvError("%s: %s" % (env, first.get("message")))
        saved = sum(1 for r in out.done.values() if r.get("status") == "saved")
        self.log("%-18s saved %d/%d artifacts (%d TF import(s))" % (env, saved, len(items), out.processes))

    def saved_artifacts(self) -> list[tuple[str, str, str, dict]]:
        """(producer, fixture, format, meta) for every artifact the save phase wrote."""
        out = []
        for env in self.sel.envs:
            if env in self.state.env_errors:
                continue
            done, _, _, _ = process.read_journal(self.journal(env, "save"))
            for fx in self.sel.fixtures:
                for fmt in self.sel.formats:
                    meta = done.get("save|%s|%s" % (fx, fmt))
                    if meta is not None:
                        out.append((env, fx, fmt, meta))
        return out

    def check_key(self, producer: str, consumer: str, fixture: str, fmt: str) -> str:
        return "check|%s|%s|%s|%s" % (producer, consumer, fixture, fmt)

    def _check(self, consumer: str) -> None:
        plain, code = [], []
        for producer, fx, fmt, meta in self.saved_artifacts():
            if meta.get("status") != "saved" or self.matrix.exclusion_for(producer, consumer, fx, fmt):
                continue
            spec = self.matrix.fixture(fx)
            item = {"key": self.check_key(producer, consumer, fx, fmt), "producer": producer,
                    "fixture": fx, "format": fmt, "artifact_dir": self.artifact_dir(producer, fx, fmt),
                    "fixture_path": spec.path, "atol": spec.atol, "rtol": spec.rtol}
            (code if FORMATS[fmt][2] == "code" else plain).append(item)
        t = time.time()
        # The no-remedy process never gets a fixture path: it runs as a user without the code.
        plain_items = [{k: v for k, v in it.items() if k != "fixture_path"} for it in plain]
        out = self._worker(consumer, "check-plain", "plain", plain_items, timeout=self.timeout)
        self._time(consumer, "check_plain_s", t)
        again = [it for it in plain if not _passed(out.done.get(it["key"]))] + code
        t = time.time()
        out2 = self._worker(consumer, "check-remedies", "remedies", again, timeout=self.timeout)
        self._time(consumer, "check_remedies_s", t)
        self.log("%-18s checked %d artifacts (%d no-remedy, %d with remedies; %d+%d TF import(s))" % (
            consumer, len(plain) + len(code), len(plain), len(again), out.processes, out2.processes))

    def _worker(self, env: str, phase: str, mode: str | None, items: list[dict], timeout: float):
        backend = self.backends[env]
        scratch = self._path("scratch", env)
        os.makedirs(scratch, exist_ok=True)
        command = backend.command() if phase == "save" else backend.offline_prefix() + backend.command()
        req = process.WorkerRequest(
            env_id=env, command=command, phase="save" if phase == "save" else "check",
            mode=mode, items=tuple(items), journal=self.journal(env, phase), timeout=timeout,
            env=backend.env_vars(), cwd=scratch)
        return process.run(req) if items else process.WorkerOutcome()

    def _time(self, env: str, key: str, t: float) -> None:
        self.state.env_timings.setdefault(env, {})[key] = round(time.time() - t, 1)

    # -- meta --------------------------------------------------------------------------------
    def _load_meta(self) -> dict | None:
        try:
            with open(self._path("run.json")) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def _save_meta(self, meta: dict) -> None:
        tmp = self._path("run.json.tmp")
        with open(tmp, "w") as fh:
            json.dump(meta, fh, indent=1, sort_keys=True, default=str)
        os.replace(tmp, self._path("run.json"))

    def tf_imports(self) -> dict:
        """env -> {phase: number of worker processes that imported TF}, counted from the journals."""
        out = {}
        for env in self.sel.envs:
            counts = {}
            for phase, label in (("save", "save"), ("check-plain", "plain"), ("check-remedies", "remedies")):
                counts[label] = process.read_journal(self.journal(env, phase))[3]
            out[env] = counts
        return out

    def _meta_tail(self, started: float, meta: dict, records: list[dict]) -> dict:
        finished = time.time()
        envs = []
        for env in self.sel.envs:
            spec = self.matrix.env(env)
            envs.append({"id": env, "python": spec.python, "tensorflow": spec.tensorflow,
                         "keras": spec.keras if spec.keras != "tf-keras" else "tf-keras " + str(spec.tf_keras),
                         "spec": spec.describe(), "requirements": spec.requirements(),
                         "recipes": list(spec.recipes), "error": self.state.env_errors.get(env)})
        counts = {}
        for rec in records:
            counts[rec["outcome"]] = counts.get(rec["outcome"], 0) + 1
        prior = meta.get("segments", [])
        segment = {"started": _iso(started), "finished": _iso(finished),
                   "duration_s": round(finished - started, 1), "timings": self.state.timings,
                   "env_timings": self.state.env_timings}
        return {"finished": _iso(finished), "segments": prior + [segment],
                "duration_s": round(sum(s["duration_s"] for s in prior + [segment]), 1),
                "envs": envs, "tf_imports": self.tf_imports(), "outcome_counts": counts,
                "phase_times": _phase_times(self.state), "checks": len(records),
                "check_network": "off (network namespace)" if any(b.offline_prefix() for b in self.backends.values())
                else "on (this backend cannot switch it off here)"}


def _say(line: str) -> None:
    print("tfcompat: " + line, flush=True)


def _phase_times(state: RunState) -> dict:
    """Per-env seconds summed per phase (envs run in parallel: these add up to more than the
    wall time), and the wall time of each phase."""
    out = {"env_create_s": 0.0, "save_s": 0.0, "check_plain_s": 0.0, "check_remedies_s": 0.0}
    for times in state.env_timings.values():
        out["env_create_s"] += times.get("create_s", 0.0)
        out["save_s"] += times.get("save_s", 0.0)
        out["check_plain_s"] += times.get("check_plain_s", 0.0)
        out["check_remedies_s"] += times.get("check_remedies_s", 0.0)
    out.update(state.timings)
    return {k: round(v, 1) for k, v in out.items()}


def _passed(result: dict | None) -> bool:
    if not result:
        return False
    attempts = result.get("attempts") or []
    return any(a.get("outcome") == "pass" for a in attempts)


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")


def publish(run_dir: str, reports_dir: str, meta: dict, matrix: Matrix | None = None) -> tuple[str, dict]:
    """Copy the run's results into reports/ and render the page; returns (index.html path,
    expectation summary).

    With `matrix`, the copy carries that matrix's expectations (the run dir keeps what was recorded),
    and meta["expectations"] summarises how the run compares with them."""
    from .report import render_report

    os.makedirs(reports_dir, exist_ok=True)
    records = list(results.read(os.path.join(run_dir, "results.jsonl")))
    if matrix is not None:
        annotate_expectations(records, matrix)
    meta = dict(meta, expectations=expectation_summary(records))
    dst = os.path.join(reports_dir, "results.jsonl")
    if os.path.exists(dst):
        os.remove(dst)
    results.append(dst, records)
    with open(os.path.join(reports_dir, "run.json"), "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True, default=str)
    return render_report(dst, reports_dir, meta), meta["expectations"]
