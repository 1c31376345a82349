"""Coverage of one run: what the model reached, as stable integer features.

A run with ``KernelConfig.coverage`` on carries a :class:`Collector` as
``k.coverage``; :func:`collect` turns it into a :class:`RunCoverage` once the
run is over. What counts as a feature:

* **seed functions and their branches**: every function of the seed
  (``mmu/panthor_mmu.py``, and the catalogue's replacements of them) gets a
  probe at its entry and at the start of every block a branch can lead to
  (``if`` / ``else`` arms, loop bodies, ``except`` handlers, ``case``
  arms). The probes live in a copy of each function's code made once per
  process from the module's own source (:mod:`ast`, same file name and line
  numbers); a coverage run swaps the copies in for its duration and puts the
  originals back, so a run without coverage executes the model's code
  untouched. A probe's feature is its hit count in AFL's buckets (1, 2, 3,
  4-7, 8-15, 16-31, 32-127, 128+), so a loop that runs more often is new;
* **lock-order pairs**: B taken while A is held, by lockdep class, as
  lockdep sees them (the trylocks on top of the held stack and the first
  lock under them), whether or not the campaign's graph already knew them;
* **interrupt-in-window events**: a timer (hardware completion, timeout,
  delayed work) firing while a thread is inside a given seed function;
* **fault-injection points**: each allocation site asked whether it fails,
  with the answer;
* **failures**: each finding's kind and signature.

Feature ids are the first 8 bytes of the blake2b digest of a text naming the
feature, so they are the same in every process, under any
``PYTHONHASHSEED``, for as long as the model's source does not change.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from types import CodeType, FrameType, FunctionType, ModuleType
from typing import TYPE_CHECKING, Any, Final

from panthor_testbed.sched.core.frames import Site, fast_site, format_site

if TYPE_CHECKING:
    from panthor_testbed.sched import Kernel
    from panthor_testbed.sched.locking.lockdep import HeldLock

# The functions of the seed's panthor_mmu.c, in the file's order
# (/work/shared/seed/functions.txt at the seed).
SEED_FUNCTIONS: Final = (
    "alloc_pt", "free_pt", "wait_ready", "write_cmd", "lock_region", "mmu_hw_do_operation_locked",
    "mmu_hw_do_operation", "panthor_mmu_as_enable", "panthor_mmu_as_disable",
    "panthor_mmu_fault_mask", "panthor_mmu_as_fault_mask", "panthor_vm_has_unhandled_faults",
    "panthor_vm_is_unusable", "panthor_vm_release_as_locked", "panthor_vm_active",
    "panthor_vm_idle", "panthor_vm_page_size", "panthor_vm_stop", "panthor_vm_start",
    "panthor_vm_as", "get_pgsize", "panthor_vm_flush_range", "panthor_vm_flush_all",
    "panthor_vm_unmap_pages", "panthor_vm_map_pages", "flags_to_prot", "panthor_vm_alloc_va",
    "panthor_vm_free_va", "panthor_vm_bo_put", "panthor_vm_cleanup_op_ctx",
    "panthor_vm_op_ctx_get_vma", "panthor_vm_op_ctx_prealloc_vmas",
    "panthor_vm_prepare_map_op_ctx", "panthor_vm_prepare_unmap_op_ctx",
    "panthor_vm_prepare_sync_only_op_ctx", "panthor_vm_get_bo_for_va",
    "panthor_vm_create_get_user_va_range", "panthor_vm_create_check_args",
    "panthor_vm_pool_create_vm", "panthor_vm_destroy", "panthor_vm_pool_destroy_vm",
    "panthor_vm_pool_get_vm", "panthor_vm_pool_destroy", "panthor_vm_pool_create",
    "mmu_tlb_flush_all", "mmu_tlb_flush_walk", "access_type_name", "panthor_mmu_irq_handler",
    "panthor_mmu_suspend", "panthor_mmu_resume", "panthor_mmu_pre_reset",
    "panthor_mmu_post_reset", "panthor_vm_free", "panthor_vm_put", "panthor_vm_get",
    "panthor_vm_get_heap_pool", "mair_to_memattr", "panthor_vma_link", "panthor_vma_unlink",
    "panthor_vma_init", "panthor_gpuva_sm_step_map", "panthor_gpuva_sm_step_remap",
    "panthor_gpuva_sm_step_unmap", "panthor_vm_resv", "panthor_vm_root_gem",
    "panthor_vm_exec_op", "panthor_vm_bind_run_job", "panthor_vm_bind_job_release",
    "panthor_vm_bind_job_put", "panthor_vm_bind_free_job", "panthor_vm_bind_timedout_job",
    "panthor_vm_create", "panthor_vm_bind_prepare_op_ctx",
    "panthor_vm_bind_job_cleanup_op_ctx_work", "panthor_vm_bind_job_create",
    "panthor_vm_bind_job_prepare_resvs", "panthor_vm_bind_job_update_resvs",
    "panthor_vm_update_resvs", "panthor_vm_bind_exec_sync_op", "panthor_vm_map_bo_range",
    "panthor_vm_unmap_range", "panthor_vm_prepare_mapped_bos_resvs", "panthor_mmu_unplug",
    "panthor_mmu_release_wq", "panthor_mmu_init", "show_vm_gpuvas", "show_each_vm",
    "panthor_mmu_debugfs_init", "panthor_mmu_pt_cache_init", "panthor_mmu_pt_cache_fini",
)  # fmt: skip

SEED_MODULE: Final = "panthor_testbed.mmu.panthor_mmu"
CATALOGUE_PACKAGE: Final = "panthor_testbed.fuzz.bugs"
# The module global the probes count into (a list, one slot per probe).
COUNTS_NAME: Final = "_panthor_coverage_counts"

_SEED_SET: Final = frozenset(SEED_FUNCTIONS)

# ---------------------------------------------------------------------- ids

_ids: dict[str, int] = {}


def feature_id(text: str) -> int:
    """The stable id of the feature ``text`` names (63 bits, never ``hash()``)."""
    fid = _ids.get(text)
    if fid is None:
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        fid = _ids[text] = int.from_bytes(digest, "big") >> 1
    return fid


def hit_bucket(n: int) -> int:
    """AFL's hit-count classes: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+ (0: not hit)."""
    if n < 4:
        return n
    if n < 8:
        return 4
    if n < 16:
        return 5
    if n < 32:
        return 6
    if n < 128:
        return 7
    return 8


# ---------------------------------------------------------------------- probes


@dataclass(frozen=True)
class Probe:
    """One counting point: a seed function's entry or the start of one of its blocks."""

    function: str
    label: str  # "entry", "if@812", "else@812", "loop@900", "except@950", "case@7"
    module: str  # the short name of the module the code is in

    @property
    def text(self) -> str:
        return f"{self.module}:{self.function}:{self.label}"


class _Probes(ast.NodeTransformer):
    """Puts ``COUNTS[i] += 1`` at the entry and at every branch target of one function."""

    def __init__(self, function: str, add: Any) -> None:
        self.function = function
        self.add = add

    def stmt(self, label: str, anchor: ast.AST) -> ast.stmt:
        idx = self.add(self.function, label)
        node = ast.AugAssign(
            target=ast.Subscript(
                value=ast.Name(id=COUNTS_NAME, ctx=ast.Load()),
                slice=ast.Constant(value=idx),
                ctx=ast.Store(),
            ),
            op=ast.Add(),
            value=ast.Constant(value=1),
        )
        line = getattr(anchor, "lineno", 1)
        col = getattr(anchor, "col_offset", 0)
        for n in ast.walk(node):
            n.lineno = n.end_lineno = line  # type: ignore[attr-defined]
            n.col_offset = n.end_col_offset = col  # type: ignore[attr-defined]
        return node

    def block(self, body: list[ast.stmt], label: str, anchor: ast.AST) -> list[ast.stmt]:
        at = 1 if body and _is_docstring(body[0]) else 0
        return [*body[:at], self.stmt(label, body[at] if len(body) > at else anchor), *body[at:]]

    def visit_If(self, node: ast.If) -> ast.AST:
        self.generic_visit(node)
        node.body = self.block(node.body, f"if@{node.lineno}", node)
        node.orelse = self.block(node.orelse, f"else@{node.lineno}", node)
        return node

    def _loop(self, node: ast.For | ast.AsyncFor | ast.While) -> ast.AST:
        self.generic_visit(node)
        node.body = self.block(node.body, f"loop@{node.lineno}", node)
        if node.orelse:
            node.orelse = self.block(node.orelse, f"loopelse@{node.lineno}", node)
        return node

    visit_For = visit_AsyncFor = visit_While = _loop

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        self.generic_visit(node)
        node.body = self.block(node.body, f"except@{node.lineno}", node)
        return node

    def visit_match_case(self, node: ast.match_case) -> ast.AST:
        self.generic_visit(node)
        node.body = self.block(node.body, f"case@{node.pattern.lineno}", node.pattern)
        return node

    def _inner_def(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        self.generic_visit(node)
        node.body = self.block(node.body, f"def@{node.lineno}", node)
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = _inner_def


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _short(modname: str) -> str:
    return modname.rsplit(".", 1)[-1]


class Instrumentation:
    """The probed copies of the seed functions of the modules instrumented so far."""

    def __init__(self) -> None:
        self.probes: list[Probe] = []
        self.entry: list[tuple[str, int]] = []  # (function, entry probe)
        self.modules: dict[str, ModuleType] = {}
        self.swaps: list[tuple[FunctionType, CodeType, CodeType]] = []
        # every code object of a seed function (original or probed, nested
        # ones too) -> the seed function's name, for "inside which function"
        self.code_names: dict[CodeType, str] = {}

    def add_module(self, modname: str) -> None:
        """Make probed copies of ``modname``'s seed functions (once per module)."""
        if modname in self.modules:
            return
        module = sys.modules[modname]
        self.modules[modname] = module
        targets: dict[tuple[str, int], FunctionType] = {}
        for name, value in vars(module).items():
            if name in _SEED_SET and isinstance(value, FunctionType):
                if value.__module__ != modname:
                    continue  # imported from elsewhere: instrumented there
                targets[(name, value.__code__.co_firstlineno)] = value
        if not targets:
            return
        path = inspect.getsourcefile(module)
        if path is None:
            return
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        short = _short(modname)

        def add(function: str, label: str) -> int:
            self.probes.append(Probe(function, label, short))
            return len(self.probes) - 1

        wanted = {name for name, _ in targets}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in wanted:
                probes = _Probes(node.name, add)
                for child in node.body:
                    probes.visit(child)
                self.entry.append((node.name, len(self.probes)))
                node.body = probes.block(node.body, "entry", node)
        code = compile(tree, path, "exec", dont_inherit=True)
        for const in code.co_consts:
            if not isinstance(const, CodeType):
                continue
            fn = targets.get((const.co_name, const.co_firstlineno))
            if fn is None or const.co_freevars != fn.__code__.co_freevars:
                continue
            self.swaps.append((fn, fn.__code__, const))
            for c in (fn.__code__, const):
                self._name_codes(c, fn.__name__)

    def _name_codes(self, code: CodeType, name: str) -> None:
        self.code_names[code] = name
        for const in code.co_consts:
            if isinstance(const, CodeType):
                self._name_codes(const, name)

    def install(self, counts: list[int]) -> None:
        for module in self.modules.values():
            module.__dict__[COUNTS_NAME] = counts
        for fn, _, probed in self.swaps:
            fn.__code__ = probed

    def uninstall(self) -> None:
        for fn, original, _ in self.swaps:
            fn.__code__ = original


_INSTRUMENTATION: Instrumentation | None = None


def instrumentation() -> Instrumentation:
    """The process's instrumentation, extended by catalogue modules loaded since."""
    global _INSTRUMENTATION
    inst = _INSTRUMENTATION
    if inst is None:
        import importlib

        importlib.import_module(SEED_MODULE)
        inst = _INSTRUMENTATION = Instrumentation()
        inst.add_module(SEED_MODULE)
    # A catalogue module may have been imported since (an --inject of another run).
    bugs = sys.modules.get(CATALOGUE_PACKAGE)
    entries = getattr(bugs, "ENTRIES", None)
    if isinstance(entries, dict):
        for name in entries.values():
            modname = f"{CATALOGUE_PACKAGE}.{name}"
            if modname not in inst.modules and modname in sys.modules:
                inst.add_module(modname)
    return inst


# ---------------------------------------------------------------------- one run


class Collector:
    """What a run reaches while it runs (``k.coverage``); see :func:`collect`."""

    __slots__ = ("allocs", "counts", "inst", "irqs", "locks")

    def __init__(self, k: Kernel) -> None:
        self.inst = instrumentation()
        self.counts: list[int] = [0] * len(self.inst.probes)
        self.locks: dict[tuple[str, str], int] = {}
        self.irqs: dict[tuple[str, str], int] = {}
        self.allocs: dict[tuple[Site, bool], int] = {}

    def start(self, k: Kernel) -> None:
        """The run starts: the probed code goes in."""
        self.inst.install(self.counts)

    def stop(self, k: Kernel) -> None:
        """The run is over: the model's own code comes back."""
        self.inst.uninstall()

    def on_lock(self, held: list[HeldLock], key: str) -> None:
        """A non-trylock acquisition with ``held`` locks held (before it is pushed)."""
        locks = self.locks
        for prev in reversed(held):
            pair = (prev.cls.key, key)
            locks[pair] = locks.get(pair, 0) + 1
            if not prev.trylock:
                return

    def on_irq(self, timer: str) -> None:
        """A timer fires; the running thread's stack is the one interrupted."""
        where = self.innermost(sys._getframe(1))
        key = (timer, where)
        self.irqs[key] = self.irqs.get(key, 0) + 1

    def on_alloc(self, failed: bool) -> None:
        """A failable allocation was asked whether it fails."""
        key = (fast_site(2), failed)  # formatted once, in collect()
        self.allocs[key] = self.allocs.get(key, 0) + 1

    def innermost(self, frame: FrameType | None) -> str:
        names = self.inst.code_names
        while frame is not None:
            name = names.get(frame.f_code)
            if name is not None:
                return name
            frame = frame.f_back
        return "-"


@dataclass(frozen=True)
class RunCoverage:
    """The coverage of one finished run."""

    probes: tuple[tuple[int, int], ...]  # (probe index, hits) of the probes hit
    locks: tuple[tuple[str, str, int], ...]
    irqs: tuple[tuple[str, str, int], ...]
    allocs: tuple[tuple[str, bool, int], ...]
    failures: tuple[tuple[str, str], ...]  # (kind, signature)

    def feature_texts(self) -> list[str]:
        """What each feature names (the ids are digests of these)."""
        table = instrumentation().probes
        out = [f"probe:{table[i].text}:{hit_bucket(n)}" for i, n in self.probes]
        out += [f"lock:{a}>{b}" for a, b, _ in self.locks]
        out += [f"irq:{t}@{fn}" for t, fn, _ in self.irqs]
        out += [f"alloc:{site}:{int(failed)}" for site, failed, _ in self.allocs]
        for kind, sig in self.failures:
            out += [f"fail:{kind}", f"fail:{kind}:{sig}"]
        return out

    def features(self) -> tuple[int, ...]:
        """The run's feature ids, sorted, each once."""
        return tuple(sorted({feature_id(t) for t in self.feature_texts()}))

    def functions(self) -> dict[str, int]:
        """Seed function -> times entered in the run (the functions entered only)."""
        counts = dict(self.probes)
        out: dict[str, int] = {}
        for name, probe in instrumentation().entry:
            n = counts.get(probe, 0)
            if n:
                out[name] = out.get(name, 0) + n
        return out

    def lock_pairs(self) -> list[tuple[str, str, int]]:
        """``(held, then taken, times)``, sorted."""
        return list(self.locks)

    def summary(self) -> dict[str, Any]:
        """Small and picklable: what a campaign report merges (see :class:`Totals`)."""
        return {
            "functions": self.functions(),
            "lock_pairs": [list(p) for p in self.locks],
            "features": list(self.features()),
        }


def collect(k: Kernel) -> RunCoverage:
    """The coverage of the finished run ``k`` (which ran with ``KernelConfig.coverage``)."""
    cov = k.coverage
    if not isinstance(cov, Collector):
        raise ValueError("the run did not collect coverage (KernelConfig.coverage is off)")
    return RunCoverage(
        probes=tuple((i, n) for i, n in enumerate(cov.counts) if n),
        locks=tuple(sorted((a, b, n) for (a, b), n in cov.locks.items())),
        irqs=tuple(sorted((t, fn, n) for (t, fn), n in cov.irqs.items())),
        allocs=_allocs(cov.allocs),
        failures=tuple((f.kind, f.signature or "") for f in k.failures),
    )


def _allocs(allocs: dict[tuple[Site, bool], int]) -> tuple[tuple[str, bool, int], ...]:
    merged: dict[tuple[str, bool], int] = {}
    for (site, failed), n in allocs.items():
        key = (format_site(site), failed)
        merged[key] = merged.get(key, 0) + n
    return tuple(sorted((s, f, n) for (s, f), n in merged.items()))


class Totals:
    """Coverage merged over a campaign's runs, as ``campaign.json`` stores it."""

    def __init__(self) -> None:
        self.functions: dict[str, int] = {}
        self.locks: dict[tuple[str, str], int] = {}
        self.features: set[int] = set()

    def add(self, run: RunCoverage | dict[str, Any]) -> int:
        """Merge one run (a RunCoverage or its :meth:`RunCoverage.summary`); new features."""
        summary = run.summary() if isinstance(run, RunCoverage) else run
        for name, n in summary["functions"].items():
            self.functions[name] = self.functions.get(name, 0) + n
        for a, b, n in summary["lock_pairs"]:
            self.locks[(a, b)] = self.locks.get((a, b), 0) + n
        before = len(self.features)
        self.features.update(summary["features"])
        return len(self.features) - before

    def to_json(self) -> dict[str, Any]:
        order = {name: i for i, name in enumerate(SEED_FUNCTIONS)}
        return {
            "functions": dict(
                sorted(self.functions.items(), key=lambda kv: (order.get(kv[0], 1 << 30), kv[0]))
            ),
            "lock_pairs": [[a, b, n] for (a, b), n in sorted(self.locks.items())],
            "features": len(self.features),
        }


def merge_features(runs: Iterable[Iterable[int]]) -> set[int]:
    out: set[int] = set()
    for r in runs:
        out.update(r)
    return out


__all__ = [
    "SEED_FUNCTIONS",
    "Collector",
    "Instrumentation",
    "Probe",
    "RunCoverage",
    "Totals",
    "collect",
    "feature_id",
    "hit_bucket",
    "instrumentation",
    "merge_features",
]
