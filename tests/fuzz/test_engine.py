"""The engines: the same answer in this process and on Dask workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from panthor_testbed.fuzz.planner import BATCH_RUNS

MAGIC = """
from panthor_testbed.sched import InvariantViolation, Kernel


async def magic(k: Kernel) -> None:
    # About one run in 63 fails, so failures sit in several batches.
    if k.choose_data(64, 1.0, "magic") == 7:
        raise InvariantViolation("the magic value")
"""


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.json")) if p.name != "campaign.json"}


SPLIT = """
import os

from panthor_testbed.sched import Kernel, Mutex, mutex_lock, mutex_unlock


async def split(k: Kernel) -> None:
    # One run in 64 takes A then B, one in 64 B then A, the rest A alone.
    a, b = Mutex("A"), Mutex("B")
    v = k.choose_data(64, 1.0, "order")
    first, second = (a, b) if v == 1 else (b, a) if v == 2 else (a, None)
    await mutex_lock(first)
    if second is not None:
        await mutex_lock(second)
        await mutex_unlock(second)
        # Which process took which order (a side note; it decides nothing).
        with open(os.environ["SPLIT_TRACE"], "a") as f:
            f.write(f"{os.getpid()} {first.name}{second.name}\\n")
    await mutex_unlock(first)
"""


def _cli(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> dict[str, Any]:
    # A subprocess, as a user runs it (and pytest's module names stay out of Dask's way).
    proc = subprocess.run(
        [sys.executable, "-m", "panthor_testbed.fuzz", *argv, "--json", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        env=None if env is None else {**os.environ, **env},
        cwd=cwd,
    )
    assert proc.returncode == 1, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def test_first_failure_and_replay_file_are_the_same_for_any_jobs(tmp_path: Path) -> None:
    path = tmp_path / "magic.py"
    path.write_text(MAGIC)
    # Relative to the working directory: a scenario file's run seeds derive from its
    # name as given, and pytest's tmp_path differs from one session to the next.
    common = ("magic.py:magic", "--runs", "600", "--seed", "5", "--strategy", "random")
    docs = {
        jobs: _cli(
            "fuzz", *common, "--jobs", str(jobs), "--out", str(tmp_path / f"j{jobs}"), cwd=tmp_path
        )
        for jobs in (1, 2, 8)
    }
    firsts = {j: d["scenarios"][0]["failures"] for j, d in docs.items()}
    (f1,) = firsts[1]
    assert f1["run"] > 0  # not in the first runs: later batches also fail, the lowest wins
    assert docs[1]["scenarios"][0]["runs"] == f1["run"] + 1
    assert docs[2]["workers"] == 2 and docs[8]["workers"] == 8
    for jobs in (2, 8):
        assert [(f["run"], f["seed"]) for f in firsts[jobs]] == [(f1["run"], f1["seed"])]
        assert _files(tmp_path / "j1") == _files(tmp_path / f"j{jobs}")


def test_an_inversion_whose_halves_ran_on_different_workers_is_reported(tmp_path: Path) -> None:
    # Seed 2 (run seeds derive from the scenario's name, "split.py:split"
    # from tmp_path): one run of batch 0 takes A then B, one of batch 1 B then A, and
    # no batch sees both orders; on two workers batches 0 and 1 start
    # together, one on each.
    path = tmp_path / "split.py"
    path.write_text(SPLIT)
    common = ("split.py:split", "--runs", "64", "--seed", "2", "--strategy", "random")
    docs: dict[int, dict[str, Any]] = {}
    traces: dict[int, dict[str, str]] = {}
    for jobs in (1, 2):
        trace = tmp_path / f"trace{jobs}"
        trace.touch()
        out = str(tmp_path / f"j{jobs}")
        docs[jobs] = _cli(
            "fuzz",
            *common,
            *("--jobs", str(jobs), "--out", out),
            env={"SPLIT_TRACE": str(trace)},
            cwd=tmp_path,
        )
        pid_order = [line.split() for line in trace.read_text().splitlines()]
        traces[jobs] = {order: pid for pid, order in pid_order}
    assert sorted(traces[2]) == ["AB", "BA"]
    assert traces[2]["AB"] != traces[2]["BA"], "both halves ran in one worker process"
    for jobs in (1, 2):
        (found,) = docs[jobs]["scenarios"][0]["failures"]
        assert found["kind"] == "lockdep"
        first, second = found["halves"]
        assert first["edge"] == second["edge"][::-1]
        assert (first["run"] // BATCH_RUNS, second["run"] // BATCH_RUNS) == (0, 1)
        assert found["replay"].endswith("-inversion.json")
    assert _files(tmp_path / "j1") == _files(tmp_path / "j2")
    # The report replays on its own: the file carries the other worker's half.
    (name,) = _files(tmp_path / "j2")
    proc = subprocess.run(
        [sys.executable, "-m", "panthor_testbed.fuzz", "replay", str(tmp_path / "j2" / name)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SPLIT_TRACE": str(tmp_path / "trace-replay")},
        cwd=tmp_path,
    )
    assert proc.returncode == 1 and "reproduced" in proc.stdout, proc.stdout + proc.stderr
