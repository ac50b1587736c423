"""`tfcompat scan PATH... --from A --to B[,C]`: the user's own saved models, through the grid's checks.

Each artifact found under PATH (by extension or layout; what is skipped is listed with the reason)
is read once in env A, the env the user runs today (the worker's reference step: outputs on fixed
inputs, optimizer state, custom classes), then checked in every target env exactly as the grid's
cells are: a no-remedy attempt in a process without the user's code, then the remedy ladder,
against A's references. Artifacts are only read; checks run offline; `safe_mode=False` is tried
only with `--allow-unsafe`. The run lives in `<state>/scans/<id>`; the result cache is not used (a
user's file is not a fixture whose source the cache could key).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import shutil
from dataclasses import dataclass

from . import readiness, records, results
from .errors import ConfigError, MissingResults
from .matrix import FixtureSpec, Matrix
from .store import Selection, save_key


@dataclass(frozen=True)
class Found:
    name: str  # an identifier: the artifact's cells are filed under it, as a fixture's are
    path: str
    format: str


def detect(path: str) -> tuple[str | None, str]:
    """(format, "") for a model artifact, else (None, why it is skipped)."""
    base = os.path.basename(path.rstrip(os.sep)).lower()
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return ("savedmodel" if os.path.isfile(os.path.join(path, "keras_metadata.pb")) else "export"), ""
        if os.path.isdir(os.path.join(path, "variables")):
            return None, "a SavedModel dir without saved_model.pb (incomplete copy?)"
        return None, "a folder"
    if base.endswith(".weights.h5"):
        return "weights", ""
    if base.endswith((".h5", ".hdf5")):
        return "h5", ""  # the reference step tells a whole model from weights only
    if base.endswith(".keras"):
        return "keras", ""
    return None, "not a model file (.h5, .keras, .weights.h5, a SavedModel or export dir)"


def discover(paths: list[str]) -> tuple[list[Found], list[tuple[str, str]]]:
    """Artifacts under `paths`, and [(path, why)] of what was skipped."""
    found: list[Found] = []
    skipped: list[tuple[str, str]] = []
    names: set[str] = set()

    def add(path: str, fmt: str) -> None:
        stem = re.sub(r"\W+", "_", os.path.relpath(path, os.path.commonpath([os.path.abspath(p) for p in paths])
                                                   if len(paths) > 1 else os.path.dirname(os.path.abspath(
                                                       paths[0].rstrip(os.sep))))).strip("_").lower()
        name = "m_" + (stem or "model")
        while name in names:
            name += "_"
        names.add(name)
        found.append(Found(name, os.path.abspath(path), fmt))

    for top in paths:
        if not os.path.exists(top):
            skipped.append((top, "does not exist"))
            continue
        fmt, why = detect(top)
        if fmt:
            add(top, fmt)
            continue
        if not os.path.isdir(top) or why != "a folder":
            skipped.append((top, why))
            continue
        for root, dirs, files in os.walk(top):
            for d in sorted(dirs):
                fmt, why = detect(os.path.join(root, d))
                if fmt:
                    add(os.path.join(root, d), fmt)
                elif why != "a folder":
                    skipped.append((os.path.join(root, d), why))
            dirs[:] = sorted(d for d in dirs if detect(os.path.join(root, d)) == (None, "a folder"))
            for f in sorted(files):
                fmt, why = detect(os.path.join(root, f))
                if fmt:
                    add(os.path.join(root, f), fmt)
                elif not f.startswith("."):
                    skipped.append((os.path.join(root, f), why))
    return found, skipped


def scan(matrix: Matrix, a: str, targets: list[str], paths: list[str], state_dir: str, *, code: str | None = None,
         inputs: str | None = None, allow_unsafe: bool = False, jobs: int = 2, migrate: str | None = None,
         log=print) -> dict:
    """Reference in A, checks in A and every target; returns {run_dir, records, found, skipped, by_target}."""
    from .runner import Runner

    matrix.require_envs([("--from", a)] + [("--to", t) for t in targets])
    for flag, path in (("--code", code), ("--inputs", inputs)):
        if path and not os.path.isfile(path):
            raise ConfigError(["%s: no file %s" % (flag, path)])
    found, skipped = discover(paths)
    for path, why in skipped:
        log("skipped %s: %s" % (path, why))
    if not found:
        raise MissingResults("scan: no saved model found under %s" % ", ".join(paths))
    envs = tuple(dict.fromkeys([a] + list(targets)))
    formats = tuple(sorted({f.format for f in found}))
    code_path = os.path.abspath(code) if code else ""
    scan_matrix = dataclasses.replace(
        matrix, fixtures=[FixtureSpec(name=f.name, path=code_path) for f in found], formats=list(formats),
        exclusions=[], expectations=[])
    sel = Selection(envs, tuple(f.name for f in found), formats)
    run_dir = os.path.join(state_dir, "scans", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    runner = Runner(scan_matrix, sel, run_dir, jobs=jobs, refresh=envs, log=log)
    runner.fps = {}
    items = [{"key": save_key(f.name, f.format), "scan": True, "fixture": f.name, "format": f.format,
              "path": f.path, "out_dir": runner.store.artifact_dir(a, f.name, f.format),
              "code_path": code_path or None, "inputs_path": os.path.abspath(inputs) if inputs else None,
              "migrate": bool(migrate)}
             for f in found]
    runner.save_items(a, items)  # a user's file, read once in A
    runner.check_consumers(list(envs), extra={"user_code": bool(code_path), "allow_unsafe": allow_unsafe})
    runner.progress.close()
    recs = [r for r in records.assemble(runner.store, scan_matrix, sel)
            if r["producer"] == a and (r["fixture"], r["format"]) in {(f.name, f.format) for f in found}]
    runner.store.write_results(recs)
    labels = {f.name: f.path for f in found}
    notes = _notes(runner.store, a, envs, found)
    by_target = {}
    for b in targets:
        r = readiness.build(recs, a, b, [f.name for f in found], list(formats), [a, b],
                            run_id=os.path.basename(run_dir), pairs=[(f.name, f.format) for f in found],
                            round_trip=False)
        r.labels, r.skipped = labels, skipped
        r.notes = {name: notes.get((name, a), []) + notes.get((name, b), []) for name in labels}
        if migrate:
            _migrate(runner, scan_matrix, r, a, b, found, code_path, allow_unsafe, migrate, log)
        for c in r.cells:
            c.path = labels[c.fixture]
        by_target[b] = r
    results.write_json(os.path.join(run_dir, "scan.json"), {
        "from": a, "to": list(targets), "found": [dataclasses.asdict(f) for f in found], "skipped": skipped})
    return {"run_dir": run_dir, "records": recs, "found": found, "skipped": skipped, "by_target": by_target}


def _notes(store, a: str, envs: tuple, found: list[Found]) -> dict:
    """(artifact, env) -> notes: what reading it in A said, and the rungs a check left untried."""
    from .store import check_key

    out: dict = {}
    saves = store.read(a, "save").done
    for f in found:
        meta = saves.get(save_key(f.name, f.format)) or {}
        out[(f.name, a)] = ["in %s: %s" % (a, n) for n in meta.get("notes") or []]
        if meta.get("format") and meta["format"] != f.format:
            out[(f.name, a)].append("read as %s (%s)" % (meta["format"], "weights only" if "weights" in
                                                          meta["format"] else "as found"))
        for env in envs:
            result = store.read(env, "check-remedies").done.get(check_key(a, env, f.name, f.format)) or {}
            if result.get("unsafe_skipped"):
                out.setdefault((f.name, env), []).append(
                    "in %s: not tried without --allow-unsafe: %s (runs code stored in the file)" % (
                        env, ", ".join(result["unsafe_skipped"])))
    return out


MIGRATED_OK = ("pass", "pass-with-remedy")


def _migrate(runner, scan_matrix: Matrix, r: readiness.Readiness, a: str, b: str, found: list[Found],
             code_path: str, allow_unsafe: bool, out_root: str, log) -> None:
    """Convert each artifact that does not load cleanly in B by every route that applies, check each
    result in B against A's references, keep the best that passes under `out_root/<artifact>/` with
    its proof, and record every route tried in `r.migrations`."""
    from .store import check_key

    cells = {c.fixture: c for c in r.cells}
    items, routes = [], {}
    for f in found:
        c = cells[f.name]
        if c.status in ("ready", "cannot-save", "missing", "unknown"):
            continue
        todo = []
        if c.status in ("ready-with-remedy", "loses-state"):
            todo.append(("resave", c.remedy))
        if code_path and f.format not in ("export",):
            todo.append(("weights", None))
        for route, rung in todo:
            name = "%s__%s" % (f.name, route)
            routes[name] = (f, route)
            items.append({"key": save_key(name, "keras"), "scan_migrate": True, "fixture": name, "route": route,
                          "path": f.path, "rung": rung, "a_dir": runner.store.artifact_dir(a, f.name, f.format),
                          "out_dir": runner.store.artifact_dir(b, name, "keras"), "code_path": code_path or None})
    if not items:
        return
    runner.save_items(b, items)
    metas = runner.store.read(b, "save").done
    specs = [FixtureSpec(name=n, path=code_path) for n in routes]
    checks = []
    for name in routes:
        if (metas.get(save_key(name, "keras")) or {}).get("status") == "saved":
            checks.append({"key": check_key(b, b, name, "keras"), "producer": b, "fixture": name, "format": "keras",
                           "artifact_dir": runner.store.artifact_dir(b, name, "keras"), "fixture_path": code_path,
                           "tolerances": specs[0].tolerances(), "user_code": bool(code_path),
                           "allow_unsafe": allow_unsafe})
    if checks:
        runner.check_consumers([b], todo={b: checks})
    m = dataclasses.replace(scan_matrix, fixtures=list(scan_matrix.fixtures) + specs)
    recs = {x["fixture"]: x for x in records.assemble(runner.store, m, Selection((b,), tuple(routes), ("keras",)))}
    for name, (f, route) in routes.items():
        rec, meta = recs.get(name) or {}, metas.get(save_key(name, "keras")) or {}
        r.migrations.setdefault(f.name, []).append({
            "route": route, "steps": list(meta.get("steps") or []), "notes": list(meta.get("notes") or []),
            "outcome": rec.get("outcome"), "remedy": rec.get("remedy"), "lost": rec.get("lost") or [],
            "max_abs_diff": rec.get("max_abs_diff"), "message": rec.get("message"),
            "artifact": meta.get("artifact"), "kept": None})
    for f in found:
        tried = r.migrations.get(f.name) or []
        good = [t for t in tried if t["outcome"] in MIGRATED_OK]
        if not good:
            continue
        best = min(good, key=lambda t: (MIGRATED_OK.index(t["outcome"]), t["route"] != "resave"))
        dest = os.path.join(out_root, "%s-to-%s" % (a, b), f.name)
        os.makedirs(dest, exist_ok=True)
        shutil.copy(best["artifact"], os.path.join(dest, "model.keras"))
        best["kept"] = os.path.join(dest, "model.keras")
        results.write_json(os.path.join(dest, "proof.json"), {
            "original": f.path, "from": a, "to": b, "route": best["route"], "steps": best["steps"],
            "check_in_target": {k: best[k] for k in ("outcome", "remedy", "lost", "max_abs_diff", "message")},
            "notes": best["notes"], "run": r.run_id})
        log("migrated %s -> %s (%s route, %s in %s)" % (f.path, best["kept"], best["route"], best["outcome"], b))
        fx = next(x for x in r.fixtures if x.name == f.name)
        if fx.verdict not in ("ready", "ready-with-changes"):
            fx.verdict = "migrated"
