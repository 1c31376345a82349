"""The pytest plugin: scenarios kept as tests, replay files kept as regression tests.

Loaded by pytest through the ``pytest11`` entry point (``docs/pytest-plugin.md``)::

    import pytest
    from panthor_testbed.sched import Kernel

    @pytest.mark.panthor_fuzz(runs=300, seeds=[1, 2], params={"threads": 2})
    async def test_counter(k: Kernel, threads: int = 2) -> None:
        ...  # spawn simulated threads, as any scenario does

Each seed of a marked async function is one test (``test_counter[seed1]``)
that fuzzes the function as a scenario with that campaign seed and budget;
a finding fails it with the one-line finding, the (shrunk) interleaving and
the replay file, saved under ``panthor_failures`` (default
``.panthor-failures/`` in the rootdir). The ``fuzz`` fixture does the same
from inside an ordinary test. A replay file matching ``panthor_replays``
(default ``tests/replays/*.json``) is a test of its own: it fails while the
run under the recorded schedule still fails, and passes once it is clean.

Nothing is shared between tests or between pytest-xdist workers: every
campaign, shrink and replay runs in the test's own process from its own
seed, and the files a test writes are named after its scenario and run seed.

This module is imported whenever pytest starts in an environment where
panthor-testbed is installed, so it loads no model code until a test needs it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
import os
import sys
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .campaign import CampaignResult, Found
    from .interleaving import Interleaving
    from .replayer import ReplayReport
    from .replayfile import ReplayFile
    from .scenario import Scenario

MARK = "panthor_fuzz"
DEFAULT_RUNS = 200
DEFAULT_FAILURES = ".panthor-failures"
DEFAULT_REPLAYS = ("tests/replays/*.json",)
DEFAULT_SHRINK_RUNS = 200
DEFAULT_TRACE_ROWS = 100

__all__ = [
    "DEFAULT_FAILURES",
    "DEFAULT_REPLAYS",
    "DEFAULT_RUNS",
    "MARK",
    "Fuzz",
    "FuzzFailure",
    "FuzzFunction",
    "FuzzMark",
    "ReplayFileTest",
    "ReplayTest",
]


class FuzzFailure(Exception):
    """A test of this plugin failed: the message is the whole, readable report."""


# ---------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("panthor-testbed", "panthor-testbed scenario fuzzing")
    group.addoption(
        "--panthor-runs",
        type=int,
        metavar="N",
        default=None,
        help="runs per seed for every panthor_fuzz test and fuzz fixture call "
        "(overrides the marker's runs=, e.g. a bigger nightly budget)",
    )
    group.addoption(
        "--panthor-failures",
        metavar="DIR",
        default=None,
        help=f"where failing tests save replay files (default: the panthor_failures "
        f"ini value, {DEFAULT_FAILURES}/ in the rootdir)",
    )
    parser.addini(
        "panthor_failures",
        "directory (relative to the rootdir) for the replay files of failing panthor_fuzz tests",
        default=DEFAULT_FAILURES,
    )
    parser.addini(
        "panthor_replays",
        "glob patterns (relative to the rootdir) of replay files collected as regression tests",
        type="linelist",
        default=list(DEFAULT_REPLAYS),
    )
    parser.addini(
        "panthor_shrink_runs",
        "executions spent shrinking a failing test's schedule before it is shown (0: none)",
        default=str(DEFAULT_SHRINK_RUNS),
    )
    parser.addini(
        "panthor_trace_rows",
        "events of the interleaving table shown under a failure (the last ones; 0: all)",
        default=str(DEFAULT_TRACE_ROWS),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARK}(runs={DEFAULT_RUNS}, seeds=[1], strategy='portfolio', params=None, ...): "
        "fuzz this async scenario function (it takes the Kernel) with a fixed budget; "
        "see docs/pytest-plugin.md",
    )
    _settings(config)  # a bad option is a usage error now, not a failure in every test


@dataclass(frozen=True)
class _Settings:
    failures: Path
    runs: int | None  # --panthor-runs
    shrink_runs: int
    trace_rows: int | None
    rootpath: Path
    invocation_dir: Path


def _settings(config: pytest.Config) -> _Settings:
    root = Path(config.rootpath)
    raw = config.getoption("panthor_failures") or str(config.getini("panthor_failures"))
    failures = Path(raw)
    if config.getoption("panthor_failures") is not None:
        failures = Path(config.invocation_params.dir) / failures  # as typed on the command line
    elif not failures.is_absolute():
        failures = root / failures
    runs = config.getoption("panthor_runs")
    if runs is not None and runs < 1:
        raise pytest.UsageError(f"--panthor-runs: expected a positive integer, got {runs}")
    return _Settings(
        failures=failures,
        runs=runs,
        shrink_runs=_ini_int(config, "panthor_shrink_runs"),
        trace_rows=_ini_int(config, "panthor_trace_rows") or None,
        rootpath=root,
        invocation_dir=Path(config.invocation_params.dir),
    )


def _ini_int(config: pytest.Config, name: str) -> int:
    raw = str(config.getini(name)).strip()
    try:
        value = int(raw)
    except ValueError:
        raise pytest.UsageError(f"ini option {name}: expected an integer, got {raw!r}") from None
    if value < 0:
        raise pytest.UsageError(f"ini option {name}: expected an integer >= 0, got {value}")
    return value


# ---------------------------------------------------------------------- the marker


@dataclass(frozen=True)
class FuzzMark:
    """The arguments of ``@pytest.mark.panthor_fuzz`` (and of the ``fuzz`` fixture)."""

    runs: int = DEFAULT_RUNS
    seeds: tuple[int, ...] = (1,)
    strategy: str = "portfolio"
    depth: int = 3
    params: Mapping[str, Any] | None = None
    inject: tuple[str, ...] = ()
    patch: tuple[str, ...] = ()
    config: Mapping[str, Any] | None = None
    time_budget: float | None = None
    keep_going: bool = False
    witness_runs: int = 200
    shrink_runs: int | None = None  # None: the panthor_shrink_runs ini value
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, args: Sequence[Any], kwargs: Mapping[str, Any]) -> FuzzMark:
        """Checked marker arguments (ValueError with one line)."""
        if args:
            raise ValueError(f"{MARK} takes keyword arguments only, got {args!r}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra", "seeds"} | {"seed", "seeds"}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ValueError(
                f"{MARK}: unknown argument {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        kw = dict(kwargs)
        if "seed" in kw and "seeds" in kw:
            raise ValueError(f"{MARK}: give seed= or seeds=, not both")
        seeds: tuple[int, ...] = (1,)
        if "seed" in kw:
            seeds = (kw.pop("seed"),)
        elif "seeds" in kw:
            raw = kw.pop("seeds")
            if isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
                raise ValueError(f"{MARK}: seeds= must be a list of integers, got {raw!r}")
            seeds = tuple(raw)
        if not seeds:
            raise ValueError(f"{MARK}: seeds= is empty")
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ValueError(f"{MARK}: a seed must be a non-negative integer, got {s!r}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{MARK}: seeds= repeats a seed: {list(seeds)}")
        for name in ("inject", "patch"):
            if name in kw:
                value = kw[name]
                kw[name] = (value,) if isinstance(value, str) else tuple(value)
        runs = kw.get("runs", DEFAULT_RUNS)
        if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
            raise ValueError(f"{MARK}: runs= must be a positive integer, got {runs!r}")
        return cls(seeds=seeds, **kw)


def _fuzz_marks(obj: object) -> list[pytest.Mark]:
    marks = getattr(obj, "pytestmark", [])
    if isinstance(marks, pytest.Mark):
        marks = [marks]
    if not isinstance(marks, list):
        return []
    return [m for m in marks if isinstance(m, pytest.Mark) and m.name == MARK]


class FuzzFunction(pytest.Function):
    """One seed of a marked scenario function: the test body runs its campaign.

    A pytest Function (so skip/xfail marks, ``-k``, ``-m``, autouse fixtures
    and xdist work as usual) whose callable is the campaign; the scenario
    function itself is never called by pytest (it takes the Kernel, not
    fixtures) and it reports its own location.
    """

    scenario_fn: Callable[..., Any] | None = None

    def reportinfo(self) -> tuple[os.PathLike[str] | str, int | None, str]:
        fn = self.scenario_fn
        if fn is None:
            return super().reportinfo()
        try:
            line: int | None = inspect.getsourcelines(fn)[1] - 1
        except (OSError, TypeError):
            line = None
        return self.path, line, self.name


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> list[pytest.Item] | None:
    marks = _fuzz_marks(obj)
    if not marks or not collector.funcnamefilter(name) or not callable(obj):
        return None
    problem = ""
    spec: FuzzMark | None = None
    if len(marks) > 1:
        problem = f"{name} has {len(marks)} @{MARK} marks; give one (seeds=[...] for several)"
    elif not inspect.iscoroutinefunction(obj):
        problem = f"@{MARK} needs an async scenario function taking the Kernel; {name} is not async"
    elif not isinstance(collector, pytest.Module):
        problem = (
            f"@{MARK} scenario functions must be module-level functions ({name} is in a class)"
        )
    else:
        try:
            spec = FuzzMark.parse(marks[0].args, marks[0].kwargs)
        except ValueError as exc:
            problem = str(exc)
    if spec is None:
        return [_item(collector, name, obj, lambda: _fail(problem))]
    fn: Callable[..., Any] = obj
    many = len(spec.seeds) > 1
    items: list[pytest.Item] = []
    for seed in spec.seeds:
        test_name = f"{name}[seed{seed}]" if many else name

        def body(
            fn: Callable[..., Any] = fn, seed: int = seed, config: Any = collector.config
        ) -> None:
            _run_marked(config, fn, spec, seed)

        items.append(_item(collector, test_name, obj, body))
    return items


def _item(
    collector: pytest.Module | pytest.Class, name: str, obj: object, body: Callable[..., None]
) -> pytest.Item:
    # The body takes no fixtures: hide its defaults (captured values) from pytest.
    def test() -> None:
        body()

    test.pytestmark = list(getattr(obj, "pytestmark", []))  # type: ignore[attr-defined]
    test.__doc__ = getattr(obj, "__doc__", None)
    # No originalname: pytest 9 builds the node id from it plus a callspec
    # this item does not have, which would drop the "[seedN]".
    item = FuzzFunction.from_parent(collector, name=name, callobj=test)
    item.scenario_fn = obj if callable(obj) else None
    return item


def _fail(message: str) -> None:
    raise FuzzFailure(message)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A FuzzFailure is the whole report: no traceback through this plugin."""
    rep = yield
    message = _fuzz_message(call.excinfo.value) if call.excinfo is not None else None
    if message is not None and rep.failed:
        rep.longrepr = message
    return rep


def _fuzz_message(exc: BaseException) -> str | None:
    """The report of a FuzzFailure, also when a Trio nursery wrapped it in a group."""
    if isinstance(exc, FuzzFailure):
        return str(exc)
    if isinstance(exc, BaseExceptionGroup):
        leaves = [_fuzz_message(e) for e in exc.exceptions]
        if leaves and all(m is not None for m in leaves):
            return "\n\n".join(m for m in leaves if m is not None)
    return None


def _run_marked(config: pytest.Config, fn: Callable[..., Any], spec: FuzzMark, seed: int) -> None:
    import trio

    settings = _settings(config)
    scenario = _scenario_of(fn, settings.rootpath)
    trio.run(_afuzz_checked, settings, scenario, spec, seed)


# ---------------------------------------------------------------------- campaigns


def _scenario_of(fn: Callable[..., Any], rootpath: Path) -> Scenario:
    """A scenario of ``fn`` that a replay file can find again from outside pytest.

    A module-level function is named ``path/from/rootdir.py:function``, as
    ``panthor-testbed fuzz`` names a user's scenario, and its file is recorded
    in the replay file; a nested one has no such name (its files replay with
    ``--scenario``).
    """
    from .errors import ScenarioError
    from .scenario import ScenarioSource, from_function

    name = getattr(fn, "__name__", "scenario")
    qual = getattr(fn, "__qualname__", name)
    try:
        path = inspect.getsourcefile(fn)
    except TypeError:
        path = None
    if path is None or qual != name:
        try:
            return from_function(fn, name=qual)
        except ScenarioError as exc:
            raise FuzzFailure(str(exc)) from None
    path = os.path.abspath(path)
    rel = path
    for base in (rootpath, Path(os.path.realpath(rootpath))):
        for p in (Path(path), Path(os.path.realpath(path))):
            try:
                rel = p.relative_to(base).as_posix()
                break
            except ValueError:
                continue
        if rel != path:
            break
    try:
        return from_function(
            fn, name=f"{rel}:{name}", source=ScenarioSource("file", name, path=path)
        )
    except ScenarioError as exc:
        raise FuzzFailure(str(exc)) from None


def _resolve(scenario: Any, rootpath: Path) -> Scenario:
    from . import api
    from .errors import InputError
    from .scenario import Scenario as ScenarioClass

    if callable(scenario) and not isinstance(scenario, (str, ScenarioClass)):
        return _scenario_of(scenario, rootpath)
    try:
        return api.resolve_scenario(scenario)
    except InputError as exc:
        raise FuzzFailure(str(exc)) from None


async def _afuzz(
    settings: _Settings, scenario: Scenario, spec: FuzzMark, seed: int
) -> CampaignResult:
    from . import api
    from .errors import InputError

    try:
        return await api.afuzz(
            scenario,
            runs=settings.runs or spec.runs,
            time_budget=spec.time_budget,
            strategy=spec.strategy,
            seed=seed,
            depth=spec.depth,
            params=spec.params,
            inject=spec.inject,
            patch=spec.patch,
            config=spec.config,
            keep_going=spec.keep_going,
            witness_runs=spec.witness_runs,
        )
    except InputError as exc:
        raise FuzzFailure(f"{MARK}: {exc}") from None


async def _afuzz_checked(
    settings: _Settings, scenario: Scenario, spec: FuzzMark, seed: int
) -> CampaignResult:
    result = await _afuzz(settings, scenario, spec, seed)
    if result.failures:
        raise FuzzFailure(await _failure_report(settings, scenario, spec, seed, result))
    return result


async def _failure_report(
    settings: _Settings, scenario: Scenario, spec: FuzzMark, seed: int, result: CampaignResult
) -> str:
    """The one-line finding, the interleaving table and the replay path of each failure."""
    from .interleaving import ainterleaving, min_path
    from .replayfile import replay_name

    found = [f for s in result.scenarios for f in s.failures]
    runs = result.runs
    budget = settings.runs or spec.runs
    first = found[0].failure
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    lines = [
        f"{first['kind']}: {first['message']}{more}",
        f"{scenario.name}: {len(found)} failure{'s' if len(found) != 1 else ''} in {runs} "
        f"run{'s' if runs != 1 else ''} (budget {budget}, seed {seed}, strategy {spec.strategy})",
    ]
    shrink_runs = settings.shrink_runs if spec.shrink_runs is None else spec.shrink_runs
    for f in found:
        assert f.replay_file is not None
        path = settings.failures / replay_name(scenario.name, f.seed)
        saved = _save(f.replay_file, path)
        shown = await ainterleaving(
            f.replay_file, scenario=scenario, shrink_runs=shrink_runs, last=settings.trace_rows
        )
        min_saved = ""
        if shown.shrunk:
            min_saved = _save(shown.shown, Path(min_path(str(path))))
        witness = ""
        if f.witness_file is not None:
            witness = _save(f.witness_file, Path(str(path)[: -len(".json")] + ".witness.json"))
        lines += _describe_found(f, shown, saved, min_saved, witness, settings)
    return "\n".join(lines)


def _save(rf: ReplayFile, path: Path) -> str:
    from . import api
    from .errors import InputError

    try:
        return api.write_replay(rf, path)
    except InputError as exc:
        return f"(not saved: {exc})"


def _describe_found(
    f: Found, shown: Interleaving, saved: str, min_saved: str, witness: str, settings: _Settings
) -> list[str]:
    from .cli import PROG
    from .interleaving import display_path

    base = str(settings.invocation_dir)
    lines = [
        "",
        f"{f.failure['kind']}: {f.failure['message']}",
        f"  found by run {f.run} (run seed {f.seed})",
    ]
    if shown.message and shown.message != f.failure["message"]:
        # Same kind and signature (what shrinking keeps), another message.
        lines.append(f"  the run shown below fails with: {shown.kind}: {shown.message}")
    if shown.report:
        lines += ["", *_indent(shown.report.rstrip())]
    if shown.shrunk:
        how = f" in {shown.shrink_runs} runs" if shown.shrink_runs else ""
        lines += ["", f"interleaving, shrunk{how} to {shown.summary}:"]
    else:
        lines += ["", "interleaving (as found):"]
        if shown.note:
            lines.append(f"  ({shown.note})")
    lines += shown.table.splitlines()
    keep = min_saved or saved
    if not saved.startswith("(not saved"):
        saved = display_path(saved, base)
    lines += ["", f"replay file: {saved}"]
    if min_saved and not min_saved.startswith("(not saved"):
        keep = display_path(min_saved, base)
        lines.append(f"shrunk:      {keep}")
    if not keep.startswith("(not saved"):
        lines.append(f"  {PROG} replay {keep} --trace")
        lines.append(
            "  keep it as a regression test: copy it under tests/replays/ (docs/pytest-plugin.md)"
        )
    if witness:
        lines.append(f"witness (a schedule where it deadlocks): {display_path(witness, base)}")
    return lines


def _indent(text: str) -> list[str]:
    return ["  " + line if line else "" for line in text.splitlines()]


# ---------------------------------------------------------------------- the fuzz fixture


class Fuzz:
    """The ``fuzz`` fixture: fuzz a scenario from inside a test.

    ``fuzz(scenario, runs=..., seed=..., ...)`` runs a campaign (the marker's
    arguments, ``seed`` for one seed) and fails the test with the same
    report as a marked test on a finding; it returns the CampaignResult
    when nothing was found. ``fuzz.find(...)`` is the converse, for a test
    that a bug is found: it returns the first :class:`Found` and fails the
    test if the budget found nothing. ``arun`` / ``afind`` are the same
    inside a Trio test (pytest-trio).
    """

    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    def _prepare(
        self, scenario: Any, kwargs: dict[str, Any]
    ) -> tuple[_Settings, Scenario, FuzzMark, int]:
        settings = _settings(self._config)
        try:
            spec = FuzzMark.parse((), kwargs)
        except ValueError as exc:
            raise FuzzFailure(str(exc).replace(MARK, "fuzz")) from None
        if len(spec.seeds) != 1:
            raise FuzzFailure("fuzz: one seed per call (seed=N); call it once per seed")
        return settings, _resolve(scenario, settings.rootpath), spec, spec.seeds[0]

    def __call__(self, scenario: Any, **kwargs: Any) -> CampaignResult:
        import trio

        settings, sc, spec, seed = self._prepare(scenario, kwargs)
        _not_in_trio("fuzz(...)", "await fuzz.arun(...)")
        result: CampaignResult = trio.run(_afuzz_checked, settings, sc, spec, seed)
        return result

    async def arun(self, scenario: Any, **kwargs: Any) -> CampaignResult:
        settings, sc, spec, seed = self._prepare(scenario, kwargs)
        return await _afuzz_checked(settings, sc, spec, seed)

    def find(self, scenario: Any, **kwargs: Any) -> Found:
        import trio

        settings, sc, spec, seed = self._prepare(scenario, kwargs)
        _not_in_trio("fuzz.find(...)", "await fuzz.afind(...)")
        found: Found = trio.run(_afind, settings, sc, spec, seed)
        return found

    async def afind(self, scenario: Any, **kwargs: Any) -> Found:
        settings, sc, spec, seed = self._prepare(scenario, kwargs)
        return await _afind(settings, sc, spec, seed)


def _not_in_trio(call: str, instead: str) -> None:
    import trio

    if trio.lowlevel.in_trio_run():
        raise FuzzFailure(
            f"{call} cannot run inside a Trio test (it starts its own): use {instead}"
        )


async def _afind(settings: _Settings, scenario: Scenario, spec: FuzzMark, seed: int) -> Found:
    result = await _afuzz(settings, scenario, spec, seed)
    for s in result.scenarios:
        if s.failures:
            return s.failures[0]
    raise FuzzFailure(
        f"{scenario.name}: no failure in {result.runs} runs (seed {seed}, "
        f"strategy {spec.strategy}); expected one"
    )


@pytest.fixture
def fuzz(request: pytest.FixtureRequest) -> Fuzz:
    """Fuzz a scenario from a test: ``fuzz(my_scenario, runs=300)`` (docs/pytest-plugin.md)."""
    return Fuzz(request.config)


# ---------------------------------------------------------------------- replay files


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".json" or file_path.name == "campaign.json":
        return None  # campaign.json: what `fuzz --out DIR` writes beside its replay files
    config = parent.config
    if parent.session.isinitpath(file_path) or _matches(file_path, config):
        collected: ReplayFileTest = ReplayFileTest.from_parent(parent, path=file_path)
        return collected
    return None


def _matches(path: Path, config: pytest.Config) -> bool:
    try:
        rel = path.resolve().relative_to(Path(config.rootpath).resolve()).as_posix()
    except ValueError:
        return False
    patterns = [str(p) for p in config.getini("panthor_replays")]
    return any(fnmatch.fnmatchcase(rel, p) for p in patterns)


class ReplayFileTest(pytest.File):
    """A replay file in the repository: one regression test, ``FILE::replay``."""

    def collect(self) -> Iterable[pytest.Item]:
        yield ReplayTest.from_parent(self, name="replay")


class ReplayTest(pytest.Item):
    """Re-runs a saved replay file; it asserts the run under the recorded schedule is clean.

    Fails while a failure of the recorded kind and signature recurs (what
    ``panthor-testbed replay`` exits 1 for) and also when the run fails in
    any other way; passes when the run completes with no failure. On changed
    code the schedule is followed by thread identity as far as it fits
    (docs/replay-files.md), then canonically.
    """

    # pytest-trio's trio_mode looks at every item's ``obj`` (as DoctestItem has).
    obj: object = None

    def runtest(self) -> None:
        import trio

        trio.run(self._arun)

    async def _arun(self) -> None:
        from . import api
        from .errors import InputError
        from .interleaving import display_path

        settings = _settings(self.config)
        shown_path = display_path(str(self.path), str(settings.invocation_dir))
        try:
            rf = api.read_replay(self.path)
            scenario = _replay_scenario(rf, settings.rootpath)
            report = await api.areplay(rf, times=1, scenario=scenario)
        except InputError as exc:
            why = str(exc).replace(str(self.path), shown_path)
            if shown_path not in why:
                why = f"{shown_path}: {why}"
            raise FuzzFailure(f"cannot replay {why}") from None
        k = report.last
        f = k.primary_failure
        # How far the recorded schedule fitted: in --junitxml output and
        # `report.user_properties` (a fix usually moves the schedule, so this
        # is no warning: see docs/pytest-plugin.md for what a pass means).
        d = report.divergence
        followed = "exact" if d is None else f"by thread identity up to step {d.step}"
        self.user_properties.append(("panthor_schedule", followed))
        if f is None:
            return
        raise FuzzFailure(_replay_failure(shown_path, rf, report, settings))

    def reportinfo(self) -> tuple[os.PathLike[str] | str, int | None, str]:
        return self.path, None, f"replay {self.path.name}"


def _replay_failure(
    shown_path: str, rf: ReplayFile, report: ReplayReport, settings: _Settings
) -> str:
    from .cli import PROG

    k = report.last
    f = k.primary_failure
    assert f is not None
    want = f"{rf.failure.get('kind')}: {rf.failure.get('message')}"
    if report.recurs:
        head = f"{shown_path}: the recorded failure still happens: {f.kind}: {f.message}"
    else:
        head = (
            f"{shown_path}: the recorded failure ({want}) is gone, but the run fails "
            f"differently: {f.kind}: {f.message}"
        )
    lines = [head]
    d = report.divergence
    if d is not None:
        lines.append(f"  (the recorded schedule no longer fits from step {d.step}: {d.why})")
    if f.report:
        lines += ["", *_indent(f.report.rstrip())]
    lines += ["", "interleaving:", *k.trace.render_table(last=settings.trace_rows).splitlines()]
    lines += ["", f"  {PROG} replay {shown_path} --trace"]
    return "\n".join(lines)


def _replay_scenario(rf: ReplayFile, rootpath: Path) -> Scenario | str | None:
    """The scenario of a replay file saved by a test of this repository.

    A test's scenario is named ``path/from/rootdir.py:function``: that file is
    looked for under the rootdir first (the absolute path recorded on another
    machine and the path relative to where the file was saved are wrong once
    the file is committed), taking the function from the module pytest
    already imported when there is one (so a test module with relative
    imports works). Anything else is found as ``panthor-testbed replay`` does.
    """
    src = rf.source
    if src is None or src.get("kind") != "file":
        return None
    where, _, func = rf.scenario.rpartition(":")
    func = src.get("function", func)
    for cand in (rootpath / where, Path(src.get("path", "") or where)):
        if not cand.is_file():
            continue
        fn = _imported(cand, func)
        if fn is not None:
            from .scenario import ScenarioSource, from_function

            return from_function(
                fn, name=rf.scenario, source=ScenarioSource("file", func, path=str(cand.resolve()))
            )
        return f"{cand}:{func}"
    return None


def _imported(path: Path, func: str) -> Callable[..., Any] | None:
    target = path.resolve()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or not file.endswith(".py"):
            continue
        try:
            if Path(file).resolve() != target:
                continue
        except OSError:
            continue
        fn = getattr(module, func, None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return None
