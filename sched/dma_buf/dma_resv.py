"""dma_resv: a reservation ww_mutex plus fences by usage (drivers/dma-buf/dma-resv.c).

* Locking maps onto :mod:`.ww_mutex` with ``reservation_ww_class`` (wait-die).
* ``dma_resv_reserve_fences`` must precede ``dma_resv_add_fence`` in the same
  locked section: the debug build (CONFIG_DEBUG_MUTEXES) shrinks the
  reservation to the fences present at every unlock, and adding without a
  free slot is a ``BUG_ON``. The fence array comes from ``kmalloc`` (it can
  fail, it touches ``fs_reclaim``, and its ``ksize`` slack is real slots).
* A fence of a context already present replaces it in place if the old
  usage is ``>=`` and the new fence is later or the same; a signalled fence
  is replaced by anything.
* ``dma_resv_test_signaled`` and ``dma_resv_wait_timeout`` are lockless and
  see every fence whose usage is ``<=`` the one asked for; the unlocked
  iterator restarts when the fence list changed under it, as the kernel's
  seqcount does.

The lockdep priming of ``dma_resv_lockdep()`` (``mmap_lock -> resv ->
fs_reclaim -> mmu_notifier -> dma_fence_map``) is done by the core graph at
creation (:func:`~.lockdep.prime_dma_resv_lockdep`) with the class names of
:data:`reservation_ww_class`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from ..core.failure import Failure, KernelBug
from ..core.frames import fast_site, format_site
from ..core.kernel import current_kernel, preempt
from ..core.thread import SimThread
from ..errno import ENOMEM
from ..locking.lockdep import RESV_ACQUIRE_KEY, RESV_MUTEX_KEY, Lockdep
from ..locking.ww_mutex import (
    WwAcquireCtx,
    WwClass,
    WwMutex,
    ww_mutex_destroy,
    ww_mutex_lock,
    ww_mutex_lock_interruptible,
    ww_mutex_lock_slow,
    ww_mutex_lock_slow_interruptible,
    ww_mutex_trylock,
    ww_mutex_unlock,
)
from ..mm.gfp import GFP_KERNEL
from ..mm.memory import kfree, kmalloc
from ..warn import WARN_ON
from .dma_fence import (
    DmaFence,
    dma_fence_get_atomic,
    dma_fence_get_rcu,
    dma_fence_is_container,
    dma_fence_is_later_or_same,
    dma_fence_is_signaled_atomic,
    dma_fence_put_atomic,
    dma_fence_wait_timeout,
)

reservation_ww_class: Final = WwClass("reservation_ww_class", wait_die=True)
assert reservation_ww_class.acquire_name == RESV_ACQUIRE_KEY
assert reservation_ww_class.mutex_name == RESV_MUTEX_KEY


class DmaResvUsage(IntEnum):
    """``enum dma_resv_usage``: a query with usage U sees every fence with usage <= U."""

    KERNEL = 0
    WRITE = 1
    READ = 2
    BOOKKEEP = 3


DMA_RESV_USAGE_KERNEL: Final = DmaResvUsage.KERNEL
DMA_RESV_USAGE_WRITE: Final = DmaResvUsage.WRITE
DMA_RESV_USAGE_READ: Final = DmaResvUsage.READ
DMA_RESV_USAGE_BOOKKEEP: Final = DmaResvUsage.BOOKKEEP


def dma_resv_usage_rw(write: bool) -> DmaResvUsage:
    """``dma_resv_usage_rw()``: the usage an access must wait for."""
    return DMA_RESV_USAGE_READ if write else DMA_RESV_USAGE_WRITE


# kmalloc size classes (SLUB, 64-bit): what ksize() rounds a request up to.
_KMALLOC_SIZES: Final = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)
_LIST_HEADER: Final = 24  # struct rcu_head (16) + u32 num_fences + u32 max_fences
_PAGE_SIZE: Final = 4096


def _ksize(size: int) -> int:
    for s in _KMALLOC_SIZES:
        if size <= s:
            return s
    pages = (size + _PAGE_SIZE - 1) // _PAGE_SIZE
    return _PAGE_SIZE * (1 << (pages - 1).bit_length())


def _roundup_pow_of_two(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


class DmaResvList:
    """``struct dma_resv_list``: ``table[i] = (fence, usage)``, ``num_fences`` used."""

    __slots__ = ("max_fences", "num_fences", "table")

    def __init__(self, max_fences: int) -> None:
        self.table: list[tuple[DmaFence, DmaResvUsage]] = []
        self.num_fences = 0
        self.max_fences = max_fences


class DmaResv:
    """``struct dma_resv`` (``dma_resv_init()`` is the constructor)."""

    __slots__ = ("fences", "lock", "name", "seq")

    def __init__(self, name: str = "resv") -> None:
        self.name = name
        self.lock = WwMutex(reservation_ww_class, name)
        self.seq = 0  # the seqcount of the unlocked readers
        self.fences: DmaResvList | None = None

    def __repr__(self) -> str:
        return f"<dma_resv {self.describe()}>"

    def describe(self) -> str:
        """Holder, waiters and fences, for reports."""
        lst = self.fences
        fences = (
            ", ".join(f"{f.label} {u.name} {f.state()}" for f, u in lst.table[: lst.num_fences])
            if lst is not None
            else ""
        )
        return f"{self.lock.describe()}; fences: [{fences}]"


def dma_resv_init(obj: DmaResv) -> None:
    """``dma_resv_init()`` (re-initialise an object)."""
    obj.lock = WwMutex(reservation_ww_class, obj.name)
    obj.seq = 0
    obj.fences = None


# ---------------------------------------------------------------------- locking


async def dma_resv_lock(obj: DmaResv, ctx: WwAcquireCtx | None) -> int:
    """``dma_resv_lock()``: 0, -EALREADY or -EDEADLK (see ``ww_mutex_lock``)."""
    return await ww_mutex_lock(obj.lock, ctx)


async def dma_resv_lock_interruptible(obj: DmaResv, ctx: WwAcquireCtx | None) -> int:
    """``dma_resv_lock_interruptible()`` (no signals in the model: never -EINTR)."""
    return await ww_mutex_lock_interruptible(obj.lock, ctx)


async def dma_resv_lock_slow(obj: DmaResv, ctx: WwAcquireCtx) -> None:
    """``dma_resv_lock_slow()``: the contended lock after a back-off."""
    await ww_mutex_lock_slow(obj.lock, ctx)


async def dma_resv_lock_slow_interruptible(obj: DmaResv, ctx: WwAcquireCtx) -> int:
    """``dma_resv_lock_slow_interruptible()``."""
    return await ww_mutex_lock_slow_interruptible(obj.lock, ctx)


async def dma_resv_trylock(obj: DmaResv) -> bool:
    """``dma_resv_trylock()`` (no context)."""
    return await ww_mutex_trylock(obj.lock, None)


def dma_resv_is_locked(obj: DmaResv) -> bool:
    """``dma_resv_is_locked()``."""
    return obj.lock.owner is not None


def dma_resv_locking_ctx(obj: DmaResv) -> WwAcquireCtx | None:
    """``dma_resv_locking_ctx()``."""
    return obj.lock.ctx


def dma_resv_held(obj: DmaResv) -> bool:
    """``dma_resv_held()`` = ``lockdep_is_held()``: does the running thread hold it?"""
    k = current_kernel()
    cur = k.current
    if cur is None:
        return False
    if k.lockdep is not None:
        return Lockdep.is_held(cur, obj.lock.dep_map)
    return obj.lock.owner is cur


def dma_resv_assert_held(obj: DmaResv) -> None:
    """``dma_resv_assert_held()``: WARN unless the running thread holds ``obj``."""
    k = current_kernel()
    cur = k.current
    if cur is None or k.stopping or dma_resv_held(obj):
        return
    holder = obj.lock.owner.label if obj.lock.owner is not None else "nobody"
    site = format_site(fast_site(2))
    k.fail(
        Failure(
            "warn",
            f"lockdep_assert_held(&{obj.name}->lock.base) failed in {cur.label} "
            f"(held by {holder}) at {site}",
            signature=f"warn:dma_resv_assert_held:{site}",
        ),
        fatal=k.config.warn_fatal,
    )


def dma_resv_reset_max_fences(obj: DmaResv) -> None:
    """``dma_resv_reset_max_fences()`` (CONFIG_DEBUG_MUTEXES): reservations end at unlock."""
    dma_resv_assert_held(obj)
    if obj.fences is not None:
        obj.fences.max_fences = obj.fences.num_fences


async def dma_resv_unlock(obj: DmaResv) -> None:
    """``dma_resv_unlock()``: reset the slot reservation, then unlock."""
    await preempt()
    dma_resv_reset_max_fences(obj)
    await ww_mutex_unlock(obj.lock)


# ---------------------------------------------------------------------- fences


async def _list_alloc(max_fences: int) -> DmaResvList | None:
    """``dma_resv_list_alloc()``: kmalloc; ``max_fences`` includes the ksize slack."""
    size = _LIST_HEADER + 8 * max_fences
    usable = (_ksize(size) - _LIST_HEADER) // 8
    return await kmalloc(lambda: DmaResvList(usable), GFP_KERNEL)


def _list_free(lst: DmaResvList | None) -> None:
    """``dma_resv_list_free()``: put every fence, free the array."""
    if lst is None:
        return
    for fence, _usage in lst.table[: lst.num_fences]:
        dma_fence_put_atomic(fence)
    kfree(lst)


async def dma_resv_reserve_fences(obj: DmaResv, num_fences: int) -> int:
    """``dma_resv_reserve_fences()``: 0 or -ENOMEM; grows to max(4, 2x) when needed."""
    await preempt()
    dma_resv_assert_held(obj)
    old = obj.fences
    if old is not None and old.max_fences:
        if old.num_fences + num_fences <= old.max_fences:
            return 0
        max_ = max(old.num_fences + num_fences, old.max_fences * 2)
    else:
        max_ = max(4, _roundup_pow_of_two(num_fences))
    new = await _list_alloc(max_)
    if new is None:
        return -ENOMEM
    # Unsignalled fences move over (their references with them); signalled
    # ones are dropped once the new array is visible.
    dropped: list[DmaFence] = []
    if old is not None:
        for fence, usage in old.table[: old.num_fences]:
            if dma_fence_is_signaled_atomic(fence):
                dropped.append(fence)
            else:
                new.table.append((fence, usage))
    new.num_fences = len(new.table)
    obj.fences = new
    current_kernel().ev("resv_reserve", obj.name, f"{num_fences} -> max {new.max_fences}")
    if old is None:
        return 0
    for fence in dropped:
        dma_fence_put_atomic(fence)
    kfree(old)
    return 0


async def dma_resv_add_fence(obj: DmaResv, fence: DmaFence, usage: DmaResvUsage) -> None:
    """``dma_resv_add_fence()``: needs the lock and a reserved slot (else ``BUG_ON``)."""
    await preempt()
    k = current_kernel()
    dma_fence_get_atomic(fence)
    dma_resv_assert_held(obj)
    WARN_ON(dma_fence_is_container(fence))
    fobj = obj.fences
    if fobj is None:
        raise KernelBug(
            # The run's failure names where it was raised (the caller's line).
            f"BUG: kernel NULL pointer dereference in dma_resv_add_fence({obj.name}): no "
            "dma_resv_reserve_fences() before",
            signature="exception:BUG:dma_resv_add_fence-null-list",
        )
    obj.seq += 1  # write_seqcount_begin
    for i in range(fobj.num_fences):
        old, old_usage = fobj.table[i]
        if (
            old.context == fence.context
            and old_usage >= usage
            and dma_fence_is_later_or_same(fence, old)
        ) or dma_fence_is_signaled_atomic(old):
            fobj.table[i] = (fence, usage)
            obj.seq += 1
            k.ev("resv_add_fence", obj.name, f"{fence.label} {usage.name} (replaces)")
            dma_fence_put_atomic(old)
            return
    if fobj.num_fences >= fobj.max_fences:
        raise KernelBug(
            f"kernel BUG at drivers/dma-buf/dma-resv.c: BUG_ON(fobj->num_fences >= "
            f"fobj->max_fences) adding {fence.label} to {obj.name} without a reserved slot "
            f"({fobj.num_fences}/{fobj.max_fences}) at {format_site(fast_site(2))}",
            signature="exception:BUG:dma_resv_add_fence-no-slot",
        )
    fobj.table.append((fence, usage))
    fobj.num_fences += 1
    obj.seq += 1  # write_seqcount_end
    k.ev("resv_add_fence", obj.name, f"{fence.label} {usage.name}")


def dma_resv_replace_fences(
    obj: DmaResv, context: int, replacement: DmaFence, usage: DmaResvUsage
) -> None:
    """``dma_resv_replace_fences()``: every fence of ``context`` becomes ``replacement``."""
    dma_resv_assert_held(obj)
    lst = obj.fences
    obj.seq += 1
    if lst is not None:
        for i in range(lst.num_fences):
            old, _ = lst.table[i]
            if old.context != context:
                continue
            dma_fence_get_atomic(replacement)
            lst.table[i] = (replacement, usage)
            dma_fence_put_atomic(old)
    obj.seq += 1


def dma_resv_for_each_fence(obj: DmaResv, usage: DmaResvUsage) -> list[tuple[DmaFence, int]]:
    """``dma_resv_for_each_fence()`` (locked iterator): the fences with usage <= ``usage``."""
    dma_resv_assert_held(obj)
    lst = obj.fences
    if lst is None:
        return []
    return [(f, int(u)) for f, u in lst.table[: lst.num_fences] if u <= usage]


def _unlocked_snapshot(obj: DmaResv) -> tuple[int, list[tuple[DmaFence, DmaResvUsage]]]:
    lst = obj.fences
    return obj.seq, (list(lst.table[: lst.num_fences]) if lst is not None else [])


def dma_resv_test_signaled(obj: DmaResv, usage: DmaResvUsage) -> bool:
    """``dma_resv_test_signaled()``: lockless; True if every fence with usage <= U signalled.

    Synchronous (it runs under ``rcu_read_lock()`` in the kernel): no yield point.
    """
    _seq, table = _unlocked_snapshot(obj)
    for fence, u in table:
        if u > usage:
            continue
        if dma_fence_get_rcu(fence) is None:
            continue
        signaled = dma_fence_is_signaled_atomic(fence)
        dma_fence_put_atomic(fence)
        if not signaled:
            return False
    return True


async def dma_resv_wait_timeout(obj: DmaResv, usage: DmaResvUsage, intr: bool, timeout: int) -> int:
    """``dma_resv_wait_timeout()``: waits for each fence in turn; jiffies left, 0, or error."""
    await preempt()
    ret = timeout if timeout else 1
    restart = True
    while restart:
        restart = False
        seq, table = _unlocked_snapshot(obj)
        for fence, u in table:
            if u > usage or dma_fence_get_rcu(fence) is None:
                continue
            if dma_fence_is_signaled_atomic(fence):
                dma_fence_put_atomic(fence)
                continue
            ret = await dma_fence_wait_timeout(fence, intr, ret)
            dma_fence_put_atomic(fence)
            if ret <= 0:
                return ret
            if obj.seq != seq:
                restart = True  # read_seqcount_retry(): walk the new list from the start
                break
    return ret


async def dma_resv_get_fences(obj: DmaResv, usage: DmaResvUsage) -> tuple[int, list[DmaFence]]:
    """``dma_resv_get_fences()``: (0, references on the unsignalled fences <= usage) or -ENOMEM."""
    await preempt()
    while True:
        seq, table = _unlocked_snapshot(obj)
        fences: list[DmaFence] = []
        for fence, u in table:
            if u > usage or dma_fence_get_rcu(fence) is None:
                continue
            if dma_fence_is_signaled_atomic(fence):
                dma_fence_put_atomic(fence)
                continue
            fences.append(fence)
        arr = await kmalloc(8 * (len(fences) + 1), GFP_KERNEL)  # krealloc_array()
        if arr is None:
            for fence in fences:
                dma_fence_put_atomic(fence)
            return -ENOMEM, []
        kfree(arr)  # the model returns a Python list
        if obj.seq == seq:
            return 0, fences
        for fence in fences:
            dma_fence_put_atomic(fence)


def dma_resv_fini(obj: DmaResv) -> None:
    """``dma_resv_fini()``: put the fences, free the array, destroy the lock."""
    _list_free(obj.fences)
    obj.fences = None
    ww_mutex_destroy(obj.lock)


def dma_resv_lock_holder(obj: DmaResv) -> SimThread | None:
    """The thread holding ``obj`` (for reports and tests)."""
    return obj.lock.owner
