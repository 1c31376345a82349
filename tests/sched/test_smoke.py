"""The executor runs a two-thread program and reports a deadlock."""

from __future__ import annotations

from panthor_testbed.sched import Kernel, Mutex, RandomWalk, mutex_lock, mutex_unlock
from panthor_testbed.sched.core.harness import run


async def _abba(k: Kernel) -> None:
    a, b = Mutex("A"), Mutex("B")

    async def t1() -> None:
        await mutex_lock(a)
        await mutex_lock(b)
        await mutex_unlock(b)
        await mutex_unlock(a)

    async def t2() -> None:
        await mutex_lock(b)
        await mutex_lock(a)
        await mutex_unlock(a)
        await mutex_unlock(b)

    k.spawn(t1, name="t1")
    k.spawn(t2, name="t2")


def test_random_walk_finds_the_abba_deadlock() -> None:
    kinds = set()
    for seed in range(20):
        k = run(_abba, strategy=RandomWalk(seed))
        if k.primary_failure is not None:
            kinds.add(k.primary_failure.kind)
    assert "deadlock" in kinds
