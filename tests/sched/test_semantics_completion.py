"""completion semantics (kernel/sched/completion.c).

Each test names one behaviour and fails when it is changed (see docs/mutation.md).
"""

from __future__ import annotations

from panthor_testbed.sched import (
    Completion,
    Kernel,
    complete,
    complete_all,
    try_wait_for_completion,
    wait_for_completion,
    wait_for_completion_timeout,
)
from panthor_testbed.sched.core.harness import arun


async def test_each_complete_releases_exactly_one_wait() -> None:
    """``complete()`` adds one to ``done``, each wait consumes one; ``complete_all()``
    sets it to UINT_MAX, which waits never consume."""
    got: dict[str, int] = {}

    async def body(k: Kernel) -> None:
        c = Completion("c")
        await complete(c)
        await complete(c)
        await wait_for_completion(c)
        got["after one wait"] = c.done
        await wait_for_completion(c)
        got["third wait"] = await wait_for_completion_timeout(c, 1000)
        await complete_all(c)
        for _ in range(3):
            await wait_for_completion(c)
        got["after complete_all"] = int(c.done == (1 << 32) - 1)

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    assert got == {"after one wait": 1, "third wait": 0, "after complete_all": 1}


async def test_wait_timeout_returns_the_time_left() -> None:
    """``wait_for_completion_timeout()``: 0 on timeout, else the time left, at least 1."""
    got: list[int] = []

    async def body(k: Kernel) -> None:
        c = Completion("c")

        async def completer() -> None:
            await k.sleep_ns(300)
            await complete(c)
            await k.sleep_ns(999)
            await complete(c)

        k.spawn(completer, name="completer")
        got.append(await wait_for_completion_timeout(c, 1000))  # completed at 300
        got.append(await wait_for_completion_timeout(c, 1000))  # completed at 1299: 1 left
        got.append(await wait_for_completion_timeout(c, 10))  # never

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    assert got == [700, 1, 0]


async def test_try_wait_is_false_then_true_and_consumes() -> None:
    """``try_wait_for_completion()``: False (not None) without a ``done``, True with one,
    which it consumes."""
    got: list[object] = []

    async def body(k: Kernel) -> None:
        c = Completion("c")
        got.append(await try_wait_for_completion(c))
        await complete(c)
        got.append(await try_wait_for_completion(c))
        got.append(await try_wait_for_completion(c))

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    assert got == [False, True, False] and [type(x) for x in got] == [bool, bool, bool]
