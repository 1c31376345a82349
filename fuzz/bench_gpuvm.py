"""gpuvm figures: the cost of one drm_gpuvm_sm_map that splits a mapping, by VM size.

A VM is filled with N mappings (3 pages each, one GEM, a page of gap between
them), each a real kzalloc'ed drm_gpuva inserted with drm_gpuva_insert (a VM
reference) and linked to the GEM's vm_bo, as a driver's map leaves it. Then,
for mappings spread over the whole VA space, one ``drm_gpuvm_sm_map`` maps
another GEM over the middle page of a mapping: the walk emits
REMAP(prev, next) + MAP and the driver's steps (the example driver's) do
``drm_gpuva_remap`` + ``drm_gpuva_map`` + link/unlink. Only that call is
timed (not its preallocation, nor the restore that puts the original mapping
back so N stays constant). Python's cyclic GC is paused while timing, as
``timeit`` does: a full collection scans the whole heap and would charge the
VM's size to whichever sm_map it interrupts. Each size makes ``repeats``
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
    DrmGpuvmBo,
    drm_gpuva_init,
    drm_gpuva_insert,
    drm_gpuva_link,
    drm_gpuva_remove,
    drm_gpuva_unlink,
    drm_gpuvm_bo_obtain,
    drm_gpuvm_bo_put,
    drm_gpuvm_get,
    drm_gpuvm_put,
    drm_gpuvm_resv,
)
from panthor_testbed.gpuvm.example_driver import (
    ExampleVm,
    example_gem,
    example_op_ctx_cleanup,
    example_op_ctx_prepare,
    example_vm_create,
    example_vm_map,
)
from panthor_testbed.gpuvm.sm import drm_gpuvm_sm_map
from panthor_testbed.sched import (
    GFP_KERNEL,
    Kernel,
    KernelConfig,
    kfree,
    kzalloc,
    mutex_lock,
    mutex_unlock,
)
from panthor_testbed.sched.dma_buf.dma_resv import dma_resv_lock, dma_resv_unlock
from panthor_testbed.sched.drm.drm_gem import DrmGemObject, drm_gem_object_put
from panthor_testbed.sched.locking.lockdep import Lockdep

from .bench import BenchOptions, Figure, bench

PAGE = 0x1000
SLOT = 4 * PAGE  # a 3-page mapping and a 1-page gap


async def _fill(vm: ExampleVm, a: DrmGemObject, n: int) -> None:
    """N mappings of ``a``, in the state a driver's map leaves them (inserted, linked)."""
    assert a.gpuva_lock is not None
    resv = drm_gpuvm_resv(vm)
    await dma_resv_lock(resv, None)
    await mutex_lock(a.gpuva_lock)
    vm_bo = await drm_gpuvm_bo_obtain(vm, a)
    assert isinstance(vm_bo, DrmGpuvmBo)
    for i in range(n):
        va = await kzalloc(DrmGpuva, GFP_KERNEL)
        assert va is not None
        drm_gpuva_init(va, i * SLOT, 3 * PAGE, a, i * SLOT)
        assert await drm_gpuva_insert(vm, va) == 0
        await drm_gpuva_link(va, vm_bo)
    assert not await drm_gpuvm_bo_put(vm_bo)  # the VAs hold it now
    await mutex_unlock(a.gpuva_lock)
    await dma_resv_unlock(resv)


async def _teardown(vm: ExampleVm, a: DrmGemObject) -> None:
    """Remove, unlink and free every VA, then drop the VM (fini + vm_free)."""
    assert a.gpuva_lock is not None
    resv = drm_gpuvm_resv(vm)
    await drm_gpuvm_get(vm)
    await dma_resv_lock(resv, None)
    await mutex_lock(a.gpuva_lock)
    for va in vm.rb.entries():
        await drm_gpuva_remove(va)
        await drm_gpuva_unlink(va)
        kfree(va)
    await mutex_unlock(a.gpuva_lock)
    await dma_resv_unlock(resv)
    await drm_gpuvm_put(vm)
    await drm_gpuvm_put(vm)
    assert vm.vm_free_calls == 1


async def _measure_pass(vm: ExampleVm, a: DrmGemObject, b: DrmGemObject, samples: int) -> float:
    """Mean microseconds of one splitting sm_map over ``samples`` mappings spread over the VM."""
    n = len(vm.rb)
    step = max(1, n // samples)
    total = 0.0
    count = 0
    for i in range(0, n, step):
        addr = i * SLOT
        ctx, ret = await example_op_ctx_prepare(vm, b, True)
        assert ret == 0
        await mutex_lock(vm.op_lock)
        gc.disable()
        t0 = time.perf_counter()
        ret = await drm_gpuvm_sm_map(vm, ctx, addr + PAGE, PAGE, b, 0)
        total += time.perf_counter() - t0
        gc.enable()
        await mutex_unlock(vm.op_lock)
        assert ret == 0
        await example_op_ctx_cleanup(ctx)
        count += 1
        # put the original mapping back (unmaps prev, the new VA and next; maps one)
        assert await example_vm_map(vm, addr, 3 * PAGE, a, addr) == 0
    assert len(vm.rb) == n
    return total / count * 1e6


async def _measure_sizes(
    k: Kernel, sizes: list[int], samples: int, repeats: int, out: list[float]
) -> None:
    """One VM per size, all alive at once; passes alternate between them; best pass per size."""
    vms: list[tuple[ExampleVm, DrmGemObject]] = []
    b = example_gem("B", PAGE)
    for n in sizes:
        vm = await example_vm_create(f"bench-vm-{n}", 0, 1 << 48)
        assert isinstance(vm, ExampleVm)
        a = example_gem(f"A{n}", n * SLOT)
        await _fill(vm, a, n)
        vms.append((vm, a))
    for vm, a in vms:  # warm-up pass
        await _measure_pass(vm, a, b, samples)
    best = [float("inf")] * len(sizes)
    for _ in range(repeats):
        for i, (vm, a) in enumerate(vms):
            best[i] = min(best[i], await _measure_pass(vm, a, b, samples))
    out.extend(best)
    for vm, a in vms:
        await _teardown(vm, a)
        await drm_gem_object_put(a)
    await drm_gem_object_put(b)


def sm_map_split_us(sizes: list[int], samples: int, repeats: int) -> list[float]:
    """Microseconds per splitting sm_map in VMs of each size, measured in one kernel run."""
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
    note = "one drm_gpuvm_sm_map splitting a mapping (REMAP prev+next, MAP), example driver steps"
    return [
        Figure(
            "gpuvm-sm-map-10k", v_mid, baseline="gpuvm-sm-map-1k", baseline_value=base, note=note
        ),
        Figure(
            "gpuvm-sm-map-100k", v_big, baseline="gpuvm-sm-map-1k", baseline_value=base, note=note
        ),
    ]
