"""The results record: one JSON object per check in results.jsonl, with a schema version."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

from . import outcomes

SCHEMA_VERSION = 3  # 3: backends and network per record

# The outcome table lives in harness/outcomes.py; these names are kept for the modules that read them.
VERDICTS = outcomes.VERDICTS
NON_VERDICTS = outcomes.NON_VERDICTS
OUTCOMES = outcomes.OUTCOMES
severity = outcomes.severity
is_verdict = outcomes.is_verdict


def append(path: str, records: Iterable[dict]) -> None:
    """Append records durably: one line each, flushed and fsynced."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torn = _ends_torn(path)
    with open(path, "a", encoding="utf-8") as fh:
        if torn:
            fh.write("\n")  # a killed writer's half line stays alone (and is skipped), never glued to ours
        for rec in records:
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _ends_torn(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:  # missing or empty
        return False


def write_json(path: str, data, **dump: Any) -> None:
    """Write `data` as JSON atomically (a temp file, then a rename): a reader never sees half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as fh:
        json.dump(data, fh, **dump)
    os.replace(tmp, path)


def read_json_dir(folder: str) -> Iterator[tuple[str, Any]]:
    """(file name without .json, data) for each JSON file in `folder`, by name; unreadable ones skipped."""
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(folder, name)) as fh:
                yield name[:-5], json.load(fh)
        except (OSError, ValueError):
            continue


def read(path: str) -> Iterator[dict]:
    """Yield the records of a JSON Lines file; a torn last line (killed writer) is skipped."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
