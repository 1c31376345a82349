"""panthor_mmu.c, VM_BIND jobs and exec: panthor_vma_link .. panthor_vm_prepare_mapped_bos_resvs,
and panthor_vm_get_bo_for_va (the gpuvm step callbacks, panthor_vm_exec_op, the VM_BIND
jobs and their resvs, the sync bind path).
"""

from __future__ import annotations

from typing import Any

import pytest

from panthor_testbed.gpuvm import DrmGpuvaOp, drm_gem_for_each_gpuvm_bo, drm_gpuvm_sm_map
from panthor_testbed.mmu import panthor_device, panthor_mmu
from panthor_testbed.mmu.gem_shmem import PanthorGemObject
from panthor_testbed.mmu.hw.gpu_access import GPU_READ, GPU_WRITE, GpuFault
from panthor_testbed.mmu.panthor_device import PanthorDevice
from panthor_testbed.mmu.panthor_drm import (
    DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC,
    DRM_PANTHOR_VM_BIND_OP_MAP_READONLY,
    DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
    DRM_PANTHOR_VM_BIND_OP_TYPE_SYNC_ONLY,
    DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
    drm_panthor_obj_array,
    drm_panthor_vm_bind_op,
)
from panthor_testbed.mmu.panthor_mmu import (
    PanthorVm,
    PanthorVma,
    PanthorVmBindJob,
    PanthorVmOpCtx,
    panthor_vm_active,
    panthor_vm_bind_exec_sync_op,
    panthor_vm_bind_job_create,
    panthor_vm_bind_job_prepare_resvs,
    panthor_vm_bind_job_put,
    panthor_vm_bind_prepare_op_ctx,
    panthor_vm_bind_timedout_job,
    panthor_vm_cleanup_op_ctx,
    panthor_vm_exec_op,
    panthor_vm_get_bo_for_va,
    panthor_vm_idle,
    panthor_vm_map_bo_range,
    panthor_vm_prepare_map_op_ctx,
    panthor_vm_prepare_mapped_bos_resvs,
    panthor_vm_prepare_sync_only_op_ctx,
    panthor_vm_prepare_unmap_op_ctx,
    panthor_vm_put,
    panthor_vm_resv,
    panthor_vm_root_gem,
    panthor_vm_unmap_range,
    panthor_vm_update_resvs,
)
from panthor_testbed.sched import (
    DRM_EXEC_IGNORE_DUPLICATES,
    DRM_EXEC_INTERRUPTIBLE_WAIT,
    IS_ERR,
    PTR_ERR,
    DmaFence,
    DmaFenceOps,
    DmaResv,
    DmaResvUsage,
    DrmExec,
    Kernel,
    KernelConfig,
    current,
    dma_fence_context_alloc,
    dma_fence_get_status,
    dma_fence_init,
    dma_fence_put,
    dma_fence_signal,
    dma_fence_wait,
    drm_exec_cleanup,
    drm_exec_fini,
    drm_exec_init,
    drm_exec_is_contended,
    drm_exec_locked_objects,
    drm_gem_object_put,
    is_freed,
    mutex_lock,
    mutex_unlock,
    udelay,
)
from panthor_testbed.sched.deferred.workqueue import flush_workqueue
from panthor_testbed.sched.drm.drm_file import DrmFile, drm_gem_release
from panthor_testbed.sched.drm.drm_sched_types import DRM_GPU_SCHED_STAT_NOMINAL
from panthor_testbed.sched.errno import EINVAL, ENOENT
from panthor_testbed.sched.locking.lockdep import dma_fence_lockdep_map, lock_is_held

from .driver_fixture import (
    assert_clean,
    bo_handle,
    failures_text,
    new_bo,
    run_dev,
    user_vm,
    vm_bind_async,
)

NO_WARN = KernelConfig(warn_fatal=False)
SZ_4K = 0x1000
SZ_2M = 0x200000
MAP = DRM_PANTHOR_VM_BIND_OP_TYPE_MAP
UNMAP = DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP
SYNC = DRM_PANTHOR_VM_BIND_OP_TYPE_SYNC_ONLY
VA = 0x1000_0000
P = SZ_4K  # one page
RO = DRM_PANTHOR_VM_BIND_OP_MAP_READONLY


def vas(vm: PanthorVm) -> list[tuple[int, int, int, Any]]:
    """The VA tree: (addr - VA, range, gem offset, object) per mapping."""
    out: list[tuple[int, int, int, Any]] = []
    for va in vm.rb:
        assert isinstance(va, PanthorVma)
        out.append((va.va.addr - VA, va.va.range, va.gem.offset, va.gem.obj))
    return out


def fences(resv: DmaResv) -> list[tuple[DmaFence, DmaResvUsage]]:
    lst = resv.fences
    return [] if lst is None else list(lst.table[: lst.num_fences])


async def cleanup_wq() -> None:
    wq = panthor_device.panthor_cleanup_wq
    assert wq is not None
    await flush_workqueue(wq)


async def prepared_map(
    vm: PanthorVm, bo: PanthorGemObject, offset: int, size: int, va: int, flags: int = MAP
) -> PanthorVmOpCtx:
    ctx = PanthorVmOpCtx()
    assert await panthor_vm_prepare_map_op_ctx(ctx, vm, bo, offset, size, va, flags) == 0
    return ctx


async def prepared_unmap(vm: PanthorVm, va: int, size: int) -> PanthorVmOpCtx:
    ctx = PanthorVmOpCtx()
    assert await panthor_vm_prepare_unmap_op_ctx(ctx, vm, va, size) == 0
    return ctx


# ---------------------------------------------------------------------- step callbacks


def test_sm_step_map_consumes_one_vma_links_it_and_takes_the_vm_bo_ownership() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        bo = await new_bo(4 * P)
        flags = MAP | DRM_PANTHOR_VM_BIND_OP_MAP_READONLY | DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC
        ctx = await prepared_map(vm, bo, P, 2 * P, VA, flags)
        vm_bo = ctx.map.vm_bo
        first = ctx.preallocated_vmas[0]
        out["ret"] = await panthor_vm_exec_op(vm, ctx, False)
        out["left"] = [v is not None for v in ctx.preallocated_vmas]
        out["vm_bo_taken"] = ctx.map.vm_bo is None
        (vma,) = list(vm.rb)
        assert isinstance(vma, PanthorVma)
        out["vma"] = (vma is first, vma.flags, vma.vm_bo is vm_bo)
        assert vm_bo is not None
        out["linked"] = vma in vm_bo.list.gpuva
        out["tree"] = vas(vm) == [(0, 2 * P, P, bo)]
        assert bo.pages is not None
        out["pa"] = vm.pgtbl_ops.iova_to_phys(VA + P) >> 12 == bo.pages[2]
        out["op_ctx"] = vm.op_ctx
        await panthor_vm_cleanup_op_ctx(ctx, vm)
        # Read-only: the GPU reads, a write faults.
        assert await panthor_vm_active(vm) == 0
        out["read"] = isinstance(await ptdev.iomem.access(vm.as_.id, VA, GPU_READ), int)
        out["write"] = isinstance(await ptdev.iomem.access(vm.as_.id, VA, GPU_WRITE), GpuFault)
        await udelay(100)  # the fault IRQ runs
        await panthor_vm_idle(vm)
        assert await panthor_vm_unmap_range(vm, VA, 2 * P) == 0
        await panthor_vm_put(vm)
        await drm_gem_object_put(bo)

    assert_clean(run_dev(body))
    assert out == {
        "ret": 0,
        "left": [False, True, True],
        "vm_bo_taken": True,
        "vma": (
            True,
            DRM_PANTHOR_VM_BIND_OP_MAP_READONLY | DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC,
            True,
        ),
        "linked": True,
        "tree": True,
        "pa": True,
        "op_ctx": None,
        "read": True,
        "write": True,
    }


def test_sm_step_remap_for_a_map_in_the_middle_splits_into_prev_and_next() -> None:
    """A = [VA, VA + 16P); B over [VA + 4P, VA + 8P): REMAP(prev, next) then MAP: all three
    VMAs are consumed, A is returned, prev/next keep A's flags and vm_bo, next's offset
    moves by 8P, and the middle now maps B's pages."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        a = await new_bo(16 * P, "a")
        b = await new_bo(4 * P, "b")
        assert await panthor_vm_map_bo_range(vm, a, 0, 16 * P, VA, 0) == 0
        (old,) = list(vm.rb)
        a_vm_bo = old.vm_bo
        ctx = await prepared_map(
            vm, b, 0, 4 * P, VA + 4 * P, MAP | DRM_PANTHOR_VM_BIND_OP_MAP_READONLY
        )
        out["ret"] = await panthor_vm_exec_op(vm, ctx, False)
        out["left"] = [v is not None for v in ctx.preallocated_vmas]
        out["returned"] = [v is old for v in ctx.returned_vmas]
        out["tree"] = vas(vm)
        prev, mid, nxt = list(vm.rb)
        assert isinstance(prev, PanthorVma) and isinstance(nxt, PanthorVma)
        assert isinstance(mid, PanthorVma)
        out["flags"] = (prev.flags, mid.flags, nxt.flags)
        out["vm_bo"] = (prev.vm_bo is a_vm_bo, nxt.vm_bo is a_vm_bo)
        assert a.pages is not None and b.pages is not None
        ops = vm.pgtbl_ops
        out["pa"] = [ops.iova_to_phys(VA + i * P) >> 12 for i in (3, 4, 7, 8)]
        out["want"] = [a.pages[3], b.pages[0], b.pages[3], a.pages[8]]
        await panthor_vm_cleanup_op_ctx(ctx, vm)
        out["old_freed"] = is_freed(old)
        assert await panthor_vm_unmap_range(vm, VA, 16 * P) == 0
        await panthor_vm_put(vm)
        await drm_gem_object_put(a)
        await drm_gem_object_put(b)

    assert_clean(run_dev(body))
    tree = out.pop("tree")
    assert isinstance(tree, list)
    assert [(s, r, o) for s, r, o, _ in tree] == [
        (0, 4 * P, 0),
        (4 * P, 4 * P, 0),
        (8 * P, 8 * P, 8 * P),
    ]
    assert out["ret"] == 0 and out["left"] == [False, False, False]
    assert out["returned"] == [True] and out["old_freed"]
    assert out["flags"] == (0, DRM_PANTHOR_VM_BIND_OP_MAP_READONLY, 0)
    assert out["vm_bo"] == (True, True)
    assert out["pa"] == out["want"]


def test_sm_step_remap_for_an_unmap_of_the_head_keeps_the_tail() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        assert await panthor_vm_active(vm) == 0
        a = await new_bo(8 * P)
        assert await panthor_vm_map_bo_range(vm, a, 0, 8 * P, VA, 0) == 0
        (old,) = list(vm.rb)
        ctx = await prepared_unmap(vm, VA, 4 * P)
        out["ret"] = await panthor_vm_exec_op(vm, ctx, False)
        out["left"] = [v is not None for v in ctx.preallocated_vmas]
        out["returned"] = [v is old for v in ctx.returned_vmas]
        out["tree"] = [(s, r, o) for s, r, o, _ in vas(vm)]
        ops = vm.pgtbl_ops
        out["mapped"] = [ops.iova_to_phys(VA + i * P) != 0 for i in (3, 4)]
        await panthor_vm_cleanup_op_ctx(ctx, vm)
        await panthor_vm_idle(vm)
        assert await panthor_vm_unmap_range(vm, VA, 8 * P) == 0
        await panthor_vm_put(vm)
        await drm_gem_object_put(a)

    assert_clean(run_dev(body))
    assert out == {
        "ret": 0,
        "left": [False, False, False],
        "returned": [True],
        "tree": [(4 * P, 4 * P, 4 * P)],
        "mapped": [False, True],
    }


def test_sm_step_unmap_of_a_whole_mapping_returns_it_and_consumes_no_vma() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        a = await new_bo(4 * P)
        b = await new_bo(4 * P)
        assert await panthor_vm_map_bo_range(vm, a, 0, 4 * P, VA, 0) == 0
        assert await panthor_vm_map_bo_range(vm, b, 0, 4 * P, VA + 4 * P, 0) == 0
        olds = list(vm.rb)
        ctx = await prepared_unmap(vm, VA, 8 * P)
        out["ret"] = await panthor_vm_exec_op(vm, ctx, False)
        out["left"] = [v is not None for v in ctx.preallocated_vmas]
        out["returned"] = [v is o for v, o in zip(ctx.returned_vmas, olds, strict=True)]
        out["empty"] = (len(vm.rb), [vm.pgtbl_ops.iova_to_phys(VA + i * P) for i in range(8)])
        out["pins_before_cleanup"] = (a.pages_pin_count, b.pages_pin_count)
        await panthor_vm_cleanup_op_ctx(ctx, vm)
        out["pins"] = (a.pages_pin_count, b.pages_pin_count)
        await panthor_vm_put(vm)
        await drm_gem_object_put(a)
        await drm_gem_object_put(b)

    assert_clean(run_dev(body))
    assert out == {
        "ret": 0,
        "left": [True, False, False],
        "returned": [True, True],
        "empty": (0, [0] * 8),
        "pins_before_cleanup": (1, 1),  # the returned VMAs keep their vm_bo until cleanup
        "pins": (0, 0),
    }


@pytest.mark.xfail(
    strict=True, reason="seed finding: unmap inside one mapping needs two VMAs, one is preallocated"
)
def test_unmap_strictly_inside_one_mapping_keeps_both_ends() -> None:
    """REMAP(prev, next) for an unmap strictly inside a mapping: panthor_vm_op_ctx_prealloc_vmas
    preallocates one VMA for an unmap, so next_vma is NULL and panthor_vma_init()
    dereferences it (the kernel oops in panthor_gpuva_sm_step_remap). The kernel's fix:
    4eabd0d8791e "drm/panthor: Fix kernel panic on partial unmap of a GPU VA region"."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        a = await new_bo(8 * P)
        assert await panthor_vm_map_bo_range(vm, a, 0, 8 * P, VA, 0) == 0
        out["ret"] = await panthor_vm_unmap_range(vm, VA + 2 * P, 2 * P)
        out["tree"] = [(s, r, o) for s, r, o, _ in vas(vm)]
        await panthor_vm_unmap_range(vm, VA, 8 * P)
        await panthor_vm_put(vm)
        await drm_gem_object_put(a)

    k = run_dev(body)
    assert k.failures == [], failures_text(k.failures)
    assert out == {"ret": 0, "tree": [(0, 2 * P, 0), (4 * P, 4 * P, 4 * P)]}


@pytest.mark.xfail(
    strict=True,
    reason="seed finding: unmap cutting into two mappings needs two VMAs, one is preallocated",
)
def test_unmap_across_two_mappings_keeps_the_head_of_one_and_the_tail_of_the_other() -> None:
    """Two REMAPs (prev of the first mapping, next of the second): the second finds the
    preallocated VMA already used (same fix: 4eabd0d8791e)."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        a = await new_bo(4 * P)
        b = await new_bo(4 * P)
        assert await panthor_vm_map_bo_range(vm, a, 0, 4 * P, VA, 0) == 0
        assert await panthor_vm_map_bo_range(vm, b, 0, 4 * P, VA + 4 * P, 0) == 0
        out["ret"] = await panthor_vm_unmap_range(vm, VA + 2 * P, 4 * P)
        out["tree"] = [(s, r, o) for s, r, o, _ in vas(vm)]
        await panthor_vm_unmap_range(vm, VA, 8 * P)
        await panthor_vm_put(vm)
        await drm_gem_object_put(a)
        await drm_gem_object_put(b)

    k = run_dev(body)
    assert k.failures == [], failures_text(k.failures)
    assert out == {"ret": 0, "tree": [(0, 2 * P, 0), (6 * P, 2 * P, 2 * P)]}


# ---------------------------------------------------------------------- panthor_vm_exec_op


def test_exec_op_sync_only_returns_at_once_without_op_lock() -> None:
    out: dict[str, int] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        ctx = PanthorVmOpCtx()
        panthor_vm_prepare_sync_only_op_ctx(ctx, vm)
        await mutex_lock(vm.op_lock)  # taking it again would deadlock
        out["ret"] = await panthor_vm_exec_op(vm, ctx, True)
        await mutex_unlock(vm.op_lock)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == {"ret": 0}


def test_exec_op_attaches_the_op_ctx_under_op_lock_for_the_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[bool, bool]] = []
    real = panthor_mmu.panthor_gpuva_sm_step_map

    async def spy(op: DrmGpuvaOp, priv: Any) -> int:
        vm = priv
        seen.append((vm.op_ctx is ctxs[0], vm.op_lock.owner is current()))
        return await real(op, priv)

    monkeypatch.setattr(panthor_mmu, "panthor_gpuva_sm_step_map", spy)
    ctxs: list[PanthorVmOpCtx] = []
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        bo = await new_bo(P)
        ctxs.append(await prepared_map(vm, bo, 0, P, VA))
        out["ret"] = await panthor_vm_exec_op(vm, ctxs[0], False)
        out["after"] = (vm.op_ctx, vm.op_lock.owner)
        await panthor_vm_cleanup_op_ctx(ctxs[0], vm)
        assert await panthor_vm_unmap_range(vm, VA, P) == 0
        await panthor_vm_put(vm)
        await drm_gem_object_put(bo)

    assert_clean(run_dev(body))
    assert seen == [(True, True)]
    assert out == {"ret": 0, "after": (None, None)}


@pytest.mark.parametrize("flag", [False, True])
def test_exec_op_refuses_maps_on_an_unusable_vm_and_flags_failures_only_when_asked(
    flag: bool,
) -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        bo = await new_bo(P)
        # A failing op: an unmap beyond the VA space (drm_gpuvm_sm_unmap: -EINVAL).
        ctx = await prepared_unmap(vm, 1 << 48, P)
        out["bad"] = await panthor_vm_exec_op(vm, ctx, flag)
        out["unusable"] = vm.unusable
        await panthor_vm_cleanup_op_ctx(ctx, vm)
        vm.unusable = True
        ctx = await prepared_map(vm, bo, 0, P, VA)
        out["map"] = await panthor_vm_exec_op(vm, ctx, flag)
        out["untouched"] = (
            len(vm.rb),
            ctx.map.vm_bo is not None,
            ctx.preallocated_vmas[0] is not None,
        )
        await panthor_vm_cleanup_op_ctx(ctx, vm)
        # Unmaps still run on an unusable VM.
        ctx = await prepared_unmap(vm, VA, P)
        out["unmap"] = await panthor_vm_exec_op(vm, ctx, flag)
        await panthor_vm_cleanup_op_ctx(ctx, vm)
        vm.unusable = False
        await panthor_vm_put(vm)
        await drm_gem_object_put(bo)

    assert_clean(run_dev(body))
    assert out == {
        "bad": -EINVAL,
        "unusable": flag,
        "map": -EINVAL,
        "untouched": (0, True, True),
        "unmap": 0,
    }


def test_exec_op_of_an_unknown_type_is_einval() -> None:
    out: dict[str, int] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        ctx = PanthorVmOpCtx()
        ctx.flags = 3 << 28
        out["ret"] = await panthor_vm_exec_op(vm, ctx, True)
        out["unusable"] = int(vm.unusable)
        vm.unusable = False
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == {"ret": -EINVAL, "unusable": 1}


# ---------------------------------------------------------------------- the sync bind path


BAD_OPS = [
    ("unaligned-va", drm_panthor_vm_bind_op(flags=MAP, va=VA + 1, size=P)),
    ("unaligned-size", drm_panthor_vm_bind_op(flags=UNMAP, va=VA, size=P + 8)),
    ("map-unknown-handle", drm_panthor_vm_bind_op(flags=MAP, bo_handle=99, va=VA, size=P)),
    ("unmap-flags", drm_panthor_vm_bind_op(flags=UNMAP | 1, va=VA, size=P)),
    ("unmap-handle", drm_panthor_vm_bind_op(flags=UNMAP, bo_handle=1, va=VA, size=P)),
    ("unmap-offset", drm_panthor_vm_bind_op(flags=UNMAP, bo_offset=P, va=VA, size=P)),
    ("bad-type", drm_panthor_vm_bind_op(flags=3 << 28, va=VA, size=P)),
]


@pytest.mark.parametrize(("case", "op"), BAD_OPS, ids=[c for c, _ in BAD_OPS])
def test_bind_exec_sync_op_rejects_bad_ops_with_einval(
    case: str, op: drm_panthor_vm_bind_op
) -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        file = DrmFile()
        bo = await new_bo(2 * P)
        await bo_handle(file, bo)  # handle 1
        n = len(k.mem.ledger)
        out["ret"] = await panthor_vm_bind_exec_sync_op(file, vm, op)
        out["leaked"] = len(k.mem.ledger) - n
        out["tree"] = len(vm.rb)
        await drm_gem_release(file)
        await drm_gem_object_put(bo)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == {"ret": -EINVAL, "leaked": 0, "tree": 0}


def test_bind_exec_sync_op_refuses_syncs_and_ignores_size_zero() -> None:
    out: list[int] = []

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        file = DrmFile()
        syncs = drm_panthor_obj_array(stride=16, count=1)
        out.append(
            await panthor_vm_bind_exec_sync_op(
                file, vm, drm_panthor_vm_bind_op(flags=SYNC, syncs=syncs)
            )
        )
        # size 0 is a no-op before any check (even a bad type or an unaligned va)
        out.append(
            await panthor_vm_bind_exec_sync_op(
                file, vm, drm_panthor_vm_bind_op(flags=3 << 28, va=1)
            )
        )
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == [-EINVAL, 0]


def test_bind_exec_sync_op_maps_and_unmaps_through_the_file_handle() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        file = DrmFile()
        bo = await new_bo(4 * P)
        h = await bo_handle(file, bo)
        refs = bo.refcount.refcount.refs
        op = drm_panthor_vm_bind_op(flags=MAP, bo_handle=h, bo_offset=P, va=VA, size=2 * P)
        out["map"] = await panthor_vm_bind_exec_sync_op(file, vm, op)
        out["tree"] = [(s, r, o) for s, r, o, _ in vas(vm)]
        # The lookup reference is dropped; the mapping holds its own through the vm_bo.
        out["refs"] = bo.refcount.refcount.refs - refs
        op = drm_panthor_vm_bind_op(flags=UNMAP, va=VA, size=2 * P)
        out["unmap"] = await panthor_vm_bind_exec_sync_op(file, vm, op)
        out["empty"] = len(vm.rb)
        await drm_gem_release(file)
        await drm_gem_object_put(bo)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == {"map": 0, "tree": [(0, 2 * P, P)], "refs": 1, "unmap": 0, "empty": 0}


SYNC_ONLY_BAD = [
    ("flags", drm_panthor_vm_bind_op(flags=SYNC | 1)),
    ("handle", drm_panthor_vm_bind_op(flags=SYNC, bo_handle=1)),
    ("offset", drm_panthor_vm_bind_op(flags=SYNC, bo_offset=P)),
    ("va", drm_panthor_vm_bind_op(flags=SYNC, va=P)),
    ("size", drm_panthor_vm_bind_op(flags=SYNC, size=P)),
    ("no-syncs", drm_panthor_vm_bind_op(flags=SYNC)),
]


@pytest.mark.parametrize(("case", "op"), SYNC_ONLY_BAD, ids=[c for c, _ in SYNC_ONLY_BAD])
def test_bind_prepare_op_ctx_sync_only_checks(case: str, op: drm_panthor_vm_bind_op) -> None:
    out: list[int] = []

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        if case != "no-syncs":
            op.syncs = drm_panthor_obj_array(stride=16, count=1)
        out.append(await panthor_vm_bind_prepare_op_ctx(DrmFile(), vm, op, PanthorVmOpCtx()))
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == [-EINVAL]


def test_bind_prepare_op_ctx_sync_only_with_syncs_is_a_sync_only_ctx() -> None:
    out: dict[str, int] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        ctx = PanthorVmOpCtx()
        op = drm_panthor_vm_bind_op(flags=SYNC, syncs=drm_panthor_obj_array(stride=16, count=2))
        out["ret"] = await panthor_vm_bind_prepare_op_ctx(DrmFile(), vm, op, ctx)
        out["flags"] = ctx.flags
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == {"ret": 0, "flags": SYNC}


# ---------------------------------------------------------------------- VM_BIND jobs


def test_bind_job_create_checks_the_vm() -> None:
    out: list[int] = []

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        op = drm_panthor_vm_bind_op(flags=UNMAP, va=VA, size=P)
        for state in ("none", "destroyed", "unusable"):
            vm.destroyed = state == "destroyed"
            vm.unusable = state == "unusable"
            job = await panthor_vm_bind_job_create(DrmFile(), None if state == "none" else vm, op)
            out.append(PTR_ERR(job) if IS_ERR(job) else 0)
        vm.destroyed = vm.unusable = False
        # A preparation failure frees the job (nothing leaks).
        bad = drm_panthor_vm_bind_op(flags=UNMAP, va=VA + 1, size=P)
        job = await panthor_vm_bind_job_create(DrmFile(), vm, bad)
        out.append(PTR_ERR(job) if IS_ERR(job) else 0)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == [-EINVAL] * 4


def test_bind_job_create_then_put_without_pushing_releases_everything() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        file = DrmFile()
        bo = await new_bo(2 * P)
        h = await bo_handle(file, bo)
        vm_refs = vm.kref.refcount.refs
        job = await panthor_vm_bind_job_create(
            file, vm, drm_panthor_vm_bind_op(flags=MAP, bo_handle=h, va=VA, size=2 * P)
        )
        assert isinstance(job, PanthorVmBindJob)
        out["job"] = (
            job.refcount.refcount.refs,
            job.vm is vm,
            vm.kref.refcount.refs - vm_refs,
            job.s_fence is not None,
            job.entity is vm.entity,
            bo.pages_pin_count,
            job.cleanup_op_ctx_work is not None and job.cleanup_op_ctx_work.container is job,
        )
        await panthor_vm_bind_job_put(job)
        out["after"] = (is_freed(job), vm.kref.refcount.refs - vm_refs, bo.pages_pin_count)
        await panthor_vm_bind_job_put(None)  # NULL is fine
        await drm_gem_release(file)
        await drm_gem_object_put(bo)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    # Two VM references: the job's (panthor_vm_get) and the op ctx's vm_bo's.
    assert out == {"job": (1, True, 2, True, True, 1, True), "after": (True, 0, 0)}


def test_bind_job_prepare_resvs_locks_the_vm_resv_and_the_mapped_bo() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        file = DrmFile()
        bo = await new_bo(P)
        h = await bo_handle(file, bo)
        for name, op in (
            ("map", drm_panthor_vm_bind_op(flags=MAP, bo_handle=h, va=VA, size=P)),
            ("unmap", drm_panthor_vm_bind_op(flags=UNMAP, va=VA, size=P)),
        ):
            job = await panthor_vm_bind_job_create(file, vm, op)
            assert isinstance(job, PanthorVmBindJob)
            exec = DrmExec()
            await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT | DRM_EXEC_IGNORE_DUPLICATES, 0)
            while await drm_exec_cleanup(exec):
                ret = await panthor_vm_bind_job_prepare_resvs(exec, job)
                if drm_exec_is_contended(exec):
                    continue
            locked = drm_exec_locked_objects(exec)
            root = panthor_vm_root_gem(vm)
            free_slots = []
            for obj in locked:
                lst = obj.resv.fences
                assert lst is not None
                free_slots.append(lst.max_fences - lst.num_fences >= 1)
            out[name] = (ret, [o is root for o in locked], [o is bo for o in locked], free_slots)
            await drm_exec_fini(exec)
            await panthor_vm_bind_job_put(job)
        await drm_gem_release(file)
        await drm_gem_object_put(bo)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out["map"] == (0, [True, False], [False, True], [True, True])
    assert out["unmap"] == (0, [True], [False], [True])


def test_async_bind_runs_the_op_in_the_queue_and_adds_the_finished_fence_as_bookkeep() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        file = DrmFile()
        bo = await new_bo(4 * P)
        h = await bo_handle(file, bo)
        op = drm_panthor_vm_bind_op(flags=MAP, bo_handle=h, va=VA, size=4 * P)
        ret, fence = await vm_bind_async(file, vm, op)
        assert ret == 0 and fence is not None
        vm_resv, bo_resv = panthor_vm_resv(vm), bo.resv
        out["resvs"] = [[(f is fence, u) for f, u in fences(r)] for r in (vm_resv, bo_resv)]
        out["queued"] = len(vm.rb)  # not run yet: the queue runs it
        await dma_fence_wait(fence, False)
        out["status"] = await dma_fence_get_status(fence)
        out["tree"] = [(s, r, o) for s, r, o, _ in vas(vm)]
        await dma_fence_put(fence)
        await cleanup_wq()
        out["pin"] = bo.pages_pin_count
        assert await panthor_vm_unmap_range(vm, VA, 4 * P) == 0
        await drm_gem_release(file)
        await drm_gem_object_put(bo)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    bk = DmaResvUsage.BOOKKEEP
    assert out == {
        "resvs": [[(True, bk)], [(True, bk)]],
        "queued": 0,
        "status": 1,
        "tree": [(0, 4 * P, 0)],
        "pin": 1,
    }


def test_run_job_executes_the_op_inside_the_fence_signalling_section(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[bool, bool]] = []
    real = panthor_mmu.panthor_vm_exec_op

    async def spy(vm: PanthorVm, op: PanthorVmOpCtx, flag: bool) -> int:
        seen.append((lock_is_held(dma_fence_lockdep_map), flag))
        return await real(vm, op, flag)

    monkeypatch.setattr(panthor_mmu, "panthor_vm_exec_op", spy)

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        file = DrmFile()
        ret, fence = await vm_bind_async(
            file, vm, drm_panthor_vm_bind_op(flags=UNMAP, va=VA, size=P)
        )
        assert ret == 0 and fence is not None
        seen.append((lock_is_held(dma_fence_lockdep_map), False))  # outside: not held
        await dma_fence_wait(fence, False)
        await dma_fence_put(fence)
        await cleanup_wq()
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert seen == [(False, False), (True, True)]


def test_run_job_failure_errors_the_fence_and_makes_the_vm_unusable() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        file = DrmFile()
        # Beyond the 48-bit VA space: drm_gpuvm_sm_unmap() fails with -EINVAL in run_job.
        ret, fence = await vm_bind_async(
            file, vm, drm_panthor_vm_bind_op(flags=UNMAP, va=1 << 48, size=P)
        )
        assert ret == 0 and fence is not None
        await dma_fence_wait(fence, False)
        out["status"] = await dma_fence_get_status(fence)
        out["unusable"] = vm.unusable
        await dma_fence_put(fence)
        job = await panthor_vm_bind_job_create(
            file, vm, drm_panthor_vm_bind_op(flags=UNMAP, va=VA, size=P)
        )
        out["next"] = PTR_ERR(job) if IS_ERR(job) else 0
        await cleanup_wq()
        vm.unusable = False
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == {"status": -EINVAL, "unusable": True, "next": -EINVAL}


def test_free_job_cleans_the_sched_job_and_leaves_the_rest_to_the_cleanup_wq(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str, bool]] = []
    real = panthor_mmu.panthor_vm_bind_job_cleanup_op_ctx_work

    async def spy(work: Any) -> None:
        job = work.container
        seen.append((current().name, job.s_fence is None))
        await real(work)

    monkeypatch.setattr(panthor_mmu, "panthor_vm_bind_job_cleanup_op_ctx_work", spy)
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        file = DrmFile()
        bo = await new_bo(P)
        h = await bo_handle(file, bo)
        op = drm_panthor_vm_bind_op(flags=MAP, bo_handle=h, va=VA, size=P)
        ret, fence = await vm_bind_async(file, vm, op)
        assert ret == 0 and fence is not None
        await dma_fence_wait(fence, False)
        await dma_fence_put(fence)
        await cleanup_wq()
        # The job's op ctx is gone: the vm_bo's pin is the mapping's only.
        out["vm_bos"] = len(drm_gem_for_each_gpuvm_bo(bo))
        assert await panthor_vm_unmap_range(vm, VA, P) == 0
        await drm_gem_release(file)
        await drm_gem_object_put(bo)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert len(seen) == 1
    name, cleaned = seen[0]
    assert "panthor-cleanup" in name and cleaned
    assert out == {"vm_bos": 1}


def test_timedout_job_warns_and_returns_nominal() -> None:
    out: list[int] = []

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        out.append(await panthor_vm_bind_timedout_job(PanthorVmBindJob()))

    k = run_dev(body, NO_WARN)
    assert out == [DRM_GPU_SCHED_STAT_NOMINAL]
    assert [f.kind for f in k.failures] == ["warn"]
    assert "VM_BIND ops are synchronous for now" in k.failures[0].message


@pytest.mark.xfail(
    strict=True, reason="seed finding: an async VM_BIND map of size 0 inserts a zero-sized VA"
)
def test_async_bind_map_of_size_zero_is_a_no_op() -> None:
    """panthor_vm_bind_exec_sync_op() returns 0 for size 0, the async path has no such
    check: prepare_map accepts it, drm_gpuvm_sm_map() with range 0 passes its range check,
    and panthor_gpuva_sm_step_map() inserts a zero-sized drm_gpuva (a degenerate interval
    node in the kernel). No later fix found in the stored kernel sources."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        file = DrmFile()
        bo = await new_bo(2 * P)
        h = await bo_handle(file, bo)
        op = drm_panthor_vm_bind_op(flags=MAP, bo_handle=h, va=1 << 39, size=0)
        ret, fence = await vm_bind_async(file, vm, op)
        assert ret == 0 and fence is not None
        await dma_fence_wait(fence, False)
        out["status"] = await dma_fence_get_status(fence)
        await dma_fence_put(fence)
        await cleanup_wq()
        out["vas"] = len(vm.rb)
        await drm_gem_release(file)
        await drm_gem_object_put(bo)
        await panthor_vm_put(vm)

    k = run_dev(body)
    assert k.failures == [], failures_text(k.failures)
    assert out == {"status": 1, "vas": 0}


# ---------------------------------------------------------------------- resvs of GPU jobs


def test_prepare_mapped_bos_resvs_and_update_resvs_cover_the_vm_and_its_external_bos() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        ext = await new_bo(P, "ext")
        priv = await new_bo(P, "priv", exclusive_vm_root_gem=panthor_vm_root_gem(vm))
        assert await panthor_vm_map_bo_range(vm, ext, 0, P, VA, 0) == 0
        assert await panthor_vm_map_bo_range(vm, priv, 0, P, VA + P, 0) == 0
        exec = DrmExec()
        await drm_exec_init(exec, DRM_EXEC_INTERRUPTIBLE_WAIT | DRM_EXEC_IGNORE_DUPLICATES, 0)
        while await drm_exec_cleanup(exec):
            ret = await panthor_vm_prepare_mapped_bos_resvs(exec, vm, 2)
            if drm_exec_is_contended(exec):
                continue
        root = panthor_vm_root_gem(vm)
        locked = drm_exec_locked_objects(exec)
        out["ret"] = ret
        out["locked"] = [o is root for o in locked], [o is ext for o in locked]
        slots = []
        for o in locked:
            lst = o.resv.fences
            assert lst is not None
            slots.append(lst.max_fences - lst.num_fences >= 2)
        out["slots"] = slots
        job_fence = DmaFence()
        dma_fence_init(job_fence, DmaFenceOps(), None, dma_fence_context_alloc(1), 1)
        await panthor_vm_update_resvs(
            vm, exec, job_fence, DmaResvUsage.BOOKKEEP, DmaResvUsage.WRITE
        )
        out["vm_resv"] = [(f is job_fence, u) for f, u in fences(panthor_vm_resv(vm))]
        out["ext_resv"] = [(f is job_fence, u) for f, u in fences(ext.resv)]
        await drm_exec_fini(exec)
        await dma_fence_signal(job_fence)
        await dma_fence_put(job_fence)
        assert await panthor_vm_unmap_range(vm, VA, 2 * P) == 0
        await drm_gem_object_put(ext)
        await drm_gem_object_put(priv)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out["ret"] == 0
    assert out["locked"] == ([True, False], [False, True])
    assert out["slots"] == [True, True]
    # The private BO shares the VM resv: it gets the private usage.
    assert out["vm_resv"] == [(True, DmaResvUsage.BOOKKEEP)]
    assert out["ext_resv"] == [(True, DmaResvUsage.WRITE)]


def test_vm_resv_is_the_root_gem_resv() -> None:
    out: dict[str, bool] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        root = panthor_vm_root_gem(vm)
        assert root is not None
        out["resv"] = panthor_vm_resv(vm) is root.resv
        out["none"] = panthor_vm_root_gem(None) is None
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == {"resv": True, "none": True}


# ---------------------------------------------------------------------- get_bo_for_va


def test_get_bo_for_va_returns_a_reference_and_the_offset_or_enoent() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        bo = await new_bo(8 * P)
        assert await panthor_vm_map_bo_range(vm, bo, 2 * P, 4 * P, VA, 0) == 0
        refs = bo.refcount.refcount.refs
        got, off = await panthor_vm_get_bo_for_va(vm, VA + P + 0x10)
        out["hit"] = (got is bo, off, bo.refcount.refcount.refs - refs)
        await drm_gem_object_put(bo)
        miss, _ = await panthor_vm_get_bo_for_va(vm, VA + 4 * P)
        out["miss"] = PTR_ERR(miss) if IS_ERR(miss) else miss
        assert await panthor_vm_unmap_range(vm, VA, 4 * P) == 0
        await drm_gem_object_put(bo)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == {"hit": (True, 3 * P + 0x10, 1), "miss": -ENOENT}


def test_get_bo_for_va_waits_for_an_op_in_progress() -> None:
    """It takes op_lock: while another thread runs an op, it waits and sees the result."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = await user_vm(ptdev)
        bo = await new_bo(P)
        await mutex_lock(vm.op_lock)

        async def lookup() -> None:
            got, _ = await panthor_vm_get_bo_for_va(vm, VA)
            out["got"] = got is bo
            if got is bo:
                await drm_gem_object_put(bo)

        t = k.spawn(lookup, name="lookup")
        await udelay(50)
        out["blocked"] = "got" not in out
        # Map "inside" the critical section the lookup waits on.
        ctx = await prepared_map(vm, bo, 0, P, VA)
        vm.op_ctx = ctx
        assert await drm_gpuvm_sm_map(vm, vm, VA, P, bo, 0) == 0
        vm.op_ctx = None
        await mutex_unlock(vm.op_lock)
        await t.join()
        await panthor_vm_cleanup_op_ctx(ctx, vm)
        assert await panthor_vm_unmap_range(vm, VA, P) == 0
        await drm_gem_object_put(bo)
        await panthor_vm_put(vm)

    assert_clean(run_dev(body))
    assert out == {"blocked": True, "got": True}
