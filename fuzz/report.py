"""``panthor-testbed report DIR``: one static HTML page for a campaign's output folder.

Reads ``DIR/campaign.json`` (written by ``fuzz --out DIR``; ``docs/report.md``
lists the fields read and which may be absent) and the replay files beside
it, and writes a single self-contained page: no script, no stylesheet or
font from elsewhere (a Content-Security-Policy says so to the browser), the
pictures inline SVG. It shows:

* the campaign (strategy, seed, workers, runs, time) and each scenario;
* each distinct failure (by signature), where it was found, and its
  interleaving, shrunk: from ``<replay>.min.json`` when the campaign wrote
  one, else by running ``shrink`` through the API (at most ``shrink_runs``
  executions; nothing is written into DIR but the page);
* the coverage of the 90 seed functions (reached or not, how often);
* the lock-order graph as seen, and runs/s over time.

The page is deterministic: the same folder gives the same bytes.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

from panthor_testbed import __version__

from .errors import InputError, check_output_file, describe_os_error
from .report_svg import LockEdge, lock_graph_svg, rate_series, runs_per_second_svg

if TYPE_CHECKING:
    from panthor_testbed.sched.core.trace import Trace

    from .interleaving import Interleaving

__all__ = [
    "CAMPAIGN_FILE",
    "DEFAULT_SHRINK_RUNS",
    "Campaign",
    "FailureGroup",
    "ReportSummary",
    "build_report",
    "load_campaign",
    "render_html",
    "seed_functions",
    "write_report",
]

CAMPAIGN_FILE = "campaign.json"
DEFAULT_OUTPUT = "report.html"
DEFAULT_SHRINK_RUNS = 300
TRACE_ROWS = 400  # events of an interleaving shown (the last ones)


def seed_functions() -> tuple[str, ...]:
    """The seed's 90 functions in source order (``panthor_testbed.fuzz.coverage`` owns the list)."""
    return tuple(importlib.import_module(f"{__package__}.coverage").SEED_FUNCTIONS)


# ---------------------------------------------------------------------- reading DIR


@dataclass
class Campaign:
    """``DIR/campaign.json``, checked; absent optional parts are None or empty."""

    dir: str
    data: dict[str, Any]
    scenarios: list[dict[str, Any]]
    timeline: list[tuple[float, int]]
    functions: dict[str, int] | None  # coverage.functions
    lock_pairs: list[LockEdge] | None  # coverage.lock_pairs
    features: int | None  # coverage.features


class _Check:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, path: str, what: str) -> InputError:
        return InputError(f"{self.where}: {path}: {what}")

    def obj(self, v: object, path: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise self.fail(path, "expected an object")
        return v

    def lst(self, v: object, path: str) -> list[Any]:
        if not isinstance(v, list):
            raise self.fail(path, "expected a list")
        return v

    def num(self, v: object, path: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(path, f"expected a number, got {v!r}")
        if v < 0:
            raise self.fail(path, f"expected a number >= 0, got {v!r}")
        return float(v)

    def count(self, v: object, path: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise self.fail(path, f"expected a non-negative integer, got {v!r}")
        return v

    def text(self, v: object, path: str) -> str:
        if not isinstance(v, str):
            raise self.fail(path, f"expected a string, got {v!r}")
        return v


def load_campaign(directory: str) -> Campaign:
    """Read and check DIR/campaign.json (InputError with one line when DIR is no campaign)."""
    if not os.path.exists(directory):
        raise InputError(f"report {directory}: no such directory")
    if not os.path.isdir(directory):
        raise InputError(f"report {directory}: not a directory")
    path = os.path.join(directory, CAMPAIGN_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise InputError(
            f"report {directory}: no {CAMPAIGN_FILE} in it (is it a `fuzz --out` folder?)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        why = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        raise InputError(f"{path}: cannot read: {why}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    c = _Check(path)
    data = c.obj(raw, "the file")
    scenarios = []
    for i, s in enumerate(c.lst(data.get("scenarios", []), "scenarios")):
        where = f"scenarios[{i}]"
        s = c.obj(s, where)
        c.text(s.get("name"), f"{where}.name")
        for key in ("runs", "steps"):
            if key in s:
                c.count(s[key], f"{where}.{key}")
        if "elapsed_s" in s:
            c.num(s["elapsed_s"], f"{where}.elapsed_s")
        for j, raw_f in enumerate(c.lst(s.get("failures", []), f"{where}.failures")):
            fw = f"{where}.failures[{j}]"
            fd = c.obj(raw_f, fw)
            c.text(fd.get("kind"), f"{fw}.kind")
            c.text(fd.get("message", ""), f"{fw}.message")
            for key in ("replay", "witness"):
                if fd.get(key) is not None:
                    c.text(fd[key], f"{fw}.{key}")
            for key in ("run", "seed"):
                if key in fd:
                    c.count(fd[key], f"{fw}.{key}")
        scenarios.append(s)
    timeline: list[tuple[float, int]] = []
    for i, p in enumerate(c.lst(data.get("timeline", []), "timeline")):
        if not (isinstance(p, list) and len(p) == 2):
            raise c.fail(f"timeline[{i}]", "expected [elapsed_s, total_runs]")
        timeline.append((c.num(p[0], f"timeline[{i}][0]"), c.count(p[1], f"timeline[{i}][1]")))
    functions: dict[str, int] | None = None
    pairs: list[LockEdge] | None = None
    features: int | None = None
    cov = data.get("coverage")
    if cov is not None:
        cov = c.obj(cov, "coverage")
        if "functions" in cov:
            fns = c.obj(cov["functions"], "coverage.functions")
            functions = {
                c.text(n, "coverage.functions key"): c.count(v, f"coverage.functions.{n}")
                for n, v in fns.items()
            }
        if "lock_pairs" in cov:
            pairs = []
            for i, p in enumerate(c.lst(cov["lock_pairs"], "coverage.lock_pairs")):
                where = f"coverage.lock_pairs[{i}]"
                if not (isinstance(p, list) and len(p) == 3):
                    raise c.fail(where, "expected [from, to, count]")
                pairs.append(
                    LockEdge(c.text(p[0], where), c.text(p[1], where), c.count(p[2], where))
                )
        if "features" in cov:
            features = c.count(cov["features"], "coverage.features")
    return Campaign(directory, data, scenarios, timeline, functions, pairs, features)


# ---------------------------------------------------------------------- failures


@dataclass
class Occurrence:
    scenario: str
    failure: dict[str, Any]  # as in fuzz --json
    replay: str | None  # the replay file found for it (None: missing)
    witness: str | None


@dataclass
class FailureGroup:
    """One distinct failure (by signature) and where it was found."""

    kind: str
    message: str
    signature: str
    occurrences: list[Occurrence] = field(default_factory=list)
    shown: Interleaving | None = None
    shown_from: str = ""  # the replay (or .min.json) file the interleaving comes from
    problem: str = ""  # why there is no interleaving


def _find_file(directory: str, recorded: str) -> str | None:
    """A replay file the campaign recorded, looked for in DIR first (folders move)."""
    if not recorded:
        return None
    cands = [os.path.join(directory, os.path.basename(recorded))]
    if not os.path.isabs(recorded):
        cands.append(os.path.join(directory, recorded))
    cands.append(recorded)
    for p in cands:
        if os.path.isfile(p):
            return p
    return None


async def build_report(
    camp: Campaign, *, shrink_runs: int = DEFAULT_SHRINK_RUNS
) -> list[FailureGroup]:
    """The campaign's distinct failures, each with its (shrunk) interleaving."""
    from . import api
    from .interleaving import ainterleaving, min_path

    groups: dict[str, FailureGroup] = {}
    files: dict[str, Any] = {}
    for s in camp.scenarios:
        for f in s.get("failures", []):
            replay = _find_file(camp.dir, f.get("replay") or "")
            witness = _find_file(camp.dir, f.get("witness") or "")
            signature = f"{f['kind']}:{f.get('message', '')}"
            if replay is not None:
                try:
                    rf = api.read_replay(replay)
                except InputError:
                    pass
                else:
                    files[replay] = rf
                    signature = str(rf.failure.get("signature") or signature)
            g = groups.get(signature)
            if g is None:
                g = groups[signature] = FailureGroup(f["kind"], f.get("message", ""), signature)
            g.occurrences.append(Occurrence(s["name"], f, replay, witness))
    for g in groups.values():
        source = next((o.replay for o in g.occurrences if o.replay in files), None)
        if source is None:
            bad = next((o.replay for o in g.occurrences if o.replay is not None), None)
            if bad is not None:
                try:
                    api.read_replay(bad)
                except InputError as exc:
                    g.problem = f"the replay file cannot be read: {exc}"
            else:
                recorded = next((o.failure.get("replay") for o in g.occurrences), "") or ""
                g.problem = (
                    f"no replay file ({recorded} is not in {camp.dir})"
                    if recorded
                    else "the campaign recorded no replay file for it"
                )
            continue
        shrunk = None
        small = min_path(source)
        if os.path.isfile(small):
            try:
                shrunk = api.read_replay(small)
            except InputError:
                shrunk = None
        try:
            g.shown = await ainterleaving(
                files[source], shrink_runs=shrink_runs, last=TRACE_ROWS, shrunk_file=shrunk
            )
            g.shown_from = small if shrunk is not None else source
        except InputError as exc:
            g.problem = f"cannot replay {source}: {exc}"
    return list(groups.values())


# ---------------------------------------------------------------------- the page


@dataclass
class ReportSummary:
    output: str
    failures: int  # distinct
    shrunk: int  # distinct failures shown shrunk
    functions_reached: int | None
    functions_total: int
    lock_pairs: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "failures": self.failures,
            "shrunk": self.shrunk,
            "functions_reached": self.functions_reached,
            "functions_total": self.functions_total,
            "lock_pairs": self.lock_pairs,
        }


def write_report(
    directory: str, *, output: str | None = None, shrink_runs: int = DEFAULT_SHRINK_RUNS
) -> ReportSummary:
    """Read DIR, build the page and write it (default ``DIR/report.html``)."""
    import trio

    if isinstance(shrink_runs, bool) or not isinstance(shrink_runs, int) or shrink_runs < 0:
        raise InputError(f"shrink_runs: expected a non-negative integer, got {shrink_runs!r}")
    camp = load_campaign(directory)
    out = output or os.path.join(directory, DEFAULT_OUTPUT)
    check_output_file(out, "--output")
    groups = trio.run(lambda: build_report(camp, shrink_runs=shrink_runs))
    page = render_html(camp, groups)
    tmp = f"{out}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, out)
    except OSError as exc:
        raise InputError(f"--output {out}: cannot write: {describe_os_error(exc)}") from None
    names = seed_functions()
    reached = None
    if camp.functions is not None:
        reached = sum(1 for n in names if camp.functions.get(n, 0) > 0)
    return ReportSummary(
        output=out,
        failures=len(groups),
        shrunk=sum(1 for g in groups if g.shown is not None and g.shown.shrunk),
        functions_reached=reached,
        functions_total=len(names),
        lock_pairs=None if camp.lock_pairs is None else len(camp.lock_pairs),
    )


_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1d2330; margin: 0 auto;
       max-width: 1240px; padding: 0 24px 48px; background: #fff; }
h1 { font-size: 26px; margin: 24px 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; border-bottom: 2px solid #dfe4ec; }
h3 { font-size: 16px; margin: 0 0 6px; }
code, pre, td.mono, .lockgraph text { font-family: ui-monospace, "DejaVu Sans Mono",
       monospace; }
.lockgraph text { font-size: 12px; }
.lockgraph text.count { font-size: 11px; fill: #444; }
.rate text { font-size: 12px; }
nav a { margin-right: 14px; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #dfe4ec; padding: 2px 8px; text-align: left;
         vertical-align: top; }
th { background: #f3f5f9; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.failure { border: 1px solid #e3b6b1; border-left: 5px solid #c0392b; border-radius: 4px;
           padding: 10px 14px; margin: 14px 0; background: #fffafa; }
.kind { display: inline-block; background: #c0392b; color: #fff; border-radius: 3px;
        padding: 0 6px; margin-right: 6px; font-size: 13px; }
.ok { color: #1e7e34; font-weight: 600; }
.note { color: #6b5300; background: #fff7d6; padding: 2px 6px; border-radius: 3px; }
.scroll { overflow-x: auto; }
table.interleaving td, table.interleaving th { font-family: ui-monospace, monospace;
        font-size: 12.5px; white-space: pre; padding: 1px 8px; }
table.interleaving td.fail { color: #c0392b; font-weight: 700; }
pre.kreport { background: #f6f7f9; padding: 8px; font-size: 12.5px; overflow-x: auto; }
.columns { display: flex; flex-wrap: wrap; gap: 0 28px; align-items: flex-start; }
table.functions { font-size: 13px; }
table.functions td, table.functions th { padding: 1px 6px; }
table.functions td.bar { width: 80px; }
.barfill { background: #4a6fa5; height: 10px; }
tr.unreached td { color: #8a909c; }
tr.unreached td.state { color: #c0392b; }
p.unreached code { color: #8a3020; }
footer { margin-top: 40px; color: #6b7280; font-size: 13px; }
"""


def render_html(camp: Campaign, groups: Sequence[FailureGroup]) -> str:
    """The page: nothing but this one string is needed to read it."""
    title = f"Campaign report: {os.path.basename(os.path.normpath(camp.dir)) or camp.dir}"
    body = [
        f"<h1>{escape(title)}</h1>",
        _nav(),
        _summary(camp, groups),
        _failures(groups),
        _coverage(camp),
        _locks(camp),
        _throughput(camp),
        f"<footer>Written by panthor-testbed {escape(__version__)} from "
        f"<code>{escape(os.path.join(camp.dir, CAMPAIGN_FILE))}</code>; "
        f"the interleavings were replayed with this version.</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _nav() -> str:
    links = [
        ("summary", "Summary"),
        ("failures", "Failures"),
        ("coverage", "Seed functions"),
        ("locks", "Lock order"),
        ("throughput", "Runs/s"),
    ]
    return "<nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t in links) + "</nav>"


def _fmt_s(v: float) -> str:
    return f"{v:.1f} s" if v < 600 else f"{v / 60:.1f} min"


def _summary(camp: Campaign, groups: Sequence[FailureGroup]) -> str:
    d = camp.data
    runs = sum(int(s.get("runs", 0)) for s in camp.scenarios)
    elapsed = max((t for t, _ in camp.timeline), default=None)
    if elapsed is None:
        times = [float(s.get("elapsed_s", 0)) for s in camp.scenarios]
        elapsed = sum(times) if times else None
    facts: list[tuple[str, str]] = []
    for key, label in (
        ("started", "started"),
        ("strategy", "strategy"),
        ("seed", "seed"),
        ("jobs", "workers"),
        ("version", "written by"),
    ):
        if d.get(key) is not None:
            value = str(d[key])
            facts.append((label, f"panthor-testbed {value}" if key == "version" else value))
    facts.append(("runs", f"{runs}"))
    if elapsed:
        facts.append(("time", f"{_fmt_s(elapsed)} ({runs / elapsed:.1f} runs/s)"))
    total = sum(len(g.occurrences) for g in groups)
    facts.append(("failures", f"{len(groups)} distinct ({total} found)"))
    if d.get("interrupted"):
        facts.append(("stopped", "interrupted (Ctrl-C): what was found before is below"))
    rows = []
    for s in camp.scenarios:
        n = len(s.get("failures", []))
        el = float(s.get("elapsed_s", 0) or 0)
        sr = int(s.get("runs", 0))
        rate = f"{sr / el:.1f}" if el > 0 else ""
        verdict = f"FAILED ({n})" if n else '<span class="ok">ok</span>'
        status = s.get("status")
        if isinstance(status, str) and status not in ("done", ""):
            verdict += f" ({escape(status)})"
        rows.append(
            f'<tr><td class="mono">{escape(s["name"])}</td><td class="num">{sr}</td>'
            f'<td class="num">{int(s.get("steps", 0))}</td><td class="num">{el:.2f}</td>'
            f'<td class="num">{rate}</td><td>{verdict}</td></tr>'
        )
    table = (
        '<table class="scenarios"><thead><tr><th>scenario</th><th>runs</th><th>steps</th>'
        "<th>seconds</th><th>runs/s</th><th>verdict</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        if rows
        else "<p>No scenario ran.</p>"
    )
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    return f'<section id="summary"><h2>Summary</h2><dl class="facts">{dl}</dl>{table}</section>'


def _failures(groups: Sequence[FailureGroup]) -> str:
    if not groups:
        return (
            '<section id="failures"><h2>Failures</h2>'
            '<p class="ok">No failure was found.</p></section>'
        )
    parts = [f'<section id="failures"><h2>Failures ({len(groups)} distinct)</h2>']
    for i, g in enumerate(groups, 1):
        parts.append(_failure(i, g))
    parts.append("</section>")
    return "\n".join(parts)


def _failure(i: int, g: FailureGroup) -> str:
    out = [
        f'<article class="failure" id="failure-{i}">',
        f'<h3><span class="kind">{escape(g.kind)}</span>{escape(g.message)}</h3>',
        f"<p>signature <code>{escape(g.signature)}</code></p>",
        "<table><thead><tr><th>scenario</th><th>run</th><th>seed</th><th>replay file</th>"
        "</tr></thead><tbody>",
    ]
    for o in g.occurrences:
        where = o.replay or (o.failure.get("replay") or "")
        missing = "" if o.replay else ' <span class="note">missing</span>'
        wit = ""
        if o.witness:
            wit = f"<br>witness (deadlocks): <code>{escape(o.witness)}</code>"
        out.append(
            f'<tr><td class="mono">{escape(o.scenario)}</td>'
            f'<td class="num">{escape(str(o.failure.get("run", "")))}</td>'
            f'<td class="num">{escape(str(o.failure.get("seed", "")))}</td>'
            f"<td><code>{escape(where)}</code>{missing}{wit}</td></tr>"
        )
    out.append("</tbody></table>")
    if g.shown is None:
        out.append(f'<p class="note">No interleaving: {escape(g.problem)}</p>')
    else:
        s = g.shown
        if s.shrunk:
            how = f" (shrunk here in {s.shrink_runs} runs)" if s.shrink_runs else ""
            out.append(f"<p>Shrunk interleaving{how}: {escape(s.summary)}</p>")
        else:
            out.append("<p>Interleaving as found (not shrunk).</p>")
        if s.note:
            out.append(f'<p class="note">{escape(s.note)}</p>')
        out.append(
            f"<p>Replay it: <code>panthor-testbed replay {escape(g.shown_from)} --trace</code></p>"
        )
        out.append(_trace_table(s.trace, TRACE_ROWS))
        if s.report:
            out.append(f'<pre class="kreport">{escape(s.report.rstrip())}</pre>')
    out.append("</article>")
    return "\n".join(out)


def _trace_table(trace: Trace, last: int | None) -> str:
    """The interleaving as a table with one column per thread (as ``replay --trace``)."""
    events = trace.events if last is None else trace.events[-last:]
    cols = sorted({e[2] for e in events})
    if not cols:
        return "<p>(empty trace)</p>"
    show_time = any(e[1] for e in events)
    head = ["step"] + (["time (us)"] if show_time else [])
    names = [f"T{t} {trace.name_of(t)}" if t >= 0 else "timer" for t in cols]
    col_of = {t: i for i, t in enumerate(cols)}
    rows = []
    skipped = len(trace.events) - len(events)
    width = len(head) + len(cols)
    if skipped:
        rows.append(f'<tr><td colspan="{width}">... {skipped} earlier events not shown</td></tr>')
    for step, t, tid, kind, obj, detail in events:
        text = " ".join(x for x in (kind, obj, detail) if x)
        cells = [""] * len(cols)
        cells[col_of[tid]] = text
        cls = ' class="fail"' if kind == "FAIL" else ""
        tcell = f'<td class="num">{t / 1000:.1f}</td>' if show_time else ""
        rows.append(
            f'<tr><td class="num">{step}</td>{tcell}'
            + "".join(f"<td{cls if c else ''}>{escape(c)}</td>" for c in cells)
            + "</tr>"
        )
    return (
        '<div class="scroll"><table class="interleaving"><thead><tr>'
        + "".join(f"<th>{escape(h)}</th>" for h in head + names)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
    )


def _coverage(camp: Campaign) -> str:
    head = '<section id="coverage"><h2>Seed functions</h2>'
    names = seed_functions()
    if camp.functions is None:
        return (
            head + "<p>Coverage was not collected in this campaign, so which of the "
            f"{len(names)} seed functions ran is not known.</p></section>"
        )
    fns = camp.functions
    reached = [n for n in names if fns.get(n, 0) > 0]
    missed = [n for n in names if fns.get(n, 0) == 0]
    top = max((fns.get(n, 0) for n in names), default=0) or 1
    parts = [
        head,
        f'<p class="reached-summary"><strong>{len(reached)} of {len(names)}</strong> seed '
        f"functions reached"
        + (f"; {camp.features} coverage features in all" if camp.features is not None else "")
        + ".</p>",
    ]
    if missed:
        parts.append(
            '<p class="unreached">Not reached: '
            + ", ".join(f"<code>{escape(n)}</code>" for n in missed)
            + "</p>"
        )
    rows = []
    for i, n in enumerate(names, 1):
        c = fns.get(n, 0)
        # A log scale: a function entered once is visible beside one entered a million times.
        frac = math.log1p(c) / math.log1p(top)
        state = "reached" if c else "not reached"
        bar = f'<div class="barfill" style="width:{frac * 100:.1f}%"></div>' if c else ""
        rows.append(
            f'<tr class="{"reached" if c else "unreached"}"><td class="num">{i}</td>'
            f'<td class="mono">{escape(n)}</td><td class="num">{c}</td>'
            f'<td class="state">{state}</td><td class="bar">{bar}</td></tr>'
        )
    # Two tables side by side (stacked on a narrow screen), in source order.
    half = (len(rows) + 1) // 2
    tables = [
        '<table class="functions"><thead><tr><th>#</th><th>function</th><th>entered</th>'
        "<th></th><th>(log scale)</th></tr></thead><tbody>" + "".join(chunk) + "</tbody></table>"
        for chunk in (rows[:half], rows[half:])
        if chunk
    ]
    parts.append('<div class="columns">' + "".join(tables) + "</div>")
    other = sorted(n for n in fns if n not in set(names))
    if other:
        parts.append(
            "<p>Also counted (not seed functions): "
            + ", ".join(f"<code>{escape(n)}</code> {fns[n]}" for n in other)
            + "</p>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _locks(camp: Campaign) -> str:
    head = '<section id="locks"><h2>Lock order as seen</h2>'
    if camp.lock_pairs is None:
        return head + "<p>Lock-order pairs were not recorded in this campaign.</p></section>"
    if not camp.lock_pairs:
        return head + "<p>No lock was ever taken while another was held.</p></section>"
    svg = lock_graph_svg(camp.lock_pairs)
    rows = "".join(
        f'<tr><td class="mono">{escape(e.src)}</td><td class="mono">{escape(e.dst)}</td>'
        f'<td class="num">{e.count}</td></tr>'
        for e in sorted(camp.lock_pairs, key=lambda e: (-e.count, e.src, e.dst))
    )
    return (
        head + f"<p>{len(camp.lock_pairs)} lock-order pairs: an arrow from A to B means B "
        "was taken while A was held (the count is how often). Pairs on a cycle, an order "
        "inversion, are red and dashed.</p>"
        f'<div class="scroll">{svg}</div>'
        "<table><thead><tr><th>held</th><th>then taken</th><th>times</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _throughput(camp: Campaign) -> str:
    head = '<section id="throughput"><h2>Runs per second</h2>'
    series = rate_series(camp.timeline)
    if not series:
        return head + "<p>The campaign recorded no timeline.</p></section>"
    lo = min(r for _, r in series)
    hi = max(r for _, r in series)
    return (
        head + f"<p>{len(camp.timeline)} progress points; between {lo:.1f} and {hi:.1f} "
        "runs/s per interval.</p>" + runs_per_second_svg(camp.timeline) + "</section>"
    )
