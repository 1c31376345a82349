"""The VA tree against a brute-force list of intervals (Hypothesis), plus its refusals."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from panthor_testbed.gpuvm.structs import DrmGpuva
from panthor_testbed.gpuvm.u64 import U64_MAX
from panthor_testbed.gpuvm.va_tree import VaTree, gpuva_last
from panthor_testbed.sched.errno import EEXIST, EINVAL


def _va(addr: int, rng: int) -> DrmGpuva:
    va = DrmGpuva()
    va.va.addr = addr
    va.va.range = rng
    return va


def _brute_iter_first(nodes: list[DrmGpuva], start: int, last: int) -> DrmGpuva | None:
    """The kernel interval tree's definition: lowest start with start <= last and end >= start."""
    hits = [n for n in nodes if n.va.addr <= last and gpuva_last(n.va.addr, n.va.range) >= start]
    return min(hits, key=lambda n: n.va.addr) if hits else None


def _overlaps(a: DrmGpuva, addr: int, rng: int) -> bool:
    return a.va.addr < addr + rng and addr < a.va.addr + a.va.range


ADDR = st.integers(0, 64)
RNG = st.integers(1, 16)


@settings(max_examples=400, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["insert", "remove"]), ADDR, RNG, st.integers(0, 1000)),
        max_size=60,
    ),
    queries=st.lists(st.tuples(st.integers(0, 90), st.integers(0, 20)), max_size=20),
)
def test_tree_matches_brute_force(
    ops: list[tuple[str, int, int, int]], queries: list[tuple[int, int]]
) -> None:
    tree: VaTree[DrmGpuva] = VaTree()
    ref: list[DrmGpuva] = []
    for kind, addr, rng, pick in ops:
        if kind == "insert":
            va = _va(addr, rng)
            want = -EEXIST if any(_overlaps(n, addr, rng) for n in ref) else 0
            assert tree.insert(va) == want
            if want == 0:
                ref.append(va)
        elif ref:
            victim = ref.pop(pick % len(ref))
            assert tree.contains(victim)
            tree.remove(victim)
            assert not tree.contains(victim)
        ordered = sorted(ref, key=lambda n: n.va.addr)
        assert tree.entries() == ordered
        assert len(tree) == len(ref)
        for i, n in enumerate(ordered):
            assert tree.next(n) is (ordered[i + 1] if i + 1 < len(ordered) else None)
            assert tree.prev(n) is (ordered[i - 1] if i > 0 else None)
    ordered = sorted(ref, key=lambda n: n.va.addr)
    for addr, rng in queries:
        last = gpuva_last(addr, rng)  # rng == 0 is the kernel's inverted query
        assert tree.iter_first(addr, last) is _brute_iter_first(ordered, addr, last)
        assert tree.find_first(addr, rng) is _brute_iter_first(ordered, addr, last)
        end = addr + rng
        first = _brute_iter_first(ordered, addr, gpuva_last(addr, end - addr))
        in_range = [] if first is None else [n for n in ordered if first.va.addr <= n.va.addr < end]
        assert list(tree.range_iter(addr, end)) == in_range


def test_iter_first_with_wrapping_last_covers_everything() -> None:
    tree: VaTree[DrmGpuva] = VaTree()
    a, b = _va(0x1000, 0x1000), _va(0x8000, 0x1000)
    assert tree.insert(b) == 0 and tree.insert(a) == 0
    # drm_gpuva_find_first(gpuvm, 0, 0): last = U64_MAX, so the first VA overlaps.
    assert tree.find_first(0, 0) is a
    # A zero range strictly inside a VA finds it; at its start it does not.
    assert tree.find_first(0x1800, 0) is a
    assert tree.find_first(0x1000, 0) is None
    assert tree.find_first(0x2000, 0x6000) is None
    assert tree.find_first(0x2000, 0x6001) is b


def test_insert_refuses_overlap_zero_size_and_overflow() -> None:
    tree: VaTree[DrmGpuva] = VaTree()
    assert tree.insert(_va(0x1000, 0x2000)) == 0
    assert tree.insert(_va(0x2FFF, 0x1)) == -EEXIST
    assert tree.insert(_va(0x0, 0x1001)) == -EEXIST
    assert tree.insert(_va(0x1000, 0x2000)) == -EEXIST
    assert tree.insert(_va(0x3000, 0)) == -EINVAL
    assert tree.insert(_va(U64_MAX, 2)) == -EINVAL
    assert tree.insert(_va(0x3000, 0x1)) == 0  # touching is not overlapping
    # addr + range must not wrap (as check_add_overflow), so the last byte is unusable.
    assert tree.insert(_va(U64_MAX, 1)) == -EINVAL
    assert tree.insert(_va(U64_MAX - 1, 1)) == 0
    assert [n.va.addr for n in tree] == [0x1000, 0x3000, U64_MAX - 1]


def test_remove_of_an_absent_entry_raises() -> None:
    tree: VaTree[DrmGpuva] = VaTree()
    a = _va(0x1000, 0x1000)
    assert tree.insert(a) == 0
    other = _va(0x1000, 0x1000)  # same address, different object
    try:
        tree.remove(other)
    except KeyError:
        pass
    else:
        raise AssertionError("removing an entry that is not in the tree must fail")
    assert tree.contains(a)
