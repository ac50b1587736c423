"""Reading a matrix file: bytes to plain values, bounded, never raising anything but ConfigError.

- only a regular file, at most MAX_BYTES, UTF-8 text (a UTF-8 BOM is allowed; UTF-16, NUL bytes and
  other binary are refused with what was found);
- YAML with the YAML 1.2 core scalars only: `yes`/`no`/`on`/`off` stay strings and `1:00` is not 60,
  so what the schema sees is what the user wrote; dates stay text (checked later);
- at most MAX_DEPTH levels of nesting and MAX_VALUES values once aliases are expanded (a 250-byte
  alias bomb would otherwise expand to gigabytes in whatever walks the result);
- a key given twice in one mapping is reported (PyYAML keeps the last silently);
- a file with no document (empty, only comments) and a null document (`~`) both parse to None with no
  problem: `holds_document` tells them apart for the message.
"""

from __future__ import annotations

import datetime
import os
import re
import stat
from typing import Any

import yaml

from .errors import ConfigError

MAX_BYTES = 1_000_000
MAX_DEPTH = 40
MAX_VALUES = 200_000


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars, a depth limit, and duplicate keys noted."""

    duplicates: list[str]
    depth = 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _TooDeep("line %d: nested more than %d levels deep" % (mark.line + 1, MAX_DEPTH))
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _TooDeep(Exception):
    pass


class _Cycle(Exception):
    pass


# YAML 1.2 core schema: true/false, null, base-10/0o/0x ints, floats (with .inf/.nan); no 1.1 extras.
_Loader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in (
        ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
        ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
        ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
        ("tag:yaml.org,2002:float",
         r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
         "-+0123456789."),
        ("tag:yaml.org,2002:merge", r"^(?:<<)$", ["<"])):
    _Loader.add_implicit_resolver(_tag, re.compile(_regexp), list(_first))


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    return int(text, 0) if text.startswith(("0o", "0x")) else int(text)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in seen:
                line = key_node.start_mark.line + 1
                loader.duplicates.append(f"line {line}: key {key!r} appears twice in one mapping")
            seen.add(key)
        except TypeError:  # an unhashable key; construct_mapping reports it
            pass
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_text(path: str, display: str) -> str:
    """The file's text, or ConfigError naming what it is instead."""
    if not path:
        raise ConfigError(["--matrix: an empty path; give a matrix file (e.g. matrix.yaml)"])
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigError([f"{display}: cannot read: {exc.strerror or exc}"]) from None
    if not stat.S_ISREG(info.st_mode):
        what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a FIFO, socket or device)"
        raise ConfigError([f"{display}: {what}; give a matrix file"])
    if info.st_size > MAX_BYTES:
        raise ConfigError([f"{display}: {info.st_size} bytes; a matrix file is at most {MAX_BYTES} bytes"])
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{display}: cannot read: {exc.strerror or exc}"]) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError([f"{display}: UTF-16 text; save it as UTF-8"])
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ConfigError([f"{display}: a NUL byte at offset {nul}: this is not a text file; a matrix is UTF-8 "
                           "YAML text"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{display}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                           "save it as UTF-8"]) from None
    return text


def parse_yaml(text: str) -> tuple[Any, list[str]]:
    """(data, problems): the YAML document as plain values, or None and one line per problem."""
    loader = _Loader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except _TooDeep as exc:
        return None, [f"{exc}; a matrix needs a few levels"]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, [f"{where}not valid YAML: {problem}"]
    except (RecursionError, ValueError, OverflowError) as exc:
        return None, [f"not valid YAML: {type(exc).__name__}: {str(exc)[:200]}"]
    finally:
        loader.dispose()
    problems = [f"{d}; give each key once" for d in loader.duplicates]
    try:
        size = _expanded_size(data, {})
    except _Cycle:
        return None, problems + ["an alias refers to the value that holds it (a cycle); write the values out"]
    if size > MAX_VALUES:
        return None, problems + [f"expands to more than {MAX_VALUES} values (YAML aliases repeat what they point "
                                 "to); write the values out"]
    return jsonable(data), problems


def holds_document(text: str) -> bool:
    """Whether YAML text that parsed to None holds a document (`~`, `null`, a bare `---`) or none at all
    (empty, only comments and blank lines)."""
    loader = _Loader(text)
    try:
        return bool(loader.check_node())
    except yaml.YAMLError:
        return True
    finally:
        loader.dispose()


def _expanded_size(value: Any, memo: dict) -> int:
    """Values the document holds once every alias is expanded (shared objects counted each time)."""
    if isinstance(value, (dict, list)):
        key = id(value)
        if memo.get(key) == -1:
            raise _Cycle()
        if key not in memo:
            memo[key] = -1
            items = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
            total = 1
            for k, v in items:
                total += _expanded_size(v, memo) + (1 if k is not None else 0)
                if total > MAX_VALUES:
                    break
            memo[key] = total
        return memo[key]
    return 1


def jsonable(value: Any) -> Any:
    """YAML values as JSON types (string keys, dates as ISO text) for the schema."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value
