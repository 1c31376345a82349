"""A catalogue entry: a real panthor bug, by the kernel commit that fixed it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["pre-seed", "latent", "upstream"]


@dataclass(frozen=True)
class FoundAs:
    """How a finding of the bug reads: its failure kind and words of its message.

    ``alternatives``: other ``(kind, words)`` the same bug is reported as (another
    face of it, which some schedules reach first); each must be gone with the fix.
    """

    kind: str
    words: str
    alternatives: tuple[tuple[str, str], ...] = ()

    def matches(self, failure: dict[str, Any]) -> bool:
        kind, message = failure.get("kind"), str(failure.get("message", ""))
        return any(
            kind == k and w in message for k, w in ((self.kind, self.words), *self.alternatives)
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "words": self.words}
        if self.alternatives:
            out["or"] = [{"kind": k, "words": w} for k, w in self.alternatives]
        return out


@dataclass(frozen=True)
class Bug:
    """One real historical bug.

    ``pre-seed``: fixed before the seed's revision; the seed holds the fix and
    ``--inject SLUG`` installs the pre-fix code. ``latent``: the seed still
    has the bug; ``--patch SLUG`` installs the kernel's later fix.
    ``upstream``: found by this testbed, still in the kernel as far as we
    know (no fixing commit, ``commit`` is ``"none"``); ``--patch SLUG``
    installs the fix we propose, so that ``--patch all`` is a clean model.

    ``found_as`` is what the generic oracles report when a campaign finds it
    (the failure kind and words of its message): the regression suite and
    the bench use it to tell this bug from another finding; no oracle reads
    it. An entry no campaign finds yet has ``found_as=None`` and says why in
    ``not_found_yet``.
    """

    slug: str
    kind: Kind
    commit: str  # the kernel commit that fixed it (12 hex digits; "none" for upstream)
    title: str  # that commit's title
    functions: tuple[str, ...]  # the functions the fix touches
    breaks: str  # what goes wrong with the bug present
    scenario: str  # the built-in scenario expected to find it
    found_as: FoundAs | None = None
    not_found_yet: str = ""
    # KernelConfig fields the campaign that finds it runs with (e.g. allocation
    # failures: ``{"alloc_fail_probability": 0.01}``, ``fuzz --alloc-fail-probability``).
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.found_as is None) == (not self.not_found_yet):
            raise ValueError(f"{self.slug}: give found_as, or say in not_found_yet why not")

    def matches(self, failure: dict[str, Any]) -> bool:
        """Is this failure (a finding's JSON: ``kind``, ``message``) this bug?"""
        return self.found_as is not None and self.found_as.matches(failure)

    def to_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "kind": self.kind,
            "commit": self.commit,
            "title": self.title,
            "functions": list(self.functions),
            "breaks": self.breaks,
            "scenario": self.scenario,
            "found_as": None if self.found_as is None else self.found_as.to_json(),
            "config": dict(self.config),
        }
