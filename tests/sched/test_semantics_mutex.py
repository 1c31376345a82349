"""Mutex and spinlock semantics other tests take for granted (kernel/locking/mutex.c,
spinlock.c, CONFIG_DEBUG_MUTEXES / CONFIG_DEBUG_ATOMIC_SLEEP).

Each test names one behaviour and fails when it is changed (see docs/mutation.md).
"""

from __future__ import annotations

from panthor_testbed.sched import (
    Completion,
    Kernel,
    Mutex,
    SimThread,
    SpinLock,
    complete,
    mutex_is_locked,
    mutex_lock,
    mutex_unlock,
    preempt,
    spin_lock,
    spin_trylock,
    spin_unlock,
    wait_for_completion,
)
from panthor_testbed.sched.core.harness import aexplore_all, arun


async def test_mutex_is_locked_while_held_by_anyone() -> None:
    """``mutex_is_locked()``: true from the lock to the unlock, whoever holds it."""
    seen: list[bool] = []

    async def scenario(k: Kernel) -> None:
        m = Mutex("m", "&m")
        seen.append(mutex_is_locked(m))
        await mutex_lock(m)
        seen.append(mutex_is_locked(m))
        await mutex_unlock(m)
        seen.append(mutex_is_locked(m))
        locked, done = Completion("locked"), Completion("done")

        async def other() -> None:
            await mutex_lock(m)
            await complete(locked)
            await wait_for_completion(done)
            await mutex_unlock(m)

        t = k.spawn(other, name="other")
        await wait_for_completion(locked)
        seen.append(mutex_is_locked(m))
        await complete(done)
        await t.join()

    k = await arun(scenario)
    assert not k.failures, [f.message for f in k.failures]
    assert seen == [False, True, False, True]


async def test_abba_deadlock_report_names_the_holder_of_each_mutex() -> None:
    """A mutex's waiters wait for its owner (``__mutex_owner()``): the deadlock report says
    which thread holds each lock the blocked threads wait for."""

    async def scenario(k: Kernel) -> None:
        a, b = Mutex("a", "&a"), Mutex("b", "&b")
        got_a, got_b = Completion("got_a"), Completion("got_b")

        async def t1() -> None:
            await mutex_lock(a)
            await complete(got_a)
            await wait_for_completion(got_b)
            await mutex_lock(b)

        async def t2() -> None:
            await mutex_lock(b)
            await complete(got_b)
            await wait_for_completion(got_a)
            await mutex_lock(a)

        k.spawn(t1, name="t1")
        k.spawn(t2, name="t2")

    k = await arun(scenario)
    f = k.primary_failure
    assert f is not None and f.kind == "deadlock", f
    parts = sorted(f.message.split("; "))
    assert len(parts) == 2
    assert "mutex b" in parts[0] and "held by T2 t2" in parts[0], parts
    assert "mutex a" in parts[1] and "held by T1 t1" in parts[1], parts


async def test_spin_lock_contender_spins_until_the_holder_unlocks() -> None:
    """``spin_lock()``: mutual exclusion with a section that has yield points; the
    contender waits (spins) in every interleaving until ``spin_unlock()``."""
    worst = [0]
    spun = [False]

    async def scenario(k: Kernel) -> None:
        lock = SpinLock("l", "&l")
        inside = [0]
        threads: list[SimThread] = []

        async def worker() -> None:
            await spin_lock(lock)
            inside[0] += 1
            worst[0] = max(worst[0], inside[0])
            await preempt()
            spun[0] = spun[0] or any(t.blocked_on is not None for t in threads)
            inside[0] -= 1
            await spin_unlock(lock)

        threads.extend(k.spawn(worker, name=f"w{i}") for i in range(2))
        for t in threads:
            await t.join()

    r = await aexplore_all(scenario, preemption_bound=2)
    assert r.complete and not r.failing, [kk.primary_failure for kk, _ in r.failing]
    assert worst[0] == 1 and spun[0]


async def test_spin_trylock_disables_preemption_until_spin_unlock() -> None:
    """``spin_trylock()`` = ``preempt_disable()`` + ``do_raw_spin_trylock()``: a sleeping
    call under a trylocked spinlock is "sleeping function called from invalid context";
    after ``spin_unlock()`` (``preempt_enable()``) the same call is fine."""
    counts: list[int] = []

    async def scenario(k: Kernel) -> None:
        s, m = SpinLock("s", "&s"), Mutex("m", "&m")
        cur = k.current
        assert cur is not None
        assert await spin_trylock(s)
        counts.append(cur.preempt_count)
        await spin_unlock(s)
        counts.append(cur.preempt_count)
        await mutex_lock(m)  # preemptible again: silent
        await mutex_unlock(m)
        assert await spin_trylock(s)
        await mutex_lock(m)  # might_sleep() in atomic context
        await mutex_unlock(m)
        await spin_unlock(s)

    k = await arun(scenario)
    assert counts == [1, 0]
    assert [f.signature.split(":")[:2] for f in k.failures] == [["lockdep", "atomic-sleep"]]


async def test_spin_unlock_enables_preemption_again() -> None:
    """``spin_lock()``/``spin_unlock()`` pair ``preempt_disable()``/``preempt_enable()``:
    after two lock/unlock rounds the task is preemptible and may sleep."""
    counts: list[int] = []

    async def scenario(k: Kernel) -> None:
        s, m = SpinLock("s", "&s"), Mutex("m", "&m")
        cur = k.current
        assert cur is not None
        for _ in range(2):
            await spin_lock(s)
            counts.append(cur.preempt_count)
            await spin_unlock(s)
            counts.append(cur.preempt_count)
        await mutex_lock(m)
        await mutex_unlock(m)

    k = await arun(scenario)
    assert not k.failures, [f.message for f in k.failures]
    assert counts == [1, 0, 1, 0]
