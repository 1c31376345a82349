"""panthor_mmu.c, VM lifecycle, pools, IRQ, reset, suspend and debugfs:
panthor_vm_create_get_user_va_range .. panthor_vm_get_heap_pool, mair_to_memattr,
panthor_vm_create, panthor_mmu_unplug .. panthor_mmu_pt_cache_fini.
"""

from __future__ import annotations

from typing import Any

import pytest

from panthor_testbed.gpuvm import SeqFile, drm_debugfs_gpuva_info
from panthor_testbed.mmu import panthor_mmu
from panthor_testbed.mmu import regs as R
from panthor_testbed.mmu.hw.gpu_access import GPU_READ, GpuFault
from panthor_testbed.mmu.panthor_device import PanthorDevice, PanthorFile
from panthor_testbed.mmu.panthor_drm import (
    DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
    drm_panthor_vm_bind_op,
    drm_panthor_vm_create,
)
from panthor_testbed.mmu.panthor_heap import (
    PanthorHeapPool,
    panthor_heap_pool_destroy,
    panthor_heap_pool_put,
)
from panthor_testbed.mmu.panthor_mmu import (
    DrmMinor,
    PanthorVm,
    PanthorVmOpCtx,
    access_type_name,
    drm_debugfs_read,
    mair_to_memattr,
    mmu_tlb_flush_all,
    mmu_tlb_flush_walk,
    panthor_mmu_debugfs_init,
    panthor_mmu_init,
    panthor_mmu_post_reset,
    panthor_mmu_pre_reset,
    panthor_mmu_pt_cache_fini,
    panthor_mmu_pt_cache_init,
    panthor_mmu_resume,
    panthor_mmu_suspend,
    panthor_mmu_unplug,
    panthor_vm_active,
    panthor_vm_cleanup_op_ctx,
    panthor_vm_create,
    panthor_vm_create_check_args,
    panthor_vm_create_get_user_va_range,
    panthor_vm_get,
    panthor_vm_get_heap_pool,
    panthor_vm_idle,
    panthor_vm_map_bo_range,
    panthor_vm_pool_create,
    panthor_vm_pool_create_vm,
    panthor_vm_pool_destroy,
    panthor_vm_pool_destroy_vm,
    panthor_vm_pool_get_vm,
    panthor_vm_prepare_map_op_ctx,
    panthor_vm_put,
    panthor_vm_unmap_range,
    show_each_vm,
    show_vm_gpuvas,
)
from panthor_testbed.sched import (
    IS_ERR,
    PTR_ERR,
    Kernel,
    KernelConfig,
    current,
    dma_fence_get_status,
    dma_fence_is_signaled,
    dma_fence_put,
    dma_fence_wait,
    drm_gem_object_put,
    is_freed,
    udelay,
)
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.deferred.workqueue import WQ_UNBOUND
from panthor_testbed.sched.drm.drm_drv import RPM_SUSPENDED, drm_dev_unplug
from panthor_testbed.sched.drm.drm_file import DrmFile
from panthor_testbed.sched.errno import EBUSY, EINVAL, ENODEV, ENOENT
from panthor_testbed.sched.locking.refcount import kref_init
from panthor_testbed.sched.mm.gfp import GFP_KERNEL
from panthor_testbed.sched.mm.memory import kzalloc

from .driver_fixture import (
    USER_VA,
    RegLog,
    assert_clean,
    assert_warns,
    bring_up,
    new_bo,
    run_dev,
    tear_down,
    user_vm,
    vm_bind_async,
)

NO_WARN = KernelConfig(warn_fatal=False)
SZ_4K = 0x1000
SZ_256M = 0x1000_0000
SZ_4G = 1 << 32
VA = 0x1000_0000
P = SZ_4K


class SchedStub:
    """Records panthor_sched_report_mmu_fault() calls (this device has no scheduler)."""

    def __init__(self) -> None:
        self.ticks: list[int] = []

    async def report(self, ptdev: PanthorDevice) -> None:
        self.ticks.append(0)


def as_disable_seq(as_nr: int) -> list[tuple[str, int]]:
    return [
        (f"AS_LOCKADDR_LO({as_nr})", 63),
        (f"AS_LOCKADDR_HI({as_nr})", 0),
        (f"AS_COMMAND({as_nr})", R.AS_COMMAND_LOCK),
        (f"AS_COMMAND({as_nr})", R.AS_COMMAND_FLUSH_MEM),
        (f"AS_TRANSTAB_LO({as_nr})", 0),
        (f"AS_TRANSTAB_HI({as_nr})", 0),
        (f"AS_MEMATTR_LO({as_nr})", 0),
        (f"AS_MEMATTR_HI({as_nr})", 0),
        (f"AS_TRANSCFG_LO({as_nr})", R.AS_TRANSCFG_ADRMODE_UNMAPPED),
        (f"AS_TRANSCFG_HI({as_nr})", 0),
        (f"AS_COMMAND({as_nr})", R.AS_COMMAND_UPDATE),
    ]


# ---------------------------------------------------------------------- VA range arguments

# (va_bits, task_size, user_va_range, flags) -> (ret, kernel_va_start, kernel_va_range)
CHECK_ARGS = [
    (48, 1 << 48, 0, 0, (0, 1 << 47, 1 << 47)),  # GPU VA >= task: half each
    (48, 1 << 39, 0, 0, (0, 1 << 47, 1 << 47)),  # task smaller: user = task size
    (48, 1 << 48, 1 << 40, 0, (0, 1 << 47, 1 << 47)),  # user given: kernel rounded down
    (48, 1 << 48, (1 << 48) - SZ_256M, 0, (0, (1 << 48) - SZ_256M, SZ_256M)),  # the maximum
    (48, 1 << 48, (1 << 48) - SZ_256M + SZ_4K, 0, (-EINVAL, 0, 0)),  # leaves < 256M
    (48, 1 << 48, 3 << 45, 0, (0, 1 << 47, 1 << 47)),  # 5 * 2^45 left, rounded to 2^47
    (48, 1 << 48, 0, 1, (-EINVAL, 0, 0)),  # no flags defined
    (40, 1 << 48, 0, 0, (0, 1 << 39, 1 << 39)),
    (33, 1 << 48, 0, 0, (0, SZ_4G, SZ_4G)),  # > 4G: half
    (32, 1 << 48, 0, 0, (0, SZ_4G - SZ_256M, SZ_256M)),  # <= 4G: kernel as small as allowed
    (28, 1 << 48, 0, 0, (-EINVAL, 0, 0)),  # 256M: nothing left for the user
    (27, 1 << 48, 0, 0, (-EINVAL, 0, 0)),  # < 256M: no room for the kernel
]


def test_vm_create_check_args_and_get_user_va_range_follow_the_seed() -> None:
    got: list[tuple[int, int, int]] = []
    user: list[int] = []

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        saved = ptdev.gpu_info.mmu_features
        for va_bits, task, uva, flags, _ in CHECK_ARGS:
            current().ctx["task_size"] = task
            ptdev.gpu_info.mmu_features = va_bits | (40 << 8)
            args = drm_panthor_vm_create(flags=flags, user_va_range=uva)
            got.append(panthor_vm_create_check_args(ptdev, args))
            user.append(panthor_vm_create_get_user_va_range(args, 1 << va_bits))
        del current().ctx["task_size"]
        ptdev.gpu_info.mmu_features = saved

    assert_clean(run_dev(body))
    assert got == [want for *_, want in CHECK_ARGS]
    # get_user_va_range alone: 0 below 256M, the clamp to full - 256M
    assert user[10:] == [0, 0]
    assert user[4] == (1 << 48) - SZ_256M


# ---------------------------------------------------------------------- VM pools


def test_pool_create_vm_hands_out_ids_1_to_32_then_ebusy() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        pfile = PanthorFile(ptdev)
        assert await panthor_vm_pool_create(pfile) == 0
        assert pfile.vms is not None
        ids = []
        args = drm_panthor_vm_create()
        for _ in range(33):
            args = drm_panthor_vm_create()
            ids.append(await panthor_vm_pool_create_vm(ptdev, pfile.vms, args))
        out["ids"] = ids
        out["user_va_range"] = args.user_va_range
        ok = drm_panthor_vm_create()
        await panthor_vm_pool_create_vm(ptdev, pfile.vms, ok)  # still full
        out["args_set"] = drm_panthor_vm_create()
        first = drm_panthor_vm_create()
        pfile2 = PanthorFile(ptdev)
        assert await panthor_vm_pool_create(pfile2) == 0
        assert pfile2.vms is not None
        await panthor_vm_pool_create_vm(ptdev, pfile2.vms, first)
        out["set"] = first.user_va_range
        out["bad"] = await panthor_vm_pool_create_vm(
            ptdev, pfile2.vms, drm_panthor_vm_create(flags=1)
        )
        assert ptdev.mmu is not None
        out["vms"] = len(ptdev.mmu.vm.list)
        await panthor_vm_pool_destroy(pfile)
        await panthor_vm_pool_destroy(pfile2)
        out["after"] = len(ptdev.mmu.vm.list)

    assert_clean(run_dev(body))
    assert out["ids"] == [*range(1, 33), -EBUSY]
    # user_va_range is set to the kernel VA start on success only
    assert out["user_va_range"] == 0 and out["set"] == 1 << 47
    assert out["bad"] == -EINVAL
    assert out["vms"] == 33  # the 33rd VM was put (freed) when xa_alloc failed
    assert out["after"] == 0


def test_pool_get_vm_takes_a_reference_and_destroy_vm_kills_the_mappings() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        pfile = PanthorFile(ptdev)
        assert await panthor_vm_pool_create(pfile) == 0
        pool = pfile.vms
        assert pool is not None
        vid = await panthor_vm_pool_create_vm(ptdev, pool, drm_panthor_vm_create())
        vm = await panthor_vm_pool_get_vm(pool, vid)
        assert vm is not None
        out["refs"] = vm.kref.refcount.refs
        out["unknown"] = await panthor_vm_pool_get_vm(pool, 7)
        bo = await new_bo(2 * P)
        assert await panthor_vm_map_bo_range(vm, bo, 0, 2 * P, VA, 0) == 0
        heap = await panthor_vm_get_heap_pool(vm, True)
        assert isinstance(heap, PanthorHeapPool)
        await panthor_heap_pool_put(heap)
        out["destroy"] = await panthor_vm_pool_destroy_vm(pool, vid)
        out["state"] = (vm.destroyed, len(vm.rb), vm.heaps.pool, bo.pages_pin_count)
        out["heap_freed"] = is_freed(heap)
        out["again"] = await panthor_vm_pool_destroy_vm(pool, vid)
        out["gone"] = await panthor_vm_pool_get_vm(pool, vid)
        out["alive"] = not is_freed(vm)  # our reference keeps it
        await panthor_vm_put(vm)
        out["freed"] = is_freed(vm)
        await panthor_vm_pool_destroy(pfile)
        await drm_gem_object_put(bo)

    assert_clean(run_dev(body))
    assert out == {
        "refs": 2,
        "unknown": None,
        "destroy": 0,
        "state": (True, 0, None, 0),
        "heap_freed": True,
        "again": -EINVAL,
        "gone": None,
        "alive": True,
        "freed": True,
    }


def test_pool_destroy_destroys_every_vm_and_frees_the_pool() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        pfile = PanthorFile(ptdev)
        await panthor_vm_pool_destroy(pfile)  # no pool: nothing to do
        assert await panthor_vm_pool_create(pfile) == 0
        pool = pfile.vms
        assert pool is not None
        for _ in range(3):
            await panthor_vm_pool_create_vm(ptdev, pool, drm_panthor_vm_create())
        vms = [v for _, v in sorted(pool.xa.entries.items())]
        await panthor_vm_pool_destroy(pfile)
        out["freed"] = [is_freed(v) for v in vms]
        out["pool"] = is_freed(pool)

    assert_clean(run_dev(body))
    assert out == {"freed": [True, True, True], "pool": True}


# ---------------------------------------------------------------------- VM create/free/get/put


def test_vm_create_sets_up_the_vm() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        assert ptdev.mmu is not None
        vm = await panthor_vm_create(ptdev, False, USER_VA, USER_VA, USER_VA + SZ_4G, SZ_4G)
        mcu = await panthor_vm_create(ptdev, True, 0, SZ_4G, 0, SZ_4G)
        assert isinstance(vm, PanthorVm) and isinstance(mcu, PanthorVm)
        out["user"] = (vm.name, vm.mm_start, vm.mm_range, vm.for_mcu)
        out["mcu"] = (mcu.name, mcu.mm_start, mcu.mm_range, mcu.for_mcu)
        out["auto"] = (vm.kernel_auto_va.start, vm.kernel_auto_va.end)
        out["as"] = (vm.as_.id, vm.as_.active_cnt.refs)
        out["list"] = [v is vm for v in ptdev.mmu.vm.list]
        out["memattr"] = vm.memattr
        out["mair"] = vm.pgtbl_ops.cfg.arm_lpae_s1_cfg.mair
        out["root"] = vm.root_page_table is vm.pgtbl_ops.pgd and vm.root_page_table is not None
        out["sched"] = (vm.sched.name, vm.sched.credit_limit, vm.sched.submit_wq is ptdev.mmu.vm.wq)
        out["pgsize"] = vm.pgtbl_ops.cfg.pgsize_bitmap
        await panthor_vm_put(vm)
        await panthor_vm_put(mcu)

    assert_clean(run_dev(body))
    assert out["user"] == ("panthor-GPU-VM", 0, 1 << 48, False)
    assert out["mcu"] == ("panthor-MCU-VM", 0, SZ_4G, True)
    assert out["auto"] == (USER_VA + SZ_4G, USER_VA + 2 * SZ_4G - 1)
    assert out["as"] == (-1, 0)
    assert out["list"] == [True, False]
    assert out["memattr"] == mair_to_memattr(out["mair"], False)  # type: ignore[arg-type]
    assert out["root"]
    assert out["sched"] == ("panthor-vm-bind", 1, True)
    assert out["pgsize"] == SZ_4K | 0x200000


def test_vm_is_freed_only_when_the_last_vm_va_and_vm_bo_reference_goes() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        assert ptdev.mmu is not None
        vm = await user_vm(ptdev)
        # panthor_vm_get/put
        assert await panthor_vm_get(vm) is vm
        assert await panthor_vm_get(None) is None
        await panthor_vm_put(None)
        await panthor_vm_put(vm)
        out["get_put"] = is_freed(vm)
        # A mapping holds the VM.
        bo = await new_bo(P)
        assert await panthor_vm_map_bo_range(vm, bo, 0, P, VA, 0) == 0
        await panthor_vm_put(vm)
        out["by_va"] = (is_freed(vm), len(ptdev.mmu.vm.list))
        assert await panthor_vm_unmap_range(vm, VA, P) == 0
        out["unmapped"] = is_freed(vm)
        # A vm_bo (in an op ctx) holds the VM.
        vm2 = await user_vm(ptdev)
        ctx = PanthorVmOpCtx()
        assert await panthor_vm_prepare_map_op_ctx(ctx, vm2, bo, 0, P, VA, 0) == 0
        await panthor_vm_put(vm2)
        out["by_vm_bo"] = is_freed(vm2)
        await panthor_vm_cleanup_op_ctx(ctx, vm2)
        out["cleaned"] = (is_freed(vm2), len(ptdev.mmu.vm.list))
        await drm_gem_object_put(bo)

    assert_clean(run_dev(body))
    assert out == {
        "get_put": False,
        "by_va": (False, 1),
        "unmapped": True,
        "by_vm_bo": False,
        "cleaned": (True, 0),
    }


def test_vm_free_disables_and_releases_its_slot() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mmu = ptdev.mmu
        assert mmu is not None
        vm = await user_vm(ptdev)
        assert await panthor_vm_active(vm) == 0
        await panthor_vm_idle(vm)  # bound, on the LRU
        log = RegLog(k)
        await panthor_vm_put(vm)
        out["writes"] = log.writes()
        out["slot"] = (mmu.as_.slots[1].vm, mmu.as_.alloc_mask.v, len(mmu.as_.lru_list))

    assert_clean(run_dev(body))
    assert out["writes"] == as_disable_seq(1)
    assert out["slot"] == (None, 0, 0)


def test_vm_free_on_an_unplugged_device_skips_the_hardware_but_frees_the_slot() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mmu = ptdev.mmu
        assert mmu is not None
        vm = await user_vm(ptdev)
        assert await panthor_vm_active(vm) == 0
        await panthor_vm_idle(vm)
        await drm_dev_unplug(ptdev.base)
        log = RegLog(k)
        await panthor_vm_put(vm)
        out["writes"] = log.writes()
        out["slot"] = (mmu.as_.slots[1].vm, mmu.as_.alloc_mask.v)

    assert_clean(run_dev(body))
    assert out == {"writes": [], "slot": (None, 0)}


def test_vm_free_warns_about_a_heap_pool_still_attached_and_destroys_it() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        # A pool without its contexts BO (which would hold the VM alive): the
        # state panthor_vm_free()'s WARN guards against.
        pool = await kzalloc(PanthorHeapPool, GFP_KERNEL)
        assert pool is not None
        await kref_init(pool.refcount)
        pool.vm, pool.ptdev = vm, ptdev
        vm.heaps.pool = pool
        await panthor_vm_put(vm)  # no panthor_vm_destroy(): the pool is still there
        out["pool_freed"] = is_freed(pool)

    k = run_dev(body, NO_WARN)
    assert out == {"pool_freed": True}
    assert_warns(k, "vm.heaps.pool")


def test_vm_created_during_a_reset_is_stopped_and_vm_free_restarts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[bool] = []
    real = panthor_mmu.panthor_vm_start

    async def spy(vm: PanthorVm) -> None:
        started.append(vm.sched.pause_submit)
        await real(vm)

    monkeypatch.setattr(panthor_mmu, "panthor_vm_start", spy)
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        assert ptdev.mmu is not None
        await panthor_mmu_pre_reset(ptdev)
        vm = await user_vm(ptdev)
        out["stopped"] = vm.sched.pause_submit
        await panthor_vm_put(vm)  # freed while the reset is in progress
        out["reset"] = ptdev.mmu.vm.reset_in_progress
        await panthor_mmu_post_reset(ptdev)

    assert_clean(run_dev(body))
    assert out == {"stopped": True, "reset": True}
    assert started == [True]  # panthor_vm_free() restarted the stopped scheduler


# ---------------------------------------------------------------------- heap pool


def test_get_heap_pool_creates_on_demand_and_refuses_on_a_destroyed_vm() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        none = await panthor_vm_get_heap_pool(vm, False)
        out["none"] = PTR_ERR(none) if IS_ERR(none) else none
        pool = await panthor_vm_get_heap_pool(vm, True)
        assert isinstance(pool, PanthorHeapPool)
        out["created"] = (vm.heaps.pool is pool, pool.refcount.refcount.refs, pool.vm is vm)
        again = await panthor_vm_get_heap_pool(vm, False)
        out["again"] = (again is pool, pool.refcount.refcount.refs)
        await panthor_heap_pool_put(again)
        await panthor_heap_pool_put(pool)
        vm2 = await user_vm(ptdev)
        vm2.destroyed = True
        refused = await panthor_vm_get_heap_pool(vm2, True)
        out["destroyed"] = PTR_ERR(refused) if IS_ERR(refused) else refused
        vm2.destroyed = False
        await panthor_vm_put(vm2)
        # What panthor_vm_destroy() does to the pool: destroy it (its contexts
        # BO holds a VM reference) and drop the VM's pool reference.
        vm.heaps.pool = None
        await panthor_heap_pool_destroy(pool)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == {
        "none": -ENOENT,
        "created": (True, 2, True),
        "again": (True, 3),
        "destroyed": -EINVAL,
    }


# ---------------------------------------------------------------------- mair_to_memattr

# AS_MEMATTR bytes: NC = INNER_OUTER_NC | SH_MIDGARD_INNER | ALLOC_EXPL(0, 0) = 0x4C;
# WB = INNER_OUTER_WB (0x80) | ALLOC_EXPL(w = inner & 1, r = inner & 2) (0x0C | w | r << 1),
# plus SH_CPU_INNER (0x10) on a coherent device.
MAIR_CASES = [
    # io-pgtable's MAIR: NC 0x44, WBRWA 0xff, DEVICE 0x04, INC_OWBRWA 0xf4
    (0x00000000F404FF44, False, 0x4C4C4C4C8C4C8F4C),
    (0x00000000F404FF44, True, 0x4C4C4C4C9C4C9F4C),
    # outer WT (0xB: bit 2 clear) -> NC; outer without RW-alloc (0x4) -> NC; inner 0x5/0x6
    (0x00000000BB44F6F5, False, 0x4C4C4C4C4C4C8E8D),
    (0x7F7F7F7F7F7F7F7F, False, 0x8F8F8F8F8F8F8F8F),
    (0x0, True, 0x4C4C4C4C4C4C4C4C),
]


@pytest.mark.parametrize(("mair", "coherent", "memattr"), MAIR_CASES)
def test_mair_to_memattr_hand_computed(mair: int, coherent: bool, memattr: int) -> None:
    assert mair_to_memattr(mair, coherent) == memattr


def test_vm_memattr_is_io_pgtable_mair_translated_and_programmed_on_enable() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        log = RegLog(k)
        assert await panthor_vm_active(vm) == 0
        out["mair"] = vm.pgtbl_ops.cfg.arm_lpae_s1_cfg.mair
        out["regs"] = log.writes("AS_MEMATTR")
        await panthor_vm_idle(vm)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body, coherent=True))
    assert out["mair"] == 0xF404FF44
    assert out["regs"] == [("AS_MEMATTR_LO(1)", 0x9C4C9F4C), ("AS_MEMATTR_HI(1)", 0x4C4C4C4C)]


# ---------------------------------------------------------------------- the fault IRQ


def test_access_type_name() -> None:
    names = [access_type_name(None, t << 8) for t in range(4)]  # type: ignore[arg-type]
    assert names == ["ATOMIC", "EXECUTE", "READ", "WRITE"]


def test_tlb_ops_are_empty_and_write_nothing() -> None:
    """The real TLB flush happens in panthor_vm_flush_range(); io-pgtable's callbacks are
    no-ops (a register write from them would need the AS and slots_lock)."""

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        log = RegLog(k)
        mmu_tlb_flush_all(None)
        mmu_tlb_flush_walk(0, SZ_4K, SZ_4K, None)
        assert log.writes() == []

    assert_clean(run_dev(body))


def test_gpu_access_to_an_unmapped_va_goes_through_the_mmu_irq_handler() -> None:
    """A real GPU read of an unmapped VA: the fault is latched, the IRQ thread runs
    panthor_mmu_irq_handler(): faulty_mask, irq.mask and MMU_INT_MASK narrowed, the VM
    flagged, the AS disabled, the scheduler told."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mmu = ptdev.mmu
        assert mmu is not None
        sched = SchedStub()
        import panthor_testbed.mmu.panthor_mmu as port

        saved = port.panthor_sched_report_mmu_fault
        port.panthor_sched_report_mmu_fault = sched.report
        vm = await user_vm(ptdev)
        assert await panthor_vm_active(vm) == 0
        log = RegLog(k)
        fault = await ptdev.iomem.access(1, VA + 0x123, GPU_READ, source_id=7)
        out["fault"] = isinstance(fault, GpuFault)
        await udelay(100)
        out["state"] = (mmu.as_.faulty_mask, mmu.irq.mask, vm.unhandled_fault, sched.ticks)
        w = log.writes()
        out["writes"] = w
        out["disabled"] = not ptdev.iomem.as_[1].enabled
        await panthor_vm_idle(vm)
        await panthor_vm_put(vm)
        port.panthor_sched_report_mmu_fault = saved

    assert_clean(run_dev(body))
    assert out["fault"] and out["disabled"]
    assert out["state"] == (0b10, 0xFFFD, True, [0])
    writes = out["writes"]
    assert isinstance(writes, list)
    # the threaded handler clears the status, the handler masks AS1 and disables it,
    # the threaded handler restores the (narrowed) mask
    assert writes[0] == ("MMU_INT_MASK", 0)  # hard handler
    assert writes[1] == ("MMU_INT_CLEAR", 0b10)
    assert writes[2] == ("MMU_INT_MASK", 0xFFFD)
    assert writes[3:-1] == as_disable_seq(1)
    assert writes[-1] == ("MMU_INT_MASK", 0xFFFD)


def test_fault_handler_handles_every_as_in_the_status_and_one_without_a_vm() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mmu = ptdev.mmu
        assert mmu is not None
        vm = await user_vm(ptdev)
        assert await panthor_vm_active(vm) == 0
        # Mask the line so both faults are handled in one threaded run.
        await mmu.irq.suspend()
        ptdev.iomem.latch_fault(1, 0x1000, 0xC3 | (3 << 8))
        ptdev.iomem.latch_fault(4, 0x2000, 0xC1 | (1 << 8) | (1 << 10))  # no VM on AS4
        await mmu.irq.resume(0xFFFF)  # resume clears latched interrupts...
        ptdev.iomem.latch_fault(1, 0x1000, 0xC3 | (3 << 8))
        ptdev.iomem.latch_fault(4, 0x2000, 0xC1 | (1 << 8) | (1 << 10))
        await udelay(200)
        out["faulty"] = mmu.as_.faulty_mask
        out["mask"] = (mmu.irq.mask, ptdev.iomem.mmu_mask)
        out["vm"] = vm.unhandled_fault
        await panthor_vm_idle(vm)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == {"faulty": 0b10010, "mask": (0xFFED, 0xFFED), "vm": True}


# ---------------------------------------------------------------------- suspend / resume


def test_suspend_disables_every_bound_slot_and_the_irq_resume_clears_the_masks() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mmu = ptdev.mmu
        assert mmu is not None
        a = await user_vm(ptdev)
        b = await user_vm(ptdev)
        for vm in (a, b):
            assert await panthor_vm_active(vm) == 0
        await panthor_vm_idle(b)
        mmu.as_.faulty_mask = 0b1000  # stale, cleared by resume
        log = RegLog(k)
        await panthor_mmu_suspend(ptdev)
        out["writes"] = log.writes()
        out["released"] = (a.as_.id, b.as_.id, a.as_.active_cnt.refs, mmu.as_.alloc_mask.v)
        out["irq"] = (mmu.irq.mask, mmu.irq.suspended.v, ptdev.iomem.mmu_mask)
        ptdev.iomem.latch_fault(3, 0, 0xC1)  # suspended: not delivered
        await udelay(50)
        out["unhandled"] = mmu.as_.faulty_mask
        log.mark()
        await panthor_mmu_resume(ptdev)
        out["resume"] = log.writes()
        out["after"] = (
            mmu.as_.faulty_mask,
            mmu.as_.alloc_mask.v,
            mmu.irq.mask,
            mmu.irq.suspended.v,
        )
        await panthor_vm_put(a)
        await panthor_vm_put(b)

    assert_clean(run_dev(body))
    assert out["writes"] == [*as_disable_seq(1), *as_disable_seq(2), ("MMU_INT_MASK", 0)]
    assert out["released"] == (-1, -1, 0, 0)
    assert out["irq"] == (0, 1, 0)
    assert out["unhandled"] == 0b1000
    assert out["resume"] == [("MMU_INT_CLEAR", 0xFFFF), ("MMU_INT_MASK", 0xFFFF)]
    assert out["after"] == (0, 0, 0xFFFF, 0)


# ---------------------------------------------------------------------- pre / post reset


def test_pre_reset_stops_the_vm_bind_queues_and_post_reset_restarts_them() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mmu = ptdev.mmu
        assert mmu is not None
        vm = await user_vm(ptdev)
        other = await user_vm(ptdev)
        assert await panthor_vm_active(vm) == 0
        mmu.as_.faulty_mask = 0b100
        log = RegLog(k)
        await panthor_mmu_pre_reset(ptdev)
        out["pre"] = (
            mmu.vm.reset_in_progress,
            vm.sched.pause_submit,
            other.sched.pause_submit,
            mmu.irq.suspended.v,
            vm.as_.id,  # the slots are left alone
            log.writes(),
        )
        op = drm_panthor_vm_bind_op(flags=DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP, va=VA, size=P)
        ret, fence = await vm_bind_async(DrmFile(), vm, op)
        assert ret == 0 and fence is not None
        await udelay(1000)
        out["queued"] = await dma_fence_is_signaled(fence)
        log.mark()
        await panthor_mmu_post_reset(ptdev)
        out["post"] = (
            mmu.vm.reset_in_progress,
            vm.sched.pause_submit,
            mmu.irq.suspended.v,
            (vm.as_.id, vm.as_.active_cnt.refs, mmu.as_.alloc_mask.v, mmu.as_.faulty_mask),
            log.writes(),
        )
        await dma_fence_wait(fence, False)
        out["ran"] = await dma_fence_get_status(fence)
        await dma_fence_put(fence)
        await panthor_vm_put(vm)
        await panthor_vm_put(other)

    assert_clean(run_dev(body))
    assert out["pre"] == (True, True, True, 1, 1, [("MMU_INT_MASK", 0)])
    assert out["queued"] is False
    assert out["post"] == (
        False,
        False,
        0,
        (-1, 0, 0, 0),
        [("MMU_INT_CLEAR", 0xFFFF), ("MMU_INT_MASK", 0xFFFF)],
    )
    assert out["ran"] == 1


# ---------------------------------------------------------------------- unplug


@pytest.mark.parametrize("runtime_active", [True, False])
def test_unplug_suspends_the_irq_when_active_and_disables_every_slot(runtime_active: bool) -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        mmu = ptdev.mmu
        assert mmu is not None
        vm = await user_vm(ptdev)
        assert await panthor_vm_active(vm) == 0
        if not runtime_active:
            ptdev.base.dev.runtime_status = RPM_SUSPENDED
        log = RegLog(k)
        await panthor_mmu_unplug(ptdev)
        out["writes"] = log.writes()
        out["irq"] = mmu.irq.suspended.v
        out["vm"] = (vm.as_.id, mmu.as_.slots[1].vm)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    irq_writes = [("MMU_INT_MASK", 0)] if runtime_active else []
    assert out["writes"] == [*irq_writes, *as_disable_seq(1)]
    assert out["irq"] == int(runtime_active)
    assert out["vm"] == (-1, None)


# ---------------------------------------------------------------------- init, pt cache


def test_mmu_init_requests_the_irq_makes_the_bind_wq_and_registers_the_releases() -> None:
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        ptdev = await bring_up(k, mmu=False)
        log = RegLog(k)
        out["ret"] = await panthor_mmu_init(ptdev)
        mmu = ptdev.mmu
        assert mmu is not None and mmu.vm.wq is not None
        out["wq"] = (mmu.vm.wq.name, mmu.vm.wq.flags & WQ_UNBOUND)
        out["irq"] = (mmu.irq.mask, len(ptdev.irqs["mmu"].actions), log.writes())
        out["managed"] = [n.name for n in ptdev.base.managed]
        wq = mmu.vm.wq
        await tear_down(ptdev)
        out["wq_freed"] = is_freed(wq)

    k = run(scenario)
    assert_clean(k)
    assert out["ret"] == 0
    assert out["wq"] == ("panthor-vm-bind", WQ_UNBOUND)
    assert out["irq"] == (0xFFFF, 1, [("MMU_INT_CLEAR", 0xFFFF), ("MMU_INT_MASK", 0xFFFF)])
    assert out["managed"] == ["kfree", "mutex_destroy", "mutex_destroy", "panthor_mmu_release_wq"]
    assert out["wq_freed"]


def test_mmu_init_without_an_mmu_irq_is_enodev_and_clamps_va_bits_to_64() -> None:
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        ptdev = await bring_up(k, mmu=False)
        desc = ptdev.irqs.pop("mmu")
        out["noirq"] = await panthor_mmu_init(ptdev)
        await tear_down(ptdev)
        ptdev = await bring_up(k, mmu=False)
        ptdev.gpu_info.mmu_features = 65 | (40 << 8)
        out["ret"] = await panthor_mmu_init(ptdev)
        out["features"] = ptdev.gpu_info.mmu_features
        await tear_down(ptdev)
        del desc

    assert_clean(run(scenario))
    assert out == {"noirq": -ENODEV, "ret": 0, "features": 64 | (40 << 8)}


def test_pt_cache_init_and_fini() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        cache = panthor_mmu.pt_cache
        assert cache is not None
        out["cache"] = (cache.name, cache.size, cache.align, cache.destroyed)
        panthor_mmu_pt_cache_fini()
        out["fini"] = cache.destroyed
        assert await panthor_mmu_pt_cache_init() == 0  # tear_down destroys this one

    assert_clean(run_dev(body))
    assert out == {"cache": ("panthor-mmu-pt", SZ_4K, SZ_4K, False), "fini": True}


# ---------------------------------------------------------------------- debugfs


def test_debugfs_gpuvas_dumps_every_vm_under_op_lock_separated_by_a_blank_line() -> None:
    out: dict[str, Any] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        a = await user_vm(ptdev)
        b = await user_vm(ptdev)
        bo = await new_bo(2 * P)
        assert await panthor_vm_map_bo_range(a, bo, 0, P, VA, 0) == 0
        assert await panthor_vm_map_bo_range(b, bo, P, P, VA + P, 0) == 0
        minor = DrmMinor(ptdev)
        panthor_mmu_debugfs_init(minor)
        out["files"] = list(minor.debugfs_files)
        out["dump"] = await drm_debugfs_read(minor, "gpuvas")
        want = []
        for vm in (a, b):
            m = SeqFile()
            assert drm_debugfs_gpuva_info(m, vm) == 0
            want.append(m.getvalue() + "\n")
        out["want"] = "".join(want)
        m = SeqFile()
        out["one"] = (await show_vm_gpuvas(a, m), m.getvalue() == want[0][:-1])
        # A show error stops the walk and is returned.
        b.name = None
        m = SeqFile(minor.debugfs_files["gpuvas"])
        out["err"] = (await show_each_vm(m, None), m.getvalue() == want[0])
        b.name = "panthor-GPU-VM"
        for vm in (a, b):
            assert await panthor_vm_unmap_range(vm, 0, 1 << 47) == 0
            await panthor_vm_put(vm)
        await drm_gem_object_put(bo)

    assert_clean(run_dev(body))
    assert out["files"] == ["gpuvas"]
    assert out["dump"] == out["want"]
    assert out["dump"].count("DRM GPU VA space (panthor-GPU-VM)") == 2
    assert out["one"] == (0, True)
    assert out["err"] == (-ENODEV, True)
