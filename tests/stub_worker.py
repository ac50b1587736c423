"""A stand-in worker for unit-testing process.run's crash/hang/resume logic (no TensorFlow).

Speaks the real journal protocol. An item whose key contains "segv" kills the process; "hang"
sleeps forever; "flaky" kills the process only the first time (a marker file remembers).
"""
import json
import os
import signal
import sys
import time

job = json.load(open(sys.argv[1]))


def write(ev):
    with open(job["journal"], "a") as fh:
        fh.write(json.dumps(ev) + "\n")


write({"event": "ready", "pid": os.getpid(), "import_s": 0.0, "versions": {"python": "x"}})
for item in job["items"]:
    key = item["key"]
    write({"event": "start", "key": key, "t": time.time()})
    if "segv" in key:
        os.kill(os.getpid(), signal.SIGSEGV)
    if "hang" in key:
        time.sleep(3600)
    marker = job["journal"] + "." + key + ".seen"
    if "flaky" in key and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    write({"event": "done", "key": key, "duration_s": 0.0, "result": {"ok": key}})
write({"event": "exit"})
