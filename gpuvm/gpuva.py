"""Inserting and removing GPU VAs with their VM references (drm_gpuvm.c, v6.14).

Each successful :func:`drm_gpuva_insert` takes a VM reference and each
:func:`drm_gpuva_remove` drops one, so a VM with mappings never reaches
``vm_free``, and the remove of the last VA of a VM whose other references
are gone runs ``drm_gpuvm_fini`` + ``vm_free`` right there. The
``drm_gpuva_map``/``remap``/``unmap`` helpers are what a driver's
``sm_step_*`` callbacks call; like the kernel's they ignore insert failures.
"""

from __future__ import annotations

from ..sched.core.failure import InvariantViolation
from ..sched.errno import EINVAL
from ..sched.warn import drm_WARN
from .drm_gpuvm import drm_gpuvm_get, drm_gpuvm_put
from .space import (
    drm_gpuva_init_from_op,
    drm_gpuvm_range_valid,
    gpuva_tree_insert,
    gpuva_tree_remove,
)
from .structs import DrmGpuva, DrmGpuvaOpMap, DrmGpuvaOpRemap, DrmGpuvaOpUnmap, DrmGpuvm


async def drm_gpuva_insert(gpuvm: DrmGpuvm, va: DrmGpuva) -> int:
    """``drm_gpuva_insert``: -EINVAL for an invalid range, -EEXIST on overlap, else 0 + VM ref.

    A zero-sized VA passes the kernel's checks and becomes a degenerate
    interval-tree node; the model cannot represent it and stops with an
    invariant failure instead of diverging silently.
    """
    addr, rng = va.va.addr, va.va.range
    if not drm_gpuvm_range_valid(gpuvm, addr, rng):
        return -EINVAL
    if rng == 0:
        raise InvariantViolation(
            f"drm_gpuva_insert of a zero-sized VA at {addr:#x} in {gpuvm.name}: the kernel "
            f"inserts a degenerate interval-tree node [addr, addr - 1] (not modelled)",
            signature="invariant:drm_gpuva_insert-zero-size",
        )
    ret = gpuva_tree_insert(gpuvm, va)
    if ret == 0:
        # The reference is taken here, not in __drm_gpuva_insert, so that the
        # kernel reserved node does not hold one.
        await drm_gpuvm_get(gpuvm)
    return ret


async def drm_gpuva_remove(va: DrmGpuva) -> None:
    """``drm_gpuva_remove``: WARN for the kernel reserved node, else remove and put the VM."""
    gpuvm = va.vm
    if gpuvm is None:
        raise InvariantViolation(
            f"drm_gpuva_remove of {va!r}, which was never inserted (NULL va->vm)",
            signature="invariant:drm_gpuva_remove-never-inserted",
        )
    if va is gpuvm.kernel_alloc_node:
        drm_WARN(gpuvm.drm, True, "Can't destroy kernel reserved node.\n")
        return
    gpuva_tree_remove(va)
    await drm_gpuvm_put(va.vm)


async def drm_gpuva_map(gpuvm: DrmGpuvm, va: DrmGpuva, op: DrmGpuvaOpMap) -> None:
    """``drm_gpuva_map``: init ``va`` from the op and insert it (the result is ignored)."""
    drm_gpuva_init_from_op(va, op)
    await drm_gpuva_insert(gpuvm, va)


async def drm_gpuva_remap(
    prev: DrmGpuva | None,
    next: DrmGpuva | None,
    op: DrmGpuvaOpRemap,
) -> None:
    """``drm_gpuva_remap``: remove the old VA, then insert ``prev`` and/or ``next`` from the op.

    The remove comes first: when it drops the last VM reference the VM is
    freed before the new parts go in, as in the kernel.
    """
    va = op.unmap.va
    gpuvm = va.vm
    assert gpuvm is not None

    await drm_gpuva_remove(va)

    if op.prev is not None:
        assert prev is not None, "drm_gpuva_remap: op->prev set but no prev VA (NULL deref)"
        drm_gpuva_init_from_op(prev, op.prev)
        await drm_gpuva_insert(gpuvm, prev)

    if op.next is not None:
        assert next is not None, "drm_gpuva_remap: op->next set but no next VA (NULL deref)"
        drm_gpuva_init_from_op(next, op.next)
        await drm_gpuva_insert(gpuvm, next)


async def drm_gpuva_unmap(op: DrmGpuvaOpUnmap) -> None:
    """``drm_gpuva_unmap``: remove the VA of the op."""
    await drm_gpuva_remove(op.va)
