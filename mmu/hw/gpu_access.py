"""The GPU's memory accesses: TLB, page-table walk, faults, and the bad-access oracle.

:func:`gpu_access` (``MaliHw.access(as_nr, va, kind)``) is what a GPU job model
calls for every load, store, atomic or instruction fetch. It translates ``va``
through the address space's *current* configuration (the one the last UPDATE
loaded), first from the TLB, then by walking the page tables in simulated DRAM:

* an access inside the region LOCK made stalls until a flush or UNLOCK
  releases it, and any access stalls while an UPDATE is in flight;
* a missing translation, a permission mismatch (AP[2:1], UXN), a clear access
  flag, a FAULT memory attribute or an address beyond the input/output size is
  a page fault: it is latched in ``AS_FAULTSTATUS``/``AS_FAULTADDRESS`` with the
  kernel's encoding (exception type in 7:0, access type in 9:8 — 0 ATOMIC,
  1 EX, 2 READ, 3 WRITE — source id in 31:16), sets ``MMU_INT_RAWSTAT`` bit n, and
  the address space stops translating (every access faults without a new
  latch) until an UPDATE reprograms it;
* a translation (or a walk) that reaches memory the GPU must not touch is a
  ``bad-gpu-access`` finding: a leaf reaching a free frame, a page-table page,
  another kernel page or a GEM page whose object holds no pin; a walk reading
  a "table" that is not a live page table. The report names the VA, the AS,
  the frame's state and whether the stale path was a TLB entry, a cached walk
  (also TLB state) or the live page tables.

GEM frames are owned by objects with a ``gpu_pages_pinned()`` method
(:class:`~.gem_shmem.DrmGemShmemObject`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NoReturn

from ...sched.core.failure import Failure, KernelFault
from ...sched.core.kernel import current_kernel, preempt
from .. import regs as R
from ..io_pgtable import ARM_LPAE_PTE_ADDR_MASK, LVL_SHIFT
from ..physmem import FRAME_GEM, FRAME_PGTABLE, FRAME_STATE_NAMES

if TYPE_CHECKING:
    from .mmu_hw import AddressSpace, MaliHw

# AS_FAULTSTATUS access types (bits 9:8)
ACCESS_TYPE_ATOMIC: Final = 0
ACCESS_TYPE_EX: Final = 1
ACCESS_TYPE_READ: Final = 2
ACCESS_TYPE_WRITE: Final = 3
GPU_READ: Final = ACCESS_TYPE_READ
GPU_WRITE: Final = ACCESS_TYPE_WRITE
GPU_EXEC: Final = ACCESS_TYPE_EX
GPU_ATOMIC: Final = ACCESS_TYPE_ATOMIC

_AF: Final = 1 << 10
_AP_UNPRIV: Final = 1 << 6
_AP_RDONLY: Final = 1 << 7
_UXN: Final = 1 << 54
_ADDR_MASK: Final = ARM_LPAE_PTE_ADDR_MASK
_MEMATTR_NC: Final = 1  # AS_MEMATTR_AARCH64_INNER_OUTER_NC (bits 7:6): bypasses the L2

PATH_TLB: Final = "stale TLB entry"
PATH_WALK_CACHE: Final = "cached table walk (TLB walk cache)"
PATH_LIVE: Final = "live page tables"


class BadGpuAccess(KernelFault):
    """The GPU touched memory it must not (raised by model code that prefers raising)."""

    failure_kind = "bad-gpu-access"


@dataclass(slots=True)
class GpuFault:
    """A GPU page fault (what the hardware latched, or would have, on this AS)."""

    as_nr: int
    va: int
    exception_type: int
    access_type: int
    source_id: int = 0
    stalled: bool = False  # the AS was already stopped by an earlier fault; nothing new latched

    @property
    def faultstatus(self) -> int:
        """The ``AS_FAULTSTATUS`` encoding of this fault."""
        return (
            (self.exception_type & 0xFF)
            | ((self.access_type & 3) << 8)
            | ((self.source_id & 0xFFFF) << 16)
        )

    def __str__(self) -> str:
        what = R.panthor_exception_name(self.exception_type)
        kind = R.ACCESS_TYPE_NAMES[self.access_type & 3]
        tail = " (AS stalled by an earlier fault)" if self.stalled else ""
        return f"AS{self.as_nr} {what} on {kind} at VA {self.va:#x}{tail}"


def _fault(hw: MaliHw, a: AddressSpace, va: int, exc: int, kind: int, source_id: int) -> GpuFault:
    f = GpuFault(a.nr, va, exc, kind, source_id)
    new = hw.latch_fault(a.nr, va, f.faultstatus)
    hw.faults.append(f)
    k = current_kernel()
    if k.tracing:
        k.ev("gpu-fault", f"AS{a.nr}", str(f) + ("" if new else " (not latched: pending fault)"))
    return f


def _allowed(desc: int, kind: int) -> bool:
    if not desc & _AP_UNPRIV:
        return False
    if kind == ACCESS_TYPE_READ:
        return True
    if kind == ACCESS_TYPE_EX:
        return not desc & _UXN
    return not desc & _AP_RDONLY  # WRITE and ATOMIC need write permission


def _bad(
    hw: MaliHw,
    a: AddressSpace,
    va: int,
    kind: int,
    pa: int,
    what: str,
    path: str,
    detail: list[str],
) -> NoReturn:
    """Report a bad-gpu-access finding (fatal: unwinds the calling GPU thread)."""
    k = current_kernel()
    phys = hw.phys
    idx = phys.frame(pa)
    if idx < 0:
        state = "no DRAM"
    else:
        st = phys.state[idx]
        state = FRAME_STATE_NAMES[st]
        if st == FRAME_GEM:
            owner = phys.owner[idx]
            name = getattr(owner, "name", type(owner).__name__)
            state = f"GEM page of {name} (not pinned)"
    kname = R.ACCESS_TYPE_NAMES[kind & 3]
    msg = f"GPU {kname} at VA {va:#x} on AS{a.nr} {what} a {state} frame (PA {pa:#x}) via {path}"
    report = "\n".join(
        [
            f"bad-gpu-access: {msg}",
            f"  AS{a.nr}: TRANSTAB={a.cur_transtab:#x} TRANSCFG={a.cur_transcfg:#x} "
            f"MEMATTR={a.cur_memattr:#x}",
            *(f"  {line}" for line in detail),
            f"  frame: {phys.describe(pa)}",
            f"  TLB of AS{a.nr}: {len(a.tlb)} entries",
        ]
    )
    state_class = state.split(" (")[0] if not state.startswith("GEM") else "gem-unpinned"
    k.fail(
        Failure(
            "bad-gpu-access",
            msg,
            report=report,
            signature=f"bad-gpu-access:{what}:{state_class}:{path}",
            extra={"va": va, "as": a.nr, "pa": pa, "state": state, "path": path},
        )
    )
    raise BadGpuAccess(msg, signature=f"bad-gpu-access:{what}:{state_class}:{path}")


def translate(
    hw: MaliHw, as_nr: int, va: int, kind: int, source_id: int = 0
) -> int | GpuFault | None:
    """One access, synchronously: the PA, a :class:`GpuFault`, or None (stalled on a lock).

    A translation through a cacheable mapping also caches the PA's line in the L2.
    """
    a = hw.as_[as_nr]
    if a.busy_cmd == R.AS_COMMAND_UPDATE:
        return None  # the translation config is being reloaded: wait for it
    if a.stalled:
        return GpuFault(as_nr, va, a.faultstatus & 0xFF, kind, source_id, stalled=True)
    transcfg = a.cur_transcfg
    mode = transcfg & R.AS_TRANSCFG_ADRMODE_MASK
    if mode != R.AS_TRANSCFG_ADRMODE_AARCH64_4K:
        if mode == R.AS_TRANSCFG_ADRMODE_IDENTITY:
            raise NotImplementedError("AS_TRANSCFG_ADRMODE_IDENTITY is not modelled")
        return _fault(hw, a, va, R.DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_0, kind, source_id)
    ia = min(55 - ((transcfg >> 6) & 0xFF), 48)
    if va >> ia:
        return _fault(hw, a, va, R.DRM_PANTHOR_EXCEPTION_ADDR_SIZE_FAULT_IN, kind, source_id)
    locked = a.locked
    if locked is not None and locked[0] <= va < locked[1]:
        return None
    tlb = a.tlb
    phys = hw.phys
    hit = tlb.lookup(va)
    detail: list[str] = []
    if hit is not None:
        desc, lvl = hit
        path = PATH_TLB
        tlb.hits += 1
        detail.append(f"TLB hit: level {lvl} descriptor {desc:#x}")
    else:
        tlb.misses += 1
        levels = -(-(ia - 12) // 9)
        start = 4 - levels
        pgd_mask = (1 << ((ia - 12) - 9 * (levels - 1))) - 1
        cached = tlb.lookup_walk(va) if hw.config.walk_cache else None
        if cached is not None:
            lvl, table_pa = cached
            path = PATH_WALK_CACHE
            detail.append(f"walk cache: level {lvl} table at {table_pa:#x}")
        else:
            lvl = start
            table_pa = a.cur_transtab & _ADDR_MASK
            path = PATH_LIVE
            detail.append(f"walk from TRANSTAB {table_pa:#x} (level {lvl})")
        while True:
            idx = phys.frame(table_pa)
            if idx < 0 or phys.state[idx] != FRAME_PGTABLE:
                _bad(hw, a, va, kind, table_pa, f"walked a level-{lvl} table in", path, detail)
            words = phys.owner[idx].words
            desc = words[(va >> LVL_SHIFT[lvl]) & (pgd_mask if lvl == start else 511)]
            detail.append(f"level {lvl} table {table_pa:#x}: descriptor {desc:#x}")
            if not desc & 1:
                return _fault(
                    hw, a, va, R.DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_0 + lvl, kind, source_id
                )
            t = desc & 3
            if lvl < 3 and t == 3:
                table_pa = desc & _ADDR_MASK
                lvl += 1
                if hw.config.walk_cache:
                    tlb.fill_walk(va, lvl, table_pa)
                continue
            if (t == 1 and lvl in (1, 2)) or (t == 3 and lvl == 3):
                break
            return _fault(
                hw, a, va, R.DRM_PANTHOR_EXCEPTION_TRANSLATION_FAULT_0 + lvl, kind, source_id
            )
    # The leaf descriptor: access flag, permissions, memory attributes.
    if not desc & _AF and not transcfg & R.AS_TRANSCFG_DISABLE_AF_FAULT:
        return _fault(hw, a, va, R.DRM_PANTHOR_EXCEPTION_ACCESS_FLAG_1 + lvl - 1, kind, source_id)
    if not _allowed(desc, kind):
        return _fault(hw, a, va, R.DRM_PANTHOR_EXCEPTION_PERM_FAULT_0 + lvl, kind, source_id)
    attr = (a.cur_memattr >> (8 * ((desc >> 2) & 7))) & 0xFF
    if attr & R.AS_MEMATTR_AARCH64_FAULT == R.AS_MEMATTR_AARCH64_FAULT:
        return _fault(hw, a, va, R.DRM_PANTHOR_EXCEPTION_MEM_ATTR_FAULT_0 + lvl, kind, source_id)
    size = 1 << LVL_SHIFT[lvl]
    pa = (desc & _ADDR_MASK & ~(size - 1)) | (va & (size - 1))
    if pa >> hw.config.pa_bits:
        return _fault(
            hw, a, va, R.DRM_PANTHOR_EXCEPTION_ADDR_SIZE_FAULT_OUT0 + lvl, kind, source_id
        )
    if hit is None:
        tlb.fill(va, desc, lvl)
    idx = phys.frame(pa)
    if idx < 0 or phys.state[idx] != FRAME_GEM or not phys.owner[idx].gpu_pages_pinned():
        _bad(hw, a, va, kind, pa, "reached", path, detail)
    if (attr >> 6) & 3 != _MEMATTR_NC:
        hw.l2.gpu_access(as_nr, va, pa, kind)
    return pa


async def gpu_access(
    hw: MaliHw, as_nr: int, va: int, kind: int, source_id: int = 0
) -> int | GpuFault:
    """``MaliHw.access()``: a yield point; blocks while ``va`` is in a locked region.

    Returns the physical address touched, or the :class:`GpuFault` the access
    raised (already latched in the MMU registers). Touching memory the GPU must
    not is a ``bad-gpu-access`` finding that ends the run.
    """
    k = current_kernel()
    a = hw.as_[as_nr]
    while True:
        await preempt()
        if hw.unplugged or not hw.powered:
            k.fail(
                Failure(
                    "invariant",
                    f"GPU memory access on AS{as_nr} while the GPU is "
                    f"{'unplugged' if hw.unplugged else 'powered off'}",
                    signature="invariant:gpu-access-powered-off",
                )
            )
        res = translate(hw, as_nr, va, kind, source_id)
        if res is None:
            k.ev("gpu-stall", f"AS{as_nr}", f"{va:#x}: locked region or UPDATE in flight")
            await a.lock_wq.wait()
            continue
        if k.tracing and not isinstance(res, GpuFault):
            k.ev("gpu-access", f"AS{as_nr}", f"{R.ACCESS_TYPE_NAMES[kind & 3]} {va:#x} -> {res:#x}")
        return res
