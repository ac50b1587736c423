"""Shard planning's pure parts: balanced, deterministic groups; the shard syntax."""

import pytest

from harness.errors import ConfigError
from harness.runner import shard_groups
from harness.shards import _job, parse_shard, parse_units


def test_groups_are_balanced_by_cost_and_deterministic():
    envs = ["a", "b", "c", "d", "e"]
    cost = {"a": 100.0, "b": 60.0, "c": 50.0, "d": 40.0, "e": 10.0}
    groups = shard_groups(envs, 2, cost)
    loads = sorted(sum(cost[e] for e in g) for g in groups)
    assert loads == [120.0, 140.0] and sorted(e for g in groups for e in g) == envs  # longest first
    assert shard_groups(envs, 2, cost) == groups
    # within 1.2x of total / machines whenever no single env is longer than that
    total = sum(cost.values())
    assert max(loads) <= 1.2 * total / 2


def test_more_machines_than_envs_and_no_costs():
    assert shard_groups(["a", "b"], 5, {}) == [["a"], ["b"]]
    assert shard_groups([], 3, {}) == []
    assert [len(g) for g in shard_groups(list("abcdefg"), 3, {})] == [3, 2, 2]


@pytest.mark.parametrize("text", ["0/2", "3/2", "a/b", "2"])
def test_a_bad_shard_is_one_line(text):
    with pytest.raises(ConfigError, match="--shard: .* is not I/N"):
        parse_shard(text)
    assert parse_shard("2/4") == (2, 4)


def test_split_consumers_are_named_by_their_producers_and_parts_in_one_job_are_joined():
    assert _job(["a@p1+p2", "b", "a@p3"]) == ["a@p1+p2+p3", "b"]
    assert _job(["a@p1", "a"]) == ["a"]  # the whole consumer covers its part
    assert parse_units(["a@p1+p2", "b"], ("a", "b", "p1", "p2")) == (("a", "b"), {"a": ("p1", "p2")})
    with pytest.raises(ConfigError, match="--envs: unknown environment 'p9'"):
        parse_units(["a@p1+p9"], ("a", "p1"))
