"""A failure's interleaving, shrunk when it can be: what a reader is shown.

The pytest plugin prints it under a failing test; ``panthor-testbed report``
puts it on the campaign page. Both go through the public API (``api.ashrink``,
``api.areplay``), so what they show is what ``shrink`` and ``replay --trace``
would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import api
from .errors import InputError
from .replayfile import ReplayFile
from .scenario import Scenario

if TYPE_CHECKING:
    from panthor_testbed.sched.core.trace import Trace

__all__ = ["Interleaving", "ainterleaving", "min_path"]


@dataclass
class Interleaving:
    """The schedule shown for one failure."""

    shown: ReplayFile  # the shrunk replay file when shrinking worked, else the original
    shrunk: bool
    summary: str  # the deviations from the canonical schedule ("1 preemption: ...")
    shrink_runs: int  # executions the shrinker spent (0: not shrunk here)
    table: str  # Trace.render_table() of the shown run
    rows: int  # events in the whole trace (the table may show the last ones only)
    report: str  # the primary failure's kernel-style report ("" when it has none)
    kind: str  # the shown run's primary failure ("" if the run passed)
    message: str
    trace: Trace  # the shown run's whole trace
    note: str = ""  # why it is not shrunk, when it is not


def min_path(path: str) -> str:
    """Where ``shrink`` writes the shrunk file of ``path`` (``x.json`` -> ``x.min.json``)."""
    stem = path[: -len(".json")] if path.endswith(".json") else path
    return stem + ".min.json"


async def ainterleaving(
    rf: ReplayFile,
    *,
    scenario: Scenario | str | None = None,
    shrink_runs: int = 200,
    last: int | None = None,
    shrunk_file: ReplayFile | None = None,
) -> Interleaving:
    """Shrink ``rf`` (at most ``shrink_runs`` executions; 0: do not) and render the result.

    ``shrunk_file``: an already shrunk file (``<replay>.min.json``), replayed
    once instead of shrinking again. A file that cannot be shrunk (it no
    longer reproduces, the scenario changed) is shown as recorded, with the
    reason in ``note``. ``last``: show only the last ``last`` events.
    """
    note = ""
    if shrunk_file is not None:
        return await _replayed(shrunk_file, scenario, last, shrunk=True, summary=shrunk_file.note)
    if shrink_runs > 0:
        try:
            res = await api.ashrink(rf, max_runs=shrink_runs, scenario=scenario)
        except InputError as exc:
            note = f"not shrunk: {exc}"
        else:
            k = res.kernel
            f = k.primary_failure
            return Interleaving(
                shown=res.shrunk,
                shrunk=True,
                summary=res.summary(),
                shrink_runs=res.runs,
                table=k.trace.render_table(last=last),
                rows=len(k.trace),
                report=f.report if f is not None else "",
                kind=f.kind if f is not None else "",
                message=f.message if f is not None else "",
                trace=k.trace,
            )
    out = await _replayed(rf, scenario, last, shrunk=False, summary="")
    out.note = note
    return out


async def _replayed(
    rf: ReplayFile,
    scenario: Scenario | str | None,
    last: int | None,
    *,
    shrunk: bool,
    summary: str,
) -> Interleaving:
    rep = await api.areplay(rf, times=1, scenario=scenario)
    k = rep.last
    f = k.primary_failure
    note = ""
    if rep.divergence is not None:
        note = (
            f"the recorded schedule no longer fits the run at step {rep.divergence.step}: "
            f"{rep.divergence.why}"
        )
    return Interleaving(
        shown=rf,
        shrunk=shrunk,
        summary=summary,
        shrink_runs=0,
        table=k.trace.render_table(last=last),
        rows=len(k.trace),
        report=f.report if f is not None else "",
        kind=f.kind if f is not None else "",
        message=f.message if f is not None else "",
        trace=k.trace,
        note=note,
    )


def display_path(path: str, base: str | None = None) -> str:
    """``path`` relative to ``base`` (default: the working directory) when that is shorter."""
    try:
        rel = os.path.relpath(path, base or os.getcwd())
    except ValueError:
        return path
    return rel if len(rel) < len(os.path.abspath(path)) else os.path.abspath(path)
