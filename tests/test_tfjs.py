"""TF.js in the matrix, the pure parts: the matrix keys, which files the converter makes from what,
which envs read which, and the cells that says (no TensorFlow, no Node)."""

from __future__ import annotations

import os

import pytest
from synth import STUB_FIXTURE

from harness import records, results, runner
from harness.errors import ConfigError
from harness.matrix import load_matrix
from harness.store import RunStore, Selection, convert_key, save_key
from harness.tfjs import converted, not_read, sources

MATRIX = """\
version: 1
defaults: {python: "3.11"}
environments:
  - {id: tf2.15, tensorflow: "2.15.1", keras: bundled}
  - {id: tf2.16-keras3, tensorflow: "2.16.2", keras: "3.3.3"}
  - {id: tfjs4.22, kind: tfjs, tfjs: "4.22.0"}
converter: {id: tfjs-converter, tensorflow: "2.15.1", tensorflowjs: "4.22.0"}
fixtures: [control]
formats: [h5, keras, tfjs_layers, tfjs_graph]
"""


@pytest.fixture
def project(tmp_path, monkeypatch, fake_index):
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "control.py").write_text(STUB_FIXTURE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(project, text):
    path = project / "matrix.yaml"
    path.write_text(text)
    return load_matrix(str(path))


def problems(project, text):
    with pytest.raises(ConfigError) as info:
        load(project, text)
    return info.value.problems


def test_a_tfjs_env_and_the_converter_load(project):
    m = load(project, MATRIX)
    js = m.env("tfjs4.22")
    assert (js.kind, js.tfjs, js.backend_name("docker")) == ("tfjs", "4.22.0", "node")
    assert js.requirements() == ["@tensorflow/tfjs@4.22.0"]
    assert m.converter is not None and m.converter.kind == "converter"
    assert "tensorflowjs==4.22.0" in m.converter.requirements()
    assert m.converter.requirements()[0] == "tensorflow==2.15.1"  # the converter's own TF, never a producer's
    assert [e.id for e in m.environments] == ["tf2.15", "tf2.16-keras3", "tfjs4.22"]  # not a producer/consumer
    assert m.env("tfjs-converter") is m.converter


def test_spec_hash_of_an_env_without_tfjs_keys_is_unchanged(project):
    # An env built before TF.js existed keeps its hash: no rebuild of every tox env.
    m = load(project, MATRIX)
    spec = m.env("tf2.15")
    import dataclasses
    import hashlib
    import json

    data = dataclasses.asdict(spec)
    for key in ("id", "recipes", "backend", "kind", "tfjs", "tensorflowjs"):
        del data[key]
    data["requirements"] = spec.requirements()
    data["env_vars"] = spec.env_vars()
    data["python_path"] = "/py"
    old = hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert spec.spec_hash("/py") == old
    assert m.env("tfjs4.22").spec_hash("/node v20") != m.env("tfjs4.22").spec_hash("/node v22")


@pytest.mark.parametrize("edit,expected", [
    ('{id: tfjs4.22, kind: tfjs, tfjs: "4.22.0"}', None),
    ('{id: tfjs4.22, kind: tfjs, tfjs: "4.22"}',
     "matrix.yaml: environments[2].tfjs: '4.22' is not allowed; use an exact @tensorflow/tfjs release"),
    ('{id: tfjs4.22, kind: tfjs}', "matrix.yaml: environments[2].tfjs: missing; this key is required"),
    ('{id: tfjs4.22, kind: tfjs, tfjs: "4.22.0", tensorflow: "2.15.1"}',
     "matrix.yaml: environments[2].tensorflow: not used by a kind: tfjs env"),
    ('{id: tfjs4.22, kind: js, tfjs: "4.22.0"}', "matrix.yaml: environments[2].kind: 'js' is not allowed; use one "
                                                 "of: python, tfjs"),
])
def test_tfjs_env_mistakes_are_one_line_each(project, edit, expected):
    text = MATRIX.replace('{id: tfjs4.22, kind: tfjs, tfjs: "4.22.0"}', edit)
    if expected is None:
        load(project, text)
        return
    found = problems(project, text)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_tfjs_formats_need_a_converter(project):
    found = problems(project, MATRIX.replace('converter: {id: tfjs-converter, tensorflow: "2.15.1", '
                                             'tensorflowjs: "4.22.0"}\n', ""))
    assert found == ["matrix.yaml: formats: tfjs_layers is made by the tensorflowjs converter: declare a converter "
                     "env (converter: {id: tfjs-converter, tensorflow: ..., tensorflowjs: ...})"]
    # a TF.js env's own Keras files are the converter's too, whatever the formats
    found = problems(project, MATRIX.replace('converter: {id: tfjs-converter, tensorflow: "2.15.1", '
                                             'tensorflowjs: "4.22.0"}\n', "").replace(
        "formats: [h5, keras, tfjs_layers, tfjs_graph]", "formats: [h5]"))
    assert found == ["matrix.yaml: environments: tfjs4.22's Keras files are made by the tensorflowjs converter: "
                     "declare a converter env (converter: {id: tfjs-converter, tensorflow: ..., tensorflowjs: ...})"]
    found = problems(project, MATRIX.replace("id: tfjs-converter", "id: tf2.15"))
    assert found == ["matrix.yaml: converter.id: 'tf2.15' is already an environment's id; give the converter its "
                     "own id"]
    found = problems(project, MATRIX.replace('tensorflowjs: "4.22.0"', 'tensorflowjs: "4.22"'))
    assert len(found) == 1 and found[0].startswith("matrix.yaml: converter.tensorflowjs: '4.22' is not a version")


def test_what_the_converter_makes_and_from_what(project):
    m = load(project, MATRIX)
    k2, k3, js = m.env("tf2.15"), m.env("tf2.16-keras3"), m.env("tfjs4.22")
    assert sources(k2, "tfjs_layers") == ("h5",) and sources(k3, "tfjs_layers") == ("keras",)
    assert sources(k3, "tfjs_graph")[0] == "export" and sources(k2, "tfjs_graph")[0] == "tf_savedmodel"
    assert sources(js, "h5") == ("tfjs_layers",) and sources(js, "keras") == ("tfjs_layers",)
    assert not converted(js, "tfjs_layers") and converted(js, "h5") and converted(k2, "tfjs_graph")
    assert not converted(k2, "h5")
    assert not_read(js, "h5") and not_read(k2, "tfjs_layers") and not not_read(js, "tfjs_graph")
    assert not_read(k3, "keras") is None


def test_each_env_saves_its_own_formats_and_what_the_converter_starts_from(project, tmp_path):
    m = load(project, MATRIX.replace("formats: [h5, keras, tfjs_layers, tfjs_graph]", "formats: [h5, tfjs_graph]"))
    sel = runner.select(m, None, None, None)
    run = runner.Runner(m, sel, str(tmp_path / "state" / "runs" / "r"), log=lambda line: None)
    assert run.own_formats("tf2.15") == ["h5", "tf_savedmodel"]  # the graph model's source, though not selected
    assert run.own_formats("tf2.16-keras3") == ["h5", "export"]
    # its h5 is the converter's, made from its tfjs_layers; it answers n/a for tfjs_graph
    assert run.own_formats("tfjs4.22") == ["tfjs_graph", "tfjs_layers"]
    assert run.converter is m.converter and "tfjs-converter" in run.backends
    staged = runner.select(m, None, None, None, variants=False)
    assert "tfjs4.22" not in staged.envs and staged.formats == ("h5",)  # staged runs leave TF.js out


def test_cells_across_the_python_and_tfjs_line_are_not_applicable(project, tmp_path):
    m = load(project, MATRIX)
    store = RunStore(str(tmp_path / "run"))
    sel = Selection(("tf2.15", "tfjs4.22"), ("control",), ("h5", "tfjs_layers"))
    meta = {"status": "saved", "fixture": "control", "promises": [], "warnings": []}
    results.append(store.journal("tf2.15", "save"), [
        {"event": "done", "key": save_key("control", "h5"), "result": dict(meta, format="h5")}])
    results.append(store.journal("tfjs4.22", "save"), [
        {"event": "done", "key": save_key("control", "tfjs_layers"), "result": dict(meta, format="tfjs_layers")}])
    # the converter's journal: tf2.15's TF.js file made, the TF.js env's Keras file failed
    results.append(store.journal("tfjs-converter", "convert"), [
        {"event": "done", "key": convert_key("tf2.15", "control", "tfjs_layers"),
         "result": dict(meta, format="tfjs_layers")},
        {"event": "failed", "key": convert_key("tfjs4.22", "control", "h5"), "outcome": "env-error",
         "error_type": "EnvError", "message": "the converter env tfjs-converter could not be built: boom"}])
    out = {(r["producer"], r["consumer"], r["format"]): r for r in records.assemble(store, m, sel)}
    assert out[("tf2.15", "tfjs4.22", "h5")]["outcome"] == "not-applicable"
    assert "TF.js loads only" in out[("tf2.15", "tfjs4.22", "h5")]["reason"]
    assert out[("tf2.15", "tf2.15", "tfjs_layers")]["outcome"] == "not-applicable"
    assert out[("tfjs4.22", "tf2.15", "tfjs_layers")]["outcome"] == "not-applicable"
    # the cells TF.js does read were checked by nobody here: no attempt is a harness defect, never a pass
    assert out[("tf2.15", "tfjs4.22", "tfjs_layers")]["outcome"] == "harness-error"
    failed = out[("tfjs4.22", None, "h5")]
    assert failed["outcome"] == "save-error" and failed["save_error_kind"] == "env-error"
    assert failed["message"].startswith("the converter env tfjs-converter could not be built")


# -- the node backend, with a stand-in npm (the real one is in test_js_worker.py and test_tfjs_e2e.py) --

FAKE_NPM = """#!/bin/sh
# npm install --prefix DIR ... @tensorflow/tfjs@VERSION: what npm leaves, and a call log
echo "$@" >> "$NPM_LOG"
[ -n "$NPM_FAIL" ] && { echo "npm ERR! 404 Not Found - @tensorflow/tfjs@9.9.9" >&2; exit 1; }
prefix="$3"; version="${@: -1}"; version="${version##*@}"
mkdir -p "$prefix/node_modules/@tensorflow/tfjs"
echo "{\\"version\\": \\"$version\\"}" > "$prefix/node_modules/@tensorflow/tfjs/package.json"
"""


@pytest.fixture
def node(tmp_path, monkeypatch):
    from harness.backends.base import Where
    from harness.backends.node import NodeBackend
    from harness.matrix import EnvSpec

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(FAKE_NPM.replace("#!/bin/sh", "#!/bin/bash"))
    (bin_dir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    monkeypatch.setenv("NPM_LOG", str(tmp_path / "npm.log"))
    monkeypatch.setenv("TFCOMPAT_NODE_WORKDIR", str(tmp_path / "tfjs"))

    def make(version="4.22.0", state="state"):
        spec = EnvSpec(id="js", python="", tensorflow="", keras="tfjs", kind="tfjs", tfjs=version,
                       backend={"name": "node"})
        return NodeBackend(spec, Where(str(tmp_path), str(tmp_path / state), str(tmp_path / "logs"),
                                       str(tmp_path / "matrix.yaml")))

    def calls():
        log = tmp_path / "npm.log"
        return log.read_text().splitlines() if log.exists() else []

    return make, calls


def test_a_tfjs_env_is_installed_once_and_made_again_when_its_version_changes(node, tmp_path):
    make, calls = node
    assert make().create() is True and len(calls()) == 1
    assert calls()[0].startswith("install --prefix %s" % (tmp_path / "tfjs" / "js"))
    assert calls()[0].endswith("@tensorflow/tfjs@4.22.0")
    assert make().create() is False and len(calls()) == 1  # current: reused
    assert make().current_state()["installed"]["packages"]["@tensorflow/tfjs"] == "4.22.0"
    assert make(state="other").create() is False and len(calls()) == 1  # a new state dir reuses the folder
    assert make("3.21.0").create() is True and calls()[-1].endswith("@tensorflow/tfjs@3.21.0")
    (tmp_path / "tfjs" / ".js.creating").write_text("killed")  # a creation cut short: made again
    assert make("3.21.0").create() is True and len(calls()) == 3


def test_an_npm_failure_is_one_line_naming_the_env(node, monkeypatch):
    from harness.errors import EnvError

    make, _ = node
    monkeypatch.setenv("NPM_FAIL", "1")
    with pytest.raises(EnvError) as info:
        make("9.9.9").create()
    assert str(info.value).startswith("js: npm could not install @tensorflow/tfjs@9.9.9 (exit 1): npm ERR! 404")
    assert "\n" not in str(info.value)


def test_the_js_worker_changes_the_envs_fingerprint(node, monkeypatch):
    from harness.backends import node as node_module

    make, _ = node
    make().create()
    before = make().current_state()["installed"]
    monkeypatch.setattr(node_module, "_worker_digest", lambda: "another")
    assert make().current_state()["installed"] != before  # cached TF.js cells are not reused


def test_a_tfjs_env_whose_folder_is_gone_or_invalidated_is_installed_again(node, tmp_path):
    import shutil

    make, calls = node
    make().create()
    assert make().current_state() is not None
    shutil.rmtree(tmp_path / "tfjs" / "js")
    assert make().current_state() is None  # the record alone is not the env
    assert make().create() is True and len(calls()) == 2
    make().invalidate("@tensorflow/tfjs-core 4.22.0 -> 4.22.1")
    assert make().current_state() is None and make().stale_reason() == "@tensorflow/tfjs-core 4.22.0 -> 4.22.1"
    assert make().create() is True and len(calls()) == 3  # installed again although the folder is complete
    log = (tmp_path / "logs" / "create-js.log").read_text().splitlines()
    assert log[0] == "tfcompat: reinstalling js, stale: @tensorflow/tfjs-core 4.22.0 -> 4.22.1"
    assert make().current_state() is not None and make().create() is False and len(calls()) == 3
