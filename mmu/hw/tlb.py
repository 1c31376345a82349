"""The per-address-space translation cache of the Mali MMU.

Two kinds of entries, both filled by the GPU's own accesses
(:mod:`.gpu_access`) and dropped only by the AS commands that flush the region
LOCK made (UPDATE, UNLOCK, FLUSH_PT, FLUSH_MEM; see :mod:`.mmu_hw`):

* leaf entries: the descriptor of a 4K page, 2M block or 1G block, keyed by the
  VA bits above the leaf size;
* walk entries (optional, ``MaliHwConfig.walk_cache``): the physical address of
  an intermediate table, keyed by the VA bits the table covers. They model the
  walk caches of real MMUs: a table freed but still cached is reached by the
  next walk, which is why io-pgtable calls ``tlb_flush_walk`` before freeing a
  table (panthor's callback is empty and relies on the later FLUSH_PT).

Nothing here is ever evicted by capacity: a stale entry survives until the
right flush, the conservative choice for finding missing flushes.
"""

from __future__ import annotations

from typing import Final

LEAF_SHIFTS: Final = {1: 30, 2: 21, 3: 12}  # level -> log2(leaf size)
WALK_SHIFTS: Final = {1: 39, 2: 30, 3: 21}  # level of the cached table -> log2(VA it covers)


class Tlb:
    """Cached translations of one address space."""

    __slots__ = ("hits", "leaf", "misses", "walk")

    def __init__(self) -> None:
        # leaf[lvl][va >> LEAF_SHIFTS[lvl]] = descriptor
        self.leaf: dict[int, dict[int, int]] = {1: {}, 2: {}, 3: {}}
        # walk[lvl][va >> WALK_SHIFTS[lvl]] = physical address of the level-lvl table
        self.walk: dict[int, dict[int, int]] = {1: {}, 2: {}, 3: {}}
        self.hits = 0
        self.misses = 0

    def lookup(self, va: int) -> tuple[int, int] | None:
        """The cached leaf ``(descriptor, level)`` translating ``va``, if any."""
        leaf = self.leaf
        pte = leaf[3].get(va >> 12)
        if pte is not None:
            return pte, 3
        pte = leaf[2].get(va >> 21)
        if pte is not None:
            return pte, 2
        pte = leaf[1].get(va >> 30)
        if pte is not None:
            return pte, 1
        return None

    def lookup_walk(self, va: int) -> tuple[int, int] | None:
        """The deepest cached table ``(level, table physical address)`` for ``va``."""
        walk = self.walk
        for lvl in (3, 2, 1):
            pa = walk[lvl].get(va >> WALK_SHIFTS[lvl])
            if pa is not None:
                return lvl, pa
        return None

    def fill(self, va: int, pte: int, lvl: int) -> None:
        self.leaf[lvl][va >> LEAF_SHIFTS[lvl]] = pte

    def fill_walk(self, va: int, lvl: int, table_pa: int) -> None:
        self.walk[lvl][va >> WALK_SHIFTS[lvl]] = table_pa

    def invalidate(self, start: int, end: int) -> int:
        """Drop every entry whose VA range meets ``[start, end)``; returns how many."""
        dropped = 0
        for dicts, shifts in ((self.leaf, LEAF_SHIFTS), (self.walk, WALK_SHIFTS)):
            for lvl, d in dicts.items():
                if not d:
                    continue
                s = shifts[lvl]
                lo = start >> s
                hi = (end - 1) >> s  # keys lo..hi inclusive meet the range
                if lo == 0 and hi >= (1 << (64 - s)) - 1:
                    dropped += len(d)
                    d.clear()
                    continue
                if hi - lo < len(d):
                    for key in range(lo, hi + 1):
                        if d.pop(key, None) is not None:
                            dropped += 1
                    continue
                doomed = [key for key in d if lo <= key <= hi]
                for key in doomed:
                    del d[key]
                dropped += len(doomed)
        return dropped

    def invalidate_all(self) -> None:
        for dicts in (self.leaf, self.walk):
            for d in dicts.values():
                d.clear()

    def __len__(self) -> int:
        return sum(len(d) for d in self.leaf.values()) + sum(len(d) for d in self.walk.values())

    def entries(self) -> list[tuple[str, int, int, int]]:
        """``(kind, level, va, value)`` of every entry, for tests and reports."""
        out: list[tuple[str, int, int, int]] = []
        for lvl, d in self.leaf.items():
            out.extend(("leaf", lvl, key << LEAF_SHIFTS[lvl], v) for key, v in d.items())
        for lvl, d in self.walk.items():
            out.extend(("walk", lvl, key << WALK_SHIFTS[lvl], v) for key, v in d.items())
        return out
