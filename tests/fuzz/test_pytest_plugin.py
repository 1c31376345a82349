"""The pytest plugin, as a user meets it: their test files run by a real pytest (pytester)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from panthor_testbed.fuzz import api
from panthor_testbed.fuzz.pytest_plugin import FuzzMark

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _wide_and_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whole summary lines (pytest cuts them to the terminal width).
    monkeypatch.setenv("COLUMNS", "400")
    # In-process runs restore sys.modules after each run; the built-in
    # scenarios must be imported before that, or a second import re-registers them,
    # and so must the coverage collector, or a second import makes a new class the
    # kernel's collector is no instance of.
    import panthor_testbed.fuzz.coverage  # noqa: F401
    from panthor_testbed.fuzz.scenario import builtin_scenarios

    builtin_scenarios()


# A user's scenario with a lost update; FIXED switches to the locked version.
COUNTER = '''
import pytest

from panthor_testbed.sched import (
    Atomic, InvariantViolation, Kernel, Mutex, atomic_read, atomic_set, mutex_lock, mutex_unlock,
)

FIXED = {fixed}


@pytest.mark.panthor_fuzz(runs=200{marker})
async def test_counter(k: Kernel, threads: int = 2) -> None:
    """two threads increment a shared counter"""
    counter = Atomic(0, "counter")
    lock = Mutex("counter_lock")

    async def incr() -> None:
        if FIXED:
            await mutex_lock(lock)
        v = await atomic_read(counter)
        await atomic_set(counter, v + 1)
        if FIXED:
            await mutex_unlock(lock)

    workers = [k.spawn(incr, name=f"incr-{{i}}") for i in range(threads)]
    for w in workers:
        await w.join()
    if counter.v != threads:
        raise InvariantViolation(f"counter is {{counter.v}} after {{threads}} increments")
'''


def write_counter(pytester: pytest.Pytester, *, fixed: bool, marker: str = "") -> Path:
    tests = pytester.path / "tests"
    tests.mkdir(exist_ok=True)
    path = tests / "test_counter.py"
    path.write_text(COUNTER.format(fixed=fixed, marker=marker))
    return path


def failures(pytester: pytest.Pytester, where: str = ".panthor-failures") -> list[str]:
    d = pytester.path / where
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


# ---------------------------------------------------------------------- marked tests


def test_a_buggy_scenario_fails_with_a_readable_report(pytester: pytest.Pytester) -> None:
    write_counter(pytester, fixed=False)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    # The one-line finding is the report's first line (so also the -r summary line).
    result.stdout.fnmatch_lines(
        [
            "*_ test_counter _*",
            "invariant: counter is 1 after 2 increments (at tests/test_counter.py:* in "
            "test_counter)",
            "tests/test_counter.py:test_counter: 1 failure in * runs (budget 200, seed 1, *",
            "FAILED tests/test_counter.py::test_counter - invariant: counter is 1 after 2 *",
        ]
    )
    # The shrunk interleaving: one column per thread, the failing step.
    result.stdout.fnmatch_lines(
        [
            "interleaving, shrunk in * runs to 1 preemption: at step * switch to T* incr-*",
            "*step T0 init*T1 incr-0*T2 incr-1",
            "*atomic_set counter 1*",
            "*FAIL invariant counter is 1*",
        ]
    )
    assert "Traceback" not in out.split("interleaving")[0].split("InvariantViolation")[-1]
    assert "pytest_plugin.py" not in out  # no traceback through the plugin
    # The replay files are where the report says, and replay outside pytest.
    (orig, small) = failures(pytester)
    assert small == orig.replace(".json", ".min.json")
    assert orig.startswith("test_counter-test_counter-")
    result.stdout.fnmatch_lines(
        [
            f"replay file: .panthor-failures/{orig}",
            f"shrunk:      .panthor-failures/{small}",
            f"  panthor-testbed replay .panthor-failures/{small} --trace",
        ]
    )
    rf = api.read_replay(pytester.path / ".panthor-failures" / small)
    assert rf.scenario == "tests/test_counter.py:test_counter"
    assert api.replay(rf, times=1).recurs


def test_the_fixed_scenario_passes(pytester: pytest.Pytester) -> None:
    write_counter(pytester, fixed=True)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert failures(pytester) == []


def test_each_seed_is_a_test_of_its_own_with_a_deterministic_name(
    pytester: pytest.Pytester,
) -> None:
    write_counter(pytester, fixed=False, marker=", seeds=[3, 7]")
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "tests/test_counter.py::test_counter[[]seed3[]] FAILED*",
            "tests/test_counter.py::test_counter[[]seed7[]] FAILED*",
        ]
    )
    first = failures(pytester)
    assert len(first) == 4  # a replay file and its shrunk one per seed
    shutil.rmtree(pytester.path / ".panthor-failures")
    pytester.runpytest("-p", "no:cacheprovider", "-k", "seed7").assert_outcomes(failed=1)
    assert set(failures(pytester)) < set(first)  # the same files, from that seed alone


def test_pytest_xdist_gives_the_same_results_and_files(pytester: pytest.Pytester) -> None:
    write_counter(pytester, fixed=False, marker=", seeds=[1, 2, 3, 4]")
    pytester.makepyfile(
        test_other="""
        def test_fixture(fuzz):
            fuzz("lost-update", runs=50, params={"fixed": True})
        """
    )
    serial = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    serial.assert_outcomes(failed=4, passed=1)
    files = failures(pytester)
    texts = {n: (pytester.path / ".panthor-failures" / n).read_text() for n in files}
    shutil.rmtree(pytester.path / ".panthor-failures")
    parallel = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    parallel.assert_outcomes(failed=4, passed=1)
    parallel.stdout.fnmatch_lines(["*created: 2/2 workers*"])
    assert failures(pytester) == files
    for n in files:  # byte for byte (paths inside are the same rootdir)
        assert (pytester.path / ".panthor-failures" / n).read_text() == texts[n]


def test_panthor_runs_overrides_the_budget(pytester: pytest.Pytester) -> None:
    write_counter(pytester, fixed=False)
    result = pytester.runpytest("-p", "no:cacheprovider", "--panthor-runs", "15")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*1 failure in * runs (budget 15, seed 1, strategy portfolio)"])


def test_failures_dir_and_shrinking_are_configurable(pytester: pytest.Pytester) -> None:
    write_counter(pytester, fixed=False)
    pytester.makeini("[pytest]\npanthor_failures = out/replays\npanthor_shrink_runs = 0\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["interleaving (as found):", "replay file: out/replays/*.json"])
    assert "shrunk" not in result.stdout.str()
    assert len(failures(pytester, "out/replays")) == 1
    # --panthor-failures wins, relative to where pytest was started.
    result = pytester.runpytest("-p", "no:cacheprovider", "--panthor-failures", "elsewhere")
    assert len(failures(pytester, "elsewhere")) == 1


def test_a_skip_mark_beside_the_fuzz_mark_applies(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.skip(reason="not today")
        @pytest.mark.panthor_fuzz(runs=5)
        async def test_skipped(k):
            raise AssertionError("never runs")
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(skipped=1)


def test_misuse_fails_the_test_with_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.panthor_fuzz(runs=5)
        def test_not_async(k):
            pass

        @pytest.mark.panthor_fuzz(runz=5)
        async def test_typo(k):
            pass

        @pytest.mark.panthor_fuzz(runs=5, params={"nope": 1})
        async def test_bad_param(k, threads: int = 2):
            pass

        @pytest.mark.panthor_fuzz(runs=5)
        async def test_no_default(k, threads: int):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines_random(
        [
            "FAILED *::test_not_async - @panthor_fuzz needs an async scenario function *",
            "FAILED *::test_typo - panthor_fuzz: unknown argument 'runz' (known: *",
            "FAILED *::test_bad_param - panthor_fuzz: --param nope: no selected scenario *",
            "FAILED *::test_no_default - scenario test_no_default: parameter 'threads' needs*",
        ]
    )


def test_marker_arguments_are_checked() -> None:
    assert FuzzMark.parse((), {"seed": 4}).seeds == (4,)
    assert FuzzMark.parse((), {"seeds": range(2)}).seeds == (0, 1)
    assert FuzzMark.parse((), {"inject": "x"}).inject == ("x",)
    bads: list[dict[str, object]] = [
        {"seeds": []},
        {"seeds": [1, 1]},
        {"seed": 1, "seeds": [2]},
        {"runs": 0},
    ]
    for bad in bads:
        with pytest.raises(ValueError):
            FuzzMark.parse((), bad)
    with pytest.raises(ValueError, match="keyword arguments only"):
        FuzzMark.parse((5,), {})


# ---------------------------------------------------------------------- the fuzz fixture


def test_the_fuzz_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from panthor_testbed.sched import Mutex, mutex_lock, mutex_unlock


        async def abba(k, inverted: bool = True):
            a, b = Mutex("A"), Mutex("B")

            async def fwd():
                await mutex_lock(a); await mutex_lock(b)
                await mutex_unlock(b); await mutex_unlock(a)

            async def back():
                x, y = (b, a) if inverted else (a, b)
                await mutex_lock(x); await mutex_lock(y)
                await mutex_unlock(y); await mutex_unlock(x)

            k.spawn(fwd, name="fwd")
            k.spawn(back, name="back")


        def test_clean(fuzz):
            result = fuzz(abba, runs=30, params={"inverted": False})
            assert result.runs == 30 and result.failures == 0


        def test_finds(fuzz):
            found = fuzz.find(abba, runs=300)
            assert found.failure["kind"] in ("lockdep", "deadlock")


        def test_find_nothing(fuzz):
            fuzz.find(abba, runs=10, params={"inverted": False})


        def test_buggy(fuzz):
            fuzz(abba, runs=300, seed=2)


        def test_builtin(fuzz):
            fuzz("lost-update", runs=100)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines_random(
        [
            "FAILED *::test_find_nothing - test_the_fuzz_fixture.py:abba: no failure in 10 runs *",
            "FAILED *::test_buggy - lockdep: *",
            "FAILED *::test_builtin - invariant: counter is 1 after 2 increments*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["*T* fwd*T* back*", "replay file: .panthor-failures/test_the_fuzz_fixture-abba-*.json"]
    )


def test_the_fuzz_fixture_in_a_trio_test(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(
        """
        async def test_async(fuzz):
            result = await fuzz.arun("lost-update", runs=20, params={"fixed": True})
            assert result.runs == 20
            found = await fuzz.afind("lost-update", runs=100)
            assert found.failure["kind"] == "invariant"


        async def test_async_buggy(fuzz):
            await fuzz.arun("lost-update", runs=100)


        async def test_forgot_await(fuzz):
            fuzz("lost-update", runs=10)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "FAILED *::test_async_buggy - invariant: counter is 1 *",
            "FAILED *::test_forgot_await - fuzz(...) cannot run inside a Trio test (it starts "
            "its own): use await fuzz.arun(...)",
        ]
    )


def test_marked_tests_work_in_trio_mode(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    write_counter(pytester, fixed=False)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["FAILED *::test_counter - invariant: counter is 1 *"])


# ---------------------------------------------------------------------- regression tests


def _found_and_kept(pytester: pytest.Pytester) -> Path:
    """Run the buggy test, keep its shrunk replay file under tests/replays/."""
    write_counter(pytester, fixed=False)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1)
    small = next(n for n in failures(pytester) if n.endswith(".min.json"))
    kept = pytester.path / "tests" / "replays" / "lost-counter.json"
    kept.parent.mkdir()
    shutil.copy(pytester.path / ".panthor-failures" / small, kept)
    shutil.rmtree(pytester.path / ".panthor-failures")
    return kept


def test_a_saved_replay_fails_while_the_bug_is_there_and_passes_once_fixed(
    pytester: pytest.Pytester,
) -> None:
    kept = _found_and_kept(pytester)
    # Alone (the test module is not imported: the file finds it under the rootdir).
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf", "tests/replays")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ replay lost-counter.json _*",
            "tests/replays/lost-counter.json: the recorded failure still happens: invariant: "
            "counter is 1 after 2 increments*",
            "interleaving:",
            "*step T0 init*T1 incr-0*T2 incr-1",
            "*panthor-testbed replay tests/replays/lost-counter.json --trace",
            "FAILED tests/replays/lost-counter.json::replay - *still happens*",
        ]
    )
    # With the whole suite (the module pytest imported is the one replayed).
    write_counter(pytester, fixed=False, marker=", seeds=[5]")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=2)
    shutil.rmtree(pytester.path / ".panthor-failures")
    # The fix: the schedule no longer fits (the lock adds yield points) and the run passes.
    write_counter(pytester, fixed=True)
    result = pytester.runpytest("-p", "no:cacheprovider", "--junitxml=out.xml", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["tests/replays/lost-counter.json::replay PASSED*"])
    xml = (pytester.path / "out.xml").read_text()
    assert 'name="panthor_schedule" value="by thread identity up to step' in xml
    assert kept.exists() and failures(pytester) == []


def test_a_saved_replay_fails_when_the_run_fails_differently(pytester: pytest.Pytester) -> None:
    _found_and_kept(pytester)
    # A "fix" that takes the lock and never releases it: the counter is right
    # for the first thread only, the second waits forever.
    path = pytester.path / "tests" / "test_counter.py"
    text = path.read_text().replace("FIXED = False", "FIXED = True")
    text = text.replace("        if FIXED:\n            await mutex_unlock(lock)\n", "")
    path.write_text(text)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf", "tests/replays")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "tests/replays/lost-counter.json: the recorded failure (invariant: counter is 1 after"
            " 2 increments*) is gone, but the run fails differently: deadlock: *",
        ]
    )


def test_a_broken_replay_file_is_a_failing_test(pytester: pytest.Pytester) -> None:
    d = pytester.path / "tests" / "replays"
    d.mkdir(parents=True)
    (d / "bad.json").write_text("{not json")
    (d / "edited.json").write_text(json.dumps({"format": 2, "checksum": "sha256:0"}))
    (d / "notes.txt").write_text("not collected")
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "FAILED tests/replays/bad.json::replay - cannot replay tests/replays/bad.json: not "
            "JSON (Expecting property name enclosed in double quotes at line 1)",
            "FAILED tests/replays/edited.json::replay - cannot replay tests/replays/edited.json: "
            "checksum mismatch, the file was modified *",
        ]
    )


def test_replay_patterns_are_configurable_and_other_json_is_left_alone(
    pytester: pytest.Pytester,
) -> None:
    kept = _found_and_kept(pytester)
    (pytester.path / "data.json").write_text("{}")  # an unrelated JSON file
    moved = pytester.path / "regressions" / "counter.json"
    moved.parent.mkdir()
    shutil.move(kept, moved)
    pytester.makeini("[pytest]\npanthor_replays =\n    regressions/*.json\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["regressions/counter.json::replay"])
    assert "data.json" not in result.stdout.str()
    # A file named on the command line is collected whatever the patterns.
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q", "data.json")
    result.stdout.fnmatch_lines(["data.json::replay"])


def test_a_replay_of_a_builtin_scenario_is_a_regression_test(pytester: pytest.Pytester) -> None:
    d = pytester.path / "tests" / "replays"
    found = api.fuzz("lost-update", runs=100, out=str(d))
    assert found.failures == 1
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1)


def test_the_plugin_is_registered_by_its_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.panthor_fuzz(runs=200, seeds=[[]1[]], *"])
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--panthor-runs=N*", "*panthor_replays (linelist)*"])


def test_a_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\npanthor_shrink_runs = lots\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*panthor_shrink_runs: expected an integer, got 'lots'"])


# ---------------------------------------------------------------------- the docs


DOC = Path(__file__).resolve().parents[2] / "docs" / "pytest-plugin.md"


def _doc_blocks(lang: str) -> list[str]:
    """The doc's fenced blocks of one language ("" for plain ones), in order."""
    blocks: list[str] = []
    fence: str | None = None
    body: list[str] = []
    for line in DOC.read_text().splitlines():
        if fence is None and line.startswith("```"):
            fence, body = line[3:], []
        elif fence is not None and line == "```":
            if fence == lang:
                blocks.append("\n".join(body) + "\n")
            fence = None
        elif fence is not None:
            body.append(line)
    return blocks


def test_the_documented_scenario_test_fails_as_the_doc_shows(pytester: pytest.Pytester) -> None:
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_counter.py").write_text(_doc_blocks("python")[0])
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    shown = _doc_blocks("")[0].splitlines()
    patterns = [
        "*_ test_counter[[]seed1[]] _*" if line.startswith("___") else _glob(line) for line in shown
    ]
    result.stdout.fnmatch_lines(patterns, consecutive=True)


def _glob(line: str) -> str:
    return line.replace("[", "[[]").replace("...", "*")


def test_the_documented_fixture_examples_pass(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_doc=_doc_blocks("python")[1])
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3)
