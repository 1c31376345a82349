"""The public Python API of campaigns (panthor_testbed.fuzz), and the CLI's use of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from panthor_testbed import fuzz as pf
from panthor_testbed.fuzz import api
from panthor_testbed.sched import Kernel, Mutex, mutex_lock, mutex_unlock, preempt


async def inversion(k: Kernel, loops: int = 1) -> None:
    """two threads take two locks in opposite orders"""
    a, b = Mutex("X"), Mutex("Y")

    async def one() -> None:
        for _ in range(loops):
            async with a, b:
                pass

    async def two() -> None:
        await mutex_lock(b)
        await preempt()
        await mutex_lock(a)
        await mutex_unlock(a)
        await mutex_unlock(b)

    k.spawn(one, name="one")
    k.spawn(two, name="two")


def test_fuzz_replay_shrink_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = pf.fuzz("lost-update", runs=300, seed=3, params={"threads": 2})
    assert isinstance(result, pf.CampaignResult) and result.failures == 1
    (found,) = result.scenarios[0].failures
    assert found.replay == "" and found.replay_file is not None
    assert not list(tmp_path.iterdir())  # nothing written without `out`
    report = pf.replay(found.replay_file, times=2)
    assert report.recurs and report.exact and report.reproduced == 2
    fixed = pf.replay(found.replay_file, times=1, params={"fixed": True})
    assert not fixed.recurs and not fixed.exact and fixed.divergence is not None
    small = pf.shrink(found.replay_file)
    assert small.summary().startswith("1 preemption:")
    path = pf.write_replay(small.shrunk, tmp_path / "min.json")
    again = pf.read_replay(path)
    assert again.choices == small.shrunk.choices and pf.replay(again, times=1).recurs


def test_fuzz_a_function_and_explore_it() -> None:
    result = pf.fuzz(inversion, runs=300, strategy="random", seed=2)
    kinds = [f.failure["kind"] for f in result.scenarios[0].failures]
    assert "lockdep" in kinds or "deadlock" in kinds
    summary = pf.explore(inversion, preemption_bound=1)
    assert summary.complete and summary.failing_schedules > 0 and summary.replay_files


def test_the_same_campaign_through_the_api_and_the_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from panthor_testbed.fuzz.cli import main

    via_api = pf.fuzz(["lost-update", "refcount-race"], runs=200, seed=5, keep_going=True)
    argv = ["fuzz", "lost-update", "refcount-race", "--runs", "200", "--seed", "5"]
    code = main([*argv, "--keep-going", "--out", str(tmp_path), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [(s["name"], s["runs"], s["steps"]) for s in doc["scenarios"]] == [
        (s.name, s.runs, s.steps) for s in via_api.scenarios
    ]
    assert [[f["seed"] for f in s["failures"]] for s in doc["scenarios"]] == [
        [f.seed for f in s.failures] for s in via_api.scenarios
    ]


def test_the_cli_runs_through_the_api(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from panthor_testbed.fuzz.cli import main

    seen: dict[str, Any] = {}
    real = api.fuzz

    def spy(*args: Any, **kwargs: Any) -> pf.CampaignResult:
        seen.update(kwargs, scenarios=args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "fuzz", spy)
    main(["fuzz", "abba", "--param", "inverted=false", "--runs", "3", "--out", "/tmp/x-unused"])
    capsys.readouterr()
    assert seen["scenarios"] == ["abba"] and seen["runs"] == 3
    assert seen["params"] == ["inverted=false"]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"runs": 0}, "runs: expected a positive integer"),
        ({"strategy": "dfs"}, "strategy: expected one of portfolio, random, pct"),
        ({"time_budget": -1}, "positive duration"),
        ({"params": {"nope": 1}}, "no selected scenario"),
        ({"params": {"threads": 0}}, "threads must be >= 1"),
        ({"params": ["threads"]}, "expected NAME=VALUE"),
        ({"config": {"alloc_fail_probability": 2}}, "alloc_fail_probability"),
        ({"config": {"nope": 1}}, "unknown key 'nope'"),
        ({"inject": ["nope"]}, "unknown bug slug"),
    ],
)
def test_bad_arguments_are_one_line_input_errors(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises((pf.InputError, ValueError)) as info:
        pf.fuzz("lost-update", **kwargs)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_list_scenarios_and_range_are_light() -> None:
    names = [s.name for s in pf.list_scenarios()]
    assert names[:4] == ["abba", "lost-wakeup", "refcount-race", "lost-update"]
    r = pf.Range(1, 8)
    assert r.contains(1) and r.contains(8) and not r.contains(0) and not r.contains(9)
    with pytest.raises(ValueError):
        pf.Range(3, 1)


async def test_async_variants_inside_trio() -> None:
    result = await pf.afuzz("lost-update", runs=200)
    (found,) = result.scenarios[0].failures
    assert found.replay_file is not None
    report = await pf.areplay(found.replay_file, times=1)
    assert report.recurs
    small = await pf.ashrink(found.replay_file)
    assert small.after <= small.before
    summary = await pf.aexplore("lost-wakeup", preemption_bound=1)
    assert summary.failing_schedules == 1


def test_the_cli_names_the_executors_strategies() -> None:
    from panthor_testbed.fuzz.cli import STRATEGIES
    from panthor_testbed.sched.core.strategy import STRATEGIES as SCHED_STRATEGIES

    assert STRATEGIES == SCHED_STRATEGIES
