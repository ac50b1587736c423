"""TF.js end to end: the real tensorflowjs converter in its own env, @tensorflow/tfjs 3.21 and 4.22 from
npm run by Node, against a Keras 2 (tf2.15) and a Keras 3 (tf2.21-keras3) producer, both directions.

Each verdict asserted here is documented behaviour; the issue or source is cited beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from harness import process
from harness.backends.base import Where
from harness.backends.node import NodeBackend
from harness.matrix import load_matrix
from harness.tfjs import JS_LADDER
from harness.worker.remedies import parts

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K2, K3, JS3, JS4 = "tf2.15", "tf2.21-keras3", "tfjs3.21", "tfjs4.22"
JS = (JS3, JS4)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """profiles/tfjs.yaml on control, custom_layer and `nojs_layer` (custom_layer's module without its
    .js twin), in the Keras and TF.js formats; then a readiness report."""
    base = tmp_path_factory.mktemp("tfjs")
    (base / "fx").mkdir()
    shutil.copy(os.path.join(ROOT, "fixtures", "custom_layer.py"), base / "fx" / "nojs_layer.py")
    with open(os.path.join(ROOT, "profiles", "tfjs.yaml")) as fh:
        text = fh.read()
    head, rest = text.split("\nfixtures:\n", 1)
    fixtures = "".join("  - {name: %s, path: %s}\n" % (name, path) for name, path in (
        ("control", os.path.join(ROOT, "fixtures", "control.py")),
        ("custom_layer", os.path.join(ROOT, "fixtures", "custom_layer.py")),
        ("nojs_layer", str(base / "fx" / "nojs_layer.py"))))
    matrix = base / "tfjs.yaml"
    matrix.write_text(head + "\nfixtures:\n" + fixtures + rest[rest.index("\nformats:"):])
    common = [sys.executable, "-m", "harness", "--matrix", str(matrix), "--state-dir", str(base / "state"),
              "--reports", str(base / "reports")]
    proc = subprocess.run(common + ["run", "--formats", "h5,keras,tfjs_layers,tfjs_graph", "--jobs", "2"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ready = subprocess.run(common + ["readiness", "--from", K2, "--to", JS4], cwd=ROOT, capture_output=True, text=True)
    with open(base / "reports" / "results.jsonl") as fh:
        records = [json.loads(line) for line in fh]
    with open(base / "reports" / "run.json") as fh:
        meta = json.load(fh)
    return {"records": records, "meta": meta, "out": proc.stdout, "reports": base / "reports", "readiness": ready,
            "matrix": load_matrix(str(matrix)), "artifacts": base / "state" / "runs" / meta["run_id"] / "artifacts"}


def cell(run, producer, consumer, fixture, fmt):
    found = [r for r in run["records"] if (r["producer"], r["consumer"], r["fixture"], r["format"])
             == (producer, consumer, fixture, fmt)]
    assert len(found) == 1, (producer, consumer, fixture, fmt)
    return found[0]


def plain(rec):
    return next(a for a in rec["attempts"] if a["remedy"] is None)


def test_the_run_has_every_cell_and_no_harness_defect(run):
    assert run["meta"]["harness_defects"] == []
    assert all(r["outcome"] != "harness-error" for r in run["records"])
    assert run["meta"]["converter"]["id"] == "tfjs-converter"
    assert "tensorflowjs==4.22.0" in run["meta"]["converter"]["requirements"]
    assert "tfjs-converter     converted" in run["out"]
    # every TF.js cell's versions are the env's own pinned package, read by its worker
    for env, version in ((JS3, "3.21.0"), (JS4, "4.22.0")):
        rec = cell(run, K2, env, "control", "tfjs_layers")
        assert rec["versions"]["consumer"]["tfjs"] == version and rec["backends"]["consumer"] == "node"


@pytest.mark.parametrize("js", JS)
def test_a_keras_2_model_loads_in_tfjs_and_predicts_the_same(run, js):
    # tensorflowjs_converter --input_format keras, then tf.loadLayersModel (the TF.js conversion guide)
    for fmt in ("tfjs_layers", "tfjs_graph"):
        rec = cell(run, K2, js, "control", fmt)
        assert rec["outcome"] == "pass" and rec["remedy"] is None, rec["message"]
        assert rec["max_abs_diff"] <= 1e-5 and rec["checks"]["predictions"] is True
        assert plain(rec)["fixtures_absent"] is True
    converted = cell(run, K2, js, "control", "tfjs_layers")["converted"]
    assert converted["from"] == "h5" and converted["command"].startswith(
        "tensorflowjs_converter --input_format keras --output_format tfjs_layers_model model.h5")


@pytest.mark.parametrize("js", JS)
def test_a_graph_model_is_saved_again_by_tfjs(run, js):
    # GraphModel.save re-emits the artifacts it loaded (tensorflow/tfjs#2676): saved, reloaded, same output
    for producer in (K2, K3):
        rec = cell(run, producer, js, "control", "tfjs_graph")
        assert rec["outcome"] == "pass" and rec["checks"]["save"] is True
        assert "js_save" in rec["promises"]


@pytest.mark.parametrize("js", JS)
def test_a_custom_layer_needs_its_javascript_twin(run, js):
    # "Unknown layer ... needs to be ported to TensorFlow.js ... registered with tf.serialization.registerClass()"
    rec = cell(run, K2, js, "custom_layer", "tfjs_layers")
    assert rec["outcome"] == "pass-with-remedy" and rec["remedy"] == "js_register_class"
    assert "Unknown layer: tfcompat>ScaleShift" in plain(rec)["message"]
    assert rec["checks"]["classes"] is True
    # the same module without fixtures/<name>.js: nothing to register, the real failure stays
    bare = cell(run, K2, js, "nojs_layer", "tfjs_layers")
    assert bare["outcome"] == "load-error" and [a["remedy"] for a in bare["attempts"]] == [None]
    assert "Unknown layer: tfcompat>ScaleShift" in bare["message"]


@pytest.mark.parametrize("js", JS)
def test_a_keras_3_layers_model_does_not_load_in_tfjs(run, js):
    # tensorflow/tfjs#8494 (and #8489): a Keras 3 model converted to a layers model fails with
    # "An InputLayer should be passed either a `batchInputShape` or an `inputShape`"; its graph model works.
    rec = cell(run, K3, js, "control", "tfjs_layers")
    assert rec["outcome"] == "load-error"
    assert "An InputLayer should be passed either a `batchInputShape` or an `inputShape`" in rec["message"]
    assert rec["converted"]["from"] == "keras" and "--input_format keras_keras" in rec["converted"]["command"]
    assert cell(run, K3, js, "custom_layer", "tfjs_graph")["outcome"] == "pass"


@pytest.mark.parametrize("js", JS)
def test_a_model_trained_in_tfjs_loads_in_python(run, js):
    # tensorflowjs_converter --input_format tfjs_layers_model --output_format keras: topology and weights
    for consumer in (K2, K3):
        rec = cell(run, js, consumer, "control", "h5")
        assert rec["outcome"] == "pass" and rec["max_abs_diff"] <= 1e-5, rec["message"]
        assert rec["converted"]["from"] == "tfjs_layers" and rec["promises"] == ["architecture", "weights"]
    for other in JS:
        assert cell(run, js, other, "control", "tfjs_layers")["outcome"] == "pass"
    # the converter's keras_keras output finds no module for the Functional class: a real converter failure
    failed = cell(run, js, None, "control", "keras")
    assert failed["outcome"] == "save-error"
    assert failed["message"].startswith("tensorflowjs_converter --input_format tfjs_layers_model --output_format "
                                        "keras_keras")


def test_cells_across_the_line_are_declared_not_applicable(run):
    assert "TF.js loads only" in cell(run, K2, JS4, "control", "h5")["reason"]
    assert "loaded by TF.js" in cell(run, K2, K3, "control", "tfjs_layers")["reason"]
    assert cell(run, JS4, JS3, "control", "h5")["outcome"] == "not-applicable"


def test_the_js_remedies_are_the_declared_ones(run):
    for rec in run["records"]:
        if rec["consumer"] in JS and rec["attempts"]:
            for a in rec["attempts"]:
                assert not a["remedy"] or set(parts(a["remedy"])) <= set(JS_LADDER[rec["format"]])


def test_the_grid_and_the_readiness_report_show_the_tfjs_envs(run):
    page = (run["reports"] / "index.html").read_text()
    for env in (JS3, JS4):
        assert env in page
    assert "TF.js 4.22.0" in page
    assert 'Converter env <span class="mono">tfjs-converter</span>' in page
    assert run["readiness"].returncode in (0, 1), run["readiness"].stdout + run["readiness"].stderr
    assert "control: ready; move with tfjs_layers" in run["readiness"].stdout
    md = (run["reports"] / ("readiness-%s-to-%s.md" % (K2, JS4))).read_text()
    assert "const model = await tf.loadLayersModel('tfjs_layers/model.json');" in md
    assert "tf.serialization.registerClass" in md


def check_in_js(run, tmp_path, js, key, fixture, fmt, timeout, env, **extra):
    """One remedies-mode check of the run's tf2.15 artifact by the real JS worker of `js`, under
    process.run: (outcome, journal path)."""
    state = tmp_path / "state"
    node = NodeBackend(run["matrix"].env(js), Where(ROOT, str(state), str(state / "logs"), run["matrix"].path))
    node.create()
    item = {"key": key, "producer": K2, "fixture": fixture, "format": fmt,
            "artifact_dir": str(run["artifacts"] / K2 / fixture / fmt),
            "tolerances": {"predictions": {"atol": 1e-5, "rtol": 1e-5}}, **extra}
    journal = str(tmp_path / "j.jsonl")
    out = process.run(process.WorkerRequest(
        env_id=js, launcher=node.launcher(), phase="check", mode="remedies", items=(item,), journal=journal,
        timeout=timeout, worker_main=node.worker_main(), cwd=str(tmp_path), env=env))
    return out, journal


def test_the_wrap_remedy_saves_a_graph_model_as_a_layers_model(run, tmp_path):
    # the remedy for a graph model whose save() fails, run for real even though 4.22's save works
    out, _ = check_in_js(run, tmp_path, JS4, "wrap", "control", "tfjs_graph", 120.0,
                         {"TFCOMPAT_WORKER_JS_WRAP": "always"})
    (attempt,) = out.done["wrap"]["attempts"]
    assert attempt["remedy"] == "wrap_tf_model" and attempt["outcome"] == "pass", attempt
    assert attempt["checks"]["save"] is True


def test_a_hung_js_rung_is_one_timed_out_attempt_at_that_rung(run, tmp_path):
    # the JS worker journals each rung before it runs, as the Python worker does: a hang names its rung
    out, journal = check_in_js(run, tmp_path, JS3, "hang", "custom_layer", "tfjs_layers", 3.0,
                               {"TFCOMPAT_WORKER_PAUSE": "hang|rung:js_register_class", "TFCOMPAT_WORKER_PAUSE_S": "60"},
                               fixture_js=os.path.join(ROOT, "fixtures", "custom_layer.js"))
    assert out.failed["hang"]["outcome"] == "timeout" and out.processes == 2  # retried once, alone
    j = process.read_journal(journal)
    assert j.rung["hang"] == "js_register_class"
    assert [r["outcome"] for r in j.retried["hang"]] == ["timeout"] and j.retried["hang"][0]["remedy"] == \
        "js_register_class"
