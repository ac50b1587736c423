"""The result cache's keys and entries (pure: no TF, no envs)."""

import json
import os

from harness.cache import ResultCache, artifact_digest, artifact_key, cell_key, env_fingerprint, fixture_hash
from harness.matrix import EnvSpec


def spec(**kw):
    base = dict(id="a", python="3.11", tensorflow="2.15.1", keras="bundled")
    base.update(kw)
    return EnvSpec(**base)


INSTALLED = {"python": "3.11.7", "packages": {"tensorflow": "2.15.1", "numpy": "1.26.4"}}


def test_env_fingerprint_is_what_is_installed_not_where():
    fp = env_fingerprint(spec(), INSTALLED)
    # the id and the backend are not part of it: the same packages under tox or Docker share results
    assert fp == env_fingerprint(spec(id="b", backend={"name": "docker"}), INSTALLED)
    moved = [env_fingerprint(spec(), dict(INSTALLED, python="3.11.2")),
             env_fingerprint(spec(), {"python": "3.11.7", "packages": dict(INSTALLED["packages"], numpy="1.26.5")}),
             env_fingerprint(spec(pins={"numpy": "<2"}), INSTALLED),
             env_fingerprint(spec(set_env={"X": "1"}), INSTALLED)]
    assert fp not in moved and len(set(moved)) == len(moved)


def test_fixture_hash_follows_the_module_and_the_helpers_it_imports(tmp_path):
    """(Packages, relative imports and data files: tests/test_trust.py.)"""
    (tmp_path / "fx.py").write_text("import _helpers\nfrom _more import thing\nimport numpy\n")
    (tmp_path / "_helpers.py").write_text("A = 1\n")
    (tmp_path / "_more.py").write_text("thing = 1\n")
    (tmp_path / "unrelated.py").write_text("B = 1\n")
    h = fixture_hash(str(tmp_path / "fx.py"))
    (tmp_path / "unrelated.py").write_text("B = 2\n")
    assert fixture_hash(str(tmp_path / "fx.py")) == h
    (tmp_path / "_more.py").write_text("thing = 2\n")
    h2 = fixture_hash(str(tmp_path / "fx.py"))
    assert h2 != h
    (tmp_path / "fx.py").write_text("import _helpers\nfrom _more import thing\nimport numpy\n# edited\n")
    assert fixture_hash(str(tmp_path / "fx.py")) not in (h, h2)


def test_keys_move_with_everything_a_result_depends_on():
    tol = {"predictions": {"atol": 1e-5, "rtol": 1e-5}}
    base = cell_key("p", "c", "f", "h5", tol, 60.0, "art")
    assert len({base, cell_key("c", "p", "f", "h5", tol, 60.0, "art"), cell_key("p", "c", "g", "h5", tol, 60.0, "art"),
                cell_key("p", "c", "f", "keras", tol, 60.0, "art"), cell_key("p", "c", "f", "h5", tol, 120.0, "art"),
                cell_key("p", "c", "f", "h5", {"predictions": {"atol": 1e-4, "rtol": 1e-5}}, 60.0, "art"),
                cell_key("p", "c", "f", "h5", tol, 60.0, "another artifact"),
                cell_key("p", "c", "f", "h5", tol, 60.0, "art", code="other code")}) == 8
    assert artifact_key("p", "f", "h5") != artifact_key("p", "f", "keras") != base


def test_entries_round_trip_and_untrustworthy_ones_are_dropped(tmp_path):
    cache = ResultCache(str(tmp_path / "state"))
    art = tmp_path / "runs" / "r1" / "artifacts" / "a" / "control" / "h5"
    art.mkdir(parents=True)
    (art / "meta.json").write_text('{"status": "saved"}')
    (art / "model.h5").write_bytes(b"x" * 10)
    cache.put_artifact("k1", {"status": "saved"}, str(art), "r1", {"tensorflow": "2.15.1"})
    entry = cache.artifact("k1")
    assert entry["artifact_dir"] == str(art) and entry["run_id"] == "r1" and entry["digest"] == artifact_digest(str(art))
    (art / "model.h5").write_bytes(b"y" * 10)  # rewritten, same size: no longer the artifact that was saved
    assert cache.artifact("k1") is None and cache.dropped == 1
    assert not os.path.exists(cache._path("artifacts", "k1"))

    cache.put_cell("c1", {"outcome": "pass", "run_id": "r1", "attempts": [{"remedy": None, "outcome": "pass"}]})
    assert cache.cell("c1")["record"]["run_id"] == "r1"
    with open(cache._path("cells", "c1"), "w") as fh:
        fh.write('{"record": {"outcome": "pa')  # a torn write
    assert cache.cell("c1") is None and cache.dropped == 2
    with open(cache._path("cells", "c1"), "w") as fh:
        json.dump({"key": "another", "record": {"outcome": "pass"}}, fh)  # filed under the wrong key
    assert cache.cell("c1") is None


def test_only_results_worth_keeping_are_kept(tmp_path):
    cache = ResultCache(str(tmp_path))
    attempts = [{"remedy": None, "outcome": "pass"}]
    for i, outcome in enumerate(["crash", "timeout", "env-error", "harness-error", "not-applicable"]):
        cache.put_cell("x%d" % i, {"outcome": outcome, "attempts": attempts})
        assert cache.cell("x%d" % i) is None
    cache.put_cell("y", {"outcome": "wrong-output", "cached": True, "attempts": attempts})  # a reused record
    assert cache.cell("y") is None
    cache.put_cell("z", {"outcome": "pass", "attempts": []})  # nothing to judge again
    assert cache.cell("z") is None
    cache.put_artifact("z", {"status": "lost"}, str(tmp_path), "r", None)
    assert cache.artifact("z") is None
