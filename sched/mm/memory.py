"""kmalloc / kfree / kmem_cache with GFP flags, fault injection and a leak ledger.

Every allocation is a yield point, goes through ``might_alloc()`` (so an
allocation inside a fence signalling section is reported even when memory is
plentiful) and may be made to fail: the Nth failable allocation, or each
with a probability drawn from the strategy (so failures are part of the
schedule and replay exactly).

A freed object is *poisoned*: its class is swapped for a subclass whose
attribute access raises :class:`UseAfterFree` (our KASAN). Objects are kept
in a quarantine for the rest of the run so their identity stays unique.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, overload

from ..core.failure import Failure, UseAfterFree
from ..core.frames import Site, fast_site, format_site
from ..core.kernel import current_kernel, current_kernel_or_none, preempt
from ..locking.lockdep import might_alloc
from .gfp import __GFP_NOFAIL

if TYPE_CHECKING:
    from ..core.kernel import Kernel

T = TypeVar("T")

# `__GFP_*` names are mangled inside class bodies; methods use these aliases.
_GFP_NOFAIL = __GFP_NOFAIL


class Allocation:
    __slots__ = ("cache", "ignore", "obj", "site", "step", "thread", "what")

    def __init__(
        self, obj: object, what: str, site: Site, thread: str, step: int, cache: str | None
    ) -> None:
        self.obj = obj
        self.what = what
        self.site = site
        self.thread = thread
        self.step = step
        self.cache = cache
        self.ignore = False


class KBuffer(bytearray):
    """A ``kmalloc(size)`` buffer."""

    __slots__ = ()


class KArray(list[Any]):
    """A ``kcalloc(n, sizeof(ptr))`` array of pointers (None = NULL)."""

    __slots__ = ()


class SlabObject:
    """A kmem_cache object with no richer model (the default backing)."""

    __slots__ = ("cache_name", "data")

    def __init__(self, cache_name: str, size: int) -> None:
        self.cache_name = cache_name
        self.data = bytearray(size)


class SlabBacking(Protocol):
    """Where a cache's objects come from (e.g. physical pages for page tables).

    ``new_object`` returns None when the backing store is exhausted (the
    allocation then fails with NULL, as on -ENOMEM); ``gfp`` carries
    ``__GFP_ZERO``. ``release_object`` gives the object's storage back; the
    object is poisoned afterwards (any later access is a use-after-free).
    """

    def new_object(self, cache: KmemCache, gfp: int) -> object | None: ...

    def release_object(self, cache: KmemCache, obj: object) -> None: ...


class KmemCache:
    __slots__ = ("align", "backing", "ctor", "destroyed", "live", "name", "size")

    def __init__(
        self,
        name: str,
        size: int,
        align: int,
        ctor: Callable[[object], None] | None,
        backing: SlabBacking | None,
    ) -> None:
        self.name = name
        self.size = size
        self.align = align
        self.ctor = ctor
        self.backing = backing
        self.live = 0
        self.destroyed = False

    def __repr__(self) -> str:
        return f"<kmem_cache {self.name} live={self.live}>"


class Memory:
    """The allocator state of one run."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.ledger: dict[int, Allocation] = {}
        # id -> (obj, what, alloc site, free note): freed objects stay referenced
        # for the run, so their identity stays unique
        self.quarantine: dict[int, tuple[object, str, str, str]] = {}
        self.failable = 0  # failable allocations so far (for alloc_fail_nth)
        # >0 while a scenario's set-up runs (device probe): no failure injected then
        self.faults_suspended = 0
        self.allocations = 0
        self.injected_failures = 0
        self.default_backing: SlabBacking | None = None
        self.caches: list[KmemCache] = []

    # -------------------------------------------------------------- core

    async def alloc_prologue(self, gfp: int) -> bool:
        """What every allocation does first: a yield point, ``might_alloc(gfp)`` and
        the fault-injection decision. True means: fail this allocation.

        For allocators built outside this module (``alloc_pages``, shmem pages).
        """
        await preempt()
        might_alloc(gfp)
        self.allocations += 1
        if gfp & _GFP_NOFAIL:
            return False
        cfg = self.k.config
        if self.faults_suspended:
            return False
        self.failable += 1
        fail = cfg.alloc_fail_nth > 0 and self.failable == cfg.alloc_fail_nth
        if not fail and cfg.alloc_fail_probability > 0.0:
            fail = (
                self.k.choose_data(
                    2, cfg.alloc_fail_probability, f"allocation #{self.failable} fails"
                )
                == 1
            )
        if self.k.coverage is not None:
            self.k.coverage.on_alloc(fail)
        if fail:
            self.injected_failures += 1
            self.k.ev("alloc-fail", "", f"#{self.failable}")
        return fail

    def register(self, obj: object, what: str, cache: str | None = None, site: Site = None) -> None:
        k = self.k
        cur = k.current
        self.ledger[id(obj)] = Allocation(
            obj, what, site or fast_site(3), cur.label if cur else "?", k.steps, cache
        )

    def release(self, obj: object, how: str) -> Allocation:
        """Take ``obj`` off the ledger; a double or invalid free is a finding."""
        rec = self.ledger.pop(id(obj), None)
        if rec is None:
            freed = self.quarantine.get(id(obj))
            site = format_site(fast_site(3))
            if freed is not None and freed[0] is obj:
                raise UseAfterFree(
                    f"double free of {freed[1]} in {how} at {site} (first {freed[3]})",
                    signature=f"use-after-free:double-free:{site}",
                )
            raise UseAfterFree(
                f"invalid free of {_type_name(obj)} in {how} at {site}",
                signature=f"use-after-free:invalid-free:{site}",
            )
        return rec

    def poison(self, obj: object, what: str, alloc_site: Site = None) -> None:
        """Quarantine and poison a freed object: any later access is a finding."""
        k = self.k
        cur = k.current
        note = (
            f"freed by {cur.label if cur else '?'} at step {k.steps}, {format_site(fast_site(3))}"
        )
        self.quarantine[id(obj)] = (obj, what, format_site(alloc_site), note)
        _poison(obj)

    def check_leaks(self) -> None:
        live = [a for a in self.ledger.values() if not a.ignore]
        for cache in self.caches:
            if not cache.destroyed:
                live_note = f" with {cache.live} live objects" if cache.live else ""
                self.k.record_failure(
                    Failure(
                        "leak",
                        f"kmem_cache {cache.name} was never destroyed{live_note}",
                        signature=f"leak:kmem_cache:{cache.name}",
                    )
                )
        if not live:
            return
        by_what: dict[str, list[Allocation]] = {}
        for a in live:
            by_what.setdefault(a.what, []).append(a)
        parts = [
            f"{len(v)}x {w} (first allocated by {v[0].thread} at {format_site(v[0].site)})"
            for w, v in by_what.items()
        ]
        report = "\n".join(
            f"unreferenced object {a.what}: allocated by {a.thread} at step {a.step}, "
            f"{format_site(a.site)}" + (f" from {a.cache}" if a.cache else "")
            for a in live
        )
        self.k.record_failure(
            Failure(
                "leak",
                f"{len(live)} allocation(s) never freed: " + "; ".join(parts),
                report=report,
                thread=None,
                signature="leak:" + "|".join(sorted(by_what)),
            )
        )


# ---------------------------------------------------------------------- poisoning

_POISONED: dict[type, type] = {}
_ALLOWED = frozenset({"__class__", "__dict__", "__slots__", "__weakref__"})


def _type_name(obj: object) -> str:
    cls = type(obj)
    return getattr(cls, "_freed_base", cls.__name__)


def _freed_error(obj: object, access: str) -> UseAfterFree:
    what = _type_name(obj)
    where = ""
    k = current_kernel_or_none()
    info = k.mem.quarantine.get(id(obj)) if k is not None else None
    if info is not None and info[0] is obj:
        what = info[1]
        where = f" (allocated at {info[2]}, {info[3]})"
    return UseAfterFree(
        f"{access} of freed {what}{where}",
        signature=f"use-after-free:{what}:{access}",
    )


def _freed_getattribute(self: object, name: str) -> Any:
    if name in _ALLOWED:
        return object.__getattribute__(self, name)
    raise _freed_error(self, f"read of .{name}")


def _freed_setattr(self: object, name: str, value: object) -> None:
    raise _freed_error(self, f"write of .{name}")


def _freed_item(self: object, *args: object) -> Any:
    raise _freed_error(self, "element access")


def _freed_len(self: object) -> int:
    raise _freed_error(self, "length read")


def _poison(obj: object) -> None:
    cls = type(obj)
    pcls = _POISONED.get(cls)
    if pcls is None:
        base = cls.__name__
        ns: dict[str, Any] = {
            "__slots__": (),
            "_freed_base": base,
            "__getattribute__": _freed_getattribute,
            "__setattr__": _freed_setattr,
            "__repr__": lambda self: f"<freed {base}>",
        }
        if issubclass(cls, (list, bytearray, dict)):
            ns.update(
                __getitem__=_freed_item,
                __setitem__=_freed_item,
                __delitem__=_freed_item,
                __len__=_freed_len,
                __iter__=_freed_item,
            )
        try:
            pcls = type(f"freed_{cls.__name__}", (cls,), ns)
        except TypeError:
            return  # final builtin classes cannot be poisoned
        _POISONED[cls] = pcls
    try:
        obj.__class__ = pcls
    except TypeError:
        return


def is_freed(obj: object) -> bool:
    return "_freed_base" in type(obj).__dict__


def poison(obj: object, what: str) -> None:
    """Poison a freed object of a custom allocator (e.g. a page given back)."""
    current_kernel().mem.poison(obj, what)


# ---------------------------------------------------------------------- kmalloc family


@overload
async def kmalloc(what: int, gfp: int) -> KBuffer | None: ...
@overload
async def kmalloc(what: Callable[[], T], gfp: int) -> T | None: ...
async def kmalloc(what: int | Callable[[], T], gfp: int) -> KBuffer | T | None:
    """``kmalloc()``: ``what`` is a size (a KBuffer comes back) or a zero-arg constructor."""
    mem = current_kernel().mem
    if await mem.alloc_prologue(gfp):
        return None
    obj: Any = KBuffer(what) if isinstance(what, int) else what()
    mem.register(obj, _what(what, obj))
    return cast("KBuffer | T", obj)


kzalloc = kmalloc
kvmalloc = kmalloc
kvzalloc = kmalloc


async def kcalloc(n: int, gfp: int) -> KArray | None:
    """``kcalloc(n, sizeof(void *))``: an array of n NULL pointers."""
    mem = current_kernel().mem
    if await mem.alloc_prologue(gfp):
        return None
    arr = KArray([None] * n)
    mem.register(arr, f"array[{n}]")
    return arr


def kfree(obj: object | None) -> None:
    """``kfree()``: NULL is fine; a double free is a use-after-free finding."""
    if obj is None:
        return
    k = current_kernel()
    rec = k.mem.release(obj, "kfree")
    if rec.cache is not None:
        raise UseAfterFree(
            f"kfree() of an object from kmem_cache {rec.cache} at {format_site(fast_site(2))}",
            signature=f"use-after-free:kfree-slab:{rec.cache}",
        )
    k.mem.poison(obj, rec.what, rec.site)


kvfree = kfree


def kmemleak_ignore(obj: object) -> None:
    """Do not report ``obj`` as a leak (``kmemleak_ignore``/``kmemleak_not_leak``)."""
    rec = current_kernel().mem.ledger.get(id(obj))
    if rec is not None:
        rec.ignore = True


kmemleak_not_leak = kmemleak_ignore


def _what(what: object, obj: object) -> str:
    if isinstance(what, int):
        return f"kmalloc-{what}"
    return type(obj).__name__


# ---------------------------------------------------------------------- kmem_cache


async def kmem_cache_create(
    name: str,
    size: int,
    align: int = 0,
    flags: int = 0,
    ctor: Callable[[object], None] | None = None,
    *,
    backing: SlabBacking | None = None,
) -> KmemCache | None:
    from .gfp import GFP_KERNEL

    mem = current_kernel().mem
    if await mem.alloc_prologue(GFP_KERNEL):
        return None
    cache = KmemCache(name, size, align, ctor, backing or mem.default_backing)
    mem.caches.append(cache)
    return cache


def _cache_new(mem: Memory, cache: KmemCache, gfp: int) -> object | None:
    if cache.destroyed:
        raise UseAfterFree(
            f"allocation from destroyed kmem_cache {cache.name}",
            signature=f"use-after-free:kmem_cache:{cache.name}",
        )
    obj = (
        cache.backing.new_object(cache, gfp)
        if cache.backing is not None
        else SlabObject(cache.name, cache.size)
    )
    if obj is None:
        return None
    if cache.ctor is not None:
        cache.ctor(obj)
    cache.live += 1
    mem.register(obj, cache.name, cache.name, fast_site(1))
    return obj


async def kmem_cache_alloc(cache: KmemCache, gfp: int) -> object | None:
    mem = current_kernel().mem
    if await mem.alloc_prologue(gfp):
        return None
    return _cache_new(mem, cache, gfp)


kmem_cache_zalloc = kmem_cache_alloc


async def kmem_cache_alloc_bulk(cache: KmemCache, gfp: int, n: int, out: list[Any]) -> int:
    """All or nothing, as the kernel's: returns n, or 0 on failure."""
    mem = current_kernel().mem
    if await mem.alloc_prologue(gfp):
        return 0
    for i in range(n):
        obj = _cache_new(mem, cache, gfp)
        if obj is None:
            for j in range(i):
                _cache_release(mem, cache, out[j])
                out[j] = None
            return 0
        out[i] = obj
    return n


def _cache_release(mem: Memory, cache: KmemCache, obj: object) -> None:
    rec = mem.release(obj, f"kmem_cache_free({cache.name})")
    if rec.cache != cache.name:
        raise UseAfterFree(
            f"kmem_cache_free({cache.name}) of an object from {rec.cache or 'kmalloc'}",
            signature=f"use-after-free:wrong-cache:{cache.name}",
        )
    cache.live -= 1
    if cache.backing is not None:
        cache.backing.release_object(cache, obj)
    mem.poison(obj, f"{rec.what} object", rec.site)


def kmem_cache_free(cache: KmemCache, obj: object) -> None:
    _cache_release(current_kernel().mem, cache, obj)


def kmem_cache_free_bulk(cache: KmemCache, n: int, objs: list[Any], start: int = 0) -> None:
    """``kmem_cache_free_bulk(cache, n, objs + start)``."""
    mem = current_kernel().mem
    for i in range(start, start + n):
        _cache_release(mem, cache, objs[i])


def kmem_cache_destroy(cache: KmemCache | None) -> None:
    if cache is None:
        return
    k = current_kernel()
    if cache.live:
        site = format_site(fast_site(2))
        k.fail(
            Failure(
                "warn",
                f"kmem_cache_destroy {cache.name}: Slab cache still has objects ({cache.live}) "
                f"when called from {site}",
                signature=f"warn:kmem_cache_destroy:{cache.name}",
            ),
            fatal=k.config.warn_fatal,
        )
    cache.destroyed = True
