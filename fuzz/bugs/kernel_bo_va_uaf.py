"""The later fix 98dd5143447a "drm/panthor: Fix UAF on kernel BO VA nodes".

``panthor_kernel_bo_destroy()`` bails out when ``panthor_vm_unmap_range()``
fails (the MMU is down, or an allocation of the unmap's op context fails),
leaving the kernel BO's ``va_node`` in the VM's drm_mm: the node's memory is
freed with the BO, and removing an adjacent node later walks it (a
use-after-free); at the latest ``drm_mm_takedown()`` finds the VM's
allocator not clean. The fix goes on with the cleanup whatever the unmap
returned: the page table is expected to be updated anyway.
"""

from __future__ import annotations

from typing import Any  # noqa: F401

from panthor_testbed.mmu.gem_shmem import to_panthor_bo
from panthor_testbed.mmu.panthor_gem import PanthorKernelBo
from panthor_testbed.sched.drm.drm_gem import drm_gem_object_put
from panthor_testbed.sched.errno import ErrPtr
from panthor_testbed.sched.mm.memory import kfree
from panthor_testbed.sched.warn import drm_WARN_ON

from .entry import Bug, FoundAs

BUG = Bug(
    slug="kernel-bo-va-uaf",
    kind="latent",
    commit="98dd5143447a",
    title="drm/panthor: Fix UAF on kernel BO VA nodes",
    functions=("panthor_kernel_bo_destroy",),
    breaks="a kernel BO whose unmap fails is freed with its VA node still in the VM's "
    "drm_mm: use-after-free of the node, drm_mm not clean at takedown",
    scenario="bind-storm",
    found_as=FoundAs("warn", "Memory manager not clean during takedown"),
    config={"alloc_fail_probability": 0.01},
)


async def panthor_kernel_bo_destroy(bo: PanthorKernelBo | ErrPtr | None) -> None:
    """``panthor_kernel_bo_destroy()`` with the later fix."""
    from panthor_testbed.mmu.panthor_mmu import (
        panthor_vm_free_va,
        panthor_vm_put,
        panthor_vm_root_gem,
        panthor_vm_unmap_range,
    )

    if bo is None or isinstance(bo, ErrPtr):
        return

    vm = bo.vm
    assert vm is not None
    bo.kmap = None  # panthor_kernel_bo_vunmap()

    drm_WARN_ON(
        vm.ptdev.base,
        to_panthor_bo(bo.obj).exclusive_vm_root_gem is not panthor_vm_root_gem(vm),
    )
    await panthor_vm_unmap_range(vm, bo.va_node.start, bo.va_node.size)
    await panthor_vm_free_va(vm, bo.va_node)
    await drm_gem_object_put(bo.obj)
    await panthor_vm_put(vm)
    kfree(bo)


REPLACES = {
    "panthor_testbed.mmu.panthor_gem:panthor_kernel_bo_destroy": panthor_kernel_bo_destroy,
}

EXPECTED_DIFF = [
    "- if not drm_WARN_ON(vm.ptdev.base, to_panthor_bo(bo.obj).exclusive_vm_root_gem is not "
    "panthor_vm_root_gem(vm)):",
    "+ drm_WARN_ON(vm.ptdev.base, to_panthor_bo(bo.obj).exclusive_vm_root_gem is not "
    "panthor_vm_root_gem(vm))",
    "- ret = await panthor_vm_unmap_range(vm, bo.va_node.start, bo.va_node.size)",
    "+ await panthor_vm_unmap_range(vm, bo.va_node.start, bo.va_node.size)",
    "- if not ret:",
]
