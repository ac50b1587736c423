"""The run store: one run's directory (artifacts, journals, logs, run.json, results) and the keys
that name what is in it. The runner writes it; records.assemble reads it and nothing else."""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass

from . import process, results
from .errors import TfcompatError

PHASES = ("save", "check-plain", "check-remedies")


@dataclass(frozen=True)
class Selection:
    """What to run: env ids (producers and consumers), fixtures, formats."""

    envs: tuple[str, ...]
    fixtures: tuple[str, ...]
    formats: tuple[str, ...]


def save_key(fixture: str, fmt: str) -> str:
    return "save|%s|%s" % (fixture, fmt)


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

    def journal(self, env: str, phase: str) -> str:
        return self.path("journals", "%s.%s.jsonl" % (env, phase))

    def read(self, env: str, phase: str) -> process.Journal:
        return process.read_journal(self.journal(env, phase))

    # -- run.json ----------------------------------------------------------------------------
    def load_meta(self) -> dict | None:
        try:
            with open(self.path("run.json")) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def save_meta(self, meta: dict) -> None:
        tmp = self.path("run.json.tmp")
        with open(tmp, "w") as fh:
            json.dump(meta, fh, indent=1, sort_keys=True, default=str)
        os.replace(tmp, self.path("run.json"))

    # -- env errors (rewritten each run segment: an env that builds now is no longer in error) --
    # env-errors.json: envs that could not be built or save (no artifacts, no checks);
    # check-errors.json: envs whose check phase failed as a whole (their artifacts still count).
    def set_env_errors(self, errors: dict, phase: str = "env") -> None:
        tmp = self.path("%s-errors.json.tmp" % phase)
        with open(tmp, "w") as fh:
            json.dump(errors, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path("%s-errors.json" % phase))

    def env_errors(self, phase: str = "env") -> dict:
        try:
            with open(self.path("%s-errors.json" % phase)) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {}

    # -- results reused from the cache (written before the phases, each segment) --------------
    def save_reused(self, artifacts: dict, cells: dict) -> None:
        """`artifacts`: {(producer, fixture, format): cache entry}; `cells`: {check key: cache entry}."""
        data = {"artifacts": {"|".join(k): v for k, v in sorted(artifacts.items())}, "cells": cells}
        tmp = self.path("reused.json.tmp")
        with open(tmp, "w") as fh:
            json.dump(data, fh, sort_keys=True, default=str)
        os.replace(tmp, self.path("reused.json"))

    def reused(self) -> tuple[dict, dict]:
        """({(producer, fixture, format): artifact entry}, {check key: cell entry}) this run reuses."""
        try:
            with open(self.path("reused.json")) as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return {}, {}
        artifacts = {tuple(k.split("|")): v for k, v in (data.get("artifacts") or {}).items()}
        return artifacts, data.get("cells") or {}

    def artifact_location(self, env: str, fixture: str, fmt: str, reused: dict | None = None) -> str:
        """Where the artifact is: in the run that saved it when it is reused, else in this run."""
        entry = (reused if reused is not None else self.reused()[0]).get((env, fixture, fmt))
        return entry["artifact_dir"] if entry else self.artifact_dir(env, fixture, fmt)

    # -- derived reads -----------------------------------------------------------------------
    def saves(self, sel: Selection) -> tuple[dict, dict]:
        """({(producer, fixture, format): meta} of artifacts the save phase finished or the cache
        gave, {(producer, fixture, format): failure event} of artifacts lost with their worker)."""
        errors = self.env_errors()
        reused, _ = self.reused()
        metas, lost = {}, {}
        for env in sel.envs:
            if env in errors:
                continue
            j = self.read(env, "save")
            for fx in sel.fixtures:
                for fmt in sel.formats:
                    key = save_key(fx, fmt)
                    if key in j.done:
                        metas[(env, fx, fmt)] = j.done[key]
                    elif key in j.failed:
                        lost[(env, fx, fmt)] = j.failed[key]
                    elif (env, fx, fmt) in reused:
                        metas[(env, fx, fmt)] = reused[(env, fx, fmt)]["meta"]
        return metas, lost

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


def latest_run_dir(state_dir: str) -> str:
    runs = os.path.join(state_dir, "runs")
    names = sorted(n for n in os.listdir(runs) if os.path.isfile(os.path.join(runs, n, "run.json"))) \
        if os.path.isdir(runs) else []
    if not names:
        raise TfcompatError("--resume: no earlier run under %s; start one with `tfcompat run`" % runs)
    return os.path.join(runs, names[-1])
