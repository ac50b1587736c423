"""End to end on the real thing: tox/uv envs, real TensorFlow, one Keras 2 and one Keras 3 env.

Each verdict asserted here is documented public behaviour; the issue or doc is cited beside it.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from harness.matrix import load_matrix
from harness.records import FIELDS
from harness.worker import WORKER_VERSION

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K2, K3 = "tf2.15", "tf2.16-keras3"
FIXTURES = [f.name for f in load_matrix(os.path.join(ROOT, "matrix.yaml")).fixtures]


def tfcompat(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "harness", "--matrix", os.path.join(ROOT, "matrix.yaml"), *args],
                          cwd=ROOT, env={**os.environ, **(env or {})}, **kw)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    proc = tfcompat("--state-dir", str(base / "state"), "--reports", str(base / "reports"),
                    "run", "--only", "%s,%s" % (K2, K3), "--jobs", "2",
                    capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(base / "reports" / "results.jsonl") as fh:
        records = [json.loads(line) for line in fh]
    with open(base / "reports" / "run.json") as fh:
        meta = json.load(fh)
    return {"records": records, "meta": meta, "reports": base / "reports", "out": proc.stdout,
            "journals": base / "state" / "runs" / meta["run_id"] / "journals"}


# The profiles' fixtures that are not in matrix.yaml, on formats where their breaks show: a second,
# smaller run on the same two envs (the tox envs are shared).
BREADTH = ["conv_bn", "{name: mixed_precision, atol: 0.001, rtol: 0.001}", "float64_policy", "hub_functional"]


@pytest.fixture(scope="module")
def breadth(tmp_path_factory):
    base = tmp_path_factory.mktemp("breadth")
    with open(os.path.join(ROOT, "matrix.yaml")) as fh:
        text = fh.read()
    head, rest = text.split("\nfixtures:\n", 1)
    tail = rest[rest.index("\nformats:"):]
    (base / "matrix.yaml").write_text(head + "\nfixtures:\n" + "".join("  - %s\n" % f for f in BREADTH) + tail)
    proc = subprocess.run([sys.executable, "-m", "harness", "--matrix", str(base / "matrix.yaml"), "--state-dir",
                           str(base / "state"), "--reports", str(base / "reports"), "run", "--only", "%s,%s" % (K2, K3),
                           "--formats", "h5,keras,export,json"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(base / "reports" / "results.jsonl") as fh:
        return {"records": [json.loads(line) for line in fh]}


def cell(run, producer, consumer, fixture, fmt):
    found = [r for r in run["records"] if (r["producer"], r["consumer"], r["fixture"], r["format"])
             == (producer, consumer, fixture, fmt)]
    assert len(found) == 1, (producer, consumer, fixture, fmt)
    return found[0]


def cell_or_save_error(run, producer, fixture, fmt):
    """The artifact's save-error record if it could not be saved, else its same-env cell."""
    found = [r for r in run["records"] if r["consumer"] is None and (r["producer"], r["fixture"], r["format"])
             == (producer, fixture, fmt)]
    return found[0] if found else cell(run, producer, producer, fixture, fmt)


def plain(rec):
    return next(a for a in rec["attempts"] if a["remedy"] is None)


def test_every_cell_has_one_record_with_the_stable_keys(run):
    recs = run["records"]
    for rec in recs:
        assert set(FIELDS) <= set(rec), set(FIELDS) - set(rec)
        assert rec["schema"] == 3 and rec["worker_version"] == WORKER_VERSION
    # (fixtures + custom_layer's re-save variant) x 10 formats x 2 producers; each artifact either a
    # save-error row or 2 consumer rows
    artifacts = {(r["producer"], r["fixture"], r["format"]) for r in recs}
    assert len(artifacts) == 2 * (len(FIXTURES) + 1) * 10
    unsaved = sum(1 for r in recs if r["consumer"] is None)
    assert len(recs) == unsaved + 2 * (len(artifacts) - unsaved)
    versions = cell(run, K2, K3, "control", "h5")["versions"]
    assert versions["producer"]["tensorflow"] == "2.15.1"
    assert versions["consumer"]["keras"] == "3.3.3"
    assert "h5py" in versions["consumer"]["packages"] and "protobuf" in versions["producer"]["packages"]


def test_tf_imports_are_bounded_per_env_and_phase(run):
    # one process per phase: save, no-remedy checks, remedy checks; whatever the number of checks
    # (K3 runs a second save process: it re-saves K2's custom_layer files, its re-save variant).
    # A check that hangs or crashes its process costs two more: it is retried alone in a fresh one,
    # and the rest go on in another.
    killed = {(env, phase): 0 for env in (K2, K3) for phase in ("plain", "remedies")}
    for rec in run["records"]:
        for att in rec["attempts"]:
            if att["outcome"] in ("timeout", "crash"):
                killed[(rec["consumer"], "remedies" if att.get("phase") == "check-remedies" else "plain")] += 1
    # A Keras 2 check process that a check made import tf_keras (a tf_keras file of K3's re-save)
    # hands the rest to a fresh process, so that later loads are not judged in a tainted process.
    restarts = {(env, phase): sum(1 for line in open(run["journals"] / ("%s.check-%s.jsonl" % (env, phase)))
                                  if '"restart"' in line) for env in (K2, K3) for phase in ("plain", "remedies")}
    assert restarts[(K3, "plain")] == restarts[(K3, "remedies")] == 0
    assert 1 <= restarts[(K2, "plain")] + restarts[(K2, "remedies")] <= 4, restarts
    want = {env: {"save": save, "plain": 1 + 2 * killed[(env, "plain")] + restarts[(env, "plain")],
                  "remedies": 1 + 2 * killed[(env, "remedies")] + restarts[(env, "remedies")]}
            for env, save in ((K2, 1), (K3, 2))}
    assert run["meta"]["tf_imports"] == want
    assert sum(killed.values()) <= 2, killed  # retries are the exception, not the way checks run
    # The TF 2.15 spin on tf-keras JSON after tf_keras was imported (README) no longer happens: the
    # re-saved tf_keras json loads in the K2 process at the first attempt.
    rec = cell(run, K3, K2, "custom_layer~" + K2, "json")
    assert all(a["outcome"] not in ("timeout", "crash") for a in rec["attempts"]), rec["attempts"]


def test_no_remedy_attempts_ran_without_fixture_code(run):
    for rec in run["records"]:
        for att in rec["attempts"]:
            if att["remedy"] is None and att.get("loader") != "code":
                assert att["fixtures_absent"] is True


def test_custom_layer_needs_custom_objects(run):
    # "Unknown layer" without custom_objects; passing them works.
    # https://www.tensorflow.org/guide/keras/serialization_and_saving#custom_objects
    rec = cell(run, K2, K2, "custom_layer", "h5")
    assert "Unknown layer" in plain(rec)["message"]
    assert rec["outcome"] == "pass-with-remedy" and rec["remedy"] == "custom_objects"
    assert rec["same_env"] is True


def test_keras3_refuses_keras2_savedmodel(run):
    # keras-team/keras#18709: "File format not supported ... legacy SavedModel format is not
    # supported by load_model() in Keras 3 ... use keras.layers.TFSMLayer"
    rec = cell(run, K2, K3, "control", "savedmodel")
    assert plain(rec)["outcome"] == "load-error"
    assert "File format not supported" in plain(rec)["message"]
    assert rec["outcome"] != "pass"
    assert "TFSMLayer" in rec["hint"] or rec["remedy"] in ("legacy_keras", "tfsm_layer")


def test_keras3_cannot_write_a_savedmodel_with_model_save(run):
    # https://keras.io/guides/migrating_to_keras_3/ : model.save() writes .keras/.h5 only
    rec = cell(run, K3, K2, "control", "savedmodel")
    assert rec["outcome"] == "not-applicable"


def test_hub_keras_layer_cannot_be_built_under_keras3(run):
    # tensorflow/tensorflow#65419, #63085: "Only instances of `keras.Layer` can be added to a
    # Sequential model. Received: <tensorflow_hub.keras_layer.KerasLayer ...>"
    saves = [r for r in run["records"] if r["producer"] == K3 and r["fixture"] == "hub_layer"
             and r["outcome"] == "save-error"]
    assert saves, "the Keras 3 producer should record the hub failure"
    for rec in saves:
        assert "Only instances of `keras.Layer`" in rec["message"]
        assert rec["consumer"] is None  # once per artifact


def test_hub_layer_round_trips_in_keras2_with_custom_objects(run):
    # A hub.KerasLayer is a class the loader does not know: custom_objects={'KerasLayer': hub.KerasLayer}
    # (https://www.tensorflow.org/guide/keras/serialization_and_saving#custom_objects)
    rec = cell(run, K2, K2, "hub_layer", "h5")
    assert "Unknown layer" in plain(rec)["message"]
    assert rec["outcome"] == "pass-with-remedy"


def test_keras2_dot_keras_archive_does_not_load_in_keras3(run):
    # keras-team/keras#19089: "Could not deserialize class 'Functional' because its parent module
    # keras.src.engine.functional cannot be imported"
    rec = cell(run, K2, K3, "control", "keras")
    assert "keras.src.engine.functional" in plain(rec)["message"]


def test_keras3_files_do_not_load_in_keras2(run):
    # tensorflow/tensorflow#70866 (.keras: "parent module keras.src.models.functional cannot be
    # imported"), tensorflow/tensorflow#66381 (.h5: Keras 3 writes `batch_shape`)
    assert "keras.src.models.functional" in plain(cell(run, K3, K2, "control", "keras"))["message"]
    h5 = cell(run, K3, K2, "control", "h5")
    assert h5["outcome"] == "load-error" and "batch_shape" in h5["message"]


def test_keras2_savedmodel_drops_optimizer_state_unless_weights_are_reloaded(run):
    # keras-team/keras#16983, tensorflow/tensorflow#44670: load_model on a SavedModel leaves the
    # optimizer fresh; model.load_weights(path) afterwards restores it.
    rec = cell(run, K2, K2, "control", "savedmodel")
    first = plain(rec)
    assert first["outcome"] == "degraded" and "optimizer_state" in first["lost"]
    assert first["checks"]["resume"] is False
    assert rec["outcome"] == "pass-with-remedy" and rec["remedy"] == "reload_weights"


def test_serving_artifacts_cross_keras_versions(run):
    # model.export() / tf.saved_model.save artifacts are TF SavedModels read by tf.saved_model.load
    # in any TF 2 (https://keras.io/api/models/model_saving_apis/export/)
    for fmt in ("export", "tf_savedmodel"):
        for producer, consumer in ((K2, K3), (K3, K2)):
            rec = cell(run, producer, consumer, "custom_layer", fmt)
            assert rec["outcome"] == "pass", (fmt, producer, consumer, rec["message"])
            assert rec["max_abs_diff"] is not None and rec["max_abs_diff"] <= 1e-5
            assert rec["tolerances"]["predictions"] == {"atol": 1e-5, "rtol": 1e-5}


def test_weights_files_restore_into_rebuilt_models(run):
    # The same architecture from code loads `.weights.h5` weights across Keras 2 -> 3.
    rec = cell(run, K2, K3, "custom_layer", "weights")
    assert rec["outcome"] == "pass"
    assert rec["checks"]["predictions"] is True


def test_custom_optimizer_state_is_checked_by_a_resumed_step(run):
    rec = cell(run, K2, K2, "custom_optimizer", "h5")
    best = next(a for a in rec["attempts"] if a["remedy"] == rec["remedy"])
    assert best["checks"] == {"predictions": True, "classes": True, "optimizer": True, "resume": True}
    assert best["optimizer_detail"]["consumer"]["config"]["warmup_hint"] == 7.0


def test_report_is_self_contained(run):
    html = (run["reports"] / "index.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert K2 in html and K3 in html
    assert "TF imports" in html or "tf_imports" in html


def test_check_phases_run_without_network(run):
    # the tox backend runs check workers in a fresh network namespace: only loopback exists
    state = run["reports"].parent / "state" / "runs"
    (run_dir,) = list(state.iterdir())
    for env in (K2, K3):
        for phase in ("check-plain", "check-remedies"):
            with open(run_dir / "journals" / ("%s.%s.jsonl" % (env, phase))) as fh:
                readies = [json.loads(line) for line in fh if "\"ready\"" in line]
            assert readies and all(r["net_interfaces"] == ["lo"] for r in readies)
    assert run["meta"]["check_network"].startswith("off")


def test_a_custom_class_remedy_carries_custom_objects_in_every_rung(run):
    # The user who needs custom_objects needs them with the legacy Keras too: the rung says so.
    rec = cell(run, K2, K3, "custom_layer", "h5")
    assert rec["outcome"] == "pass-with-remedy" and rec["remedy"] == "custom_objects+legacy_keras"
    assert rec["remedy_cost"] and "Keras 2" in rec["remedy_cost"]
    # control names no custom class: no rung of its ladder passes custom_objects
    for producer, consumer in ((K2, K3), (K3, K2), (K2, K2)):
        for fmt in ("h5", "keras", "savedmodel"):
            for a in cell(run, producer, consumer, "control", fmt)["attempts"]:
                assert "custom_objects" not in (a["remedy"] or "")


def test_checkpoint_restore_is_proven_variable_by_variable(run):
    # tf.train.Checkpoint(model=..., optimizer=...) restored into a model rebuilt from code with other
    # weights: every variable must come back as the producer's, with the optimizer's iterations.
    rec = cell(run, K2, K2, "custom_optimizer", "checkpoint")
    assert rec["outcome"] == "pass", rec["message"]
    (a,) = rec["attempts"]
    assert a["restore"]["changed"] == a["restore"]["variables"] > 0 and a["restore"]["unmatched"] == []
    assert a["restore"]["iterations_before"] == 0
    assert a["checks"] == {"predictions": True, "weights": True, "optimizer": True, "resume": True}
    assert a["optimizer_detail"]["class_source"].startswith("fixture code")


def test_keras2_savedmodel_revives_custom_layers_as_placeholders(run):
    # A Keras 2 SavedModel loads without custom_objects, but the custom layer comes back as a revived
    # generic class (https://www.tensorflow.org/guide/keras/serialization_and_saving#savedmodel_format:
    # "the custom objects ... are revived" without their Python code).
    first = plain(cell(run, K2, K2, "custom_layer", "savedmodel"))
    assert first["outcome"] == "degraded" and "custom_classes" in first["lost"]
    assert first["checks"]["classes"] is False and first["checks"]["predictions"] is True
    assert first["checks"]["serving"] is True  # the SavedModel's own signature is exercised too


def test_control_marks_only_where_control_fails_as_badly(run):
    # Keras 3 .h5 does not load in Keras 2 (batch_shape) for control too: the pair is at fault.
    assert cell(run, K3, K2, "custom_layer", "h5")["control_failed"] is True
    assert cell(run, K2, K2, "custom_layer", "h5")["control_failed"] is False


def test_save_warnings_are_recorded_apart_from_load_warnings(run):
    # Keras 2.13+ warns that HDF5 via model.save() is legacy (keras-team/keras#18112 era docs).
    rec = cell(run, K2, K2, "control", "h5")
    assert any("legacy" in w and "HDF5" in w for w in rec["warnings"]["save"]), rec["warnings"]
    assert not any("HDF5 file via `model.save()`" in w for w in rec["warnings"]["load"])


# ---- the seed scenarios: hub_object, subclassed, raw_variable, untracked_variable ----------------

def test_hub_layer_from_a_loaded_object_cannot_be_saved_as_config(run):
    # tensorflow/hub#343, KerasLayer.get_config: "Can only generate a valid config for
    # `hub.KerasLayer(handle, ...)` that uses a string `handle`" (the classic Hub save failure).
    for fmt in ("h5", "keras"):
        rec = cell_or_save_error(run, K2, "hub_object", fmt)
        assert rec["outcome"] == "save-error" and rec["error_type"] == "NotImplementedError"
        assert "string `handle`" in rec["message"] and rec["save_error_kind"] == "exception"
        assert "save_weights" in rec["hint"] and "tf.saved_model.save" in rec["hint"]
    # ... and the documented workarounds work: weights only, or the whole graph with tf.saved_model
    for fmt in ("weights", "tf_savedmodel"):
        assert cell(run, K2, K2, "hub_object", fmt)["outcome"] == "pass"
    # Under Keras 3 the layer cannot even be added (tensorflow/tensorflow#65419)
    assert "Only instances of `keras.Layer`" in cell_or_save_error(run, K3, "hub_object", "h5")["message"]


def test_subclassed_model_is_refused_by_hdf5_and_served_by_the_formats_that_need_no_config(run):
    # Keras 2: "Saving the model to HDF5 format requires the model to be a Functional model or a
    # Sequential model" (tensorflow/tensorflow#29545, #37945)
    rec = cell_or_save_error(run, K2, "subclassed", "h5")
    assert rec["outcome"] == "save-error" and "Functional model or a Sequential model" in rec["message"]
    for fmt in ("weights", "checkpoint", "tf_savedmodel"):
        assert cell(run, K2, K2, "subclassed", fmt)["outcome"] == "pass", fmt
    # The class is needed to load it back: without the code the loader cannot rebuild it.
    assert plain(cell(run, K2, K2, "subclassed", "keras"))["outcome"] == "load-error"
    # Keras 3 without get_config rebuilds it with the default constructor arguments (hidden_units 8
    # instead of 16), so even its own .keras archive fails to load, with the class given
    # (keras-team/keras-core#469); weights and checkpoints restored into the model built from code pass.
    rec = cell(run, K3, K3, "subclassed", "keras")
    assert rec["outcome"] == "load-error" and rec["same_env"] is True
    assert any(a["remedy"] == "custom_objects" and "expected 2 variables, but received 0" in a["message"]
               for a in rec["attempts"])
    for fmt in ("weights", "checkpoint"):
        assert cell(run, K3, K3, "subclassed", fmt)["outcome"] == "pass", fmt


def test_raw_variable_is_lost_silently_by_keras3(run):
    # Keras 3 tracks only Keras variables: a tf.Variable made in __init__ is not saved, the reloaded
    # layer makes a new one and predicts differently without an error (tensorflow/docs#2401: such a
    # layer "breaks standard Keras functionality for training, saving, and inspection"; keras#16797).
    for fmt in ("keras", "weights"):
        rec = cell(run, K3, K3, "raw_variable", fmt)
        assert rec["outcome"] == "wrong-output", (fmt, rec["outcome"], rec["message"])
        assert rec["checks"]["predictions"] is False and rec["max_abs_diff"] > 1e-3
    # Keras 2 tracks it: with the class it round-trips
    assert cell(run, K2, K2, "raw_variable", "h5")["outcome"] == "pass-with-remedy"


def test_untracked_variable_is_silent_state_loss_everywhere_it_loads(run):
    # A tf.Variable on a plain Python object is seen by no tracker: weights files and checkpoints
    # restore every variable they hold and the model still predicts differently (wrong-output, the
    # worst), while SavedModel exports refuse the "untracked resource" (tensorflow/tensorflow#61347).
    for env in (K2, K3):
        rec = cell(run, env, env, "untracked_variable", "weights")
        assert rec["outcome"] == "wrong-output"
        assert "state the format does not hold" in rec["message"]
        assert rec["attempts"][0]["restore"]["unmatched"] == []
        save = cell_or_save_error(run, env, "untracked_variable", "tf_savedmodel")
        assert save["outcome"] == "save-error" and "untracked" in save["message"]
    rec = cell(run, K2, K2, "untracked_variable", "h5")
    assert rec["outcome"] == "wrong-output" and rec["remedy"] == "custom_objects"
    # Only the traced serving export carries the value along (as a captured constant).
    passing = {r["format"] for r in run["records"] if r["fixture"] == "untracked_variable" and r["outcome"] == "pass"}
    assert passing <= {"export"}, passing


# ---- breadth: compile-time custom functions, layers without get_config, json and tf_weights, refusals


def test_a_registered_activation_does_not_reload_from_keras_2_15_hdf5_even_with_custom_objects(run):
    # keras-team/keras#20833: Keras 2.15 writes a registered function as {'class_name': 'function',
    # 'config': 'pkg>name', ...} into .h5 and then cannot read it back: "Unknown activation function: 'function'".
    rec = cell(run, K2, K2, "custom_compile", "h5")
    assert rec["outcome"] == "load-error", rec["outcome"]
    assert [a["remedy"] for a in rec["attempts"]][:2] == [None, "custom_objects"]
    assert all("tfcompat>scaled_tanh" in a["message"] for a in rec["attempts"])
    # The .keras archive of the same model round-trips once the functions are given by name.
    keras = cell(run, K2, K2, "custom_compile", "keras")
    assert keras["outcome"] == "pass-with-remedy" and keras["remedy"] == "custom_objects"
    assert keras["checks"]["functions"] is True


def test_keras3_needs_the_custom_functions_by_name(run):
    # "Could not interpret activation function identifier" / "Could not locate function" without them
    # (keras-team/keras#20806); with custom_objects the functions come back as themselves.
    rec = cell(run, K3, K3, "custom_compile", "keras")
    assert plain(rec)["outcome"] == "load-error"
    assert rec["outcome"] == "pass-with-remedy" and rec["remedy"] == "custom_objects"
    assert rec["checks"]["functions"] is True
    assert "Could not interpret activation function identifier" in plain(cell(run, K3, K3, "custom_compile", "h5"))[
        "message"]


def test_a_layer_without_get_config_round_trips_where_keras_captures_its_init_args(run):
    # Keras >= 2.13 and Keras 3 record plain __init__ arguments themselves (the textbook
    # NotImplementedError "must override get_config()" is older Keras, tensorflow/tensorflow#33947).
    for env in (K2, K3):
        rec = cell(run, env, env, "no_config_layer", "keras")
        assert rec["outcome"] == "pass-with-remedy" and rec["remedy"] == "custom_objects", (env, rec["message"])
        assert rec["checks"]["classes"] is True


def test_json_architecture_plus_weights(run):
    # model_from_json needs no fixture code for a plain model, the custom classes by name otherwise.
    assert cell(run, K2, K2, "control", "json")["outcome"] == "pass"
    rec = cell(run, K2, K2, "custom_layer", "json")
    assert rec["outcome"] == "pass-with-remedy" and rec["remedy"] == "custom_objects"
    # Keras 3 cannot read a tf.keras JSON config ("Could not locate class 'Functional'", keras-team/keras#20081:
    # cross-version loading is not guaranteed); the legacy tf_keras can.
    k2_to_k3 = cell(run, K2, K3, "control", "json")
    assert "Could not locate class 'Functional'" in plain(k2_to_k3)["message"]
    assert k2_to_k3["outcome"] == "pass-with-remedy" and k2_to_k3["remedy"] == "legacy_keras"
    # and Keras 2 cannot read a Keras 3 one: its InputLayer config says batch_shape
    k3_to_k2 = cell(run, K3, K2, "control", "json")
    assert k3_to_k2["outcome"] == "load-error" and "batch_shape" in plain(k3_to_k2)["message"]
    assert cell(run, K3, K3, "control", "json")["outcome"] == "pass"


def test_tf_checkpoint_weights_restore_in_keras2_and_only_through_tf_keras_in_keras3(run):
    # Keras 3 load_weights: "File format not supported ... only supports V3 `.keras` and `.weights.h5`
    # files, or legacy V1/V2 `.h5` files" (keras-team/keras#18709); tf_keras reads the checkpoint.
    same = cell(run, K2, K2, "custom_optimizer", "tf_weights")
    assert same["outcome"] == "pass", same["message"]
    assert same["checks"]["weights"] is True and same["checks"]["optimizer"] is True
    rec = cell(run, K2, K3, "control", "tf_weights")
    first = rec["attempts"][0]
    assert first["remedy"] is None and first["outcome"] == "load-error"
    assert "File format not supported" in first["message"]
    assert rec["outcome"] == "pass-with-remedy" and rec["remedy"] == "legacy_keras"


def test_not_applicable_save_paths_quote_the_framework_s_refusal(run):
    # A Keras 3 user who calls model.save("dir") or save_weights("w.h5") gets these messages
    # (https://keras.io/guides/migrating_to_keras_3/); the cell says n/a and quotes them.
    sm = cell(run, K3, K2, "control", "savedmodel")
    assert sm["outcome"] == "not-applicable" and sm["refusal"]["refused"] is True
    assert "Invalid filepath extension for saving" in sm["message"] and "refusal/" not in sm["message"]
    for fmt in ("weights_h5", "tf_weights"):
        rec = cell(run, K3, K3, "custom_layer", fmt)
        assert rec["outcome"] == "not-applicable"
        assert "The filename must end in `.weights.h5`" in rec["refusal"]["message"], fmt


def breadth_cell(breadth, producer, consumer, fixture, fmt):
    return cell(breadth, producer, consumer, fixture, fmt)


def test_keras2_depthwise_conv_hdf5_does_not_load_in_keras3(breadth):
    # keras-team/keras#19151: "Unrecognized keyword arguments passed to DepthwiseConv2D: {'groups': 1}";
    # the legacy tf_keras loads it.
    rec = breadth_cell(breadth, K2, K3, "conv_bn", "h5")
    assert "'groups': 1" in plain(rec)["message"]
    assert rec["outcome"] == "pass-with-remedy" and rec["remedy"] == "legacy_keras"
    assert breadth_cell(breadth, K2, K2, "conv_bn", "h5")["outcome"] == "pass"


def test_mixed_precision_state_and_signatures(breadth):
    # The LossScaleOptimizer of a mixed_float16 model loses its state in a Keras 2.15 .h5 (iterations back
    # to 0), and Keras 3 cannot rebuild the Keras 2 file's dtype policy at all.
    rec = breadth_cell(breadth, K2, K2, "mixed_precision", "h5")
    assert rec["outcome"] == "degraded" and rec["lost"] == ["optimizer_state"]
    assert rec["attempts"][0]["optimizer_detail"]["consumer"]["iterations"] == 0
    k3 = breadth_cell(breadth, K2, K3, "mixed_precision", "h5")
    assert plain(k3)["outcome"] == "load-error" and k3["remedy"] == "legacy_keras"
    # Keras 3 exports the float16 compute dtype as the serving signature's input: float32 data is refused.
    export = breadth_cell(breadth, K3, K3, "mixed_precision", "export")
    assert export["outcome"] == "load-error" and "half tensor" in export["message"]
    assert breadth_cell(breadth, K2, K2, "mixed_precision", "export")["outcome"] == "pass"


def test_float64_policy_round_trips_within_a_keras_family(breadth):
    for env in (K2, K3):
        assert breadth_cell(breadth, env, env, "float64_policy", "keras")["outcome"] == "pass", env
        assert breadth_cell(breadth, env, env, "float64_policy", "export")["outcome"] == "pass", env


def test_functional_hub_model_cannot_be_built_under_keras3(breadth):
    # tensorflow/hub#903: a KerasLayer called on a Keras 3 KerasTensor fails; under Keras 2 it round-trips
    # with custom_objects like the Sequential one.
    saves = [r for r in breadth["records"] if r["producer"] == K3 and r["fixture"] == "hub_functional"
             and r["consumer"] is None]
    assert saves and all(r["outcome"] == "save-error" and "KerasTensor" in r["message"] for r in saves)
    rec = breadth_cell(breadth, K2, K2, "hub_functional", "h5")
    assert rec["outcome"] == "pass-with-remedy" and rec["remedy"] == "custom_objects"


def test_resave_variant_follows_the_upgrade_path(run):
    # custom_layer~tf2.15: tf2.15's file loaded in the next env the way a user would, saved again there,
    # then loaded everywhere. Keras 3 reads a Keras 2 .keras only through tf_keras, so the file it writes
    # is a tf_keras 2.16 archive, which TF 2.15 cannot read back (the silent-corruption pair of the
    # default matrix's findings, here as an error).
    variant = "custom_layer~" + K2
    rec = cell(run, K3, K2, variant, "keras")
    assert rec["resaved"]["origin"] == K2 and rec["resaved"]["loaded_with"] == "custom_objects+legacy_keras"
    assert rec["outcome"] == "load-error", rec["message"]
    assert cell(run, K3, K3, variant, "keras")["outcome"] == "pass-with-remedy"
    # Keras 3 loads the Keras 2 .h5 only with compile=False: its re-saved .h5 has lost the optimizer.
    h5 = cell(run, K3, K3, variant, "h5")
    assert h5["resaved"]["loaded_with"] == "custom_objects+compile_false"
    assert h5["outcome"] == "degraded" and "optimizer_state" in h5["lost"]
    # Weights rebuilt from code and saved again by Keras 3 still restore in both.
    for consumer in (K2, K3):
        assert cell(run, K3, consumer, variant, "weights")["outcome"] == "pass"
    # The origin saves nothing again, and a format Keras 3 cannot write says so.
    assert all(cell(run, K2, c, variant, f)["outcome"] == "not-applicable" for c in (K2, K3) for f in ("h5", "json"))
    assert cell(run, K3, K2, variant, "savedmodel")["refusal"]["refused"] is True
