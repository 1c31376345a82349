"""``include/linux/sizes.h`` and the page-size constants the MMU code uses."""

from __future__ import annotations

from typing import Final

SZ_4K: Final = 0x1000
SZ_16K: Final = 0x4000
SZ_32K: Final = 0x8000
SZ_64K: Final = 0x10000
SZ_2M: Final = 0x200000
SZ_32M: Final = 0x2000000
SZ_256M: Final = 0x10000000
SZ_512M: Final = 0x20000000
SZ_1G: Final = 0x40000000
SZ_2G: Final = 0x80000000
SZ_4G: Final = 0x100000000

PAGE_SHIFT: Final = 12
PAGE_SIZE: Final = 1 << PAGE_SHIFT
PAGE_MASK: Final = ~(PAGE_SIZE - 1)

U32_MAX: Final = 0xFFFFFFFF
U64_MAX: Final = 0xFFFFFFFFFFFFFFFF


def lower_32_bits(v: int) -> int:
    """``lower_32_bits()``."""
    return v & U32_MAX


def upper_32_bits(v: int) -> int:
    """``upper_32_bits()`` of a u64."""
    return (v >> 32) & U32_MAX


def get_order(size: int) -> int:
    """``get_order()``: the page order of an allocation of ``size`` bytes (size >= 1)."""
    pages = (size + PAGE_SIZE - 1) >> PAGE_SHIFT
    return max(0, (pages - 1).bit_length())


def ALIGN(x: int, a: int) -> int:
    """``ALIGN()`` for a power-of-two ``a``."""
    return (x + a - 1) & ~(a - 1)


def ALIGN_DOWN(x: int, a: int) -> int:
    """``ALIGN_DOWN()`` for a power-of-two ``a``."""
    return x & ~(a - 1)


def IS_ALIGNED(x: int, a: int) -> bool:
    """``IS_ALIGNED()`` for a power-of-two ``a``."""
    return (x & (a - 1)) == 0
