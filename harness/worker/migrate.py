"""Scan --migrate, in the target env (B): convert a user's artifact to this env's own `.keras` by one
route, and lay it out as an artifact the check phase judges against A's references.

Routes:
- `resave`: load the original here with the rung B's check found (custom objects, compile=False:
  never the legacy tf_keras nor an inference-only loader), save it as `.keras`;
- `weights`: the weights A wrote when it read the original, loaded into the model the user's
  `build()` makes here, saved as `.keras` (the optimizer starts fresh: that is its cost).
The original is only read. What each step did is the proof the report shows.
"""

from __future__ import absolute_import

import json
import os
import shutil

from .capture import Captured, describe
from .context import load_fixture
from .remedies import parts
from .save import class_paths, copy_references, weights_digest
from .usercode import adapt


def migrate_item(ctx, item):
    out_dir = item["out_dir"]
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    with open(os.path.join(item["a_dir"], "meta.json")) as fh:
        a_meta = json.load(fh)
    code = adapt(load_fixture(item["fixture"], item["code_path"])) if item.get("code_path") else None
    target = os.path.join(out_dir, "model.keras")
    meta = {"fixture": item["fixture"], "format": "keras", "scan": True, "status": "saved", "artifact": target,
            "keras_version": ctx.keras_version, "keras3": ctx.keras3, "tf_version": ctx.tf_version,
            "route": item["route"], "steps": [], "warnings": [], "notes": [], "module_dir": None,
            "optimizer_keys": [], "optimizer": None}
    with Captured(native=True) as cap:
        try:
            if item["route"] == "resave":
                model = _load_with(ctx, item["path"], item.get("rung"), code)
                meta["steps"].append("loaded %s in %s with %s" % (item["path"], ctx.keras_version,
                                                                   item.get("rung") or "no remedy"))
            else:
                if code is None:
                    raise RuntimeError("the weights route needs the model's code: --code module.py with build()")
                weights = a_meta.get("migrate_weights")
                if not weights or not os.path.exists(weights):
                    raise RuntimeError("A wrote no weights for this artifact")
                model = code.build(ctx)
                model.load_weights(weights)
                meta["steps"].append("weights saved in A (Keras %s) loaded into build() in Keras %s" % (
                    a_meta.get("keras_version"), ctx.keras_version))
            model.save(target)
            meta["steps"].append("saved as %s" % target)
            promises = ["architecture", "weights"]
            classes = class_paths(model, code.CLASSES) if code else {}
            if classes:
                promises.append("custom_classes")
            if getattr(model, "optimizer", None) is not None:
                promises.append("compile")
            meta.update(promises=promises, classes=classes, weights_digest=weights_digest(ctx, model))
            if a_meta.get("optimizer"):
                meta["notes"].append("the optimizer state A had is not carried over: training resumes with a "
                                     "fresh optimizer")
        except Exception as exc:
            meta.update(status="save-error", **describe(exc))
            meta["message"] = "the %s route failed in %s: %s" % (item["route"], ctx.keras_version, meta["message"])
    meta["warnings"] = cap.messages
    if meta["status"] == "saved":
        copy_references(item["a_dir"], out_dir)
    with open(os.path.join(out_dir, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True, default=str)
    return meta


def _load_with(ctx, path, rung, code):
    used = parts(rung)
    if set(used) - {"custom_objects", "compile_false", "reload_weights"}:
        raise RuntimeError("no rung of this env's own Keras loads it (%s)" % rung)
    kwargs = {}
    if "custom_objects" in used:
        if code is None:
            raise RuntimeError("it needs custom_objects: --code module.py")
        kwargs["custom_objects"] = code.custom_objects(ctx)
    if "compile_false" in used:
        kwargs["compile"] = False
    model = ctx.keras.models.load_model(path, **kwargs)
    if "reload_weights" in used:
        model.load_weights(os.path.join(path, "variables", "variables"))
    return model
