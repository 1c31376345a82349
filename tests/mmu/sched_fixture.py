"""A device with the scheduler, the CSF model and the job IRQ, for the GPU-job tests.

Stands in for panthor_device.c's init, reset work and unplug until the device
model lands: the reset work follows ``panthor_device_reset_work()``'s order
(sched pre-reset, FW pre-reset, MMU pre-reset, GPU soft reset, MMU
post-reset, FW post-reset, clear ``reset.pending``, sched post-reset), and
:func:`tear_down` releases everything so the leak oracles see a clean end.
"""

from __future__ import annotations

from typing import Final

from panthor_testbed.mmu import panthor_device
from panthor_testbed.mmu import regs as R
from panthor_testbed.mmu.hw.csf import Csf, CsfConfig
from panthor_testbed.mmu.hw.mmu_hw import MaliHw, MaliHwConfig
from panthor_testbed.mmu.panthor_device import (
    PANTHOR_DEVICE_PM_STATE_ACTIVE,
    PanthorDevice,
    gpu_read,
    gpu_write,
)
from panthor_testbed.mmu.panthor_fw_iface import (
    panthor_fw_post_reset,
    panthor_fw_pre_reset,
    panthor_fw_sched,
    panthor_fw_sched_init,
)
from panthor_testbed.mmu.panthor_mmu import (
    panthor_mmu_init,
    panthor_mmu_post_reset,
    panthor_mmu_pre_reset,
    panthor_mmu_pt_cache_fini,
    panthor_mmu_pt_cache_init,
    panthor_mmu_unplug,
)
from panthor_testbed.mmu.panthor_sched import (
    panthor_sched_init,
    panthor_sched_post_reset,
    panthor_sched_pre_reset,
    panthor_sched_unplug,
)
from panthor_testbed.mmu.physmem import PhysMem
from panthor_testbed.sched import Kernel
from panthor_testbed.sched.core.clock import read_poll_timeout
from panthor_testbed.sched.deferred.irq import IrqDesc, free_irq
from panthor_testbed.sched.deferred.workqueue import (
    INIT_WORK,
    WQ_UNBOUND,
    WorkStruct,
    alloc_ordered_workqueue,
    alloc_workqueue,
    destroy_workqueue,
)
from panthor_testbed.sched.drm.drm_drv import drm_dev_enter, drm_dev_exit, drm_managed_release
from panthor_testbed.sched.locking.atomic import atomic_read, atomic_set

RESETS_KEY: Final = "test.resets"


async def panthor_gpu_soft_reset(ptdev: PanthorDevice) -> int:
    """``panthor_gpu_soft_reset()``, polling RAWSTAT instead of the GPU IRQ (not modelled)."""
    await gpu_write(ptdev, R.GPU_INT_CLEAR, R.GPU_IRQ_RESET_COMPLETED)
    await gpu_write(ptdev, R.GPU_CMD, R.GPU_SOFT_RESET)

    async def rawstat() -> int:
        return await gpu_read(ptdev, R.GPU_INT_RAWSTAT)

    ret, _ = await read_poll_timeout(
        rawstat, lambda v: bool(v & R.GPU_IRQ_RESET_COMPLETED), 10, 100000, atomic=False
    )
    await gpu_write(ptdev, R.GPU_INT_CLEAR, R.GPU_IRQ_RESET_COMPLETED)
    return ret


async def panthor_device_reset_work(work: WorkStruct) -> None:
    """``panthor_device_reset_work()`` in the kernel's order."""
    ptdev: PanthorDevice = work.container

    # If the device is entering suspend, we don't reset. A slow reset will
    # be forced at resume time instead.
    if await atomic_read(ptdev.pm.state) != PANTHOR_DEVICE_PM_STATE_ACTIVE:
        return

    entered, cookie = await drm_dev_enter(ptdev.base)
    if not entered:
        return

    await panthor_sched_pre_reset(ptdev)
    await panthor_fw_pre_reset(ptdev, True)
    await panthor_mmu_pre_reset(ptdev)
    await panthor_gpu_soft_reset(ptdev)
    await panthor_mmu_post_reset(ptdev)
    ret = await panthor_fw_post_reset(ptdev)
    await atomic_set(ptdev.reset.pending, 0)
    await panthor_sched_post_reset(ptdev, ret != 0)
    await drm_dev_exit(cookie)

    from panthor_testbed.sched import current_kernel

    k = current_kernel()
    k.objects[RESETS_KEY] = int(k.objects.get(RESETS_KEY, 0)) + 1


async def bring_up(
    k: Kernel,
    *,
    as_present: int = 0xFF,
    dram: int = 64 << 20,
    csf: CsfConfig | None = None,
) -> PanthorDevice:
    phys = PhysMem(size=dram).install()
    hw = MaliHw(phys, MaliHwConfig(as_present=as_present)).install()
    Csf(hw, csf or CsfConfig()).install()
    ptdev = PanthorDevice(hw)
    ptdev.gpu_info.mmu_features = hw.config.mmu_features
    ptdev.gpu_info.as_present = as_present
    ptdev.pm.state.v = PANTHOR_DEVICE_PM_STATE_ACTIVE
    mmu_desc = IrqDesc(40, "mmu")
    hw.set_mmu_irq_handler(mmu_desc.trigger)
    ptdev.irqs["mmu"] = mmu_desc
    ptdev.irqs["job"] = IrqDesc(41, "job")
    panthor_device.panthor_cleanup_wq = await alloc_workqueue("panthor-cleanup", WQ_UNBOUND, 0)
    ptdev.reset.wq = await alloc_ordered_workqueue("panthor-reset-wq", 0)
    ptdev.reset.work = INIT_WORK(panthor_device_reset_work, "&ptdev->reset.work", ptdev)
    assert await panthor_mmu_pt_cache_init() == 0
    assert await panthor_mmu_init(ptdev) == 0
    assert await panthor_fw_sched_init(ptdev) == 0
    assert await panthor_sched_init(ptdev) == 0
    k.objects["ptdev"] = ptdev
    return ptdev


async def tear_down(ptdev: PanthorDevice) -> None:
    """Unplug and release the device (after every file was closed and every group released)."""
    assert ptdev.mmu is not None
    await panthor_sched_unplug(ptdev)
    fw = panthor_fw_sched(ptdev)
    await fw.irq.suspend()
    await panthor_mmu_unplug(ptdev)
    await free_irq(ptdev.irqs["mmu"], ptdev.mmu.irq)
    await free_irq(ptdev.irqs["job"], fw.irq)
    await drm_managed_release(ptdev.base)
    assert ptdev.reset.wq is not None and panthor_device.panthor_cleanup_wq is not None
    await destroy_workqueue(ptdev.reset.wq)
    await destroy_workqueue(panthor_device.panthor_cleanup_wq)
    panthor_device.panthor_cleanup_wq = None
    panthor_mmu_pt_cache_fini()
