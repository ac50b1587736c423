"""Record warnings (Python warnings, logged warnings, TF's native log lines) and exceptions as data."""

from __future__ import absolute_import

import logging
import os
import re
import sys
import traceback
import warnings

# TF's C++ log lines stay in the worker log; these ones say the saved state was not all used, so
# they are attached to the attempt too.
KNOWN_NATIVE = re.compile(
    r"\buntracked\b|not restored|could not be found in the restored|Unresolved object|"
    r"[Ss]kipping (loading )?(of )?weights|were not (loaded|used)|Value in checkpoint", re.I)


DISK_FULL = 28  # the worker's exit code when a write found no space: the orchestrator stops the run


def disk_full(exc):
    """Whether an exception is a full disk (or quota, or file-size limit), however the library words it."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text or "File too large" in text


class Captured(object):
    """Context manager collecting the warnings raised inside it (every one, deduplicated).

    native=True also reads back what was written to fd 2 (the worker log) meanwhile, where TF's
    C++ runtime logs: the lines matching KNOWN_NATIVE are kept as warnings."""

    def __init__(self, native=False):
        self.messages = []
        self.native = native
        self._catch = None
        self._handler = None
        self._start = None

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
        if self.native:
            self._redirect()
        return self

    def _redirect(self):
        # fd 2 is the worker log (a file): note where this block starts, read it back at the end.
        # Nothing is redirected, so a crash mid-block still leaves every line in the log.
        try:
            sys.stderr.flush()
            self._start = os.lseek(2, 0, os.SEEK_END)
        except (OSError, ValueError):
            self._start = None

    def _restore(self):
        if self._start is None:
            return []
        try:
            sys.stderr.flush()
            with open("/proc/self/fd/2", "rb") as fh:
                fh.seek(self._start)
                text = fh.read(4 << 20).decode("utf-8", "replace")
        except (OSError, ValueError):
            return []
        return [line.strip() for line in text.splitlines() if KNOWN_NATIVE.search(line)]

    def __exit__(self, *exc):
        native = self._restore()
        logging.getLogger().removeHandler(self._handler)
        for w in self._records:
            self.messages.append("%s: %s" % (w.category.__name__, w.message))
        self._catch.__exit__(*exc)
        seen = []
        for m in self.messages + ["log: " + n for n in native]:
            m = m.strip()[:2000]
            if m and m not in seen:
                seen.append(m)
        self.messages = seen
        return False


def describe(exc):
    """Exception -> {error_type, message, traceback (last frames)}."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {
        "error_type": type(exc).__name__,
        "message": str(exc).strip()[:2000],
        "traceback": tb[-4000:],
    }
