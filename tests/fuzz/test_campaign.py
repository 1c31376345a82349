"""Campaigns: seeds, stopping, witnesses, parallel workers, replay of cross-run reports."""

from __future__ import annotations

from pathlib import Path

import trio

from panthor_testbed.fuzz.campaign import (
    CampaignOptions,
    CampaignResult,
    ProgressSink,
    run_campaign,
)
from panthor_testbed.fuzz.replayer import replay
from panthor_testbed.fuzz.replayfile import ReplayFile
from panthor_testbed.fuzz.runner import RunSpec, derive_seed
from panthor_testbed.fuzz.scenario import get_scenario


def _campaign(names: list[str], opts: CampaignOptions, **params: object) -> CampaignResult:
    specs = [RunSpec.make(get_scenario(n), dict(params) if params else None) for n in names]
    result = CampaignResult()
    trio.run(run_campaign, specs, opts, ProgressSink(), result)
    return result


def test_seeds_are_stable_and_distinct() -> None:
    assert derive_seed(1, "abba", 0) == derive_seed(1, "abba", 0)
    seeds = {derive_seed(1, "abba", i) for i in range(1000)}
    assert len(seeds) == 1000
    assert derive_seed(1, "abba", 0) != derive_seed(2, "abba", 0)


def test_campaign_is_deterministic(tmp_path: Path) -> None:
    opts = CampaignOptions(runs=300, seed=9, out=str(tmp_path), keep_going=True)
    a = _campaign(["lost-update", "refcount-race"], opts)
    b = _campaign(["lost-update", "refcount-race"], opts)
    assert [(s.runs, s.steps) for s in a.scenarios] == [(s.runs, s.steps) for s in b.scenarios]
    assert [[f.seed for f in s.failures] for s in a.scenarios] == [
        [f.seed for f in s.failures] for s in b.scenarios
    ]


def test_stops_at_first_fatal_failure_unless_keep_going(tmp_path: Path) -> None:
    stop = _campaign(["lost-update"], CampaignOptions(runs=500, out=str(tmp_path)))
    s = stop.scenarios[0]
    assert len(s.failures) == 1 and s.runs == s.failures[0].run + 1
    go = _campaign(["lost-update"], CampaignOptions(runs=500, out=str(tmp_path), keep_going=True))
    assert go.scenarios[0].runs == 500


def test_lockdep_report_gets_a_deadlock_witness(tmp_path: Path) -> None:
    # PCT reaches the lock inversion (reported) before a schedule that deadlocks
    result = _campaign(["abba"], CampaignOptions(runs=1000, strategy="pct", out=str(tmp_path)))
    failures = result.scenarios[0].failures
    kinds = [f.failure["kind"] for f in failures]
    assert kinds[0] == "lockdep" and "deadlock" in kinds
    assert failures[0].witness == failures[kinds.index("deadlock")].replay
    for f in failures:
        report = trio.run(replay, ReplayFile.load(f.replay), 2)
        assert report.reproduced == 2 and report.digest_matches == 2


FLIP = """
from panthor_testbed.sched import Kernel, Mutex, mutex_lock, mutex_unlock


async def flip(k: Kernel) -> None:
    a, b = Mutex("A"), Mutex("B")
    first, second = (a, b) if k.choose_data(2, 0.5, "inverted order") == 0 else (b, a)
    await mutex_lock(first)
    await mutex_lock(second)
    await mutex_unlock(second)
    await mutex_unlock(first)
"""


def test_a_lockdep_report_relying_on_an_earlier_run_replays(tmp_path: Path) -> None:
    # One order per run: the inversion is only seen across runs, so the saved
    # report must carry the earlier run's dependency to replay on its own.
    path = tmp_path / "flip.py"
    path.write_text(FLIP)
    spec = RunSpec.make(get_scenario(f"{path}:flip"))
    result = CampaignResult()
    opts = CampaignOptions(runs=50, out=str(tmp_path / "f"), strategy="random", witness_runs=5)
    trio.run(run_campaign, [spec], opts, ProgressSink(), result)
    (found,) = result.scenarios[0].failures
    assert found.failure["kind"] == "lockdep" and found.run > 0
    rf = ReplayFile.load(found.replay)
    assert rf.lockdep_edges and rf.lockdep_edges[0]["origin"]["run_id"] != rf.run_id
    report = trio.run(replay, rf, 2)
    assert report.reproduced == 2 and report.digest_matches == 2


def test_time_budget_bounds_the_campaign(tmp_path: Path) -> None:
    result = _campaign(
        ["abba"],
        CampaignOptions(time_budget=0.3, out=str(tmp_path), keep_going=True),
        inverted=False,
    )
    s = result.scenarios[0]
    assert s.runs > 0 and s.failures == []  # it ended: by the budget, as no run limit was set
