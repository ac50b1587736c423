"""`tfcompat scan`: finding the user's artifacts (no TensorFlow), and the scan on real envs (e2e)."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from harness.scan import detect, discover

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A, B = "tf2.15", "tf2.21-keras3"


def touch(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def test_artifacts_are_found_by_extension_and_layout_and_the_rest_is_listed_with_why(tmp_path):
    m = tmp_path / "models"
    touch(str(m / "a.h5"))
    touch(str(m / "b.keras"))
    touch(str(m / "c.weights.h5"))
    touch(str(m / "sm" / "saved_model.pb"))
    touch(str(m / "sm" / "keras_metadata.pb"))
    touch(str(m / "sm" / "variables" / "variables.index"))
    touch(str(m / "exp" / "saved_model.pb"))
    touch(str(m / "broken_sm" / "variables" / "variables.index"))
    touch(str(m / "notes.txt"))
    touch(str(m / "deep" / "er" / "d.hdf5"))
    found, skipped = discover([str(m)])
    got = {os.path.relpath(f.path, str(m)): f.format for f in found}
    assert got == {"a.h5": "h5", "b.keras": "keras", "c.weights.h5": "weights", "sm": "savedmodel",
                   "exp": "export", os.path.join("deep", "er", "d.hdf5"): "h5"}
    why = {os.path.relpath(p, str(m)): w for p, w in skipped}
    assert why == {"broken_sm": "a SavedModel dir without saved_model.pb (incomplete copy?)",
                   "notes.txt": "not a model file (.h5, .keras, .weights.h5, a SavedModel or export dir)"}
    names = [f.name for f in found]
    assert len(set(names)) == len(names) and all(n.isidentifier() for n in names)
    # nothing inside a SavedModel dir is listed on its own
    assert not any("variables" in p for p, _ in skipped)


def test_a_path_given_directly_and_one_that_does_not_exist(tmp_path):
    touch(str(tmp_path / "one.keras"))
    found, skipped = discover([str(tmp_path / "one.keras"), str(tmp_path / "nope.h5")])
    assert [(f.format, os.path.basename(f.path)) for f in found] == [("keras", "one.keras")]
    assert skipped == [(str(tmp_path / "nope.h5"), "does not exist")]
    assert detect(str(tmp_path)) == (None, "a folder")


def tfcompat(base, *args):
    return subprocess.run([sys.executable, "-m", "harness", "--matrix", os.path.join(ROOT, "matrix.yaml"),
                           "--state-dir", str(base / "state"), "--reports", str(base / "reports"), *args],
                          cwd=ROOT, capture_output=True, text=True)


def test_scan_with_nothing_to_scan_is_one_line(tmp_path):
    touch(str(tmp_path / "m" / "notes.txt"))
    proc = tfcompat(tmp_path, "scan", str(tmp_path / "m"), "--from", A, "--to", B)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().endswith("scan: no saved model found under %s" % (tmp_path / "m"))
    proc = tfcompat(tmp_path, "scan", str(tmp_path / "m"), "--from", A, "--to", "tf9.9")
    assert proc.returncode == 2 and "--to: 'tf9.9' is not an env of" in proc.stderr


USER_CODE = '''
import tensorflow as tf
try:
    import keras
    if not keras.__version__.startswith("3"):
        keras = tf.keras
except ImportError:
    keras = tf.keras


class ScaleShift(keras.layers.Layer):
    def __init__(self, init_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.init_scale = init_scale

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.scale = self.add_weight(name="scale", shape=(dim,),
                                     initializer=keras.initializers.Constant(self.init_scale))
        self.shift = self.add_weight(name="shift", shape=(dim,), initializer="random_normal")

    def call(self, inputs):
        return inputs * self.scale + self.shift

    def get_config(self):
        config = super().get_config()
        config.update({"init_scale": self.init_scale})
        return config


def build():
    inputs = keras.Input(shape=(4,))
    x = ScaleShift(1.5, name="ss")(inputs)
    x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    model.compile(optimizer="adam", loss="mse")
    return model
'''

MAKE = '''
import os, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import mycode
os.chdir(sys.argv[2])
m = mycode.build()
x = np.random.RandomState(0).normal(size=(32, 4)).astype("float32")
m.fit(x, x[:, :2], epochs=2, verbose=0)
m.save("custom.h5")
m.save("k2_savedmodel", save_format="tf")
m.save("model.keras")
m.save_weights("w.weights.h5")
'''


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """Artifacts made in tf2.15 by user code (plus bad ones), scanned against tf2.21-keras3."""
    base = tmp_path_factory.mktemp("scan")
    (base / "code").mkdir()
    (base / "code" / "mycode.py").write_text(USER_CODE)
    models = base / "models"
    models.mkdir()
    env_python = os.path.join(ROOT, ".tox", A, "bin", "python")
    proc = tfcompat(base, "run", "--only", A, "--fixtures", "control", "--formats", "h5")  # builds the env
    assert proc.returncode == 0, proc.stdout + proc.stderr
    made = subprocess.run([env_python, "-c", MAKE, str(base / "code"), str(models)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    before = {p: os.path.getmtime(p) for p in _files(models)}
    # the bad inputs: a truncated .h5, a .keras zip without its config, a SavedModel dir without its
    # saved_model.pb, a file that is no model
    with open(models / "custom.h5", "rb") as fh:
        (models / "truncated.h5").write_bytes(fh.read()[:2000])
    with zipfile.ZipFile(models / "model.keras") as src, zipfile.ZipFile(models / "nocfg.keras", "w") as dst:
        for item in src.namelist():
            if item != "config.json":
                dst.writestr(item, src.read(item))
    os.makedirs(models / "half_sm" / "variables")
    (models / "half_sm" / "variables" / "variables.index").write_bytes(b"")
    (models / "README.txt").write_text("not a model")
    before.update({p: os.path.getmtime(p) for p in _files(models) if p not in before})
    proc = tfcompat(base, "scan", str(models), "--from", A, "--to", B, "--code", str(base / "code" / "mycode.py"),
                    "--migrate")
    md = (base / "reports" / ("scan-%s-to-%s.md" % (A, B))).read_text()
    after = {p: os.path.getmtime(p) for p in _files(models)}
    scans = sorted(os.listdir(base / "state" / "scans"))
    with open(base / "state" / "scans" / scans[-1] / "results.jsonl") as fh:
        records = [json.loads(line) for line in fh]
    # A's own predictions of the original, for checking the migrated copy independently of the harness
    x = base / "x.npy"
    ref = subprocess.run([env_python, "-c", PREDICT, str(base / "code"), str(models / "custom.h5"), str(x)],
                         capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    return {"proc": proc, "md": md, "before": before, "after": after, "records": records, "base": base,
            "env_python": env_python, "x": x}


PREDICT = '''
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import mycode, keras_compat
'''.replace("import mycode, keras_compat", """import mycode
from mycode import keras
x = np.random.RandomState(7).normal(size=(5, 4)).astype("float32")
model = keras.models.load_model(sys.argv[2], custom_objects={"ScaleShift": mycode.ScaleShift}, compile=False)
np.save(sys.argv[3], x)
np.save(sys.argv[3] + ".want.npy", model.predict(x, verbose=0))
""")


def _files(root):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


def line(scanned, name):
    hits = [x for x in scanned["proc"].stdout.splitlines() if "[%s" % name in x or "/%s]" % name in x]
    assert len(hits) == 1, (name, scanned["proc"].stdout)
    return hits[0]


def rec(scanned, path_end, consumer=B):
    hits = [r for r in scanned["records"] if r["consumer"] == consumer and r["fixture"].endswith(path_end)]
    assert len(hits) == 1, (path_end, [r["fixture"] for r in scanned["records"]])
    return hits[0]


@pytest.mark.e2e
def test_scan_reports_each_artifact_and_exits_1_as_some_cannot_move(scanned):
    proc = scanned["proc"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    # a Keras 2 SavedModel is not a file Keras 3's load_model reads: TFSMLayer serves it
    sm = rec(scanned, "k2_savedmodel")
    assert "serve with savedmodel" in line(scanned, "k2_savedmodel") and sm["remedy"] == "tfsm_layer"
    assert "File format not supported" in sm["attempts"][0]["message"]
    # ... and --migrate made it a Keras 3 file from the weights A read and the user's build()
    assert "ready after migration" in line(scanned, "k2_savedmodel") and "(weights route)" in line(
        scanned, "k2_savedmodel")
    # the custom-layer .h5 loads in Keras 3 with the custom class, giving up its compile state
    h5 = rec(scanned, "custom_h5")
    assert "move with h5 (custom_objects+compile_false)" in line(scanned, "custom.h5")
    assert h5["outcome"] == "degraded" and h5["remedy"].startswith("custom_objects") and "optimizer_state" in h5["lost"]
    # weights plus the model's code cross, and predict what they predicted in A
    assert "ready with changes; move with weights" in line(scanned, "w.weights.h5")
    assert rec(scanned, "w_weights_h5")["outcome"] == "pass"


@pytest.mark.e2e
def test_bad_artifacts_are_one_line_each_and_the_rest_is_scanned(scanned):
    out = scanned["proc"].stdout
    assert "does not load in A" in line(scanned, "truncated.h5")
    assert "does not load in A" in line(scanned, "nocfg.keras")
    assert "skipped %s: a SavedModel dir without saved_model.pb" % (scanned["base"] / "models" / "half_sm") in out
    assert "skipped %s: not a model file" % (scanned["base"] / "models" / "README.txt") in out
    assert "truncated file" in rec(scanned, "truncated_h5", consumer=None)["message"]


@pytest.mark.e2e
def test_the_artifacts_are_only_read_and_the_report_names_what_was_not_tried(scanned):
    assert scanned["after"] == scanned["before"]
    md = scanned["md"]
    assert "needs custom_objects in A already" in md  # the .h5 names ScaleShift: A needs the code too
    assert "not tried without --allow-unsafe" in md
    for s in ("# Upgrade readiness: tf2.15 -> tf2.21-keras3 (your models)", "## Summary", "Skipped:"):
        assert s in md
    # checks ran offline, and in a process without the user's code for the no-remedy attempt
    r = rec(scanned, "custom_h5")
    assert r["network"] == "none (loopback only)"
    assert r["attempts"][0]["remedy"] is None and r["attempts"][0]["fixtures_absent"] is True


@pytest.mark.e2e
def test_migrate_makes_a_keras3_file_that_loads_there_and_predicts_the_same(scanned):
    base = scanned["base"]
    kept = base / "reports" / "migrated" / ("%s-to-%s" % (A, B)) / "m_models_custom_h5"
    assert "ready after migration" in line(scanned, "custom.h5")
    proof = json.loads((kept / "proof.json").read_text())
    assert proof["original"] == str(base / "models" / "custom.h5") and proof["to"] == B
    assert proof["check_in_target"]["outcome"] in ("pass", "pass-with-remedy"), proof
    assert proof["steps"] and "Verified migration" in scanned["md"]
    # independently of the harness: the kept file in Keras 3 predicts what the original did in A
    b_python = os.path.join(ROOT, ".tox", B, "bin", "python")
    check = subprocess.run([b_python, "-c", CHECK_KEPT, str(base / "code"), str(kept / "model.keras"),
                            str(scanned["x"])], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert check.stdout.split()[-2:] == ["keras", "3"] or check.stdout.startswith("max_abs"), check.stdout
    assert float(check.stdout.split()[1]) < 1e-5, check.stdout
    # every route tried is in the report, with its verdict in B
    assert "route `resave`" in scanned["md"] and "route `weights`" in scanned["md"]


CHECK_KEPT = '''
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import mycode
from mycode import keras
model = keras.models.load_model(sys.argv[2], custom_objects={"ScaleShift": mycode.ScaleShift})
x = np.load(sys.argv[3])
want = np.load(sys.argv[3] + ".want.npy")
print("max_abs", float(np.abs(model.predict(x, verbose=0) - want).max()), "keras", keras.__version__[0])
'''


@pytest.mark.e2e
@pytest.mark.browser
def test_the_scan_page_in_headless_chromium(scanned, tmp_path):
    from test_report import run_chromium

    page = scanned["base"] / "reports" / ("scan-%s-to-%s.html" % (A, B))
    dom = run_chromium(tmp_path, "--dump-dom", "file://%s" % page).stdout
    assert "artifacts can move" in dom and "Verified migration" in dom and 'id="skipped"' in dom
    assert 'data-route="weights" data-outcome="pass' in dom
