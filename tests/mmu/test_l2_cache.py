"""The GPU's L2 cache model: what it holds, what cleans and invalidates it, and its oracle."""

from __future__ import annotations

import pytest

from panthor_testbed.mmu import regs as R
from panthor_testbed.mmu.hw.gpu_access import GPU_EXEC, GPU_READ, GPU_WRITE
from panthor_testbed.mmu.hw.gpu_control import GpuControl
from panthor_testbed.mmu.io_pgtable import IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE
from panthor_testbed.sched import Kernel, udelay
from panthor_testbed.sched.core.harness import run

from .test_gpu_access import AS, VA, Rig, do_operation, run_clean

CACHED = IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE
STALE = "bad-gpu-access:stale-l2-line"


def _stale(k: Kernel) -> list[str]:
    return [f.signature for f in k.failures if f.signature.startswith(STALE)]


def test_a_read_after_a_cpu_write_hits_the_stale_line() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=CACHED)
        assert await rig.hw.access(AS, VA + 0x100, GPU_READ) == rig.pa_of(0x100)
        rig.hw.l2.cpu_write(rig.pa_of(0x110))  # same 64-byte line
        await rig.hw.access(AS, VA + 0x100, GPU_READ)

    k = run(scenario)
    assert _stale(k) == [f"{STALE}:read"]
    assert "hit a stale L2 line" in k.failures[0].message
    assert "cached at step" in k.failures[0].report


def test_another_line_is_not_stale() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=CACHED)
        await rig.hw.access(AS, VA + 0x100, GPU_READ)
        rig.hw.l2.cpu_write(rig.pa_of(0x140))  # the next line
        await rig.hw.access(AS, VA + 0x100, GPU_EXEC)
        await rig.teardown()

    run_clean(scenario)


def test_a_cpu_write_before_the_gpu_caches_the_line_is_seen() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=CACHED)
        rig.hw.l2.cpu_write(rig.pa_of(0x100))
        await rig.hw.access(AS, VA + 0x100, GPU_READ)
        await rig.hw.access(AS, VA + 0x100, GPU_READ)
        await rig.teardown()

    run_clean(scenario)


@pytest.mark.parametrize("op", [R.AS_COMMAND_FLUSH_PT, R.AS_COMMAND_FLUSH_MEM])
def test_flush_pt_and_flush_mem_clean_and_invalidate_the_l2(op: int) -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=CACHED)
        await rig.hw.access(AS, VA + 0x100, GPU_WRITE)
        assert await do_operation(rig.hw, AS, VA, 0x1000, op) == 0
        assert not rig.hw.l2.lines
        rig.hw.l2.cpu_write(rig.pa_of(0x100))
        await rig.hw.access(AS, VA + 0x100, GPU_READ)
        await rig.teardown()

    run_clean(scenario)


def test_unlock_does_not_touch_the_l2() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=CACHED)
        await rig.hw.access(AS, VA + 0x100, GPU_READ)
        assert await do_operation(rig.hw, AS, VA, 0x1000, R.AS_COMMAND_UNLOCK) == 0
        rig.hw.l2.cpu_write(rig.pa_of(0x100))
        await rig.hw.access(AS, VA + 0x100, GPU_READ)

    assert _stale(run(scenario)) == [f"{STALE}:read"]


def test_uncached_mappings_bypass_the_l2() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=IOMMU_READ | IOMMU_WRITE)
        await rig.hw.access(AS, VA + 0x100, GPU_WRITE)
        assert not rig.hw.l2.lines
        rig.hw.l2.cpu_write(rig.pa_of(0x100))
        await rig.hw.access(AS, VA + 0x100, GPU_READ)
        await rig.teardown()

    run_clean(scenario)


def test_writing_back_a_dirty_line_over_a_cpu_write_is_reported() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=CACHED)
        await rig.hw.access(AS, VA + 0x100, GPU_WRITE)
        rig.hw.l2.cpu_write(rig.pa_of(0x100))
        rig.hw.l2.clean("test")

    k = run(scenario)
    assert _stale(k) == [f"{STALE}:write-back"]
    assert "undoes the CPU's write" in k.failures[0].report


def test_a_clean_line_is_dropped_silently_and_a_reset_loses_dirty_ones() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=CACHED)
        await rig.hw.access(AS, VA + 0x100, GPU_READ)
        rig.hw.l2.cpu_write(rig.pa_of(0x100))
        rig.hw.l2.clean_invalidate("test")  # clean line: nothing to write back
        await rig.hw.access(AS, VA + 0x200, GPU_WRITE)
        rig.hw.l2.cpu_write(rig.pa_of(0x200))
        rig.hw.soft_reset()  # the dirty line is lost, not written back
        assert not rig.hw.l2.lines
        await rig.teardown()

    run_clean(scenario)


def _gpu_control_rig(flags: int) -> Kernel:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=CACHED)
        GpuControl(rig.hw).install()
        await rig.hw.access(AS, VA + 0x100, GPU_READ)
        await rig.hw.write32(R.GPU_CMD, R.GPU_FLUSH_CACHES(flags, 0, 0))
        await udelay(100)
        rig.hw.l2.cpu_write(rig.pa_of(0x100))
        await rig.hw.access(AS, VA + 0x100, GPU_READ)

    return run(scenario)


def test_gpu_flush_caches_invalidates_when_asked() -> None:
    assert _stale(_gpu_control_rig(R.CACHE_CLEAN | R.CACHE_INV)) == []
    assert _stale(_gpu_control_rig(R.CACHE_CLEAN)) == [f"{STALE}:read"]


def test_l2_power_down_cleans_and_invalidates() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=CACHED)
        GpuControl(rig.hw).install()
        await rig.hw.write32(R.L2_PWRON_LO, 1)
        await udelay(100)
        await rig.hw.access(AS, VA + 0x100, GPU_WRITE)
        await rig.hw.write32(R.L2_PWROFF_LO, 1)
        await udelay(100)
        assert not rig.hw.l2.lines
        rig.hw.l2.cpu_write(rig.pa_of(0x100))
        await rig.hw.access(AS, VA + 0x100, GPU_READ)

    assert _stale(run(scenario)) == []


def test_a_line_is_64_bytes() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=CACHED)
        await rig.hw.access(AS, VA + 0x100, GPU_READ)
        rig.hw.l2.cpu_write(rig.pa_of(0x138))  # the last word of the same 64-byte line
        await rig.hw.access(AS, VA + 0x100, GPU_READ)

    assert _stale(run(scenario)) == [f"{STALE}:read"]


def test_a_write_hitting_a_stale_line_is_reported_as_a_write() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=CACHED)
        await rig.hw.access(AS, VA + 0x100, GPU_READ)
        await k.sleep_ns(10)
        rig.hw.l2.cpu_write(rig.pa_of(0x100))
        await rig.hw.access(AS, VA + 0x100, GPU_WRITE)

    k = run(scenario)
    assert _stale(k) == [f"{STALE}:write"]
    assert k.failures[0].message.startswith("GPU WRITE at VA")
    # The report says when the CPU wrote the line (a step after the GPU cached it).
    report = k.failures[0].report
    cached = int(report.split("cached at step ")[1].split()[0])
    wrote = int(report.split("last at step ")[1].split()[0])
    assert wrote > cached > 0


def test_a_write_to_a_clean_line_makes_it_dirty() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=CACHED)
        await rig.hw.access(AS, VA + 0x100, GPU_READ)  # cached clean
        await rig.hw.access(AS, VA + 0x100, GPU_WRITE)  # now dirty
        rig.hw.l2.cpu_write(rig.pa_of(0x100))
        rig.hw.l2.clean("test")

    assert _stale(run(scenario)) == [f"{STALE}:write-back"]


def test_a_flush_writes_dirty_lines_back_before_dropping_them() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=CACHED)
        await rig.hw.access(AS, VA + 0x100, GPU_WRITE)
        rig.hw.l2.cpu_write(rig.pa_of(0x100))
        await do_operation(rig.hw, AS, VA, 0x1000, R.AS_COMMAND_FLUSH_PT)

    assert _stale(run(scenario)) == [f"{STALE}:write-back"]


def test_a_clean_leaves_the_lines_clean_and_counts() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=CACHED)
        l2 = rig.hw.l2
        before = l2.flushes
        await rig.hw.access(AS, VA + 0x100, GPU_WRITE)
        l2.clean("first")
        assert l2.flushes == before + 1 and not l2.lines[rig.pa_of(0x100) >> 6].dirty
        rig.hw.l2.cpu_write(rig.pa_of(0x100))
        l2.clean("second")  # nothing dirty: no write-back over the CPU's write
        assert l2.flushes == before + 2
        await rig.hw.access(AS, VA + 0x100, GPU_READ)  # but the line is stale

    assert _stale(run(scenario)) == [f"{STALE}:read"]
