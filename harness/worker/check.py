"""Check phase: load one artifact with each rung of the remedy ladder and judge what came back."""

from __future__ import absolute_import

import json
import os

from . import formats
from .capture import Captured, describe
from .context import fixtures_absent, load_fixture
from .remedies import parts
from .save import REFERENCES, SEED, class_paths, function_names, optimizer_state, predict, weights_digest
from .slots import SLOTS_FILE, compare_slots, optimizer_slots, read_slots
from .usercode import adapt


class HarnessDefect(Exception):
    """A precondition of the check itself failed: the harness, not the artifact, is at fault."""


def check_item(ctx, item, mode, note=None):
    """Run the ladder for one artifact in this process's mode; returns {"attempts": [...], ...}.

    `note(remedy, attempt)` is called before (attempt None) and after each attempt, so a crash
    mid-ladder keeps the attempts made and names the rung in flight."""
    art = item["artifact_dir"]
    with open(os.path.join(art, "meta.json")) as fh:
        meta = json.load(fh)
    if meta.get("status") != "saved":
        return {"attempts": [], "mode": mode, "skipped": meta.get("status")}
    np = ctx.np
    arrays = {name: np.load(os.path.join(art, name + ".npy")) for name in REFERENCES}
    arrays["slots"] = read_slots(ctx, art)
    fixture = None
    custom = False
    if mode == "remedies" and item.get("fixture_path"):
        fixture = load_fixture(item.get("fixture_module") or item["fixture"], item["fixture_path"])
        if item.get("user_code"):
            fixture = adapt(fixture)
        # custom_objects belongs to a rung only where the artifact names a custom class or function.
        custom = bool(meta.get("classes") or meta.get("functions")) and bool(fixture.custom_objects(ctx))
    result = {"attempts": [], "mode": mode}
    for remedy, kind in formats.ladder(meta["format"] if meta.get("scan") else item["format"], ctx, mode, custom):
        if item.get("allow_unsafe") is False and "safe_mode_false" in parts(remedy):
            # a scan runs code from the user's file only when asked (--allow-unsafe)
            result.setdefault("unsafe_skipped", []).append(remedy)
            continue
        if kind == "code" and fixture is None:
            result.setdefault("needs_code", True)
            continue
        if note:
            note(remedy, None)
        ctx.clear()
        absent_before = fixtures_absent() if mode == "plain" else None
        attempt = _attempt(ctx, item, meta, arrays, fixture, remedy, kind)
        if mode == "plain":
            attempt["fixtures_absent"] = bool(absent_before and fixtures_absent() and _unregistered(ctx))
        result["attempts"].append(attempt)
        if note:
            note(remedy, attempt)
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
    tols = item["tolerances"]
    record = {"remedy": remedy, "loader": kind, "outcome": None, "lost": [], "checks": {},
              "tolerances": tols}
    path = os.path.join(item["artifact_dir"], meta["artifact"])
    with Captured(native=True) as cap:
        use_ctx = ctx
        try:
            if "legacy_keras" in parts(remedy):
                use_ctx = ctx.with_legacy_keras()
            obj = _load(use_ctx, meta, path, fixture, remedy, kind, arrays, record)
        except HarnessDefect as exc:
            record.update(outcome="harness-error", harness_defect=str(exc), **describe(exc))
        except Exception as exc:
            record.update(outcome="load-error", **describe(exc))
        else:
            try:
                _judge(use_ctx, meta, arrays, fixture, kind, obj, record, tols, path)
            except HarnessDefect as exc:
                record.update(outcome="harness-error", harness_defect=str(exc), **describe(exc))
            except Exception as exc:
                record.update(outcome="load-error", **describe(exc))
                record["message"] = "loaded, but using the model failed: " + record["message"]
    record["warnings"] = cap.messages
    return record


def _load(ctx, meta, path, fixture, remedy, kind, arrays, record):
    K, tf = ctx.keras, ctx.tf
    used = parts(remedy)
    if kind == "model":
        kwargs = {}
        if "custom_objects" in used:
            kwargs["custom_objects"] = fixture.custom_objects(ctx)
        if "compile_false" in used:
            kwargs["compile"] = False
        if "safe_mode_false" in used:
            kwargs["safe_mode"] = False
        model = K.models.load_model(path, **kwargs)
        if "reload_weights" in used or ("legacy_keras" in used and meta["format"] == "savedmodel"):
            # restores the optimizer state a SavedModel load leaves out (the dir's TF checkpoint)
            model.load_weights(os.path.join(path, "variables", "variables"))
        return model
    if kind == "json":
        kwargs = {"custom_objects": fixture.custom_objects(ctx)} if "custom_objects" in used else {}
        with open(path) as fh:
            model = K.models.model_from_json(fh.read(), **kwargs)
        model.load_weights(os.path.join(os.path.dirname(path), meta["weights_file"]))
        return model
    if kind == "serving":
        return _signature(tf.saved_model.load(path))
    if kind == "tfsm":
        layer = K.layers.TFSMLayer(path, call_endpoint="serving_default")
        return lambda x: _single(layer(tf.constant(x)))
    if kind == "code":
        return _rebuild_and_restore(ctx, meta, path, fixture, arrays, record)
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

    call.specs = list(kwargs.values()) or list(args)  # what a scan makes its inputs from
    return call


def _single(out):
    if isinstance(out, dict):
        (out,) = list(out.values())
    if isinstance(out, (list, tuple)):
        (out,) = list(out)
    return out.numpy() if hasattr(out, "numpy") else out


def _rebuild_and_restore(ctx, meta, path, fixture, arrays, record):
    """Rebuild from code with other weights, restore, and record what the restore did.

    A rebuilt model that already holds the producer's weights would prove nothing: that is a
    harness defect, not a verdict. A restore that changes nothing, or only part, is judged later
    against the producer's per-variable digests (it loaded without error: the user has it)."""
    ctx.module_dir = meta.get("module_dir")
    if hasattr(fixture, "prepare") and ctx.module_dir and not os.path.isdir(ctx.module_dir):
        raise RuntimeError("the hub module the producer made is missing: %s" % ctx.module_dir)
    ctx.arrays = (arrays["x_train"], arrays["y_train"], arrays["x_eval"])
    ctx.set_seed(SEED + 1000)
    model = fixture.build(ctx)
    producer = [d["sha"] for d in meta["weights_digest"]]
    before = weights_digest(ctx, model)
    if before and all(d["sha"] in producer for d in before):
        raise HarnessDefect("the rebuilt model already holds the producer's weights before the restore; "
                            "the check would prove nothing (the fixture's build ignores the seed)")
    iterations_before = None
    unmatched = None
    if meta["format"] == "checkpoint":
        opt = model.optimizer
        iterations_before = int(ctx.np.asarray(opt.iterations))
        if hasattr(opt, "build"):
            opt.build(model.trainable_variables)
        ckpt = ctx.tf.train.Checkpoint(model=model, optimizer=opt)
        # TF < 2.3 has no read(); its read() is this saver call (restore() would add a save_counter)
        status = (ckpt.read if hasattr(ckpt, "read") else ckpt._saver.restore)(path)
        unmatched = _status_mismatch(status)
    elif meta["format"] == "tf_weights":
        iterations_before = int(ctx.np.asarray(model.optimizer.iterations))
        status = model.load_weights(path)
        if hasattr(status, "assert_existing_objects_matched"):
            unmatched = _status_mismatch(status)
    else:
        model.load_weights(path)
    after = weights_digest(ctx, model)
    record["restore"] = _restore_summary(before, after, producer, iterations_before)
    if unmatched:
        # What a user who asks the restore status is told; one who does not is told nothing.
        record["restore"]["status"] = unmatched
    return model


def _status_mismatch(status):
    try:
        status.assert_existing_objects_matched()
        return None
    except AssertionError as exc:
        return "assert_existing_objects_matched: " + str(exc).strip()[:300]
    finally:
        status.expect_partial()  # the finding is recorded here; no deferred warnings at garbage collection


def _restore_summary(before, after, producer, iterations_before):
    """Which variables the restore changed, and which now match a producer variable."""
    changed = [a["name"] for a, b in zip(after, before) if a["sha"] != b["sha"]]
    unmatched = [a["name"] for a in after if a["sha"] not in producer]
    out = {"variables": len(after), "changed": len(changed), "unmatched": unmatched,
           "missing": max(0, len(producer) - (len(after) - len(unmatched)))}
    if iterations_before is not None:
        out["iterations_before"] = iterations_before
    return out


def _compare(ctx, got, want, tol):
    np = ctx.np
    got = np.asarray(got, dtype="float64")
    want = np.asarray(want, dtype="float64")
    if got.shape != want.shape:
        return False, None, None
    diff = np.abs(got - want)
    rel = diff / np.maximum(np.abs(want), 1e-12)
    ok = bool(np.allclose(got, want, atol=tol["atol"], rtol=tol["rtol"]))
    return ok, float(diff.max()) if diff.size else 0.0, float(rel.max()) if rel.size else 0.0


def _judge(ctx, meta, arrays, fixture, kind, obj, record, tols, path):
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
    ok, max_abs, max_rel = _compare(ctx, got, arrays["outputs"], tols["predictions"])
    record.update(max_abs_diff=max_abs, max_rel_diff=max_rel)
    record["checks"]["predictions"] = ok
    restore = record.get("restore")
    if restore is not None:
        record["checks"]["weights"] = not restore["unmatched"] and not restore["missing"]
    if not ok:
        record["outcome"] = "wrong-output"
        record["message"] = _wrong_message(ctx, got, arrays["outputs"], max_abs, max_rel,
                                           tols["predictions"], restore)
        return
    lost = set(promises - keeps)
    if restore is not None and not record["checks"]["weights"]:
        lost.add("weights")
        record["message"] = "predicts the same, but the restore left variables unmatched: %s" % (
            ", ".join(restore["unmatched"]) or "%d missing" % restore["missing"])
    if model is not None:
        wanted = dict(meta.get("classes") or {})
        optimizer_class = (meta.get("optimizer") or {}).get("class")
        if getattr(model, "optimizer", None) is None:
            # A custom optimizer comes back with the compile config: a model without one (a format
            # that holds none, or compile=False) has lost `compile`, not a custom class.
            wanted.pop(optimizer_class, None)
        if "custom_classes" in promises and wanted:
            same = _classes_are_themselves(ctx, model, wanted, fixture)
            record["checks"]["classes"] = same
            if not same:
                lost.add("custom_classes")
        if "compile" in promises and getattr(model, "optimizer", None) is None:
            lost.add("compile")
        if "custom_classes" in promises and meta.get("functions"):
            # A custom activation or loss must come back as a function of that name; a loss only
            # where the format keeps the compile config and it came back.
            got_fns = function_names(model, list(meta["functions"]))
            compiled = "compile" in promises and "compile" not in lost
            missing = [n for n, role in sorted(meta["functions"].items())
                       if n not in got_fns and (role != "loss" or compiled)]
            record["checks"]["functions"] = not missing
            if missing:
                lost.add("custom_classes")
        if "optimizer_state" in promises:
            opt_ok, resume_ok, detail = _optimizer(ctx, model, meta, arrays, tols, kind)
            record["checks"]["optimizer"] = opt_ok
            record["checks"]["resume"] = resume_ok
            record["optimizer_detail"] = detail
            if not (opt_ok and resume_ok):
                lost.add("optimizer_state")
        if "serving" in promises:
            # Loaded as a Keras model; the artifact also promises its serving signature.
            serving, detail = _serving(ctx, path, x_eval, arrays["outputs"], tols["predictions"])
            record["checks"]["serving"] = serving == "same"
            record["serving_detail"] = detail
            if serving == "error":
                lost.add("serving")
            elif serving == "differs":
                # A second output path of the same artifact that predicts differently is silent
                # corruption for whoever serves it, not a lost property.
                record.update(outcome="wrong-output", lost=[], max_abs_diff=detail["max_abs_diff"],
                              max_rel_diff=detail["max_rel_diff"],
                              message="the Keras model predicts the same, but the serving signature of the loaded "
                              "artifact predicts differently: " + detail["message"])
                return
    record["lost"] = sorted(lost)
    record["outcome"] = "degraded" if record["lost"] else "pass"
    if record["lost"] and not record.get("message"):
        record["message"] = "loaded and predicts the same, but lost: " + ", ".join(record["lost"])


def _differs(ctx, got, want, max_abs, max_rel, tol):
    if max_abs is None:
        return "output shape %s differs from the producer's %s" % (ctx.np.asarray(got).shape, want.shape)
    return "max |diff| %.3g, max rel diff %.3g (atol %g, rtol %g)" % (max_abs, max_rel, tol["atol"], tol["rtol"])


def _wrong_message(ctx, got, want, max_abs, max_rel, tol, restore):
    text = _differs(ctx, got, want, max_abs, max_rel, tol)
    if max_abs is not None:
        text = "loaded without error, but predictions differ from the producer's: " + text
    if restore is None:
        return text
    if not restore["changed"]:
        return text + "; the restore did nothing: the rebuilt model kept its own weights, and no error was raised"
    if restore["unmatched"] or restore["missing"]:
        return text + "; the restore was partial: not restored: %s" % (
            ", ".join(restore["unmatched"]) or "%d variable(s)" % restore["missing"])
    return text + "; every saved variable was restored, so the difference is state the format does not hold"


def _serving(ctx, path, x_eval, outputs, tol):
    """("same" | "differs" | "error", detail): the artifact's serving signature run on x_eval."""
    try:
        got = _signature(ctx.tf.saved_model.load(path))(x_eval)
    except Exception as exc:
        return "error", {"error": describe(exc)["message"][:500]}
    ok, max_abs, max_rel = _compare(ctx, got, outputs, tol)
    detail = {"max_abs_diff": max_abs, "max_rel_diff": max_rel}
    if not ok:
        detail["message"] = _differs(ctx, got, outputs, max_abs, max_rel, tol)
    return ("same" if ok else "differs"), detail


def _classes_are_themselves(ctx, model, classes, fixture):
    found = class_paths(model, classes)
    wanted = fixture.custom_objects(ctx) if fixture is not None else {}
    objs = [model] + list(getattr(model, "layers", [])) + [getattr(model, "optimizer", None)]
    by_name = dict((type(o).__name__, type(o)) for o in objs if o is not None)
    for name, recorded in classes.items():
        if name not in found:
            return False
        if name in wanted:
            if by_name[name] is not wanted[name]:
                return False
        elif found[name] != recorded:
            return False
    return True


def _optimizer(ctx, model, meta, arrays, tols, kind):
    """(state restored?, resumed step matches?, detail) against the producer's reference.

    A checkpoint holds state only: the optimizer's class and config come from the fixture code
    there, so only iterations, slots and the resumed step are judged."""
    want = meta.get("optimizer") or {}
    got = optimizer_state(ctx, model)
    detail = {"producer": want, "consumer": got}
    if got is None:
        return False, False, detail
    problems = []
    if got["iterations"] != want.get("iterations"):
        problems.append("iterations %s, producer %s" % (got["iterations"], want.get("iterations")))
    if kind == "code":
        detail["class_source"] = "fixture code (a checkpoint holds state only)"
    else:
        if got["class"] != want.get("class"):
            problems.append("class %s, producer %s" % (got["class"], want.get("class")))
        for key in meta.get("optimizer_keys", []):
            mine, theirs = got["config"].get(key), want.get("config", {}).get(key)
            if theirs is None or mine != theirs:
                problems.append("config %s: %r, producer %r" % (key, mine, theirs))
    if want.get("slots"):
        theirs = arrays.get("slots")
        if theirs is None:
            raise HarnessDefect("the producer's optimizer slots (%s) are missing from the artifact dir: the "
                                "slot check would prove nothing" % SLOTS_FILE)
        mine = optimizer_slots(ctx, model)
        if set(mine) != set(theirs):
            # Slots can be created lazily and restored on creation: create them, then compare.
            _build_slots(model)
            mine = optimizer_slots(ctx, model)
            detail["consumer"] = optimizer_state(ctx, model)
        diff = compare_slots(ctx, mine, theirs, tols["slots"])
        detail["slots_match"] = not any(diff.values())
        if not detail["slots_match"]:
            detail["slots"] = diff
            for what, text in (("differ", "slots that differ from the producer's: "), ("missing", "slots missing: "),
                               ("extra", "slots the producer did not have: ")):
                if diff[what]:
                    problems.append(text + ", ".join(diff[what]))
    if problems:
        detail["mismatch"] = problems
    try:
        model.train_on_batch(arrays["x_train"][:8], arrays["y_train"][:8])
        resumed = predict(model, arrays["x_eval"])
        resume_ok, max_abs, _ = _compare(ctx, resumed, arrays["resumed"], tols["resume"])
        detail["resume_max_abs_diff"] = max_abs
    except Exception as exc:
        resume_ok = False
        detail["resume_error"] = describe(exc)["message"]
    return not problems, resume_ok, detail


def _build_slots(model):
    opt = model.optimizer
    try:
        if hasattr(opt, "_create_all_weights"):  # Keras 2 OptimizerV2
            opt._create_all_weights(model.trainable_variables)
        elif hasattr(opt, "build"):
            opt.build(model.trainable_variables)
    except Exception:
        pass  # the comparison that follows fails on its own
