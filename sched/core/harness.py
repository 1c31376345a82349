"""Run model code on the executor from tests and tools.

    k = run(scenario)                          # one run, canonical schedule
    k = run(scenario, strategy=RandomWalk(3))  # one run, given strategy
    result = explore_all(scenario, preemption_bound=2)

``scenario`` is an async function taking the Kernel (it runs as thread
``init`` and spawns the others).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..locking.lockdep import Lockdep
from .explore import ExploreResult, explore
from .kernel import Kernel, KernelConfig
from .strategy import Strategy

Scenario = Callable[..., Awaitable[Any]]


async def arun(
    scenario: Scenario,
    *args: Any,
    strategy: Strategy | None = None,
    config: KernelConfig | None = None,
    lockdep: Lockdep | None = None,
    run_id: int = 0,
    **kwargs: Any,
) -> Kernel:
    """Run ``scenario`` once (inside trio) and return the finished Kernel."""
    if lockdep is None and (config is None or config.lockdep):
        lockdep = Lockdep()
    k = Kernel(strategy, config, lockdep=lockdep, run_id=run_id)
    await k.run(scenario, *args, **kwargs)
    return k


def run(
    scenario: Scenario,
    *args: Any,
    strategy: Strategy | None = None,
    config: KernelConfig | None = None,
    lockdep: Lockdep | None = None,
    run_id: int = 0,
    **kwargs: Any,
) -> Kernel:
    """Synchronous :func:`arun`. A fresh lockdep graph by default."""
    if lockdep is None and (config is None or config.lockdep):
        lockdep = Lockdep()
    k = Kernel(strategy, config, lockdep=lockdep, run_id=run_id)
    k.run_sync(scenario, *args, **kwargs)
    return k


async def aexplore_all(
    scenario: Scenario,
    *args: Any,
    preemption_bound: int | None = None,
    config: KernelConfig | None = None,
    max_schedules: int | None = None,
    stop_at_first_failure: bool = False,
    **kwargs: Any,
) -> ExploreResult:
    """Every schedule of ``scenario`` within the preemption bound (one lockdep graph for all)."""
    graph = Lockdep() if config is None or config.lockdep else None

    async def run_one(strategy: Strategy, index: int) -> Kernel:
        k = Kernel(strategy, config, lockdep=graph, run_id=index)
        await k.run(scenario, *args, **kwargs)
        return k

    return await explore(
        run_one,
        preemption_bound=preemption_bound,
        max_schedules=max_schedules,
        stop_at_first_failure=stop_at_first_failure,
    )


def explore_all(
    scenario: Scenario,
    *args: Any,
    preemption_bound: int | None = None,
    config: KernelConfig | None = None,
    max_schedules: int | None = None,
    stop_at_first_failure: bool = False,
    **kwargs: Any,
) -> ExploreResult:
    return trio.run(
        lambda: aexplore_all(
            scenario,
            *args,
            preemption_bound=preemption_bound,
            config=config,
            max_schedules=max_schedules,
            stop_at_first_failure=stop_at_first_failure,
            **kwargs,
        )
    )
