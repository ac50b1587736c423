"""TF.js in the matrix: which files the converter env makes, from what, and which envs read which.

- A Python producer's `tfjs_layers` is the converter's output from its Keras file, `tfjs_graph` from
  its SavedModel; a TF.js producer saves `tfjs_layers` itself and the converter makes its `h5`/`keras`.
- A TF.js env reads only TF.js files; a Python env reads no TF.js file (it would convert it back
  first, which is the TF.js producer's `h5`/`keras` cells).
"""

from __future__ import annotations

from .matrix import EnvSpec
from .matrix_defaults import TFJS_FORMATS

GUIDE = "https://www.tensorflow.org/js/guide/conversion"

# (target format, producer side) -> the producer's formats to convert from, first saved one wins.
# A Keras 3 user's own file is the .keras archive (the converter's keras_keras input); a Keras 2
# user's the HDF5 file (`--input_format keras`). A graph model comes from a serving SavedModel.
SOURCES = {
    ("tfjs_layers", "keras3"): ("keras",),
    ("tfjs_layers", "keras2"): ("h5",),
    ("tfjs_graph", "keras3"): ("export", "tf_savedmodel"),
    ("tfjs_graph", "keras2"): ("tf_savedmodel", "export", "savedmodel"),
    ("h5", "tfjs"): ("tfjs_layers",),
    ("keras", "tfjs"): ("tfjs_layers",),
}


# The JS worker's remedy rungs per format (harness/worker_js/worker.js implements them; names from
# harness/worker/remedies.py): a custom class ported to JavaScript and registered, and a graph model
# that cannot be saved as it is, wrapped into a tf.Model.
JS_LADDER = {"tfjs_layers": ("js_register_class",), "tfjs_graph": ("wrap_tf_model",)}


def side(spec: EnvSpec) -> str:
    """'tfjs', 'keras3' or 'keras2': what a producer's files are, for SOURCES."""
    if spec.kind == "tfjs":
        return "tfjs"
    return "keras3" if spec.keras not in ("bundled", "tf-keras") else "keras2"


def converted(spec: EnvSpec, fmt: str) -> bool:
    """Whether the converter env, not `spec`'s own worker, makes `spec`'s artifact of `fmt`."""
    return bool(sources(spec, fmt))


def sources(spec: EnvSpec, fmt: str) -> tuple[str, ...]:
    """The producer's formats the converter may start from for `fmt` (first saved wins)."""
    return SOURCES.get((fmt, side(spec)), ())


def not_read(consumer: EnvSpec, fmt: str) -> dict | None:
    """The declared reason `consumer` does not load `fmt` (None: it does)."""
    if consumer.kind == "tfjs" and fmt not in TFJS_FORMATS:
        return {"reason": "TF.js loads only what the tensorflowjs converter writes (tfjs_layers with "
                          "loadLayersModel, tfjs_graph with loadGraphModel)", "source": GUIDE}
    if consumer.kind != "tfjs" and fmt in TFJS_FORMATS:
        return {"reason": "a TF.js model is loaded by TF.js; Python reads it only once converted back to "
                          "Keras (the TF.js producer's h5/keras cells)", "source": GUIDE}
    return None
