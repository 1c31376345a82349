"""The Mali CSF command-stream frontend as panthor_sched.c sees it: firmware interfaces,
CSG slots, the job interrupt, doorbells, and the GPU that runs the jobs.

No MCU firmware is modelled. What the scheduler talks to is:

* **The firmware interfaces** (``panthor_fw.h``): one global, one per CSG slot,
  one per CS slot of each CSG, each with its host-written ``input`` and
  GPU-written ``output`` section. Requests and events are the kernel's
  req/ack protocol on the bits the scheduler uses: a request is a ``req`` bit
  (or the CSG state field) that differs from ``ack``; the GPU acknowledges by
  copying it into ``ack``. An event is an ``ack`` bit the GPU toggled; the
  host acknowledges it by copying ``ack`` into ``req``. The ring buffer
  interfaces (``panthor_fw_ringbuf_input_iface``/``output_iface``: ``insert``,
  ``extract``) are objects the driver allocates per queue.
* **Doorbells**: ``CSF_DOORBELL(0)`` makes the GPU look at the global
  interface's ``doorbell_req`` (which CSG slots have requests);
  ``CSF_DOORBELL(n)`` makes the CSes configured with doorbell ``n`` re-read
  their ring's ``insert``. A CS only sees new work through a doorbell or a
  CSG start/resume.
* **The job interrupt** (``JOB_INT_RAWSTAT/CLEAR/MASK/STAT``): bit ``n`` when
  CSG slot ``n`` acknowledged a request or raised an event. A
  :meth:`Csf.inject_lost_job_irq` loses the next interrupts (neither the
  RAWSTAT bit nor the line), as a flaky interrupt line would.
* **The GPU**: one daemon thread per CSG slot (``gpu/csg<n>``) processes the
  slot's requests (after a firmware latency drawn from the strategy) and runs
  the CSes of the group on it, one instruction step at a time, each memory
  step after an execution latency drawn from the strategy (a timer, so
  interrupts-as-choices apply). Every memory access goes through
  :meth:`~.mmu_hw.MaliHw.access` on the AS the CSG was started with
  (``csg input config``): a fault stalls the CS (the MMU IRQ path must kill
  the group), a bad access is a finding.
* **Memory contents** the CPU and the GPU exchange (ring-buffer instructions,
  sync objects) are kept per physical address in :attr:`Csf.mem`: the driver
  writes through its kernel mapping (the BO's pages), the GPU reads and writes
  the address its access translated to, so a stale translation reads or
  writes the wrong place.

Deviations (deliberate): the ring buffer holds :class:`CsInstr` objects
instead of encoded 64-bit instructions; a ``CALL`` carries the user command
stream's effect (:class:`CsStream`: its memory accesses, and whether it hangs)
after the GPU fetched ``stream_addr``; no scoreboards, sync waits, tiler OOM,
protected mode, progress timer or global requests; the suspend state of a CS
lives on its ring output interface (the kernel keeps it in the group's
suspend buffer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from ...sched.core.kernel import NSEC_PER_MSEC, NSEC_PER_USEC, Kernel, current_kernel
from ...sched.core.waitqueue import WaitQueue
from ...sched.locking.spin import SyncSpinLock
from .. import regs as R
from .gpu_access import GPU_ATOMIC, GPU_READ, GpuFault
from .mmu_hw import MaliHw

_OBJECTS_KEY: Final = "mmu.csf"

MAX_CSGS: Final = 31
MAX_CS_PER_CSG: Final = 32

# panthor_fw.h: CS input req / output ack
CS_STATE_MASK: Final = 0x7
CS_STATE_STOP: Final = 0
CS_STATE_START: Final = 1
CS_EXTRACT_EVENT: Final = 1 << 4
CS_IDLE_SYNC_WAIT: Final = 1 << 8
CS_IDLE_PROTM_PENDING: Final = 1 << 9
CS_IDLE_EMPTY: Final = 1 << 10
CS_IDLE_RESOURCE_REQ: Final = 1 << 11
CS_TILER_OOM: Final = 1 << 26
CS_PROTM_PENDING: Final = 1 << 27
CS_FATAL: Final = 1 << 30
CS_FAULT: Final = 1 << 31
CS_REQ_MASK: Final = (
    CS_STATE_MASK
    | CS_EXTRACT_EVENT
    | CS_IDLE_SYNC_WAIT
    | CS_IDLE_PROTM_PENDING
    | CS_IDLE_EMPTY
    | CS_IDLE_RESOURCE_REQ
)
CS_EVT_MASK: Final = CS_TILER_OOM | CS_PROTM_PENDING | CS_FATAL | CS_FAULT

CS_STATUS_BLOCKED_REASON_UNBLOCKED: Final = 0
CS_STATUS_BLOCKED_REASON_SYNC_WAIT: Final = 3


def CS_FEATURES_SCOREBOARDS(x: int) -> int:
    return (x >> 8) & 0xFF


def CS_CONFIG_PRIORITY(x: int) -> int:
    return x & 0xF


def CS_CONFIG_DOORBELL(x: int) -> int:
    return (x << 8) & 0xFF00


def CS_EXCEPTION_TYPE(x: int) -> int:
    return x & 0xFF


def CS_EXCEPTION_DATA(x: int) -> int:
    return (x >> 8) & 0xFFFFFF


# panthor_fw.h: CSG input req / output ack
CSG_STATE_MASK: Final = 0x7
CSG_STATE_TERMINATE: Final = 0
CSG_STATE_START: Final = 1
CSG_STATE_SUSPEND: Final = 2
CSG_STATE_RESUME: Final = 3
CSG_ENDPOINT_CONFIG: Final = 1 << 4
CSG_STATUS_UPDATE: Final = 1 << 5
CSG_SYNC_UPDATE: Final = 1 << 28
CSG_IDLE: Final = 1 << 29
CSG_DOORBELL: Final = 1 << 30
CSG_PROGRESS_TIMER_EVENT: Final = 1 << 31
CSG_REQ_MASK: Final = CSG_STATE_MASK | CSG_ENDPOINT_CONFIG | CSG_STATUS_UPDATE
CSG_EVT_MASK: Final = CSG_SYNC_UPDATE | CSG_IDLE | CSG_PROGRESS_TIMER_EVENT
CSG_STATUS_STATE_IS_IDLE: Final = 1 << 0
CSG_EP_REQ_PRIORITY_MASK: Final = 0xF << 28

_STATE_NAMES: Final = {0: "TERMINATE", 1: "START", 2: "SUSPEND", 3: "RESUME"}

GLB_IDLE: Final = 1 << 26
GLB_EVT_MASK: Final = 0x7F << 20

U32_MASK: Final = 0xFFFFFFFF


def CSG_EP_REQ_COMPUTE(x: int) -> int:
    return x & 0xFF


def CSG_EP_REQ_FRAGMENT(x: int) -> int:
    return (x << 8) & 0xFF00


def CSG_EP_REQ_TILER(x: int) -> int:
    return (x << 16) & 0xF0000


def CSG_EP_REQ_PRIORITY(x: int) -> int:
    return (x << 28) & CSG_EP_REQ_PRIORITY_MASK


# ---------------------------------------------------------------- what the CS executes


@dataclass(frozen=True)
class CsStream:
    """The effect of the user command stream a job ``CALL``s (model-only).

    ``accesses`` are ``(va, GPU_READ|GPU_WRITE|GPU_EXEC|GPU_ATOMIC)`` in order;
    ``hang`` is None, ``"soft"`` (the stream spins forever but the CSG still
    answers requests) or ``"hard"`` (the CSG stops answering anything until a
    GPU reset).
    """

    accesses: tuple[tuple[int, int], ...] = ()
    hang: str | None = None


@dataclass(frozen=True)
class CsInstr:
    """One ring-buffer instruction, operands resolved (``prepare_job_instrs()``'s sequence)."""

    op: str
    addr: int = 0
    size: int = 0
    stream: CsStream | None = None

    def __str__(self) -> str:
        if self.op in ("CALL", "SYNC_ADD64"):
            return f"{self.op} {self.addr:#x}"
        return self.op


@dataclass(frozen=True)
class RingbufJob:
    """The instructions of one job as they sit in the ring buffer at its start offset."""

    instrs: tuple[CsInstr, ...]
    start: int
    end: int
    label: str = ""


# ---------------------------------------------------------------- firmware interfaces


class RingbufInputIface:
    """``struct panthor_fw_ringbuf_input_iface`` (host-written)."""

    __slots__ = ("extract", "insert")

    def __init__(self) -> None:
        self.insert = 0
        self.extract = 0


@dataclass
class _SavedCs:
    """The state of a CS saved by a SUSPEND (the suspend buffer's content)."""

    job: RingbufJob | None
    pc: int
    sub: int


class RingbufOutputIface:
    """``struct panthor_fw_ringbuf_output_iface`` (GPU-written)."""

    __slots__ = ("active", "extract", "saved")

    def __init__(self) -> None:
        self.extract = 0
        self.active = 0
        self.saved: _SavedCs | None = None  # model: what the suspend buffer holds


class CsControl:
    __slots__ = ("features",)

    def __init__(self, features: int) -> None:
        self.features = features


class CsInput:
    __slots__ = (
        "ack_irq_mask",
        "config",
        "heap_end",
        "heap_start",
        "req",
        "ringbuf_base",
        "ringbuf_input",
        "ringbuf_output",
        "ringbuf_size",
    )

    def __init__(self) -> None:
        self.req = 0
        self.config = 0
        self.ack_irq_mask = 0
        self.ringbuf_base = 0
        self.ringbuf_size = 0
        self.heap_start = 0
        self.heap_end = 0
        # The FW addresses of the ring interfaces; the model keeps the objects.
        self.ringbuf_input: RingbufInputIface | None = None
        self.ringbuf_output: RingbufOutputIface | None = None


class CsOutput:
    __slots__ = (
        "ack",
        "fatal",
        "fatal_info",
        "fault",
        "fault_info",
        "status_blocked_reason",
        "status_scoreboards",
        "status_wait",
        "status_wait_sync_ptr",
        "status_wait_sync_value",
        "status_wait_sync_value_hi",
    )

    def __init__(self) -> None:
        self.ack = 0
        self.status_wait = 0
        self.status_wait_sync_ptr = 0
        self.status_wait_sync_value = 0
        self.status_wait_sync_value_hi = 0
        self.status_scoreboards = 0
        self.status_blocked_reason = CS_STATUS_BLOCKED_REASON_UNBLOCKED
        self.fault = 0
        self.fatal = 0
        self.fault_info = 0
        self.fatal_info = 0


class CsIface:
    """``struct panthor_fw_cs_iface``."""

    def __init__(self, csg_id: int, cs_id: int, features: int) -> None:
        self.lock = SyncSpinLock(f"cs_iface[{csg_id}][{cs_id}].lock", "&cs_iface->lock")
        self.control = CsControl(features)
        self.input = CsInput()
        self.output = CsOutput()


class CsgControl:
    __slots__ = ("features", "protm_suspend_size", "stream_num", "suspend_size")

    def __init__(self, stream_num: int) -> None:
        self.features = 0
        self.suspend_size = 0
        self.protm_suspend_size = 0
        self.stream_num = stream_num


class CsgInput:
    __slots__ = (
        "ack_irq_mask",
        "allow_compute",
        "allow_fragment",
        "allow_other",
        "config",
        "cs_irq_ack",
        "doorbell_req",
        "endpoint_req",
        "protm_suspend_buf",
        "req",
        "suspend_buf",
    )

    def __init__(self) -> None:
        self.req = 0
        self.ack_irq_mask = 0
        self.doorbell_req = 0
        self.cs_irq_ack = 0
        self.allow_compute = 0
        self.allow_fragment = 0
        self.allow_other = 0
        self.endpoint_req = 0
        self.suspend_buf = 0
        self.protm_suspend_buf = 0
        self.config = 0


class CsgOutput:
    __slots__ = (
        "ack",
        "cs_irq_req",
        "doorbell_ack",
        "status_endpoint_current",
        "status_endpoint_req",
        "status_state",
    )

    def __init__(self) -> None:
        self.ack = 0
        self.doorbell_ack = 0
        self.cs_irq_req = 0
        self.status_endpoint_current = 0
        self.status_endpoint_req = 0
        self.status_state = 0


class CsgIface:
    """``struct panthor_fw_csg_iface`` (and its CS interfaces, ``panthor_fw_get_cs_iface``)."""

    def __init__(self, csg_id: int, stream_num: int, cs_features: int) -> None:
        self.lock = SyncSpinLock(f"csg_iface[{csg_id}].lock", "&csg_iface->lock")
        self.control = CsgControl(stream_num)
        self.input = CsgInput()
        self.output = CsgOutput()
        self.cs = [CsIface(csg_id, i, cs_features) for i in range(stream_num)]


class GlbControl:
    __slots__ = ("features", "group_num", "version")

    def __init__(self, group_num: int) -> None:
        self.version = 0x10000
        self.features = 0
        self.group_num = group_num


class GlbInput:
    __slots__ = ("ack_irq_mask", "doorbell_req", "req")

    def __init__(self) -> None:
        self.req = 0
        self.ack_irq_mask = 0
        self.doorbell_req = 0


class GlbOutput:
    __slots__ = ("ack", "doorbell_ack", "halt_status")

    def __init__(self) -> None:
        self.ack = 0
        self.doorbell_ack = 0
        self.halt_status = 0


class GlbIface:
    """``struct panthor_fw_global_iface``."""

    def __init__(self, group_num: int) -> None:
        self.lock = SyncSpinLock("glb_iface.lock", "&glb_iface->lock")
        self.control = GlbControl(group_num)
        self.input = GlbInput()
        self.output = GlbOutput()


# ---------------------------------------------------------------- the GPU side


@dataclass
class CsfConfig:
    """The CSF's geometry and timing."""

    csg_slot_count: int = 4  # GLB_GROUP_NUM
    cs_per_csg: int = 2  # CSG_STREAM_NUM
    scoreboards: int = 8  # CS_FEATURES_SCOREBOARDS
    # Firmware request processing and per-step execution latencies (index 0 canonical).
    fw_latency_ns: tuple[int, ...] = (1 * NSEC_PER_USEC, 10 * NSEC_PER_USEC, 200 * NSEC_PER_USEC)
    fw_latency_p_nonzero: float = 0.3
    exec_latency_ns: tuple[int, ...] = (2 * NSEC_PER_USEC, 20 * NSEC_PER_USEC, 500 * NSEC_PER_USEC)
    exec_latency_p_nonzero: float = 0.3
    # How long one spin of a soft-hung stream takes (long, so a 5 s timeout is few steps).
    soft_hang_spin_ns: int = 50 * NSEC_PER_MSEC
    # Probability that a job interrupt is lost (drawn from the strategy).
    lost_irq_probability: float = 0.0

    @property
    def cs_features(self) -> int:
        return (self.scoreboards & 0xFF) << 8


@dataclass
class CsHw:
    """What one CS slot is doing."""

    cs_id: int
    started: bool = False
    seen_insert: int = 0  # the ring insert the CS last read (doorbell / start)
    job: RingbufJob | None = None  # the job it is executing
    pc: int = 0  # instruction index in ``job``
    sub: int = 0  # step inside a CALL: 0 fetch, 1.. accesses, then the hang
    stalled: GpuFault | None = None  # an access faulted: no progress until restarted
    fatal: int = 0  # a CS_FATAL exception type: the CS stopped
    hung: str | None = None  # the stream it runs hangs ("soft" / "hard")


@dataclass
class CsgHw:
    """What one CSG slot is doing (the GPU's side of ``panthor_fw_csg_iface``)."""

    csg_id: int
    cs: list[CsHw]
    wq: WaitQueue
    hang_wq: WaitQueue
    state: int = CSG_STATE_TERMINATE
    as_nr: int = -1
    epoch: int = 0  # bumped by a reset: whatever a thread was doing is void
    req_pending: bool = False
    idle: bool = True
    rr: int = 0
    steps: int = 0
    history: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.state in (CSG_STATE_START, CSG_STATE_RESUME)


IrqLine = Callable[[], None]


class Csf:
    """The command-stream frontend behind ``MaliHw``'s register window (see the module doc)."""

    def __init__(self, hw: MaliHw, config: CsfConfig | None = None) -> None:
        self.hw = hw
        self.config = cfg = config or CsfConfig()
        if not 0 < cfg.csg_slot_count <= MAX_CSGS or not 0 < cfg.cs_per_csg <= MAX_CS_PER_CSG:
            raise ValueError("CSF geometry out of range")
        self.glb = GlbIface(cfg.csg_slot_count)
        self.csg = [CsgIface(i, cfg.cs_per_csg, cfg.cs_features) for i in range(cfg.csg_slot_count)]
        self.slots = [
            CsgHw(
                i,
                [CsHw(j) for j in range(cfg.cs_per_csg)],
                WaitQueue(f"gpu/csg{i}: nothing to run", klass="gpu-csg-idle"),
                WaitQueue(f"gpu/csg{i}: hung (no progress until a GPU reset)", klass="gpu-hang"),
            )
            for i in range(cfg.csg_slot_count)
        ]
        self.mem: dict[int, object] = {}
        self.job_rawstat = 0
        self.job_mask = 0
        self._job_irq: IrqLine | None = None
        self.lost_irqs = 0
        self.irqs_lost = 0
        self.resets = 0
        hw.add_block(self)

    def install(self, k: Kernel | None = None) -> Csf:
        """Make this the run's CSF (``k.objects['mmu.csf']``) and start its GPU threads."""
        k = k or current_kernel()
        k.objects[_OBJECTS_KEY] = self
        for slot in self.slots:
            k.spawn(self._csg_thread, slot, name=f"gpu/csg{slot.csg_id}", daemon=True)
        return self

    # ------------------------------------------------------------ memory contents

    def mem_read(self, pa: int) -> object:
        return self.mem.get(pa & ~7, 0)

    def mem_write(self, pa: int, value: object) -> None:
        self.mem[pa & ~7] = value

    # ------------------------------------------------------------ register block

    def handles(self, reg: int) -> bool:
        if R.JOB_INT_RAWSTAT <= reg <= R.JOB_INT_STAT:
            return True
        off = reg - R.CSF_DOORBELL_BASE
        return off >= 0 and not off % R.CSF_DOORBELL_STRIDE and off // R.CSF_DOORBELL_STRIDE < 64

    def read(self, reg: int) -> int:
        if reg == R.JOB_INT_RAWSTAT:
            return self.job_rawstat
        if reg == R.JOB_INT_MASK:
            return self.job_mask
        if reg == R.JOB_INT_STAT:
            return self.job_rawstat & self.job_mask
        return 0  # JOB_INT_CLEAR and the doorbells are write-only

    def write(self, reg: int, value: int) -> None:
        if reg == R.JOB_INT_CLEAR:
            self._set_job(self.job_rawstat & ~value, self.job_mask)
        elif reg == R.JOB_INT_MASK:
            self._set_job(self.job_rawstat, value)
        elif reg == R.JOB_INT_RAWSTAT or reg == R.JOB_INT_STAT:
            return
        else:
            self._ring_doorbell((reg - R.CSF_DOORBELL_BASE) // R.CSF_DOORBELL_STRIDE)

    def set_job_irq_handler(self, raise_line: IrqLine | None) -> None:
        """Connect the job interrupt line (called when JOB_INT_STAT becomes non-zero)."""
        self._job_irq = raise_line

    def _set_job(self, rawstat: int, mask: int) -> None:
        was = self.job_rawstat & self.job_mask
        self.job_rawstat = rawstat & U32_MASK
        self.job_mask = mask & U32_MASK
        if not was and self.job_rawstat & self.job_mask and self._job_irq is not None:
            current_kernel().ev("irq", "job", f"STAT={self.job_rawstat & self.job_mask:#x}")
            self._job_irq()

    def inject_lost_job_irq(self, n: int = 1) -> None:
        """The next ``n`` job interrupts never reach the CPU."""
        self.lost_irqs += n

    def _raise_job_irq(self, bits: int) -> None:
        k = current_kernel()
        lost = False
        if self.lost_irqs > 0:
            self.lost_irqs -= 1
            lost = True
        elif self.config.lost_irq_probability > 0.0:
            lost = (
                k.choose_data(2, self.config.lost_irq_probability, what="a job interrupt is lost")
                == 1
            )
        if lost:
            self.irqs_lost += 1
            k.ev("job-irq-lost", "job", f"{bits:#x}")
            return
        self._set_job(self.job_rawstat | bits, self.job_mask)

    def _ring_doorbell(self, db: int) -> None:
        k = current_kernel()
        if db == R.CSF_GLB_DOORBELL_ID:
            pending = (self.glb.input.doorbell_req ^ self.glb.output.doorbell_ack) & (
                (1 << len(self.slots)) - 1
            )
            self.glb.output.doorbell_ack ^= pending
            k.ev("doorbell", "glb", f"CSGs {pending:#x}")
            for slot in self.slots:
                if pending >> slot.csg_id & 1:
                    slot.req_pending = True
                    slot.wq.wake_all()
            return
        for slot in self.slots:
            csg = self.csg[slot.csg_id]
            for cs in slot.cs:
                if (csg.cs[cs.cs_id].input.config >> 8) & 0xFF == db and cs.started:
                    self._cs_refresh_insert(slot, cs)
                    slot.wq.wake_all()
        k.ev("doorbell", f"db{db}", "")

    # ------------------------------------------------------------ reset

    def soft_reset(self) -> None:
        """A GPU soft reset reboots the firmware: every CSG stops, the interfaces are zeroed."""
        self.resets += 1
        self.glb.input = GlbInput()
        self.glb.output = GlbOutput()
        for slot in self.slots:
            slot.epoch += 1
            slot.state = CSG_STATE_TERMINATE
            slot.as_nr = -1
            slot.req_pending = False
            slot.idle = True
            for cs in slot.cs:
                self._cs_clear(cs)
            csg = self.csg[slot.csg_id]
            csg.input = CsgInput()
            csg.output = CsgOutput()
            for cs_iface in csg.cs:
                cs_iface.input = CsInput()
                cs_iface.output = CsOutput()
            slot.hang_wq.wake_all()
            slot.wq.wake_all()
        self.job_rawstat = 0
        self.job_mask = 0

    # ------------------------------------------------------------ the CSG threads

    def _latency(self, k: Kernel, choices: tuple[int, ...], p: float, what: str) -> int:
        return choices[k.choose_data(len(choices), p, what=what)]

    async def _csg_thread(self, slot: CsgHw) -> None:
        k = current_kernel()
        cfg = self.config
        while True:
            if slot.req_pending:
                slot.req_pending = False
                epoch = slot.epoch
                await k.sleep_ns(
                    self._latency(
                        k,
                        cfg.fw_latency_ns,
                        cfg.fw_latency_p_nonzero,
                        f"CSG{slot.csg_id} firmware is slow",
                    )
                )
                if epoch == slot.epoch:
                    self._process_requests(slot)
                continue
            cs = self._pick_cs(slot)
            if cs is None:
                self._check_idle(slot)
                await slot.wq.wait()
                continue
            await self._step(slot, cs)

    def _pick_cs(self, slot: CsgHw) -> CsHw | None:
        if not slot.running:
            return None
        n = len(slot.cs)
        for i in range(n):
            cs = slot.cs[(slot.rr + i) % n]
            if self._cs_busy(slot, cs):
                slot.rr = (cs.cs_id + 1) % n
                return cs
        return None

    def _cs_busy(self, slot: CsgHw, cs: CsHw) -> bool:
        if not cs.started or cs.stalled is not None or cs.fatal:
            return False
        if cs.job is not None:
            return True
        out = self.csg[slot.csg_id].cs[cs.cs_id].input.ringbuf_output
        return out is not None and out.extract < cs.seen_insert

    def _cs_clear(self, cs: CsHw) -> None:
        cs.started = False
        cs.job = None
        cs.pc = cs.sub = 0
        cs.stalled = None
        cs.fatal = 0
        cs.hung = None
        cs.seen_insert = 0

    def _cs_refresh_insert(self, slot: CsgHw, cs: CsHw) -> None:
        ring_in = self.csg[slot.csg_id].cs[cs.cs_id].input.ringbuf_input
        if ring_in is not None:
            cs.seen_insert = ring_in.insert
        if self._cs_busy(slot, cs) and slot.idle:
            slot.idle = False
            self.csg[slot.csg_id].output.status_state &= ~CSG_STATUS_STATE_IS_IDLE

    def _check_idle(self, slot: CsgHw) -> None:
        """A running CSG with nothing left to do raises CSG_IDLE (once)."""
        if not slot.running or slot.idle:
            return
        if any(cs.started and (cs.job is not None or cs.stalled is not None) for cs in slot.cs):
            return
        slot.idle = True
        csg = self.csg[slot.csg_id]
        csg.output.status_state |= CSG_STATUS_STATE_IS_IDLE
        current_kernel().ev("csf", f"CSG{slot.csg_id}", "idle")
        self._csg_event(slot, CSG_IDLE)

    def _csg_event(self, slot: CsgHw, bit: int) -> None:
        """Raise a CSG event: toggle its ack bit (unless one is already pending), interrupt."""
        csg = self.csg[slot.csg_id]
        if not (csg.input.req ^ csg.output.ack) & bit:
            csg.output.ack ^= bit
        self._raise_job_irq(R.JOB_INT_CSG_IF(slot.csg_id))

    def _cs_fatal(self, slot: CsgHw, cs: CsHw, exception: int, info: int = 0) -> None:
        """CS_FATAL: the CS stops; the event reaches the host through cs_irq_req."""
        csg = self.csg[slot.csg_id]
        cs_iface = csg.cs[cs.cs_id]
        cs.fatal = exception
        cs_iface.output.fatal = exception
        cs_iface.output.fatal_info = info
        if not (cs_iface.input.req ^ cs_iface.output.ack) & CS_FATAL:
            cs_iface.output.ack ^= CS_FATAL
        csg.output.cs_irq_req ^= 1 << cs.cs_id
        current_kernel().ev(
            "csf",
            f"CSG{slot.csg_id}/CS{cs.cs_id}",
            f"CS_FATAL {R.panthor_exception_name(exception)}",
        )
        self._raise_job_irq(R.JOB_INT_CSG_IF(slot.csg_id))

    # ------------------------------------------------------------ requests

    def _process_requests(self, slot: CsgHw) -> None:
        k = current_kernel()
        n = slot.csg_id
        csg = self.csg[n]
        req = csg.input.req
        ack = csg.output.ack
        changed = (req ^ ack) & CSG_REQ_MASK
        # The CS requests that came with the CSG doorbell.
        dbs = (csg.input.doorbell_req ^ csg.output.doorbell_ack) & ((1 << len(slot.cs)) - 1)
        csg.output.doorbell_ack ^= dbs
        for cs in slot.cs:
            if dbs >> cs.cs_id & 1:
                self._process_cs_request(slot, cs)
        if changed & CSG_STATE_MASK:
            new = req & CSG_STATE_MASK
            self._set_state(slot, new)
            ack = (ack & ~CSG_STATE_MASK) | new
        if changed & CSG_ENDPOINT_CONFIG:
            csg.output.status_endpoint_current = csg.input.endpoint_req
            ack ^= CSG_ENDPOINT_CONFIG
        if changed & CSG_STATUS_UPDATE:
            for cs in slot.cs:
                out = csg.cs[cs.cs_id].output
                out.status_blocked_reason = CS_STATUS_BLOCKED_REASON_UNBLOCKED
                out.status_scoreboards = 0
            busy = any(cs.started and (cs.job is not None or cs.stalled) for cs in slot.cs) or any(
                self._cs_busy(slot, cs) for cs in slot.cs
            )
            if busy:
                csg.output.status_state &= ~CSG_STATUS_STATE_IS_IDLE
            else:
                csg.output.status_state |= CSG_STATUS_STATE_IS_IDLE
            ack ^= CSG_STATUS_UPDATE
        csg.output.ack = ack
        k.ev("csf", f"CSG{n}", f"acked {changed:#x} (state {_STATE_NAMES[slot.state]})")
        if changed or dbs:
            self._raise_job_irq(R.JOB_INT_CSG_IF(n))
        slot.wq.wake_all()

    def _process_cs_request(self, slot: CsgHw, cs: CsHw) -> None:
        cs_iface = self.csg[slot.csg_id].cs[cs.cs_id]
        req = cs_iface.input.req
        ack = cs_iface.output.ack
        if (req ^ ack) & CS_STATE_MASK:
            if req & CS_STATE_MASK == CS_STATE_START:
                if slot.running and not cs.started:
                    self._cs_start(slot, cs, resume=False)
            else:
                cs.started = False
        cs_iface.output.ack = (ack & ~CS_REQ_MASK) | (req & CS_REQ_MASK)
        if cs.started:
            self._cs_refresh_insert(slot, cs)

    def _cs_start(self, slot: CsgHw, cs: CsHw, *, resume: bool) -> None:
        cs_iface = self.csg[slot.csg_id].cs[cs.cs_id]
        out = cs_iface.input.ringbuf_output
        cs.started = True
        cs.stalled = None
        cs.fatal = 0
        cs.hung = None
        cs.job = None
        cs.pc = cs.sub = 0
        if resume and out is not None and out.saved is not None:
            cs.job, cs.pc, cs.sub = out.saved.job, out.saved.pc, out.saved.sub
        if out is not None:
            out.saved = None
        cs_iface.output.ack = (cs_iface.output.ack & ~CS_STATE_MASK) | CS_STATE_START
        self._cs_refresh_insert(slot, cs)

    def _set_state(self, slot: CsgHw, new: int) -> None:
        k = current_kernel()
        csg = self.csg[slot.csg_id]
        old = slot.state
        if new in (CSG_STATE_START, CSG_STATE_RESUME):
            slot.as_nr = csg.input.config
            slot.state = new
            slot.idle = True
            csg.output.status_state |= CSG_STATUS_STATE_IS_IDLE
            for cs in slot.cs:
                cs_iface = csg.cs[cs.cs_id]
                if cs_iface.input.req & CS_STATE_MASK == CS_STATE_START:
                    self._cs_start(slot, cs, resume=new == CSG_STATE_RESUME)
                else:
                    self._cs_clear(cs)
        elif new == CSG_STATE_SUSPEND:
            for cs in slot.cs:
                out = csg.cs[cs.cs_id].input.ringbuf_output
                if out is not None and cs.started:
                    out.saved = _SavedCs(cs.job, cs.pc, cs.sub)
                self._cs_clear(cs)
            slot.state = new
        else:  # TERMINATE
            for cs in slot.cs:
                out = csg.cs[cs.cs_id].input.ringbuf_output
                if out is not None:
                    out.saved = None
                self._cs_clear(cs)
            slot.state = new
        slot.history.append(_STATE_NAMES[new])
        k.ev(
            "csf",
            f"CSG{slot.csg_id}",
            f"{_STATE_NAMES[old]} -> {_STATE_NAMES[new]} (AS{slot.as_nr})",
        )

    # ------------------------------------------------------------ execution

    async def _access(self, slot: CsgHw, cs: CsHw, epoch: int, va: int, kind: int) -> int | None:
        """One memory step: the latency, then the access; None if a reset voided it."""
        k = current_kernel()
        cfg = self.config
        await k.sleep_ns(
            self._latency(
                k, cfg.exec_latency_ns, cfg.exec_latency_p_nonzero, f"CSG{slot.csg_id} step is slow"
            )
        )
        if epoch != slot.epoch or not slot.running or not cs.started:
            return None
        as_nr = slot.as_nr
        if not 0 <= as_nr < self.hw.nr_as:
            self._cs_fatal(slot, cs, R.DRM_PANTHOR_EXCEPTION_CS_CONFIG_FAULT, as_nr & U32_MASK)
            return None
        slot.steps += 1
        res = await self.hw.access(as_nr, va, kind, (slot.csg_id << 8) | cs.cs_id)
        if epoch != slot.epoch:
            return None
        if isinstance(res, GpuFault):
            cs.stalled = res
            k.ev("csf", f"CSG{slot.csg_id}/CS{cs.cs_id}", f"stalled on fault: {res}")
            return None
        return res

    async def _step(self, slot: CsgHw, cs: CsHw) -> None:
        """Advance ``cs`` by one memory step (instructions without memory accesses are free)."""
        k = current_kernel()
        epoch = slot.epoch
        csg = self.csg[slot.csg_id]
        cs_in = csg.cs[cs.cs_id].input
        out = cs_in.ringbuf_output
        assert out is not None
        if cs.job is None:
            size = cs_in.ringbuf_size
            va = cs_in.ringbuf_base + (out.extract & (size - 1) if size else 0)
            pa = await self._access(slot, cs, epoch, va, GPU_READ)
            if pa is None:
                return
            desc = self.mem_read(pa)
            if not isinstance(desc, RingbufJob) or desc.start != out.extract:
                self._cs_fatal(slot, cs, R.DRM_PANTHOR_EXCEPTION_CS_INSTR_INVALID, va)
                return
            cs.job, cs.pc, cs.sub = desc, 0, 0
            k.ev("gpu-job", f"CSG{slot.csg_id}/CS{cs.cs_id}", f"start {desc.label}")
            return
        job = cs.job
        while cs.pc < len(job.instrs):
            ins = job.instrs[cs.pc]
            if ins.op == "CALL":
                stream = ins.stream or CsStream()
                if cs.sub == 0:
                    if await self._access(slot, cs, epoch, ins.addr, GPU_READ) is None:
                        return
                    cs.sub = 1
                    return
                if cs.sub <= len(stream.accesses):
                    va, kind = stream.accesses[cs.sub - 1]
                    if await self._access(slot, cs, epoch, va, kind) is None:
                        return
                    cs.sub += 1
                    return
                if stream.hang is not None:
                    await self._hang(slot, cs, stream.hang, epoch)
                    return
                cs.pc += 1
                cs.sub = 0
                continue
            if ins.op == "SYNC_ADD64":
                pa = await self._access(slot, cs, epoch, ins.addr, GPU_ATOMIC)
                if pa is None:
                    return
                v = self.mem_read(pa)
                self.mem_write(pa, (v if isinstance(v, int) else 0) + 1)
                cs.pc += 1
                k.ev("gpu-job", f"CSG{slot.csg_id}/CS{cs.cs_id}", f"SYNC_ADD64 {ins.addr:#x}")
                self._csg_event(slot, CSG_SYNC_UPDATE)
                return
            cs.pc += 1  # MOV, FLUSH_CACHE2, WAIT, ERROR_BARRIER: no memory access
        out.extract = job.end
        k.ev("gpu-job", f"CSG{slot.csg_id}/CS{cs.cs_id}", f"done {job.label}")
        cs.job = None
        cs.pc = cs.sub = 0

    async def _hang(self, slot: CsgHw, cs: CsHw, kind: str, epoch: int) -> None:
        k = current_kernel()
        if cs.hung is None:
            cs.hung = kind
            k.ev("gpu-hang", f"CSG{slot.csg_id}/CS{cs.cs_id}", kind)
        if kind == "hard":
            # The CSG stops answering: only a GPU reset (epoch change) ends this.
            while epoch == slot.epoch:
                await slot.hang_wq.wait()
            return
        await k.sleep_ns(self.config.soft_hang_spin_ns)

    # ------------------------------------------------------------ reports

    def describe_cs(self, csg_id: int, cs_id: int) -> str:
        slot = self.slots[csg_id]
        cs = slot.cs[cs_id]
        bits = [f"CSG{csg_id} {_STATE_NAMES[slot.state]} on AS{slot.as_nr}"]
        if not cs.started:
            bits.append(f"CS{cs_id} stopped")
        elif cs.stalled is not None:
            bits.append(f"CS{cs_id} stalled on an MMU fault ({cs.stalled})")
        elif cs.fatal:
            bits.append(f"CS{cs_id} stopped by CS_FATAL {R.panthor_exception_name(cs.fatal)}")
        elif cs.hung:
            bits.append(f"CS{cs_id} hung ({cs.hung})")
        elif cs.job is not None:
            bits.append(f"CS{cs_id} running {cs.job.label}")
        else:
            bits.append(f"CS{cs_id} idle (saw insert {cs.seen_insert:#x})")
        return ", ".join(bits)


def csf_of(hw: MaliHw) -> Csf:
    """The CSF behind ``hw``'s register window."""
    for b in hw.blocks:
        if isinstance(b, Csf):
            return b
    raise LookupError("no CSF model attached to this MaliHw")
