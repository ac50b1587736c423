"""Staged runs over CI machines: a plan of shards for a CI job matrix, one shard's stage on one
machine, and the merge of every shard's output into one run.

Stage 1 (save shards, producers grouped) writes artifacts and save journals; stage 2 (check shards,
consumers grouped) needs every save shard's output in its run dir and writes check journals; the
merge copies all outputs into one run dir, assembles the records and renders the report. Every
machine uses the same state dir path (a CI workspace), so the paths written into artifacts hold.
"""

from __future__ import annotations

import datetime
import filecmp
import os
import shutil

from .costs import Costs
from .errors import ConfigError, TfcompatError
from .process import merge_journals, read_journal
from .store import RunStore, Selection

MAX_JOBS = 256  # a GitHub Actions job matrix holds at most 256 jobs


def shard_plan(runner, n: int, run_id: str | None = None, jobs: int = 2, cache: dict | None = None) -> dict:
    """The job matrices: {"run_id", "plan_id", "save": {"include": [...]}, "check": {...}, "expected"}.

    Envs with nothing to save (every artifact cached) get no save job, consumers with nothing to check
    get no check job. Groups are balanced by the cost of their work (harness/costs.py: recorded rates
    x items to run, plus the env's build, which each stage's machine pays again), else by its count
    of items when nothing was ever timed. `expected` says per stage the longest job, the total, the
    ideal total/machines and which envs' costs were modelled rather than recorded. Each machine works
    on `jobs` envs at once (`run --jobs`), as the runs that recorded the costs did: a job's wall
    time is its envs' summed cost over that many slots."""
    from .runner import plan_id, shard_groups

    cache = cache or runner.cache_plan()
    costs = runner.costs
    n = max(1, min(n, MAX_JOBS))
    out: dict = {"plan_id": plan_id(runner.matrix, runner.sel),
                 "run_id": run_id or "%s-%s" % (datetime.datetime.now().strftime("%Y%m%d-%H%M%S"),
                                                plan_id(runner.matrix, runner.sel)[:8])}
    expected: dict = {}
    for stage, index in (("save", "artifacts"), ("check", "checks")):
        todo = [e for e in runner.sel.envs if cache[e][index][1] > 0]
        est = {e: costs.estimate(e, stage, cache[e][index][1], runner.matrix.env(e).keras, build=True)
               for e in todo}
        timed = all(x is not None for x in est.values())
        cost = {e: (x.seconds if timed and x is not None else float(cache[e][index][1])) for e, x in est.items()}
        if stage == "check" and n > 1 and cost:
            todo, cost = _split_consumers(runner, todo, cost, n, jobs, costs, timed)
        groups = shard_groups(todo, n, cost)
        out[stage] = {"include": [{"shard": "%d/%d" % (i + 1, len(groups)), "envs": ",".join(_job(g))}
                                  for i, g in enumerate(groups)]}
        loads = [sum(cost[e] for e in g) for g in groups] or [0.0]
        # a job's envs share its slots; none finishes before its own costliest env
        walls = [max(load / max(1, min(jobs, len(g))), max(cost[e] for e in g))
                 for load, g in zip(loads, groups)] or [0.0]
        expected[stage] = {"jobs": len(groups), "machines": n, "slots": jobs, "longest_s": round(max(walls), 1),
                           "total_s": round(sum(loads), 1), "ideal_s": round(sum(loads) / (n * jobs), 1),
                           "unit": "s" if timed else "items",
                           "modelled": sorted(e for e, x in est.items() if x is not None and not x.recorded),
                           "recorded": timed and all(x is not None and x.recorded for x in est.values())}
    if all(expected[s]["unit"] == "s" for s in ("save", "check")):
        longest = expected["save"]["longest_s"] + expected["check"]["longest_s"]
        ideal = expected["save"]["ideal_s"] + expected["check"]["ideal_s"]
        expected["wall_s"] = round(longest, 1)
        expected["ratio_to_ideal"] = round(longest / ideal, 3) if ideal else 1.0
    out["expected"] = expected
    return out


def _split_consumers(runner, todo: list[str], cost: dict, n: int, jobs: int, costs: Costs,
                     timed: bool) -> tuple[list[str], dict]:
    """Units of check work: whole consumers, and consumers too long for one slot of the ideal plan
    split by producers (`X@p1+p2`: consumer X against those producers' artifacts only), each part
    with about the same count of checks. A part pays the consumer's build again."""
    target = sum(cost.values()) / (n * jobs)
    units: list[str] = []
    out: dict = {}
    for e in todo:
        counts = {p: sum(1 for fx in runner.sel.fixtures for fmt in runner.sel.formats
                         if not runner.answered(p, e, fx, fmt)) for p in runner.sel.envs}
        producers = [p for p in runner.sel.envs if counts[p]]
        k = min(len(producers), int(-(-cost[e] // target))) if target > 0 else 1
        if k <= 1:
            units.append(e)
            out[e] = cost[e]
            continue
        total = sum(counts[p] for p in producers)
        while True:  # more parts while the largest is still over the target (producers come whole)
            chunks, loads = _chunks(producers, counts, k)
            if k >= len(producers) or max(loads) * cost[e] / total <= target:
                break
            k += 1
        for chunk, items in zip(chunks, loads):
            unit = "%s@%s" % (e, "+".join(sorted(chunk, key=producers.index)))
            x = costs.estimate(e, "check", items, runner.matrix.env(e).keras, build=True) if timed else None
            units.append(unit)
            out[unit] = x.seconds if x is not None else float(items)
    return units, out


def _chunks(producers: list[str], counts: dict, k: int) -> tuple[list[list[str]], list[int]]:
    chunks: list[list[str]] = [[] for _ in range(k)]
    loads = [0] * k
    for p in sorted(producers, key=lambda p: (-counts[p], producers.index(p))):
        i = loads.index(min(loads))
        chunks[i].append(p)
        loads[i] += counts[p]
    return chunks, loads


def _job(group: list[str]) -> list[str]:
    """A job's `--envs`: its units, parts of one consumer in one job joined again."""
    merged: dict[str, set | None] = {}
    for unit in group:
        consumer, _, producers = unit.partition("@")
        if consumer in merged and merged[consumer] is None or not producers:
            merged[consumer] = None
        else:
            merged[consumer] = (merged.get(consumer) or set()) | set(producers.split("+"))
    return [c if p is None else "%s@%s" % (c, "+".join(sorted(p))) for c, p in merged.items()]


def parse_units(units: list[str], known: tuple[str, ...]) -> tuple[tuple[str, ...], dict]:
    """`--envs` entries -> (env ids, {consumer: producers} for the split ones)."""
    envs, producers = [], {}
    for unit in units:
        env, _, only = unit.partition("@")
        envs.append(env)
        if only:
            producers[env] = tuple(only.split("+"))
        for name in [env] + list(producers.get(env, ())):
            if name not in known:
                raise ConfigError(["--envs: unknown environment %r; choose from: %s" % (name, ", ".join(known))])
    return tuple(envs), producers


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
        if not 1 <= i <= n:
            raise ValueError
    except ValueError:
        raise ConfigError(["--shard: %r is not I/N with 1 <= I <= N, e.g. 2/4" % text]) from None
    return i, n


def stage_group(runner, stage: str, shard: str, envs: list[str] | None) -> tuple[tuple[str, ...], dict]:
    """The envs this shard runs, and {consumer: producers} for consumers it checks only in part:
    `--envs` as the plan named them, else the plan's grouping again."""
    if not envs:
        i, n = parse_shard(shard)
        jobs = shard_plan(runner, n, run_id="-")[stage]["include"]
        envs = jobs[i - 1]["envs"].split(",") if i <= len(jobs) else []
    return parse_units(list(envs), runner.sel.envs)


def merge(dirs: list[str], state_dir: str, fresh_meta: dict) -> tuple[str, dict]:
    """Copy every shard output dir into one run dir (`<state>/runs/<run_id>`); returns (run dir, the
    meta the shards agree on). Idempotent. Refused, one line naming the files: shards of another
    plan or other worker code, shards or journals of another run (yesterday's output beside
    today's), and two shards that give one cell different results. A night whose every cell was
    cached ran no shard: then the first dir names the run, and `fresh_meta` (this matrix's plan) is
    its meta."""
    metas: dict[str, dict] = {}
    where: dict[str, str] = {}
    for d in dirs:
        for name, meta in RunStore(d).shard_metas().items():
            metas[name] = meta
            where[name] = os.path.join(d, "shards", name + ".json")
    first = next(iter(metas.values()), None) or dict(fresh_meta, run_id=os.path.basename(os.path.abspath(dirs[0])))
    code = (fresh_meta.get("code") or {}).get("attempts")
    for name, meta in metas.items():
        if (meta.get("plan_id"), (meta.get("code") or {}).get("attempts")) != (fresh_meta["plan_id"], code):
            raise TfcompatError("merge: shard %s (%s) is of plan %s (worker code %s), not of this matrix's plan %s "
                                "(worker code %s); merge only the shards of one `tfcompat plan --shards`" % (
                                    name, where[name], meta.get("plan_id"),
                                    ((meta.get("code") or {}).get("attempts") or "unknown")[:12],
                                    fresh_meta["plan_id"], (code or "unknown")[:12]))
        if meta.get("run_id") != first["run_id"]:
            raise TfcompatError("merge: shard %s (%s) is of run %s, not of run %s: merge only one run's shard "
                                "outputs (an earlier night's output must not join this one)" % (
                                    name, where[name], meta.get("run_id"), first["run_id"]))
    run_dir = os.path.join(state_dir, "runs", first["run_id"])
    _refuse_disagreement([d for d in dirs if os.path.isdir(d)], run_dir)
    os.makedirs(run_dir, exist_ok=True)
    for d in dirs:
        if os.path.isdir(d) and os.path.abspath(d) != os.path.abspath(run_dir):
            shutil.copytree(d, run_dir, dirs_exist_ok=True)
    _refuse_other_runs(run_dir, first["run_id"])
    meta = {k: v for k, v in first.items() if k not in ("stage", "shard", "group", "segments", "finished")}
    meta["shards"] = sorted(metas)
    meta["segments"] = [seg for m in metas.values() for seg in m.get("segments", [])]
    return run_dir, meta


# What shards may hold different copies of (logs, a worker's scratch and job files); everything
# else is a result or an input of one, and two copies must agree.
_FREE = ("logs", "scratch")


def _refuse_disagreement(dirs: list[str], run_dir: str) -> None:
    """Before copying: a file two shard dirs (or a dir and the run dir) both hold must be the same,
    and two journals of one path must not give one cell two results."""
    seen: dict[str, str] = {}
    for d in ([run_dir] if os.path.isdir(run_dir) else []) + dirs:
        for folder, subdirs, names in os.walk(d):
            rel_folder = os.path.relpath(folder, d)
            if rel_folder.split(os.sep)[0] in _FREE:
                subdirs[:] = []
                continue
            for name in names:
                rel = os.path.normpath(os.path.join(rel_folder, name))
                path = os.path.join(folder, name)
                if rel not in seen:
                    seen[rel] = path
                    continue
                other = seen[rel]
                if os.path.abspath(other) == os.path.abspath(path) or filecmp.cmp(other, path, shallow=False):
                    continue
                if rel.endswith(".jsonl") and rel.startswith("journals" + os.sep):
                    # one cell, two results -> ShardConflict; otherwise the longer copy holds the other
                    merge_journals([read_journal(other), read_journal(path)])
                    if os.path.getsize(path) > os.path.getsize(other):
                        seen[rel] = path
                    continue
                if rel.endswith((".job.json", ".log")):
                    continue
                raise TfcompatError("merge: %s and %s differ: shards of one run never write the same file "
                                    "differently; merge only one run's shard outputs" % (other, path))


def _refuse_other_runs(run_dir: str, run_id: str) -> None:
    """Every journal the orchestrator stamped must be this run's."""
    folder = os.path.join(run_dir, "journals")
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith(".jsonl"):
            others = read_journal(os.path.join(folder, name)).run_ids - {run_id}
            if others:
                raise TfcompatError("merge: %s holds work of run %s, not of run %s: merge only one run's shard "
                                    "outputs" % (os.path.join(folder, name), ", ".join(sorted(map(str, others))),
                                                 run_id))


def selection_of(meta: dict) -> Selection:
    s = meta["selection"]
    return Selection(tuple(s["envs"]), tuple(s["fixtures"]), tuple(s["formats"]))


