"""Workqueues (kernel/workqueue.c, include/linux/workqueue.h).

* ``alloc_workqueue(name, flags, max_active)``: up to ``max_active`` (0 means
  256) work items of the queue run at once, each on a worker thread (a
  daemon simulated thread, spawned when needed); ``alloc_ordered_workqueue``
  runs one at a time in queueing order. ``WQ_MEM_RECLAIM`` gives the queue a
  rescuer, which matters for the flush rules below.
* A work item is idle, PENDING (queued), running, or running and PENDING
  again: PENDING is cleared just before the function is called, so a running
  work can be re-queued, and it never runs concurrently with itself (a
  re-queued instance waits for the running one, on the same worker).
* ``queue_work`` returns False while the work is PENDING (or disabled by a
  ``cancel_work_sync`` in progress); queueing from outside onto a draining or
  destroying queue is a WARN and the work is lost.
* ``flush_work`` waits for the last queued instance; ``cancel_work_sync``
  dequeues and waits for the running one; ``flush_workqueue`` waits for
  everything queued before it; ``destroy_workqueue`` drains and frees the
  queue (WARN and leak if still busy).
* Lockdep: a worker holds the queue's map then the work's map around the
  callback, ``flush_work`` touches the work's map (and the queue's if the
  queue is ordered or has a rescuer) only if the work is in flight, and
  ``flush_workqueue`` touches the queue's map. So flushing a work while
  holding a lock that the work takes is an inversion, and flushing from
  inside the same ordered queue is recursion. A work that returns with a
  lock held (or in atomic context) is reported.

``queue_work_atomic`` & co. are the same operations without the yield point,
for fence callbacks, timers and IRQ handlers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ..core.clock import MAX_SCHEDULE_TIMEOUT, NSEC_PER_JIFFY
from ..core.failure import Failure
from ..core.frames import fast_site, format_site
from ..core.kernel import Kernel, Timer, current, current_kernel, preempt
from ..core.thread import SimThread
from ..core.waitqueue import WaitQueue
from ..locking.lockdep import (
    LockdepMap,
    held_locks_text,
    lock_map_acquire,
    lock_map_release,
    might_sleep,
)
from ..locking.spin import atomic_context
from ..mm.gfp import GFP_KERNEL
from ..mm.memory import kfree, kzalloc

WQ_BH: Final = 1 << 0
WQ_UNBOUND: Final = 1 << 1
WQ_FREEZABLE: Final = 1 << 2
WQ_MEM_RECLAIM: Final = 1 << 3
WQ_HIGHPRI: Final = 1 << 4
WQ_CPU_INTENSIVE: Final = 1 << 5
WQ_SYSFS: Final = 1 << 6
WQ_POWER_EFFICIENT: Final = 1 << 7
__WQ_DESTROYING: Final = 1 << 15
__WQ_DRAINING: Final = 1 << 16
__WQ_ORDERED: Final = 1 << 17
__WQ_LEGACY: Final = 1 << 18

WQ_MAX_ACTIVE: Final = 512
WQ_DFL_ACTIVE: Final = WQ_MAX_ACTIVE // 2

_WORKER_KEY: Final = "wq_worker"
_SYSTEM_WQ_KEY: Final = "system_wq"
_ONCE_KEY: Final = "workqueue_warn_once"

WorkFunc = Callable[["WorkStruct"], Awaitable[None]]


class WorkStruct:
    """``struct work_struct`` after ``INIT_WORK(work, func)``.

    ``name`` is the init site's expression (e.g. ``&job->cleanup_op_ctx_work``):
    the lockdep class is ``(work_completion)<name>``, one per site, shared by
    every instance. ``container`` plays ``container_of()``.
    """

    __slots__ = (
        "container",
        "disable",
        "func",
        "lockdep_map",
        "name",
        "pending",
        "queued_seq",
        "wq",
    )

    def __init__(self, func: WorkFunc, name: str, container: Any = None) -> None:
        self.func = func
        self.name = name
        self.container = container
        self.lockdep_map = LockdepMap(f"({name})", f"(work_completion)({name})")
        self.pending = False  # WORK_STRUCT_PENDING_BIT
        self.disable = 0  # the disable count (cancel_work_sync in progress)
        self.wq: Workqueue | None = None  # the queue it was last queued on (its pool)
        self.queued_seq = 0  # the instance id of the pending instance

    def __repr__(self) -> str:
        return f"<work {self.name}{' PENDING' if self.pending else ''}>"


def INIT_WORK(func: WorkFunc, name: str, container: Any = None) -> WorkStruct:
    """``INIT_WORK()``."""
    return WorkStruct(func, name, container)


class DelayedWork:
    """``struct delayed_work``: a work and its timer."""

    __slots__ = ("expires", "timer", "timer_wq", "work")

    def __init__(self, func: WorkFunc, name: str, container: Any = None) -> None:
        self.work = WorkStruct(func, name, container)
        self.timer: Timer | None = None
        self.timer_wq: Workqueue | None = None
        self.expires = 0  # dwork->timer.expires, in jiffies (kept after it fires or is cancelled)

    def __repr__(self) -> str:
        timer = " timer" if self.timer is not None and self.timer.active else ""
        return f"<delayed_work {self.work.name}{timer}{' PENDING' if self.work.pending else ''}>"


def INIT_DELAYED_WORK(func: WorkFunc, name: str, container: Any = None) -> DelayedWork:
    """``INIT_DELAYED_WORK()``."""
    return DelayedWork(func, name, container)


class _Worker:
    """``struct worker``: one simulated kworker thread of a queue."""

    __slots__ = ("current_seq", "current_work", "idle", "name", "scheduled", "stop", "thread")

    def __init__(self, name: str) -> None:
        self.name = name
        self.thread: SimThread | None = None
        self.current_work: WorkStruct | None = None
        self.current_seq = 0
        self.scheduled: deque[tuple[int, WorkStruct]] = deque()
        self.idle = False
        self.stop = False


class _Barrier:
    """A flush in progress (``struct wq_barrier``): the block reason of the flusher.

    ``single``: wait for one instance id (``flush_work``); otherwise for every
    instance up to ``target`` (``flush_workqueue``).
    """

    __slots__ = ("klass", "name", "single", "target", "waitq", "wq")

    def __init__(self, wq: Workqueue, target: int, what: str, single: bool) -> None:
        self.wq = wq
        self.target = target
        self.single = single
        self.name = what
        self.klass = f"flush {wq.name}"
        self.waitq = WaitQueue(what, klass=self.klass, owner=self.holder, describe=self.describe)

    def done(self) -> bool:
        inflight = self.wq.inflight
        if self.single:
            return self.target not in inflight
        return not inflight or next(iter(inflight)) > self.target

    def _runner(self) -> _Worker | None:
        for w in self.wq.workers:
            if w.current_work is not None and (
                w.current_seq == self.target or (not self.single and w.current_seq <= self.target)
            ):
                return w
        return None

    def holder(self) -> SimThread | None:
        w = self._runner()
        return w.thread if w is not None else None

    def describe(self) -> str:
        w = self._runner()
        if w is not None and w.current_work is not None:
            where = w.thread.label if w.thread is not None else w.name
            state = f"{w.current_work.name} running on {where}"
        else:
            pend = [f"{wk.name}#{s}" for s, wk in self.wq.inflight.items() if s <= self.target]
            state = f"queued, not started: {', '.join(pend) or 'nothing'}"
        return f"{self.name} ({state})"


class Workqueue:
    """``struct workqueue_struct`` (one pool per queue in the model)."""

    def __init__(self, name: str, flags: int, max_active: int) -> None:
        self.name = name
        self.flags = flags
        self.saved_max_active = max_active
        self.rescuer = bool(flags & WQ_MEM_RECLAIM)
        self.lockdep_map = LockdepMap(f"(wq_completion){name}", f"(wq_completion){name}")
        self.queue: deque[tuple[int, WorkStruct]] = deque()  # the pool's worklist
        self.inflight: dict[int, WorkStruct] = {}  # instance id -> work, queued or running
        self.next_seq = 0
        self.workers: list[_Worker] = []
        self.idle = WaitQueue(f"idle workers of {name}", klass="wq-idle")
        self.barriers: list[_Barrier] = []
        self.nr_drainers = 0
        self.destroyed = False

    def __repr__(self) -> str:
        return f"<workqueue {self.name} inflight={len(self.inflight)}>"

    def describe(self) -> str:
        running = [
            f"{w.current_work.name} on {w.thread.label if w.thread else w.name}"
            for w in self.workers
            if w.current_work is not None
        ]
        queued = [wk.name for _, wk in self.queue]
        return (
            f"workqueue {self.name}: running [{', '.join(running)}], queued [{', '.join(queued)}]"
        )


# ---------------------------------------------------------------------- helpers


def _warn(k: Kernel, msg: str, sig: str, *, once: bool = False) -> None:
    if k.stopping:
        return
    if once:
        seen: set[str] = k.objects.setdefault(_ONCE_KEY, set())
        if sig in seen:
            return
        seen.add(sig)
    k.fail(Failure("warn", msg, signature=sig), fatal=k.config.warn_fatal)


def current_wq_worker() -> _Worker | None:
    """``current_wq_worker()``: the worker the running thread is, if any."""
    k = current_kernel()
    cur = k.current
    if cur is None:
        return None
    w = cur.ctx.get(_WORKER_KEY)
    return w if isinstance(w, _Worker) else None


def _worker_wq(w: _Worker) -> Workqueue | None:
    cur = w.thread
    if cur is None:
        return None
    wq = cur.ctx.get("wq")
    return wq if isinstance(wq, Workqueue) else None


def _is_chained_work(wq: Workqueue) -> bool:
    """``is_chained_work()``: is the running thread a worker of ``wq``?"""
    w = current_wq_worker()
    return w is not None and _worker_wq(w) is wq and w.current_work is not None


def _find_worker_executing(wq: Workqueue, work: WorkStruct) -> _Worker | None:
    """``find_worker_executing_work()``."""
    for w in wq.workers:
        if w.current_work is work:
            return w
    return None


def _wake_or_spawn_worker(k: Kernel, wq: Workqueue) -> None:
    if wq.idle.wake_one() is not None:
        return
    busy = sum(1 for w in wq.workers if not w.stop)
    if busy >= wq.saved_max_active:
        return
    w = _Worker(f"kworker/{wq.name}:{len(wq.workers)}")
    wq.workers.append(w)
    w.thread = k.spawn(_worker_thread, wq, w, name=w.name, daemon=True)


def _instance_done(wq: Workqueue, seq: int) -> None:
    wq.inflight.pop(seq, None)
    for b in list(wq.barriers):
        if b.done():
            b.waitq.wake_all()


# ---------------------------------------------------------------------- workers


async def _worker_thread(wq: Workqueue, w: _Worker) -> None:
    """``worker_thread()``: take work off the pool's list and run it."""
    cur = current()
    cur.ctx[_WORKER_KEY] = w
    cur.ctx["wq"] = wq
    while True:
        if w.stop:
            return
        item = w.scheduled.popleft() if w.scheduled else _dequeue(wq, w)
        if item is None:
            w.idle = True
            await wq.idle.wait()
            w.idle = False
            continue
        await _process_one_work(wq, w, item[0], item[1])


def _dequeue(wq: Workqueue, w: _Worker) -> tuple[int, WorkStruct] | None:
    """Take the next item; one already running elsewhere goes to that worker (no reentrancy)."""
    while wq.queue:
        seq, work = wq.queue.popleft()
        other = _find_worker_executing(wq, work)
        if other is not None and other is not w:
            other.scheduled.append((seq, work))  # move_linked_works(work, &collision->scheduled)
            continue
        return seq, work
    return None


async def _process_one_work(wq: Workqueue, w: _Worker, seq: int, work: WorkStruct) -> None:
    """``process_one_work()``: clear PENDING, run the function under the lockdep maps."""
    k = current_kernel()
    cur = k.current
    assert cur is not None
    w.current_work = work
    w.current_seq = seq
    if work.queued_seq == seq:
        work.pending = False  # set_work_pool_and_clear_pending()
    # The work may be freed by its function: keep what is needed afterwards
    # (the kernel's lockdep_copy_map()).
    name = work.name
    work_map = work.lockdep_map
    k.ev("work_start", name, wq.name)
    depth = len(cur.held)
    pc = cur.preempt_count
    await preempt()
    lock_map_acquire(wq.lockdep_map)
    lock_map_acquire(work_map)
    await work.func(work)
    lock_map_release(work_map)
    lock_map_release(wq.lockdep_map)
    if cur.preempt_count != pc or len(cur.held) != depth:
        _report_leaked(k, cur, wq, name, work_map, depth, pc)
    w.current_work = None
    k.ev("work_done", name, wq.name)
    _instance_done(wq, seq)


def _report_leaked(
    k: Kernel, cur: SimThread, wq: Workqueue, name: str, work_map: LockdepMap, depth: int, pc: int
) -> None:
    if k.stopping:
        return
    names = [h.map.name for h in cur.held[depth:]]
    k.record_failure(
        Failure(
            "lockdep",
            f"BUG: workqueue leaked atomic, lock or RCU: {cur.label} {wq.name}:{name} "
            f"preempt={cur.preempt_count - pc} lock={depth}->{len(cur.held)} "
            f"({', '.join(names) or 'no lock'})",
            report=(
                "BUG: workqueue leaked atomic, lock or RCU: "
                f"{cur.label}\n     preempt=0x{cur.preempt_count:08x} lock={depth}->"
                f"{len(cur.held)} workfn={name}\n" + held_locks_text(cur)
            ),
            thread=cur.label,
            signature=f"lockdep:wq-leaked:{work_map.key}",
        )
    )


# ---------------------------------------------------------------------- queueing


def _queue_locked(k: Kernel, wq: Workqueue, work: WorkStruct) -> None:
    """``__queue_work()``: PENDING is already set."""
    if wq.flags & (__WQ_DESTROYING | __WQ_DRAINING) and not _is_chained_work(wq):
        _warn(
            k,
            f"workqueue: cannot queue {work.name} on wq {wq.name} "
            f"({'destroying' if wq.flags & __WQ_DESTROYING else 'draining'}) at "
            f"{format_site(fast_site(3))}",
            f"warn:workqueue-cannot-queue:{wq.name}",
            once=True,
        )
        return  # the work stays PENDING and never runs
    wq.next_seq += 1
    seq = wq.next_seq
    work.queued_seq = seq
    work.wq = wq
    wq.queue.append((seq, work))
    wq.inflight[seq] = work
    k.ev("queue_work", work.name, wq.name)
    _wake_or_spawn_worker(k, wq)


def queue_work_atomic(wq: Workqueue, work: WorkStruct) -> bool:
    """``queue_work()`` without the yield point (atomic context)."""
    k = current_kernel()
    if work.pending:
        return False
    if work.disable:
        return False  # clear_pending_if_disabled()
    work.pending = True
    _queue_locked(k, wq, work)
    return True


async def queue_work(wq: Workqueue, work: WorkStruct) -> bool:
    """``queue_work()``: False if the work was already PENDING."""
    await preempt()
    return queue_work_atomic(wq, work)


def system_wq() -> Workqueue:
    """``system_wq`` ("events") of the running kernel."""
    k = current_kernel()
    wq: Workqueue | None = k.objects.get(_SYSTEM_WQ_KEY)
    if wq is None:
        wq = Workqueue("events", 0, WQ_DFL_ACTIVE)
        k.objects[_SYSTEM_WQ_KEY] = wq
    return wq


async def schedule_work(work: WorkStruct) -> bool:
    """``schedule_work()``: queue on ``system_wq``."""
    return await queue_work(system_wq(), work)


def schedule_work_atomic(work: WorkStruct) -> bool:
    """``schedule_work()`` without the yield point."""
    return queue_work_atomic(system_wq(), work)


# ---------------------------------------------------------------------- delayed work


def _delayed_timer_fn(dwork: DelayedWork) -> None:
    """``delayed_work_timer_fn()`` (softirq)."""
    dwork.timer = None
    wq = dwork.timer_wq
    assert wq is not None
    with atomic_context():
        _queue_locked(current_kernel(), wq, dwork.work)


def _queue_delayed_locked(k: Kernel, wq: Workqueue, dwork: DelayedWork, delay: int) -> None:
    """``__queue_delayed_work()``: PENDING is already set."""
    dwork.timer_wq = wq
    dwork.expires = k.now // NSEC_PER_JIFFY + max(delay, 0)
    if delay <= 0:
        _queue_locked(k, wq, dwork.work)
        return
    if delay >= MAX_SCHEDULE_TIMEOUT:
        dwork.timer = None  # never expires: stays PENDING
        return
    dwork.timer = k.add_timer(
        delay * NSEC_PER_JIFFY, lambda: _delayed_timer_fn(dwork), f"dwork {dwork.work.name}"
    )


def queue_delayed_work_atomic(wq: Workqueue, dwork: DelayedWork, delay: int) -> bool:
    """``queue_delayed_work()`` without the yield point."""
    work = dwork.work
    if work.pending or work.disable:
        return False
    work.pending = True
    _queue_delayed_locked(current_kernel(), wq, dwork, delay)
    return True


async def queue_delayed_work(wq: Workqueue, dwork: DelayedWork, delay: int) -> bool:
    """``queue_delayed_work()``: ``delay`` in jiffies; False if already PENDING."""
    await preempt()
    return queue_delayed_work_atomic(wq, dwork, delay)


def _grab_pending(work: WorkStruct, dwork: DelayedWork | None = None) -> bool:
    """``try_to_grab_pending()``: steal PENDING (stop the timer or dequeue). True if pending."""
    if not work.pending:
        return False
    if dwork is not None and dwork.timer is not None:
        dwork.timer.cancel()  # del_timer(): it was waiting for its timer
        dwork.timer = None
    wq = work.wq
    if wq is not None and work.queued_seq in wq.inflight:
        seq = work.queued_seq
        for q in (wq.queue, *(w.scheduled for w in wq.workers)):
            for i, (s, wk) in enumerate(q):
                if s == seq and wk is work:
                    del q[i]
                    _instance_done(wq, seq)
                    break
    work.pending = False
    return True


def mod_delayed_work_atomic(wq: Workqueue, dwork: DelayedWork, delay: int) -> bool:
    """``mod_delayed_work()`` without the yield point."""
    work = dwork.work
    if work.disable:
        return False
    ret = _grab_pending(work, dwork)
    work.pending = True
    _queue_delayed_locked(current_kernel(), wq, dwork, delay)
    return ret


async def mod_delayed_work(wq: Workqueue, dwork: DelayedWork, delay: int) -> bool:
    """``mod_delayed_work()``: (re)arm with ``delay``; True if it was pending before."""
    await preempt()
    return mod_delayed_work_atomic(wq, dwork, delay)


def cancel_delayed_work_atomic(dwork: DelayedWork) -> bool:
    """``cancel_delayed_work()`` without the yield point."""
    return _grab_pending(dwork.work, dwork)


async def cancel_delayed_work(dwork: DelayedWork) -> bool:
    """``cancel_delayed_work()``: drop a pending instance, do not wait for a running one."""
    await preempt()
    return cancel_delayed_work_atomic(dwork)


async def cancel_work(work: WorkStruct) -> bool:
    """``cancel_work()``: drop a pending instance, do not wait."""
    await preempt()
    return _grab_pending(work)


# ---------------------------------------------------------------------- flushing


def _check_flush_dependency(k: Kernel, target: Workqueue, work: WorkStruct | None) -> None:
    """``check_flush_dependency()``: a WQ_MEM_RECLAIM worker may not flush a !MEM_RECLAIM wq."""
    if target.flags & WQ_MEM_RECLAIM:
        return
    w = current_wq_worker()
    if w is None or w.current_work is None:
        return
    own = _worker_wq(w)
    if own is not None and (own.flags & (WQ_MEM_RECLAIM | __WQ_LEGACY)) == WQ_MEM_RECLAIM:
        _warn(
            k,
            f"workqueue: WQ_MEM_RECLAIM {own.name}:{w.current_work.name} is flushing "
            f"!WQ_MEM_RECLAIM {target.name}:{work.name if work else '0x0'}",
            f"warn:workqueue-flush-dependency:{own.name}:{target.name}",
            once=True,
        )


async def _wait_barrier(k: Kernel, b: _Barrier) -> None:
    wq = b.wq
    wq.barriers.append(b)
    try:
        while not b.done():
            await b.waitq.wait()
    finally:
        if b in wq.barriers:
            wq.barriers.remove(b)


async def _flush_work(k: Kernel, work: WorkStruct, from_cancel: bool) -> bool:
    """``__flush_work()`` / ``start_flush_work()``."""
    wq = work.wq
    if wq is None:
        return False
    if work.pending and work.queued_seq in wq.inflight:
        target = work.queued_seq
    else:
        w = _find_worker_executing(wq, work)
        if w is None:
            return False
        target = w.current_seq
    if not from_cancel:
        _check_flush_dependency(k, wq, work)
    lock_map_acquire(work.lockdep_map)  # touch_work_lockdep_map()
    lock_map_release(work.lockdep_map)
    if not from_cancel and (wq.saved_max_active == 1 or wq.rescuer):
        lock_map_acquire(wq.lockdep_map)  # touch_wq_lockdep_map()
        lock_map_release(wq.lockdep_map)
    b = _Barrier(wq, target, f"flush_work({work.name}) #{target} on {wq.name}", True)
    k.ev("flush_work", work.name, f"#{target}")
    await _wait_barrier(k, b)
    return True


async def flush_work(work: WorkStruct) -> bool:
    """``flush_work()``: wait for the last queued instance; True if it waited."""
    await preempt()
    might_sleep()
    return await _flush_work(current_kernel(), work, False)


async def flush_delayed_work(dwork: DelayedWork) -> bool:
    """``flush_delayed_work()``: queue a timer-pending work now, then flush it."""
    await preempt()
    k = current_kernel()
    if dwork.timer is not None and dwork.timer.active and dwork.timer_wq is not None:
        dwork.timer.cancel()
        dwork.timer = None
        _queue_locked(k, dwork.timer_wq, dwork.work)
    might_sleep()
    return await _flush_work(k, dwork.work, False)


async def _cancel_work_sync(
    work: WorkStruct, dwork: DelayedWork | None, *, disable: bool = False
) -> bool:
    """``__cancel_work_sync()``: disabled while it flushes; still disabled after if ``disable``."""
    await preempt()
    k = current_kernel()
    ret = _grab_pending(work, dwork)
    work.disable += 1  # WORK_CANCEL_DISABLE
    try:
        might_sleep()
        await _flush_work(k, work, True)
    finally:
        if not disable:
            work.disable -= 1  # enable_work()
    return ret


async def cancel_work_sync(work: WorkStruct) -> bool:
    """``cancel_work_sync()``: dequeue, wait for a running instance; True if it was pending."""
    return await _cancel_work_sync(work, None)


async def cancel_delayed_work_sync(dwork: DelayedWork) -> bool:
    """``cancel_delayed_work_sync()``."""
    return await _cancel_work_sync(dwork.work, dwork)


async def _disable_work(work: WorkStruct, dwork: DelayedWork | None) -> bool:
    """``__cancel_work(work, WORK_CANCEL_DISABLE)``: dequeue, raise the disable count."""
    await preempt()
    ret = _grab_pending(work, dwork)
    work.disable += 1
    return ret


async def disable_work(work: WorkStruct) -> bool:
    """``disable_work()``: dequeue and refuse later queueing until :func:`enable_work`."""
    return await _disable_work(work, None)


async def disable_work_sync(work: WorkStruct) -> bool:
    """``disable_work_sync()``: :func:`disable_work`, then wait for a running instance."""
    return await _cancel_work_sync(work, None, disable=True)


async def disable_delayed_work(dwork: DelayedWork) -> bool:
    """``disable_delayed_work()``."""
    return await _disable_work(dwork.work, dwork)


async def disable_delayed_work_sync(dwork: DelayedWork) -> bool:
    """``disable_delayed_work_sync()``."""
    return await _cancel_work_sync(dwork.work, dwork, disable=True)


def enable_work(work: WorkStruct) -> bool:
    """``enable_work()``: undo one disable; True when the work can be queued again."""
    k = current_kernel()
    if work.disable == 0:
        _warn(
            k,
            f"workqueue: work disable count underflowed ({work.name}, enable_work() at "
            f"{format_site(fast_site(2))})",
            "warn:workqueue-enable-unbalanced",
        )
        return True
    work.disable -= 1
    return work.disable == 0


def enable_delayed_work(dwork: DelayedWork) -> bool:
    """``enable_delayed_work()``."""
    return enable_work(dwork.work)


async def flush_workqueue(wq: Workqueue) -> None:
    """``flush_workqueue()``: wait for every instance queued before the call."""
    await preempt()
    k = current_kernel()
    might_sleep()
    lock_map_acquire(wq.lockdep_map)
    lock_map_release(wq.lockdep_map)
    _check_flush_dependency(k, wq, None)
    b = _Barrier(wq, wq.next_seq, f"flush_workqueue({wq.name}) up to #{wq.next_seq}", False)
    k.ev("flush_workqueue", wq.name, f"#{wq.next_seq}")
    await _wait_barrier(k, b)


async def drain_workqueue(wq: Workqueue) -> None:
    """``drain_workqueue()``: flush until empty; only chained work may be queued meanwhile."""
    await preempt()
    wq.nr_drainers += 1
    wq.flags |= __WQ_DRAINING
    while True:
        await flush_workqueue(wq)
        if not wq.inflight:
            break
    wq.nr_drainers -= 1
    if not wq.nr_drainers:
        wq.flags &= ~__WQ_DRAINING


# ---------------------------------------------------------------------- lifetime


async def alloc_workqueue(name: str, flags: int, max_active: int) -> Workqueue | None:
    """``alloc_workqueue()``: None on allocation failure; max_active 0 means 256."""
    k = current_kernel()
    if max_active == 0:
        max_active = WQ_DFL_ACTIVE
    if not 1 <= max_active <= WQ_MAX_ACTIVE:
        k.ev("wq_clamp_max_active", name, str(max_active))
        max_active = min(max(max_active, 1), WQ_MAX_ACTIVE)
    wq = await kzalloc(lambda: Workqueue(name, flags, max_active), GFP_KERNEL)
    if wq is not None:
        k.ev("alloc_workqueue", name, f"max_active {max_active}")
    return wq


async def alloc_ordered_workqueue(name: str, flags: int) -> Workqueue | None:
    """``alloc_ordered_workqueue()``: one at a time, in queueing order."""
    return await alloc_workqueue(name, WQ_UNBOUND | __WQ_ORDERED | flags, 1)


async def destroy_workqueue(wq: Workqueue) -> None:
    """``destroy_workqueue()``: drain, then free; WARN and leak it if still busy."""
    await preempt()
    k = current_kernel()
    wq.flags |= __WQ_DESTROYING
    await drain_workqueue(wq)
    busy = [w for w in wq.workers if w.current_work is not None]
    if wq.inflight or busy:
        _warn(
            k,
            f"destroy_workqueue: {wq.name} has the following busy pwq: {wq.describe()}",
            f"warn:destroy_workqueue-busy:{wq.name}",
        )
        return
    for w in wq.workers:
        w.stop = True
    wq.idle.wake_all()
    wq.destroyed = True
    k.ev("destroy_workqueue", wq.name)
    kfree(wq)


def work_pending(work: WorkStruct) -> bool:
    """``work_pending()``."""
    return work.pending


def work_busy_running(work: WorkStruct) -> bool:
    """Is an instance of ``work`` running right now (``work_busy() & WORK_BUSY_RUNNING``)?"""
    wq = work.wq
    return wq is not None and _find_worker_executing(wq, work) is not None
