"""What a web worker holds in memory: its resident set size (RSS) as it starts (Django and the URLconf loaded, which
imports onnxruntime), once every active model is loaded (a session per version, the regions of each model), and what
one more model costs (a 100-tree random forest on the digits, converted with skl2onnx, as an operator's model would
be: its session and its regions).

    bin/bench runs it (it needs the platform's settings and database: the active versions are read from the registry)
    python bench/memory.py                       # writes bench/results/memory.json

Each figure comes from a fresh process (a child per measurement, as a freshly forked worker), read from
/proc/self/status; the forest is trained here, outside the measured process.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

WORKER = r"""
import json, os, sys
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

import django
django.setup()
figures = {"django_mb": rss_mb()}
import config.urls  # noqa: F401 - what a worker loads on its first request
figures["urlconf_mb"] = rss_mb()
figures["onnxruntime_mb"] = rss_mb()  # onnxruntime comes with the URLconf (the API's runtime)
from serving.predictions.runtime import serving_models
from tiers.models import ModelVariant
loaded = {m.slug + " " + m.variant for v in ModelVariant.values for m in serving_models(variant=v)}
figures["models"] = sorted(loaded)
figures["all_models_mb"] = rss_mb()
extra = sys.argv[1:]
if extra:
    import numpy as np
    from django.conf import settings
    from serving.inference import FLAT, PROBABILITIES, GraphBinding, OnnxClassifier
    from serving.input_schema import InputSchema
    from serving.watermark import RegionWatermark
    schema = InputSchema.from_dict(json.loads(open(extra[1]).read()))
    reference = np.load(extra[2], allow_pickle=False)
    # As a worker loads a registered version: the bytes and the binding recorded at registration.
    binding = GraphBinding(
        input_name="input", input_layout=FLAT, output_name="probabilities", output_kind=PROBABILITIES
    )
    classifier = OnnxClassifier.from_bytes(open(extra[0], "rb").read(), binding, schema)
    regions = RegionWatermark.fit(schema, reference, secret=settings.WATERMARK_SECRET.encode(), n_classes=10)
    classifier.logits(schema.values(reference[:100]))
    figures["one_more_model_mb"] = rss_mb()
print(json.dumps(figures))
"""


def _forest_onnx(folder: Path) -> tuple[list[str], int]:
    """The forest's graph, its schema and its reference codes in files: the measured process reads them, and never
    imports scikit-learn (which would count as the model's memory)."""
    import numpy as np
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import RandomForestClassifier

    from serving.input_schema import InputSchema
    from serving.ml import digits

    split = digits.load_digits_split()
    schema = digits.INPUT_SCHEMA
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(split.X_train, split.y_train)
    graph = to_onnx(
        forest,
        initial_types=[("input", FloatTensorType([None, 64]))],
        options={id(forest): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    data = graph.SerializeToString()
    paths = [folder / "forest.onnx", folder / "schema.json", folder / "reference.npy"]
    paths[0].write_bytes(data)
    paths[1].write_text(json.dumps(schema))
    np.save(paths[2], InputSchema.from_dict(schema).codes(split.X_train))
    return [str(path) for path in paths], len(data)


def _measure(*args: str) -> dict:
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", WORKER, *args], capture_output=True, text=True, check=True, env=os.environ
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        files, forest_bytes = _forest_onnx(Path(folder))
        base = _measure()
        with_forest = _measure(*files)
    figures = {
        "django_mb": round(base["django_mb"], 1),
        "urlconf_mb": round(base["urlconf_mb"], 1),
        "active_models": base["models"],
        "all_active_models_mb": round(base["all_models_mb"], 1),
        "active_models_cost_mb": round(base["all_models_mb"] - base["onnxruntime_mb"], 1),
        "forest_onnx_bytes": forest_bytes,
        "one_more_model_100_tree_forest_mb": round(with_forest["one_more_model_mb"] - with_forest["all_models_mb"], 1),
    }
    print(f"a web worker, Django loaded:                  {figures['django_mb']:7.1f} MB RSS")
    print(f"  + the URLconf (the views' modules):         {figures['urlconf_mb']:7.1f} MB")
    print(f"  + every active model ({len(base['models'])} versions):          {figures['all_active_models_mb']:7.1f} MB"
          f"  (+{figures['active_models_cost_mb']:.1f} MB)")  # fmt: skip
    extra = figures["one_more_model_100_tree_forest_mb"]
    print(f"one more model, a 100-tree forest ({forest_bytes / 1e6:.1f} MB of ONNX): +{extra:.1f} MB")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
