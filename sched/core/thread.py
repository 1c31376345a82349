"""Simulated kernel threads (one coroutine each, driven by the run)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from ..locking.lockdep import HeldLock
    from .kernel import Timer
    from .waitqueue import WaitQueue


# The choice that fires the earliest pending timer (an interrupt, a hardware
# completion, a timeout), and the tid of the pseudo-thread standing for it.
IRQ_TID: Final = 1 << 20


class ThreadState(IntEnum):
    RUNNABLE = 0
    BLOCKED = 1
    DONE = 2


class BlockReason(Protocol):
    """What a blocked thread waits on, for deadlock reports."""

    name: str

    def describe(self) -> str: ...

    def holder(self) -> SimThread | None: ...


class SimThread:
    """One kernel execution context: an ioctl caller, a worker, an IRQ thread.

    ``tid`` is the spawn order within the run (0 is the scenario's ``init``);
    choice lists name threads by tid.
    """

    __slots__ = (
        "args",
        "blocked_on",
        "coro",
        "ctx",
        "daemon",
        "exit_wq",
        "fn",
        "held",
        "name",
        "preempt_count",
        "started",
        "state",
        "tid",
        "timer",
        "woken",
    )

    def __init__(
        self,
        tid: int,
        name: str,
        fn: Callable[..., Awaitable[Any]] | None,
        args: tuple[Any, ...],
        daemon: bool,
    ) -> None:
        self.tid = tid
        self.name = name
        self.fn = fn
        self.args = args
        self.daemon = daemon
        self.state = ThreadState.RUNNABLE
        self.coro: Coroutine[Any, Any, None] | None = None  # created when first run
        self.started = False
        self.blocked_on: BlockReason | None = None
        self.woken = False  # result of the last wait: woken (True) or timed out
        self.timer: Timer | None = None
        self.exit_wq: WaitQueue | None = None
        self.held: list[HeldLock] = []  # lockdep's held-lock stack
        self.preempt_count = 0  # > 0: atomic context (spinlock held, hard IRQ)
        self.ctx: dict[str, Any] = {}  # per-thread model state (e.g. the running work)

    @property
    def label(self) -> str:
        return f"T{self.tid} {self.name}" if self.tid >= 0 else self.name

    def __repr__(self) -> str:
        return f"<SimThread {self.label} {self.state.name}>"

    async def join(self) -> None:
        """Wait until this thread has exited (``kthread_stop``-like join)."""
        from .kernel import preempt

        await preempt()
        while self.state is not ThreadState.DONE:
            if self.exit_wq is None:
                from .waitqueue import WaitQueue

                self.exit_wq = WaitQueue(f"exit of T{self.tid}", klass="thread-exit")
            await self.exit_wq.wait()
