"""panthor_mmu.c, AS and HW operations: alloc_pt .. panthor_vm_flush_all.

Each test names the seed function and the behaviour its C code defines:
register sequences are read off the trace (``gpu_write`` events), slot state
off ``ptdev->mmu->as``.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from panthor_testbed.mmu import panthor_mmu
from panthor_testbed.mmu import regs as R
from panthor_testbed.mmu.hw.mmu_hw import lock_region_decode
from panthor_testbed.mmu.panthor_device import PanthorDevice
from panthor_testbed.mmu.panthor_mmu import (
    U64_MAX,
    PanthorVm,
    PanthorVmOpCtx,
    alloc_pt,
    free_pt,
    get_pgsize,
    lock_region,
    mmu_hw_do_operation,
    mmu_hw_do_operation_locked,
    panthor_mmu_as_disable,
    panthor_mmu_as_enable,
    panthor_mmu_as_fault_mask,
    panthor_mmu_fault_mask,
    panthor_vm_active,
    panthor_vm_as,
    panthor_vm_cleanup_op_ctx,
    panthor_vm_create,
    panthor_vm_flush_all,
    panthor_vm_flush_range,
    panthor_vm_has_unhandled_faults,
    panthor_vm_idle,
    panthor_vm_is_unusable,
    panthor_vm_page_size,
    panthor_vm_prepare_unmap_op_ctx,
    panthor_vm_put,
    panthor_vm_release_as_locked,
    write_cmd,
)
from panthor_testbed.mmu.physmem import FRAME_FREE, physmem
from panthor_testbed.sched import Kernel, KernelConfig, mutex_lock, mutex_unlock, udelay
from panthor_testbed.sched.drm.drm_drv import drm_dev_unplug
from panthor_testbed.sched.errno import EBUSY, ENODEV, ETIMEDOUT
from panthor_testbed.sched.lib.list import list_is_on

from .driver_fixture import (
    RegLog,
    assert_clean,
    assert_warns,
    resets,
    run_dev,
    user_vm,
)

NO_WARN = KernelConfig(warn_fatal=False)
SZ_4K = 0x1000
SZ_2M = 0x200000
SZ_1G = 0x40000000

# GPU_MMU_FEATURES of the default hardware: 48 VA bits.
TRANSCFG_48 = (
    R.AS_TRANSCFG_PTW_MEMATTR_WB
    | R.AS_TRANSCFG_PTW_RA
    | R.AS_TRANSCFG_ADRMODE_AARCH64_4K
    | R.AS_TRANSCFG_INA_BITS(55 - 48)
)


def lo_hi(name: str, as_nr: int, value: int) -> list[tuple[str, int]]:
    return [(f"{name}_LO({as_nr})", value & 0xFFFFFFFF), (f"{name}_HI({as_nr})", value >> 32)]


def cmd(as_nr: int, c: int) -> tuple[str, int]:
    return (f"AS_COMMAND({as_nr})", c)


def lock_seq(as_nr: int, region: int) -> list[tuple[str, int]]:
    return [*lo_hi("AS_LOCKADDR", as_nr, region), cmd(as_nr, R.AS_COMMAND_LOCK)]


def expected_lockaddr(start: int, size: int) -> int:
    """The smallest naturally aligned power-of-two block of at least 32K covering the range,
    found by search (not by the driver's formula): (start with the low width bits cleared)
    | width, width = log2(block) - 1."""
    end = start + size - 1
    k = 15
    while (start >> k) != (end >> k):
        k += 1
    width = k - 1
    return (start & ~((1 << width) - 1) & U64_MAX) | width


async def active_vm(ptdev: PanthorDevice) -> PanthorVm:
    vm = await user_vm(ptdev)
    assert await panthor_vm_active(vm) == 0
    return vm


async def drop(vm: PanthorVm) -> None:
    await panthor_vm_idle(vm)
    await panthor_vm_put(vm)


# ---------------------------------------------------------------------- lock_region


def test_lock_region_worked_example_start_4k_size_4k_is_width_14_region_0_32k() -> None:
    """SEMANTICS §12: start 0x1000, size 0x1000 -> width 14, region [0, 32K); LOCKADDR then LOCK."""

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        log = RegLog(k)
        await lock_region(ptdev, 1, 0x1000, 0x1000)
        assert log.writes("AS_") == lock_seq(1, 14)
        assert lock_region_decode(14) == (0, 32 << 10)
        assert ptdev.iomem.peek32(R.AS_LOCKADDR_LO(1)) == 14

    assert_clean(run_dev(body))


def test_lock_region_size_zero_writes_nothing() -> None:
    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        log = RegLog(k)
        await lock_region(ptdev, 1, 0x123000, 0)
        assert log.writes() == []

    assert_clean(run_dev(body))


def test_lock_region_encoding_matches_a_search_reference() -> None:
    """For random ranges (and the edges: ~0 from AS enable, whole VA space, 2M/1G blocks),
    LOCKADDR is the smallest naturally aligned >= 32K block covering the range."""
    rng = random.Random(10)
    cases = [(0, U64_MAX), (0, 1 << 48), (SZ_2M, SZ_2M), (SZ_1G - SZ_4K, 2 * SZ_4K)]
    cases += [
        (SZ_4K * rng.randrange(1 << 36), SZ_4K * rng.randrange(1, 1 << 12)) for _ in range(300)
    ]
    cases += [(rng.randrange(1 << 48), rng.randrange(1, 1 << 40)) for _ in range(100)]

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        for start, size in cases:
            log = RegLog(k)
            await lock_region(ptdev, 2, start, size)
            want = expected_lockaddr(start, size)
            assert log.writes("AS_") == lock_seq(2, want), (hex(start), hex(size))
            base, end = lock_region_decode(want)
            assert base <= start and start + size <= end

    assert_clean(run_dev(body))


# ---------------------------------------------------------------------- wait_ready, write_cmd


def test_write_cmd_waits_for_as_active_then_writes_the_command() -> None:
    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        log = RegLog(k)
        assert await write_cmd(ptdev, 1, R.AS_COMMAND_FLUSH_PT) == 0
        assert ptdev.iomem.as_[1].active  # the command is in flight
        # A second command waits for AS_ACTIVE to clear (writing while active is a finding).
        assert await write_cmd(ptdev, 1, R.AS_COMMAND_UNLOCK) == 0
        assert log.writes() == [cmd(1, R.AS_COMMAND_FLUSH_PT), cmd(1, R.AS_COMMAND_UNLOCK)]

    assert_clean(run_dev(body))


def test_wait_ready_timeout_schedules_a_reset_and_write_cmd_skips_the_write() -> None:
    """AS_ACTIVE stuck: wait_ready polls 100 ms, returns -ETIMEDOUT and schedules the reset
    (once: reset.pending); write_cmd then writes nothing."""
    out: dict[str, int] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        ptdev.iomem.inject_stuck_as_active(1)
        assert await write_cmd(ptdev, 1, R.AS_COMMAND_FLUSH_PT) == 0  # accepted, then stuck
        t0 = k.now
        log = RegLog(k)
        out["second"] = await write_cmd(ptdev, 1, R.AS_COMMAND_UNLOCK)
        out["waited_us"] = (k.now - t0) // 1000
        out["writes"] = len(log.writes())
        out["third"] = await write_cmd(ptdev, 1, R.AS_COMMAND_UNLOCK)
        await udelay(10)  # let the reset work run
        out["pending"] = ptdev.reset.pending.v
        out["resets"] = resets(k)

    k = run_dev(body)
    assert_clean(k)
    assert out["second"] == -ETIMEDOUT and out["third"] == -ETIMEDOUT
    assert out["waited_us"] >= 100_000
    assert out["writes"] == 0
    # panthor_device_schedule_reset() queues the work once while a reset is pending.
    assert out["pending"] == 1 and out["resets"] == 1


# ---------------------------------------------------------------------- mmu_hw_do_operation*


def test_mmu_hw_do_operation_locked_locks_the_region_runs_the_op_and_waits() -> None:
    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        assert ptdev.mmu is not None
        await mutex_lock(ptdev.mmu.as_.slots_lock)
        log = RegLog(k)
        assert (
            await mmu_hw_do_operation_locked(ptdev, 3, 0x1000, 0x1000, R.AS_COMMAND_FLUSH_PT) == 0
        )
        assert log.writes() == [*lock_seq(3, 14), cmd(3, R.AS_COMMAND_FLUSH_PT)]
        assert not ptdev.iomem.as_[3].active  # waited for the flush
        log.mark()
        # UNLOCK does not lock a region first.
        assert await mmu_hw_do_operation_locked(ptdev, 3, 0x1000, 0x1000, R.AS_COMMAND_UNLOCK) == 0
        assert log.writes() == [cmd(3, R.AS_COMMAND_UNLOCK)]
        log.mark()
        # No AS: nothing to do.
        assert await mmu_hw_do_operation_locked(ptdev, -1, 0, 0x1000, R.AS_COMMAND_FLUSH_PT) == 0
        assert log.writes() == []
        await mutex_unlock(ptdev.mmu.as_.slots_lock)

    assert_clean(run_dev(body))


def test_mmu_hw_do_operation_locked_asserts_slots_lock() -> None:
    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        await mmu_hw_do_operation_locked(ptdev, 1, 0, 0x1000, R.AS_COMMAND_FLUSH_PT)

    assert_warns(run_dev(body, NO_WARN), "lockdep_assert_held(mmu->as.slots_lock)")


def test_mmu_hw_do_operation_returns_the_last_wait_and_takes_slots_lock() -> None:
    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await active_vm(ptdev)
        log = RegLog(k)
        assert await mmu_hw_do_operation(vm, 0x40000, 0x8000, R.AS_COMMAND_FLUSH_MEM) == 0
        assert log.writes() == [*lock_seq(1, 262144 | 14), cmd(1, R.AS_COMMAND_FLUSH_MEM)]
        # The final wait times out: that is what it returns.
        ptdev.iomem.inject_stuck_as_active(1, commands=2)
        assert await mmu_hw_do_operation(vm, 0, 0x1000, R.AS_COMMAND_FLUSH_PT) == -ETIMEDOUT
        ptdev.iomem.soft_reset()
        await panthor_vm_idle(vm)
        ptdev.iomem.as_[1].stuck_next = 0
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))


# ---------------------------------------------------------------------- as_enable / as_disable


def test_as_enable_flushes_all_then_programs_transtab_memattr_transcfg_and_updates() -> None:
    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        assert ptdev.mmu is not None
        await mutex_lock(ptdev.mmu.as_.slots_lock)
        log = RegLog(k)
        tt, tc, ma = 0x1_2345_6000, 0xABCD_0000_1234, 0x1122_3344_5566_7788
        assert await panthor_mmu_as_enable(ptdev, 2, tt, tc, ma) == 0
        want = lock_seq(2, 63)  # lock_region(0, ~0ULL): width 63
        want += [cmd(2, R.AS_COMMAND_FLUSH_MEM)]
        want += (
            lo_hi("AS_TRANSTAB", 2, tt) + lo_hi("AS_MEMATTR", 2, ma) + lo_hi("AS_TRANSCFG", 2, tc)
        )
        want += [cmd(2, R.AS_COMMAND_UPDATE)]
        assert log.writes() == want
        await mutex_unlock(ptdev.mmu.as_.slots_lock)

    assert_clean(run_dev(body))


def test_as_disable_flushes_all_then_unmaps_the_as() -> None:
    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        assert ptdev.mmu is not None
        await mutex_lock(ptdev.mmu.as_.slots_lock)
        log = RegLog(k)
        assert await panthor_mmu_as_disable(ptdev, 4) == 0
        want = [*lock_seq(4, 63), cmd(4, R.AS_COMMAND_FLUSH_MEM)]
        want += lo_hi("AS_TRANSTAB", 4, 0) + lo_hi("AS_MEMATTR", 4, 0)
        want += lo_hi("AS_TRANSCFG", 4, R.AS_TRANSCFG_ADRMODE_UNMAPPED)
        want += [cmd(4, R.AS_COMMAND_UPDATE)]
        assert log.writes() == want
        await mutex_unlock(ptdev.mmu.as_.slots_lock)

    assert_clean(run_dev(body))


@pytest.mark.parametrize("fn", ["enable", "disable"])
def test_as_enable_disable_stop_when_the_flush_fails(fn: str) -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        assert ptdev.mmu is not None
        await mutex_lock(ptdev.mmu.as_.slots_lock)
        ptdev.iomem.inject_stuck_as_active(2)  # the LOCK of the FLUSH_MEM never completes
        log = RegLog(k)
        if fn == "enable":
            out["ret"] = await panthor_mmu_as_enable(ptdev, 2, 0x1000, 1, 2)
        else:
            out["ret"] = await panthor_mmu_as_disable(ptdev, 2)
        out["writes"] = log.writes()
        await mutex_unlock(ptdev.mmu.as_.slots_lock)

    assert_clean(run_dev(body))
    assert out["ret"] == -ETIMEDOUT
    assert out["writes"] == lock_seq(2, 63)  # no FLUSH_MEM, no TRANSTAB, no UPDATE


# ---------------------------------------------------------------------- masks and flags


def test_fault_masks() -> None:
    """panthor_mmu_fault_mask keeps bits 15:0 (16..31 are REQ_COMPLETE); the AS bit is BIT(as)."""
    assert panthor_mmu_fault_mask(None, 0xFFFF_FFFF) == 0xFFFF  # type: ignore[arg-type]
    assert panthor_mmu_fault_mask(None, ~0) == 0xFFFF  # type: ignore[arg-type]
    assert panthor_mmu_fault_mask(None, 0x0003_0004) == 4  # type: ignore[arg-type]
    assert [panthor_mmu_as_fault_mask(None, i) for i in (0, 1, 15)] == [1, 2, 0x8000]  # type: ignore[arg-type]


def test_has_unhandled_faults_and_is_unusable_read_the_flags() -> None:
    out: list[bool] = []

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        out.extend([await panthor_vm_has_unhandled_faults(vm), await panthor_vm_is_unusable(vm)])
        vm.unhandled_fault = True
        vm.unusable = True
        out.extend([await panthor_vm_has_unhandled_faults(vm), await panthor_vm_is_unusable(vm)])
        vm.unusable = False
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == [False, False, True, True]


def test_page_size_is_4k_and_vm_as_is_the_slot() -> None:
    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        assert panthor_vm_page_size(vm) == SZ_4K
        assert await panthor_vm_as(vm) == -1
        assert await panthor_vm_active(vm) == 0
        assert await panthor_vm_as(vm) == 1
        await drop(vm)

    assert_clean(run_dev(body))


# ---------------------------------------------------------------------- release_as_locked


def test_release_as_locked_frees_the_slot_and_resets_the_vm() -> None:
    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mmu = ptdev.mmu
        assert mmu is not None
        vm = await active_vm(ptdev)
        await panthor_vm_idle(vm)  # on the LRU now
        assert list_is_on(vm.as_.lru_node, mmu.as_.lru_list)
        await mutex_lock(mmu.as_.slots_lock)
        log = RegLog(k)
        await panthor_vm_release_as_locked(vm)
        assert log.writes() == []  # releasing a slot does not touch the hardware
        assert mmu.as_.slots[1].vm is None and mmu.as_.alloc_mask.v == 0
        assert vm.as_.id == -1 and vm.as_.active_cnt.refs == 0
        assert not list_is_on(vm.as_.lru_node, mmu.as_.lru_list)
        await mutex_unlock(mmu.as_.slots_lock)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))


def test_release_as_locked_warns_on_an_unbound_vm() -> None:
    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        assert ptdev.mmu is not None
        vm = await user_vm(ptdev)
        await mutex_lock(ptdev.mmu.as_.slots_lock)
        await panthor_vm_release_as_locked(vm)
        await mutex_unlock(ptdev.mmu.as_.slots_lock)
        await panthor_vm_put(vm)

    assert_warns(run_dev(body, NO_WARN), "vm.as_.id < 0")


# ---------------------------------------------------------------------- panthor_vm_active


def test_vm_active_takes_the_first_free_slot_above_as0_and_enables_it() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mmu = ptdev.mmu
        assert mmu is not None
        a = await user_vm(ptdev)
        b = await user_vm(ptdev)
        log = RegLog(k)
        assert await panthor_vm_active(a) == 0
        out["writes_a"] = log.writes()
        assert await panthor_vm_active(b) == 0
        out["ids"] = (a.as_.id, b.as_.id)
        out["mask"] = mmu.as_.alloc_mask.v
        out["slots"] = (mmu.as_.slots[1].vm is a, mmu.as_.slots[2].vm is b)
        out["cnt"] = (a.as_.active_cnt.refs, b.as_.active_cnt.refs)
        out["ttbr"] = a.pgtbl_ops.cfg.arm_lpae_s1_cfg.ttbr
        out["memattr"] = a.memattr
        # The hardware now translates through a's page tables.
        out["cur_transtab"] = ptdev.iomem.as_[1].cur_transtab
        out["enabled"] = ptdev.iomem.as_[1].enabled
        await drop(a)
        await drop(b)

    assert_clean(run_dev(body))
    assert out["ids"] == (1, 2) and out["mask"] == 0b110
    assert out["slots"] == (True, True) and out["cnt"] == (1, 1)
    ttbr, memattr = out["ttbr"], out["memattr"]
    assert isinstance(ttbr, int) and isinstance(memattr, int)
    want = [*lock_seq(1, 63), cmd(1, R.AS_COMMAND_FLUSH_MEM)]
    want += lo_hi("AS_TRANSTAB", 1, ttbr) + lo_hi("AS_MEMATTR", 1, memattr)
    want += [*lo_hi("AS_TRANSCFG", 1, TRANSCFG_48), cmd(1, R.AS_COMMAND_UPDATE)]
    assert out["writes_a"] == want
    assert out["cur_transtab"] == ttbr and out["enabled"]


def test_vm_active_coherent_device_adds_ptw_sh_os() -> None:
    out: list[tuple[str, int]] = []

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        log = RegLog(k)
        vm = await active_vm(ptdev)
        out.extend(log.writes("AS_TRANSCFG_LO"))
        await drop(vm)

    assert_clean(run_dev(body, coherent=True))
    assert out == [("AS_TRANSCFG_LO(1)", (TRANSCFG_48 | R.AS_TRANSCFG_PTW_SH_OS) & 0xFFFFFFFF)]


def test_vm_active_fast_path_takes_no_lock_and_writes_nothing() -> None:
    """An active VM: refcount_inc_not_zero succeeds before slots_lock (here held by the
    caller itself: taking it again would deadlock)."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        assert ptdev.mmu is not None
        vm = await active_vm(ptdev)
        log = RegLog(k)
        await mutex_lock(ptdev.mmu.as_.slots_lock)
        out["ret"] = await panthor_vm_active(vm)
        await mutex_unlock(ptdev.mmu.as_.slots_lock)
        out["cnt"] = vm.as_.active_cnt.refs
        out["writes"] = log.writes()
        await panthor_vm_idle(vm)
        await drop(vm)

    assert_clean(run_dev(body))
    assert out == {"ret": 0, "cnt": 2, "writes": []}


def test_vm_active_on_a_bound_idle_vm_reuses_its_slot_without_reprogramming() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mmu = ptdev.mmu
        assert mmu is not None
        vm = await active_vm(ptdev)
        await panthor_vm_idle(vm)
        log = RegLog(k)
        out["ret"] = await panthor_vm_active(vm)
        out["state"] = (
            vm.as_.id,
            vm.as_.active_cnt.refs,
            list_is_on(vm.as_.lru_node, mmu.as_.lru_list),
        )
        out["writes"] = log.writes()
        await drop(vm)

    assert_clean(run_dev(body))
    assert out == {"ret": 0, "state": (1, 1, False), "writes": []}


def test_vm_active_puts_the_mcu_vm_on_as0() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mcu = await panthor_vm_create(ptdev, True, 0, 1 << 32, 0, 1 << 32)
        assert isinstance(mcu, PanthorVm)
        user = await user_vm(ptdev)
        assert await panthor_vm_active(user) == 0
        assert await panthor_vm_active(mcu) == 0
        out["ids"] = (mcu.as_.id, user.as_.id)
        await drop(mcu)
        await drop(user)

    assert_clean(run_dev(body))
    assert out["ids"] == (0, 1)


def test_vm_active_mcu_vm_warns_if_as0_is_taken_and_takes_it_anyway() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        assert ptdev.mmu is not None
        mcu = await panthor_vm_create(ptdev, True, 0, 1 << 32, 0, 1 << 32)
        mcu2 = await panthor_vm_create(ptdev, True, 0, 1 << 32, 0, 1 << 32)
        assert isinstance(mcu, PanthorVm) and isinstance(mcu2, PanthorVm)
        assert await panthor_vm_active(mcu) == 0
        out["ret"] = await panthor_vm_active(mcu2)
        out["ids"] = (mcu.as_.id, mcu2.as_.id, ptdev.mmu.as_.slots[0].vm is mcu2)
        await drop(mcu2)
        await drop(mcu)

    k = run_dev(body, NO_WARN)
    assert out == {"ret": 0, "ids": (0, 0, True)}
    assert_warns(k, "alloc_mask.v & BIT(0)")


def test_vm_active_evicts_the_lru_head_when_no_slot_is_free() -> None:
    """as_present = AS0..AS2: two user slots. A and B idle (LRU: A, B); C takes A's slot."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mmu = ptdev.mmu
        assert mmu is not None
        a = await user_vm(ptdev)
        b = await user_vm(ptdev)
        c = await user_vm(ptdev)
        for vm in (a, b):
            assert await panthor_vm_active(vm) == 0
        await panthor_vm_idle(a)
        await panthor_vm_idle(b)
        out["lru"] = [v is a for v in mmu.as_.lru_list]
        log = RegLog(k)
        out["ret"] = await panthor_vm_active(c)
        out["ids"] = (a.as_.id, b.as_.id, c.as_.id)
        out["slot1"] = mmu.as_.slots[1].vm is c
        out["lru_after"] = [v is b for v in mmu.as_.lru_list]
        out["transtab"] = log.writes("AS_TRANSTAB_LO")
        out["c_ttbr"] = c.pgtbl_ops.cfg.arm_lpae_s1_cfg.ttbr & 0xFFFFFFFF
        await drop(c)
        await panthor_vm_put(a)
        await panthor_vm_put(b)

    assert_clean(run_dev(body, as_present=0b111))
    assert out["lru"] == [True, False]
    assert out["ret"] == 0 and out["ids"] == (-1, 2, 1) and out["slot1"]
    assert out["lru_after"] == [True]
    # The evicted VM's slot is re-enabled for C (no as_disable in between).
    assert out["transtab"] == [("AS_TRANSTAB_LO(1)", out["c_ttbr"])]


def test_vm_active_with_every_slot_active_warns_and_returns_ebusy() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        a = await active_vm(ptdev)
        b = await user_vm(ptdev)
        log = RegLog(k)
        out["ret"] = await panthor_vm_active(b)
        out["writes"] = log.writes()
        out["b"] = (b.as_.id, b.as_.active_cnt.refs)
        await drop(a)
        await panthor_vm_put(b)

    k = run_dev(body, NO_WARN, as_present=0b11)
    assert out == {"ret": -EBUSY, "writes": [], "b": (-1, 0)}
    assert_warns(k, "not lru_vm")


def test_vm_active_on_an_unplugged_device_is_enodev() -> None:
    out: dict[str, int] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        await drm_dev_unplug(ptdev.base)
        out["ret"] = await panthor_vm_active(vm)
        out["id"] = vm.as_.id
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == {"ret": -ENODEV, "id": -1}


def test_vm_active_reenables_a_faulty_as_clearing_and_unmasking_its_interrupt() -> None:
    """A fault on AS1 (through the real MMU IRQ) disables it and masks bit 1; the next
    panthor_vm_active() after idle writes MMU_INT_CLEAR = BIT(1), clears faulty_mask,
    writes MMU_INT_MASK = ~faulty_mask and re-enables the AS."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mmu = ptdev.mmu
        assert mmu is not None
        vm = await active_vm(ptdev)
        ptdev.iomem.latch_fault(1, 0xDEAD000, 0xC1 | (2 << 8))
        await udelay(100)  # the IRQ thread runs the handler
        out["after_fault"] = (mmu.as_.faulty_mask, ptdev.iomem.mmu_mask, vm.unhandled_fault)
        out["as_enabled"] = ptdev.iomem.as_[1].enabled
        await panthor_vm_idle(vm)
        log = RegLog(k)
        out["ret"] = await panthor_vm_active(vm)
        out["int_writes"] = log.writes("MMU_INT")
        out["as_writes"] = [r for r, _ in log.writes("AS_COMMAND(1)")]
        await udelay(10)  # the UPDATE takes effect
        out["after"] = (mmu.as_.faulty_mask, vm.unhandled_fault, ptdev.iomem.as_[1].enabled)
        out["hw_mask"] = ptdev.iomem.mmu_mask
        await drop(vm)

    assert_clean(run_dev(body))
    assert out["after_fault"] == (0b10, 0xFFFD, True)
    assert out["as_enabled"] is False
    assert out["ret"] == 0
    assert out["int_writes"] == [("MMU_INT_CLEAR", 0b10), ("MMU_INT_MASK", 0xFFFFFFFF)]
    assert out["as_writes"] == ["AS_COMMAND(1)"] * 3  # LOCK, FLUSH_MEM, UPDATE
    assert out["after"] == (0, False, True)
    assert out["hw_mask"] == 0xFFFFFFFF


@pytest.mark.xfail(
    strict=True, reason="seed finding: faulty-AS re-enable does not restore panthor_mmu::irq::mask"
)
def test_vm_active_faulty_as_reenable_lets_the_next_fault_on_that_as_be_handled() -> None:
    """After the re-enable, a second fault on the same AS must reach the handler. In the
    seed, irq.mask still lacks the AS bit: the threaded handler filters the fault out and
    writes the narrowed mask back, so the fault stays latched until a reset (the kernel's
    fix: 8ba64cf2f358 "drm/panthor: Update panthor_mmu::irq::mask when needed")."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mmu = ptdev.mmu
        assert mmu is not None
        vm = await active_vm(ptdev)
        ptdev.iomem.latch_fault(1, 0xDEAD000, 0xC1 | (2 << 8))
        await udelay(100)
        await panthor_vm_idle(vm)
        assert await panthor_vm_active(vm) == 0
        ptdev.iomem.latch_fault(1, 0xBEEF000, 0xC1 | (3 << 8))
        await udelay(100)
        out["second"] = (vm.unhandled_fault, mmu.as_.faulty_mask, ptdev.iomem.mmu_rawstat)
        await drop(vm)

    assert_clean(run_dev(body))
    assert out["second"] == (True, 0b10, 0)


# ---------------------------------------------------------------------- panthor_vm_idle


def test_vm_idle_puts_the_vm_on_the_lru_tail_only_when_the_last_user_goes() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mmu = ptdev.mmu
        assert mmu is not None
        a = await active_vm(ptdev)
        b = await active_vm(ptdev)
        assert await panthor_vm_active(a) == 0  # two users of a
        await panthor_vm_idle(a)
        out["one_user_left"] = (a.as_.active_cnt.refs, len(mmu.as_.lru_list))
        await panthor_vm_idle(b)
        await panthor_vm_idle(a)
        out["lru"] = [v.as_.id for v in mmu.as_.lru_list]
        out["cnt"] = (a.as_.active_cnt.refs, b.as_.active_cnt.refs)
        out["ids"] = (a.as_.id, b.as_.id)  # idle VMs keep their slot
        await panthor_vm_put(a)
        await panthor_vm_put(b)

    assert_clean(run_dev(body))
    assert out["one_user_left"] == (1, 0)
    assert out["lru"] == [2, 1]  # b went idle first
    assert out["cnt"] == (0, 0) and out["ids"] == (1, 2)


def test_vm_idle_warns_when_the_vm_lost_its_slot_while_active() -> None:
    """release_as_locked() (reset, suspend) zeroes active_cnt; an idle on a VM whose slot
    was taken away while it was still counted active hits the WARN on as.id == -1."""

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        assert ptdev.mmu is not None
        vm = await active_vm(ptdev)
        await mutex_lock(ptdev.mmu.as_.slots_lock)
        vm.as_.id = -1  # the slot is gone but the count is still 1
        await mutex_unlock(ptdev.mmu.as_.slots_lock)
        await panthor_vm_idle(vm)
        vm.as_.id = 1
        await mutex_lock(ptdev.mmu.as_.slots_lock)
        await panthor_vm_release_as_locked(vm)
        await mutex_unlock(ptdev.mmu.as_.slots_lock)
        await panthor_vm_put(vm)

    assert_warns(run_dev(body, NO_WARN), "vm.as_.id == -1")


# ---------------------------------------------------------------------- get_pgsize


def ref_pgsize(addr: int, size: int) -> tuple[int, int]:
    """By walking: 2M pages while the address is 2M aligned and at least 2M is left, stopping
    at a 1G boundary; otherwise 4K pages up to the next 2M boundary (or the end)."""
    if addr % SZ_2M == 0 and size >= SZ_2M:
        n, a = 0, addr
        while size - (a - addr) >= SZ_2M and (n == 0 or a % SZ_1G):
            n += 1
            a += SZ_2M
        return SZ_2M, n
    n, a = 0, addr
    while size - (a - addr) >= SZ_4K and (n == 0 or a % SZ_2M):
        n += 1
        a += SZ_4K
    return SZ_4K, n


pages = st.integers(min_value=0, max_value=(1 << 36) - 1).map(lambda p: p * SZ_4K)
near_blocks = st.builds(
    lambda base, d: (base * SZ_2M + d * SZ_4K) & ((1 << 48) - 1),
    st.integers(0, 1 << 27),
    st.integers(-600, 600),
)
sizes = st.one_of(
    st.integers(1, 1 << 10).map(lambda n: n * SZ_4K),
    st.integers(1, 1 << 11).map(lambda n: n * SZ_2M),
    st.integers(1, 4 << 30),
)


@given(st.one_of(pages, near_blocks), sizes)
@example(SZ_1G - SZ_2M, 2 * SZ_2M)  # 2M pages stop at the 1G boundary
@example(SZ_2M, SZ_2M - SZ_4K)  # aligned but less than 2M: 4K pages
@example(SZ_2M - SZ_4K, SZ_2M)  # unaligned: 4K pages up to the 2M boundary
@example(3 * SZ_1G, 5 * SZ_1G)  # 1G aligned: a whole table of 2M pages
def test_get_pgsize_matches_a_walking_reference(addr: int, size: int) -> None:
    assert get_pgsize(addr, size) == ref_pgsize(addr, size)


@given(st.one_of(pages, near_blocks), st.integers(1, 1 << 13).map(lambda n: n * SZ_4K))
@example(SZ_1G - SZ_2M, 4 * SZ_2M)
def test_get_pgsize_chunks_tile_the_range_without_crossing_a_table(addr: int, size: int) -> None:
    off = 0
    while off < size:
        pgsize, count = get_pgsize(addr + off, size - off)
        start, end = addr + off, addr + off + pgsize * count
        assert count >= 1 and end <= addr + size
        table = SZ_1G if pgsize == SZ_2M else SZ_2M  # one io-pgtable table's reach
        assert start // table == (end - 1) // table
        off += pgsize * count
    assert off == size


# ---------------------------------------------------------------------- flush_range, flush_all


def test_flush_range_locks_the_range_and_flushes_page_tables() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        log = RegLog(k)
        out["unbound"] = (await panthor_vm_flush_range(vm, 0x1000, 0x1000), log.writes())
        assert await panthor_vm_active(vm) == 0
        log.mark()
        out["ret"] = await panthor_vm_flush_range(vm, 0x1000, 0x1000)
        out["writes"] = log.writes()
        log.mark()
        out["all"] = (await panthor_vm_flush_all(vm), log.writes())
        await drop(vm)

    assert_clean(run_dev(body))
    assert out["unbound"] == (0, [])
    assert out["ret"] == 0
    assert out["writes"] == [*lock_seq(1, 14), cmd(1, R.AS_COMMAND_FLUSH_PT)]
    # flush_all covers [mm_start, mm_start + mm_range) = [0, 2^48): width 47.
    assert out["all"] == (0, [*lock_seq(1, 47), cmd(1, R.AS_COMMAND_FLUSH_PT)])


def test_flush_range_skips_silently_once_unplugged() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await active_vm(ptdev)
        await drm_dev_unplug(ptdev.base)
        log = RegLog(k)
        out["ret"] = await panthor_vm_flush_range(vm, 0, 0x10000)
        out["writes"] = log.writes()
        await drop(vm)

    assert_clean(run_dev(body))
    assert out == {"ret": 0, "writes": []}


# ---------------------------------------------------------------------- alloc_pt, free_pt


def test_alloc_pt_pops_reserved_pages_in_order_and_zeroes_them() -> None:
    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        ctx = PanthorVmOpCtx()
        # An unmap op ctx with an unaligned start and end reserves two pages.
        assert await panthor_vm_prepare_unmap_op_ctx(ctx, vm, 0x1000, SZ_2M) == 0
        assert ctx.rsvd_page_tables.count == 2 and ctx.rsvd_page_tables.pages is not None
        first, second = ctx.rsvd_page_tables.pages
        first.words[5] = 0xDEAD
        vm.op_ctx = ctx
        assert await alloc_pt(vm, SZ_4K, 0) is first
        assert first.words[5] == 0
        assert await alloc_pt(vm, SZ_4K, 0) is second
        assert ctx.rsvd_page_tables.ptr == 2
        vm.op_ctx = None
        # The pages now belong to the caller (io-pgtable): give them back to pt_cache.
        free_pt(vm, first, SZ_4K)
        free_pt(vm, second, SZ_4K)
        await panthor_vm_cleanup_op_ctx(ctx, vm)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))


@pytest.mark.parametrize("case", ["no-op-ctx", "bad-size", "pool-empty"])
def test_alloc_pt_warns_and_returns_null(case: str) -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        ctx = PanthorVmOpCtx()
        if case != "no-op-ctx":
            vm.op_ctx = ctx
        out["page"] = await alloc_pt(vm, SZ_4K * 2 if case == "bad-size" else SZ_4K, 0)
        vm.op_ctx = None
        await panthor_vm_put(vm)

    k = run_dev(body, NO_WARN)
    assert out["page"] is None
    want = {"no-op-ctx": "not vm.op_ctx", "bad-size": "size != SZ_4K", "pool-empty": "drm_WARN_ON("}
    assert_warns(k, want[case])


def test_alloc_pt_allocates_the_root_from_the_page_allocator_and_free_pt_frees_it() -> None:
    """The PGD (root_page_table NULL) comes from alloc_pages(), not pt_cache; free_pt() of
    the root frees it and clears root_page_table."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        cache = panthor_mmu.pt_cache
        assert cache is not None
        live = cache.live
        vm = await user_vm(ptdev)
        root = vm.root_page_table
        out["cache_untouched"] = cache.live == live
        out["root_is_pgd"] = root is vm.pgtbl_ops.pgd
        out["ledger"] = k.mem.ledger[id(root)].what
        pa = root.phys
        free_pt(vm, root, SZ_4K)
        out["cleared"] = vm.root_page_table is None
        out["freed"] = physmem().frame_state(pa) == FRAME_FREE
        # Give the VM a new root, which panthor_vm_free() frees through free_io_pgtable_ops.
        vm.pgtbl_ops.pgd = await alloc_pt(vm, SZ_4K, 0)
        out["new_root"] = vm.root_page_table is vm.pgtbl_ops.pgd
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == {
        "cache_untouched": True,
        "root_is_pgd": True,
        "ledger": "alloc_pages() page",
        "cleared": True,
        "freed": True,
        "new_root": True,
    }
