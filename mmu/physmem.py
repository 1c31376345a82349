"""Physical memory: page frames with a state and an owner, and the page allocator.

Models what the GPU can touch. Every 4 KiB frame of the simulated DRAM has a
state (free, other kernel use, page table, GEM page) and an owner (the
:class:`KernelPage` or the GEM object). The allocator is a binary buddy
allocator like ``mm/page_alloc.c`` (orders 0..``MAX_PAGE_ORDER``), with
insertion-ordered free lists so that every run allocates the same frames.

Kernel pages (page tables, the pt_cache objects) have their content modelled
as a list of 64-bit words: a page table is ``page.words`` (512 PTEs), and the
GPU's page-table walker reads the same list the io-pgtable code writes.

Sync/async split: :func:`alloc_pages` / :func:`alloc_pages_node` are
allocations, so they are coroutines (a yield point, ``might_alloc()`` and fault
injection, through the run's memory ledger); freeing (:func:`free_pages`,
``kmem_cache_free`` into :class:`PageSlabBacking`) is synchronous, as kfree is.

Freed frames are poisoned: the :class:`KernelPage` object is poisoned (any later
use of the stale pointer is a use-after-free finding) and the frame's state
becomes ``free``, so a GPU walk or translation that reaches it is a
``bad-gpu-access`` finding. Newly allocated kernel pages hold the poison
pattern (``PAGE_POISON`` / slab ``POISON_FREE``) unless ``__GFP_ZERO`` is
given, so a page table used without being cleared is visible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ..sched.core.failure import ExecutorError, Failure, UseAfterFree
from ..sched.core.kernel import Kernel, current_kernel
from ..sched.mm.gfp import __GFP_ZERO
from ..sched.mm.memory import KmemCache
from .sizes import PAGE_SHIFT, PAGE_SIZE, get_order

if TYPE_CHECKING:
    from collections.abc import Iterator

# Frame states.
FRAME_FREE: Final = 0
FRAME_KERNEL: Final = 1  # allocated to the kernel, not (or no longer) a live page table
FRAME_PGTABLE: Final = 2  # a table page of a live io-pgtable
FRAME_GEM: Final = 3  # backing page of a GEM object
FRAME_STATE_NAMES: Final = ("free", "kernel", "page-table", "gem")

MAX_PAGE_ORDER: Final = 10  # include/linux/mmzone.h (4 MiB blocks with 4K pages)
WORDS_PER_PAGE: Final = PAGE_SIZE // 8

PAGE_POISON_WORD: Final = 0xAAAAAAAAAAAAAAAA  # mm/page_poison.c PAGE_POISON (0xaa)
SLAB_POISON_WORD: Final = 0x6B6B6B6B6B6B6B6B  # include/linux/poison.h POISON_FREE (0x6b)

DEFAULT_DRAM_BASE: Final = 0x8000_0000
DEFAULT_DRAM_SIZE: Final = 1 << 30

_GFP_ZERO = __GFP_ZERO
_OBJECTS_KEY: Final = "mmu.physmem"


class PhysMemExhausted(ExecutorError):
    """The simulated DRAM is too small for the scenario (a configuration problem)."""


class KernelPage:
    """A kernel page: ``struct page`` and its linear-map address in one object.

    ``page_address(p)`` and ``virt_to_page(addr)`` are the identity; ``phys`` is
    ``virt_to_phys()``. ``words`` is the page content as 64-bit words (a page
    table's PTEs), ``512 << order`` of them.
    """

    __slots__ = ("order", "pfn", "phys", "words")

    def __init__(self, pfn: int, order: int, fill: int) -> None:
        self.pfn = pfn
        self.order = order
        self.phys = pfn << PAGE_SHIFT
        self.words = [fill] * (WORDS_PER_PAGE << order)

    def __repr__(self) -> str:
        return f"<page pfn={self.pfn:#x} order={self.order}>"


class SlabPage(KernelPage):
    """A kernel page handed out by a kmem_cache (:class:`PageSlabBacking`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<slab page pfn={self.pfn:#x}>"


class PhysMem:
    """The simulated DRAM of one run: frame states, owners, the buddy allocator.

    ``state`` (a bytearray) and ``owner`` (a list) are indexed by frame number
    (``pfn - base_pfn``); they are public for the page-table walker's speed.
    """

    def __init__(self, size: int = DEFAULT_DRAM_SIZE, base: int = DEFAULT_DRAM_BASE) -> None:
        if size <= 0 or size % PAGE_SIZE or base % PAGE_SIZE:
            raise ValueError("DRAM size and base must be page aligned")
        self.base = base
        self.base_pfn = base >> PAGE_SHIFT
        self.nr_pages = size >> PAGE_SHIFT
        self.end = base + size
        self.state = bytearray(self.nr_pages)
        self.owner: list[Any] = [None] * self.nr_pages
        self.free_area: list[dict[int, None]] = [{} for _ in range(MAX_PAGE_ORDER + 1)]
        self.nr_free = self.nr_pages
        # Bumped whenever a kernel page is freed or stops being a page table: a
        # remembered page-table walk is only reused while this has not moved.
        self.pt_gen = 0
        # Seed the free lists highest block first: popitem() is LIFO, so the
        # lowest frames are handed out first.
        blocks: list[tuple[int, int]] = []
        idx = 0
        n = self.nr_pages
        while idx < n:
            order = MAX_PAGE_ORDER
            while order > 0 and (idx & ((1 << order) - 1) or idx + (1 << order) > n):
                order -= 1
            blocks.append((idx, order))
            idx += 1 << order
        for idx, order in reversed(blocks):
            self.free_area[order][idx] = None

    # ------------------------------------------------------------ run binding

    def install(self, k: Kernel | None = None, *, leak_check: bool = True) -> PhysMem:
        """Make this the DRAM of the run (what alloc_pages() and the GPU use).

        With ``leak_check``, a run that completes with frames still allocated
        reports a ``leak`` naming their states (page tables, GEM pages, other
        kernel pages), which also covers pages hidden from the allocation
        ledger with ``kmemleak_ignore()`` (as panthor's ``alloc_pt`` does).
        """
        k = k or current_kernel()
        already = k.objects.get(_OBJECTS_KEY) is self
        k.objects[_OBJECTS_KEY] = self
        if leak_check and not already:
            k.exit_checks.append(self._check_leaks)
        return self

    def _check_leaks(self, k: Kernel) -> None:
        counts = [0] * len(FRAME_STATE_NAMES)
        for st, n in self.iter_states():
            counts[st] += n
        used = [(FRAME_STATE_NAMES[st], n) for st, n in enumerate(counts) if st and n]
        if not used:
            return
        k.record_failure(
            Failure(
                "leak",
                "physical memory still allocated at teardown: "
                + ", ".join(f"{n} {name} page(s)" for name, n in used),
                signature="leak:physmem:" + "|".join(name for name, _ in used),
            )
        )

    # ------------------------------------------------------------ frames

    def frame(self, pa: int) -> int:
        """Frame index of physical address ``pa``, or -1 if no DRAM is there."""
        if self.base <= pa < self.end:
            return (pa - self.base) >> PAGE_SHIFT
        return -1

    def frame_state(self, pa: int) -> int:
        """``FRAME_*`` state of the frame holding ``pa`` (-1: not DRAM)."""
        idx = self.frame(pa)
        return self.state[idx] if idx >= 0 else -1

    def frame_owner(self, pa: int) -> object | None:
        idx = self.frame(pa)
        return self.owner[idx] if idx >= 0 else None

    def describe(self, pa: int) -> str:
        """A short human description of the frame at ``pa`` (for reports)."""
        idx = self.frame(pa)
        if idx < 0:
            return f"no DRAM at {pa:#x}"
        st = self.state[idx]
        owner = self.owner[idx]
        name = FRAME_STATE_NAMES[st]
        if st == FRAME_GEM and owner is not None:
            return f"{name} page of {getattr(owner, 'name', type(owner).__name__)}"
        return name

    def kernel_page(self, pa: int) -> KernelPage | None:
        """``phys_to_virt()`` for kernel pages: the page object owning ``pa``."""
        idx = self.frame(pa)
        if idx < 0:
            return None
        owner = self.owner[idx]
        return owner if isinstance(owner, KernelPage) else None

    def free_pages_count(self) -> int:
        return self.nr_free

    # ------------------------------------------------------------ buddy allocator

    def _alloc_block(self, order: int) -> int:
        """Take a free block of ``2**order`` frames; -1 if none is large enough."""
        fa = self.free_area
        for o in range(order, MAX_PAGE_ORDER + 1):
            d = fa[o]
            if d:
                idx, _ = d.popitem()
                while o > order:
                    o -= 1
                    fa[o][idx + (1 << o)] = None
                self.nr_free -= 1 << order
                return idx
        return -1

    def _free_block(self, idx: int, order: int) -> None:
        fa = self.free_area
        self.nr_free += 1 << order
        n = self.nr_pages
        while order < MAX_PAGE_ORDER:
            buddy = idx ^ (1 << order)
            d = fa[order]
            if buddy + (1 << order) <= n and buddy in d:
                del d[buddy]
                idx &= ~(1 << order)
                order += 1
            else:
                break
        fa[order][idx] = None

    def _set_frames(self, idx: int, count: int, state: int, owner: object | None) -> None:
        self.state[idx : idx + count] = bytes((state,)) * count
        self.owner[idx : idx + count] = [owner] * count

    # ------------------------------------------------------------ kernel pages

    def new_kernel_page(
        self, order: int, fill: int, cls: type[KernelPage] = KernelPage
    ) -> KernelPage | None:
        """Allocate frames for a kernel page (no ledger, no yield point): the raw path."""
        idx = self._alloc_block(order)
        if idx < 0:
            return None
        page = cls(self.base_pfn + idx, order, fill)
        self._set_frames(idx, 1 << order, FRAME_KERNEL, page)
        return page

    def release_kernel_page(self, page: KernelPage) -> None:
        """Give a kernel page's frames back (the raw path of free_pages/kmem_cache_free)."""
        self.pt_gen += 1
        idx = page.pfn - self.base_pfn
        count = 1 << page.order
        if not 0 <= idx < self.nr_pages or self.owner[idx] is not page:
            raise UseAfterFree(
                f"freeing {page!r}, which does not own its frames",
                signature="use-after-free:physmem:bad-page-free",
            )
        self._set_frames(idx, count, FRAME_FREE, None)
        self._free_block(idx, page.order)

    def mark_pgtable(self, page: KernelPage) -> None:
        """The io-pgtable installed ``page`` as a table (state ``page-table``)."""
        idx = page.pfn - self.base_pfn
        self.state[idx : idx + (1 << page.order)] = bytes((FRAME_PGTABLE,)) * (1 << page.order)

    def unmark_pgtable(self, page: KernelPage) -> None:
        """The io-pgtable dropped ``page`` as a table (back to ``kernel`` until freed)."""
        self.pt_gen += 1
        idx = page.pfn - self.base_pfn
        if self.owner[idx] is page:
            self.state[idx : idx + (1 << page.order)] = bytes((FRAME_KERNEL,)) * (1 << page.order)

    # ------------------------------------------------------------ GEM pages

    def alloc_gem_block(self, order: int, owner: object) -> int:
        """Take ``2**order`` contiguous frames for a GEM object; the first pfn, or -1."""
        idx = self._alloc_block(order)
        if idx < 0:
            return -1
        self._set_frames(idx, 1 << order, FRAME_GEM, owner)
        return self.base_pfn + idx

    def free_gem_block(self, pfn: int, order: int, owner: object) -> None:
        idx = pfn - self.base_pfn
        if not 0 <= idx < self.nr_pages or self.owner[idx] is not owner:
            raise UseAfterFree(
                f"freeing GEM frames at pfn {pfn:#x} not owned by {owner!r}",
                signature="use-after-free:physmem:bad-gem-free",
            )
        self._set_frames(idx, 1 << order, FRAME_FREE, None)
        self._free_block(idx, order)

    # ------------------------------------------------------------ slab

    def slab_backing(self) -> PageSlabBacking:
        """A ``SlabBacking`` whose objects are physical pages (the seed's ``pt_cache``)."""
        return PageSlabBacking(self)

    def iter_states(self) -> Iterator[tuple[int, int]]:
        """(state, frame count) runs over the whole DRAM (for tests and reports)."""
        st = self.state
        n = self.nr_pages
        i = 0
        while i < n:
            s = st[i]
            j = i + 1
            while j < n and st[j] == s:
                j += 1
            yield s, j - i
            i = j


class PageSlabBacking:
    """``kmem_cache`` objects that are physical pages (``SlabBacking`` protocol).

    Used for panthor's ``pt_cache`` (``SZ_4K`` objects): each object is a
    :class:`KernelPage` holding the slab poison until the driver clears it.
    ``kmem_cache_free`` gives the frames back and poisons the object.
    """

    __slots__ = ("phys",)

    def __init__(self, phys: PhysMem) -> None:
        self.phys = phys

    def new_object(self, cache: KmemCache, gfp: int) -> object | None:
        fill = 0 if gfp & _GFP_ZERO else SLAB_POISON_WORD
        page = self.phys.new_kernel_page(get_order(max(cache.size, 1)), fill, SlabPage)
        if page is None:
            current_kernel().ev("alloc-fail", cache.name, "-ENOMEM (DRAM exhausted)")
        return page

    def release_object(self, cache: KmemCache, obj: object) -> None:
        if not isinstance(obj, KernelPage):
            raise UseAfterFree(
                f"kmem_cache_free({cache.name}) of {obj!r}, not a page of this cache",
                signature=f"use-after-free:physmem:slab:{cache.name}",
            )
        self.phys.release_kernel_page(obj)
        current_kernel().ev("kmem_cache_free", cache.name, f"pfn {obj.pfn:#x}")


# ---------------------------------------------------------------- kernel API


def physmem(k: Kernel | None = None) -> PhysMem:
    """The DRAM of the current run (installed with :meth:`PhysMem.install`)."""
    mem = (k or current_kernel()).objects.get(_OBJECTS_KEY)
    if not isinstance(mem, PhysMem):
        raise ExecutorError("no PhysMem installed in this run (PhysMem(...).install())")
    return mem


async def alloc_pages(gfp: int, order: int) -> KernelPage | None:
    """``alloc_pages()``: an allocation (yield point, might_alloc, fault injection).

    Returns the page (which is also its ``page_address()``), or None (-ENOMEM).
    """
    k = current_kernel()
    phys = physmem(k)
    if await k.mem.alloc_prologue(gfp):
        return None
    page = phys.new_kernel_page(order, 0 if gfp & _GFP_ZERO else PAGE_POISON_WORD)
    if page is None:
        k.ev("alloc-fail", "alloc_pages", f"order={order} -ENOMEM (DRAM exhausted)")
        return None
    k.mem.register(page, "alloc_pages() page")
    k.ev("alloc_pages", f"pfn {page.pfn:#x}", f"order={order}")
    return page


async def alloc_pages_node(nid: int, gfp: int, order: int) -> KernelPage | None:
    """``alloc_pages_node()``: NUMA is not modelled; the same as :func:`alloc_pages`."""
    return await alloc_pages(gfp, order)


def page_address(page: KernelPage) -> KernelPage:
    """``page_address()``: a kernel page is its own linear-map address."""
    return page


def virt_to_phys(page: KernelPage) -> int:
    """``virt_to_phys()`` / ``__pa()`` of a kernel page."""
    return page.phys


def free_pages(addr: KernelPage, order: int) -> None:
    """``free_pages()``: frees and poisons; a double or mismatched free is a finding."""
    k = current_kernel()
    if addr.order != order:
        raise UseAfterFree(
            f"free_pages() of an order-{addr.order} page with order {order}",
            signature="use-after-free:free_pages:order",
        )
    rec = k.mem.release(addr, "free_pages")
    pfn = addr.pfn
    physmem(k).release_kernel_page(addr)
    k.mem.poison(addr, rec.what, rec.site)
    k.ev("free_pages", f"pfn {pfn:#x}", f"order={order}")


def memset(page: KernelPage, value: int, size: int) -> None:
    """``memset(page, value, size)`` over the first ``size`` bytes (8-byte granular)."""
    if size % 8:
        raise ValueError("memset of a kernel page is modelled in 64-bit words")
    n = size // 8
    word = int.from_bytes(bytes((value & 0xFF,)) * 8, "little")
    page.words[0:n] = [word] * n


__all__ = [
    "DEFAULT_DRAM_BASE",
    "DEFAULT_DRAM_SIZE",
    "FRAME_FREE",
    "FRAME_GEM",
    "FRAME_KERNEL",
    "FRAME_PGTABLE",
    "FRAME_STATE_NAMES",
    "MAX_PAGE_ORDER",
    "PAGE_POISON_WORD",
    "SLAB_POISON_WORD",
    "WORDS_PER_PAGE",
    "KernelPage",
    "PageSlabBacking",
    "PhysMem",
    "PhysMemExhausted",
    "SlabPage",
    "alloc_pages",
    "alloc_pages_node",
    "free_pages",
    "memset",
    "page_address",
    "physmem",
    "virt_to_phys",
]
