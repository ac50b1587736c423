"""The remedy ladder per format and Keras version (pure logic: a stand-in ctx, no TensorFlow)."""

from harness.verdict import REMEDY_HINTS, REMEDY_ORDER
from harness.worker import formats


class Ctx:
    def __init__(self, version: str, keras3: bool = False) -> None:
        self.keras3 = keras3
        self.keras_version = version

    def keras_at_least(self, major: int, minor: int) -> bool:
        return tuple(int(p) for p in self.keras_version.split(".")[:2]) >= (major, minor)


def remedies(fmt: str, ctx: Ctx) -> list:
    return [name for name, _ in formats.ladder(fmt, ctx, "remedies")]


def test_safe_mode_steps_where_load_model_takes_safe_mode():
    # Keras 2.12 has safe_mode (its .keras loader says so); without the step its Lambda .keras
    # files were a same-version load-error.
    assert "safe_mode_false" in remedies("keras", Ctx("2.12.0"))
    assert remedies("h5", Ctx("2.15.0")) == ["custom_objects", "compile_false"]
    # Keras 3 .h5 with a Lambda and a compile config Keras 3 cannot rebuild needs both switches.
    assert remedies("h5", Ctx("3.15.1", keras3=True)) == [
        "custom_objects", "compile_false", "safe_mode_false", "safe_mode_false_compile_false", "legacy_keras"]


def test_savedmodel_ladders():
    assert remedies("savedmodel", Ctx("2.15.0")) == [
        "custom_objects", "reload_weights", "compile_false", "tf_saved_model_load"]
    assert remedies("savedmodel", Ctx("3.3.3", keras3=True))[-2:] == ["legacy_keras", "tfsm_layer"]
    assert formats.ladder("savedmodel", Ctx("2.15.0"), "plain") == [(None, "model")]
    assert formats.ladder("weights", Ctx("2.15.0"), "plain") == []  # code-rebuild formats need the fixture


def test_every_remedy_is_ranked_and_explained():
    seen = set()
    for fmt in formats.FORMATS:
        for ctx in (Ctx("2.12.0"), Ctx("2.15.0"), Ctx("3.15.1", keras3=True)):
            seen.update(name for name, _ in formats.ladder(fmt, ctx, "remedies") if name)
    assert seen <= set(REMEDY_ORDER) and seen <= set(REMEDY_HINTS)
