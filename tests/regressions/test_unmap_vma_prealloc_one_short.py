"""4eabd0d8791e (latent): an unmap inside a mapping needs two preallocated VMAs, not one."""

from __future__ import annotations

from panthor_testbed.fuzz.bugs import latent_slugs

from ._find import find, replay

SLUG = "unmap-vma-prealloc-one-short"
RUNS = 150
OTHERS = tuple(s for s in latent_slugs() if s != SLUG)


def test_seed_bug_is_found_by_bind_storm_and_replays() -> None:
    spec, k = find("bind-storm", RUNS, patch=OTHERS)
    assert k is not None and k.primary_failure is not None
    f = k.primary_failure
    assert f.kind == "exception" and "panthor_vma_init" in f.message
    again = replay(spec, k)
    assert again.primary_failure is not None
    assert again.primary_failure.signature == f.signature


def test_patched_model_is_clean_over_the_same_budget() -> None:
    _, k = find("bind-storm", RUNS, patch=("all",))
    assert k is None, k.primary_failure.message if k and k.primary_failure else ""
