"""``drm_err``/``drm_dbg``/``drm_info`` (include/drm/drm_print.h): messages go to the trace.

The text is formatted only when the run is traced, so debug prints on hot
paths cost a check.
"""

from __future__ import annotations

from ..core.kernel import current_kernel


def _log(kind: str, fmt: str, args: tuple[object, ...]) -> None:
    k = current_kernel()
    if k.tracing:
        text = (fmt % args if args else fmt).rstrip("\n")
        k.ev(kind, text.split("\n", 1)[0][:200])


def drm_err(drm: object, fmt: str, *args: object) -> None:
    _log("drm_err", fmt, args)


def drm_info(drm: object, fmt: str, *args: object) -> None:
    _log("drm_info", fmt, args)


def drm_dbg(drm: object, fmt: str, *args: object) -> None:
    _log("drm_dbg", fmt, args)


def drm_warn(drm: object, fmt: str, *args: object) -> None:
    _log("drm_warn", fmt, args)
