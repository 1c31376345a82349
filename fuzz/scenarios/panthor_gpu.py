"""Driver scenarios around the GPU: AS-slot pressure, resets during binds, unplug during work.

Every actor is a simulated thread; its program (which jobs, which faults,
when a reset is asked for, when the device goes) comes from
``k.choose_data``. The scenarios know no bug; the generic oracles judge.
"""

from __future__ import annotations

from typing import Annotated

from panthor_testbed.mmu.bringup import device_unplug
from panthor_testbed.mmu.gpu_jobs import gpu_job_wait, panthor_job_submit
from panthor_testbed.mmu.hw.gpu_access import GPU_READ
from panthor_testbed.mmu.hw.gpu_control import gpu_control_of
from panthor_testbed.mmu.panthor_device import panthor_device_schedule_reset
from panthor_testbed.mmu.panthor_drm import DRM_PANTHOR_VM_BIND_OP_TYPE_MAP, drm_panthor_vm_bind_op
from panthor_testbed.mmu.panthor_sched import panthor_group_destroy
from panthor_testbed.sched import DmaFence, Kernel
from panthor_testbed.sched.core.clock import udelay

from ..scenario import Range, scenario
from .actors import (
    PAGE,
    Client,
    client_close,
    client_open,
    device_down,
    device_up,
    ioctl_bo_create,
    ioctl_vm_bind_sync,
    ioctl_vm_create,
)
from .panthor_binds import _cmd_mapping
from .program import (
    BO_PAGES,
    CMD_VA,
    WINDOW_PAGES,
    Pending,
    bind_op,
    group_create,
    job_submit,
    page_va,
)


async def _vm_with_memory(c: Client) -> tuple[int, list[int]]:
    """A VM with its command page and one BO mapped at the start of the window."""
    vm_id = await ioctl_vm_create(c)
    if vm_id <= 0:
        return vm_id, []
    await _cmd_mapping(c, vm_id)
    bo = await ioctl_bo_create(c, BO_PAGES * PAGE, name=f"{c.name}.vm{vm_id}.bo")
    if bo <= 0:
        return vm_id, []
    op = drm_panthor_vm_bind_op(
        flags=DRM_PANTHOR_VM_BIND_OP_TYPE_MAP, bo_handle=bo, va=page_va(0), size=BO_PAGES * PAGE
    )
    await ioctl_vm_bind_sync(c, vm_id, op)
    return vm_id, [bo]


@scenario(
    "as-slot-pressure",
    "more active VMs than AS slots (LRU eviction); faults make an AS faulty, the next "
    "activation re-enables it",
    tags=("panthor", "mmu", "gpu-jobs"),
)
async def as_slot_pressure(
    k: Kernel,
    vms: Annotated[int, Range(2, 6)] = 3,
    as_slots: Annotated[int, Range(1, 4)] = 2,
    jobs: Annotated[int, Range(1, 8)] = 3,
) -> None:
    # AS0 is the MCU's: as_slots user address spaces on top of it.
    ptdev = await device_up(k, as_present=(1 << (as_slots + 1)) - 1)
    c = await client_open(ptdev, "file0")
    if c is None:
        await device_down(ptdev)
        return
    pending = Pending()
    threads = []
    for v in range(vms):
        vm_id, _ = await _vm_with_memory(c)
        if vm_id <= 0:
            continue

        async def user(v: int = v, vm_id: int = vm_id) -> None:
            group = await group_create(c, vm_id)
            for n in range(jobs):
                if group <= 0:
                    return
                who = f"vm{v}.job{n}"
                # Pages past the BO are unmapped: an access there faults the AS.
                mine = Pending()
                if await job_submit(k, c, group, mine, who=who, mapped_pages=WINDOW_PAGES):
                    return
                err = await mine.wait_all()
                if err and err[0]:
                    # The group is dead: a new one on the same VM (the AS is re-enabled
                    # when the VM is next activated).
                    await panthor_group_destroy(c.pfile, group)
                    c.groups.remove(group)
                    group = await group_create(c, vm_id)

        threads.append(k.spawn(user, name=f"user-vm{v}"))
    for t in threads:
        await t.join()
    await pending.wait_all()
    await client_close(c)
    await device_down(ptdev)


@scenario(
    "reset-during-bind",
    "async VM_BINDs queued and running on several VMs while a reset is scheduled (a stuck "
    "AS_ACTIVE, a GPU job timeout) and the MMU IRQ reports a fault",
    tags=("panthor", "reset", "vm-bind", "gpu-jobs"),
)
async def reset_during_bind(
    k: Kernel,
    vms: Annotated[int, Range(1, 4)] = 2,
    ops: Annotated[int, Range(1, 16)] = 3,
    jobs: Annotated[int, Range(0, 4)] = 1,
) -> None:
    ptdev = await device_up(k)
    c = await client_open(ptdev, "file0")
    if c is None:
        await device_down(ptdev)
        return
    pending = Pending()
    threads = []
    vm_ids: list[int] = []
    for v in range(vms):
        vm_id, bos = await _vm_with_memory(c)
        if vm_id <= 0 or not bos:
            continue
        vm_ids.append(vm_id)
        bos.append(await ioctl_bo_create(c, BO_PAGES * PAGE, name=f"vm{v}.bo1"))

        async def binder(v: int = v, vm_id: int = vm_id, bos: list[int] = bos) -> None:
            for n in range(ops):
                await bind_op(k, c, vm_id, bos, pending, who=f"vm{v}.op{n}")

        threads.append(k.spawn(binder, name=f"bind-vm{v}"))
        if jobs:

            async def submitter(v: int = v, vm_id: int = vm_id) -> None:
                group = await group_create(c, vm_id)
                for n in range(jobs):
                    if group <= 0:
                        return
                    who = f"vm{v}.job{n}"
                    # A hung job is reset by the job timeout (the TDR).
                    hang = (None, "soft", "hard")[
                        k.choose_data(3, 0.3, f"{who}: 1 soft, 2 hard hang")
                    ]
                    if hang is None:
                        await job_submit(k, c, group, pending, who=who)
                        continue
                    f = await panthor_job_submit(
                        c.pfile,
                        group,
                        [(page_va(0), GPU_READ)],
                        hang=hang,
                        stream_addr=CMD_VA,
                        stream_size=64,
                    )
                    if isinstance(f, DmaFence):
                        pending.fences.append(f)

            threads.append(k.spawn(submitter, name=f"jobs-vm{v}"))

    async def chaos() -> None:
        """What goes wrong on the device side, and when."""
        await udelay(1 + 50 * k.choose_data(8, 0.7, "chaos: delay (50us units)"))
        what = k.choose_data(
            4, 0.5, "chaos: 1 stuck AS_ACTIVE, 2 both, 3 a reset the MCU does not come back from"
        )
        if what == 3:
            # The firmware does not reboot after the soft reset (nor on the retry):
            # the reset work gives the device up.
            gpu_control_of().inject_boot_failure(2)
        if what in (1, 2) and vm_ids:
            # A command on a user AS never completes: wait_ready() times out and
            # schedules the reset itself.
            as_nr = 1 + k.choose_data(max(1, len(vm_ids)), 0.5, "chaos: which AS")
            ptdev.iomem.inject_stuck_as_active(as_nr)
        if what in (0, 2, 3):
            await panthor_device_schedule_reset(ptdev)

    threads.append(k.spawn(chaos, name="chaos"))
    for t in threads:
        await t.join()
    await pending.wait_all()
    await client_close(c)
    await device_down(ptdev)


@scenario(
    "unplug",
    "the device is unplugged while binds are queued and GPU jobs run",
    tags=("panthor", "unplug", "vm-bind", "gpu-jobs"),
)
async def unplug(
    k: Kernel,
    ops: Annotated[int, Range(1, 16)] = 3,
    jobs: Annotated[int, Range(0, 4)] = 1,
) -> None:
    ptdev = await device_up(k)
    c = await client_open(ptdev, "file0")
    if c is None:
        await device_down(ptdev)
        return
    pending = Pending()
    vm_id, bos = await _vm_with_memory(c)
    threads = []
    if vm_id > 0 and bos:

        async def binder() -> None:
            for n in range(ops):
                await bind_op(k, c, vm_id, bos, pending, who=f"op{n}")

        threads.append(k.spawn(binder, name="binder"))

        async def submitter() -> None:
            group = await group_create(c, vm_id)
            for n in range(jobs):
                if group > 0:
                    await job_submit(k, c, group, pending, who=f"job{n}", mapped_pages=BO_PAGES)

        threads.append(k.spawn(submitter, name="jobs"))

    async def remover() -> None:
        await udelay(1 + 20 * k.choose_data(8, 0.7, "unplug: delay (20us units)"))
        await device_unplug(ptdev)

    threads.append(k.spawn(remover, name="remove"))
    for t in threads:
        await t.join()
    # User space waits with a timeout: work caught by the unplug may never complete.
    for f in pending.fences:
        await gpu_job_wait(f, timeout_ms=100)
    pending.fences.clear()
    await client_close(c)
    await device_down(ptdev)


@scenario(
    "suspend-resume",
    "binds and GPU jobs with idle gaps long enough for the device to runtime-suspend "
    "(50 ms autosuspend) and resume on the next job, racing the suspend and the resume; "
    "the MCU may fail a fast resume once (the slow reset path)",
    tags=("panthor", "pm", "vm-bind", "gpu-jobs"),
)
async def suspend_resume(
    k: Kernel,
    vms: Annotated[int, Range(1, 3)] = 2,
    ops: Annotated[int, Range(1, 16)] = 3,
    jobs: Annotated[int, Range(0, 4)] = 2,
) -> None:
    ptdev = await device_up(k, runtime_pm=True)
    if k.choose_data(2, 0.3, "mcu: the next boot fails (a fast resume falls back to a slow one)"):
        # The firmware starts and dies on the next boot: panthor_fw_post_reset()
        # stops it and reboots it from freshly reloaded sections.
        gpu_control_of().inject_boot_failure(1)
    c = await client_open(ptdev, "file0")
    if c is None:
        await device_down(ptdev)
        return
    pending = Pending()
    threads = []

    async def idle(who: str) -> None:
        # Short, around the 50 ms autosuspend delay, or past it.
        await udelay(1 + 10_000 * k.choose_data(8, 0.6, f"{who}: idle (10 ms units)"))

    for v in range(vms):
        vm_id, bos = await _vm_with_memory(c)
        if vm_id <= 0 or not bos:
            continue

        async def binder(v: int = v, vm_id: int = vm_id, bos: list[int] = bos) -> None:
            for n in range(ops):
                await idle(f"vm{v}.op{n}")
                await bind_op(k, c, vm_id, bos, pending, who=f"vm{v}.op{n}")

        threads.append(k.spawn(binder, name=f"bind-vm{v}"))
        if jobs:

            async def submitter(v: int = v, vm_id: int = vm_id) -> None:
                group = await group_create(c, vm_id)
                for n in range(jobs):
                    if group <= 0:
                        return
                    await idle(f"vm{v}.job{n}")
                    await job_submit(k, c, group, pending, who=f"vm{v}.job{n}")

            threads.append(k.spawn(submitter, name=f"jobs-vm{v}"))

    for t in threads:
        await t.join()
    await pending.wait_all()
    await client_close(c)
    await device_down(ptdev)


__all__ = ["as_slot_pressure", "reset_during_bind", "suspend_resume", "unplug"]
