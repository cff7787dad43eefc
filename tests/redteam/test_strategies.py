"""Query strategies, in the attacked model's own units: canonical codes of its input schema (the digits' pixel
levels, a table's grid), the pool before its variants, boundary points, a walk that never repeats."""

import numpy as np
import pytest

from redteam.strategies import AdaptiveBoundary, NaturalData, PerturbationWalk, UniformRandom
from serving.input_schema import InputSchema
from serving.ml import breast_cancer
from serving.ml.digits import INPUT_SCHEMA

DIGITS = InputSchema.from_dict(INPUT_SCHEMA)
TABLE = InputSchema.from_dict(breast_cancer.input_schema())


def _canonical(rows: np.ndarray, size: int, schema: InputSchema = DIGITS) -> None:
    assert rows.shape == (size, schema.n_features) and rows.dtype == schema.code_dtype
    assert (rows <= schema.top_code).all()


@pytest.fixture(scope="module")
def table_pool() -> np.ndarray:
    return TABLE.codes(breast_cancer.load_split().X_public)


def test_uniform_random_rows_are_canonical_and_seeded():
    rows = UniformRandom(DIGITS, seed=1).next_batch(50)
    _canonical(rows, 50)
    assert rows.max() == 16 and np.array_equal(rows, UniformRandom(DIGITS, seed=1).next_batch(50))


def test_uniform_random_rows_of_a_table_cover_each_features_own_grid():
    rows = UniformRandom(TABLE, seed=1).next_batch(2_000)
    _canonical(rows, 2_000, TABLE)
    values = TABLE.values(rows)
    low, high = np.array(TABLE.low), np.array(TABLE.high)
    # Every feature spans its own published range, however far apart the ranges are.
    assert (values.min(axis=0) < low + 0.05 * (high - low)).all()
    assert (values.max(axis=0) > high - 0.05 * (high - low)).all()


def test_natural_data_sends_every_pool_row_once_then_variants_of_them():
    pool = np.random.default_rng(0).integers(0, 17, (25, 64)).astype(np.uint8)
    strategy = NaturalData(DIGITS, pool, seed=2)
    first = np.concatenate([strategy.next_batch(10), strategy.next_batch(10), strategy.next_batch(5)])
    assert sorted(map(bytes, first)) == sorted(map(bytes, pool))
    extra = strategy.next_batch(10)
    _canonical(extra, 10)
    assert not {bytes(row) for row in extra} & {bytes(row) for row in pool}


def test_natural_variants_of_a_table_stay_near_the_pool_in_its_own_units(table_pool):
    strategy = NaturalData(TABLE, table_pool, seed=2)
    strategy.next_batch(table_pool.shape[0])
    variants = strategy.next_batch(200)
    _canonical(variants, 200, TABLE)
    scale = table_pool.astype(float).std(axis=0)
    nearest = np.min(
        np.linalg.norm((variants[:, None, :].astype(float) - table_pool[None, :, :]) / scale, axis=2), axis=1
    )
    uniform = UniformRandom(TABLE, seed=0).next_batch(200).astype(float)
    nearest_uniform = np.min(np.linalg.norm((uniform[:, None, :] - table_pool[None, :, :]) / scale, axis=2), axis=1)
    assert np.median(nearest) < 0.25 * np.median(nearest_uniform)


def test_adaptive_boundary_starts_uniform_then_queries_points_its_copy_labels_ambiguously():
    strategy = AdaptiveBoundary(DIGITS, n_classes=10, seed=0, first_round=40, round_size=40)
    first = strategy.next_batch(40)
    _canonical(first, 40)
    # Answers of a simple rule: class by brightness.
    labels = np.minimum(first.astype(int).sum(axis=1) // 60, 9)
    strategy.observe(first, labels, np.full(40, 0.9))
    second = strategy.next_batch(40)
    _canonical(second, 40)
    assert strategy.rounds == 1
    assert not {bytes(row) for row in second} & {bytes(row) for row in first}


def test_adaptive_boundary_on_a_table_finds_points_near_the_boundary_of_a_rule_on_its_values():
    strategy = AdaptiveBoundary(TABLE, n_classes=2, seed=0, first_round=200, round_size=100)
    middle = (np.array(TABLE.low) + np.array(TABLE.high)) / 2
    width = np.array(TABLE.high) - np.array(TABLE.low)

    def rule(codes: np.ndarray) -> np.ndarray:  # one feature above its range's middle: class 1
        return (TABLE.values(codes)[:, 0] > middle[0]).astype(int)

    first = strategy.next_batch(200)
    strategy.observe(first, rule(first), np.full(200, 0.9))
    second = strategy.next_batch(100)
    _canonical(second, 100, TABLE)
    distance = np.abs(TABLE.values(second)[:, 0] - middle[0]) / width[0]
    uniform_distance = np.abs(TABLE.values(first)[:, 0] - middle[0]) / width[0]
    assert np.median(distance) < 0.5 * np.median(uniform_distance)


@pytest.mark.parametrize("schema", [DIGITS, TABLE], ids=["digits", "table"])
def test_the_perturbation_walk_takes_small_steps_from_one_natural_input_and_never_repeats(schema, table_pool):
    pool = np.random.default_rng(0).integers(0, 17, (5, 64)).astype(np.uint8) if schema is DIGITS else table_pool
    walk = PerturbationWalk(schema, pool, seed=3)
    unit = np.maximum(1, np.ceil(pool.astype(float).std(axis=0) / 16))
    seen = set()
    previous = None
    for _ in range(5):
        batch = walk.next_batch(10)
        _canonical(batch, 10, schema)
        walk.observe(batch, np.zeros(10, dtype=int), np.full(10, 0.5))
        if previous is not None:
            # At most 3 features, each by at most 3 of its units.
            steps = np.abs(batch.astype(float) - previous.astype(float)) / unit
            assert steps.sum(axis=1).max() <= 9 and ((steps > 0).sum(axis=1) <= 3).all()
        previous = batch
        seen |= {bytes(row) for row in batch}
    assert len(seen) == 50


@pytest.mark.parametrize("model", ["digits", "table"])
def test_a_natural_data_thiefs_stream_scores_as_natural_traffic(model, settings):
    # The red team's natural-data thief must be the hard case it stands for: its pool and then variants of it, at
    # pro's pace, look to the extraction scorer like a natural user's, not like a perturbation walk's small steps.
    from abuse.simulation import breast_cancer_model, digits_model, reference_profile, risk_progression
    from abuse.simulation.pace import run_attack, tier_pace

    simulated = digits_model() if model == "digits" else breast_cancer_model()
    strategy = NaturalData(simulated.schema, simulated.public, seed=4)
    calls = run_attack(
        lambda rng, size, previous: strategy.next_batch(size), rng=np.random.default_rng(4), queries=1_500,
        tier=tier_pace("pro"), model=simulated,
    )  # fmt: skip
    points = risk_progression(
        calls, reference_profile(simulated, tier="pro"), normal_volume=10_000, every=250,
        n_classes=len(simulated.class_labels),
    )  # fmt: skip
    assert points and all(point.result.score < settings.ABUSE_CLEAR_THROTTLE_SCORE for point in points), [
        (point.queries, point.result.score) for point in points
    ]
