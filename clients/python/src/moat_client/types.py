"""What the API answers, as typed values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Prediction:
    """One input's answer: what the caller's plan shows (free and pro: the label and a rounded confidence;
    enterprise: the probabilities too; a throttled organization: the label alone)."""

    label: str
    confidence: float | None = None
    probabilities: list[float] | None = None
    top_k: list[tuple[str, float]] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        top_k = data.get("top_k")
        return cls(
            label=data["label"],
            confidence=data.get("confidence"),
            probabilities=data.get("probabilities"),
            top_k=[(item["label"], item["confidence"]) for item in top_k] if top_k else None,
        )


@dataclass(frozen=True)
class Model:
    """A model the caller's plan is served: its id, the version that answers, its classes and its input."""

    id: str
    version: str
    classes: list[str]
    input: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def n_features(self) -> int:
        return int(self.input.get("shape", [0])[0])

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Model:
        return cls(
            id=data["id"],
            version=data["version"],
            classes=list(data["classes"]),
            input=dict(data.get("input", {})),
            description=data.get("description", ""),
        )


@dataclass(frozen=True)
class Usage:
    """The organization's usage this billing period and its plan's limits."""

    tier: str
    period_start: str
    period_end: str
    requests: int
    predictions: int
    limits: dict[str, Any]

    @property
    def max_batch_size(self) -> int:
        return int(self.limits["max_batch_size"])

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Usage:
        return cls(
            tier=data["tier"],
            period_start=data["period"]["start"],
            period_end=data["period"]["end"],
            requests=int(data["usage"]["requests"]),
            predictions=int(data["usage"]["predictions"]),
            limits=dict(data["limits"]),
        )
