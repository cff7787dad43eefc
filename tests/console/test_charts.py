"""The console's SVG geometry (pure functions) and the shared bar helper the billing chart uses too."""

import math

from console.charts import (
    CHART_HEIGHT,
    CHART_WIDTH,
    bar_chart,
    confidence_bin_labels,
    hbar_chart,
    ring_graph,
    risk_chart,
)
from core.charts import Box, bar_boxes


def test_bar_boxes_scale_to_the_largest_value_or_the_given_scale():
    assert bar_boxes([0, 50, 100], width=300, height=100) == [
        Box(x=1.0, y=100.0, width=98.0, height=0.0),
        Box(x=101.0, y=50.0, width=98.0, height=50.0),
        Box(x=201.0, y=0.0, width=98.0, height=100.0),
    ]
    assert [box.height for box in bar_boxes([50], width=10, height=100, scale=200)] == [25.0]
    assert [box.height for box in bar_boxes([0, 0], width=10, height=100)] == [0.0, 0.0]
    assert bar_boxes([], width=10, height=10) == []


def test_bar_chart_keeps_keys_and_labels_and_picks_ticks_at_both_ends():
    chart = bar_chart([(f"k{i}", f"label {i}", i) for i in range(10)], ticks=4)
    assert [bar.key for bar in chart.bars] == [f"k{i}" for i in range(10)]
    assert chart.bars[-1].height == CHART_HEIGHT and chart.bars[0].height == 0
    assert [tick.label for tick in chart.ticks] == ["label 0", "label 3", "label 6", "label 9"]
    assert (chart.ticks[0].anchor, chart.ticks[1].anchor, chart.ticks[-1].anchor) == ("start", "middle", "end")
    assert (chart.total, chart.peak, chart.svg_height) == (45, 9, CHART_HEIGHT + 22)
    assert bar_chart([]).bars == [] and bar_chart([]).ticks == []


def test_hbar_rows_in_order_with_the_largest_spanning_the_room():
    chart = hbar_chart([("a", "A", 10), ("b", "B", 5)], width=500, label_width=100)
    # 500 wide, less 100 for the labels and 70 for the values.
    assert [(row.key, row.bar_width) for row in chart.rows] == [("a", 330.0), ("b", 165.0)]
    assert chart.rows[1].y > chart.rows[0].y
    assert chart.rows[0].value_x == 100 + 330 + 6


def test_confidence_bins_cover_0_to_1():
    bins = confidence_bin_labels(10)
    assert bins[0] == ("0.00-0.10", "0.0\N{EN DASH}0.1") and bins[-1] == ("0.90-1.00", "0.9\N{EN DASH}1.0")


def test_risk_chart_stacks_component_points_and_draws_the_score():
    chart = risk_chart(
        [
            ("t0", "T0", 40, [("boundary", 30), ("volume", 10)]),
            ("t1", "T1", 50, [("volume", 20), ("coverage", 30), ("zero", 0)]),
        ],
        width=200,
        height=100,
    )
    assert chart.series == [(0, "boundary"), (1, "volume"), (2, "coverage"), (3, "zero")]
    first, second = chart.columns
    assert [(s.name, s.y, s.height) for s in first.segments] == [("boundary", 70.0, 30.0), ("volume", 60.0, 10.0)]
    assert [s.name for s in second.segments] == ["volume", "coverage"]  # zero points draw nothing
    assert second.segments[1].series == 2  # a component keeps its colour across columns
    assert chart.score_line == "50.0,60.0 150.0,50.0"
    # Stacks over 100 points rescale the chart rather than overflow it.
    assert risk_chart([("t", "T", 100, [("a", 90), ("b", 60)])], height=100).top == 150


def test_ring_graph_places_nodes_on_a_circle_and_merges_signals_per_pair():
    graph = ring_graph(
        [(1, "one"), (2, "two"), (3, "three"), (4, "four")],
        [(1, 2, "card"), (2, 1, "subnet24"), (1, 2, "card"), (3, 4, "email"), (4, 99, "ua"), (3, 3, "self")],
        current=2,
        width=400,
        height=400,
    )
    centre, radius = 200, 400 / 2 - 70
    for node in graph.nodes:
        assert math.isclose(math.hypot(node.x - centre, node.y - centre), radius, abs_tol=0.01)
    top = graph.nodes[0]
    assert (top.x, top.y, top.anchor) == (200.0, 200.0 - radius, "middle")
    assert graph.nodes[1].anchor == "start" and graph.nodes[3].anchor == "end"
    assert [node.current for node in graph.nodes] == [False, True, False, False]
    assert [(edge.low, edge.high, edge.label) for edge in graph.edges] == [(1, 2, "card, subnet24"), (3, 4, "email")]
    single = ring_graph([(7, "alone")], [], width=CHART_WIDTH, height=300)
    assert (single.nodes[0].x, single.nodes[0].y) == (CHART_WIDTH / 2, 150.0)
