"""GEM shmem objects: pages in DRAM, pin/unpin, the sg table, imports, panthor's BO."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from panthor_testbed.mmu.gem_shmem import (
    PanthorGemObject,
    SgTable,
    drm_gem_prime_import,
    drm_gem_shmem_get_pages_sgt,
    drm_gem_shmem_pin,
    drm_gem_shmem_unpin,
    for_each_sgtable_dma_sg,
    pages_to_segments,
    panthor_gem_create,
    panthor_gem_create_object,
    sg_dma_address,
    sg_dma_len,
    to_panthor_bo,
)
from panthor_testbed.mmu.physmem import FRAME_FREE, FRAME_GEM, PhysMem
from panthor_testbed.mmu.sizes import SZ_2M, SZ_4K
from panthor_testbed.sched import Canonical, Kernel, KernelConfig, RandomWalk, mutex_lock
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.drm.drm_gem import DrmGemObject, drm_gem_object_put
from panthor_testbed.sched.errno import ENOMEM, ErrPtr


class FixedData(Canonical):
    name = "fixed-data"

    def __init__(self, value: int) -> None:
        super().__init__()
        self.value = value

    def choose(self, k: Kernel, n: int, p_nonzero: float, what: str = "") -> int:
        return min(self.value, n - 1)


def run_clean(scenario: Callable[[Kernel], Awaitable[None]], **kw: Any) -> Kernel:
    k = run(scenario, **kw)
    assert k.failures == [], "\n".join(f.message + "\n" + f.report for f in k.failures)
    return k


async def new_bo(size: int, name: str = "bo", **kw: Any) -> PanthorGemObject:
    bo = await panthor_gem_create(size, name, **kw)
    assert isinstance(bo, PanthorGemObject)
    return bo


def segments(sgt: SgTable) -> list[tuple[int, int]]:
    return [(sg_dma_address(sg), sg_dma_len(sg)) for sg in for_each_sgtable_dma_sg(sgt)]


def test_pin_allocates_pages_and_sgt_covers_them() -> None:
    async def scenario(k: Kernel) -> None:
        phys = PhysMem(size=16 << 20).install()
        bo = await new_bo(3 * SZ_2M + 5 * SZ_4K)
        assert bo.pages is None and bo.base.base is bo
        assert await drm_gem_shmem_pin(bo) == 0
        assert bo.pages_use_count == 1 and bo.pages_pin_count == 1 and bo.gpu_pages_pinned()
        assert bo.pages is not None and len(bo.pages) == bo.size // SZ_4K
        for pfn in bo.pages:
            assert phys.state[pfn - phys.base_pfn] == FRAME_GEM
            assert phys.owner[pfn - phys.base_pfn] is bo
        sgt = await drm_gem_shmem_get_pages_sgt(bo)
        assert isinstance(sgt, SgTable)
        assert await drm_gem_shmem_get_pages_sgt(bo) is sgt  # cached
        assert bo.pages_use_count == 2  # the sgt holds one
        segs = segments(sgt)
        assert sum(length for _, length in segs) == bo.size
        # The segments cover exactly the object's pages, in order.
        pfns = [pa // SZ_4K + i for pa, length in segs for i in range(length // SZ_4K)]
        assert pfns == bo.pages
        # Canonical layout: big contiguous chunks merged into one segment.
        assert len(segs) == 1
        await drm_gem_shmem_unpin(bo)
        assert bo.pages_pin_count == 0 and not bo.gpu_pages_pinned()
        assert bo.pages is not None  # the sgt still uses the pages
        await drm_gem_object_put(bo)
        assert phys.nr_free == phys.nr_pages

    run_clean(scenario)


def test_non_canonical_layouts_scatter_deterministically() -> None:
    def layout(strategy_value: int) -> list[tuple[int, int]]:
        out: dict[str, list[tuple[int, int]]] = {}

        async def scenario(k: Kernel) -> None:
            PhysMem(size=64 << 20).install()
            bo = await new_bo(8 * SZ_2M)
            sgt = await drm_gem_shmem_get_pages_sgt(bo)
            assert isinstance(sgt, SgTable)
            out["segs"] = segments(sgt)
            await drm_gem_object_put(bo)

        run_clean(scenario, strategy=FixedData(strategy_value))
        return out["segs"]

    one = layout(1234)
    assert layout(1234) == one  # same choice, same pages, same sg table
    assert len(one) > 1 and len({length for _, length in one}) > 1  # varied chunk sizes
    assert layout(0) != one and len(layout(0)) == 1
    assert layout(99) != one


def test_layout_comes_from_the_strategy_and_replays() -> None:
    async def scenario(k: Kernel) -> None:
        PhysMem(size=16 << 20).install()
        bo = await new_bo(SZ_2M)
        assert await drm_gem_shmem_pin(bo) == 0
        await drm_gem_shmem_unpin(bo)
        await drm_gem_object_put(bo)

    k = run_clean(scenario, strategy=RandomWalk(5))
    assert len([c for c in k.choices if c < 0]) == 1  # one data choice: the layout


def test_unpinned_pages_are_released_when_the_use_count_drops_to_zero() -> None:
    async def scenario(k: Kernel) -> None:
        phys = PhysMem(size=16 << 20).install()
        bo = await new_bo(4 * SZ_4K)
        assert await drm_gem_shmem_pin(bo) == 0
        assert await drm_gem_shmem_pin(bo) == 0
        assert (bo.pages_use_count, bo.pages_pin_count) == (2, 2)
        pfn = bo.pages[0] if bo.pages else -1
        await drm_gem_shmem_unpin(bo)
        await drm_gem_shmem_unpin(bo)
        assert bo.pages is None and phys.state[pfn - phys.base_pfn] == FRAME_FREE
        await drm_gem_object_put(bo)

    run_clean(scenario)


def test_get_pages_failure_returns_enomem() -> None:
    async def scenario(k: Kernel) -> None:
        PhysMem(size=16 << 20).install()
        bo = await new_bo(SZ_4K)
        assert await drm_gem_shmem_pin(bo) == -ENOMEM
        assert bo.pages_use_count == 0 and bo.pages_pin_count == 0
        await drm_gem_object_put(bo)

    # Allocation #1 is the BO, #2 the page read-in.
    run_clean(scenario, config=KernelConfig(alloc_fail_nth=2))


def test_dram_exhaustion_fails_cleanly() -> None:
    async def scenario(k: Kernel) -> None:
        phys = PhysMem(size=2 * SZ_2M).install()
        bo = await new_bo(8 * SZ_2M)
        sgt = await drm_gem_shmem_get_pages_sgt(bo)
        assert isinstance(sgt, ErrPtr) and sgt.err == -ENOMEM
        assert phys.nr_free == phys.nr_pages
        await drm_gem_object_put(bo)

    run_clean(scenario)


def test_freeing_a_pinned_object_warns() -> None:
    async def scenario(k: Kernel) -> None:
        PhysMem(size=16 << 20).install()
        bo = await new_bo(SZ_4K)
        assert await drm_gem_shmem_pin(bo) == 0
        assert await drm_gem_shmem_pin(bo) == 0
        await drm_gem_object_put(bo)

    k = run(scenario, config=KernelConfig(warn_fatal=False))
    # drm_WARN_ON(pages_use_count), and the page the extra pin held is leaked.
    assert [f.kind for f in k.failures] == ["warn", "leak"]
    assert k.failures[1].message == "physical memory still allocated at teardown: 1 gem page(s)"


def test_exclusive_vm_bo_shares_the_root_resv_and_holds_a_reference() -> None:
    async def scenario(k: Kernel) -> None:
        PhysMem(size=16 << 20).install()
        root = DrmGemObject(0, "vm-root")
        bo = await new_bo(SZ_4K, exclusive_vm_root_gem=root)
        assert bo.exclusive_vm_root_gem is root and bo.resv is root.resv
        assert root.refcount.refcount.refs == 2
        assert bo.gpuva_lock is bo.gpuva_list_lock
        async with bo.gpuva_list_lock:
            pass
        assert to_panthor_bo(bo) is bo
        await drm_gem_object_put(bo)
        assert root.refcount.refcount.refs == 1
        await drm_gem_object_put(root)

    run_clean(scenario)


def test_gpuva_list_lock_is_one_lockdep_class() -> None:
    async def scenario(k: Kernel) -> None:
        PhysMem(size=16 << 20).install()
        a = await new_bo(SZ_4K, "a")
        b = await new_bo(SZ_4K, "b")
        assert a.gpuva_list_lock.dep_map.key == b.gpuva_list_lock.dep_map.key
        await mutex_lock(a.gpuva_list_lock)
        await a.gpuva_list_lock.unlock()
        await drm_gem_object_put(a)
        await drm_gem_object_put(b)

    run_clean(scenario)


def test_import_pins_the_exporter_and_destroy_unpins_it() -> None:
    async def scenario(k: Kernel) -> None:
        phys = PhysMem(size=16 << 20).install()
        exporter = await new_bo(4 * SZ_4K, "exporter")
        imported = await drm_gem_prime_import(
            exporter, "imported", lambda sz, nm: panthor_gem_create_object(sz, nm)
        )
        assert isinstance(imported, PanthorGemObject)
        assert imported.import_attach is not None and imported.resv is exporter.resv
        assert exporter.pages_pin_count == 1 and exporter.refcount.refcount.refs == 2
        # The importer's sg table is the exporter's pages; its own pages are never read in.
        sgt = await drm_gem_shmem_get_pages_sgt(imported)
        assert isinstance(sgt, SgTable) and imported.pages is None
        pfns = [pa // SZ_4K + i for pa, n in segments(sgt) for i in range(n // SZ_4K)]
        assert pfns == exporter.pages
        await drm_gem_object_put(imported)
        assert exporter.pages_pin_count == 0 and exporter.refcount.refcount.refs == 1
        await drm_gem_object_put(exporter)
        assert phys.nr_free == phys.nr_pages

    run_clean(scenario)


def test_pin_of_an_imported_object_warns() -> None:
    async def scenario(k: Kernel) -> None:
        PhysMem(size=16 << 20).install()
        exporter = await new_bo(SZ_4K, "exporter")
        imported = await drm_gem_prime_import(exporter, "imported")
        assert not isinstance(imported, ErrPtr)
        await drm_gem_shmem_pin(imported)

    k = run(scenario)
    assert k.failures[0].kind == "warn"


def test_pages_to_segments_merges_runs_only() -> None:
    segs = pages_to_segments([10, 11, 12, 20, 21, 5])
    assert [(s.page_link, s.length) for s in segs] == [(10, 3 * SZ_4K), (20, 2 * SZ_4K), (5, SZ_4K)]
