"""Scan, in the env the user runs today (A): load each of the user's artifacts once, read-only, and
store what every target env must reproduce, in the layout of a saved fixture artifact (meta.json and
the arrays) so the check phase judges it exactly as it judges the grid's cells.

References: outputs on the user's inputs (`--inputs file.npz`: key `x`, else its first array) or on
inputs made from the model's input signature with a fixed seed; the optimizer state and one resumed
training step where the model carries an optimizer and a loss; per-variable digests; the custom
classes the model uses. An artifact A itself cannot load is recorded as a save-error (A's error).
"""

from __future__ import absolute_import

import json
import os
import shutil

from .capture import Captured, describe
from .context import load_fixture
from .save import class_paths, optimizer_state, predict, weights_digest
from .slots import optimizer_slots, write_slots
from .usercode import adapt

SEED = 1234
ROWS = 8


def reference_item(ctx, item):
    out_dir = item["out_dir"]
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    path = os.path.abspath(item["path"])
    meta = {"fixture": item["fixture"], "format": item["format"], "scan": True, "status": "saved",
            "artifact": path, "keras_version": ctx.keras_version, "keras3": ctx.keras3,
            "tf_version": ctx.tf_version, "warnings": [], "notes": [], "module_dir": None, "optimizer_keys": []}
    code = adapt(load_fixture(item["fixture"], item["code_path"])) if item.get("code_path") else None
    np = ctx.np
    with Captured(native=True) as cap:
        try:
            fmt, obj, model = _load(ctx, item, path, code, meta)
            meta["format"] = fmt
            x = _inputs(ctx, item, model, obj)
            outputs = np.asarray(predict(model, x) if model is not None else obj(x))
            resumed, state, slots = outputs, None, None
            promises = _promises(fmt, model, code)
            if item.get("migrate") and model is not None:
                # what the weights route of --migrate starts from, taken before the training step below
                meta["migrate_weights"] = os.path.join(out_dir, "a.weights.h5")
                model.save_weights(meta["migrate_weights"])
            if model is not None and "optimizer_state" in promises:
                state = optimizer_state(ctx, model)
                slots = optimizer_slots(ctx, model)
                try:
                    model.train_on_batch(x, outputs)
                    resumed = np.asarray(predict(model, x))
                except Exception as exc:
                    promises = [p for p in promises if p != "optimizer_state"]
                    meta["notes"].append("no resumed training step in A: %s" % describe(exc)["message"][:200])
            meta.update(
                promises=promises, optimizer=state,
                classes=class_paths(model, code.CLASSES) if model is not None and code else {},
                weights_digest=weights_digest(ctx, model) if model is not None else [])
        except Exception as exc:
            meta.update(status="save-error", **describe(exc))
            meta["message"] = "does not load in the scan's own env (A): " + meta["message"]
            meta["warnings"] = cap.messages
            return _finish(out_dir, meta)
    for name, arr in (("x_train", x), ("y_train", outputs), ("x_eval", x), ("outputs", outputs),
                      ("resumed", resumed)):
        np.save(os.path.join(out_dir, name + ".npy"), arr)
    write_slots(ctx, out_dir, slots)
    meta["warnings"] = cap.messages
    return _finish(out_dir, meta)


def _load(ctx, item, path, code, meta):
    """(format as found, callable for serving formats, Keras model or None)."""
    K, tf = ctx.keras, ctx.tf
    fmt = item["format"]
    if fmt == "h5" and not _h5_has_model(path):
        fmt = "weights_h5"
    if fmt in ("weights_h5", "weights"):
        if code is None:
            raise RuntimeError("a weights-only file: give the model's code with --code module.py (build())")
        model = code.build(ctx)
        model.load_weights(path)
        return fmt, None, model
    if fmt == "export":
        from .check import _signature

        return fmt, _signature(tf.saved_model.load(path)), None
    try:
        return fmt, None, K.models.load_model(path)
    except Exception as exc:
        if code is None or not code.CLASSES:
            raise
        first = describe(exc)
    model = K.models.load_model(path, custom_objects=code.custom_objects(ctx))
    meta["needs_custom_objects_in_a"] = True
    meta["notes"].append("needs custom_objects in A already (%s: %s)" % (first["error_type"],
                                                                        first["message"][:200]))
    return fmt, None, model


def _h5_has_model(path):
    import h5py

    with h5py.File(path, "r") as fh:
        return "model_config" in fh.attrs


def _inputs(ctx, item, model, call):
    np = ctx.np
    if item.get("inputs_path"):
        data = np.load(item["inputs_path"])
        return np.asarray(data["x"] if "x" in data.files else data[data.files[0]])
    if model is not None:
        shapes = [tuple(t.shape) for t in model.inputs]
        dtypes = [str(getattr(t.dtype, "name", t.dtype)) for t in model.inputs]
    else:
        specs = [s for s in call.specs]
        shapes = [tuple(s.shape) for s in specs]
        dtypes = [s.dtype.name for s in specs]
    if len(shapes) != 1:
        raise RuntimeError("the model takes %d inputs; give them with --inputs file.npz" % len(shapes))
    shape = (ROWS,) + tuple(int(d) if d is not None else 4 for d in shapes[0][1:])
    rng = np.random.RandomState(SEED)
    if "int" in dtypes[0]:
        return rng.randint(0, 10, size=shape).astype(dtypes[0])
    return rng.normal(size=shape).astype("float32")


def _promises(fmt, model, code):
    if fmt == "export":
        return ["serving"]
    if fmt in ("weights_h5", "weights"):
        return ["weights"]
    out = ["architecture", "weights"]
    if code is not None and code.CLASSES:
        out.append("custom_classes")
    opt = getattr(model, "optimizer", None)
    if opt is not None:
        out.append("compile")
        if getattr(model, "loss", None) is not None:
            out.append("optimizer_state")
    if fmt == "savedmodel":
        out.append("serving")
    return out


def _finish(out_dir, meta):
    with open(os.path.join(out_dir, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True, default=str)
    return meta
