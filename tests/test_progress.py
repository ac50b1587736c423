"""The live display: rich on a terminal, plain lines when not a TTY or under CI; fed by the worker's
journal through process.run (a stub worker, no TensorFlow)."""

import os
import pty
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUB = os.path.join(os.path.dirname(__file__), "stub_worker.py")
DRIVE = """
import sys
import time
from harness import process, progress
from harness.backends.base import LocalPython
p = progress.make(print)
p.say("env tfx reused")
items = tuple({"key": "check|a|tfx|control|h5-%d" % i} for i in range(3))
on_done = p.task("tfx", "check-plain", len(items), per_item=125.0)  # as if recorded: 2 min 05 s per item
time.sleep(0.5)  # a redraw before any item is done
req = process.WorkerRequest(env_id="tfx", launcher=LocalPython(sys.executable), phase="check", mode="plain",
                            items=items, journal=sys.argv[1], timeout=30, worker_main=sys.argv[2],
                            on_done=on_done)
out = process.run(req)
p.close()
print("done", len(out.done), type(p).__name__)
"""


def drive(tmp_path, env, terminal):
    cmd = [sys.executable, "-c", DRIVE, str(tmp_path / "j.jsonl"), STUB]
    env = {**os.environ, **env, "PYTHONPATH": ROOT, "COLUMNS": "120"}
    if not terminal:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(tmp_path)).stdout
    out = []
    pid, fd = pty.fork()
    if pid == 0:  # the child runs on a pseudo-terminal, as under a user's shell
        os.chdir(str(tmp_path))
        os.execve(sys.executable, cmd, env)
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out.append(data.decode("utf-8", "replace"))
    os.waitpid(pid, 0)
    return "".join(out)


def test_a_terminal_gets_a_live_display_counting_items_from_the_journal(tmp_path):
    text = drive(tmp_path, {"CI": "", "TERM": "xterm"}, terminal=True)
    assert "done 3 Live" in text, text
    assert "tfx check-plain" in text and "3/3" in text and "\x1b[" in text  # a bar, redrawn
    assert "tfcompat: env tfx reused" in text
    assert "~6:15 left (recorded)" in text  # 3 items x the recorded 125 s, before the first is done


def test_ci_or_a_pipe_gets_plain_lines_only(tmp_path):
    text = drive(tmp_path, {"CI": "true"}, terminal=True)
    assert "done 3 Lines" in text and "\x1b[" not in text and "3/3" not in text
    (tmp_path / "j.jsonl").unlink()
    piped = drive(tmp_path, {"CI": ""}, terminal=False)
    assert "done 3 Lines" in piped and "env tfx reused" in piped and "\x1b[" not in piped
