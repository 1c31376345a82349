"""``struct panthor_device`` and the inline helpers of panthor_device.h.

The device's reset work, runtime PM and unplug (panthor_device.c) build on
these; the MMU code (``panthor_mmu.py``) reads ``ptdev.mmu``, ``gpu_info``,
``coherent``, ``iomem`` (the GPU's register window, :class:`~.hw.mmu_hw.MaliHw`),
``reset`` and ``pm``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ..sched.deferred.workqueue import Workqueue, WorkStruct, queue_work
from ..sched.drm.drm_drv import DrmDevice
from ..sched.locking.atomic import Atomic, atomic_cmpxchg, atomic_read
from ..sched.locking.completion import Completion
from ..sched.locking.mutex import Mutex
from .hw.mmu_hw import MaliHw
from .regs import panthor_exception_name as _exception_name

if TYPE_CHECKING:
    from .panthor_mmu import PanthorMmu, PanthorVmPool

PANTHOR_DEVICE_PM_STATE_SUSPENDED: Final = 0
PANTHOR_DEVICE_PM_STATE_RESUMING: Final = 1
PANTHOR_DEVICE_PM_STATE_ACTIVE: Final = 2
PANTHOR_DEVICE_PM_STATE_SUSPENDING: Final = 3


class DrmPanthorGpuInfo:
    """``struct drm_panthor_gpu_info``: the fields the MMU code reads."""

    __slots__ = ("as_present", "gpu_id", "mmu_features")

    def __init__(self, gpu_id: int = 0, mmu_features: int = 0, as_present: int = 0) -> None:
        self.gpu_id = gpu_id
        self.mmu_features = mmu_features
        self.as_present = as_present


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
