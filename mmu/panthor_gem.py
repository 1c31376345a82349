"""panthor_gem.c: kernel BOs (``panthor_kernel_bo_create/destroy/vmap``, ``_gpuva``, ``_size``).

Following the kernel step by step: the BO is mapped while it still has its
own resv, then takes the VM's. User BOs (``panthor_gem_create_with_handle``'s
object) are made by :func:`.gem_shmem.panthor_gem_create`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..gpuvm import DrmMmNode
from ..sched.core.kernel import preempt
from ..sched.drm.drm_gem import drm_gem_object_get, drm_gem_object_put
from ..sched.errno import EINVAL, ENOMEM, ERR_PTR, IS_ERR, PTR_ERR, ErrPtr
from ..sched.mm.gfp import GFP_KERNEL
from ..sched.mm.memory import kfree, kzalloc
from ..sched.warn import drm_WARN_ON
from .gem_shmem import PanthorGemObject, panthor_gem_create, to_panthor_bo
from .hw.csf import Csf, csf_of
from .panthor_device import PanthorDevice
from .sizes import PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:
    from .panthor_mmu import PanthorVm


class KernelBoMap:
    """The CPU mapping of a kernel BO (``kbo->kmap``): 64-bit words through the BO's pages."""

    def __init__(self, kbo: PanthorKernelBo, csf: Csf) -> None:
        self.kbo = kbo
        self.csf = csf

    def pa(self, offset: int) -> int:
        bo = to_panthor_bo(self.kbo.obj)
        assert bo.pages is not None, "kernel BO without pages"
        return (bo.pages[offset >> PAGE_SHIFT] << PAGE_SHIFT) | (offset & (PAGE_SIZE - 1))

    def read(self, offset: int) -> object:
        return self.csf.mem_read(self.pa(offset))

    def read_u64(self, offset: int) -> int:
        v = self.read(offset)
        return v if isinstance(v, int) else 0

    def write(self, offset: int, value: object) -> None:
        pa = self.pa(offset)
        self.csf.mem_write(pa, value)
        self.csf.hw.l2.cpu_write(pa)  # the GPU's L2 does not see it (ACE-Lite)


class PanthorKernelBo:
    """``struct panthor_kernel_bo``."""

    def __init__(self) -> None:
        self.obj: Any = None
        self.vm: PanthorVm | None = None
        self.va_node = DrmMmNode()
        self.kmap: KernelBoMap | None = None


def panthor_kernel_bo_gpuva(bo: PanthorKernelBo) -> int:
    """``panthor_kernel_bo_gpuva()``."""
    return bo.va_node.start


def panthor_kernel_bo_size(bo: PanthorKernelBo) -> int:
    """``panthor_kernel_bo_size()``."""
    return int(bo.obj.size)


async def panthor_kernel_bo_vmap(bo: PanthorKernelBo) -> int:
    """``panthor_kernel_bo_vmap()``: the pages are pinned by the mapping already."""
    await preempt()
    if bo.kmap is None:
        assert bo.vm is not None
        bo.kmap = KernelBoMap(bo, csf_of(bo.vm.ptdev.iomem))
    return 0


async def panthor_kernel_bo_destroy(bo: PanthorKernelBo | ErrPtr | None) -> None:
    """``panthor_kernel_bo_destroy()``: NULL and ERR_PTR() are skipped."""
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

    if not drm_WARN_ON(
        vm.ptdev.base,
        to_panthor_bo(bo.obj).exclusive_vm_root_gem is not panthor_vm_root_gem(vm),
    ):
        ret = await panthor_vm_unmap_range(vm, bo.va_node.start, bo.va_node.size)
        if not ret:
            await panthor_vm_free_va(vm, bo.va_node)
            await drm_gem_object_put(bo.obj)

    # out_free_bo:
    await panthor_vm_put(vm)
    kfree(bo)


async def panthor_kernel_bo_create(
    ptdev: PanthorDevice,
    vm: PanthorVm | None,
    size: int,
    bo_flags: int,
    vm_map_flags: int,
    gpu_va: int,
    name: str,
) -> PanthorKernelBo | ErrPtr:
    """``panthor_kernel_bo_create()`` - Create and map a GEM object to a VM."""
    from .panthor_mmu import (
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
    bo.exclusive_vm_root_gem = panthor_vm_root_gem(vm)
    await drm_gem_object_get(bo.exclusive_vm_root_gem)  # type: ignore[arg-type]
    assert bo.exclusive_vm_root_gem is not None
    bo.resv = bo.exclusive_vm_root_gem.resv
    return kbo
