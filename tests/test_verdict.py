"""verdict.combine: the rules of docs/DESIGN.md "Verdict rules", one test (or more) per rule."""

from harness.verdict import combine, hint_for, passed


def att(remedy, outcome, lost=(), message=None):
    return {"remedy": remedy, "outcome": outcome, "lost": list(lost), "message": message}


def test_plain_pass():
    assert combine([att(None, "pass")])["outcome"] == "pass"


def test_remedy_pass_is_pass_with_remedy_and_keeps_the_error():
    v = combine([att(None, "load-error", message="Unknown layer: 'X'"), att("custom_objects", "pass")])
    assert v["outcome"] == "pass-with-remedy"
    assert v["remedy"] == "custom_objects"
    assert "Unknown layer" in v["message"]
    assert "custom_objects" in v["hint"]
    assert v["remedy_cost"]


def test_least_invasive_among_equal_outcomes():
    # attempts are in ladder order: the first of equally good ones wins
    v = combine([att(None, "load-error"), att("custom_objects", "degraded", ["optimizer_state"]),
                 att("custom_objects+compile_false", "degraded", ["compile"])])
    assert v["outcome"] == "degraded"
    assert v["remedy"] == "custom_objects"
    assert v["lost"] == ["optimizer_state"]


def test_degraded_plain_beats_nothing_better():
    v = combine([att(None, "degraded", ["custom_classes"]), att("custom_objects", "pass")])
    assert v["outcome"] == "pass-with-remedy"


def test_wrong_output_without_remedy_is_what_the_user_gets():
    v = combine([att(None, "wrong-output"), att("custom_objects", "pass")])
    assert v["outcome"] == "wrong-output" and v["remedy"] is None


def test_rule_2_wrong_output_of_a_remedy_is_not_hidden_by_a_later_pass():
    # Failed on main: the later pass won. The user applies the first rung that loads.
    v = combine([att(None, "load-error", message="Unknown layer"),
                  att("custom_objects", "wrong-output", message="predictions differ"),
                  att("custom_objects+compile_false", "pass")])
    assert v["outcome"] == "wrong-output"
    assert v["remedy"] == "custom_objects"


def test_rule_2_wrong_output_is_not_hidden_by_a_less_invasive_load_error_either():
    v = combine([att(None, "load-error"), att("compile_false", "load-error"), att("legacy_keras", "wrong-output")])
    assert v["outcome"] == "wrong-output" and v["remedy"] == "legacy_keras"


def test_rule_3_crash_is_one_more_attempt_and_does_not_hide_a_degraded_load():
    # Failed on main: a remedies-phase timeout replaced a degraded no-remedy load.
    v = combine([att(None, "degraded", ["optimizer_state"]), att("custom_objects", "timeout")])
    assert v["outcome"] == "degraded" and v["remedy"] is None


def test_rule_3_crash_ranks_below_a_load_error_and_above_nothing():
    assert combine([att(None, "crash")])["outcome"] == "crash"
    assert combine([att(None, "crash"), att("custom_objects", "load-error")])["outcome"] == "load-error"
    assert combine([att(None, "timeout"), att("custom_objects", "crash")])["outcome"] == "crash"


def test_rule_1_harness_defect_is_not_a_verdict():
    v = combine([att(None, "harness-error", message="the rebuilt model already holds the producer's weights")])
    assert v["outcome"] == "harness-error" and "rebuilt model" in v["harness_defect"]


def test_all_fail_is_load_error():
    v = combine([att(None, "load-error", message="File format not supported"), att("custom_objects", "load-error")])
    assert v["outcome"] == "load-error"
    assert "TFSMLayer" in v["hint"]


def test_no_attempts_is_a_harness_defect():
    assert combine([])["outcome"] == "harness-error"


def test_hint_unknown_text():
    assert hint_for("something else entirely") is None


def test_degraded_that_keeps_more_wins_over_less_invasive():
    v = combine([att(None, "degraded", ["custom_classes", "optimizer_state"]),
                 att("custom_objects", "degraded", ["optimizer_state"])])
    assert v["remedy"] == "custom_objects"
    assert v["lost"] == ["optimizer_state"]


def test_combined_remedy_hint_names_every_part():
    v = combine([att(None, "load-error", message="Unknown layer"), att("custom_objects+compile_false", "pass")])
    assert "custom_objects" in v["hint"] and "compile=False" in v["hint"]
    assert "optimizer" in v["remedy_cost"]


def test_passed_is_decided_in_one_place():
    assert passed({"attempts": [att(None, "degraded"), att("custom_objects", "pass")]})
    assert not passed({"attempts": [att(None, "wrong-output")]})
    assert not passed(None)


def test_a_wrong_output_hint_does_not_recommend_the_rung_that_produced_it():
    v = combine([att(None, "load-error", message="Unknown layer"), att("custom_objects", "wrong-output")])
    assert "best reached" not in v["hint"] and "re-export" in v["hint"]
