"""``panthor-testbed bench``: throughput figures, each beside its baseline.

Every figure is measured in the same process as its baseline, so the ratio
holds on a noisy machine. Benchmarks report numbers; tests never assert
times. A bench module registers functions with :func:`bench`; each returns
its figures. Add new modules to ``MODULES``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MODULES: tuple[str, ...] = (
    "panthor_testbed.fuzz.bench_core",
    "panthor_testbed.fuzz.bench_kobj",
    "panthor_testbed.fuzz.bench_gpuvm",
    "panthor_testbed.fuzz.bench_mmu",
    "panthor_testbed.fuzz.bench_driver",
    "panthor_testbed.fuzz.bench_campaign",
    "panthor_testbed.fuzz.bench_coverage",
    "panthor_testbed.fuzz.bench_bugs",
)


@dataclass
class Figure:
    name: str
    value: float
    unit: str = "us"
    baseline: str | None = None
    baseline_value: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline_value is None or self.baseline_value == 0:
            return None
        return self.value / self.baseline_value

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "value": round(self.value, 3), "unit": self.unit}
        if self.baseline is not None:
            out["baseline"] = self.baseline
            out["baseline_value"] = round(self.baseline_value or 0.0, 3)
            ratio = self.ratio
            out["ratio"] = round(ratio, 3) if ratio is not None else None
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class BenchOptions:
    quick: bool = False  # small sizes (tests); numbers are then only indicative

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full


BenchFn = Callable[[BenchOptions], list[Figure]]
_REGISTRY: list[tuple[str, BenchFn]] = []


def bench(name: str) -> Callable[[BenchFn], BenchFn]:
    """Register a bench function (it returns one or more figures)."""

    def register(fn: BenchFn) -> BenchFn:
        _REGISTRY.append((name, fn))
        return fn

    return register


def all_benches() -> list[tuple[str, BenchFn]]:
    for mod in MODULES:
        importlib.import_module(mod)
    return list(_REGISTRY)


def best_of(repeats: int, measure: Callable[[], float]) -> float:
    """The smallest of ``repeats`` measurements (the least disturbed one)."""
    return min(measure() for _ in range(repeats))


def run_benches(options: BenchOptions, only: list[str] | None = None) -> list[Figure]:
    figures: list[Figure] = []
    for name, fn in all_benches():
        if only and name not in only:
            continue
        figures.extend(fn(options))
    return figures


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))
