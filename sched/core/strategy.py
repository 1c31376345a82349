"""Where the choices come from.

At every yield point with more than one runnable thread, and at every data
choice (e.g. allocation fault injection), the run asks its strategy. The
*canonical* choice is: keep running the current thread if it can run, else
run the lowest-numbered runnable thread; for data, 0. Option lists handed to
index-based strategies put the canonical option first, so shrinking towards
index 0 means shrinking towards fewer preemptions.

Interrupts: where a timer is pending, the option list ends with the
pseudo-thread ``k.irq_option`` (tid :data:`IRQ_TID`); picking it fires the
earliest timer. It is never canonical. Random strategies weight it by how
soon the timer is due (:func:`irq_fire_probability`), so a command completion
due in 2 us often lands early and a 5 s job timeout rarely does.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .failure import RunStopped
from .thread import IRQ_TID

if TYPE_CHECKING:
    from hypothesis.strategies import DataObject

    from .kernel import Kernel
    from .thread import SimThread


# A yield point stands for about this much CPU work: a timer due in d ns is
# about d / NS_PER_STEP steps away.
NS_PER_STEP = 1_000
# Never fire more eagerly than this at one decision, so a due timer still
# leaves the current thread a chance to go on.
IRQ_P_MAX = 0.5
# Whatever its deadline, a pending timer fires early in about this fraction
# of runs (spread over the run's expected length): far timeouts are reached
# early, but rarely.
IRQ_EARLY_FRACTION = 0.05


def irq_fire_probability(k: Kernel, steps_estimate: int) -> float:
    """The chance of firing the earliest pending timer at this decision."""
    tm = k.next_timer()
    if tm is None:
        return 0.0
    due_in = tm.deadline - k.now
    p = NS_PER_STEP / due_in if due_in > NS_PER_STEP else 1.0
    floor = IRQ_EARLY_FRACTION / max(1, steps_estimate)
    if p < floor:
        p = floor
    return p if p < IRQ_P_MAX else IRQ_P_MAX


def has_irq(opts: Sequence[SimThread]) -> bool:
    """Does the option list end with the interrupt option?"""
    return opts[-1].tid == IRQ_TID


def options(cur: SimThread | None, runnable: Sequence[SimThread]) -> list[SimThread]:
    """The options of a thread choice, canonical first, then by tid."""
    if cur is None:
        return list(runnable)
    return [cur, *(t for t in runnable if t is not cur)]


class Strategy:
    name = "strategy"

    def start_run(self, k: Kernel) -> None:
        """Called once before the run's first step."""

    def end_run(self, k: Kernel) -> None:
        """Called once after the run (also after failures)."""

    def pick(self, k: Kernel, cur: SimThread | None, runnable: list[SimThread]) -> SimThread:
        """Choose the next thread. ``cur`` is the running thread if it is runnable."""
        raise NotImplementedError

    def choose(self, k: Kernel, n: int, p_nonzero: float, what: str = "") -> int:
        """A data choice in range(n); ``p_nonzero`` is the suggested chance of a non-0 value."""
        return 0

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


class Canonical(Strategy):
    """No preemption: run a thread until it blocks, then the lowest runnable."""

    name = "canonical"

    def pick(self, k: Kernel, cur: SimThread | None, runnable: list[SimThread]) -> SimThread:
        return cur if cur is not None else runnable[0]


class RandomWalk(Strategy):
    """Uniformly random among the runnable threads at every yield point.

    A pending timer fires first with :func:`irq_fire_probability`;
    ``steps_estimate`` is the expected run length in steps.
    """

    name = "random"

    def __init__(self, seed: int, steps_estimate: int = 100) -> None:
        self.seed = seed
        self.steps_estimate = max(1, steps_estimate)
        self.rng = random.Random(seed)

    def pick(self, k: Kernel, cur: SimThread | None, runnable: list[SimThread]) -> SimThread:
        n = len(runnable)
        if runnable[-1].tid == IRQ_TID:
            if self.rng.random() < irq_fire_probability(k, self.steps_estimate):
                return runnable[-1]
            n -= 1
        return runnable[int(self.rng.random() * n)]

    def choose(self, k: Kernel, n: int, p_nonzero: float, what: str = "") -> int:
        if self.rng.random() >= p_nonzero:
            return 0
        return 1 + int(self.rng.random() * (n - 1))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed}


class StickyWalk(RandomWalk):
    """A random walk that mostly keeps the running thread.

    At each yield point the running thread goes on with probability
    ``1 - 1/stretch``; otherwise the next thread is uniform among the
    runnable ones, as in :class:`RandomWalk`. The schedule is long
    uninterrupted stretches of one thread (``stretch`` yield points on
    average) with the rare switch at a random place: what a stress test under
    a non-preemptive scheduler gets, and what bugs that need one thread to run
    a long way between two others' steps need. Interrupts and data choices
    are :class:`RandomWalk`'s.
    """

    name = "sticky"

    def __init__(self, seed: int, stretch: int = 20, steps_estimate: int = 100) -> None:
        super().__init__(seed, steps_estimate)
        self.stretch = max(1, stretch)
        self.switch_p = 1.0 / self.stretch

    def pick(self, k: Kernel, cur: SimThread | None, runnable: list[SimThread]) -> SimThread:
        n = len(runnable)
        if runnable[-1].tid == IRQ_TID:
            if self.rng.random() < irq_fire_probability(k, self.steps_estimate):
                return runnable[-1]
            n -= 1
        if cur is not None and self.rng.random() >= self.switch_p:
            return cur
        return runnable[int(self.rng.random() * n)]

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "stretch": self.stretch,
            "steps_estimate": self.steps_estimate,
        }


class PCT(Strategy):
    """Probabilistic Concurrency Testing (Burckhardt et al., ASPLOS 2010).

    Threads get distinct random priorities >= depth; the highest-priority
    runnable thread always runs; at ``depth - 1`` random steps in
    ``[1, steps_estimate]`` the thread about to run drops below every initial
    priority. A bug of depth d is found with probability >= 1/(n k^(d-1)).

    The interrupt is one more "thread" with its own random priority, demoted
    by change points like any other. When it has the highest priority, the
    earliest timer fires with :func:`irq_fire_probability` (so a far timeout
    rarely lands early even then); otherwise the best thread runs.
    """

    name = "pct"

    def __init__(self, seed: int, depth: int = 3, steps_estimate: int = 1000) -> None:
        if depth < 1:
            raise ValueError("PCT depth must be >= 1")
        self.seed = seed
        self.depth = depth
        self.steps_estimate = max(1, steps_estimate)
        self.rng = random.Random(seed)
        self.prio: dict[int, float] = {}
        n_points = min(depth - 1, self.steps_estimate)
        self.change_points = sorted(self.rng.sample(range(1, self.steps_estimate + 1), n_points))
        self.next_point = 0

    def pick(self, k: Kernel, cur: SimThread | None, runnable: list[SimThread]) -> SimThread:
        prio = self.prio
        for t in runnable:
            if t.tid not in prio:
                prio[t.tid] = self.depth + self.rng.random()
        best = max(runnable, key=lambda t: prio[t.tid])
        points = self.change_points
        while self.next_point < len(points) and points[self.next_point] <= k.steps:
            prio[best.tid] = float(self.next_point)
            self.next_point += 1
            best = max(runnable, key=lambda t: prio[t.tid])
        if best.tid == IRQ_TID and self.rng.random() >= irq_fire_probability(
            k, self.steps_estimate
        ):
            best = max(runnable[:-1], key=lambda t: prio[t.tid])
        return best

    def choose(self, k: Kernel, n: int, p_nonzero: float, what: str = "") -> int:
        if self.rng.random() >= p_nonzero:
            return 0
        return 1 + int(self.rng.random() * (n - 1))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "depth": self.depth,
            "steps_estimate": self.steps_estimate,
        }


class Replay(Strategy):
    """Follow a recorded choice list.

    Strict: a choice that does not fit (a tid that is not runnable, a data
    value out of range, a list too short or too long) stops the run and
    sets ``divergence``. Lenient (for shrinking): fall back to the canonical
    choice where the list does not fit or has run out.
    """

    name = "replay"

    def __init__(self, choices: Sequence[int], *, strict: bool = True) -> None:
        self.choices = list(choices)
        self.strict = strict
        self.pos = 0
        self.divergence: str | None = None
        self.steps: list[int] = []  # the step of every choice, for reports

    def _diverge(self, k: Kernel, why: str) -> None:
        if self.divergence is None:
            self.divergence = f"choice #{self.pos} (step {k.steps}): {why}"
        k.stopping = True
        k.tracing = False

    def pick(self, k: Kernel, cur: SimThread | None, runnable: list[SimThread]) -> SimThread:
        canonical = cur if cur is not None else runnable[0]
        self.steps.append(k.steps)
        if self.pos >= len(self.choices):
            if self.strict:
                labels = ", ".join(f"T{t.tid}" for t in runnable)
                self._diverge(k, f"the list has ended but the run still chooses among {labels}")
            return canonical
        v = self.choices[self.pos]
        if v >= 0:
            for t in runnable:
                if t.tid == v:
                    self.pos += 1
                    return t
        if self.strict:
            labels = ", ".join(f"T{t.tid}" for t in runnable)
            what = f"T{v}" if v >= 0 else f"data value {-1 - v}"
            self._diverge(k, f"the list picks {what}, but the run chooses among {labels}")
        self.pos += 1
        return canonical

    def choose(self, k: Kernel, n: int, p_nonzero: float, what: str = "") -> int:
        self.steps.append(k.steps)
        if self.pos >= len(self.choices):
            if self.strict:
                self._diverge(k, f"the list has ended but the run makes a data choice of {n}")
            return 0
        v = -1 - self.choices[self.pos]
        self.pos += 1
        if 0 <= v < n:
            return v
        if self.strict:
            self._diverge(
                k, f"the list has {self.choices[self.pos - 1]} where a data choice of {n} is made"
            )
        return 0

    def end_run(self, k: Kernel) -> None:
        if self.strict and self.divergence is None and self.pos < len(self.choices):
            self.divergence = (
                f"the run ended after {self.pos} choices; {len(self.choices) - self.pos} "
                f"recorded choices were left unused"
            )

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "choices": len(self.choices)}


class RoundRobin(Strategy):
    """Always switch to the next runnable thread (benchmarks, worst-case switching)."""

    name = "round-robin"

    def pick(self, k: Kernel, cur: SimThread | None, runnable: list[SimThread]) -> SimThread:
        if cur is None:
            return runnable[0]
        n = len(runnable) - (runnable[-1].tid == IRQ_TID)  # timers fire when all block
        i = runnable.index(cur) + 1
        return runnable[i if i < n else 0]


class HypothesisData(Strategy):
    """Draw every choice from a Hypothesis ``data`` object, so Hypothesis shrinks schedules.

    Index 0 is the canonical option, so Hypothesis' shrinking towards 0
    removes preemptions.
    """

    name = "hypothesis"

    def __init__(self, data: DataObject, *, max_index: int | None = None) -> None:
        self.data = data
        self.max_index = max_index

    def pick(self, k: Kernel, cur: SimThread | None, runnable: list[SimThread]) -> SimThread:
        from hypothesis import strategies as st

        opts = options(cur, runnable)
        hi = len(opts) - 1 if self.max_index is None else min(len(opts) - 1, self.max_index)
        return opts[self.data.draw(st.integers(0, hi))]

    def choose(self, k: Kernel, n: int, p_nonzero: float, what: str = "") -> int:
        from hypothesis import strategies as st

        return self.data.draw(st.integers(0, n - 1))


PORTFOLIO_DEPTHS = (1, 2, 3)
# "coverage" is a planner (fuzz/coverage_planner.py): its runs are portfolio
# runs or mutants of its corpus, so one of its runs on its own is a portfolio run.
STRATEGIES = ("portfolio", "random", "pct", "coverage")


# The sticky walk's mean stretches in the portfolio (a switch every 50, 20, 10 yield points).
PORTFOLIO_STRETCHES = (50, 20, 10)


def portfolio_member(run_index: int) -> tuple[str, int]:
    """The portfolio's member for run ``run_index``: ``(strategy, depth)``.

    Runs go random walk, PCT, sticky walk in turn; PCT's depth cycles through
    1, 2, 3 and the sticky walk's mean stretch (its ``depth``) through 50,
    20, 10. Random walk finds shallow bugs in a handful of runs; PCT gives
    the probabilistic guarantee for bugs of a known depth; the sticky walk
    keeps one thread running a long way, which the bugs that need a long run
    of one thread between two steps of another (an AS re-enabled by one
    activation and faulting again before another, a lookup racing a destroy)
    need and the other two rarely give.
    """
    member, turn = run_index % 3, (run_index // 3)
    if member == 0:
        return "random", 0
    if member == 1:
        return "pct", PORTFOLIO_DEPTHS[turn % len(PORTFOLIO_DEPTHS)]
    return "sticky", PORTFOLIO_STRETCHES[turn % len(PORTFOLIO_STRETCHES)]


def make_strategy(
    name: str,
    seed: int,
    *,
    depth: int = 3,
    steps_estimate: int = 100,
    run_index: int = 0,
) -> Strategy:
    """Build a campaign strategy by its CLI name (``portfolio`` picks one by ``run_index``)."""
    if name in ("portfolio", "coverage"):
        name, member_depth = portfolio_member(run_index)
        depth = member_depth or depth
    if name == "random":
        return RandomWalk(seed, steps_estimate)
    if name == "pct":
        return PCT(seed, depth, steps_estimate)
    if name == "sticky":
        # depth is the mean stretch here (the portfolio's member gives it)
        return StickyWalk(seed, depth, steps_estimate)
    if name == "canonical":
        return Canonical()
    raise ValueError(f"unknown strategy {name!r} ({', '.join(STRATEGIES)})")


class StepsEstimate:
    """The expected run length, from the runs already seen (PCT's k, the interrupt floor)."""

    __slots__ = ("runs", "total")

    def __init__(self) -> None:
        self.runs = 0
        self.total = 0

    def add(self, steps: int) -> None:
        self.runs += 1
        self.total += steps

    @property
    def value(self) -> int:
        if not self.runs:
            return 100  # before the first run: a small scenario's length
        return max(1, round(self.total / self.runs))


__all__ = [
    "IRQ_TID",
    "PCT",
    "STRATEGIES",
    "Canonical",
    "HypothesisData",
    "RandomWalk",
    "Replay",
    "RoundRobin",
    "RunStopped",
    "StepsEstimate",
    "StickyWalk",
    "Strategy",
    "has_irq",
    "irq_fire_probability",
    "make_strategy",
    "options",
    "portfolio_member",
]
