"""drm_syncobj: binary and timeline points for VM_BIND in/out syncs, and the WAIT ioctl."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from panthor_testbed.sched import (
    DRM_SYNCOBJ_CREATE_SIGNALED,
    DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL,
    DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT,
    DmaFence,
    DmaFenceOps,
    DrmSyncobj,
    Kernel,
    SyncobjHandles,
    dma_fence_chain_alloc,
    dma_fence_context_alloc,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_signal,
    dma_fence_wait,
    drm_syncobj_add_point,
    drm_syncobj_create,
    drm_syncobj_destroy,
    drm_syncobj_find_fence,
    drm_syncobj_get_handle,
    drm_syncobj_put,
    drm_syncobj_replace_fence,
    drm_syncobj_wait,
    softirq,
)
from panthor_testbed.sched.core.harness import aexplore_all, arun
from panthor_testbed.sched.errno import EINVAL, ENOENT, ETIME

OPS = DmaFenceOps()


def fence(seqno: int = 1) -> DmaFence:
    return DmaFence(OPS, None, dma_fence_context_alloc(1), seqno)


async def new_syncobj(file: SyncobjHandles, f: DmaFence | None = None, flags: int = 0) -> int:
    ret, syncobj = await drm_syncobj_create(flags, f)
    assert ret == 0 and syncobj is not None
    ret, handle = await drm_syncobj_get_handle(file, syncobj)
    assert ret == 0
    await drm_syncobj_put(syncobj)  # the handle keeps it alive
    return handle


def syncobj_of(file: SyncobjHandles, handle: int) -> DrmSyncobj:
    return file.table[handle]


async def run_case(body: Callable[[Kernel], Awaitable[None]]) -> Kernel:
    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    return k


async def test_binary_find_fence() -> None:
    async def body(k: Kernel) -> None:
        file = SyncobjHandles()
        empty = await new_syncobj(file)
        assert await drm_syncobj_find_fence(file, 99, 0, 0) == (-ENOENT, None)
        assert await drm_syncobj_find_fence(file, empty, 0, 0) == (-EINVAL, None)
        f = fence()
        await drm_syncobj_replace_fence(syncobj_of(file, empty), f)
        ret, got = await drm_syncobj_find_fence(file, empty, 0, 0)
        assert ret == 0 and got is f
        await dma_fence_put(got)
        await dma_fence_signal(f)
        await dma_fence_put(f)
        assert await drm_syncobj_destroy(file, empty) == 0
        assert await drm_syncobj_destroy(file, empty) == -EINVAL

    await run_case(body)


async def test_create_signaled_gives_the_stub() -> None:
    async def body(k: Kernel) -> None:
        file = SyncobjHandles()
        h = await new_syncobj(file, flags=DRM_SYNCOBJ_CREATE_SIGNALED)
        ret, got = await drm_syncobj_find_fence(file, h, 0, 0)
        assert ret == 0 and got is not None and await dma_fence_is_signaled(got)
        await dma_fence_put(got)
        await drm_syncobj_destroy(file, h)

    await run_case(body)


async def test_timeline_points() -> None:
    """Points map to chain nodes; a point beyond the head is -EINVAL; a signalled one the stub."""

    async def body(k: Kernel) -> None:
        file = SyncobjHandles()
        h = await new_syncobj(file)
        tl = syncobj_of(file, h)
        f1, f2 = fence(), fence()
        for point, f in ((1, f1), (2, f2)):
            chain = await dma_fence_chain_alloc()
            assert chain is not None
            await drm_syncobj_add_point(tl, chain, f, point)
        ret, p1 = await drm_syncobj_find_fence(file, h, 1, 0)
        assert ret == 0 and p1 is not None and p1.seqno == 1
        ret, p2 = await drm_syncobj_find_fence(file, h, 2, 0)
        assert ret == 0 and p2 is not None and p2.seqno == 2
        assert await drm_syncobj_find_fence(file, h, 3, 0) == (-EINVAL, None)
        assert not await dma_fence_is_signaled(p1)
        await dma_fence_signal(f1)
        await dma_fence_wait(p1, False)  # node 1 signals once f1 has
        assert not await dma_fence_is_signaled(p2)
        ret, again = await drm_syncobj_find_fence(file, h, 1, 0)
        assert ret == 0 and again is not None and again.context == 0  # the stub
        await dma_fence_signal(f2)
        await dma_fence_wait(p2, False)
        for x in (p1, p2, again, f1, f2):
            await dma_fence_put(x)
        await drm_syncobj_destroy(file, h)

    await run_case(body)


async def test_chain_signals_only_when_every_earlier_point_has() -> None:
    async def body(k: Kernel) -> None:
        file = SyncobjHandles()
        h = await new_syncobj(file)
        tl = syncobj_of(file, h)
        f1, f2 = fence(), fence()
        for point, f in ((1, f1), (2, f2)):
            chain = await dma_fence_chain_alloc()
            assert chain is not None
            await drm_syncobj_add_point(tl, chain, f, point)
        ret, p2 = await drm_syncobj_find_fence(file, h, 2, 0)
        assert ret == 0 and p2 is not None
        await dma_fence_signal(f2)
        await k.sleep_ns(1_000)
        assert not await dma_fence_is_signaled(p2)  # point 1 is still pending
        k.add_timer(1_000_000, softirq(lambda: dma_fence_signal(f1)), "gpu")
        await dma_fence_wait(p2, False)
        assert k.now == 1_001_000
        for x in (p2, f1, f2):
            await dma_fence_put(x)
        await drm_syncobj_destroy(file, h)

    await run_case(body)


async def test_wait_all_any_and_timeout() -> None:
    async def body(k: Kernel) -> None:
        file = SyncobjHandles()
        fa, fb = fence(), fence()
        ha, hb = await new_syncobj(file, fa), await new_syncobj(file, fb)
        assert await drm_syncobj_wait(file, [ha, hb], None, 1_000_000, 0) == (-ETIME, 0)
        k.add_timer(500_000, softirq(lambda: dma_fence_signal(fb)), "b")
        assert await drm_syncobj_wait(file, [ha, hb], None, 10_000_000, 0) == (0, 1)
        flags = DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL
        assert await drm_syncobj_wait(file, [ha, hb], None, 1_000_000, flags) == (-ETIME, 0)
        k.add_timer(500_000, softirq(lambda: dma_fence_signal(fa)), "a")
        assert await drm_syncobj_wait(file, [ha, hb], None, 10_000_000, flags) == (0, 0)
        for h in (ha, hb):
            await drm_syncobj_destroy(file, h)
        for f in (fa, fb):
            await dma_fence_put(f)

    await run_case(body)


async def test_wait_for_submit() -> None:
    """A point without a fence is -EINVAL, unless WAIT_FOR_SUBMIT waits for one to appear."""

    async def body(k: Kernel) -> None:
        file = SyncobjHandles()
        h = await new_syncobj(file)
        assert await drm_syncobj_wait(file, [h], None, 1_000_000, 0) == (-EINVAL, 0)
        f = fence()

        async def submitter() -> None:
            await k.sleep_ns(1_000)
            await drm_syncobj_replace_fence(syncobj_of(file, h), f)
            await dma_fence_signal(f)

        k.spawn(submitter, name="submitter")
        flags = DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT
        assert await drm_syncobj_wait(file, [h], None, 10_000_000, flags) == (0, 0)
        await drm_syncobj_destroy(file, h)
        await dma_fence_put(f)

    await run_case(body)


async def test_out_sync_attached_while_a_waiter_looks_it_up() -> None:
    """An in-sync lookup racing an out-sync attach sees either no fence or the new one."""
    seen: list[int] = []

    async def scenario(k: Kernel) -> None:
        file = SyncobjHandles()
        h = await new_syncobj(file)
        f = fence()

        async def attacher() -> None:
            chain = await dma_fence_chain_alloc()
            assert chain is not None
            await drm_syncobj_add_point(syncobj_of(file, h), chain, f, 1)

        t = k.spawn(attacher, name="attacher")
        ret, got = await drm_syncobj_find_fence(file, h, 1, 0)
        seen.append(ret)
        if not ret:
            assert got is not None and got.seqno == 1
            await dma_fence_put(got)
        await t.join()
        await dma_fence_signal(f)
        await dma_fence_put(f)
        await drm_syncobj_destroy(file, h)

    r = await aexplore_all(scenario, preemption_bound=2)
    assert r.complete and not r.failing, [k.primary_failure for k, _ in r.failing]
    assert set(seen) == {0, -EINVAL}


async def test_find_takes_its_reference_under_the_table_lock() -> None:
    """drivers/gpu/drm/drm_syncobj.c ``drm_syncobj_find()``: ``spin_lock(&file_private->
    syncobj_table_lock); syncobj = idr_find(...); if (syncobj) drm_syncobj_get(syncobj);
    spin_unlock(...)``, and ``drm_syncobj_destroy()`` removes the handle under the same
    lock before its put: a lookup racing the destroy of the same handle gets either
    nothing or a live reference, never a reference on a freed object."""
    found: list[bool] = []

    async def scenario(k: Kernel) -> None:
        file = SyncobjHandles()
        handle = await new_syncobj(file, fence())

        async def lookup() -> None:
            ret, f = await drm_syncobj_find_fence(file, handle, 0, 0)
            found.append(ret == 0)
            if f is not None:
                await dma_fence_signal(f)
                await dma_fence_put(f)

        async def destroy() -> None:
            assert await drm_syncobj_destroy(file, handle) == 0

        threads = [k.spawn(lookup, name="lookup"), k.spawn(destroy, name="destroy")]
        for t in threads:
            await t.join()

    r = await aexplore_all(scenario, preemption_bound=2)
    assert r.complete and not r.failing, [kk.primary_failure for kk, _ in r.failing]
    assert True in found and False in found
