"""Found here: a VM_BIND queued before VM_DESTROY maps into the destroyed VM, which then leaks.

``panthor_vm_destroy()`` sets ``vm->destroyed``, unmaps the whole VM and drops
the pool's reference, and ``panthor_vm_pool_destroy_vm()`` promises "nothing
can be mapped after that point". ``panthor_vm_bind_job_create()`` refuses a
destroyed VM, but a bind job created before the VM_DESTROY (it holds its own
VM reference) runs afterwards: ``panthor_vm_exec_op()`` only checks
``vm->unusable``, so the MAP goes in. Nobody unmaps a destroyed VM again, and
the new mapping's vm_bo holds a reference on the VM (``drm_gpuvm_bo_create()``
takes one), so the VM and its page tables are never freed. The fix proposed
here: ``panthor_vm_exec_op()`` refuses a MAP on a destroyed VM, as it does on
an unusable one (``vm->destroyed`` is written without ``op_lock``, but the
unmap ``panthor_vm_destroy()`` does next takes ``op_lock``: a MAP that ran
before the write is unmapped by it, one that runs after sees it).
"""

from __future__ import annotations

from panthor_testbed.mmu.panthor_mmu import (
    DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
    DRM_PANTHOR_VM_BIND_OP_TYPE_MASK,
    DRM_PANTHOR_VM_BIND_OP_TYPE_SYNC_ONLY,
    DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
    EINVAL,
    PanthorVm,
    PanthorVmOpCtx,
    drm_gpuvm_sm_map,
    drm_gpuvm_sm_unmap,
    mutex_lock,
    mutex_unlock,
    preempt,
)

from .entry import Bug, FoundAs

BUG = Bug(
    slug="bind-job-maps-destroyed-vm",
    kind="upstream",
    commit="none",
    title="drm/panthor: do not map into a destroyed VM (proposed here)",
    functions=("panthor_vm_exec_op",),
    breaks="a VM_BIND job queued before VM_DESTROY maps into the destroyed VM; the "
    "mapping's vm_bo keeps the VM alive, so it and its page tables are never freed",
    scenario="ioctl-program",
    found_as=FoundAs("warn", "panthor-mmu-pt: Slab cache still has objects"),
)


async def panthor_vm_exec_op(
    vm: PanthorVm, op: PanthorVmOpCtx, flag_vm_unusable_on_failure: bool
) -> int:
    """``panthor_vm_exec_op()`` with the proposed fix."""
    op_type = op.flags & DRM_PANTHOR_VM_BIND_OP_TYPE_MASK

    if op_type == DRM_PANTHOR_VM_BIND_OP_TYPE_SYNC_ONLY:
        return 0

    await mutex_lock(vm.op_lock)
    vm.op_ctx = op
    if op_type == DRM_PANTHOR_VM_BIND_OP_TYPE_MAP:
        await preempt()  # vm->destroyed is written without op_lock
        if vm.unusable or vm.destroyed:
            ret = -EINVAL
        else:
            assert op.map.vm_bo is not None
            ret = await drm_gpuvm_sm_map(
                vm.base, vm, op.va.addr, op.va.range, op.map.vm_bo.obj, op.map.bo_offset
            )
    elif op_type == DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP:
        ret = await drm_gpuvm_sm_unmap(vm.base, vm, op.va.addr, op.va.range)
    else:
        ret = -EINVAL

    if ret and flag_vm_unusable_on_failure:
        vm.unusable = True

    vm.op_ctx = None
    await mutex_unlock(vm.op_lock)

    return ret


REPLACES = {
    "panthor_testbed.mmu.panthor_mmu:panthor_vm_exec_op": panthor_vm_exec_op,
}

EXPECTED_DIFF = [
    "- if vm.unusable:",
    "+ await preempt()",
    "+ if vm.unusable or vm.destroyed:",
]
