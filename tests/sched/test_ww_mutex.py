"""ww_mutex: ports of kernel/locking/test-ww_mutex.c, plus the algorithm's edge cases.

Every kernel test case runs for both algorithms (the kernel's test module
runs its suite for ``wd_class`` and ``ww_class``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from panthor_testbed.sched import (
    DEFINE_WD_CLASS,
    DEFINE_WW_CLASS,
    PCT,
    Completion,
    Kernel,
    RandomWalk,
    WwAcquireCtx,
    WwClass,
    WwMutex,
    complete,
    wait_for_completion,
    ww_acquire_done,
    ww_acquire_fini,
    ww_acquire_init,
    ww_mutex_lock,
    ww_mutex_lock_slow,
    ww_mutex_set_deadlock_injection,
    ww_mutex_trylock,
    ww_mutex_unlock,
)
from panthor_testbed.sched.core.harness import aexplore_all, arun
from panthor_testbed.sched.errno import EALREADY, EDEADLK

Scenario = Callable[[Kernel], Awaitable[None]]

WD = DEFINE_WD_CLASS("wd_class")
WW = DEFINE_WW_CLASS("ww_class")
CLASSES = [pytest.param(WD, id="wait-die"), pytest.param(WW, id="wound-wait")]


async def init_noinject(ctx: WwAcquireCtx, cls: WwClass) -> None:
    """``ww_acquire_init_noinject()`` of the test module."""
    await ww_acquire_init(ctx, cls)
    ctx.deadlock_inject_countdown = 1 << 40


def clean(k: Kernel) -> None:
    assert not k.failures, [f.message for f in k.failures]


# ---------------------------------------------------------------------- __test_mutex


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("flags", ["plain", "try", "ctx", "try+ctx"])
async def test_mutex(cls: WwClass, flags: str) -> None:
    """``__test_mutex()``: a second thread cannot take the lock until it is released."""
    seen: dict[str, bool] = {}

    async def scenario(k: Kernel) -> None:
        mtx = WwMutex(cls, "mutex")
        ready, done = Completion("ready"), Completion("done")
        ctx = WwAcquireCtx()

        async def worker() -> None:
            await complete(ready)
            if "try" in flags:
                while not await ww_mutex_trylock(mtx, None):
                    await k.sleep_ns(1000)
            else:
                await ww_mutex_lock(mtx, None)
            await complete(done)
            await ww_mutex_unlock(mtx)

        if "ctx" in flags:
            await init_noinject(ctx, cls)
        await ww_mutex_lock(mtx, ctx if "ctx" in flags else None)
        k.spawn(worker, name="worker")
        await wait_for_completion(ready)
        await k.sleep_ns(10_000_000)  # the worker had 10ms to (wrongly) take it
        seen["early"] = done.done > 0
        await ww_mutex_unlock(mtx)
        if "ctx" in flags:
            await ww_acquire_fini(ctx)
        await wait_for_completion(done)

    k = await arun(scenario)
    clean(k)
    assert seen == {"early": False}


# ---------------------------------------------------------------------- test_aa


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("trylock", [False, True])
async def test_aa(cls: WwClass, trylock: bool) -> None:
    """``test_aa()``: relocking with the same context is -EALREADY, trylocks fail."""
    results: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        mtx = WwMutex(cls, "mutex")
        ctx = WwAcquireCtx()
        await init_noinject(ctx, cls)
        if not trylock:
            results["lock"] = await ww_mutex_lock(mtx, ctx)
        else:
            results["lock"] = 0 if await ww_mutex_trylock(mtx, ctx) else -1
        results["trylock-noctx"] = await ww_mutex_trylock(mtx, None)
        results["trylock-ctx"] = await ww_mutex_trylock(mtx, ctx)
        results["relock"] = await ww_mutex_lock(mtx, ctx)
        await ww_mutex_unlock(mtx)
        await ww_acquire_fini(ctx)

    k = await arun(scenario)
    clean(k)
    assert results == {
        "lock": 0,
        "trylock-noctx": False,
        "trylock-ctx": False,
        "relock": -EALREADY,
    }


# ---------------------------------------------------------------------- test_abba


def _abba(cls: WwClass, trylock: bool, resolve: bool, out: list[tuple[int, int]]) -> Scenario:
    async def scenario(k: Kernel) -> None:
        a, b = WwMutex(cls, "a_mutex"), WwMutex(cls, "b_mutex")
        a_ready, b_ready = Completion("a_ready"), Completion("b_ready")
        result = {"b": 0}

        async def lock_first(m: WwMutex, ctx: WwAcquireCtx) -> None:
            if not trylock:
                assert await ww_mutex_lock(m, ctx) == 0
            else:
                assert await ww_mutex_trylock(m, ctx)
            assert m.ctx is ctx

        async def second(first: WwMutex, other: WwMutex, ctx: WwAcquireCtx) -> int:
            err = await ww_mutex_lock(other, ctx)
            if resolve and err == -EDEADLK:
                await ww_mutex_unlock(first)
                await ww_mutex_lock_slow(other, ctx)
                err = await ww_mutex_lock(first, ctx)
            if not err:
                await ww_mutex_unlock(other)
            await ww_mutex_unlock(first)
            await ww_acquire_fini(ctx)
            return err

        async def work() -> None:  # test_abba_work
            ctx = WwAcquireCtx()
            await init_noinject(ctx, cls)
            await lock_first(b, ctx)
            await complete(b_ready)
            await wait_for_completion(a_ready)
            result["b"] = await second(b, a, ctx)

        t = k.spawn(work, name="abba_work")
        ctx = WwAcquireCtx()
        await init_noinject(ctx, cls)
        await lock_first(a, ctx)
        await complete(a_ready)
        await wait_for_completion(b_ready)
        err = await second(a, b, ctx)
        await t.join()
        out.append((err, result["b"]))

    return scenario


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("trylock", [False, True])
@pytest.mark.parametrize("resolve", [False, True])
async def test_abba(cls: WwClass, trylock: bool, resolve: bool) -> None:
    """``test_abba()``: resolved, both succeed; unresolved, one side gets -EDEADLK.

    Every schedule with up to two preemptions, not just one.
    """
    out: list[tuple[int, int]] = []
    r = await aexplore_all(_abba(cls, trylock, resolve, out), preemption_bound=2)
    assert r.complete and not r.failing, [k.primary_failure for k, _ in r.failing]
    assert out
    for a_err, b_err in out:
        if resolve:
            assert (a_err, b_err) == (0, 0)
        else:
            assert -EDEADLK in (a_err, b_err)


# ---------------------------------------------------------------------- test_cycle


def _cycle(cls: WwClass, nthreads: int, out: list[list[int]]) -> Scenario:
    async def scenario(k: Kernel) -> None:
        mutexes = [WwMutex(cls, f"a_mutex{i}") for i in range(nthreads)]
        signals = [Completion(f"b_signal{i}") for i in range(nthreads)]
        results = [1] * nthreads

        async def cycle_work(n: int) -> None:
            a = mutexes[n]
            b = mutexes[(n + 1) % nthreads]
            ctx = WwAcquireCtx()
            await init_noinject(ctx, cls)
            await ww_mutex_lock(a, ctx)
            await complete(signals[(n + 1) % nthreads])  # cycle->a_signal
            await wait_for_completion(signals[n])
            err = await ww_mutex_lock(b, ctx)
            erra = 0
            if err == -EDEADLK:
                err = 0
                await ww_mutex_unlock(a)
                await ww_mutex_lock_slow(b, ctx)
                erra = await ww_mutex_lock(a, ctx)
            if not err:
                await ww_mutex_unlock(b)
            if not erra:
                await ww_mutex_unlock(a)
            await ww_acquire_fini(ctx)
            results[n] = err or erra

        threads = [k.spawn(cycle_work, n, name=f"cycle{n}") for n in range(nthreads)]
        for t in threads:
            await t.join()
        out.append(results)

    return scenario


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(
    "nthreads", [2, 3, pytest.param(4, marks=pytest.mark.slow)], ids=["2", "3", "4"]
)
async def test_cycle(cls: WwClass, nthreads: int) -> None:
    """``test_cycle()``: a ring of N contexts each holding one lock and wanting the next.

    The kernel test expects every context to get both locks. That holds on the
    canonical schedule; the explorer also finds rings of three or more where a
    context, after its slow-path lock, dies a second time on its own first lock
    (re-taken meanwhile by an older context) - the kernel's test would report
    that run as a failure too, so under exploration we check the kernel's
    guarantee instead: no deadlock, no WARN, every result 0 or -EDEADLK.
    """
    out: list[list[int]] = []
    clean(await arun(_cycle(cls, nthreads, out)))
    assert out == [[0] * nthreads]
    out.clear()
    bound = 1 if nthreads > 2 else 2
    r = await aexplore_all(_cycle(cls, nthreads, out), preemption_bound=bound)
    assert r.complete and not r.failing, [k.primary_failure for k, _ in r.failing]
    assert out and all(set(res) <= {0, -EDEADLK} for res in out)
    if nthreads == 2:
        assert all(res == [0, 0] for res in out)


@pytest.mark.parametrize("cls", CLASSES)
async def test_cycle_random(cls: WwClass) -> None:
    """``test_cycle()`` with 4 and 6 contexts under random and PCT schedules."""
    for nthreads in (4, 6):
        for seed in range(8):
            out: list[list[int]] = []
            for strategy in (RandomWalk(seed), PCT(seed, depth=3)):
                k = await arun(_cycle(cls, nthreads, out), strategy=strategy)
                clean(k)
            assert all(set(res) <= {0, -EDEADLK} for res in out)


# ---------------------------------------------------------------------- stress


def _order(n: int, nlocks: int) -> list[int]:
    """A fixed per-thread permutation (the kernel's get_random_order())."""
    order = list(range(nlocks))
    rot = (n * 3) % nlocks
    order = order[rot:] + order[:rot]
    return order[::-1] if n % 2 else order


def _stress(cls: WwClass, nlocks: int, nthreads: int, reorder: bool, loops: int) -> Scenario:
    async def scenario(k: Kernel) -> None:
        locks = [WwMutex(cls, f"lock{i}") for i in range(nlocks)]
        rounds = [0] * nthreads

        async def stress_inorder_work(n: int) -> None:
            order = _order(n, nlocks)
            for _ in range(loops):
                ctx = WwAcquireCtx()
                await ww_acquire_init(ctx, cls)
                contended = -1
                while True:
                    err = 0
                    i = 0
                    while i < nlocks:
                        if i != contended:
                            err = await ww_mutex_lock(locks[order[i]], ctx)
                            if err < 0:
                                break
                        i += 1
                    if contended > i:
                        await ww_mutex_unlock(locks[order[contended]])
                    contended = i
                    while i:
                        i -= 1
                        await ww_mutex_unlock(locks[order[i]])
                    if err == -EDEADLK:
                        await ww_mutex_lock_slow(locks[order[contended]], ctx)
                        continue
                    assert err == 0, err
                    break
                await ww_acquire_fini(ctx)
                rounds[n] += 1

        async def stress_reorder_work(n: int) -> None:
            order = [locks[i] for i in _order(n, nlocks)]
            for _ in range(loops):
                ctx = WwAcquireCtx()
                await ww_acquire_init(ctx, cls)
                i = 0
                while i < len(order):
                    err = await ww_mutex_lock(order[i], ctx)
                    if not err:
                        i += 1
                        continue
                    for m in reversed(order[:i]):
                        await ww_mutex_unlock(m)
                    assert err == -EDEADLK, err
                    await ww_mutex_lock_slow(order[i], ctx)
                    order.insert(0, order.pop(i))  # list_move(): restart after it
                    i = 1
                for m in order:
                    await ww_mutex_unlock(m)
                await ww_acquire_fini(ctx)
                rounds[n] += 1

        fn = stress_reorder_work if reorder else stress_inorder_work
        threads = [k.spawn(fn, n, name=f"stress{n}") for n in range(nthreads)]
        for t in threads:
            await t.join()
        assert rounds == [loops] * nthreads

    return scenario


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("reorder", [False, True], ids=["stress_inorder", "stress_reorder"])
async def test_stress(cls: WwClass, reorder: bool) -> None:
    """``stress_inorder_work`` / ``stress_reorder_work``: many contexts, no deadlock, no loss."""
    for seed in range(12):
        k = await arun(_stress(cls, 4, 4, reorder, 3), strategy=RandomWalk(seed))
        clean(k)


# ---------------------------------------------------------------------- the algorithm


async def test_wait_die_younger_with_locks_dies_and_backs_off() -> None:
    """Wait-die: the younger context holding a lock dies on the older holder's lock."""
    got: dict[str, int] = {}

    async def scenario(k: Kernel) -> None:
        a, b = WwMutex(WD, "a"), WwMutex(WD, "b")
        o_locked, y_died = Completion("o_locked"), Completion("y_died")

        async def old() -> None:
            ctx = WwAcquireCtx()
            await init_noinject(ctx, WD)
            await ww_mutex_lock(a, ctx)
            await complete(o_locked)
            await wait_for_completion(y_died)
            got["old->b"] = await ww_mutex_lock(b, ctx)
            await ww_mutex_unlock(b)
            await ww_mutex_unlock(a)
            await ww_acquire_fini(ctx)

        async def young() -> None:
            await wait_for_completion(o_locked)
            ctx = WwAcquireCtx()
            await init_noinject(ctx, WD)
            await ww_mutex_lock(b, ctx)
            got["young->a"] = await ww_mutex_lock(a, ctx)
            got["contending"] = int(ctx.contending_lock is a)
            await ww_mutex_unlock(b)
            await complete(y_died)
            await ww_mutex_lock_slow(a, ctx)  # sleeps until old is done
            got["young->b"] = await ww_mutex_lock(b, ctx)
            await ww_mutex_unlock(b)
            await ww_mutex_unlock(a)
            await ww_acquire_fini(ctx)

        k.spawn(old, name="old")
        k.spawn(young, name="young")

    k = await arun(scenario)
    clean(k)
    assert got == {"young->a": -EDEADLK, "contending": 1, "old->b": 0, "young->b": 0}


@pytest.mark.parametrize("cls", CLASSES)
async def test_context_holding_nothing_waits(cls: WwClass) -> None:
    """A context with nothing acquired never gets -EDEADLK: it sleeps."""
    got: dict[str, int] = {}

    async def scenario(k: Kernel) -> None:
        a = WwMutex(cls, "a")
        locked = Completion("locked")

        async def old() -> None:
            ctx = WwAcquireCtx()
            await init_noinject(ctx, cls)
            await ww_mutex_lock(a, ctx)
            await complete(locked)
            await k.sleep_ns(1_000_000)
            await ww_mutex_unlock(a)
            await ww_acquire_fini(ctx)

        async def young() -> None:
            await wait_for_completion(locked)
            ctx = WwAcquireCtx()
            await init_noinject(ctx, cls)
            got["young->a"] = await ww_mutex_lock(a, ctx)
            got["time"] = k.now
            await ww_mutex_unlock(a)
            await ww_acquire_fini(ctx)

        k.spawn(old, name="old")
        k.spawn(young, name="young")

    k = await arun(scenario)
    clean(k)
    assert got == {"young->a": 0, "time": 1_000_000}


@pytest.mark.parametrize("cls", CLASSES)
async def test_holder_without_context_never_causes_edeadlk(cls: WwClass) -> None:
    """A lock held without a context: a context holding locks waits for it."""
    got: dict[str, int] = {}

    async def scenario(k: Kernel) -> None:
        a, b = WwMutex(cls, "a"), WwMutex(cls, "b")
        locked = Completion("locked")

        async def plain() -> None:
            await ww_mutex_lock(a, None)
            await complete(locked)
            await k.sleep_ns(1_000_000)
            await ww_mutex_unlock(a)

        async def with_ctx() -> None:
            await wait_for_completion(locked)
            ctx = WwAcquireCtx()
            await init_noinject(ctx, cls)
            await ww_mutex_lock(b, ctx)
            got["ctx->a"] = await ww_mutex_lock(a, ctx)
            await ww_mutex_unlock(a)
            await ww_mutex_unlock(b)
            await ww_acquire_fini(ctx)

        k.spawn(plain, name="plain")
        k.spawn(with_ctx, name="ctx")

    k = await arun(scenario)
    clean(k)
    assert got == {"ctx->a": 0}


@pytest.mark.parametrize("cls", CLASSES)
async def test_wound_wait_wounds_the_younger_holder(cls: WwClass) -> None:
    """An older context waiting on a younger holder: wound-wait wounds it, wait-die does not.

    The younger context then blocks on a lock held without a context: wounded,
    it backs off (-EDEADLK); under wait-die it just waits.
    """
    got: dict[str, int] = {}

    async def scenario(k: Kernel) -> None:
        a, b, c = WwMutex(cls, "a"), WwMutex(cls, "b"), WwMutex(cls, "c")
        o_init, y_has_b, c_held = Completion("o_init"), Completion("y_has_b"), Completion("c")

        async def plain() -> None:  # holds c for a while, without a context
            await ww_mutex_lock(c, None)
            await complete(c_held)
            await k.sleep_ns(5_000_000)
            await ww_mutex_unlock(c)

        async def old() -> None:
            ctx = WwAcquireCtx()
            await init_noinject(ctx, cls)
            await complete(o_init)
            await ww_mutex_lock(a, ctx)
            await wait_for_completion(y_has_b)
            got["old->b"] = await ww_mutex_lock(b, ctx)  # waits for young
            await ww_mutex_unlock(b)
            await ww_mutex_unlock(a)
            await ww_acquire_fini(ctx)

        async def young() -> None:
            await wait_for_completion(o_init)
            await wait_for_completion(c_held)
            ctx = WwAcquireCtx()
            await init_noinject(ctx, cls)  # after old's: younger
            await ww_mutex_lock(b, ctx)
            await complete(y_has_b)
            await k.sleep_ns(1_000)  # old blocks on b meanwhile
            got["wounded"] = int(ctx.wounded)
            got["young->c"] = await ww_mutex_lock(c, ctx)
            if got["young->c"] == 0:
                await ww_mutex_unlock(c)
            await ww_mutex_unlock(b)
            ctx.contending_lock = None
            await ww_acquire_fini(ctx)

        k.spawn(plain, name="plain")
        k.spawn(old, name="old")
        k.spawn(young, name="young")

    k = await arun(scenario)
    clean(k)
    if cls is WW:
        assert got == {"wounded": 1, "young->c": -EDEADLK, "old->b": 0}
    else:
        assert got == {"wounded": 0, "young->c": 0, "old->b": 0}


async def test_deadlock_injection_follows_the_stamp() -> None:
    """DEBUG_WW_MUTEX_SLOWPATH: ctx#1 (countdown 1) gets a spurious -EDEADLK on its 3rd lock."""
    got: list[int] = []

    async def scenario(k: Kernel, inject: bool) -> None:
        ww_mutex_set_deadlock_injection(k, inject)
        locks = [WwMutex(WD, f"l{i}") for i in range(3)]
        ctx = WwAcquireCtx()
        await ww_acquire_init(ctx, WD)
        for m in locks:
            got.append(await ww_mutex_lock(m, ctx))
        if got[-1] == -EDEADLK:
            assert ctx.contending_lock is locks[2] and locks[2].owner is None
            for m in reversed(locks[:2]):
                await ww_mutex_unlock(m)
            await ww_mutex_lock_slow(locks[2], ctx)
            for m in locks[:2]:
                got.append(await ww_mutex_lock(m, ctx))
        for m in locks:
            await ww_mutex_unlock(m)
        await ww_acquire_fini(ctx)

    clean(await arun(scenario, inject=True))
    assert got == [0, 0, -EDEADLK, 0, 0]
    got.clear()
    clean(await arun(scenario, inject=False))
    assert got == [0, 0, 0]


# ---------------------------------------------------------------------- misuse


async def _misuse(body: Callable[[Kernel], Awaitable[None]]) -> Kernel:
    async def scenario(k: Kernel) -> None:
        ww_mutex_set_deadlock_injection(k, False)
        await body(k)

    return await arun(scenario)


async def test_lock_without_context_while_holding_one_is_recursion() -> None:
    """Taking a class lock without the context while holding one under it: lockdep."""

    async def body(k: Kernel) -> None:
        a, b = WwMutex(WD, "a"), WwMutex(WD, "b")
        ctx = WwAcquireCtx()
        await ww_acquire_init(ctx, WD)
        await ww_mutex_lock(a, ctx)
        await ww_mutex_lock(b, None)
        await ww_mutex_unlock(b)
        await ww_mutex_unlock(a)
        await ww_acquire_fini(ctx)

    k = await _misuse(body)
    assert [f.signature for f in k.failures] == ["lockdep:recursive:wd_class_mutex"]


async def test_many_locks_under_one_context_nest() -> None:
    """Same-class locks under one context are nested: no report, edges acquire -> mutex."""

    async def body(k: Kernel) -> None:
        locks = [WwMutex(WD, f"l{i}") for i in range(4)]
        ctx = WwAcquireCtx()
        await ww_acquire_init(ctx, WD)
        for m in reversed(locks):
            assert await ww_mutex_lock(m, ctx) == 0
        await ww_acquire_done(ctx)
        for m in locks:
            await ww_mutex_unlock(m)
        await ww_acquire_fini(ctx)

    k = await _misuse(body)
    clean(k)
    assert k.lockdep is not None and k.lockdep.has_edge("wd_class_acquire", "wd_class_mutex")


async def test_unlock_from_another_thread_warns() -> None:
    """Unlocking a ww_mutex the running thread does not own: DEBUG_MUTEXES WARN."""

    async def body(k: Kernel) -> None:
        a = WwMutex(WD, "a")
        await ww_mutex_lock(a, None)

        async def other() -> None:
            await ww_mutex_unlock(a)

        await k.spawn(other, name="other").join()

    k = await _misuse(body)
    assert k.primary_failure is not None
    assert k.primary_failure.signature == "warn:ww_mutex-unlock-owner:wd_class_mutex"


async def test_acquire_fini_with_locks_held_warns() -> None:
    """``ww_acquire_fini()`` before unlocking: DEBUG_LOCKS_WARN_ON(ctx->acquired)."""

    async def body(k: Kernel) -> None:
        a = WwMutex(WD, "a")
        ctx = WwAcquireCtx()
        await ww_acquire_init(ctx, WD)
        await ww_mutex_lock(a, ctx)
        await ww_acquire_fini(ctx)

    k = await _misuse(body)
    assert k.primary_failure is not None
    assert k.primary_failure.signature == "warn:ww_acquire_fini-acquired"


async def test_lock_after_acquire_done_warns() -> None:
    """Locking after ``ww_acquire_done()``: DEBUG_LOCKS_WARN_ON(ww_ctx->done_acquire)."""

    async def body(k: Kernel) -> None:
        a, b = WwMutex(WD, "a"), WwMutex(WD, "b")
        ctx = WwAcquireCtx()
        await ww_acquire_init(ctx, WD)
        await ww_mutex_lock(a, ctx)
        await ww_acquire_done(ctx)
        await ww_mutex_lock(b, ctx)

    k = await _misuse(body)
    assert k.primary_failure is not None
    assert k.primary_failure.signature == "warn:ww_mutex:ww_ctx->done_acquire"


async def test_slow_lock_of_another_lock_warns() -> None:
    """After -EDEADLK, the next lock must be the contended one."""

    async def body(k: Kernel) -> None:
        a, b, c = WwMutex(WD, "a"), WwMutex(WD, "b"), WwMutex(WD, "c")
        ready, done = Completion("ready"), Completion("done")

        async def old() -> None:
            ctx = WwAcquireCtx()
            await ww_acquire_init(ctx, WD)
            await ww_mutex_lock(a, ctx)
            await complete(ready)
            await wait_for_completion(done)
            await ww_mutex_unlock(a)
            await ww_acquire_fini(ctx)

        t = k.spawn(old, name="old")
        await wait_for_completion(ready)
        ctx = WwAcquireCtx()
        await ww_acquire_init(ctx, WD)
        await ww_mutex_lock(b, ctx)
        assert await ww_mutex_lock(a, ctx) == -EDEADLK
        await ww_mutex_unlock(b)
        await complete(done)
        await ww_mutex_lock_slow(c, ctx)
        await t.join()

    k = await _misuse(body)
    assert k.primary_failure is not None
    assert k.primary_failure.signature == "warn:ww_mutex:ww_ctx->contending_lock != ww"


async def test_context_used_by_another_thread_is_reported() -> None:
    """A context belongs to the task that initialised it: lockdep "Nested lock was not taken"."""

    async def body(k: Kernel) -> None:
        a = WwMutex(WD, "a")
        ctx = WwAcquireCtx()
        await ww_acquire_init(ctx, WD)

        async def other() -> None:
            await ww_mutex_lock(a, ctx)
            await ww_mutex_unlock(a)

        await k.spawn(other, name="other").join()
        await ww_acquire_fini(ctx)

    k = await _misuse(body)
    assert [f.signature for f in k.failures] == ["lockdep:nest-not-held:wd_class_acquire"]


async def test_deadlock_report_shows_holders_and_waiters() -> None:
    """Two threads taking two ww_mutexes without contexts in opposite orders deadlock."""

    async def scenario(k: Kernel) -> None:
        a, b = WwMutex(WD, "a"), WwMutex(WD, "b")
        got_a, got_b = Completion("a"), Completion("b")

        async def t1() -> None:
            await ww_mutex_lock(a, None)
            await complete(got_a)
            await wait_for_completion(got_b)
            await ww_mutex_lock(b, None)

        async def t2() -> None:
            await ww_mutex_lock(b, None)
            await complete(got_b)
            await wait_for_completion(got_a)
            await ww_mutex_lock(a, None)

        k.spawn(t1, name="t1")
        k.spawn(t2, name="t2")

    k = await arun(scenario)
    f = k.primary_failure
    assert f is not None and f.kind == "deadlock"
    assert "ww_mutex b (held by T2 t2 without a context; waiters: T1 t1)" in f.report
    assert "ww_mutex a (held by T1 t1 without a context; waiters: T2 t2)" in f.report
