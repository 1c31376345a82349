"""Executor-level scenarios: classic concurrency bugs on the simulated kernel.

Each has the bug by default and a parameter that turns the correct code
path on, so the same scenario shows both a finding and a clean run.
"""

from __future__ import annotations

from typing import Annotated

from panthor_testbed.sched import (
    GFP_KERNEL,
    Atomic,
    InvariantViolation,
    Kernel,
    Kref,
    Mutex,
    WaitQueue,
    atomic_read,
    atomic_set,
    kfree,
    kref_get,
    kref_get_unless_zero,
    kref_init,
    kref_put,
    kzalloc,
    mutex_lock,
    mutex_unlock,
    preempt,
)

from ..scenario import Range, scenario


@scenario("abba", "two threads take mutexes A and B in opposite orders", tags=("demo",))
async def abba(k: Kernel, inverted: bool = True) -> None:
    a = Mutex("A")
    b = Mutex("B")

    async def forward() -> None:
        await mutex_lock(a)
        await mutex_lock(b)
        await mutex_unlock(b)
        await mutex_unlock(a)

    async def backward() -> None:
        first, second = (b, a) if inverted else (a, b)
        await mutex_lock(first)
        await mutex_lock(second)
        await mutex_unlock(second)
        await mutex_unlock(first)

    k.spawn(forward, name="thread-a")
    k.spawn(backward, name="thread-b")


@scenario(
    "lost-wakeup",
    "a waiter checks its condition and sleeps non-atomically; the wake-up can be lost",
    tags=("demo",),
)
async def lost_wakeup(k: Kernel, fixed: bool = False) -> None:
    ready = [False]
    wq = WaitQueue("data_ready")

    async def consumer() -> None:
        while not ready[0]:
            if not fixed:
                await preempt()  # the window between checking and sleeping
            await wq.wait()

    async def producer() -> None:
        await preempt()
        ready[0] = True
        wq.wake_all()

    k.spawn(consumer, name="consumer")
    k.spawn(producer, name="producer")


class _Obj:
    __slots__ = ("refcount", "value")

    def __init__(self) -> None:
        self.refcount = Kref(self, "obj.refcount")
        self.value = 0


@scenario(
    "refcount-race",
    "a lookup takes a reference without the table lock while the last reference is dropped",
    tags=("demo",),
)
async def refcount_race(k: Kernel, fixed: bool = False) -> None:
    table_lock = Mutex("table_lock")
    obj = await kzalloc(_Obj, GFP_KERNEL)
    assert obj is not None
    await kref_init(obj.refcount)
    obj.value = 42
    table: dict[str, _Obj] = {"obj": obj}

    async def release(kref: Kref) -> None:
        kfree(kref.container)

    async def destroyer() -> None:
        if fixed:
            await mutex_lock(table_lock)
        o = table.pop("obj")
        if fixed:
            await mutex_unlock(table_lock)
        await kref_put(o.refcount, release)

    async def user() -> None:
        if fixed:
            await mutex_lock(table_lock)
            o = table.get("obj")
            ok = o is not None and await kref_get_unless_zero(o.refcount)
            await mutex_unlock(table_lock)
            if not ok or o is None:
                return
        else:
            o = table.get("obj")
            if o is None:
                return
            await preempt()  # the unlocked window between lookup and reference
            await kref_get(o.refcount)
        _ = o.value
        await kref_put(o.refcount, release)

    k.spawn(destroyer, name="destroyer")
    k.spawn(user, name="user")


@scenario(
    "lost-update",
    "two threads increment a counter with a separate read and write",
    tags=("demo",),
)
async def lost_update(
    k: Kernel, threads: Annotated[int, Range(1)] = 2, fixed: bool = False
) -> None:
    counter = Atomic(0, "counter")
    lock = Mutex("counter_lock")

    async def incr() -> None:
        if fixed:
            await mutex_lock(lock)
        v = await atomic_read(counter)
        await atomic_set(counter, v + 1)
        if fixed:
            await mutex_unlock(lock)

    workers = [k.spawn(incr, name=f"incr-{i}") for i in range(threads)]
    for w in workers:
        await w.join()
    if counter.v != threads:
        raise InvariantViolation(
            f"counter is {counter.v} after {threads} increments", signature="invariant:lost-update"
        )
