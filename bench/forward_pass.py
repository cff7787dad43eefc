"""What inference costs on the prediction path: the median time of one `OnnxClassifier.logits` call (the served
runtime, one intra-op thread as a web worker runs it) for one input and for a batch of 100, for each demo model and
variant; beside it, for the digits MLPs, the numpy forward pass the platform served before ONNX (is a second code
path worth keeping?), and what onnxruntime adds per call (a graph that only copies its input).

    .venv/bin/python bench/forward_pass.py      # writes bench/results/forward-pass.json

No database, no server: the models are trained in-process (about 10 s) and timed on held-out inputs.
"""

import json
import os
import timeit
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import numpy as np
from onnx import TensorProto, helper
from threadpoolctl import threadpool_limits

from serving.inference import FLAT, LOGITS, GraphBinding, OnnxClassifier
from serving.input_schema import InputSchema
from serving.ml import breast_cancer, digits
from serving.ml.digits_models import train_demo_models
from serving.ml.distill import distill
from serving.ml.mlp import forward_logits
from serving.ml.onnx_export import binding_for, mlp_to_onnx
from serving.registry.graphs import check_answers, inspect_graph

RESULTS = Path(__file__).parent / "results"
CALLS = 2_000
REPEATS = 7


def median_microseconds(call: Callable[[], object]) -> float:
    """Median over REPEATS runs of the mean time of CALLS calls, in microseconds."""
    runs = timeit.repeat(call, number=CALLS, repeat=REPEATS)
    return float(np.median(runs)) / CALLS * 1e6


def _copy_graph(width: int) -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "copy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def main() -> None:
    demo = train_demo_models()
    digits_schema = InputSchema.from_dict(digits.INPUT_SCHEMA)
    digits_rows = digits_schema.values(digits_schema.codes(digits.load_digits_split(seed=0).X_test))
    cancer = breast_cancer.load_split()
    cancer_schema = InputSchema.from_dict(breast_cancer.input_schema())
    cancer_rows = cancer_schema.values(cancer_schema.codes(cancer.X_test))

    served: dict[str, tuple[OnnxClassifier, np.ndarray]] = {}
    for variant in (demo.full, demo.defended):
        classifier = OnnxClassifier.from_bytes(
            mlp_to_onnx(variant.weights), binding_for(variant.weights), digits_schema
        )
        served[f"digits {variant.variant}"] = (classifier, digits_rows)
    full_graph = breast_cancer.train_full_model_onnx(cancer)
    inspected = inspect_graph(full_graph, cancer_schema)
    reference = cancer_schema.values(cancer_schema.codes(cancer.X_train))
    full = OnnxClassifier(
        inspected.session, check_answers(inspected, cancer_schema, reference, n_classes=2), cancer_schema
    )
    student = distill(full.logits, cancer_schema.codes(cancer.X_train), cancer_schema, n_classes=2).weights
    served["breast-cancer full"] = (full, cancer_rows)
    served["breast-cancer defended"] = (
        OnnxClassifier.from_bytes(mlp_to_onnx(student), binding_for(student), cancer_schema),
        cancer_rows,
    )

    results: dict[str, dict] = {}
    with threadpool_limits(limits=1, user_api="blas"):
        for name, (classifier, rows) in served.items():
            results[name] = {
                "onnxruntime_batch_1_us": round(median_microseconds(lambda c=classifier, r=rows: c.logits(r[:1])), 1),
                "onnxruntime_batch_100_us": round(
                    median_microseconds(lambda c=classifier, r=rows: c.logits(r[:100])), 1
                ),
            }
        for variant in (demo.full, demo.defended):
            row = results[f"digits {variant.variant}"]
            row["numpy_batch_1_us"] = round(
                median_microseconds(lambda w=variant.weights: forward_logits(w, digits_rows[:1])), 1
            )
            row["numpy_batch_100_us"] = round(
                median_microseconds(lambda w=variant.weights: forward_logits(w, digits_rows[:100])), 1
            )
        copy = OnnxClassifier.from_bytes(
            _copy_graph(64),
            GraphBinding(input_name="x", input_layout=FLAT, output_name="y", output_kind=LOGITS),
            digits_schema,
        )
        overhead = round(
            median_microseconds(lambda: copy.session.run(["y"], {"x": digits_rows[:1].astype(np.float32)})), 1
        )
    print(f"{'model':24s} {'ORT 1':>9s} {'ORT 100':>9s} {'numpy 1':>9s} {'numpy 100':>10s}   (microseconds)")
    for name, row in results.items():
        print(
            f"{name:24s} {row['onnxruntime_batch_1_us']:9.1f} {row['onnxruntime_batch_100_us']:9.1f} "
            f"{row.get('numpy_batch_1_us', float('nan')):9.1f} {row.get('numpy_batch_100_us', float('nan')):10.1f}"
        )
    print(f"onnxruntime's own cost per call (a graph that copies its input, 1 row): {overhead:.1f} us")
    RESULTS.mkdir(exist_ok=True)
    payload = {"models": results, "onnxruntime_call_overhead_us": overhead}
    (RESULTS / "forward-pass.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
