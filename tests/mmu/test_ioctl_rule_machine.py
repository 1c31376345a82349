"""The ioctls of one file as a Hypothesis ``RuleBasedStateMachine`` (issue 11).

The model is async and a rule cannot await, so the machine bridges: its
``__init__`` starts one device run (:func:`drv_fixture.run_files`) in a
background ``threading.Thread``. The run's body loops: it takes the next op
(a coroutine function of the :class:`Ctx`) from a request queue, awaits it
and puts the result (or the exception it raised) on a reply queue. The
blocking ``get`` freezes the whole single-threaded model, so no virtual time
passes while Hypothesis decides the next rule. Each rule sends one op, waits
for the reply and re-raises an exception raised in the model thread; the
model thread dying (or the run ending early) wakes the waiting rule too.

The reference model and its checks are those of
``test_ioctl_state_machine.py`` (imported, not copied): the ops are that
module's op tuples, built from the Bundle values (VM ids, BO handles) the
rules draw. Rules: VM create (-EBUSY at 32 live VMs) and destroy (consumes
the id), BO create and GEM_CLOSE (consumes the handle), sync and async
(syncobj signal + SYNCOBJ_TIMELINE_WAIT) MAP and UNMAP with an edge check,
GPU reads / writes (the reference PA where it maps, a fault where not), and
VM_GET_STATE of a live or a destroyed id. After every rule no new finding
is recorded; the invariant is VM_GET_STATE (0, USABLE) for every live VM and
-EINVAL for every destroyed id. ``teardown`` reads every page of every live
VM, stops the body, joins the thread and asserts the run (files closed,
device torn down, leak oracles) recorded no failure.

The reference is the kernel's documented behaviour, not the seed's: the
whole run (``__init__`` to ``teardown``) installs the later fixes
"unmap-vma-prealloc-one-short" (the seed oopses on an UNMAP, or MAP,
strictly inside one mapping: a remap with prev and next) and
"irq-mask-not-restored-on-reenable" (the seed never handles a second fault
on one AS, so the second unmapped read would stall the AS).
``test_bridge_reports_model_exceptions`` leaves the first out on purpose and
checks that the seed's oops reaches the rule (a run stopped under an op, a
``RunStopped`` BaseException Hypothesis would not shrink, is re-raised as
:class:`ModelRunStopped` carrying the recorded findings).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from panthor_testbed.fuzz.bugs import installed
from panthor_testbed.sched import Kernel

from .driver_fixture import failures_text
from .drv_fixture import VA, Ctx, P, run_files
from .test_ioctl_state_machine import (
    BO_PAGES,
    FIXES,
    VA_PAGES,
    Op,
    Ref,
    check_va,
    step,
)
from .test_ioctl_state_machine import invariant as ref_invariant

Call = Callable[[Ctx], Awaitable[Any]]
_STOP = object()


class ModelThreadDied(AssertionError):
    """The device run ended while a rule waited for its op."""


class ModelRunStopped(AssertionError):
    """The run stopped under the op (a fatal finding, e.g. an oops in a worker thread)."""


class Stats:
    rules = 0
    runs = 0


def _index(keys: Any, key: int) -> int:
    """The index :func:`pick` resolves to ``key``."""
    return sorted(keys).index(key)


class IoctlMachine(RuleBasedStateMachine):
    vms = Bundle("vms")
    bos = Bundle("bos")
    fixes: list[str] = FIXES

    def __init__(self) -> None:
        super().__init__()
        self.ref = Ref()
        self.req: queue.Queue[Any] = queue.Queue()
        self.rep: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.kernel: Kernel | None = None
        self.errored = False  # an op raised: the run is already broken
        self.crash: BaseException | None = None  # run_files raised
        self.stack = ExitStack()
        self.stack.enter_context(installed(patch=self.fixes))
        self.thread = threading.Thread(target=self._main, name="panthor-model", daemon=True)
        self.thread.start()
        Stats.runs += 1

    # The model side (the background thread).

    def _main(self) -> None:
        try:
            self.kernel = run_files(self._body)
        except BaseException as exc:
            self.crash = exc
        finally:
            self.rep.put(("dead", self.crash))

    async def _body(self, cs: list[Ctx]) -> None:
        c = cs[0]
        while True:
            call = self.req.get()  # blocks the model: no virtual time passes
            if call is _STOP:
                return
            try:
                res = await call(c)
            except BaseException as exc:
                self.rep.put(("err", (exc, list(c.k.failures))))
                raise
            self.rep.put(("ok", (res, list(c.k.failures))))

    # The Hypothesis side.

    def send(self, call: Call) -> Any:
        """Run ``call`` in the model, return its result, or re-raise its exception."""
        assert not self.errored
        self.req.put(call)
        tag, val = self.rep.get()
        if tag == "ok":
            res, new = val
            if new:  # a finding (WARN, lockdep, ...) that did not stop the run
                self.errored = True
                raise AssertionError(failures_text(new))
            return res
        self.errored = True
        if tag == "err":
            exc, new = val
            if isinstance(exc, Exception):
                raise exc
            # RunStopped (a BaseException): Hypothesis would not shrink it; report the findings.
            raise ModelRunStopped(failures_text(new) or repr(exc)) from exc
        raise ModelThreadDied(f"the device run ended: {val!r}")

    def run_op(self, op: Op) -> None:
        Stats.rules += 1

        async def call(c: Ctx) -> None:
            await step(c, self.ref, op)

        self.send(call)

    def _new_key(self, before: set[int], after: Any) -> Any:
        new = sorted(set(after) - before)
        if not new:
            return multiple()
        assert len(new) == 1, new
        return new[0]

    @initialize(target=vms)
    def init_vm(self) -> Any:
        return self.vm_create()

    @initialize(target=bos)
    def init_bo(self) -> Any:
        return self.bo_create(BO_PAGES)

    @rule(target=vms)
    def vm_create(self) -> Any:
        before = set(self.ref.vms)
        self.run_op(("vm_create",))
        return self._new_key(before, self.ref.vms)

    @rule(vm=consumes(vms))
    def vm_destroy(self, vm: int) -> None:
        self.run_op(("vm_destroy", _index(self.ref.vms, vm)))
        assert vm not in self.ref.vms and vm in self.ref.dead

    @rule(target=bos, pages=st.integers(1, BO_PAGES))
    def bo_create(self, pages: int) -> Any:
        before = set(self.ref.bos)
        self.run_op(("bo_create", pages))
        return self._new_key(before, self.ref.bos)

    @rule(bo=consumes(bos))
    def gem_close(self, bo: int) -> None:
        self.run_op(("gem_close", _index(self.ref.bos, bo)))
        assert bo not in self.ref.bos

    @rule(
        vm=vms,
        bo=bos,
        bo_page=st.integers(0, BO_PAGES - 1),
        va_page=st.integers(0, VA_PAGES - 1),
        n=st.integers(1, BO_PAGES),
        readonly=st.booleans(),
        is_async=st.booleans(),
    )
    def map(
        self, vm: int, bo: int, bo_page: int, va_page: int, n: int, readonly: bool, is_async: bool
    ) -> None:
        vi, bi = _index(self.ref.vms, vm), _index(self.ref.bos, bo)
        self.run_op(("map", vi, bi, bo_page, va_page, n, readonly, is_async))

    @rule(vm=vms, bo=bos, va_page=st.integers(0, VA_PAGES - 1), is_async=st.booleans())
    def map_whole(self, vm: int, bo: int, va_page: int, is_async: bool) -> None:
        vi, bi = _index(self.ref.vms, vm), _index(self.ref.bos, bo)
        self.run_op(("map", vi, bi, 0, va_page, BO_PAGES, False, is_async))

    @rule(
        vm=vms,
        va_page=st.integers(0, VA_PAGES - 1),
        n=st.integers(1, 16),
        is_async=st.booleans(),
    )
    def unmap(self, vm: int, va_page: int, n: int, is_async: bool) -> None:
        self.run_op(("unmap", _index(self.ref.vms, vm), va_page, n, is_async))

    @rule(vm=vms, page=st.integers(-2, VA_PAGES + 1), off=st.integers(0, P - 8))
    def read(self, vm: int, page: int, off: int) -> None:
        self.run_op(("read", _index(self.ref.vms, vm), page, off))

    @rule(vm=vms, page=st.integers(-2, VA_PAGES + 1))
    def write(self, vm: int, page: int) -> None:
        self.run_op(("write", _index(self.ref.vms, vm), page))

    @rule(vm=vms)
    def state_live(self, vm: int) -> None:
        self.run_op(("state", _index(self.ref.vms, vm), False))

    @precondition(lambda self: bool(self.ref.dead))
    @rule(i=st.integers(0, 63))
    def state_dead(self, i: int) -> None:
        self.run_op(("state", i, True))

    @invariant()
    def vms_usable(self) -> None:
        async def call(c: Ctx) -> None:
            await ref_invariant(c, self.ref)

        self.send(call)

    def teardown(self) -> None:
        try:
            if not self.errored and self.crash is None:

                async def every_page(c: Ctx) -> None:
                    for vm in sorted(self.ref.vms):
                        for p in range(VA_PAGES):
                            await check_va(c, self.ref, vm, VA + p * P)

                self.send(every_page)
            if self.thread.is_alive():
                self.req.put(_STOP)
            self.thread.join()
        finally:
            self.stack.close()
        if self.errored:
            return  # the rule's exception is the report
        if self.crash is not None:
            raise self.crash
        k = self.kernel
        assert k is not None
        assert k.failures == [], failures_text(k.failures)


def _run(n_examples: int, steps: int) -> None:
    run_state_machine_as_test(
        IoctlMachine,
        settings=settings(
            max_examples=n_examples,
            stateful_step_count=steps,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


def test_ioctl_rule_machine_fast() -> None:
    """20 machines of up to 30 steps."""
    Stats.rules = Stats.runs = 0
    _run(20, 30)
    assert Stats.runs >= 20
    assert Stats.rules >= 20 * 3


@pytest.mark.slow
def test_ioctl_rule_machine_slow() -> None:
    """200 machines of up to 30 steps."""
    Stats.rules = Stats.runs = 0
    _run(200, 30)
    print(f"{Stats.runs} runs, {Stats.rules} rules")
    assert Stats.runs >= 200


class SeedUnmapMachine(IoctlMachine):
    """The seed's UNMAP path: "unmap-vma-prealloc-one-short" not installed."""

    fixes = ["irq-mask-not-restored-on-reenable"]  # noqa: RUF012


@pytest.mark.parametrize("is_async", [False, True])
def test_bridge_reports_model_exceptions(is_async: bool) -> None:
    """An exception in the model thread reaches the rule that sent the op.

    Driven by hand on the seed finding unmap-vma-prealloc-one-short (an UNMAP
    strictly inside one mapping: NULL deref in panthor_vma_init). Sync, the
    oops is raised by the ioctl itself; async, it kills the VM_BIND worker, the
    run stops under SYNCOBJ_TIMELINE_WAIT and the rule gets the finding.
    """
    m = SeedUnmapMachine()
    try:
        vm, bo = m.init_vm(), m.init_bo()
        m.map_whole(vm=vm, bo=bo, va_page=0, is_async=False)
        m.vms_usable()
        want: type[BaseException] = ModelRunStopped if is_async else AttributeError
        with pytest.raises(want, match="node" if not is_async else "panthor_vma_init"):
            m.unmap(vm=vm, va_page=2, n=1, is_async=is_async)
        assert m.errored
    finally:
        m.teardown()  # joins the model thread and uninstalls the fixes
    assert not m.thread.is_alive()
