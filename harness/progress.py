"""What a run shows while it works: a live display on a terminal (rich), plain lines elsewhere.

Per env and phase a task counts items done (from the worker's journal) against items to do; rich's
columns add elapsed time and the time remaining at the rate seen so far. Not a TTY, or under CI
(`CI` set): the plain `tfcompat: ...` lines only, as before.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

Advance = Callable[[str], None]


class Lines:
    """Plain lines: what a log file or a CI console should get."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say

    def say(self, line: str) -> None:
        self._say(line)

    def task(self, env: str, phase: str, total: int) -> Advance:
        """A callback to call with each item key done; plain lines say nothing per item."""
        return lambda key: None

    def close(self) -> None:
        pass


class Live(Lines):
    """rich.progress on the terminal; lines are printed above the bars."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
        self.progress.start()
        super().__init__(lambda line: self.progress.console.print("tfcompat: " + line, highlight=False))

    def task(self, env: str, phase: str, total: int) -> Advance:
        task = self.progress.add_task("%s %s" % (env, phase), total=total)
        return lambda key: self.progress.advance(task)

    def close(self) -> None:
        self.progress.stop()


def make(say: Callable[[str], None], stream=None) -> Lines:
    """Live on an interactive terminal outside CI, else plain lines through `say`."""
    stream = stream or sys.stdout
    if os.environ.get("CI") or not getattr(stream, "isatty", lambda: False)() or os.environ.get("TERM") == "dumb":
        return Lines(say)
    return Live()
