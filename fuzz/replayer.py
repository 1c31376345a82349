"""Re-running replay files, on the code they were recorded with or on changed code.

On unchanged code the recorded schedule fits decision for decision and the
run is the recorded one (same trace digest). After a fix or a patch the
schedule stops fitting somewhere; the replay then follows it by thread
identity (schedule.FollowReplay) as far as it can, then canonically, and
says where it diverged. Either way the question answered is: does a failure
of the recorded signature happen again?
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any

from panthor_testbed.sched import Kernel, Replay

from .bugs import UnknownBug
from .errors import InputError, ReplayFileError, ScenarioError
from .replayfile import ReplayFile
from .runner import RunSpec, execute, graph_for
from .scenario import Scenario, builtin_scenarios, get_scenario, load_file, load_module
from .schedule import Divergence, FollowReplay

__all__ = [
    "ReplayReport",
    "find_scenario",
    "graph_for",
    "replay",
    "replay_once",
    "same_failure",
    "spec_of",
]


def find_scenario(rf: ReplayFile, override: str | None = None) -> Scenario:
    """The scenario a replay file names, found from any working directory.

    Tried in order: ``override`` (``--scenario``); a built-in; for a file, its
    path relative to the replay file, the absolute path it was recorded at, a
    file of that name beside the replay file, the name as typed (relative to
    the working directory); for a
    module, an import from ``sys.path``, the working directory, the recorded
    root, the root relative to the replay file.
    """
    if override is not None:
        return dataclasses.replace(get_scenario(override), name=rf.scenario)
    builtins = builtin_scenarios()
    if rf.scenario in builtins:
        return builtins[rf.scenario]
    where, _, func = rf.scenario.rpartition(":")
    src = rf.source
    if not where and src is None:
        known = ", ".join(builtins)
        raise ReplayFileError(
            f"replay file does not fit: unknown scenario {rf.scenario!r} (built-ins: {known})"
        )
    if src is None:  # format 1: the name as typed when it was recorded
        src = {"kind": "file" if _looks_like_file(where) else "module", "function": func}
        src["relative" if src["kind"] == "file" else "module"] = where
        cwd_first = True
    else:
        cwd_first = False
    func = src.get("function", func)
    base = os.path.dirname(os.path.abspath(rf.path)) if rf.path else os.getcwd()
    if src.get("kind") == "module":
        module = src.get("module", where)
        roots = [r for r in (src.get("root"), _join(base, src.get("relative_root"))) if r]
        try:
            sc = load_module(module, func, name=rf.scenario, roots=roots)
        except ScenarioError as exc:
            raise ReplayFileError(
                f"cannot find scenario {rf.scenario} ({exc}); pass --scenario MODULE:{func} "
                f"or --scenario PATH:{func}"
            ) from None
        return dataclasses.replace(sc, name=rf.scenario)
    name = os.path.basename(src.get("path") or src.get("relative") or where)
    candidates = [
        _join(base, src.get("relative")),
        src.get("path"),
        os.path.join(base, name),  # attached side by side with the replay file
        os.path.abspath(where) if where else None,
    ]
    if cwd_first:
        candidates.reverse()
    tried: list[str] = []
    for path in candidates:
        if not path or path in tried:
            continue
        tried.append(path)
        if os.path.isfile(path):
            return dataclasses.replace(load_file(path, func, name=rf.scenario), name=rf.scenario)
    raise ReplayFileError(
        f"cannot find the scenario file {name} of {rf.scenario} (looked at "
        f"{', '.join(tried)}); pass --scenario PATH:{func}"
    )


def _looks_like_file(where: str) -> bool:
    return where.endswith(".py") or os.sep in where or "/" in where


def _join(base: str, rel: str | None) -> str | None:
    if not rel:
        return None
    return os.path.normpath(os.path.join(base, rel))


def spec_of(
    rf: ReplayFile,
    *,
    params: dict[str, Any] | None = None,
    scenario: str | Scenario | None = None,
) -> RunSpec:
    """The run a replay file describes (``params`` override the recorded ones)."""
    sc = scenario if isinstance(scenario, Scenario) else find_scenario(rf, scenario)
    try:
        return RunSpec.make(
            sc,
            {**rf.params, **(params or {})},
            config=rf.config,
            inject=tuple(rf.inject),
            patch=tuple(rf.patch),
        )
    except (ScenarioError, UnknownBug) as exc:
        raise ReplayFileError(f"replay file does not fit: {exc}") from None
    except InputError as exc:
        raise ReplayFileError(f"{rf.path or 'replay file'}: {exc}") from None


def same_failure(k: Kernel, rf: ReplayFile) -> bool:
    """A failure of the recorded kind and signature.

    Signatures carry source locations (``dir/file.py:LINE in func``); a fix
    moves lines and a travelling scenario file changes directory, so those
    two are ignored when comparing.
    """
    f = k.primary_failure
    if f is None:
        return False
    want_sig = rf.failure.get("signature")
    if f.kind != rf.failure.get("kind"):
        return False
    return want_sig is None or f.signature == want_sig or _loose(f.signature) == _loose(want_sig)


_LOCATION = re.compile(r"(?:[^\s:()]*/)?([^\s/:()]+\.py):\d+")


def _loose(signature: str) -> str:
    return _LOCATION.sub(r"\1", signature)


@dataclass
class ReplayReport:
    runs: int
    reproduced: int  # runs whose primary failure has the recorded signature
    digest_matches: int  # runs whose trace digest equals the recorded one
    last: Kernel
    exact: bool = True  # the recorded schedule fitted, decision for decision
    divergence: Divergence | None = None  # where it stopped fitting (not exact)
    followed: int = 0  # recorded choices taken (in the last run)
    recorded: int = 0  # choices in the file

    @property
    def failed(self) -> bool:
        return self.last.primary_failure is not None

    @property
    def recurs(self) -> bool:
        """The recorded failure happened again (in every run: runs are deterministic)."""
        return self.reproduced > 0

    def to_json(self) -> dict[str, Any]:
        d = self.divergence
        return {
            "runs": self.runs,
            "reproduced": self.reproduced,
            "digest_matches": self.digest_matches,
            "followed": "exact" if self.exact else "by-identity",
            "followed_choices": self.followed,
            "recorded_choices": self.recorded,
            "diverged": (None if d is None else {"choice": d.index, "step": d.step, "why": d.why}),
        }


async def replay_once(
    rf: ReplayFile, spec: RunSpec, *, exact: bool = False
) -> tuple[Kernel, FollowReplay | Replay]:
    """One run of ``rf``. ``exact``: refuse (ReplayDivergence) a schedule that does not fit."""
    if rf.legacy_choices is not None:
        legacy = Replay(rf.legacy_choices, strict=True)
        k = await execute(spec, legacy, graph_for(rf), run_id=rf.run_id)
        if legacy.divergence is not None:
            raise ReplayFileError(
                f"replay file does not fit the run: {legacy.divergence} (it is in format 1, "
                f"without thread identities, so it only replays on the code it was recorded "
                f"with; record it again with this version)"
            )
        return k, legacy
    follow = FollowReplay(rf.choices, exact=exact)
    k = await execute(spec, follow, graph_for(rf), run_id=rf.run_id)
    if exact and follow.divergence is not None:
        raise ReplayFileError(
            f"replay file does not fit the run: {follow.divergence} "
            f"(without --exact it is followed by thread identity)"
        )
    return k, follow


async def replay(
    rf: ReplayFile,
    times: int = 3,
    *,
    exact: bool = False,
    params: dict[str, Any] | None = None,
    scenario: str | None = None,
    spec: RunSpec | None = None,
) -> ReplayReport:
    """Run ``rf`` ``times`` times (``spec``: the run to use, else the file's own)."""
    if spec is None:
        spec = spec_of(rf, params=params, scenario=scenario)
    reproduced = digest_ok = 0
    last: Kernel | None = None
    strategy: FollowReplay | Replay | None = None
    for _ in range(times):
        k, strategy = await replay_once(rf, spec, exact=exact)
        reproduced += same_failure(k, rf)
        digest_ok += k.trace.digest() == rf.digest
        last = k
    assert last is not None and strategy is not None
    if isinstance(strategy, FollowReplay):
        return ReplayReport(
            times,
            reproduced,
            digest_ok,
            last,
            exact=strategy.fitted,
            divergence=strategy.divergence,
            followed=strategy.followed,
            recorded=len(rf.choices),
        )
    n = len(strategy.choices)
    return ReplayReport(times, reproduced, digest_ok, last, followed=n, recorded=n)
