"""The GPU's MMU registers: AS commands and their latency, stuck AS_ACTIVE, the lock region
rounding, MMU/GPU interrupt lines, power, unplug and soft reset."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from panthor_testbed.mmu import regs as R
from panthor_testbed.mmu.hw.mmu_hw import (
    MaliHw,
    MaliHwConfig,
    lock_region_decode,
    lock_region_encode,
    register_name,
)
from panthor_testbed.mmu.physmem import PhysMem
from panthor_testbed.mmu.sizes import U64_MAX, lower_32_bits, upper_32_bits
from panthor_testbed.sched import Canonical, Kernel, read_poll_timeout
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.errno import ETIMEDOUT


class FixedData(Canonical):
    """Canonical scheduling, every data choice answered with ``value`` (clamped)."""

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


def new_hw(**cfg: Any) -> MaliHw:
    phys = PhysMem(size=4 << 20).install()
    return MaliHw(phys, MaliHwConfig(**cfg)).install()


async def wait_ready(hw: MaliHw, as_nr: int) -> int:
    """panthor's wait_ready(): poll AS_STATUS every 10 us for 100 ms."""
    ret, _ = await read_poll_timeout(
        lambda: hw.read32(R.AS_STATUS(as_nr)),
        lambda v: not v & R.AS_STATUS_AS_ACTIVE,
        10,
        100_000,
        atomic=True,
    )
    return ret


# ---------------------------------------------------------------- lock region


@pytest.mark.parametrize(
    ("start", "size", "value", "region"),
    [
        # SEMANTICS note 9's worked example: width 14 covers [0, 32K).
        (0x1000, 0x1000, 14, (0, 0x8000)),
        # Bit `width` stays in the value; the hardware ignores it.
        (0x4000, 0x1000, 0x4000 | 14, (0, 0x8000)),
        (0x10000, 0x10000, 0x10000 | 15, (0x10000, 0x20000)),
        # Crossing a 128K boundary needs a 256K region.
        (0x1F000, 0x2000, 17, (0, 0x40000)),
        (0x2000_0000, 0x20_0000, 0x2000_0000 | 20, (0x2000_0000, 0x2020_0000)),
        # as_enable()/as_disable()'s FLUSH_MEM over everything.
        (0, U64_MAX, 63, (0, 1 << 64)),
        # region_end wraps in u64 arithmetic, as in the C code.
        (0x1000, U64_MAX, 14, (0, 0x8000)),
    ],
)
def test_lock_region_rounding(start: int, size: int, value: int, region: tuple[int, int]) -> None:
    assert lock_region_encode(start, size) == value
    assert lock_region_decode(value) == region


def test_lock_region_of_size_zero_writes_nothing() -> None:
    assert lock_region_encode(0x1000, 0) is None


def test_lock_region_decode_clamps_to_the_32k_minimum() -> None:
    assert lock_region_decode(0x123000 | 3) == (0x120000, 0x128000)


@given(st.integers(0, (1 << 48) - 1), st.integers(1, 1 << 40))
def test_lock_region_is_the_smallest_aligned_block_covering_it(start: int, size: int) -> None:
    base, end = lock_region_decode(lock_region_encode(start, size) or 0)
    assert base <= start and start + size <= end
    span = end - base
    assert span >= 1 << 15 and span & (span - 1) == 0 and base % span == 0
    # Half of it would not do: either too small or the range crosses its middle.
    half = span // 2
    assert span == 1 << 15 or (start // half) != ((start + size - 1) // half)


# ---------------------------------------------------------------- registers and commands


def test_identity_registers() -> None:
    async def scenario(k: Kernel) -> None:
        hw = new_hw(va_bits=48, pa_bits=40, as_present=0xFF)
        assert await hw.read32(R.GPU_MMU_FEATURES) == 0x2830
        assert R.GPU_MMU_FEATURES_VA_BITS(0x2830) == 48 and R.GPU_MMU_FEATURES_PA_BITS(0x2830) == 40
        assert await hw.read32(R.GPU_AS_PRESENT) == 0xFF

    run_clean(scenario)


def test_as_registers_are_staged_until_update_completes() -> None:
    async def scenario(k: Kernel) -> None:
        hw = new_hw()
        transtab = 0x1_2345_6000
        await hw.write32(R.AS_TRANSTAB_LO(3), lower_32_bits(transtab))
        await hw.write32(R.AS_TRANSTAB_HI(3), upper_32_bits(transtab))
        await hw.write32(R.AS_TRANSCFG_LO(3), R.AS_TRANSCFG_ADRMODE_AARCH64_4K)
        assert await hw.read32(R.AS_TRANSTAB_LO(3)) == 0x2345_6000
        assert await hw.read32(R.AS_TRANSTAB_HI(3)) == 1
        a = hw.as_[3]
        assert a.cur_transtab == 0 and not a.enabled
        await hw.write32(R.AS_COMMAND(3), R.AS_COMMAND_UPDATE)
        assert await hw.read32(R.AS_STATUS(3)) == R.AS_STATUS_AS_ACTIVE
        t0 = k.now
        assert await wait_ready(hw, 3) == 0
        assert a.cur_transtab == transtab and a.enabled
        assert k.now - t0 >= 1_000  # the canonical latency, 1 us

    run_clean(scenario)


def test_command_latency_is_a_strategy_choice() -> None:
    def scenario_for(out: dict[str, int]) -> Callable[[Kernel], Awaitable[None]]:
        async def scenario(k: Kernel) -> None:
            hw = new_hw()
            await hw.write32(R.AS_COMMAND(1), R.AS_COMMAND_FLUSH_MEM)
            t0 = k.now
            assert await wait_ready(hw, 1) == 0
            out["waited"] = k.now - t0

        return scenario

    fast: dict[str, int] = {}
    slow: dict[str, int] = {}
    run_clean(scenario_for(fast))
    k = run_clean(scenario_for(slow), strategy=FixedData(2))
    assert fast["waited"] < 20_000 <= 500_000 <= slow["waited"]
    # one data choice, value 2, recorded for replay; the others: the thread goes on
    # while the command's completion is pending
    assert [c for c in k.choices if c < 0] == [-3]


def test_stuck_as_active_makes_wait_ready_time_out() -> None:
    async def scenario(k: Kernel) -> None:
        hw = new_hw()
        hw.inject_stuck_as_active(2)
        await hw.write32(R.AS_COMMAND(2), R.AS_COMMAND_FLUSH_PT)
        t0 = k.now
        assert await wait_ready(hw, 2) == -ETIMEDOUT
        assert k.now - t0 >= 100_000_000  # the 100 ms poll, in virtual time
        assert await hw.read32(R.AS_STATUS(2)) == R.AS_STATUS_AS_ACTIVE
        # Other address spaces are not affected.
        await hw.write32(R.AS_COMMAND(1), R.AS_COMMAND_FLUSH_PT)
        assert await wait_ready(hw, 1) == 0
        hw.soft_reset()
        assert await hw.read32(R.AS_STATUS(2)) == 0

    run_clean(scenario)


def test_stuck_probability_is_drawn_from_the_strategy() -> None:
    async def scenario(k: Kernel) -> None:
        hw = new_hw(stuck_probability=0.5)
        await hw.write32(R.AS_COMMAND(1), R.AS_COMMAND_UNLOCK)
        assert await wait_ready(hw, 1) == -ETIMEDOUT

    k = run_clean(scenario, strategy=FixedData(1))
    assert k.choices[0] == -2


def test_command_while_as_active_is_a_finding() -> None:
    async def scenario(k: Kernel) -> None:
        hw = new_hw()
        await hw.write32(R.AS_COMMAND(1), R.AS_COMMAND_FLUSH_MEM)
        await hw.write32(R.AS_COMMAND(1), R.AS_COMMAND_UPDATE)

    k = run(scenario)
    assert [f.kind for f in k.failures] == ["invariant"]
    assert "AS1: AS_COMMAND UPDATE written while AS_ACTIVE (FLUSH_MEM in flight)" in (
        k.failures[0].message
    )


def test_lock_then_flush_unlocks_and_lockaddr_is_latched_at_issue() -> None:
    async def scenario(k: Kernel) -> None:
        hw = new_hw()
        region = lock_region_encode(0x20_0000, 0x1000)
        assert region is not None
        await hw.write32(R.AS_LOCKADDR_LO(1), lower_32_bits(region))
        await hw.write32(R.AS_LOCKADDR_HI(1), upper_32_bits(region))
        await hw.write32(R.AS_COMMAND(1), R.AS_COMMAND_LOCK)
        await hw.write32(R.AS_LOCKADDR_LO(1), 0)  # too late to change the LOCK
        assert await wait_ready(hw, 1) == 0
        assert hw.as_[1].locked == (0x20_0000, 0x20_8000)
        await hw.write32(R.AS_COMMAND(1), R.AS_COMMAND_FLUSH_PT)
        assert hw.as_[1].locked is not None  # until the flush completes
        assert await wait_ready(hw, 1) == 0
        assert hw.as_[1].locked is None

    run_clean(scenario)


# ---------------------------------------------------------------- interrupts


def test_mmu_irq_line_fires_on_stat_going_non_zero_including_unmask() -> None:
    async def scenario(k: Kernel) -> None:
        hw = new_hw()
        raised: list[int] = []
        hw.set_mmu_irq_handler(lambda: raised.append(hw.mmu_stat))
        assert hw.latch_fault(1, 0x1000, 0xC3 | (2 << 8))  # masked: latched, no line
        assert raised == [] and await hw.read32(R.MMU_INT_RAWSTAT) == 0b10
        await hw.write32(R.MMU_INT_MASK, 0xFFFF)
        assert raised == [0b10]
        assert await hw.read32(R.MMU_INT_STAT) == 0b10
        assert not hw.latch_fault(1, 0x2000, 0xC8)  # the first fault stays latched
        assert await hw.read32(R.AS_FAULTADDRESS_LO(1)) == 0x1000
        assert hw.latch_fault(2, 0x3000, 0xC3)  # STAT already non-zero: no new edge
        assert raised == [0b10]
        await hw.write32(R.MMU_INT_CLEAR, 0b110)
        assert await hw.read32(R.MMU_INT_STAT) == 0
        hw.latch_fault(4, 0x4000, 0xC3)
        assert raised == [0b10, 0b10000]
        await hw.write32(R.MMU_INT_MASK, 0)  # PANTHOR_IRQ_HANDLER's hard handler
        await hw.write32(R.MMU_INT_MASK, 0xFFFF & ~0b10000)  # a faulty AS stays masked
        assert raised == [0b10, 0b10000]

    run_clean(scenario)


def test_soft_reset_command_resets_the_mmu_and_raises_reset_completed() -> None:
    async def scenario(k: Kernel) -> None:
        hw = new_hw()
        raised: list[int] = []
        hw.set_gpu_irq_handler(lambda: raised.append(hw.gpu_stat))
        a = hw.as_[1]
        await hw.write32(R.AS_TRANSTAB_LO(1), 0x8000_0000)
        await hw.write32(R.AS_TRANSCFG_LO(1), R.AS_TRANSCFG_ADRMODE_AARCH64_4K)
        await hw.write32(R.AS_COMMAND(1), R.AS_COMMAND_UPDATE)
        assert await wait_ready(hw, 1) == 0
        hw.latch_fault(1, 0x1000, 0xC3)
        await hw.write32(R.MMU_INT_MASK, 0xFFFF)
        hw.inject_stuck_as_active(2)
        await hw.write32(R.AS_COMMAND(2), R.AS_COMMAND_FLUSH_MEM)
        await hw.write32(R.GPU_INT_CLEAR, R.GPU_IRQ_RESET_COMPLETED)
        await hw.write32(R.GPU_INT_MASK, R.GPU_IRQ_RESET_COMPLETED)
        await hw.write32(R.GPU_CMD, R.GPU_SOFT_RESET)
        ret, _ = await read_poll_timeout(
            lambda: hw.read32(R.GPU_INT_RAWSTAT),
            lambda v: bool(v & R.GPU_IRQ_RESET_COMPLETED),
            10,
            100_000,
        )
        assert ret == 0 and raised == [R.GPU_IRQ_RESET_COMPLETED]
        assert not a.enabled and a.transtab == 0 and a.cur_transtab == 0
        assert await hw.read32(R.MMU_INT_RAWSTAT) == 0 and await hw.read32(R.MMU_INT_MASK) == 0
        assert await hw.read32(R.AS_STATUS(2)) == 0  # no longer stuck

    run_clean(scenario)


# ---------------------------------------------------------------- power and unplug


def test_register_access_while_powered_off_is_a_finding() -> None:
    async def scenario(k: Kernel) -> None:
        hw = new_hw()
        hw.power_off()
        await hw.read32(R.AS_STATUS(1))

    k = run(scenario)
    assert [f.kind for f in k.failures] == ["invariant"]
    assert k.failures[0].message == "MMIO read of AS_STATUS(1) while powered off"


def test_register_access_after_unplug_is_a_finding() -> None:
    async def scenario(k: Kernel) -> None:
        hw = new_hw()
        await hw.write32(R.MMU_INT_MASK, 0xFFFF)
        hw.unplug()
        await hw.write32(R.MMU_INT_MASK, 0)

    k = run(scenario)
    assert [f.kind for f in k.failures] == ["invariant"]
    assert "MMIO write of MMU_INT_MASK after the device was unplugged" in k.failures[0].message


def test_power_cycle_loses_register_state() -> None:
    async def scenario(k: Kernel) -> None:
        hw = new_hw()
        await hw.write32(R.MMU_INT_MASK, 0xFFFF)
        await hw.write32(R.AS_TRANSTAB_LO(1), 0x1000)
        hw.power_off()
        hw.power_on()
        assert await hw.read32(R.MMU_INT_MASK) == 0
        assert await hw.read32(R.AS_TRANSTAB_LO(1)) == 0

    run_clean(scenario)


def test_register_names() -> None:
    assert register_name(R.AS_STATUS(3)) == "AS_STATUS(3)"
    assert register_name(R.AS_TRANSTAB_HI(0)) == "AS_TRANSTAB_HI(0)"
    assert register_name(R.MMU_INT_CLEAR) == "MMU_INT_CLEAR"
    assert R.AS_STATUS(1) == 0x2468 and R.AS_COMMAND(0) == 0x2418


def test_unmodelled_register_is_a_model_error() -> None:
    async def scenario(k: Kernel) -> None:
        hw = new_hw()
        with pytest.raises(ValueError, match="unmodelled"):
            await hw.read32(0x700)

    run_clean(scenario)
