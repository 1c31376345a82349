"""The io-pgtable bench runs (quick sizes) and reports its two figures with their baseline."""

from __future__ import annotations

from panthor_testbed.fuzz.bench import BenchOptions
from panthor_testbed.fuzz.bench_mmu import _get_pgsize, _pt_count, pgtable_figures
from panthor_testbed.mmu.sizes import SZ_1G, SZ_2M, SZ_4K


def test_pgtable_bench_reports_both_figures_against_dict_insert() -> None:
    figures = pgtable_figures(BenchOptions(quick=True))
    assert [f.name for f in figures] == ["pgtable-map-2m", "pgtable-map-4k"]
    for f in figures:
        assert f.baseline == "dict-insert" and f.value > 0 and (f.baseline_value or 0) > 0
        assert f.to_json()["ratio"] is not None


def test_bench_helpers_follow_the_seed() -> None:
    assert _get_pgsize(0x1000, SZ_2M) == (SZ_4K, 511)
    assert _get_pgsize(SZ_2M, 4 * SZ_2M) == (SZ_2M, 4)
    assert _get_pgsize(SZ_1G - SZ_2M, SZ_1G) == (SZ_2M, 1)
    assert _get_pgsize(0, SZ_4K) == (SZ_4K, 1)
    # 1 GiB at a 512 GiB-aligned VA: 1 L1 + 1 L2 + 512 L3 tables.
    assert _pt_count(0x80_0000_0000, SZ_1G) == 514
