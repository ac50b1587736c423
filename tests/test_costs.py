"""The cost model (recorded seconds per item), the ETA it feeds, and `plan --shards` balancing and
predicting with it. No TensorFlow: costs come from run.json files written here."""

import json
import os
import subprocess
import sys

import pytest
from synth import STUB_FIXTURE

from harness.costs import Costs, flavour
from harness.progress import remaining

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_run(state, run_id, timings, selection=None, keras=None):
    path = state / "runs" / run_id / "run.json"
    path.parent.mkdir(parents=True)
    envs = sorted(timings)
    path.write_text(json.dumps({
        "run_id": run_id, "selection": selection or {"envs": envs, "fixtures": ["control"], "formats": ["h5"]},
        "envs": [{"id": e, "keras": (keras or {}).get(e, "bundled")} for e in envs],
        "segments": [{"env_timings": timings}]}))


def test_rates_come_from_the_newest_record_with_its_item_counts(tmp_path):
    write_run(tmp_path, "20240101-000000", {"a": {"save_s": 100.0, "save_n": 10, "check_plain_s": 50.0,
                                                  "check_plain_n": 50, "check_remedies_s": 30.0,
                                                  "check_remedies_n": 10, "check_n": 60, "create_s": 40.0}})
    write_run(tmp_path, "20240102-000000", {"a": {"save_s": 20.0, "save_n": 10, "create_s": 0.2}})
    costs = Costs.load(str(tmp_path))
    assert costs.rate("a", "save").seconds == 2.0  # the newer run
    assert costs.rate("a", "check").seconds == pytest.approx(80.0 / 60)  # the older run, the only one with checks
    assert costs.rate("a", "check-remedies").seconds == 3.0
    assert costs.create("a").seconds == 40.0  # 0.2 s was a reused env, not a build
    est = costs.estimate("a", "check", 30, build=True)
    assert est.recorded and est.seconds == pytest.approx(40.0 + 30 * 80.0 / 60)
    assert costs.estimate("a", "save", 0).seconds == 0.0


def test_a_record_without_counts_counts_the_runs_selection(tmp_path):
    sel = {"envs": ["a", "b"], "fixtures": ["f1", "f2"], "formats": ["h5", "keras", "weights"]}
    write_run(tmp_path, "20240101-000000", {"a": {"save_s": 12.0, "check_plain_s": 6.0, "check_remedies_s": 6.0},
                                            "b": {"save_s": 6.0}}, selection=sel)
    costs = Costs.load(str(tmp_path))
    assert costs.rate("a", "save").seconds == 2.0  # 6 artifacts
    assert costs.rate("a", "check").seconds == 1.0  # 2 producers x 6 artifacts
    assert costs.rate("a", "check-plain") is None or not costs.rate("a", "check-plain").recorded


def test_an_env_never_timed_is_modelled_on_its_keras_flavour(tmp_path):
    write_run(tmp_path, "20240101-000000", {
        "k2a": {"check_plain_s": 10.0, "check_n": 10}, "k2b": {"check_plain_s": 30.0, "check_n": 10},
        "k3": {"check_plain_s": 100.0, "check_n": 10}}, keras={"k3": "3.3.3"})
    costs = Costs.load(str(tmp_path))
    new3 = costs.rate("new", "check", keras="latest")
    assert (new3.seconds, new3.recorded) == (10.0, False)
    assert costs.rate("new", "check", keras="tf-keras").seconds == 2.0  # median of 1.0 and 3.0
    assert flavour("bundled") == flavour("tf-keras") == flavour("2.15.0") == "keras2" != flavour("3.0.5")
    assert Costs({}).rate("x", "save") is None and Costs({}).estimate("x", "save", 5) is None


def test_an_unreadable_run_json_is_skipped(tmp_path):
    (tmp_path / "runs" / "bad").mkdir(parents=True)
    (tmp_path / "runs" / "bad" / "run.json").write_text("{not json")
    write_run(tmp_path, "20240101-000000", {"a": {"save_s": 5.0, "save_n": 5}})
    assert Costs.load(str(tmp_path)).rate("a", "save").seconds == 1.0


def test_the_eta_starts_from_the_record_and_leans_on_what_is_seen():
    assert remaining(10, 0, 0.0, 3.0) == 30.0
    assert remaining(10, 5, 5.0, 3.0) == pytest.approx(5 * (0.5 * 3.0 + 0.5 * 1.0))
    assert remaining(10, 10, 9.0, 3.0) == 0.0


ENVS = ["a", "b", "c", "d"]


def plan_with_costs(tmp_path, *args):
    """`plan ARGS --json` of a 4-env matrix whose env a's checks were timed at 9x the others'."""
    if not (tmp_path / "matrix.yaml").exists():
        (tmp_path / "fixtures").mkdir()
        (tmp_path / "fixtures" / "control.py").write_text(STUB_FIXTURE)
        (tmp_path / "matrix.yaml").write_text("version: 1\nenvironments:\n" + "".join(
            '  - {id: %s, python: "3.11", tensorflow: "2.15.1", keras: bundled}\n' % e for e in ENVS)
            + "fixtures: [control]\nformats: [h5]\n")
        per_check = {"a": 9.0, "b": 1.0, "c": 1.0, "d": 1.0}
        write_run(tmp_path / "state", "20240101-000000", {
            e: {"save_s": 2.0, "save_n": 1, "check_plain_s": per_check[e] * 4, "check_n": 4} for e in ENVS})
    proc = subprocess.run([sys.executable, "-m", "harness", "--matrix", str(tmp_path / "matrix.yaml"),
                           "--state-dir", str(tmp_path / "state"), "plan", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_plan_balances_shards_by_recorded_cost_and_predicts_the_wall_time(tmp_path):
    plan = json.loads(plan_with_costs(tmp_path, "--shards", "2", "--jobs", "1", "--json"))
    shards = plan["shards"]
    # a's 36 s of checks are more than a machine's share (48 s / 2): split in two parts by producer
    assert sorted(j["envs"] for j in shards["check"]["include"]) == ["a@a+c,b,d", "a@b+d,c"]
    check = shards["expected"]["check"]
    assert (check["unit"], check["recorded"], check["modelled"]) == ("s", True, [])
    assert check["longest_s"] == 26.0 and check["total_s"] == 36.0 + 3 * 4.0 and check["ideal_s"] == 24.0
    assert shards["expected"]["wall_s"] == 26.0 + 4.0  # the longest save job, then the longest check job
    assert plan["expected"]["wall_s"] == 4 * 2.0 + 48.0  # one machine, one env at a time
    text = plan_with_costs(tmp_path, "--jobs", "1")
    assert "expected on this machine (1 envs at once): 56 s (recorded costs)" in text


def test_a_consumer_longer_than_a_machines_share_is_split_by_producer(tmp_path):
    shards = json.loads(plan_with_costs(tmp_path, "--shards", "4", "--jobs", "1", "--json"))["shards"]
    units = [u for j in shards["check"]["include"] for u in j["envs"].split(",")]
    parts = [u for u in units if u.startswith("a@")]
    # a (36 s of checks) against an ideal of 12 s per machine: 4 parts (3 would leave one of 18 s),
    # every producer in one of them
    assert len(parts) == 4 and sorted(p for u in parts for p in u[2:].split("+")) == ENVS
    check = shards["expected"]["check"]
    assert check["longest_s"] <= 1.2 * check["ideal_s"], check
