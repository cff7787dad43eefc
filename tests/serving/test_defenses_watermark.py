"""The watermark defense: which answers carry the mark, and that honest answers are untouched."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from serving.defenses import DefenseConfig
from serving.ml.digits import augment_digits, load_digits_split
from tests.serving.defense_helpers import LABELS, WATERMARK_SECRET, defend, random_inputs, random_logits, watermark_for


def _natural(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    split = load_digits_split()
    digits = np.concatenate([split.X_train, split.X_public, split.X_test])
    return augment_digits(digits[rng.integers(0, digits.shape[0], n)], rng)


def _regions(rows: np.ndarray, *, fraction: float, secret: bytes = WATERMARK_SECRET):
    """Each row's region cells, whether it is marked at `fraction` and its class, as the server decides them."""
    watermark = watermark_for(secret)
    regions = watermark.regions(rows, 10)
    return SimpleNamespace(
        codes=regions.cells, marked=watermark.marked(regions.keys, fraction=fraction), labels=regions.labels
    )


# --- watermarking -------------------------------------------------------------------------------------------------


def test_watermark_answers_are_their_regions_class_never_the_clean_one():
    n = 4000
    rows, logits = _natural(n), random_logits(n)
    config = DefenseConfig(confidence_decimals=None, watermark_fraction=0.2)
    regions = _regions(rows, fraction=0.2)

    answers = defend(logits, rows, config)

    assert 0.05 * n < sum(a.watermarked for a in answers) < 0.4 * n
    for i, answer in enumerate(answers):
        clean = int(logits[i].argmax())
        assert answer.clean_label == LABELS[clean]
        expected = bool(regions.marked[i]) and int(regions.labels[i]) != clean
        assert answer.watermarked is expected
        assert answer.label == (LABELS[regions.labels[i]] if expected else answer.clean_label)


def test_every_input_of_a_marked_region_is_answered_with_one_class():
    rows = _natural(3000, seed=1)
    logits = random_logits(3000)
    regions = _regions(rows, fraction=0.2)

    answers = defend(logits, rows, DefenseConfig(watermark_fraction=0.2))

    by_region: dict[bytes, set[str]] = {}
    for code, marked, answer in zip(regions.codes, regions.marked, answers, strict=True):
        if marked:
            by_region.setdefault(code.tobytes(), set()).add(answer.label)
    assert sum(len(labels) == 1 for labels in by_region.values()) == len(by_region) > 5


def test_watermark_answers_carry_the_models_confidence_in_its_own_label():
    rows, logits = _natural(3000, seed=2), random_logits(3000)
    marked = defend(logits, rows, DefenseConfig(confidence_decimals=None, watermark_fraction=0.1, top_k=2))
    clean = defend(logits, rows, DefenseConfig(confidence_decimals=None, watermark_fraction=0.0, top_k=2))

    pairs = [(m, c) for m, c in zip(marked, clean, strict=True) if m.watermarked]
    assert pairs
    for watermarked, plain in pairs:
        # The same values in another order: equal up to the order of the softmax's summation.
        assert watermarked.confidence == pytest.approx(plain.confidence, rel=1e-12)
        assert watermarked.top_k[0] == (watermarked.label, watermarked.confidence)


def test_the_default_fraction_marks_one_and_a_half_percent_of_regions_and_about_as_many_natural_answers():
    n = 40_000
    rows = _natural(n, seed=11)
    config = DefenseConfig()
    regions = _regions(rows, fraction=config.watermark_fraction)
    _, first = np.unique(regions.codes, axis=0, return_index=True)

    answers = defend(random_logits(n), rows, config)

    assert config.watermark_fraction == 0.015
    count, sd = int(regions.marked[first].sum()), math.sqrt(first.size * 0.015 * 0.985)
    assert abs(count - 0.015 * first.size) < 4 * sd
    # Answers: 1.5% on average, but by region, so one key's share swings more than a per-input lottery's would.
    assert 0 < sum(a.watermarked for a in answers) < 0.05 * n


def test_watermark_choice_depends_on_the_watermark_secret_not_the_noise_secret():
    rows, logits = _natural(4000, seed=3), random_logits(4000)
    config = DefenseConfig(watermark_fraction=0.05)

    base = [a.watermarked for a in defend(logits, rows, config)]
    new_noise = [a.watermarked for a in defend(logits, rows, config, noise_secret=b"other")]
    new_watermark = [a.watermarked for a in defend(logits, rows, config, watermark_secret=b"other")]

    assert any(base)
    assert base == new_noise
    assert base != new_watermark


def test_watermarking_tied_logits_still_serves_the_regions_class():
    rows = random_inputs(3000)

    answers = defend(np.zeros((3000, 10)), rows, DefenseConfig(watermark_fraction=0.3))

    marked = [a for a in answers if a.watermarked]
    assert marked
    assert all(a.clean_label == "0" and a.label != "0" for a in marked)
