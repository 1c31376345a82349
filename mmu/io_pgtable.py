"""io-pgtable ARM LPAE, stage 1, 4K granule, as in v6.14.

Mirrors ``drivers/iommu/io-pgtable-arm.c`` (``arm_64_lpae_alloc_pgtable_s1``,
``arm_lpae_map_pages``, ``arm_lpae_unmap_pages``, ``arm_lpae_iova_to_phys``,
``arm_lpae_free_pgtable``) and ``drivers/iommu/io-pgtable.c``
(``alloc_io_pgtable_ops``, ``free_io_pgtable_ops``) for the one format panthor
uses. Tables are :class:`~.physmem.KernelPage` objects living in the simulated
DRAM; a PTE holds the physical address of the next table exactly as the
hardware expects, and the GPU walker (:mod:`.gpu_access`) reads the same words.

v6.14 behaviour kept on purpose (SEMANTICS.md §11, conformance note 8):

* no block splitting: unmapping part of a 2M block WARNs once
  ("Unmap of a partial large IOPTE is not allowed") and returns 0;
* mapping over a leaf WARNs and returns -EEXIST; a table where a block goes is
  unmapped and freed first (``tlb_flush_walk`` then the hook's free);
* unmap stops at the first empty PTE (WARN) and returns the bytes unmapped;
* tables are only ever obtained from ``cfg.alloc(cookie, size, gfp)`` and given
  back through ``cfg.free(cookie, table, size)`` (or, without custom hooks,
  ``alloc_pages(gfp | __GFP_ZERO)`` / ``free_pages``);
* ``map_pages`` with neither ``IOMMU_READ`` nor ``IOMMU_WRITE`` returns 0 and maps
  nothing.

Sync/async split (deliberate):

* ``cfg.alloc`` is a coroutine function: the root table comes from
  ``alloc_pages()``, which is an allocation and so a yield point in the model.
  Hence :func:`alloc_io_pgtable_ops` and :meth:`ArmLpaeIoPgtable.map_pages` are
  coroutines. With panthor's ``alloc_pt`` (pop from a pre-reserved pool) the
  await never suspends, so a map is atomic with respect to the scheduler, like
  the lock-free kernel code under ``op_lock``.
* ``cfg.free``, ``unmap_pages``, ``iova_to_phys``, ``free_io_pgtable_ops`` and the
  TLB callbacks are synchronous (kfree / kmem_cache_free are).
* ``map_pages`` returns ``(ret, mapped)``: ``mapped`` is what the kernel adds to
  ``*mapped`` (callers start from 0, as panthor does).

The PTE encoding is the kernel's: AF, SH, AttrIndx, AP[2:1], XN, nG, type bits.

Speed: a VM_BIND of scattered pages is one ``map_pages`` per 4K page, so the
walk of the last 4K map is remembered (:class:`_WalkMemo`) and reused only
when the kernel's walk from the PGD would provably reach the same level-3
table: no kernel page was freed or dropped as a table since
(``PhysMem.pt_gen``) and every entry on the path still holds the same table
PTE. Otherwise the full walk runs, with its use-after-free checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from ..sched.core.failure import UseAfterFree
from ..sched.errno import EEXIST, EINVAL, ENOMEM, ERANGE
from ..sched.mm.gfp import __GFP_ZERO, GFP_KERNEL
from ..sched.mm.memory import kfree, kmalloc
from ..sched.warn import WARN, WARN_ON, WARN_ONCE
from .physmem import (
    FRAME_PGTABLE,
    FRAME_STATE_NAMES,
    KernelPage,
    PhysMem,
    alloc_pages,
    free_pages,
    physmem,
)
from .sizes import SZ_1G, SZ_2M, SZ_4K, SZ_16K, SZ_64K, get_order

# ---------------------------------------------------------------- io-pgtable.h

# enum io_pgtable_fmt
ARM_32_LPAE_S1: Final = 0
ARM_32_LPAE_S2: Final = 1
ARM_64_LPAE_S1: Final = 2
ARM_64_LPAE_S2: Final = 3
ARM_V7S: Final = 4
ARM_MALI_LPAE: Final = 5
AMD_IOMMU_V1: Final = 6
AMD_IOMMU_V2: Final = 7
APPLE_DART: Final = 8
APPLE_DART2: Final = 9
IO_PGTABLE_NUM_FMTS: Final = 10

# include/linux/iommu.h prot flags
IOMMU_READ: Final = 1 << 0
IOMMU_WRITE: Final = 1 << 1
IOMMU_CACHE: Final = 1 << 2
IOMMU_NOEXEC: Final = 1 << 3
IOMMU_MMIO: Final = 1 << 4
IOMMU_PRIV: Final = 1 << 5

# io_pgtable_cfg quirks
IO_PGTABLE_QUIRK_ARM_NS: Final = 1 << 0
IO_PGTABLE_QUIRK_NO_PERMS: Final = 1 << 1
IO_PGTABLE_QUIRK_ARM_MTK_EXT: Final = 1 << 3
IO_PGTABLE_QUIRK_ARM_MTK_TTBR_EXT: Final = 1 << 4
IO_PGTABLE_QUIRK_ARM_TTBR1: Final = 1 << 5
IO_PGTABLE_QUIRK_ARM_OUTER_WBWA: Final = 1 << 6
IO_PGTABLE_QUIRK_ARM_HD: Final = 1 << 7

# ---------------------------------------------------------------- io-pgtable-arm.c

ARM_LPAE_MAX_ADDR_BITS: Final = 52
ARM_LPAE_MAX_LEVELS: Final = 4

ARM_LPAE_PTE_TYPE_MASK: Final = 0x3
ARM_LPAE_PTE_TYPE_BLOCK: Final = 1
ARM_LPAE_PTE_TYPE_TABLE: Final = 3
ARM_LPAE_PTE_TYPE_PAGE: Final = 3

ARM_LPAE_PTE_ADDR_MASK: Final = ((1 << 48) - 1) & ~((1 << 12) - 1)  # GENMASK_ULL(47, 12)

ARM_LPAE_PTE_NSTABLE: Final = 1 << 63
ARM_LPAE_PTE_XN: Final = 3 << 53
ARM_LPAE_PTE_DBM: Final = 1 << 51
ARM_LPAE_PTE_AF: Final = 1 << 10
ARM_LPAE_PTE_SH_NS: Final = 0 << 8
ARM_LPAE_PTE_SH_OS: Final = 2 << 8
ARM_LPAE_PTE_SH_IS: Final = 3 << 8
ARM_LPAE_PTE_NS: Final = 1 << 5
ARM_LPAE_PTE_VALID: Final = 1 << 0

ARM_LPAE_PTE_AP_UNPRIV: Final = 1 << 6
ARM_LPAE_PTE_AP_RDONLY: Final = 1 << 7
ARM_LPAE_PTE_ATTRINDX_SHIFT: Final = 2
ARM_LPAE_PTE_nG: Final = 1 << 11

ARM_LPAE_TCR_TG0_4K: Final = 0
ARM_LPAE_TCR_SH_NS: Final = 0
ARM_LPAE_TCR_SH_OS: Final = 2
ARM_LPAE_TCR_SH_IS: Final = 3
ARM_LPAE_TCR_RGN_NC: Final = 0
ARM_LPAE_TCR_RGN_WBWA: Final = 1
ARM_LPAE_TCR_RGN_WT: Final = 2
ARM_LPAE_TCR_RGN_WB: Final = 3
ARM_LPAE_TCR_PS_32_BIT: Final = 0x0
ARM_LPAE_TCR_PS_36_BIT: Final = 0x1
ARM_LPAE_TCR_PS_40_BIT: Final = 0x2
ARM_LPAE_TCR_PS_42_BIT: Final = 0x3
ARM_LPAE_TCR_PS_44_BIT: Final = 0x4
ARM_LPAE_TCR_PS_48_BIT: Final = 0x5
ARM_LPAE_TCR_PS_52_BIT: Final = 0x6

ARM_LPAE_MAIR_ATTR_DEVICE: Final = 0x04
ARM_LPAE_MAIR_ATTR_NC: Final = 0x44
ARM_LPAE_MAIR_ATTR_INC_OWBRWA: Final = 0xF4
ARM_LPAE_MAIR_ATTR_WBRWA: Final = 0xFF
ARM_LPAE_MAIR_ATTR_IDX_NC: Final = 0
ARM_LPAE_MAIR_ATTR_IDX_CACHE: Final = 1
ARM_LPAE_MAIR_ATTR_IDX_DEV: Final = 2
ARM_LPAE_MAIR_ATTR_IDX_INC_OCACHE: Final = 3


def ARM_LPAE_MAIR_ATTR_SHIFT(n: int) -> int:
    return n << 3


_OAS_TO_IPS: Final = {
    32: ARM_LPAE_TCR_PS_32_BIT,
    36: ARM_LPAE_TCR_PS_36_BIT,
    40: ARM_LPAE_TCR_PS_40_BIT,
    42: ARM_LPAE_TCR_PS_42_BIT,
    44: ARM_LPAE_TCR_PS_44_BIT,
    48: ARM_LPAE_TCR_PS_48_BIT,
    52: ARM_LPAE_TCR_PS_52_BIT,
}

# 4K granule geometry (bits_per_level = 9, pg_shift = 12)
GRANULE: Final = SZ_4K
PTES_PER_TABLE: Final = 512
LVL_SHIFT: Final = (39, 30, 21, 12)  # ARM_LPAE_LVL_SHIFT(l) for l = 0..3
_ADDR_MASK = ARM_LPAE_PTE_ADDR_MASK
_LVL_SHIFT = LVL_SHIFT
_PT = FRAME_PGTABLE
_GFP_ZERO = __GFP_ZERO

AllocHook = Callable[[Any, int, int], Awaitable[KernelPage | None]]
FreeHook = Callable[[Any, KernelPage, int], None]


@dataclass
class IommuIotlbGather:
    """``struct iommu_iotlb_gather`` (only what io-pgtable-arm looks at)."""

    start: int = -1
    end: int = 0
    pgsize: int = 0
    queued: bool = False


@dataclass
class IommuFlushOps:
    """``struct iommu_flush_ops``: every callback is optional and synchronous."""

    tlb_flush_all: Callable[[Any], None] | None = None
    tlb_flush_walk: Callable[[int, int, int, Any], None] | None = None
    tlb_add_page: Callable[[IommuIotlbGather, int, int, Any], None] | None = None


@dataclass
class ArmLpaeS1Tcr:
    """``cfg->arm_lpae_s1_cfg.tcr``."""

    sh: int = 0
    irgn: int = 0
    orgn: int = 0
    tg: int = 0
    ips: int = 0
    tsz: int = 0


@dataclass
class ArmLpaeS1Cfg:
    """``cfg->arm_lpae_s1_cfg``: what a driver programs into its MMU."""

    ttbr: int = 0
    tcr: ArmLpaeS1Tcr = field(default_factory=ArmLpaeS1Tcr)
    mair: int = 0


@dataclass
class IoPgtableCfg:
    """``struct io_pgtable_cfg``. ``alloc`` is a coroutine function, ``free`` is not."""

    quirks: int = 0
    pgsize_bitmap: int = 0
    ias: int = 0
    oas: int = 0
    coherent_walk: bool = False
    tlb: IommuFlushOps | None = None
    iommu_dev: object = None
    alloc: AllocHook | None = None
    free: FreeHook | None = None
    arm_lpae_s1_cfg: ArmLpaeS1Cfg = field(default_factory=ArmLpaeS1Cfg)

    def copy(self) -> IoPgtableCfg:
        """A by-value copy, as ``iop->cfg = *cfg`` does (nested structs included)."""
        s1 = self.arm_lpae_s1_cfg
        tcr = s1.tcr
        return IoPgtableCfg(
            quirks=self.quirks,
            pgsize_bitmap=self.pgsize_bitmap,
            ias=self.ias,
            oas=self.oas,
            coherent_walk=self.coherent_walk,
            tlb=self.tlb,
            iommu_dev=self.iommu_dev,
            alloc=self.alloc,
            free=self.free,
            arm_lpae_s1_cfg=ArmLpaeS1Cfg(
                ttbr=s1.ttbr,
                tcr=ArmLpaeS1Tcr(tcr.sh, tcr.irgn, tcr.orgn, tcr.tg, tcr.ips, tcr.tsz),
                mair=s1.mair,
            ),
        )


def iopte_type(pte: int) -> int:
    return pte & ARM_LPAE_PTE_TYPE_MASK


def iopte_leaf(pte: int, lvl: int) -> bool:
    """``iopte_leaf()`` for the non-Mali formats."""
    if lvl == ARM_LPAE_MAX_LEVELS - 1:
        return (pte & 3) == ARM_LPAE_PTE_TYPE_PAGE
    return (pte & 3) == ARM_LPAE_PTE_TYPE_BLOCK


def paddr_to_iopte(paddr: int) -> int:
    """``paddr_to_iopte()`` (4K granule: the packed high bits fall below bit 12)."""
    return (paddr | (paddr >> (48 - 12))) & _ADDR_MASK


def iopte_to_paddr(pte: int) -> int:
    """``iopte_to_paddr()`` for granules below 64K."""
    return pte & _ADDR_MASK


class _WalkMemo:
    """The last 4K map's walk of a 4-level table: the entries on the path and the leaf table.

    A pure speed-up of the hot path (one ``map_pages`` per 4K page): it is used
    only while ``PhysMem.pt_gen`` is unchanged (no kernel page freed, no table
    dropped) and each entry on the path still holds the PTE that led to the
    next table, i.e. exactly when the kernel's walk from the PGD would arrive
    at the same level-3 table.
    """

    __slots__ = ("gen", "i0", "i1", "i2", "key", "leaf", "p0", "p1", "p2", "w0", "w1", "w2")

    def __init__(
        self,
        gen: int,
        key: int,
        w0: list[int],
        i0: int,
        p0: int,
        w1: list[int],
        i1: int,
        p1: int,
        w2: list[int],
        i2: int,
        p2: int,
        leaf: list[int],
    ) -> None:
        self.gen = gen
        self.key = key
        self.w0, self.i0, self.p0 = w0, i0, p0
        self.w1, self.i1, self.p1 = w1, i1, p1
        self.w2, self.i2, self.p2 = w2, i2, p2
        self.leaf = leaf


class ArmLpaeIoPgtable:
    """``struct arm_lpae_io_pgtable`` with its ``io_pgtable`` and ``io_pgtable_ops``.

    The ops are methods; ``io_pgtable_ops_to_pgtable(ops)`` is this object.
    """

    __slots__ = (
        "_memo",
        "_prot_cache",
        "cfg",
        "cookie",
        "fmt",
        "freed_tables",
        "idx_mask",
        "pgd",
        "pgd_bits",
        "phys",
        "start_level",
    )

    def __init__(self, cfg: IoPgtableCfg, cookie: object, phys: PhysMem) -> None:
        self.cfg = cfg
        self.cookie = cookie
        self.fmt = ARM_64_LPAE_S1
        self.phys = phys
        va_bits = cfg.ias - 12
        levels = -(-va_bits // 9)  # DIV_ROUND_UP
        self.start_level = ARM_LPAE_MAX_LEVELS - levels
        self.pgd_bits = va_bits - 9 * (levels - 1)
        # ARM_LPAE_LVL_IDX mask per level (the PGD has pgd_bits of index).
        self.idx_mask = tuple(
            (1 << (self.pgd_bits if lvl == self.start_level else 9)) - 1
            for lvl in range(ARM_LPAE_MAX_LEVELS)
        )
        self.pgd: KernelPage | None = None
        self.freed_tables = 0
        self._prot_cache: dict[int, int] = {}
        self._memo: _WalkMemo | None = None

    def __repr__(self) -> str:
        return f"<io-pgtable ARM_64_LPAE_S1 ias={self.cfg.ias} levels={4 - self.start_level}>"

    # -------------------------------------------------------------- geometry

    @property
    def pgd_size(self) -> int:
        """``ARM_LPAE_PGD_SIZE(data)``."""
        return 8 << self.pgd_bits

    def block_size(self, lvl: int) -> int:
        """``ARM_LPAE_BLOCK_SIZE(lvl, data)``."""
        return 1 << LVL_SHIFT[lvl]

    def lvl_idx(self, iova: int, lvl: int) -> int:
        """``ARM_LPAE_LVL_IDX(iova, lvl, data)``."""
        return (iova >> LVL_SHIFT[lvl]) & self.idx_mask[lvl]

    # -------------------------------------------------------------- pages

    def _deref(self, pte: int, why: str) -> KernelPage:
        """``iopte_deref()``: the table a table PTE points at (must be a live table)."""
        phys = self.phys
        pa = pte & _ADDR_MASK
        idx = (pa - phys.base) >> 12
        if 0 <= idx < phys.nr_pages and phys.state[idx] == FRAME_PGTABLE:
            page = phys.owner[idx]
            if isinstance(page, KernelPage) and page.phys == pa:
                return page
        raise UseAfterFree(
            f"io-pgtable {why}: table PTE {pte:#x} points at {phys.describe(pa)} "
            f"(a freed or foreign page)",
            signature=f"use-after-free:io-pgtable:{why}",
        )

    def _check_live(self, page: KernelPage, why: str) -> None:
        phys = self.phys
        idx = page.pfn - phys.base_pfn
        if not (0 <= idx < phys.nr_pages and phys.owner[idx] is page):
            raise UseAfterFree(
                f"io-pgtable {why}: the table being walked was freed meanwhile",
                signature=f"use-after-free:io-pgtable:{why}",
            )
        if phys.state[idx] != FRAME_PGTABLE:
            raise UseAfterFree(
                f"io-pgtable {why}: the table being walked is no longer a page table "
                f"({FRAME_STATE_NAMES[phys.state[idx]]})",
                signature=f"use-after-free:io-pgtable:{why}",
            )

    async def _alloc_pages(self, size: int, gfp: int) -> KernelPage | None:
        """``__arm_lpae_alloc_pages()``."""
        cfg = self.cfg
        if cfg.alloc is not None:
            pages = await cfg.alloc(self.cookie, size, gfp)
        else:
            pages = await alloc_pages(gfp | _GFP_ZERO, get_order(size))
        if pages is None:
            return None
        if not isinstance(pages, KernelPage):
            raise TypeError(f"io-pgtable alloc hook returned {pages!r}, not a KernelPage")
        idx = pages.pfn - self.phys.base_pfn
        holder: object = self.phys.owner[idx] if 0 <= idx < self.phys.nr_pages else None
        if holder is not pages:
            raise UseAfterFree(
                f"io-pgtable alloc hook returned {pages!r}, which is not an allocated page",
                signature="use-after-free:io-pgtable:alloc-hook",
            )
        self.phys.mark_pgtable(pages)
        return pages

    def _free_pages(self, pages: KernelPage, size: int) -> None:
        """``__arm_lpae_free_pages()``."""
        self.phys.unmark_pgtable(pages)
        self.freed_tables += 1
        cfg = self.cfg
        if cfg.free is not None:
            cfg.free(self.cookie, pages, size)
        else:
            free_pages(pages, get_order(size))

    # -------------------------------------------------------------- TLB callbacks

    def _tlb_flush_all(self) -> None:
        tlb = self.cfg.tlb
        if tlb is not None and tlb.tlb_flush_all is not None:
            tlb.tlb_flush_all(self.cookie)

    def _tlb_flush_walk(self, iova: int, size: int, granule: int) -> None:
        tlb = self.cfg.tlb
        if tlb is not None and tlb.tlb_flush_walk is not None:
            tlb.tlb_flush_walk(iova, size, granule, self.cookie)

    def _tlb_add_page(self, gather: IommuIotlbGather, iova: int, granule: int) -> None:
        tlb = self.cfg.tlb
        if tlb is not None and tlb.tlb_add_page is not None:
            tlb.tlb_add_page(gather, iova, granule, self.cookie)

    # -------------------------------------------------------------- prot

    def prot_to_pte(self, prot: int) -> int:
        """``arm_lpae_prot_to_pte()`` for ARM_64_LPAE_S1."""
        pte = ARM_LPAE_PTE_nG
        if not (prot & IOMMU_WRITE) and (prot & IOMMU_READ):
            pte |= ARM_LPAE_PTE_AP_RDONLY
        elif self.cfg.quirks & IO_PGTABLE_QUIRK_ARM_HD:
            pte |= ARM_LPAE_PTE_DBM
        if not (prot & IOMMU_PRIV):
            pte |= ARM_LPAE_PTE_AP_UNPRIV
        if prot & IOMMU_MMIO:
            pte |= ARM_LPAE_MAIR_ATTR_IDX_DEV << ARM_LPAE_PTE_ATTRINDX_SHIFT
        elif prot & IOMMU_CACHE:
            pte |= ARM_LPAE_MAIR_ATTR_IDX_CACHE << ARM_LPAE_PTE_ATTRINDX_SHIFT
        if prot & IOMMU_CACHE:
            pte |= ARM_LPAE_PTE_SH_IS
        else:
            pte |= ARM_LPAE_PTE_SH_OS
        if prot & IOMMU_NOEXEC:
            pte |= ARM_LPAE_PTE_XN
        if self.cfg.quirks & IO_PGTABLE_QUIRK_ARM_NS:
            pte |= ARM_LPAE_PTE_NS
        pte |= ARM_LPAE_PTE_AF
        return pte

    # -------------------------------------------------------------- map

    async def map_pages(
        self,
        iova: int,
        paddr: int,
        pgsize: int,
        pgcount: int,
        iommu_prot: int,
        gfp: int = GFP_KERNEL,
    ) -> tuple[int, int]:
        """``arm_lpae_map_pages()`` + ``__arm_lpae_map()``: returns ``(ret, mapped)``.

        Writes ``min(pgcount, entries left in the table)`` entries: it never
        crosses a table, so callers loop. The walk is iterative and the common
        case (one page into an empty entry) is inlined: this is the hot path of
        every VM_BIND map.
        """
        cfg = self.cfg
        if not pgsize or (pgsize & cfg.pgsize_bitmap) != pgsize:
            WARN(True, "WARN_ON(!pgsize || (pgsize & cfg->pgsize_bitmap) != pgsize)")
            return -EINVAL, 0
        if (iova >> cfg.ias) or (paddr >> cfg.oas):
            WARN(True, "WARN_ON(iaext || paddr >> cfg->oas)")
            return -ERANGE, 0
        # If no access, then nothing to do
        if not (iommu_prot & (IOMMU_READ | IOMMU_WRITE)):
            return 0, 0
        prot = self._prot_cache.get(iommu_prot)
        if prot is None:
            prot = self._prot_cache[iommu_prot] = self.prot_to_pte(iommu_prot)

        phys = self.phys
        # The remembered walk (see _WalkMemo): valid while no page table was freed
        # and the three entries on the path still hold the same table PTEs, in
        # which case the full walk below would reach the same level-3 table.
        memo = self._memo
        if (
            memo is not None
            and pgsize == GRANULE
            and memo.gen == phys.pt_gen
            and memo.key == iova >> 21
            and memo.w0[memo.i0] == memo.p0
            and memo.w1[memo.i1] == memo.p1
            and memo.w2[memo.i2] == memo.p2
        ):
            table = memo.leaf
            idx = (iova >> 12) & 511
            if pgcount == 1 and not table[idx]:
                table[idx] = prot | ARM_LPAE_PTE_TYPE_PAGE | ((paddr | (paddr >> 36)) & _ADDR_MASK)
                return 0, GRANULE
            num = PTES_PER_TABLE - idx
            if pgcount < num:
                num = pgcount
            ret = self._init_pte(iova, paddr, prot, 3, num, table, idx)
            return ret, (num * GRANULE if ret == 0 else 0)

        # __arm_lpae_map(), one level per iteration
        state = phys.state
        owner = phys.owner
        base = phys.base
        nr = phys.nr_pages
        lvl = self.start_level
        page = self.pgd
        assert page is not None
        table = page.words
        idx_mask = self.idx_mask
        path: list[tuple[list[int], int, int]] = []
        while True:
            shift = _LVL_SHIFT[lvl]
            idx = (iova >> shift) & idx_mask[lvl]
            if pgsize == 1 << shift:
                if lvl == 3 and len(path) == 3:
                    (w0, i0, p0), (w1, i1, p1), (w2, i2, p2) = path
                    self._memo = _WalkMemo(
                        phys.pt_gen, iova >> 21, w0, i0, p0, w1, i1, p1, w2, i2, p2, table
                    )
                # If we can install a leaf entry at this level, then do so
                num = PTES_PER_TABLE - (idx & (PTES_PER_TABLE - 1))
                if pgcount < num:
                    num = pgcount
                if num == 1 and not table[idx]:
                    table[idx] = (
                        prot
                        | (ARM_LPAE_PTE_TYPE_PAGE if lvl == 3 else ARM_LPAE_PTE_TYPE_BLOCK)
                        | ((paddr | (paddr >> 36)) & _ADDR_MASK)
                    )
                    return 0, pgsize
                ret = self._init_pte(iova, paddr, prot, lvl, num, table, idx)
                return ret, (num * pgsize if ret == 0 else 0)
            # We can't allocate tables at the final level
            if lvl >= ARM_LPAE_MAX_LEVELS - 1:
                WARN(True, "WARN_ON(lvl >= ARM_LPAE_MAX_LEVELS - 1)")
                return -EINVAL, 0
            pte = table[idx]
            if not pte:
                cpage = await self._alloc_pages(GRANULE, gfp)
                if cpage is None:
                    return -ENOMEM, 0
                # The hook may have slept: re-validate the table we write into.
                self._check_live(page, "map")
                # arm_lpae_install_table(): cmpxchg64 of the empty entry.
                new = paddr_to_iopte(cpage.phys) | ARM_LPAE_PTE_TYPE_TABLE
                if cfg.quirks & IO_PGTABLE_QUIRK_ARM_NS:
                    new |= ARM_LPAE_PTE_NSTABLE
                old = table[idx]
                if old == 0:
                    table[idx] = new
                    path.append((table, idx, new))
                    page = cpage
                    table = cpage.words
                    lvl += 1
                    continue
                self._free_pages(cpage, GRANULE)
                pte = old
            if (pte & 3) == ARM_LPAE_PTE_TYPE_BLOCK:  # iopte_leaf() above the last level
                # We require an unmap first
                WARN(True, "We require an unmap first (a leaf is on the path: -EEXIST)")
                return -EEXIST, 0
            path.append((table, idx, pte))
            # iopte_deref(): the next table must be a live page table
            fidx = ((pte & _ADDR_MASK) - base) >> 12
            if 0 <= fidx < nr and state[fidx] == _PT:
                page = owner[fidx]
            else:
                page = self._deref(pte, "map")
            table = page.words
            lvl += 1

    def _init_pte(
        self, iova: int, paddr: int, prot: int, lvl: int, num: int, table: list[int], idx: int
    ) -> int:
        """``arm_lpae_init_pte()`` + ``__arm_lpae_init_pte()``."""
        sz = 1 << LVL_SHIFT[lvl]
        for i in range(num):
            old = table[idx + i]
            if not old:
                continue
            if iopte_leaf(old, lvl):
                # We require an unmap first
                WARN(True, "We require an unmap first (a leaf is there: -EEXIST)")
                return -EEXIST
            # A table: we need to unmap and free the old table before
            # overwriting it with a block entry.
            if (
                iopte_type(old) == ARM_LPAE_PTE_TYPE_TABLE
                and self._unmap_level(None, iova + i * sz, sz, 1, lvl, table) != sz
            ):
                WARN(True, "WARN_ON(__arm_lpae_unmap(...) != sz)")
                return -EINVAL
        pte = prot | (
            ARM_LPAE_PTE_TYPE_PAGE if lvl == ARM_LPAE_MAX_LEVELS - 1 else ARM_LPAE_PTE_TYPE_BLOCK
        )
        if num == 1:
            table[idx] = pte | ((paddr | (paddr >> 36)) & _ADDR_MASK)
        else:
            table[idx : idx + num] = [
                pte | ((p | (p >> 36)) & _ADDR_MASK) for p in range(paddr, paddr + num * sz, sz)
            ]
        return 0

    # -------------------------------------------------------------- unmap

    def unmap_pages(
        self,
        iova: int,
        pgsize: int,
        pgcount: int,
        gather: IommuIotlbGather | None = None,
    ) -> int:
        """``arm_lpae_unmap_pages()``: bytes unmapped (0 on any error, with a WARN)."""
        cfg = self.cfg
        if WARN_ON(not pgsize or (pgsize & cfg.pgsize_bitmap) != pgsize or not pgcount):
            return 0
        if WARN_ON(iova >> cfg.ias):
            return 0
        pgd = self.pgd
        assert pgd is not None
        return self._unmap_level(gather, iova, pgsize, pgcount, self.start_level, pgd.words)

    def _unmap_level(
        self,
        gather: IommuIotlbGather | None,
        iova: int,
        size: int,
        pgcount: int,
        lvl: int,
        table: list[int],
    ) -> int:
        """``__arm_lpae_unmap()`` from level ``lvl`` of ``table``, iteratively downwards."""
        while True:
            # Something went horribly wrong and we ran out of page table
            if WARN_ON(lvl == ARM_LPAE_MAX_LEVELS):
                return 0
            shift = LVL_SHIFT[lvl]
            idx = (iova >> shift) & self.idx_mask[lvl]
            pte = table[idx]
            if not pte:
                WARN(True, "WARN_ON(!pte): unmap of an empty entry")
                return 0
            # If the size matches this level, we're in the right place
            if size == 1 << shift:
                num = min(pgcount, PTES_PER_TABLE - (idx & (PTES_PER_TABLE - 1)))
                i = 0
                while i < num:
                    pte = table[idx + i]
                    if not pte:
                        WARN(True, "WARN_ON(!pte): unmap stops at the first empty entry")
                        break
                    if not iopte_leaf(pte, lvl):
                        table[idx + i] = 0
                        # Also flush any partial walks
                        self._tlb_flush_walk(iova + i * size, size, GRANULE)
                        self._free_pgtable(lvl + 1, self._deref(pte, "unmap"))
                    i += 1
                # Clear the remaining entries
                if i == 1:
                    table[idx] = 0
                elif i:
                    table[idx : idx + i] = [0] * i
                if gather is not None and not gather.queued:
                    for j in range(i):
                        self._tlb_add_page(gather, iova + j * size, size)
                return i * size
            if iopte_leaf(pte, lvl):
                WARN_ONCE(True, "Unmap of a partial large IOPTE is not allowed")
                return 0
            # Keep on walkin'
            table = self._deref(pte, "unmap").words
            lvl += 1

    # -------------------------------------------------------------- free

    def _free_pgtable(self, lvl: int, page: KernelPage) -> None:
        """``__arm_lpae_free_pgtable()``: children first, then the table itself."""
        table_size = self.pgd_size if lvl == self.start_level else GRANULE
        if lvl < ARM_LPAE_MAX_LEVELS - 1:
            for pte in page.words[: table_size // 8]:
                if not pte or iopte_leaf(pte, lvl):
                    continue
                self._free_pgtable(lvl + 1, self._deref(pte, "free"))
        self._free_pages(page, table_size)

    # -------------------------------------------------------------- lookup

    def iova_to_phys(self, iova: int) -> int:
        """``arm_lpae_iova_to_phys()``: 0 if unmapped, else the leaf address | offset."""
        page = self.pgd
        assert page is not None
        lvl = self.start_level
        while lvl < ARM_LPAE_MAX_LEVELS:
            pte = page.words[(iova >> LVL_SHIFT[lvl]) & self.idx_mask[lvl]]
            if not pte:
                return 0
            if iopte_leaf(pte, lvl):
                return iopte_to_paddr(pte) | (iova & ((1 << LVL_SHIFT[lvl]) - 1))
            if lvl == ARM_LPAE_MAX_LEVELS - 1:
                return 0
            page = self._deref(pte, "iova_to_phys")
            lvl += 1
        return 0

    def table_pages(self) -> list[tuple[int, KernelPage]]:
        """Every live table as ``(level, page)``, root first, in address order."""
        out: list[tuple[int, KernelPage]] = []
        pgd = self.pgd
        if pgd is None:
            return out

        def walk(lvl: int, page: KernelPage) -> None:
            out.append((lvl, page))
            if lvl == ARM_LPAE_MAX_LEVELS - 1:
                return
            n = (self.pgd_size if lvl == self.start_level else GRANULE) // 8
            for pte in page.words[:n]:
                if pte and not iopte_leaf(pte, lvl):
                    walk(lvl + 1, self._deref(pte, "table_pages"))

        walk(self.start_level, pgd)
        return out


# ---------------------------------------------------------------- io-pgtable.c


def _restrict_pgsizes(cfg: IoPgtableCfg) -> None:
    """``arm_lpae_restrict_pgsizes()`` with PAGE_SIZE = 4K."""
    if cfg.pgsize_bitmap & SZ_4K:
        granule = SZ_4K
    else:
        low = cfg.pgsize_bitmap & (SZ_4K - 1)
        high = cfg.pgsize_bitmap & ~(SZ_4K - 1)
        if low:
            granule = 1 << (low.bit_length() - 1)
        elif high:
            granule = high & -high
        else:
            granule = 0
    max_addr_bits = 48
    if granule == SZ_4K:
        page_sizes = SZ_4K | SZ_2M | SZ_1G
    elif granule == SZ_16K:
        page_sizes = SZ_16K | (1 << 25)
    elif granule == SZ_64K:
        max_addr_bits = 52
        page_sizes = SZ_64K | (1 << 29)
        if cfg.oas > 48:
            page_sizes |= 1 << 42
    else:
        page_sizes = 0
    cfg.pgsize_bitmap &= page_sizes
    cfg.ias = min(cfg.ias, max_addr_bits)
    cfg.oas = min(cfg.oas, max_addr_bits)


def _check_custom_allocator(cfg: IoPgtableCfg) -> int:
    """``check_custom_allocator()`` (ARM_64_LPAE_S1 has IO_PGTABLE_CAP_CUSTOM_ALLOCATOR)."""
    if cfg.alloc is None and cfg.free is None:
        return 0
    if cfg.alloc is None or cfg.free is None:
        return -EINVAL
    return 0


async def alloc_io_pgtable_ops(
    fmt: int, cfg: IoPgtableCfg, cookie: object, *, phys: PhysMem | None = None
) -> ArmLpaeIoPgtable | None:
    """``alloc_io_pgtable_ops()`` + ``arm_64_lpae_alloc_pgtable_s1()``.

    Fills ``cfg`` (pgsize_bitmap, ias/oas clamp, tcr, mair, ttbr) and keeps a
    by-value copy in the returned pgtable, as the kernel does. Returns None
    when the kernel would. Only ARM_64_LPAE_S1 with a 4K granule is modelled.
    """
    if not 0 <= fmt < IO_PGTABLE_NUM_FMTS:
        return None
    if _check_custom_allocator(cfg):
        return None
    if fmt != ARM_64_LPAE_S1:
        raise NotImplementedError("only ARM_64_LPAE_S1 is modelled")
    if cfg.quirks & ~(
        IO_PGTABLE_QUIRK_ARM_NS
        | IO_PGTABLE_QUIRK_ARM_TTBR1
        | IO_PGTABLE_QUIRK_ARM_OUTER_WBWA
        | IO_PGTABLE_QUIRK_ARM_HD
    ):
        return None
    if cfg.quirks & (IO_PGTABLE_QUIRK_ARM_TTBR1 | IO_PGTABLE_QUIRK_ARM_HD):
        raise NotImplementedError("io-pgtable quirks TTBR1/HD are not modelled")

    # arm_lpae_alloc_pgtable()
    _restrict_pgsizes(cfg)
    if not (cfg.pgsize_bitmap & (SZ_4K | SZ_16K | SZ_64K)):
        return None
    if cfg.ias > ARM_LPAE_MAX_ADDR_BITS or cfg.oas > ARM_LPAE_MAX_ADDR_BITS:
        return None
    if not cfg.pgsize_bitmap & SZ_4K:
        raise NotImplementedError("only the 4K granule is modelled")
    mem = phys if phys is not None else physmem()
    data = await kmalloc(lambda: ArmLpaeIoPgtable(cfg, cookie, mem), GFP_KERNEL)
    if data is None:
        return None

    # TCR
    tcr = cfg.arm_lpae_s1_cfg.tcr
    if cfg.coherent_walk:
        tcr.sh = ARM_LPAE_TCR_SH_IS
        tcr.irgn = ARM_LPAE_TCR_RGN_WBWA
        tcr.orgn = ARM_LPAE_TCR_RGN_WBWA
        if cfg.quirks & IO_PGTABLE_QUIRK_ARM_OUTER_WBWA:
            kfree(data)
            return None
    else:
        tcr.sh = ARM_LPAE_TCR_SH_OS
        tcr.irgn = ARM_LPAE_TCR_RGN_NC
        if not (cfg.quirks & IO_PGTABLE_QUIRK_ARM_OUTER_WBWA):
            tcr.orgn = ARM_LPAE_TCR_RGN_NC
        else:
            tcr.orgn = ARM_LPAE_TCR_RGN_WBWA
    tcr.tg = ARM_LPAE_TCR_TG0_4K
    ips = _OAS_TO_IPS.get(cfg.oas)
    if ips is None:
        kfree(data)
        return None
    tcr.ips = ips
    tcr.tsz = 64 - cfg.ias

    # MAIRs
    cfg.arm_lpae_s1_cfg.mair = (
        (ARM_LPAE_MAIR_ATTR_NC << ARM_LPAE_MAIR_ATTR_SHIFT(ARM_LPAE_MAIR_ATTR_IDX_NC))
        | (ARM_LPAE_MAIR_ATTR_WBRWA << ARM_LPAE_MAIR_ATTR_SHIFT(ARM_LPAE_MAIR_ATTR_IDX_CACHE))
        | (ARM_LPAE_MAIR_ATTR_DEVICE << ARM_LPAE_MAIR_ATTR_SHIFT(ARM_LPAE_MAIR_ATTR_IDX_DEV))
        | (
            ARM_LPAE_MAIR_ATTR_INC_OWBRWA
            << ARM_LPAE_MAIR_ATTR_SHIFT(ARM_LPAE_MAIR_ATTR_IDX_INC_OCACHE)
        )
    )

    # Looking good; allocate a pgd
    pgd = await data._alloc_pages(data.pgd_size, GFP_KERNEL)
    if pgd is None:
        kfree(data)
        return None
    data.pgd = pgd
    # TTBR
    cfg.arm_lpae_s1_cfg.ttbr = pgd.phys

    # alloc_io_pgtable_ops(): iop->fmt, iop->cookie, iop->cfg = *cfg
    data.fmt = fmt
    data.cookie = cookie
    data.cfg = cfg.copy()
    return data


def free_io_pgtable_ops(ops: ArmLpaeIoPgtable | None) -> None:
    """``free_io_pgtable_ops()``: ``tlb_flush_all``, free every table (children first)."""
    if ops is None:
        return
    ops._tlb_flush_all()
    pgd = ops.pgd
    assert pgd is not None
    ops._free_pgtable(ops.start_level, pgd)
    ops.pgd = None
    kfree(ops)


def io_pgtable_ops_to_pgtable(ops: ArmLpaeIoPgtable) -> ArmLpaeIoPgtable:
    """``io_pgtable_ops_to_pgtable()``: the ops and the pgtable are one object here."""
    return ops
