"""Driver scenarios around VM_BIND: bind storms, destroys while busy, kernel BOs, ioctl programs.

Every actor is a simulated thread acting for one client; what it does comes
from ``k.choose_data`` (see :mod:`.program`). The scenarios know no bug:
they make work, and the generic oracles (UAF poison, lockdep, WARN, leaks at
teardown, fence liveness, the GPU's bad accesses) judge the run.
"""

from __future__ import annotations

from typing import Annotated

from panthor_testbed.gpuvm.drm_mm import DrmMmNode
from panthor_testbed.mmu.gem_shmem import PanthorGemObject, panthor_gem_create
from panthor_testbed.mmu.gpu_jobs import vm_of
from panthor_testbed.mmu.panthor_drm import (
    DRM_PANTHOR_VM_BIND_OP_MAP_READONLY,
    DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
    drm_panthor_vm_bind_op,
)
from panthor_testbed.mmu.panthor_mmu import (
    PANTHOR_VM_KERNEL_AUTO_VA,
    panthor_vm_alloc_va,
    panthor_vm_free_va,
    panthor_vm_map_bo_range,
    panthor_vm_root_gem,
    panthor_vm_unmap_range,
)
from panthor_testbed.sched import Kernel
from panthor_testbed.sched.core.clock import usleep_range
from panthor_testbed.sched.drm.drm_gem import drm_gem_object_put

from ..scenario import Range, scenario
from .actors import (
    PAGE,
    Client,
    client_close,
    client_open,
    clients_open,
    device_down,
    device_up,
    ioctl_bo_create,
    ioctl_heap_pool,
    ioctl_vm_bind_sync,
    ioctl_vm_create,
    ioctl_vm_destroy,
    ioctl_vm_get_state,
)
from .program import (
    BO_PAGES,
    CMD_VA,
    Pending,
    bind_op,
    group_create,
    job_submit,
    page_va,
)


async def _cmd_mapping(c: Client, vm_id: int) -> None:
    """A one-page BO mapped read-only at CMD_VA: where the VM's jobs fetch their stream."""
    bo = await ioctl_bo_create(c, PAGE, name=f"{c.name}.cmd")
    if bo > 0:
        op = drm_panthor_vm_bind_op(
            flags=DRM_PANTHOR_VM_BIND_OP_TYPE_MAP | DRM_PANTHOR_VM_BIND_OP_MAP_READONLY,
            bo_handle=bo,
            va=CMD_VA,
            size=PAGE,
        )
        await ioctl_vm_bind_sync(c, vm_id, op)


@scenario(
    "bind-storm",
    "several files and VMs: sync and async binds over overlapping ranges while GPU jobs "
    "read and write what is mapped",
    tags=("panthor", "vm-bind"),
)
async def bind_storm(
    k: Kernel,
    files: Annotated[int, Range(1, 4)] = 2,
    vms: Annotated[int, Range(1, 3)] = 1,
    ops: Annotated[int, Range(1, 32)] = 4,
    jobs: Annotated[int, Range(0, 8)] = 1,
) -> None:
    ptdev = await device_up(k)
    clients = await clients_open(ptdev, files)
    pending = Pending()
    threads = []
    for c in clients:
        bos = [await ioctl_bo_create(c, BO_PAGES * PAGE, name=f"{c.name}.bo{j}") for j in range(2)]
        bos = [h for h in bos if h > 0]
        for v in range(vms):
            vm_id = await ioctl_vm_create(c)
            if vm_id <= 0:
                continue
            # A BO private to this VM too (it shares the VM's resv).
            priv = await ioctl_bo_create(c, BO_PAGES * PAGE, vm_id, name=f"{c.name}.vm{v}.priv")
            vm_bos = [*bos, priv] if priv > 0 else bos
            if not vm_bos:
                continue
            await _cmd_mapping(c, vm_id)
            who = f"{c.name}.vm{v}"

            async def binder(
                c: Client = c, vm_id: int = vm_id, b: list[int] = vm_bos, w: str = who
            ) -> None:
                for n in range(ops):
                    await bind_op(k, c, vm_id, b, pending, who=f"{w}.op{n}")

            threads.append(k.spawn(binder, name=f"bind-{who}"))
            if jobs:
                group = await group_create(c, vm_id)

                async def submitter(c: Client = c, g: int = group, w: str = who) -> None:
                    for n in range(jobs):
                        await job_submit(k, c, g, pending, who=f"{w}.job{n}")

                if group > 0:
                    threads.append(k.spawn(submitter, name=f"jobs-{who}"))
    for t in threads:
        await t.join()
    await pending.wait_all()
    for c in clients:
        await client_close(c)
    await device_down(ptdev)


@scenario(
    "destroy-while-busy",
    "VM_DESTROY and file close while binds are queued, GPU jobs run and a heap pool is in use",
    tags=("panthor", "vm-bind", "lifetime"),
)
async def destroy_while_busy(
    k: Kernel,
    binders: Annotated[int, Range(1, 4)] = 2,
    ops: Annotated[int, Range(1, 16)] = 4,
    jobs: Annotated[int, Range(0, 4)] = 1,
    racing_maps: bool = False,
) -> None:
    """``racing_maps``: binders map too, not only unmap. Off by default: in the seed (and
    in later kernels) a map that looked the VM up before VM_DESTROY and runs after the
    destroy's unmap-all stays in the destroyed VM, whose vm_bo then keeps the VM and the
    BO alive (a leak at teardown; reported, no kernel fix known)."""
    ptdev = await device_up(k)
    c = await client_open(ptdev, "file0")
    if c is None:
        await device_down(ptdev)
        return
    pending = Pending()
    # VM 1 runs GPU jobs (its group holds a VM reference); VM 2 only takes binds.
    vm_ids = [await ioctl_vm_create(c) for _ in range(2)]
    bos = [await ioctl_bo_create(c, BO_PAGES * PAGE, name=f"bo{j}") for j in range(2)]
    bos = [h for h in bos if h > 0]
    group = 0
    for n, vm_id in enumerate(vm_ids):
        if vm_id <= 0:
            continue
        await _cmd_mapping(c, vm_id)
        for j, bo in enumerate(bos):
            await ioctl_vm_bind_sync(
                c,
                vm_id,
                drm_panthor_vm_bind_op(
                    flags=DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
                    bo_handle=bo,
                    va=page_va(j * BO_PAGES),
                    size=BO_PAGES * PAGE,
                ),
            )
        if n == 0:
            group = await group_create(c, vm_id)

    threads = []
    # Binder ops started so far: the destroyer comes in after a chosen number of them.
    started = [0]
    for i in range(binders):

        async def binder(i: int = i) -> None:
            for n in range(ops):
                started[0] += 1
                vm_id = vm_ids[k.choose_data(2, 0.5, f"binder{i}.op{n}: which VM")]
                if k.choose_data(2, 0.5, f"binder{i}.op{n}: VM_GET_STATE, not VM_BIND"):
                    await ioctl_vm_get_state(c, vm_id)
                    continue
                await bind_op(k, c, vm_id, bos, pending, who=f"binder{i}.op{n}", maps=racing_maps)

        threads.append(k.spawn(binder, name=f"binder{i}"))

    async def heap_user() -> None:
        vm_id = vm_ids[k.choose_data(2, 0.5, "heap: which VM")]
        await ioctl_heap_pool(c, vm_id)

    threads.append(k.spawn(heap_user, name="heap"))

    if jobs and group > 0:

        async def submitter() -> None:
            for n in range(jobs):
                await job_submit(k, c, group, pending, who=f"job{n}", mapped_pages=BO_PAGES)

        threads.append(k.spawn(submitter, name="jobs"))

    async def destroyer() -> None:
        after = k.choose_data(binders * ops, 0.7, "destroyer: after how many binder ops")
        for _ in range(10_000):  # bounded: a binder that died early must not hang it
            if started[0] >= after:
                break
            await usleep_range(10, 10)
        first = k.choose_data(2, 0.5, "destroyer: destroy VM 2 first")
        for vm_id in (vm_ids[1], vm_ids[0]) if first else (vm_ids[0], vm_ids[1]):
            await ioctl_vm_destroy(c, vm_id)

    threads.append(k.spawn(destroyer, name="destroyer"))
    for t in threads:
        await t.join()
    # The file goes while the queued binds and jobs may still be in flight.
    await client_close(c)
    await pending.wait_all()
    await device_down(ptdev)


@scenario(
    "kernel-bo",
    "kernel BO VA allocation and map_bo_range/unmap_range racing user binds on one VM",
    tags=("panthor", "vm-bind", "kernel-bo"),
)
async def kernel_bo(
    k: Kernel,
    kbos: Annotated[int, Range(1, 4)] = 2,
    ops: Annotated[int, Range(1, 16)] = 3,
) -> None:
    ptdev = await device_up(k)
    c = await client_open(ptdev, "file0")
    if c is None:
        await device_down(ptdev)
        return
    pending = Pending()
    vm_id = await ioctl_vm_create(c)
    bos = [await ioctl_bo_create(c, BO_PAGES * PAGE, name=f"bo{j}") for j in range(2)]
    bos = [h for h in bos if h > 0]
    threads = []
    if vm_id > 0 and bos:
        vm = vm_of(c.pfile, vm_id)

        async def user() -> None:
            for n in range(ops):
                await bind_op(k, c, vm_id, bos, pending, who=f"user.op{n}")

        threads.append(k.spawn(user, name="user"))
        for i in range(kbos):

            async def kernel_user(i: int = i) -> None:
                # panthor_kernel_bo_create() / panthor_kernel_bo_destroy(): a BO private
                # to the VM, a VA from the kernel auto-VA range, mapped, then torn down.
                pages = 1 + k.choose_data(2, 0.5, f"kbo{i}: pages - 1")
                size = pages * PAGE
                bo = await panthor_gem_create(
                    size, f"kbo{i}", exclusive_vm_root_gem=panthor_vm_root_gem(vm)
                )
                if not isinstance(bo, PanthorGemObject):
                    return
                node = DrmMmNode()
                if not await panthor_vm_alloc_va(vm, PANTHOR_VM_KERNEL_AUTO_VA, size, node):
                    if not await panthor_vm_map_bo_range(vm, bo, 0, size, node.start, 0):
                        await panthor_vm_unmap_range(vm, node.start, size)
                    await panthor_vm_free_va(vm, node)
                await drm_gem_object_put(bo)

            threads.append(k.spawn(kernel_user, name=f"kbo{i}"))
    for t in threads:
        await t.join()
    await pending.wait_all()
    await client_close(c)
    await device_down(ptdev)


# The ioctls an ioctl-program actor picks from; 0, the canonical one, is a bind.
_IOCTLS = ("VM_BIND", "VM_BIND_ASYNC", "BO_CREATE", "VM_CREATE", "VM_DESTROY", "GROUP_SUBMIT")


@scenario(
    "ioctl-program",
    "a generated program of ioctls per actor (mostly valid, some invalid) over shared files",
    tags=("panthor", "ioctl"),
)
async def ioctl_program(
    k: Kernel,
    actors: Annotated[int, Range(1, 4)] = 2,
    ops: Annotated[int, Range(1, 32)] = 6,
) -> None:
    ptdev = await device_up(k)
    c = await client_open(ptdev, "file0")
    if c is None:
        await device_down(ptdev)
        return
    pending = Pending()
    first = await ioctl_vm_create(c)
    bo0 = await ioctl_bo_create(c, BO_PAGES * PAGE, name="bo0")
    if first > 0:
        await _cmd_mapping(c, first)

    def pick_handle(hs: list[int], who: str) -> int:
        # Mostly a live handle, sometimes one that never existed (invalid input).
        if not hs or k.choose_data(8, 0.1, f"{who}: a bogus handle"):
            return 1000 + k.choose_data(4, 0.5, f"{who}: bogus value")
        return hs[k.choose_data(len(hs), 0.5, f"{who}: which handle")]

    async def actor(i: int) -> None:
        groups: dict[int, int] = {}
        for n in range(ops):
            who = f"actor{i}.op{n}"
            what = _IOCTLS[k.choose_data(len(_IOCTLS), 0.6, f"{who}: ioctl")]
            if what in ("VM_BIND", "VM_BIND_ASYNC"):
                vm_id = pick_handle(c.vms, who)
                bos = [h for h in c.bos if h > 0] or [bo0]
                await bind_op(k, c, vm_id, bos, pending, who=who)
            elif what == "BO_CREATE":
                excl = c.vms[-1] if c.vms and k.choose_data(2, 0.5, f"{who}: private") else 0
                await ioctl_bo_create(c, BO_PAGES * PAGE, excl, name=f"{who}.bo")
            elif what == "VM_CREATE":
                vm_id = await ioctl_vm_create(c)
                if vm_id > 0:
                    await _cmd_mapping(c, vm_id)
            elif what == "VM_DESTROY":
                await ioctl_vm_destroy(c, pick_handle(c.vms, who))
            else:
                vm_id = pick_handle(c.vms, who)
                if vm_id not in groups:
                    groups[vm_id] = await group_create(c, vm_id)
                if groups[vm_id] > 0:
                    await job_submit(k, c, groups[vm_id], pending, who=who)

    threads = [k.spawn(actor, i, name=f"actor{i}") for i in range(actors)]
    for t in threads:
        await t.join()
    await pending.wait_all()
    await client_close(c)
    await device_down(ptdev)


__all__ = ["bind_storm", "destroy_while_busy", "ioctl_program", "kernel_bo"]
