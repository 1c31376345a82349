"""The invalid-input table: one row per argument check, with the kernel's errno and its site.

Each row builds one ioctl call on a file that has a VM (``vm``), a 16-page
BO (``bo``), a binary syncobj without a fence (``sync``) and a timeline
syncobj (``tl``), and expects the errno the C check returns. After every
row the device must still serve a valid sync VM_BIND, and the run must end
without any finding (leak, WARN, use-after-free), except the rows that name
a seed finding.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from panthor_testbed.mmu.panthor_drm import (
    DRM_IOCTL_BASE,
    DRM_IOCTL_PANTHOR_BO_CREATE,
    DRM_IOCTL_PANTHOR_BO_MMAP_OFFSET,
    DRM_IOCTL_PANTHOR_DEV_QUERY,
    DRM_IOCTL_PANTHOR_GROUP_CREATE,
    DRM_IOCTL_PANTHOR_GROUP_DESTROY,
    DRM_IOCTL_PANTHOR_GROUP_SUBMIT,
    DRM_IOCTL_PANTHOR_TILER_HEAP_CREATE,
    DRM_IOCTL_PANTHOR_TILER_HEAP_DESTROY,
    DRM_IOCTL_PANTHOR_VM_BIND,
    DRM_IOCTL_PANTHOR_VM_CREATE,
    DRM_IOCTL_PANTHOR_VM_DESTROY,
    DRM_IOCTL_PANTHOR_VM_GET_STATE,
    DRM_IOCTL_SYNCOBJ_CREATE,
    DRM_IOCTL_SYNCOBJ_DESTROY,
    DRM_IOWR,
    DRM_PANTHOR_BO_NO_MMAP,
    DRM_PANTHOR_SYNC_OP_HANDLE_TYPE_TIMELINE_SYNCOBJ,
    DRM_PANTHOR_SYNC_OP_SIGNAL,
    DRM_PANTHOR_VM_BIND_ASYNC,
    DRM_PANTHOR_VM_BIND_OP_TYPE_SYNC_ONLY,
    DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
    PANTHOR_GROUP_PRIORITY_HIGH,
    drm_panthor_bo_create,
    drm_panthor_bo_mmap_offset,
    drm_panthor_dev_query,
    drm_panthor_group_create,
    drm_panthor_group_destroy,
    drm_panthor_group_submit,
    drm_panthor_obj_array,
    drm_panthor_queue_create,
    drm_panthor_sync_op,
    drm_panthor_tiler_heap_create,
    drm_panthor_tiler_heap_destroy,
    drm_panthor_vm_bind,
    drm_panthor_vm_bind_op,
    drm_panthor_vm_create,
    drm_panthor_vm_destroy,
    drm_panthor_vm_get_state,
    drm_syncobj_create,
    drm_syncobj_destroy,
    uapi_to_bytes,
)
from panthor_testbed.sched import KernelConfig
from panthor_testbed.sched.errno import (
    E2BIG,
    EACCES,
    EBUSY,
    EFAULT,
    EINVAL,
    ENOENT,
    ENOMEM,
    ENOTTY,
    EPERM,
)

from .driver_fixture import failures_text
from .drv_fixture import VA, Ctx, P, run_files


@dataclass
class Env:
    c: Ctx
    vm: int
    bo: int
    sync: int
    tl: int


Call = Callable[[Env], Awaitable[object]]


def _op(**kw: Any) -> drm_panthor_vm_bind_op:
    return drm_panthor_vm_bind_op(**kw)


def _syncs(e: Env, *ops: drm_panthor_sync_op) -> drm_panthor_obj_array:
    return e.c.mm.put_array(list(ops))


async def vm_bind(e: Env, *ops: drm_panthor_vm_bind_op, flags: int = 0, vm: int = -1) -> int:
    args = drm_panthor_vm_bind(
        vm_id=e.vm if vm < 0 else vm, flags=flags, ops=e.c.mm.put_array(list(ops))
    )
    return await e.c.ioctl(DRM_IOCTL_PANTHOR_VM_BIND, args)


async def vm_bind_array(e: Env, ops: drm_panthor_obj_array, flags: int = 0) -> int:
    return await e.c.ioctl(
        DRM_IOCTL_PANTHOR_VM_BIND, drm_panthor_vm_bind(vm_id=e.vm, flags=flags, ops=ops)
    )


async def bind_async_syncs(e: Env, *syncs: drm_panthor_sync_op) -> int:
    op = _op(flags=DRM_PANTHOR_VM_BIND_OP_TYPE_SYNC_ONLY, syncs=_syncs(e, *syncs))
    return await vm_bind(e, op, flags=DRM_PANTHOR_VM_BIND_ASYNC)


async def stride_tail(e: Env, tail: bytes) -> int:
    ops = e.c.mm.put_array([_op(bo_handle=e.bo, va=VA, size=P)], stride=56, tail=tail)
    return await vm_bind_array(e, ops)


async def too_many_vms(e: Env) -> int:
    for _ in range(31):  # the file has one VM already; the pool holds 32
        assert (await e.c.vm_create())[0] == 0
    return (await e.c.vm_create())[0]


async def two_ops_second_bad(e: Env) -> int:
    args = drm_panthor_vm_bind(
        vm_id=e.vm,
        ops=e.c.mm.put_array(
            [_op(bo_handle=e.bo, va=VA, size=P), _op(bo_handle=e.bo, va=VA + 1, size=P)]
        ),
    )
    ret = await e.c.ioctl(DRM_IOCTL_PANTHOR_VM_BIND, args)
    assert args.ops.count == 1  # "Update ops.count so the user knows where things failed."
    return ret


async def dev_query(e: Env, type: int, size: int, pointer: int) -> int:
    return await e.c.ioctl(
        DRM_IOCTL_PANTHOR_DEV_QUERY, drm_panthor_dev_query(type=type, size=size, pointer=pointer)
    )


async def heap(e: Env, **kw: int) -> int:
    args = drm_panthor_tiler_heap_create(
        vm_id=e.vm, initial_chunk_count=1, chunk_size=128 << 10, max_chunks=4
    )
    for name, value in kw.items():
        setattr(args, name, value)
    return await e.c.ioctl(DRM_IOCTL_PANTHOR_TILER_HEAP_CREATE, args)


async def group_create(e: Env, priority: int, count: int = 1) -> int:
    queues = e.c.mm.put_array([drm_panthor_queue_create(ringbuf_size=4096)] * count)
    args = drm_panthor_group_create(queues=queues, priority=priority, vm_id=e.vm)
    return await e.c.ioctl(DRM_IOCTL_PANTHOR_GROUP_CREATE, args)


async def mmap_offset_no_mmap(e: Env) -> int:
    ret, handle = await e.c.bo_create(P, flags=DRM_PANTHOR_BO_NO_MMAP)
    assert ret == 0
    return await e.c.ioctl(
        DRM_IOCTL_PANTHOR_BO_MMAP_OFFSET, drm_panthor_bo_mmap_offset(handle=handle)
    )


async def short_cmd(e: Env) -> int:
    """A VM_CREATE command encoding 8 bytes: ``user_va_range`` is zero-extended (so 0 = default)."""
    cmd = (DRM_IOCTL_PANTHOR_VM_CREATE & ~(0x3FFF << 16)) | (8 << 16)
    return await e.c.ioctl(cmd, drm_panthor_vm_create(user_va_range=1 << 60))


SIG = DRM_PANTHOR_SYNC_OP_SIGNAL
TL = DRM_PANTHOR_SYNC_OP_HANDLE_TYPE_TIMELINE_SYNCOBJ
UNMAP = DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP
SYNC_ONLY = DRM_PANTHOR_VM_BIND_OP_TYPE_SYNC_ONLY

# (id, call, errno, the check that returns it)
ROWS: list[tuple[str, Call, int, str]] = [
    # ------------------------------------------------------------ drm_ioctl()
    (
        "ioctl-unknown-nr",
        lambda e: e.c.ioctl(DRM_IOWR(0x40 + 13, drm_panthor_vm_destroy), drm_panthor_vm_destroy()),
        -EINVAL,
        "drm_ioctl: index >= dev->driver->num_ioctls",
    ),
    (
        "ioctl-wrong-type",
        lambda e: e.c.ioctl(
            DRM_IOCTL_PANTHOR_VM_DESTROY ^ (DRM_IOCTL_BASE << 8) ^ (ord("x") << 8),
            drm_panthor_vm_destroy(),
        ),
        -ENOTTY,
        "drm_ioctl: DRM_IOCTL_TYPE(cmd) != DRM_IOCTL_BASE",
    ),
    (
        "ioctl-short-struct",
        short_cmd,
        0,
        "drm_ioctl: in_size < ksize -> memset(kdata + in_size, 0)",
    ),
    # ------------------------------------------------------------ VM_CREATE
    (
        "vm-create-flags",
        lambda e: e.c.vm_create(flags=1),
        -EINVAL,
        "panthor_vm_create_check_args: args->flags & ~PANTHOR_VM_CREATE_FLAGS",
    ),
    (
        "vm-create-user-va-too-big",
        lambda e: e.c.vm_create(user_va_range=1 << 48),
        -EINVAL,
        "panthor_vm_create_check_args: args->user_va_range > user_va_range",
    ),
    (
        "vm-create-33rd",
        too_many_vms,
        -EBUSY,
        "panthor_vm_pool_create_vm: xa_alloc(XA_LIMIT(1, 32))",
    ),
    # ------------------------------------------------------------ VM_DESTROY
    (
        "vm-destroy-pad",
        lambda e: e.c.ioctl(DRM_IOCTL_PANTHOR_VM_DESTROY, drm_panthor_vm_destroy(id=e.vm, pad=1)),
        -EINVAL,
        "panthor_ioctl_vm_destroy: args->pad",
    ),
    ("vm-destroy-unknown", lambda e: e.c.vm_destroy(7), -EINVAL, "panthor_vm_pool_destroy_vm: !vm"),
    ("vm-destroy-zero", lambda e: e.c.vm_destroy(0), -EINVAL, "panthor_vm_pool_destroy_vm: !vm"),
    # ------------------------------------------------------------ VM_GET_STATE
    (
        "vm-get-state-unknown",
        lambda e: e.c.ioctl(DRM_IOCTL_PANTHOR_VM_GET_STATE, drm_panthor_vm_get_state(vm_id=9)),
        -EINVAL,
        "panthor_ioctl_vm_get_state: !vm",
    ),
    # ------------------------------------------------------------ VM_BIND: array copy
    (
        "bind-unknown-vm",
        lambda e: vm_bind(e, _op(bo_handle=e.bo, va=VA, size=P), vm=5),
        -EINVAL,
        "panthor_ioctl_vm_bind_sync: panthor_vm_pool_get_vm() == NULL",
    ),
    (
        "bind-async-unknown-vm",
        lambda e: vm_bind(e, _op(), flags=DRM_PANTHOR_VM_BIND_ASYNC, vm=5),
        -EINVAL,
        "panthor_ioctl_vm_bind_async: panthor_vm_pool_get_vm() == NULL",
    ),
    (
        "bind-stride-too-small",
        lambda e: vm_bind_array(e, e.c.mm.put_array([_op(bo_handle=e.bo, size=P)], stride=40)),
        -EINVAL,
        "panthor_get_uobj_array: in->stride < min_stride",
    ),
    (
        "bind-null-array",
        lambda e: vm_bind_array(e, drm_panthor_obj_array(stride=48, count=1, array=0)),
        -EFAULT,
        "panthor_get_uobj_array: copy_from_user() fast path",
    ),
    (
        "bind-array-past-mapping",
        lambda e: vm_bind_array(
            e,
            drm_panthor_obj_array(
                stride=48,
                count=2,
                array=e.c.mm.put_array([_op(bo_handle=e.bo, va=VA, size=P)]).array + 4096 - 48,
            ),
        ),
        -EFAULT,
        "panthor_get_uobj_array: copy_from_user() of count * stride",
    ),
    (
        "bind-stride-tail-nonzero",
        lambda e: stride_tail(e, b"\x01"),
        -E2BIG,
        "copy_struct_from_user: check_zeroed_user() == 0",
    ),
    (
        "bind-stride-tail-zero",
        lambda e: stride_tail(e, b""),
        0,
        "copy_struct_from_user: zero tail accepted",
    ),
    (
        "bind-count-crazy",
        lambda e: vm_bind_array(e, drm_panthor_obj_array(stride=48, count=0x3000000, array=0)),
        -ENOMEM,
        "panthor_get_uobj_array: kvmalloc_array() > INT_MAX (WARN_ON_ONCE: seed finding)",
    ),
    # ------------------------------------------------------------ VM_BIND: ops (sync)
    (
        "bind-sync-with-syncs",
        lambda e: vm_bind(
            e,
            _op(
                bo_handle=e.bo,
                va=VA,
                size=P,
                syncs=_syncs(e, drm_panthor_sync_op(flags=SIG, handle=e.sync)),
            ),
        ),
        -EINVAL,
        "panthor_vm_bind_exec_sync_op: op->syncs.count",
    ),
    (
        "bind-map-unknown-bo",
        lambda e: vm_bind(e, _op(bo_handle=77, va=VA, size=P)),
        -EINVAL,
        "panthor_vm_prepare_map_op_ctx: !bo",
    ),
    (
        "bind-map-unaligned-va",
        lambda e: vm_bind(e, _op(bo_handle=e.bo, va=VA + 1, size=P)),
        -EINVAL,
        "panthor_vm_bind_prepare_op_ctx: !IS_ALIGNED(op->va | op->size, vm_pgsz)",
    ),
    (
        "bind-map-past-bo",
        lambda e: vm_bind(e, _op(bo_handle=e.bo, va=VA, size=32 * P)),
        -EINVAL,
        "panthor_vm_prepare_map_op_ctx: size > bo size",
    ),
    (
        "bind-map-offset-past-bo",
        lambda e: vm_bind(e, _op(bo_handle=e.bo, bo_offset=16 * P, va=VA, size=P)),
        -EINVAL,
        "panthor_vm_prepare_map_op_ctx: offset > bo size - size",
    ),
    (
        "bind-map-bad-flag",
        lambda e: vm_bind(e, _op(flags=1 << 3, bo_handle=e.bo, va=VA, size=P)),
        -EINVAL,
        "panthor_vm_prepare_map_op_ctx: flags & ~PANTHOR_VM_BIND_OP_MAP_FLAGS",
    ),
    (
        "bind-bad-type",
        lambda e: vm_bind(e, _op(flags=3 << 28, va=VA, size=P)),
        -EINVAL,
        "panthor_vm_bind_prepare_op_ctx: default op type",
    ),
    (
        "bind-unmap-with-bo",
        lambda e: vm_bind(e, _op(flags=UNMAP, bo_handle=e.bo, va=VA, size=P)),
        -EINVAL,
        "panthor_vm_bind_prepare_op_ctx: UNMAP with op->bo_handle",
    ),
    (
        "bind-unmap-flags",
        lambda e: vm_bind(e, _op(flags=UNMAP | 1, va=VA, size=P)),
        -EINVAL,
        "panthor_vm_bind_prepare_op_ctx: UNMAP with flags",
    ),
    (
        "bind-sync-only-size-0",
        lambda e: vm_bind(e, _op(flags=SYNC_ONLY)),
        0,
        "panthor_vm_bind_exec_sync_op: !op->size -> 0 before any check",
    ),
    (
        "bind-second-op-fails",
        two_ops_second_bad,
        -EINVAL,
        "panthor_ioctl_vm_bind_sync: args->ops.count = i",
    ),
    (
        "bind-map-kernel-va",
        lambda e: vm_bind(e, _op(bo_handle=e.bo, va=1 << 47, size=P)),
        0,
        "seed finding: panthor_vm_create() passes no reserved kernel node to drm_gpuvm_init()",
    ),
    # ------------------------------------------------------------ VM_BIND: syncs (async)
    (
        "bind-async-sync-only-no-syncs",
        lambda e: vm_bind(e, _op(flags=SYNC_ONLY), flags=DRM_PANTHOR_VM_BIND_ASYNC),
        -EINVAL,
        "panthor_vm_bind_prepare_op_ctx: SYNC_ONLY with !op->syncs.count",
    ),
    (
        "bind-async-sync-only-with-va",
        lambda e: vm_bind(
            e,
            _op(
                flags=SYNC_ONLY,
                va=VA,
                size=P,
                syncs=_syncs(e, drm_panthor_sync_op(flags=SIG, handle=e.sync)),
            ),
            flags=DRM_PANTHOR_VM_BIND_ASYNC,
        ),
        -EINVAL,
        "panthor_vm_bind_prepare_op_ctx: SYNC_ONLY with op->va || op->size",
    ),
    (
        "sync-op-bad-flags",
        lambda e: bind_async_syncs(e, drm_panthor_sync_op(flags=SIG | (1 << 8), handle=e.sync)),
        -EINVAL,
        "panthor_check_sync_op: flags & ~PANTHOR_SYNC_OP_FLAGS_MASK",
    ),
    (
        "sync-op-bad-handle-type",
        lambda e: bind_async_syncs(e, drm_panthor_sync_op(flags=SIG | 2, handle=e.sync)),
        -EINVAL,
        "panthor_check_sync_op: handle_type not SYNCOBJ/TIMELINE",
    ),
    (
        "sync-op-binary-with-point",
        lambda e: bind_async_syncs(
            e, drm_panthor_sync_op(flags=SIG, handle=e.sync, timeline_value=1)
        ),
        -EINVAL,
        "panthor_check_sync_op: SYNCOBJ with timeline_value != 0",
    ),
    (
        "sync-op-signal-unknown",
        lambda e: bind_async_syncs(e, drm_panthor_sync_op(flags=SIG, handle=99)),
        -EINVAL,
        "panthor_submit_ctx_add_sync_signal: drm_syncobj_find() == NULL",
    ),
    (
        "sync-op-wait-unknown",
        lambda e: bind_async_syncs(e, drm_panthor_sync_op(flags=0, handle=99)),
        -ENOENT,
        "panthor_submit_ctx_add_sync_deps_to_job: drm_syncobj_find_fence() -ENOENT",
    ),
    (
        "sync-op-wait-no-fence",
        lambda e: bind_async_syncs(e, drm_panthor_sync_op(flags=0, handle=e.sync)),
        -EINVAL,
        "drm_syncobj_find_fence: no fence (no WAIT_FOR_SUBMIT)",
    ),
    (
        "sync-op-wait-future-point",
        lambda e: bind_async_syncs(e, drm_panthor_sync_op(flags=TL, handle=e.tl, timeline_value=5)),
        -EINVAL,
        "drm_syncobj_find_fence: no fence at the point",
    ),
    (
        "sync-op-stride-small",
        lambda e: vm_bind(
            e,
            _op(
                flags=SYNC_ONLY,
                syncs=e.c.mm.put_array([drm_panthor_sync_op(flags=SIG, handle=e.sync)], stride=8),
            ),
            flags=DRM_PANTHOR_VM_BIND_ASYNC,
        ),
        -EINVAL,
        "panthor_submit_ctx_add_job -> panthor_get_uobj_array: stride < min_stride",
    ),
    # ------------------------------------------------------------ BO_CREATE / BO_MMAP_OFFSET
    (
        "bo-create-size-0",
        lambda e: e.c.bo_create(0),
        -EINVAL,
        "panthor_ioctl_bo_create: !args->size",
    ),
    (
        "bo-create-pad",
        lambda e: e.c.ioctl(DRM_IOCTL_PANTHOR_BO_CREATE, drm_panthor_bo_create(size=P, pad=1)),
        -EINVAL,
        "panthor_ioctl_bo_create: args->pad",
    ),
    (
        "bo-create-flags",
        lambda e: e.c.bo_create(P, flags=2),
        -EINVAL,
        "panthor_ioctl_bo_create: args->flags & ~PANTHOR_BO_FLAGS",
    ),
    (
        "bo-create-unknown-vm",
        lambda e: e.c.bo_create(P, exclusive_vm_id=9),
        -EINVAL,
        "panthor_ioctl_bo_create: panthor_vm_pool_get_vm() == NULL",
    ),
    (
        "bo-create-huge",
        lambda e: e.c.bo_create(1 << 63),
        -EINVAL,
        "shmem_file_setup: size > MAX_LFS_FILESIZE",
    ),
    (
        "bo-mmap-pad",
        lambda e: e.c.ioctl(
            DRM_IOCTL_PANTHOR_BO_MMAP_OFFSET, drm_panthor_bo_mmap_offset(handle=e.bo, pad=1)
        ),
        -EINVAL,
        "panthor_ioctl_bo_mmap_offset: args->pad",
    ),
    (
        "bo-mmap-unknown",
        lambda e: e.c.ioctl(DRM_IOCTL_PANTHOR_BO_MMAP_OFFSET, drm_panthor_bo_mmap_offset(handle=9)),
        -ENOENT,
        "panthor_ioctl_bo_mmap_offset: drm_gem_object_lookup() == NULL",
    ),
    (
        "bo-mmap-no-mmap",
        mmap_offset_no_mmap,
        -EPERM,
        "panthor_ioctl_bo_mmap_offset: DRM_PANTHOR_BO_NO_MMAP",
    ),
    # ------------------------------------------------------------ DEV_QUERY
    (
        "query-type-size",
        lambda e: dev_query(e, 9, 0, 0),
        -EINVAL,
        "panthor_ioctl_dev_query: unknown type (size)",
    ),
    (
        "query-type",
        lambda e: dev_query(e, 9, 8, e.c.mm.mmap(64)),
        -EINVAL,
        "panthor_ioctl_dev_query: unknown type",
    ),
    (
        "query-size-too-small",
        lambda e: dev_query(e, 0, 95, e.c.mm.mmap(128)),
        -EINVAL,
        "panthor_set_uobj: usr_size < min_size",
    ),
    (
        "query-bad-pointer",
        lambda e: dev_query(e, 0, 104, 0x1000),
        -EFAULT,
        "panthor_set_uobj: copy_to_user()",
    ),
    (
        "query-tail-unmapped",
        lambda e: dev_query(e, 0, 4096 + 8, e.c.mm.mmap(4096)),
        -EFAULT,
        "panthor_set_uobj: clear_user() of the tail",
    ),
    # ------------------------------------------------------------ TILER_HEAP_CREATE / DESTROY
    (
        "heap-unknown-vm",
        lambda e: heap(e, vm_id=9),
        -EINVAL,
        "panthor_ioctl_tiler_heap_create: !vm",
    ),
    (
        "heap-no-chunks",
        lambda e: heap(e, initial_chunk_count=0),
        -EINVAL,
        "panthor_heap_create: initial_chunk_count == 0",
    ),
    (
        "heap-more-than-max",
        lambda e: heap(e, initial_chunk_count=5),
        -EINVAL,
        "panthor_heap_create: initial_chunk_count > max_chunks",
    ),
    (
        "heap-chunk-unaligned",
        lambda e: heap(e, chunk_size=(128 << 10) + 1),
        -EINVAL,
        "panthor_heap_create: !IS_ALIGNED(chunk_size, PAGE_SIZE)",
    ),
    (
        "heap-chunk-small",
        lambda e: heap(e, chunk_size=64 << 10),
        -EINVAL,
        "panthor_heap_create: chunk_size < SZ_128K",
    ),
    (
        "heap-chunk-big",
        lambda e: heap(e, chunk_size=16 << 20),
        -EINVAL,
        "panthor_heap_create: chunk_size > SZ_8M",
    ),
    (
        "heap-destroy-pad",
        lambda e: e.c.ioctl(
            DRM_IOCTL_PANTHOR_TILER_HEAP_DESTROY,
            drm_panthor_tiler_heap_destroy(handle=e.vm << 16, pad=1),
        ),
        -EINVAL,
        "panthor_ioctl_tiler_heap_destroy: args->pad",
    ),
    (
        "heap-destroy-unknown-vm",
        lambda e: e.c.ioctl(
            DRM_IOCTL_PANTHOR_TILER_HEAP_DESTROY, drm_panthor_tiler_heap_destroy(handle=9 << 16)
        ),
        -EINVAL,
        "panthor_ioctl_tiler_heap_destroy: !vm",
    ),
    (
        "heap-destroy-no-pool",
        lambda e: e.c.ioctl(
            DRM_IOCTL_PANTHOR_TILER_HEAP_DESTROY, drm_panthor_tiler_heap_destroy(handle=e.vm << 16)
        ),
        -ENOENT,
        "panthor_vm_get_heap_pool(vm, false): no pool -> -ENOENT",
    ),
    # ------------------------------------------------------------ GROUP_*
    (
        "group-create-no-queues",
        lambda e: e.c.ioctl(DRM_IOCTL_PANTHOR_GROUP_CREATE, drm_panthor_group_create(vm_id=e.vm)),
        -EINVAL,
        "panthor_ioctl_group_create: !args->queues.count",
    ),
    (
        "group-destroy-pad",
        lambda e: e.c.ioctl(
            DRM_IOCTL_PANTHOR_GROUP_DESTROY, drm_panthor_group_destroy(group_handle=1, pad=1)
        ),
        -EINVAL,
        "panthor_ioctl_group_destroy: args->pad",
    ),
    (
        "group-destroy-unknown",
        lambda e: e.c.ioctl(
            DRM_IOCTL_PANTHOR_GROUP_DESTROY, drm_panthor_group_destroy(group_handle=3)
        ),
        -EINVAL,
        "panthor_group_destroy: !group",
    ),
    (
        "group-submit-pad",
        lambda e: e.c.ioctl(DRM_IOCTL_PANTHOR_GROUP_SUBMIT, drm_panthor_group_submit(pad=1)),
        -EINVAL,
        "panthor_ioctl_group_submit: args->pad",
    ),
    (
        "group-submit-unknown",
        lambda e: e.c.ioctl(
            DRM_IOCTL_PANTHOR_GROUP_SUBMIT,
            drm_panthor_group_submit(
                group_handle=3,
                queue_submits=e.c.mm.put_array([drm_panthor_vm_bind_op()], stride=40),
            ),
        ),
        -EINVAL,
        "panthor_job_create: group_from_handle() == NULL",
    ),
    # ------------------------------------------------------------ DRM core
    (
        "syncobj-create-flags",
        lambda e: e.c.ioctl(DRM_IOCTL_SYNCOBJ_CREATE, drm_syncobj_create(flags=2)),
        -EINVAL,
        "drm_syncobj_create_ioctl: flags & ~DRM_SYNCOBJ_CREATE_SIGNALED",
    ),
    (
        "syncobj-destroy-unknown",
        lambda e: e.c.ioctl(DRM_IOCTL_SYNCOBJ_DESTROY, drm_syncobj_destroy(handle=99)),
        -EINVAL,
        "drm_syncobj_destroy: unknown handle",
    ),
    (
        "gem-close-unknown",
        lambda e: e.c.gem_close(99),
        -EINVAL,
        "drm_gem_handle_delete: unknown handle",
    ),
]

# Rows whose run ends with a seed finding (named, not hidden).
SEED_FINDINGS: dict[str, str] = {
    "bind-count-crazy": "warn",  # kvmalloc_array() of a user-sized array WARNs above INT_MAX
}

LEAKY_ROWS: dict[str, Call] = {
    # panthor_ioctl_group_create(): group_priority_permit() fails after
    # PANTHOR_UOBJ_GET_ARRAY(): the queue array is never kvfree()d.
    "group-create-priority-eacces": lambda e: group_create(e, PANTHOR_GROUP_PRIORITY_HIGH),
    "group-create-priority-einval": lambda e: group_create(e, 4),
}


async def _env(c: Ctx) -> Env:
    vm = await c.vm()
    bo = await c.bo(16 * P)
    return Env(c, vm, bo, await c.syncobj(), await c.syncobj())


async def _still_serves(e: Env) -> None:
    """A valid sync MAP and UNMAP on a fresh VA still work."""
    va = 0x4000_0000
    assert await e.c.bind_sync(e.vm, _op(bo_handle=e.bo, va=va, size=P)) == 0
    assert await e.c.bind_sync(e.vm, _op(flags=UNMAP, va=va, size=P)) == 0


@pytest.mark.parametrize(("name", "call", "errno", "site"), ROWS, ids=[r[0] for r in ROWS])
def test_invalid_input(name: str, call: Call, errno: int, site: str) -> None:
    got: list[int] = []

    async def body(ctxs: list[Ctx]) -> None:
        e = await _env(ctxs[0])
        r = await call(e)
        got.append(r[0] if isinstance(r, tuple) else r)  # type: ignore[arg-type]
        await _still_serves(e)

    k = run_files(body, config=KernelConfig(warn_fatal=False) if name in SEED_FINDINGS else None)
    assert got == [errno], f"{name}: {site}: got {got}\n{failures_text(k.failures)}"
    kind = SEED_FINDINGS.get(name)
    if kind is None:
        assert k.failures == [], failures_text(k.failures)
    else:
        assert [f.kind for f in k.failures] == [kind], failures_text(k.failures)


@pytest.mark.parametrize("name", sorted(LEAKY_ROWS))
def test_group_create_priority_refused_leaks_the_queue_array(name: str) -> None:
    """Seed finding: ``panthor_ioctl_group_create()`` returns the permit error without
    ``kvfree(queue_args)`` (-EACCES for HIGH without CAP_SYS_NICE, -EINVAL above REALTIME)."""
    got: list[int] = []

    async def body(ctxs: list[Ctx]) -> None:
        e = await _env(ctxs[0])
        r = await LEAKY_ROWS[name](e)
        got.append(r)  # type: ignore[arg-type]

    k = run_files(body)
    assert got == [-EACCES if name.endswith("eacces") else -EINVAL]
    assert [f.kind for f in k.failures] == ["leak"], failures_text(k.failures)
    assert "kvmalloc_array" in k.failures[0].message or "KArray" in k.failures[0].message, (
        k.failures[0].message
    )


def test_layouts_are_the_headers() -> None:
    """sizeof() of the uAPI structs as panthor_drm.h lays them out (64-bit)."""
    from panthor_testbed.mmu import panthor_drm as u

    sizes = {
        u.drm_panthor_obj_array: 16,
        u.drm_panthor_sync_op: 16,
        u.drm_panthor_vm_bind_op: 48,
        u.drm_panthor_vm_bind: 24,
        u.drm_panthor_vm_create: 16,
        u.drm_panthor_gpu_info: 104,
        u.drm_panthor_queue_submit: 40,
        u.drm_panthor_group_create: 56,
        u.drm_panthor_tiler_heap_create: 40,
        u.drm_panthor_bo_create: 24,
    }
    assert {c.__name__: u.uapi_sizeof(c) for c in sizes} == {
        c.__name__: n for c, n in sizes.items()
    }
    assert u.DRM_IOCTL_PANTHOR_VM_BIND == 0xC0186443
    assert u.uapi_min_size(u.drm_panthor_gpu_info) == 96
    assert uapi_to_bytes(drm_panthor_vm_create(flags=-1)) == b"\xff" * 4 + bytes(12)
