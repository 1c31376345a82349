"""A catalogue entry: a real panthor bug, by the kernel commit that fixed it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["pre-seed", "latent", "upstream"]


@dataclass(frozen=True)
class Bug:
    """One real historical bug.

    ``pre-seed``: fixed before the seed's revision; the seed holds the fix and
    ``--inject SLUG`` installs the pre-fix code. ``latent``: the seed still
    has the bug; ``--patch SLUG`` installs the kernel's later fix.
    ``upstream``: found by this testbed, still in the kernel as far as we
    know (no fixing commit, ``commit`` is ``"none"``); ``--patch SLUG``
    installs the fix we propose, so that ``--patch all`` is a clean model.
    """

    slug: str
    kind: Kind
    commit: str  # the kernel commit that fixed it (12 hex digits; "none" for upstream)
    title: str  # that commit's title
    functions: tuple[str, ...]  # the functions the fix touches
    breaks: str  # what goes wrong with the bug present
    scenario: str  # the built-in scenario expected to find it

    def to_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "kind": self.kind,
            "commit": self.commit,
            "title": self.title,
            "functions": list(self.functions),
            "breaks": self.breaks,
            "scenario": self.scenario,
        }
