"""End to end through the port: create a VM, map a BO, the GPU reads it, unmap, destroy."""

from __future__ import annotations

from panthor_testbed.mmu.gem_shmem import panthor_gem_create
from panthor_testbed.mmu.hw.gpu_access import GPU_READ, GpuFault
from panthor_testbed.mmu.panthor_mmu import (
    PanthorVm,
    panthor_vm_active,
    panthor_vm_create,
    panthor_vm_idle,
    panthor_vm_map_bo_range,
    panthor_vm_put,
    panthor_vm_unmap_range,
)
from panthor_testbed.sched import IS_ERR, Kernel
from panthor_testbed.sched.core.harness import run

from .driver_fixture import bring_up


def test_map_access_unmap() -> None:
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        ptdev = await bring_up(k)
        vm = await panthor_vm_create(ptdev, False, 1 << 47, 1 << 47, 1 << 47, 1 << 47)
        assert not IS_ERR(vm) and isinstance(vm, PanthorVm)
        bo = await panthor_gem_create(16 * 4096, "bo")
        assert not IS_ERR(bo)
        ret = await panthor_vm_map_bo_range(vm, bo, 0, 16 * 4096, 0x100000, 0)  # type: ignore[arg-type]
        out["map"] = ret
        out["active"] = await panthor_vm_active(vm)
        pa = await ptdev.iomem.access(vm.as_.id, 0x100000 + 0x10, GPU_READ)
        out["pa"] = pa
        await panthor_vm_idle(vm)
        out["unmap"] = await panthor_vm_unmap_range(vm, 0x100000, 16 * 4096)
        await panthor_vm_active(vm)
        out["fault"] = await ptdev.iomem.access(vm.as_.id, 0x100000, GPU_READ)
        await panthor_vm_idle(vm)
        await panthor_vm_put(vm)

    k = run(scenario)
    assert out["map"] == 0 and out["active"] == 0 and out["unmap"] == 0
    assert isinstance(out["pa"], int)
    assert isinstance(out["fault"], GpuFault)
    for f in k.failures:
        print(f.kind, f.message)
