"""Decision keys and picks by identity, interrupts included."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from panthor_testbed.fuzz.replayfile import Choice
from panthor_testbed.fuzz.schedule import (
    IRQ_TID,
    DecisionRecorder,
    FollowReplay,
    Identities,
    display,
)
from panthor_testbed.sched import Kernel, SimThread


@dataclass
class _Timer:
    name: str


@dataclass
class _FakeKernel:
    """What the keyed strategies read from a Kernel (the executor's option list
    gets ``k.irq_option`` appended when a timer is pending)."""

    threads: list[SimThread]
    current: SimThread | None
    timer: str = "as0-cmd-done"
    steps: int = 0
    stopping: bool = False
    tracing: bool = True
    choices: list[int] = field(default_factory=list)

    def next_timer(self) -> _Timer:
        return _Timer(self.timer)


def _thread(tid: int, name: str) -> SimThread:
    return SimThread(tid, name, None, (), False)


def test_identities_name_the_nth_thread_of_a_name() -> None:
    ts = [_thread(0, "init"), _thread(1, "worker"), _thread(2, "irq"), _thread(3, "worker")]
    k = cast(Kernel, _FakeKernel(ts, ts[0]))
    ids = Identities()
    assert [ids.of(k, t) for t in reversed(ts)] == ["worker#1", "irq#0", "worker#0", "init#0"]
    assert display("worker#0") == "worker" and display("worker#1") == "worker#1"
    irq = _thread(IRQ_TID, "interrupt")
    assert ids.option(k, irq) == "interrupt:as0-cmd-done"


def test_an_interrupt_choice_is_recorded_and_followed_by_its_timer() -> None:
    ts = [_thread(0, "init"), _thread(1, "poller")]
    irq = _thread(IRQ_TID, "interrupt")
    fake = _FakeKernel(ts, ts[1])
    k = cast(Kernel, fake)
    rec = DecisionRecorder(None, {("poller#0", "yield", 0): "interrupt:as0-cmd-done"})
    rec.start_run(k)
    assert rec.pick(k, ts[1], [ts[0], ts[1], irq]) is irq
    assert rec.log[0].preemption  # an interrupt delivery counts as a preemption
    assert rec.log[0].choice == Choice("poller#0", "yield", 0, "interrupt:as0-cmd-done")

    follow = FollowReplay([rec.log[0].choice])
    follow.start_run(k)
    assert follow.pick(k, ts[1], [ts[0], ts[1], irq]) is irq and follow.fitted

    fake.timer = "job-timeout"  # another timer is due first now: no longer the same option
    follow = FollowReplay([rec.log[0].choice])
    follow.start_run(k)
    assert follow.pick(k, ts[1], [ts[0], ts[1], irq]) is ts[1]  # canonical: keep running
    assert follow.divergence is not None and "interrupt:as0-cmd-done" in follow.divergence.why
