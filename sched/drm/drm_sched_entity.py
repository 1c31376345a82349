"""Scheduler entities (drivers/gpu/drm/scheduler/sched_entity.c, v6.14).

An entity is a FIFO of jobs feeding one scheduler's run queue. Jobs leave it
in order when their dependencies are met (fences of the same entity are
skipped; fences of the same scheduler only need to be *scheduled*). Killing
an entity (``drm_sched_entity_fini``) finishes every job still queued with
-ESRCH, each after the previous one and its own dependencies, from a work.
"""

from __future__ import annotations

from ..core.clock import msecs_to_jiffies
from ..core.kernel import current_kernel, preempt
from ..deferred.workqueue import INIT_WORK, WorkStruct, schedule_work_atomic
from ..dma_buf.dma_fence import (
    DmaFence,
    DmaFenceCb,
    dma_fence_add_callback,
    dma_fence_context_alloc,
    dma_fence_get_atomic,
    dma_fence_get_rcu,
    dma_fence_is_signaled_atomic,
    dma_fence_put_atomic,
    dma_fence_remove_callback,
    dma_fence_set_error,
)
from ..errno import ECANCELED, EINVAL, ESRCH
from ..locking.atomic import Atomic
from ..locking.completion import complete_all, wait_for_completion
from ..locking.lockdep import might_sleep
from ..warn import WARN_ON
from .drm_sched_fence import drm_sched_fence_finished
from .drm_sched_types import (
    DRM_SCHED_FENCE_DONT_PIPELINE,
    DRM_SCHED_PRIORITY_KERNEL,
    DrmGpuScheduler,
    DrmSchedEntity,
    DrmSchedJob,
    drm_sched_rq_add_entity,
    drm_sched_rq_remove_entity,
    drm_sched_rq_update_fifo_locked,
    drm_sched_wakeup,
    to_drm_sched_fence,
)

MAX_WAIT_SCHED_ENTITY_Q_EMPTY = msecs_to_jiffies(1000)


async def drm_sched_entity_init(
    entity: DrmSchedEntity,
    priority: int,
    sched_list: list[DrmGpuScheduler] | None,
    num_sched_list: int,
    guilty: Atomic | None = None,
) -> int:
    """``drm_sched_entity_init()``: -EINVAL on bad arguments; starts idle."""
    await preempt()
    if not (entity and sched_list is not None and (num_sched_list == 0 or sched_list[0])):
        return -EINVAL
    k = current_kernel()
    name = entity.name
    entity.reset()  # memset(entity, 0, sizeof(*entity))
    entity.guilty = guilty
    entity.num_sched_list = num_sched_list
    entity.priority = priority
    entity.sched_list = sched_list if num_sched_list > 1 else None
    entity.last_scheduled = None
    if num_sched_list:
        sched = sched_list[0]
        if sched.sched_rq is None:
            k.ev("pr_warn", name, "drm_sched_entity_init: called with uninitialized scheduler")
        else:
            if entity.priority >= sched.num_rqs:
                k.ev("dev_err", name, f"entity priority {priority} >= num_rqs {sched.num_rqs}")
                entity.priority = max(sched.num_rqs - 1, DRM_SCHED_PRIORITY_KERNEL)
            entity.rq = sched.sched_rq[entity.priority]
            if entity not in sched.entities_seen:
                sched.entities_seen.append(entity)
    entity.entity_idle.done = 0  # init_completion()
    await complete_all(entity.entity_idle)  # we start in an idle state
    entity.fence_seq = 0
    entity.fence_context = dma_fence_context_alloc(2)
    return 0


def drm_sched_entity_modify_sched(
    entity: DrmSchedEntity, sched_list: list[DrmGpuScheduler], num_sched_list: int
) -> None:
    """``drm_sched_entity_modify_sched()``."""
    WARN_ON(not num_sched_list or not sched_list)
    entity.sched_list = sched_list
    entity.num_sched_list = num_sched_list


def drm_sched_entity_is_idle(entity: DrmSchedEntity) -> bool:
    """``drm_sched_entity_is_idle()``: off the rq, empty, or stopped."""
    return not entity.on_rq or not entity.job_queue or entity.stopped


def drm_sched_entity_is_ready(entity: DrmSchedEntity) -> bool:
    """``drm_sched_entity_is_ready()``: a queued job and no pending dependency."""
    return bool(entity.job_queue) and entity.dependency is None


# ---------------------------------------------------------------------- kill


async def drm_sched_entity_kill_jobs_work(work: WorkStruct) -> None:
    """``drm_sched_entity_kill_jobs_work()``: finish with -ESRCH, then ``free_job``."""
    job = work.container
    assert isinstance(job, DrmSchedJob) and job.s_fence is not None and job.sched is not None
    job.state = "killed"
    await drm_sched_fence_finished(job.s_fence, -ESRCH)
    WARN_ON(job.s_fence.parent)
    assert job.sched.ops is not None
    await job.sched.ops.free_job(job)


async def drm_sched_entity_kill_jobs_cb(f: DmaFence | None, cb: DmaFenceCb) -> None:
    """``drm_sched_entity_kill_jobs_cb()``: wait for every dependency, then the work."""
    job = cb.container
    assert isinstance(job, DrmSchedJob)
    dma_fence_put_atomic(f)
    for index in list(job.dependencies):
        dep: DmaFence | None = job.dependencies[index]
        assert dep is not None
        s_fence = to_drm_sched_fence(dep)
        if s_fence is not None and dep is s_fence.scheduled:
            # The array held the scheduled fence: wait for the finished one.
            dep = dma_fence_get_rcu(s_fence.finished)
            dma_fence_put_atomic(s_fence.scheduled)
        del job.dependencies[index]
        if dep is not None and not await dma_fence_add_callback(
            dep, job.finish_cb, drm_sched_entity_kill_jobs_cb
        ):
            job.state = f"killed, waiting for dependency {dep.label}"
            return
        dma_fence_put_atomic(dep)
    job.work = INIT_WORK(drm_sched_entity_kill_jobs_work, "&job->work", job)
    schedule_work_atomic(job.work)


async def drm_sched_entity_kill(entity: DrmSchedEntity) -> None:
    """``drm_sched_entity_kill()``: stop the entity and kill every queued job."""
    if entity.rq is None:
        return
    with entity.lock:
        entity.stopped = True
        drm_sched_rq_remove_entity(entity.rq, entity)
    # Make sure this entity is not used by the scheduler at the moment.
    await wait_for_completion(entity.entity_idle)
    prev = dma_fence_get_atomic(entity.last_scheduled)
    while entity.job_queue:
        job = entity.job_queue.popleft()
        s_fence = job.s_fence
        assert s_fence is not None
        job.state = "killed, waiting for the previous job"
        dma_fence_get_atomic(s_fence.finished)
        if prev is None or await dma_fence_add_callback(
            prev, job.finish_cb, drm_sched_entity_kill_jobs_cb
        ):
            dma_fence_put_atomic(prev)
            await drm_sched_entity_kill_jobs_cb(None, job.finish_cb)
        prev = s_fence.finished
    dma_fence_put_atomic(prev)


async def drm_sched_entity_flush(entity: DrmSchedEntity, timeout: int) -> int:
    """``drm_sched_entity_flush()``: wait until every queued job went to ``run_job``.

    The model's tasks never exit with SIGKILL, so this is the killable wait
    and the time left is ``timeout``.
    """
    await preempt()
    if entity.rq is None:
        return 0
    might_sleep()
    sched = entity.rq.sched
    while not drm_sched_entity_is_idle(entity):
        await sched.job_scheduled.wait()
    return timeout


async def drm_sched_entity_fini(entity: DrmSchedEntity) -> None:
    """``drm_sched_entity_fini()``: kill the queue, drop the dependency and last_scheduled."""
    await drm_sched_entity_kill(entity)
    if entity.dependency is not None:
        await dma_fence_remove_callback(entity.dependency, entity.cb)
        # Re-read: the callback may have cleared it meanwhile (as the C code does).
        dma_fence_put_atomic(entity.dependency)
        entity.dependency = None
    dma_fence_put_atomic(entity.last_scheduled)
    entity.last_scheduled = None


async def drm_sched_entity_destroy(entity: DrmSchedEntity) -> None:
    """``drm_sched_entity_destroy()`` = flush + fini."""
    await drm_sched_entity_flush(entity, MAX_WAIT_SCHED_ENTITY_Q_EMPTY)
    await drm_sched_entity_fini(entity)


# ---------------------------------------------------------------------- dependencies


def _clear_dep(f: DmaFence, cb: DmaFenceCb) -> None:
    entity = cb.container
    assert isinstance(entity, DrmSchedEntity)
    entity.dependency = None
    dma_fence_put_atomic(f)


async def drm_sched_entity_clear_dep(f: DmaFence, cb: DmaFenceCb) -> None:
    """``drm_sched_entity_clear_dep()``: the dependency signalled."""
    _clear_dep(f, cb)


async def drm_sched_entity_wakeup(f: DmaFence, cb: DmaFenceCb) -> None:
    """``drm_sched_entity_wakeup()``: clear the dependency and kick the run work."""
    entity = cb.container
    assert isinstance(entity, DrmSchedEntity) and entity.rq is not None
    sched = entity.rq.sched
    _clear_dep(f, cb)
    await drm_sched_wakeup(sched)


def drm_sched_entity_set_priority(entity: DrmSchedEntity, priority: int) -> None:
    """``drm_sched_entity_set_priority()``."""
    with entity.lock:
        entity.priority = priority


async def _add_dependency_cb(entity: DrmSchedEntity, job: DrmSchedJob) -> bool:
    """``drm_sched_entity_add_dependency_cb()``: True if we must wait for it."""
    assert entity.rq is not None
    sched = entity.rq.sched
    fence = entity.dependency
    assert fence is not None
    if fence.context in (entity.fence_context, entity.fence_context + 1):
        # A fence of our own entity: the order of the queue covers it.
        dma_fence_put_atomic(entity.dependency)
        return False
    s_fence = to_drm_sched_fence(fence)
    if (
        not fence.error
        and s_fence is not None
        and s_fence.sched is sched
        and not fence.flags & (1 << DRM_SCHED_FENCE_DONT_PIPELINE)
    ):
        # Same scheduler: it only needs to be scheduled before us.
        scheduled = dma_fence_get_atomic(s_fence.scheduled)
        assert scheduled is not None
        dma_fence_put_atomic(entity.dependency)
        entity.dependency = scheduled
        if not await dma_fence_add_callback(scheduled, entity.cb, drm_sched_entity_clear_dep):
            job.state = f"queued, waiting for {scheduled.label} to be scheduled"
            return True
        dma_fence_put_atomic(scheduled)
        return False
    if not await dma_fence_add_callback(entity.dependency, entity.cb, drm_sched_entity_wakeup):
        job.state = f"queued, waiting for dependency {fence.label}"
        return True
    dma_fence_put_atomic(entity.dependency)
    return False


async def _job_dependency(job: DrmSchedJob, entity: DrmSchedEntity) -> DmaFence | None:
    """``drm_sched_job_dependency()``: the next dependency (kept in the array)."""
    f = job.dependencies.get(job.last_dependency)
    if f is not None:
        job.last_dependency += 1
        return dma_fence_get_atomic(f)
    assert job.sched is not None and job.sched.ops is not None
    if job.sched.ops.has_prepare_job:
        return await job.sched.ops.prepare_job(job, entity)
    return None


async def drm_sched_entity_pop_job(entity: DrmSchedEntity) -> DrmSchedJob | None:
    """``drm_sched_entity_pop_job()``: the head job if its dependencies are met."""
    if not entity.job_queue:
        return None
    sched_job = entity.job_queue[0]
    while True:
        entity.dependency = await _job_dependency(sched_job, entity)
        if entity.dependency is None:
            break
        if await _add_dependency_cb(entity, sched_job):
            return None
    assert sched_job.s_fence is not None
    if entity.guilty is not None and entity.guilty.v:
        dma_fence_set_error(sched_job.s_fence.finished, -ECANCELED)
    dma_fence_put_atomic(entity.last_scheduled)
    entity.last_scheduled = dma_fence_get_atomic(sched_job.s_fence.finished)
    entity.job_queue.popleft()
    if entity.job_queue:
        nxt = entity.job_queue[0]
        with entity.lock:
            rq = entity.rq
            assert rq is not None
            with rq.lock:
                drm_sched_rq_update_fifo_locked(entity, rq, nxt.submit_ts)
    sched_job.entity = None
    return sched_job


def drm_sched_entity_select_rq(entity: DrmSchedEntity) -> None:
    """``drm_sched_entity_select_rq()``: load balancing when the queue is empty."""
    if not entity.sched_list:
        return
    if entity.job_queue:
        return
    fence = entity.last_scheduled
    if fence is not None and not dma_fence_is_signaled_atomic(fence):
        return
    with entity.lock:
        sched = drm_sched_pick_best(entity.sched_list, entity.num_sched_list)
        rq = sched.sched_rq[entity.priority] if sched is not None and sched.sched_rq else None
        if rq is not entity.rq:
            if entity.rq is not None:
                drm_sched_rq_remove_entity(entity.rq, entity)
            entity.rq = rq
    if entity.num_sched_list == 1:
        entity.sched_list = None


def drm_sched_pick_best(
    sched_list: list[DrmGpuScheduler], num_sched_list: int
) -> DrmGpuScheduler | None:
    """``drm_sched_pick_best()``: the ready scheduler with the lowest score."""
    picked: DrmGpuScheduler | None = None
    min_score = 1 << 32
    for sched in sched_list[:num_sched_list]:
        if not sched.ready:
            current_kernel().ev("DRM_WARN", sched.name, "scheduler is not ready, skipping")
            continue
        if sched.score.v < min_score:
            min_score = sched.score.v
            picked = sched
    return picked


async def drm_sched_entity_push_job(sched_job: DrmSchedJob) -> None:
    """``drm_sched_entity_push_job()``: queue; the first job adds the entity and kicks the run work.

    "After the sched_job is pushed into the entity queue, it may be completed
    and freed up at any time": there is a yield point right after
    ``spsc_queue_push()``, where the run work (queued by someone else) can
    pop, run, complete and free the job before this function goes on, and
    nothing after it touches the job.

    Pushing the first job onto a killed entity only logs an error: that job
    will never run and its finished fence never signals.
    """
    await preempt()
    k = current_kernel()
    entity = sched_job.entity
    assert entity is not None and entity.rq is not None
    entity.rq.sched.score.v += 1
    entity.last_user = k.current
    sched_job.submit_ts = submit_ts = k.now
    sched_job.state = "queued"
    k.ev("drm_sched_push_job", entity.name, f"job #{sched_job.id}")
    first = not entity.job_queue
    entity.job_queue.append(sched_job)  # spsc_queue_push()
    await preempt()
    if first:
        with entity.lock:
            if entity.stopped:
                k.ev("DRM_ERROR", entity.name, "Trying to push to a killed entity")
                if sched_job in entity.job_queue:  # still queued, so not freed
                    sched_job.state = "lost: pushed to a killed entity"
                return
            rq = entity.rq
            sched = rq.sched
            with rq.lock:
                drm_sched_rq_add_entity(rq, entity)
                drm_sched_rq_update_fifo_locked(entity, rq, submit_ts)
        await drm_sched_wakeup(sched)
