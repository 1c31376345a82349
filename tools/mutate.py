#!/usr/bin/env python3
"""Mutation testing for the model: change one thing in a module, see whether the tests notice.

    python tools/mutate.py --module sched/dma_buf/dma_fence.py \\
        --tests "tests/sched/test_dma_fence.py tests/sched/test_semantics_dma_fence.py"

The module is parsed with :mod:`ast` and every mutant is enumerated in source order (so
ids are stable while the file does not change): comparison flips, ``and``/``or`` swaps,
removed or added ``not``, ``+=``/``-=`` and ``+``/``-`` swaps, integer constants and errno
names replaced by their neighbours, ``True``/``False`` swapped, a call statement (a
wake-up, a put, a yield point) or an attribute/item assignment deleted, ``return x``
made ``return None`` / ``return 0``. Text that only reaches reports is left alone (trace
events, ``Failure(...)`` arguments, f-strings, ``assert``, ``__repr__``/``describe``...).

Each selected mutant is written over the module in place, the tests run as
``python -m pytest -x -q`` in a child process under a timeout, and the original bytes
and timestamps are put back in a ``finally`` (also on Ctrl-C and SIGTERM). A copy of
the original is kept beside the module as ``<module>.mutate-orig`` while a mutant is
applied, and a later run restores from it first if a run was ever killed outright.
Bytecode of the mutants goes to a private ``PYTHONPYCACHEPREFIX``, never to the
module's ``__pycache__``.

Standard library only. See docs/mutation.md for when to run it.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import hashlib
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Final

REPO: Final = Path(__file__).resolve().parent.parent
ERRNO_FILE: Final = REPO / "sched" / "errno.py"
BACKUP_SUFFIX: Final = ".mutate-orig"

# Functions whose code only feeds reports and traces.
SKIP_FUNCS: Final = frozenset(
    {
        "__repr__",
        "__str__",
        "describe",
        "_describe",
        "label",
        "state",
        "signaller",
        "get_driver_name",
        "get_timeline_name",
        "_holder_text",
    }
)
# Calls whose arguments are report text (``k.ev(...)``, ``Failure(...)``).
SKIP_CALLS: Final = frozenset({"ev", "Failure", "format_site", "fast_site"})

_CMP_SWAP: Final[dict[type[ast.cmpop], type[ast.cmpop]]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_CMP_TEXT: Final[dict[type[ast.cmpop], str]] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}


@dataclass(frozen=True)
class Mutant:
    """One change: bytes ``[start, end)`` of the module become ``replacement``."""

    id: int
    line: int
    col: int
    start: int
    end: int
    replacement: str
    description: str

    def location(self, path: str) -> str:
        return f"{path}:{self.line}:{self.col + 1}"


@dataclass
class Result:
    mutant: Mutant
    status: str  # killed | survived | timeout | error
    detail: str
    seconds: float


# ---------------------------------------------------------------------- enumeration


def load_errnos(path: Path = ERRNO_FILE) -> dict[str, int]:
    """The Linux errno names of the model (``sched/errno.py``), without running it."""
    out: dict[str, int] = {}
    if not path.exists():
        return out
    for node in ast.parse(path.read_text()).body:
        target: ast.expr | None = None
        value: ast.expr | None = None
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        if (
            isinstance(target, ast.Name)
            and target.id.startswith("E")
            and target.id.isupper()
            and isinstance(value, ast.Constant)
            and isinstance(value.value, int)
            and not isinstance(value.value, bool)
        ):
            out[target.id] = value.value
    return out


def _errno_neighbour(name: str, errnos: dict[str, int]) -> tuple[str, int]:
    """The next errno value of the table (the previous one for the last)."""
    order = sorted(set(errnos.values()))
    value = errnos[name]
    i = order.index(value)
    nxt = order[i + 1] if i + 1 < len(order) else order[i - 1]
    names = sorted(n for n, v in errnos.items() if v == nxt)
    return names[0], nxt


def _call_name(call: ast.Call) -> str:
    f = call.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return ""


def _is_call_stmt(stmt: ast.stmt) -> ast.Call | None:
    if not isinstance(stmt, ast.Expr):
        return None
    v = stmt.value
    if isinstance(v, ast.Await):
        v = v.value
    return v if isinstance(v, ast.Call) else None


class _Finder(ast.NodeVisitor):
    """Collects (node, replacement text, description) in source order."""

    def __init__(self, errnos: dict[str, int]) -> None:
        self.errnos = errnos
        self.found: list[tuple[ast.AST, str, str]] = []

    def add(self, node: ast.AST, text: str, desc: str) -> None:
        self.found.append((node, text, desc))

    # -- what is never mutated --------------------------------------------------

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.name in SKIP_FUNCS:
            return
        for d in node.decorator_list:
            self.visit(d)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        self._visit_body(node.body)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_function(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._visit_body(node.body)

    def visit_Module(self, node: ast.Module) -> None:
        self._visit_body(node.body)

    def _visit_body(self, body: list[ast.stmt]) -> None:
        for i, stmt in enumerate(body):
            if (
                i == 0
                and isinstance(stmt, ast.Expr)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            ):
                continue  # docstring
            self.visit(stmt)

    def visit_Assert(self, node: ast.Assert) -> None:
        return None

    def visit_Import(self, node: ast.Import) -> None:
        return None

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        return None

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        return None

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            if isinstance(node.target, ast.Name) and node.target.id == "__slots__":
                return
            if isinstance(node.target, ast.Attribute | ast.Subscript):
                self.add(node, "pass", f"delete assignment to {ast.unparse(node.target)}")
            self.visit(node.value)

    def visit_arguments(self, node: ast.arguments) -> None:
        return None

    # -- statements ---------------------------------------------------------------

    def _block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.visit(stmt)

    def visit_If(self, node: ast.If) -> None:
        self._negate(node.test)
        self.visit(node.test)
        self._block(node.body)
        self._block(node.orelse)

    def visit_While(self, node: ast.While) -> None:
        self._negate(node.test)
        self.visit(node.test)
        self._block(node.body)
        self._block(node.orelse)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._negate(node.test)
        self.generic_visit(node)

    def _negate(self, test: ast.expr) -> None:
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            return  # removing the `not` is the same mutant
        self.add(test, f"(not ({ast.unparse(test)}))", "negate condition")

    def visit_Expr(self, node: ast.Expr) -> None:
        call = _is_call_stmt(node)
        if call is None:
            self.generic_visit(node)
            return
        name = _call_name(call)
        if name in SKIP_CALLS:
            return
        self.add(node, "pass", f"delete call {name}()")
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        targets = node.targets
        if len(targets) == 1 and isinstance(targets[0], ast.Name) and targets[0].id == "__slots__":
            return
        if all(isinstance(t, ast.Attribute | ast.Subscript) for t in targets):
            what = ast.unparse(targets[0])
            self.add(node, "pass", f"delete assignment to {what}")
        self.visit(node.value)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        swap: dict[type[ast.operator], tuple[ast.operator, str]] = {
            ast.Add: (ast.Sub(), "+= -> -="),
            ast.Sub: (ast.Add(), "-= -> +="),
        }
        kind = type(node.op)
        if kind in swap:
            new = copy.deepcopy(node)
            new.op, desc = swap[kind]
            self.add(node, ast.unparse(new), desc)
        if isinstance(node.target, ast.Attribute | ast.Subscript):
            self.add(node, "pass", f"delete update of {ast.unparse(node.target)}")
        self.visit(node.value)

    def visit_Return(self, node: ast.Return) -> None:
        v = node.value
        if v is None or isinstance(v, ast.JoinedStr):
            return
        if isinstance(v, ast.Constant) and isinstance(v.value, str):
            return
        is_none = isinstance(v, ast.Constant) and v.value is None
        is_zero = isinstance(v, ast.Constant) and v.value in (0, False) and v.value is not None
        if not is_none:
            self.add(v, "None", f"return {_short(v)} -> return None")
        if not is_zero and not is_none:
            self.add(v, "0", f"return {_short(v)} -> return 0")
        self.visit(v)

    # -- expressions --------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        if _call_name(node) in SKIP_CALLS:
            return
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        for i, op in enumerate(node.ops):
            kind = type(op)
            if kind not in _CMP_SWAP:
                continue
            new = copy.deepcopy(node)
            new.ops[i] = _CMP_SWAP[kind]()
            self.add(
                node,
                f"({ast.unparse(new)})",
                f"{_CMP_TEXT[kind]} -> {_CMP_TEXT[_CMP_SWAP[kind]]}",
            )
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        new = copy.deepcopy(node)
        if isinstance(node.op, ast.And):
            new.op, desc = ast.Or(), "and -> or"
        else:
            new.op, desc = ast.And(), "or -> and"
        self.add(node, f"({ast.unparse(new)})", desc)
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self.add(node, f"({ast.unparse(node.operand)})", "remove not")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        swap: dict[type[ast.operator], tuple[ast.operator, str]] = {
            ast.Add: (ast.Sub(), "+ -> -"),
            ast.Sub: (ast.Add(), "- -> +"),
        }
        kind = type(node.op)
        if kind in swap and not _is_text(node):
            new = copy.deepcopy(node)
            new.op, desc = swap[kind]
            self.add(node, f"({ast.unparse(new)})", desc)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        v = node.value
        if isinstance(v, bool):
            self.add(node, repr(not v), f"{v} -> {not v}")
        elif isinstance(v, int):
            self.add(node, f"({v + 1})", f"constant {v} -> {v + 1}")
            self.add(node, f"({v - 1})", f"constant {v} -> {v - 1}")

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load) and node.id in self.errnos:
            name, value = _errno_neighbour(node.id, self.errnos)
            self.add(node, f"({value})", f"errno {node.id} -> {name}")


def _is_text(node: ast.BinOp) -> bool:
    return any(
        isinstance(x, ast.Constant) and isinstance(x.value, str) for x in (node.left, node.right)
    )


def _short(node: ast.AST, width: int = 40) -> str:
    text = ast.unparse(node)
    return text if len(text) <= width else text[: width - 3] + "..."


def _line_offsets(data: bytes) -> list[int]:
    offsets = [0]
    for i, b in enumerate(data):
        if b == 0x0A:
            offsets.append(i + 1)
    return offsets


def enumerate_mutants(source: bytes, errnos: dict[str, int] | None = None) -> list[Mutant]:
    """Every mutant of ``source``, in source order, each one compiling and distinct."""
    tree = ast.parse(source)
    finder = _Finder(load_errnos() if errnos is None else errnos)
    finder.visit(tree)
    offsets = _line_offsets(source)
    seen = {hashlib.sha256(source).hexdigest()}
    out: list[Mutant] = []
    spans: list[tuple[int, int, int, str, str]] = []
    for order, (node, text, desc) in enumerate(finder.found):
        lineno = getattr(node, "lineno", None)
        end_lineno = getattr(node, "end_lineno", None)
        col = getattr(node, "col_offset", None)
        end_col = getattr(node, "end_col_offset", None)
        if lineno is None or end_lineno is None or col is None or end_col is None:
            continue
        start = offsets[lineno - 1] + col
        end = offsets[end_lineno - 1] + end_col
        spans.append((start, order, end, text, desc))
    spans.sort(key=lambda s: (s[0], s[1]))
    for start, _order, end, text, desc in spans:
        mutated = source[:start] + text.encode() + source[end:]
        digest = hashlib.sha256(mutated).hexdigest()
        if digest in seen:
            continue
        try:
            compile(mutated, "<mutant>", "exec", dont_inherit=True)
        except SyntaxError:
            continue
        seen.add(digest)
        line = source.count(b"\n", 0, start) + 1
        col = start - offsets[line - 1]
        out.append(Mutant(len(out) + 1, line, col, start, end, text, desc))
    return out


def apply(source: bytes, m: Mutant) -> bytes:
    return source[: m.start] + m.replacement.encode() + source[m.end :]


def select(
    mutants: list[Mutant], only: Sequence[int], sample: int | None, seed: int, max_n: int | None
) -> list[Mutant]:
    """``--only`` ids, else a deterministic ``--sample`` (by ``--seed``), then ``--max``."""
    chosen = mutants
    if only:
        wanted = set(only)
        chosen = [m for m in mutants if m.id in wanted]
    elif sample is not None and sample < len(mutants):
        rng = random.Random(seed)
        picked = sorted(rng.sample(range(len(mutants)), sample))
        chosen = [mutants[i] for i in picked]
    if max_n is not None:
        chosen = chosen[:max_n]
    return chosen


# ---------------------------------------------------------------------- applying safely


class ModuleGuard:
    """Owns the module file while mutants are applied; always puts the original back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.backup = path.with_name(path.name + BACKUP_SUFFIX)
        recover_stale_backup(path)
        self.original = path.read_bytes()
        st = path.stat()
        self.times = (st.st_atime_ns, st.st_mtime_ns)
        self.mutated = False

    def write(self, data: bytes, serial: int) -> None:
        if not self.backup.exists():
            self.backup.write_bytes(self.original)
        self.mutated = True
        self.path.write_bytes(data)
        # A distinct mtime per mutant: a .pyc of an earlier mutant with the same size
        # written in the same second can never be taken for this one.
        mtime = self.times[1] + (serial + 1) * 1_000_000_000
        os.utime(self.path, ns=(self.times[0], mtime))

    def restore(self) -> None:
        if not self.mutated and not self.backup.exists():
            return
        self.path.write_bytes(self.original)
        os.utime(self.path, ns=self.times)
        if self.path.read_bytes() != self.original:  # pragma: no cover - disk trouble
            raise RuntimeError(f"could not restore {self.path}; the original is in {self.backup}")
        self.backup.unlink(missing_ok=True)
        self.mutated = False


def recover_stale_backup(path: Path) -> bool:
    """A ``.mutate-orig`` beside ``path`` means a run died mutated: put it back."""
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    if not backup.exists():
        return False
    path.write_bytes(backup.read_bytes())
    backup.unlink()
    print(
        f"mutate: restored {path} from {backup.name} (a previous run was killed)", file=sys.stderr
    )
    return True


class _Terminated(BaseException):
    """SIGTERM/SIGHUP: unwind like Ctrl-C so every ``finally`` restores."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Terminated(signum)


def run_tests(
    tests: Sequence[str], timeout: float, env: dict[str, str], cwd: Path
) -> tuple[str, str, float]:
    """(killed|survived|timeout|error, detail, seconds) of one pytest run."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return "timeout", f"no result after {timeout:.0f}s", time.monotonic() - t0
    except BaseException:
        _kill_group(proc)
        raise
    seconds = time.monotonic() - t0
    failed = [ln for ln in out.splitlines() if ln.startswith(("FAILED ", "ERROR "))]
    detail = failed[0].split(" ", 1)[1] if failed else (out.strip().splitlines() or [""])[-1]
    if proc.returncode == 0:
        return "survived", detail, seconds
    if proc.returncode == 5:
        return "error", "no tests collected", seconds
    return "killed", detail, seconds


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_mutants(
    path: Path,
    mutants: Sequence[Mutant],
    tests: Sequence[str],
    timeout: float | None,
    cwd: Path,
    report: Callable[[Result], None],
) -> tuple[list[Result], float]:
    """Baseline, then each mutant in turn; the module is restored whatever happens."""
    old_term = signal.signal(signal.SIGTERM, _on_signal)
    old_hup = signal.signal(signal.SIGHUP, _on_signal)
    guard = ModuleGuard(path)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="mutate-pyc-") as pyc:
        env = dict(os.environ)
        env["PYTHONPYCACHEPREFIX"] = pyc
        env.pop("PYTEST_ADDOPTS", None)
        try:
            status, detail, base = run_tests(tests, 600.0, env, cwd)
            if status != "survived":
                raise SystemExit(f"mutate: the tests fail without any mutant ({detail})")
            limit = timeout if timeout is not None else max(10.0, 5 * base + 5)
            for m in mutants:
                try:
                    guard.write(apply(guard.original, m), m.id)
                    status, detail, seconds = run_tests(tests, limit, env, cwd)
                finally:
                    guard.restore()
                res = Result(m, status, detail, seconds)
                results.append(res)
                report(res)
        finally:
            guard.restore()
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGHUP, old_hup)
    return results, base


# ---------------------------------------------------------------------- output


def _row(cols: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()


WIDTHS: Final = (5, 34, 46, 8)


def summary(results: Sequence[Result]) -> dict[str, int | float]:
    counts = {
        s: sum(1 for r in results if r.status == s)
        for s in ("killed", "survived", "timeout", "error")
    }
    ran = counts["killed"] + counts["survived"] + counts["timeout"]
    score = 100.0 * (counts["killed"] + counts["timeout"]) / ran if ran else 100.0
    return {"mutants": len(results), **counts, "kill_rate": round(score, 1)}


def _iter_list(path: str, mutants: Sequence[Mutant]) -> Iterator[str]:
    yield _row(("id", "location", "description", ""), WIDTHS)
    for m in mutants:
        yield _row((str(m.id), m.location(path), m.description, ""), WIDTHS)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--module", required=True, help="the module to mutate (a .py path)")
    ap.add_argument("--tests", default="", help="pytest selection (paths, -k ...), one string")
    ap.add_argument(
        "--only", type=int, action="append", default=[], metavar="ID", help="run these ids"
    )
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument(
        "--timeout", type=float, default=None, help="seconds per mutant (default 5x baseline + 5)"
    )
    ap.add_argument(
        "--max", type=int, default=None, dest="max_n", metavar="N", help="at most N mutants"
    )
    ap.add_argument("--sample", type=int, default=None, metavar="N", help="a random N of them")
    ap.add_argument("--seed", type=int, default=0, metavar="S", help="the sample's seed")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument(
        "--fail-under", type=float, default=None, metavar="PCT", help="exit 1 below this kill rate"
    )
    args = ap.parse_args(argv)

    path = Path(args.module).resolve()
    if not path.is_file():
        ap.error(f"no such module: {args.module}")
    recover_stale_backup(path)
    try:
        shown = str(path.relative_to(Path.cwd()))
    except ValueError:
        shown = str(path)
    mutants = enumerate_mutants(path.read_bytes())
    chosen = select(mutants, args.only, args.sample, args.seed, args.max_n)
    if args.list:
        for line in _iter_list(shown, chosen):
            print(line)
        print(f"{len(chosen)} of {len(mutants)} mutants")
        return 0
    tests = shlex.split(args.tests)
    if not tests:
        ap.error("--tests is required unless --list")

    print(f"mutate: {shown}: {len(chosen)} of {len(mutants)} mutants; tests: {' '.join(tests)}")
    print(_row(("id", "location", "description", "result"), WIDTHS))

    def report(r: Result) -> None:
        m = r.mutant
        print(_row((str(m.id), m.location(shown), m.description, r.status), WIDTHS), flush=True)

    try:
        results, base = run_mutants(path, chosen, tests, args.timeout, Path.cwd(), report)
    except KeyboardInterrupt:
        print("mutate: interrupted; the module is restored", file=sys.stderr)
        return 130
    except _Terminated:
        print("mutate: terminated; the module is restored", file=sys.stderr)
        return 143
    s = summary(results)
    print(
        f"summary: {s['mutants']} mutants, {s['killed']} killed, {s['survived']} survived, "
        f"{s['timeout']} timeout, {s['error']} error; kill rate {s['kill_rate']}% "
        f"(baseline {base:.1f}s)"
    )
    survivors = [r for r in results if r.status == "survived"]
    if survivors:
        print("survivors:")
        for r in survivors:
            print(f"  {r.mutant.id}  {r.mutant.location(shown)}  {r.mutant.description}")
    if args.json is not None:
        payload = {
            "module": shown,
            "tests": tests,
            "total_mutants": len(mutants),
            "summary": s,
            "results": [
                {
                    **asdict(r.mutant),
                    "status": r.status,
                    "detail": r.detail,
                    "seconds": round(r.seconds, 2),
                }
                for r in results
            ],
        }
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
    if args.fail_under is not None and float(s["kill_rate"]) < args.fail_under:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
