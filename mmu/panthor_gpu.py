"""panthor_gpu.c: the GPU-control block as far as reset and power management need it.

The seed never calls this file directly; the device's reset work and runtime PM
do (``panthor_gpu_soft_reset``, ``panthor_gpu_l2_power_on``,
``panthor_gpu_suspend``/``resume``, ``panthor_gpu_unplug``).
"""

from __future__ import annotations

from ..sched.core.clock import read_poll_timeout
from . import regs as R
from .panthor_device import PanthorDevice, gpu_read, gpu_write


async def panthor_gpu_unplug(ptdev: PanthorDevice) -> None:
    """``panthor_gpu_unplug()``."""


async def panthor_gpu_l2_power_on(ptdev: PanthorDevice) -> int:
    """``panthor_gpu_l2_power_on()``."""
    return 0


async def panthor_gpu_soft_reset(ptdev: PanthorDevice) -> int:
    """``panthor_gpu_soft_reset()``, polling RAWSTAT."""
    await gpu_write(ptdev, R.GPU_INT_CLEAR, R.GPU_IRQ_RESET_COMPLETED)
    await gpu_write(ptdev, R.GPU_CMD, R.GPU_SOFT_RESET)

    async def rawstat() -> int:
        return await gpu_read(ptdev, R.GPU_INT_RAWSTAT)

    ret, _ = await read_poll_timeout(
        rawstat, lambda v: bool(v & R.GPU_IRQ_RESET_COMPLETED), 10, 100000, atomic=False
    )
    await gpu_write(ptdev, R.GPU_INT_CLEAR, R.GPU_IRQ_RESET_COMPLETED)
    return ret
