"""Build small ONNX graphs in tests and cost a single node through the real engine path."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget.engine.graph import prepare_graph
from pytest_maccbudget.engine.ops import *  # noqa: F401,F403  (fills the registry)
from pytest_maccbudget.engine.registry import REGISTRY
from pytest_maccbudget.engine.types import OpCost

InputSpec = tuple[Sequence[int], int]  # (shape, ONNX elem type)


def single_node_model(
    op_type: str,
    inputs: Mapping[str, Sequence[int] | InputSpec | np.ndarray | None],
    outputs: Sequence[str] = ("y",),
    attrs: Optional[Mapping[str, Any]] = None,
    domain: str = "",
    opset: int = 21,
    extra_opsets: Optional[Mapping[str, int]] = None,
) -> onnx.ModelProto:
    """One node. `inputs` maps name -> shape (float32), (shape, dtype), a numpy array
    (stored as an initializer, i.e. a weight or constant), or None (omitted optional input).
    Output shapes are left to shape inference."""
    graph_inputs, initializers, input_names = [], [], []
    for name, spec in inputs.items():
        if spec is None:
            input_names.append("")
            continue
        input_names.append(name)
        if isinstance(spec, np.ndarray):
            initializers.append(numpy_helper.from_array(spec, name))
        elif len(spec) == 2 and isinstance(spec[0], (list, tuple)):
            graph_inputs.append(helper.make_tensor_value_info(name, int(spec[1]), list(spec[0])))
        else:
            graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(spec)))
    node = helper.make_node(op_type, input_names, list(outputs), name="node", domain=domain, **dict(attrs or {}))
    graph_outputs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outputs if o]
    graph = helper.make_graph([node], "g", graph_inputs, graph_outputs, initializer=initializers)
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in (extra_opsets or {}).items()]
    if domain and domain not in (extra_opsets or {}) and domain != "ai.onnx":
        opsets.append(helper.make_opsetid(domain, 1))
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


def node_cost(op_type: str, inputs: Mapping[str, Any], **kwargs: Any) -> OpCost:
    """The cost the registered function gives the single node of `single_node_model(...)`."""
    model = single_node_model(op_type, inputs, **kwargs)
    prepared = prepare_graph(model, REGISTRY)
    view = prepared.view(prepared.nodes[0])
    entry = REGISTRY.lookup(view.op_type, view.domain)
    assert entry is not None, f"{op_type} is not registered"
    return entry.cost(view)


def weight(*shape: int, dtype: Any = np.float32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)
