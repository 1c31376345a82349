"""`panthor-testbed report DIR`: reading a campaign folder, the page's content, the layout.

What a reader sees in a real browser is tested in test_report_browser.py;
these check the parts a browser cannot tell apart (exit statuses, the
tolerance of absent parts, determinism, the graph layout).
"""

from __future__ import annotations

import json
import random
import re
import sys
import types
from html.parser import HTMLParser
from pathlib import Path

import pytest

from panthor_testbed.fuzz import api
from panthor_testbed.fuzz.cli import main
from panthor_testbed.fuzz.report import load_campaign, seed_functions
from panthor_testbed.fuzz.report_svg import LockEdge, lock_graph_svg, rate_series

from .campaign_fixture import make_campaign


def _report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


class _Page(HTMLParser):
    """The tags, attributes and text of a page (no browser)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Page:
    p = _Page()
    p.feed(path.read_text())
    return p


# ---------------------------------------------------------------------- the command


def test_report_writes_one_self_contained_page(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_campaign(tmp_path / "failures")
    code, out, err = _report(capsys, "failures")
    assert (code, err) == (0, "")
    assert out == (
        "wrote failures/report.html: 3 distinct failures (3 shrunk), 68/90 seed functions "
        "reached, 7 lock pairs\n"
    )
    page = _parse(tmp_path / "failures" / "report.html")
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags
    assert tags.count("svg") == 2
    for _, attrs in page.tags:  # nothing is loaded from anywhere
        for name in ("src", "href"):
            value = attrs.get(name)
            assert value is None or value.startswith("#"), attrs
    csp = [a for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert csp and "default-src 'none'" in str(csp[0]["content"])
    # Nothing but the page was written into the folder (shrinking happened in memory).
    assert sorted(p.name for p in (tmp_path / "failures").iterdir() if "min" in p.name) == []


def test_report_json_and_output_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_campaign(tmp_path / "c", coverage=False)
    code, out, _ = _report(capsys, "c", "-o", "out/page.html", "--json", "--shrink-runs", "0")
    assert code == 0
    assert json.loads(out) == {
        "output": "out/page.html",
        "failures": 3,
        "shrunk": 0,
        "functions_reached": None,
        "functions_total": 90,
        "lock_pairs": None,
    }
    text = (tmp_path / "out" / "page.html").read_text()
    assert text.count("Interleaving as found (not shrunk).") == 3


def test_the_page_is_deterministic(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    make_campaign(tmp_path / "c")
    assert main(["report", "c", "-o", "a.html"]) == 0
    assert main(["report", "c", "-o", "b.html"]) == 0
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "report {d}: no such directory"),
        (lambda d: d.write_text("x"), "report {d}: not a directory"),
        (lambda d: d.mkdir(), "report {d}: no campaign.json in it (is it a `fuzz --out` folder?)"),
        (
            lambda d: (d.mkdir(), (d / "campaign.json").write_text("{")),
            "{d}/campaign.json: not JSON (Expecting property name enclosed in double quotes "
            "at line 1)",
        ),
        (
            lambda d: (d.mkdir(), (d / "campaign.json").write_text("[]")),
            "{d}/campaign.json: the file: expected an object",
        ),
        (
            lambda d: (
                d.mkdir(),
                (d / "campaign.json").write_text('{"scenarios": [{"name": "x", "runs": -1}]}'),
            ),
            "{d}/campaign.json: scenarios[0].runs: expected a non-negative integer, got -1",
        ),
        (
            lambda d: (
                d.mkdir(),
                (d / "campaign.json").write_text(
                    '{"scenarios": [{"name": "x", "failures": [{"message": "m"}]}]}'
                ),
            ),
            "{d}/campaign.json: scenarios[0].failures[0].kind: expected a string, got None",
        ),
        (
            lambda d: (
                d.mkdir(),
                (d / "campaign.json").write_text('{"timeline": [[1, 2, 3]]}'),
            ),
            "{d}/campaign.json: timeline[0]: expected [elapsed_s, total_runs]",
        ),
        (
            lambda d: (
                d.mkdir(),
                (d / "campaign.json").write_text('{"coverage": {"lock_pairs": [["a", "b"]]}}'),
            ),
            "{d}/campaign.json: coverage.lock_pairs[0]: expected [from, to, count]",
        ),
    ],
)
def test_a_bad_dir_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    setup: object,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    d = Path("camp")
    assert callable(setup)
    setup(d)
    code, out, err = _report(capsys, "camp")
    assert (code, out) == (2, "")
    assert err == f"panthor-testbed: error: {message.format(d='camp')}\n"


def test_an_unwritable_output_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "campaign.json").write_text("{}")
    code, out, err = _report(capsys, "c", "-o", "c")
    assert (code, out, err) == (2, "", "panthor-testbed: error: --output c: is a directory\n")
    code, _, err = _report(capsys, "c", "--shrink-runs", "-1")
    assert code == 2 and "--shrink-runs" in err


# ---------------------------------------------------------------------- tolerance


def test_an_empty_campaign_json_gives_a_page(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "campaign.json").write_text("{}")
    code, out, _ = _report(capsys, "c")
    assert code == 0 and "0 distinct failures" in out
    text = (tmp_path / "c" / "report.html").read_text()
    for line in (
        "No scenario ran.",
        "No failure was found.",
        "Coverage was not collected in this campaign",
        "Lock-order pairs were not recorded in this campaign.",
        "The campaign recorded no timeline.",
    ):
        assert line in text


def test_a_moved_folder_finds_its_replay_files_and_uses_min_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    make_campaign(
        tmp_path / "run" / "failures", scenarios=("lost-update",), shrink=("lost-update",)
    )
    moved = tmp_path / "archive" / "nightly-1"
    moved.parent.mkdir()
    (tmp_path / "run" / "failures").rename(moved)
    (small,) = moved.glob("*.min.json")
    note = api.read_replay(small).note
    code, _, _ = _report(capsys, "archive/nightly-1")
    assert code == 0
    text = (moved / "report.html").read_text()
    assert f"Shrunk interleaving: {note}</p>" in text  # read, not shrunk again
    assert "shrunk here" not in text
    assert f"panthor-testbed replay archive/nightly-1/{small.name} --trace" in text


def test_missing_and_broken_replay_files_are_named_on_the_page(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = make_campaign(tmp_path / "c", scenarios=("lost-update", "abba"), clean=())
    lost, abba = (s["failures"][0]["replay"] for s in data["scenarios"])
    (tmp_path / lost).unlink()
    (tmp_path / abba).write_text("{}")
    assert main(["report", "c"]) == 0
    text = (tmp_path / "c" / "report.html").read_text()
    assert f"No interleaving: no replay file ({lost} is not in c)" in text
    assert "No interleaving: the replay file cannot be read: " in text
    assert "missing" in text


def test_the_same_failure_found_twice_is_one_entry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = make_campaign(tmp_path / "c", scenarios=("lost-update",), clean=())
    again = dict(data["scenarios"][0], name="lost-update (second worker)")
    data["scenarios"].append(again)
    (tmp_path / "c" / "campaign.json").write_text(json.dumps(data))
    code, out, _ = _report(capsys, "c")
    assert code == 0 and "1 distinct failure " in out
    text = (tmp_path / "c" / "report.html").read_text()
    assert "Failures (1 distinct)" in text and "1 distinct (2 found)" in text
    assert text.count("lost-update (second worker)") == 2  # scenario table and occurrence


def test_a_user_scenario_that_moved_away_is_reported_not_fatal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text(
        "from panthor_testbed.sched import InvariantViolation\n"
        "async def boom(k):\n    raise InvariantViolation('boom')\n"
    )
    result = api.fuzz("mine.py:boom", runs=3, out="c")
    (tmp_path / "c" / "campaign.json").write_text(
        json.dumps({"scenarios": [s.to_json() for s in result.scenarios]})
    )
    (tmp_path / "mine.py").unlink()
    code, out, _ = _report(capsys, "c")
    assert code == 0 and "1 distinct failure (0 shrunk)" in out
    text = (tmp_path / "c" / "report.html").read_text()
    assert re.search(r"No interleaving: cannot replay c/mine-boom-\d+\.json: ", text)


# ---------------------------------------------------------------------- the parts


def test_seed_functions_come_from_the_coverage_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = seed_functions()
    assert len(names) == 90 == len(set(names))
    assert names[0] == "alloc_pt" and names[-1] == "panthor_mmu_pt_cache_fini"
    fake = types.ModuleType("panthor_testbed.fuzz.coverage")
    fake.SEED_FUNCTIONS = ("a", "b")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "panthor_testbed.fuzz.coverage", fake)
    assert seed_functions() == ("a", "b")


def test_coverage_counts_and_unknown_names(tmp_path: Path) -> None:
    (tmp_path / "campaign.json").write_text(
        json.dumps({"coverage": {"functions": {"alloc_pt": 3, "helper": 9}}})
    )
    camp = load_campaign(str(tmp_path))
    assert camp.functions == {"alloc_pt": 3, "helper": 9}
    assert main(["report", str(tmp_path)]) == 0
    text = (tmp_path / "report.html").read_text()
    assert "<strong>1 of 90</strong> seed functions reached" in text
    assert "Also counted (not seed functions): <code>helper</code> 9" in text


def test_the_lock_graph_layout_is_deterministic_and_marks_inversions() -> None:
    pairs = [("A", "B", 5), ("B", "C", 2), ("C", "A", 1), ("C", "D", 7), ("E", "E", 1)]
    edges = [LockEdge(a, b, n) for a, b, n in pairs]
    svg = lock_graph_svg(edges)
    shuffled = edges[:]
    random.Random(0).shuffle(shuffled)
    assert lock_graph_svg(shuffled) == svg
    # A -> B -> C -> A is a cycle; C -> D is not; E nested in itself is.
    assert svg.count('<g class="pair inverted">') == 4
    assert svg.count('<g class="pair">') == 1
    assert svg.count('<g class="lock inverted">') == 4 and svg.count('<g class="lock">') == 1
    assert "<title>C -&gt; D: 7 times</title>" in svg
    assert lock_graph_svg([]) == ""


def test_no_lock_box_overlaps_another_in_a_bigger_graph() -> None:
    rng = random.Random(3)
    locks = [f"&lock_{i}" for i in range(14)]
    pairs = {tuple(rng.sample(locks, 2)) for _ in range(30)}
    svg = lock_graph_svg([LockEdge(a, b, 1) for a, b in sorted(pairs)])
    rects = [
        tuple(float(v) for v in m)
        for m in re.findall(
            r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', svg
        )
    ]
    assert len(rects) == len({a for p in pairs for a in p})
    for i, a in enumerate(rects):
        for b in rects[i + 1 :]:
            assert (
                a[0] + a[2] <= b[0]
                or b[0] + b[2] <= a[0]
                or a[1] + a[3] <= b[1]
                or b[1] + b[3] <= a[1]
            ), (a, b)


def test_rate_series() -> None:
    assert rate_series([]) == []
    assert rate_series([(1.0, 10), (2.0, 30), (2.0, 31), (4.0, 31)]) == [
        (1.0, 10.0),
        (2.0, 20.0),
        (4.0, 0.5),
    ]
