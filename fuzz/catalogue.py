"""The bug catalogue: switchable injections of real historical panthor bugs.

An injection selects the pre-fix code path in the model (``k.injected``);
it never touches a checker. Entries arrive with the driver port; until then
the catalogue is empty and ``--inject`` rejects every slug.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class Bug:
    slug: str
    commit_title: str  # the kernel commit that fixed it
    breaks: str  # what goes wrong
    scenario: str  # the built-in scenario that finds it


CATALOGUE: dict[str, Bug] = {}


class UnknownBug(InputError):
    pass


def get_bug(slug: str) -> Bug:
    bug = CATALOGUE.get(slug)
    if bug is None:
        known = ", ".join(CATALOGUE) or "the catalogue is empty"
        raise UnknownBug(f"unknown bug slug {slug!r} ({known})")
    return bug
