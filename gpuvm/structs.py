"""The drm_gpuvm structures (include/drm/drm_gpuvm.h, v6.14), without behaviour.

Field names and nesting follow the C structs, so ported driver code reads like
the driver: ``va.va.addr``, ``va.gem.obj``, ``op.remap.unmap.va.vm_bo``,
``vm_bo.list.gpuva``. Every struct is constructible with no arguments (the
driver allocates them with ``kzalloc``) and can be subclassed to embed it in a
driver structure (``struct panthor_vma { struct drm_gpuva base; ... }``
becomes ``class PanthorVma(DrmGpuva)``, and ``container_of`` is the identity).

A C union (``struct drm_gpuva_op``) is modelled with typed accessors that
raise if the member read is not the one the op type says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Final

from ..sched.locking.mutex import SpinLock
from ..sched.locking.refcount import Kref
from .klist import KList
from .va_tree import VaTree

if TYPE_CHECKING:
    from ..sched.drm.drm_gem import DrmGemObject

# enum drm_gpuva_flags
DRM_GPUVA_INVALIDATED: Final = 1 << 0
DRM_GPUVA_SPARSE: Final = 1 << 1
DRM_GPUVA_USERBITS: Final = 1 << 2

# enum drm_gpuvm_flags
DRM_GPUVM_RESV_PROTECTED: Final = 1 << 0
DRM_GPUVM_USERBITS: Final = 1 << 1


class DrmGpuvaOpType(IntEnum):
    """``enum drm_gpuva_op_type``."""

    DRM_GPUVA_OP_MAP = 0
    DRM_GPUVA_OP_REMAP = 1
    DRM_GPUVA_OP_UNMAP = 2
    DRM_GPUVA_OP_PREFETCH = 3
    DRM_GPUVA_OP_DRIVER = 4


DRM_GPUVA_OP_MAP: Final = DrmGpuvaOpType.DRM_GPUVA_OP_MAP
DRM_GPUVA_OP_REMAP: Final = DrmGpuvaOpType.DRM_GPUVA_OP_REMAP
DRM_GPUVA_OP_UNMAP: Final = DrmGpuvaOpType.DRM_GPUVA_OP_UNMAP
DRM_GPUVA_OP_PREFETCH: Final = DrmGpuvaOpType.DRM_GPUVA_OP_PREFETCH
DRM_GPUVA_OP_DRIVER: Final = DrmGpuvaOpType.DRM_GPUVA_OP_DRIVER


class VaRange:
    """The ``va`` member of drm_gpuva / drm_gpuva_op_map: ``{ u64 addr; u64 range; }``."""

    __slots__ = ("addr", "range")

    def __init__(self, addr: int = 0, range: int = 0) -> None:
        self.addr = addr
        self.range = range

    def __repr__(self) -> str:
        return f"[{self.addr:#x}, +{self.range:#x})"


class GemRef:
    """The ``gem`` member of drm_gpuva_op_map: ``{ u64 offset; struct drm_gem_object *obj; }``."""

    __slots__ = ("obj", "offset")

    def __init__(self, obj: DrmGemObject | None = None, offset: int = 0) -> None:
        self.obj = obj
        self.offset = offset


class GpuvaGem(GemRef):
    """The ``gem`` member of drm_gpuva; ``entry`` is the vm_bo gpuva list it is linked on."""

    __slots__ = ("entry",)

    def __init__(self, obj: DrmGemObject | None = None, offset: int = 0) -> None:
        super().__init__(obj, offset)
        self.entry: KList[DrmGpuva] | None = None


class DrmGpuva:
    """``struct drm_gpuva``: one GPU VA mapping.

    ``vm`` is set when it is inserted into a VM's tree (``__drm_gpuva_insert``)
    and kept after removal, as in the kernel.
    """

    __slots__ = ("flags", "gem", "va", "vm", "vm_bo")

    def __init__(self) -> None:
        self.vm: DrmGpuvm | None = None
        self.vm_bo: DrmGpuvmBo | None = None
        self.flags = 0
        self.va = VaRange()
        self.gem = GpuvaGem()

    def __repr__(self) -> str:
        obj = self.gem.obj
        what = getattr(obj, "name", "?") if obj is not None else "no-gem"
        return f"<drm_gpuva {self.va!r} {what}@{self.gem.offset:#x}>"


class DrmGpuvaOpMap:
    """``struct drm_gpuva_op_map``."""

    __slots__ = ("gem", "va")

    def __init__(
        self, addr: int = 0, range: int = 0, obj: DrmGemObject | None = None, offset: int = 0
    ) -> None:
        self.va = VaRange(addr, range)
        self.gem = GemRef(obj, offset)

    def __repr__(self) -> str:
        return f"<op_map {self.va!r} @{self.gem.offset:#x}>"


class DrmGpuvaOpUnmap:
    """``struct drm_gpuva_op_unmap``: the VA to unmap and whether its PTEs may be kept."""

    __slots__ = ("keep", "va")

    def __init__(self, va: DrmGpuva, keep: bool = False) -> None:
        self.va = va
        self.keep = keep


class DrmGpuvaOpRemap:
    """``struct drm_gpuva_op_remap``: unmap one VA, re-map its prev and/or next part."""

    __slots__ = ("next", "prev", "unmap")

    def __init__(
        self,
        prev: DrmGpuvaOpMap | None,
        next: DrmGpuvaOpMap | None,
        unmap: DrmGpuvaOpUnmap,
    ) -> None:
        self.prev = prev
        self.next = next
        self.unmap = unmap


class DrmGpuvaOpPrefetch:
    """``struct drm_gpuva_op_prefetch``."""

    __slots__ = ("va",)

    def __init__(self, va: DrmGpuva) -> None:
        self.va = va


class DrmGpuvaOp:
    """``struct drm_gpuva_op``: ``op`` says which union member is valid.

    Read ``op.map`` / ``op.remap`` / ``op.unmap`` / ``op.prefetch`` as in C;
    reading a member the op type does not hold raises ``AttributeError``
    (in C it would read garbage).
    """

    __slots__ = ("_member", "op")

    def __init__(
        self,
        op: DrmGpuvaOpType,
        member: DrmGpuvaOpMap | DrmGpuvaOpRemap | DrmGpuvaOpUnmap | DrmGpuvaOpPrefetch,
    ) -> None:
        self.op = op
        self._member = member

    def _get(self, want: DrmGpuvaOpType) -> object:
        if self.op != want:
            raise AttributeError(f"drm_gpuva_op is {self.op.name}, not {want.name}")
        return self._member

    @property
    def map(self) -> DrmGpuvaOpMap:
        m = self._get(DRM_GPUVA_OP_MAP)
        assert isinstance(m, DrmGpuvaOpMap)
        return m

    @property
    def remap(self) -> DrmGpuvaOpRemap:
        m = self._get(DRM_GPUVA_OP_REMAP)
        assert isinstance(m, DrmGpuvaOpRemap)
        return m

    @property
    def unmap(self) -> DrmGpuvaOpUnmap:
        m = self._get(DRM_GPUVA_OP_UNMAP)
        assert isinstance(m, DrmGpuvaOpUnmap)
        return m

    @property
    def prefetch(self) -> DrmGpuvaOpPrefetch:
        m = self._get(DRM_GPUVA_OP_PREFETCH)
        assert isinstance(m, DrmGpuvaOpPrefetch)
        return m


SmStep = Callable[[DrmGpuvaOp, Any], Awaitable[int]]
"""``int (*sm_step_*)(struct drm_gpuva_op *op, void *priv)``; async (a driver step takes locks)."""


@dataclass(frozen=True)
class DrmGpuvmOps:
    """``struct drm_gpuvm_ops``. Every callback is async; all are optional except vm_free.

    ``op_alloc``/``op_free`` are not modelled (only the ``*_ops_create``
    helpers use them, and the model has none).
    """

    vm_free: Callable[[DrmGpuvm], Awaitable[None]] | None = None
    vm_bo_alloc: Callable[[], Awaitable[DrmGpuvmBo | None]] | None = None
    vm_bo_free: Callable[[DrmGpuvmBo], Awaitable[None]] | None = None
    vm_bo_validate: Callable[[DrmGpuvmBo, Any], Awaitable[int]] | None = None
    sm_step_map: SmStep | None = None
    sm_step_remap: SmStep | None = None
    sm_step_unmap: SmStep | None = None


class VmBoList:
    """``gpuvm->extobj`` / ``gpuvm->evict``: the list, the iterator's local list, the spinlock."""

    __slots__ = ("list", "local_list", "lock")

    def __init__(self, name: str) -> None:
        self.list: KList[DrmGpuvmBo] = KList(name)
        self.local_list: KList[DrmGpuvmBo] | None = None
        self.lock = SpinLock(f"gpuvm->{name}.lock", key=f"&gpuvm->{name}.lock")


class DrmGpuvm:
    """``struct drm_gpuvm``. Fill it with :func:`drm_gpuvm_init`."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.flags = 0
        self.drm: object = None
        self.mm_start = 0
        self.mm_range = 0
        self.rb: VaTree[DrmGpuva] = VaTree()  # rb.tree + rb.list
        self.kref = Kref(self, "drm_gpuvm")
        self.kernel_alloc_node = DrmGpuva()
        self.ops: DrmGpuvmOps | None = None
        self.r_obj: DrmGemObject | None = None
        self.extobj = VmBoList("extobj")
        self.evict = VmBoList("evict")

    def __repr__(self) -> str:
        return f"<drm_gpuvm {self.name} vas={len(self.rb)}>"


class VmBoEntries:
    """``vm_bo->list.entry``: the list each entry is linked on (``None``: unlinked)."""

    __slots__ = ("evict", "extobj", "gem")

    def __init__(self) -> None:
        self.gem: list[DrmGpuvmBo] | None = None  # the GEM's gpuva list
        self.extobj: KList[DrmGpuvmBo] | None = None
        self.evict: KList[DrmGpuvmBo] | None = None


class VmBoLists:
    """``vm_bo->list``: the vm_bo's gpuvas and its list entries."""

    __slots__ = ("entry", "gpuva")

    def __init__(self) -> None:
        self.gpuva: KList[DrmGpuva] = KList("vm_bo->list.gpuva")
        self.entry = VmBoEntries()


class DrmGpuvmBo:
    """``struct drm_gpuvm_bo``: the <VM, GEM> combination."""

    __slots__ = ("evicted", "kref", "list", "obj", "vm")

    def __init__(self) -> None:
        self.vm: DrmGpuvm | None = None
        self.obj: DrmGemObject | None = None
        self.evicted = False
        self.kref = Kref(self, "drm_gpuvm_bo")
        self.list = VmBoLists()

    def __repr__(self) -> str:
        vm = self.vm.name if self.vm is not None else "?"
        obj = getattr(self.obj, "name", "?")
        return f"<drm_gpuvm_bo {vm}/{obj}>"
