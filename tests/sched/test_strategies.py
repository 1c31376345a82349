"""Strategies: random walk, PCT, replay (strict and lenient), Hypothesis data."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panthor_testbed.fuzz.scenario import get_scenario
from panthor_testbed.fuzz.schedule import DecisionRecorder
from panthor_testbed.sched import (
    PCT,
    Canonical,
    HypothesisData,
    Kernel,
    KernelConfig,
    RandomWalk,
    Replay,
    preempt,
)
from panthor_testbed.sched.core.harness import explore_all, run


async def _two_by_two(k: Kernel) -> None:
    async def body() -> None:
        for _ in range(2):
            await preempt()

    k.spawn(body, name="a")
    k.spawn(body, name="b")


def test_random_walk_is_reproducible_by_seed() -> None:
    a = run(_two_by_two, strategy=RandomWalk(42))
    b = run(_two_by_two, strategy=RandomWalk(42))
    assert a.choices == b.choices and a.trace.digest() == b.trace.digest()
    distinct = {tuple(run(_two_by_two, strategy=RandomWalk(s)).choices) for s in range(30)}
    assert len(distinct) > 5


def test_pct_is_reproducible_and_covers_schedules() -> None:
    a = run(_two_by_two, strategy=PCT(7, depth=3, steps_estimate=10))
    b = run(_two_by_two, strategy=PCT(7, depth=3, steps_estimate=10))
    assert a.choices == b.choices
    seen = {tuple(run(_two_by_two, strategy=PCT(s, 3, 10)).choices) for s in range(100)}
    assert len(seen) >= 6


def test_pct_depth_one_never_preempts() -> None:
    # depth 1 = no priority change points: each thread runs to completion
    for seed in range(20):
        k = run(_two_by_two, strategy=PCT(seed, depth=1, steps_estimate=10))
        names = [k.trace.name_of(e[2]) for e in k.trace.events if e[3] == "exit"]
        assert names[0] == "init"
        assert k.choices == [k.choices[0]] * len(k.choices)


def test_abba_deadlock_found_by_random_pct_and_exhaustive() -> None:
    abba = get_scenario("abba")
    for make in (RandomWalk, lambda s: PCT(s, depth=2, steps_estimate=10)):
        kinds = set()
        for seed in range(40):
            f = run(abba.fn, strategy=make(seed)).primary_failure
            if f is not None:
                kinds.add(f.kind)
                if f.kind == "deadlock":
                    assert "thread-a" in f.message and "thread-b" in f.message
                    assert "mutex A" in f.message and "mutex B" in f.message
        assert "deadlock" in kinds
    result = explore_all(abba.fn, preemption_bound=1)
    deadlocks = [k for k, _ in result.failing if k.primary_failure.kind == "deadlock"]  # type: ignore[union-attr]
    assert result.complete and deadlocks


def test_replay_reproduces_a_recorded_run() -> None:
    original = run(_two_by_two, strategy=RandomWalk(3))
    again = run(_two_by_two, strategy=Replay(original.choices))
    assert again.choices == original.choices
    assert again.trace.digest() == original.trace.digest()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c[:-1], "list has ended"),
        (lambda c: [*c, c[-1]], "left unused"),
        (lambda c: [9, *c[1:]], "picks T9"),
        (lambda c: [-1, *c[1:]], "data value 0"),
    ],
)
def test_strict_replay_refuses_a_list_that_does_not_fit(mutate: object, message: str) -> None:
    original = run(_two_by_two, strategy=RandomWalk(3))
    strategy = Replay(mutate(list(original.choices)))  # type: ignore[operator]
    run(_two_by_two, strategy=strategy)
    assert strategy.divergence is not None and message in strategy.divergence


def test_lenient_replay_falls_back_to_canonical() -> None:
    strategy = Replay([9, 9, 9], strict=False)
    k = run(_two_by_two, strategy=strategy)
    canonical = run(_two_by_two, strategy=Canonical())
    assert strategy.divergence is None
    assert k.trace.digest() == canonical.trace.digest()


def test_hypothesis_shrinks_a_schedule_to_one_preemption() -> None:
    lost_update = get_scenario("lost-update")
    last: list[Kernel] = []

    @settings(
        max_examples=300,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(st.data())
    def check(data: st.DataObject) -> None:
        k = run(lost_update.fn, strategy=HypothesisData(data))
        last.append(k)
        assert k.primary_failure is None

    with pytest.raises(AssertionError):
        check()
    # Hypothesis re-runs the minimal failing example last
    k = last[-1]
    assert k.primary_failure is not None and k.primary_failure.kind == "invariant"
    recorder = DecisionRecorder(Replay(k.choices))
    run(lost_update.fn, strategy=recorder)
    # the smallest lost update: one thread is preempted between its read and its write
    assert sum(1 for d in recorder.log if d.preemption) == 1


def test_data_choices_come_from_the_strategy_and_replay() -> None:
    async def scenario(k: Kernel) -> None:
        values = [k.choose_data(3, 0.5, "pick") for _ in range(5)]
        k.objects["values"] = values

    a = run(scenario, strategy=RandomWalk(11))
    assert a.choices == [-1 - v for v in a.objects["values"]]
    b = run(scenario, strategy=Replay(a.choices))
    assert b.objects["values"] == a.objects["values"]
    assert run(scenario, strategy=Canonical()).objects["values"] == [0] * 5


def test_exhaustive_counts_match_combinatorics() -> None:
    def make(threads: int, yields: int) -> object:
        async def scenario(k: Kernel) -> None:
            async def body() -> None:
                for _ in range(yields):
                    await preempt()

            for i in range(threads):
                k.spawn(body, name=f"w{i}")

        return scenario

    for threads, yields in [(2, 2), (3, 1), (2, 3), (3, 2)]:
        result = explore_all(make(threads, yields), config=KernelConfig(lockdep=False))  # type: ignore[arg-type]
        blocks = yields + 1
        expected = math.factorial(threads * blocks) // math.factorial(blocks) ** threads
        assert result.complete and result.schedules == expected, (threads, yields)


def test_preemption_bound_limits_the_search() -> None:
    # two threads of three atomic blocks: 2 schedules without preemption,
    # 4 more with exactly one (A^i B^3 A^(3-i) and symmetric, i = 1, 2)
    assert explore_all(_two_by_two, preemption_bound=0).schedules == 2
    assert explore_all(_two_by_two, preemption_bound=1).schedules == 6
    assert explore_all(_two_by_two, preemption_bound=None).schedules == 20
