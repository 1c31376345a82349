"""drivers/gpu/drm/panthor/panthor_heap.c (v6.15): heap pools and tiler heaps, as they touch the VM.

A VM's heap pool is created on demand (``panthor_vm_get_heap_pool``), is
reference-counted, and is destroyed with the VM (``panthor_vm_destroy``). The
pool owns a kernel BO in the VM holding one heap context per heap
(``gpu_contexts``); each tiler heap owns its chunks, kernel BOs mapped
NOEXEC at kernel-chosen VAs of the same VM. Both hold a VM reference, so a
VM with heaps lives until ``panthor_heap_pool_destroy()`` drops them.

Not modelled: ``panthor_heap_grow()`` / ``panthor_heap_return_chunk()`` (the
tiler OOM path of the scheduler, which the CSF model does not raise) and the
heap context contents the firmware reads. The pool's ``rw_semaphore`` is a
mutex here: its only reader (``panthor_heap_create()`` taking the VM) never
overlaps another reader in what is modelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ..sched.errno import EINVAL, ENOMEM, ERR_PTR, IS_ERR, PTR_ERR, ErrPtr
from ..sched.lib.xarray import (
    XA_FLAGS_ALLOC,
    XA_LIMIT,
    XArray,
    xa_alloc,
    xa_destroy,
    xa_erase,
    xa_for_each,
    xa_init_flags,
)
from ..sched.locking.atomic import Atomic, atomic_add_return
from ..sched.locking.mutex import Mutex, mutex_destroy, mutex_lock, mutex_unlock
from ..sched.locking.refcount import Kref, kref_get, kref_init, kref_put
from ..sched.mm.gfp import GFP_KERNEL
from ..sched.mm.memory import kfree, kmalloc, kzalloc
from ..sched.warn import drm_WARN_ON
from .panthor_drm import DRM_PANTHOR_BO_NO_MMAP, DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC

if TYPE_CHECKING:
    from .panthor_device import PanthorDevice
    from .panthor_fw_iface import PanthorKernelBo
    from .panthor_mmu import PanthorVm

PAGE_SIZE: Final = 4096
SZ_128K: Final = 0x20000
SZ_8M: Final = 0x800000

# The GPU heap context is an opaque structure used by the GPU to track the
# heap allocations. The driver should only touch it to initialize it (zero all
# fields). Because the CPU and GPU can both access this structure it is
# required to be GPU cache line aligned.
HEAP_CONTEXT_SIZE: Final = 32

# Maximum number of heaps per pool.
MAX_HEAPS_PER_POOL: Final = 128

# GPU_L2_FEATURES of a Mali-G610 (64-byte lines), when the device model does
# not record the register.
_DEFAULT_L2_FEATURES: Final = 0x07120206


def GPU_L2_FEATURES_LINE_SIZE(x: int) -> int:
    """``GPU_L2_FEATURES_LINE_SIZE(x)``: ``1 << (x & 0xff)``."""
    return 1 << (x & 0xFF)


class PanthorHeapChunk:
    """``struct panthor_heap_chunk``."""

    def __init__(self) -> None:
        self.bo: PanthorKernelBo | ErrPtr | None = None


class PanthorHeap:
    """``struct panthor_heap`` - Structure used to manage tiler heap contexts."""

    def __init__(self) -> None:
        self.chunks: list[PanthorHeapChunk] = []  # list_add(): the newest first
        self.lock = Mutex("heap->lock", key="&heap->lock")
        self.chunk_size = 0
        self.max_chunks = 0
        self.target_in_flight = 0
        self.chunk_count = 0


class PanthorHeapPool:
    """``struct panthor_heap_pool``."""

    def __init__(self) -> None:
        self.refcount = Kref(self, "pool->refcount")
        self.ptdev: PanthorDevice | None = None
        self.vm: PanthorVm | None = None  # weak: the VM owns the pool
        self.lock = Mutex("pool->lock", key="&pool->lock")  # struct rw_semaphore
        self.xa: XArray[PanthorHeap] = XArray("pool->xa")
        self.gpu_contexts: PanthorKernelBo | ErrPtr | None = None
        self.size = Atomic(0, "pool->size")


def panthor_heap_ctx_stride(ptdev: PanthorDevice) -> int:
    """``panthor_heap_ctx_stride()``."""
    l2_features = getattr(ptdev.gpu_info, "l2_features", _DEFAULT_L2_FEATURES)
    gpu_cache_line_size = GPU_L2_FEATURES_LINE_SIZE(l2_features)

    return -(-HEAP_CONTEXT_SIZE // gpu_cache_line_size) * gpu_cache_line_size  # ALIGN()


def panthor_get_heap_ctx_offset(pool: PanthorHeapPool, id: int) -> int:
    """``panthor_get_heap_ctx_offset()``."""
    assert pool.ptdev is not None
    return panthor_heap_ctx_stride(pool.ptdev) * id


async def panthor_free_heap_chunk(
    pool: PanthorHeapPool, heap: PanthorHeap, chunk: PanthorHeapChunk
) -> None:
    """``panthor_free_heap_chunk()``."""
    from .panthor_fw_iface import panthor_kernel_bo_destroy

    await mutex_lock(heap.lock)
    heap.chunks.remove(chunk)  # list_del()
    heap.chunk_count -= 1
    await mutex_unlock(heap.lock)

    await atomic_add_return(-heap.chunk_size, pool.size)  # atomic_sub()

    await panthor_kernel_bo_destroy(chunk.bo)
    kfree(chunk)


async def panthor_alloc_heap_chunk(
    pool: PanthorHeapPool, heap: PanthorHeap, initial_chunk: bool
) -> int:
    """``panthor_alloc_heap_chunk()``."""
    from .panthor_fw_iface import (
        panthor_kernel_bo_create,
        panthor_kernel_bo_destroy,
        panthor_kernel_bo_gpuva,
        panthor_kernel_bo_vmap,
    )
    from .panthor_mmu import PANTHOR_VM_KERNEL_AUTO_VA

    assert pool.ptdev is not None
    chunk = await kmalloc(PanthorHeapChunk, GFP_KERNEL)
    if not chunk:
        return -ENOMEM

    chunk.bo = await panthor_kernel_bo_create(
        pool.ptdev,
        pool.vm,
        heap.chunk_size,
        DRM_PANTHOR_BO_NO_MMAP,
        DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC,
        PANTHOR_VM_KERNEL_AUTO_VA,
        "Tiler heap chunk",
    )
    if IS_ERR(chunk.bo):
        ret = PTR_ERR(chunk.bo)
        kfree(chunk)  # err_free_chunk:
        return ret
    kbo = chunk.bo
    assert kbo is not None and not isinstance(kbo, ErrPtr)

    ret = await panthor_kernel_bo_vmap(kbo)
    if ret:
        await panthor_kernel_bo_destroy(kbo)  # err_destroy_bo:
        kfree(chunk)
        return ret

    # memset(hdr, 0, sizeof(*hdr)), then the link to the previous chunk.
    hdr_next = 0
    if initial_chunk and heap.chunks:
        prev_chunk = heap.chunks[0]  # list_first_entry()
        assert prev_chunk.bo is not None and not isinstance(prev_chunk.bo, ErrPtr)
        prev_gpuva = panthor_kernel_bo_gpuva(prev_chunk.bo)
        hdr_next = (prev_gpuva & ~0xFFF) | (heap.chunk_size >> 12)
    assert kbo.kmap is not None
    kbo.kmap.write(0, hdr_next)

    kbo.kmap = None  # panthor_kernel_bo_vunmap()

    await mutex_lock(heap.lock)
    heap.chunks.insert(0, chunk)  # list_add()
    heap.chunk_count += 1
    await mutex_unlock(heap.lock)

    await atomic_add_return(heap.chunk_size, pool.size)  # atomic_add()

    return 0


async def panthor_free_heap_chunks(pool: PanthorHeapPool, heap: PanthorHeap) -> None:
    """``panthor_free_heap_chunks()``."""
    for chunk in list(heap.chunks):  # list_for_each_entry_safe()
        await panthor_free_heap_chunk(pool, heap, chunk)


async def panthor_alloc_heap_chunks(
    pool: PanthorHeapPool, heap: PanthorHeap, chunk_count: int
) -> int:
    """``panthor_alloc_heap_chunks()``."""
    for _i in range(chunk_count):
        ret = await panthor_alloc_heap_chunk(pool, heap, True)
        if ret:
            return ret

    return 0


async def panthor_heap_destroy_locked(pool: PanthorHeapPool, handle: int) -> int:
    """``panthor_heap_destroy_locked()``."""
    heap = await xa_erase(pool.xa, handle)
    if not heap:
        return -EINVAL

    await panthor_free_heap_chunks(pool, heap)
    mutex_destroy(heap.lock)
    kfree(heap)
    return 0


async def panthor_heap_destroy(pool: PanthorHeapPool, handle: int) -> int:
    """``panthor_heap_destroy()`` - Destroy a heap context."""
    await mutex_lock(pool.lock)  # down_write()
    ret = await panthor_heap_destroy_locked(pool, handle)
    await mutex_unlock(pool.lock)  # up_write()

    return ret


async def panthor_heap_create(
    pool: PanthorHeapPool,
    initial_chunk_count: int,
    chunk_size: int,
    max_chunks: int,
    target_in_flight: int,
) -> tuple[int, int, int]:
    """``panthor_heap_create()`` - Create a heap context.

    Returns ``(id or a negative error, *heap_ctx_gpu_va, *first_chunk_gpu_va)``.
    """
    from .panthor_fw_iface import KernelBoMap, panthor_kernel_bo_gpuva
    from .panthor_mmu import panthor_vm_get, panthor_vm_put

    heap_ctx_gpu_va = 0
    first_chunk_gpu_va = 0

    if initial_chunk_count == 0:
        return -EINVAL, 0, 0

    if initial_chunk_count > max_chunks:
        return -EINVAL, 0, 0

    if chunk_size % PAGE_SIZE or chunk_size < SZ_128K or chunk_size > SZ_8M:
        return -EINVAL, 0, 0

    await mutex_lock(pool.lock)  # down_read()
    vm = await panthor_vm_get(pool.vm)
    await mutex_unlock(pool.lock)  # up_read()

    # The pool has been destroyed, we can't create a new heap.
    if not vm:
        return -EINVAL, 0, 0

    heap = await kzalloc(PanthorHeap, GFP_KERNEL)
    if not heap:
        await panthor_vm_put(vm)  # err_put_vm:
        return -ENOMEM, 0, 0

    heap.chunk_size = chunk_size
    heap.max_chunks = max_chunks
    heap.target_in_flight = target_in_flight

    ret = await panthor_alloc_heap_chunks(pool, heap, initial_chunk_count)
    id = 0
    if not ret:
        first_chunk = heap.chunks[0]  # list_first_entry()
        assert first_chunk.bo is not None and not isinstance(first_chunk.bo, ErrPtr)
        first_chunk_gpu_va = panthor_kernel_bo_gpuva(first_chunk.bo)

        await mutex_lock(pool.lock)  # down_write()
        # The pool has been destroyed, we can't create a new heap.
        if not pool.vm:
            ret = -EINVAL
        else:
            ret, id = await xa_alloc(pool.xa, heap, XA_LIMIT(0, MAX_HEAPS_PER_POOL - 1), GFP_KERNEL)
            if not ret:
                ctx_bo = pool.gpu_contexts
                assert ctx_bo is not None and not isinstance(ctx_bo, ErrPtr)
                assert pool.ptdev is not None
                # memset(gpu_ctx, 0, panthor_heap_ctx_stride(pool->ptdev)): the
                # pool's kmap stays for the pool's lifetime.
                kmap = ctx_bo.kmap
                if isinstance(kmap, KernelBoMap):
                    offset = panthor_get_heap_ctx_offset(pool, id)
                    for word in range(0, panthor_heap_ctx_stride(pool.ptdev), 8):
                        kmap.write(offset + word, 0)
                heap_ctx_gpu_va = panthor_kernel_bo_gpuva(ctx_bo) + panthor_get_heap_ctx_offset(
                    pool, id
                )
        await mutex_unlock(pool.lock)  # up_write()

    if ret:
        # err_free_heap:
        await panthor_free_heap_chunks(pool, heap)
        mutex_destroy(heap.lock)
        kfree(heap)
        # err_put_vm:
        await panthor_vm_put(vm)
        return ret, 0, 0

    await panthor_vm_put(vm)
    return id, heap_ctx_gpu_va, first_chunk_gpu_va


async def panthor_heap_pool_release(refcount: Kref) -> None:
    """``panthor_heap_pool_release()``."""
    pool: PanthorHeapPool = refcount.container
    xa_destroy(pool.xa)
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


async def panthor_heap_pool_create(ptdev: PanthorDevice, vm: PanthorVm) -> PanthorHeapPool | ErrPtr:
    """``panthor_heap_pool_create()`` - Create a heap pool."""
    from .panthor_fw_iface import panthor_kernel_bo_create, panthor_kernel_bo_vmap
    from .panthor_mmu import PANTHOR_VM_KERNEL_AUTO_VA, panthor_vm_page_size

    stride = panthor_heap_ctx_stride(ptdev)
    pgsz = panthor_vm_page_size(vm)
    bosize = -(-(MAX_HEAPS_PER_POOL * stride) // pgsz) * pgsz  # ALIGN()

    pool = await kzalloc(PanthorHeapPool, GFP_KERNEL)
    if not pool:
        return ERR_PTR(-ENOMEM)

    # We want a weak ref here: the heap pool belongs to the VM, so we're
    # sure that, as long as the heap pool exists, the VM exists too.
    pool.vm = vm
    pool.ptdev = ptdev
    xa_init_flags(pool.xa, XA_FLAGS_ALLOC)
    await kref_init(pool.refcount)

    pool.gpu_contexts = await panthor_kernel_bo_create(
        ptdev,
        vm,
        bosize,
        DRM_PANTHOR_BO_NO_MMAP,
        DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC,
        PANTHOR_VM_KERNEL_AUTO_VA,
        "Heap pool",
    )
    if IS_ERR(pool.gpu_contexts):
        ret = PTR_ERR(pool.gpu_contexts)
        await panthor_heap_pool_destroy(pool)  # err_destroy_pool:
        return ERR_PTR(ret)
    ctx_bo = pool.gpu_contexts
    assert ctx_bo is not None and not isinstance(ctx_bo, ErrPtr)

    ret = await panthor_kernel_bo_vmap(ctx_bo)
    if ret:
        await panthor_heap_pool_destroy(pool)  # err_destroy_pool:
        return ERR_PTR(ret)

    await atomic_add_return(int(ctx_bo.obj.size), pool.size)  # atomic_add()
    return pool


async def panthor_heap_pool_destroy(pool: PanthorHeapPool | None) -> None:
    """``panthor_heap_pool_destroy()`` - Destroy a heap pool.

    This function destroys all heap contexts and their resources. Thus
    preventing any use of the heap context or the chunk attached to them
    after that point. The pool itself lives until its last reference is gone.
    """
    from .panthor_fw_iface import panthor_kernel_bo_destroy

    if not pool:
        return

    await mutex_lock(pool.lock)  # down_write()
    async for i, _heap in xa_for_each(pool.xa):
        assert pool.ptdev is not None
        drm_WARN_ON(pool.ptdev.base, await panthor_heap_destroy_locked(pool, i))

    ctx_bo: Any = pool.gpu_contexts
    if ctx_bo is not None and not isinstance(ctx_bo, ErrPtr):
        await atomic_add_return(-int(ctx_bo.obj.size), pool.size)  # atomic_sub()
        await panthor_kernel_bo_destroy(ctx_bo)

    # Reflects the fact the pool has been destroyed.
    pool.vm = None
    await mutex_unlock(pool.lock)  # up_write()

    await panthor_heap_pool_put(pool)
