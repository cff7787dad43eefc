"""The red-team exercise end to end, for every served model: get keys the way thieves do, run every campaign at once
over HTTP, measure the copies against each full model on its held-out rows, and summarise (the summary is what the
report and the console read).

Per model, two families of campaigns run against enterprise and each public tier:
- retraining (`CampaignPlan`, here): Tramer et al.'s uniform and adaptive (line-search) retraining, retraining on
  the attacker's natural data, a perturbation walk and a sybil ring, all in the model's own units (its input
  schema), and on enterprise retraining on its probability vectors; the attacker trains an MLP copy on what it was
  answered (`redteam.copies`), measured at checkpoints;
- the attacks that fit the model's kind (`redteam.model_kinds`: equation solving, path finding, Lowd-Meek, model
  inversion), which measure themselves as they go.

Who holds what:
- the attacker (`client`, `campaigns`, `strategies`, `copies`) holds its keys, the model's public rows when it has
  any (`redteam.public_data`: its natural data, rows that neither trained the models nor measure the copies), and
  the answers; with no public rows it has only the schema, and the campaigns that need natural data do not run;
- the measurement (here) loads the registry's active full model once, to label the held-out rows, and the variant
  the public tiers are served, to check the watermark they served; the copies never see either.
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
    attacked_model,
    load_model_kind_reference,
    model_kind_plans,
    model_summary,
    run_model_kind_campaign,
)
from redteam.public_data import public_rows
from redteam.strategies import AdaptiveBoundary, NaturalData, PerturbationWalk, Strategy, UniformRandom
from serving.input_schema import InputSchema
from serving.ml.mlp import MLPWeights
from serving.registry.selectors import (
    active_version,
    model_list,
    model_watermark,
    version_classifier,
)
from serving.watermark import RegionWatermark
from serving.watermark_verification import verify_watermark
from tiers.models import Tier

TITLES = {
    "equation_solving": "equation solving on probabilities (logits)",
    "uniform": "retraining, uniform random inputs",
    "natural": "retraining, natural data",
    "adaptive": "adaptive retraining near the copy's boundary",
    "perturbation": "perturbation walk",
    "sybil": "sybil ring, natural data",
}
# The campaigns that send the attacker's natural inputs, or start from one: none runs for a model it has none of.
NEEDS_NATURAL_DATA = ("equation_solving", "natural", "perturbation", "sybil")
# 2: a section per model (`models`), each with its retraining campaigns, tiers, targets and kind campaigns.
SUMMARY_FORMAT = 2


@dataclass(frozen=True)
class CampaignPlan:
    model: str
    name: str
    tier: str
    target: str  # copies.SOFT (label + confidence) or copies.LOGITS (probability vectors)
    accounts: int = 1


def default_plans(model: str, *, sybil_accounts: int, natural_data: bool = True) -> list[CampaignPlan]:
    """Enterprise: what the full model's probabilities give away, against retraining on its labels. Public tiers:
    the retraining campaigns (no probabilities to solve with), and on free, the tier anyone can sign up for, the
    sybil ring; pro's daily quota is 20 times free's, so splitting a pro budget over accounts gains nothing.
    Without `natural_data` only the campaigns that need none (`NEEDS_NATURAL_DATA`)."""
    plans = [CampaignPlan(model, "equation_solving", "enterprise", LOGITS)]
    plans += [CampaignPlan(model, name, "enterprise", SOFT) for name in ("uniform", "natural", "adaptive")]
    for tier in ("free", "pro"):
        plans += [CampaignPlan(model, name, tier, SOFT) for name in ("uniform", "natural", "adaptive", "perturbation")]
    plans.append(CampaignPlan(model, "sybil", "free", SOFT, accounts=sybil_accounts))
    return plans if natural_data else [plan for plan in plans if plan.name not in NEEDS_NATURAL_DATA]


def _strategy(plan: CampaignPlan, reference: Reference, seed: int) -> Strategy:
    schema = reference.schema
    if plan.name in ("equation_solving", "natural", "sybil"):
        return NaturalData(schema, reference.pool, seed=seed)
    if plan.name == "uniform":
        return UniformRandom(schema, seed=seed)
    if plan.name == "adaptive":
        return AdaptiveBoundary(schema, n_classes=len(reference.classes), seed=seed)
    if plan.name == "perturbation":
        return PerturbationWalk(schema, reference.pool, seed=seed)
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
    rings = 0
    for i, plan in enumerate(plans):
        if plan.name == "sybil":  # each ring its own script, domain and /24
            domain = f"harvest-{plan.model}-{run_id}.example"
            agent = f"python-requests/2.{int(rng.integers(20, 33))}.0"
            network = f"198.19.{(base + rings) % 256}"
            rings += 1
            out[plan] = [
                Identity(f"collector{k + 1}@{domain}", f"Collector {k + 1}", f"{network}.{10 + k}", agent)
                for k in range(plan.accounts)
            ]
        else:
            # No number in it: numbered addresses are what a scripted ring signs up with.
            family = "kind" if isinstance(plan, ModelKindPlan) else "retrain"
            company = f"{plan.tier}-{plan.name.replace('_', '-')}-{family}-{plan.model}-{run_id}"
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
    """What the measurement holds of one model: its held-out rows (codes) and the full model's labels for them, the
    served variants' labellers (for the watermark), the attacker's pool (codes, None when it has none), and the
    tiers as they stand."""

    slug: str
    schema: InputSchema
    heldout: np.ndarray
    full_labels: np.ndarray
    labellers: dict[str, Callable[[np.ndarray], np.ndarray]]  # variant -> codes -> class indices
    classes: list[str]
    pool: np.ndarray | None
    pool_labels: np.ndarray | None
    tiers: dict[str, Tier]
    versions: dict[str, str]
    watermark: RegionWatermark  # the model's regions under the server's secret, as the API serves them

    def labeller(self, variant: str) -> Callable[[np.ndarray], np.ndarray]:
        """The labels of the variant a tier is served; a model with no such variant serves its full one."""
        return self.labellers.get(variant, self.labellers["full"])


def load_reference(slug: str) -> Reference:
    """Read a model's active versions and held-out set from the registry (verified artifacts), and the public rows
    its attacker may own (`redteam.public_data`). Raises RuntimeError as `attacked_model` does."""
    model, full, heldout = attacked_model(slug)
    labellers, versions = {}, {}
    for variant in ("full", "defended"):
        version = active_version(model_slug=slug, variant=variant)
        if version is None:
            continue
        classifier = version_classifier(version=version)
        labellers[variant] = lambda codes, c=classifier: c.logits(c.schema.values(codes)).argmax(axis=1)
        versions[variant] = version.version
    watermark = model_watermark(model=model)
    schema = watermark.schema
    public = public_rows(slug, full.provenance or {})
    return Reference(
        slug=slug,
        schema=schema,
        heldout=heldout[0],
        full_labels=labellers["full"](heldout[0]),
        labellers=labellers,
        classes=list(model.class_labels),
        pool=None if public is None else schema.codes(public[0]),
        pool_labels=None if public is None else np.asarray(public[1], dtype=np.int64),
        tiers={tier.code: tier for tier in Tier.objects.filter(code__in=["free", "pro", "enterprise"])},
        versions=versions,
        watermark=watermark,
    )


def attacked_models() -> list[str]:
    """The models the exercise attacks by default: every model with an active full version and a held-out set."""
    return [
        model.slug
        for model in model_list()
        if active_version(model_slug=model.slug, variant="full") is not None and model.heldout_path
    ]


def _copy_agreement(
    reference: Reference, codes: np.ndarray, targets: np.ndarray, kind: str, *, light: bool = False
) -> tuple[float, MLPWeights]:
    recipe = LOGIT_RECIPE if kind == LOGITS else LIGHT_RECIPE if light else LABEL_RECIPE
    schema = reference.schema
    copy = train_copy(schema.values(codes), targets, kind=kind, recipe=recipe, bounds=(schema.low, schema.high), seed=0)
    copy_labels = predict_labels(copy, schema.values(reference.heldout))
    return measure.agreement(copy_labels, reference.full_labels), copy


def _watermark(reference: Reference, tier: Tier, codes: np.ndarray, copy: MLPWeights) -> dict[str, Any] | None:
    fraction = float((tier.defenses or {}).get("watermark_fraction", 0.0))
    if fraction <= 0:
        return None  # this tier's answers carry no watermark (enterprise)
    result = verify_watermark(
        codes,
        predict_labels(copy, reference.schema.values(codes)),
        clean_label_fn=reference.labeller(tier.model_variant),
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


def baselines(reference: Reference) -> dict[str, float | None]:
    """Two yardsticks: the public tiers' variant's own agreement with the full model, and a copy trained on the
    public pool's own labels with no query at all (what natural data gives a thief before it pays for anything;
    None when it has none)."""
    defended = measure.agreement(reference.labeller("defended")(reference.heldout), reference.full_labels)
    public = None
    if reference.pool is not None:
        labels = reference.pool_labels
        targets = soft_targets(labels, np.ones(labels.size), n_classes=len(reference.classes))
        public, _ = _copy_agreement(reference, reference.pool, targets, SOFT)
    return {"defended_agreement": defended, "public_labels_agreement": public}


def tier_summaries(reference: Reference, campaigns: list[dict[str, Any]], *, days: int) -> dict[str, dict[str, Any]]:
    """Per tier: the cheapest clone measured (fewest queries to 90%), what it costs, the limits in force and the
    recommended daily quota (the model's extraction budget: see `measure.recommended_daily_quota`)."""
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


def model_section(
    reference: Reference,
    kind: ModelKindReference,
    campaigns: list[dict[str, Any]],
    kind_campaigns: list[dict[str, Any]],
    yardsticks: dict[str, float | None],
    *,
    budget: int,
    days: int,
) -> dict[str, Any]:
    """One model's section of the summary: who it is, its retraining campaigns and what they cost per tier, the
    targets they met, and its kind's campaigns (`model_summary`)."""
    section = {
        **model_summary(kind, kind_campaigns),
        "versions": reference.versions,
        "heldout_rows": int(reference.heldout.shape[0]),
        "pool_rows": 0 if reference.pool is None else int(reference.pool.shape[0]),
        "checkpoints": [c for c in measure.CHECKPOINTS if c <= budget],
        "days": days,
        "baselines": yardsticks,
        "campaigns": campaigns,
        "tiers": tier_summaries(reference, campaigns, days=days),
    }
    section["targets"] = [{"text": t.text, "met": t.met, "detail": t.detail} for t in measure.evaluate_targets(section)]
    return section


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
    models: list[str] | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Run every campaign against `base_url` and return the summary (see the README's red-team section).

    `models`: the models to attack (default: `attacked_models`), each with the retraining campaigns
    (`default_plans`) and those of its kind (`redteam.model_kinds`), all at once, one key each (a ring's several)."""
    started_at = timezone.now()
    seed = secrets.randbelow(2**31) if seed is None else seed
    run_id = secrets.token_hex(3)

    # Many small matrix products in several threads: one BLAS thread each is several times faster on a busy machine.
    with threadpool_limits(limits=1, user_api="blas"):
        slugs = attacked_models() if models is None else models
        references = {slug: load_reference(slug) for slug in slugs}
        kinds = {slug: load_model_kind_reference(slug, seed=seed) for slug in slugs}
        plans = [
            plan
            for slug, reference in references.items()
            for plan in default_plans(slug, sybil_accounts=sybil_accounts, natural_data=reference.pool is not None)
        ]
        kind_plans = [plan for kind in kinds.values() for plan in model_kind_plans(kind)]
        accounts: dict[CampaignPlan | ModelKindPlan, list[Account]] = {}
        password = secrets.token_urlsafe(18)
        mailbox = Mailbox(mail_dir)
        for plan, people in identities([*plans, *kind_plans], run_id=run_id, seed=seed).items():
            accounts[plan] = [
                _make_account(
                    plan, person, base_url=base_url, mailbox=mailbox, password=password,
                    label=f"{plan.model}/{plan.tier}/{plan.name}/{k + 1}",
                )
                for k, person in enumerate(people)
            ]  # fmt: skip
            progress(f"keys: {plan.model} {plan.tier} {plan.name}: {', '.join(a.email for a in accounts[plan])}")
        deadline = time.monotonic() + max_minutes * 60
        stop = threading.Event()
        measured: dict[CampaignPlan, Future] = {}
        kind_results: dict[ModelKindPlan, dict[str, Any]] = {}
        workers = max(len(plans) + len(kind_plans), 1)
        with ThreadPoolExecutor(max_workers=1) as measurer, ThreadPoolExecutor(max_workers=workers) as runners:
            # While the campaigns wait on their pace.
            yardsticks = {slug: measurer.submit(baselines, reference) for slug, reference in references.items()}

            def attack(plan: CampaignPlan, index: int) -> None:
                reference = references[plan.model]
                log = run_campaign(
                    accounts=accounts[plan], strategy=_strategy(plan, reference, seed + index), model=plan.model,
                    schema=reference.schema, budget=budget, deadline=deadline, classes=reference.classes, stop=stop,
                )  # fmt: skip
                progress(f"done: {plan.model} {plan.tier} {plan.name}: {log.answered:,} answered in "
                         f"{log.seconds:.0f} s, stopped: {log.stopped}")  # fmt: skip
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
            results = {plan: measured[plan].result() for plan in plans}
            sections = [
                model_section(
                    reference, kinds[slug], [results[plan] for plan in plans if plan.model == slug],
                    [kind_results[plan] for plan in kind_plans if plan.model == slug], yardsticks[slug].result(),
                    budget=budget, days=days,
                )
                for slug, reference in references.items()
            ]  # fmt: skip
    return {
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
        "models": sections,
        "targets": [
            {**target, "text": f"`{section['slug']}`: {target['text']}"}
            for section in sections
            for target in section["targets"]
        ],
    }
