"""Profiles (profiles/*.yaml beside matrix.yaml) and install recipes: pure logic, no TensorFlow."""

import json
import os
import subprocess
import sys

import pytest
from packaging.specifiers import SpecifierSet
from synth import STUB_FIXTURE

from harness.errors import ConfigError
from harness.matrix import load_matrix, profile_paths as profiles
from harness.recipes import Rule, load_rules, pins_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_profile_is_valid_and_shared_ids_mean_the_same_env(fake_index):
    seen = {}
    for name, path in profiles(ROOT).items():
        for env in load_matrix(path).environments:
            if env.id in seen:
                assert seen[env.id] == env, "%s differs between profiles (%s)" % (env.id, name)
            seen[env.id] = env


def test_plan_prints_each_profile_with_counts(fake_index):
    out = subprocess.run([sys.executable, "-m", "harness", "plan", "--json"], cwd=ROOT,
                         capture_output=True, text=True, check=True, env=dict(os.environ)).stdout
    plan = json.loads(out)
    assert set(profiles(ROOT)) == set(plan["profiles"])
    assert plan["profiles"]["full"]["envs"] > plan["profiles"]["history"]["envs"]
    for info in plan["profiles"].values():
        assert info["checks"] == info["envs"] ** 2 * info["fixtures"] * info["formats"]


def test_unknown_profile_is_one_line_exit_2():
    proc = subprocess.run([sys.executable, "-m", "harness", "--profile", "nosuch", "plan"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "unknown profile 'nosuch'" in proc.stderr


def test_every_recipe_rule_has_why_and_evidence():
    rules = load_rules()
    assert rules
    for rule in rules:
        assert rule.why and rule.evidence


def test_rules_apply_by_range_and_later_rules_win():
    rules = (Rule("a", {"tensorflow": SpecifierSet("<2.9")}, {"protobuf": "<3.20"}, "w", "e"),
             Rule("b", {"tensorflow": SpecifierSet(">=2.14")}, {"tensorflow-hub": "==0.16.1"}, "w", "e"),
             Rule("c", {"python": SpecifierSet("<3.9"), "flavour": "bundled"}, {"protobuf": "<3.19"}, "w", "e"))
    assert pins_for("2.6.5", "3.8", "bundled", rules) == ({"protobuf": "<3.19"}, ["a", "c"])
    assert pins_for("2.15.1", "3.11", "bundled", rules) == ({"tensorflow-hub": "==0.16.1"}, ["b"])
    assert pins_for("2.16.2", "3.11", "3.3.3", rules) == ({"tensorflow-hub": "==0.16.1"}, ["b"])


def one_env_matrix(tmp_path, env: str) -> str:
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "control.py").write_text(STUB_FIXTURE)
    path = tmp_path / "matrix.yaml"
    path.write_text("version: 1\nenvironments:\n  - %s\nfixtures: [control]\nformats: [h5]\n" % env)
    return str(path)


def test_matrix_pins_win_over_recipes(tmp_path):
    path = one_env_matrix(tmp_path, '{id: a, python: "3.8", tensorflow: "2.6.5", keras: bundled, pins: {setuptools: "<70"}}')
    env = load_matrix(path).environments[0]
    assert env.pins["setuptools"] == "<70"
    assert env.recipes  # the rules that applied are recorded


def test_bad_rule_is_a_config_error(tmp_path):
    bad = tmp_path / "recipes.yaml"
    bad.write_text("rules:\n  - {id: x, when: {tensorflow: 'two'}, pins: {a: '<1'}, why: w, evidence: e}\n")
    with pytest.raises(ConfigError, match=r"rules\[0\]\.when\.tensorflow"):
        load_rules(str(bad))


def test_env_id_that_tox_reads_as_a_python_is_refused(tmp_path):
    path = one_env_matrix(tmp_path, '{id: tf2.21-py312, python: "3.12", tensorflow: "2.21.0", keras: "3.15.1"}')
    with pytest.raises(ConfigError, match=r"environments\[0\]\.id: 'tf2.21-py312': tox reads the part 'py312'"):
        load_matrix(path)
