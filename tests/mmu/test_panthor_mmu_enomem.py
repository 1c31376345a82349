"""Every error path of panthor_mmu.c's entry points reachable by allocation failure.

For each entry point: a run without fault injection counts the failable
allocations before the call (B) and inside it (A - B); then for N = 1, 2, ...
a run with ``KernelConfig(alloc_fail_nth=B + N)`` fails the call's Nth
allocation, until the call stops failing (N = A - B + 1). Each failing run must
return the kernel's errno and, once everything is torn down, leave the memory
ledger, the kmem caches and physical memory clean (no leak finding).

The kernel's errno is -ENOMEM everywhere but one place: panthor_vm_create()
turns any failure inside alloc_io_pgtable_ops() (its own allocation, or the PGD
through alloc_pt()) into -EINVAL (seed line 2331), and so does
panthor_vm_pool_create_vm() through it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from panthor_testbed.mmu import panthor_mmu
from panthor_testbed.mmu.io_pgtable import alloc_io_pgtable_ops
from panthor_testbed.mmu.panthor_device import PanthorDevice, PanthorFile
from panthor_testbed.mmu.panthor_drm import (
    DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
    DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
    drm_panthor_vm_bind_op,
    drm_panthor_vm_create,
)
from panthor_testbed.mmu.panthor_mmu import (
    PanthorVmBindJob,
    PanthorVmOpCtx,
    panthor_mmu_init,
    panthor_vm_bind_job_create,
    panthor_vm_bind_job_put,
    panthor_vm_cleanup_op_ctx,
    panthor_vm_create,
    panthor_vm_map_bo_range,
    panthor_vm_pool_create,
    panthor_vm_pool_create_vm,
    panthor_vm_pool_destroy,
    panthor_vm_prepare_map_op_ctx,
    panthor_vm_prepare_unmap_op_ctx,
    panthor_vm_put,
    panthor_vm_unmap_range,
)
from panthor_testbed.sched import (
    IS_ERR,
    PTR_ERR,
    Kernel,
    KernelConfig,
    current_kernel,
    drm_gem_object_put,
)
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.drm.drm_file import DrmFile, drm_gem_release
from panthor_testbed.sched.errno import EINVAL, ENOMEM

from .driver_fixture import (
    USER_VA,
    bo_handle,
    bring_up,
    failures_text,
    new_bo,
    tear_down,
    user_vm,
)

P = 0x1000
SZ_2M = 0x200000
VA = 0x1000_0000
MAP = DRM_PANTHOR_VM_BIND_OP_TYPE_MAP
UNMAP = DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP

State = dict[str, Any]


@dataclass
class Entry:
    """An entry point: set up its inputs, call it (returns 0 or the errno), undo it."""

    setup: Callable[[Kernel, PanthorDevice, State], Awaitable[None]]
    call: Callable[[Kernel, PanthorDevice, State], Awaitable[int]]
    undo: Callable[[Kernel, PanthorDevice, State, int], Awaitable[None]]
    mmu: bool = True


async def nothing(k: Kernel, ptdev: PanthorDevice, s: State) -> None:
    pass


async def undo_nothing(k: Kernel, ptdev: PanthorDevice, s: State, ret: int) -> None:
    pass


# ---------------------------------------------------------------------- entry points


async def vm_create_call(k: Kernel, ptdev: PanthorDevice, s: State) -> int:
    vm = await panthor_vm_create(ptdev, False, USER_VA, USER_VA, USER_VA, USER_VA)
    if IS_ERR(vm):
        return PTR_ERR(vm)
    s["vm"] = vm
    return 0


async def vm_create_undo(k: Kernel, ptdev: PanthorDevice, s: State, ret: int) -> None:
    await panthor_vm_put(s.get("vm"))


async def vm_and_bo(k: Kernel, ptdev: PanthorDevice, s: State) -> None:
    s["vm"] = await user_vm(ptdev)
    s["bo"] = await new_bo(8 * P)


async def vm_and_mapped_bo(k: Kernel, ptdev: PanthorDevice, s: State) -> None:
    await vm_and_bo(k, ptdev, s)
    assert await panthor_vm_map_bo_range(s["vm"], s["bo"], 0, 4 * P, VA, 0) == 0


async def put_vm_and_bo(k: Kernel, ptdev: PanthorDevice, s: State) -> None:
    assert await panthor_vm_unmap_range(s["vm"], 0, 1 << 47) == 0
    await panthor_vm_put(s["vm"])
    await drm_gem_object_put(s["bo"])


async def prepare_map_call(k: Kernel, ptdev: PanthorDevice, s: State) -> int:
    s["ctx"] = PanthorVmOpCtx()
    return await panthor_vm_prepare_map_op_ctx(s["ctx"], s["vm"], s["bo"], 0, 4 * P, VA + P, MAP)


async def prepare_map_existing_call(k: Kernel, ptdev: PanthorDevice, s: State) -> int:
    s["ctx"] = PanthorVmOpCtx()
    return await panthor_vm_prepare_map_op_ctx(
        s["ctx"], s["vm"], s["bo"], 4 * P, 4 * P, VA + SZ_2M, MAP
    )


async def prepare_unmap_call(k: Kernel, ptdev: PanthorDevice, s: State) -> int:
    s["ctx"] = PanthorVmOpCtx()
    # An unaligned start and end: two page-table pages reserved, one VMA.
    return await panthor_vm_prepare_unmap_op_ctx(s["ctx"], s["vm"], VA + P, SZ_2M)


async def ctx_undo(k: Kernel, ptdev: PanthorDevice, s: State, ret: int) -> None:
    if ret == 0:
        await panthor_vm_cleanup_op_ctx(s["ctx"], s["vm"])
    await put_vm_and_bo(k, ptdev, s)


async def job_setup(k: Kernel, ptdev: PanthorDevice, s: State) -> None:
    await vm_and_bo(k, ptdev, s)
    s["file"] = DrmFile()
    s["handle"] = await bo_handle(s["file"], s["bo"])


async def job_map_call(k: Kernel, ptdev: PanthorDevice, s: State) -> int:
    op = drm_panthor_vm_bind_op(flags=MAP, bo_handle=s["handle"], va=VA, size=8 * P)
    job = await panthor_vm_bind_job_create(s["file"], s["vm"], op)
    if IS_ERR(job):
        return PTR_ERR(job)
    s["job"] = job
    return 0


async def job_unmap_call(k: Kernel, ptdev: PanthorDevice, s: State) -> int:
    op = drm_panthor_vm_bind_op(flags=UNMAP, va=VA + P, size=SZ_2M)
    job = await panthor_vm_bind_job_create(s["file"], s["vm"], op)
    if IS_ERR(job):
        return PTR_ERR(job)
    s["job"] = job
    return 0


async def job_undo(k: Kernel, ptdev: PanthorDevice, s: State, ret: int) -> None:
    job = s.get("job")
    if job is not None:
        assert isinstance(job, PanthorVmBindJob)
        await panthor_vm_bind_job_put(job)
    await drm_gem_release(s["file"])
    await put_vm_and_bo(k, ptdev, s)


async def map_bo_range_call(k: Kernel, ptdev: PanthorDevice, s: State) -> int:
    return await panthor_vm_map_bo_range(s["vm"], s["bo"], 0, 8 * P, VA + P, 0)


async def map_undo(k: Kernel, ptdev: PanthorDevice, s: State, ret: int) -> None:
    await put_vm_and_bo(k, ptdev, s)


async def unmap_range_call(k: Kernel, ptdev: PanthorDevice, s: State) -> int:
    # The head of the mapping: a REMAP keeping the tail (one VMA, one table page).
    return await panthor_vm_unmap_range(s["vm"], VA, 2 * P)


async def pool_setup(k: Kernel, ptdev: PanthorDevice, s: State) -> None:
    s["pfile"] = pfile = PanthorFile(ptdev)
    assert await panthor_vm_pool_create(pfile) == 0


async def pool_create_vm_call(k: Kernel, ptdev: PanthorDevice, s: State) -> int:
    ret = await panthor_vm_pool_create_vm(ptdev, s["pfile"].vms, drm_panthor_vm_create())
    return ret if ret < 0 else 0


async def pool_undo(k: Kernel, ptdev: PanthorDevice, s: State, ret: int) -> None:
    await panthor_vm_pool_destroy(s["pfile"])


async def pool_create_call(k: Kernel, ptdev: PanthorDevice, s: State) -> int:
    s["pfile"] = PanthorFile(ptdev)
    return await panthor_vm_pool_create(s["pfile"])


async def pool_create_undo(k: Kernel, ptdev: PanthorDevice, s: State, ret: int) -> None:
    await panthor_vm_pool_destroy(s["pfile"])


async def mmu_init_call(k: Kernel, ptdev: PanthorDevice, s: State) -> int:
    return await panthor_mmu_init(ptdev)


ENTRIES = {
    "panthor_vm_create": Entry(nothing, vm_create_call, vm_create_undo),
    "panthor_vm_prepare_map_op_ctx": Entry(vm_and_bo, prepare_map_call, ctx_undo),
    "panthor_vm_prepare_map_op_ctx(existing vm_bo)": Entry(
        vm_and_mapped_bo, prepare_map_existing_call, ctx_undo
    ),
    "panthor_vm_prepare_unmap_op_ctx": Entry(vm_and_bo, prepare_unmap_call, ctx_undo),
    "panthor_vm_bind_job_create(map)": Entry(job_setup, job_map_call, job_undo),
    "panthor_vm_bind_job_create(unmap)": Entry(job_setup, job_unmap_call, job_undo),
    "panthor_vm_map_bo_range": Entry(vm_and_bo, map_bo_range_call, map_undo),
    "panthor_vm_unmap_range": Entry(vm_and_mapped_bo, unmap_range_call, map_undo),
    "panthor_vm_pool_create_vm": Entry(pool_setup, pool_create_vm_call, pool_undo),
    "panthor_vm_pool_create": Entry(nothing, pool_create_call, pool_create_undo),
    "panthor_mmu_init": Entry(nothing, mmu_init_call, undo_nothing, mmu=False),
}

# The failable allocations each call makes, counted in the seed (a change means the port
# allocates differently from the C, or a kernel object's model did: recount before updating).
# The model's drm_prime_pages_to_sg() is one allocation (the kernel's is two: the table and
# its entries), and the IRQ request is one (the action).
VM_CREATE = 6  # vm, dummy GEM, io-pgtable data, PGD, sched_rq array, rq
MAP_CTX = 8  # 3 VMAs, shmem pages (pin), sg table, vm_bo, pages array, pt_cache bulk
ALLOCATIONS = {
    "panthor_vm_create": VM_CREATE,
    "panthor_vm_prepare_map_op_ctx": MAP_CTX,
    # pages and sg table are there already
    "panthor_vm_prepare_map_op_ctx(existing vm_bo)": MAP_CTX - 2,
    "panthor_vm_prepare_unmap_op_ctx": 3,  # 1 VMA, the pages array, the pt_cache bulk
    "panthor_vm_bind_job_create(map)": 1 + MAP_CTX + 1,  # job, op ctx, s_fence
    "panthor_vm_bind_job_create(unmap)": 1 + 3 + 1,
    "panthor_vm_map_bo_range": MAP_CTX,
    "panthor_vm_unmap_range": 3,
    "panthor_vm_pool_create_vm": VM_CREATE + 1,  # the xarray node
    "panthor_vm_pool_create": 1,
    # mmu + its drmm node, 2 drmm mutexes, the IRQ action, the bind wq, the wq's drmm node
    "panthor_mmu_init": 7,
}


@dataclass
class Outcome:
    ret: int
    injected_in_setup: int
    injected_in_call: int
    in_pgtable: int  # injected failures inside alloc_io_pgtable_ops()
    calls: tuple[int, int]  # failable allocations before / after the call
    kernel: Kernel


def run_entry(entry: Entry, nth: int, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    real = alloc_io_pgtable_ops
    rec: dict[str, int] = {"in_pgtable": 0}

    async def spy(fmt: int, cfg: Any, cookie: Any) -> Any:
        k = current_kernel()
        before = k.mem.injected_failures
        ops = await real(fmt, cfg, cookie)
        rec["in_pgtable"] += k.mem.injected_failures - before
        return ops

    monkeypatch.setattr(panthor_mmu, "alloc_io_pgtable_ops", spy)

    async def scenario(k: Kernel) -> None:
        ptdev = await bring_up(k, mmu=entry.mmu)
        s: State = {}
        await entry.setup(k, ptdev, s)
        rec["before"] = k.mem.failable
        rec["inj_setup"] = k.mem.injected_failures
        rec["ret"] = await entry.call(k, ptdev, s)
        rec["after"] = k.mem.failable
        rec["inj_call"] = k.mem.injected_failures - rec["inj_setup"]
        await entry.undo(k, ptdev, s, rec["ret"])
        await tear_down(ptdev)

    k = run(scenario, config=KernelConfig(alloc_fail_nth=nth))
    assert "ret" in rec, failures_text(k.failures)
    return Outcome(
        rec["ret"],
        rec["inj_setup"],
        rec["inj_call"],
        rec["in_pgtable"],
        (rec["before"], rec["after"]),
        k,
    )


@pytest.mark.parametrize("name", list(ENTRIES))
def test_every_allocation_failure_of_the_entry_point_returns_its_errno_and_leaks_nothing(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = ENTRIES[name]
    base = run_entry(entry, 0, monkeypatch)
    assert base.ret == 0 and base.kernel.failures == [], failures_text(base.kernel.failures)
    before, after = base.calls
    count = after - before
    assert count > 0
    assert count == ALLOCATIONS[name]
    results = []
    n = 1
    while True:
        o = run_entry(entry, before + n, monkeypatch)
        assert o.injected_in_setup == 0
        if o.injected_in_call == 0:
            # The Nth allocation is past the call: it no longer fails.
            assert o.ret == 0
            break
        want = -EINVAL if o.in_pgtable else -ENOMEM
        results.append((n, o.ret, want))
        assert o.ret == want, (name, n, o.ret)
        assert o.kernel.failures == [], f"{name} N={n}:\n" + failures_text(o.kernel.failures)
        n += 1
    # Every allocation of the call is on an error path, and the loop stopped after them.
    assert n == count + 1, results
