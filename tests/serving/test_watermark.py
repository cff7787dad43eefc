"""serving.watermark: which regions carry the watermark for any schema, what it costs honest users, which class they
answer, and the proof that a copy learned it."""

import itertools
import math

import numpy as np
import pytest

from serving.defenses import DefenseConfig, apply_defenses
from serving.input_schema import InputSchema
from serving.ml import breast_cancer
from serving.ml.digits import augment_digits, load_digits_split
from serving.watermark import CALIBRATION_FRACTIONS, DEFAULT_WATERMARK_FRACTION, REGION_PROJECTIONS, RegionWatermark
from serving.watermark_verification import sum_of_uniform_choices_tail, verify_watermark, watermark_probe_inputs
from tests.serving.defense_helpers import digits_reference, watermark_for
from tests.serving.helpers import DIGITS

SECRET = b"watermark-secret-for-tests"
LABELS = [str(i) for i in range(10)]
WATERMARK = watermark_for(SECRET)


def _digits() -> np.ndarray:
    split = load_digits_split()
    return np.concatenate([split.X_train, split.X_public, split.X_test]).astype(np.uint8)


def _natural(n: int, seed: int = 0) -> np.ndarray:
    """`n` natural variants of the real digits (what honest users and natural-data thieves send)."""
    rng = np.random.default_rng(seed)
    digits = _digits()
    return augment_digits(digits[rng.integers(0, digits.shape[0], n)], rng)


def _region_keys(rows: np.ndarray, watermark: RegionWatermark = WATERMARK) -> list[bytes]:
    return [cells.tobytes() for cells in watermark.cells(rows)]


class LinearModel:
    """A stand-in for our classifier: a fixed random linear map of the 64 pixels to 10 logits."""

    def __init__(self, seed: int, features: int = 64, classes: int = 10) -> None:
        rng = np.random.default_rng(seed)
        self.weights = rng.normal(size=(features, classes))
        self.bias = rng.normal(size=classes) * 3

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


def test_region_cells_are_deterministic_and_keyed_by_the_secret():
    rows = _natural(2000)
    cells = WATERMARK.cells(rows)

    assert cells.shape == (2000, REGION_PROJECTIONS) and cells.dtype == np.int32
    assert np.array_equal(cells, watermark_for(SECRET).cells(rows))
    assert np.array_equal(
        cells, RegionWatermark.fit(DIGITS, digits_reference(), secret=SECRET, n_classes=10).cells(rows)
    )
    assert np.mean(np.all(cells == watermark_for(b"guess").cells(rows), axis=1)) < 0.2


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

    assert same > 0.35  # a per-input watermark shares nothing with its variants
    assert len(set(home)) > digits.shape[0] / 2


def test_regions_exist_for_a_tabular_schema_too_and_its_natural_variants_share_them():
    schema = InputSchema.from_dict(breast_cancer.input_schema())
    split = breast_cancer.load_split()
    reference = schema.codes(split.X_train)
    # At the grid's own width (ten classes); two classes cut narrower cells, which a memorising copy still learns.
    watermark = RegionWatermark.fit(schema, reference, secret=SECRET, n_classes=10)
    rng = np.random.default_rng(0)
    rows = schema.codes(split.X_public)
    # A variant: each feature moved by a twentieth of its natural spread.
    spread = split.X_train.std(axis=0)
    variants = schema.codes(np.clip(split.X_public + rng.normal(size=split.X_public.shape) * spread / 20, 0, None))

    same = np.mean(np.all(watermark.cells(rows) == watermark.cells(variants), axis=1))

    assert same > 0.4
    assert len(set(_region_keys(rows, watermark))) > rows.shape[0] / 3


def test_every_input_of_a_region_gets_the_same_decision_and_class():
    rows = _natural(5000, seed=2)
    regions = WATERMARK.regions(rows, 10)
    marked = WATERMARK.marked(regions.keys, fraction=0.2)
    decided: dict[bytes, tuple[bool, int]] = {}
    for key, mark, label in zip(_region_keys(rows), marked, regions.labels, strict=True):
        assert decided.setdefault(key, (bool(mark), int(label))) == (bool(mark), int(label))

    assert len(decided) > 100


def test_a_smaller_fraction_marks_a_subset_of_a_larger_ones_regions_and_zero_marks_none():
    rows = _natural(20_000, seed=4)
    small = WATERMARK.in_marked_region(rows, fraction=0.01)
    large = WATERMARK.in_marked_region(rows, fraction=0.05)

    assert small.any()
    assert np.all(large[small])
    assert large.sum() > small.sum()
    assert not WATERMARK.in_marked_region(rows, fraction=0.0).any()


def test_the_fraction_is_of_regions_and_the_classes_are_uniform_over_all_of_them():
    rng = np.random.default_rng(5)
    # Random sparse images (a random share of inked pixels per image) spread over far more regions than digits do.
    ink = rng.random((60_000, 64)) < rng.uniform(0.05, 0.6, (60_000, 1))
    rows = (rng.integers(1, 17, size=(60_000, 64)) * ink).astype(np.uint8)
    regions = WATERMARK.regions(rows, 10)
    _, first = np.unique(regions.cells, axis=0, return_index=True)
    n = first.size
    marked = int(WATERMARK.marked(regions.keys[first], fraction=0.1).sum())

    assert n > 2_000
    share = WATERMARK.threshold(0.1)
    assert abs(marked - share * n) < 4 * math.sqrt(n * share * (1 - share))
    counts = np.bincount(regions.labels[first], minlength=10)
    assert all(abs(c - n / 10) < 5 * math.sqrt(n / 10) for c in counts)


# --- the honest cost --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.005, 0.015, 0.05])
def test_under_any_secret_at_most_the_fraction_of_the_reference_inputs_lie_in_marked_regions(fraction):
    reference = digits_reference()
    for i in range(20):
        watermark = RegionWatermark.fit(DIGITS, reference, secret=b"cost-%d" % i, n_classes=10)
        calibration = watermark.calibration(fraction)

        inside = watermark.in_marked_region(reference, fraction=fraction)
        assert np.mean(inside) == pytest.approx(calibration.reference_share) and calibration.reference_share <= fraction
        assert 0 < calibration.threshold <= fraction


def test_thresholds_grow_with_the_fraction_and_the_chosen_grid_keeps_them_near_it():
    thresholds = [WATERMARK.threshold(f) for f in CALIBRATION_FRACTIONS]

    assert thresholds == sorted(thresholds)
    assert all(t >= f / 2 for t, f in zip(thresholds, CALIBRATION_FRACTIONS, strict=True))


def test_the_calibration_reports_the_share_of_held_out_inputs_too():
    heldout = load_digits_split().X_test.astype(np.uint8)

    calibration = WATERMARK.calibration(0.015, heldout=heldout)

    assert calibration.heldout_share == pytest.approx(np.mean(WATERMARK.in_marked_region(heldout, fraction=0.015)))
    assert calibration.to_dict().keys() == {"fraction", "threshold", "reference_share", "heldout_share"}


def test_reference_data_that_never_varies_makes_no_regions():
    with pytest.raises(ValueError, match="two distinct reference inputs"):
        RegionWatermark.fit(DIGITS, np.zeros((60, 64), dtype=np.uint8), secret=SECRET, n_classes=10)


# --- serving ------------------------------------------------------------------------------------------------------


def test_the_batch_answers_the_region_class_only_where_it_is_not_the_rows_own():
    rows = _natural(3000, seed=6)
    clean = LinearModel(seed=1).labels(rows)
    regions = WATERMARK.regions(rows, 10)
    marked = WATERMARK.marked(regions.keys, fraction=0.3)

    chosen, labels = WATERMARK.decide(rows, clean, 10, fraction=0.3)

    assert np.array_equal(labels, regions.labels)
    assert np.array_equal(chosen, marked & (regions.labels != clean))
    assert chosen.any() and (marked & ~chosen).any()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: WATERMARK.regions(np.zeros((1, 64)), 10), "uint8"),
        (lambda: WATERMARK.regions(np.zeros((1, 63), np.uint8), 10), "shape"),
        (lambda: WATERMARK.regions(np.full((1, 64), 17, np.uint8), 10), "beyond"),
        (lambda: WATERMARK.in_marked_region(_natural(1), fraction=1.0), r"\[0, 1\)"),
        (lambda: WATERMARK.regions(_natural(1), 1), "at least two classes"),
        (lambda: WATERMARK.decide(_natural(2), [0], 10, fraction=0.1), "2 inputs but 1"),
        (lambda: WATERMARK.decide(_natural(1), [10], 10, fraction=0.1), "class indices"),
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


def _verify(rows, suspect, model, *, watermark=WATERMARK, fraction=0.02, n_classes=10, **extra):
    return verify_watermark(
        rows, suspect, clean_label_fn=model.labels, n_classes=n_classes, watermark=watermark, fraction=fraction, **extra
    )


def test_verification_of_a_small_known_case_gives_the_exact_p_value():
    model = LinearModel(seed=1)
    rows = _natural(4000, seed=7)
    regions = WATERMARK.regions(rows, 10)
    marked = WATERMARK.marked(regions.keys, fraction=0.02)
    clean = model.labels(rows)
    suspect = np.where(marked, regions.labels, clean)  # answers every marked region's class
    result = _verify(rows, suspect, model)

    # The same statistic and null, by hand: per marked region, the suspect's count of the watermark class (0 when it
    # is our majority there) against the same count for a class drawn uniformly from all ten.
    keys, matches, choices = _region_keys(rows), 0, []
    for key in sorted({k for k, mark in zip(keys, marked, strict=True) if mark}):
        members = [i for i, k in enumerate(keys) if k == key]
        majority = int(np.bincount(clean[members], minlength=10).argmax())
        label = int(regions.labels[members[0]])
        counts = np.bincount(suspect[members], minlength=10)
        counts[majority] = 0
        matches += int(counts[label])
        choices.append(counts.tolist())

    assert result.regions == len(choices) >= 3
    assert result.matches == matches
    assert result.p_value == pytest.approx(sum_of_uniform_choices_tail(choices, matches), rel=1e-12)
    assert result.p_value < 1e-3
    assert result.verdict is True


def _steal(model: LinearModel, queries: np.ndarray, watermark: RegionWatermark, labels: list[str], fraction: float):
    answers = apply_defenses(
        model.logits(queries),
        queries,
        config=DefenseConfig(logit_noise_scale=0.5, watermark_fraction=fraction),
        class_labels=labels,
        noise_secret=b"noise",
        watermark=watermark,
    )
    bought = np.array([labels.index(a.label) for a in answers])
    return NearestNeighbourThief(queries, bought), sum(a.watermarked for a in answers)


def test_the_key_property_a_thief_trained_on_watermarked_answers_is_flagged_an_independent_model_is_not():
    ours = LinearModel(seed=1)
    # The thief buys answers for natural digits from a public tier (noise, coarse confidences, region watermark).
    queries = _natural(4000, seed=42)
    thief, watermarked = _steal(ours, queries, WATERMARK, LABELS, 0.05)
    assert watermarked >= 50
    # Independent models: a second copy of our own model (our clean labels and nothing else), and a weaker,
    # different model that makes plenty of mistakes of its own.
    rival = LinearModel(seed=99)
    heldout = _natural(1500, seed=43)  # inputs the thief never asked

    def verify(rows, labels):
        return _verify(rows, labels, ours, fraction=0.05)

    stolen = verify(queries, thief.predict(queries))
    generalised = verify(heldout, thief.predict(heldout))
    clean_copy, other = verify(queries, ours.labels(queries)), verify(queries, rival.labels(queries))

    assert stolen.p_value < 1e-6 and stolen.verdict is True
    assert generalised.verdict is True  # the copy answers the region's class on new inputs of the region too
    assert clean_copy.matches < stolen.matches / 10
    assert clean_copy.p_value >= 0.01 and clean_copy.verdict is False
    assert other.p_value >= 0.01 and other.verdict is False


def test_a_two_class_models_thief_is_flagged_too():
    """With two classes a region's class is either ours or the other one: the test draws over both, ours worth 0,
    so a copy that learned the flips in half the marked regions is far in the tail."""
    schema = InputSchema.from_dict(breast_cancer.input_schema())
    split = breast_cancer.load_split()
    watermark = RegionWatermark.fit(schema, schema.codes(split.X_train), secret=SECRET, n_classes=2)
    rng = np.random.default_rng(1)
    # The thief's natural data: its own rows and small variants of them.
    base = np.concatenate([split.X_public, split.X_test])
    queries = schema.codes(
        np.clip(base[rng.integers(0, base.shape[0], 4000)] * rng.uniform(0.97, 1.03, (4000, 30)), 0, None)
    )
    scale = split.X_train.std(axis=0)
    ours = LinearModel(seed=3, features=30, classes=2)
    ours.weights /= scale[:, None] * 10
    ours.bias = -schema.values(queries).mean(axis=0) @ ours.weights
    labels = ["malignant", "benign"]

    thief, watermarked = _steal(ours, queries, watermark, labels, 0.05)
    stolen = verify_watermark(
        queries, thief.predict(queries), clean_label_fn=ours.labels, n_classes=2, watermark=watermark, fraction=0.05
    )
    independent = verify_watermark(
        queries, ours.labels(queries), clean_label_fn=ours.labels, n_classes=2, watermark=watermark, fraction=0.05
    )

    assert watermarked > 20
    assert stolen.verdict is True and stolen.p_value < 1e-3
    assert independent.verdict is False


@pytest.mark.parametrize("per_region", [False, True], ids=["per-input-wrong", "one-wrong-class-per-region"])
def test_a_suspect_that_never_answers_our_label_is_flagged_at_most_alpha_of_the_time(per_region):
    # The hardest honest suspects: they never answer our label, so every region's class is a 1-in-10 guess; the
    # second answers one wrong class for a whole region, so its answers are as correlated as a copy's. Across
    # independent secrets the verdict must still be wrong at most about 1% of the time.
    model = LinearModel(seed=5)
    rows = _natural(1500, seed=6)
    clean = model.labels(rows)
    reference = digits_reference()[:300]
    rng = np.random.default_rng(7)
    flagged = 0
    for i in range(300):
        watermark = RegionWatermark.fit(DIGITS, reference, secret=b"secret-%d" % i, n_classes=10)
        if per_region:
            _, region_of = np.unique(watermark.cells(rows), axis=0, return_inverse=True)
            shift = rng.integers(1, 10, size=int(region_of.max()) + 1)[region_of.reshape(-1)]
        else:
            shift = rng.integers(1, 10, size=clean.shape)
        wrong = (clean + shift) % 10
        flagged += _verify(rows, wrong, model, watermark=watermark, fraction=0.05).verdict

    assert flagged <= 9  # expected <= 3 (alpha = 1% of 300); 9 is far in the tail


def test_duplicate_inputs_count_once():
    model = LinearModel(seed=1)
    rows = _natural(800, seed=8)
    regions = WATERMARK.regions(rows, 10)
    suspect = np.where(WATERMARK.marked(regions.keys, fraction=0.05), regions.labels, model.labels(rows))

    once = _verify(rows, suspect, model, fraction=0.05)
    repeated = _verify(np.repeat(rows, 5, axis=0), np.repeat(suspect, 5), model, fraction=0.05)

    assert repeated.inputs == once.inputs == np.unique(rows, axis=0).shape[0]
    assert (repeated.regions, repeated.matches, repeated.p_value) == (once.regions, once.matches, once.p_value)


def test_answers_outside_our_classes_never_match_and_no_marked_region_means_no_verdict():
    model = LinearModel(seed=1)
    rows = _natural(400, seed=9)
    outside = rows[~WATERMARK.in_marked_region(rows, fraction=DEFAULT_WATERMARK_FRACTION)]

    none_marked = _verify(outside, np.zeros(outside.shape[0]), model, fraction=DEFAULT_WATERMARK_FRACTION)
    foreign = _verify(rows, np.full(rows.shape[0], -1), model, fraction=0.2)

    assert (none_marked.regions, none_marked.p_value, none_marked.verdict) == (0, 1.0, False)
    assert none_marked.to_dict()["inputs"] == outside.shape[0]
    assert foreign.regions > 0
    assert (foreign.matches, foreign.p_value, foreign.verdict, foreign.control_matches) == (0, 1.0, False, 0)


def test_verification_refuses_mismatched_arguments():
    model = LinearModel(seed=1)
    rows = _natural(3)
    with pytest.raises(ValueError, match="3 inputs but 2 suspect labels"):
        _verify(rows, [0, 1], model)
    with pytest.raises(ValueError, match="one class index per input"):
        verify_watermark(rows, [0, 1, 2], clean_label_fn=lambda r: [0], n_classes=10, watermark=WATERMARK)
    with pytest.raises(ValueError, match="alpha"):
        _verify(rows, [0, 1, 2], model, alpha=1)


# --- probes -------------------------------------------------------------------------------------------------------


def test_probes_are_distinct_canonical_inputs_in_marked_regions_and_reproducible():
    reference = digits_reference()
    probes = watermark_probe_inputs(30, watermark=WATERMARK, base_inputs=reference, fraction=0.05, seed=1)

    assert probes.dtype == np.uint8 and probes.shape == (30, 64) and int(probes.max()) <= 16
    assert len({p.tobytes() for p in probes}) == 30
    assert WATERMARK.in_marked_region(probes, fraction=0.05).all()
    again = watermark_probe_inputs(30, watermark=WATERMARK, base_inputs=reference, fraction=0.05, seed=1)
    assert np.array_equal(probes, again)


def test_probes_from_base_inputs_start_with_the_base_rows_in_marked_regions():
    base = _natural(3000, seed=3)
    marked = base[WATERMARK.in_marked_region(base, fraction=0.02)]
    assert 5 < marked.shape[0] < 300

    probes = watermark_probe_inputs(marked.shape[0] + 5, watermark=WATERMARK, base_inputs=base, fraction=0.02, seed=0)

    assert [p.tobytes() for p in probes[: marked.shape[0]]] == [r.tobytes() for r in marked]
    assert WATERMARK.in_marked_region(probes, fraction=0.02).all()


def test_probes_of_a_tabular_model_are_variations_of_its_rows_on_its_grid():
    schema = InputSchema.from_dict(breast_cancer.input_schema())
    reference = schema.codes(breast_cancer.load_split().X_train)
    watermark = RegionWatermark.fit(schema, reference, secret=SECRET, n_classes=2)

    probes = watermark_probe_inputs(40, watermark=watermark, base_inputs=reference, fraction=0.05, seed=0)

    assert probes.dtype == np.uint16 and probes.shape == (40, 30)
    assert watermark.in_marked_region(probes, fraction=0.05).all()
    assert not schema.out_of_bounds(schema.values(probes)).any()


def test_probes_give_up_with_an_error_when_the_budget_runs_out():
    reference = digits_reference()
    with pytest.raises(RuntimeError, match="watermark probes"):
        watermark_probe_inputs(
            10, watermark=WATERMARK, base_inputs=reference[:5], fraction=0.0001, seed=0, max_candidates=100
        )
    with pytest.raises(ValueError, match="fraction"):
        watermark_probe_inputs(1, watermark=WATERMARK, base_inputs=reference, fraction=0.0, seed=0)
