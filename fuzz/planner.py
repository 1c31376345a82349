"""What each run of a campaign does: plans, outcomes and the planners that make them.

A campaign runs each scenario's runs in *batches* of :data:`BATCH_RUNS`
consecutive run indices (batch ``b`` is runs ``b*BATCH_RUNS ..``). A batch
is the unit of work a worker gets; its outcomes come back together and are
folded in run-index order, whatever order the batches finish in.

A :class:`Planner` decides each run (:meth:`Planner.plan`) and learns from
finished batches (:meth:`Planner.observe`). The engine keeps one rule that
makes a campaign's answer the same for any number of workers on any cluster:

* ``plan(i)`` is called once for every run index, in increasing order;
* ``observe`` gets whole batches, in batch order, each exactly once;
* when ``plan(i)`` is called for a run of batch ``b``, the planner has
  observed exactly the batches ``0 .. horizon(b) - 1`` -- never more, never
  fewer (:func:`horizon`: half of the batches before ``b``, at most
  :data:`MAX_LAG_BATCHES` behind). So a planner may use everything it has
  observed, and the plan is a function of the campaign seed and of the
  outcomes of earlier batches alone.

The lag is what lets many batches be in flight at once: the engine can hand
out batch ``b`` while the ``b - horizon(b)`` batches before it still run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from panthor_testbed.sched.core.strategy import Strategy, make_strategy, portfolio_member

from .runner import derive_seed

if TYPE_CHECKING:
    from panthor_testbed.sched import Kernel, SimThread

    from .replayfile import ReplayFile

BATCH_RUNS: Final = 32  # runs per batch: fixed, never depends on the number of workers
MAX_LAG_BATCHES: Final = 256  # how far planning may run ahead of the observed batches


def batch_of(run_index: int) -> int:
    """The batch a run belongs to."""
    return run_index // BATCH_RUNS


def horizon(batch: int) -> int:
    """How many leading batches a planner has observed when it plans ``batch``.

    Half of the batches before it (so early batches already learn from the
    first ones), and never more than :data:`MAX_LAG_BATCHES` behind. It
    grows by 0 or 1 from one batch to the next.
    """
    return max(batch // 2, batch - MAX_LAG_BATCHES)


@dataclass(frozen=True)
class RunPlan:
    """One run, as a worker executes it (picklable; small).

    ``strategy`` is a concrete strategy name (``random``, ``pct``,
    ``canonical``); ``label`` is what the campaign asked for (``portfolio``),
    recorded in replay files. ``prefix`` is a choice sequence (the encoding
    of ``Kernel.choices``: a tid, or ``-1 - value`` for a data choice)
    followed first, non-strictly (:class:`PrefixThen`), before the strategy
    takes over. ``inject``/``patch``/``config``: changes to the campaign's
    selection for this run only (None: the campaign's).
    """

    scenario: str
    params: dict[str, Any]
    run_index: int
    seed: int
    strategy: str
    depth: int = 3
    steps_estimate: int = 100
    prefix: tuple[int, ...] = ()
    label: str = ""
    inject: tuple[str, ...] | None = None
    patch: tuple[str, ...] | None = None
    config: tuple[tuple[str, Any], ...] = ()

    def make_strategy(self) -> Strategy:
        """The strategy that runs this plan (the prefix first, when there is one)."""
        inner = make_strategy(
            self.strategy,
            self.seed,
            depth=self.depth,
            steps_estimate=self.steps_estimate,
            run_index=self.run_index,
        )
        return PrefixThen(self.prefix, inner) if self.prefix else inner


@dataclass(frozen=True)
class RunOutcome:
    """What one run of a batch found (picklable; what the client folds in).

    ``failure``: the run's primary failure in replay-file form (kind,
    message, signature, thread, step, also) plus ``fatal`` and, for a
    lockdep report, its ``cycle`` -- None when the run passed. ``replay``:
    the ReplayFile for the first run of the
    batch with that signature (later ones in the batch carry None).
    ``choices``: every choice the run made. ``coverage``: the run's stable
    feature ids, sorted (None when coverage is off); ``coverage_summary``
    what the campaign report merges (seed functions entered, lock pairs).
    ``lock_edges``: the lock-order dependencies the run added to its batch's
    lockdep graph (``Edge.to_json()``, with the sites that made them), for
    the client's one merged graph. ``replay_s``: the wall seconds spent
    writing ``replay`` (one more run, to confirm it replays); reported only,
    never a decision.
    """

    run_index: int
    steps: int
    failure: dict[str, Any] | None
    replay: ReplayFile | None = None
    choices: tuple[int, ...] = ()
    coverage: tuple[int, ...] | None = None
    coverage_summary: dict[str, Any] | None = None
    lock_edges: tuple[dict[str, Any], ...] = ()
    replay_s: float = 0.0


class Planner(Protocol):
    """Decides the runs of one scenario of a campaign (see the module docstring)."""

    def plan(self, run_index: int) -> RunPlan: ...

    def observe(self, outcomes: Sequence[RunOutcome]) -> None:
        """One whole batch, in run-index order (shorter when the campaign stopped in it)."""
        ...


@dataclass
class PortfolioPlanner:
    """The default: run ``i`` has seed ``derive_seed(seed, scenario, i)`` and strategy
    ``strategy`` (for the portfolio, the member for ``i``: random walk and PCT
    at depths 1-3 alternating); PCT's run length and the interrupt floor come
    from the mean steps of the observed batches.

    ``prefixes`` (e.g. the example database's sequences, sorted) are replayed
    first: run ``i < len(prefixes)`` follows ``prefixes[i]`` before its own
    strategy goes on.
    """

    scenario: str
    params: dict[str, Any]
    seed: int = 1
    strategy: str = "portfolio"
    depth: int = 3
    prefixes: Sequence[tuple[int, ...]] = ()
    runs: int = field(default=0, init=False)
    steps: int = field(default=0, init=False)

    def steps_estimate(self) -> int:
        if not self.runs:
            return 100  # before the first batch: a small scenario's length
        return max(1, round(self.steps / self.runs))

    def plan(self, run_index: int) -> RunPlan:
        name, depth = self.strategy, self.depth
        if name == "portfolio":
            name, member_depth = portfolio_member(run_index)
            depth = member_depth or depth
        return RunPlan(
            scenario=self.scenario,
            params=self.params,
            run_index=run_index,
            seed=derive_seed(self.seed, self.scenario, run_index),
            strategy=name,
            depth=depth,
            steps_estimate=self.steps_estimate(),
            prefix=tuple(self.prefixes[run_index]) if run_index < len(self.prefixes) else (),
            label=self.strategy,
        )

    def observe(self, outcomes: Sequence[RunOutcome]) -> None:
        for o in outcomes:
            self.runs += 1
            self.steps += o.steps


class PrefixThen(Strategy):
    """Follow ``prefix`` non-strictly, then let ``inner`` choose.

    A prefix choice that does not fit the run (a tid that is not runnable, a
    data value out of range, a thread where a data value is asked or the
    reverse) is replaced by the canonical choice, as a lenient
    :class:`~panthor_testbed.sched.Replay` does, and the prefix goes on with
    its next entry; so a sequence saved on other code, or mutated, still
    steers the run as far as it can.
    """

    name = "prefix"

    def __init__(self, prefix: Sequence[int], inner: Strategy) -> None:
        self.prefix = tuple(prefix)
        self.inner = inner
        self.pos = 0

    def start_run(self, k: Kernel) -> None:
        self.inner.start_run(k)

    def end_run(self, k: Kernel) -> None:
        self.inner.end_run(k)

    def pick(self, k: Kernel, cur: SimThread | None, runnable: list[SimThread]) -> SimThread:
        if self.pos >= len(self.prefix):
            return self.inner.pick(k, cur, runnable)
        v = self.prefix[self.pos]
        self.pos += 1
        if v >= 0:
            for t in runnable:
                if t.tid == v:
                    return t
        return cur if cur is not None else runnable[0]

    def choose(self, k: Kernel, n: int, p_nonzero: float, what: str = "") -> int:
        if self.pos >= len(self.prefix):
            return self.inner.choose(k, n, p_nonzero, what)
        v = -1 - self.prefix[self.pos]
        self.pos += 1
        return v if 0 <= v < n else 0

    def describe(self) -> dict[str, Any]:
        out = self.inner.describe()
        out["prefix"] = len(self.prefix)
        return out


__all__ = [
    "BATCH_RUNS",
    "MAX_LAG_BATCHES",
    "Planner",
    "PortfolioPlanner",
    "PrefixThen",
    "RunOutcome",
    "RunPlan",
    "batch_of",
    "horizon",
]
