"""Per-task allocation scopes (include/linux/sched/mm.h).

``memalloc_nofs_save()`` / ``memalloc_noio_save()`` make every allocation
of the running thread behave as GFP_NOFS / GFP_NOIO until the matching
restore (``current_gfp_context()``), and ``memalloc_noreclaim_save()`` sets
PF_MEMALLOC: the task is reclaim itself and never enters direct reclaim
(``__need_reclaim()`` is false, so lockdep sees no ``fs_reclaim``). The flags
live in the thread's ``ctx`` (``current->flags``); the save functions return
the flags they set, to hand back to the restore.
"""

from __future__ import annotations

from typing import Final

from ..core.kernel import current_kernel
from .gfp import __GFP_FS, __GFP_IO

PF_MEMALLOC: Final = 0x00000800
PF_MEMALLOC_NOFS: Final = 0x00040000
PF_MEMALLOC_NOIO: Final = 0x00080000

_FLAGS_KEY: Final = "task_flags"
_GFP_IO: Final = __GFP_IO
_GFP_FS: Final = __GFP_FS


def current_flags() -> int:
    """``current->flags`` (the PF_MEMALLOC* bits the model tracks); 0 outside a thread."""
    cur = current_kernel().current
    if cur is None:
        return 0
    flags: int = cur.ctx.get(_FLAGS_KEY, 0)
    return flags


def current_gfp_context(flags: int) -> int:
    """``current_gfp_context()``: NOIO clears __GFP_IO and __GFP_FS, NOFS clears __GFP_FS."""
    pflags = current_flags()
    if pflags & (PF_MEMALLOC_NOIO | PF_MEMALLOC_NOFS):
        if pflags & PF_MEMALLOC_NOIO:
            flags &= ~(_GFP_IO | _GFP_FS)
        else:
            flags &= ~_GFP_FS
    return flags


def memalloc_flags_save(flags: int) -> int:
    """``memalloc_flags_save()``: set ``flags``, return those that were not set yet."""
    cur = current_kernel().current
    assert cur is not None
    old: int = cur.ctx.get(_FLAGS_KEY, 0)
    cur.ctx[_FLAGS_KEY] = old | flags
    return ~old & flags


def memalloc_flags_restore(flags: int) -> None:
    """``memalloc_flags_restore()``: clear what the matching save set."""
    cur = current_kernel().current
    assert cur is not None
    cur.ctx[_FLAGS_KEY] = cur.ctx.get(_FLAGS_KEY, 0) & ~flags


def memalloc_nofs_save() -> int:
    """``memalloc_nofs_save()``."""
    return memalloc_flags_save(PF_MEMALLOC_NOFS)


def memalloc_nofs_restore(flags: int) -> None:
    """``memalloc_nofs_restore()``."""
    memalloc_flags_restore(flags)


def memalloc_noio_save() -> int:
    """``memalloc_noio_save()``."""
    return memalloc_flags_save(PF_MEMALLOC_NOIO)


def memalloc_noio_restore(flags: int) -> None:
    """``memalloc_noio_restore()``."""
    memalloc_flags_restore(flags)


def memalloc_noreclaim_save() -> int:
    """``memalloc_noreclaim_save()``: PF_MEMALLOC (the caller is reclaim)."""
    return memalloc_flags_save(PF_MEMALLOC)


def memalloc_noreclaim_restore(flags: int) -> None:
    """``memalloc_noreclaim_restore()``."""
    memalloc_flags_restore(flags)
