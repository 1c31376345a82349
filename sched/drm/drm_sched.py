"""The drm GPU scheduler (drivers/gpu/drm/scheduler/sched_main.c, v6.14).

* ``drm_sched_init`` (positional arguments, as in v6.14): the run work and
  the free work run on ``submit_wq`` (the driver's, or an owned ordered
  ``WQ_MEM_RECLAIM`` queue sharing ``drm_sched_lockdep_map``); a job runs
  when its credits fit under ``credit_limit``.
* The run work takes one job per call: credits and the pending list, then
  ``run_job``; NULL or an ERR_PTR completes the job at once (the error goes
  to the finished fence), a real fence completes it from its callback. Each
  completion signals ``finished`` and queues the free work, which frees the
  first pending job whose finished fence signalled and requeues itself.
* ``drm_sched_stop`` pauses submission, cancels both works, and for each
  pending job either detaches its hardware fence or (no hardware fence, e.g.
  every VM_BIND job) waits for its finished fence and calls ``free_job``
  inline. ``drm_sched_start(s, errno)`` re-adds the credits, completes
  parent-less jobs with ``errno ?: -ECANCELED``, and restarts both works.
* Both works return at once while ``pause_submit`` is set (v6.14's
  ``READ_ONCE()`` prologue, removed in v6.15): a work queued on a stopped
  scheduler (the ``READ_ONCE(pause_submit)`` + ``queue_work`` windows of
  :mod:`.drm_sched_types`) does nothing until ``drm_sched_start``.
* Job timeouts (TDR) are a delayed work on ``timeout_wq``, on the virtual clock.
* ``drm_sched_fini`` leaks pending jobs silently, as v6.14 does; the model
  reports them as a leak at the end of the run.

The driver's ``run_job``/``free_job``/``timedout_job`` are ``async`` methods
of a :class:`~.drm_sched_types.DrmSchedBackendOps`.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.clock import MAX_SCHEDULE_TIMEOUT, NSEC_PER_JIFFY
from ..core.failure import Failure, KernelBug
from ..core.kernel import Kernel, current_kernel, preempt
from ..deferred.workqueue import (
    INIT_DELAYED_WORK,
    INIT_WORK,
    WQ_MEM_RECLAIM,
    Workqueue,
    WorkStruct,
    alloc_ordered_workqueue,
    cancel_delayed_work_atomic,
    cancel_delayed_work_sync,
    cancel_work_sync,
    destroy_workqueue,
    mod_delayed_work_atomic,
    queue_work,
    system_wq,
)
from ..dma_buf.dma_fence import (
    DmaFence,
    DmaFenceCb,
    dma_fence_add_callback,
    dma_fence_get_atomic,
    dma_fence_is_later,
    dma_fence_is_signaled_atomic,
    dma_fence_put,
    dma_fence_put_atomic,
    dma_fence_remove_callback,
    dma_fence_wait,
)
from ..dma_buf.dma_resv import DmaResv, DmaResvUsage, dma_resv_assert_held, dma_resv_for_each_fence
from ..dma_buf.dma_resv import dma_resv_usage_rw as _usage_rw
from ..errno import ECANCELED, EINVAL, ENOENT, ENOMEM, ErrPtr
from ..locking.completion import complete_all, reinit_completion
from ..locking.lockdep import lockdep_assert_held
from ..mm.gfp import GFP_KERNEL
from ..mm.memory import kcalloc, kfree, kzalloc
from ..warn import BUG_ON, WARN, WARN_ON
from .drm_gem import DrmGemObject
from .drm_sched_entity import drm_sched_entity_pop_job, drm_sched_entity_select_rq
from .drm_sched_fence import (
    drm_sched_fence_alloc,
    drm_sched_fence_finished,
    drm_sched_fence_free,
    drm_sched_fence_init,
    drm_sched_fence_scheduled,
)
from .drm_sched_types import (
    DRM_GPU_SCHED_STAT_ENODEV,
    DRM_GPU_SCHED_STAT_NOMINAL,
    DRM_SCHED_PRIORITY_COUNT,
    DrmGpuScheduler,
    DrmSchedBackendOps,
    DrmSchedEntity,
    DrmSchedJob,
    DrmSchedRq,
    __drm_sched_run_free_queue,
    __drm_sched_run_free_queue_locked,
    drm_sched_lockdep_map,
    drm_sched_run_job_queue,
)
from .syncobj import drm_syncobj_find_fence

# ---------------------------------------------------------------------- credits


def _available_credits(sched: DrmGpuScheduler) -> int:
    """``drm_sched_available_credits()``."""
    WARN_ON(sched.credit_count > sched.credit_limit)
    return max(0, sched.credit_limit - sched.credit_count)


def _can_queue(sched: DrmGpuScheduler, entity: DrmSchedEntity) -> bool:
    """``drm_sched_can_queue()``: do the head job's credits fit?"""
    if not entity.job_queue:
        return False
    s_job = entity.job_queue[0]
    if s_job.credits > sched.credit_limit:
        WARN(True, "Jobs may not exceed the credit limit, truncate.")
        s_job.credits = sched.credit_limit
    return _available_credits(sched) >= s_job.credits


class _NoSpace:
    """``ERR_PTR(-ENOSPC)`` of the entity selection: ready, but no credits."""


_ENOSPC = _NoSpace()


def _select_entity_fifo(sched: DrmGpuScheduler, rq: DrmSchedRq) -> DrmSchedEntity | _NoSpace | None:
    """``drm_sched_rq_select_entity_fifo()``."""
    from .drm_sched_entity import drm_sched_entity_is_ready

    with rq.lock:
        for _ts, _seq, entity in rq.fifo:
            if drm_sched_entity_is_ready(entity):
                if not _can_queue(sched, entity):
                    return _ENOSPC
                reinit_completion(entity.entity_idle)
                return entity
    return None


def drm_sched_select_entity(sched: DrmGpuScheduler) -> DrmSchedEntity | None:
    """``drm_sched_select_entity()``: highest priority first."""
    entity: DrmSchedEntity | _NoSpace | None = None
    if sched.sched_rq is None:
        raise KernelBug(
            f"BUG: kernel NULL pointer dereference: drm_sched_select_entity({sched.name}) after "
            f"drm_sched_fini() (sched->sched_rq == NULL)",
            signature="exception:BUG:drm_sched_select_entity-after-fini",
        )
    for rq in sched.sched_rq[: sched.num_rqs]:
        entity = _select_entity_fifo(sched, rq)
        if entity is not None:
            break
    return entity if isinstance(entity, DrmSchedEntity) else None


# ---------------------------------------------------------------------- completion


async def drm_sched_job_done(s_job: DrmSchedJob, result: int) -> None:
    """``drm_sched_job_done()``: credits back, signal ``finished``, queue the free work.

    From ``finished`` being signalled on, the free work may free the job (the
    reference taken around the signal keeps the fence alone alive).
    """
    s_fence = s_job.s_fence
    assert s_fence is not None and s_fence.sched is not None
    sched = s_fence.sched
    sched.credit_count -= s_job.credits
    sched.score.v -= 1
    s_job.state = f"done ({result})" if result else "done"
    finished = s_fence.finished
    dma_fence_get_atomic(finished)
    await drm_sched_fence_finished(s_fence, result)
    dma_fence_put_atomic(finished)
    await __drm_sched_run_free_queue(sched)


async def drm_sched_job_done_cb(f: DmaFence, cb: DmaFenceCb) -> None:
    """``drm_sched_job_done_cb()``: the hardware fence signalled."""
    s_job = cb.container
    assert isinstance(s_job, DrmSchedJob)
    await drm_sched_job_done(s_job, f.error)


def drm_sched_start_timeout(sched: DrmGpuScheduler) -> None:
    """``drm_sched_start_timeout()`` (``job_list_lock`` held): arm the TDR."""
    lockdep_assert_held(sched.job_list_lock.dep_map)
    if sched.timeout != MAX_SCHEDULE_TIMEOUT and sched.pending_list:
        assert sched.timeout_wq is not None and sched.work_tdr is not None
        mod_delayed_work_atomic(sched.timeout_wq, sched.work_tdr, sched.timeout)


def drm_sched_start_timeout_unlocked(sched: DrmGpuScheduler) -> None:
    """``drm_sched_start_timeout_unlocked()``."""
    with sched.job_list_lock:
        drm_sched_start_timeout(sched)


def drm_sched_tdr_queue_imm(sched: DrmGpuScheduler) -> None:
    """``drm_sched_tdr_queue_imm()``: time out right now."""
    with sched.job_list_lock:
        sched.timeout = 0
        drm_sched_start_timeout(sched)


def drm_sched_suspend_timeout(sched: DrmGpuScheduler) -> int:
    """``drm_sched_suspend_timeout()``: park the TDR, return the jiffies it had left.

    The TDR is re-armed with MAX_SCHEDULE_TIMEOUT (pending, never expires); a
    TDR that was not pending, or already expired, gives back the full timeout.
    """
    assert sched.timeout_wq is not None and sched.work_tdr is not None
    now = current_kernel().now // NSEC_PER_JIFFY
    sched_timeout = sched.work_tdr.expires
    # Modify the timeout to an arbitrarily large value. This also prevents
    # the timeout to be restarted when new submissions arrive
    if (
        mod_delayed_work_atomic(sched.timeout_wq, sched.work_tdr, MAX_SCHEDULE_TIMEOUT)
        and sched_timeout > now
    ):
        return sched_timeout - now
    return sched.timeout


def drm_sched_resume_timeout(sched: DrmGpuScheduler, remaining: int) -> None:
    """``drm_sched_resume_timeout()``: re-arm the TDR with ``remaining`` (or cancel it)."""
    with sched.job_list_lock:
        assert sched.timeout_wq is not None and sched.work_tdr is not None
        if not sched.pending_list:
            cancel_delayed_work_atomic(sched.work_tdr)
        else:
            mod_delayed_work_atomic(sched.timeout_wq, sched.work_tdr, remaining)


def drm_sched_fault(sched: DrmGpuScheduler) -> None:
    """``drm_sched_fault()``: run the timeout handler immediately."""
    if sched.timeout_wq is not None and sched.work_tdr is not None:
        mod_delayed_work_atomic(sched.timeout_wq, sched.work_tdr, 0)


def _job_begin(s_job: DrmSchedJob) -> None:
    """``drm_sched_job_begin()``: onto the pending list, arm the TDR."""
    sched = s_job.sched
    assert sched is not None
    with sched.job_list_lock:
        sched.pending_list.append(s_job)
        drm_sched_start_timeout(sched)


async def drm_sched_job_timedout(work: WorkStruct) -> None:
    """``drm_sched_job_timedout()``: the TDR work calls ``timedout_job`` on the oldest job."""
    sched = work.container
    assert isinstance(sched, DrmGpuScheduler) and sched.ops is not None
    status = DRM_GPU_SCHED_STAT_NOMINAL
    with sched.job_list_lock:
        job = sched.pending_list[0] if sched.pending_list else None
        if job is not None:
            # Removed so a concurrent free cannot free it; drm_sched_stop() puts it back.
            sched.pending_list.remove(job)
    if job is not None:
        current_kernel().ev("drm_sched_timedout", sched.name, f"job #{job.id}")
        status = await sched.ops.timedout_job(job)
        if sched.free_guilty:
            await sched.ops.free_job(job)
            sched.free_guilty = False
    if status != DRM_GPU_SCHED_STAT_ENODEV:
        drm_sched_start_timeout_unlocked(sched)


# ---------------------------------------------------------------------- the works


async def drm_sched_run_free_queue(sched: DrmGpuScheduler) -> None:
    """``drm_sched_run_free_queue()``: queue the free work if the oldest job is done."""
    await preempt()
    with sched.job_list_lock:
        job = sched.pending_list[0] if sched.pending_list else None
        if job is not None:
            assert job.s_fence is not None
            if dma_fence_is_signaled_atomic(job.s_fence.finished):
                __drm_sched_run_free_queue_locked(sched)


def _get_finished_job(sched: DrmGpuScheduler) -> DrmSchedJob | None:
    """``drm_sched_get_finished_job()``: unlink the oldest job if its fence signalled."""
    with sched.job_list_lock:
        job = sched.pending_list[0] if sched.pending_list else None
        s_fence = job.s_fence if job is not None else None
        if (
            job is not None
            and s_fence is not None
            and dma_fence_is_signaled_atomic(s_fence.finished)
        ):
            sched.pending_list.pop(0)
            if sched.work_tdr is not None:
                cancel_delayed_work_atomic(sched.work_tdr)
            if sched.pending_list:
                drm_sched_start_timeout(sched)
            return job
    return None


async def drm_sched_free_job_work(work: WorkStruct) -> None:
    """``drm_sched_free_job_work()``: free one finished job, requeue both works.

    v6.14 returns at once while submission is paused (the ``READ_ONCE(pause_submit)``
    prologue; v6.15 removed it, "drm/sched: Remove weak paused submission checks").
    """
    sched = work.container
    assert isinstance(sched, DrmGpuScheduler)
    if sched.pause_submit:
        return
    assert sched.ops is not None
    job = _get_finished_job(sched)
    if job is not None:
        job.state = "in free_job"
        await sched.ops.free_job(job)
    await drm_sched_run_free_queue(sched)
    await drm_sched_run_job_queue(sched)


async def drm_sched_run_job_work(work: WorkStruct) -> None:
    """``drm_sched_run_job_work()``: hand one job to ``run_job``.

    v6.14 returns at once while submission is paused (see the free work).
    """
    sched = work.container
    assert isinstance(sched, DrmGpuScheduler)
    if sched.pause_submit:
        return
    assert sched.ops is not None
    k = current_kernel()
    entity = drm_sched_select_entity(sched)
    if entity is None:
        return
    sched_job = await drm_sched_entity_pop_job(entity)
    if sched_job is None:
        await complete_all(entity.entity_idle)
        await drm_sched_run_job_queue(sched)
        return
    s_fence = sched_job.s_fence
    assert s_fence is not None
    sched.credit_count += sched_job.credits
    _job_begin(sched_job)
    sched_job.state = "in run_job"
    k.ev("drm_run_job", sched.name, f"job #{sched_job.id}")
    fence = await sched.ops.run_job(sched_job)
    await complete_all(entity.entity_idle)
    await drm_sched_fence_scheduled(s_fence, fence)
    if isinstance(fence, DmaFence):
        sched_job.state = f"waiting for hw fence {fence.label}"
        await dma_fence_put(fence)  # drop the run_job reference
        r = await dma_fence_add_callback(fence, sched_job.cb, drm_sched_job_done_cb)
        if r == -ENOENT:
            await drm_sched_job_done(sched_job, fence.error)
        elif r:
            k.ev("DRM_DEV_ERROR", sched.name, f"fence add callback failed ({r})")
    else:
        await drm_sched_job_done(sched_job, fence.err if isinstance(fence, ErrPtr) else 0)
    sched.job_scheduled.wake_all()
    await drm_sched_run_job_queue(sched)


# ---------------------------------------------------------------------- init / fini


async def drm_sched_init(
    sched: DrmGpuScheduler,
    ops: DrmSchedBackendOps,
    submit_wq: Workqueue | None,
    num_rqs: int,
    credit_limit: int,
    hang_limit: int,
    timeout: int,
    timeout_wq: Workqueue | None,
    score: object | None,
    name: str,
    dev: object | None,
) -> int:
    """``drm_sched_init()`` (v6.14 positional form): 0, -EINVAL or -ENOMEM.

    ``timeout`` is in jiffies (``MAX_SCHEDULE_TIMEOUT``: no TDR); ``score``
    is an :class:`~.atomic.Atomic` shared between schedulers, or None.
    """
    await preempt()
    k = current_kernel()
    from ..locking.atomic import Atomic

    sched.ops = ops
    sched.credit_limit = credit_limit
    sched.name = name
    sched.timeout = timeout
    sched.hang_limit = hang_limit
    sched.timeout_wq = timeout_wq if timeout_wq is not None else system_wq()
    sched.score = score if isinstance(score, Atomic) else sched._score
    sched.dev = dev
    if num_rqs > DRM_SCHED_PRIORITY_COUNT:
        k.ev("dev_err", name, "num_rqs cannot be greater than DRM_SCHED_PRIORITY_COUNT")
        return -EINVAL
    if sched.sched_rq is not None:
        k.ev("dev_warn", name, "scheduler already initialized!")
        return 0
    if submit_wq is not None:
        sched.submit_wq = submit_wq
        sched.own_submit_wq = False
    else:
        wq = await alloc_ordered_workqueue(name, WQ_MEM_RECLAIM)
        if wq is None:
            return -ENOMEM
        wq.lockdep_map = drm_sched_lockdep_map  # alloc_ordered_workqueue_lockdep_map()
        sched.submit_wq = wq
        sched.own_submit_wq = True
    rqs = await kcalloc(num_rqs, GFP_KERNEL)
    if rqs is None:
        return await _init_fail(k, sched)
    for i in range(num_rqs):
        rq = await kzalloc(_rq_ctor(sched, i), GFP_KERNEL)
        if rq is None:
            for j in range(i - 1, -1, -1):
                kfree(rqs[j])
            kfree(rqs)
            return await _init_fail(k, sched)
        rqs[i] = rq
    sched.sched_rq = rqs
    sched.num_rqs = num_rqs
    sched.pending_list = []
    sched.credit_count = 0
    sched.work_tdr = INIT_DELAYED_WORK(drm_sched_job_timedout, "&sched->work_tdr", sched)
    sched.work_run_job = INIT_WORK(drm_sched_run_job_work, "&sched->work_run_job", sched)
    sched.work_free_job = INIT_WORK(drm_sched_free_job_work, "&sched->work_free_job", sched)
    sched._score.v = 0
    sched.job_id_count = 0
    sched.pause_submit = False
    sched.ready = True
    k.ev("drm_sched_init", name, f"credit_limit {credit_limit}")
    return 0


def _rq_ctor(sched: DrmGpuScheduler, prio: int) -> Callable[[], DrmSchedRq]:
    return lambda: DrmSchedRq(sched, prio)


async def _init_fail(k: Kernel, sched: DrmGpuScheduler) -> int:
    if sched.own_submit_wq and sched.submit_wq is not None:
        await destroy_workqueue(sched.submit_wq)
    k.ev("dev_err", sched.name, "Failed to setup GPU scheduler--out of memory")
    return -ENOMEM


async def drm_sched_wqueue_stop(sched: DrmGpuScheduler) -> None:
    """``drm_sched_wqueue_stop()``: pause submission, cancel both works (waiting for them)."""
    await preempt()
    sched.pause_submit = True
    assert sched.work_run_job is not None and sched.work_free_job is not None
    await cancel_work_sync(sched.work_run_job)
    await cancel_work_sync(sched.work_free_job)


async def drm_sched_wqueue_start(sched: DrmGpuScheduler) -> None:
    """``drm_sched_wqueue_start()``: unpause and queue both works."""
    await preempt()
    sched.pause_submit = False
    assert sched.submit_wq is not None
    assert sched.work_run_job is not None and sched.work_free_job is not None
    await queue_work(sched.submit_wq, sched.work_run_job)
    await queue_work(sched.submit_wq, sched.work_free_job)


def drm_sched_wqueue_ready(sched: DrmGpuScheduler) -> bool:
    """``drm_sched_wqueue_ready()``."""
    return sched.ready


async def drm_sched_fini(sched: DrmGpuScheduler) -> None:
    """``drm_sched_fini()``: stop, mark the entities stopped, free the run queues.

    Jobs still on the pending list are leaked (v6.14 has no check); the model
    records that as a ``leak`` finding at the end of the run.
    """
    k = current_kernel()
    await drm_sched_wqueue_stop(sched)
    rqs = sched.sched_rq
    for rq in rqs or []:
        with rq.lock:
            for s_entity in rq.entities:
                s_entity.stopped = True
        kfree(rq)
    sched.job_scheduled.wake_all()
    assert sched.work_tdr is not None
    await cancel_delayed_work_sync(sched.work_tdr)
    if sched.own_submit_wq and sched.submit_wq is not None:
        await destroy_workqueue(sched.submit_wq)
    sched.ready = False
    kfree(rqs)
    sched.sched_rq = None
    if sched.pending_list:
        leaked = [j.label() for j in sched.pending_list]
        name = sched.name

        def report(kk: Kernel) -> None:
            kk.record_failure(
                Failure(
                    "leak",
                    f"drm_sched_fini({name}) left {len(leaked)} job(s) on the pending list, "
                    f"never freed: {', '.join(leaked)}",
                    signature=f"leak:drm_sched_fini-pending:{name}",
                )
            )

        k.exit_checks.append(report)
    k.ev("drm_sched_fini", sched.name)


# ---------------------------------------------------------------------- stop / start


async def drm_sched_stop(sched: DrmGpuScheduler, bad: DrmSchedJob | None) -> None:
    """``drm_sched_stop()``: stop and detach the hardware, free what already finished."""
    assert sched.ops is not None
    await drm_sched_wqueue_stop(sched)
    if bad is not None and bad.sched is sched:
        sched.pending_list.insert(0, bad)
    for s_job in reversed(list(sched.pending_list)):
        s_fence = s_job.s_fence
        assert s_fence is not None
        parent = s_fence.parent
        if parent is not None and await dma_fence_remove_callback(parent, s_job.cb):
            await dma_fence_put(parent)
            s_fence.parent = None
            sched.credit_count -= s_job.credits
            s_job.state = "stopped (hw fence detached)"
        else:
            with sched.job_list_lock:
                if s_job in sched.pending_list:
                    sched.pending_list.remove(s_job)
            # Wait for the job's fence callback to finish before releasing it.
            await dma_fence_wait(s_fence.finished, False)
            if bad is not s_job:
                s_job.state = "in free_job (drm_sched_stop)"
                await sched.ops.free_job(s_job)
            else:
                sched.free_guilty = True
    assert sched.work_tdr is not None
    cancel_delayed_work_atomic(sched.work_tdr)
    current_kernel().ev("drm_sched_stop", sched.name)


async def drm_sched_start(sched: DrmGpuScheduler, errno: int) -> None:
    """``drm_sched_start(sched, errno)``: re-arm or complete the pending jobs, restart."""
    await preempt()
    for s_job in list(sched.pending_list):
        s_fence = s_job.s_fence
        assert s_fence is not None
        fence = s_fence.parent
        sched.credit_count += s_job.credits
        if fence is None:
            await drm_sched_job_done(s_job, errno or -ECANCELED)
            continue
        s_job.state = f"waiting for hw fence {fence.label}"
        if await dma_fence_add_callback(fence, s_job.cb, drm_sched_job_done_cb):
            await drm_sched_job_done(s_job, fence.error or errno)
    drm_sched_start_timeout_unlocked(sched)
    await drm_sched_wqueue_start(sched)
    current_kernel().ev("drm_sched_start", sched.name, str(errno))


# ---------------------------------------------------------------------- jobs


async def drm_sched_job_init(
    job: DrmSchedJob, entity: DrmSchedEntity, credits: int, owner: object
) -> int:
    """``drm_sched_job_init()``: -ENOENT without an rq, -EINVAL for 0 credits, -ENOMEM."""
    await preempt()
    k = current_kernel()
    if entity.rq is None:
        k.ev("dev_err", entity.name, "drm_sched_job_init: entity has no rq!")
        return -ENOENT
    if not credits:
        k.ev("pr_err", entity.name, "drm_sched_job_init: credits cannot be 0!")
        return -EINVAL
    DrmSchedJob.__init__(job)  # memset(job, 0, sizeof(*job)) of the base
    job.entity = entity
    job.credits = credits
    s_fence = await drm_sched_fence_alloc(entity, owner)
    if s_fence is None:
        job.s_fence = None
        return -ENOMEM
    s_fence.job = job
    job.s_fence = s_fence
    job.state = "initialised"
    return 0


async def drm_sched_job_arm(job: DrmSchedJob) -> None:
    """``drm_sched_job_arm()``: pick the scheduler, number the job, init its fences."""
    await preempt()
    entity = job.entity
    BUG_ON(entity is None)
    assert entity is not None and job.s_fence is not None
    drm_sched_entity_select_rq(entity)
    assert entity.rq is not None
    sched = entity.rq.sched
    job.sched = sched
    job.s_priority = entity.priority
    sched.job_id_count += 1
    job.id = sched.job_id_count
    drm_sched_fence_init(job.s_fence, entity)
    job.state = "armed"


async def drm_sched_job_add_dependency(job: DrmSchedJob, fence: DmaFence | None) -> int:
    """``drm_sched_job_add_dependency()``: consumes the reference; one fence per context."""
    await preempt()
    if fence is None:
        return 0
    for index, entry in job.dependencies.items():
        if entry.context != fence.context:
            continue
        if dma_fence_is_later(fence, entry):
            dma_fence_put_atomic(entry)
            job.dependencies[index] = fence
        else:
            dma_fence_put_atomic(fence)
        return 0
    # xa_alloc(): the first entry lives in the xarray head; the second needs
    # a node (GFP_KERNEL), which can fail.
    if len(job.dependencies) == 1 and await current_kernel().mem.alloc_prologue(GFP_KERNEL):
        dma_fence_put_atomic(fence)
        return -ENOMEM
    job.dependencies[job.next_dependency_id] = fence
    job.next_dependency_id += 1
    return 0


async def drm_sched_job_add_resv_dependencies(
    job: DrmSchedJob, resv: DmaResv, usage: DmaResvUsage
) -> int:
    """``drm_sched_job_add_resv_dependencies()`` (resv locked)."""
    dma_resv_assert_held(resv)
    for fence, _u in dma_resv_for_each_fence(resv, usage):
        dma_fence_get_atomic(fence)
        ret = await drm_sched_job_add_dependency(job, fence)
        if ret:
            dma_fence_put_atomic(fence)
            return ret
    return 0


async def drm_sched_job_add_implicit_dependencies(
    job: DrmSchedJob, obj: DrmGemObject, write: bool
) -> int:
    """``drm_sched_job_add_implicit_dependencies()``."""
    return await drm_sched_job_add_resv_dependencies(job, obj.resv, _usage_rw(write))


async def drm_sched_job_add_syncobj_dependency(
    job: DrmSchedJob, file: object, handle: int, point: int
) -> int:
    """``drm_sched_job_add_syncobj_dependency()``: find the point's fence, depend on it."""
    ret, fence = await drm_syncobj_find_fence(file, handle, point, 0)
    if ret:
        return ret
    return await drm_sched_job_add_dependency(job, fence)


def drm_sched_job_has_dependency(job: DrmSchedJob, fence: DmaFence) -> bool:
    """``drm_sched_job_has_dependency()``."""
    return any(f is fence for f in job.dependencies.values())


async def drm_sched_job_cleanup(job: DrmSchedJob) -> None:
    """``drm_sched_job_cleanup()``: put ``finished`` (or free an unarmed fence) and the deps."""
    await preempt()
    s_fence = job.s_fence
    if s_fence is None:
        raise KernelBug(
            f"BUG: kernel NULL pointer dereference: drm_sched_job_cleanup() of {job.label()} "
            f"with no s_fence (cleaned up twice?)",
            signature="exception:BUG:drm_sched_job_cleanup-null-s_fence",
        )
    s_fence.job = None
    job.s_fence = None
    if s_fence.finished.refcount.refs:
        dma_fence_put_atomic(s_fence.finished)  # drm_sched_job_arm() has been called
    else:
        drm_sched_fence_free(s_fence)  # aborted before arming
    for fence in list(job.dependencies.values()):
        dma_fence_put_atomic(fence)
    job.dependencies = {}
    job.state = "cleaned up"


def drm_sched_increase_karma(bad: DrmSchedJob) -> None:
    """``drm_sched_increase_karma()`` (kept for the timeout path's drivers)."""
    bad.karma += 1
