"""Before 3ce4322b1a3a "drm/panthor: Call panthor_sched_post_reset() even if the reset failed".

When the MCU did not come back after a reset (``panthor_fw_post_reset()``
failed), ``panthor_device_reset_work()`` jumped over
``panthor_sched_post_reset()``: the groups the pre-reset had stopped were
never terminated, so their jobs' fences were never signalled, and
``reset.pending`` stayed set. The fix gave ``panthor_sched_post_reset()`` a
``reset_failed`` argument and always calls it; the pre-fix call (on success
only) passes ``False``, the one value it could mean.
"""

from __future__ import annotations

from panthor_testbed.mmu.panthor_device import (
    PANTHOR_DEVICE_PM_STATE_ACTIVE,
    PanthorDevice,
    panthor_device_unplug,
)
from panthor_testbed.sched.deferred.workqueue import WorkStruct
from panthor_testbed.sched.drm.drm_drv import drm_dev_enter, drm_dev_exit
from panthor_testbed.sched.drm.drm_print import drm_err
from panthor_testbed.sched.locking.atomic import atomic_read, atomic_set

from .entry import Bug, FoundAs

BUG = Bug(
    slug="reset-failure-skips-sched-post-reset",
    kind="pre-seed",
    commit="3ce4322b1a3a",
    title="drm/panthor: Call panthor_sched_post_reset() even if the reset failed",
    functions=("panthor_device_reset_work",),
    breaks="after a reset whose MCU does not reboot, the groups stopped by the pre-reset "
    "are never terminated: their jobs' fences are never signalled",
    scenario="reset-during-bind",
    found_as=FoundAs("deadlock", "drm_sched_stop()"),
)


async def panthor_device_reset_work(work: WorkStruct) -> None:
    """``panthor_device_reset_work()`` before the fix."""
    from panthor_testbed.mmu.panthor_fw import panthor_fw_post_reset, panthor_fw_pre_reset
    from panthor_testbed.mmu.panthor_gpu import panthor_gpu_l2_power_on, panthor_gpu_soft_reset
    from panthor_testbed.mmu.panthor_mmu import panthor_mmu_post_reset, panthor_mmu_pre_reset
    from panthor_testbed.mmu.panthor_sched import (
        panthor_sched_post_reset,
        panthor_sched_pre_reset,
    )

    ptdev: PanthorDevice = work.container
    ret = 0

    if await atomic_read(ptdev.pm.state) != PANTHOR_DEVICE_PM_STATE_ACTIVE:
        return

    entered, cookie = await drm_dev_enter(ptdev.base)
    if not entered:
        return

    await panthor_sched_pre_reset(ptdev)
    await panthor_fw_pre_reset(ptdev, True)
    await panthor_mmu_pre_reset(ptdev)
    await panthor_gpu_soft_reset(ptdev)
    await panthor_gpu_l2_power_on(ptdev)
    await panthor_mmu_post_reset(ptdev)
    ret = await panthor_fw_post_reset(ptdev)
    if not ret:
        await atomic_set(ptdev.reset.pending, 0)
        await panthor_sched_post_reset(ptdev, False)
    await drm_dev_exit(cookie)

    if ret:
        await panthor_device_unplug(ptdev)
        drm_err(ptdev.base, "Failed to boot MCU after reset, making device unusable.")


_DEV = "panthor_testbed.mmu.panthor_device:"
REPLACES = {f"{_DEV}panthor_device_reset_work": panthor_device_reset_work}

EXPECTED_DIFF = [
    "+ if not ret:",
    "- await panthor_sched_post_reset(ptdev, ret != 0)",
    "+ await panthor_sched_post_reset(ptdev, False)",
]
