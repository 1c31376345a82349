"""The bug catalogue: real historical panthor bugs, each with the code that has it.

Every entry (one module here, named after its slug) is a real bug, named by
the kernel commit that fixed it. A ``pre-seed`` entry was fixed before the
seed's revision: its module holds the pre-fix code of the functions the fix
touched, and ``--inject SLUG`` installs that code in place of the model's. A
``latent`` entry is still in the seed: its module holds the kernel's later
fix, and ``--patch SLUG`` (or ``--patch all``) installs it. The model never
consults a flag and no checker knows what is installed; see
:mod:`.install`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .entry import Bug, FoundAs, Kind

if TYPE_CHECKING:
    from .install import Installation

# slug -> module, in catalogue order
ENTRIES: dict[str, str] = {
    "vm-pool-get-without-xa-lock": "vm_pool_get_without_xa_lock",
    "obtain-prealloc-without-resv": "obtain_prealloc_without_resv",
    "prepare-map-enomem-returns-0": "prepare_map_enomem_returns_0",
    "unmap-vma-prealloc-one-short": "unmap_vma_prealloc_one_short",
    "unmap-failure-desyncs-gpuvm": "unmap_failure_desyncs_gpuvm",
    "sm-step-map-leaks-vma": "sm_step_map_leaks_vma",
    "kernel-bo-on-extobj-list": "kernel_bo_on_extobj_list",
    "submit-fence-on-dropped-contended-bo": "submit_fence_on_dropped_contended_bo",
    "irq-mask-not-restored-on-reenable": "irq_mask_not_restored_on_reenable",
    "reset-failure-skips-sched-post-reset": "reset_failure_skips_sched_post_reset",
    "pre-reset-warns-on-runnable-groups": "pre_reset_warns_on_runnable_groups",
    "tick-ignores-group-bind-failure": "tick_ignores_group_bind_failure",
    "flush-range-gated-on-pm-active": "flush_range_gated_on_pm_active",
    "partial-unmap-huge-page": "partial_unmap_huge_page",
    "huge-block-of-small-folios": "huge_block_of_small_folios",
    "kernel-bo-va-uaf": "kernel_bo_va_uaf",
    "sched-fini-after-failed-init": "sched_fini_after_failed_init",
    "fw-events-work-after-unplug": "fw_events_work_after_unplug",
    "unplug-leaves-groups-on-csg-slots": "unplug_leaves_groups_on_csg_slots",
    "fw-unplug-frees-sections-before-l2-flush": "fw_unplug_frees_sections_before_l2_flush",
    "bind-job-maps-destroyed-vm": "bind_job_maps_destroyed_vm",
    "vm-destroy-unmap-fails-on-enomem": "vm_destroy_unmap_fails_on_enomem",
}


class UnknownBug(InputError):
    """Not a catalogue slug, or the wrong selection for it (the CLI turns it into exit 2)."""


class Entry:
    """A loaded catalogue entry: its description and the code it installs."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.bug: Bug = module.BUG
        self.replaces: dict[str, Callable[..., Any]] = dict(module.REPLACES)
        self.expected_diff: list[str] = list(module.EXPECTED_DIFF)
        # Where this entry and another both replace a function: the function with both
        # fixes, by the other entry's slug.
        self.combines: dict[str, dict[str, Callable[..., Any]]] = {
            slug: dict(fns) for slug, fns in getattr(module, "COMBINES", {}).items()
        }


def get_entry(slug: str) -> Entry:
    name = ENTRIES.get(slug)
    if name is None:
        known = ", ".join(ENTRIES)
        raise UnknownBug(f"unknown bug slug {slug!r} (catalogue: {known})")
    return Entry(importlib.import_module(f"{__name__}.{name}"))


def get_bug(slug: str) -> Bug:
    return get_entry(slug).bug


def catalogue() -> list[Bug]:
    return [get_bug(slug) for slug in ENTRIES]


# The kinds ``--patch`` takes: the seed still has the bug.
PATCHABLE: tuple[Kind, ...] = ("latent", "upstream")


def latent_slugs() -> list[str]:
    """Every entry ``--patch all`` installs (latent and upstream ones)."""
    return [b.slug for b in catalogue() if b.kind in PATCHABLE]


def check_selection(inject: Iterable[str], patch: Iterable[str]) -> None:
    """``--inject`` takes pre-seed bugs, ``--patch`` latent ones (``all``: every latent one)."""
    for slug in inject:
        if get_bug(slug).kind != "pre-seed":
            raise UnknownBug(f"{slug} is a latent bug of the seed: --patch it, not --inject")
    for slug in patch:
        if slug != "all" and get_bug(slug).kind not in PATCHABLE:
            raise UnknownBug(f"{slug} was fixed before the seed: --inject it, not --patch")


def expand_patches(patch: Iterable[str]) -> list[str]:
    patch = list(patch)
    if "all" in patch:
        return latent_slugs()
    return list(dict.fromkeys(patch))


def selection(
    inject: Iterable[str] = (), patch: Iterable[str] = ()
) -> tuple[frozenset[str], frozenset[str]]:
    """Checked ``(inject, patch)`` slugs, ``all`` expanded to every latent entry."""
    inj, pat = tuple(inject), tuple(patch)
    check_selection(inj, pat)
    return frozenset(inj), frozenset(expand_patches(pat))


def _replaces(inject: Iterable[str], patch: Iterable[str]) -> dict[str, Callable[..., Any]]:
    replaces: dict[str, Callable[..., Any]] = {}
    by: dict[str, str] = {}  # target -> the slug whose code replaces it
    for slug in [*sorted(inject), *sorted(patch)]:
        entry = get_entry(slug)
        for target, fn in entry.replaces.items():
            if target in replaces:
                other = by[target]
                both = entry.combines.get(other, {}).get(target) or get_entry(other).combines.get(
                    slug, {}
                ).get(target)
                if both is None:
                    raise UnknownBug(f"{slug} and {other} both replace {target}")
                fn = both
            replaces[target] = fn
            by[target] = slug
    return replaces


@contextmanager
def installed(inject: Iterable[str] = (), patch: Iterable[str] = ()) -> Iterator[Installation]:
    """Install the selected entries' code for the duration of the block."""
    from .install import install

    inj, pat = selection(inject, patch)
    inst = install(_replaces(inj, pat))
    try:
        yield inst
    finally:
        inst.undo()


_active: tuple[frozenset[str], frozenset[str], Installation] | None = None


def ensure_installed(inject: frozenset[str], patch: frozenset[str]) -> None:
    """Make exactly these entries the installed ones (runs in a row keep the installation)."""
    global _active
    if _active is not None and _active[0] == inject and _active[1] == patch:
        return
    if _active is not None:
        _active[2].undo()
        _active = None
    if inject or patch:
        from .install import install

        _active = (inject, patch, install(_replaces(inject, patch)))


__all__ = [
    "ENTRIES",
    "Bug",
    "Entry",
    "FoundAs",
    "Kind",
    "UnknownBug",
    "catalogue",
    "check_selection",
    "ensure_installed",
    "expand_patches",
    "get_bug",
    "get_entry",
    "installed",
    "latent_slugs",
    "selection",
]
