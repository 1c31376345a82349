"""GPU memory accesses through the MMU: TLB, walks, fault encoding, and the bad-access oracle.

The driver side is played by small copies of the seed's register sequences
(``wait_ready``, ``write_cmd``, ``lock_region``, ``mmu_hw_do_operation_locked``,
``panthor_mmu_as_enable``) and of ``panthor_vm_map_pages``'s page-size split.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from panthor_testbed.mmu import regs as R
from panthor_testbed.mmu.gem_shmem import (
    PanthorGemObject,
    SgTable,
    drm_gem_shmem_get_pages_sgt,
    drm_gem_shmem_pin,
    drm_gem_shmem_unpin,
    for_each_sgtable_dma_sg,
    panthor_gem_create,
)
from panthor_testbed.mmu.hw.gpu_access import (
    GPU_ATOMIC,
    GPU_EXEC,
    GPU_READ,
    GPU_WRITE,
    GpuFault,
)
from panthor_testbed.mmu.hw.mmu_hw import MaliHw, MaliHwConfig, lock_region_encode
from panthor_testbed.mmu.io_pgtable import (
    ARM_64_LPAE_S1,
    IOMMU_CACHE,
    IOMMU_NOEXEC,
    IOMMU_READ,
    IOMMU_WRITE,
    ArmLpaeIoPgtable,
    IoPgtableCfg,
    alloc_io_pgtable_ops,
    free_io_pgtable_ops,
)
from panthor_testbed.mmu.physmem import PhysMem
from panthor_testbed.mmu.sizes import SZ_1G, SZ_2M, SZ_4K, U64_MAX, lower_32_bits, upper_32_bits
from panthor_testbed.sched import Kernel, read_poll_timeout, udelay
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.drm.drm_gem import drm_gem_object_put

AS = 1
VA = 0x10_0000_0000  # where the test BO is mapped


# ---------------------------------------------------------------- the driver's sequences


async def wait_ready(hw: MaliHw, as_nr: int) -> int:
    ret, _ = await read_poll_timeout(
        lambda: hw.read32(R.AS_STATUS(as_nr)),
        lambda v: not v & R.AS_STATUS_AS_ACTIVE,
        10,
        100_000,
        atomic=True,
    )
    return ret


async def write_cmd(hw: MaliHw, as_nr: int, cmd: int) -> int:
    status = await wait_ready(hw, as_nr)
    if not status:
        await hw.write32(R.AS_COMMAND(as_nr), cmd)
    return status


async def lock_region(hw: MaliHw, as_nr: int, start: int, size: int) -> None:
    region = lock_region_encode(start, size)
    if region is None:
        return
    await hw.write32(R.AS_LOCKADDR_LO(as_nr), lower_32_bits(region))
    await hw.write32(R.AS_LOCKADDR_HI(as_nr), upper_32_bits(region))
    await write_cmd(hw, as_nr, R.AS_COMMAND_LOCK)


async def do_operation(hw: MaliHw, as_nr: int, iova: int, size: int, op: int) -> int:
    if op != R.AS_COMMAND_UNLOCK:
        await lock_region(hw, as_nr, iova, size)
    await write_cmd(hw, as_nr, op)
    return await wait_ready(hw, as_nr)


def mair_to_memattr(mair: int, coherent: bool) -> int:
    memattr = 0
    for i in range(8):
        in_attr = (mair >> (8 * i)) & 0xFF
        outer, inner = in_attr >> 4, in_attr & 0xF
        if not (outer & 3) or not (outer & 4) or not (inner & 4):
            out_attr = (
                R.AS_MEMATTR_AARCH64_INNER_OUTER_NC
                | R.AS_MEMATTR_AARCH64_SH_MIDGARD_INNER
                | R.AS_MEMATTR_AARCH64_INNER_ALLOC_EXPL(False, False)
            )
        else:
            out_attr = R.AS_MEMATTR_AARCH64_INNER_OUTER_WB | R.AS_MEMATTR_AARCH64_INNER_ALLOC_EXPL(
                inner & 1, inner & 2
            )
            if coherent:
                out_attr |= R.AS_MEMATTR_AARCH64_SH_CPU_INNER
            else:
                out_attr |= R.AS_MEMATTR_AARCH64_SH_MIDGARD_INNER
        memattr |= out_attr << (8 * i)
    return memattr


async def as_enable(hw: MaliHw, as_nr: int, ops: ArmLpaeIoPgtable) -> int:
    va_bits = hw.config.va_bits
    transtab = ops.cfg.arm_lpae_s1_cfg.ttbr
    transcfg = (
        R.AS_TRANSCFG_PTW_MEMATTR_WB
        | R.AS_TRANSCFG_PTW_RA
        | R.AS_TRANSCFG_ADRMODE_AARCH64_4K
        | R.AS_TRANSCFG_INA_BITS(55 - va_bits)
    )
    memattr = mair_to_memattr(ops.cfg.arm_lpae_s1_cfg.mair, False)
    ret = await do_operation(hw, as_nr, 0, U64_MAX, R.AS_COMMAND_FLUSH_MEM)
    if ret:
        return ret
    for lo, hi, v in (
        (R.AS_TRANSTAB_LO, R.AS_TRANSTAB_HI, transtab),
        (R.AS_MEMATTR_LO, R.AS_MEMATTR_HI, memattr),
        (R.AS_TRANSCFG_LO, R.AS_TRANSCFG_HI, transcfg),
    ):
        await hw.write32(lo(as_nr), lower_32_bits(v))
        await hw.write32(hi(as_nr), upper_32_bits(v))
    return await write_cmd(hw, as_nr, R.AS_COMMAND_UPDATE)


def get_pgsize(addr: int, size: int) -> tuple[int, int]:
    """The seed's get_pgsize(): (pgsize, count)."""
    blk_offset = -addr % SZ_2M
    if blk_offset or size < SZ_2M:
        return SZ_4K, (min(blk_offset, size) if blk_offset else size) // SZ_4K
    blk_offset = -addr % SZ_1G or SZ_1G
    return SZ_2M, min(blk_offset, size) // SZ_2M


async def map_sgt(ops: ArmLpaeIoPgtable, iova: int, sgt: SgTable, prot: int) -> None:
    for sg in for_each_sgtable_dma_sg(sgt):
        paddr, length = sg.dma_address, sg.dma_length
        while length:
            pgsize, pgcount = get_pgsize(iova | paddr, length)
            ret, mapped = await ops.map_pages(iova, paddr, pgsize, pgcount, prot)
            assert ret == 0 and mapped
            iova += mapped
            paddr += mapped
            length -= mapped


def unmap_range(ops: ArmLpaeIoPgtable, iova: int, size: int) -> None:
    offset = 0
    while offset < size:
        pgsize, pgcount = get_pgsize(iova + offset, size - offset)
        unmapped = ops.unmap_pages(iova + offset, pgsize, pgcount)
        assert unmapped == pgsize * pgcount
        offset += unmapped


# ---------------------------------------------------------------- the test rig


class Rig:
    """One device: DRAM, GPU, a VM's io-pgtable bound to AS 1, a pinned BO mapped at VA."""

    def __init__(self) -> None:
        self.phys: PhysMem
        self.hw: MaliHw
        self.ops: ArmLpaeIoPgtable
        self.bo: PanthorGemObject
        self.irqs = 0

    async def setup(
        self, size: int = 16 * SZ_4K, prot: int = IOMMU_READ | IOMMU_WRITE, **hwcfg: Any
    ) -> None:
        self.phys = PhysMem(size=64 << 20).install()
        self.hw = MaliHw(self.phys, MaliHwConfig(**hwcfg)).install()
        self.hw.set_mmu_irq_handler(self._irq)
        await self.hw.write32(R.MMU_INT_MASK, 0xFFFF)
        cfg = IoPgtableCfg(pgsize_bitmap=SZ_4K | SZ_2M, ias=48, oas=40)
        ops = await alloc_io_pgtable_ops(ARM_64_LPAE_S1, cfg, None)
        assert ops is not None
        self.ops = ops
        bo = await panthor_gem_create(size, "bo")
        assert isinstance(bo, PanthorGemObject)
        self.bo = bo
        assert await drm_gem_shmem_pin(bo) == 0
        sgt = await drm_gem_shmem_get_pages_sgt(bo)
        assert isinstance(sgt, SgTable)
        await map_sgt(ops, VA, sgt, prot)
        assert await as_enable(self.hw, AS, ops) == 0
        assert await wait_ready(self.hw, AS) == 0

    def _irq(self) -> None:
        self.irqs += 1

    def pa_of(self, offset: int) -> int:
        assert self.bo.pages is not None
        return (self.bo.pages[offset // SZ_4K] * SZ_4K) + offset % SZ_4K

    async def flush(self, iova: int, size: int) -> None:
        assert await do_operation(self.hw, AS, iova, size, R.AS_COMMAND_FLUSH_PT) == 0

    async def teardown(self) -> None:
        free_io_pgtable_ops(self.ops)
        await drm_gem_shmem_unpin(self.bo)
        await drm_gem_object_put(self.bo)


def run_clean(scenario: Callable[[Kernel], Awaitable[None]], **kw: Any) -> Kernel:
    k = run(scenario, **kw)
    assert k.failures == [], "\n".join(f.message + "\n" + f.report for f in k.failures)
    return k


# ---------------------------------------------------------------- translation


def test_gpu_reads_and_writes_the_mapped_pinned_pages() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup()
        for off in (0, 0x123, 5 * SZ_4K + 8, 16 * SZ_4K - 1):
            assert await rig.hw.access(AS, VA + off, GPU_READ) == rig.pa_of(off)
        assert await rig.hw.access(AS, VA + 0x40, GPU_WRITE) == rig.pa_of(0x40)
        assert await rig.hw.access(AS, VA + 0x40, GPU_ATOMIC) == rig.pa_of(0x40)
        tlb = rig.hw.as_[AS].tlb
        assert tlb.hits >= 3 and len(tlb) > 0
        await rig.teardown()

    run_clean(scenario)


def test_2m_blocks_translate_too() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(size=2 * SZ_2M)
        assert rig.ops.table_pages()[-1][0] == 2  # mapped with blocks: no L3 table
        assert await rig.hw.access(AS, VA + SZ_2M + 0x1234, GPU_READ) == rig.pa_of(SZ_2M + 0x1234)
        await rig.teardown()

    run_clean(scenario)


# ---------------------------------------------------------------- faults


def test_unmapped_va_is_a_translation_fault_with_the_kernel_encoding() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup()
        hw = rig.hw
        va = VA + 64 * SZ_4K  # same L3 table, empty entry
        f = await hw.access(AS, va, GPU_READ, source_id=0x42)
        assert isinstance(f, GpuFault) and not f.stalled
        assert f.exception_type == R.DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_3
        status = await hw.read32(R.AS_FAULTSTATUS(AS))
        assert status == 0xC3 | (R.AS_FAULTSTATUS_ACCESS_TYPE_READ) | (0x42 << 16)
        assert status & 0xFF == 0xC3 and (status >> 8) & 3 == 2 and status >> 16 == 0x42
        addr = await hw.read32(R.AS_FAULTADDRESS_LO(AS))
        addr |= await hw.read32(R.AS_FAULTADDRESS_HI(AS)) << 32
        assert addr == va
        assert await hw.read32(R.MMU_INT_RAWSTAT) == 1 << AS
        assert await hw.read32(R.MMU_INT_STAT) == 1 << AS and rig.irqs == 1
        assert R.panthor_exception_name(status & 0xFF) == "TRANSLATION_FAULT_3"
        # The AS stopped translating: even a good address faults now, nothing new latched.
        again = await hw.access(AS, VA, GPU_READ)
        assert isinstance(again, GpuFault) and again.stalled
        assert await hw.read32(R.AS_FAULTADDRESS_LO(AS)) == lower_32_bits(va) and rig.irqs == 1
        # Clear, re-enable (panthor_vm_active): translating again.
        await hw.write32(R.MMU_INT_CLEAR, 1 << AS)
        assert await as_enable(hw, AS, rig.ops) == 0
        assert await hw.access(AS, VA, GPU_READ) == rig.pa_of(0)
        await rig.teardown()

    run_clean(scenario)


@pytest.mark.parametrize(
    ("va", "exception"),
    [
        (VA + SZ_2M, R.DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_2),  # no L3 table there
        (VA + SZ_1G, R.DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_1),  # no L2 table there
        (VA + (1 << 39), R.DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_0),  # no L1 table there
        (1 << 48, R.DRM_PANTHOR_EXCEPTION_ADDR_SIZE_FAULT_IN),  # beyond the 48-bit VA
    ],
)
def test_fault_level_is_where_the_walk_stopped(va: int, exception: int) -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup()
        f = await rig.hw.access(AS, va, GPU_WRITE)
        assert isinstance(f, GpuFault) and f.exception_type == exception
        assert await rig.hw.read32(R.AS_FAULTSTATUS(AS)) == exception | (3 << 8)
        await rig.teardown()

    run_clean(scenario)


@pytest.mark.parametrize(
    ("prot", "kind", "exception", "access"),
    [
        (IOMMU_READ, GPU_WRITE, R.DRM_PANTHOR_EXCEPTION_PERM_FAULT_3, 3),
        (IOMMU_READ, GPU_ATOMIC, R.DRM_PANTHOR_EXCEPTION_PERM_FAULT_3, 0),
        (IOMMU_READ | IOMMU_NOEXEC, GPU_EXEC, R.DRM_PANTHOR_EXCEPTION_PERM_FAULT_3, 1),
    ],
)
def test_permission_faults(prot: int, kind: int, exception: int, access: int) -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(prot=prot | IOMMU_CACHE)
        assert await rig.hw.access(AS, VA, GPU_READ) == rig.pa_of(0)  # reads are fine
        f = await rig.hw.access(AS, VA + 8, kind)
        assert isinstance(f, GpuFault)
        assert await rig.hw.read32(R.AS_FAULTSTATUS(AS)) == exception | (access << 8)
        await rig.teardown()

    run_clean(scenario)


def test_read_only_2m_block_is_a_level_2_permission_fault() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(size=SZ_2M, prot=IOMMU_READ)
        f = await rig.hw.access(AS, VA + 0x10, GPU_WRITE)
        assert isinstance(f, GpuFault)
        assert f.exception_type == R.DRM_PANTHOR_EXCEPTION_PERM_FAULT_2
        await rig.teardown()

    run_clean(scenario)


def test_disabled_as_faults_at_level_0() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup()
        f = await rig.hw.access(2, VA, GPU_READ)  # AS 2 was never enabled
        assert isinstance(f, GpuFault)
        assert f.exception_type == R.DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_0
        assert await rig.hw.read32(R.MMU_INT_RAWSTAT) == 1 << 2
        await rig.teardown()

    run_clean(scenario)


# ---------------------------------------------------------------- stale TLB: the oracle


def test_flushless_unmap_then_unpin_through_a_warm_tlb_is_a_bad_gpu_access() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup()
        assert await rig.hw.access(AS, VA + 0x10, GPU_READ) == rig.pa_of(0x10)  # warm the TLB
        unmap_range(rig.ops, VA, rig.bo.size)  # ... and forget panthor_vm_flush_range()
        # Still pinned: the stale entry reaches a page the BO still owns (no finding yet).
        assert await rig.hw.access(AS, VA + 0x20, GPU_READ) == rig.pa_of(0x20)
        await drm_gem_shmem_unpin(rig.bo)  # the vm_bo's pin goes
        await rig.hw.access(AS, VA + 0x30, GPU_READ)

    k = run(scenario)
    assert [f.kind for f in k.failures] == ["bad-gpu-access"]
    f = k.failures[0]
    assert f.message.startswith(f"GPU READ at VA {VA + 0x30:#x} on AS1 reached a GEM page of bo")
    assert "(not pinned)" in f.message and "via stale TLB entry" in f.message
    assert f.extra["path"] == "stale TLB entry" and f.extra["as"] == AS
    assert f.signature == "bad-gpu-access:reached:gem-unpinned:stale TLB entry"


def test_with_the_flush_the_same_access_is_a_clean_page_fault() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup()
        assert await rig.hw.access(AS, VA + 0x10, GPU_READ) == rig.pa_of(0x10)
        unmap_range(rig.ops, VA, rig.bo.size)
        await rig.flush(VA, rig.bo.size)
        await drm_gem_shmem_unpin(rig.bo)
        f = await rig.hw.access(AS, VA + 0x30, GPU_READ)
        assert isinstance(f, GpuFault)
        assert f.exception_type == R.DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_3
        assert rig.irqs == 1
        free_io_pgtable_ops(rig.ops)
        await drm_gem_object_put(rig.bo)

    run_clean(scenario)


def test_flush_of_another_range_leaves_the_stale_entry() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup()
        await rig.hw.access(AS, VA, GPU_READ)
        unmap_range(rig.ops, VA, rig.bo.size)
        await rig.flush(VA + SZ_1G, SZ_4K)  # the wrong region
        await drm_gem_shmem_unpin(rig.bo)
        await rig.hw.access(AS, VA, GPU_READ)

    k = run(scenario)
    assert [f.kind for f in k.failures] == ["bad-gpu-access"]


def test_unpin_while_still_mapped_is_a_bad_access_through_the_live_tables() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup()
        await drm_gem_shmem_unpin(rig.bo)
        await rig.hw.access(AS, VA, GPU_WRITE)

    k = run(scenario)
    assert [f.kind for f in k.failures] == ["bad-gpu-access"]
    assert k.failures[0].extra["path"] == "live page tables"


def test_page_tables_freed_under_an_enabled_as_are_reported() -> None:
    """free_io_pgtable_ops() without as_disable(): TRANSTAB points at a freed page."""

    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup()
        free_io_pgtable_ops(rig.ops)
        await rig.hw.access(AS, VA, GPU_READ)

    k = run(scenario)
    assert [f.kind for f in k.failures] == ["bad-gpu-access"]
    f = k.failures[0]
    assert "walked a level-0 table in a free frame" in f.message
    assert f.extra["path"] == "live page tables"


def test_stale_walk_cache_reaches_a_freed_table() -> None:
    """Unmapping 2M of 4K pages frees the L3 table; panthor's tlb_flush_walk is empty."""

    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup()
        await rig.hw.access(AS, VA, GPU_READ)  # caches the walk to the L3 table
        unmap_range(rig.ops, VA, SZ_2M)  # one 2M unmap: the L3 table is freed
        await rig.hw.access(AS, VA + 5 * SZ_4K, GPU_READ)  # not in the leaf TLB

    k = run(scenario)
    assert [f.kind for f in k.failures] == ["bad-gpu-access"]
    f = k.failures[0]
    assert "walked a level-3 table in a free frame" in f.message
    assert f.extra["path"] == "cached table walk (TLB walk cache)"


def test_without_a_walk_cache_the_same_access_faults() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup(walk_cache=False)
        await rig.hw.access(AS, VA, GPU_READ)
        unmap_range(rig.ops, VA, SZ_2M)
        f = await rig.hw.access(AS, VA + 5 * SZ_4K, GPU_READ)
        assert isinstance(f, GpuFault)
        assert f.exception_type == R.DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_2
        free_io_pgtable_ops(rig.ops)
        await drm_gem_shmem_unpin(rig.bo)
        await drm_gem_object_put(rig.bo)

    run_clean(scenario)


# ---------------------------------------------------------------- lock region and UPDATE


def test_access_in_the_locked_region_waits_for_the_flush() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup()
        hw = rig.hw
        events: list[str] = []
        await lock_region(hw, AS, VA, SZ_4K)
        assert await wait_ready(hw, AS) == 0

        async def gpu() -> None:
            events.append("gpu: access")
            pa = await hw.access(AS, VA + 8, GPU_READ)
            events.append(f"gpu: got {pa == rig.pa_of(8)}")

        t = k.spawn(gpu, name="gpu")
        await udelay(50)  # the GPU runs and blocks on the locked region
        assert events == ["gpu: access"]
        events.append("cpu: flush")
        await write_cmd(hw, AS, R.AS_COMMAND_FLUSH_PT)
        assert await wait_ready(hw, AS) == 0
        await t.join()
        assert events == ["gpu: access", "cpu: flush", "gpu: got True"]
        await rig.teardown()

    run_clean(scenario)


def test_accesses_wait_for_an_update_in_flight() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        phys = PhysMem(size=64 << 20).install()
        rig.phys = phys
        hw = MaliHw(phys).install()
        rig.hw = hw
        cfg = IoPgtableCfg(pgsize_bitmap=SZ_4K | SZ_2M, ias=48, oas=40)
        ops = await alloc_io_pgtable_ops(ARM_64_LPAE_S1, cfg, None)
        assert ops is not None
        bo = await panthor_gem_create(SZ_4K, "bo")
        assert isinstance(bo, PanthorGemObject)
        assert await drm_gem_shmem_pin(bo) == 0
        sgt = await drm_gem_shmem_get_pages_sgt(bo)
        assert isinstance(sgt, SgTable)
        await map_sgt(ops, VA, sgt, IOMMU_READ)
        assert await as_enable(hw, AS, ops) == 0  # returns with the UPDATE in flight
        assert hw.as_[AS].busy_cmd == R.AS_COMMAND_UPDATE
        assert bo.pages is not None
        assert await hw.access(AS, VA, GPU_READ) == bo.pages[0] * SZ_4K
        free_io_pgtable_ops(ops)
        await drm_gem_shmem_unpin(bo)
        await drm_gem_object_put(bo)

    run_clean(scenario)


def test_gpu_access_while_powered_off_is_a_finding() -> None:
    async def scenario(k: Kernel) -> None:
        rig = Rig()
        await rig.setup()
        rig.hw.power_off()
        await rig.hw.access(AS, VA, GPU_READ)

    k = run(scenario)
    assert [f.kind for f in k.failures] == ["invariant"]
