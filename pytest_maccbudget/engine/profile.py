"""profile_model: ONNX file or ModelProto -> Profile (per-layer costs, totals, memory, unknowns)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Union

import onnx
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto

from . import ops  # noqa: F401  (fills the default registry)
from .errors import ModelError
from .fusion import find_folds, layer_name
from .graph import InputShapes, PreparedGraph, collect_tensors, prepare_graph, propagate_constants, topological_order
from .loader import load_skeleton, strip_model
from .memory import peak_activation_bytes
from .ops.movement import ALIAS_OPS, NO_COPY_OPS
from .registry import REGISTRY, OpRegistry
from .results import CONSTANT, COSTED, FOLDED, FREE, UNKNOWN, UNRESOLVED, LayerCost, Profile, Totals, UnknownOp
from .types import NodeView, OpCost, TensorInfo, UnresolvedShape, UnsupportedAttributes

ModelSource = Union[str, "os.PathLike[str]", ModelProto]

# Inputs that carry shapes, axes, indices or scalars rather than weights: constants fed only
# here are not parameters.
_SHAPE_INPUTS: dict[str, frozenset[int]] = {
    "Reshape": frozenset({1}), "Expand": frozenset({1}), "Tile": frozenset({1}),
    "Slice": frozenset({1, 2, 3, 4}), "Unsqueeze": frozenset({1}), "Squeeze": frozenset({1}),
    "Resize": frozenset({1, 2, 3}), "Upsample": frozenset({1}), "Pad": frozenset({1, 2, 3}),
    "ConstantOfShape": frozenset({0}), "Range": frozenset({0, 1, 2}), "TopK": frozenset({1}),
    "Split": frozenset({1}), "OneHot": frozenset({1}), "CumSum": frozenset({1}),
    "Clip": frozenset({1, 2}), "Gather": frozenset({1}), "GatherElements": frozenset({1}),
    "Trilu": frozenset({1}), "Dropout": frozenset({1, 2}), "NonMaxSuppression": frozenset({2, 3, 4}),
    "ReduceSum": frozenset({1}), "ReduceMean": frozenset({1}), "ReduceMax": frozenset({1}),
    "ReduceMin": frozenset({1}), "ReduceProd": frozenset({1}), "ReduceL1": frozenset({1}),
    "ReduceL2": frozenset({1}), "ReduceLogSum": frozenset({1}), "ReduceLogSumExp": frozenset({1}),
    "ReduceSumSquare": frozenset({1}), "Loop": frozenset({0, 1}), "If": frozenset({0}),
}


def profile_model(
    model: ModelSource,
    inputs: InputShapes = None,
    *,
    batch: Optional[int] = None,
    registry: Optional[OpRegistry] = None,
    name: Optional[str] = None,
) -> Profile:
    """Profile an ONNX model given as a file path or a ModelProto.

    `inputs` maps input names to dims (or symbolic dim names to a value), or lists the dims of
    the inputs in order; `batch` sets the leading (batch) dim of inputs of rank >= 2 where it is
    symbolic or 1. Weights are never read. Raises ModelError naming the file.
    """
    label = name or (os.fspath(model) if not isinstance(model, ModelProto) else (model.graph.name or "model"))
    try:
        skeleton = load_skeleton(model) if not isinstance(model, ModelProto) else strip_model(model)
        check_opsets(skeleton)
        prepared = prepare_graph(skeleton, registry or REGISTRY, inputs, batch)
        return _Profiler(prepared, registry or REGISTRY).run(label, skeleton)
    except ModelError as error:
        raise ModelError(f"{label}: {error}") from None


def check_opsets(model: ModelProto) -> None:
    """Refuse graphs newer than the installed onnx and nodes from undeclared domains."""
    declared = {("" if op.domain == "ai.onnx" else op.domain): op.version for op in model.opset_import}
    installed = onnx.defs.onnx_opset_version()
    if declared.get("", 0) > installed:
        raise ModelError(
            f"uses opset {declared['']} of ai.onnx, newer than the installed onnx {onnx.__version__} "
            f"supports (up to {installed}); upgrade the onnx package"
        )
    local_functions = {(f.domain, f.name) for f in model.functions}
    for node in _all_nodes(model.graph):
        domain = "" if node.domain == "ai.onnx" else node.domain
        if domain not in declared and (node.domain, node.op_type) not in local_functions:
            raise ModelError(f"node {layer_name(node)!r} uses op {node.op_type!r} from domain {node.domain!r}, which the model does not declare in opset_import")


def _all_nodes(graph: GraphProto):
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                yield from _all_nodes(attribute.g)
            elif attribute.type == AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _all_nodes(subgraph)


@dataclass
class _GraphCost:
    """What costing one (sub)graph produced."""

    layers: list[LayerCost] = field(default_factory=list)
    unknown: list[UnknownOp] = field(default_factory=list)


class _Profiler:
    def __init__(self, prepared: PreparedGraph, registry: OpRegistry) -> None:
        self.prepared = prepared
        self.registry = registry

    def run(self, label: str, model: ModelProto) -> Profile:
        prepared = self.prepared
        graph_outputs = [o.name for o in prepared.graph.output]
        constant_nodes = prepared.constant_nodes
        folds = find_folds(prepared.nodes, prepared.tensors, set(graph_outputs), constant_nodes)
        result = self.cost_graph(prepared, constant_nodes, folds, prefix="")
        runtime = [i for i in range(len(prepared.nodes)) if i not in constant_nodes]
        peak, missing = peak_activation_bytes(
            prepared.nodes, prepared.tensors, runtime, folds.keys(), prepared.real_inputs, graph_outputs
        )
        notes = list(prepared.notes)
        if missing:
            notes.append(f"peak activation memory unknown: size of {len(missing)} tensor(s) not resolved, e.g. {missing[0]!r}")
        return Profile(
            model_name=label,
            layers=tuple(result.layers),
            totals=_totals(result.layers, peak),
            unknown=tuple(result.unknown),
            inputs={n: prepared.tensors[n].shape for n in prepared.real_inputs if prepared.tensors[n].shape is not None},
            notes=tuple(notes),
            opset=next((op.version for op in model.opset_import if op.domain in ("", "ai.onnx")), 0),
            ir_version=model.ir_version,
        )

    def cost_graph(self, prepared: PreparedGraph, constant_nodes: set[int], folds: dict[int, str], prefix: str) -> _GraphCost:
        result = _GraphCost()
        params = _ParamAttribution(prepared, constant_nodes)
        seen_names: dict[str, int] = {}
        for index, node in enumerate(prepared.nodes):
            name = _unique(prefix + layer_name(node), seen_names)
            if index in constant_nodes:
                result.layers.append(_constant_layer(name, node, prepared.tensors))
                continue
            param_count, param_bytes = params.claim(index)
            view = prepared.view(node)
            if index in folds:
                layer = _layer(name, view, OpCost(note=folds[index]), FOLDED, param_count, param_bytes, traffic=False)
            else:
                layer = self.cost_node(node, view, name, prepared, param_count, param_bytes, result)
            result.layers.append(layer)
        return result

    def cost_node(self, node: NodeProto, view: NodeView, name: str, prepared: PreparedGraph,
                  param_count: int, param_bytes: int, result: _GraphCost) -> LayerCost:
        if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute):
            return self.cost_control_flow(node, view, name, prepared, param_count, param_bytes, result)
        entry = self.registry.lookup(node.op_type, node.domain)
        if entry is None:
            reason = f"no cost rule for {(node.domain or 'ai.onnx')}::{node.op_type}"
            result.unknown.append(UnknownOp(node.op_type, view.domain, name, reason))
            return _unknown_layer(name, view, UNKNOWN, reason, param_count, param_bytes)
        try:
            cost = entry.cost(view)
        except UnresolvedShape as error:
            unknown_inputs = prepared.describe_unknown_inputs(node)
            reason = f"{error}" + (f" (input shapes not resolved: {unknown_inputs})" if unknown_inputs else "")
            result.unknown.append(UnknownOp(node.op_type, view.domain, name, reason, UNRESOLVED))
            return _unknown_layer(name, view, UNRESOLVED, reason, param_count, param_bytes)
        except UnsupportedAttributes as error:
            result.unknown.append(UnknownOp(node.op_type, view.domain, name, str(error)))
            return _unknown_layer(name, view, UNKNOWN, str(error), param_count, param_bytes)
        except Exception as error:  # a malformed node (group=0, say): this layer is not counted, the rest is
            reason = f"cost rule failed: {type(error).__name__}: {error}"
            result.unknown.append(UnknownOp(node.op_type, view.domain, name, reason))
            return _unknown_layer(name, view, UNKNOWN, reason, param_count, param_bytes)
        no_copy = node.op_type in NO_COPY_OPS and view.domain == ""
        return _layer(name, view, cost, FREE if entry.free else COSTED, param_count, param_bytes, traffic=not no_copy)

    def cost_control_flow(self, node: NodeProto, view: NodeView, name: str, prepared: PreparedGraph,
                          param_count: int, param_bytes: int, result: _GraphCost) -> LayerCost:
        """If: the larger branch. Loop: body x trip count. Scan: body x scan length."""
        bodies: list[tuple[str, _GraphCost]] = []
        for attribute in node.attribute:
            subgraphs = [attribute.g] if attribute.type == AttributeProto.GRAPH else list(attribute.graphs)
            for subgraph in subgraphs:
                bodies.append((attribute.name, self.cost_subgraph(subgraph, prepared, f"{name}/{attribute.name}/")))
        inner_unknown = [u for _, body in bodies for u in body.unknown]
        if inner_unknown:
            result.unknown.extend(inner_unknown)
            return _unknown_layer(name, view, UNKNOWN, f"{len(inner_unknown)} op(s) inside {node.op_type} not counted", param_count, param_bytes)
        sums = [(attr, sum(l.macs or 0 for l in body.layers), sum(l.flops or 0 for l in body.layers),
                 sum(l.params for l in body.layers), sum(l.param_bytes for l in body.layers)) for attr, body in bodies]
        try:
            repeat, chosen, note = _control_flow_plan(node, view, sums)
        except UnresolvedShape as error:
            result.unknown.append(UnknownOp(node.op_type, view.domain, name, str(error), UNRESOLVED))
            return _unknown_layer(name, view, UNRESOLVED, str(error), param_count, param_bytes)
        except (IndexError, ValueError, UnsupportedAttributes) as error:  # e.g. an empty trip count
            reason = f"cannot count {node.op_type}: {error or type(error).__name__}"
            result.unknown.append(UnknownOp(node.op_type, view.domain, name, reason))
            return _unknown_layer(name, view, UNKNOWN, reason, param_count, param_bytes)
        cost = OpCost(macs=sum(s[1] for s in chosen) * repeat, flops=sum(s[2] for s in chosen) * repeat, note=note)
        inner_params = sum(s[3] for s in sums)
        inner_bytes = sum(s[4] for s in sums)
        return _layer(name, view, cost, COSTED, param_count + inner_params, param_bytes + inner_bytes, traffic=True)

    def cost_subgraph(self, graph: GraphProto, outer: PreparedGraph, prefix: str) -> _GraphCost:
        tensors = collect_tensors(graph, outer.tensors)
        nodes = topological_order(graph, outer.tensors.keys())
        constant_nodes, roots = propagate_constants(nodes, tensors)
        prepared = PreparedGraph(graph, tensors, nodes, [i.name for i in graph.input], [], roots, constant_nodes, outer.opsets)
        folds = find_folds(nodes, tensors, {o.name for o in graph.output}, constant_nodes)
        return self.cost_graph(prepared, constant_nodes, folds, prefix)


def _control_flow_plan(node: NodeProto, view: NodeView, sums: list[tuple]) -> tuple[int, list[tuple], str]:
    if node.op_type == "If":
        largest = max(sums, key=lambda s: (s[1], s[2]))
        return 1, [largest], f"larger branch ({largest[0]})"
    if node.op_type == "Loop":
        if not view.has_input(0):
            raise UnresolvedShape(f"{view.name}:trip_count", "trip count (no maximum given)")
        trips = int(view.input_value(0).reshape(-1)[0])
        return trips, sums, f"body x {trips} iterations"
    if node.op_type == "Scan":
        num_scan_inputs = int(view.attr("num_scan_inputs", 0))
        state_count = len(node.input) - num_scan_inputs
        axes = list(view.attr("scan_input_axes", []) or [0] * num_scan_inputs)
        shape = view.input_shape(state_count)
        axis = axes[0] if axes else 0
        length = shape[axis if axis >= 0 else axis + len(shape)]
        return length, sums, f"body x {length} iterations"
    raise UnsupportedAttributes(f"{node.op_type} with a subgraph has no counting rule")


class _ParamAttribution:
    """Each stored constant (initializer, Constant, ConstantOfShape output) is a parameter of the
    first runtime layer that uses it as data (not as a shape/axes input), counted once."""

    def __init__(self, prepared: PreparedGraph, constant_nodes: set[int]) -> None:
        self.prepared = prepared
        self.constant_nodes = constant_nodes
        self.roots_of: dict[str, frozenset[str]] = {name: frozenset({name}) for name in prepared.weight_roots}
        self.claimed: set[str] = set()
        for index, node in enumerate(prepared.nodes):
            if index in constant_nodes:
                derived = self._data_roots(node)
                for output in node.output:
                    if output and output not in self.roots_of:
                        self.roots_of[output] = derived

    def _data_roots(self, node: NodeProto) -> frozenset[str]:
        skip = _SHAPE_INPUTS.get(node.op_type, frozenset()) if node.domain in ("", "ai.onnx") else frozenset()
        roots: set[str] = set()
        for position, name in enumerate(node.input):
            if name and position not in skip:
                roots |= self.roots_of.get(name, frozenset())
        return frozenset(roots)

    def claim(self, index: int) -> tuple[int, int]:
        if index in self.constant_nodes:
            return 0, 0
        new = self._data_roots(self.prepared.nodes[index]) - self.claimed
        self.claimed |= new
        count = total_bytes = 0
        for root in new:
            info = self.prepared.weight_roots[root]
            if info.shape is None:
                continue
            count += info.numel or 0
            total_bytes += info.nbytes or 0
        return count, total_bytes


def _unique(name: str, seen: dict[str, int]) -> str:
    count = seen.get(name, 0) + 1
    seen[name] = count
    return name if count == 1 else f"{name}#{count}"


def _sum_bytes(tensors: Sequence[Optional[TensorInfo]]) -> Optional[int]:
    total = 0
    for tensor in tensors:
        if tensor is None:
            continue
        if tensor.nbytes is None:
            return None
        total += tensor.nbytes
    return total


def _layer(name: str, view: NodeView, cost: OpCost, status: str, params: int, param_bytes: int, traffic: bool) -> LayerCost:
    output_bytes = _sum_bytes(view.outputs)
    return LayerCost(
        name=name, op_type=view.op_type, domain=view.domain, macs=cost.macs, flops=cost.flops,
        params=params, param_bytes=param_bytes, output_bytes=output_bytes,
        bytes_read=_sum_bytes(view.inputs) if traffic else 0,
        bytes_written=output_bytes if traffic else 0,
        status=status, note=cost.note,
    )


def _constant_layer(name: str, node: NodeProto, tensors: Mapping[str, TensorInfo]) -> LayerCost:
    outputs = [tensors.get(n, TensorInfo(n, None)) for n in node.output if n]
    return LayerCost(
        name=name, op_type=node.op_type, domain="" if node.domain == "ai.onnx" else node.domain,
        macs=0, flops=0, params=0, param_bytes=0, output_bytes=_sum_bytes(outputs),
        bytes_read=0, bytes_written=0, status=CONSTANT, note="computed before the graph runs",
    )


def _unknown_layer(name: str, view: NodeView, status: str, reason: str, params: int, param_bytes: int) -> LayerCost:
    output_bytes = _sum_bytes(view.outputs)
    return LayerCost(
        name=name, op_type=view.op_type, domain=view.domain, macs=None, flops=None,
        params=params, param_bytes=param_bytes, output_bytes=output_bytes,
        bytes_read=_sum_bytes(view.inputs), bytes_written=output_bytes, status=status, note=reason,
    )


def _totals(layers: Sequence[LayerCost], peak: Optional[int]) -> Totals:
    runtime = [layer for layer in layers if layer.status != CONSTANT]
    new_buffers = [l for l in runtime if l.status != FOLDED and not (l.op_type in ALIAS_OPS and l.domain == "")]
    return Totals(
        macs=sum(l.macs or 0 for l in runtime),
        flops=sum(l.flops or 0 for l in runtime),
        params=sum(l.params for l in layers),
        param_bytes=sum(l.param_bytes for l in layers),
        peak_activation_bytes=peak,
        activation_bytes=sum(l.output_bytes or 0 for l in new_buffers),
        bytes_read=sum(l.bytes_read or 0 for l in runtime),
        bytes_written=sum(l.bytes_written or 0 for l in runtime),
    )
