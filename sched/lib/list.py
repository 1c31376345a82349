"""``struct list_head`` (include/linux/list.h) for driver structures.

A :class:`ListNode` is the ``list_head`` embedded in an object (it knows its
container, as ``container_of`` does, and the head it is on); a
:class:`ListHead` keeps its nodes in insertion order (a dict used as an
ordered set, so iteration never depends on hashing). List operations are not
yield points: every list the driver keeps is protected by a lock, and a
lockless ``list_empty`` is written with an explicit ``await preempt()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from ..core.failure import InvariantViolation

T = TypeVar("T")


class ListNode(Generic[T]):
    """A ``list_head`` inside ``container``; ``head is None`` is ``INIT_LIST_HEAD``."""

    __slots__ = ("container", "head", "poisoned")

    def __init__(self, container: T) -> None:
        self.container = container
        self.head: ListHead[T] | None = None
        self.poisoned = False  # list_del() without _init: LIST_POISON1/2

    def __repr__(self) -> str:
        where = self.head.name if self.head is not None else "no list"
        return f"<list_head of {self.container!r} on {where}>"


class ListHead(Generic[T]):
    """``struct list_head`` used as a list head."""

    __slots__ = ("_nodes", "name")

    def __init__(self, name: str = "list") -> None:
        self.name = name
        self._nodes: dict[ListNode[T], None] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        return f"<list_head {self.name} len={len(self._nodes)}>"

    def __iter__(self) -> Iterator[T]:
        """``list_for_each_entry_safe``: over a snapshot, so the body may delete."""
        return iter([n.container for n in list(self._nodes)])


def INIT_LIST_HEAD(node: ListNode[T]) -> None:
    if node.head is not None:
        node.head._nodes.pop(node, None)
    node.head = None
    node.poisoned = False


def list_add_tail(node: ListNode[T], head: ListHead[T]) -> None:
    if node.head is not None:
        raise InvariantViolation(
            f"list_add_tail of {node.container!r} onto {head.name}: already on {node.head.name} "
            "(list corruption)",
            signature=f"invariant:list-add-twice:{head.name}",
        )
    node.head = head
    node.poisoned = False
    head._nodes[node] = None


def list_add(node: ListNode[T], head: ListHead[T]) -> None:
    """``list_add``: insert at the head of the list."""
    if node.head is not None:
        raise InvariantViolation(
            f"list_add of {node.container!r} onto {head.name}: already on {node.head.name} "
            "(list corruption)",
            signature=f"invariant:list-add-twice:{head.name}",
        )
    rest = list(head._nodes)
    head._nodes.clear()
    head._nodes[node] = None
    for n in rest:
        head._nodes[n] = None
    node.head = head
    node.poisoned = False


def list_add_before(node: ListNode[T], pos: ListNode[T]) -> None:
    """``list_add_tail(node, pos)`` with ``pos`` an entry: insert ``node`` just before ``pos``."""
    head = pos.head
    if head is None:
        raise InvariantViolation(
            f"list insertion before {pos.container!r}, which is on no list (list corruption)",
            signature="invariant:list-add-before-unlinked",
        )
    if node.head is not None:
        raise InvariantViolation(
            f"list_add_tail of {node.container!r} onto {head.name}: already on {node.head.name} "
            "(list corruption)",
            signature=f"invariant:list-add-twice:{head.name}",
        )
    nodes = list(head._nodes)
    head._nodes.clear()
    for n in nodes:
        if n is pos:
            head._nodes[node] = None
        head._nodes[n] = None
    node.head = head
    node.poisoned = False


def list_move(node: ListNode[T], head: ListHead[T]) -> None:
    """``list_move``: unlink, then insert at the head of ``head``."""
    list_del_init(node)
    list_add(node, head)


def list_move_tail(node: ListNode[T], head: ListHead[T]) -> None:
    """``list_move_tail``: unlink, then insert at the tail of ``head``."""
    list_del_init(node)
    list_add_tail(node, head)


def list_del(node: ListNode[T]) -> None:
    """``list_del``: unlink and poison (a later list_del or list_empty on it is corruption)."""
    if node.poisoned:
        raise InvariantViolation(
            f"list_del of {node.container!r} twice (list corruption: LIST_POISON)",
            signature="invariant:list-del-twice",
        )
    if node.head is not None:
        node.head._nodes.pop(node, None)
    node.head = None
    node.poisoned = True


def list_del_init(node: ListNode[T]) -> None:
    if node.head is not None:
        node.head._nodes.pop(node, None)
    node.head = None
    node.poisoned = False


def list_empty(head: ListHead[T]) -> bool:
    return not head._nodes


def list_node_empty(node: ListNode[T]) -> bool:
    """``list_empty(&obj->node)``: the node is on no list."""
    return node.head is None


def list_first_entry_or_null(head: ListHead[T]) -> T | None:
    for node in head._nodes:
        return node.container
    return None


def list_for_each_entry(head: ListHead[T]) -> Iterator[T]:
    return iter(head)


def list_is_on(node: ListNode[T], head: ListHead[T]) -> bool:
    """Model-only: is the node on this list (for checks and tests)."""
    return node.head is head
