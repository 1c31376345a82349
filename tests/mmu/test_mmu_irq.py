"""The MMU interrupt line driving the core's threaded IRQ and PANTHOR_IRQ_HANDLER pattern."""

from __future__ import annotations

from panthor_testbed.mmu import regs as R
from panthor_testbed.mmu.hw.mmu_hw import MaliHw
from panthor_testbed.mmu.physmem import PhysMem
from panthor_testbed.sched import Kernel, udelay
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.deferred.irq import IrqDesc, IrqRegs, PanthorIrq, free_irq

MMU_IRQ_REGS = IrqRegs(R.MMU_INT_RAWSTAT, R.MMU_INT_CLEAR, R.MMU_INT_MASK, R.MMU_INT_STAT)


def test_a_fault_runs_the_threaded_handler_and_a_masked_as_stays_latched() -> None:
    async def scenario(k: Kernel) -> None:
        hw = MaliHw(PhysMem(size=4 << 20).install()).install()
        seen: list[tuple[int, int]] = []
        pirq: PanthorIrq

        async def mmu_irq_handler(status: int) -> None:
            # The shape of panthor_mmu_irq_handler(): read the fault, mask the AS.
            as_nr = (status & -status).bit_length() - 1
            seen.append((status, await hw.read32(R.AS_FAULTSTATUS(as_nr))))
            pirq.mask = ~(1 << as_nr) & 0xFFFF
            await hw.write32(R.MMU_INT_MASK, pirq.mask)

        pirq = PanthorIrq("mmu", MMU_IRQ_REGS, hw.read32, hw.write32, mmu_irq_handler)
        desc = IrqDesc(42, "mmu")
        hw.set_mmu_irq_handler(desc.trigger)
        assert await pirq.request(desc, 0xFFFF) == 0

        hw.latch_fault(3, 0x1000, 0xC3 | (2 << 8))
        await udelay(10)  # let the hard handler and the thread run
        assert seen == [(1 << 3, 0xC3 | (2 << 8))]
        assert await hw.read32(R.MMU_INT_MASK) == 0xFFFF & ~(1 << 3)
        assert await hw.read32(R.MMU_INT_RAWSTAT) == 0  # the thread wrote CLEAR

        hw.latch_fault(3, 0x2000, 0xC8 | (3 << 8))  # masked: latched only
        await udelay(10)
        assert len(seen) == 1 and await hw.read32(R.MMU_INT_RAWSTAT) == 1 << 3

        # panthor_vm_active(): clear the AS fault, restore the mask: nothing pending now.
        await hw.write32(R.MMU_INT_CLEAR, 1 << 3)
        pirq.mask = 0xFFFF
        await hw.write32(R.MMU_INT_MASK, pirq.mask)
        hw.latch_fault(5, 0x3000, 0xC1 | (3 << 8))
        await udelay(10)
        assert seen[1:] == [(1 << 5, 0xC1 | (3 << 8))]

        await pirq.suspend()
        hw.latch_fault(6, 0x4000, 0xC0)  # suspended: INT_MASK is 0
        await udelay(10)
        assert len(seen) == 2
        await pirq.resume(0xFFFF)  # resume writes CLEAR first: the latched fault is dropped
        await udelay(10)
        assert len(seen) == 2
        await free_irq(desc, pirq)

    k = run(scenario)
    assert k.failures == [], "\n".join(f.message + "\n" + f.report for f in k.failures)
