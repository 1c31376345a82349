"""The device and its clients for the driver scenarios: what user space does, on the real paths.

Model API, not a kernel file. A scenario brings one device up
(:func:`device_up`), opens clients (:func:`client_open`, ``panthor_open()``
with a ``drm_file``), and its actors call what the matching ioctls of
panthor_drv.c (v6.15) call, minus the uAPI copying and syncobjs, so the
concurrency is the kernel's:

* :func:`ioctl_vm_create` / :func:`ioctl_vm_destroy`: ``VM_CREATE`` /
  ``VM_DESTROY`` (``panthor_vm_pool_create_vm()`` /
  ``panthor_vm_pool_destroy_vm()``).
* :func:`ioctl_bo_create`: ``BO_CREATE`` (an exclusive VM looked up by handle
  first, the BO created with a handle, the creation reference dropped).
* :func:`ioctl_vm_bind_sync` / :func:`ioctl_vm_bind_async`: ``VM_BIND`` (the
  VM looked up by handle with ``panthor_vm_pool_get_vm()``; the async submit
  sequence of ``panthor_ioctl_vm_bind_async()``: job create, resv prepare
  under drm_exec, arm, update resvs, push).
* :func:`ioctl_vm_get_state`: ``VM_GET_STATE`` (a lookup, a read, a put).
* :func:`ioctl_heap_pool`: the heap pool ``TILER_HEAP_CREATE`` takes
  (``panthor_vm_get_heap_pool(vm, true)``) and drops.
* groups and GPU jobs: :mod:`panthor_testbed.mmu.gpu_jobs`.
* :func:`client_close`: ``drm_file_free()``: the GEM handles released, then
  ``panthor_postclose()``.

The device (:func:`device_up` / :func:`device_down`) is
:mod:`panthor_testbed.mmu.bringup`'s: :func:`device_down` releases everything,
so the leak oracles (memory ledger, physical pages) and the liveness oracle
see a clean end.

Every helper returns the ioctl's value (a handle, 0 or a negative errno):
scenarios never assert on what the driver answers (an error is the driver's
business, a broken invariant is the oracles'), they only go on with what
they got.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from panthor_testbed.mmu.bringup import DeviceInitError, device_fini, device_init
from panthor_testbed.mmu.gem_shmem import PanthorGemObject, panthor_gem_create
from panthor_testbed.mmu.gpu_jobs import gpu_file_close, gpu_file_open, gpu_wait_groups_released
from panthor_testbed.mmu.panthor_device import PanthorDevice, PanthorFile
from panthor_testbed.mmu.panthor_drm import drm_panthor_vm_bind_op, drm_panthor_vm_create
from panthor_testbed.mmu.panthor_heap import panthor_heap_pool_put
from panthor_testbed.mmu.panthor_mmu import (
    PanthorVm,
    PanthorVmBindJob,
    panthor_vm_bind_exec_sync_op,
    panthor_vm_bind_job_create,
    panthor_vm_bind_job_prepare_resvs,
    panthor_vm_bind_job_put,
    panthor_vm_bind_job_update_resvs,
    panthor_vm_get_heap_pool,
    panthor_vm_is_unusable,
    panthor_vm_pool_create_vm,
    panthor_vm_pool_destroy_vm,
    panthor_vm_pool_get_vm,
    panthor_vm_put,
    panthor_vm_root_gem,
)
from panthor_testbed.sched import (
    DRM_EXEC_IGNORE_DUPLICATES,
    DRM_EXEC_INTERRUPTIBLE_WAIT,
    IS_ERR,
    PTR_ERR,
    DmaFence,
    DrmExec,
    ErrPtr,
    Kernel,
    dma_fence_get,
    drm_exec_cleanup,
    drm_exec_fini,
    drm_exec_init,
    drm_exec_is_contended,
    drm_sched_entity_push_job,
    drm_sched_job_arm,
)
from panthor_testbed.sched.core.clock import msleep
from panthor_testbed.sched.core.failure import RunStopped
from panthor_testbed.sched.drm.drm_file import DrmFile, drm_gem_handle_create, drm_gem_release
from panthor_testbed.sched.drm.drm_gem import drm_gem_object_put
from panthor_testbed.sched.errno import EINVAL
from panthor_testbed.sched.lib.list import list_for_each_entry

PAGE: Final = 4096
# The user half of a 48-bit VA space (panthor_vm_pool_create_vm()'s default split).
USER_VA_RANGE: Final = 1 << 47


# ---------------------------------------------------------------------- the device


async def device_up(
    k: Kernel, *, as_present: int = 0xFF, dram: int = 64 << 20, runtime_pm: bool = False
) -> PanthorDevice:
    """The probed device: ``panthor_device_init()`` (:func:`.bringup.device_init`);
    ``runtime_pm``: let it runtime-suspend when idle (50 ms autosuspend).

    Allocation failures (``--alloc-fail-probability``/``--alloc-fail-nth``) are
    not injected during the probe: a device that fails to probe is not what a
    race scenario exercises, and every run would end there. They count from
    the first allocation after it. A probe that fails anyway ends the run
    without a finding (its cleanup is still judged by the leak oracles).
    """
    k.mem.faults_suspended += 1
    try:
        return await device_init(k, as_present=as_present, dram=dram, runtime_pm=runtime_pm)
    except DeviceInitError as exc:
        # A probe that fails under an adversarial schedule (the MCU boot wait's
        # timeout firing before the IRQ thread runs) is not the race a scenario
        # is after: the run ends here. The failed probe's cleanup has run, so
        # the leak and WARN oracles still judge it.
        k.ev("probe-failed", "panthor", str(exc))
        raise RunStopped() from exc
    finally:
        k.mem.faults_suspended -= 1


async def device_down(ptdev: PanthorDevice, timeout_ms: int = 10_000) -> None:
    """Once every client is closed: let the deferred releases finish, unplug, release.

    Groups are released from a work item, user VMs by the last bind job's
    cleanup work or group release: wait (virtual time) until they are all
    gone, as the device's last user would, so the release below runs after
    them. A VM that never goes is left to the leak oracle.
    """
    await gpu_wait_groups_released(ptdev, timeout_ms)
    assert ptdev.mmu is not None
    for _ in range(timeout_ms):
        if not any(not vm.for_mcu for vm in list_for_each_entry(ptdev.mmu.vm.list)):
            break
        await msleep(1)
    await device_fini(ptdev)


# ---------------------------------------------------------------------- clients


@dataclass
class Client:
    """One open ``/dev/dri/renderD*``: the drm_file and panthor's file, and what it made."""

    name: str
    drm: DrmFile
    pfile: PanthorFile
    vms: list[int] = field(default_factory=list)  # VM handles
    bos: list[int] = field(default_factory=list)  # GEM handles
    groups: list[int] = field(default_factory=list)  # group handles
    closed: bool = False


async def client_open(ptdev: PanthorDevice, name: str) -> Client | None:
    """``open()``: ``panthor_open()`` (None if it failed, as open() would)."""
    pfile = await gpu_file_open(ptdev)
    if isinstance(pfile, ErrPtr):
        return None
    drm = DrmFile(name)
    drm.driver_priv = pfile
    return Client(name, drm, pfile)


async def clients_open(ptdev: PanthorDevice, n: int) -> list[Client]:
    """``n`` clients ``file0``.. (the opens that failed left out)."""
    clients = []
    for i in range(n):
        c = await client_open(ptdev, f"file{i}")
        if c is not None:
            clients.append(c)
    return clients


async def client_close(c: Client) -> None:
    """The last ``close()``: ``drm_file_free()`` drops the handles, then ``panthor_postclose()``."""
    if c.closed:
        return
    c.closed = True
    await drm_gem_release(c.drm)
    await gpu_file_close(c.pfile)


async def ioctl_vm_create(c: Client) -> int:
    """``DRM_IOCTL_PANTHOR_VM_CREATE``: the new VM's handle, or a negative errno."""
    assert c.pfile.vms is not None
    args = drm_panthor_vm_create(user_va_range=0)
    ret = await panthor_vm_pool_create_vm(c.pfile.ptdev, c.pfile.vms, args)
    if ret > 0:
        c.vms.append(ret)
    return ret


async def ioctl_vm_destroy(c: Client, handle: int) -> int:
    """``DRM_IOCTL_PANTHOR_VM_DESTROY``."""
    assert c.pfile.vms is not None
    return await panthor_vm_pool_destroy_vm(c.pfile.vms, handle)


async def ioctl_bo_create(c: Client, size: int, exclusive_vm: int = 0, name: str = "bo") -> int:
    """``DRM_IOCTL_PANTHOR_BO_CREATE``: the GEM handle, or a negative errno.

    ``exclusive_vm``: a VM handle (the BO shares that VM's resv), 0 for none.
    """
    vm: PanthorVm | None = None
    if exclusive_vm:
        assert c.pfile.vms is not None
        vm = await panthor_vm_pool_get_vm(c.pfile.vms, exclusive_vm)
        if not vm:
            return -EINVAL
    root = panthor_vm_root_gem(vm) if vm is not None else None
    bo = await panthor_gem_create(size, name, exclusive_vm_root_gem=root)
    if isinstance(bo, PanthorGemObject):
        ret, handle = await drm_gem_handle_create(c.drm, bo)
        # Drop the creation reference: the handle owns the BO now.
        await drm_gem_object_put(bo)
        if not ret:
            c.bos.append(handle)
            ret = handle
    else:
        ret = PTR_ERR(bo)
    if vm is not None:
        await panthor_vm_put(vm)
    return ret


async def ioctl_vm_bind_sync(c: Client, vm_id: int, op: drm_panthor_vm_bind_op) -> int:
    """``DRM_IOCTL_PANTHOR_VM_BIND`` without ``ASYNC``, one op."""
    assert c.pfile.vms is not None
    vm = await panthor_vm_pool_get_vm(c.pfile.vms, vm_id)
    if not vm:
        return -EINVAL
    ret = await panthor_vm_bind_exec_sync_op(c.drm, vm, op)
    await panthor_vm_put(vm)
    return ret


async def ioctl_vm_bind_async(
    c: Client, vm_id: int, op: drm_panthor_vm_bind_op
) -> tuple[int, DmaFence | None]:
    """``DRM_IOCTL_PANTHOR_VM_BIND`` with ``ASYNC``, one op: (ret, finished-fence reference)."""
    assert c.pfile.vms is not None
    vm = await panthor_vm_pool_get_vm(c.pfile.vms, vm_id)
    if not vm:
        return -EINVAL, None
    ret, fence = await vm_bind_async_submit(c.drm, vm, op)
    await panthor_vm_put(vm)
    return ret, fence


async def vm_bind_async_submit(
    file: DrmFile, vm: PanthorVm, op: drm_panthor_vm_bind_op
) -> tuple[int, DmaFence | None]:
    """``panthor_ioctl_vm_bind_async()``'s submit sequence for one op."""
    job = await panthor_vm_bind_job_create(file, vm, op)
    if IS_ERR(job):
        return PTR_ERR(job), None
    assert isinstance(job, PanthorVmBindJob)
    exec = DrmExec()
    await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT | DRM_EXEC_IGNORE_DUPLICATES, 0)
    ret = 0
    while await drm_exec_cleanup(exec):
        ret = await panthor_vm_bind_job_prepare_resvs(exec, job)
        if drm_exec_is_contended(exec):
            continue
        if ret:
            break
    if ret:
        await drm_exec_fini(exec)
        await panthor_vm_bind_job_put(job)
        return ret, None
    await drm_sched_job_arm(job)
    assert job.s_fence is not None
    finished = await dma_fence_get(job.s_fence.finished)
    await panthor_vm_bind_job_update_resvs(exec, job)
    await drm_sched_entity_push_job(job)  # the scheduler owns the job now
    await drm_exec_fini(exec)
    return 0, finished


async def ioctl_vm_get_state(c: Client, vm_id: int) -> int:
    """``DRM_IOCTL_PANTHOR_VM_GET_STATE``: 1 if the VM is unusable, 0 if usable, or -EINVAL."""
    assert c.pfile.vms is not None
    vm = await panthor_vm_pool_get_vm(c.pfile.vms, vm_id)
    if not vm:
        return -EINVAL
    state = 1 if await panthor_vm_is_unusable(vm) else 0
    await panthor_vm_put(vm)
    return state


async def ioctl_heap_pool(c: Client, vm_id: int) -> int:
    """The heap pool part of ``TILER_HEAP_CREATE`` / ``DESTROY``: take the VM's pool, drop it."""
    assert c.pfile.vms is not None
    vm = await panthor_vm_pool_get_vm(c.pfile.vms, vm_id)
    if not vm:
        return -EINVAL
    pool = await panthor_vm_get_heap_pool(vm, True)
    ret = PTR_ERR(pool) if IS_ERR(pool) else 0
    if not IS_ERR(pool):
        await panthor_heap_pool_put(pool)
    await panthor_vm_put(vm)
    return ret


__all__ = [
    "PAGE",
    "USER_VA_RANGE",
    "Client",
    "client_close",
    "client_open",
    "clients_open",
    "device_down",
    "device_up",
    "ioctl_bo_create",
    "ioctl_heap_pool",
    "ioctl_vm_bind_async",
    "ioctl_vm_bind_sync",
    "ioctl_vm_create",
    "ioctl_vm_destroy",
    "ioctl_vm_get_state",
]
