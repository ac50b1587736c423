"""Save formats: what each promises, when it cannot apply, how to save, how to load.

Not-applicable is decided before any attempt, from NOT_APPLICABLE below (format x Keras version,
each with its reason and source). Anything that goes wrong in an attempt is an error, never n/a.
"""

from __future__ import absolute_import

import os

from .remedies import rung

WHOLE = ("architecture", "weights", "custom_classes", "compile", "optimizer_state")

# name -> (file name inside the artifact dir, promises, loader kind)
FORMATS = {
    "h5": ("model.h5", WHOLE, "model"),
    "keras": ("model.keras", WHOLE, "model"),
    "savedmodel": ("savedmodel", WHOLE + ("serving",), "model"),
    "export": ("export", ("serving",), "serving"),
    "weights_h5": ("weights.h5", ("weights",), "code"),
    "weights": ("model.weights.h5", ("weights",), "code"),
    "tf_savedmodel": ("tf_savedmodel", ("serving",), "serving"),
    "checkpoint": ("ckpt/model", ("weights", "optimizer_state"), "code"),
    # to_json() architecture plus the weights file a user saves beside it (Keras 2: weights.h5,
    # Keras 3 accepts only *.weights.h5): meta.json names it.
    "json": ("model.json", ("architecture", "weights", "custom_classes"), "json"),
    # Keras 2 save_weights(prefix): the TF checkpoint format, which also holds the optimizer
    # (https://www.tensorflow.org/api_docs/python/tf/keras/Model#save_weights).
    "tf_weights": ("tf_weights/weights", ("weights", "optimizer_state"), "code"),
    # TF.js files, made by the tensorflowjs converter (harness/tfjs.py) and loaded by TF.js envs only:
    # a layers model (loadLayersModel) and a graph model (loadGraphModel), which TF.js can save again.
    "tfjs_layers": ("tfjs_layers/model.json", ("architecture", "weights", "custom_classes"), "tfjs"),
    "tfjs_graph": ("tfjs_graph/model.json", ("serving", "js_save"), "tfjs"),
}

# (format, side, predicate on (keras3, keras_version_tuple), reason, source)
NOT_APPLICABLE = [
    ("savedmodel", "save", lambda k3, v: k3,
     "Keras 3 model.save() writes only .keras and .h5; a SavedModel comes from model.export()",
     "https://keras.io/guides/migrating_to_keras_3/"),
    ("weights_h5", "save", lambda k3, v: k3,
     "Keras 3 save_weights() only writes files ending in .weights.h5",
     "https://keras.io/api/models/model_saving_apis/weights_saving_and_loading/"),
    ("tf_weights", "save", lambda k3, v: k3,
     "Keras 3 save_weights() only writes .weights.h5 files; the TensorFlow checkpoint format is gone",
     "https://keras.io/guides/migrating_to_keras_3/"),
    ("export", "save", lambda k3, v: not k3 and v < (2, 13),
     "Model.export() was added in Keras 2.13",
     "https://github.com/keras-team/keras/releases/tag/v2.13.1"),
    ("keras", "save", lambda k3, v: not k3 and v < (2, 12),
     "the .keras (Keras v3) archive format was added in Keras 2.12",
     "https://github.com/tensorflow/tensorflow/releases/tag/v2.12.0"),
]


def not_applicable(fmt, side, ctx):
    """The declared reason this format cannot apply on this side in this env, or None."""
    from .context import _vtuple

    version = _vtuple(ctx.keras_version)
    for name, where, pred, reason, source in NOT_APPLICABLE:
        if name == fmt and where == side and pred(ctx.keras3, version):
            return {"reason": reason, "source": source}
    return None


# The call a user makes for a format, tried once where the table says not-applicable so the report
# can quote the framework's own refusal (or say that it wrote something else without a word).
USER_CALL = {
    "h5": 'model.save("model.h5")',
    "keras": 'model.save("model.keras")',
    "savedmodel": 'model.save("savedmodel")',
    "export": 'model.export("export")',
    "weights_h5": 'model.save_weights("weights.h5")',
    "weights": 'model.save_weights("model.weights.h5")',
    "tf_savedmodel": 'tf.saved_model.save(model, "tf_savedmodel")',
    "checkpoint": 'tf.train.Checkpoint(model=model, optimizer=model.optimizer).write("ckpt/model")',
    "json": 'open("model.json", "w").write(model.to_json())',
    "tf_weights": 'model.save_weights("tf_weights/weights")',
    "tfjs_layers": "tensorflowjs_converter --input_format keras model.h5 tfjs_layers  "
                   "# keras_keras for a Keras 3 .keras file",
    "tfjs_graph": "tensorflowjs_converter --input_format tf_saved_model savedmodel tfjs_graph",
}


def try_refused(fmt, model, scratch, ctx):
    """Make the user's call for a not-applicable format in `scratch`: what the framework says.

    {"call", "refused": True, "error_type", "message"} when it raises; {"call", "refused": False,
    "wrote": [...]} when it accepts the call (and writes something else than the format)."""
    from .capture import describe

    call = USER_CALL.get(fmt, fmt)
    path = artifact_path(fmt, scratch)
    try:
        if fmt in ("h5", "keras", "savedmodel"):
            model.save(path)
        elif fmt == "export":
            model.export(path)
        elif fmt in ("weights_h5", "weights", "tf_weights"):
            if not os.path.isdir(os.path.dirname(path)):
                os.makedirs(os.path.dirname(path))
            model.save_weights(path)
        else:
            save(fmt, model, scratch, ctx)
    except Exception as exc:
        info = describe(exc)
        # The scratch dir is this run's, not the user's: the message names the file as they would.
        message = (info.get("message") or "").replace(scratch + os.sep, "")
        return {"call": call, "refused": True, "error_type": info.get("error_type"), "message": message[:600]}
    wrote = []
    for root, _dirs, files in os.walk(scratch):
        wrote += [os.path.relpath(os.path.join(root, f), scratch) for f in files]
    return {"call": call, "refused": False, "wrote": sorted(wrote)[:20]}


def promises(fmt):
    return list(FORMATS[fmt][1])


def artifact_path(fmt, out_dir):
    return os.path.join(out_dir, FORMATS[fmt][0])


def save(fmt, model, out_dir, ctx):
    """Write the model in this format; returns the artifact path."""
    tf = ctx.tf
    path = artifact_path(fmt, out_dir)
    if fmt == "keras" and not ctx.keras3 and not ctx.keras_at_least(2, 13):
        # Keras 2.12 writes HDF5 under a .keras name unless asked for the v3 archive.
        model.save(path, save_format="keras_v3")
    elif fmt in ("h5", "keras"):
        model.save(path)
    elif fmt == "savedmodel":
        model.save(path, save_format="tf")
    elif fmt == "export":
        model.export(path)
    elif fmt in ("weights_h5", "weights"):
        model.save_weights(path)
    elif fmt == "tf_savedmodel":
        tf.saved_model.save(model, path)
    elif fmt == "checkpoint":
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(path)
    elif fmt == "json":
        with open(path, "w") as fh:
            fh.write(model.to_json())
        model.save_weights(os.path.join(out_dir, json_weights(ctx)))
    elif fmt == "tf_weights":
        os.makedirs(os.path.dirname(path), exist_ok=True)
        model.save_weights(path, save_format="tf")
    else:
        raise ValueError("unknown format %r" % fmt)
    return path


def json_weights(ctx):
    """The weights file saved beside model.json: what each Keras accepts from save_weights."""
    return "model.weights.h5" if ctx.keras3 else "weights.h5"


def ladder(fmt, ctx, mode, custom=False):
    """The attempts to make, least invasive first: [(rung or None, loader kind)].

    `custom`: the artifact names custom classes and the fixture has them, so every model-loader
    rung also passes custom_objects (a user who needs them needs them with any other switch)."""
    kind = FORMATS[fmt][2]
    if kind == "tfjs":
        return []  # a TF.js file is loaded by TF.js (harness/worker_js), never by a Python env
    if mode == "plain":
        return [(None, kind)] if kind != "code" else []
    if kind == "code":
        if fmt == "tf_weights" and ctx.keras3:
            # Keras 3 cannot read the TF checkpoint format; the legacy Keras 2 still can.
            return [(None, "code"), (rung("legacy_keras"), "code")]
        return [(None, "code")]
    if kind == "json":
        sets = [("custom_objects",)] if custom else []
        if ctx.keras3:
            sets.append(("custom_objects", "legacy_keras") if custom else ("legacy_keras",))
        return [(rung(*names), "json") for names in sets]
    if kind == "serving":
        return [(rung("tfsm_layer"), "tfsm")] if ctx.keras3 else []
    base = ("custom_objects",) if custom else ()
    sets = [base] if custom else []
    if fmt == "savedmodel" and not ctx.keras3:
        # Keras >= 2.11 restores optimizer slots from a SavedModel only on an explicit
        # load_weights() (keras-team/keras#16983).
        sets.append(base + ("reload_weights",))
    sets.append(base + ("compile_false",))
    if (fmt == "keras" and (ctx.keras3 or ctx.keras_at_least(2, 12))) or (fmt == "h5" and ctx.keras3):
        # Lambda bytecode is refused in safe mode (load_model has safe_mode from Keras 2.12). Both
        # switches together for a file whose compile config does not load either (Keras 3 .h5).
        sets.append(base + ("safe_mode_false",))
        sets.append(base + ("safe_mode_false", "compile_false"))
    if ctx.keras3 and fmt in ("h5", "keras", "savedmodel"):
        sets.append(base + ("legacy_keras",))
    steps = [(rung(*names), "model") for names in sets]
    if fmt == "savedmodel":
        steps.append((rung("tfsm_layer"), "tfsm") if ctx.keras3 else (rung("tf_saved_model_load"), "serving"))
    return steps
