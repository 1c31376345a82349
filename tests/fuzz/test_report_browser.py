"""The campaign report as a reader sees it: opened in headless Chromium (Debian's package).

The page carries a Content-Security-Policy that forbids scripts and any load
from elsewhere, so what the browser shows here is the page without
JavaScript. Screenshots (the whole page, the lock graph, the runs/s chart)
are left in the test's tmp dir and their paths printed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from panthor_testbed.fuzz.cli import main
from panthor_testbed.fuzz.report import seed_functions

from .campaign_fixture import LOCK_PAIRS, functions_coverage, make_campaign, unreached

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

if TYPE_CHECKING:
    from selenium.webdriver import Chrome
    from selenium.webdriver.remote.webdriver import WebDriver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chrome]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        why = "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI must run this test
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _visible_text(driver: WebDriver, css: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]


def test_the_report_page_in_a_real_browser(
    browser: WebDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.by import By

    monkeypatch.chdir(tmp_path)
    camp = make_campaign(tmp_path / "failures", shrink=("abba",))
    assert main(["report", "failures", "-o", "report.html"]) == 0
    page = tmp_path / "report.html"
    browser.get(page.as_uri())

    assert browser.title == "Campaign report: failures"
    assert browser.find_elements(By.TAG_NAME, "script") == []
    text = browser.find_element(By.TAG_NAME, "body").text  # rendered, visible text only

    # The failures, each with its shrunk interleaving (a column per thread).
    failures = [f for s in camp["scenarios"] for f in s["failures"]]
    assert len(failures) == 3
    assert "failures\n3 distinct (3 found)" in text
    articles = browser.find_elements(By.CSS_SELECTOR, "article.failure")
    assert len(articles) == 3 and all(a.is_displayed() for a in articles)
    for f, article in zip(failures, articles, strict=True):
        shown = article.text
        assert f["message"] in shown and f["kind"] in shown
        assert "Shrunk interleaving" in shown and "preemption" in shown
        heads = [th.text for th in article.find_elements(By.CSS_SELECTOR, "table.interleaving th")]
        assert heads[0] == "step" and heads[1] == "T0 init" and len(heads) >= 3
        fail_cells = article.find_elements(By.CSS_SELECTOR, "table.interleaving td.fail")
        assert fail_cells and fail_cells[-1].is_displayed()
        assert fail_cells[-1].text.startswith(f"FAIL {f['kind']}")
    lost = articles[0].text
    assert "1 preemption: at step 3 switch to T2 incr-1 (preempting T1 incr-0)" in lost
    assert "panthor-testbed replay failures/lost-update-" in lost
    assert "abba-" in articles[1].text and ".min.json --trace" in articles[1].text

    # The 90 seed functions: which were reached and how often.
    names = seed_functions()
    counts = functions_coverage()
    missed = unreached(names)
    assert f"{len(names) - len(missed)} of {len(names)} seed functions reached" in text
    rows = browser.find_elements(By.CSS_SELECTOR, "table.functions tbody tr")
    assert len(rows) == 90
    for row, name in zip(rows, names, strict=True):
        cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        assert cells[1] == name and cells[2] == str(counts[name])
        assert cells[3] == ("not reached" if name in missed else "reached")
    assert "Not reached: " + ", ".join(missed) in text

    # The lock-order graph: every lock class drawn, the inversion marked.
    graph = browser.find_element(By.CSS_SELECTOR, "svg.lockgraph")
    assert graph.is_displayed() and graph.size["width"] > 400 and graph.size["height"] > 100
    labels = _visible_text(browser, "svg.lockgraph g.lock text")
    locks = sorted({p[0] for p in LOCK_PAIRS} | {p[1] for p in LOCK_PAIRS})
    assert sorted(labels) == locks
    inverted = browser.find_elements(By.CSS_SELECTOR, "svg.lockgraph g.pair.inverted")
    assert len(inverted) == 2  # op_lock -> slots_lock and back
    counts_drawn = _visible_text(browser, "svg.lockgraph text.count")
    assert sorted(counts_drawn) == sorted(f"\u00d7{p[2]}" for p in LOCK_PAIRS)
    boxes = [
        (e.location["x"], e.location["y"], e.size["width"], e.size["height"])
        for e in browser.find_elements(By.CSS_SELECTOR, "svg.lockgraph g.lock rect")
    ]
    for i, a in enumerate(boxes):  # no two lock boxes overlap
        for b in boxes[i + 1 :]:
            apart_x = a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0]
            apart_y = a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]
            assert apart_x or apart_y, (a, b)

    # Runs/s over time.
    chart = browser.find_element(By.CSS_SELECTOR, "svg.rate")
    assert chart.is_displayed() and chart.size["width"] >= 700
    assert chart.find_elements(By.CSS_SELECTOR, "polyline.series")
    last_t, total = camp["timeline"][-1]
    assert total == sum(s["runs"] for s in camp["scenarios"])
    assert f"mean {total / last_t:.1f} runs/s" in chart.text
    assert "elapsed (s)" in chart.text

    # Nothing was blocked or failed to load (no external resources).
    logs: list[dict[str, Any]] = browser.get_log("browser")  # type: ignore[attr-defined]
    assert [e for e in logs if e.get("level") == "SEVERE"] == []

    shots = _screenshots(browser, tmp_path, graph, chart)
    print("screenshots:", *map(str, shots))
    for shot in shots:
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def _screenshots(browser: WebDriver, tmp_path: Path, graph: Any, chart: Any) -> list[Path]:
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, int(height) + 40)
    whole = tmp_path / "report.png"
    browser.save_screenshot(str(whole))
    graph_png = tmp_path / "report-lockgraph.png"
    graph.screenshot(str(graph_png))
    chart_png = tmp_path / "report-rate.png"
    chart.screenshot(str(chart_png))
    return [whole, graph_png, chart_png]


def test_a_minimal_campaign_page_in_a_real_browser(
    browser: WebDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """campaign.json with only its scenarios (no coverage, timeline or replay files)."""
    from selenium.webdriver.common.by import By

    monkeypatch.chdir(tmp_path)
    make_campaign(tmp_path / "c", scenarios=("lost-update",), coverage=False, timeline=False)
    for f in (tmp_path / "c").glob("*-*.json"):
        f.unlink()  # the replay file is gone
    data = json.loads((tmp_path / "c" / "campaign.json").read_text())
    data = {"scenarios": data["scenarios"]}
    (tmp_path / "c" / "campaign.json").write_text(json.dumps(data))
    assert main(["report", "c"]) == 0
    browser.get((tmp_path / "c" / "report.html").as_uri())
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "counter is 1 after 2 increments" in text
    assert "No interleaving: no replay file (c/lost-update-" in text
    assert "Coverage was not collected in this campaign" in text
    assert "Lock-order pairs were not recorded in this campaign." in text
    assert "The campaign recorded no timeline." in text
    browser.save_screenshot(str(tmp_path / "minimal.png"))
