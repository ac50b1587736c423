"""What an env's work costs, learnt from the runs that timed it: seconds per work item.

Every run records, per env, each phase's wall time and how many items it ran (run.json, the
segments' `env_timings`: `save_s`/`save_n`, `check_plain_s`/`check_plain_n`, `check_remedies_s`/
`check_remedies_n`, `check_n` for every check item, `create_s`). The newest record of an env gives
its rates. Records written before the counts existed count the run's whole selection (fixtures x
formats saved, envs x fixtures x formats checked). An env never timed takes the median rate of the
timed envs of its Keras flavour (Keras 3 checks cost more: its remedy ladder is longer), else of
all; its estimates say `recorded: False`.
Shard plans balance and predict with these, and the live display's ETA counts down with them.
"""

from __future__ import annotations

import glob
import json
import os
import statistics
from dataclasses import dataclass

# phase -> (seconds key, items key) in env_timings; "check" is the two check phases together, per item.
PHASES = {"save": ("save_s", "save_n"), "check-plain": ("check_plain_s", "check_plain_n"),
          "check-remedies": ("check_remedies_s", "check_remedies_n")}


@dataclass(frozen=True)
class Rates:
    """One env's recorded costs: seconds per item of each phase (and of "check" as a whole), and the
    seconds its build took when it was last built."""

    per_item: dict
    create_s: float | None = None
    flavour: str = "keras2"


@dataclass(frozen=True)
class Estimate:
    seconds: float
    recorded: bool  # False: modelled on other envs (this one was never timed)


def flavour(keras: str | None) -> str:
    """The Keras an env runs, as far as cost goes: keras2 (bundled or tf-keras) or keras3."""
    k = str(keras or "bundled")
    return "keras2" if k in ("bundled", "tf-keras") or k.startswith("2") else "keras3"


def _segment_rates(timing: dict, selection: dict) -> dict[str, float]:
    envs, fixtures, formats = (len(selection.get(k) or ()) for k in ("envs", "fixtures", "formats"))
    rates: dict[str, float] = {}
    save_n = timing.get("save_n", fixtures * formats)
    if timing.get("save_s") and save_n:
        rates["save"] = timing["save_s"] / save_n
    for phase in ("check-plain", "check-remedies"):
        s, n = PHASES[phase]
        if timing.get(s) and timing.get(n):
            rates[phase] = timing[s] / timing[n]
    check_s = (timing.get("check_plain_s") or 0.0) + (timing.get("check_remedies_s") or 0.0)
    check_n = timing.get("check_n", envs * fixtures * formats)
    if check_s and check_n:
        rates["check"] = check_s / check_n
    return rates


class Costs:
    """Recorded rates per env, and estimates for any env and phase."""

    def __init__(self, rates: dict[str, Rates]) -> None:
        self.rates = rates

    @classmethod
    def load(cls, state_dir: str) -> Costs:
        """The newest recorded rates of each env in the runs under `state_dir` (unreadable run.json
        files are skipped: a cost is a forecast, never a reason to fail)."""
        rates: dict[str, Rates] = {}
        paths = sorted(glob.glob(os.path.join(state_dir, "runs", "*", "run.json")), reverse=True)
        for path in paths:
            try:
                with open(path) as fh:
                    meta = json.load(fh)
            except (OSError, ValueError):
                continue
            keras = {e.get("id"): e.get("keras") for e in meta.get("envs") or [] if isinstance(e, dict)}
            for seg in reversed(meta.get("segments") or []):
                for env, timing in (seg.get("env_timings") or {}).items():
                    got = _segment_rates(timing, meta.get("selection") or {})
                    have = rates.get(env, Rates({}))
                    merged = dict(got, **have.per_item)  # newer (already seen) wins
                    create = have.create_s
                    if create is None and (timing.get("create_s") or 0.0) >= 1.0:
                        create = float(timing["create_s"])  # < 1 s: the env was reused, not built
                    rates[env] = Rates(merged, create, flavour(str(keras.get(env) or "").split(" ")[0]))
        return cls(rates)

    def rate(self, env: str, phase: str, keras: str | None = None) -> Estimate | None:
        """Seconds per item of `phase` ("save", "check", "check-plain", "check-remedies") in `env`."""
        own = self.rates.get(env)
        if own and phase in own.per_item:
            return Estimate(own.per_item[phase], True)
        like = [r.per_item[phase] for e, r in self.rates.items() if phase in r.per_item
                and (keras is None or r.flavour == flavour(keras))]
        every = [r.per_item[phase] for r in self.rates.values() if phase in r.per_item]
        pool = like or every
        return Estimate(statistics.median(pool), False) if pool else None

    def create(self, env: str) -> Estimate | None:
        own = self.rates.get(env)
        if own and own.create_s is not None:
            return Estimate(own.create_s, True)
        pool = [r.create_s for r in self.rates.values() if r.create_s is not None]
        return Estimate(statistics.median(pool), False) if pool else None

    def estimate(self, env: str, phase: str, items: int, keras: str | None = None,
                 build: bool = False) -> Estimate | None:
        """Seconds for `items` items of `phase` in `env` (plus its build when `build`), or None when
        nothing was ever timed."""
        if items <= 0:
            return Estimate(0.0, True)
        r = self.rate(env, phase, keras)
        if r is None:
            return None
        c = self.create(env) if build else None
        # `recorded` speaks of the work's rate: a build time is often not on record (the env was reused)
        return Estimate(r.seconds * items + (c.seconds if c else 0.0), r.recorded)
