"""Bug figures: time to find each catalogue bug, beside a naive stress test's.

For every catalogue entry (``fuzz/bugs``), the entry's scenario is run with
its selection: a ``pre-seed`` bug with ``inject=[slug], patch=["all"]``, a
``latent``/``upstream`` one with ``patch`` = every *other* patchable entry
(so only it is left in the model).

* ``time-to-bug-<slug>``: wall seconds of ``api.fuzz(scenario, runs=CAP_RUNS,
  time_budget=cap, seed=s, ...)`` (the default portfolio strategy) until it
  returns with a failure, less the time it spent writing that failure's
  replay file (``Found.replay_s``: one more run, confirming the file replays;
  naive stress writes none), median over seeds ``1..SEEDS``; a seed that
  finds nothing counts as the cap.
* ``naive-stress-<slug>`` (its baseline): the same scenario, selection and
  model code under :class:`~panthor_testbed.sched.core.naive.NaiveStress`
  (Trio-like FIFO scheduling, random ``trio.sleep(0)`` checkpoints and
  real-time delays, uniformly random inputs), run after run through the
  campaign's own runner (``runner.execute``, one lockdep graph per seed)
  until a run fails or the cap; median over the same seeds. It does not run
  real Trio tasks: the model's threads stay coroutines of one task, only
  their order is Trio-like.

Either way a seed finds the bug only if its first failure *is* the entry's
(``Bug.found_as``: the failure kind and words of the report); a seed whose
first failure is another finding of the seed counts as the cap, as one that
finds nothing does (the selection leaves one catalogue bug in, but a run may
trip something else first). The note says how many seeds found the bug, how
many stopped at another failure first, and the kinds of those.
Both figures of an entry are measured in one process, one after the other,
so their ratio (time-to-bug / naive) holds on a noisy machine; the entries
are spread over ``JOBS`` (2) worker processes, one entry per process at a
time, which keeps the group at about 4-5 minutes on 2 cores (caps:
``CAP_S`` = 4 s per seed, 10 seeds; ``--quick``: 3 s, 3 seeds; once more
than half the seeds hit the cap the median is the cap, and the rest are not
run). "capped" in the note means naive stress never found a failure within
the cap (the value is then the cap). A progress line per entry goes to stderr as it finishes.
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from panthor_testbed.sched.core.naive import CHECKPOINT_P, DELAY_P

from .bench import BenchOptions, Figure, bench

SEEDS = 10
CAP_S = 4.0  # per seed, time-to-bug and naive alike
JOBS = 2  # entries measured in this many processes at once (each entry's pair in one)
QUICK_SEEDS = 3
QUICK_CAP_S = 3.0
CAP_RUNS = 100_000  # the time cap is what ends a campaign that finds nothing

Entry = tuple[str, str, list[str], list[str]]  # (slug, scenario, inject, patch)
Failure = dict[str, Any]  # a finding's JSON: kind, message, ...
Matcher = Callable[[Failure], bool]


@dataclass
class Measured:
    """The per-seed wall times of one way of looking for one bug.

    A seed that finds nothing counts as ``cap``. Once more than half of the
    ``seeds`` have hit the cap the median *is* the cap whatever the others
    give, so :func:`measure` stops there (``skipped`` seeds are not run).
    """

    seeds: int
    cap: float
    times: list[float] = field(default_factory=list)
    found: int = 0  # seeds that found the bug within the cap
    other: int = 0  # seeds whose first failure was another finding
    runs: int = 0  # runs over all seeds run
    kinds: list[str] = field(default_factory=list)  # the other findings' kinds, first seen first

    def add(self, wall: float, failure: Failure | None, runs: int, is_the_bug: Matcher) -> None:
        self.runs += runs
        if failure is None or wall >= self.cap:
            self.times.append(self.cap)
            return
        if not is_the_bug(failure):
            self.other += 1
            self.times.append(self.cap)
            kind = str(failure.get("kind"))
            if kind not in self.kinds:
                self.kinds.append(kind)
            return
        self.found += 1
        self.times.append(wall)

    @property
    def capped(self) -> int:
        return len(self.times) - self.found

    @property
    def decided(self) -> bool:
        """Is the median already the cap (more than half the seeds capped)?"""
        return self.capped > self.seeds // 2

    @property
    def skipped(self) -> int:
        return self.seeds - len(self.times)

    @property
    def median(self) -> float:
        if self.decided:
            return self.cap
        return statistics.median(self.times) if self.times else 0.0

    def describe(self) -> str:
        out = f"{self.found}/{len(self.times)} seeds found it ({self.runs} runs"
        if self.other:
            out += f"; {self.other} stopped at another failure first: {'/'.join(self.kinds)}"
        out += ")"
        if self.skipped:
            out += f", {self.skipped} seeds not run (the median was already the cap)"
        return out


def _catalogue() -> list[Entry]:
    """``(slug, scenario, inject, patch)`` of every catalogue entry (tests replace this)."""
    from .bugs import catalogue, latent_slugs

    patchable = latent_slugs()
    out: list[Entry] = []
    for bug in catalogue():
        if bug.kind == "pre-seed":
            out.append((bug.slug, bug.scenario, [bug.slug], ["all"]))
        else:
            out.append((bug.slug, bug.scenario, [], [s for s in patchable if s != bug.slug]))
    return out


def uninstall() -> None:
    """Leave the model as the seed has it (the runner keeps a selection installed)."""
    from .bugs import ensure_installed

    ensure_installed(frozenset(), frozenset())


def time_to_bug(
    scenario: str,
    inject: list[str],
    patch: list[str],
    seed: int,
    cap: float,
    *,
    config: dict[str, Any] | None = None,
) -> tuple[float, Failure | None, int]:
    """One portfolio campaign: ``(wall seconds, its first failure or None, runs)``."""
    from . import api

    t0 = time.monotonic()
    try:
        result = api.fuzz(
            scenario,
            runs=CAP_RUNS,
            time_budget=cap,
            seed=seed,
            inject=inject,
            patch=patch,
            config=config or None,
        )
        wall = time.monotonic() - t0
    finally:
        uninstall()
    sc = result.scenarios[0]
    if not sc.failures:
        return wall, None, sc.runs
    # Naive stress writes no replay file: the run that confirms one is not counted.
    return wall - sc.failures[0].replay_s, dict(sc.failures[0].failure), sc.runs


def naive_stress(
    scenario: str,
    inject: list[str],
    patch: list[str],
    seed: int,
    cap: float,
    *,
    config: dict[str, Any] | None = None,
) -> tuple[float, Failure | None, int]:
    """NaiveStress runs until one fails or ``cap`` seconds: ``(wall, failure or None, runs)``.

    Run ``i`` of seed ``s`` uses ``NaiveStress(derive_seed(s, "naive-stress:" + scenario, i))``;
    the runs share one lockdep graph (as a campaign batch's runs do, and as one
    boot of a stress-tested kernel would), and the interrupt estimate follows the
    run lengths seen, as the campaign's does.
    """
    import trio

    from panthor_testbed.sched.core.naive import NaiveStress
    from panthor_testbed.sched.core.strategy import StepsEstimate
    from panthor_testbed.sched.locking.lockdep import Lockdep

    from .runner import RunSpec, derive_seed, execute
    from .scenario import builtin_scenarios

    spec = RunSpec.make(
        builtin_scenarios()[scenario],
        {},
        config=config or None,
        inject=tuple(inject),
        patch=tuple(patch),
    )

    async def loop() -> tuple[float, Failure | None, int]:
        graph = Lockdep()
        estimate = StepsEstimate()
        t0 = time.monotonic()
        i = 0
        while True:
            strategy = NaiveStress(
                derive_seed(seed, f"naive-stress:{scenario}", i), steps_estimate=estimate.value
            )
            k = await execute(spec, strategy, graph, run_id=i)
            i += 1
            estimate.add(k.steps)
            wall = time.monotonic() - t0
            f = k.primary_failure
            if f is not None:
                return wall, {"kind": f.kind, "message": f.message}, i
            if wall >= cap:
                return wall, None, i
            await trio.lowlevel.checkpoint()

    try:
        return trio.run(loop)
    finally:
        uninstall()


Finder = Callable[[str, list[str], list[str], int, float], tuple[float, Failure | None, int]]


def measure(
    finder: Finder,
    scenario: str,
    inject: list[str],
    patch: list[str],
    seeds: int,
    cap: float,
    is_the_bug: Matcher,
) -> Measured:
    m = Measured(seeds, cap)
    for s in range(1, seeds + 1):
        wall, failure, runs = finder(scenario, inject, patch, s, cap)
        m.add(wall, failure, runs, is_the_bug)
        if m.decided:
            break
    return m


def measure_entry(entry: Entry, seeds: int, cap: float) -> tuple[Measured, Measured]:
    """Both ways for one entry, one after the other in this process: (portfolio, naive)."""
    from .bugs import get_bug

    slug, scenario, inject, patch = entry
    bug = get_bug(slug)
    # The entry's own config (allocation failures for some), for both.
    ttb_finder = functools.partial(time_to_bug, config=bug.config)
    naive_finder = functools.partial(naive_stress, config=bug.config)
    ttb = measure(ttb_finder, scenario, inject, patch, seeds, cap, bug.matches)
    naive = measure(naive_finder, scenario, inject, patch, seeds, cap, bug.matches)
    return ttb, naive


def _measure_all(
    entries: list[Entry], seeds: int, cap: float, jobs: int
) -> Iterator[tuple[int, Measured, Measured]]:
    """``(index, portfolio, naive)`` per entry, as they finish (``jobs`` processes)."""
    if jobs <= 1 or len(entries) <= 1:
        for i, entry in enumerate(entries):
            yield (i, *measure_entry(entry, seeds, cap))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")  # a fresh model per worker, no forked Trio state
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(measure_entry, e, seeds, cap): i for i, e in enumerate(entries)}
        for fut in as_completed(futures):
            yield (futures[fut], *fut.result())


def _figures(entry: Entry, ttb: Measured, naive: Measured, seeds: int, cap: float) -> list[Figure]:
    slug, scenario, inject, patch = entry
    chosen = "all" if patch == ["all"] else f"all but {slug}"
    capped = "; naive capped (never found, value = cap)" if naive.found == 0 else ""
    note = (
        f"{scenario}, inject={inject} patch={chosen}; median of {seeds} seeds, "
        f"cap {cap:g} s/seed (a seed that finds nothing counts as the cap); "
        f"portfolio: {ttb.describe()}; naive: {naive.describe()}{capped}; "
        "a seed counts only if its first failure is the entry's (found_as); "
        "time-to-bug leaves out writing the replay file (one confirming run); "
        "naive = NaiveStress: FIFO run queue, "
        f"random checkpoints (p={CHECKPOINT_P:g}, {DELAY_P:g} of them real-time delays), "
        "uniform random inputs, run by the executor (not real Trio tasks)"
    )
    return [
        Figure(f"naive-stress-{slug}", naive.median, "s", note=note),
        Figure(
            f"time-to-bug-{slug}", ttb.median, "s", f"naive-stress-{slug}", naive.median, note=note
        ),
    ]


@bench("bugs")
def bench_bugs(options: BenchOptions) -> list[Figure]:
    seeds = QUICK_SEEDS if options.quick else SEEDS
    cap = QUICK_CAP_S if options.quick else CAP_S
    entries = _catalogue()
    done: dict[int, list[Figure]] = {}
    for i, ttb, naive in _measure_all(entries, seeds, cap, JOBS):
        done[i] = _figures(entries[i], ttb, naive, seeds, cap)
        capped = ", naive capped" if naive.found == 0 else ""
        print(
            f"bench bugs [{len(done)}/{len(entries)}] {entries[i][0]}: "
            f"time-to-bug {ttb.median:.3f} s ({ttb.found}/{len(ttb.times)} seeds found), "
            f"naive {naive.median:.3f} s ({naive.found}/{len(naive.times)} found){capped}",
            file=sys.stderr,
            flush=True,
        )
    return [f for i in range(len(entries)) for f in done[i]]
