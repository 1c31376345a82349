"""The later fix ce04ec03a9c2 "drm/panthor: Avoid adding of kernel BOs to extobj list".

``panthor_kernel_bo_create()`` maps the new BO into the VM while the BO still
has its own dma_resv, so ``panthor_vm_prepare_map_op_ctx()`` puts it on the
VM's extobj list, and only then points ``resv`` at the VM's. The commit says
the only cost is "a few extra CPU cycles" at submit; this testbed finds a
window where it is worse: a GROUP_SUBMIT on the same VM between the map and
the resv switch locks the BO's own resv through the extobj list, and when
that lock backs off (-EDEADLK) ``drm_exec`` retries the contended *object*,
whose ``resv`` is now the VM's: the retry locks a different ww_mutex than the
one that contended (``DEBUG_LOCKS_WARN_ON(ww_ctx->contending_lock != ww)``),
and the backed-off unlock may release the wrong one. The fix sets the resv
before the map, so the BO never joins the extobj list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any  # noqa: F401

from panthor_testbed.mmu.gem_shmem import (
    PanthorGemObject,
    panthor_gem_create,
)
from panthor_testbed.mmu.panthor_device import (
    PanthorDevice,
)
from panthor_testbed.mmu.panthor_gem import (
    PanthorKernelBo,
)
from panthor_testbed.sched.drm.drm_gem import (
    drm_gem_object_get,
    drm_gem_object_put,
)
from panthor_testbed.sched.errno import (
    EINVAL,
    ENOMEM,
    ERR_PTR,
    IS_ERR,
    PTR_ERR,
    ErrPtr,
)
from panthor_testbed.sched.mm.gfp import (
    GFP_KERNEL,
)
from panthor_testbed.sched.mm.memory import (
    kfree,
    kzalloc,
)
from panthor_testbed.sched.warn import (
    drm_WARN_ON,
)

from .entry import Bug, FoundAs

if TYPE_CHECKING:
    from panthor_testbed.mmu.panthor_mmu import PanthorVm

BUG = Bug(
    slug="kernel-bo-on-extobj-list",
    kind="latent",
    commit="ce04ec03a9c2",
    title="drm/panthor: Avoid adding of kernel BOs to extobj list",
    functions=("panthor_kernel_bo_create",),
    breaks="a kernel BO (heap pool, tiler heap chunk) joins the VM's extobj list with its "
    "own resv and switches resv afterwards: a submit racing its creation backs off on one "
    "ww_mutex and retries another",
    scenario="destroy-while-busy",
    found_as=FoundAs("warn", "ww_mutex"),
)


async def panthor_kernel_bo_create(
    ptdev: PanthorDevice,
    vm: PanthorVm | None,
    size: int,
    bo_flags: int,
    vm_map_flags: int,
    gpu_va: int,
    name: str,
) -> PanthorKernelBo | ErrPtr:
    """``panthor_kernel_bo_create()`` with the later fix - Create and map a GEM object to a VM."""
    from panthor_testbed.mmu.panthor_mmu import (
        ALIGN,
        panthor_vm_alloc_va,
        panthor_vm_free_va,
        panthor_vm_get,
        panthor_vm_map_bo_range,
        panthor_vm_page_size,
        panthor_vm_root_gem,
    )

    if drm_WARN_ON(ptdev.base, not vm):
        return ERR_PTR(-EINVAL)
    assert vm is not None

    kbo = await kzalloc(PanthorKernelBo, GFP_KERNEL)
    if not kbo:
        return ERR_PTR(-ENOMEM)

    obj = await panthor_gem_create(size, name, flags=bo_flags, coherent=ptdev.coherent)
    if IS_ERR(obj):
        kfree(kbo)  # err_free_bo:
        return ERR_PTR(PTR_ERR(obj))
    assert isinstance(obj, PanthorGemObject)
    bo = obj
    kbo.obj = bo
    bo.exclusive_vm_root_gem = panthor_vm_root_gem(vm)
    await drm_gem_object_get(bo.exclusive_vm_root_gem)  # type: ignore[arg-type]
    assert bo.exclusive_vm_root_gem is not None
    bo.resv = bo.exclusive_vm_root_gem.resv

    # The system and GPU MMU page size might differ, which becomes a
    # problem for FW sections that need to be mapped at explicit address
    # since our PAGE_SIZE alignment might cover a VA range that's
    # expected to be used for another section.
    # Make sure we never map more than we need.
    size = ALIGN(size, panthor_vm_page_size(vm))
    ret = await panthor_vm_alloc_va(vm, gpu_va, size, kbo.va_node)
    if ret:
        await drm_gem_object_put(bo)  # err_put_obj:
        kfree(kbo)
        return ERR_PTR(ret)

    ret = await panthor_vm_map_bo_range(vm, bo, 0, size, kbo.va_node.start, vm_map_flags)
    if ret:
        await panthor_vm_free_va(vm, kbo.va_node)  # err_free_va:
        await drm_gem_object_put(bo)
        kfree(kbo)
        return ERR_PTR(ret)

    kbo.vm = await panthor_vm_get(vm)
    return kbo


_PORT = "panthor_testbed.mmu.panthor_gem:"
# (install() also rebinds the names panthor_fw and panthor_fw_iface imported.)
REPLACES = {
    f"{_PORT}panthor_kernel_bo_create": panthor_kernel_bo_create,
}

# (The function-local import names the package absolutely from here.)
EXPECTED_DIFF = [
    "- from .panthor_mmu import ALIGN, panthor_vm_alloc_va, panthor_vm_free_va, panthor_vm_get, panthor_vm_map_bo_range, panthor_vm_page_size, panthor_vm_root_gem",  # noqa: E501
    "+ from panthor_testbed.mmu.panthor_mmu import ALIGN, panthor_vm_alloc_va, panthor_vm_free_va, panthor_vm_get, panthor_vm_map_bo_range, panthor_vm_page_size, panthor_vm_root_gem",  # noqa: E501
    "+ bo.exclusive_vm_root_gem = panthor_vm_root_gem(vm)",
    "+ await drm_gem_object_get(bo.exclusive_vm_root_gem)",
    "+ assert bo.exclusive_vm_root_gem is not None",
    "+ bo.resv = bo.exclusive_vm_root_gem.resv",
    "- bo.exclusive_vm_root_gem = panthor_vm_root_gem(vm)",
    "- await drm_gem_object_get(bo.exclusive_vm_root_gem)",
    "- assert bo.exclusive_vm_root_gem is not None",
    "- bo.resv = bo.exclusive_vm_root_gem.resv",
]
