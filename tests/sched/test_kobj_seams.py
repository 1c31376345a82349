"""The seams panthor_mmu.c lives in: drm_sched x lockdep x workqueues x dma_resv.

* a VM_BIND-style ``run_job`` that allocates with GFP_KERNEL inside its
  signalling section is reported by lockdep (and the preallocating one is not);
* a reset-like ``drm_sched_stop``/``drm_sched_start`` while jobs are queued
  loses none and runs none twice, under the explorer;
* flushing the cleanup work while holding a lock the cleanup takes is reported;
* two threads locking two reservation objects in opposite orders through
  drm_exec both finish, under the explorer, and the back-off path is taken.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from panthor_testbed.sched import (
    DMA_RESV_USAGE_BOOKKEEP,
    DRM_EXEC_IGNORE_DUPLICATES,
    DRM_EXEC_INTERRUPTIBLE_WAIT,
    GFP_KERNEL,
    MAX_SCHEDULE_TIMEOUT,
    PCT,
    WQ_UNBOUND,
    Completion,
    DmaFence,
    DmaFenceOps,
    DrmExec,
    DrmGemObject,
    DrmGpuScheduler,
    DrmSchedBackendOps,
    DrmSchedEntity,
    DrmSchedJob,
    ErrPtr,
    Kernel,
    Mutex,
    RandomWalk,
    Workqueue,
    WorkStruct,
    alloc_workqueue,
    complete,
    destroy_workqueue,
    dma_fence_begin_signalling,
    dma_fence_context_alloc,
    dma_fence_end_signalling,
    dma_fence_get,
    dma_fence_put,
    dma_fence_signal,
    dma_fence_wait,
    dma_resv_add_fence,
    drm_exec_cleanup,
    drm_exec_fini,
    drm_exec_init,
    drm_exec_is_contended,
    drm_exec_locked_objects,
    drm_exec_prepare_obj,
    drm_gem_object_put,
    drm_sched_entity_destroy,
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
    flush_work,
    kfree,
    kzalloc,
    mutex_lock,
    mutex_unlock,
    queue_work,
    wait_for_completion,
    work_busy_running,
    work_pending,
)
from panthor_testbed.sched.core.harness import aexplore_all, arun


class BindJob(DrmSchedJob):
    def __init__(self, tag: int) -> None:
        super().__init__()
        self.tag = tag


class BindOps(DrmSchedBackendOps):
    """A panthor_vm_bind_ops look-alike: run_job in a signalling section, returns NULL."""

    def __init__(self, alloc_in_run_job: bool) -> None:
        self.alloc_in_run_job = alloc_in_run_job
        self.ran: list[int] = []
        self.freed: list[int] = []

    async def run_job(self, job: DrmSchedJob) -> DmaFence | ErrPtr | None:
        assert isinstance(job, BindJob)
        cookie = dma_fence_begin_signalling()
        if self.alloc_in_run_job:
            pt = await kzalloc(64, GFP_KERNEL)  # should have been preallocated
            kfree(pt)
        self.ran.append(job.tag)
        dma_fence_end_signalling(cookie)
        return None

    async def free_job(self, job: DrmSchedJob) -> None:
        assert isinstance(job, BindJob)
        self.freed.append(job.tag)
        await drm_sched_job_cleanup(job)
        kfree(job)


async def vm_bind_sched(
    ops: DrmSchedBackendOps, allocated: bool = False
) -> tuple[DrmGpuScheduler, DrmSchedEntity]:
    """``panthor_vm_create()``'s scheduler: an unbound "panthor-vm-bind" queue, 1 credit.

    ``allocated``: the scheduler comes from kzalloc (it is embedded in the
    kzalloc'd ``struct panthor_vm``), so a use after its kfree is caught."""
    wq = await alloc_workqueue("panthor-vm-bind", WQ_UNBOUND, 0)
    assert wq is not None
    if allocated:
        got = await kzalloc(lambda: DrmGpuScheduler("panthor-vm-bind"), GFP_KERNEL)
        assert got is not None
        sched = got
    else:
        sched = DrmGpuScheduler("panthor-vm-bind")
    assert (
        await drm_sched_init(
            sched, ops, wq, 1, 1, 0, MAX_SCHEDULE_TIMEOUT, None, None, "panthor-vm-bind", None
        )
        == 0
    )
    entity = DrmSchedEntity("vm->entity")
    assert await drm_sched_entity_init(entity, 0, [sched], 1, None) == 0
    return sched, entity


async def quiesce(k: Kernel, sched: DrmGpuScheduler) -> None:
    """Wait until every job is freed and both works are idle.

    v6.14's ``drm_sched_fini()`` neither frees pending jobs nor copes with a
    free work that is still running (see the race test at the end).
    """
    for _ in range(1000):
        works = (sched.work_run_job, sched.work_free_job)
        busy = any(w is not None and (work_pending(w) or work_busy_running(w)) for w in works)
        if not busy and not sched.pending_list:
            return
        await k.sleep_ns(100_000)
    raise AssertionError(f"{sched.name} never went idle: {sched.pending_list}")


async def vm_bind_teardown(sched: DrmGpuScheduler, entity: DrmSchedEntity) -> None:
    """``panthor_vm_free()``'s order: entity_destroy, sched_fini, then the queue."""
    await drm_sched_entity_destroy(entity)
    await quiesce(_k(), sched)
    wq = sched.submit_wq
    await drm_sched_fini(sched)
    assert wq is not None
    await destroy_workqueue(wq)


def _k() -> Kernel:
    from panthor_testbed.sched import current_kernel

    return current_kernel()


async def submit(
    entity: DrmSchedEntity, tag: int, deps: list[DmaFence], out: list[DmaFence] | None = None
) -> None:
    """Init, add the dependencies, arm, push. ``out`` gets a reference on the finished
    fence, taken before the push: once pushed, the job "may be completed and freed up at
    any time" (as panthor, which takes its out-fences between arm and push)."""
    job = await kzalloc(lambda: BindJob(tag), GFP_KERNEL)
    assert job is not None
    assert await drm_sched_job_init(job, entity, 1, None) == 0
    for d in deps:
        await drm_sched_job_add_dependency(job, await dma_fence_get(d))
    await drm_sched_job_arm(job)
    if out is not None:
        assert job.s_fence is not None
        f = await dma_fence_get(job.s_fence.finished)
        assert f is not None
        out.append(f)
    await drm_sched_entity_push_job(job)


# ---------------------------------------------------------------------- 1. alloc in run_job


async def test_run_job_allocating_gfp_kernel_is_reported_by_lockdep() -> None:
    async def body(k: Kernel) -> None:
        ops = BindOps(alloc_in_run_job=True)
        sched, entity = await vm_bind_sched(ops)
        await submit(entity, 1, [])
        await vm_bind_teardown(sched, entity)

    k = await arun(body)
    assert [f.kind for f in k.failures] == ["lockdep"]
    f = k.failures[0]
    assert f.thread is not None and f.thread.startswith("T1 kworker/panthor-vm-bind")
    assert {"dma_fence_map", "fs_reclaim"} <= set(f.extra["cycle"])


async def test_run_job_with_preallocated_memory_is_clean() -> None:
    async def body(k: Kernel) -> None:
        ops = BindOps(alloc_in_run_job=False)
        sched, entity = await vm_bind_sched(ops)
        for tag in range(3):
            await submit(entity, tag, [])
        await vm_bind_teardown(sched, entity)
        assert ops.ran == [0, 1, 2] and sorted(ops.freed) == [0, 1, 2]

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]


# ---------------------------------------------------------------------- 2. reset with queued jobs


async def _reset_scenario(k: Kernel) -> None:
    """An ioctl queues jobs (one gated on an in-fence); a reset stops and restarts the queue."""
    ops = BindOps(alloc_in_run_job=False)
    sched, entity = await vm_bind_sched(ops)
    gate = DmaFence(DmaFenceOps(), None, dma_fence_context_alloc(1), 1)
    finished: list[DmaFence] = []

    async def ioctl() -> None:
        for tag, deps in ((0, []), (1, [gate])):
            await submit(entity, tag, deps, finished)

    async def reset() -> None:
        await drm_sched_stop(sched, None)  # panthor_mmu_pre_reset()
        await drm_sched_start(sched, 0)  # panthor_mmu_post_reset()

    t_ioctl = k.spawn(ioctl, name="vm_bind ioctl")
    t_reset = k.spawn(reset, name="reset work")
    await t_ioctl.join()
    await t_reset.join()
    await dma_fence_signal(gate)
    for f in finished:
        await dma_fence_wait(f, False)
        assert f.error == 0, f"job finished with {f.error}"
        await dma_fence_put(f)
    await vm_bind_teardown(sched, entity)
    await dma_fence_put(gate)
    assert sorted(ops.ran) == [0, 1], f"ran {ops.ran}"
    assert sorted(ops.freed) == [0, 1], f"freed {ops.freed}"


async def _check_reset(seeds: int, dfs: int) -> None:
    k = await arun(_reset_scenario)
    assert not k.failures, [f.message for f in k.failures]
    for seed in range(seeds):
        for strategy in (RandomWalk(seed), PCT(seed, depth=3)):
            k = await arun(_reset_scenario, strategy=strategy)
            assert not k.failures, (strategy, [f.message for f in k.failures])
    # The schedule space is far too big to enumerate (>20000 schedules even without
    # preemptions: every idle worker wake-up is a choice); walk its first part in DFS order.
    r = await aexplore_all(_reset_scenario, preemption_bound=1, max_schedules=dfs)
    assert r.schedules == dfs
    assert not r.failing, [kk.primary_failure for kk, _ in r.failing]


async def test_reset_stop_start_with_queued_jobs_loses_none_and_runs_none_twice() -> None:
    await _check_reset(seeds=60, dfs=300)


@pytest.mark.slow
async def test_reset_stop_start_with_queued_jobs_stress() -> None:
    await _check_reset(seeds=3000, dfs=20000)


# ---------------------------------------------------------------------- 3. flush the cleanup work


async def test_flushing_cleanup_work_while_holding_its_lock_is_reported() -> None:
    """free_job pushes the heavy cleanup to "panthor-cleanup"; the cleanup takes the VM's
    op_lock. Flushing that work with op_lock held is an inversion lockdep reports."""

    async def body(k: Kernel) -> None:
        cleanup_wq = await alloc_workqueue("panthor-cleanup", WQ_UNBOUND, 0)
        assert cleanup_wq is not None
        op_lock = Mutex("vm->op_lock", "&vm->op_lock")

        async def cleanup_op_ctx(work: WorkStruct) -> None:
            await mutex_lock(op_lock)
            await mutex_unlock(op_lock)

        work = WorkStruct(cleanup_op_ctx, "&job->cleanup_op_ctx_work")
        await queue_work(cleanup_wq, work)
        await flush_work(work)
        await queue_work(cleanup_wq, work)
        await mutex_lock(op_lock)
        await flush_work(work)

    k = await arun(body)
    lockdep = [f for f in k.failures if f.kind == "lockdep"]
    assert lockdep
    assert set(lockdep[0].extra["cycle"]) == {
        "&vm->op_lock",
        "(work_completion)(&job->cleanup_op_ctx_work)",
    }
    assert k.primary_failure is not None and k.primary_failure.kind == "deadlock"


# ---------------------------------------------------------------------- 4. ww back-off


def _abba_exec(backoffs: list[int]) -> Callable[[Kernel], Awaitable[None]]:
    async def scenario(k: Kernel) -> None:
        vm = await kzalloc(lambda: DrmGemObject(4096, "vm-root"), GFP_KERNEL)
        bo = await kzalloc(lambda: DrmGemObject(4096, "bo"), GFP_KERNEL)
        assert vm is not None and bo is not None
        n = {"backoff": 0}

        async def locker(objs: list[DrmGemObject], seqno: int) -> None:
            f = DmaFence(DmaFenceOps(), None, dma_fence_context_alloc(1), seqno)
            exec = DrmExec()
            await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT | DRM_EXEC_IGNORE_DUPLICATES, 0)
            while await drm_exec_cleanup(exec):
                ret = 0
                for o in objs:
                    ret = await drm_exec_prepare_obj(exec, o, 1)
                    if drm_exec_is_contended(exec) or ret:
                        break
                if drm_exec_is_contended(exec):
                    n["backoff"] += 1
                    continue
                assert ret == 0
            assert drm_exec_locked_objects(exec) and len(drm_exec_locked_objects(exec)) == 2
            for o in drm_exec_locked_objects(exec):
                await dma_resv_add_fence(o.resv, f, DMA_RESV_USAGE_BOOKKEEP)
            await drm_exec_fini(exec)
            await dma_fence_signal(f)
            await dma_fence_put(f)

        t1 = k.spawn(locker, [vm, bo], 1, name="bind A")
        t2 = k.spawn(locker, [bo, vm], 1, name="bind B")
        await t1.join()
        await t2.join()
        await drm_gem_object_put(bo)
        await drm_gem_object_put(vm)
        backoffs.append(n["backoff"])

    return scenario


async def test_two_threads_lock_two_resvs_in_opposite_orders_both_finish() -> None:
    backoffs: list[int] = []
    r = await aexplore_all(_abba_exec(backoffs), preemption_bound=2)
    assert r.complete and not r.failing, [k.primary_failure for k, _ in r.failing]
    assert len(backoffs) == r.schedules
    assert any(b > 0 for b in backoffs), "no schedule exercised the -EDEADLK back-off"


# ---------------------------------------------------------------------- 5. a v6.14 race


class FreeToCleanupOps(BindOps):
    """panthor's free_job: cleanup, then the heavy part on "panthor-cleanup"; the last
    cleanup drops the last VM reference, so ``panthor_vm_free()`` runs in that work:
    ``drm_sched_entity_destroy()`` + ``drm_sched_fini()`` while the free work that
    queued it may still be finishing, then ``kfree(vm)`` (the scheduler with it)."""

    def __init__(self, k: Kernel) -> None:
        super().__init__(alloc_in_run_job=False)
        self.k = k
        self.cleanup_wq: Workqueue | None = None
        self.vm: tuple[DrmGpuScheduler, DrmSchedEntity] | None = None
        self.freed_vm = Completion("vm freed")

    async def free_job(self, job: DrmSchedJob) -> None:
        await drm_sched_job_cleanup(job)
        kfree(job)
        assert self.cleanup_wq is not None
        await queue_work(self.cleanup_wq, WorkStruct(self.vm_free, "&job->cleanup_op_ctx_work"))

    async def vm_free(self, work: WorkStruct) -> None:
        assert self.vm is not None
        sched, entity = self.vm
        await drm_sched_entity_destroy(entity)
        await drm_sched_fini(sched)
        kfree(sched)
        await complete(self.freed_vm)


async def _vm_free_after_last_job(k: Kernel) -> None:
    ops = FreeToCleanupOps(k)
    ops.cleanup_wq = await alloc_workqueue("panthor-cleanup", WQ_UNBOUND, 0)
    sched, entity = await vm_bind_sched(ops, allocated=True)
    ops.vm = (sched, entity)
    wq = sched.submit_wq
    await submit(entity, 0, [])
    await wait_for_completion(ops.freed_vm)
    await k.sleep_ns(1_000_000)
    assert ops.cleanup_wq is not None and wq is not None
    await destroy_workqueue(ops.cleanup_wq)
    await destroy_workqueue(wq)


async def test_vm_free_from_cleanup_races_the_free_work_requeueing_the_run_work() -> None:
    """v6.14: ``drm_sched_free_job_work()`` ends with ``drm_sched_run_job_queue()``, which
    reads ``pause_submit`` and then queues the run work. If ``drm_sched_fini()`` (here from
    the cleanup work the free_job just queued, as in panthor) sets ``pause_submit`` and
    cancels the run work in between, the run work is queued again after the cancel, on a
    queue nothing drains (``vm->wq``). ``panthor_vm_free()`` then frees the VM, and the
    scheduler in it; when the run work runs, its ``READ_ONCE(sched->pause_submit)``
    prologue reads freed memory (v6.15, without that prologue, goes on into the freed run
    queues). The canonical schedule is clean; random schedules find the interleaving (it
    needs two preemptions)."""
    k = await arun(_vm_free_after_last_job)
    assert not k.failures, [f.message for f in k.failures]
    found = None
    for seed in range(200):
        k = await arun(_vm_free_after_last_job, strategy=RandomWalk(seed))
        if k.failures:
            found = k.primary_failure
            break
    assert found is not None, "the race was not found in 200 random schedules"
    assert found.signature == "use-after-free:DrmGpuScheduler:read of .pause_submit", found.message
    assert "drm_sched_run_job_work" in found.report, found.report
