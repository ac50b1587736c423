"""Save phase: build each fixture fresh per format, train a few steps, save, store references."""

from __future__ import absolute_import

import hashlib
import json
import os
import shutil

from . import formats
from .capture import Captured, describe, disk_full
from .context import load_fixture

TRAIN_EPOCHS = 3
SEED = 1234


def optimizer_state(ctx, model):
    """Class, iterations, config values and slot summary of a model's optimizer (or None)."""
    opt = getattr(model, "optimizer", None)
    if opt is None:
        return None
    variables = getattr(opt, "variables", [])
    variables = variables() if callable(variables) else variables
    slots = []
    for var in variables:
        arr = ctx.np.asarray(_numpy(var))
        if arr.size > 1:
            slots.append(round(float(ctx.np.abs(arr).sum()), 5))
    try:
        config = opt.get_config()
    except Exception:
        config = {}
    return {
        "class": type(opt).__name__,
        "module": type(opt).__module__,
        "iterations": int(_numpy(opt.iterations)),
        "slots": sorted(slots),
        "config": {k: v for k, v in config.items() if isinstance(v, (int, float, str, bool))},
    }


def _numpy(value):
    if hasattr(value, "numpy"):
        return value.numpy()
    return value


def weights_digest(ctx, model):
    """[{name, shape, sha}] per model variable: what a restore must reproduce, bit for bit."""
    out = []
    for var in model.weights:
        arr = ctx.np.ascontiguousarray(ctx.np.asarray(_numpy(var)))
        sha = hashlib.sha256(("%s%s" % (arr.dtype.str, arr.shape)).encode() + arr.tobytes()).hexdigest()
        out.append({"name": str(var.name), "shape": list(arr.shape), "sha": sha[:20]})
    return out


def class_paths(model, names):
    """name -> 'module.QualName' of the model itself, its layers and its optimizer with those names."""
    out = {}
    objs = [model] + list(getattr(model, "layers", [])) + [getattr(model, "optimizer", None)]
    for obj in objs:
        if obj is not None and type(obj).__name__ in names:
            out[type(obj).__name__] = type(obj).__module__ + "." + type(obj).__qualname__
    return out


def predict(model, x):
    return model.predict(x, verbose=0)


def save_item(ctx, item):
    """Save one (fixture, format); returns the result dict written to meta.json."""
    fmt = item["format"]
    out_dir = item["out_dir"]
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    meta = {
        "fixture": item["fixture"], "format": fmt, "promises": formats.promises(fmt),
        "keras_version": ctx.keras_version, "keras3": ctx.keras3, "tf_version": ctx.tf_version,
        "status": "saved", "warnings": [],
    }
    na = formats.not_applicable(fmt, "save", ctx)
    if na is not None:
        meta.update(status="not-applicable", reason=na["reason"], source=na["source"])
        return _finish(out_dir, meta)
    fixture = load_fixture(item["fixture"], item["fixture_path"])
    ctx.module_dir = item.get("module_dir")
    np = ctx.np
    with Captured(native=True) as cap:
        try:
            if hasattr(fixture, "prepare"):
                fixture.prepare(ctx)
            x_train, y_train, x_eval = fixture.data(ctx)
            ctx.arrays = (x_train, y_train, x_eval)
            ctx.clear()
            ctx.set_seed(SEED)
            model = fixture.build(ctx)
            model.fit(x_train, y_train, epochs=TRAIN_EPOCHS, batch_size=8, verbose=0, shuffle=False)
            outputs = predict(model, x_eval)
            state = optimizer_state(ctx, model)
            classes = class_paths(model, getattr(fixture, "CLASSES", ()))
            digest = weights_digest(ctx, model)
            path = formats.save(fmt, model, out_dir, ctx)
            # The producer's reference for "one resumed training step", taken after saving.
            model.train_on_batch(x_train[:8], y_train[:8])
            resumed = predict(model, x_eval)
        except Exception as exc:
            if disk_full(exc):
                raise  # not a save-error of the format: the worker stops, and --resume saves it again
            meta.update(status="save-error", **describe(exc))
            meta["warnings"] = cap.messages
            return _finish(out_dir, meta)
    np.save(os.path.join(out_dir, "x_train.npy"), x_train)
    np.save(os.path.join(out_dir, "y_train.npy"), y_train)
    np.save(os.path.join(out_dir, "x_eval.npy"), x_eval)
    np.save(os.path.join(out_dir, "outputs.npy"), np.asarray(outputs))
    np.save(os.path.join(out_dir, "resumed.npy"), np.asarray(resumed))
    meta.update(
        artifact=os.path.basename(path) if fmt != "checkpoint" else "ckpt/model",
        optimizer=state, classes=classes, weights_digest=digest,
        module_dir=ctx.module_dir, warnings=cap.messages,
        optimizer_keys=list(getattr(fixture, "OPTIMIZER_KEYS", ())),
    )
    return _finish(out_dir, meta)


def _finish(out_dir, meta):
    with open(os.path.join(out_dir, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True, default=str)
    return meta
