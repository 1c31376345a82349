"""``struct completion`` (kernel/sched/completion.c)."""

from __future__ import annotations

from typing import Final

from ..core.kernel import current_kernel, preempt
from ..core.waitqueue import WaitQueue
from .lockdep import might_sleep

UINT_MAX: Final = (1 << 32) - 1


class Completion:
    __slots__ = ("done", "name", "wq")

    def __init__(self, name: str = "completion") -> None:
        self.name = name
        self.done = 0
        self.wq = WaitQueue(f"completion {name}", klass="completion", describe=self._describe)

    def _describe(self) -> str:
        return f"completion {self.name} (done={self.done})"

    def __repr__(self) -> str:
        return f"<completion {self.name} done={self.done}>"


async def complete(c: Completion) -> None:
    await preempt()
    complete_locked(c)


def complete_locked(c: Completion) -> None:
    """The body of complete(), for callers that cannot yield (timers, IRQ handlers)."""
    if c.done != UINT_MAX:
        c.done += 1
    current_kernel().ev("complete", c.name)
    c.wq.wake_one()


async def complete_all(c: Completion) -> None:
    await preempt()
    c.done = UINT_MAX
    current_kernel().ev("complete_all", c.name)
    c.wq.wake_all()


async def wait_for_completion(c: Completion) -> None:
    await preempt()
    might_sleep()
    while not c.done:
        await c.wq.wait()
    if c.done != UINT_MAX:
        c.done -= 1


async def wait_for_completion_timeout(c: Completion, timeout_ns: int) -> int:
    """Returns 0 on timeout, else the time left (>= 1), like the jiffies variant."""
    await preempt()
    might_sleep()
    k = current_kernel()
    deadline = k.now + timeout_ns
    while not c.done:
        left = deadline - k.now
        if (left <= 0 or not await c.wq.wait(left)) and not c.done:
            return 0
    if c.done != UINT_MAX:
        c.done -= 1
    return max(1, deadline - k.now)


async def try_wait_for_completion(c: Completion) -> bool:
    await preempt()
    if not c.done:
        return False
    if c.done != UINT_MAX:
        c.done -= 1
    return True


def completion_done(c: Completion) -> bool:
    return c.done != 0


def reinit_completion(c: Completion) -> None:
    c.done = 0
