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
}

# (format, side, predicate on (keras3, keras_version_tuple), reason, source)
NOT_APPLICABLE = [
    ("savedmodel", "save", lambda k3, v: k3,
     "Keras 3 model.save() writes only .keras and .h5; a SavedModel comes from model.export()",
     "https://keras.io/guides/migrating_to_keras_3/"),
    ("weights_h5", "save", lambda k3, v: k3,
     "Keras 3 save_weights() only writes files ending in .weights.h5",
     "https://keras.io/api/models/model_saving_apis/weights_saving_and_loading/"),
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
    else:
        raise ValueError("unknown format %r" % fmt)
    return path


def ladder(fmt, ctx, mode, custom=False):
    """The attempts to make, least invasive first: [(rung or None, loader kind)].

    `custom`: the artifact names custom classes and the fixture has them, so every model-loader
    rung also passes custom_objects (a user who needs them needs them with any other switch)."""
    kind = FORMATS[fmt][2]
    if mode == "plain":
        return [(None, kind)] if kind != "code" else []
    if kind == "code":
        return [(None, "code")]
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
