"""The GPU-control block behind ``MaliHw``'s register window: power domains, the MCU, faults.

What the driver's panthor_gpu.c and panthor_fw.c talk to, beyond the GPU_CMD
soft reset :class:`~.mmu_hw.MaliHw` already models:

* **Power domains** (shader cores, tiler, L2): ``*_PRESENT`` are fixed by the
  configuration; writing a mask to ``*_PWRON``/``*_PWROFF`` sets the bits in
  ``*_PWRTRANS`` and, after a latency drawn from the strategy (index 0 is
  canonical), moves them into or out of ``*_READY`` and raises
  ``GPU_IRQ_POWER_CHANGED``/``_ALL`` in GPU_INT_RAWSTAT. A soft reset or a power
  cycle turns every domain off.
* **Cache flushes**: ``GPU_CMD`` ``GPU_FLUSH_CACHES(...)`` cleans and/or
  invalidates the L2 (:mod:`.l2_cache`, as its L2 flags ask) and raises
  ``GPU_IRQ_CLEAN_CACHES_COMPLETED`` after a latency; powering the L2 down
  cleans and invalidates it.
  :meth:`GpuControl.inject_stuck_flush` makes the next flushes never complete.
* **The MCU** (``MCU_CONTROL``/``MCU_STATUS``): writing ``MCU_CONTROL_AUTO``
  boots the firmware. The MCU (a daemon thread ``gpu/mcu``) touches the first
  word of every section of its :class:`FirmwareImage` through address space 0,
  the MCU's own, like any GPU access (it fetches code, reads read-only data and
  writes its state into the writable sections): if a section is not mapped the access
  faults (latched on AS0), the MCU status becomes ``FATAL`` and the boot
  interrupt never comes; otherwise the status becomes ``ENABLED`` and the CSF
  raises ``JOB_INT_GLOBAL_IF``. ``MCU_CONTROL_DISABLE`` stops it. Ringing the
  global doorbell with ``GLB_REQ.HALT`` set halts a running MCU
  (``MCU_STATUS_HALT``, what a fast reset needs).
  :meth:`GpuControl.inject_boot_failure` makes the next boots fail (status
  ``FATAL``) as a firmware that starts and then dies would (after its
  accesses: what it wrote stays in the L2). A soft reset disables the MCU.
* **GPU faults**: :meth:`GpuControl.inject_gpu_fault` latches ``GPU_FAULT_STATUS``
  and ``GPU_FAULT_ADDR`` and raises ``GPU_IRQ_FAULT``.

Deviations (deliberate): the CSF interfaces (:mod:`.csf`) answer whether or
not the MCU is booted; no protected mode, no GPU_STATUS activity, no power
domain dependencies (L2 before cores).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ...sched.core.kernel import NSEC_PER_USEC, Kernel, Timer, current_kernel
from ...sched.core.waitqueue import WaitQueue
from .. import regs as R
from ..sizes import U32_MAX
from .gpu_access import ACCESS_TYPE_EX, ACCESS_TYPE_READ, ACCESS_TYPE_WRITE, GpuFault

if TYPE_CHECKING:
    from .mmu_hw import MaliHw

_OBJECTS_KEY: Final = "mmu.gpu_control"
GLB_HALT: Final = 1 << 0  # GLB_REQ.HALT

# CSF_MCU_SHARED_REGION_START / _SIZE (panthor_fw.c)
CSF_MCU_SHARED_REGION_START: Final = 0x04000000
CSF_MCU_SHARED_REGION_SIZE: Final = 0x04000000

# panthor_fw.c's section flags (CSF_FW_BINARY_IFACE_ENTRY_*)
CSF_FW_BINARY_IFACE_ENTRY_RD: Final = 1 << 0
CSF_FW_BINARY_IFACE_ENTRY_WR: Final = 1 << 1
CSF_FW_BINARY_IFACE_ENTRY_EX: Final = 1 << 2
CSF_FW_BINARY_IFACE_ENTRY_CACHE_MODE_CACHED: Final = 1 << 3
CSF_FW_BINARY_IFACE_ENTRY_CACHE_MODE_MASK: Final = 3 << 3
CSF_FW_BINARY_IFACE_ENTRY_PROT: Final = 1 << 5
CSF_FW_BINARY_IFACE_ENTRY_SHARED: Final = 1 << 30
CSF_FW_BINARY_IFACE_ENTRY_ZERO: Final = 1 << 31


@dataclass(frozen=True)
class FwSection:
    """One section entry of the firmware image: where the MCU expects it, what it holds."""

    name: str
    va_start: int
    va_end: int
    flags: int
    data: bytes = b""


def _default_sections() -> tuple[FwSection, ...]:
    rx = CSF_FW_BINARY_IFACE_ENTRY_RD | CSF_FW_BINARY_IFACE_ENTRY_EX
    rw = CSF_FW_BINARY_IFACE_ENTRY_RD | CSF_FW_BINARY_IFACE_ENTRY_WR
    return (
        FwSection("text", 0x0, 0x10000, rx | CSF_FW_BINARY_IFACE_ENTRY_CACHE_MODE_CACHED, b"\x01"),
        FwSection("data", 0x10000, 0x14000, rw | CSF_FW_BINARY_IFACE_ENTRY_CACHE_MODE_CACHED),
        FwSection(
            "shared",
            CSF_MCU_SHARED_REGION_START,
            CSF_MCU_SHARED_REGION_START + 0x4000,
            rw | CSF_FW_BINARY_IFACE_ENTRY_SHARED | CSF_FW_BINARY_IFACE_ENTRY_ZERO,
        ),
    )


@dataclass(frozen=True)
class FirmwareImage:
    """``mali_csffw.bin`` as far as the model reads it: its sections."""

    sections: tuple[FwSection, ...] = field(default_factory=_default_sections)


@dataclass
class GpuControlConfig:
    shader_present: int = 0xF
    tiler_present: int = 0x1
    l2_present: int = 0x1
    coherency_features: int = 1 << 0  # ACE-Lite
    power_latency_ns: tuple[int, ...] = (2 * NSEC_PER_USEC, 50 * NSEC_PER_USEC)
    power_latency_p_nonzero: float = 0.3
    flush_latency_ns: tuple[int, ...] = (2 * NSEC_PER_USEC, 30 * NSEC_PER_USEC)
    flush_latency_p_nonzero: float = 0.3
    boot_latency_ns: int = 20 * NSEC_PER_USEC
    boot_failures: int = 0  # the first boots that fail (see inject_boot_failure())
    firmware: FirmwareImage = field(default_factory=FirmwareImage)


class _PowerDomain:
    __slots__ = ("name", "present", "ready", "trans")

    def __init__(self, name: str, present: int) -> None:
        self.name = name
        self.present = present
        self.ready = 0
        self.trans = 0


_DOMAINS: Final = {
    # name: (PRESENT, READY, PWRON, PWROFF, PWRTRANS)
    "shader": (
        R.GPU_SHADER_PRESENT_LO,
        R.SHADER_READY_LO,
        R.SHADER_PWRON_LO,
        R.SHADER_PWROFF_LO,
        R.SHADER_PWRTRANS_LO,
    ),
    "tiler": (
        R.GPU_TILER_PRESENT_LO,
        R.TILER_READY_LO,
        R.TILER_PWRON_LO,
        R.TILER_PWROFF_LO,
        R.TILER_PWRTRANS_LO,
    ),
    "l2": (R.GPU_L2_PRESENT_LO, R.L2_READY_LO, R.L2_PWRON_LO, R.L2_PWROFF_LO, R.L2_PWRTRANS_LO),
}


class GpuControl:
    """Power domains, cache flushes, the MCU and GPU faults (see the module doc)."""

    def __init__(self, hw: MaliHw, config: GpuControlConfig | None = None) -> None:
        self.hw = hw
        self.config = cfg = config or GpuControlConfig()
        self.domains = {
            "shader": _PowerDomain("shader", cfg.shader_present),
            "tiler": _PowerDomain("tiler", cfg.tiler_present),
            "l2": _PowerDomain("l2", cfg.l2_present),
        }
        self._regs: dict[int, tuple[_PowerDomain, str, int]] = {}
        for name, regs in _DOMAINS.items():
            d = self.domains[name]
            for kind, reg in zip(
                ("present", "ready", "pwron", "pwroff", "trans"), regs, strict=True
            ):
                self._regs[reg] = (d, kind, 0)
                self._regs[reg + 4] = (d, kind, 32)
        self.timers: list[Timer] = []
        self.fault_status = 0
        self.fault_address = 0
        self.mcu_status = R.MCU_STATUS_DISABLED
        self.mcu_control = R.MCU_CONTROL_DISABLE
        self.mcu_epoch = 0
        self.mcu_boot_requested = False
        self.mcu_wq = WaitQueue("gpu/mcu: halted", klass="gpu-mcu-idle")
        self.boots = 0  # successful MCU boots (for tests)
        self.boot_failures = cfg.boot_failures  # injected: the next boots fail
        self.stuck_flushes = 0
        self.flushes = 0
        # Ahead of the CSF block: the MCU sees the global doorbell first (GLB_HALT).
        hw.blocks.insert(0, self)

    def install(self, k: Kernel | None = None) -> GpuControl:
        """Make this the run's GPU-control block and start the MCU thread."""
        k = k or current_kernel()
        k.objects[_OBJECTS_KEY] = self
        k.spawn(self._mcu_thread, name="gpu/mcu", daemon=True)
        return self

    # ------------------------------------------------------------ register block

    def handles(self, reg: int) -> bool:
        return (
            reg in self._regs
            or reg in (R.GPU_FAULT_STATUS, R.GPU_FAULT_ADDR_LO, R.GPU_FAULT_ADDR_HI)
            or reg in (R.MCU_CONTROL, R.MCU_STATUS, R.GPU_COHERENCY_FEATURES)
            or reg == R.CSF_DOORBELL(R.CSF_GLB_DOORBELL_ID)
        )

    def read(self, reg: int) -> int:
        if reg == R.GPU_FAULT_STATUS:
            return self.fault_status
        if reg == R.GPU_FAULT_ADDR_LO:
            return self.fault_address & U32_MAX
        if reg == R.GPU_FAULT_ADDR_HI:
            return self.fault_address >> 32
        if reg == R.MCU_CONTROL:
            return self.mcu_control
        if reg == R.MCU_STATUS:
            return self.mcu_status
        if reg == R.GPU_COHERENCY_FEATURES:
            return self.config.coherency_features
        d, kind, shift = self._regs[reg]
        if kind == "present":
            return (d.present >> shift) & U32_MAX
        if kind == "ready":
            return (d.ready >> shift) & U32_MAX
        if kind == "trans":
            return (d.trans >> shift) & U32_MAX
        return 0  # PWRON/PWROFF are write-only

    def write(self, reg: int, value: int) -> None:
        if reg == R.MCU_CONTROL:
            self._mcu_control(value)
            return
        if reg == R.CSF_DOORBELL(R.CSF_GLB_DOORBELL_ID):
            self._glb_doorbell(reg, value)
            return
        hit = self._regs.get(reg)
        if hit is None:
            return  # read-only
        d, kind, shift = hit
        mask = (value << shift) & d.present
        if kind in ("pwron", "pwroff") and mask:
            self._power(d, mask, on=kind == "pwron")

    def gpu_command(self, cmd: int) -> bool:
        """A GPU_CMD this block executes (cache flushes); False if it is not one."""
        if cmd & 0xFF != 4:
            return False
        k = current_kernel()
        if self.stuck_flushes > 0:
            self.stuck_flushes -= 1
            k.ev("gpu-flush-stuck", "gpu", f"{cmd:#x}")
            return True
        cfg = self.config
        lat = cfg.flush_latency_ns[
            k.choose_data(len(cfg.flush_latency_ns), cfg.flush_latency_p_nonzero, what="flush")
        ]
        self.timers.append(
            k.add_timer(lat, functools.partial(self._flush_done, cmd), "GPU cache flush")
        )
        return True

    def soft_reset(self) -> None:
        """Every power domain off, the MCU disabled, the fault registers cleared."""
        for t in self.timers:
            t.cancel()
        self.timers.clear()
        for d in self.domains.values():
            d.ready = 0
            d.trans = 0
        self.fault_status = 0
        self.fault_address = 0
        self.mcu_status = R.MCU_STATUS_DISABLED
        self.mcu_control = R.MCU_CONTROL_DISABLE
        self.mcu_epoch += 1
        self.mcu_boot_requested = False

    # ------------------------------------------------------------ power and flushes

    def _power(self, d: _PowerDomain, mask: int, *, on: bool) -> None:
        k = current_kernel()
        cfg = self.config
        lat = cfg.power_latency_ns[
            k.choose_data(len(cfg.power_latency_ns), cfg.power_latency_p_nonzero, what="power")
        ]
        d.trans |= mask
        k.ev("gpu-power", d.name, f"{'on' if on else 'off'} {mask:#x}")

        def done() -> None:
            d.trans &= ~mask
            if on:
                d.ready |= mask
            else:
                d.ready &= ~mask
                if d.name == "l2" and not d.ready:
                    self.hw.l2.clean_invalidate("L2 power-down")
            bits = R.GPU_IRQ_POWER_CHANGED
            if not any(x.trans for x in self.domains.values()):
                bits |= R.GPU_IRQ_POWER_CHANGED_ALL
            self.hw._set_gpu(self.hw.gpu_rawstat | bits, self.hw.gpu_mask)

        self.timers.append(k.add_timer(lat, done, f"{d.name} power {'on' if on else 'off'}"))

    def _flush_done(self, cmd: int) -> None:
        self.flushes += 1
        l2 = (cmd >> 8) & 0xF
        if l2 & R.CACHE_CLEAN:
            self.hw.l2.clean("GPU_FLUSH_CACHES")
        if l2 & R.CACHE_INV:
            self.hw.l2.invalidate("GPU_FLUSH_CACHES")
        self.hw._set_gpu(self.hw.gpu_rawstat | R.GPU_IRQ_CLEAN_CACHES_COMPLETED, self.hw.gpu_mask)

    def inject_stuck_flush(self, n: int = 1) -> None:
        """The next ``n`` cache flushes never complete (a blocked memory subsystem)."""
        self.stuck_flushes += n

    # ------------------------------------------------------------ faults

    def inject_gpu_fault(self, status: int, address: int) -> None:
        """Latch a GPU fault (not an MMU one) and raise GPU_IRQ_FAULT."""
        self.fault_status = status & U32_MAX
        self.fault_address = address
        self.hw._set_gpu(self.hw.gpu_rawstat | R.GPU_IRQ_FAULT, self.hw.gpu_mask)

    # ------------------------------------------------------------ the MCU

    def inject_boot_failure(self, n: int = 1) -> None:
        """The next ``n`` MCU boots fail (MCU_STATUS_FATAL, no boot interrupt)."""
        self.boot_failures += n

    def _mcu_control(self, value: int) -> None:
        k = current_kernel()
        self.mcu_control = value
        self.mcu_epoch += 1
        if value == R.MCU_CONTROL_DISABLE:
            self.mcu_status = R.MCU_STATUS_DISABLED
            self.mcu_boot_requested = False
            k.ev("mcu", "gpu", "disabled")
            return
        self.mcu_boot_requested = True
        self.mcu_wq.wake_all()

    def _glb_doorbell(self, reg: int, value: int) -> None:
        """The MCU looks at GLB_REQ.HALT, then the CSF handles the doorbell as usual."""
        from .csf import csf_of

        csf = csf_of(self.hw)
        if csf.glb.input.req & GLB_HALT and self.mcu_status == R.MCU_STATUS_ENABLED:
            self.mcu_status = R.MCU_STATUS_HALT
            current_kernel().ev("mcu", "gpu", "halted")
        csf.write(reg, value)

    async def _mcu_thread(self) -> None:
        from .csf import csf_of

        k = current_kernel()
        while True:
            while not self.mcu_boot_requested:
                await self.mcu_wq.wait()
            self.mcu_boot_requested = False
            epoch = self.mcu_epoch
            await k.sleep_ns(self.config.boot_latency_ns)
            if epoch != self.mcu_epoch:
                continue
            ok = await self._mcu_boot(epoch)
            if epoch != self.mcu_epoch:
                continue
            if not ok:
                self.mcu_status = R.MCU_STATUS_FATAL
                k.ev("mcu", "gpu", "boot failed")
                continue
            self.boots += 1
            self.mcu_status = R.MCU_STATUS_ENABLED
            k.ev("mcu", "gpu", "booted")
            csf_of(self.hw)._raise_job_irq(R.JOB_INT_GLOBAL_IF)

    async def _mcu_boot(self, epoch: int) -> bool:
        """Touch every section's first word through AS0; False on a fault or injected failure.

        The firmware fetches its code and read-only data and writes its own state
        into its writable sections (a write access), so a boot leaves lines of
        them in the L2 (dirty ones for the writable sections). An injected
        failure happens after that, as a firmware that started and then died
        would: what it wrote stays in the L2.
        """
        for s in self.config.firmware.sections:
            if s.flags & CSF_FW_BINARY_IFACE_ENTRY_EX:
                kind = ACCESS_TYPE_EX
            elif s.flags & CSF_FW_BINARY_IFACE_ENTRY_WR:
                kind = ACCESS_TYPE_WRITE
            else:
                kind = ACCESS_TYPE_READ
            res = await self.hw.access(0, s.va_start, kind)
            if epoch != self.mcu_epoch:
                return False
            if isinstance(res, GpuFault):
                return False
        if self.boot_failures > 0:
            self.boot_failures -= 1
            return False
        return True


def gpu_control_of(k: Kernel | None = None) -> GpuControl:
    """The GPU-control block installed in the run."""
    g = (k or current_kernel()).objects.get(_OBJECTS_KEY)
    if not isinstance(g, GpuControl):
        raise LookupError("no GpuControl installed in this run")
    return g
