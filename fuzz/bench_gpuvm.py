"""gpuvm figures: the cost of one drm_gpuvm_sm_map walk that splits a mapping, by VM size.

A VM is filled with N mappings (3 pages each, one GEM, a page of gap between
them), each a real kzalloc'ed drm_gpuva inserted with drm_gpuva_insert, as a
driver's map leaves it. Then, for mappings spread over the whole VA space,
``drm_gpuvm_sm_map_ops`` computes the split of mapping another GEM over the
middle page of a mapping (REMAP(prev, next) + MAP): the VA-tree walk every
driver's sm_map runs before its steps, and the only part whose cost depends
on the VM's size (the steps of ``mmu/panthor_mmu.py`` touch page tables, which
``vm-bind-async`` measures). Python's cyclic GC is paused while timing, as
``timeit`` does: a full collection scans the whole heap and would charge the
VM's size to whichever walk it interrupts. Each size makes ``repeats``
passes over its samples and keeps the best mean; the three VMs live in one
kernel run and their passes alternate, so a noisy moment hits every size
alike and the ratios hold on a busy machine: a logarithmic walk keeps
``gpuvm-sm-map-100k`` within 2x of ``gpuvm-sm-map-1k``.
"""

from __future__ import annotations

import gc
import time

import trio

from panthor_testbed.gpuvm import (
    DrmGpuva,
    DrmGpuvm,
    DrmGpuvmOps,
    drm_gpuva_init,
    drm_gpuva_insert,
    drm_gpuva_remove,
    drm_gpuvm_init,
    drm_gpuvm_put,
    drm_gpuvm_resv_object_alloc,
)
from panthor_testbed.gpuvm.sm import drm_gpuvm_sm_map_ops
from panthor_testbed.sched import GFP_KERNEL, Kernel, KernelConfig, kfree, kzalloc
from panthor_testbed.sched.drm.drm_gem import DrmGemObject, drm_gem_object_put
from panthor_testbed.sched.locking.lockdep import Lockdep

from .bench import BenchOptions, Figure, bench

PAGE = 0x1000
SLOT = 4 * PAGE  # a 3-page mapping and a 1-page gap


async def _vm_free(vm: DrmGpuvm) -> None:
    pass


async def _vm_create(name: str) -> DrmGpuvm:
    r_obj = await drm_gpuvm_resv_object_alloc(None)
    assert r_obj is not None
    vm = DrmGpuvm()
    await drm_gpuvm_init(vm, name, 0, None, r_obj, 0, 1 << 48, 0, 0, DrmGpuvmOps(vm_free=_vm_free))
    await drm_gem_object_put(r_obj)
    return vm


async def _fill(vm: DrmGpuvm, a: DrmGemObject, n: int) -> None:
    """N mappings of ``a`` in the VA tree."""
    for i in range(n):
        va = await kzalloc(DrmGpuva, GFP_KERNEL)
        assert va is not None
        drm_gpuva_init(va, i * SLOT, 3 * PAGE, a, i * SLOT)
        assert await drm_gpuva_insert(vm, va) == 0


async def _teardown(vm: DrmGpuvm) -> None:
    """Remove and free every VA (each held a VM reference), then drop the VM."""
    for va in vm.rb.entries():
        await drm_gpuva_remove(va)
        kfree(va)
    await drm_gpuvm_put(vm)


def _measure_pass(vm: DrmGpuvm, b: DrmGemObject, samples: int) -> float:
    """Mean microseconds of one splitting walk over ``samples`` mappings spread over the VM."""
    n = len(vm.rb)
    step = max(1, n // samples)
    total = 0.0
    count = 0
    for i in range(0, n, step):
        addr = i * SLOT
        gc.disable()
        t0 = time.perf_counter()
        ops = drm_gpuvm_sm_map_ops(vm, addr + PAGE, PAGE, b, 0)
        total += time.perf_counter() - t0
        gc.enable()
        assert isinstance(ops, list) and len(ops) == 2, ops  # REMAP(prev, next) + MAP
        count += 1
    return total / count * 1e6


async def _measure_sizes(
    k: Kernel, sizes: list[int], samples: int, repeats: int, out: list[float]
) -> None:
    """One VM per size, all alive at once; passes alternate between them; best pass per size."""
    vms: list[DrmGpuvm] = []
    a = DrmGemObject(1 << 40, "A")
    b = DrmGemObject(PAGE, "B")
    for n in sizes:
        vm = await _vm_create(f"bench-vm-{n}")
        await _fill(vm, a, n)
        vms.append(vm)
    for vm in vms:  # warm-up pass
        _measure_pass(vm, b, samples)
    best = [float("inf")] * len(sizes)
    for _ in range(repeats):
        for i, vm in enumerate(vms):
            best[i] = min(best[i], _measure_pass(vm, b, samples))
    out.extend(best)
    for vm in vms:
        await _teardown(vm)
    await drm_gem_object_put(a)
    await drm_gem_object_put(b)


def sm_map_split_us(sizes: list[int], samples: int, repeats: int) -> list[float]:
    """Microseconds per splitting sm_map walk in VMs of each size, measured in one kernel run."""
    out: list[float] = []

    async def main() -> None:
        k = Kernel(config=KernelConfig(trace=False, max_steps=1 << 62), lockdep=Lockdep())
        await k.run(_measure_sizes, sizes, samples, repeats, out)
        assert not k.failures, [f.message for f in k.failures]

    trio.run(main)
    return out


@bench("gpuvm")
def gpuvm_figures(options: BenchOptions) -> list[Figure]:
    small, mid, big = options.n(1_000, 100), options.n(10_000, 1_000), options.n(100_000, 10_000)
    samples = options.n(400, 50)
    repeats = options.n(4, 1)
    base, v_mid, v_big = sm_map_split_us([small, mid, big], samples, repeats)
    note = "the drm_gpuvm_sm_map walk splitting a mapping (REMAP prev+next, MAP)"
    return [
        Figure(
            "gpuvm-sm-map-10k", v_mid, baseline="gpuvm-sm-map-1k", baseline_value=base, note=note
        ),
        Figure(
            "gpuvm-sm-map-100k", v_big, baseline="gpuvm-sm-map-1k", baseline_value=base, note=note
        ),
    ]
