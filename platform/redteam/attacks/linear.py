"""A linear classifier as the attacks recover it: logit differences against class 0, affine in the raw inputs.

A multinomial logistic regression's softmax is unchanged when one vector is added to every class's weights, so only
the differences `z_c - z_0` are identifiable from its answers (Tramer et al. 2016, section 4.1.2); a binary one is
the single difference `z_1 - z_0`, its decision function. `LinearModel` holds exactly those: `weights` (C - 1, d)
and `bias` (C - 1,) in raw input units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redteam.attacks.oracle import InputGrid


@dataclass(frozen=True, eq=False)
class LinearModel:
    weights: np.ndarray  # (C - 1, d): row c - 1 is the weights of z_c - z_0
    bias: np.ndarray  # (C - 1,)

    @classmethod
    def from_softmax(cls, coef: np.ndarray, intercept: np.ndarray) -> LinearModel:
        """From per-class weights (C, d) and biases (C,), or a binary model's single row (1, d), (1,) (scikit-learn's
        `coef_` / `intercept_`)."""
        coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
        intercept = np.atleast_1d(np.asarray(intercept, dtype=np.float64))
        if coef.shape[0] == 1:
            return cls(coef, intercept)
        return cls(coef[1:] - coef[0], intercept[1:] - intercept[0])

    @property
    def n_classes(self) -> int:
        return int(self.weights.shape[0]) + 1

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(n, C) logits with class 0's fixed at 0."""
        x = np.asarray(x, dtype=np.float64)
        others = x @ self.weights.T + self.bias
        return np.concatenate([np.zeros((x.shape[0], 1)), others], axis=1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).argmax(axis=1)

    def in_unit_box(self, grid: InputGrid) -> np.ndarray:
        """The parameters (C - 1, d + 1) of the same model on unit-box inputs (`grid.to_unit`): weights times each
        feature's range, then the bias at the box's low corner. Errors are compared here, where every feature's
        weight is its effect across the whole range, rather than in raw units, where a feature measured in
        thousandths weighs a million times one measured in units."""
        weights = self.weights * grid.width
        bias = self.bias + self.weights @ grid.low
        return np.concatenate([weights, bias[:, None]], axis=1)

    def relative_error(self, truth: LinearModel, grid: InputGrid) -> float:
        """||theta - theta_true|| / ||theta_true|| over every weight and bias, in unit-box coordinates."""
        mine, true = self.in_unit_box(grid), truth.in_unit_box(grid)
        if mine.shape != true.shape:
            raise ValueError(f"cannot compare a {self.n_classes}-class model with a {truth.n_classes}-class one")
        return float(np.linalg.norm(mine - true) / np.linalg.norm(true))

    def direction_cosine(self, truth: LinearModel, grid: InputGrid) -> float:
        """Cosine between the two binary boundaries' normals in unit-box coordinates (1.0: the same hyperplane
        orientation; the scale of a boundary found from labels alone is unknowable)."""
        if self.n_classes != 2 or truth.n_classes != 2:
            raise ValueError("a direction is compared between binary models")
        mine, true = self.weights[0] * grid.width, truth.weights[0] * grid.width
        return float(mine @ true / (np.linalg.norm(mine) * np.linalg.norm(true)))
