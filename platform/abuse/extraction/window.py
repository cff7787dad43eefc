"""What the scorer reads (a window of the query log) and what it answers (the score and its components)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# --- Windows and results -----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class QueryWindow:
    """A window of one organization's (or one ring's merged) query log, in time order.

    `total_inputs` is how many inputs the whole window period holds when `inputs` carries only the latest of them
    (the pipeline reads at most 5,000); None means `len(inputs)`. Volume is judged on it, everything else on the
    inputs carried."""

    inputs: np.ndarray  # (n, d) canonical codes of the model's schema
    labels: np.ndarray  # (n,) str, served labels
    confidences: np.ndarray  # (n,) float, served confidences
    times: np.ndarray  # (n,) float epoch seconds of each input's call
    error_times: np.ndarray  # (m,) float
    error_kinds: list[str]  # (m,) "endpoint:error_code"
    n_classes: int
    accounts: int = 1
    total_inputs: int | None = None

    def __post_init__(self) -> None:
        n = len(self.inputs)
        if not (len(self.labels) == len(self.confidences) == len(self.times) == n):
            raise ValueError("inputs, labels, confidences and times must have one entry per input")
        if len(self.error_times) != len(self.error_kinds):
            raise ValueError("error_times and error_kinds must have one entry per error")
        if self.n_classes < 2 or self.accounts < 1:
            raise ValueError("n_classes must be >= 2 and accounts >= 1")

    @property
    def volume(self) -> int:
        return len(self.inputs) if self.total_inputs is None else max(self.total_inputs, len(self.inputs))


@dataclass(frozen=True)
class Component:
    """One signal's part of the score: `value` is what was measured (a share, a ratio, a W statistic, a count),
    `points` (0..max_points) its contribution, `detail` the measurement in plain words."""

    name: str  # stable slug, e.g. "unnatural_inputs"
    value: float
    points: float
    max_points: float
    detail: str

    def __post_init__(self) -> None:
        # Plain floats: the pipeline stores components in a JSONField.
        for name in ("value", "points", "max_points"):
            object.__setattr__(self, name, float(getattr(self, name)))


@dataclass(frozen=True)
class RiskResult:
    score: int  # 0..100
    components: tuple[Component, ...]
    explanation: str
    queries: int

    def component(self, name: str) -> Component:
        return next(component for component in self.components if component.name == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for storing with the assessment."""
        return {
            "score": self.score,
            "queries": self.queries,
            "explanation": self.explanation,
            "components": [
                {
                    "name": c.name,
                    "value": round(c.value, 6),
                    "points": round(c.points, 3),
                    "max_points": c.max_points,
                    "detail": c.detail,
                }
                for c in self.components
            ],
        }
