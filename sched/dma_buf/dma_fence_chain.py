"""dma_fence_chain: timeline points (drivers/dma-buf/dma-fence-chain.c).

A chain node wraps a fence at a timeline point (its seqno, 64-bit) and
points to the previous node. It signals once its own fence and every
earlier one have signalled. Walking the chain drops signalled nodes
(garbage collection by swapping ``prev`` pointers), and
``dma_fence_chain_find_seqno`` finds the node covering a point.

The chain re-arms its callback from an ``irq_work`` (:mod:`.irq_work`), as
the kernel does, so its lock is never nested under a node's fence lock.
"""

from __future__ import annotations

from ..core.thread import SimThread
from ..deferred.irq_work import IrqWork, irq_work_queue
from ..errno import EINVAL
from ..locking.spin import SyncSpinLock
from ..mm.gfp import GFP_KERNEL
from ..mm.memory import kzalloc
from ..mm.objmem import kfree_if_allocated
from ..warn import WARN_ON
from .dma_fence import (
    DmaFence,
    DmaFenceCb,
    DmaFenceOps,
    __dma_fence_is_later,
    dma_fence_add_callback,
    dma_fence_context_alloc,
    dma_fence_get_atomic,
    dma_fence_init,
    dma_fence_is_signaled_atomic,
    dma_fence_put_atomic,
    dma_fence_signal,
    dma_fence_test_signaled_flag,
)


class DmaFenceChain(DmaFence):
    """``struct dma_fence_chain``."""

    __slots__ = ("cb", "fence", "prev", "prev_seqno", "work")

    is_container = True

    def __init__(self) -> None:
        super().__init__(timeline="unbound")
        self.prev: DmaFence | None = None
        self.prev_seqno = 0
        self.fence: DmaFence | None = None
        self.cb = DmaFenceCb(self)
        self.work = IrqWork(_chain_irq_work, "dma_fence_chain", self)


def to_dma_fence_chain(fence: DmaFence | None) -> DmaFenceChain | None:
    """``to_dma_fence_chain()``."""
    return fence if isinstance(fence, DmaFenceChain) else None


def dma_fence_chain_contained(fence: DmaFence) -> DmaFence:
    """``dma_fence_chain_contained()``: the wrapped fence, or ``fence`` itself."""
    chain = to_dma_fence_chain(fence)
    if chain is not None:
        assert chain.fence is not None
        return chain.fence
    return fence


def _get_prev(chain: DmaFenceChain) -> DmaFence | None:
    """``dma_fence_chain_get_prev()``."""
    return dma_fence_get_atomic(chain.prev)


def dma_fence_chain_walk(fence: DmaFence) -> DmaFence | None:
    """``dma_fence_chain_walk()``: the next unsignalled node (dropping signalled ones)."""
    chain = to_dma_fence_chain(fence)
    if chain is None:
        dma_fence_put_atomic(fence)
        return None
    while True:
        prev = _get_prev(chain)
        if prev is None:
            break
        prev_chain = to_dma_fence_chain(prev)
        if prev_chain is not None:
            assert prev_chain.fence is not None
            if not dma_fence_is_signaled_atomic(prev_chain.fence):
                break
            replacement = _get_prev(prev_chain)
        else:
            if not dma_fence_is_signaled_atomic(prev):
                break
            replacement = None
        if chain.prev is prev:  # cmpxchg(&chain->prev, prev, replacement)
            chain.prev = replacement
            dma_fence_put_atomic(prev)  # the reference the chain held
        else:
            dma_fence_put_atomic(replacement)
        dma_fence_put_atomic(prev)
    dma_fence_put_atomic(fence)
    return prev


def dma_fence_chain_iter(head: DmaFence) -> list[DmaFence]:
    """``dma_fence_chain_for_each(iter, head)`` as a list (no references kept)."""
    out: list[DmaFence] = []
    it = dma_fence_get_atomic(head)
    while it is not None:
        out.append(it)
        it = dma_fence_chain_walk(it)
    return out


def dma_fence_chain_find_seqno(fence: DmaFence | None, seqno: int) -> tuple[int, DmaFence | None]:
    """``dma_fence_chain_find_seqno(&fence, seqno)``: (0 or -EINVAL, the node covering it).

    Takes over the caller's reference on ``fence``; the returned node (None if
    every node up to the point signalled) carries a reference.
    """
    if not seqno:
        return 0, fence
    chain = to_dma_fence_chain(fence)
    if chain is None or chain.seqno < seqno:
        return -EINVAL, fence
    it = dma_fence_get_atomic(chain)
    while it is not None:
        it_chain = to_dma_fence_chain(it)
        if it.context != chain.context or it_chain is None or it_chain.prev_seqno < seqno:
            break
        it = dma_fence_chain_walk(it)
    dma_fence_put_atomic(chain)
    return 0, it


async def _chain_cb(f: DmaFence, cb: DmaFenceCb) -> None:
    """``dma_fence_chain_cb()``: re-arm from an irq_work, outside ``f``'s lock."""
    chain = cb.container
    assert isinstance(chain, DmaFenceChain)
    chain.work = IrqWork(_chain_irq_work, f"dma_fence_chain {chain.seqno}", chain)
    irq_work_queue(chain.work)
    dma_fence_put_atomic(f)


async def _chain_irq_work(work: IrqWork) -> None:
    """``dma_fence_chain_irq_work()``: wait on the next node, or signal the chain."""
    chain = work.container
    assert isinstance(chain, DmaFenceChain)
    if not await _enable_signaling(chain):
        await dma_fence_signal(chain)
    dma_fence_put_atomic(chain)


async def _enable_signaling(head: DmaFenceChain) -> bool:
    """``dma_fence_chain_enable_signaling()``: wait on the first unsignalled node."""
    dma_fence_get_atomic(head)
    it = dma_fence_get_atomic(head)
    while it is not None:
        f = dma_fence_chain_contained(it)
        dma_fence_get_atomic(f)
        if not await dma_fence_add_callback(f, head.cb, _chain_cb):
            dma_fence_put_atomic(it)
            return True
        dma_fence_put_atomic(f)
        it = dma_fence_chain_walk(it)
    dma_fence_put_atomic(head)
    return False


class _ChainOps(DmaFenceOps):
    use_64bit_seqno = True
    driver_name = "dma_fence"

    def get_timeline_name(self, fence: DmaFence) -> str:
        return "unbound"

    async def enable_signaling(self, fence: DmaFence) -> bool:
        chain = to_dma_fence_chain(fence)
        assert chain is not None
        return await _enable_signaling(chain)

    def signaled(self, fence: DmaFence) -> bool:
        """``dma_fence_chain_signaled()``: every node's fence signalled."""
        for it in dma_fence_chain_iter(fence):
            f = dma_fence_chain_contained(it)
            if not dma_fence_is_signaled_atomic(f):
                return False
        return True

    def release(self, fence: DmaFence) -> None:
        """``dma_fence_chain_release()``: drop the previous node and the fence."""
        chain = to_dma_fence_chain(fence)
        assert chain is not None
        dma_fence_put_atomic(chain.prev)
        chain.prev = None
        dma_fence_put_atomic(chain.fence)
        chain.fence = None
        kfree_if_allocated(chain)

    def signaller(self, fence: DmaFence) -> tuple[str, SimThread | None]:
        chain = to_dma_fence_chain(fence)
        for it in dma_fence_chain_iter(fence) if chain is not None else []:
            f = dma_fence_chain_contained(it)
            if not dma_fence_test_signaled_flag(f):
                who, thread = f.ops.signaller(f)
                return (f"timeline point {it.seqno}: {f.label}, signalled by {who}", thread)
        return ("the chain's last node", None)


DMA_FENCE_CHAIN_OPS = _ChainOps()


async def dma_fence_chain_alloc() -> DmaFenceChain | None:
    """``dma_fence_chain_alloc()``: kmalloc; None on -ENOMEM."""
    return await kzalloc(DmaFenceChain, GFP_KERNEL)


def dma_fence_chain_free(chain: DmaFenceChain) -> None:
    """``dma_fence_chain_free()``: an unused (never initialised) chain."""
    kfree_if_allocated(chain)


def dma_fence_chain_init(
    chain: DmaFenceChain, prev: DmaFence | None, fence: DmaFence, seqno: int
) -> None:
    """``dma_fence_chain_init()``: takes over the references on ``prev`` and ``fence``."""
    prev_chain = to_dma_fence_chain(prev)
    chain.prev = prev
    chain.fence = fence
    chain.prev_seqno = 0
    if (
        prev_chain is not None
        and prev is not None
        and __dma_fence_is_later(seqno, prev.seqno, prev.ops)
    ):
        context = prev.context
        chain.prev_seqno = prev.seqno
    else:
        context = dma_fence_context_alloc(1)
        if prev_chain is not None and prev is not None:
            seqno = max(prev.seqno, seqno)
    lock = SyncSpinLock("chain->lock", "&chain->lock")
    dma_fence_init(chain, DMA_FENCE_CHAIN_OPS, lock, context, seqno)
    WARN_ON(to_dma_fence_chain(fence) is not None)
