"""Geometry of the console's inline SVG charts. Pure: numbers and labels in, coordinates out; no database access.

Shapes carry only SVG presentation attributes and CSS classes (the CSP forbids inline styles). Every chart keeps
its aspect ratio when scaled, so the text inside it is never stretched."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.charts import bar_boxes

# In SVG units, close to the pixels a chart gets on a desktop screen, so the 11-12px labels stay readable: half a
# page's width for the dashboard's cards, the whole width for the risk chart and the ring graph.
CHART_WIDTH = 480
WIDE_WIDTH = 960
CHART_HEIGHT = 160
# Room under the plot for the tick labels.
TICK_BAND = 22
# Distinct colours of chart series in the stylesheet (.series-0 ... .series-7).
SERIES_COLOURS = 8


@dataclass(frozen=True)
class ChartBar:
    key: str  # machine-readable (ISO time, bin bounds): the data-key attribute the tests and tools read
    label: str  # for people: the bar's tooltip
    value: float
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Tick:
    x: float
    label: str
    anchor: str  # text-anchor: labels near an edge grow inwards instead of being cut off


def _ticks(centres: list[tuple[float, str]], *, count: int, width: float) -> list[Tick]:
    """About `count` evenly spaced labels among the (centre, label) slots, the first and the last always in."""
    if not centres or count <= 0:
        return []
    chosen = sorted({round(i * (len(centres) - 1) / max(count - 1, 1)) for i in range(count)})
    ticks = []
    for index in chosen:
        x, label = centres[index]
        anchor = "start" if x < 40 else "end" if x > width - 40 else "middle"
        ticks.append(Tick(x=round(x, 2), label=label, anchor=anchor))
    return ticks


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int  # of the plot; the SVG adds TICK_BAND for the tick labels
    bars: list[ChartBar]
    ticks: list[Tick]
    peak: float

    @property
    def total(self) -> float:
        return sum(bar.value for bar in self.bars)

    @property
    def svg_height(self) -> int:
        return self.height + TICK_BAND


def bar_chart(
    points: Sequence[tuple[str, str, float]], *, width: int = CHART_WIDTH, height: int = CHART_HEIGHT, ticks: int = 4
) -> BarChart:
    """Vertical bars, one per (key, label, value), with about `ticks` evenly spaced tick labels (the first and the
    last bar always among them)."""
    boxes = bar_boxes([value for _, _, value in points], width=width, height=height)
    bars = [
        ChartBar(key=key, label=label, value=value, x=box.x, y=box.y, width=box.width, height=box.height)
        for (key, label, value), box in zip(points, boxes, strict=True)
    ]
    return BarChart(
        width=width,
        height=height,
        bars=bars,
        ticks=_ticks([(bar.x + bar.width / 2, bar.label) for bar in bars], count=ticks, width=width),
        peak=max([value for _, _, value in points], default=0),
    )


@dataclass(frozen=True)
class HBarRow:
    key: str
    label: str
    value: float
    y: float
    bar_width: float
    text_y: float  # baseline of the row's label and value
    value_x: float


@dataclass(frozen=True)
class HBarChart:
    width: int
    height: int
    label_width: int
    bar_height: int
    rows: list[HBarRow]


def hbar_chart(
    points: Sequence[tuple[str, str, float]], *, width: int = CHART_WIDTH, label_width: int = 170, row_height: int = 24
) -> HBarChart:
    """Horizontal bars, one row per (key, label, value) in the given order: the label on the left, the bar, then
    the value. The largest value spans the room left after the label and the value text."""
    value_room = 70
    span = width - label_width - value_room
    top = max([value for _, _, value in points] + [1])
    bar_height = row_height - 8
    rows = []
    for index, (key, label, value) in enumerate(points):
        bar_width = round(span * value / top, 2)
        y = index * row_height + 4
        rows.append(
            HBarRow(
                key=key,
                label=label,
                value=value,
                y=y,
                bar_width=bar_width,
                text_y=y + bar_height - 4,
                value_x=round(label_width + bar_width + 6, 2),
            )
        )
    return HBarChart(
        width=width, height=max(len(rows) * row_height, row_height), label_width=label_width, bar_height=bar_height,
        rows=rows,
    )  # fmt: skip


def confidence_bin_labels(bins: int = 10) -> list[tuple[str, str]]:
    """(key, label) of each confidence bin of [0, 1]: "0.0-0.1" ... "0.9-1.0". Bins are half-open except the last,
    which also holds 1.0."""
    return [(f"{i / bins:.2f}-{(i + 1) / bins:.2f}", f"{i / bins:.1f}\u2013{(i + 1) / bins:.1f}") for i in range(bins)]


@dataclass(frozen=True)
class Segment:
    name: str
    series: int  # colour index
    points: float
    y: float
    height: float


@dataclass(frozen=True)
class RiskColumn:
    key: str
    label: str
    score: int
    x: float
    width: float
    segments: list[Segment]


@dataclass(frozen=True)
class RiskChart:
    width: int
    height: int
    top: float
    columns: list[RiskColumn]
    score_line: str  # the polyline's points attribute
    series: list[tuple[int, str]]  # (colour index, component name), for the legend
    gridlines: list[tuple[float, int]]  # (y, value)
    ticks: list[Tick]

    @property
    def svg_height(self) -> int:
        return self.height + TICK_BAND


def risk_chart(
    assessments: Sequence[tuple[str, str, int, Sequence[tuple[str, float]]]],
    *,
    width: int = WIDE_WIDTH,
    height: int = CHART_HEIGHT,
    ticks: int = 4,
) -> RiskChart:
    """Risk over time: one column per assessment (key, label, score, [(component, points), ...]), oldest first,
    stacking each component's points, with the score drawn as a line over the columns. The scale is 0..100 (the
    score's range), or the tallest stack if the components add up to more than that."""
    names: list[str] = []
    for *_, components in assessments:
        for name, _ in components:
            if name not in names:
                names.append(name)
    colour = {name: index % SERIES_COLOURS for index, name in enumerate(names)}
    top = max([100.0] + [sum(max(p, 0) for _, p in components) for *_, components in assessments])
    slot = width / len(assessments) if assessments else width
    columns = []
    line = []
    for index, (key, label, score, components) in enumerate(assessments):
        base = float(height)
        segments = []
        for name, points in components:
            if points <= 0:
                continue
            segment_height = round(height * points / top, 2)
            base = round(base - segment_height, 2)
            segments.append(Segment(name=name, series=colour[name], points=points, y=base, height=segment_height))
        x = round(index * slot + 1, 2)
        columns.append(
            RiskColumn(key=key, label=label, score=score, x=x, width=round(max(slot - 2, 1), 2), segments=segments)
        )
        line.append(f"{round(index * slot + slot / 2, 2)},{round(height - height * score / top, 2)}")
    return RiskChart(
        width=width,
        height=height,
        top=top,
        columns=columns,
        score_line=" ".join(line),
        series=[(colour[name], name) for name in names],
        gridlines=[(round(height - height * value / top, 2), value) for value in (25, 50, 75, 100)],
        ticks=_ticks([(column.x + column.width / 2, column.label) for column in columns], count=ticks, width=width),
    )


@dataclass(frozen=True)
class GraphNode:
    id: int
    label: str
    x: float
    y: float
    label_x: float
    label_y: float
    anchor: str  # text-anchor: start, middle or end, so labels point away from the circle
    current: bool


@dataclass(frozen=True)
class GraphEdge:
    low: int
    high: int
    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    label_x: float
    label_y: float


@dataclass(frozen=True)
class RingGraph:
    width: int
    height: int
    nodes: list[GraphNode]
    edges: list[GraphEdge]


def ring_graph(
    nodes: Sequence[tuple[int, str]],
    edges: Sequence[tuple[int, int, str]],
    *,
    current: int | None = None,
    width: int = WIDE_WIDTH,
    height: int = 440,
) -> RingGraph:
    """The members of a ring as nodes on a circle (the first at the top, then clockwise) and their sign-up links as
    straight edges, each labelled at its middle with its signals (several signals between one pair share one edge).
    Edges to organizations that are not nodes are left out."""
    margin = 70  # room for the labels outside the circle
    cx, cy = width / 2, height / 2
    radius = max(min(width, height) / 2 - margin, 10)
    placed: dict[int, GraphNode] = {}
    for index, (node_id, label) in enumerate(nodes):
        angle = -math.pi / 2 + 2 * math.pi * index / len(nodes)
        x, y = (cx, cy) if len(nodes) == 1 else (cx + radius * math.cos(angle), cy + radius * math.sin(angle))
        cos = math.cos(angle) if len(nodes) > 1 else 0.0
        sin = math.sin(angle) if len(nodes) > 1 else -1.0
        anchor = "start" if cos > 0.3 else "end" if cos < -0.3 else "middle"
        placed[node_id] = GraphNode(
            id=node_id,
            label=label,
            x=round(x, 2),
            y=round(y, 2),
            label_x=round(x + 16 * cos, 2),
            # Below the node when in the lower half, above it otherwise; +4 centres a 12px font on the baseline.
            label_y=round(y + (22 if sin > 0.3 else -16 if sin < -0.3 else 4), 2),
            anchor=anchor,
            current=node_id == current,
        )
    signals: dict[tuple[int, int], list[str]] = {}
    for a, b, signal in edges:
        if a in placed and b in placed and a != b:
            pair = (min(a, b), max(a, b))
            if signal not in signals.setdefault(pair, []):
                signals[pair].append(signal)
    graph_edges = []
    for (low, high), names in sorted(signals.items()):
        a, b = placed[low], placed[high]
        graph_edges.append(
            GraphEdge(
                low=low, high=high, label=", ".join(names), x1=a.x, y1=a.y, x2=b.x, y2=b.y,
                label_x=round((a.x + b.x) / 2, 2), label_y=round((a.y + b.y) / 2 - 4, 2),
            )
        )  # fmt: skip
    return RingGraph(width=width, height=height, nodes=list(placed.values()), edges=graph_edges)
