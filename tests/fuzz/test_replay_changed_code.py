"""Checking a fix: replay on changed code, replay files that travel, format 1 files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from panthor_testbed.fuzz.cli import main

COUNTER = '''
from typing import Annotated

from panthor_testbed.fuzz import Range
from panthor_testbed.sched import (
    Atomic,
    InvariantViolation,
    Kernel,
    Mutex,
    atomic_read,
    atomic_set,
    mutex_lock,
    mutex_unlock,
    preempt,
)


async def counter(k: Kernel, threads: Annotated[int, Range(1, 8)] = 2) -> None:
    """threads increment a counter with a separate read and write"""
    value = Atomic(0, "counter")
    lock = Mutex("counter_lock")

    async def incr() -> None:
        # LOCK
        v = await atomic_read(value)
        await atomic_set(value, v + 1)
        # UNLOCK
        # AFTER

    workers = [k.spawn(incr, name=f"incr-{i}") for i in range(threads)]
    for w in workers:
        await w.join()
    if value.v != threads:
        raise InvariantViolation(
            f"counter is {value.v} after {threads} increments", signature="invariant:counter"
        )
'''

FIX = {"# LOCK": "await mutex_lock(lock)", "# UNLOCK": "await mutex_unlock(lock)"}
# An edit that keeps the bug but adds a yield point inside the recorded
# schedule: the recording no longer fits decision for decision.
UNRELATED = {"# AFTER": "await preempt()"}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _fuzz(capsys: pytest.CaptureFixture[str], spec: str, out: Path, *extra: str) -> Path:
    code, text, err = _run(
        capsys, "fuzz", spec, "--runs", "300", "--out", str(out), "--json", *extra
    )
    assert code == 1, err
    found = json.loads(text)["scenarios"][0]["failures"]
    return Path(found[0]["replay"])


def _edit(path: Path, edits: dict[str, str]) -> None:
    text = path.read_text()
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)


@pytest.mark.parametrize("name", ["lost-update", "refcount-race", "lost-wakeup"])
def test_a_builtin_fix_switched_on_replays_to_exit_0(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    replay = _fuzz(capsys, name, tmp_path)
    code, out, _ = _run(capsys, "replay", str(replay))
    assert code == 1 and "reproduced 3/3" in out  # the bug, exactly
    code, out, err = _run(capsys, "replay", str(replay), "--param", "fixed=true")
    assert code == 0, out + err
    assert "no longer fits the run at step" in out
    assert "did not reproduce (0/3) with the schedule followed up to step" in out
    # --exact keeps refusing a schedule that does not fit
    code, out, err = _run(capsys, "replay", str(replay), "--param", "fixed=true", "--exact")
    assert code == 2 and out == "" and "does not fit the run" in err and err.count("\n") == 1


def test_a_replay_on_changed_params_that_keep_the_bug_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    replay = _fuzz(capsys, "lost-update", tmp_path)
    code, out, _ = _run(capsys, "replay", str(replay), "--param", "threads=3", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["recurs"] and doc["followed"] == "by-identity"
    assert doc["diverged"]["step"] > 0 and doc["followed_choices"] == doc["recorded_choices"]


def test_a_user_scenario_edited_to_the_fix_replays_to_exit_0_and_an_unrelated_edit_to_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "counter.py"
    src.write_text(COUNTER)
    replay = _fuzz(capsys, f"{src}:counter", tmp_path / "failures")
    code, out, _ = _run(capsys, "replay", str(replay))
    assert code == 1 and "reproduced 3/3" in out and "digest matches" in out

    _edit(src, UNRELATED)
    code, out, _ = _run(capsys, "replay", str(replay))
    assert code == 1, out
    assert "no longer fits the run" in out and "reproduced 3/3 with the schedule followed" in out

    src.write_text(COUNTER)
    _edit(src, FIX)
    code, out, _ = _run(capsys, "replay", str(replay))
    assert code == 0, out
    assert "did not reproduce (0/3)" in out and "the run passes now" in out


def test_a_user_scenario_parameter_range_is_enforced(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "counter.py"
    src.write_text(COUNTER)
    code, out, err = _run(capsys, "fuzz", f"{src}:counter", "--param", "threads=9")
    assert code == 2 and out == "" and "counter.threads must be in [1, 8]" in err


def test_a_replay_file_travels_with_its_scenario_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "counter.py").write_text(COUNTER)
    monkeypatch.chdir(home)
    replay = _fuzz(capsys, "counter.py:counter", Path("failures"))  # relative, as a user types
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = _run(capsys, "replay", str(home / replay))
    assert code == 1 and "reproduced 3/3" in out, err

    # the whole tree moves (a clone elsewhere): found relative to the replay file
    moved = tmp_path / "clone"
    home.rename(moved)
    code, out, err = _run(capsys, "replay", str(moved / replay))
    assert code == 1 and "reproduced 3/3" in out, err

    # attached to a review: both files land in one directory, the original is gone
    review = tmp_path / "review"
    review.mkdir()
    shutil.copy(moved / replay, review / "bug.json")
    shutil.copy(moved / "counter.py", review / "counter.py")
    shutil.rmtree(moved)
    code, out, err = _run(capsys, "replay", str(review / "bug.json"))
    assert code == 1 and "reproduced 3/3" in out, err

    # only the replay file: a clear exit 2 naming what to pass
    lonely = tmp_path / "lonely.json"
    shutil.copy(review / "bug.json", lonely)
    (review / "counter.py").rename(review / "renamed.py")
    code, out, err = _run(capsys, "replay", str(lonely))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "cannot find the scenario file counter.py" in err and "--scenario PATH:counter" in err
    code, out, err = _run(
        capsys, "replay", str(lonely), "--scenario", f"{review}/renamed.py:counter"
    )
    assert code == 1 and "reproduced 3/3" in out, err


def test_a_module_scenario_is_found_from_another_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "proj" / "mycounters"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "scen.py").write_text(COUNTER)
    monkeypatch.chdir(tmp_path / "proj")
    monkeypatch.syspath_prepend(str(tmp_path / "nothing-here"))  # restores sys.path after
    replay = _fuzz(capsys, "mycounters.scen:counter", tmp_path / "failures")
    data = json.loads(replay.read_text())
    assert data["source"]["module"] == "mycounters.scen"
    assert data["source"]["root"] == str(tmp_path / "proj")
    monkeypatch.chdir(tmp_path)
    for name in [m for m in __import__("sys").modules if m.startswith("mycounters")]:
        monkeypatch.delitem(__import__("sys").modules, name)
    code, out, err = _run(capsys, "replay", str(replay))
    assert code == 1 and "reproduced 3/3" in out, err


def test_format_1_files_replay_exactly_or_are_refused_with_a_clear_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from panthor_testbed.fuzz import api

    replay = _fuzz(capsys, "lost-update", tmp_path)
    tids = api.replay(replay, times=1).last.choices
    data = json.loads(replay.read_text())
    data.update(format=1, choices=tids)
    del data["checksum"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data))
    code, out, _ = _run(capsys, "replay", str(old))
    assert code == 1 and "reproduced 3/3" in out and "digest matches" in out
    code, out, err = _run(capsys, "replay", str(old), "--param", "fixed=true")
    assert code == 2 and out == "" and "format 1, without thread identities" in err


HELPER_RACE = """
from panthor_testbed.sched import (
    Atomic, InvariantViolation, Kernel, atomic_read, atomic_set, preempt
)


async def counter(k: Kernel) -> None:
    value = Atomic(0, "counter")

    async def helper() -> None:
        await preempt()  # UNRELATED
        await preempt()

    async def incr() -> None:
        v = await atomic_read(value)
        await atomic_set(value, v + 1)

    k.spawn(helper, name="helper")
    workers = [k.spawn(incr, name=f"incr-{i}") for i in range(2)]
    for w in workers:
        await w.join()
    if value.v != 2:
        raise InvariantViolation(f"counter is {value.v}", signature="invariant:counter")
"""


async def test_after_a_divergence_later_choices_are_still_followed_by_identity(
    tmp_path: Path,
) -> None:
    # A recorded schedule where the race (incr-0 preempted between its read
    # and its write, incr-1 running in between) comes after the helper
    # thread's decisions. Removing one of the helper's yield points breaks
    # the recording at the helper's exit; the race only recurs if the
    # decisions after that point are still taken by their keys.
    from panthor_testbed.fuzz import api
    from panthor_testbed.fuzz.runner import RunSpec, execute, replay_file_of
    from panthor_testbed.fuzz.scenario import get_scenario
    from panthor_testbed.fuzz.schedule import DecisionRecorder
    from panthor_testbed.sched.locking.lockdep import Lockdep

    src = tmp_path / "helper_race.py"
    src.write_text(HELPER_RACE)
    spec = RunSpec.make(get_scenario(f"{src}:counter"))
    rec = DecisionRecorder(
        None,
        {
            ("helper#0", "yield", 0): "incr-0#0",
            ("incr-0#0", "yield", 1): "helper#0",
            ("helper#0", "exit", 0): "incr-1#0",
        },
    )
    k = await execute(spec, rec, Lockdep())
    assert k.primary_failure is not None and k.primary_failure.kind == "invariant"
    rf = await replay_file_of(k, spec, strategy={"name": "crafted"}, seed=0, reported_before=[])
    path = tmp_path / "race.json"
    rf.save(str(path))

    _edit(src, {"await preempt()  # UNRELATED": "pass"})
    report = await api.areplay(path, times=1)
    assert not report.exact and report.divergence is not None
    assert "helper's exit #0" in report.divergence.why
    assert report.recurs


def test_a_signature_with_a_source_location_survives_moved_lines_and_directories(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first = tmp_path / "a"
    first.mkdir()
    src = first / "counter.py"
    src.write_text(COUNTER.replace(', signature="invariant:counter"', ""))
    replay = _fuzz(capsys, f"{src}:counter", tmp_path / "failures")
    sig = json.loads(replay.read_text())["failure"]["signature"]
    assert sig.startswith("invariant:a/counter.py:") and sig.endswith(" in counter")
    second = tmp_path / "b"
    second.mkdir()
    (second / "counter.py").write_text("# a comment moves every line\n\n" + src.read_text())
    src.unlink()
    code, out, err = _run(
        capsys, "replay", str(replay), "--scenario", f"{second}/counter.py:counter"
    )
    assert code == 1 and "reproduced 3/3" in out, out + err
