"""The model-kind campaigns over an API: which attacks fit a model, the oracle over one key (pace, 429s, a freeze),
one campaign end to end against an API that answers as a tier does, and the report's section per model."""

import time
from decimal import Decimal

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from redteam.attacks import Evaluation, InputGrid, LinearModel, defended_oracle
from redteam.campaigns import FROZEN, THROTTLED, Account
from redteam.client import ApiAnswer
from redteam.model_kinds import (
    EQUATION_SOLVING,
    INVERSION,
    LINEAR,
    LOWD_MEEK,
    OTHER,
    PATH_FINDING,
    TREE,
    ApiOracle,
    KeyStopped,
    ModelKindPlan,
    ModelKindReference,
    model_kind,
    model_kind_plans,
    model_summary,
    run_model_kind_campaign,
)
from redteam.report import render_markdown
from serving.defenses import DefenseConfig
from serving.input_schema import InputSchema
from serving.watermark import RegionWatermark
from tiers.models import Tier

CLASSES = ["benign", "malignant"]
LIMITS = frozenset({600, 36_000, 10_000, 30_000})
FEATURES = 6


@pytest.fixture(scope="module")
def task():
    X, y = make_classification(n_samples=700, n_features=FEATURES, n_informative=4, n_redundant=0,
                               n_clusters_per_class=1, random_state=3)  # fmt: skip
    low, high = np.floor(X.min(axis=0)) - 1, np.ceil(X.max(axis=0)) + 1
    features = [{"name": f"f{i}", "min": float(low[i]), "max": float(high[i]), "step": 0.001} for i in range(FEATURES)]
    schema = InputSchema.from_dict({"kind": "tabular", "features": features})
    X = schema.values(schema.codes(X))
    regression = LogisticRegression(max_iter=5000).fit(X[:400], y[:400])

    def logits(values: np.ndarray) -> np.ndarray:
        z = regression.decision_function(values)
        return np.stack([np.zeros_like(z), z], axis=1)

    return schema, X, y, regression, logits


# --- Which attacks fit ---------------------------------------------------------------------------------------------


def test_the_kind_is_read_off_the_full_models_logits(task):
    schema, X, y, regression, logits = task
    grid = InputGrid.from_schema(schema)
    kind, truth = model_kind(logits, grid, X)
    assert kind == LINEAR
    assert truth.relative_error(LinearModel.from_softmax(regression.coef_, regression.intercept_), grid) < 1e-9

    tree = DecisionTreeClassifier(max_depth=4, min_samples_leaf=10, random_state=0).fit(X[:400], y[:400])
    assert model_kind(lambda v: np.log(np.maximum(tree.predict_proba(v), 1e-30)), grid, X) == (TREE, None)

    def curved(values: np.ndarray) -> np.ndarray:
        z = 3 * np.sin(values[:, 0]) + values[:, 1] ** 2 - 1
        return np.stack([np.zeros_like(z), z], axis=1)

    assert model_kind(curved, grid, X) == (OTHER, None)


def _reference(task, *, kind=LINEAR, classes=CLASSES, pool=True, tiers=None) -> ModelKindReference:
    schema, X, y, regression, _ = task
    grid = InputGrid.from_schema(schema)
    return ModelKindReference(
        slug="tabular-demo", kind=kind, schema=schema, grid=grid, classes=list(classes),
        evaluation=Evaluation(X[500:], regression.predict(X[500:])), heldout=Evaluation(X[500:], y[500:]),
        pool=X[400:500] if pool else None, truth=LinearModel.from_softmax(regression.coef_, regression.intercept_),
        tiers=tiers or {}, versions={"full": "v1", "defended": "v1-defended"},
    )  # fmt: skip


def test_the_plans_are_the_attacks_of_the_kind_on_every_tier(task):
    plans = model_kind_plans(_reference(task))
    assert [(p.name, p.tier) for p in plans] == [
        (EQUATION_SOLVING, "enterprise"), (EQUATION_SOLVING, "pro"), (EQUATION_SOLVING, "free"),
        (LOWD_MEEK, "enterprise"), (LOWD_MEEK, "free"),
        (INVERSION, "enterprise"), (INVERSION, "pro"), (INVERSION, "free"),
    ]  # fmt: skip
    assert {p.model for p in plans} == {"tabular-demo"}
    # Three classes: no Lowd-Meek (a binary boundary); no natural data: no inversion (it needs a prior).
    three = model_kind_plans(_reference(task, classes=["a", "b", "c"], pool=False))
    assert [p.name for p in three] == [EQUATION_SOLVING] * 3
    trees = model_kind_plans(_reference(task, kind=TREE, pool=False))
    assert [(p.name, p.tier) for p in trees] == [(PATH_FINDING, t) for t in ("enterprise", "pro", "free")]
    assert model_kind_plans(_reference(task, kind=OTHER, pool=False)) == []


# --- The oracle over one key ---------------------------------------------------------------------------------------


class TierApi:
    """Answers as the platform does for one tier (the tier's defenses on the model's logits, JSON-shaped), after
    a script of (status, error code, X-RateLimit-Limit, Retry-After) answers; records what it was sent."""

    def __init__(self, task, config: DefenseConfig, script: list[tuple] | None = None, limit: int = 600) -> None:
        schema, X, _, _, logits = task
        watermark = RegionWatermark.fit(schema, schema.codes(X[:400]), secret=b"w", n_classes=2)
        self.oracle = defended_oracle(logits, schema=schema, config=config, noise_secret=b"n", watermark=watermark)
        self.script = list(script or [])
        self.limit = limit
        self.sent: list[np.ndarray] = []
        self.models: list[str] = []

    def predict(self, inputs: np.ndarray, *, model: str) -> ApiAnswer:
        self.models.append(model)
        status, code, limit, retry = self.script.pop(0) if self.script else (200, "", self.limit, None)
        headers = {"x-ratelimit-limit": str(limit)}
        if retry is not None:
            headers["retry-after"] = str(retry)
        if status != 200:
            return ApiAnswer(status, {"error": {"code": code, "message": ""}}, headers)
        self.sent.append(np.array(inputs))
        answers = self.oracle(np.asarray(inputs, dtype=np.float64))
        predictions = []
        for i in range(len(answers)):
            item = {"label": CLASSES[answers.labels[i]], "confidence": float(answers.confidences[i])}
            if answers.probabilities is not None:
                item["probabilities"] = answers.probabilities[i].tolist()
            predictions.append(item)
        return ApiAnswer(200, {"predictions": predictions}, headers)


def _account(api, per_minute=600_000, max_batch=10) -> Account:
    return Account(label="tabular-demo/free/inversion/1", email="ops@x.example", api=api, per_minute=per_minute,
                   max_batch=max_batch, announced_limits=LIMITS)  # fmt: skip


def test_the_oracle_sends_batches_of_the_keys_size_and_waits_out_a_short_429(task):
    api = TierApi(task, DefenseConfig.none(), script=[(200, "", 600, None), (429, "rate_limited", 600, 1)])
    oracle = ApiOracle(_account(api), model="tabular-demo", classes=CLASSES, deadline=time.monotonic() + 30)
    x = task[1][:25]
    started = time.monotonic()
    answers = oracle(x)
    assert time.monotonic() - started >= 1.0  # the Retry-After was honoured
    assert [batch.shape[0] for batch in api.sent] == [10, 10, 5]
    assert np.array_equal(np.concatenate(api.sent), x)  # grid values sent as they are, not as integers
    assert set(api.models) == {"tabular-demo"}
    assert (oracle.log.answered, oracle.log.requests) == (25, 4)
    assert answers.probabilities.shape == (25, 2)
    assert answers.labels.tolist() == task[3].predict(x).tolist()


def test_a_frozen_key_ends_the_attack_with_what_it_has_and_the_moment_is_recorded(task):
    script = [(200, "", 600, None), (200, "", 150, None), (403, "key_frozen", 150, None)]
    api = TierApi(task, DefenseConfig.none(), script=script)
    oracle = ApiOracle(_account(api), model="tabular-demo", classes=CLASSES, deadline=time.monotonic() + 30)
    oracle(task[1][:20])
    with pytest.raises(KeyStopped):
        oracle(task[1][20:30])
    assert oracle.log.stopped == "frozen"
    # The throttle is noted when the answer that shows it arrives, before its inputs are counted.
    assert [(e.kind, e.queries) for e in oracle.log.events] == [(THROTTLED, 10), (FROZEN, 20)]


# --- One campaign end to end ---------------------------------------------------------------------------------------


@pytest.fixture
def tiers(db) -> dict[str, Tier]:
    return {tier.code: tier for tier in Tier.objects.filter(code__in=["free", "pro", "enterprise"])}


def test_equation_solving_over_the_enterprise_api_recovers_the_model_and_counts_what_was_answered(task, tiers):
    reference = _reference(task, tiers=tiers)
    api = TierApi(task, DefenseConfig.none())
    plan = ModelKindPlan("tabular-demo", EQUATION_SOLVING, "enterprise")
    campaign = run_model_kind_campaign(plan, _account(api), reference, budget=500,
                                       deadline=time.monotonic() + 60, seed=1)  # fmt: skip
    result = campaign["result"]
    assert result["verified_exact"]
    assert result["queries_to_target"] == FEATURES + 1
    assert result["weight_error"] < 1e-9 and result["agreement"] == 1.0
    assert campaign["queries"] == sum(batch.shape[0] for batch in api.sent) == result["queries"]
    assert campaign["stopped"] == "done"
    assert Decimal(campaign["cost"]) == (tiers["enterprise"].price_per_1000_overage * campaign["queries"] / 1000
                                         ).quantize(Decimal("0.01"))  # fmt: skip
    assert (campaign["model"], campaign["first_freeze"], campaign["events"]) == ("tabular-demo", None, [])


def test_a_campaign_frozen_midway_reports_the_freeze_and_what_it_recovered_until_then(task, tiers):
    reference = _reference(task, tiers=tiers)
    free = DefenseConfig.from_dict(tiers["free"].defenses)  # the seeded tier's, as the API reads it
    api = TierApi(task, free, script=[(200, "", 600, None)] * 12 + [(403, "key_frozen", 600, None)])
    plan = ModelKindPlan("tabular-demo", INVERSION, "free")
    campaign = run_model_kind_campaign(plan, _account(api), reference, budget=1000,
                                       deadline=time.monotonic() + 60, seed=1)  # fmt: skip
    answered = sum(batch.shape[0] for batch in api.sent)
    assert 100 < answered <= 120  # 12 batches of at most 10 (a repeated input is not asked again)
    assert campaign["stopped"] == "frozen"
    assert campaign["queries"] == campaign["first_freeze"]["queries"] == answered
    (first,) = campaign["result"]["classes"]  # the second class was never started
    assert first["class"] == "benign" and first["queries"] == answered
    assert first["ratio"] > 0


def test_the_report_has_a_section_per_attacked_model(task, summary):
    reference = _reference(task)
    equation = {
        "model": "tabular-demo", "name": EQUATION_SOLVING, "tier": "pro", "title": "", "accounts": 1,
        "emails": ["ops@pro-equation-solving-tabular-demo.example"], "queries": 3000, "requests": 30,
        "seconds": 40.0, "stopped": "frozen", "first_throttle": None,
        "first_freeze": {"account": "a", "kind": "frozen", "queries": 1200, "account_queries": 1200,
                         "seconds": 21.0, "detail": ""},
        "events": [{"account": "a", "kind": "frozen", "queries": 1200, "account_queries": 1200, "seconds": 21.0,
                    "detail": ""}],
        "cost": "1.50", "base_fees": "49.00",
        "result": {"queries": 1200, "queries_to_target": 176, "target_agreement": 0.99, "verified_exact": False,
                   "resolution": 0.01, "agreement": 0.993, "weight_error": 0.2301, "checkpoints": []},
    }  # fmt: skip
    inversion = {
        **equation, "name": INVERSION, "tier": "enterprise", "stopped": "done", "first_freeze": None, "events": [],
        "cost": "0.24", "base_fees": "2000.00", "queries": 1200,
        "result": {"queries": 1200, "classes": [
            {"class": "benign", "queries": 600, "ratio": 0.31, "start_ratio": 0.95, "to_class_mean": 1.0,
             "baseline": 3.2},
            {"class": "malignant", "queries": 600, "ratio": 0.42, "start_ratio": 1.12, "to_class_mean": 1.1,
             "baseline": 2.6},
        ]},
    }  # fmt: skip
    section = {
        **summary["models"][0], **model_summary(reference, [equation, inversion]), "versions": reference.versions,
        "campaigns": [], "heldout_rows": int(reference.evaluation.inputs.shape[0]), "pool_rows": 0,
    }  # fmt: skip
    text = render_markdown({**summary, "models": [section]})
    assert "## Model `tabular-demo`" in text and "### The attacks for its kind" in text
    assert "A linear model of 6 features and 2 classes (full v1, defended v1-defended)" in text
    row = "| pro | 3,000 | 0.01 | 176 | 99.3% | 0.23 | no | no | 1,200 q, 21 s | frozen | $1.50 + $49.00/month |"
    assert row in text
    assert "| tier | answered | class benign | class malignant |" in text
    assert "| enterprise | 1,200 | 0.31 (0.95) | 0.42 (1.12) | no | no | done | $0.24 + $2,000.00/month |" in text
    account = "- tabular-demo pro equation_solving: ops@pro-equation-solving-tabular-demo.example: frozen at 1,200 q"
    assert account in text
