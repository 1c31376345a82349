"""The default campaign strategy aims well: shallow bugs in a few runs, deep ones by PCT.

The portfolio alternates random walk and PCT at depths 1..3, with the steps
estimate taken from the runs already seen; explore deepens its bound until
a schedule fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import trio

from panthor_testbed.fuzz.campaign import (
    CampaignOptions,
    CampaignResult,
    ProgressSink,
    run_campaign,
)
from panthor_testbed.fuzz.runner import RunSpec
from panthor_testbed.fuzz.scenario import from_function
from panthor_testbed.sched import (
    Kernel,
    Mutex,
    WaitQueue,
    mutex_lock,
    mutex_unlock,
    preempt,
)
from panthor_testbed.sched.core.explore import explore_deepening
from panthor_testbed.sched.core.failure import InvariantViolation
from panthor_testbed.sched.core.harness import explore_all
from panthor_testbed.sched.core.strategy import StepsEstimate, make_strategy, portfolio_member


async def bounded_buffer(k: Kernel, items: int = 4, size: int = 2) -> None:
    """Two consumers re-check the buffer with ``if`` instead of ``while``."""
    lock = Mutex("buf_lock")
    not_empty = WaitQueue("not_empty")
    not_full = WaitQueue("not_full")
    buf: list[int] = []

    async def producer() -> None:
        for i in range(items):
            await mutex_lock(lock)
            while len(buf) >= size:
                await mutex_unlock(lock)
                await not_full.wait()
                await mutex_lock(lock)
            buf.append(i)
            not_empty.wake_one()
            await mutex_unlock(lock)

    async def consumer() -> None:
        for _ in range(items // 2):
            await mutex_lock(lock)
            if not buf:  # the bug: a woken consumer does not re-check
                await mutex_unlock(lock)
                await not_empty.wait()
                await mutex_lock(lock)
            if not buf:
                raise InvariantViolation("consumer woke to an empty buffer")
            buf.pop(0)
            not_full.wake_one()
            await mutex_unlock(lock)
            await preempt()

    k.spawn(producer, name="producer")
    k.spawn(consumer, name="consumer-0")
    k.spawn(consumer, name="consumer-1")


def _campaign(seed: int, runs: int, tmp: Path) -> CampaignResult:
    spec = RunSpec.make(from_function(bounded_buffer, name="bounded-buffer"))
    result = CampaignResult()
    opts = CampaignOptions(runs=runs, seed=seed, out=str(tmp))
    trio.run(run_campaign, [spec], opts, ProgressSink(), result)
    return result


def test_the_portfolio_turns_random_walk_pct_and_sticky_walk() -> None:
    members = [portfolio_member(i) for i in range(10)]
    assert members == [
        ("random", 0),
        ("pct", 1),
        ("sticky", 50),
        ("random", 0),
        ("pct", 2),
        ("sticky", 20),
        ("random", 0),
        ("pct", 3),
        ("sticky", 10),
        ("random", 0),
    ]
    assert make_strategy("portfolio", 7, run_index=4).describe()["depth"] == 2
    assert make_strategy("portfolio", 7, run_index=5).describe()["stretch"] == 20


def test_the_sticky_walk_switches_about_once_per_stretch() -> None:
    """Two always-runnable threads: the switches per decision are about 1/stretch of
    the decisions times the chance that the uniform pick is the other thread (1/2)."""
    from panthor_testbed.sched.core.strategy import StickyWalk

    class T:
        def __init__(self, tid: int) -> None:
            self.tid = tid

    a, b = T(1), T(2)
    threads: Any = [a, b]
    for stretch in (10, 50):
        s = StickyWalk(3, stretch)
        cur: Any = a
        switches = 0
        for _ in range(20_000):
            nxt: Any = s.pick(cast(Any, None), cur, threads)
            switches += nxt is not cur
            cur = nxt
        assert abs(switches / 20_000 - 0.5 / stretch) < 0.25 / stretch, (stretch, switches)
        assert s.pick(cast(Any, None), None, threads) in threads


def test_the_steps_estimate_comes_from_the_runs_seen() -> None:
    est = StepsEstimate()
    assert est.value == 100
    for steps in (10, 20, 30):
        est.add(steps)
    assert est.value == 20
    strategy = make_strategy("portfolio", 1, steps_estimate=est.value, run_index=1)
    assert strategy.describe()["steps_estimate"] == 20


def test_the_default_campaign_finds_a_shallow_bug_in_a_few_runs(tmp_path: Path) -> None:
    for seed in range(1, 6):
        result = _campaign(seed, 50, tmp_path)
        found = result.scenarios[0].failures
        assert found, f"seed {seed}: no failure in 50 runs"
        assert found[0].failure["kind"] == "invariant"


def test_iterative_deepening_reports_the_smallest_failing_bound() -> None:
    from panthor_testbed.sched.core.kernel import Kernel as K

    async def main() -> tuple[int | None, list[int]]:
        async def run_one(strategy: object, index: int) -> K:
            k = K(strategy)  # type: ignore[arg-type]
            await k.run(bounded_buffer)
            return k

        r = await explore_deepening(run_one, max_schedules=20_000)
        return r.failing_bound, [b for b, _ in r.bounds]

    failing, bounds = trio.run(main)
    assert failing is not None and bounds == list(range(failing + 1))
    # the bound below passes exhaustively, the failing one does not
    assert not explore_all(bounded_buffer, preemption_bound=failing - 1).failing
    assert explore_all(bounded_buffer, preemption_bound=failing).failing


def test_iterative_deepening_stops_when_a_bound_adds_no_schedule() -> None:
    async def tiny(k: Kernel) -> None:
        m = Mutex("m")

        async def t() -> None:
            await mutex_lock(m)
            await mutex_unlock(m)

        k.spawn(t, name="a")

    async def main() -> tuple[int | None, int | None, int]:
        async def run_one(strategy: object, index: int) -> Kernel:
            k = Kernel(strategy)  # type: ignore[arg-type]
            await k.run(tiny)
            return k

        r = await explore_deepening(run_one)
        return r.failing_bound, r.proven_bound, len(r.bounds)

    failing, proven, n = trio.run(main)
    assert failing is None and proven is not None and n == proven + 1
