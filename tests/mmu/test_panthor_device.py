"""panthor_device.c, panthor_gpu.c and panthor_fw.c as the device's life sees them:
probe, the reset work's order, runtime suspend/resume, unplug, the MCU VM on AS0.

Each test names the behaviour it checks; the order tests read it off the
register writes of the run's trace (the hardware's view).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from panthor_testbed.fuzz.bugs import installed
from panthor_testbed.mmu import regs as R
from panthor_testbed.mmu.bringup import DeviceInitError, device_fini, device_init, device_unplug
from panthor_testbed.mmu.hw.gpu_control import GpuControlConfig, gpu_control_of
from panthor_testbed.mmu.hw.mmu_hw import hw_of
from panthor_testbed.mmu.panthor_device import (
    PANTHOR_DEVICE_PM_STATE_ACTIVE,
    PANTHOR_DEVICE_PM_STATE_SUSPENDED,
    PanthorDevice,
    panthor_device_resume_and_get,
    panthor_device_schedule_reset,
)
from panthor_testbed.mmu.panthor_fw import panthor_fw_vm
from panthor_testbed.mmu.panthor_gpu import panthor_gpu_soft_reset
from panthor_testbed.mmu.pm_runtime import pm_runtime_put_autosuspend
from panthor_testbed.sched import Kernel, current_kernel
from panthor_testbed.sched.core.clock import msleep
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.drm.drm_drv import RPM_ACTIVE, RPM_SUSPENDED
from panthor_testbed.sched.errno import ETIMEDOUT
from panthor_testbed.sched.locking.atomic import atomic_set

from .driver_fixture import RegLog, failures_text

Body = Callable[[Kernel, PanthorDevice], Awaitable[None]]


def run_device(body: Body, **kw: Any) -> Kernel:
    """Probe, ``body``, unplug and fini, with 7051f6ba968f in.

    Without that later fix a FW event still pending at the unplug (the boot
    interrupt of a resume that just happened) is processed after
    ``panthor_fw_unplug()`` freed the interfaces: the catalogue's
    ``fw-events-work-after-unplug``, not what these tests are about.
    """

    async def scenario(k: Kernel) -> None:
        ptdev = await device_init(k, **kw)
        await body(k, ptdev)
        await device_fini(ptdev)

    with installed(patch=["fw-events-work-after-unplug"]):
        k = run(scenario)
    assert k.failures == [], failures_text(k.failures)
    return k


async def wait_reset_done(ptdev: PanthorDevice, resets: int) -> None:
    hw = hw_of()
    for _ in range(2000):
        if hw.soft_resets >= resets and not ptdev.reset.pending.v:
            return
        await msleep(1)
    raise AssertionError("the reset work did not complete")


def first(writes: list[tuple[str, int]], reg: str, pred: Callable[[int], bool] = bool) -> int:
    for i, (name, value) in enumerate(writes):
        if name == reg and pred(value):
            return i
    raise AssertionError(f"no write of {reg}: {writes}")


# ---------------------------------------------------------------------- probe


def test_probe_boots_the_mcu_with_its_vm_on_as0_and_fini_leaves_nothing_behind() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        vm = panthor_fw_vm(ptdev)
        assert vm is not None
        out["as"] = vm.as_.id
        out["transtab"] = hw_of().as_[0].enabled
        out["boots"] = gpu_control_of().boots
        out["mcu"] = hw_of().peek32(R.MCU_STATUS)
        out["sections"] = [s.mem.va_node.start for s in ptdev.fw.sections]
        out["state"] = ptdev.pm.state.v
        out["l2"] = hw_of().peek32(R.L2_READY_LO)

    run_device(body)
    assert out == {
        "as": 0,
        "transtab": True,
        "boots": 1,
        "mcu": R.MCU_STATUS_ENABLED,
        "sections": [0x0, 0x10000, 0x04000000],
        "state": PANTHOR_DEVICE_PM_STATE_ACTIVE,
        "l2": 1,
    }


def test_an_mcu_that_never_boots_fails_the_probe_cleanly() -> None:
    """panthor_fw_start() times out (1 s), panthor_fw_init() unplugs the FW, the probe
    unwinds through err_unplug_mmu/err_unplug_gpu/err_rpm_put: no leak, no MMIO while off."""
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        try:
            await device_init(k, gpu_control=GpuControlConfig(boot_failures=1))
        except DeviceInitError as e:
            out["errno"] = e.errno
        out["t"] = k.now

    k = run(scenario)
    assert out["errno"] == -ETIMEDOUT
    assert isinstance(out["t"], int) and out["t"] >= 1_000_000_000
    assert k.failures == [], failures_text(k.failures)


# ---------------------------------------------------------------------- the reset work


def test_the_reset_work_runs_in_the_kernels_order() -> None:
    """sched pre-reset, FW pre-reset (job IRQ masked), MMU pre-reset (MMU IRQ masked),
    GPU soft reset, L2 power on, MMU post-reset (MMU IRQ unmasked), FW post-reset (the
    MCU VM back on AS0, the MCU rebooted), reset.pending cleared."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        log = RegLog(k)
        await panthor_device_schedule_reset(ptdev)
        await wait_reset_done(ptdev, 1)
        w = log.writes()
        out["order"] = [
            first(w, "JOB_INT_MASK", lambda v: v == 0),
            first(w, "MMU_INT_MASK", lambda v: v == 0),
            first(w, "GPU_CMD", lambda v: v == R.GPU_SOFT_RESET),
            first(w, "L2_PWRON_LO"),
            first(w, "MMU_INT_MASK", lambda v: v != 0),
            first(w, "AS_TRANSTAB_LO(0)"),
            first(w, "MCU_CONTROL", lambda v: v == R.MCU_CONTROL_AUTO),
        ]
        for _ in range(100):
            if gpu_control_of().boots == 2:
                break
            await msleep(1)
        out["boots"] = gpu_control_of().boots
        vm = panthor_fw_vm(ptdev)
        assert vm is not None
        out["as"] = vm.as_.id
        out["fast"] = ptdev.reset.fast
        out["pending_reqs"] = ptdev.gpu.pending_reqs

    run_device(body)
    assert out["pending_reqs"] == 0  # the GPU IRQ acknowledged RESET_COMPLETED
    order = out["order"]
    assert isinstance(order, list)
    assert order == sorted(order), order
    assert out["boots"] == 2 and out["as"] == 0
    assert out["fast"] is False  # a reset on hang is a slow one


def test_a_reset_while_suspending_is_skipped() -> None:
    """pm.state != ACTIVE: the work returns at once (a slow reset happens at resume)."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        log = RegLog(k)
        await atomic_set(ptdev.pm.state, PANTHOR_DEVICE_PM_STATE_SUSPENDED)
        await atomic_set(ptdev.reset.pending, 1)
        assert ptdev.reset.wq is not None and ptdev.reset.work is not None
        from panthor_testbed.sched.deferred.workqueue import flush_work, queue_work

        await queue_work(ptdev.reset.wq, ptdev.reset.work)
        await flush_work(ptdev.reset.work)
        out["writes"] = [r for r, _ in log.writes() if r == "GPU_CMD"]
        out["pending"] = ptdev.reset.pending.v
        await atomic_set(ptdev.pm.state, PANTHOR_DEVICE_PM_STATE_ACTIVE)
        await atomic_set(ptdev.reset.pending, 0)

    run_device(body)
    assert out == {"writes": [], "pending": 1}


def test_a_reset_whose_mcu_does_not_reboot_unplugs_the_device() -> None:
    """panthor_fw_post_reset() fails: sched post-reset(reset_failed=true), then
    panthor_device_unplug() from the reset work; a later unplug waits for it."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        gpu_control_of().inject_boot_failure(1)
        await panthor_device_schedule_reset(ptdev)
        for _ in range(3000):
            if ptdev.unplug.done.done:
                break
            await msleep(1)
        out["unplugged"] = ptdev.base.unplugged
        out["done"] = bool(ptdev.unplug.done.done)
        await device_unplug(ptdev)  # the second caller: returns at once

    run_device(body)
    assert out == {"unplugged": True, "done": True}


def test_a_soft_reset_that_never_completes_times_out_and_poisons_the_next_one() -> None:
    """No RESET_COMPLETED: -ETIMEDOUT after 100 ms, and (the seed era's behaviour)
    ``pending_reqs`` keeps RESET_COMPLETED, so the next soft reset WARNs and is
    never issued: the GPU cannot be reset again (the WARN ends the run)."""
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        ptdev = await device_init(k)
        hw_of().inject_stuck_reset(1)
        t0 = k.now
        out["ret"] = await panthor_gpu_soft_reset(ptdev)
        out["dt"] = k.now - t0
        out["pending"] = ptdev.gpu.pending_reqs
        out["resets"] = hw_of().soft_resets
        await panthor_gpu_soft_reset(ptdev)
        out["issued"] = hw_of().soft_resets - out["resets"]  # type: ignore[operator]
        await device_fini(ptdev)

    k = run(scenario)
    assert out["ret"] == -ETIMEDOUT and "issued" not in out
    assert out["pending"] == R.GPU_IRQ_RESET_COMPLETED
    assert isinstance(out["dt"], int) and out["dt"] >= 100_000_000
    assert [f.kind for f in k.failures] == ["warn"], failures_text(k.failures)
    assert "panthor_gpu_soft_reset" in k.failures[0].message


# ---------------------------------------------------------------------- runtime PM


def test_the_idle_device_autosuspends_and_resume_and_get_brings_the_mcu_back() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        dev = ptdev.base.dev
        await msleep(100)  # > the 50 ms autosuspend delay
        out["suspended"] = (dev.runtime_status, ptdev.pm.state.v, hw_of().powered)
        vm = panthor_fw_vm(ptdev)
        assert vm is not None
        out["as_suspended"] = vm.as_.id
        assert await panthor_device_resume_and_get(ptdev) == 0
        out["resumed"] = (dev.runtime_status, ptdev.pm.state.v, hw_of().powered)
        out["as_resumed"] = vm.as_.id
        out["fast"] = ptdev.reset.fast
        out["boots"] = gpu_control_of().boots
        await pm_runtime_put_autosuspend(dev)

    run_device(body, runtime_pm=True)
    assert out == {
        "suspended": (RPM_SUSPENDED, PANTHOR_DEVICE_PM_STATE_SUSPENDED, False),
        "as_suspended": -1,
        "resumed": (RPM_ACTIVE, PANTHOR_DEVICE_PM_STATE_ACTIVE, True),
        "as_resumed": 0,
        "fast": True,  # the MCU halted cleanly at suspend: a fast reset
        "boots": 2,
    }


def test_a_reset_pending_at_suspend_forces_a_slow_reset_at_resume() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        await msleep(100)
        assert ptdev.base.dev.runtime_status == RPM_SUSPENDED
        await atomic_set(ptdev.reset.pending, 1)
        assert await panthor_device_resume_and_get(ptdev) == 0
        out["fast"] = ptdev.reset.fast
        out["pending"] = ptdev.reset.pending.v
        out["soft_resets"] = hw_of().soft_resets
        await pm_runtime_put_autosuspend(ptdev.base.dev)

    run_device(body, runtime_pm=True)
    # The slow path: the suspend's GPU soft reset happened (panthor_gpu_suspend()
    # on a non-fast reset soft-resets); here the MCU halted, so the suspend was a
    # fast one (no soft reset) and the resume was forced slow.
    assert out == {"fast": False, "pending": 0, "soft_resets": 0}


def test_a_failed_resume_needs_recovery_and_the_next_resume_and_get_retries() -> None:
    """The MCU does not boot at resume (fast, then slow): the resume fails, pm.state
    goes back to SUSPENDED with recovery_needed; panthor_device_resume_and_get()
    clears the runtime error so the next call resumes for real."""
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        dev = ptdev.base.dev
        await msleep(100)
        assert dev.runtime_status == RPM_SUSPENDED
        gpu_control_of().inject_boot_failure(2)
        out["first"] = await panthor_device_resume_and_get(ptdev)
        out["after_first"] = (ptdev.pm.state.v, ptdev.pm.recovery_needed.v, dev.power.runtime_error)
        out["second"] = await panthor_device_resume_and_get(ptdev)
        out["after_second"] = (dev.runtime_status, ptdev.pm.state.v)
        await pm_runtime_put_autosuspend(dev)

    run_device(body, runtime_pm=True)
    assert out["first"] == -ETIMEDOUT
    assert out["after_first"] == (PANTHOR_DEVICE_PM_STATE_SUSPENDED, 0, 0)
    assert out["second"] == 0
    assert out["after_second"] == (RPM_ACTIVE, PANTHOR_DEVICE_PM_STATE_ACTIVE)


def test_unplug_twice_at_once_the_second_waits_for_the_first() -> None:
    out: dict[str, object] = {}

    async def body(k: Kernel, ptdev: PanthorDevice) -> None:
        order: list[str] = []

        async def unplugger(name: str) -> None:
            await device_unplug(ptdev)
            order.append(name)
            out[name] = bool(ptdev.unplug.done.done)

        t1 = current_kernel().spawn(unplugger, "a", name="unplug-a")
        t2 = current_kernel().spawn(unplugger, "b", name="unplug-b")
        await t1.join()
        await t2.join()
        out["n"] = len(order)

    run_device(body)
    assert out == {"a": True, "b": True, "n": 2}
