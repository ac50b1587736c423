"""What a run shows while it works: a live display on a terminal (rich), plain lines elsewhere.

Per env and phase a task counts items done (from the worker's journal) against items to do, with
the elapsed time and an ETA. The ETA starts from the env's recorded cost per item (harness/costs.py)
and leans on the rate seen in this run as items finish; an env never timed gets rich's own estimate
from the rate seen so far. Not a TTY, or under CI (`CI` set): the plain `tfcompat: ...` lines only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

Advance = Callable[[str], None]


class Lines:
    """Plain lines: what a log file or a CI console should get."""

    shows_eta = False  # tasks' recorded per-item costs are not shown

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say

    def say(self, line: str) -> None:
        self._say(line)

    def task(self, env: str, phase: str, total: int, per_item: float | None = None) -> Advance:
        """A callback to call with each item key done; `per_item`: the recorded seconds per item, if
        any. Plain lines say nothing per item."""
        return lambda key: None

    def close(self) -> None:
        pass


class Live(Lines):
    """rich.progress on the terminal; lines are printed above the bars."""

    shows_eta = True

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
                                 TimeElapsedColumn(), _eta_column(TimeRemainingColumn()), transient=False)
        self.progress.start()
        super().__init__(lambda line: self.progress.console.print("tfcompat: " + line, highlight=False))

    def task(self, env: str, phase: str, total: int, per_item: float | None = None) -> Advance:
        task = self.progress.add_task("%s %s" % (env, phase), total=total, per_item=per_item)
        return lambda key: self.progress.advance(task)

    def close(self) -> None:
        self.progress.stop()


def remaining(total: float, done: float, elapsed: float, per_item: float) -> float:
    """Seconds left: the recorded rate at first, the observed one more and more as items finish."""
    if total <= 0 or done >= total:
        return 0.0
    rate = per_item
    if done > 0:
        weight = done / total
        rate = (1 - weight) * per_item + weight * (elapsed / done)
    return (total - done) * rate


def _eta_column(fallback):
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Eta(ProgressColumn):
        """`~M:SS left (recorded)` from the recorded cost; rich's rate-based estimate without one."""

        def render(self, task):
            per_item = task.fields.get("per_item")
            if per_item is None or task.finished or task.total is None:
                return fallback.render(task)
            left = int(round(remaining(task.total, task.completed, task.elapsed or 0.0, per_item)))
            return Text("~%d:%02d left (recorded)" % divmod(left, 60), style="progress.remaining")

    return Eta()


def make(say: Callable[[str], None], stream=None) -> Lines:
    """Live on an interactive terminal outside CI, else plain lines through `say`."""
    stream = stream or sys.stdout
    if os.environ.get("CI") or not getattr(stream, "isatty", lambda: False)() or os.environ.get("TERM") == "dumb":
        return Lines(say)
    return Live()
