"""Backends make an environment and say how to run Python in it. Registry: name -> class."""

from __future__ import annotations

from .base import Backend
from .docker import DockerBackend
from .node import NodeBackend
from .tox import ToxBackend

BACKENDS: dict[str, type[Backend]] = {ToxBackend.name: ToxBackend, DockerBackend.name: DockerBackend,
                                      NodeBackend.name: NodeBackend}


def get_backend(name: str) -> type[Backend]:
    from ..errors import ConfigError

    if name not in BACKENDS:
        raise ConfigError(["--backend: unknown backend %r; choose one of: %s" % (name, ", ".join(sorted(BACKENDS)))])
    return BACKENDS[name]
