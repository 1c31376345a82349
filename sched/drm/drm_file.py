"""``struct drm_file`` and its GEM handle table (drivers/gpu/drm/drm_gem.c, drm_file.c).

Handles live in ``object_idr`` under ``table_lock`` (a spinlock);
``drm_gem_object_lookup`` takes a reference under it, so a handle deleted
concurrently either is found with a reference or not at all.
"""

from __future__ import annotations

from ..core.kernel import current_kernel
from ..errno import EINVAL, ENOMEM
from ..locking.mutex import SpinLock
from ..mm.gfp import GFP_KERNEL
from ..mm.memory import kfree, kzalloc
from .drm_gem import DrmGemObject, drm_gem_object_get, drm_gem_object_put


class _IdrSlot:
    __slots__ = ()


class DrmFile:
    """``struct drm_file``: a client's handle table (``driver_priv`` is the driver's file)."""

    def __init__(self, name: str = "file") -> None:
        self.name = name
        self.object_idr: dict[int, DrmGemObject] = {}
        self.slots: dict[int, _IdrSlot] = {}
        self.table_lock = SpinLock(f"{name}.table_lock", key="&file_private->table_lock")
        self.driver_priv: object = None

    def __repr__(self) -> str:
        return f"<drm_file {self.name} handles={sorted(self.object_idr)}>"


async def drm_gem_handle_create(file: DrmFile, obj: DrmGemObject) -> tuple[int, int]:
    """``drm_gem_handle_create()``: ``(0, handle)`` (handles start at 1) or ``(-ENOMEM, 0)``.

    The handle holds a reference on the object.
    """
    slot = await kzalloc(_IdrSlot, GFP_KERNEL)  # idr_preload
    if slot is None:
        return -ENOMEM, 0
    await drm_gem_object_get(obj)
    await file.table_lock.lock()
    handle = 1
    while handle in file.object_idr:
        handle += 1
    file.object_idr[handle] = obj
    file.slots[handle] = slot
    await file.table_lock.unlock()
    current_kernel().ev("handle_create", file.name, f"{handle} -> {obj.name}")
    return 0, handle


async def drm_gem_object_lookup(file: DrmFile, handle: int) -> DrmGemObject | None:
    """``drm_gem_object_lookup()``: a new reference, or NULL for an unknown handle."""
    await file.table_lock.lock()
    obj = file.object_idr.get(handle)
    if obj is not None:
        await drm_gem_object_get(obj)
    await file.table_lock.unlock()
    return obj


async def drm_gem_handle_delete(file: DrmFile, handle: int) -> int:
    """``drm_gem_handle_delete()``: 0, or -EINVAL for an unknown handle."""
    await file.table_lock.lock()
    obj = file.object_idr.pop(handle, None)
    slot = file.slots.pop(handle, None)
    await file.table_lock.unlock()
    if obj is None:
        return -EINVAL
    kfree(slot)
    await drm_gem_object_put(obj)
    return 0


async def drm_gem_release(file: DrmFile) -> None:
    """``drm_gem_release()`` (file close): drop every handle, lowest first."""
    for handle in sorted(file.object_idr):
        await drm_gem_handle_delete(file, handle)
