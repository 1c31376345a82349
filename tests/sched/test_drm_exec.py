"""drm_exec: ports of drivers/gpu/drm/tests/drm_exec_test.c, plus contention and duplicates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from panthor_testbed.sched import (
    DRM_EXEC_IGNORE_DUPLICATES,
    DRM_EXEC_INTERRUPTIBLE_WAIT,
    GFP_KERNEL,
    DrmExec,
    DrmGemObject,
    Kernel,
    KernelConfig,
    dma_resv_held,
    dma_resv_is_locked,
    drm_exec_cleanup,
    drm_exec_fini,
    drm_exec_init,
    drm_exec_is_contended,
    drm_exec_lock_obj,
    drm_exec_locked_objects,
    drm_exec_prepare_array,
    drm_exec_prepare_obj,
    drm_exec_unlock_obj,
    drm_gem_object_put,
    kzalloc,
)
from panthor_testbed.sched.core.harness import arun
from panthor_testbed.sched.errno import EALREADY, ENOMEM

PAGE_SIZE = 4096


async def gem(name: str) -> DrmGemObject:
    """``drm_gem_private_object_init()`` on a kzalloc'd object."""
    obj = await kzalloc(lambda: DrmGemObject(PAGE_SIZE, name), GFP_KERNEL)
    assert obj is not None
    return obj


async def run_case(body: Callable[[Kernel], Awaitable[None]]) -> Kernel:
    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    return k


async def test_sanitycheck() -> None:
    async def body(k: Kernel) -> None:
        exec = DrmExec()
        await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
        await drm_exec_fini(exec)

    await run_case(body)


async def test_lock() -> None:
    async def body(k: Kernel) -> None:
        gobj = await gem("gobj")
        exec = DrmExec()
        await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
        while await drm_exec_cleanup(exec):
            ret = await drm_exec_lock_obj(exec, gobj)
            if drm_exec_is_contended(exec):
                continue
            assert ret == 0
        assert dma_resv_held(gobj.resv)
        assert drm_exec_locked_objects(exec) == [gobj]
        await drm_exec_fini(exec)
        assert not dma_resv_held(gobj.resv)
        await drm_gem_object_put(gobj)

    await run_case(body)


async def test_lock_unlock() -> None:
    async def body(k: Kernel) -> None:
        gobj = await gem("gobj")
        exec = DrmExec()
        await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
        while await drm_exec_cleanup(exec):
            ret = await drm_exec_lock_obj(exec, gobj)
            if drm_exec_is_contended(exec):
                continue
            assert ret == 0
            await drm_exec_unlock_obj(exec, gobj)
            assert drm_exec_locked_objects(exec) == []
            ret = await drm_exec_lock_obj(exec, gobj)
            if drm_exec_is_contended(exec):
                continue
            assert ret == 0
        await drm_exec_fini(exec)
        await drm_gem_object_put(gobj)

    await run_case(body)


async def test_duplicates() -> None:
    async def body(k: Kernel) -> None:
        gobj = await gem("gobj")
        exec = DrmExec()
        await drm_exec_init(exec, DRM_EXEC_IGNORE_DUPLICATES, 0)
        while await drm_exec_cleanup(exec):
            ret = await drm_exec_lock_obj(exec, gobj)
            if drm_exec_is_contended(exec):
                continue
            assert ret == 0
            ret = await drm_exec_lock_obj(exec, gobj)
            if drm_exec_is_contended(exec):
                continue
            assert ret == 0
        assert drm_exec_locked_objects(exec) == [gobj]
        await drm_exec_unlock_obj(exec, gobj)
        await drm_exec_fini(exec)
        await drm_gem_object_put(gobj)

    await run_case(body)


async def test_duplicate_without_flag_is_ealready() -> None:
    async def body(k: Kernel) -> None:
        gobj = await gem("gobj")
        exec = DrmExec()
        await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
        rets = []
        while await drm_exec_cleanup(exec):
            rets.append(await drm_exec_lock_obj(exec, gobj))
            rets.append(await drm_exec_lock_obj(exec, gobj))
            if drm_exec_is_contended(exec):
                continue
            break
        assert rets == [0, -EALREADY]
        await drm_exec_fini(exec)
        await drm_gem_object_put(gobj)

    await run_case(body)


async def test_prepare() -> None:
    async def body(k: Kernel) -> None:
        gobj = await gem("gobj")
        exec = DrmExec()
        await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
        while await drm_exec_cleanup(exec):
            ret = await drm_exec_prepare_obj(exec, gobj, 1)
            if drm_exec_is_contended(exec):
                continue
            assert ret == 0
        assert gobj.resv.fences is not None and gobj.resv.fences.max_fences >= 1
        await drm_exec_fini(exec)
        await drm_gem_object_put(gobj)

    await run_case(body)


async def test_prepare_array() -> None:
    async def body(k: Kernel) -> None:
        objs = [await gem("gobj1"), await gem("gobj2")]
        exec = DrmExec()
        await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
        ret = -1
        while await drm_exec_cleanup(exec):
            ret = await drm_exec_prepare_array(exec, objs, 1)
        assert ret == 0
        assert drm_exec_locked_objects(exec) == objs
        await drm_exec_fini(exec)
        for o in objs:
            await drm_gem_object_put(o)

    await run_case(body)


async def test_multiple_loops() -> None:
    async def body(k: Kernel) -> None:
        for _ in range(2):
            exec = DrmExec()
            await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
            while await drm_exec_cleanup(exec):
                break
            await drm_exec_fini(exec)

    await run_case(body)


async def test_ignored_duplicate_still_reserves_fences() -> None:
    """Two GEMs sharing a resv (a VM-private BO): the second is -EALREADY, ignored, reserved."""

    async def body(k: Kernel) -> None:
        root = await gem("root")
        bo = await kzalloc(lambda: DrmGemObject(PAGE_SIZE, "private", resv=root.resv), GFP_KERNEL)
        assert bo is not None
        exec = DrmExec()
        await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT | DRM_EXEC_IGNORE_DUPLICATES, 0)
        while await drm_exec_cleanup(exec):
            ret = await drm_exec_prepare_obj(exec, root, 1)
            if drm_exec_is_contended(exec):
                continue
            assert ret == 0
            ret = await drm_exec_prepare_obj(exec, bo, 6)
            if drm_exec_is_contended(exec):
                continue
            assert ret == 0
        assert drm_exec_locked_objects(exec) == [root]
        assert root.resv.fences is not None and root.resv.fences.max_fences >= 6
        await drm_exec_fini(exec)
        await drm_gem_object_put(bo)
        await drm_gem_object_put(root)

    await run_case(body)


async def test_table_growth_failure_unlocks() -> None:
    """Growing the object table fails: -ENOMEM, and the object just locked is unlocked."""
    got: list[int] = []

    async def body(k: Kernel) -> None:
        a, b = DrmGemObject(PAGE_SIZE, "a"), DrmGemObject(PAGE_SIZE, "b")
        exec = DrmExec()
        await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 1)  # allocation #1: one slot
        while await drm_exec_cleanup(exec):
            got.append(await drm_exec_lock_obj(exec, a))
            got.append(await drm_exec_lock_obj(exec, b))  # growth: allocation #2 fails
            if drm_exec_is_contended(exec):
                continue
            break
        # b is unlocked; dma_resv_held(b) would still be true: lockdep merged a
        # into the ctx's first lock, which answers for every resv (match_held_lock)
        assert dma_resv_held(a.resv) and not dma_resv_is_locked(b.resv)
        await drm_exec_fini(exec)
        for o in (a, b):
            await drm_gem_object_put(o)

    k = await arun(body, config=KernelConfig(alloc_fail_nth=2))
    assert not k.failures, [f.message for f in k.failures]
    assert got == [0, -ENOMEM]


async def test_contention_backs_off_and_relocks_the_contended_first() -> None:
    """Two contexts taking A,B and B,A: whoever dies unlocks, slow-locks the contended object."""
    log: list[str] = []

    async def body(k: Kernel) -> None:
        a, b = await gem("A"), await gem("B")

        async def locker(objs: list[DrmGemObject], tag: str) -> None:
            exec = DrmExec()
            await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
            while await drm_exec_cleanup(exec):
                for o in objs:
                    ret = await drm_exec_prepare_obj(exec, o, 1)
                    if drm_exec_is_contended(exec):
                        log.append(f"{tag} backs off on {o.name}")
                        await k.sleep_ns(0)
                        break
                    assert ret == 0
                    await k.sleep_ns(1000)  # give the other a chance to take its first
            got = [o.name for o in drm_exec_locked_objects(exec)]
            log.append(f"{tag} locked {got}")
            await drm_exec_fini(exec)

        t1 = k.spawn(locker, [a, b], "t1", name="t1")
        t2 = k.spawn(locker, [b, a], "t2", name="t2")
        await t1.join()
        await t2.join()
        for o in (a, b):
            await drm_gem_object_put(o)

    await run_case(body)
    assert "t2 backs off on A" in log
    # After the back-off, t2 slow-locked A first: its locked list starts with A.
    assert "t2 locked ['A', 'B']" in log and "t1 locked ['A', 'B']" in log


async def test_fini_with_pending_contention_drops_the_reference() -> None:
    """Breaking out of the loop on an error with an object contended: fini puts it."""

    async def body(k: Kernel) -> None:
        a = await gem("A")
        exec = DrmExec()
        await drm_exec_init(exec, 0, 0)
        while await drm_exec_cleanup(exec):
            await drm_exec_lock_obj(exec, a)
            break
        await drm_exec_fini(exec)
        await drm_gem_object_put(a)

    await run_case(body)
