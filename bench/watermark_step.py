"""What the region watermark costs.

- On the prediction path: the median time of `RegionWatermark.decide` (the cells, one keyed hash per row and the
  decision) for one input and for a batch of 100, for the digits and the breast-cancer demo models.
- To honest users, over SECRETS random secrets: the share of the model's reference inputs in marked regions (bounded
  by the tier's fraction by construction: the figure is its distribution under that bound), and the share of inputs
  the calibration never saw (the held-out digits, natural variants of every digit, the breast-cancer held-out
  rows) answered with a watermark class; and the share of regions still marked (the bound's price, in proof).

    .venv/bin/python bench/watermark_step.py      # writes bench/results/watermark-step.json

No database, no server: the regions are fitted on the demos' reference data (their training rows), as the server
fits them, with the class labels the data carry.
"""

import json
import timeit
from pathlib import Path

import numpy as np

from serving.input_schema import InputSchema
from serving.ml import breast_cancer, digits
from serving.ml.digits import augment_digits, load_digits_split
from serving.watermark import DEFAULT_WATERMARK_FRACTION, RegionWatermark

RESULTS = Path(__file__).parent / "results"
CALLS = 2_000
REPEATS = 7
SECRET = b"bench-watermark-secret"
SECRETS = 100
VARIANTS = 20_000
FRACTION = DEFAULT_WATERMARK_FRACTION


def _quantiles(values: list[float]) -> dict[str, float]:
    shares = np.asarray(values)
    return {
        "mean": round(float(shares.mean()), 5),
        "median": round(float(np.median(shares)), 5),
        "p90": round(float(np.quantile(shares, 0.9)), 5),
        "max": round(float(shares.max()), 5),
    }


def honest_cost(
    schema: InputSchema, reference: np.ndarray, unseen: dict[str, tuple[np.ndarray, np.ndarray]], n_classes: int
) -> dict[str, dict[str, float]]:
    """Over SECRETS secrets: the reference share, the marked share of regions, and the share of each `unseen` set of
    (canonical rows, own labels) answered with a watermark class."""
    found: dict[str, list[float]] = {"reference_inputs_in_marked_regions": [], "regions_marked": []}
    for name in unseen:
        found[f"{name}_answered_with_a_watermark"] = []
    for i in range(SECRETS):
        watermark = RegionWatermark.fit(schema, reference, secret=b"s-%d" % i, n_classes=n_classes)
        calibration = watermark.calibration(FRACTION)
        found["reference_inputs_in_marked_regions"].append(calibration.reference_share)
        found["regions_marked"].append(calibration.threshold)
        for name, (rows, labels) in unseen.items():
            changed, _ = watermark.decide(rows, labels, n_classes, fraction=FRACTION)
            found[f"{name}_answered_with_a_watermark"].append(float(changed.mean()))
    return {name: _quantiles(values) for name, values in found.items()}


def median_microseconds(step, rows: np.ndarray) -> float:
    """Median over REPEATS runs of the mean time of CALLS calls of `step(rows)`, in microseconds."""
    runs = timeit.repeat(lambda: step(rows), number=CALLS, repeat=REPEATS)
    return float(np.median(runs)) / CALLS * 1e6


def main() -> None:
    split = load_digits_split(seed=0)
    digits_schema = InputSchema.from_dict(digits.INPUT_SCHEMA)
    digits_reference = split.X_train.astype(np.uint8)
    cancer = breast_cancer.load_split()
    cancer_schema = InputSchema.from_dict(breast_cancer.input_schema())
    cancer_reference = cancer_schema.codes(cancer.X_train)
    models = {
        "digits": (digits_schema, digits_reference, split.X_test.astype(np.uint8), split.y_test, 10),
        "breast-cancer": (cancer_schema, cancer_reference, cancer_schema.codes(cancer.X_test), cancer.y_test, 2),
    }
    results: dict[str, dict] = {"fraction": FRACTION, "secrets": SECRETS, "prediction_path": {}, "honest_cost": {}}
    for name, (schema, reference, rows, labels, n_classes) in models.items():
        watermark = RegionWatermark.fit(schema, reference, secret=SECRET, n_classes=n_classes)

        def decide(batch: np.ndarray, w=watermark, y=labels, k=n_classes) -> None:
            w.decide(batch, y[: batch.shape[0]], k, fraction=FRACTION)

        results["prediction_path"][name] = {
            "batch_1_us": round(median_microseconds(decide, rows[:1]), 1),
            "batch_100_us": round(median_microseconds(decide, rows[:100]), 1),
        }
    rng = np.random.default_rng(0)
    everything = np.concatenate([split.X_train, split.X_public, split.X_test])
    targets = np.concatenate([split.y_train, split.y_public, split.y_test])
    picked = rng.integers(0, everything.shape[0], VARIANTS)
    results["honest_cost"]["digits"] = honest_cost(
        digits_schema,
        digits_reference,
        {
            "heldout_digits": (split.X_test.astype(np.uint8), split.y_test),
            "natural_variants": (augment_digits(everything[picked], rng), targets[picked]),
        },
        10,
    )
    results["honest_cost"]["breast-cancer"] = honest_cost(
        cancer_schema, cancer_reference, {"heldout_rows": (cancer_schema.codes(cancer.X_test), cancer.y_test)}, 2
    )
    print(f"{'decide':14s} {'1 input':>10s} {'100 inputs':>12s}")
    for name, row in results["prediction_path"].items():
        print(f"{name:14s} {row['batch_1_us']:8.1f} us {row['batch_100_us']:10.1f} us")
    for model, costs in results["honest_cost"].items():
        for name, cost in costs.items():
            print(f"{model} {name} over {SECRETS} secrets: " + ", ".join(f"{k} {v:.2%}" for k, v in cost.items()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "watermark-step.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
