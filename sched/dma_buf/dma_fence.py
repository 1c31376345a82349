"""dma_fence (drivers/dma-buf/dma-fence.c, include/linux/dma-fence.h).

A fence has a context and a seqno, signals once (optionally with an error
set before), runs its callbacks in the signaller's thread under
``fence->lock``, and can be waited on. The ``dma_fence_map`` signalling
annotations of the core lockdep apply: ``dma_fence_signal`` brackets itself
with ``dma_fence_begin/end_signalling`` and every wait does
``__dma_fence_might_wait()``.

Signalling is not one atomic block, as in the kernel: the signaller sets
``SIGNALED`` and then runs the callbacks one by one, holding ``fence->lock``
(a :class:`~.spin.SyncSpinLock` taken with ``async with``) across a yield
point before each of them. Meanwhile other threads see the bit set (the
lockless ``test_bit`` of :func:`dma_fence_is_signaled`,
:func:`dma_fence_add_callback`, :func:`dma_fence_default_wait`) although
callbacks have not run yet, and a thread that needs the lock
(``add_callback`` after its lockless test, ``remove_callback``, a waiter
taking its callback off) spins until the signaller is done. Callbacks are
``async`` functions (atomic context: they must not sleep, but they yield
where the kernel touches unlocked state).

Every public ``async`` operation starts with a yield point. The remaining
``*_atomic`` variants (get, put, is_signaled, get_stub) are the same
operation without it, for code between two yield points.

Timeouts are in jiffies (``sched.clock``: HZ = 1000), as in the kernel.
A fence allocated with ``kmalloc``/``kzalloc`` is freed with ``kfree`` on its
last put (so a later use is a use-after-free finding); others are just
released. Deadlock reports name the fence and who is expected to signal it
(:meth:`DmaFenceOps.signaller`).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from types import CodeType
from typing import Any, Final

from ..core.clock import MAX_SCHEDULE_TIMEOUT, NSEC_PER_JIFFY
from ..core.failure import Failure, InvariantViolation, UseAfterFree
from ..core.frames import fast_site, format_site
from ..core.kernel import Kernel, current_kernel, preempt
from ..core.thread import SimThread
from ..deferred.irq_work import IrqWork, irq_work_queue
from ..errno import EDEADLK, EINVAL, ENOENT, MAX_ERRNO
from ..locking.lockdep import (
    dma_fence_begin_signalling,
    dma_fence_end_signalling,
    dma_fence_might_wait,
    lockdep_assert_held,
    might_sleep,
)
from ..locking.refcount import REFCOUNT_MAX, REFCOUNT_SATURATED, RefCount
from ..locking.spin import SyncSpinLock
from ..mm.objmem import kfree_if_allocated

DMA_FENCE_FLAG_SIGNALED_BIT: Final = 0
DMA_FENCE_FLAG_TIMESTAMP_BIT: Final = 1
DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT: Final = 2
DMA_FENCE_FLAG_USER_BITS: Final = 3

_SIGNALED: Final = 1 << DMA_FENCE_FLAG_SIGNALED_BIT
_TIMESTAMP: Final = 1 << DMA_FENCE_FLAG_TIMESTAMP_BIT
_ENABLE_SIGNAL: Final = 1 << DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT

_CONTEXT_KEY: Final = "dma_fence_context_counter"
_STUB_KEY: Final = "dma_fence_stub"


class DmaFenceOps:
    """``struct dma_fence_ops``. Subclass and override what the driver provides.

    The defaults behave as the absent optional ops do. :meth:`signaller` is
    the model's addition: who is expected to signal the fence, for reports.
    """

    use_64bit_seqno: bool = False
    driver_name: str = "model"

    def get_driver_name(self, fence: DmaFence) -> str:
        return self.driver_name

    def get_timeline_name(self, fence: DmaFence) -> str:
        return fence.timeline or "unbound"

    async def enable_signaling(self, fence: DmaFence) -> bool:
        """Called under ``fence->lock``; False means "signal it now".

        ``async`` because an implementation may take other fences' locks
        (``dma_fence_chain``), which can be held across a yield point.
        """
        return True

    def signaled(self, fence: DmaFence) -> bool:
        """Polled by ``dma_fence_is_signaled()`` (may signal the fence)."""
        return False

    def release(self, fence: DmaFence) -> None:
        """The last reference is gone (``dma_fence_free()`` by default)."""
        dma_fence_free(fence)

    def signaller(self, fence: DmaFence) -> tuple[str, SimThread | None]:
        """(who should signal ``fence``, the thread that will, if known)."""
        return (fence.signaller_hint or "no signaller registered", None)


DEFAULT_FENCE_OPS: Final = DmaFenceOps()

DmaFenceFunc = Callable[["DmaFence", "DmaFenceCb"], Awaitable[None]]


class DmaFenceCb:
    """``struct dma_fence_cb``: ``await func(fence, cb)`` runs in the signaller under
    ``fence->lock`` (atomic context)."""

    __slots__ = ("container", "fence", "func")

    def __init__(self, container: Any = None) -> None:
        self.func: DmaFenceFunc | None = None
        self.fence: DmaFence | None = None  # the fence it is queued on (list_empty(&cb->node))
        self.container = container  # container_of()


class DmaFence:
    """``struct dma_fence``.

    ``DmaFence(ops, lock, context, seqno)`` is ``dma_fence_init()``-ed (refcount 1;
    ``ops`` None: default ops, ``lock`` None: a private lock). ``DmaFence()``
    with none of them is zeroed memory, for a fence embedded in a structure
    and initialised later with :func:`dma_fence_init`.

    ``container`` plays ``container_of()`` for fences embedded in a bigger
    object (drm_sched's ``scheduled``/``finished``).
    """

    __slots__ = (
        "cb_list",
        "container",
        "context",
        "error",
        "flags",
        "lock",
        "ops",
        "refcount",
        "seqno",
        "signaller_hint",
        "timeline",
        "timestamp",
    )

    is_container = False  # dma_fence_array / dma_fence_chain

    def __init__(
        self,
        ops: DmaFenceOps | None = None,
        lock: SyncSpinLock | None = None,
        context: int = 0,
        seqno: int = 0,
        *,
        timeline: str = "",
        container: Any = None,
    ) -> None:
        self.ops: DmaFenceOps = DEFAULT_FENCE_OPS
        self.lock: SyncSpinLock | None = None
        self.context = 0
        self.seqno = 0
        self.flags = 0
        self.error = 0
        self.timestamp = 0
        self.refcount = RefCount(0, "dma_fence")
        self.cb_list: list[DmaFenceCb] = []
        self.timeline = timeline
        self.container = container
        self.signaller_hint: str | None = None
        if ops is not None or lock is not None or context or seqno:
            dma_fence_init(self, ops or DEFAULT_FENCE_OPS, lock, context, seqno)

    @property
    def label(self) -> str:
        return (
            f"{self.ops.get_driver_name(self)}:{self.ops.get_timeline_name(self)} "
            f"{self.context}:{self.seqno}"
        )

    def state(self) -> str:
        if self.flags & _SIGNALED:
            return f"signalled (error {self.error})" if self.error else "signalled"
        return "unsignalled" + (f" (error {self.error} set)" if self.error else "")

    def __repr__(self) -> str:
        return f"<dma_fence {self.label} {self.state()}>"


def dma_fence_init(
    fence: DmaFence,
    ops: DmaFenceOps,
    lock: SyncSpinLock | None,
    context: int,
    seqno: int,
) -> None:
    """``dma_fence_init()``: refcount 1, error 0, no callbacks.

    ``lock`` may be None for a fence with a private lock (the model's
    convenience; the kernel BUG()s on a NULL lock). The private lock stands
    for the caller's own ``spin_lock_init()``-ed lock, so its lockdep class is
    the caller's line: fences made at different sites never share a class.
    """
    fence.ops = ops
    fence.lock = lock if lock is not None else SyncSpinLock("fence->lock", _private_lock_key())
    fence.context = context
    fence.seqno = seqno
    fence.flags = 0
    fence.error = 0
    fence.timestamp = 0
    fence.refcount = RefCount(1, "dma_fence")
    fence.cb_list = []


_private_lock_keys: dict[tuple[CodeType, int], str] = {}


def _private_lock_key() -> str:
    """The lock class of a private fence lock: the first caller outside this file."""
    frame = sys._getframe(2)
    while frame.f_back is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    site = (frame.f_code, frame.f_lineno)
    key = _private_lock_keys.get(site)
    if key is None:
        key = _private_lock_keys[site] = f"&fence->lock ({format_site(site)})"
    return key


def _fence_lock(fence: DmaFence) -> SyncSpinLock:
    lock = fence.lock
    if lock is None:
        raise UseAfterFree(
            f"use of an uninitialised dma_fence ({fence.timeline or '?'}) at "
            f"{format_site(fast_site(3))}",
            signature="use-after-free:dma_fence-uninitialised",
        )
    return lock


def dma_fence_context_alloc(num: int) -> int:
    """``dma_fence_context_alloc()``: ``num`` fresh contexts (per run, from 1)."""
    k = current_kernel()
    _warn_on(k, num <= 0, "dma_fence_context_alloc(0)")
    first: int = k.objects.get(_CONTEXT_KEY, 1)
    k.objects[_CONTEXT_KEY] = first + num
    return first


def _warn_on(k: Kernel, cond: bool, what: str) -> bool:
    if cond and not k.stopping:
        site = format_site(fast_site(3))
        k.fail(
            Failure("warn", f"WARNING at {site}: {what}", signature=f"warn:{what}"),
            fatal=k.config.warn_fatal,
        )
    return cond


# ---------------------------------------------------------------------- seqnos


def __dma_fence_is_later(f1: int, f2: int, ops: DmaFenceOps) -> bool:
    """``__dma_fence_is_later()``: 32-bit wrapping unless the ops use 64-bit seqnos."""
    if ops.use_64bit_seqno:
        return f1 > f2
    diff = (f1 - f2) & 0xFFFFFFFF
    return 0 < diff < 0x80000000


def dma_fence_is_later(f1: DmaFence, f2: DmaFence) -> bool:
    """``dma_fence_is_later()``: WARN if the contexts differ."""
    k = current_kernel()
    if _warn_on(k, f1.context != f2.context, "dma_fence_is_later() across contexts"):
        return False
    return __dma_fence_is_later(f1.seqno, f2.seqno, f1.ops)


def dma_fence_is_later_or_same(f1: DmaFence, f2: DmaFence) -> bool:
    """``dma_fence_is_later_or_same()``."""
    return f1 is f2 or dma_fence_is_later(f1, f2)


def dma_fence_is_container(fence: DmaFence) -> bool:
    """``dma_fence_is_container()``: an array or a chain."""
    return fence.is_container


def dma_fence_test_signaled_flag(fence: DmaFence) -> bool:
    """``test_bit(DMA_FENCE_FLAG_SIGNALED_BIT, &fence->flags)`` (no ops poll, no yield)."""
    return bool(fence.flags & _SIGNALED)


# ---------------------------------------------------------------------- references


def _ref_warn(k: Kernel, r: RefCount, what: str, fence: DmaFence) -> None:
    r.refs = REFCOUNT_SATURATED
    if k.stopping:
        return
    site = format_site(fast_site(3))
    k.fail(
        Failure(
            "warn",
            f"refcount_t: {what} (dma_fence {fence.label}, at {site})",
            signature=f"warn:refcount:{what.split(';')[0]}:dma_fence",
        ),
        fatal=k.config.warn_fatal,
    )


def dma_fence_get_atomic(fence: DmaFence | None) -> DmaFence | None:
    """``dma_fence_get()`` without a yield point (atomic context)."""
    if fence is None:
        return None
    r = fence.refcount
    old = r.refs
    r.refs = old + 1
    if old == 0:
        _ref_warn(current_kernel(), r, "addition on 0; use-after-free.", fence)
    elif old < 0 or old + 1 > REFCOUNT_MAX:
        _ref_warn(current_kernel(), r, "saturated; leaking memory.", fence)
    return fence


def dma_fence_get_rcu(fence: DmaFence) -> DmaFence | None:
    """``dma_fence_get_rcu()``: ``kref_get_unless_zero``; None if already released."""
    if fence.refcount.refs == 0:
        return None
    return dma_fence_get_atomic(fence)


def dma_fence_put_atomic(fence: DmaFence | None) -> None:
    """``dma_fence_put()`` without a yield point; the last put releases the fence."""
    if fence is None:
        return
    r = fence.refcount
    old = r.refs
    r.refs = old - 1
    if old == 1:
        dma_fence_release(fence)
    elif old <= 0:
        _ref_warn(current_kernel(), r, "underflow; use-after-free.", fence)


async def dma_fence_get(fence: DmaFence | None) -> DmaFence | None:
    """``dma_fence_get()``."""
    await preempt()
    return dma_fence_get_atomic(fence)


async def dma_fence_put(fence: DmaFence | None) -> None:
    """``dma_fence_put()``."""
    await preempt()
    dma_fence_put_atomic(fence)


def dma_fence_release(fence: DmaFence) -> None:
    """``dma_fence_release()``: WARN if callbacks are pending on an unsignalled fence.

    The kernel then signals the fence with -EDEADLK right here. The model's
    callbacks are ``async`` and this path is synchronous (any last put), so
    after the (non-fatal) WARN the signal and then ``ops->release`` run from
    the ``irq_work`` thread.
    """
    k = current_kernel()
    k.ev("fence_release", fence.label)
    if fence.cb_list and not fence.flags & _SIGNALED and not k.stopping:
        k.fail(
            Failure(
                "warn",
                f"Fence {fence.label} released with pending signals! "
                f"({len(fence.cb_list)} callback(s), at {format_site(fast_site(2))})",
                signature="warn:dma_fence_release-pending-signals",
            ),
            fatal=k.config.warn_fatal,
        )
        fence.error = -EDEADLK  # the callbacks learn it is an error signal
        irq_work_queue(IrqWork(_release_signal, "dma_fence_release", fence))
        return
    fence.ops.release(fence)


async def _release_signal(work: IrqWork) -> None:
    fence = work.container
    assert isinstance(fence, DmaFence)
    async with _fence_lock(fence):
        await dma_fence_signal_locked(fence)
    fence.ops.release(fence)


def dma_fence_free(fence: DmaFence) -> None:
    """``dma_fence_free()``: ``kfree_rcu`` if the fence came from the allocator."""
    kfree_if_allocated(fence)


# ---------------------------------------------------------------------- signalling


async def dma_fence_signal_locked(fence: DmaFence) -> int:
    """``dma_fence_signal_timestamp_locked()``: -EINVAL if already signalled; runs the callbacks.

    ``test_and_set_bit(SIGNALED)`` first, then each callback, under
    ``fence->lock`` held by the caller: there is a yield point before each
    callback, where other CPUs see ``SIGNALED`` (they test it without the
    lock) while this and the later callbacks have not run.
    """
    k = current_kernel()
    lock = _fence_lock(fence)
    lockdep_assert_held(lock)
    if fence.flags & _SIGNALED:
        return -EINVAL
    fence.flags |= _SIGNALED
    cbs = fence.cb_list  # list_replace(&fence->cb_list, &cb_list)
    fence.cb_list = []
    fence.timestamp = k.now
    fence.flags |= _TIMESTAMP
    k.ev("fence_signal", fence.label, f"error {fence.error}" if fence.error else "")
    for cb in cbs:
        await preempt()
        cb.fence = None  # INIT_LIST_HEAD(&cur->node)
        func = cb.func
        assert func is not None
        await func(fence, cb)
    return 0


async def dma_fence_signal(fence: DmaFence) -> int:
    """``dma_fence_signal()``: 0, or -EINVAL if it was already signalled."""
    await preempt()
    cookie = dma_fence_begin_signalling()
    lock = _fence_lock(fence)
    await lock.lock()
    ret = await dma_fence_signal_locked(fence)
    lock.release()
    dma_fence_end_signalling(cookie)
    return ret


def dma_fence_set_error(fence: DmaFence, error: int) -> None:
    """``dma_fence_set_error()``: WARN if signalled or ``error`` not in [-MAX_ERRNO, 0)."""
    k = current_kernel()
    _warn_on(k, bool(fence.flags & _SIGNALED), "dma_fence_set_error() on a signalled fence")
    _warn_on(k, error >= 0 or error < -MAX_ERRNO, f"dma_fence_set_error({error})")
    fence.error = error


async def dma_fence_is_signaled_locked(fence: DmaFence) -> bool:
    """``dma_fence_is_signaled_locked()`` (``fence->lock`` held; may signal the fence)."""
    if fence.flags & _SIGNALED:
        return True
    if fence.ops.signaled(fence):
        await dma_fence_signal_locked(fence)
        return True
    return False


def dma_fence_is_signaled_atomic(fence: DmaFence) -> bool:
    """``dma_fence_is_signaled()`` without the yield point, for fences that are
    signalled by someone else (``ops->signaled`` never reports them done).

    The polling case signals the fence, which runs callbacks that can yield:
    that needs the ``async`` :func:`dma_fence_is_signaled`.
    """
    if fence.flags & _SIGNALED:
        return True
    if fence.ops.signaled(fence):
        raise InvariantViolation(
            f"dma_fence_is_signaled_atomic({fence.label}): ops->signaled() says it is done, "
            f"signalling it needs the async dma_fence_is_signaled() (at "
            f"{format_site(fast_site(2))})",
            signature="invariant:dma_fence_is_signaled_atomic-polls",
        )
    return False


async def dma_fence_is_signaled(fence: DmaFence) -> bool:
    """``dma_fence_is_signaled()``: may poll ``ops->signaled`` and signal the fence."""
    await preempt()
    if fence.flags & _SIGNALED:
        return True
    if fence.ops.signaled(fence):
        await dma_fence_signal(fence)
        return True
    return False


async def dma_fence_get_status(fence: DmaFence) -> int:
    """``dma_fence_get_status()``: 0 pending, 1 signalled, <0 signalled with an error."""
    await preempt()
    async with _fence_lock(fence):
        if await dma_fence_is_signaled_locked(fence):
            return fence.error or 1
        return 0


async def _enable_signaling_locked(fence: DmaFence) -> bool:
    """``__dma_fence_enable_signaling()``: False if the fence is (now) signalled."""
    was_set = bool(fence.flags & _ENABLE_SIGNAL)
    fence.flags |= _ENABLE_SIGNAL
    if fence.flags & _SIGNALED:
        return False
    if not was_set and not await fence.ops.enable_signaling(fence):
        await dma_fence_signal_locked(fence)
        return False
    return True


async def _enable_sw_signaling(fence: DmaFence) -> None:
    async with _fence_lock(fence):
        await _enable_signaling_locked(fence)


async def dma_fence_enable_sw_signaling(fence: DmaFence) -> None:
    """``dma_fence_enable_sw_signaling()``."""
    await preempt()
    await _enable_sw_signaling(fence)


# ---------------------------------------------------------------------- callbacks


async def dma_fence_add_callback(
    fence: DmaFence | None, cb: DmaFenceCb, func: DmaFenceFunc | None
) -> int:
    """``dma_fence_add_callback()``: 0 queued; -ENOENT already signalled (not called).

    The first ``test_bit(SIGNALED)`` is lockless; the fence can be signalled
    between it and ``spin_lock_irqsave(fence->lock)`` (a yield point), and
    the caller then spins while the signaller runs the callbacks.
    """
    await preempt()
    k = current_kernel()
    if _warn_on(k, fence is None or func is None, "dma_fence_add_callback(NULL)"):
        return -EINVAL
    assert fence is not None
    if fence.flags & _SIGNALED:
        cb.fence = None
        return -ENOENT
    await preempt()
    async with _fence_lock(fence):
        if await _enable_signaling_locked(fence):
            cb.func = func
            cb.fence = fence
            fence.cb_list.append(cb)
            ret = 0
        else:
            cb.fence = None
            ret = -ENOENT
    return ret


async def dma_fence_remove_callback(fence: DmaFence, cb: DmaFenceCb) -> bool:
    """``dma_fence_remove_callback()``: True if the callback was still queued.

    Spins while a signaller holds ``fence->lock``: it returns once the
    callbacks being run (this one included) are done.
    """
    await preempt()
    async with _fence_lock(fence):
        if cb.fence is fence and cb in fence.cb_list:
            fence.cb_list.remove(cb)
            cb.fence = None
            return True
        return False


# ---------------------------------------------------------------------- waiting


class _FenceWait:
    """Block reason of a thread in ``dma_fence_default_wait()``."""

    __slots__ = ("cb", "fence", "klass", "name", "thread")

    def __init__(self, fence: DmaFence, thread: SimThread) -> None:
        self.fence = fence
        self.thread = thread
        self.name = f"dma_fence {fence.context}:{fence.seqno}"
        self.klass = "dma_fence"
        self.cb = DmaFenceCb(self)

    def describe(self) -> str:
        who, _ = self.fence.ops.signaller(self.fence)
        return f"dma_fence {self.fence.label} ({self.fence.state()}; to be signalled by {who})"

    def holder(self) -> SimThread | None:
        return self.fence.ops.signaller(self.fence)[1]


async def _default_wait_cb(fence: DmaFence, cb: DmaFenceCb) -> None:
    """``dma_fence_default_wait_cb()``: wake the waiting task."""
    wait = cb.container
    assert isinstance(wait, _FenceWait)
    t = wait.thread
    if t.blocked_on is wait:
        current_kernel().make_runnable(t)


def _jiffies_left(deadline_ns: int, now: int) -> int:
    left = deadline_ns - now
    if left <= 0:
        return 0
    return (left + NSEC_PER_JIFFY - 1) // NSEC_PER_JIFFY


async def dma_fence_default_wait(fence: DmaFence, intr: bool, timeout: int) -> int:
    """``dma_fence_default_wait()``: jiffies left (>= 1), or 0 on timeout.

    A waiter that slept takes ``fence->lock`` again to drop its callback, so
    it returns only after the signaller has run every callback.
    """
    k = current_kernel()
    cur = k.current
    assert cur is not None
    ret = timeout if timeout else 1
    if fence.flags & _SIGNALED:
        return ret
    wait = _FenceWait(fence, cur)
    lock = _fence_lock(fence)
    async with lock:
        if not await _enable_signaling_locked(fence):
            return ret
        if not timeout:
            return 0
        wait.cb.func = _default_wait_cb
        wait.cb.fence = fence
        fence.cb_list.append(wait.cb)
    forever = timeout >= MAX_SCHEDULE_TIMEOUT
    deadline = 0 if forever else k.now + timeout * NSEC_PER_JIFFY
    while not fence.flags & _SIGNALED and ret > 0:
        k.ev("fence_wait", fence.label)
        if forever:
            await k.block_current(wait)
        else:
            await k.block_current(wait, max(1, deadline - k.now))
            ret = _jiffies_left(deadline, k.now)
    async with lock:
        if wait.cb.fence is fence and wait.cb in fence.cb_list:
            fence.cb_list.remove(wait.cb)
            wait.cb.fence = None
    return ret


async def dma_fence_wait_timeout(fence: DmaFence, intr: bool, timeout: int) -> int:
    """``dma_fence_wait_timeout()``: jiffies left (>= 1), 0 on timeout, -EINVAL if t < 0."""
    await preempt()
    k = current_kernel()
    if _warn_on(k, timeout < 0, "dma_fence_wait_timeout() with a negative timeout"):
        return -EINVAL
    might_sleep()
    dma_fence_might_wait()
    await _enable_sw_signaling(fence)
    return await dma_fence_default_wait(fence, intr, timeout)


async def dma_fence_wait(fence: DmaFence, intr: bool) -> int:
    """``dma_fence_wait()``: 0 once signalled (or -ERESTARTSYS, never in the model)."""
    ret = await dma_fence_wait_timeout(fence, intr, MAX_SCHEDULE_TIMEOUT)
    return ret if ret < 0 else 0


# ---------------------------------------------------------------------- the stub


class _StubOps(DmaFenceOps):
    driver_name = "stub"

    def get_timeline_name(self, fence: DmaFence) -> str:
        return "stub"

    def release(self, fence: DmaFence) -> None:
        return None


_STUB_OPS: Final = _StubOps()


def dma_fence_get_stub_atomic() -> DmaFence:
    """``dma_fence_get_stub()`` without the yield point."""
    k = current_kernel()
    stub: DmaFence | None = k.objects.get(_STUB_KEY)
    if stub is None:
        stub = DmaFence(_STUB_OPS, SyncSpinLock("dma_fence_stub_lock"), 0, 0)
        stub.flags |= _SIGNALED | _TIMESTAMP
        k.objects[_STUB_KEY] = stub
    got = dma_fence_get_atomic(stub)
    assert got is not None
    return got


async def dma_fence_get_stub() -> DmaFence:
    """``dma_fence_get_stub()``: a reference to the global, already-signalled fence."""
    await preempt()
    return dma_fence_get_stub_atomic()


def dma_fence_describe(fence: DmaFence) -> str:
    """``dma_fence_describe()``: one line with the state and the expected signaller."""
    who, thread = fence.ops.signaller(fence)
    on = f" ({thread.label})" if thread is not None else ""
    return f"{fence.label} seq {fence.seqno} {fence.state()}; signaller: {who}{on}"
