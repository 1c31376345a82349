"""drm_gem base object: references, funcs->free, the shared resv, the gpuva lock assertion."""

from __future__ import annotations

from typing import ClassVar

from panthor_testbed.sched import (
    GFP_KERNEL,
    DmaResv,
    DrmGemObject,
    Kernel,
    Mutex,
    dma_resv_lock,
    dma_resv_unlock,
    drm_gem_gpuva_assert_lock_held,
    drm_gem_gpuva_set_lock,
    drm_gem_object_get,
    drm_gem_object_put,
    is_freed,
    kzalloc,
    mutex_lock,
    mutex_unlock,
)
from panthor_testbed.sched.core.harness import arun


class CountingBo(DrmGemObject):
    freed: ClassVar[list[str]] = []

    async def free(self) -> None:
        CountingBo.freed.append(self.name)
        await super().free()


async def test_last_put_calls_free_and_releases_the_object() -> None:
    CountingBo.freed = []

    async def body(k: Kernel) -> None:
        bo = await kzalloc(lambda: CountingBo(4096, "bo"), GFP_KERNEL)
        assert bo is not None
        await drm_gem_object_get(bo)
        await drm_gem_object_put(bo)
        assert CountingBo.freed == []
        await drm_gem_object_put(bo)
        assert CountingBo.freed == ["bo"]
        assert is_freed(bo)
        await drm_gem_object_put(None)

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]


async def test_put_after_free_is_a_use_after_free() -> None:
    async def body(k: Kernel) -> None:
        bo = await kzalloc(lambda: DrmGemObject(4096, "bo"), GFP_KERNEL)
        assert bo is not None
        await drm_gem_object_put(bo)
        await drm_gem_object_put(bo)

    k = await arun(body)
    assert k.primary_failure is not None and k.primary_failure.kind == "use-after-free"


async def test_private_bo_shares_the_root_resv() -> None:
    """A BO private to a VM uses the root GEM's resv; its own _resv is still finalised."""

    async def body(k: Kernel) -> None:
        root = DrmGemObject(4096, "vm-root")
        bo = DrmGemObject(4096, "private-bo", resv=root.resv)
        assert bo.resv is root.resv and bo._resv is not root.resv
        await dma_resv_lock(root.resv, None)
        drm_gem_gpuva_assert_lock_held(bo)  # no gpuva lock: the resv
        await dma_resv_unlock(root.resv)
        await drm_gem_object_put(bo)
        await drm_gem_object_put(root)

    k = await arun(body)
    assert not k.failures, [f.message for f in k.failures]


async def test_gpuva_lock_assertion_uses_the_registered_lock() -> None:
    async def body(k: Kernel) -> None:
        bo = DrmGemObject(4096, "bo")
        lock = Mutex("bo->gpuva_list_lock", "&bo->base.gpuva.lock")
        drm_gem_gpuva_set_lock(bo, lock)
        await mutex_lock(lock)
        drm_gem_gpuva_assert_lock_held(bo)
        await mutex_unlock(lock)
        await dma_resv_lock(bo.resv, None)
        drm_gem_gpuva_assert_lock_held(bo)  # the resv is not the registered lock: WARN

    k = await arun(body)
    f = k.primary_failure
    assert f is not None and f.kind == "warn"
    assert "drm_gem_gpuva_assert_lock_held(bo)" in f.message


async def test_resv_assertion_without_registered_lock_warns() -> None:
    async def body(k: Kernel) -> None:
        bo = DrmGemObject(4096, "bo", resv=DmaResv("shared"))
        drm_gem_gpuva_assert_lock_held(bo)

    k = await arun(body)
    f = k.primary_failure
    assert f is not None and f.kind == "warn" and "shared (resv)" in f.message
