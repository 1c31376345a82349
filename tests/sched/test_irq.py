"""Threaded IRQs and the panthor_irq pattern, on a small fake interrupt register block."""

from __future__ import annotations

from panthor_testbed.sched import (
    IRQ_HANDLED,
    IRQ_NONE,
    IRQ_WAKE_THREAD,
    IRQF_SHARED,
    IrqDesc,
    IrqRegs,
    Kernel,
    Mutex,
    PanthorIrq,
    disable_irq,
    enable_irq,
    free_irq,
    might_sleep,
    mutex_lock,
    mutex_unlock,
    preempt,
    request_threaded_irq,
    synchronize_irq,
)
from panthor_testbed.sched.core.harness import aexplore_all, arun

REGS = IrqRegs(rawstat=0x00, clear=0x04, mask=0x08, stat=0x0C)


class FakeIntRegs:
    """RAWSTAT latches raised bits; STAT = RAWSTAT & MASK; the line follows STAT != 0.

    ``raise_irq`` and MASK writes call ``desc.trigger()`` when an unmasked
    interrupt becomes pending, as the hardware model does.
    """

    def __init__(self, desc: IrqDesc) -> None:
        self.desc = desc
        self.rawstat = 0
        self.mask = 0
        self.log: list[str] = []

    def _line(self) -> bool:
        return bool(self.rawstat & self.mask)

    def raise_irq(self, bits: int) -> None:
        before = self._line()
        self.rawstat |= bits
        if self._line() and not before:
            self.desc.trigger()

    async def read(self, off: int) -> int:
        await preempt()
        if off == REGS.rawstat:
            return self.rawstat
        if off == REGS.stat:
            return self.rawstat & self.mask
        if off == REGS.mask:
            return self.mask
        return 0

    async def write(self, off: int, val: int) -> None:
        await preempt()
        self.log.append(f"{off:#x}={val:#x}")
        if off == REGS.clear:
            self.rawstat &= ~val
        elif off == REGS.mask:
            before = self._line()
            self.mask = val
            if self._line() and not before:
                self.desc.trigger()


def make(k: Kernel, handled: list[int]) -> tuple[IrqDesc, FakeIntRegs, PanthorIrq]:
    desc = IrqDesc(42, "mmu")
    regs = FakeIntRegs(desc)

    async def handler(status: int) -> None:
        handled.append(status)

    pirq = PanthorIrq("mmu", REGS, regs.read, regs.write, handler)
    return desc, regs, pirq


async def test_raw_handler_masks_and_wakes_the_thread() -> None:
    handled: list[int] = []

    async def body(k: Kernel) -> None:
        desc, regs, pirq = make(k, handled)
        assert await pirq.request(desc, 0xFFFF) == 0
        assert regs.mask == 0xFFFF
        regs.raise_irq(0x5)
        await synchronize_irq(desc)  # nothing running yet: returns at once
        await k.sleep_ns(1_000)
        assert handled == [0x5]
        assert regs.rawstat == 0 and regs.mask == 0xFFFF  # cleared, re-enabled
        assert regs.log[-3:] == ["0x8=0x0", "0x4=0x5", "0x8=0xffff"]
        await free_irq(desc, pirq)

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]


async def test_interrupt_while_masked_is_latched() -> None:
    handled: list[int] = []

    async def body(k: Kernel) -> None:
        desc, regs, pirq = make(k, handled)
        assert await pirq.request(desc, 0x0) == 0  # everything masked
        regs.raise_irq(0x2)
        await k.sleep_ns(1_000)
        assert handled == []
        await pirq.resume(0x2)  # resume clears then unmasks: a stale latch is dropped
        await k.sleep_ns(1_000)
        assert handled == []
        regs.raise_irq(0x1)  # masked (only bit 1 is in the mask): latched
        await k.sleep_ns(1_000)
        pirq.mask = 0x3
        await regs.write(REGS.mask, 0x3)  # unmasking the latched bit raises the line
        await k.sleep_ns(1_000)
        assert handled == [0x1]
        await free_irq(desc, pirq)

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]


async def test_suspend_masks_and_waits_for_a_running_handler() -> None:
    """``_irq_suspend``: after it returns no handler runs and none is running."""
    handled: list[int] = []
    events: list[str] = []

    async def body(k: Kernel) -> None:
        desc = IrqDesc(42, "mmu")
        regs = FakeIntRegs(desc)

        async def slow_handler(status: int) -> None:
            events.append("handler-start")
            await k.sleep_ns(1_000_000)
            handled.append(status)
            events.append("handler-end")

        pirq = PanthorIrq("mmu", REGS, regs.read, regs.write, slow_handler)
        await pirq.request(desc, 0xFFFF)
        regs.raise_irq(0x1)
        while not events:
            await k.sleep_ns(1_000)
        await pirq.suspend()
        events.append("suspended")
        assert regs.mask == 0 and pirq.suspended.v == 1
        regs.raise_irq(0x2)  # masked now: nothing happens
        await k.sleep_ns(1_000_000)
        await pirq.resume(0xFFFF)
        events.append("resumed")
        await k.sleep_ns(1_000)
        await free_irq(desc, pirq)

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    assert events == ["handler-start", "handler-end", "suspended", "resumed"]
    assert handled == [0x1]  # the 0x2 raised while suspended was cleared by resume


async def test_suspend_resume_under_the_explorer() -> None:
    """Raise / suspend / resume in every order: never a handler after suspend returned,
    never a lost interrupt raised after resume, never a hang."""

    async def scenario(k: Kernel) -> None:
        handled: list[int] = []
        st = {"suspended": False}
        desc, regs, pirq = make(k, handled)

        async def handler(status: int) -> None:
            assert not st["suspended"], "handler ran after suspend returned"
            handled.append(status)

        pirq.handler = handler
        await pirq.request(desc, 0xFFFF)

        async def hw() -> None:
            regs.raise_irq(0x1)
            await preempt()

        t = k.spawn(hw, name="gpu")
        await pirq.suspend()
        st["suspended"] = True
        await t.join()
        st["suspended"] = False
        await pirq.resume(0xFFFF)
        regs.raise_irq(0x4)
        while 0x4 not in handled:
            await k.sleep_ns(1_000)
        await free_irq(desc, pirq)

    r = await aexplore_all(scenario, preemption_bound=2)
    assert r.complete and not r.failing, [k.primary_failure for k, _ in r.failing]


async def test_hard_handler_is_atomic_context() -> None:
    async def body(k: Kernel) -> None:
        desc = IrqDesc(7, "bad")

        async def hard(irq: int, dev: object) -> int:
            might_sleep()
            return IRQ_HANDLED

        assert await request_threaded_irq(desc, hard, None, 0, "bad", None) == 0
        desc.trigger()
        await k.sleep_ns(1_000)
        await free_irq(desc, None)

    k = await arun(body)
    assert [f.signature.split(":")[1] for f in k.failures] == ["atomic-sleep"]


async def test_thread_runs_once_per_wake_and_synchronize_waits_for_it() -> None:
    events: list[str] = []

    async def body(k: Kernel) -> None:
        desc = IrqDesc(9, "dev")
        lock = Mutex("dev->lock", "&dev->lock")

        async def hard(irq: int, dev: object) -> int:
            return IRQ_WAKE_THREAD

        async def thread_fn(irq: int, dev: object) -> int:
            events.append("thread-start")
            await mutex_lock(lock)
            await k.sleep_ns(1_000_000)
            await mutex_unlock(lock)
            events.append("thread-end")
            return IRQ_HANDLED

        assert await request_threaded_irq(desc, hard, thread_fn, IRQF_SHARED, "dev", desc) == 0
        desc.trigger()
        await k.sleep_ns(10)
        await synchronize_irq(desc)
        events.append("synchronized")
        await disable_irq(desc)
        desc.trigger()  # latched while disabled
        await k.sleep_ns(10_000)
        assert events.count("thread-start") == 1
        await enable_irq(desc)  # replayed
        await synchronize_irq(desc)
        await k.sleep_ns(10)
        await synchronize_irq(desc)
        await free_irq(desc, desc)

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    assert events == ["thread-start", "thread-end", "synchronized", "thread-start", "thread-end"]


async def test_shared_line_needs_shared_flags() -> None:
    async def body(k: Kernel) -> None:
        desc = IrqDesc(3, "line")

        async def hard(irq: int, dev: object) -> int:
            return IRQ_NONE

        assert await request_threaded_irq(desc, hard, None, 0, "a", None) == 0
        assert await request_threaded_irq(desc, hard, None, IRQF_SHARED, "b", 1) == -16
        await free_irq(desc, None)

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
