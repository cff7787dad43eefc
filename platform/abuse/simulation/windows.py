"""From simulated calls to the windows the pipeline reads, and how a score grows with the queries."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from abuse.extraction import InputProfile, QueryWindow, RiskResult, extraction_risk
from abuse.simulation.served import PIPELINE_MAX_INPUTS, PIPELINE_WINDOW_SECONDS, SimulatedCall, no_inputs
from serving.ml.digits_models import CLASS_LABELS

# --- From calls to windows and scores ---------------------------------------------------------------------------


def merge_streams(streams: Sequence[Sequence[SimulatedCall]]) -> list[SimulatedCall]:
    """Several accounts' calls as one time-ordered stream (a ring's merged query log). Stable for equal times."""
    return list(heapq.merge(*streams, key=lambda call: call.at))


def window_from_calls(
    calls: Sequence[SimulatedCall],
    *,
    accounts: int = 1,
    n_classes: int = len(CLASS_LABELS),
    now: float | None = None,
    window_seconds: float = PIPELINE_WINDOW_SECONDS,
    max_inputs: int = PIPELINE_MAX_INPUTS,
    epoch: float = 1_700_000_000.0,
) -> QueryWindow:
    """The `QueryWindow` the pipeline would read at `now` (default: the last call's time): the calls of the last
    `window_seconds`, at most the latest `max_inputs` inputs (with `total_inputs` counting them all). Times are
    epoch seconds (`epoch` + simulation time)."""
    if now is None:
        now = calls[-1].at if calls else 0.0
    recent = [call for call in calls if now - window_seconds < call.at <= now]
    ok = [call for call in recent if call.error is None and call.inputs.shape[0]]
    errors = [call for call in recent if call.error is not None]
    if ok:
        inputs = np.concatenate([call.inputs for call in ok])
        labels = np.array([label for call in ok for label in call.labels], dtype=str)
        confidences = np.array([c for call in ok for c in call.confidences], dtype=np.float64)
        times = np.concatenate([np.full(call.inputs.shape[0], epoch + call.at) for call in ok])
    else:
        width = recent[0].inputs.shape[1] if recent else calls[0].inputs.shape[1] if calls else 64
        inputs, labels = no_inputs(width), np.array([], dtype=str)
        confidences, times = np.zeros(0), np.zeros(0)
    total = int(inputs.shape[0])
    if total > max_inputs:
        inputs, labels = inputs[-max_inputs:], labels[-max_inputs:]
        confidences, times = confidences[-max_inputs:], times[-max_inputs:]
    return QueryWindow(
        inputs=inputs,
        labels=labels,
        confidences=confidences,
        times=times,
        error_times=np.array([epoch + call.at for call in errors], dtype=np.float64),
        error_kinds=[call.error for call in errors],
        n_classes=n_classes,
        accounts=accounts,
        total_inputs=total,
    )


@dataclass(frozen=True)
class ProgressPoint:
    queries: int  # inputs sent so far (all accounts)
    at: float  # simulation time of the evaluation
    result: RiskResult


def risk_progression(
    calls: Sequence[SimulatedCall],
    profile: InputProfile | None,
    *,
    normal_volume: float,
    every: int = 100,
    accounts: int = 1,
    n_classes: int = len(CLASS_LABELS),
    stop_at_score: int | None = None,
) -> list[ProgressPoint]:
    """Score the stream after every `every` inputs (at the first call that reaches each multiple), over the
    window the pipeline would read at that moment. Stops early once a score reaches `stop_at_score`."""
    points: list[ProgressPoint] = []
    sent, next_mark = 0, every
    for i, call in enumerate(calls):
        sent += call.inputs.shape[0]
        if sent < next_mark:
            continue
        window = window_from_calls(calls[: i + 1], accounts=accounts, n_classes=n_classes)
        result = extraction_risk(window, profile, normal_volume=normal_volume)
        points.append(ProgressPoint(queries=sent, at=call.at, result=result))
        while next_mark <= sent:
            next_mark += every
        if stop_at_score is not None and result.score >= stop_at_score:
            break
    return points


def queries_to_reach(points: Sequence[ProgressPoint], score: int) -> int | None:
    """The inputs sent when the score first reached `score`, or None if it never did."""
    return next((point.queries for point in points if point.result.score >= score), None)


def queries_to_freeze(
    points: Sequence[ProgressPoint],
    *,
    throttle_score: int,
    freeze_score: int,
    clear_score: int,
    persistence_inputs: int,
) -> int | None:
    """The inputs sent when the pipeline would freeze the stream (None: never within it): at the first score at or
    above `freeze_score`, or, once a score reached `throttle_score` (the throttle), at the first score still at the
    throttle level `persistence_inputs` or more inputs later; a score below `clear_score` lifts the throttle, and
    the count starts again at the next one (`abuse.risk`)."""
    throttled_at: int | None = None
    for point in points:
        score = point.result.score
        if score >= freeze_score:
            return point.queries
        if throttled_at is not None and score < clear_score:
            throttled_at = None
        if score >= throttle_score:
            if throttled_at is None:
                throttled_at = point.queries
            elif point.queries - throttled_at >= persistence_inputs:
                return point.queries
    return None
