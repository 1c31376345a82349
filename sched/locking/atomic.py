"""atomic_t and the atomic bitops. Every operation is a yield point."""

from __future__ import annotations

from ..core.kernel import current_kernel, preempt


class Atomic:
    """``atomic_t`` / ``atomic64_t`` / an ``unsigned long`` used with atomic bitops."""

    __slots__ = ("name", "v")

    def __init__(self, v: int = 0, name: str = "atomic") -> None:
        self.v = v
        self.name = name

    def __repr__(self) -> str:
        return f"<atomic {self.name}={self.v}>"


async def atomic_read(a: Atomic) -> int:
    await preempt()
    return a.v


async def atomic_set(a: Atomic, v: int) -> None:
    await preempt()
    a.v = v
    current_kernel().ev("atomic_set", a.name, str(v))


async def atomic_add_return(i: int, a: Atomic) -> int:
    await preempt()
    a.v += i
    current_kernel().ev("atomic_add", a.name, str(a.v))
    return a.v


async def atomic_inc(a: Atomic) -> None:
    await atomic_add_return(1, a)


async def atomic_dec(a: Atomic) -> None:
    await atomic_add_return(-1, a)


async def atomic_inc_return(a: Atomic) -> int:
    return await atomic_add_return(1, a)


async def atomic_dec_return(a: Atomic) -> int:
    return await atomic_add_return(-1, a)


async def atomic_dec_and_test(a: Atomic) -> bool:
    return await atomic_add_return(-1, a) == 0


async def atomic_cmpxchg(a: Atomic, old: int, new: int) -> int:
    """Returns the previous value; stores ``new`` only if it was ``old``."""
    await preempt()
    prev = a.v
    if prev == old:
        a.v = new
        current_kernel().ev("cmpxchg", a.name, f"{old}->{new}")
    return prev


async def atomic_xchg(a: Atomic, new: int) -> int:
    await preempt()
    prev = a.v
    a.v = new
    current_kernel().ev("xchg", a.name, f"{prev}->{new}")
    return prev


async def set_bit(nr: int, a: Atomic) -> None:
    await preempt()
    a.v |= 1 << nr
    current_kernel().ev("set_bit", a.name, str(nr))


async def clear_bit(nr: int, a: Atomic) -> None:
    await preempt()
    a.v &= ~(1 << nr)
    current_kernel().ev("clear_bit", a.name, str(nr))


async def test_bit(nr: int, a: Atomic) -> bool:
    await preempt()
    return bool(a.v >> nr & 1)


async def test_and_set_bit(nr: int, a: Atomic) -> bool:
    await preempt()
    old = bool(a.v >> nr & 1)
    a.v |= 1 << nr
    current_kernel().ev("test_and_set_bit", a.name, f"{nr}:{int(old)}")
    return old


async def test_and_clear_bit(nr: int, a: Atomic) -> bool:
    await preempt()
    old = bool(a.v >> nr & 1)
    a.v &= ~(1 << nr)
    current_kernel().ev("test_and_clear_bit", a.name, f"{nr}:{int(old)}")
    return old


def ffz(word: int) -> int:
    """Index of the first zero bit."""
    n = 0
    while word & 1:
        word >>= 1
        n += 1
    return n


def ffs(word: int) -> int:
    """1-based index of the first set bit, 0 if none (like the kernel's ffs)."""
    if word == 0:
        return 0
    return (word & -word).bit_length()


def fls64(word: int) -> int:
    """1-based index of the last set bit, 0 if none."""
    return (word & ((1 << 64) - 1)).bit_length()


def BIT(n: int) -> int:
    return 1 << n


def GENMASK(h: int, l: int) -> int:
    return ((1 << (h - l + 1)) - 1) << l


GENMASK_ULL = GENMASK
