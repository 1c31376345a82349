"""Hypothesis generators of ioctl calls (mostly invalid, some valid) and their executor.

A generated call is plain, printable data (:class:`Call`): the command (by
name, possibly mangled: wrong size, direction, type, number, argument type),
which of the run's files issues it, and the argument as a :class:`S` tree
whose leaves are integers, run-time references (:class:`Ref`: "the file's
VM", "the other file's BO", "now + 1 ms", ...), user pointers (:class:`Ptr`)
and user arrays (:class:`Arr`, :class:`Words`). :func:`execute` turns a call
into the uAPI dataclass inside a running device (arrays are written into a
per-file scratch mapping reused by every call, so long programs stay under
``USER_MM_LIMIT``) and issues it through ``drm_ioctl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from hypothesis import strategies as st

from panthor_testbed.mmu import panthor_drm as u
from panthor_testbed.mmu.uaccess import USER_MMAP_BASE
from panthor_testbed.sched.errno import _NAMES

from .drv_fixture import Ctx, P

# Every errno the model knows, negated: what an ioctl may return besides 0.
ERRNOS: Final = frozenset(-e for e in _NAMES)

SCRATCH_SIZE: Final = 64 << 10
U32: Final = (1 << 32) - 1
U64: Final = (1 << 64) - 1

# ---------------------------------------------------------------- the call data


@dataclass(frozen=True)
class Ref:
    """A value known only inside the run: an object of the env, or ``now + add``."""

    name: str
    add: int = 0


@dataclass(frozen=True)
class Ptr:
    """A user pointer: ``null``, ``low`` (unmapped page 1), ``guard`` (just past the
    scratch mapping), ``kernel`` (a kernel address), ``top`` (near 2^64), or
    ``scratch`` + ``off``."""

    kind: str
    off: int = 0


@dataclass(frozen=True)
class S:
    """A uAPI struct by class name, with the fields given (the rest are 0)."""

    cls: str
    fields: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Arr:
    """A ``drm_panthor_obj_array`` of ``elems`` written ``stride`` apart (None: the
    struct size) into scratch, with ``count`` (None: len(elems)) and, unless
    ``ptr`` is given, the scratch address; ``tail`` pads a larger stride."""

    elems: tuple[S, ...]
    stride: int | None = None
    count: int | None = None
    ptr: Ptr | None = None
    tail: bytes = b""


@dataclass(frozen=True)
class Words:
    """A user array of ``width``-byte integers; the field gets its address (or ``ptr``)."""

    values: tuple[Any, ...]
    width: int
    ptr: Ptr | None = None


@dataclass(frozen=True)
class Call:
    """One ioctl: ``cmd`` by name, ``mangle`` of the command word, issuing ``file``, ``arg``."""

    cmd: str
    arg: S
    file: int = 0
    mangle: str = "none"


CMDS: Final[dict[str, tuple[int, type]]] = {
    "DEV_QUERY": (u.DRM_IOCTL_PANTHOR_DEV_QUERY, u.drm_panthor_dev_query),
    "VM_CREATE": (u.DRM_IOCTL_PANTHOR_VM_CREATE, u.drm_panthor_vm_create),
    "VM_DESTROY": (u.DRM_IOCTL_PANTHOR_VM_DESTROY, u.drm_panthor_vm_destroy),
    "VM_BIND": (u.DRM_IOCTL_PANTHOR_VM_BIND, u.drm_panthor_vm_bind),
    "VM_GET_STATE": (u.DRM_IOCTL_PANTHOR_VM_GET_STATE, u.drm_panthor_vm_get_state),
    "BO_CREATE": (u.DRM_IOCTL_PANTHOR_BO_CREATE, u.drm_panthor_bo_create),
    "BO_MMAP_OFFSET": (u.DRM_IOCTL_PANTHOR_BO_MMAP_OFFSET, u.drm_panthor_bo_mmap_offset),
    "GROUP_CREATE": (u.DRM_IOCTL_PANTHOR_GROUP_CREATE, u.drm_panthor_group_create),
    "GROUP_DESTROY": (u.DRM_IOCTL_PANTHOR_GROUP_DESTROY, u.drm_panthor_group_destroy),
    "GROUP_SUBMIT": (u.DRM_IOCTL_PANTHOR_GROUP_SUBMIT, u.drm_panthor_group_submit),
    "GROUP_GET_STATE": (u.DRM_IOCTL_PANTHOR_GROUP_GET_STATE, u.drm_panthor_group_get_state),
    "TILER_HEAP_CREATE": (
        u.DRM_IOCTL_PANTHOR_TILER_HEAP_CREATE,
        u.drm_panthor_tiler_heap_create,
    ),
    "TILER_HEAP_DESTROY": (
        u.DRM_IOCTL_PANTHOR_TILER_HEAP_DESTROY,
        u.drm_panthor_tiler_heap_destroy,
    ),
    "GEM_CLOSE": (u.DRM_IOCTL_GEM_CLOSE, u.drm_gem_close),
    "SYNCOBJ_CREATE": (u.DRM_IOCTL_SYNCOBJ_CREATE, u.drm_syncobj_create),
    "SYNCOBJ_DESTROY": (u.DRM_IOCTL_SYNCOBJ_DESTROY, u.drm_syncobj_destroy),
    "SYNCOBJ_TIMELINE_WAIT": (u.DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT, u.drm_syncobj_timeline_wait),
}

# ---------------------------------------------------------------- the run-time side


@dataclass
class Env:
    """One file's objects the calls refer to, and its scratch user memory."""

    c: Ctx
    refs: dict[str, int]
    scratch: int
    used: int = 0
    other: Env | None = None
    log: list[tuple[Call, Any, int]] = field(default_factory=list)  # (call, built arg, ret)


async def make_env(c: Ctx) -> Env:
    """A VM, a second VM, a 16-page BO, a 1-page BO, a BO private to the VM, a
    destroyed VM's id, a binary syncobj, a signalled one and a timeline one."""
    vm = await c.vm()
    vm2 = await c.vm()
    dead = await c.vm()
    assert await c.vm_destroy(dead) == 0
    refs = {
        "vm": vm,
        "vm2": vm2,
        "dead_vm": dead,
        "bo": await c.bo(16 * P),
        "bo1": await c.bo(P),
        "bo_excl": await c.bo(4 * P, exclusive_vm_id=vm),
        "sync": await c.syncobj(),
        "sync_sig": await c.syncobj(u.DRM_SYNCOBJ_CREATE_SIGNALED),
        "tl": await c.syncobj(),
    }
    return Env(c, refs, c.mm.mmap(SCRATCH_SIZE))


def _alloc(e: Env, n: int) -> int:
    """``n`` bytes of scratch (8-aligned); past the end it wraps to the start."""
    n = max(8, (n + 7) & ~7)
    if e.used + n > SCRATCH_SIZE:
        e.used = 0
    addr = e.scratch + e.used
    e.used += n
    return addr


def _ptr(e: Env, p: Ptr) -> int:
    if p.kind == "null":
        return 0
    if p.kind == "low":
        return 0x1000 + p.off
    if p.kind == "guard":
        return e.scratch + SCRATCH_SIZE + p.off
    if p.kind == "kernel":
        return 0xFFFF_8000_0000_0000 + p.off
    if p.kind == "top":
        return (U64 - 7 - p.off) & U64
    if p.kind == "below":
        return USER_MMAP_BASE - 8 + p.off
    assert p.kind == "scratch", p
    return e.scratch + (p.off % SCRATCH_SIZE)


def _ref(e: Env, r: Ref) -> int:
    if r.name == "now":
        return e.c.k.now + r.add
    env = e
    name = r.name
    if name.startswith("other."):
        assert e.other is not None
        env, name = e.other, name[len("other.") :]
    if name == "heap":  # a tiler heap handle of the VM (heap index 0)
        return (env.refs["vm"] << 16) + r.add
    return env.refs[name] + r.add


def _value(e: Env, v: Any) -> Any:
    if isinstance(v, int):
        return v
    if isinstance(v, Ref):
        return _ref(e, v)
    if isinstance(v, Ptr):
        return _ptr(e, v)
    if isinstance(v, Words):
        if v.ptr is not None:
            return _ptr(e, v.ptr)
        data = b"".join(
            (int(_value(e, x)) & ((1 << (8 * v.width)) - 1)).to_bytes(v.width, "little")
            for x in v.values
        )
        addr = _alloc(e, len(data))
        e.c.mm.write(addr, data)
        return addr
    if isinstance(v, Arr):
        objs = [build(e, s) for s in v.elems]
        count = len(objs) if v.count is None else v.count
        if not objs:
            addr = _ptr(e, v.ptr) if v.ptr is not None else 0
            return u.drm_panthor_obj_array(stride=v.stride or 0, count=count, array=addr)
        raw = [u.uapi_to_bytes(o) for o in objs]
        assert all(r is not None for r in raw)
        size = len(raw[0] or b"")
        stride = size if v.stride is None else v.stride
        addr = _alloc(e, max(1, stride * len(objs)))
        for i, blob in enumerate(raw):
            elem = ((blob or b"") + v.tail)[:stride].ljust(stride, b"\0")
            e.c.mm.write(addr + i * stride, elem)
        if v.ptr is not None:
            addr = _ptr(e, v.ptr)
        return u.drm_panthor_obj_array(stride=stride, count=count, array=addr)
    if isinstance(v, S):
        return build(e, v)
    raise TypeError(v)


def build(e: Env, s: S) -> Any:
    """The uAPI dataclass ``s`` describes, its pointers and arrays resolved in ``e``."""
    cls = getattr(u, s.cls)
    obj = cls()
    for name, v in s.fields:
        setattr(obj, name, _value(e, v))
    return obj


def command(c: Call) -> int:
    """The command word: the right one, or a mangled one."""
    cmd, _cls = CMDS[c.cmd]
    m = c.mangle
    if m == "none":
        return cmd
    if m == "size-short":
        return (cmd & ~(0x3FFF << 16)) | ((max(0, u._IOC_SIZE(cmd) - 8)) << 16)
    if m == "size-long":
        return (cmd & ~(0x3FFF << 16)) | ((u._IOC_SIZE(cmd) + 8) << 16)
    if m == "size-zero":
        return cmd & ~(0x3FFF << 16)
    if m == "dir-none":
        return cmd & ~(3 << 30)
    if m == "dir-write":
        return cmd & ~u.IOC_OUT
    if m == "dir-read":
        return cmd & ~u.IOC_IN
    if m == "type":
        return (cmd & ~(0xFF << 8)) | (ord("x") << 8)
    if m == "nr-unknown":
        return (cmd & ~0xFF) | (u.DRM_COMMAND_BASE + 13)
    if m == "nr-core":
        return (cmd & ~0xFF) | 0x30
    if m == "high-bits":
        return cmd | (1 << 40)
    assert m == "arg-type", m
    return cmd


async def execute(e: Env, call: Call) -> int:
    """Issue ``call`` on ``e``'s file; the return value."""
    e.used = 0
    e.c.mm.write(e.scratch, bytes(SCRATCH_SIZE))
    arg = build(e, call.arg)
    if call.mangle == "arg-type":
        arg = u.drm_panthor_vm_destroy() if call.cmd != "VM_DESTROY" else u.drm_gem_close()
    ret = await e.c.ioctl(command(call), arg)
    e.log.append((call, arg, ret))
    return ret


# ---------------------------------------------------------------- strategies

PAGE_MULTS: Final = st.sampled_from([P, 2 * P, 4 * P, 16 * P, 17 * P, 2 << 20, 4 << 20])
ODD_INTS: Final = st.sampled_from(
    [1, 7, P - 1, P + 1, 1 << 31, U32, 1 << 32, 1 << 47, 1 << 48, 1 << 63, U64, U64 - P + 1]
)


def ids(*refs: str) -> st.SearchStrategy[Any]:
    """An object id: a reference (own or the other file's), a small int, or an odd one."""
    names = list(refs) + [f"other.{r}" for r in refs]
    return st.one_of(
        st.sampled_from(names).map(Ref),
        st.integers(0, 40),
        st.sampled_from([U32, 1 << 31, 0x10000, 33]),
    )


def sizes() -> st.SearchStrategy[int]:
    return st.one_of(st.just(0), PAGE_MULTS, ODD_INTS, st.integers(0, 1 << 24))


def vas() -> st.SearchStrategy[int]:
    base = st.sampled_from([0x100000, 0x4000_0000, 0x20_0000, 0x1_0000_0000])
    return st.one_of(
        st.just(0),
        st.builds(lambda b, i: b + i * P, base, st.integers(0, 32)),
        ODD_INTS,
        st.integers(0, U64),
        st.sampled_from([(1 << 47) - P, 1 << 47, (1 << 48) - P, U64 - P + 1]),
    )


def flags(known: int) -> st.SearchStrategy[int]:
    """Flags: valid ones, one bad bit, or anything 32-bit."""
    return st.one_of(
        st.integers(0, known),
        st.integers(0, 31).map(lambda b: 1 << b),
        st.integers(0, U32),
    )


def pads() -> st.SearchStrategy[int]:
    return st.one_of(st.just(0), st.just(0), st.integers(1, U32))


def ptrs() -> st.SearchStrategy[Ptr]:
    return st.one_of(
        st.sampled_from(["null", "low", "guard", "kernel", "top", "below"]).map(Ptr),
        st.integers(0, SCRATCH_SIZE - 1).map(lambda o: Ptr("scratch", o)),
        st.sampled_from([0, 8, P - 8, SCRATCH_SIZE - 16, SCRATCH_SIZE - 4]).map(
            lambda o: Ptr("scratch", o)
        ),
    )


def maybe_ptr() -> st.SearchStrategy[Ptr | None]:
    """Mostly the array's own address; sometimes a bad pointer."""
    return st.one_of(st.none(), st.none(), st.none(), ptrs())


def strides(size: int) -> st.SearchStrategy[int | None]:
    return st.one_of(
        st.none(),
        st.none(),
        st.sampled_from([0, 1, 8, size - 8, size - 1, size + 1, size + 8, 2 * size]),
        st.integers(0, 256),
    )


def counts() -> st.SearchStrategy[int | None]:
    return st.one_of(
        st.none(),
        st.none(),
        st.none(),
        st.integers(0, 4),
        st.sampled_from([64, 1000, 1 << 20, 0x3000000, U32]),
    )


def tails() -> st.SearchStrategy[bytes]:
    return st.one_of(st.just(b""), st.just(b""), st.binary(min_size=1, max_size=8))


def arrays(elem: st.SearchStrategy[S], size: int, max_elems: int = 3) -> st.SearchStrategy[Arr]:
    return st.builds(
        Arr,
        elems=st.lists(elem, max_size=max_elems).map(tuple),
        stride=strides(size),
        count=counts(),
        ptr=maybe_ptr(),
        tail=tails(),
    )


def struct(cls: str, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[S]:
    names = sorted(fields)
    return st.tuples(*(fields[n] for n in names)).map(
        lambda vals: S(cls, tuple(zip(names, vals, strict=True)))
    )


SIG: Final = u.DRM_PANTHOR_SYNC_OP_SIGNAL
TL: Final = u.DRM_PANTHOR_SYNC_OP_HANDLE_TYPE_TIMELINE_SYNCOBJ
OP_TYPES: Final = [
    u.DRM_PANTHOR_VM_BIND_OP_TYPE_MAP,
    u.DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP,
    u.DRM_PANTHOR_VM_BIND_OP_TYPE_SYNC_ONLY,
    3 << 28,
    0xF << 28,
]


def sync_ops() -> st.SearchStrategy[S]:
    return struct(
        "drm_panthor_sync_op",
        flags=st.one_of(
            st.sampled_from([0, SIG, TL, SIG | TL]), flags(SIG | 0xFF).map(lambda f: f | SIG)
        ),
        handle=ids("sync", "sync_sig", "tl"),
        timeline_value=st.one_of(st.just(0), st.integers(1, 5), st.just(U64)),
    )


def bind_ops() -> st.SearchStrategy[S]:
    op_flags = st.one_of(
        st.builds(
            lambda t, m: t | m,
            st.sampled_from(OP_TYPES),
            st.integers(0, 7),
        ),
        flags(7),
    )
    return struct(
        "drm_panthor_vm_bind_op",
        flags=op_flags,
        bo_handle=st.one_of(st.just(0), ids("bo", "bo1", "bo_excl")),
        bo_offset=st.one_of(st.just(0), st.integers(0, 17).map(lambda i: i * P), ODD_INTS),
        va=vas(),
        size=sizes(),
        syncs=st.one_of(
            st.just(Arr(())),
            st.just(Arr(())),
            arrays(sync_ops(), 16),
        ),
    )


def _vm_bind() -> st.SearchStrategy[S]:
    return struct(
        "drm_panthor_vm_bind",
        vm_id=ids("vm", "vm2", "dead_vm"),
        flags=st.one_of(st.sampled_from([0, u.DRM_PANTHOR_VM_BIND_ASYNC]), flags(1)),
        ops=arrays(bind_ops(), 48, max_elems=4),
    )


def _timeline_wait() -> st.SearchStrategy[S]:
    handles = st.lists(ids("sync", "sync_sig", "tl"), max_size=3).map(tuple)
    return struct(
        "drm_syncobj_timeline_wait",
        handles=st.builds(Words, handles, st.just(4), st.one_of(st.none(), st.none(), ptrs())),
        points=st.one_of(
            st.just(0),
            st.builds(
                Words,
                st.lists(st.integers(0, 5), max_size=3).map(tuple),
                st.just(8),
                st.one_of(st.none(), st.none(), ptrs()),
            ),
        ),
        # An __s64: negative is an already expired deadline.
        timeout_nsec=st.one_of(
            st.sampled_from([0, 1, 1 << 62, -1, -(1 << 63)]),
            st.sampled_from([0, 1000, 10**6, 10**9]).map(lambda a: Ref("now", a)),
        ),
        count_handles=st.one_of(st.integers(0, 4), st.just(1 << 20), st.just(U32)),
        # WAIT_ALL (1), WAIT_FOR_SUBMIT (2: waits for a fence until the deadline), bad bits.
        flags=st.one_of(st.integers(0, 3), flags(3)),
        pad=pads(),
    )


def _group_create() -> st.SearchStrategy[S]:
    queue = struct(
        "drm_panthor_queue_create",
        priority=st.integers(0, 20),
        ringbuf_size=st.sampled_from([0, 4096, 4095, 1 << 16, 1 << 30]),
    )
    return struct(
        "drm_panthor_group_create",
        queues=arrays(queue, 8, max_elems=2),
        max_compute_cores=st.integers(0, 255),
        max_fragment_cores=st.integers(0, 255),
        max_tiler_cores=st.integers(0, 255),
        priority=st.integers(0, 5),
        pad=pads(),
        compute_core_mask=st.sampled_from([0, 1, 3, U64]),
        fragment_core_mask=st.sampled_from([0, 1, 3, U64]),
        tiler_core_mask=st.sampled_from([0, 1, 3, U64]),
        vm_id=ids("vm", "vm2", "dead_vm"),
    )


def _group_create_valid() -> st.SearchStrategy[S]:
    queue = struct(
        "drm_panthor_queue_create",
        priority=st.integers(0, 1),
        ringbuf_size=st.sampled_from([4096, 8192]),
    )
    one = st.integers(0, 2)
    return struct(
        "drm_panthor_group_create",
        queues=st.lists(queue, min_size=1, max_size=2).map(lambda q: Arr(tuple(q))),
        max_compute_cores=one,
        max_fragment_cores=one,
        max_tiler_cores=one,
        priority=st.integers(0, 3),
        compute_core_mask=st.sampled_from([1, 3]),
        fragment_core_mask=st.sampled_from([1, 3]),
        tiler_core_mask=st.sampled_from([1, 3]),
        vm_id=ids("vm", "vm2"),
    )


def _group_submit() -> st.SearchStrategy[S]:
    qsubmit = struct(
        "drm_panthor_queue_submit",
        queue_index=st.integers(0, 3),
        stream_size=st.sampled_from([0, 8, 16, 7]),
        stream_addr=vas(),
        latest_flush=st.integers(0, 3),
        pad=pads(),
        syncs=st.one_of(st.just(Arr(())), arrays(sync_ops(), 16)),
    )
    return struct(
        "drm_panthor_group_submit",
        group_handle=st.integers(0, 4),
        pad=pads(),
        queue_submits=arrays(qsubmit, 40, max_elems=2),
    )


def arg_for(cmd: str) -> st.SearchStrategy[S]:
    """The argument strategy of one command."""
    if cmd == "DEV_QUERY":
        return struct(
            "drm_panthor_dev_query",
            type=st.one_of(st.integers(0, 4), st.integers(0, U32)),
            size=st.one_of(st.sampled_from([0, 4, 8, 24, 95, 96, 104, 112, 4104]), sizes()),
            pointer=ptrs(),
        )
    if cmd == "VM_CREATE":
        return struct(
            "drm_panthor_vm_create",
            flags=st.one_of(st.just(0), flags(0)),
            id=st.integers(0, 40),
            user_va_range=st.one_of(
                st.just(0), st.sampled_from([P, 1 << 32, 1 << 47, 1 << 48]), ODD_INTS
            ),
        )
    if cmd == "VM_DESTROY":
        return struct("drm_panthor_vm_destroy", id=ids("vm", "vm2", "dead_vm"), pad=pads())
    if cmd == "VM_BIND":
        return _vm_bind()
    if cmd == "VM_GET_STATE":
        return struct(
            "drm_panthor_vm_get_state", vm_id=ids("vm", "vm2", "dead_vm"), state=st.integers(0, 3)
        )
    if cmd == "BO_CREATE":
        return struct(
            "drm_panthor_bo_create",
            size=st.one_of(
                st.just(0), PAGE_MULTS, st.integers(1, 1 << 22), st.sampled_from([1 << 63, U64])
            ),
            flags=st.one_of(st.just(0), st.integers(0, 1), flags(1)),
            exclusive_vm_id=st.one_of(st.just(0), st.just(0), ids("vm", "vm2", "dead_vm")),
            handle=st.integers(0, 40),
            pad=pads(),
        )
    if cmd == "BO_MMAP_OFFSET":
        return struct(
            "drm_panthor_bo_mmap_offset",
            handle=ids("bo", "bo1", "bo_excl"),
            pad=pads(),
            offset=st.integers(0, U64),
        )
    if cmd == "GROUP_CREATE":
        return st.one_of(_group_create(), _group_create_valid())
    if cmd == "GROUP_DESTROY":
        return struct("drm_panthor_group_destroy", group_handle=st.integers(0, 4), pad=pads())
    if cmd == "GROUP_SUBMIT":
        return _group_submit()
    if cmd == "GROUP_GET_STATE":
        return struct(
            "drm_panthor_group_get_state",
            group_handle=st.integers(0, 4),
            state=st.integers(0, 3),
            fatal_queues=st.integers(0, 3),
            pad=pads(),
        )
    if cmd == "TILER_HEAP_CREATE":
        valid = struct(
            "drm_panthor_tiler_heap_create",
            vm_id=ids("vm", "vm2"),
            initial_chunk_count=st.integers(1, 2),
            chunk_size=st.just(128 << 10),
            max_chunks=st.integers(2, 4),
            target_in_flight=st.integers(0, 4),
        )
        return valid | struct(
            "drm_panthor_tiler_heap_create",
            vm_id=ids("vm", "vm2", "dead_vm"),
            initial_chunk_count=st.integers(0, 5),
            chunk_size=st.sampled_from(
                [0, 64 << 10, 128 << 10, (128 << 10) + 1, 8 << 20, 16 << 20]
            ),
            max_chunks=st.integers(0, 5),
            target_in_flight=st.integers(0, 70000),
        )
    if cmd == "TILER_HEAP_DESTROY":
        return struct(
            "drm_panthor_tiler_heap_destroy",
            handle=st.one_of(st.integers(0, 3).map(lambda i: Ref("heap", i)), st.integers(0, U32)),
            pad=pads(),
        )
    if cmd == "GEM_CLOSE":
        return struct("drm_gem_close", handle=ids("bo", "bo1", "bo_excl"), pad=pads())
    if cmd == "SYNCOBJ_CREATE":
        return struct(
            "drm_syncobj_create",
            handle=st.integers(0, 40),
            flags=st.one_of(st.integers(0, 1), flags(1)),
        )
    if cmd == "SYNCOBJ_DESTROY":
        return struct("drm_syncobj_destroy", handle=ids("sync", "sync_sig", "tl"), pad=pads())
    assert cmd == "SYNCOBJ_TIMELINE_WAIT", cmd
    return _timeline_wait()


def _valid_bind() -> st.SearchStrategy[S]:
    """A VM_BIND of page-aligned MAP/UNMAP ops inside the 16-page BO, sync or async."""
    page = st.integers(0, 15)

    def op(kind: int, off: int, va: int, n: int, sig: bool) -> S:
        n = min(n, 16 - off)
        fields: list[tuple[str, Any]] = [
            ("flags", u.DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP if kind else 0),
            ("va", 0x100000 + va * P),
            ("size", n * P),
        ]
        if not kind:
            fields += [("bo_handle", Ref("bo")), ("bo_offset", off * P)]
        if sig:
            sync = S("drm_panthor_sync_op", (("flags", SIG), ("handle", Ref("sync"))))
            fields.append(("syncs", Arr((sync,))))
        return S("drm_panthor_vm_bind_op", tuple(fields))

    def bind(vm: Ref, asyn: bool, ops: list[S]) -> S:
        return S(
            "drm_panthor_vm_bind",
            (("vm_id", vm), ("flags", int(asyn)), ("ops", Arr(tuple(ops)))),
        )

    return st.booleans().flatmap(
        lambda asyn: st.builds(
            bind,
            st.sampled_from([Ref("vm"), Ref("vm2")]),
            st.just(asyn),
            st.lists(
                st.builds(op, st.integers(0, 1), page, page, st.integers(1, 16), st.just(asyn)),
                min_size=1,
                max_size=3,
            ),
        )
    )


def valid_arg_for(cmd: str) -> st.SearchStrategy[S] | None:
    """A strategy of arguments the ioctl should accept, for the commands that make things."""
    if cmd == "VM_BIND":
        return _valid_bind()
    if cmd == "VM_CREATE":
        return st.just(S("drm_panthor_vm_create"))
    if cmd == "BO_CREATE":
        return struct(
            "drm_panthor_bo_create",
            size=st.one_of(PAGE_MULTS, st.integers(1, 1 << 20)),
            flags=st.integers(0, 1),
            exclusive_vm_id=st.sampled_from([0, 0, Ref("vm")]),
        )
    if cmd == "SYNCOBJ_CREATE":
        return struct("drm_syncobj_create", flags=st.integers(0, 1))
    if cmd == "GROUP_CREATE":
        return _group_create_valid()
    if cmd == "TILER_HEAP_CREATE":
        return arg_for(cmd)
    return None


MANGLES: Final = [
    "size-short",
    "size-long",
    "size-zero",
    "dir-none",
    "dir-write",
    "dir-read",
    "type",
    "nr-unknown",
    "nr-core",
    "high-bits",
    "arg-type",
]

# VM_BIND is drawn most: it is the most involved argument.
_WEIGHTED: Final = sorted(CMDS) + ["VM_BIND"] * 6 + ["VM_CREATE", "BO_CREATE"]


@st.composite
def calls(draw: st.DrawFn, nfiles: int = 2) -> Call:
    """One ioctl call: a command, its argument, the issuing file, a rare mangling."""
    cmd = draw(st.sampled_from(_WEIGHTED))
    valid = valid_arg_for(cmd)
    arg = draw(valid if valid is not None and draw(st.integers(0, 2)) == 0 else arg_for(cmd))
    mangle = draw(
        st.one_of(st.just("none"), st.just("none"), st.just("none"), st.sampled_from(MANGLES))
    )
    mangle = mangle if draw(st.integers(0, 3)) == 0 else "none"
    return Call(cmd, arg, draw(st.integers(0, nfiles - 1)), mangle)
