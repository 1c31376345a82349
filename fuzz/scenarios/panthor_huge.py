"""A driver scenario over 2 MiB block mappings: binds at page granularity over huge pages.

Large BOs mapped at 2 MiB-aligned addresses get 2 MiB block entries in the
page table wherever their backing pages allow it (the page layout is a data
choice of the run: the canonical one gives large chunks, others scatter the
pages). The actors then unmap and remap at 4 KiB granularity over those
mappings while GPU jobs read and write them, so an unmap edge can fall inside
a block, a remap can run while the GPU walks the same table, and user space
can race its own binds. As everywhere, the scenario knows no bug: the
generic oracles judge.
"""

from __future__ import annotations

from typing import Annotated, Final

from panthor_testbed.mmu.gpu_jobs import panthor_job_submit
from panthor_testbed.mmu.hw.gpu_access import GPU_READ, GPU_WRITE
from panthor_testbed.mmu.panthor_drm import (
    DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
    DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
    drm_panthor_vm_bind_op,
)
from panthor_testbed.mmu.sizes import SZ_2M
from panthor_testbed.sched import DmaFence, Kernel

from ..scenario import Range, scenario
from .actors import (
    PAGE,
    Client,
    client_close,
    clients_open,
    device_down,
    device_up,
    ioctl_bo_create,
    ioctl_vm_bind_async,
    ioctl_vm_bind_sync,
    ioctl_vm_create,
)
from .panthor_binds import _cmd_mapping
from .program import CMD_VA, Pending, group_create

# The huge window: three 2M blocks from 4M (above the small-page window and CMD_VA).
HUGE_BASE: Final = 0x400000
HUGE_BLOCKS: Final = 3
BLOCK_PAGES: Final = SZ_2M // PAGE
# Each VM's BO: two 2M blocks.
BO_BLOCKS: Final = 2


def huge_va(block: int, page: int = 0) -> int:
    return HUGE_BASE + block * SZ_2M + page * PAGE


async def huge_bind_op(
    k: Kernel, c: Client, vm_id: int, bo: int, pending: Pending, *, who: str
) -> int:
    """One generated VM_BIND over the huge window.

    Op 0 (the canonical op) unmaps a few pages somewhere in the window; the
    others map whole blocks of the BO at a 2M-aligned address, sync or async.
    """
    kind = k.choose_data(4, 0.5, f"{who}: op 1 map, 2 async unmap, 3 async map")
    if kind in (0, 2):
        block = k.choose_data(HUGE_BLOCKS, 0.5, f"{who}: unmap block")
        page = k.choose_data(BLOCK_PAGES, 0.5, f"{who}: unmap first page in the block")
        npages = 1 + k.choose_data(BLOCK_PAGES, 0.5, f"{who}: unmap pages - 1")
        npages = min(npages, (HUGE_BLOCKS - block) * BLOCK_PAGES - page)
        op = drm_panthor_vm_bind_op(
            flags=DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP, va=huge_va(block, page), size=npages * PAGE
        )
    else:
        block = k.choose_data(HUGE_BLOCKS, 0.5, f"{who}: map at block")
        first = k.choose_data(BO_BLOCKS, 0.5, f"{who}: first BO block")
        blocks = 1 + k.choose_data(BO_BLOCKS, 0.5, f"{who}: blocks - 1")
        blocks = min(blocks, BO_BLOCKS - first, HUGE_BLOCKS - block)
        op = drm_panthor_vm_bind_op(
            flags=DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
            bo_handle=bo,
            bo_offset=first * SZ_2M,
            va=huge_va(block),
            size=blocks * SZ_2M,
        )
    if kind < 2:
        return await ioctl_vm_bind_sync(c, vm_id, op)
    ret, fence = await ioctl_vm_bind_async(c, vm_id, op)
    if fence is not None:
        pending.fences.append(fence)
    return ret


async def huge_job_submit(k: Kernel, c: Client, group: int, pending: Pending, *, who: str) -> int:
    """One GROUP_SUBMIT whose job reads and writes a few pages of the huge window."""
    acc = []
    for i in range(1 + k.choose_data(3, 0.5, f"{who}: accesses - 1")):
        page = k.choose_data(HUGE_BLOCKS * BLOCK_PAGES, 0.7, f"{who}: access #{i} page")
        mode = GPU_WRITE if k.choose_data(2, 0.5, f"{who}: access #{i} writes") else GPU_READ
        acc.append((huge_va(0, page) + 64 * i, mode))
    fence = await panthor_job_submit(c.pfile, group, acc, stream_addr=CMD_VA, stream_size=64)
    if isinstance(fence, DmaFence):
        pending.fences.append(fence)
        return 0
    return fence.err


@scenario(
    "huge-page-binds",
    "2M block mappings of large BOs, unmapped and remapped at page granularity by "
    "concurrent binders while GPU jobs read and write them",
    tags=("panthor", "vm-bind", "huge-pages"),
)
async def huge_page_binds(
    k: Kernel,
    files: Annotated[int, Range(1, 3)] = 1,
    binders: Annotated[int, Range(1, 3)] = 2,
    ops: Annotated[int, Range(1, 16)] = 3,
    jobs: Annotated[int, Range(0, 6)] = 1,
) -> None:
    ptdev = await device_up(k)
    clients = await clients_open(ptdev, files)
    pending = Pending()
    threads = []
    for c in clients:
        vm_id = await ioctl_vm_create(c)
        if vm_id <= 0:
            continue
        await _cmd_mapping(c, vm_id)
        bo = await ioctl_bo_create(c, BO_BLOCKS * SZ_2M, name=f"{c.name}.huge")
        if bo <= 0:
            continue
        # The whole BO at the start of the window: 2M blocks where the pages allow.
        whole = drm_panthor_vm_bind_op(
            flags=DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
            bo_handle=bo,
            va=huge_va(0),
            size=BO_BLOCKS * SZ_2M,
        )
        await ioctl_vm_bind_sync(c, vm_id, whole)
        for b in range(binders):
            who = f"{c.name}.b{b}"

            async def binder(c: Client = c, vm_id: int = vm_id, bo: int = bo, w: str = who) -> None:
                for n in range(ops):
                    await huge_bind_op(k, c, vm_id, bo, pending, who=f"{w}.op{n}")

            threads.append(k.spawn(binder, name=f"bind-{who}"))
        if jobs:
            group = await group_create(c, vm_id)

            async def submitter(c: Client = c, g: int = group, w: str = c.name) -> None:
                for n in range(jobs):
                    await huge_job_submit(k, c, g, pending, who=f"{w}.job{n}")

            if group > 0:
                threads.append(k.spawn(submitter, name=f"jobs-{c.name}"))
    for t in threads:
        await t.join()
    await pending.wait_all()
    for c in clients:
        await client_close(c)
    await device_down(ptdev)
