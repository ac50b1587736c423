"""The worker's judging (harness/worker/check.py) with fake models: numpy only, no TensorFlow.

Each test is a rule of the check; each would have failed on the engine before it (noted)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.worker import check
from harness.worker.save import weights_digest

TOLS = {"predictions": {"atol": 1e-5, "rtol": 1e-5}, "resume": {"atol": 1e-4, "rtol": 1e-4},
        "slots": {"atol": 1e-3, "rtol": 1e-3}}
X = np.arange(12, dtype="float32").reshape(3, 4) / 10


class Var:
    def __init__(self, name, value):
        self.name = name
        self.value = np.asarray(value, dtype="float32")

    def numpy(self):
        return self.value


class Opt:
    def __init__(self, iterations=0, slots=(), config=None):
        self.iterations = np.int64(iterations)
        self.variables = [Var("it", 0.0)] + [Var("m%d" % i, s) for i, s in enumerate(slots)]
        self._config = config or {"learning_rate": 0.01}
        self.built_with = None

    def get_config(self):
        return dict(self._config)

    def build(self, var_list):
        self.built_with = var_list


class Model:
    """y = x @ W + b; `restore` decides what load_weights does: all, nothing, or the first variable."""

    def __init__(self, seed, restore="all", producer=None, optimizer=None):
        rng = np.random.RandomState(seed)
        self.weights = [Var("dense/kernel", rng.normal(size=(4, 2))), Var("dense/bias", rng.normal(size=(2,)))]
        self.restore, self.producer, self.optimizer = restore, producer, optimizer
        self.layers = []

    @property
    def trainable_variables(self):
        return self.weights

    def predict(self, x, verbose=0):
        return np.asarray(x) @ self.weights[0].value + self.weights[1].value

    def load_weights(self, path):
        n = {"all": 2, "nothing": 0, "first": 1}[self.restore]
        for mine, theirs in list(zip(self.weights, self.producer.weights))[:n]:
            mine.value = theirs.value.copy()

    def train_on_batch(self, x, y):
        self.optimizer.iterations += 1


class Ctx:
    np = np
    keras = tf = None
    keras3 = False
    module_dir = None
    arrays = None

    def set_seed(self, seed):
        self.seed = seed

    def clear(self):
        pass


class Fixture:
    """Builds with the seed the harness set, unless `ignores_seed` (a fixture bug)."""

    def __init__(self, producer, restore="all", ignores_seed=False):
        self.producer, self.restore, self.ignores_seed = producer, restore, ignores_seed

    def build(self, ctx):
        seed = 1 if self.ignores_seed else ctx.seed
        return Model(seed, self.restore, self.producer, Opt())

    def custom_objects(self, ctx):
        return {}


def artifact(tmp_path, producer, fmt="weights", **meta):
    outputs = producer.predict(X)
    for name, arr in (("x_train", X), ("y_train", outputs), ("x_eval", X), ("outputs", outputs),
                      ("resumed", outputs)):
        np.save(tmp_path / (name + ".npy"), arr)
    m = {"status": "saved", "format": fmt, "artifact": "w.h5", "promises": ["weights"], "classes": {},
         "weights_digest": weights_digest(Ctx(), producer)}
    m.update(meta)
    (tmp_path / "meta.json").write_text(json.dumps(m))
    return {"key": "k", "artifact_dir": str(tmp_path), "format": fmt, "fixture": "f", "fixture_path": "-",
            "tolerances": TOLS}


def attempt(tmp_path, fixture, item):
    meta = json.loads((tmp_path / "meta.json").read_text())
    arrays = {n: np.load(tmp_path / (n + ".npy")) for n in ("x_train", "y_train", "x_eval", "outputs", "resumed")}
    return check._attempt(Ctx(), item, meta, arrays, fixture, None, "code")


def test_a_restore_that_does_nothing_is_wrong_output_not_load_error(tmp_path):
    # Failed on main: RuntimeError("restore left the rebuilt model's weights unchanged") -> load-error.
    producer = Model(1234)
    item = artifact(tmp_path, producer)
    a = attempt(tmp_path, Fixture(producer, restore="nothing"), item)
    assert a["outcome"] == "wrong-output"
    assert "restore did nothing" in a["message"]
    assert a["restore"]["changed"] == 0 and a["checks"]["weights"] is False


def test_a_partial_restore_names_the_variables_left_out(tmp_path):
    producer = Model(1234)
    a = attempt(tmp_path, Fixture(producer, restore="first"), artifact(tmp_path, producer))
    assert a["outcome"] == "wrong-output"
    assert "partial" in a["message"] and "dense/bias" in a["message"]
    assert a["restore"]["unmatched"] == ["dense/bias"]


def test_a_full_restore_is_proven_to_match_the_producer(tmp_path):
    producer = Model(1234)
    a = attempt(tmp_path, Fixture(producer), artifact(tmp_path, producer))
    assert a["outcome"] == "pass" and a["checks"] == {"predictions": True, "weights": True}
    assert a["tolerances"] == TOLS  # every tolerance used is in the record


def test_a_restore_that_changes_weights_but_not_to_the_producers_is_caught(tmp_path):
    # Failed on main: "the restore changed the weights" was all it proved.
    producer = Model(1234)
    item = artifact(tmp_path, producer)
    other = Model(99)
    a = attempt(tmp_path, Fixture(other), item)  # restores another model's weights
    assert a["outcome"] == "wrong-output" and a["checks"]["weights"] is False


def test_a_rebuilt_model_that_already_holds_the_producers_weights_is_a_harness_defect(tmp_path):
    # Failed on main: recorded as load-error, a cell outcome.
    producer = Model(1)
    a = attempt(tmp_path, Fixture(producer, ignores_seed=True), artifact(tmp_path, producer))
    assert a["outcome"] == "harness-error" and "prove nothing" in a["harness_defect"]


def optimizer_check(producer_opt, consumer_opt, kind="model", keys=()):
    model = Model(1)
    model.optimizer = consumer_opt
    meta = {"optimizer": {"class": "Opt", "iterations": int(producer_opt.iterations), "config":
                          producer_opt.get_config(), "slots": sorted(round(float(np.abs(v.value).sum()), 5)
                                                                     for v in producer_opt.variables[1:])},
            "optimizer_keys": list(keys)}
    arrays = {"x_train": X, "y_train": X[:, :2], "x_eval": X, "resumed": model.predict(X)}
    return check._optimizer(Ctx(), model, meta, arrays, TOLS, kind)


def test_missing_optimizer_slots_fail_the_optimizer_check():
    # Failed on main: the slot check was skipped when the consumer had no slots.
    ok, _, detail = optimizer_check(Opt(5, slots=[np.ones(3), np.ones(2)]), Opt(5))
    assert ok is False and detail["slots_match"] is False
    assert ok is False


def test_different_slot_values_fail_and_equal_ones_pass():
    assert optimizer_check(Opt(5, slots=[np.ones(3)]), Opt(5, slots=[np.ones(3) * 2]))[0] is False
    assert optimizer_check(Opt(5, slots=[np.ones(3)]), Opt(5, slots=[np.ones(3)]))[0] is True


def test_an_optimizer_key_missing_on_both_sides_fails():
    # Failed on main: None == None passed.
    ok, _, detail = optimizer_check(Opt(5), Opt(5), keys=("warmup_hint",))
    assert ok is False and "warmup_hint" in detail["mismatch"][0]
    tuned = {"learning_rate": 0.01, "warmup_hint": 7.0}
    assert optimizer_check(Opt(5, config=tuned), Opt(5, config=tuned), keys=("warmup_hint",))[0] is True


def test_checkpoint_optimizer_is_judged_on_state_not_on_the_class_the_code_made():
    # Failed on main: class and config came from the fixture and were compared with themselves.
    ok, _, detail = optimizer_check(Opt(5, slots=[np.ones(3)]), Opt(0, slots=[np.ones(3)]), kind="code")
    assert ok is False and "iterations" in detail["mismatch"][0]
    assert detail["class_source"].startswith("fixture code")


def test_resumed_step_uses_the_recorded_resume_tolerance(tmp_path):
    _, resume_ok, detail = optimizer_check(Opt(5), Opt(5))
    assert resume_ok is True and detail["resume_max_abs_diff"] == 0.0


@pytest.mark.parametrize("served,ok", [(lambda x: Model(1234).predict(x), True), (lambda x: x[:, :2] * 0, False)])
def test_a_savedmodel_loaded_as_a_keras_model_also_has_its_serving_signature_checked(monkeypatch, served, ok):
    # Failed on main: the `serving` promise was never exercised through load_model.
    monkeypatch.setattr(check, "_signature", lambda loaded: served)

    class TF:
        class saved_model:
            @staticmethod
            def load(path):
                return object()

    ctx = Ctx()
    ctx.tf = TF
    got, detail = check._serving(ctx, "p", X, Model(1234).predict(X), TOLS["predictions"])
    assert got is ok


def test_native_log_lines_that_say_state_was_skipped_are_attached_and_others_stay_in_the_log():
    import os
    import warnings

    from harness.worker.capture import Captured

    with Captured(native=True) as cap:
        warnings.warn("python-level warning", UserWarning, stacklevel=1)
        os.write(2, b"W tensorflow: Value in checkpoint could not be found in the restored object: (root).v\n")
        os.write(2, b"I tensorflow: oneDNN custom operations are on\n")
        os.write(2, b"Saved artifact at '/x/untracked_variable/export'\n")
    assert "UserWarning: python-level warning" in cap.messages
    assert any(m.startswith("log: ") and "could not be found" in m for m in cap.messages)
    assert not any("oneDNN" in m or "Saved artifact" in m for m in cap.messages)


def test_preprocessing_adapts_on_the_producers_stored_arrays_not_regenerated_ones():
    # Failed on main: build() called data(ctx) again, so a consumer's rebuild adapted on arrays it
    # regenerated from seeds instead of the producer's stored ones.
    from harness.worker.context import load_fixture

    adapted = []

    class Layer:
        def __init__(self, *a, **k):
            pass

        def adapt(self, x):
            adapted.append(x)

        def __call__(self, x):
            return x

    class Layers:
        Normalization = Layer

        def Dense(self, *a, **k):
            return Layer()

    class Keras:
        layers = Layers()

        class optimizers:
            Adam = Layer

        def Input(self, shape):
            return "in"

        def Model(self, *a, **k):
            class M:
                def compile(self, **k):
                    pass
            return M()

    fixture = load_fixture("preprocessing", __file__.replace("tests/test_check.py", "fixtures/preprocessing.py"))
    ctx = Ctx()
    ctx.keras = Keras()
    stored = np.full((3, 4), 7.0, dtype="float32")
    ctx.arrays = (stored, None, None)
    fixture.build(ctx)
    assert adapted and adapted[0] is stored


class FancyLayer:
    pass


def judge(model, classes, promises, optimizer_class="FancyAdam"):
    meta = {"promises": promises, "classes": classes, "optimizer": {"class": optimizer_class}}
    arrays = {"x_eval": X, "outputs": model.predict(X)}
    record = {"checks": {}, "lost": []}
    fixture = type("F", (), {"custom_objects": lambda self, ctx: {}})()
    check._judge(Ctx(), meta, arrays, fixture, "json", model, record, TOLS, "-")
    return record


def test_a_model_without_optimizer_is_not_asked_for_the_optimizer_s_custom_class():
    # Failed before w5: a json model (no compile config) of custom_optimizer was `degraded`,
    # custom_classes lost, for an optimizer the format never holds.
    json_promises = ["architecture", "weights", "custom_classes"]
    rec = judge(Model(1), {"FancyAdam": "fixtures.FancyAdam"}, json_promises)
    assert rec["outcome"] == "pass" and rec["lost"] == [] and "classes" not in rec["checks"]
    # a custom layer class is still asked for, and its absence is still a loss
    rec = judge(Model(1), {"FancyAdam": "fixtures.FancyAdam", "FancyLayer": "fixtures.FancyLayer"}, json_promises)
    assert rec["outcome"] == "degraded" and rec["lost"] == ["custom_classes"] and rec["checks"]["classes"] is False
    # compile=False on a format that keeps the compile config: that loss is `compile`, not a class
    rec = judge(Model(1), {"FancyAdam": "fixtures.FancyAdam"}, ["architecture", "weights", "custom_classes",
                                                                    "compile"])
    assert rec["lost"] == ["compile"]
