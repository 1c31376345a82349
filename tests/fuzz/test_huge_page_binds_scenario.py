"""The huge-page-binds scenario really maps 2M blocks and unmaps parts of them, and with
every known fix (8e7460eac786 and the fix proposed for small folios) it runs clean."""

from __future__ import annotations

import re
from itertools import pairwise

import trio

from panthor_testbed.fuzz.runner import RunSpec, execute
from panthor_testbed.fuzz.scenario import builtin_scenarios
from panthor_testbed.sched import Kernel, RandomWalk

SZ_2M = 0x200000
_DBG = re.compile(r"(un)?map: as=-?\d+, iova=([0-9a-f]+), (?:paddr=([0-9a-f]+), )?len=([0-9a-f]+)")


def _run(seed: int, patch: tuple[str, ...]) -> Kernel:
    spec = RunSpec.make(builtin_scenarios()["huge-page-binds"], {}, patch=patch)

    async def one() -> Kernel:
        return await execute(spec, RandomWalk(seed), None)

    return trio.run(one)


def _page_ops(k: Kernel) -> list[tuple[bool, int, int, int]]:
    """(is unmap, iova, paddr or 0, len) of every panthor_vm_[un]map_pages() chunk."""
    out = []
    for e in k.trace.events:
        if e[3] == "drm_dbg":
            m = _DBG.match(str(e[4]))
            if m:
                unmap, iova, paddr, length = m.groups()
                out.append(
                    (unmap is not None, int(iova, 16), int(paddr or "0", 16), int(length, 16))
                )
    return out


def test_blocks_are_mapped_and_partial_unmaps_are_widened_with_the_fix() -> None:
    block_maps = widened = 0
    for seed in range(12):
        k = _run(seed, ("all",))
        assert k.primary_failure is None, k.primary_failure.message
        ops = _page_ops(k)
        # a user-VA map chunk that io-pgtable can take as 2M blocks
        block_maps += any(
            not un and iova >= 0x400000 and iova % SZ_2M == 0 and pa % SZ_2M == 0 and n >= SZ_2M
            for un, iova, pa, n in ops
        )
        # the fix: a whole-block unmap immediately followed by the remap of what it swept in
        widened += any(
            a[0]
            and a[1] % SZ_2M == 0
            and a[3] % SZ_2M == 0
            and not b[0]
            and b[1] >= a[1]
            and b[1] + b[3] <= a[1] + a[3]
            and b[3] < a[3]
            for a, b in pairwise(ops)
        )
    assert block_maps >= 4, block_maps
    assert widened >= 2, widened


def test_the_seed_refuses_the_first_partial_unmap_of_a_block() -> None:
    from panthor_testbed.fuzz.bugs import latent_slugs

    others = tuple(s for s in latent_slugs() if s != "partial-unmap-huge-page")
    hits = 0
    for seed in range(12):
        k = _run(seed, others)
        f = k.primary_failure
        if f is not None:
            assert f.kind == "warn" and "partial large IOPTE" in f.message, f.message
            hits += 1
    assert hits >= 3, hits
