"""Inline SVG for the campaign report: the lock-order graph and the runs/s chart.

Laid out here, deterministically (same input, same bytes), with no layout
engine: the lock graph is layered as a Sugiyama drawing is (cycles broken by
a depth-first search in name order, longest-path layers as columns,
barycentre ordering within a column), which is plenty for the few dozen lock
classes a campaign sees. Text is measured by a fixed per-character width
for the monospace font the page uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["LockEdge", "lock_graph_svg", "rate_series", "runs_per_second_svg"]

CHAR_W = 7.2  # px per character of 12px monospace
NODE_H = 26
ROW_GAP = 18
COL_GAP = 90
PAD = 20


@dataclass(frozen=True)
class LockEdge:
    """``src`` was held when ``dst`` was taken, ``count`` times."""

    src: str
    dst: str
    count: int


@dataclass
class _Route:
    """One drawn edge: the lock pair, and the chain of nodes it passes through.

    ``chain`` runs left to right (from the lower column to the higher); for a
    pair drawn against the layering (``reversed``), the arrow points at the
    chain's start.
    """

    edge: LockEdge
    chain: list[str]  # real node, dummies in the columns between, real node
    reversed: bool
    cyclic: bool  # the pair is on a cycle: an order inversion
    offset: float  # vertical shift of both ends (a pair drawn both ways)


@dataclass
class _Layout:
    col: dict[str, int]
    order: list[list[str]]  # per column, top to bottom, dummies included
    routes: list[_Route]
    loops: list[LockEdge]  # a class taken while one of the same class was held
    cyclic_nodes: set[str]


DUMMY = "\x00"  # dummy node names start with it (no lock class name does)


def _sccs(nodes: Sequence[str], succ: dict[str, list[str]]) -> dict[str, int]:
    """Strongly connected components (Tarjan), numbered in a deterministic order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    comp: dict[str, int] = {}
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        # Iterative to survive long chains.
        work: list[tuple[str, int]] = [(v, 0)]
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        while work:
            node, i = work[-1]
            nxt = succ[node]
            if i < len(nxt):
                work[-1] = (node, i + 1)
                w = nxt[i]
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, 0))
                elif w in on:
                    low[node] = min(low[node], index[w])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                n = len(set(comp.values()))
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp[w] = n
                    if w == node:
                        break

    for v in nodes:
        if v not in index:
            visit(v)
    return comp


def _layout(nodes: list[str], edges: list[LockEdge]) -> _Layout:
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for e in edges:
        if e.src != e.dst:
            succ[e.src].append(e.dst)
    for n in nodes:
        succ[n].sort()
    comp = _sccs(nodes, succ)
    cyclic = {(e.src, e.dst) for e in edges if e.src == e.dst or comp[e.src] == comp[e.dst]}
    # Break cycles: reverse the back edges of a DFS visiting nodes and
    # successors in name order (the layering is then a DAG's).
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    for root in nodes:
        if root in state:
            continue
        state[root] = 1
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            v, i = work[-1]
            if i < len(succ[v]):
                work[-1] = (v, i + 1)
                w = succ[v][i]
                if state.get(w) == 1:
                    back.add((v, w))
                elif w not in state:
                    state[w] = 1
                    work.append((w, 0))
            else:
                state[v] = 2
                work.pop()
    dag: dict[str, set[str]] = {n: set() for n in nodes}
    for e in edges:
        if e.src == e.dst:
            continue
        a, b = (e.dst, e.src) if (e.src, e.dst) in back else (e.src, e.dst)
        dag[a].add(b)
    # Longest-path layering in a topological order (Kahn's, ties by name).
    indeg = {n: 0 for n in nodes}
    for n in nodes:
        for w in dag[n]:
            indeg[w] += 1
    ready = sorted(n for n in nodes if indeg[n] == 0)
    col = {n: 0 for n in nodes}
    while ready:
        v = ready.pop(0)
        for w in sorted(dag[v]):
            col[w] = max(col[w], col[v] + 1)
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
                ready.sort()
    # Each pair is a chain through one dummy per column it crosses, so no
    # edge is drawn through a box.
    routes: list[_Route] = []
    loops: list[LockEdge] = []
    pairs = {(e.src, e.dst) for e in edges}
    for k, e in enumerate(edges):
        if e.src == e.dst:
            loops.append(e)
            continue
        rev = (e.src, e.dst) in back
        a, b = (e.dst, e.src) if rev else (e.src, e.dst)
        chain = [a]
        for c in range(col[a] + 1, col[b]):
            dummy = f"{DUMMY}{k:05d}:{c:03d}"
            col[dummy] = c
            chain.append(dummy)
        chain.append(b)
        twin = (e.dst, e.src) in pairs
        routes.append(
            _Route(e, chain, rev, (e.src, e.dst) in cyclic, (4.0 if rev else -4.0) if twin else 0.0)
        )
    ncols = max(col.values(), default=-1) + 1
    order = [sorted(n for n in col if col[n] == c) for c in range(ncols)]
    left: dict[str, list[str]] = {n: [] for n in col}
    right: dict[str, list[str]] = {n: [] for n in col}
    for r in routes:
        for x, y in zip(r.chain, r.chain[1:], strict=False):
            right[x].append(y)
            left[y].append(x)
    # Barycentre sweeps (left to right, then right to left); ties keep the order.
    for _ in range(6):
        for c in range(1, ncols):
            pos = {n: i for i, n in enumerate(order[c - 1])}
            order[c] = _by_barycentre(order[c], left, pos)
        for c in range(ncols - 2, -1, -1):
            pos = {n: i for i, n in enumerate(order[c + 1])}
            order[c] = _by_barycentre(order[c], right, pos)
    cyclic_nodes = {n for pair in cyclic for n in pair}
    return _Layout(col, order, routes, loops, cyclic_nodes)


def _by_barycentre(
    column: list[str], neighbours: dict[str, list[str]], pos: dict[str, int]
) -> list[str]:
    def key(item: tuple[int, str]) -> tuple[float, int]:
        i, n = item
        near = [pos[m] for m in neighbours[n] if m in pos]
        return (sum(near) / len(near) if near else float(i), i)

    return [n for _, n in sorted(enumerate(column), key=key)]


def lock_graph_svg(edges: Sequence[LockEdge]) -> str:
    """The lock-order graph as seen: an arrow A -> B for "B taken while A held".

    Pairs on a cycle (an order inversion, what lockdep reports) are drawn red
    and dashed, their locks red; every lock and pair has a ``<title>``
    tooltip. The same pairs in any order give the same picture.
    """
    edges = sorted(edges, key=lambda e: (e.src, e.dst, e.count))
    nodes = sorted({e.src for e in edges} | {e.dst for e in edges})
    if not nodes:
        return ""
    lay = _layout(nodes, edges)
    widths = []
    for column in lay.order:
        real = [n for n in column if not n.startswith(DUMMY)]
        widths.append(max((len(n) for n in real), default=0) * CHAR_W + 20 if real else 40.0)
    xs: list[float] = []
    x = float(PAD)
    for w in widths:
        xs.append(x)
        x += w + COL_GAP
    width = x - COL_GAP + PAD
    tallest = max(len(column) for column in lay.order)
    top = PAD + (30 if lay.loops else 0)
    height = top + tallest * (NODE_H + ROW_GAP) - ROW_GAP + PAD
    box: dict[str, tuple[float, float, float]] = {}  # x, y, w
    for c, column in enumerate(lay.order):
        offset = (tallest - len(column)) * (NODE_H + ROW_GAP) / 2
        for i, n in enumerate(column):
            box[n] = (xs[c], top + offset + i * (NODE_H + ROW_GAP), widths[c])
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lockgraph" role="img" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">',
        "<title>lock-order graph: an arrow A to B means B was taken while A was held</title>",
        "<defs>" + _marker("arrow", "#555") + _marker("arrow-bad", "#c0392b") + "</defs>",
    ]
    taken: list[Box] = [
        (bx, by, bw, float(NODE_H)) for n, (bx, by, bw) in box.items() if not n.startswith(DUMMY)
    ]
    out += [_route(r, box, taken) for r in lay.routes]
    out += [_loop(e, box[e.src]) for e in lay.loops]
    for n in nodes:
        bx, by, bw = box[n]
        bad = n in lay.cyclic_nodes
        out.append(
            f'<g class="{"lock inverted" if bad else "lock"}"><title>{escape(n)}</title>'
            f'<rect x="{bx:.1f}" y="{by:.1f}" width="{bw:.1f}" height="{NODE_H}" rx="5" '
            f'fill="{"#fdecea" if bad else "#eef3fb"}" '
            f'stroke="{"#c0392b" if bad else "#4a6fa5"}"/>'
            f'<text x="{bx + bw / 2:.1f}" y="{by + NODE_H / 2 + 4:.1f}" '
            f'text-anchor="middle">{escape(n)}</text></g>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _marker(name: str, colour: str) -> str:
    return (
        f'<marker id="{name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{colour}"/></marker>'
    )


def _style(e: LockEdge, bad: bool) -> tuple[str, str, str, str]:
    colour = "#c0392b" if bad else "#555"
    marker = "arrow-bad" if bad else "arrow"
    dash = ' stroke-dasharray="6 3"' if bad else ""
    label = f"{e.src} -> {e.dst}: {e.count} time{'s' if e.count != 1 else ''}"
    return colour, marker, dash, label


Box = tuple[float, float, float, float]  # x, y, width, height


def _route(r: _Route, box: dict[str, tuple[float, float, float]], taken: list[Box]) -> str:
    """The pair's path and its count, placed where it overlaps no earlier label or box."""
    colour, marker, dash, label = _style(r.edge, r.cyclic)
    mid = NODE_H / 2 + r.offset
    # Out of the first box's right side; across each dummy's column at its
    # slot; into the last box's left side.
    first_x, first_y, first_w = box[r.chain[0]]
    px, py = first_x + first_w, first_y + mid
    d = f"M{px:.1f},{py:.1f}"
    spots: list[tuple[float, float]] = []
    for i, n in enumerate(r.chain[1:], 1):
        bx, by, bw = box[n]
        y = by + mid
        c = (px + bx) / 2
        d += f" C{c:.1f},{py:.1f} {c:.1f},{y:.1f} {bx:.1f},{y:.1f}"
        if i == 1:
            # Along the first stretch, a third of the way first: pairs leaving
            # one box have parted there and pairs converging on another not met.
            spots = [
                _bezier(t, (px, py), (c, py), (c, y), (bx, y))
                for t in (0.33, 0.5, 0.2, 0.66, 0.8, 0.1, 0.9)
            ]
        px, py = bx + bw, y
        if i < len(r.chain) - 1:
            d += f" L{px:.1f},{py:.1f}"
    ends = "marker-start" if r.reversed else "marker-end"
    text = f"\u00d7{r.edge.count}"
    w, h = len(text) * 6.6 + 2, 12.0
    below = r.offset > 0
    candidates = [(x, y + (12 if below else -4)) for x, y in spots]
    candidates += [(x, y + (-4 if below else 12)) for x, y in spots]
    lx, ly = candidates[0]
    for cx, cy in candidates:
        rect = (cx - w / 2, cy - 10, w, h)
        if not any(_overlap(rect, o) for o in taken):
            lx, ly = cx, cy
            break
    taken.append((lx - w / 2, ly - 10, w, h))
    return (
        f'<g class="{"pair inverted" if r.cyclic else "pair"}"><title>{escape(label)}</title>'
        f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.4"{dash} '
        f'{ends}="url(#{marker})"/>'
        f'<text class="count" x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle">{text}</text></g>'
    )


def _overlap(a: Box, b: Box) -> bool:
    return not (
        a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]
    )


def _bezier(
    t: float,
    p0: tuple[float, float],
    p1: tuple[float, float],
    p2: tuple[float, float],
    p3: tuple[float, float],
) -> tuple[float, float]:
    u = 1 - t
    a, b, c, d = u**3, 3 * u * u * t, 3 * u * t * t, t**3
    return (
        a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0],
        a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1],
    )


def _loop(e: LockEdge, b: tuple[float, float, float]) -> str:
    colour, marker, dash, label = _style(e, True)
    sx, sy, sw = b
    x0, x1 = sx + sw * 0.35, sx + sw * 0.65
    d = f"M{x0:.1f},{sy:.1f} C{x0:.1f},{sy - 30:.1f} {x1:.1f},{sy - 30:.1f} {x1:.1f},{sy:.1f}"
    return (
        f'<g class="pair inverted"><title>{escape(label)}</title>'
        f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.4"{dash} '
        f'marker-end="url(#{marker})"/>'
        f'<text class="count" x="{(x0 + x1) / 2:.1f}" y="{sy - 26:.1f}" '
        f'text-anchor="middle">\u00d7{e.count}</text></g>'
    )


# ---------------------------------------------------------------------- runs/s


def rate_series(timeline: Sequence[tuple[float, int]]) -> list[tuple[float, float]]:
    """(time, runs/s over the interval ending then) from cumulative (elapsed_s, runs) points."""
    pts = sorted(timeline)
    out: list[tuple[float, float]] = []
    prev_t, prev_r = 0.0, 0
    for t, r in pts:
        if t <= prev_t:
            continue  # a repeated or out-of-order point adds no interval
        out.append((t, max(0.0, (r - prev_r) / (t - prev_t))))
        prev_t, prev_r = t, r
    return out


def _nice_step(span: float, ticks: int = 5) -> float:
    if span <= 0:
        return 1.0
    raw = span / ticks
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _fmt(v: float) -> str:
    if v == int(v):
        return f"{int(v)}"
    return f"{v:.1f}" if abs(v) >= 1 else f"{v:.2g}"


def runs_per_second_svg(timeline: Sequence[tuple[float, int]]) -> str:
    """Throughput over the campaign: runs/s per progress interval, and the mean."""
    series = rate_series(timeline)
    if not series:
        return ""
    w, h = 720, 260
    left, right, top, bottom = 64, 20, 30, 44
    t_max = max(t for t, _ in series)
    r_max = max(r for _, r in series)
    xstep = _nice_step(t_max)
    ystep = _nice_step(r_max)
    x_top = math.ceil(t_max / xstep) * xstep or xstep
    y_top = math.ceil(r_max / ystep) * ystep or ystep
    if y_top < r_max * 1.05:
        y_top += ystep

    def px(t: float) -> float:
        return left + (w - left - right) * t / x_top

    def py(r: float) -> float:
        return top + (h - top - bottom) * (1 - r / y_top)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="rate" role="img" width="{w}" '
        f'height="{h}" viewBox="0 0 {w} {h}">',
        "<title>runs per second over the campaign</title>",
    ]
    n = 0
    while n * ystep <= y_top + 1e-9:
        y = py(n * ystep)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{w - right}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(n * ystep)}</text>'
        )
        n += 1
    n = 0
    while n * xstep <= x_top + 1e-9:
        x = px(n * xstep)
        out.append(
            f'<line x1="{x:.1f}" y1="{h - bottom}" x2="{x:.1f}" y2="{h - bottom + 4}" '
            f'stroke="#333"/><text x="{x:.1f}" y="{h - bottom + 18}" '
            f'text-anchor="middle">{_fmt(n * xstep)}</text>'
        )
        n += 1
    out.append(
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="#333"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="#333"/>'
        f'<text x="{(left + w - right) / 2:.0f}" y="{h - 6}" text-anchor="middle">'
        f"elapsed (s)</text>"
        f'<text x="14" y="{(top + h - bottom) / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(top + h - bottom) / 2:.0f})">runs/s</text>'
    )
    # Each interval's rate as a step: flat over the interval it was measured in.
    pts: list[str] = []
    prev = 0.0
    for t, r in series:
        pts.append(f"{px(prev):.1f},{py(r):.1f}")
        pts.append(f"{px(t):.1f},{py(r):.1f}")
        prev = t
    out.append(
        f'<polyline class="series" points="{" ".join(pts)}" fill="none" stroke="#2c6fbb" '
        f'stroke-width="2"/>'
    )
    last_t, last_r = max(timeline)
    if last_t > 0:
        mean = last_r / last_t
        y = py(mean)
        out.append(
            f'<line class="mean" x1="{left}" y1="{y:.1f}" x2="{w - right}" y2="{y:.1f}" '
            f'stroke="#e67e22" stroke-dasharray="5 4"/>'
            # The legend sits above the plot, where no line can run through it.
            f'<line x1="{w - right - 180}" y1="12" x2="{w - right - 150}" y2="12" '
            f'stroke="#e67e22" stroke-dasharray="5 4"/>'
            f'<text x="{w - right - 144}" y="16" fill="#b35900">mean {mean:.1f} runs/s</text>'
            f'<line x1="{w - right - 330}" y1="12" x2="{w - right - 300}" y2="12" '
            f'stroke="#2c6fbb" stroke-width="2"/>'
            f'<text x="{w - right - 294}" y="16">per interval</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
