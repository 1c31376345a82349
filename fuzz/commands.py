"""The commands that run the model (``fuzz``, ``replay``, ``shrink``, ``explore``, ``bench``).

Imported only once the command line asks for one of them (``cli.py`` stays
light for ``--help`` and ``scenarios``); each is a thin layer over
``api.py``, printing what the contract in docs/cli.md promises.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from panthor_testbed import __version__

from . import api
from .bugs import selection
from .cli import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROG,
    UsageError,
    _out,
    _settle,
)

__all__ = ["cmd_bench", "cmd_explore", "cmd_fuzz", "cmd_replay", "cmd_report", "cmd_shrink"]


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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def cmd_fuzz(args: argparse.Namespace) -> int:
    from .progress import ProgressBar

    selection(args.inject, args.patch)
    progress = ProgressBar(enabled=False if args.no_progress else None)
    status = EXIT_OK
    try:
        result = api.fuzz(
            args.scenarios or None,
            runs=args.runs,
            time_budget=args.time_budget,
            strategy=args.strategy,
            seed=args.seed,
            depth=args.depth,
            params=args.param,
            inject=args.inject,
            patch=args.patch,
            config=_config(args),
            out=args.out,
            keep_going=args.keep_going,
            witness_runs=args.witness_runs,
            jobs=args.jobs,
            scheduler=args.scheduler,
            example_db=args.example_db,
            progress=progress,
        )
    except api.Interrupted as stop:
        assert isinstance(stop.result, api.CampaignResult)
        result = stop.result
        status = EXIT_INTERRUPTED
    if status != EXIT_INTERRUPTED:
        status = EXIT_FAILURE if result.failures else EXIT_OK
    _settle(status)
    if args.json:
        _out(
            {
                "version": __version__,
                "strategy": args.strategy,
                "seed": args.seed,
                "depth": args.depth,
                "injected": list(args.inject),
                "patched": list(args.patch),
                "scenarios": [s.to_json() for s in result.scenarios],
                "runs": result.runs,
                "failures": result.failures,
                "elapsed_s": round(result.elapsed_s, 3),
                "workers": result.workers,
                **({"interrupted": True} if result.interrupted else {}),
            }
        )
    else:
        _print_campaign(result)
    return status


def _print_campaign(result: Any) -> None:
    from .campaign import INTERRUPTED, NOT_RUN

    if not result.scenarios:
        print("no scenario ran")
        return
    width = max(len(s.name) for s in result.scenarios)
    for s in result.scenarios:
        verdict = f"FAILED ({len(s.failures)})" if s.failures else "ok"
        if s.status == INTERRUPTED:
            verdict = f"{verdict}, interrupted" if s.failures else "interrupted"
        elif s.status == NOT_RUN:
            verdict = "not run"
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

    rf = api.read_replay(args.file)
    for w in rf.warnings:
        print(f"{PROG}: warning: {w}", file=sys.stderr)
    report = api.replay(
        rf,
        times=args.times,
        exact=args.exact,
        params=args.param,
        scenario=args.scenario,
        perfetto=args.perfetto,
    )
    k = report.last
    f = k.primary_failure
    status = _settle(EXIT_FAILURE if report.recurs else EXIT_OK)
    d = report.divergence
    if args.json:
        _out(
            {
                "file": args.file,
                "scenario": rf.scenario,
                **report.to_json(),
                "recurs": report.recurs,
                "failure": f.to_json() if f else None,
                "expected": rf.failure,
                "steps": k.steps,
                **({"warnings": rf.warnings} if rf.warnings else {}),
                **({"perfetto": args.perfetto} if args.perfetto else {}),
            }
        )
        return status
    print(
        f"replaying {args.file}: scenario {rf.scenario}, "
        f"{rf.n_choices} recorded choices, {rf.steps} steps"
    )
    if d is not None:
        print(
            f"the recorded schedule no longer fits the run at step {d.step} "
            f"(choice #{d.index} of {report.recorded}): {d.why}"
        )
        print(
            f"followed it by thread identity from there ({report.followed} of "
            f"{report.recorded} recorded choices taken), then canonically"
        )
    want = f"{rf.failure.get('kind')}: {rf.failure.get('message')}"
    how = "" if d is None else f" with the schedule followed up to step {d.step}"
    if report.recurs:
        got = f"{f.kind}: {f.message}" if f is not None else want
        print(f"reproduced {report.reproduced}/{report.runs}{how}: {got}")
    elif f is not None:
        print(
            f"did not reproduce ({report.reproduced}/{report.runs}){how}; the run fails "
            f"differently: {f.kind}: {f.message}"
        )
    else:
        print(f"did not reproduce (0/{report.runs}){how}: the run passes now (recorded: {want})")
    if d is None:
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
        print(f"wrote {args.perfetto} (open it in https://ui.perfetto.dev)")
    return status


def cmd_shrink(args: argparse.Namespace) -> int:

    out = (
        args.output
        or (args.file[: -len(".json")] if args.file.endswith(".json") else args.file) + ".min.json"
    )
    rf = api.read_replay(args.file)
    result = api.shrink(rf, max_runs=args.max_runs, scenario=args.scenario, output=out)
    _settle(EXIT_FAILURE)
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
                "followed": "exact" if result.exact else "by-identity",
                "summary": result.summary(),
                **(
                    {"params_before": result.params_before, "params_after": result.shrunk.params}
                    if result.params_before is not None
                    else {}
                ),
            }
        )
    else:
        if not result.exact:
            print(
                f"the code changed since {args.file} was recorded: shrinking the run that "
                f"follows it by thread identity"
            )
        print(
            f"shrunk {args.file} in {result.runs} runs: {result.before} -> {result.after} "
            f"deviations from the canonical schedule, {rf.steps} -> {result.shrunk.steps} steps"
        )
        print(result.summary())
        if result.params_before is not None:
            smaller = ", ".join(
                f"{n} {result.params_before[n]} -> {v}"
                for n, v in result.shrunk.params.items()
                if result.params_before.get(n) != v
            )
            print(f"a smaller scenario fails the same way: {smaller}")
        print(f"wrote {out}")
    return EXIT_FAILURE


def cmd_explore(args: argparse.Namespace) -> int:

    selection(args.inject, args.patch)
    status = EXIT_OK
    try:
        summary = api.explore(
            args.scenario,
            preemption_bound=args.preemption_bound,
            max_schedules=args.max_schedules,
            params=args.param,
            inject=args.inject,
            patch=args.patch,
            config=_config(args),
            out=args.out,
            stop_at_first=args.stop_at_first,
            time_budget=args.time_budget,
        )
    except api.Interrupted as stop:
        assert isinstance(stop.result, api.ExploreSummary)
        summary = stop.result
        status = EXIT_INTERRUPTED
    if status != EXIT_INTERRUPTED:
        status = EXIT_FAILURE if summary.failures else EXIT_OK
    _settle(status)
    if args.json:
        _out(summary.to_json())
        return status
    bound = summary.preemption_bound
    if summary.interrupted:
        scope = "interrupted"
    elif summary.deepening:
        if summary.failing_bound is not None:
            scope = f"deepened to bound {bound}: the smallest failing bound is {bound}"
        elif summary.complete:
            scope = f"deepened to bound {bound}: every schedule, none failing"
        else:
            proven = summary.proven_bound
            scope = (
                f"deepened to bound {bound}, budget used up; every schedule with at most "
                f"{_plural(proven, 'preemption')} passes"
                if proven is not None
                else f"budget used up at bound {bound}"
            )
    elif summary.complete:
        scope = f"every schedule with at most {_plural(bound, 'preemption')}"
    else:
        scope = "stopped early"
    print(
        f"{summary.scenario}: explored {summary.schedules} schedules ({scope}), "
        f"{summary.failing_schedules} failing"
    )
    for f in summary.failures:
        print(f"    {f['kind']}: {f['message']}")
        print(f"      first in schedule #{f['schedule']}: {PROG} replay {f['replay']}")
    return status


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    summary = write_report(args.dir, output=args.output, shrink_runs=args.shrink_runs)
    _settle(EXIT_OK)
    if args.json:
        _out(summary.to_json())
        return EXIT_OK
    if summary.functions_reached is None:
        cov = "no coverage recorded"
    else:
        cov = f"{summary.functions_reached}/{summary.functions_total} seed functions reached"
    pairs = "" if summary.lock_pairs is None else f", {_plural(summary.lock_pairs, 'lock pair')}"
    print(
        f"wrote {summary.output}: {_plural(summary.failures, 'distinct failure')} "
        f"({summary.shrunk} shrunk), {cov}{pairs}"
    )
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import BenchOptions, all_benches, python_version, run_benches

    if args.only:
        groups = list(dict.fromkeys(name for name, _ in all_benches()))
        unknown = [g for g in args.only if g not in groups]
        if unknown:
            raise UsageError(
                f"--only {unknown[0]}: no such bench group (groups: {', '.join(groups)})"
            )
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
