"""A red-team summary as `run_exercise` writes it (format 2: a section per model), small enough to read, for the
report and storage tests; and one as format 1 wrote it, which the console still reads."""

import pytest


def campaign(name: str, tier: str, curve: list[tuple[int, float]], **overrides) -> dict:
    queries = curve[-1][0]
    data = {
        "name": name,
        "tier": tier,
        "title": name,
        "target": "label + confidence",
        "accounts": 1,
        "emails": [f"ops@{tier}-{name}.example"],
        "queries": queries,
        "requests": queries // 10,
        "seconds": 12.5,
        "stopped": "budget",
        "curve": [
            {"queries": q, "agreement": a, "checkpoint": q in (100, 300, 1000), "watermark": None} for q, a in curve
        ],
        "final_agreement": curve[-1][1],
        "queries_to_90": next((q for q, a in curve if a >= 0.9), None),
        "first_throttle": None,
        "first_freeze": None,
        "frozen_accounts": 0,
        "all_frozen": False,
        "events": [],
        "cost": "0.00",
        "base_fees": "0.00",
    }
    data.update(overrides)
    return data


def tier(code: str, *, public: bool, queries: int | None, per_day: int, price: str) -> dict:
    return {
        "code": code,
        "name": code.title(),
        "public": public,
        "price_per_1000": price,
        "monthly_base_price": "49.00",
        "limits": {"per_minute": 600, "per_hour": 36_000, "per_day": per_day, "monthly_included": 10**6,
                   "max_batch": 100},
        "queries_to_90": queries,
        "clone_campaign": ("equation_solving" if not public else "natural") if queries else None,
        "cost_to_clone": "0.15" if queries else None,
        "recommended_daily_quota": 9 if public and queries else None,
    }  # fmt: skip


def _digits_section() -> dict:
    freeze = {"account": "digits/free/uniform/1", "kind": "frozen", "queries": 740, "account_queries": 740,
              "seconds": 81.0, "detail": ""}  # fmt: skip
    watermark = {"regions": 5, "watermark_inputs": 16, "matches": 9, "p_value": 2.5e-6, "verdict": True}
    natural = campaign(
        "natural", "pro", [(100, 0.862), (300, 0.936), (1000, 0.957), (3000, 0.968)], queries_to_90=173,
        cost="1.50", base_fees="49.00",
    )  # fmt: skip
    natural["curve"][-1]["watermark"] = watermark
    natural["curve"][-1]["light"] = {
        "agreement": 0.971,
        "watermark": {"regions": 5, "watermark_inputs": 16, "matches": 2, "p_value": 0.57, "verdict": False},
    }
    return {
        "slug": "digits",
        "kind": "other",
        "features": 64,
        "classes": [str(d) for d in range(10)],
        "versions": {"full": "v-full", "defended": "v-defended"},
        "heldout_rows": 450,
        "pool_rows": 269,
        "checkpoints": [100, 300, 1000, 3000],
        "days": 30,
        "baselines": {"defended_agreement": 0.9667, "public_labels_agreement": 0.9878},
        "campaigns": [
            campaign(
                "uniform",
                "free",
                [(100, 0.38), (300, 0.41), (740, 0.452)],
                first_freeze=freeze,
                events=[freeze],
                frozen_accounts=1,
                all_frozen=True,
                stopped="no usable key left",
            ),
            natural,
            campaign(
                "equation_solving",
                "enterprise",
                [(100, 0.969), (300, 0.993), (1000, 0.998)],
                target="probabilities (logits)",
                base_fees="2000.00",
            ),
        ],
        "tiers": {
            "free": tier("free", public=True, queries=None, per_day=10_000, price="0.0000"),
            "pro": tier("pro", public=True, queries=173, per_day=200_000, price="0.5000"),
            "enterprise": tier("enterprise", public=False, queries=100, per_day=5_000_000, price="0.2000"),
        },
        "targets": [
            {"text": "Enterprise: equation solving reaches >= 99% agreement", "met": True, "detail": "best 99.8%"},
            {"text": "Public tiers: the sybil ring is frozen", "met": None, "detail": "not run"},
        ],
        "kind_campaigns": [],
    }


_RUN = {
    "run_id": "abc123",
    "seed": 7,
    "started_at": "2026-11-22T13:00:00+00:00",
    "finished_at": "2026-11-22T13:18:00+00:00",
    "base_url": "http://127.0.0.1:8766",
    "budget": 3000,
    "sybil_accounts": 5,
    "days": 30,
    "checkpoints": [100, 300, 1000, 3000],
}


@pytest.fixture
def summary() -> dict:
    section = _digits_section()
    return {
        "format": 2,
        **_RUN,
        "models": [section],
        "targets": [{**t, "text": f"`digits`: {t['text']}"} for t in section["targets"]],
    }


@pytest.fixture
def legacy_summary() -> dict:
    """Format 1: the digits campaigns at the top, the other models' kind campaigns in `models`."""
    section = _digits_section()
    return {
        "format": 1,
        **_RUN,
        "heldout_rows": 450,
        "pool_rows": 269,
        "model": {"slug": "digits", "full": "v-full", "defended": "v-defended"},
        **{key: section[key] for key in ("baselines", "campaigns", "tiers", "targets")},
        "models": [],
    }
