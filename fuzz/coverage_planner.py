"""``--strategy coverage``: a corpus of choice sequences that reached new coverage, mutated.

As AFL and syzkaller do, with a run's choice list (``Kernel.choices``) as
the input: every run collects coverage (:mod:`.coverage`); a run that
reached a feature no earlier run of the campaign had is kept in the corpus
with the features it brought. Each later run is, with probability
:data:`P_FRESH` (or while the corpus is empty), a fresh run of the default
portfolio, else a *mutant* of a corpus entry, followed non-strictly
(:class:`~.planner.PrefixThen`) before a random walk takes over:

* **flip**: a few thread choices pick another thread (or the interrupt);
* **data**: a few data choices (allocation failures, scenario data) take
  another value;
* **insert**: a preemption inserted: a thread choice put in, the rest shifted;
* **splice**: the head of this entry, the tail of another (aligned);
* **truncate**: the head only, the random walk choosing the rest (so a
  sequence that reached a new state is extended from there);
* **havoc**: two to four of these stacked.

Which entry: weighted by *energy*, the rarity of the features the entry
brought (the sum of 1/hits over the observed runs, so an entry whose
features every run now reaches fades), lowered for entries already mutated
often and raised for entries whose mutants found something (AFL's power
schedule, simplified).

Deterministic: the plan of run ``i`` is drawn from an RNG seeded by
(campaign seed, scenario, ``i``) and depends on the corpus as the observed
batches left it; the engine's horizon rule (:mod:`.planner`) decides which
batches those are, so the answer is the same for any number of workers.
A coverage-increasing sequence is handed to ``save`` (the campaign's
example database) the moment it is kept.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from panthor_testbed.sched.core.strategy import portfolio_member
from panthor_testbed.sched.core.thread import IRQ_TID

from .planner import BATCH_RUNS, RunOutcome, RunPlan, batch_of, horizon
from .runner import derive_seed

if TYPE_CHECKING:
    from .scenario import Scenario

P_FRESH: Final = 0.2  # a fresh portfolio run instead of a mutant
MAX_CORPUS: Final = 512  # entries kept (the lowest energy goes first)
MUTATIONS: Final = ("flip", "data", "insert", "splice", "truncate", "havoc")
COVERAGE_CONFIG: Final = (("coverage", True),)


@dataclass
class CorpusEntry:
    """A choice sequence that reached coverage no earlier run had."""

    choices: tuple[int, ...]
    novel: tuple[int, ...]  # the features it brought, sorted
    run_index: int
    children: int = 0  # mutants of it observed
    finds: int = 0  # of those, the ones that were kept in their turn
    energy: float = 0.0


@dataclass
class CoveragePlanner:
    """A :class:`~.planner.Planner` for ``--strategy coverage`` (one scenario of a campaign).

    ``prefixes`` (the example database's sequences) seed the corpus: run
    ``i < len(prefixes)`` follows ``prefixes[i]``, as the default planner
    does. ``feedback=False`` keeps the corpus empty whatever the runs
    reach: every run is then a fresh one (the control the tests compare
    against).
    """

    scenario: str
    params: dict[str, Any]
    seed: int = 1
    strategy: str = "coverage"
    depth: int = 3
    prefixes: Sequence[tuple[int, ...]] = ()
    save: Callable[[tuple[int, ...]], None] | None = None
    feedback: bool = True
    p_fresh: float = P_FRESH
    corpus: list[CorpusEntry] = field(default_factory=list, init=False)
    hits: dict[int, int] = field(default_factory=dict, init=False)  # feature -> runs
    runs: int = field(default=0, init=False)
    steps: int = field(default=0, init=False)
    parents: dict[int, int] = field(default_factory=dict, init=False)  # run -> entry
    _weights: list[float] = field(default_factory=list, init=False)  # cumulative energy

    # ------------------------------------------------------------------ planning

    def steps_estimate(self) -> int:
        if not self.runs:
            return 100
        return max(1, round(self.steps / self.runs))

    def plan(self, run_index: int) -> RunPlan:
        rng = random.Random(derive_seed(self.seed, f"{self.scenario}#coverage", run_index))
        seed = derive_seed(self.seed, self.scenario, run_index)
        est = self.steps_estimate()
        if run_index < len(self.prefixes):
            return self._plan(run_index, seed, "random", 0, est, tuple(self.prefixes[run_index]))
        if not self.corpus or rng.random() < self.p_fresh:
            name, depth = portfolio_member(run_index)
            return self._plan(run_index, seed, name, depth or self.depth, est, ())
        parent = self._pick(rng)
        self.parents[run_index] = parent
        prefix = self.mutate(rng, self.corpus[parent].choices)
        return self._plan(run_index, seed, "random", 0, est, prefix)

    def _plan(
        self, i: int, seed: int, name: str, depth: int, est: int, prefix: tuple[int, ...]
    ) -> RunPlan:
        return RunPlan(
            scenario=self.scenario,
            params=self.params,
            run_index=i,
            seed=seed,
            strategy=name,
            depth=depth or self.depth,
            steps_estimate=est,
            prefix=prefix,
            label="coverage",
            config=COVERAGE_CONFIG,
        )

    def _pick(self, rng: random.Random) -> int:
        weights = self._weights
        if not weights or weights[-1] <= 0.0:
            return int(rng.random() * len(self.corpus))
        x = rng.random() * weights[-1]
        return min(bisect_right(weights, x), len(self.corpus) - 1)

    # ------------------------------------------------------------------ mutations

    def mutate(self, rng: random.Random, choices: tuple[int, ...]) -> tuple[int, ...]:
        """One mutant of ``choices`` (never longer than twice it, plus a few)."""
        op = MUTATIONS[int(rng.random() * len(MUTATIONS))]
        if op == "havoc":
            out = choices
            for _ in range(2 + int(rng.random() * 3)):
                out = self._mutate_once(rng, out, MUTATIONS[int(rng.random() * 5)])
            return out
        return self._mutate_once(rng, choices, op)

    def _mutate_once(self, rng: random.Random, c: tuple[int, ...], op: str) -> tuple[int, ...]:
        n = len(c)
        if n == 0:
            return c
        if op == "truncate":
            return c[: int(rng.random() * n)]
        if op == "splice" and len(self.corpus) > 1:
            other = self.corpus[int(rng.random() * len(self.corpus))].choices
            cut = int(rng.random() * n)
            return c[:cut] + other[cut:]
        tids = sorted({v for v in c if v >= 0} | {IRQ_TID})
        if op == "insert":
            out = list(c)
            for _ in range(1 + int(rng.random() * 3)):
                out.insert(int(rng.random() * (len(out) + 1)), tids[int(rng.random() * len(tids))])
            return tuple(out)
        data = [i for i, v in enumerate(c) if v < 0]
        if op == "data" and data:
            out = list(c)
            for _ in range(1 + int(rng.random() * 2)):
                i = data[int(rng.random() * len(data))]
                out[i] = -1 - _data_value(rng, -1 - out[i])
            return tuple(out)
        threads = [i for i, v in enumerate(c) if v >= 0]
        if not threads:
            return c
        out = list(c)
        for _ in range(1 + int(rng.random() * 3)):  # flip
            i = threads[int(rng.random() * len(threads))]
            out[i] = tids[int(rng.random() * len(tids))]
        return tuple(out)

    # ------------------------------------------------------------------ feedback

    def observe(self, outcomes: Sequence[RunOutcome]) -> None:
        """Fold one batch in, in run-index order: keep what reached new features."""
        for o in outcomes:
            self.runs += 1
            self.steps += o.steps
            parent = self.parents.pop(o.run_index, None)
            if parent is not None and parent < len(self.corpus):
                self.corpus[parent].children += 1
            features = o.coverage or ()
            hits = self.hits
            novel = [f for f in features if f not in hits]
            for f in features:
                hits[f] = hits.get(f, 0) + 1
            if not novel or not self.feedback:
                continue
            if parent is not None and parent < len(self.corpus):
                self.corpus[parent].finds += 1
            self.corpus.append(CorpusEntry(tuple(o.choices), tuple(novel), o.run_index))
            if self.save is not None:
                self.save(tuple(o.choices))
        self._reweigh()

    def _reweigh(self) -> None:
        hits = self.hits
        for e in self.corpus:
            rarity = sum(1.0 / hits.get(f, 1) for f in e.novel)
            e.energy = rarity * (1.0 + e.finds) / math.sqrt(1.0 + e.children)
        if len(self.corpus) > MAX_CORPUS:
            # The weakest go (the older first on ties); the rest keep their order.
            order = sorted(range(len(self.corpus)), key=lambda i: (self.corpus[i].energy, i))
            drop = set(order[: len(self.corpus) - MAX_CORPUS])
            remap: dict[int, int] = {}
            kept: list[CorpusEntry] = []
            for i, e in enumerate(self.corpus):
                if i not in drop:
                    remap[i] = len(kept)
                    kept.append(e)
            self.corpus = kept
            self.parents = {r: remap[p] for r, p in self.parents.items() if p in remap}
        total = 0.0
        self._weights = []
        for e in self.corpus:
            total += e.energy
            self._weights.append(total)


def _data_value(rng: random.Random, v: int) -> int:
    """Another data value near ``v`` or anywhere small (the range is the run's to check)."""
    r = rng.random()
    if r < 0.25:
        return v + 1
    if r < 0.4:
        return max(0, v - 1)
    if r < 0.5:
        return 0
    return int(rng.random() * (1 << (1 + int(rng.random() * 4))))


# ---------------------------------------------------------------------- local loop


def run_local(
    planner: Any,
    spec: Any,
    budget: int,
    *,
    stop: Callable[[RunOutcome], bool] = lambda o: o.failure is not None,
) -> list[RunOutcome]:
    """Run ``planner``'s plans of ``spec`` in this process, under the engine's horizon rule.

    Stops after the first outcome ``stop`` accepts (by default the first
    failure) or after ``budget`` runs; returns the outcomes in run order.
    For tests and the bench; campaigns go through the engine.
    """
    import dataclasses

    import trio

    from panthor_testbed.sched.locking.lockdep import Lockdep

    from .coverage import collect
    from .runner import execute, failure_json

    graph = Lockdep()
    outcomes: list[RunOutcome] = []

    async def one(plan: RunPlan) -> RunOutcome:
        s = spec
        if plan.config:
            cfg = dataclasses.replace(spec.config, **dict(plan.config))
            s = dataclasses.replace(spec, config=cfg)
        k = await execute(s, plan.make_strategy(), graph, run_id=plan.run_index)
        f = k.primary_failure
        cov = collect(k) if k.coverage is not None else None
        return RunOutcome(
            run_index=plan.run_index,
            steps=k.steps,
            failure=failure_json(k) if f is not None else None,
            choices=tuple(k.choices),
            coverage=cov.features() if cov is not None else None,
        )

    async def loop() -> None:
        observed = 0  # batches fed to the planner
        for i in range(budget):
            b = batch_of(i)
            while observed < horizon(b):
                planner.observe(outcomes[observed * BATCH_RUNS : (observed + 1) * BATCH_RUNS])
                observed += 1
            o = await one(planner.plan(i))
            outcomes.append(o)
            if stop(o):
                return

    trio.run(loop)
    return outcomes


def make_planner(strategy: str, scenario: str, params: dict[str, Any], seed: int, **kw: Any) -> Any:
    """The planner for ``--strategy``: coverage, or the default one for the others."""
    from .planner import PortfolioPlanner

    if strategy == "coverage":
        return CoveragePlanner(scenario, params, seed, **kw)
    return PortfolioPlanner(scenario, params, seed, strategy, **kw)


def first_failure(
    scenario: str | Scenario,
    strategy: str,
    seed: int,
    budget: int,
    *,
    params: dict[str, Any] | None = None,
    inject: tuple[str, ...] = (),
    patch: tuple[str, ...] = (),
    feedback: bool = True,
    is_the_bug: Callable[[dict[str, Any]], bool] | None = None,
) -> int | None:
    """Runs (1-based) a campaign of ``strategy`` needs to its first failure (None: not found).

    With ``is_the_bug``, a first failure it does not recognise is "not found"
    too (the campaign stopped at another finding).
    """
    from .runner import RunSpec
    from .scenario import get_scenario

    sc = get_scenario(scenario) if isinstance(scenario, str) else scenario
    spec = RunSpec.make(sc, params or {}, inject=inject, patch=patch)
    kw: dict[str, Any] = {} if strategy != "coverage" else {"feedback": feedback}
    planner = make_planner(strategy, sc.name, dict(spec.params), seed, **kw)
    outcomes = run_local(planner, spec, budget)
    failure = outcomes[-1].failure if outcomes else None
    if failure is not None and (is_the_bug is None or is_the_bug(failure)):
        return len(outcomes)
    return None


__all__ = [
    "MUTATIONS",
    "P_FRESH",
    "CorpusEntry",
    "CoveragePlanner",
    "first_failure",
    "make_planner",
    "run_local",
]
