"""Virtual time: sleeps, delays, register polls with timeouts, jiffies.

Time only moves when a timer fires (early, as an interrupt the strategy
chose, or because no thread can run), so a 100 ms poll costs nothing and is
the same on every machine.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Final

from ..errno import ETIMEDOUT
from .kernel import NSEC_PER_MSEC, NSEC_PER_USEC, current_kernel

HZ: Final = 1000
NSEC_PER_JIFFY: Final = 1_000_000_000 // HZ
MAX_SCHEDULE_TIMEOUT: Final = sys.maxsize


def ktime_get_ns() -> int:
    return current_kernel().now


def jiffies() -> int:
    return current_kernel().now // NSEC_PER_JIFFY


def msecs_to_jiffies(ms: int) -> int:
    return (ms * HZ + 999) // 1000


def jiffies_to_nsecs(j: int) -> int:
    return j * NSEC_PER_JIFFY


async def msleep(ms: int) -> None:
    await current_kernel().sleep_ns(ms * NSEC_PER_MSEC)


async def usleep_range(min_us: int, max_us: int) -> None:
    # The kernel may wake anywhere in [min, max]; the model takes max.
    await current_kernel().sleep_ns(max(min_us, max_us) * NSEC_PER_USEC)


async def udelay(us: int) -> None:
    """A busy-wait on another CPU: virtual time passes, other threads may run."""
    await current_kernel().sleep_ns(us * NSEC_PER_USEC)


async def read_poll_timeout(
    op: Callable[[], Awaitable[int]],
    cond: Callable[[int], bool],
    sleep_us: int,
    timeout_us: int,
    *,
    sleep_before_read: bool = False,
    atomic: bool = False,
) -> tuple[int, int]:
    """``read_poll_timeout()`` / ``_atomic()``: returns ``(0 or -ETIMEDOUT, last value)``."""
    from ..locking.lockdep import might_sleep

    k = current_kernel()
    deadline = k.now + timeout_us * NSEC_PER_USEC
    delay = udelay if atomic else _poll_sleep
    if not atomic and sleep_us:
        might_sleep()
    if sleep_before_read and sleep_us:
        await delay(sleep_us)
    while True:
        val = await op()
        if cond(val):
            break
        if timeout_us and k.now > deadline:
            val = await op()
            break
        if sleep_us:
            await delay(sleep_us)
    return (0 if cond(val) else -ETIMEDOUT), val


async def _poll_sleep(sleep_us: int) -> None:
    await usleep_range((sleep_us >> 2) + 1, sleep_us)
