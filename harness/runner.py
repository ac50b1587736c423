"""The run: make envs, save phase (every env writes every artifact), check phase (every env checks
every artifact of every env), then one results record per cell and the report.

All state lives in the run dir and its journals, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import __version__, process, progress, results, tfjs
from .backends import get_backend
from .backends.base import Backend, Mount, Where
from .cache import (
    CACHED_OUTCOMES,
    JUDGING_CODE,
    ResultCache,
    artifact_digest,
    artifact_key,
    cell_key,
    code_digest,
    env_fingerprint,
    fixture_hash,
)
from .costs import Costs
from .errors import ConfigError, EnvError, TfcompatError
from .matrix import Matrix
from .records import annotate_expectations, assemble, expectation_summary, harness_defects, judge
from .resolve import Resolution, describe, drift, resolve_backends, summary
from .store import RunStore, Selection, check_key, convert_key, save_key
from .verdict import passed
from .worker import WORKER_VERSION
from .worker.formats import FORMATS


@dataclass
class RunState:
    """Everything a phase leaves for the next, rebuilt from the run dir on resume."""

    run_id: str
    run_dir: str
    env_errors: dict = field(default_factory=dict)  # env id -> message (create or save failed)
    check_errors: dict = field(default_factory=dict)  # env id -> message (its check phase failed)
    timings: dict = field(default_factory=dict)  # phase -> seconds (wall)
    env_timings: dict = field(default_factory=dict)  # env id -> {phase: seconds}


def select(matrix: Matrix, only: list[str] | None, fixtures: list[str] | None,
           formats: list[str] | None, *, variants: bool = True) -> Selection:
    """Validate a CLI selection against the matrix; every unknown name is one line.

    The re-save variants of the selected fixtures that ask for them follow (`variants=False`: a
    staged run, whose shards cannot reach every env's artifacts, leaves them out, and TF.js with
    them: the converter needs every producer's files too)."""
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
    if variants:
        sel = Selection(sel.envs, matrix.variants(sel.fixtures, sel.envs), sel.formats)
    else:
        sel = Selection(tuple(e for e in sel.envs if matrix.env(e).kind != "tfjs"), sel.fixtures,
                        tuple(f for f in sel.formats if f not in tfjs.TFJS_FORMATS))
    return sel


def preflight(matrix: Matrix, sel: Selection, backend: str | None) -> None:
    """Every backend the selection needs can work (its engine answers): checked before any work."""
    names = sorted({matrix.env(e).backend_name(backend or "tox") for e in sel.envs})
    for name in names:
        get_backend(name).preflight()


def plan_id(matrix: Matrix, sel: Selection) -> str:
    """What a staged run's shards must agree on: the selection, each env's spec, each fixture's
    source, the formats and the worker version."""
    import hashlib

    data = {"selection": sel.__dict__, "worker": code_digest(),
            "envs": {e: [matrix.env(e).requirements(), matrix.env(e).env_vars(), matrix.env(e).python]
                     for e in sel.envs},
            "fixtures": {f: fixture_hash(matrix.fixture(f).path) for f in sel.fixtures},
            "exclusions": matrix.exclusions, "timeout": matrix.check_timeout}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_code() -> dict:
    """Digests of the code a run's results come from: `attempts` (the worker, the JS worker, the
    journal reader: part of every cache key; a resumed or merged run must have the same) and
    `judging` (what turns attempts into outcomes: cached cells are judged again by today's)."""
    return {"attempts": code_digest(), "judging": code_digest(JUDGING_CODE)}


def shard_groups(envs: list[str], n: int, cost: dict[str, float]) -> list[list[str]]:
    """`envs` in at most `n` groups balanced by `cost` (longest first, each to the lightest group);
    deterministic for the same inputs. Empty groups are dropped."""
    groups: list[list[str]] = [[] for _ in range(max(1, min(n, len(envs))))]
    loads = [0.0] * len(groups)
    for env in sorted(envs, key=lambda e: (-cost.get(e, 1.0), envs.index(e))):
        i = loads.index(min(loads))
        groups[i].append(env)
        loads[i] += cost.get(env, 1.0)
    return [sorted(g, key=envs.index) for g in groups if g]


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

    def __init__(self, matrix: Matrix, selection: Selection, run_dir: str, *, backend: str | None = None,
                 jobs: int = 2, timeout: float | None = None, log=None, refresh: tuple[str, ...] = (),
                 stage: str | None = None, group: tuple[str, ...] | None = None, shard: str = "all",
                 producers: dict | None = None) -> None:
        self.matrix = matrix
        self.sel = selection
        self.run_dir = run_dir
        self.run_id = os.path.basename(run_dir)
        self.jobs = max(1, jobs)
        self.timeout = float(timeout or matrix.check_timeout)
        # A live display on a terminal, plain lines elsewhere (and always when the caller logs).
        self.progress = progress.make(_say) if log is None else progress.Lines(log)
        self.log = self.progress.say
        self.root = project_root(matrix.path)
        self.store = RunStore(run_dir)
        # Each env's own `backend:` wins; --backend (default tox) serves the envs that name none.
        self.default_backend = backend or "tox"
        self.backend_of = {e: matrix.env(e).backend_name(self.default_backend) for e in selection.envs}
        where = Where(self.root, os.path.dirname(os.path.dirname(os.path.abspath(run_dir))),
                      self.store.path("logs"), matrix.path, self.run_id)
        self.backends: dict[str, Backend] = {e: get_backend(self.backend_of[e])(matrix.env(e), where)
                                             for e in selection.envs}
        # The converter env makes TF.js files from the producers' (and Keras files from TF.js
        # producers'); it is neither a producer nor a consumer.
        self.converts = {(e, fmt) for e in selection.envs for fmt in selection.formats
                         if tfjs.converted(matrix.env(e), fmt)}
        self.converter = matrix.converter if self.converts else None
        if self.converter is not None:
            self.backends[self.converter.id] = get_backend(self.converter.backend_name(self.default_backend))(
                self.converter, where)
        self.state = RunState(self.run_id, run_dir)
        self.state_dir = where.state_dir
        # The result cache: what an unchanged cell key already gave is reused, never recomputed.
        self.cache = ResultCache(where.state_dir)
        self.refresh = set(refresh)  # envs whose artifacts and cells are recomputed whatever the cache says
        self.fx_hash = {fx: fixture_hash(matrix.fixture(fx).path) for fx in selection.fixtures}
        # fixture -> the origin env of a re-save variant (None for the others): read once, not per cell
        self.origin = {fx: matrix.fixture(fx).origin for fx in selection.fixtures}
        # fixture -> its TF.js twin's path where there is one (items for TF.js envs carry it)
        self.twin = {fx: matrix.fixture(fx).twin for fx in selection.fixtures
                     if os.path.exists(matrix.fixture(fx).twin)}
        self.own = {e: self.own_formats(e) for e in selection.envs}  # what each env's own worker saves
        self.fps: dict[str, str | None] = {}
        self.created: set[str] = set()
        self.lock = threading.Lock()
        self.reused_artifacts: dict[tuple, dict] = {}
        self.reused_cells: dict[str, dict] = {}
        self.seen: dict[str, dict | None] = {}  # cache key -> what the cache held (this run's lookups)
        self.digests: dict[str, str | None] = {}  # artifact dir saved by this run -> its digest (hashed once)
        self.resolutions: dict[str, Resolution | None] = {}  # env -> its requirements resolved today
        self.drift: dict[str, list] = {}  # env -> what its requirements resolve to now that it does not hold
        self.saved_here: set[tuple[str, str, str]] = set()  # (producer, fixture, format) this run saved
        # A shard of a staged run (CI machines): only the save phase, or only the check phase, for
        # `group` (producers or consumers); `merge` assembles the shards into one run.
        self.stage = stage
        self.group = tuple(group) if group is not None else tuple(selection.envs)
        self.shard = "all" if stage is None else "%s-%s" % (stage, shard)
        # A check shard may take only some producers' artifacts of a consumer (a consumer too long
        # for one machine is split): it then journals in a part of its own.
        self.producers_of = {c: set(p) for c, p in (producers or {}).items()}
        self.part = self.shard.replace("/", "of") if self.producers_of else ""

    def mounts(self) -> tuple[Mount, ...]:
        """Paths a contained worker needs, each at its own path: the run dir (artifacts, journals,
        Hub modules; written), the worker and the fixtures' folders (read only)."""
        fixture_dirs = sorted({os.path.dirname(self.matrix.fixture(fx).path) for fx in self.sel.fixtures} - {""})
        worker = os.path.dirname(process.WORKER_MAIN)
        run_dir = os.path.abspath(self.run_dir)
        runs = os.path.dirname(run_dir)  # reused artifacts live in the runs that saved them
        return (Mount(runs, runs), Mount(run_dir, run_dir, read_only=False), Mount(worker, worker),
                *(Mount(d, d) for d in fixture_dirs if d != worker))

    # -- the result cache ----------------------------------------------------------------------
    def fingerprint(self, env: str) -> str | None:
        """The env's fingerprint as it would be built today: what its env-state record says is
        installed, unless its requirements now resolve to other versions (drift: the env is stale,
        and its fingerprint is the resolution's, so cells of the env as it is are never reused);
        for an env not built here (or gone), the resolution's; where nothing resolves (an index out
        of reach, a backend that does not resolve), the fingerprint last seen for the spec."""
        spec = self.matrix.env(env)
        try:
            state = self.backends[env].current_state()
        except TfcompatError:
            state = None
        installed = (state or {}).get("installed")
        res = self._resolution(env)
        today = res.packages if res is not None else None
        if installed:
            changes = drift(installed.get("packages") or {}, today) if today is not None else []
            if changes and today is not None:
                self.drift[env] = changes
                return env_fingerprint(spec, {"python": installed.get("python"), "packages": today})
            return env_fingerprint(spec, installed)
        if today is not None:
            python = self._python_of(env)
            return env_fingerprint(spec, {"python": python, "packages": today}) if python else None
        return self.cache.remembered(env, spec)

    def _python_of(self, env: str) -> str | None:
        """The env's Python X.Y.Z as last built (its record, even a stale one), else as last seen."""
        recorded = self.backends[env].recorded_state() or {}
        return (recorded.get("installed") or {}).get("python") or self.cache.remembered_python(
            env, self.matrix.env(env))

    def _resolution(self, env: str) -> Resolution | None:
        if env not in self.resolutions:
            self._resolve([env])
        return self.resolutions.get(env)

    def _resolve(self, envs: list[str]) -> None:
        """Resolve these envs' requirements as their installers would today, all at once."""
        todo = [e for e in envs if e not in self.resolutions]
        if not todo:
            return
        installed = {e: (self.backends[e].recorded_state() or {}).get("installed") for e in todo}
        found = resolve_backends({e: self.backends[e] for e in todo}, installed, jobs=4)
        self.resolutions.update({e: found.get(e) for e in todo})

    def _fingerprints(self, envs: list[str] | None = None) -> dict[str, str | None]:
        """Each env's fingerprint (of the selection and the converter, or of `envs`)."""
        envs = envs if envs is not None else list(self.sel.envs) + ([self.converter.id] if self.converter else [])
        self._resolve(envs)
        return {env: self.fingerprint(env) for env in envs}

    def drift_lines(self, limit: int | None = None) -> dict[str, str]:
        """env -> one line: what drifted (the env is rebuilt; the first `limit` changes), or why its
        resolution is unknown."""
        out = {env: "drift: %s" % (summary(changes, limit) if limit else ", ".join(describe(c) for c in changes))
               for env, changes in self.drift.items()}
        for env, res in self.resolutions.items():
            if res is not None and not res.known and env not in out:
                out[env] = "drift not checked (the requirements did not resolve: %s)" % res.reason
        return out

    def cached_artifact(self, env: str, fx: str, fmt: str) -> dict | None:
        fp = self.fps.get(env)
        if fp is None or env in self.refresh:
            return None
        fx_key = self._fx_key(fx, env, fmt)
        if fx_key is None:
            return None
        key = artifact_key(fp, fx_key, fmt)
        # Looked up once per key and run: the planning loops ask for every producer's artifact once
        # per consumer, and each lookup walks the artifact's files to check its digest.
        if key not in self.seen:
            self.seen[key] = self.cache.artifact(key)
        return self.seen[key]

    def cell_key(self, producer: str, consumer: str, fx: str, fmt: str) -> str | None:
        """The cell's cache key, once everything it depends on is known (the artifact's bytes too)."""
        fp, fc, fx_key = self.fps.get(producer), self.fps.get(consumer), self._fx_key(fx, producer, fmt)
        if fp is None or fc is None or fx_key is None:
            return None
        art = self.artifact_digest(producer, fx, fmt)
        if art is None:
            return None
        return cell_key(fp, fc, fx_key, fmt, self.matrix.fixture(fx).tolerances(), self.timeout, art)

    def artifact_digest(self, producer: str, fx: str, fmt: str) -> str | None:
        """The digest of the artifact a cell of (producer, fx, fmt) loads: the one this run saved,
        else the one it reuses, else (planning, before any save) the one the cache holds; None
        while it is still to be saved."""
        if (producer, fx, fmt) in self.saved_here:
            path = self.store.artifact_dir(producer, fx, fmt)
            if path not in self.digests:
                self.digests[path] = artifact_digest(path)
            return self.digests[path]
        entry = self.reused_artifacts.get((producer, fx, fmt)) or self.cached_artifact(producer, fx, fmt)
        return entry.get("digest") if entry else None

    def own_formats(self, env: str) -> list[str]:
        """The formats `env`'s own worker saves: the selected ones the converter does not make, and
        what the converter starts from (even where not selected)."""
        own = [f for f in self.sel.formats if (env, f) not in self.converts]
        for fmt in self.sel.formats:
            sources = tfjs.sources(self.matrix.env(env), fmt)
            if sources and not set(sources) & set(own):
                own.append(sources[0])
        return own

    def makes(self, env: str, fx: str) -> bool:
        """Whether `env` makes artifacts of `fx`: not of a re-save variant of its own files, and a
        TF.js env re-saves no Keras file."""
        origin = self.origin[fx]
        return origin != env and not (origin is not None and self.matrix.env(env).kind == "tfjs")

    def _fx_key(self, fx: str, producer: str, fmt: str) -> str | None:
        """The fixture's part of a cache key; a re-save variant's also holds its origin env's
        fingerprint (its artifacts are made from the origin's), a converted artifact the converter's."""
        origin = self.origin[fx]
        key = self.fx_hash[fx]
        if origin is not None:
            fp = self.fps.get(origin)
            if fp is None or origin in self.refresh:
                return None
            key = "%s@%s" % (key, fp)
        if (producer, fmt) in self.converts:
            conv = self.converter.id if self.converter else ""
            if self.fps.get(conv) is None or conv in self.refresh:
                return None
            key = "%s@js:%s" % (key, self.fps[conv])
        return key

    def cached_cell(self, producer: str, consumer: str, fx: str, fmt: str) -> dict | None:
        """The cache entry that answers this cell: its attempts, judged by today's rules, give an
        outcome worth keeping (an entry whose attempts now judge as a harness defect, say, is run again)."""
        if self.refresh & {producer, consumer}:
            return None
        key = self.cell_key(producer, consumer, fx, fmt)
        if key is None:
            return None
        if key not in self.seen:
            entry = self.cache.cell(key)
            if entry is not None and judge(entry["record"]["attempts"])["outcome"] not in CACHED_OUTCOMES:
                entry = None
            self.seen[key] = entry
        return self.seen[key]

    def cache_plan(self) -> dict:
        """Per env, with what the env-state records say now: {artifacts: [cached, to run],
        checks: [cached, to run]} (the env as consumer); nothing is built or started."""
        self.fps = self._fingerprints()
        out = {}
        for env in self.sel.envs:
            arts = [0, 0]
            checks = [0, 0]
            for fx in self.sel.fixtures:
                for fmt in self.sel.formats:
                    if self.makes(env, fx):
                        arts[0 if self.cached_artifact(env, fx, fmt) else 1] += 1
                    for producer in self.sel.envs:
                        checks[0 if self._answered(producer, env, fx, fmt) else 1] += 1
            out[env] = {"artifacts": arts, "checks": checks}
        return out

    def _needs_work(self, env: str, saves_only: bool = False) -> bool:
        if self.fps.get(env) is None or env in self.refresh:
            return True
        for fx in self.sel.fixtures:
            for fmt in self.own[env]:
                if self.makes(env, fx) and self.cached_artifact(env, fx, fmt) is None:
                    return True
            for fmt in self.sel.formats:
                if saves_only:
                    continue
                if not all(self._answered(producer, env, fx, fmt) for producer in self.sel.envs):
                    return True
        return False

    def _answered(self, producer: str, consumer: str, fx: str, fmt: str) -> bool:
        """No check will run for this cell: the matrix excludes it, the cache holds it, or the cache
        holds its artifact and that artifact needs no check (not saved)."""
        if self.matrix.exclusion_for(producer, consumer, fx, fmt) or not self.makes(producer, fx) \
                or tfjs.not_read(self.matrix.env(consumer), fmt):
            return True
        if self.cached_cell(producer, consumer, fx, fmt) is not None:
            return True
        art = self.cached_artifact(producer, fx, fmt)
        return art is not None and art["meta"].get("status") != "saved"

    def _reuse_unsaved_artifacts(self) -> None:
        """Artifacts that no save journal of this run holds (no save shard ran them) come from the
        cache, where it has them."""
        for env in self.sel.envs:
            done = self.store.read(env, "save").done
            for fx in self.sel.fixtures:
                for fmt in self.sel.formats:
                    if save_key(fx, fmt) not in done and (env, fx, fmt) not in self.reused_artifacts:
                        entry = self.cached_artifact(env, fx, fmt)
                        if entry is not None:
                            self.reused_artifacts[(env, fx, fmt)] = entry

    def _ensure(self, env: str) -> None:
        """Make (or reuse) the env once per segment; its fingerprint is then what it holds. An env
        that holds other versions than its requirements resolve to today is built again from
        scratch (once: where the installer still disagrees with the resolver, what it holds is what
        its cells are keyed by, and the log says so)."""
        with self.lock:
            if env in self.created:
                return
        backend = self.backends[env]
        t = time.time()
        before = self.drift.get(env)
        if before:
            backend.invalidate("drift: " + summary(before))
        rebuilt = backend.create()
        # Resolved again with what the env now holds: a backend may keep what its venv was seeded
        # with (Docker's setuptools), as its installer did.
        self.resolutions.pop(env, None)
        left = self._drift_now(env)
        if left and not before:
            # Reused as it stood (a venv tox reconciled for a new state dir, say): not today's.
            self.drift[env] = left
            backend.invalidate("drift: " + summary(left))
            rebuilt = backend.create()
            left = self._drift_now(env)
        self._time(env, "create_s", t)
        said = "; drift: %s" % summary(self.drift[env]) if self.drift.get(env) else ""
        if left:
            said += "; still holds other versions than its requirements resolve to (%s): its cells are keyed by " \
                    "what it holds" % summary(left)
        self.log("%-18s env %s (%.0fs)%s" % (env, "built" if rebuilt else "reused", time.time() - t, said))
        state = backend.current_state() or {}
        with self.lock:
            self.created.add(env)
            self.fps[env] = env_fingerprint(self.matrix.env(env), state["installed"]) if state.get(
                "installed") else self.fingerprint(env)

    def _drift_now(self, env: str) -> list:
        """What the env, as its record says it stands now, lacks of today's resolution."""
        res = self._resolution(env)
        installed = (self.backends[env].current_state() or {}).get("installed")
        if res is None or res.packages is None or not installed:
            return []
        return drift(installed.get("packages") or {}, res.packages)

    def _fill_cache(self, records: list[dict]) -> None:
        """Put what this run computed into the cache (reused entries are already there)."""
        self._note_saved()
        versions = self.store.versions(self.sel.envs)
        pythons = {e: (versions.get(e) or {}).get("python") or self._python_of(e) for e in self.fps}
        self.cache.remember(self.fps, {e: self.matrix.env(e) for e in self.fps}, pythons)
        every = sorted({f for env in self.sel.envs for f in self.own[env]} | set(self.sel.formats))
        metas, _ = self.store.saves(Selection(self.sel.envs, self.sel.fixtures, tuple(every)))
        for (env, fx, fmt), meta in metas.items():
            fp = self.fps.get(env)
            if fp is None or (env, fx, fmt) in self.reused_artifacts:
                continue
            fx_key = self._fx_key(fx, env, fmt)
            if fx_key is None:
                continue
            self.cache.put_artifact(artifact_key(fp, fx_key, fmt), meta,
                                    self.store.artifact_dir(env, fx, fmt), self.run_id, versions.get(env))
        for rec in records:
            if rec.get("consumer") is None or rec.get("cached"):
                continue
            key = self.cell_key(rec["producer"], rec["consumer"], rec["fixture"], rec["format"])
            if key is not None:
                self.cache.put_cell(key, rec)

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> dict:
        """Both phases for the selection; returns the run meta (also written to run.json)."""
        started = time.time()
        meta = self.store.load_meta(self.shard) or {
            "run_id": self.run_id, "started": _iso(started), "matrix_path": self.matrix.path,
            "backend": self.default_backend, "selection": self.sel.__dict__, "worker_version": WORKER_VERSION,
            "code": run_code(),
            "tfcompat_version": __version__, "fixtures": list(self.sel.fixtures), "formats": list(self.sel.formats),
            "refresh": sorted(self.refresh), "plan_id": plan_id(self.matrix, self.sel),
            "stage": self.stage, "shard": self.shard, "group": list(self.group)}
        meta["backends"] = dict(meta.get("backends") or {}, **self.backend_of)
        self.store.save_meta(meta, self.shard)
        for env in self.group:  # this segment finds out again which envs cannot be built
            if self.stage != "check":
                self.store.set_env_error(env, None)
            if self.stage != "save":
                self.store.set_env_error(env, None, "check", self.part)
        for cls in {type(self.backends[e]) for e in self.group}:
            cls.cleanup(self.run_id)  # what an earlier, killed segment of this run left running
        recorded = {e: fp for e, fp in self.store.fingerprints().items() if e not in self.group}
        conv = [self.converter.id] if self.converter else []
        # a shard resolves only its own envs (and producers no save shard recorded)
        self.fps = self._fingerprints([e for e in list(self.sel.envs) + conv if e not in recorded])
        self.fps.update(recorded)
        for env, line in sorted(self.drift_lines(limit=6).items()):
            self.log("%-18s %s" % (env, line))
        self._note_saved()  # a resumed segment's artifacts are the ones its journals saved
        self.needs = {env for env in self.group if self._needs_work(env, saves_only=self.stage == "save")}
        try:
            t = time.time()
            if self.stage != "check":
                self._parallel(self._create_and_save, self.group, "env")
                self.state.timings["wall_create_and_save_s"] = round(time.time() - t, 1)
            if self.stage is None and any(self.origin.values()):
                t = time.time()
                self._parallel(self._resave, self.group, "env")  # every original is saved by now
                self.state.timings["wall_resave_s"] = round(time.time() - t, 1)
            if self.stage is None and self.converter is not None:
                t = time.time()
                self._convert()
                self.state.timings["wall_convert_s"] = round(time.time() - t, 1)
            if self.stage == "check":
                self._reuse_unsaved_artifacts()  # producers that no save shard ran
            if self.stage != "save":
                t = time.time()
                errors = set(self.store.env_errors())
                ok = [e for e in self.group if e not in errors]
                todo = self._plan_checks(ok)
                self._parallel(self._check, [e for e in ok if todo.get(e)], "check")
                self.state.timings["wall_check_s"] = round(time.time() - t, 1)
            else:
                self.store.save_reused({k: v for k, v in self.reused_artifacts.items() if v}, {}, self.shard)
        finally:
            for cls in {type(self.backends[e]) for e in self.group}:
                cls.cleanup(self.run_id)
            self.progress.close()
        self.store.save_fingerprints({e: self.fps.get(e) for e in self.group}, self.shard)
        if self.stage is not None:
            meta.update(self._meta_tail(started, meta, []))
            self.store.save_meta(meta, self.shard)
            return meta
        records = assemble(self.store, self.matrix, self.sel)
        self.store.write_results(records)
        self._fill_cache(records)
        meta.update(self._meta_tail(started, meta, records))
        self.store.save_meta(meta)
        return meta

    def finish_merged(self, meta: dict) -> dict:
        """A run dir that shards were merged into: records, the cache, run.json."""
        started = time.time()
        recorded = self.store.fingerprints()
        conv = [self.converter.id] if self.converter else []
        self.fps = self._fingerprints([e for e in list(self.sel.envs) + conv if e not in recorded])
        self.fps.update(recorded)
        # What no shard ran comes from the cache: producers with no save job, consumers with no check job.
        self.reused_artifacts = dict(self.store.reused()[0])
        self._reuse_unsaved_artifacts()
        self.shard = "merge"
        self._plan_checks([e for e in self.sel.envs if e not in self.store.env_errors()])
        records = assemble(self.store, self.matrix, self.sel)
        self.store.write_results(records)
        self._fill_cache(records)
        self.state.env_errors = self.store.env_errors()
        self.state.check_errors = self.store.env_errors("check")
        meta.update(self._meta_tail(started, meta, records))  # duration_s: the shards' machine time, summed
        self.store.save_meta(meta)
        return meta

    def _parallel(self, fn, envs, phase: str) -> None:
        errors = self.state.env_errors if phase == "env" else self.state.check_errors
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            try:
                for env, err in zip(envs, pool.map(self._guard(fn), envs)):
                    if err:
                        errors[env] = err
                        self.store.set_env_error(env, err, phase, self.part if phase == "check" else "")
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
        if env not in self.needs:
            for fx in self.sel.fixtures:
                for fmt in self.own[env]:
                    self.reused_artifacts[(env, fx, fmt)] = self.cached_artifact(env, fx, fmt) or {}
            self.log("%-18s all cached: env not needed" % env)
            return
        self._ensure(env)
        items = []
        done = self.store.read(env, "save").done  # a resumed segment keeps what it saved
        originals = [fx for fx in self.sel.fixtures if self.origin[fx] is None]
        own = self.own[env]
        for fx in originals:
            spec = self.matrix.fixture(fx)
            for fmt in own:
                cached = None if save_key(fx, fmt) in done else self.cached_artifact(env, fx, fmt)
                if cached is not None:
                    self.reused_artifacts[(env, fx, fmt)] = cached
                    continue
                items.append({"key": save_key(fx, fmt), "fixture": fx, "fixture_path": spec.path,
                              "format": fmt, "out_dir": self.store.artifact_dir(env, fx, fmt),
                              "module_dir": self.store.module_dir(env, fx),
                              **({"fixture_js": self.twin[fx]} if fx in self.twin else {})})
        t = time.time()
        out = self._worker(env, "save", None, items, timeout=self.timeout)
        self._time(env, "save_s", t, len(items))
        if not out.ready and all(f.get("outcome") == "env-error" for f in out.failed.values()) and out.failed:
            first = next(iter(out.failed.values()))
            raise EnvError("%s: %s" % (env, first.get("message")))
        saved = sum(1 for r in out.done.values() if r.get("status") == "saved")
        reused = len(originals) * len(own) - len(items)
        self.log("%-18s saved %d/%d artifacts%s (%d TF import(s))" % (
            env, saved, len(items), ", %d from the cache" % reused if reused else "", out.processes))

    def _resave(self, env: str) -> None:
        """The re-save variants this env makes: each origin's artifact loaded here and saved again."""
        if env in self.state.env_errors:
            return
        done = self.store.read(env, "save").done
        items = []
        for fx in self.sel.fixtures:
            spec = self.matrix.fixture(fx)
            if spec.origin is None or not self.makes(env, fx):
                continue
            for fmt in self.sel.formats:
                key = save_key(fx, fmt)
                if key in done or self.reused_artifacts.get((env, fx, fmt)) or (env, fmt) in self.converts:
                    continue
                cached = self.cached_artifact(env, fx, fmt)
                if cached is not None:
                    self.reused_artifacts[(env, fx, fmt)] = cached
                    continue
                items.append({"key": key, "resave": True, "fixture": fx, "fixture_module": spec.module,
                              "fixture_path": spec.path, "format": fmt, "origin": spec.origin,
                              "out_dir": self.store.artifact_dir(env, fx, fmt),
                              "module_dir": self.store.module_dir(env, spec.module),
                              "origin_dir": self.store.artifact_location(spec.origin, spec.module, fmt,
                                                                         self.reused_artifacts)})
        if not items:
            return
        self._ensure(env)
        t = time.time()
        out = self._worker(env, "save", None, items, timeout=self.timeout)
        self._time(env, "resave_s", t, len(items))
        saved = sum(1 for it in items if (out.done.get(it["key"]) or {}).get("status") == "saved")
        self.log("%-18s re-saved %d/%d artifacts of other envs (%d TF import(s))" % (
            env, saved, len(items), out.processes))

    def _convert(self) -> None:
        """The converter env's stage, after every save: TF.js files from the producers' Keras files
        and SavedModels, Keras files from the TF.js producers' files."""
        conv = self.converter
        if conv is None:
            return
        errors = set(self.state.env_errors)
        done = self.store.read(conv.id, "convert").done
        items = []
        for env, fmt in sorted(self.converts, key=lambda p: (self.sel.envs.index(p[0]), self.sel.formats.index(p[1]))):
            if env in errors:
                continue
            for fx in self.sel.fixtures:
                key = convert_key(env, fx, fmt)
                if not self.makes(env, fx) or key in done:
                    continue
                cached = self.cached_artifact(env, fx, fmt)
                if cached is not None:
                    self.reused_artifacts[(env, fx, fmt)] = cached
                    continue
                sources = tfjs.sources(self.matrix.env(env), fmt)
                where = {src: self.store.artifact_location(env, fx, src, self.reused_artifacts) for src in sources}
                source = next((src for src in sources if _saved(where[src])), sources[0])
                items.append({"key": key, "convert": True, "producer": env, "fixture": fx, "format": fmt,
                              "source_format": source, "source_dir": where[source],
                              "out_dir": self.store.artifact_dir(env, fx, fmt)})
        if not items:
            return
        try:
            self._ensure(conv.id)
        except EnvError as exc:
            # Every file it was to make is a save-error that says why; the rest of the run goes on.
            results.append(self.store.journal(conv.id, "convert"), [
                {"event": "failed", "key": it["key"], "outcome": "env-error", "error_type": "EnvError",
                 "message": "the converter env %s could not be built: %s" % (conv.id, exc)} for it in items])
            self.log("%-18s env-error: %s" % (conv.id, exc))
            return
        t = time.time()
        out = self._worker(conv.id, "convert", None, items, timeout=self.timeout)
        self._time(conv.id, "convert_s", t, len(items))
        made = sum(1 for it in items if (out.done.get(it["key"]) or {}).get("status") == "saved")
        self.log("%-18s converted %d/%d artifacts (%d TF import(s))" % (conv.id, made, len(items), out.processes))

    def _note_saved(self) -> None:
        """What this run's save journals hold as saved: those artifacts' digests are of their files here."""
        every = tuple(sorted({f for env in self.sel.envs for f in self.own[env]} | set(self.sel.formats)))
        metas, _ = self.store.saves(Selection(self.sel.envs, self.sel.fixtures, every), with_reused=False)
        self.saved_here = {k for k, meta in metas.items() if meta.get("status") == "saved"}

    def _plan_checks(self, consumers: list[str]) -> dict[str, list[dict]]:
        """Check items per consumer that the cache does not answer; writes what is reused."""
        self.store.save_reused({k: v for k, v in self.reused_artifacts.items() if v}, {}, self.shard)
        self._note_saved()
        metas, _ = self.store.saves(self.sel)
        todo: dict[str, list[dict]] = {}
        for consumer in consumers:
            items = todo.setdefault(consumer, [])
            only = self.producers_of.get(consumer)
            for (producer, fx, fmt), meta in metas.items():
                if meta.get("status") != "saved" or self.matrix.exclusion_for(producer, consumer, fx, fmt):
                    continue
                if tfjs.not_read(self.matrix.env(consumer), fmt):
                    continue
                if only is not None and producer not in only:
                    continue  # another part of this consumer checks it
                key = check_key(producer, consumer, fx, fmt)
                cached = self.cached_cell(producer, consumer, fx, fmt)
                if cached is not None:
                    self.reused_cells[key] = cached
                    continue
                spec = self.matrix.fixture(fx)
                items.append({"key": key, "producer": producer, "fixture": fx, "fixture_module": spec.module,
                              "format": fmt, **({"fixture_js": self.twin[fx]} if fx in self.twin else {}),
                              "artifact_dir": self.store.artifact_location(producer, fx, fmt, self.reused_artifacts),
                              "fixture_path": spec.path, "tolerances": spec.tolerances()})
        self.store.save_reused({k: v for k, v in self.reused_artifacts.items() if v}, self.reused_cells, self.shard)
        self.todo = todo
        return todo

    def _check(self, consumer: str) -> None:
        self._ensure(consumer)
        plain: list[dict] = []
        code: list[dict] = []
        for item in self.todo[consumer]:
            (code if FORMATS[item["format"]][2] == "code" else plain).append(item)
        t = time.time()
        # The no-remedy process never gets a fixture path: it runs as a user without the code.
        plain_items = [{k: v for k, v in it.items() if k not in ("fixture_path", "fixture_js")} for it in plain]
        out = self._worker(consumer, "check-plain", "plain", plain_items, timeout=self.timeout)
        self._time(consumer, "check_plain_s", t, len(plain))
        again = [it for it in plain if not passed(out.done.get(it["key"]))] + code
        t = time.time()
        out2 = self._worker(consumer, "check-remedies", "remedies", again, timeout=self.timeout)
        self._time(consumer, "check_remedies_s", t, len(again))
        self.state.env_timings[consumer]["check_n"] = len(plain) + len(code)
        cached = sum(1 for k in self.reused_cells if k.split("|")[2] == consumer)
        self.log("%-18s checked %d artifacts (%d no-remedy, %d with remedies; %d+%d TF import(s))%s" % (
            consumer, len(plain) + len(code), len(plain), len(again), out.processes, out2.processes,
            "; %d cell(s) from the cache" % cached if cached else ""))

    def _worker(self, env: str, phase: str, mode: str | None, items: list[dict], timeout: float,
                offline: bool | None = None):
        backend = self.backends[env]
        scratch = self.store.path("scratch", env)
        os.makedirs(scratch, exist_ok=True)
        saving = phase in ("save", "convert")  # the converter's items are save-phase items of its worker
        req = process.WorkerRequest(
            env_id=env, launcher=backend.launcher(), phase="save" if saving else "check",
            mode=mode, items=tuple(items), journal=self.store.journal(env, phase, "" if saving else self.part),
            timeout=timeout,
            env=backend.env_vars(), cwd=scratch, offline=phase != "save" if offline is None else offline,
            mounts=self.mounts(),
            worker_main=backend.worker_main(), run_id=self.run_id,
            on_done=self.progress.task(env, phase, len(items), self._per_item(env, phase)) if items else None)
        return process.run(req) if items else process.WorkerOutcome()

    # -- driving parts of a run (harness/scan.py drives these for a user's own artifacts) ------------
    def save_items(self, env: str, items: list[dict]) -> None:
        """Build `env` if needed and run these save-phase items there, offline (each item says what
        the worker does: save a fixture, read a user's artifact, convert one)."""
        self._ensure(env)
        self._worker(env, "save", None, items, timeout=self.timeout, offline=True)

    def check_consumers(self, consumers: list[str], extra: dict | None = None,
                        todo: dict[str, list[dict]] | None = None) -> None:
        """Run the check phase for `consumers`: the items the saves call for (or `todo`), each with
        `extra` fields added."""
        todo = todo if todo is not None else self._plan_checks(list(consumers))
        for items in todo.values():
            for item in items:
                item.update(extra or {})
        self.todo = todo
        self._parallel(self._check, [e for e in consumers if todo.get(e)], "check")

    def answered(self, producer: str, consumer: str, fx: str, fmt: str) -> bool:
        """No check will run for this cell (excluded, cached, or its artifact needs none)."""
        return self._answered(producer, consumer, fx, fmt)

    @functools.cached_property
    def costs(self) -> Costs:
        """Recorded seconds per item (every run.json of the state dir, read when first needed)."""
        return Costs.load(self.state_dir)

    def _per_item(self, env: str, phase: str) -> float | None:
        if not self.progress.shows_eta:
            return None  # plain lines show no ETA: no need to read every run's costs
        est = self.costs.rate(env, phase, self.matrix.env(env).keras)
        return est.seconds if est is not None and est.recorded else None

    def _time(self, env: str, key: str, t: float, items: int | None = None) -> None:
        """Record a phase's wall time (and item count: harness/costs.py learns rates from both)."""
        timing = self.state.env_timings.setdefault(env, {})
        timing[key] = round(time.time() - t, 1)
        if items is not None:
            timing[key[:-2] + "_n"] = items

    def _meta_tail(self, started: float, meta: dict, records: list[dict]) -> dict:
        finished = time.time()
        envs = []
        for env in self.sel.envs:
            spec = self.matrix.env(env)
            envs.append({"id": env, "backend": self.backend_of[env], "python": spec.python,
                         "tensorflow": spec.tensorflow,
                         "keras": spec.keras if spec.keras != "tf-keras" else "tf-keras " + str(spec.tf_keras),
                         "spec": spec.describe(), "requirements": spec.requirements(),
                         "recipes": list(spec.recipes),
                         "error": self.state.env_errors.get(env) or self.state.check_errors.get(env)})
        counts: dict[str, int] = {}
        for rec in records:
            counts[rec["outcome"]] = counts.get(rec["outcome"], 0) + 1
        prior = meta.get("segments", [])
        segment = {"started": _iso(started), "finished": _iso(finished),
                   "duration_s": round(finished - started, 1), "timings": self.state.timings,
                   "env_timings": self.state.env_timings}
        conv = self.converter
        converter = None if conv is None else {
            "id": conv.id, "backend": self.backends[conv.id].name, "spec": conv.describe(),
            "requirements": conv.requirements(), "recipes": list(conv.recipes),
            "error": self.store.env_errors().get(conv.id)}
        return {"finished": _iso(finished), "segments": prior + [segment], "converter": converter,
                "duration_s": round(sum(s["duration_s"] for s in prior + [segment]), 1),
                "envs": envs, "tf_imports": self.store.tf_imports(self.sel.envs), "outcome_counts": counts,
                "harness_defects": harness_defects(records),
                "cache": {"cells_reused": sum(1 for r in records if r.get("cached")),
                          "artifacts_reused": sum(1 for v in self.reused_artifacts.values() if v),
                          "entries_dropped": self.cache.dropped, "refresh": sorted(self.refresh)},
                "phase_times": _phase_times(self.state), "checks": len(records), "drift": self.drift_lines(),
                "check_network": _network_summary(self.backends, self.state.env_errors)}


def _saved(artifact_dir: str) -> bool:
    try:
        with open(os.path.join(artifact_dir, "meta.json")) as fh:
            return json.load(fh).get("status") == "saved"
    except (OSError, ValueError):
        return False


def _network_summary(backends: dict, env_errors: dict) -> str:
    cut = []
    for env, backend in backends.items():
        if env in env_errors:
            continue
        try:
            cut.append(backend.launcher().goes_offline())
        except TfcompatError:
            continue
    if cut and all(cut):
        return "off (network namespace or network_mode none)"
    return "off for some envs only" if any(cut) else "on (this backend cannot switch it off here)"


def _say(line: str) -> None:
    print("tfcompat: " + line, flush=True)


def _phase_times(state: RunState) -> dict:
    """Per-env seconds summed per phase (envs run in parallel: these add up to more than the
    wall time), and the wall time of each phase."""
    out = {"env_create_s": 0.0, "save_s": 0.0, "check_plain_s": 0.0, "check_remedies_s": 0.0}
    for times in state.env_timings.values():
        out["env_create_s"] += times.get("create_s", 0.0)
        out["save_s"] += times.get("save_s", 0.0) + times.get("convert_s", 0.0)  # the converter's saves
        out["check_plain_s"] += times.get("check_plain_s", 0.0)
        out["check_remedies_s"] += times.get("check_remedies_s", 0.0)
    out.update(state.timings)
    return {k: round(v, 1) for k, v in out.items()}


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")


def publish(run_dir: str, reports_dir: str, meta: dict, matrix: Matrix | None = None,
            baseline: tuple[str, list[dict]] | None = None) -> tuple[str, dict]:
    """Copy the run's results into reports/ and render the page; returns (index.html path, the
    published run meta).

    With `matrix`, the copy carries that matrix's expectations (the run dir keeps what was recorded),
    and meta["expectations"] summarises how the run compares with them."""
    from .report import render_report

    os.makedirs(reports_dir, exist_ok=True)
    records = list(results.read(os.path.join(run_dir, "results.jsonl")))
    if matrix is not None:
        annotate_expectations(records, matrix)
    meta = dict(meta, expectations=expectation_summary(records), harness_defects=harness_defects(records))
    if baseline is not None:
        from .diff import GATED, counts_line, diff, sections, write

        changes = diff(baseline[1], records, baseline[0], scope=meta.get("selection"))
        write(changes, reports_dir)
        # what `--fail-on` reads: per gated class, how many changes no met expectation covers and the first 20
        failing = {k: [c.line() for c in changes.failing((k,))] for k in GATED}
        meta["changes"] = {"summary": changes.summary(), "counts": counts_line(changes.summary()),
                           "failing": {k: {"count": len(v), "first": v[:20]} for k, v in failing.items()},
                           "sections": sections(changes)}
    with open(os.path.join(reports_dir, "junit.xml"), "wb") as fh:
        from .junit import junit_xml

        fh.write(junit_xml(records, str(meta.get("run_id"))))
    dst = os.path.join(reports_dir, "results.jsonl")
    if os.path.exists(dst):
        os.remove(dst)
    results.append(dst, records)
    with open(os.path.join(reports_dir, "run.json"), "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True, default=str)
    return render_report(dst, reports_dir, meta), meta
