"""What panthor_sched.c calls outside itself, until the files that own it land.

* **panthor_fw.c / panthor_fw.h**: the firmware interfaces
  (``panthor_fw_get_{glb,csg,cs}_iface``), the req/ack helpers
  (``panthor_fw_toggle_reqs``, ``panthor_fw_update_reqs``),
  ``panthor_fw_ring_csg_doorbells``, ``panthor_fw_csg_wait_acks``, the
  queue-interface memory, and the job interrupt (``PANTHOR_IRQ_HANDLER(job,
  JOB, panthor_job_irq_handler)``, which wakes ``fw->req_waitqueue`` and
  reports the events to the scheduler), with the job-IRQ part of
  ``panthor_fw_init``/``panthor_fw_pre_reset``/``panthor_fw_post_reset``.
* **panthor_gem.c**: kernel BOs (``panthor_kernel_bo_create/destroy``,
  ``_gpuva``, ``_size``, ``_vmap``), following the kernel step by step (the BO
  is mapped while it still has its own resv, then takes the VM's).
* **panthor_device.h**: ``panthor_device_resume_and_get`` and the runtime-PM
  calls the scheduler makes, taking the device (forwarded to
  :mod:`.panthor_device` and :mod:`.pm_runtime`).

The hardware behind the interfaces is :mod:`.hw.csf`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ..sched.core.clock import NSEC_PER_JIFFY, msecs_to_jiffies
from ..sched.core.kernel import current_kernel, preempt
from ..sched.core.waitqueue import WaitQueue
from ..sched.deferred.irq import IrqRegs, PanthorIrq
from ..sched.errno import EINVAL, ENOMEM, ERR_PTR, ETIMEDOUT
from ..sched.mm.gfp import GFP_KERNEL
from ..sched.mm.memory import kfree, kzalloc
from . import regs as R
from .hw.csf import (
    Csf,
    CsgIface,
    CsIface,
    GlbIface,
    RingbufInputIface,
    RingbufOutputIface,
    csf_of,
)
from .panthor_device import PanthorDevice, gpu_read, gpu_write

# Re-exported: the kernel BOs moved to panthor_gem.py.
from .panthor_gem import KernelBoMap as KernelBoMap
from .panthor_gem import PanthorKernelBo as PanthorKernelBo
from .panthor_gem import panthor_kernel_bo_create as panthor_kernel_bo_create
from .panthor_gem import panthor_kernel_bo_destroy as panthor_kernel_bo_destroy
from .panthor_gem import panthor_kernel_bo_gpuva as panthor_kernel_bo_gpuva
from .panthor_gem import panthor_kernel_bo_size as panthor_kernel_bo_size
from .panthor_gem import panthor_kernel_bo_vmap as panthor_kernel_bo_vmap

if TYPE_CHECKING:
    pass

_FW_KEY: Final = "panthor.fw_iface"

JOB_IRQ_REGS: Final = IrqRegs(R.JOB_INT_RAWSTAT, R.JOB_INT_CLEAR, R.JOB_INT_MASK, R.JOB_INT_STAT)


class PanthorFwSched:
    """The parts of ``struct panthor_fw`` the scheduler uses: the job IRQ and ``req_waitqueue``."""

    def __init__(self, ptdev: PanthorDevice) -> None:
        self.ptdev = ptdev
        self.csf: Csf = csf_of(ptdev.iomem)
        self.req_waitqueue = WaitQueue("ptdev->fw->req_waitqueue", klass="panthor_fw req_waitqueue")
        self.irq = PanthorIrq(
            "job",
            JOB_IRQ_REGS,
            lambda reg: gpu_read(ptdev, reg),
            lambda reg, v: gpu_write(ptdev, reg, v),
            self._handler,
        )
        self.booted = True

    async def _handler(self, status: int) -> None:
        await panthor_job_irq_handler(self.ptdev, status)


def panthor_fw_sched(ptdev: PanthorDevice) -> PanthorFwSched:
    """The run's :class:`PanthorFwSched` (made by :func:`panthor_fw_sched_init`)."""
    fw: PanthorFwSched | None = current_kernel().objects.get(_FW_KEY)
    if fw is None or fw.ptdev is not ptdev:
        raise LookupError("panthor_fw_sched_init() was not called for this device")
    return fw


# ---------------------------------------------------------------- interfaces


def _shared_section_mem(ptdev: PanthorDevice) -> None:
    """Touch the memory the interfaces live in (the FW's shared section).

    In the kernel an interface's ``input``/``output`` point into the shared
    section's kernel mapping, which ``panthor_fw_unplug()`` frees: reading the
    section's kernel BO here makes a use after that free a finding (the BO is
    poisoned once freed). Devices built without the firmware image (unit
    tests of the scheduler) have no shared section.
    """
    section = getattr(getattr(ptdev, "fw", None), "shared_section", None)
    if section is not None:
        section.mem.kmap  # noqa: B018 -- the read is the check


def panthor_fw_get_glb_iface(ptdev: PanthorDevice) -> GlbIface:
    """``panthor_fw_get_glb_iface()``."""
    _shared_section_mem(ptdev)
    return panthor_fw_sched(ptdev).csf.glb


def panthor_fw_get_csg_iface(ptdev: PanthorDevice, csg_slot: int) -> CsgIface:
    """``panthor_fw_get_csg_iface()``."""
    _shared_section_mem(ptdev)
    return panthor_fw_sched(ptdev).csf.csg[csg_slot]


def panthor_fw_get_cs_iface(ptdev: PanthorDevice, csg_slot: int, cs_slot: int) -> CsIface:
    """``panthor_fw_get_cs_iface()``."""
    _shared_section_mem(ptdev)
    return panthor_fw_sched(ptdev).csf.csg[csg_slot].cs[cs_slot]


def panthor_fw_toggle_reqs(iface: Any, in_reg: str, out_reg: str, mask: int) -> None:
    """``panthor_fw_toggle_reqs(iface, in_reg, out_reg, mask)``: flag events ``mask`` to the FW."""
    with iface.lock:
        cur_val = getattr(iface.input, in_reg)
        out_val = getattr(iface.output, out_reg)
        new_val = ((out_val ^ mask) & mask) | (cur_val & ~mask)
        setattr(iface.input, in_reg, new_val & 0xFFFFFFFF)


def panthor_fw_update_reqs(iface: Any, in_reg: str, val: int, mask: int) -> None:
    """``panthor_fw_update_reqs(iface, in_reg, val, mask)``: set the ``mask`` bits of ``in_reg``."""
    with iface.lock:
        cur_val = getattr(iface.input, in_reg)
        new_val = (cur_val & ~mask) | (val & mask)
        setattr(iface.input, in_reg, new_val & 0xFFFFFFFF)


async def panthor_fw_ring_csg_doorbells(ptdev: PanthorDevice, csg_mask: int) -> None:
    """``panthor_fw_ring_csg_doorbells()``: flag the CSGs, ring the global doorbell."""
    glb_iface = panthor_fw_get_glb_iface(ptdev)
    panthor_fw_toggle_reqs(glb_iface, "doorbell_req", "doorbell_ack", csg_mask)
    await gpu_write(ptdev, R.CSF_DOORBELL(R.CSF_GLB_DOORBELL_ID), 1)


async def panthor_fw_wait_acks(
    iface: Any, wq: WaitQueue, req_mask: int, timeout_ms: int
) -> tuple[int, int]:
    """``panthor_fw_wait_acks()``: ``(0 or -ETIMEDOUT, acked)``.

    A short busy-wait, then a sleep on ``req_waitqueue`` (woken by the job
    IRQ) with a timeout, then one last check.
    """
    k = current_kernel()
    await preempt()  # READ_ONCE(*req_ptr)
    req = iface.input.req & req_mask
    acked = req_mask
    # read_poll_timeout_atomic(READ_ONCE, ack, (ack & req_mask) == req, 0, 10, 0, *ack_ptr)
    await preempt()
    if iface.output.ack & req_mask == req:
        return 0, acked
    deadline = k.now + msecs_to_jiffies(timeout_ms) * NSEC_PER_JIFFY
    while True:
        # wait_event_timeout(): the condition is checked before each sleep.
        if iface.output.ack & req_mask == req:
            return 0, acked
        left = deadline - k.now
        if left <= 0:
            break
        await wq.wait(left)
    # Check one last time, in case we were not woken up for some reason.
    await preempt()
    ack = iface.output.ack
    if ack & req_mask == req:
        return 0, acked
    acked = ~(req ^ ack) & req_mask
    return -ETIMEDOUT, acked


async def panthor_fw_csg_wait_acks(
    ptdev: PanthorDevice, csg_slot: int, req_mask: int, timeout_ms: int
) -> tuple[int, int]:
    """``panthor_fw_csg_wait_acks(ptdev, csg_slot, req_mask, &acked, timeout_ms)``."""
    csg_iface = panthor_fw_get_csg_iface(ptdev, csg_slot)
    fw = panthor_fw_sched(ptdev)
    ret, acked = await panthor_fw_wait_acks(csg_iface, fw.req_waitqueue, req_mask, timeout_ms)

    # Check that all bits in the state field were updated, if any mismatch
    # then clear all bits in the state field. This allows code to do
    # (acked & CSG_STATE_MASK) and get the right value.
    if (acked & 0x7) != 0x7:
        acked &= ~0x7
    return ret, acked


async def panthor_fw_alloc_queue_iface_mem(
    ptdev: PanthorDevice,
) -> tuple[Any, RingbufInputIface | None, RingbufOutputIface | None, int, int]:
    """``panthor_fw_alloc_queue_iface_mem()``: ``(mem, input, output, input_fw_va, output_fw_va)``.

    The kernel carves both interfaces out of one FW-mapped kernel BO; the
    model allocates the two objects (``mem`` is ERR_PTR(-ENOMEM) on failure).
    """
    inp = await kzalloc(RingbufInputIface, GFP_KERNEL)
    if inp is None:
        return ERR_PTR(-ENOMEM), None, None, 0, 0
    out = await kzalloc(RingbufOutputIface, GFP_KERNEL)
    if out is None:
        kfree(inp)
        return ERR_PTR(-ENOMEM), None, None, 0, 0
    mem = _QueueIfaceMem(inp, out)
    return mem, inp, out, 0, 0


class _QueueIfaceMem:
    """The FW memory of one queue's ring interfaces (``queue->iface.mem``)."""

    def __init__(self, inp: RingbufInputIface, out: RingbufOutputIface) -> None:
        self.input = inp
        self.output = out


def panthor_queue_iface_mem_destroy(mem: Any) -> None:
    """``panthor_kernel_bo_destroy(queue->iface.mem)``."""
    if isinstance(mem, _QueueIfaceMem):
        kfree(mem.input)
        kfree(mem.output)


# ---------------------------------------------------------------- the job interrupt


async def panthor_job_irq_handler(ptdev: PanthorDevice, status: int) -> None:
    """``panthor_job_irq_handler()`` (panthor_fw.c)."""
    from .panthor_sched import panthor_sched_report_fw_events

    fw = panthor_fw_sched(ptdev)
    if not fw.booted and status & R.JOB_INT_GLOBAL_IF:
        fw.booted = True

    fw.req_waitqueue.wake_all()

    # If the FW is not booted, don't process IRQs, just flag the FW as booted.
    if not fw.booted:
        return

    await panthor_sched_report_fw_events(ptdev, status)


async def panthor_fw_sched_init(ptdev: PanthorDevice) -> int:
    """The job-IRQ part of ``panthor_fw_init()``: request the "job" line, unmask it (booted)."""
    k = current_kernel()
    fw = PanthorFwSched(ptdev)
    k.objects[_FW_KEY] = fw
    desc = ptdev.irqs.get("job")
    if desc is None:
        return -EINVAL
    fw.csf.set_job_irq_handler(desc.trigger)
    return await fw.irq.request(desc, 0xFFFFFFFF)


# ---------------------------------------------------------------- runtime PM (panthor_device.h)


async def panthor_device_resume_and_get(ptdev: PanthorDevice) -> int:
    """``panthor_device_resume_and_get()``."""
    from .panthor_device import panthor_device_resume_and_get as resume_and_get

    return await resume_and_get(ptdev)


async def pm_runtime_get(ptdev: PanthorDevice) -> None:
    """``pm_runtime_get(ptdev->base.dev)``."""
    from .pm_runtime import pm_runtime_get as get

    await get(ptdev.base.dev)


async def pm_runtime_put(ptdev: PanthorDevice) -> None:
    """``pm_runtime_put(ptdev->base.dev)``."""
    from .pm_runtime import pm_runtime_put as put

    await put(ptdev.base.dev)


async def pm_runtime_mark_last_busy(ptdev: PanthorDevice) -> None:
    """``pm_runtime_mark_last_busy(ptdev->base.dev)``."""
    from .pm_runtime import pm_runtime_mark_last_busy as mark

    await mark(ptdev.base.dev)


async def pm_runtime_put_autosuspend(ptdev: PanthorDevice) -> None:
    """``pm_runtime_put_autosuspend(ptdev->base.dev)``."""
    from .pm_runtime import pm_runtime_put_autosuspend as put

    await put(ptdev.base.dev)
