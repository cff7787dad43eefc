"""The demo `digits` models: a full model and a deliberately lower-fidelity defended one, trained reproducibly.

- full: MLP (256, 128) on raw inputs; the model enterprise keys get.
- defended: MLP (192,) on inputs coarsened to 4 levels, distilled from the full model, with under a third of its
  parameters; the public tiers get it. Blind to fine intensity differences, its answers carry less of the full
  model's decision boundary for an extractor probing it with synthetic queries, and the public tiers show only its
  label and a rounded, noisy confidence (`serving.defenses`). It learns the full model's probabilities softened
  at temperature 2 and answers with them as learnt: its confidences say less of the full model's certainty, and
  the inputs no natural digit resembles get markedly low ones (about a third of uniform-random inputs are answered
  below 0.6 on the free tier, against 8% of natural digits), which the abuse jobs' low-confidence signal reads.

Both learn from the training rows and nine natural variants of each (`augment_digits`), as an owner trains a vision
model; the defended one learns the full model's probabilities on them. On natural digits it is then as close to the
full model as the owner's data allow, which is what keeps a thief who labels its own natural digits through the
public API from a copy better than the defended model itself: the answers are the best labels the thief's data
could have, and the thief has less data than the owner. (Trained on the labels alone, a smaller coarse-input model
is a weaker learner than the thief's copy, and such copies beat it.) With DP-SGD the defended parameters are
instead (epsilon, delta)-DP with respect to the training rows, trained on the rows alone: variants of a row, or a
teacher that saw it, would spend its privacy budget outside the accountant's view.

Both are trained on the same split (`load_digits_split(seed=SPLIT_SEED)`: its training rows, never its public
or held-out ones) and measured on its held-out rows.
"""

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from serving.ml.digits import CLASS_LABELS, DIGITS_MAX, DigitsSplit, augment_digits, load_digits_split
from serving.ml.mlp import MLPWeights, accuracy, forward_logits, softmax, train_mlp

__all__ = ["CLASS_LABELS", "DEFENDED", "FULL", "DPSettings", "DemoModels", "TrainedVariant", "train_demo_models"]

SPLIT_SEED = 0
AUGMENTATION_SEED = 0
# Every model of the demo takes the intensities' bounds as its input bounds.
INPUT_LOW, INPUT_HIGH = 0.0, float(DIGITS_MAX)


@dataclass(frozen=True)
class TrainingConfig:
    hidden: tuple[int, ...]
    epochs: int
    learning_rate: float
    batch_size: int
    l2: float
    seed: int
    input_levels: int | None = None
    # Natural variants of every training row added to the training set (`augment_digits`).
    augmented_copies: int = 0
    # Distilled: trained on the full model's probabilities softened at this temperature (Hinton et al. 2015)
    # instead of on the labels, and served as trained, so its confidences stay softened (see the module docstring).
    distillation_temperature: float | None = None


# Both learn from ten times the rows (each row and nine variants): 6 and 10 passes are as many gradient steps as 60
# and 100 epochs of the rows alone.
FULL = TrainingConfig(
    hidden=(256, 128), epochs=6, learning_rate=1e-3, batch_size=64, l2=1e-4, seed=0, augmented_copies=9
)
DEFENDED = TrainingConfig(
    hidden=(192,),
    epochs=10,
    learning_rate=2e-3,
    batch_size=32,
    l2=1e-4,
    seed=1,
    input_levels=4,
    augmented_copies=9,
    distillation_temperature=2.0,
)
# DP-SGD wants larger steps (the noise averages out over fewer, bigger updates) and fewer epochs (each one spends
# privacy budget): about 0.90 held-out accuracy at epsilon ~8.5 for the default noise 1.1, clip 1.0, delta 1e-5.
DEFENDED_DP = TrainingConfig(
    hidden=(24,), epochs=30, learning_rate=1e-2, batch_size=64, l2=1e-4, seed=1, input_levels=4
)


@dataclass(frozen=True)
class DPSettings:
    noise_multiplier: float = 1.1
    clip_norm: float = 1.0
    delta: float = 1e-5


@dataclass(frozen=True, eq=False)
class TrainedVariant:
    """One trained variant with what the registry records about it."""

    variant: str
    weights: MLPWeights
    metrics: dict[str, Any]
    provenance: dict[str, Any]
    dp_epsilon: float | None = None
    dp_delta: float | None = None


@dataclass(frozen=True, eq=False)
class DemoModels:
    full: TrainedVariant
    defended: TrainedVariant
    seconds: float  # wall-clock training time of both


def _metrics(
    weights: MLPWeights, split: DigitsSplit, config: TrainingConfig, *, full_top1: np.ndarray, trainer: str
) -> dict[str, Any]:
    top1 = forward_logits(weights, split.X_test).argmax(axis=1)
    return {
        "holdout_accuracy": round(float(np.mean(top1 == split.y_test)), 6),
        "holdout_rows": int(split.y_test.size),
        "train_accuracy": round(accuracy(weights, split.X_train, split.y_train), 6),
        "hidden_layers": list(config.hidden),
        "epochs": config.epochs,
        # Fraction of held-out rows on which this model's top-1 equals the full model's: how much of the full
        # model's behaviour its answers give away.
        "agreement_with_full": round(float(np.mean(top1 == full_top1)), 6),
        "trainer": trainer,
        "training": {key: value for key, value in asdict(config).items() if key not in ("hidden", "epochs")},
    }


def train_demo_models(*, dp: DPSettings | None = None, dp_noise_seed: int | None = None) -> DemoModels:
    """Train both demo variants. Without `dp` the run is deterministic. With `dp` the defended model is trained
    with DP-SGD: its sampling and noise come from OS entropy (unless `dp_noise_seed` is given, for tests), because
    a fixed seed in the repository would make the noise public and the epsilon meaningless."""
    started = time.perf_counter()
    split = load_digits_split(seed=SPLIT_SEED)
    full_weights = train_variant(split, FULL)
    full_top1 = forward_logits(full_weights, split.X_test).argmax(axis=1)
    full = TrainedVariant(
        variant="full",
        weights=full_weights,
        metrics=_metrics(full_weights, split, FULL, full_top1=full_top1, trainer="adam"),
        provenance=dict(split.provenance),
    )
    if dp is None:
        weights = train_variant(split, DEFENDED, teacher=full_weights)
        defended = TrainedVariant(
            variant="defended",
            weights=weights,
            metrics=_metrics(weights, split, DEFENDED, full_top1=full_top1, trainer="adam"),
            provenance=dict(split.provenance),
        )
    else:
        # Imported here: dp-accounting (and scipy) are needed only for DP training.
        from serving.ml.dpsgd import train_mlp_dpsgd

        config = DEFENDED_DP
        weights, epsilon = train_mlp_dpsgd(
            split.X_train,
            split.y_train,
            hidden=config.hidden,
            epochs=config.epochs,
            learning_rate=config.learning_rate,
            batch_size=config.batch_size,
            l2=config.l2,
            seed=config.seed,
            clip_norm=dp.clip_norm,
            noise_multiplier=dp.noise_multiplier,
            delta=dp.delta,
            input_low=INPUT_LOW,
            input_high=INPUT_HIGH,
            input_levels=config.input_levels,
            noise_seed=dp_noise_seed,
        )
        metrics = _metrics(weights, split, config, full_top1=full_top1, trainer="dp-sgd")
        metrics["dp"] = {**asdict(dp), "sampling": "poisson", "accountant": "dp_accounting.rdp.RdpAccountant"}
        defended = TrainedVariant(
            variant="defended",
            weights=weights,
            metrics=metrics,
            provenance=dict(split.provenance),
            dp_epsilon=epsilon,
            dp_delta=dp.delta,
        )
    return DemoModels(full=full, defended=defended, seconds=time.perf_counter() - started)


def training_rows(split: DigitsSplit, augmented_copies: int) -> tuple[np.ndarray, np.ndarray]:
    """The split's training rows followed by `augmented_copies` natural variants of each (`augment_digits`), and
    their labels. One seed for every call, so that the models trained on variants are trained on the same ones."""
    if not augmented_copies:
        return split.X_train, split.y_train
    rng = np.random.default_rng(AUGMENTATION_SEED)
    variants = [augment_digits(split.X_train, rng) for _ in range(augmented_copies)]
    return np.concatenate([split.X_train, *variants]).astype(np.float64), np.tile(split.y_train, augmented_copies + 1)


def train_variant(split: DigitsSplit, config: TrainingConfig, *, teacher: MLPWeights | None = None) -> MLPWeights:
    """Train one variant's MLP on the split's training rows (and their variants) with the configuration's
    hyperparameters; a distilled configuration learns `teacher`'s probabilities on those rows. Deterministic.
    Raises ValueError when a distilled configuration is given no teacher."""
    X, y = training_rows(split, config.augmented_copies)
    temperature = config.distillation_temperature
    if temperature is not None:
        if teacher is None:
            raise ValueError("a distilled variant is trained on a teacher's probabilities: pass the full model")
        y = softmax(forward_logits(teacher, X) / temperature)
    return train_mlp(
        X,
        y,
        hidden=config.hidden,
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        l2=config.l2,
        seed=config.seed,
        input_low=INPUT_LOW,
        input_high=INPUT_HIGH,
        input_levels=config.input_levels,
    )
