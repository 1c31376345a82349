"""drivers/gpu/drm/panthor/panthor_sched.c (v6.15 era, drm_sched of v6.14), simplified.

The group scheduler of the kernel, function by function where it touches the
VM code, with the kernel's locks: ``sched->lock`` around the tick, the FW
event processing, ``run_job`` and group create/destroy; ``sched->reset.lock``
around reset and group create/destroy; the tick, sync-update and FW-event
works on ``sched->wq``; each queue's ``drm_gpu_scheduler`` (run/free works on
``sched->wq``, the job timeout on ``ptdev->reset.wq``). Groups are bound to a
VM; a group on a CSG slot holds its VM active (``group_bind_locked()`` calls
``panthor_vm_active()`` under ``sched->lock``), and leaving the slot makes it
idle (``group_unbind_locked()`` -> ``panthor_vm_idle()``). The tick kills
groups whose VM has unhandled faults, suspends, evicts and (re)starts groups
on slots, limited by the CSG slots and the AS slots.

Simplified (see docs/gpu-jobs.md): the firmware is the CSF model of
:mod:`.hw.csf` (the scheduler speaks the kernel's req/ack protocol to it
through :mod:`.panthor_fw_iface`); no sync-wait blocking (``groups.waiting``
stays empty), no tiler OOM, heap growth, protected mode, profiling, fdinfo,
devfreq or suspend buffers; runtime PM calls are no-ops.

Model-only: the liveness oracle (:func:`panthor_sched_check_jobs`, an exit
check) and the job/group labels used in reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ..sched.core.clock import MAX_SCHEDULE_TIMEOUT, NSEC_PER_JIFFY, jiffies, msecs_to_jiffies
from ..sched.core.failure import Failure
from ..sched.core.kernel import Kernel, current_kernel, preempt
from ..sched.deferred.workqueue import (
    INIT_DELAYED_WORK,
    INIT_WORK,
    WQ_MEM_RECLAIM,
    WQ_UNBOUND,
    DelayedWork,
    Workqueue,
    WorkStruct,
    alloc_workqueue,
    cancel_delayed_work,
    cancel_delayed_work_sync,
    cancel_work,
    cancel_work_sync,
    destroy_workqueue,
    mod_delayed_work,
    queue_work,
)
from ..sched.dma_buf.dma_fence import (
    DmaFence,
    DmaFenceOps,
    dma_fence_context_alloc,
    dma_fence_free,
    dma_fence_get,
    dma_fence_init,
    dma_fence_is_signaled_atomic,
    dma_fence_put,
    dma_fence_set_error,
    dma_fence_signal_locked,
)
from ..sched.dma_buf.dma_resv import DmaResvUsage
from ..sched.drm.drm_drv import (
    DrmDevice,
    drm_dev_enter,
    drm_dev_exit,
    drmm_add_action_or_reset,
    drmm_kzalloc,
    drmm_mutex_init,
)
from ..sched.drm.drm_exec import DrmExec
from ..sched.drm.drm_print import drm_err
from ..sched.drm.drm_sched import (
    drm_sched_fini,
    drm_sched_init,
    drm_sched_job_cleanup,
    drm_sched_job_init,
    drm_sched_resume_timeout,
    drm_sched_start,
    drm_sched_stop,
    drm_sched_suspend_timeout,
)
from ..sched.drm.drm_sched_entity import drm_sched_entity_destroy, drm_sched_entity_init
from ..sched.drm.drm_sched_types import (
    DRM_GPU_SCHED_STAT_NOMINAL,
    DrmGpuScheduler,
    DrmSchedBackendOps,
    DrmSchedEntity,
    DrmSchedJob,
)
from ..sched.errno import ECANCELED, EINVAL, ENOMEM, ERR_PTR, ETIMEDOUT, IS_ERR, PTR_ERR, ErrPtr
from ..sched.lib.list import (
    INIT_LIST_HEAD,
    ListHead,
    ListNode,
    list_add,
    list_add_before,
    list_add_tail,
    list_del_init,
    list_empty,
    list_move,
    list_move_tail,
    list_node_empty,
)
from ..sched.lib.xarray import (
    XA_FLAGS_ALLOC1,
    XA_LIMIT,
    XArray,
    xa_alloc,
    xa_destroy,
    xa_erase,
    xa_for_each,
    xa_init_flags,
    xa_load,
    xa_lock,
    xa_unlock,
)
from ..sched.locking.atomic import (
    Atomic,
    atomic_inc_return,
    atomic_read,
    atomic_set,
    atomic_xchg,
)
from ..sched.locking.lockdep import (
    dma_fence_begin_signalling,
    dma_fence_end_signalling,
    lockdep_assert_held,
)
from ..sched.locking.mutex import Mutex, mutex_lock, mutex_unlock
from ..sched.locking.refcount import Kref, kref_get, kref_init, kref_put
from ..sched.locking.spin import SyncSpinLock
from ..sched.mm.gfp import GFP_KERNEL
from ..sched.mm.memory import kfree, kzalloc
from ..sched.warn import WARN_ON, drm_WARN_ON
from . import panthor_device as _panthor_device
from .hw.csf import (
    CS_CONFIG_DOORBELL,
    CS_CONFIG_PRIORITY,
    CS_EXCEPTION_DATA,
    CS_EXCEPTION_TYPE,
    CS_EXTRACT_EVENT,
    CS_FATAL,
    CS_FAULT,
    CS_FEATURES_SCOREBOARDS,
    CS_IDLE_EMPTY,
    CS_IDLE_SYNC_WAIT,
    CS_STATE_MASK,
    CS_STATE_START,
    CS_STATE_STOP,
    CS_STATUS_BLOCKED_REASON_SYNC_WAIT,
    CS_STATUS_BLOCKED_REASON_UNBLOCKED,
    CS_TILER_OOM,
    CSG_ENDPOINT_CONFIG,
    CSG_EP_REQ_COMPUTE,
    CSG_EP_REQ_FRAGMENT,
    CSG_EP_REQ_PRIORITY,
    CSG_EP_REQ_PRIORITY_MASK,
    CSG_EP_REQ_TILER,
    CSG_EVT_MASK,
    CSG_IDLE,
    CSG_PROGRESS_TIMER_EVENT,
    CSG_STATE_MASK,
    CSG_STATE_RESUME,
    CSG_STATE_START,
    CSG_STATE_SUSPEND,
    CSG_STATE_TERMINATE,
    CSG_STATUS_STATE_IS_IDLE,
    CSG_STATUS_UPDATE,
    CSG_SYNC_UPDATE,
    GLB_EVT_MASK,
    GLB_IDLE,
    MAX_CS_PER_CSG,
    MAX_CSGS,
    CsInstr,
    CsStream,
    RingbufInputIface,
    RingbufJob,
    RingbufOutputIface,
    csf_of,
)
from .panthor_device import (
    PanthorDevice,
    PanthorFile,
    gpu_write,
    panthor_device_reset_is_pending,
    panthor_device_schedule_reset,
    panthor_exception_name,
)
from .panthor_drm import (
    DRM_PANTHOR_BO_NO_MMAP,
    DRM_PANTHOR_GROUP_STATE_FATAL_FAULT,
    DRM_PANTHOR_GROUP_STATE_INNOCENT,
    DRM_PANTHOR_GROUP_STATE_TIMEDOUT,
    DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC,
    DRM_PANTHOR_VM_BIND_OP_MAP_UNCACHED,
    drm_panthor_group_create,
    drm_panthor_group_get_state,
    drm_panthor_queue_create,
    drm_panthor_queue_submit,
)
from .panthor_fw_iface import (
    PanthorKernelBo,
    panthor_device_resume_and_get,
    panthor_fw_alloc_queue_iface_mem,
    panthor_fw_csg_wait_acks,
    panthor_fw_get_cs_iface,
    panthor_fw_get_csg_iface,
    panthor_fw_get_glb_iface,
    panthor_fw_ring_csg_doorbells,
    panthor_fw_toggle_reqs,
    panthor_fw_update_reqs,
    panthor_kernel_bo_create,
    panthor_kernel_bo_destroy,
    panthor_kernel_bo_gpuva,
    panthor_kernel_bo_size,
    panthor_kernel_bo_vmap,
    panthor_queue_iface_mem_destroy,
    pm_runtime_get,
    pm_runtime_mark_last_busy,
    pm_runtime_put,
    pm_runtime_put_autosuspend,
)
from .regs import (
    CSF_DOORBELL,
    DRM_PANTHOR_EXCEPTION_CS_INHERIT_FAULT,
    DRM_PANTHOR_EXCEPTION_CS_UNRECOVERABLE,
)
from .sizes import SZ_4K, SZ_64K

if TYPE_CHECKING:
    from .panthor_mmu import PanthorVm

JOB_TIMEOUT_MS: Final = 5000

MAX_CSG_PRIO: Final = 0xF

NUM_INSTRS_PER_CACHE_LINE: Final = 64 // 8
MAX_INSTRS_PER_JOB: Final = 24

U64_MAX: Final = (1 << 64) - 1

# enum panthor_csg_priority
PANTHOR_CSG_PRIORITY_LOW: Final = 0
PANTHOR_CSG_PRIORITY_MEDIUM: Final = 1
PANTHOR_CSG_PRIORITY_HIGH: Final = 2
PANTHOR_CSG_PRIORITY_RT: Final = 3
PANTHOR_CSG_PRIORITY_COUNT: Final = 4

# enum panthor_group_state
PANTHOR_CS_GROUP_CREATED: Final = 0
PANTHOR_CS_GROUP_ACTIVE: Final = 1
PANTHOR_CS_GROUP_SUSPENDED: Final = 2
PANTHOR_CS_GROUP_TERMINATED: Final = 3
PANTHOR_CS_GROUP_UNKNOWN_STATE: Final = 4
_GROUP_STATE_NAMES: Final = ("CREATED", "ACTIVE", "SUSPENDED", "TERMINATED", "UNKNOWN_STATE")

CSF_MAX_QUEUE_PRIO: Final = 0xF

# We currently set the maximum of groups per file to an arbitrary low value.
# But this can be updated if we need more.
MAX_GROUPS_PER_POOL: Final = 128

# sizeof(struct panthor_syncobj_64b): seqno (u64), status (u32), pad (u32)
SYNCOBJ64_SIZE: Final = 16
SYNCOBJ64_STATUS: Final = 8

_JOBS_KEY: Final = "panthor.sched.jobs"
_GROUPS_KEY: Final = "panthor.sched.live_groups"


def hweight32(x: int) -> int:
    return bin(x & 0xFFFFFFFF).count("1")


def GENMASK(h: int, l: int) -> int:
    return ((1 << (h - l + 1)) - 1) << l if h >= l else 0


def BIT(n: int) -> int:
    return 1 << n


def ffs(x: int) -> int:
    return (x & -x).bit_length()


def ALIGN(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


# ---------------------------------------------------------------------- structures


class PanthorCsgSlot:
    """``struct panthor_csg_slot`` - Command stream group slot."""

    __slots__ = ("group", "idle", "priority")

    def __init__(self) -> None:
        # @group: Scheduling group bound to this slot.
        self.group: PanthorGroup | None = None
        # @priority: Group priority.
        self.priority = 0
        # @idle: True if the group bound to this slot is idle.
        self.idle = False


class _SchedGroups:
    """``panthor_scheduler::groups``."""

    def __init__(self) -> None:
        self.runnable: list[ListHead[PanthorGroup]] = [
            ListHead(f"sched->groups.runnable[{i}]") for i in range(PANTHOR_CSG_PRIORITY_COUNT)
        ]
        self.idle: list[ListHead[PanthorGroup]] = [
            ListHead(f"sched->groups.idle[{i}]") for i in range(PANTHOR_CSG_PRIORITY_COUNT)
        ]
        self.waiting: ListHead[PanthorGroup] = ListHead("sched->groups.waiting")


class _SchedPm:
    def __init__(self) -> None:
        # @has_ref: True if the scheduler owns a runtime PM reference.
        self.has_ref = False


class _SchedReset:
    def __init__(self) -> None:
        # @lock: Lock protecting the other reset fields.
        self.lock = Mutex("sched->reset.lock", key="&sched->reset.lock")
        # @in_progress: True if a reset is in progress.
        self.in_progress = Atomic(0, "sched->reset.in_progress")
        # @stopped_groups: List containing all groups that were stopped before a reset.
        self.stopped_groups: ListHead[PanthorGroup] = ListHead("sched->reset.stopped_groups")


class PanthorScheduler:
    """``struct panthor_scheduler`` - Object used to manage the scheduler."""

    def __init__(self) -> None:
        self.ptdev: PanthorDevice = None  # type: ignore[assignment]
        # @wq: Workqueue used by our internal scheduler logic and drm_gpu_scheduler.
        self.wq: Workqueue | None = None
        # @heap_alloc_wq: Workqueue used to schedule tiler_oom works.
        self.heap_alloc_wq: Workqueue | None = None
        # @tick_work: Work executed on a scheduling tick.
        self.tick_work: DelayedWork = INIT_DELAYED_WORK(_tick_work_fn, "&sched->tick_work", self)
        # @sync_upd_work: Work used to process synchronization object updates.
        self.sync_upd_work: WorkStruct = INIT_WORK(_sync_upd_work_fn, "&sched->sync_upd_work", self)
        # @fw_events_work: Work used to process FW events outside the interrupt path.
        self.fw_events_work: WorkStruct = INIT_WORK(
            _process_fw_events_work_fn, "&sched->fw_events_work", self
        )
        # @fw_events: Bitmask encoding pending FW events.
        self.fw_events = Atomic(0, "sched->fw_events")
        # @resched_target: When the next tick should occur (jiffies).
        self.resched_target = 0
        # @last_tick: When the last tick occurred (jiffies).
        self.last_tick = 0
        # @tick_period: Tick period in jiffies.
        self.tick_period = 0
        # @lock: Lock protecting access to all the scheduler fields.
        self.lock = Mutex("sched->lock", key="&sched->lock")
        # @groups: Various lists used to classify groups.
        self.groups = _SchedGroups()
        # @csg_slots: FW command stream group slots.
        self.csg_slots = [PanthorCsgSlot() for _ in range(MAX_CSGS)]
        self.csg_slot_count = 0
        self.cs_slot_count = 0
        self.as_slot_count = 0
        self.used_csg_slot_count = 0
        self.sb_slot_count = 0
        # @might_have_idle_groups: True if an active group might have become idle.
        self.might_have_idle_groups = False
        self.pm = _SchedPm()
        self.reset = _SchedReset()

    def __repr__(self) -> str:
        return f"<panthor_scheduler {self.csg_slot_count} CSG slots, {self.as_slot_count} AS>"


class _QueueIface:
    """``panthor_queue::iface``."""

    def __init__(self) -> None:
        self.mem: Any = None
        self.input: RingbufInputIface = None  # type: ignore[assignment]
        self.output: RingbufOutputIface = None  # type: ignore[assignment]
        self.input_fw_va = 0
        self.output_fw_va = 0


class _QueueFenceCtx:
    """``panthor_queue::fence_ctx``."""

    def __init__(self) -> None:
        self.lock = SyncSpinLock("queue->fence_ctx.lock", "&queue->fence_ctx.lock")
        self.id = 0
        self.seqno = Atomic(0, "queue->fence_ctx.seqno")
        self.last_fence: DmaFence | None = None
        self.in_flight_jobs: ListHead[PanthorJob] = ListHead("queue->fence_ctx.in_flight_jobs")


class PanthorQueue:
    """``struct panthor_queue`` - Execution queue."""

    def __init__(self) -> None:
        # @scheduler: DRM scheduler used for this queue.
        self.scheduler = DrmGpuScheduler("panthor-queue")
        # @entity: DRM scheduling entity used for this queue.
        self.entity = DrmSchedEntity("queue->entity")
        # @remaining_time: Time remaining before the job timeout expires.
        self.remaining_time = 0
        # @timeout_suspended: True if the job timeout was suspended.
        self.timeout_suspended = False
        # @doorbell_id: Doorbell assigned to this queue.
        self.doorbell_id = 0
        # @priority: Priority of the queue inside the group.
        self.priority = 0
        # @ringbuf: Command stream ring-buffer.
        self.ringbuf: PanthorKernelBo | ErrPtr | None = None
        # @iface: Firmware interface.
        self.iface = _QueueIface()
        # @fence_ctx: Fence context fields.
        self.fence_ctx = _QueueFenceCtx()


class PanthorGroup:
    """``struct panthor_group`` - Scheduling group object."""

    def __init__(self) -> None:
        self.refcount = Kref(self, "group->refcount")
        self.ptdev: PanthorDevice = None  # type: ignore[assignment]
        # @vm: VM bound to the group.
        self.vm: PanthorVm | None = None
        self.compute_core_mask = 0
        self.fragment_core_mask = 0
        self.tiler_core_mask = 0
        self.max_compute_cores = 0
        self.max_fragment_cores = 0
        self.max_tiler_cores = 0
        # @priority: Group priority (check panthor_csg_priority).
        self.priority = 0
        # @blocked_queues: Bitmask reflecting the blocked queues.
        self.blocked_queues = 0
        # @idle_queues: Bitmask reflecting the idle queues.
        self.idle_queues = 0
        # @fatal_lock: Lock used to protect access to fatal fields.
        self.fatal_lock = SyncSpinLock("group->fatal_lock", "&group->fatal_lock")
        # @fatal_queues: Bitmask reflecting the queues that hit a fatal exception.
        self.fatal_queues = 0
        # @tiler_oom: Mask of queues that have a tiler OOM event to process.
        self.tiler_oom = Atomic(0, "group->tiler_oom")
        # @queue_count: Number of queues in this group.
        self.queue_count = 0
        # @queues: Queues owned by this group.
        self.queues: list[PanthorQueue | None] = [None] * MAX_CS_PER_CSG
        # @csg_id: ID of the FW group slot. -1 when the group is not scheduled/active.
        self.csg_id = 0
        # @destroyed: True when the group has been destroyed.
        self.destroyed = False
        # @timedout: True when a timeout occurred on any of the queues owned by this group.
        self.timedout = False
        # @innocent: True when the group becomes unusable because the group suspension
        # failed during a reset.
        self.innocent = False
        # @syncobjs: Pool of per-queue synchronization objects.
        self.syncobjs: PanthorKernelBo | ErrPtr | None = None
        # @state: Group state.
        self.state = PANTHOR_CS_GROUP_CREATED
        self.suspend_buf: PanthorKernelBo | None = None
        self.protm_suspend_buf: PanthorKernelBo | None = None
        self.sync_upd_work: WorkStruct = INIT_WORK(
            _group_sync_upd_work_fn, "&group->sync_upd_work", self
        )
        self.tiler_oom_work: WorkStruct = INIT_WORK(
            _group_tiler_oom_work_fn, "&group->tiler_oom_work", self
        )
        self.term_work: WorkStruct = INIT_WORK(_group_term_work_fn, "&group->term_work", self)
        self.release_work: WorkStruct = INIT_WORK(
            _group_release_work_fn, "&group->release_work", self
        )
        # @run_node: Node used to insert the group in the groups::{runnable,idle}
        # and reset.stopped_groups lists.
        self.run_node: ListNode[PanthorGroup] = ListNode(self)
        # @wait_node: Node used to insert the group in the groups::waiting list.
        self.wait_node: ListNode[PanthorGroup] = ListNode(self)
        self.label = "group"  # model: for reports

    def __repr__(self) -> str:
        return f"<panthor_group {self.label} csg={self.csg_id}>"


class PanthorGroupPool:
    """``struct panthor_group_pool`` - Group pool."""

    def __init__(self) -> None:
        # @xa: Xarray used to manage group handles.
        self.xa: XArray[PanthorGroup] = XArray("gpool->xa")


class _CallInfo:
    """``panthor_job::call_info``."""

    def __init__(self) -> None:
        self.start = 0
        self.size = 0
        self.latest_flush = 0
        self.stream: CsStream | None = None  # model: what the stream at ``start`` does


class _JobRingbuf:
    def __init__(self) -> None:
        self.start = 0
        self.end = 0


class PanthorJob(DrmSchedJob):
    """``struct panthor_job`` - Used to manage GPU job (``base`` is the drm_sched_job)."""

    def __init__(self) -> None:
        super().__init__()
        self.refcount = Kref(self, "job->refcount")
        # @group: Group of the queue this job will be pushed to.
        self.group: PanthorGroup | None = None
        # @queue_idx: Index of the queue inside @group.
        self.queue_idx = 0
        self.call_info = _CallInfo()
        # @ringbuf: Position of this job is in the ring buffer.
        self.ringbuf = _JobRingbuf()
        # @node: Used to insert the job in the queue's in_flight_jobs list.
        self.node: ListNode[PanthorJob] = ListNode(self)
        # @done_fence: Fence signaled when the job is finished or cancelled.
        self.done_fence: DmaFence | None = None
        self.serial = 0  # model: the liveness oracle's key
        self.submitted_ns = -1  # model: when it was pushed (-1: never)

    @property
    def base(self) -> PanthorJob:
        return self

    def __repr__(self) -> str:
        g = self.group.label if self.group is not None else "?"
        return f"<panthor_job #{self.serial} {g} q{self.queue_idx} {self.state}>"


# ---------------------------------------------------------------------- work helpers


async def group_queue_work(group: PanthorGroup, work: WorkStruct) -> None:
    """``group_queue_work(group, wname)``: a group ref travels with the work."""
    await group_get(group)
    sched = group.ptdev.scheduler
    assert isinstance(sched, PanthorScheduler) and sched.wq is not None
    if not await queue_work(sched.wq, work):
        await group_put(group)


async def sched_queue_work(sched: PanthorScheduler, work: WorkStruct) -> None:
    """``sched_queue_work(sched, wname)``: only if no reset is pending or in progress."""
    if not await atomic_read(sched.reset.in_progress) and not await panthor_device_reset_is_pending(
        sched.ptdev
    ):
        assert sched.wq is not None
        await queue_work(sched.wq, work)


async def sched_queue_delayed_work(sched: PanthorScheduler, dwork: DelayedWork, delay: int) -> None:
    """``sched_queue_delayed_work(sched, wname, delay)``: ``mod_delayed_work``, unless resetting."""
    if not await atomic_read(sched.reset.in_progress) and not await panthor_device_reset_is_pending(
        sched.ptdev
    ):
        assert sched.wq is not None
        await mod_delayed_work(sched.wq, dwork, delay)


def _sched(ptdev: PanthorDevice) -> PanthorScheduler:
    sched = ptdev.scheduler
    assert isinstance(sched, PanthorScheduler)
    return sched


def _syncobj_map(group: PanthorGroup) -> Any:
    assert isinstance(group.syncobjs, PanthorKernelBo) and group.syncobjs.kmap is not None
    return group.syncobjs.kmap


# ---------------------------------------------------------------------- group lifetime


async def group_free_queue(group: PanthorGroup, queue: PanthorQueue | ErrPtr | None) -> None:
    """``group_free_queue()``."""
    if queue is None or isinstance(queue, ErrPtr):
        return

    await drm_sched_entity_destroy(queue.entity)

    if queue.scheduler.ops:
        await drm_sched_fini(queue.scheduler)

    await panthor_kernel_bo_destroy(queue.ringbuf)
    panthor_queue_iface_mem_destroy(queue.iface.mem)

    # Release the last_fence we were holding, if any.
    await dma_fence_put(queue.fence_ctx.last_fence)

    kfree(queue)


async def group_release_work(work: WorkStruct) -> None:
    """``group_release_work()``."""
    from .panthor_mmu import panthor_vm_put

    group: PanthorGroup = work.container

    for i in range(group.queue_count):
        await group_free_queue(group, group.queues[i])

    await panthor_kernel_bo_destroy(group.suspend_buf)
    await panthor_kernel_bo_destroy(group.protm_suspend_buf)
    await panthor_kernel_bo_destroy(group.syncobjs)

    await panthor_vm_put(group.vm)
    kfree(group)
    _count_group(current_kernel(), -1)


async def _group_release_work_fn(work: WorkStruct) -> None:
    await group_release_work(work)


async def group_release(kref: Kref) -> None:
    """``group_release()``: the last reference; the release happens on the cleanup wq."""
    group: PanthorGroup = kref.container
    ptdev = group.ptdev

    drm_WARN_ON(ptdev.base, group.csg_id >= 0)
    drm_WARN_ON(ptdev.base, not list_node_empty(group.run_node))
    drm_WARN_ON(ptdev.base, not list_node_empty(group.wait_node))

    assert _panthor_device.panthor_cleanup_wq is not None
    await queue_work(_panthor_device.panthor_cleanup_wq, group.release_work)


async def group_put(group: PanthorGroup | None) -> None:
    """``group_put()``."""
    if group:
        await kref_put(group.refcount, group_release)


async def group_get(group: PanthorGroup | None) -> PanthorGroup | None:
    """``group_get()``."""
    if group:
        await kref_get(group.refcount)
    return group


async def group_bind_locked(group: PanthorGroup, csg_id: int) -> int:
    """``group_bind_locked()`` - Bind a group to a group slot (makes its VM active)."""
    from .panthor_mmu import panthor_vm_active

    ptdev = group.ptdev
    sched = _sched(ptdev)

    lockdep_assert_held(sched.lock)

    if drm_WARN_ON(
        ptdev.base,
        group.csg_id != -1 or csg_id >= MAX_CSGS or sched.csg_slots[csg_id].group is not None,
    ):
        return -EINVAL

    assert group.vm is not None
    ret = await panthor_vm_active(group.vm)
    if ret:
        return ret

    csg_slot = sched.csg_slots[csg_id]
    await group_get(group)
    group.csg_id = csg_id

    # Dummy doorbell allocation: doorbell is assigned to the group and
    # all queues use the same doorbell.
    for i in range(group.queue_count):
        q = group.queues[i]
        assert q is not None
        q.doorbell_id = csg_id + 1

    csg_slot.group = group
    current_kernel().ev("group-bind", group.label, f"CSG{csg_id} AS{group.vm.as_.id}")
    return 0


async def group_unbind_locked(group: PanthorGroup) -> int:
    """``group_unbind_locked()`` - Unbind a group from a slot (lets its VM go idle)."""
    from .panthor_mmu import panthor_vm_idle

    ptdev = group.ptdev
    sched = _sched(ptdev)

    lockdep_assert_held(sched.lock)

    if drm_WARN_ON(ptdev.base, group.csg_id < 0 or group.csg_id >= MAX_CSGS):
        return -EINVAL

    if drm_WARN_ON(ptdev.base, group.state == PANTHOR_CS_GROUP_ACTIVE):
        return -EINVAL

    slot = sched.csg_slots[group.csg_id]
    current_kernel().ev("group-unbind", group.label, f"CSG{group.csg_id}")
    assert group.vm is not None
    await panthor_vm_idle(group.vm)
    group.csg_id = -1

    # Tiler OOM events will be re-issued next time the group is scheduled.
    await atomic_set(group.tiler_oom, 0)
    await cancel_work(group.tiler_oom_work)

    for i in range(group.queue_count):
        q = group.queues[i]
        assert q is not None
        q.doorbell_id = -1

    slot.group = None

    await group_put(group)
    return 0


# ---------------------------------------------------------------------- slot programming


def cs_slot_prog_locked(ptdev: PanthorDevice, csg_id: int, cs_id: int) -> None:
    """``cs_slot_prog_locked()`` - Program a queue slot."""
    sched = _sched(ptdev)
    group = sched.csg_slots[csg_id].group
    assert group is not None
    queue = group.queues[cs_id]
    assert queue is not None
    cs_iface = panthor_fw_get_cs_iface(ptdev, csg_id, cs_id)

    lockdep_assert_held(sched.lock)

    queue.iface.input.extract = queue.iface.output.extract
    drm_WARN_ON(ptdev.base, queue.iface.input.insert < queue.iface.input.extract)

    assert isinstance(queue.ringbuf, PanthorKernelBo)
    cs_iface.input.ringbuf_base = panthor_kernel_bo_gpuva(queue.ringbuf)
    cs_iface.input.ringbuf_size = panthor_kernel_bo_size(queue.ringbuf)
    cs_iface.input.ringbuf_input = queue.iface.input
    cs_iface.input.ringbuf_output = queue.iface.output
    cs_iface.input.config = CS_CONFIG_PRIORITY(queue.priority) | CS_CONFIG_DOORBELL(
        queue.doorbell_id
    )
    cs_iface.input.ack_irq_mask = 0xFFFFFFFF
    panthor_fw_update_reqs(
        cs_iface,
        "req",
        CS_IDLE_SYNC_WAIT | CS_IDLE_EMPTY | CS_STATE_START | CS_EXTRACT_EVENT,
        CS_IDLE_SYNC_WAIT | CS_IDLE_EMPTY | CS_STATE_MASK | CS_EXTRACT_EVENT,
    )
    if queue.iface.input.insert != queue.iface.input.extract and queue.timeout_suspended:
        drm_sched_resume_timeout(queue.scheduler, queue.remaining_time)
        queue.timeout_suspended = False


def cs_slot_reset_locked(ptdev: PanthorDevice, csg_id: int, cs_id: int) -> int:
    """``cs_slot_reset_locked()`` - Reset a queue slot (STOP, suspend the timeout)."""
    cs_iface = panthor_fw_get_cs_iface(ptdev, csg_id, cs_id)
    sched = _sched(ptdev)
    group = sched.csg_slots[csg_id].group
    assert group is not None
    queue = group.queues[cs_id]
    assert queue is not None

    lockdep_assert_held(sched.lock)

    panthor_fw_update_reqs(cs_iface, "req", CS_STATE_STOP, CS_STATE_MASK)

    # If the queue is blocked, we want to keep the timeout running, so
    # we can detect unbounded waits and kill the group when that happens.
    if not (group.blocked_queues & BIT(cs_id)) and not queue.timeout_suspended:
        queue.remaining_time = drm_sched_suspend_timeout(queue.scheduler)
        queue.timeout_suspended = True
        WARN_ON(queue.remaining_time > msecs_to_jiffies(JOB_TIMEOUT_MS))

    return 0


def csg_slot_sync_priority_locked(ptdev: PanthorDevice, csg_id: int) -> None:
    """``csg_slot_sync_priority_locked()``."""
    sched = _sched(ptdev)
    csg_slot = sched.csg_slots[csg_id]

    lockdep_assert_held(sched.lock)

    csg_iface = panthor_fw_get_csg_iface(ptdev, csg_id)
    csg_slot.priority = (csg_iface.input.endpoint_req & CSG_EP_REQ_PRIORITY_MASK) >> 28


def cs_slot_sync_queue_state_locked(ptdev: PanthorDevice, csg_id: int, cs_id: int) -> None:
    """``cs_slot_sync_queue_state_locked()``: queue state on suspend / STATUS_UPDATE."""
    sched = _sched(ptdev)
    group = sched.csg_slots[csg_id].group
    assert group is not None
    queue = group.queues[cs_id]
    assert queue is not None
    cs_iface = panthor_fw_get_cs_iface(group.ptdev, csg_id, cs_id)

    reason = cs_iface.output.status_blocked_reason
    if reason == CS_STATUS_BLOCKED_REASON_UNBLOCKED:
        if (
            queue.iface.input.insert == queue.iface.output.extract
            and cs_iface.output.status_scoreboards == 0
        ):
            group.idle_queues |= BIT(cs_id)
    elif reason == CS_STATUS_BLOCKED_REASON_SYNC_WAIT:
        # Sync waits are not modelled: the CSF never reports this reason.
        drm_WARN_ON(ptdev.base, True)
    # Other reasons are not blocking. Consider the queue as runnable in those cases.


def csg_slot_sync_queues_state_locked(ptdev: PanthorDevice, csg_id: int) -> None:
    """``csg_slot_sync_queues_state_locked()``."""
    sched = _sched(ptdev)
    csg_slot = sched.csg_slots[csg_id]
    group = csg_slot.group
    assert group is not None

    lockdep_assert_held(sched.lock)

    group.idle_queues = 0
    group.blocked_queues = 0

    for i in range(group.queue_count):
        if group.queues[i]:
            cs_slot_sync_queue_state_locked(ptdev, csg_id, i)


async def csg_slot_sync_state_locked(ptdev: PanthorDevice, csg_id: int) -> None:
    """``csg_slot_sync_state_locked()``: reflect the acked CSG state on the group."""
    sched = _sched(ptdev)
    csg_slot = sched.csg_slots[csg_id]

    lockdep_assert_held(sched.lock)

    csg_iface = panthor_fw_get_csg_iface(ptdev, csg_id)
    group = csg_slot.group

    if not group:
        return

    old_state = group.state
    csg_state = csg_iface.output.ack & CSG_STATE_MASK
    if csg_state in (CSG_STATE_START, CSG_STATE_RESUME):
        new_state = PANTHOR_CS_GROUP_ACTIVE
    elif csg_state == CSG_STATE_TERMINATE:
        new_state = PANTHOR_CS_GROUP_TERMINATED
    elif csg_state == CSG_STATE_SUSPEND:
        new_state = PANTHOR_CS_GROUP_SUSPENDED
    else:
        # The unknown state might be caused by a FW state corruption,
        # which means the group metadata can't be trusted anymore, and
        # the SUSPEND operation might propagate the corruption to the
        # suspend buffers. Flag the group state as unknown to make
        # sure it's unusable after that point.
        drm_err(ptdev.base, "Invalid state on CSG %d (state=%d)", csg_id, csg_state)
        new_state = PANTHOR_CS_GROUP_UNKNOWN_STATE

    if old_state == new_state:
        return

    # The unknown state might be caused by a FW issue, reset the FW to
    # take a fresh start.
    if new_state == PANTHOR_CS_GROUP_UNKNOWN_STATE:
        await panthor_device_schedule_reset(ptdev)

    if new_state == PANTHOR_CS_GROUP_SUSPENDED:
        csg_slot_sync_queues_state_locked(ptdev, csg_id)

    if old_state == PANTHOR_CS_GROUP_ACTIVE:
        # Reset the queue slots so we start from a clean
        # state when starting/resuming a new group on this
        # CSG slot. No wait needed here, and no ringbell
        # either, since the CS slot will only be re-used
        # on the next CSG start operation.
        for i in range(group.queue_count):
            if group.queues[i]:
                cs_slot_reset_locked(ptdev, csg_id, i)

    group.state = new_state
    current_kernel().ev(
        "group-state",
        group.label,
        f"{_GROUP_STATE_NAMES[old_state]} -> {_GROUP_STATE_NAMES[new_state]}",
    )


async def csg_slot_prog_locked(ptdev: PanthorDevice, csg_id: int, priority: int) -> int:
    """``csg_slot_prog_locked()``: program the slot's queues, AS and priority."""
    from .panthor_mmu import panthor_vm_as

    sched = _sched(ptdev)
    queue_mask = 0

    lockdep_assert_held(sched.lock)

    if priority > MAX_CSG_PRIO:
        return -EINVAL

    if drm_WARN_ON(ptdev.base, csg_id >= MAX_CSGS):
        return -EINVAL

    csg_slot = sched.csg_slots[csg_id]
    group = csg_slot.group
    if not group or group.state == PANTHOR_CS_GROUP_ACTIVE:
        return 0

    csg_iface = panthor_fw_get_csg_iface(group.ptdev, csg_id)

    for i in range(group.queue_count):
        if group.queues[i]:
            cs_slot_prog_locked(ptdev, csg_id, i)
            queue_mask |= BIT(i)

    csg_iface.input.allow_compute = group.compute_core_mask
    csg_iface.input.allow_fragment = group.fragment_core_mask
    csg_iface.input.allow_other = group.tiler_core_mask
    csg_iface.input.endpoint_req = (
        CSG_EP_REQ_COMPUTE(group.max_compute_cores)
        | CSG_EP_REQ_FRAGMENT(group.max_fragment_cores)
        | CSG_EP_REQ_TILER(group.max_tiler_cores)
        | CSG_EP_REQ_PRIORITY(priority)
    )
    assert group.vm is not None
    csg_iface.input.config = await panthor_vm_as(group.vm)

    csg_iface.input.suspend_buf = 0
    csg_iface.input.protm_suspend_buf = 0

    csg_iface.input.ack_irq_mask = 0xFFFFFFFF
    panthor_fw_toggle_reqs(csg_iface, "doorbell_req", "doorbell_ack", queue_mask)
    return 0


# ---------------------------------------------------------------------- FW events


async def cs_slot_process_fatal_event_locked(ptdev: PanthorDevice, csg_id: int, cs_id: int) -> None:
    """``cs_slot_process_fatal_event_locked()``."""
    sched = _sched(ptdev)
    csg_slot = sched.csg_slots[csg_id]
    group = csg_slot.group

    lockdep_assert_held(sched.lock)

    cs_iface = panthor_fw_get_cs_iface(ptdev, csg_id, cs_id)
    fatal = cs_iface.output.fatal
    info = cs_iface.output.fatal_info

    if group:
        group.fatal_queues |= BIT(cs_id)

    if CS_EXCEPTION_TYPE(fatal) == DRM_PANTHOR_EXCEPTION_CS_UNRECOVERABLE:
        # If this exception is unrecoverable, queue a reset, and make
        # sure we stop scheduling groups until the reset has happened.
        await panthor_device_schedule_reset(ptdev)
        await cancel_delayed_work(sched.tick_work)
    else:
        await sched_queue_delayed_work(sched, sched.tick_work, 0)

    current_kernel().ev(
        "drm_warn",
        f"CSG{csg_id}/CS{cs_id}",
        f"CS_FATAL.EXCEPTION_TYPE: {CS_EXCEPTION_TYPE(fatal):#x} "
        f"({panthor_exception_name(ptdev, CS_EXCEPTION_TYPE(fatal))}) "
        f"DATA {CS_EXCEPTION_DATA(fatal):#x} INFO {info:#x}",
    )


async def cs_slot_process_fault_event_locked(ptdev: PanthorDevice, csg_id: int, cs_id: int) -> None:
    """``cs_slot_process_fault_event_locked()``."""
    sched = _sched(ptdev)
    csg_slot = sched.csg_slots[csg_id]
    group = csg_slot.group
    queue = group.queues[cs_id] if group and cs_id < group.queue_count else None

    lockdep_assert_held(sched.lock)

    cs_iface = panthor_fw_get_cs_iface(ptdev, csg_id, cs_id)
    fault = cs_iface.output.fault

    if queue and CS_EXCEPTION_TYPE(fault) == DRM_PANTHOR_EXCEPTION_CS_INHERIT_FAULT:
        cs_extract = queue.iface.output.extract
        async with queue.fence_ctx.lock:
            for job in queue.fence_ctx.in_flight_jobs:
                if cs_extract >= job.ringbuf.end:
                    continue
                if cs_extract < job.ringbuf.start:
                    break
                assert job.done_fence is not None
                dma_fence_set_error(job.done_fence, -EINVAL)

    current_kernel().ev(
        "drm_warn",
        f"CSG{csg_id}/CS{cs_id}",
        f"CS_FAULT.EXCEPTION_TYPE: {CS_EXCEPTION_TYPE(fault):#x} "
        f"({panthor_exception_name(ptdev, CS_EXCEPTION_TYPE(fault))})",
    )


async def group_tiler_oom_work(work: WorkStruct) -> None:
    """``group_tiler_oom_work()``: tiler OOM events are not modelled (none is ever raised)."""
    group: PanthorGroup = work.container
    await atomic_xchg(group.tiler_oom, 0)
    await group_put(group)


async def _group_tiler_oom_work_fn(work: WorkStruct) -> None:
    await group_tiler_oom_work(work)


async def cs_slot_process_irq_locked(ptdev: PanthorDevice, csg_id: int, cs_id: int) -> bool:
    """``cs_slot_process_irq_locked()``."""
    sched = _sched(ptdev)
    lockdep_assert_held(sched.lock)

    cs_iface = panthor_fw_get_cs_iface(ptdev, csg_id, cs_id)
    req = cs_iface.input.req
    ack = cs_iface.output.ack
    events = (req ^ ack) & (CS_FATAL | CS_FAULT | CS_TILER_OOM)

    if events & CS_FATAL:
        await cs_slot_process_fatal_event_locked(ptdev, csg_id, cs_id)

    if events & CS_FAULT:
        await cs_slot_process_fault_event_locked(ptdev, csg_id, cs_id)

    # We don't acknowledge the TILER_OOM event since its handling is
    # deferred to a separate work.
    panthor_fw_update_reqs(cs_iface, "req", ack, CS_FATAL | CS_FAULT)

    return (events & (CS_FAULT | CS_TILER_OOM)) != 0


def csg_slot_sync_idle_state_locked(ptdev: PanthorDevice, csg_id: int) -> None:
    """``csg_slot_sync_idle_state_locked()``."""
    sched = _sched(ptdev)
    csg_slot = sched.csg_slots[csg_id]

    lockdep_assert_held(sched.lock)

    csg_iface = panthor_fw_get_csg_iface(ptdev, csg_id)
    csg_slot.idle = bool(csg_iface.output.status_state & CSG_STATUS_STATE_IS_IDLE)


async def csg_slot_process_idle_event_locked(ptdev: PanthorDevice, csg_id: int) -> None:
    """``csg_slot_process_idle_event_locked()``."""
    sched = _sched(ptdev)

    lockdep_assert_held(sched.lock)

    sched.might_have_idle_groups = True

    # Schedule a tick so we can evict idle groups and schedule non-idle
    # ones. This will also update runtime PM and devfreq busy/idle states,
    # so the device can lower its frequency or get suspended.
    await sched_queue_delayed_work(sched, sched.tick_work, 0)


async def csg_slot_sync_update_locked(ptdev: PanthorDevice, csg_id: int) -> None:
    """``csg_slot_sync_update_locked()``: signal the group's done fences from a work."""
    sched = _sched(ptdev)
    csg_slot = sched.csg_slots[csg_id]
    group = csg_slot.group

    lockdep_assert_held(sched.lock)

    if group:
        await group_queue_work(group, group.sync_upd_work)

    await sched_queue_work(sched, sched.sync_upd_work)


async def csg_slot_process_progress_timer_event_locked(ptdev: PanthorDevice, csg_id: int) -> None:
    """``csg_slot_process_progress_timer_event_locked()``."""
    sched = _sched(ptdev)
    csg_slot = sched.csg_slots[csg_id]

    lockdep_assert_held(sched.lock)

    group = csg_slot.group
    if not drm_WARN_ON(ptdev.base, not group):
        assert group is not None
        group.timedout = True

    await sched_queue_delayed_work(sched, sched.tick_work, 0)


async def sched_process_csg_irq_locked(ptdev: PanthorDevice, csg_id: int) -> None:
    """``sched_process_csg_irq_locked()``: handle the events of one CSG slot."""
    sched = _sched(ptdev)
    ring_cs_db_mask = 0

    lockdep_assert_held(sched.lock)

    if drm_WARN_ON(ptdev.base, csg_id >= sched.csg_slot_count):
        return

    csg_iface = panthor_fw_get_csg_iface(ptdev, csg_id)
    await preempt()  # READ_ONCE() of the FW interface, which the GPU updates meanwhile
    req = csg_iface.input.req
    ack = csg_iface.output.ack
    cs_irq_req = csg_iface.output.cs_irq_req
    cs_irq_ack = csg_iface.input.cs_irq_ack
    csg_events = (req ^ ack) & CSG_EVT_MASK

    # There may not be any pending CSG/CS interrupts to process
    if req == ack and cs_irq_req == cs_irq_ack:
        return

    # Immediately set IRQ_ACK bits to be same as the IRQ_REQ bits before
    # examining the CS_ACK & CS_REQ bits. This would ensure that Host
    # doesn't miss an interrupt for the CS in the race scenario where
    # whilst Host is servicing an interrupt for the CS, firmware sends
    # another interrupt for that CS.
    csg_iface.input.cs_irq_ack = cs_irq_req

    panthor_fw_update_reqs(
        csg_iface, "req", ack, CSG_SYNC_UPDATE | CSG_IDLE | CSG_PROGRESS_TIMER_EVENT
    )

    if csg_events & CSG_IDLE:
        await csg_slot_process_idle_event_locked(ptdev, csg_id)

    if csg_events & CSG_PROGRESS_TIMER_EVENT:
        await csg_slot_process_progress_timer_event_locked(ptdev, csg_id)

    cs_irqs = cs_irq_req ^ cs_irq_ack
    while cs_irqs:
        cs_id = ffs(cs_irqs) - 1

        if await cs_slot_process_irq_locked(ptdev, csg_id, cs_id):
            ring_cs_db_mask |= BIT(cs_id)

        cs_irqs &= ~BIT(cs_id)

    if csg_events & CSG_SYNC_UPDATE:
        await csg_slot_sync_update_locked(ptdev, csg_id)

    if ring_cs_db_mask:
        panthor_fw_toggle_reqs(csg_iface, "doorbell_req", "doorbell_ack", ring_cs_db_mask)

    await panthor_fw_ring_csg_doorbells(ptdev, BIT(csg_id))


async def sched_process_idle_event_locked(ptdev: PanthorDevice) -> None:
    """``sched_process_idle_event_locked()``."""
    glb_iface = panthor_fw_get_glb_iface(ptdev)

    lockdep_assert_held(_sched(ptdev).lock)

    # Acknowledge the idle event and schedule a tick.
    panthor_fw_update_reqs(glb_iface, "req", glb_iface.output.ack, GLB_IDLE)
    await sched_queue_delayed_work(_sched(ptdev), _sched(ptdev).tick_work, 0)


async def sched_process_global_irq_locked(ptdev: PanthorDevice) -> None:
    """``sched_process_global_irq_locked()`` - Process the scheduling part of a global IRQ."""
    glb_iface = panthor_fw_get_glb_iface(ptdev)

    lockdep_assert_held(_sched(ptdev).lock)

    await preempt()  # READ_ONCE()
    req = glb_iface.input.req
    ack = glb_iface.output.ack
    evts = (req ^ ack) & GLB_EVT_MASK

    if evts & GLB_IDLE:
        await sched_process_idle_event_locked(ptdev)


async def process_fw_events_work(work: WorkStruct) -> None:
    """``process_fw_events_work()``: FW events, under ``sched->lock``."""
    from .regs import JOB_INT_GLOBAL_IF

    sched: PanthorScheduler = work.container
    events = await atomic_xchg(sched.fw_events, 0)
    ptdev = sched.ptdev

    await mutex_lock(sched.lock)

    if events & JOB_INT_GLOBAL_IF:
        await sched_process_global_irq_locked(ptdev)
        events &= ~JOB_INT_GLOBAL_IF

    while events:
        csg_id = ffs(events) - 1

        await sched_process_csg_irq_locked(ptdev, csg_id)
        events &= ~BIT(csg_id)

    await mutex_unlock(sched.lock)


async def _process_fw_events_work_fn(work: WorkStruct) -> None:
    await process_fw_events_work(work)


async def panthor_sched_report_fw_events(ptdev: PanthorDevice, events: int) -> None:
    """``panthor_sched_report_fw_events()`` - Report FW events to the scheduler."""
    await preempt()  # ptdev->scheduler is read without a lock
    if not ptdev.scheduler:
        return

    sched = _sched(ptdev)
    await preempt()  # atomic_or()
    sched.fw_events.v |= events
    await sched_queue_work(sched, sched.fw_events_work)


class _PanthorQueueFenceOps(DmaFenceOps):
    """``panthor_queue_fence_ops``."""

    driver_name = "panthor"

    def get_timeline_name(self, fence: DmaFence) -> str:
        return "queue-fence"

    def signaller(self, fence: DmaFence) -> tuple[str, Any]:
        return (
            "the GPU's SYNC_ADD64 on the queue's sync object, then group_sync_upd_work(), "
            "or the group's termination (group_term_post_processing())",
            None,
        )


panthor_queue_fence_ops: Final = _PanthorQueueFenceOps()


# ---------------------------------------------------------------------- CSG slot updates


class PanthorCsgSlotsUpdCtx:
    """``struct panthor_csg_slots_upd_ctx``."""

    def __init__(self) -> None:
        self.memset()

    def memset(self) -> None:
        self.update_mask = 0
        self.timedout_mask = 0
        self.requests: list[list[int]] = [[0, 0] for _ in range(MAX_CSGS)]


def csgs_upd_ctx_init(ctx: PanthorCsgSlotsUpdCtx) -> None:
    """``csgs_upd_ctx_init()``."""
    ctx.memset()


def csgs_upd_ctx_queue_reqs(
    ptdev: PanthorDevice, ctx: PanthorCsgSlotsUpdCtx, csg_id: int, value: int, mask: int
) -> None:
    """``csgs_upd_ctx_queue_reqs()``."""
    if drm_WARN_ON(ptdev.base, not mask) or drm_WARN_ON(
        ptdev.base, csg_id >= _sched(ptdev).csg_slot_count
    ):
        return

    ctx.requests[csg_id][0] = (ctx.requests[csg_id][0] & ~mask) | (value & mask)
    ctx.requests[csg_id][1] |= mask
    ctx.update_mask |= BIT(csg_id)


async def csgs_upd_ctx_apply_locked(ptdev: PanthorDevice, ctx: PanthorCsgSlotsUpdCtx) -> int:
    """``csgs_upd_ctx_apply_locked()``: post the requests, ring, wait for the acks (100 ms)."""
    sched = _sched(ptdev)
    update_slots = ctx.update_mask

    lockdep_assert_held(sched.lock)

    if not ctx.update_mask:
        return 0

    while update_slots:
        csg_id = ffs(update_slots) - 1

        update_slots &= ~BIT(csg_id)
        csg_iface = panthor_fw_get_csg_iface(ptdev, csg_id)
        panthor_fw_update_reqs(csg_iface, "req", ctx.requests[csg_id][0], ctx.requests[csg_id][1])

    await panthor_fw_ring_csg_doorbells(ptdev, ctx.update_mask)

    update_slots = ctx.update_mask
    while update_slots:
        csg_id = ffs(update_slots) - 1
        req_mask = ctx.requests[csg_id][1]

        update_slots &= ~BIT(csg_id)
        csg_iface = panthor_fw_get_csg_iface(ptdev, csg_id)

        ret, acked = await panthor_fw_csg_wait_acks(ptdev, csg_id, req_mask, 100)

        if acked & CSG_ENDPOINT_CONFIG:
            csg_slot_sync_priority_locked(ptdev, csg_id)

        if acked & CSG_STATE_MASK:
            await csg_slot_sync_state_locked(ptdev, csg_id)

        if acked & CSG_STATUS_UPDATE:
            csg_slot_sync_queues_state_locked(ptdev, csg_id)
            csg_slot_sync_idle_state_locked(ptdev, csg_id)

        if (
            ret
            and acked != req_mask
            and ((csg_iface.input.req ^ csg_iface.output.ack) & req_mask) != 0
        ):
            drm_err(ptdev.base, "CSG %d update request timedout", csg_id)
            ctx.timedout_mask |= BIT(csg_id)

    if ctx.timedout_mask:
        return -ETIMEDOUT

    return 0


# ---------------------------------------------------------------------- the tick


class PanthorSchedTickCtx:
    """``struct panthor_sched_tick_ctx``."""

    def __init__(self) -> None:
        self.memset()

    def memset(self) -> None:
        self.old_groups: list[ListHead[PanthorGroup]] = [
            ListHead(f"ctx->old_groups[{i}]") for i in range(PANTHOR_CSG_PRIORITY_COUNT)
        ]
        self.groups: list[ListHead[PanthorGroup]] = [
            ListHead(f"ctx->groups[{i}]") for i in range(PANTHOR_CSG_PRIORITY_COUNT)
        ]
        self.idle_group_count = 0
        self.group_count = 0
        self.min_priority = PANTHOR_CSG_PRIORITY_COUNT
        self.vms: list[PanthorVm | None] = [None] * MAX_CS_PER_CSG
        self.as_count = 0
        self.immediate_tick = False
        self.csg_upd_failed_mask = 0


def tick_ctx_is_full(sched: PanthorScheduler, ctx: PanthorSchedTickCtx) -> bool:
    """``tick_ctx_is_full()``."""
    return ctx.group_count == sched.csg_slot_count


def group_is_idle(group: PanthorGroup) -> bool:
    """``group_is_idle()``."""
    ptdev = group.ptdev

    if group.csg_id >= 0:
        return _sched(ptdev).csg_slots[group.csg_id].idle

    inactive_queues = group.idle_queues | group.blocked_queues
    return hweight32(inactive_queues) == group.queue_count


def group_can_run(group: PanthorGroup) -> bool:
    """``group_can_run()``."""
    return (
        group.state != PANTHOR_CS_GROUP_TERMINATED
        and group.state != PANTHOR_CS_GROUP_UNKNOWN_STATE
        and not group.destroyed
        and group.fatal_queues == 0
        and not group.timedout
    )


async def tick_ctx_pick_groups_from_list(
    sched: PanthorScheduler,
    ctx: PanthorSchedTickCtx,
    queue: ListHead[PanthorGroup],
    skip_idle_groups: bool,
    owned_by_tick_ctx: bool,
) -> None:
    """``tick_ctx_pick_groups_from_list()``: at most ``as_slot_count`` distinct VMs."""
    if tick_ctx_is_full(sched, ctx):
        return

    for group in queue:  # list_for_each_entry_safe
        if not group_can_run(group):
            continue

        if skip_idle_groups and group_is_idle(group):
            continue

        i = 0
        while i < ctx.as_count:
            if ctx.vms[i] is group.vm:
                break
            i += 1

        if i == ctx.as_count and ctx.as_count == sched.as_slot_count:
            continue

        if not owned_by_tick_ctx:
            await group_get(group)

        list_move_tail(group.run_node, ctx.groups[group.priority])
        ctx.group_count += 1
        if group_is_idle(group):
            ctx.idle_group_count += 1

        if i == ctx.as_count:
            ctx.vms[ctx.as_count] = group.vm
            ctx.as_count += 1

        if ctx.min_priority > group.priority:
            ctx.min_priority = group.priority

        if tick_ctx_is_full(sched, ctx):
            return


def tick_ctx_insert_old_group(
    sched: PanthorScheduler, ctx: PanthorSchedTickCtx, group: PanthorGroup, full_tick: bool
) -> None:
    """``tick_ctx_insert_old_group()``: rotate by CSG slot priority on a full tick."""
    csg_slot = sched.csg_slots[group.csg_id]

    if not full_tick:
        list_add_tail(group.run_node, ctx.old_groups[group.priority])
        return

    # Rotate to make sure groups with lower CSG slot
    # priorities have a chance to get a higher CSG slot
    # priority next time they get picked. This priority
    # has an impact on resource request ordering, so it's
    # important to make sure we don't let one group starve
    # all other groups with the same group priority.
    assert csg_slot.group is not None
    head = ctx.old_groups[csg_slot.group.priority]
    for other_group in head:
        other_csg_slot = sched.csg_slots[other_group.csg_id]

        if other_csg_slot.priority > csg_slot.priority:
            # list_add_tail(&csg_slot->group->run_node, &other_group->run_node)
            list_add_before(csg_slot.group.run_node, other_group.run_node)
            return

    list_add_tail(group.run_node, ctx.old_groups[group.priority])


async def tick_ctx_init(sched: PanthorScheduler, ctx: PanthorSchedTickCtx, full_tick: bool) -> None:
    """``tick_ctx_init()``: every slotted group into old_groups, faulty VMs kill their groups."""
    from .panthor_mmu import panthor_vm_has_unhandled_faults

    ptdev = sched.ptdev
    upd_ctx = PanthorCsgSlotsUpdCtx()

    ctx.memset()
    csgs_upd_ctx_init(upd_ctx)

    ctx.min_priority = PANTHOR_CSG_PRIORITY_COUNT

    for i in range(sched.csg_slot_count):
        csg_slot = sched.csg_slots[i]
        group = csg_slot.group

        if not group:
            continue

        csg_iface = panthor_fw_get_csg_iface(ptdev, i)
        await group_get(group)

        # If there was unhandled faults on the VM, force processing of
        # CSG IRQs, so we can flag the faulty queue.
        assert group.vm is not None
        if await panthor_vm_has_unhandled_faults(group.vm):
            await sched_process_csg_irq_locked(ptdev, i)

            # No fatal fault reported, flag all queues as faulty.
            if not group.fatal_queues:
                group.fatal_queues |= GENMASK(group.queue_count - 1, 0)

        tick_ctx_insert_old_group(sched, ctx, group, full_tick)
        csgs_upd_ctx_queue_reqs(
            ptdev, upd_ctx, i, csg_iface.output.ack ^ CSG_STATUS_UPDATE, CSG_STATUS_UPDATE
        )

    ret = await csgs_upd_ctx_apply_locked(ptdev, upd_ctx)
    if ret:
        await panthor_device_schedule_reset(ptdev)
        ctx.csg_upd_failed_mask |= upd_ctx.timedout_mask


async def group_term_post_processing(group: PanthorGroup) -> None:
    """``group_term_post_processing()``: fail the in-flight jobs, unblock syncobj waiters."""
    faulty_jobs: list[PanthorJob] = []  # LIST_HEAD(faulty_jobs)

    if drm_WARN_ON(group.ptdev.base, group_can_run(group)):
        return

    cookie = dma_fence_begin_signalling()
    for i in range(group.queue_count):
        queue = group.queues[i]

        if group.fatal_queues & BIT(i):
            err = -EINVAL
        elif group.timedout:
            err = -ETIMEDOUT
        else:
            err = -ECANCELED

        if not queue:
            continue

        async with queue.fence_ctx.lock:
            for job in queue.fence_ctx.in_flight_jobs:
                list_del_init(job.node)
                faulty_jobs.append(job)
                assert job.done_fence is not None
                dma_fence_set_error(job.done_fence, err)
                await dma_fence_signal_locked(job.done_fence)

        # Manually update the syncobj seqno to unblock waiters.
        syncobj = _syncobj_map(group)
        syncobj.write(i * SYNCOBJ64_SIZE + SYNCOBJ64_STATUS, 0xFFFFFFFF)
        syncobj.write(i * SYNCOBJ64_SIZE, await atomic_read(queue.fence_ctx.seqno))
        await sched_queue_work(_sched(group.ptdev), _sched(group.ptdev).sync_upd_work)
    dma_fence_end_signalling(cookie)

    for job in faulty_jobs:
        await panthor_job_put(job.base)


async def group_term_work(work: WorkStruct) -> None:
    """``group_term_work()``."""
    group: PanthorGroup = work.container

    await group_term_post_processing(group)
    await group_put(group)


async def _group_term_work_fn(work: WorkStruct) -> None:
    await group_term_work(work)


async def tick_ctx_cleanup(sched: PanthorScheduler, ctx: PanthorSchedTickCtx) -> None:
    """``tick_ctx_cleanup()``: terminate dead groups, return the others to their lists."""
    ptdev = sched.ptdev

    for i in range(len(ctx.old_groups)):
        for group in ctx.old_groups[i]:
            # If everything went fine, we should only have groups
            # to be terminated in the old_groups lists.
            drm_WARN_ON(ptdev.base, not ctx.csg_upd_failed_mask and group_can_run(group))

            if not group_can_run(group):
                list_del_init(group.run_node)
                list_del_init(group.wait_node)
                await group_queue_work(group, group.term_work)
            elif group.csg_id >= 0:
                list_del_init(group.run_node)
            else:
                list_move(
                    group.run_node,
                    sched.groups.idle[group.priority]
                    if group_is_idle(group)
                    else sched.groups.runnable[group.priority],
                )
            await group_put(group)

    for i in range(len(ctx.groups)):
        # If everything went fine, the groups to schedule lists should
        # be empty.
        drm_WARN_ON(ptdev.base, not ctx.csg_upd_failed_mask and not list_empty(ctx.groups[i]))

        for group in ctx.groups[i]:
            if group.csg_id >= 0:
                list_del_init(group.run_node)
            else:
                list_move(
                    group.run_node,
                    sched.groups.idle[group.priority]
                    if group_is_idle(group)
                    else sched.groups.runnable[group.priority],
                )
            await group_put(group)


async def tick_ctx_apply(sched: PanthorScheduler, ctx: PanthorSchedTickCtx) -> None:
    """``tick_ctx_apply()``: suspend/terminate evicted groups, start the picked ones."""
    ptdev = sched.ptdev
    new_csg_prio = MAX_CSG_PRIO
    free_csg_slots = 0
    upd_ctx = PanthorCsgSlotsUpdCtx()

    csgs_upd_ctx_init(upd_ctx)

    for prio in range(PANTHOR_CSG_PRIORITY_COUNT - 1, -1, -1):
        # Suspend or terminate evicted groups.
        for group in ctx.old_groups[prio]:
            term = not group_can_run(group)
            csg_id = group.csg_id

            if drm_WARN_ON(ptdev.base, csg_id < 0):
                continue

            csgs_upd_ctx_queue_reqs(
                ptdev,
                upd_ctx,
                csg_id,
                CSG_STATE_TERMINATE if term else CSG_STATE_SUSPEND,
                CSG_STATE_MASK,
            )

        # Update priorities on already running groups.
        for group in ctx.groups[prio]:
            csg_id = group.csg_id

            if csg_id < 0:
                new_csg_prio -= 1
                continue

            csg_slot = sched.csg_slots[csg_id]
            csg_iface = panthor_fw_get_csg_iface(ptdev, csg_id)
            if csg_slot.priority == new_csg_prio:
                new_csg_prio -= 1
                continue

            panthor_fw_update_reqs(
                csg_iface,
                "endpoint_req",
                CSG_EP_REQ_PRIORITY(new_csg_prio),
                CSG_EP_REQ_PRIORITY_MASK,
            )
            csgs_upd_ctx_queue_reqs(
                ptdev,
                upd_ctx,
                csg_id,
                csg_iface.output.ack ^ CSG_ENDPOINT_CONFIG,
                CSG_ENDPOINT_CONFIG,
            )
            new_csg_prio -= 1

    ret = await csgs_upd_ctx_apply_locked(ptdev, upd_ctx)
    if ret:
        await panthor_device_schedule_reset(ptdev)
        ctx.csg_upd_failed_mask |= upd_ctx.timedout_mask
        return

    # Unbind evicted groups.
    for prio in range(PANTHOR_CSG_PRIORITY_COUNT - 1, -1, -1):
        for group in ctx.old_groups[prio]:
            # This group is gone. Process interrupts to clear
            # any pending interrupts before we start the new
            # group.
            if group.csg_id >= 0:
                await sched_process_csg_irq_locked(ptdev, group.csg_id)

            await group_unbind_locked(group)

    for i in range(sched.csg_slot_count):
        if not sched.csg_slots[i].group:
            free_csg_slots |= BIT(i)

    csgs_upd_ctx_init(upd_ctx)
    new_csg_prio = MAX_CSG_PRIO

    # Start new groups.
    for prio in range(PANTHOR_CSG_PRIORITY_COUNT - 1, -1, -1):
        for group in ctx.groups[prio]:
            csg_id = group.csg_id

            if csg_id >= 0:
                new_csg_prio -= 1
                continue

            csg_id = ffs(free_csg_slots) - 1
            if drm_WARN_ON(ptdev.base, csg_id < 0):
                break

            csg_iface = panthor_fw_get_csg_iface(ptdev, csg_id)
            await group_bind_locked(group, csg_id)
            await csg_slot_prog_locked(ptdev, csg_id, new_csg_prio)
            new_csg_prio -= 1
            csgs_upd_ctx_queue_reqs(
                ptdev,
                upd_ctx,
                csg_id,
                CSG_STATE_RESUME if group.state == PANTHOR_CS_GROUP_SUSPENDED else CSG_STATE_START,
                CSG_STATE_MASK,
            )
            csgs_upd_ctx_queue_reqs(
                ptdev,
                upd_ctx,
                csg_id,
                csg_iface.output.ack ^ CSG_ENDPOINT_CONFIG,
                CSG_ENDPOINT_CONFIG,
            )
            free_csg_slots &= ~BIT(csg_id)

    ret = await csgs_upd_ctx_apply_locked(ptdev, upd_ctx)
    if ret:
        await panthor_device_schedule_reset(ptdev)
        ctx.csg_upd_failed_mask |= upd_ctx.timedout_mask
        return

    for prio in range(PANTHOR_CSG_PRIORITY_COUNT - 1, -1, -1):
        for group in ctx.groups[prio]:
            list_del_init(group.run_node)

            # If the group has been destroyed while we were
            # scheduling, ask for an immediate tick to
            # re-evaluate as soon as possible and get rid of
            # this dangling group.
            if group.destroyed:
                ctx.immediate_tick = True
            await group_put(group)

        # Return evicted groups to the idle or run queues. Groups
        # that can no longer be run (because they've been destroyed
        # or experienced an unrecoverable error) will be scheduled
        # for destruction in tick_ctx_cleanup().
        for group in ctx.old_groups[prio]:
            if not group_can_run(group):
                continue

            if group_is_idle(group):
                list_move_tail(group.run_node, sched.groups.idle[prio])
            else:
                list_move_tail(group.run_node, sched.groups.runnable[prio])
            await group_put(group)

    sched.used_csg_slot_count = ctx.group_count
    sched.might_have_idle_groups = ctx.idle_group_count > 0


def tick_ctx_update_resched_target(sched: PanthorScheduler, ctx: PanthorSchedTickCtx) -> int:
    """``tick_ctx_update_resched_target()``: jiffies to the next tick, or U64_MAX."""
    # We had space left, no need to reschedule until some external event happens.
    if not tick_ctx_is_full(sched, ctx):
        sched.resched_target = U64_MAX
        return U64_MAX

    # If idle groups were scheduled, no need to wake up until some external
    # event happens (group unblocked, new job submitted, ...).
    if ctx.idle_group_count:
        sched.resched_target = U64_MAX
        return U64_MAX

    if drm_WARN_ON(sched.ptdev.base, ctx.min_priority >= PANTHOR_CSG_PRIORITY_COUNT):
        sched.resched_target = U64_MAX
        return U64_MAX

    # If there are groups of the same priority waiting, we need to
    # keep the scheduler ticking, otherwise, we'll just wait for
    # new groups with higher priority to be queued.
    if not list_empty(sched.groups.runnable[ctx.min_priority]):
        resched_target = sched.last_tick + sched.tick_period

        if sched.resched_target < sched.last_tick or resched_target < sched.resched_target:
            sched.resched_target = resched_target

        return sched.resched_target - sched.last_tick

    sched.resched_target = U64_MAX
    return U64_MAX


async def tick_work(work: WorkStruct) -> None:
    """``tick_work()``: the scheduling tick, all of it under ``sched->lock``."""
    sched: PanthorScheduler = work.container
    ptdev = sched.ptdev
    ctx = PanthorSchedTickCtx()
    remaining_jiffies = 0
    now = jiffies()

    entered, cookie = await drm_dev_enter(ptdev.base)
    if not entered:
        return

    ret = await panthor_device_resume_and_get(ptdev)
    if drm_WARN_ON(ptdev.base, ret):
        await drm_dev_exit(cookie)  # goto out_dev_exit
        return

    if now < sched.resched_target:
        remaining_jiffies = sched.resched_target - now

    await mutex_lock(sched.lock)
    current_kernel().ev("tick", "sched", f"full={remaining_jiffies == 0}")
    if await panthor_device_reset_is_pending(sched.ptdev):
        goto = "out_unlock"
    else:
        goto = ""
        await tick_ctx_init(sched, ctx, remaining_jiffies != 0)
        if ctx.csg_upd_failed_mask:
            goto = "out_cleanup_ctx"

    if not goto:
        if remaining_jiffies:
            # Scheduling forced in the middle of a tick. Only RT groups
            # can preempt non-RT ones. Currently running RT groups can't be
            # preempted.
            prio = PANTHOR_CSG_PRIORITY_COUNT - 1
            while prio >= 0 and not tick_ctx_is_full(sched, ctx):
                await tick_ctx_pick_groups_from_list(sched, ctx, ctx.old_groups[prio], True, True)
                if prio == PANTHOR_CSG_PRIORITY_RT:
                    await tick_ctx_pick_groups_from_list(
                        sched, ctx, sched.groups.runnable[prio], True, False
                    )
                prio -= 1

        # First pick non-idle groups
        prio = PANTHOR_CSG_PRIORITY_COUNT - 1
        while prio >= 0 and not tick_ctx_is_full(sched, ctx):
            await tick_ctx_pick_groups_from_list(
                sched, ctx, sched.groups.runnable[prio], True, False
            )
            await tick_ctx_pick_groups_from_list(sched, ctx, ctx.old_groups[prio], True, True)
            prio -= 1

        # If we have free CSG slots left, pick idle groups
        prio = PANTHOR_CSG_PRIORITY_COUNT - 1
        while prio >= 0 and not tick_ctx_is_full(sched, ctx):
            # Check the old_group queue first to avoid reprogramming the slots
            await tick_ctx_pick_groups_from_list(sched, ctx, ctx.old_groups[prio], False, True)
            await tick_ctx_pick_groups_from_list(sched, ctx, sched.groups.idle[prio], False, False)
            prio -= 1

        await tick_ctx_apply(sched, ctx)
        if ctx.csg_upd_failed_mask:
            goto = "out_cleanup_ctx"

    if not goto:
        if ctx.idle_group_count == ctx.group_count:
            if sched.pm.has_ref:
                await pm_runtime_put_autosuspend(ptdev)
                sched.pm.has_ref = False
        else:
            if not sched.pm.has_ref:
                await pm_runtime_get(ptdev)
                sched.pm.has_ref = True

        sched.last_tick = now
        resched_delay = tick_ctx_update_resched_target(sched, ctx)
        if ctx.immediate_tick:
            resched_delay = 0

        if resched_delay != U64_MAX:
            await sched_queue_delayed_work(sched, sched.tick_work, resched_delay)
        goto = "out_cleanup_ctx"

    if goto == "out_cleanup_ctx":
        await tick_ctx_cleanup(sched, ctx)

    # out_unlock:
    await mutex_unlock(sched.lock)
    await pm_runtime_mark_last_busy(ptdev)
    await pm_runtime_put_autosuspend(ptdev)

    # out_dev_exit:
    await drm_dev_exit(cookie)


async def _tick_work_fn(work: WorkStruct) -> None:
    await tick_work(work)


async def sync_upd_work(work: WorkStruct) -> None:
    """``sync_upd_work()``: unblock groups waiting on sync objects.

    Sync waits are not modelled, so ``groups.waiting`` is always empty; the
    work still takes ``sched->lock`` as the kernel's does.
    """
    sched: PanthorScheduler = work.container
    immediate_tick = False

    await mutex_lock(sched.lock)
    for group in sched.groups.waiting:
        if not group.blocked_queues:
            list_del_init(group.wait_node)
    await mutex_unlock(sched.lock)

    if immediate_tick:
        await sched_queue_delayed_work(sched, sched.tick_work, 0)


async def _sync_upd_work_fn(work: WorkStruct) -> None:
    await sync_upd_work(work)


async def group_schedule_locked(group: PanthorGroup, queue_mask: int) -> None:
    """``group_schedule_locked()``: a queue of an unscheduled group got work."""
    ptdev = group.ptdev
    sched = _sched(ptdev)
    queue = sched.groups.runnable[group.priority]
    delay_jiffies = 0

    if not group_can_run(group):
        return

    # All updated queues are blocked, no need to wake up the scheduler.
    if (queue_mask & group.blocked_queues) == queue_mask:
        return

    was_idle = group_is_idle(group)
    group.idle_queues &= ~queue_mask

    # Don't mess up with the lists if we're in a middle of a reset.
    if await atomic_read(sched.reset.in_progress):
        return

    if was_idle and not group_is_idle(group):
        list_move_tail(group.run_node, queue)

    # RT groups are preemptive.
    if group.priority == PANTHOR_CSG_PRIORITY_RT:
        await sched_queue_delayed_work(sched, sched.tick_work, 0)
        return

    # Some groups might be idle, force an immediate tick to
    # re-evaluate.
    if sched.might_have_idle_groups:
        await sched_queue_delayed_work(sched, sched.tick_work, 0)
        return

    # Scheduler is ticking, nothing to do.
    if sched.resched_target != U64_MAX:
        # If there are free slots, force immediating ticking.
        if sched.used_csg_slot_count < sched.csg_slot_count:
            await sched_queue_delayed_work(sched, sched.tick_work, 0)

        return

    # Scheduler tick was off, recalculate the resched_target based on the
    # last tick event, and queue the scheduler work.
    now = jiffies()
    sched.resched_target = sched.last_tick + sched.tick_period
    if sched.used_csg_slot_count == sched.csg_slot_count and now < sched.resched_target:
        delay_jiffies = sched.resched_target - now

    await sched_queue_delayed_work(sched, sched.tick_work, delay_jiffies)


async def queue_stop(queue: PanthorQueue, bad_job: PanthorJob | None) -> None:
    """``queue_stop()``."""
    await drm_sched_stop(queue.scheduler, bad_job.base if bad_job else None)


async def queue_start(queue: PanthorQueue) -> None:
    """``queue_start()``: re-assign the parent fences, restart the drm_sched."""
    # Re-assign the parent fences.
    for job in list(queue.scheduler.pending_list):
        assert isinstance(job, PanthorJob) and job.base.s_fence is not None
        job.base.s_fence.parent = await dma_fence_get(job.done_fence)

    await drm_sched_start(queue.scheduler, 0)


async def panthor_group_stop(group: PanthorGroup) -> None:
    """``panthor_group_stop()``: stop the queues, park the group on reset.stopped_groups."""
    sched = _sched(group.ptdev)

    lockdep_assert_held(sched.reset.lock)

    for i in range(group.queue_count):
        q = group.queues[i]
        assert q is not None
        await queue_stop(q, None)

    await group_get(group)
    list_move_tail(group.run_node, sched.reset.stopped_groups)


async def panthor_group_start(group: PanthorGroup) -> None:
    """``panthor_group_start()``."""
    sched = _sched(group.ptdev)

    lockdep_assert_held(sched.reset.lock)

    for i in range(group.queue_count):
        q = group.queues[i]
        assert q is not None
        await queue_start(q)

    if group_can_run(group):
        list_move_tail(
            group.run_node,
            sched.groups.idle[group.priority]
            if group_is_idle(group)
            else sched.groups.runnable[group.priority],
        )
    else:
        list_del_init(group.run_node)
        list_del_init(group.wait_node)
        await group_queue_work(group, group.term_work)

    await group_put(group)


async def panthor_sched_immediate_tick(ptdev: PanthorDevice) -> None:
    """``panthor_sched_immediate_tick()``."""
    sched = _sched(ptdev)

    await sched_queue_delayed_work(sched, sched.tick_work, 0)


async def panthor_sched_report_mmu_fault(ptdev: PanthorDevice) -> None:
    """``panthor_sched_report_mmu_fault()`` - Report MMU faults to the scheduler."""
    await preempt()  # ptdev->scheduler is read without a lock
    # Force a tick to immediately kill faulty groups.
    if ptdev.scheduler:
        await panthor_sched_immediate_tick(ptdev)


async def panthor_sched_resume(ptdev: PanthorDevice) -> None:
    """``panthor_sched_resume()``: force a tick to re-evaluate after a resume."""
    await panthor_sched_immediate_tick(ptdev)


async def panthor_sched_suspend(ptdev: PanthorDevice) -> None:
    """``panthor_sched_suspend()``: suspend (or terminate) every slot, unbind every group."""
    sched = _sched(ptdev)
    upd_ctx = PanthorCsgSlotsUpdCtx()

    await mutex_lock(sched.lock)
    csgs_upd_ctx_init(upd_ctx)
    for i in range(sched.csg_slot_count):
        csg_slot = sched.csg_slots[i]

        if csg_slot.group:
            csgs_upd_ctx_queue_reqs(
                ptdev,
                upd_ctx,
                i,
                CSG_STATE_SUSPEND if group_can_run(csg_slot.group) else CSG_STATE_TERMINATE,
                CSG_STATE_MASK,
            )

    suspended_slots = upd_ctx.update_mask

    await csgs_upd_ctx_apply_locked(ptdev, upd_ctx)
    suspended_slots &= ~upd_ctx.timedout_mask

    if upd_ctx.timedout_mask:
        slot_mask = upd_ctx.timedout_mask

        drm_err(ptdev.base, "CSG suspend failed, escalating to termination")
        csgs_upd_ctx_init(upd_ctx)
        while slot_mask:
            csg_id = ffs(slot_mask) - 1
            csg_slot = sched.csg_slots[csg_id]
            assert csg_slot.group is not None

            # If the group was still usable before that point, we consider
            # it innocent.
            if group_can_run(csg_slot.group):
                csg_slot.group.innocent = True

            # We consider group suspension failures as fatal and flag the
            # group as unusable by setting timedout=true.
            csg_slot.group.timedout = True

            csgs_upd_ctx_queue_reqs(ptdev, upd_ctx, csg_id, CSG_STATE_TERMINATE, CSG_STATE_MASK)
            slot_mask &= ~BIT(csg_id)

        await csgs_upd_ctx_apply_locked(ptdev, upd_ctx)

        slot_mask = upd_ctx.timedout_mask
        while slot_mask:
            csg_id = ffs(slot_mask) - 1
            csg_slot = sched.csg_slots[csg_id]
            assert csg_slot.group is not None

            # Terminate command timedout, but the soft-reset will
            # automatically terminate all active groups, so let's
            # force the state to halted here.
            if csg_slot.group.state != PANTHOR_CS_GROUP_TERMINATED:
                csg_slot.group.state = PANTHOR_CS_GROUP_TERMINATED
            slot_mask &= ~BIT(csg_id)

    # Flush L2 and LSC caches to make sure suspend state is up-to-date.
    # If the flush fails, flag all queues for termination.
    if suspended_slots:
        # panthor_gpu_flush_caches(): the caches are not modelled, the flush succeeds.
        slot_mask = suspended_slots
        while slot_mask:
            csg_id = ffs(slot_mask) - 1
            await csg_slot_sync_update_locked(ptdev, csg_id)
            slot_mask &= ~BIT(csg_id)

    for i in range(sched.csg_slot_count):
        csg_slot = sched.csg_slots[i]

        group = csg_slot.group
        if not group:
            continue

        await group_get(group)

        if group.csg_id >= 0:
            await sched_process_csg_irq_locked(ptdev, group.csg_id)

        await group_unbind_locked(group)

        drm_WARN_ON(group.ptdev.base, not list_node_empty(group.run_node))

        if group_can_run(group):
            list_add(group.run_node, sched.groups.idle[group.priority])
        else:
            # We don't bother stopping the scheduler if the group is
            # faulty, the group termination work will finish the job.
            list_del_init(group.wait_node)
            await group_queue_work(group, group.term_work)
        await group_put(group)
    await mutex_unlock(sched.lock)


async def panthor_sched_pre_reset(ptdev: PanthorDevice) -> None:
    """``panthor_sched_pre_reset()``: stop every work and every group before a reset."""
    sched = _sched(ptdev)

    await mutex_lock(sched.reset.lock)
    await atomic_set(sched.reset.in_progress, 1)

    # Cancel all scheduler works. Once this is done, these works can't be
    # scheduled again until the reset operation is complete.
    await cancel_work_sync(sched.sync_upd_work)
    await cancel_delayed_work_sync(sched.tick_work)

    await panthor_sched_suspend(ptdev)

    # Stop all groups that might still accept jobs, so we don't get passed
    # new jobs while we're resetting.
    for i in range(len(sched.groups.runnable)):
        # All groups should be in the idle lists.
        drm_WARN_ON(ptdev.base, not list_empty(sched.groups.runnable[i]))
        for group in sched.groups.runnable[i]:
            await panthor_group_stop(group)

    for i in range(len(sched.groups.idle)):
        for group in sched.groups.idle[i]:
            await panthor_group_stop(group)

    await mutex_unlock(sched.reset.lock)


async def panthor_sched_post_reset(ptdev: PanthorDevice, reset_failed: bool) -> None:
    """``panthor_sched_post_reset()``: restart the stopped groups, kick the scheduler."""
    sched = _sched(ptdev)

    await mutex_lock(sched.reset.lock)

    for group in sched.reset.stopped_groups:
        # Consider all previously running group as terminated if the
        # reset failed.
        if reset_failed:
            group.state = PANTHOR_CS_GROUP_TERMINATED

        await panthor_group_start(group)

    # We're done resetting the GPU, clear the reset.in_progress bit so we can
    # kick the scheduler.
    await atomic_set(sched.reset.in_progress, 0)
    await mutex_unlock(sched.reset.lock)

    # No need to queue a tick and update syncs if the reset failed.
    if not reset_failed:
        await sched_queue_delayed_work(sched, sched.tick_work, 0)
        await sched_queue_work(sched, sched.sync_upd_work)


async def group_sync_upd_work(work: WorkStruct) -> None:
    """``group_sync_upd_work()``: signal the done fences the sync objects reached."""
    group: PanthorGroup = work.container
    done_jobs: list[PanthorJob] = []  # LIST_HEAD(done_jobs)

    cookie = dma_fence_begin_signalling()
    for queue_idx in range(group.queue_count):
        queue = group.queues[queue_idx]

        if not queue:
            continue

        syncobj = _syncobj_map(group)
        seqno = syncobj.read_u64(queue_idx * SYNCOBJ64_SIZE)

        async with queue.fence_ctx.lock:
            for job in queue.fence_ctx.in_flight_jobs:
                assert job.done_fence is not None
                if seqno < job.done_fence.seqno:
                    break

                list_del_init(job.node)
                done_jobs.append(job)
                await dma_fence_signal_locked(job.done_fence)
    dma_fence_end_signalling(cookie)

    for job in done_jobs:
        await panthor_job_put(job.base)

    await group_put(group)


async def _group_sync_upd_work_fn(work: WorkStruct) -> None:
    await group_sync_upd_work(work)


# ---------------------------------------------------------------------- jobs


class PanthorJobRingbufInstrs:
    """``struct panthor_job_ringbuf_instrs``."""

    def __init__(self) -> None:
        self.buffer: list[CsInstr] = []
        self.count = 0


def copy_instrs_to_ringbuf(
    queue: PanthorQueue, job: PanthorJob, instrs: PanthorJobRingbufInstrs
) -> None:
    """``copy_instrs_to_ringbuf()``: the job's instructions at its ring-buffer slot."""
    assert isinstance(queue.ringbuf, PanthorKernelBo) and queue.ringbuf.kmap is not None
    ringbuf_size = panthor_kernel_bo_size(queue.ringbuf)
    start = job.ringbuf.start & (ringbuf_size - 1)

    # We need to write a whole slot, including any trailing zeroes
    # that may come at the end of it.
    instrs.count = ALIGN(instrs.count, NUM_INSTRS_PER_CACHE_LINE)
    size = instrs.count * 8
    WARN_ON(size > ringbuf_size)

    label = f"job #{job.serial}"
    queue.ringbuf.kmap.write(
        start,
        RingbufJob(tuple(instrs.buffer), job.ringbuf.start, job.ringbuf.start + size, label),
    )


class PanthorJobCsParams:
    """``struct panthor_job_cs_params``."""

    def __init__(self) -> None:
        self.profile_mask = 0
        self.sync_addr = 0
        self.cs_start = 0
        self.cs_size = 0
        self.last_flush = 0
        self.waitall_mask = 0
        self.stream: CsStream | None = None


def get_job_cs_params(job: PanthorJob, params: PanthorJobCsParams) -> None:
    """``get_job_cs_params()``."""
    group = job.group
    assert group is not None and isinstance(group.syncobjs, PanthorKernelBo)
    ptdev = group.ptdev
    sched = _sched(ptdev)

    params.sync_addr = panthor_kernel_bo_gpuva(group.syncobjs) + job.queue_idx * SYNCOBJ64_SIZE
    params.waitall_mask = GENMASK(sched.sb_slot_count - 1, 0)

    params.cs_start = job.call_info.start
    params.cs_size = job.call_info.size
    params.last_flush = job.call_info.latest_flush
    params.stream = job.call_info.stream

    params.profile_mask = 0


def prepare_job_instrs(params: PanthorJobCsParams, instrs: PanthorJobRingbufInstrs) -> None:
    """``prepare_job_instrs()``: the kernel's sequence (no profiling instructions)."""
    instr_seq = [
        CsInstr("MOV32"),  # rX+2, cs.latest_flush
        CsInstr("FLUSH_CACHE2"),  # clean_inv_all.no_wait.signal(0) rX+2
        CsInstr("MOV48"),  # rX:rX+1, cs.start
        CsInstr("MOV32"),  # rX+2, cs.size
        CsInstr("WAIT"),  # (0) => waits for FLUSH_CACHE2 instruction
        CsInstr("CALL", params.cs_start, params.cs_size, params.stream),  # rX:rX+1, rX+2
        CsInstr("MOV48"),  # rX:rX+1, sync_addr
        CsInstr("MOV48"),  # rX+2, #1
        CsInstr("WAIT"),  # (all)
        CsInstr("SYNC_ADD64", params.sync_addr),  # system_scope.propage_err.nowait
        CsInstr("ERROR_BARRIER"),  # so we can recover from faults at job boundaries.
    ]

    instrs.count = 0
    instrs.buffer = []
    for ins in instr_seq:
        instrs.buffer.append(ins)
        instrs.count += 1

    pad = ALIGN(instrs.count, NUM_INSTRS_PER_CACHE_LINE)
    instrs.count = pad


def calc_job_credits(profile_mask: int) -> int:
    """``calc_job_credits()``."""
    instrs = PanthorJobRingbufInstrs()
    params = PanthorJobCsParams()
    params.profile_mask = profile_mask

    prepare_job_instrs(params, instrs)
    return instrs.count


async def queue_run_job(sched_job: DrmSchedJob) -> DmaFence | ErrPtr | None:
    """``queue_run_job()``: write the job to the ring buffer, ring or schedule the group."""
    assert isinstance(sched_job, PanthorJob)
    job = sched_job
    group = job.group
    assert group is not None
    queue = group.queues[job.queue_idx]
    assert queue is not None
    ptdev = group.ptdev
    sched = _sched(ptdev)
    instrs = PanthorJobRingbufInstrs()
    cs_params = PanthorJobCsParams()

    # Stream size is zero, nothing to do except making sure all previously
    # submitted jobs are done before we signal the
    # drm_sched_job::s_fence::finished fence.
    if not job.call_info.size:
        job.done_fence = await dma_fence_get(queue.fence_ctx.last_fence)
        return await dma_fence_get(job.done_fence)

    ret = await panthor_device_resume_and_get(ptdev)
    if drm_WARN_ON(ptdev.base, ret):
        return ERR_PTR(ret)

    await mutex_lock(sched.lock)
    if not group_can_run(group):
        done_fence: DmaFence | ErrPtr | None = ERR_PTR(-ECANCELED)
    else:
        assert job.done_fence is not None
        dma_fence_init(
            job.done_fence,
            panthor_queue_fence_ops,
            queue.fence_ctx.lock,
            queue.fence_ctx.id,
            await atomic_inc_return(queue.fence_ctx.seqno),
        )

        job.ringbuf.start = queue.iface.input.insert

        get_job_cs_params(job, cs_params)
        prepare_job_instrs(cs_params, instrs)
        copy_instrs_to_ringbuf(queue, job, instrs)

        job.ringbuf.end = job.ringbuf.start + (instrs.count * 8)

        await panthor_job_get(job.base)
        async with queue.fence_ctx.lock:
            list_add_tail(job.node, queue.fence_ctx.in_flight_jobs)

        # Make sure the ring buffer is updated before the INSERT
        # register.
        queue.iface.input.extract = queue.iface.output.extract
        queue.iface.input.insert = job.ringbuf.end

        current_kernel().ev(
            "queue_run_job",
            group.label,
            f"job #{job.serial} seqno {job.done_fence.seqno} ring [{job.ringbuf.start:#x}, "
            f"{job.ringbuf.end:#x}) csg={group.csg_id}",
        )
        if group.csg_id < 0:
            # If the queue is blocked, we want to keep the timeout running, so we
            # can detect unbounded waits and kill the group when that happens.
            # Otherwise, we suspend the timeout so the time we spend waiting for
            # a CSG slot is not counted.
            if not (group.blocked_queues & BIT(job.queue_idx)) and not queue.timeout_suspended:
                queue.remaining_time = drm_sched_suspend_timeout(queue.scheduler)
                queue.timeout_suspended = True

            await group_schedule_locked(group, BIT(job.queue_idx))
        else:
            await gpu_write(ptdev, CSF_DOORBELL(queue.doorbell_id), 1)
            if not sched.pm.has_ref and not (group.blocked_queues & BIT(job.queue_idx)):
                await pm_runtime_get(ptdev)
                sched.pm.has_ref = True

        # Update the last fence.
        await dma_fence_put(queue.fence_ctx.last_fence)
        queue.fence_ctx.last_fence = await dma_fence_get(job.done_fence)

        done_fence = await dma_fence_get(job.done_fence)

    # out_unlock:
    await mutex_unlock(sched.lock)
    await pm_runtime_mark_last_busy(ptdev)
    await pm_runtime_put_autosuspend(ptdev)

    return done_fence


async def queue_timedout_job(sched_job: DrmSchedJob) -> int:
    """``queue_timedout_job()``: the drm_sched TDR fired; the group becomes unusable."""
    assert isinstance(sched_job, PanthorJob)
    job = sched_job
    group = job.group
    assert group is not None
    ptdev = group.ptdev
    sched = _sched(ptdev)
    queue = group.queues[job.queue_idx]
    assert queue is not None

    current_kernel().ev("drm_warn", group.label, f"job timeout: job #{job.serial}")

    drm_WARN_ON(ptdev.base, await atomic_read(sched.reset.in_progress))

    await queue_stop(queue, job)

    await mutex_lock(sched.lock)
    group.timedout = True
    if group.csg_id >= 0:
        await sched_queue_delayed_work(sched, sched.tick_work, 0)
    else:
        # Remove from the run queues, so the scheduler can't
        # pick the group on the next tick.
        list_del_init(group.run_node)
        list_del_init(group.wait_node)

        await group_queue_work(group, group.term_work)
    await mutex_unlock(sched.lock)

    await queue_start(queue)

    return DRM_GPU_SCHED_STAT_NOMINAL


async def queue_free_job(sched_job: DrmSchedJob) -> None:
    """``queue_free_job()``."""
    await drm_sched_job_cleanup(sched_job)
    await panthor_job_put(sched_job)


class _PanthorQueueSchedOps(DrmSchedBackendOps):
    """``panthor_queue_sched_ops`` (the methods look the functions up at call time)."""

    async def run_job(self, job: DrmSchedJob) -> DmaFence | ErrPtr | None:
        return await queue_run_job(job)

    async def timedout_job(self, job: DrmSchedJob) -> int:
        return await queue_timedout_job(job)

    async def free_job(self, job: DrmSchedJob) -> None:
        await queue_free_job(job)


panthor_queue_sched_ops: Final = _PanthorQueueSchedOps()


def is_power_of_2(n: int) -> bool:
    return n > 0 and not n & (n - 1)


async def group_create_queue(
    group: PanthorGroup, args: drm_panthor_queue_create
) -> PanthorQueue | ErrPtr:
    """``group_create_queue()``."""
    sched = _sched(group.ptdev)

    if args.pad[0] or args.pad[1] or args.pad[2]:
        return ERR_PTR(-EINVAL)

    if (
        args.ringbuf_size < SZ_4K
        or args.ringbuf_size > SZ_64K
        or not is_power_of_2(args.ringbuf_size)
    ):
        return ERR_PTR(-EINVAL)

    if args.priority > CSF_MAX_QUEUE_PRIO:
        return ERR_PTR(-EINVAL)

    queue = await kzalloc(PanthorQueue, GFP_KERNEL)
    if not queue:
        return ERR_PTR(-ENOMEM)

    queue.fence_ctx.id = dma_fence_context_alloc(1)

    queue.priority = args.priority

    queue.ringbuf = await panthor_kernel_bo_create(
        group.ptdev,
        group.vm,
        args.ringbuf_size,
        DRM_PANTHOR_BO_NO_MMAP,
        DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC | DRM_PANTHOR_VM_BIND_OP_MAP_UNCACHED,
        _kernel_auto_va(),
        "CS ring buffer",
    )
    ret = 0
    if IS_ERR(queue.ringbuf):
        ret = PTR_ERR(queue.ringbuf)
    else:
        assert isinstance(queue.ringbuf, PanthorKernelBo)
        ret = await panthor_kernel_bo_vmap(queue.ringbuf)

    if not ret:
        mem, inp, out, in_va, out_va = await panthor_fw_alloc_queue_iface_mem(group.ptdev)
        queue.iface.mem = mem
        if IS_ERR(mem):
            ret = PTR_ERR(mem)
        else:
            assert inp is not None and out is not None
            queue.iface.input, queue.iface.output = inp, out
            queue.iface.input_fw_va, queue.iface.output_fw_va = in_va, out_va

    if not ret:
        ret = await drm_sched_init(
            queue.scheduler,
            panthor_queue_sched_ops,
            sched.wq,
            1,
            # The credit limit argument tells us the total number of
            # instructions across all CS slots in the ringbuffer, with
            # some jobs requiring twice as many as others, depending on
            # their profiling status.
            args.ringbuf_size // 8,
            0,
            msecs_to_jiffies(JOB_TIMEOUT_MS),
            group.ptdev.reset.wq,
            None,
            "panthor-queue",
            group.ptdev.base.dev,
        )

    if not ret:
        drm_sched = queue.scheduler
        ret = await drm_sched_entity_init(queue.entity, 0, [drm_sched], 1, None)
        return queue

    # err_free_queue:
    await group_free_queue(group, queue)
    return ERR_PTR(ret)


def _kernel_auto_va() -> int:
    from .panthor_mmu import PANTHOR_VM_KERNEL_AUTO_VA

    return PANTHOR_VM_KERNEL_AUTO_VA


async def panthor_group_create(
    pfile: PanthorFile,
    group_args: drm_panthor_group_create,
    queue_args: list[drm_panthor_queue_create],
) -> int:
    """``panthor_group_create()``: a new group on one of the file's VMs; returns its handle."""
    from .panthor_mmu import panthor_vm_pool_get_vm

    ptdev = pfile.ptdev
    gpool = pfile.groups
    assert isinstance(gpool, PanthorGroupPool)
    sched = _sched(ptdev)
    shader_present = getattr(ptdev.gpu_info, "shader_present", U64_MAX)
    tiler_present = getattr(ptdev.gpu_info, "tiler_present", U64_MAX)

    if group_args.pad:
        return -EINVAL

    if group_args.priority >= PANTHOR_CSG_PRIORITY_COUNT:
        return -EINVAL

    if (
        (group_args.compute_core_mask & ~shader_present)
        or (group_args.fragment_core_mask & ~shader_present)
        or (group_args.tiler_core_mask & ~tiler_present)
    ):
        return -EINVAL

    if (
        bin(group_args.compute_core_mask).count("1") < group_args.max_compute_cores
        or bin(group_args.fragment_core_mask).count("1") < group_args.max_fragment_cores
        or bin(group_args.tiler_core_mask).count("1") < group_args.max_tiler_cores
    ):
        return -EINVAL

    group = await kzalloc(PanthorGroup, GFP_KERNEL)
    if not group:
        return -ENOMEM
    _count_group(current_kernel(), 1)

    await kref_init(group.refcount)
    group.state = PANTHOR_CS_GROUP_CREATED
    group.csg_id = -1

    group.ptdev = ptdev
    group.max_compute_cores = group_args.max_compute_cores
    group.compute_core_mask = group_args.compute_core_mask
    group.max_fragment_cores = group_args.max_fragment_cores
    group.fragment_core_mask = group_args.fragment_core_mask
    group.max_tiler_cores = group_args.max_tiler_cores
    group.tiler_core_mask = group_args.tiler_core_mask
    group.priority = group_args.priority

    INIT_LIST_HEAD(group.wait_node)
    INIT_LIST_HEAD(group.run_node)

    ret = 0
    assert pfile.vms is not None
    group.vm = await panthor_vm_pool_get_vm(pfile.vms, group_args.vm_id)
    if not group.vm:
        ret = -EINVAL

    if not ret:
        # panthor_fw_alloc_suspend_buf_mem(): suspend buffers are not modelled.
        group.syncobjs = await panthor_kernel_bo_create(
            ptdev,
            group.vm,
            group_args.queues.count * SYNCOBJ64_SIZE,
            DRM_PANTHOR_BO_NO_MMAP,
            DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC | DRM_PANTHOR_VM_BIND_OP_MAP_UNCACHED,
            _kernel_auto_va(),
            "Group sync objects",
        )
        if IS_ERR(group.syncobjs):
            ret = PTR_ERR(group.syncobjs)

    if not ret:
        assert isinstance(group.syncobjs, PanthorKernelBo)
        ret = await panthor_kernel_bo_vmap(group.syncobjs)

    if not ret:
        syncobj = _syncobj_map(group)
        for off in range(0, group_args.queues.count * SYNCOBJ64_SIZE, 8):
            syncobj.write(off, 0)

        for i in range(group_args.queues.count):
            q = await group_create_queue(group, queue_args[i])
            if isinstance(q, ErrPtr):
                ret = PTR_ERR(q)
                group.queues[i] = None
                break
            group.queues[i] = q

            group.queue_count += 1

    if not ret:
        group.idle_queues = GENMASK(group.queue_count - 1, 0)

        ret, gid = await xa_alloc(gpool.xa, group, XA_LIMIT(1, MAX_GROUPS_PER_POOL), GFP_KERNEL)

    if not ret:
        group.label = f"group {gid}"
        await mutex_lock(sched.reset.lock)
        if await atomic_read(sched.reset.in_progress):
            await panthor_group_stop(group)
        else:
            await mutex_lock(sched.lock)
            list_add_tail(group.run_node, sched.groups.idle[group.priority])
            await mutex_unlock(sched.lock)
        await mutex_unlock(sched.reset.lock)

        current_kernel().ev("group-create", group.label, f"{group.queue_count} queue(s)")
        return gid

    # err_put_group:
    await group_put(group)
    return ret


async def panthor_group_destroy(pfile: PanthorFile, group_handle: int) -> int:
    """``panthor_group_destroy()``."""
    gpool = pfile.groups
    assert isinstance(gpool, PanthorGroupPool)
    ptdev = pfile.ptdev
    sched = _sched(ptdev)

    group = await xa_erase(gpool.xa, group_handle)
    if not group:
        return -EINVAL

    await mutex_lock(sched.reset.lock)
    await mutex_lock(sched.lock)
    group.destroyed = True
    if group.csg_id >= 0:
        await sched_queue_delayed_work(sched, sched.tick_work, 0)
    elif not await atomic_read(sched.reset.in_progress):
        # Remove from the run queues, so the scheduler can't
        # pick the group on the next tick.
        list_del_init(group.run_node)
        list_del_init(group.wait_node)
        await group_queue_work(group, group.term_work)
    await mutex_unlock(sched.lock)
    await mutex_unlock(sched.reset.lock)

    current_kernel().ev("group-destroy", group.label, "")
    await group_put(group)
    return 0


async def group_from_handle(pool: PanthorGroupPool, group_handle: int) -> PanthorGroup | None:
    """``group_from_handle()``."""
    await xa_lock(pool.xa)
    entry = await xa_load(pool.xa, group_handle)
    group = await group_get(entry)
    await xa_unlock(pool.xa)

    return group


async def panthor_group_get_state(
    pfile: PanthorFile, get_state: drm_panthor_group_get_state
) -> int:
    """``panthor_group_get_state()``."""
    gpool = pfile.groups
    assert isinstance(gpool, PanthorGroupPool)
    ptdev = pfile.ptdev
    sched = _sched(ptdev)

    if get_state.pad:
        return -EINVAL

    group = await group_from_handle(gpool, get_state.group_handle)
    if not group:
        return -EINVAL

    # memset(get_state, 0, sizeof(*get_state))
    get_state.group_handle = 0
    get_state.state = 0
    get_state.fatal_queues = 0

    await mutex_lock(sched.lock)
    if group.timedout:
        get_state.state |= DRM_PANTHOR_GROUP_STATE_TIMEDOUT
    if group.fatal_queues:
        get_state.state |= DRM_PANTHOR_GROUP_STATE_FATAL_FAULT
        get_state.fatal_queues = group.fatal_queues
    if group.innocent:
        get_state.state |= DRM_PANTHOR_GROUP_STATE_INNOCENT
    await mutex_unlock(sched.lock)

    await group_put(group)
    return 0


async def panthor_group_pool_create(pfile: PanthorFile) -> int:
    """``panthor_group_pool_create()``."""
    gpool = await kzalloc(PanthorGroupPool, GFP_KERNEL)
    if not gpool:
        return -ENOMEM

    xa_init_flags(gpool.xa, XA_FLAGS_ALLOC1)
    pfile.groups = gpool
    return 0


async def panthor_group_pool_destroy(pfile: PanthorFile) -> None:
    """``panthor_group_pool_destroy()``."""
    gpool = pfile.groups

    if gpool is None or isinstance(gpool, ErrPtr):
        return

    async for i, _group in xa_for_each(gpool.xa):
        await panthor_group_destroy(pfile, i)

    xa_destroy(gpool.xa)
    kfree(gpool)
    pfile.groups = None


async def job_release(ref: Kref) -> None:
    """``job_release()``."""
    job: PanthorJob = ref.container
    assert job.group is not None or job.serial == 0

    if job.group is not None:
        drm_WARN_ON(job.group.ptdev.base, not list_node_empty(job.node))

    if job.base.s_fence:
        await drm_sched_job_cleanup(job.base)

    if job.done_fence and job.done_fence.refcount.refs:
        await dma_fence_put(job.done_fence)
    elif job.done_fence:
        dma_fence_free(job.done_fence)

    await group_put(job.group)

    _jobs_registry(current_kernel()).pop(job.serial, None)
    kfree(job)


async def panthor_job_get(sched_job: DrmSchedJob | None) -> DrmSchedJob | None:
    """``panthor_job_get()``."""
    if sched_job:
        assert isinstance(sched_job, PanthorJob)
        await kref_get(sched_job.refcount)

    return sched_job


async def panthor_job_put(sched_job: DrmSchedJob | None) -> None:
    """``panthor_job_put()``."""
    if sched_job:
        assert isinstance(sched_job, PanthorJob)
        await kref_put(sched_job.refcount, job_release)


def panthor_job_vm(sched_job: DrmSchedJob) -> PanthorVm:
    """``panthor_job_vm()``."""
    assert isinstance(sched_job, PanthorJob) and sched_job.group is not None
    assert sched_job.group.vm is not None
    return sched_job.group.vm


async def panthor_job_create(
    pfile: PanthorFile, group_handle: int, qsubmit: drm_panthor_queue_submit
) -> DrmSchedJob | ErrPtr:
    """``panthor_job_create()``."""
    gpool = pfile.groups
    assert isinstance(gpool, PanthorGroupPool)

    if qsubmit.pad:
        return ERR_PTR(-EINVAL)

    # If stream_addr is zero, so stream_size should be.
    if (qsubmit.stream_size == 0) != (qsubmit.stream_addr == 0):
        return ERR_PTR(-EINVAL)

    # Make sure the address is aligned on 64-byte (cacheline) and the size is
    # aligned on 8-byte (instruction size).
    if (qsubmit.stream_addr & 63) or (qsubmit.stream_size & 7):
        return ERR_PTR(-EINVAL)

    # bits 24:30 must be zero.
    if qsubmit.latest_flush & GENMASK(30, 24):
        return ERR_PTR(-EINVAL)

    job = await kzalloc(PanthorJob, GFP_KERNEL)
    if not job:
        return ERR_PTR(-ENOMEM)

    await kref_init(job.refcount)
    job.queue_idx = qsubmit.queue_index
    job.call_info.size = qsubmit.stream_size
    job.call_info.start = qsubmit.stream_addr
    job.call_info.latest_flush = qsubmit.latest_flush
    job.call_info.stream = qsubmit.stream
    INIT_LIST_HEAD(job.node)

    ret = 0
    job.group = await group_from_handle(gpool, group_handle)
    if (
        not job.group
        or not group_can_run(job.group)
        or job.queue_idx >= job.group.queue_count
        or not job.group.queues[job.queue_idx]
    ):
        ret = -EINVAL

    # Empty command streams don't need a fence, they'll pick the one from
    # the previously submitted job.
    if not ret and job.call_info.size:
        job.done_fence = await kzalloc(DmaFence, GFP_KERNEL)
        if not job.done_fence:
            ret = -ENOMEM

    if not ret:
        credits = calc_job_credits(0)
        if credits == 0:
            ret = -EINVAL

    if not ret:
        assert job.group is not None
        q = job.group.queues[job.queue_idx]
        assert q is not None
        ret = await drm_sched_job_init(job.base, q.entity, credits, job.group)

    if not ret:
        _register_job(job)
        return job.base

    # err_put_job:
    await panthor_job_put(job.base)
    return ERR_PTR(ret)


async def panthor_job_update_resvs(exec: DrmExec, sched_job: DrmSchedJob) -> None:
    """``panthor_job_update_resvs()``: the job's finished fence as BOOKKEEP on every BO."""
    from .panthor_mmu import panthor_vm_update_resvs

    assert isinstance(sched_job, PanthorJob) and sched_job.group is not None
    job = sched_job
    assert sched_job.s_fence is not None and job.group is not None and job.group.vm is not None

    await panthor_vm_update_resvs(
        job.group.vm,
        exec,
        sched_job.s_fence.finished,
        DmaResvUsage.BOOKKEEP,
        DmaResvUsage.BOOKKEEP,
    )
    job.submitted_ns = current_kernel().now


async def panthor_sched_unplug(ptdev: PanthorDevice) -> None:
    """``panthor_sched_unplug()``."""
    sched = _sched(ptdev)

    await cancel_delayed_work_sync(sched.tick_work)

    await mutex_lock(sched.lock)
    if sched.pm.has_ref:
        await pm_runtime_put(ptdev)
        sched.pm.has_ref = False
    await mutex_unlock(sched.lock)


async def panthor_sched_fini(ddev: DrmDevice, res: Any) -> None:
    """``panthor_sched_fini()`` (a drmm action)."""
    sched: PanthorScheduler | None = res

    if not sched or not sched.csg_slot_count:
        return

    await cancel_delayed_work_sync(sched.tick_work)

    if sched.wq:
        await destroy_workqueue(sched.wq)

    if sched.heap_alloc_wq:
        await destroy_workqueue(sched.heap_alloc_wq)

    for prio in range(PANTHOR_CSG_PRIORITY_COUNT - 1, -1, -1):
        drm_WARN_ON(ddev, not list_empty(sched.groups.runnable[prio]))
        drm_WARN_ON(ddev, not list_empty(sched.groups.idle[prio]))

    drm_WARN_ON(ddev, not list_empty(sched.groups.waiting))


async def panthor_sched_init(ptdev: PanthorDevice) -> int:
    """``panthor_sched_init()``."""
    glb_iface = panthor_fw_get_glb_iface(ptdev)
    csg_iface = panthor_fw_get_csg_iface(ptdev, 0)
    cs_iface = panthor_fw_get_cs_iface(ptdev, 0, 0)

    sched = await drmm_kzalloc(ptdev.base, PanthorScheduler, GFP_KERNEL)
    if not sched:
        return -ENOMEM

    # The highest bit in JOB_INT_* is reserved for globabl IRQs. That
    # leaves 31 bits for CSG IRQs, hence the MAX_CSGS clamp here.
    num_groups = min(MAX_CSGS, glb_iface.control.group_num)

    # The FW-side scheduler might deadlock if two groups with the same
    # priority try to access a set of resources that overlaps, with part
    # of the resources being allocated to one group and the other part to
    # the other group, both groups waiting for the remaining resources to
    # be allocated. To avoid that, it is recommended to assign each CSG a
    # different priority. In theory we could allow several groups to have
    # the same CSG priority if they don't request the same resources, but
    # that makes the scheduling logic more complicated, so let's clamp
    # the number of CSG slots to MAX_CSG_PRIO + 1 for now.
    num_groups = min(MAX_CSG_PRIO + 1, num_groups)

    # We need at least one AS for the MCU and one for the GPU contexts.
    gpu_as_count = hweight32(ptdev.gpu_info.as_present & GENMASK(31, 1))
    if not gpu_as_count:
        drm_err(ptdev.base, "Not enough AS (%d, expected at least 2)", gpu_as_count + 1)
        return -EINVAL

    sched.ptdev = ptdev
    sched.sb_slot_count = CS_FEATURES_SCOREBOARDS(cs_iface.control.features)
    sched.csg_slot_count = num_groups
    sched.cs_slot_count = csg_iface.control.stream_num
    sched.as_slot_count = gpu_as_count

    sched.last_tick = 0
    sched.resched_target = U64_MAX
    sched.tick_period = msecs_to_jiffies(10)

    ret = await drmm_mutex_init(ptdev.base, sched.lock)
    if ret:
        return ret

    for prio in range(PANTHOR_CSG_PRIORITY_COUNT - 1, -1, -1):
        sched.groups.runnable[prio] = ListHead(f"sched->groups.runnable[{prio}]")
        sched.groups.idle[prio] = ListHead(f"sched->groups.idle[{prio}]")
    sched.groups.waiting = ListHead("sched->groups.waiting")

    ret = await drmm_mutex_init(ptdev.base, sched.reset.lock)
    if ret:
        return ret

    sched.reset.stopped_groups = ListHead("sched->reset.stopped_groups")

    # sched->heap_alloc_wq will be used for heap chunk allocation on
    # tiler OOM events, which means we can't use the same workqueue for
    # the scheduler because works queued by the scheduler are in
    # the dma-signalling path. Allocate a dedicated heap_alloc_wq to
    # work around this limitation.
    sched.heap_alloc_wq = await alloc_workqueue("panthor-heap-alloc", WQ_UNBOUND, 0)
    sched.wq = await alloc_workqueue("panthor-csf-sched", WQ_MEM_RECLAIM | WQ_UNBOUND, 0)
    if not sched.wq or not sched.heap_alloc_wq:
        await panthor_sched_fini(ptdev.base, sched)
        drm_err(ptdev.base, "Failed to allocate the workqueues")
        return -ENOMEM

    ret = await drmm_add_action_or_reset(
        ptdev.base, panthor_sched_fini, sched, "panthor_sched_fini"
    )
    if ret:
        return ret

    ptdev.scheduler = sched
    _install_liveness_check(current_kernel(), ptdev)
    return 0


# ---------------------------------------------------------------------- liveness (model-only)


def _jobs_registry(k: Kernel) -> dict[int, PanthorJob]:
    reg: dict[int, PanthorJob] | None = k.objects.get(_JOBS_KEY)
    if reg is None:
        reg = k.objects[_JOBS_KEY] = {}
    return reg


def _count_group(k: Kernel, delta: int) -> None:
    k.objects[_GROUPS_KEY] = int(k.objects.get(_GROUPS_KEY, 0)) + delta


def live_groups(k: Kernel) -> int:
    """How many groups were created and not released yet (model-only)."""
    return int(k.objects.get(_GROUPS_KEY, 0))


def _register_job(job: PanthorJob) -> None:
    k = current_kernel()
    reg = _jobs_registry(k)
    serial = int(k.objects.get(_JOBS_KEY + ".serial", 0)) + 1
    k.objects[_JOBS_KEY + ".serial"] = serial
    job.serial = serial
    reg[serial] = job


def _install_liveness_check(k: Kernel, ptdev: PanthorDevice) -> None:
    if not k.objects.get(_JOBS_KEY + ".check"):
        k.objects[_JOBS_KEY + ".check"] = True
        k.exit_checks.append(panthor_sched_check_jobs)


def describe_job_wait(job: PanthorJob) -> tuple[str, str]:
    """What an unfinished job waits for: ``(cause, detail)``; ``cause`` is stable."""
    group = job.group
    assert group is not None
    queue = group.queues[job.queue_idx]
    assert queue is not None
    drm = queue.scheduler
    bits = [f"drm_sched: {job.state}"]
    tdr = drm.work_tdr
    if tdr is not None and tdr.work.pending:
        if tdr.timer is not None and tdr.timer.active:
            bits.append(f"job timeout armed for t={tdr.timer.deadline / 1e9:.3f}s")
        elif tdr.timer is None:
            bits.append("job timeout suspended")
    else:
        bits.append("no job timeout armed")
    where = "none"
    sched = _sched(group.ptdev)
    for name, heads in (
        ("runnable", sched.groups.runnable),
        ("idle", sched.groups.idle),
    ):
        for prio, h in enumerate(heads):
            if group.run_node.head is h:
                where = f"{name}[{prio}]"
    if group.run_node.head is sched.reset.stopped_groups:
        where = "reset.stopped_groups"
    bits.append(
        f"{group.label}: state {_GROUP_STATE_NAMES[group.state]}, csg_id {group.csg_id}, "
        f"can_run {group_can_run(group)} (destroyed={group.destroyed} timedout={group.timedout} "
        f"fatal_queues={group.fatal_queues:#x}), on list {where}"
    )
    cause = "unknown"
    if job.submitted_ns < 0:
        cause = "never-pushed"
    elif drm.pause_submit:
        cause = "queue-stopped"
        bits.append("its drm_sched is stopped (drm_sched_stop() without drm_sched_start())")
    elif job.done_fence is None or not job.done_fence.refcount.refs:
        cause = "not-run"
        ent = queue.entity
        if ent.dependency is not None:
            bits.append(f"entity waits for dependency {ent.dependency.label}")
        bits.append(f"{len(ent.job_queue)} job(s) still queued on the entity")
    else:
        fence = job.done_fence
        seqno = _syncobj_map(group).read_u64(job.queue_idx * SYNCOBJ64_SIZE)
        bits.append(f"done fence {fence.label} {fence.state()}, sync object seqno {seqno}")
        if dma_fence_is_signaled_atomic(fence):
            cause = "done-fence-signalled-not-finished"
        elif seqno >= fence.seqno:
            cause = "completion-not-processed"
            bits.append("the GPU signalled the sync object, but no sync update processed it")
        elif group.csg_id < 0:
            cause = "waiting-for-slot"
            bits.append("the group is not on a CSG slot")
        else:
            csf = csf_of(group.ptdev.iomem)
            desc = csf.describe_cs(group.csg_id, job.queue_idx)
            bits.append(f"GPU: {desc}")
            cs = csf.slots[group.csg_id].cs[job.queue_idx]
            if cs.stalled is not None:
                cause = "gpu-stalled-on-fault"
            elif cs.hung:
                cause = "gpu-hung"
            elif not cs.started:
                cause = "cs-stopped"
            else:
                cause = "running"
    return cause, "; ".join(bits)


def panthor_sched_check_jobs(k: Kernel) -> None:
    """Liveness oracle: at the end of a completed run, every submitted GPU job has finished."""
    reg = _jobs_registry(k)
    for serial, job in list(reg.items()):
        s_fence = job.base.s_fence
        if job.submitted_ns < 0 or s_fence is None:
            continue  # never pushed to the scheduler: the leak oracle's business
        if dma_fence_is_signaled_atomic(s_fence.finished):
            continue
        cause, detail = describe_job_wait(job)
        g = job.group.label if job.group is not None else "?"
        k.record_failure(
            Failure(
                "deadlock",
                f"GPU job #{serial} ({g}, queue {job.queue_idx}) never completed: {cause}",
                report=(
                    f"liveness: GPU job #{serial} submitted at t={job.submitted_ns / 1e9:.6f}s "
                    f"never signalled its finished fence.\n  " + detail.replace("; ", "\n  ")
                ),
                signature=f"deadlock:gpu-job-never-completed:{cause}",
            )
        )


__all__ = [
    "JOB_TIMEOUT_MS",
    "MAX_SCHEDULE_TIMEOUT",
    "NSEC_PER_JIFFY",
    "PanthorGroup",
    "PanthorJob",
    "PanthorQueue",
    "PanthorScheduler",
    "panthor_group_create",
    "panthor_group_destroy",
    "panthor_job_create",
    "panthor_sched_init",
    "panthor_sched_report_mmu_fault",
]
