"""The ``panthor-testbed`` command (contract: docs/cli.md).

Exit status: 0 ran and found nothing wrong; 1 ran and found a failure (for
``replay``: the recorded failure recurs); 2 bad usage or bad input (one line
on stderr, no traceback); 130 interrupted, after printing the summary so far
(every failure found is already on disk).

Every command is a thin layer over the Python API (``fuzz/api.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from panthor_testbed import __version__

# Only light modules here: `--help` and `scenarios` must not load the model
# (Trio, the simulated kernel, Hypothesis); each command imports what it needs.
from .bugs import UnknownBug
from .errors import InputError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PROG = "panthor-testbed"

# sched.core.strategy.STRATEGIES, spelled out so the parser loads no model
# code (a test checks the two agree).
STRATEGIES = ("portfolio", "random", "pct", "coverage")


class UsageError(InputError):
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
        help=(
            "portfolio (default: random walk and PCT at depths 1-3, alternating), random, pct, "
            "coverage (mutants of the runs that reached new coverage; docs/coverage.md)"
        ),
    )
    s.add_argument(
        "--depth",
        type=_positive_int,
        default=3,
        help="PCT bug depth with --strategy pct (default 3)",
    )
    _add_common_run_args(s)
    s.add_argument(
        "--jobs",
        type=_positive_int,
        default=1,
        help="worker processes of an embedded Dask cluster (default 1: this process); "
        "the same failures whatever N",
    )
    s.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run on an existing Dask cluster (its workers need panthor-testbed installed)",
    )
    s.add_argument(
        "--example-db",
        metavar="DIR|redis://HOST:PORT",
        help="replay the failing (and coverage-increasing) sequences kept there first; "
        "save this campaign's failing ones there",
    )
    s.add_argument(
        "--out",
        default="failures",
        help="directory for replay files and campaign.json (default failures)",
    )
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

    s = sub.add_parser(
        "replay",
        help="re-run a replay file; exit 1 if its failure recurs, 0 if not",
        description="Re-run a replay file. On the code it was recorded with the schedule "
        "is followed exactly; on changed code (a fix) it is followed by thread identity as "
        "far as it fits, then canonically. Exit 1 if a failure of the recorded signature "
        "recurs, 0 if not.",
    )
    s.add_argument("file", metavar="FILE")
    s.add_argument(
        "--exact", action="store_true", help="refuse (exit 2) a schedule that does not fit"
    )
    s.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a recorded parameter, e.g. fixed=true (repeatable)",
    )
    s.add_argument(
        "--scenario",
        metavar="PATH:FUNC",
        help="the scenario to run, when the file cannot find it (moved or renamed)",
    )
    s.add_argument("--trace", action="store_true", help="print the interleaving table")
    s.add_argument("--perfetto", metavar="OUT.json", help="write a Chrome/Perfetto trace")
    s.add_argument("--times", type=_positive_int, default=3, help="re-runs (default 3)")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("shrink", help="minimise a failing replay file")
    s.add_argument("file", metavar="FILE")
    s.add_argument("-o", "--output", metavar="OUT", help="where to write (default FILE.min.json)")
    s.add_argument("--max-runs", type=_positive_int, default=2000)
    s.add_argument(
        "--scenario", metavar="PATH:FUNC", help="the scenario, when the file cannot find it"
    )
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("explore", help="bounded-exhaustive search of a scenario's schedules")
    s.add_argument("scenario", metavar="SCENARIO")
    s.add_argument(
        "--preemption-bound",
        type=_nonneg_int,
        metavar="K",
        help="every schedule with at most K preemptions (default: deepen from 0 until a "
        "bound fails or the budget runs out)",
    )
    s.add_argument("--max-schedules", type=_positive_int, help="schedule budget (deepening: 20000)")
    s.add_argument("--time-budget", type=_seconds, metavar="S", help="seconds (deepening: 60)")
    _add_common_run_args(s)
    s.add_argument("--out", default="failures", help="directory for replay files")
    s.add_argument("--stop-at-first", action="store_true", help="stop at the first fatal failure")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser(
        "report",
        help="write one static HTML page for a campaign's output folder",
        description="Write one self-contained HTML page (no script, nothing loaded from "
        "elsewhere) for a campaign folder written by `fuzz --out DIR`: its distinct failures "
        "with their shrunk interleavings, the seed functions reached, the lock-order graph "
        "and runs/s over time.",
    )
    s.add_argument("dir", metavar="DIR", help="the campaign folder (with campaign.json)")
    s.add_argument(
        "-o", "--output", metavar="OUT.html", help="where to write (default DIR/report.html)"
    )
    s.add_argument(
        "--shrink-runs",
        type=_nonneg_int,
        default=300,
        metavar="N",
        help="executions to shrink each failure without a .min.json (default 300; 0: none)",
    )
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser(
        "bench", help="throughput figures, each beside its baseline (about 1.5 minutes)"
    )
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
        help="install the pre-fix code of a catalogued bug fixed before the seed (repeatable)",
    )
    s.add_argument(
        "--patch",
        action="append",
        default=[],
        metavar="SLUG",
        help="install the kernel's later fix of a catalogued bug still in the seed "
        "(repeatable; 'all' for every one)",
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


def _out(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=1)
    sys.stdout.write("\n")


# The status a command has settled on before it prints (returned if stdout
# turns out to be a closed pipe, e.g. `| head`, so the verdict is not lost).
_status = EXIT_OK


def _settle(status: int) -> int:
    global _status
    _status = status
    return status


# ---------------------------------------------------------------------- commands


def cmd_scenarios(args: argparse.Namespace) -> int:
    from .scenario import builtin_index

    scs = builtin_index()
    if args.json:
        _out([sc.to_json() for sc in scs])
        return EXIT_OK
    width = max(len(sc.name) for sc in scs)
    for sc in scs:
        params = ", ".join(f"{k}={v}" for k, v in sc.params.items())
        print(f"{sc.name.ljust(width)}  {sc.description}" + (f"  [{params}]" if params else ""))
    return EXIT_OK


def cmd_bugs(args: argparse.Namespace) -> int:
    from .bugs import catalogue

    bugs = catalogue()
    if args.json:
        _out([b.to_json() for b in bugs])
        return EXIT_OK
    for b in bugs:
        how = "--inject" if b.kind == "pre-seed" else "--patch"
        # The entry's config as the fuzz options that set it.
        flags = "".join(f" --{k.replace('_', '-')} {v}" for k, v in sorted(b.config.items()))
        print(
            f"{b.slug} ({b.kind}, {how}): {b.commit} {b.title}\n"
            f"    functions: {', '.join(b.functions)}\n"
            f"    breaks: {b.breaks}\n    found by: {b.scenario}{flags}"
        )
    return EXIT_OK


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    if name == "scenarios":
        return cmd_scenarios
    if name == "bugs":
        return cmd_bugs
    from . import commands  # the commands that run the model

    fn: Callable[[argparse.Namespace], int] = getattr(commands, f"cmd_{name}")
    return fn


def main(argv: Sequence[str] | None = None) -> int:
    global _status
    _status = EXIT_OK
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            sys.stdout.flush()
            return EXIT_USAGE
        status = _command(args.command)(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return status
    except (InputError, UnknownBug) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `| head` closed our stdout: not an error; keep Python's exit-time
        # flush from failing again on the dead pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _status
    except BaseException as exc:
        if not _is_interrupt(exc):
            raise
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C, possibly wrapped in exception groups by Trio nurseries."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(KeyboardInterrupt) is not None
    return False


__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "PROG", "main"]
