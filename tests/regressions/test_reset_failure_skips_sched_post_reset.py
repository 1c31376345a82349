"""reset-failure-skips-sched-post-reset: found by the liveness oracle (the
deadlock check: the application's wait on its job's fence never ends, the queue
stopped by the pre-reset is never restarted or killed), with the pre-fix
``panthor_device_reset_work()`` and not without it.

The driver program: a job runs on the GPU, a reset is scheduled and the MCU does
not come back from it (so the reset work unplugs the device).
"""

from __future__ import annotations

from panthor_testbed.fuzz.bugs import installed
from panthor_testbed.mmu.gpu_jobs import (
    gpu_file_close,
    gpu_group_create,
    gpu_job_wait,
    panthor_job_submit,
)
from panthor_testbed.mmu.hw.gpu_access import GPU_READ
from panthor_testbed.mmu.hw.gpu_control import gpu_control_of
from panthor_testbed.mmu.panthor_device import panthor_device_schedule_reset
from panthor_testbed.sched import Kernel
from panthor_testbed.sched.core.clock import msleep
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.dma_buf.dma_fence import DmaFence
from panthor_testbed.sched.drm.drm_gem import drm_gem_object_put

from ..mmu.driver_fixture import failures_text
from ..mmu.sched_fixture import tear_down
from ..mmu.test_panthor_sched import BO_VA, rig


async def program(k: Kernel) -> None:
    (r,) = await rig(k)
    gh = await gpu_group_create(r.pfile, r.vm_id)
    # A long job, still running when the reset comes: the pre-reset suspends its group.
    f = await panthor_job_submit(r.pfile, gh, [(BO_VA, GPU_READ)] * 2000)
    assert isinstance(f, DmaFence)
    await msleep(1)
    gpu_control_of().inject_boot_failure(2)
    await panthor_device_schedule_reset(r.ptdev)
    # The application waits for its job, then closes the file.
    assert await gpu_job_wait(f) != 0
    for _ in range(3000):
        if r.ptdev.unplug.done.done:
            break
        await msleep(1)
    assert r.ptdev.base.unplugged
    await drm_gem_object_put(r.bo)
    await gpu_file_close(r.pfile)
    await msleep(100)
    await tear_down(r.ptdev)


def test_without_the_injection_the_failed_reset_terminates_the_suspended_group() -> None:
    k = run(program)
    assert k.failures == [], failures_text(k.failures)


def test_with_the_injection_the_suspended_jobs_fence_is_never_signalled() -> None:
    with installed(inject=["reset-failure-skips-sched-post-reset"]):
        k = run(program)
    assert [f.kind for f in k.failures] == ["deadlock"], failures_text(k.failures)
    msg = k.failures[0].message + k.failures[0].report
    assert "waits for dma_fence drm_sched:panthor-queue" in msg and "drm_sched_stop()" in msg
