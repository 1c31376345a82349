"""Replay files: everything needed to re-run one failing schedule exactly.

JSON with a ``format`` version, the package version, scenario and parameters,
strategy and seed, the full choice list, injected bugs, the kernel config,
the failure, the trace digest, the lockdep dependencies from earlier runs the
failure relied on, and a checksum over all of it. ``load`` refuses anything
it cannot run exactly, with one line saying why.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from panthor_testbed import __version__

FORMAT = 1


class ReplayFileError(Exception):
    """The file cannot be replayed (the CLI turns it into exit 2)."""


@dataclass
class ReplayFile:
    scenario: str
    params: dict[str, Any]
    strategy: dict[str, Any]
    seed: int
    run_id: int
    choices: list[int]
    inject: list[str]
    config: dict[str, Any]
    failure: dict[str, Any]
    digest: str
    steps: int
    lockdep_edges: list[dict[str, Any]] = field(default_factory=list)
    lockdep_reported: list[list[str]] = field(default_factory=list)
    version: str = __version__
    note: str = ""

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "version": self.version,
            "scenario": self.scenario,
            "params": self.params,
            "strategy": self.strategy,
            "seed": self.seed,
            "run_id": self.run_id,
            "inject": self.inject,
            "config": self.config,
            "failure": self.failure,
            "digest": self.digest,
            "steps": self.steps,
            "lockdep_edges": self.lockdep_edges,
            "lockdep_reported": self.lockdep_reported,
            "choices": self.choices,
        }
        if self.note:
            out["note"] = self.note
        return out

    def to_json(self) -> dict[str, Any]:
        body = self.body()
        body["checksum"] = checksum(body)
        return body

    def save(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_json(), f, indent=1)
            f.write("\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> ReplayFile:
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise ReplayFileError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ReplayFileError(f"{path}: cannot read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ReplayFileError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_json(data, path)

    @classmethod
    def from_json(cls, data: object, where: str = "replay file") -> ReplayFile:
        if not isinstance(data, dict):
            raise ReplayFileError(f"{where}: not a replay file (expected a JSON object)")
        fmt = data.get("format")
        if fmt != FORMAT:
            raise ReplayFileError(
                f"{where}: unsupported replay format {fmt!r} (this tool reads {FORMAT})"
            )
        if "checksum" in data:
            body = {k: v for k, v in data.items() if k != "checksum"}
            if data["checksum"] != checksum(body):
                raise ReplayFileError(
                    f"{where}: checksum mismatch, the file was modified "
                    f'(delete the "checksum" field to replay an edited file)'
                )

        def need(name: str, typ: type | tuple[type, ...]) -> Any:
            if name not in data:
                raise ReplayFileError(f"{where}: missing field {name!r}")
            value = data[name]
            if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
                tname = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
                raise ReplayFileError(f"{where}: field {name!r} must be {tname}")
            return value

        choices = need("choices", list)
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in choices):
            raise ReplayFileError(f"{where}: field 'choices' must be a list of integers")
        inject = need("inject", list)
        if not all(isinstance(s, str) for s in inject):
            raise ReplayFileError(f"{where}: field 'inject' must be a list of strings")
        edges = data.get("lockdep_edges", [])
        if not isinstance(edges, list) or not all(_edge_ok(e) for e in edges):
            raise ReplayFileError(f"{where}: field 'lockdep_edges' is malformed")
        reported = data.get("lockdep_reported", [])
        if not isinstance(reported, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
            for p in reported
        ):
            raise ReplayFileError(f"{where}: field 'lockdep_reported' is malformed")
        failure = need("failure", dict)
        if not isinstance(failure.get("kind"), str):
            raise ReplayFileError(f"{where}: field 'failure' needs a 'kind'")
        return cls(
            scenario=need("scenario", str),
            params=need("params", dict),
            strategy=need("strategy", dict),
            seed=need("seed", int),
            run_id=need("run_id", int),
            choices=list(choices),
            inject=list(inject),
            config=need("config", dict),
            failure=failure,
            digest=need("digest", str),
            steps=need("steps", int),
            lockdep_edges=list(edges),
            lockdep_reported=[list(p) for p in reported],
            version=str(data.get("version", "?")),
            note=str(data.get("note", "")),
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


def checksum(body: dict[str, Any]) -> str:
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()[:32]


def replay_name(scenario: str, seed: int) -> str:
    """``failures/<scenario>-<seed>.json``, with a file-name-safe scenario name."""
    base = scenario.replace("\\", "/").split("/")[-1].replace(".py:", "-").replace(":", "-")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in base)
    return f"{safe.strip('_') or 'scenario'}-{seed}.json"
