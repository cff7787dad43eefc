"""serving.watermark: which inputs carry the watermark, which label they get, and the proof that a copy learned it."""

import math
from fractions import Fraction

import numpy as np
import pytest

from serving.defenses import DefenseConfig, apply_defenses
from serving.watermark import (
    binomial_upper_tail,
    is_watermark_input,
    verify_watermark,
    watermark_batch,
    watermark_label_index,
    watermark_probe_inputs,
)

SECRET = b"watermark-secret-for-tests"
LABELS = [str(i) for i in range(10)]


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 17, size=(n, 64), dtype=np.uint8)


def _exact_tail(k: int, n: int, p: Fraction) -> Fraction:
    return sum((math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1)), Fraction(0))


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


class MemorisingThief:
    """An extracted copy: it remembers every answer it bought, exactly, and answers anything else with the label of
    the nearest input it bought (1-nearest-neighbour) — the most faithful copy an attacker can make."""

    def __init__(self, rows: np.ndarray, labels: np.ndarray) -> None:
        self.rows = rows.astype(np.float64)
        self.labels = labels
        self.memory = {row.tobytes(): int(label) for row, label in zip(rows, labels, strict=True)}

    def predict(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty(rows.shape[0], dtype=np.int64)
        for i, row in enumerate(rows):
            remembered = self.memory.get(row.tobytes())
            if remembered is None:
                nearest = int(((self.rows - row.astype(np.float64)) ** 2).sum(axis=1).argmin())
                remembered = int(self.labels[nearest])
            out[i] = remembered
        return out


# --- choosing watermark inputs and labels ------------------------------------------------------------------------


def test_watermark_choice_is_deterministic_and_the_same_for_a_row_and_its_bytes():
    rows = _inputs(500)
    chosen = [is_watermark_input(r, watermark_secret=SECRET, fraction=0.1) for r in rows]

    assert chosen == [is_watermark_input(r.tobytes(), watermark_secret=SECRET, fraction=0.1) for r in rows]
    assert chosen == [is_watermark_input(r, watermark_secret=SECRET, fraction=0.1) for r in rows]
    assert 20 < sum(chosen) < 80


def test_a_smaller_fraction_chooses_a_subset_of_a_larger_ones_inputs():
    rows = _inputs(5000)
    small = {i for i, r in enumerate(rows) if is_watermark_input(r, watermark_secret=SECRET, fraction=0.01)}
    large = {i for i, r in enumerate(rows) if is_watermark_input(r, watermark_secret=SECRET, fraction=0.05)}

    assert small
    assert small < large


def test_a_zero_fraction_chooses_nothing():
    assert not any(is_watermark_input(r, watermark_secret=SECRET, fraction=0.0) for r in _inputs(1000))


def test_the_watermark_fraction_holds_over_40000_inputs():
    n, fraction = 40_000, 0.005
    chosen, _ = watermark_batch(_inputs(n, seed=5), np.zeros(n), 10, watermark_secret=SECRET, fraction=fraction)

    assert abs(int(chosen.sum()) - n * fraction) < 4 * math.sqrt(n * fraction * (1 - fraction))


def test_the_watermark_label_is_never_the_clean_label_and_uniform_over_the_others():
    rows = _inputs(18_000)
    counts = np.zeros(10, dtype=int)
    for row in rows:
        label = watermark_label_index(row, 4, 10, watermark_secret=SECRET)
        counts[label] += 1

    assert counts[4] == 0
    expected = 18_000 / 9
    assert all(abs(c - expected) < 5 * math.sqrt(expected) for c in np.delete(counts, 4))


def test_the_watermark_label_mostly_ignores_which_model_gave_the_clean_label():
    # Served labels come from the defended model, verified ones from the full model: they must agree when the two
    # models disagree on the clean label, except when the keyed class is one of those two labels.
    rows = _inputs(3000)
    same = [
        watermark_label_index(r, 1, 10, watermark_secret=SECRET)
        == watermark_label_index(r, 2, 10, watermark_secret=SECRET)
        for r in rows
    ]

    assert 0.75 < np.mean(same) < 0.85  # 1 - P(keyed class in {1, 2}) = 0.8


def test_the_watermark_label_depends_on_the_secret():
    rows = _inputs(500)
    ours = [watermark_label_index(r, 0, 10, watermark_secret=SECRET) for r in rows]
    theirs = [watermark_label_index(r, 0, 10, watermark_secret=b"guess") for r in rows]

    assert np.mean(np.array(ours) == np.array(theirs)) < 0.25


def test_the_batch_form_agrees_with_the_row_functions():
    rows = _inputs(2000)
    clean = np.random.default_rng(1).integers(0, 10, size=2000)

    chosen, labels = watermark_batch(rows, clean, 10, watermark_secret=SECRET, fraction=0.1)

    assert chosen.tolist() == [is_watermark_input(r, watermark_secret=SECRET, fraction=0.1) for r in rows]
    assert labels.tolist() == [
        watermark_label_index(r, int(c), 10, watermark_secret=SECRET) for r, c in zip(rows, clean, strict=True)
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: is_watermark_input(np.zeros(64), watermark_secret=SECRET, fraction=0.1), "uint8"),
        (lambda: is_watermark_input(b"short", watermark_secret=SECRET, fraction=0.1), "64 bytes"),
        (lambda: is_watermark_input(_inputs(2), watermark_secret=SECRET, fraction=0.1), "one canonical row"),
        (lambda: is_watermark_input(_inputs(1), watermark_secret=SECRET, fraction=1.0), r"\[0, 1\)"),
        (lambda: is_watermark_input(np.full(64, 17, np.uint8), watermark_secret=SECRET, fraction=0.1), "0..16"),
        (lambda: watermark_label_index(_inputs(1), 10, 10, watermark_secret=SECRET), "not a class index"),
        (lambda: watermark_label_index(_inputs(1), 0, 1, watermark_secret=SECRET), "at least two classes"),
    ],
)
def test_invalid_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- the exact binomial tail -------------------------------------------------------------------------------------


def test_binomial_tail_of_a_small_known_case():
    assert binomial_upper_tail(4, 5, 0.5) == pytest.approx(6 / 32, rel=1e-12)  # (C(5,4) + C(5,5)) / 2^5
    assert binomial_upper_tail(1, 1, 0.25) == pytest.approx(0.25, rel=1e-12)
    assert binomial_upper_tail(3, 3, 1 / 9) == pytest.approx(1 / 729, rel=1e-12)


@pytest.mark.parametrize(("k", "n"), [(1, 10), (3, 10), (5, 30), (12, 40), (25, 60), (60, 60)])
def test_binomial_tail_matches_exact_rational_arithmetic(k, n):
    exact = _exact_tail(k, n, Fraction(1, 9))

    assert binomial_upper_tail(k, n, 1 / 9) == pytest.approx(float(exact), rel=1e-10)


def test_binomial_tail_edges():
    assert binomial_upper_tail(0, 10, 0.3) == 1.0
    assert binomial_upper_tail(0, 0, 0.3) == 1.0
    assert binomial_upper_tail(11, 10, 0.3) == 0.0
    assert binomial_upper_tail(1, 10, 0.0) == 0.0
    assert binomial_upper_tail(10, 10, 1.0) == 1.0
    with pytest.raises(ValueError):
        binomial_upper_tail(1, 10, 1.5)
    with pytest.raises(ValueError):
        binomial_upper_tail(-1, 10, 0.5)


def test_binomial_tail_neither_overflows_nor_underflows_to_nonsense_for_large_counts():
    tail = binomial_upper_tail(600, 5000, 1 / 9)  # mean 555.6, sd 22.2: about two sd above
    assert 0.01 < tail < 0.05
    assert binomial_upper_tail(5000, 5000, 1 / 9) == 0.0  # 9**-5000 underflows to a clean zero, not NaN
    assert 0.0 < binomial_upper_tail(300, 500, 1 / 9) < 1e-100


# --- verification -------------------------------------------------------------------------------------------------


def test_verification_of_a_small_known_case_gives_the_exact_p_value():
    model = LinearModel(seed=1)
    probes = watermark_probe_inputs(5, watermark_secret=SECRET, fraction=0.005, seed=2)
    clean = model.labels(probes)
    _, watermark_labels = watermark_batch(probes, clean, 10, watermark_secret=SECRET, fraction=0.005)
    suspect = watermark_labels.copy()
    suspect[0] = clean[0]  # four of the five answers carry our watermark label

    result = verify_watermark(
        probes, suspect, clean_label_fn=model.labels, n_classes=10, watermark_secret=SECRET, fraction=0.005
    )

    assert (result.inputs, result.watermark_inputs, result.matches) == (5, 5, 4)
    assert result.chance_rate == 1 / 9
    assert result.p_value == pytest.approx(41 / 9**5, rel=1e-12)  # C(5,4) (1/9)^4 (8/9) + (1/9)^5
    assert result.verdict is True
    assert (result.control_inputs, result.control_matches, result.control_rate) == (0, 0, None)


def test_the_key_property_a_thief_trained_on_watermarked_answers_is_flagged_an_independent_model_is_not():
    ours = LinearModel(seed=1)
    # The thief buys answers for 6,000 inputs from a public tier (noise, coarse confidences, 0.5% watermarks).
    queries = _inputs(6000, seed=42)
    answers = apply_defenses(
        ours.logits(queries),
        queries,
        config=DefenseConfig(logit_noise_scale=0.5, watermark_fraction=0.005),
        class_labels=LABELS,
        noise_secret=b"noise",
        watermark_secret=SECRET,
    )
    bought = np.array([LABELS.index(a.label) for a in answers])
    served_watermarks = sum(a.watermarked for a in answers)
    assert served_watermarks >= 15
    thief = MemorisingThief(queries, bought)
    # An independent model: a second copy of our own model (it reproduces our clean labels and nothing else) ...
    independent = ours.labels
    # ... and a weaker, different model that makes plenty of mistakes of its own.
    rival = LinearModel(seed=99).labels

    def verify(labels: np.ndarray):
        return verify_watermark(
            queries, labels, clean_label_fn=ours.labels, n_classes=10, watermark_secret=SECRET, fraction=0.005
        )

    stolen, clean_copy, other = verify(thief.predict(queries)), verify(independent(queries)), verify(rival(queries))

    assert stolen.watermark_inputs == served_watermarks
    assert stolen.matches == served_watermarks
    assert stolen.p_value < 1e-10
    assert stolen.verdict is True
    assert clean_copy.matches == 0
    assert clean_copy.p_value == 1.0
    assert clean_copy.verdict is False
    assert other.p_value >= 0.01
    assert other.verdict is False
    assert other.control_rate < other.chance_rate


def test_probes_drawn_from_the_thiefs_data_set_reveal_the_watermark():
    ours = LinearModel(seed=3)
    public = _inputs(8000, seed=8)  # the data set a thief starts from, which we also hold
    answers = apply_defenses(
        ours.logits(public),
        public,
        config=DefenseConfig(),
        class_labels=LABELS,
        noise_secret=b"noise",
        watermark_secret=SECRET,
    )
    thief = MemorisingThief(public, np.array([LABELS.index(a.label) for a in answers]))

    probes = watermark_probe_inputs(20, watermark_secret=SECRET, fraction=0.005, seed=0, base_inputs=public)
    result = verify_watermark(
        probes, thief.predict(probes), clean_label_fn=ours.labels, n_classes=10, watermark_secret=SECRET, fraction=0.005
    )

    assert result.watermark_inputs == 20
    assert result.matches == 20
    assert result.verdict is True


def test_a_suspect_that_always_answers_a_wrong_label_is_flagged_at_most_alpha_of_the_time():
    # The hardest honest suspect for the test: it never answers the clean label, so every watermark input is a
    # 1-in-9 match. Across independent secrets the verdict must still be wrong at most about 1% of the time.
    model = LinearModel(seed=5)
    rows = _inputs(1000, seed=6)
    clean = model.labels(rows)
    wrong = (clean + 1 + np.random.default_rng(7).integers(0, 9, size=clean.shape)) % 10
    flagged = sum(
        verify_watermark(
            rows, wrong, clean_label_fn=model.labels, n_classes=10, watermark_secret=b"secret-%d" % i, fraction=0.05
        ).verdict
        for i in range(300)
    )

    assert flagged <= 9  # expected <= 3 (alpha = 1% of 300); 9 is far in the tail


def test_duplicate_inputs_count_once():
    model = LinearModel(seed=1)
    probes = watermark_probe_inputs(3, watermark_secret=SECRET, fraction=0.005, seed=4)
    _, watermark_labels = watermark_batch(probes, model.labels(probes), 10, watermark_secret=SECRET, fraction=0.005)

    repeated = np.repeat(probes, 50, axis=0)
    result = verify_watermark(
        repeated,
        np.repeat(watermark_labels, 50),
        clean_label_fn=model.labels,
        n_classes=10,
        watermark_secret=SECRET,
        fraction=0.005,
    )

    assert (result.inputs, result.watermark_inputs, result.matches) == (3, 3, 3)
    assert result.p_value == pytest.approx(1 / 729, rel=1e-12)


def test_answers_outside_our_classes_never_match_and_no_watermark_input_means_no_verdict():
    model = LinearModel(seed=1)
    rows = _inputs(50)
    non_watermark = rows[[not is_watermark_input(r, watermark_secret=SECRET, fraction=0.005) for r in rows]]

    result = verify_watermark(
        non_watermark,
        np.full(non_watermark.shape[0], -1),
        clean_label_fn=model.labels,
        n_classes=10,
        watermark_secret=SECRET,
        fraction=0.005,
    )

    assert result.watermark_inputs == 0
    assert result.p_value == 1.0
    assert result.verdict is False
    assert result.control_matches == 0
    assert result.to_dict()["inputs"] == non_watermark.shape[0]


def test_verification_refuses_mismatched_arguments():
    model = LinearModel(seed=1)
    with pytest.raises(ValueError, match="3 inputs but 2 suspect labels"):
        verify_watermark(_inputs(3), [0, 1], clean_label_fn=model.labels, n_classes=10, watermark_secret=SECRET)
    with pytest.raises(ValueError, match="one class index per input"):
        verify_watermark(_inputs(3), [0, 1, 2], clean_label_fn=lambda rows: [0], n_classes=10, watermark_secret=SECRET)


# --- probes -------------------------------------------------------------------------------------------------------


def test_probes_are_distinct_canonical_watermark_inputs_and_reproducible():
    probes = watermark_probe_inputs(30, watermark_secret=SECRET, fraction=0.005, seed=1)

    assert probes.dtype == np.uint8
    assert probes.shape == (30, 64)
    assert int(probes.max()) <= 16
    assert len({p.tobytes() for p in probes}) == 30
    assert all(is_watermark_input(p, watermark_secret=SECRET, fraction=0.005) for p in probes)
    assert np.array_equal(probes, watermark_probe_inputs(30, watermark_secret=SECRET, fraction=0.005, seed=1))
    assert not np.array_equal(probes, watermark_probe_inputs(30, watermark_secret=SECRET, fraction=0.005, seed=2))


def test_probes_look_like_digits_not_noise():
    probes = watermark_probe_inputs(50, watermark_secret=SECRET, fraction=0.005, seed=1)

    # Mostly dark background with bright strokes, like the 8x8 digits (about half the pixels are 0 there).
    assert 0.3 < np.mean(probes == 0) < 0.8
    assert np.mean(probes >= 12) > 0.1


def test_probes_from_base_inputs_start_with_the_base_rows_that_are_watermark_inputs():
    base = _inputs(4000, seed=3)
    marked = [r for r in base if is_watermark_input(r, watermark_secret=SECRET, fraction=0.005)]
    assert 5 < len(marked) < 40

    probes = watermark_probe_inputs(len(marked) + 5, watermark_secret=SECRET, fraction=0.005, seed=0, base_inputs=base)

    assert [p.tobytes() for p in probes[: len(marked)]] == [r.tobytes() for r in marked]
    assert all(is_watermark_input(p, watermark_secret=SECRET, fraction=0.005) for p in probes)


def test_probes_give_up_with_an_error_when_the_budget_runs_out():
    with pytest.raises(RuntimeError, match="watermark probes"):
        watermark_probe_inputs(10, watermark_secret=SECRET, fraction=0.001, seed=0, max_candidates=100)
    with pytest.raises(ValueError, match="fraction"):
        watermark_probe_inputs(1, watermark_secret=SECRET, fraction=0.0, seed=0)
