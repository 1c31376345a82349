"""What used to break on day two: bad paths and values, pipes, validation, summaries."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from panthor_testbed.fuzz.cli import main

EXIT_CHECK = """
from panthor_testbed.sched import InvariantViolation, Kernel, preempt


async def checked(k: Kernel) -> None:
    state = {"n": 0}

    async def bump() -> None:
        v = state["n"]
        await preempt()
        state["n"] = v + 1

    def check(k: Kernel) -> None:
        if state["n"] != 2:
            raise InvariantViolation(f"n is {state['n']}", signature="invariant:n")

    k.exit_checks.append(check)
    k.spawn(bump, name="a")
    k.spawn(bump, name="b")
"""


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_exit_2(code: int, out: str, err: str, needle: str) -> None:
    assert code == 2, (code, out, err)
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("panthor-testbed: error:") and needle in err, err


@pytest.fixture(scope="module")
def lost_update_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from panthor_testbed.fuzz import api

    out = tmp_path_factory.mktemp("failures")
    result = api.fuzz("lost-update", runs=200, out=str(out))
    return Path(result.scenarios[0].failures[0].replay)


@pytest.fixture(scope="module")
def abba_deadlock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from panthor_testbed.fuzz import api

    out = tmp_path_factory.mktemp("failures")
    result = api.fuzz("abba", runs=300, out=str(out))
    (found,) = [f for f in result.scenarios[0].failures if f.failure["kind"] == "deadlock"]
    return Path(found.replay)


# ---------------------------------------------------------------------- paths


def test_fuzz_out_that_cannot_be_created(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "fuzz", "lost-update", "--runs", "5", "--out", "/proc/nope")
    _one_line_exit_2(code, out, err, "--out /proc/nope")


def test_fuzz_out_that_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    code, out, err = _run(capsys, "fuzz", "lost-update", "--runs", "5", "--out", str(f))
    _one_line_exit_2(code, out, err, "is not a directory")


def test_fuzz_writes_only_campaign_json_when_nothing_fails(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "new" / "failures"
    code, _, _ = _run(
        capsys, "fuzz", "abba", "--param", "inverted=false", "--runs", "5", "--out", str(out_dir)
    )
    assert code == 0 and [p.name for p in out_dir.iterdir()] == ["campaign.json"]


def test_shrink_output_that_cannot_be_written(
    capsys: pytest.CaptureFixture[str], lost_update_file: Path
) -> None:
    code, out, err = _run(capsys, "shrink", str(lost_update_file), "-o", "/proc/x/y.json")
    _one_line_exit_2(code, out, err, "/proc/x/y.json")


@pytest.mark.parametrize("target", ["/proc/x/y.json", "DIR"])
def test_replay_perfetto_that_cannot_be_written(
    capsys: pytest.CaptureFixture[str], lost_update_file: Path, tmp_path: Path, target: str
) -> None:
    path = str(tmp_path) if target == "DIR" else target
    code, out, err = _run(capsys, "replay", str(lost_update_file), "--perfetto", path)
    _one_line_exit_2(code, out, err, "--perfetto")


def test_replay_of_a_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _run(capsys, "replay", str(tmp_path))
    _one_line_exit_2(code, out, err, "is a directory")


def test_scenarios_into_a_closed_pipe_is_quiet() -> None:
    # The reader is gone before the command writes (start-up takes longer
    # than closing a pipe), as with `| head -1` on long output.
    proc = subprocess.Popen(
        [sys.executable, "-m", "panthor_testbed.fuzz", "scenarios"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert err == ""


def test_head_of_scenarios_is_quiet() -> None:
    res = subprocess.run(
        f"{sys.executable} -m panthor_testbed.fuzz scenarios | head -1",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    )
    assert res.stdout.startswith("abba") and res.stdout.count("\n") == 1
    assert res.stderr == ""


def test_bench_only_an_unknown_group(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "bench", "--only", "nosuch", "--quick")
    _one_line_exit_2(code, out, err, "no such bench group")
    assert "executor" in err


# ---------------------------------------------------------------------- exit checks


def test_an_invariant_raised_in_an_exit_check_is_a_finding(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "exitcheck.py"
    src.write_text(EXIT_CHECK)
    code, out, err = _run(
        capsys,
        "fuzz",
        f"{src}:checked",
        "--strategy",
        "random",
        "--runs",
        "50",
        "--out",
        str(tmp_path / "f"),
        "--json",
    )
    assert code == 1 and "Traceback" not in err, err
    (found,) = json.loads(out)["scenarios"][0]["failures"]
    assert found["kind"] == "invariant" and found["message"].startswith("n is 1")
    # replay runs outside a campaign's session: the same finding, not an ExceptionGroup
    code, out, err = _run(capsys, "replay", found["replay"])
    assert code == 1 and "reproduced 3/3: invariant: n is 1" in out, out + err


# ---------------------------------------------------------------------- replay-file fields


def _mutations() -> list[tuple[str, Any, str]]:
    def set_(path: str, value: Any) -> Any:
        return (path, value)

    return [
        ("config.alloc_fail_probability", 5, "alloc_fail_probability"),
        ("config.alloc_fail_nth", -1, "alloc_fail_nth"),
        ("config.max_steps", 0, "max_steps"),
        ("config.lockdep", "yes", "lockdep"),
        ("config.bogus", 1, "unknown key 'bogus'"),
        ("version", 999, "'version' must be str"),
        ("version", "banana", "package version"),
        ("format", 999, "unsupported replay format 999"),
        ("seed", -1, "'seed' must be a non-negative integer"),
        ("run_id", -1, "'run_id'"),
        ("steps", "6", "'steps' must be int"),
        ("strategy.depth", 0, "'depth' must be a positive integer"),
        ("strategy.seed", -5, "'seed' must be a non-negative integer"),
        ("failure.kind", "bogus", "unknown kind 'bogus'"),
        ("digest", "zz", "64 hex digits"),
        ("params.threads", 0, "threads must be >= 1"),
        ("params.threads", "2", "must be int"),
        ("params.nope", 1, "no parameter 'nope'"),
        ("inject", ["no-such-bug"], "unknown bug slug"),
        ("choices.0", ["init#0", "yield", 1, "incr-0#0"], "yield count must be 0"),
        ("choices.0", ["init", "yield", 0, "incr-0#0"], "not a thread identity"),
        ("choices.0", ["init#0", "yield", 0, -3], "not a pick"),
        ("choices.0", ["init#0", "yield", 0, 1], "not a pick for a yield choice"),
        ("choices.0", ["init#0", "nap", 0, "incr-0#0"], "kind 'nap'"),
        ("choices.0", 7, "must be [thread, kind, count, pick]"),
        ("note", 3, "'note' must be str"),
        ("extra_field", 1, "unknown field 'extra_field'"),
        ("source", {"kind": "url", "function": "f"}, "unknown kind 'url'"),
    ]


@pytest.mark.parametrize(("path", "value", "needle"), _mutations())
def test_every_replay_field_is_validated(
    capsys: pytest.CaptureFixture[str],
    lost_update_file: Path,
    tmp_path: Path,
    path: str,
    value: Any,
    needle: str,
) -> None:
    data = json.loads(lost_update_file.read_text())
    del data["checksum"]  # a hand-edited file
    *parents, last = path.split(".")
    node: Any = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    bad = tmp_path / "edited.json"
    bad.write_text(json.dumps(data))
    code, out, err = _run(capsys, "replay", str(bad))
    _one_line_exit_2(code, out, err, needle)


def test_a_newer_version_is_replayed_with_a_warning(
    capsys: pytest.CaptureFixture[str], lost_update_file: Path, tmp_path: Path
) -> None:
    data = json.loads(lost_update_file.read_text())
    del data["checksum"]
    data["version"] = "999.0.0"
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(data))
    code, out, err = _run(capsys, "replay", str(newer))
    assert code == 1 and "reproduced 3/3" in out
    assert "warning:" in err and "999.0.0" in err and err.count("\n") == 1


# ---------------------------------------------------------------------- parameters


@pytest.mark.parametrize("value", ["0", "-1"])
def test_threads_below_one_is_refused(capsys: pytest.CaptureFixture[str], value: str) -> None:
    code, out, err = _run(capsys, "fuzz", "lost-update", "--param", f"threads={value}")
    _one_line_exit_2(code, out, err, "lost-update.threads must be >= 1")
    code, out, err = _run(
        capsys, "explore", "lost-update", "--preemption-bound", "1", "--param", f"threads={value}"
    )
    _one_line_exit_2(code, out, err, "must be >= 1")


@pytest.mark.parametrize(
    "order", [["threads=3", "fixed=false"], ["fixed=false", "threads=3"]], ids=["tf", "ft"]
)
def test_repeated_params_all_apply(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, order: list[str]
) -> None:
    argv = ["fuzz", "lost-update", "--runs", "300", "--out", str(tmp_path), "--json"]
    for pair in order:
        argv += ["--param", pair]
    code, out, _ = _run(capsys, *argv)
    assert code == 1
    replay = json.loads(out)["scenarios"][0]["failures"][0]["replay"]
    assert json.loads(Path(replay).read_text())["params"] == {"threads": 3, "fixed": False}


def test_repeated_params_in_explore_both_orders(capsys: pytest.CaptureFixture[str]) -> None:
    counts = set()
    for order in (["threads=3", "fixed=true"], ["fixed=true", "threads=3"]):
        argv = ["explore", "lost-update", "--preemption-bound", "1", "--json"]
        for pair in order:
            argv += ["--param", pair]
        code, out, _ = _run(capsys, *argv)
        assert code == 0
        counts.add(json.loads(out)["schedules"])
    code, out, _ = _run(
        capsys,
        "explore",
        "lost-update",
        "--preemption-bound",
        "1",
        "--param",
        "fixed=true",
        "--json",
    )
    two = json.loads(out)["schedules"]
    assert len(counts) == 1 and counts != {two}  # three threads, not the default two


# ---------------------------------------------------------------------- output


def test_perfetto_closes_the_locks_held_when_the_run_fails(
    capsys: pytest.CaptureFixture[str], abba_deadlock_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "trace.json"
    code, _, _ = _run(capsys, "replay", str(abba_deadlock_file), "--perfetto", str(out))
    assert code == 1
    events = json.loads(out.read_text())["traceEvents"]
    holds = {e["name"]: e for e in events if e.get("ph") == "X"}
    assert set(holds) == {"hold A", "hold B"}  # each thread holds one lock at the deadlock
    for e in holds.values():
        assert e["args"] == {"held_at_end": True} and e["dur"] >= 1
    assert holds["hold A"]["tid"] != holds["hold B"]["tid"]


def test_progress_is_erased_when_a_scenario_ends_early_and_when_the_campaign_ends() -> None:
    from panthor_testbed.fuzz import api
    from panthor_testbed.fuzz.progress import ProgressBar

    stream = io.StringIO()
    bar = ProgressBar(stream, enabled=True)
    api.fuzz("lost-update", runs=1_000_000, progress=bar)  # stops at its first failure
    text = stream.getvalue()
    assert "/1000000" in text  # a bar was drawn
    last_line = text.rsplit("\r", 2)
    assert text.endswith("\r") and last_line[-2].strip() == ""  # ... and erased
    assert not bar.drawn

    stream = io.StringIO()
    bar = ProgressBar(stream, enabled=True)
    bar.start("x", 10, None)
    bar.close()  # an exit path that never reached finish (an error, Ctrl-C)
    assert stream.getvalue().endswith("\r") and not bar.drawn


def test_scenarios_and_help_load_no_heavy_module() -> None:
    heavy = ("trio", "hypothesis", "pytest", "sortedcontainers", "panthor_testbed.sched")
    script = (
        "import sys, contextlib, io\n"
        "from panthor_testbed.fuzz.cli import main\n"
        "argv = sys.argv[1:]\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"heavy = {heavy!r}\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    for argv in (["scenarios"], ["scenarios", "--json"], ["--help"], ["fuzz", "--help"]):
        res = subprocess.run(
            [sys.executable, "-c", script, *argv],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        assert res.stdout.strip() == "[]", (argv, res.stdout)


def test_fuzz_loads_neither_hypothesis_nor_pytest(tmp_path: Path) -> None:
    script = (
        "import sys, contextlib, io\n"
        "from panthor_testbed.fuzz.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['fuzz', 'lost-update', '--runs', '3', '--out', {str(tmp_path)!r}])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('hypothesis', 'pytest', "
        "'trio.testing'))))\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]", res.stdout


def test_the_scenario_index_matches_the_imported_scenarios() -> None:
    from panthor_testbed.fuzz.scenario import ScenarioInfo, builtin_index, builtin_scenarios

    index = builtin_index()
    imported = [
        ScenarioInfo(s.name, s.description, s.params, s.tags, s.config, s.ranges)
        for s in builtin_scenarios().values()
    ]
    assert index == imported
    lost_update = next(i for i in index if i.name == "lost-update")
    assert {n: r.low for n, r in lost_update.ranges.items()} == {"threads": 1}
