"""A device with the scheduler for the ioctl tests, files opened through ``drm_open``, and helpers.

* :func:`run_files`: bring the device up, open ``nfiles`` files, run the body,
  close the files, wait for the VM_BIND queue, the cleanup work and the
  groups to go idle, and tear the device down (so the leak oracles judge a
  clean end).
* :class:`Ctx`: one file with the ioctl calls a test makes most, each
  returning the errno and filling the struct as the kernel writes it back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from panthor_testbed.mmu import panthor_device
from panthor_testbed.mmu.gpu_jobs import gpu_wait_groups_released
from panthor_testbed.mmu.panthor_device import PanthorDevice
from panthor_testbed.mmu.panthor_drm import (
    DRM_IOCTL_GEM_CLOSE,
    DRM_IOCTL_PANTHOR_BO_CREATE,
    DRM_IOCTL_PANTHOR_VM_BIND,
    DRM_IOCTL_PANTHOR_VM_CREATE,
    DRM_IOCTL_PANTHOR_VM_DESTROY,
    DRM_IOCTL_PANTHOR_VM_GET_STATE,
    DRM_IOCTL_SYNCOBJ_CREATE,
    DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT,
    DRM_PANTHOR_VM_BIND_ASYNC,
    drm_gem_close,
    drm_panthor_bo_create,
    drm_panthor_vm_bind,
    drm_panthor_vm_bind_op,
    drm_panthor_vm_create,
    drm_panthor_vm_destroy,
    drm_panthor_vm_get_state,
    drm_syncobj_create,
    drm_syncobj_timeline_wait,
)
from panthor_testbed.mmu.panthor_drv import PanthorDrmFile, drm_ioctl, drm_open, drm_release
from panthor_testbed.sched import Kernel, KernelConfig, Strategy
from panthor_testbed.sched.core.clock import msleep
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.deferred.workqueue import flush_workqueue
from panthor_testbed.sched.errno import IS_ERR

from .sched_fixture import bring_up, tear_down

P = 4096
VA = 0x100000


class Ctx:
    """One open file and the calls the tests make."""

    def __init__(self, k: Kernel, ptdev: PanthorDevice, file: PanthorDrmFile) -> None:
        self.k = k
        self.ptdev = ptdev
        self.file = file
        self.mm = file.mm

    async def ioctl(self, cmd: int, arg: Any) -> int:
        return await drm_ioctl(self.file, cmd, arg)

    async def vm_create(self, user_va_range: int = 0, flags: int = 0) -> tuple[int, int]:
        a = drm_panthor_vm_create(flags=flags, user_va_range=user_va_range)
        ret = await self.ioctl(DRM_IOCTL_PANTHOR_VM_CREATE, a)
        return ret, a.id

    async def vm(self) -> int:
        ret, vm_id = await self.vm_create()
        assert ret == 0, ret
        return vm_id

    async def vm_destroy(self, vm_id: int) -> int:
        return await self.ioctl(DRM_IOCTL_PANTHOR_VM_DESTROY, drm_panthor_vm_destroy(id=vm_id))

    async def vm_state(self, vm_id: int) -> tuple[int, int]:
        a = drm_panthor_vm_get_state(vm_id=vm_id)
        ret = await self.ioctl(DRM_IOCTL_PANTHOR_VM_GET_STATE, a)
        return ret, a.state

    async def bo_create(
        self, size: int, flags: int = 0, exclusive_vm_id: int = 0
    ) -> tuple[int, int]:
        a = drm_panthor_bo_create(size=size, flags=flags, exclusive_vm_id=exclusive_vm_id)
        ret = await self.ioctl(DRM_IOCTL_PANTHOR_BO_CREATE, a)
        return ret, a.handle

    async def bo(self, size: int, exclusive_vm_id: int = 0) -> int:
        ret, handle = await self.bo_create(size, exclusive_vm_id=exclusive_vm_id)
        assert ret == 0, ret
        return handle

    async def gem_close(self, handle: int) -> int:
        return await self.ioctl(DRM_IOCTL_GEM_CLOSE, drm_gem_close(handle=handle))

    async def bind(
        self, vm_id: int, ops: list[drm_panthor_vm_bind_op], *, flags: int = 0
    ) -> tuple[int, drm_panthor_vm_bind]:
        a = drm_panthor_vm_bind(vm_id=vm_id, flags=flags, ops=self.mm.put_array(ops))
        ret = await self.ioctl(DRM_IOCTL_PANTHOR_VM_BIND, a)
        return ret, a

    async def bind_sync(self, vm_id: int, *ops: drm_panthor_vm_bind_op) -> int:
        ret, _ = await self.bind(vm_id, list(ops))
        return ret

    async def bind_async(self, vm_id: int, *ops: drm_panthor_vm_bind_op) -> int:
        ret, _ = await self.bind(vm_id, list(ops), flags=DRM_PANTHOR_VM_BIND_ASYNC)
        return ret

    async def syncobj(self, flags: int = 0) -> int:
        a = drm_syncobj_create(flags=flags)
        assert await self.ioctl(DRM_IOCTL_SYNCOBJ_CREATE, a) == 0
        return a.handle

    async def wait(self, handle: int, point: int = 0, timeout_ns: int = 10**9) -> int:
        """SYNCOBJ_TIMELINE_WAIT on one point (WAIT_FOR_SUBMIT not set)."""
        a = drm_syncobj_timeline_wait(
            handles=self.mm.put_u32s([handle]),
            points=self.mm.put_u64s([point]),
            timeout_nsec=self.k.now + timeout_ns,
            count_handles=1,
        )
        return await self.ioctl(DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT, a)


Body = Callable[[list[Ctx]], Awaitable[None]]


async def quiesce(ptdev: PanthorDevice) -> None:
    """Let queued VM_BIND jobs, their cleanup work and group releases finish."""
    await msleep(50)
    cleanup_wq = panthor_device.panthor_cleanup_wq
    assert cleanup_wq is not None
    await flush_workqueue(cleanup_wq)
    assert await gpu_wait_groups_released(ptdev)
    await flush_workqueue(cleanup_wq)


def run_files(
    body: Body,
    nfiles: int = 1,
    config: KernelConfig | None = None,
    strategy: Strategy | None = None,
    *,
    close: bool = True,
) -> Kernel:
    """One run: device up, ``nfiles`` files open, ``body``, files closed, device down."""

    async def scenario(k: Kernel) -> None:
        # Injected allocation failures start with the body (not in the probe or the opens).
        k.mem.faults_suspended += 1
        ptdev = await bring_up(k)
        ctxs = []
        for i in range(nfiles):
            f = await drm_open(ptdev, name=f"file{i}")
            assert not IS_ERR(f), f
            ctxs.append(Ctx(k, ptdev, f))
        k.mem.faults_suspended -= 1
        await body(ctxs)
        if close:
            for c in ctxs:
                await drm_release(c.file)
        await quiesce(ptdev)
        await tear_down(ptdev)

    return run(scenario, config=config, strategy=strategy)


def vm_of(c: Ctx, vm_id: int) -> Any:
    """The VM behind a handle (no reference, no yield point: test inspection only)."""
    pfile = c.file.driver_priv
    assert pfile is not None and pfile.vms is not None
    return pfile.vms.xa.entries.get(vm_id)


def page_of(c: Ctx, handle: int, offset: int) -> int:
    """The physical address of the BO page at ``offset`` (the BO must be pinned)."""
    bo = c.file.object_idr[handle]
    pages = getattr(bo, "pages", None)
    assert pages is not None, "BO without pages"
    return int(pages[offset >> 12]) << 12


async def gpu_read(c: Ctx, vm_id: int, va: int) -> Any:
    """One GPU read of ``va`` in the VM (made active for it): the PA read, or the GpuFault."""
    from panthor_testbed.mmu.hw.gpu_access import GPU_READ, GpuFault
    from panthor_testbed.mmu.panthor_mmu import panthor_vm_active, panthor_vm_idle

    vm = vm_of(c, vm_id)
    assert vm is not None
    assert await panthor_vm_active(vm) == 0
    res = await c.ptdev.iomem.access(vm.as_.id, va, GPU_READ)
    await panthor_vm_idle(vm)
    if isinstance(res, GpuFault):
        await msleep(1)  # let the MMU IRQ thread handle the fault before the next access
    return res
