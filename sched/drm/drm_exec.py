"""drm_exec: lock many GEM objects with ww back-off (drivers/gpu/drm/drm_exec.c).

The C macros become a loop::

    await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT | DRM_EXEC_IGNORE_DUPLICATES, 0)
    while await drm_exec_cleanup(exec):            # drm_exec_until_all_locked(exec)
        ret = await drm_exec_prepare_obj(exec, obj, 1)
        if drm_exec_is_contended(exec):            # drm_exec_retry_on_contention(exec)
            continue
        if ret:
            break
    ...
    await drm_exec_fini(exec)

Objects are :class:`~.drm_gem.DrmGemObject` (their ``resv`` is locked, and a
reference is held while they are tracked).
"""

from __future__ import annotations

from typing import Final

from ..core.kernel import current_kernel, preempt
from ..dma_buf.dma_resv import (
    dma_resv_lock,
    dma_resv_lock_interruptible,
    dma_resv_lock_slow,
    dma_resv_lock_slow_interruptible,
    dma_resv_reserve_fences,
    dma_resv_unlock,
    reservation_ww_class,
)
from ..errno import EALREADY, EDEADLK, ENOMEM
from ..locking.ww_mutex import WwAcquireCtx, ww_acquire_done, ww_acquire_fini, ww_acquire_init
from ..mm.gfp import GFP_KERNEL
from ..mm.memory import KArray, kcalloc, kvfree
from .drm_gem import DrmGemObject, drm_gem_object_get, drm_gem_object_put

DRM_EXEC_INTERRUPTIBLE_WAIT: Final = 1 << 0
DRM_EXEC_IGNORE_DUPLICATES: Final = 1 << 1

_PAGE_SIZE: Final = 4096
_PTRS_PER_PAGE: Final = _PAGE_SIZE // 8


class _Dummy:
    """``DRM_EXEC_DUMMY``: the loop has not started (no ticket yet)."""

    def __repr__(self) -> str:
        return "DRM_EXEC_DUMMY"


DRM_EXEC_DUMMY: Final = _Dummy()


class DrmExec:
    """``struct drm_exec``."""

    __slots__ = (
        "contended",
        "flags",
        "max_objects",
        "num_objects",
        "objects",
        "prelocked",
        "ticket",
    )

    def __init__(self) -> None:
        self.flags = 0
        self.ticket = WwAcquireCtx()
        self.num_objects = 0
        self.max_objects = 0
        self.objects: KArray | None = None
        self.contended: DrmGemObject | _Dummy | None = DRM_EXEC_DUMMY
        self.prelocked: DrmGemObject | None = None

    def __repr__(self) -> str:
        names = [o.name for o in drm_exec_locked_objects(self)]
        return f"<drm_exec ctx#{self.ticket.stamp} locked={names} contended={self.contended!r}>"


async def drm_exec_init(exec: DrmExec, flags: int, nr: int) -> None:
    """``drm_exec_init()``: a failed table allocation is retried on first use."""
    if not nr:
        nr = _PTRS_PER_PAGE
    exec.flags = flags
    exec.objects = await kcalloc(nr, GFP_KERNEL)
    exec.max_objects = nr if exec.objects is not None else 0
    exec.num_objects = 0
    exec.contended = DRM_EXEC_DUMMY
    exec.prelocked = None


def drm_exec_locked_objects(exec: DrmExec) -> list[DrmGemObject]:
    """``drm_exec_for_each_locked_object()``: the locked objects, in locking order."""
    if exec.objects is None:
        return []
    return [o for o in exec.objects[: exec.num_objects]]


def drm_exec_is_contended(exec: DrmExec) -> bool:
    """``drm_exec_is_contended()``: true after an -EDEADLK (restart the loop)."""
    return exec.contended is not None and exec.contended is not DRM_EXEC_DUMMY


async def _unlock_all(exec: DrmExec) -> None:
    """``drm_exec_unlock_all()``: unlock and put in reverse order, then the prelocked one."""
    for obj in reversed(drm_exec_locked_objects(exec)):
        await dma_resv_unlock(obj.resv)
        await drm_gem_object_put(obj)
    await drm_gem_object_put(exec.prelocked)
    exec.prelocked = None


async def drm_exec_fini(exec: DrmExec) -> None:
    """``drm_exec_fini()``: unlock and put everything, free the table, end the ticket."""
    await _unlock_all(exec)
    kvfree(exec.objects)
    exec.objects = None
    if exec.contended is not DRM_EXEC_DUMMY:
        assert not isinstance(exec.contended, _Dummy)
        await drm_gem_object_put(exec.contended)
        await ww_acquire_fini(exec.ticket)


async def drm_exec_cleanup(exec: DrmExec) -> bool:
    """``drm_exec_cleanup()``: stay in the retry loop? (``drm_exec_until_all_locked``)."""
    await preempt()
    if exec.contended is None:
        await ww_acquire_done(exec.ticket)
        return False
    if exec.contended is DRM_EXEC_DUMMY:
        exec.contended = None
        await ww_acquire_init(exec.ticket, reservation_ww_class)
        return True
    current_kernel().ev("drm_exec_backoff", f"ctx#{exec.ticket.stamp}", str(exec.contended))
    await _unlock_all(exec)
    exec.num_objects = 0
    return True


async def _obj_locked(exec: DrmExec, obj: DrmGemObject) -> int:
    """``drm_exec_obj_locked()``: track it (growing the table is an allocation)."""
    if exec.num_objects == exec.max_objects:
        new = await kcalloc(exec.max_objects + _PTRS_PER_PAGE, GFP_KERNEL)  # kvrealloc
        if new is None:
            return -ENOMEM
        if exec.objects is not None:
            new[: exec.num_objects] = exec.objects[: exec.num_objects]
            kvfree(exec.objects)
        exec.objects = new
        exec.max_objects += _PTRS_PER_PAGE
    await drm_gem_object_get(obj)
    assert exec.objects is not None
    exec.objects[exec.num_objects] = obj
    exec.num_objects += 1
    return 0


async def _lock_contended(exec: DrmExec) -> int:
    """``drm_exec_lock_contended()``: slow-lock the object we backed off from, first."""
    obj = exec.contended
    if obj is None or isinstance(obj, _Dummy):
        return 0
    exec.contended = None
    if exec.flags & DRM_EXEC_INTERRUPTIBLE_WAIT:
        ret = await dma_resv_lock_slow_interruptible(obj.resv, exec.ticket)
        if ret:
            await drm_gem_object_put(obj)
            return ret
    else:
        await dma_resv_lock_slow(obj.resv, exec.ticket)
    ret = await _obj_locked(exec, obj)
    if ret:
        await dma_resv_unlock(obj.resv)
        await drm_gem_object_put(obj)
        return ret
    exec.prelocked = obj
    return 0


async def drm_exec_lock_obj(exec: DrmExec, obj: DrmGemObject) -> int:
    """``drm_exec_lock_obj()``: 0, -EDEADLK (contended), -EALREADY or -ENOMEM."""
    ret = await _lock_contended(exec)
    if ret:
        return ret
    if exec.prelocked is obj:
        await drm_gem_object_put(exec.prelocked)
        exec.prelocked = None
        return 0
    if exec.flags & DRM_EXEC_INTERRUPTIBLE_WAIT:
        ret = await dma_resv_lock_interruptible(obj.resv, exec.ticket)
    else:
        ret = await dma_resv_lock(obj.resv, exec.ticket)
    if ret == -EDEADLK:
        await drm_gem_object_get(obj)
        exec.contended = obj
        return -EDEADLK
    if ret == -EALREADY and exec.flags & DRM_EXEC_IGNORE_DUPLICATES:
        return 0
    if ret:
        return ret
    ret = await _obj_locked(exec, obj)
    if ret:
        await dma_resv_unlock(obj.resv)
        return ret
    return 0


async def drm_exec_unlock_obj(exec: DrmExec, obj: DrmGemObject) -> None:
    """``drm_exec_unlock_obj()``: unlock one object and forget it."""
    await preempt()
    objs = exec.objects
    if objs is None:
        return
    for i in range(exec.num_objects - 1, -1, -1):
        if objs[i] is obj:
            await dma_resv_unlock(obj.resv)
            for j in range(i + 1, exec.num_objects):
                objs[j - 1] = objs[j]
            exec.num_objects -= 1
            objs[exec.num_objects] = None
            await drm_gem_object_put(obj)
            return


async def drm_exec_prepare_obj(exec: DrmExec, obj: DrmGemObject, num_fences: int) -> int:
    """``drm_exec_prepare_obj()``: lock, then reserve ``num_fences`` slots (unlock on failure)."""
    ret = await drm_exec_lock_obj(exec, obj)
    if ret:
        return ret
    ret = await dma_resv_reserve_fences(obj.resv, num_fences)
    if ret:
        await drm_exec_unlock_obj(exec, obj)
        return ret
    return 0


async def drm_exec_prepare_array(
    exec: DrmExec, objects: list[DrmGemObject], num_fences: int
) -> int:
    """``drm_exec_prepare_array()``: stop at the first error."""
    for obj in objects:
        ret = await drm_exec_prepare_obj(exec, obj, num_fences)
        if ret:
            return ret
    return 0
