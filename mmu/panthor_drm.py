"""The uAPI of include/uapi/drm/panthor_drm.h (v6.14) that the VM code reads.

Structures are dataclasses named as the header names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

DRM_PANTHOR_VM_BIND_OP_MAP_READONLY: Final = 1 << 0
DRM_PANTHOR_VM_BIND_OP_MAP_NOEXEC: Final = 1 << 1
DRM_PANTHOR_VM_BIND_OP_MAP_UNCACHED: Final = 1 << 2
DRM_PANTHOR_VM_BIND_OP_TYPE_MASK: Final = 0xF << 28
DRM_PANTHOR_VM_BIND_OP_TYPE_MAP: Final = 0 << 28
DRM_PANTHOR_VM_BIND_OP_TYPE_UNMAP: Final = 1 << 28
DRM_PANTHOR_VM_BIND_OP_TYPE_SYNC_ONLY: Final = 2 << 28

DRM_PANTHOR_VM_BIND_ASYNC: Final = 1 << 0

DRM_PANTHOR_BO_NO_MMAP: Final = 1 << 0


@dataclass
class drm_panthor_obj_array:
    """``struct drm_panthor_obj_array``: ``count`` elements of ``stride`` bytes at ``array``."""

    stride: int = 0
    count: int = 0
    array: int = 0


@dataclass
class drm_panthor_vm_create:
    """``struct drm_panthor_vm_create``."""

    flags: int = 0
    id: int = 0
    user_va_range: int = 0


@dataclass
class drm_panthor_vm_bind_op:
    """``struct drm_panthor_vm_bind_op``."""

    flags: int = 0
    bo_handle: int = 0
    bo_offset: int = 0
    va: int = 0
    size: int = 0
    syncs: drm_panthor_obj_array = field(default_factory=drm_panthor_obj_array)


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


@dataclass
class drm_panthor_queue_submit:
    """``struct drm_panthor_queue_submit``.

    ``stream`` is model-only: what the command stream at ``stream_addr`` does
    (a :class:`~.hw.csf.CsStream`), since the model does not decode user
    command streams.
    """

    queue_index: int = 0
    stream_size: int = 0
    stream_addr: int = 0
    latest_flush: int = 0
    pad: int = 0
    syncs: drm_panthor_obj_array = field(default_factory=drm_panthor_obj_array)
    stream: Any = None


@dataclass
class drm_panthor_group_get_state:
    """``struct drm_panthor_group_get_state``."""

    group_handle: int = 0
    state: int = 0
    fatal_queues: int = 0
    pad: int = 0
