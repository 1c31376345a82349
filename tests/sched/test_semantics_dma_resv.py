"""dma_resv semantics (drivers/dma-buf/dma-resv.c): the replacement rules of
``dma_resv_add_fence()``.

The kernel replaces slot ``i`` when ``(old->context == fence->context && old_usage >= usage
&& dma_fence_is_later_or_same(fence, old)) || dma_fence_is_signaled(old)``, puts the old
fence and keeps the new usage; otherwise the fence goes into a new (reserved) slot.
Each test names one behaviour and fails when it is changed (see docs/mutation.md).
"""

from __future__ import annotations

import pytest

from panthor_testbed.sched import (
    DMA_RESV_USAGE_BOOKKEEP,
    DMA_RESV_USAGE_KERNEL,
    DMA_RESV_USAGE_READ,
    DMA_RESV_USAGE_WRITE,
    GFP_KERNEL,
    DmaFence,
    DmaFenceOps,
    DmaResv,
    DmaResvUsage,
    Kernel,
    dma_fence_context_alloc,
    dma_fence_init,
    dma_fence_put,
    dma_fence_signal,
    dma_resv_add_fence,
    dma_resv_fini,
    dma_resv_for_each_fence,
    dma_resv_lock,
    dma_resv_reserve_fences,
    dma_resv_test_signaled,
    dma_resv_unlock,
    kmalloc,
)
from panthor_testbed.sched.core.harness import arun

Table = list[tuple[str, str]]


class Ops(DmaFenceOps):
    driver_name = "sem"


OPS = Ops()


async def new_fence(context: int, seqno: int, name: str) -> DmaFence:
    f = await kmalloc(DmaFence, GFP_KERNEL)
    assert f is not None
    dma_fence_init(f, OPS, None, context, seqno)
    f.timeline = name
    return f


def table(resv: DmaResv) -> Table:
    return [
        (f.timeline, DmaResvUsage(u).name)
        for f, u in dma_resv_for_each_fence(resv, DMA_RESV_USAGE_BOOKKEEP)
    ]


async def two_adds(
    first: tuple[int, int, DmaResvUsage],
    second: tuple[int, int, DmaResvUsage],
    signal_first: bool = False,
    same_fence: bool = False,
) -> tuple[Table, list[int]]:
    """Add ``first`` then ``second`` (context index, seqno, usage): the table and the
    reference counts of both fences after the second add."""
    out: dict[str, object] = {}

    async def body(k: Kernel) -> None:
        base = dma_fence_context_alloc(2)
        resv = DmaResv("resv")
        f1 = await new_fence(base + first[0], first[1], "f1")
        f2 = f1 if same_fence else await new_fence(base + second[0], second[1], "f2")
        if signal_first:
            await dma_fence_signal(f1)
        await dma_resv_lock(resv, None)
        assert await dma_resv_reserve_fences(resv, 2) == 0
        await dma_resv_add_fence(resv, f1, first[2])
        await dma_resv_add_fence(resv, f2, second[2])
        out["table"] = table(resv)
        out["refs"] = [f1.refcount.refs, f2.refcount.refs]
        for f in (f1, f2):
            if not f.flags & 1:
                await dma_fence_signal(f)
        await dma_resv_unlock(resv)
        dma_resv_fini(resv)
        await dma_fence_put(f1)
        if not same_fence:
            await dma_fence_put(f2)

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    t, r = out["table"], out["refs"]
    assert isinstance(t, list) and isinstance(r, list)
    return t, r


R, W, BK, KRN = (
    DMA_RESV_USAGE_READ,
    DMA_RESV_USAGE_WRITE,
    DMA_RESV_USAGE_BOOKKEEP,
    DMA_RESV_USAGE_KERNEL,
)


async def test_later_fence_same_context_same_usage_replaces_and_puts_the_old() -> None:
    t, refs = await two_adds((0, 1, R), (0, 2, R))
    assert t == [("f2", "READ")]
    assert refs == [1, 2]  # the resv dropped f1 and holds f2


@pytest.mark.parametrize(
    ("old", "new", "replaced"),
    [
        pytest.param(BK, R, True, id="old BOOKKEEP >= new READ: replaced"),
        pytest.param(R, KRN, True, id="old READ >= new KERNEL: replaced"),
        pytest.param(R, BK, False, id="old READ < new BOOKKEEP: kept"),
        pytest.param(KRN, W, False, id="old KERNEL < new WRITE: kept"),
    ],
)
async def test_replacement_needs_old_usage_at_least_the_new(
    old: DmaResvUsage, new: DmaResvUsage, replaced: bool
) -> None:
    """``old_usage >= usage``: a fence may only take the slot of one it is stronger than;
    the slot then carries the new usage."""
    t, refs = await two_adds((0, 1, old), (0, 2, new))
    if replaced:
        assert t == [("f2", new.name)] and refs == [1, 2]
    else:
        assert t == [("f1", old.name), ("f2", new.name)] and refs == [2, 2]


async def test_older_fence_of_the_context_does_not_replace_a_later_one() -> None:
    """``dma_fence_is_later_or_same(fence, old)``: an earlier seqno gets its own slot."""
    t, refs = await two_adds((0, 2, R), (0, 1, R))
    assert t == [("f1", "READ"), ("f2", "READ")] and refs == [2, 2]


async def test_the_same_fence_again_reuses_its_slot() -> None:
    """``dma_fence_is_later_or_same()`` is true for the fence itself: no new slot, and the
    reference taken for the second add replaces the first one."""
    t, refs = await two_adds((0, 1, R), (0, 1, R), same_fence=True)
    assert t == [("f1", "READ")] and refs == [2, 2]


async def test_other_context_unsignalled_gets_a_new_slot() -> None:
    t, refs = await two_adds((0, 5, R), (1, 9, R))
    assert t == [("f1", "READ"), ("f2", "READ")] and refs == [2, 2]


async def test_signalled_fence_is_replaced_by_any_fence() -> None:
    """``|| dma_fence_is_signaled(old)``: a signalled fence of another context, with a
    weaker usage, still gives its slot away (and its reference is dropped)."""
    t, refs = await two_adds((0, 5, KRN), (1, 1, BK), signal_first=True)
    assert t == [("f2", "BOOKKEEP")] and refs == [1, 2]


async def test_replaced_fence_is_no_longer_waited_for() -> None:
    """After a replacement the resv only sees the new fence (``dma_resv_test_signaled``)."""
    seen: list[bool] = []

    async def body(k: Kernel) -> None:
        ctx = dma_fence_context_alloc(1)
        resv = DmaResv("resv")
        f1, f2 = await new_fence(ctx, 1, "f1"), await new_fence(ctx, 2, "f2")
        await dma_resv_lock(resv, None)
        await dma_resv_reserve_fences(resv, 2)
        await dma_resv_add_fence(resv, f1, DMA_RESV_USAGE_WRITE)
        await dma_resv_add_fence(resv, f2, DMA_RESV_USAGE_WRITE)
        await dma_resv_unlock(resv)
        await dma_fence_signal(f2)
        seen.append(dma_resv_test_signaled(resv, DMA_RESV_USAGE_BOOKKEEP))
        await dma_fence_signal(f1)
        dma_resv_fini(resv)
        for f in (f1, f2):
            await dma_fence_put(f)

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    assert seen == [True]


@pytest.mark.parametrize(
    ("first", "then", "expect"),
    [
        pytest.param(1, None, [5], id="1 -> max(4, 1) slots, 5 with the ksize slack"),
        pytest.param(5, None, [9], id="5 -> roundup_pow_of_two = 8, 9 with slack"),
        pytest.param(9, None, [21], id="9 -> 16, 21 with slack (192-byte object)"),
        pytest.param(5, 9, [9, 9], id="room left: no reallocation"),
        pytest.param(5, 10, [9, 21], id="grow to max(num + n, 2 * max) = 18, 21 with slack"),
    ],
)
async def test_reserve_fences_sizes(first: int, then: int | None, expect: list[int]) -> None:
    """``dma_resv_reserve_fences()``: a new list has ``max(4, roundup_pow_of_two(n))``
    slots, a full one grows to ``max(num_fences + n, 2 * max_fences)``, and ``ksize()``
    slack becomes usable slots (``dma_resv_list_alloc()``)."""
    got: list[int] = []

    async def body(k: Kernel) -> None:
        resv = DmaResv("resv")
        ctx = dma_fence_context_alloc(16)
        await dma_resv_lock(resv, None)
        assert await dma_resv_reserve_fences(resv, first) == 0
        assert resv.fences is not None
        got.append(resv.fences.max_fences)
        fences = []
        if then is not None:
            for i in range(9):
                f = await new_fence(ctx + i, 1, f"f{i}")
                fences.append(f)
                await dma_resv_add_fence(resv, f, DMA_RESV_USAGE_READ)
            assert await dma_resv_reserve_fences(resv, then - 9) == 0
            got.append(resv.fences.max_fences)
        for f in fences:
            await dma_fence_signal(f)
        await dma_resv_unlock(resv)
        dma_resv_fini(resv)
        for f in fences:
            await dma_fence_put(f)

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]
    assert got == expect


async def test_unlock_without_holding_is_first_a_resv_assert() -> None:
    """``dma_resv_unlock()`` starts with ``dma_resv_reset_max_fences()``, whose
    ``dma_resv_assert_held()`` is the first report for an unlock by a non-holder."""

    async def body(k: Kernel) -> None:
        resv = DmaResv("resv")
        await dma_resv_lock(resv, None)

        async def other() -> None:
            await dma_resv_unlock(resv)

        t = k.spawn(other, name="other")
        await t.join()

    k = await arun(body)
    assert k.primary_failure is not None
    assert k.primary_failure.signature.startswith("warn:dma_resv_assert_held")
