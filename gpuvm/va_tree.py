"""The VA tree of a drm_gpuvm (``gpuvm->rb.tree`` + ``gpuvm->rb.list``) on sortedcontainers.

The kernel keeps GPU VAs in an augmented interval rb-tree plus a list in
address order. The entries never overlap (``__drm_gpuva_insert`` refuses an
overlap with -EEXIST), so a sorted map keyed by start address answers every
query the kernel makes in O(log n): ``drm_gpuva_it_iter_first`` (the
lowest-addressed entry overlapping ``[start, last]``), the list successor
(``__drm_gpuva_next``) and predecessor, and range walks in O(log n + k).

Plain synchronous code, usable without a running kernel.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from sortedcontainers import SortedDict

from ..sched.errno import EEXIST, EINVAL
from .u64 import U64_MAX, check_add_overflow, is_u64, u64


class _Interval(Protocol):
    addr: int
    range: int


class _HasVa(Protocol):
    @property
    def va(self) -> _Interval: ...


N = TypeVar("N", bound=_HasVa)


def gpuva_last(addr: int, range: int) -> int:
    """``GPUVA_LAST(node)``: ``addr + range - 1`` in u64 arithmetic."""
    return u64(addr + range - 1)


class VaTree(Generic[N]):
    """Non-overlapping ``[addr, addr + range)`` entries keyed by ``addr``.

    Refuses (returns -EEXIST) an entry overlapping another, and (-EINVAL) an
    entry the model cannot represent: zero-sized, or not inside the u64 space.
    """

    __slots__ = ("_by_start",)

    def __init__(self) -> None:
        self._by_start: SortedDict = SortedDict()

    # ------------------------------------------------------------------ size / iteration

    def __len__(self) -> int:
        return len(self._by_start)

    def __bool__(self) -> bool:
        return bool(self._by_start)

    def __iter__(self) -> Iterator[N]:
        """``drm_gpuvm_for_each_va``: every entry in address order (not safe against removal)."""
        return iter(self._by_start.values())

    def entries(self) -> list[N]:
        """A snapshot of every entry in address order (safe against removal)."""
        return list(self._by_start.values())

    def contains(self, node: N) -> bool:
        """Whether this very entry (not just one at its address) is in the tree."""
        return self._by_start.get(node.va.addr) is node

    # ------------------------------------------------------------------ updates

    def insert(self, node: N) -> int:
        """``drm_gpuva_it_insert`` after the ``__drm_gpuva_insert`` overlap check.

        Returns 0, -EEXIST if ``node`` overlaps an entry, or -EINVAL if it is
        zero-sized or leaves the u64 space (the callers check ranges first).
        """
        addr, rng = node.va.addr, node.va.range
        if rng == 0 or not is_u64(addr) or not is_u64(rng) or check_add_overflow(addr, rng):
            return -EINVAL
        if self.iter_first(addr, gpuva_last(addr, rng)) is not None:
            return -EEXIST
        self._by_start[addr] = node
        return 0

    def remove(self, node: N) -> None:
        """``drm_gpuva_it_remove`` + ``list_del_init``: ``node`` must be in the tree."""
        if not self.contains(node):
            raise KeyError(f"{node!r} is not in the VA tree")
        del self._by_start[node.va.addr]

    # ------------------------------------------------------------------ queries

    def iter_first(self, start: int, last: int) -> N | None:
        """``drm_gpuva_it_iter_first(tree, start, last)``.

        The lowest-addressed entry with ``entry.addr <= last`` and
        ``entry.last >= start`` (closed intervals, as the kernel's interval
        tree; ``last < start`` is a legal, inverted query).
        """
        d = self._by_start
        if not d:
            return None
        # Entries do not overlap, so their ends are sorted like their starts:
        # the first entry ending at or after `start` is the only candidate.
        i = d.bisect_right(start) - 1
        if i >= 0:
            node: N = d.peekitem(i)[1]
            if gpuva_last(node.va.addr, node.va.range) >= start:
                return node if node.va.addr <= last else None
        i += 1
        if i >= len(d):
            return None
        node = d.peekitem(i)[1]
        return node if node.va.addr <= last else None

    def find_first(self, addr: int, range: int) -> N | None:
        """``drm_gpuva_find_first``: iter_first over ``[addr, addr + range - 1]``."""
        return self.iter_first(addr, gpuva_last(addr, range))

    def next(self, node: N) -> N | None:
        """``__drm_gpuva_next``: the entry after ``node`` in address order (None if last)."""
        d = self._by_start
        i = d.bisect_right(node.va.addr)
        if i >= len(d):
            return None
        nxt: N = d.peekitem(i)[1]
        return nxt

    def prev(self, node: N) -> N | None:
        """The entry before ``node`` in address order (None if first)."""
        d = self._by_start
        i = d.bisect_left(node.va.addr) - 1
        if i < 0:
            return None
        prv: N = d.peekitem(i)[1]
        return prv

    def first(self) -> N | None:
        d = self._by_start
        if not d:
            return None
        node: N = d.peekitem(0)[1]
        return node

    def range_iter(self, start: int, end: int) -> Iterator[N]:
        """``drm_gpuvm_for_each_va_range(va, gpuvm, start, end)`` (not safe against removal).

        From ``find_first(start, end - start)`` while ``addr < end``; O(log n + k).
        """
        node = self.find_first(start, u64(end - start))
        if node is None:
            return
        d = self._by_start
        i = d.bisect_left(node.va.addr)
        n = len(d)
        while i < n:
            cur: N = d.peekitem(i)[1]
            if cur.va.addr >= end:
                return
            yield cur
            i += 1


__all__ = ["U64_MAX", "VaTree", "gpuva_last"]
