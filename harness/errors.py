"""The exception vocabulary: every handled error is one line for the user and an exit code."""

from __future__ import annotations


class TfcompatError(Exception):
    """A handled error: printed as one line (no traceback), the process exits with `exit_code`."""

    exit_code = 1


class ConfigError(TfcompatError):
    """matrix.yaml (or a CLI selection) is wrong. Each problem is one line: file, key, what, allowed."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class EnvError(TfcompatError):
    """An environment could not be created or cannot import TensorFlow."""


class InterpreterNotFound(EnvError):
    """No interpreter for a requested Python version."""


class BackendUnavailable(TfcompatError):
    """A backend's engine cannot be reached (no daemon, no socket): nothing was started."""

    exit_code = 2


class MissingResults(TfcompatError):
    """A command that reads a stored run found no run, or no cell it needs: nothing to answer from."""

    exit_code = 2
