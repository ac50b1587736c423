"""Re-save variants, in env B: the artifact env A saved, loaded here the way a user would (the first
rung of this env's ladder that loads it) and saved again in the same format by this env. The check
phase then judges B's file in every env C against A's references: the path an upgrade really takes.
"""

from __future__ import absolute_import

import json
import os
import shutil

from . import formats
from .capture import Captured, describe, disk_full
from .check import HarnessDefect, _load
from .context import load_fixture
from .remedies import parts
from .save import REFERENCES, _finish, _refusal, class_paths, copy_references

# What the check judges B's file against: A's, since the chain must keep what A saved.
CARRIED = ("optimizer", "weights_digest", "functions", "optimizer_keys", "module_dir")


def resave_item(ctx, item):
    fmt, out_dir, origin = item["format"], item["out_dir"], item["origin"]
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    meta = {"fixture": item["fixture"], "format": fmt, "promises": formats.promises(fmt), "origin": origin,
            "keras_version": ctx.keras_version, "keras3": ctx.keras3, "tf_version": ctx.tf_version,
            "status": "saved", "warnings": []}
    a_meta = _origin_meta(item["origin_dir"])
    skip = _nothing_to_resave(item, fmt, a_meta)
    if skip:
        meta.update(status="not-applicable", reason=skip, source="tfcompat: re-save variants")
        return _finish(out_dir, meta)
    fixture = load_fixture(item["fixture_module"], item["fixture_path"])
    na = formats.not_applicable(fmt, "save", ctx)
    if na is not None:
        meta.update(status="not-applicable", reason=na["reason"], source=na["source"],
                    refusal=_refusal(ctx, fixture, fmt, out_dir))
        return _finish(out_dir, meta)
    arrays = dict((n, ctx.np.load(os.path.join(item["origin_dir"], n + ".npy"))) for n in REFERENCES)
    custom = bool(a_meta.get("classes") or a_meta.get("functions")) and bool(fixture.custom_objects(ctx))
    path = os.path.join(item["origin_dir"], a_meta["artifact"])
    tried = []
    last_traceback = None
    with Captured(native=True) as cap:
        for remedy, kind in formats.ladder(fmt, ctx, "remedies", custom):
            if kind not in ("model", "json", "code"):
                continue  # an inference-only loader gives nothing to save again
            use = ctx.with_legacy_keras() if "legacy_keras" in parts(remedy) else ctx
            use.clear()
            try:
                model = _load(use, a_meta, path, fixture, remedy, kind, arrays, {})
                saved = formats.save(fmt, model, out_dir, use)
            except HarnessDefect as exc:
                # Not one more rung that failed: the harness cannot stand behind this variant.
                info = describe(exc)
                meta.update(status="harness-error", harness_defect=str(exc), error_type=info["error_type"],
                            traceback=info["traceback"], tried=tried,
                            message="a harness defect while loading %s's artifact to save it again: %s"
                            % (origin, info["message"]))
                break
            except Exception as exc:
                if disk_full(exc):
                    raise
                info = describe(exc)
                tried.append({"remedy": remedy, "error_type": info["error_type"], "message": info["message"][:500]})
                last_traceback = info["traceback"]
                continue
            meta.update(artifact=formats.FORMATS[fmt][0] if fmt in ("checkpoint", "tf_weights")
                        else os.path.basename(saved), loaded_with=remedy, tried=tried,
                        classes=class_paths(model, getattr(fixture, "CLASSES", ())),
                        keras_version=use.keras_version, keras3=use.keras3)
            if fmt == "json":
                meta["weights_file"] = formats.json_weights(use)
            break
        else:
            last = tried[-1] if tried else {"message": "no rung of this env loads the format", "error_type": None}
            meta.update(status="save-error", error_type=last.get("error_type"), traceback=last_traceback,
                        tried=tried, message="%s's artifact does not load here, so it cannot be saved again: %s"
                        % (origin, last.get("message")))
    meta["warnings"] = cap.messages
    if meta["status"] == "saved":
        meta.update((k, a_meta.get(k)) for k in CARRIED)
        copy_references(item["origin_dir"], out_dir)
    return _finish(out_dir, meta)


def _origin_meta(origin_dir):
    try:
        with open(os.path.join(origin_dir, "meta.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _nothing_to_resave(item, fmt, a_meta):
    if a_meta is None or a_meta.get("status") != "saved":
        return "%s did not save this format (%s): there is nothing to save again" % (
            item["origin"], (a_meta or {}).get("status") or "no artifact")
    if formats.FORMATS[fmt][2] == "serving":
        return "a serving artifact is served as it is: nothing loads it as a model to save again"
    return None
