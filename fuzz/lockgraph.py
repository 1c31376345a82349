"""One lock-order picture for a whole campaign, merged from every batch's dependencies.

Every batch runs with a lockdep graph of its own; the client folds the
dependencies each run added (with the sites that made them) into this
graph, in run-index order, and checks each new one as lockdep's
``check_noncircular()`` would (the same strong-path search,
:meth:`Lockdep._bfs`). A dependency that closes a cycle no run reported is
an inversion whose halves were seen in different batches (on different
workers, or on one worker at different times): the campaign then confirms
it by running the closing run again on a graph seeded with the other
halves, as a replay of a cross-run report does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from panthor_testbed.sched.locking.lockdep import Lockdep


@dataclass(frozen=True)
class Inversion:
    """A dependency ``edge`` that closes a cycle through ``path`` (the earlier halves)."""

    edge: dict[str, Any]
    path: tuple[dict[str, Any], ...]
    cycle: tuple[str, ...]

    @property
    def signature(self) -> str:
        return "lockdep:circular:" + "|".join(sorted(set(self.cycle)))


class MergedGraph:
    """The campaign's lock dependencies (primed as every batch's graph is)."""

    def __init__(self) -> None:
        self.graph = Lockdep()
        self.reported: set[str] = set()  # signatures of cycles already reported
        self.pairs: dict[tuple[str, str], int] = {}  # new dependencies per pair, for the report

    def add(self, edge: dict[str, Any]) -> Inversion | None:
        """Fold one dependency in; an Inversion if it closes a cycle not yet reported.

        An edge that closes a cycle is not added (lockdep does not add it
        either), so the graph stays acyclic and each cycle is found once.
        """
        prev = self.graph.class_named(str(edge["from"]))
        nxt = self.graph.class_named(str(edge["to"]))
        types = int(edge["types"])
        known = prev.after.get(nxt)
        key = (prev.key, nxt.key)
        self.pairs[key] = self.pairs.get(key, 0) + 1
        for bit in range(4):
            typ = 1 << bit
            if not types & typ or (known is not None and known.types & typ):
                continue
            path = Lockdep._bfs(nxt, bool(bit & 1), prev, bit >> 1)
            if path is not None:
                cycle = (nxt.key, *(e.next.key for e in path))
                inv = Inversion(edge, tuple(e.to_json() for e in path), cycle)
                if inv.signature in self.reported:
                    return None
                self.reported.add(inv.signature)
                return inv
        self.graph.seed_edges([edge])
        return None

    def new_pairs(self) -> int:
        """Distinct lock-order pairs the campaign's runs added (the priming's not counted)."""
        return len(self.pairs)
