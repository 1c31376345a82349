"""fuzz --out DIR writes DIR/campaign.json in the schema the report reads."""

from __future__ import annotations

import json
from pathlib import Path

from panthor_testbed.fuzz import api
from panthor_testbed.fuzz.report import load_campaign


def test_campaign_json_is_written_and_reads_back(tmp_path: Path) -> None:
    result = api.fuzz(["lost-update", "abba"], runs=40, seed=2, out=str(tmp_path))
    data = json.loads((tmp_path / "campaign.json").read_text())
    assert data["interrupted"] is False and data["seed"] == 2 and data["jobs"] == 1
    assert [s["name"] for s in data["scenarios"]] == ["lost-update", "abba"]
    camp = load_campaign(str(tmp_path))
    assert camp.timeline and camp.timeline[-1][1] == result.runs
    replays = [f["replay"] for s in data["scenarios"] for f in s["failures"]]
    assert replays and all(Path(r).exists() for r in replays)
