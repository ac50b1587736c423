"""The nightly gate, end to end without TensorFlow: two synthetic nights under one state dir, the
second reported against the first through the real publish and exit path (`tfcompat report
--baseline --fail-on`); and the workflow's merge step, which keeps a failed night out of the baseline."""

import os
import stat
import subprocess

import pytest
import yaml
from synth import SynthRun, att

from harness.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MATRIX = """version: 1
defaults: {python: "3.11"}
environments:
  - {id: a, tensorflow: "2.15.1", keras: bundled}
  - {id: b, tensorflow: "2.15.1", keras: bundled}
fixtures: [control]
formats: [h5]
"""

PASS = {"plain": [att(None, "pass")]}
WRONG = {"plain": [att(None, "wrong-output", max_abs_diff=0.5, max_rel_diff=0.5)]}
HARNESS_ERROR = {"plain": [att(None, "pass", fixtures_absent=False)]}  # the honesty check failed


def degraded(*lost):
    return {"plain": [att(None, "degraded", lost=list(lost))]}


def remedy(*rungs):
    """A pass through the last rung, the ones before it failing."""
    return {"plain": [att(None, "load-error")],
            "remedies": [att(r, "load-error") for r in rungs[:-1]] + [att(rungs[-1], "pass")]}


def night(state, name, envs=("a", "b"), cells=None, saves=None, env_error=None):
    """A run of control/h5 under `state`: each env saves it, each cell passes unless `cells` (cell ->
    attempts) says otherwise; `saves` (env -> save-error | not-applicable); `env_error` (an env)."""
    run = SynthRun(state / "runs", envs, name=name)
    for p in envs:
        how = (saves or {}).get(p)
        if how == "save-error":
            run.save_error(p, "control", "h5", "Unable to synchronously create dataset")
            continue
        if how == "not-applicable":
            run.not_applicable(p, "control", "h5", "this Keras cannot write it", "declared table")
            continue
        run.saved(p, "control", "h5")
        for c in envs:
            run.checked(p, c, "control", "h5", **(cells or {}).get((p, c), PASS))
    if env_error:
        run.env_error(env_error, "pip could not install tensorflow==2.15.1")
    run.write_results()


AB = ("a", "b")
CASES = {
    # coverage lost
    "pass -> env-error": ("coverage", {}, {"env_error": "b"}),
    "pass -> not-applicable": ("coverage", {}, {"saves": {"a": "not-applicable"}}),
    "pass -> cell missing": ("coverage", {}, {"envs": ("a",)}),
    "two passes -> one save-error": ("coverage", {}, {"saves": {"a": "save-error"}}),
    # regressions
    "degraded[optimizer_state] -> degraded[optimizer_state, custom_classes]": (
        "regression", {"cells": {AB: degraded("optimizer_state")}},
        {"cells": {AB: degraded("optimizer_state", "custom_classes")}}),
    "remedy custom_objects -> custom_objects+compile_false": (
        "regression", {"cells": {AB: remedy("custom_objects")}},
        {"cells": {AB: remedy("custom_objects", "custom_objects+compile_false")}}),
    "env-error -> wrong-output": ("regression", {"env_error": "b"}, {"cells": {AB: WRONG}}),
    "harness-error -> wrong-output": ("regression", {"cells": {AB: HARNESS_ERROR}}, {"cells": {AB: WRONG}}),
    "a new cell that is wrong-output": ("regression", {"envs": ("a",)}, {"cells": {AB: WRONG}}),
}


def tfcompat(tmp_path, *args, matrix=MATRIX):
    """`tfcompat ARGS` in this process (the CLI's own main): its exit code."""
    (tmp_path / "matrix.yaml").write_text(matrix)
    try:
        return main(["--matrix", str(tmp_path / "matrix.yaml"), "--state-dir", str(tmp_path / "state"),
                     "--reports", str(tmp_path / "reports"), *args])
    except SystemExit as exc:  # the parser's exit (a bad argument)
        return exc.code


@pytest.mark.parametrize("case", list(CASES))
def test_every_worsening_fails_the_gate_that_selects_its_class(tmp_path, capsys, case):
    kind, baseline, current = CASES[case]
    night(tmp_path / "state", "night1", **baseline)
    night(tmp_path / "state", "night2", **current)

    def report(*fail_on):
        capsys.readouterr()
        code = tfcompat(tmp_path, "report", "--run", "night2", "--baseline", "night1", *fail_on)
        return code, capsys.readouterr()

    code, out = report("--fail-on", kind)
    assert code == 1, out.out + out.err
    name = {"regression": "regression", "coverage": "coverage lost"}[kind]
    assert "tfcompat: error: %s: a -> b control/h5: " % name in out.err
    assert "changes since" in out.out and (tmp_path / "reports" / "changes.md").exists()
    assert report()[0] == 1  # the default: regression,coverage
    assert report("--fail-on", "regression,coverage")[0] == 1
    assert report("--fail-on", "never")[0] == 0
    # it is that class and no other
    other = "coverage" if kind == "regression" else "regression"
    code, out = report("--fail-on", other)
    assert code == 0, out.err


def test_a_met_expectation_keeps_a_change_from_failing_the_gate(tmp_path, capsys):
    night(tmp_path / "state", "night1")
    night(tmp_path / "state", "night2", cells={AB: WRONG})
    report = ("report", "--run", "night2", "--baseline", "night1")
    assert tfcompat(tmp_path, *report) == 1
    known = MATRIX + ("expectations:\n  - {producer: a, consumer: b, fixture: control, format: h5, "
                      "outcome: wrong-output, reason: known upstream bug, expires: \"2099-01-01\"}\n")
    capsys.readouterr()
    code = tfcompat(tmp_path, *report, matrix=known)
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "1 regression(s) (1 expected)" in out.out
    assert "new wrong-output (expected)" in (tmp_path / "reports" / "changes.md").read_text()


def test_the_cli_names_20_cells_then_says_how_many_more(tmp_path, capsys):
    envs = tuple("e%d" % i for i in range(5))
    night(tmp_path / "state", "night1", envs=envs)
    night(tmp_path / "state", "night2", envs=envs, saves=dict.fromkeys(envs, "save-error"))  # 25 cells lost
    capsys.readouterr()
    code = tfcompat(tmp_path, "report", "--run", "night2", "--baseline", "night1")
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert len(err) == 21 and err[-1] == "tfcompat: error: ... and 5 more (reports/changes.json)"
    assert all(line.startswith("tfcompat: error: coverage lost: ") for line in err[:20])


# -- the workflow's merge step -------------------------------------------------------------------

STAND_IN = """#!/bin/sh
# a stand-in `tfcompat`: the night's results, then the exit code the night's gate gave
printf '%s\\n' "$@" > "$WS/argv"
mkdir -p reports
printf '{"night": "%s"}\\n' "$NIGHT" > reports/results.jsonl
printf '## Changes since the baseline\\n' > reports/changes.md
exit "$GATE"
"""


def merge_step():
    with open(os.path.join(ROOT, ".github", "workflows", "nightly.yml")) as fh:
        (step,) = [s for s in yaml.safe_load(fh)["jobs"]["merge"]["steps"] if s.get("name") == "merge"]
    return step["run"]


def test_only_a_night_that_passed_its_gate_becomes_the_baseline(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tfcompat").write_text(STAND_IN)
    (bin_dir / "tfcompat").chmod(0o755 | stat.S_IXUSR)
    ws = tmp_path / "ws"
    ws.mkdir()
    state = ws / ".tfcompat"
    baseline = state / "baseline" / "default" / "results.jsonl"
    baseline.parent.mkdir(parents=True)
    baseline.write_text('{"night": "1"}\n')

    def merge(night, gate):
        env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]), STATE=str(state), WS=str(ws),
                   RUN_ID="run-%s" % night, NIGHT=night, GATE=str(gate), TFCOMPAT_PROFILE="default",
                   GITHUB_STEP_SUMMARY=str(ws / "summary.md"))
        return subprocess.run(["bash", "-e", "-c", merge_step()], cwd=ws, env=env, capture_output=True, text=True)

    failed = merge("2", 1)  # night 2's merge fails its gate (or has a harness defect)
    assert failed.returncode == 1, failed.stderr
    assert baseline.read_text() == '{"night": "1"}\n'  # night 3 is still compared with night 1
    argv = (ws / "argv").read_text().split()
    assert argv[argv.index("--fail-on") + 1] == "regression,coverage"
    assert argv[argv.index("--baseline") + 1] == str(baseline)
    assert "Changes since" in (ws / "summary.md").read_text()
    passed = merge("3", 0)
    assert passed.returncode == 0, passed.stderr
    assert baseline.read_text() == '{"night": "3"}\n'
