"""A corpus of bad inputs, by category: each case is (category, name, setup) where setup(tmp) returns
the CLI arguments and the text the one error line must hold. Used by tests/test_hardening.py and by
bench/robustness.py (which prints the counts for the README)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUB_FIXTURE = "def data(ctx):\n    pass\n\n\ndef build(ctx):\n    pass\n"
GOOD = """version: 1
defaults: {python: "3.11"}
environments:
  - {id: tf2.15, tensorflow: "2.15.1", keras: bundled}
  - {id: tf2.16-keras3, tensorflow: "2.16.2", keras: "3.3.3"}
fixtures: [control]
formats: [h5]
"""
HEAD = GOOD.split("environments:")[0]  # version and defaults
EXCLUDE = "exclusions: [{producer: %s, consumer: '*', fixture: %s, format: '*', reason: r}]\n"
BOMB = ('a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
    "%s: &%s [%s]\n" % (c, c, ",".join(["*" + p] * 9)) for p, c in zip("abcdefgh", "bcdefghi")))


def project(tmp, matrix_text: str | bytes = GOOD, fixtures: dict | None = None) -> str:
    """A project folder with matrix.yaml and fixture modules; returns the matrix path."""
    os.makedirs(os.path.join(tmp, "fixtures"), exist_ok=True)
    for name, text in (fixtures or {"control": STUB_FIXTURE}).items():
        with open(os.path.join(tmp, "fixtures", name + ".py"), "wb") as fh:
            fh.write(text if isinstance(text, bytes) else text.encode())
    path = os.path.join(tmp, "matrix.yaml")
    with open(path, "wb") as fh:
        fh.write(matrix_text if isinstance(matrix_text, bytes) else matrix_text.encode())
    return path


def _matrix(text, want, command=("plan",)):
    def setup(tmp):
        return ["--matrix", project(tmp, text), *command], want
    return setup


def _edit(old, new, want):
    assert old in GOOD, old
    return _matrix(GOOD.replace(old, new, 1), want)


def _special(kind, want):
    def setup(tmp):
        project(tmp)
        if kind == "fifo":
            path = os.path.join(tmp, "fifo.yaml")
            os.mkfifo(path)
        elif kind == "dir":
            path = os.path.join(tmp, "adir.yaml")
            os.makedirs(path)
        elif kind == "big":
            path = os.path.join(tmp, "big.yaml")
            with open(path, "w") as fh:
                fh.write("# " + "x" * 1_100_000 + "\n")
        else:
            path = kind
        return ["--matrix", path, "plan"], want
    return setup


def _cli(args, want, prepare=None):
    def setup(tmp):
        matrix = project(tmp)
        if prepare:
            prepare(tmp)
        return ["--matrix", matrix, "--state-dir", os.path.join(tmp, "state"), "--reports",
                os.path.join(tmp, "reports"), *[a.replace("TMP", tmp) for a in args]], want
    return setup


def _fixture(text, want):
    def setup(tmp):
        return ["--matrix", project(tmp, fixtures={"control": text}), "plan"], want
    return setup


def _garbage_run(content):
    def prepare(tmp):
        run = os.path.join(tmp, "state", "runs", "20240101-000000")
        os.makedirs(run)
        with open(os.path.join(run, "run.json"), "w") as fh:
            fh.write(content)
    return prepare


def _file_at(name):
    def prepare(tmp):
        with open(os.path.join(tmp, name), "w") as fh:
            fh.write("not a folder")
    return prepare


CASES = [
    # -- the matrix file's bytes and YAML
    ("bytes", "not utf-8", _matrix(b"version: 1\n\xff\xfe junk\n", "not UTF-8 text (byte 0xff at offset 11)")),
    ("bytes", "utf-16 with bom", _matrix(GOOD.encode("utf-16"), "UTF-16 text; save it as UTF-8")),
    ("bytes", "nul byte", _matrix(b"version: 1\x00\n", "a NUL byte at offset 10")),
    ("bytes", "binary junk", _matrix(bytes(range(256)) * 3, "a NUL byte at offset 0")),
    ("bytes", "latin-1", _matrix("version: 1\n# caf\xe9\n".encode("latin-1"), "not UTF-8 text")),
    ("yaml", "deep list", _matrix("a: " + "[" * 500 + "]" * 500 + "\n", "nested more than 40 levels deep")),
    ("yaml", "deep mapping", _matrix("".join("  " * i + "k%d:\n" % i for i in range(300)),
                                     "nested more than 40 levels deep")),
    ("yaml", "alias bomb", _matrix(BOMB, "expands to more than 200000 values")),
    ("yaml", "alias cycle", _matrix("a: &a [*a]\n", "an alias refers to the value that holds it")),
    ("yaml", "not yaml", _matrix("version: [1\n", "not valid YAML")),
    ("yaml", "a list, not a mapping", _matrix("- 1\n- 2\n", "(top level): the document is a list; the file must be")),
    ("yaml", "a string, not a mapping", _matrix("'version: 1'\n", "(top level): the document is a string; the file")),
    ("yaml", "only a comment", _matrix("# nothing yet\n", "(top level): no YAML document (the file is empty or only")),
    ("yaml", "an empty file", _matrix("", "(top level): no YAML document (the file is empty or only comments)")),
    ("yaml", "a null document (~)", _matrix("~\n", "(top level): the document is null (~, null or nothing after")),
    ("yaml", "only ---", _matrix("---\n# later\n", "(top level): the document is null (~, null or nothing after")),
    ("yaml", "duplicate key", _matrix(GOOD + "formats: [keras]\n", "key 'formats' appears twice")),
    ("yaml", "yes is a string", _matrix(GOOD + "check_timeout: yes\n", "check_timeout: 'yes' is a string")),
    ("yaml", "1:00 is a string", _matrix(GOOD + "check_timeout: 1:00\n", "check_timeout: '1:00' is a string")),
    ("yaml", "on as a key", _matrix(GOOD + "on: 1\n", "on: unknown key")),
    ("file", "a fifo", _special("fifo", "not a regular file")),
    ("file", "a device", _special("/dev/zero", "/dev/zero: not a regular file")),
    ("file", "a directory", _special("dir", "a directory; give a matrix file")),
    ("file", "an empty path", _special("", "--matrix: an empty path")),
    ("file", "too big", _special("big", "a matrix file is at most 1000000 bytes")),
    ("file", "missing", _special("/nonexistent/matrix.yaml", "cannot read: No such file or directory")),
    # -- values
    ("values", "id ..", _edit("id: tf2.15,", "id: '..',", "environments[0].id: '..' is not allowed")),
    ("values", "id .", _edit("id: tf2.15,", "id: '.',", "environments[0].id: '.' is not allowed")),
    ("values", "id starting with -", _edit("id: tf2.15,", "id: '-x',", "environments[0].id: '-x' is not allowed")),
    ("values", "id starting with .", _edit("id: tf2.15,", "id: .hidden,", "environments[0].id: '.hidden'")),
    ("values", "id with a slash", _edit("id: tf2.15,", "id: a/b,", "environments[0].id: 'a/b' is not allowed")),
    ("values", "id too long", _edit("id: tf2.15,", "id: %s," % ("a" * 65), "is not allowed")),
    ("values", "placeholder, exact version", _edit("id: tf2.15,", "id: 'tf{tensorflow}',",
                                                   "a {tensorflow}/{keras} placeholder is only for a version range")),
    ("values", "python 3.99", _edit('python: "3.11"', 'python: "3.99"', "defaults.python: '3.99' is not allowed")),
    ("values", "python 3.1", _edit('python: "3.11"', 'python: "3.1"', "defaults.python: '3.1' is not allowed")),
    ("values", "tensorflow 2.99.0", _edit('tensorflow: "2.15.1"', 'tensorflow: "2.99.0"',
                                         "2.99.0 is not a tensorflow release on the package index; the nearest")),
    ("values", "tensorflow 2.4.4 on python 3.11", _edit('tensorflow: "2.15.1"', 'tensorflow: "2.4.4"',
                                                        "tensorflow 2.4.4 has no wheel for Python 3.11")),
    ("values", "python as a number", _edit('python: "3.11"', "python: 3.10", "defaults.python: 3.1 is a number")),
    ("values", "check_timeout nan", _matrix(GOOD + "check_timeout: .nan\n", "check_timeout: nan is not a finite")),
    ("values", "check_timeout inf", _matrix(GOOD + "check_timeout: .inf\n", "check_timeout: inf is not a finite")),
    ("values", "check_timeout negative", _matrix(GOOD + "check_timeout: -5\n", "check_timeout: -5 must be greater")),
    ("values", "atol nan", _edit("fixtures: [control]", "fixtures: [{name: control, atol: .nan}]",
                                 "fixtures[0].atol: nan is not a finite number")),
    ("values", "a pin twice under two spellings",
     _edit('keras: bundled}', 'keras: bundled, pins: {tensorflow_hub: "0.16.1", tensorflow-hub: "0.15.0"}}',
           "names the same package as")),
    ("values", "unknown backend option",
     _edit('keras: bundled}', 'keras: bundled, backend: {docker: {base_img: x}}}', "did you mean 'base_image'?")),
    ("values", "exclusion field a list", _matrix(
        GOOD + "exclusions:\n  - {producer: [[tf2.15]], consumer: '*', fixture: '*', format: '*', reason: r}\n",
        "exclusions[0].producer[0]: ['tf2.15'] is a list; expected a string")),
    ("values", "a fixture given as a list", _edit("fixtures: [control]", "fixtures: [[control]]",
                                                  "fixtures[0]: ['control'] is a list; expected a string or mapping")),
    ("values", "a fixture given as a number", _edit("fixtures: [control]", "fixtures: [control, 3]",
                                                    "fixtures[1]: 3 is a number; expected a string or mapping")),
    ("values", "a fixture name given as a list", _edit("fixtures: [control]", "fixtures: [{name: [control]}]",
                                                       "fixtures[0].name: ['control'] is a list; expected a string")),
    ("values", "an exclusion given as a list", _matrix(GOOD + "exclusions: [['*', tf2.15]]\n",
                                                       "exclusions[0]: ['*', 'tf2.15'] is a list; expected a mapping")),
    ("values", "a pin named resave given a list", _edit('keras: bundled}', 'keras: bundled, pins: {resave: [1]}}',
                                                        "environments[0].pins.resave: [1] is a list; expected a")),
    ("values", "a set_env named resave given a list",
     _edit('python: "3.11"}', 'python: "3.11", set_env: {resave: [a]}}',
           "defaults.set_env.resave: ['a'] is a list; expected a string or integer")),
    ("values", "resave listing a number", _edit("fixtures: [control]", "fixtures: [{name: control, resave: [3]}]",
                                                "fixtures[0].resave: [3] is not true, false or a list of environment")),
    # -- a top-level section of the wrong shape: the schema's line, and nothing leaning on it
    ("sections", "defaults null", _edit('defaults: {python: "3.11"}', "defaults: ~",
                                        "defaults: null is a null; expected a mapping")),
    ("sections", "defaults a list", _edit('defaults: {python: "3.11"}', 'defaults: [python: "3.11"]',
                                          "defaults: [{'python': '3.11'}] is a list; expected a mapping")),
    ("sections", "defaults a string", _edit('defaults: {python: "3.11"}', 'defaults: "3.11"',
                                            "defaults: '3.11' is a string; expected a mapping")),
    ("sections", "defaults.python null", _edit('defaults: {python: "3.11"}', "defaults: {python: ~}",
                                               "defaults.python: null is a null; expected a string")),
    ("sections", "an env's python null", _edit("keras: bundled}", "keras: bundled, python: ~}",
                                               "environments[0].python: null is a null; expected a string")),
    ("sections", "environments null, an exclusion names one",
     _matrix(HEAD + "environments: ~\nfixtures: [control]\nformats: [h5]\n" + EXCLUDE % ("tf2.15", "'*'"),
             "environments: null is a null; expected a list")),
    ("sections", "environments a string, resave names one",
     _matrix(HEAD + "environments: tf2.15\nfixtures: [{name: control, resave: [tf2.15]}]\nformats: [h5]\n",
             "environments: 'tf2.15' is a string; expected a list")),
    ("sections", "fixtures empty, an exclusion names one",
     _matrix(GOOD.replace("fixtures: [control]", "fixtures: []") + EXCLUDE % ("'*'", "control"),
             "fixtures: must not be empty")),
    ("sections", "fixtures a mapping, an exclusion names one",
     _matrix(GOOD.replace("fixtures: [control]", "fixtures: {control: {}}") + EXCLUDE % ("'*'", "control"),
             "fixtures: {'control': {}} is a mapping; expected a list")),
    ("sections", "resave names an env with its own mistake",
     _matrix(GOOD.replace('tensorflow: "2.15.1"', 'tensorflow: "2.15"').replace(
         "fixtures: [control]", "fixtures: [{name: control, resave: [tf2.15]}]"),
         "environments[0].tensorflow: '2.15' is not a version")),
    ("sections", "defaults.backend misspelt", _edit('defaults: {python: "3.11"}',
                                                    'defaults: {python: "3.11", backend: dockr}',
                                                    "defaults.backend: unknown backend 'dockr' (did you mean")),
    ("values", "expectation outcome unknown",
     _matrix(GOOD + "expectations:\n  - {producer: tf2.15, consumer: '*', fixture: '*', format: '*', outcome: fine, "
             "reason: r, expires: 2099-01-01}\n", "expectations[0].outcome: 'fine' is not an outcome")),
    ("values", "expires not a date",
     _matrix(GOOD + "expectations:\n  - {producer: tf2.15, consumer: '*', fixture: '*', format: '*', outcome: pass, "
             "reason: r, expires: 2027-13-45}\n", "expectations[0].expires: '2027-13-45' is not a date")),
    ("values", "unknown defaults key", _edit('defaults: {python: "3.11"}', 'defaults: {python: "3.11", tenserflow: x}',
                                             "defaults.tenserflow")),
    ("fixtures", "syntax error", _fixture("def build(ctx:\n", "fixtures/control.py line 1: does not parse")),
    ("fixtures", "no build()", _fixture("def data(ctx):\n    pass\n", "fixtures/control.py defines no build()")),
    ("fixtures", "not UTF-8", _fixture(b"def build(ctx): pass\ndef data(ctx): pass\nX = 'caf\xe9'\n",
                                       "fixtures/control.py line 3: does not parse ((unicode error)")),
    # -- the command line and the state dir
    ("cli", "--jobs 0", _cli(["run", "--jobs", "0"], "argument --jobs/-j: 0: give 1 or more")),
    ("cli", "--jobs abc", _cli(["run", "--jobs", "abc"], "'abc' is not a whole number")),
    ("cli", "--timeout 0", _cli(["run", "--timeout", "0"], "argument --timeout: 0: give a number of seconds")),
    ("cli", "--timeout -1", _cli(["run", "--timeout", "-1"], "argument --timeout: -1: give a number of seconds")),
    ("cli", "--timeout nan", _cli(["run", "--timeout", "nan"], "argument --timeout: nan: give a number of seconds")),
    ("cli", "--timeout abc", _cli(["run", "--timeout", "abc"], "'abc' is not a number of seconds")),
    ("cli", "--shards 0", _cli(["plan", "--shards", "0"], "argument --shards: 0: give 1 or more")),
    ("cli", "unknown command", _cli(["frobnicate"], "invalid choice: 'frobnicate'")),
    ("cli", "--only unknown env", _cli(["run", "--only", "tf9"], "tf9")),
    ("state", "report, no runs", _cli(["report"], "report --run: no earlier run under")),
    ("state", "report --run unknown", _cli(["report", "--run", "nosuch"], "report --run: no run 'nosuch'")),
    ("state", "report --run ..", _cli(["report", "--run", ".."], "report --run: no run '..'")),
    ("state", "--resume unknown", _cli(["run", "--resume", "nosuch"], "--resume: no run 'nosuch'")),
    ("state", "--resume, garbage run.json", _cli(["run", "--resume"], "run.json: cannot be read (JSONDecodeError)",
                                                 _garbage_run("{not json"))),
    ("state", "--resume, truncated run.json", _cli(["run", "--resume"], "run.json: cannot be read",
                                                   _garbage_run('{"run_id": "x", "sel'))),
    ("state", "--resume, run.json a list", _cli(["run", "--resume"], "not a tfcompat run record",
                                                _garbage_run(json.dumps([1, 2])))),
    ("state", "--state-dir is a file", _cli(["--state-dir", "TMP/afile", "plan"], "--state-dir: ",
                                            _file_at("afile"))),
    ("state", "--reports is a file", _cli(["--reports", "TMP/afile", "report"], "--reports: ", _file_at("afile"))),
]


@contextlib.contextmanager
def tmpfs(where, options: str):
    """A tmpfs mounted at `where` (root only: the fault tests need a small or read-only filesystem)."""
    if os.geteuid() != 0:
        raise RuntimeError("this test mounts a tmpfs: run it as root (CI does)")
    os.makedirs(where, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
