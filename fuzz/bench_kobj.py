"""Kernel-object figures: a fence signal with one callback, a work item queued and run.

Both run on the executor with tracing and lockdep on, like the
``executor-decision`` baseline they are compared to (measured in the same
process).
"""

from __future__ import annotations

import time

import trio

from panthor_testbed.sched import (
    DmaFence,
    DmaFenceCb,
    DmaFenceOps,
    Kernel,
    KernelConfig,
    RoundRobin,
    WorkStruct,
    alloc_ordered_workqueue,
    destroy_workqueue,
    dma_fence_add_callback,
    dma_fence_context_alloc,
    dma_fence_put,
    dma_fence_signal,
    flush_workqueue,
    queue_work,
)
from panthor_testbed.sched.locking.lockdep import Lockdep

from .bench import BenchOptions, Figure, bench, best_of
from .bench_core import _executor_decision_us


def _fence_signal_us(n: int) -> float:
    """``dma_fence_signal()`` of a fence with one callback queued (the callback runs)."""
    result: list[float] = []

    async def scenario(k: Kernel) -> None:
        ops = DmaFenceOps()
        ctx = dma_fence_context_alloc(1)
        fences = [DmaFence(ops, None, ctx, i + 1) for i in range(n)]
        seen = [0]

        async def cb_fn(fence: DmaFence, cb: DmaFenceCb) -> None:
            seen[0] += 1

        for f in fences:
            await dma_fence_add_callback(f, DmaFenceCb(), cb_fn)
        t0 = time.perf_counter()
        for f in fences:
            await dma_fence_signal(f)
        result.append((time.perf_counter() - t0) / n * 1e6)
        assert seen[0] == n
        for f in fences:
            await dma_fence_put(f)

    async def main() -> float:
        k = Kernel(RoundRobin(), KernelConfig(max_steps=20 * n + 1000), lockdep=Lockdep())
        await k.run(scenario)
        assert not k.failures, k.failures
        return result[0]

    return trio.run(main)


def _queue_work_us(n: int) -> float:
    """``queue_work()`` of a work item on an ordered queue plus its execution by the worker."""
    result: list[float] = []

    async def scenario(k: Kernel) -> None:
        wq = await alloc_ordered_workqueue("bench", 0)
        assert wq is not None
        ran = [0]

        async def fn(work: WorkStruct) -> None:
            ran[0] += 1

        works = [WorkStruct(fn, "&bench->work") for _ in range(n)]
        t0 = time.perf_counter()
        for w in works:
            await queue_work(wq, w)
        await flush_workqueue(wq)
        result.append((time.perf_counter() - t0) / n * 1e6)
        assert ran[0] == n
        await destroy_workqueue(wq)

    async def main() -> float:
        k = Kernel(RoundRobin(), KernelConfig(max_steps=40 * n + 1000), lockdep=Lockdep())
        await k.run(scenario)
        assert not k.failures, k.failures
        return result[0]

    return trio.run(main)


@bench("kernel-objects")
def kernel_object_figures(options: BenchOptions) -> list[Figure]:
    n = options.n(20_000, 500)
    repeats = options.n(5, 1)
    decision = best_of(repeats, lambda: _executor_decision_us(options.n(100_000, 2_000)))
    signal = best_of(repeats, lambda: _fence_signal_us(n))
    work = best_of(repeats, lambda: _queue_work_us(n))
    return [
        Figure(
            "fence-signal",
            signal,
            baseline="executor-decision",
            baseline_value=decision,
            note="dma_fence_signal() with one callback, round-robin, tracing and lockdep on",
        ),
        Figure(
            "queue-work",
            work,
            baseline="executor-decision",
            baseline_value=decision,
            note="queue_work() + the work run by an ordered queue's worker, round-robin",
        ),
    ]
