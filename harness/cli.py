"""Command line: `tfcompat run | report | plan` (also `python -m harness`)."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import math
import os
import signal
import sys
from typing import Any

from .errors import TfcompatError
from .matrix_defaults import RESAVED
from .tfjs import converted


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number; give 1 or more" % text) from None
    if n < 1:
        raise argparse.ArgumentTypeError("%s: give 1 or more" % text)
    return n


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number of seconds, e.g. 300" % text) from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("%s: give a number of seconds above 0, e.g. 300" % text)
    return value


FAIL_ON = ("regression", "coverage", "unmet-expectation")


def _fail_on(text: str) -> tuple[str, ...]:
    """`--fail-on`: a comma list of FAIL_ON, or `never` (nothing)."""
    names = _split(text) or []
    if names == ["never"]:
        return ()
    if not names or any(n not in FAIL_ON for n in names):
        raise argparse.ArgumentTypeError("%r: give a comma list of %s, or never" % (text, ", ".join(FAIL_ON)))
    return tuple(names)


class _Parser(argparse.ArgumentParser):
    """A bad argument is one line (and exit 2), not a usage screen."""

    def error(self, message: str):
        self.exit(2, "tfcompat: error: %s (see `%s --help`)\n" % (message, self.prog))


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tfcompat", description="TensorFlow/Keras serialization compatibility matrix")
    p.add_argument("--matrix", default=os.environ.get("TFCOMPAT_MATRIX", "matrix.yaml"),
                   help="the matrix file (default: ./matrix.yaml)")
    p.add_argument("--profile", default=os.environ.get("TFCOMPAT_PROFILE"),
                   help="a profile: profiles/NAME.yaml beside the matrix (e.g. history, keras3, full)")
    p.add_argument("--state-dir", default=None, help="run state (default: .tfcompat next to the matrix)")
    p.add_argument("--reports", default=None, help="report dir (default: reports/ next to the matrix)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def selection(sp):
        # Also accepted after the subcommand, as `tox -e matrix -- --profile history` passes it.
        sp.add_argument("--profile", default=argparse.SUPPRESS, help="as the global --profile")
        sp.add_argument("--only", help="comma-separated env ids (restricts producers and consumers)")
        sp.add_argument("--fixtures", help="comma-separated fixture names")
        sp.add_argument("--formats", help="comma-separated format names")

    run = sub.add_parser("run", help="run the matrix and write reports/")
    selection(run)
    run.add_argument("--jobs", "-j", type=_count, default=2, help="environments worked on at once (default 2)")
    run.add_argument("--backend", default=None, choices=("tox", "docker"),
                     help="backend for the envs whose matrix entry names none (default: tox)")
    run.add_argument("--timeout", type=_seconds, default=None, help="seconds per check (default: matrix check_timeout)")
    run.add_argument("--stage", choices=("save", "check"),
                     help="run one stage of a sharded run (CI machines): save (producers) or check (consumers)")
    run.add_argument("--shard", default="1/1", metavar="I/N", help="with --stage: which shard (default 1/1)")
    run.add_argument("--envs", help="with --stage: the envs of this shard, as `plan --shards` named them")
    run.add_argument("--run-id", help="with --stage: the run id the plan gave (every shard must use it)")
    run.add_argument("--refresh", nargs="?", const="*", default=None, metavar="ENVS",
                     help="recompute instead of reusing cached results: all, or these comma-separated envs")
    run.add_argument("--resume", nargs="?", const="latest", default=None, metavar="RUN_ID",
                     help="finish an interrupted run (default: the latest) without redoing finished work")
    rep = sub.add_parser("report", help="re-render reports/ from a stored run")
    rep.add_argument("--run", default="latest", help="run id (default: latest)")
    mrg = sub.add_parser("merge", help="merge the output dirs of a sharded run into one run and write reports/")
    mrg.add_argument("dirs", nargs="+", metavar="DIR", help="shard output dirs (.tfcompat/runs/<run id> of each)")
    for sp in (run, rep, mrg):
        sp.add_argument("--baseline", metavar="RUN_OR_DIR",
                        help="list the changes since this run (a run id, a run or reports dir, or a results.jsonl)")
        sp.add_argument("--fail-on", type=_fail_on, default="regression,coverage", metavar="WHAT",
                        help="exit 1 on (comma list): regression, coverage (lost) since --baseline that no met "
                             "expectation covers, unmet-expectation; or never (default: regression,coverage)")
    envs = sub.add_parser("envs", help="list the built environments (tox envs, Docker images) and their state")
    envs.add_argument("--prune", action="store_true", help="remove the stale and unused ones")
    ready = sub.add_parser("readiness", help="moving from env A to env B: what breaks, the remedy, what to move with")
    ready.add_argument("--profile", default=argparse.SUPPRESS, help="as the global --profile")
    ready.add_argument("--from", dest="a", required=True, metavar="A", help="the env you run today (an env id)")
    ready.add_argument("--to", dest="b", required=True, metavar="B", help="the env you move to (an env id)")
    ready.add_argument("--run", default=None,
                       help="run id (default: the newest run that holds both envs, else the newest)")
    sc = sub.add_parser("scan", help="your own saved models: read in env A, checked in env B (and C...)")
    sc.add_argument("paths", nargs="+", metavar="PATH", help="saved models, or folders of them")
    sc.add_argument("--profile", default=argparse.SUPPRESS, help="as the global --profile")
    sc.add_argument("--from", dest="a", required=True, metavar="A", help="the env the models come from (an env id)")
    sc.add_argument("--to", dest="b", required=True, metavar="B[,C...]", help="the envs to check them in")
    sc.add_argument("--code", "--custom-objects", dest="code",
                    help="a module with the models' custom classes (CUSTOM_OBJECTS, or every class it defines) "
                         "and build() for weights-only files and the weights route of --migrate")
    sc.add_argument("--inputs", help="an .npz of inputs (key x, else its first array); default: made from the "
                                     "model's input signature with a fixed seed")
    sc.add_argument("--allow-unsafe", action="store_true",
                    help="also try safe_mode=False (runs code stored in the file: only for files you trust)")
    sc.add_argument("--migrate", action="store_true",
                    help="convert what does not load cleanly to the target's own .keras, check the copy there, "
                         "and keep the ones that pass under reports/migrated/ with their proof")
    sc.add_argument("--jobs", "-j", type=_count, default=2, help="environments worked on at once (default 2)")
    plan = sub.add_parser("plan", help="what would run")
    selection(plan)
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument("--shards", type=_count, default=None, metavar="N",
                      help="also the CI job matrices for N machines: save and check shards")
    plan.add_argument("--jobs", "-j", type=_count, default=2,
                      help="envs each machine works on at once, as `run --jobs` (for the expected times)")
    plan.add_argument("--github-output", action="store_true",
                      help="with --shards: only KEY=VALUE lines for $GITHUB_OUTPUT (run_id, save, check, "
                           "save_jobs, check_jobs)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops as cleanly as Ctrl-C
    try:
        return _dispatch(args)
    except TfcompatError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print("tfcompat: error: " + line, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tfcompat: interrupted; finish with `tfcompat run --resume`", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `tfcompat plan | head`: the reader has what it wanted; say nothing more to a closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        print("tfcompat: error: no space left on device writing %s; free space, then `tfcompat run --resume`"
              % (exc.filename or "the state dir"), file=sys.stderr)
        return 1


_LOCKS: list = []


def _lock(state_dir: str, command: str) -> None:
    """One writer per state dir (`run`, `merge`, `scan`), held until this process ends; taken
    after the preflight, so a refused run leaves no state dir behind."""
    from . import store

    _LOCKS.append(store.hold_lock(state_dir, command))


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _dispatch(args) -> int:
    from . import runner as rn, store
    from .matrix import load_matrix

    root = os.path.dirname(os.path.abspath(args.matrix))
    if args.profile:
        args.matrix = _profile_path(root, args.profile)
    matrix = load_matrix(args.matrix)
    if matrix.unverified:
        print("tfcompat: note: the package index could not be reached: the %s versions of %s are not verified"
              % (", ".join(matrix.unverified), os.path.basename(matrix.path)), file=sys.stderr)
    state_dir = args.state_dir or os.path.join(root, ".tfcompat")
    reports = args.reports or os.path.join(root, "reports")
    for flag, path in (("--state-dir", state_dir), ("--reports", reports)):
        store.check_folder(path, flag)
    if args.command == "plan":
        sel = rn.select(matrix, _split(args.only), _split(args.fixtures), _split(args.formats),
                        variants=not args.shards)
        from .shards import shard_plan

        runner = rn.Runner(matrix, sel, os.path.join(state_dir, "runs", "plan"), log=lambda line: None)
        cached = runner.cache_plan()
        here = shard_plan(runner, 1, run_id="-", jobs=args.jobs, cache=cached)["expected"]
        shards = None
        if args.shards:
            shards = shard_plan(runner, args.shards, jobs=args.jobs, cache=cached)
            if args.github_output:
                for stage in ("save", "check"):
                    print("%s=%s" % (stage, json.dumps(shards[stage], separators=(",", ":"))))
                    print("%s_jobs=%d" % (stage, len(shards[stage]["include"])))
                print("run_id=%s" % shards["run_id"])
                return 0
        return _plan(matrix, sel, args.json, root, cached, shards, here, runner.drift_lines(None if args.json else 8))
    if args.command == "merge":
        return _merge(args, matrix, state_dir, reports)
    if args.command == "scan":
        return _scan(args, matrix, state_dir, reports)
    if args.command == "readiness":
        return _readiness(args, matrix, state_dir, reports)
    if args.command == "envs":
        from .envs import envs

        return envs(matrix, root, state_dir, args.prune)
    if args.command == "report":
        run_dir = store.run_dir_named(state_dir, args.run, "report --run")
        meta = store.read_run_meta(run_dir, need=())
        if not os.path.exists(os.path.join(run_dir, "results.jsonl")):
            raise TfcompatError("%s has no results yet; finish it with `tfcompat run --resume %s`"
                                % (run_dir, os.path.basename(run_dir)))
        index, meta = rn.publish(run_dir, reports, meta, matrix, _baseline(args, state_dir))
        _say_expectations(meta["expectations"])
        print(index)
        return max(_say_defects(meta), _say_changes(meta, args.fail_on))
    if args.stage:
        return _stage(args, matrix, state_dir)
    stored_meta: dict = {}
    if args.resume:
        run_dir = store.run_dir_named(state_dir, args.resume, "--resume")
        stored_meta = store.read_run_meta(run_dir)
        made_by = (stored_meta.get("code") or {}).get("attempts")
        if made_by != rn.run_code()["attempts"]:
            # One run, one worker: mixing attempts of two workers' code in one grid would mislead.
            raise TfcompatError("%s was made by other worker code (%s %s, this is %s %s): start a new run (without "
                                "--resume)" % (os.path.basename(run_dir), stored_meta.get("worker_version"),
                                               (made_by or "unknown")[:12], rn.WORKER_VERSION,
                                               rn.run_code()["attempts"][:12]))
        stored = stored_meta["selection"]
        sel = store.Selection(tuple(stored["envs"]), tuple(stored["fixtures"]), tuple(stored["formats"]))
        rn.preflight(matrix, sel, args.backend or stored_meta.get("backend"))
        _lock(state_dir, "run --resume")
        print("tfcompat: resuming %s" % os.path.basename(run_dir))
    else:
        sel = rn.select(matrix, _split(args.only), _split(args.fixtures), _split(args.formats))
        rn.preflight(matrix, sel, args.backend)
        _lock(state_dir, "run")
        _, run_dir = store.new_run_dir(state_dir)
    backend = args.backend or stored_meta.get("backend")
    refresh = _refresh(args, sel)
    if args.resume and stored_meta.get("refresh"):
        refresh = tuple(stored_meta["refresh"])  # a resumed run recomputes what it set out to
    runner = rn.Runner(matrix, sel, run_dir, backend=backend, jobs=args.jobs, timeout=args.timeout,
                       refresh=refresh)
    print("tfcompat: run %s: %d env(s), %d fixture(s), %d format(s) -> %d checks" % (
        runner.run_id, len(sel.envs), len(sel.fixtures), len(sel.formats),
        len(sel.envs) ** 2 * len(sel.fixtures) * len(sel.formats)))
    baseline = _baseline(args, state_dir)  # read before the run: it may be the reports dir
    meta = runner.run()
    index, meta = rn.publish(run_dir, reports, meta, matrix, baseline)
    counts = ", ".join("%s %d" % kv for kv in sorted(meta["outcome_counts"].items()))
    print("tfcompat: %d records (%s) in %.0fs" % (meta["checks"], counts, meta["duration_s"]))
    cache = meta.get("cache") or {}
    print("tfcompat: from the cache: %d cell(s), %d artifact(s)%s" % (
        cache.get("cells_reused", 0), cache.get("artifacts_reused", 0),
        "; %d untrustworthy entr(ies) dropped and recomputed" % cache["entries_dropped"]
        if cache.get("entries_dropped") else ""))
    print("tfcompat: TF imports per env: " + ", ".join(
        "%s %s" % (e, "/".join(str(v) for v in c.values())) for e, c in meta["tf_imports"].items())
        + " (save/no-remedy/remedies)")
    _say_expectations(meta["expectations"])
    print("tfcompat: report: %s" % index)
    return max(_say_defects(meta), _say_changes(meta, args.fail_on))


def _stage(args, matrix, state_dir: str) -> int:
    """One shard of a staged run: its output is `<state>/runs/<run id>` (upload it as is)."""
    from . import runner as rn
    from .shards import stage_group

    sel = rn.select(matrix, _split(args.only), _split(args.fixtures), _split(args.formats), variants=False)
    run_id = args.run_id or "plan-" + rn.plan_id(matrix, sel)
    run_dir = os.path.join(state_dir, "runs", run_id)
    probe = rn.Runner(matrix, sel, run_dir, backend=args.backend, log=lambda line: None)
    group, producers = stage_group(probe, args.stage, args.shard, _split(args.envs))
    if not group:
        print("tfcompat: %s shard %s: nothing to run" % (args.stage, args.shard))
        return 0
    rn.preflight(matrix, dataclasses.replace(sel, envs=tuple(group)), args.backend)
    _lock(state_dir, "run --stage %s --shard %s" % (args.stage, args.shard))
    os.makedirs(run_dir, exist_ok=True)
    runner = rn.Runner(matrix, sel, run_dir, backend=args.backend, jobs=args.jobs, timeout=args.timeout,
                       refresh=_refresh(args, sel), stage=args.stage, group=group, shard=args.shard,
                       producers=producers)
    print("tfcompat: run %s, %s shard %s: %s" % (run_id, args.stage, args.shard, ", ".join(
        g + (" (against %s)" % ", ".join(producers[g]) if g in producers else "") for g in group)))
    meta = runner.run()
    errors = {e: m for e, m in {**runner.state.env_errors, **runner.state.check_errors}.items()}
    print("tfcompat: %s shard %s done in %.0fs%s; output: %s" % (
        args.stage, args.shard, meta["duration_s"], "; env errors: %s" % ", ".join(errors) if errors else "",
        run_dir))
    return 0


def _readiness(args, matrix, state_dir: str, reports: str) -> int:
    """`readiness --from A --to B`: from a stored run, nothing is run. Exit 0 when every fixture kind
    can move and nothing loads wrong, 1 when one cannot or a format loads wrong (A->B or re-saved in
    B), 2 when the run holds no A->B cell at all."""
    from . import readiness, readiness_report, results, store
    from .errors import MissingResults
    from .records import annotate_expectations

    matrix.require_envs([("--from", args.a), ("--to", args.b)])
    ids = [e.id for e in matrix.environments]
    run_dir = _run_with(state_dir, args.run, (args.a, args.b))
    meta = store.read_run_meta(run_dir)
    path = os.path.join(run_dir, "results.jsonl")
    records = list(results.read(path)) if os.path.exists(path) else []
    annotate_expectations(records, matrix)
    sel = meta.get("selection") or {}
    # Fixture kinds only: a re-save variant `<fixture>~A` is read through its fixture (`Cell.resave`).
    kinds = [f for f in sel.get("fixtures") or [f.name for f in matrix.fixtures] if RESAVED not in f]
    r = readiness.build(records, args.a, args.b, kinds,
                        list(sel.get("formats") or matrix.formats), list(sel.get("envs") or ids),
                        run_id=os.path.basename(run_dir))
    profile = " --profile %s" % args.profile if args.profile else ""
    rerun = "tfcompat%s run --only %s,%s" % (profile, args.a, args.b)
    if all(c.status == "missing" for c in r.cells):
        raise MissingResults("readiness: run %s holds no %s -> %s cell; run them first: %s" % (
            os.path.basename(run_dir), args.a, args.b, rerun))
    md, html = readiness_report.write(r, reports, rerun)
    print("tfcompat: readiness %s -> %s (run %s):" % (args.a, args.b, r.run_id))
    for line in readiness_report.lines(r):
        print("tfcompat:   " + line)
    if r.missing:
        print("tfcompat: %d cell(s) missing from the run (%s); run them: %s" % (
            len(r.missing), ", ".join("%s->%s %s/%s" % m for m in r.missing[:3]) + (", ..." if len(r.missing) > 3
                                                                                   else ""), rerun))
    print("tfcompat: report: %s (and %s)" % (html, md))
    _say_wrong(r)
    return r.exit_code


def _say_wrong(r) -> None:
    """One error line naming the fixture kinds and formats that load wrong moving A -> B (the exit code's why)."""
    from . import readiness_report

    line = readiness_report.wrong_line(r)
    if line:
        print("tfcompat: error: " + line, file=sys.stderr)


def _scan(args, matrix, state_dir: str, reports: str) -> int:
    """`scan PATH... --from A --to B[,C]`: exit 0 when every artifact can move to every target, 1 when
    one cannot, 2 when nothing was found or an argument is wrong."""
    from . import readiness_report
    from .scan import scan

    targets = _split(args.b) or []
    _lock(state_dir, "scan")
    out = scan(matrix, args.a, targets, args.paths, state_dir, code=args.code, inputs=args.inputs,
               allow_unsafe=args.allow_unsafe, jobs=args.jobs, log=lambda line: print("tfcompat: " + line),
               migrate=os.path.join(reports, "migrated") if args.migrate else None)
    code = 0
    for b, r in out["by_target"].items():
        md, html = readiness_report.write(r, reports, stem="scan")
        print("tfcompat: scan %s -> %s (%d artifact(s), run %s):" % (args.a, b, len(r.fixtures), r.run_id))
        for name, line in zip([f.name for f in r.fixtures], readiness_report.lines(r)):
            print("tfcompat:   %s [%s]" % (line, r.labels.get(name)))
        print("tfcompat: report: %s (and %s)" % (html, md))
        _say_wrong(r)
        code = max(code, r.exit_code)
    return code


def _run_with(state_dir: str, run_id: str | None, envs: tuple[str, ...]) -> str:
    """The run dir: `run_id`, else the newest run whose selection holds every env, else the newest."""
    from . import store
    from .errors import MissingResults

    if run_id:
        return store.run_dir_named(state_dir, run_id, "readiness --run")
    runs = os.path.join(state_dir, "runs")
    names = store.run_names(state_dir)[::-1]
    if not names:
        raise MissingResults("readiness: no run under %s yet; run the matrix first: tfcompat run --only %s"
                             % (runs, ",".join(envs)))
    for name in names:
        try:
            with open(os.path.join(runs, name, "run.json")) as fh:
                held = set((json.load(fh).get("selection") or {}).get("envs") or [])
        except (OSError, ValueError):
            continue
        if set(envs) <= held and os.path.exists(os.path.join(runs, name, "results.jsonl")):
            return os.path.join(runs, name)
    return os.path.join(runs, names[0])


def _refresh(args, sel) -> tuple[str, ...]:
    """--refresh: every env of the selection, or the ones named (each checked)."""
    if args.refresh == "*":
        return tuple(sel.envs)
    refresh = tuple(_split(args.refresh) or ())
    unknown = [e for e in refresh if e not in sel.envs]
    if unknown:
        from .errors import ConfigError

        raise ConfigError(["--refresh: unknown environment %r; choose from: %s" % (unknown[0], ", ".join(sel.envs))])
    return refresh


def _merge(args, matrix, state_dir: str, reports: str) -> int:
    from . import runner as rn
    from .shards import merge, selection_of

    _lock(state_dir, "merge")
    sel = rn.select(matrix, None, None, None, variants=False)
    fresh = {"plan_id": rn.plan_id(matrix, sel), "selection": sel.__dict__, "worker_version": rn.WORKER_VERSION,
             "code": rn.run_code(),
             "matrix_path": matrix.path, "backend": "tox", "fixtures": list(sel.fixtures),
             "formats": list(sel.formats), "tfcompat_version": rn.__version__}
    run_dir, meta = merge(args.dirs, state_dir, fresh)
    sel = selection_of(meta)
    runner = rn.Runner(matrix, sel, run_dir, backend=meta.get("backend"), log=lambda line: None)
    meta = runner.finish_merged(meta)
    index, meta = rn.publish(run_dir, reports, meta, matrix, _baseline(args, state_dir))
    counts = ", ".join("%s %d" % kv for kv in sorted(meta["outcome_counts"].items()))
    print("tfcompat: merged %d shard(s) into %s: %d records (%s)" % (
        len(meta["shards"]), os.path.basename(run_dir), meta["checks"], counts))
    _say_expectations(meta["expectations"])
    print("tfcompat: report: %s" % index)
    return max(_say_defects(meta), _say_changes(meta, args.fail_on))


def _baseline(args, state_dir: str):
    if not getattr(args, "baseline", None):
        return None
    from .diff import load_baseline

    return load_baseline(args.baseline, state_dir)


def _say_changes(meta: dict, fail_on: tuple[str, ...]) -> int:
    """The baseline diff's summary; 1 when a class `--fail-on` names has a change no met expectation
    covers (its cells named, 20 at most), or when it names unmet-expectation and one is unmet."""
    code = 0
    if "unmet-expectation" in fail_on and meta["expectations"].get("unmet"):
        print("tfcompat: error: %d unmet expectation(s)" % len(meta["expectations"]["unmet"]), file=sys.stderr)
        code = 1
    changes = meta.get("changes")
    if not changes:
        return code
    print("tfcompat: changes since %s: %s (reports/changes.md)" % (changes["summary"]["baseline"], changes["counts"]))
    names = {"regression": "regression", "coverage": "coverage lost"}
    failing = [(names[k], line) for k in ("regression", "coverage") if k in fail_on
               for line in changes["failing"][k]["first"]]
    total = sum(changes["failing"][k]["count"] for k in ("regression", "coverage") if k in fail_on)
    for kind, line in failing[:20]:
        print("tfcompat: error: %s: %s" % (kind, line), file=sys.stderr)
    if total > 20:
        print("tfcompat: error: ... and %d more (reports/changes.json)" % (total - 20), file=sys.stderr)
    return 1 if total else code


def _say_defects(meta: dict) -> int:
    """Cells the harness cannot stand behind (a failed honesty check or precondition) fail the run."""
    defects = meta.get("harness_defects") or []
    for d in defects[:20]:
        print("tfcompat: error: harness defect in %s -> %s %s/%s: %s" % (
            d["producer"], d["consumer"] or "*", d["fixture"], d["format"], d["defect"]), file=sys.stderr)
    if len(defects) > 20:
        print("tfcompat: error: ... and %d more (run.json: harness_defects)" % (len(defects) - 20), file=sys.stderr)
    return 1 if defects else 0


def _say_expectations(summary: dict) -> None:
    if not summary.get("cells"):
        return
    unmet = summary["unmet"]
    print("tfcompat: expectations: %d cell(s), %d met, %d not met%s" % (
        summary["cells"], summary["met"], len(unmet),
        ", %d expired" % summary["expired"] if summary["expired"] else ""))
    for u in unmet[:20]:
        print("tfcompat:   %s -> %s %s/%s: expected %s, got %s" % (
            u["producer"], u["consumer"] or "*", u["fixture"], u["format"], u["expected"], u["got"]))
    if len(unmet) > 20:
        print("tfcompat:   ... and %d more (reports/run.json: expectations)" % (len(unmet) - 20))


def _profile_path(root: str, name: str) -> str:
    from .errors import ConfigError
    from .matrix import profile_paths

    known = profile_paths(root)
    if name not in known:
        raise ConfigError(["--profile: unknown profile %r; choose one of: %s (files in %s)"
                           % (name, ", ".join(known), os.path.join(root, "profiles"))])
    return known[name]


def _plan(matrix, sel, as_json: bool, root: str, cached: dict, shards: dict | None = None,
          here: dict | None = None, drift: dict | None = None) -> int:
    n = len(sel.envs)
    plan: dict[str, Any] = {"environments": [{"id": e, "spec": matrix.env(e).describe(),
                              "backend": matrix.env(e).backend_name(),
                              "requirements": matrix.env(e).requirements(),
                              "recipes": list(matrix.env(e).recipes)} for e in sel.envs],
            "fixtures": list(sel.fixtures), "formats": list(sel.formats),
            "artifacts": n * len(sel.fixtures) * len(sel.formats),
            "checks": n * n * len(sel.fixtures) * len(sel.formats),
            "cache": {env: {"artifacts_cached": c["artifacts"][0], "artifacts_to_run": c["artifacts"][1],
                            "checks_cached": c["checks"][0], "checks_to_run": c["checks"][1]}
                      for env, c in cached.items()}}
    plan["checks_to_run"] = sum(c["checks_to_run"] for c in plan["cache"].values())
    # per env: what its requirements resolve to today that it does not hold (it is rebuilt), or why
    # that could not be checked
    plan["drift"] = dict(drift or {})
    if matrix.converter is not None and any(converted(matrix.env(e), f) for e in sel.envs for f in sel.formats):
        conv = matrix.converter
        plan["converter"] = {"id": conv.id, "spec": conv.describe(), "backend": conv.backend_name(),
                             "requirements": conv.requirements(), "recipes": list(conv.recipes)}
    if here is not None:
        plan["expected"] = here  # on one machine like this one, from recorded costs
    if shards is not None:
        plan["shards"] = shards
    plan["profiles"] = _profile_counts(root, matrix)
    if as_json:
        print(json.dumps(plan, indent=1))
    else:
        for env in plan["environments"]:
            print("%-22s %s; %s%s" % (env["id"], env["spec"], " ".join(env["requirements"][1:]) or "no pins",
                                      "" if env["backend"] == "tox" else " [%s]" % env["backend"]))
        if "converter" in plan:
            conv = plan["converter"]
            print("%-22s %s; %s (converter: makes the TF.js files and the TF.js envs' Keras files)" % (
                conv["id"], conv["spec"], " ".join(conv["requirements"][1:])))
        print("%d env(s) x %d fixture(s) x %d format(s): %d artifacts, %d checks" % (
            n, len(sel.fixtures), len(sel.formats), plan["artifacts"], plan["checks"]))
        print("cache (.tfcompat/cache): per env, artifacts it saves and checks it runs as consumer:")
        for env, c in plan["cache"].items():
            print("  %-20s artifacts %d cached, %d to run; checks %d cached, %d to run" % (
                env, c["artifacts_cached"], c["artifacts_to_run"], c["checks_cached"], c["checks_to_run"]))
        for env, line in sorted(plan["drift"].items()):
            print("  %-20s %s" % (env, line))
        print("to run: %d of %d checks" % (plan["checks_to_run"], plan["checks"]))
        if here and "wall_s" in here:
            print("expected on this machine (%d envs at once): %s%s" % (
                here["save"]["slots"], _minutes(here["wall_s"]),
                _cost_source(here["check"] if here["check"]["modelled"] else here["save"])))
        if shards is not None:
            print("shards (run id %s, plan %s):" % (shards["run_id"], shards["plan_id"]))
            for stage in ("save", "check"):
                exp = shards["expected"][stage]
                for job in shards[stage]["include"]:
                    print("  %-5s %-6s %s" % (stage, job["shard"], job["envs"]))
                unit = exp["unit"]
                print("  %s: %d job(s); expected wall %.0f %s (longest job), total %.0f %s / (%d machines x %d "
                      "envs at once) = %.0f %s%s" % (stage, exp["jobs"], exp["longest_s"], unit, exp["total_s"], unit,
                                                      exp["machines"], exp["slots"], exp["ideal_s"], unit,
                                                      _cost_source(exp)))
            if "wall_s" in shards["expected"]:
                print("  expected wall time: %s on %d machine(s), %.2fx the ideal total/machines" % (
                    _minutes(shards["expected"]["wall_s"]), shards["expected"]["save"]["machines"],
                    shards["expected"]["ratio_to_ideal"]))
        print("profiles:")
        for name, info in plan["profiles"].items():
            print("  %-10s %s" % (name, info.get("error") or "%d envs, %d fixtures, %d formats: %d checks" % (
                info["envs"], info["fixtures"], info["formats"], info["checks"])))
    return 0


def _cost_source(exp: dict) -> str:
    if exp["unit"] != "s":
        return " (no run was ever timed: balanced by count of work items)"
    if exp["modelled"]:
        names = exp["modelled"]
        return " (%d env(s) never timed, modelled on timed envs of the same Keras: %s%s)" % (
            len(names), ", ".join(names[:4]), ", ..." if len(names) > 4 else "")
    return " (recorded costs)"


def _minutes(seconds: float) -> str:
    return "%.0f s" % seconds if seconds < 120 else "%.1f min" % (seconds / 60)


def _profile_counts(root: str, loaded) -> dict:
    """Env and check counts of every profile beside the matrix (the one already loaded is reused)."""
    from .matrix import load_matrix, profile_paths

    out: dict[str, dict[str, Any]] = {}
    for name, path in profile_paths(root).items():
        try:
            m = loaded if os.path.abspath(path) == loaded.path else load_matrix(path)
        except TfcompatError as exc:
            out[name] = {"error": str(exc).splitlines()[0]}
            continue
        n, f, k = len(m.environments), len(m.fixtures), len(m.formats)
        out[name] = {"path": path, "envs": n, "fixtures": f, "formats": k, "checks": n * n * f * k}
    return out
