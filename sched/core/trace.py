"""The run's event trace: recording, a per-thread table, Chrome JSON, digest.

Events are plain tuples ``(step, time_ns, tid, kind, obj, detail)`` appended
on the hot path; everything else (rendering, export, hashing) happens after
the run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

Event = tuple[int, int, int, str, str, str]

TIMER_TID = -1  # events emitted by timer callbacks (hardware, clock)


class Trace:
    __slots__ = ("events", "thread_names")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.thread_names: list[str] = []

    def __len__(self) -> int:
        return len(self.events)

    def digest(self) -> str:
        """A stable hash of the whole trace, for determinism checks."""
        h = hashlib.sha256()
        h.update("\x1f".join(self.thread_names).encode())
        for step, t, tid, kind, obj, detail in self.events:
            h.update(f"\n{step}|{t}|{tid}|{kind}|{obj}|{detail}".encode())
        return h.hexdigest()

    def name_of(self, tid: int) -> str:
        if tid == TIMER_TID:
            return "timer"
        return self.thread_names[tid]

    def render_table(
        self, *, last: int | None = None, width: int = 30, tids: Sequence[int] | None = None
    ) -> str:
        """The interleaving as a table with one column per thread."""
        events = self.events if last is None else self.events[-last:]
        used = sorted({e[2] for e in events})
        cols = list(tids) if tids is not None else used
        if not cols:
            return "(empty trace)"
        col_of = {tid: i for i, tid in enumerate(cols)}
        show_time = any(e[1] for e in events)
        head = ["step"] + (["time(us)"] if show_time else [])
        lines = []
        header = [f"{h:>8}" for h in head] + [
            _clip(f"T{tid} {self.name_of(tid)}" if tid >= 0 else "timer", width).ljust(width)
            for tid in cols
        ]
        lines.append(" ".join(header).rstrip())
        lines.append(" ".join("-" * 8 for _ in head) + " " + " ".join("-" * width for _ in cols))
        skipped = len(self.events) - len(events)
        if skipped:
            lines.append(f"{'...':>8} ({skipped} earlier events not shown)")
        for step, t, tid, kind, obj, detail in events:
            if tid not in col_of:
                continue
            text = _clip(" ".join(x for x in (kind, obj, detail) if x), width)
            cells = [""] * len(cols)
            cells[col_of[tid]] = text
            row = [f"{step:>8}"] + ([f"{t / 1000:>8.1f}"] if show_time else [])
            row += [c.ljust(width) for c in cells]
            lines.append(" ".join(row).rstrip())
        return "\n".join(lines)

    def to_chrome(self) -> dict[str, Any]:
        """Chrome trace-event JSON (Perfetto opens it).

        Virtual time barely moves while threads run, so the time axis is the
        step number (1 step = 1 us); virtual time is kept in each event's args.
        Lock holds become duration slices; one still held at the end of the
        trace ends there, with ``args.held_at_end``.
        """
        out: list[dict[str, Any]] = []
        tids = sorted({e[2] for e in self.events})
        for tid in tids:
            out.append(
                {
                    "ph": "M",
                    "name": "thread_name",
                    "pid": 1,
                    "tid": tid + 1,
                    "args": {"name": f"T{tid} {self.name_of(tid)}" if tid >= 0 else "timer"},
                }
            )
        open_slices: dict[tuple[int, str], int] = {}
        for step, t, tid, kind, obj, detail in self.events:
            args = {"time_ns": t, "detail": detail} if detail else {"time_ns": t}
            if kind in ("lock", "trylock", "read_lock") and obj:
                open_slices[(tid, obj)] = step
            elif kind == "unlock" and (tid, obj) in open_slices:
                start = open_slices.pop((tid, obj))
                out.append(
                    {
                        "ph": "X",
                        "name": f"hold {obj}",
                        "pid": 1,
                        "tid": tid + 1,
                        "ts": start,
                        "dur": max(step - start, 1),
                        "cat": "lock",
                    }
                )
            out.append(
                {
                    "ph": "i",
                    "s": "t",
                    "name": f"{kind} {obj}".strip(),
                    "pid": 1,
                    "tid": tid + 1,
                    "ts": step,
                    "cat": kind,
                    "args": args,
                }
            )
        # Locks still held when the trace ends (the run failed: a deadlock, a
        # fatal finding) are slices up to the last event, marked as such.
        end = self.events[-1][0] if self.events else 0
        for (tid, obj), start in open_slices.items():
            out.append(
                {
                    "ph": "X",
                    "name": f"hold {obj}",
                    "pid": 1,
                    "tid": tid + 1,
                    "ts": start,
                    "dur": max(end - start, 1),
                    "cat": "lock",
                    "args": {"held_at_end": True},
                }
            )
        return {"traceEvents": out, "displayTimeUnit": "ns"}

    def write_chrome(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_chrome(), f)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
