"""GEM shmem objects: ``drm_gem_shmem_helper.c`` (v6.14) and panthor's GEM object.

:class:`DrmGemShmemObject` extends the core :class:`~..sched.drm_gem.DrmGemObject`
with what panthor_mmu.c uses: backing pages in simulated DRAM, their use count,
the pin count, the sg table (``drm_gem_shmem_get_pages_sgt``), dma-buf import.
:class:`PanthorGemObject` adds ``exclusive_vm_root_gem``, ``flags`` and
``gpuva_list_lock`` (registered with ``drm_gem_gpuva_set_lock``), and frees
itself with ``panthor_gem_free_object()``.

Backing pages: ``drm_gem_get_pages()`` is one allocation (yield point,
``might_alloc``, fault injection) that takes frames from the buddy allocator
in chunks of varied sizes. The layout is one data choice of the run
(``k.choose_data``): 0, the canonical layout, takes the largest blocks the
allocator has (so the sg table has few, large segments); any other value
seeds a ``random.Random`` that picks the chunk orders and shuffles the chunks,
so the sg table is a deterministic mix of segment sizes and addresses.
Physically adjacent chunks are merged into one segment, as
``sg_alloc_table_from_pages_segment()`` does.

Pins: in v6.14 ``drm_gem_shmem_pin()`` is ``get_pages`` (``pages_use_count``);
the model also counts explicit pins in ``pages_pin_count`` (the field v6.16
added), and the GPU-access oracle treats a GEM page as usable only while its
object holds a pin. Pages are given back to the allocator when
``pages_use_count`` drops to 0 (the kernel leaves them in the shmem page cache,
reclaimable at any time; the model frees them at once, the conservative end).

Imported objects (``drm_gem_prime_import``): the importer's sg table comes
from the exporter through a :class:`DmaBufAttachment`, which pins the exporter
(``drm_gem_map_attach``) and holds a reference on it; the importer's
``import_attach`` is set and its resv is the exporter's.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Final

from ..sched.core.failure import UseAfterFree
from ..sched.core.kernel import current_kernel
from ..sched.dma_buf.dma_resv import (
    DmaResv,
    dma_resv_assert_held,
    dma_resv_lock,
    dma_resv_lock_interruptible,
    dma_resv_unlock,
)
from ..sched.drm.drm_gem import (
    DrmGemObject,
    drm_gem_gpuva_set_lock,
    drm_gem_object_get,
    drm_gem_object_put,
    drm_gem_object_release,
)
from ..sched.errno import EINVAL, ENOMEM, ERR_PTR, PTR_ERR, ErrPtr
from ..sched.locking.mutex import Mutex, mutex_destroy
from ..sched.mm.gfp import __GFP_NOWARN, GFP_KERNEL
from ..sched.mm.memory import kfree, kmalloc
from ..sched.mm.objmem import kfree_if_allocated
from ..sched.warn import drm_WARN_ON, drm_WARN_ON_ONCE
from .physmem import MAX_PAGE_ORDER, PhysMem, physmem
from .sizes import PAGE_SHIFT, PAGE_SIZE, U32_MAX

# drm_prime_pages_to_sg(): segments are capped to what an unsigned int length holds.
SG_MAX_SEGMENT: Final = U32_MAX & ~(PAGE_SIZE - 1)
# Number of distinct page layouts a GEM object can be given (choice 0 = canonical).
GEM_PAGE_LAYOUTS: Final = 1 << 16
GEM_PAGE_LAYOUT_P_NONZERO: Final = 0.5

_GFP_NOWARN = __GFP_NOWARN


# ---------------------------------------------------------------- scatterlists


class Scatterlist:
    """``struct scatterlist``: one physically contiguous segment."""

    __slots__ = ("dma_address", "dma_length", "length", "offset", "page_link")

    def __init__(self, pfn: int, length: int) -> None:
        self.page_link = pfn  # sg_page(): the first page's pfn
        self.offset = 0
        self.length = length
        self.dma_address = 0
        self.dma_length = 0

    def __repr__(self) -> str:
        return f"<sg pfn={self.page_link:#x} len={self.length:#x} dma={self.dma_address:#x}>"


class SgTable:
    """``struct sg_table``: ``sgl`` entries, ``orig_nents`` of them, ``nents`` DMA-mapped."""

    __slots__ = ("nents", "orig_nents", "sgl")

    def __init__(self, sgl: list[Scatterlist]) -> None:
        self.sgl = sgl
        self.orig_nents = len(sgl)
        self.nents = 0

    def __repr__(self) -> str:
        return f"<sg_table nents={self.nents} orig_nents={self.orig_nents}>"


def sg_phys(sg: Scatterlist) -> int:
    """``sg_phys()``."""
    return (sg.page_link << PAGE_SHIFT) + sg.offset


def sg_dma_address(sg: Scatterlist) -> int:
    """``sg_dma_address()``."""
    return sg.dma_address


def sg_dma_len(sg: Scatterlist) -> int:
    """``sg_dma_len()``."""
    return sg.dma_length


def for_each_sgtable_dma_sg(sgt: SgTable) -> Iterator[Scatterlist]:
    """``for_each_sgtable_dma_sg(sgt, sg, i)``: the ``nents`` DMA-mapped segments."""
    sgl = sgt.sgl
    for i in range(sgt.nents):
        yield sgl[i]


def for_each_sgtable_sg(sgt: SgTable) -> Iterator[Scatterlist]:
    """``for_each_sgtable_sg(sgt, sg, i)``: the ``orig_nents`` CPU segments."""
    yield from sgt.sgl[: sgt.orig_nents]


def dma_map_sgtable(sgt: SgTable) -> int:
    """``dma_map_sgtable()`` for a device without an IOMMU in front: DMA address = PA."""
    for sg in sgt.sgl:
        sg.dma_address = sg_phys(sg)
        sg.dma_length = sg.length
    sgt.nents = sgt.orig_nents
    return 0


def dma_unmap_sgtable(sgt: SgTable) -> None:
    """``dma_unmap_sgtable()``."""
    sgt.nents = 0


def pages_to_segments(pages: list[int]) -> list[Scatterlist]:
    """Merge physically contiguous pages (pfns) into segments of at most SG_MAX_SEGMENT."""
    out: list[Scatterlist] = []
    if not pages:
        return out
    start = prev = pages[0]
    count = 1
    max_pages = SG_MAX_SEGMENT >> PAGE_SHIFT
    for pfn in pages[1:]:
        if pfn == prev + 1 and count < max_pages:
            count += 1
        else:
            out.append(Scatterlist(start, count << PAGE_SHIFT))
            start = pfn
            count = 1
        prev = pfn
    out.append(Scatterlist(start, count << PAGE_SHIFT))
    return out


async def drm_prime_pages_to_sg(pages: list[int]) -> SgTable | ErrPtr:
    """``drm_prime_pages_to_sg()``: allocates the table (may fail with -ENOMEM)."""
    sgt = await kmalloc(lambda: SgTable(pages_to_segments(pages)), GFP_KERNEL)
    if sgt is None:
        return ERR_PTR(-ENOMEM)
    return sgt


def sg_free_table(sgt: SgTable) -> None:
    """``sg_free_table()``."""
    sgt.sgl = []
    sgt.nents = sgt.orig_nents = 0


# ---------------------------------------------------------------- objects


class DmaBufAttachment:
    """``struct dma_buf_attachment`` of an importer to an exporting GEM shmem object."""

    __slots__ = ("exporter", "sgt")

    def __init__(self, exporter: DrmGemShmemObject) -> None:
        self.exporter = exporter
        self.sgt: SgTable | None = None

    def __repr__(self) -> str:
        return f"<dma_buf_attachment of {self.exporter.name}>"


class DrmGemShmemObject(DrmGemObject):
    """``struct drm_gem_shmem_object`` (``base`` is the object itself)."""

    def __init__(self, size: int, name: str, resv: DmaResv | None = None) -> None:
        super().__init__(size, name, resv)
        self.pages: list[int] | None = None  # pfn of each page
        self.pages_use_count = 0
        self.pages_pin_count = 0  # explicit drm_gem_shmem_pin() holders (model ledger)
        self.madv = 0
        self.sgt: SgTable | None = None
        self.vaddr: object | None = None
        self.vmap_use_count = 0
        self.map_wc = False
        self.pages_mark_dirty_on_put = False
        self.pages_mark_accessed_on_put = False
        self.page_blocks: list[tuple[int, int]] = []  # (first pfn, order) of each chunk
        self.import_attach: DmaBufAttachment | None = None

    def __repr__(self) -> str:
        return (
            f"<gem-shmem {self.name} size={self.size:#x} use={self.pages_use_count} "
            f"pin={self.pages_pin_count}>"
        )

    @property
    def base(self) -> DrmGemObject:
        """``shmem->base``: the embedded ``drm_gem_object`` (the object itself)."""
        return self

    def gpu_pages_pinned(self) -> bool:
        """May the GPU touch this object's pages? (the bad-gpu-access oracle asks)."""
        return self.pages_pin_count > 0

    async def free(self) -> None:
        """``funcs->free`` = ``drm_gem_shmem_object_free()``."""
        await drm_gem_shmem_free(self)


class PanthorGemObject(DrmGemShmemObject):
    """``struct panthor_gem_object`` (``panthor_gem.h``); ``base`` is the shmem object."""

    def __init__(self, size: int, name: str, *, coherent: bool = False) -> None:
        super().__init__(size, name)
        self.exclusive_vm_root_gem: DrmGemObject | None = None
        self.flags = 0
        # mutex_init(&obj->gpuva_list_lock): one lockdep class for every BO.
        self.gpuva_list_lock = Mutex(f"{name}.gpuva_list_lock", key="&bo->gpuva_list_lock")
        self.map_wc = not coherent
        drm_gem_gpuva_set_lock(self, self.gpuva_list_lock)

    @property
    def base(self) -> DrmGemShmemObject:
        """``bo->base``: the embedded ``drm_gem_shmem_object`` (the object itself)."""
        return self

    async def free(self) -> None:
        """``funcs->free`` = ``panthor_gem_free_object()``."""
        await panthor_gem_free_object(self)


def to_panthor_bo(obj: DrmGemObject) -> PanthorGemObject:
    """``to_panthor_bo()`` (``container_of``)."""
    if not isinstance(obj, PanthorGemObject):
        raise TypeError(f"{obj!r} is not a panthor GEM object")
    return obj


def to_drm_gem_shmem_obj(obj: DrmGemObject) -> DrmGemShmemObject:
    """``to_drm_gem_shmem_obj()`` (``container_of``)."""
    if not isinstance(obj, DrmGemShmemObject):
        raise TypeError(f"{obj!r} is not a GEM shmem object")
    return obj


# ---------------------------------------------------------------- pages


def _layout_orders(nr_pages: int, layout: int) -> list[int]:
    """Chunk orders for ``nr_pages``: largest-first (layout 0) or seeded random sizes."""
    orders: list[int] = []
    left = nr_pages
    rng = random.Random(layout) if layout else None
    while left:
        top = min(MAX_PAGE_ORDER, left.bit_length() - 1)
        order = top if rng is None else rng.randint(0, top)
        orders.append(order)
        left -= 1 << order
    return orders


def _take_blocks(
    phys: PhysMem, owner: DrmGemShmemObject, orders: list[int]
) -> list[tuple[int, int]] | None:
    blocks: list[tuple[int, int]] = []
    for order in orders:
        pfn = phys.alloc_gem_block(order, owner)
        if pfn < 0:
            for got_pfn, got_order in blocks:
                phys.free_gem_block(got_pfn, got_order, owner)
            return None
        blocks.append((pfn, order))
    return blocks


# shmem's largest folio: a PMD (2 MiB with 4K pages), what transparent huge pages give.
SHMEM_HUGE_FOLIO_ORDER: Final = 9


@dataclass(frozen=True)
class Folio:
    """``struct folio``: a naturally aligned run of ``2**order`` pages of one object."""

    pfn: int
    order: int


def page_folio(obj: DrmGemShmemObject, pfn: int) -> Folio:
    """``page_folio()`` for a page of ``obj`` (the model keeps pages as pfns).

    A chunk :func:`drm_gem_get_pages` took is one folio, or PMD-sized
    folios when it is larger than a PMD (shmem's huge folios are 2 MiB).
    Chunks that merely lie next to each other stay separate folios, even
    where the sg table merges them into one segment.
    """
    for first, order in obj.page_blocks:
        if first <= pfn < first + (1 << order):
            if order > SHMEM_HUGE_FOLIO_ORDER:
                order = SHMEM_HUGE_FOLIO_ORDER
                first = pfn & ~((1 << order) - 1)
            return Folio(first, order)
    raise UseAfterFree(
        f"page_folio(): pfn {pfn:#x} is not a page of {obj!r}",
        signature="use-after-free:gem-shmem:page-folio",
    )


def folio_size(folio: Folio) -> int:
    """``folio_size()``."""
    return PAGE_SIZE << folio.order


async def drm_gem_get_pages(obj: DrmGemShmemObject) -> list[int] | ErrPtr:
    """``drm_gem_get_pages()``: read the shmem pages in (an allocation that may fail)."""
    k = current_kernel()
    phys = physmem(k)
    if await k.mem.alloc_prologue(GFP_KERNEL | _GFP_NOWARN):
        return ERR_PTR(-ENOMEM)
    nr_pages = obj.size >> PAGE_SHIFT
    layout = k.choose_data(
        GEM_PAGE_LAYOUTS,
        GEM_PAGE_LAYOUT_P_NONZERO,
        what=f"{obj.name}: scattered page layout",
    )
    orders = _layout_orders(nr_pages, layout)
    blocks = _take_blocks(phys, obj, orders)
    if blocks is None:
        k.ev("alloc-fail", obj.name, "drm_gem_get_pages: DRAM exhausted")
        return ERR_PTR(-ENOMEM)
    if layout:
        random.Random(layout ^ 0x5EED).shuffle(blocks)
    obj.page_blocks = blocks
    pages: list[int] = []
    for pfn, order in blocks:
        pages.extend(range(pfn, pfn + (1 << order)))
    k.ev("gem-get-pages", obj.name, f"{nr_pages} pages in {len(blocks)} chunks (layout {layout})")
    return pages


def drm_gem_put_pages(
    obj: DrmGemShmemObject, pages: list[int], dirty: bool, accessed: bool
) -> None:
    """``drm_gem_put_pages()``: the pages go back to the allocator (see the module doc)."""
    phys = physmem()
    for pfn, order in obj.page_blocks:
        phys.free_gem_block(pfn, order, obj)
    obj.page_blocks = []
    current_kernel().ev("gem-put-pages", obj.name, f"{len(pages)} pages")


async def drm_gem_shmem_get_pages(shmem: DrmGemShmemObject) -> int:
    """``drm_gem_shmem_get_pages()`` (resv held): 0 or a negative errno."""
    dma_resv_assert_held(shmem.resv)
    use = shmem.pages_use_count
    shmem.pages_use_count = use + 1
    if use > 0:
        return 0
    pages = await drm_gem_get_pages(shmem)
    if isinstance(pages, ErrPtr):
        shmem.pages_use_count = 0
        return PTR_ERR(pages)
    shmem.pages = pages
    return 0


def drm_gem_shmem_put_pages(shmem: DrmGemShmemObject) -> None:
    """``drm_gem_shmem_put_pages()`` (resv held): put the pages when the use count hits 0."""
    dma_resv_assert_held(shmem.resv)
    if drm_WARN_ON_ONCE(None, not shmem.pages_use_count):
        return
    shmem.pages_use_count -= 1
    if shmem.pages_use_count > 0:
        return
    pages = shmem.pages
    assert pages is not None
    drm_gem_put_pages(shmem, pages, shmem.pages_mark_dirty_on_put, shmem.pages_mark_accessed_on_put)
    shmem.pages = None


async def drm_gem_shmem_pin_locked(shmem: DrmGemShmemObject) -> int:
    """``drm_gem_shmem_pin_locked()``."""
    dma_resv_assert_held(shmem.resv)
    drm_WARN_ON(None, shmem.import_attach)
    ret = await drm_gem_shmem_get_pages(shmem)
    if not ret:
        shmem.pages_pin_count += 1
        current_kernel().ev("gem-pin", shmem.name, f"pin={shmem.pages_pin_count}")
    return ret


def drm_gem_shmem_unpin_locked(shmem: DrmGemShmemObject) -> None:
    """``drm_gem_shmem_unpin_locked()``."""
    dma_resv_assert_held(shmem.resv)
    shmem.pages_pin_count -= 1
    current_kernel().ev("gem-unpin", shmem.name, f"pin={shmem.pages_pin_count}")
    drm_gem_shmem_put_pages(shmem)


async def drm_gem_shmem_pin(shmem: DrmGemShmemObject) -> int:
    """``drm_gem_shmem_pin()``: 0 or a negative errno."""
    drm_WARN_ON(None, shmem.import_attach)
    ret = await dma_resv_lock_interruptible(shmem.resv, None)
    if ret:
        return ret
    ret = await drm_gem_shmem_pin_locked(shmem)
    await dma_resv_unlock(shmem.resv)
    return ret


async def drm_gem_shmem_unpin(shmem: DrmGemShmemObject) -> None:
    """``drm_gem_shmem_unpin()``."""
    drm_WARN_ON(None, shmem.import_attach)
    await dma_resv_lock(shmem.resv, None)
    drm_gem_shmem_unpin_locked(shmem)
    await dma_resv_unlock(shmem.resv)


async def drm_gem_shmem_get_sg_table(shmem: DrmGemShmemObject) -> SgTable | ErrPtr:
    """``drm_gem_shmem_get_sg_table()``: a new table of the (present) pages."""
    drm_WARN_ON(None, shmem.import_attach)
    pages = shmem.pages
    assert pages is not None
    return await drm_prime_pages_to_sg(pages)


async def drm_gem_shmem_get_pages_sgt_locked(shmem: DrmGemShmemObject) -> SgTable | ErrPtr:
    """``drm_gem_shmem_get_pages_sgt_locked()``: the sgt holds a page use count."""
    if shmem.sgt is not None:
        return shmem.sgt
    drm_WARN_ON(None, shmem.import_attach)
    ret = await drm_gem_shmem_get_pages(shmem)
    if ret:
        return ERR_PTR(ret)
    sgt = await drm_gem_shmem_get_sg_table(shmem)
    if isinstance(sgt, ErrPtr):
        drm_gem_shmem_put_pages(shmem)
        return sgt
    dma_map_sgtable(sgt)
    shmem.sgt = sgt
    return sgt


async def drm_gem_shmem_get_pages_sgt(shmem: DrmGemShmemObject) -> SgTable | ErrPtr:
    """``drm_gem_shmem_get_pages_sgt()``: pin pages, dma map them, return the sg table."""
    ret = await dma_resv_lock_interruptible(shmem.resv, None)
    if ret:
        return ERR_PTR(ret)
    sgt = await drm_gem_shmem_get_pages_sgt_locked(shmem)
    await dma_resv_unlock(shmem.resv)
    return sgt


# ---------------------------------------------------------------- create / free

GemCreateObject = Callable[[int, str], Awaitable[DrmGemShmemObject | ErrPtr]]


async def _default_create_object(size: int, name: str) -> DrmGemShmemObject | ErrPtr:
    shmem = await kmalloc(lambda: DrmGemShmemObject(size, name), GFP_KERNEL)
    return shmem if shmem is not None else ERR_PTR(-ENOMEM)


async def drm_gem_shmem_create(
    size: int, name: str, gem_create_object: GemCreateObject | None = None
) -> DrmGemShmemObject | ErrPtr:
    """``drm_gem_shmem_create()``: ``gem_create_object`` is ``dev->driver->gem_create_object``.

    Pages are not allocated here (they come with the first pin / get_pages_sgt).
    """
    size = (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    if not size:
        return ERR_PTR(-EINVAL)
    create = gem_create_object or _default_create_object
    obj = await create(size, name)
    if isinstance(obj, ErrPtr):
        return obj
    current_kernel().ev("gem-create", obj.name, f"size={size:#x}")
    return obj


async def drm_gem_shmem_free(shmem: DrmGemShmemObject) -> None:
    """``drm_gem_shmem_free()``: release the sgt and pages, then the object."""
    if shmem.import_attach is not None:
        await drm_prime_gem_destroy(shmem, shmem.sgt)
    else:
        await dma_resv_lock(shmem.resv, None)
        drm_WARN_ON(None, shmem.vmap_use_count)
        sgt = shmem.sgt
        if sgt is not None:
            dma_unmap_sgtable(sgt)
            sg_free_table(sgt)
            kfree(sgt)
            shmem.sgt = None
        if shmem.pages is not None:
            drm_gem_shmem_put_pages(shmem)
        drm_WARN_ON(None, shmem.pages_use_count)
        await dma_resv_unlock(shmem.resv)
    drm_gem_object_release(shmem)
    kfree_if_allocated(shmem)


async def panthor_gem_create_object(
    size: int, name: str, *, coherent: bool = False
) -> PanthorGemObject | ErrPtr:
    """``panthor_gem_create_object()`` (``driver->gem_create_object``)."""
    obj = await kmalloc(lambda: PanthorGemObject(size, name, coherent=coherent), GFP_KERNEL)
    if obj is None:
        return ERR_PTR(-ENOMEM)
    return obj


async def panthor_gem_free_object(bo: PanthorGemObject) -> None:
    """``panthor_gem_free_object()``."""
    vm_root_gem = bo.exclusive_vm_root_gem
    mutex_destroy(bo.gpuva_list_lock)
    await drm_gem_shmem_free(bo)
    await drm_gem_object_put(vm_root_gem)


async def panthor_gem_create(
    size: int,
    name: str,
    *,
    exclusive_vm_root_gem: DrmGemObject | None = None,
    flags: int = 0,
    coherent: bool = False,
) -> PanthorGemObject | ErrPtr:
    """The object part of ``panthor_gem_create_with_handle()`` (no handle, one reference).

    ``exclusive_vm_root_gem`` is ``panthor_vm_root_gem(exclusive_vm)``: the BO takes
    a reference on it and shares its resv.
    """

    async def create(sz: int, nm: str) -> DrmGemShmemObject | ErrPtr:
        return await panthor_gem_create_object(sz, nm, coherent=coherent)

    shmem = await drm_gem_shmem_create(size, name, create)
    if isinstance(shmem, ErrPtr):
        return shmem
    bo = to_panthor_bo(shmem)
    bo.flags = flags
    if exclusive_vm_root_gem is not None:
        bo.exclusive_vm_root_gem = exclusive_vm_root_gem
        await drm_gem_object_get(exclusive_vm_root_gem)
        bo.resv = exclusive_vm_root_gem.resv
    return bo


# ---------------------------------------------------------------- dma-buf import


async def drm_gem_prime_import(
    exporter: DrmGemShmemObject,
    name: str,
    gem_create_object: GemCreateObject | None = None,
) -> DrmGemShmemObject | ErrPtr:
    """``drm_gem_prime_import_dev()`` of another device's dma-buf of ``exporter``.

    ``dma_buf_attach`` (``drm_gem_map_attach`` pins the exporter), a reference on
    the dma-buf (here: on the exporter), ``dma_buf_map_attachment`` (a new sg
    table of the exporter's pages), then ``drm_gem_shmem_prime_import_sg_table``.
    """
    attach = DmaBufAttachment(exporter)
    await dma_resv_lock(exporter.resv, None)
    ret = await drm_gem_shmem_pin_locked(exporter)  # drm_gem_pin_locked() -> funcs->pin
    await dma_resv_unlock(exporter.resv)
    if ret:
        return ERR_PTR(ret)
    await drm_gem_object_get(exporter)  # get_dma_buf()
    sgt = await drm_gem_shmem_get_sg_table(exporter)  # drm_gem_map_dma_buf()
    if isinstance(sgt, ErrPtr):
        await _detach(attach)
        return sgt
    dma_map_sgtable(sgt)
    attach.sgt = sgt
    # drm_gem_shmem_prime_import_sg_table(): a private object with the sgt
    create = gem_create_object or _default_create_object
    obj = await create(exporter.size, name)
    if isinstance(obj, ErrPtr):
        dma_unmap_sgtable(sgt)
        sg_free_table(sgt)
        kfree(sgt)
        await _detach(attach)
        return obj
    obj.sgt = sgt
    obj.import_attach = attach
    obj.resv = exporter.resv
    current_kernel().ev("gem-import", obj.name, f"from {exporter.name}")
    return obj


async def _detach(attach: DmaBufAttachment) -> None:
    """``dma_buf_detach()`` + ``dma_buf_put()``: unpin and drop the exporter."""
    exporter = attach.exporter
    await dma_resv_lock(exporter.resv, None)
    drm_gem_shmem_unpin_locked(exporter)  # drm_gem_unpin_locked() -> funcs->unpin
    await dma_resv_unlock(exporter.resv)
    await drm_gem_object_put(exporter)


async def drm_prime_gem_destroy(obj: DrmGemShmemObject, sgt: SgTable | None) -> None:
    """``drm_prime_gem_destroy()``: unmap the attachment, detach, put the dma-buf."""
    attach = obj.import_attach
    assert attach is not None
    if sgt is not None:
        dma_unmap_sgtable(sgt)
        sg_free_table(sgt)
        kfree(sgt)
    obj.sgt = None
    await _detach(attach)
