"""The driver bench runs (quick sizes) and reports its three figures against executor-decision."""

from __future__ import annotations

from panthor_testbed.fuzz.bench import BenchOptions
from panthor_testbed.fuzz.bench_driver import driver_figures, gpu_access_us


def test_driver_bench_reports_its_figures_against_executor_decision() -> None:
    figures = driver_figures(BenchOptions(quick=True))
    assert [f.name for f in figures] == ["vm-bind-async", "ioctl-vm-bind-sync", "gpu-access"]
    for f in figures:
        assert f.baseline == "executor-decision" and f.unit == "us"
        assert f.value > 0 and (f.baseline_value or 0) > 0
        assert f.to_json()["ratio"] is not None


def test_gpu_access_bench_reads_mapped_pages() -> None:
    # The body asserts every read hit a mapping (a GpuFault fails the run).
    assert gpu_access_us(32) > 0
