"""io-pgtable figures: the cost per 4K page of mapping a 1 GiB object and unmapping it again.

Both figures run the model's ARM LPAE S1 io-pgtable inside a simulated kernel
run (tracing and lockdep off), with page tables handed out by an alloc hook
popping a pre-reserved pool, as panthor's ``alloc_pt`` does. The map loop is
``panthor_vm_map_pages()`` (one ``map_pages`` call per ``get_pgsize()`` chunk of
each sg segment), the unmap is ``panthor_vm_unmap_pages()`` over the whole range.

* ``pgtable-map-2m``: 512 segments of 2 MiB, each physically contiguous and
  none adjacent, so every segment is one 2M block entry;
* ``pgtable-map-4k``: 262144 scattered 4 KiB segments, one ``map_pages`` per page.

The baseline, ``dict-insert``, is one Python dict store: the floor for any page
table written in Python.
"""

from __future__ import annotations

import time
from typing import Any

import trio

from panthor_testbed.mmu.io_pgtable import (
    ARM_64_LPAE_S1,
    IOMMU_CACHE,
    IOMMU_READ,
    IOMMU_WRITE,
    IoPgtableCfg,
    alloc_io_pgtable_ops,
    free_io_pgtable_ops,
)
from panthor_testbed.mmu.physmem import KernelPage, PhysMem, memset
from panthor_testbed.mmu.sizes import SZ_1G, SZ_2M, SZ_4K
from panthor_testbed.sched import Kernel, KernelConfig
from panthor_testbed.sched.core.harness import arun

from .bench import BenchOptions, Figure, bench, best_of

_PA_BASE = 0x1_0000_0000


def _get_pgsize(addr: int, size: int) -> tuple[int, int]:
    """The seed's ``get_pgsize()``: ``(pgsize, count)``."""
    blk_offset = -addr % SZ_2M
    if blk_offset or size < SZ_2M:
        return SZ_4K, (min(blk_offset, size) if blk_offset else size) // SZ_4K
    blk_offset = -addr % SZ_1G or SZ_1G
    return SZ_2M, min(blk_offset, size) // SZ_2M


def _pt_count(va: int, size: int) -> int:
    """The seed's map pre-reservation: L1, L2 and L3 tables the range may need."""

    def span(shift: int) -> int:
        a = 1 << shift
        return ((va + size + a - 1) & ~(a - 1)) - (va & ~(a - 1)) >> shift

    return span(39) + span(30) + span(21)


def _map_unmap_us_per_page(total: int, chunk: int) -> float:
    """Map ``total`` bytes made of ``chunk``-sized, non-adjacent segments, unmap; us per 4K."""
    out: dict[str, float] = {}
    va = 0x80_0000_0000
    # Segments at twice their size apart: never physically adjacent, so never merged.
    segments = [(_PA_BASE + 2 * i * chunk, chunk) for i in range(total // chunk)]

    async def scenario(k: Kernel) -> None:
        phys = PhysMem(size=64 << 20).install()
        pool: list[KernelPage] = []

        async def alloc_pt(cookie: Any, size: int, gfp: int) -> KernelPage | None:
            if not pool:
                return phys.new_kernel_page(0, 0)  # the root, at init
            page = pool.pop()
            memset(page, 0, SZ_4K)
            return page

        def free_pt(cookie: Any, page: KernelPage, size: int) -> None:
            phys.release_kernel_page(page)

        cfg = IoPgtableCfg(
            pgsize_bitmap=SZ_4K | SZ_2M, ias=48, oas=40, alloc=alloc_pt, free=free_pt
        )
        ops = await alloc_io_pgtable_ops(ARM_64_LPAE_S1, cfg, None)
        assert ops is not None
        for _ in range(_pt_count(va, total)):
            page = phys.new_kernel_page(0, 0)
            assert page is not None
            pool.append(page)
        prot = IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE
        map_pages = ops.map_pages
        unmap_pages = ops.unmap_pages

        t0 = time.perf_counter()
        iova = va
        for paddr, length in segments:  # panthor_vm_map_pages()
            while length:
                pgsize, pgcount = _get_pgsize(iova | paddr, length)
                ret, mapped = await map_pages(iova, paddr, pgsize, pgcount, prot)
                assert ret == 0 and mapped
                iova += mapped
                paddr += mapped
                length -= mapped
        offset = 0
        while offset < total:  # panthor_vm_unmap_pages()
            pgsize, pgcount = _get_pgsize(va + offset, total - offset)
            unmapped = unmap_pages(va + offset, pgsize, pgcount)
            assert unmapped == pgsize * pgcount
            offset += unmapped
        out["us"] = (time.perf_counter() - t0) / (total // SZ_4K) * 1e6

        assert ops.iova_to_phys(va) == 0
        free_io_pgtable_ops(ops)
        for page in pool:
            phys.release_kernel_page(page)
        assert phys.nr_free == phys.nr_pages

    k = trio.run(lambda: arun(scenario, config=KernelConfig(trace=False, lockdep=False)))
    if k.failures:
        raise RuntimeError(k.failures[0].message)
    return out["us"]


def _dict_insert_us(n: int) -> float:
    """One Python dict store, in a loop like the ones above."""
    d: dict[int, int] = {}
    t0 = time.perf_counter()
    for i in range(n):
        d[i] = i
    return (time.perf_counter() - t0) / n * 1e6


@bench("pgtable")
def pgtable_figures(options: BenchOptions) -> list[Figure]:
    total = options.n(1 << 30, 16 << 20)
    repeats = options.n(3, 1)
    base = best_of(repeats, lambda: _dict_insert_us(total // SZ_4K))
    map2m = best_of(repeats, lambda: _map_unmap_us_per_page(total, SZ_2M))
    map4k = best_of(repeats, lambda: _map_unmap_us_per_page(total, SZ_4K))
    size = f"{total >> 20} MiB"
    return [
        Figure(
            "pgtable-map-2m",
            map2m,
            baseline="dict-insert",
            baseline_value=base,
            note=f"map + unmap per 4K page, {size} in 2M-contiguous chunks",
        ),
        Figure(
            "pgtable-map-4k",
            map4k,
            baseline="dict-insert",
            baseline_value=base,
            note=f"map + unmap per 4K page, {size} in scattered 4K pages",
        ),
    ]
