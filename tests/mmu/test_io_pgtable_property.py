"""Random map/unmap sequences against a reference of the v6.14 io-pgtable semantics.

The reference knows nothing of physical tables: it keeps the leaves as a dict
``(level, va >> shift) -> paddr`` and the tables as the VA prefixes they cover,
and applies the kernel's rules (tables allocated on the way down, -EEXIST on a
leaf, a table under a new block or a block-sized unmap is freed, unmap stops at
the first empty entry, no block splitting). After every operation the model's
return values, WARNs and hook calls must match; at the end the model's leaves
(read back from the table pages in simulated DRAM) must equal the reference's,
and tearing the table down must give every table page back.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panthor_testbed.mmu.io_pgtable import (
    ARM_64_LPAE_S1,
    IOMMU_READ,
    IOMMU_WRITE,
    LVL_SHIFT,
    ArmLpaeIoPgtable,
    IoPgtableCfg,
    alloc_io_pgtable_ops,
    free_io_pgtable_ops,
)
from panthor_testbed.mmu.physmem import KernelPage, PhysMem, memset
from panthor_testbed.mmu.sizes import SZ_1G, SZ_2M, SZ_4K, get_order
from panthor_testbed.sched import Kernel, KernelConfig
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.errno import EEXIST

LEAF_LEVEL = {SZ_4K: 3, SZ_2M: 2}
ADDR_MASK = ((1 << 48) - 1) & ~0xFFF


class RefPgtable:
    """The v6.14 io-pgtable rules over VA prefixes (4-level, 48-bit, 4K|2M)."""

    def __init__(self) -> None:
        self.leaves: dict[tuple[int, int], int] = {}
        self.tables: dict[tuple[int, int], None] = {}  # (level, va >> LVL_SHIFT[level - 1])
        self.allocs = 0
        self.frees = 0
        self.warns = 0
        self.partial_warned = False

    def _free_subtree(self, lvl: int, prefix: int) -> None:
        lo = prefix << LVL_SHIFT[lvl - 1]
        hi = (prefix + 1) << LVL_SHIFT[lvl - 1]
        for key in [t for t in self.tables if t[0] >= lvl]:
            if lo <= key[1] << LVL_SHIFT[key[0] - 1] < hi:
                del self.tables[key]
                self.frees += 1
        for key in [leaf for leaf in self.leaves if leaf[0] >= lvl]:
            if lo <= key[1] << LVL_SHIFT[key[0]] < hi:
                del self.leaves[key]

    def map(self, iova: int, pa: int, size: int, count: int) -> tuple[int, int]:
        leaf_lvl = LEAF_LEVEL[size]
        for lvl in range(leaf_lvl):
            if (lvl, iova >> LVL_SHIFT[lvl]) in self.leaves:
                self.warns += 1
                return -EEXIST, 0
            tkey = (lvl + 1, iova >> LVL_SHIFT[lvl])
            if tkey not in self.tables:
                self.tables[tkey] = None
                self.allocs += 1
        s = LVL_SHIFT[leaf_lvl]
        n = min(count, 512 - ((iova >> s) & 511))
        for i in range(n):
            va = iova + i * size
            if (leaf_lvl, va >> s) in self.leaves:
                self.warns += 1
                return -EEXIST, 0
            if leaf_lvl < 3 and (leaf_lvl + 1, va >> s) in self.tables:
                self._free_subtree(leaf_lvl + 1, va >> s)
        for i in range(n):
            self.leaves[(leaf_lvl, (iova >> s) + i)] = pa + i * size
        return 0, n * size

    def unmap(self, iova: int, size: int, count: int) -> int:
        leaf_lvl = LEAF_LEVEL[size]
        for lvl in range(leaf_lvl):
            if (lvl, iova >> LVL_SHIFT[lvl]) in self.leaves:
                if not self.partial_warned:
                    self.partial_warned = True
                    self.warns += 1
                return 0
            if (lvl + 1, iova >> LVL_SHIFT[lvl]) not in self.tables:
                self.warns += 1
                return 0
        s = LVL_SHIFT[leaf_lvl]
        n = min(count, 512 - ((iova >> s) & 511))
        i = 0
        while i < n:
            key = (iova >> s) + i
            if (leaf_lvl, key) in self.leaves:
                del self.leaves[(leaf_lvl, key)]
            elif leaf_lvl < 3 and (leaf_lvl + 1, key) in self.tables:
                self._free_subtree(leaf_lvl + 1, key)
            else:
                self.warns += 1
                break
            i += 1
        return i * size

    def leaf_map(self) -> dict[tuple[int, int], int]:
        return {(lvl, key << LVL_SHIFT[lvl]): pa for (lvl, key), pa in self.leaves.items()}


def dump_leaves(ops: ArmLpaeIoPgtable, phys: PhysMem) -> dict[tuple[int, int], int]:
    """Every leaf of the model's tables, read from the pages in DRAM: (level, va) -> pa."""
    out: dict[tuple[int, int], int] = {}

    def walk(lvl: int, words: list[int], va_base: int) -> None:
        for idx, pte in enumerate(words):
            if not pte:
                continue
            va = va_base + (idx << LVL_SHIFT[lvl])
            if lvl == 3 or (pte & 3) == 1:
                out[(lvl, va)] = pte & ADDR_MASK
            else:
                page = phys.kernel_page(pte & ADDR_MASK)
                assert page is not None
                walk(lvl + 1, page.words, va)

    assert ops.pgd is not None
    walk(0, ops.pgd.words, 0)
    return out


class CountingHooks:
    def __init__(self, phys: PhysMem) -> None:
        self.phys = phys
        self.allocs = 0
        self.frees = 0
        self.live: dict[int, KernelPage] = {}

    async def alloc(self, cookie: Any, size: int, gfp: int) -> KernelPage | None:
        page = self.phys.new_kernel_page(get_order(size), 0x6B6B6B6B6B6B6B6B)
        assert page is not None
        memset(page, 0, SZ_4K)
        self.allocs += 1
        self.live[page.pfn] = page
        return page

    def free(self, cookie: Any, page: KernelPage, size: int) -> None:
        assert self.live.pop(page.pfn) is page
        self.frees += 1
        self.phys.release_kernel_page(page)


BASES = [0, SZ_2M * 5, SZ_1G - 2 * SZ_2M, SZ_1G * 3, (1 << 39) - SZ_2M, (1 << 47) - SZ_1G]

op_strategy = st.one_of(
    st.tuples(
        st.just("map4k"),
        st.sampled_from(BASES),
        st.integers(0, 1100),
        st.integers(1, 600),
    ),
    st.tuples(st.just("map2m"), st.sampled_from(BASES), st.integers(0, 3), st.integers(1, 3)),
    st.tuples(
        st.just("unmap4k"),
        st.sampled_from(BASES),
        st.integers(0, 1100),
        st.integers(1, 600),
    ),
    st.tuples(st.just("unmap2m"), st.sampled_from(BASES), st.integers(0, 3), st.integers(1, 3)),
)


Ops = list[tuple[str, int, int, int]]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(st.lists(op_strategy, min_size=1, max_size=14))
def test_random_map_unmap_matches_the_reference(ops_list: Ops) -> None:
    check_against_reference(ops_list)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op_strategy, min_size=1, max_size=40))
def test_long_random_map_unmap_matches_the_reference(ops_list: Ops) -> None:
    check_against_reference(ops_list)


def check_against_reference(ops_list: Ops) -> None:
    ref = RefPgtable()
    out: dict[str, Any] = {}

    async def scenario(k: Kernel) -> None:
        phys = PhysMem(size=16 << 20).install()
        hooks = CountingHooks(phys)
        cfg = IoPgtableCfg(
            pgsize_bitmap=SZ_4K | SZ_2M, ias=48, oas=48, alloc=hooks.alloc, free=hooks.free
        )
        ops = await alloc_io_pgtable_ops(ARM_64_LPAE_S1, cfg, None)
        assert ops is not None and hooks.allocs == 1
        for n, (kind, base, index, count) in enumerate(ops_list):
            size = SZ_4K if kind.endswith("4k") else SZ_2M
            iova = (base & ~(size - 1)) + index * size
            if kind.startswith("map"):
                pa = 0x40_0000_0000 + (n << 32) + index * size
                got = await ops.map_pages(iova, pa, size, count, IOMMU_READ | IOMMU_WRITE)
                want = ref.map(iova, pa, size, count)
            else:
                got_bytes = ops.unmap_pages(iova, size, count)
                got, want = (got_bytes, 0), (ref.unmap(iova, size, count), 0)
            assert got == want, f"op {n} {kind} {iova:#x} x{count}: model {got}, reference {want}"
            assert hooks.allocs - 1 == ref.allocs, f"op {n}: table allocations differ"
            assert hooks.frees == ref.frees, f"op {n}: table frees differ"
            assert len(ops.table_pages()) - 1 == len(ref.tables)
        assert dump_leaves(ops, phys) == ref.leaf_map()
        for (lvl, va), pa in ref.leaf_map().items():
            span = 1 << LVL_SHIFT[lvl]
            assert ops.iova_to_phys(va) == pa
            assert ops.iova_to_phys(va + span - 1) == pa + span - 1
        out["warns"] = sum(1 for f in k.failures if f.kind == "warn")
        free_io_pgtable_ops(ops)
        assert hooks.allocs == hooks.frees and not hooks.live
        assert phys.nr_free == phys.nr_pages

    k = run(scenario, config=KernelConfig(warn_fatal=False, trace=False))
    errors = [f for f in k.failures if f.kind != "warn"]
    assert errors == [], "\n".join(f.message + "\n" + f.report for f in errors)
    assert out["warns"] == ref.warns
