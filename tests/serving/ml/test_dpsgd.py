"""DP-SGD: per-example clipping, the noise, and the epsilon from dp-accounting."""

import math

import numpy as np
import pytest

from serving.ml.digits import load_digits_split
from serving.ml.dpsgd import clipped_gradient_sum, dp_epsilon, train_mlp_dpsgd
from serving.ml.mlp import accuracy, train_mlp


@pytest.fixture(scope="module")
def split():
    return load_digits_split(seed=0)


@pytest.fixture(scope="module")
def model(split):
    return train_mlp(
        split.X_train[:100], split.y_train[:100], hidden=(8,), epochs=1, learning_rate=1e-2, batch_size=10, l2=0,
        seed=0, input_low=0.0, input_high=16.0,
    )  # fmt: skip


def _norm(gradients) -> float:
    return math.sqrt(sum(float((g**2).sum()) for g in gradients.weight_grads + gradients.bias_grads))


def _dp(split, **changes):
    arguments = {
        "hidden": (16,),
        "epochs": 4,
        "learning_rate": 1e-2,
        "batch_size": 64,
        "l2": 1e-4,
        "seed": 0,
        "clip_norm": 1.0,
        "noise_multiplier": 1.1,
        "delta": 1e-5,
        "noise_seed": 0,
        "input_low": 0.0,
        "input_high": 16.0,
    } | changes
    return train_mlp_dpsgd(split.X_train, split.y_train, **arguments)


def test_each_examples_gradient_is_clipped_to_the_clip_norm(split, model):
    clip = 2.0  # about the median norm of this barely trained model's gradients
    X, y = split.X_train[200:260], split.y_train[200:260]

    unclipped = [clipped_gradient_sum(model, X[i : i + 1], y[i : i + 1], clip_norm=1e9) for i in range(len(y))]
    clipped = [clipped_gradient_sum(model, X[i : i + 1], y[i : i + 1], clip_norm=clip) for i in range(len(y))]

    norms = np.array([_norm(g) for g in unclipped])
    assert (norms > clip).sum() >= 10 and (norms < clip).sum() >= 1  # both cases occur
    for before, after, norm in zip(unclipped, clipped, norms, strict=True):
        assert _norm(after) <= clip * (1 + 1e-12)
        assert after.norms[0] == pytest.approx(norm, rel=1e-12)  # the reported pre-clip norm is the true one
        # Inside the ball: untouched. Outside: the same direction, scaled onto the ball.
        factor = min(1.0, clip / norm)
        for a, b in zip(after.weight_grads + after.bias_grads, before.weight_grads + before.bias_grads, strict=True):
            np.testing.assert_allclose(a, factor * b, rtol=1e-12, atol=1e-15)


def test_the_batch_gradient_is_the_sum_of_the_individually_clipped_gradients(split, model):
    X, y = split.X_train[300:332], split.y_train[300:332]

    batch = clipped_gradient_sum(model, X, y, clip_norm=0.5)
    singles = [clipped_gradient_sum(model, X[i : i + 1], y[i : i + 1], clip_norm=0.5) for i in range(len(y))]

    for index, total in enumerate(batch.weight_grads):
        np.testing.assert_allclose(total, sum(s.weight_grads[index] for s in singles), rtol=1e-10, atol=1e-12)
    for index, total in enumerate(batch.bias_grads):
        np.testing.assert_allclose(total, sum(s.bias_grads[index] for s in singles), rtol=1e-10, atol=1e-12)
    assert _norm(batch) <= 0.5 * len(y)


def test_epsilon_is_finite_and_decreases_as_the_noise_multiplier_increases():
    epsilons = [
        dp_epsilon(sampling_probability=64 / 1347, noise_multiplier=sigma, steps=630, delta=1e-5)
        for sigma in (0.8, 1.1, 2.0, 4.0)
    ]

    assert all(math.isfinite(e) and e > 0 for e in epsilons)
    assert epsilons == sorted(epsilons, reverse=True) and len(set(epsilons)) == 4
    assert dp_epsilon(sampling_probability=0.05, noise_multiplier=0.0, steps=10, delta=1e-5) == math.inf


def test_epsilon_grows_with_steps_and_sampling_probability():
    base = dp_epsilon(sampling_probability=0.05, noise_multiplier=1.1, steps=100, delta=1e-5)

    assert dp_epsilon(sampling_probability=0.05, noise_multiplier=1.1, steps=400, delta=1e-5) > base
    assert dp_epsilon(sampling_probability=0.2, noise_multiplier=1.1, steps=100, delta=1e-5) > base


def test_training_returns_the_epsilon_of_its_steps_and_more_noise_spends_less(split):
    model, epsilon = _dp(split)
    _, quieter = _dp(split, noise_multiplier=2.0)

    # 4 epochs of round(1078 / 64) = 17 Poisson-sampled steps at q = 64 / 1078.
    assert epsilon == dp_epsilon(sampling_probability=64 / 1078, noise_multiplier=1.1, steps=68, delta=1e-5)
    assert quieter < epsilon
    assert model.hidden == (16,) and model.n_outputs == 10
    assert accuracy(model, split.X_test, split.y_test) > 0.6  # noisy, but it learns


def test_training_is_reproducible_with_a_noise_seed_and_the_noise_is_real(split):
    first, _ = _dp(split, epochs=1)
    second, _ = _dp(split, epochs=1)
    other_noise, _ = _dp(split, epochs=1, noise_seed=1)

    assert np.array_equal(first.weights[0], second.weights[0])
    assert not np.array_equal(first.weights[0], other_noise.weights[0])


def test_coarsened_inputs_are_recorded_in_the_model(split):
    model, _ = _dp(split, epochs=1, input_levels=4)

    assert model.input_levels == 4


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"clip_norm": 0.0}, "clip_norm"),
        ({"noise_multiplier": -1.0}, "noise_multiplier"),
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"batch_size": 5000}, "batch_size"),
    ],
)
def test_bad_dp_settings_are_refused_before_training(split, changes, message):
    with pytest.raises(ValueError, match=message):
        _dp(split, **changes)
