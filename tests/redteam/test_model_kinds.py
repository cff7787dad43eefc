"""The attacks that depend on the model kind, against real scikit-learn models answered through the serving path's
own defenses (`serving.defenses.apply_defenses`) with each tier's seeded `DefenseConfig`.

Every tier here answers from the same model, so what changes between tiers is what the answers show (in the
platform, public tiers also answer from a defended model; the live exercise measures that). What these tests pin
down, per attack:

- equation solving recovers a logistic regression exactly from d + 1 probability vectors, needs more queries and
  recovers the weights only approximately from rounded ones, and recovers nothing from top-1 answers of a model of
  more than two classes; against the tiers' noise its weight error stays high however many queries it spends;
- path finding recovers every leaf of a depth-4 tree from its confidences, and rounding merges leaves;
- Lowd-Meek finds a linear boundary from labels alone, which no tier's output defense changes;
- model inversion comes closer to a class's mean than the population's mean from confidences.
"""

import importlib

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from redteam.attacks import (
    Answers,
    Evaluation,
    InputGrid,
    LinearModel,
    MeteredOracle,
    defended_oracle,
    find_paths,
    invert_class,
    lowd_meek,
    solve_equations,
)
from redteam.attacks.equation_solving import checkpoints
from redteam.attacks.oracle import BudgetExhausted, answer_resolution
from serving.defenses import DefenseConfig
from serving.inference import FLAT, PROBABILITIES, GraphBinding, OnnxClassifier
from serving.input_schema import InputSchema
from serving.ml import breast_cancer
from serving.watermark import RegionWatermark

FEATURES = 10
NOISE_SECRET = b"model-kinds-noise"
WATERMARK_SECRET = b"model-kinds-watermark"
# serving.inference answers a probability of 0 as the log of this one, as it does for any probability graph.
SMALLEST_PROBABILITY = 1e-30


def tier_defenses() -> dict[str, DefenseConfig]:
    """Each tier's defenses as the migrations seed them, turned into a config as the prediction API does (an empty
    dict is the enterprise tier: answers never perturbed)."""
    seeded = importlib.import_module("tiers.migrations.0003_tier_defenses").DEFENSES
    regions = importlib.import_module("tiers.migrations.0005_region_watermark_fraction").REGIONS
    configs = {}
    for code, defenses in seeded.items():
        if defenses:
            configs[code] = DefenseConfig.from_dict({**defenses, "watermark_fraction": regions})
        else:
            configs[code] = DefenseConfig.none()
    return configs


TIERS = tier_defenses()


def rounded(decimals: int, *, vectors: bool = True) -> DefenseConfig:
    """Rounding alone: no noise, no watermark, the whole probability vector unless `vectors` is False (top-1)."""
    return DefenseConfig(top_k=1, confidence_decimals=decimals, watermark_fraction=0.0, return_probabilities=vectors)


class Tabular:
    """A synthetic tabular task on a fine grid (steps of 0.001), with a training, an attacker's and a held-out
    part."""

    def __init__(self, *, n_classes: int, n_features: int, seed: int) -> None:
        X, y = make_classification(
            n_samples=900, n_features=n_features, n_informative=min(n_features, 6), n_redundant=0,
            n_classes=n_classes, n_clusters_per_class=1, random_state=seed,
        )  # fmt: skip
        low, high = np.floor(X.min(axis=0)) - 1, np.ceil(X.max(axis=0)) + 1
        self.schema = InputSchema.from_dict(
            {
                "kind": "tabular",
                "features": [
                    {"name": f"f{i}", "min": float(low[i]), "max": float(high[i]), "step": 0.001}
                    for i in range(n_features)
                ],
            }
        )
        X = self.schema.values(self.schema.codes(X))
        self.X_train, self.y_train = X[:400], y[:400]
        self.X_public = X[400:600]
        self.X_test, self.y_test = X[600:], y[600:]
        self.grid = InputGrid.from_schema(self.schema)
        self.n_classes = n_classes
        self.watermark = RegionWatermark.fit(
            self.schema, self.schema.codes(self.X_train), secret=WATERMARK_SECRET, n_classes=n_classes
        )

    def oracle(self, logits_fn, config: DefenseConfig):
        return defended_oracle(
            logits_fn, schema=self.schema, config=config, noise_secret=NOISE_SECRET, watermark=self.watermark
        )


def regression_logits(model):
    """(n, C) logits of a fitted scikit-learn logistic regression (a binary one's decision function is z_1 - z_0)."""

    def logits(values: np.ndarray) -> np.ndarray:
        z = model.decision_function(values)
        return np.stack([np.zeros_like(z), z], axis=1) if z.ndim == 1 else z

    return logits


@pytest.fixture(scope="module", params=[2, 3], ids=["binary", "multinomial"])
def regression(request):
    task = Tabular(n_classes=request.param, n_features=FEATURES, seed=0)
    model = LogisticRegression(C=1.0, max_iter=5000).fit(task.X_train, task.y_train)
    truth = LinearModel.from_softmax(model.coef_, model.intercept_)
    return task, model, truth, Evaluation(task.X_test, model.predict(task.X_test))


def solve(task, model, truth, evaluation, config, *, budget=1000, seed=1):
    return solve_equations(
        task.oracle(regression_logits(model), config), task.grid, n_classes=task.n_classes, budget=budget,
        evaluation=evaluation, truth=truth, seed=seed,
    )  # fmt: skip


# --- The oracle's plumbing -----------------------------------------------------------------------------------------


def test_answer_resolution_reads_the_rounding_off_the_answers():
    assert answer_resolution(np.array([0.5, 0.9, 1.0])) == pytest.approx(0.1)
    assert answer_resolution(np.array([0.53, 0.9, 0.01])) == pytest.approx(0.01)
    assert answer_resolution(np.array([0.5312345678, 0.25])) is None


def test_metered_oracle_pays_once_per_distinct_input_and_refuses_what_the_budget_cannot_pay():
    asked = []

    def oracle(x: np.ndarray) -> Answers:
        asked.append(x.shape[0])
        return Answers(np.zeros(x.shape[0], dtype=np.int64), np.full(x.shape[0], 0.7))

    metered = MeteredOracle(oracle, budget=3)
    answers = metered(np.array([[1.0], [2.0], [1.0]]))
    assert (len(answers), metered.spent, asked) == (3, 2, [2])
    metered(np.array([[2.0]]))  # cached: free
    assert metered.spent == 2
    with pytest.raises(BudgetExhausted):
        metered(np.array([[3.0], [4.0]]))
    assert (metered.spent, asked) == (2, [2])


def test_defended_oracle_answers_as_the_tier_does_and_refuses_inputs_outside_the_schema(regression):
    task, model, _, _ = regression
    x = task.X_test[:5]
    full = task.oracle(regression_logits(model), TIERS["enterprise"])(x)
    assert full.probabilities == pytest.approx(model.predict_proba(x), abs=1e-12)
    assert full.labels.tolist() == model.predict(x).tolist()
    free = task.oracle(regression_logits(model), TIERS["free"])(x)
    assert free.probabilities is None  # top-1: the label and its confidence only
    assert answer_resolution(free.confidences) >= 0.1
    with pytest.raises(ValueError, match="outside"):
        task.oracle(regression_logits(model), TIERS["free"])(task.grid.high[None, :] + 1.0)


# --- Equation solving ----------------------------------------------------------------------------------------------


def test_checkpoints_measure_the_exact_solution_its_verification_then_doublings():
    assert checkpoints(10, 100) == [11, 12, 22, 44, 88, 100]
    assert checkpoints(30, 31) == [31]


def test_equation_solving_recovers_a_logistic_regression_exactly_from_d_plus_1_probability_vectors(regression):
    task, model, truth, evaluation = regression
    result = solve(task, model, truth, evaluation, TIERS["enterprise"])
    first = result.checkpoints[0]
    assert first.queries == FEATURES + 1
    assert first.weight_error < 1e-9
    assert first.agreement == 1.0
    assert result.queries_to_target == FEATURES + 1
    # The attacker knows it is done: more equations than unknowns fit exactly, and it stops.
    assert result.verified_exact
    assert result.resolution is None
    assert result.queries <= 4 * (FEATURES + 1)
    assert result.weight_error < 1e-9


def test_equation_solving_on_rounded_probabilities_needs_more_queries_and_recovers_the_weights_approximately(
    regression,
):
    task, model, truth, evaluation = regression
    two = solve(task, model, truth, evaluation, rounded(2))
    one = solve(task, model, truth, evaluation, rounded(1))
    for result, step in ((two, 0.01), (one, 0.1)):
        assert result.resolution == pytest.approx(step)
        assert not result.verified_exact
        assert result.queries == 1000  # nothing tells it the fit is exact: it spends the budget
        assert result.queries_to_target is not None and result.queries_to_target > FEATURES + 1
        assert result.checkpoints[0].weight_error > 0.1  # d + 1 rounded answers, mostly saturated, solve nothing
    # Least squares over many answers still converge, at a precision set by the rounding.
    assert 1e-5 < two.weight_error < 0.01
    assert 0.01 < one.weight_error < 0.2
    assert one.weight_error > 10 * two.weight_error


def test_equation_solving_against_the_public_tiers_never_recovers_the_weights():
    """A binary model answered top-1 by the public tiers: the confidence's complement is the other class's, so each
    answer is still an equation, but a noisy one (the keyed logit noise, folded by the label guard), and more
    answers do not remove its bias. The boundary, which labels alone give away, is still found."""
    task = Tabular(n_classes=2, n_features=FEATURES, seed=0)
    model = LogisticRegression(C=1.0, max_iter=5000).fit(task.X_train, task.y_train)
    truth = LinearModel.from_softmax(model.coef_, model.intercept_)
    evaluation = Evaluation(task.X_test, model.predict(task.X_test))
    errors = {}
    for tier in ("pro", "free"):
        result = solve(task, model, truth, evaluation, TIERS[tier], budget=2000)
        assert not result.verified_exact
        halfway = next(c for c in result.checkpoints if c.queries >= 500)
        assert result.weight_error > 0.5 * halfway.weight_error  # a floor, not a slope
        assert result.agreement >= 0.98
        errors[tier] = result.weight_error
    assert errors["pro"] > 0.1
    assert errors["free"] > 0.3
    assert errors["free"] > errors["pro"]


def test_equation_solving_gets_no_equation_from_top_1_answers_of_a_multinomial_model():
    task = Tabular(n_classes=3, n_features=FEATURES, seed=0)
    model = LogisticRegression(C=1.0, max_iter=5000).fit(task.X_train, task.y_train)
    truth = LinearModel.from_softmax(model.coef_, model.intercept_)
    evaluation = Evaluation(task.X_test, model.predict(task.X_test))
    for config in (rounded(2, vectors=False), TIERS["free"]):
        result = solve(task, model, truth, evaluation, config, budget=300)
        assert result.model is None
        assert 250 < result.queries <= 300  # a repeated input is not paid twice
        assert result.queries_to_target is None
        assert [c.equations for c in result.checkpoints] == [0] * len(result.checkpoints)


@pytest.fixture(scope="module")
def breast_cancer_full_model():
    """The breast-cancer demo's full model as the platform serves it: the skl2onnx graph (float32) in onnxruntime,
    on the demo's schema; the attacker holds the public rows."""
    split = breast_cancer.load_split()
    schema = InputSchema.from_dict(breast_cancer.input_schema())
    binding = GraphBinding("input", FLAT, "probabilities", PROBABILITIES)
    classifier = OnnxClassifier.from_bytes(breast_cancer.train_full_model_onnx(split), binding, schema)
    # The same pipeline in float64, for the true weights in raw units: w / scale, b - sum(w * mean / scale).
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    pipeline.fit(split.X_train, split.y_train)
    scaler, regression = pipeline
    weights = regression.coef_[0] / scaler.scale_
    truth = LinearModel(weights[None, :], regression.intercept_ - weights @ scaler.mean_)
    heldout = schema.values(schema.codes(split.X_test))
    evaluation = Evaluation(heldout, classifier.logits(heldout).argmax(axis=1))
    return schema, classifier, truth, evaluation, schema.values(schema.codes(split.X_public)), split


def test_equation_solving_recovers_the_breast_cancer_demo_through_its_onnx_graph(breast_cancer_full_model):
    """Uniform draws over the demo's wide box are all answered with probability 1.0 (in float32), and its natural
    rows nearly so: the attacker starts from its public rows drawn in towards their mean, where the answers keep
    their digits. d + 1 = 31 answers give the model; one more equation than unknowns verifies it."""
    schema, classifier, truth, evaluation, public, _ = breast_cancer_full_model
    grid = InputGrid.from_schema(schema)
    oracle = defended_oracle(classifier.logits, schema=schema, config=TIERS["enterprise"])
    uniform = oracle(grid.uniform(np.random.default_rng(0), 20))
    assert uniform.probabilities.max(axis=1).tolist() == [1.0] * 20
    result = solve_equations(
        oracle, grid, n_classes=2, budget=500, evaluation=evaluation, truth=truth, seeds=public, seed=1
    )
    assert result.verified_exact
    assert result.queries_to_target == 31 and result.queries == 32
    assert result.agreement == 1.0
    assert result.weight_error < 1e-4


# --- Path finding --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree():
    """A depth-4 tree of 10 leaves on 4 features, its leaves' class distributions all distinct (the classes overlap,
    so leaves stay impure), and one training input in each leaf."""
    task = Tabular(n_classes=2, n_features=4, seed=6)
    model = DecisionTreeClassifier(max_depth=4, min_samples_leaf=10, random_state=0).fit(task.X_train, task.y_train)
    reached = model.apply(task.X_train)
    leaves = np.unique(reached)
    one_per_leaf = task.X_train[[int(np.flatnonzero(reached == leaf)[0]) for leaf in leaves]]
    assert (model.get_depth(), leaves.size) == (4, 10)
    assert np.unique(model.predict_proba(one_per_leaf), axis=0).shape[0] == 10

    def logits(values: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(model.predict_proba(values), SMALLEST_PROBABILITY))

    return task, model, logits, one_per_leaf, Evaluation(task.X_test, model.predict(task.X_test))


def test_path_finding_recovers_every_leaf_of_a_tree_and_its_box_from_full_confidences(tree):
    task, model, logits, _, evaluation = tree
    result = find_paths(task.oracle(logits, TIERS["enterprise"]), task.grid, budget=5000, evaluation=evaluation)
    assert result.complete
    assert result.leaves_explored == result.identities_seen == 10
    assert len(set(model.apply(np.array([leaf.representative for leaf in result.leaves])))) == 10
    assert result.agreement == 1.0
    assert result.queries < 1000
    # Each recovered box is exactly one leaf's: inputs drawn inside it all reach that leaf.
    rng = np.random.default_rng(0)
    for leaf in result.leaves:
        inside = task.grid.values(rng.integers(leaf.low, leaf.high + 1, size=(50, 4)))
        assert np.unique(model.apply(inside)).size == 1
    assert result.predict(task.X_test).tolist() == model.predict(task.X_test).tolist()


def test_path_finding_on_one_decimal_confidences_merges_leaves_that_round_alike(tree):
    task, model, logits, one_per_leaf, evaluation = tree
    two = find_paths(task.oracle(logits, rounded(2)), task.grid, budget=5000, evaluation=evaluation)
    assert (two.identities_seen, two.agreement) == (10, 1.0)  # no two leaves agree to two decimals here
    oracle = task.oracle(logits, rounded(1))
    distinct_answers = np.unique(oracle(one_per_leaf).probabilities, axis=0).shape[0]
    assert distinct_answers == 8  # 10 leaves, 8 answers at one decimal
    one = find_paths(oracle, task.grid, budget=5000, evaluation=evaluation)
    assert one.complete
    assert one.identities_seen == distinct_answers  # every answer is taken for one leaf: two leaves are lost
    assert len(set(model.apply(np.array([leaf.representative for leaf in one.leaves])))) == 8
    assert one.agreement < 0.95
    assert one.queries < two.queries  # thresholds between colliding leaves are never searched


def test_path_finding_against_keyed_noise_sees_a_new_leaf_in_almost_every_answer(tree):
    task, _, logits, _, evaluation = tree
    result = find_paths(task.oracle(logits, TIERS["pro"]), task.grid, budget=3000, evaluation=evaluation)
    assert not result.complete
    assert result.identities_seen > 3 * 10
    assert result.leaves_explored < 10
    assert result.agreement < 0.9


# --- Lowd-Meek -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["enterprise", "pro", "free"])
def test_lowd_meek_finds_a_linear_boundary_from_labels_alone_on_every_tier(tier):
    """The labels are the model's own on every tier (the label guard undoes the noise); the watermark's false labels
    mislead a few bisections, which the robust fit leaves out."""
    task = Tabular(n_classes=2, n_features=FEATURES, seed=0)
    model = LogisticRegression(C=1.0, max_iter=5000).fit(task.X_train, task.y_train)
    truth = LinearModel.from_softmax(model.coef_, model.intercept_)
    evaluation = Evaluation(task.X_test, model.predict(task.X_test))
    result = lowd_meek(task.oracle(regression_logits(model), TIERS[tier]), task.grid, budget=1000,
                       evaluation=evaluation, seed=1)  # fmt: skip
    assert result.queries <= 600
    assert result.boundary_points.shape[0] >= 3 * FEATURES
    assert result.agreement > 0.99
    assert result.model.direction_cosine(truth, task.grid) > 0.9999


def test_lowd_meek_finds_the_breast_cancer_demos_boundary_from_its_public_rows(breast_cancer_full_model):
    schema, classifier, truth, evaluation, public, _ = breast_cancer_full_model
    grid = InputGrid.from_schema(schema)
    oracle = defended_oracle(classifier.logits, schema=schema, config=TIERS["enterprise"])
    result = lowd_meek(oracle, grid, budget=2000, evaluation=evaluation, seeds=public, seed=1)
    assert result.queries <= 1300
    assert result.agreement > 0.99
    assert result.model.direction_cosine(truth, grid) > 0.999


# --- Model inversion -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 3])
def test_model_inversion_comes_closer_to_each_class_mean_than_the_population_mean(n_classes):
    task = Tabular(n_classes=n_classes, n_features=FEATURES, seed=0)
    model = LogisticRegression(C=1.0, max_iter=5000).fit(task.X_train, task.y_train)
    heldout = Evaluation(task.X_test, task.y_test)  # the held-out rows' own classes
    for tier in ("enterprise", "free"):
        oracle = task.oracle(regression_logits(model), TIERS[tier])
        for target in range(n_classes):
            result = invert_class(
                oracle, task.grid, target_class=target, n_classes=n_classes, budget=600,
                prior_inputs=task.X_public, heldout=heldout, seed=1,
            )  # fmt: skip
            assert 590 <= result.queries <= 600  # an input asked twice is paid once
            assert 0.8 < result.distance.start_ratio < 1.25  # the prior's mean: about as far as the population's
            assert model.predict(result.reconstruction[None, :])[0] == target
            # Confidences teach the class's direction, through the free tier's rounding and noise too.
            assert result.distance.ratio < (0.8 if tier == "enterprise" else 0.9)
