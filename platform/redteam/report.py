"""The red-team report: Markdown with a section per model and one SVG line chart per model and tier (agreement
against queries, one line per campaign), and the summary as JSON beside it. Pure rendering of a summary: every
figure in it comes from there.
The charts are standalone files (colours as attributes, no stylesheet), so they render on GitHub or in a browser.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from redteam.measure import CHECKPOINTS, CLONE_AGREEMENT, WATERMARK_ALPHA, WATERMARK_MIN_ANSWERS

# Colour-blind-safe palette (Okabe & Ito): each campaign keeps its colour on every tier's chart.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000", "#F0E442")
CAMPAIGN_COLOURS = ("equation_solving", "uniform", "natural", "adaptive", "perturbation", "sybil")
WIDTH, HEIGHT = 760, 380
LEFT, RIGHT, TOP, BOTTOM = 64, 230, 20, 44
TIER_ORDER = ("free", "pro", "enterprise")


def _x_range(campaigns: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    queries = [p["queries"] for c in campaigns for p in c["curve"]] or [CHECKPOINTS[0], CHECKPOINTS[-1]]
    low = 10 ** math.floor(math.log10(max(min(queries), 1)))
    high = 10 ** math.ceil(math.log10(max(max(queries), 10)))
    return min(low, CHECKPOINTS[0]), max(high, 1_000)


def _count(value: float) -> str:
    return f"{value / 1000:g}k" if value >= 1000 else f"{value:g}"


def agreement_chart(campaigns: Sequence[Mapping[str, Any]], *, title: str) -> str:
    """A standalone SVG: agreement (0..100%) against queries (log scale), one polyline per campaign, a square on
    the last point of a frozen campaign, a dashed line at 90%."""
    low, high = _x_range(campaigns)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(queries: float) -> float:
        return round(LEFT + plot_w * (math.log10(max(queries, low)) - math.log10(low)) / math.log10(high / low), 1)

    def y(share: float) -> float:
        return round(TOP + plot_h * (1 - share), 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' font-family="sans-serif" font-size="12" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
    ]
    for share in (0, 0.2, 0.4, 0.6, 0.8, 1.0):
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(share)}" y2="{y(share)}" stroke="#dddddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(share) + 4}" text-anchor="end">{share:.0%}</text>')
    decade = low
    while decade <= high:
        for tick in (decade, 3 * decade):
            if low <= tick <= high:
                parts.append(f'<line x1="{x(tick)}" x2="{x(tick)}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#eeeeee"/>')
                parts.append(f'<text x="{x(tick)}" y="{TOP + plot_h + 16}" text-anchor="middle">{_count(tick)}</text>')
        decade *= 10
    parts.append(
        f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(CLONE_AGREEMENT)}" y2="{y(CLONE_AGREEMENT)}"'
        ' stroke="#888888" stroke-dasharray="5 4"/>'
    )
    parts.append(f'<text x="{LEFT + plot_w - 4}" y="{y(CLONE_AGREEMENT) - 4}" text-anchor="end" fill="#666666">'
                 f"{CLONE_AGREEMENT:.0%}</text>")  # fmt: skip
    parts.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle">queries answered (log scale)</text>'
    )
    middle = TOP + plot_h / 2
    parts.append(f'<text x="14" y="{middle}" text-anchor="middle" transform="rotate(-90 14 {middle})">'
                 "agreement with the full model</text>")  # fmt: skip
    for index, campaign in enumerate(campaigns):
        name_index = CAMPAIGN_COLOURS.index(campaign["name"]) if campaign["name"] in CAMPAIGN_COLOURS else index
        colour = PALETTE[name_index % len(PALETTE)]
        points = [(x(p["queries"]), y(p["agreement"])) for p in campaign["curve"]]
        name = escape(campaign["name"])
        if points:
            path = " ".join(f"{px},{py}" for px, py in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"'
                         f' data-campaign="{name}"/>')  # fmt: skip
            parts += [f'<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>' for px, py in points]
            if campaign.get("first_freeze"):
                px, py = points[-1]
                parts.append(f'<rect x="{px - 5}" y="{py - 5}" width="10" height="10" fill="none" stroke="{colour}"'
                             ' stroke-width="2"/>')  # fmt: skip
        legend_y = TOP + 12 + 18 * index
        parts.append(f'<line x1="{WIDTH - RIGHT + 14}" x2="{WIDTH - RIGHT + 34}" y1="{legend_y - 4}"'
                     f' y2="{legend_y - 4}" stroke="{colour}" stroke-width="2"/>')  # fmt: skip
        parts.append(f'<text x="{WIDTH - RIGHT + 40}" y="{legend_y}">{name}</text>')
    legend_y = TOP + 12 + 18 * len(campaigns) + 6
    parts.append(f'<rect x="{WIDTH - RIGHT + 19}" y="{legend_y - 9}" width="10" height="10" fill="none"'
                 ' stroke="#444444" stroke-width="2"/>')  # fmt: skip
    parts.append(f'<text x="{WIDTH - RIGHT + 40}" y="{legend_y}">frozen here</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# --- Markdown ----------------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _moment(event: Mapping[str, Any] | None) -> str:
    return "no" if event is None else f"{event['queries']:,} q, {event['seconds']:.0f} s"


def _money(amount: str | None) -> str:
    return "—" if amount is None else f"${Decimal(amount):,}"


def _watermark_cell(campaign: Mapping[str, Any]) -> str:
    checked = [p for p in campaign["curve"] if p.get("watermark")]
    if not checked:
        return "n/a"
    largest = max(checked, key=lambda p: p["queries"])
    mark = largest["watermark"]
    flag = "flagged" if mark["verdict"] else "not flagged"
    return (f"{flag}: p = {mark['p_value']:.2g} ({mark['matches']}/{mark['watermark_inputs']} in"
            f" {mark['regions']} regions) at {largest['queries']:,}")  # fmt: skip


def _campaign_row(campaign: Mapping[str, Any], checkpoints: Sequence[int]) -> str:
    at = {p["queries"]: p["agreement"] for p in campaign["curve"]}
    cells = [_pct(at.get(c)) for c in checkpoints]
    to_90 = campaign["queries_to_90"]
    cost = _money(campaign["cost"])
    if campaign["base_fees"] not in ("0", "0.00"):
        cost += f" + {_money(campaign['base_fees'])}/month"
    keys = str(campaign["accounts"])
    if campaign["accounts"] > 1:
        keys += f" ({campaign['frozen_accounts']} frozen)"
    return "| " + " | ".join([
        campaign["name"], keys, f"{campaign['queries']:,}", *cells, _pct(campaign["final_agreement"]),
        f"{to_90:,}" if to_90 is not None else "not reached", _moment(campaign["first_throttle"]),
        _moment(campaign["first_freeze"]), cost, _watermark_cell(campaign),
    ]) + " |"  # fmt: skip


def _targets(summary: Mapping[str, Any], *, heading: str = "##") -> list[str]:
    lines = [f"{heading} Targets", "", "| target | result | measured |", "|---|---|---|"]
    for target in summary["targets"]:
        result = {True: "met", False: "**not met**", None: "not measured"}[target["met"]]
        lines.append(f"| {target['text']} | {result} | {target['detail']} |")
    return lines


def chart_name(slug: str, code: str) -> str:
    return f"agreement-{slug}-{code}.svg"


def _tier_section(summary: Mapping[str, Any], code: str, campaigns: list[Mapping[str, Any]]) -> list[str]:
    tier = summary["tiers"][code]
    checkpoints = summary["checkpoints"]
    limits = tier["limits"]
    header = ["campaign", "keys", "answered", *[f"{c:,}" for c in checkpoints], "at the end", "90% after",
              "throttled", "frozen", "cost", "watermark"]  # fmt: skip
    lines = [
        f"### {tier['name']} ({'public' if tier['public'] else 'by contract'})",
        "",
        f"Limits during the run: {limits['per_minute']:,}/minute, {limits['per_hour']:,}/hour, "
        f"{limits['per_day']:,}/day, batches of {limits['max_batch']}. Prices: "
        f"{_money(tier['monthly_base_price'])}/month, {_money(tier['price_per_1000'])} per 1,000.",
        "",
        f"![agreement against queries, {tier['name']}]({chart_name(summary['slug'], code)})",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += [_campaign_row(c, checkpoints) for c in campaigns]
    return [*lines, ""]


def _clone_section(summary: Mapping[str, Any]) -> list[str]:
    days = summary["days"]
    lines = [
        "### Cost to clone and daily quotas",
        "",
        f"The cheapest campaign per tier that reached {CLONE_AGREEMENT:.0%} agreement; the recommended daily quota"
        f" is the largest under which one account needs more than {days} days for that many queries: the model's"
        " extraction budget per account and day.",
        "",
        "| tier | queries to 90% | by | cost at the tier's prices | daily quota in force | recommended daily quota |",
        "|---|---|---|---|---|---|",
    ]
    for code in _tiers(summary):
        tier = summary["tiers"][code]
        queries = tier["queries_to_90"]
        recommended = tier["recommended_daily_quota"]
        lines.append("| " + " | ".join([
            tier["name"], f"{queries:,}" if queries is not None else "not reached", tier["clone_campaign"] or "—",
            _money(tier["cost_to_clone"]), f"{tier['limits']['per_day']:,}",
            "n/a (by contract)" if not tier["public"] else "—" if recommended is None else f"{recommended:,}",
        ]) + " |")  # fmt: skip
    return [*lines, ""]


def _verdict(mark: Mapping[str, Any] | None) -> str:
    if not mark:
        return "—"
    return f"{mark['matches']}/{mark['watermark_inputs']} in {mark['regions']} regions, p = {mark['p_value']:.2g}"


def _watermark_section(summary: Mapping[str, Any]) -> list[str]:
    rows = [
        (c, p)
        for c in summary["campaigns"]
        for p in c["curve"]
        if p["queries"] >= WATERMARK_MIN_ANSWERS and p.get("watermark")
    ]
    lines = [
        "### Watermark",
        "",
        f"Every public copy trained on at least {WATERMARK_MIN_ANSWERS:,} answers, checked with `verify_watermark`"
        f" (flagged below p = {WATERMARK_ALPHA}): the copy above, which fits its answers as closely as it can, and a"
        " lighter one trained on the same answers the way the platform trains its own models (60 epochs, weight"
        " decay). Matches: the copy's answers that are their marked region's watermark class, of its inputs in"
        " marked regions; the p-value counts regions, not inputs (`serving.watermark_verification.verify_watermark`).",
        "",
    ]
    if not rows:
        return [*lines, f"No public copy was trained on {WATERMARK_MIN_ANSWERS:,} answers.", ""]
    lines += [
        "| tier | campaign | answers | copy: agreement | copy: matches, p | lighter copy: agreement"
        " | lighter copy: matches, p |",
        "|---|---|---|---|---|---|---|",
    ]
    for campaign, point in rows:
        light = point.get("light") or {}
        lines.append("| " + " | ".join([
            campaign["tier"], campaign["name"], f"{point['queries']:,}", _pct(point["agreement"]),
            _verdict(point["watermark"]), _pct(light.get("agreement")), _verdict(light.get("watermark")),
        ]) + " |")  # fmt: skip
    return [*lines, ""]


def _count_or(value: int | None, missing: str = "not reached") -> str:
    return missing if value is None else f"{value:,}"


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def _cost(campaign: Mapping[str, Any]) -> str:
    cost = _money(campaign["cost"])
    if campaign["base_fees"] not in ("0", "0.00"):
        cost += f" + {_money(campaign['base_fees'])}/month"
    return cost


def _by_tier(campaigns: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    found = [c for c in campaigns if c["name"] == name]
    return sorted(found, key=lambda c: TIER_ORDER.index(c["tier"]) if c["tier"] in TIER_ORDER else len(TIER_ORDER))


def _campaign_table(
    rows: Sequence[Mapping[str, Any]], title: str, columns: list[str], cells, *, note: str = ""
) -> list[str]:
    """A table of one attack's campaigns, a row per tier: `columns` and `cells(campaign)` (its own figures) between
    the tier and answered count and the moments every campaign shares."""
    moments = ["throttled", "frozen", "stopped", "cost"]
    header = ["tier", "answered", *columns, *moments]
    lines = [f"#### {title}", ""] + ([note, ""] if note else [])
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for c in rows:
        cells_of = [c["tier"], f"{c['queries']:,}", *cells(c["result"])]
        cells_of += [_moment(c["first_throttle"]), _moment(c["first_freeze"]), c["stopped"], _cost(c)]
        lines.append("| " + " | ".join(cells_of) + " |")
    return [*lines, ""]


def _model_kind_tables(campaigns: Sequence[Mapping[str, Any]]) -> list[str]:
    """One table per attack of `redteam.model_kinds`, a row per tier."""
    lines: list[str] = []
    rows = _by_tier(campaigns, "equation_solving")
    if rows:
        lines += _campaign_table(
            rows,
            "Equation solving on the answers' probabilities",
            ["rounding seen", "99% agreement after", "agreement at the end", "weight error at the end",
             "verified exact"],
            lambda r: [
                "none" if r["resolution"] is None else f"{r['resolution']:g}", _count_or(r["queries_to_target"]),
                _pct(r["agreement"]), _number(r["weight_error"]), "yes" if r["verified_exact"] else "no",
            ],
        )  # fmt: skip
    rows = _by_tier(campaigns, "path_finding")
    if rows:
        lines += _campaign_table(
            rows,
            "Path finding on the answers' confidences",
            ["leaves explored", "leaf identities seen", "complete", "agreement"],
            lambda r: [
                f"{r['leaves_explored']:,}", f"{r['identities_seen']:,}", "yes" if r["complete"] else "no",
                _pct(r["agreement"]),
            ],
        )  # fmt: skip
    rows = _by_tier(campaigns, "lowd_meek")
    if rows:
        lines += _campaign_table(
            rows,
            "Lowd-Meek line search on labels",
            ["boundary points (left out)", "agreement", "direction cosine"],
            lambda r: [
                f"{r['boundary_points']} ({r['outliers']})", _pct(r["agreement"]), _number(r["direction_cosine"], 6)
            ],
        )  # fmt: skip
    rows = _by_tier(campaigns, "inversion")
    if rows:
        classes = [f"class {k['class']}" for k in rows[0]["result"]["classes"]]

        def ratios(r: Mapping[str, Any]) -> list[str]:
            cells = [f"{k['ratio']:.2f} ({k['start_ratio']:.2f})" for k in r["classes"]]
            return cells + ["—"] * (len(classes) - len(cells))

        lines += _campaign_table(
            rows,
            "Model inversion from confidences",
            classes,
            ratios,
            note="Distance of the reconstruction to the class's held-out mean, over the overall held-out mean's (in"
            " held-out spreads); below 1, the answers taught the attacker the class beyond what the population"
            " does (its starting point, in brackets, is about 1).",
        )
    return lines


def _model_section(model: Mapping[str, Any]) -> list[str]:
    """One model's section: its retraining campaigns per tier, its kind's attacks, the watermark and the cost to
    clone."""
    versions = ", ".join(f"{variant} {version}" for variant, version in model["versions"].items())
    pool = (f"{model['pool_rows']:,} public rows, which neither trained the models nor measure the copies"
            if model["pool_rows"] else "none (it starts from uniform draws; the campaigns that need natural data,"
            " and inversion, which needs a prior, are not run)")  # fmt: skip
    base = model["baselines"]
    lines = [
        f"## Model `{model['slug']}`",
        "",
        f"A {model['kind']} model of {model['features']} features and {len(model['classes'])} classes ({versions})."
        f" Each campaign has its own key (a ring its several); agreement is top-1 against the full model on its"
        f" {model['heldout_rows']:,} held-out rows, which the attacker never has; its natural data: {pool}.",
        "",
        *_targets(model, heading="###"),
        "",
        "### Agreement with the full model",
        "",
        f"- The public tiers' model's own agreement with the full model: {_pct(base['defended_agreement'])}.",
    ]
    if base.get("public_labels_agreement") is not None:
        lines.append(
            "- A copy trained on the public rows' own labels, without a single query: "
            f"{_pct(base['public_labels_agreement'])}."
        )
    lines.append("")
    for code in _tiers(model):
        lines += _tier_section(model, code, [c for c in model["campaigns"] if c["tier"] == code])
    kind_tables = _model_kind_tables(model["kind_campaigns"])
    if kind_tables:
        lines += ["### The attacks for its kind", "", *kind_tables]
    lines += _watermark_section(model)
    lines += _clone_section(model)
    return lines


def _tiers(summary: Mapping[str, Any]) -> list[str]:
    present = {c["tier"] for c in summary["campaigns"]}
    return [code for code in TIER_ORDER if code in present and code in summary["tiers"]]


def _accounts_section(summary: Mapping[str, Any]) -> list[str]:
    """Every key the attackers used, by the address the console knows it by, with what happened to it (queries
    counted for the whole actor, then for the key itself)."""
    lines = ["## Accounts", ""]
    for model in summary["models"]:
        slug = model["slug"]
        for campaign in model["campaigns"]:
            for k, email in enumerate(campaign["emails"], start=1):
                label = f"{slug}/{campaign['tier']}/{campaign['name']}/{k}"
                moments = [
                    f"{e['kind'].replace('_', ' ')} at {e['queries']:,} q ({e['account_queries']:,} its own), "
                    f"{e['seconds']:.0f} s"
                    for e in campaign["events"]
                    if e["account"] == label
                ]
                lines.append(
                    f"- {slug} {campaign['tier']} {campaign['name']}: {email}"
                    + (f": {'; '.join(moments)}" if moments else "")
                )
        for campaign in model["kind_campaigns"]:
            moments = [
                f"{e['kind'].replace('_', ' ')} at {e['queries']:,} q, {e['seconds']:.0f} s" for e in campaign["events"]
            ]
            lines.append(
                f"- {slug} {campaign['tier']} {campaign['name']}: {campaign['emails'][0]}"
                + (f": {'; '.join(moments)}" if moments else "")
            )
    return [*lines, ""]


def render_markdown(summary: Mapping[str, Any]) -> str:
    """The report's Markdown (the charts are referenced as agreement-<model>-<tier>.svg beside it)."""
    slugs = ", ".join(f"`{model['slug']}`" for model in summary["models"])
    lines = [
        f"# Red-team exercise {summary['run_id']}",
        "",
        f"{summary['started_at'][:19]} to {summary['finished_at'][:19]} UTC against {summary['base_url']}; models"
        f" {slugs}. Budget {summary['budget']:,} answered queries per campaign; sybil rings of"
        f" {summary['sybil_accounts']} accounts.",
        "",
        *_targets(summary),
        "",
    ]
    for model in summary["models"]:
        lines += _model_section(model)
    lines += _accounts_section(summary)
    lines += [
        "## How it was measured",
        "",
        "- Each actor sends full batches as fast as its key's per-minute limit allows (as `/v1/usage` announced it);"
        " a sybil ring sends at that same aggregate pace, round-robin over its keys. The abuse jobs run on their"
        " own schedule, so the queries counted at a throttle or a freeze grow with the pace.",
        "- Throttled: the first response whose `X-RateLimit-Limit` is none of the tier's announced limits; frozen:"
        " the first 403 `key_frozen`. Queries are the actor's answered inputs at that moment; seconds run from its"
        " first request.",
        "- A copy at N queries is trained on the first N answers (label and confidence, or log-probabilities for"
        " equation solving) and compared top-1 with the full model on the model's held-out rows; the 90% point is"
        " refined between checkpoints. Cost: answered queries x the tier's price per 1,000 / 1,000, plus each"
        " account's monthly base price.",
        "- Watermark: `serving.watermark_verification.verify_watermark` on the copy's labels for the inputs the"
        " actor sent (what"
        " the platform's query log holds), against the served model's labels.",
        "- The attacker's natural data are a demo model's public rows: rows the models were not trained on"
        " and the copies are not measured on, as a thief holds data like the owner's but not the owner's own"
        " (an operator's model has none). The no-query baseline is a copy trained on their true labels, what the"
        " thief's data are worth before it pays for anything. Every campaign works in the model's own units: the"
        " grid its input schema publishes.",
        "- The natural-data target takes the best copy of each campaign, the closely fitting one or the lighter"
        " one; the watermark target counts both.",
    ]
    if any(model["kind_campaigns"] for model in summary["models"]):
        lines += [
            "- The attacks for a model's kind (`redteam.attacks`) measure themselves as they go: equation solving"
            " fits its equations at d + 1, d + 2 and doubling counts and stops once more equations than unknowns fit"
            " exactly; its weight error is relative to the full model's own parameters (fitted to the full model's"
            " logits, in unit-box coordinates). Path finding's leaves are the distinct answers it met. Lowd-Meek's"
            " direction cosine compares its boundary's normal with the full model's. Answered: the inputs the key"
            " was answered, as the query log counts them.",
        ]
    lines.append("")
    return "\n".join(lines)


def write_report(summary: Mapping[str, Any], directory: Path) -> Path:
    """Write report.md, summary.json and one agreement-<model>-<tier>.svg per attacked model and tier into
    `directory`; returns the Markdown file's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for model in summary["models"]:
        for code in _tiers(model):
            campaigns = [c for c in model["campaigns"] if c["tier"] == code]
            title = f"Agreement with the full model `{model['slug']}`, {model['tiers'][code]['name']}"
            (directory / chart_name(model["slug"], code)).write_text(agreement_chart(campaigns, title=title), "utf-8")
    (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    path = directory / "report.md"
    path.write_text(render_markdown(summary), encoding="utf-8")
    return path
