"""A minimal device for testing panthor_mmu.py on its own (no firmware, no scheduler).

* :func:`bring_up` / :func:`tear_down`: the MMU part of the device's init and
  release, with a teardown that frees the workqueues, the IRQ, the drmm
  resources and the pt cache, so a run's leak checks (memory ledger, physmem)
  are meaningful once a test has dropped everything it made.
* :func:`vm_bind_async`: ``panthor_ioctl_vm_bind_async()``'s submit sequence
  for one op (job create, resv prepare under drm_exec, arm, update resvs,
  push), as panthor_drv.c does it.
* :class:`RegLog`: the register writes the driver made (read off the trace).
* :func:`failures_text` / :func:`assert_clean`: the run's findings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from panthor_testbed.fuzz.scenarios.actors import vm_bind_async_submit
from panthor_testbed.mmu import panthor_device
from panthor_testbed.mmu.gem_shmem import PanthorGemObject, panthor_gem_create
from panthor_testbed.mmu.hw.csf import Csf, CsfConfig
from panthor_testbed.mmu.hw.mmu_hw import MaliHw, MaliHwConfig
from panthor_testbed.mmu.panthor_device import (
    PANTHOR_DEVICE_PM_STATE_ACTIVE,
    PanthorDevice,
)
from panthor_testbed.mmu.panthor_drm import drm_panthor_vm_bind_op
from panthor_testbed.mmu.panthor_mmu import (
    PanthorVm,
    panthor_mmu_init,
    panthor_mmu_pt_cache_fini,
    panthor_mmu_pt_cache_init,
    panthor_vm_create,
)
from panthor_testbed.mmu.physmem import PhysMem
from panthor_testbed.sched import (
    DmaFence,
    Kernel,
    KernelConfig,
    Strategy,
    current_kernel,
)
from panthor_testbed.sched.core.failure import Failure
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.deferred.irq import IrqDesc, free_irq
from panthor_testbed.sched.deferred.workqueue import (
    INIT_WORK,
    WQ_UNBOUND,
    WorkStruct,
    alloc_ordered_workqueue,
    alloc_workqueue,
    destroy_workqueue,
    flush_workqueue,
)
from panthor_testbed.sched.drm.drm_drv import drm_managed_release
from panthor_testbed.sched.drm.drm_file import DrmFile, drm_gem_handle_create

# 48-bit VA space split in two, as panthor_vm_pool_create_vm() does by default.
USER_VA = 1 << 47
RESETS_KEY = "test.resets"


async def _count_reset(work: WorkStruct) -> None:
    """Stands for panthor_device_reset_work(): the MMU tests only check that it ran."""
    k = current_kernel()
    k.objects[RESETS_KEY] = k.objects.get(RESETS_KEY, 0) + 1


def resets(k: Kernel) -> int:
    """How many times the reset work ran."""
    return int(k.objects.get(RESETS_KEY, 0))


async def bring_up(
    k: Kernel,
    *,
    as_present: int = 0xFF,
    dram: int = 64 << 20,
    coherent: bool = False,
    hw_config: MaliHwConfig | None = None,
    mmu: bool = True,
) -> PanthorDevice:
    """The device as far as panthor_mmu.c needs it; with ``mmu=False`` ``panthor_mmu_init``
    is left to the caller (fault injection of the init itself)."""
    phys = PhysMem(size=dram).install()
    cfg = hw_config or MaliHwConfig(as_present=as_present)
    hw = MaliHw(phys, cfg).install()
    # The CSF's memory view backs kernel-BO CPU mappings (the heap pool's contexts).
    Csf(hw, CsfConfig()).install()
    ptdev = PanthorDevice(hw, coherent=coherent)
    ptdev.gpu_info.mmu_features = hw.config.mmu_features
    ptdev.gpu_info.as_present = cfg.as_present
    ptdev.pm.state.v = PANTHOR_DEVICE_PM_STATE_ACTIVE
    desc = IrqDesc(40, "mmu")
    hw.set_mmu_irq_handler(desc.trigger)
    ptdev.irqs["mmu"] = desc
    panthor_device.panthor_cleanup_wq = await alloc_workqueue("panthor-cleanup", WQ_UNBOUND, 0)
    ptdev.reset.wq = await alloc_ordered_workqueue("panthor-reset-wq", 0)
    ptdev.reset.work = INIT_WORK(_count_reset, "&ptdev->reset.work", ptdev)
    assert panthor_device.panthor_cleanup_wq is not None and ptdev.reset.wq is not None
    assert await panthor_mmu_pt_cache_init() == 0
    if mmu:
        assert await panthor_mmu_init(ptdev) == 0
    k.objects["ptdev"] = ptdev
    return ptdev


async def tear_down(ptdev: PanthorDevice) -> None:
    """Release what :func:`bring_up` made (the devm IRQ, the drmm actions, the wqs, pt_cache).

    Call it after every VM, BO and job of the test is gone.
    """
    cleanup_wq = panthor_device.panthor_cleanup_wq
    assert cleanup_wq is not None
    await flush_workqueue(cleanup_wq)
    if ptdev.mmu is not None and ptdev.mmu.irq.desc is not None:
        desc = ptdev.mmu.irq.desc
        if any(a.dev_id is ptdev.mmu.irq for a in desc.actions):
            await free_irq(desc, ptdev.mmu.irq)  # devm: released with the device
    await drm_managed_release(ptdev.base)
    await destroy_workqueue(cleanup_wq)
    panthor_device.panthor_cleanup_wq = None
    assert ptdev.reset.wq is not None
    await destroy_workqueue(ptdev.reset.wq)
    panthor_mmu_pt_cache_fini()


async def user_vm(ptdev: PanthorDevice) -> PanthorVm:
    """A user VM with the default split (the lower half for the user)."""
    vm = await panthor_vm_create(ptdev, False, USER_VA, USER_VA, USER_VA, USER_VA)
    assert isinstance(vm, PanthorVm), vm
    return vm


async def new_bo(size: int, name: str = "bo", **kw: Any) -> PanthorGemObject:
    bo = await panthor_gem_create(size, name, **kw)
    assert isinstance(bo, PanthorGemObject), bo
    return bo


async def bo_handle(file: DrmFile, bo: PanthorGemObject) -> int:
    ret, handle = await drm_gem_handle_create(file, bo)
    assert ret == 0
    return handle


async def vm_bind_async(
    file: DrmFile, vm: PanthorVm, op: drm_panthor_vm_bind_op
) -> tuple[int, DmaFence | None]:
    """One op of ``panthor_ioctl_vm_bind_async()``: returns (ret, finished fence reference)."""
    return await vm_bind_async_submit(file, vm, op)


class RegLog:
    """The ``gpu_write`` events of a run's trace from a mark on: ``(register name, value)``."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.start = len(self.events())

    def events(self) -> list[tuple[str, str]]:
        return [(e[4], e[5]) for e in self.k.trace.events if e[3] == "gpu_write"]

    def mark(self) -> None:
        self.start = len(self.events())

    def writes(self, prefix: str = "") -> list[tuple[str, int]]:
        out = []
        for reg, value in self.events()[self.start :]:
            if reg.startswith(prefix):
                out.append((reg, int(value, 16)))
        return out


def failures_text(failures: list[Failure]) -> str:
    return "\n".join(f"{f.kind}: {f.message}\n{f.report}" for f in failures)


def assert_clean(k: Kernel) -> None:
    assert k.failures == [], failures_text(k.failures)


Body = Callable[[Kernel, PanthorDevice], Awaitable[None]]


def run_dev(
    body: Body,
    config: KernelConfig | None = None,
    strategy: Strategy | None = None,
    **kw: Any,
) -> Kernel:
    """One run: bring the device up, run ``body``, tear the device down."""

    async def scenario(k: Kernel) -> None:
        ptdev = await bring_up(k, **kw)
        await body(k, ptdev)
        await tear_down(ptdev)

    return run(scenario, config=config, strategy=strategy)


def assert_warns(k: Kernel, *fragments: str) -> None:
    """The run's findings are exactly one WARN per fragment, in order, each naming it."""
    assert [f.kind for f in k.failures] == ["warn"] * len(fragments), failures_text(k.failures)
    for f, frag in zip(k.failures, fragments, strict=True):
        assert frag in f.message, (frag, f.message)
