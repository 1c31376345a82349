"""Scheduler fences (drivers/gpu/drm/scheduler/sched_fence.c, v6.14).

``scheduled`` signals when the job is handed to ``run_job``; ``finished``
when it is done (with the job's error). They share ``s_fence->lock``; the
finished fence holds a reference on the scheduled one, whose release frees
the whole ``drm_sched_fence`` (and drops the hardware ``parent`` fence).
The structure comes from the allocator, so using it after the last put is a
use-after-free finding.
"""

from __future__ import annotations

from ..core.kernel import current_kernel
from ..core.thread import SimThread
from ..dma_buf.dma_fence import (
    DmaFence,
    DmaFenceOps,
    dma_fence_get_atomic,
    dma_fence_init,
    dma_fence_put_atomic,
    dma_fence_set_error,
    dma_fence_signal,
)
from ..errno import ErrPtr
from ..mm.gfp import GFP_KERNEL
from ..mm.memory import kfree, kzalloc
from ..warn import WARN_ON_ONCE
from .drm_sched_types import DrmSchedEntity, DrmSchedFence, to_drm_sched_fence


def _state(s_fence: DrmSchedFence) -> str:
    job = s_fence.job
    return job.state if job is not None else "job freed"


class _SchedFenceOps(DmaFenceOps):
    driver_name = "drm_sched"

    def get_timeline_name(self, fence: DmaFence) -> str:
        s = to_drm_sched_fence(fence)
        return s.sched.name if s is not None and s.sched is not None else "drm_sched"

    def signaller(self, fence: DmaFence) -> tuple[str, SimThread | None]:
        s = to_drm_sched_fence(fence)
        if s is None or s.sched is None:
            return ("drm_sched (uninitialised fence)", None)
        sched = s.sched
        job = s.job
        what = job.label() if job is not None else "a freed job"
        paused = "; submission paused by drm_sched_stop()" if sched.pause_submit else ""
        if fence is s.scheduled:
            who = f"the run work of {sched.name} when it picks {what} ({_state(s)}){paused}"
            return (who, sched._run_worker())
        parent = s.parent
        if parent is not None:
            pwho, pthread = parent.ops.signaller(parent)
            return (
                f"drm_sched_job_done() of {what} when its hw fence {parent.label} signals "
                f"(hw fence: {pwho}){paused}",
                pthread,
            )
        return (f"the run work of {sched.name} for {what} ({_state(s)}){paused}", None)


class _ScheduledOps(_SchedFenceOps):
    def release(self, fence: DmaFence) -> None:
        """``drm_sched_fence_release_scheduled()``: drop the parent, free the structure."""
        s = to_drm_sched_fence(fence)
        assert s is not None
        dma_fence_put_atomic(s.parent)
        _free(s)


class _FinishedOps(_SchedFenceOps):
    def release(self, fence: DmaFence) -> None:
        """``drm_sched_fence_release_finished()``: drop the scheduled fence."""
        s = to_drm_sched_fence(fence)
        assert s is not None
        dma_fence_put_atomic(s.scheduled)


drm_sched_fence_ops_scheduled = _ScheduledOps()
drm_sched_fence_ops_finished = _FinishedOps()


def _free(s: DrmSchedFence) -> None:
    """``kmem_cache_free(sched_fence_slab, fence)`` (RCU-deferred in the kernel)."""
    scheduled, finished = s.scheduled, s.finished
    kfree(s)
    kfree(scheduled)
    kfree(finished)


async def drm_sched_fence_alloc(entity: DrmSchedEntity, owner: object) -> DrmSchedFence | None:
    """``drm_sched_fence_alloc()``: None on -ENOMEM."""
    s = await kzalloc(lambda: DrmSchedFence(owner), GFP_KERNEL)
    if s is None:
        return None
    mem = current_kernel().mem
    # The two fences are embedded in the allocation: track them with it, so
    # that a use after the structure is freed is caught on the fences too.
    mem.register(s.scheduled, "drm_sched_fence.scheduled")
    mem.register(s.finished, "drm_sched_fence.finished")
    return s


def drm_sched_fence_init(fence: DrmSchedFence, entity: DrmSchedEntity) -> None:
    """``drm_sched_fence_init()``: contexts ``entity->fence_context`` (+1), seqno ++fence_seq."""
    assert entity.rq is not None
    fence.sched = entity.rq.sched
    entity.fence_seq += 1
    seq = entity.fence_seq
    dma_fence_init(
        fence.scheduled, drm_sched_fence_ops_scheduled, fence.lock, entity.fence_context, seq
    )
    dma_fence_init(
        fence.finished, drm_sched_fence_ops_finished, fence.lock, entity.fence_context + 1, seq
    )


def drm_sched_fence_free(fence: DrmSchedFence) -> None:
    """``drm_sched_fence_free()``: only for a fence that was never initialised."""
    if not WARN_ON_ONCE(fence.sched is not None):
        _free(fence)


async def drm_sched_fence_scheduled(fence: DrmSchedFence, parent: DmaFence | ErrPtr | None) -> None:
    """``drm_sched_fence_scheduled()``: record a real parent, then signal ``scheduled``."""
    if isinstance(parent, DmaFence):
        dma_fence_get_atomic(parent)
        fence.parent = parent
    await dma_fence_signal(fence.scheduled)


async def drm_sched_fence_finished(fence: DrmSchedFence, result: int) -> None:
    """``drm_sched_fence_finished()``: set the error (if any), signal ``finished``."""
    if result:
        dma_fence_set_error(fence.finished, result)
    await dma_fence_signal(fence.finished)
