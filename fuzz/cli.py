"""The ``panthor-testbed`` command (contract: CLI.md).

Exit status: 0 ran and found nothing wrong; 1 ran and found a failure;
2 bad usage or bad input (one line on stderr, no traceback); 130 interrupted,
after printing the summary so far (every failure found is already on disk).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import trio

from panthor_testbed import __version__
from panthor_testbed.sched import ReplayDivergence
from panthor_testbed.sched.core.strategy import STRATEGIES

from .catalogue import CATALOGUE, UnknownBug, get_bug
from .replayfile import ReplayFile, ReplayFileError, replay_name
from .scenario import Scenario, ScenarioError, builtin_scenarios, get_scenario
from .shrink import ShrinkError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PROG = "panthor-testbed"


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _int_at_least(low: int) -> Callable[[str], int]:
    what = "a positive" if low == 1 else "a non-negative"

    def parse(text: str) -> int:
        try:
            v = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"expected {what} integer, got {v}")
        return v

    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration, got {text!r}")
    return v


def _probability(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability, got {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Find, replay and shrink races in a model of the Linux panthor "
        "MMU/VM_BIND code.",
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("scenarios", help="list the built-in scenarios")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("bugs", help="list the bug catalogue")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("fuzz", help="run schedules of scenarios and save each distinct failure")
    s.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help="built-in name, path/to/file.py:function or package.module:function "
        "(default: every built-in)",
    )
    s.add_argument(
        "--runs", type=_positive_int, help="runs per scenario (default 1000 without --time-budget)"
    )
    s.add_argument(
        "--time-budget",
        type=_seconds,
        metavar="S",
        help="wall-clock seconds for the whole campaign",
    )
    s.add_argument("--seed", type=_nonneg_int, default=1)
    s.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="portfolio",
        help="portfolio (default: random walk and PCT at depths 1-3, alternating), random, pct",
    )
    s.add_argument(
        "--depth",
        type=_positive_int,
        default=3,
        help="PCT bug depth with --strategy pct (default 3)",
    )
    _add_common_run_args(s)
    s.add_argument("--jobs", type=_positive_int, default=1, help="worker processes")
    s.add_argument("--out", default="failures", help="directory for replay files")
    s.add_argument(
        "--keep-going", action="store_true", help="do not stop a scenario at its first failure"
    )
    s.add_argument(
        "--witness-runs",
        type=_nonneg_int,
        default=200,
        help="runs spent looking for a real deadlock after a lockdep report",
    )
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")

    s = sub.add_parser("replay", help="re-run a replay file exactly")
    s.add_argument("file", metavar="FILE")
    s.add_argument("--trace", action="store_true", help="print the interleaving table")
    s.add_argument("--perfetto", metavar="OUT.json", help="write a Chrome/Perfetto trace")
    s.add_argument("--times", type=_positive_int, default=3, help="re-runs (default 3)")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("shrink", help="minimise a failing replay file")
    s.add_argument("file", metavar="FILE")
    s.add_argument("-o", "--output", metavar="OUT", help="where to write (default FILE.min.json)")
    s.add_argument("--max-runs", type=_positive_int, default=2000)
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("explore", help="bounded-exhaustive search of a scenario's schedules")
    s.add_argument("scenario", metavar="SCENARIO")
    s.add_argument("--preemption-bound", type=_nonneg_int, required=True, metavar="K")
    s.add_argument("--max-schedules", type=_positive_int)
    _add_common_run_args(s)
    s.add_argument("--out", default="failures", help="directory for replay files")
    s.add_argument("--stop-at-first", action="store_true", help="stop at the first fatal failure")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("bench", help="throughput figures, each beside its baseline")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--quick", action="store_true", help="small sizes (indicative only)")
    s.add_argument("--only", action="append", metavar="NAME", help="run one bench group")
    return p


def _add_common_run_args(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="scenario parameter (repeatable)",
    )
    s.add_argument(
        "--inject",
        action="append",
        default=[],
        metavar="SLUG",
        help="inject a catalogued bug (repeatable)",
    )
    s.add_argument("--no-lockdep", action="store_true", help="disable lockdep (raw speed)")
    s.add_argument(
        "--warn-count",
        action="store_true",
        help="count WARNs instead of stopping the run at the first",
    )
    s.add_argument(
        "--alloc-fail-probability",
        type=_probability,
        default=0.0,
        metavar="P",
        help="fail each allocation with probability P (a recorded choice)",
    )
    s.add_argument(
        "--alloc-fail-nth",
        type=_nonneg_int,
        default=0,
        metavar="N",
        help="fail the Nth allocation of every run",
    )


def _config(args: argparse.Namespace) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if args.no_lockdep:
        cfg["lockdep"] = False
    if args.warn_count:
        cfg["warn_fatal"] = False
    if args.alloc_fail_probability:
        cfg["alloc_fail_probability"] = args.alloc_fail_probability
    if args.alloc_fail_nth:
        cfg["alloc_fail_nth"] = args.alloc_fail_nth
    return cfg


def _bind_params(scenarios: list[Scenario], pairs: list[str]) -> list[dict[str, Any]]:
    """Apply each NAME=VALUE to every selected scenario that has NAME."""
    bound: list[dict[str, Any]] = [dict(sc.params) for sc in scenarios]
    for pair in pairs:
        name = pair.split("=", 1)[0]
        hit = False
        for i, sc in enumerate(scenarios):
            if name in sc.params:
                bound[i].update(sc.bind([pair]))
                hit = True
        if not hit:
            if "=" not in pair:
                raise ScenarioError(f"--param {pair!r}: expected NAME=VALUE")
            names = ", ".join(sc.name for sc in scenarios)
            raise ScenarioError(f"--param {name}: no selected scenario ({names}) has it")
    return bound


def _is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C, possibly wrapped in exception groups by Trio nurseries."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(KeyboardInterrupt) is not None
    return False


def _out(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=1)
    sys.stdout.write("\n")


# ---------------------------------------------------------------------- commands


def cmd_scenarios(args: argparse.Namespace) -> int:
    scs = builtin_scenarios()
    if args.json:
        _out(
            [
                {
                    "name": sc.name,
                    "description": sc.description,
                    "params": sc.params,
                    "tags": sorted(sc.tags),
                }
                for sc in scs.values()
            ]
        )
        return EXIT_OK
    width = max(len(n) for n in scs)
    for sc in scs.values():
        params = ", ".join(f"{k}={v}" for k, v in sc.params.items())
        print(f"{sc.name.ljust(width)}  {sc.description}" + (f"  [{params}]" if params else ""))
    return EXIT_OK


def cmd_bugs(args: argparse.Namespace) -> int:
    if args.json:
        _out([b.__dict__ for b in CATALOGUE.values()])
        return EXIT_OK
    if not CATALOGUE:
        print(
            "The bug catalogue is empty in this version: it arrives with the port of panthor_mmu.c."
        )
        return EXIT_OK
    for b in CATALOGUE.values():
        print(f"{b.slug}: {b.commit_title}\n    breaks: {b.breaks}\n    found by: {b.scenario}")
    return EXIT_OK


def cmd_fuzz(args: argparse.Namespace) -> int:
    from .campaign import (
        CampaignOptions,
        CampaignResult,
        run_campaign,
        run_campaign_parallel,
        spec_refs,
    )
    from .progress import ProgressBar
    from .runner import RunSpec

    for slug in args.inject:
        get_bug(slug)
    if args.scenarios:
        scenarios = [get_scenario(s) for s in args.scenarios]
    else:
        scenarios = list(builtin_scenarios().values())
    params = _bind_params(scenarios, args.param)
    config = _config(args)
    specs = [
        RunSpec.make(sc, p, config=config, inject=tuple(args.inject))
        for sc, p in zip(scenarios, params, strict=True)
    ]
    opts = CampaignOptions(
        runs=args.runs,
        time_budget=args.time_budget,
        seed=args.seed,
        strategy=args.strategy,
        depth=args.depth,
        jobs=args.jobs,
        out=args.out,
        keep_going=args.keep_going,
        witness_runs=args.witness_runs,
    )
    progress = ProgressBar(enabled=False if args.no_progress else None)
    result = CampaignResult()
    status = EXIT_OK
    try:
        if args.jobs > 1:
            run_campaign_parallel(spec_refs(specs), opts, progress, result)
        else:
            trio.run(run_campaign, specs, opts, progress, result)
    except BaseException as exc:
        if not _is_interrupt(exc):
            raise
        result.interrupted = True
        status = EXIT_INTERRUPTED
        if progress.enabled:
            sys.stderr.write("\n")
    if status != EXIT_INTERRUPTED:
        status = EXIT_FAILURE if result.failures else EXIT_OK
    if args.json:
        _out(
            {
                "version": __version__,
                "strategy": args.strategy,
                "seed": args.seed,
                "depth": args.depth,
                "injected": list(args.inject),
                "scenarios": [s.to_json() for s in result.scenarios],
                "runs": result.runs,
                "failures": result.failures,
                "elapsed_s": round(result.elapsed_s, 3),
                **({"interrupted": True} if result.interrupted else {}),
            }
        )
    else:
        _print_campaign(result)
    return status


def _print_campaign(result: Any) -> None:
    if not result.scenarios:
        print("no scenario ran")
        return
    width = max(len(s.name) for s in result.scenarios)
    for s in result.scenarios:
        verdict = f"FAILED ({len(s.failures)})" if s.failures else "ok"
        print(
            f"{s.name.ljust(width)}  {s.runs:>6} runs  {s.steps:>9} steps  "
            f"{s.elapsed_s:6.2f}s  {verdict}"
        )
        for f in s.failures:
            print(f"    {f.failure['kind']}: {f.failure['message']}")
            print(f"      run {f.run}, seed {f.seed}: {PROG} replay {f.replay}")
            if f.witness:
                print(f"      witness (a schedule where it deadlocks): {f.witness}")
    tail = " (interrupted)" if result.interrupted else ""
    print(
        f"{len(result.scenarios)} scenario(s), {result.runs} runs, {result.failures} "
        f"failure(s) in {result.elapsed_s:.2f}s{tail}"
    )


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import replay

    rf = ReplayFile.load(args.file)
    report = trio.run(replay, rf, args.times)
    k = report.last
    f = k.primary_failure
    if args.json:
        _out(
            {
                "file": args.file,
                "scenario": rf.scenario,
                "runs": report.runs,
                "reproduced": report.reproduced,
                "digest_matches": report.digest_matches,
                "failure": f.to_json() if f else None,
                "expected": rf.failure,
                "steps": k.steps,
            }
        )
    else:
        print(
            f"replaying {args.file}: scenario {rf.scenario}, "
            f"{len(rf.choices)} recorded choices, {rf.steps} steps"
        )
        want = f"{rf.failure.get('kind')}: {rf.failure.get('message')}"
        if report.reproduced:
            print(f"reproduced {report.reproduced}/{report.runs}: {want}")
        elif f is not None:
            print(
                f"did not reproduce ({report.reproduced}/{report.runs}); the run fails "
                f"differently: {f.kind}: {f.message}"
            )
        else:
            print(f"did not reproduce (0/{report.runs}): the run passes now (recorded: {want})")
        if report.digest_matches == report.runs:
            print(f"trace digest matches the recording ({report.digest_matches}/{report.runs})")
        else:
            print(
                f"trace digest differs from the recording in "
                f"{report.runs - report.digest_matches}/{report.runs} runs "
                f"(the model changed since it was recorded?)"
            )
        if args.trace:
            for g in k.failures:
                print()
                print(g.report or f"{g.kind}: {g.message}")
            print()
            print(k.trace.render_table())
    if args.perfetto:
        k.trace.write_chrome(args.perfetto)
        if not args.json:
            print(f"wrote {args.perfetto} (open it in https://ui.perfetto.dev)")
    return EXIT_FAILURE if f is not None else EXIT_OK


def cmd_shrink(args: argparse.Namespace) -> int:
    from .shrink import shrink

    rf = ReplayFile.load(args.file)
    result = trio.run(lambda: shrink(rf, max_runs=args.max_runs))
    out = (
        args.output
        or (args.file[: -len(".json")] if args.file.endswith(".json") else args.file) + ".min.json"
    )
    result.shrunk.save(out)
    if args.json:
        _out(
            {
                "file": args.file,
                "output": out,
                "runs": result.runs,
                "deviations_before": result.before,
                "deviations_after": result.after,
                "steps_before": rf.steps,
                "steps_after": result.shrunk.steps,
                "summary": result.summary(),
            }
        )
    else:
        print(
            f"shrunk {args.file} in {result.runs} runs: {result.before} -> {result.after} "
            f"deviations from the canonical schedule, {rf.steps} -> {result.shrunk.steps} steps"
        )
        print(result.summary())
        print(f"wrote {out}")
    return EXIT_FAILURE


def cmd_explore(args: argparse.Namespace) -> int:
    from .explore_cmd import explore_scenario
    from .runner import RunSpec

    for slug in args.inject:
        get_bug(slug)
    sc = get_scenario(args.scenario)
    params = _bind_params([sc], args.param)[0]
    spec = RunSpec.make(sc, params, config=_config(args), inject=tuple(args.inject))
    summary = trio.run(
        lambda: explore_scenario(
            spec, args.preemption_bound, args.max_schedules, args.out, args.stop_at_first
        )
    )
    if args.json:
        _out(summary)
    else:
        bound = args.preemption_bound
        scope = (
            f"every schedule with at most {bound} preemption{'s' if bound != 1 else ''}"
            if summary["complete"]
            else "stopped early"
        )
        print(
            f"{sc.name}: explored {summary['schedules']} schedules ({scope}), "
            f"{summary['failing_schedules']} failing"
        )
        for f in summary["failures"]:
            print(f"    {f['kind']}: {f['message']}")
            print(f"      first in schedule #{f['schedule']}: {PROG} replay {f['replay']}")
    return EXIT_FAILURE if summary["failures"] else EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import BenchOptions, python_version, run_benches

    figures = run_benches(BenchOptions(quick=args.quick), args.only)
    if args.json:
        _out(
            {
                "version": __version__,
                "python": python_version(),
                "figures": [f.to_json() for f in figures],
            }
        )
        return EXIT_OK
    for f in figures:
        line = f"{f.name:<24} {f.value:>10.2f} {f.unit}"
        if f.baseline is not None and f.baseline_value is not None:
            line += f"   {f.baseline}: {f.baseline_value:.2f} {f.unit}   ratio {f.ratio:.2f}"
        print(line)
    return EXIT_OK


COMMANDS = {
    "scenarios": cmd_scenarios,
    "bugs": cmd_bugs,
    "fuzz": cmd_fuzz,
    "replay": cmd_replay,
    "shrink": cmd_shrink,
    "explore": cmd_explore,
    "bench": cmd_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return COMMANDS[args.command](args)
    except (
        UsageError,
        ScenarioError,
        UnknownBug,
        ReplayFileError,
        ReplayDivergence,
        ShrinkError,
    ) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BaseException as exc:
        if not _is_interrupt(exc):
            raise
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # e.g. `| head`: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


__all__ = ["main", "replay_name"]
