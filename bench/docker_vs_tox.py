"""The Docker backend's figures: image build time (cold, unchanged spec), TF imports per env, and a
run's wall time with one env in Docker next to the same 2-env matrix all in tox.

    python bench/docker_vs_tox.py                      # starts the tests' dockerd if none answers
    DOCKER_HOST=unix:///run/docker.sock python bench/docker_vs_tox.py --base-image python:3.11-slim

The matrix: tf2.15 (tox) and tf2.16-keras3 (tox, then docker), the default fixtures and formats.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))


def matrix(path: str, backend: str) -> str:
    from harness.matrix import load_matrix

    default = load_matrix(os.path.join(ROOT, "matrix.yaml"))
    with open(path, "w") as fh:
        fh.write("version: 1\ndefaults: {python: \"3.11\"}\ncheck_timeout: 120\nenvironments:\n"
                 "  - {id: tf2.15, tensorflow: \"2.15.1\", keras: bundled}\n"
                 "  - {id: tf2.16-keras3, tensorflow: \"2.16.2\", keras: \"3.3.3\"%s}\n"
                 "fixtures: [%s]\nformats: [%s]\n" % (backend, ", ".join(f.name for f in default.fixtures),
                                                       ", ".join(default.formats)))
    return path


def run(workdir: str, matrix_path: str) -> dict:
    t = time.time()
    proc = subprocess.run([sys.executable, "-m", "harness", "--matrix", matrix_path, "--state-dir",
                           os.path.join(workdir, "state"), "--reports", os.path.join(workdir, "reports"), "run"],
                          cwd=ROOT, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.exit(proc.stdout + proc.stderr)
    with open(os.path.join(workdir, "reports", "run.json")) as fh:
        meta = json.load(fh)
    with open(os.path.join(workdir, "reports", "results.jsonl")) as fh:
        cells = {(r["producer"], r["consumer"], r["fixture"], r["format"]): (r["outcome"], r["remedy"], r["lost"])
                 for r in map(json.loads, fh)}
    return {"wall_s": round(time.time() - t, 1), "meta": meta, "cells": cells}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-image", default=None, help="default: the tests' debootstrapped Debian python3 image")
    args = ap.parse_args()
    if not os.environ.get("DOCKER_HOST"):
        from docker_engine import Engine

        os.environ["DOCKER_HOST"] = Engine().start().host
    image = args.base_image
    if image is None:
        from docker_engine import base_image

        image = base_image(os.environ["DOCKER_HOST"])
    import docker

    from harness.backends.base import Where
    from harness.backends.docker import DockerBackend
    from harness.matrix import load_matrix

    client = docker.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        docker_matrix = matrix(os.path.join(tmp, "docker.yaml"), ', backend: {docker: {base_image: "%s"}}' % image)
        spec = load_matrix(docker_matrix).env("tf2.16-keras3")
        where = Where(ROOT, os.path.join(tmp, "envstate"), os.path.join(tmp, "logs"), docker_matrix)
        backend = DockerBackend(spec, where)
        _, tag = backend.wanted(client)
        for img in client.images.list(filters={"label": "tfcompat.env=tf2.16-keras3"}):
            client.images.remove(img.id, force=True)
        client.images.prune(filters={"dangling": False, "label": "tfcompat.env"})
        t = time.time()
        backend.create()
        cold = time.time() - t
        t = time.time()
        again = DockerBackend(spec, where).create()
        warm = time.time() - t
        size = client.images.get(tag).attrs["Size"] / 1e9
        print("image %s: cold build %.0f s (from the base image, packages downloaded), %.1f GB; "
              "unchanged spec %.2f s (rebuilt: %s)" % (tag, cold, size, warm, again))
        figures = {}
        for name, path in (("tox", matrix(os.path.join(tmp, "tox.yaml"), "")), ("docker", docker_matrix)):
            workdir = os.path.join(tmp, name)
            os.makedirs(workdir)
            figures[name] = run(workdir, path)
        for name, fig in figures.items():
            meta = fig["meta"]
            print("%-6s run: %d records in %.0f s wall (run.json %.0f s); TF imports %s; outcomes %s" % (
                name, meta["checks"], fig["wall_s"], meta["duration_s"],
                json.dumps(meta["tf_imports"], sort_keys=True), json.dumps(meta["outcome_counts"], sort_keys=True)))
            print("        phases: %s" % json.dumps(meta["phase_times"], sort_keys=True))
        tox, dock = figures["tox"]["cells"], figures["docker"]["cells"]
        differ = sorted(k for k in set(tox) | set(dock) if tox.get(k) != dock.get(k))
        print("grids (outcome, remedy, lost per cell): %d cells, %d differ%s" % (
            len(tox), len(differ), "".join("\n  %s: tox %s, docker %s" % (k, tox.get(k), dock.get(k)) for k in differ)))


if __name__ == "__main__":
    main()
