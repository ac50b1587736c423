"""One results record per (producer, consumer, fixture, format), assembled from a run store.

`assemble` is a pure function of what the store holds (journals, artifact metas, env errors), the
matrix and the selection: the same store always gives the same records.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from .matrix import EnvSpec, Matrix
from .results import SCHEMA_VERSION, severity
from .store import RunStore, Selection, check_key
from .tfjs import not_read
from .verdict import combine, hint_for
from .worker import WORKER_VERSION
from .worker.formats import FORMATS

FIELDS: dict[str, Any] = {"schema": None, "tolerances": None, "run_id": None, "worker_version": None, "producer": None,
          "consumer": None, "fixture": None, "format": None, "same_env": False, "outcome": None,
          "remedy": None, "remedy_cost": None, "attempts": [], "lost": [], "max_abs_diff": None,
          "max_rel_diff": None, "error_type": None, "message": None, "traceback": None,
          "warnings": {"save": [], "load": []}, "hint": None, "versions": {}, "duration_s": 0.0,
          "checks": {}, "control_failed": False, "expectation": None, "tf_imports": {}, "promises": [],
          "reason": None, "source": None, "save_error_kind": None, "harness_defect": None,
          "backends": {}, "network": None, "cached": False, "cached_from": None, "refusal": None,
          "resaved": None, "converted": None}

PHASES = ("check-plain", "check-remedies")
OWN_FILES = "a re-save variant's origin env saves nothing again: its own files are the fixture's own cells"
NO_JS_RESAVE = "a TF.js env does not load and re-save Keras files: its re-save is the converter's h5/keras cells"


def assemble(store: RunStore, matrix: Matrix, sel: Selection) -> list[dict]:
    """Records for the whole selection, in a stable order."""
    versions = store.versions(sel.envs)
    imports = store.tf_imports(sel.envs)
    env_errors = store.env_errors()
    check_errors = store.env_errors("check")
    metas, lost = store.saves(sel)
    journals = {(env, phase): store.read(env, phase) for env in sel.envs for phase in PHASES}
    run_backends = (store.load_meta() or {}).get("backends") or {}
    _, reused_cells = store.reused()
    out = []
    for producer in sel.envs:
        for fx in sel.fixtures:
            spec = matrix.fixture(fx)
            for fmt in sel.formats:
                base = {"schema": SCHEMA_VERSION, "run_id": store.run_id, "worker_version": WORKER_VERSION,
                        "producer": producer, "fixture": fx, "format": fmt, "tolerances": spec.tolerances(),
                        "backends": {"producer": run_backends.get(producer)}}
                meta = metas.get((producer, fx, fmt))
                if (producer, fx, fmt) in lost or (meta is not None and meta.get("status") == "save-error"):
                    out.append(_save_error(dict(base, resaved=resaved(meta), converted=(meta or {}).get("converted")),
                                           meta, lost.get((producer, fx, fmt)),
                                           versions))
                    continue
                if meta is not None and meta.get("status") == "harness-error":
                    out.append(_harness_error_artifact(dict(base, resaved=resaved(meta)), meta, versions))
                    continue
                for consumer in sel.envs:
                    # A cell the cache answers brings its attempts and what computed them; it is
                    # judged below like a fresh one, by today's rules.
                    cached = (reused_cells.get(check_key(producer, consumer, fx, fmt)) or {}).get("record")
                    rec = dict(base, consumer=consumer, same_env=producer == consumer,
                               versions={"producer": versions.get(producer), "consumer": versions.get(consumer)},
                               tf_imports={"consumer": imports.get(consumer)},
                               backends={"producer": run_backends.get(producer),
                                         "consumer": run_backends.get(consumer)},
                               network=_network(journals, consumer))
                    # A consumer whose check phase failed as a whole fails its column only.
                    errors = {**env_errors, **({consumer: check_errors[consumer]}
                                               if consumer in check_errors else {})}
                    rec.update(_cell(matrix, errors, journals, producer, consumer, fx, fmt, meta, cached))
                    if rec.get("cached") and cached is not None:
                        rec.update({k: cached.get(k) for k in ("versions", "tf_imports", "backends", "network")},
                                   cached_from=cached.get("run_id"))
                    rec["resaved"] = resaved(meta)
                    if meta and meta.get("converted"):
                        # what a converted file keeps is the converter's, not the format's in general
                        rec["promises"] = list(meta.get("promises") or [])
                        rec["converted"] = meta["converted"]
                    out.append(_complete(rec))
    _mark_control(out)
    annotate_expectations(out, matrix)
    return out


def _cell(matrix: Matrix, env_errors: dict, journals: dict, producer: str, consumer: str, fx: str,
          fmt: str, meta: dict | None, cached: dict | None = None) -> dict:
    """The verdict fields of one cell. What the matrix and the envs decide now (env errors,
    exclusions, formats an env does not read) comes first, whatever the cache holds; then the
    attempts, from this run's journals or from `cached` (a record an earlier run computed for the
    same key), judged by today's rules."""
    for side in (producer, consumer):
        if side in env_errors:
            return {"outcome": "env-error", "message": env_errors[side], "error_type": "EnvError",
                    "hint": "see the env's creation log under the run dir's logs/"}
    excluded = matrix.exclusion_for(producer, consumer, fx, fmt)
    if excluded:
        where = "%s: exclusions[%d]" % (os.path.basename(matrix.path), matrix.exclusions.index(excluded))
        return {"outcome": "not-applicable", "reason": excluded.get("reason") or "excluded", "source": where,
                "message": "excluded in %s: %s" % (where, excluded.get("reason"))}
    if meta is None and matrix.fixture(fx).origin == producer:
        return {"outcome": "not-applicable", "reason": OWN_FILES, "source": "tfcompat: re-save variants",
                "message": OWN_FILES}
    maker = _spec(matrix, producer)
    if meta is None and matrix.fixture(fx).origin and maker is not None and maker.kind == "tfjs":
        return {"outcome": "not-applicable", "reason": NO_JS_RESAVE, "source": "tfcompat: re-save variants",
                "message": NO_JS_RESAVE}
    reader = _spec(matrix, consumer)
    unread = not_read(reader, fmt) if reader else None
    if unread and (meta or {}).get("status") == "saved":
        return {"outcome": "not-applicable", "reason": unread["reason"], "source": unread["source"],
                "message": "%s (%s)" % (unread["reason"], unread["source"])}
    if meta is None:
        return {"outcome": "harness-error", "message": "the save phase recorded nothing for this artifact",
                "harness_defect": "no save result and no recorded failure for %s/%s/%s" % (producer, fx, fmt)}
    save_warnings = list(meta.get("warnings") or [])
    if meta.get("status") == "not-applicable":
        refusal = meta.get("refusal")
        return {"outcome": "not-applicable", "reason": meta.get("reason"), "source": meta.get("source"),
                "message": "%s (%s)%s" % (meta.get("reason"), meta.get("source"), refusal_text(refusal)),
                "refusal": refusal, "warnings": {"save": save_warnings, "load": []}}
    key = check_key(producer, consumer, fx, fmt)
    if cached is not None:
        attempts = [dict(a) for a in cached.get("attempts") or []]
        duration = float(cached.get("duration_s") or 0.0)
    else:
        attempts, duration = [], 0.0
        for phase in PHASES:
            made, seconds = journals[(consumer, phase)].attempts_of(key, phase)
            attempts += made
            duration += seconds
    verdict = judge(attempts)
    verdict.update(attempts=attempts, duration_s=round(duration, 3),
                   warnings={"save": save_warnings, "load": verdict.pop("load_warnings")},
                   **({"cached": True} if cached is not None else {}))
    return verdict


def judge(attempts: list[dict]) -> dict:
    """Verdict fields from a cell's attempts, in the order made (the honesty check first, then
    harness.verdict.combine); also `load_warnings`, every attempt's warnings once. The same rules
    for a fresh cell and a cached one."""
    load_warnings: list[str] = []
    for a in attempts:
        a["ok"] = a.get("outcome") == "pass"
        load_warnings += [w for w in a.get("warnings") or [] if w not in load_warnings]
    dishonest = [a for a in attempts if a.get("remedy") is None and a.get("fixtures_absent") is False]
    verdict: dict[str, Any]
    if dishonest:
        verdict = {"outcome": "harness-error", "remedy": None,
                   "message": "fixture code was importable during the no-remedy attempt; result not trusted",
                   "harness_defect": "honesty check failed: fixture code was loaded, registered or importable "
                                     "in the no-remedy process"}
    else:
        verdict = combine(attempts)
        if any(a["outcome"] in ("crash", "timeout") for a in attempts) and verdict["outcome"] not in (
                "crash", "timeout"):
            verdict["hint"] = " ".join(x for x in (verdict.get("hint"), "(one attempt killed or hung the "
                                                   "process; it was retried once in a fresh process)") if x)
    verdict["load_warnings"] = load_warnings
    return verdict


def _spec(matrix: Matrix, env: str) -> EnvSpec | None:
    """The env's spec; None for an id the matrix no longer declares (a run of an older matrix)."""
    try:
        return matrix.env(env)
    except KeyError:
        return None



def resaved(meta: dict | None) -> dict | None:
    """A re-save variant's artifact: whose original it is, and how this env loaded it to save it."""
    if not meta or not meta.get("origin"):
        return None
    return {"origin": meta["origin"], "loaded_with": meta.get("loaded_with"), "tried": meta.get("tried") or [],
            "keras_version": meta.get("keras_version")}


def refusal_text(refusal: dict | None) -> str:
    """What the framework said when the user's call for a not-applicable format was made anyway."""
    if not refusal:
        return ""
    if refusal.get("refused"):
        return ". Tried anyway, `%s` raises %s: %s" % (refusal["call"], refusal.get("error_type"),
                                                        refusal.get("message"))
    return ". Tried anyway, `%s` raises nothing and writes %s instead" % (
        refusal["call"], ", ".join(refusal.get("wrote") or []) or "nothing")


def _network(journals: dict, consumer: str) -> str | None:
    """What the consumer's check workers saw: "none" (loopback only), else their interfaces."""
    seen: set[str] | None = None
    for phase in PHASES:
        ready = journals[(consumer, phase)].ready
        if ready and ready.get("net_interfaces") is not None:
            seen = (seen or set()) | set(ready["net_interfaces"])
    if seen is None:
        return None
    rest = sorted(seen - {"lo"})
    return "none (loopback only)" if not rest else "online: " + ", ".join(rest)


def _harness_error_artifact(base: dict, meta: dict, versions: dict) -> dict:
    """An artifact the harness could not stand behind while making it (a failed precondition in a
    re-save): a defect of the harness, which fails the run, never a save-error."""
    defect = meta.get("harness_defect") or meta.get("message") or "a precondition of the save failed"
    rec = dict(base, consumer=None, same_env=False, outcome="harness-error", harness_defect=defect,
               error_type=meta.get("error_type"), message=meta.get("message") or defect,
               traceback=meta.get("traceback"), warnings={"save": list(meta.get("warnings") or []), "load": []},
               versions={"producer": versions.get(base["producer"]), "consumer": None}, tf_imports={},
               expectation=None)
    return _complete(rec)


def _save_error(base: dict, meta: dict | None, lost: dict | None, versions: dict) -> dict:
    """One record per artifact the producer could not save: an exception, or a worker that died
    (crash) or hung (timeout) while saving it."""
    src = lost if lost is not None else meta or {}
    kind = lost["outcome"] if lost is not None else "exception"
    message = src.get("message") or ""
    if lost is not None and kind != "env-error":
        message = "the save worker %s while saving this artifact: %s" % (
            "hung" if kind == "timeout" else "died", message)
    converted = (meta or {}).get("converted") or {}
    if lost is None and converted.get("command"):
        # The artifact is the converter env's: say which conversion failed, in the user's own command.
        message = "%s (in the converter env, %s) failed: %s" % (converted["command"], converted.get("converter"),
                                                               message)
    rec = dict(base, consumer=None, same_env=False, outcome="save-error", save_error_kind=kind,
               error_type=src.get("error_type"), message=message, traceback=src.get("traceback"),
               warnings={"save": list((meta or {}).get("warnings") or []), "load": []},
               hint=hint_for(message), versions={"producer": versions.get(base["producer"]), "consumer": None},
               tf_imports={}, expectation=None)
    return _complete(rec)


def _complete(rec: dict) -> dict:
    out = {k: rec.get(k, v) for k, v in FIELDS.items()}
    out["promises"] = list(rec.get("promises") or (FORMATS[rec["format"]][1] if rec.get("format") in FORMATS else []))
    return out


def _mark_control(records: list[dict]) -> None:
    """Where `control` fails in a cell at least as badly, the other fixture's failure there belongs
    to the format/env pair, not to its feature. Where control could not be saved, neither could
    the pair be judged: the other fixtures' save errors are marked."""
    control = {(r["producer"], r["consumer"], r["format"]): r["outcome"] for r in records
               if r["fixture"] == "control"}
    bad_saves = {(r["producer"], r["format"]) for r in records
                 if r["fixture"] == "control" and r["outcome"] == "save-error"}
    for r in records:
        if r["fixture"] == "control":
            continue
        if r["outcome"] == "save-error":
            r["control_failed"] = (r["producer"], r["format"]) in bad_saves
            continue
        mine = severity(r["outcome"])
        theirs = severity(control.get((r["producer"], r["consumer"], r["format"]), ""))
        r["control_failed"] = mine >= severity("degraded") and theirs >= mine


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


def harness_defects(records: list[dict]) -> list[dict]:
    """The cells whose result the harness cannot stand behind: the run fails on any of them."""
    return [{"producer": r["producer"], "consumer": r["consumer"], "fixture": r["fixture"],
             "format": r["format"], "defect": r.get("harness_defect") or r.get("message")}
            for r in records if r["outcome"] == "harness-error"]
