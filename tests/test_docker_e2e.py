"""The Docker backend on a real engine (started here as root, its base image debootstrapped here):
a tox env and a Docker env of the same specs as an all-tox run, real TensorFlow, both directions.

One module run, in order: the all-tox grid; the mixed grid, with one container killed mid-check;
the same run again, interrupted by Ctrl-C and resumed (no image rebuilt); a pin change (one image
rebuilt); `tfcompat envs` and `--prune`.
"""

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from docker_engine import Engine, base_image

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K2, K3 = "tf2.15", "tf2.16-keras3"  # the same specs as matrix.yaml's, so the tox envs are shared
PAUSED = "check|%s|%s|control|keras" % (K2, K3)


def matrix(path, backend="", pins=""):
    path.write_text("""version: 1
defaults: {python: "3.11"}
check_timeout: 120
environments:
  - {id: %s, tensorflow: "2.15.1", keras: bundled}
  - {id: %s, tensorflow: "2.16.2", keras: "3.3.3"%s%s}
fixtures: [control, custom_layer, hub_layer]
formats: [keras, h5, savedmodel, checkpoint]
""" % (K2, K3, backend, pins))
    return str(path)


def _as_a_terminal():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def tfcompat(base, matrix_path, *args, env=None, background=False):
    cmd = [sys.executable, "-m", "harness", "--matrix", matrix_path, "--state-dir", str(base / "state"),
           "--reports", str(base / "reports"), *args]
    full = {**os.environ, **(env or {})}
    if background:
        return subprocess.Popen(cmd, cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True, preexec_fn=_as_a_terminal)
    return subprocess.run(cmd, cwd=ROOT, env=full, capture_output=True, text=True)


def grid(records):
    """What a grid cell says: outcome, remedy, what was lost."""
    return {(r["producer"], r["consumer"], r["fixture"], r["format"]): (r["outcome"], r["remedy"], tuple(r["lost"]))
            for r in records}


def records(base):
    with open(base / "reports" / "results.jsonl") as fh:
        return [json.loads(line) for line in fh]


def runs_in(base):
    return set(glob.glob(str(base / "state" / "runs" / "*")))


def started(base, key=None, before=frozenset()):
    """True once the Docker env's no-remedy journal of a run not in `before` shows a check starting."""
    from harness import results

    for run_dir in runs_in(base) - set(before):
        for ev in results.read(os.path.join(run_dir, "journals", K3 + ".check-plain.jsonl")):
            if ev.get("event") == "start" and (key is None or ev.get("key") == key):
                return True
    return False


@pytest.fixture(scope="module")
def engine():
    eng = Engine().start()
    image = base_image(eng.host)
    yield eng.host, image
    eng.stop()


@pytest.fixture(scope="module")
def runs(engine, tmp_path_factory):
    import docker

    host, image = engine
    client = docker.DockerClient(base_url=host)
    env = {"DOCKER_HOST": host}
    base = tmp_path_factory.mktemp("docker")
    out = {"host": host, "base": base}
    docker_backend = ', backend: {docker: {base_image: "%s"}}' % image
    for old in client.images.list(filters={"label": "tfcompat.env=" + K3}):
        client.images.remove(old.id, force=True)  # each module run builds its images: a cold build

    tox_dir = base / "tox"
    tox_dir.mkdir()
    proc = tfcompat(tox_dir, matrix(tox_dir / "matrix.yaml"), "run", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out["tox"] = records(tox_dir)

    # The mixed run; one container is killed while its worker holds a check (paused there).
    mixed = base / "mixed"
    mixed.mkdir()
    a = matrix(mixed / "matrix.yaml", docker_backend)
    killed = []

    def killer():
        deadline = time.time() + 1500
        while time.time() < deadline and not killed:
            if started(mixed, PAUSED):
                for c in client.containers.list(filters={"label": "tfcompat.env=" + K3}):
                    c.kill()
                    killed.append(c.id)
            time.sleep(0.5)

    watcher = threading.Thread(target=killer, daemon=True)
    watcher.start()
    t = time.time()
    proc = tfcompat(mixed, a, "run", env=dict(env, TFCOMPAT_WORKER_PAUSE=PAUSED, TFCOMPAT_WORKER_PAUSE_S="15"))
    out["mixed_s"] = time.time() - t
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out["mixed"], out["mixed_out"], out["killed"] = records(mixed), proc.stdout, killed
    out["images"] = {i.id for i in client.images.list(filters={"label": "tfcompat.env=" + K3})}
    with open(mixed / "reports" / "run.json") as fh:
        out["mixed_meta"] = json.load(fh)

    # The same run again: Ctrl-C while the Docker env checks, then --resume.
    before = runs_in(mixed)
    proc = tfcompat(mixed, a, "run", "--refresh", env=env, background=True)  # recompute: no cache
    deadline = time.time() + 900
    while not started(mixed, before=before) and time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    interrupted, _ = proc.communicate(timeout=120)
    out["interrupted"] = (proc.returncode, interrupted)
    (run_dir,) = runs_in(mixed) - before
    run_id = os.path.basename(run_dir)
    out["left_running"] = client.containers.list(all=True, filters={"label": "tfcompat.run=" + run_id})
    proc = tfcompat(mixed, a, "run", "--resume", env=env)
    out["resumed"] = (proc.returncode, proc.stdout + proc.stderr)
    out["resumed_records"] = records(mixed)
    out["images_after"] = {i.id for i in client.images.list(filters={"label": "tfcompat.env=" + K3})}

    # A pin changes: that env's image is rebuilt.
    pinned = base / "pinned"
    pinned.mkdir()
    c = matrix(pinned / "matrix.yaml", docker_backend, ', pins: {six: "==1.16.0"}')
    proc = tfcompat(pinned, c, "run", "--only", K3, "--fixtures", "control", "--formats", "keras", env=env)
    out["pinned"] = (proc.returncode, proc.stdout + proc.stderr)
    out["images_pinned"] = {i.id for i in client.images.list(filters={"label": "tfcompat.env=" + K3})}
    listing = tfcompat(pinned, c, "envs", env=env)
    pruned = tfcompat(pinned, c, "envs", "--prune", env=env)
    out["envs"], out["pruned"] = listing.stdout + listing.stderr, pruned.stdout + pruned.stderr
    out["images_pruned"] = {i.id for i in client.images.list(filters={"label": "tfcompat.env=" + K3})}

    # Last: the daemon goes away while the Docker env checks.
    dead = base / "dead"
    dead.mkdir()
    proc = tfcompat(dead, c, "run", env=env, background=True)
    deadline = time.time() + 900
    while not started(dead) and time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.3)
    Engine().terminate()
    text, _ = proc.communicate(timeout=900)
    out["dead"] = (proc.returncode, text, records(dead) if (dead / "reports" / "results.jsonl").exists() else [])
    return out


def test_the_mixed_grid_equals_the_all_tox_grid(runs):
    tox, mixed = grid(runs["tox"]), grid(runs["mixed"])
    # 2 producers x 3 fixtures x 4 formats, each artifact 2 consumer cells or 1 save-error row
    saved = {(k[0], k[2], k[3]) for k in tox if k[1] is not None}
    assert len(tox) == 2 * len(saved) + (2 * 3 * 4 - len(saved)) and set(tox) == set(mixed)
    assert mixed == tox, {k: (tox[k], mixed[k]) for k in tox if tox[k] != mixed[k]}
    # both directions held something to compare: Keras 2 -> Keras 3 breaks some formats
    assert {v[0] for k, v in mixed.items() if k[0] != k[1]} - {"pass", "pass-with-remedy"}
    backends = {(r["producer"], r["consumer"]): r["backends"] for r in runs["mixed"] if r["consumer"]}
    assert backends[(K2, K3)] == {"producer": "tox", "consumer": "docker"}
    assert backends[(K3, K2)] == {"producer": "docker", "consumer": "tox"}
    envs = {e["id"]: e["backend"] for e in runs["mixed_meta"]["envs"]}
    assert envs == {K2: "tox", K3: "docker"}
    page = (runs["base"] / "mixed" / "reports" / "index.html").read_text()
    assert '<small class="be">docker</small>' in page


def test_hub_artifacts_made_in_a_container_load_on_the_host_and_back(runs):
    mixed = grid(runs["mixed"])
    for producer, consumer in ((K3, K2), (K2, K3), (K3, K3)):
        assert mixed[(producer, consumer, "hub_layer", "savedmodel")][0] != "harness-error"
    # the module path written into the artifact resolves on both sides: same outcome as the tox run
    same = [k for k in mixed if k[2] == "hub_layer"]
    assert all(mixed[k] == grid(runs["tox"])[k] for k in same)


def test_checks_in_a_container_see_no_network(runs):
    for rec in runs["mixed"]:
        if rec["consumer"] == K3:
            assert rec["network"] == "none (loopback only)", rec["network"]
    assert runs["mixed_meta"]["check_network"].startswith("off")


def test_a_killed_container_is_retried_and_the_run_completes(runs):
    assert len(runs["killed"]) == 1
    cell = next(r for r in runs["mixed"] if (r["producer"], r["consumer"], r["fixture"], r["format"])
                == (K2, K3, "control", "keras"))
    outcomes = [a["outcome"] for a in cell["attempts"]]
    assert outcomes[0] == "crash" and "killed by signal SIGKILL" in cell["attempts"][0]["message"]
    # the cell is what the all-tox run says, and says that a process was killed on it
    assert cell["outcome"] == grid(runs["tox"])[(K2, K3, "control", "keras")][0]
    assert "retried once in a fresh process" in cell["hint"]


def test_ctrl_c_removes_the_containers_and_resume_finishes(runs):
    code, text = runs["interrupted"]
    assert code == 130 and "interrupted; finish with `tfcompat run --resume`" in text, text
    assert runs["left_running"] == []
    code, text = runs["resumed"]
    assert code == 0, text
    assert "%s env reused" % K3 in text.replace("  ", " ").replace("  ", " ") or "env reused" in text
    assert grid(runs["resumed_records"]) == grid(runs["tox"])
    assert runs["images_after"] == runs["images"]  # nothing changed: no image was built


def test_a_daemon_that_dies_mid_run_is_an_env_error_for_its_env_only(runs):
    code, text, recs = runs["dead"]
    assert code == 0 and "Traceback" not in text, text
    line = next(ln for ln in text.splitlines() if "env-error" in ln)
    assert "%s: docker: cannot reach the engine at %s" % (K3, runs["host"]) in line, line
    assert line.endswith("start dockerd or use the tox backend")
    by_consumer = {}
    for rec in recs:
        by_consumer.setdefault(rec["consumer"], set()).add(rec["outcome"])
    assert by_consumer[K3] == {"env-error"}
    assert "env-error" not in by_consumer[K2]  # the tox env checked the Docker env's artifacts


def test_a_changed_pin_rebuilds_the_image_and_prune_removes_the_stale_one(runs):
    code, text = runs["pinned"]
    assert code == 0 and "env built" in text, text
    new = runs["images_pinned"] - runs["images"]
    assert len(new) == 1 and runs["images"] <= runs["images_pinned"]
    lines = [ln for ln in runs["envs"].splitlines() if ln.startswith("docker ")]
    states = sorted(ln.split()[2] for ln in lines)
    assert states == ["current", "stale"], runs["envs"]
    assert "removed docker tfcompat-env:%s-" % K3 in runs["pruned"]
    assert runs["images_pruned"] == new
