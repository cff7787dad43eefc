"""The ONNX runtime: single-threaded sessions made after the fork, every input layout, logits from any output kind."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

from serving.inference import (
    FLAT,
    LOGITS,
    NCHW,
    NHW,
    NHWC,
    PROBABILITIES,
    GraphBinding,
    OnnxClassifier,
    new_session,
    session_options,
)
from serving.input_schema import InputSchema
from tests.serving.helpers import DIGITS, natural_rows, random_onnx

IMAGE = InputSchema.from_dict({"kind": "image", "height": 2, "width": 3, "channels": 3, "min": 0, "max": 1})


def _pixel_picker(input_shape: list, index: tuple[int, ...]) -> bytes:
    """A graph that answers [value at `index`, 0]: proves which tensor position a canonical value lands in."""
    rank = len(input_shape)
    starts = numpy_helper.from_array(np.array([0, *index], dtype=np.int64), "starts")
    ends = numpy_helper.from_array(np.array([2**62, *(i + 1 for i in index)], dtype=np.int64), "ends")
    shape = numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "shape")
    zero = numpy_helper.from_array(np.zeros((1, 1), dtype=np.float32), "zero")
    nodes = [
        helper.make_node("Slice", ["x", "starts", "ends"], ["picked"]),
        helper.make_node("Reshape", ["picked", "shape"], ["column"]),
        helper.make_node("Mul", ["column", "zero"], ["zeros"]),
        helper.make_node("Concat", ["column", "zeros"], ["scores"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "picker",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_shape[1:]])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])],
        [starts, ends, shape, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    assert rank >= 2
    return model.SerializeToString()


def test_sessions_are_single_threaded_and_sequential():
    options = session_options()

    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.execution_mode == onnxruntime.ExecutionMode.ORT_SEQUENTIAL


def test_each_layout_puts_a_canonical_value_where_the_graph_expects_it():
    # The canonical row is height x width x channel; pick pixel (row 1, column 2), channel 1 = value 1*9 + 2*3 + 1.
    values = np.arange(18, dtype=np.float64).reshape(1, 18) / 17
    expected = 16 / 17
    cases = {
        FLAT: ([None, 18], (16,), IMAGE),
        NHWC: ([None, 2, 3, 3], (1, 2, 1), IMAGE),
        NCHW: ([None, 3, 2, 3], (1, 1, 2), IMAGE),
    }
    for layout, (shape, index, schema) in cases.items():
        binding = GraphBinding(input_name="x", input_layout=layout, output_name="scores", output_kind=LOGITS)
        classifier = OnnxClassifier.from_bytes(_pixel_picker(shape, index), binding, schema)
        assert classifier.logits(values)[0, 0] == np.float32(expected), layout
    gray = InputSchema.from_dict({"kind": "image", "height": 2, "width": 3, "channels": 1, "min": 0, "max": 1})
    binding = GraphBinding(input_name="x", input_layout=NHW, output_name="scores", output_kind=LOGITS)
    classifier = OnnxClassifier.from_bytes(_pixel_picker([None, 2, 3], (1, 2)), binding, gray)
    assert classifier.logits(np.arange(6, dtype=np.float64).reshape(1, 6))[0, 0] == 5.0


def test_probabilities_become_logits_whose_softmax_gives_them_back_zeros_included():
    probabilities = np.array([[0.7, 0.3, 0.0]], dtype=np.float32)
    constant = numpy_helper.from_array(probabilities, "p")
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Concat", ["n", "three"], ["target"], axis=0),
        helper.make_node("Expand", ["p", "target"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])],
        [
            constant,
            numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
            numpy_helper.from_array(np.array([3], dtype=np.int64), "three"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    binding = GraphBinding(input_name="x", input_layout=FLAT, output_name="scores", output_kind=PROBABILITIES)
    logits = OnnxClassifier.from_bytes(model.SerializeToString(), binding, DIGITS).logits(np.zeros((2, 64)))

    assert np.isfinite(logits).all() and logits.shape == (2, 3)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax, np.repeat(probabilities, 2, axis=0), atol=1e-7)
    assert onnx.load_model_from_string(model.SerializeToString()).graph.output[0].name == "scores"


def test_a_forked_process_builds_a_session_predicts_and_exits_cleanly(tmp_path):
    """onnxruntime >= 1.29 starts a thread at import; a process forked after it hangs at exit or aborts when it
    builds a session unless ORT_DISABLE_TELEMETRY=1 was set before the import (as the web server's workers are)."""
    graph = tmp_path / "model.onnx"
    graph.write_bytes(random_onnx())
    script = textwrap.dedent(
        f"""
        import os, sys
        import config  # sets ORT_DISABLE_TELEMETRY before anything imports onnxruntime, as every entry point does
        import numpy as np
        from serving.inference import new_session
        new_session(open({str(graph)!r}, "rb").read())  # a session in the parent, as a preloading server would
        pid = os.fork()
        if pid == 0:
            session = new_session(open({str(graph)!r}, "rb").read())
            out = session.run(["logits"], {{"x": np.zeros((3, 64), dtype=np.float32)}})[0]
            os._exit(0 if out.shape == (3, 10) else 3)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    env = {key: value for key, value in os.environ.items() if key != "ORT_DISABLE_TELEMETRY"}
    process = subprocess.run(  # noqa: S603 - this interpreter, a script of ours
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )

    assert process.returncode == 0, process.stderr[-2000:]


def test_a_session_answers_many_rows_at_once(tmp_path):
    session = new_session(random_onnx(hidden=(32,)))
    rows = DIGITS.values(natural_rows(100)).astype(np.float32)

    assert session.run(["logits"], {"x": rows})[0].shape == (100, 10)
