"""Workqueues: queueing rules, concurrency, flush/cancel/drain/destroy, lockdep maps."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from panthor_testbed.sched import (
    INIT_DELAYED_WORK,
    INIT_WORK,
    WQ_MEM_RECLAIM,
    WQ_UNBOUND,
    Kernel,
    Mutex,
    WorkStruct,
    alloc_ordered_workqueue,
    alloc_workqueue,
    cancel_delayed_work,
    cancel_delayed_work_sync,
    cancel_work_sync,
    destroy_workqueue,
    disable_delayed_work,
    disable_delayed_work_sync,
    disable_work,
    disable_work_sync,
    enable_delayed_work,
    enable_work,
    flush_delayed_work,
    flush_work,
    flush_workqueue,
    mod_delayed_work,
    mutex_lock,
    mutex_unlock,
    queue_delayed_work,
    queue_work,
    schedule_work,
    work_pending,
)
from panthor_testbed.sched.core.harness import aexplore_all, arun
from panthor_testbed.sched.locking.spin import atomic_context


async def run_case(body: Callable[[Kernel], Awaitable[None]]) -> Kernel:
    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    return k


async def test_queue_work_is_false_while_pending() -> None:
    runs: list[int] = []

    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("test", WQ_UNBOUND, 0)
        assert wq is not None

        async def fn(work: WorkStruct) -> None:
            runs.append(k.now)

        w = INIT_WORK(fn, "&t->work")
        assert await queue_work(wq, w)
        assert work_pending(w)
        assert not await queue_work(wq, w)
        assert await flush_work(w)
        assert not work_pending(w)
        assert not await flush_work(w)  # idle: nothing to wait for
        await destroy_workqueue(wq)

    await run_case(body)
    assert len(runs) == 1


async def test_running_work_can_be_requeued_and_never_runs_concurrently() -> None:
    """PENDING is cleared before the call: queueing a running work works, but it waits."""
    events: list[str] = []

    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("test", WQ_UNBOUND, 4)
        assert wq is not None
        state = {"running": 0, "n": 0}

        async def fn(work: WorkStruct) -> None:
            state["running"] += 1
            assert state["running"] == 1, "work ran concurrently with itself"
            state["n"] += 1
            events.append(f"start{state['n']}")
            await k.sleep_ns(1_000_000)
            events.append(f"end{state['n']}")
            state["running"] -= 1

        w = INIT_WORK(fn, "&t->work")
        await queue_work(wq, w)
        while not events:
            await k.sleep_ns(100)
        assert await queue_work(wq, w)  # running, not pending: accepted
        await flush_work(w)
        await destroy_workqueue(wq)

    await run_case(body)
    assert events == ["start1", "end1", "start2", "end2"]


async def test_unbound_max_active_runs_in_parallel() -> None:
    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("par", WQ_UNBOUND, 2)
        assert wq is not None

        async def fn(work: WorkStruct) -> None:
            await k.sleep_ns(1_000_000)

        works = [INIT_WORK(fn, f"&w{i}") for i in range(4)]
        for w in works:
            await queue_work(wq, w)
        await flush_workqueue(wq)
        assert k.now == 2_000_000  # two at a time: 2 rounds of 1ms
        await destroy_workqueue(wq)

    await run_case(body)


async def test_ordered_runs_one_at_a_time_in_order() -> None:
    order: list[int] = []

    async def body(k: Kernel) -> None:
        wq = await alloc_ordered_workqueue("ordered", 0)
        assert wq is not None

        def make(i: int) -> WorkStruct:
            async def fn(work: WorkStruct) -> None:
                order.append(i)
                await k.sleep_ns(1_000_000)

            return INIT_WORK(fn, f"&w{i}")

        for i in range(4):
            await queue_work(wq, make(i))
        await flush_workqueue(wq)
        assert k.now == 4_000_000
        await destroy_workqueue(wq)

    await run_case(body)
    assert order == [0, 1, 2, 3]


async def test_cancel_work_sync_dequeues_and_waits() -> None:
    ran: list[str] = []

    async def body(k: Kernel) -> None:
        wq = await alloc_ordered_workqueue("ordered", 0)
        assert wq is not None

        async def slow(work: WorkStruct) -> None:
            ran.append("slow-start")
            await k.sleep_ns(1_000_000)
            ran.append("slow-end")

        async def other(work: WorkStruct) -> None:
            ran.append("other")

        a, b = INIT_WORK(slow, "&a"), INIT_WORK(other, "&b")
        await queue_work(wq, a)
        await queue_work(wq, b)
        while not ran:
            await k.sleep_ns(100)
        assert await cancel_work_sync(b)  # was pending: dequeued, never runs
        assert not await cancel_work_sync(a)  # running: waits for it
        assert ran == ["slow-start", "slow-end"]
        await destroy_workqueue(wq)

    await run_case(body)
    assert ran == ["slow-start", "slow-end"]


async def test_queue_during_cancel_work_sync_is_refused() -> None:
    """The work is disabled while ``cancel_work_sync`` waits: a re-queue returns False."""
    got: list[bool] = []

    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("wq", WQ_UNBOUND, 0)
        assert wq is not None

        async def fn(work: WorkStruct) -> None:
            await k.sleep_ns(1_000_000)

        w = INIT_WORK(fn, "&w")
        await queue_work(wq, w)
        await k.sleep_ns(10)

        async def requeuer() -> None:
            await k.sleep_ns(100)
            got.append(await queue_work(wq, w))

        t = k.spawn(requeuer, name="requeuer")
        await cancel_work_sync(w)
        await t.join()
        await destroy_workqueue(wq)

    await run_case(body)
    assert got == [False]


async def test_flush_workqueue_waits_only_for_earlier_work() -> None:
    count = {"n": 0}

    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("wq", WQ_UNBOUND, 0)
        assert wq is not None

        async def rearm(work: WorkStruct) -> None:
            count["n"] += 1
            await k.sleep_ns(1_000)
            if count["n"] < 5:
                await queue_work(wq, work)

        w = INIT_WORK(rearm, "&rearm")
        await queue_work(wq, w)
        await flush_workqueue(wq)  # the first instance only, not the re-queued ones
        assert count["n"] < 5
        await destroy_workqueue(wq)  # drains: chained re-queues are allowed
        assert count["n"] == 5

    await run_case(body)


async def test_queue_onto_draining_queue_warns() -> None:
    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("wq", WQ_UNBOUND, 0)
        assert wq is not None

        async def fn(work: WorkStruct) -> None:
            await k.sleep_ns(1_000_000)

        await queue_work(wq, INIT_WORK(fn, "&a"))
        late = INIT_WORK(fn, "&late")

        async def outsider() -> None:
            await k.sleep_ns(10)
            await queue_work(wq, late)

        k.spawn(outsider, name="outsider")
        await destroy_workqueue(wq)

    k = await arun(body)
    assert k.primary_failure is not None
    assert k.primary_failure.signature == "warn:workqueue-cannot-queue:wq"


async def test_queue_after_destroy_is_use_after_free() -> None:
    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("wq", WQ_UNBOUND, 0)
        assert wq is not None

        async def fn(work: WorkStruct) -> None:
            pass

        await destroy_workqueue(wq)
        await queue_work(wq, INIT_WORK(fn, "&w"))

    k = await arun(body)
    assert k.primary_failure is not None and k.primary_failure.kind == "use-after-free"


async def test_forgotten_workqueue_is_a_leak() -> None:
    async def body(k: Kernel) -> None:
        await alloc_workqueue("forgotten", WQ_UNBOUND, 0)

    k = await arun(body)
    assert [f.kind for f in k.failures] == ["leak"]


async def test_delayed_work_on_the_virtual_clock() -> None:
    times: list[int] = []

    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("wq", WQ_UNBOUND, 0)
        assert wq is not None

        async def fn(work: WorkStruct) -> None:
            times.append(k.now)

        dw = INIT_DELAYED_WORK(fn, "&dw")
        assert await queue_delayed_work(wq, dw, 5)  # 5 jiffies = 5ms
        assert not await queue_delayed_work(wq, dw, 1)
        assert await mod_delayed_work(wq, dw, 10)  # re-armed: was pending
        await k.sleep_ns(20_000_000)
        assert times == [10_000_000]
        await queue_delayed_work(wq, dw, 5)
        assert await cancel_delayed_work(dw)
        await k.sleep_ns(20_000_000)
        assert times == [10_000_000]
        await destroy_workqueue(wq)

    await run_case(body)


# ---------------------------------------------------------------------- lockdep


async def test_flush_work_while_holding_a_lock_it_takes_is_reported() -> None:
    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("cleanup", WQ_UNBOUND, 0)
        assert wq is not None
        lock = Mutex("L", "&L")

        async def fn(work: WorkStruct) -> None:
            await mutex_lock(lock)
            await mutex_unlock(lock)

        w = INIT_WORK(fn, "&job->cleanup_work")
        await queue_work(wq, w)
        await flush_work(w)  # teaches lockdep: work -> L
        await queue_work(wq, w)
        await mutex_lock(lock)
        await flush_work(w)  # L -> work: inversion (and a real deadlock if it runs now)

    k = await arun(body)
    lockdep = [f for f in k.failures if f.kind == "lockdep"]
    assert lockdep and set(lockdep[0].extra["cycle"]) == {
        "&L",
        "(work_completion)(&job->cleanup_work)",
    }


async def test_flush_idle_work_touches_no_map() -> None:
    """Only an in-flight work is touched: flushing an idle one with the lock held is silent."""

    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("cleanup", WQ_UNBOUND, 0)
        assert wq is not None
        lock = Mutex("L", "&L")

        async def fn(work: WorkStruct) -> None:
            await mutex_lock(lock)
            await mutex_unlock(lock)

        w = INIT_WORK(fn, "&job->cleanup_work")
        await queue_work(wq, w)
        await flush_work(w)
        await mutex_lock(lock)
        assert not await flush_work(w)
        await mutex_unlock(lock)
        await destroy_workqueue(wq)

    await run_case(body)


async def test_flush_inside_the_same_ordered_queue_is_recursion() -> None:
    async def body(k: Kernel) -> None:
        wq = await alloc_ordered_workqueue("ordered", 0)
        assert wq is not None

        async def second(work: WorkStruct) -> None:
            pass

        b = INIT_WORK(second, "&b")

        async def first(work: WorkStruct) -> None:
            await queue_work(wq, b)
            await flush_work(b)  # b waits behind us: a real deadlock

        await queue_work(wq, INIT_WORK(first, "&a"))
        await flush_workqueue(wq)

    k = await arun(body)
    kinds = [f.kind for f in k.failures]
    assert "lockdep" in kinds and kinds[-1] == "deadlock"
    rec = next(f for f in k.failures if f.kind == "lockdep")
    assert rec.signature == "lockdep:recursive:(wq_completion)ordered"
    dl = k.failures[-1]
    assert "flush_work(&b)" in dl.report


async def test_lock_held_when_work_returns_is_reported() -> None:
    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("wq", WQ_UNBOUND, 0)
        assert wq is not None
        lock = Mutex("L", "&L")

        async def leaky(work: WorkStruct) -> None:
            await mutex_lock(lock)

        w = INIT_WORK(leaky, "&leaky")
        await queue_work(wq, w)
        await k.sleep_ns(1_000)
        await destroy_workqueue(wq)

    k = await arun(body)
    sigs = [f.signature for f in k.failures]
    # ... and again when the destroyed queue's worker exits with it.
    assert sigs == ["lockdep:wq-leaked:(work_completion)(&leaky)", "lockdep:held-at-exit:L"]


async def test_mem_reclaim_worker_flushing_plain_queue_warns() -> None:
    async def body(k: Kernel) -> None:
        reclaim = await alloc_workqueue("reclaim", WQ_MEM_RECLAIM, 0)
        plain = await alloc_workqueue("plain", WQ_UNBOUND, 0)
        assert reclaim is not None and plain is not None

        async def target(work: WorkStruct) -> None:
            await k.sleep_ns(1_000)

        t = INIT_WORK(target, "&target")

        async def flusher(work: WorkStruct) -> None:
            await queue_work(plain, t)
            await flush_work(t)

        await queue_work(reclaim, INIT_WORK(flusher, "&flusher"))
        await k.sleep_ns(1_000_000)

    k = await arun(body)
    assert k.primary_failure is not None
    assert k.primary_failure.signature == "warn:workqueue-flush-dependency:reclaim:plain"


async def test_system_wq_and_schedule_work() -> None:
    ran: list[str] = []

    async def body(k: Kernel) -> None:
        async def fn(work: WorkStruct) -> None:
            ran.append(k.current.name if k.current else "?")

        w = INIT_WORK(fn, "&w")
        assert await schedule_work(w)
        await flush_work(w)

    await run_case(body)
    assert ran == ["kworker/events:0"]


async def test_queue_flush_cancel_under_the_explorer() -> None:
    """Queue, re-queue from another thread, cancel and flush race: the work never runs
    concurrently with itself, never runs after cancel_work_sync returned, and nothing hangs."""

    async def scenario(k: Kernel) -> None:
        wq = await alloc_workqueue("wq", WQ_UNBOUND, 2)
        assert wq is not None
        st = {"running": 0, "cancelled": False}

        async def fn(work: WorkStruct) -> None:
            assert not st["cancelled"], "ran after cancel_work_sync returned"
            st["running"] += 1
            assert st["running"] == 1
            await k.sleep_ns(0)
            st["running"] -= 1

        w = INIT_WORK(fn, "&w")

        async def queuer() -> None:
            await queue_work(wq, w)
            await queue_work(wq, w)

        t = k.spawn(queuer, name="queuer")
        await t.join()
        await flush_work(w)
        await cancel_work_sync(w)
        st["cancelled"] = True
        await destroy_workqueue(wq)

    r = await aexplore_all(scenario, preemption_bound=2)
    assert r.complete and not r.failing, [k.primary_failure for k, _ in r.failing]


async def test_disable_work_sync_waits_and_refuses_until_enabled() -> None:
    """``disable_work_sync()``: dequeue, wait for the running instance, refuse re-queues."""
    got: list[tuple[str, int]] = []

    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("wq", WQ_UNBOUND, 0)
        assert wq is not None

        async def fn(work: WorkStruct) -> None:
            got.append(("run", k.now))
            await k.sleep_ns(1_000)

        w = INIT_WORK(fn, "&w")
        await queue_work(wq, w)
        await k.sleep_ns(10)  # running
        assert not await disable_work_sync(w)  # it was running, not pending
        got.append(("disabled", k.now))
        assert not await queue_work(wq, w)  # refused: disabled
        assert not work_pending(w)
        assert enable_work(w)
        await queue_work(wq, w)
        await flush_work(w)
        await destroy_workqueue(wq)

    await run_case(body)
    assert [g[0] for g in got] == ["run", "disabled", "run"]
    assert got[1][1] >= 1_000  # it waited for the running instance


async def test_disable_work_drops_a_pending_instance_and_nests() -> None:
    ran: list[int] = []

    async def body(k: Kernel) -> None:
        wq = await alloc_ordered_workqueue("ordered", 0)
        assert wq is not None

        async def fn(work: WorkStruct) -> None:
            ran.append(k.now)

        w = INIT_WORK(fn, "&w")
        assert await queue_work(wq, w)
        assert await disable_work(w)  # was pending: dropped
        assert await disable_work(w) is False  # nothing pending the second time
        assert not enable_work(w)  # still disabled once
        assert not await queue_work(wq, w)
        assert enable_work(w)
        assert await queue_work(wq, w)
        await flush_workqueue(wq)
        await destroy_workqueue(wq)

    await run_case(body)
    assert len(ran) == 1


async def test_disable_delayed_work_sync_stops_the_timer() -> None:
    ran: list[int] = []

    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("wq", WQ_UNBOUND, 0)
        assert wq is not None

        async def fn(work: WorkStruct) -> None:
            ran.append(k.now)

        dw = INIT_DELAYED_WORK(fn, "&dw")
        assert await queue_delayed_work(wq, dw, 10)
        assert await disable_delayed_work_sync(dw)
        assert not await queue_delayed_work(wq, dw, 1)
        await k.sleep_ns(100_000_000)
        await destroy_workqueue(wq)

    await run_case(body)
    assert ran == []


async def test_enable_work_of_an_enabled_work_warns() -> None:
    async def body(k: Kernel) -> None:
        async def fn(work: WorkStruct) -> None:
            pass

        enable_work(INIT_WORK(fn, "&w"))

    k = await arun(body)
    assert [f.signature for f in k.failures] == ["warn:workqueue-enable-unbalanced"]


async def test_disable_work_does_not_wait_for_a_running_instance() -> None:
    got: list[tuple[str, int]] = []

    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("wq", WQ_UNBOUND, 0)
        assert wq is not None

        async def fn(work: WorkStruct) -> None:
            await k.sleep_ns(1_000)
            got.append(("done", k.now))

        w = INIT_WORK(fn, "&w")
        await queue_work(wq, w)
        await k.sleep_ns(10)  # running
        assert not await disable_work(w)
        got.append(("disabled", k.now))
        await flush_work(w)
        await destroy_workqueue(wq)

    await run_case(body)
    assert [g[0] for g in got] == ["disabled", "done"]


async def test_disable_delayed_work_drops_the_timer_without_waiting() -> None:
    ran: list[int] = []

    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("wq", WQ_UNBOUND, 0)
        assert wq is not None

        async def fn(work: WorkStruct) -> None:
            ran.append(k.now)

        dw = INIT_DELAYED_WORK(fn, "&dw")
        assert await queue_delayed_work(wq, dw, 10)
        assert await disable_delayed_work(dw)  # was pending (on its timer)
        assert not await disable_delayed_work(dw)
        assert not await queue_delayed_work(wq, dw, 1)
        assert not enable_delayed_work(dw)  # still disabled once
        assert enable_delayed_work(dw)
        assert await queue_delayed_work(wq, dw, 1)
        await k.sleep_ns(100_000_000)
        await destroy_workqueue(wq)

    await run_case(body)
    assert len(ran) == 1


async def test_disable_delayed_work_sync_waits_for_the_running_instance() -> None:
    got: list[str] = []

    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("wq", WQ_UNBOUND, 0)
        assert wq is not None

        async def fn(work: WorkStruct) -> None:
            got.append("start")
            await k.sleep_ns(1_000_000)
            got.append("end")

        dw = INIT_DELAYED_WORK(fn, "&dw")
        assert await queue_delayed_work(wq, dw, 0)
        while not got:
            await k.sleep_ns(100)
        assert not await disable_delayed_work_sync(dw)  # running, not pending
        got.append("disabled")
        await destroy_workqueue(wq)

    await run_case(body)
    assert got == ["start", "end", "disabled"]


async def test_disable_work_sync_may_sleep() -> None:
    async def body(k: Kernel) -> None:
        async def fn(work: WorkStruct) -> None:
            pass

        w = INIT_WORK(fn, "&w")
        with atomic_context():
            await disable_work_sync(w)

    k = await arun(body)
    assert any("sleeping function called from invalid context" in f.message for f in k.failures)


async def test_disable_delayed_work_does_not_wait_for_a_running_instance() -> None:
    got: list[str] = []

    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("wq", WQ_UNBOUND, 0)
        assert wq is not None

        async def fn(work: WorkStruct) -> None:
            got.append("start")
            await k.sleep_ns(1_000)
            got.append("end")

        dw = INIT_DELAYED_WORK(fn, "&dw")
        assert await queue_delayed_work(wq, dw, 0)
        while not got:
            await k.sleep_ns(100)
        assert not await disable_delayed_work(dw)
        got.append("disabled")
        await destroy_workqueue(wq)

    await run_case(body)
    assert got == ["start", "disabled", "end"]


async def test_a_work_can_be_queued_again_after_cancel_work_sync() -> None:
    """``cancel_work_sync()`` is disable + flush + enable: the work is not left disabled."""
    ran: list[int] = []

    async def body(k: Kernel) -> None:
        wq = await alloc_workqueue("wq", WQ_UNBOUND, 0)
        assert wq is not None

        async def fn(work: WorkStruct) -> None:
            ran.append(k.now)

        w = INIT_WORK(fn, "&w")
        assert await queue_work(wq, w)
        assert await cancel_work_sync(w)
        assert await queue_work(wq, w)
        await flush_work(w)
        dw = INIT_DELAYED_WORK(fn, "&dw")
        assert await queue_delayed_work(wq, dw, 10)
        assert await cancel_delayed_work_sync(dw)
        assert await queue_delayed_work(wq, dw, 0)
        await flush_delayed_work(dw)
        await destroy_workqueue(wq)

    await run_case(body)
    assert len(ran) == 2
