"""Shared by the regression tests: find a catalogue bug by its scenario, replay it."""

from __future__ import annotations

import trio

from panthor_testbed.fuzz.runner import RunSpec, execute
from panthor_testbed.fuzz.scenario import builtin_scenarios
from panthor_testbed.sched import Kernel, RandomWalk, Replay


def _run(spec: RunSpec, strategy: object) -> Kernel:
    async def go() -> Kernel:
        return await execute(spec, strategy, None)  # type: ignore[arg-type]

    return trio.run(go)


def find(
    scenario: str, runs: int, *, inject: tuple[str, ...] = (), patch: tuple[str, ...] = ()
) -> tuple[RunSpec, Kernel | None]:
    """The first failing run among RandomWalk(0..runs-1), or None."""
    spec = RunSpec.make(builtin_scenarios()[scenario], {}, inject=inject, patch=patch)
    for seed in range(runs):
        k = _run(spec, RandomWalk(seed))
        if k.primary_failure is not None:
            return spec, k
    return spec, None


def replay(spec: RunSpec, k: Kernel) -> Kernel:
    """The failing run again, under its own recorded choices."""
    return _run(spec, Replay(k.choices, strict=True))
