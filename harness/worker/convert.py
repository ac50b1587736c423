"""Convert phase, in the converter env: TF.js files from other envs' Keras files and SavedModels,
and Keras files from TF.js layers models, with the tensorflowjs converter.

The converter runs in this process (tensorflowjs.converters.converter.convert, the function the
`tensorflowjs_converter` console script calls with the same arguments), so one TF import serves a
whole batch. No fixture code is loaded and no custom class is registered here: the converter sees
exactly what `tensorflowjs_converter` on the command line sees, and no item changes the next one.
"""

from __future__ import absolute_import

import json
import os
import shutil
import time
from shlex import quote as _quote

from . import formats
from .capture import Captured, describe, disk_full
from .save import _finish, copy_references

SOURCE = "tfcompat: converted formats"
GUIDE = "https://www.tensorflow.org/js/guide/conversion"

# (source format, target) -> (--input_format, --output_format); the source artifact is the file or
# directory the producer's meta.json names as "artifact".
CONVERSIONS = {
    ("h5", "tfjs_layers"): ("keras", "tfjs_layers_model"),
    ("keras", "tfjs_layers"): ("keras_keras", "tfjs_layers_model"),
    ("savedmodel", "tfjs_layers"): ("keras_saved_model", "tfjs_layers_model"),
    ("tf_savedmodel", "tfjs_graph"): ("tf_saved_model", "tfjs_graph_model"),
    ("export", "tfjs_graph"): ("tf_saved_model", "tfjs_graph_model"),
    ("savedmodel", "tfjs_graph"): ("tf_saved_model", "tfjs_graph_model"),
    ("h5", "tfjs_graph"): ("keras", "tfjs_graph_model"),
    ("tfjs_layers", "tfjs_graph"): ("tfjs_layers_model", "tfjs_graph_model"),
    ("tfjs_layers", "h5"): ("tfjs_layers_model", "keras"),
    ("tfjs_layers", "keras"): ("tfjs_layers_model", "keras_keras"),
}

# target -> artifact path inside out_dir
ARTIFACTS = {
    "tfjs_layers": "tfjs_layers/model.json",
    "tfjs_graph": "tfjs_graph/model.json",
    "h5": "model.h5",
    "keras": "model.keras",
}

# A Keras file made from a TF.js layers model: topology and weights only (no compile, no optimizer).
FROM_TFJS_PROMISES = ["architecture", "weights"]


def converter_version():
    from tensorflowjs import version

    return version.version


def promises(target):
    if target in ("h5", "keras"):
        return list(FROM_TFJS_PROMISES)
    return formats.promises(target)


def command(input_format, output_format, src, dst):
    """The `tensorflowjs_converter` line equivalent to this conversion."""
    return " ".join(["tensorflowjs_converter", "--input_format", input_format, "--output_format",
                     output_format, _quote(src), _quote(dst)])


def convert_item(ctx, item):
    """item: {"key", "convert": True, "fixture", "format": target ("tfjs_layers"|"tfjs_graph"|"h5"|"keras"),
              "producer", "source_format", "source_dir" (the producer's artifact dir), "out_dir"}
    Returns the meta dict it also writes to out_dir/meta.json."""
    target = item["format"]
    source_format = item["source_format"]
    source_dir = item["source_dir"]
    out_dir = item["out_dir"]
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    src_meta = _source_meta(source_dir)
    pair = CONVERSIONS.get((source_format, target))
    converted = {"from": source_format, "producer": item.get("producer"),
                 "converter": "tensorflowjs %s" % converter_version(), "tensorflow": ctx.tf_version}
    if src_meta.get("status") != "saved":
        meta = {"fixture": item["fixture"], "format": target, "promises": promises(target),
                "status": "not-applicable", "source": SOURCE, "converted": converted, "warnings": [],
                "reason": "the producer saved no %s to convert (%s)" % (source_format, src_meta.get("status"))}
        return _finish(out_dir, meta)
    meta = dict(src_meta)
    for stale in ("error_type", "message", "traceback", "reason", "source", "refusal", "artifact", "weights_file",
                  "converted", "graph_signature", "layer_classes", "weight_names", "tfjs_model"):
        meta.pop(stale, None)
    meta.update(format=target, promises=promises(target), converted=converted, warnings=[])
    if pair is None:
        meta.update(status="not-applicable", source=GUIDE,
                    reason="tensorflowjs_converter has no conversion from %s to %s" % (source_format, target))
        return _finish(out_dir, meta)
    input_format, output_format = pair
    src = os.path.join(source_dir, src_meta["artifact"])
    artifact = ARTIFACTS[target]
    dst = os.path.join(out_dir, artifact)
    if target in ("tfjs_layers", "tfjs_graph"):
        dst = os.path.dirname(dst)  # the converter writes model.json and the shards into a directory
    # As the user types it, in the producer's folder: file names, not this run's paths.
    converted["command"] = command(input_format, output_format, src_meta["artifact"], os.path.relpath(dst, out_dir))
    scratch = os.path.join(out_dir, "_scratch")
    t = time.time()
    failure = None
    with Captured(native=True) as cap:
        try:
            if input_format == "keras_keras":
                # The converter unzips the .keras archive next to its input (config.json,
                # metadata.json, model.weights.h5): give it a copy, never the producer's directory.
                os.makedirs(scratch)
                src = shutil.copy(src, os.path.join(scratch, os.path.basename(src)))
            _run(["--input_format", input_format, "--output_format", output_format, src, dst], cap)
            if not os.path.exists(os.path.join(out_dir, artifact)):
                raise RuntimeError("the converter returned without writing %s" % artifact)
        except (Exception, SystemExit) as exc:  # argparse exits on arguments it refuses
            if isinstance(exc, Exception) and disk_full(exc):
                raise  # not a conversion error: the worker stops, and --resume converts it again
            failure = describe(exc)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    converted["duration_s"] = round(time.time() - t, 3)
    meta["warnings"] = cap.messages  # complete only once the block has exited
    if failure is not None:
        meta.update(status="save-error", **failure)
        return _finish(out_dir, meta)
    copy_references(source_dir, out_dir)
    meta.update(status="saved", artifact=artifact)
    if target in ("tfjs_layers", "tfjs_graph"):
        meta.update(_model_json_facts(os.path.join(out_dir, artifact), target))
    return _finish(out_dir, meta)


def _run(argv, cap):
    """The converter's main function in this process; what it prints is kept with the warnings."""
    import contextlib
    import io

    from tensorflowjs.converters import converter

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            converter.convert(argv)
    finally:
        for line in out.getvalue().splitlines()[:50]:
            if line.strip() and ("stdout: " + line.strip()) not in cap.messages:
                cap.messages.append("stdout: " + line.strip()[:2000])


def _source_meta(source_dir):
    path = os.path.join(source_dir or "", "meta.json")
    if not os.path.exists(path):
        return {"status": "missing (no %s)" % path}
    with open(path) as fh:
        return json.load(fh)


def _model_json_facts(path, target):
    """What the JS side needs from the produced model.json."""
    with open(path) as fh:
        model = json.load(fh)
    facts = {"tfjs_model": {"format": model.get("format"), "generatedBy": model.get("generatedBy"),
                            "convertedBy": model.get("convertedBy")}}
    if model.get("userDefinedMetadata"):
        facts["tfjs_model"]["userDefinedMetadata"] = model["userDefinedMetadata"]
    if target == "tfjs_graph":
        sig = model.get("signature") or {}
        facts["graph_signature"] = {
            "inputs": sorted((sig.get("inputs") or {}).keys()),
            "outputs": sorted((sig.get("outputs") or {}).keys()),
            # signature key -> graph tensor name ("input_1:0"), as loadGraphModel's executor names them
            "tensors": dict((k, v.get("name")) for part in ("inputs", "outputs")
                            for k, v in sorted((sig.get(part) or {}).items())),
        }
    else:
        topology = model.get("modelTopology") or {}
        config = topology.get("model_config", topology)
        layers = ((config or {}).get("config") or {}).get("layers") or []
        # The class names TF.js must know to build it (a custom or TF-Hub class is registered in JS).
        facts["layer_classes"] = sorted(set(layer.get("class_name") for layer in layers if isinstance(layer, dict)))
        facts["weight_names"] = [w.get("name") for g in model.get("weightsManifest") or []
                                 for w in g.get("weights") or []][:200]
    return facts
