"""Readiness on real envs: `tfcompat readiness --from tf2.15 --to tf2.21-keras3` over a real run of the
two default-matrix envs, asserting documented Keras 2 -> 3 facts."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A, B = "tf2.15", "tf2.21-keras3"


def tfcompat(base, *args):
    return subprocess.run([sys.executable, "-m", "harness", "--matrix", os.path.join(ROOT, "matrix.yaml"),
                           "--state-dir", str(base / "state"), "--reports", str(base / "reports"), *args],
                          cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def ready(tmp_path_factory):
    from harness import readiness, results

    base = tmp_path_factory.mktemp("readiness")
    proc = tfcompat(base, "run", "--only", "%s,%s" % (A, B), "--fixtures", "control,custom_layer",
                    "--formats", "h5,keras,savedmodel,export,weights,tf_savedmodel")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = tfcompat(base, "readiness", "--from", A, "--to", B)
    records = list(results.read(str(base / "reports" / "results.jsonl")))
    r = readiness.build(records, A, B, ["control", "custom_layer"],
                        ["h5", "keras", "savedmodel", "export", "weights", "tf_savedmodel"], [A, B])
    return {"proc": proc, "r": r, "md": (base / "reports" / ("readiness-%s-to-%s.md" % (A, B))).read_text(),
            "html": base / "reports" / ("readiness-%s-to-%s.html" % (A, B))}


def status(r, fixture, fmt):
    return next(c for c in r.cells if (c.fixture, c.format) == (fixture, fmt))


def test_a_keras2_savedmodel_loads_in_keras3_only_through_the_legacy_loader(ready):
    # https://keras.io/guides/migrating_to_keras_3/ : load_model() reads only .keras and .h5 files;
    # a TF SavedModel needs keras.layers.TFSMLayer (inference) or the legacy tf_keras.
    for fixture in ("control", "custom_layer"):
        c = status(ready["r"], fixture, "savedmodel")
        assert c.status in ("legacy-only", "serving-only"), c
        assert "File format not supported" in c.error
        assert c.remedy in ("legacy_keras", "custom_objects+legacy_keras", "tfsm_layer")


def test_a_keras2_dot_keras_file_does_not_cross_to_keras3(ready):
    # keras-team/keras#18528-like: a Keras 2 .keras names keras.src.engine.functional, which Keras 3 lacks
    c = status(ready["r"], "control", "keras")
    assert c.status not in ("ready", "ready-with-remedy"), c
    assert c.round_trip == "pass"  # a model re-saved as .keras in Keras 3 loads there


def test_serving_formats_cross(ready):
    for fixture in ("control", "custom_layer"):
        for fmt in ("export", "tf_savedmodel"):
            assert status(ready["r"], fixture, fmt).status == "ready", (fixture, fmt)


def test_both_kinds_move_with_their_weights_and_the_cli_says_so(ready):
    proc, r = ready["proc"], ready["r"]
    assert proc.returncode == 0, proc.stdout + proc.stderr  # every kind can move: exit 0
    for fixture in ("control", "custom_layer"):
        f = next(x for x in r.fixtures if x.name == fixture)
        assert f.verdict == "ready-with-changes" and f.move_with.format == "weights", f
        assert "tfcompat:   %s: ready with changes; move with weights" % fixture in proc.stdout
    md = ready["md"]
    for s in ("# Upgrade readiness: tf2.15 -> tf2.21-keras3", "## Summary", "## control", "## custom_layer",
              'model.save_weights("model.weights.h5")', "loads only through tf_keras", "## How to read this"):
        assert s in md, s
    assert ready["html"].exists()
