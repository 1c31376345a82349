"""The GPU's L2 cache, as far as coherency with the CPU goes, and its oracle.

Mali's L2 is a write-back cache in front of DRAM that the CPU does not snoop
(ACE-Lite I/O coherency: the GPU sees the CPU's caches, the CPU does not see
the GPU's). So when the CPU writes memory the GPU has cached, the GPU keeps
reading its old line, and a dirty line written back later undoes the CPU's
write, until the driver cleans and invalidates the L2 (an ``AS_COMMAND_FLUSH_PT``
or ``FLUSH_MEM``, which flush all L2 caches; a ``GPU_FLUSH_CACHES`` command; an
L2 power-down). What the model keeps is which memory the GPU holds, not the
data:

* a GPU access through a *cacheable* mapping (memory attribute not
  ``INNER_OUTER_NC``) caches its 64-byte line: a read fills it clean, a write
  or atomic makes it dirty; each line remembers the memory's CPU-write count
  (its *version*) when it was cached;
* a CPU write (the kernel's mappings of GPU memory,
  :class:`~panthor_testbed.mmu.panthor_gem.KernelBoMap`) bumps the version of
  the line it lands in;
* a clean writes every dirty line back; an invalidate drops every line; a
  soft reset or a power cut loses the cache's contents (dirty lines too).

The oracle (a ``bad-gpu-access`` finding, signature
``bad-gpu-access:stale-l2-line:<access>``): a GPU access that hits a line
whose memory the CPU wrote after the line was cached (the GPU uses data that
is no longer what memory holds), or a write-back of a dirty line over memory
the CPU wrote since (the CPU's write is lost). Uncached mappings bypass the
cache, so memory only the uncached side shares (ring buffers, sync objects,
the firmware's shared section) never meets the oracle.

Deviations (deliberate): no capacity and no eviction (a line stays until a
flush, as :mod:`.tlb` keeps its entries), no L1/LSC, no per-way state; a flush
cleans and invalidates the whole L2 at once when it completes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ...sched.core.failure import Failure
from ...sched.core.kernel import current_kernel
from .. import regs as R
from .gpu_access import ACCESS_TYPE_ATOMIC, ACCESS_TYPE_WRITE, BadGpuAccess

if TYPE_CHECKING:
    from ...sched.core.kernel import Kernel

L2_LINE_SHIFT: Final = 6  # 64-byte lines


@dataclass(slots=True)
class L2Line:
    version: int  # the line's CPU-write count when the GPU cached it
    dirty: bool
    step: int  # when it was cached (the run's step), for the report
    as_nr: int  # the access that cached it (formatted only for a report)
    va: int
    kind: int

    @property
    def by(self) -> str:
        return f"AS{self.as_nr} {R.ACCESS_TYPE_NAMES[self.kind & 3]} at VA {self.va:#x}"


class L2Cache:
    """Which lines the GPU holds, clean or dirty (see the module doc)."""

    __slots__ = ("flushes", "lines", "versions", "wrote_at")

    def __init__(self) -> None:
        self.lines: dict[int, L2Line] = {}  # line number (PA >> 6) -> what the GPU holds
        self.versions: dict[int, int] = {}  # line -> CPU writes to it so far
        self.wrote_at: dict[int, int] = {}  # line -> the step of the last CPU write
        self.flushes = 0  # cleans + invalidates completed (for tests)

    # ------------------------------------------------------------ the two sides

    def cpu_write(self, pa: int) -> None:
        """The CPU wrote memory at ``pa`` (through a kernel mapping)."""
        line = pa >> L2_LINE_SHIFT
        self.versions[line] = self.versions.get(line, 0) + 1
        self.wrote_at[line] = current_kernel().steps

    def gpu_access(self, as_nr: int, va: int, pa: int, kind: int) -> None:
        """A GPU access through a cacheable mapping: check the line, then cache it."""
        line = pa >> L2_LINE_SHIFT
        held = self.lines.get(line)
        dirty = kind in (ACCESS_TYPE_WRITE, ACCESS_TYPE_ATOMIC)
        if held is None:
            self.lines[line] = L2Line(
                self.versions.get(line, 0), dirty, current_kernel().steps, as_nr, va, kind
            )
            return
        if held.version != self.versions.get(line, 0):
            access = R.ACCESS_TYPE_NAMES[kind & 3]
            self._stale(
                f"GPU {access} at VA {va:#x} on AS{as_nr} hit a stale L2 line (PA {pa:#x})",
                access,
                line,
                held,
                "the GPU used what it had cached, not what memory holds",
            )
        if dirty:
            held.dirty = True

    # ------------------------------------------------------------ maintenance

    def clean_invalidate(self, why: str) -> None:
        """Write every dirty line back, then drop every line."""
        self.clean(why)
        self.invalidate(why)

    def clean(self, why: str) -> None:
        """Write every dirty line back (each must still match memory's version)."""
        for line in sorted(self.lines):
            held = self.lines[line]
            if not held.dirty:
                continue
            if held.version != self.versions.get(line, 0):
                self._stale(
                    f"L2 write-back ({why}) of a dirty line over memory the CPU wrote "
                    f"since (PA {line << L2_LINE_SHIFT:#x})",
                    "write-back",
                    line,
                    held,
                    "the write-back undoes the CPU's write",
                )
            held.dirty = False
        self.flushes += 1

    def invalidate(self, why: str) -> None:
        """Drop every line (dirty ones are lost, as on a reset or a power cut)."""
        if self.lines:
            k = current_kernel()
            if k.tracing:
                k.ev("l2-invalidate", "gpu", f"{why}: {len(self.lines)} lines")
        self.lines.clear()

    # ------------------------------------------------------------ the oracle

    def _stale(self, msg: str, access: str, line: int, held: L2Line, effect: str) -> None:
        k: Kernel = current_kernel()
        version, wrote_at = self.versions.get(line, 0), self.wrote_at.get(line, 0)
        report = "\n".join(
            [
                f"bad-gpu-access: {msg}",
                f"  cached at step {held.step} by {held.by} ({'dirty' if held.dirty else 'clean'}, "
                f"memory version {held.version})",
                f"  the CPU wrote the line since: version {version}, last at step {wrote_at}",
                "  no L2 clean/invalidate (FLUSH_PT, FLUSH_MEM, GPU_FLUSH_CACHES, L2 power-down) "
                "came in between",
                f"  {effect}",
            ]
        )
        signature = f"bad-gpu-access:stale-l2-line:{access.lower()}"
        k.fail(
            Failure(
                "bad-gpu-access",
                msg,
                report=report,
                signature=signature,
                extra={"pa": line << L2_LINE_SHIFT, "path": "stale L2 line"},
            )
        )
        if access != "write-back":
            raise BadGpuAccess(msg, signature=signature)


__all__ = ["L2_LINE_SHIFT", "L2Cache", "L2Line"]
