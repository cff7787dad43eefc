"""Query strategies: canonical rows, the pool before augmentation, boundary points, a walk that never repeats."""

import numpy as np

from redteam.strategies import AdaptiveBoundary, NaturalData, PerturbationWalk, UniformRandom


def _canonical(rows: np.ndarray, size: int) -> None:
    assert rows.shape == (size, 64) and rows.dtype == np.uint8 and rows.max() <= 16


def test_uniform_random_rows_are_canonical_and_seeded():
    rows = UniformRandom(seed=1).next_batch(50)
    _canonical(rows, 50)
    assert np.array_equal(rows, UniformRandom(seed=1).next_batch(50))


def test_natural_data_sends_every_pool_row_once_then_augmented_ones():
    pool = np.random.default_rng(0).integers(0, 17, (25, 64))
    strategy = NaturalData(pool, seed=2)
    first = np.concatenate([strategy.next_batch(10), strategy.next_batch(10), strategy.next_batch(5)])
    assert sorted(map(bytes, first)) == sorted(map(bytes, pool.astype(np.uint8)))
    extra = strategy.next_batch(10)
    _canonical(extra, 10)
    assert not {bytes(row) for row in extra} & {bytes(row) for row in pool.astype(np.uint8)}


def test_adaptive_boundary_starts_uniform_then_queries_points_its_copy_labels_ambiguously():
    strategy = AdaptiveBoundary(seed=0, first_round=40, round_size=40)
    first = strategy.next_batch(40)
    _canonical(first, 40)
    # Answers of a simple rule: class by brightness.
    labels = np.minimum(first.sum(axis=1) // 60, 9).astype(int)
    strategy.observe(first, labels, np.full(40, 0.9))
    second = strategy.next_batch(40)
    _canonical(second, 40)
    assert strategy.rounds == 1
    assert not {bytes(row) for row in second} & {bytes(row) for row in first}


def test_the_perturbation_walk_takes_small_steps_from_one_digit_and_never_repeats():
    pool = np.random.default_rng(0).integers(0, 17, (5, 64))
    walk = PerturbationWalk(pool, seed=3)
    seen = set()
    previous = None
    for _ in range(5):
        batch = walk.next_batch(10)
        _canonical(batch, 10)
        walk.observe(batch, np.zeros(10, dtype=int), np.full(10, 0.5))
        if previous is not None:
            assert np.abs(batch.astype(int) - previous.astype(int)).sum(axis=1).max() <= 9
        previous = batch
        seen |= {bytes(row) for row in batch}
    assert len(seen) == 50
