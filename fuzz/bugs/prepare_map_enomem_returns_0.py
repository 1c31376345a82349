"""Before d33733263a55 "drm/panthor: Fix a couple -ENOMEM error codes".

When the ``kcalloc()`` of the page-table array failed in the map or unmap
op-context preparation, the functions jumped to their cleanup with ``ret``
still 0, so the caller went on with an op context that had just been torn down.
"""

from __future__ import annotations

from typing import Any  # noqa: F401

from panthor_testbed.mmu.panthor_mmu import (
    ALIGN,
    ALIGN_DOWN,
    DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
    DRM_PANTHOR_VM_BIND_OP_TYPE_MASK,
    DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
    EINVAL,
    ENOMEM,
    GFP_KERNEL,
    IS_ERR,
    PANTHOR_VM_BIND_OP_MAP_FLAGS,
    PTR_ERR,
    SZ_2M,
    U64_MAX,
    ErrPtr,
    INIT_LIST_HEAD_returned,
    PanthorGemObject,
    PanthorVm,
    PanthorVmOpCtx,
    SgTable,
    _pt_cache,
    dma_resv_lock,
    dma_resv_unlock,
    drm_gem_shmem_get_pages_sgt,
    drm_gem_shmem_pin,
    drm_gem_shmem_unpin,
    drm_gpuvm_bo_create,
    drm_gpuvm_bo_extobj_add,
    drm_gpuvm_bo_obtain_prealloc,
    kcalloc,
    kmem_cache_alloc_bulk,
    mutex_lock,
    mutex_unlock,
    panthor_vm_cleanup_op_ctx,
    panthor_vm_op_ctx_prealloc_vmas,
    panthor_vm_resv,
    panthor_vm_root_gem,
)

from .entry import Bug, FoundAs

BUG = Bug(
    slug="prepare-map-enomem-returns-0",
    kind="pre-seed",
    commit="d33733263a55",
    title="drm/panthor: Fix a couple -ENOMEM error codes",
    functions=("panthor_vm_prepare_map_op_ctx", "panthor_vm_prepare_unmap_op_ctx"),
    breaks="an allocation failure in op-context preparation returns 0: the caller uses a "
    "half-built op context that was already cleaned up",
    scenario="bind-storm",
    # Any use of the torn-down op context: a double free of its VMA, a read of its
    # freed VMA or vm_bo.
    found_as=FoundAs("use-after-free", "free"),
    config={"alloc_fail_probability": 0.01},
)


async def panthor_vm_prepare_map_op_ctx(
    op_ctx: PanthorVmOpCtx,
    vm: PanthorVm,
    bo: PanthorGemObject | None,
    offset: int,
    size: int,
    va: int,
    flags: int,
) -> int:
    """``panthor_vm_prepare_map_op_ctx()`` before the fix."""
    sgt: SgTable | ErrPtr | None = None

    if not bo:
        return -EINVAL

    if (flags & ~PANTHOR_VM_BIND_OP_MAP_FLAGS) or (
        flags & DRM_PANTHOR_VM_BIND_OP_TYPE_MASK
    ) != DRM_PANTHOR_VM_BIND_OP_TYPE_MAP:
        return -EINVAL

    # Make sure the VA and size are aligned and in-bounds.
    if size > bo.base.base.size or offset > bo.base.base.size - size:
        return -EINVAL

    # If the BO has an exclusive VM attached, it can't be mapped to other VMs.
    if bo.exclusive_vm_root_gem and bo.exclusive_vm_root_gem is not panthor_vm_root_gem(vm):
        return -EINVAL

    op_ctx.memset()
    INIT_LIST_HEAD_returned(op_ctx)
    op_ctx.flags = flags
    op_ctx.va.range = size
    op_ctx.va.addr = va

    ret = await panthor_vm_op_ctx_prealloc_vmas(op_ctx)
    if ret:
        goto = "err_cleanup"
    else:
        goto = ""
        if not bo.base.base.import_attach:
            # Pre-reserve the BO pages, so the map operation doesn't have to
            # allocate.
            ret = await drm_gem_shmem_pin(bo.base)
            if ret:
                goto = "err_cleanup"

    if not goto:
        sgt = await drm_gem_shmem_get_pages_sgt(bo.base)
        if IS_ERR(sgt):
            if not bo.base.base.import_attach:
                await drm_gem_shmem_unpin(bo.base)

            ret = PTR_ERR(sgt)
            goto = "err_cleanup"

    if not goto:
        assert isinstance(sgt, SgTable)
        op_ctx.map.sgt = sgt

        preallocated_vm_bo = await drm_gpuvm_bo_create(vm.base, bo.base.base)
        if not preallocated_vm_bo:
            if not bo.base.base.import_attach:
                await drm_gem_shmem_unpin(bo.base)

            ret = -ENOMEM
            goto = "err_cleanup"

    if not goto:
        assert preallocated_vm_bo is not None
        # drm_gpuvm_bo_obtain_prealloc() will call drm_gpuvm_bo_put() on our
        # pre-allocated BO if the <BO,VM> association exists. Given we
        # only have one ref on preallocated_vm_bo, drm_gpuvm_bo_destroy() will
        # be called immediately, and we have to hold the VM resv lock when
        # calling this function.
        await dma_resv_lock(panthor_vm_resv(vm), None)
        await mutex_lock(bo.gpuva_list_lock)
        op_ctx.map.vm_bo = await drm_gpuvm_bo_obtain_prealloc(preallocated_vm_bo)
        await mutex_unlock(bo.gpuva_list_lock)
        await dma_resv_unlock(panthor_vm_resv(vm))

        # If the a vm_bo for this <VM,BO> combination exists, it already
        # retains a pin ref, and we can release the one we took earlier.
        #
        # If our pre-allocated vm_bo is picked, it now retains the pin ref,
        # which will be released in panthor_vm_bo_put().
        if preallocated_vm_bo is not op_ctx.map.vm_bo and not bo.base.base.import_attach:
            await drm_gem_shmem_unpin(bo.base)

        op_ctx.map.bo_offset = offset

        # L1, L2 and L3 page tables.
        # We could optimize L3 allocation by iterating over the sgt and merging
        # 2M contiguous blocks, but it's simpler to over-provision and return
        # the pages if they're not used.
        # u64 arithmetic: near the top of the address space va + size wraps,
        # and so does each difference.
        pt_count = (
            (((ALIGN(va + size, 1 << 39) - ALIGN_DOWN(va, 1 << 39)) & U64_MAX) >> 39)
            + (((ALIGN(va + size, 1 << 30) - ALIGN_DOWN(va, 1 << 30)) & U64_MAX) >> 30)
            + (((ALIGN(va + size, 1 << 21) - ALIGN_DOWN(va, 1 << 21)) & U64_MAX) >> 21)
        )

        op_ctx.rsvd_page_tables.pages = await kcalloc(pt_count, GFP_KERNEL)
        # A NULL check: kcalloc(0) is ZERO_SIZE_PTR (an empty KArray), not NULL.
        if op_ctx.rsvd_page_tables.pages is None:
            goto = "err_cleanup"

    if not goto:
        assert op_ctx.rsvd_page_tables.pages is not None
        ret = await kmem_cache_alloc_bulk(
            _pt_cache(), GFP_KERNEL, pt_count, op_ctx.rsvd_page_tables.pages
        )
        op_ctx.rsvd_page_tables.count = ret
        if ret != pt_count:
            ret = -ENOMEM
            goto = "err_cleanup"

    if not goto:
        # Insert BO into the extobj list last, when we know nothing can fail.
        await dma_resv_lock(panthor_vm_resv(vm), None)
        assert op_ctx.map.vm_bo is not None
        await drm_gpuvm_bo_extobj_add(op_ctx.map.vm_bo)
        await dma_resv_unlock(panthor_vm_resv(vm))

        return 0

    # err_cleanup:
    await panthor_vm_cleanup_op_ctx(op_ctx, vm)
    return ret


async def panthor_vm_prepare_unmap_op_ctx(
    op_ctx: PanthorVmOpCtx, vm: PanthorVm, va: int, size: int
) -> int:
    """``panthor_vm_prepare_unmap_op_ctx()`` before the fix."""
    pt_count = 0

    op_ctx.memset()
    INIT_LIST_HEAD_returned(op_ctx)
    op_ctx.va.range = size
    op_ctx.va.addr = va
    op_ctx.flags = DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP

    # Pre-allocate L3 page tables to account for the split-2M-block
    # situation on unmap.
    if va != ALIGN(va, SZ_2M):
        pt_count += 1

    end = (va + size) & U64_MAX  # u64: wraps like the seed's va + size
    if end != ALIGN(va + size, SZ_2M) and ALIGN(va + size, SZ_2M) != ALIGN(va, SZ_2M):
        pt_count += 1

    goto = ""
    ret = await panthor_vm_op_ctx_prealloc_vmas(op_ctx)
    if not ret and pt_count:
        op_ctx.rsvd_page_tables.pages = await kcalloc(pt_count, GFP_KERNEL)
        if op_ctx.rsvd_page_tables.pages is None:
            goto = "err_cleanup"
        else:
            ret = await kmem_cache_alloc_bulk(
                _pt_cache(), GFP_KERNEL, pt_count, op_ctx.rsvd_page_tables.pages
            )
            if ret != pt_count:
                ret = -ENOMEM
            else:
                op_ctx.rsvd_page_tables.count = pt_count
                ret = 0

    if not ret and not goto:
        return 0

    # err_cleanup:
    await panthor_vm_cleanup_op_ctx(op_ctx, vm)
    return ret


_PORT = "panthor_testbed.mmu.panthor_mmu:"
REPLACES = {
    f"{_PORT}panthor_vm_prepare_map_op_ctx": panthor_vm_prepare_map_op_ctx,
    f"{_PORT}panthor_vm_prepare_unmap_op_ctx": panthor_vm_prepare_unmap_op_ctx,
}

EXPECTED_DIFF = [
    "- ret = -ENOMEM",
    "+ goto = ''",
    "- ret = -ENOMEM",
    "+ goto = 'err_cleanup'",
    "- if not ret:",
    "+ if not ret and (not goto):",
]
