"""Freeing objects that may or may not come from the allocator."""

from __future__ import annotations

from ..core.kernel import current_kernel
from .memory import kfree


def is_allocated(obj: object) -> bool:
    """Was ``obj`` allocated by kmalloc/kzalloc in this run (and not freed yet)?"""
    rec = current_kernel().mem.ledger.get(id(obj))
    return rec is not None and rec.obj is obj


def kfree_if_allocated(obj: object) -> None:
    """``kfree(obj)`` if ``obj`` came from kmalloc/kzalloc in this run.

    Kernel objects that are sometimes embedded or static (a fence, a GEM
    base object in a test) and sometimes allocated use this on release, so
    an allocated one is poisoned (a later use is a use-after-free finding)
    and the leak ledger balances.
    """
    if is_allocated(obj):
        kfree(obj)
