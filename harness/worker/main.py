"""Worker entry point: `python -I main.py JOB.json`. Journals every step so a crash loses one item.

Runs inside a matrix env on its oldest Python/TF: standard library, TF, numpy and h5py only.
"""

from __future__ import absolute_import

import json
import os
import sys
import time


def _journal(path):
    torn = False
    if os.path.exists(path) and os.path.getsize(path):
        with open(path, "rb") as old:
            old.seek(-1, os.SEEK_END)
            torn = old.read(1) != b"\n"
    fh = open(path, "a")
    if torn:
        fh.write("\n")  # a killed writer's half line stays alone (the reader skips it)

    def write(event):
        fh.write(json.dumps(event, sort_keys=True, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())

    return write


def _interfaces():
    """Network interfaces this process can see (asks the kernel, so it honours namespaces)."""
    import socket

    try:
        return sorted(name for _, name in socket.if_nameindex())
    except (OSError, AttributeError):
        return None


def _pause(pause, text):
    """Fault injection for tests and debugging: hold here when `pause` is part of `text`
    (an item key, or "KEY|rung:REMEDY" before each ladder rung)."""
    if pause not in text:
        return
    once = os.environ.get("TFCOMPAT_WORKER_PAUSE_ONCE")  # a marker file: pause one time only
    if not once or not os.path.exists(once):
        if once:
            open(once, "w").close()
        time.sleep(float(os.environ.get("TFCOMPAT_WORKER_PAUSE_S", "60")))


def _package_root():
    # -I keeps this script's dir off sys.path; put back only the worker's own package root.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)


def main(argv):
    _package_root()
    from worker.capture import DISK_FULL, disk_full

    with open(argv[1]) as fh:
        job = json.load(fh)
    write = _journal(job["journal"])
    # Warnings from TF's C++ runtime go to the worker log; checks attach the known ones to cells.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    t0 = time.time()
    from worker import WORKER_VERSION
    from worker.context import Ctx

    ctx = Ctx()
    write({"event": "ready", "pid": os.getpid(), "import_s": round(time.time() - t0, 3),
           "worker_version": WORKER_VERSION,
           "versions": ctx.versions(), "phase": job["phase"], "mode": job.get("mode"),
           "net_interfaces": _interfaces()})
    if job["phase"] == "save":
        from worker.migrate import migrate_item
        from worker.reference import reference_item
        from worker.resave import resave_item
        from worker.save import save_item

        def run(c, item):
            # a scanned user artifact is "saved" by reading it once in the env it comes from, and a
            # migrated one by converting it in the env it moves to
            if item.get("scan_migrate"):
                return migrate_item(c, item)
            if item.get("convert"):
                from worker.convert import convert_item  # only converter envs have tensorflowjs

                return convert_item(c, item)
            if item.get("resave"):
                return resave_item(c, item)
            return reference_item(c, item) if item.get("scan") else save_item(c, item)
    else:
        from worker.check import check_item

        def run(c, item):
            def note(remedy, attempt):
                # Each rung is journaled: a crash mid-ladder keeps the attempts made before it.
                write({"event": "attempt", "key": item["key"], "remedy": remedy, "result": attempt})
                if attempt is None and pause and "|rung:" in pause:
                    _pause(pause, "%s|rung:%s" % (item["key"], remedy))

            return check_item(c, item, job["mode"], note)

    parent = os.getppid()
    pause = os.environ.get("TFCOMPAT_WORKER_PAUSE")
    # A Keras 2 (tf.keras) check process stays free of tf_keras: a file of the legacy tf_keras
    # imports it as it loads, and TF 2.15's Functional reconstruction can then spin forever on later,
    # unrelated loads in the same process. Checks answer for a user's own process, not for what the
    # checks before them loaded: after such a check the rest go on in a fresh process.
    guard = job["phase"] == "check" and not ctx.keras3 and not ctx.legacy
    try:
        for i, item in enumerate(job["items"]):
            if os.getppid() != parent:
                return 3  # the orchestrator died: stop, `--resume` redoes only what is unfinished
            clean = guard and "tf_keras" not in sys.modules
            write({"event": "start", "key": item["key"], "t": time.time()})
            if pause and "|rung:" not in pause:
                _pause(pause, item["key"])
            t = time.time()
            result = run(ctx, item)
            write({"event": "done", "key": item["key"], "duration_s": round(time.time() - t, 3),
                   "result": result})
            if clean and "tf_keras" in sys.modules and i + 1 < len(job["items"]):
                write({"event": "exit", "restart": "tf_keras was imported by %s" % item["key"]})
                return 0  # the orchestrator starts a fresh process for the items left
        write({"event": "exit"})
    except Exception as exc:
        if not disk_full(exc):
            raise
        sys.stderr.write("tfcompat worker: no space left on device: %s\n" % exc)
        return DISK_FULL
    return 0

if __name__ == "__main__":
    _package_root()
    from worker.capture import DISK_FULL, disk_full

    try:
        sys.exit(main(sys.argv))
    except Exception as exc:  # a full disk before the first item (the journal's ready line)
        if not disk_full(exc):
            raise
        sys.stderr.write("tfcompat worker: no space left on device: %s\n" % exc)
        sys.exit(DISK_FULL)
