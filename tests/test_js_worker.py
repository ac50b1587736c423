"""The TF.js worker (harness/worker_js/worker.js) under process.run, as the Python worker is tested:
a crash or hang loses only the item in flight, is retried once alone, and a resumed run redoes
nothing. Real Node, real @tensorflow/tfjs from npm (the node backend's own env), real processes."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from harness import process
from harness.backends.base import Where
from harness.backends.node import NodeBackend
from harness.matrix import EnvSpec

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTROL_JS = os.path.join(ROOT, "fixtures", "control.js")


@pytest.fixture(scope="module")
def node_env(tmp_path_factory):
    """A TF.js 4.22 env made by the node backend (npm into .tfjs/, reused when current)."""
    state = tmp_path_factory.mktemp("jsstate")
    spec = EnvSpec(id="tfjs4.22", python="", tensorflow="", keras="tfjs", kind="tfjs", tfjs="4.22.0",
                   backend={"name": "node"})
    backend = NodeBackend(spec, Where(ROOT, str(state), str(state / "logs"), os.path.join(ROOT, "matrix.yaml")))
    backend.create()
    return backend


def request(node_env, tmp_path, keys, timeout=60.0, env=None):
    items = tuple({"key": k, "fixture": "control", "format": "tfjs_layers", "out_dir": str(tmp_path / "art" / k),
                   "fixture_js": CONTROL_JS} for k in keys)
    return process.WorkerRequest(env_id="tfjs4.22", launcher=node_env.launcher(), phase="save", mode=None,
                                 items=items, journal=str(tmp_path / "j.jsonl"), timeout=timeout,
                                 worker_main=node_env.worker_main(), cwd=str(tmp_path), env=dict(env or {}))


def events(tmp_path):
    with open(tmp_path / "j.jsonl") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_the_js_worker_speaks_the_journal_protocol(node_env, tmp_path):
    out = process.run(request(node_env, tmp_path, ["a", "b"]))
    assert sorted(out.done) == ["a", "b"] and out.failed == {} and out.processes == 1
    evs = events(tmp_path)
    assert [e["event"] for e in evs] == ["ready", "start", "done", "start", "done", "exit"]
    ready = evs[0]
    assert ready["versions"]["tfjs"] == "4.22.0" and ready["versions"]["keras_flavour"] == "tfjs"
    assert ready["phase"] == "save" and ready["worker_version"].startswith("js")
    meta = out.done["a"]
    assert meta["status"] == "saved" and meta["artifact"] == "tfjs_layers/model.json"
    for name in ("x_eval.npy", "outputs.npy", "tfjs_layers/model.json", "meta.json"):
        assert (tmp_path / "art" / "a" / name).exists(), name


def test_a_crash_is_retried_alone_then_recorded_and_the_rest_goes_on(node_env, tmp_path):
    out = process.run(request(node_env, tmp_path, ["a", "crash-b", "c"], env={"TFCOMPAT_WORKER_CRASH": "crash-b"}))
    assert sorted(out.done) == ["a", "c"]
    assert out.failed["crash-b"]["outcome"] == "crash" and "exited with code 7" in out.failed["crash-b"]["message"]
    assert out.processes == 3  # the batch, the retry alone, the rest


def test_a_hang_becomes_a_timeout_and_a_flaky_one_passes_on_retry(node_env, tmp_path):
    env = {"TFCOMPAT_WORKER_PAUSE": "hang-a", "TFCOMPAT_WORKER_PAUSE_S": "30"}
    out = process.run(request(node_env, tmp_path, ["hang-a", "b"], timeout=3.0, env=env))
    assert out.failed["hang-a"]["outcome"] == "timeout" and sorted(out.done) == ["b"]
    flaky = tmp_path / "flaky"
    flaky.mkdir()
    env = dict(env, TFCOMPAT_WORKER_PAUSE_ONCE=str(flaky / "paused"))
    out = process.run(request(node_env, flaky, ["hang-a", "b"], timeout=3.0, env=env))
    assert sorted(out.done) == ["b", "hang-a"] and out.failed == {}
    assert any(e["event"] == "retry" and e["outcome"] == "timeout" for e in events(flaky))


def test_a_resumed_run_redoes_nothing(node_env, tmp_path):
    process.run(request(node_env, tmp_path, ["a", "crash-b"], env={"TFCOMPAT_WORKER_CRASH": "crash-b"}))
    again = process.run(request(node_env, tmp_path, ["a", "crash-b", "c"], env={"TFCOMPAT_WORKER_CRASH": "crash-b"}))
    assert again.processes == 1  # only "c" ran
    assert sorted(again.done) == ["a", "c"] and again.failed["crash-b"]["outcome"] == "crash"


def test_stop_kills_the_js_worker_and_keeps_what_finished(node_env, tmp_path):
    raised = []
    env = {"TFCOMPAT_WORKER_PAUSE": "hang-b", "TFCOMPAT_WORKER_PAUSE_S": "120"}

    def watch():
        try:
            process.run(request(node_env, tmp_path, ["a", "hang-b", "c"], timeout=600.0, env=env))
        except process.Interrupted:
            raised.append(True)

    thread = threading.Thread(target=watch)
    thread.start()
    deadline = time.time() + 120
    while time.time() < deadline and not ((tmp_path / "j.jsonl").exists() and '"hang-b"' in
                                          (tmp_path / "j.jsonl").read_text()):
        time.sleep(0.2)
    pid = next(e["pid"] for e in events(tmp_path) if e["event"] == "ready")
    process.STOP.set()
    try:
        thread.join(30)
    finally:
        process.STOP.clear()
    assert raised and not thread.is_alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    done = [e["key"] for e in events(tmp_path) if e["event"] == "done"]
    assert done == ["a"]  # what finished is kept; --resume goes on from "hang-b"


# A graph model written by hand: y = x @ w, one Const weight (what loadGraphModel reads from the converter).
GRAPH = {
    "format": "graph-model", "generatedBy": "tfcompat tests", "convertedBy": None,
    "modelTopology": {"node": [
        {"name": "x", "op": "Placeholder", "attr": {"dtype": {"type": "DT_FLOAT"},
                                                    "shape": {"shape": {"dim": [{"size": "-1"}, {"size": "4"}]}}}},
        {"name": "w", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}, "value": {"tensor": {
            "dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "4"}, {"size": "2"}]}}}}},
        {"name": "y", "op": "MatMul", "input": ["x", "w"],
         "attr": {"T": {"type": "DT_FLOAT"}, "transpose_a": {"b": False}, "transpose_b": {"b": False}}}],
        "library": {}, "versions": {}},
    "signature": {"inputs": {"x": {"name": "x:0", "dtype": "DT_FLOAT"}}, "outputs": {"y": {"name": "y:0", "dtype": "DT_FLOAT"}}},
    "weightsManifest": [{"paths": ["weights.bin"], "weights": [{"name": "w", "shape": [4, 2], "dtype": "float32"}]}],
}

# Loaded with NODE_OPTIONS=--require before the worker: GraphModel.save writes what `how` makes of its weights.
SAVE_HOOK = """
const tf = require('@tensorflow/tfjs');
const save = tf.GraphModel.prototype.save;
tf.GraphModel.prototype.save = function (handler, config) {
  return save.call(this, {save: async (artifacts) => {
    if (process.env.HOOK === 'throw') throw new Error('the disk said no');
    const data = [].concat(artifacts.weightData).reduce((n, b) => n + b.byteLength, 0);
    return handler.save(Object.assign({}, artifacts, {weightData: new ArrayBuffer(data)}));  // zeros
  }}, config);
};
"""


def graph_check(node_env, tmp_path, how):
    import numpy as np

    art = tmp_path / "art"
    (art / "tfjs_graph").mkdir(parents=True)
    rng = np.random.RandomState(3)
    w = rng.normal(size=(4, 2)).astype("float32")
    x = rng.normal(size=(5, 4)).astype("float32")
    (art / "tfjs_graph" / "model.json").write_text(json.dumps(GRAPH))
    (art / "tfjs_graph" / "weights.bin").write_bytes(w.tobytes())
    np.save(art / "x_eval.npy", x)
    np.save(art / "outputs.npy", x @ w)
    (art / "meta.json").write_text(json.dumps({"status": "saved", "format": "tfjs_graph", "fixture": "control",
                                               "artifact": "tfjs_graph/model.json", "promises": ["serving", "js_save"]}))
    hook = tmp_path / "hook.js"
    hook.write_text(SAVE_HOOK)
    item = {"key": "g", "producer": "p", "fixture": "control", "format": "tfjs_graph", "artifact_dir": str(art),
            "tolerances": {"predictions": {"atol": 1e-5, "rtol": 1e-5}}}
    out = process.run(process.WorkerRequest(
        env_id="tfjs4.22", launcher=node_env.launcher(), phase="check", mode="plain", items=(item,),
        journal=str(tmp_path / "j.jsonl"), timeout=60.0, worker_main=node_env.worker_main(), cwd=str(tmp_path),
        env={"NODE_OPTIONS": "--require " + str(hook), "HOOK": how}))
    (attempt,) = out.done["g"]["attempts"]
    return attempt


def test_a_graph_model_whose_saved_copy_predicts_differently_is_wrong_output(node_env, tmp_path):
    # Failed before js2: the reloaded copy predicting zeros only lost js_save (degraded).
    a = graph_check(node_env, tmp_path, "zeros")
    assert a["outcome"] == "wrong-output" and a["lost"] == [], a
    assert a["checks"] == {"predictions": True, "save": False}
    assert "saved by GraphModel.save and loaded back predicts differently: max |diff|" in a["message"]
    assert "(atol 1e-05, rtol 1e-05)" in a["message"] and a["max_abs_diff"] > 0


def test_a_graph_model_whose_save_fails_loses_js_save(node_env, tmp_path):
    a = graph_check(node_env, tmp_path, "throw")
    assert a["outcome"] == "degraded" and a["lost"] == ["js_save"], a
    assert "GraphModel.save failed: Error: the disk said no" in a["message"]
