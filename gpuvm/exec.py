"""drm_gpuvm's drm_exec helpers: lock/prepare the VM resv and the external objects, add fences.

(drm_gpuvm.c, v6.14.) ``drm_gpuvm_prepare_vm`` prepares ``r_obj`` (the VM's
shared resv); ``drm_gpuvm_prepare_objects`` prepares every external object
(under RESV_PROTECTED it needs the VM resv held and walks the list
directly; otherwise it uses the lockless list iterator);
``drm_gpuvm_resv_add_fence`` adds a fence to every object locked in the
``drm_exec``, with the external-object usage for external objects.
"""

from __future__ import annotations

from ..sched.dma_buf.dma_fence import DmaFence
from ..sched.dma_buf.dma_resv import DmaResvUsage, dma_resv_add_fence, dma_resv_assert_held
from ..sched.drm.drm_exec import (
    DrmExec,
    drm_exec_lock_obj,
    drm_exec_locked_objects,
    drm_exec_prepare_obj,
)
from ..sched.drm.drm_gem import DrmGemObject
from ..sched.errno import EOPNOTSUPP
from .drm_gpuvm import (
    drm_gpuvm_is_extobj,
    drm_gpuvm_resv_assert_held,
    drm_gpuvm_resv_obj,
    drm_gpuvm_resv_protected,
)
from .klist import KList
from .structs import DrmGpuvm, DrmGpuvmBo
from .vm_bo import (
    drm_gpuvm_bo_list_add,
    drm_gpuvm_bo_list_del,
    drm_gpuvm_bo_put,
    get_next_vm_bo_from_list,
    restore_vm_bo_list,
)


async def exec_prepare_obj(exec: DrmExec, obj: DrmGemObject, num_fences: int) -> int:
    """``exec_prepare_obj`` (static): prepare with fences, or just lock when ``num_fences`` is 0."""
    if num_fences:
        return await drm_exec_prepare_obj(exec, obj, num_fences)
    return await drm_exec_lock_obj(exec, obj)


async def drm_gpuvm_prepare_vm(gpuvm: DrmGpuvm, exec: DrmExec, num_fences: int) -> int:
    """``drm_gpuvm_prepare_vm``: ``drm_exec_prepare_obj(exec, gpuvm->r_obj, num_fences)``."""
    return await exec_prepare_obj(exec, drm_gpuvm_resv_obj(gpuvm), num_fences)


async def __drm_gpuvm_prepare_objects(gpuvm: DrmGpuvm, exec: DrmExec, num_fences: int) -> int:
    local: KList[DrmGpuvmBo] = KList("extobjs (local)")
    ret = 0
    vm_bo = await get_next_vm_bo_from_list(gpuvm, "extobj", local, None)
    while vm_bo is not None:
        assert vm_bo.obj is not None
        ret = await exec_prepare_obj(exec, vm_bo.obj, num_fences)
        if ret:
            break
        vm_bo = await get_next_vm_bo_from_list(gpuvm, "extobj", local, vm_bo)
    # Drop ref in case we break out of the loop.
    await drm_gpuvm_bo_put(vm_bo)
    await restore_vm_bo_list(gpuvm, "extobj")
    return ret


async def drm_gpuvm_prepare_objects_locked(gpuvm: DrmGpuvm, exec: DrmExec, num_fences: int) -> int:
    """``drm_gpuvm_prepare_objects_locked`` (static): the RESV_PROTECTED walk.

    Asserts the VM resv; an evicted external object goes onto the evict list.
    """
    drm_gpuvm_resv_assert_held(gpuvm)
    ret = 0
    for vm_bo in gpuvm.extobj.list:
        assert vm_bo.obj is not None
        ret = await exec_prepare_obj(exec, vm_bo.obj, num_fences)
        if ret:
            break
        if vm_bo.evicted:
            await drm_gpuvm_bo_list_add(vm_bo, "evict", False)
    return ret


async def drm_gpuvm_prepare_objects(gpuvm: DrmGpuvm, exec: DrmExec, num_fences: int) -> int:
    """``drm_gpuvm_prepare_objects``: prepare every external object mapped in the VM."""
    if drm_gpuvm_resv_protected(gpuvm):
        return await drm_gpuvm_prepare_objects_locked(gpuvm, exec, num_fences)
    return await __drm_gpuvm_prepare_objects(gpuvm, exec, num_fences)


async def drm_gpuvm_prepare_range(
    gpuvm: DrmGpuvm,
    exec: DrmExec,
    addr: int,
    range: int,
    num_fences: int,
) -> int:
    """``drm_gpuvm_prepare_range``: prepare the GEM of every VA in ``[addr, addr + range)``."""
    end = addr + range
    for va in list(gpuvm.rb.range_iter(addr, end)):
        obj = va.gem.obj
        assert obj is not None, "drm_gpuvm_prepare_range over a VA without a GEM (NULL deref)"
        ret = await exec_prepare_obj(exec, obj, num_fences)
        if ret:
            return ret
    return 0


async def drm_gpuvm_resv_add_fence(
    gpuvm: DrmGpuvm,
    exec: DrmExec,
    fence: DmaFence,
    private_usage: DmaResvUsage,
    extobj_usage: DmaResvUsage,
) -> None:
    """``drm_gpuvm_resv_add_fence``: add ``fence`` to every object locked in ``exec``."""
    for obj in drm_exec_locked_objects(exec):
        dma_resv_assert_held(obj.resv)
        usage = extobj_usage if drm_gpuvm_is_extobj(gpuvm, obj) else private_usage
        await dma_resv_add_fence(obj.resv, fence, usage)


async def __drm_gpuvm_validate(gpuvm: DrmGpuvm, exec: DrmExec) -> int:
    ops = gpuvm.ops
    assert ops is not None and ops.vm_bo_validate is not None
    local: KList[DrmGpuvmBo] = KList("evict (local)")
    ret = 0
    vm_bo = await get_next_vm_bo_from_list(gpuvm, "evict", local, None)
    while vm_bo is not None:
        ret = await ops.vm_bo_validate(vm_bo, exec)
        if ret:
            break
        vm_bo = await get_next_vm_bo_from_list(gpuvm, "evict", local, vm_bo)
    await drm_gpuvm_bo_put(vm_bo)
    await restore_vm_bo_list(gpuvm, "evict")
    return ret


async def drm_gpuvm_validate_locked(gpuvm: DrmGpuvm, exec: DrmExec) -> int:
    """``drm_gpuvm_validate_locked`` (static): the RESV_PROTECTED walk of the evict list."""
    ops = gpuvm.ops
    assert ops is not None and ops.vm_bo_validate is not None
    drm_gpuvm_resv_assert_held(gpuvm)
    ret = 0
    for vm_bo in gpuvm.evict.list:
        ret = await ops.vm_bo_validate(vm_bo, exec)
        if ret:
            break
        assert vm_bo.obj is not None
        dma_resv_assert_held(vm_bo.obj.resv)
        if not vm_bo.evicted:
            await drm_gpuvm_bo_list_del(vm_bo, "evict", False)
    return ret


async def drm_gpuvm_validate(gpuvm: DrmGpuvm, exec: DrmExec) -> int:
    """``drm_gpuvm_validate``: ``ops->vm_bo_validate`` for each evicted BO (-EOPNOTSUPP without)."""
    ops = gpuvm.ops
    if ops is None or ops.vm_bo_validate is None:
        return -EOPNOTSUPP
    if drm_gpuvm_resv_protected(gpuvm):
        return await drm_gpuvm_validate_locked(gpuvm, exec)
    return await __drm_gpuvm_validate(gpuvm, exec)
