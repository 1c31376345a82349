"""``struct drm_device`` as far as the driver leans on it (drivers/gpu/drm/drm_drv.c,
drm_managed.c, drivers/base/power/runtime.c).

* **Unplug**: ``drm_dev_enter``/``drm_dev_exit`` are an SRCU read section of the
  one global ``drm_unplug_srcu``; ``drm_dev_unplug`` sets ``unplugged`` and
  waits for every reader (``synchronize_srcu``), so unplugging from inside a
  section deadlocks (and lockdep says so: the read side is a recursive read
  of the srcu map, ``synchronize_srcu`` a write).
* **Managed resources** (``drmm_*``): actions run in reverse order when the
  device is released (:func:`drm_managed_release`); registering one
  allocates, and ``drmm_add_action_or_reset`` runs the action at once if
  that fails.
* **Runtime PM**: ``pm_runtime_active(dev)`` reads ``runtime_status``
  locklessly (a yield point).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from ..core.kernel import current_kernel, preempt
from ..core.waitqueue import WaitQueue
from ..errno import ENOMEM
from ..locking.lockdep import LockdepMap, lock_acquire, lock_release
from ..locking.mutex import Mutex, mutex_destroy
from ..mm.gfp import GFP_KERNEL
from ..mm.memory import kfree, kzalloc

RPM_ACTIVE: Final = 0
RPM_RESUMING: Final = 1
RPM_SUSPENDED: Final = 2
RPM_SUSPENDING: Final = 3

_SRCU_KEY: Final = "drm_unplug_srcu"


class Device:
    """``struct device``: the runtime-PM status the driver reads."""

    __slots__ = ("drvdata", "name", "power", "runtime_status")

    def __init__(self, name: str) -> None:
        self.name = name
        self.runtime_status = RPM_ACTIVE
        self.power: Any = None  # ``dev->power``: set by the runtime-PM model when used
        self.drvdata: Any = None  # dev_set_drvdata()

    def __repr__(self) -> str:
        return f"<device {self.name} rpm={self.runtime_status}>"


async def pm_runtime_active(dev: Device) -> bool:
    """``pm_runtime_active()``: a lockless read of the runtime status."""
    await preempt()
    return dev.runtime_status == RPM_ACTIVE


class Srcu:
    """``struct srcu_struct`` (readers counted; ``synchronize_srcu`` waits for them)."""

    __slots__ = ("dep_map", "idle", "readers")

    def __init__(self, name: str) -> None:
        self.readers = 0
        self.dep_map = LockdepMap(name, _SRCU_KEY)
        self.idle = WaitQueue(f"synchronize_srcu({name})", klass="synchronize_srcu")


def drm_unplug_srcu() -> Srcu:
    """``static DEFINE_STATIC_SRCU(drm_unplug_srcu)``: one per run (the kernel's global)."""
    k = current_kernel()
    srcu: Srcu | None = k.objects.get(_SRCU_KEY)
    if srcu is None:
        srcu = k.objects[_SRCU_KEY] = Srcu("drm_unplug_srcu")
    return srcu


async def srcu_read_lock(ssp: Srcu) -> int:
    await preempt()
    ssp.readers += 1
    lock_acquire(ssp.dep_map, read=2)
    return 0


async def srcu_read_unlock(ssp: Srcu, idx: int) -> None:
    await preempt()
    lock_release(ssp.dep_map)
    ssp.readers -= 1
    if ssp.readers == 0:
        ssp.idle.wake_all()


async def synchronize_srcu(ssp: Srcu) -> None:
    """Wait until every reader that may have started has left (a grace period)."""
    await preempt()
    lock_acquire(ssp.dep_map)  # lock_sync(): a write side of the read sections
    lock_release(ssp.dep_map)
    while ssp.readers:
        await ssp.idle.wait()


ManagedAction = Callable[["DrmDevice", Any], Awaitable[None]]


class _DrmManagedNode:
    __slots__ = ("action", "data", "name")

    def __init__(self) -> None:
        self.name = ""
        self.action: ManagedAction | None = None
        self.data: Any = None


class DrmDevice:
    """``struct drm_device``: the parts the driver reads."""

    def __init__(self, name: str = "panthor") -> None:
        self.name = name
        self.dev = Device(name)
        self.unplugged = False
        self.managed: list[_DrmManagedNode] = []

    def __repr__(self) -> str:
        return f"<drm_device {self.name}{' unplugged' if self.unplugged else ''}>"


async def drm_dev_enter(dev: DrmDevice) -> tuple[bool, int]:
    """``drm_dev_enter(dev, &idx)``: ``(False, idx)`` once the device is unplugged."""
    ssp = drm_unplug_srcu()
    idx = await srcu_read_lock(ssp)
    await preempt()  # a plain read of dev->unplugged
    if dev.unplugged:
        await srcu_read_unlock(ssp, idx)
        return False, idx
    return True, idx


async def drm_dev_exit(idx: int) -> None:
    """``drm_dev_exit(idx)``."""
    await srcu_read_unlock(drm_unplug_srcu(), idx)


async def drm_dev_unplug(dev: DrmDevice) -> None:
    """``drm_dev_unplug()``: every section that might have seen ``unplugged`` false has ended."""
    await preempt()
    dev.unplugged = True
    current_kernel().ev("drm_dev_unplug", dev.name)
    await synchronize_srcu(drm_unplug_srcu())


def drm_dev_is_unplugged(dev: DrmDevice) -> bool:
    return dev.unplugged


async def drmm_add_action(dev: DrmDevice, action: ManagedAction, data: Any, name: str = "") -> int:
    """``drmm_add_action()``: 0 or -ENOMEM (registering allocates)."""
    node = await kzalloc(_DrmManagedNode, GFP_KERNEL)
    if node is None:
        return -ENOMEM
    node.name = name or getattr(action, "__name__", "action")
    node.action = action
    node.data = data
    dev.managed.append(node)
    return 0


async def drmm_add_action_or_reset(
    dev: DrmDevice, action: ManagedAction, data: Any, name: str = ""
) -> int:
    """``drmm_add_action_or_reset()``: on failure the action runs at once."""
    ret = await drmm_add_action(dev, action, data, name)
    if ret:
        await action(dev, data)
    return ret


async def _drmm_mutex_release(dev: DrmDevice, lock: Any) -> None:
    mutex_destroy(lock)


async def drmm_mutex_init(dev: DrmDevice, lock: Mutex) -> int:
    """``drmm_mutex_init()``: the mutex is destroyed when the device is released."""
    return await drmm_add_action_or_reset(dev, _drmm_mutex_release, lock, "mutex_destroy")


async def _drmm_kfree(dev: DrmDevice, obj: Any) -> None:
    kfree(obj)


async def drmm_kzalloc(dev: DrmDevice, what: Callable[[], Any], gfp: int) -> Any:
    """``drmm_kzalloc()``: freed when the device is released; None on failure."""
    obj = await kzalloc(what, gfp)
    if obj is None:
        return None
    if await drmm_add_action(dev, _drmm_kfree, obj, "kfree"):
        kfree(obj)
        return None
    return obj


async def drm_managed_release(dev: DrmDevice) -> None:
    """``drm_managed_release()``: every managed action, newest first."""
    while dev.managed:
        node = dev.managed.pop()
        assert node.action is not None
        await node.action(dev, node.data)
        kfree(node)
