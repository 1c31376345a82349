"""Executor figures: one scheduling decision, one whole scenario execution."""

from __future__ import annotations

import time

import trio
import trio.testing

from panthor_testbed.sched import Kernel, KernelConfig, RandomWalk, RoundRobin, preempt
from panthor_testbed.sched.locking.lockdep import Lockdep

from .bench import BenchOptions, Figure, bench, best_of


def _executor_decision_us(n: int) -> float:
    """Two simulated threads alternating at yield points; every decision is a switch."""

    async def scenario(k: Kernel) -> None:
        async def body() -> None:
            for _ in range(n // 2):
                await preempt()

        k.spawn(body, name="ping")
        k.spawn(body, name="pong")

    async def main() -> float:
        k = Kernel(RoundRobin(), KernelConfig(max_steps=10 * n + 100), lockdep=Lockdep())
        assert k.tracing and k.lockdep is not None
        t0 = time.perf_counter()
        await k.run(scenario)
        return (time.perf_counter() - t0) / max(1, len(k.choices)) * 1e6

    return trio.run(main)


def _trio_event_switch_us(n: int) -> float:
    """Two bare Trio tasks ping-ponging through trio.Event."""

    async def main() -> float:
        events = [trio.Event(), trio.Event()]

        async def player(i: int) -> None:
            for _ in range(n // 2):
                await events[i].wait()
                events[i] = trio.Event()
                events[1 - i].set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(player, 0)
            nursery.start_soon(player, 1)
            await trio.testing.wait_all_tasks_blocked()
            t0 = time.perf_counter()
            events[0].set()
        return (time.perf_counter() - t0) / n * 1e6

    return trio.run(main)


@bench("executor")
def executor_figures(options: BenchOptions) -> list[Figure]:
    n = options.n(100_000, 2_000)
    repeats = options.n(5, 1)
    decision = best_of(repeats, lambda: _executor_decision_us(n))
    switch = best_of(repeats, lambda: _trio_event_switch_us(n))
    figures = [
        Figure(
            "executor-decision",
            decision,
            baseline="trio-event-switch",
            baseline_value=switch,
            note="round-robin, tracing and lockdep on",
        )
    ]
    figures.append(_scenario_execution(options))
    return figures


def _scenario_execution(options: BenchOptions) -> Figure:
    from .scenario import get_scenario

    abba = get_scenario("abba")
    runs = options.n(2_000, 50)
    repeats = options.n(5, 1)
    threads = 3  # init + the two lockers

    async def executions() -> float:
        graph = Lockdep()
        # warm up (imports, caches)
        await Kernel(RandomWalk(0), lockdep=graph).run(abba.fn)
        t0 = time.perf_counter()
        for i in range(runs):
            k = Kernel(RandomWalk(i), lockdep=graph, run_id=i)
            await k.run(abba.fn)
        return (time.perf_counter() - t0) / runs * 1e6

    def empty_trio_runs() -> float:
        async def task() -> None:
            pass

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                for _ in range(threads):
                    nursery.start_soon(task)

        n = max(10, runs // 4)
        t0 = time.perf_counter()
        for _ in range(n):
            trio.run(main)
        return (time.perf_counter() - t0) / n * 1e6

    value = best_of(repeats, lambda: trio.run(executions))
    base = best_of(repeats, empty_trio_runs)
    return Figure(
        "scenario-execution",
        value,
        baseline="trio-run",
        baseline_value=base,
        note="abba, random walk, set-up + run + oracle checks",
    )
