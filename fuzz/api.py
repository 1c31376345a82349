"""The Python API of campaigns: what the ``panthor-testbed`` command runs.

    from panthor_testbed.fuzz import fuzz, replay, shrink, read_replay

    result = fuzz("lost-update", runs=500, seed=3)          # a CampaignResult
    found = result.scenarios[0].failures[0]
    report = replay(found.replay_file)                       # a ReplayReport
    assert report.recurs
    small = shrink(found.replay_file)                        # a ShrinkResult
    print(small.summary())

Every function validates its arguments as the command does (an
:class:`InputError`, a ValueError, with the one line the command prints) and
the command calls these functions, so the two cannot drift. ``fuzz``,
``replay``, ``shrink`` and ``explore`` start their own ``trio.run``; inside
Trio (pytest-trio) use ``afuzz``, ``areplay``, ``ashrink``, ``aexplore``.

By default nothing is written to disk: findings carry their
:class:`ReplayFile` (``Found.replay_file``); pass ``out="failures"`` to save
them as the command does.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import trio

from .bugs import ensure_installed, selection
from .campaign import (
    CampaignOptions,
    CampaignResult,
    Found,
    ProgressSink,
    ScenarioResult,
    run_campaign,
    run_until_interrupted,
)
from .cli import STRATEGIES
from .engine import DaskEngine, Engine, SpecRef
from .errors import (
    InputError,
    OutputError,
    ReplayFileError,
    ScenarioError,
    ShrinkError,
    check_output_dir,
    check_output_file,
    describe_os_error,
    remove_if_empty,
)
from .explorer import ExploreSummary, explore_scenario
from .replayer import ReplayReport, find_scenario
from .replayer import replay as _replay
from .replayfile import ReplayFile
from .runner import RunSpec
from .scenario import Range, Scenario, ScenarioInfo, builtin_index, from_function, get_scenario
from .shrinker import ShrinkResult
from .shrinker import shrink as _shrink

__all__ = [
    "CampaignResult",
    "ExploreSummary",
    "Found",
    "InputError",
    "Interrupted",
    "OutputError",
    "ProgressSink",
    "Range",
    "ReplayFile",
    "ReplayFileError",
    "ReplayReport",
    "Scenario",
    "ScenarioError",
    "ScenarioInfo",
    "ScenarioResult",
    "ShrinkError",
    "ShrinkResult",
    "aexplore",
    "afuzz",
    "areplay",
    "ashrink",
    "explore",
    "fuzz",
    "list_scenarios",
    "read_replay",
    "replay",
    "resolve_scenario",
    "shrink",
    "write_replay",
]


ScenarioLike = str | Scenario | Callable[..., Awaitable[Any]]
Params = Mapping[str, Any] | Sequence[str] | None


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a campaign or a search; ``result`` is what was done so far
    (every failure found is in it and, with ``out``, already on disk)."""

    def __init__(self, result: CampaignResult | ExploreSummary) -> None:
        super().__init__()
        self.result = result


# ---------------------------------------------------------------------- scenarios


_T = TypeVar("_T")


def _trio_run(fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
    """``trio.run``, then the catalogue code the runs installed is taken out again
    (runs in a row keep it; a caller's own use of the model afterwards must not see it)."""
    try:
        return trio.run(fn, *args)
    finally:
        ensure_installed(frozenset(), frozenset())


def list_scenarios() -> list[ScenarioInfo]:
    """The built-in scenarios' names, descriptions and parameters (loads no model code)."""
    return builtin_index()


def resolve_scenario(scenario: ScenarioLike) -> Scenario:
    """A built-in name, ``path/file.py:function``, ``package.module:function``,
    a Scenario, or an async function taking the Kernel."""
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, str):
        return get_scenario(scenario)
    if callable(scenario):
        return from_function(scenario)
    raise ScenarioError(f"not a scenario: {scenario!r}")


def _param_items(params: Params) -> list[tuple[str, Any, bool]]:
    """(name, value, is NAME=VALUE text) for each parameter setting, in order."""
    if params is None:
        return []
    if isinstance(params, Mapping):
        return [(str(n), v, False) for n, v in params.items()]
    items: list[tuple[str, Any, bool]] = []
    for pair in params:
        if "=" not in pair:
            raise ScenarioError(f"--param {pair!r}: expected NAME=VALUE")
        name, raw = pair.split("=", 1)
        items.append((name, raw, True))
    return items


def _set(sc: ScenarioInfo, name: str, value: Any, textual: bool) -> Any:
    return sc.convert(name, value) if textual else sc.check({name: value})[name]


def bind_params(scs: Sequence[ScenarioInfo], params: Params) -> list[dict[str, Any]]:
    """Apply each parameter to every scenario that has it (NAME=VALUE strings or values).

    Later settings of the same name win; the others keep what they were.
    A parameter no selected scenario has is an error.
    """
    bound: list[dict[str, Any]] = [dict(sc.params) for sc in scs]
    for name, value, textual in _param_items(params):
        hit = False
        for i, sc in enumerate(scs):
            if name in sc.params:
                bound[i][name] = _set(sc, name, value, textual)
                hit = True
        if not hit:
            names = ", ".join(sc.name for sc in scs)
            raise ScenarioError(f"--param {name}: no selected scenario ({names}) has it")
    return bound


def _overrides(sc: ScenarioInfo, params: Params) -> dict[str, Any]:
    """Only the parameters ``params`` names, converted and checked for ``sc``."""
    return {name: _set(sc, name, value, textual) for name, value, textual in _param_items(params)}


def _inject(inject: Iterable[str], patch: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """Checked catalogue selections: pre-seed bugs to inject, latent ones to patch (or all)."""
    return selection(inject, patch)


def _positive(name: str, value: int | None, low: int = 1) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        what = "a positive" if low == 1 else "a non-negative"
        raise InputError(f"{name}: expected {what} integer, got {value!r}")


# ---------------------------------------------------------------------- fuzz


def _campaign(
    scenarios: ScenarioLike | Sequence[ScenarioLike] | None,
    *,
    runs: int | None,
    time_budget: float | None,
    strategy: str,
    seed: int,
    depth: int,
    params: Params,
    inject: Iterable[str],
    patch: Iterable[str],
    config: Mapping[str, Any] | None,
    out: str | None,
    keep_going: bool,
    witness_runs: int,
    jobs: int,
    scheduler: str | None = None,
    example_db: str | None = None,
) -> tuple[list[RunSpec], CampaignOptions]:
    _positive("runs", runs)
    _positive("seed", seed, 0)
    _positive("depth", depth)
    _positive("jobs", jobs)
    _positive("witness_runs", witness_runs, 0)
    if time_budget is not None and not time_budget > 0:
        raise InputError(f"time_budget: expected a positive duration, got {time_budget!r}")
    if strategy not in STRATEGIES:
        raise InputError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if scheduler is not None and not _is_address(scheduler):
        raise InputError(f"--scheduler {scheduler}: expected tcp://HOST:PORT")
    slugs, patched = _inject(inject, patch)
    if scenarios is None:
        from .scenario import builtin_scenarios

        scs = list(builtin_scenarios().values())
    elif isinstance(scenarios, (str, Scenario)) or callable(scenarios):
        scs = [resolve_scenario(scenarios)]
    else:
        scs = [resolve_scenario(s) for s in scenarios]
    if not scs:
        raise ScenarioError("no scenario to run")
    bound = bind_params(scs, params)
    specs = [
        RunSpec.make(sc, p, config=dict(config or {}), inject=slugs, patch=patched)
        for sc, p in zip(scs, bound, strict=True)
    ]
    opts = CampaignOptions(
        runs=runs,
        time_budget=time_budget,
        seed=seed,
        strategy=strategy,
        depth=depth,
        jobs=jobs,
        scheduler=scheduler,
        out=out,
        keep_going=keep_going,
        witness_runs=witness_runs,
        example_db=example_db,
    )
    if (jobs > 1 or scheduler is not None) and not all(SpecRef.of(s).portable for s in specs):
        raise InputError(
            "jobs > 1 or a scheduler needs scenarios named by a string (built-in, "
            "path/file.py:function or module:function): workers import them"
        )
    return specs, opts


def _is_address(text: str) -> bool:
    scheme, _, rest = text.partition("://")
    host, _, port = rest.rpartition(":")
    return scheme in ("tcp", "tls") and bool(host) and port.isdigit()


def fuzz(
    scenarios: ScenarioLike | Sequence[ScenarioLike] | None = None,
    *,
    runs: int | None = None,
    time_budget: float | None = None,
    strategy: str = "portfolio",
    seed: int = 1,
    depth: int = 3,
    params: Params = None,
    inject: Iterable[str] = (),
    patch: Iterable[str] = (),
    config: Mapping[str, Any] | None = None,
    out: str | None = None,
    keep_going: bool = False,
    witness_runs: int = 200,
    jobs: int = 1,
    scheduler: str | None = None,
    example_db: str | None = None,
    progress: ProgressSink | None = None,
) -> CampaignResult:
    """Run schedules of ``scenarios`` (every built-in when None) and collect each
    distinct failure.

    The budget is ``runs`` per scenario and/or ``time_budget`` seconds for the
    whole campaign (1000 runs per scenario when neither is given). A scenario
    stops at its first failure unless ``keep_going``; after a lockdep report it
    goes on for up to ``witness_runs`` runs looking for a real deadlock.
    ``params``: ``{"threads": 3}`` or ``["threads=3"]``, applied to every
    scenario that has the parameter. ``config``: KernelConfig fields (e.g.
    ``{"lockdep": False, "alloc_fail_probability": 0.01}``). ``out``: a
    directory to write replay files (and ``campaign.json``) into. ``jobs``:
    an embedded Dask cluster of that many worker processes (1: this process);
    ``scheduler``: ``tcp://HOST:PORT`` of an existing Dask cluster (scenarios
    must then be named by string). The answer is the same for any ``jobs``
    or cluster. ``example_db``: a directory or ``redis://HOST:PORT`` whose
    sequences for the scenario are replayed first, and where failing ones
    are saved.

    Raises :class:`Interrupted` (with the result so far) on Ctrl-C.
    """
    specs, opts = _campaign(
        scenarios,
        runs=runs,
        time_budget=time_budget,
        strategy=strategy,
        seed=seed,
        depth=depth,
        params=params,
        inject=inject,
        patch=patch,
        config=config,
        out=out,
        keep_going=keep_going,
        witness_runs=witness_runs,
        jobs=jobs,
        scheduler=scheduler,
        example_db=example_db,
    )
    sink = progress or ProgressSink()
    result = CampaignResult()
    created = check_output_dir(out, "--out") if out is not None else False

    def mark() -> None:
        result.interrupted = True

    engine: Engine | None = None

    async def main() -> bool:
        return await run_until_interrupted(
            lambda: run_campaign(specs, opts, sink, result, engine=engine), mark
        )

    try:
        if jobs > 1 or scheduler is not None:
            # Started before Trio: the workers are forked from a process
            # that has imported the model and runs no event loop yet.
            engine = DaskEngine(jobs=jobs, address=scheduler)
            engine.start()
        interrupted = _trio_run(main)
    except BaseException as exc:
        _reraise(exc, result)
        raise
    finally:
        if engine is not None:
            engine.close()
        sink.close()
        if created and out is not None:
            remove_if_empty(out)
    if interrupted:
        raise Interrupted(result)
    return result


async def afuzz(
    scenarios: ScenarioLike | Sequence[ScenarioLike] | None = None,
    *,
    runs: int | None = None,
    time_budget: float | None = None,
    strategy: str = "portfolio",
    seed: int = 1,
    depth: int = 3,
    params: Params = None,
    inject: Iterable[str] = (),
    patch: Iterable[str] = (),
    config: Mapping[str, Any] | None = None,
    out: str | None = None,
    keep_going: bool = False,
    witness_runs: int = 200,
    jobs: int = 1,
    scheduler: str | None = None,
    example_db: str | None = None,
    progress: ProgressSink | None = None,
) -> CampaignResult:
    """:func:`fuzz` inside a running Trio loop."""
    specs, opts = _campaign(
        scenarios,
        runs=runs,
        time_budget=time_budget,
        strategy=strategy,
        seed=seed,
        depth=depth,
        params=params,
        inject=inject,
        patch=patch,
        config=config,
        out=out,
        keep_going=keep_going,
        witness_runs=witness_runs,
        jobs=jobs,
        scheduler=scheduler,
        example_db=example_db,
    )
    sink = progress or ProgressSink()
    result = CampaignResult()
    if out is not None:
        check_output_dir(out, "--out")
    try:
        await run_campaign(specs, opts, sink, result)
    finally:
        sink.close()
    return result


def _reraise(exc: BaseException, result: CampaignResult | ExploreSummary) -> None:
    if _is_interrupt(exc):
        result.interrupted = True
        raise Interrupted(result) from None
    # The campaign runs in nurseries: an error comes wrapped in exception groups.
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, OSError):
        raise OutputError(f"cannot write a replay file: {describe_os_error(exc)}") from None
    raise exc


def _is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C, possibly wrapped in exception groups by Trio nurseries."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(KeyboardInterrupt) is not None
    return False


# ---------------------------------------------------------------------- replay files


def read_replay(path: str | os.PathLike[str]) -> ReplayFile:
    """Load and validate a replay file (ReplayFileError with one line if it is bad)."""
    return ReplayFile.load(os.fspath(path))


def write_replay(rf: ReplayFile, path: str | os.PathLike[str]) -> str:
    """Save ``rf`` (locations of a user's scenario made relative to ``path``)."""
    p = os.fspath(path)
    check_output_file(p, "replay file")
    try:
        rf.save(p)
    except OSError as exc:
        raise OutputError(f"replay file {p}: cannot write: {describe_os_error(exc)}") from None
    return p


def _load(path_or_obj: str | os.PathLike[str] | ReplayFile) -> ReplayFile:
    if isinstance(path_or_obj, ReplayFile):
        return path_or_obj
    return read_replay(path_or_obj)


def _replay_spec(rf: ReplayFile, params: Params, scenario: ScenarioLike | None) -> RunSpec:
    if scenario is None or isinstance(scenario, str):
        sc = find_scenario(rf, scenario)
    else:
        sc = resolve_scenario(scenario)
    own = _overrides(sc, params)
    try:
        return RunSpec.make(
            sc,
            {**rf.params, **own},
            config=rf.config,
            inject=tuple(rf.inject),
            patch=tuple(rf.patch),
        )
    except ScenarioError as exc:
        raise ReplayFileError(f"{rf.path or 'replay file'} does not fit: {exc}") from None


def replay(
    path_or_obj: str | os.PathLike[str] | ReplayFile,
    *,
    times: int = 3,
    exact: bool = False,
    params: Params = None,
    scenario: ScenarioLike | None = None,
    perfetto: str | None = None,
) -> ReplayReport:
    """Re-run a replay file ``times`` times; ``report.recurs`` says whether its
    failure happened again.

    On changed code the schedule is followed by thread identity as far as it
    fits (``report.exact`` is False, ``report.divergence`` says where);
    ``exact=True`` refuses such a file instead. ``params`` override the
    recorded ones (e.g. ``{"fixed": True}`` to check a fix); ``scenario``
    names the scenario when the file cannot find it; ``perfetto`` writes the
    last run as a Chrome/Perfetto trace.
    """
    return _trio_run(
        lambda: areplay(
            path_or_obj,
            times=times,
            exact=exact,
            params=params,
            scenario=scenario,
            perfetto=perfetto,
        )
    )


async def areplay(
    path_or_obj: str | os.PathLike[str] | ReplayFile,
    *,
    times: int = 3,
    exact: bool = False,
    params: Params = None,
    scenario: ScenarioLike | None = None,
    perfetto: str | None = None,
) -> ReplayReport:
    """:func:`replay` inside a running Trio loop."""
    _positive("times", times)
    rf = _load(path_or_obj)
    if perfetto is not None:
        check_output_file(perfetto, "--perfetto")
    spec = _replay_spec(rf, params, scenario)
    report = await _replay(rf, times, exact=exact, spec=spec)
    if perfetto is not None:
        try:
            report.last.trace.write_chrome(perfetto)
        except OSError as exc:
            raise OutputError(f"--perfetto {perfetto}: {describe_os_error(exc)}") from None
    return report


def shrink(
    path_or_obj: str | os.PathLike[str] | ReplayFile,
    *,
    max_runs: int = 2000,
    scenario: ScenarioLike | None = None,
    output: str | None = None,
) -> ShrinkResult:
    """Minimise a failing replay file's schedule; ``output`` writes the result
    (``result.shrunk`` is the new ReplayFile either way)."""
    return _trio_run(
        lambda: ashrink(path_or_obj, max_runs=max_runs, scenario=scenario, output=output)
    )


async def ashrink(
    path_or_obj: str | os.PathLike[str] | ReplayFile,
    *,
    max_runs: int = 2000,
    scenario: ScenarioLike | None = None,
    output: str | None = None,
) -> ShrinkResult:
    """:func:`shrink` inside a running Trio loop."""
    _positive("max_runs", max_runs)
    rf = _load(path_or_obj)
    if output is not None:
        check_output_file(output, "--output")
    if scenario is None or isinstance(scenario, str):
        sc = find_scenario(rf, scenario)
    else:
        sc = resolve_scenario(scenario)
    result = await _shrink(rf, max_runs=max_runs, scenario=sc)
    if output is not None:
        write_replay(result.shrunk, output)
    return result


# ---------------------------------------------------------------------- explore


def explore(
    scenario: ScenarioLike,
    *,
    preemption_bound: int | None = None,
    max_schedules: int | None = None,
    params: Params = None,
    inject: Iterable[str] = (),
    patch: Iterable[str] = (),
    config: Mapping[str, Any] | None = None,
    out: str | None = None,
    stop_at_first: bool = False,
    time_budget: float | None = None,
) -> ExploreSummary:
    """Every schedule of ``scenario`` with at most ``preemption_bound`` preemptions.

    Without a bound the search deepens (bound 0, 1, 2, ...) until a bound has a
    failing schedule (``summary.failing_bound`` is then the smallest), the search
    is exhaustive, or ``max_schedules`` / ``time_budget`` seconds run out
    (defaults for deepening: 20000 schedules, 60 s).

    Raises :class:`Interrupted` (with the summary so far) on Ctrl-C.
    """
    spec = _explore_spec(scenario, preemption_bound, max_schedules, params, inject, patch, config)
    summary = ExploreSummary(spec.scenario.name, preemption_bound or 0)
    max_schedules, time_budget = _deepening_budget(preemption_bound, max_schedules, time_budget)
    created = check_output_dir(out, "--out") if out is not None else False

    async def search() -> None:
        await explore_scenario(
            spec, preemption_bound, max_schedules, out, stop_at_first, summary, time_budget
        )

    async def until_interrupted() -> bool:
        # Ctrl-C through a signal receiver, noticed between two schedules (the
        # executions themselves never leave the Trio task), as campaigns do.
        from .campaign import run_until_interrupted

        return await run_until_interrupted(search, lambda: None)

    try:
        if _trio_run(until_interrupted):
            summary.interrupted = True
            raise Interrupted(summary)
    except Interrupted:
        raise
    except BaseException as exc:
        _reraise(exc, summary)
    finally:
        if created and out is not None:
            remove_if_empty(out)
    return summary


async def aexplore(
    scenario: ScenarioLike,
    *,
    preemption_bound: int | None = None,
    max_schedules: int | None = None,
    params: Params = None,
    inject: Iterable[str] = (),
    patch: Iterable[str] = (),
    config: Mapping[str, Any] | None = None,
    out: str | None = None,
    stop_at_first: bool = False,
    time_budget: float | None = None,
) -> ExploreSummary:
    """:func:`explore` inside a running Trio loop."""
    spec = _explore_spec(scenario, preemption_bound, max_schedules, params, inject, patch, config)
    if out is not None:
        check_output_dir(out, "--out")
    max_schedules, time_budget = _deepening_budget(preemption_bound, max_schedules, time_budget)
    return await explore_scenario(
        spec, preemption_bound, max_schedules, out, stop_at_first, time_budget=time_budget
    )


DEEPENING_MAX_SCHEDULES = 20_000
DEEPENING_TIME_BUDGET = 60.0


def _deepening_budget(
    bound: int | None, max_schedules: int | None, time_budget: float | None
) -> tuple[int | None, float | None]:
    if time_budget is not None and not time_budget > 0:
        raise InputError(f"time_budget: expected a positive duration, got {time_budget!r}")
    if bound is not None:
        return max_schedules, time_budget
    return (
        max_schedules if max_schedules is not None else DEEPENING_MAX_SCHEDULES,
        time_budget if time_budget is not None else DEEPENING_TIME_BUDGET,
    )


def _explore_spec(
    scenario: ScenarioLike,
    preemption_bound: int | None,
    max_schedules: int | None,
    params: Params,
    inject: Iterable[str],
    patch: Iterable[str],
    config: Mapping[str, Any] | None,
) -> RunSpec:
    if preemption_bound is not None:
        _positive("preemption_bound", preemption_bound, 0)
    _positive("max_schedules", max_schedules)
    slugs, patched = _inject(inject, patch)
    sc = resolve_scenario(scenario)
    values = bind_params([sc], params)[0]
    return RunSpec.make(sc, values, config=dict(config or {}), inject=slugs, patch=patched)
