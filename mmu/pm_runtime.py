"""Runtime PM (drivers/base/power/runtime.c) as far as panthor leans on it.

``dev->power``: a usage count, the runtime status (``dev.runtime_status``,
which :func:`~..sched.drm.drm_drv.pm_runtime_active` reads locklessly), the
driver's ``runtime_suspend``/``runtime_resume`` callbacks, ``runtime_error``
(set when a callback fails; every later resume returns -EINVAL until
``pm_runtime_set_suspended()``), and autosuspend: when the usage count drops
to zero with autosuspend on, a timer on virtual time fires
``autosuspend_delay`` after ``last_busy`` and queues the suspend on the PM
workqueue. Asynchronous requests (``pm_runtime_get()``, ``_put()``) are a
work item; synchronous ones run the callback in the caller. A caller that
finds the device RESUMING or SUSPENDING waits for the transition to end
(``dev->power.wait_queue``).

Deviations (deliberate): no idle callback (``rpm_idle`` goes straight to an
autosuspend), no parent/supplier links, no irq-safe mode; the status lock
``dev->power.lock`` is implicit (the checks and updates between two yield
points are atomic in the model).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from ..sched.core.kernel import NSEC_PER_MSEC, Timer, current_kernel, preempt
from ..sched.core.waitqueue import WaitQueue
from ..sched.deferred.workqueue import (
    INIT_WORK,
    WorkStruct,
    cancel_work_sync,
    queue_work_atomic,
    system_wq,
)
from ..sched.drm.drm_drv import (
    RPM_ACTIVE,
    RPM_RESUMING,
    RPM_SUSPENDED,
    RPM_SUSPENDING,
    Device,
)
from ..sched.errno import EACCES, EAGAIN, EBUSY, EINPROGRESS, EINVAL

Callback = Callable[[Device], Awaitable[int]]

RPM_ASYNC: Final = 0x01
RPM_NOWAIT: Final = 0x02
RPM_GET_PUT: Final = 0x04
RPM_AUTO: Final = 0x08

RPM_REQ_NONE: Final = 0
RPM_REQ_SUSPEND: Final = 2
RPM_REQ_AUTOSUSPEND: Final = 3
RPM_REQ_RESUME: Final = 4


class DevPmInfo:
    """``struct dev_pm_info`` (the runtime part)."""

    def __init__(self, dev: Device, suspend: Callback, resume: Callback) -> None:
        self.dev = dev
        self.runtime_suspend = suspend
        self.runtime_resume = resume
        self.usage_count = 0
        self.disable_depth = 1
        self.runtime_error = 0
        self.use_autosuspend = False
        self.autosuspend_delay = 0  # ms
        self.last_busy = 0
        self.timer: Timer | None = None
        self.request = RPM_REQ_NONE
        self.wait_queue = WaitQueue(f"{dev.name}->power.wait_queue", klass="dev->power.wait_queue")
        self.work: WorkStruct = INIT_WORK(pm_runtime_work, "&dev->power.work", self)
        self.suspends = 0  # completed runtime suspends (for tests)
        self.resumes = 0


def pm_runtime_init(dev: Device, suspend: Callback, resume: Callback) -> DevPmInfo:
    """``pm_runtime_init()`` with the driver's ``dev_pm_ops`` runtime callbacks."""
    dev.power = DevPmInfo(dev, suspend, resume)
    dev.runtime_status = RPM_SUSPENDED
    return dev.power  # type: ignore[no-any-return]


def _power(dev: Device) -> DevPmInfo:
    p = dev.power
    assert isinstance(p, DevPmInfo), "pm_runtime_init() was not called for this device"
    return p


def _queue(p: DevPmInfo, req: int) -> None:
    p.request = req
    queue_work_atomic(system_wq(), p.work)


async def pm_runtime_work(work: WorkStruct) -> None:
    """``pm_runtime_work()``: run the queued asynchronous request."""
    p: DevPmInfo = work.container
    req = p.request
    p.request = RPM_REQ_NONE
    if req == RPM_REQ_SUSPEND:
        await rpm_suspend(p.dev, RPM_NOWAIT)
    elif req == RPM_REQ_AUTOSUSPEND:
        await rpm_suspend(p.dev, RPM_NOWAIT | RPM_AUTO)
    elif req == RPM_REQ_RESUME:
        await rpm_resume(p.dev, RPM_NOWAIT)


def _autosuspend_timer_fn(p: DevPmInfo) -> None:
    p.timer = None
    _queue(p, RPM_REQ_AUTOSUSPEND)


async def _wait_transition(p: DevPmInfo) -> None:
    while p.dev.runtime_status in (RPM_RESUMING, RPM_SUSPENDING):
        await p.wait_queue.wait()


async def rpm_resume(dev: Device, rpmflags: int) -> int:
    """``rpm_resume()``: 1 if already active, 0 once resumed, a negative errno otherwise."""
    p = _power(dev)
    await preempt()  # spin_lock(&dev->power.lock)
    while True:
        if p.runtime_error:
            return -EINVAL
        if p.disable_depth > 0:
            return 1 if dev.runtime_status == RPM_ACTIVE else -EACCES
        if p.timer is not None:  # a resume cancels a pending autosuspend
            p.timer.cancel()
            p.timer = None
        if dev.runtime_status == RPM_ACTIVE:
            return 1
        if dev.runtime_status in (RPM_RESUMING, RPM_SUSPENDING):
            if rpmflags & (RPM_ASYNC | RPM_NOWAIT):
                return -EINPROGRESS
            await _wait_transition(p)
            continue
        break
    if rpmflags & RPM_ASYNC:
        _queue(p, RPM_REQ_RESUME)
        return 0

    dev.runtime_status = RPM_RESUMING
    current_kernel().ev("rpm", dev.name, "resuming")
    ret = await p.runtime_resume(dev)
    if ret:
        dev.runtime_status = RPM_SUSPENDED
        p.runtime_error = ret
    else:
        dev.runtime_status = RPM_ACTIVE
        p.resumes += 1
    current_kernel().ev("rpm", dev.name, f"resume -> {ret}")
    p.wait_queue.wake_all()
    return ret


async def rpm_suspend(dev: Device, rpmflags: int) -> int:
    """``rpm_suspend()``: 0 once suspended (or 1 if already), a negative errno otherwise."""
    p = _power(dev)
    k = current_kernel()
    await preempt()  # spin_lock(&dev->power.lock)
    while True:
        if p.runtime_error:
            return -EINVAL
        if p.usage_count > 0 or p.disable_depth > 0:
            return -EAGAIN
        if dev.runtime_status == RPM_SUSPENDED:
            return 1
        if dev.runtime_status in (RPM_RESUMING, RPM_SUSPENDING):
            if rpmflags & (RPM_ASYNC | RPM_NOWAIT):
                return -EINPROGRESS
            await _wait_transition(p)
            continue
        break
    if rpmflags & RPM_AUTO and p.use_autosuspend:
        expires = p.last_busy + p.autosuspend_delay * NSEC_PER_MSEC
        if expires > k.now:
            if p.timer is None:
                p.timer = k.add_timer(
                    expires - k.now, lambda: _autosuspend_timer_fn(p), "rpm autosuspend"
                )
            return 0
    if rpmflags & RPM_ASYNC:
        _queue(p, RPM_REQ_AUTOSUSPEND if rpmflags & RPM_AUTO else RPM_REQ_SUSPEND)
        return 0

    dev.runtime_status = RPM_SUSPENDING
    k.ev("rpm", dev.name, "suspending")
    ret = await p.runtime_suspend(dev)
    if ret:
        dev.runtime_status = RPM_ACTIVE
        if ret not in (-EAGAIN, -EBUSY):
            p.runtime_error = ret
    else:
        dev.runtime_status = RPM_SUSPENDED
        p.suspends += 1
    k.ev("rpm", dev.name, f"suspend -> {ret}")
    p.wait_queue.wake_all()
    return ret


async def devm_pm_runtime_enable(dev: Device) -> int:
    """``devm_pm_runtime_enable()``."""
    await preempt()
    _power(dev).disable_depth -= 1
    return 0


async def pm_runtime_resume_and_get(dev: Device) -> int:
    """``pm_runtime_resume_and_get()``."""
    p = _power(dev)
    p.usage_count += 1
    ret = await rpm_resume(dev, RPM_GET_PUT)
    if ret < 0:
        p.usage_count -= 1
        return ret
    return 0


async def pm_runtime_get_sync(dev: Device) -> int:
    """``pm_runtime_get_sync()``."""
    _power(dev).usage_count += 1
    return await rpm_resume(dev, RPM_GET_PUT)


async def pm_runtime_get(dev: Device) -> int:
    """``pm_runtime_get()``: take a reference, resume asynchronously."""
    _power(dev).usage_count += 1
    return await rpm_resume(dev, RPM_GET_PUT | RPM_ASYNC)


async def _put(dev: Device, rpmflags: int) -> int:
    p = _power(dev)
    await preempt()  # atomic_dec_and_test(&dev->power.usage_count)
    p.usage_count -= 1
    if p.usage_count:
        return 0
    return await rpm_suspend(dev, rpmflags)


async def pm_runtime_put(dev: Device) -> int:
    """``pm_runtime_put()``: drop a reference; idle (here: autosuspend) asynchronously."""
    return await _put(dev, RPM_GET_PUT | RPM_ASYNC | RPM_AUTO)


async def pm_runtime_put_autosuspend(dev: Device) -> int:
    """``pm_runtime_put_autosuspend()``."""
    return await _put(dev, RPM_GET_PUT | RPM_ASYNC | RPM_AUTO)


async def pm_runtime_put_sync_suspend(dev: Device) -> int:
    """``pm_runtime_put_sync_suspend()``."""
    return await _put(dev, RPM_GET_PUT)


async def pm_runtime_mark_last_busy(dev: Device) -> None:
    """``pm_runtime_mark_last_busy()``."""
    await preempt()
    _power(dev).last_busy = current_kernel().now


def pm_runtime_set_autosuspend_delay(dev: Device, delay_ms: int) -> None:
    """``pm_runtime_set_autosuspend_delay()``."""
    _power(dev).autosuspend_delay = delay_ms


def pm_runtime_use_autosuspend(dev: Device) -> None:
    """``pm_runtime_use_autosuspend()``."""
    _power(dev).use_autosuspend = True


def pm_runtime_dont_use_autosuspend(dev: Device) -> None:
    """``pm_runtime_dont_use_autosuspend()``."""
    p = _power(dev)
    p.use_autosuspend = False
    if p.timer is not None:
        p.timer.cancel()
        p.timer = None


def pm_runtime_set_suspended(dev: Device) -> None:
    """``pm_runtime_set_suspended()``: clears ``runtime_error``."""
    p = _power(dev)
    p.runtime_error = 0
    dev.runtime_status = RPM_SUSPENDED


async def pm_runtime_forbid(dev: Device) -> int:
    """``pm_runtime_forbid()`` (``power/control`` = ``on``): hold the device resumed."""
    return await pm_runtime_get_sync(dev)


async def pm_runtime_allow(dev: Device) -> int:
    """``pm_runtime_allow()`` (``power/control`` = ``auto``)."""
    return await _put(dev, RPM_AUTO)


async def pm_runtime_release(dev: Device) -> None:
    """Device teardown: no autosuspend timer or request may outlive the device."""
    p = _power(dev)
    if p.timer is not None:
        p.timer.cancel()
        p.timer = None
    await cancel_work_sync(p.work)
    p.disable_depth += 1
