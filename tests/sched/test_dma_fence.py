"""dma_fence: ports of drivers/dma-buf/st-dma-fence.c, plus lifetime and lockdep rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from panthor_testbed.sched import (
    GFP_KERNEL,
    HZ,
    MAX_SCHEDULE_TIMEOUT,
    DmaFence,
    DmaFenceCb,
    DmaFenceOps,
    Kernel,
    Mutex,
    dma_fence_add_callback,
    dma_fence_begin_signalling,
    dma_fence_context_alloc,
    dma_fence_enable_sw_signaling,
    dma_fence_end_signalling,
    dma_fence_get,
    dma_fence_get_status,
    dma_fence_get_stub,
    dma_fence_init,
    dma_fence_is_later,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_remove_callback,
    dma_fence_set_error,
    dma_fence_signal,
    dma_fence_test_signaled_flag,
    dma_fence_wait,
    dma_fence_wait_timeout,
    is_freed,
    kfree,
    kmalloc,
    mutex_lock,
    mutex_unlock,
    softirq,
)
from panthor_testbed.sched.core.harness import aexplore_all, arun
from panthor_testbed.sched.errno import EINVAL, EIO, ENOENT


class MockOps(DmaFenceOps):
    driver_name = "mock"

    def get_timeline_name(self, fence: DmaFence) -> str:
        return "mock"


MOCK_OPS = MockOps()


async def mock_fence() -> DmaFence:
    """``mock_fence()``: kmalloc + dma_fence_init(f, &mock_ops, NULL, 0, 0)."""
    f = await kmalloc(DmaFence, GFP_KERNEL)
    assert f is not None
    dma_fence_init(f, MOCK_OPS, None, 0, 0)
    return f


class SimpleCb(DmaFenceCb):
    def __init__(self) -> None:
        super().__init__()
        self.seen = False


async def simple_callback(f: DmaFence, cb: DmaFenceCb) -> None:
    assert isinstance(cb, SimpleCb)
    cb.seen = True


async def run_case(body: Callable[[Kernel], Awaitable[None]]) -> Kernel:
    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    return k


async def test_sanitycheck() -> None:
    async def body(k: Kernel) -> None:
        f = await mock_fence()
        await dma_fence_enable_sw_signaling(f)
        await dma_fence_signal(f)
        await dma_fence_put(f)
        assert is_freed(f)

    await run_case(body)


async def test_signaling() -> None:
    """Not signalled on creation; the first signal returns 0, the second -EINVAL."""

    async def body(k: Kernel) -> None:
        f = await mock_fence()
        await dma_fence_enable_sw_signaling(f)
        assert not await dma_fence_is_signaled(f)
        assert await dma_fence_signal(f) == 0
        assert await dma_fence_is_signaled(f)
        assert dma_fence_test_signaled_flag(f)
        assert await dma_fence_signal(f) == -EINVAL
        await dma_fence_put(f)

    await run_case(body)


async def test_add_callback() -> None:
    async def body(k: Kernel) -> None:
        f = await mock_fence()
        cb = SimpleCb()
        assert await dma_fence_add_callback(f, cb, simple_callback) == 0
        await dma_fence_signal(f)
        assert cb.seen
        await dma_fence_put(f)

    await run_case(body)


async def test_late_add_callback() -> None:
    async def body(k: Kernel) -> None:
        f = await mock_fence()
        await dma_fence_enable_sw_signaling(f)
        await dma_fence_signal(f)
        cb = SimpleCb()
        assert await dma_fence_add_callback(f, cb, simple_callback) == -ENOENT
        await dma_fence_signal(f)
        assert not cb.seen
        await dma_fence_put(f)

    await run_case(body)


async def test_rm_callback() -> None:
    async def body(k: Kernel) -> None:
        f = await mock_fence()
        cb = SimpleCb()
        assert await dma_fence_add_callback(f, cb, simple_callback) == 0
        assert await dma_fence_remove_callback(f, cb)
        await dma_fence_signal(f)
        assert not cb.seen
        await dma_fence_put(f)

    await run_case(body)


async def test_late_rm_callback() -> None:
    async def body(k: Kernel) -> None:
        f = await mock_fence()
        cb = SimpleCb()
        assert await dma_fence_add_callback(f, cb, simple_callback) == 0
        await dma_fence_signal(f)
        assert cb.seen
        assert not await dma_fence_remove_callback(f, cb)
        await dma_fence_put(f)

    await run_case(body)


async def test_status() -> None:
    async def body(k: Kernel) -> None:
        f = await mock_fence()
        await dma_fence_enable_sw_signaling(f)
        assert await dma_fence_get_status(f) == 0
        await dma_fence_signal(f)
        assert await dma_fence_get_status(f) == 1
        await dma_fence_put(f)

    await run_case(body)


async def test_error() -> None:
    async def body(k: Kernel) -> None:
        f = await mock_fence()
        await dma_fence_enable_sw_signaling(f)
        dma_fence_set_error(f, -EIO)
        assert await dma_fence_get_status(f) == 0
        await dma_fence_signal(f)
        assert await dma_fence_get_status(f) == -EIO
        await dma_fence_put(f)

    await run_case(body)


async def test_wait() -> None:
    async def body(k: Kernel) -> None:
        f = await mock_fence()
        await dma_fence_enable_sw_signaling(f)
        assert await dma_fence_wait_timeout(f, False, 0) == 0
        await dma_fence_signal(f)
        assert await dma_fence_wait_timeout(f, False, 0) == 1
        await dma_fence_signal(f)
        await dma_fence_put(f)

    await run_case(body)


async def test_wait_timeout() -> None:
    """A 1-jiffy wait times out; a timer signalling after 1 jiffy ends a HZ wait early."""

    async def body(k: Kernel) -> None:
        f = await mock_fence()
        await dma_fence_enable_sw_signaling(f)
        assert await dma_fence_wait_timeout(f, False, 1) == 0
        assert k.now == 1_000_000
        k.add_timer(1_000_000, softirq(lambda: dma_fence_signal(f)), "wait_timer")
        left = await dma_fence_wait_timeout(f, False, HZ)
        assert left == HZ - 1
        await dma_fence_signal(f)
        await dma_fence_put(f)

    await run_case(body)


async def test_stub() -> None:
    async def body(k: Kernel) -> None:
        fences = [await dma_fence_get_stub() for _ in range(64)]
        for f in fences:
            assert await dma_fence_is_signaled(f)
        for f in fences:
            await dma_fence_put(f)

    await run_case(body)


async def test_race_signal_callback() -> None:
    """``test_race_signal_callback()``: the callback on the other thread's fence is always seen.

    Two threads each publish a fence, take the other's, signal theirs before
    or after adding a callback on the other's, and wait: under every schedule
    with up to two preemptions, no callback is lost.
    """
    for before in (False, True):

        async def scenario(k: Kernel, before: bool = before) -> None:
            fences: list[DmaFence | None] = [None, None]

            async def thread(tid: int) -> None:
                f1 = await mock_fence()
                await dma_fence_enable_sw_signaling(f1)
                fences[tid] = f1
                f2 = fences[1 - tid]
                while f2 is None:
                    await k.sleep_ns(1000)
                    f2 = fences[1 - tid]
                await dma_fence_get(f2)
                if before:
                    await dma_fence_signal(f1)
                cb = SimpleCb()
                if await dma_fence_add_callback(f2, cb, simple_callback):
                    cb.seen = True  # already signalled: a miss, not an error
                if not before:
                    await dma_fence_signal(f1)
                if not cb.seen:
                    await dma_fence_wait(f2, False)
                assert cb.seen, f"callback not seen on thread {tid}"
                await dma_fence_put(f2)

            t = [k.spawn(thread, i, name=f"dma-fence:{i}") for i in range(2)]
            for x in t:
                await x.join()
            for f in fences:
                await dma_fence_put(f)

        r = await aexplore_all(scenario, preemption_bound=2)
        assert r.complete and not r.failing, [k.primary_failure for k, _ in r.failing]


# ---------------------------------------------------------------------- beyond the selftests


async def test_callbacks_run_in_the_signaller() -> None:
    """Callbacks run synchronously in the signalling thread, in atomic context."""

    async def body(k: Kernel) -> None:
        f = await mock_fence()
        seen: list[tuple[str, int]] = []

        async def cb_fn(fence: DmaFence, cb: DmaFenceCb) -> None:
            cur = k.current
            assert cur is not None
            seen.append((cur.name, cur.preempt_count))

        cbs = [DmaFenceCb() for _ in range(3)]
        for cb in cbs:
            await dma_fence_add_callback(f, cb, cb_fn)

        async def signaller() -> None:
            await dma_fence_signal(f)

        await k.spawn(signaller, name="signaller").join()
        assert seen == [("signaller", 1)] * 3
        await dma_fence_put(f)

    await run_case(body)


async def test_seqno_compare_wraps_at_32_bits() -> None:
    async def body(k: Kernel) -> None:
        ctx = dma_fence_context_alloc(1)
        a = DmaFence(MOCK_OPS, None, ctx, 0xFFFFFFFF)
        b = DmaFence(MOCK_OPS, None, ctx, 1)
        assert dma_fence_is_later(b, a) and not dma_fence_is_later(a, b)
        assert dma_fence_context_alloc(2) == ctx + 1
        for f in (a, b):
            await dma_fence_signal(f)
            await dma_fence_put(f)

    await run_case(body)


async def test_set_error_after_signal_warns() -> None:
    async def body(k: Kernel) -> None:
        f = await mock_fence()
        await dma_fence_signal(f)
        dma_fence_set_error(f, -EIO)

    k = await arun(body)
    assert k.primary_failure is not None and k.primary_failure.kind == "warn"
    assert "set_error" in k.primary_failure.message


async def test_release_with_pending_callbacks_warns() -> None:
    """The last put of an unsignalled fence with callbacks: WARN (then -EDEADLK signal)."""

    async def body(k: Kernel) -> None:
        f = await mock_fence()
        await dma_fence_add_callback(f, SimpleCb(), simple_callback)
        await dma_fence_put(f)

    k = await arun(body)
    assert k.primary_failure is not None
    assert k.primary_failure.signature == "warn:dma_fence_release-pending-signals"


async def test_use_after_last_put_is_caught() -> None:
    async def body(k: Kernel) -> None:
        f = await mock_fence()
        await dma_fence_signal(f)
        await dma_fence_put(f)
        await dma_fence_get(f)

    k = await arun(body)
    assert k.primary_failure is not None and k.primary_failure.kind == "use-after-free"


async def test_wait_inside_signalling_section_alone_is_not_reported() -> None:
    """``__dma_fence_might_wait()`` drops a held read first: no report by itself (as the kernel)."""

    async def body(k: Kernel) -> None:
        g = await mock_fence()
        await dma_fence_signal(g)
        cookie = dma_fence_begin_signalling()
        await dma_fence_wait(g, False)
        dma_fence_end_signalling(cookie)
        await dma_fence_put(g)

    await run_case(body)


async def test_alloc_inside_signalling_section_is_reported() -> None:
    """GFP_KERNEL inside a section: map -> fs_reclaim closes the primed chain back to the map."""

    async def body(k: Kernel) -> None:
        cookie = dma_fence_begin_signalling()
        buf = await kmalloc(64, GFP_KERNEL)
        dma_fence_end_signalling(cookie)
        kfree(buf)

    k = await arun(body)
    assert [f.kind for f in k.failures] == ["lockdep"]
    assert {"dma_fence_map", "fs_reclaim"} <= set(k.failures[0].extra["cycle"])


async def test_lock_held_while_waiting_and_taken_in_signalling_is_reported() -> None:
    """L taken inside a signalling section, and held elsewhere while waiting: a cycle."""

    async def body(k: Kernel) -> None:
        lock = Mutex("L", "&L")
        f = await mock_fence()

        async def signaller() -> None:
            cookie = dma_fence_begin_signalling()
            await mutex_lock(lock)
            await mutex_unlock(lock)
            await dma_fence_signal(f)
            dma_fence_end_signalling(cookie)

        await k.spawn(signaller, name="signaller").join()
        await mutex_lock(lock)
        await dma_fence_wait(f, False)
        await mutex_unlock(lock)
        await dma_fence_put(f)

    k = await arun(body)
    assert len(k.failures) == 1 and k.failures[0].kind == "lockdep"
    assert set(k.failures[0].extra["cycle"]) == {"&L", "dma_fence_map"}


async def test_deadlock_report_names_the_fence_and_its_signaller() -> None:
    async def body(k: Kernel) -> None:
        f = await mock_fence()
        f.signaller_hint = "the test's GPU thread (never started)"
        await dma_fence_wait_timeout(f, False, MAX_SCHEDULE_TIMEOUT)

    k = await arun(body)
    f = k.primary_failure
    assert f is not None and f.kind == "deadlock"
    assert "dma_fence mock:mock 0:0 (unsignalled; to be signalled by the test's GPU thread" in (
        f.report
    )
