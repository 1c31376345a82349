"""Wound/wait mutexes with acquire contexts (kernel/locking/ww_mutex.h, mutex.c).

Both algorithms of the kernel, chosen by the class: *wait-die*
(``DEFINE_WD_CLASS``, e.g. ``reservation_ww_class``) where a younger context
that already holds locks dies with -EDEADLK when it meets an older one, and
*wound-wait* (``DEFINE_WW_CLASS``) where an older context wounds the younger
holder, which backs off at its next contended lock. The wait list is kept in
stamp order (contexts) with context-less waiters interspersed FIFO, and the
debug checks of CONFIG_DEBUG_WW_MUTEXES / DEBUG_WW_MUTEX_SLOWPATH are on
(the slow-path deadlock injection can be switched off per run with
:func:`ww_mutex_set_deadlock_injection`).

Lockdep: a context is a lock of class ``<class>_acquire``; every mutex of a
class is ``<class>_mutex`` and nests under the context (``nest_lock``), so
taking many of them in any order under one context is fine, while taking one
without the context while another is held is a recursion report. As in
v6.13+, ``ww_acquire_init`` also holds the ctx's ``first_lock_dep_map`` (mutex
class, nested under the ctx) until ``ww_acquire_fini``: the ctx's mutexes
merge into it, a lock taken inside the transaction depends on the mutex
class, and a ww_mutex locked without the ctx meanwhile is recursive locking.
A trylock is never validated. A context used by a thread that does not hold
it is reported as lockdep does ("Nested lock was not taken").
"""

from __future__ import annotations

from typing import Final

from ..core.failure import Failure
from ..core.frames import fast_site, format_site
from ..core.kernel import Kernel, current_kernel, preempt
from ..core.thread import SimThread
from ..errno import EALREADY, EDEADLK
from .lockdep import LockdepMap, lockdep_assert_held, might_sleep

_INJECT_KEY: Final = "ww_mutex_deadlock_injection"
_STAMP_KEY: Final = "ww_class_stamps"


class WwClass:
    """``struct ww_class`` (``DEFINE_WD_CLASS`` / ``DEFINE_WW_CLASS``)."""

    __slots__ = ("acquire_name", "is_wait_die", "mutex_name", "name")

    def __init__(self, name: str, *, wait_die: bool) -> None:
        self.name = name
        self.is_wait_die = wait_die
        self.acquire_name = f"{name}_acquire"
        self.mutex_name = f"{name}_mutex"

    def __repr__(self) -> str:
        return f"<ww_class {self.name} {'wait-die' if self.is_wait_die else 'wound-wait'}>"


def DEFINE_WD_CLASS(name: str) -> WwClass:
    """A wait-die class (``DEFINE_WD_CLASS``)."""
    return WwClass(name, wait_die=True)


def DEFINE_WW_CLASS(name: str) -> WwClass:
    """A wound-wait class (``DEFINE_WW_CLASS``)."""
    return WwClass(name, wait_die=False)


class WwAcquireCtx:
    """``struct ww_acquire_ctx``: initialise with :func:`ww_acquire_init`."""

    __slots__ = (
        "acquired",
        "contending_lock",
        "deadlock_inject_countdown",
        "deadlock_inject_interval",
        "dep_map",
        "done_acquire",
        "first_lock_dep_map",
        "is_wait_die",
        "stamp",
        "task",
        "wounded",
        "ww_class",
    )

    def __init__(self) -> None:
        self.task: SimThread | None = None
        self.stamp = 0
        self.acquired = 0
        self.wounded = False
        self.is_wait_die = True
        self.done_acquire = False
        self.ww_class: WwClass | None = None
        self.contending_lock: WwMutex | None = None
        self.dep_map: LockdepMap | None = None
        self.first_lock_dep_map: LockdepMap | None = None
        self.deadlock_inject_interval = 1
        self.deadlock_inject_countdown = 0

    @property
    def label(self) -> str:
        owner = self.task.label if self.task is not None else "?"
        return f"ctx#{self.stamp} of {owner}"

    def __repr__(self) -> str:
        return f"<ww_acquire_ctx #{self.stamp} acquired={self.acquired}>"


class _Waiter:
    __slots__ = ("ctx", "thread")

    def __init__(self, thread: SimThread, ctx: WwAcquireCtx | None) -> None:
        self.thread = thread
        self.ctx = ctx


def _ctx_less(a: WwAcquireCtx, b: WwAcquireCtx) -> bool:
    """``__ww_ctx_less()``: is ``a`` younger (a bigger stamp) than ``b``?"""
    return a.stamp > b.stamp


def _debug_warn(k: Kernel, cond: bool, what: str, lock: WwMutex) -> None:
    """``DEBUG_LOCKS_WARN_ON(cond)``."""
    if cond and not k.stopping:
        site = format_site(fast_site(3))
        k.fail(
            Failure(
                "warn",
                f"DEBUG_LOCKS_WARN_ON({what}) on ww_mutex {lock.name} at {site}",
                signature=f"warn:ww_mutex:{what}",
            ),
            fatal=k.config.warn_fatal,
        )


class WwMutex:
    """``struct ww_mutex`` (DEBUG_MUTEXES / DEBUG_WW_MUTEXES on).

    It is also the block reason of its waiters: deadlock reports show the
    holder, the holder's context and the waiters in wait-list order.
    """

    __slots__ = ("ctx", "dep_map", "destroyed", "klass", "name", "owner", "waiters", "ww_class")

    kind = "ww_mutex"

    def __init__(self, ww_class: WwClass, name: str) -> None:
        """``ww_mutex_init()``."""
        self.name = name
        self.ww_class = ww_class
        self.dep_map = LockdepMap(name, ww_class.mutex_name)
        self.klass = f"ww_mutex {ww_class.mutex_name}"
        self.owner: SimThread | None = None
        self.ctx: WwAcquireCtx | None = None
        self.waiters: list[_Waiter] = []
        self.destroyed = False

    def __repr__(self) -> str:
        return f"<ww_mutex {self.name} {self._holder_text()}>"

    # -- BlockReason ---------------------------------------------------------

    def _holder_text(self) -> str:
        if self.owner is None:
            return "unlocked"
        how = f" under {self.ctx.label}" if self.ctx is not None else " without a context"
        return f"held by {self.owner.label}{how}"

    def describe(self) -> str:
        waiting = ", ".join(
            f"{w.thread.label}" + (f" (ctx#{w.ctx.stamp})" if w.ctx is not None else "")
            for w in self.waiters
        )
        return f"ww_mutex {self.name} ({self._holder_text()}; waiters: {waiting or 'none'})"

    def holder(self) -> SimThread | None:
        return self.owner

    # -- the algorithm (ww_mutex.h), all synchronous ---------------------------

    def _wake(self, k: Kernel, t: SimThread) -> None:
        if t.blocked_on is self:
            k.make_runnable(t)

    def _kill(self, k: Kernel, ctx: WwAcquireCtx) -> int:
        """``__ww_mutex_kill()``."""
        if ctx.acquired > 0:
            _debug_warn(k, ctx.contending_lock is not None, "ww_ctx->contending_lock", self)
            ctx.contending_lock = self
            return -EDEADLK
        return 0

    def _die(self, k: Kernel, waiter: _Waiter, ctx: WwAcquireCtx) -> bool:
        """``__ww_mutex_die()``: wake a younger waiter holding locks so it can die."""
        if not ctx.is_wait_die:
            return False
        wctx = waiter.ctx
        assert wctx is not None
        if wctx.acquired > 0 and _ctx_less(wctx, ctx):
            self._wake(k, waiter.thread)
        return True

    def _wound(self, k: Kernel, ctx: WwAcquireCtx, hold_ctx: WwAcquireCtx | None) -> bool:
        """``__ww_mutex_wound()``: wound a younger holder of this lock."""
        owner = self.owner
        if hold_ctx is None or owner is None:
            return False
        if ctx.acquired > 0 and _ctx_less(hold_ctx, ctx):
            hold_ctx.wounded = True
            k.ev("ww_wound", self.name, f"ctx#{hold_ctx.stamp} by ctx#{ctx.stamp}")
            # wake_up_process(owner): only a wait on a ww_mutex re-checks the
            # wounded flag; a wake-up of any other sleep would be spurious.
            if owner is not k.current and isinstance(owner.blocked_on, WwMutex):
                k.make_runnable(owner)
            return True
        return False

    def _check_waiters(self, k: Kernel, ctx: WwAcquireCtx) -> None:
        """``__ww_mutex_check_waiters()``."""
        for cur in list(self.waiters):
            if cur.ctx is None:
                continue
            if self._die(k, cur, ctx) or self._wound(k, cur.ctx, ctx):
                break

    def _check_kill(self, k: Kernel, waiter: _Waiter, ctx: WwAcquireCtx) -> int:
        """``__ww_mutex_check_kill()``."""
        hold_ctx = self.ctx
        if ctx.acquired == 0:
            return 0
        if not ctx.is_wait_die:
            if ctx.wounded:
                return self._kill(k, ctx)
            return 0
        if hold_ctx is not None and _ctx_less(ctx, hold_ctx):
            return self._kill(k, ctx)
        idx = self.waiters.index(waiter)
        for cur in reversed(self.waiters[:idx]):
            if cur.ctx is None:
                continue
            return self._kill(k, ctx)
        return 0

    def _add_waiter(self, k: Kernel, waiter: _Waiter, ctx: WwAcquireCtx | None) -> int:
        """``__ww_mutex_add_waiter()``: stamp order, context-less waiters FIFO."""
        if ctx is None:
            self.waiters.append(waiter)
            return 0
        is_wait_die = ctx.is_wait_die
        pos: _Waiter | None = None
        for cur in reversed(list(self.waiters)):
            if cur.ctx is None:
                continue
            if _ctx_less(ctx, cur.ctx):
                if is_wait_die:
                    ret = self._kill(k, ctx)
                    if ret:
                        return ret
                break
            pos = cur
            self._die(k, cur, ctx)
        if pos is None:
            self.waiters.append(waiter)
        else:
            self.waiters.insert(self.waiters.index(pos), waiter)
        if not is_wait_die:
            self._wound(k, ctx, self.ctx)
        return 0

    def _lock_acquired(self, k: Kernel, ctx: WwAcquireCtx) -> None:
        """``ww_mutex_lock_acquired()`` with its DEBUG_WW_MUTEXES checks."""
        _debug_warn(k, self.ctx is not None, "ww->ctx", self)
        _debug_warn(k, ctx.done_acquire, "ww_ctx->done_acquire", self)
        if ctx.contending_lock is not None:
            _debug_warn(k, ctx.contending_lock is not self, "ww_ctx->contending_lock != ww", self)
            _debug_warn(k, ctx.acquired > 0, "ww_ctx->acquired > 0", self)
            ctx.contending_lock = None
        _debug_warn(k, ctx.ww_class is not self.ww_class, "ww_ctx->ww_class != ww->ww_class", self)
        ctx.acquired += 1
        self.ctx = ctx

    def _set_context_fastpath(self, k: Kernel, ctx: WwAcquireCtx) -> None:
        """``ww_mutex_set_context_fastpath()``."""
        self._lock_acquired(k, ctx)
        if self.waiters:
            self._check_waiters(k, ctx)

    def _lockdep_acquire(
        self, k: Kernel, cur: SimThread, ctx: WwAcquireCtx | None, *, trylock: bool = False
    ) -> None:
        graph = k.lockdep
        if graph is None:
            return
        nest = ctx.dep_map if ctx is not None else None
        graph.acquire(k, cur, self.dep_map, trylock=trylock, nest_lock=nest, site=fast_site(4))

    def _lockdep_release(self, k: Kernel, cur: SimThread) -> None:
        if k.lockdep is not None:
            k.lockdep.release(k, cur, self.dep_map)

    def _check_alive(self, k: Kernel) -> None:
        if self.destroyed:
            _debug_warn(k, True, "lock->magic != lock", self)

    async def _lock_common(self, k: Kernel, cur: SimThread, ctx: WwAcquireCtx | None) -> int:
        """``__mutex_lock_common()`` with a ww context (or none)."""
        self._check_alive(k)
        if ctx is not None:
            if ctx is self.ctx:
                k.ev("ww_lock", self.name, f"-EALREADY ctx#{ctx.stamp}")
                return -EALREADY
            if ctx.acquired == 0:
                ctx.wounded = False
        self._lockdep_acquire(k, cur, ctx)
        if self.owner is None:
            self.owner = cur
            if ctx is not None:
                self._set_context_fastpath(k, ctx)
            k.ev("ww_lock", self.name, _ctx_note(ctx))
            return 0
        waiter = _Waiter(cur, ctx)
        ret = self._add_waiter(k, waiter, ctx)
        if ret:
            self._lockdep_release(k, cur)
            k.ev("ww_lock", self.name, f"-EDEADLK ctx#{ctx.stamp if ctx else 0} (early)")
            return ret
        while True:
            if self.owner is None:
                break
            if ctx is not None:
                ret = self._check_kill(k, waiter, ctx)
                if ret:
                    self.waiters.remove(waiter)
                    self._lockdep_release(k, cur)
                    k.ev("ww_lock", self.name, f"-EDEADLK ctx#{ctx.stamp}")
                    return ret
            await k.block_current(self)
        self.owner = cur
        if ctx is not None and not ctx.is_wait_die and self.waiters[0] is not waiter:
            self.waiters.remove(waiter)
            self._check_waiters(k, ctx)
        else:
            self.waiters.remove(waiter)
        if ctx is not None:
            self._lock_acquired(k, ctx)
        k.ev("ww_lock", self.name, _ctx_note(ctx))
        return 0

    def _unlock_body(self, k: Kernel) -> None:
        """``ww_mutex_unlock()`` = ``__ww_mutex_unlock()`` + ``mutex_unlock()``."""
        cur = k.current
        assert cur is not None
        if self.ctx is not None:
            _debug_warn(k, not self.ctx.acquired, "!lock->ctx->acquired", self)
            if self.ctx.acquired > 0:
                self.ctx.acquired -= 1
            self.ctx = None
        if self.owner is not cur:
            holder = self.owner.label if self.owner is not None else "nobody"
            if not k.stopping:
                k.fail(
                    Failure(
                        "warn",
                        f"DEBUG_LOCKS_WARN_ON(__owner_task(owner) != current): {cur.label} "
                        f"unlocks ww_mutex {self.name} held by {holder} at "
                        f"{format_site(fast_site(3))}",
                        signature=f"warn:ww_mutex-unlock-owner:{self.ww_class.mutex_name}",
                    ),
                    fatal=k.config.warn_fatal,
                )
            if self.owner is None:
                return
        self._lockdep_release(k, cur)
        self.owner = None
        k.ev("ww_unlock", self.name)
        if self.waiters:
            self._wake(k, self.waiters[0].thread)


def _ctx_note(ctx: WwAcquireCtx | None) -> str:
    return f"ctx#{ctx.stamp}" if ctx is not None else "no ctx"


# ---------------------------------------------------------------------- contexts


def ww_mutex_set_deadlock_injection(k: Kernel, enabled: bool) -> None:
    """Switch CONFIG_DEBUG_WW_MUTEX_SLOWPATH's -EDEADLK injection for run ``k`` (default on)."""
    k.objects[_INJECT_KEY] = enabled


async def ww_acquire_init(ctx: WwAcquireCtx, ww_class: WwClass) -> None:
    """``ww_acquire_init()``: a new stamp (lower = older = wins) and the ctx lockdep maps.

    Since v6.13 the ctx also holds ``first_lock_dep_map``, a fake lock of the
    mutex class nested under the ctx, from init to fini: a lock taken after
    init depends on the mutex class, and a ww_mutex taken without the ctx
    meanwhile is recursive locking.
    """
    await preempt()
    k = current_kernel()
    cur = k.current
    assert cur is not None
    stamps: dict[str, int] = k.objects.setdefault(_STAMP_KEY, {})
    stamp = stamps.get(ww_class.name, 0) + 1
    stamps[ww_class.name] = stamp
    ctx.task = cur
    ctx.stamp = stamp
    ctx.acquired = 0
    ctx.wounded = False
    ctx.is_wait_die = ww_class.is_wait_die
    ctx.ww_class = ww_class
    ctx.done_acquire = False
    ctx.contending_lock = None
    ctx.dep_map = LockdepMap(f"ctx#{stamp}", ww_class.acquire_name)
    ctx.first_lock_dep_map = LockdepMap(f"ctx#{stamp}->first_lock_dep_map", ww_class.mutex_name)
    ctx.deadlock_inject_interval = 1
    ctx.deadlock_inject_countdown = stamp & 0xF
    if k.lockdep is not None:
        # mutex_acquire(&ctx->dep_map); mutex_acquire_nest(&ctx->first_lock_dep_map,
        # &ctx->dep_map): the ctx's locks merge into this fake first lock.
        k.lockdep.acquire(k, cur, ctx.dep_map)
        k.lockdep.acquire(k, cur, ctx.first_lock_dep_map, nest_lock=ctx.dep_map)
    k.ev("ww_acquire_init", ww_class.name, f"ctx#{stamp}")


async def ww_acquire_done(ctx: WwAcquireCtx) -> None:
    """``ww_acquire_done()``: the end of the acquire phase (later locks WARN)."""
    await preempt()
    k = current_kernel()
    if ctx.dep_map is not None:
        lockdep_assert_held(ctx.dep_map)
    if ctx.done_acquire and not k.stopping:
        k.fail(
            Failure(
                "warn",
                f"DEBUG_LOCKS_WARN_ON(ctx->done_acquire): ww_acquire_done() twice on "
                f"ctx#{ctx.stamp} at {format_site(fast_site(2))}",
                signature="warn:ww_acquire_done-twice",
            ),
            fatal=k.config.warn_fatal,
        )
    ctx.done_acquire = True


async def ww_acquire_fini(ctx: WwAcquireCtx) -> None:
    """``ww_acquire_fini()``: WARN if locks acquired under ``ctx`` are still held."""
    await preempt()
    k = current_kernel()
    cur = k.current
    assert cur is not None
    if k.lockdep is not None and ctx.dep_map is not None:
        if ctx.first_lock_dep_map is not None:
            k.lockdep.release(k, cur, ctx.first_lock_dep_map)
        k.lockdep.release(k, cur, ctx.dep_map)
    if ctx.acquired and not k.stopping:
        k.fail(
            Failure(
                "warn",
                f"DEBUG_LOCKS_WARN_ON(ctx->acquired): ww_acquire_fini() on ctx#{ctx.stamp} with "
                f"{ctx.acquired} lock(s) still held at {format_site(fast_site(2))}",
                signature="warn:ww_acquire_fini-acquired",
            ),
            fatal=k.config.warn_fatal,
        )
    k.ev("ww_acquire_fini", ctx.ww_class.name if ctx.ww_class else "?", f"ctx#{ctx.stamp}")


# ---------------------------------------------------------------------- locking


async def _deadlock_injection(k: Kernel, lock: WwMutex, ctx: WwAcquireCtx) -> int:
    """``ww_mutex_deadlock_injection()`` (CONFIG_DEBUG_WW_MUTEX_SLOWPATH)."""
    if not k.objects.get(_INJECT_KEY, True):
        return 0
    countdown = ctx.deadlock_inject_countdown
    ctx.deadlock_inject_countdown -= 1
    if countdown == 0:
        tmp = ctx.deadlock_inject_interval
        tmp = 0xFFFFFFFF if tmp > 0xFFFFFFFF // 4 else tmp * 2 + tmp + tmp // 2
        ctx.deadlock_inject_interval = tmp
        ctx.deadlock_inject_countdown = tmp
        ctx.contending_lock = lock
        lock._unlock_body(k)
        k.ev("ww_lock", lock.name, f"-EDEADLK injected ctx#{ctx.stamp}")
        return -EDEADLK
    return 0


async def ww_mutex_lock(lock: WwMutex, ctx: WwAcquireCtx | None) -> int:
    """``ww_mutex_lock()``: 0, -EALREADY (held by ``ctx``) or -EDEADLK (back off)."""
    await preempt()
    k = current_kernel()
    cur = k.current
    assert cur is not None
    might_sleep()
    ret = await lock._lock_common(k, cur, ctx)
    if not ret and ctx is not None and ctx.acquired > 1:
        return await _deadlock_injection(k, lock, ctx)
    return ret


async def ww_mutex_lock_interruptible(lock: WwMutex, ctx: WwAcquireCtx | None) -> int:
    """``ww_mutex_lock_interruptible()``: the model has no signals, so never -EINTR."""
    return await ww_mutex_lock(lock, ctx)


async def ww_mutex_lock_slow(lock: WwMutex, ctx: WwAcquireCtx) -> None:
    """``ww_mutex_lock_slow()``: take the contended lock after backing off."""
    k = current_kernel()
    if ctx.contending_lock is None and not k.stopping:
        k.fail(
            Failure(
                "warn",
                f"DEBUG_LOCKS_WARN_ON(!ctx->contending_lock): ww_mutex_lock_slow({lock.name}) "
                f"without a preceding -EDEADLK at {format_site(fast_site(2))}",
                signature="warn:ww_mutex_lock_slow-not-contended",
            ),
            fatal=k.config.warn_fatal,
        )
    await ww_mutex_lock(lock, ctx)


async def ww_mutex_lock_slow_interruptible(lock: WwMutex, ctx: WwAcquireCtx) -> int:
    """``ww_mutex_lock_slow_interruptible()``."""
    await ww_mutex_lock_slow(lock, ctx)
    return 0


async def ww_mutex_trylock(lock: WwMutex, ctx: WwAcquireCtx | None = None) -> bool:
    """``ww_mutex_trylock()``: never -EALREADY; a lock held by ``ctx`` itself fails."""
    await preempt()
    k = current_kernel()
    cur = k.current
    assert cur is not None
    lock._check_alive(k)
    if ctx is not None and ctx.acquired == 0:
        ctx.wounded = False
    if lock.owner is not None:
        k.ev("ww_trylock-fail", lock.name)
        return False
    lock.owner = cur
    if ctx is not None:
        lock._set_context_fastpath(k, ctx)
    lock._lockdep_acquire(k, cur, ctx, trylock=True)
    k.ev("ww_trylock", lock.name, _ctx_note(ctx))
    return True


async def ww_mutex_unlock(lock: WwMutex) -> None:
    """``ww_mutex_unlock()``."""
    await preempt()
    lock._unlock_body(current_kernel())


def ww_mutex_is_locked(lock: WwMutex) -> bool:
    """``ww_mutex_is_locked()``."""
    return lock.owner is not None


def ww_mutex_destroy(lock: WwMutex) -> None:
    """``ww_mutex_destroy()`` = ``mutex_destroy()``: WARN if still locked."""
    k = current_kernel()
    if lock.owner is not None and not k.stopping:
        k.fail(
            Failure(
                "warn",
                f"DEBUG_LOCKS_WARN_ON(mutex_is_locked(lock)): ww_mutex_destroy({lock.name}) while "
                f"held by {lock.owner.label}",
                signature=f"warn:mutex-destroy-locked:{lock.ww_class.mutex_name}",
            ),
            fatal=k.config.warn_fatal,
        )
    lock.destroyed = True
