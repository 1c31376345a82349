"""Shared fixtures."""

from __future__ import annotations

import pytest

from panthor_testbed.sched.locking.lockdep import Lockdep


@pytest.fixture
def graph() -> Lockdep:
    """A fresh lockdep dependency graph (tests must not share the process-wide one)."""
    return Lockdep()
