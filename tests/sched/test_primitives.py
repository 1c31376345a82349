"""Mutexes, spinlocks, refcount_t, kref, atomics, completions, WARN."""

from __future__ import annotations

from panthor_testbed.sched import (
    BUG_ON,
    WARN_ON,
    WARN_ON_ONCE,
    Atomic,
    Kernel,
    KernelConfig,
    Kref,
    Mutex,
    RefCount,
    RoundRobin,
    SimThread,
    SyncSpinLock,
    atomic_cmpxchg,
    atomic_dec_and_test,
    atomic_inc_return,
    clear_bit,
    drm_WARN_ON,
    ffs,
    ffz,
    fls64,
    kref_get,
    kref_get_unless_zero,
    kref_init,
    kref_put,
    mutex_destroy,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    preempt,
    refcount_dec,
    refcount_dec_and_mutex_lock,
    refcount_dec_and_test,
    refcount_dec_not_one,
    refcount_inc,
    refcount_inc_not_zero,
    refcount_read,
    refcount_set,
    set_bit,
)
from panthor_testbed.sched import test_and_set_bit as _test_and_set_bit
from panthor_testbed.sched.core.harness import explore_all, run
from panthor_testbed.sched.locking.refcount import REFCOUNT_SATURATED


def test_mutex_excludes_and_hands_over() -> None:
    inside = [0]
    worst = [0]

    async def scenario(k: Kernel) -> None:
        m = Mutex("m")

        async def worker() -> None:
            for _ in range(2):
                await mutex_lock(m)
                inside[0] += 1
                worst[0] = max(worst[0], inside[0])
                await preempt()
                inside[0] -= 1
                await mutex_unlock(m)

        for i in range(3):
            k.spawn(worker, name=f"w{i}")

    result = explore_all(scenario, preemption_bound=2, max_schedules=400)
    assert all(k.primary_failure is None for k, _ in result.failing)
    assert worst[0] == 1


def test_trylock() -> None:
    async def scenario(k: Kernel) -> None:
        m = Mutex("m")
        assert await mutex_trylock(m)
        assert not await mutex_trylock(m)
        await mutex_unlock(m)

    assert run(scenario).failures == []


def test_unlock_by_non_owner_warns() -> None:
    async def scenario(k: Kernel) -> None:
        m = Mutex("m")
        await mutex_lock(m)

        async def thief() -> None:
            await mutex_unlock(m)

        t = k.spawn(thief, name="thief")
        await t.join()

    f = run(scenario).primary_failure
    assert f is not None and f.kind == "warn"
    assert "T1 thief unlocks mutex m held by T0 init" in f.message


def test_unlock_of_unlocked_mutex_and_destroy_while_locked_warn() -> None:
    async def unlocked(k: Kernel) -> None:
        await mutex_unlock(Mutex("m"))

    async def destroy_locked(k: Kernel) -> None:
        m = Mutex("m")
        await mutex_lock(m)
        mutex_destroy(m)

    assert "held by nobody" in run(unlocked).failures[0].message
    assert "mutex_destroy(m) while held" in run(destroy_locked).failures[0].message


def test_warn_count_mode_keeps_running() -> None:
    async def scenario(k: Kernel) -> None:
        WARN_ON(1)
        drm_WARN_ON(None, True)
        for _ in range(3):
            WARN_ON_ONCE(True)
        k.objects["reached"] = True

    k = run(scenario, config=KernelConfig(warn_fatal=False))
    assert [f.kind for f in k.failures] == ["warn", "warn", "warn"]
    assert k.objects.get("reached")
    assert "WARN_ON(1)" in k.failures[0].message
    stopped = run(scenario)
    assert len(stopped.failures) == 1 and "reached" not in stopped.objects


def test_bug_on_is_an_oops() -> None:
    async def scenario(k: Kernel) -> None:
        BUG_ON(1 + 1 == 2)

    f = run(scenario).primary_failure
    assert f is not None and f.kind == "exception" and "kernel BUG at" in f.message


def test_refcount_semantics() -> None:
    async def scenario(k: Kernel) -> None:
        r = RefCount(0, "r")
        assert not await refcount_inc_not_zero(r)
        await refcount_set(r, 1)
        assert await refcount_inc_not_zero(r)
        assert await refcount_read(r) == 2
        assert await refcount_dec_not_one(r)  # 2 -> 1
        assert not await refcount_dec_not_one(r)  # stays 1
        assert await refcount_dec_and_test(r)  # 1 -> 0

    assert run(scenario).failures == []


def test_refcount_misuse_warns_and_saturates() -> None:
    async def add_on_zero(k: Kernel) -> None:
        r = RefCount(0, "r")
        await refcount_inc(r)
        k.objects["r"] = r.refs

    async def underflow(k: Kernel) -> None:
        r = RefCount(0, "r")
        await refcount_dec_and_test(r)

    async def hit_zero(k: Kernel) -> None:
        r = RefCount(1, "r")
        await refcount_dec(r)

    cfg = KernelConfig(warn_fatal=False)
    k = run(add_on_zero, config=cfg)
    assert "refcount_t: addition on 0; use-after-free." in k.failures[0].message
    assert k.objects["r"] == REFCOUNT_SATURATED
    assert "underflow; use-after-free." in run(underflow).failures[0].message
    assert "decrement hit 0; leaking memory." in run(hit_zero).failures[0].message


def test_refcount_dec_and_mutex_lock() -> None:
    async def scenario(k: Kernel) -> None:
        r = RefCount(2, "active_cnt")
        m = Mutex("slots_lock")
        assert not await refcount_dec_and_mutex_lock(r, m)  # 2 -> 1 without the lock
        assert not m.is_locked()
        assert await refcount_dec_and_mutex_lock(r, m)  # 1 -> 0 under the lock
        assert m.owner is k.current and r.refs == 0
        await mutex_unlock(m)

    assert run(scenario).failures == []


def test_kref_release_runs_at_zero() -> None:
    released: list[str] = []

    async def scenario(k: Kernel) -> None:
        kref = Kref("the-object", "obj")
        await kref_init(kref)
        await kref_get(kref)

        async def release(kr: Kref) -> None:
            released.append(kr.container)

        assert await kref_put(kref, release) == 0
        assert await kref_put(kref, release) == 1
        assert not await kref_get_unless_zero(kref)

    assert run(scenario).failures == []
    assert released == ["the-object"]


def test_atomics_and_bitops() -> None:
    async def scenario(k: Kernel) -> None:
        a = Atomic(1, "a")
        assert await atomic_inc_return(a) == 2
        assert await atomic_cmpxchg(a, 5, 9) == 2 and a.v == 2
        assert await atomic_cmpxchg(a, 2, 9) == 2 and a.v == 9
        b = Atomic(0, "b")
        assert await atomic_dec_and_test(Atomic(1))
        await set_bit(3, b)
        assert await _test_and_set_bit(3, b)
        await clear_bit(3, b)
        assert b.v == 0

    assert run(scenario).failures == []
    assert ffz(0b0111) == 3 and ffs(0b1000) == 4 and ffs(0) == 0 and fls64(0x8000) == 16


def test_mutex_fairness_allows_stealing_but_no_starvation_in_canonical() -> None:
    order: list[str] = []

    async def scenario(k: Kernel) -> None:
        m = Mutex("m")

        async def worker(tag: str) -> None:
            await mutex_lock(m)
            order.append(tag)
            await mutex_unlock(m)

        await mutex_lock(m)
        for tag in "abc":
            k.spawn(worker, tag, name=tag)
        await preempt()
        await preempt()
        await preempt()
        await mutex_unlock(m)

    run(scenario, strategy=RoundRobin())
    assert sorted(order) == ["a", "b", "c"]


def test_spinlock_held_across_yield_points_excludes_and_makes_contenders_spin() -> None:
    """``async with`` a SyncSpinLock: the section may yield; a contender waits (spins)
    until it is released, and holding it is atomic context."""
    inside = [0]
    worst = [0]
    spun = [False]

    async def scenario(k: Kernel) -> None:
        lock = SyncSpinLock("l", "&l")
        threads: list[SimThread] = []

        async def worker() -> None:
            async with lock:
                cur = k.current
                assert cur is not None and cur.preempt_count == 1
                inside[0] += 1
                worst[0] = max(worst[0], inside[0])
                await preempt()
                spun[0] = spun[0] or any(t.blocked_on is lock.spinners for t in threads)
                inside[0] -= 1
            cur = k.current
            assert cur is not None and cur.preempt_count == 0

        threads.extend(k.spawn(worker, name=f"w{i}") for i in range(2))
        for t in threads:
            await t.join()

    r = explore_all(scenario, preemption_bound=2)
    assert r.complete and not r.failing, [kk.primary_failure for kk, _ in r.failing]
    assert worst[0] == 1 and spun[0]


def test_sync_acquire_of_a_spinlock_held_across_a_yield_point_is_a_model_bug() -> None:
    async def scenario(k: Kernel) -> None:
        lock = SyncSpinLock("l", "&l")

        async def holder() -> None:
            async with lock:
                await k.sleep_ns(1000)

        async def sync_taker() -> None:
            with lock:
                pass

        t = k.spawn(holder, name="holder")
        await preempt()
        await k.spawn(sync_taker, name="taker").join()
        await t.join()

    k = run(scenario)
    f = k.primary_failure
    assert f is not None and f.signature == "invariant:spinlock-yield:&l", f
