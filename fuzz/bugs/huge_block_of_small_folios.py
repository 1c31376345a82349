"""Found here, not fixed in the kernel as far as we know: 8e7460eac786's partial unmap of a
huge page misses 2M blocks built from small folios.

8e7460eac786 ("drm/panthor: Support partial unmaps of huge pages", the
``partial-unmap-huge-page`` entry) widens a remap's unmap to whole 2M pages
only where ``iova_mapped_as_huge_page()`` sees a folio of 2M or more. But
io-pgtable puts in a 2M block wherever the *sg segment* allows it:
``drm_prime_pages_to_sg()`` merges physically contiguous pages into one
segment whatever their folios, and ``panthor_vm_map_pages()`` asks
``get_pgsize()`` for SZ_2M whenever the IOVA and the DMA address are 2M
aligned with 2M left in the segment. Small folios that lie next to each other
over an aligned 2M (the buddy allocator often hands them out that way) are
mapped as a block, the folio test says "not huge", the unmap is not widened,
and io-pgtable refuses it: "Unmap of a partial large IOPTE is not allowed"
(WARN), the VM_BIND fails with -EINVAL, exactly what the fix was for.

It also reads ``bo->base.pages``, which an imported (PRIME) BO does not have
(NULL: its pages are the exporter's, reached through the sg table of the
attachment), so the partial unmap of an imported BO mapping that crosses a
2M boundary dereferences NULL. No scenario imports BOs yet; the unit test
``tests/mmu/test_huge_page_unmap.py`` shows it.

The fix proposed here: ask what the map asked. The aligned 2M around the
address can be a block exactly when one DMA segment of the BO's sg table
covers it from a 2M-aligned DMA address (``get_pgsize()``'s test in
``panthor_vm_map_pages()``), so ``iova_mapped_as_huge_page()`` walks the sg
table, which native and imported BOs both have. Where the segment allows a
block but the range was mapped with 4K pages (a map that started inside it),
the wider unmap and the remap are merely unneeded work.
"""

from __future__ import annotations

from panthor_testbed.gpuvm.structs import DrmGpuvaOpMap
from panthor_testbed.mmu.gem_shmem import (
    for_each_sgtable_dma_sg,
    sg_dma_address,
    sg_dma_len,
    to_panthor_bo,
)
from panthor_testbed.mmu.sizes import ALIGN_DOWN, SZ_2M

from .entry import Bug, FoundAs

BUG = Bug(
    slug="huge-block-of-small-folios",
    kind="upstream",
    commit="none",
    title="drm/panthor: widen a partial unmap over any 2M block the sg table allows "
    "(proposed here)",
    functions=("iova_mapped_as_huge_page",),
    breaks="with 8e7460eac786 in, a 2M block mapped from contiguous small folios is still "
    "unmapped partially (io-pgtable refuses: WARN, -EINVAL), and an imported BO's missing "
    "pages array is dereferenced",
    scenario="huge-page-binds",
    # Or its other face: the wrongly "huge" range unmapped as a 2M block frees the L3
    # table of the small pages under it before the flush, and a GPU access walks it.
    found_as=FoundAs(
        "warn",
        "Unmap of a partial large IOPTE is not allowed",
        alternatives=(("bad-gpu-access", "walked a level-3 table in a free frame"),),
    ),
)


def iova_mapped_as_huge_page(op: DrmGpuvaOpMap, addr: int) -> bool:
    """``iova_mapped_as_huge_page()`` with the fix: could the map have used a block here?"""
    bo_offset = addr - op.va.addr + op.gem.offset
    assert op.gem.obj is not None
    bo = to_panthor_bo(op.gem.obj)
    # The BO offset of the 2M-aligned IOVA range around addr.
    first = bo_offset - (addr - ALIGN_DOWN(addr, SZ_2M))
    if first < 0 or first + SZ_2M > bo.base.size:
        return False
    assert bo.base.sgt is not None
    for sgl in for_each_sgtable_dma_sg(bo.base.sgt):
        length = sg_dma_len(sgl)
        if first < length:
            # What get_pgsize() saw: an aligned DMA address with 2M left in the segment.
            return (sg_dma_address(sgl) + first) % SZ_2M == 0 and first + SZ_2M <= length
        first -= length
    return False


REPLACES = {
    "panthor_testbed.fuzz.bugs.partial_unmap_huge_page:iova_mapped_as_huge_page": (
        iova_mapped_as_huge_page
    ),
}

EXPECTED_DIFF = [
    "- pages: Any = to_panthor_bo(op.gem.obj).base.pages",
    "- pg = pages[bo_offset >> PAGE_SHIFT]",
    "- return folio_size(page_folio(to_panthor_bo(op.gem.obj), pg)) >= SZ_2M",
    "+ bo = to_panthor_bo(op.gem.obj)",
    "+ first = bo_offset - (addr - ALIGN_DOWN(addr, SZ_2M))",
    "+ if first < 0 or first + SZ_2M > bo.base.size:",
    "+ return False",
    "+ assert bo.base.sgt is not None",
    "+ for sgl in for_each_sgtable_dma_sg(bo.base.sgt):",
    "+ length = sg_dma_len(sgl)",
    "+ if first < length:",
    "+ return (sg_dma_address(sgl) + first) % SZ_2M == 0 and first + SZ_2M <= length",
    "+ first -= length",
    "+ return False",
]
