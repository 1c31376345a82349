"""A shared example database: choice sequences kept from one campaign for the next.

``--example-db DIR`` or ``--example-db redis://HOST:PORT[/DB]`` goes through
Hypothesis's own ``DirectoryBasedExampleDatabase`` / ``RedisExampleDatabase``
(``hypothesis.extra.redis``), so several machines (a CI fleet) can share one.

Keys are per scenario and parameters (``panthor-testbed:<scenario>:<params
as JSON>``), one for failing sequences and one (``...:interesting``) for
sequences that reached new coverage (:meth:`ExampleDb.save_interesting`,
for the coverage planner). A value is one run's choice list (the encoding
of ``Kernel.choices``) as JSON. A new campaign replays a scenario's
sequences first, failing ones then interesting ones, each set sorted by
its bytes so the order never depends on the database's, as ``prefix``
plans: each steers its run as far as it still fits, then the run's own
strategy goes on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from .errors import InputError

KEY_PREFIX = b"panthor-testbed:"
MAX_PREFIXES = 4096  # sequences replayed per scenario at most (the sorted first ones)


class ExampleDb:
    """A Hypothesis example database holding choice sequences."""

    def __init__(self, db: Any, where: str, client: Any = None) -> None:
        self.db = db
        self.where = where
        self._client = client

    @classmethod
    def open(cls, where: str) -> ExampleDb:
        """``DIR`` (created if missing) or ``redis://HOST:PORT[/DB]``; InputError if unusable."""
        if where.startswith("redis://"):
            return cls._redis(where)
        if "://" in where:
            raise InputError(f"--example-db {where}: expected a directory or redis://HOST:PORT")
        from hypothesis.database import DirectoryBasedExampleDatabase

        if os.path.exists(where) and not os.path.isdir(where):
            raise InputError(f"--example-db {where}: not a directory")
        try:
            os.makedirs(where, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--example-db {where}: cannot create: {exc.strerror}") from None
        return cls(DirectoryBasedExampleDatabase(where), where)

    @classmethod
    def _redis(cls, where: str) -> ExampleDb:
        try:
            import redis
            from hypothesis.extra.redis import RedisExampleDatabase
        except ImportError:
            raise InputError(
                f"--example-db {where}: needs the redis package (pip install redis)"
            ) from None
        url = urlparse(where)
        if not url.hostname or url.port is None:
            raise InputError(f"--example-db {where}: expected redis://HOST:PORT")
        client = redis.Redis.from_url(where, socket_connect_timeout=5)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise InputError(f"--example-db {where}: cannot reach Redis: {exc}") from None
        return cls(RedisExampleDatabase(client, key_prefix=KEY_PREFIX), where, client)

    @staticmethod
    def key(scenario: str, params: Mapping[str, Any]) -> bytes:
        """The key of a scenario with these parameters (JSON, sorted: stable everywhere)."""
        text = json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
        return KEY_PREFIX + f"{scenario}:{text}".encode()

    @staticmethod
    def encode(choices: Iterable[int]) -> bytes:
        return json.dumps([int(c) for c in choices], separators=(",", ":")).encode()

    @staticmethod
    def decode(value: bytes) -> tuple[int, ...] | None:
        try:
            data = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in data
        ):
            return None  # not ours, or damaged: skipped
        return tuple(data)

    def save_failing(self, key: bytes, choices: Sequence[int]) -> None:
        """Keep a failing run's choices (the next campaign starts from them)."""
        self.db.save(key, self.encode(choices))

    def save_interesting(self, key: bytes, choices: Sequence[int]) -> None:
        """Keep a run that reached new coverage (the coverage planner calls this)."""
        self.db.save(key + b":interesting", self.encode(choices))

    def _fetch(self, key: bytes) -> list[tuple[int, ...]]:
        values = sorted(set(self.db.fetch(key)))
        out = []
        for v in values:
            seq = self.decode(v)
            if seq is not None:
                out.append(seq)
        return out

    def failing(self, key: bytes) -> list[tuple[int, ...]]:
        return self._fetch(key)

    def interesting(self, key: bytes) -> list[tuple[int, ...]]:
        return self._fetch(key + b":interesting")

    def prefixes(self, key: bytes) -> list[tuple[int, ...]]:
        """What a new campaign replays first: failing, then interesting (deduplicated)."""
        out: list[tuple[int, ...]] = []
        seen: set[tuple[int, ...]] = set()
        for seq in [*self.failing(key), *self.interesting(key)]:
            if seq not in seen:
                seen.add(seq)
                out.append(seq)
        return out[:MAX_PREFIXES]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


__all__ = ["KEY_PREFIX", "ExampleDb"]
