"""The catalogue's code is exactly the kernel patch applied to (or taken out of) the port."""

from __future__ import annotations

import pytest

from panthor_testbed.fuzz.bugs import ENTRIES, UnknownBug, get_entry, installed
from panthor_testbed.fuzz.bugs.install import resolve, source_diff
from panthor_testbed.mmu import panthor_gem, panthor_mmu, panthor_sched


@pytest.mark.parametrize("slug", list(ENTRIES))
def test_an_entry_differs_from_the_port_by_the_kernel_patch_only(slug: str) -> None:
    entry = get_entry(slug)
    got: list[str] = []
    for target, fn in entry.replaces.items():
        got += source_diff(resolve(target), fn)
    assert got == entry.expected_diff


@pytest.mark.parametrize("slug", list(ENTRIES))
def test_an_entry_is_described(slug: str) -> None:
    bug = get_entry(slug).bug
    assert bug.slug == slug and bug.kind in ("pre-seed", "latent", "upstream")
    if bug.kind == "upstream":
        # Still in the kernel: no fixing commit; the patch is the one proposed here.
        assert bug.commit == "none" and "(proposed here)" in bug.title
    else:
        assert len(bug.commit) == 12 and int(bug.commit, 16) >= 0
    assert bug.title.startswith("drm/panthor: ") and bug.functions and bug.breaks
    for fn in bug.functions:
        ported = any(hasattr(m, fn) for m in (panthor_mmu, panthor_sched, panthor_gem))
        assert ported or fn.startswith("panthor_device")


def test_installing_replaces_every_binding_and_undo_restores_them() -> None:
    from panthor_testbed.fuzz.bugs import vm_pool_get_without_xa_lock as entry

    original = panthor_mmu.panthor_vm_pool_get_vm
    with installed(inject=["vm-pool-get-without-xa-lock"]):
        assert panthor_mmu.panthor_vm_pool_get_vm is entry.panthor_vm_pool_get_vm
    assert panthor_mmu.panthor_vm_pool_get_vm is original


def test_selections_are_checked() -> None:
    with pytest.raises(UnknownBug, match="nosuch"), installed(inject=["nosuch"]):
        pass
    with (
        pytest.raises(UnknownBug, match="--patch it"),
        installed(inject=["unmap-vma-prealloc-one-short"]),
    ):
        pass
    with (
        pytest.raises(UnknownBug, match="--inject it"),
        installed(patch=["vm-pool-get-without-xa-lock"]),
    ):
        pass
    with installed(patch=["all"]) as inst:
        assert inst.bindings
