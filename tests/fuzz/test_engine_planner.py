"""The planner interface (fuzz/planner.py): batches, horizons, the portfolio, prefixes."""

from __future__ import annotations

from panthor_testbed.fuzz.planner import (
    BATCH_RUNS,
    MAX_LAG_BATCHES,
    PortfolioPlanner,
    PrefixThen,
    RunOutcome,
    batch_of,
    horizon,
)
from panthor_testbed.fuzz.runner import RunSpec, derive_seed, execute
from panthor_testbed.fuzz.scenario import get_scenario
from panthor_testbed.sched import Canonical, RandomWalk
from panthor_testbed.sched.core.strategy import portfolio_member


def test_batches_and_horizon() -> None:
    assert BATCH_RUNS == 32
    assert [batch_of(i) for i in (0, 31, 32, 95)] == [0, 0, 1, 2]
    hs = [horizon(b) for b in range(4 * MAX_LAG_BATCHES)]
    assert hs[:6] == [0, 0, 1, 1, 2, 2]
    for b in range(1, len(hs)):
        assert hs[b] - hs[b - 1] in (0, 1)  # the engine can plan each batch exactly on time
        assert hs[b] < b or b == 0  # only batches wholly before
        assert b - hs[b] <= MAX_LAG_BATCHES


def test_portfolio_planner_is_todays_campaign() -> None:
    p = PortfolioPlanner("lost-update", {"threads": 2}, seed=7)
    plans = [p.plan(i) for i in range(BATCH_RUNS)]
    for i, plan in enumerate(plans):
        assert plan.seed == derive_seed(7, "lost-update", i)
        name, depth = portfolio_member(i)
        assert plan.strategy == name
        assert plan.depth == (depth or 3)
        assert plan.steps_estimate == 100
        assert plan.label == "portfolio"
    p.observe([RunOutcome(i, 10 + i % 2 * 20, None) for i in range(BATCH_RUNS)])
    assert p.plan(BATCH_RUNS).steps_estimate == 20  # mean of the observed batch


def test_prefixes_go_first() -> None:
    p = PortfolioPlanner("abba", {}, prefixes=[(1, 0), (2,)])
    assert [p.plan(i).prefix for i in range(3)] == [(1, 0), (2,), ()]


async def test_prefix_then_replays_a_recorded_run_then_continues() -> None:
    spec = RunSpec.make(get_scenario("lost-update"), {"threads": 3})
    first = await execute(spec, RandomWalk(5), None)
    assert len(first.choices) > 4
    again = await execute(spec, PrefixThen(first.choices, Canonical()), None)
    assert again.choices == first.choices
    assert again.trace.digest() == first.trace.digest()
    # Half the prefix, then the inner strategy: the start is the recorded one.
    half = len(first.choices) // 2
    part = await execute(spec, PrefixThen(first.choices[:half], Canonical()), None)
    assert part.choices[:half] == first.choices[:half]


async def test_prefix_that_does_not_fit_falls_back_to_canonical() -> None:
    spec = RunSpec.make(get_scenario("lost-update"), {"threads": 2})
    canonical = await execute(spec, Canonical(), None)
    # tid 99 never exists, -5 is a data value where a thread is picked: both canonical.
    odd = await execute(spec, PrefixThen((99, -5, 99), Canonical()), None)
    assert odd.choices == canonical.choices
