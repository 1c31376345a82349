"""WARN_ON / drm_WARN_ON / BUG_ON.

A WARN is an oracle finding (kind ``warn``). By default it ends the run;
with ``KernelConfig(warn_fatal=False)`` it is only counted and the model
carries on, as the kernel does.
"""

from __future__ import annotations

import linecache
import sys

from .core.failure import Failure, KernelBug
from .core.frames import short_path
from .core.kernel import current_kernel


def _site_and_text(skip: int) -> tuple[str, str]:
    frame = sys._getframe(skip)
    code = frame.f_code
    site = f"{short_path(code.co_filename)}:{frame.f_lineno} in {code.co_name}"
    text = linecache.getline(code.co_filename, frame.f_lineno).strip()
    return site, text


def _warn(skip: int, what: str | None) -> None:
    k = current_kernel()
    if k.stopping:
        return
    site, text = _site_and_text(skip + 1)
    detail = what if what else text
    k.fail(
        Failure("warn", f"WARNING at {site}: {detail}", signature=f"warn:{site}"),
        fatal=k.config.warn_fatal,
    )


def WARN_ON(cond: object) -> bool:
    if cond:
        _warn(2, None)
    return bool(cond)


def WARN(cond: object, fmt: str, *args: object) -> bool:
    if cond:
        _warn(2, fmt % args if args else fmt)
    return bool(cond)


_ONCE_KEY = "warn_once_sites"


def _warn_once(what: str | None) -> None:
    """WARN unless this call site already warned in this run."""
    k = current_kernel()
    frame = sys._getframe(2)
    key = (frame.f_code, frame.f_lineno)
    seen: set[object] = k.objects.setdefault(_ONCE_KEY, set())
    if key not in seen:
        seen.add(key)
        _warn(3, what)


def WARN_ON_ONCE(cond: object) -> bool:
    if cond:
        _warn_once(None)
    return bool(cond)


def WARN_ONCE(cond: object, fmt: str, *args: object) -> bool:
    if cond:
        _warn_once(fmt % args if args else fmt)
    return bool(cond)


def drm_WARN_ON(drm: object, cond: object) -> bool:
    if cond:
        _warn(2, None)
    return bool(cond)


def drm_WARN(drm: object, cond: object, fmt: str, *args: object) -> bool:
    if cond:
        _warn(2, fmt % args if args else fmt)
    return bool(cond)


def drm_WARN_ON_ONCE(drm: object, cond: object) -> bool:
    if cond:
        _warn_once(None)
    return bool(cond)


def BUG_ON(cond: object) -> None:
    if cond:
        site, text = _site_and_text(2)
        raise KernelBug(f"kernel BUG at {site}: {text}", signature=f"exception:BUG:{site}")


def BUG() -> None:
    site, _text = _site_and_text(2)
    raise KernelBug(f"kernel BUG at {site}", signature=f"exception:BUG:{site}")
