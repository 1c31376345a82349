"""u64 arithmetic the kernel gets for free from C: wrap-around and overflow checks."""

from __future__ import annotations

from typing import Final

U64_MAX: Final = (1 << 64) - 1


def u64(x: int) -> int:
    """``(u64)x``: wrap a Python int to 64 bits."""
    return x & U64_MAX


def check_add_overflow(a: int, b: int) -> bool:
    """``check_add_overflow(a, b, &end)`` for two u64 operands: true if a + b wraps."""
    return a + b > U64_MAX


def is_u64(x: int) -> bool:
    return 0 <= x <= U64_MAX
