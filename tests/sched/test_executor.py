"""The controlled executor: threads, yield points, blocking, time, end of run."""

from __future__ import annotations

import pytest
import trio

from panthor_testbed.sched import (
    Completion,
    Kernel,
    KernelConfig,
    Mutex,
    RandomWalk,
    RoundRobin,
    WaitQueue,
    complete,
    current,
    msleep,
    mutex_lock,
    preempt,
    read_poll_timeout,
    udelay,
    wait_for_completion,
    wait_for_completion_timeout,
)
from panthor_testbed.sched.core.harness import arun, run
from panthor_testbed.sched.errno import ETIMEDOUT


def test_threads_run_and_join() -> None:
    order: list[str] = []

    async def scenario(k: Kernel) -> None:
        async def worker(tag: str) -> None:
            order.append(tag)
            await preempt()
            order.append(tag.upper())

        a = k.spawn(worker, "a", name="a")
        b = k.spawn(worker, "b", name="b")
        await a.join()
        await b.join()
        order.append("joined")

    k = run(scenario)
    assert k.failures == []
    # canonical schedule: init runs until it blocks in join, then the lowest runnable
    assert order == ["a", "A", "b", "B", "joined"]
    assert [t.name for t in k.threads] == ["init", "a", "b"]


def test_only_one_simulated_thread_runs_between_yield_points() -> None:
    running = [0]
    overlaps = [0]

    async def scenario(k: Kernel) -> None:
        async def worker() -> None:
            for _ in range(20):
                running[0] += 1
                if running[0] > 1:
                    overlaps[0] += 1
                running[0] -= 1
                await preempt()

        for i in range(4):
            k.spawn(worker, name=f"w{i}")

    for seed in range(10):
        k = run(scenario, strategy=RandomWalk(seed))
        assert k.failures == []
    assert overlaps[0] == 0


def test_round_robin_switches_at_every_yield_point() -> None:
    seen: list[str] = []

    async def scenario(k: Kernel) -> None:
        async def worker(tag: str) -> None:
            for _ in range(3):
                seen.append(tag)
                await preempt()

        k.spawn(worker, "a", name="a")
        k.spawn(worker, "b", name="b")

    run(scenario, strategy=RoundRobin())
    assert seen == ["a", "b", "a", "b", "a", "b"]


def test_deadlock_report_names_threads_locks_and_holders() -> None:
    async def scenario(k: Kernel) -> None:
        a, b = Mutex("A"), Mutex("B")

        async def t1() -> None:
            await mutex_lock(a)
            await preempt()
            await mutex_lock(b)

        async def t2() -> None:
            await mutex_lock(b)
            await preempt()
            await mutex_lock(a)

        k.spawn(t1, name="first")
        k.spawn(t2, name="second")

    # Round robin makes both take their first lock before either takes the second.
    k = run(scenario, strategy=RoundRobin(), config=KernelConfig(lockdep=False))
    f = k.primary_failure
    assert f is not None and f.kind == "deadlock"
    assert "T1 first waits for mutex B held by T2 second" in f.message
    assert "T2 second waits for mutex A held by T1 first" in f.message
    assert "test_executor.py" in f.report  # where each thread is blocked
    assert f.signature == "deadlock:mutex A|mutex B"


def test_waitqueue_wake_and_lost_wakeup_is_a_deadlock() -> None:
    async def scenario(k: Kernel, wake: bool) -> None:
        wq = WaitQueue("event", describe=lambda: "event (nobody will set it)")

        async def waiter() -> None:
            await wq.wait()

        k.spawn(waiter, name="waiter")
        await preempt()
        await preempt()
        if wake:
            wq.wake_all()

    assert run(scenario, True, strategy=RoundRobin()).failures == []
    k = run(scenario, False, strategy=RoundRobin())
    f = k.primary_failure
    assert f is not None and f.kind == "deadlock"
    assert "T1 waiter waits for event (nobody will set it)" in f.message


def test_virtual_time_advances_only_when_nothing_can_run() -> None:
    stamps: list[tuple[str, int]] = []

    async def scenario(k: Kernel) -> None:
        async def sleeper() -> None:
            await msleep(100)
            stamps.append(("sleeper", k.now))

        async def busy() -> None:
            for _ in range(5):
                await preempt()
            stamps.append(("busy", k.now))

        k.spawn(sleeper, name="sleeper")
        k.spawn(busy, name="busy")

    k = run(scenario)
    assert stamps == [("busy", 0), ("sleeper", 100_000_000)]
    assert k.now == 100_000_000


def test_completion_timeout_and_read_poll_timeout_use_virtual_time() -> None:
    results: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        done = Completion("never")
        results["left"] = await wait_for_completion_timeout(done, 5_000_000)
        results["t_after_wait"] = k.now
        reg = [0]

        async def read() -> int:
            await preempt()
            return reg[0]

        results["poll"] = await read_poll_timeout(read, lambda v: v == 1, 10, 100_000, atomic=True)
        results["t_after_poll"] = k.now

    k = run(scenario)
    assert k.failures == []
    assert results["left"] == 0
    assert results["t_after_wait"] == 5_000_000
    assert results["poll"] == (-ETIMEDOUT, 0)
    # 100 ms of 10 us polls, plus the final read
    # polls every 10 us until the clock is past 5 ms + 100 ms (ktime_compare > 0)
    assert results["t_after_poll"] == 105_010_000


def test_completion_wakes_waiter() -> None:
    async def scenario(k: Kernel) -> None:
        c = Completion("ready")

        async def signaller() -> None:
            await udelay(3)
            await complete(c)

        k.spawn(signaller, name="signaller")
        await wait_for_completion(c)
        assert k.now == 3_000

    assert run(scenario).failures == []


def test_exception_escaping_a_thread_is_a_failure_naming_the_thread() -> None:
    async def scenario(k: Kernel) -> None:
        async def broken() -> None:
            await preempt()
            raise ValueError("boom")

        async def bystander() -> None:
            for _ in range(10):
                await preempt()

        k.spawn(broken, name="broken")
        k.spawn(bystander, name="bystander")

    k = run(scenario, strategy=RoundRobin())
    f = k.primary_failure
    assert f is not None and f.kind == "exception"
    assert f.thread == "T1 broken"
    assert "ValueError: boom" in f.message and "test_executor.py" in f.message
    assert all(t.state.name == "DONE" for t in k.threads)  # everyone was unwound


def test_awaiting_a_raw_trio_primitive_is_reported_not_a_hang() -> None:
    async def scenario(k: Kernel) -> None:
        async def rogue() -> None:
            await preempt()
            await trio.sleep(3600)

        k.spawn(rogue, name="rogue")

    async def guarded() -> Kernel:
        with trio.fail_after(5):  # real seconds: the guard must fire long before
            return await arun(scenario)

    k = trio.run(guarded)
    f = k.primary_failure
    assert f is not None and f.kind == "uncontrolled"
    assert "T1 rogue awaited trio.sleep" in f.message
    assert "test_executor.py" in f.message


async def test_awaiting_a_trio_event_is_reported_and_the_next_run_is_fine() -> None:
    event = trio.Event()

    async def scenario(k: Kernel) -> None:
        async def rogue() -> None:
            await event.wait()

        k.spawn(rogue, name="rogue")

    k = await arun(scenario)
    f = k.primary_failure
    assert f is not None and f.kind == "uncontrolled"
    assert "trio.Event.wait" in f.message
    assert all(t.state.name == "DONE" for t in k.threads)
    k2 = await arun(_quiet)
    assert k2.failures == []


async def _quiet(k: Kernel) -> None:
    async def fine() -> None:
        await preempt()

    k.spawn(fine, name="fine")


def test_step_limit_turns_a_livelock_into_a_failure() -> None:
    async def scenario(k: Kernel) -> None:
        flag = [False]

        async def spinner() -> None:
            while not flag[0]:
                await preempt()

        k.spawn(spinner, name="spinner")

    k = run(scenario, config=KernelConfig(max_steps=500))
    f = k.primary_failure
    assert f is not None and f.kind == "livelock"
    assert "500 steps" in f.message and "T1 spinner" in f.message


def test_daemon_threads_may_stay_blocked_at_the_end() -> None:
    async def scenario(k: Kernel) -> None:
        wq = WaitQueue("work")

        async def worker() -> None:
            while True:
                await wq.wait()

        k.spawn(worker, name="kworker", daemon=True)
        await preempt()

    k = run(scenario)
    assert k.failures == []
    assert k.finished


def test_a_fatal_failure_unwinds_every_thread() -> None:
    cleaned: list[str] = []

    async def scenario(k: Kernel) -> None:
        lock = Mutex("L")

        async def holder() -> None:
            await mutex_lock(lock)
            try:
                await msleep(10)
            finally:
                cleaned.append("holder")

        async def crasher() -> None:
            await preempt()
            raise RuntimeError("crash")

        k.spawn(holder, name="holder")
        k.spawn(crasher, name="crasher")

    k = run(scenario)
    assert k.primary_failure is not None and k.primary_failure.kind == "exception"
    assert cleaned == ["holder"]


def test_current_names_the_running_thread() -> None:
    names: list[str] = []

    async def scenario(k: Kernel) -> None:
        async def worker() -> None:
            names.append(current().name)

        k.spawn(worker, name="w")
        names.append(current().name)

    run(scenario)
    assert names == ["init", "w"]


async def test_kernel_runs_only_once_and_one_run_at_a_time() -> None:
    async def scenario(k: Kernel) -> None:
        await preempt()

    k = await arun(scenario)
    with pytest.raises(Exception, match="runs once"):
        await k.run(scenario)


def test_a_run_never_leaves_the_calling_trio_task() -> None:
    """Threads are coroutines the run drives itself: no Trio task, no Trio scheduling."""

    class Steps(trio.abc.Instrument):
        def __init__(self) -> None:
            self.tasks: set[str] = set()
            self.steps = 0

        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            self.steps += 1
            self.tasks.add(task.name)

    steps = Steps()

    async def main() -> None:
        trio.lowlevel.add_instrument(steps)
        before = steps.steps
        for seed in range(30):
            k = Kernel(RandomWalk(seed))
            await k.run(_quiet)
            assert k.failures == []
        assert steps.steps == before  # 30 runs, 60 threads: not one Trio task step

    trio.run(main)
