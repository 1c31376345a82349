"""drm_gpuvm_bo (the <VM, GEM> pair) and linking VAs to it (drm_gpuvm.c, v6.14).

A vm_bo holds a VM reference and a GEM reference, sits on the GEM's gpuva
list (``obj.gpuva``) while linked, and carries the list of VAs that map the
GEM in this VM. Each linked VA holds a vm_bo reference
(:func:`drm_gpuva_link`), and :func:`drm_gpuva_unlink` drops it; the last
:func:`drm_gpuvm_bo_put` destroys the vm_bo and returns True. Under
``DRM_GPUVM_RESV_PROTECTED`` the destroy asserts the VM resv is held (it
edits the extobj/evict lists) and, always, the GEM's gpuva lock (it edits
the GEM's gpuva list): WARN failures when not held. No deferred cleanup in
this era.

Without RESV_PROTECTED the extobj/evict lists are guarded by their
spinlocks and iterated with the lockless ``for_each_vm_bo_in_list``.
"""

from __future__ import annotations

from typing import Literal

from ..sched.core.kernel import current_kernel
from ..sched.dma_buf.dma_resv import dma_resv_assert_held
from ..sched.drm.drm_gem import (
    DrmGemObject,
    drm_gem_gpuva_assert_lock_held,
    drm_gem_object_get,
    drm_gem_object_put,
)
from ..sched.errno import ENOMEM, ERR_PTR, ErrPtr
from ..sched.locking.lockdep import might_sleep
from ..sched.locking.mutex import spin_lock, spin_unlock
from ..sched.locking.refcount import Kref, kref_get, kref_get_unless_zero, kref_init, kref_put
from ..sched.mm.gfp import GFP_KERNEL
from ..sched.mm.memory import kfree, kzalloc
from ..sched.warn import drm_WARN_ON
from .drm_gpuvm import (
    drm_gpuvm_get,
    drm_gpuvm_is_extobj,
    drm_gpuvm_put,
    drm_gpuvm_resv_assert_held,
    drm_gpuvm_resv_protected,
)
from .klist import KList
from .structs import DrmGpuva, DrmGpuvm, DrmGpuvmBo, VmBoList, VmBoLists

ListName = Literal["extobj", "evict"]


def _vm_list(gpuvm: DrmGpuvm, name: ListName) -> VmBoList:
    return gpuvm.extobj if name == "extobj" else gpuvm.evict


def _entry(vm_bo: DrmGpuvmBo, name: ListName) -> KList[DrmGpuvmBo] | None:
    return vm_bo.list.entry.extobj if name == "extobj" else vm_bo.list.entry.evict


def _set_entry(vm_bo: DrmGpuvmBo, name: ListName, lst: KList[DrmGpuvmBo] | None) -> None:
    if name == "extobj":
        vm_bo.list.entry.extobj = lst
    else:
        vm_bo.list.entry.evict = lst


def _vm_of(vm_bo: DrmGpuvmBo) -> DrmGpuvm:
    assert vm_bo.vm is not None, "drm_gpuvm_bo without a VM"
    return vm_bo.vm


def _obj_of(vm_bo: DrmGpuvmBo) -> DrmGemObject:
    assert vm_bo.obj is not None, "drm_gpuvm_bo without a GEM"
    return vm_bo.obj


# ---------------------------------------------------------------------- list helpers


async def drm_gpuvm_bo_list_add(vm_bo: DrmGpuvmBo, name: ListName, lock: bool) -> None:
    """``drm_gpuvm_bo_list_add``: add at the tail unless already on the list."""
    vl = _vm_list(_vm_of(vm_bo), name)
    if lock:
        await spin_lock(vl.lock)
    if _entry(vm_bo, name) is None:
        vl.list.add_tail(vm_bo)
        _set_entry(vm_bo, name, vl.list)
    if lock:
        await spin_unlock(vl.lock)


async def drm_gpuvm_bo_list_del(vm_bo: DrmGpuvmBo, name: ListName, lock: bool) -> None:
    """``drm_gpuvm_bo_list_del`` / ``_del_init``: off whichever list the entry is on."""
    vl = _vm_list(_vm_of(vm_bo), name)
    if lock:
        await spin_lock(vl.lock)
    on = _entry(vm_bo, name)
    if on is not None:
        on.delete(vm_bo)
        _set_entry(vm_bo, name, None)
    if lock:
        await spin_unlock(vl.lock)


async def get_next_vm_bo_from_list(
    gpuvm: DrmGpuvm, name: ListName, local_list: KList[DrmGpuvmBo], prev: DrmGpuvmBo | None
) -> DrmGpuvmBo | None:
    """``get_next_vm_bo_from_list``: put ``prev``, then move the first live vm_bo to the local list.

    Entries whose refcount already hit zero are dropped from the list on the way.
    """
    await drm_gpuvm_bo_put(prev)

    vl = _vm_list(gpuvm, name)
    await spin_lock(vl.lock)
    if vl.local_list is None:
        vl.local_list = local_list
    else:
        drm_WARN_ON(gpuvm.drm, vl.local_list is not local_list)

    found: DrmGpuvmBo | None = None
    while not vl.list.empty():
        vm_bo = vl.list.first()
        assert vm_bo is not None
        if await kref_get_unless_zero(vm_bo.kref):
            vl.list.delete(vm_bo)
            local_list.add_tail(vm_bo)
            _set_entry(vm_bo, name, local_list)
            found = vm_bo
            break
        vl.list.delete(vm_bo)
        _set_entry(vm_bo, name, None)
    await spin_unlock(vl.lock)
    return found


async def restore_vm_bo_list(gpuvm: DrmGpuvm, name: ListName) -> None:
    """``restore_vm_bo_list``: splice the local list back at the head of the list."""
    vl = _vm_list(gpuvm, name)
    await spin_lock(vl.lock)
    if vl.local_list is not None:
        for vm_bo in vl.local_list:
            _set_entry(vm_bo, name, vl.list)
        vl.list.splice_head(vl.local_list)
        vl.local_list = None
    await spin_unlock(vl.lock)


# ---------------------------------------------------------------------- create / destroy


async def drm_gpuvm_bo_create(gpuvm: DrmGpuvm, obj: DrmGemObject) -> DrmGpuvmBo | None:
    """``drm_gpuvm_bo_create``: allocate (``vm_bo_alloc`` or kzalloc), ref 1, VM and GEM refs.

    The new vm_bo is not on the GEM's list yet; NULL if the allocation fails.
    """
    ops = gpuvm.ops
    vm_bo: DrmGpuvmBo | None
    if ops is not None and ops.vm_bo_alloc is not None:
        vm_bo = await ops.vm_bo_alloc()
    else:
        vm_bo = await kzalloc(DrmGpuvmBo, GFP_KERNEL)
    if vm_bo is None:
        return None

    vm_bo.vm = await drm_gpuvm_get(gpuvm)
    vm_bo.obj = obj
    await drm_gem_object_get(obj)

    vm_bo.kref = Kref(vm_bo, f"vm_bo {gpuvm.name}/{obj.name}")
    await kref_init(vm_bo.kref)
    vm_bo.list = VmBoLists()
    return vm_bo


async def _drm_gpuvm_bo_destroy(kref: Kref) -> None:
    """``drm_gpuvm_bo_destroy``: the kref release.

    Asserts the VM resv (RESV_PROTECTED), leaves extobj/evict, asserts the
    GEM gpuva lock, leaves the GEM's list, frees, then puts the VM and the GEM.
    """
    vm_bo = kref.container
    assert isinstance(vm_bo, DrmGpuvmBo)
    gpuvm = _vm_of(vm_bo)
    ops = gpuvm.ops
    obj = _obj_of(vm_bo)
    lock = not drm_gpuvm_resv_protected(gpuvm)
    current_kernel().ev("vm_bo_destroy", gpuvm.name or "", obj.name)

    if not lock:
        drm_gpuvm_resv_assert_held(gpuvm)

    await drm_gpuvm_bo_list_del(vm_bo, "extobj", lock)
    await drm_gpuvm_bo_list_del(vm_bo, "evict", lock)

    drm_gem_gpuva_assert_lock_held(obj)
    gem_list = vm_bo.list.entry.gem
    if gem_list is not None:
        gem_list.remove(vm_bo)
        vm_bo.list.entry.gem = None

    if ops is not None and ops.vm_bo_free is not None:
        await ops.vm_bo_free(vm_bo)
    else:
        kfree(vm_bo)

    await drm_gpuvm_put(gpuvm)
    await drm_gem_object_put(obj)


async def drm_gpuvm_bo_get(vm_bo: DrmGpuvmBo) -> DrmGpuvmBo:
    """``drm_gpuvm_bo_get``: take a reference (illegal without holding one)."""
    await kref_get(vm_bo.kref)
    return vm_bo


async def drm_gpuvm_bo_put(vm_bo: DrmGpuvmBo | None) -> bool:
    """``drm_gpuvm_bo_put``: drop a reference; True if this destroyed the vm_bo.

    ``might_sleep()``. A put that can be the last must hold the GEM gpuva
    lock, and under RESV_PROTECTED the VM resv as well (asserted on destroy).
    """
    might_sleep()
    if vm_bo is not None:
        return bool(await kref_put(vm_bo.kref, _drm_gpuvm_bo_destroy))
    return False


# ---------------------------------------------------------------------- find / obtain


def __drm_gpuvm_bo_find(gpuvm: DrmGpuvm, obj: DrmGemObject) -> DrmGpuvmBo | None:
    drm_gem_gpuva_assert_lock_held(obj)
    for vm_bo in obj.gpuva:
        assert isinstance(vm_bo, DrmGpuvmBo)
        if vm_bo.vm is gpuvm:
            return vm_bo
    return None


async def drm_gpuvm_bo_find(gpuvm: DrmGpuvm, obj: DrmGemObject) -> DrmGpuvmBo | None:
    """``drm_gpuvm_bo_find``: the <gpuvm, obj> vm_bo with a new reference, or None.

    Asserts the GEM gpuva lock.
    """
    vm_bo = __drm_gpuvm_bo_find(gpuvm, obj)
    return await drm_gpuvm_bo_get(vm_bo) if vm_bo is not None else None


def _gem_list_add(obj: DrmGemObject, vm_bo: DrmGpuvmBo) -> None:
    """``list_add_tail(&vm_bo->list.entry.gem, &obj->gpuva.list)``."""
    obj.gpuva.append(vm_bo)
    vm_bo.list.entry.gem = obj.gpuva


async def drm_gpuvm_bo_obtain(gpuvm: DrmGpuvm, obj: DrmGemObject) -> DrmGpuvmBo | ErrPtr:
    """``drm_gpuvm_bo_obtain``: find, else create and link; ``ERR_PTR(-ENOMEM)`` on failure."""
    vm_bo = await drm_gpuvm_bo_find(gpuvm, obj)
    if vm_bo is not None:
        return vm_bo

    vm_bo = await drm_gpuvm_bo_create(gpuvm, obj)
    if vm_bo is None:
        return ERR_PTR(-ENOMEM)

    drm_gem_gpuva_assert_lock_held(obj)
    _gem_list_add(obj, vm_bo)
    return vm_bo


async def drm_gpuvm_bo_obtain_prealloc(__vm_bo: DrmGpuvmBo) -> DrmGpuvmBo:
    """``drm_gpuvm_bo_obtain_prealloc``: the existing vm_bo (new ref), or link the preallocated one.

    If one exists, the preallocated ``__vm_bo`` is put (with a single
    reference that destroys it: the VM resv must be held under
    RESV_PROTECTED). Asserts the GEM gpuva lock.
    """
    gpuvm = _vm_of(__vm_bo)
    obj = _obj_of(__vm_bo)

    vm_bo = await drm_gpuvm_bo_find(gpuvm, obj)
    if vm_bo is not None:
        await drm_gpuvm_bo_put(__vm_bo)
        return vm_bo

    drm_gem_gpuva_assert_lock_held(obj)
    _gem_list_add(obj, __vm_bo)
    return __vm_bo


# ---------------------------------------------------------------------- extobj / evict


async def drm_gpuvm_bo_extobj_add(vm_bo: DrmGpuvmBo) -> None:
    """``drm_gpuvm_bo_extobj_add``: onto the extobj list once, if the GEM has its own resv.

    Asserts the VM resv under RESV_PROTECTED.
    """
    gpuvm = _vm_of(vm_bo)
    lock = not drm_gpuvm_resv_protected(gpuvm)
    if not lock:
        drm_gpuvm_resv_assert_held(gpuvm)
    if drm_gpuvm_is_extobj(gpuvm, vm_bo.obj):
        await drm_gpuvm_bo_list_add(vm_bo, "extobj", lock)


async def drm_gpuvm_bo_evict(vm_bo: DrmGpuvmBo, evict: bool) -> None:
    """``drm_gpuvm_bo_evict``: set ``evicted`` and add to / remove from the evict list.

    Asserts the GEM's resv. Under RESV_PROTECTED an external object is not
    put on the list here (``drm_gpuvm_prepare_objects`` does it, under the
    VM resv).
    """
    gpuvm = _vm_of(vm_bo)
    obj = _obj_of(vm_bo)
    lock = not drm_gpuvm_resv_protected(gpuvm)

    dma_resv_assert_held(obj.resv)
    vm_bo.evicted = evict

    if drm_gpuvm_is_extobj(gpuvm, obj) and not lock:
        return

    if evict:
        await drm_gpuvm_bo_list_add(vm_bo, "evict", lock)
    else:
        await drm_gpuvm_bo_list_del(vm_bo, "evict", lock)


async def drm_gpuvm_bo_gem_evict(obj: DrmGemObject, evict: bool) -> None:
    """``drm_gpuvm_bo_gem_evict``: ``drm_gpuvm_bo_evict`` for every vm_bo of the GEM."""
    drm_gem_gpuva_assert_lock_held(obj)
    for vm_bo in list(obj.gpuva):
        assert isinstance(vm_bo, DrmGpuvmBo)
        await drm_gpuvm_bo_evict(vm_bo, evict)


# ---------------------------------------------------------------------- link / unlink


async def drm_gpuva_link(va: DrmGpuva, vm_bo: DrmGpuvmBo) -> None:
    """``drm_gpuva_link``: add ``va`` to the vm_bo's list with a vm_bo reference.

    No-op for a VA without a GEM; WARN if the VA's GEM is not the vm_bo's;
    asserts the GEM gpuva lock.
    """
    obj = va.gem.obj
    gpuvm = va.vm
    if obj is None:
        return

    drm_WARN_ON(gpuvm.drm if gpuvm is not None else None, obj is not vm_bo.obj)

    va.vm_bo = await drm_gpuvm_bo_get(vm_bo)

    drm_gem_gpuva_assert_lock_held(obj)
    vm_bo.list.gpuva.add_tail(va)
    va.gem.entry = vm_bo.list.gpuva


async def drm_gpuva_unlink(va: DrmGpuva) -> None:
    """``drm_gpuva_unlink``: take ``va`` off its vm_bo's list and put the vm_bo.

    Asserts the GEM gpuva lock; the put may destroy the vm_bo (and then
    asserts the VM resv under RESV_PROTECTED). No-op without a GEM.
    """
    obj = va.gem.obj
    vm_bo = va.vm_bo
    if obj is None:
        return

    drm_gem_gpuva_assert_lock_held(obj)
    if va.gem.entry is not None:
        va.gem.entry.discard(va)
        va.gem.entry = None

    va.vm_bo = None
    await drm_gpuvm_bo_put(vm_bo)


def drm_gpuvm_bo_for_each_va(vm_bo: DrmGpuvmBo) -> list[DrmGpuva]:
    """``drm_gpuvm_bo_for_each_va``: the VAs linked to the vm_bo (caller holds the gpuva lock)."""
    return list(vm_bo.list.gpuva)


def drm_gem_for_each_gpuvm_bo(obj: DrmGemObject) -> list[DrmGpuvmBo]:
    """``drm_gem_for_each_gpuvm_bo``: the GEM's vm_bos (caller holds the gpuva lock)."""
    out: list[DrmGpuvmBo] = []
    for vm_bo in obj.gpuva:
        assert isinstance(vm_bo, DrmGpuvmBo)
        out.append(vm_bo)
    return out
