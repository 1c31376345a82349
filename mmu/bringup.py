"""Bringing a simulated Panthor device up and down in a run.

:func:`device_init` builds the hardware (DRAM, the GPU's register window with
its MMU, the CSF firmware model), the ``struct panthor_device`` with its
interrupt lines and workqueues, and runs the driver's init of each block (gpu,
mmu, fw, sched, the order of ``panthor_device_init()``).
:func:`device_unplug` is the platform driver's remove callback
(``panthor_device_unplug()``); :func:`device_fini` unplugs (if nobody did) and
releases everything the device holds (drmm actions, devm IRQs, the module's
cleanup workqueue, the pt cache), so the run's leak oracles see a clean end.

The signatures are stable; what happens inside follows the driver as it grows.
"""

from __future__ import annotations

from ..sched import Kernel
from ..sched.deferred.irq import IrqDesc, free_irq
from ..sched.deferred.workqueue import (
    INIT_WORK,
    WQ_UNBOUND,
    alloc_ordered_workqueue,
    alloc_workqueue,
    destroy_workqueue,
    flush_workqueue,
)
from ..sched.drm.drm_drv import drm_managed_release
from . import panthor_device
from .hw.csf import Csf, CsfConfig
from .hw.gpu_control import GpuControl, GpuControlConfig
from .hw.mmu_hw import MaliHw, MaliHwConfig
from .panthor_device import (
    PANTHOR_DEVICE_PM_STATE_ACTIVE,
    PanthorDevice,
    panthor_device_reset_work,
    panthor_device_unplug,
)
from .panthor_fw import panthor_fw_init
from .panthor_gpu import panthor_gpu_init
from .panthor_mmu import panthor_mmu_init, panthor_mmu_pt_cache_fini, panthor_mmu_pt_cache_init
from .panthor_sched import panthor_sched_init
from .physmem import PhysMem

__all__ = ["DeviceInitError", "device_fini", "device_init", "device_unplug"]

# The platform device's interrupt numbers (platform_get_irq_byname()).
IRQ_GPU = 39
IRQ_MMU = 40
IRQ_JOB = 41


class DeviceInitError(RuntimeError):
    """A block's init failed during :func:`device_init` (the errno is ``.errno``)."""

    def __init__(self, what: str, errno: int) -> None:
        super().__init__(f"{what} failed: {errno}")
        self.errno = errno


async def device_init(
    k: Kernel,
    *,
    as_present: int = 0xFF,
    dram: int = 64 << 20,
    coherent: bool = False,
    csf: CsfConfig | None = None,
    csg_slots: int | None = None,
    hw_config: MaliHwConfig | None = None,
    gpu_control: GpuControlConfig | None = None,
) -> PanthorDevice:
    """A probed device: hardware installed in ``k``, every block initialised.

    ``csg_slots`` overrides ``csf.csg_slot_count``; ``hw_config`` overrides
    ``as_present``. Raises :class:`DeviceInitError` if a block's init fails
    (after undoing what was done, as the probe's error path does).
    """
    phys = PhysMem(size=dram).install(k)
    cfg = hw_config or MaliHwConfig(as_present=as_present)
    hw = MaliHw(phys, cfg).install(k)
    csf_cfg = csf or CsfConfig()
    if csg_slots is not None:
        csf_cfg = CsfConfig(**{**csf_cfg.__dict__, "csg_slot_count": csg_slots})
    Csf(hw, csf_cfg).install(k)
    GpuControl(hw, gpu_control).install(k)
    ptdev = PanthorDevice(hw, coherent=coherent)
    ptdev.pm.state.v = PANTHOR_DEVICE_PM_STATE_ACTIVE
    ptdev.irqs["gpu"] = IrqDesc(IRQ_GPU, "gpu")
    mmu_desc = IrqDesc(IRQ_MMU, "mmu")
    hw.set_mmu_irq_handler(mmu_desc.trigger)
    ptdev.irqs["mmu"] = mmu_desc
    ptdev.irqs["job"] = IrqDesc(IRQ_JOB, "job")
    # panthor_drv.c's module init
    panthor_device.panthor_cleanup_wq = await alloc_workqueue("panthor-cleanup", WQ_UNBOUND, 0)
    ptdev.reset.wq = await alloc_ordered_workqueue("panthor-reset-wq", 0)
    ptdev.reset.work = INIT_WORK(panthor_device_reset_work, "&ptdev->reset.work", ptdev)
    ret = await panthor_mmu_pt_cache_init()
    if ret:
        raise DeviceInitError("panthor_mmu_pt_cache_init()", ret)
    ret = await panthor_gpu_init(ptdev)
    if ret:
        raise DeviceInitError("panthor_gpu_init()", ret)
    ret = await panthor_mmu_init(ptdev)
    if ret:
        raise DeviceInitError("panthor_mmu_init()", ret)
    ret = await panthor_fw_init(ptdev)
    if ret:
        raise DeviceInitError("panthor_fw_init()", ret)
    ret = await panthor_sched_init(ptdev)
    if ret:
        raise DeviceInitError("panthor_sched_init()", ret)
    k.objects["ptdev"] = ptdev
    return ptdev


async def device_unplug(ptdev: PanthorDevice) -> None:
    """The platform device goes away: ``panthor_remove()`` -> ``panthor_device_unplug()``."""
    await panthor_device_unplug(ptdev)


async def device_fini(ptdev: PanthorDevice) -> None:
    """Unplug (if not done yet) and release the device.

    Call it after every file was closed, every group and VM released.
    """
    from .panthor_fw_iface import panthor_fw_sched

    await panthor_device_unplug(ptdev)
    cleanup_wq = panthor_device.panthor_cleanup_wq
    assert cleanup_wq is not None
    await flush_workqueue(cleanup_wq)
    # devm resources: the IRQ actions still registered.
    assert ptdev.mmu is not None
    for desc, dev_id in (
        (ptdev.irqs["gpu"], ptdev.gpu.irq),
        (ptdev.irqs["mmu"], ptdev.mmu.irq),
        (ptdev.irqs["job"], panthor_fw_sched(ptdev).irq),
    ):
        if any(a.dev_id is dev_id for a in desc.actions):
            await free_irq(desc, dev_id)
    await drm_managed_release(ptdev.base)
    assert ptdev.reset.wq is not None
    await destroy_workqueue(ptdev.reset.wq)
    await destroy_workqueue(cleanup_wq)
    panthor_device.panthor_cleanup_wq = None
    panthor_mmu_pt_cache_fini()
