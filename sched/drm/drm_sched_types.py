"""The drm GPU scheduler's structures (include/drm/gpu_scheduler.h, v6.14).

Shared by :mod:`.drm_sched_fence`, :mod:`.drm_sched_entity` and
:mod:`.drm_sched`; also the run-queue helpers of sched_main.c that the
entity code calls, and the "kick the submit work" helpers.

The kick helpers read ``pause_submit`` with ``READ_ONCE()`` and then queue
the work: ``drm_sched_stop()`` (``WRITE_ONCE()`` + ``cancel_work_sync()``)
can run entirely in between, so the work is queued on a stopped scheduler.
``queue_work`` starts with a yield point, which is that window.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

from ..core.thread import SimThread
from ..core.waitqueue import WaitQueue
from ..deferred.workqueue import DelayedWork, Workqueue, WorkStruct, queue_work, queue_work_atomic
from ..dma_buf.dma_fence import DMA_FENCE_FLAG_USER_BITS, DmaFence, DmaFenceCb
from ..errno import ErrPtr
from ..locking.atomic import Atomic
from ..locking.completion import Completion
from ..locking.lockdep import LockdepMap, lockdep_assert_held
from ..locking.spin import SyncSpinLock

DRM_SCHED_PRIORITY_KERNEL: Final = 0
DRM_SCHED_PRIORITY_HIGH: Final = 1
DRM_SCHED_PRIORITY_NORMAL: Final = 2
DRM_SCHED_PRIORITY_LOW: Final = 3
DRM_SCHED_PRIORITY_COUNT: Final = 4

DRM_GPU_SCHED_STAT_NONE: Final = 0
DRM_GPU_SCHED_STAT_NOMINAL: Final = 1
DRM_GPU_SCHED_STAT_ENODEV: Final = 2

DRM_SCHED_FENCE_DONT_PIPELINE: Final = DMA_FENCE_FLAG_USER_BITS

DRM_SCHED_POLICY_RR: Final = 0
DRM_SCHED_POLICY_FIFO: Final = 1

# The one lockdep map of every scheduler-owned submit queue (sched_main.c).
drm_sched_lockdep_map: Final = LockdepMap("drm_sched_lockdep_map")


class DrmSchedBackendOps:
    """``struct drm_sched_backend_ops``: the driver's callbacks.

    ``run_job`` returns the hardware fence (a reference the scheduler drops),
    None (nothing to wait for: the job is done) or an :class:`ErrPtr` (the
    error goes to the finished fence).
    """

    has_prepare_job: bool = False

    async def prepare_job(self, job: DrmSchedJob, entity: DrmSchedEntity) -> DmaFence | None:
        return None

    async def run_job(self, job: DrmSchedJob) -> DmaFence | ErrPtr | None:
        raise NotImplementedError

    async def timedout_job(self, job: DrmSchedJob) -> int:
        return DRM_GPU_SCHED_STAT_NOMINAL

    async def free_job(self, job: DrmSchedJob) -> None:
        raise NotImplementedError


class DrmSchedFence:
    """``struct drm_sched_fence``: the ``scheduled`` and ``finished`` fences of a job."""

    def __init__(self, owner: Any = None) -> None:
        self.lock = SyncSpinLock("&fence->lock (drm_sched_fence)", "&sched_fence->lock")
        self.scheduled = DmaFence(timeline="drm_sched", container=self)
        self.finished = DmaFence(timeline="drm_sched", container=self)
        self.parent: DmaFence | None = None
        self.sched: DrmGpuScheduler | None = None
        self.owner = owner
        self.job: DrmSchedJob | None = None  # model: for reports

    def __repr__(self) -> str:
        return f"<drm_sched_fence {self.finished.label}>"


class DrmSchedJob:
    """``struct drm_sched_job``; the driver's job subclasses it (``container_of``)."""

    def __init__(self) -> None:
        self.sched: DrmGpuScheduler | None = None
        self.entity: DrmSchedEntity | None = None
        self.credits = 0
        self.s_fence: DrmSchedFence | None = None
        self.dependencies: dict[int, DmaFence] = {}  # the xarray
        self.next_dependency_id = 0
        self.last_dependency = 0
        self.cb = DmaFenceCb(self)
        self.finish_cb = DmaFenceCb(self)
        self.work: WorkStruct | None = None  # the kill work
        self.id = 0
        self.submit_ts = 0
        self.s_priority = 0
        self.karma = 0
        self.state = "allocated"  # model: where the job is, for reports

    def label(self) -> str:
        sched = self.sched.name if self.sched is not None else "?"
        return f"job #{self.id} of {sched}"

    def __repr__(self) -> str:
        return f"<drm_sched_job #{self.id} {self.state}>"


class DrmSchedEntity:
    """``struct drm_sched_entity``."""

    def __init__(self, name: str = "entity") -> None:
        self.name = name
        self.reset()

    def reset(self) -> None:
        """``memset(entity, 0, sizeof(*entity))`` (the name is kept for reports)."""
        name = self.name
        self.on_rq = False  # !list_empty(&entity->list)
        self.rq: DrmSchedRq | None = None
        self.sched_list: list[DrmGpuScheduler] | None = None
        self.num_sched_list = 0
        self.priority = 0
        self.lock = SyncSpinLock(f"{name}.lock", "&entity->lock")
        self.job_queue: deque[DrmSchedJob] = deque()
        self.fence_seq = 0
        self.fence_context = 0
        self.dependency: DmaFence | None = None
        self.cb = DmaFenceCb(self)
        self.guilty: Atomic | None = None
        self.last_scheduled: DmaFence | None = None
        self.last_user: SimThread | None = None
        self.stopped = False
        self.entity_idle = Completion(f"{name}.entity_idle")
        self.oldest_job_waiting = 0
        self.in_fifo = False

    def __repr__(self) -> str:
        return f"<drm_sched_entity {self.name} queued={len(self.job_queue)}>"


class DrmSchedRq:
    """``struct drm_sched_rq``: entities in FIFO order of their oldest waiting job."""

    def __init__(self, sched: DrmGpuScheduler, prio: int) -> None:
        self.sched = sched
        self.lock = SyncSpinLock(f"{sched.name}.rq[{prio}].lock", "&rq->lock")
        self.entities: list[DrmSchedEntity] = []
        self.fifo: list[tuple[int, int, DrmSchedEntity]] = []  # the rb tree
        self.fifo_seq = 0
        self.current_entity: DrmSchedEntity | None = None


class DrmGpuScheduler:
    """``struct drm_gpu_scheduler`` (set up by ``drm_sched_init``)."""

    def __init__(self, name: str = "sched") -> None:
        self.ops: DrmSchedBackendOps | None = None
        self.credit_limit = 0
        self.name = name
        self.timeout = 0
        self.hang_limit = 0
        self.timeout_wq: Workqueue | None = None
        self._score = Atomic(0, f"{name}.score")
        self.score = self._score
        self.dev: object | None = None
        self.submit_wq: Workqueue | None = None
        self.own_submit_wq = False
        self.sched_rq: list[Any] | None = None  # a kcalloc'd array of DrmSchedRq
        self.num_rqs = 0
        self.job_scheduled = WaitQueue(
            f"{name}.job_scheduled",
            klass="drm_sched job_scheduled",
            owner=self._run_worker,
            describe=self._describe_job_scheduled,
        )
        self.pending_list: list[DrmSchedJob] = []
        self.job_list_lock = SyncSpinLock(f"{name}.job_list_lock", "&sched->job_list_lock")
        self.credit_count = 0
        self.work_tdr: DelayedWork | None = None
        self.work_run_job: WorkStruct | None = None
        self.work_free_job: WorkStruct | None = None
        self.job_id_count = 0
        self.pause_submit = False
        self.ready = False
        self.free_guilty = False
        self.entities_seen: list[DrmSchedEntity] = []  # model: for reports

    def __repr__(self) -> str:
        return f"<drm_gpu_scheduler {self.name} pending={len(self.pending_list)}>"

    def _run_worker(self) -> SimThread | None:
        """The worker thread running this scheduler's run work, if any."""
        work = self.work_run_job
        wq = self.submit_wq
        if work is None or wq is None or wq.destroyed:
            return None
        for w in wq.workers:
            if w.current_work is work:
                return w.thread
        return None

    def _describe_job_scheduled(self) -> str:
        busy = [f"{e.name} ({len(e.job_queue)} queued)" for e in self.entities_seen if e.job_queue]
        paused = ", submission paused (drm_sched_stop)" if self.pause_submit else ""
        return f"{self.name}.job_scheduled: entities still queued: {busy or 'none'}{paused}"


# ---------------------------------------------------------------------- rq helpers


def drm_sched_rq_update_fifo_locked(entity: DrmSchedEntity, rq: DrmSchedRq, ts: int) -> None:
    """``drm_sched_rq_update_fifo_locked()``: (re)insert by the oldest waiting job."""
    lockdep_assert_held(entity.lock.dep_map)
    lockdep_assert_held(rq.lock.dep_map)
    _rq_remove_fifo_locked(entity, rq)
    entity.oldest_job_waiting = ts
    rq.fifo_seq += 1
    rq.fifo.append((ts, rq.fifo_seq, entity))
    rq.fifo.sort(key=lambda e: (e[0], e[1]))
    entity.in_fifo = True


def _rq_remove_fifo_locked(entity: DrmSchedEntity, rq: DrmSchedRq) -> None:
    if entity.in_fifo:
        rq.fifo = [e for e in rq.fifo if e[2] is not entity]
        entity.in_fifo = False


def drm_sched_rq_add_entity(rq: DrmSchedRq, entity: DrmSchedEntity) -> None:
    """``drm_sched_rq_add_entity()`` (entity and rq locks held)."""
    lockdep_assert_held(entity.lock.dep_map)
    lockdep_assert_held(rq.lock.dep_map)
    if entity.on_rq:
        return
    rq.sched.score.v += 1
    rq.entities.append(entity)
    entity.on_rq = True


def drm_sched_rq_remove_entity(rq: DrmSchedRq, entity: DrmSchedEntity) -> None:
    """``drm_sched_rq_remove_entity()`` (entity lock held)."""
    lockdep_assert_held(entity.lock.dep_map)
    if not entity.on_rq:
        return
    with rq.lock:
        rq.sched.score.v -= 1
        rq.entities.remove(entity)
        entity.on_rq = False
        if rq.current_entity is entity:
            rq.current_entity = None
        _rq_remove_fifo_locked(entity, rq)


async def drm_sched_run_job_queue(sched: DrmGpuScheduler) -> None:
    """``drm_sched_run_job_queue()``: ``READ_ONCE(pause_submit)``, a yield point, ``queue_work``."""
    if not sched.pause_submit:
        assert sched.submit_wq is not None and sched.work_run_job is not None
        await queue_work(sched.submit_wq, sched.work_run_job)


async def drm_sched_wakeup(sched: DrmGpuScheduler) -> None:
    """``drm_sched_wakeup()``: kick the run work (from push_job and fence callbacks)."""
    await drm_sched_run_job_queue(sched)


async def __drm_sched_run_free_queue(sched: DrmGpuScheduler) -> None:
    """``__drm_sched_run_free_queue()``: ``READ_ONCE(pause_submit)``, a yield point,
    ``queue_work`` (reached from ``drm_sched_job_done()``, a fence callback)."""
    if not sched.pause_submit:
        assert sched.submit_wq is not None and sched.work_free_job is not None
        await queue_work(sched.submit_wq, sched.work_free_job)


def __drm_sched_run_free_queue_locked(sched: DrmGpuScheduler) -> None:
    """``__drm_sched_run_free_queue()`` from ``drm_sched_run_free_queue()`` (the free work,
    under ``job_list_lock``), with no yield point between the read and the queueing.

    The kernel has the same window there, but nothing can tell: a
    ``drm_sched_stop()`` that runs inside it waits in ``cancel_work_sync()``
    for this very (running) free work, and meanwhile the work cannot be
    queued (the cancel disables it), or is dequeued by the cancel.
    """
    if not sched.pause_submit:
        assert sched.submit_wq is not None and sched.work_free_job is not None
        queue_work_atomic(sched.submit_wq, sched.work_free_job)


def to_drm_sched_fence(f: DmaFence) -> DrmSchedFence | None:
    """``to_drm_sched_fence()``: the scheduler fence ``f`` belongs to, if any."""
    s = f.container
    if isinstance(s, DrmSchedFence) and (f is s.scheduled or f is s.finished):
        return s
    return None
