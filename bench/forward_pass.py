"""What each demo variant's forward pass costs on the prediction path: median time of `forward_logits` for one input
and for a batch of 100, for the full model and the defended one (as `train_demo_models` trains them), on one BLAS
thread as a web worker runs it. The end-to-end API figures (`make bench`) include this plus everything else.

    .venv/bin/python bench/forward_pass.py      # writes bench/results/forward-pass.json

No database, no server: the models are trained in-process (about 4 s) and timed on the held-out digits.
"""

import json
import timeit
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from serving.ml.demo import train_demo_models
from serving.ml.digits import load_digits_split
from serving.ml.mlp import MLPWeights, forward_logits

RESULTS = Path(__file__).parent / "results"
CALLS = 2_000
REPEATS = 7


def median_microseconds(model: MLPWeights, rows: np.ndarray) -> float:
    """Median over REPEATS runs of the mean time of CALLS forward passes, in microseconds."""
    runs = timeit.repeat(lambda: forward_logits(model, rows), number=CALLS, repeat=REPEATS)
    return float(np.median(runs)) / CALLS * 1e6


def main() -> None:
    models = train_demo_models()
    heldout = load_digits_split(seed=0).X_test
    results = {}
    with threadpool_limits(limits=1, user_api="blas"):
        for variant in (models.full, models.defended):
            results[variant.variant] = {
                "hidden": list(variant.weights.hidden),
                "input_levels": variant.weights.input_levels,
                "batch_1_us": round(median_microseconds(variant.weights, heldout[:1]), 1),
                "batch_100_us": round(median_microseconds(variant.weights, heldout[:100]), 1),
            }
    print(f"{'variant':10s} {'hidden':12s} {'1 input':>10s} {'100 inputs':>12s}")
    for name, row in results.items():
        print(f"{name:10s} {row['hidden']!s:12s} {row['batch_1_us']:8.1f} us {row['batch_100_us']:10.1f} us")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "forward-pass.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
