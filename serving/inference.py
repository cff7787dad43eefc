"""Running a served model: an ONNX graph in onnxruntime on the CPU, one single-threaded session per active version per
web process, fed the canonical values of a batch and answering logits.

Every model goes through here, the operator's and Moat's own (the demo models are exported to ONNX by
`serving.ml.onnx_export`): one code path, measured in `bench/forward_pass.py`. Sessions are made in the process that
uses them, the web worker (the registry loads lazily on a worker's first request), with one intra-op thread:
the default thread pool burns a second core per worker for no gain on small batches, and the web workers already
take every core.

`ORT_DISABLE_TELEMETRY=1` is set before onnxruntime is imported: from 1.29 on, onnxruntime starts a telemetry
thread at import, and a forked worker then hangs at exit or aborts when it builds a session
(`tests/serving/test_inference.py` forks, builds, predicts and exits).
"""

from __future__ import annotations

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from dataclasses import dataclass

import numpy as np
import onnxruntime

from serving.input_schema import InputSchema

FLAT, NCHW, NHWC, NHW = "flat", "NCHW", "NHWC", "NHW"
LAYOUTS = (FLAT, NCHW, NHWC, NHW)
LOGITS, PROBABILITIES = "logits", "probabilities"
OUTPUT_KINDS = (LOGITS, PROBABILITIES)
# Probabilities become logits (log p) so that one set of output defenses serves every model; a probability of 0
# becomes this one's log, which no softmax can tell from 0.
_SMALLEST_PROBABILITY = 1e-30
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}
Session = onnxruntime.InferenceSession


@dataclass(frozen=True)
class GraphBinding:
    """How Moat talks to one graph: the input it feeds and in which layout, the output holding the class scores
    (and whether they are logits or probabilities), and an optional embedding output (the penultimate layer)."""

    input_name: str
    input_layout: str
    output_name: str
    output_kind: str
    embedding_output: str = ""


def session_options() -> onnxruntime.SessionOptions:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def new_session(model_bytes: bytes) -> Session:
    """An onnxruntime session on the CPU for the serialised graph (the caller verified its bytes)."""
    return onnxruntime.InferenceSession(model_bytes, session_options(), providers=["CPUExecutionProvider"])


def tensor_shape(schema: InputSchema, layout: str, n: int) -> tuple[int, ...]:
    """The shape of the tensor fed to the graph for `n` inputs."""
    if layout == FLAT:
        return (n, schema.n_features)
    if layout == NCHW:
        return (n, schema.channels, schema.height, schema.width)
    if layout == NHWC:
        return (n, schema.height, schema.width, schema.channels)
    return (n, schema.height, schema.width)


class OnnxClassifier:
    """A served graph: `logits(values)` for canonical values (n, d) in the schema's row order (height x width x
    channel for images), `embedding(values)` when the graph names one. Thread-safe, as onnxruntime's `run` is."""

    def __init__(self, session: Session, binding: GraphBinding, schema: InputSchema) -> None:
        self.session = session
        self.binding = binding
        self.schema = schema
        kind = next(i.type for i in session.get_inputs() if i.name == binding.input_name)
        self.input_dtype = _NUMPY_TYPES[kind]
        self._layout = binding.input_layout

    @classmethod
    def from_bytes(cls, model_bytes: bytes, binding: GraphBinding, schema: InputSchema) -> OnnxClassifier:
        return cls(new_session(model_bytes), binding, schema)

    def _tensor(self, values: np.ndarray) -> np.ndarray:
        n = values.shape[0]
        x = np.asarray(values, dtype=self.input_dtype)
        if self._layout == FLAT:
            return np.ascontiguousarray(x)
        schema = self.schema
        image = x.reshape(n, schema.height, schema.width, schema.channels)
        if self._layout == NCHW:
            return np.ascontiguousarray(image.transpose(0, 3, 1, 2))
        if self._layout == NHWC:
            return image
        return image.reshape(n, schema.height, schema.width)

    def raw_outputs(self, values: np.ndarray, names: list[str]) -> list[np.ndarray]:
        return self.session.run(names, {self.binding.input_name: self._tensor(values)})

    def logits(self, values: np.ndarray) -> np.ndarray:
        """(n, classes) float64 logits: the graph's output, or the log of its probabilities."""
        (scores,) = self.raw_outputs(values, [self.binding.output_name])
        scores = np.asarray(scores, dtype=np.float64).reshape(values.shape[0], -1)
        if self.binding.output_kind == PROBABILITIES:
            return np.log(np.maximum(scores, _SMALLEST_PROBABILITY))
        return scores

    def embedding(self, values: np.ndarray) -> np.ndarray:
        """(n, e) float64: the graph's embedding output. Raises ValueError when the graph names none."""
        if not self.binding.embedding_output:
            raise ValueError("this model names no embedding output")
        (vectors,) = self.raw_outputs(values, [self.binding.embedding_output])
        return np.asarray(vectors, dtype=np.float64).reshape(values.shape[0], -1)
