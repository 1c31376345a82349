"""Found here: ``panthor_vm_destroy()``'s unmap fails on an allocation failure and the VM leaks.

``panthor_vm_destroy()`` unmaps the whole VA space with
``panthor_vm_unmap_range()``, whose op-context preparation preallocates a VMA
for the remap a partial unmap may need. When that allocation fails the unmap
returns -ENOMEM before touching anything: the ``drm_WARN_ON()`` fires, every
mapping stays, and since each mapping's vm_bo holds a reference on the VM,
the VM (its page tables, its BOs' pins) is never freed. An unmap of the whole
VA space never splits a mapping, so it needs nothing preallocated. The fix
proposed here builds that op context in place, with nothing to allocate, so
the teardown unmap cannot fail on memory.
"""

from __future__ import annotations

from panthor_testbed.mmu.panthor_mmu import (
    DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
    INIT_LIST_HEAD_returned,
    PanthorVm,
    PanthorVmOpCtx,
    drm_WARN_ON,
    mutex_lock,
    mutex_unlock,
    panthor_heap_pool_destroy,
    panthor_vm_cleanup_op_ctx,
    panthor_vm_exec_op,
    panthor_vm_put,
    preempt,
)

from .entry import Bug, FoundAs

BUG = Bug(
    slug="vm-destroy-unmap-fails-on-enomem",
    kind="upstream",
    commit="none",
    title="drm/panthor: do not let the VM teardown unmap fail on memory (proposed here)",
    functions=("panthor_vm_destroy",),
    breaks="an allocation failure in panthor_vm_destroy()'s unmap leaves every mapping: "
    "the vm_bos keep the VM alive and its page tables are never freed",
    scenario="bind-storm",
    found_as=FoundAs("warn", "panthor_vm_destroy"),
    config={"alloc_fail_probability": 0.01},
)


async def panthor_vm_destroy(vm: PanthorVm | None) -> None:
    """``panthor_vm_destroy()`` with the proposed fix."""
    if not vm:
        return

    await preempt()  # a plain store, read locklessly by panthor_vm_bind_job_create()
    vm.destroyed = True

    assert vm.heaps.lock is not None
    await mutex_lock(vm.heaps.lock)
    await panthor_heap_pool_destroy(vm.heaps.pool)
    vm.heaps.pool = None
    await mutex_unlock(vm.heaps.lock)

    # The whole VA space: no mapping is split, so nothing needs preallocating.
    op_ctx = PanthorVmOpCtx()
    op_ctx.memset()
    INIT_LIST_HEAD_returned(op_ctx)
    op_ctx.va.addr = vm.base.mm_start
    op_ctx.va.range = vm.base.mm_range
    op_ctx.flags = DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP
    drm_WARN_ON(vm.ptdev.base, await panthor_vm_exec_op(vm, op_ctx, False))
    await panthor_vm_cleanup_op_ctx(op_ctx, vm)
    await panthor_vm_put(vm)


REPLACES = {
    "panthor_testbed.mmu.panthor_mmu:panthor_vm_destroy": panthor_vm_destroy,
}

EXPECTED_DIFF = [
    "- drm_WARN_ON(vm.ptdev.base, await panthor_vm_unmap_range(vm, vm.base.mm_start, "
    "vm.base.mm_range))",
    "+ op_ctx = PanthorVmOpCtx()",
    "+ op_ctx.memset()",
    "+ INIT_LIST_HEAD_returned(op_ctx)",
    "+ op_ctx.va.addr = vm.base.mm_start",
    "+ op_ctx.va.range = vm.base.mm_range",
    "+ op_ctx.flags = DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP",
    "+ drm_WARN_ON(vm.ptdev.base, await panthor_vm_exec_op(vm, op_ctx, False))",
    "+ await panthor_vm_cleanup_op_ctx(op_ctx, vm)",
]
