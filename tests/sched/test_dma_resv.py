"""dma_resv: ports of drivers/dma-buf/st-dma-resv.c (per usage), plus slots, waits, lockdep."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from panthor_testbed.sched import (
    DMA_RESV_USAGE_BOOKKEEP,
    DMA_RESV_USAGE_KERNEL,
    DMA_RESV_USAGE_READ,
    DMA_RESV_USAGE_WRITE,
    GFP_KERNEL,
    DmaFence,
    DmaFenceOps,
    DmaResv,
    DmaResvUsage,
    Kernel,
    dma_fence_begin_signalling,
    dma_fence_context_alloc,
    dma_fence_end_signalling,
    dma_fence_init,
    dma_fence_put,
    dma_fence_signal,
    dma_resv_add_fence,
    dma_resv_assert_held,
    dma_resv_fini,
    dma_resv_for_each_fence,
    dma_resv_get_fences,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_test_signaled,
    dma_resv_trylock,
    dma_resv_unlock,
    dma_resv_wait_timeout,
    kmalloc,
    softirq,
)
from panthor_testbed.sched.core.harness import arun
from panthor_testbed.sched.errno import ENOMEM

USAGES = [
    pytest.param(u, id=u.name)
    for u in (
        DMA_RESV_USAGE_KERNEL,
        DMA_RESV_USAGE_WRITE,
        DMA_RESV_USAGE_READ,
        DMA_RESV_USAGE_BOOKKEEP,
    )
]


class SelftestOps(DmaFenceOps):
    driver_name = "selftest"

    def get_timeline_name(self, fence: DmaFence) -> str:
        return "selftest"


OPS = SelftestOps()


async def alloc_fence(context: int = 0, seqno: int = 0) -> DmaFence:
    """``alloc_fence()``."""
    f = await kmalloc(DmaFence, GFP_KERNEL)
    assert f is not None
    dma_fence_init(f, OPS, None, context, seqno)
    return f


async def run_case(body: Callable[[Kernel], Awaitable[None]]) -> Kernel:
    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    return k


async def test_sanitycheck() -> None:
    async def body(k: Kernel) -> None:
        f = await alloc_fence()
        await dma_fence_signal(f)
        await dma_fence_put(f)
        resv = DmaResv("resv")
        assert await dma_resv_lock(resv, None) == 0
        await dma_resv_unlock(resv)
        dma_resv_fini(resv)

    await run_case(body)


@pytest.mark.parametrize("usage", USAGES)
async def test_signaling(usage: DmaResvUsage) -> None:
    async def body(k: Kernel) -> None:
        f = await alloc_fence()
        resv = DmaResv("resv")
        assert await dma_resv_lock(resv, None) == 0
        assert await dma_resv_reserve_fences(resv, 1) == 0
        await dma_resv_add_fence(resv, f, usage)
        assert not dma_resv_test_signaled(resv, usage)
        await dma_fence_signal(f)
        assert dma_resv_test_signaled(resv, usage)
        await dma_resv_unlock(resv)
        dma_resv_fini(resv)
        await dma_fence_put(f)

    await run_case(body)


@pytest.mark.parametrize("usage", USAGES)
async def test_for_each(usage: DmaResvUsage) -> None:
    async def body(k: Kernel) -> None:
        f = await alloc_fence()
        resv = DmaResv("resv")
        assert await dma_resv_lock(resv, None) == 0
        assert await dma_resv_reserve_fences(resv, 1) == 0
        await dma_resv_add_fence(resv, f, usage)
        assert dma_resv_for_each_fence(resv, usage) == [(f, int(usage))]
        await dma_fence_signal(f)
        await dma_resv_unlock(resv)
        dma_resv_fini(resv)
        await dma_fence_put(f)

    await run_case(body)


@pytest.mark.parametrize("usage", USAGES)
async def test_get_fences(usage: DmaResvUsage) -> None:
    async def body(k: Kernel) -> None:
        f = await alloc_fence()
        resv = DmaResv("resv")
        assert await dma_resv_lock(resv, None) == 0
        assert await dma_resv_reserve_fences(resv, 1) == 0
        await dma_resv_add_fence(resv, f, usage)
        await dma_resv_unlock(resv)
        ret, fences = await dma_resv_get_fences(resv, usage)
        assert ret == 0 and fences == [f]
        await dma_fence_signal(f)
        for x in fences:
            await dma_fence_put(x)
        dma_resv_fini(resv)
        await dma_fence_put(f)

    await run_case(body)


async def test_usage_order() -> None:
    """A query with usage U sees every fence with usage <= U."""

    async def body(k: Kernel) -> None:
        resv = DmaResv("resv")
        fences = [await alloc_fence(dma_fence_context_alloc(1), 1) for _ in range(4)]
        await dma_resv_lock(resv, None)
        await dma_resv_reserve_fences(resv, 4)
        for f, u in zip(fences, DmaResvUsage, strict=True):
            await dma_resv_add_fence(resv, f, u)
        await dma_fence_signal(fences[0])
        await dma_fence_signal(fences[1])
        assert dma_resv_test_signaled(resv, DMA_RESV_USAGE_WRITE)
        assert not dma_resv_test_signaled(resv, DMA_RESV_USAGE_READ)
        await dma_fence_signal(fences[2])
        assert dma_resv_test_signaled(resv, DMA_RESV_USAGE_READ)
        assert not dma_resv_test_signaled(resv, DMA_RESV_USAGE_BOOKKEEP)
        await dma_fence_signal(fences[3])
        await dma_resv_unlock(resv)
        dma_resv_fini(resv)
        for f in fences:
            await dma_fence_put(f)

    await run_case(body)


async def test_same_context_replaces_in_place() -> None:
    """A later fence of a context replaces one with usage >= its own; a lower one does not."""

    async def body(k: Kernel) -> None:
        resv = DmaResv("resv")
        ctx = dma_fence_context_alloc(1)
        f1, f2, f3 = [await alloc_fence(ctx, s) for s in (1, 2, 3)]
        await dma_resv_lock(resv, None)
        await dma_resv_reserve_fences(resv, 1)
        await dma_resv_add_fence(resv, f1, DMA_RESV_USAGE_READ)
        await dma_resv_add_fence(resv, f2, DMA_RESV_USAGE_READ)  # replaces f1
        assert [f for f, _ in dma_resv_for_each_fence(resv, DMA_RESV_USAGE_BOOKKEEP)] == [f2]
        await dma_resv_reserve_fences(resv, 1)
        await dma_resv_add_fence(resv, f3, DMA_RESV_USAGE_BOOKKEEP)  # old usage READ < BOOKKEEP
        assert [f for f, _ in dma_resv_for_each_fence(resv, DMA_RESV_USAGE_BOOKKEEP)] == [f2, f3]
        for f in (f1, f2, f3):
            await dma_fence_signal(f)
        await dma_resv_unlock(resv)
        dma_resv_fini(resv)
        for f in (f1, f2, f3):
            await dma_fence_put(f)

    await run_case(body)


async def test_add_fence_without_reservation_is_a_bug() -> None:
    async def body(k: Kernel) -> None:
        resv = DmaResv("resv")
        f = await alloc_fence()
        await dma_resv_lock(resv, None)
        await dma_resv_add_fence(resv, f, DMA_RESV_USAGE_WRITE)

    k = await arun(body)
    assert k.primary_failure is not None and k.primary_failure.kind == "exception"
    assert "dma_resv_add_fence" in k.primary_failure.message


async def test_reservation_ends_at_unlock() -> None:
    """CONFIG_DEBUG_MUTEXES: slots reserved before an unlock are gone after it (BUG_ON)."""

    async def body(k: Kernel) -> None:
        resv = DmaResv("resv")
        f = await alloc_fence()
        await dma_resv_lock(resv, None)
        await dma_resv_reserve_fences(resv, 1)
        await dma_resv_unlock(resv)
        await dma_resv_lock(resv, None)
        await dma_resv_add_fence(resv, f, DMA_RESV_USAGE_WRITE)

    k = await arun(body)
    assert k.primary_failure is not None
    assert k.primary_failure.signature == "exception:BUG:dma_resv_add_fence-no-slot"


async def test_reserve_gets_the_kmalloc_slack() -> None:
    """reserve(1) allocates max(4, 1) slots, rounded up by ksize(): five fit."""

    async def body(k: Kernel) -> None:
        resv = DmaResv("resv")
        fences = [await alloc_fence(dma_fence_context_alloc(1), 1) for _ in range(5)]
        await dma_resv_lock(resv, None)
        await dma_resv_reserve_fences(resv, 1)
        for f in fences:
            await dma_resv_add_fence(resv, f, DMA_RESV_USAGE_READ)
        assert resv.fences is not None and resv.fences.max_fences == 5
        for f in fences:
            await dma_fence_signal(f)
        await dma_resv_unlock(resv)
        dma_resv_fini(resv)
        for f in fences:
            await dma_fence_put(f)

    await run_case(body)


async def test_reserve_failure_returns_enomem() -> None:
    from panthor_testbed.sched import KernelConfig

    got: list[int] = []

    async def body(k: Kernel) -> None:
        resv = DmaResv("resv")
        await dma_resv_lock(resv, None)
        got.append(await dma_resv_reserve_fences(resv, 1))
        await dma_resv_unlock(resv)
        dma_resv_fini(resv)

    k = await arun(body, config=KernelConfig(alloc_fail_nth=1))
    assert not k.failures and got == [-ENOMEM]


async def test_wait_timeout_by_usage() -> None:
    """A WRITE wait ignores READ fences; a READ wait times out on the unsignalled READ fence."""

    async def body(k: Kernel) -> None:
        resv = DmaResv("resv")
        w = await alloc_fence(dma_fence_context_alloc(1), 1)
        r = await alloc_fence(dma_fence_context_alloc(1), 1)
        await dma_resv_lock(resv, None)
        await dma_resv_reserve_fences(resv, 2)
        await dma_resv_add_fence(resv, w, DMA_RESV_USAGE_WRITE)
        await dma_resv_add_fence(resv, r, DMA_RESV_USAGE_READ)
        await dma_resv_unlock(resv)
        k.add_timer(3_000_000, softirq(lambda: dma_fence_signal(w)), "gpu")
        assert await dma_resv_wait_timeout(resv, DMA_RESV_USAGE_WRITE, False, 10) == 7
        assert await dma_resv_wait_timeout(resv, DMA_RESV_USAGE_READ, False, 5) == 0
        assert await dma_resv_wait_timeout(resv, DMA_RESV_USAGE_WRITE, False, 0) == 1
        await dma_fence_signal(r)
        dma_resv_fini(resv)
        await dma_fence_put(w)
        await dma_fence_put(r)

    await run_case(body)


async def test_wait_restarts_when_fences_change() -> None:
    """The unlocked walk restarts after the list changed, and waits for the new fence too."""
    order: list[str] = []

    async def body(k: Kernel) -> None:
        resv = DmaResv("resv")
        a = await alloc_fence(dma_fence_context_alloc(1), 1)
        b = await alloc_fence(dma_fence_context_alloc(1), 1)
        await dma_resv_lock(resv, None)
        await dma_resv_reserve_fences(resv, 1)
        await dma_resv_add_fence(resv, a, DMA_RESV_USAGE_WRITE)
        await dma_resv_unlock(resv)

        async def adder() -> None:
            await dma_resv_lock(resv, None)
            await dma_resv_reserve_fences(resv, 1)
            await dma_resv_add_fence(resv, b, DMA_RESV_USAGE_WRITE)
            await dma_resv_unlock(resv)
            await dma_fence_signal(a)
            order.append("a")
            await k.sleep_ns(1_000_000)
            order.append("b")
            await dma_fence_signal(b)

        t = k.spawn(adder, name="adder")
        await dma_resv_wait_timeout(resv, DMA_RESV_USAGE_WRITE, False, 1000)
        order.append("waited")
        await t.join()
        dma_resv_fini(resv)
        await dma_fence_put(a)
        await dma_fence_put(b)

    await run_case(body)
    assert order == ["a", "b", "waited"]


async def test_resv_lock_inside_signalling_section_is_reported() -> None:
    async def body(k: Kernel) -> None:
        resv = DmaResv("resv")
        cookie = dma_fence_begin_signalling()
        await dma_resv_lock(resv, None)
        await dma_resv_unlock(resv)
        dma_fence_end_signalling(cookie)
        dma_resv_fini(resv)

    k = await arun(body)
    assert [f.kind for f in k.failures] == ["lockdep"]
    assert {"dma_fence_map", "reservation_ww_class_mutex"} <= set(k.failures[0].extra["cycle"])


async def test_assert_held_and_trylock() -> None:
    async def body(k: Kernel) -> None:
        resv = DmaResv("resv")
        assert await dma_resv_trylock(resv)

        async def other() -> None:
            assert not await dma_resv_trylock(resv)
            dma_resv_assert_held(resv)

        await k.spawn(other, name="other").join()

    k = await arun(body)
    assert k.primary_failure is not None and k.primary_failure.kind == "warn"
    assert "lockdep_assert_held(&resv->lock.base)" in k.primary_failure.message


async def test_fini_while_locked_warns() -> None:
    async def body(k: Kernel) -> None:
        resv = DmaResv("resv")
        await dma_resv_lock(resv, None)
        dma_resv_fini(resv)

    k = await arun(body)
    assert k.primary_failure is not None
    assert k.primary_failure.signature == "warn:mutex-destroy-locked:reservation_ww_class_mutex"
