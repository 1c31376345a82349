"""Fuzz campaigns: many schedules of many scenarios, failures saved as replay files.

A scenario's runs go out in batches of :data:`~.planner.BATCH_RUNS` (an
engine runs them: in this process for ``jobs=1``, on a Dask cluster
otherwise, see ``engine.py``; to a cluster, batches of short runs travel
several to a task, which changes when they run, never what they find) and
come back to be *folded* here, in run-index order, whatever order they
finish in. A :class:`~.planner.Planner` decides every run (default:
:class:`~.planner.PortfolioPlanner`, run ``i`` with the seed
``derive_seed(seed, scenario, i)``), so a campaign gives the
same answer for any number of workers: the first failure is the one with
the lowest run index, and its replay file is the same file.

Stopping: a scenario stops at its first fatal failure unless ``keep_going``.
A lockdep report is only a *potential* deadlock, so the campaign goes on for
up to ``witness_runs`` more runs looking for a schedule where it really
happens, and attaches that schedule as the report's witness.

Lockdep: every batch has a graph of its own; the dependencies each run adds
are merged here into one graph for the campaign (``lockgraph.py``), so an
inversion whose halves were seen in different batches -- on different
workers -- is reported too, confirmed by running its closing run again on a
graph seeded with the other halves, and then looked for a witness like any
other.

Every failure is written to disk the moment it is folded in (each signature
once per scenario), so an interrupted campaign loses nothing it already
found; with ``out`` the campaign also keeps ``out/campaign.json`` (the
schema in docs/report.md) up to date at every progress tick and at the end.
With ``out=None`` (the Python API's default) nothing is written: each
finding carries its ReplayFile.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio
from trio_util import AsyncBool, periodic, wait_any

from panthor_testbed import __version__

from .engine import (
    RUN_IDS_PER_SCENARIO,
    BatchResult,
    BatchTask,
    DaskEngine,
    Engine,
    LocalEngine,
    SpecRef,
    coverage_available,
    ends_scenario,
    spec_for,
    strategy_json,
)
from .example_db import ExampleDb
from .lockgraph import Inversion, MergedGraph
from .planner import (
    BATCH_RUNS,
    Planner,
    PortfolioPlanner,
    RunOutcome,
    RunPlan,
    batch_of,
    horizon,
)
from .replayfile import ReplayFile, replay_name
from .runner import RunSpec, execute, replay_file_of

DEFAULT_RUNS = 1000
CAMPAIGN_FILE = "campaign.json"
PROGRESS_INTERVAL_S = 0.5


@dataclass(frozen=True)
class CampaignOptions:
    runs: int | None = None  # per scenario (DEFAULT_RUNS without a time budget)
    time_budget: float | None = None  # seconds, for the whole campaign
    seed: int = 1
    strategy: str = "portfolio"
    depth: int = 3
    jobs: int = 1  # 1: in this process; N: an embedded Dask LocalCluster of N workers
    scheduler: str | None = None  # tcp://HOST:PORT of an existing Dask cluster
    out: str | None = "failures"  # None: keep replay files in memory only
    keep_going: bool = False
    witness_runs: int = 200
    example_db: str | None = None  # DIR or redis://HOST:PORT
    coverage: bool | None = None  # None: when panthor_testbed.fuzz.coverage is there

    def runs_per_scenario(self) -> int | None:
        if self.runs is not None:
            return self.runs
        return None if self.time_budget is not None else DEFAULT_RUNS


@dataclass
class Found:
    """A distinct failure found by a campaign."""

    scenario: str
    failure: dict[str, Any]
    run: int
    seed: int
    replay: str  # the file's path ("" when the campaign keeps files in memory)
    witness: str | None = None  # for a lockdep report: the replay of a real deadlock
    replay_file: ReplayFile | None = None
    witness_file: ReplayFile | None = None
    halves: list[dict[str, Any]] | None = None  # an inversion seen across batches: who saw what
    # Wall seconds spent writing the replay file (one more run that confirms it
    # replays); reported only, never a decision.
    replay_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = {
            "kind": self.failure["kind"],
            "message": self.failure["message"],
            "run": self.run,
            "seed": self.seed,
            "replay": self.replay,
        }
        if self.witness:
            out["witness"] = self.witness
        if self.halves:
            out["halves"] = self.halves
        return out


DONE, INTERRUPTED, NOT_RUN = "done", "interrupted", "not run"


@dataclass
class ScenarioResult:
    name: str
    runs: int = 0
    steps: int = 0
    elapsed_s: float = 0.0
    failures: list[Found] = field(default_factory=list)
    status: str = NOT_RUN  # DONE: it ran its share to the end (or to its first failure)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "runs": self.runs,
            "steps": self.steps,
            "elapsed_s": round(self.elapsed_s, 3),
            "status": self.status,
            "failures": [f.to_json() for f in self.failures],
        }


@dataclass
class CampaignResult:
    scenarios: list[ScenarioResult] = field(default_factory=list)
    interrupted: bool = False
    elapsed_s: float = 0.0
    workers: int = 1
    timeline: list[tuple[float, int]] = field(default_factory=list)
    coverage: dict[str, Any] | None = None  # as campaign.json stores it

    @property
    def runs(self) -> int:
        return sum(s.runs for s in self.scenarios)

    @property
    def failures(self) -> int:
        return sum(len(s.failures) for s in self.scenarios)


@dataclass
class ProgressStats:
    """What the live display shows besides the current scenario's bar."""

    runs: int = 0  # the whole campaign
    failures: int = 0
    elapsed_s: float = 0.0
    per_worker: dict[str, int] = field(default_factory=dict)  # runs done by each worker
    functions_reached: int | None = None  # None: no coverage data
    functions_total: int | None = None
    lock_pairs: int = 0  # distinct lock-order pairs in the merged graph


class ProgressSink:
    """Receives progress (the CLI draws a bar from it)."""

    def start(self, name: str, total: int | None, budget_s: float | None) -> None: ...

    def update(self, name: str, runs: int, steps: int, failures: int) -> None: ...

    def stats(self, stats: ProgressStats) -> None:
        """At every progress tick: the campaign as a whole."""

    def finish(self, result: ScenarioResult) -> None: ...

    def found(self, name: str, found: Found) -> None: ...

    def close(self) -> None:
        """The campaign ended, however it ended (also after Ctrl-C or an error)."""


# ---------------------------------------------------------------------- the fold


class _Campaign:
    """What the client keeps for the whole campaign while batches come back."""

    def __init__(
        self,
        specs: Sequence[RunSpec],
        opts: CampaignOptions,
        progress: ProgressSink,
        result: CampaignResult,
        engine: Engine,
    ) -> None:
        self.specs = list(specs)
        self.opts = opts
        self.progress = progress
        self.result = result
        self.engine = engine
        self.graph = MergedGraph()
        self.t0 = time.monotonic()
        self.started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self.per_worker: dict[str, int] = {}
        self.db = ExampleDb.open(opts.example_db) if opts.example_db else None
        self.coverage = opts.coverage if opts.coverage is not None else coverage_available()
        if opts.strategy == "coverage":
            self.coverage = True  # the planner feeds on it
        if self.coverage and not coverage_available():
            self.coverage = False
        self.totals: Any = None
        if self.coverage:
            from .engine import _coverage_module

            self.totals = _coverage_module().Totals()

    # ---------------------------------------------------------------- output

    def save(self, found: Found, rf: ReplayFile, name: str) -> str:
        if self.opts.out is None:
            return ""
        path = os.path.join(self.opts.out, name)
        rf.save(path)
        return path

    def campaign_json(self) -> dict[str, Any]:
        r = self.result
        out: dict[str, Any] = {
            "version": __version__,
            "started": self.started,
            "strategy": self.opts.strategy,
            "seed": self.opts.seed,
            "jobs": r.workers,
            "scenarios": [s.to_json() for s in r.scenarios],
            "timeline": [[round(t, 3), n] for t, n in r.timeline],
        }
        if self.totals is not None:
            out["coverage"] = self.totals.to_json()
        out["interrupted"] = r.interrupted
        return out

    def write_campaign_json(self) -> None:
        if self.opts.out is None:
            return
        path = os.path.join(self.opts.out, CAMPAIGN_FILE)
        tmp = f"{path}.tmp"
        os.makedirs(self.opts.out, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.campaign_json(), f, indent=1)
            f.write("\n")
        os.replace(tmp, path)

    def tick(self) -> None:
        """A progress interval: the timeline, the display, campaign.json."""
        elapsed = time.monotonic() - self.t0
        self.result.elapsed_s = elapsed
        self.result.timeline.append((elapsed, self.result.runs))
        if self.totals is not None:
            self.result.coverage = self.totals.to_json()
        self.progress.stats(self.stats())
        self.write_campaign_json()

    def stats(self) -> ProgressStats:
        s = ProgressStats(
            runs=self.result.runs,
            failures=self.result.failures,
            elapsed_s=time.monotonic() - self.t0,
            per_worker=dict(sorted(self.per_worker.items())),
            lock_pairs=self.graph.new_pairs(),
        )
        if self.totals is not None:
            from .engine import _coverage_module

            s.functions_reached = sum(1 for n in self.totals.functions.values() if n)
            s.functions_total = len(_coverage_module().SEED_FUNCTIONS)
        return s


class _ScenarioFold:
    """One scenario's fold: dedup, stop rule, witness search, cross-batch inversions."""

    def __init__(self, camp: _Campaign, si: int, spec: RunSpec, current: ScenarioResult) -> None:
        self.camp = camp
        self.si = si
        self.spec = spec
        self.name = spec.scenario.name
        self.current = current
        self.seen: set[str] = set()
        self.pending: Found | None = None  # a lockdep report waiting for its witness
        self.pending_cycle: list[str] = []
        self.witness_left = 0
        self.stopped = False
        self.folded = -1  # the last run index folded in
        self.db_key = ExampleDb.key(self.name, spec.params)

    async def fold(self, o: RunOutcome, plan: RunPlan, worker: str) -> None:
        if self.stopped:
            return
        camp, opts = self.camp, self.camp.opts
        self.folded = o.run_index
        self.current.runs += 1
        self.current.steps += o.steps
        camp.per_worker[worker] = camp.per_worker.get(worker, 0) + 1
        if camp.totals is not None and o.coverage is not None:
            camp.totals.add({**(o.coverage_summary or {}), "features": list(o.coverage)})
        stop = False
        new = o.failure is not None and o.failure["signature"] not in self.seen
        if o.failure is not None and o.failure["kind"] == "lockdep":
            new = new and o.failure["signature"] not in camp.graph.reported
        if o.failure is not None and new:
            f = o.failure
            self.seen.add(f["signature"])
            if f["kind"] == "lockdep":
                camp.graph.reported.add(f["signature"])
            rf = o.replay
            assert isinstance(rf, ReplayFile), "a batch's first failure of a kind has its file"
            found = Found(self.name, rf.failure, o.run_index, plan.seed, "", replay_file=rf)
            found.replay_s = o.replay_s
            found.replay = camp.save(found, rf, replay_name(self.name, plan.seed))
            self._add(found, o.choices)
            stop = self._after_failure(found, f)
        for edge in o.lock_edges:
            inv = camp.graph.add(edge)
            if inv is not None:
                await self._inversion(inv, o, plan, worker)
        if not new and self.pending is not None and not opts.keep_going:
            self.witness_left -= 1
            if self.witness_left <= 0:
                stop = True
        camp.progress.update(
            self.name, self.current.runs, self.current.steps, len(self.current.failures)
        )
        if stop:
            self.stopped = True

    def _add(self, found: Found, choices: Sequence[int]) -> None:
        self.current.failures.append(found)
        self.camp.progress.found(self.name, found)
        if self.camp.db is not None:
            self.camp.db.save_failing(self.db_key, choices)

    def _after_failure(self, found: Found, f: dict[str, Any]) -> bool:
        opts = self.camp.opts
        if (
            self.pending is not None
            and f["kind"] == "deadlock"
            and (not self.pending_cycle or any(c in f["signature"] for c in self.pending_cycle))
        ):
            self.pending.witness = found.replay
            self.pending.witness_file = found.replay_file
        if f["kind"] == "lockdep" and not f.get("fatal"):
            if self.pending is None:
                self.pending = found
                self.pending_cycle = list(f.get("cycle", []))
                self.witness_left = opts.witness_runs
            return False
        return ends_scenario(f, opts.keep_going)

    async def _inversion(self, inv: Inversion, o: RunOutcome, plan: RunPlan, worker: str) -> None:
        """An inversion whose halves came from different batches: confirm it, report it."""
        camp = self.camp
        run_id = self.si * RUN_IDS_PER_SCENARIO + o.run_index
        earlier = [e for e in inv.path if e["origin"]["run_id"] != run_id]
        spec = spec_for(self.spec, plan)
        from panthor_testbed.sched.locking.lockdep import Lockdep

        graph = Lockdep()
        graph.seed_edges(earlier)
        k = await execute(spec, plan.make_strategy(), graph, run_id=run_id)
        mine = [f for f in k.failures if f.signature == inv.signature]
        halves: list[dict[str, Any]] = [
            {"run": _run_of(e), "scenario_index": _si_of(e), "edge": [e["from"], e["to"]]}
            for e in inv.path
        ]
        halves.append(
            {
                "run": o.run_index,
                "scenario_index": self.si,
                "edge": [inv.edge["from"], inv.edge["to"]],
            }
        )
        if not mine or k.primary_failure is not mine[0]:
            return  # the closing run does not report it on its own (another failure names it)
        rf = await replay_file_of(
            k,
            spec,
            strategy=strategy_json(k, plan),
            seed=plan.seed,
            reported_before=[],
            lockdep_edges=earlier,
            note=f"lockdep report across batches: the other halves came from runs "
            f"{sorted({_run_of(e) for e in earlier})} (merged on the client)",
        )
        found = Found(self.name, rf.failure, o.run_index, plan.seed, "", replay_file=rf)
        found.halves = halves
        name = replay_name(self.name, plan.seed).removesuffix(".json") + "-inversion.json"
        found.replay = camp.save(found, rf, name)
        self.seen.add(inv.signature)
        self._add(found, o.choices)
        self._after_failure(found, {**rf.failure, "cycle": list(inv.cycle), "fatal": False})


def _run_of(edge: dict[str, Any]) -> int:
    return int(edge["origin"]["run_id"]) % RUN_IDS_PER_SCENARIO


def _si_of(edge: dict[str, Any]) -> int:
    return int(edge["origin"]["run_id"]) // RUN_IDS_PER_SCENARIO


# ---------------------------------------------------------------------- one scenario


def make_planner(
    spec: RunSpec,
    opts: CampaignOptions,
    prefixes: Sequence[tuple[int, ...]],
    save: Callable[[tuple[int, ...]], None] | None = None,
) -> Planner:
    """The planner of one scenario: coverage-guided for ``--strategy coverage``."""
    if opts.strategy == "coverage":
        from .coverage_planner import CoveragePlanner

        return CoveragePlanner(
            spec.scenario.name,
            dict(spec.params),
            seed=opts.seed,
            depth=opts.depth,
            prefixes=prefixes,
            save=save,
        )
    return PortfolioPlanner(
        spec.scenario.name,
        dict(spec.params),
        seed=opts.seed,
        strategy=opts.strategy,
        depth=opts.depth,
        prefixes=prefixes,
    )


async def _drive(
    camp: _Campaign,
    si: int,
    spec: RunSpec,
    current: ScenarioResult,
    stop_at: float | None,
) -> None:
    """Plan, hand out and fold one scenario's batches (see planner.py for the rule)."""
    opts, engine = camp.opts, camp.engine
    total = opts.runs_per_scenario()
    key = ExampleDb.key(spec.scenario.name, spec.params)
    db = camp.db
    prefixes = db.prefixes(key) if db else []
    save = (lambda choices: db.save_interesting(key, choices)) if db else None
    planner = make_planner(spec, opts, prefixes, save)
    fold = _ScenarioFold(camp, si, spec, current)
    ref = SpecRef.of(spec)
    plans: dict[int, tuple[RunPlan, ...]] = {}
    results: dict[int, BatchResult] = {}
    streamed: dict[int, int] = {}  # outcomes of a batch already folded as they came
    state = {"planned": 0, "observed": 0, "submitted": 0, "in_flight": 0}
    send, recv = trio.open_memory_channel[tuple[BatchResult, ...]](math.inf)

    def plan_more() -> None:
        # Exactly on time: batch b is planned when horizon(b) batches are observed.
        while True:
            b = state["planned"]
            lo = b * BATCH_RUNS
            if (total is not None and lo >= total) or horizon(b) > state["observed"]:
                return
            hi = lo + BATCH_RUNS if total is None else min(lo + BATCH_RUNS, total)
            plans[b] = tuple(planner.plan(i) for i in range(lo, hi))
            state["planned"] = b + 1

    def out_of_time() -> bool:
        return stop_at is not None and time.time() >= stop_at

    async def run_chunk(tasks: tuple[BatchTask, ...]) -> None:
        async def on_outcome(o: RunOutcome) -> None:
            b = batch_of(o.run_index)
            if b == state["observed"]:  # streamed in order (the local engine)
                await fold.fold(o, plans[b][o.run_index - b * BATCH_RUNS], "local")
                streamed[b] = streamed.get(b, 0) + 1

        send.send_nowait(await engine.run(tasks, spec, on_outcome))

    def next_chunk() -> tuple[BatchTask, ...]:
        # Consecutive planned batches, as many as the engine asks for but
        # never so many that the other free slots go without work.
        first = state["submitted"]
        ready = 0
        while first + ready in plans:
            ready += 1
        free = engine.capacity - state["in_flight"]
        k = max(1, min(engine.chunk_size(), ready // free))
        tasks = []
        for b in range(first, first + k):
            sizes[b] = len(plans[b])
            tasks.append(BatchTask(ref, si, b, plans[b], opts.keep_going, stop_at, camp.coverage))
        state["submitted"] = first + k
        return tuple(tasks)

    sizes: dict[int, int] = {}

    def short(b: int, r: BatchResult) -> bool:
        return len(r.outcomes) < sizes[b]

    t0 = time.monotonic()
    camp.progress.start(
        current.name, total, None if stop_at is None else max(0.0, stop_at - time.time())
    )
    current.status = INTERRUPTED  # until it completes
    plan_more()
    try:
        async with trio.open_nursery() as nursery:
            while True:
                while (
                    not fold.stopped
                    and state["in_flight"] < engine.capacity
                    and state["submitted"] in plans
                    and not out_of_time()
                ):
                    chunk = next_chunk()
                    state["in_flight"] += 1
                    nursery.start_soon(run_chunk, chunk)
                if state["in_flight"] == 0:
                    break
                chunk_results = await recv.receive()
                state["in_flight"] -= 1
                for r in chunk_results:
                    engine.observe(r, len(r.outcomes))
                    results[r.batch] = r
                while state["observed"] in results and not fold.stopped:
                    b = state["observed"]
                    r = results.pop(b)
                    for o in r.outcomes[streamed.pop(b, 0) :]:
                        await fold.fold(o, plans[b][o.run_index - b * BATCH_RUNS], r.worker)
                        if fold.stopped:
                            break
                    planner.observe(r.outcomes)
                    full = not short(b, r)
                    del plans[b]
                    state["observed"] = b + 1
                    if not full:
                        fold.stopped = True  # the batch ended early: the budget, or a failure
                        break
                    plan_more()
                if fold.stopped:
                    nursery.cancel_scope.cancel()
                    break
    finally:
        current.elapsed_s = time.monotonic() - t0
        if not fold.stopped and results:
            # Interrupted: fold what already came back (out of order past a gap),
            # so nothing found is lost.
            with trio.CancelScope(shield=True):
                for b in sorted(results):
                    r = results[b]
                    for o in r.outcomes[streamed.get(b, 0) :]:
                        if o.run_index > fold.folded:
                            await fold.fold(o, plans[b][o.run_index - b * BATCH_RUNS], r.worker)
    current.status = DONE
    camp.progress.finish(current)


# ---------------------------------------------------------------------- a campaign


async def run_campaign(
    specs: list[RunSpec],
    opts: CampaignOptions,
    progress: ProgressSink,
    result: CampaignResult,
    *,
    engine: Engine | None = None,
) -> None:
    """Run a campaign; fills ``result`` as it goes (so Ctrl-C keeps it).

    Every scenario is in ``result`` from the start with status NOT_RUN; the
    one running when the campaign is interrupted ends up INTERRUPTED, with
    its runs, steps and time so far. ``engine``: where batches run (default
    from ``opts``: this process for ``jobs == 1`` without a scheduler, else
    a Dask cluster, closed at the end however the campaign ends).
    """
    own = engine is None
    if engine is None:
        engine = await start_engine(opts)
    camp = _Campaign(specs, opts, progress, result, engine)
    result.workers = engine.workers
    results = [ScenarioResult(spec.scenario.name) for spec in specs]
    result.scenarios.extend(results)
    camp.t0 = time.monotonic()
    wall0 = time.time()
    try:
        async with trio.open_nursery() as nursery:

            async def refresh() -> None:
                async for _ in periodic(PROGRESS_INTERVAL_S):
                    camp.tick()

            nursery.start_soon(refresh)
            for si, spec in enumerate(specs):
                stop_at = None
                if opts.time_budget is not None:
                    stop_at = wall0 + opts.time_budget * (si + 1) / len(specs)
                await _drive(camp, si, spec, results[si], stop_at)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            if own:
                await engine.aclose()
            camp.tick()
            if camp.db is not None:
                camp.db.close()


async def start_engine(opts: CampaignOptions) -> Engine:
    if opts.jobs == 1 and opts.scheduler is None:
        return LocalEngine()
    engine = DaskEngine(jobs=opts.jobs, address=opts.scheduler)
    try:
        await trio.to_thread.run_sync(engine.start)
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(engine.close)
        raise
    return engine


async def run_until_interrupted(
    body: Callable[[], Awaitable[None]], on_interrupt: Callable[[], None]
) -> bool:
    """Run ``body``; on SIGINT (Ctrl-C) call ``on_interrupt`` and cancel it cleanly.

    True if it was interrupted. The campaign's own cleanup (folding what came
    back, closing the cluster, writing campaign.json) runs in its finally
    blocks, shielded.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        await body()
        return False
    interrupted = AsyncBool(False)
    with trio.open_signal_receiver(signal.SIGINT) as signals:

        async def watch() -> None:
            async for _ in signals:
                on_interrupt()
                interrupted.value = True
                return

        await wait_any(body, watch)
    return bool(interrupted.value)


def remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


__all__ = [
    "CAMPAIGN_FILE",
    "DEFAULT_RUNS",
    "DONE",
    "INTERRUPTED",
    "NOT_RUN",
    "CampaignOptions",
    "CampaignResult",
    "Found",
    "ProgressSink",
    "ProgressStats",
    "ScenarioResult",
    "make_planner",
    "run_campaign",
    "run_until_interrupted",
    "start_engine",
]
