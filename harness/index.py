"""Release lists from the configured package index, for version ranges in matrix.yaml.

Uses the PEP 691 JSON simple API of $PIP_INDEX_URL / $UV_INDEX_URL (default PyPI), with the
machine's CA bundle, and caches answers for a few hours under ~/.cache/tfcompat.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import time
import urllib.request
from functools import cache

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from harness.errors import ConfigError

CACHE_TTL_S = 6 * 3600
_FILE_VERSION = re.compile(r"^[A-Za-z0-9_.]+?-(\d[^-]*?)(?:-|\.tar\.gz$|\.zip$)")


def index_url() -> str:
    for var in ("TFCOMPAT_INDEX_URL", "UV_INDEX_URL", "PIP_INDEX_URL"):
        if os.environ.get(var):
            return os.environ[var].rstrip("/")
    return "https://pypi.org/simple"


def _cache_path(package: str) -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tfcompat", "index", "%s.json" % canonicalize_name(package))


def releases(package: str) -> tuple[str, ...]:
    """Every final release of `package` the index offers a file for, oldest first."""
    return tuple(_listing(package)["versions"])


def pythons(package: str, version: str) -> list[str] | None:
    """The Pythons ("3.11") a release has CPython wheels for; None when one of its files fits any
    Python (a pure wheel or an sdist) or the release is unknown."""
    tags = _listing(package).get("pythons", {}).get(version)
    return None if tags is None or "any" in tags else sorted(tags, key=lambda t: tuple(map(int, t.split("."))))


def forget() -> None:
    """Drop this process's memo of index answers (tests point the index elsewhere)."""
    _listing.cache_clear()


def _python_tags(filename: str) -> set[str]:
    """{"3.11", ...} of a wheel's CPython tags, {"any"} for a pure wheel or an sdist."""
    if not filename.endswith(".whl"):
        return {"any"}
    parts = filename[:-4].split("-")
    if len(parts) < 5:
        return {"any"}
    out = set()
    for tag in parts[-3].split("."):
        m = re.fullmatch(r"cp(\d)(\d+)", tag)
        if m:
            out.add("%s.%s" % (m.group(1), m.group(2)))
        elif tag.startswith("py"):
            return {"any"}
    return out or {"any"}


@cache
def _listing(package: str) -> dict:
    url = "%s/%s/" % (index_url(), canonicalize_name(package))
    cache = _cache_path(package)
    try:
        with open(cache) as fh:
            data = json.load(fh)
        if data.get("url") == url and time.time() - data.get("t", 0) < CACHE_TTL_S and "pythons" in data:
            return data
    except (OSError, ValueError):
        pass
    req = urllib.request.Request(url, headers={
        "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"})
    ctx = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or None)
    try:
        with urllib.request.urlopen(req, timeout=60, context=ctx) as resp:
            body = resp.read().decode("utf-8", "replace")
            kind = resp.headers.get("Content-Type", "")
        if "json" in kind:
            files = json.loads(body).get("files", [])
        else:  # PEP 503 HTML: one anchor per file
            files = [{"filename": name, "yanked": "data-yanked" in attrs}
                     for attrs, name in re.findall(r"<a([^>]*)>([^<]+)</a>", body)]
    except (OSError, ValueError) as exc:
        raise ConfigError(["%s: cannot list releases of %s from the package index (%s); "
                           "use exact versions or set PIP_INDEX_URL" % (url, package, exc)]) from exc
    found: dict = {}
    for f in files:
        if f.get("yanked"):
            continue
        m = _FILE_VERSION.match(f.get("filename", ""))
        if not m:
            continue
        try:
            v = Version(m.group(1))
        except InvalidVersion:
            continue
        if not v.is_prerelease and not v.is_devrelease:
            found.setdefault(v, set()).update(_python_tags(f.get("filename", "")))
    data = {"url": url, "t": time.time(), "versions": [str(v) for v in sorted(found)],
            "pythons": {str(v): sorted(tags) for v, tags in found.items()}}
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        with open(cache, "w") as fh:
            json.dump(data, fh)
    except OSError:
        pass
    return data


def latest_patch_per_minor(available: tuple[str, ...] | list[str], spec: str) -> list[str]:
    """The newest patch of every major.minor whose versions fall in `spec`, oldest minor first."""
    wanted = SpecifierSet(spec)
    best: dict[tuple[int, int], Version] = {}
    for text in available:
        v = Version(text)
        if v in wanted:
            key = (v.major, v.minor)
            if key not in best or v > best[key]:
                best[key] = v
    return [str(best[k]) for k in sorted(best)]
