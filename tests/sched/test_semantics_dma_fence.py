"""dma_fence semantics (drivers/dma-buf/dma-fence.c).

Each test names one behaviour and fails when it is changed (see docs/mutation.md).
"""

from __future__ import annotations

from panthor_testbed.sched import (
    GFP_KERNEL,
    DmaFence,
    DmaFenceCb,
    DmaFenceOps,
    Kernel,
    KernelConfig,
    dma_fence_add_callback,
    dma_fence_context_alloc,
    dma_fence_get,
    dma_fence_get_status,
    dma_fence_init,
    dma_fence_is_later,
    dma_fence_put,
    dma_fence_remove_callback,
    dma_fence_set_error,
    dma_fence_signal,
    dma_fence_signal_atomic,
    dma_fence_test_signaled_flag,
    dma_fence_wait,
    dma_fence_wait_timeout,
    is_freed,
    kmalloc,
    softirq,
)
from panthor_testbed.sched.core.clock import NSEC_PER_JIFFY
from panthor_testbed.sched.core.harness import arun
from panthor_testbed.sched.dma_buf.dma_fence import (
    DMA_FENCE_FLAG_SIGNALED_BIT,
    DMA_FENCE_FLAG_TIMESTAMP_BIT,
)
from panthor_testbed.sched.errno import EDEADLK, EINVAL, EIO, ENOENT


class Ops(DmaFenceOps):
    driver_name = "sem"


OPS = Ops()


async def new_fence(context: int = 0, seqno: int = 0) -> DmaFence:
    f = await kmalloc(DmaFence, GFP_KERNEL)
    assert f is not None
    dma_fence_init(f, OPS, None, context, seqno)
    return f


class RecordingCb(DmaFenceCb):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, bool]] = []


def record(f: DmaFence, cb: DmaFenceCb) -> None:
    assert isinstance(cb, RecordingCb)
    cb.calls.append((f.error, dma_fence_test_signaled_flag(f)))


async def test_release_with_pending_callbacks_signals_them_with_edeadlk() -> None:
    """``dma_fence_release()``: an unsignalled fence released with callbacks WARNs, then is
    signalled with error -EDEADLK so the callbacks run and learn it was an error signal."""
    cbs = [RecordingCb(), RecordingCb()]
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        f = await new_fence()
        for cb in cbs:
            assert await dma_fence_add_callback(f, cb, record) == 0
        await dma_fence_put(f)
        seen["freed"] = is_freed(f)

    k = await arun(body, config=KernelConfig(warn_fatal=False))
    assert [fl.signature for fl in k.failures] == ["warn:dma_fence_release-pending-signals"]
    assert [cb.calls for cb in cbs] == [[(-EDEADLK, True)], [(-EDEADLK, True)]]
    assert seen == {"freed": True}


async def test_release_of_a_signalled_fence_does_not_warn_or_resignal() -> None:
    """``dma_fence_release()``: after a normal signal nothing is pending; no WARN."""
    cb = RecordingCb()

    async def body(k: Kernel) -> None:
        f = await new_fence()
        assert await dma_fence_add_callback(f, cb, record) == 0
        assert await dma_fence_signal(f) == 0
        await dma_fence_put(f)

    k = await arun(body)
    assert not k.failures, [fl.message for fl in k.failures]
    assert cb.calls == [(0, True)]


async def test_signal_runs_callbacks_once_with_the_error_set_before() -> None:
    """``dma_fence_signal()``: callbacks run once, in order, with the error set before;
    a second signal is -EINVAL; a callback added afterwards is -ENOENT and never runs."""
    cbs = [RecordingCb(), RecordingCb()]
    late = RecordingCb()
    got: dict[str, int] = {}

    async def body(k: Kernel) -> None:
        f = await new_fence()
        for cb in cbs:
            await dma_fence_add_callback(f, cb, record)
        dma_fence_set_error(f, -EIO)
        got["status-before"] = await dma_fence_get_status(f)
        got["signal"] = await dma_fence_signal(f)
        got["again"] = await dma_fence_signal(f)
        got["late"] = await dma_fence_add_callback(f, late, record)
        got["remove-after"] = int(await dma_fence_remove_callback(f, cbs[0]))
        got["status"] = await dma_fence_get_status(f)
        await dma_fence_put(f)

    k = await arun(body)
    assert not k.failures, [fl.message for fl in k.failures]
    assert got == {
        "status-before": 0,
        "signal": 0,
        "again": -EINVAL,
        "late": -ENOENT,
        "remove-after": 0,
        "status": -EIO,
    }
    assert [cb.calls for cb in cbs] == [[(-EIO, True)], [(-EIO, True)]]
    assert late.calls == []


async def test_removed_callback_does_not_run() -> None:
    """``dma_fence_remove_callback()``: True while queued, and the callback never runs."""
    cb, other = RecordingCb(), RecordingCb()
    got: list[bool] = []

    async def body(k: Kernel) -> None:
        f = await new_fence()
        await dma_fence_add_callback(f, cb, record)
        await dma_fence_add_callback(f, other, record)
        got.append(await dma_fence_remove_callback(f, cb))
        got.append(await dma_fence_remove_callback(f, cb))
        await dma_fence_signal(f)
        await dma_fence_put(f)

    k = await arun(body)
    assert not k.failures, [fl.message for fl in k.failures]
    assert got == [True, False]
    assert cb.calls == [] and other.calls == [(0, True)]


async def test_last_put_frees_and_get_keeps_alive() -> None:
    """``dma_fence_put()``: only the last reference releases (frees) the fence."""
    seen: list[bool] = []

    async def body(k: Kernel) -> None:
        f = await new_fence()
        await dma_fence_get(f)
        await dma_fence_signal(f)
        await dma_fence_put(f)
        seen.append(is_freed(f))
        await dma_fence_put(f)
        seen.append(is_freed(f))

    k = await arun(body)
    assert not k.failures, [fl.message for fl in k.failures]
    assert seen == [False, True]


async def test_is_later_is_strict_and_wraps_at_32_bits() -> None:
    """``__dma_fence_is_later()``: strictly later, modulo 2^32 (half the space ahead)."""
    got: list[bool] = []

    async def body(k: Kernel) -> None:
        ctx = dma_fence_context_alloc(1)
        pairs = [(2, 1), (1, 2), (1, 1), (0, 0xFFFFFFFF), (0x80000000, 0), (0x7FFFFFFF, 0)]
        for a, b in pairs:
            fa, fb = DmaFence(OPS, None, ctx, a), DmaFence(OPS, None, ctx, b)
            got.append(dma_fence_is_later(fa, fb))

    k = await arun(body)
    assert not k.failures, [fl.message for fl in k.failures]
    assert got == [True, False, False, True, False, True]


async def test_signal_sets_the_timestamp_flag_and_time() -> None:
    """``dma_fence_signal_timestamp_locked()``: DMA_FENCE_FLAG_TIMESTAMP_BIT and
    ``fence->timestamp`` (the signalling time) are set with the signalled bit."""
    got: dict[str, int] = {}

    async def body(k: Kernel) -> None:
        f = await new_fence()
        await k.sleep_ns(1234)
        got["before"] = f.flags
        await dma_fence_signal(f)
        got["flags"] = f.flags
        got["timestamp"] = f.timestamp
        got["now"] = k.now
        await dma_fence_put(f)

    k = await arun(body)
    assert not k.failures, [fl.message for fl in k.failures]
    signalled = 1 << DMA_FENCE_FLAG_SIGNALED_BIT
    stamp = 1 << DMA_FENCE_FLAG_TIMESTAMP_BIT
    assert got["before"] & (signalled | stamp) == 0
    assert got["flags"] & (signalled | stamp) == signalled | stamp
    assert got["timestamp"] == got["now"] == 1234


async def test_init_resets_a_reused_fence() -> None:
    """``dma_fence_init()``: error 0, no flags, refcount 1, whatever the memory held."""
    got: dict[str, int] = {}

    async def body(k: Kernel) -> None:
        f = DmaFence()
        f.error, f.flags = -EIO, 0xF  # a fence struct reused without clearing
        dma_fence_init(f, OPS, None, 7, 3)
        got.update(error=f.error, flags=f.flags, refs=f.refcount.refs, context=f.context)
        await dma_fence_signal(f)

    k = await arun(body)
    assert not k.failures, [fl.message for fl in k.failures]
    assert got == {"error": 0, "flags": 0, "refs": 1, "context": 7}


class CountingOps(DmaFenceOps):
    """``enable_signaling`` counts its calls; False asks for an immediate signal."""

    driver_name = "counting"

    def __init__(self, result: bool) -> None:
        self.calls = 0
        self.result = result

    def enable_signaling(self, fence: DmaFence) -> bool:
        self.calls += 1
        return self.result


async def test_enable_signaling_is_called_once() -> None:
    """``__dma_fence_enable_signaling()``: DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT makes the
    ``enable_signaling`` op run once, however many callbacks and waits follow."""
    ops = CountingOps(True)
    cbs = [RecordingCb(), RecordingCb()]

    async def body(k: Kernel) -> None:
        f = DmaFence(ops, None, dma_fence_context_alloc(1), 1)
        for cb in cbs:
            await dma_fence_add_callback(f, cb, record)
        assert await dma_fence_wait_timeout(f, False, 1) == 0
        await dma_fence_signal(f)

    k = await arun(body)
    assert not k.failures, [fl.message for fl in k.failures]
    assert ops.calls == 1
    assert [cb.calls for cb in cbs] == [[(0, True)], [(0, True)]]


async def test_add_callback_when_enable_signaling_refuses_signals_now() -> None:
    """``dma_fence_add_callback()``: ``enable_signaling`` returning false signals the
    fence at once; the callback is not queued (-ENOENT) and never runs."""
    ops = CountingOps(False)
    cb = RecordingCb()
    got: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        f = DmaFence(ops, None, dma_fence_context_alloc(1), 1)
        got["ret"] = await dma_fence_add_callback(f, cb, record)
        got["signalled"] = dma_fence_test_signaled_flag(f)

    k = await arun(body)
    assert not k.failures, [fl.message for fl in k.failures]
    assert got == {"ret": -ENOENT, "signalled": True}
    assert cb.calls == []


async def test_wait_returns_zero_and_timeout_wait_counts_a_started_jiffy() -> None:
    """``dma_fence_wait()`` is 0 once signalled; ``dma_fence_wait_timeout()`` returns the
    jiffies left rounded up, so a signal 1 ns before the deadline still returns 1."""
    got: dict[str, int] = {}

    async def body(k: Kernel) -> None:
        ctx = dma_fence_context_alloc(1)
        f = DmaFence(OPS, None, ctx, 1)
        k.add_timer(NSEC_PER_JIFFY, softirq(lambda: dma_fence_signal_atomic(f)), "sig")
        got["wait"] = await dma_fence_wait(f, False)
        g = DmaFence(OPS, None, ctx, 2)
        k.add_timer(5 * NSEC_PER_JIFFY - 1, softirq(lambda: dma_fence_signal_atomic(g)), "sig")
        got["timeout"] = await dma_fence_wait_timeout(g, False, 5)

    k = await arun(body)
    assert not k.failures, [fl.message for fl in k.failures]
    assert got == {"wait": 0, "timeout": 1}
