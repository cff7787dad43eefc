"""The report renders the summary's own numbers: Markdown tables and standalone SVG charts."""

import json
import xml.etree.ElementTree as ET

from redteam.report import agreement_chart, render_markdown, write_report

SVG = "{http://www.w3.org/2000/svg}"


def test_the_chart_is_standalone_svg_with_one_line_per_campaign_rising_left_to_right(summary):
    (digits,) = summary["models"]
    campaigns = [c for c in digits["campaigns"] if c["tier"] == "free"] + digits["campaigns"][1:]
    root = ET.fromstring(agreement_chart(campaigns, title="Agreement"))  # noqa: S314 - our own SVG
    lines = root.findall(f"{SVG}polyline")
    assert [line.get("data-campaign") for line in lines] == ["uniform", "natural", "equation_solving"]
    for line, campaign in zip(lines, campaigns, strict=True):
        points = [tuple(map(float, pair.split(","))) for pair in line.get("points").split()]
        assert len(points) == len(campaign["curve"])
        assert [x for x, _ in points] == sorted(x for x, _ in points)
        # Higher agreement is drawn higher (smaller y).
        ordered = sorted(zip(points, campaign["curve"], strict=True), key=lambda pair: pair[1]["agreement"])
        assert [p[0][1] for p in ordered] == sorted((p[0][1] for p in ordered), reverse=True)
    # The frozen campaign's last point is marked.
    assert len(root.findall(f"{SVG}rect")) == 1 + 1 + 1  # background, the frozen marker, the legend's marker


def test_the_markdown_shows_the_summarys_figures(summary):
    text = render_markdown(summary)
    assert "# Red-team exercise abc123" in text
    assert (
        "| uniform | 1 | 740 | 38.0% | 41.0% | — | — | 45.2% | not reached | no | 740 q, 81 s | $0.00 | n/a |" in text
    )
    assert "| natural | 1 | 3,000 | 86.2% | 93.6% | 95.7% | 96.8% | 96.8% | 173 |" in text
    assert "$1.50 + $49.00/month | flagged: p = 2.5e-06 (9/16 in 5 regions) at 3,000 |" in text
    assert "$0.00 + $2,000.00/month | n/a |" in text
    assert (
        "| pro | natural | 3,000 | 96.8% | 9/16 in 5 regions, p = 2.5e-06 | 97.1% | 2/16 in 5 regions, p = 0.57 |"
        in text
    )
    assert "| Pro | 173 | natural | $0.15 | 200,000 | 9 |" in text
    assert "| Enterprise | 100 | equation_solving | $0.15 | 5,000,000 | n/a (by contract) |" in text
    assert "| Free | not reached | — | — | 10,000 | — |" in text
    assert "| `digits`: Enterprise: equation solving reaches >= 99% agreement | met | best 99.8% |" in text
    assert "| Enterprise: equation solving reaches >= 99% agreement | met | best 99.8% |" in text
    assert "| not measured | not run |" in text
    assert "## Model `digits`" in text and "### Targets" in text
    assert "public tiers' model's own agreement with the full model: 96.7%" in text
    assert "without a single query: 98.8%" in text
    assert "- digits free uniform: ops@free-uniform.example: frozen at 740 q (740 its own), 81 s" in text


def test_every_model_has_its_own_section_and_its_kinds_attacks_beside_its_retraining(summary):
    table = {
        **summary["models"][0], "slug": "breast-cancer", "kind": "linear", "features": 30,
        "classes": ["malignant", "benign"], "pool_rows": 0, "baselines": {"defended_agreement": 0.97,
        "public_labels_agreement": None},
        "kind_campaigns": [{
            "name": "lowd_meek", "tier": "free", "queries": 1_240, "first_throttle": None, "first_freeze": None,
            "stopped": "budget", "cost": "0.00", "base_fees": "0.00", "events": [],
            "emails": ["ops@free-lowd-meek.example"],
            "result": {"boundary_points": 31, "outliers": 0, "agreement": 0.97, "direction_cosine": 0.999},
        }],
    }  # fmt: skip
    text = render_markdown({**summary, "models": [*summary["models"], table]})
    digits_part, table_part = text.split("## Model `breast-cancer`")
    assert "## Model `digits`" in digits_part and "### The attacks for its kind" not in digits_part
    assert "A linear model of 30 features and 2 classes" in table_part
    assert "the campaigns that need natural data, and inversion, which needs a prior, are not run" in table_part
    assert "without a single query" not in table_part  # no public rows: no such baseline
    assert "| free | 1,240 | 31 (0) | 97.0% | 0.999 | no | no | budget | $0.00 |" in table_part
    assert "](agreement-breast-cancer-pro.svg)" in table_part


def test_write_report_writes_the_markdown_the_summary_and_a_chart_per_attacked_model_and_tier(summary, tmp_path):
    path = write_report(summary, tmp_path / "report")
    assert path == tmp_path / "report" / "report.md"
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "agreement-digits-enterprise.svg", "agreement-digits-free.svg", "agreement-digits-pro.svg", "report.md",
        "summary.json",
    ]  # fmt: skip
    assert json.loads((path.parent / "summary.json").read_text()) == summary
    for code in ("free", "pro", "enterprise"):
        assert f"](agreement-digits-{code}.svg)" in path.read_text()
        ET.fromstring((path.parent / f"agreement-digits-{code}.svg").read_text())  # noqa: S314 - our own file
