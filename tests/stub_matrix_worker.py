"""The stub backend's worker (tests/stub_backend.py): the real job and journal protocol, with
artifacts and attempts from the scenario file instead of TensorFlow."""
import json
import os
import sys
import time

job = json.load(open(sys.argv[1]))
with open(os.environ["TFCOMPAT_STUB"]) as fh:
    scenario = json.load(fh)


def write(ev):
    with open(job["journal"], "a") as fh:
        fh.write(json.dumps(ev) + "\n")


def log(item):
    with open(scenario["log"], "a") as fh:
        fh.write("%s|%s|%s\n" % (job["phase"], job.get("mode"), item["key"]))


def pass_attempt(remedy=None):
    a = {"remedy": remedy, "loader": "model", "outcome": "pass", "lost": [], "checks": {"predictions": True},
         "message": None, "error_type": None, "warnings": [], "max_abs_diff": 0.0, "max_rel_diff": 0.0}
    if remedy is None:
        a["fixtures_absent"] = True
    return a


env = job["env_id"]
packages = (scenario.get("packages") or {}).get(env) or {}
write({"event": "ready", "pid": os.getpid(), "import_s": 0.0, "net_interfaces": ["lo"],
       "versions": {"python": "3.11.7", "tensorflow": "2.15.1", "keras": "2.15.0", "packages": packages}})
for item in job["items"]:
    key = item["key"]
    write({"event": "start", "key": key, "t": time.time()})
    log(item)
    if job["phase"] == "save":
        out = item["out_dir"]
        os.makedirs(out, exist_ok=True)
        meta = {"status": "saved", "fixture": item["fixture"], "format": item["format"], "promises": [],
                "warnings": [], "classes": {}, "artifact": "model.bin"}
        with open(os.path.join(out, "model.bin"), "w") as fh:
            fh.write("%s|%s|%s|%s" % (env, item["fixture"], item["format"], scenario.get("nonce", "")))
        with open(os.path.join(out, "meta.json"), "w") as fh:
            json.dump(meta, fh)
        result = meta
    else:
        cell = (scenario.get("cells") or {}).get(key) or {}
        attempts = cell.get(job["mode"])
        if attempts is None:
            attempts = [pass_attempt()] if job["mode"] == "plain" else [pass_attempt("custom_objects")]
        result = {"mode": job["mode"], "attempts": attempts}
    write({"event": "done", "key": key, "duration_s": 0.01, "result": result})
write({"event": "exit"})
