"""Defaults of the matrix model, read by the model (harness/matrix.py) and by the checks."""

from __future__ import annotations

from harness.worker.formats import FORMATS

KNOWN_FORMATS = list(FORMATS)  # the worker declares the formats; config accepts exactly those
TFJS_FORMATS = tuple(f for f, (_, _, loader) in FORMATS.items() if loader == "tfjs")  # made by the converter env
DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-5
DEFAULT_CHECK_TIMEOUT = 300.0
WILDCARD = "*"
RESAVED = "~"  # a re-save variant's name: <fixture>~<origin env>
