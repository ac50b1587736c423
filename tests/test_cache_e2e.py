"""The result cache on real envs: a re-run with nothing changed imports no TensorFlow and gives the
same grid; an edited fixture recomputes only its cells; a corrupt entry is dropped and recomputed;
`--refresh ENV` recomputes that env's row and column; `plan` says what will run."""

import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K2, K3 = "tf2.15", "tf2.16-keras3"  # matrix.yaml's specs: the tox envs are shared with test_e2e.py


def tfcompat(base, *args):
    return subprocess.run([sys.executable, "-m", "harness", "--matrix", str(base / "matrix.yaml"), "--state-dir",
                           str(base / "state"), "--reports", str(base / "reports"), *args],
                          cwd=ROOT, capture_output=True, text=True)


def run(base, *args):
    proc = tfcompat(base, "run", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(base / "reports" / "results.jsonl") as fh:
        records = [json.loads(line) for line in fh]
    with open(base / "reports" / "run.json") as fh:
        meta = json.load(fh)
    return {(r["producer"], r["consumer"], r["fixture"], r["format"]): r for r in records}, meta, proc.stdout


def grid(cells):
    return {k: (r["outcome"], r["remedy"], r["lost"]) for k, r in cells.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("cache")
    (base / "fixtures").mkdir()
    shutil.copy(os.path.join(ROOT, "fixtures", "custom_layer.py"), base / "fixtures" / "custom_layer.py")
    (base / "matrix.yaml").write_text("""version: 1
defaults: {python: "3.11"}
check_timeout: 120
environments:
  - {id: %s, tensorflow: "2.15.1", keras: bundled}
  - {id: %s, tensorflow: "2.16.2", keras: "3.3.3"}
fixtures: [control, custom_layer]
formats: [h5, keras]
""" % (K2, K3))
    out = {"first": run(base)}
    out["again"] = run(base)
    with open(base / "fixtures" / "custom_layer.py", "a") as fh:
        fh.write("\n# edited: the source hash changes, so do its cells' keys\n")
    plan = tfcompat(base, "plan", "--json")
    out["plan"] = json.loads(plan.stdout)
    out["edited"] = run(base)
    # Tear one cell entry: it must be dropped and its cell recomputed, not trusted.
    entries = sorted((base / "state" / "cache" / "cells").rglob("*.json"))
    out["entries"] = len(entries)
    # One the next run looks up: a control cell (custom_layer's first entries are stale since the edit).
    current = [e for e in entries if json.loads(e.read_text())["record"]["fixture"] == "control"]
    with open(current[0]) as fh:
        torn_key = json.load(fh)["record"]
    current[0].write_text(current[0].read_text()[:40])
    out["torn"] = (torn_key["producer"], torn_key["consumer"], torn_key["fixture"], torn_key["format"])
    out["after_tear"] = run(base)
    out["refreshed"] = run(base, "--refresh", K2)
    return out


def test_a_rerun_with_nothing_changed_imports_no_tensorflow_and_gives_the_same_grid(runs):
    first, _, _ = runs["first"]
    again, meta, out = runs["again"]
    assert not any(r["cached"] for r in first.values())
    assert grid(again) == grid(first)
    assert all(r["cached"] and r["cached_from"] == first[k]["run_id"] for k, r in again.items() if r["consumer"])
    assert meta["tf_imports"] == {K2: {"save": 0, "plain": 0, "remedies": 0},
                                  K3: {"save": 0, "plain": 0, "remedies": 0}}
    assert sum(1 for line in out.splitlines() if line.endswith("all cached: env not needed")) == 2
    assert meta["cache"]["cells_reused"] == sum(1 for r in again.values() if r["consumer"])


def test_plan_shows_what_the_edit_will_recompute(runs):
    plan = runs["plan"]
    # custom_layer's cells only: 2 producers x 2 consumers x 2 formats
    assert plan["checks_to_run"] == 2 * 2 * 2
    assert {env: c["artifacts_to_run"] for env, c in plan["cache"].items()} == {K2: 2, K3: 2}
    # the envs tox-uv built hold exactly what their requirements resolve to today: no drift
    assert plan["drift"] == {}


def test_an_edited_fixture_recomputes_only_its_cells(runs):
    first, _, _ = runs["first"]
    edited, meta, _ = runs["edited"]
    assert {k[2] for k, r in edited.items() if r["consumer"] and not r["cached"]} == {"custom_layer"}
    assert all(r["cached"] for k, r in edited.items() if k[2] == "control")
    assert grid(edited) == grid(first)  # same source, same behaviour: only the key moved
    assert meta["tf_imports"][K2]["save"] == 1


def test_a_torn_entry_is_dropped_and_recomputed(runs):
    cells, meta, _ = runs["after_tear"]
    assert meta["cache"]["entries_dropped"] == 1
    assert cells[runs["torn"]]["cached"] is False
    assert sum(1 for r in cells.values() if r["consumer"] and not r["cached"]) == 1


def test_refresh_recomputes_that_envs_row_and_column(runs):
    cells, meta, _ = runs["refreshed"]
    fresh = {k for k, r in cells.items() if r["consumer"] and not r["cached"]}
    assert fresh == {k for k, r in cells.items() if r["consumer"] and K2 in (k[0], k[1])}
    assert grid(cells) == grid(runs["first"][0])
    assert meta["cache"]["refresh"] == [K2]
