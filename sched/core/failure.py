"""What makes a run fail: failure records and the exceptions that carry them.

Oracles never know which bug is injected; they only see behaviour (a WARN
hit, a cycle in the lock graph, a thread that can never be woken) and turn
it into a :class:`Failure` with a kind from :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

# The kinds of the CLI contract, plus three the executor itself detects.
KINDS: Final = (
    "deadlock",
    "lockdep",
    "warn",
    "invariant",
    "use-after-free",
    "bad-gpu-access",
    "leak",
    "exception",
    "livelock",  # the step or virtual-time limit was hit while threads kept running
    "uncontrolled",  # a simulated thread awaited something the executor does not control
)

# Failures that end the run at once (after the kernel splat is recorded).
# A lockdep report is a *potential* deadlock: like the kernel, the run goes
# on, so the deadlock itself can still happen and be reported.
NONFATAL_KINDS: Final = frozenset({"lockdep", "leak"})


class Failure:
    """One oracle finding in one run.

    ``report`` (the multi-line, kernel-style text) may be given as a function:
    it is rendered the first time someone reads it, so a campaign that only
    de-duplicates by signature never pays for formatting it.
    """

    __slots__ = ("_report", "extra", "kind", "message", "signature", "step", "thread", "time_ns")

    def __init__(
        self,
        kind: str,
        message: str,
        report: str | Callable[[], str] = "",
        thread: str | None = None,
        step: int = 0,
        time_ns: int = 0,
        signature: str = "",
        extra: dict[str, Any] | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        self.kind = kind
        self.message = message  # one line
        self._report = report
        self.thread = thread
        self.step = step
        self.time_ns = time_ns
        # stable across runs: used to de-duplicate findings
        self.signature = signature or f"{kind}:{message}"
        self.extra: dict[str, Any] = extra if extra is not None else {}

    @property
    def report(self) -> str:
        r = self._report
        if not isinstance(r, str):
            r = self._report = r()
        return r

    @report.setter
    def report(self, value: str) -> None:
        self._report = value

    @property
    def fatal(self) -> bool:
        return self.kind not in NONFATAL_KINDS

    def __repr__(self) -> str:
        return f"Failure({self.kind!r}, {self.message!r}, signature={self.signature!r})"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "message": self.message,
            "thread": self.thread,
            "step": self.step,
            "time_ns": self.time_ns,
            "signature": self.signature,
        }
        if self.report:
            out["report"] = self.report
        return out


class KernelFault(Exception):
    """An exception raised by model code that is an oracle finding by itself.

    Subclasses set ``failure_kind``; when one escapes a simulated thread the
    run fails with that kind instead of the generic ``exception``.
    """

    failure_kind = "exception"

    def __init__(self, message: str, *, signature: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.signature = signature


class UseAfterFree(KernelFault):
    failure_kind = "use-after-free"


class InvariantViolation(KernelFault):
    failure_kind = "invariant"


class KernelBug(KernelFault):
    """``BUG()`` / ``BUG_ON()``: the kernel oopses and the thread dies."""

    failure_kind = "exception"


class RunStopped(BaseException):
    """Unwinds a simulated thread when its run ends early.

    Raised inside threads after a fatal failure is recorded, and delivered to
    parked threads during teardown. A BaseException so that model code's
    ``except Exception`` never swallows it.
    """


class ReplayDivergence(Exception):
    """A recorded choice list does not fit the run it is replayed against."""


class ExecutorError(Exception):
    """Misuse of the executor API (not a finding about the model)."""
