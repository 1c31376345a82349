"""Threaded interrupts (kernel/irq/manage.c, handle.c) and the panthor_irq pattern.

* An interrupt line is an :class:`IrqDesc`. The hardware model calls
  :meth:`IrqDesc.trigger` (synchronous, no argument) when an unmasked
  interrupt becomes pending; the line stays latched until its hard handler
  runs. The hard handlers of a line run on a per-line daemon thread
  ``hardirq/<n>`` in atomic context (so *when* the interrupt is taken is a
  scheduling choice, as on another CPU), one invocation at a time.
* ``request_threaded_irq(desc, handler, thread_fn, flags, name, dev_id)``: a
  hard handler returning ``IRQ_WAKE_THREAD`` wakes the action's thread
  ``irq/<n>-<name>``, which runs ``thread_fn``.
* ``synchronize_irq`` waits for a running hard handler and for every woken
  or running threaded handler (``threads_active``). ``disable_irq`` /
  ``enable_irq`` nest; a trigger while disabled is replayed on enable.
* :class:`PanthorIrq` is ``struct panthor_irq`` with the functions that
  ``PANTHOR_IRQ_HANDLER()`` generates (raw handler, threaded handler,
  suspend = mask + synchronize, resume = unmask, request), over register
  accessors the caller provides.

Handlers are ``async`` (they read device registers, which are yield points
in the hardware model); ``might_sleep()`` in a hard handler is reported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from ..core.failure import Failure
from ..core.kernel import Kernel, current, current_kernel, preempt
from ..core.thread import SimThread
from ..core.waitqueue import WaitQueue
from ..errno import EBUSY, EINVAL, ENOMEM
from ..locking.atomic import Atomic, atomic_read, atomic_set
from ..locking.lockdep import might_sleep
from ..mm.gfp import GFP_KERNEL
from ..mm.memory import kfree, kzalloc

IRQ_NONE: Final = 0
IRQ_HANDLED: Final = 1
IRQ_WAKE_THREAD: Final = 2

IRQF_SHARED: Final = 0x00000080
IRQF_ONESHOT: Final = 0x00002000

IrqHandler = Callable[[int, object], Awaitable[int]]


async def irq_default_primary_handler(irq: int, dev_id: object) -> int:
    """``irq_default_primary_handler()``: just wake the thread."""
    return IRQ_WAKE_THREAD


class IrqAction:
    """``struct irqaction``: one handler pair on a line."""

    def __init__(
        self,
        handler: IrqHandler,
        thread_fn: IrqHandler | None,
        flags: int,
        name: str,
        dev_id: object,
    ) -> None:
        self.handler = handler
        self.thread_fn = thread_fn
        self.flags = flags
        self.name = name
        self.dev_id = dev_id
        self.thread: SimThread | None = None
        self.runthread = False  # IRQTF_RUNTHREAD
        self.stop = False  # kthread_should_stop()
        self.wq = WaitQueue(f"irq thread {name} idle", klass="irq-thread-idle")


class IrqDesc:
    """``struct irq_desc``: an interrupt line; :meth:`trigger` is the hardware's hook."""

    def __init__(self, irq: int, name: str = "") -> None:
        self.irq = irq
        self.name = name or f"irq{irq}"
        self.actions: list[IrqAction] = []
        self.depth = 0  # disable_irq() nesting
        self.pending = False  # asserted, not yet handled
        self.in_progress = False  # IRQD_IRQ_INPROGRESS: a hard handler is running
        self.threads_active = 0
        self.hardirq_thread: SimThread | None = None
        self.hard_idle = WaitQueue(f"hardirq/{irq} idle", klass="hardirq-idle")
        self.sync_wq = WaitQueue(
            f"synchronize_irq({irq}) hard handler",
            klass="synchronize_irq",
            owner=lambda: self.hardirq_thread,
            describe=self._describe_hard,
        )
        self.wait_for_threads = WaitQueue(
            f"synchronize_irq({irq}) threads",
            klass="synchronize_irq",
            owner=self._active_thread,
            describe=self._describe_threads,
        )

    def __repr__(self) -> str:
        return (
            f"<irq {self.irq} {self.name} pending={self.pending} depth={self.depth} "
            f"threads_active={self.threads_active}>"
        )

    def _describe_hard(self) -> str:
        return f"synchronize_irq({self.irq} {self.name}): the hard handler is running"

    def _active_thread(self) -> SimThread | None:
        for a in self.actions:
            if a.runthread or (a.thread is not None and a.thread.blocked_on is not a.wq):
                return a.thread
        return None

    def _describe_threads(self) -> str:
        names = [a.name for a in self.actions if a.thread is not None]
        return (
            f"synchronize_irq({self.irq} {self.name}): {self.threads_active} threaded "
            f"handler run(s) outstanding ({', '.join(names)})"
        )

    def trigger(self) -> None:
        """The line is asserted (an unmasked interrupt became pending). Any context."""
        k = current_kernel()
        self.pending = True
        k.ev("irq", self.name, "asserted")
        if self.depth == 0:
            self.hard_idle.wake_one()

    raise_line = trigger


# ---------------------------------------------------------------------- threads


async def _hardirq_thread(desc: IrqDesc) -> None:
    """The CPU that takes this line's interrupts: ``handle_irq_event()``."""
    k = current_kernel()
    cur = current()
    while True:
        while not (desc.pending and desc.depth == 0 and desc.actions):
            await desc.hard_idle.wait()
        desc.pending = False
        desc.in_progress = True
        k.ev("hardirq", desc.name)
        cur.preempt_count += 1
        try:
            for action in list(desc.actions):
                ret = await action.handler(desc.irq, action.dev_id)
                if ret == IRQ_WAKE_THREAD:
                    _wake_thread(k, desc, action)
        finally:
            cur.preempt_count -= 1
            desc.in_progress = False
            desc.sync_wq.wake_all()


def _wake_thread(k: Kernel, desc: IrqDesc, action: IrqAction) -> None:
    """``__irq_wake_thread()``."""
    if action.thread is None:
        if not k.stopping:
            k.fail(
                Failure(
                    "warn",
                    f"IRQ {desc.irq} device {action.name} returned IRQ_WAKE_THREAD but no "
                    f"thread function available.",
                    signature=f"warn:irq-wake-no-thread:{action.name}",
                ),
                fatal=k.config.warn_fatal,
            )
        return
    if action.runthread:
        return
    action.runthread = True
    desc.threads_active += 1
    action.wq.wake_one()


async def _irq_thread(desc: IrqDesc, action: IrqAction) -> None:
    """``irq_thread()``: run ``thread_fn`` once per wake-up."""
    k = current_kernel()
    assert action.thread_fn is not None
    while True:
        while not action.runthread:
            if action.stop:
                return
            await action.wq.wait()
        action.runthread = False
        k.ev("irq_thread", action.name)
        await action.thread_fn(desc.irq, action.dev_id)
        desc.threads_active -= 1
        if desc.threads_active == 0:
            desc.wait_for_threads.wake_all()


# ---------------------------------------------------------------------- API


async def request_threaded_irq(
    desc: IrqDesc,
    handler: IrqHandler | None,
    thread_fn: IrqHandler | None,
    irqflags: int,
    devname: str,
    dev_id: object,
) -> int:
    """``request_threaded_irq()``: 0, -EINVAL, -EBUSY (not shareable) or -ENOMEM."""
    await preempt()
    k = current_kernel()
    if handler is None and thread_fn is None:
        return -EINVAL
    if irqflags & IRQF_SHARED and dev_id is None:
        return -EINVAL
    if desc.actions and not (
        irqflags & IRQF_SHARED and all(a.flags & IRQF_SHARED for a in desc.actions)
    ):
        return -EBUSY
    h = handler if handler is not None else irq_default_primary_handler
    action = await kzalloc(lambda: IrqAction(h, thread_fn, irqflags, devname, dev_id), GFP_KERNEL)
    if action is None:
        return -ENOMEM
    if thread_fn is not None:
        action.thread = k.spawn(
            _irq_thread, desc, action, name=f"irq/{desc.irq}-{devname}", daemon=True
        )
    if desc.hardirq_thread is None:
        desc.hardirq_thread = k.spawn(
            _hardirq_thread, desc, name=f"hardirq/{desc.irq}", daemon=True
        )
    desc.actions.append(action)
    k.ev("request_irq", desc.name, devname)
    if desc.pending and desc.depth == 0:
        desc.hard_idle.wake_one()
    return 0


devm_request_threaded_irq = request_threaded_irq


async def synchronize_hardirq(desc: IrqDesc) -> bool:
    """``synchronize_hardirq()``: wait for a running hard handler; True if no thread is active."""
    await preempt()
    while desc.in_progress:
        await desc.sync_wq.wait()
    return desc.threads_active == 0


async def synchronize_irq(desc: IrqDesc) -> None:
    """``synchronize_irq()``: wait for the hard handler and every outstanding threaded run."""
    await preempt()
    might_sleep()
    while desc.in_progress:
        await desc.sync_wq.wait()
    while desc.threads_active:
        await desc.wait_for_threads.wait()


def disable_irq_nosync(desc: IrqDesc) -> None:
    """``disable_irq_nosync()``."""
    desc.depth += 1


async def disable_irq(desc: IrqDesc) -> None:
    """``disable_irq()``: mask the line and wait for running handlers."""
    await preempt()
    disable_irq_nosync(desc)
    await synchronize_irq(desc)


async def enable_irq(desc: IrqDesc) -> None:
    """``enable_irq()``: a trigger latched while disabled is replayed."""
    await preempt()
    k = current_kernel()
    if desc.depth == 0:
        if not k.stopping:
            k.fail(
                Failure(
                    "warn",
                    f"Unbalanced enable for IRQ {desc.irq}",
                    signature=f"warn:irq-unbalanced-enable:{desc.name}",
                ),
                fatal=k.config.warn_fatal,
            )
        return
    desc.depth -= 1
    if desc.depth == 0 and desc.pending:
        desc.hard_idle.wake_one()


async def free_irq(desc: IrqDesc, dev_id: object) -> None:
    """``free_irq()``: remove the action, wait for its handlers, stop its thread."""
    await preempt()
    k = current_kernel()
    action = next((a for a in desc.actions if a.dev_id is dev_id), None)
    if action is None:
        if not k.stopping:
            k.fail(
                Failure(
                    "warn",
                    f"Trying to free already-free IRQ {desc.irq}",
                    signature=f"warn:free-free-irq:{desc.name}",
                ),
                fatal=k.config.warn_fatal,
            )
        return
    desc.actions.remove(action)
    await synchronize_irq(desc)
    if action.thread is not None:
        action.stop = True
        action.wq.wake_all()
        await action.thread.join()
    kfree(action)


# ---------------------------------------------------------------------- panthor_irq


@dataclass(frozen=True)
class IrqRegs:
    """The ``<PREFIX>_INT_RAWSTAT/CLEAR/MASK/STAT`` register offsets of one block."""

    rawstat: int
    clear: int
    mask: int
    stat: int


RegRead = Callable[[int], Awaitable[int]]
RegWrite = Callable[[int, int], Awaitable[None]]


class PanthorIrq:
    """``struct panthor_irq`` and what ``PANTHOR_IRQ_HANDLER(name, PREFIX, handler)`` makes.

    ``read``/``write`` are the device's ``gpu_read``/``gpu_write``;
    ``handler(status)`` is the block's handler (``panthor_mmu_irq_handler``),
    which may change :attr:`mask`.
    """

    def __init__(
        self,
        name: str,
        regs: IrqRegs,
        read: RegRead,
        write: RegWrite,
        handler: Callable[[int], Awaitable[None]],
    ) -> None:
        self.name = name
        self.regs = regs
        self.gpu_read = read
        self.gpu_write = write
        self.handler = handler
        self.mask = 0
        self.suspended = Atomic(0, f"{name}_irq.suspended")
        self.desc: IrqDesc | None = None

    def __repr__(self) -> str:
        return f"<panthor_irq {self.name} mask={self.mask:#x} suspended={self.suspended.v}>"

    async def raw_handler(self, irq: int, data: object) -> int:
        """``panthor_<name>_irq_raw_handler()``: IRQ_NONE, or mask everything and wake."""
        if await atomic_read(self.suspended):
            return IRQ_NONE
        if not await self.gpu_read(self.regs.stat):
            return IRQ_NONE
        await self.gpu_write(self.regs.mask, 0)
        return IRQ_WAKE_THREAD

    async def threaded_handler(self, irq: int, data: object) -> int:
        """``panthor_<name>_irq_threaded_handler()``: handle until RAWSTAT & mask is 0."""
        ret = IRQ_NONE
        while True:
            status = await self.gpu_read(self.regs.rawstat) & self.mask
            if not status:
                break
            await self.gpu_write(self.regs.clear, status)
            await self.handler(status)
            ret = IRQ_HANDLED
        if not await atomic_read(self.suspended):
            await self.gpu_write(self.regs.mask, self.mask)
        return ret

    async def suspend(self) -> None:
        """``panthor_<name>_irq_suspend()``: mask = 0, INT_MASK = 0, synchronize, suspended."""
        self.mask = 0
        await self.gpu_write(self.regs.mask, 0)
        assert self.desc is not None
        await synchronize_irq(self.desc)
        await atomic_set(self.suspended, 1)

    async def resume(self, mask: int) -> None:
        """``panthor_<name>_irq_resume()``: not suspended, CLEAR = mask, INT_MASK = mask."""
        await atomic_set(self.suspended, 0)
        self.mask = mask
        await self.gpu_write(self.regs.clear, mask)
        await self.gpu_write(self.regs.mask, mask)

    async def request(self, desc: IrqDesc, mask: int) -> int:
        """``panthor_request_<name>_irq()``: resume with ``mask``, then the shared threaded IRQ."""
        self.desc = desc
        await self.resume(mask)
        return await devm_request_threaded_irq(
            desc,
            self.raw_handler,
            self.threaded_handler,
            IRQF_SHARED,
            f"panthor-{self.name}",
            self,
        )
