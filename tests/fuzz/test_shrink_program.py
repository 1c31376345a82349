"""Shrinking reduces the program with the schedule: data choices and size parameters."""

from __future__ import annotations

from typing import Annotated

from panthor_testbed.fuzz import api
from panthor_testbed.fuzz.scenario import Range, from_function
from panthor_testbed.sched import InvariantViolation, Kernel, preempt


async def ops_race(
    k: Kernel, actors: Annotated[int, Range(1)] = 4, ops: Annotated[int, Range(1)] = 6
) -> None:
    """Each actor draws ops; two actors doing op 3 around a yield point race."""
    state = {"busy": 0}

    async def actor(i: int) -> None:
        for _ in range(ops):
            op = k.choose_data(4, 0.5, "op")
            if op == 3:
                state["busy"] += 1
                await preempt()
                if state["busy"] > 1:
                    raise InvariantViolation("two actors in op 3 at once", signature="op3-race")
                state["busy"] -= 1
            await preempt()

    for i in range(actors):
        k.spawn(actor, i, name=f"actor{i}")


def test_shrink_lowers_size_parameters_and_drops_program_choices() -> None:
    sc = from_function(ops_race, name="ops-race")
    result = api.fuzz(sc, runs=500, strategy="random", seed=3)
    found = result.scenarios[0].failures
    assert found, "the race was not found"
    rf = found[0].replay_file
    assert rf is not None
    shrunk = api.shrink(rf, scenario=sc)
    assert shrunk.params_before == {"actors": 4, "ops": 6}
    assert shrunk.shrunk.params == {"actors": 2, "ops": 1}
    # left: both actors pick op 3 (two data choices) and one preemption between them
    kinds = sorted(d.kind for d in shrunk.log if d.deviates)
    assert kinds.count("data") == 2
    again = api.replay(shrunk.shrunk, scenario=sc)
    assert again.reproduced == again.runs
