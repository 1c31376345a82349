"""irq_work (kernel/irq_work.c): run a function soon, in interrupt context.

Fence code uses it to leave a callback's locking context (``dma_fence_chain``
re-arms itself from an irq_work, not from the fence callback, so that the
chain's lock is never taken under the signalled fence's lock). The model
runs queued irq_works on a per-run daemon thread ``irq_work`` in atomic
context, so *when* they run is a scheduling choice like any other. The
functions are ``async`` (they may spin on a fence lock held across a yield
point, and signal fences, whose callbacks yield).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from ..core.kernel import Kernel, current_kernel, preempt
from ..core.waitqueue import WaitQueue
from ..locking.spin import atomic_context

_KEY: Final = "irq_work"


class IrqWork:
    """``struct irq_work``: ``await func(work)`` runs once per queueing."""

    __slots__ = ("container", "func", "name", "pending")

    def __init__(
        self, func: Callable[[IrqWork], Awaitable[None]], name: str, container: object = None
    ) -> None:
        self.func = func
        self.name = name
        self.container = container
        self.pending = False


class _IrqWorkCpu:
    __slots__ = ("idle", "queue")

    def __init__(self) -> None:
        self.queue: deque[IrqWork] = deque()
        self.idle = WaitQueue("irq_work idle", klass="irq_work")


def _cpu(k: Kernel) -> _IrqWorkCpu:
    cpu: _IrqWorkCpu | None = k.objects.get(_KEY)
    if cpu is None:
        cpu = _IrqWorkCpu()
        k.objects[_KEY] = cpu
        k.spawn(_irq_work_thread, cpu, name="irq_work", daemon=True)
    return cpu


async def _irq_work_thread(cpu: _IrqWorkCpu) -> None:
    k = current_kernel()
    while True:
        while not cpu.queue:
            await cpu.idle.wait()
        await preempt()
        work = cpu.queue.popleft()
        work.pending = False
        k.ev("irq_work", work.name)
        with atomic_context():
            await work.func(work)


def irq_work_queue(work: IrqWork) -> bool:
    """``irq_work_queue()``: False if it was already pending. Callable from any context."""
    if work.pending:
        return False
    k = current_kernel()
    cpu = _cpu(k)
    work.pending = True
    cpu.queue.append(work)
    cpu.idle.wake_one()
    return True
