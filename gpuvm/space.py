"""The VA-space half of drm_gpuvm.c: range checks, lookups, raw tree insert/remove.

Everything here is synchronous and needs no running kernel: it is what the
split/merge walk and the tests build on. The reference-counted wrappers
(``drm_gpuva_insert``/``drm_gpuva_remove``) live in :mod:`.gpuva`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sched.core.failure import InvariantViolation
from .structs import DRM_GPUVA_INVALIDATED, DrmGpuva, DrmGpuvaOpMap, DrmGpuvaOpRemap, DrmGpuvm
from .u64 import check_add_overflow, u64

if TYPE_CHECKING:
    from ..sched.drm.drm_gem import DrmGemObject


def drm_gpuvm_check_overflow(addr: int, range: int) -> bool:
    """``drm_gpuvm_check_overflow``: ``check_add_overflow(addr, range, &end)``."""
    return check_add_overflow(addr, range)


def drm_gpuvm_in_mm_range(gpuvm: DrmGpuvm, addr: int, range: int) -> bool:
    """``drm_gpuvm_in_mm_range``: ``addr >= mm_start && end <= mm_end`` (u64 arithmetic)."""
    end = u64(addr + range)
    mm_start = gpuvm.mm_start
    mm_end = u64(mm_start + gpuvm.mm_range)
    return addr >= mm_start and end <= mm_end


def drm_gpuvm_in_kernel_node(gpuvm: DrmGpuvm, addr: int, range: int) -> bool:
    """``drm_gpuvm_in_kernel_node``: ``krange && addr < kend && kstart < end``."""
    end = u64(addr + range)
    kstart = gpuvm.kernel_alloc_node.va.addr
    krange = gpuvm.kernel_alloc_node.va.range
    kend = u64(kstart + krange)
    return bool(krange) and addr < kend and kstart < end


def drm_gpuvm_range_valid(gpuvm: DrmGpuvm, addr: int, range: int) -> bool:
    """``drm_gpuvm_range_valid``: no overflow, inside the VA space, off the reserved node.

    As in the kernel, a zero ``range`` is valid here.
    """
    return (
        not drm_gpuvm_check_overflow(addr, range)
        and drm_gpuvm_in_mm_range(gpuvm, addr, range)
        and not drm_gpuvm_in_kernel_node(gpuvm, addr, range)
    )


def drm_gpuvm_init_va_space(
    gpuvm: DrmGpuvm,
    name: str | None,
    start_offset: int,
    range: int,
    reserve_offset: int = 0,
    reserve_range: int = 0,
) -> None:
    """The VA-space part of ``drm_gpuvm_init`` (no refcount, no resv object, no WARN).

    Sets the name and ``[mm_start, mm_start + mm_range)`` and inserts the
    kernel reserved node (which holds no VM reference) unless its range is 0
    or overflows. :func:`~.drm_gpuvm.drm_gpuvm_init` calls this after its
    overflow WARNs; tests and the bench call it directly to get a VA space
    for the pure split/merge walk.
    """
    gpuvm.name = name if name else "unknown"
    gpuvm.mm_start = start_offset
    gpuvm.mm_range = range
    gpuvm.kernel_alloc_node = DrmGpuva()
    if reserve_range:
        gpuvm.kernel_alloc_node.va.addr = reserve_offset
        gpuvm.kernel_alloc_node.va.range = reserve_range
        if not drm_gpuvm_check_overflow(reserve_offset, reserve_range):
            gpuva_tree_insert(gpuvm, gpuvm.kernel_alloc_node)


def gpuva_tree_insert(gpuvm: DrmGpuvm, va: DrmGpuva) -> int:
    """``__drm_gpuva_insert`` (static in drm_gpuvm.c): tree insert, no VM reference.

    Returns -EEXIST if ``va`` overlaps an entry; sets ``va.vm`` on success.
    A zero-sized ``va`` is refused with -EINVAL: the kernel would insert a
    degenerate interval-tree node (``last = addr - 1``) that the model cannot
    represent; :func:`~.gpuva.drm_gpuva_insert` reports that case loudly
    before it gets here.
    """
    ret = gpuvm.rb.insert(va)
    if ret == 0:
        va.vm = gpuvm
    return ret


def gpuva_tree_remove(va: DrmGpuva) -> None:
    """``__drm_gpuva_remove`` (static in drm_gpuvm.c): tree removal, no VM put.

    Removing a VA that is not in its VM's tree corrupts the kernel's rb-tree;
    here it is an invariant failure.
    """
    gpuvm = va.vm
    if gpuvm is None or not gpuvm.rb.contains(va):
        raise InvariantViolation(
            f"drm_gpuva_remove of {va!r}, which is not in "
            f"{'any VM' if gpuvm is None else gpuvm.name}'s VA tree (rb_erase of an unlinked node)",
            signature="invariant:drm_gpuva_remove-unlinked",
        )
    gpuvm.rb.remove(va)


def drm_gpuva_find_first(gpuvm: DrmGpuvm, addr: int, range: int) -> DrmGpuva | None:
    """``drm_gpuva_find_first``: the first VA overlapping ``[addr, addr + range - 1]``.

    May return the kernel reserved node, as the kernel's does.
    """
    return gpuvm.rb.find_first(addr, range)


def drm_gpuva_find(gpuvm: DrmGpuvm, addr: int, range: int) -> DrmGpuva | None:
    """``drm_gpuva_find``: the VA at exactly ``addr`` with exactly ``range``."""
    va = drm_gpuva_find_first(gpuvm, addr, range)
    if va is None or va.va.addr != addr or va.va.range != range:
        return None
    return va


def drm_gpuva_find_prev(gpuvm: DrmGpuvm, start: int) -> DrmGpuva | None:
    """``drm_gpuva_find_prev``: the VA ending exactly at ``start`` (adjacent before it)."""
    if not drm_gpuvm_range_valid(gpuvm, u64(start - 1), 1):
        return None
    return gpuvm.rb.iter_first(u64(start - 1), start)


def drm_gpuva_find_next(gpuvm: DrmGpuvm, end: int) -> DrmGpuva | None:
    """``drm_gpuva_find_next``: the VA starting exactly at ``end`` (adjacent after it)."""
    if not drm_gpuvm_range_valid(gpuvm, end, 1):
        return None
    return gpuvm.rb.iter_first(end, u64(end + 1))


def drm_gpuvm_interval_empty(gpuvm: DrmGpuvm, addr: int, range: int) -> bool:
    """``drm_gpuvm_interval_empty``."""
    return drm_gpuva_find_first(gpuvm, addr, range) is None


def drm_gpuva_init(
    va: DrmGpuva,
    addr: int,
    range: int,
    obj: DrmGemObject | None,
    offset: int,
) -> None:
    """``drm_gpuva_init``: set address, range, GEM and offset (nothing else)."""
    va.va.addr = addr
    va.va.range = range
    va.gem.obj = obj
    va.gem.offset = offset


def drm_gpuva_init_from_op(va: DrmGpuva, op: DrmGpuvaOpMap) -> None:
    """``drm_gpuva_init_from_op``."""
    va.va.addr = op.va.addr
    va.va.range = op.va.range
    va.gem.obj = op.gem.obj
    va.gem.offset = op.gem.offset


def drm_gpuva_invalidate(va: DrmGpuva, invalidate: bool) -> None:
    """``drm_gpuva_invalidate``."""
    if invalidate:
        va.flags |= DRM_GPUVA_INVALIDATED
    else:
        va.flags &= ~DRM_GPUVA_INVALIDATED


def drm_gpuva_invalidated(va: DrmGpuva) -> bool:
    """``drm_gpuva_invalidated``."""
    return bool(va.flags & DRM_GPUVA_INVALIDATED)


def drm_gpuva_op_remap_to_unmap_range(op: DrmGpuvaOpRemap) -> tuple[int, int]:
    """``drm_gpuva_op_remap_to_unmap_range``: returns ``(start_addr, range)``.

    From the end of ``prev`` (or the VA's start) to the start of ``next``
    (or the VA's end): the part of the old mapping that really goes away.
    """
    va = op.unmap.va
    va_start = op.prev.va.addr + op.prev.va.range if op.prev is not None else va.va.addr
    va_end = op.next.va.addr if op.next is not None else va.va.addr + va.va.range
    return va_start, u64(va_end - va_start)
