"""Scenarios: named, parameterised async functions that set up a run.

A scenario receives the run's Kernel, spawns its simulated threads and
returns; the executor then runs them under the chosen strategy and the
oracles judge. Keyword parameters with defaults are the scenario's
parameters (``--param name=value``).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

ScenarioFn = Callable[..., Awaitable[Any]]


class ScenarioError(Exception):
    """Bad scenario name or parameter (the CLI turns it into exit 2)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    fn: ScenarioFn
    params: dict[str, Any] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    config: dict[str, Any] = field(default_factory=dict)  # KernelConfig overrides

    def bind(self, pairs: Iterable[str] = ()) -> dict[str, Any]:
        """Defaults overridden by ``name=value`` strings, typed by each default's type."""
        values = dict(self.params)
        for pair in pairs:
            if "=" not in pair:
                raise ScenarioError(f"--param {pair!r}: expected NAME=VALUE")
            name, raw = pair.split("=", 1)
            if name not in self.params:
                known = ", ".join(self.params) or "none"
                raise ScenarioError(
                    f"scenario {self.name} has no parameter {name!r} (parameters: {known})"
                )
            values[name] = _convert(self.name, name, raw, self.params[name])
        return values

    def check(self, values: dict[str, Any]) -> dict[str, Any]:
        """Validate parameters read back from a replay file."""
        out = dict(self.params)
        for name, value in values.items():
            if name not in self.params:
                raise ScenarioError(f"scenario {self.name} has no parameter {name!r}")
            default = self.params[name]
            if default is not None and not _same_type(value, default):
                raise ScenarioError(
                    f"parameter {name!r} of {self.name} must be {type(default).__name__}"
                )
            out[name] = value
        return out


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
        raise ScenarioError(
            f"--param {name}={raw}: {scenario}.{name} takes a {type(default).__name__}"
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
    """Register a built-in scenario."""

    def register(fn: ScenarioFn) -> ScenarioFn:
        if name in REGISTRY:
            raise ValueError(f"scenario {name!r} registered twice")
        REGISTRY[name] = from_function(
            fn, name=name, description=description, tags=tags, config=config
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
) -> Scenario:
    if not inspect.iscoroutinefunction(fn):
        raise ScenarioError(f"{getattr(fn, '__name__', fn)!r} is not an async function")
    sig = inspect.signature(fn)
    plist = list(sig.parameters.values())
    if not plist:
        raise ScenarioError(f"scenario {fn.__name__} must take the kernel as first argument")
    params = {}
    for p in plist[1:]:
        if p.default is inspect.Parameter.empty:
            raise ScenarioError(
                f"scenario {fn.__name__}: parameter {p.name!r} needs a default value"
            )
        params[p.name] = p.default
    doc = (inspect.getdoc(fn) or "").strip().splitlines()
    return Scenario(
        name=name or fn.__name__,
        description=description or (doc[0] if doc else ""),
        fn=fn,
        params=params,
        tags=frozenset(tags),
        config=dict(config or {}),
    )


def builtin_scenarios() -> dict[str, Scenario]:
    from . import scenarios  # noqa: F401  (registers the built-ins)

    return REGISTRY


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
        mod_name = "panthor_testbed_user_" + os.path.splitext(os.path.basename(where))[0]
        mod_spec = importlib.util.spec_from_file_location(mod_name, where)
        if mod_spec is None or mod_spec.loader is None:
            raise ScenarioError(f"cannot import {where!r}")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[mod_name] = module
        try:
            mod_spec.loader.exec_module(module)
        except Exception as exc:
            raise ScenarioError(
                f"importing {where!r} failed: {type(exc).__name__}: {exc}"
            ) from None
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise ScenarioError(f"cannot import module {where!r}: {exc}") from None
    fn = getattr(module, func, None)
    if fn is None:
        raise ScenarioError(f"{where!r} has no function {func!r}")
    return from_function(fn, name=spec)
