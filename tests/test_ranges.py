"""Version ranges in matrix.yaml, resolved against a package index (a PEP 503 index on loopback)."""

import pytest
from synth import STUB_FIXTURE

from harness import index
from harness.errors import ConfigError
from harness.matrix import load_matrix


def write(tmp_path, envs):
    (tmp_path / "fixtures").mkdir(exist_ok=True)
    (tmp_path / "fixtures" / "control.py").write_text(STUB_FIXTURE)
    path = tmp_path / "matrix.yaml"
    path.write_text("version: 1\nenvironments:\n%s\nfixtures: [control]\nformats: [h5]\n" % envs)
    return str(path)


def test_tensorflow_range_is_latest_patch_per_minor_with_auto_python(fake_index, tmp_path):
    m = load_matrix(write(tmp_path, '  - {id: "tf{tensorflow}", python: auto, tensorflow: ">=2.11", keras: bundled}'))
    got = [(e.id, e.tensorflow, e.python) for e in m.environments]
    # pre-releases are skipped; 2.11 -> Python 3.10, 2.12+ -> 3.11 (harness/recipes.yaml pythons)
    assert got[:3] == [("tf2.11", "2.11.1", "3.10"), ("tf2.12", "2.12.1", "3.11"), ("tf2.13", "2.13.1", "3.11")]
    assert got[-1] == ("tf2.21", "2.21.0", "3.12")


def test_tf_before_2_4_gets_python_3_7(fake_index, tmp_path):
    m = load_matrix(write(tmp_path, '  - {id: "tf{tensorflow}", python: auto, tensorflow: ">=2.0,<2.5", keras: bundled}'))
    assert [(e.id, e.tensorflow, e.python) for e in m.environments] == [
        ("tf2.0", "2.0.4", "3.7"), ("tf2.1", "2.1.4", "3.7"), ("tf2.2", "2.2.3", "3.7"), ("tf2.3", "2.3.4", "3.7"),
        ("tf2.4", "2.4.4", "3.8")]


def test_keras_range(fake_index, tmp_path):
    m = load_matrix(write(tmp_path, '  - {id: "k{keras}", python: "3.11", tensorflow: "2.16.2", keras: ">=3.0,<3.4"}'))
    assert [(e.id, e.keras) for e in m.environments] == [("k3.0", "3.0.5"), ("k3.1", "3.1.1"), ("k3.3", "3.3.3")]


def test_range_needs_a_placeholder_in_the_id(fake_index, tmp_path):
    with pytest.raises(ConfigError, match=r"environments\[0\]\.id: a tensorflow range needs \{tensorflow\}"):
        load_matrix(write(tmp_path, '  - {id: tfx, python: "3.11", tensorflow: ">=2.11", keras: bundled}'))


@pytest.fixture
def no_index(monkeypatch, tmp_path):
    """An index URL nothing answers on (loopback port 9), and no cached answer."""
    monkeypatch.setenv("TFCOMPAT_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    index.forget()
    yield
    index.forget()


def test_unreachable_index_is_one_clear_line(no_index, tmp_path):
    with pytest.raises(ConfigError, match="cannot list releases of tensorflow"):
        load_matrix(write(tmp_path, '  - {id: "tf{tensorflow}", python: "3.11", tensorflow: ">=2.11", keras: bundled}'))


def test_latest_is_the_newest_release_and_tf_keras_match_follows_it(fake_index, tmp_path):
    m = load_matrix(write(tmp_path, "\n".join([
        '  - {id: newest-keras3, python: "3.12", tensorflow: latest, keras: latest}',
        '  - {id: newest-tfkeras, python: "3.12", tensorflow: latest, keras: tf-keras, tf_keras: match}',
        '  - {id: "tf{tensorflow}-keras3", python: "3.11", tensorflow: ">=2.20", keras: latest}'])))
    got = [(e.id, e.tensorflow, e.keras, e.tf_keras) for e in m.environments]
    assert got == [("newest-keras3", "2.21.0", "3.15.1", None), ("newest-tfkeras", "2.21.0", "tf-keras", "2.21.0"),
                   ("tf2.20-keras3", "2.20.0", "3.15.1", None), ("tf2.21-keras3", "2.21.0", "3.15.1", None)]


def test_latest_keras_is_still_checked_against_tensorflow(fake_index, tmp_path):
    with pytest.raises(ConfigError, match=r"environments\[0\]\.keras: Keras 3 needs tensorflow >= 2.16"):
        load_matrix(write(tmp_path, '  - {id: old, python: "3.10", tensorflow: "2.11.1", keras: latest}'))


def test_an_exact_version_the_index_lacks_is_refused_with_the_nearest(fake_index, tmp_path):
    with pytest.raises(ConfigError, match=r"environments\[0\]\.tensorflow: 2\.99\.0 is not a tensorflow release on "
                                          r"the package index; the nearest: 2\.19\.1, 2\.20\.0, 2\.21\.0"):
        load_matrix(write(tmp_path, '  - {id: x, python: "3.11", tensorflow: "2.99.0", keras: bundled}'))
    with pytest.raises(ConfigError, match=r"environments\[0\]\.keras: 3\.2\.0 is not a keras release"):
        load_matrix(write(tmp_path, '  - {id: x, python: "3.11", tensorflow: "2.16.2", keras: "3.2.0"}'))


def test_an_unreachable_index_leaves_exact_versions_unverified(no_index, tmp_path):
    m = load_matrix(write(tmp_path, '  - {id: x, python: "3.11", tensorflow: "2.15.1", keras: bundled}'))
    assert m.env("x").tensorflow == "2.15.1" and m.unverified == ("tensorflow",)


def test_a_release_without_a_wheel_for_the_python_is_refused(fake_index, tmp_path):
    with pytest.raises(ConfigError, match=r"environments\[0\]\.tensorflow: tensorflow 2\.4\.4 has no wheel for "
                                          r"Python 3\.11 \(it has: 3\.6, 3\.7, 3\.8\)"):
        load_matrix(write(tmp_path, '  - {id: old, python: "3.11", tensorflow: "2.4.4", keras: bundled}'))
    assert load_matrix(write(tmp_path, '  - {id: old, python: "3.8", tensorflow: "2.4.4", keras: bundled}'))
