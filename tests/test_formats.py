"""The remedy ladder per format and Keras version (pure logic: a stand-in ctx, no TensorFlow)."""

import pytest

from harness.tfjs import JS_LADDER
from harness.verdict import remedy_cost, remedy_hint
from harness.worker import formats, remedies


class Ctx:
    def __init__(self, version: str, keras3: bool = False) -> None:
        self.keras3 = keras3
        self.keras_version = version

    def keras_at_least(self, major: int, minor: int) -> bool:
        return tuple(int(p) for p in self.keras_version.split(".")[:2]) >= (major, minor)


def ladder(fmt: str, ctx: Ctx, custom: bool = True) -> list:
    return [name for name, _ in formats.ladder(fmt, ctx, "remedies", custom)]


def test_safe_mode_steps_where_load_model_takes_safe_mode():
    # Keras 2.12 has safe_mode (its .keras loader says so); without the step its Lambda .keras
    # files were a same-version load-error.
    assert "custom_objects+safe_mode_false" in ladder("keras", Ctx("2.12.0"))
    assert ladder("h5", Ctx("2.15.0")) == ["custom_objects", "custom_objects+compile_false"]
    # Keras 3 .h5 with a Lambda and a compile config Keras 3 cannot rebuild needs both switches.
    assert ladder("h5", Ctx("3.15.1", keras3=True)) == [
        "custom_objects", "custom_objects+compile_false", "custom_objects+safe_mode_false",
        "custom_objects+compile_false+safe_mode_false", "custom_objects+legacy_keras"]


def test_a_rung_has_custom_objects_only_where_the_artifact_names_custom_classes():
    # Without custom classes there is no custom_objects rung, and no rung carries it.
    assert ladder("h5", Ctx("3.15.1", keras3=True), custom=False) == [
        "compile_false", "safe_mode_false", "compile_false+safe_mode_false", "legacy_keras"]
    for fmt in formats.FORMATS:
        for name in ladder(fmt, Ctx("2.15.0"), custom=False):
            assert "custom_objects" not in remedies.parts(name)


def test_savedmodel_ladders():
    assert ladder("savedmodel", Ctx("2.15.0")) == [
        "custom_objects", "custom_objects+reload_weights", "custom_objects+compile_false", "tf_saved_model_load"]
    assert ladder("savedmodel", Ctx("3.3.3", keras3=True))[-2:] == ["custom_objects+legacy_keras", "tfsm_layer"]
    assert formats.ladder("savedmodel", Ctx("2.15.0"), "plain") == [(None, "model")]
    assert formats.ladder("weights", Ctx("2.15.0"), "plain") == []  # code-rebuild formats need the fixture


def test_every_rung_is_made_of_declared_remedies_with_hint_and_cost():
    seen = set()
    for fmt in formats.FORMATS:
        for ctx in (Ctx("2.12.0"), Ctx("2.15.0"), Ctx("3.15.1", keras3=True)):
            for custom in (True, False):
                seen.update(name for name in ladder(fmt, ctx, custom) if name)
    seen.update(name for rungs in JS_LADDER.values() for name in rungs)  # the TF.js worker's
    for name in seen:
        assert remedies.rung(*remedies.parts(name)) == name  # canonical: table order
        assert remedy_hint(name) and remedy_cost(name)
    assert {p for name in seen for p in remedies.parts(name)} == set(remedies.ORDER)


def test_ladder_order_is_least_invasive_first():
    # Within a ladder, the rungs follow the table's order of their most invasive remedy.
    for fmt in ("h5", "keras", "savedmodel"):
        names = ladder(fmt, Ctx("3.15.1", keras3=True))
        most = [max(remedies.ORDER.index(p) for p in remedies.parts(n)) for n in names]
        assert most == sorted(most), names


def test_unknown_remedy_is_refused():
    with pytest.raises(ValueError):
        remedies.rung("custom_objects", "pray")


def test_json_and_tf_weights_ladders():
    # json: model_from_json needs no fixture code, so it has a no-remedy attempt; Keras 3 adds tf_keras.
    assert formats.ladder("json", Ctx("2.15.0"), "plain") == [(None, "json")]
    assert ladder("json", Ctx("2.15.0")) == ["custom_objects"]
    assert ladder("json", Ctx("2.15.0"), custom=False) == []
    assert ladder("json", Ctx("3.3.3", keras3=True)) == ["custom_objects", "custom_objects+legacy_keras"]
    # tf_weights: a rebuild from code; Keras 3 cannot read the TF checkpoint format, tf_keras can.
    assert formats.ladder("tf_weights", Ctx("2.15.0"), "plain") == []
    assert ladder("tf_weights", Ctx("2.15.0")) == [None]
    assert ladder("tf_weights", Ctx("3.3.3", keras3=True)) == [None, "legacy_keras"]


def test_tf_weights_and_json_are_declared_where_keras_3_cannot_write_them():
    k3, k2 = Ctx("3.3.3", keras3=True), Ctx("2.15.0")
    assert formats.not_applicable("tf_weights", "save", k3)["source"].startswith("https://keras.io")
    assert formats.not_applicable("tf_weights", "save", k2) is None
    assert formats.not_applicable("json", "save", k3) is None
    assert formats.json_weights(k3) == "model.weights.h5" and formats.json_weights(k2) == "weights.h5"
    assert set(formats.USER_CALL) == set(formats.FORMATS)
