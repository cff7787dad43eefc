"""The watermark defense: which answers carry the mark, and that honest answers are untouched."""

import math

import numpy as np
import pytest

from serving.defenses import (
    DefenseConfig,
)
from serving.watermark import is_watermark_input, watermark_label_index
from tests.serving.defense_helpers import LABELS, WATERMARK_SECRET, defend, random_inputs, random_logits

# --- watermarking -------------------------------------------------------------------------------------------------


def test_watermark_answers_are_the_keyed_alternative_label_never_the_clean_one():
    n = 4000
    rows, logits = random_inputs(n), random_logits(n)
    config = DefenseConfig(confidence_decimals=None, watermark_fraction=0.2)

    answers = defend(logits, rows, config)

    marked = [i for i, a in enumerate(answers) if a.watermarked]
    assert 0.17 * n < len(marked) < 0.23 * n
    for i, answer in enumerate(answers):
        clean = int(logits[i].argmax())
        assert answer.clean_label == LABELS[clean]
        expected = is_watermark_input(rows[i], watermark_secret=WATERMARK_SECRET, fraction=0.2)
        assert answer.watermarked is expected
        if expected:
            assert answer.label != answer.clean_label
            assert answer.label == LABELS[watermark_label_index(rows[i], clean, 10, watermark_secret=WATERMARK_SECRET)]
        else:
            assert answer.label == answer.clean_label


def test_watermark_answers_carry_the_models_confidence_in_its_own_label():
    rows, logits = random_inputs(3000), random_logits(3000)
    marked = defend(logits, rows, DefenseConfig(confidence_decimals=None, watermark_fraction=0.1, top_k=2))
    clean = defend(logits, rows, DefenseConfig(confidence_decimals=None, watermark_fraction=0.0, top_k=2))

    pairs = [(m, c) for m, c in zip(marked, clean, strict=True) if m.watermarked]
    assert pairs
    for watermarked, plain in pairs:
        # The same values in another order: equal up to the order of the softmax's summation.
        assert watermarked.confidence == pytest.approx(plain.confidence, rel=1e-12)
        assert watermarked.top_k[0] == (watermarked.label, watermarked.confidence)


def test_watermark_fraction_is_half_a_percent_within_binomial_tolerance():
    n, fraction = 40_000, 0.005
    rows = random_inputs(n, seed=11)

    answers = defend(np.zeros((n, 10)), rows, DefenseConfig(watermark_fraction=fraction))

    count = sum(a.watermarked for a in answers)
    sd = math.sqrt(n * fraction * (1 - fraction))  # 14.1 around 200
    assert abs(count - n * fraction) < 4 * sd


def test_watermark_choice_depends_on_the_watermark_secret_not_the_noise_secret():
    rows, logits = random_inputs(4000), random_logits(4000)
    config = DefenseConfig(watermark_fraction=0.05)

    base = [a.watermarked for a in defend(logits, rows, config)]
    new_noise = [a.watermarked for a in defend(logits, rows, config, noise_secret=b"other")]
    new_watermark = [a.watermarked for a in defend(logits, rows, config, watermark_secret=b"other")]

    assert base == new_noise
    assert base != new_watermark


def test_watermarking_tied_logits_still_serves_the_alternative_label():
    rows = random_inputs(3000)

    answers = defend(np.zeros((3000, 10)), rows, DefenseConfig(watermark_fraction=0.05))

    marked = [a for a in answers if a.watermarked]
    assert marked
    assert all(a.clean_label == "0" and a.label != "0" for a in marked)
