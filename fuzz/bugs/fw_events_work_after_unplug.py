"""The later fix 7051f6ba968f.

"drm/panthor: Fix UAF race between device unplug and FW event processing":

``panthor_sched_unplug()`` cancels the tick but not ``fw_events_work``. The
job interrupt may still queue it (or it may be pending already) when
``panthor_fw_unplug()`` frees the firmware sections, and
``process_fw_events_work()`` then reads the CSG interfaces, which live in the
freed shared section. The fix disables the work (``disable_work_sync()``:
drain it and refuse any later queueing) before the rest of the unplug.
"""

from __future__ import annotations

from panthor_testbed.mmu.panthor_device import PanthorDevice
from panthor_testbed.mmu.panthor_fw_iface import pm_runtime_put
from panthor_testbed.mmu.panthor_sched import _sched
from panthor_testbed.sched.deferred.workqueue import cancel_delayed_work_sync, disable_work_sync
from panthor_testbed.sched.locking.mutex import mutex_lock, mutex_unlock

from .entry import Bug, FoundAs

BUG = Bug(
    slug="fw-events-work-after-unplug",
    kind="latent",
    commit="7051f6ba968f",
    title="drm/panthor: Fix UAF race between device unplug and FW event processing",
    functions=("panthor_sched_unplug",),
    breaks="process_fw_events_work() runs after panthor_fw_unplug() freed the firmware "
    "sections and reads the CSG interfaces in the freed shared section (use-after-free)",
    scenario="unplug",
    found_as=FoundAs("use-after-free", "freed PanthorKernelBo"),
)


async def panthor_sched_unplug(ptdev: PanthorDevice) -> None:
    """``panthor_sched_unplug()`` with the later fix."""
    sched = _sched(ptdev)

    await cancel_delayed_work_sync(sched.tick_work)
    await disable_work_sync(sched.fw_events_work)

    await mutex_lock(sched.lock)
    if sched.pm.has_ref:
        await pm_runtime_put(ptdev)
        sched.pm.has_ref = False
    await mutex_unlock(sched.lock)


REPLACES = {
    "panthor_testbed.mmu.panthor_sched:panthor_sched_unplug": panthor_sched_unplug,
}

EXPECTED_DIFF = [
    "+ await disable_work_sync(sched.fw_events_work)",
]
