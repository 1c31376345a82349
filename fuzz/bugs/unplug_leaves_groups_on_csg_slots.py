"""Found here: a group on a CSG slot when the device is unplugged is never released.

``panthor_group_destroy()`` leaves a group that is on a CSG slot to the next
tick, which evicts it and drops the slot's reference. After
``drm_dev_unplug()`` the tick returns at its ``drm_dev_enter()``, and
``panthor_sched_unplug()`` only cancels it; the runtime suspend at the end of
``panthor_device_unplug()`` skips ``panthor_sched_suspend()`` for the same
reason. So the group keeps its slot, its reference is never dropped, and the
group's VM (with its page tables) is never freed: the page-table cache still
has objects when it is destroyed. The fix proposed here: ``panthor_sched_unplug()``
suspends the scheduler once the tick is cancelled (the firmware is still up
then: ``panthor_fw_unplug()`` comes after), which takes every group off its
slot as a runtime suspend would.

With ``fw-events-work-after-unplug`` also selected (``--patch all``) the
function has both changes: :data:`COMBINES`.
"""

from __future__ import annotations

from panthor_testbed.mmu.panthor_device import PanthorDevice
from panthor_testbed.mmu.panthor_fw_iface import pm_runtime_put
from panthor_testbed.mmu.panthor_sched import _sched, panthor_sched_suspend
from panthor_testbed.sched.deferred.workqueue import cancel_delayed_work_sync, disable_work_sync
from panthor_testbed.sched.locking.mutex import mutex_lock, mutex_unlock

from .entry import Bug, FoundAs

BUG = Bug(
    slug="unplug-leaves-groups-on-csg-slots",
    kind="upstream",
    commit="none",
    title="drm/panthor: take the groups off their CSG slots on unplug (proposed here)",
    functions=("panthor_sched_unplug",),
    breaks="a group still on a CSG slot at unplug keeps the slot's reference forever: the "
    "group and its VM (page tables included) are never freed",
    scenario="unplug",
    found_as=FoundAs("warn", "panthor-mmu-pt: Slab cache still has objects"),
)


async def panthor_sched_unplug(ptdev: PanthorDevice) -> None:
    """``panthor_sched_unplug()`` with the proposed fix."""
    sched = _sched(ptdev)

    await cancel_delayed_work_sync(sched.tick_work)

    # The tick will not run again: take the groups off their slots now.
    await panthor_sched_suspend(ptdev)

    await mutex_lock(sched.lock)
    if sched.pm.has_ref:
        await pm_runtime_put(ptdev)
        sched.pm.has_ref = False
    await mutex_unlock(sched.lock)


async def panthor_sched_unplug_with_7051f6ba968f(ptdev: PanthorDevice) -> None:
    """``panthor_sched_unplug()`` with 7051f6ba968f and the proposed fix."""
    sched = _sched(ptdev)

    await cancel_delayed_work_sync(sched.tick_work)
    await disable_work_sync(sched.fw_events_work)

    # The tick will not run again: take the groups off their slots now.
    await panthor_sched_suspend(ptdev)

    await mutex_lock(sched.lock)
    if sched.pm.has_ref:
        await pm_runtime_put(ptdev)
        sched.pm.has_ref = False
    await mutex_unlock(sched.lock)


_PORT = "panthor_testbed.mmu.panthor_sched:"
REPLACES = {
    f"{_PORT}panthor_sched_unplug": panthor_sched_unplug,
}

# Selected together with these entries, a function both replace is this one.
COMBINES = {
    "fw-events-work-after-unplug": {
        f"{_PORT}panthor_sched_unplug": panthor_sched_unplug_with_7051f6ba968f,
    },
}

EXPECTED_DIFF = [
    "+ await panthor_sched_suspend(ptdev)",
]
