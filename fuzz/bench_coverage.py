"""Coverage figures: what collecting it costs, and what the coverage planner buys.

* ``coverage-on`` (baseline ``coverage-off``): wall time of the same random
  runs of a driver scenario (a VM with a BO bound, a group, one GPU job,
  group destroyed, unbound, device unplugged; all on the real driver
  paths) with ``KernelConfig.coverage`` on and off, interleaved and best
  of several rounds. The ratio is the price of coverage (the brief: <= 1.20).
* ``time-to-bug-coverage-<name>`` (baseline ``time-to-bug-default-<name>``):
  for each catalogue entry that a campaign finds (``found_as``; and, always,
  the executor's demo scenarios), the median over seeds of the runs a
  campaign needs to find it with ``--strategy coverage`` and with the
  default portfolio. The entry's selection is the regression suite's (a
  pre-seed bug injected with every fix installed, a latent one with every
  *other* fix), and a seed counts only if its first failure is the entry's
  (a campaign stopped at another finding counts as the budget, as one that
  finds nothing). Runs are deterministic, so the figure is in runs; the
  note gives the median seconds of each and how many seeds found it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

import trio

from panthor_testbed.mmu.bringup import device_fini, device_init
from panthor_testbed.mmu.gem_shmem import PanthorGemObject, panthor_gem_create
from panthor_testbed.mmu.gpu_jobs import (
    gpu_file_close,
    gpu_file_open,
    gpu_group_create,
    gpu_job_wait,
    gpu_vm_create,
    gpu_wait_groups_released,
    panthor_job_submit,
    vm_of,
)
from panthor_testbed.mmu.hw.gpu_access import GPU_READ, GPU_WRITE
from panthor_testbed.mmu.panthor_device import (
    PanthorFile,
)
from panthor_testbed.mmu.panthor_mmu import (
    panthor_vm_map_bo_range,
    panthor_vm_unmap_range,
)
from panthor_testbed.mmu.panthor_sched import (
    panthor_group_destroy,
)
from panthor_testbed.sched import (
    DmaFence,
    InvariantViolation,
    Kernel,
    KernelConfig,
    Mutex,
    RandomWalk,
    mutex_lock,
    mutex_unlock,
)
from panthor_testbed.sched.core.harness import run
from panthor_testbed.sched.drm.drm_gem import drm_gem_object_put

from .bench import BenchOptions, Figure, bench
from .scenario import Range

BO_VA = 0x100000
BO_SIZE = 16 * 4096


async def bind_and_job(k: Kernel) -> None:
    """A device, a VM with a BO bound, one GPU job, then everything released and unplugged."""
    ptdev = await device_init(k)

    pfile = await gpu_file_open(ptdev)
    assert isinstance(pfile, PanthorFile)
    vm_id = await gpu_vm_create(pfile)
    vm = vm_of(pfile, vm_id)
    bo = await panthor_gem_create(BO_SIZE, "bo")
    assert isinstance(bo, PanthorGemObject)
    assert await panthor_vm_map_bo_range(vm, bo, 0, BO_SIZE, BO_VA, 0) == 0
    gh = await gpu_group_create(pfile, vm_id)
    fence = await panthor_job_submit(
        pfile, gh, [(BO_VA + 0x10, GPU_READ), (BO_VA + 0x5008, GPU_WRITE)]
    )
    assert isinstance(fence, DmaFence)
    await gpu_job_wait(fence)
    assert await panthor_group_destroy(pfile, gh) == 0
    assert await gpu_wait_groups_released(ptdev)
    assert await panthor_vm_unmap_range(vm, BO_VA, BO_SIZE) == 0
    await drm_gem_object_put(bo)
    await gpu_file_close(pfile)
    assert await gpu_wait_groups_released(ptdev)

    await device_fini(ptdev)


def run_driver(seed: int, *, coverage: bool, trace: bool = True) -> Kernel:
    """One random run of :func:`bind_and_job`."""
    cfg = KernelConfig(coverage=coverage, trace=trace)
    return run(bind_and_job, strategy=RandomWalk(seed, 1200), config=cfg)


def _timed(runs: int, coverage: bool) -> float:
    t0 = time.perf_counter()
    for seed in range(runs):
        run_driver(seed, coverage=coverage)
    return time.perf_counter() - t0


@bench("coverage")
def bench_coverage(options: BenchOptions) -> list[Figure]:
    runs = options.n(30, 4)
    rounds = options.n(5, 2)
    run_driver(0, coverage=True)  # the probed copies are made once per process
    off: list[float] = []
    on: list[float] = []
    for _ in range(rounds):  # interleaved, so drift hits both alike
        off.append(_timed(runs, False))
        on.append(_timed(runs, True))
    figures = [
        Figure(
            "coverage-on",
            min(on) / runs * 1e3,
            "ms/run",
            "coverage-off",
            min(off) / runs * 1e3,
            note=f"driver scenario (bind + GPU job), {runs} random runs, best of {rounds}",
        )
    ]
    figures.extend(time_to_bug_figures(options))
    return figures


# ---------------------------------------------------------------------- magic chain

MAGIC: Final = (3, 1, 2, 3, 2, 1, 3, 2)
MAGIC_SCENARIO: Final = "panthor_testbed.fuzz.bench_coverage:magic_chain"


async def magic_chain(k: Kernel, depth: Annotated[int, Range(1, len(MAGIC))] = 4) -> None:
    """A bug behind a chain of data values: each value right takes one more lock.

    Built to need coverage: a random walk draws each value right with
    probability 1/6 (a non-zero value half the time, then one of three), so
    it needs about 6**depth runs; but each level reached is a lock-order pair
    no run had before, so the coverage planner keeps that run and extends it.
    """
    base = Mutex("magic-base")
    locks = [Mutex(f"magic-{i}") for i in range(depth)]
    await mutex_lock(base)
    taken = 0
    for i in range(depth):
        if k.choose_data(4, 0.5, f"value {i}") != MAGIC[i]:
            break
        await mutex_lock(locks[i])
        taken += 1
    complete = taken == depth
    for lock in reversed(locks[:taken]):
        await mutex_unlock(lock)
    await mutex_unlock(base)
    if complete:
        raise InvariantViolation(f"the magic chain of {depth} values was completed")


# ---------------------------------------------------------------------- time to bug


def runs_to_bug(
    scenario: str,
    strategy: str,
    seed: int,
    budget: int,
    *,
    params: dict[str, Any] | None = None,
    inject: tuple[str, ...] = (),
    patch: tuple[str, ...] = (),
    is_the_bug: Callable[[dict[str, Any]], bool] | None = None,
) -> tuple[int | None, float]:
    """Runs (1-based) a campaign needs to find the bug, and the seconds it took.

    The bug is the first fatal failure (``is_the_bug``: only if it says so).
    """
    from .coverage_planner import first_failure

    t0 = time.perf_counter()
    n = first_failure(
        scenario,
        strategy,
        seed,
        budget,
        params=params,
        inject=inject,
        patch=patch,
        is_the_bug=is_the_bug,
    )
    return n, time.perf_counter() - t0


# Demo scenarios measured always (the catalogue's scenarios may not exist yet).
DEMOS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("abba", {}),
    ("lost-wakeup", {}),
    ("refcount-race", {}),
    ("lost-update", {}),
    (MAGIC_SCENARIO, {}),
)


@dataclass(frozen=True)
class Target:
    """What one pair of figures looks for."""

    name: str
    scenario: str
    params: dict[str, Any] = field(default_factory=dict)
    inject: tuple[str, ...] = ()
    patch: tuple[str, ...] = ()
    is_the_bug: Callable[[dict[str, Any]], bool] | None = None  # None: any failure


def _targets() -> list[Target]:
    from .bugs import catalogue, latent_slugs

    out: list[Target] = []
    patchable = latent_slugs()
    for bug in catalogue():
        if bug.found_as is None:
            continue  # no campaign finds it yet (the entry says why)
        inject: tuple[str, ...]
        patch: tuple[str, ...]
        if bug.kind == "pre-seed":
            inject, patch = (bug.slug,), ("all",)
        else:
            inject, patch = (), tuple(s for s in patchable if s != bug.slug)
        out.append(Target(bug.slug, bug.scenario, {}, inject, patch, bug.matches))
    for name, params in DEMOS:
        out.append(Target(name.rsplit(":", 1)[-1].replace("_", "-"), name, params))
    return out


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def time_to_bug_figures(
    options: BenchOptions, targets: Callable[[], list[Target]] = _targets
) -> list[Figure]:
    seeds = options.n(7, 2)
    budget = options.n(400, 60)
    figures = []
    for t in targets():
        found: dict[str, list[float]] = {}
        secs: dict[str, list[float]] = {}
        hits: dict[str, int] = {}
        for strategy in ("coverage", "portfolio"):
            found[strategy], secs[strategy], hits[strategy] = [], [], 0
            for seed in range(1, seeds + 1):
                n, s = runs_to_bug(
                    t.scenario,
                    strategy,
                    seed,
                    budget,
                    params=t.params,
                    inject=t.inject,
                    patch=t.patch,
                    is_the_bug=t.is_the_bug,
                )
                # Not found within the budget counts as the budget (a lower bound).
                found[strategy].append(float(n if n is not None else budget))
                secs[strategy].append(s)
                hits[strategy] += n is not None
        figures.append(
            Figure(
                f"time-to-bug-coverage-{t.name}",
                _median(found["coverage"]),
                "runs",
                f"time-to-bug-default-{t.name}",
                _median(found["portfolio"]),
                note=(
                    f"{t.scenario}; median over {seeds} seeds, budget {budget} runs; found by "
                    f"{hits['coverage']}/{seeds} (coverage), {hits['portfolio']}/{seeds} "
                    f"(default); seconds: coverage {_median(secs['coverage']):.3f}, "
                    f"default {_median(secs['portfolio']):.3f}"
                ),
            )
        )
    return figures


def main() -> None:  # pragma: no cover - manual use
    for f in trio.run(trio.to_thread.run_sync, lambda: bench_coverage(BenchOptions())):
        print(f.to_json())
