"""Re-running replay files exactly, and comparing the outcome with the recording."""

from __future__ import annotations

from dataclasses import dataclass

from panthor_testbed.sched import Kernel, Replay, ReplayDivergence
from panthor_testbed.sched.locking.lockdep import Lockdep

from .catalogue import UnknownBug
from .replayfile import ReplayFile, ReplayFileError
from .runner import RunSpec, execute
from .scenario import ScenarioError, get_scenario


def spec_of(rf: ReplayFile) -> RunSpec:
    """The run a replay file describes; a file that does not fit this tool is an error."""
    try:
        scenario = get_scenario(rf.scenario)
        return RunSpec.make(scenario, rf.params, config=rf.config, inject=tuple(rf.inject))
    except (ScenarioError, UnknownBug) as exc:
        raise ReplayFileError(f"replay file does not fit: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ReplayFileError(f"replay file does not fit: bad config: {exc}") from None


def graph_for(rf: ReplayFile) -> Lockdep:
    """A fresh lockdep graph holding what the recorded run's graph already knew."""
    graph = Lockdep()
    graph.seed_edges(rf.lockdep_edges)
    graph.mark_reported(rf.lockdep_reported)
    return graph


async def replay_once(rf: ReplayFile, spec: RunSpec, *, strict: bool = True) -> Kernel:
    strategy = Replay(rf.choices, strict=strict)
    k = await execute(spec, strategy, graph_for(rf), run_id=rf.run_id)
    if strict and strategy.divergence is not None:
        raise ReplayDivergence(f"replay file does not fit the run: {strategy.divergence}")
    return k


def same_failure(k: Kernel, rf: ReplayFile) -> bool:
    f = k.primary_failure
    if f is None:
        return False
    want_sig = rf.failure.get("signature")
    return f.kind == rf.failure.get("kind") and (want_sig is None or f.signature == want_sig)


@dataclass
class ReplayReport:
    runs: int
    reproduced: int  # runs whose primary failure matches the file's
    digest_matches: int  # runs whose trace digest equals the recorded one
    last: Kernel

    @property
    def failed(self) -> bool:
        return self.last.primary_failure is not None


async def replay(rf: ReplayFile, times: int = 3) -> ReplayReport:
    spec = spec_of(rf)
    reproduced = digest_ok = 0
    last: Kernel | None = None
    for _ in range(times):
        k = await replay_once(rf, spec)
        reproduced += same_failure(k, rf)
        digest_ok += k.trace.digest() == rf.digest
        last = k
    assert last is not None
    return ReplayReport(times, reproduced, digest_ok, last)
