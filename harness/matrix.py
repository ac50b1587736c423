"""The matrix model: EnvSpec, FixtureSpec, Matrix, and load_matrix().

load_matrix() raises ConfigError listing every mistake in the file, one line
each: `<file>: <key path>: <what is wrong>; <what is allowed>` (the checks
live in harness/matrix_check.py and harness/matrix.schema.json).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field, replace

from harness.errors import ConfigError
from harness.matrix_check import SCHEMA_PATH, read_matrix  # noqa: F401  (re-exported for callers)
from harness.matrix_defaults import DEFAULT_ATOL, DEFAULT_CHECK_TIMEOUT, DEFAULT_RTOL, KNOWN_FORMATS, RESAVED, WILDCARD  # noqa: F401


@dataclass(frozen=True)
class EnvSpec:
    """One environment of the matrix: what to install and how to run it."""

    id: str
    python: str
    tensorflow: str
    keras: str  # "bundled" | "tf-keras" | exact Keras 3 version
    tf_keras: str | None = None
    pins: dict[str, str] = field(default_factory=dict)  # package -> pip specifier
    set_env: dict[str, str] = field(default_factory=dict)
    backend: dict = field(default_factory=dict)
    recipes: tuple[str, ...] = ()  # ids of the install-recipe rules whose pins `pins` includes
    kind: str = "python"  # "python" | "tfjs" (a TF.js env on Node) | "converter" (runs tensorflowjs)
    tfjs: str | None = None  # kind tfjs: the @tensorflow/tfjs version
    tensorflowjs: str | None = None  # kind converter: the tensorflowjs (pip) version

    def requirements(self) -> list[str]:
        """Pip requirement strings: tensorflow first, then Keras, then pins by name (a TF.js env:
        its one npm package)."""
        if self.kind == "tfjs":
            return [f"@tensorflow/tfjs@{self.tfjs}"]
        reqs = [f"tensorflow=={self.tensorflow}"]
        if self.keras == "tf-keras":
            reqs.append(f"tf-keras=={self.tf_keras}")
        elif self.keras != "bundled":
            reqs.append(f"keras=={self.keras}")
        if self.kind == "converter":
            reqs.append(f"tensorflowjs=={self.tensorflowjs}")
        reqs.extend(f"{name}{spec}" for name, spec in sorted(self.pins.items()))
        return reqs

    def env_vars(self) -> dict[str, str]:
        """Environment variables for every process in this env (set_env wins)."""
        env = {"TF_CPP_MIN_LOG_LEVEL": "2"} if self.kind != "tfjs" else {}
        if self.keras == "tf-keras":
            # TF >= 2.16 makes tf.keras the legacy tf-keras only when this is set.
            env["TF_USE_LEGACY_KERAS"] = "1"
        env.update(self.set_env)
        return env

    def describe(self) -> str:
        """One human line: 'TF 2.15.1, Keras bundled, Python 3.11'."""
        if self.kind == "tfjs":
            return f"TF.js {self.tfjs} (@tensorflow/tfjs, pure JS on Node)"
        if self.kind == "converter":
            return f"tensorflowjs {self.tensorflowjs} converter, TF {self.tensorflow}, Python {self.python}"
        keras = f"tf-keras {self.tf_keras}" if self.keras == "tf-keras" else self.keras
        return f"TF {self.tensorflow}, Keras {keras}, Python {self.python}"

    def backend_name(self, default: str = "tox") -> str:
        """The backend this env names in the matrix, else `default` (the CLI's --backend); a TF.js
        env always runs on Node."""
        if self.kind == "tfjs":
            return "node"
        return self.backend.get("name") or default

    def spec_hash(self, python_path: str | None = None) -> str:
        """sha256 over everything but the id and the backend's choice, plus the interpreter's identity.

        `python_path` is what identifies the interpreter to the backend: a path for tox (it defaults
        to find_python(self.python), which may raise InterpreterNotFound), the base image's id and
        build options for Docker. Environment variables are included too: they do not change what is
        installed but do change what a check observes.
        """
        if python_path is None:
            from harness.interpreters import find_python

            python_path = find_python(self.python)
        data = dataclasses.asdict(self)
        del data["id"]
        del data["recipes"]  # what they pin is in `pins`
        del data["backend"]  # its part is in `python_path`
        for key, default in (("kind", "python"), ("tfjs", None), ("tensorflowjs", None)):
            if data[key] == default:
                del data[key]  # added later: an env that does not use them keeps the hash it was built with
        data["requirements"] = self.requirements()
        data["env_vars"] = self.env_vars()
        data["python_path"] = python_path
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class FixtureSpec:
    """A fixture module and the tolerances its predictions are compared with."""

    name: str
    path: str  # absolute path of the .py module
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    # Also run its re-save variants (A's artifact loaded and saved again in B): True for every env as
    # A, or the env ids that are A.
    resave: bool | tuple[str, ...] = False
    origin: str | None = None  # a re-save variant: the env whose artifact is loaded and saved again
    base: str | None = None  # a re-save variant: the fixture it re-saves

    @property
    def twin(self) -> str:
        """Where the fixture's TF.js twin would be: <name>.js beside the module (fixtures/README.md)."""
        return os.path.splitext(self.path)[0] + ".js"

    @property
    def module(self) -> str:
        """The fixture module's name: a variant loads its base fixture's module."""
        return self.base or self.name

    def tolerances(self) -> dict:
        """Every tolerance a check of this fixture uses; each record carries them."""
        # One resumed training step runs the optimizer's kernels too, whose float rounding differs
        # across TF versions: 1e-4 at least. Slots are compared element by element (worker/slots.py).
        step = {"atol": max(self.atol, 1e-4), "rtol": max(self.rtol, 1e-4)}
        return {"predictions": {"atol": self.atol, "rtol": self.rtol}, "resume": step,
                "slots": {"atol": 1e-3, "rtol": 1e-3}}


@dataclass(frozen=True)
class Matrix:
    """A validated matrix.yaml."""

    path: str
    environments: list[EnvSpec]
    fixtures: list[FixtureSpec]
    formats: list[str]
    exclusions: list[dict] = field(default_factory=list)
    expectations: list[dict] = field(default_factory=list)
    check_timeout: float = DEFAULT_CHECK_TIMEOUT
    unverified: tuple[str, ...] = ()  # packages whose versions the package index could not confirm (offline)
    converter: EnvSpec | None = None  # the env that runs the tensorflowjs converter (not a producer or consumer)

    def env(self, id: str) -> EnvSpec:
        """The environment named `id` (or the converter env); KeyError if there is none."""
        for spec in self.environments:
            if spec.id == id:
                return spec
        if self.converter is not None and self.converter.id == id:
            return self.converter
        raise KeyError(id)

    def require_envs(self, named: list[tuple[str, str]]) -> None:
        """[(flag, env id)] given on the command line: ConfigError, one line each, for ids not in the matrix."""
        ids = [e.id for e in self.environments]
        bad = ["%s: %r is not an env of %s; choose from: %s" % (flag, env, self.path, ", ".join(ids))
               for flag, env in named if env not in ids]
        if bad:
            raise ConfigError(bad)

    def fixture(self, name: str) -> FixtureSpec:
        """The fixture named `name`, or a re-save variant `base~origin`; KeyError if there is none."""
        base, _, origin = name.partition(RESAVED)
        for spec in self.fixtures:
            if spec.name == base:
                if not origin:
                    return spec
                if origin in self.origins(spec):
                    return replace(spec, name=name, resave=False, origin=origin, base=base)
        raise KeyError(name)

    def variants(self, fixtures: tuple[str, ...], envs: tuple[str, ...]) -> tuple[str, ...]:
        """The selection's fixtures followed by the re-save variants of those that ask for them,
        one per origin env in `envs` (the original must be made in this run, and another env must
        be there to save it again)."""
        out = [f for f in fixtures if RESAVED not in f]
        if len(envs) < 2:
            return tuple(out)  # nothing else to save A's files again
        for fx in list(out):
            origins = self.origins(self.fixture(fx))
            out += ["%s%s%s" % (fx, RESAVED, env) for env in envs if env in origins]
        return tuple(out)

    def origins(self, spec: FixtureSpec) -> list[str]:
        """The envs whose artifacts of this fixture are saved again by the others (its `resave`)."""
        if spec.resave is True:
            return [e.id for e in self.environments]
        return list(spec.resave or ())

    def exclusion_for(self, producer: str, consumer: str, fixture: str, fmt: str) -> dict | None:
        """The first exclusion covering this cell, or None. Same-env cells always run: a failure
        there is a same-version defect worth knowing, so no exclusion applies to them."""
        if producer == consumer:
            return None
        return _first_match(self.exclusions, producer, consumer, fixture, fmt)

    def expectation_for(self, producer: str, consumer: str, fixture: str, fmt: str) -> dict | None:
        """The first expectation covering this cell (expired ones included; see `expires`), or None."""
        return _first_match(self.expectations, producer, consumer, fixture, fmt)


def _first_match(rules: list[dict], producer: str, consumer: str, fixture: str, fmt: str) -> dict | None:
    cell = {"producer": producer, "consumer": consumer, "fixture": fixture, "format": fmt}
    for rule in rules:
        if all(_selects(rule[k], v) for k, v in cell.items()):
            return rule
    return None


def _selects(selector, value) -> bool:
    # "*", one name, or a list of names; a row-wide record (consumer None) matches only "*".
    if selector == WILDCARD:
        return True
    if isinstance(selector, list):
        return value in selector
    return selector == value


def profile_paths(root: str) -> dict[str, str]:
    """Profile name -> matrix file in `root`: "default" is matrix.yaml, the others profiles/*.yaml."""
    out = {}
    if os.path.isfile(os.path.join(root, "matrix.yaml")):
        out["default"] = os.path.join(root, "matrix.yaml")
    folder = os.path.join(root, "profiles")
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            if name.endswith(".yaml"):
                out[name[:-5]] = os.path.join(folder, name)
    return out


def load_matrix(path: str, *, check_fixture_files: bool = True) -> Matrix:
    """Load and check the matrix file at `path`; raise ConfigError listing every problem.

    `check_fixture_files=False` skips only the "fixtures/<name>.py exists"
    check, for callers that need the environments alone (toxfile.py).
    """
    data = read_matrix(path, check_fixture_files)
    return Matrix(
        path=os.path.abspath(path),
        environments=[EnvSpec(**env) for env in data["environments"]],
        fixtures=[FixtureSpec(**dict(fx, resave=tuple(fx["resave"]) if isinstance(fx.get("resave"), list)
                                     else fx.get("resave", False))) for fx in data["fixtures"]],
        formats=data["formats"],
        exclusions=data["exclusions"],
        expectations=data["expectations"],
        check_timeout=data["check_timeout"],
        unverified=tuple(data.get("unverified") or ()),
        converter=EnvSpec(**data["converter"]) if data.get("converter") else None,
    )
