"""sm_map / sm_unmap against the brute-force reference, over random request sequences.

Pure (no kernel): each request's ops are compared with the reference's
expected ops (the §9 table applied per mapping), then applied to the tree
the way drm_gpuva_map/remap/unmap do, step by step while the walk runs (as
panthor's step callbacks do); the resulting layout must equal the
reference's, and the live walk must produce the same ops as the static one.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from panthor_testbed.gpuvm.reference import IntervalReference
from panthor_testbed.gpuvm.sm import (
    drm_gpuvm_sm_map_ops,
    drm_gpuvm_sm_unmap_ops,
    op_key,
    sm_map_steps,
    sm_unmap_steps,
)
from panthor_testbed.gpuvm.space import (
    drm_gpuva_init_from_op,
    drm_gpuvm_init_va_space,
    gpuva_tree_insert,
    gpuva_tree_remove,
)
from panthor_testbed.gpuvm.structs import (
    DRM_GPUVA_OP_MAP,
    DRM_GPUVA_OP_REMAP,
    DrmGpuva,
    DrmGpuvaOp,
    DrmGpuvm,
)


class _Bo:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


GEMS: list[Any] = [_Bo("A"), _Bo("B"), _Bo("C"), None]
PAGE = 0x1000
SPACE = 64  # pages

Request = tuple[str, int, int, int, int]  # kind, page, pages, gem index, offset page


def _apply(vm: DrmGpuvm, op: DrmGpuvaOp) -> None:
    """What drm_gpuva_map / drm_gpuva_remap / drm_gpuva_unmap do to the tree."""
    if op.op == DRM_GPUVA_OP_MAP:
        va = DrmGpuva()
        drm_gpuva_init_from_op(va, op.map)
        assert gpuva_tree_insert(vm, va) == 0
    elif op.op == DRM_GPUVA_OP_REMAP:
        r = op.remap
        gpuva_tree_remove(r.unmap.va)
        for part in (r.prev, r.next):
            if part is not None:
                va = DrmGpuva()
                drm_gpuva_init_from_op(va, part)
                assert gpuva_tree_insert(vm, va) == 0
    else:
        gpuva_tree_remove(op.unmap.va)


def _layout(vm: DrmGpuvm) -> list[tuple[int, int, object, int]]:
    return [(v.va.addr, v.va.range, v.gem.obj, v.gem.offset) for v in vm.rb]


def _run(requests: list[Request]) -> None:
    vm = DrmGpuvm()
    drm_gpuvm_init_va_space(vm, "ref", 0, SPACE * PAGE)
    ref = IntervalReference()
    for kind, page, pages, gem, off_page in requests:
        addr, rng = page * PAGE, pages * PAGE
        if addr + rng > SPACE * PAGE:
            continue
        obj = GEMS[gem]
        off = off_page * PAGE
        if kind == "map":
            static = drm_gpuvm_sm_map_ops(vm, addr, rng, obj, off)
            assert not isinstance(static, int)
            expected = ref.expected_map_ops(addr, rng, obj, off)
            steps = sm_map_steps(vm, addr, rng, obj, off)
        else:
            static = drm_gpuvm_sm_unmap_ops(vm, addr, rng)
            assert not isinstance(static, int)
            expected = ref.expected_unmap_ops(addr, rng)
            steps = sm_unmap_steps(vm, addr, rng)
        assert [op_key(o) for o in static] == expected
        live = []
        for op in steps:  # apply each step before the walk goes on
            live.append(op_key(op))
            _apply(vm, op)
        assert live == expected
        if kind == "map":
            ref.map(addr, rng, obj, off)
        else:
            ref.unmap(addr, rng)
        assert _layout(vm) == ref.layout()
        # the tree's own lookups agree with the reference too
        for probe in range(0, SPACE, 7):
            hit = vm.rb.find_first(probe * PAGE, PAGE)
            want = ref.find_first(probe * PAGE, PAGE)
            assert (hit is None) == (want is None)
            if hit is not None and want is not None:
                assert (hit.va.addr, hit.va.range) == (want.addr, want.range)


REQUESTS = st.lists(
    st.tuples(
        st.sampled_from(["map", "map", "unmap"]),
        st.integers(0, SPACE - 1),
        st.integers(1, 16),
        st.integers(0, len(GEMS) - 1),
        st.integers(0, 24),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=1000, deadline=None)
@given(REQUESTS)
def test_sm_against_reference(requests: list[Request]) -> None:
    _run(requests)


@pytest.mark.slow
@settings(max_examples=10000, deadline=None)
@given(REQUESTS)
def test_sm_against_reference_long(requests: list[Request]) -> None:
    _run(requests)
