"""The documentation stands alone and its examples run as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from panthor_testbed.fuzz.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), flags=re.S)


def test_no_link_leaves_the_repository() -> None:
    for doc in DOCS:
        text = doc.read_text()
        assert "../shared" not in text and "shared/design" not in text, doc
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if "://" in target:
                continue  # a tool's own site (Trio, Perfetto)
            assert (doc.parent / target).exists(), (doc, target)
        for name in re.findall(r"`docs/([\w-]+\.md)`", text):
            assert (ROOT / "docs" / name).exists(), (doc, name)


def test_the_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (example,) = _blocks(ROOT / "docs" / "api.md", "python")[:1]
    exec(compile(example, "docs/api.md", "exec"), {})
    assert (tmp_path / "lost-update.min.json").exists()


def test_the_readme_scenario_example_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    scenario, api_use = (b for b in _blocks(ROOT / "README.md", "python") if "cache_race" in b)
    (tmp_path / "my_scenarios.py").write_text(scenario)
    code = main(
        ["fuzz", "my_scenarios.py:cache_race", "--param", "loops=1", "--runs", "300", "--json"]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and doc["failures"] >= 1
    exec(compile(api_use, "README.md", "exec"), {})


async def test_a_completion_started_with_a_count_as_docs_sched_md_says() -> None:
    from panthor_testbed.sched import Completion, Kernel, wait_for_completion
    from panthor_testbed.sched.core.harness import arun

    passed: list[str] = []

    async def scenario(k: Kernel) -> None:
        c = Completion("slots")
        c.done = 2

        async def waiter(name: str) -> None:
            await wait_for_completion(c)
            passed.append(name)

        for name in ("a", "b", "c"):
            k.spawn(waiter, name, name=name)

    k = await arun(scenario)
    assert passed == ["a", "b"]  # two pass, the third waits for a complete()
    assert k.primary_failure is not None and k.primary_failure.kind == "deadlock"


def test_the_readme_tour_output_is_real(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every `$ panthor-testbed ...` block of the README, run in order in a fresh
    directory, prints what the README shows (wall-clock seconds aside)."""
    monkeypatch.chdir(tmp_path)
    seconds = re.compile(r"\d+\.\d\ds\b")
    ran = 0
    for block in _blocks(ROOT / "README.md", "console"):
        if "$ panthor-testbed bench" in block:
            continue  # machine-dependent figures
        for cmd in re.split(r"^\$ ", block, flags=re.M)[1:]:
            line, _, shown = cmd.partition("\n")
            argv = line.split()[1:]
            main(argv)
            out = capsys.readouterr().out
            assert seconds.sub("T", out) == seconds.sub("T", shown), line
            ran += 1
    assert ran >= 7
