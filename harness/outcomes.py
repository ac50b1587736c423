"""The one outcome table: every output (the verdict, the grid and its summary, JUnit, readiness, the
baseline diff, the cache, the matrix schema) reads its facts about outcomes from here.

A verdict has a severity (0 is best); the others are not verdicts: they count neither in pass rates
nor as regressions, and a verdict that becomes one of them is coverage lost. `passing` says the
model is usable as it stands (a JUnit pass, "usable" in the summary); `cacheable` says a cell with
this outcome may be answered from the cache (a deterministic result of the artifact and the env);
`graded` says the cell's rung and lost properties are what a user gets from it (a less invasive
rung, fewer lost properties are better: the baseline diff compares them), where for the other
outcomes they only say where the ladder failed.
Whether a *remedy* keeps the user on Keras 2 is the remedies table's (`worker/remedies.py`,
`keras2`): a cell usable only through one is never usable on Keras 3 (`usable`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .worker.remedies import BY_NAME, parts


@dataclass(frozen=True)
class Outcome:
    name: str
    code: str  # the grid's text code beside the colour
    meaning: str
    severity: int | None  # verdicts: 0 (best) to 6 (worst); None: not a verdict
    passing: bool  # usable as it stands: a JUnit pass, "usable" in the summary
    cacheable: bool  # a cell with it may be answered from the cache
    graded: bool = False  # its rung and lost properties are what the user gets (compared by the diff)

    @property
    def verdict(self) -> bool:
        return self.severity is not None


TABLE = (
    Outcome("pass", "P", "loads with the canonical loader, no help needed; predictions (and state, where "
            "checked) match", 0, True, True, graded=True),
    Outcome("pass-with-remedy", "P+R", "passes only with a remedy users apply (custom objects, compile=False, "
            "...); the cell names it", 1, True, True, graded=True),
    Outcome("degraded", "DEG", "loads, but a promised property was lost (or only a remedy that loses one "
            "worked)", 2, False, True, graded=True),
    Outcome("load-error", "LOAD", "does not load, with or without remedies", 3, False, True),
    # A crash or hang may be flaky: the cell runs again next time.
    Outcome("crash", "CRASH", "the process died while loading or checking", 4, False, False),
    Outcome("timeout", "T/O", "the check hung and was stopped", 5, False, False),
    Outcome("wrong-output", "WRONG", "loads but predicts differently: silent corruption, the worst", 6, False, True),
    Outcome("save-error", "SAVE", "the producer could not save this artifact (shown once, across the producer "
            "row)", None, False, False),
    # Decided when the record is assembled (declared table, exclusions), never remembered as a verdict.
    Outcome("not-applicable", "n/a", "the format does not apply to this Keras version (declared table), or "
            "the matrix excludes the cell; its reason and source are in the details (not a verdict)",
            None, False, False),
    Outcome("env-error", "ENV", "the environment could not be built or import TensorFlow (not a verdict)",
            None, False, False),
    Outcome("harness-error", "HARN", "a defect of the harness itself (a failed honesty check or "
            "precondition): the result is not trusted, not a verdict, and the run fails", None, False, False),
)

BY_OUTCOME = {o.name: o for o in TABLE}
OUTCOMES = [o.name for o in TABLE]
VERDICTS = [o.name for o in sorted((o for o in TABLE if o.verdict), key=lambda o: o.severity or 0)]
NON_VERDICTS = [o.name for o in TABLE if not o.verdict]
CODES = {o.name: o.code for o in TABLE}
MEANINGS = {o.name: o.meaning for o in TABLE}
PASSING = tuple(o.name for o in TABLE if o.passing)
CACHEABLE = frozenset(o.name for o in TABLE if o.cacheable)
GRADED = frozenset(o.name for o in TABLE if o.graded)


def severity(outcome: str) -> int:
    """Rank of a verdict (higher is worse); non-verdicts (and unknown names) rank -1."""
    o = BY_OUTCOME.get(outcome)
    return o.severity if o is not None and o.severity is not None else -1


def is_verdict(outcome: str) -> bool:
    o = BY_OUTCOME.get(outcome)
    return o is not None and o.verdict


def keras2_only(remedy: str | None) -> bool:
    """Whether the rung keeps the user on Keras 2 (the legacy tf_keras): not a move to Keras 3."""
    return any(BY_NAME[p].keras2 for p in parts(remedy) if p in BY_NAME)


def usable(outcome: str, remedy: str | None) -> bool:
    """A passing outcome through a rung that does not keep the user on Keras 2."""
    o = BY_OUTCOME.get(outcome)
    return o is not None and o.passing and not keras2_only(remedy)


def invasiveness(remedy: str | None) -> tuple[int, ...]:
    """A total order on rungs: the table indices of its remedies, most invasive first; compared as
    tuples, a more invasive remedy or one more remedy on top of the same ones is larger."""
    order = list(BY_NAME)
    return tuple(sorted((order.index(p) for p in parts(remedy) if p in BY_NAME), reverse=True))
