"""A progress bar for campaigns on a terminal (stderr); silent otherwise.

The line shows the current scenario's bar, runs/s, steps/s and failures;
then, for the campaign as a whole (:class:`ProgressStats`, every progress
tick), the seed functions reached (when coverage is collected), the
lock-order pairs seen, and with several workers the runs each one did.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from .campaign import Found, ProgressSink, ProgressStats, ScenarioResult


def _fmt_rate(x: float) -> str:
    if x >= 10_000:
        return f"{x / 1000:.0f}k"
    if x >= 1000:
        return f"{x / 1000:.1f}k"
    return f"{x:.0f}"


def _fmt_time(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class ProgressBar(ProgressSink):
    """One line, redrawn in place at most 10 times a second, erased when a scenario
    ends and when the campaign ends however it ends (the summary has the numbers),
    so no stale bar ("26/1000000 ... ETA 0:09:07") is left on the screen."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.name = ""
        self.total: int | None = None
        self.budget: float | None = None
        self.t0 = 0.0
        self.last = 0.0
        self.runs = 0
        self.steps = 0
        self.failures = 0
        self.drawn = False  # a bar is on the screen
        self.campaign = ProgressStats()

    def start(self, name: str, total: int | None, budget_s: float | None) -> None:
        self.name, self.total, self.budget = name, total, budget_s
        self.t0 = time.monotonic()
        self.last = 0.0
        self.runs = self.steps = self.failures = 0
        self._draw(force=True)

    def update(self, name: str, runs: int, steps: int, failures: int) -> None:
        self.runs, self.steps, self.failures = runs, steps, failures
        self._draw()

    def stats(self, stats: ProgressStats) -> None:
        self.campaign = stats
        self._draw()

    def found(self, name: str, found: Found) -> None:
        self.failures += 1
        self._draw(force=True)

    def finish(self, result: ScenarioResult) -> None:
        self.runs, self.steps = result.runs, result.steps
        self.failures = len(result.failures)
        self.clear()

    def close(self) -> None:
        self.clear()

    def clear(self) -> None:
        if self.enabled and self.drawn:
            width = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r" + " " * (width - 1) + "\r")
            self.stream.flush()
            self.drawn = False

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        elapsed = max(now - self.t0, 1e-9)
        width = shutil.get_terminal_size((100, 20)).columns
        if self.total:
            frac = min(1.0, self.runs / self.total)
            count = f"{self.runs}/{self.total}"
        elif self.budget:
            frac = min(1.0, elapsed / self.budget)
            count = f"{self.runs} runs"
        else:
            frac, count = 0.0, f"{self.runs} runs"
        eta = ""
        if 0 < frac < 1:
            eta = f" ETA {_fmt_time(elapsed / frac - elapsed)}"
        fails = f" {self.failures} failure{'s' if self.failures != 1 else ''}"
        tail = (
            f" {count} {_fmt_rate(self.runs / elapsed)} runs/s "
            f"{_fmt_rate(self.steps / elapsed)} steps/s{fails}{self._campaign_text()} "
            f"{_fmt_time(elapsed)}{eta}"
        )
        name = self.name[:24].ljust(24)
        bar_w = max(10, width - len(name) - len(tail) - 4)
        filled = int(frac * bar_w)
        bar = "█" * filled + "░" * (bar_w - filled)
        line = f"{name} {bar}{tail}"
        self.stream.write("\r" + line[: width - 1].ljust(width - 1))
        self.stream.flush()
        self.drawn = True

    def _campaign_text(self) -> str:
        c = self.campaign
        out = ""
        if c.functions_reached is not None:
            out += f" {c.functions_reached}/{c.functions_total} fns"
        if c.lock_pairs:
            out += f" {c.lock_pairs} lock pairs"
        if len(c.per_worker) > 1:
            out += " workers " + "/".join(str(n) for n in c.per_worker.values())
        return out
