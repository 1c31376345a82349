"""Hand-written overlap cases: the exact op sequences of drm_gpuvm_sm_map / sm_unmap.

Every cell of the SEMANTICS.md §9 table (VA start ==, <, > request start x
VA end ==, <, > request end), with and without ``keep``, the fifteen cases of
drm_gpuvm.c's "Split and Merge" documentation, multi-VA spans, the sm_unmap
cases, zero-sized requests and the -EINVAL checks. Pure: no running kernel.
"""

from __future__ import annotations

from typing import Any

import pytest

from panthor_testbed.gpuvm.sm import drm_gpuvm_sm_map_ops, drm_gpuvm_sm_unmap_ops, op_key
from panthor_testbed.gpuvm.space import (
    drm_gpuva_init,
    drm_gpuvm_init_va_space,
    gpuva_tree_insert,
)
from panthor_testbed.gpuvm.structs import DrmGpuva, DrmGpuvm
from panthor_testbed.gpuvm.u64 import U64_MAX
from panthor_testbed.sched.errno import EINVAL


class _Bo:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def _gem(name: str) -> Any:
    return _Bo(name)


A = _gem("A")
B = _gem("B")
K = 0x1000
N = 0x10_0000  # the existing mapping's GEM offset ("n" in the kernel's diagrams)
M = 0x80_0000  # another GEM offset ("m")

Maps = list[tuple[int, int, Any, int]]


def _vm(maps: Maps, reserve: tuple[int, int] = (0, 0)) -> DrmGpuvm:
    vm = DrmGpuvm()
    drm_gpuvm_init_va_space(vm, "table", 0, 1 << 32, reserve[0], reserve[1])
    for addr, rng, obj, off in maps:
        va = DrmGpuva()
        drm_gpuva_init(va, addr, rng, obj, off)
        assert gpuva_tree_insert(vm, va) == 0
    return vm


def _map_ops(maps: Maps, a: int, r: int, obj: Any, off: int) -> list[Any] | int:
    ops = drm_gpuvm_sm_map_ops(_vm(maps), a, r, obj, off)
    return ops if isinstance(ops, int) else [op_key(op) for op in ops]


def _unmap_ops(maps: Maps, a: int, r: int) -> list[Any] | int:
    ops = drm_gpuvm_sm_unmap_ops(_vm(maps), a, r)
    return ops if isinstance(ops, int) else [op_key(op) for op in ops]


def _unmap(addr: int, rng: int, keep: bool) -> tuple[Any, ...]:
    return ("unmap", (addr, rng), keep)


def _remap(
    addr: int, rng: int, keep: bool, prev: tuple[Any, ...] | None, nxt: tuple[Any, ...] | None
) -> tuple[Any, ...]:
    return ("remap", (addr, rng), keep, prev, nxt)


def _map(addr: int, rng: int, obj: Any, off: int) -> tuple[Any, ...]:
    return ("map", addr, rng, obj, off)


# (id, existing mappings, request (addr, range, obj, offset), expected op keys)
MAP_CASES: list[tuple[str, Maps, tuple[int, int, Any, int], list[tuple[Any, ...]]]] = [
    # ---- addr == req_addr -------------------------------------------------
    (
        "start==,end== same GEM+offset: UNMAP keep (kernel doc case 1)",
        [(4 * K, 8 * K, A, N)],
        (4 * K, 8 * K, A, N),
        [_unmap(4 * K, 8 * K, True), _map(4 * K, 8 * K, A, N)],
    ),
    (
        "start==,end== other offset: UNMAP no keep (doc case 2)",
        [(4 * K, 8 * K, A, N)],
        (4 * K, 8 * K, A, M),
        [_unmap(4 * K, 8 * K, False), _map(4 * K, 8 * K, A, M)],
    ),
    (
        "start==,end== other GEM: UNMAP no keep (doc case 3)",
        [(4 * K, 8 * K, A, N)],
        (4 * K, 8 * K, B, N),
        [_unmap(4 * K, 8 * K, False), _map(4 * K, 8 * K, B, N)],
    ),
    (
        "start==,end== both without GEM: merge starts false, no keep",
        [(4 * K, 8 * K, None, 0)],
        (4 * K, 8 * K, None, 0),
        [_unmap(4 * K, 8 * K, False), _map(4 * K, 8 * K, None, 0)],
    ),
    (
        "start==,end< : UNMAP keep and continue to the next VA (doc case 4)",
        [(4 * K, 4 * K, A, N), (8 * K, 4 * K, A, N + 4 * K)],
        (4 * K, 8 * K, A, N),
        [_unmap(4 * K, 4 * K, True), _unmap(8 * K, 4 * K, True), _map(4 * K, 8 * K, A, N)],
    ),
    (
        "start==,end< other GEM: UNMAP no keep, continue",
        [(4 * K, 4 * K, A, N)],
        (4 * K, 8 * K, B, M),
        [_unmap(4 * K, 4 * K, False), _map(4 * K, 8 * K, B, M)],
    ),
    (
        "start==,end> same GEM: REMAP next @ off+range, keep (doc case 6)",
        [(4 * K, 8 * K, A, N)],
        (4 * K, 4 * K, A, N),
        [
            _remap(4 * K, 8 * K, True, None, (8 * K, 4 * K, A, N + 4 * K)),
            _map(4 * K, 4 * K, A, N),
        ],
    ),
    (
        "start==,end> other GEM: REMAP next, no keep (doc case 5)",
        [(4 * K, 8 * K, A, N)],
        (4 * K, 4 * K, B, N),
        [
            _remap(4 * K, 8 * K, False, None, (8 * K, 4 * K, A, N + 4 * K)),
            _map(4 * K, 4 * K, B, N),
        ],
    ),
    # ---- addr < req_addr --------------------------------------------------
    (
        "start<,end== contiguous: REMAP prev, keep (doc case 8)",
        [(4 * K, 8 * K, A, N)],
        (8 * K, 4 * K, A, N + 4 * K),
        [_remap(4 * K, 8 * K, True, (4 * K, 4 * K, A, N), None), _map(8 * K, 4 * K, A, N + 4 * K)],
    ),
    (
        "start<,end== other GEM: REMAP prev, no keep (doc case 7)",
        [(4 * K, 8 * K, A, N)],
        (8 * K, 4 * K, B, M),
        [_remap(4 * K, 8 * K, False, (4 * K, 4 * K, A, N), None), _map(8 * K, 4 * K, B, M)],
    ),
    (
        "start<,end== same GEM, non-contiguous offset: no keep",
        [(4 * K, 8 * K, A, N)],
        (8 * K, 4 * K, A, N),
        [_remap(4 * K, 8 * K, False, (4 * K, 4 * K, A, N), None), _map(8 * K, 4 * K, A, N)],
    ),
    (
        "start<,end< contiguous: REMAP prev, keep, continue (doc case 10)",
        [(4 * K, 8 * K, A, N)],
        (8 * K, 8 * K, A, N + 4 * K),
        [_remap(4 * K, 8 * K, True, (4 * K, 4 * K, A, N), None), _map(8 * K, 8 * K, A, N + 4 * K)],
    ),
    (
        "start<,end< other GEM: REMAP prev, no keep (doc case 9)",
        [(4 * K, 8 * K, A, N), (12 * K, 4 * K, B, M)],
        (8 * K, 12 * K, B, M),
        [
            _remap(4 * K, 8 * K, False, (4 * K, 4 * K, A, N), None),
            _unmap(12 * K, 4 * K, False),
            _map(8 * K, 12 * K, B, M),
        ],
    ),
    (
        "start<,end> contiguous: REMAP prev+next, keep (doc case 12)",
        [(4 * K, 12 * K, A, N)],
        (8 * K, 4 * K, A, N + 4 * K),
        [
            _remap(4 * K, 12 * K, True, (4 * K, 4 * K, A, N), (12 * K, 4 * K, A, N + 8 * K)),
            _map(8 * K, 4 * K, A, N + 4 * K),
        ],
    ),
    (
        "start<,end> other GEM: REMAP prev+next @ off+(a-addr)+range, no keep (doc case 11)",
        [(4 * K, 12 * K, A, N)],
        (8 * K, 4 * K, B, M),
        [
            _remap(4 * K, 12 * K, False, (4 * K, 4 * K, A, N), (12 * K, 4 * K, A, N + 8 * K)),
            _map(8 * K, 4 * K, B, M),
        ],
    ),
    # ---- addr > req_addr --------------------------------------------------
    (
        "start>,end== contiguous: UNMAP keep (doc case 13)",
        [(8 * K, 4 * K, A, N + 4 * K)],
        (4 * K, 8 * K, A, N),
        [_unmap(8 * K, 4 * K, True), _map(4 * K, 8 * K, A, N)],
    ),
    (
        "start>,end== non-contiguous offset: UNMAP no keep",
        [(8 * K, 4 * K, A, N)],
        (4 * K, 8 * K, A, N),
        [_unmap(8 * K, 4 * K, False), _map(4 * K, 8 * K, A, N)],
    ),
    (
        "start>,end< contiguous: UNMAP keep, continue (doc case 14)",
        [(8 * K, 4 * K, A, N + 4 * K)],
        (4 * K, 12 * K, A, N),
        [_unmap(8 * K, 4 * K, True), _map(4 * K, 12 * K, A, N)],
    ),
    (
        "start>,end< other GEM: UNMAP no keep, continue",
        [(8 * K, 4 * K, A, N + 4 * K), (12 * K, 2 * K, A, N)],
        (4 * K, 12 * K, B, N),
        [_unmap(8 * K, 4 * K, False), _unmap(12 * K, 2 * K, False), _map(4 * K, 12 * K, B, N)],
    ),
    (
        "start>,end> other GEM: REMAP next @ off+(E-addr), no keep (doc case 15)",
        [(8 * K, 8 * K, A, N)],
        (4 * K, 8 * K, B, M),
        [
            _remap(8 * K, 8 * K, False, None, (12 * K, 4 * K, A, N + 4 * K)),
            _map(4 * K, 8 * K, B, M),
        ],
    ),
    (
        "start>,end> contiguous: REMAP next, keep",
        [(8 * K, 8 * K, A, N + 4 * K)],
        (4 * K, 8 * K, A, N),
        [
            _remap(8 * K, 8 * K, True, None, (12 * K, 4 * K, A, N + 8 * K)),
            _map(4 * K, 8 * K, A, N),
        ],
    ),
    # ---- several VAs, gaps, nothing ----------------------------------------
    (
        "span: REMAP prev, UNMAP, REMAP next, then MAP; keep per VA",
        [(0, 8 * K, A, 0), (12 * K, 4 * K, B, 0), (20 * K, 8 * K, A, 20 * K)],
        (4 * K, 20 * K, A, 4 * K),
        [
            _remap(0, 8 * K, True, (0, 4 * K, A, 0), None),
            _unmap(12 * K, 4 * K, False),
            _remap(20 * K, 8 * K, True, None, (24 * K, 4 * K, A, 24 * K)),
            _map(4 * K, 20 * K, A, 4 * K),
        ],
    ),
    (
        "touching neighbours are not overlapped: MAP only",
        [(0, 4 * K, A, 0), (8 * K, 4 * K, A, 8 * K)],
        (4 * K, 4 * K, A, 4 * K),
        [_map(4 * K, 4 * K, A, 4 * K)],
    ),
    ("empty VM: MAP only", [], (4 * K, 4 * K, A, 0), [_map(4 * K, 4 * K, A, 0)]),
    (
        "a VA after the request end stops the walk",
        [(4 * K, 4 * K, A, N), (16 * K, 4 * K, A, N)],
        (0, 12 * K, B, 0),
        [_unmap(4 * K, 4 * K, False), _map(0, 12 * K, B, 0)],
    ),
    # ---- zero-sized requests (drm_gpuvm_range_valid accepts range 0) -------
    (
        "range 0 inside a VA splits it: REMAP prev+next, keep, then MAP(range 0)",
        [(4 * K, 8 * K, A, N)],
        (8 * K, 0, A, N + 4 * K),
        [
            _remap(4 * K, 8 * K, True, (4 * K, 4 * K, A, N), (8 * K, 4 * K, A, N + 4 * K)),
            _map(8 * K, 0, A, N + 4 * K),
        ],
    ),
    (
        "range 0 at a VA start finds nothing: MAP only",
        [(4 * K, 8 * K, A, N)],
        (4 * K, 0, A, N),
        [_map(4 * K, 0, A, N)],
    ),
]


@pytest.mark.parametrize(
    ("maps", "req", "expected"),
    [pytest.param(m, r, e, id=i) for i, m, r, e in MAP_CASES],
)
def test_sm_map_op_sequence(
    maps: Maps, req: tuple[int, int, Any, int], expected: list[tuple[Any, ...]]
) -> None:
    assert _map_ops(maps, *req) == expected


UNMAP_CASES: list[tuple[str, Maps, tuple[int, int], list[tuple[Any, ...]]]] = [
    (
        "exact VA: UNMAP, keep never set",
        [(4 * K, 8 * K, A, N)],
        (4 * K, 8 * K),
        [_unmap(4 * K, 8 * K, False)],
    ),
    (
        "inside a VA: REMAP prev+next",
        [(4 * K, 8 * K, A, N)],
        (6 * K, 2 * K),
        [_remap(4 * K, 8 * K, False, (4 * K, 2 * K, A, N), (8 * K, 4 * K, A, N + 4 * K))],
    ),
    (
        "head of a VA: REMAP next only",
        [(4 * K, 8 * K, A, N)],
        (0, 8 * K),
        [_remap(4 * K, 8 * K, False, None, (8 * K, 4 * K, A, N + 4 * K))],
    ),
    (
        "tail of a VA: REMAP prev only",
        [(4 * K, 8 * K, A, N)],
        (8 * K, 8 * K),
        [_remap(4 * K, 8 * K, False, (4 * K, 4 * K, A, N), None)],
    ),
    (
        "span: REMAP prev, UNMAP, REMAP next",
        [(0, 8 * K, A, 0), (12 * K, 4 * K, B, 0), (20 * K, 8 * K, A, 20 * K)],
        (4 * K, 20 * K),
        [
            _remap(0, 8 * K, False, (0, 4 * K, A, 0), None),
            _unmap(12 * K, 4 * K, False),
            _remap(20 * K, 8 * K, False, None, (24 * K, 4 * K, A, 24 * K)),
        ],
    ),
    ("gap: nothing", [(0, 8 * K, A, 0), (12 * K, 4 * K, B, 0)], (8 * K, 4 * K), []),
    ("empty VM: nothing", [], (0, 1 << 20), []),
    (
        "range 0 inside a VA splits it",
        [(4 * K, 8 * K, A, N)],
        (8 * K, 0),
        [_remap(4 * K, 8 * K, False, (4 * K, 4 * K, A, N), (8 * K, 4 * K, A, N + 4 * K))],
    ),
]


@pytest.mark.parametrize(
    ("maps", "req", "expected"),
    [pytest.param(m, r, e, id=i) for i, m, r, e in UNMAP_CASES],
)
def test_sm_unmap_op_sequence(
    maps: Maps, req: tuple[int, int], expected: list[tuple[Any, ...]]
) -> None:
    assert _unmap_ops(maps, *req) == expected


def test_invalid_ranges_are_einval() -> None:
    maps: Maps = [(4 * K, 4 * K, A, 0)]
    vm = _vm(maps, reserve=(0x10_0000, 0x1_0000))
    top = 1 << 32
    # out of the VA space, overflowing, on the reserved node
    assert drm_gpuvm_sm_map_ops(vm, top - K, 2 * K, A, 0) == -EINVAL
    assert drm_gpuvm_sm_map_ops(vm, U64_MAX - K, 2 * K, A, 0) == -EINVAL
    assert drm_gpuvm_sm_map_ops(vm, 0x10_8000, K, A, 0) == -EINVAL
    assert drm_gpuvm_sm_map_ops(vm, 0xF_F000, 2 * K, A, 0) == -EINVAL
    assert drm_gpuvm_sm_unmap_ops(vm, 0x10_F000, 2 * K) == -EINVAL
    assert drm_gpuvm_sm_unmap_ops(vm, top, K) == -EINVAL
    # touching the reserved node and the end of the space is fine
    ok = drm_gpuvm_sm_map_ops(vm, 0xF_F000, K, A, 0)
    assert not isinstance(ok, int) and [op_key(o) for o in ok] == [_map(0xF_F000, K, A, 0)]
    ok = drm_gpuvm_sm_unmap_ops(vm, 0x11_0000, top - 0x11_0000)
    assert ok == []


def test_reserved_node_is_in_the_tree_but_never_walked() -> None:
    vm = _vm([(0, 4 * K, A, 0)], reserve=(8 * K, 4 * K))
    assert [(v.va.addr, v.va.range) for v in vm.rb] == [(0, 4 * K), (8 * K, 4 * K)]
    assert vm.kernel_alloc_node.vm is vm
    # A map right before the reserved node: the walk's `next` is the node, never visited.
    ops = drm_gpuvm_sm_map_ops(vm, 0, 8 * K, B, 0)
    assert not isinstance(ops, int)
    assert [op_key(o) for o in ops] == [_unmap(0, 4 * K, False), _map(0, 8 * K, B, 0)]
