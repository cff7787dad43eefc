"""A model an operator brings, as the tests register it: a gradient-boosted ensemble on the 13 measurements of
scikit-learn's wine data (a schema neither demo has), exported with skl2onnx and registered with `register_model`
(full variant only: the public tiers are then served it through their output defenses)."""

import json
import math
from io import StringIO
from pathlib import Path

import numpy as np
from django.core.management import call_command

from serving.ml.artifacts import array_bytes

WINE_SLUG = "wine-cultivar"


def register_wine_cultivar(folder: Path, *, heldout: bool = False) -> dict:
    """Register and activate the model; with `heldout`, also its labelled held-out rows (what the red team
    measures copies against). Returns the natural rows it was not trained on and each feature's upper bound."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_wine
    from sklearn.ensemble import GradientBoostingClassifier

    data = load_wine()
    X, y = data.data, data.target
    order = np.random.default_rng(3).permutation(y.size)
    train, natural = order[:110], order[110:]
    ensemble = GradientBoostingClassifier(n_estimators=40, max_depth=2, random_state=0).fit(X[train], y[train])
    graph = to_onnx(
        ensemble,
        initial_types=[("measurements", FloatTensorType([None, 13]))],
        options={id(ensemble): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    schema = {
        "kind": "tabular",
        "features": [
            {"name": str(name), "min": 0.0, "max": float(math.ceil(2 * high)), "step": 0.01}
            for name, high in zip(data.feature_names, X.max(axis=0), strict=True)
        ],
    }
    (folder / "model.onnx").write_bytes(graph.SerializeToString())
    (folder / "schema.json").write_text(json.dumps(schema))
    (folder / "reference.npy").write_bytes(array_bytes(X[train]))
    extra = []
    if heldout:
        held = folder / "heldout.csv"
        header = ",".join([f"f{i}" for i in range(X.shape[1])] + ["label"])
        rows = [",".join([*(f"{v:.2f}" for v in X[i]), data.target_names[y[i]]]) for i in natural]
        held.write_text("\n".join([header, *rows]) + "\n")
        extra = ["--heldout", str(held)]
    call_command(
        "register_model", WINE_SLUG, "--onnx", str(folder / "model.onnx"), "--schema", str(folder / "schema.json"),
        "--classes", ",".join(str(c) for c in data.target_names), "--reference-data", str(folder / "reference.npy"),
        "--variant", "full", "--version", "1", "--activate", *extra, stdout=StringIO(),
    )  # fmt: skip
    high = np.array([feature["max"] for feature in schema["features"]])
    return {"natural": X[natural], "natural_labels": y[natural], "high": high}
