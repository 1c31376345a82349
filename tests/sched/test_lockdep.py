"""Lockdep: classes, the dependency graph across runs, reports, annotations."""

from __future__ import annotations

from panthor_testbed.sched import (
    GFP_ATOMIC,
    GFP_KERNEL,
    Kernel,
    KernelConfig,
    Mutex,
    SpinLock,
    dma_fence_begin_signalling,
    dma_fence_end_signalling,
    dma_fence_might_wait,
    kfree,
    kzalloc,
    lockdep_assert_held,
    might_sleep,
    mutex_lock,
    mutex_lock_nested,
    mutex_trylock,
    mutex_unlock,
    spin_lock,
    spin_unlock,
)
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.locking.lockdep import (
    DMA_FENCE_MAP_KEY,
    FS_RECLAIM_KEY,
    MMU_NOTIFIER_KEY,
    RESV_ACQUIRE_KEY,
    RESV_MUTEX_KEY,
    Lockdep,
    LockdepMap,
    lock_acquire,
    lock_release,
)


def _kinds(k: Kernel) -> list[str]:
    return [f.kind for f in k.failures]


def _ordered(first: str, second: str) -> object:
    async def scenario(k: Kernel) -> None:
        a, b = Mutex(first), Mutex(second)
        await mutex_lock(a)
        await mutex_lock(b)
        await mutex_unlock(b)
        await mutex_unlock(a)

    return scenario


def test_inversion_across_two_runs_is_reported_without_a_deadlock(graph: Lockdep) -> None:
    first = run(_ordered("A", "B"), lockdep=graph)  # type: ignore[arg-type]
    assert first.failures == []
    second = run(_ordered("B", "A"), lockdep=graph, run_id=1)  # type: ignore[arg-type]
    assert _kinds(second) == ["lockdep"]
    f = second.failures[0]
    assert "possible circular locking dependency detected" in f.message
    assert "WARNING: possible circular locking dependency detected" in f.report
    assert "the existing dependency chain (in reverse order) is:" in f.report
    assert "-> #1 (B):" in f.report and "-> #0 (A):" in f.report
    assert "taken by T0 init at step" in f.report and "of run 0" in f.report
    assert "*** DEADLOCK ***" in f.report
    assert f.signature == "lockdep:circular:A|B"
    # the edge from the earlier run travels with the report (replays can seed it)
    assert f.extra["lockdep_edges"] == [
        {"from": "A", "to": "B", "types": 1, "origin": f.extra["lockdep_edges"][0]["origin"]}
    ]
    # reported once per graph
    third = run(_ordered("B", "A"), lockdep=graph)  # type: ignore[arg-type]
    assert third.failures == []


def test_three_lock_chain_names_the_chain(graph: Lockdep) -> None:
    run(_ordered("A", "B"), lockdep=graph)  # type: ignore[arg-type]
    run(_ordered("B", "C"), lockdep=graph)  # type: ignore[arg-type]
    k = run(_ordered("C", "A"), lockdep=graph)  # type: ignore[arg-type]
    f = k.failures[0]
    assert f.kind == "lockdep"
    assert "the chain A -> B -> C exists" in f.message
    assert "Chain exists of:" in f.report
    assert f.signature == "lockdep:circular:A|B|C"


def test_same_class_twice_is_recursive_locking_unless_nested(graph: Lockdep) -> None:
    async def two_of_a_class(k: Kernel, nested: bool) -> None:
        a = Mutex("vm1.op_lock", "&vm->op_lock")
        b = Mutex("vm2.op_lock", "&vm->op_lock")
        await mutex_lock(a)
        if nested:
            await mutex_lock_nested(b, 1)
        else:
            await mutex_lock(b)
        await mutex_unlock(b)
        await mutex_unlock(a)

    k = run(two_of_a_class, False, lockdep=graph)
    assert _kinds(k) == ["lockdep"]
    assert "possible recursive locking detected" in k.failures[0].message
    assert "May be due to missing lock nesting notation" in k.failures[0].report
    assert run(two_of_a_class, True, lockdep=Lockdep()).failures == []


def test_trylock_adds_no_dependency(graph: Lockdep) -> None:
    async def scenario(k: Kernel) -> None:
        a, b = Mutex("A"), Mutex("B")
        await mutex_lock(a)
        assert await mutex_trylock(b)
        await mutex_unlock(b)
        await mutex_unlock(a)

    run(scenario, lockdep=graph)
    assert not graph.has_edge("A", "B")
    assert run(_ordered("B", "A"), lockdep=graph).failures == []  # type: ignore[arg-type]


def test_recursive_readers_do_not_form_a_strong_cycle(graph: Lockdep) -> None:
    rw = LockdepMap("rw", "rwlock")
    m = LockdepMap("m", "plain")

    async def reader_then_plain(k: Kernel) -> None:
        lock_acquire(rw, read=2)
        lock_acquire(m)
        lock_release(m)
        lock_release(rw)

    async def plain_then_reader(k: Kernel) -> None:
        lock_acquire(m)
        lock_acquire(rw, read=2)
        lock_release(rw)
        lock_release(m)

    async def plain_then_writer(k: Kernel) -> None:
        lock_acquire(m)
        lock_acquire(rw)
        lock_release(rw)
        lock_release(m)

    assert run(reader_then_plain, lockdep=graph).failures == []
    # rw -(SN)-> m -(NR)-> rw enters rw as a recursive reader and leaves it as
    # a reader: not a deadlock (lockdep-design.rst, "strong" paths)
    assert run(plain_then_reader, lockdep=graph).failures == []
    # but m -(NN)-> rw (a writer) closes a real cycle
    k = run(plain_then_writer, lockdep=graph)
    assert _kinds(k) == ["lockdep"]


def test_lock_held_at_thread_exit_is_reported(graph: Lockdep) -> None:
    async def scenario(k: Kernel) -> None:
        lock = Mutex("leaky")

        async def forgetful() -> None:
            await mutex_lock(lock)

        k.spawn(forgetful, name="forgetful")

    k = run(scenario, lockdep=graph)
    assert _kinds(k) == ["lockdep"]
    assert k.failures[0].message == "T1 forgetful exited with lock(s) held: leaky"


def test_lockdep_assert_held_warns(graph: Lockdep) -> None:
    async def scenario(k: Kernel, take: bool) -> None:
        lock = Mutex("slots_lock")
        if take:
            await mutex_lock(lock)
        lockdep_assert_held(lock)
        if take:
            await mutex_unlock(lock)

    assert run(scenario, True, lockdep=graph).failures == []
    k = run(scenario, False, lockdep=graph)
    assert _kinds(k) == ["warn"]
    assert "lockdep_assert_held(slots_lock)" in k.failures[0].message


def test_boot_priming_matches_dma_resv_lockdep() -> None:
    g = Lockdep()
    assert g.has_edge("&mm->mmap_lock", RESV_ACQUIRE_KEY)
    assert g.has_edge(RESV_ACQUIRE_KEY, RESV_MUTEX_KEY)
    assert g.has_edge(RESV_MUTEX_KEY, FS_RECLAIM_KEY)
    assert g.has_edge(FS_RECLAIM_KEY, "&mapping->i_mmap_rwsem")
    assert g.has_edge(FS_RECLAIM_KEY, MMU_NOTIFIER_KEY)
    assert g.has_edge(MMU_NOTIFIER_KEY, DMA_FENCE_MAP_KEY)
    assert g.edge_count() == 6


def test_gfp_kernel_allocation_in_a_signalling_section_is_reported(graph: Lockdep) -> None:
    async def scenario(k: Kernel, gfp: int) -> None:
        cookie = dma_fence_begin_signalling()
        obj = await kzalloc(64, gfp)
        dma_fence_end_signalling(cookie)
        kfree(obj)

    assert run(scenario, GFP_ATOMIC, lockdep=graph).failures == []
    k = run(scenario, GFP_KERNEL, lockdep=graph)
    assert _kinds(k) == ["lockdep"]
    f = k.failures[0]
    assert "takes fs_reclaim while holding dma_fence_map" in f.message
    assert f"{FS_RECLAIM_KEY} -> {MMU_NOTIFIER_KEY} -> {DMA_FENCE_MAP_KEY}" in f.message

    # an allocation outside a section is fine
    async def outside(k: Kernel) -> None:
        kfree(await kzalloc(64, GFP_KERNEL))

    assert run(outside, lockdep=graph).failures == []


def test_fence_wait_with_a_lock_taken_in_a_signalling_section(graph: Lockdep) -> None:
    lock = Mutex("vm->op_lock", "&vm->op_lock")

    async def signaller(k: Kernel) -> None:
        cookie = dma_fence_begin_signalling()
        await mutex_lock(lock)
        await mutex_unlock(lock)
        dma_fence_end_signalling(cookie)

    async def waiter(k: Kernel) -> None:
        await mutex_lock(lock)
        dma_fence_might_wait()  # waiting on a fence while holding the lock
        await mutex_unlock(lock)

    assert run(signaller, lockdep=graph).failures == []
    k = run(waiter, lockdep=graph)
    assert _kinds(k) == ["lockdep"]
    assert "dma_fence_map" in k.failures[0].message


def test_locks_held_before_a_signalling_section_get_no_edge(graph: Lockdep) -> None:
    lock = Mutex("outer")

    async def scenario(k: Kernel) -> None:
        await mutex_lock(lock)
        cookie = dma_fence_begin_signalling()
        dma_fence_end_signalling(cookie)
        await mutex_unlock(lock)

    run(scenario, lockdep=graph)
    assert not graph.has_edge("outer", DMA_FENCE_MAP_KEY)


def test_might_sleep_in_atomic_context(graph: Lockdep) -> None:
    async def scenario(k: Kernel) -> None:
        s = SpinLock("irq_lock")
        await spin_lock(s)
        might_sleep()
        await spin_unlock(s)

    k = run(scenario, lockdep=graph)
    assert _kinds(k) == ["lockdep"]
    assert "sleeping function called from invalid context" in k.failures[0].message


def test_lockdep_can_be_disabled(graph: Lockdep) -> None:
    k = run(_ordered("B", "A"), config=KernelConfig(lockdep=False))  # type: ignore[arg-type]
    assert k.lockdep is None and k.failures == []


def test_seeded_edges_reproduce_a_cross_run_report() -> None:
    g1 = Lockdep()
    run(_ordered("A", "B"), lockdep=g1)  # type: ignore[arg-type]
    report = run(_ordered("B", "A"), lockdep=g1, run_id=1)  # type: ignore[arg-type]
    edges = report.failures[0].extra["lockdep_edges"]
    g2 = Lockdep()
    g2.seed_edges(edges)
    again = run(_ordered("B", "A"), lockdep=g2, run_id=1)  # type: ignore[arg-type]
    assert [f.report for f in again.failures] == [f.report for f in report.failures]


def test_process_wide_graph_outlives_runs_until_reset() -> None:
    from panthor_testbed.sched.locking.lockdep import default_lockdep, reset_lockdep

    reset_lockdep()
    run(_ordered("P", "Q"), lockdep=default_lockdep())  # type: ignore[arg-type]
    assert default_lockdep().has_edge("P", "Q")
    fresh = reset_lockdep()
    assert fresh is default_lockdep() and not fresh.has_edge("P", "Q")
    assert fresh.edge_count() == 6  # only the boot priming
