"""The later fix 4492d54d5987 "drm/panthor: Fix potential memleak of vma structure".

When ``panthor_vm_map_pages()`` fails in ``panthor_gpuva_sm_step_map()`` (an
allocation failure in the page table, or a flush that times out on a stuck
AS), the step returns the error with the VMA it took from the op context's
preallocated array: nobody frees it. The fix hands the VMA back to the array
so the op-context cleanup frees it with the unused ones.
"""

from __future__ import annotations

from typing import Any

from panthor_testbed.mmu.panthor_mmu import (
    EINVAL,
    PANTHOR_VM_MAP_FLAGS,
    WARN,
    DrmGpuvaOp,
    PanthorVm,
    PanthorVma,
    PanthorVmOpCtx,
    drm_gpuva_map,
    flags_to_prot,
    panthor_vm_map_pages,
    panthor_vm_op_ctx_get_vma,
    panthor_vma_init,
    panthor_vma_link,
)

from .entry import Bug, FoundAs

BUG = Bug(
    slug="sm-step-map-leaks-vma",
    kind="latent",
    commit="4492d54d5987",
    title="drm/panthor: Fix potential memleak of vma structure",
    functions=("panthor_gpuva_sm_step_map",),
    breaks="a map whose page-table update fails leaks the preallocated VMA it took",
    scenario="reset-during-bind",
    found_as=FoundAs("leak", "PanthorVma"),
)


def panthor_vm_op_ctx_return_vma(op_ctx: PanthorVmOpCtx, vma: PanthorVma) -> None:
    """``panthor_vm_op_ctx_return_vma()`` (new in the fix): give an unused VMA back."""
    for i in range(len(op_ctx.preallocated_vmas)):
        if not op_ctx.preallocated_vmas[i]:
            op_ctx.preallocated_vmas[i] = vma
            return

    WARN(True, "panthor_vm_op_ctx_return_vma: no free slot")


async def panthor_gpuva_sm_step_map(op: DrmGpuvaOp, priv: Any) -> int:
    """``panthor_gpuva_sm_step_map()`` with the fix: a failed map returns its VMA."""
    vm: PanthorVm = priv
    op_ctx = vm.op_ctx
    assert op_ctx is not None
    vma = panthor_vm_op_ctx_get_vma(op_ctx)

    if not vma:
        return -EINVAL

    panthor_vma_init(vma, op_ctx.flags & PANTHOR_VM_MAP_FLAGS)

    assert op_ctx.map.sgt is not None
    ret = await panthor_vm_map_pages(
        vm,
        op.map.va.addr,
        flags_to_prot(vma.flags),
        op_ctx.map.sgt,
        op.map.gem.offset,
        op.map.va.range,
    )
    if ret:
        panthor_vm_op_ctx_return_vma(op_ctx, vma)
        return ret

    # Ref owned by the mapping now, clear the obj field so we don't release the
    # pinning/obj ref behind GPUVA's back.
    await drm_gpuva_map(vm.base, vma.base, op.map)
    assert op_ctx.map.vm_bo is not None
    await panthor_vma_link(vm, vma, op_ctx.map.vm_bo)
    op_ctx.map.vm_bo = None
    return 0


_PORT = "panthor_testbed.mmu.panthor_mmu:"
REPLACES = {
    f"{_PORT}panthor_gpuva_sm_step_map": panthor_gpuva_sm_step_map,
}

EXPECTED_DIFF = ["+ panthor_vm_op_ctx_return_vma(op_ctx, vma)"]
