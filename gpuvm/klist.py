"""An ordered ``struct list_head`` for gpuvm's lists (extobj, evict, a vm_bo's gpuvas).

Insertion-ordered (a dict used as an ordered set, so iteration never depends
on hashing), with O(1) add, delete and membership. An item knows which list
it is on through the ``entry`` slot its owner passes around, as a
``list_head`` entry knows its neighbours: ``None`` is ``INIT_LIST_HEAD``
(``list_empty(&entry)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class KList(Generic[T]):
    """``struct list_head`` (the head)."""

    __slots__ = ("_items", "name")

    def __init__(self, name: str = "list") -> None:
        self.name = name
        self._items: dict[T, None] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator[T]:
        """``list_for_each_entry`` over a snapshot (the model's loops may yield)."""
        return iter(list(self._items))

    def __repr__(self) -> str:
        return f"<KList {self.name} len={len(self._items)}>"

    def empty(self) -> bool:
        """``list_empty(head)``."""
        return not self._items

    def first(self) -> T | None:
        """``list_first_entry_or_null``."""
        for item in self._items:
            return item
        return None

    def add_tail(self, item: T) -> None:
        """``list_add_tail``: the item must not be on a list."""
        if item in self._items:
            raise AssertionError(f"list_add_tail of an item already on {self.name}")
        self._items[item] = None

    def delete(self, item: T) -> None:
        """``list_del``: the item must be on this list."""
        del self._items[item]

    def discard(self, item: T) -> bool:
        """Delete ``item`` if it is on the list; returns whether it was."""
        if item in self._items:
            del self._items[item]
            return True
        return False

    def splice_head(self, other: KList[T]) -> None:
        """``list_splice(other, self)``: other's items go to the front, in order; other empties."""
        merged = dict(other._items)
        merged.update(self._items)
        self._items = merged
        other._items = {}
