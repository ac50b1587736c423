"""Upgrade readiness from the grid (no TensorFlow): records assembled from synthetic journals, as the
engine writes them; the report files; the CLI; the page in headless Chromium."""

import json
import os
import subprocess
import sys

import pytest
from synth import STUB_FIXTURE, SynthRun, att

from harness import readiness, readiness_report
from harness.readiness import classify, load_code

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A, B, C = "old", "new", "mid"
FORMATS = ("h5", "keras", "savedmodel", "export", "weights", "checkpoint")
MSG = "Unknown layer: 'ScaleShift' (keras-team/keras#18468)"


def code(kind):
    return dict(loader=kind)


def synth_run(tmp_path) -> SynthRun:
    """Three fixture kinds moving from A to B (and a C the grid can route through):
    - custom_layer: h5 needs custom_objects and round-trips; checkpoint passes bare (a weaker format);
    - keras2_only: every whole-model format loads only through tf_keras or TFSMLayer; export serves;
    - stuck: nothing loads A->B; A->C h5 passes and a model re-saved in C crosses C->B as weights."""
    r = SynthRun(tmp_path, [A, B, C], fixtures=("custom_layer", "keras2_only", "stuck"), formats=FORMATS)
    for env in (A, B, C):
        for fx in ("custom_layer", "keras2_only", "stuck"):
            for fmt in FORMATS:
                r.saved(env, fx, fmt)
    plain_fail = att(None, "load-error", message=MSG)
    # custom_layer
    r.checked(A, B, "custom_layer", "h5", plain=[plain_fail],
              remedies=[att("custom_objects", "pass"), att("custom_objects+compile_false", "degraded",
                                                             lost=["compile", "optimizer_state"])])
    r.checked(B, B, "custom_layer", "h5", plain=[plain_fail], remedies=[att("custom_objects", "pass")])
    r.checked(A, B, "custom_layer", "checkpoint", remedies=[att(None, "pass", loader="code")])
    r.checked(B, B, "custom_layer", "checkpoint", remedies=[att(None, "pass", loader="code")])
    r.checked(A, B, "custom_layer", "keras", plain=[att(None, "wrong-output")],
              remedies=[att("custom_objects", "pass")])
    # keras2_only
    for fmt in ("h5", "keras"):
        r.checked(A, B, "keras2_only", fmt, plain=[plain_fail],
                  remedies=[att("compile_false", "load-error"), att("legacy_keras", "pass")])
    r.checked(A, B, "keras2_only", "savedmodel", plain=[plain_fail],
              remedies=[att("legacy_keras", "pass"),
                        att("tfsm_layer", "degraded", lost=["architecture"], loader="tfsm")])
    r.checked(A, B, "keras2_only", "export", plain=[att(None, "pass", loader="serving")])
    r.checked(B, B, "keras2_only", "export", plain=[att(None, "pass", loader="serving")])
    # stuck: A->B fails; A->C h5 passes and round-trips in C; C->B weights passes and round-trips in B
    for fmt in FORMATS:
        r.checked(A, B, "stuck", fmt, plain=[plain_fail], remedies=[att("compile_false", "load-error")])
    r.checked(A, C, "stuck", "h5", plain=[att(None, "pass")])
    r.checked(C, C, "stuck", "h5", plain=[att(None, "pass")])
    r.checked(C, B, "stuck", "weights", remedies=[att(None, "pass", loader="code")])
    r.checked(B, B, "stuck", "weights", remedies=[att(None, "pass", loader="code")])
    return r


@pytest.fixture()
def recs(tmp_path):
    return synth_run(tmp_path).write_results()


@pytest.fixture()
def ready(recs):
    return readiness.build(recs, A, B, ["custom_layer", "keras2_only", "stuck"], list(FORMATS), [A, B, C], "R1")


def cell(r, fx, fmt):
    return next(c for c in r.cells if (c.fixture, c.format) == (fx, fmt))


def fixture(r, name):
    return next(f for f in r.fixtures if f.name == name)


def test_each_cell_is_classed_from_its_attempts(ready):
    assert cell(ready, "custom_layer", "h5").status == "ready-with-remedy"
    assert cell(ready, "custom_layer", "h5").remedy == "custom_objects"
    assert cell(ready, "custom_layer", "checkpoint").status == "ready"
    # a wrong rung is the cell's outcome (a user stops at the first rung that loads): never ready
    assert cell(ready, "custom_layer", "keras").status == "wrong-output"
    # the legacy Keras and the inference-only loaders are never "ready"
    assert cell(ready, "keras2_only", "h5").status == "legacy-only"
    sm = cell(ready, "keras2_only", "savedmodel")
    assert sm.status == "serving-only" and sm.remedy == "tfsm_layer" and sm.also == ["legacy_keras"]
    assert cell(ready, "stuck", "h5").status == "breaks"
    assert cell(ready, "stuck", "h5").error == "ValueError: " + MSG
    assert cell(ready, "stuck", "h5").references == ["keras-team/keras#18468"]
    assert cell(ready, "custom_layer", "h5").round_trip == "pass-with-remedy"
    # a cell no worker checked is a harness defect in the grid: no verdict here either
    assert cell(ready, "custom_layer", "savedmodel").status == "unknown"


def test_classify_the_outcomes_that_are_not_verdicts():
    assert classify(None)[0] == "missing"
    assert classify({"outcome": "save-error"})[0] == "cannot-save"
    assert classify({"outcome": "not-applicable"})[0] == "not-applicable"
    assert classify({"outcome": "env-error"})[0] == "unknown"
    assert classify({"outcome": "harness-error", "attempts": [att(None, "pass")]})[0] == "unknown"
    assert classify({"outcome": "degraded", "attempts": [att("compile_false", "degraded")]})[0] == "loses-state"


def test_move_with_prefers_the_whole_model_that_round_trips(ready):
    f = fixture(ready, "custom_layer")
    # h5 with custom_objects keeps the whole model: it beats the bare checkpoint (weights and optimizer)
    assert f.verdict == "ready-with-changes" and f.move_with.format == "h5"
    assert f.move_with.remedy == "custom_objects" and f.avoid == ["keras"]


def test_keras2_only_is_serving_only_never_ready(ready):
    f = fixture(ready, "keras2_only")
    assert f.verdict == "serving-only" and f.move_with is None and f.serve_with.format == "export"
    assert ready.exit_code == 1


def test_nothing_loads_directly_but_the_grid_proves_a_path_through_another_env(ready):
    f = fixture(ready, "stuck")
    assert f.verdict == "via-intermediate" and f.via["env"] == C
    assert (f.via["first"].format, f.via["then"].format) == ("h5", "weights")


def test_missing_cells_are_listed(recs):
    kept = [r for r in recs if (r["producer"], r["consumer"], r["fixture"]) != (B, B, "stuck")]
    r = readiness.build(kept, A, B, ["custom_layer", "keras2_only", "stuck"], list(FORMATS), [A, B, C])
    assert sorted(r.missing) == [(B, B, "stuck", fmt) for fmt in sorted(FORMATS)]
    assert readiness.build(recs, A, B, ["custom_layer"], list(FORMATS), [A, B, C]).missing == []
    md = readiness_report.markdown(r, "tfcompat run --only old,new")
    assert "**6 cell(s) are missing** from the run" in md and "tfcompat run --only old,new" in md


def test_the_load_code_users_paste():
    assert load_code("h5", None, "model") == 'model = keras.models.load_model("model.h5")'
    co_nc = load_code("keras", "custom_objects+compile_false", "model")
    assert 'keras.models.load_model("model.keras", custom_objects={...}, compile=False)' in co_nc
    assert "model.compile(...)" in co_nc
    legacy = load_code("savedmodel", "legacy_keras", "model")
    assert legacy.startswith("import tf_keras") and 'tf_keras.models.load_model("savedmodel")' in legacy
    assert "model.load_weights(\"savedmodel\")" in load_code("savedmodel", "reload_weights", "model")
    assert "TFSMLayer(\"savedmodel\"" in load_code("savedmodel", "tfsm_layer", "tfsm")
    assert "tf.saved_model.load(\"export\")" in load_code("export", None, "serving")
    assert "model.load_weights(\"model.weights.h5\")" in load_code("weights", None, "code")
    assert "tf.train.Checkpoint(model=model" in load_code("checkpoint", None, "code")
    assert 'safe_mode=False' in load_code("keras", "safe_mode_false", "model")


def test_markdown_and_html_hold_the_sections(ready, tmp_path):
    md_path, html_path = readiness_report.write(ready, str(tmp_path / "reports"), "tfcompat run --only old,new")
    assert md_path.endswith("readiness-old-to-new.md") and html_path.endswith("readiness-old-to-new.html")
    md = open(md_path).read()
    for s in ("# Upgrade readiness: old -> new", "## Summary", "## custom_layer", "## keras2_only", "## stuck",
              "## How to read this", "loads only through tf_keras",
              'model = keras.models.load_model("model.h5", custom_objects={...})', "Through `mid`",
              "keras-team/keras#18468", "| `keras` | WRONG OUTPUT"):
        assert s in md, s
    html = open(html_path).read()
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    assert 'data-fixture="keras2_only" data-verdict="serving-only"' in html
    assert readiness_report.lines(ready)[0] == "custom_layer: ready with changes; move with h5 (custom_objects); " \
                                               "WRONG OUTPUT in keras"


def tfcompat(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "harness", "--matrix", str(tmp_path / "matrix.yaml"),
                           "--state-dir", str(tmp_path / "state"), "--reports", str(tmp_path / "reports"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture()
def stored(tmp_path):
    """The synthetic run stored as `state/runs/R1`, with a matrix naming its envs."""
    (tmp_path / "fixtures").mkdir()
    for fx in ("custom_layer", "keras2_only", "stuck"):
        (tmp_path / "fixtures" / (fx + ".py")).write_text(STUB_FIXTURE)
    (tmp_path / "matrix.yaml").write_text("version: 1\nenvironments:\n" + "".join(
        '  - {id: %s, python: "3.11", tensorflow: "2.15.1", keras: bundled}\n' % e for e in (A, B, C, "later"))
        + "fixtures: [custom_layer, keras2_only, stuck]\nformats: [%s]\n" % ", ".join(FORMATS))
    r = synth_run(tmp_path / "state" / "runs")
    r.write_results()
    os.rename(tmp_path / "state" / "runs" / "run", tmp_path / "state" / "runs" / "R1")
    (tmp_path / "state" / "runs" / "R1" / "run.json").write_text(json.dumps({
        "run_id": "R1", "selection": {"envs": [A, B, C], "fixtures": ["custom_layer", "keras2_only", "stuck"],
                                      "formats": list(FORMATS)}}))
    return tmp_path


def test_cli_prints_a_line_per_fixture_kind_and_exits_1_when_one_cannot_move(stored):
    proc = tfcompat(stored, "readiness", "--from", A, "--to", B)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "tfcompat:   custom_layer: ready with changes; move with h5 (custom_objects)" in out
    assert "tfcompat:   keras2_only: ready for serving only; serve with export" in out
    assert "tfcompat:   stuck: ready through an intermediate env; via mid: h5 there, then weights" in out
    assert (stored / "reports" / "readiness-old-to-new.html").exists()


def test_cli_bad_input_is_one_line(stored):
    proc = tfcompat(stored, "readiness", "--from", "nosuch", "--to", B)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--from: 'nosuch' is not an env of" in proc.stderr and "choose from: old, new, mid, later" in proc.stderr
    proc = tfcompat(stored, "readiness", "--from", A, "--to", B, "--run", "R9")
    assert proc.returncode == 2 and "readiness --run: no run 'R9' under" in proc.stderr
    # a run that holds no A->B cell: nothing to report, and the command that would make them
    proc = tfcompat(stored, "readiness", "--from", B, "--to", "later")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "holds no new -> later cell; run them first: tfcompat run --only new,later" in proc.stderr


@pytest.mark.browser
def test_the_readiness_page_in_headless_chromium(ready, tmp_path):
    from test_report import run_chromium

    _, html_path = readiness_report.write(ready, str(tmp_path / "reports"), "tfcompat run --only old,new")
    dom = run_chromium(tmp_path, "--dump-dom", "file://" + html_path).stdout
    assert 'id="ready-count">2 of 3</b>' in dom and 'id="exit-code">1<' in dom
    assert 'data-verdict="via-intermediate"' in dom and "tf_keras.models.load_model" in dom
    shot = tmp_path / "readiness.png"
    run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1300,1600", "file://" + html_path)
    assert shot.stat().st_size > 20_000


def test_a_verified_migration_is_shown_with_its_proof_and_counts_as_moving(ready):
    f = fixture(ready, "keras2_only")
    ready.labels = {"custom_layer": "/m/a.h5", "keras2_only": "/m/sm", "stuck": "/m/b.h5"}
    ready.migrations = {"keras2_only": [
        {"route": "resave", "steps": ["loaded /m/sm"], "notes": [], "outcome": "load-error", "remedy": None,
         "lost": [], "max_abs_diff": None, "message": "File format not supported", "kept": None},
        {"route": "weights", "steps": ["weights saved in A loaded into build()", "saved as /x/model.keras"],
         "notes": ["the optimizer state A had is not carried over"], "outcome": "pass", "remedy": None,
         "lost": [], "max_abs_diff": 0.0, "message": None, "kept": "/r/migrated/keras2_only/model.keras"}]}
    f.verdict = "migrated"
    md = readiness_report.markdown(ready)
    assert "route `resave`: load-error" in md and "File format not supported" in md
    assert "**kept**: `/r/migrated/keras2_only/model.keras`" in md
    assert "keras2_only: ready after migration; serve with export; migrated (weights route): " \
           "/r/migrated/keras2_only/model.keras" in readiness_report.lines(ready)
    assert "| artifact | verdict |" in md and "- `keras2_only`: `/m/sm`" in md
    assert ready.exit_code == 0  # every artifact can move now: one ready with changes, one via C, one migrated
