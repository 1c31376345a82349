"""``struct panthor_device`` and the inline helpers of panthor_device.h.

The device's reset work, runtime PM and unplug (panthor_device.c) build on
these; the MMU code (``panthor_mmu.py``) reads ``ptdev.mmu``, ``gpu_info``,
``coherent``, ``iomem`` (the GPU's register window, :class:`~.hw.mmu_hw.MaliHw`),
``reset`` and ``pm``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, cast

from ..sched.core.kernel import preempt
from ..sched.deferred.workqueue import (
    INIT_WORK,
    Workqueue,
    WorkStruct,
    alloc_ordered_workqueue,
    cancel_work_sync,
    destroy_workqueue,
    queue_work,
)
from ..sched.drm.drm_drv import (
    Device,
    DrmDevice,
    drm_dev_enter,
    drm_dev_exit,
    drm_dev_is_unplugged,
    drm_dev_unplug,
    drmm_add_action_or_reset,
    drmm_mutex_init,
)
from ..sched.drm.drm_print import drm_err
from ..sched.errno import EINVAL, ENOMEM, ENOTSUPP
from ..sched.locking.atomic import Atomic, atomic_cmpxchg, atomic_read, atomic_set
from ..sched.locking.completion import Completion, complete_all, wait_for_completion
from ..sched.locking.mutex import Mutex, mutex_lock, mutex_unlock
from ..sched.warn import drm_WARN_ON
from .hw.mmu_hw import MaliHw
from .regs import panthor_exception_name as _exception_name

if TYPE_CHECKING:
    from panthor_testbed.mmu.panthor_mmu import PanthorMmu, PanthorVmPool

PANTHOR_DEVICE_PM_STATE_SUSPENDED: Final = 0
PANTHOR_DEVICE_PM_STATE_RESUMING: Final = 1
PANTHOR_DEVICE_PM_STATE_ACTIVE: Final = 2
PANTHOR_DEVICE_PM_STATE_SUSPENDING: Final = 3


class DrmPanthorGpuInfo:
    """``struct drm_panthor_gpu_info``: the fields the MMU code reads."""

    __slots__ = (
        "as_present",
        "gpu_id",
        "l2_present",
        "mmu_features",
        "shader_present",
        "tiler_present",
    )

    def __init__(self, gpu_id: int = 0, mmu_features: int = 0, as_present: int = 0) -> None:
        self.gpu_id = gpu_id
        self.mmu_features = mmu_features
        self.as_present = as_present
        self.shader_present = 0
        self.tiler_present = 0
        self.l2_present = 0


class PanthorReset:
    """``ptdev->reset``."""

    def __init__(self) -> None:
        self.wq: Workqueue | None = None
        self.work: WorkStruct | None = None
        self.pending = Atomic(0, "reset.pending")
        self.fast = False


class PanthorPm:
    """``ptdev->pm``."""

    def __init__(self) -> None:
        self.state = Atomic(PANTHOR_DEVICE_PM_STATE_SUSPENDED, "pm.state")
        self.mmio_lock = Mutex("ptdev->pm.mmio_lock", key="&ptdev->pm.mmio_lock")
        self.recovery_needed = Atomic(0, "pm.recovery_needed")


class PanthorUnplug:
    """``ptdev->unplug``."""

    def __init__(self) -> None:
        self.lock = Mutex("ptdev->unplug.lock", key="&ptdev->unplug.lock")
        self.done = Completion("ptdev->unplug.done")


class PanthorDevice(DrmDevice):
    """``struct panthor_device``; ``base`` (the embedded drm_device) is the object itself."""

    def __init__(self, iomem: MaliHw, *, coherent: bool = False, name: str = "panthor") -> None:
        super().__init__(name)
        self.iomem = iomem
        self.coherent = coherent
        self.gpu_info = DrmPanthorGpuInfo()
        self.gpu: Any = None
        self.fw: Any = None
        self.mmu: PanthorMmu | None = None
        self.scheduler: Any = None
        self.unplug = PanthorUnplug()
        self.reset = PanthorReset()
        self.pm = PanthorPm()
        # platform_get_irq_byname(): the interrupt lines of the platform device
        self.irqs: dict[str, Any] = {}

    @property
    def base(self) -> PanthorDevice:
        return self

    def __repr__(self) -> str:
        return f"<panthor_device {self.name}>"


# panthor_drv.c's ``struct workqueue_struct *panthor_cleanup_wq`` (declared in
# panthor_device.h), allocated at module init.
panthor_cleanup_wq: Workqueue | None = None


class PanthorFile:
    """``struct panthor_file``."""

    def __init__(self, ptdev: PanthorDevice) -> None:
        self.ptdev = ptdev
        self.vms: PanthorVmPool | None = None
        self.groups: Any = None


async def gpu_write(ptdev: PanthorDevice, reg: int, data: int) -> None:
    """``gpu_write()``: ``writel(data, ptdev->iomem + reg)``."""
    await ptdev.iomem.write32(reg, data & 0xFFFFFFFF)


async def gpu_read(ptdev: PanthorDevice, reg: int) -> int:
    """``gpu_read()``: ``readl(ptdev->iomem + reg)``."""
    return await ptdev.iomem.read32(reg)


async def panthor_device_schedule_reset(ptdev: PanthorDevice) -> None:
    """``panthor_device_schedule_reset()``: queue the reset work once, if the device is active."""
    if not await atomic_cmpxchg(ptdev.reset.pending, 0, 1) and (
        await atomic_read(ptdev.pm.state) == PANTHOR_DEVICE_PM_STATE_ACTIVE
    ):
        assert ptdev.reset.wq is not None and ptdev.reset.work is not None
        await queue_work(ptdev.reset.wq, ptdev.reset.work)


async def panthor_device_reset_is_pending(ptdev: PanthorDevice) -> bool:
    """``panthor_device_reset_is_pending()``."""
    return await atomic_read(ptdev.reset.pending) != 0


def panthor_exception_name(ptdev: PanthorDevice, exception_code: int) -> str:
    """``panthor_exception_name()``."""
    return _exception_name(exception_code)


# ---------------------------------------------------------------- panthor_device.c
#
# The device functions call down into sched/fw/mmu/gpu, which import this
# module: they import their callees at call time (absolute imports, so a
# catalogue entry's pre-fix copy of a function reads the same).


async def panthor_device_unplug(ptdev: PanthorDevice) -> None:
    """``panthor_device_unplug()``."""
    from panthor_testbed.mmu.panthor_fw import panthor_fw_unplug
    from panthor_testbed.mmu.panthor_gpu import panthor_gpu_unplug
    from panthor_testbed.mmu.panthor_mmu import panthor_mmu_unplug
    from panthor_testbed.mmu.panthor_sched import panthor_sched_unplug
    from panthor_testbed.mmu.pm_runtime import (
        pm_runtime_dont_use_autosuspend,
        pm_runtime_get_sync,
        pm_runtime_put_sync_suspend,
    )

    # This function can be called from two different path: the reset work
    # and the platform device remove callback. drm_dev_unplug() doesn't
    # deal with concurrent callers, so we have to protect drm_dev_unplug()
    # calls with our own lock, and bail out if the device is already
    # unplugged.
    await mutex_lock(ptdev.unplug.lock)
    await preempt()  # drm_dev_is_unplugged(): a plain read of dev->unplugged
    if drm_dev_is_unplugged(ptdev.base):
        # Someone beat us, release the lock and wait for the unplug
        # operation to be reported as done.
        await mutex_unlock(ptdev.unplug.lock)
        await wait_for_completion(ptdev.unplug.done)
        return

    drm_WARN_ON(ptdev.base, await pm_runtime_get_sync(ptdev.base.dev) < 0)

    # Call drm_dev_unplug() so any access to HW blocks happening after
    # that point get rejected.
    await drm_dev_unplug(ptdev.base)

    # We do the rest of the unplug with the unplug lock released,
    # future callers will wait on ptdev->unplug.done anyway.
    await mutex_unlock(ptdev.unplug.lock)

    # Now, try to cleanly shutdown the GPU before the device resources
    # get reclaimed.
    await panthor_sched_unplug(ptdev)
    await panthor_fw_unplug(ptdev)
    await panthor_mmu_unplug(ptdev)
    await panthor_gpu_unplug(ptdev)

    pm_runtime_dont_use_autosuspend(ptdev.base.dev)
    await pm_runtime_put_sync_suspend(ptdev.base.dev)

    # Report the unplug operation as done to unblock concurrent
    # panthor_device_unplug() callers.
    await complete_all(ptdev.unplug.done)


async def panthor_device_reset_cleanup(ddev: DrmDevice, data: Any) -> None:
    """``panthor_device_reset_cleanup()``: the drmm action that stops the reset work."""
    ptdev = cast(PanthorDevice, ddev)
    assert ptdev.reset.work is not None and ptdev.reset.wq is not None
    await cancel_work_sync(ptdev.reset.work)
    await destroy_workqueue(ptdev.reset.wq)


async def panthor_device_reset_work(work: WorkStruct) -> None:
    """``panthor_device_reset_work()``."""
    from panthor_testbed.mmu.panthor_fw import panthor_fw_post_reset, panthor_fw_pre_reset
    from panthor_testbed.mmu.panthor_gpu import panthor_gpu_l2_power_on, panthor_gpu_soft_reset
    from panthor_testbed.mmu.panthor_mmu import panthor_mmu_post_reset, panthor_mmu_pre_reset
    from panthor_testbed.mmu.panthor_sched import panthor_sched_post_reset, panthor_sched_pre_reset

    ptdev: PanthorDevice = work.container
    ret = 0

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
    await panthor_gpu_l2_power_on(ptdev)
    await panthor_mmu_post_reset(ptdev)
    ret = await panthor_fw_post_reset(ptdev)
    await atomic_set(ptdev.reset.pending, 0)
    await panthor_sched_post_reset(ptdev, ret != 0)
    await drm_dev_exit(cookie)

    if ret:
        await panthor_device_unplug(ptdev)
        drm_err(ptdev.base, "Failed to boot MCU after reset, making device unusable.")


async def _reset_work_fn(work: WorkStruct) -> None:
    # Looked up at call time, so a catalogue injection of the work applies.
    await panthor_device_reset_work(work)


def panthor_device_is_initialized(ptdev: PanthorDevice) -> bool:
    """``panthor_device_is_initialized()``."""
    return ptdev.scheduler is not None


async def panthor_gpu_coherency_init(ptdev: PanthorDevice) -> int:
    """``panthor_gpu_coherency_init()``."""
    from panthor_testbed.mmu import regs as R

    # ptdev->coherent = device_get_dma_attr() == DEV_DMA_COHERENT: given by the platform.
    if not ptdev.coherent:
        return 0

    # Check if the ACE-Lite coherency protocol is actually supported by the GPU.
    # ACE protocol has never been supported for command stream frontend GPUs.
    if await gpu_read(ptdev, R.GPU_COHERENCY_FEATURES) & (
        1 << 0
    ):  # GPU_COHERENCY_PROT_BIT(ACE_LITE)
        return 0

    drm_err(ptdev.base, "Coherency not supported by the device")
    return -ENOTSUPP


async def panthor_device_init(ptdev: PanthorDevice) -> int:
    """``panthor_device_init()``: probe the device (clocks, devfreq, the dummy flush page
    and drm_dev_register() are not modelled)."""
    from panthor_testbed.mmu.panthor_fw import panthor_fw_init, panthor_fw_unplug
    from panthor_testbed.mmu.panthor_gpu import panthor_gpu_init, panthor_gpu_unplug
    from panthor_testbed.mmu.panthor_mmu import panthor_mmu_init, panthor_mmu_unplug
    from panthor_testbed.mmu.panthor_sched import panthor_sched_init
    from panthor_testbed.mmu.pm_runtime import (
        devm_pm_runtime_enable,
        pm_runtime_put_autosuspend,
        pm_runtime_put_sync_suspend,
        pm_runtime_resume_and_get,
        pm_runtime_set_autosuspend_delay,
        pm_runtime_use_autosuspend,
    )

    ret = await drmm_mutex_init(ptdev.base, ptdev.unplug.lock)
    if ret:
        return ret

    ret = await drmm_mutex_init(ptdev.base, ptdev.pm.mmio_lock)
    if ret:
        return ret

    await atomic_set(ptdev.pm.state, PANTHOR_DEVICE_PM_STATE_SUSPENDED)

    ptdev.reset.work = INIT_WORK(_reset_work_fn, "&ptdev->reset.work", ptdev)
    ptdev.reset.wq = await alloc_ordered_workqueue("panthor-reset-wq", 0)
    if not ptdev.reset.wq:
        return -ENOMEM

    ret = await drmm_add_action_or_reset(ptdev.base, panthor_device_reset_cleanup, None)
    if ret:
        return ret

    ret = await devm_pm_runtime_enable(ptdev.base.dev)
    if ret:
        return ret

    ret = await pm_runtime_resume_and_get(ptdev.base.dev)
    if ret:
        return ret

    ret = await panthor_gpu_init(ptdev)
    if ret:
        await pm_runtime_put_sync_suspend(ptdev.base.dev)  # goto err_rpm_put
        return ret

    ret = await panthor_gpu_coherency_init(ptdev)
    if ret:
        await panthor_gpu_unplug(ptdev)  # goto err_unplug_gpu
        await pm_runtime_put_sync_suspend(ptdev.base.dev)
        return ret

    ret = await panthor_mmu_init(ptdev)
    if ret:
        await panthor_gpu_unplug(ptdev)  # goto err_unplug_gpu
        await pm_runtime_put_sync_suspend(ptdev.base.dev)
        return ret

    ret = await panthor_fw_init(ptdev)
    if ret:
        await panthor_mmu_unplug(ptdev)  # goto err_unplug_mmu
        await panthor_gpu_unplug(ptdev)
        await pm_runtime_put_sync_suspend(ptdev.base.dev)
        return ret

    ret = await panthor_sched_init(ptdev)
    if ret:
        await panthor_fw_unplug(ptdev)  # goto err_unplug_fw
        await panthor_mmu_unplug(ptdev)
        await panthor_gpu_unplug(ptdev)
        await pm_runtime_put_sync_suspend(ptdev.base.dev)
        return ret

    # ~3 frames
    pm_runtime_set_autosuspend_delay(ptdev.base.dev, 50)
    pm_runtime_use_autosuspend(ptdev.base.dev)

    await pm_runtime_put_autosuspend(ptdev.base.dev)
    return 0


async def panthor_device_resume_hw_components(ptdev: PanthorDevice) -> int:
    """``panthor_device_resume_hw_components()``."""
    from panthor_testbed.mmu.panthor_fw import panthor_fw_resume
    from panthor_testbed.mmu.panthor_gpu import panthor_gpu_resume, panthor_gpu_suspend
    from panthor_testbed.mmu.panthor_mmu import panthor_mmu_resume, panthor_mmu_suspend

    await panthor_gpu_resume(ptdev)
    await panthor_mmu_resume(ptdev)

    ret = await panthor_fw_resume(ptdev)
    if not ret:
        return 0

    await panthor_mmu_suspend(ptdev)
    await panthor_gpu_suspend(ptdev)
    return ret


async def panthor_device_resume(dev: Device) -> int:
    """``panthor_device_resume()``: the runtime-PM resume callback."""
    from panthor_testbed.mmu.panthor_sched import panthor_sched_resume

    ptdev = cast(PanthorDevice, dev.drvdata)  # dev_get_drvdata(dev)

    if await atomic_read(ptdev.pm.state) != PANTHOR_DEVICE_PM_STATE_SUSPENDED:
        return -EINVAL

    await atomic_set(ptdev.pm.state, PANTHOR_DEVICE_PM_STATE_RESUMING)

    # clk_prepare_enable() of the core/stacks/coregroup clocks: the GPU is powered.
    ptdev.iomem.power_on()

    if panthor_device_is_initialized(ptdev):
        entered, cookie = await drm_dev_enter(ptdev.base)
        if entered:
            # If there was a reset pending at the time we suspended the
            # device, we force a slow reset.
            if await atomic_read(ptdev.reset.pending):
                ptdev.reset.fast = False
                await atomic_set(ptdev.reset.pending, 0)

            ret = await panthor_device_resume_hw_components(ptdev)
            if ret and ptdev.reset.fast:
                drm_err(ptdev.base, "Fast reset failed, trying a slow reset")
                ptdev.reset.fast = False
                ret = await panthor_device_resume_hw_components(ptdev)

            if not ret:
                await panthor_sched_resume(ptdev)

            await drm_dev_exit(cookie)

            if ret:
                # err_suspend_devfreq: ... err_set_suspended:
                ptdev.iomem.power_off()
                await atomic_set(ptdev.pm.state, PANTHOR_DEVICE_PM_STATE_SUSPENDED)
                await atomic_set(ptdev.pm.recovery_needed, 1)
                return ret

    # Clear all IOMEM mappings pointing to this device after we've resumed
    # (unmap_mapping_range(): no user mappings are modelled).
    await mutex_lock(ptdev.pm.mmio_lock)
    await atomic_set(ptdev.pm.state, PANTHOR_DEVICE_PM_STATE_ACTIVE)
    await mutex_unlock(ptdev.pm.mmio_lock)
    return 0


async def panthor_device_suspend(dev: Device) -> int:
    """``panthor_device_suspend()``: the runtime-PM suspend callback."""
    from panthor_testbed.mmu.panthor_fw import panthor_fw_suspend
    from panthor_testbed.mmu.panthor_gpu import panthor_gpu_suspend
    from panthor_testbed.mmu.panthor_mmu import panthor_mmu_suspend
    from panthor_testbed.mmu.panthor_sched import panthor_sched_suspend

    ptdev = cast(PanthorDevice, dev.drvdata)

    if await atomic_read(ptdev.pm.state) != PANTHOR_DEVICE_PM_STATE_ACTIVE:
        return -EINVAL

    # Clear all IOMEM mappings pointing to this device before we shutdown
    # the power-domain and clocks. We change the state with the mmio_lock
    # held to make sure the vm_fault handler won't set up invalid mappings.
    await mutex_lock(ptdev.pm.mmio_lock)
    await atomic_set(ptdev.pm.state, PANTHOR_DEVICE_PM_STATE_SUSPENDING)
    await mutex_unlock(ptdev.pm.mmio_lock)

    if panthor_device_is_initialized(ptdev):
        entered, cookie = await drm_dev_enter(ptdev.base)
        if entered:
            assert ptdev.reset.work is not None
            await cancel_work_sync(ptdev.reset.work)

            # We prepare everything as if we were resetting the GPU.
            # The end of the reset will happen in the resume path though.
            await panthor_sched_suspend(ptdev)
            await panthor_fw_suspend(ptdev)
            await panthor_mmu_suspend(ptdev)
            await panthor_gpu_suspend(ptdev)
            await drm_dev_exit(cookie)

    # clk_disable_unprepare(): the GPU loses power.
    ptdev.iomem.power_off()
    await atomic_set(ptdev.pm.state, PANTHOR_DEVICE_PM_STATE_SUSPENDED)
    return 0


async def panthor_device_resume_and_get(ptdev: PanthorDevice) -> int:
    """``panthor_device_resume_and_get()`` (panthor_device.h)."""
    from panthor_testbed.mmu.pm_runtime import pm_runtime_resume_and_get, pm_runtime_set_suspended

    ret = await pm_runtime_resume_and_get(ptdev.base.dev)

    # If the resume failed, we need to clear the runtime_error, which can
    # done by forcing the RPM state to suspended. If multiple threads called
    # panthor_device_resume_and_get(), we only want one of them to update the
    # state, hence the cmpxchg.
    if ret and await atomic_cmpxchg(ptdev.pm.recovery_needed, 1, 0) == 1:
        pm_runtime_set_suspended(ptdev.base.dev)

    return ret
