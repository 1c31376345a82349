"""The engines: the same answer in this process and on Dask workers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

MAGIC = """
from panthor_testbed.sched import InvariantViolation, Kernel


async def magic(k: Kernel) -> None:
    # About one run in 63 fails, so failures sit in several batches.
    if k.choose_data(64, 1.0, "magic") == 7:
        raise InvariantViolation("the magic value")
"""


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.json")) if p.name != "campaign.json"}


def _cli(*argv: str) -> dict[str, Any]:
    # A subprocess, as a user runs it (and pytest's module names stay out of Dask's way).
    proc = subprocess.run(
        [sys.executable, "-m", "panthor_testbed.fuzz", *argv, "--json", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def test_first_failure_and_replay_file_are_the_same_for_any_jobs(tmp_path: Path) -> None:
    path = tmp_path / "magic.py"
    path.write_text(MAGIC)
    common = (f"{path}:magic", "--runs", "600", "--seed", "5", "--strategy", "random")
    docs = {
        jobs: _cli("fuzz", *common, "--jobs", str(jobs), "--out", str(tmp_path / f"j{jobs}"))
        for jobs in (1, 2, 2)
    }
    firsts = {j: d["scenarios"][0]["failures"] for j, d in docs.items()}
    (f1,) = firsts[1]
    assert f1["run"] > 0  # not in the first runs: later batches also fail, the lowest wins
    assert docs[1]["scenarios"][0]["runs"] == f1["run"] + 1
    assert docs[2]["workers"] == 2
    assert [(f["run"], f["seed"]) for f in firsts[2]] == [(f1["run"], f1["seed"])]
    assert _files(tmp_path / "j1") == _files(tmp_path / "j2")
