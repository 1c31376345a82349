"""The controlled executor: one run of the simulated kernel, inside a Trio task.

Every simulated thread is a coroutine, and the run drives them itself: the
calling Trio task sends into the running thread's coroutine until it parks
(at a yield point where the strategy switched, or when it blocks), then into
the coroutine of the thread the strategy picked. Nothing else ever decides,
so a run is fully described by its choice list, and a switch costs one
coroutine resumption instead of a trip through Trio's scheduler. A thread
that awaits anything else (a raw Trio primitive, real sleep, I/O) yields a
foreign object to the driver, which reports it as ``uncontrolled``.

Interrupts and timers land anywhere: at every decision where a timer is
pending, firing the earliest one (the clock jumps to its deadline and its
callback runs in timer context) is an option beside the runnable threads.
The strategy sees it as the pseudo-thread :attr:`Kernel.irq_option`, last in
its option list. With nothing runnable the clock jumps to the next timer.

Choice list encoding: a thread choice records the chosen tid (>= 0); firing
the earliest timer records :data:`IRQ_TID`; a data choice (e.g. "does this
allocation fail?") records ``-1 - value``. Choices are only recorded where
there was more than one option.
"""

from __future__ import annotations

import functools
import heapq
import types
from bisect import insort
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol

from .failure import (
    ExecutorError,
    Failure,
    KernelFault,
    RunStopped,
)
from .strategy import Canonical, Strategy
from .thread import IRQ_TID, BlockReason, SimThread, ThreadState
from .trace import TIMER_TID, Trace

if TYPE_CHECKING:
    from ..locking.lockdep import HeldLock, Lockdep
    from ..mm.memory import Memory

_RUNNABLE = ThreadState.RUNNABLE
_BLOCKED = ThreadState.BLOCKED
_DONE = ThreadState.DONE

NSEC_PER_USEC = 1_000
NSEC_PER_MSEC = 1_000_000
NSEC_PER_SEC = 1_000_000_000


@dataclass
class KernelConfig:
    """Knobs of one run. Everything that changes behaviour is recorded in replay files."""

    lockdep: bool = True
    trace: bool = True
    warn_fatal: bool = True  # a WARN ends the run (False: only count it)
    max_steps: int = 2_000_000
    time_limit_ns: int = 3600 * NSEC_PER_SEC
    alloc_fail_nth: int = 0  # fail the Nth failable allocation (0: off)
    alloc_fail_probability: float = 0.0  # each allocation fails with p, drawn from the strategy
    coverage: bool = False  # collect coverage (k.coverage; never changes what the run does)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KernelConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        cfg = cls(**known)
        for name, f in cls.__dataclass_fields__.items():
            want = type(f.default)
            got = getattr(cfg, name)
            if want is float and isinstance(got, int) and not isinstance(got, bool):
                setattr(cfg, name, float(got))
            elif not isinstance(got, want) or (want is int and isinstance(got, bool)):
                raise ValueError(f"config field {name!r} must be {want.__name__}")
        return cfg


class CoverageHooks(Protocol):
    """What a coverage collector hears from a run (``panthor_testbed.fuzz.coverage``)."""

    def start(self, k: Kernel) -> None: ...

    def stop(self, k: Kernel) -> None: ...

    def on_lock(self, held: list[HeldLock], key: str) -> None: ...

    def on_irq(self, timer: str) -> None: ...

    def on_alloc(self, failed: bool) -> None: ...


class Timer:
    """A callback at a virtual deadline (hardware latency, delayed work, timeouts).

    Callbacks are synchronous (softirq-like): they may wake threads, never block.
    """

    __slots__ = ("active", "deadline", "fn", "name")

    def __init__(self, deadline: int, fn: Callable[[], None], name: str) -> None:
        self.deadline = deadline
        self.fn = fn
        self.name = name
        self.active = True

    def cancel(self) -> bool:
        """Returns True if the timer was still pending."""
        was = self.active
        self.active = False
        return was


class _Sleep:
    """Block reason of a thread in msleep/udelay."""

    __slots__ = ("deadline", "name")

    def __init__(self, deadline: int) -> None:
        self.deadline = deadline
        self.name = "sleep"

    def describe(self) -> str:
        return f"sleep until {self.deadline / NSEC_PER_USEC:.1f}us"

    def holder(self) -> SimThread | None:
        return None


_K: Kernel | None = None


def current_kernel() -> Kernel:
    k = _K
    if k is None:
        raise ExecutorError("not inside a simulated kernel run")
    return k


def current_kernel_or_none() -> Kernel | None:
    return _K


def current() -> SimThread:
    """The running simulated thread (the kernel's ``current``)."""
    k = _K
    if k is None:
        raise ExecutorError("not inside a simulated kernel run")
    cur = k.current
    if cur is None:
        raise ExecutorError("no simulated thread is running")
    return cur


async def preempt() -> None:
    """A yield point: the strategy may switch threads, or an interrupt may land, here."""
    k = _K
    if k is None:
        raise ExecutorError("preempt() outside a simulated kernel run")
    k.steps += 1
    if k.steps > k.max_steps:
        k.step_limit_hit()
    if k.stopping:
        return
    if k._timers:
        await k.decide()
    elif len(k.runnable) > 1:
        # The common case inlined (no timer pending): a thread choice.
        cur = k.current
        assert cur is not None
        nxt = k.strategy.pick(k, cur, k.runnable)
        if k.stopping:  # the strategy gave up (a replay that does not fit)
            raise RunStopped()
        k.choices.append(nxt.tid)
        if nxt is not cur:
            await k.switch(cur, nxt)


class _Park:
    """What a parked thread's coroutine yields to the driver."""

    __slots__ = ()


_PARK: Final = _Park()


@types.coroutine
def _park() -> Generator[_Park, None, None]:
    """Give the CPU back to the driver; it resumes us when we are ``current`` again."""
    yield _PARK


class Kernel:
    """One run: clock, threads, strategy, trace, lockdep, memory, failures."""

    def __init__(
        self,
        strategy: Strategy | None = None,
        config: KernelConfig | None = None,
        *,
        lockdep: Lockdep | None = None,
        run_id: int = 0,
    ) -> None:
        self.config = config or KernelConfig()
        self.strategy: Strategy = strategy if strategy is not None else Canonical()
        self.run_id = run_id
        self.threads: list[SimThread] = []
        self.runnable: list[SimThread] = []  # sorted by tid
        self.current: SimThread | None = None
        self.live_nondaemon = 0
        self.steps = 0
        self.max_steps = self.config.max_steps
        self.now = 0
        self._timers: list[tuple[int, int, Timer]] = []
        self._timer_seq = 0
        self.choices: list[int] = []
        self.failures: list[Failure] = []
        self.stopping = False  # the run is ending: no more switches, no more findings
        self.interrupted = False  # cancelled from outside (Ctrl-C): Trio owns the teardown
        self.finished = False  # every non-daemon thread exited
        self.trace = Trace()
        self.tracing = self.config.trace
        self._events = self.trace.events
        self.lockdep: Lockdep | None = None
        if self.config.lockdep:
            self.lockdep = lockdep if lockdep is not None else _lockdep.default_lockdep()
        self.mem: Memory = _memory.Memory(self)
        # None unless the config asks: every hook is one None check when off.
        self.coverage: CoverageHooks | None = None
        if self.config.coverage:
            from ...fuzz.coverage import Collector

            self.coverage = Collector(self)
        self.exit_checks: list[Callable[[Kernel], None]] = []
        self.objects: dict[str, Any] = {}  # scenario-visible handles (device, vms, ...)
        self._timer_thread: SimThread | None = None
        self._running = False
        self._ran = False

    # The option "fire the earliest pending timer" in a strategy's option list
    # (it never runs, so every run can share it).
    irq_option: Final = SimThread(IRQ_TID, "interrupt", None, (), True)

    @property
    def timer_thread(self) -> SimThread:
        """The context timer callbacks run in: softirq, so atomic (might_sleep reports)."""
        t = self._timer_thread
        if t is None:
            t = self._timer_thread = SimThread(TIMER_TID, "timer", None, (), True)
            t.preempt_count = 1
        return t

    # ------------------------------------------------------------------ tracing

    def ev(self, kind: str, obj: str = "", detail: str = "") -> None:
        """Record one trace event in the running thread's column."""
        if self.tracing:
            cur = self.current
            self._events.append(
                (self.steps, self.now, cur.tid if cur is not None else TIMER_TID, kind, obj, detail)
            )

    # ------------------------------------------------------------------ threads

    def spawn(
        self,
        fn: Callable[..., Awaitable[Any]],
        *args: Any,
        name: str | None = None,
        daemon: bool = False,
        **kwargs: Any,
    ) -> SimThread:
        """Create a simulated thread; it becomes runnable (spawning is not a yield point).

        Daemon threads (idle workers, IRQ threads, the GPU) may stay blocked
        when the run ends; the run ends when every non-daemon thread exited.
        """
        if not self._running:
            raise ExecutorError("spawn() outside a run")
        if self.stopping:
            raise RunStopped()
        if kwargs:
            fn = functools.partial(fn, **kwargs)
        tid = len(self.threads)
        tname: str = name or getattr(fn, "__name__", None) or "thread"
        t = SimThread(tid, tname, fn, args, daemon)
        self.threads.append(t)
        self.trace.thread_names.append(tname)
        self.runnable.append(t)  # the newest tid is the largest: stays sorted
        if not daemon:
            self.live_nondaemon += 1
        if self.current is not None:
            self.ev("spawn", f"T{tid}", tname)
        return t

    def make_runnable(self, t: SimThread, woken: bool = True) -> None:
        """Wake a blocked thread (it runs when a strategy picks it)."""
        if t.state is not _BLOCKED:
            return
        t.state = _RUNNABLE
        t.blocked_on = None
        t.woken = woken
        if t.timer is not None:
            t.timer.cancel()
            t.timer = None
        insort(self.runnable, t, key=_tid_of)

    async def block_current(self, reason: BlockReason, timeout_ns: int | None = None) -> bool:
        """Block the running thread on ``reason`` until someone calls make_runnable.

        Returns True if woken, False if ``timeout_ns`` elapsed first. The
        caller has already registered the thread wherever its waker looks.
        """
        cur = self.current
        assert cur is not None
        if self.stopping:
            raise RunStopped()
        cur.state = _BLOCKED
        cur.blocked_on = reason
        cur.woken = False
        self.runnable.remove(cur)
        if timeout_ns is not None:
            cur.timer = self.add_timer(timeout_ns, functools.partial(self._timeout, cur, reason))
        if self.tracing:
            self._events.append((self.steps, self.now, cur.tid, "block", reason.name, ""))
        nxt = self._next_after_block()
        if nxt is cur:
            return cur.woken
        if nxt is None:
            # The run is over (deadlock or end); teardown will unwind us.
            await _park()
            raise ExecutorError("a thread was resumed after its run ended")
        await self.switch(cur, nxt)
        return cur.woken

    def _timeout(self, t: SimThread, reason: BlockReason) -> None:
        if t.state is _BLOCKED and t.blocked_on is reason:
            t.timer = None
            remove = getattr(reason, "forget", None)
            if remove is not None:
                remove(t)
            self.make_runnable(t, woken=False)

    async def sleep_ns(self, ns: int) -> None:
        """Sleep for ``ns`` of virtual time (msleep, usleep_range, udelay)."""
        if ns <= 0:
            await preempt()
            return
        self.steps += 1
        await self.block_current(_Sleep(self.now + ns), timeout_ns=ns)

    async def switch(self, cur: SimThread, nxt: SimThread) -> None:
        """Hand the CPU from ``cur`` (the caller) to ``nxt`` and park until picked again."""
        self.current = nxt
        await _park()

    async def decide(self) -> None:
        """A decision at a yield point of the running thread (see :func:`preempt`)."""
        cur = self.current
        assert cur is not None
        while True:
            tm = self.next_timer()
            runnable = self.runnable
            if tm is None:
                if len(runnable) < 2:
                    return
                opts = runnable
            else:
                opts = [*runnable, self.irq_option]
            nxt = self.strategy.pick(self, cur, opts)
            if self.stopping:  # the strategy gave up (a replay that does not fit)
                raise RunStopped()
            self.choices.append(nxt.tid)
            if nxt is self.irq_option:
                assert tm is not None
                self._fire(tm)
                if self.stopping:
                    raise RunStopped()
                continue
            if nxt is not cur:
                await self.switch(cur, nxt)
            return

    def _next_after_block(self) -> SimThread | None:
        """Pick who runs now that the current thread cannot (blocked or exited).

        Advances virtual time when nothing is runnable; returns None when the
        run is over (everyone done, or deadlock), after waking the main task.
        """
        while True:
            runnable = self.runnable
            if runnable:
                if self.stopping:
                    return runnable[0]
                tm = self.next_timer()
                if tm is None:
                    if len(runnable) == 1:
                        return runnable[0]
                    opts = runnable
                else:
                    opts = [*runnable, self.irq_option]
                nxt = self.strategy.pick(self, None, opts)
                if self.stopping:
                    self._wake_main()
                    return None
                self.choices.append(nxt.tid)
                if nxt is self.irq_option:
                    assert tm is not None
                    self._fire(tm)
                    if self.stopping:
                        self._wake_main()
                        return None
                    continue
                return nxt
            if self.live_nondaemon == 0:
                self.finished = True
                self._wake_main()
                return None
            tm = self._timer_at_quiescence()
            if tm is None:
                if not self.stopping:
                    self._report_deadlock()
                self._wake_main()
                return None
            self._fire(tm)

    # ------------------------------------------------------------------ time

    def add_timer(self, delay_ns: int, fn: Callable[[], None], name: str = "timer") -> Timer:
        if delay_ns < 0:
            raise ValueError("negative timer delay")
        tm = Timer(self.now + delay_ns, fn, name)
        self._timer_seq += 1
        heapq.heappush(self._timers, (tm.deadline, self._timer_seq, tm))
        return tm

    def next_timer(self) -> Timer | None:
        """The earliest pending timer that may fire (within the virtual-time limit)."""
        timers = self._timers
        while timers:
            tm = timers[0][2]
            if not tm.active:
                heapq.heappop(timers)
                continue
            if tm.deadline > self.config.time_limit_ns:
                return None
            return tm
        return None

    def _timer_at_quiescence(self) -> Timer | None:
        """Nothing can run: the next timer, or None (a deadlock, or past the time limit)."""
        timers = self._timers
        while timers and not timers[0][2].active:
            heapq.heappop(timers)
        if not timers:
            return None
        tm = timers[0][2]
        if tm.deadline > self.config.time_limit_ns:
            if not self.stopping:
                self._livelock(
                    f"virtual time limit of {self.config.time_limit_ns / NSEC_PER_SEC:g}s "
                    f"reached with threads still waiting for timers"
                )
            return None
        return tm

    def _fire(self, tm: Timer) -> None:
        """Fire ``tm`` (the earliest pending timer): the clock jumps to its deadline."""
        heapq.heappop(self._timers)
        if tm.deadline > self.now:
            self.now = tm.deadline
        tm.active = False
        self.steps += 1
        if self.coverage is not None:
            self.coverage.on_irq(tm.name)
        saved = self.current
        self.current = self.timer_thread
        try:
            tm.fn()
        finally:
            self.current = saved
        if self.steps > self.max_steps and not self.stopping:
            self._livelock(f"no end after {self.max_steps} steps")

    # ------------------------------------------------------------------ choices

    def choose_data(self, n: int, p_nonzero: float = 0.5, what: str = "") -> int:
        """A data choice in ``range(n)`` from the strategy (0 is the canonical one).

        ``what`` says what a non-zero value means, for shrink reports
        (e.g. "allocation #3 fails").
        """
        if n <= 1 or self.stopping:
            return 0
        v = self.strategy.choose(self, n, p_nonzero, what)
        if self.stopping:
            raise RunStopped()
        if not 0 <= v < n:
            raise ExecutorError(f"strategy returned data choice {v} outside range({n})")
        self.choices.append(-1 - v)
        return v

    # ------------------------------------------------------------------ failures

    def record_failure(self, failure: Failure, *, fatal: bool | None = None) -> None:
        """Record a finding; a fatal one makes the run stop."""
        if self.stopping:
            return
        cur = self.current
        if failure.thread is None and cur is not None:
            failure.thread = cur.label
        failure.step = failure.step or self.steps
        failure.time_ns = failure.time_ns or self.now
        is_fatal = failure.fatal if fatal is None else fatal
        failure.extra.setdefault("fatal", is_fatal)
        self.failures.append(failure)
        if self.tracing:
            self.ev("FAIL", failure.kind, failure.message[:120])
        if is_fatal:
            self.stopping = True
            self.tracing = False

    def fail(self, failure: Failure, *, fatal: bool | None = None) -> None:
        """Record a finding from inside a thread; unwind the thread if it is fatal."""
        self.record_failure(failure, fatal=fatal)
        if self.stopping:
            raise RunStopped()

    def step_limit_hit(self) -> NoReturn:
        self._livelock(f"no end after {self.max_steps} steps")
        raise RunStopped()

    def _livelock(self, why: str) -> None:
        alive = [t.label for t in self.threads if t.state is not _DONE and not t.daemon]
        self.record_failure(
            Failure(
                "livelock",
                f"{why}; still alive: {', '.join(alive) or 'none'}",
                signature=f"livelock:{why.split(' ', 1)[0]}",
            )
        )

    def _report_deadlock(self) -> None:
        from .frames import Site, blocked_site, caller_site, format_site

        rows: list[tuple[str, str, str, Site]] = []
        parts = []
        classes = []
        for t in self.threads:
            if t.state is not _BLOCKED:
                continue
            reason = t.blocked_on
            what = reason.describe() if reason is not None else "?"
            holder = reason.holder() if reason is not None else None
            held_by = f" held by {holder.label}" if holder is not None else ""
            # The thread that found the deadlock is still running: read its stack.
            site = caller_site(2) if t is self.current else blocked_site(t)
            tag = " (daemon)" if t.daemon else ""
            rows.append((t.label, tag, what + held_by, site))
            if not t.daemon:
                parts.append(f"{t.label} waits for {what}{held_by}")
                classes.append(getattr(reason, "klass", None) or (reason.name if reason else "?"))

        def report() -> str:
            lines = [
                f"  {label}{tag} waits for {what}  [{format_site(site)}]"
                for label, tag, what, site in rows
            ]
            return "deadlock: every thread is blocked and no timer is pending\n" + "\n".join(lines)

        self.record_failure(
            Failure(
                "deadlock",
                "; ".join(parts),
                report=report,
                thread=None,
                signature="deadlock:" + "|".join(sorted(set(classes))),
            )
        )

    def _thread_crashed(self, t: SimThread, exc: BaseException) -> None:
        import traceback

        from .frames import model_location

        tb = exc.__traceback__
        where = model_location(tb)
        if isinstance(exc, KernelFault):
            kind = exc.failure_kind
            msg = exc.message
            sig = exc.signature or f"{kind}:{where}"
        else:
            kind = "exception"
            msg = f"{type(exc).__name__}: {exc}"
            sig = f"exception:{type(exc).__name__}:{where}"
        report = "".join(traceback.format_exception(type(exc), exc, tb))
        self.record_failure(
            Failure(kind, f"{msg} (at {where})", report=report, thread=t.label, signature=sig),
            fatal=True,
        )

    # ------------------------------------------------------------------ run

    async def run_thread(self, t: SimThread) -> None:
        """The coroutine of one simulated thread: its function, and what ends it."""
        try:
            if self.stopping:
                raise RunStopped()
            t.started = True
            assert t.fn is not None
            await t.fn(*t.args)
        except RunStopped:
            pass
        except Exception as exc:  # any escape is a finding
            self._thread_crashed(t, exc)
        except BaseException:
            # Ctrl-C and friends: leave the run, let the caller report.
            self.stopping = True
            self.tracing = False
            self.interrupted = True
            self._on_thread_exit(t)
            raise
        self._on_thread_exit(t)

    def _on_thread_exit(self, t: SimThread) -> None:
        if t.state is _DONE:
            return
        was_runnable = t.state is _RUNNABLE
        t.state = _DONE
        if was_runnable:
            self.runnable.remove(t)
        if not t.daemon:
            self.live_nondaemon -= 1
        if self.stopping:
            if self.current is t:
                self.current = None
            return
        if self.tracing:
            self._events.append((self.steps, self.now, t.tid, "exit", "", ""))
        if t.held and self.lockdep is not None:
            self.lockdep.report_held_at_exit(self, t)
            if self.stopping:
                self.current = None
                return
        if t.exit_wq is not None:
            t.exit_wq.wake_all()
        self.current = self._next_after_block()

    def _wake_main(self) -> None:
        """The run is over: the driver stops resuming threads."""
        self.current = None

    def _drive(self) -> None:
        """Resume the current thread's coroutine until nobody is current any more."""
        while True:
            t = self.current
            if t is None:
                return
            coro = t.coro
            if coro is None:
                coro = t.coro = self.run_thread(t)
            try:
                got = coro.send(None)
            except StopIteration:
                continue  # run_thread returned; it already picked who runs next
            except BaseException:
                # Ctrl-C in the middle of model code: unwind the others, re-raise.
                self.stopping = True
                self.tracing = False
                self.interrupted = True
                self._unwind_all()
                raise
            if got is not _PARK:
                self._foreign_await(t, coro)

    def _foreign_await(self, t: SimThread, coro: Coroutine[Any, Any, None]) -> None:
        """``t`` awaited something the executor does not control: report it, unwind it."""
        what = describe_foreign_await(coro)
        self.record_failure(
            Failure(
                "uncontrolled",
                f"{t.label} awaited {what}, which the executor does not control",
                thread=t.label,
                signature=f"uncontrolled:{what.split(' ', 1)[0]}",
            ),
            fatal=True,
        )
        self.current = t
        self._throw(t, coro)
        self.current = None

    def _throw(self, t: SimThread, coro: Coroutine[Any, Any, None]) -> None:
        """Unwind a parked thread: RunStopped at the point where it waits."""
        try:
            coro.throw(RunStopped())
        except StopIteration:
            return
        except BaseException:
            if not self.interrupted:
                raise
            return
        # It awaited again while unwinding (a cleanup that blocks): close it.
        coro.close()
        if t.state is not _DONE:
            self._on_thread_exit(t)

    async def run(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> None:
        """Execute ``fn(kernel, *args, **kwargs)`` as thread ``init`` and everything it spawns.

        The whole run happens inside the calling Trio task, which it never
        leaves: the simulated threads only ever wait for each other.
        """
        self.run_sync(fn, *args, **kwargs)

    def run_sync(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> None:
        """:meth:`run`, callable outside Trio (tests, tools)."""
        global _K
        if self._ran:
            raise ExecutorError("a Kernel runs once; make a new one")
        if _K is not None:
            raise ExecutorError("another simulated kernel run is active in this process")
        self._ran = True
        _K = self
        self._running = True
        self.strategy.start_run(self)
        cov = self.coverage
        if cov is not None:
            cov.start(self)
        try:
            body = functools.partial(fn, **kwargs) if kwargs else fn
            self.current = self.spawn(body, self, *args, name="init")
            self._drive()
            self._teardown()
        finally:
            _K = None
            self._running = False
            self.tracing = False
            if cov is not None:
                cov.stop(self)
            self.strategy.end_run(self)
        if self.finished and not any(f.extra.get("fatal") for f in self.failures):
            self._exit_checks()

    def _teardown(self) -> None:
        """Unwind every thread still alive, one at a time, in tid order."""
        self.stopping = True
        self.tracing = False
        self._unwind_all()
        self.current = None

    def _unwind_all(self) -> None:
        for t in self.threads:
            if t.state is _DONE:
                continue
            coro = t.coro
            if coro is None:  # never started
                self._on_thread_exit(t)
                continue
            self.current = t
            self._throw(t, coro)

    def _exit_checks(self) -> None:
        saved = self.stopping
        self.stopping = False
        try:
            self.mem.check_leaks()
            for check in self.exit_checks:
                check(self)
        finally:
            self.stopping = saved or self.stopping

    # ------------------------------------------------------------------ results

    @property
    def primary_failure(self) -> Failure | None:
        """The finding that names the run: the fatal one if any, else the first."""
        for f in self.failures:
            if f.extra.get("fatal"):
                return f
        return self.failures[0] if self.failures else None


def _tid_of(t: SimThread) -> int:
    return t.tid


def describe_foreign_await(coro: object) -> str:
    """Name the non-executor call a coroutine is parked in, e.g. 'trio.sleep (at x.py:12)'."""
    from .frames import await_frames, short_path

    frames = await_frames(coro)
    caller = None
    for frame, lineno in frames:
        module = frame.f_globals.get("__name__", "?")
        if module == "trio" or module.startswith("trio."):
            parts = [p for p in module.split(".") if not p.startswith("_")]
            name = ".".join([*parts, frame.f_code.co_qualname])
            at = f" (at {caller})" if caller else ""
            return f"{name}{at}"
        caller = f"{short_path(frame.f_code.co_filename)}:{lineno}"
    if frames:
        frame, lineno = frames[-1]
        return f"{frame.f_code.co_qualname} (at {short_path(frame.f_code.co_filename)}:{lineno})"
    return "an unknown awaitable"


# Re-exported for the primitives' convenience.
__all__ = [
    "IRQ_TID",
    "NSEC_PER_MSEC",
    "NSEC_PER_SEC",
    "NSEC_PER_USEC",
    "Kernel",
    "KernelConfig",
    "Timer",
    "current",
    "current_kernel",
    "current_kernel_or_none",
    "preempt",
]

# Modules that import this one; bound here, after everything they use exists.
from ..locking import lockdep as _lockdep  # noqa: E402
from ..mm import memory as _memory  # noqa: E402
