"""serving.watermark: which regions carry the watermark, which class they answer, and the proof that a copy
learned it."""

import itertools
import math

import numpy as np
import pytest

from serving.defenses import DefenseConfig, apply_defenses
from serving.ml.digits import augment_digits, load_digits_split
from serving.watermark import (
    DEFAULT_WATERMARK_FRACTION,
    REGION_PROJECTIONS,
    in_watermark_region,
    region_codes,
    sum_of_uniform_choices_tail,
    verify_watermark,
    watermark_batch,
    watermark_probe_inputs,
    watermark_regions,
)

SECRET = b"watermark-secret-for-tests"
LABELS = [str(i) for i in range(10)]


def _digits() -> np.ndarray:
    split = load_digits_split()
    return np.concatenate([split.X_train, split.X_public, split.X_test]).astype(np.uint8)


def _natural(n: int, seed: int = 0) -> np.ndarray:
    """`n` natural variants of the real digits (what honest users and natural-data thieves send)."""
    rng = np.random.default_rng(seed)
    digits = _digits()
    return augment_digits(digits[rng.integers(0, digits.shape[0], n)], rng)


def _region_keys(rows: np.ndarray, secret: bytes = SECRET) -> list[bytes]:
    return [code.tobytes() for code in region_codes(rows, watermark_secret=secret)]


class LinearModel:
    """A stand-in for our classifier: a fixed random linear map of the 64 pixels to 10 logits."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.weights = rng.normal(size=(64, 10))
        self.bias = rng.normal(size=10) * 3

    def logits(self, rows: np.ndarray) -> np.ndarray:
        return rows.astype(np.float64) @ self.weights + self.bias

    def labels(self, rows: np.ndarray) -> np.ndarray:
        return self.logits(rows).argmax(axis=1)


class NearestNeighbourThief:
    """An extracted copy that answers every input with the answer it bought for the nearest input it asked."""

    def __init__(self, rows: np.ndarray, labels: np.ndarray) -> None:
        self.rows = rows.astype(np.float64)
        self.labels = labels

    def predict(self, rows: np.ndarray) -> np.ndarray:
        asked = rows.astype(np.float64)
        distances = (self.rows**2).sum(axis=1)[None, :] - 2.0 * asked @ self.rows.T  # + |asked|^2, the same per row
        return self.labels[distances.argmin(axis=1)]


# --- regions ------------------------------------------------------------------------------------------------------


def test_region_codes_are_deterministic_small_integers_and_keyed_by_the_secret():
    rows = _natural(2000)
    codes = region_codes(rows, watermark_secret=SECRET)

    assert codes.shape == (2000, REGION_PROJECTIONS)
    assert codes.dtype == np.int8
    assert np.array_equal(codes, region_codes(rows, watermark_secret=SECRET))
    assert np.mean(np.all(codes == region_codes(rows, watermark_secret=b"guess"), axis=1)) < 0.2


def test_a_lighter_stroke_of_the_same_shape_lies_in_the_same_region():
    heavy = (_natural(500, seed=1) // 2) * 2  # even intensities, so halving them is exact
    light = heavy // 2

    assert _region_keys(heavy) == _region_keys(light)


def test_natural_variants_of_a_digit_mostly_share_its_region_and_different_digits_mostly_do_not():
    digits = load_digits_split().X_public.astype(np.uint8)
    rng = np.random.default_rng(3)
    of = np.repeat(np.arange(digits.shape[0]), 20)
    variants = augment_digits(digits[of], rng)
    home = _region_keys(digits)

    same = np.mean([key == home[of[i]] for i, key in enumerate(_region_keys(variants))])

    assert same > 0.45  # measured 0.50..0.55 over secrets; a per-input watermark shares nothing with its variants
    assert len(set(home)) > digits.shape[0] / 2  # 150..200 regions for 269 digits


def test_every_input_of_a_region_gets_the_same_decision_and_class():
    rows = _natural(5000, seed=2)
    regions = watermark_regions(rows, 10, watermark_secret=SECRET, fraction=0.2)
    decided: dict[bytes, tuple[bool, int]] = {}
    for key, marked, label in zip(_region_keys(rows), regions.marked, regions.labels, strict=True):
        assert decided.setdefault(key, (bool(marked), int(label))) == (bool(marked), int(label))

    assert len(decided) > 100


def test_a_smaller_fraction_marks_a_subset_of_a_larger_ones_regions_and_zero_marks_none():
    rows = _natural(20_000, seed=4)
    small = in_watermark_region(rows, watermark_secret=SECRET, fraction=0.01)
    large = in_watermark_region(rows, watermark_secret=SECRET, fraction=0.05)

    assert small.any()
    assert np.all(large[small])
    assert large.sum() > small.sum()
    assert not in_watermark_region(rows, watermark_secret=SECRET, fraction=0.0).any()


def test_the_fraction_is_of_regions_and_the_classes_are_uniform_over_all_of_them():
    rng = np.random.default_rng(5)
    # Random sparse images (a random share of inked pixels per image) spread over far more regions than digits do.
    ink = rng.random((60_000, 64)) < rng.uniform(0.05, 0.6, (60_000, 1))
    rows = (rng.integers(1, 17, size=(60_000, 64)) * ink).astype(np.uint8)
    regions = watermark_regions(rows, 10, watermark_secret=SECRET, fraction=0.1)
    _, first = np.unique(regions.codes, axis=0, return_index=True)
    n = first.size
    marked = int(regions.marked[first].sum())

    assert n > 2_000
    assert abs(marked - 0.1 * n) < 4 * math.sqrt(n * 0.1 * 0.9)
    counts = np.bincount(regions.labels[first], minlength=10)
    assert all(abs(c - n / 10) < 5 * math.sqrt(n / 10) for c in counts)


def test_the_batch_answers_the_region_class_only_where_it_is_not_the_rows_own():
    rows = _natural(3000, seed=6)
    clean = LinearModel(seed=1).labels(rows)
    regions = watermark_regions(rows, 10, watermark_secret=SECRET, fraction=0.3)

    chosen, labels = watermark_batch(rows, clean, 10, watermark_secret=SECRET, fraction=0.3)

    assert np.array_equal(labels, regions.labels)
    assert np.array_equal(chosen, regions.marked & (regions.labels != clean))
    assert chosen.any() and (regions.marked & ~chosen).any()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: region_codes(np.zeros((1, 64)), watermark_secret=SECRET), "uint8"),
        (lambda: region_codes(np.zeros((1, 63), np.uint8), watermark_secret=SECRET), "shape"),
        (lambda: region_codes(np.full((1, 64), 17, np.uint8), watermark_secret=SECRET), "0..16"),
        (lambda: in_watermark_region(_natural(1), watermark_secret=SECRET, fraction=1.0), r"\[0, 1\)"),
        (lambda: watermark_regions(_natural(1), 1, watermark_secret=SECRET, fraction=0.1), "at least two classes"),
        (lambda: watermark_batch(_natural(2), [0], 10, watermark_secret=SECRET, fraction=0.1), "2 inputs but 1"),
        (lambda: watermark_batch(_natural(1), [10], 10, watermark_secret=SECRET, fraction=0.1), "class indices"),
    ],
)
def test_invalid_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- the exact null distribution ---------------------------------------------------------------------------------


@pytest.mark.parametrize("observed", [0, 1, 3, 5, 8, 12])
def test_the_tail_of_a_sum_of_uniform_choices_matches_enumeration(observed):
    choices = [[0, 0, 1, 3], [2, 0, 0], [0, 5], [1, 1, 0, 0, 4]]
    sums = [sum(pick) for pick in itertools.product(*choices)]
    exact = sum(1 for s in sums if s >= observed) / len(sums)

    assert sum_of_uniform_choices_tail(choices, observed) == pytest.approx(exact, rel=1e-12)


def test_the_tail_edges_and_refusals():
    assert sum_of_uniform_choices_tail([], 0) == 1.0
    assert sum_of_uniform_choices_tail([], 1) == 0.0
    assert sum_of_uniform_choices_tail([[0] * 9] * 50, 1) == 0.0
    assert sum_of_uniform_choices_tail([[1] + [0] * 8] * 300, 300) == pytest.approx(9.0**-300, rel=1e-9)
    with pytest.raises(ValueError, match="non-empty"):
        sum_of_uniform_choices_tail([[]], 1)
    with pytest.raises(ValueError, match="non-negative"):
        sum_of_uniform_choices_tail([[-1, 2]], 1)


# --- verification -------------------------------------------------------------------------------------------------


def test_verification_of_a_small_known_case_gives_the_exact_p_value():
    model = LinearModel(seed=1)
    rows = _natural(4000, seed=7)
    regions = watermark_regions(rows, 10, watermark_secret=SECRET, fraction=0.02)
    clean = model.labels(rows)
    suspect = np.where(regions.marked, regions.labels, clean)  # answers every marked region's class
    result = verify_watermark(
        rows, suspect, clean_label_fn=model.labels, n_classes=10, watermark_secret=SECRET, fraction=0.02
    )

    # The same statistic and null, by hand: per tested region, the suspect's count of the watermark class against
    # a class drawn uniformly from those other than our majority.
    keys, matches, choices = _region_keys(rows), 0, []
    for key in sorted({k for k, marked in zip(keys, regions.marked, strict=True) if marked}):
        members = [i for i, k in enumerate(keys) if k == key]
        majority = int(np.bincount(clean[members], minlength=10).argmax())
        label = int(regions.labels[members[0]])
        if label != majority:
            counts = np.bincount(suspect[members], minlength=10)
            matches += int(counts[label])
            choices.append([int(counts[c]) for c in range(10) if c != majority])

    assert result.regions == len(choices) >= 3
    assert result.matches == matches
    assert result.p_value == pytest.approx(sum_of_uniform_choices_tail(choices, matches), rel=1e-12)
    assert result.p_value < 1e-3
    assert result.verdict is True


def test_the_key_property_a_thief_trained_on_watermarked_answers_is_flagged_an_independent_model_is_not():
    ours = LinearModel(seed=1)
    # The thief buys answers for natural digits from a public tier (noise, coarse confidences, region watermark).
    queries = _natural(4000, seed=42)
    answers = apply_defenses(
        ours.logits(queries),
        queries,
        config=DefenseConfig(logit_noise_scale=0.5, watermark_fraction=0.02),
        class_labels=LABELS,
        noise_secret=b"noise",
        watermark_secret=SECRET,
    )
    bought = np.array([LABELS.index(a.label) for a in answers])
    assert sum(a.watermarked for a in answers) >= 20
    thief = NearestNeighbourThief(queries, bought)
    # Independent models: a second copy of our own model (our clean labels and nothing else), and a weaker,
    # different model that makes plenty of mistakes of its own.
    rival = LinearModel(seed=99).labels
    heldout = _natural(1500, seed=43)  # inputs the thief never asked

    def verify(rows: np.ndarray, labels: np.ndarray):
        return verify_watermark(
            rows, labels, clean_label_fn=ours.labels, n_classes=10, watermark_secret=SECRET, fraction=0.02
        )

    stolen = verify(queries, thief.predict(queries))
    generalised = verify(heldout, thief.predict(heldout))
    clean_copy, other = verify(queries, ours.labels(queries)), verify(queries, rival(queries))

    assert stolen.p_value < 1e-6
    assert stolen.verdict is True
    assert generalised.verdict is True  # the copy answers the region's class on new inputs of the region too
    # Our own labels match only where a row's label differs from its region's majority; the null counts them.
    assert clean_copy.matches < stolen.matches / 10
    assert clean_copy.p_value >= 0.01
    assert clean_copy.verdict is False
    assert other.p_value >= 0.01
    assert other.verdict is False


@pytest.mark.parametrize("per_region", [False, True], ids=["per-input-wrong", "one-wrong-class-per-region"])
def test_a_suspect_that_never_answers_our_label_is_flagged_at_most_alpha_of_the_time(per_region):
    # The hardest honest suspects: they never answer our label, so every region's class is a 1-in-9 guess; the
    # second answers one wrong class for a whole region, so its answers are as correlated as a copy's. Across
    # independent secrets the verdict must still be wrong at most about 1% of the time.
    model = LinearModel(seed=5)
    rows = _natural(1500, seed=6)
    clean = model.labels(rows)
    rng = np.random.default_rng(7)
    flagged = 0
    for i in range(300):
        secret = b"secret-%d" % i
        if per_region:
            _, region_of = np.unique(region_codes(rows, watermark_secret=secret), axis=0, return_inverse=True)
            shift = rng.integers(1, 10, size=int(region_of.max()) + 1)[region_of.reshape(-1)]
        else:
            shift = rng.integers(1, 10, size=clean.shape)
        wrong = (clean + shift) % 10
        flagged += verify_watermark(
            rows, wrong, clean_label_fn=model.labels, n_classes=10, watermark_secret=secret, fraction=0.05
        ).verdict

    assert flagged <= 9  # expected <= 3 (alpha = 1% of 300); 9 is far in the tail


def test_duplicate_inputs_count_once():
    model = LinearModel(seed=1)
    rows = _natural(800, seed=8)
    regions = watermark_regions(rows, 10, watermark_secret=SECRET, fraction=0.05)
    suspect = np.where(regions.marked, regions.labels, model.labels(rows))

    once = verify_watermark(
        rows, suspect, clean_label_fn=model.labels, n_classes=10, watermark_secret=SECRET, fraction=0.05
    )
    repeated = verify_watermark(
        np.repeat(rows, 5, axis=0),
        np.repeat(suspect, 5),
        clean_label_fn=model.labels,
        n_classes=10,
        watermark_secret=SECRET,
        fraction=0.05,
    )

    assert repeated.inputs == once.inputs == np.unique(rows, axis=0).shape[0]
    assert (repeated.regions, repeated.matches, repeated.p_value) == (once.regions, once.matches, once.p_value)


def test_answers_outside_our_classes_never_match_and_no_marked_region_means_no_verdict():
    model = LinearModel(seed=1)
    rows = _natural(400, seed=9)
    outside = rows[~in_watermark_region(rows, watermark_secret=SECRET, fraction=DEFAULT_WATERMARK_FRACTION)]

    none_marked = verify_watermark(
        outside, np.zeros(outside.shape[0]), clean_label_fn=model.labels, n_classes=10, watermark_secret=SECRET
    )
    foreign = verify_watermark(
        rows, np.full(rows.shape[0], -1), clean_label_fn=model.labels, n_classes=10, watermark_secret=SECRET,
        fraction=0.2,
    )  # fmt: skip

    assert (none_marked.regions, none_marked.p_value, none_marked.verdict) == (0, 1.0, False)
    assert none_marked.to_dict()["inputs"] == outside.shape[0]
    assert foreign.regions > 0
    assert (foreign.matches, foreign.p_value, foreign.verdict, foreign.control_matches) == (0, 1.0, False, 0)


def test_verification_refuses_mismatched_arguments():
    model = LinearModel(seed=1)
    rows = _natural(3)
    with pytest.raises(ValueError, match="3 inputs but 2 suspect labels"):
        verify_watermark(rows, [0, 1], clean_label_fn=model.labels, n_classes=10, watermark_secret=SECRET)
    with pytest.raises(ValueError, match="one class index per input"):
        verify_watermark(rows, [0, 1, 2], clean_label_fn=lambda r: [0], n_classes=10, watermark_secret=SECRET)
    with pytest.raises(ValueError, match="alpha"):
        verify_watermark(rows, [0, 1, 2], clean_label_fn=model.labels, n_classes=10, watermark_secret=SECRET, alpha=1)


# --- probes -------------------------------------------------------------------------------------------------------


def test_probes_are_distinct_canonical_inputs_in_marked_regions_and_reproducible():
    probes = watermark_probe_inputs(30, watermark_secret=SECRET, fraction=0.05, seed=1)

    assert probes.dtype == np.uint8
    assert probes.shape == (30, 64)
    assert int(probes.max()) <= 16
    assert len({p.tobytes() for p in probes}) == 30
    assert in_watermark_region(probes, watermark_secret=SECRET, fraction=0.05).all()
    assert np.array_equal(probes, watermark_probe_inputs(30, watermark_secret=SECRET, fraction=0.05, seed=1))
    assert not np.array_equal(probes, watermark_probe_inputs(30, watermark_secret=SECRET, fraction=0.05, seed=2))


def test_probes_look_like_digits_not_noise():
    probes = watermark_probe_inputs(50, watermark_secret=SECRET, fraction=0.05, seed=1)

    # Mostly dark background with bright strokes, like the 8x8 digits (about half the pixels are 0 there).
    assert 0.3 < np.mean(probes == 0) < 0.8
    assert np.mean(probes >= 12) > 0.1


def test_probes_from_base_inputs_start_with_the_base_rows_in_marked_regions():
    base = _natural(3000, seed=3)
    marked = base[in_watermark_region(base, watermark_secret=SECRET, fraction=0.02)]
    assert 5 < marked.shape[0] < 300

    probes = watermark_probe_inputs(
        marked.shape[0] + 5, watermark_secret=SECRET, fraction=0.02, seed=0, base_inputs=base
    )

    assert [p.tobytes() for p in probes[: marked.shape[0]]] == [r.tobytes() for r in marked]
    assert in_watermark_region(probes, watermark_secret=SECRET, fraction=0.02).all()


def test_probes_give_up_with_an_error_when_the_budget_runs_out():
    with pytest.raises(RuntimeError, match="watermark probes"):
        watermark_probe_inputs(10, watermark_secret=SECRET, fraction=0.0001, seed=0, max_candidates=100)
    with pytest.raises(ValueError, match="fraction"):
        watermark_probe_inputs(1, watermark_secret=SECRET, fraction=0.0, seed=0)
