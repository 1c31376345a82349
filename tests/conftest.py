"""Shared fixtures."""

from __future__ import annotations

import pytest

from panthor_testbed.sched.locking.lockdep import Lockdep


@pytest.fixture
def graph() -> Lockdep:
    """A fresh lockdep dependency graph (tests must not share the process-wide one)."""
    return Lockdep()


def _model_functions() -> dict[tuple[str, str], object]:
    from panthor_testbed.mmu import panthor_device, panthor_gem, panthor_mmu, panthor_sched

    out: dict[tuple[str, str], object] = {}
    for mod in (panthor_mmu, panthor_sched, panthor_gem, panthor_device):
        for name, value in vars(mod).items():
            if callable(value) and getattr(value, "__module__", "") == mod.__name__:
                out[(mod.__name__, name)] = value
    return out


_ORIGINAL_MODEL = _model_functions()


@pytest.fixture(autouse=True)
def _no_installation_outlives_its_test() -> object:
    """Runs keep their catalogue installation for the next run (``ensure_installed``):
    drop it after each test, then check nothing else is left installed (an
    installation outliving its test would change every later test's model)."""
    yield
    from panthor_testbed.fuzz.bugs import ensure_installed

    ensure_installed(frozenset(), frozenset())
    now = _model_functions()
    changed = sorted(
        f"{m}:{n}" for (m, n), v in _ORIGINAL_MODEL.items() if now.get((m, n)) is not v
    )
    if changed:
        import sys

        for (m, n), v in _ORIGINAL_MODEL.items():
            vars(sys.modules[m])[n] = v
        pytest.fail(f"catalogue code still installed after the test: {', '.join(changed)}")
