"""The drm_gem_object base (drivers/gpu/drm/drm_gem.c, include/drm/drm_gem.h).

Only what the VM code needs: the size, the reservation object (its own, or
the root GEM's for a BO private to a VM), the reference count whose last put
calls ``funcs->free``, the GEM's list of ``drm_gpuvm_bo`` (managed by
gpuvm) with its lock annotation, and ``import_attach``. Handles, files,
mmap offsets and shmem pages are elsewhere.
"""

from __future__ import annotations

from typing import Any

from ..core.failure import Failure
from ..core.frames import fast_site, format_site
from ..core.kernel import current_kernel
from ..dma_buf.dma_resv import DmaResv, dma_resv_fini, dma_resv_held
from ..locking.lockdep import Lockdep
from ..locking.mutex import Mutex
from ..locking.refcount import Kref, kref_get, kref_put
from ..mm.objmem import kfree_if_allocated


class DrmGemObject:
    """``struct drm_gem_object`` after ``drm_gem_private_object_init()`` (refcount 1).

    Subclasses (the driver's BO) override :meth:`free`, which plays
    ``obj->funcs->free`` and runs on the last :func:`drm_gem_object_put`.
    """

    def __init__(self, size: int, name: str, resv: DmaResv | None = None) -> None:
        self.size = size
        self.name = name
        self._resv = DmaResv(name)
        self.resv: DmaResv = resv if resv is not None else self._resv
        self.refcount = Kref(self, f"{name}.refcount")
        self.refcount.refcount.refs = 1  # kref_init() on a private object
        self.gpuva: list[Any] = []  # obj->gpuva.list: the drm_gpuvm_bo of this GEM
        self.gpuva_lock: Mutex | None = None  # obj->gpuva.lock_dep_map's lock
        self.import_attach: object | None = None

    def __repr__(self) -> str:
        refs = self.refcount.refcount.refs
        return f"<drm_gem_object {self.name} size={self.size:#x} refs={refs}>"

    async def free(self) -> None:
        """``obj->funcs->free``: by default ``drm_gem_object_release()`` and ``kfree()``."""
        drm_gem_object_release(self)
        kfree_if_allocated(self)


def drm_gem_object_release(obj: DrmGemObject) -> None:
    """``drm_gem_object_release()``: finalise the object's own reservation object."""
    dma_resv_fini(obj._resv)


async def drm_gem_object_get(obj: DrmGemObject) -> None:
    """``drm_gem_object_get()``."""
    await kref_get(obj.refcount)


async def _drm_gem_object_free(kref: Kref) -> None:
    """``drm_gem_object_free()``: the kref release, calls ``funcs->free``."""
    obj = kref.container
    assert isinstance(obj, DrmGemObject)
    current_kernel().ev("gem_free", obj.name)
    await obj.free()


async def drm_gem_object_put(obj: DrmGemObject | None) -> None:
    """``drm_gem_object_put()``: NULL is fine; the last put frees the object."""
    if obj is not None:
        await kref_put(obj.refcount, _drm_gem_object_free)


def drm_gem_gpuva_set_lock(obj: DrmGemObject, lock: Mutex) -> None:
    """``drm_gem_gpuva_set_lock()``: the lock that protects ``obj->gpuva.list``."""
    obj.gpuva_lock = lock


def drm_gem_gpuva_init(obj: DrmGemObject) -> None:
    """``drm_gem_gpuva_init()``."""
    obj.gpuva = []


def drm_gem_gpuva_assert_lock_held(obj: DrmGemObject) -> None:
    """``drm_gem_gpuva_assert_lock_held()``: the registered lock, else ``obj->resv``."""
    k = current_kernel()
    cur = k.current
    if cur is None or k.stopping:
        return
    lock = obj.gpuva_lock
    if lock is not None:
        if k.lockdep is not None:
            held = Lockdep.is_held(cur, lock.dep_map)
        else:
            held = lock.owner is cur
        what = lock.name
    else:
        held = dma_resv_held(obj.resv)
        what = f"{obj.resv.name} (resv)"
    if held:
        return
    site = format_site(fast_site(2))
    k.fail(
        Failure(
            "warn",
            f"drm_gem_gpuva_assert_lock_held({obj.name}): {cur.label} does not hold {what} "
            f"at {site}",
            signature=f"warn:drm_gem_gpuva_assert_lock_held:{site}",
        ),
        fatal=k.config.warn_fatal,
    )
