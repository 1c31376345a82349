"""d33733263a55 (pre-seed): a failed page-table array allocation in the map
op-context preparation returned 0, and the sync VM_BIND went on with an op
context its own error path had already cleaned up.

An allocation failure at one precise allocation is what exposes it, so the
test sweeps it: one file maps one BO with a sync VM_BIND while the Nth
failable allocation fails, for every N the call makes. With the fix every N
gives an errno and a clean run (nothing leaked, no WARN); with the pre-fix
code installed some N is reported by the generic oracles (the call "succeeds"
with a torn-down context: a use-after-free, a NULL dereference or a leak).
"""

from __future__ import annotations

from panthor_testbed.fuzz.bugs import installed
from panthor_testbed.mmu.panthor_drm import drm_panthor_vm_bind_op
from panthor_testbed.sched import Kernel, KernelConfig

from ..mmu.drv_fixture import VA, Ctx, P, run_files

SLUG = "prepare-map-enomem-returns-0"


async def _one_map(cs: list[Ctx]) -> None:
    c = cs[0]
    try:
        ret, vm_id = await c.vm_create()
        if ret:
            return
        ret, bo = await c.bo_create(16 * P)
        if ret:
            return
        await c.bind_sync(vm_id, drm_panthor_vm_bind_op(bo_handle=bo, va=VA, size=16 * P))
    finally:
        # Only the program's own allocations fail: the teardown (file close,
        # device fini) is not what this test is about.
        c.k.mem.faults_suspended += 1


def _sweep() -> list[tuple[int, Kernel]]:
    """(N, run) for every allocation N of the program that fails a run."""
    # The number of failable allocations of the whole run, without failures.
    total = run_files(_one_map).mem.failable
    bad = []
    for n in range(1, total + 1):
        k = run_files(_one_map, config=KernelConfig(alloc_fail_nth=n))
        if k.failures:
            bad.append((n, k))
    return bad


def test_with_the_fix_every_allocation_failure_is_an_errno_and_a_clean_run() -> None:
    bad = _sweep()
    assert bad == [], [(n, k.failures[0].message) for n, k in bad]


def test_with_the_injection_an_allocation_failure_is_reported() -> None:
    with installed(inject=[SLUG]):
        bad = _sweep()
    assert bad, "the pre-fix code went unnoticed at every allocation"
    kinds = {k.primary_failure.kind for _, k in bad if k.primary_failure}
    assert kinds <= {"exception", "use-after-free", "warn", "leak"}, kinds
