"""`tfcompat envs [--prune]`: the environments every backend holds, and whether the matrix still
asks for them as built."""

from __future__ import annotations

import os

from .backends import BACKENDS
from .backends.base import Where
from .errors import BackendUnavailable, TfcompatError
from .matrix import EnvSpec, Matrix, load_matrix, profile_paths

PRUNED = ("stale", "unused")


def known_specs(matrix: Matrix, root: str) -> dict[str, EnvSpec]:
    """Env id -> spec over the loaded matrix and every profile beside it (an env any of them names
    is in use)."""
    specs = {e.id: e for e in _envs_of(matrix)}
    for path in profile_paths(root).values():
        if os.path.abspath(path) == matrix.path:
            continue
        try:
            other = load_matrix(path, check_fixture_files=False)
        except TfcompatError:
            continue
        for e in _envs_of(other):
            specs.setdefault(e.id, e)
    return specs


def _envs_of(matrix: Matrix) -> list[EnvSpec]:
    return matrix.environments + ([matrix.converter] if matrix.converter else [])


def envs(matrix: Matrix, root: str, state_dir: str, prune: bool, say=print) -> int:
    """Print one line per env (backend, id, state, where); with `prune`, remove the stale and unused."""
    from .runner import project_root

    where = Where(project_root(matrix.path), state_dir, os.path.join(state_dir, "logs"), matrix.path)
    specs = known_specs(matrix, root)
    rows = []
    for cls in BACKENDS.values():
        try:
            rows += cls.listing(where, specs)
        except BackendUnavailable as exc:
            say("tfcompat: %s (its environments are not listed)" % exc)
    for row in rows:
        say("%-7s %-22s %-10s %s" % (row["backend"], row["id"], row["state"], row["where"]))
    counts = {s: sum(1 for r in rows if r["state"] == s) for s in ("current", "stale", "unused", "unrecorded")}
    say("%d environment(s): %s" % (len(rows), ", ".join("%d %s" % (n, s) for s, n in counts.items() if n) or "none"))
    if prune:
        gone = [r for r in rows if r["state"] in PRUNED]
        for row in gone:
            BACKENDS[row["backend"]].remove(where, row)
            say("removed %s %s (%s)" % (row["backend"], row["where"], row["state"]))
        say("pruned %d environment(s)" % len(gone))
    return 0
