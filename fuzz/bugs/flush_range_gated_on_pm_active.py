"""Before 7de295d1a1a1 "drm/panthor: flush FW AS caches in slow reset path".

``panthor_vm_flush_range()`` flushed the page-table caches only when
``pm_runtime_active()``: a page-table update made while the device was
resuming (the MCU VM's sections are reloaded then), suspending or resetting
was written to memory but never flushed, so the GPU went on with a stale
translation. The fix flushes whenever the VM has an AS (an AS is only
assigned while the device is up) and adds ``panthor_vm_flush_all()`` for the
firmware's slow reset (the ``panthor_fw.c`` half is not part of this
injection: the firmware model has no slow reset path).
"""

from __future__ import annotations

from typing import Any

from panthor_testbed.mmu.panthor_mmu import (
    AS_COMMAND_FLUSH_PT,
    PanthorVm,
    drm_dev_enter,
    drm_dev_exit,
    mmu_hw_do_operation,
    preempt,
)
from panthor_testbed.sched.drm.drm_drv import RPM_ACTIVE

from .entry import Bug

BUG = Bug(
    slug="flush-range-gated-on-pm-active",
    kind="pre-seed",
    commit="7de295d1a1a1",
    title="drm/panthor: flush FW AS caches in slow reset path",
    functions=("panthor_vm_flush_range",),
    breaks="page-table updates made while the device is not RPM_ACTIVE (resuming, "
    "suspending) are not flushed: the GPU keeps a stale translation",
    scenario="suspend-resume",
    not_found_yet=(
        "the skipped flush matters in the firmware's slow reset path, which the "
        "firmware model does not have; user VMs lose their AS before the device suspends"
    ),
)


def pm_runtime_active(dev: Any) -> bool:
    """``pm_runtime_active()``: the runtime status is RPM_ACTIVE (a lockless read)."""
    return bool(dev.runtime_status == RPM_ACTIVE)


async def panthor_vm_flush_range(vm: PanthorVm, iova: int, size: int) -> int:
    """``panthor_vm_flush_range()`` before the fix."""
    ptdev = vm.ptdev
    ret = 0

    await preempt()  # vm->as.id is read without slots_lock
    if vm.as_.id < 0:
        return 0

    # If the device is unplugged, we just silently skip the flush.
    entered, cookie = await drm_dev_enter(ptdev.base)
    if not entered:
        return 0

    # Flush the PTs only if we're already awake
    await preempt()  # dev->power.runtime_status is read without its lock
    if pm_runtime_active(ptdev.base.dev):
        ret = await mmu_hw_do_operation(vm, iova, size, AS_COMMAND_FLUSH_PT)

    await drm_dev_exit(cookie)
    return ret


_PORT = "panthor_testbed.mmu.panthor_mmu:"
REPLACES = {
    f"{_PORT}panthor_vm_flush_range": panthor_vm_flush_range,
}

EXPECTED_DIFF = [
    "+ await preempt()",
    "+ if pm_runtime_active(ptdev.base.dev):",
]
