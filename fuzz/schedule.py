"""Schedules by thread identity: the key that survives changes to the code.

A decision is keyed by the thread that was running when it was made, the
kind of decision, and how many decisions of that kind the thread had made
before: ``("thread-a#0", "yield", 3)``. The kinds are "yield" (at a yield
point, the thread could go on), "block" and "exit" (it cannot: who runs
next) and "data" (a data choice); counting them apart means a fix that adds
or removes a yield point in a thread does not shift that thread's blocking
decisions. A thread's identity is its name and which thread of that name it
is, in spawn order (``worker#0``, ``worker#1``), so it survives tid changes
(a fix that spawns a helper thread earlier shifts every tid after it). What
is picked is named the same way: a thread identity, ``interrupt:<timer
name>`` for the interrupt option (the earliest pending timer fires), or a
value for a data choice.

Both the shrinker (which removes deviations from the canonical schedule) and
replay of a file on changed code (which follows the recording as far as it
fits) use these keys, through the strategies below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from panthor_testbed.sched import IRQ_TID, Kernel, Strategy, ThreadState
from panthor_testbed.sched.core.thread import SimThread

from .replayfile import IRQ_PREFIX, Choice, split_identity, valid_pick

Key = tuple[str, str, int]  # (running thread's identity, kind, its count of that kind so far)
Pick = str | int  # a thread identity / "interrupt:<timer>", or a data value

__all__ = [
    "IRQ_PREFIX",
    "IRQ_TID",
    "Choice",
    "Decision",
    "DecisionRecorder",
    "Divergence",
    "FollowReplay",
    "Identities",
    "KeyedStrategy",
    "deviations",
    "display",
    "split_identity",
    "valid_pick",
]


def display(identity: str) -> str:
    """``thread-a#0`` -> ``thread-a``; later threads of a name keep their ``#n``."""
    return identity[:-2] if identity.endswith("#0") else identity


class Identities:
    """tid -> identity for one run, extended as threads are spawned."""

    __slots__ = ("counts", "ids")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.counts: dict[str, int] = {}

    def of(self, k: Kernel, t: SimThread) -> str:
        tid = t.tid
        threads = k.threads
        if 0 <= tid < len(threads) and threads[tid] is t:
            ids = self.ids
            while len(ids) <= tid:
                name = threads[len(ids)].name
                n = self.counts.get(name, 0)
                self.counts[name] = n + 1
                ids.append(f"{name}#{n}")
            return ids[tid]
        return f"{t.name}#0"  # a pseudo-thread (the timer context)

    def option(self, k: Kernel, t: SimThread) -> str:
        if t.tid == IRQ_TID:
            return IRQ_PREFIX + _next_timer_name(k)
        return self.of(k, t)


def _next_timer_name(k: Kernel) -> str:
    # The interrupt option fires the earliest pending timer: it is named by that timer.
    timer = k.next_timer()
    return timer.name if timer is not None else "?"


class KeyedStrategy(Strategy):
    """A strategy that knows each decision's key and the identity of each option."""

    def __init__(self) -> None:
        self.ids = Identities()
        self.counts: dict[tuple[str, str], int] = {}

    def start_run(self, k: Kernel) -> None:
        self.ids = Identities()
        self.counts = {}

    def running(self, k: Kernel) -> tuple[str, int]:
        """Identity and tid of the thread making this decision (running or just blocked)."""
        cur = k.current
        if cur is None:
            return "none#0", -1
        return self.ids.of(k, cur), cur.tid

    def next_key(self, k: Kernel, kind: str) -> tuple[Key, int]:
        who, tid = self.running(k)
        n = self.counts.get((who, kind), 0)
        self.counts[(who, kind)] = n + 1
        return (who, kind, n), tid

    @staticmethod
    def thread_kind(k: Kernel, cur: SimThread | None) -> str:
        if cur is not None:
            return "yield"
        t = k.current
        return "exit" if t is not None and t.state is ThreadState.DONE else "block"

    def option_ids(self, k: Kernel, runnable: Sequence[SimThread]) -> list[str]:
        return [self.ids.option(k, t) for t in runnable]


# ---------------------------------------------------------------------- recording


@dataclass(frozen=True)
class Decision:
    key: Key
    step: int
    kind: str  # "thread", "irq" (the earliest timer fired) or "data"
    current: int | None  # tid of the running thread if it could go on, else None
    last: int  # tid of the thread that was running (or just blocked/exited)
    options: tuple[int, ...]  # option tids (thread) or the range size (data: (n,))
    chosen: int  # tid (thread) or value (data)
    pick: Pick  # what was chosen, by identity
    what: str = ""  # data: what a non-zero value means; irq: the timer that fired

    @property
    def canonical(self) -> int:
        if self.kind == "data":
            return 0
        return self.current if self.current is not None else min(self.options)

    @property
    def deviates(self) -> bool:
        return self.chosen != self.canonical

    @property
    def preemption(self) -> bool:
        """A switch away from a thread that could go on; an early interrupt counts as
        one, as in the exhaustive search."""
        if self.kind == "irq":
            return True
        return self.kind == "thread" and self.current is not None and self.deviates

    @property
    def choice(self) -> Choice:
        return Choice(*self.key, self.pick)


class DecisionRecorder(KeyedStrategy):
    """Logs every decision with its key; the choices come from ``inner``, or from
    the canonical schedule with ``deviations`` applied where their key comes up."""

    name = "recorder"

    def __init__(self, inner: Strategy | None, deviations: dict[Key, Pick] | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.deviations = deviations or {}
        self.log: list[Decision] = []

    def start_run(self, k: Kernel) -> None:
        super().start_run(k)
        self.log = []
        if self.inner is not None:
            self.inner.start_run(k)

    def end_run(self, k: Kernel) -> None:
        if self.inner is not None:
            self.inner.end_run(k)

    def pick(self, k: Kernel, cur: SimThread | None, runnable: list[SimThread]) -> SimThread:
        key, last = self.next_key(k, self.thread_kind(k, cur))
        ids = self.option_ids(k, runnable)
        if self.inner is not None:
            chosen = self.inner.pick(k, cur, runnable)
        else:
            chosen = cur if cur is not None else runnable[0]
            want = self.deviations.get(key)
            if isinstance(want, str) and want in ids:
                chosen = runnable[ids.index(want)]
        pick = ids[runnable.index(chosen)] if chosen in runnable else self.ids.of(k, chosen)
        irq = chosen.tid == IRQ_TID
        self.log.append(
            Decision(
                key,
                k.steps,
                "irq" if irq else "thread",
                cur.tid if cur is not None else None,
                last,
                tuple(t.tid for t in runnable),
                chosen.tid,
                pick,
                pick[len(IRQ_PREFIX) :] if irq else "",
            )
        )
        return chosen

    def choose(self, k: Kernel, n: int, p_nonzero: float, what: str = "") -> int:
        key, last = self.next_key(k, "data")
        if self.inner is not None:
            v = self.inner.choose(k, n, p_nonzero, what)
        else:
            want = self.deviations.get(key, 0)
            v = want if isinstance(want, int) and 0 <= want < n else 0
        self.log.append(Decision(key, k.steps, "data", None, last, (n,), v, v, what))
        return v

    def choices(self, k: Kernel) -> list[Choice]:
        """The run's choice list by identity (a decision the run did not take is dropped)."""
        return [d.choice for d in self.log[: len(k.choices)]]


def deviations(log: list[Decision]) -> dict[Key, Pick]:
    return {d.key: d.pick for d in log if d.deviates}


# ---------------------------------------------------------------------- following


@dataclass(frozen=True)
class Divergence:
    index: int  # the recorded choice that no longer fits (== recorded length: past the end)
    step: int
    why: str

    def __str__(self) -> str:
        return f"choice #{self.index} (step {self.step}): {self.why}"


class FollowReplay(KeyedStrategy):
    """Follow a recorded schedule by identity.

    While every decision is the next recorded one (same key, and its pick is
    an option here) the replay is exact. At the first that is not, the
    divergence is noted; ``exact`` then stops the run (the caller refuses
    the file), otherwise each later decision takes the recorded pick of the
    same key if there is one and it fits, else the canonical option.
    """

    name = "follow"

    def __init__(self, recorded: Sequence[Choice], *, exact: bool = False) -> None:
        super().__init__()
        self.recorded = list(recorded)
        self.by_key = {c.key: c for c in self.recorded}
        self.exact = exact
        self.pos = 0
        self.followed = 0  # decisions that took a recorded pick
        self.divergence: Divergence | None = None

    def start_run(self, k: Kernel) -> None:
        super().start_run(k)
        self.pos = self.followed = 0
        self.divergence = None

    @property
    def fitted(self) -> bool:
        """The whole recording was followed, in order, and nothing else was decided."""
        return self.divergence is None

    def _diverge(self, k: Kernel, why: str) -> None:
        if self.divergence is None:
            self.divergence = Divergence(self.pos, k.steps, why)
        if self.exact:
            k.stopping = True
            k.tracing = False

    def _expected(self, k: Kernel, key: Key, here: str, fits: str | None) -> Choice | None:
        """The next recorded choice if it is this decision; else note why not."""
        if self.divergence is not None:
            return None
        if self.pos >= len(self.recorded):
            self._diverge(k, f"the recording has ended, but the run still chooses ({here})")
            return None
        c = self.recorded[self.pos]
        if c.key != key:
            self._diverge(
                k,
                f"the recording's next choice is {_at(c.key)}, but here the run is at "
                f"{_at(key)} ({here})",
            )
            return None
        if fits is not None:
            self._diverge(k, fits)
            return None
        self.pos += 1
        self.followed += 1
        return c

    def pick(self, k: Kernel, cur: SimThread | None, runnable: list[SimThread]) -> SimThread:
        key, _ = self.next_key(k, self.thread_kind(k, cur))
        ids = self.option_ids(k, runnable)
        canonical = cur if cur is not None else runnable[0]
        here = "among " + ", ".join(display(i) for i in ids)
        nxt = self.recorded[self.pos] if self.pos < len(self.recorded) else None
        misfit = None
        if nxt is not None and nxt.key == key and nxt.pick not in ids:
            misfit = (
                f"the recording picks {_describe(nxt.pick)} at {_at(key)}, but the "
                f"options here are {', '.join(display(i) for i in ids)}"
            )
        c = self._expected(k, key, here, misfit)
        if c is not None:
            return runnable[ids.index(str(c.pick))]
        if self.exact:
            return canonical
        hit = self.by_key.get(key)
        if hit is not None and isinstance(hit.pick, str) and hit.pick in ids:
            self.followed += 1
            return runnable[ids.index(hit.pick)]
        return canonical

    def choose(self, k: Kernel, n: int, p_nonzero: float, what: str = "") -> int:
        key, _ = self.next_key(k, "data")
        here = f"a data choice of {n} values" + (f": {what}" if what else "")
        nxt = self.recorded[self.pos] if self.pos < len(self.recorded) else None
        misfit = None
        if nxt is not None and nxt.key == key and not _fits_data(nxt.pick, n):
            misfit = (
                f"the recording picks {_describe(nxt.pick)} at {_at(key)}, but the run "
                f"makes {here} there"
            )
        c = self._expected(k, key, here, misfit)
        if c is not None:
            return int(c.pick)
        if self.exact:
            return 0
        hit = self.by_key.get(key)
        if hit is not None and _fits_data(hit.pick, n):
            self.followed += 1
            return int(hit.pick)
        return 0

    def end_run(self, k: Kernel) -> None:
        if self.divergence is None and self.pos < len(self.recorded):
            left = len(self.recorded) - self.pos
            self.divergence = Divergence(
                self.pos,
                k.steps,
                f"the run ended after {self.pos} choice{'s' if self.pos != 1 else ''}; "
                f"{left} recorded choice{'s were' if left != 1 else ' was'} left unused",
            )

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "choices": len(self.recorded), "exact": self.exact}


def _fits_data(pick: Pick, n: int) -> bool:
    return isinstance(pick, int) and not isinstance(pick, bool) and 0 <= pick < n


def _at(key: Key) -> str:
    """("thread-a#0", "yield", 2) -> "thread-a's yield #2"."""
    who, kind, n = key
    return f"{display(who)}'s {kind} #{n}"


def _describe(pick: Pick) -> str:
    if isinstance(pick, int):
        return f"data value {pick}"
    return display(pick)
