"""Trust: what the product remembers (the cache), merges (shards) or replays never says more than a
fresh run would. The real Runner, store, cache and records drive a stand-in backend and worker
(tests/stub_backend.py): no TensorFlow, but every run is a real run, so the tests see which cells
were really checked again."""

from __future__ import annotations

import glob
import json
import os
import shutil

import pytest
from corpus import GOOD as MATRIX, STUB_FIXTURE, project
from stub_backend import StubBackend, ran, write_scenario
from synth import SynthRun, att

from harness import cache, process, records, results, runner, store
from harness.backends import BACKENDS
from harness.matrix import load_matrix

K2, K3 = "tf2.15", "tf2.16-keras3"


class Project:
    """A project folder, a state dir and the stub scenario; `run()` is one real run."""

    def __init__(self, tmp_path, monkeypatch) -> None:
        self.tmp = tmp_path
        self.scenario = str(tmp_path / "scenario.json")
        self.log = str(tmp_path / "ran.log")
        write_scenario(self.scenario, log=self.log, nonce="1")
        monkeypatch.setenv("TFCOMPAT_STUB", self.scenario)
        monkeypatch.setitem(BACKENDS, "stub", StubBackend)
        self.matrix_path = project(str(tmp_path / "p"), MATRIX)
        self.state = str(tmp_path / "p" / ".tfcompat")

    def write_matrix(self, text: str) -> None:
        with open(self.matrix_path, "w") as fh:
            fh.write(text)

    def run(self, **kw) -> tuple[dict, list[str]]:
        """(records by (producer, consumer, fixture, format), the items the workers ran this time)."""
        before = len(ran(self.log))
        m = load_matrix(self.matrix_path)
        sel = runner.select(m, None, None, None)
        _, run_dir = store.new_run_dir(self.state)
        r = runner.Runner(m, sel, run_dir, backend="stub", log=lambda line: None, **kw)
        r.run()
        recs = list(results.read(os.path.join(run_dir, "results.jsonl")))
        return {(x["producer"], x["consumer"], x["fixture"], x["format"]): x for x in recs}, ran(self.log)[before:]

    def cell_entry(self, producer: str, consumer: str) -> str:
        """The cache file of one cell."""
        for path in glob.glob(os.path.join(self.state, "cache", "cells", "*", "*.json")):
            with open(path) as fh:
                rec = json.load(fh)["record"]
            if (rec["producer"], rec["consumer"]) == (producer, consumer):
                return path
        raise AssertionError("no cache entry for %s -> %s" % (producer, consumer))

    def tamper(self, producer: str, consumer: str, **fields) -> None:
        path = self.cell_entry(producer, consumer)
        with open(path) as fh:
            entry = json.load(fh)
        entry["record"].update(fields)
        with open(path, "w") as fh:
            json.dump(entry, fh)


@pytest.fixture
def proj(tmp_path, monkeypatch, fake_index):
    return Project(tmp_path, monkeypatch)


def checks(lines: list[str]) -> set[tuple[str, str]]:
    """(producer, consumer) of the check items among the lines the workers ran."""
    return {tuple(line.split("|")[3:5]) for line in lines if line.startswith("check|")}


def test_nothing_changed_runs_nothing(proj):
    first, did = proj.run()
    assert {r["outcome"] for r in first.values()} == {"pass"} and len(checks(did)) == 4
    again, did = proj.run()
    assert did == [] and all(r["cached"] for r in again.values())


# -- 1. the key follows the code that makes attempts --------------------------------------------

def test_a_changed_worker_changes_every_key(tmp_path):
    root = tmp_path / "harness"
    for part in cache.ATTEMPT_CODE:
        src = os.path.join(cache.HARNESS, part)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, str(root / part) if os.path.isdir(src)
                                                                  else str(root))
    same = cache.code_digest(root=str(root))
    assert same == cache.code_digest()
    check = root / "worker" / "check.py"
    check.write_text(check.read_text().replace("ok = bool(np.allclose(", "ok = True or bool(np.allclose("))
    edited = cache.code_digest(root=str(root))
    assert edited != same
    tol = {"predictions": {"atol": 1e-5, "rtol": 1e-5}}
    assert cache.cell_key("p", "c", "f", "h5", tol, 60.0, "art", code=same) != cache.cell_key(
        "p", "c", "f", "h5", tol, 60.0, "art", code=edited)
    assert cache.artifact_key("p", "f", "h5", code=same) != cache.artifact_key("p", "f", "h5", code=edited)


def test_other_worker_code_recomputes_everything(proj, monkeypatch):
    proj.run()
    monkeypatch.setattr(cache, "code_digest", lambda *a, **k: "another worker")
    again, did = proj.run()
    assert len(checks(did)) == 4 and sum(line.startswith("save|") for line in did) == 2
    assert not any(r["cached"] for r in again.values())


# -- 2. a cached cell is its attempts, judged again by today's rules -------------------------------

def test_a_cached_cell_is_judged_again_not_replayed(proj):
    proj.run()
    # What an older judge said of these attempts (it hid the wrong output behind the later pass).
    proj.tamper(K2, K3, outcome="pass-with-remedy", remedy="custom_objects",
                attempts=[att(None, "wrong-output", message="predicts differently"), att("custom_objects", "pass")])
    again, did = proj.run()
    cell = again[(K2, K3, "control", "h5")]
    assert (cell["outcome"], cell["cached"]) == ("wrong-output", True) and (K2, K3) not in checks(did)


def test_judging_code_reaches_cached_cells(proj, monkeypatch):
    proj.run()
    monkeypatch.setattr(records, "combine", lambda attempts: {"outcome": "load-error", "remedy": None, "lost": []})
    again, did = proj.run()
    assert did == [] and {r["outcome"] for r in again.values()} == {"load-error"}


def test_cached_attempts_that_now_judge_as_a_defect_run_again(proj):
    proj.run()
    proj.tamper(K2, K3, outcome="pass", attempts=[att(None, "pass", fixtures_absent=False)])
    again, did = proj.run()
    assert checks(did) == {(K2, K3)}
    assert again[(K2, K3, "control", "h5")]["outcome"] == "pass" and not again[(K2, K3, "control", "h5")]["cached"]


# -- 3. the fixture's whole unit ---------------------------------------------------------------

def test_fixture_hash_covers_helper_packages_and_data_files(tmp_path):
    fx = tmp_path / "fx.py"
    fx.write_text("import os\nfrom helpers.tables import ROWS\nfrom . import sibling\n"
                  "TABLE = os.path.join(os.path.dirname(__file__), 'table.json')\n")
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "__init__.py").write_text("")
    (tmp_path / "helpers" / "tables.py").write_text("from .more import X\nROWS = 1\n")
    (tmp_path / "helpers" / "more.py").write_text("X = 1\n")
    (tmp_path / "sibling.py").write_text("Y = 1\n")
    (tmp_path / "table.json").write_text("[1]")
    (tmp_path / "unrelated.py").write_text("Z = 1\n")
    seen = {cache.fixture_hash(str(fx))}
    for path, text in (("helpers/tables.py", "from .more import X\nROWS = 2\n"), ("helpers/more.py", "X = 2\n"),
                       ("helpers/__init__.py", "# a package's own code\n"), ("sibling.py", "Y = 2\n"),
                       ("table.json", "[2]")):
        (tmp_path / path).write_text(text)
        seen.add(cache.fixture_hash(str(fx)))
    assert len(seen) == 6
    (tmp_path / "unrelated.py").write_text("Z = 2\n")
    assert cache.fixture_hash(str(fx)) in seen


def test_an_edited_helper_package_recomputes_the_fixture(proj):
    root = os.path.dirname(proj.matrix_path)
    os.makedirs(os.path.join(root, "fixtures", "helpers"))
    with open(os.path.join(root, "fixtures", "helpers", "__init__.py"), "w") as fh:
        fh.write("")
    with open(os.path.join(root, "fixtures", "helpers", "units.py"), "w") as fh:
        fh.write("UNITS = 4\n")
    with open(os.path.join(root, "fixtures", "control.py"), "w") as fh:
        fh.write("from helpers.units import UNITS\n\n" + STUB_FIXTURE)
    proj.run()
    with open(os.path.join(root, "fixtures", "helpers", "units.py"), "w") as fh:
        fh.write("UNITS = 8\n")
    again, did = proj.run()
    assert len(checks(did)) == 4 and not any(r["cached"] for r in again.values())


# -- 4. an env is what its requirements install today -------------------------------------------

@pytest.fixture
def resolver(proj, monkeypatch):
    """uv's resolution replaced by the scenario's `resolved` (the real resolver: tests/test_resolve.py)."""
    from harness.resolve import Resolution

    def resolve_backends(backends, installed=None, jobs=4, timeout=0):
        with open(proj.scenario) as fh:
            data = json.load(fh)
        resolved, seeds = data.get("resolved") or {}, data.get("seeds") or ()
        out = {}
        for env in backends:
            if env not in resolved:
                out[env] = Resolution(None, "index down")
                continue
            held = ((installed or {}).get(env) or {}).get("packages") or {}
            # as Docker's pip keeps what its venv was seeded with, where it satisfies
            out[env] = Resolution(dict(resolved[env], **{n: held[n] for n in seeds if n in held}))
        return out

    monkeypatch.setattr(runner, "resolve_backends", resolve_backends)
    return proj


def plan(proj) -> tuple[dict, dict]:
    """What `plan` says: per env (artifacts, checks) cached / to run, and the drift lines."""
    m = load_matrix(proj.matrix_path)
    r = runner.Runner(m, runner.select(m, None, None, None), os.path.join(proj.state, "runs", "plan"),
                      backend="stub", log=lambda line: None)
    return r.cache_plan(), r.drift_lines()


def test_a_new_release_of_an_unpinned_dependency_rebuilds_its_env_and_runs_its_cells(resolver):
    old = {"tensorflow": "2.15.1", "h5py": "3.14.0"}
    write_scenario(resolver.scenario, packages={K2: old, K3: old}, resolved={K2: old, K3: old})
    resolver.run()
    # a night later: h5py 3.15.0 is out; the tf2.15 env (still on 3.14.0) is not what it would be today
    new = dict(old, h5py="3.15.0")
    write_scenario(resolver.scenario, packages={K2: new, K3: old}, resolved={K2: new, K3: old})
    cached, drift = plan(resolver)
    assert drift == {K2: "drift: h5py 3.14.0 -> 3.15.0"}
    assert cached[K2]["checks"] == [0, 2] and cached[K3]["checks"] == [1, 1]  # tf2.15's row and column
    again, did = resolver.run()
    assert checks(did) == {(K2, K2), (K2, K3), (K3, K2)} and sum(line.startswith("save|") for line in did) == 1
    record = json.load(open(os.path.join(resolver.state, "envs", K2 + ".json")))["stub"]
    assert record["installed"]["packages"]["h5py"] == "3.15.0" and "stale" not in record
    assert again[(K2, K3, "control", "h5")]["versions"]["producer"]["packages"]["h5py"] == "3.15.0"
    assert plan(resolver)[1] == {}


def test_an_env_record_whose_env_is_gone_is_not_current(resolver):
    pkgs = {"tensorflow": "2.15.1", "h5py": "3.14.0"}
    write_scenario(resolver.scenario, packages={K2: pkgs, K3: pkgs}, resolved={K2: pkgs, K3: pkgs})
    resolver.run()
    shutil.rmtree(os.path.join(resolver.state, "stub-envs"))  # a night restores .tfcompat, not the envs
    # nothing drifted: the cells are the ones a fresh build would give, so nothing is built
    again, did = resolver.run()
    assert did == [] and all(r["cached"] for r in again.values())
    # today the requirements resolve to another h5py: the envs are built and every cell runs again
    new = dict(pkgs, h5py="3.15.0")
    write_scenario(resolver.scenario, packages={K2: new, K3: new}, resolved={K2: new, K3: new})
    third, did = resolver.run()
    assert len(checks(did)) == 4 and not any(r["cached"] for r in third.values())


def test_an_env_reused_as_it_stood_is_rebuilt_when_it_is_not_todays(resolver, tmp_path):
    """A new state dir finds an env folder built earlier (as tox reconciles .tox/<id>): what it holds
    is not what its requirements resolve to today, so it is built again before its cells run, and
    its cells say what really ran."""
    old = {"tensorflow": "2.15.1", "h5py": "3.14.0"}
    envs = str(tmp_path / "envs")
    write_scenario(resolver.scenario, envs_dir=envs, packages={K2: old, K3: old}, resolved={K2: old, K3: old})
    resolver.run()
    new = dict(old, h5py="3.15.0")
    write_scenario(resolver.scenario, packages={K2: new, K3: new}, resolved={K2: new, K3: new})
    resolver.state = str(tmp_path / "another-state")
    cells, did = resolver.run()
    assert len(checks(did)) == 4
    assert {r["versions"]["consumer"]["packages"]["h5py"] for r in cells.values()} == {"3.15.0"}
    record = json.load(open(os.path.join(resolver.state, "envs", K2 + ".json")))["stub"]
    assert record["installed"]["packages"]["h5py"] == "3.15.0"


def test_a_seed_the_installer_keeps_is_not_drift_after_the_build(resolver):
    """A venv seeded with setuptools 66 keeps it (pip does, where it satisfies): the resolution made
    before the env existed said 80; resolved again with what the env holds, it agrees: one build."""
    seeded = {"tensorflow": "2.15.1", "setuptools": "66.1.1"}
    today = {"tensorflow": "2.15.1", "setuptools": "80.10.2"}
    write_scenario(resolver.scenario, packages={K2: seeded, K3: seeded}, resolved={K2: today, K3: today},
                   seeds=["setuptools"])
    resolver.run()
    assert sorted(line for line in ran(resolver.log) if line.startswith("create|")) == ["create|" + K2,
                                                                                      "create|" + K3]
    assert plan(resolver)[1] == {}


def test_an_unknown_resolution_says_so_and_keeps_what_was_seen(resolver):
    pkgs = {"tensorflow": "2.15.1"}
    write_scenario(resolver.scenario, packages={K2: pkgs, K3: pkgs}, resolved={K2: pkgs, K3: pkgs})
    resolver.run()
    write_scenario(resolver.scenario, resolved={K3: pkgs})
    cached, drift = plan(resolver)
    assert drift == {K2: "drift not checked (the requirements did not resolve: index down)"}
    assert cached[K2]["checks"][1] == 0


# -- 5. a cell is keyed by the bytes of the artifact it loaded --------------------------------------

def test_a_fresh_artifact_never_inherits_the_cells_of_the_one_it_replaced(proj):
    proj.run()
    # The cached artifacts are gone (a pruned runs folder, say): the producer saves again, other bytes.
    shutil.rmtree(os.path.join(proj.state, "cache", "artifacts"))
    write_scenario(proj.scenario, nonce="2")
    again, did = proj.run()
    assert sum(line.startswith("save|") for line in did) == 2
    assert len(checks(did)) == 4 and not any(r["cached"] for r in again.values())


# -- 6. an exclusion is applied when the record is made, never remembered as a verdict ---------------

def test_a_removed_exclusion_runs_its_cell(proj):
    proj.write_matrix(MATRIX + "exclusions:\n  - {producer: tf2.15, consumer: tf2.16-keras3, fixture: '*', "
                               "format: '*', reason: not wanted}\n")
    first, did = proj.run()
    assert first[(K2, K3, "control", "h5")]["outcome"] == "not-applicable" and (K2, K3) not in checks(did)
    proj.write_matrix(MATRIX)
    again, did = proj.run()
    assert checks(did) == {(K2, K3)} and again[(K2, K3, "control", "h5")]["outcome"] == "pass"
    # and an exclusion added later wins over what the cache holds
    proj.write_matrix(MATRIX + "exclusions:\n  - {producer: tf2.15, consumer: tf2.16-keras3, fixture: '*', "
                               "format: '*', reason: not wanted}\n")
    third, did = proj.run()
    assert did == [] and third[(K2, K3, "control", "h5")]["outcome"] == "not-applicable"


# -- 17. a crash mid-ladder keeps every attempt made before it ------------------------------------

def test_a_retry_keeps_what_the_dead_process_journaled(tmp_path):
    run = SynthRun(tmp_path, ["a"])
    run.saved("a", "control", "h5")
    key = "check|a|a|control|h5"
    wrong = att(None, "wrong-output", message="predicts differently")
    # the plain process: the no-remedy rung loads wrong, then the process dies on the next rung
    run._write("a", "check-plain", {"event": "start", "key": key, "t": 0.0},
               {"event": "attempt", "key": key, "remedy": None, "result": None},
               {"event": "attempt", "key": key, "remedy": None, "result": wrong},
               {"event": "attempt", "key": key, "remedy": "custom_objects", "result": None},
               {"event": "retry", "key": key, "outcome": "crash", "message": "killed by signal SIGSEGV"},
               # the retry in a fresh process: this time the no-remedy rung passes
               {"event": "start", "key": key, "t": 1.0},
               {"event": "done", "key": key, "result": {"mode": "plain", "attempts": [att(None, "pass")]}})
    cell = run.cells()[("a", "a", "control", "h5")]
    assert [(a["remedy"], a["outcome"]) for a in cell["attempts"]] == [
        (None, "wrong-output"), ("custom_objects", "crash"), (None, "pass")]
    assert cell["outcome"] == "wrong-output"


# -- 7 and 8. merging shards --------------------------------------------------------------------

def test_two_journals_that_disagree_on_a_cell_are_an_error_naming_both(tmp_path):
    run = SynthRun(tmp_path, ["a", "b"])
    run.saved("a", "control", "h5")
    key = "check|a|b|control|h5"
    for part, attempts in (("check-1of2", [att(None, "wrong-output")]), ("check-2of2", [att(None, "pass")])):
        results.append(run.store.journal("b", "check-plain", part), [
            {"event": "start", "key": key, "t": 0.0},
            {"event": "done", "key": key, "result": {"mode": "plain", "attempts": attempts}}])
    with pytest.raises(process.ShardConflict) as info:
        run.store.read("b", "check-plain")
    assert "check-1of2" in str(info.value) and "check-2of2" in str(info.value)
    # the same result twice is no disagreement
    assert process.merge_journals([process.read_journal(run.store.journal("b", "check-plain", "check-1of2"))] * 2)


def shard_dir(base, name: str, run_id: str, attempts: list[dict], stage: str = "check-1of2") -> str:
    """A shard's output dir: its meta and one check journal of consumer b."""
    d = base / name
    fresh = {"plan_id": "plan", "code": runner.run_code()}
    (d / "shards").mkdir(parents=True)
    (d / "shards" / (stage + ".json")).write_text(json.dumps(dict(fresh, run_id=run_id, stage="check")))
    results.append(str(d / "journals" / "b.check-plain.jsonl"), [
        {"event": "run", "run_id": run_id}, {"event": "start", "key": "check|a|b|control|h5", "t": 0.0},
        {"event": "done", "key": "check|a|b|control|h5", "result": {"mode": "plain", "attempts": attempts}}])
    return str(d)


FRESH = {"plan_id": "plan", "code": runner.run_code(), "selection": {}}


def test_merge_refuses_another_runs_shard(tmp_path):
    from harness.errors import TfcompatError
    from harness.shards import merge

    today = shard_dir(tmp_path, "today", "night-2", [att(None, "pass")])
    yesterday = shard_dir(tmp_path, "yesterday", "night-1", [att(None, "pass")], stage="check-2of2")
    with pytest.raises(TfcompatError, match="is of run night-1, not of run night-2"):
        merge([today, yesterday], str(tmp_path / "state"), FRESH)
    # yesterday's journal copied into today's output, under a name no shard of today wrote
    shutil.copy(os.path.join(yesterday, "journals", "b.check-plain.jsonl"),
                os.path.join(today, "journals", "b.check-plain+check-2of2.jsonl"))
    with pytest.raises(TfcompatError, match="holds work of run night-1, not of run night-2"):
        merge([today], str(tmp_path / "state2"), FRESH)


def test_merge_refuses_two_copies_of_a_journal_that_disagree(tmp_path):
    from harness.shards import merge

    one = shard_dir(tmp_path, "one", "night", [att(None, "wrong-output")])
    two = shard_dir(tmp_path, "two", "night", [att(None, "pass")], stage="check-2of2")
    with pytest.raises(process.ShardConflict) as info:
        merge([one, two], str(tmp_path / "state"), FRESH)
    assert os.path.join(one, "journals") in str(info.value) and os.path.join(two, "journals") in str(info.value)
    # the same copy twice (a check shard re-uploads what it downloaded) merges
    same = shard_dir(tmp_path, "same", "night", [att(None, "wrong-output")], stage="check-2of2")
    run_dir, meta = merge([one, same], str(tmp_path / "state"), FRESH)
    assert meta["shards"] == ["check-1of2", "check-2of2"]


# -- 18. a harness defect while re-saving is a harness-error, never a save-error ------------------

def test_a_defect_in_a_re_save_fails_the_run(tmp_path):
    from harness.cli import main

    run = SynthRun(tmp_path / "state" / "runs", ["a", "b"], name="night")
    run.saved("a", "control", "h5")
    run._done("b", "save", "save|control|h5", {
        "status": "harness-error", "fixture": "control", "format": "h5", "error_type": "HarnessDefect",
        "harness_defect": "the rebuilt model already holds the producer's weights before the restore",
        "message": "a harness defect while loading A's artifact to save it again: ...", "warnings": []})
    for p, c in (("a", "a"), ("a", "b")):
        run.checked(p, c, "control", "h5", plain=[att(None, "pass")])
    recs = run.write_results()
    art = next(r for r in recs if (r["producer"], r["consumer"]) == ("b", None))
    assert art["outcome"] == "harness-error" and "already holds" in art["harness_defect"]
    assert records.harness_defects(recs)[0]["producer"] == "b"
    with open(tmp_path / "matrix.yaml", "w") as fh:
        fh.write(MATRIX.replace("tf2.15", "a").replace("tf2.16-keras3", "b"))
    assert main(["--matrix", str(tmp_path / "matrix.yaml"), "--state-dir", str(tmp_path / "state"),
                 "--reports", str(tmp_path / "reports"), "report", "--run", "night"]) == 1
