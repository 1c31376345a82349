"""The Mali CSF GPU as panthor_mmu.c sees it: MMU/AS registers, commands, interrupts.

Registers (``panthor_regs.h``, v6.14 ``_LO``/``_HI`` layout) are reached through
:meth:`MaliHw.read32` / :meth:`MaliHw.write32`, the model's ``gpu_read()`` /
``gpu_write()``: each access is a yield point, and an access while the GPU is
powered off or after the device was unplugged is a finding. :meth:`peek32` /
:meth:`poke32` are the synchronous, unchecked versions for tests.

Per address space: ``TRANSTAB``, ``MEMATTR``, ``TRANSCFG`` are staged and take
effect on UPDATE; ``LOCKADDR`` is latched by LOCK; ``FAULTSTATUS`` /
``FAULTADDRESS`` hold the first unacknowledged fault; ``STATUS.AS_ACTIVE`` is
set while a command runs. A command keeps AS_ACTIVE set for a latency drawn
from the strategy (``k.choose_data``: index 0 is the canonical, shortest one)
and then takes effect in a timer (hardware) callback:

* LOCK: the region decoded from LOCKADDR (:func:`lock_region_decode`, the
  hardware's rounding to a naturally aligned power of two of at least 32 KiB)
  becomes locked; GPU accesses inside it stall until it is released;
* UNLOCK, FLUSH_PT, FLUSH_MEM: the "flush region" operation: every TLB entry of
  the AS meeting the locked region is invalidated and the region unlocked
  (nothing is invalidated when no region is locked);
* UPDATE: the staged TRANSTAB/MEMATTR/TRANSCFG become the translation config
  (which also ends a fault stall), then the same flush-region operation; GPU
  accesses on the AS wait while an UPDATE is in flight.

A command written while AS_ACTIVE is set is a finding (the driver must
``wait_ready()`` first). :meth:`MaliHw.inject_stuck_as_active` (or
``MaliHwConfig.stuck_probability``, drawn from the strategy) makes commands
never complete, so ``wait_ready()`` times out as on broken hardware.

Interrupts: ``MMU_INT_RAWSTAT`` bit n latches a fault on AS n; ``MMU_INT_STAT`` is
``RAWSTAT & MASK``. The MMU line callback (:meth:`set_mmu_irq_handler`, the IRQ
object's raise function) is called synchronously whenever STAT goes from zero
to non-zero, which includes unmasking a fault latched while masked. The GPU
block has the same for ``GPU_INT_*`` (RESET_COMPLETED after ``GPU_CMD`` soft/hard
reset).

Soft reset and power cycles put every AS back to its reset state (translation
disabled, TLB empty, no lock, no pending command, stuck state cleared) and
clear ``MMU_INT_RAWSTAT``/``MMU_INT_MASK``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from ...sched.core.failure import Failure
from ...sched.core.kernel import NSEC_PER_USEC, Kernel, Timer, current_kernel, preempt
from ...sched.core.waitqueue import WaitQueue
from .. import regs as R
from ..sizes import U32_MAX, U64_MAX
from .gpu_access import GpuFault, gpu_access
from .l2_cache import L2Cache
from .tlb import Tlb

if TYPE_CHECKING:
    from ..physmem import PhysMem

_OBJECTS_KEY: Final = "mmu.hw"
LOCKADDR_WIDTH_MASK: Final = 0x3F
_MIN_LOCK_WIDTH: Final = R.AS_LOCK_REGION_MIN_SIZE.bit_length() - 2  # 14: 2**(14+1) = 32 KiB


def lock_region_encode(region_start: int, size: int) -> int | None:
    """The LOCKADDR value panthor's ``lock_region()`` writes (None when ``size == 0``).

    ``width = max(fls64(start ^ (end - 1)), ilog2(AS_LOCK_REGION_MIN_SIZE)) - 1``;
    ``region = (start & GENMASK_ULL(63, width)) | width``, in u64 arithmetic
    (``region_end = start + size`` wraps like the C code).
    """
    if not size:
        return None
    region_end = (region_start + size) & U64_MAX
    fls = (region_start ^ ((region_end - 1) & U64_MAX)).bit_length()
    width = max(fls, R.AS_LOCK_REGION_MIN_SIZE.bit_length() - 1) - 1
    region_start &= U64_MAX & ~((1 << width) - 1)
    return region_start | width


def lock_region_decode(lockaddr: int) -> tuple[int, int]:
    """The region the hardware locks for a LOCKADDR value: ``(base, end)``, end exclusive.

    The low 6 bits are ``log2(size) - 1``; the region is naturally aligned, so
    the address bits below the size are ignored (including bit ``width``, which
    the kernel leaves in). Widths below the 32 KiB minimum are treated as the
    minimum. ``end`` may be ``2**64``.
    """
    width = max(lockaddr & LOCKADDR_WIDTH_MASK, _MIN_LOCK_WIDTH)
    size = 1 << (width + 1)
    base = lockaddr & U64_MAX & ~(size - 1)
    return base, base + size


@dataclass
class MaliHwConfig:
    """Identity and timing of the simulated GPU."""

    gpu_id: int = 0xA8670000  # a Mali-G610 style GPU_ID (arch 10.8)
    va_bits: int = 48
    pa_bits: int = 40
    as_present: int = 0xFF  # 8 address spaces
    # AS command latencies; the strategy picks one per command (index 0 is canonical).
    cmd_latency_ns: tuple[int, ...] = (1 * NSEC_PER_USEC, 20 * NSEC_PER_USEC, 500 * NSEC_PER_USEC)
    cmd_latency_p_nonzero: float = 0.3
    # Probability that a command leaves AS_ACTIVE stuck (drawn from the strategy).
    stuck_probability: float = 0.0
    reset_latency_ns: int = 20 * NSEC_PER_USEC
    walk_cache: bool = True

    @property
    def mmu_features(self) -> int:
        """``GPU_MMU_FEATURES``: VA bits in 7:0, PA bits in 15:8."""
        return (self.va_bits & 0xFF) | ((self.pa_bits & 0xFF) << 8)


class AddressSpace:
    """The registers and live state of one MMU address space."""

    __slots__ = (
        "busy_cmd",
        "commands",
        "cur_memattr",
        "cur_transcfg",
        "cur_transtab",
        "faultaddress",
        "faultstatus",
        "lock_wq",
        "lockaddr",
        "locked",
        "memattr",
        "nr",
        "pending_lockaddr",
        "stalled",
        "stuck",
        "stuck_next",
        "timer",
        "tlb",
        "transcfg",
        "transtab",
    )

    def __init__(self, nr: int) -> None:
        self.nr = nr
        # GPU accesses stalled on the locked region or an UPDATE in flight.
        self.lock_wq = WaitQueue(f"AS{nr} MMU stall (locked region / UPDATE)", klass="mmu-as-stall")
        self.tlb = Tlb()
        self.stuck_next = 0
        self.commands = 0
        self.reset()

    def reset(self) -> None:
        self.transtab = 0
        self.memattr = 0
        self.lockaddr = 0
        self.transcfg = 0
        self.faultstatus = 0
        self.faultaddress = 0
        self.cur_transtab = 0
        self.cur_memattr = 0
        self.cur_transcfg = 0  # translation disabled: every access faults
        self.locked: tuple[int, int] | None = None
        self.pending_lockaddr = 0
        self.busy_cmd = -1
        self.stuck = False
        self.stalled = False
        self.timer: Timer | None = None
        self.tlb.invalidate_all()

    @property
    def active(self) -> bool:
        """``AS_STATUS.AS_ACTIVE``."""
        return self.busy_cmd >= 0

    @property
    def status(self) -> int:
        return R.AS_STATUS_AS_ACTIVE if self.busy_cmd >= 0 else 0

    @property
    def enabled(self) -> bool:
        """Translating through page tables (AArch64 4K mode took effect on UPDATE)."""
        return (self.cur_transcfg & R.AS_TRANSCFG_ADRMODE_MASK) == R.AS_TRANSCFG_ADRMODE_AARCH64_4K


IrqLine = Callable[[], None]


class RegisterBlock(Protocol):
    """Another block behind the GPU's register window (the CSF model, :mod:`.csf`).

    ``MaliHw.read32``/``write32`` hand it the registers it ``handles``, after
    their power check; soft reset and power loss reset it too.
    """

    def handles(self, reg: int) -> bool: ...

    def read(self, reg: int) -> int: ...

    def write(self, reg: int, value: int) -> None: ...

    def soft_reset(self) -> None: ...


class MaliHw:
    """The GPU's register interface, MMU, TLBs and memory port (see the module doc)."""

    def __init__(self, phys: PhysMem, config: MaliHwConfig | None = None) -> None:
        self.phys = phys
        self.config = config or MaliHwConfig()
        present = self.config.as_present
        if not present or present >> R.MAX_AS_SLOTS:
            raise ValueError("as_present must be a non-empty 32-bit mask")
        self.nr_as = present.bit_length()
        self.as_: list[AddressSpace] = [AddressSpace(i) for i in range(self.nr_as)]
        self.powered = True
        self.unplugged = False
        self.mmu_rawstat = 0
        self.mmu_mask = 0
        self.gpu_rawstat = 0
        self.gpu_mask = 0
        self.reset_timer: Timer | None = None
        self.soft_resets = 0  # GPU_CMD soft/hard resets completed (for tests)
        self.stuck_resets = 0  # injected: the next resets never complete
        self._mmu_irq: IrqLine | None = None
        self._gpu_irq: IrqLine | None = None
        self.faults: list[GpuFault] = []  # every fault latched, for tests and reports
        self.blocks: list[RegisterBlock] = []  # other register blocks (CSF), see add_block()
        self.l2 = L2Cache()

    # ------------------------------------------------------------ run binding

    def install(self, k: Kernel | None = None) -> MaliHw:
        """Make this the GPU of the run (``k.objects['mmu.hw']``)."""
        (k or current_kernel()).objects[_OBJECTS_KEY] = self
        return self

    def add_block(self, block: RegisterBlock) -> None:
        """Put another register block behind this register window."""
        self.blocks.append(block)

    def _block(self, reg: int) -> RegisterBlock | None:
        for b in self.blocks:
            if b.handles(reg):
                return b
        return None

    # ------------------------------------------------------------ interrupt lines

    def set_mmu_irq_handler(self, raise_line: IrqLine | None) -> None:
        """Connect the MMU interrupt line (called when MMU_INT_STAT becomes non-zero)."""
        self._mmu_irq = raise_line

    def set_gpu_irq_handler(self, raise_line: IrqLine | None) -> None:
        """Connect the GPU interrupt line (called when GPU_INT_STAT becomes non-zero)."""
        self._gpu_irq = raise_line

    @property
    def mmu_stat(self) -> int:
        return self.mmu_rawstat & self.mmu_mask

    @property
    def gpu_stat(self) -> int:
        return self.gpu_rawstat & self.gpu_mask

    def _set_mmu(self, rawstat: int, mask: int) -> None:
        was = self.mmu_rawstat & self.mmu_mask
        self.mmu_rawstat = rawstat & U32_MAX
        self.mmu_mask = mask & U32_MAX
        if not was and self.mmu_rawstat & self.mmu_mask and self._mmu_irq is not None:
            current_kernel().ev("irq", "mmu", f"STAT={self.mmu_rawstat & self.mmu_mask:#x}")
            self._mmu_irq()

    def _set_gpu(self, rawstat: int, mask: int) -> None:
        was = self.gpu_rawstat & self.gpu_mask
        self.gpu_rawstat = rawstat & U32_MAX
        self.gpu_mask = mask & U32_MAX
        if not was and self.gpu_rawstat & self.gpu_mask and self._gpu_irq is not None:
            current_kernel().ev("irq", "gpu", f"STAT={self.gpu_rawstat & self.gpu_mask:#x}")
            self._gpu_irq()

    def latch_fault(self, as_nr: int, va: int, faultstatus: int) -> bool:
        """Latch a fault on AS ``as_nr`` (first one wins until cleared); True if new."""
        a = self.as_[as_nr]
        bit = 1 << as_nr
        a.stalled = True
        if self.mmu_rawstat & bit:
            return False
        a.faultstatus = faultstatus & U32_MAX
        a.faultaddress = va & U64_MAX
        self._set_mmu(self.mmu_rawstat | bit, self.mmu_mask)
        return True

    # ------------------------------------------------------------ MMIO

    def _mmio_check(self, what: str, reg: int) -> None:
        if self.unplugged or not self.powered:
            k = current_kernel()
            state = "after the device was unplugged" if self.unplugged else "while powered off"
            name = register_name(reg)
            k.fail(
                Failure(
                    "invariant",
                    f"MMIO {what} of {name} {state}",
                    signature=f"invariant:mmio-{what}:{'unplugged' if self.unplugged else 'off'}",
                )
            )

    async def read32(self, reg: int) -> int:
        """``gpu_read()``: a yield point; an access while off or unplugged is a finding."""
        await preempt()
        self._mmio_check("read", reg)
        return self._read(reg)

    async def write32(self, reg: int, value: int) -> None:
        """``gpu_write()``: a yield point; an access while off or unplugged is a finding."""
        await preempt()
        self._mmio_check("write", reg)
        k = current_kernel()
        if k.tracing:
            k.ev("gpu_write", register_name(reg), f"{value & U32_MAX:#x}")
        self._write(reg, value & U32_MAX)

    def peek32(self, reg: int) -> int:
        """Read a register with no yield point and no power check (tests)."""
        return self._read(reg)

    def poke32(self, reg: int, value: int) -> None:
        """Write a register with no yield point and no power check (tests)."""
        self._write(reg, value & U32_MAX)

    def _as_reg(self, reg: int) -> tuple[AddressSpace, int] | None:
        if R.MMU_BASE <= reg < R.MMU_AS(self.nr_as):
            as_nr = (reg - R.MMU_BASE) >> R.MMU_AS_SHIFT
            if self.config.as_present >> as_nr & 1:
                return self.as_[as_nr], reg & ((1 << R.MMU_AS_SHIFT) - 1)
        return None

    def _read(self, reg: int) -> int:
        cfg = self.config
        if reg == R.GPU_ID:
            return cfg.gpu_id
        if reg == R.GPU_MMU_FEATURES:
            return cfg.mmu_features
        if reg == R.GPU_AS_PRESENT:
            return cfg.as_present
        if reg == R.GPU_INT_RAWSTAT:
            return self.gpu_rawstat
        if reg == R.GPU_INT_MASK:
            return self.gpu_mask
        if reg == R.GPU_INT_STAT:
            return self.gpu_stat
        if reg == R.GPU_STATUS:
            return 0
        if reg in (R.GPU_INT_CLEAR, R.GPU_CMD, R.MMU_INT_CLEAR):
            return 0  # write-only
        if reg == R.MMU_INT_RAWSTAT:
            return self.mmu_rawstat
        if reg == R.MMU_INT_MASK:
            return self.mmu_mask
        if reg == R.MMU_INT_STAT:
            return self.mmu_stat
        hit = self._as_reg(reg)
        if hit is None:
            blk = self._block(reg)
            if blk is not None:
                return blk.read(reg)
            raise ValueError(f"read of unmodelled GPU register {reg:#x}")
        a, off = hit
        if off == 0x00:
            return a.transtab & U32_MAX
        if off == 0x04:
            return a.transtab >> 32
        if off == 0x08:
            return a.memattr & U32_MAX
        if off == 0x0C:
            return a.memattr >> 32
        if off == 0x10:
            return a.lockaddr & U32_MAX
        if off == 0x14:
            return a.lockaddr >> 32
        if off == 0x18:
            return 0  # AS_COMMAND is write-only
        if off == 0x1C:
            return a.faultstatus
        if off == 0x20:
            return a.faultaddress & U32_MAX
        if off == 0x24:
            return a.faultaddress >> 32
        if off == 0x28:
            return a.status
        if off == 0x30:
            return a.transcfg & U32_MAX
        if off == 0x34:
            return a.transcfg >> 32
        if off in (0x38, 0x3C):
            return 0  # AS_FAULTEXTRA: not modelled, reads as zero
        raise ValueError(f"read of unmodelled AS register {reg:#x}")

    def _write(self, reg: int, value: int) -> None:
        if reg == R.GPU_INT_CLEAR:
            self._set_gpu(self.gpu_rawstat & ~value, self.gpu_mask)
            return
        if reg == R.GPU_INT_MASK:
            self._set_gpu(self.gpu_rawstat, value)
            return
        if reg == R.GPU_CMD:
            self._gpu_command(value)
            return
        if reg == R.MMU_INT_CLEAR:
            self._set_mmu(self.mmu_rawstat & ~value, self.mmu_mask)
            return
        if reg == R.MMU_INT_MASK:
            self._set_mmu(self.mmu_rawstat, value)
            return
        if reg in (R.GPU_INT_RAWSTAT, R.GPU_INT_STAT, R.MMU_INT_RAWSTAT, R.MMU_INT_STAT):
            return  # read-only registers ignore writes
        hit = self._as_reg(reg)
        if hit is None:
            blk = self._block(reg)
            if blk is not None:
                blk.write(reg, value)
                return
            raise ValueError(f"write of unmodelled GPU register {reg:#x}")
        a, off = hit
        if off == 0x00:
            a.transtab = (a.transtab & ~U32_MAX) | value
        elif off == 0x04:
            a.transtab = (a.transtab & U32_MAX) | (value << 32)
        elif off == 0x08:
            a.memattr = (a.memattr & ~U32_MAX) | value
        elif off == 0x0C:
            a.memattr = (a.memattr & U32_MAX) | (value << 32)
        elif off == 0x10:
            a.lockaddr = (a.lockaddr & ~U32_MAX) | value
        elif off == 0x14:
            a.lockaddr = (a.lockaddr & U32_MAX) | (value << 32)
        elif off == 0x18:
            self._as_command(a, value)
        elif off == 0x30:
            a.transcfg = (a.transcfg & ~U32_MAX) | value
        elif off == 0x34:
            a.transcfg = (a.transcfg & U32_MAX) | (value << 32)
        elif off in (0x1C, 0x20, 0x24, 0x28, 0x38, 0x3C):
            return  # read-only
        else:
            raise ValueError(f"write of unmodelled AS register {reg:#x}")

    # ------------------------------------------------------------ AS commands

    def inject_stuck_as_active(self, as_nr: int, commands: int = 1) -> None:
        """The next ``commands`` commands on ``as_nr`` never complete (AS_ACTIVE stuck)."""
        self.as_[as_nr].stuck_next += commands

    def _as_command(self, a: AddressSpace, cmd: int) -> None:
        k = current_kernel()
        name = R.AS_COMMAND_NAMES.get(cmd, f"{cmd:#x}")
        if a.busy_cmd >= 0:
            busy = R.AS_COMMAND_NAMES.get(a.busy_cmd, str(a.busy_cmd))
            k.fail(
                Failure(
                    "invariant",
                    f"AS{a.nr}: AS_COMMAND {name} written while AS_ACTIVE ({busy} in flight)",
                    signature=f"invariant:as-command-while-active:{name}",
                )
            )
            return
        if cmd == R.AS_COMMAND_NOP:
            return
        if cmd not in R.AS_COMMAND_NAMES:
            raise ValueError(f"AS{a.nr}: unknown AS_COMMAND {cmd:#x}")
        a.commands += 1
        a.busy_cmd = cmd
        if cmd == R.AS_COMMAND_LOCK:
            a.pending_lockaddr = a.lockaddr
        stuck = False
        if a.stuck_next > 0:
            a.stuck_next -= 1
            stuck = True
        elif self.config.stuck_probability > 0.0:
            stuck = (
                k.choose_data(
                    2, self.config.stuck_probability, what=f"AS{a.nr} {name} leaves AS_ACTIVE stuck"
                )
                == 1
            )
        if stuck:
            a.stuck = True
            k.ev("as-stuck", f"AS{a.nr}", name)
            return
        lat = self.config.cmd_latency_ns
        delay = lat[
            k.choose_data(
                len(lat), self.config.cmd_latency_p_nonzero, what=f"AS{a.nr} {name} is slow"
            )
        ]
        a.timer = k.add_timer(
            delay, functools.partial(self._as_command_done, a, cmd), f"AS{a.nr} {name}"
        )

    def _as_command_done(self, a: AddressSpace, cmd: int) -> None:
        k = current_kernel()
        a.timer = None
        a.busy_cmd = -1
        if cmd == R.AS_COMMAND_LOCK:
            a.locked = lock_region_decode(a.pending_lockaddr)
            k.ev("as-lock", f"AS{a.nr}", f"[{a.locked[0]:#x}, {a.locked[1]:#x})")
            return
        if cmd == R.AS_COMMAND_UPDATE:
            a.cur_transtab = a.transtab
            a.cur_memattr = a.memattr
            a.cur_transcfg = a.transcfg
            a.stalled = False
            k.ev("as-update", f"AS{a.nr}", f"transtab={a.transtab:#x} transcfg={a.transcfg:#x}")
            a.lock_wq.wake_all()  # accesses waiting for the new config
        elif cmd in (R.AS_COMMAND_FLUSH_PT, R.AS_COMMAND_FLUSH_MEM):
            # "Flush all L2 caches then issue a flush region command to all MMUs".
            self.l2.clean_invalidate(f"AS{a.nr} {R.AS_COMMAND_NAMES[cmd]}")
        self._flush_region(a, R.AS_COMMAND_NAMES[cmd])

    def _flush_region(self, a: AddressSpace, why: str) -> None:
        """The flush-region operation: invalidate the TLB over the locked region, unlock."""
        region = a.locked
        if region is None:
            return
        a.locked = None
        dropped = a.tlb.invalidate(region[0], region[1])
        current_kernel().ev(
            "as-flush", f"AS{a.nr}", f"{why} [{region[0]:#x}, {region[1]:#x}) dropped {dropped}"
        )
        a.lock_wq.wake_all()

    # ------------------------------------------------------------ reset and power

    def _gpu_command(self, cmd: int) -> None:
        if cmd in (R.GPU_SOFT_RESET, R.GPU_HARD_RESET):
            k = current_kernel()
            if self.stuck_resets > 0:
                self.stuck_resets -= 1
                k.ev("gpu-reset-stuck", "gpu", f"{cmd:#x}")
                return
            if self.reset_timer is not None:
                self.reset_timer.cancel()
            self.reset_timer = k.add_timer(
                self.config.reset_latency_ns, self._reset_done, "GPU soft reset"
            )
            return
        for b in self.blocks:
            run = getattr(b, "gpu_command", None)
            if run is not None and run(cmd):
                return
        raise ValueError(f"unmodelled GPU_CMD {cmd:#x}")

    def inject_stuck_reset(self, n: int = 1) -> None:
        """The next ``n`` soft/hard resets never complete (no RESET_COMPLETED)."""
        self.stuck_resets += n

    def _reset_done(self) -> None:
        self.reset_timer = None
        self.soft_resets += 1
        self.soft_reset()
        self._set_gpu(self.gpu_rawstat | R.GPU_IRQ_RESET_COMPLETED, self.gpu_mask)

    def soft_reset(self) -> None:
        """The effect of a soft reset, at once: every AS back to reset, MMU IRQs cleared."""
        for a in self.as_:
            if a.timer is not None:
                a.timer.cancel()
            a.reset()
            a.lock_wq.wake_all()
        self.mmu_rawstat = 0
        self.mmu_mask = 0
        self.l2.invalidate("soft reset")
        for b in self.blocks:
            b.soft_reset()
        current_kernel().ev("gpu-reset", "gpu", "all AS disabled, MMU interrupts cleared")

    def power_off(self) -> None:
        """Cut the power: registers become inaccessible and their state is lost."""
        self.soft_reset()
        if self.reset_timer is not None:
            self.reset_timer.cancel()
            self.reset_timer = None
        self.gpu_rawstat = 0
        self.gpu_mask = 0
        self.powered = False

    def power_on(self) -> None:
        """Power up: registers at their reset values."""
        self.powered = True

    def unplug(self) -> None:
        """The device is gone: any later register access is a finding."""
        self.unplugged = True

    # ------------------------------------------------------------ GPU memory port

    async def access(self, as_nr: int, va: int, kind: int, source_id: int = 0) -> int | GpuFault:
        """A GPU memory access (see :func:`.gpu_access.gpu_access`)."""
        return await gpu_access(self, as_nr, va, kind, source_id)


def hw_of(k: Kernel | None = None) -> MaliHw:
    """The GPU installed in the run with :meth:`MaliHw.install`."""
    hw = (k or current_kernel()).objects.get(_OBJECTS_KEY)
    if not isinstance(hw, MaliHw):
        raise LookupError("no MaliHw installed in this run")
    return hw


_NAMED: Final = {
    R.GPU_ID: "GPU_ID",
    R.GPU_MMU_FEATURES: "GPU_MMU_FEATURES",
    R.GPU_AS_PRESENT: "GPU_AS_PRESENT",
    R.GPU_INT_RAWSTAT: "GPU_INT_RAWSTAT",
    R.GPU_INT_CLEAR: "GPU_INT_CLEAR",
    R.GPU_INT_MASK: "GPU_INT_MASK",
    R.GPU_INT_STAT: "GPU_INT_STAT",
    R.GPU_CMD: "GPU_CMD",
    R.GPU_STATUS: "GPU_STATUS",
    R.GPU_FAULT_STATUS: "GPU_FAULT_STATUS",
    R.GPU_FAULT_ADDR_LO: "GPU_FAULT_ADDR_LO",
    R.GPU_FAULT_ADDR_HI: "GPU_FAULT_ADDR_HI",
    R.GPU_SHADER_PRESENT_LO: "GPU_SHADER_PRESENT_LO",
    R.GPU_TILER_PRESENT_LO: "GPU_TILER_PRESENT_LO",
    R.GPU_L2_PRESENT_LO: "GPU_L2_PRESENT_LO",
    R.SHADER_READY_LO: "SHADER_READY_LO",
    R.TILER_READY_LO: "TILER_READY_LO",
    R.L2_READY_LO: "L2_READY_LO",
    R.SHADER_PWRON_LO: "SHADER_PWRON_LO",
    R.TILER_PWRON_LO: "TILER_PWRON_LO",
    R.L2_PWRON_LO: "L2_PWRON_LO",
    R.SHADER_PWROFF_LO: "SHADER_PWROFF_LO",
    R.TILER_PWROFF_LO: "TILER_PWROFF_LO",
    R.L2_PWROFF_LO: "L2_PWROFF_LO",
    R.SHADER_PWRTRANS_LO: "SHADER_PWRTRANS_LO",
    R.TILER_PWRTRANS_LO: "TILER_PWRTRANS_LO",
    R.L2_PWRTRANS_LO: "L2_PWRTRANS_LO",
    R.GPU_COHERENCY_FEATURES: "GPU_COHERENCY_FEATURES",
    R.MCU_CONTROL: "MCU_CONTROL",
    R.MCU_STATUS: "MCU_STATUS",
    R.JOB_INT_RAWSTAT: "JOB_INT_RAWSTAT",
    R.JOB_INT_CLEAR: "JOB_INT_CLEAR",
    R.JOB_INT_MASK: "JOB_INT_MASK",
    R.JOB_INT_STAT: "JOB_INT_STAT",
    R.MMU_INT_RAWSTAT: "MMU_INT_RAWSTAT",
    R.MMU_INT_CLEAR: "MMU_INT_CLEAR",
    R.MMU_INT_MASK: "MMU_INT_MASK",
    R.MMU_INT_STAT: "MMU_INT_STAT",
}
_AS_NAMES: Final = {
    0x00: "AS_TRANSTAB_LO",
    0x04: "AS_TRANSTAB_HI",
    0x08: "AS_MEMATTR_LO",
    0x0C: "AS_MEMATTR_HI",
    0x10: "AS_LOCKADDR_LO",
    0x14: "AS_LOCKADDR_HI",
    0x18: "AS_COMMAND",
    0x1C: "AS_FAULTSTATUS",
    0x20: "AS_FAULTADDRESS_LO",
    0x24: "AS_FAULTADDRESS_HI",
    0x28: "AS_STATUS",
    0x30: "AS_TRANSCFG_LO",
    0x34: "AS_TRANSCFG_HI",
    0x38: "AS_FAULTEXTRA_LO",
    0x3C: "AS_FAULTEXTRA_HI",
}


def register_name(reg: int) -> str:
    """``AS_STATUS(1)``-style name of a register offset."""
    name = _NAMED.get(reg)
    if name is not None:
        return name
    if R.MMU_BASE <= reg < R.MMU_AS(R.MAX_AS_SLOTS):
        as_nr = (reg - R.MMU_BASE) >> R.MMU_AS_SHIFT
        sub = _AS_NAMES.get(reg & ((1 << R.MMU_AS_SHIFT) - 1))
        if sub is not None:
            return f"{sub}({as_nr})"
    if reg >= R.CSF_DOORBELL_BASE and not (reg - R.CSF_DOORBELL_BASE) % R.CSF_DOORBELL_STRIDE:
        return f"CSF_DOORBELL({(reg - R.CSF_DOORBELL_BASE) // R.CSF_DOORBELL_STRIDE})"
    return f"reg {reg:#x}"
