"""Found here, not fixed in the kernel as far as we know (v6.15): a GPU job's
fence added to a BO that holds no reserved fence slot.

``panthor_vm_prepare_mapped_bos_resvs()`` reserves a slot on the VM resv and
on every BO of the VM's extobj list, and ``panthor_vm_update_resvs()`` then
adds the job fence to *every object locked in the drm_exec*
(``drm_gpuvm_resv_add_fence()``). The two sets differ after a contended
retry: ``drm_exec_lock_contended()`` locks the BO that made the last attempt
back off and adds it to the exec's objects before the retry's body runs, and
between the two attempts (nothing is locked then) another thread can unmap
that BO's last mapping in the VM, so its vm_bo leaves the extobj list.
``drm_gpuvm_prepare_objects()`` no longer sees it and reserves nothing on it,
and ``dma_resv_add_fence()`` adds to a list with no free slot (a BUG_ON with
CONFIG_DEBUG_MUTEXES, which resets ``max_fences`` at every unlock; a NULL
dereference on a BO never reserved).

The fix proposed here: after the VM's objects are prepared, reserve the
slots on every object the exec holds, prelocked ones included. Reserving on
an object that already has them is a no-op, so the fix costs nothing on the
common path.
"""

from __future__ import annotations

from typing import Any  # noqa: F401

from panthor_testbed.gpuvm import drm_gpuvm_prepare_objects, drm_gpuvm_prepare_vm
from panthor_testbed.mmu.panthor_mmu import DrmExec, PanthorVm
from panthor_testbed.sched.dma_buf.dma_resv import dma_resv_reserve_fences
from panthor_testbed.sched.drm.drm_exec import drm_exec_locked_objects

from .entry import Bug, FoundAs

BUG = Bug(
    slug="submit-fence-on-dropped-contended-bo",
    kind="upstream",
    commit="none",
    title="drm/panthor: reserve fence slots on every BO the submit's drm_exec holds "
    "(proposed here)",
    functions=("panthor_vm_prepare_mapped_bos_resvs",),
    breaks="a BO locked by drm_exec_lock_contended() after its last mapping was unmapped "
    "between two drm_exec attempts gets the job fence without a reserved slot "
    "(BUG_ON / NULL dereference in dma_resv_add_fence)",
    scenario="bind-storm",
    found_as=FoundAs("exception", "dma_resv_add_fence"),
)


async def panthor_vm_prepare_mapped_bos_resvs(exec: DrmExec, vm: PanthorVm, slot_count: int) -> int:
    """``panthor_vm_prepare_mapped_bos_resvs()`` with the proposed fix - Prepare resvs on VM BOs.

    GPU jobs assume all BOs bound to the VM at the time the job is submitted
    are available when the job is executed. In order to guarantee that, we
    need to reserve a slot on all BOs mapped to a VM and update this slot with
    the job fence after its submission.
    """
    # Acquire the VM lock and reserve a slot for this GPU job.
    ret = await drm_gpuvm_prepare_vm(vm.base, exec, slot_count)
    if ret:
        return ret

    ret = await drm_gpuvm_prepare_objects(vm.base, exec, slot_count)
    if ret:
        return ret

    # A BO prelocked after a contended attempt may have left the VM since:
    # panthor_vm_update_resvs() adds the fence to it all the same.
    for obj in drm_exec_locked_objects(exec):
        ret = await dma_resv_reserve_fences(obj.resv, slot_count)
        if ret:
            return ret
    return 0


_PORT = "panthor_testbed.mmu.panthor_mmu:"
REPLACES = {
    f"{_PORT}panthor_vm_prepare_mapped_bos_resvs": panthor_vm_prepare_mapped_bos_resvs,
}

EXPECTED_DIFF = [
    "- return await drm_gpuvm_prepare_objects(vm.base, exec, slot_count)",
    "+ ret = await drm_gpuvm_prepare_objects(vm.base, exec, slot_count)",
    "+ if ret:",
    "+ return ret",
    "+ for obj in drm_exec_locked_objects(exec):",
    "+ ret = await dma_resv_reserve_fences(obj.resv, slot_count)",
    "+ if ret:",
    "+ return ret",
    "+ return 0",
]
