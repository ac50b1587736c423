"""Render reports/index.html: one self-contained page (inline CSS, JS and data) from results.jsonl.

The page needs no network: styles, script and the cell details (as JSON) are all inline. The grid
is rendered here (readable without JS); the script adds filters and the click-through details.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from collections import Counter
from collections.abc import Iterable
from typing import Any

import jinja2
from markupsafe import Markup

from harness import __version__, outcomes, results
from harness.records import harness_defects
from harness.worker.remedies import BY_NAME, REMEDIES, parts

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")

CODES = outcomes.CODES  # short text code per outcome: the cell shows it next to its colour
MEANINGS = outcomes.MEANINGS
CHECKS = ("predictions", "classes", "optimizer", "resume", "serving", "weights")
KEY_PACKAGES = ("h5py", "numpy", "protobuf", "tensorflow-hub")
TRACEBACK_LINES = 40
# Records keep every warning; the page shows the first few of each list (results.jsonl has all).
WARNINGS_SHOWN = 20
ATTEMPT_WARNINGS_SHOWN = 3  # an attempt's warnings are also among the cell's load warnings
HARNESS_DEFECTS_SHOWN = 10
DETAIL_KEYS = (
    "producer", "consumer", "fixture", "format", "outcome", "remedy", "remedy_cost", "lost",
    "max_abs_diff", "max_rel_diff", "error_type", "message", "hint", "checks", "promises",
    "control_failed", "expectation", "same_env", "duration_s", "tf_imports", "reason", "source",
    "save_error_kind", "harness_defect", "backends", "network", "refusal", "resaved", "converted",
)
ATTEMPT_KEYS = ("remedy", "ok", "outcome", "error_type", "message", "lost", "max_abs_diff", "max_rel_diff",
                "restore", "harness_defect", "fixtures_absent", "phase")
SAVE_ERROR_KINDS = {"crash": "the save worker crashed", "timeout": "the save worker hung (timed out)",
                    "exception": "the save raised an exception"}


def render_report(results_path: str, out_dir: str, run_meta: dict) -> str:
    """Write `out_dir/index.html` from the records in `results_path` and return the file's path.

    `run_meta`: run_id, started, finished (ISO), duration_s, matrix_path, envs (declared specs),
    tf_imports {env: {save, plain, remedies}}, phase_times, worker_version, harness_defects
    [{producer, consumer, fixture, format, defect}]. Optional: fixtures, formats (display order).
    """
    page = build_page(list(results.read(results_path)), run_meta)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template("index.html.j2").render(**page)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "index.html")
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        fh.write(html)
    os.replace(path + ".tmp", path)
    return path


def build_page(records: list[dict], run_meta: dict) -> dict:
    """The template's context: run facts, grid tables, summaries, envs, and the JSON for the script."""
    cells, artifacts, env_errors = _classify(records)
    env_ids = _ordered([e["id"] for e in run_meta.get("envs", [])],
                       [r.get(k) for r in records for k in ("producer", "consumer")])
    fixtures = _ordered(run_meta.get("fixtures") or [], [r.get("fixture") for r in records])
    formats = _ordered(run_meta.get("formats") or [], [r.get("format") for r in records])
    envs = _env_rows(env_ids, run_meta, records, env_errors)
    details = _Details({e["id"]: e["installed"] for e in envs})
    tables = [_fixture_table(f, env_ids, formats, cells, artifacts, env_errors, details)
              for f in fixtures]
    totals = Counter(c["outcome"] for t in tables for row in t["rows"]
                     for c in ([row["span"]] if row["span"] else row["cells"]) if c["outcome"])
    data = {"versions": details.versions, "codes": CODES, "checks": CHECKS,
            "verdicts": results.VERDICTS,
            "remedies": {r.name: {"short": r.short, "label": r.label} for r in REMEDIES},
            "save_error_kinds": SAVE_ERROR_KINDS}
    backends = {e["id"]: e.get("backend") for e in run_meta.get("envs", [])}
    for rec in records:
        for side in ("producer", "consumer"):
            if rec.get(side) and (rec.get("backends") or {}).get(side):
                backends.setdefault(rec[side], rec["backends"][side])
    shown = {b for b in backends.values() if b}
    return {
        "run": _run_facts(run_meta, records),
        "env_ids": env_ids,
        # Each env's backend is shown beside its id once any env runs on another than tox.
        "env_backends": backends if shown - {"tox"} else {},
        "fixtures": fixtures,
        "formats": formats,
        "tables": tables,
        "totals": [(o, CODES[o], totals[o]) for o in results.OUTCOMES if totals[o]],
        "legend": [(o, CODES[o], MEANINGS[o]) for o in results.OUTCOMES],
        "remedies": [(r.short, r.label) for r in REMEDIES],
        "outcomes": results.OUTCOMES,
        "verdicts": [(o, CODES[o]) for o in results.VERDICTS],
        "summary": format_summary(cells, artifacts, formats, fixtures),
        "envs": envs,
        "converter": run_meta.get("converter"),  # the env that made the TF.js files (no row of the grid)
        "key_packages": KEY_PACKAGES,
        "data_json": Markup(embed_json(data)),
        # The cells' details, the bulk of the page, gzipped: the script inflates them on load.
        "cells_packed": pack_json(details.items),
        "css": Markup(_asset("report.css")),
        "js": Markup(_asset("report.js")),
    }


def format_summary(cells: dict, artifacts: dict, formats: list[str], fixtures: list[str]) -> list[dict]:
    """Per format: counts per verdict and pass rates over verdict cells only.

    `cells` maps (producer, consumer, fixture, format) and `artifacts` (producer, fixture, format)
    to records. `pass` counts outcome pass; `usable` counts the passing outcomes reached without a rung
that keeps the user on Keras 2 (`keras2_only` counts those apart: never usable on Keras 3). Non-verdict
    cells (save-error, not-applicable, env-error) are counted apart in `not_counted`, and artifacts
    that could not be saved in `save_errors` (once per artifact).
    """
    rows = []
    for fmt in formats:
        recs = [r for k, r in cells.items() if k[3] == fmt]
        unsaved = {(k[0], k[2]) for k, r in cells.items() if k[3] == fmt and r.get("outcome") == "save-error"}
        unsaved |= {(k[0], k[1]) for k, r in artifacts.items() if k[2] == fmt and r.get("outcome") == "save-error"}
        verdicts = [r for r in recs if results.is_verdict(r.get("outcome", ""))]
        counts = Counter(r["outcome"] for r in verdicts)
        per_fixture = []
        for fixture in fixtures:
            fv = [r for r in verdicts if r.get("fixture") == fixture]
            per_fixture.append(_rate(sum(r["outcome"] == "pass" for r in fv), len(fv)))
        rows.append({
            "format": fmt,
            "verdicts": len(verdicts),
            "counts": [(o, CODES[o], counts[o]) for o in results.VERDICTS],
            "pass": _rate(counts["pass"], len(verdicts)),
            "usable": _rate(sum(1 for r in verdicts if outcomes.usable(r["outcome"], r.get("remedy"))), len(verdicts)),
            "keras2_only": sum(1 for r in verdicts if outcomes.usable(r["outcome"], None)
                               and outcomes.keras2_only(r.get("remedy"))),
            "per_fixture": per_fixture,
            "not_counted": len(recs) - len(verdicts),
            "save_errors": len(unsaved),
        })
    return rows


def pack_json(data: Any) -> str:
    """base64 of gzipped JSON: what the page's DecompressionStream("gzip") reads back."""
    import base64
    import gzip

    text = json.dumps(_finite(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)).decode("ascii")


def unpack_json(text: str) -> Any:
    import base64
    import gzip

    return json.loads(gzip.decompress(base64.b64decode(text)).decode("utf-8"))


def embed_json(data: Any) -> str:
    """JSON safe inside a <script> element: no `<`, `>` or `&` (so no `</script>`), no NaN."""
    text = json.dumps(_finite(data), ensure_ascii=False, allow_nan=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


# ---- grid ------------------------------------------------------------------------------------

def _classify(records: Iterable[dict]) -> tuple[dict, dict, dict]:
    """Split records into cells, artifact-level records and env-level errors (later wins)."""
    cells: dict = {}
    artifacts: dict = {}
    env_errors: dict = {}
    for rec in records:
        p, c, fx, fm = (rec.get(k) for k in ("producer", "consumer", "fixture", "format"))
        if not fx or not fm:
            for env_id in (p, c):
                if env_id and rec.get("outcome") == "env-error":
                    env_errors[env_id] = rec
        elif c:
            cells[(p, c, fx, fm)] = rec
        else:
            artifacts[(p, fx, fm)] = rec
    return cells, artifacts, env_errors


def _fixture_table(fixture, env_ids, formats, cells, artifacts, env_errors, details) -> dict:
    rows: list[dict] = []
    for producer in env_ids:
        for fmt in formats:
            present = [cells.get((producer, c, fixture, fmt)) for c in env_ids]
            found = [r for r in present if r]
            span = artifacts.get((producer, fixture, fmt))
            if found and (all(r.get("outcome") == "save-error" for r in found) or _producer_broken(found)):
                span = found[0]  # once per artifact (or producer env), even if written per consumer
            elif found:
                span = None
            elif not span:
                span = env_errors.get(producer)
            if span:
                row_cells = []
                span_cell = _cell(span, details, (producer, None, fixture, fmt))
            elif found:
                span_cell = None
                row_cells = [_cell(rec or env_errors.get(c), details, (producer, c, fixture, fmt))
                             for c, rec in zip(env_ids, present)]
            else:
                continue
            rows.append({"producer": producer, "format": fmt, "span": span_cell, "cells": row_cells,
                         "group_start": not rows or rows[-1]["producer"] != producer})
    return {"fixture": fixture, "rows": rows}


def _producer_broken(found: list[dict]) -> bool:
    """Whether every cell of a row is an env-error of the producer itself (it never reported versions)."""
    return all(r.get("outcome") == "env-error" and not (r.get("versions") or {}).get("producer") for r in found)


def _cell(rec: dict | None, details: _Details, where: tuple) -> dict:
    """The view of one grid cell; `where` is (producer, consumer, fixture, format), and consumer is
    None for a row-wide record (a save-error artifact, or an env-error of the producer).

    A cell's key and tooltip are not in the HTML (the bulk of a big page): the script reads both
    from its details item (`key`, `title`)."""
    producer, consumer, fixture, fmt = where
    same_env = consumer is not None and producer == consumer
    if rec is None:
        return {"i": None, "outcome": "", "code": "\u2014", "same_env": same_env, "defect": False,
                "control": False, "expected": False, "unexpected": False, "text": ""}
    outcome = rec.get("outcome") or ""
    defect = same_env and results.severity(outcome) >= results.severity("degraded")
    exp = rec.get("expectation") or {}
    control = bool(rec.get("control_failed")) and outcome != "pass"
    text = ""
    if consumer is None:
        text = " ".join(x for x in (rec.get("error_type"), rec.get("message")) if x)
    return {
        "i": details.add(rec, where, _title(rec, where, defect, control, text)),
        "outcome": outcome,
        "code": CODES.get(outcome, "?"),
        "remedy_short": remedy_short(rec.get("remedy")),
        "same_env": same_env,
        "defect": defect,
        "control": control,
        "expected": bool(exp),
        "unexpected": bool(exp) and not exp.get("met"),
        "text": text[:300],
    }


def _title(rec: dict, where: tuple, defect: bool, control: bool, text: str) -> str:
    producer, consumer, fixture, fmt = where
    outcome = rec.get("outcome") or ""
    if consumer:
        pair = f"{producer} \u2192 {consumer}"
    else:
        pair = f"{producer} ({'env' if outcome == 'env-error' else 'artifact'})"
    title = f"{pair} \u00b7 {fixture} \u00b7 {fmt}: {outcome}"
    if rec.get("remedy"):
        title += f" ({rec['remedy']})"
    if outcome == "save-error" and rec.get("save_error_kind") in SAVE_ERROR_KINDS:
        title += f" ({SAVE_ERROR_KINDS[rec['save_error_kind']]})"
    if outcome == "harness-error":
        title += " \u2014 harness defect: " + str(rec.get("harness_defect") or rec.get("message") or "?")
    if outcome == "not-applicable" and rec.get("reason"):
        title += f": {rec['reason']}"
    if defect:
        title += " \u2014 same-version defect"
    exp = rec.get("expectation")
    if exp and not exp.get("met"):
        title += f" \u2014 NOT the expected {exp.get('outcome')}"
    if control:
        title += (" \u2014 control could not be saved either" if outcome == "save-error" else
                  " \u2014 control fails here too: the format/env pair, not the fixture feature")
    if text:
        title += ": " + text[:300]
    return title


def remedy_short(rung: str | None) -> str:
    """The cell's short form of a rung: each remedy's short, joined by "+" ("co+nc")."""
    return "+".join(BY_NAME[p].short if p in BY_NAME else p for p in parts(rung))


class _Details:
    """Collects the per-cell details for the script (one item per cell), version sets deduplicated."""

    def __init__(self, installed: dict) -> None:
        self.installed = installed
        self.items: list[dict] = []
        self.versions: list[dict] = []
        self._version_ids: dict[str, int] = {}

    def add(self, rec: dict, where: tuple, title: str) -> int:
        """Add the details of `rec` shown at `where` (producer, consumer, fixture, format)."""
        item = {k: rec.get(k) for k in DETAIL_KEYS}
        item["producer"], item["consumer"], item["fixture"], item["format"] = where
        item["title"] = title
        item["same_env"] = where[1] is not None and where[0] == where[1]
        item["remedy_short"] = remedy_short(rec.get("remedy"))
        item["traceback"] = _excerpt(rec.get("traceback"))
        item["tolerances"] = _tolerances(rec)
        item["warnings"] = _warnings(rec.get("warnings"))
        item["attempts"] = [_attempt(a) for a in rec.get("attempts") or []]
        recorded = rec.get("versions") or {}
        for side, env_id, field in (("producer", where[0], "pv"), ("consumer", where[1], "cv")):
            own = recorded.get(side) if rec.get(side) == env_id else None
            item[field] = self._version(own or self.installed.get(env_id))
        self.items.append(item)
        return len(self.items) - 1

    def _version(self, v: dict | None) -> int | None:
        if not v:
            return None
        key = json.dumps(v, sort_keys=True, default=str)
        if key not in self._version_ids:
            self._version_ids[key] = len(self.versions)
            self.versions.append(v)
        return self._version_ids[key]


def _attempt(a: dict) -> dict:
    """What the page shows of one attempt (the record keeps the rest: states, per-attempt tolerances)."""
    out = {k: a.get(k) for k in ATTEMPT_KEYS}
    out["warnings"] = _capped(a.get("warnings") or [], ATTEMPT_WARNINGS_SHOWN)
    notes = []
    opt = a.get("optimizer_detail") or {}
    if opt.get("mismatch"):
        notes.append("optimizer: " + "; ".join(str(m) for m in opt["mismatch"]))
    if opt.get("resume_error"):
        notes.append("resumed step failed: " + str(opt["resume_error"]))
    serving = a.get("serving_detail") or {}
    if serving.get("error"):
        notes.append("serving signature: " + str(serving["error"]))
    out["notes"] = notes
    return out


def _warnings(warnings: Any) -> list[list]:
    """[[where, capped list]] for the panel: save, then load (a schema-1 record's one list: "all")."""
    if isinstance(warnings, list):
        return [["all", _capped(warnings)]] if warnings else []
    warnings = warnings or {}
    order = ["save", "load"] + sorted(k for k in warnings if k not in ("save", "load"))
    return [[k, _capped(warnings[k])] for k in order if warnings.get(k)]


def _capped(items: list, shown: int = WARNINGS_SHOWN) -> dict:
    return {"shown": [str(x) for x in items[:shown]], "total": len(items)}


# ---- environments and run facts ---------------------------------------------------------------

def _env_rows(env_ids: list[str], run_meta: dict, records: list[dict], env_errors: dict) -> list[dict]:
    declared = {e["id"]: e for e in run_meta.get("envs", [])}
    imports = run_meta.get("tf_imports") or {}
    rows = []
    for env_id in env_ids:
        spec = declared.get(env_id, {})
        inst = _installed(env_id, records)
        packages = {_norm(k): v for k, v in ((inst or {}).get("packages") or {}).items()}
        counts = imports.get(env_id) or {}
        err = env_errors.get(env_id) or next(
            (r for r in records if r.get("outcome") == "env-error" and _failed_side(r) == env_id), None)
        rows.append({
            "id": env_id,
            "backend": spec.get("backend") or "tox",
            "installed": inst,
            "python": (inst or {}).get("python") or _js(inst, "node", "Node "),
            "tensorflow": (inst or {}).get("tensorflow") or _js(inst, "tfjs", "TF.js "),
            "keras": (inst or {}).get("keras"),
            "key": [packages.get(p) for p in KEY_PACKAGES],
            "packages": sorted(packages.items()),
            "declared": _spec_text(spec),
            "differs": _differs(spec, inst),
            "imports": [counts.get(k) for k in ("save", "plain", "remedies")],
            "error": err and " ".join(x for x in (err.get("error_type"), err.get("message")) if x),
        })
    return rows


def _js(inst: dict | None, key: str, label: str) -> str | None:
    """A TF.js env's runtime versions, where a Python env shows Python and TF."""
    value = (inst or {}).get(key)
    return label + value if value else None


def _failed_side(rec: dict) -> str | None:
    """The env an env-error cell blames: the one side without recorded versions, if just one."""
    versions = rec.get("versions") or {}
    missing = [rec.get(s) for s in ("producer", "consumer") if rec.get(s) and not versions.get(s)]
    return missing[0] if len(set(missing)) == 1 else None


def _installed(env_id: str, records: list[dict]) -> dict | None:
    """The env's installed versions as recorded by its workers (the fullest package set seen)."""
    best = None
    for rec in records:
        versions = rec.get("versions") or {}
        for side in ("producer", "consumer"):
            v = versions.get(side)
            if rec.get(side) == env_id and v and (
                    best is None or len(v.get("packages") or {}) > len(best.get("packages") or {})):
                best = v
    return best


def _differs(spec: dict, inst: dict | None) -> list[str]:
    """Which declared versions the installed ones do not match (declared is a prefix)."""
    out = []
    for k in ("python", "tensorflow", "keras"):
        want, got = str(spec.get(k) or ""), str((inst or {}).get(k) or "")
        if inst and want and want[0].isdigit() and got and not (got + ".").startswith(want + "."):
            out.append(k)
    return out


def _spec_text(spec: dict) -> str:
    raw = spec.get("spec")
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        return ", ".join(f"{k}={v}" for k, v in raw.items() if v not in (None, {}, []))
    return ", ".join(f"{k}={spec[k]}" for k in ("python", "tensorflow", "keras") if spec.get(k))


def _run_facts(meta: dict, records: list[dict]) -> dict:
    phases = meta.get("phase_times") or {}
    defects = (meta["harness_defects"] if "harness_defects" in meta else harness_defects(records)) or []
    return {
        "run_id": meta.get("run_id") or "-",
        "started": _when(meta.get("started")),
        "finished": _when(meta.get("finished")),
        "duration": _duration(meta.get("duration_s")),
        "matrix_path": meta.get("matrix_path") or "-",
        "worker_version": meta.get("worker_version") or "-",
        "harness_version": __version__,
        "phases": [(k[:-2] if k.endswith("_s") else k).replace("_", " ") + ": " + _duration(v)
                   for k, v in phases.items()],
        "expectations": _expectations_line(meta.get("expectations") or {}),
        "defects": [_defect_view(d) for d in defects[:HARNESS_DEFECTS_SHOWN]],
        "defects_total": len(defects),
        "cached": meta.get("cache") or {},
        "changes": meta.get("changes"),  # with a --baseline: {summary, counts, failing, sections} (runner.publish)
    }


def _defect_view(d: dict) -> dict:
    where = (d.get("producer"), d.get("consumer"), d.get("fixture"), d.get("format"))
    pair = f"{where[0]} \u2192 {where[1]}" if where[1] else f"{where[0]} (artifact)"
    return {"where": f"{pair} \u00b7 {where[2]} \u00b7 {where[3]}", "defect": d.get("defect") or "",
            "key": "|".join(x or "" for x in where)}


def _expectations_line(summary: dict) -> str:
    if not summary.get("cells"):
        return ""
    line = f"{summary['cells']} cells covered: {summary['met']} met, {len(summary.get('unmet') or [])} not met"
    return line + (f", {summary['expired']} expired" if summary.get("expired") else "")


# ---- small helpers ----------------------------------------------------------------------------

def _ordered(first: Iterable, rest: Iterable) -> list:
    out: list = []
    for x in list(first) + list(rest):
        if x and x not in out:
            out.append(x)
    return out


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _rate(num: int, den: int) -> dict:
    return {"num": num, "den": den, "pct": None if not den else round(100.0 * num / den)}


def _tolerances(rec: dict) -> list[list]:
    """[[check, {atol, rtol}]], predictions first (a schema-1 record's one tolerance is predictions')."""
    tols = rec.get("tolerances")
    if not isinstance(tols, dict) or not tols:
        tols = {"predictions": rec["tolerance"]} if rec.get("tolerance") else {}
    order = ["predictions"] + [k for k in tols if k != "predictions"]
    return [[k, tols[k]] for k in order if isinstance(tols.get(k), dict)]


def _excerpt(tb: str | None) -> str | None:
    if not tb:
        return None
    lines = tb.rstrip().splitlines()
    if len(lines) <= TRACEBACK_LINES:
        return "\n".join(lines)
    return "... (%d lines cut)\n" % (len(lines) - TRACEBACK_LINES) + "\n".join(lines[-TRACEBACK_LINES:])


def _when(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        dt = datetime.datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso)
    text = dt.strftime("%Y-%m-%d %H:%M:%S")
    if dt.utcoffset() is not None:
        text += " UTC" if not dt.utcoffset() else dt.strftime(" %z")
    return text


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _asset(name: str) -> str:
    with open(os.path.join(TEMPLATES, name), encoding="utf-8") as fh:
        text = fh.read()
    if "</script" in text.lower() or "</style" in text.lower():
        raise ValueError(f"{name} must not contain a closing </script> or </style> tag")
    return text
