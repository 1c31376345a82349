"""A device with the scheduler, the CSF model and the job IRQ, for the GPU-job tests.

A thin wrapper around :mod:`panthor_testbed.mmu.bringup` (the driver's own
device init, reset work and unplug).
"""

from __future__ import annotations

from panthor_testbed.mmu.bringup import device_fini, device_init
from panthor_testbed.mmu.hw.csf import CsfConfig
from panthor_testbed.mmu.hw.mmu_hw import hw_of
from panthor_testbed.mmu.panthor_device import PanthorDevice
from panthor_testbed.sched import Kernel


def resets(k: Kernel) -> int:
    """How many GPU soft resets completed in the run (the reset work's GPU_CMD)."""
    return hw_of(k).soft_resets


async def bring_up(
    k: Kernel,
    *,
    as_present: int = 0xFF,
    dram: int = 64 << 20,
    csf: CsfConfig | None = None,
) -> PanthorDevice:
    return await device_init(k, as_present=as_present, dram=dram, csf=csf)


async def tear_down(ptdev: PanthorDevice) -> None:
    """Unplug and release the device (after every file was closed and every group released)."""
    await device_fini(ptdev)
