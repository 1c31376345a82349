"""Split/merge: ``drm_gpuvm_sm_map`` and ``drm_gpuvm_sm_unmap`` (drm_gpuvm.c, v6.14).

The walk is a synchronous generator that yields the kernel's op sequence one
step at a time, reading the tree lazily exactly as
``drm_gpuvm_for_each_va_range_safe`` does: the next VA is looked up before a
step runs, everything else after. Driven by the async
:func:`drm_gpuvm_sm_map` / :func:`drm_gpuvm_sm_unmap`, a driver step that
edits the tree (as panthor's do) sees the same walk as in the kernel.
Collected into a list without running steps it is what
``drm_gpuvm_sm_map_ops_create`` returns (:func:`drm_gpuvm_sm_map_ops`).

v6.14 signatures: ``drm_gpuvm_sm_map(gpuvm, priv, addr, range, obj, offset)``
(the ``drm_gpuvm_map_req`` argument struct came later).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..sched.core.failure import InvariantViolation
from ..sched.core.kernel import current_kernel_or_none
from ..sched.errno import EINVAL
from .space import drm_gpuva_find_first, drm_gpuvm_range_valid
from .structs import (
    DRM_GPUVA_OP_MAP,
    DRM_GPUVA_OP_REMAP,
    DRM_GPUVA_OP_UNMAP,
    DrmGpuva,
    DrmGpuvaOp,
    DrmGpuvaOpMap,
    DrmGpuvaOpRemap,
    DrmGpuvaOpUnmap,
    DrmGpuvm,
    DrmGpuvmOps,
)
from .u64 import u64

if TYPE_CHECKING:
    from ..sched.drm.drm_gem import DrmGemObject


# ---------------------------------------------------------------------- iteration


def _gpuva_next(gpuvm: DrmGpuvm, va: DrmGpuva | None) -> DrmGpuva | None:
    """``__drm_gpuva_next``: the list successor of a VA that is still in the tree.

    The kernel takes it from ``va->rb.entry``; for a VA already removed from the
    tree (``list_del_init``) that is the VA itself, so the walk would spin on
    (or use after free) a dead entry. Only a driver step that removes the
    walk's *next* VA gets there: an invariant failure.
    """
    if va is None:
        return None
    if not gpuvm.rb.contains(va):
        raise InvariantViolation(
            f"drm_gpuvm split/merge walk: the next VA {va!r} was removed from "
            f"{gpuvm.name} by a step callback (the safe iterator would reuse a dead entry)",
            signature="invariant:gpuvm-walk-next-removed",
        )
    return gpuvm.rb.next(va)


def drm_gpuvm_for_each_va_range_safe(gpuvm: DrmGpuvm, start: int, end: int) -> Iterator[DrmGpuva]:
    """``drm_gpuvm_for_each_va_range_safe(va, next, gpuvm, start, end)``.

    ``next`` is taken before the loop body runs; the body may remove the
    current VA and insert others. Does not skip the kernel reserved node.
    """
    va = drm_gpuva_find_first(gpuvm, start, u64(end - start))
    nxt = _gpuva_next(gpuvm, va)
    while va is not None and va.va.addr < end:
        yield va
        va = nxt
        nxt = _gpuva_next(gpuvm, va)


# ---------------------------------------------------------------------- op constructors


def _op_map(addr: int, range: int, obj: DrmGemObject | None, offset: int) -> DrmGpuvaOp:
    """``op_map_cb``'s op."""
    return DrmGpuvaOp(DRM_GPUVA_OP_MAP, DrmGpuvaOpMap(addr, range, obj, offset))


def _op_remap(
    prev: DrmGpuvaOpMap | None, nxt: DrmGpuvaOpMap | None, unmap: DrmGpuvaOpUnmap
) -> DrmGpuvaOp:
    """``op_remap_cb``'s op."""
    return DrmGpuvaOp(DRM_GPUVA_OP_REMAP, DrmGpuvaOpRemap(prev, nxt, unmap))


def _op_unmap(va: DrmGpuva, merge: bool) -> DrmGpuvaOp:
    """``op_unmap_cb``'s op."""
    return DrmGpuvaOp(DRM_GPUVA_OP_UNMAP, DrmGpuvaOpUnmap(va, merge))


# ---------------------------------------------------------------------- the walks


def sm_map_steps(
    gpuvm: DrmGpuvm,
    req_addr: int,
    req_range: int,
    req_obj: DrmGemObject | None,
    req_offset: int,
) -> Iterator[DrmGpuvaOp]:
    """The op sequence of ``__drm_gpuvm_sm_map`` for a range already checked valid.

    Per overlapping VA (``merge`` starts as "the VA has a GEM"): UNMAP, or
    REMAP with prev and/or next, with ``keep`` = merge when the VA is the same
    GEM at the offset the request implies; then always MAP(request), last.
    """
    req_end = req_addr + req_range
    for va in drm_gpuvm_for_each_va_range_safe(gpuvm, req_addr, req_end):
        obj = va.gem.obj
        offset = va.gem.offset
        addr = va.va.addr
        rng = va.va.range
        end = addr + rng
        merge = obj is not None

        if addr == req_addr:
            merge = merge and obj is req_obj and offset == req_offset
            if end == req_end:
                yield _op_unmap(va, merge)
                break
            if end < req_end:
                yield _op_unmap(va, merge)
                continue
            # end > req_end
            n = DrmGpuvaOpMap(req_end, rng - req_range, obj, u64(offset + req_range))
            yield _op_remap(None, n, DrmGpuvaOpUnmap(va, merge))
            break
        elif addr < req_addr:
            ls_range = req_addr - addr
            p = DrmGpuvaOpMap(addr, ls_range, obj, offset)
            merge = merge and obj is req_obj and u64(offset + ls_range) == req_offset
            u = DrmGpuvaOpUnmap(va, merge)
            if end == req_end:
                yield _op_remap(p, None, u)
                break
            if end < req_end:
                yield _op_remap(p, None, u)
                continue
            # end > req_end
            n = DrmGpuvaOpMap(req_end, end - req_end, obj, u64(offset + ls_range + req_range))
            yield _op_remap(p, n, u)
            break
        else:  # addr > req_addr
            merge = merge and obj is req_obj and offset == u64(req_offset + (addr - req_addr))
            if end == req_end:
                yield _op_unmap(va, merge)
                break
            if end < req_end:
                yield _op_unmap(va, merge)
                continue
            # end > req_end
            n = DrmGpuvaOpMap(req_end, end - req_end, obj, u64(offset + req_end - addr))
            yield _op_remap(None, n, DrmGpuvaOpUnmap(va, merge))
            break

    yield _op_map(req_addr, req_range, req_obj, req_offset)


def sm_unmap_steps(gpuvm: DrmGpuvm, req_addr: int, req_range: int) -> Iterator[DrmGpuvaOp]:
    """The op sequence of ``__drm_gpuvm_sm_unmap`` for a range already checked valid.

    Per overlapping VA: REMAP(prev?, next?, keep=false) if it sticks out of
    the range on either side, else UNMAP(keep=false).
    """
    req_end = req_addr + req_range
    for va in drm_gpuvm_for_each_va_range_safe(gpuvm, req_addr, req_end):
        obj = va.gem.obj
        offset = va.gem.offset
        addr = va.va.addr
        end = addr + va.va.range
        prev: DrmGpuvaOpMap | None = None
        nxt: DrmGpuvaOpMap | None = None

        if addr < req_addr:
            prev = DrmGpuvaOpMap(addr, req_addr - addr, obj, offset)
        if end > req_end:
            nxt = DrmGpuvaOpMap(req_end, end - req_end, obj, u64(offset + (req_end - addr)))

        if prev is not None or nxt is not None:
            yield _op_remap(prev, nxt, DrmGpuvaOpUnmap(va, False))
        else:
            yield _op_unmap(va, False)


# ---------------------------------------------------------------------- drivers


async def _run_steps(
    gpuvm: DrmGpuvm, ops: DrmGpuvmOps, priv: Any, steps: Iterator[DrmGpuvaOp]
) -> int:
    """Call the driver's step for each op; stop at the first non-zero return."""
    k = current_kernel_or_none()
    for op in steps:
        if op.op == DRM_GPUVA_OP_MAP:
            fn = ops.sm_step_map
        elif op.op == DRM_GPUVA_OP_REMAP:
            fn = ops.sm_step_remap
        else:
            fn = ops.sm_step_unmap
        assert fn is not None
        if k is not None and k.tracing:
            k.ev("gpuva-op", gpuvm.name or "", describe_op(op))
        ret = await fn(op, priv)
        if ret:
            return ret
    return 0


async def drm_gpuvm_sm_map(
    gpuvm: DrmGpuvm,
    priv: Any,
    req_addr: int,
    req_range: int,
    req_obj: DrmGemObject | None,
    req_offset: int,
) -> int:
    """``drm_gpuvm_sm_map`` (v6.14): split/merge steps for a new mapping.

    -EINVAL if a step callback is missing or the range is invalid. Otherwise
    the driver's ``sm_step_unmap``/``sm_step_remap``/``sm_step_map`` run in
    order; the first non-zero return stops the walk and is returned, and
    nothing already done is rolled back.
    """
    ops = gpuvm.ops
    if (
        ops is None
        or ops.sm_step_map is None
        or ops.sm_step_remap is None
        or ops.sm_step_unmap is None
    ):
        return -EINVAL
    if not drm_gpuvm_range_valid(gpuvm, req_addr, req_range):
        return -EINVAL
    return await _run_steps(
        gpuvm, ops, priv, sm_map_steps(gpuvm, req_addr, req_range, req_obj, req_offset)
    )


async def drm_gpuvm_sm_unmap(gpuvm: DrmGpuvm, priv: Any, req_addr: int, req_range: int) -> int:
    """``drm_gpuvm_sm_unmap``: split/unmap steps for an unmap request.

    -EINVAL if ``sm_step_remap``/``sm_step_unmap`` is missing or the range is
    invalid; the first non-zero step return is returned (nothing rolled back).
    """
    ops = gpuvm.ops
    if ops is None or ops.sm_step_remap is None or ops.sm_step_unmap is None:
        return -EINVAL
    if not drm_gpuvm_range_valid(gpuvm, req_addr, req_range):
        return -EINVAL
    return await _run_steps(gpuvm, ops, priv, sm_unmap_steps(gpuvm, req_addr, req_range))


def drm_gpuvm_sm_map_ops(
    gpuvm: DrmGpuvm,
    req_addr: int,
    req_range: int,
    req_obj: DrmGemObject | None,
    req_offset: int,
) -> list[DrmGpuvaOp] | int:
    """The ops ``drm_gpuvm_sm_map_ops_create`` would return, or -EINVAL (pure, no allocation).

    Computed against the current tree, nothing applied.
    """
    if not drm_gpuvm_range_valid(gpuvm, req_addr, req_range):
        return -EINVAL
    return list(sm_map_steps(gpuvm, req_addr, req_range, req_obj, req_offset))


def drm_gpuvm_sm_unmap_ops(
    gpuvm: DrmGpuvm, req_addr: int, req_range: int
) -> list[DrmGpuvaOp] | int:
    """The ops ``drm_gpuvm_sm_unmap_ops_create`` would return, or -EINVAL (pure)."""
    if not drm_gpuvm_range_valid(gpuvm, req_addr, req_range):
        return -EINVAL
    return list(sm_unmap_steps(gpuvm, req_addr, req_range))


# ---------------------------------------------------------------------- description


def _obj_name(obj: object) -> str:
    if obj is None:
        return "null"
    return str(getattr(obj, "name", "?"))


def _map_text(m: DrmGpuvaOpMap) -> str:
    return f"[{m.va.addr:#x},+{m.va.range:#x}) {_obj_name(m.gem.obj)}@{m.gem.offset:#x}"


def describe_op(op: DrmGpuvaOp) -> str:
    """A deterministic one-line description (trace events, test failures)."""
    if op.op == DRM_GPUVA_OP_MAP:
        return f"map {_map_text(op.map)}"
    if op.op == DRM_GPUVA_OP_REMAP:
        r = op.remap
        va = r.unmap.va
        prev = _map_text(r.prev) if r.prev is not None else "-"
        nxt = _map_text(r.next) if r.next is not None else "-"
        return (
            f"remap [{va.va.addr:#x},+{va.va.range:#x}) keep={int(r.unmap.keep)} "
            f"prev={prev} next={nxt}"
        )
    if op.op == DRM_GPUVA_OP_UNMAP:
        u = op.unmap
        return f"unmap [{u.va.va.addr:#x},+{u.va.va.range:#x}) keep={int(u.keep)}"
    return op.op.name


OpKey = tuple[Any, ...]


def op_key(op: DrmGpuvaOp) -> OpKey:
    """A comparable summary of an op: the VAs as (addr, range), GEMs by identity.

    ``("map", addr, range, obj, offset)``, ``("unmap", (addr, range), keep)``,
    ``("remap", (addr, range), keep, prev, next)`` with prev/next either None
    or ``(addr, range, obj, offset)``.
    """

    def m(x: DrmGpuvaOpMap | None) -> tuple[int, int, object, int] | None:
        if x is None:
            return None
        return (x.va.addr, x.va.range, x.gem.obj, x.gem.offset)

    if op.op == DRM_GPUVA_OP_MAP:
        mm = op.map
        return ("map", mm.va.addr, mm.va.range, mm.gem.obj, mm.gem.offset)
    if op.op == DRM_GPUVA_OP_REMAP:
        r = op.remap
        va = r.unmap.va
        return ("remap", (va.va.addr, va.va.range), r.unmap.keep, m(r.prev), m(r.next))
    if op.op == DRM_GPUVA_OP_UNMAP:
        u = op.unmap
        return ("unmap", (u.va.va.addr, u.va.va.range), u.keep)
    return (op.op.name,)
