"""The trace: the per-thread table, Chrome trace-event JSON, the digest."""

from __future__ import annotations

import json

from panthor_testbed.fuzz.scenario import get_scenario
from panthor_testbed.sched import RandomWalk, Replay
from panthor_testbed.sched.core.harness import run


def test_table_has_one_column_per_thread() -> None:
    k = run(get_scenario("abba").fn, strategy=RandomWalk(1))
    table = k.trace.render_table()
    header = table.splitlines()[0]
    assert "T0 init" in header and "T1 thread-a" in header and "T2 thread-b" in header
    lock_rows = [line for line in table.splitlines() if "lock A" in line and "unlock" not in line]
    assert lock_rows


def test_chrome_trace_has_threads_events_and_lock_slices() -> None:
    k = run(get_scenario("abba").fn, strategy=RandomWalk(4), config=None)
    doc = k.trace.to_chrome()
    json.dumps(doc)  # serialisable
    events = doc["traceEvents"]
    names = {e["args"]["name"] for e in events if e["ph"] == "M"}
    assert {"T0 init", "T1 thread-a", "T2 thread-b"} <= names
    assert any(e["ph"] == "i" and e["name"] == "lock A" for e in events)
    if k.primary_failure is None:
        assert any(e["ph"] == "X" and e["name"] == "hold A" for e in events)


def test_digest_is_stable_and_sensitive() -> None:
    abba = get_scenario("abba").fn
    a = run(abba, strategy=RandomWalk(8))
    b = run(abba, strategy=Replay(a.choices))
    assert a.trace.digest() == b.trace.digest()
    other = next(
        run(abba, strategy=RandomWalk(s))
        for s in range(100)
        if run(abba, strategy=RandomWalk(s)).choices != a.choices
    )
    assert other.trace.digest() != a.trace.digest()
