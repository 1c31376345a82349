"""Coverage collection: stable feature ids, the seed functions and their branches, lock
pairs, interrupt windows, allocation sites, and a run that behaves the same with it on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from panthor_testbed.fuzz import coverage as C
from panthor_testbed.fuzz.bench_coverage import bind_and_job, magic_chain, run_driver
from panthor_testbed.fuzz.coverage import SEED_FUNCTIONS, collect, feature_id, hit_bucket
from panthor_testbed.fuzz.scenario import get_scenario
from panthor_testbed.mmu import panthor_mmu
from panthor_testbed.sched import Canonical, KernelConfig, RandomWalk, Replay
from panthor_testbed.sched.core.harness import run

REPO = Path(__file__).resolve().parents[2]
SEED_LIST = Path("/work/shared/seed/functions.txt")


def test_seed_functions_are_the_90_of_the_seed_in_order_and_all_ported() -> None:
    assert len(SEED_FUNCTIONS) == 90 and len(set(SEED_FUNCTIONS)) == 90
    if SEED_LIST.is_file():
        assert tuple(SEED_LIST.read_text().split()) == SEED_FUNCTIONS
    for name in SEED_FUNCTIONS:
        assert callable(getattr(panthor_mmu, name)), name
    # the report takes the list from here
    from panthor_testbed.fuzz.report import seed_functions

    assert seed_functions() == SEED_FUNCTIONS


def test_every_seed_function_is_probed_at_its_entry() -> None:
    inst = C.instrumentation()
    probed = {fn.__name__ for fn, _, _ in inst.swaps if fn.__module__ == C.SEED_MODULE}
    assert probed == set(SEED_FUNCTIONS)
    assert [name for name, _ in inst.entry][:90] == sorted(
        (n for n, _ in inst.entry[:90]), key=SEED_FUNCTIONS.index
    )


def test_hit_buckets_are_afls() -> None:
    got = [hit_bucket(n) for n in (0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 127, 128, 10**6)]
    assert got == [0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8]


def test_a_driver_run_reaches_the_bind_and_job_paths() -> None:
    k = run_driver(1, coverage=True)
    assert k.failures == []
    cov = collect(k)
    fns = cov.functions()
    for name in (
        "panthor_vm_create",
        "panthor_vm_map_bo_range",
        "panthor_vm_prepare_map_op_ctx",
        "panthor_gpuva_sm_step_map",
        "panthor_vm_active",
        "panthor_vm_unmap_range",
        "panthor_mmu_unplug",
    ):
        assert fns.get(name, 0) >= 1, name
    assert "panthor_mmu_irq_handler" not in fns  # the job never faults
    assert set(fns) <= set(SEED_FUNCTIONS)
    # the map path runs get_pgsize once per chunk: more than once
    assert fns["get_pgsize"] > 1
    pairs = {(a, b) for a, b, _ in cov.lock_pairs()}
    assert ("&sched->lock", "&mmu->as.slots_lock") in pairs
    assert all(n > 0 for _, _, n in cov.lock_pairs())
    # hardware completions interrupt threads waiting inside the seed's functions
    assert any(fn == "wait_ready" for _, fn, _ in cov.irqs)
    assert cov.allocs and all(not failed for _, failed, _ in cov.allocs)
    feats = cov.features()
    assert list(feats) == sorted(set(feats)) and len(feats) > 100
    assert all(0 <= f < 1 << 63 for f in feats)


def test_coverage_never_changes_what_a_run_does() -> None:
    """Same choices, trace and findings with coverage on and off (also for failing runs)."""
    cases: list[tuple[Any, dict[str, Any]]] = [(bind_and_job, {})]
    cases += [(get_scenario("lost-wakeup").fn, {})]
    cases += [(get_scenario("refcount-race").fn, {}), (magic_chain, {"depth": 1})]
    for fn, params in cases:
        for seed in range(6):
            got = []
            for cov in (False, True):
                cfg = KernelConfig(coverage=cov, alloc_fail_probability=0.02)
                k = run(fn, strategy=RandomWalk(seed, 300), config=cfg, **params)
                got.append(
                    (
                        tuple(k.choices),
                        k.trace.digest(),
                        [(f.kind, f.signature, f.message) for f in k.failures],
                    )
                )
            assert got[0] == got[1], (fn.__name__, seed)


def test_the_model_code_is_the_original_outside_coverage_runs() -> None:
    inst = C.instrumentation()
    fn = panthor_mmu.panthor_vm_map_bo_range
    original = fn.__code__
    run_driver(2, coverage=True)
    assert fn.__code__ is original
    assert all(f.__code__ is orig for f, orig, _ in inst.swaps)

    seen: list[bool] = []

    async def peek(k: object) -> None:
        seen.append(fn.__code__ is original)
        raise RuntimeError("boom")  # a run that crashes still puts the code back

    k = run(peek, config=KernelConfig(coverage=True))
    assert seen == [False] and k.failures and fn.__code__ is original
    run(peek, config=KernelConfig(coverage=False))
    assert seen == [False, True]


def test_probed_code_keeps_the_model_line_numbers() -> None:
    inst = C.instrumentation()
    for fn, original, probed in inst.swaps:
        assert probed.co_filename == original.co_filename
        assert probed.co_firstlineno == original.co_firstlineno
        assert probed.co_name == original.co_name
        assert probed.co_qualname == original.co_qualname
        assert (
            probed.co_varnames[: original.co_argcount]
            == original.co_varnames[: original.co_argcount]
        )
        assert fn.__doc__ == original.co_consts[0] or fn.__doc__ is None


def test_a_branch_taken_only_on_failure_is_a_new_feature() -> None:
    """An injected allocation failure reaches error paths no clean run has."""
    clean = set(collect(run_driver(1, coverage=True)).features())
    texts = None
    for seed in range(40):
        cfg = KernelConfig(coverage=True, alloc_fail_probability=0.05)
        k = run(bind_and_job, strategy=RandomWalk(seed, 1200), config=cfg)
        cov = collect(k)
        if any(failed for _, failed, _ in cov.allocs):
            texts = cov.feature_texts()
            assert set(cov.features()) - clean
            break
    assert texts is not None, "no run had an allocation fail"
    assert any(t.startswith("alloc:") and t.endswith(":1") for t in texts)
    assert any(t.startswith("fail:") for t in texts)


def test_lock_pairs_follow_lockdep_trylocks_and_all() -> None:
    from panthor_testbed.sched import Mutex, mutex_lock, mutex_trylock, mutex_unlock

    a, b, c = Mutex("A"), Mutex("B"), Mutex("C")

    async def scenario(k: object) -> None:
        await mutex_lock(a)
        assert await mutex_trylock(b)
        await mutex_lock(c)  # C after the trylock B and after A under it
        await mutex_unlock(c)
        await mutex_unlock(b)
        await mutex_unlock(a)

    cov = collect(run(scenario, config=KernelConfig(coverage=True)))
    assert cov.lock_pairs() == [("A", "C", 1), ("B", "C", 1)]


def test_collect_needs_a_coverage_run() -> None:
    k = run(magic_chain, strategy=Canonical())
    with pytest.raises(ValueError, match="coverage"):
        collect(k)


def test_feature_ids_are_digests_not_hashes() -> None:
    assert feature_id("lock:A>B") == feature_id("lock:A>B")
    assert feature_id("lock:A>B") != feature_id("lock:B>A")
    # blake2b of the text, 63 bits: the same number on every machine
    import hashlib

    want = int.from_bytes(hashlib.blake2b(b"lock:A>B", digest_size=8).digest(), "big") >> 1
    assert feature_id("lock:A>B") == want


_CHILD = """
import json, sys
from panthor_testbed.fuzz.bench_coverage import run_driver
from panthor_testbed.fuzz.coverage import collect
from panthor_testbed.sched import Replay, KernelConfig
cov = collect(run_driver(3, coverage=True))
print(json.dumps({"features": list(cov.features()), "functions": cov.functions()}))
"""


def test_feature_ids_are_the_same_in_other_processes_and_hash_seeds() -> None:
    here = collect(run_driver(3, coverage=True))
    outs = []
    for hashseed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            check=True,
        )
        outs.append(json.loads(proc.stdout))
    assert outs[0] == outs[1]
    assert outs[0]["features"] == list(here.features())
    assert outs[0]["functions"] == here.functions()


def test_totals_merge_runs_as_campaign_json_stores_them() -> None:
    totals = C.Totals()
    a = collect(run_driver(1, coverage=True))
    b = collect(run_driver(2, coverage=True))
    assert totals.add(a) == len(a.features())
    new = totals.add(b.summary())
    assert new == len(set(b.features()) - set(a.features()))
    out = totals.to_json()
    assert out["features"] == len(set(a.features()) | set(b.features()))
    fa, fb = a.functions(), b.functions()
    assert out["functions"]["get_pgsize"] == fa["get_pgsize"] + fb["get_pgsize"]
    names = list(out["functions"])
    assert names == sorted(names, key=SEED_FUNCTIONS.index)
    assert all(isinstance(p, list) and len(p) == 3 for p in out["lock_pairs"])


def test_a_replay_with_coverage_on_repeats_the_run() -> None:
    k = run_driver(4, coverage=False)
    again = run(
        bind_and_job, strategy=Replay(k.choices, strict=True), config=KernelConfig(coverage=True)
    )
    assert again.trace.digest() == k.trace.digest()


def test_the_bench_reports_cost_and_time_to_bug_beside_their_baselines() -> None:
    from panthor_testbed.fuzz.bench import BenchOptions
    from panthor_testbed.fuzz.bench_coverage import bench_coverage

    figures = {f.name: f for f in bench_coverage(BenchOptions(quick=True))}
    on = figures["coverage-on"]
    assert on.baseline == "coverage-off" and on.ratio is not None and on.ratio > 0
    for name in ("magic-chain", "lost-wakeup", "abba"):
        f = figures[f"time-to-bug-coverage-{name}"]
        assert f.baseline == f"time-to-bug-default-{name}" and f.unit == "runs"
        assert f.baseline_value is not None and 1 <= f.value <= 60


def test_a_catalogue_replacement_is_probed_under_its_seed_name() -> None:
    from panthor_testbed.fuzz.bugs import get_entry

    entry = get_entry("vm-pool-get-without-xa-lock")
    replacement = entry.replaces["panthor_testbed.mmu.panthor_mmu:panthor_vm_pool_get_vm"]
    inst = C.instrumentation()
    probed = [fn for fn, _, _ in inst.swaps if fn is replacement]
    assert probed and probed[0].__name__ == "panthor_vm_pool_get_vm"
    # the model's function and the catalogue's each have an entry probe, one name
    assert [n for n, _ in inst.entry].count("panthor_vm_pool_get_vm") == 2
