"""serving.defenses: canonical inputs, the tier's DefenseConfig, and what each defense does to an answer."""

import hashlib
import math

import numpy as np
import pytest

from serving.defenses import DefenseConfig, _keyed_noise, input_digest, softmax
from tests.serving.defense_helpers import LABELS, NOISE_SECRET, defend, random_inputs, random_logits, watermark_for

# Nothing but the requested defense, so each test sees one mechanism alone.
PLAIN = DefenseConfig(top_k=1, confidence_decimals=None, watermark_fraction=0.0)


def _logits_for(probabilities: list[float]) -> np.ndarray:
    return np.log(np.array([probabilities], dtype=np.float64))


# --- canonical inputs --------------------------------------------------------------------------------------------


def test_input_digest_is_the_sha256_of_the_canonical_rows_bytes():
    row = random_inputs(1)[0]

    assert input_digest(row) == hashlib.sha256(row.tobytes()).digest()
    assert len(input_digest(row)) == 32
    assert input_digest(row) != input_digest(random_inputs(1, seed=1)[0])
    wide = np.arange(30, dtype=np.uint16)  # a tabular model's codes, two bytes each
    assert input_digest(wide) == hashlib.sha256(wide.tobytes()).digest()


def test_input_digest_refuses_non_canonical_rows():
    with pytest.raises(ValueError, match="unsigned grid indices"):
        input_digest(np.zeros(64))
    with pytest.raises(ValueError, match="one canonical row"):
        input_digest(random_inputs(2))


# --- configuration -----------------------------------------------------------------------------------------------


def test_default_config_is_a_public_tier_top_1_two_decimals_one_and_a_half_percent_watermark_regions():
    config = DefenseConfig()

    assert config.top_k == 1
    assert config.confidence_decimals == 2
    assert config.confidence_buckets is None
    assert config.logit_noise_scale == 0.0
    assert config.label_flip_fraction == 0.0
    assert config.watermark_fraction == 0.015
    assert config.return_probabilities is False
    assert config.perturbs is True


def test_none_config_expresses_no_defenses():
    config = DefenseConfig.none()

    assert config.confidence_decimals is None
    assert config.confidence_buckets is None
    assert config.logit_noise_scale == 0.0
    assert config.watermark_fraction == 0.0
    assert config.return_probabilities is True
    assert config.perturbs is False


def test_from_dict_round_trips_and_fills_defaults():
    data = {
        "top_k": 3,
        "confidence_decimals": None,
        "confidence_buckets": [0.5, 0.8, 0.95],
        "logit_noise_scale": 1,
        "label_flip_fraction": 0.01,
        "watermark_fraction": 0.01,
        "return_probabilities": True,
    }

    config = DefenseConfig.from_dict(data, n_classes=10)

    assert config.confidence_buckets == (0.5, 0.8, 0.95)
    assert config.logit_noise_scale == 1.0
    assert config.to_dict() == {**data, "logit_noise_scale": 1.0}
    assert DefenseConfig.from_dict(config.to_dict()) == config
    assert DefenseConfig.from_dict({}) == DefenseConfig()
    assert DefenseConfig.from_dict({"top_k": 2}) == DefenseConfig(top_k=2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"top_k": 0}, "top_k must be an integer >= 1"),
        ({"top_k": 2.0}, "top_k must be an integer >= 1"),
        ({"top_k": True}, "top_k must be an integer >= 1"),
        ({"top_k": 11}, r"top_k must be at most the number of classes \(10\)"),
        ({"confidence_decimals": 7}, "confidence_decimals must be None or an integer 0..6"),
        ({"confidence_decimals": -1}, "confidence_decimals must be None or an integer 0..6"),
        ({"confidence_decimals": "2"}, "confidence_decimals must be None or an integer 0..6"),
        ({"confidence_buckets": []}, "non-empty list"),
        ({"confidence_buckets": "0.5"}, "non-empty list"),
        ({"confidence_buckets": [0.5, "x"]}, "must hold numbers"),
        ({"confidence_buckets": [0.0, 0.5]}, "strictly between 0 and 1"),
        ({"confidence_buckets": [0.5, 1.0]}, "strictly between 0 and 1"),
        ({"confidence_buckets": [0.8, 0.5]}, "strictly increasing"),
        ({"confidence_buckets": [0.5, 0.5]}, "strictly increasing"),
        ({"logit_noise_scale": -0.1}, "logit_noise_scale must be >= 0"),
        ({"logit_noise_scale": float("nan")}, "logit_noise_scale must be a finite number"),
        ({"logit_noise_scale": "1"}, "logit_noise_scale must be a finite number"),
        ({"label_flip_fraction": 1.0}, r"label_flip_fraction must be in \[0, 1\)"),
        ({"label_flip_fraction": -0.01}, r"label_flip_fraction must be in \[0, 1\)"),
        ({"watermark_fraction": 1}, r"watermark_fraction must be in \[0, 1\)"),
        ({"watermark_fraction": -0.5}, r"watermark_fraction must be in \[0, 1\)"),
        ({"return_probabilities": "yes"}, "return_probabilities must be true or false"),
        ({"noise": 1.0}, "unknown defense setting"),
    ],
)
def test_from_dict_refuses_invalid_settings_with_a_clear_message(data, message):
    with pytest.raises(ValueError, match=message):
        DefenseConfig.from_dict(data, n_classes=10)


def test_from_dict_refuses_a_non_object():
    with pytest.raises(ValueError, match="JSON object"):
        DefenseConfig.from_dict([("top_k", 1)])


def test_direct_construction_is_validated_too():
    with pytest.raises(ValueError, match="watermark_fraction"):
        DefenseConfig(watermark_fraction=2.0)


# --- no defenses ---------------------------------------------------------------------------------------------------


def test_no_defenses_returns_the_exact_softmax_and_the_model_label():
    logits, rows = random_logits(200), random_inputs(200)

    answers = defend(logits, rows, DefenseConfig.none())

    exact = softmax(logits)
    assert np.array_equal(np.array([a.probabilities for a in answers]), exact)
    assert [a.label for a in answers] == [LABELS[i] for i in logits.argmax(axis=1)]
    assert [a.label for a in answers] == [a.clean_label for a in answers]
    assert [a.confidence for a in answers] == exact.max(axis=1).tolist()
    assert not any(a.watermarked for a in answers)
    assert all(a.top_k is None for a in answers)


def test_no_defenses_never_watermarks_even_a_watermark_input():
    rows = random_inputs(2000)
    marked = np.flatnonzero(watermark_for().in_marked_region(rows, fraction=0.3))
    assert marked.size  # the same inputs would be watermarked by a public tier at 30%

    answers = defend(random_logits(2000), rows, DefenseConfig.none())

    assert not any(answers[i].watermarked for i in marked)


def test_softmax_survives_huge_logits():
    probabilities = softmax(np.array([[1000.0, 0.0, -1000.0]]))

    assert np.isfinite(probabilities).all()
    assert probabilities[0].tolist() == [1.0, 0.0, 0.0]


# --- top-1 / top-k -------------------------------------------------------------------------------------------------


def test_top_1_answers_the_label_and_its_confidence_only():
    answers = defend(
        _logits_for([0.1, 0.6, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025]), random_inputs(1), PLAIN
    )

    assert answers[0].label == "1"
    assert answers[0].confidence == pytest.approx(0.6, abs=1e-12)
    assert answers[0].top_k is None
    assert answers[0].probabilities is None


def test_top_k_lists_the_k_best_labels_best_first_with_rounded_confidences():
    logits = _logits_for([0.1, 0.6, 0.05, 0.2, 0.02, 0.01, 0.005, 0.005, 0.005, 0.005])

    answers = defend(logits, random_inputs(1), DefenseConfig(top_k=3, watermark_fraction=0.0))

    assert answers[0].top_k == [("1", 0.6), ("3", 0.2), ("0", 0.1)]
    assert answers[0].label == "1"
    assert answers[0].confidence == 0.6


def test_top_k_equal_to_the_number_of_classes_lists_every_class_once():
    answers = defend(
        random_logits(50), random_inputs(50), DefenseConfig(top_k=10, confidence_decimals=None, watermark_fraction=0)
    )

    for answer in answers:
        assert sorted(label for label, _ in answer.top_k) == LABELS
        confidences = [c for _, c in answer.top_k]
        assert confidences == sorted(confidences, reverse=True)
        assert math.fsum(confidences) == pytest.approx(1.0)


def test_top_k_above_the_number_of_classes_answers_every_class_a_tier_fits_models_of_any_width():
    (answer,) = defend(random_logits(1), random_inputs(1), DefenseConfig(top_k=11, watermark_fraction=0.0))

    assert sorted(label for label, _ in answer.top_k) == LABELS


# --- coarse confidences ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("decimals", "expected"), [(0, 1.0), (1, 0.6), (2, 0.62), (4, 0.6234)])
def test_confidence_is_rounded_to_the_configured_decimals(decimals, expected):
    logits = _logits_for([0.623449] + [0.376551 / 9] * 9)

    answers = defend(logits, random_inputs(1), DefenseConfig(confidence_decimals=decimals, watermark_fraction=0.0))

    assert answers[0].confidence == expected


def test_rounding_applies_to_the_probability_vector_too():
    config = DefenseConfig(confidence_decimals=2, watermark_fraction=0.0, return_probabilities=True)

    answers = defend(random_logits(20), random_inputs(20), config)

    for answer in answers:
        assert all(round(p, 2) == p for p in answer.probabilities)


@pytest.mark.parametrize(
    ("top", "expected"),
    [(0.97, 0.95), (0.95, 0.95), (0.9, 0.8), (0.8, 0.8), (0.7, 0.5), (0.5, 0.5), (0.3, 0.0)],
)
def test_buckets_report_the_lower_edge_of_the_confidence_bucket(top, expected):
    rest = (1 - top) / 9
    logits = _logits_for([top] + [rest] * 9)
    config = DefenseConfig(confidence_buckets=(0.5, 0.8, 0.95), watermark_fraction=0.0)

    answers = defend(logits, random_inputs(1), config)

    assert answers[0].label == "0"
    assert answers[0].confidence == expected


def test_buckets_replace_rounding_and_coarsen_every_returned_number():
    config = DefenseConfig(
        top_k=3, confidence_decimals=2, confidence_buckets=(0.2, 0.5), watermark_fraction=0.0, return_probabilities=True
    )

    answers = defend(random_logits(100), random_inputs(100), config)

    returned = {p for a in answers for p in [a.confidence, *a.probabilities, *(c for _, c in a.top_k)]}
    assert returned <= {0.0, 0.2, 0.5}


# --- keyed logit noise -------------------------------------------------------------------------------------------


def test_keyed_noise_is_standard_normal_and_depends_on_the_secret():
    rows = random_inputs(3000)

    normals, flip_draw = _keyed_noise(rows, 10, NOISE_SECRET)

    assert normals.shape == (3000, 10)
    assert abs(normals.mean()) < 0.03
    assert abs(normals.std() - 1.0) < 0.03
    assert flip_draw.min() > 0.0
    assert flip_draw.max() < 1.0
    assert abs(flip_draw.mean() - 0.5) < 0.02
    other, _ = _keyed_noise(rows, 10, b"another secret")
    assert not np.allclose(normals, other)


def test_noise_is_deterministic_per_input_across_calls_batches_and_callers():
    rows, logits = random_inputs(50), random_logits(50)
    config = DefenseConfig(logit_noise_scale=1.0, confidence_decimals=None, return_probabilities=True)

    first = defend(logits, rows, config)
    again = defend(logits, rows, config)
    # The same inputs in another order and in other company: the answer is a function of the input alone, so no
    # key, batch position or repetition changes it (the API has no key argument to give).
    order = np.random.default_rng(9).permutation(50)
    shuffled = defend(
        np.vstack([logits[order], random_logits(5, seed=7)]), np.vstack([rows[order], random_inputs(5, seed=7)]), config
    )
    one_by_one = [defend(logits[i : i + 1], rows[i : i + 1], config)[0] for i in range(50)]

    assert first == again
    assert [shuffled[j] for j in np.argsort(order)] == first
    assert one_by_one == first


def test_noise_differs_between_inputs_and_between_secrets():
    rows = random_inputs(100)
    flat = np.zeros((100, 10))  # equal logits: the probabilities show the noise itself
    config = DefenseConfig(
        logit_noise_scale=1.0, confidence_decimals=None, watermark_fraction=0, return_probabilities=True
    )

    vectors = np.array([a.probabilities for a in defend(flat, rows, config)])
    other_secret = np.array([a.probabilities for a in defend(flat, rows, config, noise_secret=b"rotated")])

    assert len({tuple(v) for v in vectors.round(12)}) == 100
    assert not np.allclose(vectors, other_secret)
    assert not np.allclose(vectors, 0.1)


def test_repeating_a_query_cannot_average_the_noise_away():
    rows = np.repeat(random_inputs(1), 100, axis=0)
    logits = np.repeat(random_logits(1), 100, axis=0)
    config = DefenseConfig(logit_noise_scale=2.0, confidence_decimals=None, return_probabilities=True)

    vectors = np.array([a.probabilities for a in defend(logits, rows, config)])

    assert np.ptp(vectors, axis=0).max() == 0.0  # 100 asks, one answer
    assert not np.allclose(vectors[0], softmax(logits[:1])[0])


def test_with_no_flip_fraction_noise_never_changes_the_label():
    rows, logits = random_inputs(5000), random_logits(5000, scale=0.5)
    config = DefenseConfig(logit_noise_scale=5.0, confidence_decimals=None, watermark_fraction=0.0)

    answers = defend(logits, rows, config)

    assert all(a.label == a.clean_label for a in answers)
    # The noise did move the confidences: the clean class's value was swapped with the noisy winner's.
    clean = softmax(logits).max(axis=1)
    assert np.mean(np.abs(np.array([a.confidence for a in answers]) - clean) > 0.05) > 0.5


def test_the_label_stays_the_models_on_all_but_the_flip_fraction():
    n, flip = 20_000, 0.05
    rows, logits = random_inputs(n), random_logits(n, scale=0.5)
    config = DefenseConfig(logit_noise_scale=5.0, label_flip_fraction=flip, watermark_fraction=0.0)

    answers = defend(logits, rows, config)

    changed = np.mean([a.label != a.clean_label for a in answers])
    # Flip draws below 5% keep the noisy label; it differs from the clean one most of the time with this much noise.
    tolerance = 4 * math.sqrt(flip * (1 - flip) / n)
    assert changed <= flip + tolerance
    assert changed >= 0.5 * flip


def test_flipped_labels_are_the_same_for_every_repetition():
    rows, logits = random_inputs(2000), random_logits(2000, scale=0.5)
    config = DefenseConfig(logit_noise_scale=5.0, label_flip_fraction=0.1, watermark_fraction=0.0)

    assert defend(logits, rows, config) == defend(logits, rows, config)


# --- composition -------------------------------------------------------------------------------------------------


def test_all_defenses_composed_give_consistent_answers():
    n = 5000
    rows, logits = random_inputs(n), random_logits(n)
    config = DefenseConfig(
        top_k=3,
        confidence_decimals=3,
        logit_noise_scale=1.0,
        label_flip_fraction=0.02,
        watermark_fraction=0.05,
        return_probabilities=True,
    )

    answers = defend(logits, rows, config)

    for answer in answers:
        assert answer.top_k[0] == (answer.label, answer.confidence)
        assert answer.probabilities[LABELS.index(answer.label)] == answer.confidence
        assert max(answer.probabilities) == answer.confidence
        assert len(answer.top_k) == 3
        assert len({label for label, _ in answer.top_k}) == 3
        if answer.watermarked:
            assert answer.label != answer.clean_label
    marked = sum(a.watermarked for a in answers)
    flipped = sum(a.label != a.clean_label and not a.watermarked for a in answers)
    expected, _ = watermark_for().decide(rows, logits.argmax(axis=1), 10, fraction=0.05)
    assert marked == int(expected.sum()) > 0
    assert flipped <= 0.02 * n + 4 * math.sqrt(0.02 * n)
    assert answers == defend(logits, rows, config)


def test_buckets_compose_with_noise_and_top_k():
    config = DefenseConfig(top_k=2, confidence_buckets=(0.5, 0.9), logit_noise_scale=0.5, watermark_fraction=0.0)

    answers = defend(random_logits(200), random_inputs(200), config)

    assert {c for a in answers for _, c in a.top_k} <= {0.0, 0.5, 0.9}
    assert all(a.label == a.clean_label for a in answers)


# --- contracts of the call ---------------------------------------------------------------------------------------


def test_an_empty_batch_gives_no_answers():
    assert defend(np.zeros((0, 10)), np.zeros((0, 64), dtype=np.uint8), DefenseConfig(logit_noise_scale=1.0)) == []


@pytest.mark.parametrize(
    ("logits", "rows", "message"),
    [
        (np.zeros((2, 10)), np.zeros((3, 64), dtype=np.uint8), "2 rows of logits but 3 inputs"),
        (np.zeros((2, 9)), np.zeros((2, 64), dtype=np.uint8), "9 logits per row but 10 class labels"),
        (np.zeros(10), np.zeros((1, 64), dtype=np.uint8), "logits must have shape"),
        (np.zeros((1, 10)), np.zeros((1, 64)), "unsigned grid indices"),
        (np.zeros((1, 10)), np.zeros((1, 32), dtype=np.uint8), r"shape \(n, 64\)"),
        (np.full((1, 10), np.nan), np.zeros((1, 64), dtype=np.uint8), "finite"),
    ],
)
def test_mismatched_or_non_canonical_arguments_are_refused(logits, rows, message):
    with pytest.raises(ValueError, match=message):
        defend(logits, rows, DefenseConfig())


def test_answers_are_plain_python_values():
    config = DefenseConfig(top_k=2, return_probabilities=True, logit_noise_scale=1.0, watermark_fraction=0.5)

    answer = defend(random_logits(1), random_inputs(1), config)[0]

    assert type(answer.label) is str
    assert type(answer.confidence) is float
    assert type(answer.watermarked) is bool
    assert all(type(p) is float for p in answer.probabilities)
    assert all(type(label) is str and type(c) is float for label, c in answer.top_k)
