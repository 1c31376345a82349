"""Generated programs for the driver scenarios: every user-space decision is a data choice.

Each helper draws what an actor does next from ``k.choose_data`` (0, the
canonical value, is the plainest op), so one choice sequence drives the
program and the schedule, and ``shrink`` reduces both. Nothing here knows a
bug: the programs only produce work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from panthor_testbed.mmu.gpu_jobs import gpu_group_create, gpu_job_wait, panthor_job_submit
from panthor_testbed.mmu.hw.gpu_access import GPU_READ, GPU_WRITE
from panthor_testbed.mmu.panthor_drm import (
    DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
    DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
    drm_panthor_vm_bind_op,
)
from panthor_testbed.sched import DmaFence, Kernel

from .actors import PAGE, Client, ioctl_vm_bind_async, ioctl_vm_bind_sync

# Every VM's binds land in one window of pages, so ops overlap.
WINDOW_BASE: Final = 0x100000
# Where every VM keeps its command stream (mapped once at set-up, outside the window).
CMD_VA: Final = 0x80000
WINDOW_PAGES: Final = 16
BO_PAGES: Final = 8


@dataclass
class Pending:
    """Fences an actor submitted and has not waited for yet (it waits at its end)."""

    fences: list[DmaFence] = field(default_factory=list)

    async def wait_all(self) -> list[int]:
        errs = [await gpu_job_wait(f) for f in self.fences]
        self.fences.clear()
        return errs


def page_va(page: int) -> int:
    return WINDOW_BASE + page * PAGE


async def bind_op(
    k: Kernel,
    c: Client,
    vm_id: int,
    bos: list[int],
    pending: Pending,
    *,
    who: str,
    maps: bool = True,
) -> int:
    """One generated VM_BIND: map or unmap, sync or async, over the window.

    ``maps=False``: unmaps only (sync or async).
    """
    if maps:
        kind = k.choose_data(4, 0.75, f"{who}: op 1 unmap, 2 async map, 3 async unmap")
    else:
        kind = 1 + 2 * k.choose_data(2, 0.5, f"{who}: async unmap")
    page = k.choose_data(WINDOW_PAGES, 0.9, f"{who}: first page")
    npages = 1 + k.choose_data(4, 0.5, f"{who}: pages - 1")
    npages = min(npages, WINDOW_PAGES - page)
    if kind in (0, 2):
        bo = bos[k.choose_data(len(bos), 0.5, f"{who}: which BO")]
        off = k.choose_data(BO_PAGES - min(npages, BO_PAGES) + 1, 0.5, f"{who}: BO page")
        npages = min(npages, BO_PAGES - off)
        op = drm_panthor_vm_bind_op(
            flags=DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
            bo_handle=bo,
            bo_offset=off * PAGE,
            va=page_va(page),
            size=npages * PAGE,
        )
    else:
        op = drm_panthor_vm_bind_op(
            flags=DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP, va=page_va(page), size=npages * PAGE
        )
    if kind < 2:
        return await ioctl_vm_bind_sync(c, vm_id, op)
    ret, fence = await ioctl_vm_bind_async(c, vm_id, op)
    if fence is not None:
        pending.fences.append(fence)
    return ret


def job_accesses(k: Kernel, *, who: str, mapped_pages: int = WINDOW_PAGES) -> list[tuple[int, int]]:
    """A job's memory accesses: a few reads and writes in the window (maybe unmapped ones)."""
    out = []
    for i in range(1 + k.choose_data(3, 0.5, f"{who}: accesses - 1")):
        page = k.choose_data(mapped_pages, 0.7, f"{who}: access #{i} page")
        mode = GPU_WRITE if k.choose_data(2, 0.5, f"{who}: access #{i} writes") else GPU_READ
        out.append((page_va(page) + 64 * i, mode))
    return out


async def job_submit(
    k: Kernel,
    c: Client,
    group: int,
    pending: Pending,
    *,
    who: str,
    mapped_pages: int = WINDOW_PAGES,
) -> int:
    """One generated GROUP_SUBMIT on ``group``: 0 or the ioctl's negative errno."""
    acc = job_accesses(k, who=who, mapped_pages=mapped_pages)
    fence = await panthor_job_submit(c.pfile, group, acc, stream_addr=CMD_VA, stream_size=64)
    if isinstance(fence, DmaFence):
        pending.fences.append(fence)
        return 0
    return fence.err


async def group_create(c: Client, vm_id: int) -> int:
    """GROUP_CREATE on ``vm_id``: the handle, or a negative errno."""
    handle = await gpu_group_create(c.pfile, vm_id)
    if handle > 0:
        c.groups.append(handle)
    return handle


__all__ = [
    "BO_PAGES",
    "CMD_VA",
    "WINDOW_BASE",
    "WINDOW_PAGES",
    "Pending",
    "bind_op",
    "group_create",
    "job_accesses",
    "job_submit",
    "page_va",
]
