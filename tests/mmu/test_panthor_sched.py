"""The scheduler side of the driver: groups on CSG slots, GPU jobs, faults, timeouts, resets.

Every scenario runs the real paths: GROUP_SUBMIT's drm_exec/resv dance,
drm_sched's run work calling ``queue_run_job()``, the tick binding groups
(``panthor_vm_active()``), the CSF model executing the job's memory accesses
through the MMU model, the job IRQ, ``group_sync_upd_work()`` signalling the
done fence, and on failure the MMU IRQ, the TDR and the reset work.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from panthor_testbed.mmu.gem_shmem import PanthorGemObject, panthor_gem_create
from panthor_testbed.mmu.gpu_jobs import (
    gpu_file_close,
    gpu_file_open,
    gpu_group_create,
    gpu_job_wait,
    gpu_vm_create,
    gpu_wait_groups_released,
    group_of,
    panthor_job_submit,
    vm_of,
)
from panthor_testbed.mmu.hw.csf import csf_of
from panthor_testbed.mmu.hw.gpu_access import GPU_READ, GPU_WRITE
from panthor_testbed.mmu.panthor_device import PanthorDevice, PanthorFile
from panthor_testbed.mmu.panthor_drm import (
    DRM_PANTHOR_GROUP_STATE_FATAL_FAULT,
    DRM_PANTHOR_GROUP_STATE_TIMEDOUT,
    drm_panthor_group_get_state,
)
from panthor_testbed.mmu.panthor_mmu import (
    PanthorVm,
    panthor_vm_map_bo_range,
    panthor_vm_pool_destroy_vm,
    panthor_vm_resv,
    panthor_vm_unmap_range,
)
from panthor_testbed.mmu.panthor_sched import (
    PANTHOR_CS_GROUP_SUSPENDED,
    PANTHOR_CS_GROUP_TERMINATED,
    panthor_group_destroy,
    panthor_group_get_state,
    panthor_sched_resume,
    panthor_sched_suspend,
    queue_start,
    queue_stop,
)
from panthor_testbed.sched import PCT, ErrPtr, Kernel, RandomWalk
from panthor_testbed.sched.core.clock import msleep, udelay
from panthor_testbed.sched.core.failure import Failure
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.core.strategy import Strategy
from panthor_testbed.sched.dma_buf.dma_fence import DmaFence, dma_fence_is_signaled_atomic
from panthor_testbed.sched.dma_buf.dma_resv import (
    DmaResv,
    DmaResvUsage,
    dma_resv_for_each_fence,
    dma_resv_lock,
    dma_resv_unlock,
)
from panthor_testbed.sched.drm.drm_gem import drm_gem_object_put
from panthor_testbed.sched.drm.drm_sched import drm_sched_wqueue_stop
from panthor_testbed.sched.drm.drm_sched_types import to_drm_sched_fence
from panthor_testbed.sched.errno import ECANCELED, EINVAL, ETIME, ETIMEDOUT
from panthor_testbed.sched.lib.list import list_is_on

from .sched_fixture import bring_up, resets, tear_down

BO_VA = 0x100000
BO_SIZE = 16 * 4096


@dataclass
class Rig:
    ptdev: PanthorDevice
    pfile: PanthorFile
    vm_id: int
    vm: PanthorVm
    bo: PanthorGemObject


async def rig(k: Kernel, *, as_present: int = 0xFF, vms: int = 1) -> list[Rig]:
    """A device, one file, ``vms`` VMs each with a 16-page BO mapped at BO_VA."""
    ptdev = await bring_up(k, as_present=as_present)
    pfile = await gpu_file_open(ptdev)
    assert isinstance(pfile, PanthorFile)
    out = []
    for i in range(vms):
        vm_id = await gpu_vm_create(pfile)
        assert vm_id > 0
        vm = vm_of(pfile, vm_id)
        bo = await panthor_gem_create(BO_SIZE, f"bo{i}")
        assert isinstance(bo, PanthorGemObject)
        assert await panthor_vm_map_bo_range(vm, bo, 0, BO_SIZE, BO_VA, 0) == 0
        out.append(Rig(ptdev, pfile, vm_id, vm, bo))
    return out


async def unrig(rigs: list[Rig], *, unmap: bool = True) -> None:
    """Unmap, close the file, wait for every group's release, unplug: nothing may leak."""
    for r in rigs:
        if unmap:
            assert await panthor_vm_unmap_range(r.vm, BO_VA, BO_SIZE) == 0
        await drm_gem_object_put(r.bo)
    await gpu_file_close(rigs[0].pfile)
    assert await gpu_wait_groups_released(rigs[0].ptdev)
    await tear_down(rigs[0].ptdev)


def findings(k: Kernel) -> str:
    return "\n".join(f"{f.kind}: {f.message}\n{f.report}" for f in k.failures)


def gpu_accesses(k: Kernel) -> list[tuple[str, int, int]]:
    """Every translated GPU access of the jobs (not the MCU's, on AS0): (kind, VA, PA)."""
    out = []
    for _step, _t, _tid, kind, obj, detail in k.trace.events:
        if kind == "gpu-access" and obj != "AS0":
            m = re.match(r"(\w+) (0x[0-9a-f]+) -> (0x[0-9a-f]+)", detail)
            assert m is not None
            out.append((m.group(1), int(m.group(2), 16), int(m.group(3), 16)))
    return out


def bo_pa(bo: PanthorGemObject, offset: int) -> int:
    assert bo.pages is not None
    return (bo.pages[offset >> 12] << 12) | (offset & 0xFFF)


def run_checked(
    scenario: Callable[[Kernel], Awaitable[None]], strategy: Strategy | None = None
) -> Kernel:
    k = run(scenario, strategy=strategy)
    assert k.failures == [], findings(k)
    return k


# ---------------------------------------------------------------------- jobs


def test_a_job_reads_and_writes_what_is_mapped_through_the_vms_as() -> None:
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        (r,) = await rig(k)
        gh = await gpu_group_create(r.pfile, r.vm_id)
        acc = [(BO_VA + 0x10, GPU_READ), (BO_VA + 0x5008, GPU_WRITE), (BO_VA + 0xF000, GPU_READ)]
        f = await panthor_job_submit(r.pfile, gh, acc)
        assert isinstance(f, DmaFence)
        out["err"] = await gpu_job_wait(f)
        # The group stays on its slot while idle: its VM keeps the AS, active.
        out["as"] = r.vm.as_.id
        out["active"] = r.vm.as_.active_cnt.refs
        out["pa"] = {va: bo_pa(r.bo, va - BO_VA) for va, _ in acc}
        assert await panthor_group_destroy(r.pfile, gh) == 0
        assert await gpu_wait_groups_released(r.ptdev)
        # Leaving the slot made the VM idle: on the LRU list, AS kept.
        assert r.ptdev.mmu is not None
        lru = r.ptdev.mmu.as_.lru_list
        out["idle"] = (r.vm.as_.active_cnt.refs, list_is_on(r.vm.as_.lru_node, lru))
        out["as_after"] = r.vm.as_.id
        await unrig([r])

    k = run_checked(scenario)
    assert out["err"] == 0
    assert out["as"] == 1 and out["active"] == 1  # AS0 is the MCU's
    assert out["idle"] == (0, True) and out["as_after"] == 1
    seen = {(kind, va): pa for kind, va, pa in gpu_accesses(k)}
    pa = out["pa"]
    assert isinstance(pa, dict)
    assert seen[("READ", BO_VA + 0x10)] == pa[BO_VA + 0x10]
    assert seen[("WRITE", BO_VA + 0x5008)] == pa[BO_VA + 0x5008]
    assert seen[("READ", BO_VA + 0xF000)] == pa[BO_VA + 0xF000]


def test_a_job_fence_goes_into_the_vm_resv_and_every_external_bo_as_bookkeep() -> None:
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        (r,) = await rig(k)  # r.bo has its own resv: an external object of the VM
        gh = await gpu_group_create(r.pfile, r.vm_id)
        f = await panthor_job_submit(r.pfile, gh, [(BO_VA, GPU_READ)])
        assert isinstance(f, DmaFence)

        async def has(resv: DmaResv) -> bool:
            await dma_resv_lock(resv, None)
            fences = dma_resv_for_each_fence(resv, DmaResvUsage.BOOKKEEP)
            usages = [u for fe, u in fences if fe is f]
            await dma_resv_unlock(resv)
            return usages == [DmaResvUsage.BOOKKEEP]

        out["vm"] = await has(panthor_vm_resv(r.vm))
        out["bo"] = await has(r.bo.resv)
        out["err"] = await gpu_job_wait(f)
        await unrig([r])

    run_checked(scenario)
    assert out == {"vm": True, "bo": True, "err": 0}


def test_jobs_on_two_queues_of_one_group_run_and_complete_in_order() -> None:
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        (r,) = await rig(k)
        gh = await gpu_group_create(r.pfile, r.vm_id, queues=2)
        fences = [
            await panthor_job_submit(
                r.pfile, gh, [(BO_VA + 0x1000 * i, GPU_READ)], queue_index=i % 2
            )
            for i in range(6)
        ]
        errs = []
        for f in fences:
            assert isinstance(f, DmaFence)
            errs.append(await gpu_job_wait(f))
        out["errs"] = errs
        out["seqnos"] = [csf_of(r.ptdev.iomem).mem_read(bo_pa_kbo(r, q)) for q in range(2)]
        await unrig([r])

    def bo_pa_kbo(r: Rig, q: int) -> int:
        group = group_of(r.pfile, 1)
        kmap = group.syncobjs.kmap  # type: ignore[union-attr]
        return kmap.pa(16 * q)  # type: ignore[union-attr]

    run_checked(scenario)
    assert out["errs"] == [0] * 6
    assert out["seqnos"] == [3, 3]  # one SYNC_ADD64 per job on each queue's sync object


# ---------------------------------------------------------------------- faults


def test_a_fault_kills_the_group_its_as_stays_faulty_until_the_next_panthor_vm_active() -> None:
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        (r,) = await rig(k)
        assert r.ptdev.mmu is not None
        gh = await gpu_group_create(r.pfile, r.vm_id)
        f = await panthor_job_submit(r.pfile, gh, [(BO_VA, GPU_READ), (0x4000_0000, GPU_WRITE)])
        assert isinstance(f, DmaFence)
        out["err"] = await gpu_job_wait(f)
        g = group_of(r.pfile, gh)
        out["group"] = (g.state, g.fatal_queues, g.csg_id)
        st = drm_panthor_group_get_state(group_handle=gh)
        assert await panthor_group_get_state(r.pfile, st) == 0
        out["uapi"] = (st.state, st.fatal_queues)
        out["faulty"] = r.ptdev.mmu.as_.faulty_mask
        out["as"] = r.vm.as_.id
        out["fault_va"] = [x.va for x in r.ptdev.iomem.faults]
        # A killed group takes no more jobs.
        f2 = await panthor_job_submit(r.pfile, gh, [(BO_VA, GPU_READ)])
        out["resubmit"] = f2.err if isinstance(f2, ErrPtr) else "accepted"
        # A new group on the same VM: the tick binds it, panthor_vm_active()
        # clears the fault and re-enables the AS, and its job runs.
        gh2 = await gpu_group_create(r.pfile, r.vm_id)
        f3 = await panthor_job_submit(r.pfile, gh2, [(BO_VA + 0x2000, GPU_READ)])
        assert isinstance(f3, DmaFence)
        out["err2"] = await gpu_job_wait(f3)
        out["faulty2"] = r.ptdev.mmu.as_.faulty_mask
        out["as2"] = r.vm.as_.id
        out["unhandled"] = r.vm.unhandled_fault
        await unrig([r])

    run_checked(scenario)
    assert out["err"] == -EINVAL
    assert out["group"] == (PANTHOR_CS_GROUP_TERMINATED, 1, -1)
    assert out["uapi"] == (DRM_PANTHOR_GROUP_STATE_FATAL_FAULT, 1)
    assert out["faulty"] == 1 << 1 and out["as"] == 1
    assert out["fault_va"] == [0x4000_0000]
    assert out["resubmit"] == -EINVAL
    assert out["err2"] == 0 and out["faulty2"] == 0 and out["as2"] == 1
    assert out["unhandled"] is False


def test_a_fault_on_one_vm_does_not_kill_groups_on_other_vms() -> None:
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        a, b = await rig(k, vms=2)
        ga = await gpu_group_create(a.pfile, a.vm_id)
        gb = await gpu_group_create(b.pfile, b.vm_id)
        fb = await panthor_job_submit(b.pfile, gb, [(BO_VA + i * 4096, GPU_READ) for i in range(8)])
        fa = await panthor_job_submit(a.pfile, ga, [(0x4000_0000, GPU_READ)])
        assert isinstance(fa, DmaFence) and isinstance(fb, DmaFence)
        out["a"] = await gpu_job_wait(fa)
        out["b"] = await gpu_job_wait(fb)
        out["b_alive"] = group_of(b.pfile, gb).fatal_queues
        await unrig([a, b])

    run_checked(scenario)
    assert out == {"a": -EINVAL, "b": 0, "b_alive": 0}


# ---------------------------------------------------------------------- AS pressure


def test_more_vms_than_as_slots_evicts_the_least_recently_used_idle_vm() -> None:
    """Two user AS (AS0 is the MCU's), three VMs with work: binding the third VM's
    group evicts a group, whose VM goes idle and loses its AS to the newcomer."""
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        rigs = await rig(k, as_present=0b111, vms=3)
        ghs = [await gpu_group_create(r.pfile, r.vm_id) for r in rigs]
        rounds = []
        for _ in range(3):
            fences = [
                await panthor_job_submit(r.pfile, gh, [(BO_VA, GPU_READ), (BO_VA + 64, GPU_WRITE)])
                for r, gh in zip(rigs, ghs, strict=True)
            ]
            errs = []
            for f in fences:
                assert isinstance(f, DmaFence)
                errs.append(await gpu_job_wait(f))
            rounds.append((errs, [r.vm.as_.id for r in rigs]))
        out["rounds"] = rounds
        await unrig(rigs)

    k = run_checked(scenario)
    rounds = out["rounds"]
    assert isinstance(rounds, list)
    binds = [
        (obj, detail) for _s, _t, _tid, kind, obj, detail in k.trace.events if kind == "group-bind"
    ]
    for errs, ases in rounds:
        assert errs == [0, 0, 0]
        assert sorted(a for a in ases if a >= 0) == [1, 2] and ases.count(-1) == 1
    # Some AS served two VMs: the LRU eviction in panthor_vm_active() happened.
    by_as: dict[str, set[str]] = {}
    for group, detail in binds:
        as_ = detail.split()[1]
        by_as.setdefault(as_, set()).add(group)
    assert any(len(groups) > 1 for groups in by_as.values()), binds
    assert set(by_as) == {"AS1", "AS2"}


# ---------------------------------------------------------------------- timeouts and resets


async def wait_reset_done(k: Kernel, ptdev: PanthorDevice) -> None:
    for _ in range(1000):
        if resets(k) and not ptdev.reset.pending.v:
            return
        await msleep(1)
    raise AssertionError("no reset happened")


def test_a_hard_hung_job_times_out_its_group_and_the_gpu_is_reset() -> None:
    """TDR -> queue_timedout_job() -> tick: the CSG never acks -> reset work ->
    the stopped groups restart; the hung group's jobs fail with -ETIMEDOUT and
    the other groups keep working."""
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        a, b = await rig(k, vms=2)
        ga = await gpu_group_create(a.pfile, a.vm_id)
        gb = await gpu_group_create(b.pfile, b.vm_id)
        f = await panthor_job_submit(a.pfile, ga, [(BO_VA, GPU_READ)], hang="hard")
        assert isinstance(f, DmaFence)
        out["err"] = await gpu_job_wait(f)
        out["t"] = k.now
        await wait_reset_done(k, a.ptdev)
        out["resets"] = resets(k)
        st = drm_panthor_group_get_state(group_handle=ga)
        assert await panthor_group_get_state(a.pfile, st) == 0
        out["state"] = st.state
        fb = await panthor_job_submit(b.pfile, gb, [(BO_VA, GPU_READ)])
        assert isinstance(fb, DmaFence)
        out["after"] = await gpu_job_wait(fb)
        out["csf_resets"] = csf_of(a.ptdev.iomem).resets
        await unrig([a, b])

    run_checked(scenario)
    assert out["err"] == -ETIMEDOUT
    assert isinstance(out["t"], int) and out["t"] >= 5_000_000_000  # JOB_TIMEOUT_MS
    assert out["resets"] == 1 and out["csf_resets"] == 1
    assert isinstance(out["state"], int) and out["state"] & DRM_PANTHOR_GROUP_STATE_TIMEDOUT
    assert out["after"] == 0


def test_a_soft_hung_job_times_out_without_a_gpu_reset() -> None:
    """The CSG still answers: terminating the timed-out group is enough."""
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        (r,) = await rig(k)
        gh = await gpu_group_create(r.pfile, r.vm_id)
        f = await panthor_job_submit(r.pfile, gh, [(BO_VA, GPU_READ)], hang="soft")
        assert isinstance(f, DmaFence)
        out["err"] = await gpu_job_wait(f)
        await msleep(200)
        out["resets"] = resets(k)
        await unrig([r])

    run_checked(scenario)
    assert out == {"err": -ETIMEDOUT, "resets": 0}


def test_suspend_saves_a_running_group_and_resume_finishes_its_job() -> None:
    """panthor_sched_suspend(): the CSG is suspended mid-job, the group leaves its slot
    (its VM goes idle); panthor_sched_resume() ticks it back on (RESUME) and the job
    finishes from where it stopped."""
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        (r,) = await rig(k)
        gh = await gpu_group_create(r.pfile, r.vm_id)
        acc = [(BO_VA + i * 4096, GPU_READ) for i in range(16)]
        f = await panthor_job_submit(r.pfile, gh, acc)
        assert isinstance(f, DmaFence)
        await udelay(40)  # a few accesses in
        await panthor_sched_suspend(r.ptdev)
        g = group_of(r.pfile, gh)
        out["suspended"] = (g.state, g.csg_id, r.vm.as_.active_cnt.refs)
        out["running"] = not dma_fence_is_signaled_atomic(f)
        await panthor_sched_resume(r.ptdev)
        out["err"] = await gpu_job_wait(f)
        await unrig([r])

    k = run_checked(scenario)
    assert out["suspended"] == (PANTHOR_CS_GROUP_SUSPENDED, -1, 0)
    assert out["running"] is True and out["err"] == 0
    # The stream fetch, then every page exactly once: the resumed CS did not restart.
    reads = [va for kind, va, _ in gpu_accesses(k) if kind == "READ" and va < 0x8000_0000_0000]
    assert sorted(reads) == sorted([BO_VA] + [BO_VA + i * 4096 for i in range(16)])
    csg = [e[5] for e in k.trace.events if e[3] == "csf" and "->" in e[5]]
    assert any("START -> SUSPEND" in c for c in csg) and any("-> RESUME" in c for c in csg)


# ---------------------------------------------------------------------- destroy while busy


def test_destroying_a_busy_group_cancels_its_running_job() -> None:
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        (r,) = await rig(k)
        gh = await gpu_group_create(r.pfile, r.vm_id)
        f = await panthor_job_submit(r.pfile, gh, [(BO_VA + i * 4096, GPU_READ) for i in range(16)])
        assert isinstance(f, DmaFence)
        await udelay(40)  # the job is running
        out["running"] = not dma_fence_is_signaled_atomic(f)
        out["destroy"] = await panthor_group_destroy(r.pfile, gh)
        out["err"] = await gpu_job_wait(f)
        await unrig([r])

    run_checked(scenario)
    assert out == {"running": True, "destroy": 0, "err": -ECANCELED}


def test_destroying_a_busy_vm_unmaps_it_and_the_running_job_faults() -> None:
    """panthor_vm_pool_destroy_vm(): "jobs should experience page faults and be killed"."""
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        (r,) = await rig(k)
        gh = await gpu_group_create(r.pfile, r.vm_id)
        f = await panthor_job_submit(r.pfile, gh, [(BO_VA + i * 4096, GPU_READ) for i in range(16)])
        assert isinstance(f, DmaFence)
        await udelay(40)
        assert r.pfile.vms is not None
        out["destroy"] = await panthor_vm_pool_destroy_vm(r.pfile.vms, r.vm_id)
        out["err"] = await gpu_job_wait(f)
        await unrig([r], unmap=False)

    run_checked(scenario)
    assert out == {"destroy": 0, "err": -EINVAL}


# ---------------------------------------------------------------------- liveness oracle


def liveness(k: Kernel) -> list[Failure]:
    return [f for f in k.failures if f.signature.startswith("deadlock:gpu-job-never-completed")]


@pytest.mark.parametrize("lost", [False, True])
def test_the_liveness_oracle_names_a_job_whose_completion_interrupt_was_lost(lost: bool) -> None:
    """Two lost job IRQs (the sync update and the idle event): the GPU finished the
    job, nobody processed it; the run ends before the 5 s timeout could recover it."""
    out: dict[str, object] = {}

    async def scenario(k: Kernel) -> None:
        (r,) = await rig(k)
        gh = await gpu_group_create(r.pfile, r.vm_id)
        f = await panthor_job_submit(r.pfile, gh, [(BO_VA, GPU_READ)])
        assert isinstance(f, DmaFence)
        assert await gpu_job_wait(f) == 0
        await msleep(1)  # the idle event of the first job is processed
        if lost:
            csf_of(r.ptdev.iomem).inject_lost_job_irq(2)
        f = await panthor_job_submit(r.pfile, gh, [(BO_VA, GPU_READ)])
        assert isinstance(f, DmaFence)
        out["err"] = await gpu_job_wait(f, timeout_ms=100)
        # The run ends here, without closing the file: nothing cancels the job.

    k = run(scenario)
    found = liveness(k)
    if not lost:
        assert out["err"] == 0
        assert found == [], findings(k)
        return
    assert out["err"] == -ETIME
    assert len(found) == 1, findings(k)
    f = found[0]
    assert f.kind == "deadlock"
    assert f.message == "GPU job #2 (group 1, queue 0) never completed: completion-not-processed"
    assert "sync object seqno 2" in f.report and "job timeout armed" in f.report


@pytest.mark.parametrize("restarted", [True, False])
def test_the_liveness_oracle_names_a_job_on_a_queue_stopped_and_never_restarted(
    restarted: bool,
) -> None:
    async def scenario(k: Kernel) -> None:
        (r,) = await rig(k)
        gh = await gpu_group_create(r.pfile, r.vm_id)
        q = group_of(r.pfile, gh).queues[0]
        assert q is not None
        await queue_stop(q, None)
        if restarted:
            await queue_start(q)
        f = await panthor_job_submit(r.pfile, gh, [(BO_VA, GPU_READ)])
        assert isinstance(f, DmaFence)
        await msleep(50)
        if restarted:
            assert await gpu_job_wait(f) == 0
            await unrig([r])

    k = run(scenario)
    found = liveness(k)
    if restarted:
        assert k.failures == [], findings(k)
        return
    assert [f.signature for f in found] == ["deadlock:gpu-job-never-completed:queue-stopped"]
    assert "drm_sched_stop() without drm_sched_start()" in found[0].report


def test_the_liveness_oracle_ignores_a_finished_job_whose_free_work_never_ran() -> None:
    """Submission paused once the job reached the GPU: it completes, its finished fence
    signals, but drm_sched never queues the free work, so it stays allocated."""

    async def scenario(k: Kernel) -> None:
        (r,) = await rig(k)
        gh = await gpu_group_create(r.pfile, r.vm_id)
        f = await panthor_job_submit(r.pfile, gh, [(BO_VA, GPU_READ)] * 4)
        assert isinstance(f, DmaFence)
        s_fence = to_drm_sched_fence(f)
        assert s_fence is not None and s_fence.job is not None
        job = s_fence.job
        while not job.state.startswith("waiting for hw fence"):
            await udelay(1)
        q = group_of(r.pfile, gh).queues[0]
        assert q is not None
        await drm_sched_wqueue_stop(q.scheduler)
        assert await gpu_job_wait(f) == 0
        assert s_fence.job is job  # not freed

    k = run(scenario)
    # No teardown: the device leaks, and nothing else is reported.
    assert {f.kind for f in k.failures} == {"leak"}, findings(k)


def test_the_liveness_oracle_is_silent_on_a_run_whose_jobs_all_completed() -> None:
    async def scenario(k: Kernel) -> None:
        rigs = await rig(k, vms=2)
        ghs = [await gpu_group_create(r.pfile, r.vm_id, queues=2) for r in rigs]
        fences = [
            await panthor_job_submit(r.pfile, gh, [(BO_VA, GPU_READ)], queue_index=q)
            for r, gh in zip(rigs, ghs, strict=True)
            for q in range(2)
        ]
        for f in fences:
            assert isinstance(f, DmaFence)
            assert await gpu_job_wait(f) == 0
        await unrig(rigs)

    run_checked(scenario)


# ---------------------------------------------------------------------- concurrency smoke

# A job's fence can end with -ETIMEDOUT when a strategy fires the 5 s job timeout
# early (the system "stalled" for 5 s), and later submits to that group fail with
# -EINVAL; -ECANCELED when a reset or termination cancels it.
JOB_OUTCOMES = (0, -ETIMEDOUT, -ECANCELED)

# The GROUP_SUBMIT path itself (panthor_drv.c + drm_gpuvm + drm_exec, not the seed):
# see test_group_submit_adds_its_fence_to_an_unreserved_contended_bo below.
KNOWN_SUBMIT_FINDINGS = (
    "exception:BUG:dma_resv_add_fence-null-list",
    "exception:BUG:dma_resv_add_fence-no-slot",
)


async def bind_storm(k: Kernel, chaos: bool = False) -> None:
    """Two threads map/unmap their own BOs in the VM while two queues run jobs
    that read and write a stable mapping; with ``chaos``, a second VM runs a
    faulting job and a hard-hung one (an MMU fault and a GPU reset meanwhile)."""
    (r,) = await rig(k, as_present=0b111)
    gh = await gpu_group_create(r.pfile, r.vm_id, queues=2)

    async def binder(i: int) -> None:
        bo = await panthor_gem_create(4 * 4096, f"b{i}")
        assert isinstance(bo, PanthorGemObject)
        for n in range(3):
            va = 0x20_0000 + i * 0x20_0000 + n * 0x4000
            assert await panthor_vm_map_bo_range(r.vm, bo, 0, 4 * 4096, va, 0) == 0
            assert await panthor_vm_unmap_range(r.vm, va, 4 * 4096) == 0
        await drm_gem_object_put(bo)

    async def submitter(q: int) -> None:
        for _ in range(3):
            acc = [(BO_VA + q * 0x1000, GPU_READ), (BO_VA + 0x8000 + q * 0x1000, GPU_WRITE)]
            f = await panthor_job_submit(r.pfile, gh, acc, queue_index=q)
            if isinstance(f, ErrPtr):
                assert f.err == -EINVAL  # the group was killed by an early timeout
                continue
            assert await gpu_job_wait(f) in JOB_OUTCOMES

    async def chaos_thread() -> None:
        vm2_id = await gpu_vm_create(r.pfile)
        vm2 = vm_of(r.pfile, vm2_id)
        bo2 = await panthor_gem_create(4 * 4096, "bo2")
        assert isinstance(bo2, PanthorGemObject)
        assert await panthor_vm_map_bo_range(vm2, bo2, 0, 4 * 4096, BO_VA, 0) == 0
        g2 = await gpu_group_create(r.pfile, vm2_id)
        g3 = await gpu_group_create(r.pfile, vm2_id)
        f1 = await panthor_job_submit(r.pfile, g2, [(BO_VA, GPU_READ), (0x30_0000, GPU_READ)])
        f2 = await panthor_job_submit(r.pfile, g3, [(BO_VA + 0x1000, GPU_READ)], hang="hard")
        for f in (f1, f2):
            if not isinstance(f, ErrPtr):
                assert await gpu_job_wait(f) in (*JOB_OUTCOMES, -EINVAL)
        assert await panthor_vm_unmap_range(vm2, BO_VA, 4 * 4096) == 0
        await drm_gem_object_put(bo2)

    threads = [k.spawn(binder, i, name=f"bind{i}") for i in range(2)]
    threads += [k.spawn(submitter, q, name=f"submit{q}") for q in range(2)]
    if chaos:
        threads.append(k.spawn(chaos_thread, name="chaos"))
    for t in threads:
        await t.join()
    await unrig([r])


def storm_findings(strategies: list[Strategy], chaos: bool) -> dict[str, str]:
    """Signature -> first message, over runs of the bind storm; known ones dropped."""
    out: dict[str, str] = {}
    for s in strategies:
        k = run(bind_storm, chaos, strategy=s)
        for f in k.failures:
            if f.signature not in KNOWN_SUBMIT_FINDINGS:
                out.setdefault(f.signature, f"{s!r}: {f.message}\n{f.report}")
    return out


@pytest.mark.parametrize("chaos", [False, True])
def test_concurrency_smoke_binds_while_jobs_run_random_and_pct(chaos: bool) -> None:
    strategies: list[Strategy] = [RandomWalk(seed, 3000) for seed in range(6)]
    strategies += [PCT(seed, d, 3000) for d in (2, 3) for seed in range(3)]
    assert storm_findings(strategies, chaos) == {}


@pytest.mark.slow
@pytest.mark.parametrize("chaos", [False, True])
def test_concurrency_stress_binds_while_jobs_run(chaos: bool) -> None:
    strategies: list[Strategy] = [RandomWalk(seed, 3000) for seed in range(150)]
    strategies += [PCT(seed, d, 3000) for d in (2, 3) for seed in range(75)]
    assert storm_findings(strategies, chaos) == {}


# ---------------------------------------------------------------------- known finding


async def submit_vs_unmap_of_an_external_bo(k: Kernel) -> None:
    """A submitter and a thread mapping/unmapping an external BO of the same VM."""
    (r,) = await rig(k)
    gh = await gpu_group_create(r.pfile, r.vm_id)
    shared = await panthor_gem_create(4096, "shared")
    assert isinstance(shared, PanthorGemObject)

    async def binder() -> None:
        for _ in range(4):
            assert await panthor_vm_map_bo_range(r.vm, shared, 0, 4096, 0x20_0000, 0) == 0
            assert await panthor_vm_unmap_range(r.vm, 0x20_0000, 4096) == 0

    async def submitter() -> None:
        for _ in range(4):
            f = await panthor_job_submit(r.pfile, gh, [(BO_VA, GPU_READ)])
            if isinstance(f, DmaFence):
                await gpu_job_wait(f)

    threads = [k.spawn(binder, name="bind"), k.spawn(submitter, name="submit")]
    for t in threads:
        await t.join()
    await drm_gem_object_put(shared)
    await unrig([r])


@pytest.mark.xfail(
    strict=True,
    reason="GROUP_SUBMIT: an external BO that was -EDEADLK-contended stays locked in the "
    "drm_exec (prelocked) after an unmap removed it from the VM's extobj list, so "
    "panthor_vm_prepare_mapped_bos_resvs() never reserves a slot on it and "
    "drm_gpuvm_resv_add_fence() adds the job fence to it anyway: dma_resv_add_fence() "
    "dereferences a NULL fence list (or BUG_ONs on a full one)",
)
def test_group_submit_adds_its_fence_to_an_unreserved_contended_bo() -> None:
    for seed in range(100):
        k = run(submit_vs_unmap_of_an_external_bo, strategy=RandomWalk(seed, 1500))
        sigs = [f.signature for f in k.failures]
        assert not set(sigs) & set(KNOWN_SUBMIT_FINDINGS), f"RandomWalk({seed}): {findings(k)}"
        assert sigs == [], findings(k)
