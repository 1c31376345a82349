"""Campaign figures: the same budget of runs on one process and on two Dask workers.

* ``campaign-jobs1``: wall seconds of ``fuzz(..., jobs=1)`` (this process, no
  Dask) for a fixed budget of runs of a driver scenario (``kernel-bo`` with
  every catalogue fix, so every run goes the whole way; ~10 ms a run) that
  never stops early (``keep_going``);
* ``campaign-jobs2``: the same campaign with ``jobs=2`` (an embedded
  ``LocalCluster`` of two worker processes), timed from the call to its
  return, so the cluster's start and stop are in it, as a kernel developer's
  wall time has them. Its ratio to ``campaign-jobs1`` is the wall-time ratio
  (<= 0.62 means >= 1.6x the runs/s).
* ``campaign-short-jobs1`` / ``campaign-short-jobs2``: the same for a demo
  whose runs take ~0.4 ms (``lost-update``, 24 threads), where what the
  cluster costs per task shows: batches of such runs travel several to a
  task (``DaskEngine.chunk_size``);
* ``campaign-cluster-start``: what starting and stopping the two-worker
  cluster costs on its own (in the figures above already).

Dask itself is imported before the clock starts (the figure is about the
work, an import is paid once per process). Both campaigns find the same
failures: the figure is checked to be about the same work.
"""

from __future__ import annotations

import time

from .bench import BenchOptions, Figure, bench

# (scenario, params, patch): what a kernel developer fuzzes, and a demo of short runs.
Campaign = tuple[str, dict[str, int], tuple[str, ...]]
DRIVER: Campaign = ("kernel-bo", {}, ("all",))
SHORT: Campaign = ("lost-update", {"threads": 24}, ())


def _campaign(what: Campaign, runs: int, jobs: int) -> tuple[float, list[tuple[str, int]]]:
    from . import api

    scenario, params, patch = what
    t0 = time.monotonic()
    result = api.fuzz(
        [scenario], runs=runs, seed=1, jobs=jobs, keep_going=True, params=params, patch=patch
    )
    wall = time.monotonic() - t0
    found = [(f.failure["signature"], f.run) for s in result.scenarios for f in s.failures]
    return wall, found


@bench("campaign")
def bench_campaign(options: BenchOptions) -> list[Figure]:
    import distributed  # noqa: F401  (imported once, outside the timed part)

    from .engine import DaskEngine

    t0 = time.monotonic()
    engine = DaskEngine(jobs=2)
    engine.start()
    engine.close()
    start = time.monotonic() - t0
    figures = []
    for prefix, what, runs in (
        ("campaign", DRIVER, options.n(512, 128)),
        ("campaign-short", SHORT, options.n(4096, 512)),
    ):
        one, found1 = _campaign(what, runs, 1)
        two, found2 = _campaign(what, runs, 2)
        if found1 != found2:
            raise AssertionError(f"jobs 1 and 2 found different failures: {found1} != {found2}")
        scenario, params, patch = what
        note = f"{runs} runs of {scenario}" + (f" {params}" if params else "")
        note += " --patch all" if patch else ""
        figures += [
            Figure(f"{prefix}-jobs1", one, "s", note=note),
            Figure(f"{prefix}-jobs2", two, "s", f"{prefix}-jobs1", one, note=note),
        ]
    figures.append(
        Figure("campaign-cluster-start", start, "s", note="2 forked workers, start + stop")
    )
    return figures
