"""Sleeping locks and spinlocks, with lockdep and owner tracking.

Every operation is a yield point (taken before the operation itself).
"""

from __future__ import annotations

from collections.abc import Coroutine
from types import TracebackType
from typing import Any

from ..core.failure import Failure
from ..core.frames import fast_site, format_site
from ..core.kernel import Kernel, current_kernel, preempt
from ..core.thread import SimThread
from ..core.waitqueue import WaitQueue
from .lockdep import LockdepMap, might_sleep


def _warn(k: Kernel, msg: str, sig: str) -> None:
    k.fail(Failure("warn", msg, signature=sig), fatal=k.config.warn_fatal)


class Mutex:
    """``struct mutex`` (CONFIG_DEBUG_MUTEXES): owner-tracked, FIFO wake-up.

    ``key`` is the lockdep class (one per init site, e.g. ``&vm->op_lock``);
    ``name`` names this instance in traces and reports.
    """

    __slots__ = ("_wq", "dep_map", "destroyed", "name", "owner")

    kind = "mutex"

    def __init__(self, name: str, key: str | None = None) -> None:
        self.name = name
        self.dep_map = LockdepMap(name, key)
        self.owner: SimThread | None = None
        self.destroyed = False
        self._wq: WaitQueue | None = None  # made on first contention

    @property
    def wq(self) -> WaitQueue:
        wq = self._wq
        if wq is None:
            wq = self._wq = WaitQueue(
                f"{self.kind} {self.name}",
                klass=f"{self.kind} {self.dep_map.key}",
                owner=self._owner,
            )
        return wq

    def _owner(self) -> SimThread | None:
        return self.owner

    def __repr__(self) -> str:
        owner = self.owner.label if self.owner else "unlocked"
        return f"<{self.kind} {self.name} {owner}>"

    def _check_alive(self, k: Kernel) -> None:
        if self.destroyed:
            _warn(
                k,
                f"DEBUG_LOCKS_WARN_ON(lock->magic != lock): {self.kind} {self.name} used after "
                f"mutex_destroy() at {format_site(fast_site(3))}",
                f"warn:{self.kind}-destroyed:{self.dep_map.key}",
            )

    async def lock(self, subclass: int = 0, nest_lock: LockdepMap | None = None) -> None:
        await preempt()
        k = current_kernel()
        cur = k.current
        assert cur is not None
        might_sleep()
        self._check_alive(k)
        if k.lockdep is not None:
            k.lockdep.acquire(k, cur, self.dep_map, nest_lock=nest_lock, subclass=subclass)
        while self.owner is not None:
            await self.wq.wait()
        self.owner = cur
        k.ev("lock", self.name)

    async def trylock(self) -> bool:
        await preempt()
        k = current_kernel()
        cur = k.current
        assert cur is not None
        self._check_alive(k)
        if self.owner is not None:
            k.ev("trylock-fail", self.name)
            return False
        self.owner = cur
        if k.lockdep is not None:
            k.lockdep.acquire(k, cur, self.dep_map, trylock=True)
        k.ev("trylock", self.name)
        return True

    async def unlock(self) -> None:
        await preempt()
        self._release(current_kernel())

    def _release(self, k: Kernel) -> None:
        cur = k.current
        if self.owner is not cur:
            holder = self.owner.label if self.owner is not None else "nobody"
            _warn(
                k,
                f"DEBUG_LOCKS_WARN_ON(__owner_task(owner) != current): {cur.label if cur else '?'} "
                f"unlocks {self.kind} {self.name} held by {holder} at {format_site(fast_site(3))}",
                f"warn:{self.kind}-unlock-owner:{self.dep_map.key}",
            )
            if self.owner is None:
                return
        if k.lockdep is not None and cur is not None:
            k.lockdep.release(k, cur, self.dep_map)
        self.owner = None
        k.ev("unlock", self.name)
        if self._wq is not None:
            self._wq.wake_one()

    def is_locked(self) -> bool:
        return self.owner is not None

    def destroy(self) -> None:
        k = current_kernel()
        if self.owner is not None:
            _warn(
                k,
                f"DEBUG_LOCKS_WARN_ON(mutex_is_locked(lock)): mutex_destroy({self.name}) while "
                f"held by {self.owner.label}",
                f"warn:mutex-destroy-locked:{self.dep_map.key}",
            )
        self.destroyed = True

    async def __aenter__(self) -> None:
        await self.lock()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.unlock()


class SpinLock(Mutex):
    """``spinlock_t``: holding it is atomic context (sleeping inside is reported)."""

    __slots__ = ()

    kind = "spinlock"

    async def lock(self, subclass: int = 0, nest_lock: LockdepMap | None = None) -> None:
        await preempt()
        k = current_kernel()
        cur = k.current
        assert cur is not None
        if k.lockdep is not None:
            k.lockdep.acquire(k, cur, self.dep_map, nest_lock=nest_lock, subclass=subclass)
        while self.owner is not None:
            await self.wq.wait()  # spinning on another CPU
        self.owner = cur
        cur.preempt_count += 1
        k.ev("lock", self.name)

    async def trylock(self) -> bool:
        ok = await super().trylock()
        if ok:
            cur = current_kernel().current
            assert cur is not None
            cur.preempt_count += 1
        return ok

    def _release(self, k: Kernel) -> None:
        cur = k.current
        if self.owner is cur and cur is not None:
            cur.preempt_count -= 1
        super()._release(k)


# C-shaped entry points, so ported code reads like the driver. They hand back
# the method's coroutine rather than awaiting it: one frame less on the
# hottest paths of the model.


def mutex_lock(m: Mutex) -> Coroutine[Any, Any, None]:
    return m.lock()


def mutex_lock_nested(m: Mutex, subclass: int) -> Coroutine[Any, Any, None]:
    return m.lock(subclass=subclass)


def mutex_trylock(m: Mutex) -> Coroutine[Any, Any, bool]:
    return m.trylock()


def mutex_unlock(m: Mutex) -> Coroutine[Any, Any, None]:
    return m.unlock()


def mutex_is_locked(m: Mutex) -> bool:
    return m.is_locked()


def mutex_destroy(m: Mutex) -> None:
    m.destroy()


def spin_lock(s: SpinLock) -> Coroutine[Any, Any, None]:
    return s.lock()


def spin_unlock(s: SpinLock) -> Coroutine[Any, Any, None]:
    return s.unlock()


async def spin_lock_irqsave(s: SpinLock) -> int:
    await s.lock()
    return 0


async def spin_unlock_irqrestore(s: SpinLock, flags: int) -> None:
    await s.unlock()
