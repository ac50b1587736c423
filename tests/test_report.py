"""Rendering of reports/index.html from a synthetic results.jsonl (unit tests of the page)."""

from __future__ import annotations

import html.parser
import json
import os
import re
import shutil
import subprocess

import pytest

from harness import report, results

ENVS = ["tf2.12", "tf2.15", "tf2.16-k3"]
A, B, C = ENVS
XSS = '<script>alert("x")</script><img src=x onerror="document.documentElement.setAttribute(\'data-pwned\',\'1\')">'


def versions(env: str) -> dict:
    tf = {"tf2.12": "2.12.1", "tf2.15": "2.15.1", "tf2.16-k3": "2.16.2"}[env]
    keras = {"tf2.12": "2.12.0", "tf2.15": "2.15.0", "tf2.16-k3": "3.3.3"}[env]
    return {"python": "3.11.9", "tensorflow": tf, "keras": keras,
            "packages": {"tensorflow": tf, "keras": keras, "h5py": "3.11.0", "numpy": "1.26.4",
                         "protobuf": "4.25.3", "tensorflow_hub": "0.16.1", "absl-py": "2.1.0"}}


def rec(producer, consumer, fixture, fmt, outcome, **extra) -> dict:
    """One schema-1 record; versions of both sides unless overridden."""
    r = {
        "schema": results.SCHEMA_VERSION, "run_id": "R1", "worker_version": "w1",
        "producer": producer, "consumer": consumer, "fixture": fixture, "format": fmt,
        "same_env": producer == consumer, "outcome": outcome, "remedy": None, "attempts": [],
        "lost": [], "max_abs_diff": None, "max_rel_diff": None, "error_type": None, "message": None,
        "traceback": None, "warnings": [], "hint": None, "duration_s": 1.5,
        "versions": {"producer": versions(producer), "consumer": versions(consumer) if consumer else None},
        "checks": {"predictions": True, "classes": None, "optimizer": None, "resume": None},
        "control_failed": False, "expectation": None, "tf_imports": {},
    }
    r.update(extra)
    return r


def synthetic_records() -> list[dict]:
    """Every outcome at least once. Expected per-format numbers are in test_format_pass_rates."""
    load_err = dict(error_type="ValueError", message="Unknown layer: 'MyDense'",
                    traceback="Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: Unknown layer",
                    hint="pass custom_objects={'MyDense': MyDense}",
                    attempts=[{"remedy": None, "ok": False, "error_type": "ValueError", "message": "Unknown layer",
                               "outcome": "load-error", "max_abs_diff": None, "max_rel_diff": None, "warnings": []},
                              {"remedy": "custom_objects", "ok": False, "error_type": "TypeError",
                               "message": "bad config", "outcome": "load-error", "max_abs_diff": None,
                               "max_rel_diff": None, "warnings": ["w1"]}])
    return [
        # h5: 9 verdict cells, 3 pass, 1 pass-with-remedy; 1 env-error (not counted)
        rec(A, A, "control", "h5", "pass", max_abs_diff=0.0, max_rel_diff=0.0),
        rec(A, B, "control", "h5", "pass", max_abs_diff=1e-7, max_rel_diff=2e-7),
        rec(A, C, "control", "h5", "load-error", control_failed=True, **load_err),
        rec(B, B, "control", "h5", "pass"),
        rec(B, A, "control", "h5", "timeout", error_type="Timeout", message="no result after 300 s"),
        rec(A, A, "custom_layer", "h5", "pass-with-remedy", remedy="custom_objects"),
        rec(A, B, "custom_layer", "h5", "wrong-output", max_abs_diff=0.5, max_rel_diff=0.9,
            message=XSS, checks={"predictions": False, "classes": True, "optimizer": None, "resume": None}),
        rec(A, C, "custom_layer", "h5", "load-error", control_failed=True, **load_err),
        rec(C, C, "custom_layer", "h5", "degraded", lost=["custom_classes"],
            warnings=["revived as a generic Layer"]),
        rec(B, C, "control", "h5", "env-error", error_type="EnvError", message="cannot import tensorflow",
            versions={"producer": versions(B), "consumer": None}),
        # keras: 4 verdict cells, 3 pass; 1 not-applicable
        rec(A, A, "control", "keras", "pass"),
        rec(A, B, "control", "keras", "pass"),
        rec(A, C, "control", "keras", "crash", error_type="Crash", message="worker died: SIGSEGV"),
        rec(C, C, "control", "keras", "pass"),
        rec(A, A, "custom_layer", "keras", "not-applicable", message="Keras 2.12 cannot write .keras"),
        # savedmodel: save-error artifact (consumer null) once; 2 verdict cells, 1 pass
        rec(C, None, "control", "savedmodel", "save-error", error_type="NotImplementedError",
            message="Keras 3 cannot write a SavedModel " + XSS),
        rec(A, A, "control", "savedmodel", "pass-with-remedy", remedy="compile_false",
            expectation={"outcome": "pass-with-remedy", "reason": "known", "expires": "2099-01-01"}),
        rec(A, B, "control", "savedmodel", "pass"),
        # weights: a save-error written per consumer still shows once, across the row
        rec(B, A, "control", "weights", "save-error", error_type="OSError", message="disk full"),
        rec(B, B, "control", "weights", "save-error", error_type="OSError", message="disk full"),
        rec(B, C, "control", "weights", "save-error", error_type="OSError", message="disk full"),
        rec(A, A, "control", "weights", "pass"),
    ]


RUN_META = {
    "run_id": "R1", "started": "2024-06-01T02:00:00+00:00", "finished": "2024-06-01T02:31:05+00:00",
    "duration_s": 1865.0, "matrix_path": "matrix.yaml", "worker_version": "w1",
    "envs": [{"id": e, "python": "3.11", "tensorflow": versions(e)["tensorflow"],
              "keras": "3.3.3" if e == C else "bundled", "spec": {"tensorflow": versions(e)["tensorflow"]}}
             for e in ENVS],
    "tf_imports": {A: {"save": 1, "plain": 1, "remedies": 1}, B: {"save": 1, "plain": 1, "remedies": 2}},
    "phase_times": {"env_create_s": 600.0, "save_s": 120.5, "check_s": 1100.0},
}


class Cells(html.parser.HTMLParser):
    """Collects the grid cells (td elements with data-outcome): attrs and text."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict] = []
        self._cur = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and "data-outcome" in a:
            self._cur = {**a, "text": ""}
            self.cells.append(self._cur)

    def handle_endtag(self, tag):
        if tag == "td":
            self._cur = None

    def handle_data(self, data):
        if self._cur is not None:
            self._cur["text"] += data


@pytest.fixture()
def page(tmp_path) -> str:
    path = tmp_path / "results.jsonl"
    results.append(str(path), synthetic_records())
    out = report.render_report(str(path), str(tmp_path / "reports"), RUN_META)
    assert out == str(tmp_path / "reports" / "index.html")
    return out


def read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def grid_cells(text: str) -> dict:
    parser = Cells()
    parser.feed(text)
    return {c["data-key"]: c for c in parser.cells}


def test_page_is_written_and_self_contained(page):
    text = read(page)
    assert os.path.getsize(page) > 1000
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "http://" not in text and "https://" not in text
    assert "@import" not in text and "url(" not in text
    assert 'type="application/json"' in text


def test_every_outcome_code_in_grid(page):
    cells = grid_cells(read(page))
    seen = {c["data-outcome"]: c["text"].split()[0] for c in cells.values()}
    assert set(seen) == set(results.OUTCOMES)
    for outcome, code in report.CODES.items():
        assert seen[outcome].startswith(code), (outcome, seen[outcome])
    assert {"P", "P+R", "DEG", "LOAD", "CRASH", "T/O", "WRONG", "SAVE", "n/a", "ENV"} == set(report.CODES.values())


def test_save_error_shown_once_per_artifact(page):
    cells = grid_cells(read(page))
    saves = [c for c in cells.values() if c["data-outcome"] == "save-error"]
    assert len(saves) == 2  # savedmodel (consumer null) and weights (written per consumer)
    assert all(c.get("colspan") == str(len(ENVS)) for c in saves)
    assert any("disk full" in c["text"] for c in saves)


def test_same_env_and_control_marks(page):
    cells = grid_cells(read(page))
    defect = cells[f"{C}|{C}|custom_layer|h5"]
    assert "same" in defect["class"].split()
    assert "same-version defect" in defect["title"]
    assert "sv" in defect["text"]
    ok_same = cells[f"{A}|{A}|control|h5"]
    assert "same" in ok_same["class"].split() and "same-version defect" not in ok_same["title"]
    ctl = cells[f"{A}|{C}|custom_layer|h5"]
    assert "format/env pair" in ctl["title"]
    assert "same" not in ctl["class"].split()


def test_escaping(page):
    text = read(page)
    assert "<script>alert" not in text
    assert "<img src=x" not in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text  # save-error row text
    assert "\\u003cscript\\u003ealert" in text  # JSON data for the details panel
    assert text.count("</script>") == 2  # only the data block and the script itself
    data = text.split('id="report-data">', 1)[1].split("</script>", 1)[0]
    parsed = json.loads(data)
    assert any(XSS in (c.get("message") or "") for c in parsed["cells"])


def test_format_pass_rates(page, tmp_path):
    cells, artifacts, _ = report._classify(synthetic_records())
    summary = {s["format"]: s for s in report.format_summary(
        cells, artifacts, ["h5", "keras", "savedmodel", "weights"], ["control", "custom_layer"])}
    assert summary["h5"]["pass"] == {"num": 3, "den": 9, "pct": 33}
    assert summary["h5"]["usable"] == {"num": 4, "den": 9, "pct": 44}
    assert summary["h5"]["not_counted"] == 1
    assert summary["keras"]["pass"] == {"num": 3, "den": 4, "pct": 75}
    assert summary["keras"]["not_counted"] == 1
    assert summary["savedmodel"]["pass"] == {"num": 1, "den": 2, "pct": 50}
    assert summary["savedmodel"]["usable"] == {"num": 2, "den": 2, "pct": 100}
    assert summary["savedmodel"]["save_errors"] == 1
    assert summary["weights"]["pass"] == {"num": 1, "den": 1, "pct": 100}
    assert summary["weights"]["save_errors"] == 1 and summary["weights"]["not_counted"] == 3
    assert [r["num"] for r in summary["h5"]["per_fixture"]] == [3, 0]
    assert [r["den"] for r in summary["h5"]["per_fixture"]] == [5, 4]

    text = read(page)
    rows = dict(re.findall(r'<tr data-format="([^"]+)">(.*?)</tr>', text, re.S))
    assert "3/9 (33%)" in rows["h5"] and "4/9 (44%)" in rows["h5"]
    assert "3/4 (75%)" in rows["keras"]
    assert "1/2 (50%)" in rows["savedmodel"] and "2/2 (100%)" in rows["savedmodel"]


def test_run_facts_and_installed_versions(page):
    text = read(page)
    for s in ("R1", "2024-06-01 02:00:00 UTC", "31 min 05 s", "env create: 10 min 00 s", "w1",
              "2.16.2", "3.3.3", "3.11.0", "4.25.3", "0.16.1", "cannot import tensorflow",
              "1 / 1 / 2", "7 packages"):
        assert s in text, s


def test_env_level_error(tmp_path):
    """An env-error naming no fixture/format marks that env's rows and missing cells ENV."""
    path = tmp_path / "results.jsonl"
    broken = rec(A, None, None, None, "env-error", error_type="EnvError",
                 message="pip: no matching distribution for tensorflow==2.17.9", versions={})
    broken["producer"] = "tf2.17"
    results.append(str(path), [rec(A, A, "control", "h5", "pass"), broken])
    meta = dict(RUN_META, envs=RUN_META["envs"][:1] + [{"id": "tf2.17", "spec": "tensorflow==2.17.9"}])
    text = read(report.render_report(str(path), str(tmp_path / "r"), meta))
    cells = grid_cells(text)
    assert cells[f"{A}|tf2.17|control|h5"]["data-outcome"] == "env-error"  # missing consumer cell
    row = cells["tf2.17||control|h5"]  # the broken producer's row, once
    assert row["data-outcome"] == "env-error" and "no matching distribution" in row["text"]
    assert "env-error: EnvError pip: no matching distribution" in text  # environments table


def test_empty_results(tmp_path):
    out = report.render_report(str(tmp_path / "none.jsonl"), str(tmp_path / "r"), {"run_id": "R0"})
    assert "No results." in read(out)


def test_nan_diff_is_valid_json(tmp_path):
    path = tmp_path / "results.jsonl"
    results.append(str(path), [rec(A, B, "control", "h5", "wrong-output", max_abs_diff=float("nan"))])
    text = read(report.render_report(str(path), str(tmp_path / "r"), RUN_META))
    assert "NaN" not in text.split('id="report-data">', 1)[1].split("</script>", 1)[0].replace('"nan"', "")


# ---- the page in a real browser ---------------------------------------------------------------

def chromium() -> str:
    exe = os.environ.get("TFCOMPAT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.fail("headless Chromium not found: install the Debian package `chromium` "
                    "(apt-get install -y chromium) or set TFCOMPAT_CHROMIUM to its path")
    return exe


def run_chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chrome-profile'}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.browser
def test_page_runs_in_headless_chromium(page, tmp_path):
    url = "file://" + page + "#nonpass=1&cell=" + f"{A}|{C}|custom_layer|h5"
    dom = run_chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", url).stdout
    root = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-report-ready="' in root, "the report script did not run"
    assert "data-pwned" not in root, "a message was executed as HTML"
    assert "<img" not in dom
    cells = grid_cells(dom)
    total = sum(1 for c in cells.values())
    passing = [c for c in cells.values() if c["data-outcome"] == "pass"]
    assert passing and all("off" in c["class"].split() for c in passing)  # only non-pass
    shown = total - len(passing)
    assert f"{shown} of {total} cells shown" in dom
    panel = re.search(r'<aside id="details"[^>]*>(.*?)</aside>', dom, re.S)
    assert panel and "hidden" not in panel.group(0).split(">", 1)[0], "details panel not opened"
    details = panel.group(1)
    for s in ("format/env pair", "Unknown layer", "custom_objects", "Traceback", "TypeError",
              "2.16.2", "3.3.3", "pass custom_objects"):
        assert s in details, s
    assert "sel" in cells[f"{A}|{C}|custom_layer|h5"]["class"].split()


@pytest.mark.browser
def test_page_screenshot(page, tmp_path):
    shot = tmp_path / "report.png"
    run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,1000", "--virtual-time-budget=5000",
                 "file://" + page + "#cell=" + f"{A}|{B}|custom_layer|h5")
    assert shot.exists() and shot.stat().st_size > 20_000
    with open(shot, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("TFCOMPAT_SCREENSHOT"):
        shutil.copy(shot, os.environ["TFCOMPAT_SCREENSHOT"])


def test_publish_applies_the_current_expectations_and_keeps_the_run_as_recorded(tmp_path):
    from harness.matrix import Matrix
    from harness.runner import publish

    run_dir = tmp_path / "run"
    results.append(str(run_dir / "results.jsonl"), synthetic_records())
    recorded = read(str(run_dir / "results.jsonl"))
    matrix = Matrix(path="m.yaml", environments=[], fixtures=[], formats=[], expectations=[
        {"producer": A, "consumer": [B, C], "fixture": "control", "format": "h5", "outcome": "load-error",
         "reason": "public report X", "expires": "2099-01-01"},
        {"producer": C, "consumer": "*", "fixture": "control", "format": "savedmodel", "outcome": "save-error",
         "reason": "Keras 3 writes no SavedModel", "expires": "2000-01-01"},
    ])
    index, summary_back = publish(str(run_dir), str(tmp_path / "reports"), dict(RUN_META), matrix)

    assert read(str(run_dir / "results.jsonl")) == recorded  # the run's own record is append-only
    published = {(r["producer"], r["consumer"], r["fixture"], r["format"]): r
                 for r in results.read(str(tmp_path / "reports" / "results.jsonl"))}
    assert published[(A, C, "control", "h5")]["expectation"]["met"] is True
    assert published[(A, B, "control", "h5")]["expectation"]["met"] is False  # it passes: a fixed break
    assert published[(C, None, "control", "savedmodel")]["expectation"]["expired"] is True
    # The expectation the run carried for (A, A, control, savedmodel) is gone: this matrix has none there.
    assert published[(A, A, "control", "savedmodel")]["expectation"] is None
    with open(tmp_path / "reports" / "run.json") as fh:
        summary = json.load(fh)["expectations"]
    assert (summary["cells"], summary["met"], summary["expired"]) == (3, 2, 1)
    assert summary_back == summary
    assert summary["unmet"] == [{"producer": A, "consumer": B, "fixture": "control", "format": "h5",
                                 "expected": "load-error", "got": "pass", "reason": "public report X"}]
    text = read(index)
    assert "3 cells covered: 2 met, 1 not met, 1 expired" in text
    cells = grid_cells(text)
    assert cells[f"{A}|{B}|control|h5"]["text"].endswith("e!")
    assert cells[f"{A}|{C}|control|h5"]["text"].endswith("e") and "e!" not in cells[f"{A}|{C}|control|h5"]["text"]
