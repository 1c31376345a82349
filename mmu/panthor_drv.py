"""drivers/gpu/drm/panthor/panthor_drv.c (v6.15): the ioctls, file open/close, DRM core around them.

The kernel functions come in panthor_drv.c's order, each under its C name:
the user <-> kernel object copy helpers (``panthor_set_uobj``,
``panthor_get_uobj_array``), the submit context of VM_BIND and GROUP_SUBMIT
(``panthor_submit_ctx_*``), the ioctls (``panthor_ioctl_*(ddev, data,
file)``), ``panthor_open`` / ``panthor_postclose`` and the ioctl table.

Below them, the part of the DRM core (drm_ioctl.c, drm_file.c, drm_gem.c,
drm_syncobj.c) that user space meets first: :func:`drm_open` /
:func:`drm_release` and :func:`drm_ioctl`, which copies the ioctl's struct
in from the caller's dataclass (as bytes of the size the command encodes),
calls the ioctl, and copies the struct back (always, even on error, as the
kernel does), plus the core ioctls the VM tests need (GEM_CLOSE,
SYNCOBJ_CREATE / DESTROY / TIMELINE_WAIT).

Pointers inside the structs (the op arrays, sync arrays, DEV_QUERY's
``pointer``) address the file's fake user memory (:mod:`.uaccess`).

Model deviations, all named where they are made:

* ``panthor_gem_create_with_handle`` (panthor_gem.c) is here until the GEM
  file provides it; BO_MMAP_OFFSET hands out fake-offset ranges without the
  vma offset manager's allocation.
* GROUP_SUBMIT: the command stream is not decoded; what the stream at
  ``stream_addr`` does is the :class:`~.hw.csf.CsStream` user space wrote
  there with :func:`user_write_cs_stream` (none: the job only fetches it).
* DEV_QUERY: GPU_INFO carries what the model's GPU has (ids, MMU features,
  AS mask); TIMESTAMP_INFO reads virtual time (no arch timer: frequency 0).
* Group priorities above MEDIUM need CAP_SYS_NICE or DRM master:
  ``PanthorDrmFile.cap_sys_nice`` stands for both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from ..sched.core.kernel import current_kernel, preempt
from ..sched.dma_buf.dma_fence import DmaFence, dma_fence_get, dma_fence_put
from ..sched.dma_buf.dma_fence_chain import (
    DmaFenceChain,
    dma_fence_chain_alloc,
    dma_fence_chain_free,
)
from ..sched.drm.drm_drv import drm_dev_enter, drm_dev_exit
from ..sched.drm.drm_exec import (
    DRM_EXEC_IGNORE_DUPLICATES,
    DRM_EXEC_INTERRUPTIBLE_WAIT,
    DrmExec,
    drm_exec_cleanup,
    drm_exec_fini,
    drm_exec_init,
    drm_exec_is_contended,
)
from ..sched.drm.drm_file import (
    DrmFile,
    drm_gem_handle_create,
    drm_gem_handle_delete,
    drm_gem_object_lookup,
    drm_gem_release,
)
from ..sched.drm.drm_gem import DrmGemObject, drm_gem_object_get, drm_gem_object_put
from ..sched.drm.drm_sched import drm_sched_job_add_dependency, drm_sched_job_arm
from ..sched.drm.drm_sched_entity import drm_sched_entity_push_job
from ..sched.drm.drm_sched_types import DrmSchedJob
from ..sched.drm.syncobj import (
    DrmSyncobj,
    SyncobjHandles,
    drm_syncobj_add_point,
    drm_syncobj_create,
    drm_syncobj_destroy,
    drm_syncobj_find,
    drm_syncobj_find_fence,
    drm_syncobj_get_handle,
    drm_syncobj_put,
    drm_syncobj_replace_fence,
    drm_syncobj_wait,
)
from ..sched.errno import (
    EACCES,
    EFAULT,
    EINVAL,
    ENODEV,
    ENOENT,
    ENOMEM,
    ENOTTY,
    EPERM,
    IS_ERR,
    PTR_ERR,
    ErrPtr,
)
from ..sched.mm.gfp import GFP_KERNEL
from ..sched.mm.memory import KArray, kfree, kmalloc, kvfree, kzalloc
from ..sched.warn import WARN_ON_ONCE, drm_WARN_ON
from .gem_shmem import PanthorGemObject, panthor_gem_create, to_panthor_bo
from .panthor_device import PanthorDevice, PanthorFile
from .panthor_drm import (
    _IOC_SIZE,
    DRM_COMMAND_BASE,
    DRM_COMMAND_END,
    DRM_IOCTL_BASE,
    DRM_IOCTL_GEM_CLOSE,
    DRM_IOCTL_NR,
    DRM_IOCTL_PANTHOR_BO_CREATE,
    DRM_IOCTL_PANTHOR_BO_MMAP_OFFSET,
    DRM_IOCTL_PANTHOR_DEV_QUERY,
    DRM_IOCTL_PANTHOR_GROUP_CREATE,
    DRM_IOCTL_PANTHOR_GROUP_DESTROY,
    DRM_IOCTL_PANTHOR_GROUP_GET_STATE,
    DRM_IOCTL_PANTHOR_GROUP_SUBMIT,
    DRM_IOCTL_PANTHOR_TILER_HEAP_CREATE,
    DRM_IOCTL_PANTHOR_TILER_HEAP_DESTROY,
    DRM_IOCTL_PANTHOR_VM_BIND,
    DRM_IOCTL_PANTHOR_VM_CREATE,
    DRM_IOCTL_PANTHOR_VM_DESTROY,
    DRM_IOCTL_PANTHOR_VM_GET_STATE,
    DRM_IOCTL_SYNCOBJ_CREATE,
    DRM_IOCTL_SYNCOBJ_DESTROY,
    DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT,
    DRM_IOCTL_TYPE,
    DRM_PANTHOR_BO_NO_MMAP,
    DRM_PANTHOR_DEV_QUERY_CSIF_INFO,
    DRM_PANTHOR_DEV_QUERY_GPU_INFO,
    DRM_PANTHOR_DEV_QUERY_GROUP_PRIORITIES_INFO,
    DRM_PANTHOR_DEV_QUERY_TIMESTAMP_INFO,
    DRM_PANTHOR_SYNC_OP_HANDLE_TYPE_MASK,
    DRM_PANTHOR_SYNC_OP_HANDLE_TYPE_SYNCOBJ,
    DRM_PANTHOR_SYNC_OP_HANDLE_TYPE_TIMELINE_SYNCOBJ,
    DRM_PANTHOR_SYNC_OP_SIGNAL,
    DRM_PANTHOR_VM_BIND_ASYNC,
    DRM_PANTHOR_VM_STATE_UNUSABLE,
    DRM_PANTHOR_VM_STATE_USABLE,
    DRM_SYNCOBJ_CREATE_SIGNALED,
    DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL,
    DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT,
    IOC_IN,
    IOC_OUT,
    PANTHOR_GROUP_PRIORITY_MEDIUM,
    PANTHOR_GROUP_PRIORITY_REALTIME,
    drm_gem_close,
    drm_panthor_bo_create,
    drm_panthor_bo_mmap_offset,
    drm_panthor_csif_info,
    drm_panthor_dev_query,
    drm_panthor_gpu_info,
    drm_panthor_group_create,
    drm_panthor_group_destroy,
    drm_panthor_group_get_state,
    drm_panthor_group_priorities_info,
    drm_panthor_group_submit,
    drm_panthor_obj_array,
    drm_panthor_queue_create,
    drm_panthor_queue_submit,
    drm_panthor_sync_op,
    drm_panthor_tiler_heap_create,
    drm_panthor_tiler_heap_destroy,
    drm_panthor_timestamp_info,
    drm_panthor_vm_bind,
    drm_panthor_vm_bind_op,
    drm_panthor_vm_create,
    drm_panthor_vm_destroy,
    drm_panthor_vm_get_state,
    drm_syncobj_timeline_wait,
    uapi_copy_into,
    uapi_from_bytes,
    uapi_min_size,
    uapi_sizeof,
    uapi_to_bytes,
)
from .panthor_drm import drm_syncobj_create as drm_syncobj_create_args
from .panthor_drm import drm_syncobj_destroy as drm_syncobj_destroy_args
from .panthor_heap import (
    PanthorHeapPool,
    panthor_heap_create,
    panthor_heap_destroy,
    panthor_heap_pool_put,
)
from .panthor_mmu import (
    PanthorVm,
    panthor_vm_bind_exec_sync_op,
    panthor_vm_bind_job_create,
    panthor_vm_bind_job_prepare_resvs,
    panthor_vm_bind_job_put,
    panthor_vm_bind_job_update_resvs,
    panthor_vm_get_heap_pool,
    panthor_vm_is_unusable,
    panthor_vm_pool_create,
    panthor_vm_pool_create_vm,
    panthor_vm_pool_destroy,
    panthor_vm_pool_destroy_vm,
    panthor_vm_pool_get_vm,
    panthor_vm_prepare_mapped_bos_resvs,
    panthor_vm_put,
    panthor_vm_root_gem,
)
from .panthor_sched import (
    panthor_group_create,
    panthor_group_destroy,
    panthor_group_get_state,
    panthor_group_pool_create,
    panthor_group_pool_destroy,
    panthor_job_create,
    panthor_job_put,
    panthor_job_update_resvs,
    panthor_job_vm,
)
from .uaccess import (
    UserMm,
    clear_user,
    copy_from_user,
    copy_struct_from_user,
    copy_to_user,
)

U64_MAX: Final = (1 << 64) - 1
INT_MAX: Final = (1 << 31) - 1
PAGE_SHIFT: Final = 12
# include/linux/fs.h on 64-bit: the largest shmem file shmem_file_setup() accepts.
MAX_LFS_FILESIZE: Final = (1 << 63) - 1
# drm_gem.c, 64-bit: fake mmap offsets start above 4 GiB (in pages).
DRM_FILE_PAGE_OFFSET_START: Final = (0xFFFFFFFF >> PAGE_SHIFT) + 1


class PanthorDrmFile(DrmFile):
    """``struct drm_file`` of a panthor device: ``minor->dev``, the GEM and syncobj
    handle tables, ``driver_priv`` (the :class:`PanthorFile`), and the opener's
    user memory (``current->mm`` for this file's ioctls)."""

    def __init__(self, dev: PanthorDevice, mm: UserMm, name: str = "file") -> None:
        super().__init__(name)
        self.dev = dev
        self.mm = mm
        self.syncobj_idr = SyncobjHandles()
        self.driver_priv: PanthorFile | None = None
        # CAP_SYS_NICE or DRM master (group_priority_permit()).
        self.cap_sys_nice = False
        # Model-only: the command streams user space wrote, by GPU VA.
        self.cs_streams: dict[int, Any] = {}


def _pfile(file: DrmFile) -> PanthorFile:
    pfile = file.driver_priv
    assert isinstance(pfile, PanthorFile)
    return pfile


def _mm(file: DrmFile) -> UserMm:
    assert isinstance(file, PanthorDrmFile)
    return file.mm


def user_write_cs_stream(file: PanthorDrmFile, stream_addr: int, stream: Any) -> None:
    """Model-only: user space wrote a command stream doing ``stream`` at GPU VA ``stream_addr``."""
    file.cs_streams[stream_addr] = stream


async def kvmalloc_array(n: int, size: int, gfp: int) -> KArray | None:
    """``kvmalloc_array()``: an empty array the caller fills (elements are objects here).

    An ``n * size`` that overflows is NULL; one above INT_MAX is NULL with a
    WARN_ON_ONCE (``__kvmalloc_node_noprof()``: "Don't even allow crazy
    sizes", GFP_KERNEL has no __GFP_NOWARN).
    """
    total = n * size
    if total > U64_MAX:  # check_mul_overflow()
        return None
    if total > INT_MAX:
        WARN_ON_ONCE(True)
        return None
    return await kmalloc(KArray, gfp)


# -------------------------------------------------------- user <-> kernel object copy helpers


async def panthor_set_uobj(
    mm: UserMm, usr_ptr: int, usr_size: int, min_size: int, kern_size: int, in_: Any
) -> int:
    """``panthor_set_uobj()`` - Copy kernel object to user object."""
    # User size shouldn't be smaller than the minimal object size.
    if usr_size < min_size:
        return -EINVAL

    data = uapi_to_bytes(in_)
    assert data is not None and len(data) == kern_size
    if await copy_to_user(mm, usr_ptr, data[: min(usr_size, kern_size)]):
        return -EFAULT

    # When the kernel object is smaller than the user object, we fill the gap with
    # zeros.
    if usr_size > kern_size and await clear_user(
        mm, (usr_ptr + kern_size) & U64_MAX, usr_size - kern_size
    ):
        return -EFAULT

    return 0


async def panthor_get_uobj_array(
    mm: UserMm, in_: drm_panthor_obj_array, min_stride: int, cls: type[Any]
) -> KArray | ErrPtr | None:
    """``panthor_get_uobj_array()`` - Copy a user object array into a kernel object array.

    Return: newly allocated object array (NULL for an empty array) or an ERR_PTR on error.
    """
    obj_size = uapi_sizeof(cls)
    ret = 0

    if not in_.count:
        return None

    # User stride must be at least the minimum object size, otherwise it might
    # lack useful information.
    if in_.stride < min_stride:
        return ErrPtr(-EINVAL)

    out_alloc = await kvmalloc_array(in_.count, obj_size, GFP_KERNEL)
    if out_alloc is None:
        return ErrPtr(-ENOMEM)

    if obj_size == in_.stride:
        # Fast path when user/kernel have the same uAPI header version.
        left, data = await copy_from_user(mm, in_.array, obj_size * in_.count)
        if left:
            ret = -EFAULT
        else:
            for i in range(in_.count):
                out_alloc.append(uapi_from_bytes(cls, data[i * obj_size : (i + 1) * obj_size]))
    else:
        in_ptr = in_.array

        # If the sizes differ, we need to copy elements one by one.
        for _i in range(in_.count):
            ret, data = await copy_struct_from_user(mm, obj_size, in_ptr, in_.stride)
            if ret:
                break

            out_alloc.append(uapi_from_bytes(cls, data))
            in_ptr += in_.stride

    if ret:
        kvfree(out_alloc)
        return ErrPtr(ret)

    return out_alloc


async def PANTHOR_UOBJ_SET(mm: UserMm, dest_usr_ptr: int, usr_size: int, src_obj: Any) -> int:
    """``PANTHOR_UOBJ_SET()`` - Copy a kernel object to a user object."""
    cls = type(src_obj)
    return await panthor_set_uobj(
        mm, dest_usr_ptr, usr_size, uapi_min_size(cls), uapi_sizeof(cls), src_obj
    )


async def PANTHOR_UOBJ_GET_ARRAY(
    mm: UserMm, cls: type[Any], uobj_array: drm_panthor_obj_array
) -> tuple[int, KArray | None]:
    """``PANTHOR_UOBJ_GET_ARRAY()``: ``(0, array or NULL)`` or ``(-errno, NULL)``."""
    tmp = await panthor_get_uobj_array(mm, uobj_array, uapi_min_size(cls), cls)
    if isinstance(tmp, ErrPtr):
        return PTR_ERR(tmp), None
    return 0, tmp


# ---------------------------------------------------------------- submit context


class PanthorSyncSignal:
    """``struct panthor_sync_signal`` - a syncobj point to attach our job fence to."""

    def __init__(self) -> None:
        self.handle = 0
        self.point = 0
        self.syncobj: DrmSyncobj | None = None
        self.chain: DmaFenceChain | None = None
        self.fence: DmaFence | None = None


@dataclass
class PanthorJobCtx:
    """``struct panthor_job_ctx`` - Job context."""

    job: DrmSchedJob | None = None
    syncops: KArray | None = None
    syncop_count: int = 0


class PanthorSubmitCtx:
    """``struct panthor_submit_ctx`` - Submission context."""

    def __init__(self) -> None:
        self.file: DrmFile | None = None
        self.signals: list[PanthorSyncSignal] = []
        self.jobs: KArray | None = None
        self.job_count = 0
        self.exec = DrmExec()


PANTHOR_SYNC_OP_FLAGS_MASK: Final = (
    DRM_PANTHOR_SYNC_OP_HANDLE_TYPE_MASK | DRM_PANTHOR_SYNC_OP_SIGNAL
)


def sync_op_is_signal(sync_op: drm_panthor_sync_op) -> bool:
    """``sync_op_is_signal()``."""
    return bool(sync_op.flags & DRM_PANTHOR_SYNC_OP_SIGNAL)


def sync_op_is_wait(sync_op: drm_panthor_sync_op) -> bool:
    """``sync_op_is_wait()``."""
    # Note that DRM_PANTHOR_SYNC_OP_WAIT == 0
    return not (sync_op.flags & DRM_PANTHOR_SYNC_OP_SIGNAL)


def panthor_check_sync_op(sync_op: drm_panthor_sync_op) -> int:
    """``panthor_check_sync_op()`` - Check drm_panthor_sync_op fields."""
    if sync_op.flags & ~PANTHOR_SYNC_OP_FLAGS_MASK:
        return -EINVAL

    handle_type = sync_op.flags & DRM_PANTHOR_SYNC_OP_HANDLE_TYPE_MASK
    if (
        handle_type != DRM_PANTHOR_SYNC_OP_HANDLE_TYPE_SYNCOBJ
        and handle_type != DRM_PANTHOR_SYNC_OP_HANDLE_TYPE_TIMELINE_SYNCOBJ
    ):
        return -EINVAL

    if handle_type == DRM_PANTHOR_SYNC_OP_HANDLE_TYPE_SYNCOBJ and sync_op.timeline_value != 0:
        return -EINVAL

    return 0


async def panthor_sync_signal_free(sig_sync: PanthorSyncSignal | None) -> None:
    """``panthor_sync_signal_free()`` - Release resources and free a panthor_sync_signal object."""
    if not sig_sync:
        return

    await drm_syncobj_put(sig_sync.syncobj)
    if sig_sync.chain is not None:
        dma_fence_chain_free(sig_sync.chain)
    await dma_fence_put(sig_sync.fence)
    kfree(sig_sync)


async def panthor_submit_ctx_add_sync_signal(ctx: PanthorSubmitCtx, handle: int, point: int) -> int:
    """``panthor_submit_ctx_add_sync_signal()`` - Add a signal operation to a submit context."""
    assert ctx.file is not None
    sig_sync = await kzalloc(PanthorSyncSignal, GFP_KERNEL)
    if not sig_sync:
        return -ENOMEM

    sig_sync.handle = handle
    sig_sync.point = point

    if point > 0:
        sig_sync.chain = await dma_fence_chain_alloc()
        if not sig_sync.chain:
            await panthor_sync_signal_free(sig_sync)  # err_free_sig_sync:
            return -ENOMEM

    sig_sync.syncobj = await drm_syncobj_find(ctx.file, handle)
    if not sig_sync.syncobj:
        await panthor_sync_signal_free(sig_sync)  # err_free_sig_sync:
        return -EINVAL

    # Retrieve the current fence attached to that point. It's
    # perfectly fine to get a NULL fence here, it just means there's
    # no fence attached to that point yet.
    ret, cur_fence = await drm_syncobj_find_fence(ctx.file, handle, point, 0)
    if not ret:
        sig_sync.fence = cur_fence

    ctx.signals.append(sig_sync)  # list_add_tail()

    return 0


def panthor_submit_ctx_search_sync_signal(
    ctx: PanthorSubmitCtx, handle: int, point: int
) -> PanthorSyncSignal | None:
    """``panthor_submit_ctx_search_sync_signal()`` - Search an existing signal operation."""
    for sig_sync in ctx.signals:
        if handle == sig_sync.handle and point == sig_sync.point:
            return sig_sync

    return None


async def panthor_submit_ctx_add_job(
    ctx: PanthorSubmitCtx, idx: int, job: DrmSchedJob, syncs: drm_panthor_obj_array
) -> int:
    """``panthor_submit_ctx_add_job()`` - Add a job to a submit context."""
    assert ctx.jobs is not None and ctx.file is not None
    ctx.jobs[idx].job = job

    ret, syncops = await PANTHOR_UOBJ_GET_ARRAY(_mm(ctx.file), drm_panthor_sync_op, syncs)
    if ret:
        return ret
    ctx.jobs[idx].syncops = syncops

    ctx.jobs[idx].syncop_count = syncs.count
    return 0


async def panthor_submit_ctx_get_sync_signal(ctx: PanthorSubmitCtx, handle: int, point: int) -> int:
    """``panthor_submit_ctx_get_sync_signal()`` - Search a signal operation, add one if none."""
    sig_sync = panthor_submit_ctx_search_sync_signal(ctx, handle, point)
    if sig_sync:
        return 0

    return await panthor_submit_ctx_add_sync_signal(ctx, handle, point)


async def panthor_submit_ctx_update_job_sync_signal_fences(
    ctx: PanthorSubmitCtx, job_idx: int
) -> int:
    """``panthor_submit_ctx_update_job_sync_signal_fences()`` - Update signal op fences."""
    assert ctx.jobs is not None and ctx.file is not None
    ptdev = _dev(ctx.file)
    job = ctx.jobs[job_idx].job
    assert job is not None and job.s_fence is not None
    done_fence = job.s_fence.finished
    sync_ops = ctx.jobs[job_idx].syncops
    sync_op_count = ctx.jobs[job_idx].syncop_count

    for i in range(sync_op_count):
        assert sync_ops is not None
        if not sync_op_is_signal(sync_ops[i]):
            continue

        sig_sync = panthor_submit_ctx_search_sync_signal(
            ctx, sync_ops[i].handle, sync_ops[i].timeline_value
        )
        if drm_WARN_ON(ptdev.base, not sig_sync):
            return -EINVAL
        assert sig_sync is not None

        old_fence = sig_sync.fence
        sig_sync.fence = await dma_fence_get(done_fence)
        await dma_fence_put(old_fence)

        if drm_WARN_ON(ptdev.base, not sig_sync.fence):
            return -EINVAL

    return 0


async def panthor_submit_ctx_collect_job_signal_ops(ctx: PanthorSubmitCtx, job_idx: int) -> int:
    """``panthor_submit_ctx_collect_job_signal_ops()`` - Add a job's signal operations."""
    assert ctx.jobs is not None
    sync_ops = ctx.jobs[job_idx].syncops
    sync_op_count = ctx.jobs[job_idx].syncop_count

    for i in range(sync_op_count):
        assert sync_ops is not None
        if not sync_op_is_signal(sync_ops[i]):
            continue

        ret = panthor_check_sync_op(sync_ops[i])
        if ret:
            return ret

        ret = await panthor_submit_ctx_get_sync_signal(
            ctx, sync_ops[i].handle, sync_ops[i].timeline_value
        )
        if ret:
            return ret

    return 0


async def panthor_submit_ctx_push_fences(ctx: PanthorSubmitCtx) -> None:
    """``panthor_submit_ctx_push_fences()`` - Push the fence of each signal entry to its syncobj.

    This is the last step of a submission procedure, and is done once we know
    the submission is effective and job fences are guaranteed to be signaled
    in finite time.
    """
    for sig_sync in ctx.signals:
        assert sig_sync.syncobj is not None
        if sig_sync.chain:
            assert sig_sync.fence is not None
            await drm_syncobj_add_point(
                sig_sync.syncobj, sig_sync.chain, sig_sync.fence, sig_sync.point
            )
            sig_sync.chain = None
        else:
            await drm_syncobj_replace_fence(sig_sync.syncobj, sig_sync.fence)


async def panthor_submit_ctx_add_sync_deps_to_job(ctx: PanthorSubmitCtx, job_idx: int) -> int:
    """``panthor_submit_ctx_add_sync_deps_to_job()`` - Add sync waits as job dependencies."""
    assert ctx.jobs is not None and ctx.file is not None
    ptdev = _dev(ctx.file)
    sync_ops = ctx.jobs[job_idx].syncops
    job = ctx.jobs[job_idx].job
    assert job is not None
    sync_op_count = ctx.jobs[job_idx].syncop_count
    ret = 0

    for i in range(sync_op_count):
        assert sync_ops is not None
        if not sync_op_is_wait(sync_ops[i]):
            continue

        ret = panthor_check_sync_op(sync_ops[i])
        if ret:
            return ret

        sig_sync = panthor_submit_ctx_search_sync_signal(
            ctx, sync_ops[i].handle, sync_ops[i].timeline_value
        )
        if sig_sync:
            if drm_WARN_ON(ptdev.base, not sig_sync.fence):
                return -EINVAL

            fence = await dma_fence_get(sig_sync.fence)
        else:
            ret, fence = await drm_syncobj_find_fence(
                ctx.file, sync_ops[i].handle, sync_ops[i].timeline_value, 0
            )
            if ret:
                return ret

        ret = await drm_sched_job_add_dependency(job, fence)
        if ret:
            return ret

    return 0


async def panthor_submit_ctx_collect_jobs_signal_ops(ctx: PanthorSubmitCtx) -> int:
    """``panthor_submit_ctx_collect_jobs_signal_ops()`` - Collect all signal operations."""
    for i in range(ctx.job_count):
        ret = await panthor_submit_ctx_collect_job_signal_ops(ctx, i)
        if ret:
            return ret

    return 0


async def panthor_submit_ctx_add_deps_and_arm_jobs(ctx: PanthorSubmitCtx) -> int:
    """``panthor_submit_ctx_add_deps_and_arm_jobs()`` - Add jobs dependencies and arm jobs.

    Must be called after the resv preparation has been taken care of.
    """
    assert ctx.jobs is not None
    for i in range(ctx.job_count):
        ret = await panthor_submit_ctx_add_sync_deps_to_job(ctx, i)
        if ret:
            return ret

        job = ctx.jobs[i].job
        assert job is not None
        await drm_sched_job_arm(job)

        ret = await panthor_submit_ctx_update_job_sync_signal_fences(ctx, i)
        if ret:
            return ret

    return 0


UpdResvs = Callable[[DrmExec, DrmSchedJob], Awaitable[None]]
JobPut = Callable[[DrmSchedJob | None], Awaitable[None]]


async def panthor_submit_ctx_push_jobs(ctx: PanthorSubmitCtx, upd_resvs: UpdResvs) -> None:
    """``panthor_submit_ctx_push_jobs()`` - Push jobs to their scheduling entities."""
    assert ctx.jobs is not None
    for i in range(ctx.job_count):
        job = ctx.jobs[i].job
        assert job is not None
        await upd_resvs(ctx.exec, job)
        await drm_sched_entity_push_job(job)

        # Job is owned by the scheduler now.
        ctx.jobs[i].job = None

    await panthor_submit_ctx_push_fences(ctx)


async def panthor_submit_ctx_init(ctx: PanthorSubmitCtx, file: DrmFile, job_count: int) -> int:
    """``panthor_submit_ctx_init()`` - Initializes a submission context."""
    jobs = await kvmalloc_array(job_count, 24, GFP_KERNEL)  # GFP_KERNEL | __GFP_ZERO
    if jobs is None:
        return -ENOMEM
    jobs.extend(PanthorJobCtx() for _ in range(job_count))
    ctx.jobs = jobs

    ctx.file = file
    ctx.job_count = job_count
    ctx.signals = []
    await drm_exec_init(ctx.exec, DRM_EXEC_INTERRUPTIBLE_WAIT | DRM_EXEC_IGNORE_DUPLICATES, 0)
    return 0


async def panthor_submit_ctx_cleanup(ctx: PanthorSubmitCtx, job_put: JobPut) -> None:
    """``panthor_submit_ctx_cleanup()`` - Cleanup a submission context."""
    assert ctx.jobs is not None
    await drm_exec_fini(ctx.exec)

    for sig_sync in list(ctx.signals):  # list_for_each_entry_safe()
        await panthor_sync_signal_free(sig_sync)
    ctx.signals = []

    for i in range(ctx.job_count):
        await job_put(ctx.jobs[i].job)
        kvfree(ctx.jobs[i].syncops)

    kvfree(ctx.jobs)


# ---------------------------------------------------------------- the ioctls


def _dev(file: DrmFile) -> PanthorDevice:
    assert isinstance(file, PanthorDrmFile)
    return file.dev


async def panthor_query_timestamp_info(
    ptdev: PanthorDevice, arg: drm_panthor_timestamp_info
) -> int:
    """``panthor_query_timestamp_info()`` (no arch timer; the GPU timestamp is virtual time)."""
    from .panthor_fw_iface import panthor_device_resume_and_get, pm_runtime_put

    ret = await panthor_device_resume_and_get(ptdev)
    if ret:
        return ret

    arg.timestamp_frequency = 0
    arg.current_timestamp = current_kernel().now
    arg.timestamp_offset = 0

    await pm_runtime_put(ptdev)
    return 0


def group_priority_permit(file: DrmFile, priority: int) -> int:
    """``group_priority_permit()``."""
    # Ensure that priority is valid
    if priority > PANTHOR_GROUP_PRIORITY_REALTIME:
        return -EINVAL

    # Medium priority and below are always allowed
    if priority <= PANTHOR_GROUP_PRIORITY_MEDIUM:
        return 0

    # Higher priorities require CAP_SYS_NICE or DRM_MASTER
    if isinstance(file, PanthorDrmFile) and file.cap_sys_nice:
        return 0

    return -EACCES


def panthor_query_group_priorities_info(
    file: DrmFile, arg: drm_panthor_group_priorities_info
) -> None:
    """``panthor_query_group_priorities_info()``."""
    arg.allowed_mask = 0
    arg.pad = [0, 0, 0]
    for prio in range(PANTHOR_GROUP_PRIORITY_REALTIME, -1, -1):
        if not group_priority_permit(file, prio):
            arg.allowed_mask |= 1 << prio


def _gpu_info(ptdev: PanthorDevice) -> drm_panthor_gpu_info:
    """``ptdev->gpu_info`` as the uAPI struct (what the model's device records of it)."""
    info = drm_panthor_gpu_info()
    for name in ("gpu_id", "mmu_features", "as_present", "l2_features", "csf_id", "gpu_rev"):
        value = getattr(ptdev.gpu_info, name, 0)
        setattr(info, name, value if isinstance(value, int) else 0)
    for name in ("shader_present", "tiler_present", "l2_present"):
        value = getattr(ptdev.gpu_info, name, 0)
        setattr(info, name, value if isinstance(value, int) else 0)
    return info


def _csif_info(ptdev: PanthorDevice) -> drm_panthor_csif_info:
    info = drm_panthor_csif_info()
    csif = getattr(ptdev, "csif_info", None)
    for name in ("csg_slot_count", "cs_slot_count", "cs_reg_count", "scoreboard_slot_count"):
        value = getattr(csif, name, 0)
        setattr(info, name, value if isinstance(value, int) else 0)
    return info


async def panthor_ioctl_dev_query(ddev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``panthor_ioctl_dev_query()``."""
    ptdev = ddev
    args: drm_panthor_dev_query = data
    timestamp_info = drm_panthor_timestamp_info()
    priorities_info = drm_panthor_group_priorities_info()
    mm = _mm(file)

    if not args.pointer:
        if args.type == DRM_PANTHOR_DEV_QUERY_GPU_INFO:
            args.size = uapi_sizeof(drm_panthor_gpu_info)
            return 0
        if args.type == DRM_PANTHOR_DEV_QUERY_CSIF_INFO:
            args.size = uapi_sizeof(drm_panthor_csif_info)
            return 0
        if args.type == DRM_PANTHOR_DEV_QUERY_TIMESTAMP_INFO:
            args.size = uapi_sizeof(drm_panthor_timestamp_info)
            return 0
        if args.type == DRM_PANTHOR_DEV_QUERY_GROUP_PRIORITIES_INFO:
            args.size = uapi_sizeof(drm_panthor_group_priorities_info)
            return 0
        return -EINVAL

    if args.type == DRM_PANTHOR_DEV_QUERY_GPU_INFO:
        return await PANTHOR_UOBJ_SET(mm, args.pointer, args.size, _gpu_info(ptdev))

    if args.type == DRM_PANTHOR_DEV_QUERY_CSIF_INFO:
        return await PANTHOR_UOBJ_SET(mm, args.pointer, args.size, _csif_info(ptdev))

    if args.type == DRM_PANTHOR_DEV_QUERY_TIMESTAMP_INFO:
        ret = await panthor_query_timestamp_info(ptdev, timestamp_info)

        if ret:
            return ret

        return await PANTHOR_UOBJ_SET(mm, args.pointer, args.size, timestamp_info)

    if args.type == DRM_PANTHOR_DEV_QUERY_GROUP_PRIORITIES_INFO:
        panthor_query_group_priorities_info(file, priorities_info)
        return await PANTHOR_UOBJ_SET(mm, args.pointer, args.size, priorities_info)

    return -EINVAL


PANTHOR_VM_CREATE_FLAGS: Final = 0


async def panthor_ioctl_vm_create(ddev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``panthor_ioctl_vm_create()``."""
    ptdev = ddev
    pfile = _pfile(file)
    args: drm_panthor_vm_create = data

    entered, cookie = await drm_dev_enter(ddev)
    if not entered:
        return -ENODEV

    assert pfile.vms is not None
    ret = await panthor_vm_pool_create_vm(ptdev, pfile.vms, args)
    if ret >= 0:
        args.id = ret
        ret = 0

    await drm_dev_exit(cookie)
    return ret


async def panthor_ioctl_vm_destroy(ddev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``panthor_ioctl_vm_destroy()``."""
    pfile = _pfile(file)
    args: drm_panthor_vm_destroy = data

    if args.pad:
        return -EINVAL

    assert pfile.vms is not None
    return await panthor_vm_pool_destroy_vm(pfile.vms, args.id)


PANTHOR_BO_FLAGS: Final = DRM_PANTHOR_BO_NO_MMAP


async def panthor_gem_create_with_handle(
    file: DrmFile, ddev: PanthorDevice, exclusive_vm: PanthorVm | None, size: int, flags: int
) -> tuple[int, int, int]:
    """``panthor_gem_create_with_handle()`` (panthor_gem.c): ``(ret, size, handle)``.

    ``shmem_file_setup()`` refuses a size above MAX_LFS_FILESIZE (-EINVAL);
    ``drm_gem_shmem_create()`` rounds the size up to a page.
    """
    if size > MAX_LFS_FILESIZE:
        return -EINVAL, size, 0
    shmem = await panthor_gem_create(size, "bo", flags=flags, coherent=ddev.coherent)
    if IS_ERR(shmem):
        return PTR_ERR(shmem), size, 0
    assert isinstance(shmem, PanthorGemObject)
    bo = shmem

    if exclusive_vm:
        bo.exclusive_vm_root_gem = panthor_vm_root_gem(exclusive_vm)
        assert bo.exclusive_vm_root_gem is not None
        await drm_gem_object_get(bo.exclusive_vm_root_gem)
        bo.resv = bo.exclusive_vm_root_gem.resv

    # Allocate an id of idr table where the obj is registered
    # and handle has the id what user can see.
    ret, handle = await drm_gem_handle_create(file, shmem)
    if not ret:
        size = bo.size

    # drop reference from allocate - handle holds it now.
    await drm_gem_object_put(shmem)

    return ret, size, handle


async def panthor_ioctl_bo_create(ddev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``panthor_ioctl_bo_create()``."""
    pfile = _pfile(file)
    args: drm_panthor_bo_create = data
    vm: PanthorVm | None = None

    entered, cookie = await drm_dev_enter(ddev)
    if not entered:
        return -ENODEV

    if not args.size or args.pad or (args.flags & ~PANTHOR_BO_FLAGS):
        ret = -EINVAL
    else:
        ret = 0
        if args.exclusive_vm_id:
            assert pfile.vms is not None
            vm = await panthor_vm_pool_get_vm(pfile.vms, args.exclusive_vm_id)
            if not vm:
                ret = -EINVAL

        if not ret:
            ret, args.size, handle = await panthor_gem_create_with_handle(
                file, ddev, vm, args.size, args.flags
            )
            if not ret:
                args.handle = handle

            await panthor_vm_put(vm)

    # out_dev_exit:
    await drm_dev_exit(cookie)
    return ret


async def drm_gem_create_mmap_offset(obj: DrmGemObject) -> int:
    """``drm_gem_create_mmap_offset()``: the object's fake offset range (once)."""
    await preempt()
    if getattr(obj, "vma_node_start", None) is None:
        k = current_kernel()
        nxt = int(k.objects.get("drm.vma_offset_next", DRM_FILE_PAGE_OFFSET_START))
        obj.vma_node_start = nxt  # type: ignore[attr-defined]
        k.objects["drm.vma_offset_next"] = nxt + (obj.size >> PAGE_SHIFT)
    return 0


def drm_vma_node_offset_addr(obj: DrmGemObject) -> int:
    """``drm_vma_node_offset_addr(&obj->vma_node)``."""
    return int(obj.vma_node_start) << PAGE_SHIFT  # type: ignore[attr-defined]


async def panthor_ioctl_bo_mmap_offset(ddev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``panthor_ioctl_bo_mmap_offset()``."""
    args: drm_panthor_bo_mmap_offset = data

    if args.pad:
        return -EINVAL

    obj = await drm_gem_object_lookup(file, args.handle)
    if not obj:
        return -ENOENT

    bo = to_panthor_bo(obj)
    if bo.flags & DRM_PANTHOR_BO_NO_MMAP:
        ret = -EPERM
    else:
        ret = await drm_gem_create_mmap_offset(obj)
        if not ret:
            args.offset = drm_vma_node_offset_addr(obj)

    # out:
    await drm_gem_object_put(obj)
    return ret


async def _exec_until_all_locked(exec: DrmExec, body: Callable[[], Awaitable[int]]) -> int:
    """``drm_exec_until_all_locked(exec) { ret = body(); }``: the body reruns while contended."""
    ret = 0
    while await drm_exec_cleanup(exec):
        ret = await body()
    return ret


async def panthor_ioctl_group_submit(ddev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``panthor_ioctl_group_submit()``."""
    pfile = _pfile(file)
    args: drm_panthor_group_submit = data
    ctx = PanthorSubmitCtx()
    ret = 0

    if args.pad:
        return -EINVAL

    entered, cookie = await drm_dev_enter(ddev)
    if not entered:
        return -ENODEV

    ret, jobs_args = await PANTHOR_UOBJ_GET_ARRAY(
        _mm(file), drm_panthor_queue_submit, args.queue_submits
    )
    if ret:
        await drm_dev_exit(cookie)  # out_dev_exit:
        return ret

    ret = await panthor_submit_ctx_init(ctx, file, args.queue_submits.count)
    if not ret:
        ret = await _group_submit_locked(ctx, pfile, file, args, jobs_args)
        # out_cleanup_submit_ctx:
        await panthor_submit_ctx_cleanup(ctx, panthor_job_put)

    # out_free_jobs_args:
    kvfree(jobs_args)

    # out_dev_exit:
    await drm_dev_exit(cookie)
    return ret


async def _group_submit_locked(
    ctx: PanthorSubmitCtx,
    pfile: PanthorFile,
    file: DrmFile,
    args: drm_panthor_group_submit,
    jobs_args: KArray | None,
) -> int:
    """``panthor_ioctl_group_submit()`` between ctx init and ``out_cleanup_submit_ctx``."""
    assert ctx.jobs is not None
    # Create jobs and attach sync operations
    for i in range(args.queue_submits.count):
        assert jobs_args is not None
        qsubmit: drm_panthor_queue_submit = jobs_args[i]
        if isinstance(file, PanthorDrmFile):
            # Model-only: what the stream user space wrote at stream_addr does.
            qsubmit.stream = file.cs_streams.get(qsubmit.stream_addr)

        job = await panthor_job_create(pfile, args.group_handle, qsubmit)
        if IS_ERR(job):
            return PTR_ERR(job)
        assert isinstance(job, DrmSchedJob)

        ret = await panthor_submit_ctx_add_job(ctx, i, job, qsubmit.syncs)
        if ret:
            return ret

    # Collect signal operations on all jobs, such that each job can pick
    # from it for its dependencies and update the fence to signal when the
    # job is submitted.
    ret = await panthor_submit_ctx_collect_jobs_signal_ops(ctx)
    if ret:
        return ret

    # We acquire/prepare revs on all jobs before proceeding with the
    # dependency registration: arm and push must be serialized per entity
    # (the VM resv does it), and jobs may depend on fences of earlier jobs
    # of the same batch.
    if args.queue_submits.count > 0:
        # All jobs target the same group, so they also point to the same VM.
        first = ctx.jobs[0].job
        assert first is not None
        vm = panthor_job_vm(first)

        async def prepare() -> int:
            return await panthor_vm_prepare_mapped_bos_resvs(ctx.exec, vm, args.queue_submits.count)

        ret = await _exec_until_all_locked(ctx.exec, prepare)
        if ret:
            return ret

    # Now that resvs are locked/prepared, we can iterate over each job to
    # add the dependencies, arm the job fence, register the job fence to
    # the signal array.
    ret = await panthor_submit_ctx_add_deps_and_arm_jobs(ctx)
    if ret:
        return ret

    # Nothing can fail after that point, so we can make our job fences
    # visible to the outside world.
    await panthor_submit_ctx_push_jobs(ctx, panthor_job_update_resvs)
    return 0


async def panthor_ioctl_group_destroy(ddev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``panthor_ioctl_group_destroy()``."""
    pfile = _pfile(file)
    args: drm_panthor_group_destroy = data

    if args.pad:
        return -EINVAL

    return await panthor_group_destroy(pfile, args.group_handle)


async def panthor_ioctl_group_create(ddev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``panthor_ioctl_group_create()``.

    Faithful to the seed's era: when ``group_priority_permit()`` fails, the
    queue array is returned without ``kvfree()`` (a leak the memory ledger
    reports at the end of the run).
    """
    pfile = _pfile(file)
    args: drm_panthor_group_create = data

    if not args.queues.count:
        return -EINVAL

    ret, queue_args = await PANTHOR_UOBJ_GET_ARRAY(_mm(file), drm_panthor_queue_create, args.queues)
    if ret:
        return ret

    ret = group_priority_permit(file, args.priority)
    if ret:
        return ret

    assert queue_args is not None
    ret = await panthor_group_create(pfile, args, list(queue_args))
    if ret >= 0:
        args.group_handle = ret
        ret = 0

    kvfree(queue_args)
    return ret


async def panthor_ioctl_group_get_state(ddev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``panthor_ioctl_group_get_state()``."""
    pfile = _pfile(file)
    args: drm_panthor_group_get_state = data

    return await panthor_group_get_state(pfile, args)


async def panthor_ioctl_tiler_heap_create(ddev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``panthor_ioctl_tiler_heap_create()``."""
    pfile = _pfile(file)
    args: drm_panthor_tiler_heap_create = data

    assert pfile.vms is not None
    vm = await panthor_vm_pool_get_vm(pfile.vms, args.vm_id)
    if not vm:
        return -EINVAL

    pool = await panthor_vm_get_heap_pool(vm, True)
    if IS_ERR(pool):
        ret = PTR_ERR(pool)
        await panthor_vm_put(vm)  # out_put_vm:
        return ret
    assert isinstance(pool, PanthorHeapPool)

    ret, ctx_va, chunk_va = await panthor_heap_create(
        pool, args.initial_chunk_count, args.chunk_size, args.max_chunks, args.target_in_flight
    )
    if ret >= 0:
        args.tiler_heap_ctx_gpu_va = ctx_va
        args.first_heap_chunk_gpu_va = chunk_va
        # Heap pools are per-VM. We combine the VM and HEAP id to make
        # a unique heap handle.
        args.handle = ((args.vm_id << 16) | ret) & 0xFFFFFFFF
        ret = 0

    # out_put_heap_pool:
    await panthor_heap_pool_put(pool)

    # out_put_vm:
    await panthor_vm_put(vm)
    return ret


async def panthor_ioctl_tiler_heap_destroy(ddev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``panthor_ioctl_tiler_heap_destroy()``."""
    pfile = _pfile(file)
    args: drm_panthor_tiler_heap_destroy = data

    if args.pad:
        return -EINVAL

    assert pfile.vms is not None
    vm = await panthor_vm_pool_get_vm(pfile.vms, args.handle >> 16)
    if not vm:
        return -EINVAL

    pool = await panthor_vm_get_heap_pool(vm, False)
    if IS_ERR(pool):
        ret = PTR_ERR(pool)
    else:
        assert isinstance(pool, PanthorHeapPool)
        ret = await panthor_heap_destroy(pool, args.handle & 0xFFFF)
        await panthor_heap_pool_put(pool)

    # out_put_vm:
    await panthor_vm_put(vm)
    return ret


async def panthor_ioctl_vm_bind_async(
    ddev: PanthorDevice, args: drm_panthor_vm_bind, file: DrmFile
) -> int:
    """``panthor_ioctl_vm_bind_async()``."""
    pfile = _pfile(file)
    ctx = PanthorSubmitCtx()
    ret = 0

    assert pfile.vms is not None
    vm = await panthor_vm_pool_get_vm(pfile.vms, args.vm_id)
    if not vm:
        return -EINVAL

    ret, jobs_args = await PANTHOR_UOBJ_GET_ARRAY(_mm(file), drm_panthor_vm_bind_op, args.ops)
    if ret:
        await panthor_vm_put(vm)  # out_put_vm:
        return ret

    ret = await panthor_submit_ctx_init(ctx, file, args.ops.count)
    if not ret:
        ret = await _vm_bind_async_submit(ctx, vm, file, args, jobs_args)
        # out_cleanup_submit_ctx:
        await panthor_submit_ctx_cleanup(ctx, panthor_vm_bind_job_put)

    # out_free_jobs_args:
    kvfree(jobs_args)

    # out_put_vm:
    await panthor_vm_put(vm)
    return ret


async def _vm_bind_async_submit(
    ctx: PanthorSubmitCtx,
    vm: PanthorVm,
    file: DrmFile,
    args: drm_panthor_vm_bind,
    jobs_args: KArray | None,
) -> int:
    """``panthor_ioctl_vm_bind_async()`` between ctx init and ``out_cleanup_submit_ctx``."""
    assert ctx.jobs is not None
    for i in range(args.ops.count):
        assert jobs_args is not None
        op: drm_panthor_vm_bind_op = jobs_args[i]

        job = await panthor_vm_bind_job_create(file, vm, op)
        if IS_ERR(job):
            return PTR_ERR(job)
        assert isinstance(job, DrmSchedJob)

        ret = await panthor_submit_ctx_add_job(ctx, i, job, op.syncs)
        if ret:
            return ret

    ret = await panthor_submit_ctx_collect_jobs_signal_ops(ctx)
    if ret:
        return ret

    # Prepare reservation objects for each VM_BIND job.
    while await drm_exec_cleanup(ctx.exec):  # drm_exec_until_all_locked()
        contended = False
        for i in range(ctx.job_count):
            job = ctx.jobs[i].job
            assert job is not None
            ret = await panthor_vm_bind_job_prepare_resvs(ctx.exec, job)
            if drm_exec_is_contended(ctx.exec):  # drm_exec_retry_on_contention()
                contended = True
                break
            if ret:
                return ret
        if contended:
            continue

    ret = await panthor_submit_ctx_add_deps_and_arm_jobs(ctx)
    if ret:
        return ret

    # Nothing can fail after that point.
    await panthor_submit_ctx_push_jobs(ctx, panthor_vm_bind_job_update_resvs)
    return 0


async def panthor_ioctl_vm_bind_sync(
    ddev: PanthorDevice, args: drm_panthor_vm_bind, file: DrmFile
) -> int:
    """``panthor_ioctl_vm_bind_sync()``."""
    pfile = _pfile(file)

    assert pfile.vms is not None
    vm = await panthor_vm_pool_get_vm(pfile.vms, args.vm_id)
    if not vm:
        return -EINVAL

    ret, jobs_args = await PANTHOR_UOBJ_GET_ARRAY(_mm(file), drm_panthor_vm_bind_op, args.ops)
    if not ret:
        for i in range(args.ops.count):
            assert jobs_args is not None
            ret = await panthor_vm_bind_exec_sync_op(file, vm, jobs_args[i])
            if ret:
                # Update ops.count so the user knows where things failed.
                args.ops.count = i
                break

        kvfree(jobs_args)

    # out_put_vm:
    await panthor_vm_put(vm)
    return ret


PANTHOR_VM_BIND_FLAGS: Final = DRM_PANTHOR_VM_BIND_ASYNC


async def panthor_ioctl_vm_bind(ddev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``panthor_ioctl_vm_bind()``.

    Faithful to the seed's era: ``args->flags`` bits other than ASYNC are not
    rejected (``PANTHOR_VM_BIND_FLAGS`` is defined but never checked).
    """
    args: drm_panthor_vm_bind = data

    entered, cookie = await drm_dev_enter(ddev)
    if not entered:
        return -ENODEV

    if args.flags & DRM_PANTHOR_VM_BIND_ASYNC:
        ret = await panthor_ioctl_vm_bind_async(ddev, args, file)
    else:
        ret = await panthor_ioctl_vm_bind_sync(ddev, args, file)

    await drm_dev_exit(cookie)
    return ret


async def panthor_ioctl_vm_get_state(ddev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``panthor_ioctl_vm_get_state()``."""
    pfile = _pfile(file)
    args: drm_panthor_vm_get_state = data

    assert pfile.vms is not None
    vm = await panthor_vm_pool_get_vm(pfile.vms, args.vm_id)
    if not vm:
        return -EINVAL

    if await panthor_vm_is_unusable(vm):
        args.state = DRM_PANTHOR_VM_STATE_UNUSABLE
    else:
        args.state = DRM_PANTHOR_VM_STATE_USABLE

    await panthor_vm_put(vm)
    return 0


async def panthor_open(ddev: PanthorDevice, file: DrmFile) -> int:
    """``panthor_open()``."""
    ptdev = ddev

    # try_module_get(THIS_MODULE) cannot fail: the module is not unloaded here.
    pfile = await kzalloc(lambda: PanthorFile(ptdev), GFP_KERNEL)
    if not pfile:
        return -ENOMEM

    pfile.ptdev = ptdev

    ret = await panthor_vm_pool_create(pfile)
    if ret:
        kfree(pfile)  # err_free_file:
        return ret

    ret = await panthor_group_pool_create(pfile)
    if ret:
        await panthor_vm_pool_destroy(pfile)  # err_destroy_vm_pool:
        kfree(pfile)
        return ret

    file.driver_priv = pfile
    return 0


async def panthor_postclose(ddev: PanthorDevice, file: DrmFile) -> None:
    """``panthor_postclose()``."""
    pfile = _pfile(file)

    await panthor_group_pool_destroy(pfile)
    await panthor_vm_pool_destroy(pfile)

    kfree(pfile)
    file.driver_priv = None


Ioctl = Callable[[PanthorDevice, Any, DrmFile], Awaitable[int]]


@dataclass(frozen=True)
class DrmIoctlDesc:
    """``struct drm_ioctl_desc``: the command (with the kernel's struct size) and the function."""

    cmd: int
    func: Ioctl
    cls: type
    name: str


def _desc(cmd: int, func: Ioctl, cls: type, name: str) -> DrmIoctlDesc:
    return DrmIoctlDesc(cmd, func, cls, name)


# panthor_drm_driver_ioctls[], indexed by nr - DRM_COMMAND_BASE (v6.15: 13 ioctls).
panthor_drm_driver_ioctls: Final[tuple[DrmIoctlDesc, ...]] = (
    _desc(DRM_IOCTL_PANTHOR_DEV_QUERY, panthor_ioctl_dev_query, drm_panthor_dev_query, "DEV_QUERY"),
    _desc(DRM_IOCTL_PANTHOR_VM_CREATE, panthor_ioctl_vm_create, drm_panthor_vm_create, "VM_CREATE"),
    _desc(
        DRM_IOCTL_PANTHOR_VM_DESTROY,
        panthor_ioctl_vm_destroy,
        drm_panthor_vm_destroy,
        "VM_DESTROY",
    ),
    _desc(DRM_IOCTL_PANTHOR_VM_BIND, panthor_ioctl_vm_bind, drm_panthor_vm_bind, "VM_BIND"),
    _desc(
        DRM_IOCTL_PANTHOR_VM_GET_STATE,
        panthor_ioctl_vm_get_state,
        drm_panthor_vm_get_state,
        "VM_GET_STATE",
    ),
    _desc(DRM_IOCTL_PANTHOR_BO_CREATE, panthor_ioctl_bo_create, drm_panthor_bo_create, "BO_CREATE"),
    _desc(
        DRM_IOCTL_PANTHOR_BO_MMAP_OFFSET,
        panthor_ioctl_bo_mmap_offset,
        drm_panthor_bo_mmap_offset,
        "BO_MMAP_OFFSET",
    ),
    _desc(
        DRM_IOCTL_PANTHOR_GROUP_CREATE,
        panthor_ioctl_group_create,
        drm_panthor_group_create,
        "GROUP_CREATE",
    ),
    _desc(
        DRM_IOCTL_PANTHOR_GROUP_DESTROY,
        panthor_ioctl_group_destroy,
        drm_panthor_group_destroy,
        "GROUP_DESTROY",
    ),
    _desc(
        DRM_IOCTL_PANTHOR_GROUP_SUBMIT,
        panthor_ioctl_group_submit,
        drm_panthor_group_submit,
        "GROUP_SUBMIT",
    ),
    _desc(
        DRM_IOCTL_PANTHOR_GROUP_GET_STATE,
        panthor_ioctl_group_get_state,
        drm_panthor_group_get_state,
        "GROUP_GET_STATE",
    ),
    _desc(
        DRM_IOCTL_PANTHOR_TILER_HEAP_CREATE,
        panthor_ioctl_tiler_heap_create,
        drm_panthor_tiler_heap_create,
        "TILER_HEAP_CREATE",
    ),
    _desc(
        DRM_IOCTL_PANTHOR_TILER_HEAP_DESTROY,
        panthor_ioctl_tiler_heap_destroy,
        drm_panthor_tiler_heap_destroy,
        "TILER_HEAP_DESTROY",
    ),
)


# ---------------------------------------------------------------- DRM core: files


async def drm_open(ptdev: PanthorDevice, mm: UserMm | None = None, name: str = "file") -> Any:
    """``open()`` of the render node: ``drm_open()`` -> ``drm_file_alloc()`` -> ``panthor_open()``.

    Returns the :class:`PanthorDrmFile`, or an ERR_PTR (-ENODEV once the
    device is unplugged, -ENOMEM). ``mm`` is the opener's user memory (a new
    one by default; two files of one process share it).
    """
    # drm_minor_acquire(): an unplugged device cannot be opened.
    await preempt()
    if ptdev.unplugged:
        return ErrPtr(-ENODEV)

    umm = mm if mm is not None else UserMm(f"{name}.mm")
    file = await kzalloc(lambda: PanthorDrmFile(ptdev, umm, name), GFP_KERNEL)
    if file is None:
        return ErrPtr(-ENOMEM)

    # drm_gem_open() / drm_syncobj_open(): the handle tables are in the file.
    ret = await panthor_open(ptdev, file)
    if ret < 0:
        kfree(file)
        return ErrPtr(ret)
    current_kernel().ev("drm_open", name, ptdev.name)
    return file


async def drm_syncobj_release(file: PanthorDrmFile) -> None:
    """``drm_syncobj_release()``: drop every syncobj handle of the file."""
    table = file.syncobj_idr
    for handle in sorted(table.table):
        syncobj = table.table.pop(handle)
        await drm_syncobj_put(syncobj)


async def drm_release(file: PanthorDrmFile) -> None:
    """``close(fd)``: ``drm_release()`` -> ``drm_file_free()``.

    In the kernel's order: syncobjs, GEM handles, then ``panthor_postclose()``
    (groups, then VMs), then the file.
    """
    await drm_syncobj_release(file)
    await drm_gem_release(file)
    await panthor_postclose(file.dev, file)
    current_kernel().ev("drm_release", file.name, file.dev.name)
    kfree(file)


# ---------------------------------------------------------------- DRM core: ioctls


async def drm_gem_close_ioctl(dev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``drm_gem_close_ioctl()``."""
    args: drm_gem_close = data

    if args.pad:
        return -EINVAL

    return await drm_gem_handle_delete(file, args.handle)


async def drm_syncobj_create_ioctl(dev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``drm_syncobj_create_ioctl()`` -> ``drm_syncobj_create_as_handle()``."""
    args: drm_syncobj_create_args = data

    # no valid flags yet
    if args.flags & ~DRM_SYNCOBJ_CREATE_SIGNALED:
        return -EINVAL

    ret, syncobj = await drm_syncobj_create(args.flags, None)
    if ret:
        return ret
    assert syncobj is not None
    ret, handle = await drm_syncobj_get_handle(file, syncobj)
    await drm_syncobj_put(syncobj)
    if not ret:
        args.handle = handle
    return ret


async def drm_syncobj_destroy_ioctl(dev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``drm_syncobj_destroy_ioctl()``."""
    args: drm_syncobj_destroy_args = data

    if args.pad:
        return -EINVAL
    return await drm_syncobj_destroy(file, args.handle)


async def drm_syncobj_timeline_wait_ioctl(dev: PanthorDevice, data: Any, file: DrmFile) -> int:
    """``drm_syncobj_timeline_wait_ioctl()`` (without deadlines: ``deadline_nsec`` is ignored)."""
    args: drm_syncobj_timeline_wait = data
    mm = _mm(file)
    possible = DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL | DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT

    if args.flags & ~possible:
        return -EINVAL
    if args.count_handles == 0:
        return 0

    # drm_syncobj_array_find(): the handles, then the points.
    left, raw = await copy_from_user(mm, args.handles, 4 * args.count_handles)
    if left:
        return -EFAULT
    handles = [int.from_bytes(raw[i : i + 4], "little") for i in range(0, len(raw), 4)]
    points: list[int] = [0] * len(handles)
    if args.points:
        left, raw = await copy_from_user(mm, args.points, 8 * args.count_handles)
        if left:
            return -EFAULT
        points = [int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8)]
    # drm_timeout_abs_to_jiffies(): the timeout is absolute.
    timeout = max(0, args.timeout_nsec - current_kernel().now)
    ret, first = await drm_syncobj_wait(file, handles, points, timeout, args.flags)
    if ret >= 0:
        args.first_signaled = first
    return ret


# drm_ioctls[]: the core ioctls this model has, by number.
drm_core_ioctls: Final[dict[int, DrmIoctlDesc]] = {
    DRM_IOCTL_NR(DRM_IOCTL_GEM_CLOSE): _desc(
        DRM_IOCTL_GEM_CLOSE, drm_gem_close_ioctl, drm_gem_close, "GEM_CLOSE"
    ),
    DRM_IOCTL_NR(DRM_IOCTL_SYNCOBJ_CREATE): _desc(
        DRM_IOCTL_SYNCOBJ_CREATE,
        drm_syncobj_create_ioctl,
        drm_syncobj_create_args,
        "SYNCOBJ_CREATE",
    ),
    DRM_IOCTL_NR(DRM_IOCTL_SYNCOBJ_DESTROY): _desc(
        DRM_IOCTL_SYNCOBJ_DESTROY,
        drm_syncobj_destroy_ioctl,
        drm_syncobj_destroy_args,
        "SYNCOBJ_DESTROY",
    ),
    DRM_IOCTL_NR(DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT): _desc(
        DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT,
        drm_syncobj_timeline_wait_ioctl,
        drm_syncobj_timeline_wait,
        "SYNCOBJ_TIMELINE_WAIT",
    ),
}


async def drm_ioctl_kernel(file: PanthorDrmFile, func: Ioctl, kdata: Any) -> int:
    """``drm_ioctl_kernel()``: unplugged -> -ENODEV, then the ioctl (render node: permitted)."""
    dev = file.dev
    await preempt()  # drm_dev_is_unplugged(): a lockless read
    if dev.unplugged:
        return -ENODEV
    return await func(dev, kdata, file)


async def drm_ioctl(file: Any, cmd: int, arg: Any) -> int:
    """``ioctl(fd, cmd, arg)``: 0 or a negative errno; ``arg`` is the user's struct.

    As ``drm_ioctl()``: an unplugged device is -ENODEV, a command of another
    type -ENOTTY, an unknown number -EINVAL. The struct is copied in as the
    ``_IOC_SIZE(cmd)`` bytes user space passes (zero-extended to the kernel's
    size), and copied back (``out_size`` bytes, even when the ioctl failed).
    ``arg`` must be the dataclass of the command's struct (the model's stand-in
    for a pointer to it; anything else, or a field holding no integer, is
    -EFAULT).
    """
    if not isinstance(file, PanthorDrmFile) or not isinstance(cmd, int):
        return -EINVAL
    dev = file.dev
    await preempt()
    if dev.unplugged:
        return -ENODEV

    if DRM_IOCTL_TYPE(cmd) != DRM_IOCTL_BASE:
        return -ENOTTY

    nr = DRM_IOCTL_NR(cmd)
    desc: DrmIoctlDesc | None
    if DRM_COMMAND_BASE <= nr < DRM_COMMAND_END:
        index = nr - DRM_COMMAND_BASE
        desc = panthor_drm_driver_ioctls[index] if index < len(panthor_drm_driver_ioctls) else None
    else:
        desc = drm_core_ioctls.get(nr)
    if desc is None:
        return -EINVAL

    drv_size = _IOC_SIZE(desc.cmd)
    out_size = in_size = _IOC_SIZE(cmd & 0xFFFFFFFF)
    if not (cmd & desc.cmd & IOC_IN):
        in_size = 0
    if not (cmd & desc.cmd & IOC_OUT):
        out_size = 0
    ksize = max(in_size, out_size, drv_size)

    if not isinstance(arg, desc.cls):
        return -EFAULT
    user = uapi_to_bytes(arg)
    if user is None:
        return -EFAULT
    # The user's struct is in_size bytes; beyond the kernel's struct it is
    # memory the model does not have (the fields are the struct's only).
    if in_size > len(user) or out_size > len(user):
        return -EFAULT

    kbytes = user[:in_size] + bytes(ksize - in_size)
    kdata: Any = uapi_from_bytes(desc.cls, kbytes[:drv_size])

    retcode = await drm_ioctl_kernel(file, desc.func, kdata)

    out = uapi_to_bytes(kdata)
    assert out is not None
    back = out[:out_size] + user[out_size:]
    uapi_copy_into(arg, uapi_from_bytes(desc.cls, back))
    current_kernel().ev("ioctl", file.name, f"{desc.name} -> {retcode}")
    return retcode
