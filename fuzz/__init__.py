"""Scenarios, campaigns, replay files and the ``panthor-testbed`` command.

The public Python API (``docs/api.md``) is importable from here::

    from panthor_testbed.fuzz import fuzz, replay, shrink, explore, read_replay, write_replay

Names are loaded on first use, so importing this package (as the command
does before it knows what it will run) costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import (
        CampaignResult,
        ExploreSummary,
        Found,
        InputError,
        Interrupted,
        OutputError,
        ProgressSink,
        Range,
        ReplayFile,
        ReplayFileError,
        ReplayReport,
        Scenario,
        ScenarioError,
        ScenarioInfo,
        ScenarioResult,
        ShrinkError,
        ShrinkResult,
        aexplore,
        afuzz,
        areplay,
        ashrink,
        explore,
        fuzz,
        list_scenarios,
        read_replay,
        replay,
        resolve_scenario,
        shrink,
        write_replay,
    )

# Light names come from their own modules; the rest from .api (which loads the model).
_LIGHT = {
    "Range": ".scenario",
    "Scenario": ".scenario",
    "ScenarioInfo": ".scenario",
    "InputError": ".errors",
    "OutputError": ".errors",
    "ReplayFileError": ".errors",
    "ScenarioError": ".errors",
    "ShrinkError": ".errors",
    "ReplayFile": ".replayfile",
}

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


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_LIGHT.get(name, ".api"), __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value
