"""Check phase: load one artifact with each step of the remedy ladder and judge what came back."""

from __future__ import absolute_import

import json
import os

from . import formats
from .capture import Captured, describe
from .context import fixtures_absent, load_fixture
from .save import SEED, optimizer_state, predict


def check_item(ctx, item, mode):
    """Run the ladder for one artifact in this process's mode; returns {"attempts": [...], ...}."""
    art = item["artifact_dir"]
    with open(os.path.join(art, "meta.json")) as fh:
        meta = json.load(fh)
    if meta.get("status") != "saved":
        return {"attempts": [], "mode": mode, "skipped": meta.get("status")}
    np = ctx.np
    arrays = {name: np.load(os.path.join(art, name + ".npy"))
              for name in ("x_train", "y_train", "x_eval", "outputs", "resumed")}
    fixture = None
    if mode == "remedies":
        fixture = load_fixture(item["fixture"], item["fixture_path"])
    result = {"attempts": [], "mode": mode}
    for remedy, kind in formats.ladder(item["format"], ctx, mode):
        ctx.clear()
        absent_before = fixtures_absent() if mode == "plain" else None
        attempt = _attempt(ctx, item, meta, arrays, fixture, remedy, kind)
        if mode == "plain":
            attempt["fixtures_absent"] = bool(absent_before and fixtures_absent() and _unregistered(ctx))
        result["attempts"].append(attempt)
        if attempt["outcome"] == "pass":
            break
    ctx.clear()
    return result


def _unregistered(ctx):
    utils = getattr(ctx.keras, "utils", None)
    get = getattr(utils, "get_custom_objects", None)
    if get is None:
        return True
    return not any("tfcompat" in str(k) for k in get())


def _attempt(ctx, item, meta, arrays, fixture, remedy, kind):
    tol = {"atol": item.get("atol", 1e-5), "rtol": item.get("rtol", 1e-5)}
    record = {"remedy": remedy, "loader": kind, "outcome": None, "lost": [], "checks": {},
              "tolerance": tol}
    path = os.path.join(item["artifact_dir"], meta["artifact"])
    with Captured() as cap:
        use_ctx = ctx
        try:
            if remedy == "legacy_keras":
                use_ctx = ctx.with_legacy_keras()
            obj = _load(use_ctx, meta, path, fixture, remedy, kind)
        except Exception as exc:
            record.update(outcome="load-error", **describe(exc))
        else:
            try:
                _judge(use_ctx, meta, arrays, fixture, kind, obj, record, tol)
            except Exception as exc:
                record.update(outcome="load-error", **describe(exc))
                record["message"] = "loaded, but using the model failed: " + record["message"]
    record["warnings"] = cap.messages
    return record


def _load(ctx, meta, path, fixture, remedy, kind):
    K, tf = ctx.keras, ctx.tf
    co = fixture.custom_objects(ctx) if fixture is not None else None
    if kind == "model":
        kwargs = {}
        if remedy is not None:
            kwargs["custom_objects"] = co
        if remedy in ("compile_false", "safe_mode_false_compile_false"):
            kwargs["compile"] = False
        if remedy in ("safe_mode_false", "safe_mode_false_compile_false"):
            kwargs["safe_mode"] = False
        model = K.models.load_model(path, **kwargs)
        if remedy == "reload_weights" or (remedy == "legacy_keras" and meta["format"] == "savedmodel"):
            # restores the optimizer state a SavedModel load leaves out (the dir's TF checkpoint)
            model.load_weights(os.path.join(path, "variables", "variables"))
        return model
    if kind == "serving":
        loaded = tf.saved_model.load(path)
        return _signature(loaded)
    if kind == "tfsm":
        layer = K.layers.TFSMLayer(path, call_endpoint="serving_default")
        return lambda x: _single(layer(tf.constant(x)))
    if kind == "code":
        return _rebuild_and_restore(ctx, meta, path, fixture)
    raise ValueError("unknown loader %r" % kind)


def _signature(loaded):
    fn = loaded.signatures["serving_default"]
    args, kwargs = fn.structured_input_signature
    import tensorflow as tf

    names = list(kwargs)

    # The closure keeps `loaded` alive: without it older TF frees the variables the signature reads.
    def call(x, _loaded=loaded):
        if names:
            (name,) = names
            return _single(fn(**{name: tf.constant(x)}))
        return _single(fn(tf.constant(x)))

    return call


def _single(out):
    if isinstance(out, dict):
        (out,) = list(out.values())
    if isinstance(out, (list, tuple)):
        (out,) = list(out)
    return out.numpy() if hasattr(out, "numpy") else out


def _rebuild_and_restore(ctx, meta, path, fixture):
    """Rebuild from code with other weights, restore, and prove the restore changed them."""
    np = ctx.np
    ctx.module_dir = meta.get("module_dir")
    if hasattr(fixture, "prepare") and ctx.module_dir and not os.path.isdir(ctx.module_dir):
        raise RuntimeError("the hub module the producer made is missing: %s" % ctx.module_dir)
    ctx.set_seed(SEED + 1000)
    model = fixture.build(ctx)
    before = float(sum(np.abs(np.asarray(w)).sum() for w in model.get_weights()))
    if abs(before - meta["weights_abs_sum"]) < 1e-6:
        raise RuntimeError("rebuilt model already has the producer's weights; the check would prove nothing")
    if meta["format"] == "checkpoint":
        opt = model.optimizer
        if hasattr(opt, "build"):
            opt.build(model.trainable_variables)
        status = ctx.tf.train.Checkpoint(model=model, optimizer=opt).read(path)
        status.assert_existing_objects_matched()
    else:
        model.load_weights(path)
    after = float(sum(np.abs(np.asarray(w)).sum() for w in model.get_weights()))
    if abs(after - before) < 1e-9:
        raise RuntimeError("restore left the rebuilt model's weights unchanged")
    return model


def _compare(ctx, got, want, tol):
    np = ctx.np
    got = np.asarray(got, dtype="float64")
    want = np.asarray(want, dtype="float64")
    if got.shape != want.shape:
        return False, None, None
    diff = np.abs(got - want)
    rel = diff / np.maximum(np.abs(want), 1e-12)
    ok = bool(np.allclose(got, want, atol=tol["atol"], rtol=tol["rtol"]))
    return ok, float(diff.max()), float(rel.max())


def _judge(ctx, meta, arrays, fixture, kind, obj, record, tol):
    promises = set(meta["promises"])
    x_eval = arrays["x_eval"]
    if kind in ("serving", "tfsm"):
        got = obj(x_eval)
        keeps = {"serving", "weights"}
        model = None
    else:
        model = obj
        got = predict(model, x_eval)
        keeps = set(promises)
    ok, max_abs, max_rel = _compare(ctx, got, arrays["outputs"], tol)
    record.update(max_abs_diff=max_abs, max_rel_diff=max_rel)
    record["checks"]["predictions"] = ok
    if not ok:
        record["outcome"] = "wrong-output"
        if max_abs is None:
            record["message"] = "output shape %s differs from the producer's %s" % (
                ctx.np.asarray(got).shape, arrays["outputs"].shape)
        else:
            record["message"] = ("loaded without error, but predictions differ from the producer's: "
                                 "max |diff| %.3g, max rel diff %.3g (atol %g, rtol %g)"
                                 % (max_abs, max_rel, tol["atol"], tol["rtol"]))
        return
    lost = sorted(promises - keeps)
    if model is not None:
        if "custom_classes" in promises and meta.get("classes"):
            same = _classes_are_themselves(ctx, model, meta["classes"], fixture)
            record["checks"]["classes"] = same
            if not same:
                lost.append("custom_classes")
        if "compile" in promises and getattr(model, "optimizer", None) is None:
            lost.append("compile")
        if "optimizer_state" in promises:
            opt_ok, resume_ok, detail = _optimizer(ctx, model, meta, arrays, tol)
            record["checks"]["optimizer"] = opt_ok
            record["checks"]["resume"] = resume_ok
            record["optimizer_detail"] = detail
            if not (opt_ok and resume_ok):
                lost.append("optimizer_state")
    record["lost"] = sorted(set(lost))
    record["outcome"] = "degraded" if record["lost"] else "pass"
    if record["lost"]:
        record["message"] = "loaded and predicts the same, but lost: " + ", ".join(record["lost"])


def _classes_are_themselves(ctx, model, classes, fixture):
    objs = list(getattr(model, "layers", [])) + [getattr(model, "optimizer", None)]
    found = {}
    for obj in objs:
        if obj is not None:
            found.setdefault(type(obj).__name__, type(obj))
    wanted = fixture.custom_objects(ctx) if fixture is not None else {}
    for name, recorded in classes.items():
        cls = found.get(name)
        if cls is None:
            return False
        if name in wanted:
            if cls is not wanted[name]:
                return False
        elif cls.__module__ + "." + cls.__qualname__ != recorded:
            return False
    return True


def _optimizer(ctx, model, meta, arrays, tol):
    """(state restored?, resumed step matches?, detail) against the producer's reference."""
    want = meta.get("optimizer") or {}
    got = optimizer_state(ctx, model)
    detail = {"producer": want, "consumer": got}
    if got is None:
        return False, False, detail
    opt_ok = got["class"] == want.get("class") and got["iterations"] == want.get("iterations")
    for key in meta.get("optimizer_keys", []):
        if got["config"].get(key) != want.get("config", {}).get(key):
            opt_ok = False
            detail["mismatch"] = key
    # Slots may be created lazily (restored on first use); the resumed step judges them then.
    if got["slots"] and want.get("slots") and len(got["slots"]) == len(want["slots"]):
        ok, _, _ = _compare(ctx, got["slots"], want["slots"], {"atol": 1e-3, "rtol": 1e-3})
        detail["slots_match"] = ok
        opt_ok = opt_ok and ok
    try:
        model.train_on_batch(arrays["x_train"][:8], arrays["y_train"][:8])
        resumed = predict(model, arrays["x_eval"])
        resume_ok, max_abs, _ = _compare(ctx, resumed, arrays["resumed"],
                                         {"atol": max(tol["atol"], 1e-4), "rtol": max(tol["rtol"], 1e-4)})
        detail["resume_max_abs_diff"] = max_abs
    except Exception as exc:
        resume_ok = False
        detail["resume_error"] = describe(exc)["message"]
    return opt_ok, resume_ok, detail
