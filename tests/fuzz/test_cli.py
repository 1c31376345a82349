"""The panthor-testbed command: outputs, replay files and exit statuses (CLI.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from panthor_testbed.fuzz.cli import main

SCENARIO_FILE = '''
from panthor_testbed.sched import Kernel, Mutex, mutex_lock, mutex_unlock, preempt


async def my_race(k: Kernel, loops: int = 2) -> None:
    """two threads take L1/L2 in opposite orders"""
    l1, l2 = Mutex("L1"), Mutex("L2")

    async def one() -> None:
        for _ in range(loops):
            await mutex_lock(l1)
            await mutex_lock(l2)
            await mutex_unlock(l2)
            await mutex_unlock(l1)

    async def two() -> None:
        await mutex_lock(l2)
        await preempt()
        await mutex_lock(l1)
        await mutex_unlock(l1)
        await mutex_unlock(l2)

    k.spawn(one, name="one")
    k.spawn(two, name="two")
'''


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_scenarios_lists_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "scenarios", "--json")
    assert code == 0
    names = [s["name"] for s in json.loads(out)]
    assert names[:4] == ["abba", "lost-wakeup", "refcount-race", "lost-update"]
    code, out, _ = _run(capsys, "scenarios")
    assert "abba" in out and "[inverted=True]" in out


def test_bugs_lists_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "bugs", "--json")
    assert code == 0
    doc = json.loads(out)
    from panthor_testbed.fuzz.bugs import ENTRIES

    assert [b["slug"] for b in doc] == list(ENTRIES)
    for b in doc:
        assert set(b) >= {"slug", "kind", "commit", "title", "functions", "scenario"}
        assert b["kind"] in ("pre-seed", "latent", "upstream")
    code, out, _ = _run(capsys, "bugs")
    assert code == 0 and "vm-pool-get-without-xa-lock (pre-seed, --inject): 444fa5b100e5" in out


def test_fuzz_json_and_replay_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "failures"
    code, out, _ = _run(
        capsys,
        "fuzz",
        "lost-update",
        "--runs",
        "200",
        "--seed",
        "3",
        "--out",
        str(out_dir),
        "--json",
    )
    assert code == 1
    doc = json.loads(out)
    assert doc["strategy"] == "portfolio" and doc["seed"] == 3 and doc["depth"] == 3
    assert doc["failures"] == 1 and doc["runs"] == doc["scenarios"][0]["runs"]
    found = doc["scenarios"][0]["failures"][0]
    assert found["kind"] == "invariant"
    assert set(found) >= {"kind", "message", "run", "seed", "replay"}
    replay = Path(found["replay"])
    assert replay.exists() and replay.name == f"lost-update-{found['seed']}.json"
    data = json.loads(replay.read_text())
    assert data["format"] == 2 and data["scenario"] == "lost-update"
    assert data["failure"]["kind"] == "invariant" and data["choices"]
    # every choice names who made it, its count, and what it picked, by identity
    by, kind, n, pick = data["choices"][0]
    assert (by, kind, n) == ("init#0", "yield", 0) and pick in ("init#0", "incr-0#0", "incr-1#0")

    code, out, _ = _run(capsys, "replay", str(replay))
    assert code == 1
    assert "reproduced 3/3: invariant" in out
    assert "trace digest matches the recording (3/3)" in out


def test_clean_scenario_exits_zero(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = _run(
        capsys,
        "fuzz",
        "abba",
        "--param",
        "inverted=false",
        "--runs",
        "50",
        "--out",
        str(tmp_path),
        "--strategy",
        "random",
    )
    assert code == 0
    assert "abba" in out and "ok" in out and "0 failure(s)" in out
    assert [p.name for p in tmp_path.iterdir()] == ["campaign.json"]  # no replay file


def test_user_scenario_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "my_scenarios.py"
    path.write_text(SCENARIO_FILE)
    spec = f"{path}:my_race"
    code, out, _ = _run(
        capsys,
        "fuzz",
        spec,
        "--runs",
        "300",
        "--param",
        "loops=1",
        "--out",
        str(tmp_path / "f"),
        "--json",
    )
    assert code == 1
    failure = json.loads(out)["scenarios"][0]["failures"][0]
    assert failure["kind"] in ("deadlock", "lockdep")
    code, out, _ = _run(capsys, "replay", failure["replay"])
    assert code == 1 and "reproduced 3/3" in out


def test_tampered_replay_file_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _run(capsys, "fuzz", "lost-update", "--runs", "200", "--out", str(tmp_path), "--json")
    replay = next(tmp_path.glob("lost-update-*.json"))
    data = json.loads(replay.read_text())
    first = data["choices"][0]
    first[3] = "incr-1#0" if first[3] != "incr-1#0" else "incr-0#0"
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(data))
    code, out, err = _run(capsys, "replay", str(bad))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "checksum mismatch" in err and "Traceback" not in err
    del data["checksum"]
    bad.write_text(json.dumps(data))
    code, _, err = _run(capsys, "replay", str(bad), "--exact")
    assert code == 2 and err.count("\n") == 1 and "does not fit the run" in err
    code, out, _ = _run(capsys, "replay", str(bad))  # followed by identity instead
    assert code in (0, 1) and "no longer fits the run" in out
    bad.write_text("{not json")
    code, _, err = _run(capsys, "replay", str(bad))
    assert code == 2 and "not JSON" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["fuzz", "no-such-scenario"], "unknown scenario"),
        (["fuzz", "abba", "--param", "nope=1"], "no selected scenario"),
        (["fuzz", "abba", "--param", "inverted=maybe"], "takes a bool"),
        (["fuzz", "--runs", "0"], "positive integer"),
        (["fuzz", "--inject", "bogus-bug"], "unknown bug slug"),
        (["fuzz", "--strategy", "dfs"], "invalid choice"),
        (["replay", "/no/such/file.json"], "no such file"),
        (["explore", "abba", "--preemption-bound", "-1"], "--preemption-bound"),
        (["frobnicate"], "invalid choice"),
        (["fuzz", "x.py:f"], "does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = _run(capsys, *argv)
    assert out == ""
    assert code == 2, (argv, err)
    assert needle in err and err.count("\n") == 1 and err.startswith("panthor-testbed: error:")


def test_shrink_reports_deviations(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _run(
        capsys,
        "fuzz",
        "lost-update",
        "--strategy",
        "random",
        "--runs",
        "200",
        "--out",
        str(tmp_path),
        "--json",
    )
    replay = next(tmp_path.glob("lost-update-*.json"))
    code, out, _ = _run(capsys, "shrink", str(replay), "-o", str(tmp_path / "min.json"))
    assert code == 1
    assert "1 preemption: at step" in out and "switch to T" in out
    code, out, _ = _run(capsys, "replay", str(tmp_path / "min.json"))
    assert code == 1 and "reproduced 3/3" in out


def test_explore_counts_and_finds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = _run(
        capsys, "explore", "abba", "--preemption-bound", "2", "--out", str(tmp_path), "--json"
    )
    doc = json.loads(out)
    assert code == 1 and doc["complete"] and doc["schedules"] == 30
    kinds = {f["kind"] for f in doc["failures"]}
    assert kinds == {"lockdep", "deadlock"}
    code, out, _ = _run(
        capsys,
        "explore",
        "abba",
        "--preemption-bound",
        "3",
        "--param",
        "inverted=false",
        "--out",
        str(tmp_path),
    )
    assert code == 0 and "explored 36 schedules (every schedule with at most 3 preemptions)" in out


def test_replay_trace_and_perfetto(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _run(capsys, "fuzz", "abba", "--runs", "300", "--out", str(tmp_path), "--json")
    replay = sorted(tmp_path.glob("abba-*.json"))[0]
    perfetto = tmp_path / "trace.json"
    code, out, _ = _run(capsys, "replay", str(replay), "--trace", "--perfetto", str(perfetto))
    assert code == 1
    assert "T1 thread-a" in out and "T2 thread-b" in out
    assert json.loads(perfetto.read_text())["traceEvents"]


def test_bench_json_reports_figures_beside_baselines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(capsys, "bench", "--json", "--quick", "--only", "executor")
    assert code == 0
    doc = json.loads(out)
    figures = {f["name"]: f for f in doc["figures"]}
    decision = figures["executor-decision"]
    assert decision["baseline"] == "trio-event-switch" and decision["unit"] == "us"
    assert decision["ratio"] == pytest.approx(
        decision["value"] / decision["baseline_value"], rel=0.01
    )
    assert figures["scenario-execution"]["baseline"] == "trio-run"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_after_first_finding(argv: list[str], out_dir: Path) -> tuple[int, str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "panthor_testbed.fuzz", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # As a terminal would start it: a test run in the background of a
        # non-interactive shell inherits SIGINT ignored, and so would the command.
        preexec_fn=_default_sigint,
    )
    # A replay file, not campaign.json (which a campaign writes at every
    # progress tick, finding or not).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _findings(out_dir):
        time.sleep(0.1)
    assert _findings(out_dir), "no finding within 60 s"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def _findings(out_dir: Path) -> list[Path]:
    return [p for p in out_dir.glob("*.json") if p.name != "campaign.json"]


def _summary_seconds(out: str) -> float:
    last = out.strip().splitlines()[-1]
    return float(last.split(" in ")[1].split("s")[0])


def test_interrupted_campaign_exits_130_and_keeps_its_findings(tmp_path: Path) -> None:
    code, out, err = _interrupt_after_first_finding(
        [
            "fuzz",
            "abba",
            "lost-update",
            "--keep-going",
            "--runs",
            "100000000",
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
        tmp_path,
    )
    assert code == 130, err
    assert "(interrupted)" in out and "Traceback" not in err
    saved = {p.name for p in tmp_path.glob("abba-*.json")}
    assert saved
    for name in saved:
        assert name in out  # every failure on disk is in the summary
    lines = {line.split()[0]: line for line in out.splitlines() if line[:1].isalpha()}
    assert lines["abba"].endswith("interrupted") and "FAILED" in lines["abba"]
    assert lines["lost-update"].endswith("not run") and " 0 runs" in lines["lost-update"]
    assert _summary_seconds(out) >= 0.3  # the time it really ran, not 0.00s
    assert float(lines["abba"].split("steps")[1].split("s")[0]) >= 0.3


@pytest.mark.slow
def test_interrupted_parallel_campaign_says_which_scenarios_never_ran(tmp_path: Path) -> None:
    code, out, err = _interrupt_after_first_finding(
        [
            "fuzz",
            "abba",
            "lost-update",
            "--keep-going",
            "--runs",
            "100000000",
            "--jobs",
            "2",
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
        tmp_path,
    )
    assert code == 130, err
    assert "Traceback" not in err
    lines = {line.split()[0]: line for line in out.splitlines() if line[:1].isalpha()}
    assert lines["abba"].endswith("interrupted") and "FAILED" in lines["abba"]
    assert lines["lost-update"].endswith("not run")  # not "ok"
    assert _summary_seconds(out) >= 0.3
    saved = _findings(tmp_path)
    assert saved
    for p in saved:
        assert p.name in out  # nothing the workers found is lost
    doc = json.loads((tmp_path / "campaign.json").read_text())
    assert {f["replay"].rsplit("/", 1)[-1] for s in doc["scenarios"] for f in s["failures"]} == {
        p.name for p in saved
    }


def test_interrupted_explore_prints_its_summary(tmp_path: Path) -> None:
    code, out, err = _interrupt_after_first_finding(
        [
            "explore",
            "lost-update",
            "--param",
            "threads=6",
            "--preemption-bound",
            "4",
            "--out",
            str(tmp_path),
        ],
        tmp_path,
    )
    assert code == 130, err
    assert "Traceback" not in err
    head = out.splitlines()[0]
    assert head.startswith("lost-update: explored ") and "(interrupted)" in head
    assert int(head.split("explored ")[1].split()[0]) > 1
    for p in tmp_path.glob("*.json"):
        assert str(p.name) in out


def test_explore_without_a_bound_deepens_to_the_smallest_failing_bound(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = _run(capsys, "explore", "lost-wakeup", "--out", str(tmp_path), "--json")
    doc = json.loads(out)
    assert code == 1 and doc["deepening"] and doc["failing_bound"] == 1
    assert doc["proven_bound"] == 0  # bound 0 passed exhaustively
    code, out, _ = _run(
        capsys, "explore", "abba", "--param", "inverted=false", "--out", str(tmp_path), "--json"
    )
    doc = json.loads(out)
    assert code == 0 and doc["failing_bound"] is None and doc["complete"]
    code, out, _ = _run(
        capsys,
        "explore",
        "lost-update",
        "--param",
        "threads=4",
        "--out",
        str(tmp_path),
        "--param",
        "fixed=true",
        "--max-schedules",
        "50",
        "--json",
    )
    doc = json.loads(out)
    assert code == 0 and doc["schedules"] == 50 and not doc["complete"]
