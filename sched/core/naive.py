"""The naive-stress baseline: what a stress test under Trio's own scheduling gets.

A naive stress test runs the scenario's threads as Trio tasks, sprinkles
random ``trio.sleep(0)`` checkpoints and random short real-time sleeps into
them, feeds them random inputs, and hopes. :class:`NaiveStress` models the
schedules such a test produces, inside the controlled executor, so that the
bench (``fuzz/bench_bugs.py``) can compare it with the campaign's strategies
on exactly the same scenario, selection and model code.

What it models:

* **Run to the next checkpoint.** Trio never preempts: at a yield point the
  running thread keeps running unless a sprinkled checkpoint fires there
  (probability :data:`CHECKPOINT_P`, about what a random ``trio.sleep(0)``
  per yield point gives).
* **FIFO run queue.** Trio runs the ready tasks in FIFO batches: a thread
  whose checkpoint fires goes to the *back* of the run queue and the oldest
  queued thread runs; when the running thread blocks (or exits) the oldest
  queued thread runs. A thread that becomes runnable joins the back of the
  queue (in tid order when several did between two decisions).
* **Random real-time delays.** A fraction :data:`DELAY_P` of the fired
  checkpoints are a short real ``trio.sleep(d)`` instead: the thread goes to
  the back and is not eligible for the next :data:`DELAY_PICKS` decisions
  (a random number of them), unless nothing else can run.
* **Random inputs.** Every data choice is uniformly random over its range
  (a stress test's random inputs; ``p_nonzero`` is ignored). None of the
  catalogue's scenarios enables allocation fault injection; where a config
  does, its decisions are uniform too.
* **Interrupts** (a pending timer: a hardware completion, a timeout) land as
  they do for :class:`~.strategy.RandomWalk`, with
  :func:`~.strategy.irq_fire_probability` -- the hardware's timing is not
  what a naive test changes.

What it does not model: it does not run real Trio tasks (the model's threads
stay coroutines of one Trio task, driven by the executor; only the order in
which they run is Trio-like), has no real wall-clock time, no Trio
scheduler-batch randomisation (Trio may reverse a batch; this is plain
FIFO), no I/O, and no timing noise from the host. Seeded with
``random.Random(seed)``: the same seed gives the same schedule.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from .strategy import Strategy, irq_fire_probability
from .thread import IRQ_TID

if TYPE_CHECKING:
    from .kernel import Kernel
    from .thread import SimThread

# The chance that a yield point of the running thread is a sprinkled checkpoint.
CHECKPOINT_P = 0.05
# Of the fired checkpoints, the fraction that are a real-time delay.
DELAY_P = 0.2
# A delayed thread sits out this many decisions (inclusive range).
DELAY_PICKS = (2, 20)


class NaiveStress(Strategy):
    """Trio-like FIFO scheduling with random checkpoints and delays (see the module doc)."""

    name = "naive-stress"

    def __init__(
        self,
        seed: int,
        *,
        checkpoint_p: float = CHECKPOINT_P,
        delay_p: float = DELAY_P,
        delay_picks: tuple[int, int] = DELAY_PICKS,
        steps_estimate: int = 100,
    ) -> None:
        self.seed = seed
        self.checkpoint_p = checkpoint_p
        self.delay_p = delay_p
        self.delay_picks = delay_picks
        self.steps_estimate = max(1, steps_estimate)
        self.rng = random.Random(seed)
        self.queue: list[int] = []  # tids, oldest first; never the running thread
        self.delayed: dict[int, int] = {}  # tid -> decisions still to sit out
        self.checkpoints = 0
        self.delays = 0

    def start_run(self, k: Kernel) -> None:
        self.queue.clear()
        self.delayed.clear()

    def _sync(self, cur: SimThread | None, threads: list[SimThread]) -> None:
        """Drop queued threads that cannot run; append the newly runnable ones (tid order)."""
        cur_tid = -1 if cur is None else cur.tid
        live = {t.tid for t in threads}
        queued = [tid for tid in self.queue if tid in live and tid != cur_tid]
        known = set(queued)
        for t in threads:
            if t.tid != cur_tid and t.tid not in known:
                queued.append(t.tid)
        self.queue = queued
        for tid in list(self.delayed):  # insertion order: deterministic
            left = self.delayed[tid] - 1
            if left <= 0 or tid not in live:
                del self.delayed[tid]
            else:
                self.delayed[tid] = left

    def _pop_oldest(self) -> int:
        """The oldest queued thread not sitting out a delay (else the oldest one)."""
        for i, tid in enumerate(self.queue):
            if tid not in self.delayed:
                return self.queue.pop(i)
        return self.queue.pop(0)

    def pick(self, k: Kernel, cur: SimThread | None, runnable: list[SimThread]) -> SimThread:
        irq = runnable[-1] if runnable[-1].tid == IRQ_TID else None
        threads = runnable[:-1] if irq is not None else runnable
        self._sync(cur, threads)
        if irq is not None and self.rng.random() < irq_fire_probability(k, self.steps_estimate):
            return irq
        if cur is not None:
            if not self.queue or self.rng.random() >= self.checkpoint_p:
                return cur
            self.checkpoints += 1
            if self.rng.random() < self.delay_p:
                self.delays += 1
                lo, hi = self.delay_picks
                self.delayed[cur.tid] = self.rng.randint(lo, hi)
            self.queue.append(cur.tid)
        tid = self._pop_oldest()
        for t in threads:
            if t.tid == tid:
                return t
        raise AssertionError(f"naive-stress: T{tid} is queued but not runnable")

    def choose(self, k: Kernel, n: int, p_nonzero: float, what: str = "") -> int:
        return int(self.rng.random() * n)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "checkpoint_p": self.checkpoint_p,
            "delay_p": self.delay_p,
            "delay_picks": list(self.delay_picks),
        }


__all__ = ["CHECKPOINT_P", "DELAY_P", "DELAY_PICKS", "NaiveStress"]
