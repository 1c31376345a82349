"""Bounded-exhaustive search over schedules (CHESS-style, stateless DFS).

Each execution follows a prefix of option indices and then the canonical
schedule (index 0 everywhere); the next prefix is the deepest choice point
with an untried option whose preemption cost fits the bound. Choosing a
non-canonical thread while the current one could have continued costs one
preemption, and so does every early interrupt (firing a pending timer while
a thread could run); choices made after a thread blocked or exited, and
data choices, are free. With no bound, every schedule is enumerated exactly
once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .failure import ExecutorError
from .kernel import Kernel
from .strategy import Strategy, has_irq, options
from .thread import SimThread

# One choice point: (number of options, chosen index, choosing any index > 0
# is a preemption, index of the interrupt option or -1).
TrailEntry = tuple[int, int, bool, int]


def choice_cost(entry: TrailEntry, idx: int) -> int:
    """Preemptions spent by choosing option ``idx`` at this choice point."""
    _, _, pre, irq = entry
    return 1 if idx == irq or (pre and idx > 0) else 0


class DFSStrategy(Strategy):
    name = "exhaustive"

    def __init__(self, prefix: list[int]) -> None:
        self.prefix = prefix
        self.trail: list[TrailEntry] = []

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
        irq = len(opts) - 1 if has_irq(opts) else -1
        self.trail.append((len(opts), idx, cur is not None, irq))
        return opts[idx]

    def choose(self, k: Kernel, n: int, p_nonzero: float, what: str = "") -> int:
        idx = self._index(n)
        self.trail.append((n, idx, False, -1))
        return idx

    def preemptions(self) -> int:
        return sum(choice_cost(e, e[1]) for e in self.trail)


def next_prefix(trail: list[TrailEntry], bound: int | None) -> list[int] | None:
    """The DFS successor of a finished execution's trail, or None when done."""
    before: list[int] = []
    used = 0
    for e in trail:
        before.append(used)
        used += choice_cost(e, e[1])
    for i in range(len(trail) - 1, -1, -1):
        e = trail[i]
        n, idx = e[0], e[1]
        for nxt in range(idx + 1, n):
            if bound is None or before[i] + choice_cost(e, nxt) <= bound:
                return [x[1] for x in trail[:i]] + [nxt]
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
    should_stop: Callable[[], bool] = lambda: False,
) -> ExploreResult:
    """Run every schedule with at most ``preemption_bound`` preemptions.

    ``run_one(strategy, index)`` must build a fresh kernel for the scenario,
    run it with ``strategy`` and return it. ``should_stop()`` is checked
    between schedules (a time budget).
    """
    result = ExploreResult()
    prefix: list[int] | None = []
    while prefix is not None:
        if max_schedules is not None and result.schedules >= max_schedules:
            return result
        if result.schedules and should_stop():
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


@dataclass
class DeepeningResult:
    """Iterative deepening: bound 0, 1, 2, ... until a failure or the budget runs out."""

    bounds: list[tuple[int, ExploreResult]] = field(default_factory=list)
    failing_bound: int | None = None  # the smallest bound with a failing schedule
    budget_exhausted: bool = False

    @property
    def schedules(self) -> int:
        return sum(r.schedules for _, r in self.bounds)

    @property
    def proven_bound(self) -> int | None:
        """The largest bound whose every schedule ran and passed."""
        best = None
        for b, r in self.bounds:
            if r.complete and not r.failing:
                best = b
        return best


async def explore_deepening(
    run_one: Callable[[Strategy, int], Awaitable[Kernel]],
    *,
    max_bound: int | None = None,
    max_schedules: int | None = None,
    out_of_time: Callable[[], bool] = lambda: False,
    stop_at_first_failure: bool = True,
    on_bound: Callable[[int, ExploreResult], None] | None = None,
    on_schedule: Callable[[int, Kernel], None] | None = None,
) -> DeepeningResult:
    """Explore at bound 0, then 1, 2, ...: the first failing bound is the smallest one.

    Stops at the first bound with a failure, at ``max_bound``, when the
    search is exhaustive (a bound added no schedule), or when
    ``max_schedules`` (over all bounds) or ``out_of_time()`` runs out.
    ``out_of_time`` is checked between schedules; it is the caller's clock.
    """
    result = DeepeningResult()
    bound = 0
    previous = -1
    while max_bound is None or bound <= max_bound:
        left = None if max_schedules is None else max_schedules - result.schedules
        if left is not None and left <= 0:
            result.budget_exhausted = True
            break

        async def timed(strategy: Strategy, index: int) -> Kernel:
            return await run_one(strategy, result.schedules + index)

        r = await explore(
            timed,
            preemption_bound=bound,
            max_schedules=left,
            stop_at_first_failure=stop_at_first_failure,
            on_schedule=on_schedule,
            should_stop=out_of_time,
        )
        result.bounds.append((bound, r))
        if on_bound is not None:
            on_bound(bound, r)
        if r.failing:
            result.failing_bound = bound
            break
        if not r.complete:
            result.budget_exhausted = True
            break
        if r.schedules == previous:
            break  # a larger bound adds nothing: every schedule was run
        previous = r.schedules
        bound += 1
    return result
