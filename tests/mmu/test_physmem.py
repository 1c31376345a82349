"""Physical memory: frame states and owners, the buddy allocator, poisoning, the pt slab."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from panthor_testbed.mmu.physmem import (
    FRAME_FREE,
    FRAME_KERNEL,
    MAX_PAGE_ORDER,
    PAGE_POISON_WORD,
    SLAB_POISON_WORD,
    KernelPage,
    PhysMem,
    alloc_pages,
    free_pages,
    memset,
    page_address,
    physmem,
    virt_to_phys,
)
from panthor_testbed.mmu.sizes import SZ_4K
from panthor_testbed.sched import (
    __GFP_ZERO,
    GFP_KERNEL,
    Kernel,
    KernelConfig,
    is_freed,
    kmem_cache_alloc,
    kmem_cache_alloc_bulk,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    kmem_cache_free_bulk,
    kmemleak_ignore,
)
from panthor_testbed.sched.core.harness import run


def run_clean(scenario: Callable[[Kernel], Awaitable[None]], **kw: Any) -> Kernel:
    k = run(scenario, **kw)
    assert k.failures == [], "\n".join(f.message + "\n" + f.report for f in k.failures)
    return k


def test_buddy_allocator_hands_out_ascending_frames_and_coalesces() -> None:
    phys = PhysMem(size=8 << 20, base=0x8000_0000)  # two order-10 blocks
    assert phys.nr_free == 2048
    got = [phys._alloc_block(0) for _ in range(4)]
    assert got == [0, 1, 2, 3]
    big = phys._alloc_block(MAX_PAGE_ORDER)
    assert big == 1024  # the second 4 MiB block
    assert phys._alloc_block(MAX_PAGE_ORDER) == -1  # no other 4 MiB block left
    for idx in got:
        phys._free_block(idx, 0)
    # Everything coalesced back into one order-10 block at frame 0.
    assert phys.free_area[MAX_PAGE_ORDER] == {0: None}
    assert all(not d for d in phys.free_area[:MAX_PAGE_ORDER])
    phys._free_block(big, MAX_PAGE_ORDER)
    assert phys.nr_free == 2048


def test_odd_sized_dram_is_fully_usable() -> None:
    phys = PhysMem(size=(1024 + 3) * SZ_4K)
    blocks = [phys._alloc_block(0) for _ in range(1027)]
    assert sorted(blocks) == list(range(1027))
    assert phys._alloc_block(0) == -1


def test_alloc_pages_is_ledgered_zeroed_or_poisoned_and_freed() -> None:
    seen: dict[str, Any] = {}

    async def scenario(k: Kernel) -> None:
        phys = PhysMem(size=4 << 20).install()
        assert physmem() is phys
        p = await alloc_pages(GFP_KERNEL, 0)
        z = await alloc_pages(GFP_KERNEL | __GFP_ZERO, 1)
        assert p is not None and z is not None
        assert page_address(p) is p and virt_to_phys(p) == p.phys == phys.base
        assert p.words == [PAGE_POISON_WORD] * 512
        assert z.words == [0] * 1024 and z.order == 1
        assert phys.frame_state(p.phys) == FRAME_KERNEL and phys.frame_owner(p.phys) is p
        assert phys.kernel_page(z.phys + SZ_4K) is z
        memset(p, 0, SZ_4K)
        assert p.words == [0] * 512
        seen["pa"] = p.phys
        free_pages(p, 0)
        free_pages(z, 1)
        assert is_freed(p)
        assert phys.frame_state(seen["pa"]) == FRAME_FREE
        assert phys.nr_free == phys.nr_pages

    run_clean(scenario)


def test_double_free_pages_is_a_use_after_free_finding() -> None:
    async def scenario(k: Kernel) -> None:
        PhysMem(size=4 << 20).install()
        p = await alloc_pages(GFP_KERNEL, 0)
        assert p is not None
        free_pages(p, 0)
        free_pages(p, 0)

    k = run(scenario)
    assert [f.kind for f in k.failures] == ["use-after-free"]


def test_unfreed_page_is_a_leak() -> None:
    async def scenario(k: Kernel) -> None:
        PhysMem(size=4 << 20).install()
        await alloc_pages(GFP_KERNEL, 0)

    k = run(scenario)
    assert [f.kind for f in k.failures] == ["leak", "leak"]
    assert "alloc_pages() page" in k.failures[0].message  # the allocation ledger
    assert k.failures[1].message == (
        "physical memory still allocated at teardown: 1 kernel page(s)"
    )


def test_pages_hidden_from_kmemleak_are_still_reported_by_physmem() -> None:
    """panthor's alloc_pt() does kmemleak_ignore() on page-table pages."""

    async def scenario(k: Kernel) -> None:
        phys = PhysMem(size=4 << 20).install()
        cache = await kmem_cache_create("pt", SZ_4K, SZ_4K, backing=phys.slab_backing())
        assert cache is not None
        page = await kmem_cache_alloc(cache, GFP_KERNEL)
        assert isinstance(page, KernelPage)
        kmemleak_ignore(page)
        phys.mark_pgtable(page)
        cache.live -= 1  # pretend the cache was torn down cleanly
        kmem_cache_destroy(cache)

    k = run(scenario)
    assert [f.message for f in k.failures] == [
        "physical memory still allocated at teardown: 1 page-table page(s)"
    ]
    assert k.failures[0].signature == "leak:physmem:page-table"


def test_alloc_pages_can_be_failed_by_fault_injection() -> None:
    async def scenario(k: Kernel) -> None:
        PhysMem(size=4 << 20).install()
        assert await alloc_pages(GFP_KERNEL, 0) is None

    run_clean(scenario, config=KernelConfig(alloc_fail_nth=1))


def test_alloc_pages_returns_null_when_dram_is_exhausted() -> None:
    async def scenario(k: Kernel) -> None:
        PhysMem(size=SZ_4K).install()
        p = await alloc_pages(GFP_KERNEL, 0)
        assert p is not None
        assert await alloc_pages(GFP_KERNEL, 0) is None
        free_pages(p, 0)

    run_clean(scenario)


def test_page_slab_backing_gives_physical_pages_and_poisons_on_free() -> None:
    async def scenario(k: Kernel) -> None:
        phys = PhysMem(size=4 << 20).install()
        cache = await kmem_cache_create("panthor-mmu-pt", SZ_4K, SZ_4K, backing=phys.slab_backing())
        assert cache is not None
        pages: list[Any] = [None] * 3
        assert await kmem_cache_alloc_bulk(cache, GFP_KERNEL, 3, pages) == 3
        one = await kmem_cache_alloc(cache, GFP_KERNEL)
        assert isinstance(one, KernelPage)
        for p in pages:
            assert isinstance(p, KernelPage)
            assert p.words == [SLAB_POISON_WORD] * 512  # not zeroed: the driver memsets
            assert phys.frame_state(p.phys) == FRAME_KERNEL
        assert phys.nr_free == phys.nr_pages - 4
        kmem_cache_free_bulk(cache, 3, pages)
        kmem_cache_free(cache, one)
        assert phys.nr_free == phys.nr_pages
        assert all(is_freed(p) for p in pages)
        kmem_cache_destroy(cache)

    run_clean(scenario)


def test_stale_pointer_to_a_freed_slab_page_is_a_use_after_free() -> None:
    async def scenario(k: Kernel) -> None:
        phys = PhysMem(size=4 << 20).install()
        cache = await kmem_cache_create("pt", SZ_4K, SZ_4K, backing=phys.slab_backing())
        assert cache is not None
        page = await kmem_cache_alloc(cache, GFP_KERNEL)
        assert isinstance(page, KernelPage)
        kmem_cache_free(cache, page)
        kmem_cache_destroy(cache)
        memset(page, 0, SZ_4K)  # alloc_pt() on a page that went back to the cache

    k = run(scenario)
    assert [f.kind for f in k.failures] == ["use-after-free"]
    msg = k.failures[0].message
    assert "of freed pt object (allocated at mmu/test_physmem.py" in msg
    assert "in scenario, freed by T0 init" in msg


def test_iter_states_summarises_dram() -> None:
    async def scenario(k: Kernel) -> None:
        phys = PhysMem(size=16 * SZ_4K).install()
        p = await alloc_pages(GFP_KERNEL, 2)
        assert p is not None
        assert list(phys.iter_states()) == [(FRAME_KERNEL, 4), (FRAME_FREE, 12)]
        assert phys.describe(p.phys) == "kernel" and "no DRAM" in phys.describe(0)
        free_pages(p, 2)

    run_clean(scenario)
