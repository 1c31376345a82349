"""tools/mutate.py: enumeration, deterministic selection, and the file is always restored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from panthor_testbed.tools import mutate

TINY = b'''"""A tiny module."""

from errno_like import EINVAL, EIO  # not imported for real: only parsed


def clamp(n: int, limit: int) -> int:
    if n > limit and limit >= 0:
        return limit
    return n


def countdown(n: int) -> int:
    while n > 0:
        n -= 1
    return n


class Box:
    def __init__(self) -> None:
        self.items: list[int] = []

    def put(self, x: int) -> None:
        self.items.append(x)

    def __repr__(self) -> str:
        return f"Box({len(self.items) + 1})"


def err(bad: bool) -> int:
    return -EINVAL if bad else not bad
'''

ERRNOS = {"EIO": 5, "EINVAL": 22, "EDEADLK": 35}


def descriptions(source: bytes) -> list[str]:
    return [f"{m.line}:{m.description}" for m in mutate.enumerate_mutants(source, ERRNOS)]


def test_enumeration_covers_the_operators_and_skips_report_code() -> None:
    d = descriptions(TINY)
    for want in (
        "7:negate condition",
        "7:> -> >=",
        "7:and -> or",
        "7:>= -> >",
        "7:constant 0 -> 1",
        "8:return limit -> return None",
        "8:return limit -> return 0",
        "14:-= -> +=",
        "23:delete call append()",
        "20:delete assignment to self.items",
        "30:errno EINVAL -> EDEADLK",
        "30:remove not",
    ):
        assert want in d, want
    assert not [x for x in d if x.startswith(("1:", "3:", "26:"))]  # docstring, import, __repr__


def test_every_mutant_compiles_and_differs() -> None:
    ms = mutate.enumerate_mutants(TINY, ERRNOS)
    outs = {mutate.apply(TINY, m) for m in ms}
    assert len(outs) == len(ms) and TINY not in outs
    for out in outs:
        compile(out, "<m>", "exec")
    assert [m.id for m in ms] == list(range(1, len(ms) + 1))


def test_enumeration_and_sampling_are_deterministic() -> None:
    a = mutate.enumerate_mutants(TINY, ERRNOS)
    b = mutate.enumerate_mutants(TINY, ERRNOS)
    assert a == b
    s1 = mutate.select(a, [], 5, 7, None)
    s2 = mutate.select(b, [], 5, 7, None)
    assert s1 == s2 and len(s1) == 5 and [m.id for m in s1] == sorted(m.id for m in s1)
    assert mutate.select(a, [], 5, 8, None) != s1
    assert [m.id for m in mutate.select(a, [3, 1], None, 0, None)] == [1, 3]
    assert len(mutate.select(a, [], None, 0, 2)) == 2


SMALL = b"""def countdown(n):
    while n > 0:
        n -= 1
    return n


def double(x):
    return x + x
"""

SMALL_TEST = """from small import countdown, double


def test_countdown():
    assert countdown(3) == 0


def test_double():
    assert double(2) == 4
"""


def write_small(tmp: Path) -> tuple[Path, Path]:
    mod = tmp / "small.py"
    mod.write_bytes(SMALL)
    test = tmp / "test_small.py"
    test.write_text(SMALL_TEST)
    os.utime(mod, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    return mod, test


@pytest.fixture(autouse=True)
def no_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny test runs need no plugin (loading pytest-trio costs seconds)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.mark.slow  # runs pytest in subprocesses
def test_run_kills_times_out_and_restores_the_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mod, test = write_small(tmp_path)
    before = (mod.read_bytes(), mod.stat().st_mtime_ns)
    ms = mutate.enumerate_mutants(SMALL, {})
    by_desc = {m.description: m.id for m in ms}
    ids = [by_desc["-= -> +="], by_desc["constant 0 -> 1"], by_desc["+ -> -"]]
    args = ["--module", str(mod), "--tests", str(test), "--timeout", "6"]
    for i in ids:
        args += ["--only", str(i)]
    json_out = tmp_path / "out.json"
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert mutate.main([*args, "--json", str(json_out)]) == 0
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert (mod.read_bytes(), mod.stat().st_mtime_ns) == before
    assert not mod.with_name("small.py.mutate-orig").exists()
    rows = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line[:1].isdigit()}
    assert rows[str(by_desc["-= -> +="])] == "timeout"  # an endless loop
    assert rows[str(by_desc["+ -> -"])] == "killed"
    assert "summary: 3 mutants" in out
    assert '"status"' in json_out.read_text()


@pytest.mark.slow  # runs pytest in subprocesses
def test_surviving_mutant_is_reported_and_restored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mod, test = write_small(tmp_path)
    ms = mutate.enumerate_mutants(SMALL, {})
    # `return n` -> `return 0` after the loop: n is 0 there anyway (an equivalent mutant).
    survivor = next(m for m in ms if m.line == 4 and m.description.endswith("return 0"))
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        rc = mutate.main(["--module", str(mod), "--tests", str(test), "--only", str(survivor.id)])
    finally:
        os.chdir(cwd)
    assert rc == 0
    out = capsys.readouterr().out
    assert "1 survived" in out and "kill rate 0.0%" in out
    assert mod.read_bytes() == SMALL


@pytest.mark.slow  # runs pytest in subprocesses
def test_ctrl_c_during_a_mutant_restores_the_module(tmp_path: Path) -> None:
    mod = tmp_path / "slow.py"
    src = b"def nap():\n    return 1\n"
    mod.write_bytes(src)
    # Every mutant makes the test sleep: the tool is surely inside a mutant run.
    (tmp_path / "test_slow.py").write_text(
        "import os\nimport time\n\nfrom slow import nap\n\n\ndef test_nap():\n"
        "    if os.path.exists('slow.py.mutate-orig'):\n        time.sleep(60)\n"
        "    assert nap() is not None\n"
    )
    backup = mod.with_name("slow.py.mutate-orig")
    tool = Path(mutate.__file__)
    proc = subprocess.Popen(
        [sys.executable, str(tool), "--module", "slow.py", "--tests", "test_slow.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # As a terminal would start it: a test run in the background of a
        # non-interactive shell inherits SIGINT ignored, and so would the tool.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        for _ in range(600):  # until the first mutant is applied
            if backup.exists() and mod.read_bytes() != src:
                break
            time.sleep(0.05)
        assert mod.read_bytes() != src
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert mod.read_bytes() == src and not backup.exists()


def test_a_stale_backup_is_restored_first(tmp_path: Path) -> None:
    mod = tmp_path / "m.py"
    mod.write_bytes(b"x = 2\n")  # left mutated by a run that was killed -9
    mod.with_name("m.py.mutate-orig").write_bytes(b"x = 1\n")
    assert mutate.main(["--module", str(mod), "--list"]) == 0
    assert mod.read_bytes() == b"x = 1\n"
    assert not mod.with_name("m.py.mutate-orig").exists()
