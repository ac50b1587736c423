"""Read and check matrix.yaml, reporting every mistake as one line.

`read_matrix()` returns the file's content normalised to plain values (merged
defaults, "==" added to bare versions, tolerances as floats); harness.matrix
turns that into its dataclasses. The shape is checked by matrix.schema.json
(JSON Schema 2020-12); versions, names and cross-references are checked here,
only where the shape is right, so one mistake gives one line.

The reading is harness/matrix_load.py (bytes and YAML, bounded), what needs the package index is
harness/matrix_expand.py (ranges, releases), the defaults are harness/matrix_defaults.py.
"""

from __future__ import annotations

import ast
import datetime
import difflib
import functools
import json
import math
import os
import re
from typing import Any

import jsonschema
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from harness.errors import ConfigError
from harness.matrix_defaults import (
    DEFAULT_ATOL,
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_RTOL,
    KNOWN_FORMATS,
    TFJS_FORMATS,
    WILDCARD,
)
from harness.matrix_expand import expand, released, wheel_for
from harness.matrix_load import holds_document, parse_yaml, read_text
from harness.outcomes import OUTCOMES
from harness.recipes import pins_for, python_for

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "matrix.schema.json")
# The fixtures that ship with tfcompat; a matrix elsewhere may name them without a path.
BUILTIN_FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
# Names tox.ini already uses; a generated tox env must not shadow them.
RESERVED_ENV_IDS = {"matrix", "tests", "ALL"}
# Backends an env may name, and the options each takes (harness/backends/ holds the classes).
BACKEND_OPTIONS: dict[str, tuple[str, ...]] = {"tox": (), "docker": ("base_image", "build_args")}
# These have their own keys in an environment; a pin would fight them.
FLAVOUR_PACKAGES = {"tensorflow", "tensorflow-cpu", "tensorflow-intel", "keras", "tf-keras"}
# The first TF whose own Keras is Keras 3, and the first with a tf-keras release.
FIRST_KERAS3_TF = Version("2.16")

_TOP_ORDER = [
    "version", "defaults", "check_timeout", "environments", "fixtures", "formats", "exclusions", "expectations",
]
_PACKAGE_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def read_matrix(path: str, check_fixture_files: bool = True) -> dict:
    """The checked, normalised content of the matrix file at `path`.

    Raises ConfigError with one line per problem. `check_fixture_files=False`
    skips only the check that each fixture's .py file exists.
    """
    display = _display_path(path) if path else "--matrix"
    text = read_text(path, display)
    checker = _Checker(display, os.path.dirname(os.path.abspath(path)), check_fixture_files)
    result = checker.run(text)
    if checker.problems:
        raise ConfigError(checker.sorted_problems())
    if checker.unverified:
        result["unverified"] = sorted(checker.unverified)
    return result


def normalize_specifier(spec: str) -> str | None:
    """'1.26.4' -> '==1.26.4'; '<2' -> '<2'; None when it is not a pip specifier."""
    text = spec.strip()
    if not text:
        return None
    if text[0].isdigit():
        try:
            Version(text)
        except InvalidVersion:
            return None
        text = f"=={text}"
    try:
        return str(SpecifierSet(text))
    except InvalidSpecifier:
        return None


# ------------------------------------------------------------------ helpers


def _display_path(path: str) -> str:
    rel = os.path.relpath(os.path.abspath(path))
    return path if rel.startswith("..") else rel


def _key_path(parts: list) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _sort_key(parts: list) -> tuple:
    if not parts:
        return (-1,)
    head = _TOP_ORDER.index(parts[0]) if parts[0] in _TOP_ORDER else len(_TOP_ORDER)
    return (head, *((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in parts[1:]))


def _type_name(value: Any) -> str:
    names = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string", list: "list",
             dict: "mapping"}
    return names.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML, roughly."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return repr(value)


def _suggest(value: str, names: list[str]) -> str:
    hit = difflib.get_close_matches(value, names, n=1)
    return f" (did you mean {hit[0]!r}?)" if hit else ""


def _given(mapping: dict, key: str) -> bool:
    return key in mapping and mapping[key] is not None


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _non_finite(value: Any, at: list):
    """(key path, value) of every NaN or infinite number: no setting means either."""
    if isinstance(value, float) and not math.isfinite(value):
        yield at, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _non_finite(v, at + [k])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _non_finite(v, at + [i])


# Rules the schema states (so editors and other tools see them) that the checks below also make, with
# a message that names the duplicate, the outcomes or the date format: one line per mistake. Each is
# where it is in the schema (a property's keyword), not the key's name in the file: a pins or set_env
# key called resave is the schema's to report.
_CHECKED_HERE = {("formats", "uniqueItems"), ("outcome", "enum"), ("expires", "pattern"), ("resave", "type"),
                 ("resave", "items", "type")}


def _said_by_the_checks(error: jsonschema.ValidationError) -> bool:
    where = tuple(str(p) for p in error.absolute_schema_path if p != "$ref")
    return any(where[-len(rule) - 1:] == ("properties", *rule) for rule in _CHECKED_HERE)


def expanded_id_pattern() -> str:
    """The one rule for an env id that names a tox env and a folder (from the schema)."""
    return _load_schema()["$defs"]["expanded_env_id"]["pattern"]


@functools.lru_cache(maxsize=1)
def _load_schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return json.load(fh)


# ------------------------------------------------------------------ checker


class _Checker:
    """Collects the problems of one matrix file."""

    def __init__(self, display: str, base_dir: str, check_fixture_files: bool) -> None:
        self.display = display
        self.base_dir = base_dir
        self.check_fixture_files = check_fixture_files
        self.unverified: set[str] = set()  # packages whose versions the index could not confirm (offline)
        self.problems: list[tuple[tuple, str]] = []
        self.declared_env_ids: list[str] = []  # every env id the file declares (see environments())

    def add(self, parts: list, message: str) -> None:
        self.problems.append((_sort_key(parts), f"{self.display}: {_key_path(parts)}: {message}"))

    def add_line(self, message: str) -> None:
        self.problems.append(((-2,), f"{self.display}: {message}"))

    def sorted_problems(self) -> list[str]:
        # a defaults value every env reads (defaults.backend) is reported once, not once per env
        return list(dict.fromkeys(line for _, line in sorted(self.problems, key=lambda p: p[0])))

    def run(self, text: str) -> dict:
        data = self.parse(text)
        if data is None:
            return {}
        self.check_shape(data)
        return self.check_meaning(data)

    # -- parsing and shape

    def parse(self, text: str) -> dict | None:
        data, problems = parse_yaml(text)
        for problem in problems:
            self.add_line(problem)
        if data is None and problems:
            return None  # the YAML could not be read; the lines say why
        if not isinstance(data, dict):
            if data is None:
                what = ("the document is null (~, null or nothing after ---)" if holds_document(text) else
                        "no YAML document (the file is empty or only comments)")
            else:
                what = f"the document is a {_type_name(data)}"
            self.add([], f"{what}; the file must be a mapping with version, environments, fixtures and formats")
            return None
        bad = list(_non_finite(data, []))
        for parts, value in bad:
            self.add(parts, f"{value} is not a finite number; give a number such as 300 or 1e-5")
        return None if bad else data

    def check_shape(self, data: dict) -> None:
        errors = list(jsonschema.Draft202012Validator(_load_schema()).iter_errors(data))
        # A misspelt key is one mistake: report the unknown key, not also the required one it was meant to be.
        meant: set[tuple] = set()
        for error in errors:
            if error.validator == "additionalProperties":
                allowed = sorted(error.schema.get("properties", {}))
                for key in set(error.instance) - set(allowed):
                    for hit in difflib.get_close_matches(key, allowed, n=1):
                        meant.add((*error.absolute_path, hit))
        required_done: set[tuple] = set()
        for error in errors:
            if _said_by_the_checks(error):
                continue
            if error.validator == "required":
                # jsonschema gives one error per missing key, all alike but for the message.
                where = tuple(error.absolute_path)
                if where in required_done:
                    continue
                required_done.add(where)
            self.report_schema_error(error, meant)

    def report_schema_error(self, error: jsonschema.ValidationError, meant: set[tuple]) -> None:
        parts = list(error.absolute_path)
        # The stubs allow "unset" for these; every error iter_errors() yields has them set.
        value: Any = error.instance
        validator_value: Any = error.validator_value
        schema = error.schema if isinstance(error.schema, dict) else {}
        hint = schema.get("x-hint")
        kind = error.validator
        if kind == "additionalProperties":
            allowed = sorted(schema.get("properties", {}))
            for key in sorted(set(value) - set(allowed)):
                self.add(parts + [key], f"unknown key{_suggest(key, allowed)}; allowed keys: {', '.join(allowed)}")
        elif kind == "required":
            for key in validator_value:
                if key not in value and (*parts, key) not in meant:
                    self.add(parts + [key], "missing; this key is required")
        elif kind == "type":
            expected: list[str] = validator_value if isinstance(validator_value, list) else [validator_value]
            expected_text = " or ".join({"object": "mapping", "array": "list"}.get(t, t) for t in expected)
            quote = ""
            if "string" in expected and _type_name(value) == "number":
                quote = " (YAML read it as a number: quote it)"
            self.add(parts, f"{_show(value)} is a {_type_name(value)}; expected a {expected_text}{quote}")
        elif kind == "enum":
            self.add(parts, f"{_show(value)} is not allowed; use one of: {', '.join(map(str, validator_value))}")
        elif kind == "const":
            self.add(parts, f"{value!r} is not supported; {hint or 'use ' + repr(validator_value)}")
        elif kind == "pattern" and "propertyNames" in error.absolute_schema_path:
            self.add(parts + [value], f"not allowed as a name; {hint or 'must match ' + validator_value}")
        elif kind == "pattern":
            self.add(parts, f"{value!r} is not allowed; {hint or 'must match ' + validator_value}")
        elif kind in ("minItems", "minLength"):
            self.add(parts, "must not be empty")
        elif kind == "exclusiveMinimum":
            self.add(parts, f"{value!r} must be greater than {validator_value}")
        else:
            self.add(parts, error.message)

    # -- meaning (each check skips values whose shape is wrong: those are reported already)

    def check_meaning(self, data: dict) -> dict:
        # A section the schema refused as a whole (missing, null, a scalar, a list for a mapping or the other
        # way round, an empty list) says nothing of what it was meant to hold: the checks that read it
        # (defaults.python, the names exclusions and resave refer to) stay quiet, one mistake is one line.
        broken = {key for key in ("environments", "fixtures")
                  if not (isinstance(data.get(key), list) and data[key])}
        if not isinstance(data.get("defaults", {}), dict):
            broken.add("defaults")
        defaults = _as_dict(data.get("defaults"))
        default_pins = self.pins(defaults.get("pins"), ["defaults", "pins"])
        raw_envs = _as_list(data.get("environments"))
        environments = self.environments(raw_envs, defaults, default_pins, "defaults" in broken)
        raw_fixtures = _as_list(data.get("fixtures"))
        fixtures = self.fixtures(raw_fixtures, None if "environments" in broken else self.declared_env_ids)
        formats = _as_list(data.get("formats"))
        for i, fmt in enumerate(formats):
            if fmt in formats[:i]:
                self.add(["formats", i], f"{fmt!r} is listed twice; list each format once")
        # Cross-references count every declared name, also of an entry with its own problem.
        names: dict[str, list | None] = {
            "environment": None if "environments" in broken else
            sorted({e["id"] for e in raw_envs if isinstance(e, dict) and isinstance(e.get("id"), str)}),
            "fixture": None if "fixtures" in broken else
            sorted({n for n in (f.get("name") if isinstance(f, dict) else f for f in raw_fixtures)
                    if isinstance(n, str)}),  # a list or number given as a name: the schema says so
            "format": KNOWN_FORMATS,
        }
        timeout = data.get("check_timeout", DEFAULT_CHECK_TIMEOUT)
        converter = self.converter(data.get("converter"), defaults, default_pins,
                                   [e["id"] for e in environments]) if "converter" in data else None
        converted = [f for f in formats if f in TFJS_FORMATS]
        js_envs = [e["id"] for e in environments if e.get("kind") == "tfjs"]
        if (converted or js_envs) and "converter" not in data:
            what = (f"formats: {converted[0]} is made by" if converted else
                    f"environments: {js_envs[0]}'s Keras files are made by")
            self.add_line(f"{what} the tensorflowjs converter: declare a converter env "
                          "(converter: {id: tfjs-converter, tensorflow: ..., tensorflowjs: ...})")
        return {
            "converter": converter,
            "environments": environments,
            "fixtures": fixtures,
            "formats": list(formats),
            "exclusions": self.rules("exclusions", _as_list(data.get("exclusions")), names),
            "expectations": self.rules("expectations", _as_list(data.get("expectations")), names),
            "check_timeout": float(timeout) if isinstance(timeout, (int, float)) else DEFAULT_CHECK_TIMEOUT,
        }

    def exact_version(self, value: Any, parts: list, example: str, package: str) -> Version | None:
        if not isinstance(value, str):
            return None
        try:
            version = Version(value)
        except InvalidVersion:
            version = None
        if version is None or len(version.release) < 3 or version.local or str(version) != value:
            self.add(parts, f"{value!r} is not a version; use an exact release such as {example}")
            return None
        return version if released(package, version, parts, self.add, self.unverified) else None

    def pins(self, pins: Any, parts: list) -> dict[str, str | None]:
        """{canonical name: specifier, or None to drop a default pin}; bad entries are reported and left out."""
        out: dict[str, str | None] = {}
        for name, spec in _as_dict(pins).items():
            where = parts + [name]
            if not _PACKAGE_NAME.match(name):
                self.add(where, "not a package name; use a PyPI project name such as numpy or tensorflow-hub")
                continue
            canonical = canonicalize_name(name)
            earlier = list(_as_dict(pins))[:list(_as_dict(pins)).index(name)]
            twin = next((other for other in earlier if canonicalize_name(other) == canonical), None)
            if twin is not None:
                self.add(where, f"names the same package as {twin!r} (PEP 503: {canonical}); keep one of them")
                continue
            if canonical in FLAVOUR_PACKAGES:
                self.add(where, "set TensorFlow/Keras with the tensorflow, keras and tf_keras keys, not a pin")
            elif spec is None:
                out[canonical] = None
            elif isinstance(spec, str):
                normalized = normalize_specifier(spec)
                if normalized is None:
                    self.add(where, f"{spec!r} is not a pip version specifier; "
                                    "use e.g. \"==1.26.4\", \"<2\" or a bare version")
                else:
                    out[canonical] = normalized
        return out

    def environments(self, raw_envs: list, defaults: dict, default_pins: dict, defaults_broken: bool) -> list[dict]:
        envs = []
        first_index: dict[str, int] = {}
        lacking_python = []
        expanded = []
        for i, raw in enumerate(raw_envs):
            if isinstance(raw, dict):
                expanded += [(i, entry) for entry in expand(i, raw, self.add)]
        # every id the file declares (ranges expanded), also of an env with its own problem
        self.declared_env_ids = list(dict.fromkeys(raw["id"] for _, raw in expanded
                                                   if isinstance(raw.get("id"), str)))
        for i, raw in expanded:
            env_id = raw.get("id")
            if isinstance(env_id, str):
                written = re.fullmatch(_load_schema()["$defs"]["env_id"]["pattern"], env_id)
                if written and not re.fullmatch(expanded_id_pattern(), env_id):
                    # the schema checked the id as written (and said so if it is wrong); this is the id
                    # that names the folders and the tox env
                    self.add(["environments", i, "id"], f"{env_id!r}: a {{tensorflow}}/{{keras}} placeholder is "
                             "only for a version range; this version is exact: write the id out")
                    continue
                if not written:
                    continue
                if env_id in first_index:
                    self.add(["environments", i, "id"],
                             f"{env_id!r} is already used by environments[{first_index[env_id]}]; ids must be unique")
                    continue
                first_index[env_id] = i
                bad = [f for f in env_id.split("-") if _TOX_PY_FACTOR.fullmatch(f)]
                if bad:
                    self.add(["environments", i, "id"], f"{env_id!r}: tox reads the part {bad[0]!r} as a Python "
                             "version and would build the env on that interpreter; rename it (e.g. newestpy)")
                if env_id in RESERVED_ENV_IDS:
                    self.add(["environments", i, "id"], f"{env_id!r} is reserved (tox.ini uses it); pick another id")
            if raw.get("kind") == "tfjs":
                env = self.tfjs_environment(i, raw)
                if env is not None:
                    envs.append(env)
                continue
            if "python" not in raw and "python" not in defaults and not defaults_broken:
                lacking_python.append(i)  # (a python given as null is the schema's to report)
            env = self.environment(i, raw, defaults, default_pins)
            if env is not None:
                envs.append(env)
        if len(lacking_python) == 1:
            self.add(["environments", lacking_python[0], "python"],
                     "missing; set it here or in defaults.python, e.g. \"3.11\"")
        elif lacking_python:
            which = ", ".join(f"[{i}]" for i in lacking_python)
            self.add(["defaults", "python"],
                     f"missing, and environments {which} set no python; set it here, e.g. \"3.11\"")
        return envs

    def environment(self, i: int, raw: dict, defaults: dict, default_pins: dict,
                    at: list | None = None) -> dict | None:
        at = at or ["environments", i]
        ok = True
        tf = self.exact_version(raw.get("tensorflow"), at + ["tensorflow"], "2.15.1", "tensorflow")
        keras = raw.get("keras", defaults.get("keras"))
        keras_at = at + ["keras"] if "keras" in raw else ["defaults", "keras"]
        tf_keras = raw.get("tf_keras")

        if isinstance(keras, str) and keras not in ("bundled", "tf-keras"):
            ok = self.keras3(keras, keras_at, tf)
        elif keras == "tf-keras":
            ok = self.tf_keras(tf_keras, at, keras_at, tf)
        if tf_keras is not None and keras != "tf-keras":
            self.add(at + ["tf_keras"], "only used with keras: tf-keras; remove it or set keras: tf-keras")
            ok = False

        python = raw.get("python", defaults.get("python"))
        if python == "auto" and tf is not None:
            python = python_for(str(tf))
            if python is None:
                self.add(at + ["python"],
                         f"auto: harness/recipes.yaml has no python row for tensorflow {tf}; set python")
                return None
        if (not ok or tf is None or not isinstance(raw.get("id"), str) or not isinstance(keras, str)
                or not isinstance(python, str)):
            return None
        python_ok = re.fullmatch(_load_schema()["$defs"]["python"]["pattern"], python)  # else the schema said it
        if python_ok and not wheel_for("tensorflow", str(tf), python, at + ["tensorflow"], self.add):
            return None
        recipe_pins, recipes = pins_for(str(tf), python, keras)
        pins = {**recipe_pins, **default_pins, **self.pins(raw.get("pins"), at + ["pins"])}
        return {
            "id": raw["id"],
            "python": python,
            "tensorflow": str(tf),
            "keras": keras,
            "tf_keras": tf_keras if keras == "tf-keras" else None,
            "pins": {name: spec for name, spec in sorted(pins.items()) if spec is not None},
            "recipes": tuple(recipes),
            "set_env": {k: str(v)
                        for k, v in {**_as_dict(defaults.get("set_env")), **_as_dict(raw.get("set_env"))}.items()},
            "backend": self.merged_backend(defaults, raw, at),
        }

    def tfjs_environment(self, i: int, raw: dict) -> dict | None:
        """A TF.js env: one @tensorflow/tfjs release on Node; the Python keys mean nothing there."""
        at = ["environments", i]
        for key in ("python", "tensorflow", "keras", "tf_keras", "pins", "backend"):
            if key in raw:
                self.add(at + [key], "not used by a kind: tfjs env (it installs only @tensorflow/tfjs, with npm, "
                                     "and runs on Node); remove it")
        version = raw.get("tfjs")
        exact = _load_schema()["$defs"]["environment"]["properties"]["tfjs"]["pattern"]
        if not isinstance(raw.get("id"), str) or not isinstance(version, str) or not re.fullmatch(exact, version):
            return None  # the schema said what is wrong
        return {"id": raw["id"], "kind": "tfjs", "tfjs": version, "python": "", "tensorflow": "", "keras": "tfjs",
                "set_env": {k: str(v) for k, v in _as_dict(raw.get("set_env")).items()},
                "backend": {"name": "node"}}

    def converter(self, raw: Any, defaults: dict, default_pins: dict, env_ids: list[str]) -> dict | None:
        """The converter env: a Python env with tensorflowjs, checked like the others."""
        if not isinstance(raw, dict):
            return None
        if raw.get("id") in env_ids:
            self.add(["converter", "id"], f"{raw.get('id')!r} is already an environment's id; give the converter "
                                          "its own id")
            return None
        version = self.exact_version(raw.get("tensorflowjs"), ["converter", "tensorflowjs"], "4.22.0", "tensorflowjs")
        entry = self.environment(0, dict(raw, keras=raw.get("keras", "bundled")), defaults, default_pins,
                                 at=["converter"])
        if entry is None or version is None:
            return None
        return dict(entry, kind="converter", tensorflowjs=str(version))

    def merged_backend(self, defaults: dict, raw: dict, at: list) -> dict:
        """The env's backend as {"name": ..., options...}, or {} when neither it nor defaults names one
        (the CLI's --backend decides). Options of the same backend merge, the env's winning."""
        base = self.backend(defaults.get("backend"), ["defaults", "backend"]) if _given(defaults, "backend") else {}
        own = self.backend(raw.get("backend"), at + ["backend"]) if _given(raw, "backend") else {}
        if not own:
            return base
        if base.get("name") != own["name"]:
            return own
        args = {**base.get("build_args", {}), **own.get("build_args", {})}
        merged = {**base, **own}
        if args:
            merged["build_args"] = args
        return merged

    def backend(self, value: Any, at: list) -> dict:
        """`tox`, `docker`, or {NAME: {option: value}} -> {"name": NAME, option: value}."""
        names = ", ".join(BACKEND_OPTIONS)
        options: Any
        if not isinstance(value, (str, dict)):
            return {}  # the schema reports it
        if isinstance(value, str):
            name, options = value, {}
        elif isinstance(value, dict) and len(value) == 1:
            name, options = next(iter(value.items()))
            options = {} if options is None else options
        else:
            self.add(at, f"{_show(value)} is not a backend; use one of: {names}, or a mapping with one of them "
                         "as its only key, e.g. {docker: {base_image: \"python:3.11-slim\"}}")
            return {}
        if name not in BACKEND_OPTIONS:
            self.add(at, f"unknown backend {name!r}{_suggest(str(name), list(BACKEND_OPTIONS))}; use one of: {names}")
            return {}
        if not isinstance(options, dict):
            self.add(at + [name], f"{_show(options)} is a {_type_name(options)}; expected a mapping of options")
            return {}
        allowed = BACKEND_OPTIONS[name]
        out: dict[str, Any] = {"name": name}
        for key, val in options.items():
            if key not in allowed:
                self.add(at + [name, key], f"unknown option{_suggest(str(key), list(allowed))}; "
                         f"{name} takes: {', '.join(allowed) or 'no options'}")
            elif key == "base_image" and not (isinstance(val, str) and val.strip()):
                self.add(at + [name, key], f"{_show(val)} is not an image name; use e.g. \"python:3.11-slim\"")
            elif key == "build_args":
                if not isinstance(val, dict) or not all(isinstance(v, (str, int, float)) for v in val.values()):
                    self.add(at + [name, key], "expected a mapping of NAME: value (strings or numbers)")
                else:
                    out[key] = {str(k): str(v) for k, v in val.items()}
            else:
                out[key] = val
        return out

    def keras3(self, keras: str, keras_at: list, tf: Version | None) -> bool:
        if not keras[:1].isdigit():
            self.add(keras_at, f"{keras!r} is not allowed; "
                               "use bundled, tf-keras, latest or an exact Keras 3 version such as 3.3.3")
            return False
        version = self.exact_version(keras, keras_at, "3.3.3", "keras")
        if version is None:
            return False
        if version.major != 3:
            self.add(keras_at,
                     f"{keras!r} is not Keras 3; for Keras 2 use bundled (TF < 2.16) or tf-keras (TF >= 2.16)")
            return False
        if tf is not None and tf < FIRST_KERAS3_TF:
            self.add(keras_at,
                     f"Keras 3 needs tensorflow >= 2.16 (this env has {tf}); use bundled, or a newer tensorflow")
            return False
        return True

    def tf_keras(self, tf_keras: Any, at: list, keras_at: list, tf: Version | None) -> bool:
        if tf is not None and tf < FIRST_KERAS3_TF:
            self.add(keras_at,
                     f"tf-keras needs tensorflow >= 2.16 (this env has {tf}); use keras: bundled for older TF")
            return False
        if tf_keras is None:
            self.add(at + ["tf_keras"], "missing; keras: tf-keras needs an exact tf_keras version such as 2.16.0")
            return False
        version = self.exact_version(tf_keras, at + ["tf_keras"], "2.16.0", "tf-keras")
        if version is None:
            return False
        # Each tf-keras release requires the TensorFlow of the same major.minor.
        if tf is not None and version.release[:2] != tf.release[:2]:
            self.add(at + ["tf_keras"],
                     f"tf-keras {version} does not match tensorflow {tf}; use a {tf.major}.{tf.minor}.x release")
            return False
        return True

    def fixtures(self, raw_fixtures: list, env_ids: list[str] | None) -> list[dict]:
        """The fixtures; `env_ids` are the declared envs resave may name (None: the environments section is
        itself wrong, so no name is checked)."""
        fixtures = []
        seen: set[str] = set()
        for i, raw in enumerate(raw_fixtures):
            at = ["fixtures", i]
            entry = {"name": raw} if isinstance(raw, str) else raw
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not _MODULE_NAME.match(name):
                continue
            if name in seen:
                self.add(at, f"fixture {name!r} is listed twice; list each fixture once")
                continue
            seen.add(name)
            atol = self.tolerance(entry.get("atol", DEFAULT_ATOL), at + ["atol"])
            rtol = self.tolerance(entry.get("rtol", DEFAULT_RTOL), at + ["rtol"])
            path = self.fixture_path(name, entry, at)
            if path is not None and self.check_fixture_files and not self.fixture_module(path, at):
                continue
            resave = self.resave(entry.get("resave", False), at + ["resave"], env_ids)
            if resave is None:
                continue
            if path is not None and atol is not None and rtol is not None:
                fixtures.append({"name": name, "path": path, "atol": atol, "rtol": rtol, "resave": resave})
        return fixtures

    def resave(self, value: Any, at: list, env_ids: list[str] | None) -> bool | list | None:
        """False, True (every env is an origin) or a list of the env ids that are; None if wrong."""
        if isinstance(value, bool):
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            unknown = [v for v in value if v not in env_ids] if env_ids is not None else []
            if unknown:
                self.add(at, f"unknown environment {unknown[0]!r}; choose from: {', '.join(env_ids or ())}")
                return None
            return value
        self.add(at, f"{value!r} is not true, false or a list of environment ids; write resave: true (every env "
                     "is an origin) or resave: [tf2.15]")
        return None

    def fixture_module(self, path: str, at: list) -> bool:
        """The module parses and defines build() and data(), found without importing it (nor TF)."""
        shown = os.path.relpath(path, self.base_dir) if path.startswith(self.base_dir) else path
        try:
            with open(path, "rb") as fh:
                tree = ast.parse(fh.read(), filename=shown)
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            self.add(at, f"{shown}{f' line {line}' if line else ''}: does not parse "
                         f"({getattr(exc, 'msg', None) or exc}); fix the module")
            return False
        except OSError as exc:
            self.add(at, f"{shown}: cannot read: {exc.strerror or exc}")
            return False
        defined = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                defined |= {t.id for t in targets if isinstance(t, ast.Name)}
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
        lacking = [f for f in ("build", "data") if f not in defined]
        if lacking:
            self.add(at, f"{shown} defines no {' and no '.join(f + '()' for f in lacking)}; a fixture module needs "
                         "build(ctx) and data(ctx) (see fixtures/README.md)")
            return False
        return True

    def fixture_path(self, name: str, entry: dict, at: list) -> str | None:
        if "path" in entry:
            given = entry["path"]
            if not isinstance(given, str) or not given:
                return None
            path = os.path.normpath(os.path.join(self.base_dir, os.path.expanduser(given)))
            if not path.endswith(".py"):
                self.add(at + ["path"], f"{given!r} is not a .py file; name the fixture module's file")
                return None
            if self.check_fixture_files and not os.path.isfile(path):
                self.add(at + ["path"],
                         f"{given!r} does not exist (a relative path starts at the matrix file's folder)")
                return None
            return path
        path = os.path.join(self.base_dir, "fixtures", f"{name}.py")
        if not os.path.isfile(path) and os.path.isfile(os.path.join(BUILTIN_FIXTURES, f"{name}.py")):
            path = os.path.join(BUILTIN_FIXTURES, f"{name}.py")
        if self.check_fixture_files and not os.path.isfile(path):
            found = set(_known_fixtures(self.base_dir)) | set(_known_fixtures(os.path.dirname(BUILTIN_FIXTURES)))
            known = ", ".join(sorted(found)) or "none"
            self.add(at, f"unknown fixture {name!r}: no fixtures/{name}.py; known: {known} (or give a path:)")
            return None
        return path

    def tolerance(self, value: Any, parts: list) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return None  # the schema reports it
        try:
            number = float(value)
        except ValueError:
            self.add(parts, f"{value!r} is not a number; use a non-negative number such as 1e-5")
            return None
        if not 0 <= number < float("inf"):
            self.add(parts, f"{value!r} is not allowed; use a non-negative finite number such as 1e-5")
            return None
        return number

    def rules(self, section: str, raw_rules: list, names: dict[str, list | None]) -> list[dict]:
        rules = []
        fields = {"producer": "environment", "consumer": "environment", "fixture": "fixture", "format": "format"}
        for i, raw in enumerate(raw_rules):
            if not isinstance(raw, dict):
                continue
            at = [section, i]
            ok = True
            for key, kind in fields.items():
                value = raw.get(key)
                listed = value if isinstance(value, list) else [value]
                known = names[kind]
                if known is None:
                    continue  # the section that declares them is wrong as a whole, and reported
                for j, one in enumerate(listed):
                    if isinstance(one, str) and one != WILDCARD and one not in known:
                        allowed = ", ".join(known)
                        where = at + [key] + ([j] if isinstance(value, list) else [])
                        self.add(where, f"unknown {kind} {one!r}{_suggest(one, known)}; "
                                        f"use \"*\", one of: {allowed}, or a list of them")
                        ok = False
            rule = dict(raw)
            if section == "expectations":
                outcome = raw.get("outcome")
                if isinstance(outcome, str) and outcome not in OUTCOMES:
                    self.add(at + ["outcome"], f"{outcome!r} is not an outcome; use one of: {', '.join(OUTCOMES)}")
                    ok = False
                expires = raw.get("expires")
                if isinstance(expires, str):
                    try:
                        rule["expires"] = datetime.date.fromisoformat(expires.strip()).isoformat()
                    except ValueError:
                        self.add(at + ["expires"], f"{expires!r} is not a date; use YYYY-MM-DD such as 2027-06-30")
                        ok = False
            if ok:
                rules.append(rule)
        return rules


def _known_fixtures(base_dir: str) -> list[str]:
    try:
        names = os.listdir(os.path.join(base_dir, "fixtures"))
    except OSError:
        return []
    return sorted(n[:-3] for n in names if n.endswith(".py") and not n.startswith("_"))


# A dash-separated part of a tox env name that tox takes as the interpreter (py312, 3.12, cpython3.12).
_TOX_PY_FACTOR = re.compile(r"(py|pypy|cpython|python|graalpy)?\d+(\.\d+)?t?")
