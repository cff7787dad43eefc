"""The red-team exercise end to end: get keys the way thieves do, run every campaign at once over HTTP, measure the
copies against the full model on held-out digits, and summarise (the summary is what the report and the console
read).

Who holds what:
- the attacker (`client`, `campaigns`, `strategies`, `copies`) holds its keys, the public digits (its natural
  data: rows of the split that neither trained the models nor measure the copies), and the answers;
- the measurement (here) loads the registry's active full model once, to label the held-out rows, and the defended
  one, to check the watermark the public tiers served; the copies never see either.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from django.utils import timezone
from threadpoolctl import threadpool_limits

from accounts.services import account_create
from redteam import measure
from redteam.campaigns import FROZEN, Account, CampaignLog, event_summary, run_campaign
from redteam.client import ApiClient, Mailbox, portal_sign_up
from redteam.copies import (
    LABEL_RECIPE,
    LIGHT_RECIPE,
    LOGIT_RECIPE,
    LOGITS,
    SOFT,
    logit_targets,
    predict_labels,
    soft_targets,
    train_copy,
)
from redteam.model_kinds import (
    ModelKindPlan,
    ModelKindReference,
    load_model_kind_reference,
    model_kind_plans,
    model_kind_slugs,
    model_summary,
    run_model_kind_campaign,
)
from redteam.strategies import AdaptiveBoundary, NaturalData, PerturbationWalk, Strategy, UniformRandom
from serving.input_schema import InputSchema
from serving.ml.digits import SLUG as DIGITS_SLUG
from serving.ml.digits import load_digits_split
from serving.ml.mlp import MLPWeights
from serving.registry.selectors import active_version, model_watermark, version_classifier
from serving.watermark import RegionWatermark
from serving.watermark_verification import verify_watermark
from tiers.models import Tier

MODEL = DIGITS_SLUG
TITLES = {
    "equation_solving": "equation solving on probabilities (logits)",
    "uniform": "retraining, uniform random inputs",
    "natural": "retraining, natural data",
    "adaptive": "adaptive retraining near the copy's boundary",
    "perturbation": "perturbation walk",
    "sybil": "sybil ring, natural data",
}
SUMMARY_FORMAT = 1


@dataclass(frozen=True)
class CampaignPlan:
    name: str
    tier: str
    target: str  # copies.SOFT (label + confidence) or copies.LOGITS (probability vectors)
    accounts: int = 1


def default_plans(*, sybil_accounts: int) -> list[CampaignPlan]:
    """Enterprise: what the full model's probabilities give away, against retraining on its labels. Public tiers:
    the retraining campaigns (no probabilities to solve with), and on free, the tier anyone can sign up for, the
    sybil ring; pro's daily quota is 20 times free's, so splitting a pro budget over accounts gains nothing."""
    plans = [CampaignPlan("equation_solving", "enterprise", LOGITS)]
    plans += [CampaignPlan(name, "enterprise", SOFT) for name in ("uniform", "natural", "adaptive")]
    for tier in ("free", "pro"):
        plans += [CampaignPlan(name, tier, SOFT) for name in ("uniform", "natural", "adaptive", "perturbation")]
    plans.append(CampaignPlan("sybil", "free", SOFT, accounts=sybil_accounts))
    return plans


def _strategy(plan: CampaignPlan, pool: np.ndarray, seed: int) -> Strategy:
    if plan.name in ("equation_solving", "natural", "sybil"):
        return NaturalData(pool, seed=seed)
    if plan.name == "uniform":
        return UniformRandom(seed=seed)
    if plan.name == "adaptive":
        return AdaptiveBoundary(seed=seed)
    if plan.name == "perturbation":
        return PerturbationWalk(pool, seed=seed)
    raise ValueError(f"unknown campaign {plan.name!r}")


# --- Getting keys ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    email: str
    organization: str
    ip: str | None
    user_agent: str


def identities(
    plans: list[CampaignPlan | ModelKindPlan], *, run_id: str, seed: int
) -> dict[CampaignPlan | ModelKindPlan, list[Identity]]:
    """Who signs up for what. Independent campaigns look like strangers (own domain, own /24, own browser), so the
    ring job never links them; the sybil ring's accounts share a /24, a script's user agent and numbered addresses
    on one domain, as a scripted ring does. Addresses are in 198.18.0.0/15, a block no client really uses that the
    ring job does not ignore (loopback and private ranges it does)."""
    rng = np.random.default_rng(seed)
    base = int(rng.integers(0, 200))
    out: dict[CampaignPlan | ModelKindPlan, list[Identity]] = {}
    for i, plan in enumerate(plans):
        if plan.name == "sybil":
            domain = f"harvest-{run_id}.example"
            agent = f"python-requests/2.{int(rng.integers(20, 33))}.0"
            out[plan] = [
                Identity(f"collector{k + 1}@{domain}", f"Collector {k + 1}", f"198.19.{base}.{10 + k}", agent)
                for k in range(plan.accounts)
            ]
        else:
            model = getattr(plan, "model", "")  # a model-kind campaign's model; the digits campaigns' own name none
            company = f"{plan.tier}-{plan.name.replace('_', '-')}{'-' + model if model else ''}-{run_id}"
            agent = f"Mozilla/5.0 (X11; Linux x86_64) Chrome/{120 + i}.0.{int(rng.integers(1000, 9999))}.0"
            ip = f"198.18.{(base + i) % 256}.{int(rng.integers(2, 250))}"
            out[plan] = [Identity(f"ops@{company}.example", company, ip, agent)]
    return out


def _make_account(
    plan: CampaignPlan | ModelKindPlan, person: Identity, *, base_url: str, mailbox: Mailbox, password: str, label: str
) -> Account:
    if plan.tier == "free":
        raw_key = portal_sign_up(
            base_url,
            email_address=person.email,
            password=password,
            organization=person.organization,
            mailbox=mailbox,
            user_agent=person.user_agent,
            forwarded_for=person.ip,
        )
    else:
        # Enterprise is by contract and pro is bought through Stripe Checkout, which this exercise does not drive:
        # the operator's onboarding command stands in for both (a paying customer's key on that tier).
        raw_key = account_create(
            email=person.email, tier_code=plan.tier, organization_name=person.organization, accept_terms=True
        ).raw_key
    api = ApiClient(base_url, raw_key, user_agent=person.user_agent, forwarded_for=person.ip)
    account = Account(label=label, email=person.email, api=api)
    account.load_limits()
    return account


# --- Measuring ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Reference:
    """What the measurement holds: the held-out rows and the full model's labels for them, the served models'
    labellers (for the watermark), the attacker's pool, and the tiers as they stand."""

    heldout: np.ndarray
    full_labels: np.ndarray
    labellers: dict[str, Callable[[np.ndarray], np.ndarray]]  # variant -> canonical rows -> class indices
    classes: list[str]
    pool: np.ndarray
    pool_labels: np.ndarray
    tiers: dict[str, Tier]
    versions: dict[str, str]
    schema: InputSchema
    watermark: RegionWatermark  # the model's regions under the server's secret, as the API serves them


def load_reference() -> Reference:
    """Read the active versions from the registry (verified artifacts) and split the digits the way the full model
    was trained: its held-out rows measure the copies, its public rows (never trained on) are the attacker's pool.
    Raises RuntimeError when a variant has no active version, or when the full model's split set no public rows
    aside (an attacker holding the training set measures nothing an API could withhold)."""
    labellers, versions = {}, {}
    provenance, classes = {}, None
    for variant in ("full", "defended"):
        version = active_version(model_slug=MODEL, variant=variant)
        if version is None:
            raise RuntimeError(f"no active {variant} version of '{MODEL}': train or register one first")
        classifier = version_classifier(version=version)
        labellers[variant] = lambda rows, c=classifier: c.logits(c.schema.values(np.asarray(rows))).argmax(axis=1)
        versions[variant] = version.version
        if variant == "full":
            provenance = version.provenance or {}
            classes = list(version.model.class_labels)
    if not provenance.get("public_rows"):
        raise RuntimeError(
            f"the active full version of '{MODEL}' was trained on every digit outside the held-out rows: no public "
            "digits are left for the attacker; retrain with `manage.py train_demo_model`"
        )
    # The split exactly as the provenance recorded it; what it does not record is the loader's default.
    recorded = {"seed": "split_seed", "test_fraction": "test_fraction", "public_fraction": "public_fraction"}
    split = load_digits_split(**{arg: provenance[key] for arg, key in recorded.items() if key in provenance})
    model = active_version(model_slug=MODEL, variant="full").model
    watermark = model_watermark(model=model)
    return Reference(
        heldout=split.X_test,
        full_labels=labellers["full"](split.X_test),
        labellers=labellers,
        classes=classes,
        pool=split.X_public,
        pool_labels=split.y_public,
        tiers={tier.code: tier for tier in Tier.objects.filter(code__in=["free", "pro", "enterprise"])},
        versions=versions,
        schema=watermark.schema,
        watermark=watermark,
    )


def _copy_agreement(
    reference: Reference, X: np.ndarray, targets: np.ndarray, kind: str, *, light: bool = False
) -> tuple[float, MLPWeights]:
    recipe = LOGIT_RECIPE if kind == LOGITS else LIGHT_RECIPE if light else LABEL_RECIPE
    copy = train_copy(
        X, targets, kind=kind, recipe=recipe, bounds=(reference.schema.low, reference.schema.high), seed=0
    )
    return measure.agreement(predict_labels(copy, reference.heldout), reference.full_labels), copy


def _watermark(reference: Reference, tier: Tier, X: np.ndarray, copy: MLPWeights) -> dict[str, Any] | None:
    fraction = float((tier.defenses or {}).get("watermark_fraction", 0.0))
    if fraction <= 0:
        return None  # this tier's answers carry no watermark (enterprise)
    codes = reference.schema.codes(X)
    result = verify_watermark(
        codes,
        predict_labels(copy, reference.schema.values(codes)),
        clean_label_fn=reference.labellers[tier.model_variant],
        n_classes=len(reference.classes),
        watermark=reference.watermark,
        fraction=fraction,
        alpha=measure.WATERMARK_ALPHA,
    )
    return {
        "regions": result.regions,
        "watermark_inputs": result.watermark_inputs,
        "matches": result.matches,
        "p_value": result.p_value,
        "verdict": result.verdict,
    }


def measure_campaign(
    plan: CampaignPlan, log: CampaignLog, reference: Reference, *, emails: list[str]
) -> dict[str, Any]:
    """Train the attacker's copy on the first N answers for every evaluation point, measure it; refine between
    checkpoints around the 90% point; the watermark verdict of every public copy (and, from WATERMARK_MIN_ANSWERS
    answers on, of a lighter-fitting copy of the same answers too)."""
    X = log.answered_inputs()
    if plan.target == LOGITS:
        probabilities = log.answered_probabilities()
        if probabilities is None or probabilities.shape[0] != X.shape[0]:
            raise RuntimeError(f"{plan.tier} answered no probability vectors: equation solving needs them")
        targets = logit_targets(probabilities)
    else:
        targets = soft_targets(log.answered_labels(), log.answered_confidences(), n_classes=len(reference.classes))
    tier = reference.tiers[plan.tier]
    curve: dict[int, dict[str, Any]] = {}

    def point(queries: int, *, checkpoint: bool) -> None:
        value, copy = _copy_agreement(reference, X[:queries], targets[:queries], plan.target)
        curve[queries] = {
            "queries": queries,
            "agreement": value,
            "checkpoint": checkpoint,
            "watermark": _watermark(reference, tier, X[:queries], copy),
        }
        if curve[queries]["watermark"] and queries >= measure.WATERMARK_MIN_ANSWERS and plan.target == SOFT:
            # The same answers, a thief that fits them less closely: does the verdict survive?
            light_value, light_copy = _copy_agreement(reference, X[:queries], targets[:queries], SOFT, light=True)
            curve[queries]["light"] = {
                "agreement": light_value,
                "watermark": _watermark(reference, tier, X[:queries], light_copy),
            }

    checkpoints = [c for c in measure.CHECKPOINTS if c <= max(log.answered, 1)]
    for queries in measure.evaluation_points(log.answered, checkpoints):
        point(queries, checkpoint=queries in measure.CHECKPOINTS)
    measured = sorted(curve)
    first = measure.queries_to_reach([(q, curve[q]["agreement"]) for q in measured])
    if first is not None:
        below = max([q for q in measured if q < first], default=0)
        for queries in measure.refinement_points(below, first):
            point(queries, checkpoint=False)
    ordered = [curve[q] for q in sorted(curve)]
    frozen = [e for e in log.events if e.kind == FROZEN]
    throttle = log.first("throttled")
    return {
        "name": plan.name,
        "tier": plan.tier,
        "title": TITLES[plan.name],
        "target": "probabilities (logits)" if plan.target == LOGITS else "label + confidence",
        "accounts": plan.accounts,
        "emails": emails,
        "queries": log.answered,
        "requests": log.requests,
        "seconds": round(log.seconds, 1),
        "stopped": log.stopped,
        "curve": ordered,
        "final_agreement": curve[log.answered]["agreement"] if log.answered else 0.0,
        "queries_to_90": measure.queries_to_reach([(p["queries"], p["agreement"]) for p in ordered]),
        "first_throttle": event_summary(throttle),
        "first_freeze": event_summary(frozen[0] if frozen else None),
        "frozen_accounts": len({e.account for e in frozen}),
        "all_frozen": len({e.account for e in frozen}) == plan.accounts,
        "events": [event_summary(e) for e in log.events],
        "cost": str(measure.usage_cost(log.answered, tier.price_per_1000_overage)),
        "base_fees": str((tier.monthly_base_price * plan.accounts).quantize(Decimal("0.01"))),
    }


def baselines(reference: Reference) -> dict[str, float]:
    """Two yardsticks: the defended model's own agreement with the full one, and a copy trained on the public
    pool's own labels with no query at all (what natural data gives a thief before it pays for anything)."""
    defended = measure.agreement(reference.labellers["defended"](reference.heldout), reference.full_labels)
    targets = soft_targets(reference.pool_labels, np.ones(reference.pool_labels.size), n_classes=len(reference.classes))
    public, _ = _copy_agreement(reference, reference.pool, targets, SOFT)
    return {"defended_agreement": defended, "public_labels_agreement": public}


def tier_summaries(reference: Reference, campaigns: list[dict[str, Any]], *, days: int) -> dict[str, dict[str, Any]]:
    """Per tier: the cheapest clone measured (fewest queries to 90%), what it costs, the limits in force and the
    recommended daily quota."""
    out = {}
    for code, tier in reference.tiers.items():
        runs = [c for c in campaigns if c["tier"] == code and c["queries_to_90"] is not None]
        cheapest = min(runs, key=lambda c: c["queries_to_90"], default=None)
        queries = cheapest["queries_to_90"] if cheapest else None
        out[code] = {
            "code": code,
            "name": tier.name,
            "public": tier.is_public,
            "price_per_1000": str(tier.price_per_1000_overage),
            "monthly_base_price": str(tier.monthly_base_price),
            "limits": {
                "per_minute": tier.requests_per_minute,
                "per_hour": tier.requests_per_hour,
                "per_day": tier.requests_per_day,
                "monthly_included": tier.monthly_included_requests,
                "max_batch": tier.max_batch_size,
            },
            "queries_to_90": queries,
            "clone_campaign": cheapest["name"] if cheapest else None,
            "cost_to_clone": str(measure.usage_cost(queries, tier.price_per_1000_overage)) if queries else None,
            "recommended_daily_quota": measure.recommended_daily_quota(queries, days) if tier.is_public else None,
        }
    return out


# --- The whole exercise ------------------------------------------------------------------------------------------


def run_exercise(
    *,
    base_url: str,
    budget: int,
    sybil_accounts: int,
    days: int,
    mail_dir: Path,
    max_minutes: float,
    seed: int | None = None,
    plans: list[CampaignPlan] | None = None,
    models: list[str] | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Run every campaign against `base_url` and return the summary (see the README's red-team section).

    `plans` are the digits campaigns (default: `default_plans`; an empty list runs none). `models` are the models
    the model-kind campaigns attack (`redteam.model_kinds`; default: every active model of a kind they fit), all
    at once with the digits campaigns, one key each; their results are the summary's `models`."""
    started_at = timezone.now()
    seed = secrets.randbelow(2**31) if seed is None else seed
    run_id = secrets.token_hex(3)
    plans = default_plans(sybil_accounts=sybil_accounts) if plans is None else plans
    # Many small matrix products in several threads: one BLAS thread each is several times faster on a busy machine.
    with threadpool_limits(limits=1, user_api="blas"):
        reference = load_reference()
        slugs = model_kind_slugs() if models is None else models
        kinds: dict[str, ModelKindReference] = {slug: load_model_kind_reference(slug, seed=seed) for slug in slugs}
        kind_plans = [plan for kind in kinds.values() for plan in model_kind_plans(kind)]
        accounts: dict[CampaignPlan | ModelKindPlan, list[Account]] = {}
        password = secrets.token_urlsafe(18)
        mailbox = Mailbox(mail_dir)
        for plan, people in identities([*plans, *kind_plans], run_id=run_id, seed=seed).items():
            prefix = f"{plan.model}/" if isinstance(plan, ModelKindPlan) else ""
            accounts[plan] = [
                _make_account(
                    plan, person, base_url=base_url, mailbox=mailbox, password=password,
                    label=f"{prefix}{plan.tier}/{plan.name}/{k + 1}",
                )
                for k, person in enumerate(people)
            ]  # fmt: skip
            progress(f"keys: {prefix}{plan.tier} {plan.name}: {', '.join(a.email for a in accounts[plan])}")
        deadline = time.monotonic() + max_minutes * 60
        stop = threading.Event()
        measured: dict[CampaignPlan, Future] = {}
        kind_results: dict[ModelKindPlan, dict[str, Any]] = {}
        workers = max(len(plans) + len(kind_plans), 1)
        with ThreadPoolExecutor(max_workers=1) as measurer, ThreadPoolExecutor(max_workers=workers) as runners:
            yardsticks = measurer.submit(baselines, reference)  # while the campaigns wait on their pace

            def attack(plan: CampaignPlan, index: int) -> None:
                log = run_campaign(
                    accounts=accounts[plan], strategy=_strategy(plan, reference.pool, seed + index), budget=budget,
                    deadline=deadline, classes=reference.classes, stop=stop,
                )  # fmt: skip
                progress(f"done: {plan.tier} {plan.name}: {log.answered:,} answered in {log.seconds:.0f} s, "
                         f"stopped: {log.stopped}")  # fmt: skip
                measured[plan] = measurer.submit(
                    measure_campaign, plan, log, reference, emails=[a.email for a in accounts[plan]]
                )

            def attack_kind(plan: ModelKindPlan, index: int) -> None:
                # The attack measures itself as it goes (its own small fits): no copy to train afterwards.
                result = run_model_kind_campaign(
                    plan, accounts[plan][0], kinds[plan.model], budget=budget, deadline=deadline, seed=seed + index,
                    stop=stop,
                )  # fmt: skip
                progress(f"done: {plan.model} {plan.tier} {plan.name}: {result['queries']:,} answered in "
                         f"{result['seconds']:.0f} s, stopped: {result['stopped']}")  # fmt: skip
                kind_results[plan] = result

            running = [runners.submit(attack, plan, i) for i, plan in enumerate(plans)]
            running += [runners.submit(attack_kind, plan, len(plans) + i) for i, plan in enumerate(kind_plans)]
            try:
                for future in running:
                    future.result()
            except BaseException:
                stop.set()
                raise
            campaigns = [measured[plan].result() for plan in plans]
    summary = {
        "format": SUMMARY_FORMAT,
        "run_id": run_id,
        "seed": seed,
        "started_at": started_at.isoformat(),
        "finished_at": timezone.now().isoformat(),
        "base_url": base_url,
        "budget": budget,
        "sybil_accounts": sybil_accounts,
        "days": days,
        "checkpoints": [c for c in measure.CHECKPOINTS if c <= budget],
        "heldout_rows": int(reference.heldout.shape[0]),
        "pool_rows": int(reference.pool.shape[0]),
        "model": {"slug": MODEL, **reference.versions},
        "baselines": yardsticks.result(),
        "campaigns": campaigns,
        "tiers": tier_summaries(reference, campaigns, days=days),
        "models": [
            model_summary(kind, [kind_results[plan] for plan in kind_plans if plan.model == slug])
            for slug, kind in kinds.items()
        ],
    }
    summary["targets"] = [{"text": t.text, "met": t.met, "detail": t.detail} for t in measure.evaluate_targets(summary)]
    return summary
