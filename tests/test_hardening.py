"""Bad input gets one clear line, never a traceback or a hang (no TensorFlow: all refused up front).

The corpus is tests/corpus.py (by category); bench/robustness.py prints its counts for the README."""

import os
import re
import subprocess
import sys

import pytest
from corpus import CASES, GOOD, ROOT, STUB_FIXTURE, project, tmpfs
from hypothesis import given, settings, strategies as st

from harness.matrix_check import expanded_id_pattern


def tfcompat(args, cwd=ROOT, timeout=60):
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, CI="true"))


@pytest.mark.parametrize("category,name,setup", CASES, ids=["%s: %s" % (c, n) for c, n, _ in CASES])
def test_a_bad_input_is_one_clear_line(tmp_path, category, name, setup):
    args, want = setup(str(tmp_path))
    proc = tfcompat(args)  # the timeout is the hang guard
    # a mistake in what the user wrote (the matrix, its fixtures, the command line) is exit 2
    want_rc = (1, 2) if category == "state" else (2,)
    assert proc.returncode in want_rc, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfcompat"), proc.stderr[-2000:]
    assert want in lines[0], (want, lines[0])
    assert "None" not in lines[0]  # a null is written as YAML writes it


@settings(max_examples=300, deadline=None)
@given(st.from_regex(expanded_id_pattern(), fullmatch=True))
def test_no_env_id_the_rule_allows_resolves_outside_its_folder(env_id):
    parent = os.path.realpath("/srv/state/envs")
    for place in (os.path.join(parent, env_id), os.path.join(parent, env_id + ".json")):
        resolved = os.path.realpath(place)
        assert os.path.dirname(resolved) == parent, (env_id, resolved)


def test_the_id_rule_refuses_what_would_leave_its_folder():
    for bad in (".", "..", "../x", "a/b", "-x", ".x", "", "a" * 65, "a b", "a\\b", "tf{tensorflow}"):
        assert not re.fullmatch(expanded_id_pattern(), bad), bad


def test_one_broken_profile_does_not_break_plan(tmp_path):
    matrix = project(str(tmp_path))
    os.makedirs(tmp_path / "profiles")
    (tmp_path / "profiles" / "broken.yaml").write_bytes(b"version: 1\n\xff")
    (tmp_path / "profiles" / "fine.yaml").write_text(GOOD)
    proc = tfcompat(["--matrix", matrix, "--state-dir", str(tmp_path / "state"), "plan"])
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"broken +.*not UTF-8 text", proc.stdout), proc.stdout
    assert re.search(r"fine +2 envs, 1 fixtures, 1 formats", proc.stdout), proc.stdout


def test_an_empty_profile_does_not_break_plan(tmp_path):
    # a profile file started and not yet written: listed as broken, the matrix still plans
    matrix = project(str(tmp_path))
    os.makedirs(tmp_path / "profiles")
    (tmp_path / "profiles" / "later.yaml").write_text("# the nightly profile, to come\n")
    (tmp_path / "profiles" / "off.yaml").write_text("~\n")
    proc = tfcompat(["--matrix", matrix, "--state-dir", str(tmp_path / "state"), "plan"])
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(r"later +\S*profiles/later.yaml: \(top level\): no YAML document", proc.stdout), proc.stdout
    assert re.search(r"off +\S*profiles/off.yaml: \(top level\): the document is null", proc.stdout), proc.stdout


def test_a_second_writer_on_one_state_dir_is_refused(tmp_path):
    matrix = project(str(tmp_path))
    state = tmp_path / "state"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from harness import store; "
                               "held = store.hold_lock(sys.argv[1], 'run'); print('held', flush=True); time.sleep(60)",
                               str(state)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = tfcompat(["--matrix", matrix, "--state-dir", str(state), "merge", str(tmp_path / "nothing")])
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
        assert "is in use by tfcompat run (pid %d)" % holder.pid in proc.stderr
    finally:
        holder.kill()
        holder.wait()


def test_a_torn_journal_line_is_dropped_and_never_glued_to_the_next(tmp_path):
    from harness import results

    path = str(tmp_path / "j.jsonl")
    results.append(path, [{"event": "ready"}])
    with open(path, "a") as fh:
        fh.write('{"event": "done", "key": "a", "res')  # a writer killed mid-line
    results.append(path, [{"event": "start", "key": "b"}])
    assert [e["event"] for e in results.read(path)] == ["ready", "start"]


def test_stub_fixture_is_what_the_check_wants():
    assert "def build(ctx)" in STUB_FIXTURE and "def data(ctx)" in STUB_FIXTURE


def test_a_state_dir_that_cannot_be_written_is_one_line(tmp_path):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        matrix = project(str(tmp_path))
        proc = tfcompat(["--matrix", matrix, "--state-dir", str(ro / "state"), "run"])
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "--state-dir: %s is not writable by this user" % ro in proc.stderr
