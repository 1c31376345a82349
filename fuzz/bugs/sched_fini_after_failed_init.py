"""Found here, not fixed in the kernel as far as we know (v6.15): a GROUP_CREATE whose
``drm_sched_init()`` fails tears down a scheduler that was never initialised.

``drm_sched_init()`` sets ``sched->ops`` first and leaves it set when an
allocation fails (the run-queue array or a run queue, the ordered submit
workqueue). ``group_create_queue()`` then frees the queue with
``group_free_queue()``, which takes ``queue->scheduler.ops`` for "the
scheduler was initialised" and calls ``drm_sched_fini()``: its
``cancel_work_sync()`` of the never-initialised work items WARNs in
``__flush_work()`` (``!work->func``) and its loop over ``num_rqs`` run queues
dereferences the NULL ``sched_rq`` array. The model's drm_sched asserts at the
first of these. Found by ``bind-storm`` under allocation failures.

The fix proposed here: when ``drm_sched_init()`` fails, ``group_create_queue()``
clears ``queue->scheduler.ops`` before the common error path, so
``group_free_queue()`` skips ``drm_sched_fini()``.
"""

from __future__ import annotations

from typing import Any  # noqa: F401

from panthor_testbed.mmu.panthor_drm import (
    DRM_PANTHOR_BO_NO_MMAP,
    DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC,
    DRM_PANTHOR_VM_BIND_OP_MAP_UNCACHED,
    drm_panthor_queue_create,
)
from panthor_testbed.mmu.panthor_fw_iface import panthor_fw_alloc_queue_iface_mem
from panthor_testbed.mmu.panthor_gem import (
    PanthorKernelBo,
    panthor_kernel_bo_create,
    panthor_kernel_bo_vmap,
)
from panthor_testbed.mmu.panthor_sched import (
    CSF_MAX_QUEUE_PRIO,
    JOB_TIMEOUT_MS,
    PanthorGroup,
    PanthorQueue,
    _kernel_auto_va,
    _sched,
    group_free_queue,
    is_power_of_2,
    panthor_queue_sched_ops,
)
from panthor_testbed.mmu.sizes import SZ_4K, SZ_64K
from panthor_testbed.sched.core.clock import msecs_to_jiffies
from panthor_testbed.sched.dma_buf.dma_fence import dma_fence_context_alloc
from panthor_testbed.sched.drm.drm_sched import drm_sched_init
from panthor_testbed.sched.drm.drm_sched_entity import drm_sched_entity_init
from panthor_testbed.sched.errno import EINVAL, ENOMEM, ERR_PTR, IS_ERR, PTR_ERR, ErrPtr
from panthor_testbed.sched.mm.gfp import GFP_KERNEL
from panthor_testbed.sched.mm.memory import kzalloc

from .entry import Bug, FoundAs

BUG = Bug(
    slug="sched-fini-after-failed-init",
    kind="upstream",
    commit="none",
    title="drm/panthor: do not tear down a queue scheduler whose drm_sched_init() failed "
    "(proposed here)",
    functions=("group_create_queue",),
    breaks="a GROUP_CREATE whose drm_sched_init() fails calls drm_sched_fini() on a "
    "scheduler that was never initialised (WARN in __flush_work, NULL run-queue array)",
    scenario="bind-storm",
    found_as=FoundAs("exception", "group_free_queue"),
    config={"alloc_fail_probability": 0.01},
)


async def group_create_queue(
    group: PanthorGroup, args: drm_panthor_queue_create
) -> PanthorQueue | ErrPtr:
    """``group_create_queue()`` with the fix proposed here."""
    sched = _sched(group.ptdev)

    if args.pad[0] or args.pad[1] or args.pad[2]:
        return ERR_PTR(-EINVAL)

    if (
        args.ringbuf_size < SZ_4K
        or args.ringbuf_size > SZ_64K
        or not is_power_of_2(args.ringbuf_size)
    ):
        return ERR_PTR(-EINVAL)

    if args.priority > CSF_MAX_QUEUE_PRIO:
        return ERR_PTR(-EINVAL)

    queue = await kzalloc(PanthorQueue, GFP_KERNEL)
    if not queue:
        return ERR_PTR(-ENOMEM)

    queue.fence_ctx.id = dma_fence_context_alloc(1)

    queue.priority = args.priority

    queue.ringbuf = await panthor_kernel_bo_create(
        group.ptdev,
        group.vm,
        args.ringbuf_size,
        DRM_PANTHOR_BO_NO_MMAP,
        DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC | DRM_PANTHOR_VM_BIND_OP_MAP_UNCACHED,
        _kernel_auto_va(),
        "CS ring buffer",
    )
    ret = 0
    if IS_ERR(queue.ringbuf):
        ret = PTR_ERR(queue.ringbuf)
    else:
        assert isinstance(queue.ringbuf, PanthorKernelBo)
        ret = await panthor_kernel_bo_vmap(queue.ringbuf)

    if not ret:
        mem, inp, out, in_va, out_va = await panthor_fw_alloc_queue_iface_mem(group.ptdev)
        queue.iface.mem = mem
        if IS_ERR(mem):
            ret = PTR_ERR(mem)
        else:
            assert inp is not None and out is not None
            queue.iface.input, queue.iface.output = inp, out
            queue.iface.input_fw_va, queue.iface.output_fw_va = in_va, out_va

    if not ret:
        ret = await drm_sched_init(
            queue.scheduler,
            panthor_queue_sched_ops,
            sched.wq,
            1,
            # The credit limit argument tells us the total number of
            # instructions across all CS slots in the ringbuffer, with
            # some jobs requiring twice as many as others, depending on
            # their profiling status.
            args.ringbuf_size // 8,
            0,
            msecs_to_jiffies(JOB_TIMEOUT_MS),
            group.ptdev.reset.wq,
            None,
            "panthor-queue",
            group.ptdev.base.dev,
        )
        if ret:
            # drm_sched_init() leaves ops set when it fails: group_free_queue()
            # must not take the scheduler for an initialised one.
            queue.scheduler.ops = None

    if not ret:
        drm_sched = queue.scheduler
        ret = await drm_sched_entity_init(queue.entity, 0, [drm_sched], 1, None)
        return queue

    # err_free_queue:
    await group_free_queue(group, queue)
    return ERR_PTR(ret)


_PORT = "panthor_testbed.mmu.panthor_sched:"
REPLACES = {
    f"{_PORT}group_create_queue": group_create_queue,
}

EXPECTED_DIFF = [
    "+ if ret:",
    "+ queue.scheduler.ops = None",
]
