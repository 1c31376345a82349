"""The later fix 19e8bc945605 "drm/panthor: Make panthor_vm_[un]map_pages() more robust",
adapted to the seed.

In the seed ``panthor_vm_unmap_pages()`` clears the page-table entries and
then flushes; when the flush fails (a stuck AS_ACTIVE: ``wait_ready()`` times
out and schedules a reset) it returns the error, and
``panthor_gpuva_sm_step_remap()`` / ``panthor_gpuva_sm_step_unmap()`` return
before updating drm_gpuvm. The VA tree still holds a mapping the page table
no longer has: the next unmap of it (a later VM_BIND, VM_DESTROY) meets empty
entries (io-pgtable ``WARN_ON(!pte)``, then a WARN and -EINVAL here).

The fix makes the unmap unable to fail the step: drm_gpuvm and the page table
stay in sync whatever the flush did (the reset the failed flush scheduled
flushes everything), and a short unmap skips the holes it finds and declares
the VM unusable. Upstream the same series also moves the flush to the end of
the operation (6e2d3b3e8589 "drm/panthor: Add support for atomic page table
updates"); the seed has no locked region, so this backport keeps the seed's
flushes inside ``panthor_vm_[un]map_pages()``: the unmap's result no longer
aborts the step, and a map whose flush fails takes its entries out again and
declares the VM unusable (upstream: "unmap what we've already mapped ... and
flag the VM unusable"), since the caller unpins the pages of a VA it never
inserts.
"""

from __future__ import annotations

from typing import Any

from panthor_testbed.mmu.panthor_mmu import (
    EINVAL,
    ENOMEM,
    GFP_KERNEL,
    SZ_4K,
    DrmGpuvaOp,
    PanthorVm,
    PanthorVma,
    SgTable,
    drm_dbg,
    drm_dev_enter,
    drm_dev_exit,
    drm_gpuva_op_remap_to_unmap_range,
    drm_gpuva_remap,
    drm_gpuva_unmap,
    drm_gpuvm_bo_get,
    drm_WARN_ON,
    for_each_sgtable_dma_sg,
    get_pgsize,
    mutex_lock,
    mutex_unlock,
    panthor_mmu_as_disable,
    panthor_vm_flush_range,
    panthor_vm_op_ctx_get_vma,
    panthor_vma_init,
    panthor_vma_link,
    panthor_vma_unlink,
    sg_dma_address,
    sg_dma_len,
)

from .entry import Bug, FoundAs

BUG = Bug(
    slug="unmap-failure-desyncs-gpuvm",
    kind="latent",
    commit="19e8bc945605",
    title="drm/panthor: Make panthor_vm_[un]map_pages() more robust",
    functions=(
        "panthor_vm_unmap_pages",
        "panthor_vm_map_pages",
        "panthor_gpuva_sm_step_remap",
        "panthor_gpuva_sm_step_unmap",
    ),
    breaks="a failed flush (stuck AS) after an unmap cleared the page table aborts the "
    "gpuvm step: the VA tree keeps a mapping the page table lost, and the next unmap "
    "of it WARNs on empty entries",
    scenario="reset-during-bind",
    # Or its other faces: the seed's own WARN on the failed unmap (the fix drops it),
    # and a later map over the page-table entries the desync left ("unmap first").
    found_as=FoundAs(
        "warn",
        "WARN_ON(!pte)",
        alternatives=(
            ("warn", "in panthor_gpuva_sm_step_unmap"),
            ("warn", "We require an unmap first"),
        ),
    ),
)


async def panthor_vm_declare_unusable(vm: PanthorVm) -> None:
    """``panthor_vm_declare_unusable()`` (new in the fix): no more GPU access to the VM."""
    ptdev = vm.ptdev
    assert ptdev.mmu is not None

    if vm.unusable:
        return

    vm.unusable = True
    await mutex_lock(ptdev.mmu.as_.slots_lock)
    if vm.as_.id >= 0:
        entered, cookie = await drm_dev_enter(ptdev.base)
        if entered:
            await panthor_mmu_as_disable(ptdev, vm.as_.id)
            await drm_dev_exit(cookie)
    await mutex_unlock(ptdev.mmu.as_.slots_lock)


async def panthor_vm_unmap_pages(vm: PanthorVm, iova: int, size: int) -> int:
    """``panthor_vm_unmap_pages()`` with the fix: holes are skipped, the VM declared unusable."""
    ptdev = vm.ptdev
    ops = vm.pgtbl_ops
    offset = 0

    if not size:
        return 0

    drm_dbg(ptdev.base, "unmap: as=%d, iova=%x, len=%x", vm.as_.id, iova, size)

    while offset < size:
        pgsize, pgcount = get_pgsize(iova + offset, size - offset)

        unmapped_sz = ops.unmap_pages(iova + offset, pgsize, pgcount, None)
        if drm_WARN_ON(ptdev.base, unmapped_sz != pgsize * pgcount):
            # Gracefully handle sparsely unmapped regions to avoid leaving
            # page table pages behind when the drm_gpuvm and VM page table
            # are out-of-sync. This is not supposed to happen, hence the
            # above WARN_ON().
            while not ops.iova_to_phys(iova + unmapped_sz) and unmapped_sz < pgsize * pgcount:
                unmapped_sz += SZ_4K

            # We're passed the point where we can try to fix things,
            # so flag the VM unusable to make sure it's not going
            # to be used anymore.
            await panthor_vm_declare_unusable(vm)

            # If we don't make progress, we're screwed. (Upstream probes
            # iova + unmapped_sz, not iova + offset + unmapped_sz: kept.)
            if drm_WARN_ON(ptdev.base, not unmapped_sz):
                return -EINVAL
        offset += unmapped_sz

    return await panthor_vm_flush_range(vm, iova, size)


async def panthor_vm_map_pages(
    vm: PanthorVm, iova: int, prot: int, sgt: SgTable, offset: int, size: int
) -> int:
    """``panthor_vm_map_pages()`` with the fix: a failed flush takes the mapping out again."""
    ptdev = vm.ptdev
    ops = vm.pgtbl_ops
    start_iova = iova

    if not size:
        return 0

    for sgl in for_each_sgtable_dma_sg(sgt):
        paddr = sg_dma_address(sgl)
        length = sg_dma_len(sgl)

        if length <= offset:
            offset -= length
            continue

        paddr += offset
        length -= offset
        length = min(length, size)
        size -= length

        drm_dbg(ptdev.base, "map: as=%d, iova=%x, paddr=%x, len=%x", vm.as_.id, iova, paddr, length)

        while length:
            pgsize, pgcount = get_pgsize(iova | paddr, length)

            ret, mapped = await ops.map_pages(iova, paddr, pgsize, pgcount, prot, GFP_KERNEL)
            iova += mapped
            paddr += mapped
            length -= mapped

            if drm_WARN_ON(ptdev.base, not ret and not mapped):
                ret = -ENOMEM

            if ret:
                # If something failed, unmap what we've already mapped before
                # returning. The unmap call is not supposed to fail.
                drm_WARN_ON(
                    ptdev.base, await panthor_vm_unmap_pages(vm, start_iova, iova - start_iova)
                )
                return ret

        if not size:
            break

        offset = 0

    ret = await panthor_vm_flush_range(vm, start_iova, iova - start_iova)
    if ret:
        # The flush failed (a stuck AS; the reset is scheduled): the caller
        # will not insert the VA and will unpin the pages, so take the
        # entries out again and keep the GPU off this VM.
        await panthor_vm_unmap_pages(vm, start_iova, iova - start_iova)
        await panthor_vm_declare_unusable(vm)
    return ret


async def panthor_gpuva_sm_step_remap(op: DrmGpuvaOp, priv: Any) -> int:
    """``panthor_gpuva_sm_step_remap()`` with the fix: the unmap cannot abort the step."""
    unmap_vma = op.remap.unmap.va
    assert isinstance(unmap_vma, PanthorVma)
    vm: PanthorVm = priv
    op_ctx = vm.op_ctx
    assert op_ctx is not None
    prev_vma: PanthorVma | None = None
    next_vma: PanthorVma | None = None

    unmap_start, unmap_range = drm_gpuva_op_remap_to_unmap_range(op.remap)
    await panthor_vm_unmap_pages(vm, unmap_start, unmap_range)

    if op.remap.prev:
        prev_vma = panthor_vm_op_ctx_get_vma(op_ctx)
        panthor_vma_init(prev_vma, unmap_vma.flags)

    if op.remap.next:
        next_vma = panthor_vm_op_ctx_get_vma(op_ctx)
        panthor_vma_init(next_vma, unmap_vma.flags)

    await drm_gpuva_remap(
        prev_vma.base if prev_vma else None,
        next_vma.base if next_vma else None,
        op.remap,
    )

    if prev_vma:
        # panthor_vma_link() transfers the vm_bo ownership to
        # the VMA object. Since the vm_bo we're passing is still
        # owned by the old mapping which will be released when this
        # mapping is destroyed, we need to grab a ref here.
        assert op.remap.unmap.va.vm_bo is not None
        await panthor_vma_link(vm, prev_vma, await drm_gpuvm_bo_get(op.remap.unmap.va.vm_bo))

    if next_vma:
        assert op.remap.unmap.va.vm_bo is not None
        await panthor_vma_link(vm, next_vma, await drm_gpuvm_bo_get(op.remap.unmap.va.vm_bo))

    await panthor_vma_unlink(vm, unmap_vma)
    return 0


async def panthor_gpuva_sm_step_unmap(op: DrmGpuvaOp, priv: Any) -> int:
    """``panthor_gpuva_sm_step_unmap()`` with the fix: the unmap cannot abort the step."""
    unmap_vma = op.unmap.va
    assert isinstance(unmap_vma, PanthorVma)
    vm: PanthorVm = priv

    await panthor_vm_unmap_pages(vm, unmap_vma.base.va.addr, unmap_vma.base.va.range)
    await drm_gpuva_unmap(op.unmap)
    await panthor_vma_unlink(vm, unmap_vma)
    return 0


_PORT = "panthor_testbed.mmu.panthor_mmu:"
REPLACES = {
    f"{_PORT}panthor_vm_unmap_pages": panthor_vm_unmap_pages,
    f"{_PORT}panthor_vm_map_pages": panthor_vm_map_pages,
    f"{_PORT}panthor_gpuva_sm_step_remap": panthor_gpuva_sm_step_remap,
    f"{_PORT}panthor_gpuva_sm_step_unmap": panthor_gpuva_sm_step_unmap,
}

EXPECTED_DIFF = [
    "+ if not size:",
    "+ return 0",
    "- drm_err(ptdev.base, 'failed to unmap range %x-%x (requested range %x-%x)\\n', iova + offset + unmapped_sz, iova + offset + pgsize * pgcount, iova, iova + size)",  # noqa: E501
    "- await panthor_vm_flush_range(vm, iova, offset + unmapped_sz)",
    "+ while not ops.iova_to_phys(iova + unmapped_sz) and unmapped_sz < pgsize * pgcount:",
    "+ unmapped_sz += SZ_4K",
    "+ await panthor_vm_declare_unusable(vm)",
    "+ if drm_WARN_ON(ptdev.base, not unmapped_sz):",
    "- return await panthor_vm_flush_range(vm, start_iova, iova - start_iova)",
    "+ ret = await panthor_vm_flush_range(vm, start_iova, iova - start_iova)",
    "+ if ret:",
    "+ await panthor_vm_unmap_pages(vm, start_iova, iova - start_iova)",
    "+ await panthor_vm_declare_unusable(vm)",
    "+ return ret",
    "- ret = await panthor_vm_unmap_pages(vm, unmap_start, unmap_range)",
    "+ await panthor_vm_unmap_pages(vm, unmap_start, unmap_range)",
    "- if ret:",
    "- return ret",
    "- ret = await panthor_vm_unmap_pages(vm, unmap_vma.base.va.addr, unmap_vma.base.va.range)",
    "+ await panthor_vm_unmap_pages(vm, unmap_vma.base.va.addr, unmap_vma.base.va.range)",
    "- if drm_WARN_ON(vm.ptdev.base, ret):",
    "- return ret",
]
