"""``spinlock_t`` for the kernel objects: ``fence->lock``, ``job_list_lock``, ``rq->lock``...

A :class:`SyncSpinLock` is tracked by lockdep like any other lock (so
``fence->lock`` gets its edges), and holding it is atomic context
(``preempt_count`` > 0, so a ``might_sleep()`` inside is reported). It is
taken in one of two ways:

* ``with lock:`` (synchronous) around a section with no yield point. Mutual
  exclusion is then free: nothing can interleave with the section. Taking it
  this way while another thread holds it is a model bug (an
  ``invariant`` finding): every site of a lock that some section holds
  across a yield point must use the second form.
* ``async with lock:`` (or ``await lock.lock()`` ... ``lock.release()``)
  around a section that contains yield points, because the kernel touches
  state there that the lock does not order (``fence->lock`` while the
  signaller runs the callbacks, which test bits and queue work; other CPUs
  test ``SIGNALED`` locklessly meanwhile). A contender waits (spins) until
  the holder releases it. Taking the lock is not a yield point by itself:
  the caller places the yield points the kernel needs.

Also here: :func:`atomic_context`, which marks a synchronous callback (a
timer, a hard IRQ) as atomic context for the checks above, and
:func:`softirq`, which turns the async body of a timer callback into work
for a daemon thread (so the body's yield points are real).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType

from ..core.failure import Failure, InvariantViolation
from ..core.frames import fast_site, format_site
from ..core.kernel import Kernel, current, current_kernel
from ..core.thread import SimThread
from ..core.waitqueue import WaitQueue
from .lockdep import LockdepMap


class SyncSpinLock:
    """``spinlock_t`` (irqsave): ``with`` around a section that never yields,
    ``async with`` around one that does (contenders wait).

    ``key`` is the lockdep class (one per ``spin_lock_init()`` site).
    """

    __slots__ = ("dep_map", "name", "owner", "spinners")

    def __init__(self, name: str, key: str | None = None) -> None:
        self.name = name
        self.dep_map = LockdepMap(name, key)
        self.owner: SimThread | None = None
        self.spinners: WaitQueue | None = None  # threads spinning on it (made on first need)

    def __repr__(self) -> str:
        owner = self.owner.label if self.owner is not None else "unlocked"
        return f"<spinlock {self.name} {owner}>"

    def _recursion(self, k: Kernel, cur: SimThread) -> None:
        site = format_site(fast_site(3))
        if k.lockdep is not None:
            k.lockdep.acquire(k, cur, self.dep_map)  # reports the recursion
        k.fail(
            Failure(
                "deadlock",
                f"{cur.label} takes spinlock {self.name} it already holds (at {site})",
                signature=f"deadlock:spinlock-aa:{self.dep_map.key}",
            )
        )

    def acquire(self) -> None:
        """``spin_lock_irqsave()`` around a section with no yield point."""
        k = current_kernel()
        cur = k.current
        assert cur is not None
        if self.owner is cur:
            self._recursion(k, cur)
        if self.owner is not None:
            raise InvariantViolation(
                f"spinlock {self.name} held by {self.owner.label} across a yield point "
                f"(taken synchronously by {cur.label} at {format_site(fast_site(2))}: "
                f"that site must use `async with`)",
                signature=f"invariant:spinlock-yield:{self.dep_map.key}",
            )
        if k.lockdep is not None:
            k.lockdep.acquire(k, cur, self.dep_map)
        cur.preempt_count += 1
        self.owner = cur

    async def lock(self) -> None:
        """``spin_lock_irqsave()`` around a section that yields: spin while it is held.

        Not a yield point when the lock is free (callers place theirs).
        """
        k = current_kernel()
        cur = k.current
        assert cur is not None
        if self.owner is cur:
            self._recursion(k, cur)
        if k.lockdep is not None:
            k.lockdep.acquire(k, cur, self.dep_map)
        while self.owner is not None:
            spinners = self.spinners
            if spinners is None:
                spinners = self.spinners = WaitQueue(
                    f"spinlock {self.name}",
                    klass=f"spinlock {self.dep_map.key}",
                    owner=self._holder,
                )
            await spinners.wait()  # spinning on another CPU
        cur.preempt_count += 1
        self.owner = cur

    def _holder(self) -> SimThread | None:
        return self.owner

    def release(self) -> None:
        """``spin_unlock_irqrestore()``."""
        k = current_kernel()
        cur = k.current
        assert cur is not None
        if self.owner is not cur:
            holder = self.owner.label if self.owner is not None else "nobody"
            k.fail(
                Failure(
                    "warn",
                    f"{cur.label} unlocks spinlock {self.name} held by {holder} "
                    f"(at {format_site(fast_site(2))})",
                    signature=f"warn:spinlock-unlock-owner:{self.dep_map.key}",
                ),
                fatal=k.config.warn_fatal,
            )
            return
        cur.preempt_count -= 1
        self.owner = None
        if k.lockdep is not None:
            k.lockdep.release(k, cur, self.dep_map)
        if self.spinners is not None:
            self.spinners.wake_one()

    def held_by_current(self) -> bool:
        k = current_kernel()
        return self.owner is not None and self.owner is k.current

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.owner is not None:
            self.release()

    async def __aenter__(self) -> None:
        await self.lock()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.owner is not None:
            self.release()


@contextlib.contextmanager
def atomic_context() -> Iterator[None]:
    """Run a synchronous callback (timer = softirq, hard IRQ) as atomic context."""
    k = current_kernel()
    cur = k.current
    assert cur is not None
    cur.preempt_count += 1
    try:
        yield
    finally:
        cur.preempt_count -= 1


def softirq(fn: Callable[[], Awaitable[object]], name: str = "softirq") -> Callable[[], None]:
    """A timer callback whose body ``fn`` (async) runs in softirq (atomic) context, e.g.
    ``k.add_timer(ns, softirq(lambda: dma_fence_signal(f)), "gpu")``.

    Timer callbacks are synchronous, so the timer only hands the body over:
    each expiry spawns a daemon thread ``softirq/<name>`` that runs it. The
    body's yield points are then real (another CPU runs meanwhile, as when a
    timer fires on another CPU), and it may spin on a lock held across a
    yield point.
    """

    def fire() -> None:
        k = current_kernel()
        if not k.stopping:
            k.spawn(_softirq_thread, fn, name=f"softirq/{name}", daemon=True)

    return fire


async def _softirq_thread(fn: Callable[[], Awaitable[object]]) -> None:
    cur = current()
    cur.preempt_count += 1
    await fn()
    cur.preempt_count -= 1
