"""tox inline plugin: one tox env per environment in matrix.yaml.

`tox l` lists them, `tox -e tf2.15` builds that env and prints its versions,
`tox -e tf2.15 -- python -c '...'` runs anything in it. The harness's tox
backend builds envs the same way (`tox run -e <id> --notest`).

Hooks (tox >= 4.29): `tox_extend_envs` declares the env names, and
`tox_add_core_config` seeds each one's configuration through
`state.conf.memory_seed_loaders[<name>]`, which tox puts in front of tox.ini
when it builds that env's config. Keys not set here (commands, pass_env)
come from tox.ini's [testenv].

The matrix file is $TFCOMPAT_MATRIX if set, else matrix.yaml next to this file plus every
profile in profiles/*.yaml (an id shared by two files must mean the same env).
A broken matrix or a missing interpreter prints one line and generates no env
for it; it never breaks tox for the other envs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import tox.plugin.spec
from tox.config.loader.memory import MemoryLoader
from tox.plugin import impl
from tox.tox_env.python.pip.req_file import PythonDeps

if TYPE_CHECKING:
    from tox.config.sets import ConfigSet
    from tox.session.state import State

HERE = Path(__file__).resolve().parent

LABEL = "tfcompat-envs"
_planned: list[tuple[object, str]] | None = None  # [(EnvSpec, absolute python path)]


def _say(message: str) -> None:
    print(f"tfcompat: {message}", file=sys.stderr)


def _plan() -> list[tuple[object, str]]:
    """The envs to generate, each with its interpreter; loaded once per tox process."""
    global _planned
    if _planned is not None:
        return _planned
    _planned = []
    # tox puts this folder on sys.path only while it imports toxfile.py, so
    # add it again here, where harness is imported.
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    try:
        from harness.errors import TfcompatError
        from harness.interpreters import find_python
        from harness.matrix import load_matrix, profile_paths
    except ImportError as exc:
        # Before provisioning, tox's own Python may lack pyyaml/jsonschema/packaging;
        # tox.ini's `requires` then provisions them and reruns tox, which loads fine.
        _say(f"matrix envs not generated: {exc} (tox provisions it from tox.ini `requires`)")
        return _planned
    configured = os.environ.get("TFCOMPAT_MATRIX")
    paths = [Path(configured).resolve()] if configured else [Path(p) for p in profile_paths(str(HERE)).values()]
    seen: dict[str, object] = {}
    for path in paths:
        if not path.is_file():
            continue
        try:
            # Fixture files do not affect an environment, so a missing one must
            # not stop anyone from building or debugging an env.
            matrix = load_matrix(str(path), check_fixture_files=False)
        except TfcompatError as exc:
            lines = str(exc).splitlines() or ["invalid matrix"]
            more = f" (+{len(lines) - 1} more; `python -m harness plan` lists all)" if len(lines) > 1 else ""
            _say(f"envs of {path.name} not generated: {lines[0]}{more}")
            continue
        # A TF.js env is an npm folder, not a virtualenv (harness/backends/node.py); the converter
        # env is a Python env like the others.
        specs = [e for e in matrix.environments if e.kind != "tfjs"] + ([matrix.converter] if matrix.converter else [])
        for spec in specs:
            if spec.id in seen:
                if seen[spec.id] != spec:
                    _say(f"env {spec.id} of {path.name} not generated: another matrix file defines "
                         f"{spec.id} differently; give it its own id")
                continue
            seen[spec.id] = spec
            try:
                _planned.append((spec, find_python(spec.python)))
            except TfcompatError as exc:
                _say(f"env {spec.id} not generated: {exc}")
    return _planned


if hasattr(tox.plugin.spec, "tox_extend_envs"):
    # Older tox has no such hook and would reject the whole toxfile; it then
    # provisions a newer tox from tox.ini `requires`, which gets here.

    @impl
    def tox_extend_envs() -> Iterable[str]:
        return tuple(spec.id for spec, _ in _plan())


@impl
def tox_add_core_config(core_conf: ConfigSet, state: State) -> None:
    root = Path(core_conf["tox_root"])
    for spec, python in _plan():
        state.conf.memory_seed_loaders[spec.id].append(
            MemoryLoader(
                description=f"tfcompat matrix env: {spec.describe()}",
                base_python=[python],
                deps=PythonDeps(spec.requirements(), root=root),
                set_env=dict(spec.env_vars()),
                skip_install=True,
                package="skip",
                labels=[LABEL],
            )
        )
