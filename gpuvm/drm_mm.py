"""drm_mm, the DRM range allocator (drivers/gpu/drm/drm_mm.c), on sortedcontainers.

The kernel keeps every allocated node in an address-ordered list plus an
interval tree, and every *hole* (the free space after a node; the space after
the sentinel ``head_node`` is the hole at the bottom of the range) in three
structures: an rb-tree by size (``holes_size``), an augmented rb-tree by
address (``holes_addr``) and a LIFO stack (``hole_stack``). Here they are a
sorted map of nodes by start, a sorted map of holes by start, a sorted list of
holes by (size descending, insertion order) and a map of holes by insertion
sequence, which answers the same queries:

* ``DRM_MM_INSERT_BEST``: the smallest hole that can hold ``size``, among
  equal sizes the most recently (re)inserted one, then the next larger
  ones (``best_hole`` + ``rb_prev``);
* ``LOW``/``HIGH``: holes in ascending/descending address order starting at
  ``range_start``/``range_end``, skipping holes smaller than ``size``;
* ``EVICT``: the hole stack, most recent first;
* ``ONCE``: only the first hole the mode would try.

No internal locking (the caller serialises, panthor with ``mm_lock``), and no
allocation: plain synchronous code. ``drm_mm_remove_node`` of a node that is
not allocated is ``DRM_MM_BUG_ON`` (modelled with CONFIG_DRM_DEBUG_MM on, a
BUG); ``drm_mm_takedown`` with nodes left WARNs and is reported as a leak.

Not modelled: the eviction scanner (``drm_mm_scan_*``), which panthor does
not use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import Final

from sortedcontainers import SortedDict, SortedKeyList

from ..sched.core.failure import Failure
from ..sched.core.kernel import current_kernel
from ..sched.errno import ENOSPC
from ..sched.warn import BUG_ON, WARN
from .u64 import U64_MAX, u64

# enum drm_mm_insert_mode
DRM_MM_INSERT_BEST: Final = 0
DRM_MM_INSERT_LOW: Final = 1
DRM_MM_INSERT_HIGH: Final = 2
DRM_MM_INSERT_EVICT: Final = 3
DRM_MM_INSERT_ONCE: Final = 1 << 31
DRM_MM_INSERT_HIGHEST: Final = DRM_MM_INSERT_HIGH | DRM_MM_INSERT_ONCE
DRM_MM_INSERT_LOWEST: Final = DRM_MM_INSERT_LOW | DRM_MM_INSERT_ONCE

DRM_MM_NODE_ALLOCATED_BIT: Final = 0
DRM_MM_NODE_SCANNED_BIT: Final = 1

ColorAdjust = Callable[["DrmMmNode", int, int, int], tuple[int, int]]
"""``mm->color_adjust(hole_node, color, &start, &end)``, returning the adjusted (start, end)."""


class DrmMmNode:
    """``struct drm_mm_node``. The caller sets ``start``/``size``/``color`` for a reservation."""

    __slots__ = ("_seq", "color", "flags", "hole_size", "mm", "size", "start")

    def __init__(self) -> None:
        self.color = 0
        self.start = 0
        self.size = 0
        self.mm: DrmMm | None = None
        self.flags = 0
        self.hole_size = 0
        self._seq = 0  # when its hole was last added (orders holes_size ties and hole_stack)

    def __repr__(self) -> str:
        state = "allocated" if drm_mm_node_allocated(self) else "free"
        return f"<drm_mm_node [{self.start:#x} + {self.size:#x}] {state}>"


def _hole_size_key(node: DrmMmNode) -> tuple[int, int]:
    # In-order position in the kernel's holes_size tree: larger first,
    # equal sizes in insertion order.
    return (-node.hole_size, node._seq)


class DrmMm:
    """``struct drm_mm``. Initialise with :func:`drm_mm_init`."""

    def __init__(self) -> None:
        self.color_adjust: ColorAdjust | None = None
        self.head_node = DrmMmNode()
        self.head_node.mm = self
        self.initialized = False
        self.scan_active = 0
        self._nodes: SortedDict = SortedDict()  # start -> node (node_list + interval_tree)
        self._holes_addr: SortedDict = SortedDict()  # hole start -> node (holes_addr)
        self._holes_size: SortedKeyList = SortedKeyList(key=_hole_size_key)  # holes_size
        self._hole_stack: SortedDict = SortedDict()  # seq -> node; newest = top of stack
        self._seq = 0

    def __repr__(self) -> str:
        return f"<drm_mm nodes={len(self._nodes)} holes={len(self._holes_addr)}>"


# ---------------------------------------------------------------------- node helpers


def drm_mm_node_allocated(node: DrmMmNode) -> bool:
    """``drm_mm_node_allocated``."""
    return bool(node.flags & (1 << DRM_MM_NODE_ALLOCATED_BIT))


def drm_mm_initialized(mm: DrmMm) -> bool:
    """``drm_mm_initialized``."""
    return mm.initialized


def drm_mm_hole_follows(node: DrmMmNode) -> bool:
    """``drm_mm_hole_follows``: whether there is free space right after ``node``."""
    return node.hole_size != 0


def __drm_mm_hole_node_start(node: DrmMmNode) -> int:
    return u64(node.start + node.size)


def drm_mm_hole_node_start(node: DrmMmNode) -> int:
    """``drm_mm_hole_node_start``: where the hole after ``node`` begins."""
    return __drm_mm_hole_node_start(node)


def _next_node(mm: DrmMm, node: DrmMmNode) -> DrmMmNode:
    """``list_next_entry(node, node_list)`` (the list is circular through head_node)."""
    d = mm._nodes
    i = 0 if node is mm.head_node else d.bisect_right(node.start)
    if i < len(d):
        nxt: DrmMmNode = d.peekitem(i)[1]
        return nxt
    return mm.head_node


def _prev_node(mm: DrmMm, node: DrmMmNode) -> DrmMmNode:
    """``list_prev_entry(node, node_list)``."""
    d = mm._nodes
    if node is mm.head_node:
        if not d:
            return mm.head_node
        last: DrmMmNode = d.peekitem(-1)[1]
        return last
    i = d.bisect_left(node.start) - 1
    if i >= 0:
        prv: DrmMmNode = d.peekitem(i)[1]
        return prv
    return mm.head_node


def drm_mm_next_node(node: DrmMmNode) -> DrmMmNode:
    """``list_next_entry(node, node_list)``: the next allocated node, or ``mm->head_node``."""
    assert node.mm is not None
    return _next_node(node.mm, node)


def drm_mm_hole_node_end(node: DrmMmNode) -> int:
    """``drm_mm_hole_node_end``: the start of the next node (or the end of the range)."""
    assert node.mm is not None
    return _next_node(node.mm, node).start


def _add_hole(node: DrmMmNode) -> None:
    """``add_hole``: record the free space after ``node`` in every hole structure."""
    mm = node.mm
    assert mm is not None
    node.hole_size = u64(drm_mm_hole_node_end(node) - __drm_mm_hole_node_start(node))
    mm._seq += 1
    node._seq = mm._seq
    mm._holes_size.add(node)
    mm._holes_addr[__drm_mm_hole_node_start(node)] = node
    mm._hole_stack[node._seq] = node


def _rm_hole(node: DrmMmNode) -> None:
    """``rm_hole``."""
    mm = node.mm
    assert mm is not None
    mm._holes_size.remove(node)
    del mm._holes_addr[__drm_mm_hole_node_start(node)]
    del mm._hole_stack[node._seq]
    node.hole_size = 0


def _link_node(mm: DrmMm, hole: DrmMmNode, node: DrmMmNode) -> None:
    """``list_add(&node->node_list, &hole->node_list)`` + ``drm_mm_interval_tree_add_node``."""
    node.flags |= 1 << DRM_MM_NODE_ALLOCATED_BIT
    mm._nodes[node.start] = node


# ---------------------------------------------------------------------- init / takedown


def drm_mm_init(mm: DrmMm, start: int, size: int) -> None:
    """``drm_mm_init``: one hole covering ``[start, start + size)``."""
    mm.color_adjust = None
    mm._nodes = SortedDict()
    mm._holes_addr = SortedDict()
    mm._holes_size = SortedKeyList(key=_hole_size_key)
    mm._hole_stack = SortedDict()
    head = mm.head_node
    head.flags = 0
    head.mm = mm
    head.start = u64(start + size)
    head.size = u64(-size)
    _add_hole(head)
    mm.scan_active = 0
    mm.initialized = True


def drm_mm_clean(mm: DrmMm) -> bool:
    """``drm_mm_clean``: no node is allocated."""
    return not mm._nodes


def drm_mm_takedown(mm: DrmMm) -> None:
    """``drm_mm_takedown``: WARN "Memory manager not clean during takedown." if nodes remain.

    The nodes left are also reported as a ``leak`` (what CONFIG_DRM_DEBUG_MM's
    ``show_leaks`` prints), before the WARN (which ends the run by default).
    """
    if not drm_mm_clean(mm):
        k = current_kernel()
        left = list(drm_mm_for_each_node(mm))
        k.record_failure(
            Failure(
                "leak",
                f"drm_mm: {len(left)} node(s) never removed before drm_mm_takedown",
                report="\n".join(f"node [{n.start:08x} + {n.size:08x}]" for n in left),
                signature="leak:drm_mm_node",
            )
        )
    WARN(not drm_mm_clean(mm), "Memory manager not clean during takedown.\n")


# ---------------------------------------------------------------------- hole search


def _largest_hole(mm: DrmMm) -> int:
    """``rb_to_hole_size_or_zero(rb_first_cached(&mm->holes_size))``."""
    if not mm._holes_size:
        return 0
    node: DrmMmNode = mm._holes_size[0]
    return node.hole_size


def _hole_containing(mm: DrmMm, addr: int) -> DrmMmNode | None:
    """``find_hole_addr(mm, addr, 0)`` when a hole contains ``addr`` (ends inclusive)."""
    d = mm._holes_addr
    i = d.bisect_right(addr) - 1
    if i < 0:
        return None
    node: DrmMmNode = d.peekitem(i)[1]
    if addr <= __drm_mm_hole_node_start(node) + node.hole_size:
        return node
    return None


def _holes_best(mm: DrmMm, size: int) -> Iterator[DrmMmNode]:
    lst = mm._holes_size
    i = lst.bisect_key_right((-size, U64_MAX + 1)) - 1  # the last hole with hole_size >= size
    while i >= 0:
        node: DrmMmNode = lst[i]
        yield node
        i -= 1


def _holes_low(mm: DrmMm, start: int, size: int) -> Iterator[DrmMmNode]:
    d = mm._holes_addr
    i = d.bisect_right(start) - 1
    if i < 0 or d.peekitem(i)[1].hole_size + d.peekitem(i)[0] < start:
        i += 1
    n = len(d)
    while i < n:
        node: DrmMmNode = d.peekitem(i)[1]
        if node.hole_size >= size:
            yield node
        i += 1


def _holes_high(mm: DrmMm, end: int, size: int) -> Iterator[DrmMmNode]:
    d = mm._holes_addr
    i = d.bisect_right(end) - 1
    while i >= 0:
        node: DrmMmNode = d.peekitem(i)[1]
        if node.hole_size >= size:
            yield node
        i -= 1


def _holes_evict(mm: DrmMm) -> Iterator[DrmMmNode]:
    for seq in reversed(list(mm._hole_stack.keys())):
        yield mm._hole_stack[seq]


def _holes(mm: DrmMm, start: int, end: int, size: int, mode: int) -> Iterator[DrmMmNode]:
    """``first_hole`` then ``next_hole`` for ``mode``."""
    if mode == DRM_MM_INSERT_LOW:
        return _holes_low(mm, start, size)
    if mode == DRM_MM_INSERT_HIGH:
        return _holes_high(mm, end, size)
    if mode == DRM_MM_INSERT_EVICT:
        return _holes_evict(mm)
    return _holes_best(mm, size)


# ---------------------------------------------------------------------- reserve / insert / remove


def drm_mm_reserve_node(mm: DrmMm, node: DrmMmNode) -> int:
    """``drm_mm_reserve_node``: insert ``node`` at its preset ``start``/``size``.

    -ENOSPC if the size is 0, ``start + size`` wraps, or ``[start, start + size)``
    is not wholly inside one hole (after ``color_adjust``).
    """
    end = u64(node.start + node.size)
    if end <= node.start:
        return -ENOSPC

    hole = _hole_containing(mm, node.start)
    if hole is None:
        return -ENOSPC

    hole_start = __drm_mm_hole_node_start(hole)
    hole_end = u64(hole_start + hole.hole_size)
    adj_start, adj_end = hole_start, hole_end
    if mm.color_adjust is not None:
        adj_start, adj_end = mm.color_adjust(hole, node.color, adj_start, adj_end)

    if adj_start > node.start or adj_end < end:
        return -ENOSPC

    node.mm = mm
    _link_node(mm, hole, node)
    node.hole_size = 0

    _rm_hole(hole)
    if node.start > hole_start:
        _add_hole(hole)
    if end < hole_end:
        _add_hole(node)
    return 0


def _is_power_of_2(n: int) -> bool:
    return n != 0 and (n & (n - 1)) == 0


def drm_mm_insert_node_in_range(
    mm: DrmMm,
    node: DrmMmNode,
    size: int,
    alignment: int,
    color: int,
    range_start: int,
    range_end: int,
    mode: int,
) -> int:
    """``drm_mm_insert_node_in_range``: find space in ``[range_start, range_end)`` (end exclusive).

    -ENOSPC if ``size`` is 0, the range is smaller than ``size``, no hole is
    big enough, or no hole fits once range, alignment and ``color_adjust``
    are applied. ``HIGH`` places the node at the top of the hole and aligns
    down; the others at the bottom, aligning up.
    """
    if size == 0 or u64(range_end - range_start) < size:
        return -ENOSPC

    if _largest_hole(mm) < size:
        return -ENOSPC

    if alignment <= 1:
        alignment = 0

    once = bool(mode & DRM_MM_INSERT_ONCE)
    mode &= ~DRM_MM_INSERT_ONCE

    remainder_mask = alignment - 1 if _is_power_of_2(alignment) else 0
    holes = _holes(mm, range_start, range_end, size, mode)
    for hole in islice(holes, 1) if once else holes:
        hole_start = __drm_mm_hole_node_start(hole)
        hole_end = u64(hole_start + hole.hole_size)

        if mode == DRM_MM_INSERT_LOW and hole_start >= range_end:
            break
        if mode == DRM_MM_INSERT_HIGH and hole_end <= range_start:
            break

        col_start, col_end = hole_start, hole_end
        if mm.color_adjust is not None:
            col_start, col_end = mm.color_adjust(hole, color, col_start, col_end)

        adj_start = max(col_start, range_start)
        adj_end = min(col_end, range_end)

        if adj_end <= adj_start or adj_end - adj_start < size:
            continue

        if mode == DRM_MM_INSERT_HIGH:
            adj_start = adj_end - size

        if alignment:
            rem = adj_start & remainder_mask if remainder_mask else adj_start % alignment
            if rem:
                adj_start -= rem
                if mode != DRM_MM_INSERT_HIGH:
                    adj_start = u64(adj_start + alignment)

                if (
                    adj_start < max(col_start, range_start)
                    or u64(min(col_end, range_end) - adj_start) < size
                ):
                    continue

                if adj_end <= adj_start or adj_end - adj_start < size:
                    continue

        node.mm = mm
        node.size = size
        node.start = adj_start
        node.color = color
        node.hole_size = 0

        _link_node(mm, hole, node)

        _rm_hole(hole)
        if adj_start > hole_start:
            _add_hole(hole)
        if adj_start + size < hole_end:
            _add_hole(node)
        return 0

    return -ENOSPC


def drm_mm_insert_node_generic(
    mm: DrmMm, node: DrmMmNode, size: int, alignment: int, color: int, mode: int
) -> int:
    """``drm_mm_insert_node_generic``: anywhere in the managed range."""
    return drm_mm_insert_node_in_range(mm, node, size, alignment, color, 0, U64_MAX, mode)


def drm_mm_insert_node(mm: DrmMm, node: DrmMmNode, size: int) -> int:
    """``drm_mm_insert_node``: best fit, no alignment, no colour."""
    return drm_mm_insert_node_generic(mm, node, size, 0, 0, DRM_MM_INSERT_BEST)


def drm_mm_remove_node(node: DrmMmNode) -> None:
    """``drm_mm_remove_node``: the node's space merges into the previous node's hole.

    The node must be allocated (``DRM_MM_BUG_ON``, a BUG with CONFIG_DRM_DEBUG_MM).
    """
    BUG_ON(not drm_mm_node_allocated(node))
    BUG_ON(bool(node.flags & (1 << DRM_MM_NODE_SCANNED_BIT)))
    mm = node.mm
    assert mm is not None

    prev_node = _prev_node(mm, node)

    if drm_mm_hole_follows(node):
        _rm_hole(node)

    del mm._nodes[node.start]

    if drm_mm_hole_follows(prev_node):
        _rm_hole(prev_node)
    _add_hole(prev_node)

    node.flags &= ~(1 << DRM_MM_NODE_ALLOCATED_BIT)


def drm_mm_replace_node(old: DrmMmNode, new: DrmMmNode) -> None:
    """``drm_mm_replace_node``: ``*new = *old``; ``new`` takes ``old``'s place, hole included."""
    BUG_ON(not drm_mm_node_allocated(old))
    mm = old.mm
    assert mm is not None
    new.mm = mm
    new.start = old.start
    new.size = old.size
    new.color = old.color
    new.flags = old.flags | (1 << DRM_MM_NODE_ALLOCATED_BIT)
    new.hole_size = old.hole_size
    new._seq = old._seq
    mm._nodes[new.start] = new
    if drm_mm_hole_follows(old):
        # rb_replace_node / list_replace: same position in every hole structure
        mm._holes_size.remove(old)
        mm._holes_size.add(new)
        mm._holes_addr[__drm_mm_hole_node_start(new)] = new
        mm._hole_stack[new._seq] = new
    old.flags &= ~(1 << DRM_MM_NODE_ALLOCATED_BIT)


# ---------------------------------------------------------------------- iteration / debug


def drm_mm_for_each_node(mm: DrmMm) -> Iterator[DrmMmNode]:
    """``drm_mm_for_each_node_safe``: allocated nodes in address order (snapshot)."""
    return iter(list(mm._nodes.values()))


def drm_mm_for_each_hole(mm: DrmMm) -> Iterator[tuple[DrmMmNode, int, int]]:
    """``drm_mm_for_each_hole``: (node, hole_start, hole_end), most recent hole first."""
    for node in list(_holes_evict(mm)):
        start = __drm_mm_hole_node_start(node)
        yield node, start, u64(start + node.hole_size)


def __drm_mm_interval_first(mm: DrmMm, start: int, last: int) -> DrmMmNode:
    """``__drm_mm_interval_first``: the first node overlapping ``[start, last]``, else head_node."""
    d = mm._nodes
    i = d.bisect_right(start) - 1
    if i >= 0:
        node: DrmMmNode = d.peekitem(i)[1]
        if u64(node.start + node.size - 1) >= start:
            return node if node.start <= last else mm.head_node
    i += 1
    if i < len(d):
        node = d.peekitem(i)[1]
        if node.start <= last:
            return node
    return mm.head_node


def drm_mm_interval_first(mm: DrmMm, start: int, last: int) -> DrmMmNode:
    """``__drm_mm_interval_first`` (exported under a Python-friendly name)."""
    return __drm_mm_interval_first(mm, start, last)


def drm_mm_for_each_node_in_range(mm: DrmMm, start: int, end: int) -> Iterator[DrmMmNode]:
    """``drm_mm_for_each_node_in_range``: nodes overlapping ``[start, end)``."""
    node = __drm_mm_interval_first(mm, start, u64(end - 1))
    while drm_mm_node_allocated(node) and node.start < end:
        yield node
        node = _next_node(mm, node)


def drm_mm_print(mm: DrmMm) -> str:
    """``drm_mm_print``: the allocator state, one line per node and hole, then totals."""
    lines: list[str] = []
    total_used = total_free = 0

    def dump_hole(entry: DrmMmNode) -> int:
        size = entry.hole_size
        if size:
            start = drm_mm_hole_node_start(entry)
            lines.append(f"{start:#018x}-{u64(start + size):#018x}: {size}: free")
        return size

    total_free += dump_hole(mm.head_node)
    for entry in drm_mm_for_each_node(mm):
        lines.append(f"{entry.start:#018x}-{entry.start + entry.size:#018x}: {entry.size}: used")
        total_used += entry.size
        total_free += dump_hole(entry)
    total = total_free + total_used
    lines.append(f"total: {total}, used {total_used} free {total_free}")
    return "\n".join(lines) + "\n"
