"""One execution of a scenario: build the kernel, run it, hand back the result."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from panthor_testbed.sched import Kernel, KernelConfig, Strategy
from panthor_testbed.sched.locking.lockdep import Lockdep

from .catalogue import get_bug
from .replayfile import ReplayFile
from .scenario import Scenario


@dataclass(frozen=True)
class RunSpec:
    """What to run: a scenario with bound parameters, config and injections."""

    scenario: Scenario
    params: dict[str, Any] = field(default_factory=dict)
    config: KernelConfig = field(default_factory=KernelConfig)
    inject: frozenset[str] = frozenset()

    @classmethod
    def make(
        cls,
        scenario: Scenario,
        params: dict[str, Any] | None = None,
        *,
        config: dict[str, Any] | None = None,
        inject: frozenset[str] | tuple[str, ...] = (),
    ) -> RunSpec:
        """Scenario defaults, its own config overrides, then the caller's."""
        merged = {**KernelConfig().to_json(), **scenario.config, **(config or {})}
        for slug in inject:
            get_bug(slug)  # raises UnknownBug
        return cls(
            scenario,
            scenario.check(params or {}),
            KernelConfig.from_json(merged),
            frozenset(inject),
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
    k = Kernel(strategy, spec.config, lockdep=graph, run_id=run_id, injected=spec.inject)
    await k.run(spec.scenario.fn, **spec.params)
    return k


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


def replay_file_of(
    k: Kernel,
    spec: RunSpec,
    *,
    strategy: dict[str, Any],
    seed: int,
    reported_before: list[list[str]],
    note: str = "",
) -> ReplayFile:
    """Everything needed to re-run ``k`` exactly.

    ``reported_before``: what the lockdep graph had already reported when the
    run started (reports are made once per graph, so a replay must know).
    """
    return ReplayFile(
        scenario=spec.scenario.name,
        params=spec.params,
        strategy=strategy,
        seed=seed,
        run_id=k.run_id,
        choices=list(k.choices),
        inject=sorted(spec.inject),
        config=spec.config.to_json(),
        failure=failure_json(k),
        digest=k.trace.digest(),
        steps=k.steps,
        lockdep_edges=lockdep_edges_of(k),
        lockdep_reported=reported_before,
        note=note,
    )
