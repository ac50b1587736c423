"""verdict.combine: the least invasive remedy that reaches the best outcome; silent corruption wins."""

from harness.verdict import combine, hint_for


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


def test_least_invasive_among_equal_outcomes():
    v = combine([att(None, "load-error"), att("compile_false", "degraded", ["compile"]),
                 att("custom_objects", "degraded", ["optimizer_state"])])
    assert v["outcome"] == "degraded"
    assert v["remedy"] == "custom_objects"
    assert v["lost"] == ["optimizer_state"]


def test_degraded_plain_beats_nothing_better():
    v = combine([att(None, "degraded", ["custom_classes"]), att("custom_objects", "pass")])
    assert v["outcome"] == "pass-with-remedy"


def test_wrong_output_without_remedy_is_what_the_user_gets():
    v = combine([att(None, "wrong-output"), att("custom_objects", "pass")])
    assert v["outcome"] == "wrong-output"


def test_all_fail_is_load_error():
    v = combine([att(None, "load-error", message="File format not supported"), att("custom_objects", "load-error")])
    assert v["outcome"] == "load-error"
    assert "TFSMLayer" in v["hint"]


def test_no_attempts():
    assert combine([])["outcome"] == "load-error"


def test_hint_unknown_text():
    assert hint_for("something else entirely") is None


def test_degraded_that_keeps_more_wins_over_less_invasive():
    v = combine([att(None, "degraded", ["custom_classes", "optimizer_state"]),
                 att("custom_objects", "degraded", ["optimizer_state"])])
    assert v["remedy"] == "custom_objects"
    assert v["lost"] == ["optimizer_state"]
