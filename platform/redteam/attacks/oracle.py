"""What every model-kind attack talks to: an oracle answering inputs as the API would, the input grid it accepts, the
attacker's query budget, and the measurement's held-out yardstick.

An `Oracle` maps a float array (n, d) of inputs, already on the schema's grid and within its bounds, to `Answers`:
the served labels, the served label's confidence, and the probability vectors when the tier returns them, each as
shown (rounded, noised, watermarked). `defended_oracle` builds one from a model's logits and a tier's
`DefenseConfig` through the serving code itself (`serving.defenses.apply_defenses` on the schema's canonical rows),
so the attacks meet exactly what a key of that tier meets; the live exercise builds one over HTTP instead.

Pure: numpy, the standard library and the serving package's pure modules; no Django, no HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from serving.defenses import DefenseConfig, apply_defenses
from serving.input_schema import InputSchema
from serving.watermark import RegionWatermark

# The finest rounding an attacker looks for in the answers: below it they are taken as unrounded.
_FINEST_DECIMALS = 6


@dataclass(frozen=True, eq=False)
class Answers:
    """What the API answered for n inputs: `labels` (n,) served class indices, `confidences` (n,) the served
    label's confidence as shown, `probabilities` (n, C) as shown when the tier returns vectors, else None."""

    labels: np.ndarray
    confidences: np.ndarray
    probabilities: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, index: np.ndarray | slice) -> Answers:
        return Answers(
            self.labels[index],
            self.confidences[index],
            None if self.probabilities is None else self.probabilities[index],
        )

    @staticmethod
    def concatenate(parts: Sequence[Answers]) -> Answers:
        with_vectors = all(part.probabilities is not None for part in parts) and bool(parts)
        return Answers(
            np.concatenate([part.labels for part in parts]) if parts else np.zeros(0, dtype=np.int64),
            np.concatenate([part.confidences for part in parts]) if parts else np.zeros(0),
            np.concatenate([part.probabilities for part in parts]) if with_vectors else None,
        )


Oracle = Callable[[np.ndarray], Answers]


@dataclass(frozen=True, eq=False)
class InputGrid:
    """The inputs an API accepts, as `GET /v1/models` publishes them: per feature `low`, `high` and `step` (d,)."""

    low: np.ndarray
    high: np.ndarray
    step: np.ndarray

    @classmethod
    def from_schema(cls, schema: InputSchema) -> InputGrid:
        return cls(np.array(schema.low), np.array(schema.high), np.array(schema.step))

    @property
    def n_features(self) -> int:
        return int(self.low.shape[0])

    @property
    def width(self) -> np.ndarray:
        return self.high - self.low

    @property
    def top_code(self) -> np.ndarray:
        return np.rint(self.width / self.step).astype(np.int64)

    def snap(self, x: np.ndarray) -> np.ndarray:
        """The nearest grid inputs within bounds, as floats (a query off the grid is the same query as its snap)."""
        return self.values(self.codes(x))

    def codes(self, x: np.ndarray) -> np.ndarray:
        """Grid indices (int64) of the nearest grid inputs within bounds."""
        index = np.floor((np.asarray(x, dtype=np.float64) - self.low) / self.step + 0.5)
        return np.clip(index, 0, self.top_code).astype(np.int64)

    def values(self, codes: np.ndarray) -> np.ndarray:
        return self.low + np.asarray(codes, dtype=np.float64) * self.step

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        """Inputs in unit-box coordinates, each feature's range mapped to [0, 1]: the attacks solve there, because
        raw features may differ in scale by a million (the breast-cancer demo's run from 0.0008 to 4,254)."""
        return (np.asarray(x, dtype=np.float64) - self.low) / self.width

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        return self.low + np.asarray(u, dtype=np.float64) * self.width

    def uniform(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n grid inputs drawn uniformly from the box (Tramer et al.'s cheapest query set)."""
        return self.values(rng.integers(0, self.top_code + 1, size=(n, self.n_features)))


@dataclass(frozen=True, eq=False)
class Evaluation:
    """The measurement's yardstick, never shown to the attacker: held-out `inputs` (m, d) on the grid and `labels`
    (m,), the true model's own labels for them (for inversion: the held-out set's own classes)."""

    inputs: np.ndarray
    labels: np.ndarray

    def agreement(self, predicted: np.ndarray) -> float:
        """Share of held-out inputs on which `predicted` equals the true model's label."""
        predicted = np.asarray(predicted)
        if predicted.shape != self.labels.shape or predicted.size == 0:
            raise ValueError(f"cannot compare {predicted.shape} labels with {self.labels.shape}")
        return float(np.mean(predicted == self.labels))


class BudgetExhausted(Exception):
    """The attacker's query budget cannot pay for the next batch."""


class MeteredOracle:
    """The attacker's side of an oracle: counts the answered inputs against `budget` and remembers every answer, so
    that an input asked twice is paid once (the platform's noise is keyed on the input, so a repeat teaches nothing;
    a thief caches rather than pays for it)."""

    def __init__(self, oracle: Oracle, budget: int) -> None:
        if budget < 1:
            raise ValueError(f"a query budget is at least 1, got {budget}")
        self.oracle = oracle
        self.budget = budget
        self.spent = 0
        self._seen: dict[bytes, Answers] = {}

    @property
    def remaining(self) -> int:
        return self.budget - self.spent

    def __call__(self, x: np.ndarray) -> Answers:
        """Answers for the rows of `x` (grid inputs). Raises BudgetExhausted, and asks nothing, when the new
        distinct rows cost more than what remains."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        keys = [row.tobytes() for row in x]
        new: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in self._seen and key not in new:
                new[key] = i
        if len(new) > self.remaining:
            raise BudgetExhausted(f"{len(new)} new queries, {self.remaining} left of {self.budget}")
        if new:
            answers = self.oracle(x[list(new.values())])
            for j, key in enumerate(new):
                self._seen[key] = answers.take(slice(j, j + 1))
            self.spent += len(new)
        return Answers.concatenate([self._seen[key] for key in keys])


def answer_resolution(values: np.ndarray) -> float | None:
    """The rounding step the shown numbers reveal (0.1 for one decimal, 0.01 for two...), or None when they look
    unrounded. The API does not say how it rounds; a thief reads it off the answers, as this does."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return None
    for decimals in range(_FINEST_DECIMALS + 1):
        scaled = values * 10**decimals
        if np.all(np.abs(scaled - np.rint(scaled)) < 1e-9 * max(1.0, 10**decimals)):
            return 10.0**-decimals
    return None


def defended_oracle(
    logits_fn: Callable[[np.ndarray], np.ndarray],
    *,
    schema: InputSchema,
    config: DefenseConfig,
    noise_secret: bytes = b"",
    watermark: RegionWatermark | None = None,
) -> Oracle:
    """An oracle that answers as the API does for a tier: the inputs' canonical rows (`schema.codes`), the model's
    logits on the canonical values (`logits_fn`: (n, d) values -> (n, C) logits, as `OnnxClassifier.logits`), then
    `apply_defenses` with the tier's `config`, noise secret and watermark. Raises ValueError for inputs outside the
    schema's bounds, as the API's validation would."""

    def answer(x: np.ndarray) -> Answers:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != schema.n_features:
            raise ValueError(f"inputs must have shape (n, {schema.n_features}), got {x.shape}")
        if schema.out_of_bounds(x).any():
            raise ValueError("an input lies outside the schema's bounds")
        codes = schema.codes(x)
        logits = np.asarray(logits_fn(schema.values(codes)), dtype=np.float64)
        labels = [str(c) for c in range(logits.shape[1])]
        served = apply_defenses(
            logits, codes, config=config, class_labels=labels, noise_secret=noise_secret, watermark=watermark
        )
        vectors = [p.probabilities for p in served]
        return Answers(
            np.array([int(p.label) for p in served], dtype=np.int64),
            np.array([p.confidence for p in served], dtype=np.float64),
            np.array(vectors, dtype=np.float64) if served and all(v is not None for v in vectors) else None,
        )

    return answer
