"""Source locations of model code, for reports.

Frames of the executor and its primitives (this package), Trio and outcome
are skipped, so a report points at the model line that took the lock,
allocated the object or blocked.
"""

from __future__ import annotations

import os
import sys
from types import CodeType, FrameType, TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .thread import SimThread

# sched/, the simulated kernel (this file is in sched/core/).
_SCHED_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_SKIP_PARTS = (os.sep + "trio" + os.sep, os.sep + "outcome" + os.sep, os.sep + "functools.py")


def is_executor_file(filename: str) -> bool:
    return filename.startswith(_SCHED_DIR) or any(p in filename for p in _SKIP_PARTS)


def short_path(path: str) -> str:
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:]) if len(parts) > 1 else path


def _fmt(frame: FrameType, lineno: int) -> str:
    return f"{short_path(frame.f_code.co_filename)}:{lineno} in {frame.f_code.co_name}"


def caller_location(skip: int = 1) -> str:
    """The innermost model frame above the caller: 'mmu/panthor_mmu.py:523 in fn'."""
    return format_site(caller_site(skip + 1))


def caller_site(skip: int = 1) -> Site:
    """:func:`caller_location`, unformatted (for reports rendered later)."""
    frame: FrameType | None = sys._getframe(skip)
    fallback: Site = None
    classes = _file_class
    while frame is not None:
        code = frame.f_code
        c = classes.get(code.co_filename)
        if c is None:
            c = classes[code.co_filename] = _classify(code.co_filename)
        if c == _MODEL:
            return (code, frame.f_lineno)
        if c == _KOBJ and fallback is None:
            fallback = (code, frame.f_lineno)
        frame = frame.f_back
    return fallback


def _is_runtime(filename: str) -> bool:
    """Trio, outcome and the executor core: never where a model went wrong."""
    return any(p in filename for p in _SKIP_PARTS) or os.path.basename(filename) in _CORE_FILES


# Kernel objects in sched/ (workqueues, drm_sched, ...) are model code too; a
# report falls back to their frames when no driver frame is on the stack
# (a work item or a scheduler thread runs kernel code only).
_CORE_FILES = frozenset({"kernel.py", "waitqueue.py", "frames.py", "harness.py"})


def model_location(tb: TracebackType | None) -> str:
    """The innermost model frame of a traceback (where the model went wrong)."""
    best = fallback = "?"
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not is_executor_file(filename):
            best = _fmt(tb.tb_frame, tb.tb_lineno)
        elif not _is_runtime(filename):
            fallback = _fmt(tb.tb_frame, tb.tb_lineno)
        tb = tb.tb_next
    return best if best != "?" else fallback


def await_frames(coro: object) -> list[tuple[FrameType, int]]:
    """The frames of a suspended coroutine chain, outermost first (``cr_await``)."""
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        frames.append((frame, frame.f_lineno))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frames


def where_blocked(t: SimThread) -> str:
    """The model line a parked thread is blocked at."""
    if t.coro is None:
        return "not started"
    return format_site(blocked_site(t))


def blocked_site(t: SimThread) -> Site:
    """:func:`where_blocked`, unformatted (for reports rendered later)."""
    best: Site = None
    fallback: Site = None
    classes = _file_class
    for frame, lineno in await_frames(t.coro):
        code = frame.f_code
        c = classes.get(code.co_filename)
        if c is None:
            c = classes[code.co_filename] = _classify(code.co_filename)
        if c == _MODEL:
            best = (code, lineno)
        elif c == _KOBJ:
            fallback = (code, lineno)
    return best or fallback


# Frame classes, cached per file name: model code, kernel objects of sched/
# (model code too, as a fallback), the executor runtime (never reported).
_MODEL, _KOBJ, _RUNTIME = 0, 1, 2
_file_class: dict[str, int] = {}


def _classify(filename: str) -> int:
    if not is_executor_file(filename):
        return _MODEL
    return _RUNTIME if _is_runtime(filename) else _KOBJ


# A call site captured cheaply on hot paths and formatted only for reports.
Site = tuple[CodeType, int] | None

_executor_file: dict[str, bool] = {}


def fast_site(skip: int = 2) -> Site:
    """The innermost model frame's (code, line), without formatting."""
    frame: FrameType | None = sys._getframe(skip)
    cache = _executor_file
    while frame is not None:
        code = frame.f_code
        ex = cache.get(code.co_filename)
        if ex is None:
            ex = cache[code.co_filename] = is_executor_file(code.co_filename)
        if not ex:
            return (code, frame.f_lineno)
        frame = frame.f_back
    return None


def format_site(site: Site) -> str:
    if site is None:
        return "?"
    code, line = site
    return f"{short_path(code.co_filename)}:{line} in {code.co_name}"
