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
    # every artifact can move now: one ready with changes, one via C, one migrated...
    assert ready.can_move == len(ready.fixtures)
    # ...but custom_layer's keras file loads wrong in B, and that fails the exit code whatever else moves
    assert ready.exit_code == 1
    ready.fixtures[0].avoid = []
    assert ready.exit_code == 0


# ---- B's own round trip, re-save variants, wrong output (one stored run per case) -------------

FAIL = att(None, "load-error", message=MSG)
WRONG_MSG = ("loaded without error, but predictions differ from the producer's: max |diff| 0.5, max rel diff 1 "
             "(atol 1e-05, rtol 1e-05)")


def wrong(remedy=None):
    """A wrong-output attempt as check.py records it."""
    return att(remedy, "wrong-output", message=WRONG_MSG, error_type=None, max_abs_diff=0.5, max_rel_diff=1.0)


def own_trip_run(tmp_path) -> SynthRun:
    """`control` crosses A->B in B's own Keras as h5 (custom_objects) and as keras (bare), but B's own
    round trip loads its h5 only through tf_keras and its keras only through TFSMLayer."""
    r = SynthRun(tmp_path, [A, B], fixtures=("control",), formats=("h5", "keras"))
    for env in (A, B):
        for fmt in ("h5", "keras"):
            r.saved(env, "control", fmt)
    r.checked(A, B, "control", "h5", plain=[FAIL], remedies=[att("custom_objects", "pass")])
    r.checked(B, B, "control", "h5", plain=[FAIL], remedies=[att("legacy_keras", "pass")])
    r.checked(A, B, "control", "keras", plain=[att(None, "pass")])
    r.checked(B, B, "control", "keras", plain=[FAIL], remedies=[att("tfsm_layer", "pass", loader="tfsm")])
    return r


VARIANT = "custom_layer~" + A


def resave_run(tmp_path, keras_resaved="wrong-output", h5_resaved="pass") -> SynthRun:
    """`custom_layer` crosses A->B and round-trips in B as keras (bare) and as h5 (custom_objects); its
    re-save variant (A's file loaded in B, saved by B, loaded in B) gives `keras_resaved` and `h5_resaved`."""
    r = SynthRun(tmp_path, [A, B], fixtures=("custom_layer", VARIANT), formats=("h5", "keras"))
    for env in (A, B):
        for fmt in ("h5", "keras"):
            r.saved(env, "custom_layer", fmt)
    r.saved(B, VARIANT, "keras", origin=A, loaded_with=None, tried=[])
    if h5_resaved == "save-error":
        r.save_error(B, VARIANT, "h5", "old's artifact does not load here, so it cannot be saved again: " + MSG,
                     error_type="ValueError", origin=A, loaded_with=None, tried=[])
    else:
        r.saved(B, VARIANT, "h5", origin=A, loaded_with="custom_objects", tried=[])
    r.checked(A, B, "custom_layer", "keras", plain=[att(None, "pass")])
    r.checked(B, B, "custom_layer", "keras", plain=[att(None, "pass")])
    r.checked(B, B, VARIANT, "keras", plain=[wrong() if keras_resaved == "wrong-output" else att(None, keras_resaved)])
    for p in (A, B):
        r.checked(p, B, "custom_layer", "h5", plain=[FAIL], remedies=[att("custom_objects", "pass")])
    r.checked(B, B, VARIANT, "h5", plain=[FAIL], remedies=[att("custom_objects", h5_resaved)])
    return r


def wrong_h5_run(tmp_path) -> SynthRun:
    """`untracked`: keras crosses and round-trips with no change; A's h5 loads in B and predicts wrong."""
    r = SynthRun(tmp_path, [A, B], fixtures=("untracked",), formats=("h5", "keras"))
    for env in (A, B):
        for fmt in ("h5", "keras"):
            r.saved(env, "untracked", fmt)
    r.checked(A, B, "untracked", "h5", plain=[wrong()])
    for p, fmt in ((B, "h5"), (A, "keras"), (B, "keras")):
        r.checked(p, B, "untracked", fmt, plain=[att(None, "pass")])
    return r


def build_of(r: SynthRun, kinds) -> readiness.Readiness:
    return readiness.build(r.write_results(), A, B, list(kinds), ["h5", "keras"], [A, B], "R1")


def store(tmp_path, make, kinds, resave=()) -> str:
    """`make`'s run stored as `state/runs/R1` with a matrix naming its envs; returns the state dir."""
    (tmp_path / "fixtures").mkdir()
    for fx in kinds:
        (tmp_path / "fixtures" / (fx + ".py")).write_text(STUB_FIXTURE)
    fixtures = ", ".join("{name: %s, resave: [%s]}" % (fx, A) if fx in resave else fx for fx in kinds)
    (tmp_path / "matrix.yaml").write_text("version: 1\nenvironments:\n" + "".join(
        '  - {id: %s, python: "3.11", tensorflow: "2.15.1", keras: bundled}\n' % e for e in (A, B))
        + "fixtures: [%s]\nformats: [h5, keras]\n" % fixtures)
    r = make(tmp_path / "state" / "runs")
    r.write_results()
    os.rename(tmp_path / "state" / "runs" / "run", tmp_path / "state" / "runs" / "R1")
    (tmp_path / "state" / "runs" / "R1" / "run.json").write_text(json.dumps({
        "run_id": "R1", "selection": {"envs": [A, B], "fixtures": list(r.sel.fixtures), "formats": ["h5", "keras"]}}))
    return str(tmp_path / "state")


def readiness_cli(tmp_path, capsys) -> tuple[int, str, str]:
    from harness import cli

    code = cli.main(["--matrix", str(tmp_path / "matrix.yaml"), "--state-dir", str(tmp_path / "state"),
                     "--reports", str(tmp_path / "reports"), "readiness", "--from", A, "--to", B, "--run", "R1"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_ready_needs_b_own_keras_to_load_b_own_file(tmp_path):
    """Item 12: a round trip in B that passes only through tf_keras or TFSMLayer is not one in B's Keras."""
    r = build_of(own_trip_run(tmp_path), ["control"])
    h5, keras = cell(r, "control", "h5"), cell(r, "control", "keras")
    assert (h5.status, h5.round_trip, h5.round_trip_status) == ("ready-with-remedy", "pass-with-remedy", "legacy-only")
    assert (keras.status, keras.round_trip_status) == ("ready", "serving-only")
    assert not h5.movable and not keras.movable
    f = fixture(r, "control")
    assert f.move_with is None and f.verdict not in readiness.CAN_MOVE and r.exit_code == 1
    md = readiness_report.markdown(r)
    assert "| `h5` | ready with a remedy |" in md and "| loads only through tf_keras |" in md
    assert "| serving only |" in md


def test_cli_exit_1_when_b_own_round_trip_needs_tf_keras(tmp_path, capsys):
    store(tmp_path, own_trip_run, ["control"])
    code, out, _ = readiness_cli(tmp_path, capsys)
    assert code == 1, out
    assert "tfcompat:   control: ready for serving only; serve with keras" in out


def test_a_wrong_output_re_save_variant_is_wrong_output_for_the_move(tmp_path):
    """Item 13: A's file loaded in B, saved again by B, loads wrong in B: do not move with that format."""
    r = build_of(resave_run(tmp_path), ["custom_layer"])
    keras = cell(r, "custom_layer", "keras")
    assert keras.status == "ready" and keras.round_trip_status == "ready"  # the plain cells pass
    assert keras.resave.fixture == VARIANT and keras.resave.status == "wrong-output" and keras.wrong
    assert not keras.movable and keras.decided_by_resave
    f = fixture(r, "custom_layer")
    assert f.avoid == ["keras"] and f.move_with.format == "h5" and f.move_with.remedy == "custom_objects"
    assert cell(r, "custom_layer", "h5").resave.resaved["loaded_with"] == "custom_objects"
    assert r.exit_code == 1
    assert [x.fixture for x in r.cells] == ["custom_layer", "custom_layer"]  # the variant is no kind of its own
    line = readiness_report.lines(r)[0]
    assert line == ("custom_layer: ready with changes; move with h5 (custom_objects); "
                    "WRONG OUTPUT in keras (re-saved in new: %s)" % VARIANT)
    md_path, html_path = readiness_report.write(r, str(tmp_path / "reports"))
    md = open(md_path).read()
    assert "`%s` new -> new: WRONG OUTPUT" % VARIANT in md
    assert "| `keras` (re-saved in new: %s) |" % VARIANT in md  # the summary's "do not move with"
    assert "re-saved in new (`%s` new -> new): WRONG OUTPUT: loaded without error, but predictions differ" % VARIANT \
        in md  # "what breaks" names the cell
    assert "new loaded old's file with custom_objects to save it again" in md
    html = open(html_path).read()
    assert 'data-resave="%s"' % VARIANT in html and "Do not move with keras (re-saved in new: %s)" % VARIANT in html


def test_a_re_save_variant_that_breaks_keeps_the_format_from_moving(tmp_path):
    r = build_of(resave_run(tmp_path, keras_resaved="pass", h5_resaved="load-error"), ["custom_layer"])
    h5 = cell(r, "custom_layer", "h5")
    assert h5.status == "ready-with-remedy" and h5.resave.status == "breaks" and not h5.movable
    assert h5.decided_by_resave and not h5.wrong
    f = fixture(r, "custom_layer")
    assert f.move_with.format == "keras" and f.avoid == [] and r.exit_code == 0
    md = readiness_report.markdown(r)
    assert "re-saved in new (`%s` new -> new): breaks" % VARIANT in md
    # B could not save A's file again at all: that format does not move either
    r = build_of(resave_run(tmp_path / "2", keras_resaved="pass", h5_resaved="save-error"), ["custom_layer"])
    h5 = cell(r, "custom_layer", "h5")
    assert h5.resave.status == "cannot-save" and not h5.movable and h5.decided_by_resave
    assert "re-saved in new (`%s` new -> new): new could not save it again: ValueError: old's artifact" % VARIANT \
        in readiness_report.markdown(r)


def test_cli_reads_re_save_variants_and_exits_1_on_their_wrong_output(tmp_path, capsys):
    store(tmp_path, resave_run, ["custom_layer"], resave=["custom_layer"])
    code, out, err = readiness_cli(tmp_path, capsys)
    assert code == 1, out + err
    assert "tfcompat:   custom_layer: ready with changes; move with h5 (custom_objects); WRONG OUTPUT in keras" in out
    assert VARIANT + ":" not in out  # a variant is read through its fixture, not as a kind of its own
    assert err == ("tfcompat: error: WRONG OUTPUT moving old -> new: custom_layer in keras (re-saved in new: %s): "
                   "existing files load silently wrong\n" % VARIANT)


def test_any_wrong_output_makes_the_exit_non_zero(tmp_path):
    """Item 14: "ready; move with keras; WRONG OUTPUT in h5" is no pass: the user's h5 files load wrong."""
    r = build_of(wrong_h5_run(tmp_path), ["untracked"])
    f = fixture(r, "untracked")
    assert f.verdict == "ready" and f.move_with.format == "keras" and f.avoid == ["h5"]
    assert r.can_move == 1 and r.exit_code == 1
    assert cell(r, "untracked", "h5").resave is None  # the run has no re-save variant of it


def test_cli_exit_1_and_names_the_formats_that_load_wrong(tmp_path, capsys):
    store(tmp_path, wrong_h5_run, ["untracked"])
    code, out, err = readiness_cli(tmp_path, capsys)
    assert code == 1, out + err
    assert "tfcompat:   untracked: ready; move with keras; WRONG OUTPUT in h5" in out
    assert err == "tfcompat: error: WRONG OUTPUT moving old -> new: untracked in h5: existing files load silently wrong\n"
