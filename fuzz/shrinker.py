"""Shrinking a failing schedule to the few choices a reviewer needs to read.

A schedule is described by its *deviations* from the canonical schedule
(run the current thread until it blocks, then the lowest runnable thread;
data choices 0). A deviation is keyed by the thread that was running when
the choice was made and how many choices that thread had made before, which
survives the removal of other deviations far better than a global index.
The shrinker removes deviations (chunks first, then one by one, as delta
debugging does) while the run still fails the same way, and reports what is
left: "2 preemptions: at step 12 preempt T1 thread-a, run T2 thread-b; ...".

Data choices are deviations like thread choices, so a scenario whose program
(which ioctls, which ranges, which faults) is drawn from ``k.choose_data``
shrinks program and schedule together. The scenario's size parameters (the
integer parameters with a declared :class:`~.scenario.Range`: actors, VMs,
ops) are then lowered one at a time while the failure keeps happening, and
the deviations shrunk again on the smaller scenario.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from panthor_testbed.sched import Kernel, Replay, Strategy
from panthor_testbed.sched.core.explore import DFSStrategy, next_prefix

from .errors import ShrinkError
from .replayer import same_failure, spec_of
from .replayfile import ReplayFile
from .runner import RunSpec, execute, graph_for, replay_file_of
from .scenario import Scenario
from .schedule import Decision, DecisionRecorder, FollowReplay, Key, Pick, deviations

__all__ = ["Decision", "DecisionRecorder", "ShrinkError", "ShrinkResult", "describe", "shrink"]


@dataclass
class ShrinkResult:
    original: ReplayFile
    shrunk: ReplayFile
    kernel: Kernel
    log: list[Decision]
    runs: int  # executions tried
    before: int  # deviations before
    after: int  # deviations after
    exact: bool = True  # the original schedule fitted the code (else followed by identity)
    params_before: dict[str, object] | None = None  # size parameters before, when lowered

    def summary(self) -> str:
        """The deviations a reviewer reads."""
        return describe(self.log, self.kernel)


def describe(log: list[Decision], k: Kernel) -> str:
    devs = [d for d in log if d.deviates]
    pre = sum(1 for d in devs if d.preemption)
    names = k.trace.thread_names

    def label(tid: int) -> str:
        return f"T{tid} {names[tid]}" if 0 <= tid < len(names) else f"T{tid}"

    parts = []
    for d in devs:
        if d.kind == "data":
            parts.append(f"at step {d.step}: {d.what or f'data choice {d.chosen}'}")
        elif d.kind == "irq":
            parts.append(f"at step {d.step} an interrupt lands: timer {d.what or '?'} fires")
        elif d.preemption:
            parts.append(
                f"at step {d.step} switch to {label(d.chosen)} (preempting {label(d.last)})"
            )
        else:
            parts.append(
                f"at step {d.step} ({label(d.last)} blocked or exited) run {label(d.chosen)} "
                f"instead of {label(d.canonical)}"
            )
    head = f"{pre} preemption{'s' if pre != 1 else ''}"
    other = len(devs) - pre
    if other:
        head += f" and {other} other choice{'s' if other != 1 else ''}"
    if not parts:
        return f"{head}: the canonical schedule fails by itself"
    return head + ": " + "; ".join(parts)


async def _attempt(
    rf: ReplayFile, spec: RunSpec, devs: dict[Key, Pick]
) -> tuple[Kernel, DecisionRecorder]:
    rec = DecisionRecorder(None, devs)
    k = await execute(spec, rec, graph_for(rf), run_id=rf.run_id)
    return k, rec


async def shrink(
    rf: ReplayFile, *, max_runs: int = 2000, scenario: str | Scenario | None = None
) -> ShrinkResult:
    """Minimise ``rf``'s schedule while it keeps failing with the same signature.

    On changed code the recorded schedule is followed by thread identity
    (as ``replay`` does); shrinking starts from that run if it still fails.
    """
    spec = spec_of(rf, scenario=scenario)
    replayer: Strategy
    if rf.legacy_choices is not None:
        replayer = Replay(rf.legacy_choices, strict=True)
    else:
        replayer = FollowReplay(rf.choices)
    base = DecisionRecorder(replayer)
    k = await execute(spec, base, graph_for(rf), run_id=rf.run_id)
    if isinstance(replayer, Replay) and replayer.divergence is not None:
        raise ShrinkError(f"replay file does not fit the run: {replayer.divergence}")
    if not same_failure(k, rf):
        got = k.primary_failure
        raise ShrinkError(
            "the replay file does not reproduce its failure"
            + (f" (got {got.kind}: {got.message})" if got else " (the run passed)")
        )
    best_k, best_log = k, base.log
    devs = deviations(base.log)
    before = len(devs)
    runs = 1
    # A shrunk run is never longer than the original: fewer deviations from the
    # canonical schedule can cost more steps (a thread left to run waits out a
    # timeout), and a reviewer reads steps, not deviations.
    limit = (k.steps, len(k.choices))

    def fails_no_longer(k2: Kernel) -> bool:
        return same_failure(k2, rf) and k2.steps <= limit[0] and len(k2.choices) <= limit[1]

    async def still_fails(cand: dict[Key, Pick]) -> bool:
        nonlocal best_k, best_log, runs, devs
        runs += 1
        k2, rec = await _attempt(rf, spec, cand)
        if fails_no_longer(k2):
            best_k, best_log = k2, rec.log
            devs = deviations(rec.log)
            return True
        return False

    async def delta_debug() -> None:
        """Drop chunks of deviations, then single ones, while the failure persists."""
        chunk = max(1, len(devs) // 2)
        while devs and runs < max_runs:
            keys = list(devs)
            progress = False
            for start in range(0, len(keys), chunk):
                drop = set(keys[start : start + chunk])
                cand = {key: v for key, v in devs.items() if key not in drop}
                if await still_fails(cand):
                    progress = True
                    break
                if runs >= max_runs:
                    break
            if progress:
                chunk = max(1, min(chunk, len(devs) // 2))
                continue
            if chunk == 1:
                break
            chunk = max(1, chunk // 2)

    await delta_debug()

    # Smaller scenarios: lower each size parameter while the failure persists.
    params_before = dict(spec.params)
    lowered = True
    while lowered and runs < max_runs:
        lowered = False
        for name, value in sorted(spec.params.items()):
            r = spec.scenario.ranges.get(name)
            if r is None or isinstance(value, bool) or not isinstance(value, int):
                continue
            low = int(r.low) if r.low is not None else 0
            for cand_value in _lower_values(value, low):
                if runs >= max_runs:
                    break
                cand_spec = RunSpec.make(
                    spec.scenario,
                    {**spec.params, name: cand_value},
                    config=spec.config.to_json(),
                    inject=tuple(spec.inject),
                    patch=tuple(spec.patch),
                )
                found = await _fails_smaller(
                    cand_spec, rf, devs, best_log, max_runs - runs, fails_no_longer
                )
                runs += found[0]
                if found[1] is not None:
                    spec = cand_spec
                    best_k, best_log = found[1]
                    devs = deviations(best_log)
                    lowered = True
                    break
        if lowered:
            await delta_debug()
    # Removal cannot swap one preemption for a better-placed one; a bounded
    # exhaustive search with fewer preemptions can.
    preemptions = sum(1 for d in best_log if d.preemption)
    for bound in range(preemptions):
        if runs >= max_runs:
            break
        prefix: list[int] | None = []
        while prefix is not None and runs < max_runs:
            dfs = DFSStrategy(prefix)
            rec = DecisionRecorder(dfs)
            runs += 1
            k2 = await execute(spec, rec, graph_for(rf), run_id=rf.run_id)
            if fails_no_longer(k2):
                best_k, best_log = k2, rec.log
                devs = deviations(rec.log)
                break
            prefix = next_prefix(dfs.trail, bound)
        if prefix is not None:
            break
    shrunk = await replay_file_of(
        best_k,
        spec,
        strategy={"name": "shrunk", "from": rf.strategy},
        seed=rf.seed,
        reported_before=rf.lockdep_reported,
        note=describe(best_log, best_k),
        # the dependencies the original relied on are still what the graph knew
        lockdep_edges=rf.lockdep_edges,
    )
    exact = not isinstance(replayer, FollowReplay) or replayer.fitted
    changed = params_before if params_before != spec.params else None
    return ShrinkResult(rf, shrunk, best_k, best_log, runs, before, len(devs), exact, changed)


async def _fails_smaller(
    spec: RunSpec,
    rf: ReplayFile,
    devs: dict[Key, Pick],
    log: list[Decision],
    budget: int,
    fails: Callable[[Kernel], bool],
) -> tuple[int, tuple[Kernel, list[Decision]] | None]:
    """Does the smaller scenario fail the same way? ``(runs used, (kernel, log) or None)``.

    First with the current deviations (the threads they name may be gone), then
    by a short exhaustive search within the preemptions the failure needed.
    """
    if budget <= 0:
        return 0, None
    rec = DecisionRecorder(None, devs)
    k = await execute(spec, rec, graph_for(rf), run_id=rf.run_id)
    if fails(k):
        return 1, (k, rec.log)
    runs = 1
    bound = max(1, sum(1 for d in log if d.preemption))
    prefix: list[int] | None = []
    limit = min(budget, SMALLER_SEARCH_RUNS)
    while prefix is not None and runs < limit:
        dfs = DFSStrategy(prefix)
        rec = DecisionRecorder(dfs)
        runs += 1
        k = await execute(spec, rec, graph_for(rf), run_id=rf.run_id)
        if fails(k):
            return runs, (k, rec.log)
        prefix = next_prefix(dfs.trail, bound)
    return runs, None


# Schedules tried on each smaller scenario before giving up on it.
SMALLER_SEARCH_RUNS = 300


def _lower_values(value: int, low: int) -> list[int]:
    """Smaller values to try for a size parameter, smallest first, then halving."""
    out: list[int] = []
    cand = low
    while cand < value:
        out.append(cand)
        cand = value - (value - cand) // 2 if (value - cand) > 1 else value
    return list(dict.fromkeys(out))
