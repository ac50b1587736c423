"""records.assemble on synthetic journals (tests/synth.py): what a cell says about what happened."""

from synth import SynthRun, att

from harness.records import harness_defects

A, B = "tf2.15", "tf2.16-k3"


def run(tmp_path, fixtures=("control", "custom_layer"), formats=("h5",)) -> SynthRun:
    """Both envs saved every artifact; cells are filled in by each test."""
    r = SynthRun(tmp_path, [A, B], fixtures, formats)
    for p in (A, B):
        for fx in fixtures:
            for fmt in formats:
                r.saved(p, fx, fmt)
    return r


def fill(r: SynthRun, outcome="pass") -> None:
    for p in r.sel.envs:
        for c in r.sel.envs:
            for fx in r.sel.fixtures:
                for fmt in r.sel.formats:
                    r.checked(p, c, fx, fmt, plain=[att(None, outcome)])


def test_crash_in_the_remedy_process_does_not_hide_a_no_remedy_wrong_output(tmp_path):
    # Failed on main: the crash replaced every attempt, so the cell said `crash`.
    r = run(tmp_path)
    fill(r)
    r.checked(A, B, "custom_layer", "h5", plain=[att(None, "wrong-output", message="predictions differ")])
    r.check_lost(A, B, "custom_layer", "h5", "remedies", "crash", rung="custom_objects")
    rec = r.cells()[(A, B, "custom_layer", "h5")]
    assert rec["outcome"] == "wrong-output"
    assert [a["outcome"] for a in rec["attempts"]] == ["wrong-output", "crash"]
    assert rec["attempts"][1]["remedy"] == "custom_objects"  # the rung in flight


def test_timeout_in_the_remedy_process_does_not_hide_a_degraded_load(tmp_path):
    r = run(tmp_path)
    fill(r)
    r.checked(A, B, "custom_layer", "h5", plain=[att(None, "degraded", ["custom_classes"])])
    r.check_lost(A, B, "custom_layer", "h5", "remedies", "timeout", rung="custom_objects")
    rec = r.cells()[(A, B, "custom_layer", "h5")]
    assert rec["outcome"] == "degraded" and rec["lost"] == ["custom_classes"]
    assert rec["attempts"][-1]["outcome"] == "timeout"


def test_a_crash_mid_ladder_keeps_the_attempts_made_before_it(tmp_path):
    r = run(tmp_path)
    fill(r)
    r.checked(A, B, "custom_layer", "h5", plain=[att(None, "load-error", message="Unknown layer")])
    r.check_lost(A, B, "custom_layer", "h5", "remedies", "crash",
                 made=[att("custom_objects", "degraded", ["optimizer_state"])], rung="custom_objects+compile_false")
    rec = r.cells()[(A, B, "custom_layer", "h5")]
    assert [(a["remedy"], a["outcome"]) for a in rec["attempts"]] == [
        (None, "load-error"), ("custom_objects", "degraded"), ("custom_objects+compile_false", "crash")]
    assert rec["outcome"] == "degraded" and rec["remedy"] == "custom_objects"
    assert "killed or hung" in rec["hint"]


def test_only_a_crash_is_a_crash(tmp_path):
    r = run(tmp_path)
    r.check_lost(A, B, "custom_layer", "h5", "plain", "crash", rung=None)
    r.check_lost(A, B, "custom_layer", "h5", "remedies", "crash", rung="custom_objects")
    rec = r.cells()[(A, B, "custom_layer", "h5")]
    assert rec["outcome"] == "crash" and rec["error_type"] == "WorkerDied"


def test_an_artifact_lost_in_the_save_phase_is_one_save_error_not_a_crash_per_consumer(tmp_path):
    # Failed on main: one `crash` cell per consumer, the same-env one labelled a same-version defect.
    r = SynthRun(tmp_path, [A, B], ("control",), ("h5", "keras"))
    for p in (A, B):
        r.saved(p, "control", "h5")
    r.saved(B, "control", "keras")
    r.save_lost(A, "control", "keras", outcome="timeout")
    fill_keys = [(p, c) for p in (A, B) for c in (A, B)]
    for p, c in fill_keys:
        r.checked(p, c, "control", "h5", plain=[att(None, "pass")])
    r.checked(B, A, "control", "keras", plain=[att(None, "pass")])
    r.checked(B, B, "control", "keras", plain=[att(None, "pass")])
    recs = [x for x in r.assemble() if (x["producer"], x["format"]) == (A, "keras")]
    assert len(recs) == 1
    (rec,) = recs
    assert rec["outcome"] == "save-error" and rec["consumer"] is None
    assert rec["save_error_kind"] == "timeout" and "hung" in rec["message"]
    assert rec["traceback"]  # the worker log excerpt


def test_a_failed_honesty_check_is_a_harness_defect_not_a_verdict(tmp_path):
    # Failed on main: recorded as `crash`, overriding even a wrong-output.
    r = run(tmp_path)
    fill(r)
    r.checked(A, B, "custom_layer", "h5", plain=[att(None, "wrong-output", fixtures_absent=False)])
    recs = r.assemble()
    rec = next(x for x in recs if (x["producer"], x["consumer"], x["fixture"]) == (A, B, "custom_layer"))
    assert rec["outcome"] == "harness-error" and "honesty" in rec["harness_defect"]
    assert harness_defects(recs) == [{"producer": A, "consumer": B, "fixture": "custom_layer", "format": "h5",
                                      "defect": rec["harness_defect"]}]


def test_a_failed_restore_precondition_is_a_harness_defect(tmp_path):
    r = run(tmp_path, formats=("weights",))
    fill(r)
    r.checked(A, A, "custom_layer", "weights",
              remedies=[att(None, "harness-error", harness_defect="the rebuilt model already holds the producer's "
                                                                  "weights before the restore")])
    rec = r.cells()[(A, A, "custom_layer", "weights")]
    assert rec["outcome"] == "harness-error" and "rebuilt model" in rec["harness_defect"]


def test_control_marks_only_where_control_fails_at_least_as_badly(tmp_path):
    # Failed on main: a control `degraded` marked a fixture's `wrong-output`.
    r = run(tmp_path, formats=("h5", "keras", "savedmodel"))
    fill(r)
    r.checked(A, B, "control", "h5", plain=[att(None, "degraded", ["compile"])])
    r.checked(A, B, "custom_layer", "h5", plain=[att(None, "wrong-output")])
    r.checked(A, B, "control", "keras", plain=[att(None, "load-error")])
    r.checked(A, B, "custom_layer", "keras", plain=[att(None, "load-error")])
    r.checked(A, B, "control", "savedmodel", plain=[att(None, "wrong-output")])
    r.checked(A, B, "custom_layer", "savedmodel", plain=[att(None, "degraded", ["compile"])])
    cells = r.cells()
    assert cells[(A, B, "custom_layer", "h5")]["control_failed"] is False
    assert cells[(A, B, "custom_layer", "keras")]["control_failed"] is True
    assert cells[(A, B, "custom_layer", "savedmodel")]["control_failed"] is True
    assert cells[(A, A, "custom_layer", "h5")]["control_failed"] is False  # a pass is never marked


def test_remedy_combination_is_recorded_as_used(tmp_path):
    r = run(tmp_path)
    fill(r)
    r.checked(A, B, "custom_layer", "h5", plain=[att(None, "load-error", message="Unknown layer")],
              remedies=[att("custom_objects", "load-error", message="Could not locate compile"),
                        att("custom_objects+compile_false", "pass")])
    rec = r.cells()[(A, B, "custom_layer", "h5")]
    assert rec["outcome"] == "pass-with-remedy" and rec["remedy"] == "custom_objects+compile_false"
    assert "compile" in rec["remedy_cost"] and "compile=False" in rec["hint"]


def test_not_applicable_and_excluded_cells_carry_reason_and_source_as_fields(tmp_path):
    r = SynthRun(tmp_path, [A, B], ("control",), ("savedmodel",))
    r.saved(A, "control", "savedmodel")
    r.not_applicable(B, "control", "savedmodel", "Keras 3 model.save() writes only .keras and .h5",
                     "https://keras.io/guides/migrating_to_keras_3/")
    r.checked(A, A, "control", "savedmodel", plain=[att(None, "pass")])
    r.checked(A, B, "control", "savedmodel", plain=[att(None, "load-error")])
    cells = r.cells(exclusions=[{"producer": A, "consumer": B, "fixture": "*", "format": "*",
                                 "reason": "never shipped"}])
    na = cells[(B, A, "control", "savedmodel")]
    assert na["outcome"] == "not-applicable" and na["source"].startswith("https://keras.io")
    assert na["reason"].startswith("Keras 3")
    ex = cells[(A, B, "control", "savedmodel")]
    assert ex["outcome"] == "not-applicable" and ex["reason"] == "never shipped"
    assert ex["source"] == "matrix.yaml: exclusions[0]"
    assert cells[(A, A, "control", "savedmodel")]["source"] is None


def test_a_not_applicable_cell_quotes_what_the_framework_said_when_the_call_was_tried(tmp_path):
    r = SynthRun(tmp_path, [A, B], ("control",), ("weights_h5", "keras"))
    refused = {"call": 'model.save_weights("weights.h5")', "refused": True, "error_type": "ValueError",
               "message": "The filename must end in `.weights.h5`.", "tried_with": "control"}
    accepted = {"call": 'model.save("model.keras")', "refused": False, "wrote": ["model.keras/saved_model.pb"]}
    r.not_applicable(B, "control", "weights_h5", "Keras 3 save_weights() only writes .weights.h5", "u", refused)
    r.not_applicable(B, "control", "keras", "the .keras format was added in Keras 2.12", "u", accepted)
    cells = r.cells()
    na = cells[(B, A, "control", "weights_h5")]
    assert na["refusal"] == refused
    assert "Tried anyway, `model.save_weights(\"weights.h5\")` raises ValueError: The filename must end" in na["message"]
    quiet = cells[(B, B, "control", "keras")]
    assert "raises nothing and writes model.keras/saved_model.pb instead" in quiet["message"]


def test_save_and_load_warnings_are_recorded_apart_and_uncapped(tmp_path):
    r = SynthRun(tmp_path, [A], ("control",), ("h5",))
    r.saved(A, "control", "h5", warnings=["save %d" % i for i in range(40)])
    r.checked(A, A, "control", "h5", plain=[att(None, "pass", warnings=["load %d" % i for i in range(35)])])
    rec = r.cells()[(A, A, "control", "h5")]
    assert len(rec["warnings"]["save"]) == 40 and len(rec["warnings"]["load"]) == 35


def test_env_error_and_tolerances(tmp_path):
    r = run(tmp_path)
    fill(r)
    r.env_error(B, "cannot import tensorflow")
    cells = r.cells()
    assert cells[(A, B, "control", "h5")]["outcome"] == "env-error"
    tol = cells[(A, A, "control", "h5")]["tolerances"]
    assert set(tol) == {"predictions", "resume", "slots"} and tol["resume"]["atol"] >= tol["predictions"]["atol"]


def test_a_check_phase_that_failed_as_a_whole_fails_that_consumer_column_only(tmp_path):
    # e.g. the Docker daemon died while B's checks ran: B's artifacts, checked by A, still count
    r = run(tmp_path)
    fill(r)
    r.env_error(B, "tfB: docker: cannot reach the engine at unix:///x.sock", phase="check")
    cells = r.cells()
    assert cells[(A, B, "control", "h5")]["outcome"] == "env-error"
    assert "cannot reach the engine" in cells[(A, B, "control", "h5")]["message"]
    assert cells[(B, A, "control", "h5")]["outcome"] != "env-error"
    assert cells[(A, A, "control", "h5")]["outcome"] != "env-error"


def test_a_process_killed_on_a_cell_then_retried_is_in_the_cell(tmp_path):
    # The first worker dies in the remedy ladder (rung compile_false); the retry, alone, passes.
    from harness.store import check_key

    r = SynthRun(tmp_path, [A, B], ("control",), ("keras",))
    r.saved(A, "control", "keras")
    key = check_key(A, B, "control", "keras")
    r._write(B, "check-remedies", {"event": "start", "key": key, "t": 0.0},
             {"event": "attempt", "key": key, "remedy": "compile_false", "result": None},
             {"event": "retry", "key": key, "outcome": "crash", "error_type": "WorkerDied",
              "message": "killed by signal SIGKILL", "traceback": "tail"})
    r.checked(A, B, "control", "keras", plain=[att(None, "load-error")],
              remedies=[att("compile_false", "pass")])
    rec = r.cells()[(A, B, "control", "keras")]
    assert [(a["remedy"], a["outcome"]) for a in rec["attempts"]] == [
        (None, "load-error"), ("compile_false", "crash"), ("compile_false", "pass")]
    assert rec["outcome"] == "pass-with-remedy" and "retried once in a fresh process" in rec["hint"]


def test_cells_and_artifacts_from_the_cache_are_records_marked_cached(tmp_path):
    # A's artifact and the A -> A cell come from an earlier run; B (new) checks A's artifact now.
    from harness.store import check_key

    r = SynthRun(tmp_path, [A, B], ("control",), ("h5",))
    r.saved(B, "control", "h5")
    old = {"producer": A, "consumer": A, "fixture": "control", "format": "h5", "outcome": "degraded",
           "run_id": "old-run", "lost": ["optimizer_state"], "versions": {"producer": {"tensorflow": "2.15.1"}},
           "attempts": [att(None, "degraded", lost=["optimizer_state"])]}
    r.store.save_reused({(A, "control", "h5"): {"meta": {"status": "saved", "fixture": "control", "format": "h5"},
                                                  "artifact_dir": "/old/run/artifacts", "run_id": "old-run",
                                                  "versions": {"tensorflow": "2.15.1"}}},
                        {check_key(A, A, "control", "h5"): {"record": old}})
    r.checked(A, B, "control", "h5", plain=[att(None, "pass")])
    r.checked(B, A, "control", "h5", plain=[att(None, "pass")])
    r.checked(B, B, "control", "h5", plain=[att(None, "pass")])
    cells = r.cells()
    kept = cells[(A, A, "control", "h5")]
    assert kept["cached"] is True and kept["cached_from"] == "old-run" and kept["outcome"] == "degraded"
    assert kept["lost"] == ["optimizer_state"] and kept["run_id"] == r.store.run_id
    fresh = cells[(A, B, "control", "h5")]
    assert fresh["cached"] is False and fresh["outcome"] == "pass"
    assert fresh["versions"]["producer"]["tensorflow"] == "2.15.1"


def test_assemble_is_a_pure_function_of_the_store(tmp_path):
    r = run(tmp_path)
    fill(r)
    assert r.assemble() == r.assemble()
