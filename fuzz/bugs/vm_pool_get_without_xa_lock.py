"""Before 444fa5b100e5 "drm/panthor: Lock XArray when getting entries for the VM".

``panthor_vm_pool_get_vm()`` loaded the VM from the pool's xarray and took its
reference without the xarray lock, so a concurrent ``VM_DESTROY``
(``xa_erase`` + the last ``panthor_vm_put``) could free the VM between the
load and the get.
"""

from __future__ import annotations

from panthor_testbed.mmu.panthor_mmu import PanthorVm, PanthorVmPool, panthor_vm_get
from panthor_testbed.sched.lib.xarray import xa_load

from .entry import Bug, FoundAs

BUG = Bug(
    slug="vm-pool-get-without-xa-lock",
    kind="pre-seed",
    commit="444fa5b100e5",
    title="drm/panthor: Lock XArray when getting entries for the VM",
    functions=("panthor_vm_pool_get_vm",),
    breaks="a VM looked up by handle can be freed by a concurrent VM_DESTROY before the "
    "lookup takes its reference (use-after-free)",
    scenario="destroy-while-busy",
    found_as=FoundAs("warn", "use-after-free"),
)


async def panthor_vm_pool_get_vm(pool: PanthorVmPool, handle: int) -> PanthorVm | None:
    """``panthor_vm_pool_get_vm()`` before the fix."""
    vm = await panthor_vm_get(await xa_load(pool.xa, handle))  # type: ignore[arg-type]

    return vm


_PORT = "panthor_testbed.mmu.panthor_mmu:"
REPLACES = {f"{_PORT}panthor_vm_pool_get_vm": panthor_vm_pool_get_vm}

EXPECTED_DIFF = [
    "- await xa_lock(pool.xa)",
    "- await xa_unlock(pool.xa)",
]
