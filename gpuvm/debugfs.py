"""The debugfs dump of a VM's mappings (``drm_debugfs_gpuva_info``, drivers/gpu/drm/drm_debugfs.c).

Output is byte-for-byte the kernel's layout. The ``object`` column prints a
GEM pointer in the kernel; here a pointer would be ``id()``, which changes
from run to run, so it prints a stable stand-in: by default the GEM's rank
of first appearance in this dump (1, 2, ...; 0 for a VA without a GEM), or
whatever ``obj_ptr`` returns.
"""

from __future__ import annotations

from collections.abc import Callable

from ..sched.errno import ENODEV
from .structs import DrmGpuvm


class SeqFile:
    """A ``struct seq_file`` being filled by a ``show`` callback."""

    __slots__ = ("_parts", "private")

    def __init__(self, private: object = None) -> None:
        self._parts: list[str] = []
        self.private = private  # m->private: the drm_info_node of a DRM debugfs file

    def getvalue(self) -> str:
        return "".join(self._parts)


def seq_puts(m: SeqFile, s: str) -> None:
    """``seq_puts``."""
    m._parts.append(s)


def seq_printf(m: SeqFile, fmt: str, *args: object) -> None:
    """``seq_printf`` with a Python %-format string."""
    m._parts.append(fmt % args if args else fmt)


def drm_debugfs_gpuva_info(
    m: SeqFile, gpuvm: DrmGpuvm, obj_ptr: Callable[[object], int] | None = None
) -> int:
    """``drm_debugfs_gpuva_info``: dump the VA space; -ENODEV if the VM is not initialised.

    The kernel reserved node is listed in the header and skipped in the table.
    """
    kva = gpuvm.kernel_alloc_node
    if not gpuvm.name:
        return -ENODEV

    seen: list[object] = []

    def ptr(obj: object) -> int:
        if obj is None:
            return 0
        if obj_ptr is not None:
            return obj_ptr(obj)
        for rank, known in enumerate(seen, 1):
            if known is obj:
                return rank
        seen.append(obj)
        return len(seen)

    seq_puts(
        m,
        f"DRM GPU VA space ({gpuvm.name}) "
        f"[0x{gpuvm.mm_start:016x};0x{gpuvm.mm_start + gpuvm.mm_range:016x}]\n",
    )
    seq_puts(
        m, f"Kernel reserved node [0x{kva.va.addr:016x};0x{kva.va.addr + kva.va.range:016x}]\n"
    )
    seq_puts(m, "\n")
    seq_puts(
        m,
        " VAs | start              | range              | end                "
        "| object             | object offset\n",
    )
    seq_puts(m, "-" * 109 + "\n")
    for va in gpuvm.rb:
        if va is kva:
            continue
        seq_puts(
            m,
            f"     | 0x{va.va.addr:016x} | 0x{va.va.range:016x} | "
            f"0x{va.va.addr + va.va.range:016x} | 0x{ptr(va.gem.obj):016x} | "
            f"0x{va.gem.offset:016x}\n",
        )
    return 0
