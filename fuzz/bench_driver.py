"""Driver figures: a VM_BIND through the queue, through the ioctl, and one GPU access.

Each is timed inside one run of the controlled executor (RoundRobin, lockdep
and the trace on, as a campaign runs), on a device brought up by the
driver's own probe, and each has ``executor-decision`` (one scheduling
decision, measured in the same process) as its baseline, so the ratio says
how many scheduling decisions' worth of work the operation is.

* ``vm-bind-async``: one async VM_BIND MAP of 16 pages, end to end:
  ``panthor_ioctl_vm_bind_async()``'s submit sequence (job create, resvs
  prepared under drm_exec, arm, push), the drm_sched submit work running
  ``panthor_vm_bind_run_job()`` and the finished fence signalled, waited for
  by the caller. The UNMAP that keeps the VA space bounded is not timed.
* ``ioctl-vm-bind-sync``: one ``DRM_IOCTL_PANTHOR_VM_BIND`` (no ``ASYNC``)
  of one MAP op of 16 pages through ``drm_ioctl()``: the argument copy from
  user memory, the checks, ``panthor_vm_bind_exec_sync_op()``.
* ``gpu-access``: one GPU read through a warm TLB (the VM active on its AS).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from panthor_testbed.sched import Kernel, KernelConfig, RoundRobin
from panthor_testbed.sched.locking.lockdep import Lockdep

from .bench import BenchOptions, Figure, bench
from .bench_core import _executor_decision_us

PAGES = 16
PAGE = 4096
VA = 0x100000


def _in_driver(body: Callable[[Any, Any, int, int], Awaitable[float]]) -> float:
    """Bring a device up, open one file with a VM and a 16-page BO, time ``body``, tear down.

    ``body(ctx_file, ptdev, vm_id, bo_handle)`` returns microseconds per
    operation; the run must end clean (no failure, no leak).
    """
    from panthor_testbed.mmu.bringup import device_fini, device_init
    from panthor_testbed.mmu.gpu_jobs import gpu_wait_groups_released
    from panthor_testbed.mmu.panthor_drm import (
        DRM_IOCTL_PANTHOR_BO_CREATE,
        DRM_IOCTL_PANTHOR_VM_CREATE,
        drm_panthor_bo_create,
        drm_panthor_vm_create,
    )
    from panthor_testbed.mmu.panthor_drv import drm_ioctl, drm_open, drm_release

    result: list[float] = []

    async def scenario(k: Kernel) -> None:
        ptdev = await device_init(k)
        file = await drm_open(ptdev, name="bench")
        vm_args = drm_panthor_vm_create()
        assert await drm_ioctl(file, DRM_IOCTL_PANTHOR_VM_CREATE, vm_args) == 0
        bo_args = drm_panthor_bo_create(size=PAGES * PAGE)
        assert await drm_ioctl(file, DRM_IOCTL_PANTHOR_BO_CREATE, bo_args) == 0
        result.append(await body(file, ptdev, vm_args.id, bo_args.handle))
        await drm_release(file)
        assert await gpu_wait_groups_released(ptdev)
        await device_fini(ptdev)

    k = Kernel(RoundRobin(), KernelConfig(max_steps=50_000_000), lockdep=Lockdep())
    k.run_sync(scenario)
    if k.primary_failure is not None:
        raise AssertionError(f"driver bench run failed: {k.primary_failure.message}")
    return result[0]


def _map_op(handle: int) -> Any:
    from panthor_testbed.mmu.panthor_drm import (
        DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
        drm_panthor_vm_bind_op,
    )

    return drm_panthor_vm_bind_op(
        flags=DRM_PANTHOR_VM_BIND_OP_TYPE_MAP, bo_handle=handle, va=VA, size=PAGES * PAGE
    )


def _unmap_op() -> Any:
    from panthor_testbed.mmu.panthor_drm import (
        DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
        drm_panthor_vm_bind_op,
    )

    return drm_panthor_vm_bind_op(flags=DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP, va=VA, size=PAGES * PAGE)


async def _get_vm(file: Any, vm_id: int) -> Any:
    """The VM behind ``vm_id`` (a reference: ``panthor_vm_pool_get_vm()``)."""
    from panthor_testbed.mmu.panthor_mmu import panthor_vm_pool_get_vm

    return await panthor_vm_pool_get_vm(file.driver_priv.vms, vm_id)


def vm_bind_async_us(n: int) -> float:
    async def body(file: Any, ptdev: Any, vm_id: int, handle: int) -> float:
        from panthor_testbed.mmu.panthor_mmu import panthor_vm_bind_exec_sync_op, panthor_vm_put
        from panthor_testbed.sched.dma_buf.dma_fence import dma_fence_put, dma_fence_wait

        from .scenarios.actors import vm_bind_async_submit

        vm = await _get_vm(file, vm_id)
        total = 0.0
        for _ in range(n):
            t0 = time.perf_counter()
            ret, fence = await vm_bind_async_submit(file, vm, _map_op(handle))
            assert ret == 0 and fence is not None, ret
            assert await dma_fence_wait(fence, False) == 0
            total += time.perf_counter() - t0
            assert fence.error == 0, fence.error
            await dma_fence_put(fence)
            assert await panthor_vm_bind_exec_sync_op(file, vm, _unmap_op()) == 0
        await panthor_vm_put(vm)
        return total / n * 1e6

    return _in_driver(body)


def ioctl_vm_bind_sync_us(n: int) -> float:
    async def body(file: Any, ptdev: Any, vm_id: int, handle: int) -> float:
        from panthor_testbed.mmu.panthor_drm import DRM_IOCTL_PANTHOR_VM_BIND, drm_panthor_vm_bind
        from panthor_testbed.mmu.panthor_drv import drm_ioctl

        mm = file.mm
        total = 0.0
        for _ in range(n):
            # The op array is written to user memory outside the timed part,
            # as user space fills it before the ioctl.
            args = drm_panthor_vm_bind(vm_id=vm_id, ops=mm.put_array([_map_op(handle)]))
            t0 = time.perf_counter()
            ret = await drm_ioctl(file, DRM_IOCTL_PANTHOR_VM_BIND, args)
            total += time.perf_counter() - t0
            assert ret == 0, ret
            unmap = drm_panthor_vm_bind(vm_id=vm_id, ops=mm.put_array([_unmap_op()]))
            assert await drm_ioctl(file, DRM_IOCTL_PANTHOR_VM_BIND, unmap) == 0
        return total / n * 1e6

    return _in_driver(body)


def gpu_access_us(n: int) -> float:
    async def body(file: Any, ptdev: Any, vm_id: int, handle: int) -> float:
        from panthor_testbed.mmu.hw.gpu_access import GPU_READ, GpuFault
        from panthor_testbed.mmu.panthor_mmu import (
            panthor_vm_active,
            panthor_vm_bind_exec_sync_op,
            panthor_vm_idle,
            panthor_vm_put,
        )

        vm = await _get_vm(file, vm_id)
        assert await panthor_vm_bind_exec_sync_op(file, vm, _map_op(handle)) == 0
        assert await panthor_vm_active(vm) == 0
        warm = await ptdev.iomem.access(vm.as_.id, VA, GPU_READ)
        assert not isinstance(warm, GpuFault), warm
        t0 = time.perf_counter()
        for i in range(n):
            res = await ptdev.iomem.access(vm.as_.id, VA + (i % PAGES) * PAGE, GPU_READ)
        per = (time.perf_counter() - t0) / n * 1e6
        assert not isinstance(res, GpuFault), res
        await panthor_vm_idle(vm)
        assert await panthor_vm_bind_exec_sync_op(file, vm, _unmap_op()) == 0
        await panthor_vm_put(vm)
        return per

    return _in_driver(body)


@bench("driver")
def driver_figures(options: BenchOptions) -> list[Figure]:
    decision = _executor_decision_us(options.n(200_000, 20_000))
    base = ("executor-decision", decision)
    binds = options.n(400, 20)
    return [
        Figure(
            "vm-bind-async",
            vm_bind_async_us(binds),
            "us",
            *base,
            note=f"MAP of {PAGES} pages through the VM_BIND queue, fence waited; {binds} binds",
        ),
        Figure(
            "ioctl-vm-bind-sync",
            ioctl_vm_bind_sync_us(binds),
            "us",
            *base,
            note=f"one MAP op of {PAGES} pages through drm_ioctl; {binds} binds",
        ),
        Figure(
            "gpu-access",
            gpu_access_us(options.n(100_000, 2_000)),
            "us",
            *base,
            note="one GPU read through a warm TLB",
        ),
    ]
