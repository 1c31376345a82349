"""The later fix 8e7460eac786 "drm/panthor: Support partial unmaps of huge pages", adapted
to the seed.

io-pgtable-arm no longer splits a block entry on unmap (33729a5fc0ca
"iommu/io-pgtable-arm: Remove split on unmap behavior"): an UNMAP (or a MAP
over part of a mapping) whose edge falls inside a 2 MiB block gets "Unmap of
a partial large IOPTE is not allowed" (WARN), ``panthor_vm_unmap_pages()``
WARNs and returns -EINVAL, and the VM_BIND fails with nothing unmapped.

The fix widens the remap's unmap to whole huge pages where the prev or next
part is backed by a huge folio, unmaps that, and maps the prev/next parts
that were swept in back from the BO's sg table. Upstream it also widens the
locked region (``panthor_vm_lock_region()``, from 6e2d3b3e8589 "drm/panthor:
Add support for atomic page table updates"); the seed has no locked region,
so this backport leaves that call out: between the wider unmap and the
remap the GPU faults on pages user space did not unmap, as the seed's GPU
may on any remap. The seed's own return on a failed unmap stays.

With ``unmap-failure-desyncs-gpuvm`` also selected (``--patch all``) the
function is the one with both fixes, as upstream has it after both commits:
:data:`COMBINES`.
"""

from __future__ import annotations

from typing import Any

from panthor_testbed.gpuvm.structs import DrmGpuvaOpMap, DrmGpuvaOpRemap
from panthor_testbed.mmu.gem_shmem import folio_size, page_folio, to_panthor_bo
from panthor_testbed.mmu.panthor_mmu import (
    DrmGpuvaOp,
    PanthorVm,
    PanthorVma,
    drm_gpuva_op_remap_to_unmap_range,
    drm_gpuva_remap,
    drm_gpuvm_bo_get,
    flags_to_prot,
    panthor_vm_map_pages,
    panthor_vm_op_ctx_get_vma,
    panthor_vm_unmap_pages,
    panthor_vma_init,
    panthor_vma_link,
    panthor_vma_unlink,
)
from panthor_testbed.mmu.sizes import ALIGN, ALIGN_DOWN, PAGE_SHIFT, SZ_2M

from .entry import Bug, FoundAs

BUG = Bug(
    slug="partial-unmap-huge-page",
    kind="latent",
    commit="8e7460eac786",
    title="drm/panthor: Support partial unmaps of huge pages",
    functions=("panthor_gpuva_sm_step_remap",),
    breaks="an UNMAP whose edge falls inside a 2M block mapping: io-pgtable refuses the "
    "partial unmap (WARN), the VM_BIND fails with -EINVAL",
    scenario="huge-page-binds",
    found_as=FoundAs("warn", "Unmap of a partial large IOPTE is not allowed"),
)


def iova_mapped_as_huge_page(op: DrmGpuvaOpMap, addr: int) -> bool:
    """``iova_mapped_as_huge_page()`` (new with the fix)."""
    bo_offset = addr - op.va.addr + op.gem.offset
    assert op.gem.obj is not None
    # An imported BO has no pages array (NULL in the kernel): the index raises.
    pages: Any = to_panthor_bo(op.gem.obj).base.pages
    pg = pages[bo_offset >> PAGE_SHIFT]

    return folio_size(page_folio(to_panthor_bo(op.gem.obj), pg)) >= SZ_2M


def unmap_hugepage_align(
    op: DrmGpuvaOpRemap, unmap_start: int, unmap_range: int
) -> tuple[int, int]:
    """``unmap_hugepage_align()`` (new with the fix): the widened ``(start, range)``."""
    unmap_end = unmap_start + unmap_range
    aligned_unmap_start = ALIGN_DOWN(unmap_start, SZ_2M)
    aligned_unmap_end = ALIGN(unmap_end, SZ_2M)

    # If we're dealing with a huge page, make sure the unmap region is
    # aligned on the start of the page.
    if (
        op.prev
        and aligned_unmap_start < unmap_start
        and op.prev.va.addr <= aligned_unmap_start
        and iova_mapped_as_huge_page(op.prev, unmap_start)
    ):
        unmap_range += unmap_start - aligned_unmap_start
        unmap_start = aligned_unmap_start

    # If we're dealing with a huge page, make sure the unmap region is
    # aligned on the end of the page.
    if (
        op.next
        and aligned_unmap_end > unmap_end
        and op.next.va.addr + op.next.va.range >= aligned_unmap_end
        and iova_mapped_as_huge_page(op.next, unmap_end - 1)
    ):
        unmap_range += aligned_unmap_end - unmap_end
    return unmap_start, unmap_range


async def panthor_gpuva_sm_step_remap(op: DrmGpuvaOp, priv: Any) -> int:
    """``panthor_gpuva_sm_step_remap()`` with the fix: whole huge pages out, the rest back."""
    unmap_vma = op.remap.unmap.va
    assert isinstance(unmap_vma, PanthorVma)
    vm: PanthorVm = priv
    op_ctx = vm.op_ctx
    assert op_ctx is not None
    prev_vma: PanthorVma | None = None
    next_vma: PanthorVma | None = None

    unmap_start, unmap_range = drm_gpuva_op_remap_to_unmap_range(op.remap)

    # ARM IOMMU page table management code disallows partial unmaps of huge pages,
    # so when a partial unmap is requested, we must first unmap the entire huge
    # page and then remap the difference between the huge page minus the requested
    # unmap region. Calculating the right start address and range for the expanded
    # unmap operation is the responsibility of the following function.
    unmap_start, unmap_range = unmap_hugepage_align(op.remap, unmap_start, unmap_range)

    ret = await panthor_vm_unmap_pages(vm, unmap_start, unmap_range)
    if ret:
        return ret

    if op.remap.prev:
        assert op.remap.prev.gem.obj is not None
        bo = to_panthor_bo(op.remap.prev.gem.obj)
        offset = op.remap.prev.gem.offset + unmap_start - op.remap.prev.va.addr
        size = op.remap.prev.va.addr + op.remap.prev.va.range - unmap_start

        assert bo.base.sgt is not None
        ret = await panthor_vm_map_pages(
            vm, unmap_start, flags_to_prot(unmap_vma.flags), bo.base.sgt, offset, size
        )
        if ret:
            return ret

        prev_vma = panthor_vm_op_ctx_get_vma(op_ctx)
        panthor_vma_init(prev_vma, unmap_vma.flags)

    if op.remap.next:
        assert op.remap.next.gem.obj is not None
        bo = to_panthor_bo(op.remap.next.gem.obj)
        addr = op.remap.next.va.addr
        size = unmap_start + unmap_range - op.remap.next.va.addr

        assert bo.base.sgt is not None
        ret = await panthor_vm_map_pages(
            vm, addr, flags_to_prot(unmap_vma.flags), bo.base.sgt, op.remap.next.gem.offset, size
        )
        if ret:
            return ret

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


async def panthor_gpuva_sm_step_remap_with_19e8bc945605(op: DrmGpuvaOp, priv: Any) -> int:
    """``panthor_gpuva_sm_step_remap()`` with this fix and 19e8bc945605's (the unmap's
    result no longer aborts the step), as upstream has it after both."""
    unmap_vma = op.remap.unmap.va
    assert isinstance(unmap_vma, PanthorVma)
    vm: PanthorVm = priv
    op_ctx = vm.op_ctx
    assert op_ctx is not None
    prev_vma: PanthorVma | None = None
    next_vma: PanthorVma | None = None

    unmap_start, unmap_range = drm_gpuva_op_remap_to_unmap_range(op.remap)

    # ARM IOMMU page table management code disallows partial unmaps of huge pages,
    # so when a partial unmap is requested, we must first unmap the entire huge
    # page and then remap the difference between the huge page minus the requested
    # unmap region. Calculating the right start address and range for the expanded
    # unmap operation is the responsibility of the following function.
    unmap_start, unmap_range = unmap_hugepage_align(op.remap, unmap_start, unmap_range)

    await panthor_vm_unmap_pages(vm, unmap_start, unmap_range)

    if op.remap.prev:
        assert op.remap.prev.gem.obj is not None
        bo = to_panthor_bo(op.remap.prev.gem.obj)
        offset = op.remap.prev.gem.offset + unmap_start - op.remap.prev.va.addr
        size = op.remap.prev.va.addr + op.remap.prev.va.range - unmap_start

        assert bo.base.sgt is not None
        ret = await panthor_vm_map_pages(
            vm, unmap_start, flags_to_prot(unmap_vma.flags), bo.base.sgt, offset, size
        )
        if ret:
            return ret

        prev_vma = panthor_vm_op_ctx_get_vma(op_ctx)
        panthor_vma_init(prev_vma, unmap_vma.flags)

    if op.remap.next:
        assert op.remap.next.gem.obj is not None
        bo = to_panthor_bo(op.remap.next.gem.obj)
        addr = op.remap.next.va.addr
        size = unmap_start + unmap_range - op.remap.next.va.addr

        assert bo.base.sgt is not None
        ret = await panthor_vm_map_pages(
            vm, addr, flags_to_prot(unmap_vma.flags), bo.base.sgt, op.remap.next.gem.offset, size
        )
        if ret:
            return ret

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


_PORT = "panthor_testbed.mmu.panthor_mmu:"
REPLACES = {
    f"{_PORT}panthor_gpuva_sm_step_remap": panthor_gpuva_sm_step_remap,
}

# Selected together with these entries, a function both replace is this one.
COMBINES = {
    "unmap-failure-desyncs-gpuvm": {
        f"{_PORT}panthor_gpuva_sm_step_remap": panthor_gpuva_sm_step_remap_with_19e8bc945605,
    },
}

EXPECTED_DIFF = [
    "+ unmap_start, unmap_range = unmap_hugepage_align(op.remap, unmap_start, unmap_range)",
    "+ assert op.remap.prev.gem.obj is not None",
    "+ bo = to_panthor_bo(op.remap.prev.gem.obj)",
    "+ offset = op.remap.prev.gem.offset + unmap_start - op.remap.prev.va.addr",
    "+ size = op.remap.prev.va.addr + op.remap.prev.va.range - unmap_start",
    "+ assert bo.base.sgt is not None",
    "+ ret = await panthor_vm_map_pages(vm, unmap_start, flags_to_prot(unmap_vma.flags), "
    "bo.base.sgt, offset, size)",
    "+ if ret:",
    "+ return ret",
    "+ assert op.remap.next.gem.obj is not None",
    "+ bo = to_panthor_bo(op.remap.next.gem.obj)",
    "+ addr = op.remap.next.va.addr",
    "+ size = unmap_start + unmap_range - op.remap.next.va.addr",
    "+ assert bo.base.sgt is not None",
    "+ ret = await panthor_vm_map_pages(vm, addr, flags_to_prot(unmap_vma.flags), "
    "bo.base.sgt, op.remap.next.gem.offset, size)",
    "+ if ret:",
    "+ return ret",
]
