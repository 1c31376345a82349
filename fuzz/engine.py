"""Where batches of runs execute: in this process, or on a Dask cluster.

A :class:`BatchTask` is a scenario reference (the spec travels, not the
function: a worker finds a built-in by name, a ``--file`` scenario by its
path, a module scenario by import) and the :class:`~.planner.RunPlan` of
each of its runs. :func:`arun_batch` executes them one after the other with
a lockdep graph of its own (fresh for every batch, so what a batch finds
depends on its runs alone, never on which worker ran it or what that worker
ran before) and hands back one :class:`~.planner.RunOutcome` per run with
the lock-order dependencies the run added, for the client's merged graph.

A batch stops early at a failure that ends its scenario (the first new
non-lockdep failure unless ``keep_going``) and at ``stop_at`` (the
campaign's time budget, in wall-clock seconds since the epoch, so it means
the same on every machine of a cluster).

Engines: :class:`LocalEngine` runs a batch in the caller's Trio loop (no
Dask: ``--jobs 1``); :class:`DaskEngine` submits batches to a Dask
``distributed`` cluster, an embedded ``LocalCluster(n_workers=N,
threads_per_worker=1, processes=True)`` for ``--jobs N`` or an existing one
for ``--scheduler tcp://HOST:PORT``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from .planner import BATCH_RUNS, RunOutcome, RunPlan
from .runner import RunSpec, execute, failure_json, replay_file_of
from .scenario import builtin_scenarios, get_scenario, load_file, load_module

if TYPE_CHECKING:
    from panthor_testbed.sched import Kernel
    from panthor_testbed.sched.locking.lockdep import Lockdep

    from .scenario import Scenario

RUN_IDS_PER_SCENARIO = 1_000_000_000  # run ids (lockdep edge origins) unique per campaign


# ---------------------------------------------------------------------- what travels


@dataclass(frozen=True)
class SpecRef:
    """A picklable RunSpec: the scenario by name and source, never its function."""

    scenario: str
    source: tuple[tuple[str, str], ...] | None  # ScenarioSource fields; None: a built-in
    params: tuple[tuple[str, Any], ...]
    config: tuple[tuple[str, Any], ...]
    inject: tuple[str, ...]
    patch: tuple[str, ...]

    @classmethod
    def of(cls, spec: RunSpec) -> SpecRef:
        src = spec.scenario.source
        source = None
        if src is not None and src.kind != "builtin":
            source = tuple(sorted((k, str(v)) for k, v in src.__dict__.items() if v))
        return cls(
            spec.scenario.name,
            source,
            tuple(spec.params.items()),
            tuple(spec.config.to_json().items()),
            tuple(sorted(spec.inject)),
            tuple(sorted(spec.patch)),
        )

    @property
    def portable(self) -> bool:
        """Can another process find the scenario? (Not a bare Python function.)"""
        return self.source is not None or self.scenario in builtin_scenarios()

    def find(self) -> Scenario:
        if self.source is None:
            return get_scenario(self.scenario)
        src = dict(self.source)
        if src["kind"] == "file":
            return load_file(src["path"], src["function"], name=self.scenario)
        roots = [src["root"]] if src.get("root") else []
        return load_module(src["module"], src["function"], name=self.scenario, roots=roots)

    def build(self, scenario: Scenario | None = None) -> RunSpec:
        return RunSpec.make(
            scenario or self.find(),
            dict(self.params),
            config=dict(self.config),
            inject=self.inject,
            patch=self.patch,
        )


@dataclass(frozen=True)
class BatchTask:
    """One batch of one scenario (picklable)."""

    spec: SpecRef
    scenario_index: int
    batch: int
    plans: tuple[RunPlan, ...]
    keep_going: bool = False
    stop_at: float | None = None  # time.time(): the campaign's budget
    coverage: bool = False


@dataclass(frozen=True)
class BatchResult:
    batch: int
    outcomes: tuple[RunOutcome, ...]
    worker: str = "local"
    elapsed_s: float = 0.0


# ---------------------------------------------------------------------- one batch


def _coverage_module() -> Any:
    """``panthor_testbed.fuzz.coverage`` when it is there (it is optional)."""
    try:
        from . import coverage  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    return coverage


def coverage_available() -> bool:
    from panthor_testbed.sched import KernelConfig

    return _coverage_module() is not None and "coverage" in KernelConfig().to_json()


def _edges_of(graph: Lockdep) -> dict[tuple[str, str], tuple[int, dict[str, Any]]]:
    out: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    for cls in graph.classes.values():
        for nxt, e in cls.after.items():
            out[(cls.key, nxt.key)] = (e.types, e.to_json())
    return out


class _EdgeDiff:
    """The dependencies each run adds to the batch's graph (new pairs and new type bits)."""

    def __init__(self, graph: Lockdep) -> None:
        self.graph = graph
        self.known = {k: v[0] for k, v in _edges_of(graph).items()}

    def new(self) -> tuple[dict[str, Any], ...]:
        out: list[dict[str, Any]] = []
        for key, (types, js) in _edges_of(self.graph).items():
            old = self.known.get(key, 0)
            if types & ~old:
                self.known[key] = old | types
                out.append({**js, "types": types & ~old})
        out.sort(key=lambda e: (e["origin"]["step"], e["from"], e["to"]))
        return tuple(out)


def _failure_summary(k: Kernel) -> dict[str, Any] | None:
    f = k.primary_failure
    if f is None:
        return None
    out = failure_json(k)
    out["fatal"] = bool(f.extra.get("fatal"))
    if "cycle" in f.extra:
        out["cycle"] = list(f.extra["cycle"])
    return out


def ends_scenario(failure: dict[str, Any], keep_going: bool) -> bool:
    """Does this (new) failure stop its scenario? A lockdep report waits for a witness."""
    if keep_going:
        return False
    return bool(failure.get("fatal")) or failure["kind"] != "lockdep"


def strategy_json(k: Kernel, plan: RunPlan) -> dict[str, Any]:
    strategy = k.strategy.describe()
    if plan.label and plan.label != strategy["name"]:
        strategy["portfolio"] = plan.label
    return strategy


def spec_for(spec: RunSpec, plan: RunPlan) -> RunSpec:
    """The campaign's spec with this run's own changes (params, selection, config)."""
    if (
        plan.params == spec.params
        and plan.inject is None
        and plan.patch is None
        and not plan.config
    ):
        return spec
    return RunSpec.make(
        spec.scenario,
        plan.params,
        config={**spec.config.to_json(), **dict(plan.config)},
        inject=spec.inject if plan.inject is None else frozenset(plan.inject),
        patch=spec.patch if plan.patch is None else frozenset(plan.patch),
    )


async def arun_batch(
    task: BatchTask,
    spec: RunSpec,
    *,
    on_outcome: Callable[[RunOutcome], Awaitable[None]] | None = None,
    worker: str = "local",
) -> BatchResult:
    """Run a batch here, in order; ``on_outcome`` hears each run as it ends."""
    from panthor_testbed.sched.locking.lockdep import Lockdep

    t0 = time.monotonic()
    graph = Lockdep()
    diff = _EdgeDiff(graph)
    seen: set[str] = set()
    outcomes: list[RunOutcome] = []
    cov_mod = _coverage_module() if task.coverage else None
    base = task.scenario_index * RUN_IDS_PER_SCENARIO
    for plan in task.plans:
        if task.stop_at is not None and time.time() >= task.stop_at:
            break
        run_spec = spec_for(spec, plan)
        if cov_mod is not None:
            run_spec = RunSpec(
                run_spec.scenario,
                run_spec.params,
                _with_coverage(run_spec),
                run_spec.inject,
                run_spec.patch,
            )
        reported_before = graph.reported_pairs()
        k = await execute(run_spec, plan.make_strategy(), graph, run_id=base + plan.run_index)
        failure = _failure_summary(k)
        rf = None
        replay_s = 0.0
        if failure is not None and failure["signature"] not in seen:
            seen.add(failure["signature"])
            t_replay = time.monotonic()
            rf = await replay_file_of(
                k,
                run_spec,
                strategy=strategy_json(k, plan),
                seed=plan.seed,
                reported_before=reported_before,
            )
            replay_s = time.monotonic() - t_replay
        features = summary = None
        if cov_mod is not None:
            rc = cov_mod.collect(k)
            features, summary = rc.features(), rc.summary()
            summary.pop("features", None)
        outcome = RunOutcome(
            run_index=plan.run_index,
            steps=k.steps,
            failure=failure,
            replay=rf,
            choices=tuple(k.choices),
            coverage=features,
            coverage_summary=summary,
            lock_edges=diff.new(),
            replay_s=replay_s,
        )
        outcomes.append(outcome)
        if on_outcome is not None:
            await on_outcome(outcome)
        if rf is not None and failure is not None and ends_scenario(failure, task.keep_going):
            break
        await trio.lowlevel.checkpoint()
    return BatchResult(task.batch, tuple(outcomes), worker, time.monotonic() - t0)


def _with_coverage(spec: RunSpec) -> Any:
    from panthor_testbed.sched import KernelConfig

    return KernelConfig.from_json({**spec.config.to_json(), "coverage": True})


# ---------------------------------------------------------------------- on a worker

_SPECS: dict[SpecRef, RunSpec] = {}


def worker_spec(ref: SpecRef) -> RunSpec:
    """The RunSpec of ``ref`` in this process (scenarios are imported once per worker)."""
    spec = _SPECS.get(ref)
    if spec is None:
        spec = _SPECS[ref] = ref.build()
    return spec


def _worker_name() -> str:
    try:
        from distributed import get_worker

        w = get_worker()
        return str(w.name if w.name is not None else w.address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def run_batch(task: BatchTask) -> BatchResult:
    """A Dask task: one batch, in a worker process."""
    return run_batches((task,))[0]


def run_batches(tasks: tuple[BatchTask, ...]) -> tuple[BatchResult, ...]:
    """A Dask task: consecutive batches of one scenario, one after the other.

    Each batch is exactly what it would be shipped alone (a graph of its own,
    the same stop rule); shipping several at once only saves the cluster's
    per-task cost. A batch that ends short (a failure that ends the
    scenario, the time budget) ends the chunk: the campaign folds nothing
    after it.
    """
    name = _worker_name()

    async def go() -> tuple[BatchResult, ...]:
        out: list[BatchResult] = []
        for task in tasks:
            r = await arun_batch(task, worker_spec(task.spec), worker=name)
            out.append(r)
            if len(r.outcomes) < len(task.plans):
                break
        return tuple(out)

    return trio.run(go)


def warm() -> int:
    """Import the model in a worker once, before the first batch is timed."""
    import panthor_testbed.fuzz.scenario as sc
    import panthor_testbed.mmu.panthor_mmu  # noqa: F401
    import panthor_testbed.sched.locking.lockdep as ld

    sc.builtin_scenarios()
    ld.Lockdep()
    return os.getpid()


# ---------------------------------------------------------------------- engines


class LocalEngine:
    """Batches run one at a time in the caller's Trio loop."""

    workers = 1
    capacity = 1
    streams = True  # outcomes are heard as each run ends
    description = "in-process"

    def chunk_size(self) -> int:
        return 1

    def observe(self, result: BatchResult, runs: int) -> None:
        pass

    async def run(
        self,
        tasks: tuple[BatchTask, ...],
        spec: RunSpec,
        on_outcome: Callable[[RunOutcome], Awaitable[None]],
    ) -> tuple[BatchResult, ...]:
        out: list[BatchResult] = []
        for task in tasks:
            r = await arun_batch(task, spec, on_outcome=on_outcome)
            out.append(r)
            if len(r.outcomes) < len(task.plans):
                break
        return tuple(out)

    async def aclose(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class DaskEngine:
    """Batches on a Dask ``distributed`` cluster (embedded LocalCluster or ``address``)."""

    jobs: int = 2
    address: str | None = None
    in_flight_per_worker: int = 2
    # Each Dask task costs the client and scheduler a few ms of CPU, taken
    # from the workers on a small machine: batches of short runs travel
    # together, enough of them to make a task last about this long.
    chunk_target_s: float = 0.25
    max_chunk: int = 32
    client: Any = None
    cluster: Any = None
    workers: int = 0
    streams = False
    description: str = ""
    _futures: set[Any] = field(default_factory=set)
    _run_s: float = 0.0
    _runs: int = 0

    def start(self) -> None:
        """Start (or connect to) the cluster and warm the workers; blocking."""
        from .errors import InputError

        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError(
                "--jobs/--scheduler need Dask: pip install 'dask[distributed]'"
            ) from None
        if self.address is None:
            import dask

            # Forked workers start with the model already imported (the
            # parent imports it first): a worker is ready in a fraction of a
            # second, where a spawned one imports Dask and the model again.
            # The sampling profiler would tax every step of the model.
            warm()
            dask.config.set(
                {
                    "distributed.worker.multiprocessing-method": "fork",
                    "distributed.worker.profile.enabled": False,
                }
            )
            self.cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=self.jobs,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                worker_dashboard_address=None,
                silence_logs=logging.CRITICAL,
            )
            self.client = Client(self.cluster, set_as_default=False)  # type: ignore[no-untyped-call]
            self.description = f"{self.jobs} local worker processes"
        else:
            try:
                self.client = Client(  # type: ignore[no-untyped-call]
                    self.address, timeout=10, set_as_default=False
                )
            except (OSError, TimeoutError) as exc:
                raise InputError(f"--scheduler {self.address}: cannot connect: {exc}") from None
            self.description = f"the Dask cluster at {self.address}"
        info = self.client.scheduler_info()
        self.workers = max(1, len(info.get("workers", {})))
        self.client.run(warm)

    @property
    def capacity(self) -> int:
        return max(1, self.workers * self.in_flight_per_worker)

    def chunk_size(self) -> int:
        """How many batches the next task carries (timing only: never changes an answer)."""
        if self._runs == 0:
            return 1
        per_batch = self._run_s / self._runs * BATCH_RUNS
        return max(1, min(self.max_chunk, int(self.chunk_target_s / max(per_batch, 1e-6))))

    def observe(self, result: BatchResult, runs: int) -> None:
        self._run_s += result.elapsed_s
        self._runs += runs

    async def run(
        self,
        tasks: tuple[BatchTask, ...],
        spec: RunSpec,
        on_outcome: Callable[[RunOutcome], Awaitable[None]],
    ) -> tuple[BatchResult, ...]:
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        fut = self.client.submit(run_batches, tasks, pure=False)
        self._futures.add(fut)

        def wake(_: Any) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        fut.add_done_callback(wake)
        try:
            await done.wait()
            # The result stays on the worker until fetched: fetch it in a
            # thread, so the other batches' results and hand-outs go on.
            result: tuple[BatchResult, ...] = await trio.to_thread.run_sync(fut.result)
        except BaseException:
            fut.cancel()
            raise
        finally:
            self._futures.discard(fut)
        return result

    async def aclose(self) -> None:
        await trio.to_thread.run_sync(self.close)

    def close(self) -> None:
        if self.client is not None:
            if self._futures:
                self.client.cancel(list(self._futures))
                self._futures.clear()
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


Engine = LocalEngine | DaskEngine

__all__ = [
    "RUN_IDS_PER_SCENARIO",
    "BatchResult",
    "BatchTask",
    "DaskEngine",
    "Engine",
    "LocalEngine",
    "SpecRef",
    "arun_batch",
    "coverage_available",
    "ends_scenario",
    "run_batch",
    "run_batches",
    "warm",
    "worker_spec",
]
