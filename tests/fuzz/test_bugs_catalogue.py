"""The catalogue's code is exactly the kernel patch applied to (or taken out of) the port."""

from __future__ import annotations

import pytest

from panthor_testbed.fuzz.bugs import ENTRIES, UnknownBug, get_entry, installed
from panthor_testbed.fuzz.bugs.install import resolve, source_diff
from panthor_testbed.mmu import panthor_fw, panthor_gem, panthor_mmu, panthor_sched


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
    # A function the seed has, or (an upstream entry fixing a later fix) one the later
    # fix of another entry brings.
    later = [get_entry(s).module for s in ENTRIES if s != slug]
    for fn in bug.functions:
        ported = any(hasattr(m, fn) for m in (panthor_mmu, panthor_sched, panthor_gem, panthor_fw))
        assert ported or fn.startswith("panthor_device") or any(hasattr(m, fn) for m in later)


@pytest.mark.parametrize(
    ("slug", "other"), [(s, o) for s in ENTRIES for o in get_entry(s).combines]
)
def test_a_function_two_entries_replace_has_both_patches(slug: str, other: str) -> None:
    """Where two entries both replace a function, the combined one is the other entry's
    version with exactly this entry's patch on top."""
    entry, second = get_entry(slug), get_entry(other)
    for target, both in entry.combines[other].items():
        assert source_diff(second.replaces[target], both) == source_diff(
            resolve(target), entry.replaces[target]
        )
    with installed(patch=[slug, other]) as inst:
        installed_fns = {id(v) for ns, name, _ in inst.bindings for v in [ns[name]]}
        assert all(id(fn) in installed_fns for fn in entry.combines[other].values())


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


def test_bugs_lists_an_entrys_config_as_the_fuzz_options_that_set_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from panthor_testbed.fuzz.cli import main

    assert main(["bugs"]) == 0
    out = capsys.readouterr().out
    block = out.split("kernel-bo-va-uaf (latent, --patch)")[1].split("\n\n")[0]
    assert "found by: bind-storm --alloc-fail-probability 0.01" in block
    assert "found by: huge-page-binds\n" in out


def test_found_as_alternatives_match_and_are_listed() -> None:
    from panthor_testbed.fuzz.bugs.entry import FoundAs

    fa = FoundAs("warn", "first words", alternatives=(("bad-gpu-access", "other face"),))
    assert fa.matches({"kind": "warn", "message": "x first words y"})
    assert fa.matches({"kind": "bad-gpu-access", "message": "the other face"})
    # The kind and the words go together.
    assert not fa.matches({"kind": "warn", "message": "the other face"})
    assert fa.to_json() == {
        "kind": "warn",
        "words": "first words",
        "or": [{"kind": "bad-gpu-access", "words": "other face"}],
    }
    assert FoundAs("leak", "x").to_json() == {"kind": "leak", "words": "x"}
