"""Bringing a simulated Panthor device up and down in a run.

:func:`device_init` builds the hardware (DRAM, the GPU's register window with
its MMU, the CSF, the GPU-control block with the MCU), the platform device's
interrupt lines, runs panthor_drv.c's module init (the cleanup workqueue, the
pt cache) and probes the device with ``panthor_device_init()`` (gpu, mmu, fw
with the MCU VM on AS0, sched; runtime PM with a 50 ms autosuspend).
With ``runtime_pm=False`` (the default) the device is then held resumed, as
``echo on > power/control`` does (``pm_runtime_forbid()``), so it never
autosuspends under a test; ``runtime_pm=True`` lets it.
:func:`device_unplug` is the platform driver's remove callback
(``panthor_device_unplug()``); :func:`device_fini` unplugs (if nobody did) and
releases everything the device holds (drmm actions, devm IRQs, the module's
cleanup workqueue, the pt cache), so the run's leak oracles see a clean end.

The signatures are stable; what happens inside follows the driver.
"""

from __future__ import annotations

from ..sched import Kernel
from ..sched.deferred.irq import IrqDesc, free_irq
from ..sched.deferred.workqueue import (
    WQ_UNBOUND,
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
    PanthorDevice,
    panthor_device_init,
    panthor_device_resume,
    panthor_device_suspend,
    panthor_device_unplug,
)
from .panthor_mmu import panthor_mmu_pt_cache_fini, panthor_mmu_pt_cache_init
from .physmem import PhysMem
from .pm_runtime import pm_runtime_allow, pm_runtime_forbid, pm_runtime_init, pm_runtime_release

__all__ = ["DeviceInitError", "device_fini", "device_init", "device_unplug"]

# The platform device's interrupt numbers (platform_get_irq_byname()).
IRQ_GPU = 39
IRQ_MMU = 40
IRQ_JOB = 41


class DeviceInitError(RuntimeError):
    """A step of :func:`device_init` failed (the errno is ``.errno``)."""

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
    runtime_pm: bool = False,
) -> PanthorDevice:
    """A probed device: hardware installed in ``k``, ``panthor_device_init()`` done.

    ``csg_slots`` overrides ``csf.csg_slot_count``; ``hw_config`` overrides
    ``as_present``. Raises :class:`DeviceInitError` if the probe fails (its
    error path has undone what it did).
    """
    phys = PhysMem(size=dram).install(k)
    cfg = hw_config or MaliHwConfig(as_present=as_present)
    hw = MaliHw(phys, cfg).install(k)
    hw.power_off()  # until the first runtime resume turns the clocks on
    csf_cfg = csf or CsfConfig()
    if csg_slots is not None:
        csf_cfg = CsfConfig(**{**csf_cfg.__dict__, "csg_slot_count": csg_slots})
    Csf(hw, csf_cfg).install(k)
    GpuControl(hw, gpu_control).install(k)

    ptdev = PanthorDevice(hw, coherent=coherent)
    ptdev.base.dev.drvdata = ptdev  # platform_set_drvdata()
    pm_runtime_init(ptdev.base.dev, panthor_device_suspend, panthor_device_resume)
    ptdev.irqs["gpu"] = IrqDesc(IRQ_GPU, "gpu")
    mmu_desc = IrqDesc(IRQ_MMU, "mmu")
    hw.set_mmu_irq_handler(mmu_desc.trigger)
    ptdev.irqs["mmu"] = mmu_desc
    ptdev.irqs["job"] = IrqDesc(IRQ_JOB, "job")
    k.objects["ptdev"] = ptdev

    # panthor_drv.c's module init
    panthor_device.panthor_cleanup_wq = await alloc_workqueue("panthor-cleanup", WQ_UNBOUND, 0)
    ret = await panthor_mmu_pt_cache_init()
    if ret:
        raise DeviceInitError("panthor_mmu_pt_cache_init()", ret)

    ret = await panthor_device_init(ptdev)
    if ret:
        # The driver core after a failed probe: devres, then the drm_device's drmm
        # actions are released; module exit tears down what module init made.
        await _release(ptdev)
        raise DeviceInitError("panthor_device_init()", ret)
    if not runtime_pm:
        await pm_runtime_forbid(ptdev.base.dev)
    return ptdev


async def device_unplug(ptdev: PanthorDevice) -> None:
    """The platform device goes away: ``panthor_remove()`` -> ``panthor_device_unplug()``."""
    await panthor_device_unplug(ptdev)


async def device_fini(ptdev: PanthorDevice) -> None:
    """Unplug (if not done yet) and release the device.

    Call it after every file was closed, every group and VM released.
    """
    await panthor_device_unplug(ptdev)
    dev = ptdev.base.dev
    if dev.power.usage_count > 0 and dev.power.disable_depth == 0:
        await pm_runtime_allow(dev)  # the forbid of device_init()
    await _release(ptdev)


async def _release(ptdev: PanthorDevice) -> None:
    """devres and drmm release, then panthor_drv.c's module exit."""
    await pm_runtime_release(ptdev.base.dev)
    cleanup_wq = panthor_device.panthor_cleanup_wq
    assert cleanup_wq is not None
    await flush_workqueue(cleanup_wq)
    # devm resources: the IRQ actions still registered.
    for desc, dev_id in (
        (ptdev.irqs["gpu"], ptdev.gpu.irq if ptdev.gpu is not None else None),
        (ptdev.irqs["mmu"], ptdev.mmu.irq if ptdev.mmu is not None else None),
        (ptdev.irqs["job"], ptdev.fw.irq if ptdev.fw is not None else None),
    ):
        if dev_id is not None and any(a.dev_id is dev_id for a in desc.actions):
            await free_irq(desc, dev_id)
    await drm_managed_release(ptdev.base)
    await destroy_workqueue(cleanup_wq)
    panthor_device.panthor_cleanup_wq = None
    panthor_mmu_pt_cache_fini()
