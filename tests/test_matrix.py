"""matrix.yaml loading and validation, and interpreter discovery (no TensorFlow needed)."""

from __future__ import annotations

import json
import os
import textwrap

import jsonschema
import pytest
from synth import STUB_FIXTURE

from harness.errors import ConfigError, InterpreterNotFound
from harness.interpreters import find_python
from harness.matrix import SCHEMA_PATH, EnvSpec, load_matrix

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GOOD = textwrap.dedent(
    """\
    version: 1
    defaults:
      python: "3.11"
      pins: {tensorflow-hub: "==0.16.1", setuptools: "<81"}
    check_timeout: 120
    environments:
      - id: tf2.12
        tensorflow: "2.12.1"
        keras: bundled
      - id: tf2.15
        tensorflow: "2.15.1"
        keras: bundled
        pins: {numpy: "1.26.4", setuptools: null}
      - id: tf2.16-keras3
        tensorflow: "2.16.2"
        keras: "3.3.3"
      - id: tf2.16-tfkeras
        tensorflow: "2.16.2"
        keras: tf-keras
        tf_keras: "2.16.0"
        set_env: {EXTRA: "yes"}
    fixtures:
      - control
      - custom_layer
      - {name: hub_layer, atol: 1e-4, rtol: 0.001}
    formats: [h5, keras, savedmodel]
    exclusions:
      - {producer: "*", consumer: tf2.12, fixture: "*", format: keras, reason: "no .keras before 2.13"}
    expectations:
      - producer: tf2.15
        consumer: tf2.16-keras3
        fixture: "*"
        format: savedmodel
        outcome: load-error
        reason: Keras 3 cannot load a Keras 2 SavedModel
        expires: 2027-06-30
    """
)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project dir with fixture modules; cwd is inside it so problems say 'matrix.yaml'."""
    (tmp_path / "fixtures").mkdir()
    for name in ("control", "custom_layer", "hub_layer"):
        (tmp_path / "fixtures" / f"{name}.py").write_text(STUB_FIXTURE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(project, text: str) -> str:
    path = project / "matrix.yaml"
    path.write_text(text)
    return str(path)


def problems(project, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_matrix(write(project, text))
    return info.value.problems


# ---------------------------------------------------------------- good files


def test_good_matrix_loads(project):
    m = load_matrix(write(project, GOOD))
    assert [e.id for e in m.environments] == ["tf2.12", "tf2.15", "tf2.16-keras3", "tf2.16-tfkeras"]
    assert m.formats == ["h5", "keras", "savedmodel"]
    assert m.check_timeout == 120.0
    assert m.path == str(project / "matrix.yaml")
    hub = m.fixture("hub_layer")
    assert (hub.atol, hub.rtol) == (1e-4, 1e-3)  # YAML reads 1e-4 as a string; it still counts
    control = m.fixture("control")
    assert control.path == str(project / "fixtures" / "control.py")
    assert (control.atol, control.rtol) == (1e-5, 1e-5)
    assert m.env("tf2.12").python == "3.11"
    assert m.expectations[0]["expires"] == "2027-06-30"
    assert m.exclusion_for("tf2.15", "tf2.12", "control", "keras")["reason"] == "no .keras before 2.13"
    assert m.exclusion_for("tf2.15", "tf2.15", "control", "keras") is None
    assert m.exclusion_for("tf2.12", "tf2.12", "control", "keras") is None  # same-env cells always run
    assert m.expectation_for("tf2.15", "tf2.16-keras3", "hub_layer", "savedmodel")["outcome"] == "load-error"
    with pytest.raises(KeyError):
        m.env("nope")


def test_selectors_take_a_list_of_names(project):
    text = GOOD.replace("    consumer: tf2.16-keras3\n    fixture: \"*\"",
                        "    consumer: [tf2.16-keras3, tf2.16-tfkeras]\n    fixture: [control, hub_layer]")
    m = load_matrix(write(project, text))
    assert m.expectation_for("tf2.15", "tf2.16-tfkeras", "hub_layer", "savedmodel")["outcome"] == "load-error"
    assert m.expectation_for("tf2.15", "tf2.16-keras3", "control", "savedmodel") is not None
    assert m.expectation_for("tf2.15", "tf2.16-keras3", "custom_layer", "savedmodel") is None
    assert m.expectation_for("tf2.15", "tf2.12", "control", "savedmodel") is None
    # A row-wide record (a save-error: no consumer) is covered only by "*".
    assert m.expectation_for("tf2.15", None, "control", "savedmodel") is None


def test_a_resave_fixture_has_one_variant_per_origin_env_in_the_selection(project):
    from harness.runner import select

    m = load_matrix(write(project, GOOD.replace("  - custom_layer\n", "  - {name: custom_layer, resave: true}\n")))
    sel = select(m, ["tf2.15", "tf2.16-keras3"], None, None)
    assert sel.fixtures == ("control", "custom_layer", "hub_layer", "custom_layer~tf2.15",
                            "custom_layer~tf2.16-keras3")
    variant = m.fixture("custom_layer~tf2.15")
    assert (variant.origin, variant.base, variant.module) == ("tf2.15", "custom_layer", "custom_layer")
    assert variant.path == m.fixture("custom_layer").path and variant.resave is False
    assert m.fixture("control").module == "control" and m.fixture("control").origin is None
    # staged (sharded) runs leave them out; a variant of a fixture without resave, or of no env, is unknown
    assert select(m, None, ["custom_layer"], None, variants=False).fixtures == ("custom_layer",)
    for name in ("control~tf2.15", "custom_layer~tf9.9"):
        with pytest.raises(KeyError):
            m.fixture(name)
    # resave: [ids] names the origins
    m = load_matrix(write(project, GOOD.replace("  - custom_layer\n", "  - {name: custom_layer, resave: [tf2.15]}\n")))
    assert select(m, None, ["custom_layer"], None).fixtures == ("custom_layer", "custom_layer~tf2.15")
    assert select(m, ["tf2.12", "tf2.16-keras3"], ["custom_layer"], None).fixtures == ("custom_layer",)  # no origin
    assert select(m, ["tf2.15"], ["custom_layer"], None).fixtures == ("custom_layer",)  # no other env


def test_a_wrong_name_in_a_selector_list_is_named_with_its_index(project):
    text = GOOD.replace("    consumer: tf2.16-keras3\n", "    consumer: [tf2.16-keras3, zzz]\n")
    assert problems(project, text) == [
        "matrix.yaml: expectations[0].consumer[1]: unknown environment 'zzz'; use \"*\", one of: tf2.12, "
        "tf2.15, tf2.16-keras3, tf2.16-tfkeras, or a list of them"]
    empty = GOOD.replace("    consumer: tf2.16-keras3\n", "    consumer: []\n")
    assert len(problems(project, empty)) == 1


def test_defaults_merge_and_env_pins_win(project):
    m = load_matrix(write(project, GOOD))
    assert m.env("tf2.12").pins == {"numpy": "<2", "setuptools": "<81", "tensorflow-hub": "==0.16.1"}  # numpy: a recipe
    # A bare version means ==; null drops a default pin.
    assert m.env("tf2.15").pins == {"numpy": "==1.26.4", "tensorflow-hub": "==0.16.1"}


def test_repo_matrix_is_valid():
    m = load_matrix(os.path.join(REPO, "matrix.yaml"))
    assert [e.id for e in m.environments] == ["tf2.12", "tf2.15", "tf2.16-keras3", "tf2.16-tfkeras", "tf2.21-keras3"]
    assert {e.python for e in m.environments} == {"3.11"}
    assert [f.name for f in m.fixtures] == ["control", "custom_layer", "hub_layer", "custom_optimizer", "hub_object",
                                            "subclassed", "raw_variable", "untracked_variable", "custom_compile",
                                            "no_config_layer"]
    assert len(m.formats) == 10


def test_schema_is_valid_draft_2020_12():
    with open(SCHEMA_PATH) as fh:
        jsonschema.Draft202012Validator.check_schema(json.load(fh))


# ---------------------------------------------------------------- one line per mistake

MISTAKES = [
    # (old text, new text, expected start of the one problem line)
    ('tensorflow: "2.12.1"', 'tensorflow: "2.x"',
     "matrix.yaml: environments[0].tensorflow: '2.x' is not a version; use an exact release such as 2.15.1"),
    ('tensorflow: "2.12.1"', 'tensorflow: 2.12',
     "matrix.yaml: environments[0].tensorflow: 2.12 is a number; expected a string (YAML read it as a number: quote it)"),
    ('tensorflow: "2.12.1"', 'tensorflow: "2.12"',
     "matrix.yaml: environments[0].tensorflow: '2.12' is not a version"),
    ('tensorflow: "2.12.1"', 'tensorflwo: "2.12.1"',
     "matrix.yaml: environments[0].tensorflwo: unknown key (did you mean 'tensorflow'?)"),
    ("check_timeout: 120", "check_timout: 120",
     "matrix.yaml: check_timout: unknown key (did you mean 'check_timeout'?)"),
    ("check_timeout: 120", "check_timeout: 0", "matrix.yaml: check_timeout: 0 must be greater than 0"),
    ("version: 1", "version: 2", "matrix.yaml: version: 2 is not supported; use 1"),
    ("version: 1\n", "", "matrix.yaml: version: missing; this key is required"),
    ("  - custom_layer\n", "  - custom_layr\n", "matrix.yaml: fixtures[1]: unknown fixture 'custom_layr': no fixtures/custom_layr.py"),
    ("  - custom_layer\n", "  - {name: mine, path: elsewhere/mine.py}\n",
     "matrix.yaml: fixtures[1].path: 'elsewhere/mine.py' does not exist"),
    ("  - custom_layer\n", "  - control\n", "matrix.yaml: fixtures[1]: fixture 'control' is listed twice"),
    ("atol: 1e-4", "atol: tiny", "matrix.yaml: fixtures[2].atol: 'tiny' is not a number"),
    ("atol: 1e-4", "resave: yes please, atol: 1e-4",
     "matrix.yaml: fixtures[2].resave: 'yes please' is not true, false or a list of environment ids"),
    ("atol: 1e-4", "resave: [tf2.15, tf9], atol: 1e-4",
     "matrix.yaml: fixtures[2].resave: unknown environment 'tf9'; choose from: tf2.12, tf2.15"),
    ("atol: 1e-4", "atol: -1", "matrix.yaml: fixtures[2].atol: -1 is not allowed"),
    ("formats: [h5, keras, savedmodel]", "formats: [h5, pickle]",
     "matrix.yaml: formats[1]: 'pickle' is not allowed; use one of: h5, keras, savedmodel, export"),
    ("formats: [h5, keras, savedmodel]", "formats: [h5, h5]", "matrix.yaml: formats[1]: 'h5' is listed twice"),
    ("- id: tf2.16-tfkeras", "- id: tf2.12",
     "matrix.yaml: environments[3].id: 'tf2.12' is already used by environments[0]; ids must be unique"),
    ("- id: tf2.16-tfkeras", "- id: tests", "matrix.yaml: environments[3].id: 'tests' is reserved"),
    ("- id: tf2.16-tfkeras", "- id: 'tf 2.16'", "matrix.yaml: environments[3].id: 'tf 2.16' is not allowed"),
    ('    tf_keras: "2.16.0"\n', "",
     "matrix.yaml: environments[3].tf_keras: missing; keras: tf-keras needs an exact tf_keras version"),
    ('tf_keras: "2.16.0"', 'tf_keras: "2.15.1"',
     "matrix.yaml: environments[3].tf_keras: tf-keras 2.15.1 does not match tensorflow 2.16.2"),
    ('tensorflow: "2.16.2"\n    keras: tf-keras', 'tensorflow: "2.15.1"\n    keras: tf-keras',
     "matrix.yaml: environments[3].keras: tf-keras needs tensorflow >= 2.16"),
    ('keras: "3.3.3"', 'keras: "2.15.0"', "matrix.yaml: environments[2].keras: '2.15.0' is not Keras 3"),
    ('keras: "3.3.3"', "keras: newest", "matrix.yaml: environments[2].keras: 'newest' is not allowed; use bundled, tf-keras"),
    ('tensorflow: "2.16.2"\n    keras: "3.3.3"', 'tensorflow: "2.15.1"\n    keras: "3.3.3"',
     "matrix.yaml: environments[2].keras: Keras 3 needs tensorflow >= 2.16"),
    ("    keras: bundled\n  - id: tf2.15", "  - id: tf2.15",
     "matrix.yaml: environments[0].keras: missing; this key is required"),
    ('pins: {numpy: "1.26.4", setuptools: null}', 'pins: {numpy: "~~1"}',
     "matrix.yaml: environments[1].pins.numpy: '~~1' is not a pip version specifier"),
    ('pins: {numpy: "1.26.4", setuptools: null}', 'pins: {tensorflow: "2.15.0"}',
     "matrix.yaml: environments[1].pins.tensorflow: set TensorFlow/Keras with the tensorflow, keras and tf_keras keys"),
    ('set_env: {EXTRA: "yes"}', 'set_env: {"BAD-NAME": "yes"}', "matrix.yaml: environments[3].set_env.BAD-NAME: not allowed as a name"),
    ('  python: "3.11"\n', "", "matrix.yaml: defaults.python: missing, and environments [0], [1], [2], [3] set no python"),
    ('  python: "3.11"\n', "  python: 3.10\n", "matrix.yaml: defaults.python: 3.1 is a number; expected a string"),
    ("consumer: tf2.12, fixture", "consumer: tf2.99, fixture",
     "matrix.yaml: exclusions[0].consumer: unknown environment 'tf2.99'"),
    ('fixture: "*", format: keras', 'fixture: hub, format: keras', "matrix.yaml: exclusions[0].fixture: unknown fixture 'hub'"),
    ('fixture: "*", format: keras', 'fixture: "*", format: kreas',
     "matrix.yaml: exclusions[0].format: unknown format 'kreas' (did you mean 'keras'?)"),
    (', reason: "no .keras before 2.13"}', "}", "matrix.yaml: exclusions[0].reason: missing; this key is required"),
    ("outcome: load-error", "outcome: broken", "matrix.yaml: expectations[0].outcome: 'broken' is not an outcome; use one of: pass,"),
    ("expires: 2027-06-30", "expires: soon", "matrix.yaml: expectations[0].expires: 'soon' is not a date; use YYYY-MM-DD"),
    ("expires: 2027-06-30", "expires: 2027-13-45", "matrix.yaml: expectations[0].expires: '2027-13-45' is not a date"),
    ("    consumer: tf2.16-keras3\n", "    consumer: tf2.16-keras3\n    consumer: tf2.15\n",
     "matrix.yaml: line 32: key 'consumer' appears twice in one mapping"),
    ("environments:\n", "environments:\n  - id: [\n", "matrix.yaml: line "),
]


@pytest.mark.parametrize("old,new,expected", MISTAKES, ids=[m[2].split(": ")[1] + "|" + m[1][:20] for m in MISTAKES])
def test_each_mistake_is_one_line(project, old, new, expected):
    assert old in GOOD
    found = problems(project, GOOD.replace(old, new, 1))
    assert len(found) == 1, found
    assert found[0].startswith(expected), found[0]
    assert "\n" not in found[0]


def test_one_env_without_python_is_named(project):
    text = GOOD.replace('  python: "3.11"\n', "")
    for env_id in ("tf2.15", "tf2.16-keras3", "tf2.16-tfkeras"):
        text = text.replace(f"- id: {env_id}\n", f"- id: {env_id}\n    python: \"3.11\"\n")
    assert problems(project, text) == [
        'matrix.yaml: environments[0].python: missing; set it here or in defaults.python, e.g. "3.11"']


def test_several_mistakes_give_several_lines(project):
    text = (
        GOOD.replace('tensorflow: "2.12.1"', 'tensorflow: "2.x"')
        .replace("  - custom_layer\n", "  - custom_layr\n")
        .replace("check_timeout: 120", "check_timout: 120")
        .replace("outcome: load-error", "outcome: broken")
    )
    found = problems(project, text)
    assert len(found) == 4, found
    keys = sorted(line.split(": ")[1] for line in found)
    assert keys == ["check_timout", "environments[0].tensorflow", "expectations[0].outcome", "fixtures[1]"]


def test_missing_file_and_non_mapping(project):
    with pytest.raises(ConfigError) as info:
        load_matrix(str(project / "absent.yaml"))
    assert info.value.problems[0].startswith("absent.yaml: cannot read")
    assert problems(project, "- just\n- a list\n") == [
        "matrix.yaml: (top level): the document is a list; the file must be a mapping with version, environments, "
        "fixtures and formats"]


@pytest.mark.parametrize("text,what", [
    ("", "no YAML document (the file is empty or only comments)"),
    ("# a matrix, one day\n\n# more\n", "no YAML document (the file is empty or only comments)"),
    ("~\n", "the document is null (~, null or nothing after ---)"),
    ("null  # off\n", "the document is null (~, null or nothing after ---)"),
    ("--- \n...\n", "the document is null (~, null or nothing after ---)"),
    ("'text'\n", "the document is a string"),
    ("3\n", "the document is a number"),
])
def test_a_document_that_is_not_a_mapping_is_one_line(project, text, what):
    assert problems(project, text) == [
        f"matrix.yaml: (top level): {what}; the file must be a mapping with version, environments, fixtures and formats"]


def test_config_error_exit_code_is_2(project):
    with pytest.raises(ConfigError) as info:
        load_matrix(write(project, GOOD.replace("version: 1", "version: 2")))
    assert info.value.exit_code == 2
    assert str(info.value) == "\n".join(info.value.problems)


def test_fixture_file_check_can_be_skipped(project):
    text = GOOD.replace("  - custom_layer\n", "  - not_written_yet\n")
    m = load_matrix(write(project, text), check_fixture_files=False)
    assert m.fixture("not_written_yet").path == str(project / "fixtures" / "not_written_yet.py")


# ---------------------------------------------------------------- EnvSpec


def test_requirements_per_keras_flavour(project):
    m = load_matrix(write(project, GOOD))
    assert m.env("tf2.12").requirements() == ["tensorflow==2.12.1", "numpy<2", "setuptools<81", "tensorflow-hub==0.16.1"]
    assert m.env("tf2.15").requirements() == ["tensorflow==2.15.1", "numpy==1.26.4", "tensorflow-hub==0.16.1"]
    assert m.env("tf2.16-keras3").requirements()[:2] == ["tensorflow==2.16.2", "keras==3.3.3"]
    assert m.env("tf2.16-tfkeras").requirements()[:2] == ["tensorflow==2.16.2", "tf-keras==2.16.0"]


def test_env_vars(project):
    m = load_matrix(write(project, GOOD))
    assert m.env("tf2.15").env_vars() == {"TF_CPP_MIN_LOG_LEVEL": "2"}
    assert m.env("tf2.16-keras3").env_vars() == {"TF_CPP_MIN_LOG_LEVEL": "2"}
    assert m.env("tf2.16-tfkeras").env_vars() == {
        "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1", "EXTRA": "yes"}
    loud = EnvSpec(id="x", python="3.11", tensorflow="2.15.1", keras="bundled", set_env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert loud.env_vars()["TF_CPP_MIN_LOG_LEVEL"] == "0"  # set_env wins


def test_spec_hash_tracks_what_changes_the_env():
    base = EnvSpec(id="a", python="3.11", tensorflow="2.15.1", keras="bundled", pins={"numpy": "<2"})
    h = base.spec_hash("/py/3.11")
    assert h == EnvSpec(id="a", python="3.11", tensorflow="2.15.1", keras="bundled", pins={"numpy": "<2"}).spec_hash("/py/3.11")
    assert h == EnvSpec(id="renamed", python="3.11", tensorflow="2.15.1", keras="bundled", pins={"numpy": "<2"}).spec_hash("/py/3.11")
    changed = [
        EnvSpec(id="a", python="3.11", tensorflow="2.15.0", keras="bundled", pins={"numpy": "<2"}),
        EnvSpec(id="a", python="3.11", tensorflow="2.15.1", keras="bundled", pins={"numpy": "<1.27"}),
        EnvSpec(id="a", python="3.11", tensorflow="2.15.1", keras="bundled", pins={}),
        EnvSpec(id="a", python="3.12", tensorflow="2.15.1", keras="bundled", pins={"numpy": "<2"}),
        EnvSpec(id="a", python="3.11", tensorflow="2.15.1", keras="bundled", pins={"numpy": "<2"}, set_env={"A": "1"}),
    ]
    # The backend's part is the identity it passes (python path, or base image id for Docker).
    assert h == EnvSpec(id="a", python="3.11", tensorflow="2.15.1", keras="bundled", pins={"numpy": "<2"},
                        backend={"name": "docker"}).spec_hash("/py/3.11")
    hashes = {spec.spec_hash("/py/3.11") for spec in changed} | {base.spec_hash("/other/python3.11")}
    assert h not in hashes and len(hashes) == len(changed) + 1


def test_spec_hash_defaults_to_the_found_interpreter():
    spec = EnvSpec(id="a", python="3.11", tensorflow="2.15.1", keras="bundled")
    assert spec.spec_hash() == spec.spec_hash(find_python("3.11"))


# ---------------------------------------------------------------- interpreters


def test_find_python_311():
    path = find_python("3.11")
    assert os.path.isabs(path) and os.access(path, os.X_OK)
    assert find_python("3.11") is path  # cached


def test_find_python_missing_is_one_clear_line():
    with pytest.raises(InterpreterNotFound) as info:
        find_python("2.99")
    message = str(info.value)
    assert "\n" not in message
    assert "no Python 2.99 interpreter found" in message and "pyenv install 2.99" in message
    assert info.value.exit_code == 1


def test_find_python_rejects_a_non_version():
    with pytest.raises(InterpreterNotFound, match="not a major.minor version"):
        find_python("latest")
