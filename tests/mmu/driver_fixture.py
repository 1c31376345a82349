"""A minimal device for testing panthor_mmu.py on its own (no firmware, no scheduler)."""

from __future__ import annotations

from panthor_testbed.mmu import panthor_device
from panthor_testbed.mmu.hw.mmu_hw import MaliHw, MaliHwConfig
from panthor_testbed.mmu.panthor_device import (
    PANTHOR_DEVICE_PM_STATE_ACTIVE,
    PanthorDevice,
)
from panthor_testbed.mmu.panthor_mmu import panthor_mmu_init, panthor_mmu_pt_cache_init
from panthor_testbed.mmu.physmem import PhysMem
from panthor_testbed.sched import Kernel
from panthor_testbed.sched.deferred.irq import IrqDesc
from panthor_testbed.sched.deferred.workqueue import (
    INIT_WORK,
    WQ_UNBOUND,
    WorkStruct,
    alloc_ordered_workqueue,
    alloc_workqueue,
)


async def _no_reset(work: WorkStruct) -> None:
    """Stands for the reset work, which the MMU tests only need to be queued."""


async def bring_up(k: Kernel, *, as_present: int = 0xFF, dram: int = 64 << 20) -> PanthorDevice:
    phys = PhysMem(size=dram).install()
    hw = MaliHw(phys, MaliHwConfig(as_present=as_present)).install()
    ptdev = PanthorDevice(hw)
    ptdev.gpu_info.mmu_features = hw.config.mmu_features
    ptdev.gpu_info.as_present = as_present
    ptdev.pm.state.v = PANTHOR_DEVICE_PM_STATE_ACTIVE
    desc = IrqDesc(40, "mmu")
    hw.set_mmu_irq_handler(desc.trigger)
    ptdev.irqs["mmu"] = desc
    panthor_device.panthor_cleanup_wq = await alloc_workqueue("panthor-cleanup", WQ_UNBOUND, 0)
    ptdev.reset.wq = await alloc_ordered_workqueue("panthor-reset-wq", 0)
    ptdev.reset.work = INIT_WORK(_no_reset, "&ptdev->reset.work", ptdev)
    assert await panthor_mmu_pt_cache_init() == 0
    assert await panthor_mmu_init(ptdev) == 0
    k.objects["ptdev"] = ptdev
    return ptdev
