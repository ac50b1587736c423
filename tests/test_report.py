"""Rendering of reports/index.html from a synthetic run assembled by records.assemble (tests/synth.py)."""

from __future__ import annotations

import html
import html.parser
import itertools
import json
import os
import re
import shutil
import subprocess

import pytest
from synth import SynthRun, att

from harness import records, report, results
from harness.store import PHASES
from harness.worker.remedies import REMEDIES

ENVS = ["tf2.12", "tf2.15", "tf2.16-k3", "tf2.17"]
A, B, C, D = ENVS  # D cannot be built: every cell it is in is ENV
FIXTURES = ("control", "custom_layer")
FORMATS = ("h5", "keras", "savedmodel", "weights")
XSS = '<script>alert("x")</script><img src=x onerror="document.documentElement.setAttribute(\'data-pwned\',\'1\')">'
NA_SOURCE = "https://keras.io/guides/migrating_to_keras_3/"
ENV_ERROR = "pip: no matching distribution for tensorflow==2.17.9"
SAVE_WARNINGS = ["save warning %d: HDF5 is a legacy format" % i for i in range(25)]
LOAD_WARNINGS = ["load warning %d: compiled metrics have yet to be built" % i for i in range(23)]
TRACEBACK = "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: Unknown layer: 'MyDense'"
DEFECT = "the rebuilt model already holds the producer's weights before the restore"
NO_RESTORE = {"variables": 4, "changed": 0, "unmatched": ["dense/kernel", "dense/bias", "my_dense/w", "my_dense/b"],
              "missing": 0}
EXCLUSION = {"producer": B, "consumer": A, "fixture": "*", "format": "keras",
             "reason": "TF 2.12 cannot read a 2.15 .keras archive (keras-team/keras#18830)"}
EXPECTATION = {"producer": A, "consumer": A, "fixture": "control", "format": "savedmodel",
               "outcome": "pass-with-remedy", "reason": "keras-team/keras#16983", "expires": "2099-01-01"}


def versions(env: str) -> dict:
    tf = {A: "2.12.1", B: "2.15.1", C: "2.16.2"}[env]
    keras = {A: "2.12.0", B: "2.15.0", C: "3.3.3"}[env]
    return {"python": "3.11.9", "tensorflow": tf, "keras": keras,
            "packages": {"tensorflow": tf, "keras": keras, "h5py": "3.11.0", "numpy": "1.26.4",
                         "protobuf": "4.25.3", "tensorflow_hub": "0.16.1", "absl-py": "2.1.0"}}


def ok(fmt: str, remedy=None, **extra) -> dict:
    """A passing attempt, with the checks the format's promises call for."""
    if fmt == "weights":
        return code(att(remedy, "pass", checks={"predictions": True, "weights": True},
                        restore={"variables": 4, "changed": 4, "unmatched": [], "missing": 0}, **extra))
    checks = {"predictions": True, "optimizer": True, "resume": True}
    if fmt == "savedmodel":
        checks["serving"] = True
    return att(remedy, "pass", **{"checks": checks, **extra})


def code(a: dict) -> dict:
    """A weights-only attempt: it rebuilds from fixture code, so it runs in the remedy process."""
    a.pop("fixtures_absent", None)
    a["loader"] = "code"
    return a


def synthetic_run(tmp_path) -> SynthRun:
    """Every outcome at least once; the expected per-format numbers are in test_format_pass_rates."""
    run = SynthRun(tmp_path, ENVS, FIXTURES, FORMATS)
    for env in ENVS:  # each env reports its own versions; D never started a worker
        for phase in PHASES:
            os.remove(run.store.journal(env, phase))
            if env != D:
                results.append(run.store.journal(env, phase),
                               [{"event": "ready", "pid": 1, "import_s": 1.0, "versions": versions(env)}])
    run.env_error(D, ENV_ERROR)

    saved = set()
    for p, fx, fmt in itertools.product((A, B, C), FIXTURES, FORMATS):
        if (p, fx, fmt) == (A, "control", "h5"):
            run.saved(p, fx, fmt, warnings=SAVE_WARNINGS)
        elif p == C and fmt == "savedmodel":
            run.not_applicable(p, fx, fmt, "Keras 3 model.save() writes only .keras and .h5", NA_SOURCE,
                               {"call": 'model.save("savedmodel")', "refused": True, "error_type": "ValueError",
                                "message": "Invalid filepath extension for saving"})
            continue
        elif (p, fx, fmt) == (C, "custom_layer", "keras"):
            run.save_error(p, fx, fmt, "cannot serialize " + XSS, error_type="TypeError")
            continue
        elif (p, fx, fmt) == (B, "custom_layer", "weights"):
            run.save_lost(p, fx, fmt, "crash")
            continue
        else:
            run.saved(p, fx, fmt)
        saved.add((p, fx, fmt))

    done = {(B, A, fx, "keras") for fx in FIXTURES}  # excluded: never checked

    def check(p, c, fx, fmt, **attempts):
        done.add((p, c, fx, fmt))
        run.checked(p, c, fx, fmt, **attempts)

    def lost(p, c, fx, fmt, phase, outcome):
        done.add((p, c, fx, fmt))
        run.check_lost(p, c, fx, fmt, phase, outcome)

    unknown = att(None, "load-error", message="Unknown layer: 'MyDense'")
    # h5
    check(A, A, "control", "h5", plain=[ok("h5", warnings=LOAD_WARNINGS)])
    check(A, C, "control", "h5", plain=[att(None, "load-error", message="Could not locate function 'mse'")],
          remedies=[att("compile_false", "load-error", message="Could not deserialize 'Functional'")])
    check(A, C, "custom_layer", "h5", plain=[dict(unknown, traceback=TRACEBACK)],
          remedies=[att("custom_objects", "load-error", message="bad config", error_type="TypeError", warnings=["w1"]),
                    att("custom_objects+compile_false", "load-error", message="bad config", error_type="TypeError")])
    lost(B, A, "control", "h5", "plain", "timeout")
    check(A, B, "custom_layer", "h5", plain=[att(None, "wrong-output", message=XSS, error_type=None, max_abs_diff=0.5,
                                                 max_rel_diff=0.9, checks={"predictions": False})])
    check(A, A, "custom_layer", "h5", plain=[unknown], remedies=[ok("h5", "custom_objects")])
    check(C, C, "custom_layer", "h5",
          plain=[att(None, "degraded", ["custom_classes"], message="loaded and predicts the same, but lost: "
                     "custom_classes", warnings=["revived as a generic Layer"],
                     checks={"predictions": True, "classes": False})],
          remedies=[att("custom_objects", "degraded", ["custom_classes"])])
    check(B, C, "custom_layer", "h5", plain=[ok("h5", fixtures_absent=False)])  # a failed honesty check
    # keras
    lost(A, C, "control", "keras", "plain", "crash")
    check(A, B, "custom_layer", "keras", plain=[unknown],
          remedies=[att("custom_objects", "load-error", message="Could not locate function 'mse'"),
                    att("custom_objects+compile_false", "degraded", ["compile", "optimizer_state"])])
    # savedmodel
    check(A, A, "control", "savedmodel", plain=[att(None, "degraded", ["optimizer_state"])],
          remedies=[ok("savedmodel", "reload_weights")])
    check(A, B, "custom_layer", "savedmodel", plain=[att(None, "degraded", ["custom_classes", "optimizer_state"])],
          remedies=[att("custom_objects", "degraded", ["optimizer_state"],
                        optimizer_detail={"mismatch": ["iterations 0, producer 3"]}),
                    ok("savedmodel", "custom_objects+reload_weights")])
    for fx in FIXTURES:
        check(A, C, fx, "savedmodel", plain=[att(None, "load-error", message="File format not supported")],
              remedies=[att("legacy_keras", "load-error", message="No module named 'tf_keras'"),
                        ok("savedmodel", "tfsm_layer", loader="tfsm", checks={"predictions": True})])
    # weights
    check(A, C, "custom_layer", "weights", remedies=[code(att(
        None, "wrong-output", message="loaded without error, but predictions differ; the restore did nothing",
        error_type=None, max_abs_diff=0.7, max_rel_diff=1.3, restore=NO_RESTORE,
        checks={"predictions": False, "weights": False}))])
    check(C, A, "control", "weights", remedies=[code(att(
        None, "harness-error", message=DEFECT, error_type="HarnessDefect", harness_defect=DEFECT))])

    for p, c, fx, fmt in itertools.product((A, B, C), (A, B, C), FIXTURES, FORMATS):
        if (p, fx, fmt) in saved and (p, c, fx, fmt) not in done:
            if fmt == "weights":
                run.checked(p, c, fx, fmt, remedies=[ok(fmt)])
            else:
                run.checked(p, c, fx, fmt, plain=[ok(fmt)])
    return run


def synthetic_records(tmp_path) -> list[dict]:
    return synthetic_run(tmp_path).write_results(exclusions=[EXCLUSION], expectations=[EXPECTATION])


RUN_META = {
    "run_id": "R1", "started": "2024-06-01T02:00:00+00:00", "finished": "2024-06-01T02:31:05+00:00",
    "duration_s": 1865.0, "matrix_path": "matrix.yaml", "worker_version": "w1",
    "envs": [{"id": e, "python": "3.11", "tensorflow": versions(e)["tensorflow"],
              "keras": "3.3.3" if e == C else "bundled", "spec": {"tensorflow": versions(e)["tensorflow"]}}
             for e in ENVS[:3]] + [{"id": D, "spec": "tensorflow==2.17.9"}],
    "tf_imports": {A: {"save": 1, "plain": 1, "remedies": 1}, B: {"save": 1, "plain": 1, "remedies": 2}},
    "phase_times": {"env_create_s": 600.0, "save_s": 120.5, "check_s": 1100.0},
}


class Cells(html.parser.HTMLParser):
    """Collects the grid cells (td elements with an outcome class): attrs, text, and the key
    (producer|consumer|fixture|format) and outcome the script derives from where the cell stands."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict] = []
        self._cur = None
        self._fixture = self._producer = self._format = ""
        self._consumers: list[str] = []
        self._col = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "section" and "data-fixture" in a:
            self._fixture, self._consumers = a["data-fixture"], []
        elif tag == "th" and "data-c" in a:
            self._consumers.append(a["data-c"])
        elif tag == "tr" and "data-producer" in a:
            self._producer, self._format, self._col = a["data-producer"], a["data-format"], 0
        elif tag == "td" and "cell" in classes:
            consumer = "" if "span" in classes else self._consumers[self._col]
            self._col += 1
            outcome = [c[2:] for c in classes if c.startswith("o-")]
            if outcome:
                key = "|".join((self._producer, consumer, self._fixture, self._format))
                self._cur = {**a, "text": "", "data-key": key, "data-outcome": outcome[0]}
                self.cells.append(self._cur)

    def handle_endtag(self, tag):
        if tag == "td":
            self._cur = None

    def handle_data(self, data):
        if self._cur is not None:
            self._cur["text"] += data


@pytest.fixture()
def recs(tmp_path) -> list[dict]:
    return synthetic_records(tmp_path)


@pytest.fixture()
def page(tmp_path, recs) -> str:
    meta = dict(RUN_META, harness_defects=records.harness_defects(recs))
    out = report.render_report(str(tmp_path / "run" / "results.jsonl"), str(tmp_path / "reports"), meta)
    assert out == str(tmp_path / "reports" / "index.html")
    return out


def read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def grid_cells(text: str) -> dict:
    """key -> the cell's attrs and text, with its tooltip (`title`) from its details item."""
    parser = Cells()
    parser.feed(text)
    items = page_data(text)["cells"]
    return {c["data-key"]: dict(c, title=items[int(c["data-i"])]["title"]) for c in parser.cells}


def page_data(text: str) -> dict:
    data = json.loads(text.split('id="report-data">', 1)[1].split("</script>", 1)[0])
    data["cells"] = report.unpack_json(packed(text))
    return data


def packed(text: str) -> str:
    return text.split('id="report-cells" data-encoding="gzip+base64">', 1)[1].split("</script>", 1)[0]


def details(text: str, key: str) -> dict:
    """The details-panel data of the cell `key` (producer|consumer|fixture|format)."""
    return page_data(text)["cells"][int(grid_cells(text)[key]["data-i"])]


def test_the_synthetic_run_is_what_the_tests_say(recs):
    # Guards the data the other tests read: assemble, not the test, decides these outcomes.
    got = {(r["producer"], r["consumer"], r["fixture"], r["format"]): r for r in recs}
    assert {r["outcome"] for r in recs} == set(results.OUTCOMES)
    assert got[(A, C, "custom_layer", "h5")]["control_failed"] is True
    assert got[(A, B, "custom_layer", "keras")]["remedy"] == "custom_objects+compile_false"
    assert got[(B, None, "custom_layer", "weights")]["save_error_kind"] == "crash"
    assert [d["fixture"] for d in records.harness_defects(recs)] == ["custom_layer", "control"]


def test_page_is_written_and_self_contained(page):
    text = read(page)
    assert os.path.getsize(page) > 1000
    assert not re.search(r"""(src|action|poster|srcset)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert 'type="application/json"' in text
    # A not-applicable row's source is a public page the details panel links to; it is data here,
    # and nothing outside the data block names the network.
    data = text.split('id="report-data">', 1)[1].split("</script>", 1)[0]
    assert NA_SOURCE in json.dumps(page_data(text)["cells"])
    rest = text.replace(data, "").replace(packed(text), "")
    assert "http://" not in rest and "https://" not in rest


def test_every_outcome_code_in_grid(page):
    cells = grid_cells(read(page))
    seen = {c["data-outcome"]: c["text"].split()[0] for c in cells.values()}
    assert set(seen) == set(results.OUTCOMES)
    for outcome, code in report.CODES.items():
        assert seen[outcome].startswith(code), (outcome, seen[outcome])
    assert {"P", "P+R", "DEG", "LOAD", "CRASH", "T/O", "WRONG", "SAVE", "n/a", "ENV", "HARN"} == set(
        report.CODES.values())
    assert set(report.CODES) == set(report.MEANINGS) == set(results.OUTCOMES)


def test_harness_error_has_its_own_colour_and_legend(page):
    text = read(page)
    css = read(os.path.join(report.TEMPLATES, "report.css"))
    colours = dict(re.findall(r"\.o-([a-z-]+) \{ ([^}]+) \}", css))
    assert set(colours) == set(results.OUTCOMES)
    assert len(set(colours.values())) == len(colours)
    assert report.MEANINGS["harness-error"] in text.replace("&#39;", "'")
    cells = grid_cells(text)
    harn = cells[f"{B}|{C}|custom_layer|h5"]
    assert harn["data-outcome"] == "harness-error" and harn["text"] == "HARN"
    assert "harness defect: honesty check failed" in harn["title"]
    assert "<code>env-error</code> and <code>harness-error</code> are not counted" in text


def test_save_error_shown_once_per_artifact(page):
    cells = grid_cells(read(page))
    saves = [c for c in cells.values() if c["data-outcome"] == "save-error"]
    assert len(saves) == 2  # keras: an exception; weights: the save worker died
    assert all(c.get("colspan") == str(len(ENVS)) for c in saves)
    lost = cells[f"{B}||custom_layer|weights"]
    assert "save worker crashed" in lost["title"] and "killed by signal SIGSEGV" in lost["text"]
    assert "save raised an exception" in cells[f"{C}||custom_layer|keras"]["title"]


def test_a_broken_producer_env_is_one_row_per_format(page):
    text = read(page)
    cells = grid_cells(text)
    for fx, fmt in itertools.product(FIXTURES, FORMATS):
        row = cells[f"{D}||{fx}|{fmt}"]
        assert row["data-outcome"] == "env-error" and ENV_ERROR in row["text"]
        assert row.get("colspan") == str(len(ENVS))
        assert cells[f"{A}|{D}|{fx}|{fmt}"]["data-outcome"] == "env-error"  # and its column
    assert f"env-error: EnvError {ENV_ERROR}" in text  # environments table


def test_same_env_and_control_marks(page):
    cells = grid_cells(read(page))
    defect = cells[f"{C}|{C}|custom_layer|h5"]
    assert "same" in defect["class"].split()
    assert "same-version defect" in defect["title"]
    assert "sv" in defect["text"]
    ok_same = cells[f"{A}|{A}|control|h5"]
    assert "same" in ok_same["class"].split() and "same-version defect" not in ok_same["title"]
    ctl = cells[f"{A}|{C}|custom_layer|h5"]
    assert "format/env pair" in ctl["title"] and ctl["text"].endswith("c")
    assert "same" not in ctl["class"].split()
    wrong = cells[f"{A}|{B}|custom_layer|h5"]  # control passes there: no mark
    assert "format/env pair" not in wrong["title"]


def test_escaping(page):
    text = read(page)
    assert "<script>alert" not in text
    assert "<img src=x" not in text
    assert "cannot serialize &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text  # save-error row text
    assert text.count("</script>") == 3  # only the data block, the packed cells and the script itself
    parsed = page_data(text)
    assert any(XSS == (c.get("message") or "") for c in parsed["cells"])


def test_remedy_shorts_and_legend(page):
    text = read(page)
    cells = grid_cells(text)
    assert cells[f"{A}|{B}|custom_layer|keras"]["text"] == "DEGco+nc"
    assert cells[f"{A}|{B}|custom_layer|savedmodel"]["text"] == "P+Rco+rw"
    assert cells[f"{A}|{A}|custom_layer|h5"]["text"] == "P+Rco"
    assert cells[f"{A}|{C}|control|savedmodel"]["text"] == "P+Rsm"
    assert report.remedy_short("custom_objects+compile_false") == "co+nc" and report.remedy_short(None) == ""
    legend = text.split('class="legend"', 1)[1].split("</details>", 1)[0]
    for r in REMEDIES:
        assert f"<code>{r.short}</code> {jinja_escape(r.label)}" in legend, r.name
    item = details(text, f"{A}|{B}|custom_layer|keras")
    assert item["remedy"] == "custom_objects+compile_false" and item["remedy_short"] == "co+nc"
    assert "compile config and the optimizer state" in item["remedy_cost"]
    assert page_data(text)["remedies"]["compile_false"] == {"short": "nc", "label": "compile=False"}


def jinja_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;").replace("'", "&#39;")


def test_warnings_apart_and_capped(page):
    item = details(read(page), f"{A}|{A}|control|h5")
    (save_at, save), (load_at, load) = item["warnings"]
    assert (save_at, load_at) == ("save", "load")
    assert save["total"] == 25 and save["shown"] == SAVE_WARNINGS[:report.WARNINGS_SHOWN]
    assert load["total"] == 23 and load["shown"] == LOAD_WARNINGS[:report.WARNINGS_SHOWN]
    assert item["attempts"][0]["warnings"] == {"shown": LOAD_WARNINGS[:3], "total": 23}
    assert details(read(page), f"{A}|{B}|control|h5")["warnings"][0][1]["total"] == 25  # the artifact's own
    assert details(read(page), f"{B}|{B}|control|h5")["warnings"] == []


def test_tolerances_reason_source_and_checks(page):
    text = read(page)
    item = details(text, f"{A}|{A}|control|h5")
    assert [t[0] for t in item["tolerances"]] == ["predictions", "resume", "slots"]
    assert item["tolerances"][0][1] == {"atol": 1e-5, "rtol": 1e-5}
    na = details(text, f"{C}|{A}|control|savedmodel")
    assert na["reason"].startswith("Keras 3 model.save()") and na["source"] == NA_SOURCE
    excluded = details(text, f"{B}|{A}|control|keras")
    assert excluded["reason"] == EXCLUSION["reason"] and excluded["source"] == "matrix.yaml: exclusions[0]"
    assert "TF 2.12 cannot read" in grid_cells(text)[f"{B}|{A}|control|keras"]["title"]
    assert page_data(text)["checks"] == list(report.CHECKS)
    assert details(text, f"{A}|{B}|control|savedmodel")["checks"]["serving"] is True
    weights = details(text, f"{A}|{C}|custom_layer|weights")
    assert weights["attempts"][0]["restore"] == NO_RESTORE and weights["checks"]["weights"] is False


def test_format_pass_rates(page, recs):
    cells, artifacts, _ = report._classify(recs)
    summary = {s["format"]: s for s in report.format_summary(cells, artifacts, list(FORMATS), list(FIXTURES))}
    # h5: 18 cells of the three working envs, one a harness defect; 14 ENV cells of D's row and column
    assert summary["h5"]["verdicts"] == 17
    assert summary["h5"]["pass"] == {"num": 11, "den": 17, "pct": 65}
    assert summary["h5"]["usable"] == {"num": 12, "den": 17, "pct": 71}
    assert summary["h5"]["not_counted"] == 15
    assert [(r["num"], r["den"]) for r in summary["h5"]["per_fixture"]] == [(7, 9), (4, 8)]
    # keras: one artifact not saved, two cells excluded (n/a)
    assert summary["keras"]["pass"] == {"num": 11, "den": 13, "pct": 85}
    assert summary["keras"]["usable"] == {"num": 11, "den": 13, "pct": 85}
    assert summary["keras"]["not_counted"] == 15 and summary["keras"]["save_errors"] == 1
    # savedmodel: Keras 3 writes none (6 n/a cells)
    assert summary["savedmodel"]["pass"] == {"num": 8, "den": 12, "pct": 67}
    assert summary["savedmodel"]["usable"] == {"num": 12, "den": 12, "pct": 100}
    assert summary["savedmodel"]["not_counted"] == 20 and summary["savedmodel"]["save_errors"] == 0
    # weights: one artifact lost with its save worker, one harness defect
    assert summary["weights"]["pass"] == {"num": 13, "den": 14, "pct": 93}
    assert summary["weights"]["not_counted"] == 14 and summary["weights"]["save_errors"] == 1
    assert [(r["num"], r["den"]) for r in summary["weights"]["per_fixture"]] == [(8, 8), (5, 6)]

    text = read(page)
    rows = dict(re.findall(r'<tr data-format="([^"]+)">(.*?)</tr>', text, re.S))
    assert "11/17 (65%)" in rows["h5"] and "12/17 (71%)" in rows["h5"]
    assert "11/13 (85%)" in rows["keras"]
    assert "8/12 (67%)" in rows["savedmodel"] and "12/12 (100%)" in rows["savedmodel"]
    assert "13/14 (93%)" in rows["weights"]


def test_run_facts_and_installed_versions(page):
    text = read(page)
    for s in ("R1", "2024-06-01 02:00:00 UTC", "31 min 05 s", "env create: 10 min 00 s", "w1",
              "2.16.2", "3.3.3", "3.11.0", "4.25.3", "0.16.1", ENV_ERROR, "1 / 1 / 2", "7 packages"):
        assert s in text, s


def test_harness_defects_line(page, recs):
    text = read(page)
    alert = re.search(r'<div class="alert" id="harness-defects" role="alert">(.*?)</div>', text, re.S)
    assert alert, "no harness defects line in the header"
    assert alert.start() < text.index('<section id="grid">')
    line = alert.group(1)
    assert "<b>2 harness defects</b>" in line and "exit code 1" in line
    assert "honesty check failed" in line and "already holds the producer&#39;s weights" in line
    assert f'data-key="{B}|{C}|custom_layer|h5"' in line and f'data-key="{C}|{A}|control|weights"' in line


def test_harness_defects_line_is_capped_and_absent_without_defects(tmp_path, recs):
    path = str(tmp_path / "run" / "results.jsonl")
    many = [{"producer": A, "consumer": B, "fixture": "control", "format": "h5", "defect": "defect %d" % i}
            for i in range(13)]
    text = read(report.render_report(path, str(tmp_path / "r1"), dict(RUN_META, harness_defects=many)))
    assert "<b>13 harness defects</b>" in text and "defect 9" in text and "defect 10" not in text
    assert "... and 3 more (run.json: harness_defects)" in text
    text = read(report.render_report(path, str(tmp_path / "r2"), dict(RUN_META, harness_defects=[])))
    assert 'id="harness-defects"' not in text
    # without the run's list (a run.json from before schema 2), the records say it
    text = read(report.render_report(path, str(tmp_path / "r3"), RUN_META))
    assert "<b>2 harness defects</b>" in text


def test_empty_results(tmp_path):
    out = report.render_report(str(tmp_path / "none.jsonl"), str(tmp_path / "r"), {"run_id": "R0"})
    text = read(out)
    assert "No results." in text and 'id="harness-defects"' not in text


def test_nan_diff_is_valid_json(tmp_path):
    run = SynthRun(tmp_path, [A, B], ("control",), ("h5",))
    for p in (A, B):
        run.saved(p, "control", "h5")
        for c in (A, B):
            run.checked(p, c, "control", "h5", plain=[att(None, "pass")])
    run.checked(A, B, "control", "h5", plain=[att(None, "wrong-output", max_abs_diff=float("nan"),
                                                  max_rel_diff=float("nan"))])
    run.write_results()
    text = read(report.render_report(run.store.results_path(), str(tmp_path / "r"), RUN_META))
    assert details(text, f"{A}|{B}|control|h5")["max_abs_diff"] == "nan"
    assert "NaN" not in text.split('id="report-data">', 1)[1].split("</script>", 1)[0]
    assert "NaN" not in json.dumps(page_data(text)["cells"])


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


def open_cell(page, tmp_path, key: str, hash_extra: str = "") -> tuple[str, str]:
    """The DOM after loading the page with `key`'s details open: (whole DOM, details panel)."""
    dom = run_chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom",
                       "file://" + page + "#" + hash_extra + "cell=" + key).stdout
    root = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-report-ready="' in root, "the report script did not run"
    assert "data-pwned" not in root, "a message was executed as HTML"
    panel = re.search(r'<aside id="details"[^>]*>(.*?)</aside>', dom, re.S)
    assert panel and "hidden" not in panel.group(0).split(">", 1)[0], "details panel not opened"
    return dom, panel.group(1)


@pytest.mark.browser
def test_page_runs_in_headless_chromium(page, tmp_path):
    dom, panel = open_cell(page, tmp_path, f"{A}|{C}|custom_layer|h5", "nonpass=1&")
    assert "<img" not in dom
    cells = grid_cells(dom)
    total = sum(1 for c in cells.values())
    passing = [c for c in cells.values() if c["data-outcome"] == "pass"]
    assert passing and all("off" in c["class"].split() for c in passing)  # only non-pass
    shown = total - len(passing)
    assert f"{shown} of {total} cells shown" in dom
    for s in ("format/env pair", "Unknown layer", "custom_objects+compile_false", "Traceback", "TypeError",
              "2.16.2", "3.3.3", "pass custom_objects", "Warnings at load (1)"):
        assert s in panel, s
    assert "sel" in cells[f"{A}|{C}|custom_layer|h5"]["class"].split()


DETAILS = {
    # cell -> what its details panel says
    f"{A}|{A}|control|h5": ["Warnings at save (25)", "... and 5 more (results.jsonl has all)",
                            "Warnings at load (23)", "... and 3 more (results.jsonl has all)",
                            "tolerance (predictions)", "atol 1.00e-5, rtol 1.00e-5", "tolerance (resume)",
                            "tolerance (slots)", "warnings (23): load warning 0",
                            "load warning 2: compiled metrics have yet to be built ... and 20 more"],
    f"{C}|{A}|control|savedmodel": ["Not applicable", "Keras 3 model.save() writes only .keras and .h5",
                                    "Tried anyway", "model.save(\"savedmodel\")",
                                    "ValueError: Invalid filepath extension for saving",
                                    f'<a href="{NA_SOURCE}" rel="noopener noreferrer" target="_blank">{NA_SOURCE}</a>'],
    f"{B}|{A}|control|keras": ["Not applicable", "keras-team/keras#18830", '<span class="mono">matrix.yaml: exclusions[0]'],
    f"{B}|{C}|custom_layer|h5": ["Harness defect: honesty check failed", "Not a verdict",
                                 "fixture code was loaded, registered or importable in this no-remedy attempt"],
    f"{C}|{A}|control|weights": ["harness defect: the rebuilt model already holds", "HarnessDefect"],
    f"{A}|{B}|custom_layer|keras": ["custom_objects+compile_false (co+nc: custom_objects={...} + compile=False)",
                                    "what it costs", "training restarts with a fresh optimizer",
                                    "lost</th><td>compile, optimizer_state"],
    f"{A}|{B}|custom_layer|savedmodel": ["optimizer: iterations 0, producer 3", "serving"],
    f"{A}|{C}|custom_layer|weights": ["restore: changed 0 of 4 variables; not matching the producer: dense/kernel",
                                      "weights</th><td><span class=\"bad\">no"],
    f"{B}||custom_layer|weights": ["the save worker crashed", "killed by signal SIGSEGV", "(artifact, all consumers)",
                                   "save failure"],
    f"{D}||control|h5": ["(producer env, all consumers)", ENV_ERROR],
}


# What a non-verdict's panel leaves out: there was no load attempt to judge.
ABSENT = {
    f"{C}|{A}|control|savedmodel": ["Result", "tolerance (", ">Error<"],
    f"{B}||custom_layer|weights": ["Result", "tolerance ("],
    f"{D}||control|h5": ["Result", "TF imports"],
}


def probe(page, tmp_path, fragment: str, script: str):
    """Run `script` (JS: `doc` is the report's document; it returns a JSON-able value) on the report
    loaded in a frame, in headless Chromium, and return what it returned."""
    frame = tmp_path / "probe.html"
    frame.write_text("""<!DOCTYPE html><html><body><iframe id="f" src="file://%s%s"></iframe><script>
    var f = document.getElementById("f");
    f.onload = function () {
      var doc = f.contentDocument;
      (function whenReady() {  // the page inflates its cells first, then marks itself ready
        if (!doc.documentElement.hasAttribute("data-report-ready")) { return setTimeout(whenReady, 20); }
        var out = document.createElement("pre");
        out.id = "out";
        out.textContent = JSON.stringify((function (doc) { %s }(doc)));
        document.body.appendChild(out);
      }());
    };
    </script></body></html>""" % (page, fragment, script))
    dom = run_chromium(tmp_path, "--allow-file-access-from-files", "--virtual-time-budget=5000", "--dump-dom",
                       "file://" + str(frame)).stdout
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.browser
def test_details_panels_open_on_click_in_headless_chromium(page, tmp_path):
    result = probe(page, tmp_path, "", """
      var out = {};
      %s.forEach(function (key) {
        var link = doc.createElement("a");  // a cell is reached by its key the way a #cell= link does
        link.className = "cell-link";
        link.setAttribute("data-key", key);
        doc.body.appendChild(link);
        link.click();
        out[key] = doc.getElementById("details").hidden ? null : doc.getElementById("d-body").innerHTML;
      });
      return {panels: out, loaded: doc.defaultView.performance.getEntriesByType("resource").map(function (e) {
        return e.name; })};""" % json.dumps(list(DETAILS)))
    assert result["loaded"] == []  # the page, with every panel opened, loaded nothing
    panels = result["panels"]
    for key, wanted in DETAILS.items():
        assert panels[key] is not None, (key, "details panel not opened")
        assert "data-pwned" not in panels[key]
        for s in wanted:
            assert s in panels[key], (key, s)
        for s in ABSENT.get(key, []):
            assert s not in panels[key], (key, s)


@pytest.mark.browser
def test_a_cell_gets_its_key_and_tooltip_from_its_details(page, tmp_path):
    # The HTML cell holds only its index; the script finds it by key (#cell=) and titles it on hover.
    key = f"{B}|{C}|custom_layer|h5"
    out = probe(page, tmp_path, "#cell=" + key, """
      var sel = doc.querySelector("td.cell.sel");
      var other = doc.querySelectorAll("td.cell[data-i]")[3];
      other.dispatchEvent(new MouseEvent("mouseover", {bubbles: true}));
      return {hash: doc.defaultView.location.hash, selected: sel && sel.getAttribute("data-i"),
              title: other.title, i: other.getAttribute("data-i"), untitled: doc.querySelectorAll("td[title]").length};""")
    cells = grid_cells(read(page))
    assert out["selected"] == cells[key]["data-i"]
    assert out["hash"] == "#cell=" + key.replace("|", "%7C")
    titles = {c["data-i"]: c["title"] for c in cells.values()}
    assert out["title"] and out["title"] == titles[out["i"]]
    assert out["untitled"] == 1  # only the hovered cell has a title attribute: none came in the HTML


@pytest.mark.browser
def test_harness_defect_link_opens_its_cell(page, tmp_path):
    # The grid shows pass cells only, so the linked cell is hidden: the link shows and opens it.
    out = probe(page, tmp_path, "#outcome=pass", """
      doc.querySelectorAll("a.cell-link")[1].click();
      return {panel: doc.getElementById("d-body").textContent, hidden: doc.getElementById("details").hidden,
              hash: doc.defaultView.location.hash, outcome: doc.getElementById("f-outcome").value};""")
    assert out["hidden"] is False and out["outcome"] == ""  # the filters were reset to show the cell
    assert f"{C} \u2192 {A} \u00b7 control \u00b7 weights" in out["panel"]
    assert "already holds the producer's weights" in out["panel"]
    assert "cell=" in out["hash"]


@pytest.mark.browser
def test_page_screenshot(page, tmp_path):
    shot = tmp_path / "report.png"
    run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,1000", "--virtual-time-budget=5000",
                 "file://" + page + "#cell=" + f"{A}|{B}|custom_layer|keras")
    assert shot.exists() and shot.stat().st_size > 20_000
    with open(shot, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("TFCOMPAT_SCREENSHOT"):
        shutil.copy(shot, os.environ["TFCOMPAT_SCREENSHOT"])


def test_publish_applies_the_current_expectations_and_keeps_the_run_as_recorded(tmp_path, recs):
    from harness.matrix import Matrix
    from harness.runner import publish

    run_dir = tmp_path / "run"
    recorded = read(str(run_dir / "results.jsonl"))
    matrix = Matrix(path="m.yaml", environments=[], fixtures=[], formats=[], expectations=[
        {"producer": A, "consumer": [B, C], "fixture": "control", "format": "h5", "outcome": "load-error",
         "reason": "public report X", "expires": "2099-01-01"},
        {"producer": C, "consumer": "*", "fixture": "custom_layer", "format": "keras", "outcome": "save-error",
         "reason": "Keras 3 cannot serialize it", "expires": "2000-01-01"},
    ])
    index, meta_back = publish(str(run_dir), str(tmp_path / "reports"), dict(RUN_META), matrix)

    assert read(str(run_dir / "results.jsonl")) == recorded  # the run's own record is append-only
    published = {(r["producer"], r["consumer"], r["fixture"], r["format"]): r
                 for r in results.read(str(tmp_path / "reports" / "results.jsonl"))}
    assert published[(A, C, "control", "h5")]["expectation"]["met"] is True
    assert published[(A, B, "control", "h5")]["expectation"]["met"] is False  # it passes: a fixed break
    assert published[(C, None, "custom_layer", "keras")]["expectation"]["expired"] is True
    # The expectation the run carried for (A, A, control, savedmodel) is gone: this matrix has none there.
    assert recs[[(r["producer"], r["consumer"], r["fixture"], r["format"]) for r in recs].index(
        (A, A, "control", "savedmodel"))]["expectation"]["met"] is True
    assert published[(A, A, "control", "savedmodel")]["expectation"] is None
    with open(tmp_path / "reports" / "run.json") as fh:
        meta = json.load(fh)
    summary = meta["expectations"]
    assert (summary["cells"], summary["met"], summary["expired"]) == (3, 2, 1)
    assert meta_back["expectations"] == summary and meta_back["harness_defects"] == meta["harness_defects"]
    assert summary["unmet"] == [{"producer": A, "consumer": B, "fixture": "control", "format": "h5",
                                 "expected": "load-error", "got": "pass", "reason": "public report X"}]
    assert len(meta["harness_defects"]) == 2
    text = read(index)
    assert "3 cells covered: 2 met, 1 not met, 1 expired" in text
    assert "<b>2 harness defects</b>" in text
    cells = grid_cells(text)
    assert cells[f"{A}|{B}|control|h5"]["text"].endswith("e!")
    assert cells[f"{A}|{C}|control|h5"]["text"].endswith("e") and "e!" not in cells[f"{A}|{C}|control|h5"]["text"]
