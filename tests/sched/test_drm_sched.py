"""drm_sched: ports of the KUnit tests (drivers/gpu/drm/scheduler/tests/tests_basic.c) on the
mock backend, plus the v6.14 behaviours panthor relies on (NULL / ERR_PTR run_job, stop/start,
entity kill, TDR, dependencies)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from panthor_testbed.sched import (
    DRM_SCHED_PRIORITY_COUNT,
    DRM_SCHED_PRIORITY_KERNEL,
    DRM_SCHED_PRIORITY_NORMAL,
    ERR_PTR,
    HZ,
    MAX_SCHEDULE_TIMEOUT,
    DmaFence,
    DrmGpuScheduler,
    DrmSchedBackendOps,
    DrmSchedEntity,
    DrmSchedJob,
    ErrPtr,
    Kernel,
    dma_fence_context_alloc,
    dma_fence_get,
    dma_fence_put,
    dma_fence_signal,
    dma_fence_test_signaled_flag,
    dma_fence_wait,
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
    kzalloc,
    queue_work,
    softirq,
)
from panthor_testbed.sched.core.harness import arun
from panthor_testbed.sched.drm.drm_mock_sched import (
    DRM_MOCK_SCHED_JOB_TIMEDOUT,
    drm_mock_sched_advance,
    drm_mock_sched_entity_free,
    drm_mock_sched_entity_new,
    drm_mock_sched_fini,
    drm_mock_sched_job_new,
    drm_mock_sched_job_set_duration_us,
    drm_mock_sched_job_submit,
    drm_mock_sched_job_wait_finished,
    drm_mock_sched_job_wait_scheduled,
    drm_mock_sched_new,
)
from panthor_testbed.sched.errno import ECANCELED, EINVAL, EIO, ENOENT, ESRCH
from panthor_testbed.sched.mm.gfp import GFP_KERNEL

MOCK_TIMEOUT = HZ // 5


async def drain(k: Kernel, sched: DrmGpuScheduler) -> None:
    """Let the free work free every finished job: v6.14's ``drm_sched_fini()`` leaks them."""
    for _ in range(1000):
        if not sched.pending_list:
            return
        await k.sleep_ns(1_000_000)
    raise AssertionError(f"{sched.name}: jobs still pending: {sched.pending_list}")


async def run_case(body: Callable[[Kernel], Awaitable[None]]) -> Kernel:
    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    return k


# ---------------------------------------------------------------------- tests_basic.c


async def test_drm_sched_basic_submit() -> None:
    """One job is scheduled, and completes only when the mock hw advances."""

    async def body(k: Kernel) -> None:
        sched = await drm_mock_sched_new(MAX_SCHEDULE_TIMEOUT)
        entity = await drm_mock_sched_entity_new(DRM_SCHED_PRIORITY_NORMAL, sched)
        job = await drm_mock_sched_job_new(entity, sched)
        await drm_mock_sched_job_submit(job)
        assert await drm_mock_sched_job_wait_scheduled(job, HZ)
        assert not await drm_mock_sched_job_wait_finished(job, HZ // 2)
        assert await drm_mock_sched_advance(sched, 1) == 1
        assert await drm_mock_sched_job_wait_finished(job, HZ)
        await drm_mock_sched_entity_free(entity)
        await drain(k, sched.base)
        await drm_mock_sched_fini(sched)

    await run_case(body)


@pytest.mark.parametrize(
    ("num_entities", "dep_chain"),
    [(1, False), (1, True), (4, False), (4, True)],
    ids=[
        "A queue of jobs in a single entity",
        "A chain of dependent jobs across multiple entities",
        "Multiple independent job queues",
        "Multiple inter-dependent job queues",
    ],
)
async def test_drm_sched_basic_test(num_entities: int, dep_chain: bool) -> None:
    """``drm_sched_basic_test`` (queue depth 24 instead of 100)."""

    async def body(k: Kernel) -> None:
        sched = await drm_mock_sched_new(MAX_SCHEDULE_TIMEOUT)
        entities = [
            await drm_mock_sched_entity_new(DRM_SCHED_PRIORITY_NORMAL, sched, f"e{i}")
            for i in range(num_entities)
        ]
        prev = None
        job = None
        for i in range(24):
            job = await drm_mock_sched_job_new(entities[i % num_entities], sched)
            drm_mock_sched_job_set_duration_us(job, 1000)
            if dep_chain and prev is not None:
                assert prev.s_fence is not None
                await drm_sched_job_add_dependency(job, await dma_fence_get(prev.s_fence.finished))
            await drm_mock_sched_job_submit(job)
            prev = job
        assert job is not None
        assert await drm_mock_sched_job_wait_finished(job, HZ)
        for e in entities:
            await drm_mock_sched_entity_free(e)
        await drain(k, sched.base)
        await drm_mock_sched_fini(sched)

    await run_case(body)


async def test_drm_sched_basic_entity_cleanup() -> None:
    """Destroy the entities while half of a dependency chain is still queued."""

    async def body(k: Kernel) -> None:
        sched = await drm_mock_sched_new(MAX_SCHEDULE_TIMEOUT)
        entities = [
            await drm_mock_sched_entity_new(DRM_SCHED_PRIORITY_NORMAL, sched, f"e{i}")
            for i in range(4)
        ]
        prev = mid = None
        for i in range(24):
            job = await drm_mock_sched_job_new(entities[i % 4], sched)
            drm_mock_sched_job_set_duration_us(job, 1000)
            if prev is not None:
                assert prev.s_fence is not None
                await drm_sched_job_add_dependency(job, await dma_fence_get(prev.s_fence.finished))
            await drm_mock_sched_job_submit(job)
            if i == 12:
                mid = job
            prev = job
        assert mid is not None
        assert await drm_mock_sched_job_wait_finished(mid, HZ)
        for e in entities:
            await drm_mock_sched_entity_free(e)
        await drain(k, sched.base)
        await drm_mock_sched_fini(sched)

    await run_case(body)


async def test_drm_sched_basic_timeout() -> None:
    """A job the backend never completes: the TDR runs ``timedout_job`` after the timeout."""

    async def body(k: Kernel) -> None:
        sched = await drm_mock_sched_new(MOCK_TIMEOUT)
        entity = await drm_mock_sched_entity_new(DRM_SCHED_PRIORITY_NORMAL, sched)
        job = await drm_mock_sched_job_new(entity, sched)
        await drm_mock_sched_job_submit(job)
        assert await drm_mock_sched_job_wait_scheduled(job, HZ)
        assert not await drm_mock_sched_job_wait_finished(job, MOCK_TIMEOUT // 2)
        assert not job.flags & DRM_MOCK_SCHED_JOB_TIMEDOUT
        assert not await drm_mock_sched_job_wait_finished(job, MOCK_TIMEOUT)
        assert job.flags & DRM_MOCK_SCHED_JOB_TIMEDOUT
        assert k.now >= MOCK_TIMEOUT * 1_000_000
        await drm_mock_sched_entity_free(entity)
        await drain(k, sched.base)
        await drm_mock_sched_fini(sched)

    await run_case(body)


async def test_drm_sched_priorities() -> None:
    async def body(k: Kernel) -> None:
        sched = await drm_mock_sched_new(MAX_SCHEDULE_TIMEOUT)
        entities = [
            await drm_mock_sched_entity_new(p, sched, f"prio{p}")
            for p in range(DRM_SCHED_PRIORITY_KERNEL, DRM_SCHED_PRIORITY_COUNT)
        ]
        job = None
        for i in range(20):
            job = await drm_mock_sched_job_new(entities[i % len(entities)], sched)
            drm_mock_sched_job_set_duration_us(job, 1000)
            await drm_mock_sched_job_submit(job)
        assert job is not None
        assert await drm_mock_sched_job_wait_finished(job, HZ)
        for e in entities:
            await drm_mock_sched_entity_free(e)
        await drain(k, sched.base)
        await drm_mock_sched_fini(sched)

    await run_case(body)


async def test_drm_sched_test_credits() -> None:
    """With ``credit_limit = 1`` the second job waits for the first to finish."""

    async def body(k: Kernel) -> None:
        sched = await drm_mock_sched_new(MAX_SCHEDULE_TIMEOUT)
        sched.base.credit_limit = 1
        entity = await drm_mock_sched_entity_new(DRM_SCHED_PRIORITY_NORMAL, sched)
        jobs = [await drm_mock_sched_job_new(entity, sched) for _ in range(2)]
        for j in jobs:
            await drm_mock_sched_job_submit(j)
        assert await drm_mock_sched_job_wait_scheduled(jobs[0], HZ)
        assert not await drm_mock_sched_job_wait_scheduled(jobs[1], HZ)
        assert await drm_mock_sched_advance(sched, 1) == 1
        assert await drm_mock_sched_job_wait_scheduled(jobs[1], HZ)
        assert await drm_mock_sched_advance(sched, 1) == 1
        assert await drm_mock_sched_job_wait_finished(jobs[1], HZ)
        await drm_mock_sched_entity_free(entity)
        await drain(k, sched.base)
        await drm_mock_sched_fini(sched)

    await run_case(body)


# ---------------------------------------------------------------------- a VM_BIND-like backend


class SyncJob(DrmSchedJob):
    """A job whose ``run_job`` does the work synchronously (like a VM_BIND job)."""

    def __init__(self, tag: int) -> None:
        super().__init__()
        self.tag = tag


class SyncOps(DrmSchedBackendOps):
    """run_job returns NULL (or an ERR_PTR); free_job cleans up. Records what happened."""

    def __init__(self, k: Kernel, result: int = 0) -> None:
        self.k = k
        self.result = result
        self.ran: list[int] = []
        self.freed: list[tuple[int, str]] = []

    async def run_job(self, job: DrmSchedJob) -> DmaFence | ErrPtr | None:
        assert isinstance(job, SyncJob)
        self.ran.append(job.tag)
        return ERR_PTR(self.result) if self.result else None

    async def free_job(self, job: DrmSchedJob) -> None:
        assert isinstance(job, SyncJob)
        cur = self.k.current
        self.freed.append((job.tag, cur.name if cur else "?"))
        await drm_sched_job_cleanup(job)
        kfree(job)


async def new_sched(
    k: Kernel, ops: DrmSchedBackendOps, name: str = "vm-bind"
) -> tuple[DrmGpuScheduler, DrmSchedEntity]:
    """``drm_sched_init`` as panthor does (1 rq, 1 credit, no timeout) plus one entity."""
    sched = DrmGpuScheduler(name)
    ret = await drm_sched_init(
        sched, ops, None, 1, 1, 0, MAX_SCHEDULE_TIMEOUT, None, None, name, None
    )
    assert ret == 0
    entity = DrmSchedEntity(f"{name}-entity")
    assert await drm_sched_entity_init(entity, 0, [sched], 1, None) == 0
    return sched, entity


async def push(
    entity: DrmSchedEntity, tag: int, deps: tuple[DmaFence, ...] = ()
) -> tuple[DmaFence, DmaFence]:
    """Submit a job; returns references on its scheduled and finished fences, taken
    before the push (a pushed job "may be completed and freed up at any time")."""
    job = await kzalloc(lambda: SyncJob(tag), GFP_KERNEL)
    assert job is not None
    assert await drm_sched_job_init(job, entity, 1, None) == 0
    for d in deps:
        await drm_sched_job_add_dependency(job, await dma_fence_get(d))
    await drm_sched_job_arm(job)
    assert job.s_fence is not None
    scheduled = await dma_fence_get(job.s_fence.scheduled)
    finished = await dma_fence_get(job.s_fence.finished)
    assert scheduled is not None and finished is not None
    await drm_sched_entity_push_job(job)
    return scheduled, finished


async def put_all(*fences: DmaFence) -> None:
    for f in fences:
        await dma_fence_put(f)


async def test_null_run_job_finishes_in_the_run_work_and_frees_from_the_free_work() -> None:
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        ops = SyncOps(k)
        sched, entity = await new_sched(k, ops)
        scheduled, finished = await push(entity, 1)
        await dma_fence_wait(finished, False)
        seen["error"] = finished.error
        await put_all(scheduled, finished)
        await drm_sched_entity_destroy(entity)
        await drm_sched_fini(sched)
        seen["freed"] = ops.freed

    await run_case(body)
    assert seen == {"error": 0, "freed": [(1, "kworker/vm-bind:0")]}


async def test_err_ptr_run_job_goes_to_the_finished_fence() -> None:
    seen: dict[str, int] = {}

    async def body(k: Kernel) -> None:
        ops = SyncOps(k, -EIO)
        sched, entity = await new_sched(k, ops)
        scheduled, finished = await push(entity, 1)
        await dma_fence_wait(finished, False)
        seen["error"] = finished.error
        seen["scheduled"] = int(dma_fence_test_signaled_flag(scheduled))
        await dma_fence_put(finished)
        await dma_fence_put(scheduled)
        await drm_sched_entity_destroy(entity)
        await drm_sched_fini(sched)

    await run_case(body)
    assert seen == {"error": -EIO, "scheduled": 1}


async def test_job_init_errors() -> None:
    async def body(k: Kernel) -> None:
        ops = SyncOps(k)
        sched, entity = await new_sched(k, ops)
        job = SyncJob(0)
        assert await drm_sched_job_init(job, entity, 0, None) == -EINVAL
        orphan = DrmSchedEntity("orphan")
        assert await drm_sched_entity_init(orphan, 0, [], 0, None) == 0
        assert await drm_sched_job_init(job, orphan, 1, None) == -ENOENT
        await drm_sched_entity_destroy(entity)
        await drm_sched_fini(sched)

    await run_case(body)


async def test_stop_frees_parentless_jobs_inline_and_start_resumes_queued_ones() -> None:
    """Reset pattern: stop waits for and frees parent-less pending jobs in the caller;
    jobs still queued on the entity run once after start; none lost, none run twice."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        ops = SyncOps(k)
        sched, entity = await new_sched(k, ops)
        gate = DmaFence(None, None, dma_fence_context_alloc(1), 1)
        gate.signaller_hint = "the test"
        for tag in range(3):
            await put_all(*await push(entity, tag, (gate,) if tag == 2 else ()))
        while len(ops.ran) < 2:
            await k.sleep_ns(1000)
        await drm_sched_stop(sched, None)
        seen["after-stop"] = (list(ops.ran), len(sched.pending_list))
        await dma_fence_signal(gate)  # the queued job's dependency
        await k.sleep_ns(1_000_000)
        seen["while-stopped"] = list(ops.ran)
        await drm_sched_start(sched, 0)
        await drm_sched_entity_destroy(entity)
        await dma_fence_put(gate)
        await drm_sched_fini(sched)
        seen["ran"] = ops.ran
        seen["freed"] = sorted(t for t, _ in ops.freed)

    await run_case(body)
    assert seen["after-stop"] == ([0, 1], 0)
    assert seen["while-stopped"] == [0, 1]
    assert seen["ran"] == [0, 1, 2] and seen["freed"] == [0, 1, 2]


async def test_stop_start_with_a_hw_fence_rearms_the_callback() -> None:
    async def body(k: Kernel) -> None:
        sched = await drm_mock_sched_new(MAX_SCHEDULE_TIMEOUT)
        entity = await drm_mock_sched_entity_new(DRM_SCHED_PRIORITY_NORMAL, sched)
        job = await drm_mock_sched_job_new(entity, sched)
        await drm_mock_sched_job_submit(job)
        assert await drm_mock_sched_job_wait_scheduled(job, HZ)
        assert job.s_fence is not None
        finished = await dma_fence_get(job.s_fence.finished)
        assert finished is not None
        await drm_sched_stop(sched.base, None)
        assert job.s_fence.parent is None  # callback removed, parent dropped
        assert sched.base.pending_list == [job] and sched.base.credit_count == 0
        await drm_mock_sched_advance(sched, 1)  # the hw completes while stopped: unseen
        assert not dma_fence_test_signaled_flag(finished)
        await drm_sched_start(sched.base, 0)  # no parent any more: job_done(-ECANCELED)
        await dma_fence_wait(finished, False)
        assert finished.error == -ECANCELED
        await dma_fence_put(finished)
        await k.sleep_ns(1_000_000)
        assert sched.base.pending_list == []
        await drm_mock_sched_entity_free(entity)
        await drain(k, sched.base)
        await drm_mock_sched_fini(sched)

    await run_case(body)


async def test_entity_fini_kills_queued_jobs_with_esrch() -> None:
    """Jobs still queued when the entity is killed finish with -ESRCH, freed from a work."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        ops = SyncOps(k)
        sched, entity = await new_sched(k, ops)
        gate = DmaFence(None, None, dma_fence_context_alloc(1), 1)
        pushed = [await push(entity, tag, (gate,)) for tag in range(2)]
        await put_all(*(scheduled for scheduled, _ in pushed))
        finished = [f for _, f in pushed]
        await k.sleep_ns(1000)
        await drm_sched_entity_fini(entity)  # kill: no flush
        await dma_fence_signal(gate)  # the dependency: killed jobs wait for it first
        for f in finished:
            assert f is not None
            await dma_fence_wait(f, False)
        seen["errors"] = [f.error for f in finished if f is not None]
        seen["ran"] = list(ops.ran)
        await k.sleep_ns(1000)
        seen["freed"] = list(ops.freed)
        for f in finished:
            await dma_fence_put(f)
        await dma_fence_put(gate)
        await drm_sched_fini(sched)

    await run_case(body)
    assert seen["errors"] == [-ESRCH, -ESRCH] and seen["ran"] == []
    assert seen["freed"] == [(0, "kworker/events:0"), (1, "kworker/events:0")]


async def test_dependencies_same_entity_skipped_same_sched_waits_for_scheduled() -> None:
    async def body(k: Kernel) -> None:
        ops = SyncOps(k)
        sched, e1 = await new_sched(k, ops)
        e2 = DrmSchedEntity("e2")
        assert await drm_sched_entity_init(e2, 0, [sched], 1, None) == 0
        s1, f1 = await push(e1, 1)
        j2 = await push(e1, 2, (f1,))  # same entity: skipped
        j3 = await push(e2, 3, (f1,))  # same scheduler: waits for scheduled
        await put_all(s1, f1, *j2, *j3)
        await drm_sched_entity_destroy(e1)
        await drm_sched_entity_destroy(e2)
        await drm_sched_fini(sched)
        assert sorted(ops.ran) == [1, 2, 3]

    await run_case(body)


async def test_foreign_dependency_wakes_the_scheduler() -> None:
    async def body(k: Kernel) -> None:
        ops = SyncOps(k)
        sched, entity = await new_sched(k, ops)
        gate = DmaFence(None, None, dma_fence_context_alloc(1), 1)
        await put_all(*await push(entity, 1, (gate,)))
        await k.sleep_ns(1_000_000)
        assert ops.ran == []
        k.add_timer(1_000_000, softirq(lambda: dma_fence_signal(gate)), "gate")
        await drm_sched_entity_destroy(entity)  # flush waits for it to run
        assert ops.ran == [1] and k.now >= 2_000_000
        await dma_fence_put(gate)
        await drm_sched_fini(sched)

    await run_case(body)


async def test_fini_with_pending_jobs_is_a_leak() -> None:
    async def body(k: Kernel) -> None:
        sched = await drm_mock_sched_new(MAX_SCHEDULE_TIMEOUT)
        entity = await drm_mock_sched_entity_new(DRM_SCHED_PRIORITY_NORMAL, sched)
        job = await drm_mock_sched_job_new(entity, sched)
        await drm_mock_sched_job_submit(job)
        assert await drm_mock_sched_job_wait_scheduled(job, HZ)
        await drm_mock_sched_entity_free(entity)
        await drm_mock_sched_fini(sched)  # the hw never completed the job

    k = await arun(body)
    assert "leak:drm_sched_fini-pending:drm-mock-scheduler" in [f.signature for f in k.failures]


async def test_deadlock_report_names_the_job_and_its_signaller() -> None:
    async def body(k: Kernel) -> None:
        sched = await drm_mock_sched_new(MAX_SCHEDULE_TIMEOUT)
        entity = await drm_mock_sched_entity_new(DRM_SCHED_PRIORITY_NORMAL, sched)
        job = await drm_mock_sched_job_new(entity, sched)
        await drm_mock_sched_job_submit(job)
        assert job.s_fence is not None
        await dma_fence_wait(job.s_fence.finished, False)  # nobody advances the mock hw

    k = await arun(body)
    f = k.primary_failure
    assert f is not None and f.kind == "deadlock"
    assert "drm_sched_job_done() of job #1 of drm-mock-scheduler" in f.report
    assert "drm_mock_sched_advance() by the test" in f.report


async def test_works_queued_on_a_stopped_scheduler_do_nothing_until_start() -> None:
    """v6.14 ``drm_sched_run_job_work()``/``drm_sched_free_job_work()`` begin with
    ``if (READ_ONCE(sched->pause_submit)) return;`` (v6.15 removed it): a work that gets
    queued after ``drm_sched_stop()`` (the ``READ_ONCE(pause_submit)`` + ``queue_work``
    windows) runs nothing before ``drm_sched_start()``."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        ops = SyncOps(k)
        sched, entity = await new_sched(k, ops)
        await put_all(*await push(entity, 1))
        await k.sleep_ns(1_000_000)
        await drm_sched_stop(sched, None)
        await put_all(*await push(entity, 2))
        assert sched.submit_wq is not None and sched.work_run_job is not None
        assert sched.work_free_job is not None
        await queue_work(sched.submit_wq, sched.work_run_job)
        await queue_work(sched.submit_wq, sched.work_free_job)
        await k.sleep_ns(1_000_000)
        seen["while-stopped"] = list(ops.ran)
        await drm_sched_start(sched, 0)
        await drm_sched_entity_destroy(entity)
        await drain(k, sched)
        await drm_sched_fini(sched)
        seen["ran"] = list(ops.ran)

    await run_case(body)
    assert seen == {"while-stopped": [1], "ran": [1, 2]}
