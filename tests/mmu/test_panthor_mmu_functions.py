"""The port has every seed function, under its name, in the seed's order, each
docstring naming the C function it models."""

from __future__ import annotations

import ast
from pathlib import Path

from panthor_testbed.fuzz.report import seed_functions

PORT = Path(__file__).resolve().parents[2] / "mmu" / "panthor_mmu.py"


def _top_level_functions() -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(PORT.read_text())
    return [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_there_are_90_seed_functions() -> None:
    names = seed_functions()
    assert len(names) == 90 and len(set(names)) == 90


def test_every_seed_function_is_ported_in_the_seeds_order() -> None:
    ported = [f.name for f in _top_level_functions()]
    missing = [n for n in seed_functions() if n not in ported]
    assert not missing, f"seed functions missing from the port: {missing}"
    positions = [ported.index(n) for n in seed_functions()]
    out_of_order = [
        (a, b)
        for a, b, pa, pb in zip(
            seed_functions(), seed_functions()[1:], positions, positions[1:], strict=False
        )
        if pa > pb
    ]
    assert not out_of_order, f"ported out of the seed's order: {out_of_order}"


def test_each_ported_function_names_its_c_function() -> None:
    by_name = {f.name: f for f in _top_level_functions()}
    bad = []
    for name in seed_functions():
        doc = ast.get_docstring(by_name[name]) or ""
        if not doc.startswith(f"``{name}("):
            bad.append(name)
    assert not bad, f"docstrings that do not name the C function first: {bad}"
