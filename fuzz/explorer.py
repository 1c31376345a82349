"""Bounded-exhaustive search of one scenario (``panthor-testbed explore``)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from panthor_testbed.sched import Kernel, Strategy
from panthor_testbed.sched.core.explore import explore, explore_deepening
from panthor_testbed.sched.locking.lockdep import Lockdep

from .replayfile import ReplayFile, replay_name
from .runner import RunSpec, execute, replay_file_of


@dataclass
class ExploreSummary:
    """Filled as the search goes, so an interrupted search can still report."""

    scenario: str
    preemption_bound: int  # with deepening: the last bound searched
    schedules: int = 0
    complete: bool = False
    failing_schedules: int = 0
    max_choice_points: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    replay_files: list[ReplayFile] = field(default_factory=list)
    interrupted: bool = False
    deepening: bool = False  # bound 0, 1, 2, ... until a failure or the budget
    failing_bound: int | None = None  # the smallest bound with a failing schedule
    proven_bound: int | None = None  # the largest bound whose every schedule passed

    def to_json(self) -> dict[str, Any]:
        out = {
            "scenario": self.scenario,
            "preemption_bound": self.preemption_bound,
            "schedules": self.schedules,
            "complete": self.complete,
            "failing_schedules": self.failing_schedules,
            "max_choice_points": self.max_choice_points,
            "failures": self.failures,
        }
        if self.deepening:
            out["deepening"] = True
            out["failing_bound"] = self.failing_bound
            out["proven_bound"] = self.proven_bound
        if self.interrupted:
            out["interrupted"] = True
        return out


async def explore_scenario(
    spec: RunSpec,
    preemption_bound: int | None,
    max_schedules: int | None,
    out: str | None,
    stop_at_first: bool,
    summary: ExploreSummary | None = None,
    time_budget: float | None = None,
) -> ExploreSummary:
    """Run every schedule within the bound; one replay file per distinct failure.

    ``preemption_bound=None`` deepens: bound 0, 1, 2, ... until a bound has a
    failing schedule (the smallest failing bound), the search is exhaustive, or
    ``max_schedules``/``time_budget`` (seconds) run out. ``out=None`` keeps the
    replay files in memory (``summary.replay_files``).
    """
    s = (
        summary
        if summary is not None
        else ExploreSummary(spec.scenario.name, preemption_bound or 0)
    )
    s.deepening = preemption_bound is None
    graph = Lockdep()
    seen: set[str] = set()

    async def run_one(strategy: Strategy, index: int) -> Kernel:
        # A run never leaves the Trio task: let a Ctrl-C watcher in between schedules.
        await trio.lowlevel.checkpoint()
        reported_before = graph.reported_pairs()
        k = await execute(spec, strategy, graph, run_id=index)
        f = k.primary_failure
        if f is not None and f.signature not in seen:
            seen.add(f.signature)
            described = {
                "name": "exhaustive",
                "preemption_bound": s.preemption_bound,
                "schedule": index,
            }
            rf = await replay_file_of(
                k, spec, strategy=described, seed=index, reported_before=reported_before
            )
            path = ""
            if out is not None:
                path = os.path.join(out, replay_name(f"{spec.scenario.name}-explore", index))
                rf.save(path)
            s.replay_files.append(rf)
            s.failures.append(
                {"kind": f.kind, "message": f.message, "schedule": index, "replay": path}
            )
        return k

    def count(n: int, k: Kernel) -> None:
        s.schedules = n
        s.max_choice_points = max(s.max_choice_points, len(k.choices))
        if k.primary_failure is not None:
            s.failing_schedules += 1

    if preemption_bound is None:
        deadline = None if time_budget is None else time.monotonic() + time_budget

        def on_bound(bound: int, r: object) -> None:
            s.preemption_bound = bound

        deep = await explore_deepening(
            run_one,
            max_schedules=max_schedules,
            out_of_time=lambda: deadline is not None and time.monotonic() > deadline,
            stop_at_first_failure=True,
            on_bound=on_bound,
            on_schedule=lambda n, k: count(s.schedules + 1, k),
        )
        s.schedules = deep.schedules
        s.failing_bound = deep.failing_bound
        s.proven_bound = deep.proven_bound
        last = deep.bounds[-1][1] if deep.bounds else None
        s.complete = last is not None and last.complete
        s.max_choice_points = max((r.max_depth for _, r in deep.bounds), default=0)
        return s
    result = await explore(
        run_one,
        preemption_bound=preemption_bound,
        max_schedules=max_schedules,
        stop_at_first_failure=stop_at_first,
        on_schedule=count,
    )
    s.schedules = result.schedules
    s.complete = result.complete
    s.max_choice_points = result.max_depth
    return s
