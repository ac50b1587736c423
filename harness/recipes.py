"""Install recipes: the pins old TensorFlow needs to install and import today, as data.

`harness/recipes.yaml` holds rules keyed by version ranges (PEP 440 specifiers) of tensorflow,
python and keras. Every matching rule's pins are applied to an environment, under the matrix's own
pins (`defaults.pins`, then the env's `pins`, win). Each rule carries why and its evidence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from harness.errors import ConfigError

RECIPES_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recipes.yaml")
WHEN_KEYS = ("tensorflow", "python", "keras", "flavour")
FLAVOURS = ("bundled", "tf-keras", "keras3")


@dataclass(frozen=True)
class Rule:
    """Pins to apply when every condition in `when` holds."""

    id: str
    when: dict = field(default_factory=dict)  # key -> SpecifierSet (flavour -> str)
    pins: dict = field(default_factory=dict)  # package -> pip specifier
    why: str = ""
    evidence: str = ""

    def matches(self, tensorflow: str, python: str, keras: str) -> bool:
        flavour = keras if keras in ("bundled", "tf-keras") else "keras3"
        for key, cond in self.when.items():
            if key == "flavour":
                if flavour != cond:
                    return False
                continue
            value = {"tensorflow": tensorflow, "python": python, "keras": keras}[key]
            try:
                if Version(value) not in cond:
                    return False
            except InvalidVersion:  # e.g. keras: bundled has no version to compare
                return False
        return True


@cache
def _table(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


@cache
def load_rules(path: str = RECIPES_PATH) -> tuple[Rule, ...]:
    """The rules table; a malformed rule is a ConfigError naming the file and the key."""
    problems, rules = [], []
    for i, raw in enumerate(_table(path).get("rules") or []):
        at = "%s: rules[%d]" % (os.path.basename(path), i)
        if not isinstance(raw, dict) or not raw.get("id") or not raw.get("why") or not raw.get("evidence"):
            problems.append("%s: every rule needs id, why and evidence" % at)
            continue
        when = {}
        for key, value in (raw.get("when") or {}).items():
            if key not in WHEN_KEYS:
                problems.append("%s.when.%s: unknown key; use %s" % (at, key, ", ".join(WHEN_KEYS)))
            elif key == "flavour":
                if value not in FLAVOURS:
                    problems.append("%s.when.flavour: %r; use one of %s" % (at, value, ", ".join(FLAVOURS)))
                when[key] = value
            else:
                try:
                    when[key] = SpecifierSet(str(value))
                except InvalidSpecifier:
                    problems.append("%s.when.%s: %r is not a version specifier such as '<2.9'" % (at, key, value))
        pins = {}
        for name, spec in (raw.get("pins") or {}).items():
            spec = str(spec)
            try:
                SpecifierSet(spec)
            except InvalidSpecifier:
                problems.append("%s.pins.%s: %r is not a pip specifier such as '<3.20'" % (at, name, spec))
            pins[name] = spec
        rules.append(Rule(str(raw["id"]), when, pins, str(raw["why"]).strip(), str(raw["evidence"]).strip()))
    if problems:
        raise ConfigError(problems)
    return tuple(rules)


def pins_for(tensorflow: str, python: str, keras: str, rules: tuple[Rule, ...] | None = None) -> tuple[dict, list[str]]:
    """(pins, ids of the rules applied) for an environment; later rules win on the same package."""
    pins, applied = {}, []
    for rule in load_rules() if rules is None else rules:
        if rule.matches(tensorflow, python, keras):
            pins.update(rule.pins)
            applied.append(rule.id)
    return pins, applied


@cache
def _pythons(path: str = RECIPES_PATH) -> tuple[tuple[SpecifierSet, str], ...]:
    return tuple((SpecifierSet(str(row["tensorflow"])), str(row["python"]))
                 for row in _table(path).get("pythons") or [])


def python_for(tensorflow: str) -> str | None:
    """The Python `python: auto` means for this TF (harness/recipes.yaml `pythons`), or None."""
    for spec, python in _pythons():
        if Version(tensorflow) in spec:
            return python
    return None
