"""Found here, not fixed in the kernel as far as we know (v6.15): a tick whose
``group_bind_locked()`` fails loses the group.

``tick_ctx_apply()`` ignores what ``group_bind_locked()`` returns. When
``panthor_vm_active()`` fails (``panthor_mmu_as_enable()`` times out on a stuck
AS_ACTIVE and schedules a reset), the group is not on a slot, yet the tick
programs the slot anyway (the firmware starts it with the previous group's
configuration) and then takes the group off every run queue as if it were
running. The pre-reset only stops groups on slots or in the run queues, so
the post-reset never restarts it, and its queue's job timeout was suspended
while it waited for a slot (``queue_run_job()``): its jobs' fences are never
signalled and user space waits for ever.

The fix proposed here: skip the slot when the bind fails and give the group
back to its run queue at the end of the tick, as for evicted groups.
"""

from __future__ import annotations

from typing import Any  # noqa: F401

from panthor_testbed.mmu.hw.csf import (
    CSG_ENDPOINT_CONFIG,
    CSG_EP_REQ_PRIORITY,
    CSG_EP_REQ_PRIORITY_MASK,
    CSG_STATE_MASK,
    CSG_STATE_RESUME,
    CSG_STATE_START,
    CSG_STATE_SUSPEND,
    CSG_STATE_TERMINATE,
)
from panthor_testbed.mmu.panthor_device import (
    panthor_device_schedule_reset,
)
from panthor_testbed.mmu.panthor_fw_iface import (
    panthor_fw_get_csg_iface,
    panthor_fw_update_reqs,
)
from panthor_testbed.mmu.panthor_sched import (
    BIT,
    MAX_CSG_PRIO,
    PANTHOR_CS_GROUP_SUSPENDED,
    PANTHOR_CSG_PRIORITY_COUNT,
    PanthorCsgSlotsUpdCtx,
    PanthorSchedTickCtx,
    PanthorScheduler,
    csg_slot_prog_locked,
    csgs_upd_ctx_apply_locked,
    csgs_upd_ctx_init,
    csgs_upd_ctx_queue_reqs,
    ffs,
    group_bind_locked,
    group_can_run,
    group_is_idle,
    group_put,
    group_unbind_locked,
    sched_process_csg_irq_locked,
)
from panthor_testbed.sched.lib.list import (
    list_del_init,
    list_move_tail,
)
from panthor_testbed.sched.warn import (
    drm_WARN_ON,
)

from .entry import Bug, FoundAs

BUG = Bug(
    slug="tick-ignores-group-bind-failure",
    kind="upstream",
    commit="none",
    title="drm/panthor: keep a group runnable when group_bind_locked() fails in a tick "
    "(proposed here)",
    functions=("tick_ctx_apply",),
    breaks="a group whose VM cannot be made active in a tick (stuck AS) is taken off the "
    "run queues without a slot: the reset never restarts it and its jobs never complete",
    scenario="reset-during-bind",
    found_as=FoundAs("deadlock", "panthor-queue"),
)


async def tick_ctx_apply(sched: PanthorScheduler, ctx: PanthorSchedTickCtx) -> None:
    """``tick_ctx_apply()`` with the proposed fix: a group whose bind failed stays runnable."""
    ptdev = sched.ptdev
    new_csg_prio = MAX_CSG_PRIO
    free_csg_slots = 0
    upd_ctx = PanthorCsgSlotsUpdCtx()

    csgs_upd_ctx_init(upd_ctx)

    for prio in range(PANTHOR_CSG_PRIORITY_COUNT - 1, -1, -1):
        # Suspend or terminate evicted groups.
        for group in ctx.old_groups[prio]:
            term = not group_can_run(group)
            csg_id = group.csg_id

            if drm_WARN_ON(ptdev.base, csg_id < 0):
                continue

            csgs_upd_ctx_queue_reqs(
                ptdev,
                upd_ctx,
                csg_id,
                CSG_STATE_TERMINATE if term else CSG_STATE_SUSPEND,
                CSG_STATE_MASK,
            )

        # Update priorities on already running groups.
        for group in ctx.groups[prio]:
            csg_id = group.csg_id

            if csg_id < 0:
                new_csg_prio -= 1
                continue

            csg_slot = sched.csg_slots[csg_id]
            csg_iface = panthor_fw_get_csg_iface(ptdev, csg_id)
            if csg_slot.priority == new_csg_prio:
                new_csg_prio -= 1
                continue

            panthor_fw_update_reqs(
                csg_iface,
                "endpoint_req",
                CSG_EP_REQ_PRIORITY(new_csg_prio),
                CSG_EP_REQ_PRIORITY_MASK,
            )
            csgs_upd_ctx_queue_reqs(
                ptdev,
                upd_ctx,
                csg_id,
                csg_iface.output.ack ^ CSG_ENDPOINT_CONFIG,
                CSG_ENDPOINT_CONFIG,
            )
            new_csg_prio -= 1

    ret = await csgs_upd_ctx_apply_locked(ptdev, upd_ctx)
    if ret:
        await panthor_device_schedule_reset(ptdev)
        ctx.csg_upd_failed_mask |= upd_ctx.timedout_mask
        return

    # Unbind evicted groups.
    for prio in range(PANTHOR_CSG_PRIORITY_COUNT - 1, -1, -1):
        for group in ctx.old_groups[prio]:
            # This group is gone. Process interrupts to clear
            # any pending interrupts before we start the new
            # group.
            if group.csg_id >= 0:
                await sched_process_csg_irq_locked(ptdev, group.csg_id)

            await group_unbind_locked(group)

    for i in range(sched.csg_slot_count):
        if not sched.csg_slots[i].group:
            free_csg_slots |= BIT(i)

    csgs_upd_ctx_init(upd_ctx)
    new_csg_prio = MAX_CSG_PRIO

    # Start new groups.
    for prio in range(PANTHOR_CSG_PRIORITY_COUNT - 1, -1, -1):
        for group in ctx.groups[prio]:
            csg_id = group.csg_id

            if csg_id >= 0:
                new_csg_prio -= 1
                continue

            csg_id = ffs(free_csg_slots) - 1
            if drm_WARN_ON(ptdev.base, csg_id < 0):
                break

            csg_iface = panthor_fw_get_csg_iface(ptdev, csg_id)
            if await group_bind_locked(group, csg_id):
                # The VM could not be made active (a stuck AS: a reset is
                # coming). Leave the slot free; the group goes back to a run
                # queue below, where the post-reset restarts it.
                continue
            await csg_slot_prog_locked(ptdev, csg_id, new_csg_prio)
            new_csg_prio -= 1
            csgs_upd_ctx_queue_reqs(
                ptdev,
                upd_ctx,
                csg_id,
                CSG_STATE_RESUME if group.state == PANTHOR_CS_GROUP_SUSPENDED else CSG_STATE_START,
                CSG_STATE_MASK,
            )
            csgs_upd_ctx_queue_reqs(
                ptdev,
                upd_ctx,
                csg_id,
                csg_iface.output.ack ^ CSG_ENDPOINT_CONFIG,
                CSG_ENDPOINT_CONFIG,
            )
            free_csg_slots &= ~BIT(csg_id)

    ret = await csgs_upd_ctx_apply_locked(ptdev, upd_ctx)
    if ret:
        await panthor_device_schedule_reset(ptdev)
        ctx.csg_upd_failed_mask |= upd_ctx.timedout_mask
        return

    for prio in range(PANTHOR_CSG_PRIORITY_COUNT - 1, -1, -1):
        for group in ctx.groups[prio]:
            if group.csg_id < 0 and group_can_run(group):
                list_move_tail(group.run_node, sched.groups.runnable[prio])
                await group_put(group)
                continue
            list_del_init(group.run_node)

            # If the group has been destroyed while we were
            # scheduling, ask for an immediate tick to
            # re-evaluate as soon as possible and get rid of
            # this dangling group.
            if group.destroyed:
                ctx.immediate_tick = True
            await group_put(group)

        # Return evicted groups to the idle or run queues. Groups
        # that can no longer be run (because they've been destroyed
        # or experienced an unrecoverable error) will be scheduled
        # for destruction in tick_ctx_cleanup().
        for group in ctx.old_groups[prio]:
            if not group_can_run(group):
                continue

            if group_is_idle(group):
                list_move_tail(group.run_node, sched.groups.idle[prio])
            else:
                list_move_tail(group.run_node, sched.groups.runnable[prio])
            await group_put(group)

    sched.used_csg_slot_count = ctx.group_count
    sched.might_have_idle_groups = ctx.idle_group_count > 0


_PORT = "panthor_testbed.mmu.panthor_sched:"
REPLACES = {
    f"{_PORT}tick_ctx_apply": tick_ctx_apply,
}

EXPECTED_DIFF = [
    "- await group_bind_locked(group, csg_id)",
    "+ if await group_bind_locked(group, csg_id):",
    "+ continue",
    "+ if group.csg_id < 0 and group_can_run(group):",
    "+ list_move_tail(group.run_node, sched.groups.runnable[prio])",
    "+ await group_put(group)",
    "+ continue",
]
