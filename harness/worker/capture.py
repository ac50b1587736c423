"""Record warnings (Python warnings and logged warnings) and exceptions as plain data."""

from __future__ import absolute_import

import logging
import traceback
import warnings


class Captured(object):
    """Context manager collecting warnings raised inside it."""

    def __init__(self):
        self.messages = []
        self._catch = None
        self._handler = None

    def __enter__(self):
        self._catch = warnings.catch_warnings(record=True)
        self._records = self._catch.__enter__()
        warnings.simplefilter("always")
        outer = self

        class _Handler(logging.Handler):
            def emit(self, record):
                try:
                    outer.messages.append("%s: %s" % (record.name, record.getMessage()))
                except Exception:
                    pass

        self._handler = _Handler(level=logging.WARNING)
        logging.getLogger().addHandler(self._handler)
        return self

    def __exit__(self, *exc):
        logging.getLogger().removeHandler(self._handler)
        for w in self._records:
            self.messages.append("%s: %s" % (w.category.__name__, w.message))
        self._catch.__exit__(*exc)
        seen = []
        for m in self.messages:
            m = m.strip()[:500]
            if m and m not in seen:
                seen.append(m)
        self.messages = seen[:20]
        return False


def describe(exc):
    """Exception -> {error_type, message, traceback (last frames)}."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {
        "error_type": type(exc).__name__,
        "message": str(exc).strip()[:2000],
        "traceback": tb[-4000:],
    }
