"""One file's VM/BO ioctls, single-threaded, checked step by step against a reference model.

Hypothesis draws a program (a list of op tuples whose indices are resolved
against the reference state when the op runs, so every op is meaningful),
and the program runs in one device run (the model is async: a
RuleBasedStateMachine cannot await between rules). The reference is
``{vm_id: {page_va: (bo_handle, bo_page_index, readonly)}}`` plus the live BOs
and the destroyed VM ids. Ops:

* ``vm_create`` (-EBUSY exactly when 32 VMs are live), ``vm_destroy``;
* ``bo_create`` (1..8 pages), ``gem_close`` (mappings keep the BO alive);
* sync ``map``/``unmap`` and async ones (signalling a syncobj, then
  SYNCOBJ_TIMELINE_WAIT on it), page-aligned, inside the BO, readonly or not,
  overlapping earlier mappings at random (a MAP over a mapping replaces it);
* ``read`` / ``write`` of a random VA of a VM: the GPU gets ``page_of(bo,
  offset)`` where the reference maps it (a write to a readonly page faults),
  a GpuFault where it maps nothing;
* ``state``: VM_GET_STATE is (0, USABLE) for a live VM, -EINVAL for a destroyed id.

Invariants after every step: every live VM reports USABLE, every destroyed
(and not reused) id is -EINVAL, and after a map or unmap the pages at both
edges of the range and just outside it read as the reference says. The run
ends without any finding (leak, WARN, oops).

The reference is the kernel's documented behaviour, not the seed's: the runs
install the later fixes "unmap-vma-prealloc-one-short" (the seed oopses on an
UNMAP, or MAP, strictly inside one mapping: a remap with prev and next) and
"irq-mask-not-restored-on-reenable" (the seed never handles a second fault
on one AS, so the second unmapped read would stall the AS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panthor_testbed.fuzz.bugs import installed
from panthor_testbed.mmu.hw.gpu_access import GPU_READ, GPU_WRITE, GpuFault
from panthor_testbed.mmu.panthor_drm import (
    DRM_PANTHOR_SYNC_OP_SIGNAL,
    DRM_PANTHOR_VM_BIND_OP_MAP_READONLY,
    DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
    DRM_PANTHOR_VM_STATE_USABLE,
    drm_panthor_sync_op,
    drm_panthor_vm_bind_op,
)
from panthor_testbed.mmu.panthor_mmu import panthor_vm_active, panthor_vm_idle
from panthor_testbed.sched.core.clock import msleep
from panthor_testbed.sched.errno import EBUSY, EINVAL

from .driver_fixture import failures_text
from .drv_fixture import VA, Ctx, P, run_files, vm_of

FIXES = ["unmap-vma-prealloc-one-short", "irq-mask-not-restored-on-reenable"]
MAX_VMS = 32  # panthor_vm_pool_create_vm(): XA_LIMIT(1, 32)
VA_PAGES = 48  # the VA window the ops use: [VA, VA + 48 pages)
BO_PAGES = 8

Op = tuple[Any, ...]


def ops() -> st.SearchStrategy[Op]:
    i = st.integers(0, 63)  # an index, taken modulo the live objects' count
    page = st.integers(0, VA_PAGES - 1)
    map_any = st.tuples(
        st.just("map"),
        i,
        i,
        st.integers(0, BO_PAGES - 1),
        page,
        st.integers(1, BO_PAGES),
        st.booleans(),
        st.booleans(),
    )
    map_whole = st.tuples(
        st.just("map"), i, i, st.just(0), page, st.just(BO_PAGES), st.just(False), st.just(False)
    )
    unmap = st.tuples(st.just("unmap"), i, page, st.integers(1, 16), st.booleans())
    read = st.tuples(st.just("read"), i, st.integers(-2, VA_PAGES + 1), st.integers(0, P - 8))
    # The binds and reads are drawn most (sampled_from weighs the repeats; one_of does not).
    choices: list[st.SearchStrategy[Op]] = [
        st.just(("vm_create",)),
        st.tuples(st.just("vm_destroy"), i),
        st.tuples(st.just("bo_create"), st.integers(1, BO_PAGES)),
        st.tuples(st.just("gem_close"), i),
        map_any, map_any, map_any, map_whole,
        unmap, unmap, unmap,
        read, read,
        st.tuples(st.just("write"), i, st.integers(-2, VA_PAGES + 1)),
        st.tuples(st.just("state"), i, st.booleans()),
    ]  # fmt: skip
    return st.sampled_from(choices).flatmap(lambda s: s)


@dataclass
class Ref:
    """The reference state of the file."""

    vms: dict[int, dict[int, tuple[int, int, bool]]] = field(default_factory=dict)
    bos: dict[int, tuple[Any, int]] = field(default_factory=dict)  # handle -> (object, pages)
    dead: set[int] = field(default_factory=set)  # destroyed ids not reused since
    # (vm, page va) -> the BO object mapped there (a closed handle's number is reused).
    objs: dict[tuple[int, int], Any] = field(default_factory=dict)


def pick(keys: Any, i: int) -> int | None:
    ordered = sorted(keys)
    return ordered[i % len(ordered)] if ordered else None


def expected_pa(ref: Ref, vm: int, va: int, write: bool) -> int | None:
    """What the GPU should get at ``va``: the PA, or None for a fault."""
    hit = ref.vms[vm].get(va & ~(P - 1))
    if hit is None:
        return None
    _handle, page, readonly = hit
    if write and readonly:
        return None
    obj = ref.objs[(vm, va & ~(P - 1))]
    return (int(obj.pages[page]) << 12) + (va & (P - 1))


class Stats:
    steps = 0
    kinds: dict[str, int] = {}  # noqa: RUF012


async def access(c: Ctx, vm_id: int, va: int, write: bool) -> Any:
    vm = vm_of(c, vm_id)
    assert vm is not None
    assert await panthor_vm_active(vm) == 0
    res = await c.ptdev.iomem.access(vm.as_.id, va, GPU_WRITE if write else GPU_READ)
    await panthor_vm_idle(vm)
    if isinstance(res, GpuFault):
        await msleep(1)  # let the MMU IRQ thread handle the fault
    return res


async def check_va(c: Ctx, ref: Ref, vm: int, va: int, write: bool = False) -> None:
    want = expected_pa(ref, vm, va, write)
    got = await access(c, vm, va, write)
    if want is None:
        assert isinstance(got, GpuFault), (vm, hex(va), write, got)
    else:
        assert got == want, (vm, hex(va), write, got, hex(want))


async def bind(c: Ctx, ref: Ref, vm: int, op: drm_panthor_vm_bind_op, is_async: bool) -> int:
    if not is_async:
        return await c.bind_sync(vm, op)
    s = await c.syncobj()
    op.syncs = c.mm.put_array([drm_panthor_sync_op(flags=DRM_PANTHOR_SYNC_OP_SIGNAL, handle=s)])
    ret = await c.bind_async(vm, op)
    if ret == 0:
        assert await c.wait(s) == 0
    c.mm.munmap(op.syncs.array)
    return ret


async def step(c: Ctx, ref: Ref, op: Op) -> None:
    kind = op[0]
    vm: int | None
    handle: int | None
    Stats.kinds[kind] = Stats.kinds.get(kind, 0) + 1
    if kind == "vm_create":
        ret, vm = await c.vm_create()
        if len(ref.vms) == MAX_VMS:
            assert ret == -EBUSY, ret
            return
        assert ret == 0, ret
        assert vm not in ref.vms
        ref.vms[vm] = {}
        ref.dead.discard(vm)
    elif kind == "vm_destroy":
        vm = pick(ref.vms, op[1])
        if vm is None:
            return
        assert await c.vm_destroy(vm) == 0
        for va in ref.vms.pop(vm):
            del ref.objs[(vm, va)]
        ref.dead.add(vm)
    elif kind == "bo_create":
        handle = await c.bo(op[1] * P)
        ref.bos[handle] = (c.file.object_idr[handle], op[1])
    elif kind == "gem_close":
        handle = pick(ref.bos, op[1])
        if handle is None:
            return
        assert await c.gem_close(handle) == 0
        del ref.bos[handle]
    elif kind == "map":
        _, vi, bi, bo_page, va_page, n, readonly, is_async = op
        vm, handle = pick(ref.vms, vi), pick(ref.bos, bi)
        if vm is None or handle is None:
            return
        pages = ref.bos[handle][1]
        bo_page %= pages
        n = min(n, pages - bo_page, VA_PAGES - va_page)
        flags = DRM_PANTHOR_VM_BIND_OP_MAP_READONLY if readonly else 0
        bop = drm_panthor_vm_bind_op(
            flags=flags, bo_handle=handle, bo_offset=bo_page * P, va=VA + va_page * P, size=n * P
        )
        assert await bind(c, ref, vm, bop, is_async) == 0
        for k in range(n):
            ref.vms[vm][VA + (va_page + k) * P] = (handle, bo_page + k, readonly)
            ref.objs[(vm, VA + (va_page + k) * P)] = ref.bos[handle][0]
        await check_edges(c, ref, vm, va_page, n)
    elif kind == "unmap":
        _, vi, va_page, n, is_async = op
        vm = pick(ref.vms, vi)
        if vm is None:
            return
        n = min(n, VA_PAGES - va_page)
        uop = drm_panthor_vm_bind_op(
            flags=DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP, va=VA + va_page * P, size=n * P
        )
        assert await bind(c, ref, vm, uop, is_async) == 0
        for k in range(n):
            ref.vms[vm].pop(VA + (va_page + k) * P, None)
            ref.objs.pop((vm, VA + (va_page + k) * P), None)
        await check_edges(c, ref, vm, va_page, n)
    elif kind in ("read", "write"):
        vm = pick(ref.vms, op[1])
        if vm is None:
            return
        off = op[3] if kind == "read" else 16
        await check_va(c, ref, vm, VA + op[2] * P + off, write=kind == "write")
    else:
        assert kind == "state"
        dead = pick(ref.dead, op[1]) if op[2] else None
        if dead is not None:
            assert (await c.vm_state(dead))[0] == -EINVAL
        else:
            vm = pick(ref.vms, op[1])
            if vm is not None:
                assert await c.vm_state(vm) == (0, DRM_PANTHOR_VM_STATE_USABLE)


async def check_edges(c: Ctx, ref: Ref, vm: int, va_page: int, n: int) -> None:
    """The first and last page of a bound range, and the pages just outside it."""
    for p in sorted({va_page - 1, va_page, va_page + n - 1, va_page + n}):
        await check_va(c, ref, vm, VA + p * P + 8)


async def invariant(c: Ctx, ref: Ref) -> None:
    for vm in sorted(ref.vms):
        assert await c.vm_state(vm) == (0, DRM_PANTHOR_VM_STATE_USABLE), vm
    for vm in sorted(ref.dead):
        assert (await c.vm_state(vm))[0] == -EINVAL, vm


def run_program(prog: list[Op]) -> None:
    done: list[int] = []

    async def body(cs: list[Ctx]) -> None:
        c = cs[0]
        ref = Ref()
        # A start state: one VM with one BO.
        await step(c, ref, ("vm_create",))
        await step(c, ref, ("bo_create", BO_PAGES))
        for op in prog:
            await step(c, ref, op)
            await invariant(c, ref)
            done.append(1)
        # Every page of every VM, once, at the end.
        for vm in sorted(ref.vms):
            for p in range(VA_PAGES):
                await check_va(c, ref, vm, VA + p * P)

    with installed(patch=FIXES):
        k = run_files(body)
    assert k.failures == [], failures_text(k.failures)
    assert len(done) == len(prog)
    Stats.steps += len(prog)


def _check(n_examples: int, min_ops: int, max_ops: int) -> None:
    @settings(
        max_examples=n_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(ops(), min_size=min_ops, max_size=max_ops))
    def machine(prog: list[Op]) -> None:
        run_program(prog)

    machine()


def test_ioctl_state_machine_fast() -> None:
    """25 programs of 10 to 40 ops."""
    Stats.steps = 0
    _check(25, 10, 40)
    assert Stats.steps >= 250


@pytest.mark.slow
def test_ioctl_state_machine_slow() -> None:
    """300 programs of 20 to 80 ops."""
    Stats.steps = 0
    Stats.kinds = {}
    _check(300, 20, 80)
    print(f"{Stats.steps} steps: {dict(sorted(Stats.kinds.items()))}")
    assert Stats.steps >= 300 * 20
