"""The suspend-resume scenario really suspends and resumes the device mid-run,
and with every known fix it runs clean."""

from __future__ import annotations

import trio

from panthor_testbed.fuzz.runner import RunSpec, execute
from panthor_testbed.fuzz.scenario import builtin_scenarios
from panthor_testbed.sched import Kernel, RandomWalk


def test_runs_suspend_and_resume_the_device_between_binds_and_jobs() -> None:
    spec = RunSpec.make(builtin_scenarios()["suspend-resume"], {}, patch=("all",))
    cycles = 0
    for seed in range(8):

        async def one(seed: int = seed) -> Kernel:
            return await execute(spec, RandomWalk(seed), None)

        k = trio.run(one)
        assert k.primary_failure is None, k.primary_failure.message
        rpm = [e[5] for e in k.trace.events if e[3] == "rpm"]
        # the probe's own resume, then suspend/resume cycles while the actors run
        if "suspend -> 0" in rpm and rpm.count("resume -> 0") >= 2:
            cycles += 1
    assert cycles >= 2, cycles
