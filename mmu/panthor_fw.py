"""panthor_fw.c: the MCU firmware as far as the device and the seed need it.

* :func:`panthor_fw_init`: the job IRQ, the L2 powered on, the **MCU VM**
  (``panthor_vm_create(ptdev, true, 0, SZ_4G, CSF_MCU_SHARED_REGION_START,
  CSF_MCU_SHARED_REGION_SIZE)``), every section of the firmware image mapped
  at its fixed VA through a kernel BO (:func:`panthor_fw_load`), the VM made
  active (it gets AS0, the MCU's), the MCU booted (:func:`panthor_fw_start`).
* Reset: :func:`panthor_fw_pre_reset` halts the MCU when the reset is not
  on a hang (a fast reset is possible then), :func:`panthor_fw_post_reset`
  makes the MCU VM active again and reboots the MCU, falling back from a fast
  to a slow reset (flush the MCU VM's caches, reload every section).
* :func:`panthor_fw_suspend`/:func:`panthor_fw_resume` are the pre/post reset
  of a runtime suspend; :func:`panthor_fw_unplug` stops the MCU and destroys
  the sections and the VM.

The CSF interfaces the scheduler talks to, the req/ack helpers and the job
interrupt live in :mod:`.panthor_fw_iface` (the CSF model's objects stand for
the shared section's contents, so ``panthor_fw_init_ifaces`` is not ported);
the watchdog ping is not modelled (the CSF model has no global requests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..sched.core.clock import NSEC_PER_JIFFY, msecs_to_jiffies, read_poll_timeout
from ..sched.core.kernel import current_kernel, preempt
from ..sched.drm.drm_drv import drmm_kzalloc, pm_runtime_active
from ..sched.drm.drm_print import drm_err, drm_warn
from ..sched.errno import EINVAL, ENODEV, ENOMEM, ETIMEDOUT, IS_ERR, PTR_ERR
from ..sched.mm.gfp import GFP_KERNEL
from ..sched.warn import drm_WARN_ON
from . import regs as R
from .hw.gpu_control import (
    CSF_FW_BINARY_IFACE_ENTRY_CACHE_MODE_CACHED,
    CSF_FW_BINARY_IFACE_ENTRY_CACHE_MODE_MASK,
    CSF_FW_BINARY_IFACE_ENTRY_EX,
    CSF_FW_BINARY_IFACE_ENTRY_SHARED,
    CSF_FW_BINARY_IFACE_ENTRY_WR,
    CSF_FW_BINARY_IFACE_ENTRY_ZERO,
    CSF_MCU_SHARED_REGION_SIZE,
    CSF_MCU_SHARED_REGION_START,
    GLB_HALT,
    FirmwareImage,
    gpu_control_of,
)
from .panthor_device import PanthorDevice, gpu_read, gpu_write
from .panthor_drm import (
    DRM_PANTHOR_BO_NO_MMAP,
    DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC,
    DRM_PANTHOR_VM_BIND_OP_MAP_READONLY,
    DRM_PANTHOR_VM_BIND_OP_MAP_UNCACHED,
)
from .panthor_fw_iface import (
    _FW_KEY,
    PanthorFwSched,
    panthor_fw_get_glb_iface,
    panthor_fw_update_reqs,
)
from .panthor_gem import (
    PanthorKernelBo,
    panthor_kernel_bo_create,
    panthor_kernel_bo_destroy,
    panthor_kernel_bo_vmap,
)
from .sizes import SZ_4G

if TYPE_CHECKING:
    from .panthor_mmu import PanthorVm


class PanthorFwSection:
    """``struct panthor_fw_section``."""

    def __init__(self) -> None:
        self.flags = 0
        self.data: bytes = b""
        self.name = ""
        self.mem: Any = None  # PanthorKernelBo, or ERR_PTR()


class PanthorFw(PanthorFwSched):
    """``struct panthor_fw``: the scheduler's part (job IRQ, req_waitqueue) plus the MCU VM."""

    def __init__(self, ptdev: PanthorDevice) -> None:
        super().__init__(ptdev)
        self.vm: PanthorVm | None = None
        self.sections: list[PanthorFwSection] = []  # INIT_LIST_HEAD(&fw->sections)
        self.shared_section: PanthorFwSection | None = None
        self.booted = False


def panthor_fw_vm(ptdev: PanthorDevice) -> PanthorVm | None:
    """``panthor_fw_vm()``."""
    return ptdev.fw.vm if ptdev.fw is not None else None


async def panthor_fw_init_section_mem(ptdev: PanthorDevice, section: PanthorFwSection) -> None:
    """``panthor_fw_init_section_mem()``: copy the section's data in, zero the rest."""
    mem: PanthorKernelBo = section.mem
    was_mapped = mem.kmap is not None

    if not section.data and not section.flags & CSF_FW_BINARY_IFACE_ENTRY_ZERO:
        return

    ret = await panthor_kernel_bo_vmap(mem)
    if drm_WARN_ON(ptdev.base, ret):
        return

    assert mem.kmap is not None
    # memcpy(kmap, data) / memset(kmap + data.size, 0, ...): one word stands for the data.
    mem.kmap.write(0, int.from_bytes(section.data, "little") if section.data else 0)

    if not was_mapped:
        mem.kmap = None  # panthor_kernel_bo_vunmap()


async def panthor_fw_load_section_entry(
    ptdev: PanthorDevice, va_start: int, va_end: int, flags: int, name: str, data: bytes
) -> int:
    """``panthor_fw_load_section_entry()``: one section of the image, mapped at its VA."""
    fw: PanthorFw = ptdev.fw

    if flags & CSF_FW_BINARY_IFACE_ENTRY_SHARED == 0 and va_start == CSF_MCU_SHARED_REGION_START:
        drm_err(ptdev.base, "Interface at 0x%x must be shared", CSF_MCU_SHARED_REGION_START)
        return -EINVAL

    section = await drmm_kzalloc(ptdev.base, PanthorFwSection, GFP_KERNEL)
    if not section:
        return -ENOMEM

    fw.sections.append(section)  # list_add_tail(&section->node, &ptdev->fw->sections)
    section.flags = flags
    section.data = data
    section.name = name

    section_size = va_end - va_start
    if section_size:
        cache_mode = flags & CSF_FW_BINARY_IFACE_ENTRY_CACHE_MODE_MASK
        vm_map_flags = 0

        if not flags & CSF_FW_BINARY_IFACE_ENTRY_WR:
            vm_map_flags |= DRM_PANTHOR_VM_BIND_OP_MAP_READONLY

        if not flags & CSF_FW_BINARY_IFACE_ENTRY_EX:
            vm_map_flags |= DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC

        # TODO: CSF_FW_BINARY_IFACE_ENTRY_CACHE_MODE_*_COHERENT are mapped to
        # non-cacheable for now.
        if cache_mode != CSF_FW_BINARY_IFACE_ENTRY_CACHE_MODE_CACHED:
            vm_map_flags |= DRM_PANTHOR_VM_BIND_OP_MAP_UNCACHED

        section.mem = await panthor_kernel_bo_create(
            ptdev,
            panthor_fw_vm(ptdev),
            section_size,
            DRM_PANTHOR_BO_NO_MMAP,
            vm_map_flags,
            va_start,
            "FW section",
        )
        if IS_ERR(section.mem):
            return PTR_ERR(section.mem)

        if drm_WARN_ON(ptdev.base, section.mem.va_node.start != va_start):
            return -EINVAL

        if section.flags & CSF_FW_BINARY_IFACE_ENTRY_SHARED:
            ret = await panthor_kernel_bo_vmap(section.mem)
            if ret:
                return ret

        await panthor_fw_init_section_mem(ptdev, section)

    if va_start == CSF_MCU_SHARED_REGION_START:
        fw.shared_section = section

    return 0


async def panthor_reload_fw_sections(ptdev: PanthorDevice, full_reload: bool) -> None:
    """``panthor_reload_fw_sections()``."""
    fw: PanthorFw = ptdev.fw
    for section in fw.sections:
        if not full_reload and not section.flags & CSF_FW_BINARY_IFACE_ENTRY_WR:
            continue

        await panthor_fw_init_section_mem(ptdev, section)


def request_firmware(ptdev: PanthorDevice) -> FirmwareImage:
    """``request_firmware()``: the image the GPU model boots (its sections)."""
    return gpu_control_of().config.firmware


async def panthor_fw_load(ptdev: PanthorDevice) -> int:
    """``panthor_fw_load()``: every section entry of the image (headers are not modelled)."""
    fw: PanthorFw = ptdev.fw
    image = request_firmware(ptdev)
    for s in image.sections:
        ret = await panthor_fw_load_section_entry(
            ptdev, s.va_start, s.va_end, s.flags, s.name, s.data
        )
        if ret:
            return ret

    if not fw.shared_section:
        drm_err(ptdev.base, "Shared interface region not found\n")
        return -EINVAL

    return 0


async def panthor_fw_start(ptdev: PanthorDevice) -> int:
    """``panthor_fw_start()``: boot the MCU, wait (1 s) for its GLOBAL_IF interrupt."""
    fw: PanthorFw = ptdev.fw
    k = current_kernel()
    timedout = False

    fw.booted = False
    await fw.irq.resume(0xFFFFFFFF)  # panthor_job_irq_resume(&ptdev->fw->irq, ~0)
    await gpu_write(ptdev, R.MCU_CONTROL, R.MCU_CONTROL_AUTO)

    # wait_event_timeout(fw->req_waitqueue, fw->booted, msecs_to_jiffies(1000))
    deadline = k.now + msecs_to_jiffies(1000) * NSEC_PER_JIFFY
    woken = False
    while True:
        await preempt()  # a plain read of fw->booted
        if fw.booted:
            woken = True
            break
        left = deadline - k.now
        if left <= 0:
            break
        await fw.req_waitqueue.wait(left)

    if not woken:
        await preempt()
        if not fw.booted and not (await gpu_read(ptdev, R.JOB_INT_STAT) & R.JOB_INT_GLOBAL_IF):
            timedout = True

    if timedout:
        status = await gpu_read(ptdev, R.MCU_STATUS)
        names = {0: "disabled", 1: "enabled", 2: "halt", 3: "fatal"}
        drm_err(ptdev.base, "Failed to boot MCU (status=%s)", names.get(status, "unknown"))
        return -ETIMEDOUT

    return 0


async def panthor_fw_stop(ptdev: PanthorDevice) -> None:
    """``panthor_fw_stop()``."""
    await gpu_write(ptdev, R.MCU_CONTROL, R.MCU_CONTROL_DISABLE)

    async def status() -> int:
        return await gpu_read(ptdev, R.MCU_STATUS)

    ret, _ = await read_poll_timeout(
        status, lambda v: v == R.MCU_STATUS_DISABLED, 10, 100000, atomic=False
    )
    if ret:
        drm_err(ptdev.base, "Failed to stop MCU")


async def panthor_fw_pre_reset(ptdev: PanthorDevice, on_hang: bool) -> None:
    """``panthor_fw_pre_reset()`` - Call before a reset.

    If the reset is not triggered on a hang, we try to gracefully halt the
    MCU, so we can do a fast-reset when panthor_fw_post_reset() is called.
    """
    fw: PanthorFw = ptdev.fw
    glb_iface = panthor_fw_get_glb_iface(ptdev)

    ptdev.reset.fast = False

    if not on_hang:
        panthor_fw_update_reqs(glb_iface, "req", GLB_HALT, GLB_HALT)
        await gpu_write(ptdev, R.CSF_DOORBELL(R.CSF_GLB_DOORBELL_ID), 1)

        async def status() -> int:
            return await gpu_read(ptdev, R.MCU_STATUS)

        ret, _ = await read_poll_timeout(
            status, lambda v: v == R.MCU_STATUS_HALT, 10, 100000, atomic=False
        )
        if not ret:
            ptdev.reset.fast = True
        else:
            drm_warn(ptdev.base, "Failed to cleanly suspend MCU")

        # The FW detects 0 -> 1 transitions. Make sure we reset the HALT bit
        # before the FW is rebooted.
        panthor_fw_update_reqs(glb_iface, "req", 0, GLB_HALT)

    await fw.irq.suspend()  # panthor_job_irq_suspend(&ptdev->fw->irq)


async def panthor_fw_post_reset(ptdev: PanthorDevice) -> int:
    """``panthor_fw_post_reset()`` - Call after a reset.

    Start the FW. If this is not a fast reset, all FW sections are reloaded to
    make sure we can recover from a memory corruption.
    """
    from .panthor_mmu import panthor_vm_active, panthor_vm_flush_all

    fw: PanthorFw = ptdev.fw
    assert fw.vm is not None

    # Make the MCU VM active.
    ret = await panthor_vm_active(fw.vm)
    if ret:
        return ret

    # If this is a fast reset, try to start the MCU without reloading the FW
    # sections. If it fails, go for a full reset.
    if ptdev.reset.fast:
        ret = await panthor_fw_start(ptdev)
        if not ret:
            return 0  # goto out (the global iface is not modelled)

        # Forcibly reset the MCU and force a slow reset, so we get a fresh
        # boot on the next panthor_fw_start() call.
        await panthor_fw_stop(ptdev)
        ptdev.reset.fast = False
        drm_err(ptdev.base, "FW fast reset failed, trying a slow reset")

        ret = await panthor_vm_flush_all(fw.vm)
        if ret:
            drm_err(ptdev.base, "FW slow reset failed (couldn't flush FW's AS l2cache)")
            return ret

    # Reload all sections, including RO ones. We're not supposed to end up
    # here anyway, let's just assume the overhead of reloading everything is
    # acceptable.
    await panthor_reload_fw_sections(ptdev, True)

    ret = await panthor_fw_start(ptdev)
    if ret:
        drm_err(ptdev.base, "FW slow reset failed (couldn't start the FW )")
        return ret

    # out: We must re-initialize the global interface even on fast-reset
    # (panthor_fw_init_global_iface(): not modelled).
    return 0


async def panthor_fw_suspend(ptdev: PanthorDevice) -> None:
    """``panthor_fw_suspend()``: ``panthor_fw_pre_reset(ptdev, false)``."""
    await panthor_fw_pre_reset(ptdev, False)


async def panthor_fw_resume(ptdev: PanthorDevice) -> int:
    """``panthor_fw_resume()``: ``panthor_fw_post_reset(ptdev)``."""
    return await panthor_fw_post_reset(ptdev)


async def panthor_fw_unplug(ptdev: PanthorDevice) -> None:
    """``panthor_fw_unplug()`` - Called when the device is unplugged.

    This function must make sure all pending operations are flushed before
    will release device resources, thus preventing any interaction with the HW.
    """
    from panthor_testbed.mmu.panthor_gpu import panthor_gpu_power_off
    from panthor_testbed.mmu.panthor_mmu import panthor_vm_put

    fw: PanthorFw = ptdev.fw

    if await pm_runtime_active(ptdev.base.dev):
        # Make sure the IRQ handler cannot be called after that point.
        if fw.irq.desc is not None:
            await fw.irq.suspend()

        await panthor_fw_stop(ptdev)

    for section in fw.sections:
        await panthor_kernel_bo_destroy(section.mem)

    # We intentionally don't call panthor_vm_idle() and let
    # panthor_mmu_unplug() release the AS we acquired with panthor_vm_active()
    # so we don't have to track the VM active/idle state to keep the
    # active_refcnt balanced.
    if fw.vm is not None:
        await panthor_vm_put(fw.vm)
    fw.vm = None

    if await pm_runtime_active(ptdev.base.dev):
        await panthor_gpu_power_off(ptdev, "L2", ptdev.gpu_info.l2_present, 20000)


async def panthor_fw_init(ptdev: PanthorDevice) -> int:
    """``panthor_fw_init()`` - Initialize FW related data."""
    from .panthor_gpu import panthor_gpu_l2_power_on
    from .panthor_mmu import PanthorVm, panthor_vm_active, panthor_vm_create

    k = current_kernel()
    fw = await drmm_kzalloc(ptdev.base, lambda: PanthorFw(ptdev), GFP_KERNEL)
    if not fw:
        return -ENOMEM

    ptdev.fw = fw
    k.objects[_FW_KEY] = fw

    desc = ptdev.irqs.get("job")  # platform_get_irq_byname(..., "job")
    if desc is None:
        return -ENODEV

    fw.csf.set_job_irq_handler(desc.trigger)
    ret: int = await fw.irq.request(desc, 0)  # panthor_request_job_irq(ptdev, &fw->irq, irq, 0)
    if ret:
        drm_err(ptdev.base, "failed to request job irq")
        return ret

    ret = await panthor_gpu_l2_power_on(ptdev)
    if ret:
        return ret

    vm = await panthor_vm_create(
        ptdev, True, 0, SZ_4G, CSF_MCU_SHARED_REGION_START, CSF_MCU_SHARED_REGION_SIZE
    )
    if IS_ERR(vm):
        ret = PTR_ERR(vm)
        fw.vm = None
        await panthor_fw_unplug(ptdev)  # goto err_unplug_fw
        return ret
    assert isinstance(vm, PanthorVm)
    fw.vm = vm

    ret = await panthor_fw_load(ptdev)
    if not ret:
        ret = await panthor_vm_active(fw.vm)
    if not ret:
        ret = await panthor_fw_start(ptdev)
    if ret:
        await panthor_fw_unplug(ptdev)  # err_unplug_fw:
        return ret

    return 0
