"""drm_sched semantics (drivers/gpu/drm/scheduler/sched_main.c, sched_entity.c, v6.14).

A backend whose ``run_job`` returns a fresh hardware fence that only the test signals,
so "scheduled" and "finished" are apart. Each test names one behaviour and fails when
it is changed (see docs/mutation.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from panthor_testbed.sched import (
    GFP_KERNEL,
    MAX_SCHEDULE_TIMEOUT,
    Completion,
    DmaFence,
    DmaFenceOps,
    DrmGpuScheduler,
    DrmSchedBackendOps,
    DrmSchedEntity,
    DrmSchedJob,
    ErrPtr,
    Kernel,
    KernelConfig,
    complete,
    complete_all,
    dma_fence_context_alloc,
    dma_fence_get,
    dma_fence_init,
    dma_fence_put,
    dma_fence_set_error,
    dma_fence_signal,
    dma_fence_test_signaled_flag,
    drm_sched_entity_destroy,
    drm_sched_entity_fini,
    drm_sched_entity_init,
    drm_sched_entity_push_job,
    drm_sched_fini,
    drm_sched_init,
    drm_sched_job_add_dependency,
    drm_sched_job_arm,
    drm_sched_job_cleanup,
    drm_sched_job_init,
    drm_sched_start,
    drm_sched_stop,
    kfree,
    kmalloc,
    kzalloc,
    wait_for_completion,
)
from panthor_testbed.sched.core.harness import arun
from panthor_testbed.sched.drm.drm_sched import drm_sched_fault
from panthor_testbed.sched.drm.drm_sched_entity import drm_sched_entity_modify_sched
from panthor_testbed.sched.drm.drm_sched_types import (
    DRM_GPU_SCHED_STAT_NOMINAL,
    DRM_SCHED_FENCE_DONT_PIPELINE,
)
from panthor_testbed.sched.errno import ECANCELED, EINVAL, EIO, ESRCH, ETIME

MS = 1_000_000


class HwOps(DmaFenceOps):
    driver_name = "hw"


HW_OPS = HwOps()


class HwJob(DrmSchedJob):
    def __init__(self, tag: int) -> None:
        super().__init__()
        self.tag = tag
        self.hw: DmaFence | None = None


class Backend(DrmSchedBackendOps):
    """``run_job`` returns a new hardware fence (the job keeps its own reference)."""

    def __init__(self, k: Kernel, name: str) -> None:
        self.k = k
        self.context = dma_fence_context_alloc(1)
        self.seqno = 0
        self.ran: list[int] = []
        self.freed: list[int] = []
        self.log: list[str] = []
        self.on_timeout: Callable[[HwJob], Awaitable[int]] | None = None
        self.name = name

    async def run_job(self, job: DrmSchedJob) -> DmaFence | ErrPtr | None:
        assert isinstance(job, HwJob)
        self.ran.append(job.tag)
        self.log.append(f"run {job.tag}")
        f = await kmalloc(DmaFence, GFP_KERNEL)
        assert f is not None
        self.seqno += 1
        dma_fence_init(f, HW_OPS, None, self.context, self.seqno)
        f.signaller_hint = f"the test ({self.name} job {job.tag})"
        old, job.hw = job.hw, f
        await dma_fence_put(old)  # a resubmission replaces the first hw fence
        return await dma_fence_get(f)

    async def timedout_job(self, job: DrmSchedJob) -> int:
        assert isinstance(job, HwJob)
        self.log.append(f"timedout {job.tag}")
        ret = DRM_GPU_SCHED_STAT_NOMINAL
        if self.on_timeout is not None:
            ret = await self.on_timeout(job)
        self.log.append(f"timedout {job.tag} returns")
        return ret

    async def free_job(self, job: DrmSchedJob) -> None:
        assert isinstance(job, HwJob)
        self.freed.append(job.tag)
        self.log.append(f"free {job.tag}")
        await dma_fence_put(job.hw)
        job.hw = None
        await drm_sched_job_cleanup(job)
        kfree(job)


async def new_sched(
    k: Kernel, name: str = "sched", timeout: int = MAX_SCHEDULE_TIMEOUT
) -> tuple[DrmGpuScheduler, Backend]:
    ops = Backend(k, name)
    sched = DrmGpuScheduler(name)
    assert await drm_sched_init(sched, ops, None, 1, 8, 0, timeout, None, None, name, None) == 0
    return sched, ops


async def new_entity(sched: DrmGpuScheduler, name: str) -> DrmSchedEntity:
    entity = DrmSchedEntity(name)
    assert await drm_sched_entity_init(entity, 0, [sched], 1, None) == 0
    return entity


async def new_job(entity: DrmSchedEntity, tag: int, deps: tuple[DmaFence, ...] = ()) -> HwJob:
    job = await kzalloc(lambda: HwJob(tag), GFP_KERNEL)
    assert job is not None
    assert await drm_sched_job_init(job, entity, 1, None) == 0
    for d in deps:
        assert await drm_sched_job_add_dependency(job, await dma_fence_get(d)) == 0
    await drm_sched_job_arm(job)
    return job


async def push(entity: DrmSchedEntity, tag: int, deps: tuple[DmaFence, ...] = ()) -> HwJob:
    job = await new_job(entity, tag, deps)
    await drm_sched_entity_push_job(job)
    return job


def finished(job: HwJob) -> DmaFence:
    assert job.s_fence is not None
    return job.s_fence.finished


def scheduled(job: HwJob) -> DmaFence:
    assert job.s_fence is not None
    return job.s_fence.scheduled


async def complete_hw(job: HwJob, error: int = 0) -> None:
    assert job.hw is not None
    if error:
        dma_fence_set_error(job.hw, error)
    await dma_fence_signal(job.hw)


async def teardown(k: Kernel, sched: DrmGpuScheduler, *entities: DrmSchedEntity) -> None:
    for e in entities:
        await drm_sched_entity_destroy(e)
    for _ in range(100):
        if not sched.pending_list:
            break
        await k.sleep_ns(MS)
    await drm_sched_fini(sched)


async def run_case(body: Callable[[Kernel], Awaitable[None]]) -> Kernel:
    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    return k


# ---------------------------------------------------------------------- dependencies


async def test_dependency_on_the_same_entity_is_skipped() -> None:
    """``drm_sched_entity_add_dependency_cb()``: a fence of the entity's own contexts is
    ignored (queue order covers it), even one marked DONT_PIPELINE that would otherwise
    make the job wait for the previous job to *finish*."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, ops = await new_sched(k)
        e = await new_entity(sched, "e")
        j1 = await push(e, 1)
        finished(j1).flags |= 1 << DRM_SCHED_FENCE_DONT_PIPELINE
        j2 = await push(e, 2, (finished(j1),))
        await k.sleep_ns(MS)
        seen["ran"] = list(ops.ran)
        await complete_hw(j1)
        await complete_hw(j2)
        await teardown(k, sched, e)

    await run_case(body)
    assert seen == {"ran": [1, 2]}


async def test_same_scheduler_dependency_waits_only_for_scheduled() -> None:
    """Same scheduler, other entity: the job only waits for the dependency's
    ``scheduled`` fence, so it runs while the first job is still on the hardware."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, ops = await new_sched(k)
        e1, e2 = await new_entity(sched, "e1"), await new_entity(sched, "e2")
        j1 = await push(e1, 1)
        j2 = await push(e2, 2, (finished(j1),))
        await k.sleep_ns(MS)
        seen["ran"] = list(ops.ran)
        seen["j1-finished"] = dma_fence_test_signaled_flag(finished(j1))
        await complete_hw(j1)
        await complete_hw(j2)
        await teardown(k, sched, e1, e2)

    await run_case(body)
    assert seen == {"ran": [1, 2], "j1-finished": False}


@pytest.mark.parametrize("why", ["DONT_PIPELINE", "error", "other scheduler"])
async def test_dependency_waits_for_finished(why: str) -> None:
    """The pipelining shortcut does not apply to a fence with DRM_SCHED_FENCE_DONT_PIPELINE,
    to one with an error set, nor to one of another scheduler: the job waits for it to
    finish (and the run work is woken when it does)."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, ops = await new_sched(k)
        other, other_ops = await new_sched(k, "other")
        e1 = await new_entity(other if why == "other scheduler" else sched, "e1")
        e2 = await new_entity(sched, "e2")
        j1 = await push(e1, 1)
        if why == "DONT_PIPELINE":
            finished(j1).flags |= 1 << DRM_SCHED_FENCE_DONT_PIPELINE
        elif why == "error":
            dma_fence_set_error(finished(j1), -EIO)
        j2 = await push(e2, 2, (finished(j1),))
        await k.sleep_ns(MS)
        seen["before"] = sorted(ops.ran + other_ops.ran)
        await complete_hw(j1)
        await k.sleep_ns(MS)
        seen["after"] = sorted(ops.ran + other_ops.ran)
        await complete_hw(j2)
        await teardown(k, sched, e2, e1)
        await teardown(k, other)

    await run_case(body)
    assert seen == {"before": [1], "after": [1, 2]}


async def test_add_dependency_keeps_only_the_latest_fence_of_a_context() -> None:
    """``drm_sched_job_add_dependency()``: one entry per context, the latest one; the
    reference of the fence not kept is dropped at once; other contexts are kept."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, _ops = await new_sched(k)
        e = await new_entity(sched, "e")
        c, d = dma_fence_context_alloc(1), dma_fence_context_alloc(1)
        fences = [DmaFence(HW_OPS, None, ctx, s) for ctx, s in ((c, 1), (c, 3), (c, 2), (d, 1))]
        job = await kzalloc(lambda: HwJob(1), GFP_KERNEL)
        assert job is not None
        assert await drm_sched_job_init(job, e, 1, None) == 0
        for f in fences:
            assert await drm_sched_job_add_dependency(job, await dma_fence_get(f)) == 0
        seen["deps"] = [
            ("c" if f.context == c else "d", f.seqno) for f in job.dependencies.values()
        ]
        seen["refs"] = [f.refcount.refs for f in fences]
        await drm_sched_job_cleanup(job)
        seen["refs-after"] = [f.refcount.refs for f in fences]
        kfree(job)
        for f in fences:
            await dma_fence_signal(f)
            await dma_fence_put(f)
        await teardown(k, sched, e)

    await run_case(body)
    assert seen == {
        "deps": [("c", 3), ("d", 1)],
        "refs": [1, 2, 1, 2],
        "refs-after": [1, 1, 1, 1],
    }


async def test_job_waits_for_the_latest_fence_of_a_context() -> None:
    """With 2 then 1 of one context added, the job waits for 2, not for 1."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, ops = await new_sched(k)
        e = await new_entity(sched, "e")
        c = dma_fence_context_alloc(1)
        f1, f2 = DmaFence(HW_OPS, None, c, 1), DmaFence(HW_OPS, None, c, 2)
        j = await push(e, 1, (f2, f1))
        await dma_fence_signal(f1)
        await k.sleep_ns(MS)
        seen["after f1"] = list(ops.ran)
        await dma_fence_signal(f2)
        await k.sleep_ns(MS)
        seen["after f2"] = list(ops.ran)
        await complete_hw(j)
        await teardown(k, sched, e)
        for f in (f1, f2):
            await dma_fence_put(f)

    await run_case(body)
    assert seen == {"after f1": [], "after f2": [1]}


# ---------------------------------------------------------------------- stop / start


@pytest.mark.parametrize(("errno", "expect"), [(-EIO, -EIO), (0, -ECANCELED)])
async def test_start_completes_parentless_jobs_with_errno_or_ecanceled(
    errno: int, expect: int
) -> None:
    """``drm_sched_start(sched, errno)``: a job whose hw fence ``drm_sched_stop()``
    detached finishes with ``errno ?: -ECANCELED``, and is then freed by the free work."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, ops = await new_sched(k)
        e = await new_entity(sched, "e")
        j = await push(e, 1)
        fin = await dma_fence_get(finished(j))
        assert fin is not None
        await k.sleep_ns(MS)
        await drm_sched_stop(sched, None)
        seen["parent"] = j.s_fence.parent if j.s_fence else "freed"
        await drm_sched_start(sched, errno)
        seen["error"] = fin.error
        seen["signalled"] = dma_fence_test_signaled_flag(fin)
        await k.sleep_ns(MS)
        seen["freed"] = list(ops.freed)
        await dma_fence_put(fin)
        await teardown(k, sched, e)

    await run_case(body)
    assert seen == {"parent": None, "error": expect, "signalled": True, "freed": [1]}


async def drm_sched_resubmit_jobs(sched: DrmGpuScheduler) -> None:
    """The deprecated ``drm_sched_resubmit_jobs()`` of v6.14 (amdgpu's recovery), which
    the model does not provide: ``run_job`` again, the new hw fence becomes the parent."""
    assert sched.ops is not None
    for s_job in list(sched.pending_list):
        assert s_job.s_fence is not None
        fence = await sched.ops.run_job(s_job)
        assert isinstance(fence, DmaFence)
        s_job.s_fence.parent = await dma_fence_get(fence)
        await dma_fence_put(fence)


@pytest.mark.parametrize(
    ("hw_error", "errno", "expect"),
    [(-ETIME, -EIO, -ETIME), (0, -EIO, -EIO), (-ETIME, 0, -ETIME), (0, 0, 0)],
    ids=["hw error wins", "errno when the hw had none", "hw error, no errno", "none"],
)
async def test_start_with_a_signalled_parent_uses_its_error_before_errno(
    hw_error: int, errno: int, expect: int
) -> None:
    """``drm_sched_start()``: when the parent already signalled, the job is done with
    ``fence->error ?: errno``."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, ops = await new_sched(k)
        e = await new_entity(sched, "e")
        j = await push(e, 1)
        fin = await dma_fence_get(finished(j))
        assert fin is not None
        await k.sleep_ns(MS)
        await drm_sched_stop(sched, None)
        await drm_sched_resubmit_jobs(sched)
        await complete_hw(j, hw_error)  # the resubmitted job completed before start
        await drm_sched_start(sched, errno)
        seen["error"] = fin.error
        seen["signalled"] = dma_fence_test_signaled_flag(fin)
        await dma_fence_put(fin)
        await teardown(k, sched, e)
        seen["freed"] = list(ops.freed)

    await run_case(body)
    assert seen == {"error": expect, "signalled": True, "freed": [1]}


async def test_start_rearms_the_callback_of_an_unsignalled_parent() -> None:
    """``drm_sched_start()``: an unsignalled parent gets the done callback again; the job
    finishes with the hw fence's error when it signals, not with ``errno``."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, _ops = await new_sched(k)
        e = await new_entity(sched, "e")
        j = await push(e, 1)
        fin = await dma_fence_get(finished(j))
        assert fin is not None
        await k.sleep_ns(MS)
        await drm_sched_stop(sched, None)
        await drm_sched_resubmit_jobs(sched)
        await drm_sched_start(sched, -EIO)
        seen["signalled-at-start"] = dma_fence_test_signaled_flag(fin)
        await complete_hw(j)
        seen["error"] = fin.error
        await dma_fence_put(fin)
        await teardown(k, sched, e)

    await run_case(body)
    assert seen == {"signalled-at-start": False, "error": 0}


async def test_stop_waits_for_the_finished_fence_before_free_job() -> None:
    """``drm_sched_stop()``: a pending job without a hw fence (a first stop detached it)
    is freed only after ``dma_fence_wait(&s_fence->finished)``; a second stop before any
    start therefore blocks on that fence (the kernel hangs the same way)."""
    ops_box: list[Backend] = []

    async def body(k: Kernel) -> None:
        sched, ops = await new_sched(k)
        ops_box.append(ops)
        e = await new_entity(sched, "e")
        await push(e, 1)
        await k.sleep_ns(MS)
        await drm_sched_stop(sched, None)
        await drm_sched_stop(sched, None)

    k = await arun(body)
    f = k.primary_failure
    assert f is not None and f.kind == "deadlock", [x.message for x in k.failures]
    assert "dma_fence drm_sched" in f.report
    assert ops_box[0].freed == []


async def test_stop_frees_finished_jobs_inline_and_detaches_running_ones() -> None:
    """``drm_sched_stop()``: a job whose hw fence already signalled is freed by the caller;
    one still on the hardware loses its callback and parent, and keeps its place."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, ops = await new_sched(k)
        e = await new_entity(sched, "e")
        j1 = await push(e, 1)
        j2 = await push(e, 2)
        await k.sleep_ns(MS)
        sched.pause_submit = True  # keep the free work from freeing j1 first
        await complete_hw(j1)
        await drm_sched_stop(sched, None)
        seen["freed"] = list(ops.freed)
        seen["pending"] = [j.id for j in sched.pending_list]
        seen["parent"] = j2.s_fence.parent if j2.s_fence else "freed"
        seen["credits"] = sched.credit_count
        await drm_sched_start(sched, 0)
        await teardown(k, sched, e)
        seen["freed-end"] = list(ops.freed)

    await run_case(body)
    assert seen == {"freed": [1], "pending": [2], "parent": None, "credits": 0, "freed-end": [1, 2]}


# ---------------------------------------------------------------------- TDR


async def test_guilty_job_signalled_during_stop_is_freed_by_the_timeout_work() -> None:
    """``drm_sched_stop(sched, bad)`` keeps a finished guilty job alive and sets
    ``free_guilty``; ``drm_sched_job_timedout()`` frees it after ``timedout_job`` returns
    and clears the flag."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, ops = await new_sched(k, timeout=10)
        e = await new_entity(sched, "e")
        j = await push(e, 1)

        async def on_timeout(bad: HwJob) -> int:
            await complete_hw(bad, -ETIME)  # the hw finishes it just now
            await drm_sched_stop(sched, bad)
            seen["free_guilty-in-handler"] = sched.free_guilty
            seen["freed-in-handler"] = list(ops.freed)
            await drm_sched_start(sched, 0)
            return DRM_GPU_SCHED_STAT_NOMINAL

        ops.on_timeout = on_timeout
        for _ in range(100):
            if ops.freed:
                break
            await k.sleep_ns(MS)
        seen["free_guilty-after"] = sched.free_guilty
        seen["log"] = list(ops.log)
        del j
        await teardown(k, sched, e)

    await run_case(body)
    assert seen == {
        "free_guilty-in-handler": True,
        "freed-in-handler": [],
        "free_guilty-after": False,
        "log": ["run 1", "timedout 1", "timedout 1 returns", "free 1"],
    }


# ---------------------------------------------------------------------- entity kill


async def test_killed_job_waits_for_its_dependencies_and_the_previous_job() -> None:
    """``drm_sched_entity_kill()``: each queued job finishes with -ESRCH only after the
    previous queued job and every one of its own dependencies; a *scheduled* fence in
    the dependencies is waited for as its *finished* fence
    (``drm_sched_entity_kill_jobs_cb()``)."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, ops = await new_sched(k)
        other, _ = await new_sched(k, "other")
        ox = await new_entity(other, "ox")
        x = await push(ox, 10)
        await k.sleep_ns(MS)
        gate = DmaFence(HW_OPS, None, dma_fence_context_alloc(1), 1)
        gate.signaller_hint = "the test"
        e = await new_entity(sched, "e")
        j1 = await push(e, 1, (gate, scheduled(x)))
        j2 = await push(e, 2)
        f1, f2 = await dma_fence_get(finished(j1)), await dma_fence_get(finished(j2))
        assert f1 is not None and f2 is not None
        await k.sleep_ns(MS)
        await drm_sched_entity_fini(e)
        await k.sleep_ns(MS)
        seen["killed, gate pending"] = [dma_fence_test_signaled_flag(f) for f in (f1, f2)]
        await dma_fence_signal(gate)
        await k.sleep_ns(MS)
        seen["gate signalled, x running"] = [dma_fence_test_signaled_flag(f) for f in (f1, f2)]
        seen["freed-before-x"] = list(ops.freed)
        await complete_hw(x)
        await k.sleep_ns(MS)
        seen["x finished"] = [dma_fence_test_signaled_flag(f) for f in (f1, f2)]
        seen["errors"] = [f1.error, f2.error]
        seen["ran"] = list(ops.ran)
        seen["freed"] = list(ops.freed)
        for f in (f1, f2, gate):
            await dma_fence_put(f)
        await teardown(k, sched)
        await teardown(k, other, ox)

    await run_case(body)
    assert seen == {
        "killed, gate pending": [False, False],
        "gate signalled, x running": [False, False],
        "freed-before-x": [],
        "x finished": [True, True],
        "errors": [-ESRCH, -ESRCH],
        "ran": [],
        "freed": [1, 2],
    }


async def test_fault_runs_the_timeout_handler_now() -> None:
    """``drm_sched_fault()``: ``mod_delayed_work(timeout_wq, &work_tdr, 0)``, the TDR
    runs at once instead of after ``sched->timeout``."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, ops = await new_sched(k, timeout=10_000)
        e = await new_entity(sched, "e")
        j = await push(e, 1)

        async def on_timeout(bad: HwJob) -> int:
            seen["at"] = k.now
            await complete_hw(bad, -ETIME)
            await drm_sched_stop(sched, bad)
            await drm_sched_start(sched, 0)
            return DRM_GPU_SCHED_STAT_NOMINAL

        ops.on_timeout = on_timeout
        await k.sleep_ns(MS)
        drm_sched_fault(sched)
        for _ in range(100):
            if ops.freed:
                break
            await k.sleep_ns(MS)
        del j
        await teardown(k, sched, e)

    await run_case(body)
    assert isinstance(seen["at"], int) and seen["at"] < 10 * MS


async def test_job_over_the_credit_limit_warns_and_is_truncated() -> None:
    """``drm_sched_can_queue()``: a job with more credits than ``credit_limit`` WARNs
    ("Jobs may not exceed the credit limit, truncate.") and runs with the limit."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, ops = await new_sched(k)
        e = await new_entity(sched, "e")
        job = await kzalloc(lambda: HwJob(1), GFP_KERNEL)
        assert job is not None
        assert await drm_sched_job_init(job, e, 9, None) == 0
        await drm_sched_job_arm(job)
        await drm_sched_entity_push_job(job)
        await k.sleep_ns(MS)
        seen["credits"] = job.credits
        seen["ran"] = list(ops.ran)
        await complete_hw(job)
        await teardown(k, sched, e)

    k = await arun(body, config=KernelConfig(warn_fatal=False))
    assert [f.kind for f in k.failures] == ["warn"]
    assert "credit limit" in k.failures[0].message
    assert seen == {"credits": 8, "ran": [1]}


async def test_freeing_a_job_rearms_the_timeout_for_the_next() -> None:
    """``drm_sched_get_finished_job()``: freeing the oldest job cancels the TDR and
    starts it again for the next pending job, which then times out a full timeout later."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, ops = await new_sched(k, timeout=10)  # jiffies: 10 ms
        e = await new_entity(sched, "e")
        j1 = await push(e, 1)
        j2 = await push(e, 2)

        async def on_timeout(bad: HwJob) -> int:
            seen["timedout"] = (bad.tag, k.now // MS)
            await complete_hw(bad, -ETIME)
            await drm_sched_stop(sched, bad)
            await drm_sched_start(sched, 0)
            return DRM_GPU_SCHED_STAT_NOMINAL

        ops.on_timeout = on_timeout
        await k.sleep_ns(6 * MS)
        await complete_hw(j1)
        for _ in range(40):
            if "timedout" in seen:
                break
            await k.sleep_ns(MS)
        del j2
        await teardown(k, sched, e)

    await run_case(body)
    timedout = seen["timedout"]
    assert isinstance(timedout, tuple)
    assert timedout[0] == 2 and 15 <= timedout[1] <= 17


# ---------------------------------------------------------------------- entities (sched_entity.c)


async def test_entity_init_rejects_a_missing_sched_list_with_einval() -> None:
    """``drm_sched_entity_init()``: ``!(entity && sched_list && (num_sched_list == 0 ||
    sched_list[0]))`` is -EINVAL; an empty list with ``num_sched_list == 0`` is valid (v6.14:
    an entity may be set up before its scheduler) and leaves the entity without an rq."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        seen["no list"] = await drm_sched_entity_init(DrmSchedEntity("e0"), 0, None, 1, None)
        e = DrmSchedEntity("e1")
        seen["empty list"] = await drm_sched_entity_init(e, 0, [], 0, None)
        seen["rq"] = e.rq

    await run_case(body)
    assert seen == {"no list": -EINVAL, "empty list": 0, "rq": None}


async def test_entity_with_one_scheduler_is_never_moved() -> None:
    """``drm_sched_entity_init()`` keeps ``sched_list`` only for ``num_sched_list > 1``, so
    ``drm_sched_entity_select_rq()`` returns at once ("single possible engine and already
    selected") and ``drm_sched_pick_best()`` is never asked: a job of an entity with one
    scheduler runs there even while that scheduler is marked not ready."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        sched, ops = await new_sched(k)
        e = await new_entity(sched, "e")
        seen["sched_list"] = e.sched_list
        sched.ready = False  # a driver's ring marked down (amdgpu does this on a hang)
        j = await push(e, 1)
        await k.sleep_ns(MS)
        seen["on"] = j.sched.name if j.sched is not None else None
        seen["ran"] = list(ops.ran)
        sched.ready = True
        await complete_hw(j)
        await teardown(k, sched, e)

    await run_case(body)
    assert seen == {"sched_list": None, "on": "sched", "ran": [1]}


async def test_idle_entity_moves_to_the_least_loaded_scheduler_at_every_arm() -> None:
    """``drm_sched_job_arm()`` -> ``drm_sched_entity_select_rq()``: an entity with several
    schedulers whose queue is empty and whose last job finished goes to
    ``drm_sched_pick_best()``'s scheduler (lowest score, the first on a tie), and it keeps
    its ``sched_list``, so the choice is made again at the next arm."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        a, a_ops = await new_sched(k, "a")
        b, b_ops = await new_sched(k, "b")
        e = DrmSchedEntity("e")
        assert await drm_sched_entity_init(e, 0, [a, b], 2, None) == 0
        j1 = await push(e, 1)  # scores 0/0: the first, a
        f1 = await dma_fence_get(finished(j1))
        assert f1 is not None
        busy = await new_entity(a, "busy")
        jb = await push(busy, 10)  # keeps a's score at 1
        await k.sleep_ns(MS)
        await complete_hw(j1)
        await k.sleep_ns(MS)
        seen["j1 finished"] = dma_fence_test_signaled_flag(f1)
        await dma_fence_put(f1)
        j2 = await push(e, 2)  # scores 1/0: b
        await k.sleep_ns(MS)
        seen["ran"] = {"a": list(a_ops.ran), "b": list(b_ops.ran)}
        await complete_hw(j2)
        await complete_hw(jb)
        await teardown(k, a, e, busy)
        await teardown(k, b)

    await run_case(body)
    assert seen == {"j1 finished": True, "ran": {"a": [1, 10], "b": [2]}}


class PrepareBackend(Backend):
    """A backend with ``prepare_job``: the first call for each job returns ``gate``."""

    has_prepare_job = True

    def __init__(self, k: Kernel, name: str) -> None:
        super().__init__(k, name)
        self.gate: DmaFence | None = None
        self.prepared: list[int] = []

    async def prepare_job(self, job: DrmSchedJob, entity: DrmSchedEntity) -> DmaFence | None:
        assert isinstance(job, HwJob)
        if job.tag in self.prepared:
            return None
        self.prepared.append(job.tag)
        return await dma_fence_get(self.gate)


async def test_prepare_job_fences_are_waited_for_after_the_dependencies() -> None:
    """``drm_sched_job_dependency()``: once the job's dependency array is used up, the
    scheduler asks ``ops->prepare_job()`` for more fences, and the job waits for each."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        ops = PrepareBackend(k, "sched")
        sched = DrmGpuScheduler("sched")
        assert (
            await drm_sched_init(
                sched, ops, None, 1, 8, 0, MAX_SCHEDULE_TIMEOUT, None, None, "sched", None
            )
            == 0
        )
        gate = DmaFence(HW_OPS, None, dma_fence_context_alloc(1), 1)
        gate.signaller_hint = "the test"
        ops.gate = gate
        e = await new_entity(sched, "e")
        j = await push(e, 1)
        await k.sleep_ns(MS)
        seen["before"] = (list(ops.prepared), list(ops.ran))
        await dma_fence_signal(gate)
        await k.sleep_ns(MS)
        seen["after"] = list(ops.ran)
        await complete_hw(j)
        await dma_fence_put(gate)
        await teardown(k, sched, e)

    await run_case(body)
    assert seen == {"before": ([1], []), "after": [1]}


class GatedBackend(Backend):
    """``run_job`` blocks until the test opens ``gate`` (a driver taking a contended lock)."""

    def __init__(self, k: Kernel, name: str) -> None:
        super().__init__(k, name)
        self.in_run_job = Completion("in_run_job")
        self.gate = Completion("gate")

    async def run_job(self, job: DrmSchedJob) -> DmaFence | ErrPtr | None:
        await complete_all(self.in_run_job)
        await wait_for_completion(self.gate)
        fence = await super().run_job(job)
        self.log.append("run_job returns")
        return fence


async def test_entity_kill_waits_until_the_scheduler_is_done_with_the_entity() -> None:
    """``drm_sched_entity_kill()``: ``wait_for_completion(&entity->entity_idle)`` ("Make sure
    this entity is not used by the scheduler at the moment"): the run work re-armed the
    completion when it selected the entity and completes it only after ``run_job``, so an
    entity killed meanwhile is given back to its owner only after ``run_job`` returned."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        ops = GatedBackend(k, "sched")
        sched = DrmGpuScheduler("sched")
        assert (
            await drm_sched_init(
                sched, ops, None, 1, 8, 0, MAX_SCHEDULE_TIMEOUT, None, None, "sched", None
            )
            == 0
        )
        e = await new_entity(sched, "e")
        j = await push(e, 1)

        async def killer() -> None:
            await wait_for_completion(ops.in_run_job)
            await drm_sched_entity_fini(e)
            ops.log.append("fini returned")

        t = k.spawn(killer, name="killer")
        await wait_for_completion(ops.in_run_job)
        await k.sleep_ns(MS)
        ops.log.append("gate opened")
        await complete(ops.gate)
        await t.join()
        seen["log"] = list(ops.log)
        await complete_hw(j)
        await teardown(k, sched)

    await run_case(body)
    assert seen == {"log": ["gate opened", "run 1", "run_job returns", "fini returned"]}


async def test_entity_moved_to_a_single_scheduler_settles_there() -> None:
    """``drm_sched_entity_modify_sched()`` to one scheduler, then ``drm_sched_entity_select_rq()``:
    the next arm of an idle entity moves it there and drops ``sched_list`` (``num_sched_list
    == 1``), so later arms never ask ``drm_sched_pick_best()`` again: the entity stays even
    while that scheduler is marked not ready."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        a, a_ops = await new_sched(k, "a")
        b, b_ops = await new_sched(k, "b")
        e = await new_entity(a, "e")
        drm_sched_entity_modify_sched(e, [b], 1)
        j1 = await push(e, 1)
        f1 = await dma_fence_get(finished(j1))
        assert f1 is not None
        await k.sleep_ns(MS)
        await complete_hw(j1)
        await k.sleep_ns(MS)
        seen["sched_list"] = e.sched_list
        b.ready = False  # a driver's ring marked down
        j2 = await push(e, 2)
        await k.sleep_ns(MS)
        seen["ran"] = {"a": list(a_ops.ran), "b": list(b_ops.ran)}
        b.ready = True
        await complete_hw(j2)
        await dma_fence_put(f1)
        await teardown(k, b, e)
        await teardown(k, a)

    await run_case(body)
    assert seen == {"sched_list": None, "ran": {"a": [], "b": [1, 2]}}
