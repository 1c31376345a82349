"""Installing catalogue code in place of the model's functions, and taking it out again.

An entry replaces model functions by name (``"panthor_testbed.mmu.panthor_mmu:fn"``).
Every module namespace that holds the original function object (the defining
module, and every module that imported the name) gets the replacement, so
callers anywhere run the catalogue's code; the model's own hooks (gpuvm ops,
drm_sched ops, work functions) look their function up at call time, so they
follow too. Nothing in the model or in a checker knows an injection is on.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any


class Installation:
    """The bindings replaced by one install; :meth:`undo` restores them."""

    def __init__(self) -> None:
        self.bindings: list[tuple[dict[str, Any], str, Any]] = []

    def undo(self) -> None:
        for namespace, name, original in reversed(self.bindings):
            namespace[name] = original
        self.bindings.clear()


def resolve(target: str) -> Any:
    """The function a ``"module:name"`` target names."""
    modname, _, name = target.partition(":")
    return getattr(importlib.import_module(modname), name)


def install(replaces: Mapping[str, Callable[..., Any]]) -> Installation:
    """Put each replacement wherever its target function is bound."""
    inst = Installation()
    originals = {id(resolve(t)): (resolve(t), new) for t, new in replaces.items()}
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for name, value in list(namespace.items()):
            hit = originals.get(id(value))
            if hit is not None and hit[0] is value:
                inst.bindings.append((namespace, name, value))
                namespace[name] = hit[1]
    return inst


@contextmanager
def installed(replaces: Mapping[str, Callable[..., Any]]) -> Iterator[Installation]:
    inst = install(replaces)
    try:
        yield inst
    finally:
        inst.undo()


def code_lines(fn: Callable[..., Any]) -> list[str]:
    """A function's code without docstring and comments, one normalised line each."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    node.body = body or [ast.Pass()]
    node.name = "_"
    return [line.strip() for line in ast.unparse(node).splitlines()[1:] if line.strip()]


def source_diff(model: Callable[..., Any], replacement: Callable[..., Any]) -> list[str]:
    """What the replacement changes in the model's function: ``-`` and ``+`` code lines."""
    import difflib

    out = []
    for line in difflib.ndiff(code_lines(model), code_lines(replacement)):
        if line[:2] in ("- ", "+ "):
            out.append(line[0] + " " + line[2:])
    return out
