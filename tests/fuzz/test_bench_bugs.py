"""The bugs bench: NaiveStress is seeded and FIFO; the bench returns two figures per entry.

No test here asserts a time.
"""

from __future__ import annotations

import pytest
import trio

from panthor_testbed.fuzz import bench_bugs
from panthor_testbed.fuzz.bench import BenchOptions
from panthor_testbed.fuzz.runner import RunSpec, execute
from panthor_testbed.fuzz.scenario import builtin_scenarios
from panthor_testbed.sched import Kernel, preempt
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.core.naive import NaiveStress
from panthor_testbed.sched.core.thread import IRQ_TID, SimThread


def _threads(n: int) -> list[SimThread]:
    return [SimThread(tid, f"t{tid}", None, (), False) for tid in range(n)]


def _kernel() -> Kernel:
    return Kernel(NaiveStress(0))


async def _three_loops(k: Kernel) -> None:
    async def body() -> None:
        for _ in range(20):
            await preempt()

    for i in range(3):
        k.spawn(body, name=f"w{i}")


def test_naive_stress_is_deterministic_by_seed() -> None:
    a = run(_three_loops, strategy=NaiveStress(7, checkpoint_p=0.3))
    b = run(_three_loops, strategy=NaiveStress(7, checkpoint_p=0.3))
    assert a.choices == b.choices and a.trace.digest() == b.trace.digest()
    seen = {
        tuple(run(_three_loops, strategy=NaiveStress(s, checkpoint_p=0.3)).choices)
        for s in range(10)
    }
    assert len(seen) > 3


def test_naive_stress_is_deterministic_on_a_driver_scenario() -> None:
    spec = RunSpec.make(builtin_scenarios()["bind-storm"], {}, patch=("all",))

    async def go(seed: int) -> Kernel:
        return await execute(spec, NaiveStress(seed), None)

    try:
        a, b = trio.run(go, 3), trio.run(go, 3)
    finally:
        bench_bugs.uninstall()
    assert a.choices == b.choices
    assert a.trace.digest() == b.trace.digest()


def test_data_choices_are_uniform_and_seeded() -> None:
    k = _kernel()
    one, two = NaiveStress(5), NaiveStress(5)
    xs = [one.choose(k, 4, 0.0) for _ in range(400)]
    assert xs == [two.choose(k, 4, 0.0) for _ in range(400)]
    # p_nonzero is ignored: a stress test's inputs are uniformly random
    assert all(xs.count(v) > 50 for v in range(4))


def test_pick_keeps_the_running_thread_without_a_checkpoint() -> None:
    k, s = _kernel(), NaiveStress(1, checkpoint_p=0.0)
    t = _threads(3)
    assert all(s.pick(k, t[1], t) is t[1] for _ in range(50))
    # blocked (no current): the oldest queued runs, i.e. the first to join the queue
    assert s.pick(k, None, [t[0], t[2]]) is t[0]


def test_pick_is_fifo_at_checkpoints() -> None:
    k, s = _kernel(), NaiveStress(1, checkpoint_p=1.0, delay_p=0.0)
    t = _threads(3)
    # T0 runs, T1 and T2 join the queue in tid order; each checkpoint sends the
    # running thread to the back and runs the oldest queued one
    order = []
    cur = t[0]
    for _ in range(6):
        cur = s.pick(k, cur, t)
        order.append(cur.tid)
    assert order == [1, 2, 0, 1, 2, 0]
    # a newly runnable thread joins at the back, behind the preempted one
    t4 = [*t, SimThread(3, "t3", None, (), False)]
    assert s.pick(k, cur, t4).tid == 1  # queue was [1, 2]; 3 joined, then 0
    assert s.pick(k, None, [t4[0], t4[2], t4[3]]).tid == 2  # T1 blocked
    assert s.queue == [3, 0]


def test_blocked_thread_rejoins_at_the_back() -> None:
    k, s = _kernel(), NaiveStress(1, checkpoint_p=0.0)
    t = _threads(3)
    assert s.pick(k, None, t) is t[0]  # queue [1, 2]
    assert s.pick(k, None, [t[1], t[2]]) is t[1]  # T0 blocked
    # T0 woke while T1 ran: it queues behind T2
    assert s.pick(k, None, [t[0], t[2]]) is t[2]
    assert s.pick(k, None, [t[0]]) is t[0]


def test_a_delayed_thread_sits_out_a_few_decisions() -> None:
    k, s = _kernel(), NaiveStress(1, checkpoint_p=1.0, delay_p=1.0, delay_picks=(3, 3))
    t = _threads(3)
    assert s.pick(k, t[0], t) is t[1]  # T0 delayed for 3 decisions, queue [2, 0]
    assert s.pick(k, t[1], t) is t[2]  # T1 delayed too; T0 still sitting out
    # T0's delay is over (3 decisions); T1 is still sitting out
    assert s.pick(k, t[2], t) is t[0]
    # nothing else eligible: the oldest delayed one runs rather than nothing
    s2 = NaiveStress(1, checkpoint_p=1.0, delay_p=1.0, delay_picks=(5, 5))
    assert s2.pick(k, t[0], t[:2]) is t[1]
    assert s2.pick(k, t[1], t[:2]) is t[0]


def test_interrupt_option_is_never_a_queued_thread() -> None:
    k, s = _kernel(), NaiveStress(2, checkpoint_p=1.0, delay_p=0.0)
    t = _threads(2)
    opts = [*t, k.irq_option]
    for _ in range(20):
        nxt = s.pick(k, t[0], opts)  # no timer pending: the interrupt never fires
        assert nxt.tid != IRQ_TID
    assert IRQ_TID not in s.queue


def test_measure_stops_once_the_median_is_the_cap() -> None:
    calls: list[int] = []

    def never(
        scenario: str, inject: list[str], patch: list[str], seed: int, cap: float
    ) -> tuple[float, dict[str, str] | None, int]:
        calls.append(seed)
        return cap + 0.1, None, 3

    m = bench_bugs.measure(never, "x", [], [], 10, 2.0, lambda f: True)
    assert calls == [1, 2, 3, 4, 5, 6] and m.median == 2.0 and m.skipped == 4
    assert m.found == 0 and m.runs == 18

    def odd(
        scenario: str, inject: list[str], patch: list[str], seed: int, cap: float
    ) -> tuple[float, dict[str, str] | None, int]:
        return (0.5, {"kind": "warn", "message": "it"}, 1) if seed % 2 else (cap, None, 1)

    m = bench_bugs.measure(odd, "x", [], [], 4, 2.0, lambda f: True)
    assert m.times == [0.5, 2.0, 0.5, 2.0] and m.median == 1.25 and m.found == 2


def test_a_seed_stopped_by_another_failure_counts_as_the_cap() -> None:
    def first(
        scenario: str, inject: list[str], patch: list[str], seed: int, cap: float
    ) -> tuple[float, dict[str, str] | None, int]:
        message = "the bug" if seed == 1 else "something else"
        return 0.5, {"kind": "warn", "message": message}, 1

    m = bench_bugs.measure(first, "x", [], [], 3, 2.0, lambda f: f["message"] == "the bug")
    assert m.times == [0.5, 2.0, 2.0] and m.found == 1 and m.other == 2
    assert m.median == 2.0 and m.kinds == ["warn"]
    assert "2 stopped at another failure first: warn" in m.describe()


def test_bench_quick_returns_two_figures_per_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = next(e for e in bench_bugs._catalogue() if e[0] == "obtain-prealloc-without-resv")
    monkeypatch.setattr(bench_bugs, "_catalogue", lambda: [entry])
    monkeypatch.setattr(bench_bugs, "QUICK_CAP_S", 0.5)
    monkeypatch.setattr(bench_bugs, "QUICK_SEEDS", 2)
    monkeypatch.setattr(bench_bugs, "JOBS", 1)
    figures = bench_bugs.bench_bugs(BenchOptions(quick=True))
    slug = entry[0]
    assert [f.name for f in figures] == [f"naive-stress-{slug}", f"time-to-bug-{slug}"]
    naive, ttb = figures
    assert ttb.baseline == naive.name and ttb.baseline_value == naive.value
    assert ttb.unit == naive.unit == "s"
    assert "median of 2 seeds" in ttb.note and "not real Trio tasks" in ttb.note
    js = ttb.to_json()
    assert set(js) >= {"name", "value", "baseline", "baseline_value", "ratio", "note"}
