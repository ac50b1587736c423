"""Save phase: build each fixture fresh per format, train a few steps, save, store references."""

from __future__ import absolute_import

import hashlib
import json
import os
import shutil

from . import formats
from .capture import Captured, describe, disk_full
from .context import load_fixture
from .slots import SLOTS_FILE, optimizer_slots, write_slots

REFERENCES = ("x_train", "y_train", "x_eval", "outputs", "resumed")

TRAIN_EPOCHS = 3
SEED = 1234


def optimizer_state(ctx, model):
    """Class, iterations, config values and slot identities of a model's optimizer (or None).

    The slots' values are kept apart, in the artifact dir (slots.SLOTS_FILE)."""
    opt = getattr(model, "optimizer", None)
    if opt is None:
        return None
    try:
        config = opt.get_config()
    except Exception:
        config = {}
    return {
        "class": type(opt).__name__,
        "module": type(opt).__module__,
        "iterations": int(_numpy(opt.iterations)),
        "slots": sorted(optimizer_slots(ctx, model)),
        "config": {k: v for k, v in config.items() if isinstance(v, (int, float, str, bool))},
    }


def copy_references(src_dir, out_dir):
    """What a check judges an artifact against, copied from the artifact it was made from."""
    for name in [n + ".npy" for n in REFERENCES] + [SLOTS_FILE]:
        path = os.path.join(src_dir, name)
        if os.path.exists(path):
            shutil.copy(path, os.path.join(out_dir, name))


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


def function_names(model, names):
    """{name: "activation" | "loss"} of these custom function names the model uses."""
    found = {}
    for obj in list(getattr(model, "layers", [])) + [model]:
        for attr in ("activation", "loss"):
            fn = getattr(obj, attr, None)
            if getattr(fn, "__name__", None) in names:
                found[fn.__name__] = attr
    return found


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
    fixture = load_fixture(item["fixture"], item["fixture_path"])
    ctx.module_dir = item.get("module_dir")
    if na is not None:
        meta.update(status="not-applicable", reason=na["reason"], source=na["source"],
                    refusal=_refusal(ctx, fixture, fmt, out_dir))
        return _finish(out_dir, meta)
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
            slots = optimizer_slots(ctx, model)
            classes = class_paths(model, getattr(fixture, "CLASSES", ()))
            functions = function_names(model, getattr(fixture, "FUNCTIONS", ()))
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
    write_slots(ctx, out_dir, slots)
    meta.update(
        artifact=formats.FORMATS[fmt][0] if fmt in ("checkpoint", "tf_weights") else os.path.basename(path),
        optimizer=state, classes=classes, weights_digest=digest,
        module_dir=ctx.module_dir, warnings=cap.messages,
        optimizer_keys=list(getattr(fixture, "OPTIMIZER_KEYS", ())),
        functions=functions,
    )
    if fmt == "json":
        meta["weights_file"] = formats.json_weights(ctx)
    return _finish(out_dir, meta)


_REFUSALS = {}  # type: dict  # format -> what the framework said, tried once per worker process (one env)


def _refusal(ctx, fixture, fmt, out_dir):
    """The user's call for a not-applicable format, made once on an untrained model of this fixture."""
    if fmt in _REFUSALS:
        return dict(_REFUSALS[fmt])
    scratch = os.path.join(out_dir, "refusal")
    with Captured(native=True):
        try:
            if hasattr(fixture, "prepare"):
                fixture.prepare(ctx)
            ctx.arrays = fixture.data(ctx)
            ctx.clear()
            ctx.set_seed(SEED)
            model = fixture.build(ctx)
        except Exception:
            return None  # this fixture cannot be built here; the next one is tried
        os.makedirs(scratch)
        try:
            found = formats.try_refused(fmt, model, scratch, ctx)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    found["tried_with"] = fixture.__name__.rsplit(".", 1)[-1]
    _REFUSALS[fmt] = found
    return dict(found)


def _finish(out_dir, meta):
    with open(os.path.join(out_dir, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True, default=str)
    return meta
