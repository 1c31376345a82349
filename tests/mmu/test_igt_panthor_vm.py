"""IGT's VM tests, ported: every ``igt_subtest`` of IGT ``tests/panthor/panthor_vm.c``
(with the ``igt_panthor_vm_*`` / ``igt_panthor_bo_create`` helpers of ``lib/igt_panthor.c``
and ``lib/igt_panthor.h``) as one test of the same name, run through ``drm_ioctl`` on one
file opened with ``drm_open`` (:mod:`.drv_fixture`).

The expected results are the seed era's (v6.13-v6.15, the kernel this model follows:
/work/shared/seed/panthor_mmu.c). Where IGT expects what later kernels do, the test
asserts the seed's answer and says why, citing the seed:

* ``DRM_PANTHOR_VM_BIND_OP_MAP_SPARSE`` does not exist in the seed: a sparse MAP has
  ``bo_handle == 0``, so ``panthor_vm_prepare_map_op_ctx()`` returns -EINVAL on ``!bo``
  (panthor_mmu.c:1210) before it looks at the flags (1213). The ops IGT runs after the
  sparse bind then meet an empty VA range.
* Unmapping part of a 2M block: io-pgtable refuses ("Unmap of a partial large IOPTE is
  not allowed", WARN) and ``panthor_vm_unmap_pages()`` WARNs and returns -EINVAL
  (panthor_mmu.c:922); nothing is unmapped. Later kernels split the block (IGT: 0).
  These tests run with ``warn_fatal=False`` and name the WARNs they expect.
* No kernel VA range is reserved in the VM (panthor_mmu.c:2359 leaves drm_gpuvm's
  reserved range at zero), so a user MAP in the kernel's auto-VA range succeeds
  (IGT, for later kernels: -EINVAL).

Every other test ends with ``k.failures == []``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from panthor_testbed.fuzz.bugs import installed
from panthor_testbed.mmu.hw.gpu_access import GpuFault
from panthor_testbed.mmu.panthor_drm import (
    DRM_IOCTL_PANTHOR_VM_CREATE,
    DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC,
    DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
    DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
    drm_panthor_vm_bind_op,
    drm_panthor_vm_create,
)
from panthor_testbed.sched import Kernel, KernelConfig
from panthor_testbed.sched.core.failure import Failure
from panthor_testbed.sched.errno import EINVAL

from .driver_fixture import failures_text
from .drv_fixture import Ctx, gpu_read, page_of, run_files

SZ_4K = 0x1000
SZ_8K = 0x2000
SZ_64K = 0x10000
SZ_1M = 0x100000
SZ_2M = 0x200000
SZ_4M = 0x400000
SZ_8M = 0x800000
SZ_512M = 0x2000_0000
UINT64_MAX = (1 << 64) - 1

MAP = DRM_PANTHOR_VM_BIND_OP_TYPE_MAP
UNMAP = DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP
# panthor_drm.h after the seed (the sparse-binding series): not in the seed's uAPI, where
# bit 3 is outside PANTHOR_VM_BIND_OP_MAP_FLAGS.
DRM_PANTHOR_VM_BIND_OP_MAP_SPARSE = 1 << 3
SPARSE_FLAGS = MAP | DRM_PANTHOR_VM_BIND_OP_MAP_SPARSE | DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC

# panthor_vm.c: ``const int INITIAL_VA = SZ_4M`` of the sparse subtests.
INITIAL_VA = SZ_4M


def ALIGN(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def ALIGN_DOWN(x: int, a: int) -> int:
    return x // a * a


Got = list[object]
Body = Callable[[Ctx, Got], Awaitable[None]]


def _igt(body: Body, *, warn_fatal: bool = True) -> tuple[Got, Kernel]:
    """One IGT subtest on one file: what the body recorded, and the run."""
    got: Got = []

    async def run_body(cs: list[Ctx]) -> None:
        await body(cs[0], got)

    config = None if warn_fatal else KernelConfig(warn_fatal=False)
    return got, run_files(run_body, config=config)


async def igt_panthor_vm_create(c: Ctx, got: Got) -> int:
    """``igt_panthor_vm_create(fd, &vm_id, 0)`` + ``igt_assert_neq(vm_id, 0)``."""
    ret, vm_id = await c.vm_create()
    got.append(("vm_create", ret, vm_id != 0))
    return vm_id


async def igt_panthor_vm_bind_offset(
    c: Ctx, vm_id: int, bo_handle: int, va: int, size: int, offset: int, flags: int
) -> int:
    """``igt_panthor_vm_bind_offset()``: one op, ``drm_panthor_vm_bind.flags = 0`` (sync)."""
    op = drm_panthor_vm_bind_op(
        flags=flags, bo_handle=bo_handle, bo_offset=offset, va=va, size=size
    )
    return await c.bind_sync(vm_id, op)


async def igt_panthor_vm_bind(
    c: Ctx, vm_id: int, bo_handle: int, va: int, size: int, flags: int
) -> int:
    return await igt_panthor_vm_bind_offset(c, vm_id, bo_handle, va, size, 0, flags)


async def igt_panthor_vm_bind_sparse(c: Ctx, vm_id: int, va: int, size: int) -> int:
    return await igt_panthor_vm_bind_offset(c, vm_id, 0, va, size, 0, SPARSE_FLAGS)


async def _mapped(c: Ctx, vm_id: int, va: int, bo: int, bo_offset: int) -> bool:
    """The GPU reads the BO page at ``bo_offset`` through ``va``."""
    return bool(await gpu_read(c, vm_id, va) == page_of(c, bo, bo_offset))


async def _faults(c: Ctx, vm_id: int, va: int) -> bool:
    return isinstance(await gpu_read(c, vm_id, va), GpuFault)


def _assert_clean(k: Kernel) -> None:
    assert k.failures == [], failures_text(k.failures)


def _assert_partial_block_warns(k: Kernel, failed_unmaps: int) -> None:
    """The seed's partial-2M-block finding: io-pgtable's WARN (once), then one
    ``drm_WARN_ON(unmapped_sz != pgsize * pgcount)`` per refused UNMAP."""
    fs: list[Failure] = k.failures
    assert [f.kind for f in fs] == ["warn"] * (1 + failed_unmaps), failures_text(fs)
    assert "Unmap of a partial large IOPTE is not allowed" in fs[0].message, failures_text(fs)
    assert all("panthor_vm_unmap_pages" in f.message for f in fs[1:]), failures_text(fs)


# ---------------------------------------------------------------- VM create / destroy / bind


def test_vm_create_destroy() -> None:
    """IGT: "Create and destroy a VM"."""

    async def body(c: Ctx, got: Got) -> None:
        vm_id = await igt_panthor_vm_create(c, got)
        got.append(await c.vm_destroy(vm_id))

    got, k = _igt(body)
    assert got == [("vm_create", 0, True), 0]
    _assert_clean(k)


def test_vm_destroy_invalid() -> None:
    """VM_DESTROY of an id the file never had: -EINVAL (panthor_vm_pool_destroy_vm: !vm)."""

    async def body(c: Ctx, got: Got) -> None:
        got.append(await c.vm_destroy(0xDEADBEEF))

    got, k = _igt(body)
    assert got == [-EINVAL]
    _assert_clean(k)


def test_vm_bind() -> None:
    """IGT: "Test the VM_BIND API synchronously" (a 4K BO at 0x1000); the GPU reads it."""

    async def body(c: Ctx, got: Got) -> None:
        vm_id = await igt_panthor_vm_create(c, got)
        bo = await c.bo(0x1000)
        got.append(await igt_panthor_vm_bind(c, vm_id, bo, 0x1000, 0x1000, MAP))
        got.append(("mapped", await _mapped(c, vm_id, 0x1000, bo, 0)))
        got.append(await c.vm_destroy(vm_id))

    got, k = _igt(body)
    assert got == [("vm_create", 0, True), 0, ("mapped", True), 0]
    _assert_clean(k)


def test_vm_unbind() -> None:
    """IGT: "Test unbinding a previously bound range"; the GPU read then faults."""

    async def body(c: Ctx, got: Got) -> None:
        vm_id = await igt_panthor_vm_create(c, got)
        bo = await c.bo(0x1000)
        got.append(await igt_panthor_vm_bind(c, vm_id, bo, 0x1000, 0x1000, MAP))
        got.append(await igt_panthor_vm_bind(c, vm_id, 0, 0x1000, 0x1000, UNMAP))
        got.append(("faults", await _faults(c, vm_id, 0x1000)))
        got.append(await c.vm_destroy(vm_id))

    got, k = _igt(body)
    assert got == [("vm_create", 0, True), 0, 0, ("faults", True), 0]
    _assert_clean(k)


def test_vm_unbind_invalid_address() -> None:
    """IGT: "Test unbinding an address range that was not previously bound": -EINVAL.

    The -EINVAL is not about the address: IGT passes ``bo.handle`` with the UNMAP, and
    ``panthor_vm_bind_prepare_op_ctx()`` refuses an UNMAP with ``op->bo_handle``
    (panthor_mmu.c:2413). Without the handle the same never-bound range unmaps
    (nothing) and returns 0: drm_gpuvm_sm_unmap() finds no VA.
    """

    async def body(c: Ctx, got: Got) -> None:
        vm_id = await igt_panthor_vm_create(c, got)
        bo = await c.bo(0x1000)
        # This was not bound previously.
        got.append(await igt_panthor_vm_bind(c, vm_id, bo, 0x1000, 0x1000, UNMAP))
        got.append(("no_handle", await igt_panthor_vm_bind(c, vm_id, 0, 0x1000, 0x1000, UNMAP)))
        got.append(await c.vm_destroy(vm_id))

    got, k = _igt(body)
    assert got == [("vm_create", 0, True), -EINVAL, ("no_handle", 0), 0]
    _assert_clean(k)


# ---------------------------------------------------------------- huge pages


async def _hugepage(
    c: Ctx,
    got: Got,
    bo_size: int,
    map_va: int,
    map_size: int,
    map_offset: int,
    unmaps: list[tuple[int, int]],
) -> tuple[int, int]:
    """Create a VM and a BO, map it (``igt_panthor_vm_bind_offset``), run the UNMAPs."""
    vm_id = await igt_panthor_vm_create(c, got)
    bo = await c.bo(bo_size)
    got.append(await igt_panthor_vm_bind_offset(c, vm_id, bo, map_va, map_size, map_offset, MAP))
    for va, size in unmaps:
        got.append(await igt_panthor_vm_bind(c, vm_id, 0, va, size, UNMAP))
    return vm_id, bo


def test_vm_unbind_identical_hugepage_single() -> None:
    """IGT: "Requested unmapping is identical to existing huge page mapping" (2M at 2M)."""

    async def body(c: Ctx, got: Got) -> None:
        vm_id, _ = await _hugepage(c, got, SZ_2M, 0x200000, SZ_2M, 0, [(0x200000, SZ_2M)])
        got.append(("faults", await _faults(c, vm_id, 0x200000)))
        got.append(await c.vm_destroy(vm_id))

    got, k = _igt(body)
    assert got == [("vm_create", 0, True), 0, 0, ("faults", True), 0]
    _assert_clean(k)


def test_vm_unbind_identical_hugepage_single_partial() -> None:
    """A 4M BO mapped whole at 2M (two blocks), unmapped whole."""

    async def body(c: Ctx, got: Got) -> None:
        vm_id, _ = await _hugepage(c, got, SZ_4M, 0x200000, SZ_4M, 0, [(0x200000, SZ_4M)])
        got.append(await c.vm_destroy(vm_id))

    got, k = _igt(body)
    assert got == [("vm_create", 0, True), 0, 0, 0]
    _assert_clean(k)


def test_vm_unbind_identical_hugepage_multiple() -> None:
    """IGT: "Requested unmapping is identical to existing multiple huge page mapping" (6M)."""

    async def body(c: Ctx, got: Got) -> None:
        vm_id, _ = await _hugepage(
            c, got, 6 * SZ_1M, 0x200000, 6 * SZ_1M, 0, [(0x200000, 6 * SZ_1M)]
        )
        got.append(await c.vm_destroy(vm_id))

    got, k = _igt(body)
    assert got == [("vm_create", 0, True), 0, 0, 0]
    _assert_clean(k)


def test_vm_unbind_identical_hugepage_offset() -> None:
    """4M of a 6M BO (from offset 2M) mapped at 2M; the UNMAP covers 6M from 2M."""

    async def body(c: Ctx, got: Got) -> None:
        vm_id, _ = await _hugepage(
            c, got, 6 * SZ_1M, 0x200000, SZ_4M, SZ_2M, [(0x200000, 6 * SZ_1M)]
        )
        got.append(await c.vm_destroy(vm_id))

    got, k = _igt(body)
    assert got == [("vm_create", 0, True), 0, 0, 0]
    _assert_clean(k)


def test_vm_unbind_hugepage_leftaligned() -> None:
    """8K at the start of a 4M mapping of 2M blocks.

    IGT (later kernels): 0. Seed: -EINVAL with the partial-block WARNs, and the mapping
    stays whole (the GPU still reads the first page).
    """

    async def body(c: Ctx, got: Got) -> None:
        vm_id, bo = await _hugepage(c, got, SZ_4M, 0x200000, SZ_4M, 0, [(0x200000, SZ_8K)])
        got.append(("still_mapped", await _mapped(c, vm_id, 0x200000, bo, 0)))
        got.append(await c.vm_destroy(vm_id))

    got, k = _igt(body, warn_fatal=False)
    assert got == [("vm_create", 0, True), 0, -EINVAL, ("still_mapped", True), 0]
    _assert_partial_block_warns(k, 1)


def test_vm_unbind_hugepage_rightaligned() -> None:
    """8K at the end of a 4M mapping of 2M blocks. IGT: 0; seed: -EINVAL + WARNs."""
    bo_size = SZ_4M
    va = 0x200000 + bo_size - SZ_8K

    async def body(c: Ctx, got: Got) -> None:
        vm_id, bo = await _hugepage(c, got, bo_size, 0x200000, bo_size, 0, [(va, SZ_8K)])
        got.append(("still_mapped", await _mapped(c, vm_id, va, bo, bo_size - SZ_8K)))
        got.append(await c.vm_destroy(vm_id))

    got, k = _igt(body, warn_fatal=False)
    assert got == [("vm_create", 0, True), 0, -EINVAL, ("still_mapped", True), 0]
    _assert_partial_block_warns(k, 1)


def test_vm_unbind_hugepage_superset() -> None:
    """IGT: "Requested unmapping is a superset of existing huge page mapping" (5M from 1M)."""

    async def body(c: Ctx, got: Got) -> None:
        vm_id, _ = await _hugepage(c, got, SZ_2M, 0x200000, SZ_2M, 0, [(0x100000, 5 * SZ_1M)])
        got.append(("faults", await _faults(c, vm_id, 0x200000)))
        got.append(await c.vm_destroy(vm_id))

    got, k = _igt(body)
    assert got == [("vm_create", 0, True), 0, 0, ("faults", True), 0]
    _assert_clean(k)


def test_vm_unbind_hugepage_subset() -> None:
    """Two 8K holes inside a 4M mapping of 2M blocks (each UNMAP splits the VA in three).

    IGT: 0, 0. Seed: -EINVAL twice (the block unmap fails before the remap step, so the
    unmap-vma-prealloc-one-short oops is not reached).
    """

    async def body(c: Ctx, got: Got) -> None:
        vm_id, _ = await _hugepage(
            c,
            got,
            SZ_4M,
            0x200000,
            SZ_4M,
            0,
            [(0x200000 + SZ_1M, SZ_8K), (0x200000 + SZ_2M + SZ_4K, SZ_8K)],
        )
        got.append(await c.vm_destroy(vm_id))

    got, k = _igt(body, warn_fatal=False)
    assert got == [("vm_create", 0, True), 0, -EINVAL, -EINVAL, 0]
    _assert_partial_block_warns(k, 2)


def test_vm_unbind_hugepage_successive() -> None:
    """Successive UNMAPs over the remnants of a 6M mapping.

    IGT: all 0. Seed: the first UNMAP (0x3fc000 + 0x208000) starts inside the first 2M
    block and is refused; nothing is ever unmapped, so every later UNMAP that touches a
    block partially is refused too: eight -EINVAL.
    """
    unmaps = [
        (0x3FC000, 0x208000),
        (0x3FC000, 0x208000),
        (0x200000, 0x4000),
        (0x401000, 0x4000),
        (0x4FB000, 0xA000),
        (0x3FB000, 0xA000),
        (0x3FC000, 0x4000),
        (0x200000, 0x1000),
    ]

    async def body(c: Ctx, got: Got) -> None:
        vm_id, _ = await _hugepage(c, got, 6 * SZ_1M, 0x200000, 6 * SZ_1M, 0, unmaps)
        got.append(await c.vm_destroy(vm_id))

    got, k = _igt(body, warn_fatal=False)
    assert got == [("vm_create", 0, True), 0, *[-EINVAL] * 8, 0]
    _assert_partial_block_warns(k, 8)


def test_vm_bind_intersect_kbo_range() -> None:
    """IGT: "Perform a vm_bind in the VM's kernel BOs reserved range".

    ``igt_panthor_vm_create_userva_range()`` reads back ``user_va_range`` (the kernel
    writes ``kernel_va_start``, panthor_mmu.c:1527) and maps a 2M BO at the next 2M
    boundary. IGT (later kernels): -EINVAL. Seed: 0, and the GPU reads the BO there -
    no kernel range is reserved (panthor_mmu.c:2359).
    """

    async def body(c: Ctx, got: Got) -> None:
        args = drm_panthor_vm_create()
        got.append(await c.ioctl(DRM_IOCTL_PANTHOR_VM_CREATE, args))
        vm_id, uva_range = args.id, args.user_va_range
        got.append(("vm_id", vm_id != 0))
        bo = await c.bo(SZ_2M)
        va = ALIGN(uva_range, SZ_2M)
        got.append(await igt_panthor_vm_bind(c, vm_id, bo, va, SZ_2M, MAP))
        got.append(("mapped", await _mapped(c, vm_id, va, bo, 0)))
        got.append(await c.vm_destroy(vm_id))

    got, k = _igt(body)
    assert got == [0, ("vm_id", True), 0, ("mapped", True), 0]
    _assert_clean(k)


# ---------------------------------------------------------------- sparse binds


async def _sparse(
    c: Ctx,
    got: Got,
    sparse_va: int,
    sparse_size: int,
    then: Callable[[Ctx, int], Awaitable[int]] | None = None,
) -> None:
    vm_id = await igt_panthor_vm_create(c, got)
    got.append(("sparse", await igt_panthor_vm_bind_sparse(c, vm_id, sparse_va, sparse_size)))
    if then is not None:
        got.append(await then(c, vm_id))
    got.append(await c.vm_destroy(vm_id))


def _unmap(va: int, size: int) -> Callable[[Ctx, int], Awaitable[int]]:
    async def then(c: Ctx, vm_id: int) -> int:
        return await igt_panthor_vm_bind(c, vm_id, 0, va, size, UNMAP)

    return then


def _remap(va: int, size: int) -> Callable[[Ctx, int], Awaitable[int]]:
    """IGT: "Now attempt normal VM_BIND's that intersect with the previous chunk" (8M BO)."""

    async def then(c: Ctx, vm_id: int) -> int:
        bo = await c.bo(SZ_8M)
        return await igt_panthor_vm_bind(c, vm_id, bo, va, size, MAP)

    return then


# The seed's answer to every sparse bind (IGT: 0): no BO -> -EINVAL (panthor_mmu.c:1210).
SEED_SPARSE = ("sparse", -EINVAL)


def _sparse_test(
    sparse_va: int,
    sparse_size: int,
    then: Callable[[Ctx, int], Awaitable[int]] | None,
    then_expected: int | None,
) -> None:
    async def body(c: Ctx, got: Got) -> None:
        await _sparse(c, got, sparse_va, sparse_size, then)

    got, k = _igt(body)
    middle: list[object] = [] if then is None else [then_expected]
    assert got == [("vm_create", 0, True), SEED_SPARSE, *middle, 0]
    _assert_clean(k)


def test_vm_bind_sparse() -> None:
    """IGT: "Perform a simple sparse vm_bind operation" (16K at 2M): 0; seed: -EINVAL."""
    _sparse_test(SZ_2M, SZ_4K * 4, None, None)


def test_vm_bind_sparse_partial_unmap_start_size_unaligned() -> None:
    """8K UNMAP at the start of a 6M sparse range: 0 (the seed has nothing mapped there)."""
    _sparse_test(INITIAL_VA, SZ_2M * 3, _unmap(INITIAL_VA, SZ_4K * 2), 0)


def test_vm_bind_sparse_partial_unmap_start_size_aligned() -> None:
    _sparse_test(INITIAL_VA, SZ_2M * 3, _unmap(INITIAL_VA, SZ_2M), 0)


def test_vm_bind_sparse_partial_unmap_start_aligned_no_hugepage_multiple() -> None:
    _sparse_test(INITIAL_VA, SZ_2M * 3, _unmap(INITIAL_VA, 4 * SZ_64K), 0)


def test_vm_bind_sparse_partial_unmap_below_start() -> None:
    _sparse_test(INITIAL_VA, SZ_2M * 3, _unmap(INITIAL_VA - SZ_2M, SZ_2M * 3), 0)


def test_vm_bind_sparse_partial_unmap_above_start() -> None:
    _sparse_test(INITIAL_VA, SZ_2M * 3, _unmap(INITIAL_VA + SZ_2M, SZ_2M), 0)


def test_vm_bind_sparse_remap() -> None:
    """A 4M MAP over the sparse range's middle: 0 (a plain MAP on an empty range in the seed)."""
    _sparse_test(INITIAL_VA, SZ_2M * 3, _remap(INITIAL_VA + SZ_2M, SZ_2M * 2), 0)


def test_vm_bind_sparse_remap_start_unaligned() -> None:
    _sparse_test(INITIAL_VA, SZ_2M * 3, _remap(INITIAL_VA + SZ_2M * 3 - SZ_1M, SZ_4M), 0)


def test_vm_bind_sparse_remap_start_size_unaligned() -> None:
    _sparse_test(INITIAL_VA, SZ_2M * 3, _remap(INITIAL_VA + SZ_2M * 3 - SZ_1M, SZ_1M), 0)


def test_vm_bind_sparse_remap_start_size_aligned() -> None:
    _sparse_test(INITIAL_VA, SZ_2M * 3, _remap(INITIAL_VA + SZ_2M * 3 - SZ_2M, SZ_4M), 0)


def test_vm_bind_sparse_remap_aligned_split_original_va() -> None:
    _sparse_test(INITIAL_VA, SZ_2M * 3, _remap(INITIAL_VA + SZ_2M, SZ_2M), 0)


def test_vm_bind_sparse_remap_start_aligned_size_unaligned() -> None:
    _sparse_test(INITIAL_VA, SZ_2M * 3, _remap(INITIAL_VA + SZ_2M, SZ_1M), 0)


def test_vm_bind_sparse_remap_aligned_intersect_left() -> None:
    _sparse_test(INITIAL_VA, SZ_2M * 3, _remap(INITIAL_VA - SZ_2M, SZ_2M * 2), 0)


def test_vm_bind_sparse_remap_size_unaligned_intersect_left() -> None:
    _sparse_test(INITIAL_VA, SZ_2M * 3, _remap(INITIAL_VA - SZ_2M, SZ_1M * 3), 0)


def test_vm_bind_sparse_remap_start_aligned_intersect_right() -> None:
    _sparse_test(
        INITIAL_VA, SZ_2M * 3, _remap(INITIAL_VA + SZ_2M * 3 - SZ_2M, SZ_2M + SZ_4K * 6), 0
    )


def test_vm_bind_sparse_remap_wrap_around_va() -> None:
    _sparse_test(INITIAL_VA, SZ_2M * 3, _remap(INITIAL_VA - SZ_2M, SZ_8M), 0)


def test_vm_bind_sparse_overflow() -> None:
    """A sparse bind whose range overflows: -EINVAL (IGT too; the seed already on ``!bo``)."""
    _sparse_test(SZ_512M, ALIGN_DOWN(UINT64_MAX, SZ_2M) - SZ_2M * 3, None, None)


def test_vm_unbind_sparse_overflow() -> None:
    """An UNMAP whose ``va + size`` wraps: -EINVAL (drm_gpuvm_range_valid()), as IGT expects."""
    map_size = SZ_2M * 3
    unmap_size = ALIGN_DOWN(UINT64_MAX, SZ_2M) - map_size
    _sparse_test(SZ_512M, map_size, _unmap(SZ_512M, unmap_size), -EINVAL)


# ---------------------------------------------------------------- huge pages, later kernels

HUGEPAGE_UNMAPS = [
    pytest.param(SZ_4M, [(0x200000, SZ_8K)], id="leftaligned"),
    pytest.param(SZ_4M, [(0x200000 + SZ_4M - SZ_8K, SZ_8K)], id="rightaligned"),
    pytest.param(
        SZ_4M, [(0x200000 + SZ_1M, SZ_8K), (0x200000 + SZ_2M + SZ_4K, SZ_8K)], id="subset"
    ),
    pytest.param(
        6 * SZ_1M,
        [
            (0x3FC000, 0x208000),
            (0x3FC000, 0x208000),
            (0x200000, 0x4000),
            (0x401000, 0x4000),
            (0x4FB000, 0xA000),
            (0x3FB000, 0xA000),
            (0x3FC000, 0x4000),
            (0x200000, 0x1000),
        ],
        id="successive",
    ),
]


@pytest.mark.parametrize(("bo_size", "unmaps"), HUGEPAGE_UNMAPS)
def test_vm_unbind_hugepage_with_the_later_fix(bo_size: int, unmaps: list[tuple[int, int]]) -> None:
    """The partial huge-page subtests with 8e7460eac786 in (``--patch all``): IGT's answers
    (every UNMAP 0), and afterwards every page of the mapping is either gone (the GPU
    faults) or still the BO's page at its offset, as the UNMAPs say."""
    gone = {p for va, size in unmaps for p in range(va, va + size, SZ_4K)}

    async def body(c: Ctx, got: Got) -> None:
        vm_id, bo = await _hugepage(c, got, bo_size, 0x200000, bo_size, 0, unmaps)
        wrong = []
        # The pages still mapped first: a GPU fault leaves the AS faulty until the next
        # activation, which the fault checks below go through.
        for va in range(0x200000, 0x200000 + bo_size, SZ_4K):
            if va not in gone and not await _mapped(c, vm_id, va, bo, va - 0x200000):
                wrong.append(("lost", va))
        for va in sorted(gone):
            if not await _faults(c, vm_id, va):
                wrong.append(("still mapped", va))
        got.append(wrong)
        got.append(await c.vm_destroy(vm_id))

    with installed(patch=["all"]):
        got, k = _igt(body)
    assert got == [("vm_create", 0, True), 0, *[0] * len(unmaps), [], 0]
    _assert_clean(k)
