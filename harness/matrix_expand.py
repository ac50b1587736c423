"""The matrix's job that needs the package index: version ranges expanded into one env per minor
(latest patch), and exact versions checked to exist. Problems go to `add(key path, message)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from harness.errors import ConfigError
from harness.index import latest_patch_per_minor, pythons, releases


def expand(i: int, raw: dict, add: Callable) -> list[dict]:
    """A version-range entry -> one entry per minor (latest patch), resolved on the index."""
    # As read from YAML: any type; only strings are ranges.
    tf: Any = raw.get("tensorflow")
    keras: Any = raw.get("keras")
    tf_range, keras_range = _is_range(tf), _is_range(keras)
    if not (tf_range or keras_range):
        return [raw]
    at = ["environments", i]
    env_id = raw.get("id")
    if not isinstance(env_id, str):
        env_id = ""
    ok = True
    for is_range, key, value in ((tf_range, "tensorflow", tf), (keras_range, "keras", keras)):
        if not is_range or value == LATEST:
            continue
        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            add(at + [key], f"{value!r} is neither a version nor a range; "
                                 "use 2.15.1, a range such as \">=2.12\", or latest")
            ok = False
        if "{%s}" % key not in env_id:
            add(at + ["id"], f"a {key} range needs {{{key}}} in the id, e.g. \"tf{{tensorflow}}\"")
            ok = False
    if not ok:
        return []
    tfs = _resolve("tensorflow", tf) if tf_range else [tf]
    kerases = _resolve("keras", keras) if keras_range else [keras]
    if not tfs or not kerases:
        add(at, f"the range matches no release on the package index ({tf}, {keras})")
        return []
    out = []
    for t in tfs:
        for k in kerases:
            entry = dict(raw, tensorflow=t, keras=k)
            entry["id"] = env_id.replace("{tensorflow}", _minor(t)).replace("{keras}", _minor(k))
            if raw.get("tf_keras") == "match":
                matching = latest_patch_per_minor(releases("tf-keras"), "==%s.*" % _minor(t))
                if not matching:
                    add(at + ["tf_keras"], f"no tf-keras release matches tensorflow {t}")
                    continue
                entry["tf_keras"] = matching[-1]
            out.append(entry)
    return out


def released(package: str, version: Version, parts: list, add: Callable, unverified: set) -> bool:
    """Whether the package index has this release (nearest ones suggested when not). An index that
    cannot be reached leaves it unverified: offline use goes on."""
    try:
        known = releases(package)
    except ConfigError:
        unverified.add(package)
        return True
    if str(version) in known:
        return True
    near = sorted(known, key=lambda v: _distance(Version(v), version))[:3]
    add(parts, f"{version} is not a {package} release on the package index"
                    + (f"; the nearest: {', '.join(sorted(near, key=Version))}" if near else ""))
    return False


def wheel_for(package: str, version: str, python: str, parts: list, add: Callable) -> bool:
    """Whether the release has a wheel for this Python (pip could not install it otherwise); an
    index that cannot be reached leaves it unchecked, as `released` does."""
    try:
        have = pythons(package, version)
    except ConfigError:
        return True
    if have is None or python in have:
        return True
    add(parts, f"{package} {version} has no wheel for Python {python} (it has: {', '.join(have)}); "
               f"set python to one of those, or auto")
    return False


def _distance(a: Version, b: Version) -> tuple:
    x, y = (tuple(a.release) + (0, 0, 0))[:3], (tuple(b.release) + (0, 0, 0))[:3]
    return tuple(abs(i - j) for i, j in zip(x, y))


# `latest`: the newest release on the index when planning (for keras, the newest Keras 3).
LATEST = "latest"


def _is_range(value: Any) -> bool:
    return isinstance(value, str) and (value == LATEST or value.strip()[:1] in ("<", ">", "=", "!", "~"))


def _resolve(package: str, value: str) -> list[str]:
    if value == LATEST:
        return latest_patch_per_minor(releases(package), ">=3" if package == "keras" else ">=0")[-1:]
    return latest_patch_per_minor(releases(package), value)


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])
