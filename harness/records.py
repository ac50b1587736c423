"""Assemble one results record per (producer, consumer, fixture, format) from the run's journals."""

from __future__ import annotations

import datetime

from . import process
from .results import SCHEMA_VERSION, severity
from .verdict import combine, hint_for
from .worker.formats import FORMATS


def assemble(runner) -> list[dict]:
    """Records for the whole selection of a runner, in a stable order."""
    sel = runner.sel
    versions = _versions(runner)
    imports = runner.tf_imports()
    saves = {(p, fx, fmt): meta for p, fx, fmt, meta in runner.saved_artifacts()}
    checks = {}
    for consumer in sel.envs:
        for phase in ("check-plain", "check-remedies"):
            done, failed, _, _ = process.read_journal(runner.journal(consumer, phase))
            for key, res in done.items():
                checks.setdefault(key, {})[phase] = res
            for key, ev in failed.items():
                checks.setdefault(key, {})[phase + "-failed"] = ev
    out = []
    for producer in sel.envs:
        for fx in sel.fixtures:
            for fmt in sel.formats:
                meta = saves.get((producer, fx, fmt))
                spec = runner.matrix.fixture(fx)
                base = {"schema": SCHEMA_VERSION, "run_id": runner.run_id,
                        "worker_version": _worker_version(), "producer": producer, "fixture": fx,
                        "format": fmt, "tolerance": {"atol": spec.atol, "rtol": spec.rtol}}
                if meta is not None and meta.get("status") == "save-error":
                    out.append(_save_error(base, meta, versions, imports))
                    continue
                for consumer in sel.envs:
                    rec = dict(base, consumer=consumer, same_env=producer == consumer,
                               versions={"producer": versions.get(producer), "consumer": versions.get(consumer)},
                               tf_imports={"consumer": imports.get(consumer)})
                    rec.update(_cell(runner, producer, consumer, fx, fmt, meta, checks))
                    out.append(_complete(rec))
    _mark_control(out)
    annotate_expectations(out, runner.matrix)
    return out


def _worker_version() -> str:
    from .runner import WORKER_VERSION

    return WORKER_VERSION


def _versions(runner) -> dict:
    out = {}
    for env in runner.sel.envs:
        for phase in ("save", "check-plain", "check-remedies"):
            ready = process.read_journal(runner.journal(env, phase))[2]
            if ready and ready.get("versions"):
                out[env] = ready["versions"]
                break
    return out


def _cell(runner, producer, consumer, fx, fmt, meta, checks) -> dict:
    errors = runner.state.env_errors
    for side in (producer, consumer):
        if side in errors:
            return {"outcome": "env-error", "message": errors[side], "error_type": "EnvError",
                    "hint": "see the env's creation log under the run dir's logs/"}
    excluded = runner.matrix.exclusion_for(producer, consumer, fx, fmt)
    if excluded:
        return {"outcome": "not-applicable", "message": "excluded in matrix.yaml: %s" % excluded.get("reason")}
    if meta is None:
        return {"outcome": "crash", "message": "the save phase lost this artifact (worker died while saving)"}
    if meta.get("status") == "not-applicable":
        return {"outcome": "not-applicable", "message": "%s (%s)" % (meta.get("reason"), meta.get("source")),
                "warnings": []}
    key = runner.check_key(producer, consumer, fx, fmt)
    got = checks.get(key, {})
    attempts, warnings, duration = [], list(meta.get("warnings") or []), 0.0
    for phase in ("check-plain", "check-remedies"):
        res = got.get(phase)
        if res:
            attempts += res.get("attempts", [])
            duration += float(res.get("duration_s") or 0.0)
    for a in attempts:
        a["ok"] = a.get("outcome") == "pass"
        warnings += [w for w in a.get("warnings", []) if w not in warnings]
    failed = got.get("check-plain-failed") or got.get("check-remedies-failed")
    if failed:
        return {"outcome": failed["outcome"], "attempts": attempts, "error_type": failed.get("error_type"),
                "message": failed.get("message"), "traceback": failed.get("traceback"),
                "hint": "the loader killed or hung the process; retried once in a fresh process",
                "warnings": warnings[:30], "duration_s": duration}
    if not attempts:
        return {"outcome": "crash", "message": "no check result was recorded", "warnings": warnings}
    verdict = combine(attempts)
    honest = all(a.get("fixtures_absent", True) for a in attempts if a.get("remedy") is None)
    if not honest:
        verdict["message"] = "fixture code was importable during the no-remedy attempt; result not trusted"
        verdict["outcome"] = "crash"
    verdict.update(attempts=attempts, warnings=warnings[:30], duration_s=round(duration, 3))
    return verdict


def _save_error(base: dict, meta: dict, versions: dict, imports: dict) -> dict:
    rec = dict(base, consumer=None, same_env=False, outcome="save-error",
               error_type=meta.get("error_type"), message=meta.get("message"),
               traceback=meta.get("traceback"), warnings=meta.get("warnings") or [],
               hint=hint_for(meta.get("message") or ""),
               versions={"producer": versions.get(base["producer"]), "consumer": None},
               tf_imports={}, expectation=None)
    return _complete(rec)


FIELDS = {"schema": None, "tolerance": None, "run_id": None, "worker_version": None, "producer": None, "consumer": None,
          "fixture": None, "format": None, "same_env": False, "outcome": None, "remedy": None,
          "attempts": [], "lost": [], "max_abs_diff": None, "max_rel_diff": None, "error_type": None,
          "message": None, "traceback": None, "warnings": [], "hint": None, "versions": {},
          "duration_s": 0.0, "checks": {}, "control_failed": False, "expectation": None,
          "tf_imports": {}, "promises": []}


def _complete(rec: dict) -> dict:
    out = {k: rec.get(k, v) for k, v in FIELDS.items()}
    out["promises"] = list(FORMATS[rec["format"]][1]) if rec.get("format") in FORMATS else []
    return out


def _mark_control(records: list[dict]) -> None:
    """Where `control` fails in a cell, other fixtures' failures there belong to the format/env pair."""
    bad = {(r["producer"], r["consumer"], r["format"]) for r in records
           if r["fixture"] == "control" and severity(r["outcome"]) >= severity("degraded")}
    bad_saves = {(r["producer"], r["format"]) for r in records
                 if r["fixture"] == "control" and r["outcome"] == "save-error"}
    for r in records:
        if r["fixture"] == "control":
            continue
        if (r["producer"], r["consumer"], r["format"]) in bad or (r["producer"], r["format"]) in bad_saves:
            r["control_failed"] = severity(r["outcome"]) >= severity("degraded") or r["outcome"] == "save-error"


def annotate_expectations(records: list[dict], matrix) -> None:
    """Set each record's `expectation` from the matrix's expectations (None where none covers it).

    Expectations are annotations, not results: `tfcompat report` re-applies the current matrix's,
    so a newly written or corrected expectation shows on the stored run without re-running it."""
    today = datetime.date.today()
    for rec in records:
        exp = matrix.expectation_for(rec["producer"], rec["consumer"], rec["fixture"], rec["format"])
        if not exp:
            rec["expectation"] = None
            continue
        expires = exp.get("expires")
        try:
            expired = bool(expires) and datetime.date.fromisoformat(str(expires)) < today
        except ValueError:
            expired = False
        rec["expectation"] = {"outcome": exp.get("outcome"), "reason": exp.get("reason"),
                              "expires": str(expires) if expires else None,
                              "met": exp.get("outcome") == rec["outcome"], "expired": expired}


def expectation_summary(records: list[dict]) -> dict:
    """How the run compares with its expectations: counts, and every cell that did not match."""
    covered = [r for r in records if r.get("expectation")]
    unmet = [{"producer": r["producer"], "consumer": r["consumer"], "fixture": r["fixture"],
              "format": r["format"], "expected": r["expectation"]["outcome"], "got": r["outcome"],
              "reason": r["expectation"]["reason"]}
             for r in covered if not r["expectation"]["met"]]
    return {"cells": len(covered), "met": len(covered) - len(unmet), "unmet": unmet,
            "expired": sum(1 for r in covered if r["expectation"]["expired"])}
