"""A brute-force reference of a drm_gpuvm VA space: a plain sorted list of mappings.

Obviously correct by construction, and deliberately written differently from
the kernel's walk (:mod:`.sm`): every operation rebuilds the list from
scratch, and the expected op sequences come straight from the table in
SEMANTICS.md §9 applied to each overlapping mapping. Tests (and fuzz oracles)
check the real tree and the real split/merge ops against it.

Requests are assumed valid and non-empty (``range > 0``); offsets are not
wrapped to 64 bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OpKey = tuple[Any, ...]


@dataclass(frozen=True)
class RefMapping:
    addr: int
    range: int
    obj: object
    offset: int

    @property
    def end(self) -> int:
        return self.addr + self.range

    def key(self) -> tuple[int, int, object, int]:
        return (self.addr, self.range, self.obj, self.offset)


class IntervalReference:
    """The layout a VA space must have after a sequence of sm_map/sm_unmap requests."""

    def __init__(self) -> None:
        self.maps: list[RefMapping] = []

    def layout(self) -> list[tuple[int, int, object, int]]:
        return [m.key() for m in self.maps]

    def _overlapping(self, addr: int, end: int) -> list[RefMapping]:
        return [m for m in self.maps if m.addr < end and m.end > addr]

    def find_first(self, addr: int, range: int) -> RefMapping | None:
        """The lowest mapping sharing a byte with ``[addr, addr + range)`` (range > 0)."""
        hits = self._overlapping(addr, addr + range)
        return hits[0] if hits else None

    # ------------------------------------------------------------------ expected ops

    def expected_map_ops(self, addr: int, range: int, obj: object, offset: int) -> list[OpKey]:
        """The §9 table, mapping by mapping, then MAP(request)."""
        end = addr + range
        out: list[OpKey] = []
        for m in self._overlapping(addr, end):
            if m.addr == addr:
                keep = m.obj is not None and m.obj is obj and m.offset == offset
            elif m.addr < addr:
                keep = m.obj is not None and m.obj is obj and m.offset + (addr - m.addr) == offset
            else:
                keep = m.obj is not None and m.obj is obj and m.offset == offset + (m.addr - addr)
            prev = (m.addr, addr - m.addr, m.obj, m.offset) if m.addr < addr else None
            nxt = (end, m.end - end, m.obj, m.offset + (end - m.addr)) if m.end > end else None
            if prev is not None or nxt is not None:
                out.append(("remap", (m.addr, m.range), keep, prev, nxt))
            else:
                out.append(("unmap", (m.addr, m.range), keep))
        out.append(("map", addr, range, obj, offset))
        return out

    def expected_unmap_ops(self, addr: int, range: int) -> list[OpKey]:
        end = addr + range
        out: list[OpKey] = []
        for m in self._overlapping(addr, end):
            prev = (m.addr, addr - m.addr, m.obj, m.offset) if m.addr < addr else None
            nxt = (end, m.end - end, m.obj, m.offset + (end - m.addr)) if m.end > end else None
            if prev is not None or nxt is not None:
                out.append(("remap", (m.addr, m.range), False, prev, nxt))
            else:
                out.append(("unmap", (m.addr, m.range), False))
        return out

    # ------------------------------------------------------------------ updates

    def _cut(self, addr: int, end: int) -> list[RefMapping]:
        kept: list[RefMapping] = []
        for m in self.maps:
            if m.end <= addr or m.addr >= end:
                kept.append(m)
                continue
            if m.addr < addr:
                kept.append(RefMapping(m.addr, addr - m.addr, m.obj, m.offset))
            if m.end > end:
                kept.append(RefMapping(end, m.end - end, m.obj, m.offset + (end - m.addr)))
        return kept

    def map(self, addr: int, range: int, obj: object, offset: int) -> None:
        kept = self._cut(addr, addr + range)
        kept.append(RefMapping(addr, range, obj, offset))
        self.maps = sorted(kept, key=lambda m: m.addr)

    def unmap(self, addr: int, range: int) -> None:
        self.maps = sorted(self._cut(addr, addr + range), key=lambda m: m.addr)
