"""Spinlocks whose critical sections never yield: ``fence->lock``, ``job_list_lock``...

The kernel objects of issue #3 run code in atomic context that cannot be an
``async`` function: dma-fence callbacks run synchronously in the signaller
under ``fence->lock``, timers and hard IRQ handlers queue work. Their locks
are modelled by :class:`SyncSpinLock`: taking it is synchronous (a ``with``
block), it is tracked by lockdep like any other lock (so ``fence->lock`` gets
its edges), and holding it is atomic context (``preempt_count`` > 0, so a
``might_sleep()`` inside is reported). Mutual exclusion is free: a section
that contains no yield point cannot be interleaved with anything.

Also here: :func:`atomic_context`, which marks a synchronous callback (a
timer, a hard IRQ) as atomic context for the checks above.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from types import TracebackType

from ..core.failure import Failure, InvariantViolation
from ..core.frames import fast_site, format_site
from ..core.kernel import current_kernel
from ..core.thread import SimThread
from .lockdep import LockdepMap


class SyncSpinLock:
    """``spinlock_t`` (irqsave) taken only around code that does not yield.

    ``key`` is the lockdep class (one per ``spin_lock_init()`` site).
    """

    __slots__ = ("dep_map", "name", "owner")

    def __init__(self, name: str, key: str | None = None) -> None:
        self.name = name
        self.dep_map = LockdepMap(name, key)
        self.owner: SimThread | None = None

    def __repr__(self) -> str:
        owner = self.owner.label if self.owner is not None else "unlocked"
        return f"<spinlock {self.name} {owner}>"

    def acquire(self) -> None:
        """``spin_lock_irqsave()``."""
        k = current_kernel()
        cur = k.current
        assert cur is not None
        if self.owner is cur:
            site = format_site(fast_site(2))
            if k.lockdep is not None:
                k.lockdep.acquire(k, cur, self.dep_map)  # reports the recursion
            k.fail(
                Failure(
                    "deadlock",
                    f"{cur.label} takes spinlock {self.name} it already holds (at {site})",
                    signature=f"deadlock:spinlock-aa:{self.dep_map.key}",
                )
            )
        if self.owner is not None:
            raise InvariantViolation(
                f"spinlock {self.name} held by {self.owner.label} across a yield point "
                f"(taken again by {cur.label} at {format_site(fast_site(2))})",
                signature=f"invariant:spinlock-yield:{self.dep_map.key}",
            )
        if k.lockdep is not None:
            k.lockdep.acquire(k, cur, self.dep_map)
        cur.preempt_count += 1
        self.owner = cur

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


def softirq(fn: Callable[[], object]) -> Callable[[], None]:
    """Wrap a timer callback so it runs as softirq (atomic) context, e.g.
    ``k.add_timer(ns, softirq(lambda: dma_fence_signal_atomic(f)), "gpu")``."""

    def run() -> None:
        with atomic_context():
            fn()

    return run
