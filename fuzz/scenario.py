"""Scenarios: named, parameterised async functions that set up a run.

A scenario receives the run's Kernel, spawns its simulated threads and
returns; the executor then runs them under the chosen strategy and the
oracles judge. Keyword parameters with defaults are the scenario's
parameters (``--param name=value``). A parameter may declare the values it
accepts with ``typing.Annotated`` and :class:`Range`::

    async def lost_update(k: Kernel, threads: Annotated[int, Range(1, 64)] = 2) -> None: ...

This module stays free of the model (no Trio, no ``panthor_testbed.sched``):
``panthor-testbed scenarios`` lists the built-ins from their source without
importing them (see :func:`builtin_index`), so it starts in a tenth of a second.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import types

from .errors import ScenarioError

ScenarioFn = Callable[..., Awaitable[Any]]

__all__ = [
    "REGISTRY",
    "Range",
    "Scenario",
    "ScenarioError",
    "ScenarioInfo",
    "ScenarioSource",
    "builtin_index",
    "builtin_scenarios",
    "from_function",
    "get_scenario",
    "load_file",
    "scenario",
]


@dataclass(frozen=True)
class Range:
    """The values a numeric scenario parameter accepts: ``low <= v <= high`` (None: open)."""

    low: int | float | None = None
    high: int | float | None = None

    def __post_init__(self) -> None:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"empty range [{self.low}, {self.high}]")

    def contains(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def describe(self) -> str:
        if self.high is None:
            return f">= {self.low}"
        if self.low is None:
            return f"<= {self.high}"
        return f"in [{self.low}, {self.high}]"

    def to_json(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {}
        if self.low is not None:
            out["min"] = self.low
        if self.high is not None:
            out["max"] = self.high
        return out


@dataclass(frozen=True)
class ScenarioSource:
    """Where a scenario's code lives, so a replay file can find it from anywhere.

    ``kind`` is "builtin", "file" (``path`` is absolute) or "module" (``root``
    is the ``sys.path`` entry the module was found under, when known).
    """

    kind: str
    function: str
    path: str = ""
    module: str = ""
    root: str = ""


@dataclass(frozen=True)
class ScenarioInfo:
    """What ``scenarios`` lists: everything but the function itself."""

    name: str
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    config: dict[str, Any] = field(default_factory=dict)  # KernelConfig overrides
    ranges: dict[str, Range] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "params": self.params,
            "tags": sorted(self.tags),
        }
        if self.ranges:
            out["ranges"] = {n: r.to_json() for n, r in self.ranges.items()}
        return out

    def convert(self, name: str, raw: str) -> Any:
        """One ``--param name=raw`` value, typed by the default and checked against its range."""
        if name not in self.params:
            known = ", ".join(self.params) or "none"
            raise ScenarioError(
                f"scenario {self.name} has no parameter {name!r} (parameters: {known})"
            )
        value = _convert(self.name, name, raw, self.params[name])
        self._check_range(name, value, f"--param {name}={raw}")
        return value

    def bind(self, pairs: Iterable[str] = ()) -> dict[str, Any]:
        """Defaults overridden by ``name=value`` strings (later ones win, the others stay)."""
        values = dict(self.params)
        for pair in pairs:
            if "=" not in pair:
                raise ScenarioError(f"--param {pair!r}: expected NAME=VALUE")
            name, raw = pair.split("=", 1)
            values[name] = self.convert(name, raw)
        return values

    def check(self, values: dict[str, Any]) -> dict[str, Any]:
        """Validate parameters given as values (a replay file, the Python API)."""
        out = dict(self.params)
        for name, value in values.items():
            if name not in self.params:
                raise ScenarioError(f"scenario {self.name} has no parameter {name!r}")
            default = self.params[name]
            if default is not None and not _same_type(value, default):
                raise ScenarioError(
                    f"parameter {name!r} of {self.name} must be {type(default).__name__}"
                )
            self._check_range(name, value, f"parameter {name}={value!r}")
            out[name] = value
        return out

    def _check_range(self, name: str, value: Any, what: str) -> None:
        r = self.ranges.get(name)
        if r is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if not r.contains(value):
            raise ScenarioError(f"{what}: {self.name}.{name} must be {r.describe()}")


@dataclass(frozen=True)
class Scenario(ScenarioInfo):
    fn: ScenarioFn = field(kw_only=True)
    source: ScenarioSource | None = field(default=None, kw_only=True)


def _same_type(value: object, default: object) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _convert(scenario: str, name: str, raw: str, default: object) -> Any:
    try:
        if isinstance(default, bool):
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw, 0)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        what = {"bool": "a bool (true/false)", "int": "an int", "float": "a float"}
        tname = type(default).__name__
        raise ScenarioError(
            f"--param {name}={raw}: {scenario}.{name} takes {what.get(tname, tname)}"
        ) from None
    return raw


REGISTRY: dict[str, Scenario] = {}


def scenario(
    name: str,
    description: str,
    *,
    tags: Iterable[str] = (),
    config: dict[str, Any] | None = None,
) -> Callable[[ScenarioFn], ScenarioFn]:
    """Register a built-in scenario (a module listed in ``fuzz/scenarios/__init__.py``).

    Keep the arguments literals: ``scenarios`` reads them from the source.
    """

    def register(fn: ScenarioFn) -> ScenarioFn:
        if name in REGISTRY:
            raise ValueError(f"scenario {name!r} registered twice")
        REGISTRY[name] = from_function(
            fn,
            name=name,
            description=description,
            tags=tags,
            config=config,
            source=ScenarioSource("builtin", fn.__name__),
        )
        return fn

    return register


def from_function(
    fn: ScenarioFn,
    *,
    name: str | None = None,
    description: str | None = None,
    tags: Iterable[str] = (),
    config: dict[str, Any] | None = None,
    source: ScenarioSource | None = None,
) -> Scenario:
    if not inspect.iscoroutinefunction(fn):
        raise ScenarioError(f"{getattr(fn, '__name__', fn)!r} is not an async function")
    sig = inspect.signature(fn)
    plist = list(sig.parameters.values())
    if not plist:
        raise ScenarioError(f"scenario {fn.__name__} must take the kernel as first argument")
    params: dict[str, Any] = {}
    ranges: dict[str, Range] = {}
    for p in plist[1:]:
        if p.default is inspect.Parameter.empty:
            raise ScenarioError(
                f"scenario {fn.__name__}: parameter {p.name!r} needs a default value"
            )
        params[p.name] = p.default
        r = _range_of(fn, p)
        if r is not None:
            ranges[p.name] = r
    doc = (inspect.getdoc(fn) or "").strip().splitlines()
    return Scenario(
        name=name or fn.__name__,
        description=description or (doc[0] if doc else ""),
        params=params,
        tags=frozenset(tags),
        config=dict(config or {}),
        ranges=ranges,
        fn=fn,
        source=source,
    )


def _range_of(fn: ScenarioFn, p: inspect.Parameter) -> Range | None:
    """The Range in ``Annotated[..., Range(...)]``, evaluating a string annotation if needed."""
    ann = p.annotation
    if ann is inspect.Parameter.empty:
        return None
    if isinstance(ann, str):
        if "Range" not in ann:
            return None  # nothing to find; do not evaluate what may not resolve at run time
        try:
            ann = eval(ann, getattr(fn, "__globals__", {}))
        except Exception as exc:
            raise ScenarioError(
                f"scenario {fn.__name__}: cannot evaluate the annotation of {p.name!r} "
                f"({type(exc).__name__}: {exc})"
            ) from None
    for meta in getattr(ann, "__metadata__", ()):
        if isinstance(meta, Range):
            return meta
    return None


# ---------------------------------------------------------------------- built-ins


def _builtin_modules() -> tuple[str, ...]:
    from .scenarios import MODULES

    return MODULES


def builtin_scenarios() -> dict[str, Scenario]:
    """Every built-in scenario, imported (this loads the model)."""
    for mod in _builtin_modules():
        importlib.import_module(f"{__package__}.scenarios.{mod}")
    return REGISTRY


class _NotLiteral(Exception):
    pass


def builtin_index() -> list[ScenarioInfo]:
    """The built-ins' metadata read from their source, without importing the model.

    A module whose ``@scenario`` arguments, defaults or annotations are not
    plain literals is imported instead (correct, only slower); a test checks
    that the index equals what importing gives.
    """
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
    out: list[ScenarioInfo] = []
    for mod in _builtin_modules():
        path = os.path.join(here, f"{mod}.py")
        try:
            with open(path, encoding="utf-8") as f:
                out.extend(_index_source(f.read()))
        except (OSError, SyntaxError, _NotLiteral, ValueError):
            module = importlib.import_module(f"{__package__}.scenarios.{mod}")
            out.extend(_strip(sc) for sc in REGISTRY.values() if _module_of(sc) == module)
    return out


def _module_of(sc: Scenario) -> types.ModuleType | None:
    return sys.modules.get(getattr(sc.fn, "__module__", ""))


def _strip(sc: ScenarioInfo) -> ScenarioInfo:
    return ScenarioInfo(sc.name, sc.description, sc.params, sc.tags, sc.config, sc.ranges)


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        raise _NotLiteral()
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise _NotLiteral() from None


_PLAIN_TYPES = frozenset({"int", "float", "bool", "str"})


def _ann_range(node: ast.expr | None) -> Range | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        node = ast.parse(node.value, mode="eval").body
    if isinstance(node, ast.Name) and node.id in _PLAIN_TYPES:
        return None
    if (
        isinstance(node, ast.Subscript)
        and _name(node.value) == "Annotated"
        and isinstance(node.slice, ast.Tuple)
    ):
        found: Range | None = None
        for meta in node.slice.elts[1:]:
            if isinstance(meta, ast.Call) and _name(meta.func) == "Range":
                args = [_literal(a) for a in meta.args]
                kwargs = {kw.arg: _literal(kw.value) for kw in meta.keywords if kw.arg}
                found = found or Range(*args, **kwargs)
            else:
                raise _NotLiteral()
        return found
    raise _NotLiteral()


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _index_source(source: str) -> list[ScenarioInfo]:
    tree = ast.parse(source)
    out: list[ScenarioInfo] = []
    for node in tree.body:
        if not isinstance(node, ast.AsyncFunctionDef):
            continue
        for dec in node.decorator_list:
            if not (isinstance(dec, ast.Call) and _name(dec.func) == "scenario"):
                continue
            args = [_literal(a) for a in dec.args]
            kw = {k.arg: _literal(k.value) for k in dec.keywords if k.arg}
            name = args[0] if args else kw.pop("name")
            description = args[1] if len(args) > 1 else kw.pop("description", "")
            a = node.args
            positional = [*a.posonlyargs, *a.args]
            defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults))
            defaults += list(a.defaults)
            pairs = list(zip(positional, defaults, strict=True))
            pairs += list(zip(a.kwonlyargs, a.kw_defaults, strict=True))
            params: dict[str, Any] = {}
            ranges: dict[str, Range] = {}
            for arg, default in pairs[1:]:
                params[arg.arg] = _literal(default)
                r = _ann_range(arg.annotation)
                if r is not None:
                    ranges[arg.arg] = r
            if not description:
                doc = (ast.get_docstring(node) or "").strip().splitlines()
                description = doc[0] if doc else ""
            out.append(
                ScenarioInfo(
                    name=name,
                    description=description,
                    params=params,
                    tags=frozenset(kw.get("tags", ())),
                    config=dict(kw.get("config") or {}),
                    ranges=ranges,
                )
            )
    return out


# ---------------------------------------------------------------------- lookup


def get_scenario(spec: str) -> Scenario:
    """A built-in by name, or ``path/to/file.py:function`` / ``package.module:function``."""
    builtins = builtin_scenarios()
    if spec in builtins:
        return builtins[spec]
    if ":" not in spec:
        known = ", ".join(builtins)
        raise ScenarioError(f"unknown scenario {spec!r} (built-ins: {known})")
    where, func = spec.rsplit(":", 1)
    if where.endswith(".py") or os.sep in where or "/" in where:
        if not os.path.isfile(where):
            raise ScenarioError(f"scenario file {where!r} does not exist")
        return load_file(where, func, name=spec)
    return load_module(where, func, name=spec)


def load_file(path: str, func: str, *, name: str) -> Scenario:
    """Import a scenario file by path and take ``func`` from it.

    The source is compiled afresh on every load (no ``__pycache__`` is read
    or written next to a user's file), so an edit made a moment ago is what
    runs, even within one second and at the same size.
    """
    import hashlib
    import types

    path = os.path.abspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
        code = compile(source, path, "exec")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file {path!r}: {exc.strerror}") from None
    except SyntaxError as exc:
        raise ScenarioError(f"scenario file {path!r}: syntax error at line {exc.lineno}") from None
    stem = os.path.splitext(os.path.basename(path))[0]
    tag = hashlib.sha256(path.encode()).hexdigest()[:8]
    mod_name = f"panthor_testbed_user_{stem}_{tag}"
    module = types.ModuleType(mod_name)
    module.__file__ = path
    sys.modules[mod_name] = module
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        raise ScenarioError(f"importing {path!r} failed: {type(exc).__name__}: {exc}") from None
    return _take(module, func, name, ScenarioSource("file", func, path=path))


def load_module(module_name: str, func: str, *, name: str, roots: Iterable[str] = ()) -> Scenario:
    """``package.module:function``: from ``sys.path``, else the working directory or ``roots``."""
    module: types.ModuleType | None = None
    last: Exception | None = None
    for root in (None, os.getcwd(), *roots):
        if root is not None and root in sys.path:
            continue
        if root is not None:
            sys.path.insert(0, root)
        try:
            module = importlib.import_module(module_name)
            break
        except ModuleNotFoundError as exc:
            last = exc
            if root is not None:
                sys.path.remove(root)
            if exc.name is None or not module_name.startswith(exc.name):
                break  # the module exists, something it imports does not
        except Exception as exc:
            raise ScenarioError(
                f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
            ) from None
    if module is None:
        raise ScenarioError(f"cannot import module {module_name!r}: {last}")
    file = os.path.abspath(getattr(module, "__file__", "") or "")
    return _take(
        module,
        func,
        name,
        ScenarioSource(
            "module", func, path=file if file else "", module=module_name, root=_root_of(module)
        ),
    )


def _root_of(module: types.ModuleType) -> str:
    """The ``sys.path`` entry ``module`` was found under ("" if unknown)."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file:
        return ""
    ups = module.__name__.count(".") + (1 if os.path.basename(file) == "__init__.py" else 0)
    root = os.path.dirname(os.path.abspath(file))
    for _ in range(ups):
        root = os.path.dirname(root)
    return root


def _take(module: types.ModuleType, func: str, name: str, source: ScenarioSource) -> Scenario:
    fn = getattr(module, func, None)
    if fn is None:
        raise ScenarioError(f"{source.path or source.module!r} has no function {func!r}")
    return from_function(fn, name=name, source=source)
