"""Found here: ``panthor_fw_unplug()`` frees the firmware sections before the L2 is flushed.

The MCU leaves dirty lines of its writable sections in the GPU's L2.
``panthor_fw_unplug()`` stops it and destroys every section; the sections'
unmaps skip their flush (``panthor_vm_flush_range()`` returns at
``drm_dev_enter()`` once the device is unplugged), so the lines are still
dirty when the pages go back to the allocator, and the L2 power-down at the
end of the function writes them back, into memory that may belong to someone
else by then (a DMA write to freed memory; the testbed sees it when a kernel
BO allocated meanwhile, a group's sync objects, got the same page and the
write-back undoes what the CPU wrote there). The fix proposed here powers the
L2 down, which cleans it, before the sections are destroyed.
"""

from __future__ import annotations

from panthor_testbed.mmu.panthor_device import PanthorDevice
from panthor_testbed.mmu.panthor_fw import PanthorFw, panthor_fw_stop
from panthor_testbed.mmu.panthor_gem import panthor_kernel_bo_destroy
from panthor_testbed.sched.drm.drm_drv import pm_runtime_active

from .entry import Bug, FoundAs

BUG = Bug(
    slug="fw-unplug-frees-sections-before-l2-flush",
    kind="upstream",
    commit="none",
    title="drm/panthor: power the L2 down before freeing the FW sections on unplug (proposed here)",
    functions=("panthor_fw_unplug",),
    breaks="the stopped MCU's dirty L2 lines are written back by the L2 power-down after "
    "the section pages were freed: a DMA write into memory that may have a new owner",
    scenario="unplug",
    found_as=FoundAs("bad-gpu-access", "L2 write-back"),
)


async def panthor_fw_unplug(ptdev: PanthorDevice) -> None:
    """``panthor_fw_unplug()`` with the proposed fix."""
    from panthor_testbed.mmu.panthor_gpu import panthor_gpu_power_off
    from panthor_testbed.mmu.panthor_mmu import panthor_vm_put

    fw: PanthorFw = ptdev.fw

    if await pm_runtime_active(ptdev.base.dev):
        # Make sure the IRQ handler cannot be called after that point.
        if fw.irq.desc is not None:
            await fw.irq.suspend()

        await panthor_fw_stop(ptdev)

        # Clean the L2 while the sections are still ours.
        await panthor_gpu_power_off(ptdev, "L2", ptdev.gpu_info.l2_present, 20000)

    for section in fw.sections:
        await panthor_kernel_bo_destroy(section.mem)

    # We intentionally don't call panthor_vm_idle() and let
    # panthor_mmu_unplug() release the AS we acquired with panthor_vm_active()
    # so we don't have to track the VM active/idle state to keep the
    # active_refcnt balanced.
    if fw.vm is not None:
        await panthor_vm_put(fw.vm)
    fw.vm = None


REPLACES = {
    "panthor_testbed.mmu.panthor_fw:panthor_fw_unplug": panthor_fw_unplug,
}

EXPECTED_DIFF = [
    "+ await panthor_gpu_power_off(ptdev, 'L2', ptdev.gpu_info.l2_present, 20000)",
    "- if await pm_runtime_active(ptdev.base.dev):",
    "- await panthor_gpu_power_off(ptdev, 'L2', ptdev.gpu_info.l2_present, 20000)",
]
