"""The remedies users apply when a saved model does not load: the one table that the ladder
(formats.ladder), the verdict (harness.verdict) and the report read.

A ladder rung is a *set* of remedies, written as their names joined by "+" in table order
("custom_objects+compile_false"); the table order is also the order of invasiveness.
Runs inside matrix envs too: standard library only.
"""

from __future__ import absolute_import

from collections import namedtuple

# keras2: the rung keeps the user on Keras 2 (never a move to Keras 3); inference: only inference comes back
Remedy = namedtuple("Remedy", "name short label hint cost keras2 inference")

REMEDIES = (
    Remedy("custom_objects", "co", "custom_objects={...}",
           "load with custom_objects={...} naming the custom classes (or register them with "
           "@keras.saving.register_keras_serializable before loading)",
           "nothing, but the loading code must import the classes",
           False, False),
    Remedy("reload_weights", "rw", "load_weights(path) after load_model",
           "call model.load_weights(path) after load_model to restore the optimizer state "
           "(keras-team/keras#16983)",
           "nothing; one more call",
           False, False),
    Remedy("compile_false", "nc", "compile=False",
           "load with compile=False and compile the model again",
           "the compile config and the optimizer state: training restarts with a fresh optimizer",
           False, False),
    Remedy("safe_mode_false", "us", "safe_mode=False",
           "load with safe_mode=False (only for files you trust)",
           "safety: the file's Python bytecode runs when it loads",
           False, False),
    Remedy("legacy_keras", "tk", "the legacy tf_keras",
           "load it with tf_keras (pip install tf-keras), the legacy Keras 2, then re-save in the "
           ".keras format",
           "staying on Keras 2: the model is a tf_keras model, not a Keras 3 one",
           True, False),
    Remedy("tfsm_layer", "sm", "keras.layers.TFSMLayer",
           "wrap it with keras.layers.TFSMLayer(path, call_endpoint='serving_default') (inference only)",
           "everything but inference: no training, no Keras layers",
           False, True),
    Remedy("tf_saved_model_load", "tl", "tf.saved_model.load",
           "tf.saved_model.load(path).signatures['serving_default'] (inference only)",
           "everything but inference: no training, no Keras layers",
           False, True),
    # TF.js (harness/worker_js): the same questions asked in JavaScript.
    Remedy("js_register_class", "jr", "tf.serialization.registerClass",
           "define the custom layer in JavaScript and register it with tf.serialization.registerClass "
           "before tf.loadLayersModel (the fixture's .js file shows how)",
           "nothing, but the web app must ship a JavaScript port of every custom class",
           False, False),
    Remedy("wrap_tf_model", "wm", "wrapped in a tf.Model",
           "wrap the loaded graph model in a tf.Model (a layers model whose one custom layer runs the graph) "
           "and save that",
           "the saved file is a layers model around a custom wrapper layer: whoever loads it must register "
           "that wrapper class, as for any custom layer",
           False, False),
)

BY_NAME = dict((r.name, r) for r in REMEDIES)
ORDER = [r.name for r in REMEDIES]


def rung(*names):
    """The canonical name of a set of remedies: their names in table order, joined by '+'."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ValueError("unknown remedy %r" % unknown[0])
    return "+".join(n for n in ORDER if n in names)


def parts(name):
    """The remedies of a rung name ([] for None, the canonical loader with no help)."""
    return name.split("+") if name else []
