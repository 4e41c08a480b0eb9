"""ONNX graphs that take onnx's own C++ down, built in code (found by fuzzing the engine)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def write_crashing_graph(path: Path) -> None:
    """A ConvTranspose over a zero-size axis, then a negative-step Slice: shape inference trips
    an assertion of the onnx wheel (std::clamp with hi < lo) and aborts the process."""
    constants = [
        numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w"),
        numpy_helper.from_array(np.array([-1], np.int64), "starts"),
        numpy_helper.from_array(np.array([-(2**62)], np.int64), "ends"),
        numpy_helper.from_array(np.array([2], np.int64), "axes"),
        numpy_helper.from_array(np.array([-1], np.int64), "steps"),
    ]
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["c"], name="up", strides=[3, 3]),
             helper.make_node("Slice", ["c", "starts", "ends", "axes", "steps"], ["y"], name="cut")]
    graph = helper.make_graph(nodes, "crash", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 0, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], constants)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def write_hanging_graph(path: Path) -> None:
    """An opset-8 Expand whose shape input is declared with 2^63-1 elements: shape inference
    builds an output of that rank, dimension by dimension, and never returns."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
              helper.make_tensor_value_info("shape", TensorProto.INT64, [2**63 - 1])]
    graph = helper.make_graph([helper.make_node("Expand", ["x", "shape"], ["y"], name="grow")], "hang", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)]), str(path))
