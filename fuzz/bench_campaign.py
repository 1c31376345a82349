"""Campaign figures: the same budget of runs on one process and on two Dask workers.

* ``campaign-jobs1``: wall seconds of ``fuzz(..., jobs=1)`` (this process, no
  Dask) for a fixed budget of runs that never stops early (``keep_going``);
* ``campaign-jobs2``: the same campaign with ``jobs=2`` (an embedded
  ``LocalCluster`` of two worker processes), timed from the call to its
  return, so the cluster's start and stop are in it, as a kernel developer's
  wall time has them. Its ratio to ``campaign-jobs1`` is the wall-time ratio
  (<= 0.62 means >= 1.6x the runs/s).
* ``campaign-cluster-start``: what starting and stopping the two-worker
  cluster costs on its own (in the figure above already).

Dask itself is imported before the clock starts (the figure is about the
work, an import is paid once per process). Both campaigns find the same
failures: the figure is checked to be about the same work.
"""

from __future__ import annotations

import time

from .bench import BenchOptions, Figure, bench

# A campaign whose runs are long enough to be worth shipping (a few ms each),
# as the driver scenarios' are; the demos' default sizes take a fraction of that.
SCENARIO = "lost-update"
PARAMS = {"threads": 24}


def _campaign(runs: int, jobs: int) -> tuple[float, list[tuple[str, int]]]:
    from . import api

    t0 = time.monotonic()
    result = api.fuzz([SCENARIO], runs=runs, seed=1, jobs=jobs, keep_going=True, params=PARAMS)
    wall = time.monotonic() - t0
    found = [(f.failure["signature"], f.run) for s in result.scenarios for f in s.failures]
    return wall, found


@bench("campaign")
def bench_campaign(options: BenchOptions) -> list[Figure]:
    import distributed  # noqa: F401  (imported once, outside the timed part)

    from .engine import DaskEngine

    runs = options.n(4096, 512)
    t0 = time.monotonic()
    engine = DaskEngine(jobs=2)
    engine.start()
    engine.close()
    start = time.monotonic() - t0
    one, found1 = _campaign(runs, 1)
    two, found2 = _campaign(runs, 2)
    if found1 != found2:
        raise AssertionError(f"jobs 1 and 2 found different failures: {found1} != {found2}")
    note = f"{runs} runs of {SCENARIO} {PARAMS}"
    return [
        Figure("campaign-jobs1", one, "s", note=note),
        Figure("campaign-jobs2", two, "s", "campaign-jobs1", one, note=note),
        Figure("campaign-cluster-start", start, "s", note="2 forked workers, start + stop"),
    ]
