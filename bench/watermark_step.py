"""What the region watermark costs: on the prediction path, the median time of `serving.watermark.watermark_batch`
(the region codes, one HMAC per row and the decision) for one input and for a batch of 100, next to one HMAC per
64-byte row alone, which is what the per-input watermark it replaced cost; and to honest users, the share of
natural digits answered with a watermark class, over SECRETS random secrets (regions hold different numbers of
digits, so the share depends on the secret).

    .venv/bin/python bench/watermark_step.py      # writes bench/results/watermark-step.json

No database, no server: timed on the held-out digits, with the class labels a model would give them.
"""

import json
import timeit
from pathlib import Path

import numpy as np

from serving.ml.digits import augment_digits, load_digits_split
from serving.watermark import DEFAULT_WATERMARK_FRACTION, WATERMARK_DOMAIN, keyed_row_digests, watermark_batch

RESULTS = Path(__file__).parent / "results"
CALLS = 2_000
REPEATS = 7
SECRET = b"bench-watermark-secret"
SECRETS = 200
VARIANTS = 20_000


def honest_cost(rows: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The share of `rows` answered with a watermark class (their own label being `labels`), over SECRETS secrets."""
    fraction = DEFAULT_WATERMARK_FRACTION
    shares = np.array(
        [
            watermark_batch(rows, labels, 10, watermark_secret=b"s-%d" % i, fraction=fraction)[0].mean()
            for i in range(SECRETS)
        ]
    )
    return {
        "mean": round(float(shares.mean()), 5),
        "median": round(float(np.median(shares)), 5),
        "p90": round(float(np.quantile(shares, 0.9)), 5),
        "max": round(float(shares.max()), 5),
    }


def median_microseconds(step, rows: np.ndarray) -> float:
    """Median over REPEATS runs of the mean time of CALLS calls of `step(rows)`, in microseconds."""
    runs = timeit.repeat(lambda: step(rows), number=CALLS, repeat=REPEATS)
    return float(np.median(runs)) / CALLS * 1e6


def main() -> None:
    split = load_digits_split(seed=0)
    rows, labels = split.X_test.astype(np.uint8), split.y_test

    def regions(batch: np.ndarray) -> None:
        watermark_batch(
            batch, labels[: batch.shape[0]], 10, watermark_secret=SECRET, fraction=DEFAULT_WATERMARK_FRACTION
        )

    def per_input_hmac(batch: np.ndarray) -> None:
        keyed_row_digests(batch, secret=SECRET, domain=WATERMARK_DOMAIN)

    results = {
        name: {
            "batch_1_us": round(median_microseconds(step, rows[:1]), 1),
            "batch_100_us": round(median_microseconds(step, rows[:100]), 1),
        }
        for name, step in (("region_watermark", regions), ("per_input_hmac", per_input_hmac))
    }
    rng = np.random.default_rng(0)
    everything = np.concatenate([split.X_train, split.X_public, split.X_test])
    targets = np.concatenate([split.y_train, split.y_public, split.y_test])
    picked = rng.integers(0, everything.shape[0], VARIANTS)
    results["honest_cost"] = {
        "heldout_digits": honest_cost(rows, labels),
        "natural_variants": honest_cost(augment_digits(everything[picked], rng), targets[picked]),
    }
    print(f"{'step':18s} {'1 input':>10s} {'100 inputs':>12s}")
    for name in ("region_watermark", "per_input_hmac"):
        row = results[name]
        print(f"{name:18s} {row['batch_1_us']:8.1f} us {row['batch_100_us']:10.1f} us")
    for name, cost in results["honest_cost"].items():
        print(
            f"watermarked share of {name} over {SECRETS} secrets: " + ", ".join(f"{k} {v:.2%}" for k, v in cost.items())
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "watermark-step.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
