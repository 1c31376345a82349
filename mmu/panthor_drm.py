"""The uAPI of include/uapi/drm/panthor_drm.h (v6.15) and the DRM core structs panthor uses.

Structures are dataclasses named as the header names them. Each carries its C
layout (``_layout_``: field name and ``struct`` code, or a nested struct), so
a struct can live in fake user memory as the bytes user space would put there
(:func:`uapi_to_bytes` / :func:`uapi_from_bytes`), and ``_last_mandatory_``,
the last field the struct had when it entered the uAPI (what
``PANTHOR_UOBJ_DECL()`` names, giving ``PANTHOR_UOBJ_MIN_SIZE()``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final, TypeVar

Layout = tuple[tuple[str, Any], ...]

T = TypeVar("T")

# ---------------------------------------------------------------- layouts


def _layout(cls: type) -> Layout:
    layout: Layout = getattr(cls, "_layout_")  # noqa: B009
    return layout


def _fmt(layout: Layout) -> str:
    out = ""
    for _name, code in layout:
        out += _fmt(_layout(code)) if isinstance(code, type) else code
    return out


def uapi_sizeof(cls: type) -> int:
    """``sizeof(struct ...)``."""
    return struct.calcsize("<" + _fmt(cls._layout_))  # type: ignore[attr-defined]


def uapi_min_size(cls: type) -> int:
    """``PANTHOR_UOBJ_MIN_SIZE()``: offset of the last mandatory field plus its size."""
    size = 0
    for name, code in cls._layout_:  # type: ignore[attr-defined]
        size += uapi_sizeof(code) if isinstance(code, type) else struct.calcsize("<" + code)
        if name == cls._last_mandatory_:  # type: ignore[attr-defined]
            return size
    raise AssertionError(f"{cls.__name__}: no field {cls._last_mandatory_}")  # type: ignore[attr-defined]


def _flatten(obj: Any, layout: Layout, out: list[int]) -> bool:
    for name, code in layout:
        value = getattr(obj, name)
        if isinstance(code, type):
            if not isinstance(value, code):
                return False
            if not _flatten(value, _layout(code), out):
                return False
            continue
        width = struct.calcsize("<" + code[-1]) * 8
        n = int(code[:-1]) if len(code) > 1 else 1
        values = value if n > 1 else [value]
        if not isinstance(values, list | tuple) or len(values) != n:
            return False
        signed = code[-1].islower()
        for v in values:
            if type(v) is not int and type(v) is not bool:
                return False
            u = int(v) & ((1 << width) - 1)
            # A signed field (__s32/__s64) keeps its two's-complement value.
            out.append(u - (1 << width) if signed and u >> (width - 1) else u)
    return True


def uapi_to_bytes(obj: Any) -> bytes | None:
    """The bytes of ``obj`` as C lays them out (each value truncated to its field's
    width, as storing it in a ``__u32``/``__u64`` does); None if a field does not
    hold an integer (nothing a C struct could contain)."""
    values: list[int] = []
    if not _flatten(obj, _layout(type(obj)), values):
        return None
    return struct.pack("<" + _fmt(_layout(type(obj))), *values)


def _build(cls: type, it: Any) -> Any:
    kw: dict[str, Any] = {}
    for name, code in cls._layout_:  # type: ignore[attr-defined]
        if isinstance(code, type):
            kw[name] = _build(code, it)
            continue
        n = int(code[:-1]) if len(code) > 1 else 1
        kw[name] = [next(it) for _ in range(n)] if n > 1 else next(it)
    return cls(**kw)


def uapi_from_bytes(cls: type[T], data: bytes) -> T:
    """A struct read from ``sizeof(cls)`` bytes."""
    values = struct.unpack("<" + _fmt(cls._layout_), data)  # type: ignore[attr-defined]
    return _build(cls, iter(values))  # type: ignore[no-any-return]


def uapi_copy_into(dst: Any, src: Any) -> None:
    """Overwrite every layout field of ``dst`` with ``src``'s (model-only fields stay)."""
    for f in fields(dst):
        if any(name == f.name for name, _ in type(dst)._layout_):
            setattr(dst, f.name, getattr(src, f.name))


# ---------------------------------------------------------------- ioctl numbers (drm.h)

DRM_IOCTL_BASE: Final = ord("d")
DRM_COMMAND_BASE: Final = 0x40
DRM_COMMAND_END: Final = 0xA0
_IOC_WRITE: Final = 1
_IOC_READ: Final = 2


def _IOC(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (DRM_IOCTL_BASE << 8) | nr


def DRM_IOWR(nr: int, cls: type) -> int:
    """``DRM_IOWR(nr, type)``."""
    return _IOC(_IOC_READ | _IOC_WRITE, nr, uapi_sizeof(cls))


def DRM_IOW(nr: int, cls: type) -> int:
    """``DRM_IOW(nr, type)``."""
    return _IOC(_IOC_WRITE, nr, uapi_sizeof(cls))


def DRM_IOCTL_NR(cmd: int) -> int:
    return cmd & 0xFF


def DRM_IOCTL_TYPE(cmd: int) -> int:
    return (cmd >> 8) & 0xFF


def _IOC_SIZE(cmd: int) -> int:
    return (cmd >> 16) & 0x3FFF


def _IOC_DIR(cmd: int) -> int:
    return (cmd >> 30) & 3


IOC_IN: Final = _IOC_WRITE << 30
IOC_OUT: Final = _IOC_READ << 30

# ---------------------------------------------------------------- panthor uAPI

DRM_PANTHOR_DEV_QUERY: Final = 0x00
DRM_PANTHOR_VM_CREATE: Final = 0x01
DRM_PANTHOR_VM_DESTROY: Final = 0x02
DRM_PANTHOR_VM_BIND: Final = 0x03
DRM_PANTHOR_VM_GET_STATE: Final = 0x04
DRM_PANTHOR_BO_CREATE: Final = 0x05
DRM_PANTHOR_BO_MMAP_OFFSET: Final = 0x06
DRM_PANTHOR_GROUP_CREATE: Final = 0x07
DRM_PANTHOR_GROUP_DESTROY: Final = 0x08
DRM_PANTHOR_GROUP_SUBMIT: Final = 0x09
DRM_PANTHOR_GROUP_GET_STATE: Final = 0x0A
DRM_PANTHOR_TILER_HEAP_CREATE: Final = 0x0B
DRM_PANTHOR_TILER_HEAP_DESTROY: Final = 0x0C

DRM_PANTHOR_VM_BIND_OP_MAP_READONLY: Final = 1 << 0
DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC: Final = 1 << 1
DRM_PANTHOR_VM_BIND_OP_MAP_UNCACHED: Final = 1 << 2
DRM_PANTHOR_VM_BIND_OP_TYPE_MASK: Final = 0xF << 28
DRM_PANTHOR_VM_BIND_OP_TYPE_MAP: Final = 0 << 28
DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP: Final = 1 << 28
DRM_PANTHOR_VM_BIND_OP_TYPE_SYNC_ONLY: Final = 2 << 28

DRM_PANTHOR_VM_BIND_ASYNC: Final = 1 << 0

DRM_PANTHOR_BO_NO_MMAP: Final = 1 << 0

DRM_PANTHOR_SYNC_OP_HANDLE_TYPE_MASK: Final = 0xFF
DRM_PANTHOR_SYNC_OP_HANDLE_TYPE_SYNCOBJ: Final = 0
DRM_PANTHOR_SYNC_OP_HANDLE_TYPE_TIMELINE_SYNCOBJ: Final = 1
DRM_PANTHOR_SYNC_OP_WAIT: Final = 0 << 31
DRM_PANTHOR_SYNC_OP_SIGNAL: Final = 1 << 31

DRM_PANTHOR_DEV_QUERY_GPU_INFO: Final = 0
DRM_PANTHOR_DEV_QUERY_CSIF_INFO: Final = 1
DRM_PANTHOR_DEV_QUERY_TIMESTAMP_INFO: Final = 2
DRM_PANTHOR_DEV_QUERY_GROUP_PRIORITIES_INFO: Final = 3

DRM_PANTHOR_VM_STATE_USABLE: Final = 0
DRM_PANTHOR_VM_STATE_UNUSABLE: Final = 1


@dataclass
class drm_panthor_obj_array:
    """``struct drm_panthor_obj_array``: ``count`` elements of ``stride`` bytes at ``array``."""

    stride: int = 0
    count: int = 0
    array: int = 0

    _layout_: ClassVar[Layout] = (("stride", "I"), ("count", "I"), ("array", "Q"))
    _last_mandatory_: ClassVar[str] = "array"


@dataclass
class drm_panthor_sync_op:
    """``struct drm_panthor_sync_op``."""

    flags: int = 0
    handle: int = 0
    timeline_value: int = 0

    _layout_: ClassVar[Layout] = (("flags", "I"), ("handle", "I"), ("timeline_value", "Q"))
    _last_mandatory_: ClassVar[str] = "timeline_value"


@dataclass
class drm_panthor_gpu_info:
    """``struct drm_panthor_gpu_info`` (v6.15: with ``pad0`` before ``shader_present``)."""

    gpu_id: int = 0
    gpu_rev: int = 0
    csf_id: int = 0
    l2_features: int = 0
    tiler_features: int = 0
    mem_features: int = 0
    mmu_features: int = 0
    thread_features: int = 0
    max_threads: int = 0
    thread_max_workgroup_size: int = 0
    thread_max_barrier_size: int = 0
    coherency_features: int = 0
    texture_features: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    as_present: int = 0
    pad0: int = 0
    shader_present: int = 0
    l2_present: int = 0
    tiler_present: int = 0
    core_features: int = 0
    pad: int = 0

    _layout_: ClassVar[Layout] = (
        ("gpu_id", "I"),
        ("gpu_rev", "I"),
        ("csf_id", "I"),
        ("l2_features", "I"),
        ("tiler_features", "I"),
        ("mem_features", "I"),
        ("mmu_features", "I"),
        ("thread_features", "I"),
        ("max_threads", "I"),
        ("thread_max_workgroup_size", "I"),
        ("thread_max_barrier_size", "I"),
        ("coherency_features", "I"),
        ("texture_features", "4I"),
        ("as_present", "I"),
        ("pad0", "I"),
        ("shader_present", "Q"),
        ("l2_present", "Q"),
        ("tiler_present", "Q"),
        ("core_features", "I"),
        ("pad", "I"),
    )
    _last_mandatory_: ClassVar[str] = "tiler_present"


@dataclass
class drm_panthor_csif_info:
    """``struct drm_panthor_csif_info``."""

    csg_slot_count: int = 0
    cs_slot_count: int = 0
    cs_reg_count: int = 0
    scoreboard_slot_count: int = 0
    unpreserved_cs_reg_count: int = 0
    pad: int = 0

    _layout_: ClassVar[Layout] = (
        ("csg_slot_count", "I"),
        ("cs_slot_count", "I"),
        ("cs_reg_count", "I"),
        ("scoreboard_slot_count", "I"),
        ("unpreserved_cs_reg_count", "I"),
        ("pad", "I"),
    )
    _last_mandatory_: ClassVar[str] = "pad"


@dataclass
class drm_panthor_timestamp_info:
    """``struct drm_panthor_timestamp_info``."""

    timestamp_frequency: int = 0
    current_timestamp: int = 0
    timestamp_offset: int = 0

    _layout_: ClassVar[Layout] = (
        ("timestamp_frequency", "Q"),
        ("current_timestamp", "Q"),
        ("timestamp_offset", "Q"),
    )
    _last_mandatory_: ClassVar[str] = "current_timestamp"


@dataclass
class drm_panthor_group_priorities_info:
    """``struct drm_panthor_group_priorities_info``."""

    allowed_mask: int = 0
    pad: list[int] = field(default_factory=lambda: [0, 0, 0])

    _layout_: ClassVar[Layout] = (("allowed_mask", "B"), ("pad", "3B"))
    _last_mandatory_: ClassVar[str] = "pad"


@dataclass
class drm_panthor_dev_query:
    """``struct drm_panthor_dev_query``."""

    type: int = 0
    size: int = 0
    pointer: int = 0

    _layout_: ClassVar[Layout] = (("type", "I"), ("size", "I"), ("pointer", "Q"))


@dataclass
class drm_panthor_vm_create:
    """``struct drm_panthor_vm_create``."""

    flags: int = 0
    id: int = 0
    user_va_range: int = 0

    _layout_: ClassVar[Layout] = (("flags", "I"), ("id", "I"), ("user_va_range", "Q"))


@dataclass
class drm_panthor_vm_destroy:
    """``struct drm_panthor_vm_destroy``."""

    id: int = 0
    pad: int = 0

    _layout_: ClassVar[Layout] = (("id", "I"), ("pad", "I"))


@dataclass
class drm_panthor_vm_bind_op:
    """``struct drm_panthor_vm_bind_op``."""

    flags: int = 0
    bo_handle: int = 0
    bo_offset: int = 0
    va: int = 0
    size: int = 0
    syncs: drm_panthor_obj_array = field(default_factory=drm_panthor_obj_array)

    _layout_: ClassVar[Layout] = (
        ("flags", "I"),
        ("bo_handle", "I"),
        ("bo_offset", "Q"),
        ("va", "Q"),
        ("size", "Q"),
        ("syncs", drm_panthor_obj_array),
    )
    _last_mandatory_: ClassVar[str] = "syncs"


@dataclass
class drm_panthor_vm_bind:
    """``struct drm_panthor_vm_bind``."""

    vm_id: int = 0
    flags: int = 0
    ops: drm_panthor_obj_array = field(default_factory=drm_panthor_obj_array)

    _layout_: ClassVar[Layout] = (("vm_id", "I"), ("flags", "I"), ("ops", drm_panthor_obj_array))


@dataclass
class drm_panthor_vm_get_state:
    """``struct drm_panthor_vm_get_state``."""

    vm_id: int = 0
    state: int = 0

    _layout_: ClassVar[Layout] = (("vm_id", "I"), ("state", "I"))


@dataclass
class drm_panthor_bo_create:
    """``struct drm_panthor_bo_create``."""

    size: int = 0
    flags: int = 0
    exclusive_vm_id: int = 0
    handle: int = 0
    pad: int = 0

    _layout_: ClassVar[Layout] = (
        ("size", "Q"),
        ("flags", "I"),
        ("exclusive_vm_id", "I"),
        ("handle", "I"),
        ("pad", "I"),
    )


@dataclass
class drm_panthor_bo_mmap_offset:
    """``struct drm_panthor_bo_mmap_offset``."""

    handle: int = 0
    pad: int = 0
    offset: int = 0

    _layout_: ClassVar[Layout] = (("handle", "I"), ("pad", "I"), ("offset", "Q"))


# ---------------------------------------------------------------- groups and jobs

DRM_PANTHOR_GROUP_STATE_TIMEDOUT: Final = 1 << 0
DRM_PANTHOR_GROUP_STATE_FATAL_FAULT: Final = 1 << 1
DRM_PANTHOR_GROUP_STATE_INNOCENT: Final = 1 << 2

PANTHOR_GROUP_PRIORITY_LOW: Final = 0
PANTHOR_GROUP_PRIORITY_MEDIUM: Final = 1
PANTHOR_GROUP_PRIORITY_HIGH: Final = 2
PANTHOR_GROUP_PRIORITY_REALTIME: Final = 3


@dataclass
class drm_panthor_queue_create:
    """``struct drm_panthor_queue_create``."""

    priority: int = 0
    pad: list[int] = field(default_factory=lambda: [0, 0, 0])
    ringbuf_size: int = 0

    _layout_: ClassVar[Layout] = (("priority", "B"), ("pad", "3B"), ("ringbuf_size", "I"))
    _last_mandatory_: ClassVar[str] = "ringbuf_size"


@dataclass
class drm_panthor_group_create:
    """``struct drm_panthor_group_create`` (``queues`` is the array of queue_create)."""

    queues: drm_panthor_obj_array = field(default_factory=drm_panthor_obj_array)
    max_compute_cores: int = 0
    max_fragment_cores: int = 0
    max_tiler_cores: int = 0
    priority: int = 0
    pad: int = 0
    compute_core_mask: int = 0
    fragment_core_mask: int = 0
    tiler_core_mask: int = 0
    vm_id: int = 0
    group_handle: int = 0

    _layout_: ClassVar[Layout] = (
        ("queues", drm_panthor_obj_array),
        ("max_compute_cores", "B"),
        ("max_fragment_cores", "B"),
        ("max_tiler_cores", "B"),
        ("priority", "B"),
        ("pad", "I"),
        ("compute_core_mask", "Q"),
        ("fragment_core_mask", "Q"),
        ("tiler_core_mask", "Q"),
        ("vm_id", "I"),
        ("group_handle", "I"),
    )


@dataclass
class drm_panthor_group_destroy:
    """``struct drm_panthor_group_destroy``."""

    group_handle: int = 0
    pad: int = 0

    _layout_: ClassVar[Layout] = (("group_handle", "I"), ("pad", "I"))


@dataclass
class drm_panthor_queue_submit:
    """``struct drm_panthor_queue_submit``.

    ``stream`` is model-only: what the command stream at ``stream_addr`` does
    (a :class:`~.hw.csf.CsStream`), since the model does not decode user
    command streams. It is not part of the C layout.
    """

    queue_index: int = 0
    stream_size: int = 0
    stream_addr: int = 0
    latest_flush: int = 0
    pad: int = 0
    syncs: drm_panthor_obj_array = field(default_factory=drm_panthor_obj_array)
    stream: Any = None

    _layout_: ClassVar[Layout] = (
        ("queue_index", "I"),
        ("stream_size", "I"),
        ("stream_addr", "Q"),
        ("latest_flush", "I"),
        ("pad", "I"),
        ("syncs", drm_panthor_obj_array),
    )
    _last_mandatory_: ClassVar[str] = "syncs"


@dataclass
class drm_panthor_group_submit:
    """``struct drm_panthor_group_submit``."""

    group_handle: int = 0
    pad: int = 0
    queue_submits: drm_panthor_obj_array = field(default_factory=drm_panthor_obj_array)

    _layout_: ClassVar[Layout] = (
        ("group_handle", "I"),
        ("pad", "I"),
        ("queue_submits", drm_panthor_obj_array),
    )


@dataclass
class drm_panthor_group_get_state:
    """``struct drm_panthor_group_get_state``."""

    group_handle: int = 0
    state: int = 0
    fatal_queues: int = 0
    pad: int = 0

    _layout_: ClassVar[Layout] = (
        ("group_handle", "I"),
        ("state", "I"),
        ("fatal_queues", "I"),
        ("pad", "I"),
    )


@dataclass
class drm_panthor_tiler_heap_create:
    """``struct drm_panthor_tiler_heap_create``."""

    vm_id: int = 0
    initial_chunk_count: int = 0
    chunk_size: int = 0
    max_chunks: int = 0
    target_in_flight: int = 0
    handle: int = 0
    tiler_heap_ctx_gpu_va: int = 0
    first_heap_chunk_gpu_va: int = 0

    _layout_: ClassVar[Layout] = (
        ("vm_id", "I"),
        ("initial_chunk_count", "I"),
        ("chunk_size", "I"),
        ("max_chunks", "I"),
        ("target_in_flight", "I"),
        ("handle", "I"),
        ("tiler_heap_ctx_gpu_va", "Q"),
        ("first_heap_chunk_gpu_va", "Q"),
    )


@dataclass
class drm_panthor_tiler_heap_destroy:
    """``struct drm_panthor_tiler_heap_destroy``."""

    handle: int = 0
    pad: int = 0

    _layout_: ClassVar[Layout] = (("handle", "I"), ("pad", "I"))


# ---------------------------------------------------------------- DRM core (drm.h)

DRM_SYNCOBJ_CREATE_SIGNALED: Final = 1 << 0
DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL: Final = 1 << 0
DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT: Final = 1 << 1


@dataclass
class drm_gem_close:
    """``struct drm_gem_close``."""

    handle: int = 0
    pad: int = 0

    _layout_: ClassVar[Layout] = (("handle", "I"), ("pad", "I"))


@dataclass
class drm_syncobj_create:
    """``struct drm_syncobj_create``."""

    handle: int = 0
    flags: int = 0

    _layout_: ClassVar[Layout] = (("handle", "I"), ("flags", "I"))


@dataclass
class drm_syncobj_destroy:
    """``struct drm_syncobj_destroy``."""

    handle: int = 0
    pad: int = 0

    _layout_: ClassVar[Layout] = (("handle", "I"), ("pad", "I"))


@dataclass
class drm_syncobj_timeline_wait:
    """``struct drm_syncobj_timeline_wait`` (``handles``/``points``: user arrays of u32/u64)."""

    handles: int = 0
    points: int = 0
    timeout_nsec: int = 0
    count_handles: int = 0
    flags: int = 0
    first_signaled: int = 0
    pad: int = 0
    deadline_nsec: int = 0

    _layout_: ClassVar[Layout] = (
        ("handles", "Q"),
        ("points", "Q"),
        ("timeout_nsec", "q"),
        ("count_handles", "I"),
        ("flags", "I"),
        ("first_signaled", "I"),
        ("pad", "I"),
        ("deadline_nsec", "Q"),
    )


DRM_IOCTL_GEM_CLOSE: Final = DRM_IOW(0x09, drm_gem_close)
DRM_IOCTL_SYNCOBJ_CREATE: Final = DRM_IOWR(0xBF, drm_syncobj_create)
DRM_IOCTL_SYNCOBJ_DESTROY: Final = DRM_IOWR(0xC0, drm_syncobj_destroy)
DRM_IOCTL_SYNCOBJ_TIMELINE_WAIT: Final = DRM_IOWR(0xCA, drm_syncobj_timeline_wait)


def DRM_IOCTL_PANTHOR(nr: int, cls: type) -> int:
    """``DRM_IOCTL_PANTHOR(WR, nr, type)``: every panthor ioctl is read-write."""
    return DRM_IOWR(DRM_COMMAND_BASE + nr, cls)


DRM_IOCTL_PANTHOR_DEV_QUERY: Final = DRM_IOCTL_PANTHOR(DRM_PANTHOR_DEV_QUERY, drm_panthor_dev_query)
DRM_IOCTL_PANTHOR_VM_CREATE: Final = DRM_IOCTL_PANTHOR(DRM_PANTHOR_VM_CREATE, drm_panthor_vm_create)
DRM_IOCTL_PANTHOR_VM_DESTROY: Final = DRM_IOCTL_PANTHOR(
    DRM_PANTHOR_VM_DESTROY, drm_panthor_vm_destroy
)
DRM_IOCTL_PANTHOR_VM_BIND: Final = DRM_IOCTL_PANTHOR(DRM_PANTHOR_VM_BIND, drm_panthor_vm_bind)
DRM_IOCTL_PANTHOR_VM_GET_STATE: Final = DRM_IOCTL_PANTHOR(
    DRM_PANTHOR_VM_GET_STATE, drm_panthor_vm_get_state
)
DRM_IOCTL_PANTHOR_BO_CREATE: Final = DRM_IOCTL_PANTHOR(DRM_PANTHOR_BO_CREATE, drm_panthor_bo_create)
DRM_IOCTL_PANTHOR_BO_MMAP_OFFSET: Final = DRM_IOCTL_PANTHOR(
    DRM_PANTHOR_BO_MMAP_OFFSET, drm_panthor_bo_mmap_offset
)
DRM_IOCTL_PANTHOR_GROUP_CREATE: Final = DRM_IOCTL_PANTHOR(
    DRM_PANTHOR_GROUP_CREATE, drm_panthor_group_create
)
DRM_IOCTL_PANTHOR_GROUP_DESTROY: Final = DRM_IOCTL_PANTHOR(
    DRM_PANTHOR_GROUP_DESTROY, drm_panthor_group_destroy
)
DRM_IOCTL_PANTHOR_GROUP_SUBMIT: Final = DRM_IOCTL_PANTHOR(
    DRM_PANTHOR_GROUP_SUBMIT, drm_panthor_group_submit
)
DRM_IOCTL_PANTHOR_GROUP_GET_STATE: Final = DRM_IOCTL_PANTHOR(
    DRM_PANTHOR_GROUP_GET_STATE, drm_panthor_group_get_state
)
DRM_IOCTL_PANTHOR_TILER_HEAP_CREATE: Final = DRM_IOCTL_PANTHOR(
    DRM_PANTHOR_TILER_HEAP_CREATE, drm_panthor_tiler_heap_create
)
DRM_IOCTL_PANTHOR_TILER_HEAP_DESTROY: Final = DRM_IOCTL_PANTHOR(
    DRM_PANTHOR_TILER_HEAP_DESTROY, drm_panthor_tiler_heap_destroy
)
