"""Partial unmaps of 2M block mappings: the seed, 8e7460eac786 (``partial-unmap-huge-page``)
and the fix proposed for what it misses (``huge-block-of-small-folios``).

An imported (PRIME) BO has no ``pages`` of its own: 8e7460eac786's
``iova_mapped_as_huge_page()`` indexes them (a NULL dereference in the
kernel); the proposed fix reads the sg table, which every BO has.
"""

from __future__ import annotations

from typing import Any

import pytest

from panthor_testbed.fuzz.bugs import installed, latent_slugs
from panthor_testbed.mmu.gem_shmem import (
    PanthorGemObject,
    drm_gem_prime_import,
    folio_size,
    page_folio,
    panthor_gem_create_object,
)
from panthor_testbed.mmu.panthor_device import PanthorDevice
from panthor_testbed.mmu.panthor_mmu import (
    panthor_vm_map_bo_range,
    panthor_vm_put,
    panthor_vm_unmap_range,
)
from panthor_testbed.sched import Kernel, KernelConfig
from panthor_testbed.sched.drm.drm_gem import drm_gem_object_put
from panthor_testbed.sched.errno import EINVAL

from .driver_fixture import failures_text, new_bo, run_dev, user_vm

SZ_4K = 0x1000
SZ_2M = 0x200000
VA = 0x200000
HOLE = VA + SZ_2M + SZ_4K  # one page inside the second 2M block

LATENT = "partial-unmap-huge-page"
PROPOSED = "huge-block-of-small-folios"


def _without(*slugs: str) -> list[str]:
    return [s for s in latent_slugs() if s not in slugs]


def _hole_in_imported_bo(out: dict[str, Any]) -> Any:
    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        exporter = await new_bo(2 * SZ_2M, "exporter")
        imp = await drm_gem_prime_import(exporter, "imported", panthor_gem_create_object)
        assert isinstance(imp, PanthorGemObject)
        out["map"] = await panthor_vm_map_bo_range(vm, imp, 0, 2 * SZ_2M, VA, 0)
        out["blocks"] = vm.pgtbl_ops.iova_to_phys(VA) >> 12 == exporter.pages[0]  # type: ignore[index]
        out["unmap"] = await panthor_vm_unmap_range(vm, HOLE, SZ_4K)
        assert exporter.pages is not None
        out["hole"] = vm.pgtbl_ops.iova_to_phys(HOLE)
        out["around"] = [
            vm.pgtbl_ops.iova_to_phys(va) >> 12 == exporter.pages[(va - VA) >> 12]
            for va in (VA + SZ_2M, HOLE + SZ_4K, VA + 2 * SZ_2M - SZ_4K)
        ]
        await panthor_vm_unmap_range(vm, VA, 2 * SZ_2M)
        await drm_gem_object_put(imp)
        await drm_gem_object_put(exporter)
        await panthor_vm_put(vm)

    return body


def test_the_seed_refuses_a_hole_in_a_block_of_an_imported_bo() -> None:
    out: dict[str, Any] = {}
    k = run_dev(_hole_in_imported_bo(out), KernelConfig(warn_fatal=False))
    assert out["unmap"] == -EINVAL and out["hole"] != 0
    assert [f.kind for f in k.failures][:1] == ["warn"], failures_text(k.failures)
    assert "Unmap of a partial large IOPTE is not allowed" in k.failures[0].message


def test_the_later_fix_dereferences_the_pages_an_imported_bo_does_not_have() -> None:
    out: dict[str, Any] = {}
    with installed(patch=_without(PROPOSED)):
        k = run_dev(_hole_in_imported_bo(out))
    f = k.primary_failure
    assert f is not None and f.kind == "exception", failures_text(k.failures)
    assert "NoneType" in f.message and "iova_mapped_as_huge_page" in f.message


def test_with_the_proposed_fix_the_hole_is_made_and_the_rest_stays_mapped() -> None:
    out: dict[str, Any] = {}
    with installed(patch=["all"]):
        k = run_dev(_hole_in_imported_bo(out))
    assert k.failures == [], failures_text(k.failures)
    assert out == {"map": 0, "blocks": True, "unmap": 0, "hole": 0, "around": [True] * 3}


@pytest.mark.parametrize("order", [0, 3, 9, 10])
def test_page_folio_is_the_chunk_or_a_pmd_of_it(order: int) -> None:
    obj = PanthorGemObject((1 << order) * SZ_4K, "bo")
    obj.page_blocks = [(0x80000 + (1 << 10), order)]
    last = 0x80000 + (1 << 10) + (1 << order) - 1
    folio = page_folio(obj, last)
    assert folio_size(folio) == SZ_4K << min(order, 9)
    assert folio.pfn <= last < folio.pfn + (1 << folio.order)
    assert folio.pfn % (1 << folio.order) == 0
