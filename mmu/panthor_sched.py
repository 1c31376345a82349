"""drivers/gpu/drm/panthor/panthor_sched.c: the hooks panthor_mmu.c calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sched.core.kernel import preempt

if TYPE_CHECKING:
    from .panthor_device import PanthorDevice


async def panthor_sched_report_mmu_fault(ptdev: PanthorDevice) -> None:
    """``panthor_sched_report_mmu_fault()``: force a tick to kill faulty groups at once."""
    await preempt()  # ptdev->scheduler is read without a lock
    if ptdev.scheduler:
        await ptdev.scheduler.queue_tick(0)
