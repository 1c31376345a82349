"""The drm_sched KUnit mock backend (drivers/gpu/drm/scheduler/tests/mock_scheduler.c).

A "GPU" for exercising the scheduler: ``run_job`` returns a hardware fence
on the mock timeline, completed either when the test advances the timeline
(:func:`drm_mock_sched_advance`) or by a timer after the job's duration.
Adapted to v6.14 (positional ``drm_sched_init``, no ``cancel_job``).

``mock->lock`` is the hardware fences' lock: completing a job signals its
fence under it, and the callbacks (``drm_sched_job_done``) yield, so every
section taking it is an ``async with``. The job timer's body
(``drm_mock_sched_job_signal_timer()``) runs on a ``softirq/`` daemon
thread woken by the timer.
"""

from __future__ import annotations

from typing import Final

from ..core.clock import MAX_SCHEDULE_TIMEOUT, NSEC_PER_JIFFY
from ..core.kernel import NSEC_PER_USEC, Timer, current_kernel, preempt
from ..core.thread import SimThread
from ..dma_buf.dma_fence import (
    DmaFence,
    DmaFenceOps,
    dma_fence_context_alloc,
    dma_fence_get_atomic,
    dma_fence_init,
    dma_fence_is_signaled_locked,
    dma_fence_put,
    dma_fence_set_error,
    dma_fence_signal_locked,
    dma_fence_wait_timeout,
)
from ..errno import ETIMEDOUT, ErrPtr
from ..locking.completion import Completion, complete_locked, wait_for_completion_timeout
from ..locking.spin import SyncSpinLock, softirq
from .drm_sched import drm_sched_fini, drm_sched_init, drm_sched_job_arm, drm_sched_job_cleanup
from .drm_sched import drm_sched_job_init as _job_init
from .drm_sched_entity import (
    drm_sched_entity_destroy,
    drm_sched_entity_init,
    drm_sched_entity_push_job,
)
from .drm_sched_types import (
    DRM_GPU_SCHED_STAT_NOMINAL,
    DRM_SCHED_PRIORITY_COUNT,
    DrmGpuScheduler,
    DrmSchedBackendOps,
    DrmSchedEntity,
    DrmSchedJob,
)

DRM_MOCK_SCHED_JOB_DONE: Final = 1 << 0
DRM_MOCK_SCHED_JOB_TIMEDOUT: Final = 1 << 1

U32_MAX: Final = (1 << 32) - 1


class DrmMockScheduler:
    """``struct drm_mock_scheduler``."""

    def __init__(self, name: str) -> None:
        self.base = DrmGpuScheduler(name)
        self.lock = SyncSpinLock(f"{name}.lock", "&mock_sched->lock")
        self.job_list: list[DrmMockSchedJob] = []
        self.hw_context = 0
        self.next_seqno = 0
        self.cur_seqno = 0


class DrmMockSchedJob(DrmSchedJob):
    """``struct drm_mock_sched_job``."""

    def __init__(self, mock: DrmMockScheduler) -> None:
        super().__init__()
        self.mock = mock
        self.hw_fence = DmaFence(timeline="drm_mock_sched", container=self)
        self.flags = 0
        self.duration_us = 0
        self.finish_at = 0
        self.timer: Timer | None = None
        self.done = Completion("mock job done")


class _HwFenceOps(DmaFenceOps):
    driver_name = "drm_mock_sched"

    def get_timeline_name(self, fence: DmaFence) -> str:
        job = fence.container
        assert isinstance(job, DrmMockSchedJob)
        return job.mock.base.name

    def release(self, fence: DmaFence) -> None:
        job = fence.container
        assert isinstance(job, DrmMockSchedJob)
        if job.timer is not None:
            job.timer.cancel()

    def signaller(self, fence: DmaFence) -> tuple[str, SimThread | None]:
        job = fence.container
        assert isinstance(job, DrmMockSchedJob)
        if job.duration_us:
            return (f"the mock GPU timer at {job.finish_at}ns", None)
        return ("drm_mock_sched_advance() by the test", None)


_HW_FENCE_OPS: Final = _HwFenceOps()


async def _job_complete(job: DrmMockSchedJob) -> None:
    """``drm_mock_sched_job_complete()`` (mock lock held)."""
    job.flags |= DRM_MOCK_SCHED_JOB_DONE
    job.mock.job_list.remove(job)
    await dma_fence_signal_locked(job.hw_fence)
    complete_locked(job.done)


async def _signal_timer(mock: DrmMockScheduler) -> None:
    """``drm_mock_sched_job_signal_timer()``: complete every job whose time has come."""
    k = current_kernel()
    now = k.now
    async with mock.lock:
        for job in list(mock.job_list):
            if not job.duration_us or now < job.finish_at:
                break
            mock.cur_seqno = job.hw_fence.seqno
            await _job_complete(job)


class _MockOps(DrmSchedBackendOps):
    def __init__(self, mock: DrmMockScheduler) -> None:
        self.mock = mock

    async def run_job(self, job: DrmSchedJob) -> DmaFence | ErrPtr | None:
        """``mock_sched_run_job()``."""
        assert isinstance(job, DrmMockSchedJob)
        k = current_kernel()
        mock = self.mock
        mock.next_seqno += 1
        dma_fence_init(job.hw_fence, _HW_FENCE_OPS, mock.lock, mock.hw_context, mock.next_seqno)
        dma_fence_get_atomic(job.hw_fence)  # reference for the job_list
        async with mock.lock:
            if job.duration_us:
                prev_finish_at = mock.job_list[-1].finish_at if mock.job_list else 0
                if not prev_finish_at:
                    prev_finish_at = k.now
                job.finish_at = prev_finish_at + job.duration_us * NSEC_PER_USEC
            mock.job_list.append(job)
            if job.finish_at:
                job.timer = k.add_timer(
                    max(0, job.finish_at - k.now),
                    softirq(lambda: _signal_timer(mock), mock.base.name),
                    "mock job timer",
                )
        return job.hw_fence

    async def timedout_job(self, job: DrmSchedJob) -> int:
        """``mock_sched_timedout_job()``: fail the hw fence with -ETIMEDOUT, clean up."""
        assert isinstance(job, DrmMockSchedJob)
        async with self.mock.lock:
            if not await dma_fence_is_signaled_locked(job.hw_fence):
                self.mock.job_list.remove(job)
                job.flags |= DRM_MOCK_SCHED_JOB_TIMEDOUT
                dma_fence_set_error(job.hw_fence, -ETIMEDOUT)
                await dma_fence_signal_locked(job.hw_fence)
        await dma_fence_put(job.hw_fence)
        await drm_sched_job_cleanup(job)
        return DRM_GPU_SCHED_STAT_NOMINAL

    async def free_job(self, job: DrmSchedJob) -> None:
        """``mock_sched_free_job()``."""
        assert isinstance(job, DrmMockSchedJob)
        await dma_fence_put(job.hw_fence)
        await drm_sched_job_cleanup(job)


async def drm_mock_sched_new(timeout: int = MAX_SCHEDULE_TIMEOUT) -> DrmMockScheduler:
    """``drm_mock_sched_new()``: a mock scheduler (4 run queues, no credit limit)."""
    mock = DrmMockScheduler("drm-mock-scheduler")
    ret = await drm_sched_init(
        mock.base,
        _MockOps(mock),
        None,
        DRM_SCHED_PRIORITY_COUNT,
        U32_MAX,
        1,
        timeout,
        None,
        None,
        "drm-mock-scheduler",
        None,
    )
    assert ret == 0, ret
    mock.hw_context = dma_fence_context_alloc(1)
    return mock


async def drm_mock_sched_fini(mock: DrmMockScheduler) -> None:
    """``drm_mock_sched_fini()``."""
    await drm_sched_fini(mock.base)


async def drm_mock_sched_entity_new(
    priority: int, mock: DrmMockScheduler, name: str = "mock-entity"
) -> DrmSchedEntity:
    """``drm_mock_sched_entity_new()``."""
    entity = DrmSchedEntity(name)
    ret = await drm_sched_entity_init(entity, priority, [mock.base], 1, None)
    assert ret == 0, ret
    return entity


async def drm_mock_sched_entity_free(entity: DrmSchedEntity) -> None:
    """``drm_mock_sched_entity_free()`` = ``drm_sched_entity_destroy()``."""
    await drm_sched_entity_destroy(entity)


async def drm_mock_sched_job_new(entity: DrmSchedEntity, mock: DrmMockScheduler) -> DrmMockSchedJob:
    """``drm_mock_sched_job_new()``: one credit."""
    job = DrmMockSchedJob(mock)
    ret = await _job_init(job, entity, 1, None)
    assert ret == 0, ret
    return job


def drm_mock_sched_job_set_duration_us(job: DrmMockSchedJob, duration_us: int) -> None:
    """``drm_mock_sched_job_set_duration_us()``."""
    job.duration_us = duration_us


async def drm_mock_sched_job_submit(job: DrmMockSchedJob) -> None:
    """``drm_mock_sched_job_submit()``: arm and push."""
    await drm_sched_job_arm(job)
    await drm_sched_entity_push_job(job)


async def drm_mock_sched_job_wait_scheduled(job: DrmMockSchedJob, timeout: int) -> bool:
    """``drm_mock_sched_job_wait_scheduled()``."""
    assert job.s_fence is not None
    return await dma_fence_wait_timeout(job.s_fence.scheduled, False, timeout) != 0


async def drm_mock_sched_job_wait_finished(job: DrmMockSchedJob, timeout: int) -> bool:
    """``drm_mock_sched_job_wait_finished()``: ``job->done``, completed with the hw fence."""
    return await wait_for_completion_timeout(job.done, timeout * NSEC_PER_JIFFY) != 0


def drm_mock_sched_job_is_finished(job: DrmMockSchedJob) -> bool:
    """``drm_mock_sched_job_is_finished()``."""
    return bool(job.flags & DRM_MOCK_SCHED_JOB_DONE)


async def drm_mock_sched_advance(mock: DrmMockScheduler, num: int) -> int:
    """``drm_mock_sched_advance()``: complete the hw fences up to ``cur_seqno + num``."""
    await preempt()
    found = 0
    async with mock.lock:
        mock.cur_seqno += num
        for job in list(mock.job_list):
            if mock.cur_seqno < job.hw_fence.seqno:
                break
            await _job_complete(job)
            found += 1
    return found
