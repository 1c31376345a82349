"""Windows the kernel leaves open and the model used to close (issue 8, "Open the windows").

Wherever the kernel touches shared state without the lock that orders it, another
CPU can run in between; the model has a yield point there. Each test explores a
small scenario at a low preemption bound, asserts that a schedule reaches the
interleaving, and names the kernel code that allows it. Each fails when the
yield point it is about is removed.
"""

from __future__ import annotations

from panthor_testbed.sched import (
    DRM_SCHED_PRIORITY_NORMAL,
    GFP_KERNEL,
    MAX_SCHEDULE_TIMEOUT,
    DmaFence,
    DmaFenceCb,
    DmaFenceOps,
    DrmGpuScheduler,
    DrmSchedBackendOps,
    DrmSchedEntity,
    DrmSchedJob,
    ErrPtr,
    Kernel,
    SimThread,
    dma_fence_add_callback,
    dma_fence_context_alloc,
    dma_fence_get,
    dma_fence_get_atomic,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_signal,
    dma_fence_test_signaled_flag,
    dma_fence_wait,
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
    is_freed,
    kfree,
    kzalloc,
    work_pending,
)
from panthor_testbed.sched.core.harness import aexplore_all
from panthor_testbed.sched.drm.drm_mock_sched import (
    drm_mock_sched_advance,
    drm_mock_sched_entity_free,
    drm_mock_sched_entity_new,
    drm_mock_sched_fini,
    drm_mock_sched_job_new,
    drm_mock_sched_job_submit,
    drm_mock_sched_job_wait_scheduled,
    drm_mock_sched_new,
)
from panthor_testbed.sched.errno import ENOENT


class RanCb(DmaFenceCb):
    def __init__(self) -> None:
        super().__init__()
        self.ran = False


async def mark_ran(f: DmaFence, cb: DmaFenceCb) -> None:
    assert isinstance(cb, RanCb)
    cb.ran = True


def new_fence(seqno: int = 1) -> DmaFence:
    return DmaFence(DmaFenceOps(), None, dma_fence_context_alloc(1), seqno)


async def settle(k: Kernel, cond: object, what: str) -> None:
    """Sleep until ``cond()`` holds (the workers got there)."""
    assert callable(cond)
    for _ in range(1000):
        if cond():
            return
        await k.sleep_ns(10_000)
    raise AssertionError(f"never happened: {what}")


def explored(r: object) -> None:
    failing = r.failing  # type: ignore[attr-defined]
    assert r.complete, "the exploration did not finish"  # type: ignore[attr-defined]
    assert not failing, [kk.primary_failure for kk, _ in failing]


# ---------------------------------------------------------------------- dma_fence


async def test_another_thread_sees_signaled_before_the_callback_ran() -> None:
    """drivers/dma-buf/dma-fence.c, ``dma_fence_signal_timestamp_locked()``:
    ``test_and_set_bit(DMA_FENCE_FLAG_SIGNALED_BIT, &fence->flags)`` comes first, then
    ``list_for_each_entry_safe(cur, tmp, &cb_list, node) { ... cur->func(fence, cur); }``
    under ``fence->lock``; include/linux/dma-fence.h ``dma_fence_is_signaled()`` is
    ``if (test_bit(DMA_FENCE_FLAG_SIGNALED_BIT, &fence->flags)) return true;`` without
    the lock. So another CPU sees the fence signalled while its callback has not run."""
    seen: list[tuple[bool, bool]] = []

    async def scenario(k: Kernel) -> None:
        f = new_fence()
        cb = RanCb()
        assert await dma_fence_add_callback(f, cb, mark_ran) == 0

        async def signaller() -> None:
            await dma_fence_signal(f)

        async def observer() -> None:
            seen.append((await dma_fence_is_signaled(f), cb.ran))

        threads = [k.spawn(signaller, name="signaller"), k.spawn(observer, name="observer")]
        for t in threads:
            await t.join()
        assert cb.ran
        await dma_fence_put(f)

    explored(await aexplore_all(scenario, preemption_bound=1))
    assert (True, False) in seen, seen


async def test_add_callback_spins_on_fence_lock_while_the_signaller_runs_callbacks() -> None:
    """drivers/dma-buf/dma-fence.c, ``dma_fence_add_callback()``: ``if (test_bit(
    DMA_FENCE_FLAG_SIGNALED_BIT, &fence->flags)) { ... return -ENOENT; }`` is lockless,
    then ``spin_lock_irqsave(fence->lock, flags);``. A fence signalled in between is
    still running its callbacks under ``fence->lock`` (``dma_fence_signal()`` holds it
    around ``dma_fence_signal_timestamp_locked()``): the adder spins until they are done,
    then sees the bit and returns -ENOENT."""
    runs: list[tuple[bool, int]] = []

    async def scenario(k: Kernel) -> None:
        f = new_fence()
        adder: list[SimThread] = []
        spinning: list[bool] = []

        async def first_cb(fence: DmaFence, cb: DmaFenceCb) -> None:
            spinners = f.lock.spinners if f.lock is not None else None
            spinning.append(spinners is not None and adder[0].blocked_on is spinners)

        assert await dma_fence_add_callback(f, DmaFenceCb(), first_cb) == 0
        result: list[int] = []

        async def add() -> None:
            result.append(await dma_fence_add_callback(f, RanCb(), mark_ran))

        async def signaller() -> None:
            await dma_fence_signal(f)

        adder.append(k.spawn(add, name="adder"))
        t = k.spawn(signaller, name="signaller")
        await adder[0].join()
        await t.join()
        runs.append((spinning[0], result[0]))
        await dma_fence_put(f)

    explored(await aexplore_all(scenario, preemption_bound=2))
    assert (True, -ENOENT) in runs, runs
    assert all(r == -ENOENT for spun, r in runs if spun)


# ---------------------------------------------------------------------- drm_sched backends


class HwJob(DrmSchedJob):
    def __init__(self, tag: int) -> None:
        super().__init__()
        self.tag = tag


class HwOps(DrmSchedBackendOps):
    """``run_job`` hands out a hardware fence the test signals; ``free_job`` frees the job."""

    def __init__(self, state: dict[str, object]) -> None:
        self.state = state
        self.ctx = 0
        self.hw: list[DmaFence] = []
        self.ran: list[tuple[int, bool]] = []  # (tag, the watched fence was signalled)

    async def run_job(self, job: DrmSchedJob) -> DmaFence | ErrPtr | None:
        assert isinstance(job, HwJob)
        watch = self.state.get("watch")
        signalled = isinstance(watch, DmaFence) and dma_fence_test_signaled_flag(watch)
        self.ran.append((job.tag, signalled))
        if not self.ctx:
            self.ctx = dma_fence_context_alloc(1)
        hw = DmaFence(DmaFenceOps(), None, self.ctx, len(self.hw) + 1)
        self.hw.append(hw)
        dma_fence_get_atomic(hw)  # ours; the one from init goes to the scheduler
        return hw

    async def free_job(self, job: DrmSchedJob) -> None:
        await drm_sched_job_cleanup(job)
        kfree(job)


class NullOps(DrmSchedBackendOps):
    """A VM_BIND-like backend: ``run_job`` does the work and returns NULL."""

    async def run_job(self, job: DrmSchedJob) -> DmaFence | ErrPtr | None:
        return None

    async def free_job(self, job: DrmSchedJob) -> None:
        await drm_sched_job_cleanup(job)
        kfree(job)


async def new_sched(ops: DrmSchedBackendOps) -> DrmGpuScheduler:
    """``drm_sched_init`` as panthor does: an owned ordered queue, 1 rq, 1 credit."""
    sched = DrmGpuScheduler("sched")
    assert (
        await drm_sched_init(
            sched, ops, None, 1, 1, 0, MAX_SCHEDULE_TIMEOUT, None, None, "sched", None
        )
        == 0
    )
    return sched


async def new_entity(sched: DrmGpuScheduler, name: str) -> DrmSchedEntity:
    entity = DrmSchedEntity(name)
    assert await drm_sched_entity_init(entity, 0, [sched], 1, None) == 0
    return entity


async def new_job(entity: DrmSchedEntity, tag: int, deps: tuple[DmaFence, ...] = ()) -> HwJob:
    job = await kzalloc(lambda: HwJob(tag), GFP_KERNEL)
    assert job is not None
    assert await drm_sched_job_init(job, entity, 1, None) == 0
    for d in deps:
        await drm_sched_job_add_dependency(job, await dma_fence_get(d))
    await drm_sched_job_arm(job)
    return job


async def finish(
    k: Kernel, sched: DrmGpuScheduler, ops: HwOps, entities: list[DrmSchedEntity]
) -> None:
    """Complete every hardware fence until every job is freed, then tear down."""

    async def complete_hw() -> None:
        for hw in ops.hw:
            if not dma_fence_test_signaled_flag(hw):
                await dma_fence_signal(hw)

    for _ in range(1000):
        await complete_hw()
        if not sched.pending_list and not any(e.job_queue for e in entities):
            break
        await k.sleep_ns(100_000)
    for e in entities:
        await drm_sched_entity_destroy(e)
    await drm_sched_fini(sched)
    await complete_hw()
    for hw in ops.hw:
        await dma_fence_put(hw)


# ---------------------------------------------------------------------- drm_sched


async def test_job_done_queues_the_free_work_after_a_concurrent_drm_sched_stop() -> None:
    """drivers/gpu/drm/scheduler/sched_main.c: ``drm_sched_job_done()`` (the hw fence's
    callback) ends with ``__drm_sched_run_free_queue(sched)``, which is
    ``if (!READ_ONCE(sched->pause_submit)) queue_work(sched->submit_wq,
    &sched->work_free_job);``. ``drm_sched_wqueue_stop()`` (``WRITE_ONCE(
    sched->pause_submit, true); cancel_work_sync(...)``) can run between the read and
    the ``queue_work``: the free work is pending again after ``drm_sched_stop()``
    returned (``drm_sched_stop()`` meanwhile spins in ``dma_fence_remove_callback()`` on
    the hw fence's lock until the callback is done, then frees the job inline).

    In v6.14 that free work returns at its ``READ_ONCE(pause_submit)`` prologue. v6.15
    dropped the prologue ("drm/sched: Remove weak paused submission checks"), and the
    same window then frees the job twice: the free work unlinks and frees it while
    ``drm_sched_stop()`` spins, and ``drm_sched_stop()``, whose ``remove_callback``
    failed, waits on ``s_job->s_fence->finished`` and calls ``free_job`` again."""
    pending_after_stop: list[bool] = []

    async def scenario(k: Kernel) -> None:
        mock = await drm_mock_sched_new(MAX_SCHEDULE_TIMEOUT)
        sched = mock.base
        entity = await drm_mock_sched_entity_new(DRM_SCHED_PRIORITY_NORMAL, mock)
        job = await drm_mock_sched_job_new(entity, mock)
        await drm_mock_sched_job_submit(job)
        assert await drm_mock_sched_job_wait_scheduled(job, MAX_SCHEDULE_TIMEOUT)
        assert job.s_fence is not None
        finished = await dma_fence_get(job.s_fence.finished)
        assert finished is not None

        async def gpu() -> None:
            await drm_mock_sched_advance(mock, 1)

        async def reset() -> None:
            await drm_sched_stop(sched, None)
            assert sched.work_free_job is not None
            pending_after_stop.append(work_pending(sched.work_free_job))
            await drm_sched_start(sched, 0)

        threads = [k.spawn(gpu, name="gpu"), k.spawn(reset, name="reset")]
        for t in threads:
            await t.join()
        await dma_fence_wait(finished, False)
        await dma_fence_put(finished)
        await drm_mock_sched_entity_free(entity)
        await settle(k, lambda: not sched.pending_list, "the job is freed")
        await drm_mock_sched_fini(mock)

    explored(await aexplore_all(scenario, preemption_bound=1))
    assert True in pending_after_stop


async def _run_work_queued_after_stop(kick: str) -> list[bool]:
    """Is the run work ever queued by ``kick`` on a scheduler ``drm_sched_stop()`` stopped?

    ``kick`` queues the run work while a reset runs: the entity's dependency callback
    (``drm_sched_entity_wakeup``, in the thread signalling the dependency) or
    ``drm_sched_entity_push_job`` of a first job. The kicker looks right after its
    ``drm_sched_wakeup()`` (no yield point in between, so the work cannot have started).
    """
    queued_after_stop: list[bool] = []

    async def scenario(k: Kernel) -> None:
        state: dict[str, object] = {"stopped": False}
        ops = HwOps({})
        sched = await new_sched(ops)
        entity = await new_entity(sched, "entity")
        gate = new_fence()
        seen: list[bool] = []

        def look() -> None:
            assert sched.work_run_job is not None
            seen.append(bool(state["stopped"]) and work_pending(sched.work_run_job))

        if kick == "callback":
            job = await new_job(entity, 1, (gate,))
            await drm_sched_entity_push_job(job)
            await settle(k, lambda: entity.dependency is gate, "the run work waits on the gate")

            async def kicker() -> None:
                await dma_fence_signal(gate)  # runs drm_sched_entity_wakeup()
                look()

        else:
            job = await new_job(entity, 1)

            async def kicker() -> None:
                await drm_sched_entity_push_job(job)
                look()

        async def reset(kicker_thread: SimThread) -> None:
            await drm_sched_stop(sched, None)
            state["stopped"] = True
            await kicker_thread.join()
            state["stopped"] = False
            await drm_sched_start(sched, 0)

        t_kick = k.spawn(kicker, name="kicker")
        t_reset = k.spawn(reset, t_kick, name="reset")
        await t_reset.join()
        queued_after_stop.append(seen[0])
        await finish(k, sched, ops, [entity])
        if kick != "callback":
            await dma_fence_signal(gate)
        await dma_fence_put(gate)

    explored(await aexplore_all(scenario, preemption_bound=1))
    return queued_after_stop


async def test_dependency_callback_queues_the_run_work_after_a_concurrent_drm_sched_stop() -> None:
    """drivers/gpu/drm/scheduler/sched_entity.c, ``drm_sched_entity_wakeup()`` (a fence
    callback) calls ``drm_sched_wakeup()`` -> sched_main.c ``drm_sched_run_job_queue()``:
    ``if (!READ_ONCE(sched->pause_submit)) queue_work(sched->submit_wq,
    &sched->work_run_job);``. ``drm_sched_stop()`` can run entirely between the read and
    the ``queue_work``: the run work is queued on the stopped scheduler. v6.14's run work
    returns at its ``READ_ONCE(pause_submit)`` prologue; v6.15 (no prologue) runs the job
    between ``drm_sched_stop()`` and ``drm_sched_start()``."""
    assert True in await _run_work_queued_after_stop("callback")


async def test_push_job_queues_the_run_work_after_a_concurrent_drm_sched_stop() -> None:
    """sched_entity.c ``drm_sched_entity_push_job()``: the first job ends with
    ``drm_sched_wakeup(sched)``, the same ``READ_ONCE(pause_submit)`` then
    ``queue_work()`` (sched_main.c ``drm_sched_run_job_queue()``), so a push racing a
    reset queues the run work on the stopped scheduler. Without v6.14's prologue (v6.15)
    the job runs while stopped, and ``drm_sched_start()`` finds it pending without a
    parent and completes it again with -ECANCELED."""
    assert True in await _run_work_queued_after_stop("push")


async def test_pushed_job_completes_and_is_freed_before_push_job_returns() -> None:
    """sched_entity.c ``drm_sched_entity_push_job()``: "After the sched_job is pushed
    into the entity queue, it may be completed and freed up at any time. We can no
    longer access it." -- ``first = spsc_queue_push(&entity->job_queue,
    &sched_job->queue_node);`` and then only the entity is used. A run work already
    queued (here by the previous job's push) pops, runs, completes the job, and the
    free work frees it, before ``drm_sched_entity_push_job()`` returns."""
    freed_on_return: list[bool] = []

    async def scenario(k: Kernel) -> None:
        sched = await new_sched(NullOps())
        entity = await new_entity(sched, "entity")
        first = await new_job(entity, 1)
        await drm_sched_entity_push_job(first)
        job = await new_job(entity, 2)
        await drm_sched_entity_push_job(job)
        freed_on_return.append(is_freed(job))
        await drm_sched_entity_destroy(entity)
        await settle(k, lambda: not sched.pending_list, "the jobs are freed")
        await drm_sched_fini(sched)

    explored(await aexplore_all(scenario, preemption_bound=1))
    assert True in freed_on_return


async def test_job_done_gives_the_credits_back_before_finished_is_signalled() -> None:
    """sched_main.c ``drm_sched_job_done()``: ``atomic_sub(s_job->credits,
    &sched->credit_count);`` comes before ``drm_sched_fence_finished(s_fence, result);``,
    and the run work reads the credits locklessly (``drm_sched_can_queue()`` ->
    ``drm_sched_available_credits()``: ``atomic_read(&sched->credit_count)``). With one
    credit, a run work kicked in between runs the next job while the previous one's
    finished fence is still unsignalled."""
    runs: list[bool] = []

    async def scenario(k: Kernel) -> None:
        state: dict[str, object] = {}
        ops = HwOps(state)
        sched = await new_sched(ops)
        entities = [await new_entity(sched, f"e{i}") for i in range(3)]
        a1 = await new_job(entities[0], 1)
        assert a1.s_fence is not None
        watch = await dma_fence_get(a1.s_fence.finished)
        state["watch"] = watch
        await drm_sched_entity_push_job(a1)
        await settle(k, lambda: len(ops.hw) == 1, "a1 runs")
        await drm_sched_entity_push_job(await new_job(entities[1], 2))  # no credit left
        c1 = await new_job(entities[2], 3)
        await k.sleep_ns(100_000)
        assert [tag for tag, _ in ops.ran] == [1]

        async def gpu() -> None:
            await dma_fence_signal(ops.hw[0])

        async def pusher() -> None:
            await drm_sched_entity_push_job(c1)

        threads = [k.spawn(gpu, name="gpu"), k.spawn(pusher, name="pusher")]
        for t in threads:
            await t.join()
        await settle(k, lambda: len(ops.ran) >= 2, "the second job runs")
        tag, watched_signalled = ops.ran[1]
        assert tag == 2
        runs.append(not watched_signalled)
        await finish(k, sched, ops, entities)
        await dma_fence_put(watch)

    explored(await aexplore_all(scenario, preemption_bound=1))
    assert True in runs
