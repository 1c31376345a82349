"""drm_exec semantics (drivers/gpu/drm/drm_exec.c): references and the contended object.

Each test names one behaviour and fails when it is changed (see docs/mutation.md).
"""

from __future__ import annotations

from panthor_testbed.sched import (
    DRM_EXEC_INTERRUPTIBLE_WAIT,
    GFP_KERNEL,
    DrmExec,
    DrmGemObject,
    Kernel,
    dma_resv_is_locked,
    drm_exec_cleanup,
    drm_exec_fini,
    drm_exec_init,
    drm_exec_is_contended,
    drm_exec_lock_obj,
    drm_exec_locked_objects,
    drm_exec_prepare_array,
    drm_gem_object_put,
    is_freed,
    kzalloc,
)
from panthor_testbed.sched.core.harness import arun
from panthor_testbed.sched.errno import EDEADLK

PAGE_SIZE = 4096


async def gem(name: str) -> DrmGemObject:
    obj = await kzalloc(lambda: DrmGemObject(PAGE_SIZE, name), GFP_KERNEL)
    assert obj is not None
    return obj


def refs(obj: DrmGemObject) -> int:
    return obj.refcount.refcount.refs


async def test_fini_drops_the_contended_objects_reference() -> None:
    """``drm_exec_fini()``: when the loop is left with an object contended (the -EDEADLK
    of ``drm_exec_lock_obj()`` took a reference on it), fini puts that reference.

    The contention is the DEBUG_WW_MUTEX_SLOWPATH injection of ctx#1 on its third lock.
    """
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        objs = [await gem(n) for n in ("A", "B", "C")]
        exec = DrmExec()
        await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
        rets: list[int] = []
        while await drm_exec_cleanup(exec):
            for o in objs:
                rets.append(await drm_exec_lock_obj(exec, o))
                if drm_exec_is_contended(exec):
                    break
            break  # an error path: leave the loop with the contention pending
        seen["rets"] = rets
        seen["contended"] = exec.contended is objs[2]
        seen["refs-before"] = [refs(o) for o in objs]
        await drm_exec_fini(exec)
        seen["refs-after"] = [refs(o) for o in objs]
        seen["locked-after"] = [dma_resv_is_locked(o.resv) for o in objs]
        for o in objs:
            await drm_gem_object_put(o)
        seen["freed"] = [is_freed(o) for o in objs]

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    assert seen == {
        "rets": [0, 0, -EDEADLK],
        "contended": True,
        "refs-before": [2, 2, 2],
        "refs-after": [1, 1, 1],
        "locked-after": [False, False, False],
        "freed": [True, True, True],
    }


async def test_backoff_relocks_the_contended_object_first_and_keeps_one_reference() -> None:
    """``drm_exec_cleanup()`` unlocks and puts everything; ``drm_exec_lock_contended()``
    slow-locks the contended object first (it becomes ``prelocked``), and locking it
    again in the loop only drops the extra reference."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        objs = [await gem(n) for n in ("A", "B", "C")]
        exec = DrmExec()
        await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
        passes = 0
        while await drm_exec_cleanup(exec):
            passes += 1
            for o in objs:
                await drm_exec_lock_obj(exec, o)
                if drm_exec_is_contended(exec):
                    break
            if drm_exec_is_contended(exec):
                continue
        seen["passes"] = passes
        seen["order"] = [o.name for o in drm_exec_locked_objects(exec)]
        seen["refs"] = [refs(o) for o in objs]
        await drm_exec_fini(exec)
        seen["refs-after"] = [refs(o) for o in objs]
        for o in objs:
            await drm_gem_object_put(o)

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    assert seen == {
        "passes": 2,
        "order": ["C", "A", "B"],
        "refs": [2, 2, 2],
        "refs-after": [1, 1, 1],
    }


async def test_prepare_array_returns_the_first_error() -> None:
    """``drm_exec_prepare_array()`` stops at the first object that fails and returns its
    error: here the -EDEADLK of the third lock (the SLOWPATH injection of ctx#1); the
    retry then locks the array with the contended object first."""
    seen: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        objs = [await gem(n) for n in ("A", "B", "C", "D")]
        exec = DrmExec()
        await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT, 0)
        rets: list[int] = []
        while await drm_exec_cleanup(exec):
            ret = await drm_exec_prepare_array(exec, objs, 1)
            rets.append(ret)
            if drm_exec_is_contended(exec):
                continue
        seen["rets"] = rets
        seen["order"] = [o.name for o in drm_exec_locked_objects(exec)]
        await drm_exec_fini(exec)
        for o in objs:
            await drm_gem_object_put(o)

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    assert seen == {"rets": [-EDEADLK, 0], "order": ["C", "A", "B", "D"]}
