"""Bounded-exhaustive search over schedules (CHESS-style, stateless DFS).

Each execution follows a prefix of option indices and then the canonical
schedule (index 0 everywhere); the next prefix is the deepest choice point
with an untried option whose preemption cost fits the bound. Choosing a
non-canonical thread while the current one could have continued costs one
preemption; choices made after a thread blocked or exited, and data
choices, are free. With no bound, every schedule is enumerated exactly once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .failure import ExecutorError
from .kernel import Kernel
from .strategy import Strategy, options
from .thread import SimThread


class DFSStrategy(Strategy):
    name = "exhaustive"

    def __init__(self, prefix: list[int]) -> None:
        self.prefix = prefix
        # (number of options, chosen index, is a preemption point)
        self.trail: list[tuple[int, int, bool]] = []

    def _index(self, n: int) -> int:
        i = len(self.trail)
        idx = self.prefix[i] if i < len(self.prefix) else 0
        if idx >= n:
            raise ExecutorError(
                f"the scenario is not deterministic: choice #{i} had more options in an "
                f"earlier execution with the same prefix"
            )
        return idx

    def pick(self, k: Kernel, cur: SimThread | None, runnable: list[SimThread]) -> SimThread:
        opts = options(cur, runnable)
        idx = self._index(len(opts))
        self.trail.append((len(opts), idx, cur is not None))
        return opts[idx]

    def choose(self, k: Kernel, n: int, p_nonzero: float, what: str = "") -> int:
        idx = self._index(n)
        self.trail.append((n, idx, False))
        return idx

    def preemptions(self) -> int:
        return sum(1 for _, idx, pre in self.trail if pre and idx > 0)


def next_prefix(trail: list[tuple[int, int, bool]], bound: int | None) -> list[int] | None:
    """The DFS successor of a finished execution's trail, or None when done."""
    before: list[int] = []
    used = 0
    for _, idx, pre in trail:
        before.append(used)
        if pre and idx > 0:
            used += 1
    for i in range(len(trail) - 1, -1, -1):
        n, idx, pre = trail[i]
        if idx + 1 >= n:
            continue
        cost = before[i] + (1 if pre else 0)
        if bound is not None and cost > bound:
            continue
        return [e[1] for e in trail[:i]] + [idx + 1]
    return None


@dataclass
class ExploreResult:
    schedules: int = 0
    complete: bool = False  # every schedule within the bound was run
    failing: list[tuple[Kernel, list[int]]] = field(default_factory=list)
    max_depth: int = 0  # the most choice points seen in one schedule


async def explore(
    run_one: Callable[[Strategy, int], Awaitable[Kernel]],
    *,
    preemption_bound: int | None,
    max_schedules: int | None = None,
    stop_at_first_failure: bool = False,
    on_schedule: Callable[[int, Kernel], None] | None = None,
) -> ExploreResult:
    """Run every schedule with at most ``preemption_bound`` preemptions.

    ``run_one(strategy, index)`` must build a fresh kernel for the scenario,
    run it with ``strategy`` and return it.
    """
    result = ExploreResult()
    prefix: list[int] | None = []
    while prefix is not None:
        if max_schedules is not None and result.schedules >= max_schedules:
            return result
        strategy = DFSStrategy(prefix)
        k = await run_one(strategy, result.schedules)
        result.schedules += 1
        result.max_depth = max(result.max_depth, len(strategy.trail))
        if on_schedule is not None:
            on_schedule(result.schedules, k)
        if k.failures:
            result.failing.append((k, list(k.choices)))
            primary = k.primary_failure
            if stop_at_first_failure and primary is not None and primary.extra.get("fatal"):
                return result
        prefix = next_prefix(strategy.trail, preemption_bound)
    result.complete = True
    return result
