"""The uAPI of include/uapi/drm/panthor_drm.h (v6.14) that the VM code reads.

Structures are dataclasses named as the header names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

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
