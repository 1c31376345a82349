"""drivers/gpu/drm/panthor/panthor_mmu.c (kernel e814f3fd16ac, v6.14), function by function.

Every function of the C file is here under its name, in the file's order,
taking the same locks in the same order and returning the same error codes;
each docstring names the C function. The seed's own comments are kept where
they explain a lock. Where the kernel reads or writes shared state without
the lock that orders it, an ``await preempt()`` marks the window.

Mapping conventions (see docs/porting.md):

* ``struct x`` -> ``class X``; ``ptdev->mmu->as.slots_lock`` ->
  ``ptdev.mmu.as_.slots_lock`` (``as`` is a Python keyword); an embedded
  base (``vm->base``, ``job->base``, ``bo->base.base``) is the object itself.
* ``mutex_lock(&l)`` -> ``await mutex_lock(l)``; ``ERR_PTR``/``IS_ERR``/
  ``PTR_ERR`` as in C; an out-parameter becomes part of a returned tuple.
* ``goto`` labels are the comments ``# out_unlock:`` etc. where the flow
  joins; a NULL dereference is a Python ``AttributeError`` on ``None``
  (an ``exception`` finding, as the oops it is in the kernel).
* Module globals of the C file (``pt_cache``) are module globals here;
  ``panthor_cleanup_wq`` lives in :mod:`.panthor_device`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final, cast

from ..gpuvm import (
    DRM_GPUVM_RESV_PROTECTED,
    DrmGpuva,
    DrmGpuvaOp,
    DrmGpuvm,
    DrmGpuvmBo,
    DrmGpuvmOps,
    DrmMm,
    DrmMmNode,
    SeqFile,
    drm_debugfs_gpuva_info,
    drm_gpuva_find_first,
    drm_gpuva_link,
    drm_gpuva_map,
    drm_gpuva_op_remap_to_unmap_range,
    drm_gpuva_remap,
    drm_gpuva_unlink,
    drm_gpuva_unmap,
    drm_gpuvm_bo_create,
    drm_gpuvm_bo_extobj_add,
    drm_gpuvm_bo_get,
    drm_gpuvm_bo_obtain_prealloc,
    drm_gpuvm_bo_put,
    drm_gpuvm_get,
    drm_gpuvm_init,
    drm_gpuvm_prepare_objects,
    drm_gpuvm_prepare_vm,
    drm_gpuvm_put,
    drm_gpuvm_resv,
    drm_gpuvm_resv_add_fence,
    drm_gpuvm_resv_object_alloc,
    drm_gpuvm_sm_map,
    drm_gpuvm_sm_unmap,
    drm_mm_init,
    drm_mm_insert_node_in_range,
    drm_mm_remove_node,
    drm_mm_reserve_node,
    drm_mm_takedown,
    seq_puts,
)
from ..gpuvm.drm_mm import DRM_MM_INSERT_BEST
from ..sched import (
    BIT,
    GENMASK,
    GENMASK_ULL,
    MAX_SCHEDULE_TIMEOUT,
    Atomic,
    DmaFence,
    DmaResv,
    DmaResvUsage,
    DrmExec,
    DrmGemObject,
    DrmGpuScheduler,
    DrmSchedBackendOps,
    DrmSchedEntity,
    DrmSchedJob,
    Kref,
    Mutex,
    RefCount,
    WorkStruct,
    clear_bit,
    current,
    dma_fence_begin_signalling,
    dma_fence_end_signalling,
    dma_resv_lock,
    dma_resv_unlock,
    drm_exec_prepare_obj,
    drm_gem_object_get,
    drm_gem_object_put,
    drm_sched_entity_destroy,
    drm_sched_entity_init,
    drm_sched_fini,
    drm_sched_init,
    drm_sched_job_cleanup,
    drm_sched_job_init,
    drm_sched_start,
    drm_sched_stop,
    ffs,
    ffz,
    fls64,
    kref_init,
    kref_put,
    lockdep_assert_held,
    mutex_destroy,
    mutex_lock,
    mutex_unlock,
    preempt,
    read_poll_timeout,
    refcount_dec_and_mutex_lock,
    refcount_inc_not_zero,
    refcount_read,
    refcount_set,
    set_bit,
)
from ..sched.deferred.irq import IrqRegs, PanthorIrq
from ..sched.deferred.workqueue import (
    INIT_WORK,
    WQ_UNBOUND,
    Workqueue,
    alloc_workqueue,
    destroy_workqueue,
    queue_work,
)
from ..sched.drm.drm_drv import (
    DrmDevice,
    drm_dev_enter,
    drm_dev_exit,
    drmm_add_action_or_reset,
    drmm_kzalloc,
    drmm_mutex_init,
    pm_runtime_active,
)
from ..sched.drm.drm_file import DrmFile, drm_gem_object_lookup
from ..sched.drm.drm_print import drm_dbg, drm_err
from ..sched.drm.drm_sched_types import DRM_GPU_SCHED_STAT_NOMINAL
from ..sched.errno import EBUSY, EINVAL, ENODEV, ENOENT, ENOMEM, ERR_PTR, IS_ERR, PTR_ERR, ErrPtr
from ..sched.lib.list import (
    INIT_LIST_HEAD,
    ListHead,
    ListNode,
    list_add_tail,
    list_del,
    list_del_init,
    list_first_entry_or_null,
    list_for_each_entry,
    list_node_empty,
)
from ..sched.lib.xarray import (
    XA_FLAGS_ALLOC1,
    XA_LIMIT,
    XArray,
    xa_alloc,
    xa_destroy,
    xa_erase,
    xa_for_each,
    xa_init_flags,
    xa_load,
    xa_lock,
    xa_unlock,
)
from ..sched.mm.gfp import __GFP_ZERO, GFP_KERNEL
from ..sched.mm.memory import (
    KArray,
    KmemCache,
    kcalloc,
    kfree,
    kmem_cache_alloc_bulk,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    kmem_cache_free_bulk,
    kmemleak_ignore,
    kzalloc,
)
from ..sched.warn import WARN, drm_WARN_ON
from . import panthor_device as _panthor_device
from .gem_shmem import (
    PanthorGemObject,
    SgTable,
    drm_gem_shmem_get_pages_sgt,
    drm_gem_shmem_pin,
    drm_gem_shmem_unpin,
    for_each_sgtable_dma_sg,
    sg_dma_address,
    sg_dma_len,
    to_panthor_bo,
)
from .io_pgtable import (
    ARM_64_LPAE_S1,
    IOMMU_CACHE,
    IOMMU_NOEXEC,
    IOMMU_READ,
    IOMMU_WRITE,
    ArmLpaeIoPgtable,
    IommuFlushOps,
    IoPgtableCfg,
    alloc_io_pgtable_ops,
    free_io_pgtable_ops,
    io_pgtable_ops_to_pgtable,
)
from .panthor_device import (
    PanthorDevice,
    PanthorFile,
    gpu_read,
    gpu_write,
    panthor_device_schedule_reset,
    panthor_exception_name,
)
from .panthor_drm import (
    DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC,
    DRM_PANTHOR_VM_BIND_OP_MAP_READONLY,
    DRM_PANTHOR_VM_BIND_OP_MAP_UNCACHED,
    DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
    DRM_PANTHOR_VM_BIND_OP_TYPE_MASK,
    DRM_PANTHOR_VM_BIND_OP_TYPE_SYNC_ONLY,
    DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
    drm_panthor_vm_bind_op,
    drm_panthor_vm_create,
)
from .physmem import alloc_pages_node, free_pages, memset, page_address
from .regs import (
    AS_COMMAND,
    AS_COMMAND_FLUSH_MEM,
    AS_COMMAND_FLUSH_PT,
    AS_COMMAND_LOCK,
    AS_COMMAND_UNLOCK,
    AS_COMMAND_UPDATE,
    AS_FAULTADDRESS_HI,
    AS_FAULTADDRESS_LO,
    AS_FAULTSTATUS,
    AS_FAULTSTATUS_ACCESS_TYPE_ATOMIC,
    AS_FAULTSTATUS_ACCESS_TYPE_EX,
    AS_FAULTSTATUS_ACCESS_TYPE_MASK,
    AS_FAULTSTATUS_ACCESS_TYPE_READ,
    AS_FAULTSTATUS_ACCESS_TYPE_WRITE,
    AS_LOCK_REGION_MIN_SIZE,
    AS_LOCKADDR_HI,
    AS_LOCKADDR_LO,
    AS_MEMATTR_AARCH64_INNER_ALLOC_EXPL,
    AS_MEMATTR_AARCH64_INNER_OUTER_NC,
    AS_MEMATTR_AARCH64_INNER_OUTER_WB,
    AS_MEMATTR_AARCH64_SH_CPU_INNER,
    AS_MEMATTR_AARCH64_SH_MIDGARD_INNER,
    AS_MEMATTR_HI,
    AS_MEMATTR_LO,
    AS_STATUS,
    AS_STATUS_AS_ACTIVE,
    AS_TRANSCFG_ADRMODE_AARCH64_4K,
    AS_TRANSCFG_ADRMODE_UNMAPPED,
    AS_TRANSCFG_HI,
    AS_TRANSCFG_INA_BITS,
    AS_TRANSCFG_LO,
    AS_TRANSCFG_PTW_MEMATTR_WB,
    AS_TRANSCFG_PTW_RA,
    AS_TRANSCFG_PTW_SH_OS,
    AS_TRANSTAB_HI,
    AS_TRANSTAB_LO,
    GPU_MMU_FEATURES_PA_BITS,
    GPU_MMU_FEATURES_VA_BITS,
    MMU_INT_CLEAR,
    MMU_INT_MASK,
    MMU_INT_RAWSTAT,
    MMU_INT_STAT,
)
from .sizes import SZ_1G, SZ_2M, SZ_4G, SZ_4K, SZ_256M

MAX_AS_SLOTS: Final = 32

U64_MAX: Final = (1 << 64) - 1
BITS_PER_LONG: Final = 64

# include/drm/drm_gpuvm.h helpers and include/linux/align.h, for reading like C.


def lower_32_bits(n: int) -> int:
    return n & 0xFFFFFFFF


def upper_32_bits(n: int) -> int:
    return (n >> 32) & 0xFFFFFFFF


def IS_ALIGNED(x: int, a: int) -> bool:
    return (x & (a - 1)) == 0


def ALIGN(x: int, a: int) -> int:
    return ((x + a - 1) & ~(a - 1)) & U64_MAX


def ALIGN_DOWN(x: int, a: int) -> int:
    return x & ~(a - 1)


def min_not_zero(x: int, y: int) -> int:
    return y if x == 0 else x if y == 0 else min(x, y)


def rounddown_pow_of_two(n: int) -> int:
    return 1 << (n.bit_length() - 1) if n else 0


def get_order(size: int) -> int:
    return max(0, (size - 1).bit_length() - 12)


# The task's user address-space size (arm64 with 48-bit VAs); a compat task
# would set its own in ``current().ctx["task_size"]``.
DEFAULT_TASK_SIZE: Final = 1 << 48


def TASK_SIZE_OF(task: Any) -> int:
    return int(task.ctx.get("task_size", DEFAULT_TASK_SIZE))


# ---------------------------------------------------------------------- structures


class PanthorAsSlot:
    """``struct panthor_as_slot`` - Address space slot."""

    __slots__ = ("vm",)

    def __init__(self) -> None:
        # @vm: VM bound to this slot. NULL is no VM is bound.
        self.vm: PanthorVm | None = None


class PanthorMmuAs:
    """``panthor_mmu::as``."""

    def __init__(self) -> None:
        # @slots_lock: Lock protecting access to all other AS fields.
        self.slots_lock = Mutex("mmu->as.slots_lock", key="&mmu->as.slots_lock")
        # @alloc_mask: Bitmask encoding the allocated slots (set_bit/clear_bit).
        self.alloc_mask = Atomic(0, "mmu->as.alloc_mask")
        # @faulty_mask: Bitmask encoding the faulty slots.
        self.faulty_mask = 0
        # @slots: VMs currently bound to the AS slots.
        self.slots = [PanthorAsSlot() for _ in range(MAX_AS_SLOTS)]
        # @lru_list: List of least recently used VMs.
        self.lru_list: ListHead[PanthorVm] = ListHead("mmu->as.lru_list")


class PanthorMmuVm:
    """``panthor_mmu::vm``: VMs management fields."""

    def __init__(self) -> None:
        # @lock: Lock protecting access to list.
        self.lock = Mutex("mmu->vm.lock", key="&mmu->vm.lock")
        # @list: List containing all VMs.
        self.list: ListHead[PanthorVm] = ListHead("mmu->vm.list")
        # @reset_in_progress: True if a reset is in progress.
        self.reset_in_progress = False
        # @wq: Workqueue used for the VM_BIND queues.
        self.wq: Workqueue | None = None


def _irq_unbound(*args: Any) -> Any:
    raise AssertionError("panthor_mmu irq used before panthor_request_mmu_irq()")


MMU_IRQ_REGS: Final = IrqRegs(MMU_INT_RAWSTAT, MMU_INT_CLEAR, MMU_INT_MASK, MMU_INT_STAT)


class PanthorMmu:
    """``struct panthor_mmu`` - MMU related data."""

    def __init__(self) -> None:
        # @irq: The MMU irq.
        self.irq = PanthorIrq("mmu", MMU_IRQ_REGS, _irq_unbound, _irq_unbound, _irq_unbound)
        # @as: Address space related fields.
        self.as_ = PanthorMmuAs()
        # @vm: VMs management fields
        self.vm = PanthorMmuVm()


class PanthorVmPool:
    """``struct panthor_vm_pool`` - VM pool object."""

    def __init__(self) -> None:
        # @xa: Array used for VM handle tracking.
        self.xa: XArray[PanthorVm] = XArray("pool->xa")


class PanthorVma(DrmGpuva):
    """``struct panthor_vma`` - GPU mapping object (``base`` is the drm_gpuva)."""

    __slots__ = ("flags", "node")

    def __init__(self) -> None:
        super().__init__()
        # @node: Used to implement deferred release of VMAs.
        self.node: ListNode[PanthorVma] = ListNode(self)
        # @flags: Combination of drm_panthor_vm_bind_op_flags (map flags only).
        self.flags = 0

    @property
    def base(self) -> PanthorVma:
        return self


class _RsvdPageTables:
    """``panthor_vm_op_ctx::rsvd_page_tables``."""

    __slots__ = ("count", "pages", "ptr")

    def __init__(self) -> None:
        self.count = 0  # Number of pages reserved.
        self.ptr = 0  # Point to the first unused page in the @pages table.
        self.pages: KArray | None = None


class _OpVa:
    __slots__ = ("addr", "range")

    def __init__(self) -> None:
        self.addr = 0
        self.range = 0


class _OpMap:
    __slots__ = ("bo_offset", "new_vma", "sgt", "vm_bo")

    def __init__(self) -> None:
        self.vm_bo: DrmGpuvmBo | None = None  # Buffer object to map.
        self.bo_offset = 0  # Offset in the buffer object.
        self.sgt: SgTable | None = None  # gathered at job creation time
        self.new_vma: PanthorVma | None = None


class PanthorVmOpCtx:
    """``struct panthor_vm_op_ctx`` - VM operation context.

    With VM operations potentially taking place in a dma-signaling path, we
    need to make sure everything that might require resource allocation is
    pre-allocated upfront. This is what this operation context is far.

    We also collect resources that have been freed, so we can release them
    asynchronously, and let the VM_BIND scheduler process the next VM_BIND
    request.
    """

    def __init__(self) -> None:
        self.memset()

    def memset(self) -> None:
        """``memset(op_ctx, 0, sizeof(*op_ctx))``."""
        self.rsvd_page_tables = _RsvdPageTables()
        self.preallocated_vmas: list[PanthorVma | None] = [None, None, None]
        self.flags = 0
        self.va = _OpVa()
        self.returned_vmas: ListHead[PanthorVma] = ListHead("op_ctx->returned_vmas")
        self.map = _OpMap()


class _KernelAutoVa:
    __slots__ = ("end", "start")

    def __init__(self) -> None:
        self.start = 0
        self.end = 0


class _VmAs:
    """``panthor_vm::as``."""

    __slots__ = ("active_cnt", "id", "lru_node")

    def __init__(self, vm: PanthorVm) -> None:
        # @id: ID of the address space this VM is bound to. -1: inactive/not bound.
        self.id = 0
        # @active_cnt: Number of active users of this VM.
        self.active_cnt = RefCount(0, "vm->as.active_cnt")
        # @lru_node: Used to instead the VM in the panthor_mmu::as::lru_list.
        self.lru_node: ListNode[PanthorVm] = ListNode(vm)


class _VmHeaps:
    """``panthor_vm::heaps``."""

    __slots__ = ("lock", "pool")

    def __init__(self) -> None:
        self.pool: Any = None  # struct panthor_heap_pool *
        self.lock: Mutex | None = None


class PanthorVm(DrmGpuvm):
    """``struct panthor_vm`` - VM object (``base`` is the drm_gpuvm)."""

    def __init__(self) -> None:
        super().__init__()
        self.sched = DrmGpuScheduler()
        self.entity = DrmSchedEntity("vm->entity")
        self.ptdev: PanthorDevice = None  # type: ignore[assignment]  # set by panthor_vm_create
        self.memattr = 0
        self.pgtbl_ops: ArmLpaeIoPgtable = None  # type: ignore[assignment]
        self.root_page_table: Any = None
        self.op_lock: Mutex = None  # type: ignore[assignment]  # mutex_init()
        self.op_ctx: PanthorVmOpCtx | None = None
        self.mm = DrmMm()
        self.mm_lock: Mutex = None  # type: ignore[assignment]  # mutex_init()
        self.kernel_auto_va = _KernelAutoVa()
        self.as_ = _VmAs(self)
        self.heaps = _VmHeaps()
        self.node: ListNode[PanthorVm] = ListNode(self)
        self.for_mcu = False
        self.destroyed = False
        self.unusable = False
        self.unhandled_fault = False

    @property
    def base(self) -> PanthorVm:
        return self

    def __repr__(self) -> str:
        return f"<panthor_vm {self.name} as={self.as_.id}>"


class PanthorVmBindJob(DrmSchedJob):
    """``struct panthor_vm_bind_job`` - VM bind job (``base`` is the drm_sched_job)."""

    def __init__(self) -> None:
        super().__init__()
        self.refcount = Kref(self, "job->refcount")
        self.cleanup_op_ctx_work: WorkStruct | None = None
        self.vm: PanthorVm = None  # type: ignore[assignment]
        self.ctx = PanthorVmOpCtx()

    @property
    def base(self) -> PanthorVmBindJob:
        return self


# @pt_cache: Cache used to allocate MMU page tables.
#
# The pre-allocation pattern forces us to over-allocate to plan for
# the worst case scenario, and return the pages we didn't use.
#
# Having a kmem_cache allows us to speed allocations.
pt_cache: KmemCache | None = None


def _pt_cache() -> KmemCache:
    assert pt_cache is not None, "panthor_mmu_pt_cache_init() was not called"
    return pt_cache


# ---------------------------------------------------------------------- page tables


async def alloc_pt(cookie: Any, size: int, gfp: int) -> Any:
    """``alloc_pt()`` - Custom page table allocator.

    We want a custom allocator so we can use a cache for page table
    allocations and amortize the cost of the over-reservation that's
    done to allow asynchronous VM operations.
    """
    vm: PanthorVm = cookie

    # Allocation of the root page table happening during init.
    if not vm.root_page_table:
        drm_WARN_ON(vm.ptdev.base, vm.op_ctx)
        p = await alloc_pages_node(0, gfp | __GFP_ZERO, get_order(size))
        page = page_address(p) if p else None
        vm.root_page_table = page
        return page

    # We're not supposed to have anything bigger than 4k here, because we picked a
    # 4k granule size at init time.
    if drm_WARN_ON(vm.ptdev.base, size != SZ_4K):
        return None

    # We must have some op_ctx attached to the VM and it must have at least one
    # free page.
    if drm_WARN_ON(vm.ptdev.base, not vm.op_ctx) or drm_WARN_ON(
        vm.ptdev.base,
        vm.op_ctx.rsvd_page_tables.ptr >= vm.op_ctx.rsvd_page_tables.count,  # type: ignore[union-attr]
    ):
        return None

    assert vm.op_ctx is not None and vm.op_ctx.rsvd_page_tables.pages is not None
    page = vm.op_ctx.rsvd_page_tables.pages[vm.op_ctx.rsvd_page_tables.ptr]
    vm.op_ctx.rsvd_page_tables.ptr += 1
    memset(page, 0, SZ_4K)

    # Page table entries don't use virtual addresses, which trips out
    # kmemleak. [...] Let's just ignore memory passed to the page-table
    # driver for now.
    kmemleak_ignore(page)
    return page


def free_pt(cookie: Any, data: Any, size: int) -> None:
    """``free_pt()`` - Custom page table free function."""
    vm: PanthorVm = cookie

    if vm.root_page_table is data:
        free_pages(data, get_order(size))
        vm.root_page_table = None
        return

    if drm_WARN_ON(vm.ptdev.base, size != SZ_4K):
        return

    # Return the page to the pt_cache.
    kmem_cache_free(_pt_cache(), data)


# ---------------------------------------------------------------------- MMU HW operations


async def wait_ready(ptdev: PanthorDevice, as_nr: int) -> int:
    """``wait_ready()``."""

    # Wait for the MMU status to indicate there is no active command, in
    # case one is pending.
    async def read() -> int:
        return await gpu_read(ptdev, AS_STATUS(as_nr))

    ret, _val = await read_poll_timeout(
        read, lambda val: not (val & AS_STATUS_AS_ACTIVE), 10, 100000, atomic=True
    )

    if ret:
        await panthor_device_schedule_reset(ptdev)
        drm_err(ptdev.base, "AS_ACTIVE bit stuck\n")

    return ret


async def write_cmd(ptdev: PanthorDevice, as_nr: int, cmd: int) -> int:
    """``write_cmd()``."""
    # write AS_COMMAND when MMU is ready to accept another command
    status = await wait_ready(ptdev, as_nr)
    if not status:
        await gpu_write(ptdev, AS_COMMAND(as_nr), cmd)

    return status


async def lock_region(ptdev: PanthorDevice, as_nr: int, region_start: int, size: int) -> None:
    """``lock_region()``."""
    region_end = (region_start + size) & U64_MAX

    if not size:
        return

    # The locked region is a naturally aligned power of 2 block encoded as
    # log2 minus(1).
    # Calculate the desired start/end and look for the highest bit which
    # differs. The smallest naturally aligned block must include this bit
    # change, the desired region starts with this bit (and subsequent bits)
    # zeroed and ends with the bit (and subsequent bits) set to one.
    region_width = (
        max(
            fls64(region_start ^ ((region_end - 1) & U64_MAX)),
            (AS_LOCK_REGION_MIN_SIZE).bit_length() - 1,
        )
        - 1
    ) & 0xFF

    # Mask off the low bits of region_start (which would be ignored by
    # the hardware anyway)
    region_start &= GENMASK_ULL(63, region_width)

    region = region_width | region_start

    # Lock the region that needs to be updated
    await gpu_write(ptdev, AS_LOCKADDR_LO(as_nr), lower_32_bits(region))
    await gpu_write(ptdev, AS_LOCKADDR_HI(as_nr), upper_32_bits(region))
    await write_cmd(ptdev, as_nr, AS_COMMAND_LOCK)


async def mmu_hw_do_operation_locked(
    ptdev: PanthorDevice, as_nr: int, iova: int, size: int, op: int
) -> int:
    """``mmu_hw_do_operation_locked()``."""
    assert ptdev.mmu is not None
    lockdep_assert_held(ptdev.mmu.as_.slots_lock)

    if as_nr < 0:
        return 0

    # If the AS number is greater than zero, then we can be sure
    # the device is up and running, so we don't need to explicitly
    # power it up

    if op != AS_COMMAND_UNLOCK:
        await lock_region(ptdev, as_nr, iova, size)

    # Run the MMU operation
    await write_cmd(ptdev, as_nr, op)

    # Wait for the flush to complete
    return await wait_ready(ptdev, as_nr)


async def mmu_hw_do_operation(vm: PanthorVm, iova: int, size: int, op: int) -> int:
    """``mmu_hw_do_operation()``."""
    ptdev = vm.ptdev
    assert ptdev.mmu is not None

    await mutex_lock(ptdev.mmu.as_.slots_lock)
    ret = await mmu_hw_do_operation_locked(ptdev, vm.as_.id, iova, size, op)
    await mutex_unlock(ptdev.mmu.as_.slots_lock)

    return ret


async def panthor_mmu_as_enable(
    ptdev: PanthorDevice, as_nr: int, transtab: int, transcfg: int, memattr: int
) -> int:
    """``panthor_mmu_as_enable()``."""
    ret = await mmu_hw_do_operation_locked(ptdev, as_nr, 0, U64_MAX, AS_COMMAND_FLUSH_MEM)
    if ret:
        return ret

    await gpu_write(ptdev, AS_TRANSTAB_LO(as_nr), lower_32_bits(transtab))
    await gpu_write(ptdev, AS_TRANSTAB_HI(as_nr), upper_32_bits(transtab))

    await gpu_write(ptdev, AS_MEMATTR_LO(as_nr), lower_32_bits(memattr))
    await gpu_write(ptdev, AS_MEMATTR_HI(as_nr), upper_32_bits(memattr))

    await gpu_write(ptdev, AS_TRANSCFG_LO(as_nr), lower_32_bits(transcfg))
    await gpu_write(ptdev, AS_TRANSCFG_HI(as_nr), upper_32_bits(transcfg))

    return await write_cmd(ptdev, as_nr, AS_COMMAND_UPDATE)


async def panthor_mmu_as_disable(ptdev: PanthorDevice, as_nr: int) -> int:
    """``panthor_mmu_as_disable()``."""
    ret = await mmu_hw_do_operation_locked(ptdev, as_nr, 0, U64_MAX, AS_COMMAND_FLUSH_MEM)
    if ret:
        return ret

    await gpu_write(ptdev, AS_TRANSTAB_LO(as_nr), 0)
    await gpu_write(ptdev, AS_TRANSTAB_HI(as_nr), 0)

    await gpu_write(ptdev, AS_MEMATTR_LO(as_nr), 0)
    await gpu_write(ptdev, AS_MEMATTR_HI(as_nr), 0)

    await gpu_write(ptdev, AS_TRANSCFG_LO(as_nr), AS_TRANSCFG_ADRMODE_UNMAPPED)
    await gpu_write(ptdev, AS_TRANSCFG_HI(as_nr), 0)

    return await write_cmd(ptdev, as_nr, AS_COMMAND_UPDATE)


def panthor_mmu_fault_mask(ptdev: PanthorDevice, value: int) -> int:
    """``panthor_mmu_fault_mask()``."""
    # Bits 16 to 31 mean REQ_COMPLETE.
    return value & GENMASK(15, 0)


def panthor_mmu_as_fault_mask(ptdev: PanthorDevice, as_: int) -> int:
    """``panthor_mmu_as_fault_mask()``."""
    return BIT(as_)


async def panthor_vm_has_unhandled_faults(vm: PanthorVm) -> bool:
    """``panthor_vm_has_unhandled_faults()`` - Check if a VM has unhandled faults.

    A lockless read: the fault handler sets it under slots_lock.
    """
    await preempt()
    return vm.unhandled_fault


async def panthor_vm_is_unusable(vm: PanthorVm) -> bool:
    """``panthor_vm_is_unusable()`` - Check if the VM is still usable (a lockless read)."""
    await preempt()
    return vm.unusable


async def panthor_vm_release_as_locked(vm: PanthorVm) -> None:
    """``panthor_vm_release_as_locked()``."""
    ptdev = vm.ptdev
    assert ptdev.mmu is not None

    lockdep_assert_held(ptdev.mmu.as_.slots_lock)

    if drm_WARN_ON(ptdev.base, vm.as_.id < 0):
        return

    ptdev.mmu.as_.slots[vm.as_.id].vm = None
    await clear_bit(vm.as_.id, ptdev.mmu.as_.alloc_mask)
    await refcount_set(vm.as_.active_cnt, 0)
    list_del_init(vm.as_.lru_node)
    vm.as_.id = -1


async def panthor_vm_active(vm: PanthorVm) -> int:
    """``panthor_vm_active()`` - Flag a VM as active.

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


async def panthor_vm_idle(vm: PanthorVm) -> None:
    """``panthor_vm_idle()`` - Flag a VM idle.

    When we know the GPU is done with the VM (no more jobs to process),
    we can relinquish the AS slot attached to this VM, if any.

    We don't release the slot immediately, but instead place the VM in
    the LRU list, so it can be evicted if another VM needs an AS slot.
    This way, VMs keep attached to the AS they were given until we run
    out of free slot, limiting the number of MMU operations (TLB flush
    and other AS updates).
    """
    ptdev = vm.ptdev
    assert ptdev.mmu is not None

    if not await refcount_dec_and_mutex_lock(vm.as_.active_cnt, ptdev.mmu.as_.slots_lock):
        return

    if not drm_WARN_ON(ptdev.base, vm.as_.id == -1 or not list_node_empty(vm.as_.lru_node)):
        list_add_tail(vm.as_.lru_node, ptdev.mmu.as_.lru_list)

    await refcount_set(vm.as_.active_cnt, 0)
    await mutex_unlock(ptdev.mmu.as_.slots_lock)


def panthor_vm_page_size(vm: PanthorVm) -> int:
    """``panthor_vm_page_size()``."""
    pgt = io_pgtable_ops_to_pgtable(vm.pgtbl_ops)
    pg_shift = ffs(pgt.cfg.pgsize_bitmap) - 1

    return 1 << pg_shift


async def panthor_vm_stop(vm: PanthorVm) -> None:
    """``panthor_vm_stop()``."""
    await drm_sched_stop(vm.sched, None)


async def panthor_vm_start(vm: PanthorVm) -> None:
    """``panthor_vm_start()``."""
    await drm_sched_start(vm.sched, 0)


async def panthor_vm_as(vm: PanthorVm) -> int:
    """``panthor_vm_as()`` - Get the AS slot attached to a VM (a lockless read).

    Return: -1 if the VM is not assigned an AS slot yet, >= 0 otherwise.
    """
    await preempt()
    return vm.as_.id


def get_pgsize(addr: int, size: int) -> tuple[int, int]:
    """``get_pgsize(addr, size, &count)``: returns ``(pgsize, count)``.

    io-pgtable only operates on multiple pages within a single table
    entry, so we need to split at boundaries of the table size, i.e.
    the next block size up. The distance from address A to the next
    boundary of block size B is logically B - A % B, but in unsigned
    two's complement where B is a power of two we get the equivalence
    B - A % B == (B - A) % B == (n * B - A) % B, and choose n = 0 :)
    """
    blk_offset = -addr % SZ_2M

    if blk_offset or size < SZ_2M:
        count = min_not_zero(blk_offset, size) // SZ_4K
        return SZ_4K, count
    blk_offset = -addr % SZ_1G or SZ_1G
    count = min(blk_offset, size) // SZ_2M
    return SZ_2M, count


async def panthor_vm_flush_range(vm: PanthorVm, iova: int, size: int) -> int:
    """``panthor_vm_flush_range()``."""
    ptdev = vm.ptdev
    ret = 0

    await preempt()  # vm->as.id is read without slots_lock
    if vm.as_.id < 0:
        return 0

    # If the device is unplugged, we just silently skip the flush.
    entered, cookie = await drm_dev_enter(ptdev.base)
    if not entered:
        return 0

    ret = await mmu_hw_do_operation(vm, iova, size, AS_COMMAND_FLUSH_PT)

    await drm_dev_exit(cookie)
    return ret


async def panthor_vm_flush_all(vm: PanthorVm) -> int:
    """``panthor_vm_flush_all()`` - Flush L2 caches for the entirety of a VM's AS."""
    return await panthor_vm_flush_range(vm, vm.base.mm_start, vm.base.mm_range)


async def panthor_vm_unmap_pages(vm: PanthorVm, iova: int, size: int) -> int:
    """``panthor_vm_unmap_pages()``."""
    ptdev = vm.ptdev
    ops = vm.pgtbl_ops
    offset = 0

    drm_dbg(ptdev.base, "unmap: as=%d, iova=%x, len=%x", vm.as_.id, iova, size)

    while offset < size:
        pgsize, pgcount = get_pgsize(iova + offset, size - offset)

        unmapped_sz = ops.unmap_pages(iova + offset, pgsize, pgcount, None)

        if drm_WARN_ON(ptdev.base, unmapped_sz != pgsize * pgcount):
            drm_err(
                ptdev.base,
                "failed to unmap range %x-%x (requested range %x-%x)\n",
                iova + offset + unmapped_sz,
                iova + offset + pgsize * pgcount,
                iova,
                iova + size,
            )
            await panthor_vm_flush_range(vm, iova, offset + unmapped_sz)
            return -EINVAL
        offset += unmapped_sz

    return await panthor_vm_flush_range(vm, iova, size)


async def panthor_vm_map_pages(
    vm: PanthorVm, iova: int, prot: int, sgt: SgTable, offset: int, size: int
) -> int:
    """``panthor_vm_map_pages()``."""
    ptdev = vm.ptdev
    ops = vm.pgtbl_ops
    start_iova = iova

    if not size:
        return 0

    for sgl in for_each_sgtable_dma_sg(sgt):
        paddr = sg_dma_address(sgl)
        length = sg_dma_len(sgl)

        if length <= offset:
            offset -= length
            continue

        paddr += offset
        length -= offset
        length = min(length, size)
        size -= length

        drm_dbg(ptdev.base, "map: as=%d, iova=%x, paddr=%x, len=%x", vm.as_.id, iova, paddr, length)

        while length:
            pgsize, pgcount = get_pgsize(iova | paddr, length)

            ret, mapped = await ops.map_pages(iova, paddr, pgsize, pgcount, prot, GFP_KERNEL)
            iova += mapped
            paddr += mapped
            length -= mapped

            if drm_WARN_ON(ptdev.base, not ret and not mapped):
                ret = -ENOMEM

            if ret:
                # If something failed, unmap what we've already mapped before
                # returning. The unmap call is not supposed to fail.
                drm_WARN_ON(
                    ptdev.base, await panthor_vm_unmap_pages(vm, start_iova, iova - start_iova)
                )
                return ret

        if not size:
            break

        offset = 0

    return await panthor_vm_flush_range(vm, start_iova, iova - start_iova)


def flags_to_prot(flags: int) -> int:
    """``flags_to_prot()``."""
    prot = 0

    if flags & DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC:
        prot |= IOMMU_NOEXEC

    if not (flags & DRM_PANTHOR_VM_BIND_OP_MAP_UNCACHED):
        prot |= IOMMU_CACHE

    if flags & DRM_PANTHOR_VM_BIND_OP_MAP_READONLY:
        prot |= IOMMU_READ
    else:
        prot |= IOMMU_READ | IOMMU_WRITE

    return prot


# panthor_mmu.h: the VA argument asking for an automatically allocated kernel VA.
PANTHOR_VM_KERNEL_AUTO_VA: Final = U64_MAX


async def panthor_vm_alloc_va(vm: PanthorVm, va: int, size: int, va_node: DrmMmNode) -> int:
    """``panthor_vm_alloc_va()`` - Allocate a region in the auto-va space.

    Some GPU objects, like heap chunks, are fully managed by the kernel and
    need to be mapped to the userspace VM, in the region reserved for kernel
    objects. This function takes care of allocating a region in the kernel
    auto-VA space. Return: 0 on success, an error code otherwise.
    """
    vm_pgsz = panthor_vm_page_size(vm)

    if not size or not IS_ALIGNED(size, vm_pgsz):
        return -EINVAL

    if va != PANTHOR_VM_KERNEL_AUTO_VA and not IS_ALIGNED(va, vm_pgsz):
        return -EINVAL

    await mutex_lock(vm.mm_lock)
    if va != PANTHOR_VM_KERNEL_AUTO_VA:
        va_node.start = va
        va_node.size = size
        ret = drm_mm_reserve_node(vm.mm, va_node)
    else:
        ret = drm_mm_insert_node_in_range(
            vm.mm,
            va_node,
            size,
            SZ_2M if size >= SZ_2M else SZ_4K,
            0,
            vm.kernel_auto_va.start,
            vm.kernel_auto_va.end,
            DRM_MM_INSERT_BEST,
        )
    await mutex_unlock(vm.mm_lock)

    return ret


async def panthor_vm_free_va(vm: PanthorVm, va_node: DrmMmNode) -> None:
    """``panthor_vm_free_va()`` - Free a region allocated with panthor_vm_alloc_va()."""
    await mutex_lock(vm.mm_lock)
    drm_mm_remove_node(va_node)
    await mutex_unlock(vm.mm_lock)


# ---------------------------------------------------------------------- op contexts


async def panthor_vm_bo_put(vm_bo: DrmGpuvmBo) -> None:
    """``panthor_vm_bo_put()``."""
    assert vm_bo.obj is not None and vm_bo.vm is not None
    bo = to_panthor_bo(vm_bo.obj)
    vm = vm_bo.vm

    # We must retain the GEM before calling drm_gpuvm_bo_put(),
    # otherwise the mutex might be destroyed while we hold it.
    # Same goes for the VM, since we take the VM resv lock.
    await drm_gem_object_get(bo.base.base)
    await drm_gpuvm_get(vm)

    # We take the resv lock to protect against concurrent accesses to the
    # gpuvm evicted/extobj lists that are modified in
    # drm_gpuvm_bo_destroy(), which is called if drm_gpuvm_bo_put()
    # releases sthe last vm_bo reference.
    # We take the BO GPUVA list lock to protect the vm_bo removal from the
    # GEM vm_bo list.
    await dma_resv_lock(drm_gpuvm_resv(vm), None)
    await mutex_lock(bo.gpuva_list_lock)
    unpin = await drm_gpuvm_bo_put(vm_bo)
    await mutex_unlock(bo.gpuva_list_lock)
    await dma_resv_unlock(drm_gpuvm_resv(vm))

    # If the vm_bo object was destroyed, release the pin reference that
    # was hold by this object.
    if unpin and not bo.base.base.import_attach:
        await drm_gem_shmem_unpin(bo.base)

    await drm_gpuvm_put(vm)
    await drm_gem_object_put(bo.base.base)


async def panthor_vm_cleanup_op_ctx(op_ctx: PanthorVmOpCtx, vm: PanthorVm) -> None:
    """``panthor_vm_cleanup_op_ctx()``."""
    remaining_pt_count = op_ctx.rsvd_page_tables.count - op_ctx.rsvd_page_tables.ptr

    if remaining_pt_count:
        assert op_ctx.rsvd_page_tables.pages is not None
        kmem_cache_free_bulk(
            _pt_cache(),
            remaining_pt_count,
            op_ctx.rsvd_page_tables.pages,
            op_ctx.rsvd_page_tables.ptr,
        )

    kfree(op_ctx.rsvd_page_tables.pages)

    if op_ctx.map.vm_bo:
        await panthor_vm_bo_put(op_ctx.map.vm_bo)

    for i in range(len(op_ctx.preallocated_vmas)):
        kfree(op_ctx.preallocated_vmas[i])

    for vma in list_for_each_entry(op_ctx.returned_vmas):
        list_del(vma.node)
        assert vma.base.vm_bo is not None
        await panthor_vm_bo_put(vma.base.vm_bo)
        kfree(vma)


def panthor_vm_op_ctx_get_vma(op_ctx: PanthorVmOpCtx) -> PanthorVma | None:
    """``panthor_vm_op_ctx_get_vma()``."""
    for i in range(len(op_ctx.preallocated_vmas)):
        vma = op_ctx.preallocated_vmas[i]

        if vma:
            op_ctx.preallocated_vmas[i] = None
            return vma

    return None


async def panthor_vm_op_ctx_prealloc_vmas(op_ctx: PanthorVmOpCtx) -> int:
    """``panthor_vm_op_ctx_prealloc_vmas()``."""
    op_type = op_ctx.flags & DRM_PANTHOR_VM_BIND_OP_TYPE_MASK
    if op_type == DRM_PANTHOR_VM_BIND_OP_TYPE_MAP:
        # One VMA for the new mapping, and two more VMAs for the remap case
        # which might contain both a prev and next VA.
        vma_count = 3
    elif op_type == DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP:
        # Partial unmaps might trigger a remap with either a prev or a next VA,
        # but not both.
        vma_count = 1
    else:
        return 0

    for i in range(vma_count):
        vma = await kzalloc(PanthorVma, GFP_KERNEL)

        if not vma:
            return -ENOMEM

        op_ctx.preallocated_vmas[i] = vma

    return 0


PANTHOR_VM_BIND_OP_MAP_FLAGS: Final = (
    DRM_PANTHOR_VM_BIND_OP_MAP_READONLY
    | DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC
    | DRM_PANTHOR_VM_BIND_OP_MAP_UNCACHED
    | DRM_PANTHOR_VM_BIND_OP_TYPE_MASK
)


async def panthor_vm_prepare_map_op_ctx(
    op_ctx: PanthorVmOpCtx,
    vm: PanthorVm,
    bo: PanthorGemObject | None,
    offset: int,
    size: int,
    va: int,
    flags: int,
) -> int:
    """``panthor_vm_prepare_map_op_ctx()``."""
    sgt: SgTable | ErrPtr | None = None

    if not bo:
        return -EINVAL

    if (flags & ~PANTHOR_VM_BIND_OP_MAP_FLAGS) or (
        flags & DRM_PANTHOR_VM_BIND_OP_TYPE_MASK
    ) != DRM_PANTHOR_VM_BIND_OP_TYPE_MAP:
        return -EINVAL

    # Make sure the VA and size are aligned and in-bounds.
    if size > bo.base.base.size or offset > bo.base.base.size - size:
        return -EINVAL

    # If the BO has an exclusive VM attached, it can't be mapped to other VMs.
    if bo.exclusive_vm_root_gem and bo.exclusive_vm_root_gem is not panthor_vm_root_gem(vm):
        return -EINVAL

    op_ctx.memset()
    INIT_LIST_HEAD_returned(op_ctx)
    op_ctx.flags = flags
    op_ctx.va.range = size
    op_ctx.va.addr = va

    ret = await panthor_vm_op_ctx_prealloc_vmas(op_ctx)
    if ret:
        goto = "err_cleanup"
    else:
        goto = ""
        if not bo.base.base.import_attach:
            # Pre-reserve the BO pages, so the map operation doesn't have to
            # allocate.
            ret = await drm_gem_shmem_pin(bo.base)
            if ret:
                goto = "err_cleanup"

    if not goto:
        sgt = await drm_gem_shmem_get_pages_sgt(bo.base)
        if IS_ERR(sgt):
            if not bo.base.base.import_attach:
                await drm_gem_shmem_unpin(bo.base)

            ret = PTR_ERR(sgt)
            goto = "err_cleanup"

    if not goto:
        assert isinstance(sgt, SgTable)
        op_ctx.map.sgt = sgt

        preallocated_vm_bo = await drm_gpuvm_bo_create(vm.base, bo.base.base)
        if not preallocated_vm_bo:
            if not bo.base.base.import_attach:
                await drm_gem_shmem_unpin(bo.base)

            ret = -ENOMEM
            goto = "err_cleanup"

    if not goto:
        assert preallocated_vm_bo is not None
        # drm_gpuvm_bo_obtain_prealloc() will call drm_gpuvm_bo_put() on our
        # pre-allocated BO if the <BO,VM> association exists. Given we
        # only have one ref on preallocated_vm_bo, drm_gpuvm_bo_destroy() will
        # be called immediately, and we have to hold the VM resv lock when
        # calling this function.
        await dma_resv_lock(panthor_vm_resv(vm), None)
        await mutex_lock(bo.gpuva_list_lock)
        op_ctx.map.vm_bo = await drm_gpuvm_bo_obtain_prealloc(preallocated_vm_bo)
        await mutex_unlock(bo.gpuva_list_lock)
        await dma_resv_unlock(panthor_vm_resv(vm))

        # If the a vm_bo for this <VM,BO> combination exists, it already
        # retains a pin ref, and we can release the one we took earlier.
        #
        # If our pre-allocated vm_bo is picked, it now retains the pin ref,
        # which will be released in panthor_vm_bo_put().
        if preallocated_vm_bo is not op_ctx.map.vm_bo and not bo.base.base.import_attach:
            await drm_gem_shmem_unpin(bo.base)

        op_ctx.map.bo_offset = offset

        # L1, L2 and L3 page tables.
        # We could optimize L3 allocation by iterating over the sgt and merging
        # 2M contiguous blocks, but it's simpler to over-provision and return
        # the pages if they're not used.
        pt_count = (
            ((ALIGN(va + size, 1 << 39) - ALIGN_DOWN(va, 1 << 39)) >> 39)
            + ((ALIGN(va + size, 1 << 30) - ALIGN_DOWN(va, 1 << 30)) >> 30)
            + ((ALIGN(va + size, 1 << 21) - ALIGN_DOWN(va, 1 << 21)) >> 21)
        )

        op_ctx.rsvd_page_tables.pages = await kcalloc(pt_count, GFP_KERNEL)
        if not op_ctx.rsvd_page_tables.pages:
            ret = -ENOMEM
            goto = "err_cleanup"

    if not goto:
        assert op_ctx.rsvd_page_tables.pages is not None
        ret = await kmem_cache_alloc_bulk(
            _pt_cache(), GFP_KERNEL, pt_count, op_ctx.rsvd_page_tables.pages
        )
        op_ctx.rsvd_page_tables.count = ret
        if ret != pt_count:
            ret = -ENOMEM
            goto = "err_cleanup"

    if not goto:
        # Insert BO into the extobj list last, when we know nothing can fail.
        await dma_resv_lock(panthor_vm_resv(vm), None)
        assert op_ctx.map.vm_bo is not None
        await drm_gpuvm_bo_extobj_add(op_ctx.map.vm_bo)
        await dma_resv_unlock(panthor_vm_resv(vm))

        return 0

    # err_cleanup:
    await panthor_vm_cleanup_op_ctx(op_ctx, vm)
    return ret


def INIT_LIST_HEAD_returned(op_ctx: PanthorVmOpCtx) -> None:
    """``INIT_LIST_HEAD(&op_ctx->returned_vmas)``."""
    op_ctx.returned_vmas = ListHead("op_ctx->returned_vmas")


async def panthor_vm_prepare_unmap_op_ctx(
    op_ctx: PanthorVmOpCtx, vm: PanthorVm, va: int, size: int
) -> int:
    """``panthor_vm_prepare_unmap_op_ctx()``."""
    pt_count = 0

    op_ctx.memset()
    INIT_LIST_HEAD_returned(op_ctx)
    op_ctx.va.range = size
    op_ctx.va.addr = va
    op_ctx.flags = DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP

    # Pre-allocate L3 page tables to account for the split-2M-block
    # situation on unmap.
    if va != ALIGN(va, SZ_2M):
        pt_count += 1

    if va + size != ALIGN(va + size, SZ_2M) and ALIGN(va + size, SZ_2M) != ALIGN(va, SZ_2M):
        pt_count += 1

    ret = await panthor_vm_op_ctx_prealloc_vmas(op_ctx)
    if not ret and pt_count:
        op_ctx.rsvd_page_tables.pages = await kcalloc(pt_count, GFP_KERNEL)
        if not op_ctx.rsvd_page_tables.pages:
            ret = -ENOMEM
        else:
            ret = await kmem_cache_alloc_bulk(
                _pt_cache(), GFP_KERNEL, pt_count, op_ctx.rsvd_page_tables.pages
            )
            if ret != pt_count:
                ret = -ENOMEM
            else:
                op_ctx.rsvd_page_tables.count = pt_count
                ret = 0

    if not ret:
        return 0

    # err_cleanup:
    await panthor_vm_cleanup_op_ctx(op_ctx, vm)
    return ret


def panthor_vm_prepare_sync_only_op_ctx(op_ctx: PanthorVmOpCtx, vm: PanthorVm) -> None:
    """``panthor_vm_prepare_sync_only_op_ctx()``."""
    op_ctx.memset()
    INIT_LIST_HEAD_returned(op_ctx)
    op_ctx.flags = DRM_PANTHOR_VM_BIND_OP_TYPE_SYNC_ONLY


async def panthor_vm_get_bo_for_va(vm: PanthorVm, va: int) -> tuple[PanthorGemObject | ErrPtr, int]:
    """``panthor_vm_get_bo_for_va(vm, va, &bo_offset)``: returns ``(bo, bo_offset)``.

    The object returned by this function might no longer be mapped when the
    function returns. It's the caller responsibility to ensure there's no
    concurrent map/unmap operations making the returned value invalid, or
    make sure it doesn't matter if the object is no longer mapped.
    """
    bo: PanthorGemObject | ErrPtr = ERR_PTR(-ENOENT)
    bo_offset = 0

    # Take the VM lock to prevent concurrent map/unmap operations.
    await mutex_lock(vm.op_lock)
    gpuva = drm_gpuva_find_first(vm.base, va, 1)
    vma = cast(PanthorVma, gpuva) if gpuva else None
    if vma and vma.base.gem.obj:
        await drm_gem_object_get(vma.base.gem.obj)
        bo = to_panthor_bo(vma.base.gem.obj)
        bo_offset = vma.base.gem.offset + (va - vma.base.va.addr)
    await mutex_unlock(vm.op_lock)

    return bo, bo_offset


PANTHOR_VM_MIN_KERNEL_VA_SIZE: Final = SZ_256M


def panthor_vm_create_get_user_va_range(args: drm_panthor_vm_create, full_va_range: int) -> int:
    """``panthor_vm_create_get_user_va_range()``."""
    # Make sure we have a minimum amount of VA space for kernel objects.
    if full_va_range < PANTHOR_VM_MIN_KERNEL_VA_SIZE:
        return 0

    if args.user_va_range:
        # Use the user provided value if != 0.
        user_va_range = args.user_va_range
    elif TASK_SIZE_OF(current()) < full_va_range:
        # If the task VM size is smaller than the GPU VA range, pick this
        # as our default user VA range, so userspace can CPU/GPU map buffers
        # at the same address.
        user_va_range = TASK_SIZE_OF(current())
    else:
        # If the GPU VA range is smaller than the task VM size, we
        # just have to live with the fact we won't be able to map
        # all buffers at the same GPU/CPU address.
        #
        # If the GPU VA range is bigger than 4G (more than 32-bit of
        # VA), we split the range in two, and assign half of it to
        # the user and the other half to the kernel, if it's not, we
        # keep the kernel VA space as small as possible.
        user_va_range = (
            full_va_range // 2
            if full_va_range > SZ_4G
            else full_va_range - PANTHOR_VM_MIN_KERNEL_VA_SIZE
        )

    if full_va_range - PANTHOR_VM_MIN_KERNEL_VA_SIZE < user_va_range:
        user_va_range = full_va_range - PANTHOR_VM_MIN_KERNEL_VA_SIZE

    return user_va_range


PANTHOR_VM_CREATE_FLAGS: Final = 0


def panthor_vm_create_check_args(
    ptdev: PanthorDevice, args: drm_panthor_vm_create
) -> tuple[int, int, int]:
    """``panthor_vm_create_check_args(ptdev, args, &kernel_va_start, &kernel_va_range)``.

    Returns ``(ret, kernel_va_start, kernel_va_range)``.
    """
    va_bits = GPU_MMU_FEATURES_VA_BITS(ptdev.gpu_info.mmu_features)
    full_va_range = (1 << va_bits) & U64_MAX

    if args.flags & ~PANTHOR_VM_CREATE_FLAGS:
        return -EINVAL, 0, 0

    user_va_range = panthor_vm_create_get_user_va_range(args, full_va_range)
    if not user_va_range or (args.user_va_range and args.user_va_range > user_va_range):
        return -EINVAL, 0, 0

    # Pick a kernel VA range that's a power of two, to have a clear split.
    kernel_va_range = rounddown_pow_of_two(full_va_range - user_va_range)
    kernel_va_start = full_va_range - kernel_va_range
    return 0, kernel_va_start, kernel_va_range


# Only 32 VMs per open file. If that becomes a limiting factor, we can
# increase this number.
PANTHOR_MAX_VMS_PER_FILE: Final = 32


async def panthor_vm_pool_create_vm(
    ptdev: PanthorDevice, pool: PanthorVmPool, args: drm_panthor_vm_create
) -> int:
    """``panthor_vm_pool_create_vm()`` - Create a VM.

    Return: a positive VM ID on success, a negative error code otherwise.
    """
    ret, kernel_va_start, kernel_va_range = panthor_vm_create_check_args(ptdev, args)
    if ret:
        return ret

    vm = await panthor_vm_create(
        ptdev, False, kernel_va_start, kernel_va_range, kernel_va_start, kernel_va_range
    )
    if IS_ERR(vm):
        return PTR_ERR(vm)
    assert isinstance(vm, PanthorVm)

    ret, id = await xa_alloc(pool.xa, vm, XA_LIMIT(1, PANTHOR_MAX_VMS_PER_FILE), GFP_KERNEL)

    if ret:
        await panthor_vm_put(vm)
        return ret

    args.user_va_range = kernel_va_start
    return id


async def panthor_vm_destroy(vm: PanthorVm | None) -> None:
    """``panthor_vm_destroy()``."""
    if not vm:
        return

    await preempt()  # a plain store, read locklessly by panthor_vm_bind_job_create()
    vm.destroyed = True

    assert vm.heaps.lock is not None
    await mutex_lock(vm.heaps.lock)
    await panthor_heap_pool_destroy(vm.heaps.pool)
    vm.heaps.pool = None
    await mutex_unlock(vm.heaps.lock)

    drm_WARN_ON(vm.ptdev.base, await panthor_vm_unmap_range(vm, vm.base.mm_start, vm.base.mm_range))
    await panthor_vm_put(vm)


async def panthor_vm_pool_destroy_vm(pool: PanthorVmPool, handle: int) -> int:
    """``panthor_vm_pool_destroy_vm()`` - Destroy a VM.

    This function doesn't free the VM object or its resources, it just kills
    all mappings, and makes sure nothing can be mapped after that point.

    If there was any active jobs at the time this function is called, these
    jobs should experience page faults and be killed as a result.

    The VM resources are freed when the last reference on the VM object is
    dropped.
    """
    vm = await xa_erase(pool.xa, handle)

    await panthor_vm_destroy(vm)

    return 0 if vm else -EINVAL


async def panthor_vm_pool_get_vm(pool: PanthorVmPool, handle: int) -> PanthorVm | None:
    """``panthor_vm_pool_get_vm()`` - Retrieve VM object bound to a VM handle.

    Return: A valid pointer if the VM exists, NULL otherwise.
    """
    await xa_lock(pool.xa)
    vm = await panthor_vm_get(await xa_load(pool.xa, handle))  # type: ignore[arg-type]
    await xa_unlock(pool.xa)

    return vm


async def panthor_vm_pool_destroy(pfile: PanthorFile) -> None:
    """``panthor_vm_pool_destroy()`` - Destroy a VM pool.

    Destroy all VMs in the pool, and release the pool resources.

    Note that VMs can outlive the pool they were created from if other
    objects hold a reference to there VMs.
    """
    if not pfile.vms:
        return

    async for _i, vm in xa_for_each(pfile.vms.xa):
        await panthor_vm_destroy(vm)

    xa_destroy(pfile.vms.xa)
    kfree(pfile.vms)


async def panthor_vm_pool_create(pfile: PanthorFile) -> int:
    """``panthor_vm_pool_create()`` - Create a VM pool."""
    pfile.vms = await kzalloc(PanthorVmPool, GFP_KERNEL)
    if not pfile.vms:
        return -ENOMEM

    xa_init_flags(pfile.vms.xa, XA_FLAGS_ALLOC1)
    return 0


# dummy TLB ops, the real TLB flush happens in panthor_vm_flush_range()
def mmu_tlb_flush_all(cookie: Any) -> None:
    """``mmu_tlb_flush_all()``."""


def mmu_tlb_flush_walk(iova: int, size: int, granule: int, cookie: Any) -> None:
    """``mmu_tlb_flush_walk()``."""


mmu_tlb_ops: Final = IommuFlushOps(
    tlb_flush_all=mmu_tlb_flush_all,
    tlb_flush_walk=mmu_tlb_flush_walk,
)


def access_type_name(ptdev: PanthorDevice, fault_status: int) -> str | None:
    """``access_type_name()``."""
    access = fault_status & AS_FAULTSTATUS_ACCESS_TYPE_MASK
    if access == AS_FAULTSTATUS_ACCESS_TYPE_ATOMIC:
        return "ATOMIC"
    if access == AS_FAULTSTATUS_ACCESS_TYPE_READ:
        return "READ"
    if access == AS_FAULTSTATUS_ACCESS_TYPE_WRITE:
        return "WRITE"
    if access == AS_FAULTSTATUS_ACCESS_TYPE_EX:
        return "EXECUTE"
    drm_WARN_ON(ptdev.base, 1)
    return None


async def panthor_mmu_irq_handler(ptdev: PanthorDevice, status: int) -> None:
    """``panthor_mmu_irq_handler()``: runs in the MMU IRQ thread."""
    assert ptdev.mmu is not None
    mmu = ptdev.mmu
    has_unhandled_faults = False

    status = panthor_mmu_fault_mask(ptdev, status)
    while status:
        as_ = ffs(status | (status >> 16)) - 1
        mask = panthor_mmu_as_fault_mask(ptdev, as_)

        fault_status = await gpu_read(ptdev, AS_FAULTSTATUS(as_))
        addr = await gpu_read(ptdev, AS_FAULTADDRESS_LO(as_))
        addr |= (await gpu_read(ptdev, AS_FAULTADDRESS_HI(as_))) << 32

        # decode the fault status
        exception_type = fault_status & 0xFF
        access_type = (fault_status >> 8) & 0x3
        source_id = fault_status >> 16

        await mutex_lock(mmu.as_.slots_lock)

        mmu.as_.faulty_mask |= mask
        new_int_mask = panthor_mmu_fault_mask(ptdev, ~mmu.as_.faulty_mask)

        # terminal fault, print info about the fault
        drm_err(
            ptdev.base,
            "Unhandled Page fault in AS%d at VA 0x%016X\n"
            "raw fault status: 0x%X\n"
            "decoded fault status: %s\n"
            "exception type 0x%X: %s\n"
            "access type 0x%X: %s\n"
            "source id 0x%X\n",
            as_,
            addr,
            fault_status,
            "DECODER FAULT" if fault_status & (1 << 10) else "SLAVE FAULT",
            exception_type,
            panthor_exception_name(ptdev, exception_type),
            access_type,
            access_type_name(ptdev, fault_status),
            source_id,
        )

        # Ignore MMU interrupts on this AS until it's been
        # re-enabled.
        mmu.irq.mask = new_int_mask
        await gpu_write(ptdev, MMU_INT_MASK, new_int_mask)

        if mmu.as_.slots[as_].vm:
            mmu.as_.slots[as_].vm.unhandled_fault = True  # type: ignore[union-attr]

        # Disable the MMU to kill jobs on this AS.
        await panthor_mmu_as_disable(ptdev, as_)
        await mutex_unlock(mmu.as_.slots_lock)

        status &= ~mask
        has_unhandled_faults = True

    if has_unhandled_faults:
        await panthor_sched_report_mmu_fault(ptdev)


# PANTHOR_IRQ_HANDLER(mmu, MMU, panthor_mmu_irq_handler): the raw and threaded
# handlers are PanthorIrq's; these are the functions the macro names.


async def panthor_mmu_irq_suspend(pirq: PanthorIrq) -> None:
    """``panthor_mmu_irq_suspend()`` (made by PANTHOR_IRQ_HANDLER)."""
    await pirq.suspend()


async def panthor_mmu_irq_resume(pirq: PanthorIrq, mask: int) -> None:
    """``panthor_mmu_irq_resume()`` (made by PANTHOR_IRQ_HANDLER)."""
    await pirq.resume(mask)


async def panthor_request_mmu_irq(
    ptdev: PanthorDevice, pirq: PanthorIrq, irq: int, mask: int
) -> int:
    """``panthor_request_mmu_irq()`` (made by PANTHOR_IRQ_HANDLER)."""
    pirq.gpu_read = functools.partial(gpu_read, ptdev)
    pirq.gpu_write = functools.partial(gpu_write, ptdev)
    pirq.handler = functools.partial(panthor_mmu_irq_handler_thunk, ptdev)
    desc = next(d for d in ptdev.irqs.values() if d.irq == irq)
    return await pirq.request(desc, mask)


async def panthor_mmu_irq_handler_thunk(ptdev: PanthorDevice, status: int) -> None:
    # Looked up at call time, so a catalogue injection of the handler applies.
    await panthor_mmu_irq_handler(ptdev, status)


async def panthor_mmu_suspend(ptdev: PanthorDevice) -> None:
    """``panthor_mmu_suspend()`` - Suspend the MMU logic.

    All we do here is de-assign the AS slots on all active VMs, so things
    get flushed to the main memory, and no further access to these VMs are
    possible.

    We also suspend the MMU IRQ.
    """
    assert ptdev.mmu is not None
    await mutex_lock(ptdev.mmu.as_.slots_lock)
    for i in range(len(ptdev.mmu.as_.slots)):
        vm = ptdev.mmu.as_.slots[i].vm

        if vm:
            drm_WARN_ON(ptdev.base, await panthor_mmu_as_disable(ptdev, i))
            await panthor_vm_release_as_locked(vm)
    await mutex_unlock(ptdev.mmu.as_.slots_lock)

    await panthor_mmu_irq_suspend(ptdev.mmu.irq)


async def panthor_mmu_resume(ptdev: PanthorDevice) -> None:
    """``panthor_mmu_resume()`` - Resume the MMU logic.

    Resume the IRQ.

    We don't re-enable previously active VMs. We assume other parts of the
    driver will call panthor_vm_active() on the VMs they intend to use.
    """
    assert ptdev.mmu is not None
    await mutex_lock(ptdev.mmu.as_.slots_lock)
    ptdev.mmu.as_.alloc_mask.v = 0
    ptdev.mmu.as_.faulty_mask = 0
    await mutex_unlock(ptdev.mmu.as_.slots_lock)

    await panthor_mmu_irq_resume(ptdev.mmu.irq, panthor_mmu_fault_mask(ptdev, ~0))


async def panthor_mmu_pre_reset(ptdev: PanthorDevice) -> None:
    """``panthor_mmu_pre_reset()`` - Prepare for a reset.

    Suspend the IRQ, and make sure all VM_BIND queues are stopped, so we
    don't get asked to do a VM operation while the GPU is down.

    We don't cleanly shutdown the AS slots here, because the reset might
    come from an AS_ACTIVE_BIT stuck situation.
    """
    assert ptdev.mmu is not None
    await panthor_mmu_irq_suspend(ptdev.mmu.irq)

    await mutex_lock(ptdev.mmu.vm.lock)
    ptdev.mmu.vm.reset_in_progress = True
    for vm in list_for_each_entry(ptdev.mmu.vm.list):
        await panthor_vm_stop(vm)
    await mutex_unlock(ptdev.mmu.vm.lock)


async def panthor_mmu_post_reset(ptdev: PanthorDevice) -> None:
    """``panthor_mmu_post_reset()`` - Restore things after a reset.

    Put the MMU logic back in action after a reset. That implies resuming the
    IRQ and re-enabling the VM_BIND queues.
    """
    assert ptdev.mmu is not None
    await mutex_lock(ptdev.mmu.as_.slots_lock)

    # Now that the reset is effective, we can assume that none of the
    # AS slots are setup, and clear the faulty flags too.
    ptdev.mmu.as_.alloc_mask.v = 0
    ptdev.mmu.as_.faulty_mask = 0

    for i in range(len(ptdev.mmu.as_.slots)):
        slot_vm = ptdev.mmu.as_.slots[i].vm

        if slot_vm:
            await panthor_vm_release_as_locked(slot_vm)

    await mutex_unlock(ptdev.mmu.as_.slots_lock)

    await panthor_mmu_irq_resume(ptdev.mmu.irq, panthor_mmu_fault_mask(ptdev, ~0))

    # Restart the VM_BIND queues.
    await mutex_lock(ptdev.mmu.vm.lock)
    for vm in list_for_each_entry(ptdev.mmu.vm.list):
        await panthor_vm_start(vm)
    ptdev.mmu.vm.reset_in_progress = False
    await mutex_unlock(ptdev.mmu.vm.lock)


async def panthor_vm_free(gpuvm: DrmGpuvm) -> None:
    """``panthor_vm_free()``: the ``vm_free`` hook, run by the last drm_gpuvm_put()."""
    assert isinstance(gpuvm, PanthorVm)
    vm = gpuvm
    ptdev = vm.ptdev
    assert ptdev.mmu is not None and vm.heaps.lock is not None

    await mutex_lock(vm.heaps.lock)
    if drm_WARN_ON(ptdev.base, vm.heaps.pool):
        await panthor_heap_pool_destroy(vm.heaps.pool)
    await mutex_unlock(vm.heaps.lock)
    mutex_destroy(vm.heaps.lock)

    await mutex_lock(ptdev.mmu.vm.lock)
    list_del(vm.node)
    # Restore the scheduler state so we can call drm_sched_entity_destroy()
    # and drm_sched_fini(). If get there, that means we have no job left
    # and no new jobs can be queued, so we can start the scheduler without
    # risking interfering with the reset.
    if ptdev.mmu.vm.reset_in_progress:
        await panthor_vm_start(vm)
    await mutex_unlock(ptdev.mmu.vm.lock)

    await drm_sched_entity_destroy(vm.entity)
    await drm_sched_fini(vm.sched)

    await mutex_lock(ptdev.mmu.as_.slots_lock)
    if vm.as_.id >= 0:
        entered, cookie = await drm_dev_enter(ptdev.base)
        if entered:
            await panthor_mmu_as_disable(ptdev, vm.as_.id)
            await drm_dev_exit(cookie)

        ptdev.mmu.as_.slots[vm.as_.id].vm = None
        await clear_bit(vm.as_.id, ptdev.mmu.as_.alloc_mask)
        list_del(vm.as_.lru_node)
    await mutex_unlock(ptdev.mmu.as_.slots_lock)

    free_io_pgtable_ops(vm.pgtbl_ops)

    drm_mm_takedown(vm.mm)
    kfree(vm)


async def panthor_vm_put(vm: PanthorVm | None) -> None:
    """``panthor_vm_put()`` - Release a reference on a VM (NULL is fine)."""
    await drm_gpuvm_put(vm.base if vm else None)


async def panthor_vm_get(vm: PanthorVm | None) -> PanthorVm | None:
    """``panthor_vm_get()`` - Get a VM reference (NULL is fine). Returns ``vm``."""
    if vm:
        await drm_gpuvm_get(vm.base)

    return vm


async def panthor_vm_get_heap_pool(vm: PanthorVm, create: bool) -> Any:
    """``panthor_vm_get_heap_pool()`` - Get the heap pool attached to a VM.

    If no heap pool exists yet, and @create is true, we create one.
    The returned panthor_heap_pool should be released with panthor_heap_pool_put().
    Return: A valid pointer on success, an ERR_PTR() otherwise.
    """
    pool: Any
    assert vm.heaps.lock is not None
    await mutex_lock(vm.heaps.lock)
    if not vm.heaps.pool and create:
        if vm.destroyed:
            pool = ERR_PTR(-EINVAL)
        else:
            pool = await panthor_heap_pool_create(vm.ptdev, vm)

        if not IS_ERR(pool):
            vm.heaps.pool = await panthor_heap_pool_get(pool)
    else:
        pool = await panthor_heap_pool_get(vm.heaps.pool)
        if not pool:
            pool = ERR_PTR(-ENOENT)
    await mutex_unlock(vm.heaps.lock)

    return pool


def mair_to_memattr(mair: int, coherent: bool) -> int:
    """``mair_to_memattr()``."""
    memattr = 0

    for i in range(8):
        in_attr = (mair >> (8 * i)) & 0xFF
        outer = in_attr >> 4
        inner = in_attr & 0xF

        # For caching to be enabled, inner and outer caching policy
        # have to be both write-back, if one of them is write-through
        # or non-cacheable, we just choose non-cacheable. Device
        # memory is also translated to non-cacheable.
        if not (outer & 3) or not (outer & 4) or not (inner & 4):
            out_attr = (
                AS_MEMATTR_AARCH64_INNER_OUTER_NC
                | AS_MEMATTR_AARCH64_SH_MIDGARD_INNER
                | AS_MEMATTR_AARCH64_INNER_ALLOC_EXPL(False, False)
            )
        else:
            out_attr = AS_MEMATTR_AARCH64_INNER_OUTER_WB | AS_MEMATTR_AARCH64_INNER_ALLOC_EXPL(
                inner & 1, inner & 2
            )
            # Use SH_MIDGARD_INNER mode when device isn't coherent,
            # so SH_IS, which is used when IOMMU_CACHE is set, maps
            # to Mali's internal-shareable mode. As per the Mali
            # Spec, inner and outer-shareable modes aren't allowed
            # for WB memory when coherency is disabled.
            # Use SH_CPU_INNER mode when coherency is enabled, so
            # that SH_IS actually maps to the standard definition of
            # inner-shareable.
            if not coherent:
                out_attr |= AS_MEMATTR_AARCH64_SH_MIDGARD_INNER
            else:
                out_attr |= AS_MEMATTR_AARCH64_SH_CPU_INNER

        memattr |= (out_attr & 0xFF) << (8 * i)

    return memattr


# ---------------------------------------------------------------------- gpuvm steps


async def panthor_vma_link(vm: PanthorVm, vma: PanthorVma, vm_bo: DrmGpuvmBo) -> None:
    """``panthor_vma_link()``."""
    assert vma.base.gem.obj is not None
    bo = to_panthor_bo(vma.base.gem.obj)

    await mutex_lock(bo.gpuva_list_lock)
    await drm_gpuva_link(vma.base, vm_bo)
    drm_WARN_ON(vm.ptdev.base, await drm_gpuvm_bo_put(vm_bo))
    await mutex_unlock(bo.gpuva_list_lock)


async def panthor_vma_unlink(vm: PanthorVm, vma: PanthorVma) -> None:
    """``panthor_vma_unlink()``."""
    assert vma.base.gem.obj is not None and vma.base.vm_bo is not None
    bo = to_panthor_bo(vma.base.gem.obj)
    vm_bo = await drm_gpuvm_bo_get(vma.base.vm_bo)

    await mutex_lock(bo.gpuva_list_lock)
    await drm_gpuva_unlink(vma.base)
    await mutex_unlock(bo.gpuva_list_lock)

    # drm_gpuva_unlink() release the vm_bo, but we manually retained it
    # when entering this function, so we can implement deferred VMA
    # destruction. Re-assign it here.
    vma.base.vm_bo = vm_bo
    assert vm.op_ctx is not None
    list_add_tail(vma.node, vm.op_ctx.returned_vmas)


def panthor_vma_init(vma: PanthorVma | None, flags: int) -> None:
    """``panthor_vma_init()`` (a NULL ``vma`` is the kernel's NULL dereference)."""
    INIT_LIST_HEAD(vma.node)  # type: ignore[union-attr]
    vma.flags = flags  # type: ignore[union-attr]


PANTHOR_VM_MAP_FLAGS: Final = (
    DRM_PANTHOR_VM_BIND_OP_MAP_READONLY
    | DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC
    | DRM_PANTHOR_VM_BIND_OP_MAP_UNCACHED
)


async def panthor_gpuva_sm_step_map(op: DrmGpuvaOp, priv: Any) -> int:
    """``panthor_gpuva_sm_step_map()``."""
    vm: PanthorVm = priv
    op_ctx = vm.op_ctx
    assert op_ctx is not None
    vma = panthor_vm_op_ctx_get_vma(op_ctx)

    if not vma:
        return -EINVAL

    panthor_vma_init(vma, op_ctx.flags & PANTHOR_VM_MAP_FLAGS)

    assert op_ctx.map.sgt is not None
    ret = await panthor_vm_map_pages(
        vm,
        op.map.va.addr,
        flags_to_prot(vma.flags),
        op_ctx.map.sgt,
        op.map.gem.offset,
        op.map.va.range,
    )
    if ret:
        return ret

    # Ref owned by the mapping now, clear the obj field so we don't release the
    # pinning/obj ref behind GPUVA's back.
    await drm_gpuva_map(vm.base, vma.base, op.map)
    assert op_ctx.map.vm_bo is not None
    await panthor_vma_link(vm, vma, op_ctx.map.vm_bo)
    op_ctx.map.vm_bo = None
    return 0


async def panthor_gpuva_sm_step_remap(op: DrmGpuvaOp, priv: Any) -> int:
    """``panthor_gpuva_sm_step_remap()``."""
    unmap_vma = op.remap.unmap.va
    assert isinstance(unmap_vma, PanthorVma)
    vm: PanthorVm = priv
    op_ctx = vm.op_ctx
    assert op_ctx is not None
    prev_vma: PanthorVma | None = None
    next_vma: PanthorVma | None = None

    unmap_start, unmap_range = drm_gpuva_op_remap_to_unmap_range(op.remap)
    ret = await panthor_vm_unmap_pages(vm, unmap_start, unmap_range)
    if ret:
        return ret

    if op.remap.prev:
        prev_vma = panthor_vm_op_ctx_get_vma(op_ctx)
        panthor_vma_init(prev_vma, unmap_vma.flags)

    if op.remap.next:
        next_vma = panthor_vm_op_ctx_get_vma(op_ctx)
        panthor_vma_init(next_vma, unmap_vma.flags)

    await drm_gpuva_remap(
        prev_vma.base if prev_vma else None,
        next_vma.base if next_vma else None,
        op.remap,
    )

    if prev_vma:
        # panthor_vma_link() transfers the vm_bo ownership to
        # the VMA object. Since the vm_bo we're passing is still
        # owned by the old mapping which will be released when this
        # mapping is destroyed, we need to grab a ref here.
        assert op.remap.unmap.va.vm_bo is not None
        await panthor_vma_link(vm, prev_vma, await drm_gpuvm_bo_get(op.remap.unmap.va.vm_bo))

    if next_vma:
        assert op.remap.unmap.va.vm_bo is not None
        await panthor_vma_link(vm, next_vma, await drm_gpuvm_bo_get(op.remap.unmap.va.vm_bo))

    await panthor_vma_unlink(vm, unmap_vma)
    return 0


async def panthor_gpuva_sm_step_unmap(op: DrmGpuvaOp, priv: Any) -> int:
    """``panthor_gpuva_sm_step_unmap()``."""
    unmap_vma = op.unmap.va
    assert isinstance(unmap_vma, PanthorVma)
    vm: PanthorVm = priv

    ret = await panthor_vm_unmap_pages(vm, unmap_vma.base.va.addr, unmap_vma.base.va.range)
    if drm_WARN_ON(vm.ptdev.base, ret):
        return ret

    await drm_gpuva_unmap(op.unmap)
    await panthor_vma_unlink(vm, unmap_vma)
    return 0


async def _vm_free_hook(gpuvm: DrmGpuvm) -> None:
    await panthor_vm_free(gpuvm)


async def _sm_step_map_hook(op: DrmGpuvaOp, priv: Any) -> int:
    return await panthor_gpuva_sm_step_map(op, priv)


async def _sm_step_remap_hook(op: DrmGpuvaOp, priv: Any) -> int:
    return await panthor_gpuva_sm_step_remap(op, priv)


async def _sm_step_unmap_hook(op: DrmGpuvaOp, priv: Any) -> int:
    return await panthor_gpuva_sm_step_unmap(op, priv)


# The hooks look the functions up at call time, so a catalogue injection of a
# step applies to VMs created before it was installed.
panthor_gpuvm_ops: Final = DrmGpuvmOps(
    vm_free=_vm_free_hook,
    sm_step_map=_sm_step_map_hook,
    sm_step_remap=_sm_step_remap_hook,
    sm_step_unmap=_sm_step_unmap_hook,
)


def panthor_vm_resv(vm: PanthorVm) -> DmaResv:
    """``panthor_vm_resv()`` - Get the dma_resv object attached to a VM."""
    return drm_gpuvm_resv(vm.base)


def panthor_vm_root_gem(vm: PanthorVm | None) -> DrmGemObject | None:
    """``panthor_vm_root_gem()``."""
    if not vm:
        return None

    return vm.base.r_obj


# ---------------------------------------------------------------------- VM_BIND


async def panthor_vm_exec_op(
    vm: PanthorVm, op: PanthorVmOpCtx, flag_vm_unusable_on_failure: bool
) -> int:
    """``panthor_vm_exec_op()``."""
    op_type = op.flags & DRM_PANTHOR_VM_BIND_OP_TYPE_MASK

    if op_type == DRM_PANTHOR_VM_BIND_OP_TYPE_SYNC_ONLY:
        return 0

    await mutex_lock(vm.op_lock)
    vm.op_ctx = op
    if op_type == DRM_PANTHOR_VM_BIND_OP_TYPE_MAP:
        if vm.unusable:
            ret = -EINVAL
        else:
            assert op.map.vm_bo is not None
            ret = await drm_gpuvm_sm_map(
                vm.base, vm, op.va.addr, op.va.range, op.map.vm_bo.obj, op.map.bo_offset
            )
    elif op_type == DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP:
        ret = await drm_gpuvm_sm_unmap(vm.base, vm, op.va.addr, op.va.range)
    else:
        ret = -EINVAL

    if ret and flag_vm_unusable_on_failure:
        vm.unusable = True

    vm.op_ctx = None
    await mutex_unlock(vm.op_lock)

    return ret


async def panthor_vm_bind_run_job(sched_job: DrmSchedJob) -> DmaFence | ErrPtr | None:
    """``panthor_vm_bind_run_job()``."""
    assert isinstance(sched_job, PanthorVmBindJob)
    job = sched_job

    # Not only we report an error whose result is propagated to the
    # drm_sched finished fence, but we also flag the VM as unusable, because
    # a failure in the async VM_BIND results in an inconsistent state. VM needs
    # to be destroyed and recreated.
    cookie = dma_fence_begin_signalling()
    ret = await panthor_vm_exec_op(job.vm, job.ctx, True)
    dma_fence_end_signalling(cookie)

    return ERR_PTR(ret) if ret else None


async def panthor_vm_bind_job_release(kref: Kref) -> None:
    """``panthor_vm_bind_job_release()``."""
    job: PanthorVmBindJob = kref.container

    if job.base.s_fence:
        await drm_sched_job_cleanup(job.base)

    await panthor_vm_cleanup_op_ctx(job.ctx, job.vm)
    await panthor_vm_put(job.vm)
    kfree(job)


async def panthor_vm_bind_job_put(sched_job: DrmSchedJob | None) -> None:
    """``panthor_vm_bind_job_put()`` - Release a VM_BIND job reference."""
    job = sched_job

    if sched_job:
        assert isinstance(job, PanthorVmBindJob)
        await kref_put(job.refcount, panthor_vm_bind_job_release)


async def panthor_vm_bind_free_job(sched_job: DrmSchedJob) -> None:
    """``panthor_vm_bind_free_job()``."""
    assert isinstance(sched_job, PanthorVmBindJob)
    job = sched_job

    await drm_sched_job_cleanup(sched_job)

    # Do the heavy cleanups asynchronously, so we're out of the
    # dma-signaling path and can acquire dma-resv locks safely.
    assert _panthor_device.panthor_cleanup_wq is not None
    assert job.cleanup_op_ctx_work is not None
    await queue_work(_panthor_device.panthor_cleanup_wq, job.cleanup_op_ctx_work)


async def panthor_vm_bind_timedout_job(sched_job: DrmSchedJob) -> int:
    """``panthor_vm_bind_timedout_job()``."""
    WARN(1, "VM_BIND ops are synchronous for now, there should be no timeout!")
    return DRM_GPU_SCHED_STAT_NOMINAL


class _PanthorVmBindOps(DrmSchedBackendOps):
    """``panthor_vm_bind_ops`` (the methods look the functions up at call time)."""

    async def run_job(self, job: DrmSchedJob) -> DmaFence | ErrPtr | None:
        return await panthor_vm_bind_run_job(job)

    async def free_job(self, job: DrmSchedJob) -> None:
        await panthor_vm_bind_free_job(job)

    async def timedout_job(self, job: DrmSchedJob) -> int:
        return await panthor_vm_bind_timedout_job(job)


panthor_vm_bind_ops: Final = _PanthorVmBindOps()


async def panthor_vm_create(
    ptdev: PanthorDevice,
    for_mcu: bool,
    kernel_va_start: int,
    kernel_va_size: int,
    auto_kernel_va_start: int,
    auto_kernel_va_size: int,
) -> PanthorVm | ErrPtr:
    """``panthor_vm_create()`` - Create a VM.

    Return: A valid pointer on success, an ERR_PTR() otherwise.
    """
    assert ptdev.mmu is not None
    va_bits = GPU_MMU_FEATURES_VA_BITS(ptdev.gpu_info.mmu_features)
    pa_bits = GPU_MMU_FEATURES_PA_BITS(ptdev.gpu_info.mmu_features)
    full_va_range = 1 << va_bits

    vm = await kzalloc(PanthorVm, GFP_KERNEL)
    if not vm:
        return ERR_PTR(-ENOMEM)

    # We allocate a dummy GEM for the VM.
    dummy_gem = await drm_gpuvm_resv_object_alloc(ptdev.base)
    if not dummy_gem:
        ret = -ENOMEM
        kfree(vm)  # err_free_vm:
        return ERR_PTR(ret)

    vm.heaps.lock = Mutex("vm->heaps.lock", key="&vm->heaps.lock")  # mutex_init()
    vm.for_mcu = for_mcu
    vm.ptdev = ptdev
    vm.op_lock = Mutex("vm->op_lock", key="&vm->op_lock")  # mutex_init()

    if for_mcu:
        # CSF MCU is a cortex M7, and can only address 4G
        min_va = 0
        va_range = SZ_4G
    else:
        min_va = 0
        va_range = full_va_range

    vm.mm_lock = Mutex("vm->mm_lock", key="&vm->mm_lock")  # mutex_init()
    drm_mm_init(vm.mm, kernel_va_start, kernel_va_size)
    vm.kernel_auto_va.start = auto_kernel_va_start
    vm.kernel_auto_va.end = vm.kernel_auto_va.start + auto_kernel_va_size - 1

    INIT_LIST_HEAD(vm.node)
    INIT_LIST_HEAD(vm.as_.lru_node)
    vm.as_.id = -1
    await refcount_set(vm.as_.active_cnt, 0)

    pgtbl_cfg = IoPgtableCfg(
        pgsize_bitmap=SZ_4K | SZ_2M,
        ias=va_bits,
        oas=pa_bits,
        coherent_walk=ptdev.coherent,
        tlb=mmu_tlb_ops,
        iommu_dev=ptdev.base.dev,
        alloc=alloc_pt,
        free=free_pt,
    )

    pgtbl_ops = await alloc_io_pgtable_ops(ARM_64_LPAE_S1, pgtbl_cfg, vm)
    label = ""
    if not pgtbl_ops:
        ret = -EINVAL
        label = "err_mm_takedown"
    else:
        vm.pgtbl_ops = pgtbl_ops

        # Bind operations are synchronous for now, no timeout needed.
        ret = await drm_sched_init(
            vm.sched,
            panthor_vm_bind_ops,
            ptdev.mmu.vm.wq,
            1,
            1,
            0,
            MAX_SCHEDULE_TIMEOUT,
            None,
            None,
            "panthor-vm-bind",
            ptdev.base.dev,
        )
        if ret:
            label = "err_free_io_pgtable"

    if not label:
        sched = vm.sched
        ret = await drm_sched_entity_init(vm.entity, 0, [sched], 1, None)
        if ret:
            label = "err_sched_fini"

    if not label:
        mair = io_pgtable_ops_to_pgtable(vm.pgtbl_ops).cfg.arm_lpae_s1_cfg.mair
        vm.memattr = mair_to_memattr(mair, ptdev.coherent)

        await mutex_lock(ptdev.mmu.vm.lock)
        list_add_tail(vm.node, ptdev.mmu.vm.list)

        # If a reset is in progress, stop the scheduler.
        if ptdev.mmu.vm.reset_in_progress:
            await panthor_vm_stop(vm)
        await mutex_unlock(ptdev.mmu.vm.lock)

        # We intentionally leave the reserved range to zero, because we want kernel VMAs
        # to be handled the same way user VMAs are.
        await drm_gpuvm_init(
            vm.base,
            "panthor-MCU-VM" if for_mcu else "panthor-GPU-VM",
            DRM_GPUVM_RESV_PROTECTED,
            ptdev.base,
            dummy_gem,
            min_va,
            va_range,
            0,
            0,
            panthor_gpuvm_ops,
        )
        await drm_gem_object_put(dummy_gem)
        return vm

    if label == "err_sched_fini":
        # err_sched_fini:
        await drm_sched_fini(vm.sched)
        label = "err_free_io_pgtable"

    if label == "err_free_io_pgtable":
        # err_free_io_pgtable:
        free_io_pgtable_ops(vm.pgtbl_ops)

    # err_mm_takedown:
    drm_mm_takedown(vm.mm)
    await drm_gem_object_put(dummy_gem)

    # err_free_vm:
    kfree(vm)
    return ERR_PTR(ret)


async def panthor_vm_bind_prepare_op_ctx(
    file: DrmFile,
    vm: PanthorVm,
    op: drm_panthor_vm_bind_op,
    op_ctx: PanthorVmOpCtx,
) -> int:
    """``panthor_vm_bind_prepare_op_ctx()``."""
    vm_pgsz = panthor_vm_page_size(vm)

    # Aligned on page size.
    if not IS_ALIGNED(op.va | op.size, vm_pgsz):
        return -EINVAL

    op_type = op.flags & DRM_PANTHOR_VM_BIND_OP_TYPE_MASK
    if op_type == DRM_PANTHOR_VM_BIND_OP_TYPE_MAP:
        gem = await drm_gem_object_lookup(file, op.bo_handle)
        ret = await panthor_vm_prepare_map_op_ctx(
            op_ctx,
            vm,
            to_panthor_bo(gem) if gem else None,
            op.bo_offset,
            op.size,
            op.va,
            op.flags,
        )
        await drm_gem_object_put(gem)
        return ret

    if op_type == DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP:
        if op.flags & ~DRM_PANTHOR_VM_BIND_OP_TYPE_MASK:
            return -EINVAL

        if op.bo_handle or op.bo_offset:
            return -EINVAL

        return await panthor_vm_prepare_unmap_op_ctx(op_ctx, vm, op.va, op.size)

    if op_type == DRM_PANTHOR_VM_BIND_OP_TYPE_SYNC_ONLY:
        if op.flags & ~DRM_PANTHOR_VM_BIND_OP_TYPE_MASK:
            return -EINVAL

        if op.bo_handle or op.bo_offset:
            return -EINVAL

        if op.va or op.size:
            return -EINVAL

        if not op.syncs.count:
            return -EINVAL

        panthor_vm_prepare_sync_only_op_ctx(op_ctx, vm)
        return 0

    return -EINVAL


async def panthor_vm_bind_job_cleanup_op_ctx_work(work: WorkStruct) -> None:
    """``panthor_vm_bind_job_cleanup_op_ctx_work()``."""
    job: PanthorVmBindJob = work.container

    await panthor_vm_bind_job_put(job.base)


async def _cleanup_op_ctx_work_fn(work: WorkStruct) -> None:
    # Looked up at call time, so a catalogue injection of the work applies.
    await panthor_vm_bind_job_cleanup_op_ctx_work(work)


async def panthor_vm_bind_job_create(
    file: DrmFile, vm: PanthorVm | None, op: drm_panthor_vm_bind_op
) -> DrmSchedJob | ErrPtr:
    """``panthor_vm_bind_job_create()`` - Create a VM_BIND job.

    Return: A valid pointer on success, an ERR_PTR() otherwise.
    """
    if not vm:
        return ERR_PTR(-EINVAL)

    await preempt()  # vm->destroyed and vm->unusable are read without a lock
    if vm.destroyed or vm.unusable:
        return ERR_PTR(-EINVAL)

    job = await kzalloc(PanthorVmBindJob, GFP_KERNEL)
    if not job:
        return ERR_PTR(-ENOMEM)

    ret = await panthor_vm_bind_prepare_op_ctx(file, vm, op, job.ctx)
    if ret:
        kfree(job)
        return ERR_PTR(ret)

    job.cleanup_op_ctx_work = INIT_WORK(_cleanup_op_ctx_work_fn, "&job->cleanup_op_ctx_work", job)
    await kref_init(job.refcount)
    job.vm = await panthor_vm_get(vm)  # type: ignore[assignment]

    ret = await drm_sched_job_init(job.base, vm.entity, 1, vm)
    if ret:
        # err_put_job:
        await panthor_vm_bind_job_put(job.base)
        return ERR_PTR(ret)

    return job.base


async def panthor_vm_bind_job_prepare_resvs(exec: DrmExec, sched_job: DrmSchedJob) -> int:
    """``panthor_vm_bind_job_prepare_resvs()`` - Prepare VM_BIND job dma_resvs.

    Locks and prepare the VM resv. If this is a map operation, locks and
    prepares the GEM resv.
    """
    assert isinstance(sched_job, PanthorVmBindJob)
    job = sched_job

    # Acquire the VM lock an reserve a slot for this VM bind job.
    ret = await drm_gpuvm_prepare_vm(job.vm.base, exec, 1)
    if ret:
        return ret

    if job.ctx.map.vm_bo:
        # Lock/prepare the GEM being mapped.
        assert job.ctx.map.vm_bo.obj is not None
        ret = await drm_exec_prepare_obj(exec, job.ctx.map.vm_bo.obj, 1)
        if ret:
            return ret

    return 0


async def panthor_vm_bind_job_update_resvs(exec: DrmExec, sched_job: DrmSchedJob) -> None:
    """``panthor_vm_bind_job_update_resvs()`` - Update the resv objects touched by a job."""
    assert isinstance(sched_job, PanthorVmBindJob)
    job = sched_job
    assert sched_job.s_fence is not None

    # Explicit sync => we just register our job finished fence as bookkeep.
    await drm_gpuvm_resv_add_fence(
        job.vm.base,
        exec,
        sched_job.s_fence.finished,
        DmaResvUsage.BOOKKEEP,
        DmaResvUsage.BOOKKEEP,
    )


async def panthor_vm_update_resvs(
    vm: PanthorVm,
    exec: DrmExec,
    fence: DmaFence,
    private_usage: DmaResvUsage,
    extobj_usage: DmaResvUsage,
) -> None:
    """``panthor_vm_update_resvs()``."""
    await drm_gpuvm_resv_add_fence(vm.base, exec, fence, private_usage, extobj_usage)


async def panthor_vm_bind_exec_sync_op(
    file: DrmFile, vm: PanthorVm, op: drm_panthor_vm_bind_op
) -> int:
    """``panthor_vm_bind_exec_sync_op()`` - Execute a VM_BIND operation synchronously."""
    op_ctx = PanthorVmOpCtx()

    # No sync objects allowed on synchronous operations.
    if op.syncs.count:
        return -EINVAL

    if not op.size:
        return 0

    ret = await panthor_vm_bind_prepare_op_ctx(file, vm, op, op_ctx)
    if ret:
        return ret

    ret = await panthor_vm_exec_op(vm, op_ctx, False)
    await panthor_vm_cleanup_op_ctx(op_ctx, vm)

    return ret


async def panthor_vm_map_bo_range(
    vm: PanthorVm, bo: PanthorGemObject, offset: int, size: int, va: int, flags: int
) -> int:
    """``panthor_vm_map_bo_range()`` - Map a GEM object range to a VM.

    Internal use only. For userspace requests, use
    panthor_vm_bind_exec_sync_op() instead.
    """
    op_ctx = PanthorVmOpCtx()

    ret = await panthor_vm_prepare_map_op_ctx(op_ctx, vm, bo, offset, size, va, flags)
    if ret:
        return ret

    ret = await panthor_vm_exec_op(vm, op_ctx, False)
    await panthor_vm_cleanup_op_ctx(op_ctx, vm)

    return ret


async def panthor_vm_unmap_range(vm: PanthorVm, va: int, size: int) -> int:
    """``panthor_vm_unmap_range()`` - Unmap a portion of the VA space.

    Internal use only. For userspace requests, use
    panthor_vm_bind_exec_sync_op() instead.
    """
    op_ctx = PanthorVmOpCtx()

    ret = await panthor_vm_prepare_unmap_op_ctx(op_ctx, vm, va, size)
    if ret:
        return ret

    ret = await panthor_vm_exec_op(vm, op_ctx, False)
    await panthor_vm_cleanup_op_ctx(op_ctx, vm)

    return ret


async def panthor_vm_prepare_mapped_bos_resvs(exec: DrmExec, vm: PanthorVm, slot_count: int) -> int:
    """``panthor_vm_prepare_mapped_bos_resvs()`` - Prepare resvs on VM BOs.

    GPU jobs assume all BOs bound to the VM at the time the job is submitted
    are available when the job is executed. In order to guarantee that, we
    need to reserve a slot on all BOs mapped to a VM and update this slot with
    the job fence after its submission.
    """
    # Acquire the VM lock and reserve a slot for this GPU job.
    ret = await drm_gpuvm_prepare_vm(vm.base, exec, slot_count)
    if ret:
        return ret

    return await drm_gpuvm_prepare_objects(vm.base, exec, slot_count)


# ---------------------------------------------------------------------- device lifetime


async def panthor_mmu_unplug(ptdev: PanthorDevice) -> None:
    """``panthor_mmu_unplug()`` - Unplug the MMU logic.

    No access to the MMU regs should be done after this function is called.
    We suspend the IRQ and disable all VMs to guarantee that.
    """
    assert ptdev.mmu is not None
    if await pm_runtime_active(ptdev.base.dev):  # !IS_ENABLED(CONFIG_PM) || ...
        await panthor_mmu_irq_suspend(ptdev.mmu.irq)

    await mutex_lock(ptdev.mmu.as_.slots_lock)
    for i in range(len(ptdev.mmu.as_.slots)):
        vm = ptdev.mmu.as_.slots[i].vm

        if vm:
            drm_WARN_ON(ptdev.base, await panthor_mmu_as_disable(ptdev, i))
            await panthor_vm_release_as_locked(vm)
    await mutex_unlock(ptdev.mmu.as_.slots_lock)


async def panthor_mmu_release_wq(ddev: DrmDevice, res: Any) -> None:
    """``panthor_mmu_release_wq()``."""
    await destroy_workqueue(res)


async def panthor_mmu_init(ptdev: PanthorDevice) -> int:
    """``panthor_mmu_init()`` - Initialize the MMU logic."""
    va_bits = GPU_MMU_FEATURES_VA_BITS(ptdev.gpu_info.mmu_features)

    mmu = await drmm_kzalloc(ptdev.base, PanthorMmu, GFP_KERNEL)
    if not mmu:
        return -ENOMEM

    mmu.as_.lru_list = ListHead("mmu->as.lru_list")  # INIT_LIST_HEAD

    ret = await drmm_mutex_init(ptdev.base, mmu.as_.slots_lock)
    if ret:
        return ret

    mmu.vm.list = ListHead("mmu->vm.list")  # INIT_LIST_HEAD
    ret = await drmm_mutex_init(ptdev.base, mmu.vm.lock)
    if ret:
        return ret

    ptdev.mmu = mmu

    irq = platform_get_irq_byname(ptdev, "mmu")
    if irq <= 0:
        return -ENODEV

    ret = await panthor_request_mmu_irq(ptdev, mmu.irq, irq, panthor_mmu_fault_mask(ptdev, ~0))
    if ret:
        return ret

    mmu.vm.wq = await alloc_workqueue("panthor-vm-bind", WQ_UNBOUND, 0)
    if not mmu.vm.wq:
        return -ENOMEM

    # On 32-bit kernels, the VA space is limited by the io_pgtable_ops abstraction,
    # which passes iova as an unsigned long. Patch the mmu_features to reflect this
    # limitation.
    if va_bits > BITS_PER_LONG:
        ptdev.gpu_info.mmu_features &= ~GENMASK(7, 0)
        ptdev.gpu_info.mmu_features |= BITS_PER_LONG

    return await drmm_add_action_or_reset(
        ptdev.base, panthor_mmu_release_wq, mmu.vm.wq, "panthor_mmu_release_wq"
    )


def platform_get_irq_byname(ptdev: PanthorDevice, name: str) -> int:
    """``platform_get_irq_byname(to_platform_device(ptdev->base.dev), name)``: -ENXIO if none."""
    desc = ptdev.irqs.get(name)
    return desc.irq if desc is not None else -6


# ---------------------------------------------------------------------- debugfs


async def show_vm_gpuvas(vm: PanthorVm, m: SeqFile) -> int:
    """``show_vm_gpuvas()``."""
    await mutex_lock(vm.op_lock)
    ret = drm_debugfs_gpuva_info(m, vm.base)
    await mutex_unlock(vm.op_lock)

    return ret


class DrmInfoList:
    """``struct drm_info_list``: a debugfs file of a DRM device."""

    __slots__ = ("data", "driver_features", "name", "show")

    def __init__(
        self,
        name: str,
        show: Callable[[SeqFile, Any], Any],
        driver_features: int,
        data: Any,
    ) -> None:
        self.name = name
        self.show = show
        self.driver_features = driver_features
        self.data = data


class DrmMinor:
    """``struct drm_minor`` as debugfs sees it."""

    def __init__(self, dev: PanthorDevice) -> None:
        self.dev = dev
        self.debugfs_root = "dri/0"
        self.debugfs_files: dict[str, DrmInfoNode] = {}


class DrmInfoNode:
    """``struct drm_info_node``: ``m->private`` of a DRM debugfs file."""

    __slots__ = ("info_ent", "minor")

    def __init__(self, minor: DrmMinor, info_ent: DrmInfoList) -> None:
        self.minor = minor
        self.info_ent = info_ent


async def show_each_vm(m: SeqFile, arg: Any) -> int:
    """``show_each_vm()``."""
    node: DrmInfoNode = m.private  # type: ignore[assignment]
    ddev = node.minor.dev
    ptdev = ddev  # container_of(ddev, struct panthor_device, base)
    show = node.info_ent.data
    ret = 0
    assert ptdev.mmu is not None

    await mutex_lock(ptdev.mmu.vm.lock)
    for vm in list_for_each_entry(ptdev.mmu.vm.list):
        ret = await show(vm, m)
        if ret < 0:
            break

        seq_puts(m, "\n")
    await mutex_unlock(ptdev.mmu.vm.lock)

    return ret


DRIVER_GEM_GPUVA: Final = 1 << 8

# DRM_DEBUGFS_GPUVA_INFO(show_each_vm, show_vm_gpuvas)
panthor_mmu_debugfs_list: Final = [
    DrmInfoList("gpuvas", show_each_vm, DRIVER_GEM_GPUVA, show_vm_gpuvas),
]


def drm_debugfs_create_files(
    files: list[DrmInfoList], count: int, root: str, minor: DrmMinor
) -> None:
    """``drm_debugfs_create_files()``: the files appear under the minor's debugfs root."""
    for ent in files[:count]:
        minor.debugfs_files[ent.name] = DrmInfoNode(minor, ent)


def panthor_mmu_debugfs_init(minor: DrmMinor) -> None:
    """``panthor_mmu_debugfs_init()`` - Initialize MMU debugfs entries."""
    drm_debugfs_create_files(
        panthor_mmu_debugfs_list, len(panthor_mmu_debugfs_list), minor.debugfs_root, minor
    )


async def drm_debugfs_read(minor: DrmMinor, name: str) -> str:
    """Model-only: ``cat /sys/kernel/debug/dri/0/<name>``."""
    node = minor.debugfs_files[name]
    m = SeqFile(node)
    await node.info_ent.show(m, None)
    return m.getvalue()


# ---------------------------------------------------------------------- pt_cache


async def panthor_mmu_pt_cache_init() -> int:
    """``panthor_mmu_pt_cache_init()`` - Initialize the page table cache."""
    global pt_cache
    from .physmem import physmem

    pt_cache = await kmem_cache_create(
        "panthor-mmu-pt", SZ_4K, SZ_4K, 0, None, backing=physmem().slab_backing()
    )
    if not pt_cache:
        return -ENOMEM

    return 0


def panthor_mmu_pt_cache_fini() -> None:
    """``panthor_mmu_pt_cache_fini()`` - Destroy the page table cache."""
    kmem_cache_destroy(pt_cache)


# Callers of functions defined further up the driver stack (imported last:
# they import this module).
from .panthor_heap import (  # noqa: E402
    panthor_heap_pool_create,
    panthor_heap_pool_destroy,
    panthor_heap_pool_get,
)
from .panthor_sched import panthor_sched_report_mmu_fault  # noqa: E402
