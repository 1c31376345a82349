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
    frame: FrameType | None = sys._getframe(skip)
    fallback = "?"
    while frame is not None and is_executor_file(frame.f_code.co_filename):
        if fallback == "?" and not _is_runtime(frame.f_code.co_filename):
            fallback = _fmt(frame, frame.f_lineno)
        frame = frame.f_back
    if frame is None:
        return fallback
    return _fmt(frame, frame.f_lineno)


def _is_runtime(filename: str) -> bool:
    """Trio, outcome and the executor core: never where a model went wrong."""
    return any(p in filename for p in _SKIP_PARTS) or os.path.basename(filename) in _CORE_FILES


# Kernel objects in sched/ (workqueues, drm_sched, ...) are model code too; a
# report falls back to their frames when no driver frame is on the stack
# (a work item or a scheduler thread runs kernel code only).
_CORE_FILES = frozenset({"kernel.py", "session.py", "waitqueue.py", "frames.py", "harness.py"})


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


def where_blocked(t: SimThread) -> str:
    """The model line a parked thread is blocked at."""
    if t.task is None:
        return "not started"
    best = fallback = "?"
    for frame, lineno in t.task.iter_await_frames():
        filename = frame.f_code.co_filename
        if not is_executor_file(filename):
            best = _fmt(frame, lineno)
        elif not _is_runtime(filename):
            fallback = _fmt(frame, lineno)
    return best if best != "?" else fallback


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
