"""Lockdep as v6.14 lockdep: for each rule, a case it reports and a close case it does not.

Every test names the kernel function that makes (or skips) the report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from panthor_testbed.sched import (
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_NOFS,
    GFP_NOIO,
    GFP_NOWAIT,
    INIT_DELAYED_WORK,
    INIT_WORK,
    WQ_UNBOUND,
    Completion,
    DmaFence,
    DmaFenceCb,
    DmaFenceOps,
    Kernel,
    KernelConfig,
    Mutex,
    SpinLock,
    WorkStruct,
    alloc_ordered_workqueue,
    alloc_workqueue,
    cancel_delayed_work_sync,
    cancel_work_sync,
    complete,
    destroy_workqueue,
    disable_work_sync,
    dma_fence_add_callback,
    dma_fence_begin_signalling,
    dma_fence_context_alloc,
    dma_fence_end_signalling,
    dma_fence_put,
    dma_fence_signal,
    flush_delayed_work,
    flush_work,
    kfree,
    kzalloc,
    lock_acquire,
    lock_map_acquire,
    lock_map_acquire_try,
    lock_map_release,
    lock_release,
    lockdep_assert_held,
    lockdep_assert_held_write,
    lockdep_assert_not_held,
    memalloc_nofs_restore,
    memalloc_nofs_save,
    memalloc_noio_restore,
    memalloc_noio_save,
    memalloc_noreclaim_restore,
    memalloc_noreclaim_save,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    queue_delayed_work,
    queue_work,
    spin_lock,
    spin_trylock,
    spin_unlock,
    wait_for_completion,
    ww_mutex_trylock,
)
from panthor_testbed.sched.core.failure import Failure
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.dma_buf.dma_resv import (
    DmaResv,
    dma_resv_assert_held,
    dma_resv_lock,
    dma_resv_trylock,
    dma_resv_unlock,
    reservation_ww_class,
)
from panthor_testbed.sched.locking.lockdep import (
    DMA_FENCE_MAP_KEY,
    FS_RECLAIM_KEY,
    MMU_NOTIFIER_KEY,
    RESV_MUTEX_KEY,
    Lockdep,
    LockdepMap,
)
from panthor_testbed.sched.locking.ww_mutex import WwAcquireCtx, ww_acquire_fini, ww_acquire_init

Scenario = Callable[[Kernel], Awaitable[None]]


def _lockdep(k: Kernel) -> list[Failure]:
    return [f for f in k.failures if f.kind == "lockdep"]


def _only_report(k: Kernel) -> Failure:
    reports = _lockdep(k)
    assert len(reports) == 1, [f.message for f in k.failures]
    return reports[0]


# ---------------------------------------------------------------------- trylocks
# validate_chain() runs check_deadlock() and check_prevs_add() only for
# `!hlock->trylock`: a trylock is pushed on the held stack, unvalidated.


async def _take_two_op_locks(how: str) -> None:
    a = Mutex("vm1->op_lock", "&vm->op_lock")
    b = Mutex("vm2->op_lock", "&vm->op_lock")
    await mutex_lock(a)
    if how == "trylock":
        assert await mutex_trylock(b)
    else:
        await mutex_lock(b)
    await mutex_unlock(b)
    await mutex_unlock(a)


def test_mutex_trylock_of_a_second_op_lock_is_silent(graph: Lockdep) -> None:
    """validate_chain() skips the trylock: no check_deadlock() for it."""

    async def scenario(k: Kernel) -> None:
        await _take_two_op_locks("trylock")

    assert run(scenario, lockdep=graph).failures == []


def test_mutex_lock_of_a_second_op_lock_is_recursive_locking(graph: Lockdep) -> None:
    """check_deadlock() -> print_deadlock_bug(): same class, no nest_lock."""

    async def scenario(k: Kernel) -> None:
        await _take_two_op_locks("lock")

    f = _only_report(run(scenario, lockdep=graph))
    assert f.signature == "lockdep:recursive:&vm->op_lock"
    assert "vm2->op_lock while holding vm1->op_lock of the same class" in f.message


@pytest.mark.parametrize("how", ["dma_resv_trylock", "ww_mutex_trylock", "spin_trylock", "map"])
def test_trylocks_of_a_held_class_are_silent(graph: Lockdep, how: str) -> None:
    """validate_chain(): dma_resv_trylock(b) with resv a held (and the other trylocks)."""

    async def scenario(k: Kernel) -> None:
        if how == "spin_trylock":
            s1, s2 = SpinLock("s1", "&obj->lock"), SpinLock("s2", "&obj->lock")
            await spin_lock(s1)
            assert await spin_trylock(s2)
            await spin_unlock(s2)
            await spin_unlock(s1)
            return
        if how == "map":
            m1, m2 = LockdepMap("m1", "map"), LockdepMap("m2", "map")
            lock_map_acquire(m1)
            lock_map_acquire_try(m2)
            lock_map_release(m2)
            lock_map_release(m1)
            return
        a, b = DmaResv("a"), DmaResv("b")
        assert await dma_resv_lock(a, None) == 0
        if how == "dma_resv_trylock":
            assert await dma_resv_trylock(b)
        else:
            assert await ww_mutex_trylock(b.lock, None)
        await dma_resv_unlock(b)
        await dma_resv_unlock(a)

    assert run(scenario, lockdep=graph).failures == []


def test_dma_resv_lock_with_a_resv_held_is_recursive_locking(graph: Lockdep) -> None:
    """check_deadlock(): the non-trylock counterpart of dma_resv_trylock(b)."""

    async def scenario(k: Kernel) -> None:
        a, b = DmaResv("a"), DmaResv("b")
        assert await dma_resv_lock(a, None) == 0
        assert await dma_resv_lock(b, None) == 0
        await dma_resv_unlock(b)
        await dma_resv_unlock(a)

    f = _only_report(run(scenario, lockdep=graph))
    assert f.signature == f"lockdep:recursive:{RESV_MUTEX_KEY}"
    assert "b while holding a of the same class" in f.message


def test_lock_of_a_class_held_by_a_trylock_is_recursive_locking(graph: Lockdep) -> None:
    """check_deadlock() looks at every held lock, the trylocked ones too."""

    async def scenario(k: Kernel) -> None:
        a = Mutex("vm1->op_lock", "&vm->op_lock")
        b = Mutex("vm2->op_lock", "&vm->op_lock")
        assert await mutex_trylock(a)
        await mutex_lock(b)
        await mutex_unlock(b)
        await mutex_unlock(a)

    f = _only_report(run(scenario, lockdep=graph))
    assert f.signature == "lockdep:recursive:&vm->op_lock"


async def _a_then_trylock_t_then_c(k: Kernel) -> None:
    a, t, c = Mutex("A"), Mutex("T"), Mutex("C")
    await mutex_lock(a)
    assert await mutex_trylock(t)
    await mutex_lock(c)
    await mutex_unlock(c)
    await mutex_unlock(t)
    await mutex_unlock(a)


def _ordered(first: str, second: str) -> Scenario:
    async def scenario(k: Kernel) -> None:
        x, y = Mutex(first), Mutex(second)
        await mutex_lock(x)
        await mutex_lock(y)
        await mutex_unlock(y)
        await mutex_unlock(x)

    return scenario


def test_lock_under_a_trylock_depends_on_the_trylock(graph: Lockdep) -> None:
    """check_prevs_add(): edges from every trylock on top and the first non-trylock."""
    assert run(_a_then_trylock_t_then_c, lockdep=graph).failures == []
    assert graph.has_edge("T", "C") and graph.has_edge("A", "C")
    f = _only_report(run(_ordered("C", "T"), lockdep=graph))
    assert f.signature == "lockdep:circular:C|T"
    assert "takes T while holding C, but T0 init took C while holding T" in f.message


def test_trylock_itself_depends_on_nothing_held(graph: Lockdep) -> None:
    """validate_chain() skips the trylock: no A -> T edge, so T then A is silent."""
    assert run(_a_then_trylock_t_then_c, lockdep=graph).failures == []
    assert not graph.has_edge("A", "T")
    assert run(_ordered("T", "A"), lockdep=graph).failures == []


# ---------------------------------------------------------------------- allocations
# fs_reclaim_acquire() (mm/page_alloc.c): current_gfp_context(), then if
# __need_reclaim(): fs_reclaim for __GFP_FS, and the mmu_notifier
# invalidate map for every direct-reclaim allocation.


def _alloc_in_signalling_section(gfp: int, scope: str = "") -> Scenario:
    async def scenario(k: Kernel) -> None:
        saves = {
            "nofs": (memalloc_nofs_save, memalloc_nofs_restore),
            "noio": (memalloc_noio_save, memalloc_noio_restore),
            "noreclaim": (memalloc_noreclaim_save, memalloc_noreclaim_restore),
        }
        flags = saves[scope][0]() if scope else 0
        cookie = dma_fence_begin_signalling()
        obj = await kzalloc(64, gfp)
        dma_fence_end_signalling(cookie)
        if scope:
            saves[scope][1](flags)
        kfree(obj)

    return scenario


_MMU_CYCLE = f"lockdep:circular:{DMA_FENCE_MAP_KEY}|{MMU_NOTIFIER_KEY}"


@pytest.mark.parametrize("gfp", [GFP_NOFS, GFP_NOIO], ids=["GFP_NOFS", "GFP_NOIO"])
def test_nofs_and_noio_allocations_in_a_signalling_section_are_reported(
    graph: Lockdep, gfp: int
) -> None:
    """fs_reclaim_acquire() touches __mmu_notifier_invalidate_range_start_map."""
    f = _only_report(run(_alloc_in_signalling_section(gfp), lockdep=graph))
    assert f.signature == _MMU_CYCLE
    assert f"takes {MMU_NOTIFIER_KEY} while holding {DMA_FENCE_MAP_KEY}" in f.message


@pytest.mark.parametrize("gfp", [GFP_NOWAIT, GFP_ATOMIC], ids=["GFP_NOWAIT", "GFP_ATOMIC"])
def test_allocations_without_direct_reclaim_in_a_signalling_section_are_silent(
    graph: Lockdep, gfp: int
) -> None:
    """__need_reclaim(): no __GFP_DIRECT_RECLAIM, no map touched."""
    assert run(_alloc_in_signalling_section(gfp), lockdep=graph).failures == []


@pytest.mark.parametrize("scope", ["nofs", "noio"])
def test_gfp_kernel_in_a_nofs_or_noio_scope_reports_the_mmu_notifier(
    graph: Lockdep, scope: str
) -> None:
    """current_gfp_context(): the scope clears __GFP_FS, so no fs_reclaim, only the notifier."""
    f = _only_report(run(_alloc_in_signalling_section(GFP_KERNEL, scope), lockdep=graph))
    assert f.signature == _MMU_CYCLE
    assert FS_RECLAIM_KEY not in f.extra["cycle"]


def test_gfp_kernel_from_a_pf_memalloc_task_in_a_signalling_section_is_silent(
    graph: Lockdep,
) -> None:
    """__need_reclaim(): a PF_MEMALLOC task (memalloc_noreclaim_save) never reclaims."""
    k = run(_alloc_in_signalling_section(GFP_KERNEL, "noreclaim"), lockdep=graph)
    assert k.failures == []


# ---------------------------------------------------------------------- workqueues
# start_flush_work(): touch_work_lockdep_map() once the work is found queued
# or running (flush and cancel alike); touch_wq_lockdep_map() only
# `!from_cancel` on an ordered or rescuer queue. __cancel_work_sync() grabs
# PENDING first, so a queued, not started work is already_gone.


def _cancel_or_flush_a_running_work(op: str, *, ordered: bool = False) -> Scenario:
    """A work that took L once; its next instance runs (blocked) while init holds L."""

    async def scenario(k: Kernel) -> None:
        if ordered:
            wq = await alloc_ordered_workqueue("ordered", 0)
        else:
            wq = await alloc_workqueue("cleanup", WQ_UNBOUND, 0)
        assert wq is not None
        lock = Mutex("L", "&L")
        started, go = Completion("started"), Completion("go")
        runs = [0]

        async def fn(work: WorkStruct) -> None:
            runs[0] += 1
            if runs[0] == 1:
                await mutex_lock(lock)  # (work_completion) -> L, (wq_completion) -> L
                await mutex_unlock(lock)
                return
            await complete(started)
            await wait_for_completion(go)

        async def other(work: WorkStruct) -> None:
            await complete(started)
            await wait_for_completion(go)

        if op.endswith("delayed"):
            dwork = INIT_DELAYED_WORK(fn, "&job->work")
            await queue_delayed_work(wq, dwork, 0)
            await flush_delayed_work(dwork)
            await queue_delayed_work(wq, dwork, 0)
        else:
            w = INIT_WORK(fn, "&job->work")
            await queue_work(wq, w)
            await flush_work(w)
            target = w
            if ordered:
                # the second work of the queue runs; the first (which took L) is idle
                target = INIT_WORK(other, "&job->other_work")
            await queue_work(wq, target)
        await wait_for_completion(started)
        await mutex_lock(lock)
        await complete(go)
        if op == "cancel_work_sync":
            await cancel_work_sync(target)
        elif op == "disable_work_sync":
            await disable_work_sync(target)
        elif op == "flush_work":
            await flush_work(target)
        elif op == "cancel_delayed":
            await cancel_delayed_work_sync(dwork)
        else:
            await flush_delayed_work(dwork)
        await mutex_unlock(lock)
        await destroy_workqueue(wq)

    return scenario


_WORK_CYCLE = {"&L", "(work_completion)(&job->work)"}


@pytest.mark.parametrize(
    "op", ["cancel_work_sync", "cancel_delayed", "flush_work", "disable_work_sync"]
)
def test_cancel_or_flush_of_a_running_work_with_its_lock_held_is_reported(
    graph: Lockdep, op: str
) -> None:
    """start_flush_work() -> touch_work_lockdep_map(), from cancel too, once the work runs."""
    f = _only_report(run(_cancel_or_flush_a_running_work(op), lockdep=graph))
    assert set(f.extra["cycle"]) == _WORK_CYCLE
    assert "takes (work_completion)(&job->work) while holding &L" in f.message


def _cancel_a_queued_work(op: str) -> Scenario:
    """The work took L once; its next instance is queued behind a blocker (or on its timer)."""

    async def scenario(k: Kernel) -> None:
        wq = await alloc_ordered_workqueue("ordered", 0)
        assert wq is not None
        lock = Mutex("L", "&L")
        started, go = Completion("started"), Completion("go")

        async def fn(work: WorkStruct) -> None:
            await mutex_lock(lock)
            await mutex_unlock(lock)

        async def blocker(work: WorkStruct) -> None:
            await complete(started)
            await wait_for_completion(go)

        dwork = INIT_DELAYED_WORK(fn, "&job->work")
        await queue_delayed_work(wq, dwork, 0)
        await flush_delayed_work(dwork)  # teaches (work_completion)(&job->work) -> L
        block = INIT_WORK(blocker, "&job->blocker")
        await queue_work(wq, block)
        await wait_for_completion(started)
        await mutex_lock(lock)
        if op == "cancel_work_sync":
            await queue_work(wq, dwork.work)  # queued behind the running blocker
            assert await cancel_work_sync(dwork.work)
        else:
            await queue_delayed_work(wq, dwork, 1000)  # on its timer
            assert await cancel_delayed_work_sync(dwork)
        await mutex_unlock(lock)
        await complete(go)
        await destroy_workqueue(wq)

    return scenario


@pytest.mark.parametrize("op", ["cancel_work_sync", "cancel_delayed"])
def test_cancel_of_a_queued_not_started_work_with_its_lock_held_is_silent(
    graph: Lockdep, op: str
) -> None:
    """__cancel_work_sync(): PENDING grabbed, then start_flush_work() is already_gone."""
    assert run(_cancel_a_queued_work(op), lockdep=graph).failures == []


def test_flush_delayed_work_of_a_pending_timer_with_its_lock_held_is_reported(
    graph: Lockdep,
) -> None:
    """flush_delayed_work(): del_timer_sync() + __queue_work(), then touch_work_lockdep_map()."""

    async def scenario(k: Kernel) -> None:
        wq = await alloc_workqueue("cleanup", WQ_UNBOUND, 0)
        assert wq is not None
        lock = Mutex("L", "&L")
        runs = [0]

        async def fn(work: WorkStruct) -> None:
            runs[0] += 1
            if runs[0] == 1:
                await mutex_lock(lock)
                await mutex_unlock(lock)

        dwork = INIT_DELAYED_WORK(fn, "&job->work")
        await queue_delayed_work(wq, dwork, 0)
        await flush_delayed_work(dwork)  # teaches (work_completion)(&job->work) -> L
        await queue_delayed_work(wq, dwork, 1000)  # on its timer
        await mutex_lock(lock)
        assert await flush_delayed_work(dwork)
        await mutex_unlock(lock)
        await destroy_workqueue(wq)

    f = _only_report(run(scenario, lockdep=graph))
    assert set(f.extra["cycle"]) == _WORK_CYCLE


def test_flush_work_in_an_ordered_queue_touches_the_queue_map(graph: Lockdep) -> None:
    """start_flush_work(): touch_wq_lockdep_map() for !from_cancel on an ordered queue."""
    k = run(_cancel_or_flush_a_running_work("flush_work", ordered=True), lockdep=graph)
    f = _only_report(k)
    # (wq_completion)ordered -> (work_completion)(&job->work) -> L from the first run
    assert f.extra["cycle"][0] == "(wq_completion)ordered"
    assert set(f.extra["cycle"]) == {"(wq_completion)ordered", *_WORK_CYCLE}
    assert "takes (wq_completion)ordered while holding &L" in f.message


@pytest.mark.parametrize("op", ["cancel_work_sync", "disable_work_sync"])
def test_cancel_work_sync_in_an_ordered_queue_does_not_touch_the_queue_map(
    graph: Lockdep, op: str
) -> None:
    """start_flush_work(): from_cancel skips touch_wq_lockdep_map() (disable too)."""
    k = run(_cancel_or_flush_a_running_work(op, ordered=True), lockdep=graph)
    assert k.failures == []


# ---------------------------------------------------------------------- ww_acquire_init
# include/linux/ww_mutex.h (v6.13+): ww_acquire_init() does
# mutex_acquire(&ctx->dep_map) and mutex_acquire_nest(&ctx->first_lock_dep_map,
# &ctx->dep_map); ww_acquire_fini() releases both.


def _transaction_taking_m(resv_under_m: bool) -> Scenario:
    async def scenario(k: Kernel) -> None:
        m = Mutex("M", "&M")
        ctx = WwAcquireCtx()
        await ww_acquire_init(ctx, reservation_ww_class)
        await mutex_lock(m)  # after init, before the first resv lock
        if resv_under_m:
            a = DmaResv("a")
            assert await dma_resv_lock(a, ctx) == 0
            await dma_resv_unlock(a)
        await mutex_unlock(m)
        await ww_acquire_fini(ctx)

    return scenario


def _resv_and_m(m_first: bool) -> Scenario:
    async def scenario(k: Kernel) -> None:
        m, b = Mutex("M", "&M"), DmaResv("b")
        if m_first:
            await mutex_lock(m)
            assert await dma_resv_lock(b, None) == 0
            await dma_resv_unlock(b)
            await mutex_unlock(m)
        else:
            assert await dma_resv_lock(b, None) == 0
            await mutex_lock(m)
            await mutex_unlock(m)
            await dma_resv_unlock(b)

    return scenario


def test_lock_taken_after_ww_acquire_init_depends_on_the_resv_class(graph: Lockdep) -> None:
    """first_lock_dep_map: M taken inside the transaction gives resv -> M, so M -> resv inverts."""
    assert run(_transaction_taking_m(False), lockdep=graph).failures == []
    assert graph.has_edge(RESV_MUTEX_KEY, "&M")
    f = _only_report(run(_resv_and_m(m_first=True), lockdep=graph))
    assert f.signature == f"lockdep:circular:&M|{RESV_MUTEX_KEY}"
    assert (
        f"takes {RESV_MUTEX_KEY} while holding &M, but T0 init took &M while holding "
        f"{RESV_MUTEX_KEY}" in f.message
    )


def test_resv_then_lock_after_a_transaction_that_took_the_lock_first_is_silent(
    graph: Lockdep,
) -> None:
    """check_deadlock() returns 2 for the ctx's resv under M: no M -> resv edge is added."""
    assert run(_transaction_taking_m(True), lockdep=graph).failures == []
    assert not graph.has_edge("&M", RESV_MUTEX_KEY)
    assert run(_resv_and_m(m_first=False), lockdep=graph).failures == []


def _lock_inside_a_transaction(how: str) -> Scenario:
    async def scenario(k: Kernel) -> None:
        ctx = WwAcquireCtx()
        a = DmaResv("a")
        await ww_acquire_init(ctx, reservation_ww_class)
        if how == "no ctx":
            assert await dma_resv_lock(a, None) == 0
        elif how == "trylock":
            assert await dma_resv_trylock(a)
        else:
            assert await dma_resv_lock(a, ctx) == 0
        await dma_resv_unlock(a)
        await ww_acquire_fini(ctx)

    return scenario


def test_ww_mutex_lock_without_the_ctx_inside_a_transaction_is_recursive(graph: Lockdep) -> None:
    """check_deadlock(): first_lock_dep_map is of the mutex class, and no nest_lock is given."""
    f = _only_report(run(_lock_inside_a_transaction("no ctx"), lockdep=graph))
    assert f.signature == f"lockdep:recursive:{RESV_MUTEX_KEY}"
    assert "a while holding ctx#1->first_lock_dep_map of the same class" in f.message


@pytest.mark.parametrize("how", ["trylock", "ctx"])
def test_trylock_or_ctx_lock_inside_a_transaction_is_silent(graph: Lockdep, how: str) -> None:
    """validate_chain() skips the trylock; the ctx lock merges into first_lock_dep_map."""
    assert run(_lock_inside_a_transaction(how), lockdep=graph).failures == []


# ---------------------------------------------------------------------- nest_lock
# check_deadlock() remembers the nest_lock only from its position in the
# stack upwards; print_lock_nested_lock_not_held() returns before
# validate_chain().


def test_nest_lock_taken_after_the_same_class_lock_does_not_serialise(graph: Lockdep) -> None:
    """check_deadlock(): X1, then N, then X2 nested under N is recursion on X."""

    async def scenario(k: Kernel) -> None:
        x1, x2, n = LockdepMap("x1", "X"), LockdepMap("x2", "X"), LockdepMap("n", "N")
        lock_acquire(x1)
        lock_acquire(n)
        lock_acquire(x2, nest_lock=n)
        for m in (x2, n, x1):
            lock_release(m)

    f = _only_report(run(scenario, lockdep=graph))
    assert f.signature == "lockdep:recursive:X"


def test_nest_lock_below_the_class_serialises_and_adds_no_edge(graph: Lockdep) -> None:
    """check_deadlock() returns 2: no report and no Y -> X dependency."""

    async def scenario(k: Kernel) -> None:
        x1, x2, n = LockdepMap("x1", "X"), LockdepMap("x2", "X"), LockdepMap("n", "N")
        y = LockdepMap("y", "Y")
        lock_acquire(n)
        lock_acquire(x1, nest_lock=n)
        lock_acquire(y)
        lock_acquire(x2, nest_lock=n)
        for m in (x2, y, x1, n):
            lock_release(m)

    assert run(scenario, lockdep=graph).failures == []
    assert not graph.has_edge("Y", "X")


def _resv_under_someone_elses_ctx(own: bool) -> Scenario:
    async def scenario(k: Kernel) -> None:
        ctx = WwAcquireCtx()
        b = DmaResv("b")
        await ww_acquire_init(ctx, reservation_ww_class)

        async def other() -> None:
            m = Mutex("M", "&M")
            mine = WwAcquireCtx()
            use = ctx
            if own:
                await ww_acquire_init(mine, reservation_ww_class)
                use = mine
            await mutex_lock(m)
            assert await dma_resv_lock(b, use) == 0
            await dma_resv_unlock(b)
            await mutex_unlock(m)
            if own:
                await ww_acquire_fini(mine)

        t = k.spawn(other, name="other")
        await t.join()
        await ww_acquire_fini(ctx)

    return scenario


def test_resv_lock_under_a_ctx_the_thread_does_not_hold_is_reported(graph: Lockdep) -> None:
    """print_lock_nested_lock_not_held(), before validate_chain(): no M -> resv edge."""
    f = _only_report(run(_resv_under_someone_elses_ctx(own=False), lockdep=graph))
    assert f.signature == "lockdep:nest-not-held:reservation_ww_class_acquire"
    assert not graph.has_edge("&M", RESV_MUTEX_KEY)


def test_resv_lock_under_the_threads_own_ctx_is_silent(graph: Lockdep) -> None:
    """__lock_is_held(nest_lock): the thread's own ctx."""
    assert run(_resv_under_someone_elses_ctx(own=True), lockdep=graph).failures == []


# ---------------------------------------------------------------------- held checks
# match_held_lock(): an entry that merged nested locks (references) matches
# every lock of its class; lockdep_assert_held() is lockdep's answer.


def _assert_b_held_in_a_transaction(lock_a: bool) -> Scenario:
    async def scenario(k: Kernel) -> None:
        ctx = WwAcquireCtx()
        a, b = DmaResv("a"), DmaResv("b")
        await ww_acquire_init(ctx, reservation_ww_class)
        if lock_a:
            assert await dma_resv_lock(a, ctx) == 0
        dma_resv_assert_held(b)  # b is not locked
        if lock_a:
            await dma_resv_unlock(a)
        await ww_acquire_fini(ctx)

    return scenario


def test_dma_resv_assert_held_once_the_ctx_holds_a_resv_is_silent(graph: Lockdep) -> None:
    """match_held_lock(): a merged into first_lock_dep_map, which matches b's class."""
    assert run(_assert_b_held_in_a_transaction(True), lockdep=graph).failures == []


def test_dma_resv_assert_held_before_the_first_ctx_lock_warns(graph: Lockdep) -> None:
    """match_held_lock(): first_lock_dep_map has no references yet, so only itself matches."""
    k = run(_assert_b_held_in_a_transaction(False), lockdep=graph)
    assert [f.kind for f in k.failures] == ["warn"]
    assert k.failures[0].signature.startswith("warn:dma_resv_assert_held:")


def _assert_unheld(k: Kernel) -> Awaitable[None]:
    async def body() -> None:
        lockdep_assert_held(Mutex("slots_lock"))

    return body()


def test_lockdep_assert_held_warns_with_lockdep_on(graph: Lockdep) -> None:
    """lockdep_assert_held() = WARN_ON(!lockdep_is_held())."""
    k = run(_assert_unheld, lockdep=graph)
    assert [f.kind for f in k.failures] == ["warn"]
    assert "lockdep_assert_held(slots_lock)" in k.failures[0].message


def test_lockdep_assert_held_checks_nothing_with_lockdep_off() -> None:
    """!CONFIG_LOCKDEP: lockdep_assert_held() is empty."""
    assert run(_assert_unheld, config=KernelConfig(lockdep=False)).failures == []


def _assert_on_map(read: int, assertion: Callable[[object], None]) -> Scenario:
    async def scenario(k: Kernel) -> None:
        m = LockdepMap("rw", "rwsem")
        if read >= 0:
            lock_acquire(m, read=read)
        assertion(m)
        if read >= 0:
            lock_release(m)

    return scenario


def test_lockdep_assert_not_held_of_a_held_map_warns(graph: Lockdep) -> None:
    """lockdep_assert_not_held() = WARN_ON(lockdep_is_held() == LOCK_STATE_HELD)."""
    k = run(_assert_on_map(0, lockdep_assert_not_held), lockdep=graph)
    assert [f.kind for f in k.failures] == ["warn"]
    assert "lockdep_assert_not_held(rw)" in k.failures[0].message


def test_lockdep_assert_not_held_of_a_free_map_is_silent(graph: Lockdep) -> None:
    assert run(_assert_on_map(-1, lockdep_assert_not_held), lockdep=graph).failures == []


def test_lockdep_assert_held_write_of_a_read_held_map_warns(graph: Lockdep) -> None:
    """lockdep_assert_held_write() = lockdep_is_held_type(l, 0)."""
    k = run(_assert_on_map(1, lockdep_assert_held_write), lockdep=graph)
    assert [f.kind for f in k.failures] == ["warn"]
    assert "lockdep_assert_held_write(rw)" in k.failures[0].message


def test_lockdep_assert_held_write_of_a_write_held_map_is_silent(graph: Lockdep) -> None:
    assert run(_assert_on_map(0, lockdep_assert_held_write), lockdep=graph).failures == []


# ---------------------------------------------------------------------- recursive reads
# check_deadlock(): `next->read == 2 && prev->read` continues (since v5.10),
# so check_prevs_add() then adds the held locks' edges to the reader.


def _read_m_reread(m_held_for_reread: bool) -> Scenario:
    async def scenario(k: Kernel) -> None:
        rw, m = LockdepMap("rw", "rwlock"), LockdepMap("m", "M")
        lock_acquire(rw, read=1)
        lock_acquire(m)
        if not m_held_for_reread:
            lock_release(m)
        lock_acquire(rw, read=2)  # recursive read of the held reader's class
        lock_release(rw)
        if m_held_for_reread:
            lock_release(m)
        lock_release(rw)

    return scenario


async def _write_then_m(k: Kernel) -> None:
    rw, m = LockdepMap("rw", "rwlock"), LockdepMap("m", "M")
    lock_acquire(rw)
    lock_acquire(m)
    lock_release(m)
    lock_release(rw)


def test_recursive_read_after_read_depends_on_the_locks_held(graph: Lockdep) -> None:
    """check_deadlock() continues; check_prevs_add() adds M -(ER)-> rw, then rw -> M inverts."""
    assert run(_read_m_reread(True), lockdep=graph).failures == []
    assert graph.has_edge("M", "rwlock")
    f = _only_report(run(_write_then_m, lockdep=graph))
    assert f.signature == "lockdep:circular:M|rwlock"
    assert "takes M while holding rwlock" in f.message


def test_recursive_read_after_read_without_m_held_adds_nothing(graph: Lockdep) -> None:
    """The same re-read with M released first: no M -> rw edge, the writer order is fine."""
    assert run(_read_m_reread(False), lockdep=graph).failures == []
    assert run(_write_then_m, lockdep=graph).failures == []


# ---------------------------------------------------------------------- fence locks
# dma_fence_init() takes the caller's lock; each spin_lock_init() site is its
# own class. The model's private lock (lock=None) is classed by the caller's line.


def _make_fence(ops: DmaFenceOps, ctx: int) -> DmaFence:
    return DmaFence(ops, None, ctx, 1)  # one init site for every fence made here


def _signal_b_from_a_callback(same_site: bool) -> Scenario:
    async def scenario(k: Kernel) -> None:
        ops = DmaFenceOps()
        ctx = dma_fence_context_alloc(2)
        if same_site:
            a, b = _make_fence(ops, ctx), _make_fence(ops, ctx + 1)
        else:
            a = DmaFence(ops, None, ctx, 1)
            b = DmaFence(ops, None, ctx + 1, 1)

        async def signal_b(fence: DmaFence, cb: DmaFenceCb) -> None:
            await dma_fence_signal(b)  # under a's lock

        assert await dma_fence_add_callback(a, DmaFenceCb(), signal_b) == 0
        await dma_fence_signal(a)
        await dma_fence_put(a)
        await dma_fence_put(b)

    return scenario


def test_fences_without_a_lock_from_two_sites_do_not_share_a_class(graph: Lockdep) -> None:
    """Two init sites, two classes: b's lock under a's lock is no recursion."""
    assert run(_signal_b_from_a_callback(False), lockdep=graph).failures == []


def test_fences_without_a_lock_from_one_site_share_its_class(graph: Lockdep) -> None:
    """check_deadlock(): one init site, one class, so nesting two of them is reported."""
    f = _only_report(run(_signal_b_from_a_callback(True), lockdep=graph))
    assert f.signature.startswith("lockdep:recursive:&fence->lock (")
    assert "in _make_fence)" in f.signature
