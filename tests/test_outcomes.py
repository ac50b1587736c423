"""The one outcome table (harness/outcomes.py) and every place that must say the same: the matrix
schema's outcome names, the page's colours, the grid's codes, JUnit's passing set, the summary's
"usable", readiness, the cache."""

import json
import os
import re

from synth import SynthRun, att

from harness import junit, outcomes, readiness, report, results
from harness.cache import CACHED_OUTCOMES
from harness.verdict import combine

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_schema_the_css_and_the_table_agree():
    with open(os.path.join(HERE, "harness", "matrix.schema.json")) as fh:
        schema = json.load(fh)
    enum = schema["$defs"]["expectation"]["properties"]["outcome"]["enum"]
    assert enum == outcomes.OUTCOMES
    with open(os.path.join(report.TEMPLATES, "report.css")) as fh:
        colours = dict(re.findall(r"\.o-([a-z-]+) \{ ([^}]+) \}", fh.read()))
    assert set(colours) == set(outcomes.OUTCOMES)
    assert report.CODES == {o.name: o.code for o in outcomes.TABLE}
    assert results.VERDICTS == [o.name for o in outcomes.TABLE if o.verdict]
    assert [outcomes.severity(v) for v in results.VERDICTS] == list(range(len(results.VERDICTS)))


def test_passing_and_cacheable_come_from_the_table():
    assert set(outcomes.PASSING) == {"pass", "pass-with-remedy"}
    assert outcomes.GRADED == {"pass", "pass-with-remedy", "degraded"}  # the diff compares their rungs and losses
    assert CACHED_OUTCOMES == {o.name for o in outcomes.TABLE if o.cacheable}
    # a crash or hang may be flaky; a non-verdict is decided when the record is assembled
    assert not CACHED_OUTCOMES & {"crash", "timeout", "not-applicable", "env-error", "harness-error", "save-error"}


def test_a_pass_only_through_tf_keras_is_not_usable_on_keras_3_anywhere(tmp_path):
    """One cell: in a Keras 3 env, only the legacy tf_keras rung passes. Grid: pass-with-remedy (tk);
    JUnit: a failure; summary: not usable; readiness: legacy-only, not ready."""
    run = SynthRun(tmp_path, ["a", "k3"])
    for p in ("a", "k3"):
        run.saved(p, "control", "h5")
        for c in ("a", "k3"):
            if (p, c) == ("a", "k3"):
                run.checked(p, c, "control", "h5", plain=[att(None, "load-error", message="File format not supported")],
                            remedies=[att("legacy_keras", "pass")])
            else:
                run.checked(p, c, "control", "h5", plain=[att(None, "pass")])
    recs = run.assemble()
    cell = next(r for r in recs if (r["producer"], r["consumer"]) == ("a", "k3"))
    assert (cell["outcome"], cell["remedy"]) == ("pass-with-remedy", "legacy_keras")
    xml = junit.junit_xml(recs, "r").decode()
    assert 'failures="1"' in xml and "usable only through the legacy tf_keras" in xml
    cells = {(r["producer"], r["consumer"], r["fixture"], r["format"]): r for r in recs}
    row = report.format_summary(cells, {}, ["h5"], ["control"])[0]
    assert (row["usable"]["num"], row["usable"]["den"], row["keras2_only"]) == (3, 4, 1)
    r = readiness.build(recs, "a", "k3", ["control"], ["h5"], ["a", "k3"])
    assert r.cells[0].status == "legacy-only" and r.exit_code == 1


def test_remedy_invasiveness_is_a_total_order():
    inv = outcomes.invasiveness
    assert inv(None) < inv("custom_objects") < inv("reload_weights") < inv("compile_false")
    assert inv("compile_false") < inv("custom_objects+compile_false")
    assert inv("custom_objects+reload_weights") < inv("compile_false") < inv("legacy_keras")


def test_the_verdict_ranks_attempts_by_the_table():
    got = combine([att(None, "load-error"), att("custom_objects", "degraded", lost=["compile"]),
                   att("custom_objects+compile_false", "pass")])
    assert (got["outcome"], got["remedy"]) == ("pass-with-remedy", "custom_objects+compile_false")
