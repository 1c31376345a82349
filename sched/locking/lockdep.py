"""Lockdep: lock classes, held-lock stacks and the lock dependency graph.

Modelled on kernel/locking/lockdep.c (v6.14):

* A lock *class* is named by its key (one per init site: every VM's
  ``op_lock`` is one class). An acquisition validates against every thread's
  history, so an inversion is reported the first time the inverse order is
  seen, even if no deadlock happens in this run or it happened in an earlier
  run (the graph outlives runs, as it outlives tasks in the kernel).
* ``__lock_acquire()``: a lock taken with a ``nest_lock`` while a lock of its
  class is on top of the stack is merged into that entry (a reference count;
  nothing is checked), and the merged entry then answers ``lock_is_held()``
  for every lock of the class. A ``nest_lock`` that is not held is reported.
* ``validate_chain()`` skips trylocks: a trylock is pushed but gets no
  recursion check and adds no dependency. Otherwise ``check_deadlock()``
  reports a held lock of the same class (unless this is a recursive read
  after a read, or the nest_lock is held below it, which also adds no
  dependency), and ``check_prevs_add()`` adds an edge from every trylock on
  top of the stack and from the first non-trylock under them, after
  ``check_noncircular()``: a breadth-first search for a *strong* path back
  (no ``-(*R)-> -(S*)->`` step; each class visited once, as the kernel does).
  Redundant edges are added (``check_redundant()`` is LOCKDEP_SMALL-only).
* Two things go beyond the kernel: it does not switch itself off after the
  first report (each distinct inversion is reported once), and a report
  carries the edges it relied on from earlier runs, so a replay can seed them.

Also here: ``lockdep_assert_held`` and its variants (lockdep's view of the
running thread, silent when lockdep is off), ``might_sleep``, ``might_alloc``
with ``fs_reclaim_acquire()`` (the ``fs_reclaim`` pseudo-lock for __GFP_FS,
the mmu_notifier map for any direct reclaim, after ``current_gfp_context()``
and PF_MEMALLOC), the ``dma_fence_map`` signalling annotations, and the
boot-time priming of ``dma_resv_lockdep()``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..core.failure import Failure
from ..core.frames import Site, fast_site, format_site
from ..core.kernel import current_kernel
from ..core.thread import SimThread
from ..mm.gfp import __GFP_DIRECT_RECLAIM, __GFP_FS, __GFP_NOLOCKDEP
from ..mm.sched_mm import PF_MEMALLOC, current_flags, current_gfp_context

if TYPE_CHECKING:
    from ..core.kernel import Kernel

# Class keys shared with the kernel objects that prime or use them.
RESV_ACQUIRE_KEY: Final = "reservation_ww_class_acquire"
RESV_MUTEX_KEY: Final = "reservation_ww_class_mutex"
FS_RECLAIM_KEY: Final = "fs_reclaim"
DMA_FENCE_MAP_KEY: Final = "dma_fence_map"
MMAP_LOCK_KEY: Final = "&mm->mmap_lock"
I_MMAP_KEY: Final = "&mapping->i_mmap_rwsem"
MMU_NOTIFIER_KEY: Final = "mmu_notifier_invalidate_range_start"


class LockClass:
    __slots__ = ("after", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self.after: dict[LockClass, Edge] = {}

    def __repr__(self) -> str:
        return f"<LockClass {self.key}>"


@dataclass(frozen=True)
class EdgeOrigin:
    """Who first created a dependency, for the report's chain."""

    thread: str
    run_id: int
    step: int
    prev_site: str
    next_site: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Edge:
    # types: bit (prev_is_reader << 1) | next_is_recursive_reader
    __slots__ = ("next", "origin", "prev", "types")

    def __init__(self, prev: LockClass, nxt: LockClass, types: int, origin: EdgeOrigin) -> None:
        self.prev = prev
        self.next = nxt
        self.types = types
        self.origin = origin

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.prev.key,
            "to": self.next.key,
            "types": self.types,
            "origin": self.origin.to_json(),
        }


class LockdepMap:
    """``struct lockdep_map``: what every lock (or pseudo-lock) embeds."""

    __slots__ = ("_cls", "_gen", "key", "name")

    def __init__(self, name: str, key: str | None = None) -> None:
        self.name = name
        self.key = key or name
        self._cls: LockClass | None = None
        self._gen = -1

    def __repr__(self) -> str:
        return f"<LockdepMap {self.name} ({self.key})>"


class HeldLock:
    """``struct held_lock``.

    ``references`` counts the acquisitions merged into this entry: a lock
    taken with a ``nest_lock`` while a lock of its class is on top of the
    stack does not get an entry of its own (``__lock_acquire()``), and the
    entry then matches every lock of its class (``match_held_lock()``).
    """

    __slots__ = ("cls", "map", "nest", "read", "references", "site", "step", "trylock")

    def __init__(
        self,
        m: LockdepMap,
        cls: LockClass,
        read: int,
        trylock: bool,
        nest: LockdepMap | None,
        site: Site,
        step: int,
    ) -> None:
        self.map = m
        self.cls = cls
        self.read = read
        self.trylock = trylock
        self.nest = nest
        self.site = site
        self.step = step
        self.references = 0


# Edge.types bits are (prev_is_reader << 1) | next_is_recursive_reader:
# -(S*)-> are bits 2 and 3, -(*N)-> bits 0 and 2 (lockdep's DEP_* masks).
_DEP_S_MASK: Final = 0b1100
_DEP_N_MASK: Final = 0b0101

_BOOT_THREAD_LABEL = "swapper/0 (boot)"
_generation = 0


class Lockdep:
    """The dependency graph (process-wide by default) and its checks."""

    def __init__(self, *, prime: bool = True) -> None:
        global _generation
        _generation += 1
        self.gen = _generation
        self.classes: dict[str, LockClass] = {}
        self.reported: set[tuple[str, str]] = set()
        self.reports = 0
        if prime:
            self._copy_edges(_primed())

    def _copy_edges(self, other: Lockdep) -> None:
        """Start from ``other``'s classes and dependencies (priming is done once)."""
        for key in other.classes:
            self.class_named(key)
        for cls in other.classes.values():
            mine = self.classes[cls.key]
            for nxt, e in cls.after.items():
                dst = self.classes[nxt.key]
                mine.after[dst] = Edge(mine, dst, e.types, e.origin)

    # ------------------------------------------------------------------ classes

    def cls_of(self, m: LockdepMap) -> LockClass:
        if m._gen == self.gen and m._cls is not None:
            return m._cls
        cls = self.classes.get(m.key)
        if cls is None:
            cls = self.classes[m.key] = LockClass(m.key)
        m._cls = cls
        m._gen = self.gen
        return cls

    def class_named(self, key: str) -> LockClass:
        cls = self.classes.get(key)
        if cls is None:
            cls = self.classes[key] = LockClass(key)
        return cls

    def edge_count(self) -> int:
        return sum(len(c.after) for c in self.classes.values())

    def has_edge(self, prev: str, nxt: str) -> bool:
        p = self.classes.get(prev)
        n = self.classes.get(nxt)
        return p is not None and n is not None and n in p.after

    # ------------------------------------------------------------------ acquire/release

    def acquire(
        self,
        k: Kernel | None,
        t: SimThread,
        m: LockdepMap,
        *,
        read: int = 0,
        trylock: bool = False,
        nest_lock: LockdepMap | None = None,
        subclass: int = 0,
        site: Site = None,
    ) -> None:
        """``lock_acquire()`` -> ``__lock_acquire()``: validate, then push on ``t``'s held stack.

        ``read``: 0 exclusive, 1 shared (rwsem reader), 2 recursive reader.
        ``subclass``: ``mutex_lock_nested()``'s annotation (a distinct class).
        A trylock is pushed but not validated (``validate_chain()`` skips it):
        no recursion check and no dependency from the locks held; a later
        acquisition gets edges from every trylock on top of the stack down to
        the first non-trylock.
        """
        cls = self.cls_of(m) if not subclass else self.class_named(f"{m.key}/{subclass}")
        held = t.held
        if nest_lock is not None and held:
            top = held[-1]
            if top.cls is cls:
                # Merged into the top entry: no nest_lock check, no validation.
                top.references = (top.references or 1) + 1
                return
        if site is None:
            site = fast_site(3)
        hlock = HeldLock(m, cls, read, trylock, nest_lock, site, k.steps if k else 0)
        if held and not trylock and (k is None or not k.stopping):
            if k is not None and k.coverage is not None:
                k.coverage.on_lock(held, cls.key)
            self._validate_chain(k, t, hlock)
        elif nest_lock is not None and (k is None or not k.stopping):
            self._check_nest_lock(k, t, hlock)
        held.append(hlock)

    def _check_nest_lock(self, k: Kernel | None, t: SimThread, hlock: HeldLock) -> bool:
        """``__lock_acquire()``: a nest_lock the thread does not hold is reported."""
        nest_lock = hlock.nest
        if nest_lock is None or Lockdep.is_held(t, nest_lock):
            return True
        # The kernel returns before validate_chain(); the model keeps the lock
        # on the stack so the releases stay balanced.
        self._report_nest_not_held(k, t, hlock.map, nest_lock, hlock.site)
        return False

    def _validate_chain(self, k: Kernel | None, t: SimThread, nxt: HeldLock) -> None:
        """``validate_chain()`` of a non-trylock with locks held.

        ``check_deadlock()``: a held lock of the class is recursion unless the
        new one is a recursive reader of a held reader, or the nest_lock is
        held below it (then no dependency is added). ``check_prevs_add()``:
        an edge from every trylock on top of the stack and from the first
        non-trylock under them.
        """
        if nxt.nest is not None and not self._check_nest_lock(k, t, nxt):
            return
        held = t.held
        cls = nxt.cls
        nest_map = nxt.nest
        read = nxt.read
        nest = False
        for prev in held:
            if prev.map is nest_map:
                nest = True
            if prev.cls is cls and not (read == 2 and prev.read):
                if not nest:
                    self._report_recursive(k, t, prev, nxt.map, nxt.site)
                return
        rbit = 1 if read == 2 else 0
        for prev in reversed(held):
            edge = prev.cls.after.get(cls)
            if (
                edge is None or not edge.types & (1 << ((2 if prev.read else 0) | rbit))
            ) and not self._check_prev_add(k, t, prev, nxt):
                return
            if not prev.trylock:
                return

    def release(self, k: Kernel | None, t: SimThread, m: LockdepMap) -> None:
        """``lock_release()``: ``find_held_lock()`` from the top, then drop one reference."""
        held = t.held
        if held:
            top = held[-1]
            if top.map is m and not top.references:
                held.pop()
                return
        for i in range(len(held) - 1, -1, -1):
            h = held[i]
            if h.map is m or (h.references and h.cls.key == m.key):
                if h.references:
                    h.references -= 1
                    if h.references:
                        return
                del held[i]
                return
        if k is not None and not k.stopping:
            site = format_site(fast_site(3))
            self._record(
                k,
                Failure(
                    "lockdep",
                    f"bad unlock balance detected: {t.label} releases {m.name}, "
                    f"which it does not hold (at {site})",
                    report=(
                        "=====================================\n"
                        "WARNING: bad unlock balance detected!\n"
                        "-------------------------------------\n"
                        f"{t.label} is trying to release lock ({m.key}) at:\n  {site}\n"
                        "but there are no more locks to release!"
                    ),
                    signature=f"lockdep:unlock-balance:{m.key}",
                ),
            )

    @staticmethod
    def is_held(t: SimThread, m: LockdepMap, read: int = -1) -> bool:
        """``__lock_is_held()``: read -1 any, 0 exclusive, 1 any reader.

        The first entry (from the bottom) that matches decides, and an entry
        that merged several locks of a class matches every lock of it.
        """
        for h in t.held:
            if h.map is m or (h.references and h.cls.key == m.key):
                return read == -1 or bool(h.read) == bool(read)
        return False

    # ------------------------------------------------------------------ graph

    def _check_prev_add(self, k: Kernel | None, t: SimThread, h: HeldLock, nxt: HeldLock) -> bool:
        """``check_prev_add()``: ``check_noncircular()``, then add ``prev -> next``.

        False when a cycle was reported (the kernel stops there).
        """
        prev = h.cls
        cls = nxt.cls
        typ = 1 << ((2 if h.read else 0) | (1 if nxt.read == 2 else 0))
        edge = prev.after.get(cls)
        if edge is not None and edge.types & typ:
            return True  # known: the cycle check ran when it was added
        if (prev.key, cls.key) in self.reported:
            return False
        path = self._bfs(cls, nxt.read == 2, prev, h.read)
        if path is not None:
            self.reported.add((prev.key, cls.key))
            self._report_circular(k, t, h, nxt.map, cls, nxt.site, path)
            return False
        if edge is None:
            origin = EdgeOrigin(
                t.label,
                k.run_id if k is not None else -1,
                k.steps if k is not None else 0,
                format_site(h.site),
                format_site(nxt.site),
            )
            prev.after[cls] = Edge(prev, cls, typ, origin)
        else:
            edge.types |= typ
        return True

    @staticmethod
    def _bfs(
        src: LockClass, only_xr: bool, target: LockClass, target_read: int
    ) -> list[Edge] | None:
        """``check_noncircular()``'s ``__bfs()``: a strong path ``src -> ... -> target``.

        Breadth-first in dependency order, each class visited once (the first
        path to reach it decides, as in the kernel), ``-(*R)-> -(S*)->`` pairs
        skipped; the target matches as ``hlock_conflict()`` does: the held lock
        is a writer, or the path ends with a non-recursive acquisition.
        """
        # The root itself never matches here: a same-class prev reaches
        # check_prev_add() only as a reader under a recursive reader.
        visited = {src}
        edges: list[Edge] = []
        parents: list[int] = []
        xrs: list[bool] = []
        queue: deque[tuple[Edge, int]] = deque((e, -1) for e in src.after.values())
        while queue:
            e, parent = queue.popleft()
            node = e.next
            if node in visited:
                continue
            visited.add(node)
            dep = e.types
            prev_only_xr = xrs[parent] if parent >= 0 else only_xr
            if prev_only_xr:
                dep &= ~_DEP_S_MASK
            if not dep:
                continue
            idx = len(edges)
            edges.append(e)
            parents.append(parent)
            xr = not dep & _DEP_N_MASK
            xrs.append(xr)
            if node is target and (target_read == 0 or not xr):
                path: list[Edge] = []
                while idx >= 0:
                    path.append(edges[idx])
                    idx = parents[idx]
                path.reverse()
                return path
            queue.extend((nxt, idx) for nxt in node.after.values())
        return None

    def reported_pairs(self) -> list[list[str]]:
        """What this graph has already reported (reports are made once per graph)."""
        return sorted([a, b] for a, b in self.reported)

    def mark_reported(self, pairs: Iterable[Iterable[str]]) -> None:
        for pair in pairs:
            a, b = pair
            self.reported.add((a, b))

    def seed_edges(self, edges: Iterable[dict[str, Any]]) -> None:
        """Load dependencies recorded by a report (replaying a cross-run finding)."""
        for e in edges:
            prev = self.class_named(str(e["from"]))
            nxt = self.class_named(str(e["to"]))
            o = e["origin"]
            origin = EdgeOrigin(
                str(o["thread"]),
                int(o["run_id"]),
                int(o["step"]),
                str(o["prev_site"]),
                str(o["next_site"]),
            )
            edge = prev.after.get(nxt)
            if edge is None:
                prev.after[nxt] = Edge(prev, nxt, int(e["types"]), origin)
            else:
                edge.types |= int(e["types"])

    # ------------------------------------------------------------------ reports

    def _record(self, k: Kernel | None, failure: Failure) -> None:
        self.reports += 1
        if k is None:
            raise AssertionError(f"lockdep report while priming: {failure.message}")
        k.record_failure(failure)

    def _report_recursive(
        self, k: Kernel | None, t: SimThread, h: HeldLock, m: LockdepMap, site: Site
    ) -> None:
        key = h.cls.key
        if ("recursive", key) in self.reported:
            return
        self.reported.add(("recursive", key))
        same = (
            "it again" if h.map is m else f"{m.name} while holding {h.map.name} of the same class"
        )
        report = "\n".join(
            [
                "============================================",
                "WARNING: possible recursive locking detected",
                "--------------------------------------------",
                f"{t.label} is trying to acquire lock:",
                f"  {m.name} ({key}), at: {format_site(site)}",
                "",
                "but task is already holding lock:",
                f"  {h.map.name} ({key}), at: {format_site(h.site)}",
                "",
                "other info that might help us debug this:",
                " Possible unsafe locking scenario:",
                "",
                "       CPU0",
                "       ----",
                f"  lock({key});",
                f"  lock({key});",
                "",
                " *** DEADLOCK ***",
                "",
                " May be due to missing lock nesting notation",
                "",
                held_locks_text(t),
            ]
        )
        self._record(
            k,
            Failure(
                "lockdep",
                f"possible recursive locking detected: {t.label} takes {key}: {same} "
                f"(at {format_site(site)})",
                report=report,
                thread=t.label,
                signature=f"lockdep:recursive:{key}",
                extra={"cycle": [key]},
            ),
        )

    def _report_nest_not_held(
        self, k: Kernel | None, t: SimThread, m: LockdepMap, nest: LockdepMap, site: Site
    ) -> None:
        """``print_lock_nested_lock_not_held()``."""
        key = ("nest-not-held", nest.key)
        if key in self.reported:
            return
        self.reported.add(key)
        where = format_site(site)
        self._record(
            k,
            Failure(
                "lockdep",
                f"Nested lock was not taken: {t.label} takes {m.name} ({m.key}) "
                f"under {nest.name} ({nest.key}), which it does not hold (at {where})",
                report="\n".join(
                    [
                        "==================================",
                        "WARNING: Nested lock was not taken",
                        "----------------------------------",
                        f"{t.label} is trying to lock:",
                        f"  {m.name} ({m.key}), at: {where}",
                        "",
                        "but this task is not holding:",
                        f"  {nest.name} ({nest.key})",
                        "",
                        held_locks_text(t),
                    ]
                ),
                thread=t.label,
                signature=f"lockdep:nest-not-held:{nest.key}",
            ),
        )

    def _report_circular(
        self,
        k: Kernel | None,
        t: SimThread,
        h: HeldLock,
        m: LockdepMap,
        cls: LockClass,
        site: Site,
        path: list[Edge],
    ) -> None:
        prev = h.cls
        keys = [cls.key] + [e.next.key for e in path]
        lines = [
            "======================================================",
            "WARNING: possible circular locking dependency detected",
            "------------------------------------------------------",
            f"{t.label} is trying to acquire lock:",
            f"  {m.name} ({cls.key}), at: {format_site(site)}",
            "",
            "but task is already holding lock:",
            f"  {h.map.name} ({prev.key}), at: {format_site(h.site)}",
            "",
            "which lock already depends on the new lock.",
            "",
            "the existing dependency chain (in reverse order) is:",
        ]
        n = len(path)
        for i, e in enumerate(reversed(path)):
            o = e.origin
            run = f" of run {o.run_id}" if o.run_id >= 0 else ""
            lines += [
                "",
                f"-> #{n - i} ({e.next.key}):",
                f"       taken by {o.thread} at step {o.step}{run}: {o.next_site}",
                f"       while holding {e.prev.key} (taken at {o.prev_site})",
            ]
        lines += [
            "",
            f"-> #0 ({cls.key}):",
            f"       {t.label} takes it now: {format_site(site)}",
            f"       while holding {prev.key}",
            "",
            "other info that might help us debug this:",
            "",
        ]
        parent = path[-1].prev.key
        if n > 1:
            lines += [
                "Chain exists of:",
                "  " + " --> ".join([cls.key, *[e.next.key for e in path[:-1]], prev.key]),
                "",
            ]
        lines += [
            " Possible unsafe locking scenario:",
            "",
            "       CPU0                    CPU1",
            "       ----                    ----",
            f"  lock({prev.key});",
            f"                               lock({parent});",
            f"                               lock({prev.key});",
            f"  lock({cls.key});",
            "",
            " *** DEADLOCK ***",
            "",
            held_locks_text(t),
        ]
        first = path[-1].origin
        if n == 1:
            msg = (
                f"possible circular locking dependency detected: {t.label} takes {cls.key} "
                f"while holding {prev.key}, but {first.thread} took {prev.key} while holding "
                f"{cls.key}"
            )
        else:
            msg = (
                f"possible circular locking dependency detected: {t.label} takes {cls.key} "
                f"while holding {prev.key}, but the chain {' -> '.join(keys)} exists"
            )
        run_id = k.run_id if k is not None else -1
        self._record(
            k,
            Failure(
                "lockdep",
                msg,
                report="\n".join(lines),
                thread=t.label,
                signature="lockdep:circular:" + "|".join(sorted(set(keys))),
                extra={
                    "cycle": keys,
                    "lockdep_edges": [e.to_json() for e in path if e.origin.run_id != run_id],
                },
            ),
        )

    def report_held_at_exit(self, k: Kernel, t: SimThread) -> None:
        names = [h.map.name for h in t.held]
        report = (
            "================================================\n"
            "WARNING: lock held when returning to user space!\n"
            "------------------------------------------------\n"
            f"{t.label} is leaving the kernel with locks still held!\n" + held_locks_text(t)
        )
        t.held.clear()
        self._record(
            k,
            Failure(
                "lockdep",
                f"{t.label} exited with lock(s) held: {', '.join(names)}",
                report=report,
                thread=t.label,
                signature="lockdep:held-at-exit:" + "|".join(sorted(set(names))),
            ),
        )


def held_locks_text(t: SimThread) -> str:
    if not t.held:
        return f"no locks held by {t.label}."
    lines = [f"{len(t.held)} lock(s) held by {t.label}:"]
    for i, h in enumerate(t.held):
        mode = {0: "", 1: " (read)", 2: " (recursive read)"}[h.read]
        lines.append(f" #{i}: {h.map.name} ({h.cls.key}){mode}, at: {format_site(h.site)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- default graph

_PRIMED: Lockdep | None = None


def _primed() -> Lockdep:
    """The boot-time graph of ``dma_resv_lockdep()``, built once per process."""
    global _PRIMED
    if _PRIMED is None:
        graph = Lockdep(prime=False)
        prime_dma_resv_lockdep(graph)
        _PRIMED = graph
    return _PRIMED


_default: Lockdep | None = None


def default_lockdep() -> Lockdep:
    """The process-wide graph (created, and primed, on first use)."""
    global _default
    if _default is None:
        _default = Lockdep()
    return _default


def reset_lockdep() -> Lockdep:
    """Forget every dependency (between independent campaigns)."""
    global _default
    _default = Lockdep()
    return _default


# ---------------------------------------------------------------------- annotations

fs_reclaim_map: Final = LockdepMap("fs_reclaim", FS_RECLAIM_KEY)
dma_fence_lockdep_map: Final = LockdepMap("dma_fence_map", DMA_FENCE_MAP_KEY)
_mmap_lock_map: Final = LockdepMap("mm->mmap_lock", MMAP_LOCK_KEY)
_resv_acquire_map: Final = LockdepMap("ctx", RESV_ACQUIRE_KEY)
_resv_mutex_map: Final = LockdepMap("obj->lock", RESV_MUTEX_KEY)
_resv_first_lock_map: Final = LockdepMap("ctx->first_lock_dep_map", RESV_MUTEX_KEY)
_i_mmap_map: Final = LockdepMap("mapping->i_mmap_rwsem", I_MMAP_KEY)
mmu_notifier_map: Final = LockdepMap("__mmu_notifier_invalidate_range_start_map", MMU_NOTIFIER_KEY)


def prime_dma_resv_lockdep(graph: Lockdep) -> None:
    """Replay ``dma_resv_lockdep()``, the boot-time priming of drivers/dma-buf/dma-resv.c.

    Leaves ``mmap_lock -> resv_acquire -> resv_mutex -> fs_reclaim``,
    ``fs_reclaim -> i_mmap_rwsem`` and ``fs_reclaim -> mmu_notifier ->
    dma_fence_map``, so an allocation or a resv lock inside a fence
    signalling section closes a cycle.
    """
    boot = SimThread(-2, _BOOT_THREAD_LABEL, None, (), True)

    def acq(m: LockdepMap, read: int = 0, nest: LockdepMap | None = None) -> None:
        graph.acquire(None, boot, m, read=read, nest_lock=nest)

    def rel(m: LockdepMap) -> None:
        graph.release(None, boot, m)

    acq(_mmap_lock_map, read=1)  # mmap_read_lock(mm)
    # ww_acquire_init(&ctx, &reservation_ww_class): the ctx, then its
    # first_lock_dep_map (of the mutex class) nested under it
    acq(_resv_acquire_map)
    acq(_resv_first_lock_map, nest=_resv_acquire_map)
    acq(_resv_mutex_map, nest=_resv_acquire_map)  # dma_resv_lock(&obj, &ctx): merged
    acq(fs_reclaim_map)  # fs_reclaim_acquire(GFP_KERNEL) ...
    acq(mmu_notifier_map)  # ... which touches the mmu_notifier map too
    rel(mmu_notifier_map)
    acq(_i_mmap_map)  # i_mmap_lock_write(&mapping)
    rel(_i_mmap_map)
    acq(mmu_notifier_map)  # lock_map_acquire(&__mmu_notifier_invalidate_range_start_map)
    acq(dma_fence_lockdep_map)  # __dma_fence_might_wait()
    rel(dma_fence_lockdep_map)
    rel(mmu_notifier_map)
    rel(fs_reclaim_map)
    rel(_resv_mutex_map)  # ww_mutex_unlock(&obj.lock)
    rel(_resv_first_lock_map)  # ww_acquire_fini(&ctx)
    rel(_resv_acquire_map)
    rel(_mmap_lock_map)
    assert not boot.held
    boot_origin = EdgeOrigin(_BOOT_THREAD_LABEL, -1, 0, "dma_resv_lockdep", "dma_resv_lockdep")
    for cls in graph.classes.values():
        for edge in cls.after.values():
            edge.origin = boot_origin


def lock_acquire(
    m: LockdepMap, *, read: int = 0, trylock: bool = False, nest_lock: LockdepMap | None = None
) -> None:
    """``lock_acquire()`` / ``lock_map_acquire()`` on the running thread."""
    k = current_kernel()
    if k.lockdep is not None and k.current is not None:
        k.lockdep.acquire(k, k.current, m, read=read, trylock=trylock, nest_lock=nest_lock)


def lock_release(m: LockdepMap) -> None:
    k = current_kernel()
    if k.lockdep is not None and k.current is not None:
        k.lockdep.release(k, k.current, m)


def lock_map_acquire(m: LockdepMap) -> None:
    """``lock_map_acquire()``: an exclusive acquisition."""
    lock_acquire(m)


def lock_map_acquire_read(m: LockdepMap) -> None:
    """``lock_map_acquire_read()``: a recursive-read acquisition (read=2)."""
    lock_acquire(m, read=2)


def lock_map_acquire_try(m: LockdepMap) -> None:
    """``lock_map_acquire_try()``: an exclusive trylock (pushed, not validated)."""
    lock_acquire(m, trylock=True)


def lock_map_release(m: LockdepMap) -> None:
    lock_release(m)


def lock_is_held(m: LockdepMap) -> bool:
    """``lock_is_held()`` = ``lockdep_is_held()``: on the running thread's held stack."""
    k = current_kernel()
    return k.current is not None and Lockdep.is_held(k.current, m)


def lock_is_held_type(m: LockdepMap, read: int) -> bool:
    """``lock_is_held_type()``: read 0 held exclusively, 1 held as a reader."""
    k = current_kernel()
    return k.current is not None and Lockdep.is_held(k.current, m, read)


def _warn(k: Kernel, message: str, signature: str) -> None:
    k.fail(Failure("warn", message, signature=signature), fatal=k.config.warn_fatal)


def _dep_map(lock: object) -> LockdepMap | None:
    return lock if isinstance(lock, LockdepMap) else getattr(lock, "dep_map", None)


def _lockdep_assert(lock: object, read: int, want: bool, what: str) -> None:
    """``lockdep_assert()`` on ``lockdep_is_held_type(lock, read)``: WARN when it is not ``want``.

    Lockdep's answer, not the lock's owner: with lockdep off it checks nothing,
    and an entry that merged nested locks of a class answers for every lock
    of that class.
    """
    k = current_kernel()
    cur = k.current
    if cur is None or k.stopping or k.lockdep is None:
        return
    m = _dep_map(lock)
    if m is None or Lockdep.is_held(cur, m, read) is want:
        return
    site = format_site(fast_site(3))
    name = getattr(lock, "name", repr(lock))
    _warn(
        k,
        f"{what}({name}) failed in {cur.label} at {site}",
        f"warn:{what}:{site}",
    )


def lockdep_assert_held(lock: object) -> None:
    """``lockdep_assert_held()``: WARN unless the running thread holds ``lock`` (a lock or map)."""
    _lockdep_assert(lock, -1, True, "lockdep_assert_held")


def lockdep_assert_held_write(lock: object) -> None:
    """``lockdep_assert_held_write()``: held, and not as a reader."""
    _lockdep_assert(lock, 0, True, "lockdep_assert_held_write")


def lockdep_assert_held_read(lock: object) -> None:
    """``lockdep_assert_held_read()``: held as a reader."""
    _lockdep_assert(lock, 1, True, "lockdep_assert_held_read")


def lockdep_assert_not_held(lock: object) -> None:
    """``lockdep_assert_not_held()``: WARN if the running thread holds ``lock``."""
    _lockdep_assert(lock, -1, False, "lockdep_assert_not_held")


def in_atomic() -> bool:
    k = current_kernel()
    return k.current is not None and k.current.preempt_count > 0


def might_sleep() -> None:
    """CONFIG_DEBUG_ATOMIC_SLEEP: sleeping in atomic context is reported."""
    k = current_kernel()
    cur = k.current
    if cur is None or cur.preempt_count == 0 or k.stopping:
        return
    site = format_site(fast_site(2))
    k.record_failure(
        Failure(
            "lockdep",
            f"BUG: sleeping function called from invalid context at {site} "
            f"({cur.label}, preempt_count={cur.preempt_count})",
            report=(
                f"BUG: sleeping function called from invalid context at {site}\n"
                f"in_atomic(): 1, {cur.label}\n" + held_locks_text(cur)
            ),
            signature=f"lockdep:atomic-sleep:{site}",
        )
    )


def _need_reclaim(gfp: int) -> bool:
    """``__need_reclaim()``: direct reclaim, not from reclaim itself (PF_MEMALLOC), lockdep on."""
    if not gfp & __GFP_DIRECT_RECLAIM:
        return False
    if current_flags() & PF_MEMALLOC:
        return False
    return not gfp & __GFP_NOLOCKDEP


def fs_reclaim_acquire(gfp: int) -> None:
    """``fs_reclaim_acquire()`` (mm/page_alloc.c).

    Any allocation that may enter direct reclaim touches the mmu_notifier
    invalidate map (reclaim can invalidate mappings); only a __GFP_FS one
    takes ``fs_reclaim``. The per-task NOFS/NOIO scope applies first.
    """
    gfp = current_gfp_context(gfp)
    if _need_reclaim(gfp):
        if gfp & __GFP_FS:
            lock_acquire(fs_reclaim_map)
        lock_map_acquire(mmu_notifier_map)
        lock_map_release(mmu_notifier_map)


def fs_reclaim_release(gfp: int) -> None:
    """``fs_reclaim_release()``."""
    gfp = current_gfp_context(gfp)
    if _need_reclaim(gfp) and gfp & __GFP_FS:
        lock_release(fs_reclaim_map)


def might_alloc(gfp: int) -> None:
    """``might_alloc()``: an allocation that may reclaim touches ``fs_reclaim``."""
    fs_reclaim_acquire(gfp)
    fs_reclaim_release(gfp)
    if gfp & __GFP_DIRECT_RECLAIM:
        might_sleep()


def dma_fence_begin_signalling() -> bool:
    """Start a fence signalling critical section; returns the cookie for ``end``."""
    k = current_kernel()
    cur = k.current
    if k.lockdep is None or cur is None:
        return True
    if Lockdep.is_held(cur, dma_fence_lockdep_map, 1):
        return True
    if cur.preempt_count > 0:
        return True
    k.lockdep.acquire(k, cur, dma_fence_lockdep_map, read=1, trylock=True)
    return False


def dma_fence_end_signalling(cookie: bool) -> None:
    if cookie:
        return
    lock_release(dma_fence_lockdep_map)


def dma_fence_might_wait() -> None:
    """``__dma_fence_might_wait()``: every fence wait write-acquires the signalling map."""
    k = current_kernel()
    cur = k.current
    if k.lockdep is None or cur is None:
        return
    graph = k.lockdep
    held_read = Lockdep.is_held(cur, dma_fence_lockdep_map, 1)
    if held_read:
        graph.release(k, cur, dma_fence_lockdep_map)
    graph.acquire(k, cur, dma_fence_lockdep_map)
    graph.release(k, cur, dma_fence_lockdep_map)
    if held_read:
        graph.acquire(k, cur, dma_fence_lockdep_map, read=1)
