"""refcount_t and kref (lib/refcount.c, include/linux/kref.h).

Each operation is a yield point. Misuse WARNs and saturates, as the kernel's
``refcount_warn_saturate()`` does: addition on 0, underflow, overflow,
decrement hitting 0.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from ..core.failure import Failure
from ..core.frames import fast_site, format_site
from ..core.kernel import current_kernel, preempt
from .mutex import Mutex

REFCOUNT_SATURATED: Final = -(1 << 30)  # INT_MIN / 2
REFCOUNT_MAX: Final = (1 << 31) - 1


class RefCount:
    """``refcount_t``."""

    __slots__ = ("name", "refs")

    def __init__(self, n: int = 0, name: str = "refcount") -> None:
        self.refs = n
        self.name = name

    def __repr__(self) -> str:
        return f"<refcount {self.name}={self.refs}>"


def _saturate(r: RefCount, what: str) -> None:
    r.refs = REFCOUNT_SATURATED
    k = current_kernel()
    site = format_site(fast_site(3))
    k.fail(
        Failure(
            "warn",
            f"refcount_t: {what} ({r.name}, at {site})",
            signature=f"warn:refcount:{what.split(';')[0]}:{site}",
        ),
        fatal=k.config.warn_fatal,
    )


async def refcount_set(r: RefCount, n: int) -> None:
    await preempt()
    r.refs = n
    current_kernel().ev("refcount_set", r.name, str(n))


async def refcount_read(r: RefCount) -> int:
    await preempt()
    return r.refs


async def refcount_add(i: int, r: RefCount) -> None:
    await preempt()
    old = r.refs
    r.refs = old + i
    current_kernel().ev("refcount_inc", r.name, str(r.refs))
    if old == 0:
        _saturate(r, "addition on 0; use-after-free.")
    elif old < 0 or old + i > REFCOUNT_MAX:
        _saturate(r, "saturated; leaking memory.")


async def refcount_inc(r: RefCount) -> None:
    await refcount_add(1, r)


def refcount_inc_atomic(r: RefCount) -> None:
    """``refcount_inc()`` without the yield point, for a caller that holds the lock
    which keeps the object alive (a lookup under its table lock)."""
    old = r.refs
    r.refs = old + 1
    current_kernel().ev("refcount_inc", r.name, str(r.refs))
    if old == 0:
        _saturate(r, "addition on 0; use-after-free.")
    elif old < 0 or old + 1 > REFCOUNT_MAX:
        _saturate(r, "saturated; leaking memory.")


async def refcount_add_not_zero(i: int, r: RefCount) -> bool:
    await preempt()
    old = r.refs
    if old == 0:
        return False
    r.refs = old + i
    current_kernel().ev("refcount_inc", r.name, str(r.refs))
    if old < 0 or old + i > REFCOUNT_MAX:
        _saturate(r, "saturated; leaking memory.")
    return True


async def refcount_inc_not_zero(r: RefCount) -> bool:
    return await refcount_add_not_zero(1, r)


async def refcount_sub_and_test(i: int, r: RefCount) -> bool:
    await preempt()
    old = r.refs
    r.refs = old - i
    current_kernel().ev("refcount_dec", r.name, str(r.refs))
    if old == i:
        return True
    if old < 0 or old - i < 0:
        _saturate(r, "underflow; use-after-free.")
    return False


async def refcount_dec_and_test(r: RefCount) -> bool:
    return await refcount_sub_and_test(1, r)


async def refcount_dec(r: RefCount) -> None:
    if await refcount_dec_and_test(r):
        _saturate(r, "decrement hit 0; leaking memory.")


async def refcount_dec_not_one(r: RefCount) -> bool:
    await preempt()
    val = r.refs
    if val == REFCOUNT_SATURATED:
        return True
    if val == 1:
        return False
    if val <= 0:
        # The kernel computes this in unsigned arithmetic: it wraps, WARNs, returns true.
        _saturate(r, "underflow; use-after-free.")
        return True
    r.refs = val - 1
    current_kernel().ev("refcount_dec", r.name, str(r.refs))
    return True


async def refcount_dec_and_mutex_lock(r: RefCount, lock: Mutex) -> bool:
    """Returns True with ``lock`` held iff the count dropped to 0 (so 1->0 happens under it)."""
    if await refcount_dec_not_one(r):
        return False
    await lock.lock()
    if not await refcount_dec_and_test(r):
        await lock.unlock()
        return False
    return True


class Kref:
    """``struct kref``; ``container`` plays ``container_of()``."""

    __slots__ = ("container", "refcount")

    def __init__(self, container: Any = None, name: str = "kref") -> None:
        self.refcount = RefCount(0, name)
        self.container = container

    def __repr__(self) -> str:
        return f"<kref {self.refcount.name}={self.refcount.refs}>"


async def kref_init(kref: Kref) -> None:
    await refcount_set(kref.refcount, 1)


async def kref_read(kref: Kref) -> int:
    return await refcount_read(kref.refcount)


async def kref_get(kref: Kref) -> None:
    await refcount_inc(kref.refcount)


def kref_get_atomic(kref: Kref) -> None:
    """``kref_get()`` without the yield point (see :func:`refcount_inc_atomic`)."""
    refcount_inc_atomic(kref.refcount)


async def kref_get_unless_zero(kref: Kref) -> bool:
    return await refcount_inc_not_zero(kref.refcount)


async def kref_put(kref: Kref, release: Callable[[Kref], Awaitable[None]]) -> int:
    """Drop a reference; at zero run ``release`` synchronously in the caller and return 1."""
    if await refcount_dec_and_test(kref.refcount):
        await release(kref)
        return 1
    return 0


async def kref_put_mutex(
    kref: Kref, release: Callable[[Kref], Awaitable[None]], lock: Mutex
) -> int:
    """As kref_put, but the 1->0 transition and ``release`` happen under ``lock``.

    ``release`` must unlock ``lock`` (as in the kernel).
    """
    if await refcount_dec_and_mutex_lock(kref.refcount, lock):
        await release(kref)
        return 1
    return 0
