"""The nightly workflow's own `run:` steps, run here on CI machines simulated as fresh state dirs at
one workspace path (as CI workspaces are), artifacts uploaded and downloaded by copying: two nights
of a tiny real-TF matrix, compared with a single-machine run of the same matrix.

Night 1 computes everything in 2 save and 2 check shards (each consumer split in two parts by
producer); night 2, with nothing changed, plans no
job and its merge comes from the cache; a shard of another plan is refused.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

# The slow tier (`tox -e tests -- -m slow`, nightly: .github/workflows/slow-tests.yml).
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOW = os.path.join(ROOT, ".github", "workflows", "nightly.yml")
MATRIX = """version: 1
defaults: {python: "3.11"}
check_timeout: 120
environments:
  - {id: tf2.15, tensorflow: "2.15.1", keras: bundled}
  - {id: tf2.16-keras3, tensorflow: "2.16.2", keras: "3.3.3"}
fixtures: [control, hub_layer]
formats: [h5, keras, savedmodel]
"""


def workflow():
    with open(WORKFLOW) as fh:
        return yaml.safe_load(fh)


def step(job, name):
    (found,) = [s for s in workflow()["jobs"][job]["steps"] if s.get("name") == name]
    return found


class Machine:
    """One CI job: a fresh `.tfcompat` at the workspace path, the step's `${{ }}` filled in."""

    def __init__(self, workspace, values):
        self.ws = workspace
        self.values = values  # expression -> value, e.g. "matrix.shard" -> "1/2"
        self.state = os.path.join(workspace, ".tfcompat")
        shutil.rmtree(self.state, ignore_errors=True)

    def fill(self, text):
        def value(m):
            expr = m.group(1).strip()
            assert expr in self.values, "the test does not know ${{ %s }}" % expr
            return self.values[expr]
        return re.sub(r"\$\{\{(.+?)\}\}", value, str(text))

    def run(self, job, name):
        s = step(job, name)
        out = os.path.join(self.ws, "github_output")
        open(out, "w").close()
        env = dict(os.environ, STATE=self.state, GITHUB_OUTPUT=out,
                   GITHUB_STEP_SUMMARY=os.path.join(self.ws, "summary.md"),
                   TFCOMPAT_MATRIX=os.path.join(self.ws, "matrix.yaml"),
                   TFCOMPAT_PROFILE=self.fill(workflow()["env"]["TFCOMPAT_PROFILE"]))
        env.update({k: self.fill(v) for k, v in (s.get("env") or {}).items()})
        proc = subprocess.run(["bash", "-e", "-c", s["run"]], cwd=self.ws, env=env, capture_output=True, text=True)
        outputs = dict(line.split("=", 1) for line in open(out).read().splitlines() if "=" in line)
        return proc, outputs

    def upload(self, run_id, where):
        shutil.copytree(os.path.join(self.state, "runs", run_id), where)

    def download(self, uploads, run_id, job):
        """actions/download-artifact as the job's step says: every upload merged into one folder
        (merge-multiple) or each in a folder of its own, named by the artifact."""
        (s,) = [s for s in workflow()["jobs"][job]["steps"] if "download-artifact" in str(s.get("uses"))]
        where = os.path.join(self.ws, self.fill(s["with"]["path"]))
        for d in uploads:
            own = "" if s["with"].get("merge-multiple") else os.path.basename(d)
            shutil.copytree(d, os.path.join(where, own), dirs_exist_ok=True)

    def keep_state(self, where):  # actions/cache/save
        shutil.rmtree(where, ignore_errors=True)
        shutil.copytree(self.state, where, symlinks=True)

    def restore_state(self, where):  # actions/cache/restore
        if os.path.isdir(where):
            shutil.copytree(where, self.state, symlinks=True, dirs_exist_ok=True)


def night(base, ws, saved_state):
    """One night of the workflow: plan, save shards, check shards, merge. Returns what it saw."""
    seen = {"uploads": []}
    common = {"inputs.profile || 'default'": "default", "inputs.shards || '4'": "2"}
    plan = Machine(ws, common)
    plan.restore_state(saved_state)
    proc, out = plan.run("plan", "plan")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen["plan"] = out
    run_id = out["run_id"]
    for stage in ("save", "check"):
        jobs = json.loads(out[stage])["include"]
        assert len(jobs) == int(out[stage + "_jobs"])
        uploads = [u for u in seen["uploads"] if os.path.basename(u).startswith("save-")]
        for i, job in enumerate(jobs):
            m = Machine(ws, dict(common, **{"matrix.shard": job["shard"], "matrix.envs": job["envs"],
                                           "needs.plan.outputs.run_id": run_id}))
            m.restore_state(saved_state)
            if stage == "check":
                m.download(uploads, run_id, "check")
            proc, _ = m.run(stage, "%s shard" % stage)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            where = os.path.join(base, "uploads-%s" % run_id, "%s-%d" % (stage, i))
            m.upload(run_id, where)
            seen["uploads"].append(where)
    merge = Machine(ws, dict(common, **{"needs.plan.outputs.run_id": run_id}))
    merge.restore_state(saved_state)
    shutil.rmtree(os.path.join(ws, "shards"), ignore_errors=True)
    merge.download(seen["uploads"], run_id, "merge")
    shutil.rmtree(os.path.join(ws, "reports"), ignore_errors=True)
    proc, _ = merge.run("merge", "merge")
    seen["merge"] = proc
    with open(os.path.join(ws, "reports", "results.jsonl")) as fh:
        seen["records"] = [json.loads(line) for line in fh]
    with open(os.path.join(ws, "reports", "run.json")) as fh:
        seen["meta"] = json.load(fh)
    merge.keep_state(saved_state)
    return seen


def grid(records):
    return {(r["producer"], r["consumer"], r["fixture"], r["format"]): (r["outcome"], r["remedy"], r["lost"])
            for r in records}


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    base = tmp_path_factory.mktemp("shards")
    single = base / "single"
    single.mkdir()
    (single / "matrix.yaml").write_text(MATRIX)
    proc = subprocess.run([sys.executable, "-m", "harness", "--matrix", str(single / "matrix.yaml"), "--state-dir",
                           str(single / "state"), "--reports", str(single / "reports"), "run"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(single / "reports" / "results.jsonl") as fh:
        single_records = [json.loads(line) for line in fh]
    ws = base / "workspace"
    ws.mkdir()
    (ws / "matrix.yaml").write_text(MATRIX)
    saved = str(base / "actions-cache")
    first = night(str(base), str(ws), saved)
    second = night(str(base), str(ws), saved)
    return {"single": single_records, "first": first, "second": second, "base": base, "ws": ws}


def test_night_one_runs_in_shards_and_gives_the_single_machine_grid(nights):
    first = nights["first"]
    assert first["merge"].returncode == 0, first["merge"].stdout + first["merge"].stderr
    assert int(first["plan"]["save_jobs"]) == 2 and int(first["plan"]["check_jobs"]) == 2
    # each consumer is longer than a machine's share: each check shard checks both consumers against
    # one producer's artifacts (consumers split in parts, journaled apart, merged into one column)
    checks = sorted(j["envs"] for j in json.loads(first["plan"]["check"])["include"])
    assert checks == ["tf2.15@tf2.15,tf2.16-keras3@tf2.15", "tf2.15@tf2.16-keras3,tf2.16-keras3@tf2.16-keras3"]
    assert grid(first["records"]) == grid(nights["single"])
    assert sorted(first["meta"]["shards"]) == ["check-1of2", "check-2of2", "save-1of2", "save-2of2"]
    assert not any(r["cached"] for r in first["records"])
    assert (nights["ws"] / "reports" / "junit.xml").exists()


def test_night_two_with_nothing_changed_plans_no_job_and_merges_from_the_cache(nights):
    second = nights["second"]
    assert second["merge"].returncode == 0, second["merge"].stdout + second["merge"].stderr
    assert second["plan"]["save_jobs"] == "0" and second["plan"]["check_jobs"] == "0"
    assert grid(second["records"]) == grid(nights["single"])
    # every checked cell is the first night's record (not-applicable cells need no check)
    assert all(r["cached"] for r in second["records"] if r["consumer"] and r["outcome"] != "not-applicable")
    # the first night's merged results were the baseline: nothing changed
    summary = (nights["ws"] / "summary.md").read_text()
    assert "0 regression(s)" in summary and "0 coverage lost" in summary and "0 improvement(s)" in summary


def test_merge_refuses_a_shard_of_another_plan_and_is_idempotent(nights):
    first = nights["first"]
    upload = first["uploads"][0]
    other = nights["base"] / "other-plan"
    shutil.copytree(upload, other)
    for name in os.listdir(other / "shards"):
        meta = json.loads((other / "shards" / name).read_text())
        meta["plan_id"] = "0123456789abcdef"
        (other / "shards" / name).write_text(json.dumps(meta))
    cmd = [sys.executable, "-m", "harness", "--matrix", str(nights["ws"] / "matrix.yaml"), "--state-dir",
           str(nights["base"] / "merge-state"), "--reports", str(nights["base"] / "merge-reports"), "merge"]
    proc = subprocess.run(cmd + [str(other)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "is of plan 0123456789abcdef" in proc.stderr
    twice = []
    for _ in range(2):
        proc = subprocess.run(cmd + first["uploads"], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        with open(nights["base"] / "merge-reports" / "results.jsonl") as fh:
            twice.append(grid([json.loads(line) for line in fh]))
    assert twice[0] == twice[1] == grid(nights["single"])
