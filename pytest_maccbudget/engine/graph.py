"""Graph preparation: real inputs, symbolic dimensions, shape inference, constants, node views.

Works on a weightless skeleton (see loader.py): initializers keep dims and dtype, and keep
their values only when small. Nothing here reads weight bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import onnx
import onnx.inliner
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, helper, numpy_helper

from .errors import ModelError
from .registry import OpRegistry, TypedShape, normalize_domain
from .types import MAX_VALUE_ELEMENTS, NodeView, Shape, TensorInfo, decode_small_tensor

# Nodes whose outputs are constants when all their inputs are (folded by any runtime at load).
_NONDETERMINISTIC_OPS = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
# Ops whose outputs are known before the graph runs once their inputs' *shapes* are known.
_SHAPE_OPS = {"Shape", "Size"}


@dataclass
class PreparedGraph:
    """A graph with shapes resolved as far as possible and everything a cost function needs."""

    graph: GraphProto
    tensors: dict[str, TensorInfo]
    nodes: list[NodeProto]  # topologically sorted
    real_inputs: list[str]
    notes: list[str] = field(default_factory=list)
    # constant tensors that are "roots" of stored data: initializers, Constant/ConstantOfShape outputs
    weight_roots: dict[str, TensorInfo] = field(default_factory=dict)
    # indices into `nodes` of nodes that only compute constants (run before the graph does)
    constant_nodes: set[int] = field(default_factory=set)
    # opset version per (normalized) domain
    opsets: dict[str, int] = field(default_factory=dict)
    _value_info_index: Optional[dict[str, onnx.ValueInfoProto]] = field(default=None, repr=False)

    def _value_infos(self) -> dict[str, onnx.ValueInfoProto]:
        if self._value_info_index is None:
            self._value_info_index = {vi.name: vi for vi in list(self.graph.input) + list(self.graph.value_info)}
        return self._value_info_index

    def describe_unknown_inputs(self, node: NodeProto) -> str:
        """E.g. "x [2, seq]" for each input of `node` whose shape is not resolved."""
        value_infos = self._value_infos()
        parts = []
        for name in node.input:
            if name and self.tensors.get(name, TensorInfo(name, None)).shape is None:
                vi = value_infos.get(name)
                parts.append(f"{name!r} {_describe_dims(vi.type) if vi is not None else 'unknown rank'}")
        return ", ".join(parts)

    def view(self, node: NodeProto) -> NodeView:
        domain = normalize_domain(node.domain)
        return NodeView(
            name=node.name,
            op_type=node.op_type,
            domain=domain,
            inputs=tuple(self.tensors.get(n, TensorInfo(n, None)) if n else None for n in node.input),
            outputs=tuple(self.tensors.get(n, TensorInfo(n, None)) if n else None for n in node.output),
            attrs=node_attributes(node),
            opset=self.opsets.get(domain, 0),
        )


def node_attributes(node: NodeProto) -> dict[str, object]:
    attrs: dict[str, object] = {}
    for attribute in node.attribute:
        if attribute.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
            continue  # subgraphs are profiled by the profiler, not handed to cost functions
        if attribute.type == AttributeProto.TENSOR:
            attrs[attribute.name] = decode_small_tensor(attribute.t)
            continue
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8", "replace") for v in value]
        attrs[attribute.name] = value
    return attrs


def _shape_from_type(type_proto: onnx.TypeProto) -> Optional[Shape]:
    tensor_type = type_proto.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims = tuple(dim.dim_value for dim in tensor_type.shape.dim)
    if 0 in dims:  # unset (symbolic or unknown) dims read as 0; a real 0 is checked below
        if any(not dim.HasField("dim_value") for dim in tensor_type.shape.dim):
            return None
    return dims if all(d >= 0 for d in dims) else None


def _describe_dims(type_proto: onnx.TypeProto) -> str:
    if not type_proto.tensor_type.HasField("shape"):
        return "unknown rank"
    parts = []
    for dim in type_proto.tensor_type.shape.dim:
        parts.append(str(dim.dim_value) if dim.HasField("dim_value") else (dim.dim_param or "?"))
    return "[" + ", ".join(parts) + "]"


def real_input_names(graph: GraphProto) -> list[str]:
    """Graph inputs that are not initializers (IR < 4 graphs list every weight as an input)."""
    initializer_names = {t.name for t in graph.initializer}
    return [vi.name for vi in graph.input if vi.name not in initializer_names]


InputShapes = Optional[Union[Mapping[str, Union[Sequence[int], int]], Sequence[Sequence[int]]]]


def apply_input_shapes(
    model: ModelProto,
    input_shapes: InputShapes = None,
    batch: Optional[int] = None,
) -> list[str]:
    """Fix the dims of the real inputs in place. Returns notes on values that were assumed.

    `input_shapes` maps an input name to full dims, or a symbolic dim name to one value; or it
    lists full dims for the inputs in order.
    `batch` sets the leading dim of every input of rank 2 or more not given in full, when that
    dim is symbolic or 1; a symbolic leading dim with no value becomes 1, with a note. Other
    symbolic dims with no value stay unknown.
    """
    graph = model.graph
    real_inputs = real_input_names(graph)
    input_shapes = _by_input_name(input_shapes, real_inputs)
    by_name = {vi.name: vi for vi in graph.input}
    symbols = {d.dim_param for n in real_inputs for d in by_name[n].type.tensor_type.shape.dim if d.dim_param}
    for key, value in list(input_shapes.items()):
        if isinstance(value, int) and key in real_inputs and key not in symbols:
            input_shapes[key] = [value]  # a rank-1 input given as one number
    unknown = [k for k, v in input_shapes.items() if k not in real_inputs and not (isinstance(v, int) and k in symbols)]
    if unknown:
        known = f"inputs are {', '.join(real_inputs) or 'none'}"
        if symbols:
            known += f"; symbolic dims are {', '.join(sorted(symbols))}"
        raise ModelError(f"no model input or symbolic dim named {', '.join(map(repr, unknown))}; {known}")
    symbol_values = {k: int(v) for k, v in input_shapes.items() if isinstance(v, int)}
    notes: list[str] = []
    changed = False
    for name in real_inputs:
        given = input_shapes.get(name)
        if given is not None and not isinstance(given, int):
            _set_dims(by_name[name], list(given))
            changed = True
        elif by_name[name].type.tensor_type.HasField("shape"):
            changed |= _fill_dims(by_name[name], symbol_values, batch, notes)
    if changed:
        _forget_declared_shapes(graph, set(real_inputs))
    return notes


def _by_input_name(input_shapes: "InputShapes", real_inputs: list[str]) -> dict[str, "Sequence[int] | int"]:
    """Shapes given as a list apply to the model's inputs in order."""
    if input_shapes is None:
        return {}
    if isinstance(input_shapes, Mapping):
        return dict(input_shapes)
    shapes = list(input_shapes)
    if len(shapes) != len(real_inputs):
        raise ModelError(f"{len(shapes)} input shape(s) given for {len(real_inputs)} model input(s) ({', '.join(real_inputs)})")
    return dict(zip(real_inputs, shapes))


def _fill_dims(value_info: onnx.ValueInfoProto, symbol_values: Mapping[str, int], batch: Optional[int], notes: list[str]) -> bool:
    """Give symbolic dims their values; `batch` sets the leading dim of an input of rank 2 or more
    when that dim is symbolic or 1. True if a dim changed."""
    changed = False
    dims = value_info.type.tensor_type.shape.dim
    for position, dim in enumerate(dims):
        fixed = dim.HasField("dim_value") and dim.dim_value > 0
        if position == 0 and batch is not None and len(dims) >= 2 and (not fixed or dim.dim_value == 1):
            changed |= not fixed or dim.dim_value != batch
            dim.dim_value = batch
        elif not fixed:
            changed = True
            symbol = dim.dim_param
            if symbol and symbol in symbol_values:
                dim.dim_value = symbol_values[symbol]
            elif position == 0:
                notes.append(f"symbolic batch dimension {symbol or '?'!r} of input {value_info.name!r} taken as 1 (set it with --batch or --input)")
                dim.dim_value = 1
    return changed


def _forget_declared_shapes(graph: GraphProto, keep: set[str]) -> None:
    """Drop the shapes the file declares for intermediate values and outputs: they were
    written for the input dims the file was exported with, and inference keeps declared shapes
    over inferred ones."""
    graph.ClearField("value_info")
    for output in graph.output:
        if output.name not in keep and output.type.HasField("tensor_type"):
            output.type.tensor_type.ClearField("shape")


def _set_dims(value_info: onnx.ValueInfoProto, dims: list[int]) -> None:
    tensor_type = value_info.type.tensor_type
    if tensor_type.HasField("shape") and len(tensor_type.shape.dim) not in (0, len(dims)):
        raise ModelError(
            f"input {value_info.name!r} has rank {len(tensor_type.shape.dim)} "
            f"({_describe_dims(value_info.type)}) but {len(dims)} dims were given: {dims}"
        )
    tensor_type.ClearField("shape")
    for d in dims:
        if int(d) <= 0:
            raise ModelError(f"input {value_info.name!r}: dims must be positive, got {dims}")
        tensor_type.shape.dim.add().dim_value = int(d)


def topological_order(graph: GraphProto, outer_names: Iterable[str] = ()) -> list[NodeProto]:
    """Nodes in an order where every producer comes first; raises ModelError on a cycle."""
    available = set(outer_names) | {t.name for t in graph.initializer} | {vi.name for vi in graph.input} | {""}
    producers: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        for name in node.output:
            if name:
                producers[name] = index
    if all(all(i in available or producers.get(i, len(graph.node)) < idx for i in n.input)
           for idx, n in enumerate(graph.node)):
        return list(graph.node)  # already sorted: the common case
    pending = {i: {producers[n] for n in node.input if n and n not in available and n in producers}
               for i, node in enumerate(graph.node)}
    order: list[NodeProto] = []
    ready = sorted(i for i, deps in pending.items() if not deps)
    consumers: dict[int, list[int]] = {}
    for i, deps in pending.items():
        for dep in deps:
            consumers.setdefault(dep, []).append(i)
    done: set[int] = set()
    while ready:
        index = ready.pop(0)
        done.add(index)
        order.append(graph.node[index])
        for consumer in consumers.get(index, []):
            pending[consumer].discard(index)
            if not pending[consumer] and consumer not in done and consumer not in ready:
                ready.append(consumer)
    if len(order) != len(graph.node):
        stuck = next(graph.node[i] for i in range(len(graph.node)) if i not in done)
        raise ModelError(f"the graph has a cycle through node {stuck.name or stuck.output[0]!r} ({stuck.op_type})")
    return order


def infer_shapes(model: ModelProto) -> ModelProto:
    """ONNX shape inference with data propagation; raises ModelError with onnx's own message."""
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception as error:  # onnx raises InferenceError, ValidationError or RuntimeError
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"shape inference failed: {message}") from error


def collect_tensors(graph: GraphProto, outer: Optional[Mapping[str, TensorInfo]] = None) -> dict[str, TensorInfo]:
    """Shapes and dtypes of every named value, plus constant values where known."""
    tensors: dict[str, TensorInfo] = dict(outer or {})
    for init in graph.initializer:
        tensors[init.name] = TensorInfo(init.name, tuple(init.dims), init.data_type, init, True)
    initializer_count = len(graph.initializer)
    for vi in _value_infos_of(graph, skip_initializers=initializer_count > 0):
        tensor_type = vi.type.tensor_type
        info = TensorInfo(vi.name, _shape_from_type(vi.type), tensor_type.elem_type)
        known = tensors.get(vi.name)
        if known is not None and (known.is_constant or (known.shape is not None and info.shape is None)):
            continue  # initializers win; a shapeless graph-output entry must not hide an inferred shape
        tensors[vi.name] = info
    return tensors


def _value_infos_of(graph: GraphProto, skip_initializers: bool) -> Iterable[onnx.ValueInfoProto]:
    inputs: Iterable[onnx.ValueInfoProto] = graph.input
    if skip_initializers:  # IR < 4 graphs list every weight as an input too
        names = {t.name for t in graph.initializer}
        inputs = [vi for vi in graph.input if vi.name not in names]
    for group in (inputs, graph.value_info, graph.output):
        for vi in group:
            if vi.type.HasField("tensor_type"):
                yield vi


def propagate_constants(nodes: Sequence[NodeProto], tensors: dict[str, TensorInfo]) -> tuple[set[int], dict[str, TensorInfo]]:
    """Mark the outputs of constant-computing nodes as constants.

    Returns the indices (into `nodes`) of nodes that run before the graph does (Constant,
    ConstantOfShape, Shape of a known shape, and anything fed only by constants), and the
    tensors that hold stored data (initializers and Constant/ConstantOfShape outputs).
    """
    constant_nodes: set[int] = set()
    roots: dict[str, TensorInfo] = {k: v for k, v in tensors.items() if v.is_constant}
    for index, node in enumerate(nodes):
        present = [tensors.get(name) for name in node.input if name]
        if node.op_type in _NONDETERMINISTIC_OPS and node.domain in ("", "ai.onnx"):
            continue
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            info = _constant_node_output(node, tensors.get(node.output[0]))
            tensors[node.output[0]] = info
            roots[node.output[0]] = info
            constant_nodes.add(index)
            continue
        if node.op_type in _SHAPE_OPS and node.domain in ("", "ai.onnx"):
            source = present[0] if present else None
            if source is not None and source.shape is not None:
                constant_nodes.add(index)
                _mark_constant(tensors, node.output[0])
            continue
        if not node.input or not all(t is not None and t.is_constant for t in present):
            continue
        if any(attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for attr in node.attribute):
            continue
        constant_nodes.add(index)
        for name in node.output:
            if name:
                _mark_constant(tensors, name)
        if node.op_type == "ConstantOfShape" and node.domain in ("", "ai.onnx"):
            roots[node.output[0]] = tensors[node.output[0]]
    return constant_nodes, roots


def _mark_constant(tensors: dict[str, TensorInfo], name: str) -> None:
    info = tensors.get(name, TensorInfo(name, None))
    tensors[name] = TensorInfo(info.name, info.shape, info.dtype, info.value_source, True)


def _constant_node_output(node: NodeProto, inferred: Optional[TensorInfo]) -> TensorInfo:
    name = node.output[0]
    for attribute in node.attribute:
        if attribute.name == "value" and attribute.type == AttributeProto.TENSOR:
            t = attribute.t
            return TensorInfo(name, tuple(t.dims), t.data_type, t, True)
        if attribute.name == "sparse_value":
            sparse = attribute.sparse_tensor
            return TensorInfo(name, tuple(sparse.dims), sparse.values.data_type, None, True)
    value = helper.get_attribute_value(node.attribute[0]) if node.attribute else None
    if value is not None:
        array = np.asarray(value)
        if array.dtype.kind == "U" or array.dtype.kind == "O":
            return TensorInfo(name, array.shape, TensorProto.STRING, None, True)
        dtype = helper.np_dtype_to_tensor_dtype(array.dtype if array.dtype != np.float64 else np.dtype(np.float32))
        return TensorInfo(name, tuple(array.shape), dtype, array, True)
    if inferred is not None:
        return TensorInfo(name, inferred.shape, inferred.dtype, None, True)
    return TensorInfo(name, None, TensorProto.FLOAT, None, True)


def resolve_contrib_shapes(model: ModelProto, registry: OpRegistry, max_rounds: int = 8) -> tuple[ModelProto, dict[str, TensorInfo]]:
    """Shape inference, then outputs of ops onnx does not know from registered shape functions,
    and inference again, until nothing new is learnt. Returns the model and its tensors."""
    inferred = infer_shapes(model)
    tensors = collect_tensors(inferred.graph)
    for _ in range(max_rounds):
        if not _add_contrib_shapes(model, inferred.graph, tensors, registry):
            break
        inferred = infer_shapes(model)
        tensors = collect_tensors(inferred.graph)
    return inferred, tensors


def _add_contrib_shapes(model: ModelProto, graph: GraphProto, tensors: dict[str, TensorInfo], registry: OpRegistry) -> bool:
    """Append value_info to `model` for outputs that shape functions can now give. True if any."""
    added = False
    for node in graph.node:
        if all(n in tensors and tensors[n].shape is not None for n in node.output if n):
            continue
        shape_fn = registry.shape_fn(node.op_type, node.domain)
        if shape_fn is None:
            continue
        view = PreparedGraph(graph, tensors, [], []).view(node)
        try:
            shapes = shape_fn(view)
        except Exception:  # inputs not resolved yet, or an invalid node: reported later by the profiler
            continue
        for name, shape in zip(node.output, shapes):
            if name and shape is not None and (name not in tensors or tensors[name].shape is None):
                dtype = view.inputs[0].dtype if view.inputs and view.inputs[0] else TensorProto.FLOAT
                if isinstance(shape, TypedShape):
                    shape, dtype = shape.shape, shape.dtype
                model.graph.value_info.append(helper.make_tensor_value_info(name, dtype, list(shape)))
                added = True
    return added


MAX_FOLDING_ROUNDS = 4


def _has_unknown_shapes(graph: GraphProto, tensors: Mapping[str, TensorInfo]) -> bool:
    return any(name and tensors.get(name, TensorInfo(name, None)).shape is None
               for node in graph.node for name in node.output)


def learn_shapes_by_folding(model: ModelProto, inferred: ModelProto, tensors: Mapping[str, TensorInfo]) -> bool:
    """Shape arithmetic that onnx's data propagation leaves unknown (e.g. TorchScript's
    `Shape -> Slice` with a start computed by `Mod`/`Add`), computed with onnx's reference ops
    on a copy whose constant nodes become `Constant`s; the shapes inference then finds are added
    to `model` as value_info. True if any shape was learnt."""
    folded = ModelProto()
    folded.CopyFrom(inferred)
    if not _fold_small_constants(folded.graph, tensors):
        return False
    learnt = infer_shapes(folded).graph
    added = False
    for vi in list(learnt.value_info) + list(learnt.output):
        known = tensors.get(vi.name)
        if (known is None or known.shape is None) and _shape_from_type(vi.type) is not None:
            model.graph.value_info.append(vi)
            added = True
    return added


def _fold_small_constants(graph: GraphProto, tensors: Mapping[str, TensorInfo]) -> bool:
    """Replace nodes that compute small constants by `Constant` nodes with their values."""
    from onnx.reference import ReferenceEvaluator

    values: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        value = decode_small_tensor(init)
        if value is not None:
            values[init.name] = value
    ordered = [NodeProto.FromString(node.SerializeToString()) for node in topological_order(graph)]
    replaced = False
    for index, node in enumerate(ordered):
        value = _constant_output(node, values, tensors, ReferenceEvaluator)
        if value is None:
            continue
        values[node.output[0]] = value
        if node.op_type != "Constant":
            ordered[index] = helper.make_node("Constant", [], [node.output[0]], name=node.name,
                                              value=numpy_helper.from_array(value, node.output[0]))
            replaced = True
    del graph.node[:]
    graph.node.extend(ordered)
    return replaced


def _constant_output(node: NodeProto, values: Mapping[str, np.ndarray], tensors: Mapping[str, TensorInfo],
                     evaluator: type) -> Optional[np.ndarray]:
    if node.domain not in ("", "ai.onnx") or len(node.output) != 1 or node.op_type in _NONDETERMINISTIC_OPS:
        return None
    if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute):
        return None
    if node.op_type == "Constant":
        return decode_small_tensor(node.attribute[0].t) if node.attribute and node.attribute[0].name == "value" else None
    if node.op_type in ("Shape", "Size"):
        shape = tensors.get(node.input[0], TensorInfo("", None)).shape
        if shape is None:
            return None
        if node.op_type == "Size":
            return np.array(int(np.prod(shape)), dtype=np.int64)
        attrs = node_attributes(node)
        start, end = int(attrs.get("start", 0)), attrs.get("end")
        return np.array(shape[start:None if end is None else int(end)], dtype=np.int64)
    if not node.input or not all(name in values for name in node.input if name):
        return None
    try:
        feeds = {name: values[name] for name in node.input if name}
        (result,) = evaluator(node).run(None, feeds)
    except Exception:  # an op the reference runtime can't evaluate: the shape stays unknown
        return None
    result = np.asarray(result)
    return result if result.size <= MAX_VALUE_ELEMENTS else None


_ELEMENT_PRESERVING_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}


def distrust_size_changing_views(nodes: Sequence[NodeProto], tensors: dict[str, TensorInfo]) -> list[str]:
    """A Reshape-like op whose output has a different element count than its input (a target
    hard-coded for another batch size) makes its output and everything computed from it
    unresolved, instead of silently counting the rest at the wrong size."""
    notes: list[str] = []
    tainted: set[str] = set()
    for node in nodes:
        if any(name in tainted for name in node.input):
            tainted.update(name for name in node.output if name)
            continue
        if node.op_type not in _ELEMENT_PRESERVING_OPS or node.domain not in ("", "ai.onnx") or not node.input:
            continue
        source, result = tensors.get(node.input[0]), tensors.get(node.output[0])
        if source is None or result is None or source.numel is None or result.numel is None or source.numel == result.numel:
            continue
        notes.append(
            f"{node.op_type} {node.name or node.output[0]!r} maps {source.numel:,} elements {list(source.shape or ())} "
            f"to {result.numel:,} {list(result.shape or ())}: its target is hard-coded for other input dims; "
            "layers after it are unresolved"
        )
        tainted.update(name for name in node.output if name)
    for name in tainted:
        info = tensors.get(name, TensorInfo(name, None))
        tensors[name] = TensorInfo(name, None, info.dtype, None, info.is_constant)
    return notes


def prepare_graph(
    model: ModelProto,
    registry: OpRegistry,
    input_shapes: InputShapes = None,
    batch: Optional[int] = None,
) -> PreparedGraph:
    """Inline local functions, fix input dims, infer shapes and index every tensor."""
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    notes = apply_input_shapes(model, input_shapes, batch)
    inferred, tensors = resolve_contrib_shapes(model, registry)
    for _ in range(MAX_FOLDING_ROUNDS):
        if not _has_unknown_shapes(inferred.graph, tensors) or not learn_shapes_by_folding(model, inferred, tensors):
            break
        inferred, tensors = resolve_contrib_shapes(model, registry)
    graph = inferred.graph
    nodes = topological_order(graph)
    notes += distrust_size_changing_views(nodes, tensors)
    constant_nodes, roots = propagate_constants(nodes, tensors)
    opsets = {normalize_domain(op.domain): op.version for op in inferred.opset_import}
    return PreparedGraph(graph, tensors, nodes, real_input_names(graph), notes, roots, constant_nodes, opsets)
