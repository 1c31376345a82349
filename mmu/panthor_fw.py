"""panthor_fw.c: the firmware calls the device and the seed make."""

from __future__ import annotations

from .panthor_device import PanthorDevice
from .panthor_fw_iface import (
    panthor_fw_post_reset,
    panthor_fw_pre_reset,
    panthor_fw_sched,
    panthor_fw_sched_init,
)

__all__ = [
    "panthor_fw_init",
    "panthor_fw_post_reset",
    "panthor_fw_pre_reset",
    "panthor_fw_unplug",
]


async def panthor_fw_init(ptdev: PanthorDevice) -> int:
    """``panthor_fw_init()``."""
    return await panthor_fw_sched_init(ptdev)


async def panthor_fw_unplug(ptdev: PanthorDevice) -> None:
    """``panthor_fw_unplug()``."""
    # Make sure the IRQ handler cannot be called after that point.
    await panthor_fw_sched(ptdev).irq.suspend()
