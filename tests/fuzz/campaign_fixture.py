"""Campaign folders for report tests: a real campaign's replay files and a campaign.json.

``fuzz --out DIR`` writes ``DIR/campaign.json`` (the contract in
docs/report.md); this builds one the same shape from a real campaign run
through the API, so its failures and replay files are real. Coverage, lock
pairs and the timeline are made up (deterministically) when asked for, and
every optional part can be left out, as an older or interrupted campaign
leaves them out.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from panthor_testbed import __version__
from panthor_testbed.fuzz import api
from panthor_testbed.fuzz.interleaving import min_path
from panthor_testbed.fuzz.report import seed_functions

# Lock classes as the driver names them; one inversion (op_lock <-> slots_lock).
LOCK_PAIRS: list[list[Any]] = [
    ["&vm->op_lock", "&vm->mm_lock", 412],
    ["&vm->op_lock", "&mmu->as.slots_lock", 97],
    ["&mmu->as.slots_lock", "&vm->op_lock", 3],
    ["&vm->mm_lock", "&pool->xa.xa_lock", 55],
    ["reservation_ww_class_mutex", "&vm->op_lock", 220],
    ["&mmu->as.slots_lock", "&ptdev->mmu->irq.lock", 18],
    ["&vm->heaps.lock", "&vm->op_lock", 7],
]


def unreached(names: Sequence[str]) -> list[str]:
    """The seed functions the made-up coverage leaves unreached (every fourth)."""
    return [n for i, n in enumerate(names) if i % 4 == 3]


def functions_coverage() -> dict[str, int]:
    names = seed_functions()
    return {n: 0 if i % 4 == 3 else (i * 37) % 500 + 1 for i, n in enumerate(names)}


def make_campaign(
    out: Path,
    *,
    scenarios: Sequence[str] = ("lost-update", "abba", "refcount-race"),
    clean: Sequence[str] = ("lost-wakeup",),
    runs: int = 200,
    seed: int = 1,
    coverage: bool = True,
    lock_pairs: bool = True,
    timeline: bool = True,
    shrink: Sequence[str] = (),
    minimal: bool = False,
) -> dict[str, Any]:
    """Run a campaign into ``out`` and write ``out/campaign.json``; returns its content.

    ``clean``: scenarios run with ``fixed=True`` (their whole budget, no failure).
    ``shrink``: scenarios whose failure also gets a ``.min.json`` beside it (as
    ``fuzz --shrink`` would write). ``minimal``: only the keys every version
    writes (scenarios and their failures).
    """
    out.mkdir(parents=True, exist_ok=True)
    result = api.fuzz(list(scenarios), runs=runs, seed=seed, out=str(out))
    ran = list(result.scenarios)
    if clean:
        fixed = api.fuzz(list(clean), runs=runs, seed=seed, params={"fixed": True})
        ran += fixed.scenarios
    docs = []
    for i, s in enumerate(ran):
        doc = s.to_json()
        doc["elapsed_s"] = round(0.05 * (i + 1) + s.runs / 2000, 3)  # not wall time: stable
        for f in doc["failures"]:  # as `fuzz --out NAME` records them, run from out's parent
            f["replay"] = f"{out.name}/{Path(f['replay']).name}"
            if f.get("witness"):
                f["witness"] = f"{out.name}/{Path(f['witness']).name}"
        docs.append(doc)
        for f in s.failures:
            if s.name in shrink:
                api.shrink(f.replay, output=min_path(f.replay), max_runs=300)
    data: dict[str, Any] = {"scenarios": docs}
    if not minimal:
        data.update(
            {
                "version": __version__,
                "started": "2026-11-02T10:00:00+00:00",
                "strategy": "portfolio",
                "seed": seed,
                "jobs": 2,
                "interrupted": False,
            }
        )
    total = sum(d["runs"] for d in docs)
    if timeline:
        # Throughput that climbs as workers warm up, then holds: 20 points, 0.25 s apart.
        weights = [min(k, 5) for k in range(1, 21)]
        points, acc = [], 0
        for k, w in enumerate(weights, 1):
            acc += w
            points.append([round(0.25 * k, 2), round(total * acc / sum(weights))])
        data["timeline"] = points
    if coverage:
        cov: dict[str, Any] = {"functions": functions_coverage(), "features": 1234}
        if lock_pairs:
            cov["lock_pairs"] = LOCK_PAIRS
        data["coverage"] = cov
    (out / "campaign.json").write_text(json.dumps(data, indent=1) + "\n")
    return data


def copy_campaign(src: Path, dst: Path) -> Path:
    """The folder moved elsewhere (the replay paths it records no longer resolve)."""
    shutil.copytree(src, dst)
    return dst
