"""Wait queues: the one blocking mechanism every primitive reuses."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable

from .failure import ExecutorError
from .kernel import _BLOCKED, current_kernel
from .thread import SimThread


class WaitQueue:
    """FIFO of blocked threads, like ``wait_queue_head_t``.

    ``klass`` groups wait queues of the same kind (every VM's op_lock) in
    de-duplication signatures; ``owner`` names who would wake the waiters
    (the lock holder), for deadlock reports.
    """

    __slots__ = ("describe_fn", "klass", "name", "owner", "waiters")

    def __init__(
        self,
        name: str,
        *,
        klass: str | None = None,
        owner: Callable[[], SimThread | None] | None = None,
        describe: Callable[[], str] | None = None,
    ) -> None:
        self.name = name
        self.klass = klass or name
        self.owner = owner
        self.describe_fn = describe
        self.waiters: deque[SimThread] = deque()

    def describe(self) -> str:
        return self.describe_fn() if self.describe_fn is not None else self.name

    def holder(self) -> SimThread | None:
        return self.owner() if self.owner is not None else None

    def forget(self, t: SimThread) -> None:
        """Drop a waiter whose wait timed out."""
        with contextlib.suppress(ValueError):
            self.waiters.remove(t)

    async def wait(self, timeout_ns: int | None = None) -> bool:
        """Block the running thread until woken; False if the timeout hit first.

        Not a yield point by itself: callers check their condition and wait
        atomically (no yield in between), exactly like prepare_to_wait().
        """
        k = current_kernel()
        cur = k.current
        if cur is None:
            raise ExecutorError("wait() outside a simulated thread")
        self.waiters.append(cur)
        return await k.block_current(self, timeout_ns)

    def wake_one(self) -> SimThread | None:
        """Wake the oldest waiter; returns it (or None if nobody waited)."""
        waiters = self.waiters
        while waiters:
            t = waiters.popleft()
            if t.state is _BLOCKED and t.blocked_on is self:
                k = current_kernel()
                k.make_runnable(t)
                k.ev("wake", t.label, self.name)
                return t
        return None

    def wake_all(self) -> int:
        n = 0
        while self.wake_one() is not None:
            n += 1
        return n

    def __len__(self) -> int:
        return len(self.waiters)

    def __repr__(self) -> str:
        return f"<WaitQueue {self.name} waiters={[t.label for t in self.waiters]}>"
