"""reports/junit.xml: one testcase per verdict cell, so any CI shows the grid natively.

A cell fails when it is not usable (harness/outcomes.py: a passing outcome, through no rung that keeps
the user on Keras 2) and no met expectation covers it; non-verdicts (save-error,
not-applicable, env-error) are skipped testcases with their reason; a harness defect is an error.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .outcomes import is_verdict, keras2_only, usable


def junit_xml(records: list[dict], run_id: str) -> bytes:
    suites: dict[str, list[dict]] = {}
    for rec in records:
        suites.setdefault(rec["fixture"], []).append(rec)
    root = ET.Element("testsuites", name="tfcompat %s" % run_id)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for fixture, recs in suites.items():
        suite = ET.SubElement(root, "testsuite", name=fixture)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for rec in recs:
            counts["tests"] += 1
            case = ET.SubElement(suite, "testcase", classname="%s.%s" % (fixture, rec["format"]),
                                 name="%s -> %s" % (rec["producer"], rec.get("consumer") or "*"),
                                 time="%.3f" % float(rec.get("duration_s") or 0.0))
            outcome = rec["outcome"]
            text = "%s%s: %s" % (outcome, " (remedy %s)" % rec["remedy"] if rec.get("remedy") else "",
                                 rec.get("message") or rec.get("reason") or "")
            expected = bool(rec.get("expectation") and rec["expectation"].get("met"))
            if outcome == "harness-error":
                counts["errors"] += 1
                ET.SubElement(case, "error", message=text[:500], type=outcome).text = rec.get("harness_defect") or ""
            elif not is_verdict(outcome):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=text[:500])
            elif not usable(outcome, rec.get("remedy")) and not expected:
                counts["failures"] += 1
                if keras2_only(rec.get("remedy")) and usable(outcome, None):
                    text = "usable only through the legacy tf_keras (Keras 2), not on Keras 3: " + text
                failure = ET.SubElement(case, "failure", message=text[:500], type=outcome)
                failure.text = (rec.get("hint") or "") + ("\n" + rec["traceback"] if rec.get("traceback") else "")
            elif not usable(outcome, rec.get("remedy")):
                ET.SubElement(case, "system-out").text = "expected: %s" % rec["expectation"].get("reason")
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
