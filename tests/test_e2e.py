"""End to end on the real thing: tox/uv envs, real TensorFlow, one Keras 2 and one Keras 3 env.

Each verdict asserted here is documented public behaviour; the issue or doc is cited beside it.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from harness.records import FIELDS

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K2, K3 = "tf2.15", "tf2.16-keras3"


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
    return {"records": records, "meta": meta, "reports": base / "reports", "out": proc.stdout}


def cell(run, producer, consumer, fixture, fmt):
    found = [r for r in run["records"] if (r["producer"], r["consumer"], r["fixture"], r["format"])
             == (producer, consumer, fixture, fmt)]
    assert len(found) == 1, (producer, consumer, fixture, fmt)
    return found[0]


def plain(rec):
    return next(a for a in rec["attempts"] if a["remedy"] is None)


def test_every_cell_has_one_record_with_the_stable_keys(run):
    recs = run["records"]
    for rec in recs:
        assert set(FIELDS) <= set(rec), set(FIELDS) - set(rec)
        assert rec["schema"] == 1
    # 4 fixtures x 8 formats x 2 producers; each artifact either a save-error row or 2 consumer rows
    artifacts = {(r["producer"], r["fixture"], r["format"]) for r in recs}
    assert len(artifacts) == 2 * 4 * 8
    versions = cell(run, K2, K3, "control", "h5")["versions"]
    assert versions["producer"]["tensorflow"] == "2.15.1"
    assert versions["consumer"]["keras"] == "3.3.3"
    assert "h5py" in versions["consumer"]["packages"] and "protobuf" in versions["producer"]["packages"]


def test_tf_imports_are_bounded_per_env_and_phase(run):
    # one process per phase: save, no-remedy checks, remedy checks; whatever the number of checks
    assert run["meta"]["tf_imports"] == {K2: {"save": 1, "plain": 1, "remedies": 1},
                                         K3: {"save": 1, "plain": 1, "remedies": 1}}


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
            assert rec["tolerance"] == {"atol": 1e-5, "rtol": 1e-5}


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
                readies = [json.loads(l) for l in fh if '"ready"' in l]
            assert readies and all(r["net_interfaces"] == ["lo"] for r in readies)
    assert run["meta"]["check_network"].startswith("off")
