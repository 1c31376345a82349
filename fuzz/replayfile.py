"""Replay files: everything needed to re-run one failing schedule.

JSON with a ``format`` version, the package version, the scenario (and, for a
user's scenario, where its code is: absolute and relative to the replay file,
so the file travels), parameters, strategy and seed, the choice list with
each choice's thread identity, injected bugs, the kernel config, the failure,
the trace digest, the lockdep dependencies from earlier runs the failure
relied on, and a checksum over all of it. The format is documented in
``docs/replay-files.md``.

``load`` validates every field against what the command accepts and refuses
anything else with one line saying why. Format 1 files (choices as bare tids)
are still read; they can only be replayed exactly.

No heavy imports at module level: the CLI imports this before the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from panthor_testbed import __version__

from .errors import ReplayFileError

FORMAT = 2
READS = (1, 2)

IRQ_PREFIX = "interrupt:"

# The ranges the command line accepts for the config it can set, and the
# executor's own limits. Fields of KernelConfig not named here are
# type-checked only.
CONFIG_RANGES: dict[str, tuple[float, float | None]] = {
    "max_steps": (1, None),
    "time_limit_ns": (1, None),
    "alloc_fail_nth": (0, None),
    "alloc_fail_probability": (0.0, 1.0),
}

_FIELDS = (
    "format",
    "version",
    "scenario",
    "source",
    "params",
    "strategy",
    "seed",
    "run_id",
    "inject",
    "patch",
    "config",
    "failure",
    "digest",
    "steps",
    "lockdep_edges",
    "lockdep_reported",
    "choices",
    "note",
    "checksum",
)

__all__ = [
    "FORMAT",
    "KINDS",
    "Choice",
    "ReplayFile",
    "ReplayFileError",
    "checksum",
    "replay_name",
    "validate_config",
]


KINDS = ("yield", "block", "exit", "data")


class Choice(NamedTuple):
    """One recorded decision: who made it, where, its how-many-th there, what it picked.

    ``kind`` is "yield" (at a yield point, the thread could have gone on),
    "block" or "exit" (the thread blocked or exited: who runs next), or
    "data" (a data choice). ``n`` counts the thread's earlier decisions of
    that kind. ``pick`` is a thread identity (``name#n``),
    ``interrupt:<timer name>``, or the value of a data choice.
    """

    by: str
    kind: str
    n: int
    pick: str | int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.by, self.kind, self.n)


def split_identity(identity: str) -> tuple[str, int] | None:
    """``worker#2`` -> ("worker", 2); None if it is not a thread identity."""
    name, sep, n = identity.rpartition("#")
    if not sep or not n.isdigit() or (len(n) > 1 and n[0] == "0"):
        return None
    return name, int(n)


def valid_pick(pick: object) -> bool:
    if isinstance(pick, bool):
        return False
    if isinstance(pick, int):
        return pick >= 0
    if isinstance(pick, str):
        return pick.startswith(IRQ_PREFIX) or split_identity(pick) is not None
    return False


@dataclass
class ReplayFile:
    scenario: str
    params: dict[str, Any]
    strategy: dict[str, Any]
    seed: int
    run_id: int
    choices: list[Choice]
    inject: list[str]
    config: dict[str, Any]
    failure: dict[str, Any]
    digest: str
    steps: int
    lockdep_edges: list[dict[str, Any]] = field(default_factory=list)
    lockdep_reported: list[list[str]] = field(default_factory=list)
    patch: list[str] = field(default_factory=list)  # latent catalogue fixes installed
    version: str = __version__
    note: str = ""
    # Where a user's scenario lives: {"kind": "file", "function", "path"} or
    # {"kind": "module", "function", "module", "root"}; "relative" /
    # "relative_root" (to the replay file's directory) are added on save.
    source: dict[str, str] | None = None
    # Format 1 files: the bare choice list (tids, -1 - value for data).
    legacy_choices: list[int] | None = None
    format: int = FORMAT
    warnings: list[str] = field(default_factory=list)
    path: str = ""  # where it was loaded from or saved to

    @property
    def n_choices(self) -> int:
        if self.legacy_choices is not None:
            return len(self.legacy_choices)
        return len(self.choices)

    def body(self, rel_base: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": self.format,
            "version": self.version,
            "scenario": self.scenario,
        }
        if self.source is not None:
            out["source"] = _relative_source(self.source, rel_base)
        out.update(
            {
                "params": self.params,
                "strategy": self.strategy,
                "seed": self.seed,
                "run_id": self.run_id,
                "inject": self.inject,
                "patch": self.patch,
                "config": self.config,
                "failure": self.failure,
                "digest": self.digest,
                "steps": self.steps,
                "lockdep_edges": self.lockdep_edges,
                "lockdep_reported": self.lockdep_reported,
            }
        )
        if self.legacy_choices is not None:
            out["choices"] = list(self.legacy_choices)
        else:
            out["choices"] = [list(c) for c in self.choices]
        if self.note:
            out["note"] = self.note
        return out

    def to_json(self, rel_base: str | None = None) -> dict[str, Any]:
        body = self.body(rel_base)
        body["checksum"] = checksum(body)
        return body

    def save(self, path: str) -> None:
        """Write atomically; relative locations are computed for ``path``'s directory."""
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        text = dumps(self.to_json(os.path.dirname(os.path.abspath(path))))
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        self.path = path

    @classmethod
    def load(cls, path: str) -> ReplayFile:
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise ReplayFileError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise ReplayFileError(f"{path}: is a directory, not a replay file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ReplayFileError(f"{path}: cannot read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ReplayFileError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        rf = cls.from_json(data, path)
        rf.path = path
        return rf

    @classmethod
    def from_json(cls, data: object, where: str = "replay file") -> ReplayFile:
        return _Reader(where).read(data)


class _Reader:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, what: str) -> ReplayFileError:
        return ReplayFileError(f"{self.where}: {what}")

    def read(self, data: object) -> ReplayFile:
        if not isinstance(data, dict):
            raise self.fail("not a replay file (expected a JSON object)")
        fmt = data.get("format")
        if isinstance(fmt, bool) or fmt not in READS:
            raise self.fail(
                f"unsupported replay format {fmt!r} (this tool reads formats "
                f"{', '.join(map(str, READS))})"
            )
        if "checksum" in data:
            body = {k: v for k, v in data.items() if k != "checksum"}
            if data["checksum"] != checksum(body):
                raise self.fail(
                    "checksum mismatch, the file was modified "
                    '(delete the "checksum" field to replay an edited file)'
                )
        unknown = [k for k in data if k not in _FIELDS]
        if unknown:
            raise self.fail(f"unknown field {unknown[0]!r}")
        warnings: list[str] = []
        version = self.need(data, "version", str)
        if not re.fullmatch(r"\d+(\.\d+)*([.+-]?[0-9A-Za-z.]+)?", version):
            raise self.fail(f"field 'version' must be a package version, got {version!r}")
        if _newer(version, __version__):
            warnings.append(
                f"{self.where} was written by panthor-testbed {version}, newer than this "
                f"one ({__version__})"
            )
        legacy: list[int] | None = None
        choices: list[Choice] = []
        if fmt == 1:
            raw = self.need(data, "choices", list)
            if not all(_is_int(c) for c in raw):
                raise self.fail("field 'choices' must be a list of integers")
            legacy = list(raw)
        else:
            choices = self.choices(self.need(data, "choices", list))
        inject = self.need(data, "inject", list)
        if not all(isinstance(s, str) for s in inject):
            raise self.fail("field 'inject' must be a list of strings")
        patch = data.get("patch", [])
        if not isinstance(patch, list) or not all(isinstance(s, str) for s in patch):
            raise self.fail("field 'patch' must be a list of strings")
        edges = data.get("lockdep_edges", [])
        if not isinstance(edges, list) or not all(_edge_ok(e) for e in edges):
            raise self.fail("field 'lockdep_edges' is malformed")
        reported = data.get("lockdep_reported", [])
        if not isinstance(reported, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
            for p in reported
        ):
            raise self.fail("field 'lockdep_reported' is malformed")
        scenario = self.need(data, "scenario", str)
        if not scenario:
            raise self.fail("field 'scenario' is empty")
        digest = self.need(data, "digest", str)
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise self.fail("field 'digest' must be 64 hex digits")
        note = data.get("note", "")
        if not isinstance(note, str):
            raise self.fail("field 'note' must be str")
        try:
            config = validate_config(self.need(data, "config", dict))
        except ValueError as exc:
            raise self.fail(f"field 'config': {exc}") from None
        return ReplayFile(
            scenario=scenario,
            params=self.need(data, "params", dict),
            strategy=self.strategy(self.need(data, "strategy", dict), "strategy"),
            seed=self.count(data, "seed"),
            run_id=self.count(data, "run_id"),
            choices=choices,
            inject=list(inject),
            patch=list(patch),
            config=config,
            failure=self.failure(self.need(data, "failure", dict)),
            digest=digest,
            steps=self.count(data, "steps"),
            lockdep_edges=list(edges),
            lockdep_reported=[list(p) for p in reported],
            version=version,
            note=note,
            source=self.source(data.get("source")),
            legacy_choices=legacy,
            format=int(fmt),
            warnings=warnings,
        )

    def need(self, data: dict[str, Any], name: str, typ: type) -> Any:
        if name not in data:
            raise self.fail(f"missing field {name!r}")
        value = data[name]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise self.fail(f"field {name!r} must be {_tname(typ)}")
        return value

    def count(self, data: dict[str, Any], name: str) -> int:
        value = self.need(data, name, int)
        if value < 0:
            raise self.fail(f"field {name!r} must be a non-negative integer, got {value}")
        return int(value)

    def choices(self, raw: list[Any]) -> list[Choice]:
        seen: dict[tuple[str, str], int] = {}
        out: list[Choice] = []
        for i, c in enumerate(raw):
            if not (isinstance(c, list) and len(c) == 4):
                raise self.fail(f"choice #{i} must be [thread, kind, count, pick]")
            by, kind, n, pick = c
            if not isinstance(by, str) or split_identity(by) is None:
                raise self.fail(f"choice #{i}: {by!r} is not a thread identity (name#n)")
            if kind not in KINDS:
                raise self.fail(f"choice #{i}: kind {kind!r} is not one of {', '.join(KINDS)}")
            want = seen.get((by, kind), 0)
            if not _is_int(n) or n != want:
                raise self.fail(f"choice #{i}: {by}'s {kind} count must be {want}, got {n!r}")
            if not valid_pick(pick) or (kind == "data") != isinstance(pick, int):
                raise self.fail(
                    f"choice #{i}: {pick!r} is not a pick for a {kind} choice (a thread "
                    f"identity name#n or '{IRQ_PREFIX}<timer>'; a value >= 0 for data)"
                )
            seen[(by, kind)] = n + 1
            out.append(Choice(by, kind, n, pick))
        return out

    def strategy(self, s: dict[str, Any], name: str) -> dict[str, Any]:
        if not isinstance(s.get("name"), str):
            raise self.fail(f"field {name!r} needs a 'name'")
        for key in ("seed", "preemption_bound", "schedule", "steps_estimate"):
            if key in s and not (_is_int(s[key]) and s[key] >= 0):
                raise self.fail(f"field {name!r}: {key!r} must be a non-negative integer")
        if "depth" in s and not (_is_int(s["depth"]) and s["depth"] >= 1):
            raise self.fail(f"field {name!r}: 'depth' must be a positive integer")
        if "from" in s:
            if not isinstance(s["from"], dict):
                raise self.fail(f"field {name!r}: 'from' must be an object")
            self.strategy(s["from"], f"{name}.from")
        return s

    def failure(self, f: dict[str, Any]) -> dict[str, Any]:
        from panthor_testbed.sched.core.failure import KINDS

        kind = f.get("kind")
        if not isinstance(kind, str):
            raise self.fail("field 'failure' needs a 'kind'")
        if kind not in KINDS and kind != "none":
            raise self.fail(f"field 'failure': unknown kind {kind!r}")
        for key in ("message", "signature"):
            if key in f and not isinstance(f[key], str):
                raise self.fail(f"field 'failure': {key!r} must be str")
        if "step" in f and not (_is_int(f["step"]) and f["step"] >= 0):
            raise self.fail("field 'failure': 'step' must be a non-negative integer")
        if f.get("thread") is not None and not isinstance(f["thread"], str):
            raise self.fail("field 'failure': 'thread' must be str or null")
        also = f.get("also", [])
        if not isinstance(also, list) or not all(isinstance(m, str) for m in also):
            raise self.fail("field 'failure': 'also' must be a list of strings")
        return f

    def source(self, s: object) -> dict[str, str] | None:
        if s is None:
            return None
        if not isinstance(s, dict) or not all(isinstance(v, str) for v in s.values()):
            raise self.fail("field 'source' must be an object of strings")
        kind = s.get("kind")
        allowed = {
            "file": {"kind", "function", "path", "relative"},
            "module": {"kind", "function", "module", "path", "root", "relative_root"},
        }.get(str(kind))
        if allowed is None:
            raise self.fail(f"field 'source': unknown kind {kind!r}")
        extra = sorted(set(s) - allowed)
        if extra:
            raise self.fail(f"field 'source': unknown key {extra[0]!r}")
        if not s.get("function"):
            raise self.fail("field 'source' needs a 'function'")
        if kind == "file" and not (s.get("path") or s.get("relative")):
            raise self.fail("field 'source' needs a 'path' or 'relative'")
        if kind == "module" and not s.get("module"):
            raise self.fail("field 'source' needs a 'module'")
        return dict(s)


def validate_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A kernel config as replay files and the API take it: known keys, types, ranges.

    Raises ValueError with one line; returns a copy with ints widened to float
    where the field is a float.
    """
    from panthor_testbed.sched import KernelConfig

    fields = KernelConfig.__dataclass_fields__
    out: dict[str, Any] = {}
    for name, value in cfg.items():
        if name not in fields:
            raise ValueError(f"unknown key {name!r} (known: {', '.join(fields)})")
        want = type(fields[name].default)
        if want is float and _is_int(value):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ValueError(f"{name!r} must be {want.__name__}, got {value!r}")
        bounds = CONFIG_RANGES.get(name)
        if bounds is not None:
            low, high = bounds
            assert isinstance(value, (int, float))
            if value < low or (high is not None and value > high):
                span = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise ValueError(f"{name!r} must be {span}, got {value!r}")
        out[name] = value
    return out


def _relative_source(source: dict[str, str], rel_base: str | None) -> dict[str, str]:
    if rel_base is None:
        return dict(source)
    out = {k: v for k, v in source.items() if k not in ("relative", "relative_root")}
    if source.get("kind") == "file" and source.get("path"):
        out["relative"] = _relpath(source["path"], rel_base)
    if source.get("kind") == "module" and source.get("root"):
        out["relative_root"] = _relpath(source["root"], rel_base)
    return out


def _relpath(path: str, base: str) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:  # another drive (Windows)
        return path


def _newer(a: str, b: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", v.split("+")[0])[:3])

    return parts(a) > parts(b)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _tname(typ: type) -> str:
    return {"dict": "an object", "list": "a list", "str": "str", "int": "int"}.get(
        typ.__name__, typ.__name__
    )


def _edge_ok(e: object) -> bool:
    if not isinstance(e, dict):
        return False
    o = e.get("origin")
    return (
        isinstance(e.get("from"), str)
        and isinstance(e.get("to"), str)
        and isinstance(e.get("types"), int)
        and isinstance(o, dict)
        and all(isinstance(o.get(k), str) for k in ("thread", "prev_site", "next_site"))
        and all(isinstance(o.get(k), int) for k in ("run_id", "step"))
    )


def dumps(data: dict[str, Any]) -> str:
    """Indented JSON with one line per choice (a choice list is read line by line)."""
    mark = "\x00choices\x00"
    choices = data.get("choices", [])
    text = json.dumps({**data, "choices": mark}, indent=1)
    if not choices:
        return text.replace(json.dumps(mark), "[]") + "\n"
    rows = ",\n".join("  " + json.dumps(c) for c in choices)
    return text.replace(json.dumps(mark), "[\n" + rows + "\n ]") + "\n"


def checksum(body: dict[str, Any]) -> str:
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()[:32]


def replay_name(scenario: str, seed: int) -> str:
    """``failures/<scenario>-<seed>.json``, with a file-name-safe scenario name."""
    base = scenario.replace("\\", "/").split("/")[-1].replace(".py:", "-").replace(":", "-")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in base)
    return f"{safe.strip('_') or 'scenario'}-{seed}.json"
