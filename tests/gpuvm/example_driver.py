"""A minimal drm_gpuvm driver: the kernel-doc "Examples 2)" with panthor's locking.

Not a panthor model (that is ``mmu/panthor_mmu.py``): no page tables, no
jobs. It lives with the gpuvm tests so they can drive the real split/merge steps,
``drm_gpuva_map``/``remap``/``unmap``, ``drm_gpuva_link``/``unlink`` and the
vm_bo lifetime the way a driver does:

* a map request preallocates its three VAs and its vm_bo (``kzalloc``: fault
  injection applies), obtains the vm_bo under the VM resv + the GEM gpuva
  lock, and runs ``drm_gpuvm_sm_map`` under the VM's ``op_lock``;
* the steps allocate nothing and take only the GEM gpuva lock (for
  link/unlink); a VA unlinked by an unmap step keeps an extra vm_bo
  reference that is dropped after the walk under the resv + gpuva lock, as
  panthor defers it (``returned_vmas``);
* ``fail_at`` makes the n-th step callback (0-based) return -EIO before it
  touches anything, to test error propagation.
"""

from __future__ import annotations

from typing import Any

from panthor_testbed.gpuvm.drm_gpuvm import (
    drm_gpuvm_get,
    drm_gpuvm_init,
    drm_gpuvm_put,
    drm_gpuvm_resv,
    drm_gpuvm_resv_object_alloc,
)
from panthor_testbed.gpuvm.gpuva import drm_gpuva_map, drm_gpuva_remap, drm_gpuva_unmap
from panthor_testbed.gpuvm.sm import drm_gpuvm_sm_map, drm_gpuvm_sm_unmap
from panthor_testbed.gpuvm.structs import (
    DRM_GPUVM_RESV_PROTECTED,
    DrmGpuva,
    DrmGpuvaOp,
    DrmGpuvm,
    DrmGpuvmBo,
    DrmGpuvmOps,
)
from panthor_testbed.gpuvm.vm_bo import (
    drm_gpuva_link,
    drm_gpuva_unlink,
    drm_gpuvm_bo_create,
    drm_gpuvm_bo_extobj_add,
    drm_gpuvm_bo_get,
    drm_gpuvm_bo_obtain_prealloc,
    drm_gpuvm_bo_put,
)
from panthor_testbed.sched.dma_buf.dma_resv import dma_resv_lock, dma_resv_unlock
from panthor_testbed.sched.drm.drm_gem import (
    DrmGemObject,
    drm_gem_gpuva_set_lock,
    drm_gem_object_get,
    drm_gem_object_put,
)
from panthor_testbed.sched.errno import EINVAL, EIO, ENOMEM, ERR_PTR, ErrPtr
from panthor_testbed.sched.locking.mutex import Mutex, mutex_lock, mutex_unlock
from panthor_testbed.sched.mm.gfp import GFP_KERNEL
from panthor_testbed.sched.mm.memory import kfree, kzalloc


class ExampleVm(DrmGpuvm):
    """A driver VM embedding ``struct drm_gpuvm`` (``container_of`` is the identity)."""

    def __init__(self) -> None:
        super().__init__()
        self.op_lock = Mutex("example_vm->op_lock", key="&example_vm->op_lock")
        self.vm_free_calls = 0
        self.vm_free_saw_name: str | None = "not called"
        self.fail_at: int | None = None
        self.steps = 0


class ExampleOpCtx:
    """What a request preallocates (``struct driver_context`` of the kernel-doc example)."""

    def __init__(self, vm: ExampleVm) -> None:
        self.vm = vm
        self.vm_bo: DrmGpuvmBo | None = None
        self.new_va: DrmGpuva | None = None
        self.prev_va: DrmGpuva | None = None
        self.next_va: DrmGpuva | None = None
        self.returned: list[DrmGpuvmBo] = []


def example_gem(
    name: str, size: int = 1 << 30, resv_from: DrmGemObject | None = None
) -> DrmGemObject:
    """A GEM with a gpuva lock (panthor's ``gpuva_list_lock``); ``resv_from``: share its resv."""
    obj = DrmGemObject(size, name, resv_from.resv if resv_from is not None else None)
    drm_gem_gpuva_set_lock(obj, Mutex(f"{name}.gpuva_list_lock", key="&bo->gpuva_list_lock"))
    return obj


def _gpuva_lock(obj: DrmGemObject) -> Mutex:
    assert obj.gpuva_lock is not None
    return obj.gpuva_lock


def _fail(vm: ExampleVm) -> int:
    n = vm.steps
    vm.steps += 1
    return -EIO if vm.fail_at is not None and n == vm.fail_at else 0


async def _step_map(op: DrmGpuvaOp, priv: Any) -> int:
    ctx: ExampleOpCtx = priv
    ret = _fail(ctx.vm)
    if ret:
        return ret
    va = ctx.new_va
    if va is None:
        return -EINVAL
    ctx.new_va = None
    await drm_gpuva_map(ctx.vm, va, op.map)
    obj = va.gem.obj
    if obj is not None:
        assert ctx.vm_bo is not None
        await mutex_lock(_gpuva_lock(obj))
        await drm_gpuva_link(va, ctx.vm_bo)
        await mutex_unlock(_gpuva_lock(obj))
    return 0


async def _step_remap(op: DrmGpuvaOp, priv: Any) -> int:
    ctx: ExampleOpCtx = priv
    ret = _fail(ctx.vm)
    if ret:
        return ret
    r = op.remap
    va = r.unmap.va
    prev: DrmGpuva | None = None
    nxt: DrmGpuva | None = None
    if r.prev is not None:
        prev, ctx.prev_va = ctx.prev_va, None
    if r.next is not None:
        nxt, ctx.next_va = ctx.next_va, None
    await drm_gpuva_remap(prev, nxt, r)
    obj = va.gem.obj
    if obj is not None:
        vm_bo = va.vm_bo
        assert vm_bo is not None
        await mutex_lock(_gpuva_lock(obj))
        if prev is not None:
            await drm_gpuva_link(prev, vm_bo)
        if nxt is not None:
            await drm_gpuva_link(nxt, vm_bo)
        await drm_gpuva_unlink(va)  # prev or next holds a reference: never the last
        await mutex_unlock(_gpuva_lock(obj))
    kfree(va)
    return 0


async def _step_unmap(op: DrmGpuvaOp, priv: Any) -> int:
    ctx: ExampleOpCtx = priv
    ret = _fail(ctx.vm)
    if ret:
        return ret
    va = op.unmap.va
    await drm_gpuva_unmap(op.unmap)
    obj = va.gem.obj
    if obj is not None:
        assert va.vm_bo is not None
        ctx.returned.append(await drm_gpuvm_bo_get(va.vm_bo))  # deferred put
        await mutex_lock(_gpuva_lock(obj))
        await drm_gpuva_unlink(va)
        await mutex_unlock(_gpuva_lock(obj))
    kfree(va)
    return 0


async def _vm_free(gpuvm: DrmGpuvm) -> None:
    assert isinstance(gpuvm, ExampleVm)
    gpuvm.vm_free_calls += 1
    gpuvm.vm_free_saw_name = gpuvm.name  # None once drm_gpuvm_fini ran


EXAMPLE_OPS = DrmGpuvmOps(
    vm_free=_vm_free,
    sm_step_map=_step_map,
    sm_step_remap=_step_remap,
    sm_step_unmap=_step_unmap,
)


async def example_vm_create(
    name: str,
    start: int,
    range: int,
    flags: int = DRM_GPUVM_RESV_PROTECTED,
    reserve: tuple[int, int] = (0, 0),
    ops: DrmGpuvmOps = EXAMPLE_OPS,
) -> ExampleVm | ErrPtr:
    """Allocate the dummy resv GEM, ``drm_gpuvm_init``, drop the creation reference on the GEM."""
    r_obj = await drm_gpuvm_resv_object_alloc(None)
    if r_obj is None:
        return ERR_PTR(-ENOMEM)
    vm = ExampleVm()
    await drm_gpuvm_init(vm, name, flags, None, r_obj, start, range, reserve[0], reserve[1], ops)
    await drm_gem_object_put(r_obj)
    return vm


async def _vm_bo_put_locked(vm: ExampleVm, vm_bo: DrmGpuvmBo) -> bool:
    """panthor_vm_bo_put: the put that may destroy, under the VM resv and the GEM gpuva lock.

    The GEM and the VM are retained across it, or the last put could free the
    resv (or the gpuva lock) while it is held.
    """
    obj = vm_bo.obj
    assert obj is not None
    await drm_gem_object_get(obj)
    await drm_gpuvm_get(vm)
    lock = _gpuva_lock(obj)
    resv = drm_gpuvm_resv(vm)
    await dma_resv_lock(resv, None)
    await mutex_lock(lock)
    destroyed = await drm_gpuvm_bo_put(vm_bo)
    await mutex_unlock(lock)
    await dma_resv_unlock(resv)
    await drm_gpuvm_put(vm)
    await drm_gem_object_put(obj)
    return destroyed


async def example_op_ctx_cleanup(ctx: ExampleOpCtx) -> None:
    """Drop the deferred and the request's vm_bo references, free the unused VAs."""
    for vm_bo in ctx.returned:
        await _vm_bo_put_locked(ctx.vm, vm_bo)
    ctx.returned = []
    if ctx.vm_bo is not None:
        await _vm_bo_put_locked(ctx.vm, ctx.vm_bo)
        ctx.vm_bo = None
    for va in (ctx.new_va, ctx.prev_va, ctx.next_va):
        kfree(va)
    ctx.new_va = ctx.prev_va = ctx.next_va = None


async def example_op_ctx_prepare(
    vm: ExampleVm, obj: DrmGemObject | None, map_op: bool
) -> tuple[ExampleOpCtx, int]:
    """Preallocate a request's VAs (3 for a map, 2 for an unmap) and, for a map, its vm_bo.

    On failure the context is already cleaned up and the error returned.
    """
    ctx = ExampleOpCtx(vm)
    ret = 0
    for slot in ("new_va", "prev_va", "next_va") if map_op else ("prev_va", "next_va"):
        va = await kzalloc(DrmGpuva, GFP_KERNEL)
        if va is None:
            ret = -ENOMEM
            break
        setattr(ctx, slot, va)
    if not ret and obj is not None:
        pre = await drm_gpuvm_bo_create(vm, obj)
        if pre is None:
            ret = -ENOMEM
        else:
            resv = drm_gpuvm_resv(vm)
            await dma_resv_lock(resv, None)
            await mutex_lock(_gpuva_lock(obj))
            ctx.vm_bo = await drm_gpuvm_bo_obtain_prealloc(pre)
            await mutex_unlock(_gpuva_lock(obj))
            await drm_gpuvm_bo_extobj_add(ctx.vm_bo)
            await dma_resv_unlock(resv)
    if ret:
        await example_op_ctx_cleanup(ctx)
    return ctx, ret


async def example_vm_map(
    vm: ExampleVm,
    addr: int,
    range: int,
    obj: DrmGemObject | None,
    offset: int,
) -> int:
    """Map ``[addr, addr + range)`` to ``obj`` at ``offset`` (``obj`` None: a VA without GEM)."""
    ctx, ret = await example_op_ctx_prepare(vm, obj, True)
    if ret:
        return ret
    await mutex_lock(vm.op_lock)
    ret = await drm_gpuvm_sm_map(vm, ctx, addr, range, obj, offset)
    await mutex_unlock(vm.op_lock)
    await example_op_ctx_cleanup(ctx)
    return ret


async def example_vm_unmap(vm: ExampleVm, addr: int, range: int) -> int:
    """Unmap ``[addr, addr + range)`` (splitting mappings that stick out)."""
    ctx, ret = await example_op_ctx_prepare(vm, None, False)
    if ret:
        return ret
    await mutex_lock(vm.op_lock)
    ret = await drm_gpuvm_sm_unmap(vm, ctx, addr, range)
    await mutex_unlock(vm.op_lock)
    await example_op_ctx_cleanup(ctx)
    return ret


async def example_vm_destroy(vm: ExampleVm) -> int:
    """Unmap the whole VA space (around the reserved node), then drop the creation reference."""
    start, end = vm.mm_start, vm.mm_start + vm.mm_range
    kva = vm.kernel_alloc_node.va
    ranges = [(start, end)] if not kva.range else [(start, kva.addr), (kva.addr + kva.range, end)]
    ret = 0
    for lo, hi in ranges:
        if hi > lo:
            ret = ret or await example_vm_unmap(vm, lo, hi - lo)
    await drm_gpuvm_put(vm)
    return ret
