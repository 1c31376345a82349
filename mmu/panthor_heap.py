"""drivers/gpu/drm/panthor/panthor_heap.c: the heap pool, as far as panthor_mmu.c touches it.

A VM's heap pool is created on demand (``panthor_vm_get_heap_pool``), is
reference-counted, and is destroyed with the VM (``panthor_vm_destroy``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sched.errno import ENOMEM, ERR_PTR, ErrPtr
from ..sched.locking.refcount import Kref, kref_get, kref_init, kref_put
from ..sched.mm.gfp import GFP_KERNEL
from ..sched.mm.memory import kfree, kzalloc

if TYPE_CHECKING:
    from .panthor_device import PanthorDevice
    from .panthor_mmu import PanthorVm


class PanthorHeapPool:
    """``struct panthor_heap_pool``."""

    def __init__(self) -> None:
        self.refcount = Kref(self, "pool->refcount")
        self.ptdev: PanthorDevice | None = None
        self.vm: PanthorVm | None = None  # weak: the VM owns the pool


async def panthor_heap_pool_create(ptdev: PanthorDevice, vm: PanthorVm) -> PanthorHeapPool | ErrPtr:
    """``panthor_heap_pool_create()``."""
    pool = await kzalloc(PanthorHeapPool, GFP_KERNEL)
    if not pool:
        return ERR_PTR(-ENOMEM)

    # We want a weak ref here: the heap pool belongs to the VM, so we're
    # sure that, as long as the heap pool exists, the VM exists too.
    pool.vm = vm
    pool.ptdev = ptdev
    await kref_init(pool.refcount)
    return pool


async def panthor_heap_pool_release(refcount: Kref) -> None:
    """``panthor_heap_pool_release()``."""
    pool: PanthorHeapPool = refcount.container
    kfree(pool)


async def panthor_heap_pool_put(pool: PanthorHeapPool | None) -> None:
    """``panthor_heap_pool_put()``: NULL is fine."""
    if pool:
        await kref_put(pool.refcount, panthor_heap_pool_release)


async def panthor_heap_pool_get(pool: PanthorHeapPool | None) -> PanthorHeapPool | None:
    """``panthor_heap_pool_get()``: NULL is fine."""
    if pool:
        await kref_get(pool.refcount)
    return pool


async def panthor_heap_pool_destroy(pool: PanthorHeapPool | None) -> None:
    """``panthor_heap_pool_destroy()``: detach from the VM and drop the VM's reference."""
    if not pool:
        return
    pool.vm = None
    await panthor_heap_pool_put(pool)
