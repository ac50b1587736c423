"""The report page's size and first render, for a stored run and for a `full`-sized grid made from it.

    python bench/page.py RESULTS_JSONL [--envs 31]

Renders the page for the run's records, then for records scaled up to --envs envs (each cell of the
run repeated under new env ids, so texts repeat as they do in a real grid), and loads each in
headless Chromium until the page marks itself ready. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def scaled(records: list[dict], n: int) -> list[dict]:
    envs = sorted({r["producer"] for r in records})
    ids = ["e%02d" % i for i in range(n)]
    by_pair: dict[tuple, list[dict]] = {}
    for r in records:
        by_pair.setdefault((r["producer"], r.get("consumer")), []).append(r)
    out = []
    for i, p in enumerate(ids):
        src_p = envs[i % len(envs)]
        for r in by_pair.get((src_p, None), []):
            out.append(dict(r, producer=p))
        for j, c in enumerate(ids):
            for r in by_pair.get((src_p, envs[j % len(envs)]), []):
                out.append(dict(r, producer=p, consumer=c, same_env=p == c))
    return out


def first_render_ms(page: str, workdir: str) -> float | None:
    probe = os.path.join(workdir, "probe.html")
    with open(probe, "w") as fh:
        fh.write("""<!DOCTYPE html><html><body><script>var t0 = performance.now();</script>
<iframe id="f" src="file://%s"></iframe><script>
(function wait() {
  var d = document.getElementById("f").contentDocument;
  if (!d || !d.documentElement || !d.documentElement.hasAttribute("data-report-ready")) { return setTimeout(wait, 10); }
  var out = document.createElement("pre"); out.id = "out"; out.textContent = String(performance.now() - t0);
  document.body.appendChild(out);
}());
</script></body></html>""" % page)
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    proc = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                           "--user-data-dir=" + os.path.join(workdir, "profile"), "--virtual-time-budget=120000",
                           "--dump-dom", "file://" + probe], capture_output=True, text=True, timeout=600)
    found = re.search(r'<pre id="out">([\d.]+)</pre>', proc.stdout)
    return float(found.group(1)) if found else None


def measure(records: list[dict], meta: dict, label: str, workdir: str) -> None:
    from harness import results
    from harness.report import render_report

    path = os.path.join(workdir, label, "results.jsonl")
    os.makedirs(os.path.dirname(path))
    results.append(path, records)
    t = time.time()
    page = render_report(path, os.path.dirname(path), dict(meta, envs=[]))
    render_s = time.time() - t
    text = open(page, encoding="utf-8").read()
    packed = text.split('data-encoding="gzip+base64">', 1)[1].split("</script>", 1)[0]
    ms = first_render_ms(page, workdir)
    print("%-10s %6d records: page %6.1f MB (grid and script %5.1f MB, packed details %5.1f MB); "
          "written in %.1f s; first render %s in headless Chromium" % (
              label, len(records), len(text.encode()) / 1e6, (len(text) - len(packed)) / 1e6, len(packed) / 1e6,
              render_s, "%.2f s" % (ms / 1000) if ms is not None else "not reached"), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="a results.jsonl (e.g. reports/results.jsonl of a history run)")
    ap.add_argument("--envs", type=int, default=31, help="env count of the scaled grid (full has 31)")
    args = ap.parse_args()
    with open(args.results) as fh:
        records = [json.loads(line) for line in fh]
    meta_path = os.path.join(os.path.dirname(args.results), "run.json")
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    with tempfile.TemporaryDirectory() as workdir:
        measure(records, meta, "as run", workdir)
        measure(scaled(records, args.envs), meta, "%d envs" % args.envs, workdir)


if __name__ == "__main__":
    main()
