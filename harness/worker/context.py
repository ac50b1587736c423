"""What the worker knows about its environment: which Keras, versions, seeds, fixture loading."""

from __future__ import absolute_import

import importlib.util
import os
import random
import sys
import types
import warnings

FIXTURE_PACKAGE = "tfcompat_fixtures"


def _dist_version(name):
    try:
        from importlib import metadata
    except ImportError:  # Python 3.7
        import importlib_metadata as metadata  # type: ignore
    try:
        return metadata.version(name)
    except Exception:
        return None


def installed_packages():
    """Every installed distribution -> version, as the environment really has it."""
    try:
        from importlib import metadata
    except ImportError:
        import importlib_metadata as metadata  # type: ignore
    out = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            out[name.lower().replace("_", "-")] = dist.version
    return dict(sorted(out.items()))


class Ctx(object):
    """The env's own TF and Keras, as fixtures and formats should use them.

    Fixtures build with this Keras only; they never reach for another one.
    """

    def __init__(self):
        import numpy as np
        import tensorflow as tf

        self.np = np
        self.tf = tf
        self.legacy = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
        keras_dist = _dist_version("keras") or ""
        if self.legacy and _dist_version("tf-keras"):
            import tf_keras as keras

            self.keras_version = _dist_version("tf-keras")
        elif keras_dist.startswith("3."):
            import keras

            self.keras_version = keras_dist
        else:
            keras = tf.keras
            self.keras_version = getattr(keras, "__version__", None) or keras_dist or tf.__version__
        self.keras = keras
        self.keras3 = self.keras_version.startswith("3.")
        self.tf_version = tf.__version__
        self.module_dir = None  # set per item (hub fixture's SavedModel module)
        # The producer's (x_train, y_train, x_eval), set before every build: a fixture that needs
        # data to build (an adapted layer) uses these, never ones regenerated from seeds.
        self.arrays = None
        self._once = {}

    # -- helpers for fixture modules -------------------------------------------------------
    def once(self, name, factory):
        """factory() once per Keras module: a fixture's classes are made for the Keras in use."""
        key = (id(self.keras), name)
        if key not in self._once:
            self._once[key] = factory()
        return self._once[key]

    def register(self, cls, package="tfcompat"):
        """Register a custom class as serializable where this Keras has the API."""
        for owner in ("saving", "utils"):
            register = getattr(getattr(self.keras, owner, None), "register_keras_serializable", None)
            if register is not None:
                return register(package=package)(cls)
        return cls

    def regression_data(self, seed, n_in=4, n_out=2, n_train=32, n_eval=8):
        """(x_train, y_train, x_eval): a small deterministic regression problem."""
        rng = self.np.random.RandomState(seed)
        x = rng.normal(size=(n_train, n_in)).astype("float32")
        y = (x @ rng.normal(size=(n_in, n_out))).astype("float32")
        return x, y, rng.normal(size=(n_eval, n_in)).astype("float32")

    def make_hub_module(self, seed=19):
        """Write a small TF2 SavedModel module under module_dir (once): tanh(x @ w + b), 4 -> 6."""
        tf = self.tf
        if os.path.exists(os.path.join(self.module_dir, "saved_model.pb")):
            return self.module_dir
        rng = self.np.random.RandomState(seed)

        class Embed(tf.Module):
            def __init__(self):
                super(Embed, self).__init__()
                self.w = tf.Variable(rng.normal(size=(4, 6)).astype("float32"), name="w")
                self.b = tf.Variable(rng.normal(size=(6,)).astype("float32"), name="b")

            @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
            def __call__(self, x):
                return tf.tanh(tf.matmul(x, self.w) + self.b)

        tf.saved_model.save(Embed(), self.module_dir)
        return self.module_dir

    def keras_at_least(self, *version):
        return _vtuple(self.keras_version) >= version

    def set_seed(self, seed):
        # The harness's own seeding is not the model's business: keep its warnings out of the record.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            random.seed(seed)
            self.np.random.seed(seed)
            self.tf.random.set_seed(seed)
            utils = getattr(self.keras, "utils", None)
            if utils is not None and hasattr(utils, "set_random_seed"):
                utils.set_random_seed(seed)

    def clear(self):
        try:
            self.keras.backend.clear_session()
        except Exception:
            pass

    def versions(self):
        import platform

        return {
            "python": platform.python_version(),
            "tensorflow": self.tf_version,
            "keras": self.keras_version,
            "keras_flavour": "keras3" if self.keras3 else ("tf-keras" if self.legacy else "bundled"),
            "packages": installed_packages(),
        }

    def with_legacy_keras(self):
        """A copy of this context on tf_keras (legacy Keras 2), the remedy Keras 3 users reach for."""
        import copy

        import tf_keras

        other = copy.copy(self)
        other.keras = tf_keras
        other.keras3 = False
        other.legacy = True
        other.keras_version = _dist_version("tf-keras") or "2"
        return other


def _vtuple(text):
    out = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
        if not part.isdigit():
            break
    return tuple(out)


def load_fixture(name, path):
    """Import a fixture module from its file, under a package name that saved configs will record."""
    full = FIXTURE_PACKAGE + "." + name
    if full in sys.modules:
        return sys.modules[full]
    if FIXTURE_PACKAGE not in sys.modules:
        pkg = types.ModuleType(FIXTURE_PACKAGE)
        pkg.__path__ = []  # a namespace with nothing importable from disk
        sys.modules[FIXTURE_PACKAGE] = pkg
    spec = importlib.util.spec_from_file_location(full, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    spec.loader.exec_module(module)
    return module


def fixtures_absent():
    """True when no fixture code is loaded, registered or importable in this process."""
    if any(m == FIXTURE_PACKAGE or m.startswith(FIXTURE_PACKAGE + ".") for m in sys.modules):
        return False
    try:
        return importlib.util.find_spec(FIXTURE_PACKAGE) is None
    except (ImportError, ValueError):
        return True
