"""Fuzz campaigns: many schedules of many scenarios, failures saved as replay files.

Run ``i`` of scenario ``s`` uses the seed ``derive_seed(seed, s, i)``, so the
same campaign finds the same failures in any process, whatever ``--jobs``
(except for lockdep findings that rely on another worker's runs: the
dependency graph is per process).

Stopping: a scenario stops at its first fatal failure unless ``keep_going``.
A lockdep report is only a *potential* deadlock, so the campaign goes on for
up to ``witness_runs`` more runs looking for a schedule where it really
happens, and attaches that schedule as the report's witness.

Every failure is written to disk the moment it is found, so an interrupted
campaign loses nothing it already found. With ``out=None`` (the Python API's
default) nothing is written: each finding carries its ReplayFile.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue as queue_mod
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from panthor_testbed.sched import Kernel, make_strategy
from panthor_testbed.sched.core.strategy import StepsEstimate
from panthor_testbed.sched.locking.lockdep import Lockdep

from .replayfile import ReplayFile, replay_name
from .runner import RunSpec, derive_seed, execute, replay_file_of
from .scenario import get_scenario

DEFAULT_RUNS = 1000
RUN_IDS_PER_SCENARIO = 1_000_000_000  # run ids (lockdep edge origins) unique per campaign


@dataclass(frozen=True)
class CampaignOptions:
    runs: int | None = None  # per scenario (DEFAULT_RUNS without a time budget)
    time_budget: float | None = None  # seconds, for the whole campaign
    seed: int = 1
    strategy: str = "portfolio"
    depth: int = 3
    jobs: int = 1
    out: str | None = "failures"  # None: keep replay files in memory only
    keep_going: bool = False
    witness_runs: int = 200

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

    @property
    def runs(self) -> int:
        return sum(s.runs for s in self.scenarios)

    @property
    def failures(self) -> int:
        return sum(len(s.failures) for s in self.scenarios)


class ProgressSink:
    """Receives progress (the CLI draws a bar from it)."""

    def start(self, name: str, total: int | None, budget_s: float | None) -> None: ...

    def update(self, name: str, runs: int, steps: int, failures: int) -> None: ...

    def finish(self, result: ScenarioResult) -> None: ...

    def found(self, name: str, found: Found) -> None: ...

    def close(self) -> None:
        """The campaign ended, however it ended (also after Ctrl-C or an error)."""


# ---------------------------------------------------------------------- one scenario


@dataclass
class _Plan:
    spec: RunSpec
    name: str
    total: int | None
    deadline: float | None  # time.monotonic()


async def _record(
    k: Kernel,
    plan: _Plan,
    opts: CampaignOptions,
    index: int,
    seed: int,
    reported_before: list[list[str]],
) -> Found:
    strategy = k.strategy.describe()
    if opts.strategy != strategy["name"]:
        strategy["portfolio"] = opts.strategy
    rf = await replay_file_of(
        k, plan.spec, strategy=strategy, seed=seed, reported_before=reported_before
    )
    path = ""
    if opts.out is not None:
        path = os.path.join(opts.out, replay_name(plan.name, seed))
        rf.save(path)
    return Found(plan.name, rf.failure, index, seed, path, replay_file=rf)


async def run_scenario(
    plan: _Plan,
    opts: CampaignOptions,
    graph: Lockdep,
    *,
    run_id_base: int = 0,
    indices: Callable[[int], bool] = lambda i: True,
    stop_flag: Callable[[], bool] = lambda: False,
    on_progress: Callable[[int, int], None] = lambda runs, steps: None,
    on_found: Callable[[Found], None] = lambda f: None,
    on_witness: Callable[[Found], None] = lambda f: None,
) -> ScenarioResult:
    """Run one scenario's share of the campaign in this process."""
    result = ScenarioResult(plan.name)
    t0 = time.monotonic()
    seen: set[str] = set()
    steps = StepsEstimate()
    pending_lockdep: Found | None = None
    pending_cycle: list[str] = []
    witness_left = 0
    index = -1
    while True:
        index += 1
        if plan.total is not None and index >= plan.total:
            break
        if plan.deadline is not None and time.monotonic() >= plan.deadline:
            break
        if stop_flag():
            break
        if not indices(index):
            continue
        seed = derive_seed(opts.seed, plan.name, index)
        strategy = make_strategy(
            opts.strategy, seed, depth=opts.depth, steps_estimate=steps.value, run_index=index
        )
        reported_before = graph.reported_pairs()
        k = await execute(plan.spec, strategy, graph, run_id=run_id_base + index)
        steps.add(k.steps)
        result.runs += 1
        result.steps += k.steps
        on_progress(result.runs, result.steps)
        failure = k.primary_failure
        stop = False
        if failure is not None and failure.signature not in seen:
            seen.add(failure.signature)
            found = await _record(k, plan, opts, index, seed, reported_before)
            if (
                pending_lockdep is not None
                and failure.kind == "deadlock"
                and (not pending_cycle or any(c in failure.signature for c in pending_cycle))
            ):
                pending_lockdep.witness = found.replay
                pending_lockdep.witness_file = found.replay_file
                on_witness(pending_lockdep)
            result.failures.append(found)
            on_found(found)
            if failure.extra.get("fatal"):
                stop = not opts.keep_going
            elif failure.kind == "lockdep" and pending_lockdep is None:
                pending_lockdep = found
                pending_cycle = list(failure.extra.get("cycle", []))
                witness_left = opts.witness_runs
            elif not opts.keep_going and failure.kind != "lockdep":
                stop = True
        elif pending_lockdep is not None and not opts.keep_going:
            witness_left -= 1
            if witness_left <= 0:
                stop = True
        if stop:
            break
        if result.runs % 16 == 0:
            await trio.lowlevel.checkpoint()
    result.elapsed_s = time.monotonic() - t0
    result.status = DONE
    return result


def _plans(specs: list[RunSpec], opts: CampaignOptions, start: float) -> list[_Plan]:
    total = opts.runs_per_scenario()
    plans = []
    for i, spec in enumerate(specs):
        deadline = None
        if opts.time_budget is not None:
            deadline = start + opts.time_budget * (i + 1) / len(specs)
        plans.append(_Plan(spec, spec.scenario.name, total, deadline))
    return plans


# ---------------------------------------------------------------------- in process


async def run_campaign(
    specs: list[RunSpec], opts: CampaignOptions, progress: ProgressSink, result: CampaignResult
) -> None:
    """Single-process campaign; fills ``result`` as it goes (so Ctrl-C keeps it).

    Every scenario is in ``result`` from the start with status NOT_RUN; the
    one running when the campaign is interrupted ends up INTERRUPTED, with
    its runs, steps and time so far.
    """
    start = time.monotonic()
    graph = Lockdep()
    plans = _plans(specs, opts, start)
    results = [ScenarioResult(plan.name) for plan in plans]
    result.scenarios.extend(results)
    try:
        for si, plan in enumerate(plans):
            await _run_one_plan(si, plan, results[si], opts, progress, graph, start)
    finally:
        result.elapsed_s = time.monotonic() - start


async def _run_one_plan(
    si: int,
    plan: _Plan,
    current: ScenarioResult,
    opts: CampaignOptions,
    progress: ProgressSink,
    graph: Lockdep,
    start: float,
) -> None:
    progress.start(plan.name, plan.total, _budget_left(plan, start))
    t0 = time.monotonic()
    current.status = INTERRUPTED  # until it completes

    def on_progress(runs: int, steps: int) -> None:
        current.runs, current.steps = runs, steps
        progress.update(plan.name, runs, steps, len(current.failures))

    def on_found(found: Found) -> None:
        current.failures.append(found)
        progress.found(plan.name, found)

    try:
        done = await run_scenario(
            plan,
            opts,
            graph,
            run_id_base=si * RUN_IDS_PER_SCENARIO,
            on_progress=on_progress,
            on_found=on_found,
        )
    finally:
        current.elapsed_s = time.monotonic() - t0
    current.runs, current.steps, current.elapsed_s = done.runs, done.steps, done.elapsed_s
    current.status = DONE
    progress.finish(current)


def _budget_left(plan: _Plan, start: float) -> float | None:
    if plan.deadline is None:
        return None
    return max(0.0, plan.deadline - time.monotonic())


# ---------------------------------------------------------------------- several processes


@dataclass(frozen=True)
class _SpecRef:
    """A picklable reference to a RunSpec (workers rebuild the scenario by name)."""

    scenario: str
    params: dict[str, Any]
    config: dict[str, Any]
    inject: tuple[str, ...]
    patch: tuple[str, ...]

    def build(self) -> RunSpec:
        return RunSpec.make(
            get_scenario(self.scenario),
            self.params,
            config=self.config,
            inject=self.inject,
            patch=self.patch,
        )


def _worker(
    worker: int,
    jobs: int,
    refs: list[_SpecRef],
    opts: CampaignOptions,
    start: float,
    stop_flags: Any,
    messages: Any,
) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    specs = [r.build() for r in refs]
    plans = _plans(specs, opts, start)

    async def main() -> None:
        graph = Lockdep()
        for si, plan in enumerate(plans):
            if stop_flags[si]:
                # another worker found its failure: this worker's share is done
                messages.put(("done", worker, si, 0, 0, 0.0))
                continue

            def on_progress(runs: int, steps: int, si: int = si) -> None:
                messages.put(("progress", worker, si, runs, steps))

            def on_found(found: Found, si: int = si) -> None:
                messages.put(("found", worker, si, found))
                if not opts.keep_going and found.failure["kind"] not in ("lockdep", "leak"):
                    stop_flags[si] = 1

            def on_witness(found: Found, si: int = si) -> None:
                messages.put(("witness", worker, si, found))

            def stopped(si: int = si) -> bool:
                return bool(stop_flags[si])

            done = await run_scenario(
                plan,
                opts,
                graph,
                run_id_base=si * RUN_IDS_PER_SCENARIO,
                indices=lambda i: i % jobs == worker,
                stop_flag=stopped,
                on_progress=on_progress,
                on_found=on_found,
                on_witness=on_witness,
            )
            messages.put(("done", worker, si, done.runs, done.steps, done.elapsed_s))

    try:
        trio.run(main)
    finally:
        messages.put(("exit", worker))


def run_campaign_parallel(
    refs: list[_SpecRef],
    opts: CampaignOptions,
    progress: ProgressSink,
    result: CampaignResult,
) -> None:
    """``--jobs N``: N worker processes share each scenario's runs (i % N)."""
    ctx = mp.get_context("spawn")
    start = time.monotonic()
    stop_flags = ctx.Array("b", len(refs))
    messages: Any = ctx.Queue()
    workers = [
        ctx.Process(
            target=_worker,
            args=(w, opts.jobs, refs, opts, start, stop_flags, messages),
            daemon=True,
        )
        for w in range(opts.jobs)
    ]
    names = [r.scenario for r in refs]
    per: list[ScenarioResult] = [ScenarioResult(n) for n in names]
    result.scenarios.extend(per)
    runs: dict[tuple[int, int], tuple[int, int]] = {}
    done: dict[int, set[int]] = {i: set() for i in range(len(refs))}
    seen: dict[int, set[str]] = {i: set() for i in range(len(refs))}
    started: set[int] = set()
    total = opts.runs_per_scenario()
    for w in workers:
        w.start()
    alive = len(workers)
    try:
        while alive:
            try:
                msg = messages.get(timeout=0.2)
            except queue_mod.Empty:
                if not any(w.is_alive() for w in workers):
                    break
                continue
            tag = msg[0]
            if tag == "exit":
                alive -= 1
                continue
            si = msg[2]
            if si not in started:
                started.add(si)
                per[si].status = INTERRUPTED  # until every worker is done with it
                progress.start(names[si], total, None)
            if tag == "progress":
                runs[(msg[1], si)] = (msg[3], msg[4])
                r = sum(v[0] for (w, s), v in runs.items() if s == si)
                st = sum(v[1] for (w, s), v in runs.items() if s == si)
                per[si].runs, per[si].steps = r, st
                progress.update(names[si], r, st, len(per[si].failures))
            elif tag == "found":
                found: Found = msg[3]
                sig = str(found.failure.get("signature"))
                if sig in seen[si]:
                    _remove_quietly(found.replay)
                    continue
                seen[si].add(sig)
                per[si].failures.append(found)
                progress.found(names[si], found)
            elif tag == "witness":
                update: Found = msg[3]
                for known in per[si].failures:
                    if known.failure.get("signature") == update.failure.get("signature"):
                        known.witness = known.witness or update.witness
            elif tag == "done":
                done[si].add(msg[1])
                per[si].elapsed_s = max(per[si].elapsed_s, msg[5])
                if len(done[si]) == opts.jobs:
                    per[si].status = DONE
                    progress.finish(per[si])
    except KeyboardInterrupt:
        result.interrupted = True
        for i in range(len(refs)):
            stop_flags[i] = 1
        _drain(messages, per, seen)
        raise
    finally:
        for w in workers:
            w.join(timeout=2)
            if w.is_alive():
                w.terminate()
        result.elapsed_s = time.monotonic() - start


def _drain(messages: Any, per: list[ScenarioResult], seen: dict[int, set[str]]) -> None:
    """Collect findings already reported by workers (their files are on disk)."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            msg = messages.get(timeout=0.1)
        except (queue_mod.Empty, OSError, EOFError):
            break
        if msg[0] == "found":
            si, found = msg[2], msg[3]
            sig = str(found.failure.get("signature"))
            if sig not in seen[si]:
                seen[si].add(sig)
                per[si].failures.append(found)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def spec_refs(specs: list[RunSpec]) -> list[_SpecRef]:
    return [
        _SpecRef(
            s.scenario.name,
            dict(s.params),
            s.config.to_json(),
            tuple(sorted(s.inject)),
            tuple(sorted(s.patch)),
        )
        for s in specs
    ]
