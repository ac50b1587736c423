"""toxfile.py generates one tox env per matrix.yaml environment (runs tox's config only, no env is built)."""

from __future__ import annotations

import os
import subprocess
import sys

from harness.interpreters import find_python
from harness.matrix import load_matrix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tox(*args: str, matrix: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOX_")}
    env.pop("TFCOMPAT_MATRIX", None)
    if matrix:
        env["TFCOMPAT_MATRIX"] = matrix
    return subprocess.run([sys.executable, "-m", "tox", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_tox_lists_one_env_per_matrix_environment(fake_index):
    out = tox("l").stdout
    for spec in load_matrix(os.path.join(ROOT, "matrix.yaml")).environments:
        assert f"tfcompat matrix env: {spec.describe()}" in out
        assert spec.id in out
    # profiles' envs too (history's oldest; full's range-resolved ones, from the loopback index)
    assert "tf2.4 " in out and "tf2.19-tfkeras" in out


def test_generated_env_config(fake_index):
    out = tox("c", "-e", "tf2.16-tfkeras", "-k", "deps", "base_python", "set_env", "skip_install").stdout
    assert "tensorflow==2.16.2" in out and "tf-keras==2.16.0" in out and "tensorflow-hub==0.16.1" in out
    assert f"base_python = {find_python('3.11')}" in out
    assert "TF_USE_LEGACY_KERAS=1" in out
    assert "skip_install = True" in out


def test_broken_matrix_is_one_line_and_other_envs_still_work(tmp_path):
    bad = tmp_path / "matrix.yaml"
    with open(os.path.join(ROOT, "matrix.yaml")) as fh:
        bad.write_text(fh.read().replace('tensorflow: "2.12.1"', 'tensorflow: "2.x"'))
    result = tox("l", matrix=str(bad))
    assert result.returncode == 0
    assert "tests" in result.stdout and "tf2.15" not in result.stdout
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("tfcompat:")]
    assert len(lines) == 1 and "environments[0].tensorflow: '2.x' is not a version" in lines[0]
    assert "Traceback" not in result.stderr
