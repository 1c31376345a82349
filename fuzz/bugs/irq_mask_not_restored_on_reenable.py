"""The later fix 8ba64cf2f358 "drm/panthor: Update panthor_mmu::irq::mask when needed".

When ``panthor_vm_active()`` re-enables a faulty AS it unmasks the AS's
interrupt in MMU_INT_MASK but not in ``panthor_mmu::irq::mask``, the mask the
threaded handler filters RAWSTAT with and writes back to MMU_INT_MASK when it
is done: the next fault on that AS is never handled until the GPU is reset.
"""

from __future__ import annotations

from typing import Any  # noqa: F401

from panthor_testbed.mmu.panthor_mmu import (
    AS_TRANSCFG_ADRMODE_AARCH64_4K,
    AS_TRANSCFG_INA_BITS,
    AS_TRANSCFG_PTW_MEMATTR_WB,
    AS_TRANSCFG_PTW_RA,
    AS_TRANSCFG_PTW_SH_OS,
    BIT,
    EBUSY,
    ENODEV,
    GPU_MMU_FEATURES_VA_BITS,
    MMU_INT_CLEAR,
    MMU_INT_MASK,
    PanthorVm,
    drm_dev_enter,
    drm_dev_exit,
    drm_WARN_ON,
    ffz,
    gpu_write,
    io_pgtable_ops_to_pgtable,
    list_del_init,
    list_first_entry_or_null,
    mutex_lock,
    mutex_unlock,
    panthor_mmu_as_enable,
    panthor_mmu_as_fault_mask,
    panthor_vm_release_as_locked,
    refcount_inc_not_zero,
    refcount_read,
    refcount_set,
    set_bit,
)

from .entry import Bug, FoundAs

BUG = Bug(
    slug="irq-mask-not-restored-on-reenable",
    kind="latent",
    commit="8ba64cf2f358",
    title="drm/panthor: Update panthor_mmu::irq::mask when needed",
    functions=("panthor_vm_active",),
    breaks="after a faulty AS is re-enabled its faults stay masked in the IRQ handler: a "
    "second fault on it is never handled (the job waits forever)",
    scenario="as-slot-pressure",
    found_as=FoundAs("deadlock", "panthor-queue"),
)


async def panthor_vm_active(vm: PanthorVm) -> int:
    """``panthor_vm_active()`` with the later fix - Flag a VM as active.

    Assigns an address space to a VM so it can be used by the GPU/MCU.
    Return: 0 on success, a negative error code otherwise.
    """
    ptdev = vm.ptdev
    mmu = ptdev.mmu
    assert mmu is not None
    va_bits = GPU_MMU_FEATURES_VA_BITS(ptdev.gpu_info.mmu_features)
    cfg = io_pgtable_ops_to_pgtable(vm.pgtbl_ops).cfg
    ret = 0

    entered, cookie = await drm_dev_enter(ptdev.base)
    if not entered:
        return -ENODEV

    # The lockless fast path: another CPU may be idling or evicting the VM.
    if await refcount_inc_not_zero(vm.as_.active_cnt):
        await drm_dev_exit(cookie)  # goto out_dev_exit
        return ret

    await mutex_lock(mmu.as_.slots_lock)

    label = "out_unlock"
    if not await refcount_inc_not_zero(vm.as_.active_cnt):
        as_ = vm.as_.id
        label = ""
        if as_ >= 0:
            # Unhandled pagefault on this AS, the MMU was disabled. We need to
            # re-enable the MMU after clearing+unmasking the AS interrupts.
            if mmu.as_.faulty_mask & panthor_mmu_as_fault_mask(ptdev, as_):
                label = "out_enable_as"
            else:
                label = "out_make_active"

        if not label:
            # Check for a free AS
            if vm.for_mcu:
                drm_WARN_ON(ptdev.base, mmu.as_.alloc_mask.v & BIT(0))
                as_ = 0
            else:
                as_ = ffz(mmu.as_.alloc_mask.v | BIT(0))

            if not (BIT(as_) & ptdev.gpu_info.as_present):
                lru_vm = list_first_entry_or_null(mmu.as_.lru_list)
                if drm_WARN_ON(ptdev.base, not lru_vm):
                    ret = -EBUSY
                    label = "out_unlock"
                else:
                    assert lru_vm is not None
                    drm_WARN_ON(ptdev.base, await refcount_read(lru_vm.as_.active_cnt))
                    as_ = lru_vm.as_.id
                    await panthor_vm_release_as_locked(lru_vm)

            if not label:
                # Assign the free or reclaimed AS to the FD
                vm.as_.id = as_
                await set_bit(as_, mmu.as_.alloc_mask)
                mmu.as_.slots[as_].vm = vm
                label = "out_enable_as"

        if label == "out_enable_as":
            # out_enable_as:
            transtab = cfg.arm_lpae_s1_cfg.ttbr
            transcfg = (
                AS_TRANSCFG_PTW_MEMATTR_WB
                | AS_TRANSCFG_PTW_RA
                | AS_TRANSCFG_ADRMODE_AARCH64_4K
                | AS_TRANSCFG_INA_BITS(55 - va_bits)
            )
            if ptdev.coherent:
                transcfg |= AS_TRANSCFG_PTW_SH_OS

            # If the VM is re-activated, we clear the fault.
            vm.unhandled_fault = False

            # Unhandled pagefault on this AS, clear the fault and re-enable interrupts
            # before enabling the AS.
            if mmu.as_.faulty_mask & panthor_mmu_as_fault_mask(ptdev, as_):
                await gpu_write(ptdev, MMU_INT_CLEAR, panthor_mmu_as_fault_mask(ptdev, as_))
                mmu.as_.faulty_mask &= ~panthor_mmu_as_fault_mask(ptdev, as_)
                mmu.irq.mask |= panthor_mmu_as_fault_mask(ptdev, as_)
                await gpu_write(ptdev, MMU_INT_MASK, ~mmu.as_.faulty_mask)

            ret = await panthor_mmu_as_enable(vm.ptdev, vm.as_.id, transtab, transcfg, vm.memattr)
            label = "out_make_active"

        # out_make_active:
        if label == "out_make_active" and not ret:
            await refcount_set(vm.as_.active_cnt, 1)
            list_del_init(vm.as_.lru_node)

    # out_unlock:
    await mutex_unlock(mmu.as_.slots_lock)

    # out_dev_exit:
    await drm_dev_exit(cookie)
    return ret


_PORT = "panthor_testbed.mmu.panthor_mmu:"
REPLACES = {
    f"{_PORT}panthor_vm_active": panthor_vm_active,
}

EXPECTED_DIFF = ["+ mmu.irq.mask |= panthor_mmu_as_fault_mask(ptdev, as_)"]
