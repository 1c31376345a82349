"""Before 7de295d1a1a1 "drm/panthor: flush FW AS caches in slow reset path".

``panthor_vm_flush_range()`` flushed only when ``pm_runtime_active()``. The
firmware's slow reset path cleans and invalidates the MCU VM's L2 lines
(``panthor_vm_flush_all()``) before the CPU reloads the sections, and on a
runtime resume that path runs while the device is RPM_RESUMING: the gate
skips the flush, so what the dead firmware left in the L2 (the lines it
fetched, the dirty lines of its writable sections) outlives the reload, and
the rebooted firmware runs on them instead of the fresh sections. The fix
flushes whenever the VM has an AS (an AS is only assigned while the device is
up). The seed has both halves of the fix; the ``panthor_fw.c`` half (the
``panthor_vm_flush_all()`` call) stays, and this entry puts the gate back,
which is what makes the call a no-op where it matters.

Found by ``suspend-resume`` when the MCU fails its fast resume once (the
scenario's first choice): the L2 model (``mmu/hw/l2_cache.py``) reports the
rebooted MCU's fetch of a line the CPU rewrote (``bad-gpu-access``, "stale L2
line").
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

from .entry import Bug, FoundAs

BUG = Bug(
    slug="flush-range-gated-on-pm-active",
    kind="pre-seed",
    commit="7de295d1a1a1",
    title="drm/panthor: flush FW AS caches in slow reset path",
    functions=("panthor_vm_flush_range",),
    breaks="L2 flushes asked for while the device is not RPM_ACTIVE (resuming, suspending) "
    "are skipped: in the firmware's slow reset path on a resume the rebooted MCU runs on "
    "stale L2 lines instead of the reloaded sections",
    scenario="suspend-resume",
    found_as=FoundAs("bad-gpu-access", "stale L2 line"),
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
