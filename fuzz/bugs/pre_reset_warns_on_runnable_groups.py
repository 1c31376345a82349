"""The later fix ddf2cb3c9e65 "drm/panthor: Relax a check in panthor_sched_pre_reset()".

``panthor_sched_pre_reset()`` warns when a runnable list is not empty after
``panthor_sched_suspend()``. But a group leaves the runnable lists only when it
is stopped or runs out of jobs: a group that got a job after the last tick
(``group_schedule_locked()`` moves it to a runnable list and queues the tick,
which the pre-reset cancels) is still there, and the loop right below the WARN
stops it. The WARN fires on a legitimate state; the fix drops it.
"""

from __future__ import annotations

from typing import Any  # noqa: F401

from panthor_testbed.mmu.panthor_device import (
    PanthorDevice,
)
from panthor_testbed.mmu.panthor_sched import (
    _sched,
    panthor_group_stop,
    panthor_sched_suspend,
)
from panthor_testbed.sched.deferred.workqueue import (
    cancel_delayed_work_sync,
    cancel_work_sync,
)
from panthor_testbed.sched.locking.atomic import (
    atomic_set,
)
from panthor_testbed.sched.locking.mutex import (
    mutex_lock,
    mutex_unlock,
)

from .entry import Bug, FoundAs

BUG = Bug(
    slug="pre-reset-warns-on-runnable-groups",
    kind="latent",
    commit="ddf2cb3c9e65",
    title="drm/panthor: Relax a check in panthor_sched_pre_reset()",
    functions=("panthor_sched_pre_reset",),
    breaks="a reset while a group that just got a job waits for its tick warns that the "
    "runnable lists are not empty (a WARN on a legitimate state)",
    scenario="reset-during-bind",
    found_as=FoundAs("warn", "panthor_sched_pre_reset"),
)


async def panthor_sched_pre_reset(ptdev: PanthorDevice) -> None:
    """``panthor_sched_pre_reset()`` with the later fix: stop every work and every group."""
    sched = _sched(ptdev)

    await mutex_lock(sched.reset.lock)
    await atomic_set(sched.reset.in_progress, 1)

    # Cancel all scheduler works. Once this is done, these works can't be
    # scheduled again until the reset operation is complete.
    await cancel_work_sync(sched.sync_upd_work)
    await cancel_delayed_work_sync(sched.tick_work)

    await panthor_sched_suspend(ptdev)

    # Stop all groups that might still accept jobs, so we don't get passed
    # new jobs while we're resetting.
    for i in range(len(sched.groups.runnable)):
        for group in sched.groups.runnable[i]:
            await panthor_group_stop(group)

    for i in range(len(sched.groups.idle)):
        for group in sched.groups.idle[i]:
            await panthor_group_stop(group)

    await mutex_unlock(sched.reset.lock)


_PORT = "panthor_testbed.mmu.panthor_sched:"
REPLACES = {
    f"{_PORT}panthor_sched_pre_reset": panthor_sched_pre_reset,
}

EXPECTED_DIFF = ["- drm_WARN_ON(ptdev.base, not list_empty(sched.groups.runnable[i]))"]
