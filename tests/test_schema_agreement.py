"""The shipped JSON Schema (what editors check as you type) and tfcompat's own checks agree wherever
the schema can state the rule: outcome names, duplicate-free formats, the date and id patterns, the
Pythons, the keys `defaults` takes, the document being a mapping. Each variant is one rule toggled on a
valid matrix."""

import jsonschema
import pytest
from corpus import GOOD, project

from harness.errors import ConfigError
from harness.matrix_check import _load_schema, read_matrix
from harness.matrix_load import parse_yaml
from harness.results import OUTCOMES

EXPECT = ("expectations:\n  - {producer: tf2.15, consumer: '*', fixture: '*', format: '*', outcome: %s, "
          "reason: r, expires: %s}\n")


def variants():
    for outcome in list(OUTCOMES) + ["fine", "PASS", "passed"]:
        yield "outcome %s" % outcome, GOOD + EXPECT % (outcome, "2099-01-01")
    for expires in ("2099-01-01", "2099-1-1", "soon", "01-01-2099"):
        yield "expires %s" % expires, GOOD + EXPECT % ("pass", expires)
    for formats in ("[h5]", "[h5, keras]", "[h5, h5]", "[keras, h5, keras]"):
        yield "formats %s" % formats, GOOD.replace("formats: [h5]", "formats: %s" % formats)
    for env_id in ("tf2.15", "x.y_z-a", "A" * 64, "A" * 65, "..", ".", "-x", ".x", "a/b", "a b", "tf 2"):
        yield "id %r" % env_id, GOOD.replace("id: tf2.15,", "id: '%s'," % env_id)
    for python in ("3.8", "3.11", "3.13", "auto", "3.4", "3.14", "3.99", "2.7", "3"):
        yield "python %s" % python, GOOD.replace('python: "3.11"', 'python: "%s"' % python)
    for key, value in (("keras", "bundled"), ("pins", "{numpy: '<2'}"), ("set_env", "{A: b}"), ("backend", "tox"),
                       ("tensorflow", "'2.15.1'"), ("fixtures", "[control]"), ("id", "x")):
        yield "defaults.%s" % key, GOOD.replace('defaults: {python: "3.11"}',
                                                'defaults: {python: "3.11", %s: %s}' % (key, value))


    for fixtures in ("[control]", "[{name: control}]", "[[control]]", "[control, 3]", "[{name: [control]}]",
                     "[{name: {a: 1}}]", "[true]", "[~]"):
        yield "fixtures %s" % fixtures, GOOD.replace("fixtures: [control]", "fixtures: %s" % fixtures)
    for resave in ("true", "[tf2.15]", "[3]", "[[tf2.15]]", "tf2.15", "[~]"):
        yield "resave %s" % resave, GOOD.replace("fixtures: [control]", "fixtures: [{name: control, resave: %s}]"
                                                 % resave)
    # the keys the checks speak for (resave, outcome, expires, formats) used as names of pins and set_env
    for where, value in (("pins", "{resave: '<2'}"), ("pins", "{resave: [1]}"), ("pins", "{outcome: {a: 1}}"),
                         ("pins", "{expires: [x]}"), ("set_env", "{resave: 3}"), ("set_env", "{resave: [a]}"),
                         ("set_env", "{formats: [a, a]}"), ("set_env", "{outcome: ~}")):
        yield "names %s: %s" % (where, value), GOOD.replace("keras: bundled}", "keras: bundled, %s: %s}"
                                                           % (where, value))
    for exclusions in ("[]", "~", "[{producer: '*', consumer: tf2.15, fixture: '*', format: '*', reason: r}]",
                       "[['*', tf2.15]]", "[['*', tf2.15, '*', '*', r]]", "['*']", "[[]]", "[~]",
                       "{producer: '*', consumer: tf2.15, fixture: '*', format: '*', reason: r}"):
        yield "exclusions %s" % exclusions, GOOD + "exclusions: %s\n" % exclusions
    # each top-level section given another shape (null, a scalar, the wrong collection, empty); an empty
    # defaults and a fixture name with no module are the checks' own rules (no python; no fixtures/x.py)
    no_envs = "".join(line for line in GOOD.splitlines(True) if not line.startswith(("environments:", "  - ")))
    for key, good in (("defaults", '{python: "3.11"}'), ("environments", None), ("fixtures", "[control]"),
                      ("formats", "[h5]")):
        for value in ("~", "x", "3", "[]", "{}", "[x]"):
            if (key, value) in (("defaults", "{}"), ("fixtures", "[x]")):
                continue
            text = (no_envs + "environments: %s\n" % value if key == "environments" else
                    GOOD.replace("%s: %s" % (key, good), "%s: %s" % (key, value)))
            yield "sections %s: %s" % (key, value), text
    for key in ("exclusions", "expectations", "check_timeout", "converter"):
        for value in ("~", "x", "3", "[]", "{}", "[x]"):
            yield "sections %s: %s" % (key, value), GOOD + "%s: %s\n" % (key, value)
    # the document itself: a mapping, or something else (nothing at all, null, a list, a string)
    for doc in ("", "# only a comment\n", "~\n", "null\n", "---\n", "- 1\n", "'x'\n", "3\n"):
        yield "document %r" % doc, doc
    yield "document GOOD", GOOD


CASES = list(variants())


@pytest.mark.parametrize("name,text", CASES, ids=[n for n, _ in CASES])
def test_the_schema_and_the_checks_agree(fake_index, tmp_path, name, text):
    data, problems = parse_yaml(text)
    assert not problems  # a null document (or none) is None, as JSON's null: the schema wants an object
    schema_ok = not list(jsonschema.Draft202012Validator(_load_schema()).iter_errors(data))
    try:
        read_matrix(project(str(tmp_path), text))
        checks_ok = True
    except ConfigError:
        checks_ok = False
    assert schema_ok == checks_ok, (name, schema_ok, checks_ok)


def test_both_sides_are_exercised():
    # each rule has variants the schema accepts and variants it refuses (a test that could not fail
    # proves nothing)
    seen: dict = {}
    for name, text in CASES:
        data, _ = parse_yaml(text)
        ok = not list(jsonschema.Draft202012Validator(_load_schema()).iter_errors(data))
        seen.setdefault(name.split()[0].split(".")[0], set()).add(ok)
    assert seen == {k: {True, False} for k in ("outcome", "expires", "formats", "id", "python", "defaults",
                                                 "fixtures", "resave", "names", "exclusions", "sections",
                                                 "document")}
