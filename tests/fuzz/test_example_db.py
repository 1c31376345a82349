"""--example-db: a second campaign starts from the first one's failing sequences."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from panthor_testbed.fuzz import api

from .test_engine import MAGIC


def _second_starts_from_the_first(tmp_path: Path, db: str) -> None:
    path = tmp_path / "magic.py"
    path.write_text(MAGIC)
    # By a name that is the same in every session: a scenario file's run seeds
    # derive from its name as given (pytest's tmp_path changes).
    sc = "magic.py:magic"
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        _second_from(sc, db)
    finally:
        os.chdir(old)


def _second_from(sc: str, db: str) -> None:
    first = api.fuzz(sc, runs=600, seed=5, strategy="random", example_db=db)
    (f1,) = first.scenarios[0].failures
    assert f1.run > 0
    # Another seed: without the database its first failure is elsewhere.
    second = api.fuzz(sc, runs=600, seed=11, strategy="random", example_db=db)
    (f2,) = second.scenarios[0].failures
    assert f2.run == 0  # the saved sequence is replayed first and fails again


def test_directory_database(tmp_path: Path) -> None:
    _second_starts_from_the_first(tmp_path, str(tmp_path / "db"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed here (CI installs Debian's redis-server)")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_redis_database(tmp_path: Path, redis_url: str) -> None:
    _second_starts_from_the_first(tmp_path, redis_url)
