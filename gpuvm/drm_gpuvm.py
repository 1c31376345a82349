"""The drm_gpuvm object: init, references, teardown, the shared resv (drm_gpuvm.c, v6.14).

``drm_gpuvm_init`` takes a reference on ``r_obj`` (the GEM whose ``resv`` is
the VM's shared reservation object); each ``drm_gpuva_insert`` and each
``drm_gpuvm_bo`` takes a VM reference too. The last :func:`drm_gpuvm_put`
runs ``drm_gpuvm_fini`` (which WARNs if the VA tree or the extobj/evict
lists are not empty, and puts ``r_obj``) and then ``ops->vm_free``,
synchronously, in whatever context dropped that last reference.
"""

from __future__ import annotations

from ..sched.core.kernel import current_kernel
from ..sched.dma_buf.dma_resv import DmaResv, dma_resv_assert_held, dma_resv_held
from ..sched.drm.drm_gem import DrmGemObject, drm_gem_object_get, drm_gem_object_put
from ..sched.locking.refcount import Kref, kref_get, kref_init, kref_put
from ..sched.mm.gfp import GFP_KERNEL
from ..sched.mm.memory import kzalloc
from ..sched.warn import drm_WARN, drm_WARN_ON
from .space import drm_gpuvm_check_overflow, drm_gpuvm_init_va_space, gpuva_tree_remove
from .structs import DRM_GPUVM_RESV_PROTECTED, DrmGpuva, DrmGpuvm, DrmGpuvmOps, VmBoList
from .va_tree import VaTree


def drm_gpuvm_warn_check_overflow(gpuvm: DrmGpuvm, addr: int, range: int) -> bool:
    """``drm_gpuvm_warn_check_overflow``: WARN "GPUVA address limited to 8 bytes." on overflow."""
    # "GPUVA address limited to %zu bytes.\n", sizeof(addr)
    return drm_WARN(
        gpuvm.drm, drm_gpuvm_check_overflow(addr, range), "GPUVA address limited to 8 bytes.\n"
    )


async def drm_gpuvm_resv_object_alloc(drm: object) -> DrmGemObject | None:
    """``drm_gpuvm_resv_object_alloc``: a dummy GEM (size 0, refcount 1) carrying the VM resv.

    A ``kzalloc`` (fault injection applies: NULL on failure). Its last put
    releases and frees it (``drm_gpuvm_gem_object_free``).
    """
    k = current_kernel()
    n = k.objects.get("gpuvm.resv_objs", 0) + 1
    k.objects["gpuvm.resv_objs"] = n
    name = f"gpuvm-resv-obj#{n}"
    return await kzalloc(lambda: DrmGemObject(0, name), GFP_KERNEL)


async def drm_gpuvm_init(
    gpuvm: DrmGpuvm,
    name: str | None,
    flags: int,
    drm: object,
    r_obj: DrmGemObject,
    start_offset: int,
    range: int,
    reserve_offset: int,
    reserve_range: int,
    ops: DrmGpuvmOps,
) -> None:
    """``drm_gpuvm_init`` (v6.14 argument order).

    kref = 1; gets a reference on ``r_obj``; WARNs (and carries on) if the
    VA space or the reserved range overflows; the reserved node, if any, is
    inserted into the tree without a VM reference.
    """
    gpuvm.rb = VaTree[DrmGpuva]()
    gpuvm.extobj = VmBoList("extobj")
    gpuvm.evict = VmBoList("evict")

    gpuvm.kref = Kref(gpuvm, f"{name or 'unknown'}.kref")
    await kref_init(gpuvm.kref)

    gpuvm.flags = flags
    gpuvm.ops = ops
    gpuvm.drm = drm
    gpuvm.r_obj = r_obj

    await drm_gem_object_get(r_obj)

    drm_gpuvm_warn_check_overflow(gpuvm, start_offset, range)
    if reserve_range:
        drm_gpuvm_warn_check_overflow(gpuvm, reserve_offset, reserve_range)
    drm_gpuvm_init_va_space(gpuvm, name, start_offset, range, reserve_offset, reserve_range)
    current_kernel().ev("gpuvm_init", gpuvm.name or "", f"[{start_offset:#x}, +{range:#x})")


async def drm_gpuvm_fini(gpuvm: DrmGpuvm) -> None:
    """``drm_gpuvm_fini`` (static): remove the reserved node, WARN on leftovers, put ``r_obj``."""
    gpuvm.name = None

    kva = gpuvm.kernel_alloc_node
    if kva.va.range and gpuvm.rb.contains(kva):
        gpuva_tree_remove(kva)

    drm_WARN(gpuvm.drm, bool(gpuvm.rb), "GPUVA tree is not empty, potentially leaking memory.\n")
    drm_WARN(gpuvm.drm, not gpuvm.extobj.list.empty(), "Extobj list should be empty.\n")
    drm_WARN(gpuvm.drm, not gpuvm.evict.list.empty(), "Evict list should be empty.\n")

    await drm_gem_object_put(gpuvm.r_obj)


async def _drm_gpuvm_free(kref: Kref) -> None:
    """``drm_gpuvm_free``: the kref release: fini, then ``ops->vm_free``."""
    gpuvm = kref.container
    assert isinstance(gpuvm, DrmGpuvm)
    current_kernel().ev("gpuvm_free", gpuvm.name or "")
    await drm_gpuvm_fini(gpuvm)

    ops = gpuvm.ops
    if drm_WARN_ON(gpuvm.drm, ops is None or ops.vm_free is None):
        return
    assert ops is not None and ops.vm_free is not None
    await ops.vm_free(gpuvm)


async def drm_gpuvm_get(gpuvm: DrmGpuvm) -> DrmGpuvm:
    """``drm_gpuvm_get``: take a reference (illegal without holding one)."""
    await kref_get(gpuvm.kref)
    return gpuvm


async def drm_gpuvm_put(gpuvm: DrmGpuvm | None) -> None:
    """``drm_gpuvm_put``: drop a reference; the last one runs fini and ``vm_free`` here."""
    if gpuvm is not None:
        await kref_put(gpuvm.kref, _drm_gpuvm_free)


def drm_gpuvm_resv_protected(gpuvm: DrmGpuvm) -> bool:
    """``drm_gpuvm_resv_protected``: is ``DRM_GPUVM_RESV_PROTECTED`` set?"""
    return bool(gpuvm.flags & DRM_GPUVM_RESV_PROTECTED)


def drm_gpuvm_resv_obj(gpuvm: DrmGpuvm) -> DrmGemObject:
    """``drm_gpuvm_resv_obj``: the GEM holding the VM's shared resv (``r_obj``)."""
    assert gpuvm.r_obj is not None, "drm_gpuvm used before drm_gpuvm_init"
    return gpuvm.r_obj


def drm_gpuvm_resv(gpuvm: DrmGpuvm) -> DmaResv:
    """``drm_gpuvm_resv``: ``gpuvm->r_obj->resv``."""
    return drm_gpuvm_resv_obj(gpuvm).resv


def drm_gpuvm_resv_held(gpuvm: DrmGpuvm) -> bool:
    """``drm_gpuvm_resv_held``."""
    return dma_resv_held(drm_gpuvm_resv(gpuvm))


def drm_gpuvm_resv_assert_held(gpuvm: DrmGpuvm) -> None:
    """``drm_gpuvm_resv_assert_held``: WARN unless the running thread holds the VM resv."""
    dma_resv_assert_held(drm_gpuvm_resv(gpuvm))


def drm_gpuvm_is_extobj(gpuvm: DrmGpuvm, obj: DrmGemObject | None) -> bool:
    """``drm_gpuvm_is_extobj``: ``obj`` has its own resv, not the VM's."""
    return obj is not None and obj.resv is not drm_gpuvm_resv(gpuvm)
