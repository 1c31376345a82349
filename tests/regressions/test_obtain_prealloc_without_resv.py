"""fa998a9eac88: mapping a BO twice in one VM destroys the duplicate vm_bo without the VM resv."""

from __future__ import annotations

from ._find import find, replay

SLUG = "obtain-prealloc-without-resv"
RUNS = 4


def test_injected_bug_is_found_by_bind_storm_and_replays() -> None:
    spec, k = find("bind-storm", RUNS, inject=(SLUG,), patch=("all",))
    assert k is not None and k.primary_failure is not None
    f = k.primary_failure
    assert f.kind == "warn" and "lockdep_assert_held" in f.message and "resv" in f.message
    again = replay(spec, k)
    assert again.primary_failure is not None
    assert again.primary_failure.signature == f.signature


def test_patched_model_is_clean_over_the_same_budget() -> None:
    _, k = find("bind-storm", RUNS, patch=("all",))
    assert k is None, k.primary_failure.message if k and k.primary_failure else ""
