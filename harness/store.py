"""The run store: one run's directory (artifacts, journals, logs, run.json, results) and the keys
that name what is in it. The runner writes it; records.assemble reads it and nothing else."""

from __future__ import annotations

import datetime
import glob
import json
import os
from dataclasses import dataclass

from . import process, results
from .errors import ConfigError, MissingResults, TfcompatError

PHASES = ("save", "check-plain", "check-remedies")


@dataclass(frozen=True)
class Selection:
    """What to run: env ids (producers and consumers), fixtures, formats."""

    envs: tuple[str, ...]
    fixtures: tuple[str, ...]
    formats: tuple[str, ...]


def save_key(fixture: str, fmt: str) -> str:
    return "save|%s|%s" % (fixture, fmt)


def convert_key(producer: str, fixture: str, fmt: str) -> str:
    """The converter env's item that makes `producer`'s artifact of `fmt`."""
    return "convert|%s|%s|%s" % (producer, fixture, fmt)


def check_key(producer: str, consumer: str, fixture: str, fmt: str) -> str:
    return "check|%s|%s|%s|%s" % (producer, consumer, fixture, fmt)


class RunStore:
    """Paths and reads of one run dir. Journals are the record: everything else is derived."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.run_id = os.path.basename(run_dir)

    def path(self, *parts: str) -> str:
        return os.path.join(self.run_dir, *parts)

    def artifact_dir(self, env: str, fixture: str, fmt: str) -> str:
        return self.path("artifacts", env, fixture, fmt)

    def module_dir(self, env: str, fixture: str) -> str:
        return self.path("artifacts", env, fixture, "_module")

    def journal(self, env: str, phase: str, part: str = "") -> str:
        """The journal of `env`'s `phase`; a check shard that runs part of a consumer's producers
        writes its own `part` (the shard), so parts copied into one run dir never collide."""
        return self.path("journals", "%s.%s%s.jsonl" % (env, phase, "+" + part if part else ""))

    def read(self, env: str, phase: str) -> process.Journal:
        """Everything `env`'s `phase` journals hold: its own journal and every part's."""
        parts = glob.glob(os.path.join(glob.escape(self.path("journals")), glob.escape("%s.%s+" % (env, phase))
                                       + "*.jsonl"))
        return process.merge_journals([process.read_journal(p) for p in [self.journal(env, phase)] + sorted(parts)])

    # -- run.json ----------------------------------------------------------------------------
    def _shard_file(self, folder: str, shard: str) -> str:
        # One file per shard in each folder, so shards copied into one dir never collide.
        return self.path(folder, shard.replace("/", "of") + ".json")

    def _meta_path(self, shard: str) -> str:
        return self.path("run.json") if shard == "all" else self._shard_file("shards", shard)

    def load_meta(self, shard: str = "all") -> dict | None:
        try:
            with open(self._meta_path(shard)) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def save_meta(self, meta: dict, shard: str = "all") -> None:
        results.write_json(self._meta_path(shard), meta, indent=1, sort_keys=True, default=str)

    def shard_metas(self) -> dict[str, dict]:
        """shard name -> its meta, for every shard copied into this run dir."""
        folder = self.path("shards")
        out = {}
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if name.endswith(".json"):
                with open(os.path.join(folder, name)) as fh:
                    out[name[:-5]] = json.load(fh)
        return out

    # -- env fingerprints of the run (one file per shard) -------------------------------------
    def save_fingerprints(self, fps: dict, shard: str = "all") -> None:
        results.write_json(self._shard_file("fingerprints", shard), {k: v for k, v in fps.items() if v},
                           indent=1, sort_keys=True)

    def fingerprints(self) -> dict:
        """env -> fingerprint, as every shard of this run recorded it."""
        out: dict = {}
        for _, data in results.read_json_dir(self.path("fingerprints")):
            out.update(data)
        return out

    # -- env errors: one file per env and phase, so shards on other machines merge by copying --
    # env: envs that could not be built or save (no artifacts, no checks);
    # check: envs whose check phase failed as a whole (their artifacts still count).
    def set_env_error(self, env: str, message: str | None, phase: str = "env", part: str = "") -> None:
        """Record (or, with None, clear) why `env` failed in `phase` this segment (in this `part`)."""
        path = self.path("errors", "%s.%s%s.txt" % (phase, env, "+" + part if part else ""))
        if message is None:
            if os.path.exists(path):
                os.remove(path)
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as fh:
            fh.write(message)
        os.replace(path + ".tmp", path)

    def env_errors(self, phase: str = "env") -> dict:
        """env -> message for `phase` ("env" or "check")."""
        folder = self.path("errors")
        out = {}
        if os.path.isdir(folder):
            for name in sorted(os.listdir(folder)):
                if name.startswith(phase + ".") and name.endswith(".txt"):
                    with open(os.path.join(folder, name)) as fh:
                        out[name[len(phase) + 1:-4].split("+")[0]] = fh.read()
        return out

    # -- results reused from the cache (written before the checks, one file per shard) --------
    def save_reused(self, artifacts: dict, cells: dict, shard: str = "all") -> None:
        """`artifacts`: {(producer, fixture, format): cache entry}; `cells`: {check key: cache entry}."""
        data = {"artifacts": {"|".join(k): v for k, v in sorted(artifacts.items())}, "cells": cells}
        results.write_json(self._shard_file("reused", shard), data, sort_keys=True, default=str)

    def reused(self) -> tuple[dict, dict]:
        """({(producer, fixture, format): artifact entry}, {check key: cell entry}) this run reuses."""
        artifacts: dict = {}
        cells: dict = {}
        for _, data in results.read_json_dir(self.path("reused")):
            artifacts.update({tuple(k.split("|")): v for k, v in (data.get("artifacts") or {}).items()})
            cells.update(data.get("cells") or {})
        return artifacts, cells

    def artifact_location(self, env: str, fixture: str, fmt: str, reused: dict | None = None) -> str:
        """Where the artifact is: in the run that saved it when it is reused, else in this run."""
        entry = (reused if reused is not None else self.reused()[0]).get((env, fixture, fmt))
        return entry["artifact_dir"] if entry else self.artifact_dir(env, fixture, fmt)

    # -- derived reads -----------------------------------------------------------------------
    def saves(self, sel: Selection, with_reused: bool = True) -> tuple[dict, dict]:
        """({(producer, fixture, format): meta} of artifacts the save phase finished or (unless
        `with_reused` is False) the cache gave, {(producer, fixture, format): failure event} of
        artifacts lost with their worker)."""
        errors = self.env_errors()
        reused = self.reused()[0] if with_reused else {}
        converted = self.converted()
        metas, lost = {}, {}
        for env in sel.envs:
            if env in errors:
                continue
            j = self.read(env, "save")
            for fx in sel.fixtures:
                for fmt in sel.formats:
                    key = save_key(fx, fmt)
                    conv = convert_key(env, fx, fmt)
                    if key in j.done:
                        metas[(env, fx, fmt)] = j.done[key]
                    elif key in j.failed:
                        lost[(env, fx, fmt)] = j.failed[key]
                    elif conv in converted.done:
                        metas[(env, fx, fmt)] = converted.done[conv]
                    elif conv in converted.failed:
                        lost[(env, fx, fmt)] = converted.failed[conv]
                    elif (env, fx, fmt) in reused:
                        metas[(env, fx, fmt)] = reused[(env, fx, fmt)]["meta"]
        return metas, lost

    def converted(self) -> process.Journal:
        """What the converter env's journal holds (keys: convert_key)."""
        paths = sorted(glob.glob(os.path.join(glob.escape(self.path("journals")), "*.convert.jsonl")))
        return process.merge_journals([process.read_journal(p) for p in paths]) if paths else process.Journal()

    def versions(self, envs: tuple[str, ...]) -> dict:
        """env -> the versions its workers reported (python, tensorflow, keras, packages), else
        those recorded with the artifacts this run reuses."""
        out = {}
        for env in envs:
            for phase in PHASES:
                ready = self.read(env, phase).ready
                if ready and ready.get("versions"):
                    out[env] = ready["versions"]
                    break
        for (env, _, _), entry in self.reused()[0].items():
            if env in envs and env not in out and entry.get("versions"):
                out[env] = entry["versions"]
        return out

    def tf_imports(self, envs: tuple[str, ...]) -> dict:
        """env -> {save, plain, remedies}: worker processes that imported TF, from the journals."""
        labels = {"save": "save", "check-plain": "plain", "check-remedies": "remedies"}
        return {env: {labels[p]: self.read(env, p).readies for p in PHASES} for env in envs}

    def results_path(self) -> str:
        return self.path("results.jsonl")

    def write_results(self, records: list[dict]) -> None:
        path = self.results_path()
        if os.path.exists(path):
            os.remove(path)
        results.append(path, records)


def new_run_dir(state_dir: str) -> tuple[str, str]:
    run_id = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = os.path.join(state_dir, "runs", run_id)
    n = 1
    while os.path.exists(run_dir):
        n += 1
        run_dir = os.path.join(state_dir, "runs", "%s-%d" % (run_id, n))
    os.makedirs(run_dir)
    return os.path.basename(run_dir), run_dir


def run_names(state_dir: str) -> list[str]:
    """The runs under `state/runs` (those with a run.json), oldest first."""
    runs = os.path.join(state_dir, "runs")
    return sorted(n for n in os.listdir(runs) if os.path.isfile(os.path.join(runs, n, "run.json"))) \
        if os.path.isdir(runs) else []


def latest_run_dir(state_dir: str, flag: str = "--resume") -> str:
    runs = os.path.join(state_dir, "runs")
    names = run_names(state_dir)
    if not names:
        raise MissingResults("%s: no earlier run under %s; start one with `tfcompat run`" % (flag, runs))
    return os.path.join(runs, names[-1])


def run_dir_named(state_dir: str, name: str, flag: str) -> str:
    """`state/runs/NAME` (NAME "latest": the newest run), or one line saying why there is none."""
    if name == "latest":
        return latest_run_dir(state_dir, flag)
    runs = os.path.join(state_dir, "runs")
    path = os.path.join(runs, name)
    if os.sep in name or name in (".", "..") or not os.path.isfile(os.path.join(path, "run.json")):
        known = run_names(state_dir)
        raise MissingResults("%s: no run %r under %s%s" % (flag, name, runs, "; the newest: " + ", ".join(
            known[-3:]) if known else "; start one with `tfcompat run`"))
    return path


def read_run_meta(run_dir: str, need: tuple[str, ...] = ("selection",)) -> dict:
    """A run's run.json, or one line: a torn or garbled file cannot be resumed or reported."""
    path = os.path.join(run_dir, "run.json")
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as exc:
        raise TfcompatError("%s: cannot be read (%s); this run cannot be resumed or reported: start a new one" % (
            path, exc.__class__.__name__ if isinstance(exc, ValueError) else exc.strerror)) from None
    missing = [k for k in need if not isinstance(meta, dict) or not isinstance(meta.get(k), dict)]
    if not isinstance(meta, dict) or missing:
        raise TfcompatError("%s: not a tfcompat run record (no %s); this run cannot be resumed or reported: start "
                            "a new one" % (path, (missing or ["mapping"])[0]))
    return meta


def check_folder(path: str, flag: str) -> None:
    """A folder the run may write (made when it is first needed): not a file, and writable."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(["%s: %s is a file, not a folder; give a folder (it is made if missing)" % (flag, path)])
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe) or "."
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(["%s: %s is not writable by this user; give a folder you can write" % (flag, probe)])


def hold_lock(state_dir: str, command: str):
    """An exclusive lock on the state dir for this process's life: a second writer gets one line."""
    import fcntl

    os.makedirs(state_dir, exist_ok=True)
    fh = open(os.path.join(state_dir, "lock"), "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise TfcompatError("%s is in use by %s; wait for it to finish, or give another --state-dir" % (
            state_dir, holder)) from None
    fh.seek(0)
    fh.truncate()
    fh.write("tfcompat %s (pid %d)" % (command, os.getpid()))
    fh.flush()
    return fh
