"""One execution of a scenario: build the kernel, run it, hand back the result."""

from __future__ import annotations

import dataclasses
import hashlib
import traceback
from dataclasses import dataclass, field
from typing import Any

from panthor_testbed.sched import (
    ExecutorError,
    Failure,
    Kernel,
    KernelConfig,
    KernelFault,
    Replay,
    Strategy,
)
from panthor_testbed.sched.locking.lockdep import Lockdep

from .bugs import ensure_installed, selection
from .errors import InputError
from .replayfile import ReplayFile, validate_config
from .scenario import Scenario, ScenarioSource
from .schedule import DecisionRecorder


@dataclass(frozen=True)
class RunSpec:
    """What to run: a scenario with bound parameters, config and injections."""

    scenario: Scenario
    params: dict[str, Any] = field(default_factory=dict)
    config: KernelConfig = field(default_factory=KernelConfig)
    inject: frozenset[str] = frozenset()  # pre-seed catalogue bugs installed
    patch: frozenset[str] = frozenset()  # latent catalogue fixes installed

    @classmethod
    def make(
        cls,
        scenario: Scenario,
        params: dict[str, Any] | None = None,
        *,
        config: dict[str, Any] | None = None,
        inject: frozenset[str] | tuple[str, ...] = (),
        patch: frozenset[str] | tuple[str, ...] = (),
    ) -> RunSpec:
        """Scenario defaults, its own config overrides, then the caller's (validated)."""
        try:
            own = validate_config(config or {})
        except ValueError as exc:
            raise InputError(f"config: {exc}") from None
        merged = {**KernelConfig().to_json(), **scenario.config, **own}
        injected, patched = selection(inject, patch)  # raises UnknownBug
        return cls(
            scenario,
            scenario.check(params or {}),
            KernelConfig.from_json(merged),
            injected,
            patched,
        )


def derive_seed(seed: int, scenario: str, index: int) -> int:
    """The seed of run ``index`` of a campaign: stable across processes and hash seeds."""
    digest = hashlib.sha256(f"{seed}:{scenario}:{index}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


async def execute(
    spec: RunSpec, strategy: Strategy, lockdep: Lockdep | None, run_id: int = 0
) -> Kernel:
    """Run the scenario once; the returned Kernel holds failures, choices and trace."""
    graph = lockdep if spec.config.lockdep else None
    ensure_installed(spec.inject, spec.patch)
    k = Kernel(strategy, spec.config, lockdep=graph, run_id=run_id)
    try:
        await k.run(spec.scenario.fn, **spec.params)
    except ExecutorError:
        raise
    except Exception as exc:
        # Only the checks run after a completed run (k.exit_checks) can raise
        # here: everything a thread raises is already a finding. (Unwrapped
        # in case a nursery wraps it in an exception group.)
        leaf = _first_leaf(exc)
        if isinstance(leaf, ExecutorError):
            raise
        _exit_check_failed(k, leaf)
    return k


def _first_leaf(exc: Exception) -> Exception:
    while isinstance(exc, ExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _exit_check_failed(k: Kernel, exc: Exception) -> None:
    from panthor_testbed.sched.core.frames import model_location

    where = model_location(exc.__traceback__)
    if isinstance(exc, KernelFault):
        kind, msg = exc.failure_kind, exc.message
        sig = exc.signature or f"{kind}:{where}"
    else:
        kind, msg = "exception", f"{type(exc).__name__}: {exc}"
        sig = f"exception:{type(exc).__name__}:{where}"
    report = "an exit check raised:\n" + "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__)
    )
    # The run is over (k.stopping), so record_failure would drop it: append.
    f = Failure(kind, f"{msg} (at {where})", report=report, signature=sig)
    f.thread, f.step, f.time_ns = "exit check", k.steps, k.now
    f.extra["fatal"] = True
    k.failures.append(f)


def lockdep_edges_of(k: Kernel) -> list[dict[str, Any]]:
    """The dependencies from earlier runs that this run's lockdep reports relied on."""
    edges: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for f in k.failures:
        for e in f.extra.get("lockdep_edges", []):
            key = (e["from"], e["to"])
            if key not in seen:
                seen.add(key)
                edges.append(e)
    return edges


def failure_json(k: Kernel) -> dict[str, Any]:
    """The run's primary failure as stored in replay files (with the others' messages)."""
    f = k.primary_failure
    if f is None:
        return {"kind": "none", "message": "the run passed"}
    return {
        "kind": f.kind,
        "message": f.message,
        "signature": f.signature,
        "thread": f.thread,
        "step": f.step,
        "also": [g.message for g in k.failures if g is not f],
    }


def source_json(source: ScenarioSource | None) -> dict[str, str] | None:
    """What a replay file stores to find a user's scenario (None for a built-in)."""
    if source is None or source.kind == "builtin":
        return None
    out = {"kind": source.kind, "function": source.function}
    if source.kind == "file":
        out["path"] = source.path
    else:
        out["module"] = source.module
        if source.path:
            out["path"] = source.path
        if source.root:
            out["root"] = source.root
    return out


def graph_for(rf: ReplayFile) -> Lockdep:
    """A fresh lockdep graph holding what the recorded run's graph already knew."""
    graph = Lockdep()
    graph.seed_edges(rf.lockdep_edges)
    graph.mark_reported(rf.lockdep_reported)
    return graph


async def replay_file_of(
    k: Kernel,
    spec: RunSpec,
    *,
    strategy: dict[str, Any],
    seed: int,
    reported_before: list[list[str]],
    note: str = "",
    lockdep_edges: list[dict[str, Any]] | None = None,
) -> ReplayFile:
    """Everything needed to re-run ``k``, with each choice's thread identity.

    ``reported_before``: what the lockdep graph had already reported when the
    run started (reports are made once per graph, so a replay must know).

    The hot loop records bare tids; the identities come from one more run that
    follows them, from exactly the lockdep state a replay will start from, so
    a file is only written once it is known to replay (same trace digest).
    """
    rf = ReplayFile(
        scenario=spec.scenario.name,
        params=spec.params,
        strategy=strategy,
        seed=seed,
        run_id=k.run_id,
        choices=[],
        inject=sorted(spec.inject),
        patch=sorted(spec.patch),
        config=spec.config.to_json(),
        failure=failure_json(k),
        digest=k.trace.digest(),
        steps=k.steps,
        lockdep_edges=lockdep_edges_of(k) if lockdep_edges is None else lockdep_edges,
        lockdep_reported=reported_before,
        note=note,
        source=source_json(spec.scenario.source),
    )
    follow = Replay(k.choices, strict=True)
    recorder = DecisionRecorder(follow)
    again = await execute(spec, recorder, graph_for(rf), run_id=k.run_id)
    if follow.divergence is not None or again.trace.digest() != rf.digest:
        why = follow.divergence or "the trace differs"
        raise ExecutorError(
            f"{spec.scenario.name}: a run did not repeat under its own choices ({why}); "
            f"the scenario is not deterministic (see docs/sched.md, determinism rules)"
        )
    return dataclasses.replace(rf, choices=recorder.choices(again))
