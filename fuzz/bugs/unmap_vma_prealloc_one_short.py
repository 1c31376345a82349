"""The later fix 4eabd0d8791e "drm/panthor: Fix kernel panic on partial unmap of a GPU VA region".

The seed preallocates one VMA for an unmap, but an unmap strictly inside one
mapping is a remap with both a prev and a next VA, and an unmap spanning two
partially covered mappings is two remaps: the second VMA is NULL and
``panthor_gpuva_sm_step_remap()`` dereferences it. The fix preallocates two.
"""

from __future__ import annotations

from typing import Any  # noqa: F401

from panthor_testbed.mmu.panthor_mmu import (
    DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
    DRM_PANTHOR_VM_BIND_OP_TYPE_MASK,
    DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
    ENOMEM,
    GFP_KERNEL,
    PanthorVma,
    PanthorVmOpCtx,
    kzalloc,
)

from .entry import Bug, FoundAs

BUG = Bug(
    slug="unmap-vma-prealloc-one-short",
    kind="latent",
    commit="4eabd0d8791e",
    title="drm/panthor: Fix kernel panic on partial unmap of a GPU VA region",
    functions=("panthor_vm_op_ctx_prealloc_vmas",),
    breaks="an unmap in the middle of a mapping needs a prev and a next VMA, only one is "
    "preallocated: NULL dereference in panthor_gpuva_sm_step_remap()",
    scenario="bind-storm",
    found_as=FoundAs("exception", "panthor_vma_init"),
)


async def panthor_vm_op_ctx_prealloc_vmas(op_ctx: PanthorVmOpCtx) -> int:
    """``panthor_vm_op_ctx_prealloc_vmas()`` with the later fix."""
    op_type = op_ctx.flags & DRM_PANTHOR_VM_BIND_OP_TYPE_MASK
    if op_type == DRM_PANTHOR_VM_BIND_OP_TYPE_MAP:
        # One VMA for the new mapping, and two more VMAs for the remap case
        # which might contain both a prev and next VA.
        vma_count = 3
    elif op_type == DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP:
        # Two VMAs can be needed for an unmap, as an unmap can happen
        # in the middle of a drm_gpuva, requiring a remap with both
        # prev & next VA. Or an unmap can span more than one drm_gpuva
        # where the first and last ones are covered partially, requring
        # a remap for the first with a prev VA and remap for the last
        # with a next VA.
        vma_count = 2
    else:
        return 0

    for i in range(vma_count):
        vma = await kzalloc(PanthorVma, GFP_KERNEL)

        if not vma:
            return -ENOMEM

        op_ctx.preallocated_vmas[i] = vma

    return 0


_PORT = "panthor_testbed.mmu.panthor_mmu:"
REPLACES = {
    f"{_PORT}panthor_vm_op_ctx_prealloc_vmas": panthor_vm_op_ctx_prealloc_vmas,
}

EXPECTED_DIFF = ["- vma_count = 1", "+ vma_count = 2"]
