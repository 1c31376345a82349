"""Trio tasks reused across runs: the worker pool and the stall guard.

A *session* lives inside one ``trio.run`` and serves consecutive runs
(a campaign runs thousands of executions in one session), so an execution
pays for no Trio task creation. A simulated thread is bound to an idle
worker task when it is spawned; the worker runs it when the strategy first
picks it, then returns to the pool.

The guard turns an await the executor does not control (a raw Trio
primitive, real sleep, I/O) into a finding: when every Trio task is blocked
while a simulated thread is supposed to be running, that thread is stuck
outside the executor.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio
from trio.lowlevel import Abort, current_task, reschedule, wait_task_rescheduled

from .failure import ExecutorError, RunStopped

if TYPE_CHECKING:
    from .kernel import Kernel
    from .thread import SimThread


class Worker:
    __slots__ = ("abort_idle", "kernel", "scope", "task", "thread")

    def __init__(self, thread: SimThread, kernel: Kernel, session: Session) -> None:
        self.thread: SimThread | None = thread
        self.kernel: Kernel | None = kernel
        self.task: trio.lowlevel.Task | None = None
        self.scope: trio.CancelScope | None = None

        def abort_idle(_: Any) -> Abort:
            # Cancelled while idle (the session is closing): never hand this
            # task another thread, Trio is about to resume it with Cancelled.
            if self in session.idle:
                session.idle.remove(self)
            return Abort.SUCCEEDED

        self.abort_idle = abort_idle


def _abort_idle(_: Any) -> Abort:
    return Abort.SUCCEEDED


class Session:
    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.idle: list[Worker] = []
        self.kernel: Kernel | None = None
        self.workers_started = 0
        self._guard_task: trio.lowlevel.Task | None = None
        self._guard_idle = False

    # ------------------------------------------------------------------ runs

    def begin(self, k: Kernel) -> None:
        if self.kernel is not None:
            raise ExecutorError("another simulated kernel run is active in this session")
        self.kernel = k
        if self._guard_idle and not self.nursery.cancel_scope.cancel_called:
            self._guard_idle = False
            assert self._guard_task is not None
            reschedule(self._guard_task)

    def end(self, k: Kernel) -> None:
        if self.kernel is k:
            self.kernel = None

    def assign(self, t: SimThread, k: Kernel) -> None:
        """Bind a new simulated thread to a worker task (no Trio scheduling happens)."""
        if self.idle:
            w = self.idle.pop()
            w.thread = t
            w.kernel = k
            t.worker = w
            t.task = w.task
            t.parked = True  # the worker is parked idle: it runs t when rescheduled
            return
        w = Worker(t, k, self)
        t.worker = w
        self.workers_started += 1
        self.nursery.start_soon(self._worker_main, w, name="sim-worker")

    # ------------------------------------------------------------------ tasks

    # Ctrl-C never lands inside a worker (between model code and the pool's
    # bookkeeping): Trio delivers it to the main task, which then cancels us.
    @trio.lowlevel.enable_ki_protection
    async def _worker_main(self, w: Worker) -> None:
        w.task = current_task()
        with trio.CancelScope() as scope:
            w.scope = scope
            while True:
                t, k = w.thread, w.kernel
                if t is None or k is None:
                    return
                t.task = w.task
                await k.run_thread(t)
                w.thread = w.kernel = None
                if scope.cancel_called:
                    return  # cancelled by the guard: this task cannot park any more
                self.idle.append(w)
                # RunStopped here: killed before it started; run_thread sees `stopping`.
                with contextlib.suppress(RunStopped):
                    await wait_task_rescheduled(w.abort_idle)

    @trio.lowlevel.enable_ki_protection
    async def _guard_main(self) -> None:
        self._guard_task = current_task()
        while True:
            k = self.kernel
            if k is None:
                self._guard_idle = True
                try:
                    await wait_task_rescheduled(_abort_idle)
                finally:
                    self._guard_idle = False
                continue
            await _wait_all_tasks_blocked()
            k = self.kernel
            if k is not None:
                k.stalled()


async def _wait_all_tasks_blocked() -> None:
    # `trio.testing` re-exports this from trio._core, but importing it pulls
    # in pytest when that is installed (0.15-0.5 s of every command's start-up).
    try:
        from trio._core._generated_run import wait_all_tasks_blocked
    except ImportError:  # trio moved it: the public path still works
        from trio.testing import wait_all_tasks_blocked

    await wait_all_tasks_blocked()


_SESSION: Session | None = None


def current_session() -> Session | None:
    return _SESSION


@asynccontextmanager
async def open_session() -> AsyncIterator[Session]:
    """Serve consecutive runs from one pool of Trio tasks (inside one trio.run)."""
    global _SESSION
    outer = _SESSION
    async with trio.open_nursery() as nursery:
        session = Session(nursery)
        nursery.start_soon(session._guard_main, name="sim-guard")
        _SESSION = session
        try:
            yield session
        finally:
            _SESSION = outer
            nursery.cancel_scope.cancel()
