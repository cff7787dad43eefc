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
- the measurement (`redteam.measurement`) loads the registry's active full model once, to label the held-out rows,
  and the variant the public tiers are served, to check the watermark they served; the copies never see either.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.utils import timezone
from threadpoolctl import threadpool_limits

from accounts.services import account_create
from redteam import measure
from redteam.campaigns import Account, run_campaign
from redteam.client import ApiClient, Mailbox, portal_sign_up
from redteam.copies import LOGITS, SOFT
from redteam.measurement import Reference, attacked_models, baselines, load_reference, measure_campaign, model_section
from redteam.model_kinds import (
    ModelKindPlan,
    load_model_kind_reference,
    model_kind_plans,
    run_model_kind_campaign,
)
from redteam.strategies import AdaptiveBoundary, NaturalData, PerturbationWalk, Strategy, UniformRandom

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
            # The family keeps apart a model's two campaigns of one name on one tier (equation solving retrains a
            # copy on logits and, for a linear model, solves for it): each its own company and address.
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
