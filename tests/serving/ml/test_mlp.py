"""The numpy MLP Moat trains its own models with: the reference forward pass, softmax, and reproducible training."""

import numpy as np
import pytest

from serving.ml.digits import load_digits_split
from serving.ml.dpsgd import clipped_gradient_sum
from serving.ml.mlp import MLPWeights, accuracy, coarsen, forward_logits, softmax, train_mlp

BOUNDS = {"input_low": 0.0, "input_high": 16.0}  # the digits' intensities


@pytest.fixture(scope="module")
def split():
    return load_digits_split(seed=0)


def _hand_model(input_levels=None) -> MLPWeights:
    return MLPWeights(
        weights=(np.array([[1.0, -1.0], [2.0, 1.0]]), np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]])),
        biases=(np.array([0.0, -1.0]), np.array([0.5, 0.0, 0.0])),
        input_low=0.0,
        input_high=16.0,
        input_levels=input_levels,
    )


def test_forward_pass_matches_a_hand_computation():
    # x = [16, 8] scaled by 1/16 -> [1, 0.5]
    # hidden = relu([1*1 + 0.5*2 + 0, 1*-1 + 0.5*1 - 1]) = relu([2, -1.5]) = [2, 0]
    # logits = [2*1 + 0 + 0.5, 2*0 + 0*1 + 0, 2*-1 + 0 + 0] = [2.5, 0, -2]
    logits = forward_logits(_hand_model(), np.array([[16.0, 8.0], [0.0, 0.0]]))

    assert logits.tolist() == [[2.5, 0.0, -2.0], [0.5, 0.0, 0.0]]


def test_coarsened_model_coarsens_raw_inputs_before_scaling_each_feature_by_its_bounds():
    # 3 levels over 0..16 are {0, 8, 16}; 12 is halfway and rounds to the even level (16); then scaled onto 0..1.
    identity = MLPWeights(weights=(np.eye(5),), biases=(np.zeros(5),), input_low=0.0, input_high=16.0, input_levels=3)

    logits = forward_logits(identity, np.array([[3.0, 5.0, 12.0, 20.0, -1.0]]))

    assert logits.tolist() == [[0.0, 0.5, 1.0, 1.0, 0.0]]
    assert coarsen(np.array([0.0, 5.0, 6.0, 16.0]), 4, 0.0, 16.0).tolist() == [0.0, 16 / 3, 16 / 3, 16.0]
    # Per-feature bounds: each feature's own levels ({2, 3, 4} and {10, 15, 20}).
    assert coarsen(np.array([2.4, 12.6]), 3, np.array([2.0, 10.0]), np.array([4.0, 20.0])).tolist() == [2.0, 15.0]


def test_bounds_must_be_finite_and_ordered():
    with pytest.raises(ValueError, match="input_low < input_high"):
        MLPWeights(weights=(np.eye(2),), biases=(np.zeros(2),), input_low=[0.0, 5.0], input_high=[1.0, 5.0])


def test_forward_refuses_inputs_of_the_wrong_width():
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        forward_logits(_hand_model(), np.zeros((1, 3)))


def test_weights_are_frozen_copies():
    source = np.array([[1.0]])
    model = MLPWeights(weights=(source,), biases=(np.zeros(1),), input_low=0.0, input_high=1.0)
    source[0, 0] = 5.0

    assert model.weights[0][0, 0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        model.weights[0][0, 0] = 2.0


@pytest.mark.parametrize(
    ("weights", "biases", "message"),
    [
        ((np.zeros((2, 3)), np.zeros((4, 1))), (np.zeros(3), np.zeros(1)), "takes 4 inputs"),
        ((np.zeros((2, 3)),), (np.zeros(2),), "do not fit"),
        ((np.zeros((2, 3)),), (np.zeros(3), np.zeros(3)), "one bias vector"),
        ((np.full((2, 3), np.nan),), (np.zeros(3),), "non-finite"),
    ],
)
def test_inconsistent_weights_are_refused(weights, biases, message):
    with pytest.raises(ValueError, match=message):
        MLPWeights(weights=weights, biases=biases, input_low=0.0, input_high=1.0)


def test_softmax_is_stable_for_large_logits():
    logits = np.array([[1000.0, 1000.0, -1000.0], [-1e6, 0.0, 1e6], [1.0, 2.0, 3.0]])

    with np.errstate(over="raise", invalid="raise", divide="raise"):  # exp() underflowing to 0 is the right answer
        probabilities = softmax(logits)

    assert probabilities[0].tolist() == [0.5, 0.5, 0.0]
    assert probabilities[1].tolist() == [0.0, 0.0, 1.0]
    expected = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(probabilities[2], expected, rtol=1e-15)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-15)


def test_accuracy_counts_top1_matches():
    model = MLPWeights(weights=(np.eye(2),), biases=(np.zeros(2),), input_low=0.0, input_high=1.0)
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])

    assert accuracy(model, X, np.array([0, 1, 1, 1])) == 0.75


def _small(split, seed):
    return train_mlp(
        split.X_train, split.y_train, hidden=(16,), epochs=3, learning_rate=3e-3, batch_size=64, l2=1e-4, seed=seed,
        **BOUNDS,
    )  # fmt: skip


def test_training_with_the_same_seed_gives_identical_weights(split):
    first, second, other = _small(split, 7), _small(split, 7), _small(split, 8)

    for a, b in zip(first.weights + first.biases, second.weights + second.biases, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(first.weights[0], other.weights[0])


def test_training_learns_and_records_how_inputs_are_prepared(split):
    model = train_mlp(
        split.X_train,
        split.y_train,
        hidden=(16,),
        epochs=8,
        learning_rate=3e-3,
        batch_size=64,
        l2=1e-4,
        seed=0,
        input_levels=4,
        **BOUNDS,
    )

    assert model.hidden == (16,) and model.n_inputs == 64 and model.n_outputs == 10
    assert model.input_high.tolist() == [16.0] * 64 and model.input_low.tolist() == [0.0] * 64
    assert model.input_levels == 4
    assert accuracy(model, split.X_test, split.y_test) > 0.85


def test_backpropagation_matches_finite_differences(split):
    """The per-example gradient (unclipped: a clip norm far above it) against central differences of the loss."""
    model = train_mlp(
        split.X_train[:50], split.y_train[:50], hidden=(5,), epochs=1, learning_rate=1e-2, batch_size=10, l2=0, seed=3,
        **BOUNDS,
    )  # fmt: skip
    x, y = split.X_train[60:61], split.y_train[60:61]
    analytic = clipped_gradient_sum(model, x, y, clip_norm=1e9)

    def loss(weights, biases):
        candidate = MLPWeights(weights=weights, biases=biases, input_low=model.input_low, input_high=model.input_high)
        return -np.log(softmax(forward_logits(candidate, x))[0, y[0]])

    eps = 1e-6
    for layer in range(2):
        for name, grads in (("weights", analytic.weight_grads), ("biases", analytic.bias_grads)):
            params = [p.copy() for p in getattr(model, name)]
            numeric = np.zeros_like(params[layer])
            for index in np.ndindex(params[layer].shape):
                original = params[layer][index]
                values = []
                for shift in (eps, -eps):
                    params[layer][index] = original + shift
                    others = {"weights": model.weights, "biases": model.biases, name: tuple(params)}
                    values.append(loss(others["weights"], others["biases"]))
                params[layer][index] = original
                numeric[index] = (values[0] - values[1]) / (2 * eps)
            np.testing.assert_allclose(grads[layer], numeric, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    "changes",
    [{"hidden": (0,)}, {"epochs": 0}, {"batch_size": 0}, {"learning_rate": 0.0}, {"l2": -1.0}],
)
def test_bad_hyperparameters_are_refused(split, changes):
    arguments = {"hidden": (4,), "epochs": 1, "learning_rate": 1e-3, "batch_size": 8, "l2": 0.0, "seed": 0} | BOUNDS
    arguments |= changes
    with pytest.raises(ValueError, match="must be"):
        train_mlp(split.X_train[:20], split.y_train[:20], **arguments)


def test_one_hot_targets_train_exactly_like_their_class_indices(split):
    arguments = {"hidden": (8,), "epochs": 2, "learning_rate": 3e-3, "batch_size": 32, "l2": 1e-4, "seed": 4} | BOUNDS
    X, y = split.X_train[:300], split.y_train[:300]

    from_labels = train_mlp(X, y, **arguments)
    from_targets = train_mlp(X, np.eye(10)[y], **arguments)

    for a, b in zip(from_labels.weights + from_labels.biases, from_targets.weights + from_targets.biases, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_a_student_learns_a_teachers_probabilities(split):
    arguments = {"hidden": (16,), "epochs": 20, "learning_rate": 3e-3, "batch_size": 64, "l2": 1e-4, "seed": 0} | BOUNDS
    teacher = train_mlp(split.X_train, split.y_train, **arguments)

    student = train_mlp(split.X_train, softmax(forward_logits(teacher, split.X_train)), **arguments | {"seed": 1})

    agreement = np.mean(
        forward_logits(student, split.X_test).argmax(axis=1) == forward_logits(teacher, split.X_test).argmax(axis=1)
    )
    assert agreement > 0.9 and student.n_outputs == 10


@pytest.mark.parametrize(
    "targets",
    [np.full((20, 10), 0.2), np.full((20, 10), -0.1), np.full((20, 1), 1.0), np.full((20, 10), np.nan)],
    ids=["rows-not-summing-to-one", "negative", "one-class", "nan"],
)
def test_soft_targets_must_be_probability_rows(split, targets):
    with pytest.raises(ValueError, match="probabilities"):
        train_mlp(
            split.X_train[:20], targets, hidden=(4,), epochs=1, learning_rate=1e-3, batch_size=8, l2=0, seed=0, **BOUNDS
        )
