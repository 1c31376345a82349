"""``panthor-testbed explore``: bounded-exhaustive search of one scenario."""

from __future__ import annotations

import os
from typing import Any

from panthor_testbed.sched import Kernel, Strategy
from panthor_testbed.sched.core.explore import explore
from panthor_testbed.sched.locking.lockdep import Lockdep

from .replayfile import replay_name
from .runner import RunSpec, execute, replay_file_of


async def explore_scenario(
    spec: RunSpec,
    preemption_bound: int,
    max_schedules: int | None,
    out: str,
    stop_at_first: bool,
) -> dict[str, Any]:
    """Run every schedule within the bound; write one replay file per distinct failure."""
    graph = Lockdep()
    failures: list[dict[str, Any]] = []
    seen: set[str] = set()
    failing = 0

    async def run_one(strategy: Strategy, index: int) -> Kernel:
        reported_before = graph.reported_pairs()
        k = await execute(spec, strategy, graph, run_id=index)
        f = k.primary_failure
        if f is not None and f.signature not in seen:
            seen.add(f.signature)
            name = spec.scenario.name
            path = os.path.join(out, replay_name(f"{name}-explore", index))
            described = {
                "name": "exhaustive",
                "preemption_bound": preemption_bound,
                "schedule": index,
            }
            replay_file_of(
                k, spec, strategy=described, seed=index, reported_before=reported_before
            ).save(path)
            failures.append(
                {"kind": f.kind, "message": f.message, "schedule": index, "replay": path}
            )
        return k

    def count(_: int, k: Kernel) -> None:
        nonlocal failing
        if k.primary_failure is not None:
            failing += 1

    result = await explore(
        run_one,
        preemption_bound=preemption_bound,
        max_schedules=max_schedules,
        stop_at_first_failure=stop_at_first,
        on_schedule=count,
    )
    return {
        "scenario": spec.scenario.name,
        "preemption_bound": preemption_bound,
        "schedules": result.schedules,
        "complete": result.complete,
        "failing_schedules": failing,
        "max_choice_points": result.max_depth,
        "failures": failures,
    }
