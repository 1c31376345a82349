"""The xarray as drivers use it for handles (lib/xarray.c, include/linux/xarray.h).

``xa_load`` and ``xa_for_each`` are RCU readers: lockless, so each has a
yield point where another CPU's ``xa_erase`` can land; the entry they return
may be freed the moment they return it unless the caller holds ``xa_lock``
(or a reference). ``xa_alloc``/``xa_erase`` take ``xa_lock`` (a spinlock that
may be held across the caller's atomic operations). The one interior node a
small array needs is a real allocation: ``xa_alloc`` can fail with -ENOMEM,
and an array never destroyed leaks it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final, Generic, TypeVar

from ..core.kernel import current_kernel, preempt
from ..errno import EBUSY, ENOMEM
from ..locking.mutex import SpinLock
from ..mm.memory import kfree, kzalloc

T = TypeVar("T")

XA_FLAGS_ALLOC: Final = 1 << 0
XA_FLAGS_ALLOC1: Final = 1 << 1  # index 0 is never allocated


def XA_LIMIT(lo: int, hi: int) -> tuple[int, int]:
    """``XA_LIMIT(min, max)``: an inclusive id range."""
    return (lo, hi)


class XaNode:
    """``struct xa_node`` (one is enough for the 64 indices a handle table uses)."""

    __slots__ = ()


class XArray(Generic[T]):
    """``struct xarray``."""

    __slots__ = ("entries", "flags", "name", "node", "xa_lock")

    def __init__(self, name: str = "xa") -> None:
        self.name = name
        self.flags = 0
        self.entries: dict[int, T] = {}
        self.node: XaNode | None = None
        self.xa_lock = SpinLock(f"{name}.xa_lock", key="&xa->xa_lock")

    def __repr__(self) -> str:
        return f"<xarray {self.name} {sorted(self.entries)}>"


def xa_init_flags(xa: XArray[T], flags: int) -> None:
    """``xa_init_flags()``."""
    xa.flags = flags
    xa.entries = {}
    xa.node = None


async def xa_lock(xa: XArray[T]) -> None:
    await xa.xa_lock.lock()


async def xa_unlock(xa: XArray[T]) -> None:
    await xa.xa_lock.unlock()


async def xa_load(xa: XArray[T], index: int) -> T | None:
    """``xa_load()``: an RCU read (no lock), so a yield point before the slot is read."""
    await preempt()
    return xa.entries.get(index)


async def __xa_erase(xa: XArray[T], index: int) -> T | None:
    """``__xa_erase()``: ``xa_lock`` held by the caller."""
    await preempt()
    entry = xa.entries.pop(index, None)
    if not xa.entries and xa.node is not None:
        kfree(xa.node)
        xa.node = None
    return entry


async def xa_erase(xa: XArray[T], index: int) -> T | None:
    """``xa_erase()``: the old entry (or NULL)."""
    await xa_lock(xa)
    entry = await __xa_erase(xa, index)
    await xa_unlock(xa)
    return entry


async def xa_alloc(xa: XArray[T], entry: T, limit: tuple[int, int], gfp: int) -> tuple[int, int]:
    """``xa_alloc(xa, &id, entry, limit, gfp)``: ``(0, id)``, ``(-EBUSY, 0)`` or ``(-ENOMEM, 0)``.

    The lowest free index in ``limit`` (from 1 with ``XA_FLAGS_ALLOC1``).
    Allocating the node drops ``xa_lock`` around the allocation, as
    ``__xas_nomem()`` does for a blocking gfp.
    """
    lo, hi = limit
    if xa.flags & XA_FLAGS_ALLOC1:
        lo = max(lo, 1)
    await xa_lock(xa)
    while True:
        index = next((i for i in range(lo, hi + 1) if i not in xa.entries), None)
        if index is None:
            await xa_unlock(xa)
            return -EBUSY, 0
        if xa.node is None:
            await xa_unlock(xa)
            node = await kzalloc(XaNode, gfp)
            if node is None:
                return -ENOMEM, 0
            await xa_lock(xa)
            if xa.node is None:
                xa.node = node
            else:
                kfree(node)
            continue
        xa.entries[index] = entry
        current_kernel().ev("xa_alloc", xa.name, str(index))
        await xa_unlock(xa)
        return 0, index


async def xa_for_each(xa: XArray[T]) -> AsyncIterator[tuple[int, T]]:
    """``xa_for_each(xa, index, entry)``: each step finds the next entry locklessly."""
    index = -1
    while True:
        await preempt()
        following = [i for i in xa.entries if i > index]
        if not following:
            return
        index = min(following)
        yield index, xa.entries[index]


def xa_destroy(xa: XArray[T]) -> None:
    """``xa_destroy()``: drop every entry and free the node (entries are not freed)."""
    xa.entries = {}
    if xa.node is not None:
        kfree(xa.node)
        xa.node = None


def xa_empty(xa: XArray[T]) -> bool:
    return not xa.entries
