"""panthor_gpu.c: the GPU-control block as far as reset and power management need it.

The seed never calls this file; the device's reset work and runtime PM do
(``panthor_gpu_soft_reset``, ``panthor_gpu_l2_power_on``,
``panthor_gpu_suspend``/``_resume``, ``panthor_gpu_unplug``), the firmware
(``panthor_gpu_power_off`` of the L2 at unplug) and whoever flushes the GPU
caches (``panthor_gpu_flush_caches``). Requests that complete with an
interrupt (soft reset, cache flush) are flagged in ``pending_reqs`` under
``reqs_lock``; the GPU IRQ handler clears them and wakes ``reqs_acked``.
The hardware side is :mod:`.hw.gpu_control` and :class:`~.hw.mmu_hw.MaliHw`.
"""

from __future__ import annotations

from typing import Final

from ..sched.core.clock import NSEC_PER_JIFFY, msecs_to_jiffies, read_poll_timeout
from ..sched.core.kernel import current_kernel, preempt
from ..sched.core.waitqueue import WaitQueue
from ..sched.deferred.irq import IrqRegs, PanthorIrq
from ..sched.drm.drm_drv import drmm_kzalloc, pm_runtime_active
from ..sched.drm.drm_print import drm_err, drm_warn
from ..sched.errno import ENODEV, ENOMEM, ETIMEDOUT
from ..sched.locking.spin import SyncSpinLock
from ..sched.mm.gfp import GFP_KERNEL
from ..sched.warn import drm_WARN_ON
from . import regs as R
from .panthor_device import PanthorDevice, gpu_read, gpu_write, panthor_exception_name

GPU_IRQ_REGS: Final = IrqRegs(R.GPU_INT_RAWSTAT, R.GPU_INT_CLEAR, R.GPU_INT_MASK, R.GPU_INT_STAT)

# GPU_INTERRUPTS_MASK
GPU_INTERRUPTS_MASK: Final = (
    R.GPU_IRQ_FAULT
    | R.GPU_IRQ_PROTM_FAULT
    | R.GPU_IRQ_RESET_COMPLETED
    | R.GPU_IRQ_CLEAN_CACHES_COMPLETED
)


class PanthorGpu:
    """``struct panthor_gpu``."""

    def __init__(self) -> None:
        self.irq: PanthorIrq | None = None
        self.reqs_lock = SyncSpinLock("gpu->reqs_lock", "&gpu->reqs_lock")
        self.pending_reqs = 0
        self.reqs_acked = WaitQueue("ptdev->gpu->reqs_acked", klass="panthor_gpu reqs_acked")


async def _reqs_wait_timeout(ptdev: PanthorDevice, req: int, timeout_ms: int) -> bool:
    """``wait_event_timeout(gpu->reqs_acked, !(gpu->pending_reqs & req))``: False on timeout."""
    gpu: PanthorGpu = ptdev.gpu
    k = current_kernel()
    deadline = k.now + msecs_to_jiffies(timeout_ms) * NSEC_PER_JIFFY
    while True:
        await preempt()  # a lockless read of pending_reqs
        if not gpu.pending_reqs & req:
            return True
        left = deadline - k.now
        if left <= 0:
            return False
        await gpu.reqs_acked.wait(left)


async def panthor_gpu_irq_handler(ptdev: PanthorDevice, status: int) -> None:
    """``panthor_gpu_irq_handler()``."""
    gpu: PanthorGpu = ptdev.gpu
    if status & R.GPU_IRQ_FAULT:
        fault_status = await gpu_read(ptdev, R.GPU_FAULT_STATUS)
        address = (await gpu_read(ptdev, R.GPU_FAULT_ADDR_HI) << 32) | await gpu_read(
            ptdev, R.GPU_FAULT_ADDR_LO
        )
        drm_warn(
            ptdev.base,
            "GPU Fault 0x%08x (%s) at 0x%016x\n",
            fault_status,
            panthor_exception_name(ptdev, fault_status & 0xFF),
            address,
        )
    if status & R.GPU_IRQ_PROTM_FAULT:
        drm_warn(ptdev.base, "GPU Fault in protected mode\n")

    async with gpu.reqs_lock:
        if status & gpu.pending_reqs:
            gpu.pending_reqs &= ~status
            gpu.reqs_acked.wake_all()


def _gpu_irq(ptdev: PanthorDevice) -> PanthorIrq:
    """``PANTHOR_IRQ_HANDLER(gpu, GPU, panthor_gpu_irq_handler)``."""

    async def handler(status: int) -> None:
        await panthor_gpu_irq_handler(ptdev, status)

    return PanthorIrq(
        "gpu",
        GPU_IRQ_REGS,
        lambda reg: gpu_read(ptdev, reg),
        lambda reg, v: gpu_write(ptdev, reg, v),
        handler,
    )


async def panthor_gpu_unplug(ptdev: PanthorDevice) -> None:
    """``panthor_gpu_unplug()`` - Called when the GPU is unplugged."""
    gpu: PanthorGpu = ptdev.gpu
    # Make sure the IRQ handler is not running after that point.
    if await pm_runtime_active(ptdev.base.dev):
        assert gpu.irq is not None
        await gpu.irq.suspend()

    # Wake-up all waiters.
    async with gpu.reqs_lock:
        gpu.pending_reqs = 0
        gpu.reqs_acked.wake_all()


async def panthor_gpu_init(ptdev: PanthorDevice) -> int:
    """``panthor_gpu_init()`` - Initialize the GPU block."""
    gpu: PanthorGpu | None = await drmm_kzalloc(ptdev.base, PanthorGpu, GFP_KERNEL)
    if not gpu:
        return -ENOMEM

    ptdev.gpu = gpu
    await panthor_gpu_init_info(ptdev)

    desc = ptdev.irqs.get("gpu")  # platform_get_irq_byname(..., "gpu")
    if desc is None:
        return -ENODEV

    gpu.irq = _gpu_irq(ptdev)
    ptdev.iomem.set_gpu_irq_handler(desc.trigger)
    ret = await gpu.irq.request(desc, GPU_INTERRUPTS_MASK)
    if ret:
        return ret

    return 0


async def panthor_gpu_init_info(ptdev: PanthorDevice) -> None:
    """``panthor_gpu_init_info()``: the identification registers the rest of the driver reads."""
    info = ptdev.gpu_info
    info.gpu_id = await gpu_read(ptdev, R.GPU_ID)
    info.mmu_features = await gpu_read(ptdev, R.GPU_MMU_FEATURES)
    info.as_present = await gpu_read(ptdev, R.GPU_AS_PRESENT)
    info.shader_present = await gpu_read(ptdev, R.GPU_SHADER_PRESENT_LO)
    info.tiler_present = await gpu_read(ptdev, R.GPU_TILER_PRESENT_LO)
    info.l2_present = await gpu_read(ptdev, R.GPU_L2_PRESENT_LO)


async def panthor_gpu_block_power_off(
    ptdev: PanthorDevice,
    blk_name: str,
    pwroff_reg: int,
    pwrtrans_reg: int,
    mask: int,
    timeout_us: int,
) -> int:
    """``panthor_gpu_block_power_off()`` - Power-off a specific block of the GPU."""

    async def trans() -> int:
        return await gpu_read(ptdev, pwrtrans_reg)

    ret, _ = await read_poll_timeout(trans, lambda val: not (mask & val), 100, timeout_us)
    if ret:
        drm_err(ptdev.base, "timeout waiting on %s:%x power transition", blk_name, mask)
        return ret

    await gpu_write(ptdev, pwroff_reg, mask)

    ret, _ = await read_poll_timeout(trans, lambda val: not (mask & val), 100, timeout_us)
    if ret:
        drm_err(ptdev.base, "timeout waiting on %s:%x power transition", blk_name, mask)
        return ret

    return 0


async def panthor_gpu_block_power_on(
    ptdev: PanthorDevice,
    blk_name: str,
    pwron_reg: int,
    pwrtrans_reg: int,
    rdy_reg: int,
    mask: int,
    timeout_us: int,
) -> int:
    """``panthor_gpu_block_power_on()`` - Power-on a specific block of the GPU."""

    async def trans() -> int:
        return await gpu_read(ptdev, pwrtrans_reg)

    async def ready() -> int:
        return await gpu_read(ptdev, rdy_reg)

    ret, _ = await read_poll_timeout(trans, lambda val: not (mask & val), 100, timeout_us)
    if ret:
        drm_err(ptdev.base, "timeout waiting on %s:%x power transition", blk_name, mask)
        return ret

    await gpu_write(ptdev, pwron_reg, mask)

    ret, _ = await read_poll_timeout(ready, lambda val: (mask & val) == mask, 100, timeout_us)
    if ret:
        drm_err(ptdev.base, "timeout waiting on %s:%x readiness", blk_name, mask)
        return ret

    return 0


async def panthor_gpu_power_on(ptdev: PanthorDevice, blk: str, mask: int, timeout_us: int) -> int:
    """``panthor_gpu_power_on(ptdev, type, mask, timeout_us)`` (the macro)."""
    pwron, trans, rdy = _POWER_REGS[blk]
    return await panthor_gpu_block_power_on(ptdev, blk, pwron, trans, rdy, mask, timeout_us)


async def panthor_gpu_power_off(ptdev: PanthorDevice, blk: str, mask: int, timeout_us: int) -> int:
    """``panthor_gpu_power_off(ptdev, type, mask, timeout_us)`` (the macro)."""
    _, trans, _ = _POWER_REGS[blk]
    return await panthor_gpu_block_power_off(
        ptdev, blk, _POWEROFF_REGS[blk], trans, mask, timeout_us
    )


_POWER_REGS: Final = {
    "L2": (R.L2_PWRON_LO, R.L2_PWRTRANS_LO, R.L2_READY_LO),
    "SHADER": (R.SHADER_PWRON_LO, R.SHADER_PWRTRANS_LO, R.SHADER_READY_LO),
    "TILER": (R.TILER_PWRON_LO, R.TILER_PWRTRANS_LO, R.TILER_READY_LO),
}
_POWEROFF_REGS: Final = {
    "L2": R.L2_PWROFF_LO,
    "SHADER": R.SHADER_PWROFF_LO,
    "TILER": R.TILER_PWROFF_LO,
}


async def panthor_gpu_l2_power_on(ptdev: PanthorDevice) -> int:
    """``panthor_gpu_l2_power_on()`` - Power-on the L2-cache."""
    if ptdev.gpu_info.l2_present != 1:
        # Only support one core group now (the driver only logs which).
        pass

    return await panthor_gpu_power_on(ptdev, "L2", 1, 20000)


async def panthor_gpu_flush_caches(ptdev: PanthorDevice, l2: int, lsc: int, other: int) -> int:
    """``panthor_gpu_flush_caches()`` - Flush caches."""
    gpu: PanthorGpu = ptdev.gpu
    timedout = False

    async with gpu.reqs_lock:
        if not drm_WARN_ON(ptdev.base, gpu.pending_reqs & R.GPU_IRQ_CLEAN_CACHES_COMPLETED):
            gpu.pending_reqs |= R.GPU_IRQ_CLEAN_CACHES_COMPLETED
            await gpu_write(ptdev, R.GPU_CMD, R.GPU_FLUSH_CACHES(l2, lsc, other))

    if not await _reqs_wait_timeout(ptdev, R.GPU_IRQ_CLEAN_CACHES_COMPLETED, 100):
        async with gpu.reqs_lock:
            if (gpu.pending_reqs & R.GPU_IRQ_CLEAN_CACHES_COMPLETED) != 0 and not (
                await gpu_read(ptdev, R.GPU_INT_RAWSTAT) & R.GPU_IRQ_CLEAN_CACHES_COMPLETED
            ):
                timedout = True
            else:
                gpu.pending_reqs &= ~R.GPU_IRQ_CLEAN_CACHES_COMPLETED

    if timedout:
        drm_err(ptdev.base, "Flush caches timeout")
        return -ETIMEDOUT

    return 0


async def panthor_gpu_soft_reset(ptdev: PanthorDevice) -> int:
    """``panthor_gpu_soft_reset()`` - Issue a soft-reset."""
    gpu: PanthorGpu = ptdev.gpu
    timedout = False

    async with gpu.reqs_lock:
        if not drm_WARN_ON(ptdev.base, gpu.pending_reqs & R.GPU_IRQ_RESET_COMPLETED):
            gpu.pending_reqs |= R.GPU_IRQ_RESET_COMPLETED
            await gpu_write(ptdev, R.GPU_INT_CLEAR, R.GPU_IRQ_RESET_COMPLETED)
            await gpu_write(ptdev, R.GPU_CMD, R.GPU_SOFT_RESET)

    if not await _reqs_wait_timeout(ptdev, R.GPU_IRQ_RESET_COMPLETED, 100):
        async with gpu.reqs_lock:
            if (gpu.pending_reqs & R.GPU_IRQ_RESET_COMPLETED) != 0 and not (
                await gpu_read(ptdev, R.GPU_INT_RAWSTAT) & R.GPU_IRQ_RESET_COMPLETED
            ):
                timedout = True
            else:
                gpu.pending_reqs &= ~R.GPU_IRQ_RESET_COMPLETED

    if timedout:
        drm_err(ptdev.base, "Soft reset timeout")
        return -ETIMEDOUT

    return 0


async def panthor_gpu_suspend(ptdev: PanthorDevice) -> None:
    """``panthor_gpu_suspend()`` - Suspend the GPU block."""
    assert ptdev.gpu.irq is not None
    # On a fast reset, simply power down the L2.
    if not ptdev.reset.fast:
        await panthor_gpu_soft_reset(ptdev)
    else:
        await panthor_gpu_power_off(ptdev, "L2", 1, 20000)

    await ptdev.gpu.irq.suspend()


async def panthor_gpu_resume(ptdev: PanthorDevice) -> None:
    """``panthor_gpu_resume()`` - Resume the GPU block."""
    assert ptdev.gpu.irq is not None
    await ptdev.gpu.irq.resume(GPU_INTERRUPTS_MASK)
    await panthor_gpu_l2_power_on(ptdev)
