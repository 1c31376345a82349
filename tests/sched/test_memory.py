"""kmalloc / kmem_cache: fault injection, leak ledger, use-after-free, double free."""

from __future__ import annotations

from panthor_testbed.sched import (
    __GFP_NOFAIL,
    GFP_KERNEL,
    Kernel,
    KernelConfig,
    RandomWalk,
    Replay,
    is_freed,
    kcalloc,
    kfree,
    kmem_cache_alloc,
    kmem_cache_alloc_bulk,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    kmem_cache_free_bulk,
    kmemleak_ignore,
    kzalloc,
)
from panthor_testbed.sched.core.harness import run


class Thing:
    def __init__(self) -> None:
        self.value = 7


def test_allocations_are_freed_cleanly() -> None:
    async def scenario(k: Kernel) -> None:
        t = await kzalloc(Thing, GFP_KERNEL)
        arr = await kcalloc(4, GFP_KERNEL)
        assert t is not None and arr is not None and list(arr) == [None] * 4
        kfree(t)
        kfree(arr)
        kfree(None)

    assert run(scenario).failures == []


def test_leak_is_reported_with_allocation_site() -> None:
    async def scenario(k: Kernel) -> None:
        await kzalloc(Thing, GFP_KERNEL)
        kmemleak_ignore(await kzalloc(Thing, GFP_KERNEL))

    k = run(scenario)
    assert [f.kind for f in k.failures] == ["leak"]
    assert "1 allocation(s) never freed: 1x Thing" in k.failures[0].message
    assert "test_memory.py" in k.failures[0].message
    assert k.failures[0].signature == "leak:Thing"


def test_use_after_free_is_caught() -> None:
    async def scenario(k: Kernel) -> None:
        t = await kzalloc(Thing, GFP_KERNEL)
        assert t is not None
        kfree(t)
        assert is_freed(t)
        _ = t.value

    f = run(scenario).primary_failure
    assert f is not None and f.kind == "use-after-free"
    assert "read of .value of freed Thing" in f.message
    assert "freed by T0 init" in f.message


def test_double_free_is_caught() -> None:
    async def scenario(k: Kernel) -> None:
        t = await kzalloc(Thing, GFP_KERNEL)
        kfree(t)
        kfree(t)

    f = run(scenario).primary_failure
    assert f is not None and f.kind == "use-after-free"
    assert "double free of Thing" in f.message


def test_fail_the_nth_allocation() -> None:
    results: list[bool] = []

    async def scenario(k: Kernel) -> None:
        for _ in range(4):
            t = await kzalloc(Thing, GFP_KERNEL)
            results.append(t is not None)
            kfree(t)
        t = await kzalloc(Thing, GFP_KERNEL | __GFP_NOFAIL)
        results.append(t is not None)
        kfree(t)

    k = run(scenario, config=KernelConfig(alloc_fail_nth=3))
    assert k.failures == []
    assert results == [True, True, False, True, True]
    assert k.mem.injected_failures == 1


def test_probabilistic_failures_are_choices_and_replay() -> None:
    async def scenario(k: Kernel) -> None:
        got = []
        for _ in range(12):
            t = await kzalloc(Thing, GFP_KERNEL)
            got.append(t is not None)
            kfree(t)
        k.objects["got"] = got

    cfg = KernelConfig(alloc_fail_probability=0.5)
    a = run(scenario, strategy=RandomWalk(5), config=cfg)
    assert False in a.objects["got"] and True in a.objects["got"]
    b = run(scenario, strategy=Replay(a.choices), config=cfg)
    assert b.objects["got"] == a.objects["got"]


def test_kmem_cache_bulk_and_destroy() -> None:
    async def scenario(k: Kernel, free_all: bool) -> None:
        cache = await kmem_cache_create("pt", 4096, 4096)
        assert cache is not None
        pages: list[object] = [None] * 3
        assert await kmem_cache_alloc_bulk(cache, GFP_KERNEL, 3, pages) == 3
        one = await kmem_cache_alloc(cache, GFP_KERNEL)
        kmem_cache_free(cache, one)
        kmem_cache_free_bulk(cache, 3 if free_all else 2, pages)
        kmem_cache_destroy(cache)

    assert run(scenario, True).failures == []
    f = run(scenario, False).primary_failure
    assert f is not None and f.kind == "warn"
    assert "kmem_cache_destroy pt: Slab cache still has objects (1)" in f.message


def test_bulk_allocation_is_all_or_nothing() -> None:
    async def scenario(k: Kernel) -> None:
        cache = await kmem_cache_create("pt", 4096, 4096)
        assert cache is not None
        pages: list[object] = [None] * 3
        k.objects["n"] = await kmem_cache_alloc_bulk(cache, GFP_KERNEL, 3, pages)
        k.objects["pages"] = pages
        kmem_cache_destroy(cache)

    k = run(scenario, config=KernelConfig(alloc_fail_nth=2))
    assert k.objects["n"] == 0 and k.objects["pages"] == [None] * 3
    assert k.failures == []


def test_never_destroyed_cache_is_a_leak() -> None:
    async def scenario(k: Kernel) -> None:
        await kmem_cache_create("forgotten", 64)

    k = run(scenario)
    assert k.failures[0].message.startswith("kmem_cache forgotten was never destroyed")
