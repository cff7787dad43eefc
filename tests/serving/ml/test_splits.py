"""The demo models' split rule: disjoint, stratified, reproducible, and the held-out rows never move when public
rows are set aside."""

import numpy as np
import pytest

from serving.ml.splits import stratified_split

# Three classes of unequal size, in no particular order.
LABELS = np.random.default_rng(7).permutation(np.repeat([0, 1, 2], [40, 100, 60]))


def test_the_three_parts_are_disjoint_sorted_and_cover_every_row():
    parts = stratified_split(LABELS, seed=0, test_fraction=0.25, public_fraction=0.15)

    every = np.concatenate([parts.train, parts.test, parts.public])
    assert np.array_equal(np.sort(every), np.arange(LABELS.size))
    for part in (parts.train, parts.test, parts.public):
        assert np.array_equal(part, np.sort(part))


def test_each_class_gives_its_rounded_share_to_held_out_and_public():
    parts = stratified_split(LABELS, seed=0, test_fraction=0.25, public_fraction=0.15)

    for label, count in ((0, 40), (1, 100), (2, 60)):
        assert int(np.sum(LABELS[parts.test] == label)) == round(0.25 * count)
        assert int(np.sum(LABELS[parts.public] == label)) == round(0.15 * count)


def test_same_seed_same_split_other_seed_other_split():
    first = stratified_split(LABELS, seed=3, test_fraction=0.25, public_fraction=0.15)
    again = stratified_split(LABELS, seed=3, test_fraction=0.25, public_fraction=0.15)
    other = stratified_split(LABELS, seed=4, test_fraction=0.25, public_fraction=0.15)

    assert np.array_equal(first.test, again.test) and np.array_equal(first.public, again.public)
    assert not np.array_equal(first.test, other.test)


def test_setting_public_rows_aside_leaves_the_held_out_rows_where_they_were():
    without = stratified_split(LABELS, seed=0, test_fraction=0.25, public_fraction=0.0)
    with_public = stratified_split(LABELS, seed=0, test_fraction=0.25, public_fraction=0.3)

    assert np.array_equal(without.test, with_public.test)
    assert without.public.size == 0
    assert set(with_public.public) <= set(without.train)


@pytest.mark.parametrize(("test_fraction", "public_fraction"), [(0.0, 0.1), (1.0, 0.0), (0.5, 0.5), (0.2, -0.1)])
def test_fractions_that_leave_nothing_to_train_on_are_refused(test_fraction, public_fraction):
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(LABELS, seed=0, test_fraction=test_fraction, public_fraction=public_fraction)
