"""drm_syncobj: binary and timeline sync objects (drivers/gpu/drm/drm_syncobj.c).

Enough for VM_BIND's in/out syncs: a syncobj holds one fence pointer under
its spinlock, a plain fence (binary) or a :class:`~.dma_fence_chain.DmaFenceChain`
(timeline, seqno = point). ``drm_syncobj_find_fence`` looks a point up,
``drm_syncobj_replace_fence`` / ``drm_syncobj_add_point`` attach a fence,
and :func:`drm_syncobj_wait` is the WAIT ioctl for test harnesses.

Handles live in a :class:`SyncobjHandles` table (``file->syncobj_idr``);
the functions taking a ``file`` accept the table itself or any object with
a ``syncobj_idr`` attribute holding one.
"""

from __future__ import annotations

from typing import Final

from ..core.clock import NSEC_PER_JIFFY
from ..core.kernel import current_kernel, preempt
from ..core.thread import SimThread
from ..core.waitqueue import WaitQueue
from ..dma_buf.dma_fence import (
    DmaFence,
    DmaFenceCb,
    dma_fence_add_callback,
    dma_fence_get_atomic,
    dma_fence_get_stub_atomic,
    dma_fence_put_atomic,
    dma_fence_remove_callback,
    dma_fence_test_signaled_flag,
    dma_fence_wait_timeout,
)
from ..dma_buf.dma_fence_chain import (
    DmaFenceChain,
    dma_fence_chain_find_seqno,
    dma_fence_chain_init,
    dma_fence_chain_iter,
)
from ..errno import EINVAL, ENOENT, ENOMEM, ETIME
from ..locking.lockdep import might_sleep
from ..locking.refcount import Kref, kref_get, kref_get_atomic, kref_put
from ..locking.spin import SyncSpinLock
from ..mm.gfp import GFP_KERNEL
from ..mm.memory import kfree, kzalloc

DRM_SYNCOBJ_CREATE_SIGNALED: Final = 1 << 0
DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL: Final = 1 << 0
DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT: Final = 1 << 1
DRM_SYNCOBJ_WAIT_FLAGS_WAIT_AVAILABLE: Final = 1 << 2


class DrmSyncobj:
    """``struct drm_syncobj``."""

    def __init__(self, name: str = "syncobj") -> None:
        self.name = name
        self.refcount = Kref(self, f"{name}.refcount")
        self.refcount.refcount.refs = 1
        self.fence: DmaFence | None = None
        self.lock = SyncSpinLock(f"{name}.lock", "&syncobj->lock")
        # syncobj->cb_list: WAIT_FOR_SUBMIT waiters wait for a fence to appear.
        self.submit_wq = WaitQueue(
            f"{name} (no fence yet)", klass="drm_syncobj submit", describe=self._describe
        )

    def _describe(self) -> str:
        return f"drm_syncobj {self.name}: waiting for a fence to be attached"

    def __repr__(self) -> str:
        return f"<drm_syncobj {self.name} fence={self.fence!r}>"


class SyncobjHandles:
    """``file->syncobj_idr``: handle -> syncobj (handles start at 1)."""

    def __init__(self) -> None:
        self.table: dict[int, DrmSyncobj] = {}
        self.next_handle = 1
        self.lock = SyncSpinLock("file->syncobj_table_lock", "&file_private->syncobj_table_lock")


def _handles(file: object) -> SyncobjHandles:
    if isinstance(file, SyncobjHandles):
        return file
    table = getattr(file, "syncobj_idr", None)
    if not isinstance(table, SyncobjHandles):
        raise TypeError(f"{file!r} has no syncobj handle table")
    return table


# ---------------------------------------------------------------------- lifetime


async def drm_syncobj_create(
    flags: int, fence: DmaFence | None, name: str = "syncobj"
) -> tuple[int, DrmSyncobj | None]:
    """``drm_syncobj_create()``: (0, syncobj) or (-ENOMEM, None)."""
    syncobj = await kzalloc(lambda: DrmSyncobj(name), GFP_KERNEL)
    if syncobj is None:
        return -ENOMEM, None
    if flags & DRM_SYNCOBJ_CREATE_SIGNALED:
        stub = dma_fence_get_stub_atomic()
        await drm_syncobj_replace_fence(syncobj, stub)
        dma_fence_put_atomic(stub)
    if fence is not None:
        await drm_syncobj_replace_fence(syncobj, fence)
    return 0, syncobj


async def drm_syncobj_get(syncobj: DrmSyncobj) -> None:
    """``drm_syncobj_get()``."""
    await kref_get(syncobj.refcount)


async def _syncobj_free(kref: Kref) -> None:
    """``drm_syncobj_free()``: drop the fence, free the object."""
    syncobj = kref.container
    assert isinstance(syncobj, DrmSyncobj)
    fence = syncobj.fence
    syncobj.fence = None
    dma_fence_put_atomic(fence)
    kfree(syncobj)


async def drm_syncobj_put(syncobj: DrmSyncobj | None) -> None:
    """``drm_syncobj_put()``."""
    if syncobj is not None:
        await kref_put(syncobj.refcount, _syncobj_free)


async def drm_syncobj_get_handle(file: object, syncobj: DrmSyncobj) -> tuple[int, int]:
    """``drm_syncobj_get_handle()``: (0, handle); the table takes a reference."""
    await drm_syncobj_get(syncobj)
    h = _handles(file)
    with h.lock:
        handle = h.next_handle
        h.next_handle += 1
        h.table[handle] = syncobj
    return 0, handle


async def drm_syncobj_find(file: object, handle: int) -> DrmSyncobj | None:
    """``drm_syncobj_find()``: a new reference, or None for an unknown handle."""
    await preempt()
    h = _handles(file)
    with h.lock:
        syncobj = h.table.get(handle)
        if syncobj is not None:
            kref_get_atomic(syncobj.refcount)  # under the table lock: destroy cannot free it
    return syncobj


async def drm_syncobj_destroy(file: object, handle: int) -> int:
    """``drm_syncobj_destroy()``: drop the handle; -EINVAL if unknown."""
    await preempt()
    h = _handles(file)
    with h.lock:
        syncobj = h.table.pop(handle, None)
    if syncobj is None:
        return -EINVAL
    await drm_syncobj_put(syncobj)
    return 0


# ---------------------------------------------------------------------- fences


def drm_syncobj_fence_get(syncobj: DrmSyncobj) -> DmaFence | None:
    """``drm_syncobj_fence_get()``: a reference on the current fence."""
    return dma_fence_get_atomic(syncobj.fence)


async def drm_syncobj_replace_fence(syncobj: DrmSyncobj, fence: DmaFence | None) -> None:
    """``drm_syncobj_replace_fence()`` (binary): swap, wake waiters, put the old fence."""
    await preempt()
    dma_fence_get_atomic(fence)
    with syncobj.lock:
        old = syncobj.fence
        syncobj.fence = fence
        if fence is not old:
            syncobj.submit_wq.wake_all()
    dma_fence_put_atomic(old)
    current_kernel().ev("syncobj_replace", syncobj.name, fence.label if fence else "NULL")


async def drm_syncobj_add_point(
    syncobj: DrmSyncobj, chain: DmaFenceChain, fence: DmaFence, point: int
) -> None:
    """``drm_syncobj_add_point()`` (timeline): the preallocated ``chain`` becomes the head."""
    await preempt()
    k = current_kernel()
    dma_fence_get_atomic(fence)
    with syncobj.lock:
        prev = drm_syncobj_fence_get(syncobj)
        if prev is not None and prev.seqno >= point:
            k.ev("DRM_DEBUG", syncobj.name, "You are adding an unorder point to timeline!")
        dma_fence_chain_init(chain, prev, fence, point)
        syncobj.fence = chain
        syncobj.submit_wq.wake_all()
    # Walk the chain once to trigger garbage collection (also drops the
    # syncobj's reference on the old head).
    if prev is not None:
        dma_fence_chain_iter(prev)
    dma_fence_put_atomic(prev)
    k.ev("syncobj_add_point", syncobj.name, f"{point}: {fence.label}")


# DRM_SYNCOBJ_WAIT_FOR_SUBMIT_TIMEOUT: how long drm_syncobj_find_fence() waits for a fence.
DRM_SYNCOBJ_WAIT_FOR_SUBMIT_TIMEOUT: Final = 5 * 10**9


async def drm_syncobj_find_fence(
    file: object,
    handle: int,
    point: int,
    flags: int,
    timeout_ns: int = DRM_SYNCOBJ_WAIT_FOR_SUBMIT_TIMEOUT,
) -> tuple[int, DmaFence | None]:
    """``drm_syncobj_find_fence()``: (0, fence) or (-ENOENT / -EINVAL / -ETIME, None).

    ``point > 0`` looks a timeline point up; a point already signalled comes
    back as ``dma_fence_get_stub()``. Without a fence (and without
    WAIT_FOR_SUBMIT) it is -EINVAL; with WAIT_FOR_SUBMIT it waits up to
    ``timeout_ns`` for one (the kernel's fixed 5 s here; the WAIT ioctls wait
    up to the user's deadline, as ``drm_syncobj_array_wait_timeout()`` does),
    then -ETIME.
    """
    if flags & ~DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT:
        return -EINVAL, None
    syncobj = await drm_syncobj_find(file, handle)
    if syncobj is None:
        return -ENOENT, None
    deadline = current_kernel().now + timeout_ns
    try:
        if flags & DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT:
            might_sleep()
        while True:
            fence = drm_syncobj_fence_get(syncobj)
            if fence is not None:
                ret, found = dma_fence_chain_find_seqno(fence, point)
                if not ret:
                    if found is None:
                        found = dma_fence_get_stub_atomic()
                    return 0, found
                dma_fence_put_atomic(found)
            else:
                ret = -EINVAL
            if not flags & DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT:
                return ret, None
            left = deadline - current_kernel().now
            if left <= 0:
                return -ETIME, None
            await syncobj.submit_wq.wait(left)
    finally:
        await drm_syncobj_put(syncobj)


# ---------------------------------------------------------------------- the WAIT ioctl


class _ArrayWait:
    """Block reason of :func:`drm_syncobj_wait`."""

    __slots__ = ("fences", "klass", "name", "thread")

    def __init__(self, fences: list[DmaFence], thread: SimThread) -> None:
        self.fences = fences
        self.thread = thread
        self.name = "drm_syncobj_wait"
        self.klass = "dma_fence"

    def describe(self) -> str:
        pending = [f for f in self.fences if not dma_fence_test_signaled_flag(f)]
        parts = []
        for f in pending:
            who, _ = f.ops.signaller(f)
            parts.append(f"{f.label} (to be signalled by {who})")
        return "drm_syncobj_wait on " + ", ".join(parts or ["nothing"])

    def holder(self) -> SimThread | None:
        for f in self.fences:
            if not dma_fence_test_signaled_flag(f):
                return f.ops.signaller(f)[1]
        return None


async def _array_wait_cb(fence: DmaFence, cb: DmaFenceCb) -> None:
    wait = cb.container
    assert isinstance(wait, _ArrayWait)
    if wait.thread.blocked_on is wait:
        current_kernel().make_runnable(wait.thread)


async def drm_syncobj_wait(
    file: object, handles: list[int], points: list[int] | None, timeout_ns: int, flags: int
) -> tuple[int, int]:
    """``DRM_IOCTL_SYNCOBJ_(TIMELINE_)WAIT``: (0 or -ETIME / -EINVAL / -ENOENT, first index).

    WAIT_ALL waits for every point, otherwise for the first one. A point
    without a fence is -EINVAL unless WAIT_FOR_SUBMIT, which waits for it.
    """
    k = current_kernel()
    cur = k.current
    assert cur is not None
    fences: list[DmaFence] = []
    deadline = k.now + timeout_ns
    try:
        for i, handle in enumerate(handles):
            point = points[i] if points is not None else 0
            ret, fence = await drm_syncobj_find_fence(
                file,
                handle,
                point,
                flags & DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT,
                max(0, deadline - k.now),
            )
            if ret:
                return ret, 0
            assert fence is not None
            fences.append(fence)
        if flags & DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL:
            for fence in fences:
                left = max(0, deadline - k.now)
                jiffies = (left + NSEC_PER_JIFFY - 1) // NSEC_PER_JIFFY
                if await dma_fence_wait_timeout(fence, True, jiffies) <= 0 and not (
                    dma_fence_test_signaled_flag(fence)
                ):
                    return -ETIME, 0
            return 0, 0
        wait = _ArrayWait(fences, cur)
        cbs = [DmaFenceCb(wait) for _ in fences]
        try:
            while True:
                for i, fence in enumerate(fences):
                    if dma_fence_test_signaled_flag(fence):
                        return 0, i
                for fence, cb in zip(fences, cbs, strict=True):
                    if cb.fence is None:
                        await dma_fence_add_callback(fence, cb, _array_wait_cb)
                left = deadline - k.now
                if left <= 0:
                    return -ETIME, 0
                await preempt()
                if any(dma_fence_test_signaled_flag(f) for f in fences):
                    continue
                await k.block_current(wait, left)
        finally:
            for fence, cb in zip(fences, cbs, strict=True):
                if cb.fence is fence:
                    await dma_fence_remove_callback(fence, cb)
    finally:
        for fence in fences:
            dma_fence_put_atomic(fence)
