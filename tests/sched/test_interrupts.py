"""Interrupts and timers land between any two yield points, not only at quiescence.

At every decision where a timer is pending, firing the earliest one is an
option beside the runnable threads, for every strategy (random walk, PCT,
Hypothesis data, replay, exhaustive search, where it costs one preemption).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from panthor_testbed.sched import (
    IRQ_TID,
    NSEC_PER_MSEC,
    NSEC_PER_SEC,
    NSEC_PER_USEC,
    PCT,
    HypothesisData,
    InvariantViolation,
    Kernel,
    RandomWalk,
    Replay,
    msleep,
    preempt,
    read_poll_timeout,
)
from panthor_testbed.sched.core.harness import explore_all, run


def window_probe(due_ns: int) -> Any:
    """A poller reads a flag twice around one yield point; a timer sets the flag."""

    async def scenario(k: Kernel) -> None:
        flag = {"v": 0}

        def irq() -> None:
            flag["v"] = 1

        k.add_timer(due_ns, irq, "flag irq")

        async def poller() -> None:
            x = flag["v"]
            await preempt()
            y = flag["v"]
            if x != y:
                raise InvariantViolation("the interrupt landed between the two reads")

        k.spawn(poller, name="poller")

    return scenario


def _kind(k: Kernel) -> str | None:
    f = k.primary_failure
    return f.kind if f is not None else None


def test_the_canonical_schedule_never_fires_a_timer_early() -> None:
    k = run(window_probe(10 * NSEC_PER_USEC))
    assert k.failures == []
    assert IRQ_TID not in k.choices
    assert k.now == 0  # the run ended (every thread exited) before the timer was due


def test_exhaustive_search_finds_the_interrupt_inside_the_window_at_bound_1() -> None:
    r0 = explore_all(window_probe(10 * NSEC_PER_USEC), preemption_bound=0)
    assert r0.complete and r0.schedules == 1 and not r0.failing
    r1 = explore_all(window_probe(10 * NSEC_PER_USEC), preemption_bound=1)
    assert r1.complete and len(r1.failing) == 1
    k, choices = r1.failing[0]
    assert _kind(k) == "invariant"
    assert IRQ_TID in choices


def test_exhaustive_search_counts_an_early_interrupt_as_a_preemption() -> None:
    """Bound 1 allows one early firing; the window needs none before it and one in it."""
    r = explore_all(window_probe(10 * NSEC_PER_USEC), preemption_bound=1)
    # init exits (fire now, or not), then the poller's yield point (fire now, or not):
    # schedules with at most one early firing: none, at the first, at the second.
    assert r.schedules == 3


def test_random_walk_finds_the_interrupt_inside_the_window() -> None:
    for due in (10 * NSEC_PER_USEC, NSEC_PER_MSEC, 5 * NSEC_PER_SEC):
        found = [
            s
            for s in range(400)
            if _kind(run(window_probe(due), strategy=RandomWalk(s, steps_estimate=4)))
        ]
        assert found, f"random walk never hit the window of a timer due in {due} ns"


def test_pct_finds_the_interrupt_inside_the_window() -> None:
    found = [
        s
        for s in range(400)
        if _kind(run(window_probe(10 * NSEC_PER_USEC), strategy=PCT(s, 2, steps_estimate=4)))
    ]
    assert found


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_hypothesis_schedules_include_interrupts(data: st.DataObject) -> None:
    k = run(window_probe(10 * NSEC_PER_USEC), strategy=HypothesisData(data))
    # Every schedule is legal: either the window was hit or the reads agree.
    assert _kind(k) in (None, "invariant")


def test_replay_follows_interrupt_choices_exactly() -> None:
    for s in range(400):
        k = run(window_probe(NSEC_PER_MSEC), strategy=RandomWalk(s, steps_estimate=4))
        if _kind(k):
            break
    else:
        raise AssertionError("no failing seed")
    again = run(window_probe(NSEC_PER_MSEC), strategy=Replay(k.choices))
    assert _kind(again) == "invariant"
    assert again.trace.digest() == k.trace.digest()


def test_read_poll_timeout_sees_its_condition_become_true_from_an_irq_before_sleeping() -> None:
    """``read_poll_timeout``: the IRQ lands between the poll's start and its first read."""

    def scenario_for(out: dict[str, int]) -> Any:
        async def scenario(k: Kernel) -> None:
            reg = {"busy": 1}

            def done() -> None:
                reg["busy"] = 0

            k.add_timer(2 * NSEC_PER_USEC, done, "AS command done")

            async def read() -> int:
                await preempt()  # a register read is a yield point
                return reg["busy"]

            async def poller() -> None:
                ret, _ = await read_poll_timeout(read, lambda v: v == 0, 10, 100_000)
                out["ret"] = ret
                out["slept"] = int(any(e[3] == "block" for e in k.trace.events))

            k.spawn(poller, name="poller")

        return scenario

    canonical: dict[str, int] = {}
    run(scenario_for(canonical))
    assert canonical == {"ret": 0, "slept": 1}  # the poll slept until the command finished

    outcomes: list[dict[str, int]] = []

    def record(k: Kernel) -> None:
        outcomes.append(dict(k.objects["out"]))

    async def probe(k: Kernel) -> None:
        out: dict[str, int] = {}
        k.objects["out"] = out
        k.exit_checks.append(record)
        await scenario_for(out)(k)

    r = explore_all(probe, preemption_bound=1)
    assert r.complete
    assert {"ret": 0, "slept": 0} in outcomes


def test_timers_fire_in_deadline_order_and_the_clock_never_goes_back() -> None:
    fired: list[tuple[str, int]] = []
    for seed in range(50):
        fired.clear()

        async def scenario(k: Kernel) -> None:
            def fire(name: str) -> Callable[[], None]:
                return lambda: fired.append((name, k.now))

            for name, due in (("c", 30), ("a", 10), ("b", 20)):
                k.add_timer(due * NSEC_PER_USEC, fire(name), name)

            async def busy() -> None:
                for _ in range(20):
                    await preempt()
                await msleep(1)  # whatever did not fire early fires now

            k.spawn(busy, name="busy")

        k = run(scenario, strategy=RandomWalk(seed))
        assert k.failures == []
        assert [n for n, _ in fired] == ["a", "b", "c"]
        assert [t for _, t in fired] == [10_000, 20_000, 30_000]


def test_a_thread_woken_by_a_timer_can_run_before_a_second_timer_of_the_same_deadline() -> None:
    """At quiescence the clock jumps to one timer at a time."""
    order: list[str] = []

    async def scenario(k: Kernel) -> None:
        from panthor_testbed.sched import Completion, complete_locked, wait_for_completion

        c = Completion("c")
        k.add_timer(5 * NSEC_PER_USEC, lambda: complete_locked(c), "wake")
        k.add_timer(5 * NSEC_PER_USEC, lambda: order.append("second timer"), "second")

        async def waiter() -> None:
            await wait_for_completion(c)
            order.append("waiter")
            await msleep(1)

        k.spawn(waiter, name="waiter")

    orders = set()
    for seed in range(40):
        order.clear()
        run(scenario, strategy=RandomWalk(seed))
        orders.add(tuple(order))
    assert orders == {("waiter", "second timer"), ("second timer", "waiter")}


def _early_fraction(due_ns: int, runs: int = 200) -> float:
    """Fraction of random-walk runs where a timer fires while the worker still runs."""
    early = 0
    state = {"early": 0}
    for seed in range(runs):
        state["early"] = 0

        async def scenario(k: Kernel) -> None:
            busy = {"on": True}

            def irq() -> None:
                state["early"] = int(busy["on"])

            k.add_timer(due_ns, irq, "irq")

            async def worker() -> None:
                for _ in range(200):
                    await preempt()
                busy["on"] = False

            k.spawn(worker, name="worker")

        run(scenario, strategy=RandomWalk(seed, steps_estimate=200))
        early += state["early"]
    return early / runs


def test_random_walk_weights_early_firing_by_how_soon_the_timer_is_due() -> None:
    soon = _early_fraction(2 * NSEC_PER_USEC)
    late = _early_fraction(5 * NSEC_PER_SEC)
    assert soon > 0.9  # a command completion lands early nearly always
    assert 0 < late < 0.15  # a 5 s timeout rarely, but it does


def test_a_timer_past_the_time_limit_is_never_fired_early() -> None:
    from panthor_testbed.sched import KernelConfig

    async def scenario(k: Kernel) -> None:
        k.add_timer(10 * NSEC_PER_SEC, lambda: None, "far")

        async def worker() -> None:
            for _ in range(50):
                await preempt()

        k.spawn(worker, name="worker")

    for seed in range(20):
        k = run(
            scenario,
            strategy=RandomWalk(seed),
            config=KernelConfig(time_limit_ns=NSEC_PER_SEC),
        )
        assert IRQ_TID not in k.choices
        assert _kind(k) is None or _kind(k) == "livelock"
