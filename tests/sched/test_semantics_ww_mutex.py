"""ww_mutex semantics that other tests take for granted (kernel/locking/ww_mutex.h).

Each test names one behaviour and fails when it is changed (see docs/mutation.md).
"""

from __future__ import annotations

import pytest

from panthor_testbed.sched import (
    DEFINE_WD_CLASS,
    DEFINE_WW_CLASS,
    Completion,
    DmaResv,
    Kernel,
    WwAcquireCtx,
    WwClass,
    WwMutex,
    complete,
    dma_resv_fini,
    dma_resv_lock,
    dma_resv_unlock,
    reservation_ww_class,
    wait_for_completion,
    ww_acquire_fini,
    ww_acquire_init,
    ww_mutex_destroy,
    ww_mutex_lock,
    ww_mutex_lock_slow,
    ww_mutex_set_deadlock_injection,
    ww_mutex_unlock,
)
from panthor_testbed.sched.core.harness import arun
from panthor_testbed.sched.errno import EDEADLK

WD = DEFINE_WD_CLASS("wd_sem")
WW = DEFINE_WW_CLASS("ww_sem")


def clean(k: Kernel) -> None:
    assert not k.failures, [f.message for f in k.failures]


async def test_reservation_ww_class_is_wait_die() -> None:
    """``DEFINE_WD_CLASS(reservation_ww_class)`` (dma-resv.c): a younger context holding a
    resv dies at once (-EDEADLK) on a resv held by an older one, instead of waiting."""
    got: dict[str, int] = {}

    async def scenario(k: Kernel) -> None:
        ww_mutex_set_deadlock_injection(k, False)
        a, b = DmaResv("A"), DmaResv("B")
        old_locked = Completion("old_locked")

        async def old() -> None:
            ctx = WwAcquireCtx()
            await ww_acquire_init(ctx, reservation_ww_class)
            assert await dma_resv_lock(a, ctx) == 0
            await complete(old_locked)
            await k.sleep_ns(1_000_000)
            await dma_resv_unlock(a)
            await ww_acquire_fini(ctx)

        async def young() -> None:
            await wait_for_completion(old_locked)
            ctx = WwAcquireCtx()
            await ww_acquire_init(ctx, reservation_ww_class)
            assert await dma_resv_lock(b, ctx) == 0
            got["young->A"] = await dma_resv_lock(a, ctx)
            got["when"] = k.now
            if got["young->A"] == 0:
                await dma_resv_unlock(a)
            await dma_resv_unlock(b)
            await ww_acquire_fini(ctx)

        t1 = k.spawn(old, name="old")
        t2 = k.spawn(young, name="young")
        await t1.join()
        await t2.join()
        dma_resv_fini(a)
        dma_resv_fini(b)

    k = await arun(scenario)
    clean(k)
    assert reservation_ww_class.is_wait_die
    assert got == {"young->A": -EDEADLK, "when": 0}


@pytest.mark.parametrize(
    ("cls", "expect"),
    [
        pytest.param(WD, {"young->a": -EDEADLK, "when": 0}, id="wait-die"),
        pytest.param(WW, {"young->a": 0, "when": 1_000_000}, id="wound-wait"),
    ],
)
async def test_younger_context_meets_older_holder(cls: WwClass, expect: dict[str, int]) -> None:
    """``__ww_mutex_add_waiter()``/``__ww_mutex_check_kill()``: under wait-die the younger
    context dies; under wound-wait it waits (only an older waiter wounds a younger holder)."""
    got: dict[str, int] = {}

    async def scenario(k: Kernel) -> None:
        ww_mutex_set_deadlock_injection(k, False)
        a, b = WwMutex(cls, "a"), WwMutex(cls, "b")
        old_locked = Completion("old_locked")

        async def old() -> None:
            ctx = WwAcquireCtx()
            await ww_acquire_init(ctx, cls)
            await ww_mutex_lock(a, ctx)
            await complete(old_locked)
            await k.sleep_ns(1_000_000)
            await ww_mutex_unlock(a)
            await ww_acquire_fini(ctx)

        async def young() -> None:
            await wait_for_completion(old_locked)
            ctx = WwAcquireCtx()
            await ww_acquire_init(ctx, cls)
            await ww_mutex_lock(b, ctx)
            got["young->a"] = await ww_mutex_lock(a, ctx)
            got["when"] = k.now
            if got["young->a"] == 0:
                await ww_mutex_unlock(a)
            await ww_mutex_unlock(b)
            await ww_acquire_fini(ctx)

        k.spawn(old, name="old")
        k.spawn(young, name="young")

    k = await arun(scenario)
    clean(k)
    assert got == expect


async def test_slowpath_deadlock_injection_is_on_by_default() -> None:
    """CONFIG_DEBUG_WW_MUTEX_SLOWPATH is on in the model unless a run switches it off:
    ``ww_mutex_deadlock_injection()`` gives ctx#1 (countdown 1) a spurious -EDEADLK on its
    third lock, with the lock released and recorded as the contending one."""
    got: list[int] = []
    state: dict[str, bool] = {}

    async def scenario(k: Kernel) -> None:
        locks = [WwMutex(WD, f"l{i}") for i in range(3)]
        ctx = WwAcquireCtx()
        await ww_acquire_init(ctx, WD)
        for m in locks:
            got.append(await ww_mutex_lock(m, ctx))
        state["contending"] = ctx.contending_lock is locks[2]
        state["released"] = locks[2].owner is None
        if got[-1] == -EDEADLK:
            for m in reversed(locks[:2]):
                await ww_mutex_unlock(m)
            await ww_mutex_lock_slow(locks[2], ctx)
            for m in locks[:2]:
                got.append(await ww_mutex_lock(m, ctx))
        for m in locks:
            await ww_mutex_unlock(m)
        await ww_acquire_fini(ctx)

    k = await arun(scenario)
    clean(k)
    assert got == [0, 0, -EDEADLK, 0, 0]
    assert state == {"contending": True, "released": True}


async def test_slowpath_injection_interval_grows() -> None:
    """``ww_mutex_deadlock_injection()``: after each injection the interval becomes
    ``tmp*2 + tmp + tmp/2`` (1 -> 3 -> 10), so injections get rarer."""
    intervals: list[tuple[int, int]] = []

    async def scenario(k: Kernel) -> None:
        locks = [WwMutex(WD, f"l{i}") for i in range(2)]
        ctx = WwAcquireCtx()
        await ww_acquire_init(ctx, WD)
        await ww_mutex_lock(locks[0], ctx)
        for _ in range(16):
            ret = await ww_mutex_lock(locks[1], ctx)
            if ret == -EDEADLK:
                intervals.append((ctx.deadlock_inject_interval, ctx.deadlock_inject_countdown))
                ctx.contending_lock = None  # no back-off: the test only counts
            else:
                await ww_mutex_unlock(locks[1])
        await ww_mutex_unlock(locks[0])
        await ww_acquire_fini(ctx)

    k = await arun(scenario)
    clean(k)
    assert intervals == [(3, 3), (10, 10)]


async def test_acquire_init_clears_the_contending_lock_of_a_reused_context() -> None:
    """``ww_acquire_init()`` sets ``ctx->contending_lock = NULL`` (DEBUG_WW_MUTEXES): a context
    that backed off from an -EDEADLK, was finished and is initialised again starts clean, so
    its first lock of another mutex is not taken for a wrong slow-path lock
    (``ww_mutex_lock_acquired()``'s ``ww_ctx->contending_lock != ww`` WARN)."""
    contending: list[bool] = []

    async def scenario(k: Kernel) -> None:
        locks = [WwMutex(WD, f"l{i}") for i in range(3)]
        ctx = WwAcquireCtx()
        await ww_acquire_init(ctx, WD)
        # ctx#1's injection countdown is 1: the third lock gets the -EDEADLK.
        assert [await ww_mutex_lock(m, ctx) for m in locks] == [0, 0, -EDEADLK]
        contending.append(ctx.contending_lock is locks[2])
        for m in reversed(locks[:2]):
            await ww_mutex_unlock(m)
        await ww_acquire_fini(ctx)
        await ww_acquire_init(ctx, WD)
        contending.append(ctx.contending_lock is None)
        assert await ww_mutex_lock(locks[0], ctx) == 0
        await ww_mutex_unlock(locks[0])
        await ww_acquire_fini(ctx)

    k = await arun(scenario)
    clean(k)
    assert contending == [True, True]


async def test_destroy_of_a_locked_ww_mutex_warns() -> None:
    """``ww_mutex_destroy()`` = ``mutex_destroy()``: ``DEBUG_LOCKS_WARN_ON(mutex_is_locked(lock))``
    while the mutex is held; destroying an unlocked one is silent."""

    async def scenario(k: Kernel) -> None:
        held, free = WwMutex(WD, "held"), WwMutex(WD, "free")
        await ww_mutex_lock(held, None)
        ww_mutex_destroy(free)
        ww_mutex_destroy(held)
        await ww_mutex_unlock(held)

    k = await arun(scenario)
    assert [f.signature for f in k.failures] == ["warn:mutex-destroy-locked:wd_sem_mutex"]
