"""GPU jobs for scenarios: files, VMs, groups and job submission on the real driver paths.

Model API, not a kernel file. Each helper does what the matching ioctl does
in panthor_drv.c (v6.15), minus the uAPI copying and syncobjs, so the
concurrency is the kernel's:

* :func:`gpu_file_open` / :func:`gpu_file_close`: ``panthor_open()`` (the
  VM and group pools) and ``panthor_postclose()`` (group pool, then VM pool
  destroyed).
* :func:`gpu_vm_create`: ``panthor_ioctl_vm_create()`` ->
  ``panthor_vm_pool_create_vm()``.
* :func:`gpu_group_create`: ``panthor_ioctl_group_create()`` ->
  ``panthor_group_create()`` (a ring buffer and a sync object per queue,
  both kernel BOs mapped in the group's VM).
* :func:`panthor_job_submit`: ``panthor_ioctl_group_submit()`` for one job:
  ``panthor_job_create()``, the ``drm_exec`` loop locking the VM resv and
  every external BO (``panthor_vm_prepare_mapped_bos_resvs()``),
  ``drm_sched_job_arm()``, ``panthor_job_update_resvs()`` (the finished
  fence as BOOKKEEP on all of them), ``drm_sched_entity_push_job()``. It
  returns a reference to the job's finished fence (the out-fence a syncobj
  would carry); the caller waits on it and puts it.

A job's work is a :class:`~.hw.csf.CsStream`: the memory accesses its command
stream performs (``(va, GPU_READ|GPU_WRITE|GPU_EXEC|GPU_ATOMIC)``) and
whether it hangs. The GPU first fetches ``stream_addr`` (by default the
first access's VA rounded down to 64 bytes), so it must be mapped readable.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..sched.core.clock import msleep
from ..sched.core.kernel import current_kernel
from ..sched.dma_buf.dma_fence import DmaFence, dma_fence_get, dma_fence_put
from ..sched.drm.drm_exec import (
    DRM_EXEC_IGNORE_DUPLICATES,
    DRM_EXEC_INTERRUPTIBLE_WAIT,
    DrmExec,
    drm_exec_cleanup,
    drm_exec_fini,
    drm_exec_init,
)
from ..sched.drm.drm_sched import drm_sched_job_arm
from ..sched.drm.drm_sched_entity import drm_sched_entity_push_job
from ..sched.errno import EINVAL, ENOMEM, ERR_PTR, ErrPtr
from ..sched.mm.gfp import GFP_KERNEL
from ..sched.mm.memory import kfree, kzalloc
from .hw.csf import CsStream
from .panthor_device import PanthorDevice, PanthorFile
from .panthor_drm import (
    drm_panthor_group_create,
    drm_panthor_obj_array,
    drm_panthor_queue_create,
    drm_panthor_queue_submit,
    drm_panthor_vm_create,
)
from .panthor_mmu import (
    PanthorVm,
    panthor_vm_pool_create,
    panthor_vm_pool_create_vm,
    panthor_vm_pool_destroy,
    panthor_vm_prepare_mapped_bos_resvs,
)
from .panthor_sched import (
    PANTHOR_CSG_PRIORITY_MEDIUM,
    PanthorGroup,
    PanthorGroupPool,
    live_groups,
    panthor_group_create,
    panthor_group_pool_create,
    panthor_group_pool_destroy,
    panthor_job_create,
    panthor_job_put,
    panthor_job_update_resvs,
    panthor_job_vm,
)
from .sizes import SZ_4K


async def gpu_file_open(ptdev: PanthorDevice) -> PanthorFile | ErrPtr:
    """``panthor_open()``: a file with its VM pool and group pool."""
    pfile = await kzalloc(lambda: PanthorFile(ptdev), GFP_KERNEL)
    if not pfile:
        return ERR_PTR(-ENOMEM)
    ret = await panthor_vm_pool_create(pfile)
    if ret:
        kfree(pfile)
        return ERR_PTR(ret)
    ret = await panthor_group_pool_create(pfile)
    if ret:
        await panthor_vm_pool_destroy(pfile)
        kfree(pfile)
        return ERR_PTR(ret)
    return pfile


async def gpu_file_close(pfile: PanthorFile) -> None:
    """``panthor_postclose()``: destroy the groups, then the VMs; free the file."""
    await panthor_group_pool_destroy(pfile)
    await panthor_vm_pool_destroy(pfile)
    kfree(pfile)


async def gpu_vm_create(pfile: PanthorFile, user_va_range: int = 0) -> int:
    """``panthor_ioctl_vm_create()``: the VM handle, or a negative errno."""
    assert pfile.vms is not None
    args = drm_panthor_vm_create(user_va_range=user_va_range)
    return await panthor_vm_pool_create_vm(pfile.ptdev, pfile.vms, args)


def vm_of(pfile: PanthorFile, handle: int) -> PanthorVm:
    """The VM behind a handle, for tests (no reference taken, no yield point)."""
    assert pfile.vms is not None
    vm = pfile.vms.xa.entries.get(handle)
    assert isinstance(vm, PanthorVm)
    return vm


def group_of(pfile: PanthorFile, handle: int) -> PanthorGroup:
    """The group behind a handle, for tests (no reference taken, no yield point)."""
    assert isinstance(pfile.groups, PanthorGroupPool)
    group = pfile.groups.xa.entries.get(handle)
    assert isinstance(group, PanthorGroup)
    return group


async def gpu_group_create(
    pfile: PanthorFile,
    vm_id: int,
    *,
    queues: int = 1,
    priority: int = PANTHOR_CSG_PRIORITY_MEDIUM,
    ringbuf_size: int = SZ_4K,
) -> int:
    """``panthor_ioctl_group_create()``: the group handle, or a negative errno."""
    if not queues:
        return -EINVAL
    args = drm_panthor_group_create(
        queues=drm_panthor_obj_array(stride=0, count=queues),
        priority=priority,
        vm_id=vm_id,
    )
    qargs = [drm_panthor_queue_create(ringbuf_size=ringbuf_size) for _ in range(queues)]
    return await panthor_group_create(pfile, args, qargs)


async def panthor_job_submit(
    pfile: PanthorFile,
    group_handle: int,
    accesses: Iterable[tuple[int, int]] = (),
    *,
    queue_index: int = 0,
    hang: str | None = None,
    stream_addr: int | None = None,
    stream_size: int | None = None,
) -> DmaFence | ErrPtr:
    """``panthor_ioctl_group_submit()`` for one job: a reference to its finished fence."""
    acc = tuple(accesses)
    if stream_addr is None:
        stream_addr = (acc[0][0] & ~63) if acc else 0
    if stream_size is None:
        stream_size = 8 * max(1, len(acc)) if stream_addr else 0
    qsubmit = drm_panthor_queue_submit(
        queue_index=queue_index,
        stream_size=stream_size,
        stream_addr=stream_addr,
        stream=CsStream(acc, hang),
    )

    exec = DrmExec()
    await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT | DRM_EXEC_IGNORE_DUPLICATES, 0)

    job = await panthor_job_create(pfile, group_handle, qsubmit)
    if isinstance(job, ErrPtr):
        await drm_exec_fini(exec)
        return job

    # All jobs target the same group, so they also point to the same VM.
    vm = panthor_job_vm(job)
    ret = 0
    while await drm_exec_cleanup(exec):  # drm_exec_until_all_locked()
        ret = await panthor_vm_prepare_mapped_bos_resvs(exec, vm, 1)

    fence: DmaFence | ErrPtr
    if ret:
        fence = ERR_PTR(ret)
    else:
        # panthor_submit_ctx_add_deps_and_arm_jobs(): no syncobj dependencies here.
        await drm_sched_job_arm(job)
        assert job.s_fence is not None
        got = await dma_fence_get(job.s_fence.finished)
        assert got is not None
        fence = got

        # panthor_submit_ctx_push_jobs(): nothing can fail after that point.
        await panthor_job_update_resvs(exec, job)
        await drm_sched_entity_push_job(job)
        job = None  # type: ignore[assignment]  # owned by the scheduler now

    # out_cleanup_submit_ctx:
    await drm_exec_fini(exec)
    await panthor_job_put(job)
    return fence


async def gpu_job_wait(fence: DmaFence, timeout_ms: int | None = None) -> int:
    """Wait for a job's fence (``dma_fence_wait_timeout``), put it; its error, 0, or -ETIME."""
    from ..sched.core.clock import MAX_SCHEDULE_TIMEOUT, msecs_to_jiffies
    from ..sched.dma_buf.dma_fence import dma_fence_wait_timeout
    from ..sched.errno import ETIME

    t = MAX_SCHEDULE_TIMEOUT if timeout_ms is None else msecs_to_jiffies(timeout_ms)
    left = await dma_fence_wait_timeout(fence, False, t)
    err = fence.error if left > 0 or timeout_ms is None else -ETIME
    await dma_fence_put(fence)
    return err


async def gpu_wait_groups_released(ptdev: PanthorDevice, timeout_ms: int = 10_000) -> bool:
    """Poll (virtual time) until every group's release work ran; False on timeout."""
    k = current_kernel()
    for _ in range(timeout_ms):
        if not live_groups(k):
            return True
        await msleep(1)
    return not live_groups(k)
