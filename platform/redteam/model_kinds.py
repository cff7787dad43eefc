"""The red team's model-kind campaigns: the attacks of `redteam.attacks` run over HTTP against a served model, one
API key per campaign, and what each recovered.

Which attacks fit is read off the full model's behaviour, as its owner can (`model_kind`): a linear model's
log-odds are affine in the input (equation solving, and Lowd-Meek for two classes), a tree answers a handful of
distinct probability vectors (path finding). Model inversion fits any model, given natural inputs for its prior.
Each campaign runs against enterprise and each public tier, so the report shows what the tiers' answers change.

Who holds what, as in `redteam.exercise`: the attacker holds its key, the public rows of a demo model (none for
an operator's model: it then starts from uniform draws, and inversion, which needs a prior, is not run) and the
answers; the measurement holds the full model (its labels on the held-out set, and for a linear model its
parameters, fitted to its own logits) and the held-out set's own classes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from core.errors import NotFoundError
from redteam import measure
from redteam.attacks import (
    Answers,
    Evaluation,
    InputGrid,
    LinearModel,
    find_paths,
    invert_class,
    lowd_meek,
    solve_equations,
)
from redteam.attacks.equation_solving import fit_linear
from redteam.attacks.oracle import BudgetExhausted
from redteam.campaigns import (
    EXHAUSTED,
    FAILED,
    FROZEN,
    LONG_WAIT_SECONDS,
    PACE_MARGIN,
    RETRIES,
    THROTTLED,
    Account,
    AccountEvent,
    CampaignLog,
    _parse_predictions,
    event_summary,
    is_throttled,
)
from redteam.client import ApiAnswer, ClientError
from redteam.public_data import public_rows
from serving.input_schema import InputSchema
from serving.registry.models import MLModel, ModelVersion
from serving.registry.selectors import active_version, model_get, model_heldout, version_classifier
from tiers.models import Tier

LINEAR, TREE, OTHER = "linear", "tree", "other"
EQUATION_SOLVING, PATH_FINDING, LOWD_MEEK, INVERSION = "equation_solving", "path_finding", "lowd_meek", "inversion"
TITLES = {
    EQUATION_SOLVING: "equation solving on the answers' probabilities",
    PATH_FINDING: "path finding on the answers' confidences",
    LOWD_MEEK: "Lowd-Meek line search on labels",
    INVERSION: "model inversion from confidences",
}
ATTACKED_TIERS = ("enterprise", "pro", "free")
# A linear model's log-odds fit an affine map to this (in logits, over the sample's rows whose every probability
# is at least LINEAR_MIN_PROBABILITY); float32 probabilities (an ONNX graph's) reach about 1e-4 there.
LINEAR_TOLERANCE = 1e-3
LINEAR_MIN_PROBABILITY = 1e-3
# A tree answers at most this share of distinct probability vectors over a sample of inputs.
TREE_DISTINCT_SHARE = 0.1
KIND_SAMPLE = 500
# Model inversion: the classes reconstructed per tier (the first ones), and the queries each may spend.
INVERSION_CLASSES = 2
INVERSION_BUDGET = 600


# --- What the measurement knows ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ModelKindReference:
    """One served model as the measurement sees it (see the module docstring)."""

    slug: str
    kind: str
    schema: InputSchema
    grid: InputGrid
    classes: list[str]
    evaluation: Evaluation  # held-out inputs and the full model's labels
    heldout: Evaluation  # held-out inputs and their own classes
    pool: np.ndarray | None  # the attacker's natural inputs, None when it has none
    truth: LinearModel | None  # the full model's parameters, when it is linear
    tiers: dict[str, Tier]
    versions: dict[str, str]


def model_kind(
    logits_fn: Callable[[np.ndarray], np.ndarray], grid: InputGrid, inputs: np.ndarray
) -> tuple[str, LinearModel | None]:
    """The kind of the model behind `logits_fn`, read off its logits on `inputs` (values on the grid), and for a
    linear model its parameters: the least-squares fit of its log-odds, exact to LINEAR_TOLERANCE."""
    logits = np.asarray(logits_fn(inputs), dtype=np.float64)
    n_classes = logits.shape[1]
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    # Only rows whose every probability carries digits: float32 answers 1 - p for p near 1, and a log-odds of
    # 1e-7 +- 6e-8 says nothing.
    informative = (probabilities > LINEAR_MIN_PROBABILITY).all(axis=1)
    if informative.sum() > 2 * (grid.n_features + 1):
        rows = inputs[informative]
        answers = Answers(logits[informative].argmax(axis=1), probabilities[informative].max(axis=1),
                          probabilities[informative])  # fmt: skip
        fit = fit_linear(rows, answers, grid, n_classes=n_classes, resolution=None)
        if fit.model is not None:
            shown = logits[informative] - logits[informative, :1]
            if float(np.abs(fit.model.logits(rows) - shown).max()) < LINEAR_TOLERANCE:
                return LINEAR, fit.model
    distinct = np.unique(np.round(probabilities, 9), axis=0).shape[0]
    if distinct <= max(2, TREE_DISTINCT_SHARE * inputs.shape[0]):
        return TREE, None
    return OTHER, None


def attacked_model(slug: str) -> tuple[MLModel, ModelVersion, tuple[np.ndarray, np.ndarray]]:
    """A model to attack as the registry holds it: the model, its active full version and its held-out set (codes,
    class indices). Raises RuntimeError when there is no such model, or it has no active full version or no
    held-out set (nothing to measure a copy against)."""
    try:
        model = model_get(slug=slug)
    except NotFoundError as exc:
        raise RuntimeError(f"no model '{slug}' to attack") from exc
    full = active_version(model_slug=slug, variant="full")
    if full is None:
        raise RuntimeError(f"no active full version of '{slug}': train or register one first")
    heldout = model_heldout(model=model)
    if heldout is None:
        raise RuntimeError(f"'{slug}' has no held-out set: there is nothing to measure its copies against")
    return model, full, heldout


def load_model_kind_reference(slug: str, *, seed: int = 0) -> ModelKindReference:
    """Read a model's active versions and held-out set from the registry (see `attacked_model` for what it
    raises)."""
    model, full, heldout = attacked_model(slug)
    classifier = version_classifier(version=full)
    schema = classifier.schema
    grid = InputGrid.from_schema(schema)
    inputs = schema.values(heldout[0])
    sample = np.concatenate([inputs, grid.uniform(np.random.default_rng(seed), KIND_SAMPLE)])
    kind, truth = model_kind(classifier.logits, grid, sample)
    public = public_rows(slug, full.provenance or {})
    versions = {"full": full.version}
    defended = active_version(model_slug=slug, variant="defended")
    if defended is not None:
        versions["defended"] = defended.version
    return ModelKindReference(
        slug=slug,
        kind=kind,
        schema=schema,
        grid=grid,
        classes=list(model.class_labels),
        evaluation=Evaluation(inputs, classifier.logits(inputs).argmax(axis=1)),
        heldout=Evaluation(inputs, heldout[1]),
        pool=None if public is None else grid.snap(public[0]),
        truth=truth,
        tiers={tier.code: tier for tier in Tier.objects.filter(code__in=ATTACKED_TIERS)},
        versions=versions,
    )


# --- What runs ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelKindPlan:
    model: str
    name: str  # EQUATION_SOLVING, PATH_FINDING, LOWD_MEEK or INVERSION
    tier: str
    accounts: int = 1


def model_kind_plans(reference: ModelKindReference) -> list[ModelKindPlan]:
    """The campaigns that fit the model's kind, each on every tier (Lowd-Meek on enterprise and free: labels are
    alike on every tier, so pro would only repeat free), and inversion when the attacker has natural inputs."""
    names: list[str] = []
    if reference.kind == LINEAR:
        names.append(EQUATION_SOLVING)
    if reference.kind == TREE:
        names.append(PATH_FINDING)
    plans = [ModelKindPlan(reference.slug, name, tier) for name in names for tier in ATTACKED_TIERS]
    if reference.kind == LINEAR and len(reference.classes) == 2:
        plans += [ModelKindPlan(reference.slug, LOWD_MEEK, tier) for tier in ("enterprise", "free")]
    if reference.pool is not None:
        plans += [ModelKindPlan(reference.slug, INVERSION, tier) for tier in ATTACKED_TIERS]
    return plans


class KeyStopped(BudgetExhausted):
    """The key can answer no more: frozen, out of quota, failing, or out of time. The attacks end on it as on an
    exhausted budget, with what they have."""


class ApiOracle:
    """An `Oracle` over one API key, paced as `redteam.campaigns.run_campaign` paces an actor: batches of the
    key's maximum size, as fast as its per-minute limit allows, a 429 waited out as its Retry-After says. Every
    answer and every moment the responses show (throttled, frozen, limit reached) is recorded in `log`."""

    def __init__(
        self,
        account: Account,
        *,
        model: str,
        classes: list[str],
        deadline: float,
        stop: threading.Event | None = None,
    ) -> None:
        self.account = account
        self.model = model
        self.classes = classes
        self.deadline = deadline
        self.stop = stop
        self.log = CampaignLog()
        self.started = time.monotonic()
        self.next_send = self.started
        self.pace = max(account.per_minute * PACE_MARGIN / 60.0, 1e-6)  # answered inputs per second

    def __call__(self, x: np.ndarray) -> Answers:
        x = np.asarray(x, dtype=np.float64)
        size = max(self.account.max_batch, 1)
        return Answers.concatenate([self._ask(x[start : start + size]) for start in range(0, x.shape[0], size)])

    def _note(self, kind: str, detail: str = "") -> None:
        self.log.events.append(
            AccountEvent(
                self.account.label, kind, self.log.answered, self.account.answered,
                time.monotonic() - self.started, detail,
            )
        )  # fmt: skip

    def _end(self, reason: str, kind: str | None = None, detail: str = "") -> KeyStopped:
        if kind is not None:
            self._note(kind, detail)
        self.log.stopped = reason
        self.log.seconds = time.monotonic() - self.started
        return KeyStopped(reason)

    def _ask(self, batch: np.ndarray) -> Answers:
        failures = 0
        while True:
            now = time.monotonic()
            if now >= self.deadline or (self.stop is not None and self.stop.is_set()):
                raise self._end("deadline")
            wait = max(self.next_send, self.account.not_before) - now
            if wait > 0:
                time.sleep(min(wait, self.deadline - now))
                continue
            try:
                answer = self.account.api.predict(batch, model=self.model)
            except ClientError as exc:
                answer = ApiAnswer(0, {"error": {"code": "unreachable", "message": str(exc)}})
            self.log.requests += 1
            limit = answer.header_int("X-RateLimit-Limit")
            if is_throttled(limit, self.account.announced_limits) and not self.account.throttled:
                self.account.throttled = True
                self._note(THROTTLED, f"X-RateLimit-Limit {limit}")
            if answer.status == 200:
                labels, confidences, probabilities = _parse_predictions(answer, self.classes, batch.shape[0])
                self.log.inputs.append(batch)
                self.log.labels.append(labels)
                self.log.confidences.append(confidences)
                if probabilities is not None:
                    self.log.probabilities.append(probabilities)
                self.log.answered += batch.shape[0]
                self.account.answered += batch.shape[0]
                self.next_send = max(self.next_send, now) + batch.shape[0] / self.pace
                self.log.seconds = time.monotonic() - self.started
                return Answers(labels, confidences, probabilities)
            if answer.status == 429:
                retry = answer.header_int("Retry-After") or 1
                if retry > LONG_WAIT_SECONDS:
                    raise self._end("limit reached", EXHAUSTED, f"Retry-After {retry} s")
                self.account.not_before = time.monotonic() + retry
            elif answer.status == 403 and answer.error_code == "key_frozen":
                raise self._end("frozen", FROZEN)
            elif answer.status in (0, 502, 503, 504) and failures < RETRIES:
                failures += 1
                time.sleep(0.5 * 2**failures)
            else:
                raise self._end("failed", FAILED, f"HTTP {answer.status} {answer.error_code}")


def run_model_kind_campaign(
    plan: ModelKindPlan,
    account: Account,
    reference: ModelKindReference,
    *,
    budget: int,
    deadline: float,
    seed: int,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Run one campaign through `account` and summarise it: the server's count of answered queries, the moments
    the responses showed, and what the attack recovered (`result`, see `_equation_solving` and the others)."""
    oracle = ApiOracle(account, model=reference.slug, classes=reference.classes, deadline=deadline, stop=stop)
    run = {
        EQUATION_SOLVING: _equation_solving,
        PATH_FINDING: _path_finding,
        LOWD_MEEK: _lowd_meek,
        INVERSION: _inversion,
    }[plan.name]
    result = run(oracle, reference, budget=budget, seed=seed)
    log = oracle.log
    if not log.stopped:
        log.stopped = "done" if log.answered < budget else "budget"
        log.seconds = time.monotonic() - oracle.started
    tier = reference.tiers[plan.tier]
    frozen = log.first(FROZEN)
    return {
        "model": plan.model,
        "name": plan.name,
        "tier": plan.tier,
        "title": TITLES[plan.name],
        "accounts": plan.accounts,
        "emails": [account.email],
        "queries": log.answered,
        "requests": log.requests,
        "seconds": round(log.seconds, 1),
        "stopped": log.stopped,
        "first_throttle": event_summary(log.first(THROTTLED)),
        "first_freeze": event_summary(frozen),
        "events": [event_summary(event) for event in log.events],
        "cost": str(measure.usage_cost(log.answered, tier.price_per_1000_overage)),
        "base_fees": str((tier.monthly_base_price * plan.accounts).quantize(Decimal("0.01"))),
        "result": result,
    }


def _equation_solving(oracle: ApiOracle, reference: ModelKindReference, *, budget: int, seed: int) -> dict[str, Any]:
    result = solve_equations(
        oracle, reference.grid, n_classes=len(reference.classes), budget=budget, evaluation=reference.evaluation,
        truth=reference.truth, seeds=reference.pool, seed=seed,
    )  # fmt: skip
    return {
        "queries": result.queries,
        "queries_to_target": result.queries_to_target,
        "target_agreement": result.target_agreement,
        "verified_exact": result.verified_exact,
        "resolution": result.resolution,
        "agreement": result.agreement,
        "weight_error": result.weight_error,
        "checkpoints": [
            {"queries": c.queries, "equations": c.equations, "agreement": c.agreement, "weight_error": c.weight_error}
            for c in result.checkpoints
        ],
    }


def _path_finding(oracle: ApiOracle, reference: ModelKindReference, *, budget: int, seed: int) -> dict[str, Any]:
    start = reference.pool[0] if reference.pool is not None else None
    result = find_paths(oracle, reference.grid, budget=budget, evaluation=reference.evaluation, start=start, seed=seed)
    return {
        "queries": result.queries,
        "agreement": result.agreement,
        "leaves_explored": result.leaves_explored,
        "identities_seen": result.identities_seen,
        "complete": result.complete,
        "resolution": result.resolution,
    }


def _lowd_meek(oracle: ApiOracle, reference: ModelKindReference, *, budget: int, seed: int) -> dict[str, Any]:
    result = lowd_meek(
        oracle, reference.grid, budget=budget, evaluation=reference.evaluation, seeds=reference.pool, seed=seed
    )
    cosine = None
    if result.model is not None and reference.truth is not None:
        cosine = result.model.direction_cosine(reference.truth, reference.grid)
    return {
        "queries": result.queries,
        "probe_queries": result.probe_queries,
        "boundary_points": int(result.boundary_points.shape[0]),
        "outliers": result.outliers,
        "agreement": result.agreement,
        "direction_cosine": cosine,
    }


def _inversion(oracle: ApiOracle, reference: ModelKindReference, *, budget: int, seed: int) -> dict[str, Any]:
    classes = []
    for target in range(min(INVERSION_CLASSES, len(reference.classes))):
        remaining = budget - oracle.log.answered
        if remaining < 2 or oracle.log.stopped:
            break
        result = invert_class(
            oracle, reference.grid, target_class=target, n_classes=len(reference.classes),
            budget=min(INVERSION_BUDGET, remaining), prior_inputs=reference.pool, heldout=reference.heldout,
            seed=seed + target,
        )  # fmt: skip
        distance = result.distance
        classes.append(
            {
                "class": reference.classes[target],
                "queries": result.queries,
                "ratio": distance.ratio,
                "start_ratio": distance.start_ratio,
                "to_class_mean": distance.to_class_mean,
                "baseline": distance.baseline,
            }
        )
    return {"queries": sum(c["queries"] for c in classes), "classes": classes}


def model_summary(reference: ModelKindReference, campaigns: list[dict[str, Any]]) -> dict[str, Any]:
    """What the model-kind campaigns add to a model's section of the exercise's summary: the model's kind and
    shape, and their results (`kind_campaigns`)."""
    return {
        "slug": reference.slug,
        "kind": reference.kind,
        "features": reference.grid.n_features,
        "classes": reference.classes,
        "kind_campaigns": campaigns,
    }
