"""profile_model: ONNX file or ModelProto -> Profile (per-layer costs, totals, memory, unknowns)."""
from __future__ import annotations

import gc
import math
import os
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter, itemgetter
from typing import NamedTuple, Optional, Sequence, Union

import numpy as np
import onnx
from onnx import GraphProto, ModelProto

from . import ops  # noqa: F401  (fills the default registry)
from .errors import ModelError
from .fusion import find_folds
from .graph import (
    InputShapes,
    PreparedGraph,
    declared_opsets,
    installed_opset,
    newer_than_installed,
    prepare_graph,
    prepare_small_file,
)
from .loader import load_skeleton, read_small_file, skeleton_of, strip_model
from .memory import peak_activation_bytes
from .registry import ALIAS, FROM_SHAPE, IN_PLACE, OTHER, REGISTRY, BodyCost, OpEntry, OpRegistry, normalize_domain
from .results import (
    BOUNDABLE_TOTAL_METRICS,
    CONSTANT,
    COSTED,
    FOLDED,
    FREE,
    UNKNOWN,
    UNRESOLVED,
    LayerCost,
    NodeSource,
    Profile,
    Totals,
    UnknownOp,
)
from .tables import NodeTable, numbered, shape_of
from .types import InputsDoNotFit, NodeView, OpCost, TensorInfo, UnresolvedShape, UnsupportedAttributes

ModelSource = Union[str, "os.PathLike[str]", ModelProto]
_NOTHING_CLAIMED = (0, 0)
_root_name = itemgetter(1)
_NO_POSITIONS: frozenset[int] = frozenset()


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
    the inputs in order; `batch` sets each input's batch dim (found by its symbolic name, else
    the leading dim of inputs of rank >= 2 where it is symbolic or 1). Weights are never read.
    Raises ModelError naming the file.
    """
    label = name or (os.fspath(model) if not isinstance(model, ModelProto) else (model.graph.name or "model"))
    collecting = gc.isenabled()
    # Profiling makes a few objects per node and no reference cycles: the cyclic collector would
    # walk all of them again and again, a cost growing faster than the graph (a third of the
    # time at 100,000 nodes).
    gc.disable()
    try:
        prepared = None
        data = read_small_file(model) if not isinstance(model, ModelProto) else None
        if data is not None and inputs is None and batch is None:
            prepared = prepare_small_file(data, registry or REGISTRY)
        if prepared is None:
            if isinstance(model, ModelProto):
                skeleton = strip_model(model)
            else:
                skeleton = skeleton_of(data) if data is not None else load_skeleton(model)
            check_opsets(skeleton)
            prepared = prepare_graph(skeleton, registry or REGISTRY, inputs, batch)
        return _Profiler(registry or REGISTRY).run(label, prepared)
    except ModelError as error:
        raise ModelError(f"{label}: {error}") from None
    finally:
        if collecting:
            gc.enable()


def check_opsets(model: ModelProto) -> None:
    """Refuse graphs newer than the installed onnx and nodes from undeclared domains."""
    declared = declared_opsets(model.opset_import)
    if newer_than_installed(declared):
        raise ModelError(
            f"uses opset {declared['']} of ai.onnx, newer than the installed onnx {onnx.__version__} "
            f"supports (up to {installed_opset()}); upgrade the onnx package"
        )
    check_domains(model.graph, set(declared), {(f.domain, f.name) for f in model.functions})


def check_domains(graph: GraphProto, declared: set[str], local_functions: set[tuple[str, str]]) -> None:
    """Every node's domain is declared (or names a local function). Subgraphs are checked when
    they are costed."""
    if all(normalize_domain(domain) in declared for domain in {node.domain for node in graph.node}):
        return
    for node in graph.node:
        if normalize_domain(node.domain) not in declared and (node.domain, node.op_type) not in local_functions:
            label = node.name or (node.output[0] if node.output else node.op_type)
            raise ModelError(f"node {label!r} uses op {node.op_type!r} from domain {node.domain!r}, "
                             "which the model does not declare in opset_import")


@dataclass
class _GraphCost:
    """What costing one (sub)graph produced."""

    layers: list[LayerCost] = field(default_factory=list)
    runtime_layers: list[LayerCost] = field(default_factory=list)  # all but the constants (whose counts are all 0)
    unknown: list[UnknownOp] = field(default_factory=list)
    new_buffers: list[LayerCost] = field(default_factory=list)  # runtime layers that allocate their output
    sources: dict[str, NodeSource] = field(default_factory=dict)  # layer name -> where the file says it came from
    carried_changes: Optional[str] = None  # a Loop body's carried value whose shape differs from its input's


class _Profiler:
    def __init__(self, registry: OpRegistry) -> None:
        self.registry = registry
        self.attributions: list[_ParamAttribution] = []  # of the graphs being costed, the innermost last
        self.unsized_params: list[str] = []  # stored tensors read as data whose size is not known

    def run(self, label: str, prepared: PreparedGraph) -> Profile:
        folds = find_folds(prepared)
        result = self.cost_graph(prepared, folds, prefix="")
        peak = peak_activation_bytes(prepared, folds.keys())
        notes = list(prepared.notes)
        if peak.missing:
            notes.append(f"peak activation memory unknown: size of {len(peak.missing)} tensor(s) not resolved, "
                         f"e.g. {peak.missing[0]!r}")
        if self.unsized_params:
            notes.append(f"params incomplete: {len(self.unsized_params)} stored tensor(s) that layers read have no "
                         f"known size and are not counted, e.g. {self.unsized_params[0]!r}")
        totals, incomplete = _totals(result, peak.bytes, peak.bound)
        unsized_layers = _layers_of_unknown_bytes(result) if incomplete & _BYTE_TOTALS else []
        if unsized_layers:
            notes.append(f"memory traffic incomplete: {len(unsized_layers)} counted layer(s) read or write tensors of "
                         f"unknown size, left out of the byte totals, e.g. {unsized_layers[0]!r}")
        values = prepared.values
        return Profile(
            model_name=label,
            layers=tuple(result.layers),
            totals=totals,
            unknown=tuple(result.unknown),
            inputs={n: values[n].shape for n in prepared.real_inputs if values[n].shape is not None},  # type: ignore[misc]
            notes=tuple(notes),
            opset=prepared.opsets.get("", 0),
            ir_version=prepared.context.ir_version,
            sources=result.sources,
        )

    def cost_graph(self, prepared: PreparedGraph, folds: dict[int, str], prefix: str) -> _GraphCost:
        # a body is costed inside the loop over the graph around it: that graph's attribution is the last
        outer = self.attributions[-1] if prepared.outer is not None and self.attributions else None
        params = _ParamAttribution(prepared, outer, self.unsized_params)
        self.attributions.append(params)
        try:
            return self._cost_nodes(prepared, folds, prefix, params)
        finally:
            self.attributions.pop()
            # (the roots name their attribution: a cycle, which would leave every table of the
            # graph to the cyclic collector after profiling)
            params.roots.clear()
            if outer is None:
                params.claimed.clear()

    def _cost_nodes(self, prepared: PreparedGraph, folds: dict[int, str], prefix: str,
                    params: "_ParamAttribution") -> _GraphCost:
        """One row per node. The rows of constants, of free ops and of ops costing a fixed number
        of FLOPs per output element (most nodes of a transformer) are made here, in the loop: a
        function call or two per node would be a third of its time."""
        result = _GraphCost()
        table, values, constant_nodes = prepared.table, prepared.values, prepared.constant_nodes
        layers, runtime_layers, new_buffers = result.layers, result.runtime_layers, result.new_buffers
        inputs_of, outputs_of, op_types, domains, sources = (table.inputs, table.outputs, table.op_types,
                                                             table.domains, table.sources)
        size_of, numel, new_row = values.sizes.__getitem__, values.numel, LayerCost.of
        claim, constants = params.claim, values.constants
        # (in a body every input may be a constant of the graph around; and a body is an upper
        # bound when the graph around has one)
        in_body = prepared.outer is not None
        bounded = values.bounded
        entries = prepared.entries
        rule_of = {id(entry): _quick_rule(entry) for entry in prepared.op_entries}
        rules = [rule_of.get(id(entry)) for entry in entries]  # (None for a node with no entry)
        for index, name in enumerate(_layer_names(table, prefix)):
            if sources and index in sources:
                result.sources[name] = NodeSource(sources[index], tuple(inputs_of[index]))
            outputs = outputs_of[index]
            try:  # the usual case, in C: every size recorded (see _bytes_of)
                output_bytes = sum(map(size_of, outputs)) if "" not in outputs else _bytes_of(prepared, outputs)
            except (TypeError, KeyError):
                output_bytes = _bytes_of(prepared, outputs)
            if index in constant_nodes:
                row = _CONSTANT_LAYER.copy()
                row["name"], row["op_type"], row["domain"] = name, op_types[index], domains[index]
                row["output_bytes"] = output_bytes
                layers.append(new_row(row))
                continue
            inputs = inputs_of[index]
            claimed = claim(index) if in_body or not constants.isdisjoint(inputs) else _NOTHING_CLAIMED
            if index in folds:
                layer = _layer(prepared, index, name, OpCost(note=folds[index]), FOLDED, claimed, traffic=False,
                               op_class=self.op_class(prepared, index))
                layers.append(layer)
                runtime_layers.append(layer)
                continue
            rule = rules[index]
            flops: Optional[int] = None
            if rule is not None:
                if rule.flops_per_output is None:
                    flops = 0
                elif outputs and outputs[0]:
                    elements = numel(outputs[0])
                    flops = None if elements is None else rule.flops_per_output * elements
            if flops is None:  # the op's rule, which reports what is missing
                layer = self.cost_node(prepared, index, name, claimed, result)
            else:
                # (before the check below: working out a constant's size can find a bound)
                bytes_read = _bytes_read(prepared, inputs) if rule.traffic else 0
                if not (prepared.any_bounded if in_body else bounded):  # (asked each time: a rule reading a value can make one bounded)
                    layer = new_row({
                        "name": name, "op_type": op_types[index], "domain": domains[index], "macs": 0, "flops": flops,
                        "params": claimed[0], "param_bytes": claimed[1], "output_bytes": output_bytes,
                        "bytes_read": bytes_read, "bytes_written": output_bytes if rule.traffic else 0,
                        "status": rule.status, "note": "", "op_class": rule.op_class, "upper_bounds": (),
                    })
                else:
                    layer = _layer(prepared, index, name, OpCost(0, flops), rule.status, claimed, traffic=rule.traffic,
                                   op_class=rule.op_class, read_a_bound=False)
            entry = entries[index]
            if entry is None or entry.traits.buffer != ALIAS:  # a view allocates nothing
                new_buffers.append(layer)
            layers.append(layer)
            runtime_layers.append(layer)
        return result

    def op_class(self, prepared: PreparedGraph, index: int, view: Optional[NodeView] = None) -> str:
        entry = prepared.entry(index)
        if entry is None:
            return OTHER
        op_class = entry.traits.op_class
        if not callable(op_class):
            return op_class
        try:
            return op_class(view or prepared.view(index))
        except Exception:  # a malformed node: its class is the class of its op's family
            return OTHER

    def cost_node(self, prepared: PreparedGraph, index: int, name: str, params: tuple[int, int],
                  result: _GraphCost) -> LayerCost:
        entry = prepared.entries[index]
        if entry is None:
            table = prepared.table
            reason = f"no cost rule for {table.domains[index] or 'ai.onnx'}::{table.op_types[index]}"
            return self.unknown(prepared, index, name, UNKNOWN, reason, params, result)
        if entry.body_cost is not None:
            return self.cost_control_flow(prepared, index, name, entry, params, result)
        return self.cost_by_rule(prepared, index, name, entry, params, result)

    def cost_by_rule(self, prepared: PreparedGraph, index: int, name: str, entry: OpEntry, params: tuple[int, int],
                     result: _GraphCost) -> LayerCost:
        """The op's cost function on the node's view; a rule that fails leaves the layer uncounted.
        A rule missing the shape of a constant input that onnx's inference left unknown runs again
        once that shape is worked out (a ModelError there names the node, as for any constant)."""
        view, watches, outcome = _run_rule(prepared, index, entry)
        if isinstance(outcome, UnresolvedShape) and _work_out_constant_shapes(prepared, prepared.table.inputs[index]):
            view, watches, outcome = _run_rule(prepared, index, entry)
        if isinstance(outcome, UnresolvedShape):
            return self.unknown(prepared, index, name, UNRESOLVED, _unresolved_reason(prepared, index, outcome), params,
                                result)
        if isinstance(outcome, (UnsupportedAttributes, InputsDoNotFit)):
            return self.unknown(prepared, index, name, UNKNOWN, str(outcome), params, result)
        if isinstance(outcome, Exception):  # a malformed node (group=0, say): this layer is not counted, the rest is
            reason = f"cost rule failed: {type(outcome).__name__}: {outcome}"
            return self.unknown(prepared, index, name, UNKNOWN, reason, params, result)
        cost = outcome
        if (cost.macs or 0) < 0 or (cost.flops or 0) < 0:  # attributes no valid node has (a negative kernel)
            reason = f"the attributes do not describe a valid {prepared.table.op_types[index]} (the count would be negative)"
            return self.unknown(prepared, index, name, UNKNOWN, reason, params, result)
        read_a_bound = any(watch.read for watch in watches)  # (by the cost rule, not by op_class below)
        return _layer(prepared, index, name, cost, FREE if entry.free else COSTED, params,
                      traffic=not _shares_buffer(entry), op_class=self.op_class(prepared, index, view),
                      read_a_bound=read_a_bound)

    def unknown(self, prepared: PreparedGraph, index: int, name: str, status: str, reason: str,
                params: tuple[int, int], result: _GraphCost) -> LayerCost:
        table = prepared.table
        result.unknown.append(UnknownOp(table.op_types[index], table.domains[index], name, reason, status))
        inputs, outputs = _infos(prepared, table.inputs[index]), _infos(prepared, table.outputs[index])
        output_bytes = _sum_bytes(outputs)
        return LayerCost.of({
            "name": name, "op_type": table.op_types[index], "domain": table.domains[index], "macs": None,
            "flops": None, "params": params[0], "param_bytes": params[1], "output_bytes": output_bytes,
            "bytes_read": _sum_bytes(inputs), "bytes_written": output_bytes, "status": status, "note": reason,
            "op_class": self.op_class(prepared, index),
            "upper_bounds": _bytes_bounds(prepared, inputs, outputs, output_bytes, _sum_bytes(inputs), output_bytes),
        })

    def cost_control_flow(self, prepared: PreparedGraph, index: int, name: str, entry: OpEntry,
                          params: tuple[int, int], result: _GraphCost) -> LayerCost:
        """Cost each body as a graph of its own, then the op's rule on the bodies' sums."""
        op_type = prepared.table.op_types[index]
        mismatch = _loop_start_mismatch(prepared, index) if op_type == "Loop" else None
        if mismatch is not None:
            reason = (f"{mismatch}: the body was exported for other input dims, so its cost per iteration "
                      "is not known")
            return self.unknown(prepared, index, name, UNRESOLVED, reason, params, result)
        bodies: list[BodyCost] = []
        bodies_costs: list[_GraphCost] = []
        inner_unknown: list[UnknownOp] = []
        for attribute in prepared.table.protos[index].attribute:
            subgraphs = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
            for subgraph in subgraphs:
                body = self.cost_subgraph(subgraph, prepared, f"{name}/{attribute.name}/",
                                          loop=attribute.name == "body" and prepared.table.op_types[index] == "Loop")
                bodies_costs.append(body)
                inner_unknown.extend(body.unknown)
                result.sources.update(body.sources)
                bodies.append(_body_cost(attribute.name, subgraph, body))
        # the weights the bodies used first are this row's, whether it is counted or not: they are claimed
        params = (params[0] + sum(body.params for body in bodies),
                  params[1] + sum(body.param_bytes for body in bodies))
        changed = next((body.carried_changes for body in bodies_costs if body.carried_changes), None)
        if changed is not None and not inner_unknown:
            reason = (f"{changed}: the shape of a loop-carried value may change from one iteration to the next, "
                      "so the cost of the later iterations is not known")
            return self.unknown(prepared, index, name, UNRESOLVED, reason, params, result)
        if inner_unknown:
            result.unknown.extend(inner_unknown)
            reason = f"{len(inner_unknown)} op(s) inside {op_type} not counted"
            return self.unknown(prepared, index, name, UNKNOWN, reason, params, result)
        view = prepared.view(index)
        try:
            cost = entry.body_cost(view, bodies)  # type: ignore[misc]
        except UnresolvedShape as error:
            return self.unknown(prepared, index, name, UNRESOLVED, str(error), params, result)
        except (IndexError, ValueError, StopIteration, UnsupportedAttributes) as error:  # e.g. an empty trip count
            reason = f"cannot count {op_type}: {error or type(error).__name__}"
            return self.unknown(prepared, index, name, UNKNOWN, reason, params, result)
        return _layer(prepared, index, name, cost, COSTED, params,
                      traffic=True, op_class=entry.traits.class_of(view))

    def cost_subgraph(self, graph: GraphProto, outer: PreparedGraph, prefix: str, loop: bool = False) -> _GraphCost:
        check_domains(graph, set(outer.opsets), set())
        prepared = PreparedGraph(graph, outer.context, outer=outer)
        costed = self.cost_graph(prepared, find_folds(prepared), prefix)
        if loop:
            costed.carried_changes = _carried_change(prepared, graph)
        # what the body's pass noted (a bound, a hard-coded shape) reaches the report, named by where it is
        outer.notes.extend(f"{prefix.rstrip('/')}: {note}" for note in prepared.notes)
        return costed


def _unresolved_reason(prepared: PreparedGraph, index: int, error: UnresolvedShape) -> str:
    """What is missing, and why: the node's inputs whose shapes are not resolved, else what onnx's
    shape inference said of the node's inputs (they do not fit the op)."""
    unknown_inputs = prepared.describe_unknown_inputs(index)
    if unknown_inputs:
        return f"{error} (input shapes not resolved: {unknown_inputs})"
    refused = prepared.inference_errors.get(index)
    if refused is not None:
        return f"{error}: onnx's shape inference refuses the node's inputs ({refused})"
    return str(error)


def _loop_start_mismatch(prepared: PreparedGraph, index: int) -> Optional[str]:
    """A Loop's carried input whose known shape differs from the shape its body declares for it
    (a body exported at batch 1, profiled with --batch 2): the body's shapes are not the run's."""
    body = next((attribute.g for attribute in prepared.table.protos[index].attribute if attribute.name == "body"), None)
    if body is None:
        return None
    for outer_name, declared in zip(prepared.table.inputs[index][2:], list(body.input)[2:]):
        outer_shape = prepared.values.shape(outer_name) if outer_name else None
        declared_shape = shape_of(declared.type)
        if outer_shape is not None and declared_shape is not None and tuple(outer_shape) != tuple(declared_shape):
            return (f"{outer_name!r} is {list(outer_shape)} going in where the body declares {declared.name!r} "
                    f"as {list(declared_shape)}")
    return None


def _carried_change(prepared: PreparedGraph, body: GraphProto) -> Optional[str]:
    """A Loop body's carried output (after the condition) whose shape differs from the shape its
    body input declares, or is not known where that one is: the next iteration may then run on
    another shape."""
    carried_inputs = list(body.input)[2:]
    carried_outputs = list(body.output)[1:1 + len(carried_inputs)]
    body_names = {value_info.name for value_info in body.input} | set(prepared.values.initializers)
    for declared, output in zip(carried_inputs, carried_outputs):
        before = prepared.values.shape(declared.name)
        after = prepared.values.shape(output.name)
        if (after is None and prepared.outer is not None and output.name not in prepared.table.producer
                and output.name not in body_names):
            after = prepared.outer.values.shape(output.name)  # a value of the graph around, returned as it is
        if before is not None and after is None:
            return f"{output.name!r} has no known shape where {declared.name!r} is {list(before)}"
        if before is not None and after is not None and tuple(before) != tuple(after):
            return f"{output.name!r} is {list(after)} where {declared.name!r} is {list(before)}"
    return None


def _body_cost(attribute: str, graph: GraphProto, body: _GraphCost) -> BodyCost:
    layers = body.layers
    return BodyCost(
        attribute=attribute, graph=graph, macs=sum(layer.macs or 0 for layer in layers),
        flops=sum(layer.flops or 0 for layer in layers), params=sum(layer.params for layer in layers),
        param_bytes=sum(layer.param_bytes for layer in layers),
        bound=any("macs" in layer.upper_bounds or "flops" in layer.upper_bounds for layer in layers),
    )


def _run_rule(prepared: PreparedGraph, index: int, entry: OpEntry) -> tuple[NodeView, list["_WatchedValue"],
                                                                          Union[OpCost, Exception]]:
    """The node's view, the watches on its bounded inputs, and what its cost rule gave or raised."""
    view = prepared.view(index)
    watches = _watch_bounded_values(view) if prepared.any_bounded else []
    try:
        return view, watches, entry.cost(view)
    except Exception as error:  # (sorted by cost_by_rule, which reads its type and message)
        # (without its traceback, whose frames lead back to the graph: a cycle left to the collector)
        error.__traceback__ = error.__context__ = error.__cause__ = None
        return view, watches, error


class _QuickRule(NamedTuple):
    """How cost_graph makes the row of a free op, or of an op costing a fixed number of FLOPs per
    output element, from the output's size, without a NodeView."""

    status: str
    flops_per_output: Optional[int]  # None: a free op
    traffic: bool  # it moves bytes (a view or an in-place op does not)
    op_class: str


def _quick_rule(entry: OpEntry) -> Optional[_QuickRule]:
    """The op's quick rule; None: its cost function decides."""
    if entry.body_cost is not None:
        return None
    traits = entry.traits
    if callable(traits.op_class):
        return None
    if entry.free:
        return _QuickRule(FREE, None, not _shares_buffer(entry), traits.op_class)
    if traits.flops_per_output is None:
        return None
    return _QuickRule(COSTED, traits.flops_per_output, True, traits.op_class)


def _shares_buffer(entry: Optional[OpEntry]) -> bool:
    """Views and in-place ops (Concat) move no bytes."""
    return entry is not None and entry.traits.buffer in (ALIAS, IN_PLACE)




_Root = tuple["_ParamAttribution", str]  # a stored tensor, by the attribution of the graph holding it


class _ParamAttribution:
    """Each stored constant (initializer, Constant, ConstantOfShape output) is a parameter of the
    first runtime layer that uses it as data (not as a shape/axes input), counted once in the
    whole model. A weight reached through constant-only ops (W -> Slice -> Concat -> MatMul) is
    counted at its source. A body (If, Loop, Scan) shares what is claimed with the graph around
    it, and a value of that graph which the body reads counts at its sources there: a weight used
    in both branches of an If, or by the graph and in a body, is counted once."""

    def __init__(self, prepared: PreparedGraph, outer: Optional["_ParamAttribution"], unsized: list[str]) -> None:
        self.prepared = prepared
        self.outer = outer
        self.unsized = unsized  # the model's stored tensors claimed whose size is not known (the profiler's list)
        self.claimed: set[_Root] = outer.claimed if outer is not None else set()
        self.roots: dict[str, frozenset[_Root]] = {}
        values = prepared.values
        main_graph = values.outer is None
        self.is_constant = values.constants.__contains__ if main_graph else values.is_constant

    def claim(self, index: int) -> tuple[int, int]:
        """(elements, bytes) of the stored constants node `index` is the first to use as data."""
        prepared = self.prepared
        entry = prepared.entries[index]
        skip = entry.traits.shape_inputs if entry is not None else _NO_POSITIONS
        count = total_bytes = 0
        stored, claimed, is_constant = prepared.values.stored, self.claimed, self.is_constant
        for position, name in enumerate(prepared.table.inputs[index]):
            if not name or position in skip or not is_constant(name):
                continue
            # (a weight read directly, most often; else its sources in order of name: a set's order
            # varies from run to run, and the profile names the first unsized)
            roots = ((self, name),) if name in stored else sorted(self.roots.get(name) or self.roots_of(name),
                                                                   key=_root_name)
            for root in roots:
                if root not in claimed:
                    claimed.add(root)
                    elements, size = self._size(root)
                    count += elements
                    total_bytes += size
        return (count, total_bytes) if count or total_bytes else _NOTHING_CLAIMED

    def _size(self, root: _Root) -> tuple[int, int]:
        """(elements, bytes) of a stored tensor; (0, 0), and its name kept, when its size is not known."""
        holder, tensor = root[0].prepared, root[1]
        shape = holder.values.shape(tensor)
        if shape is None:
            shape = holder.work_out_shape(tensor)
            if shape is None:
                self.unsized.append(tensor)
                return _NOTHING_CLAIMED
        return math.prod(shape), holder.values.nbytes(tensor) or 0

    def roots_of(self, name: str) -> frozenset[_Root]:
        """The stored tensors `name` is computed from, walking back through constant nodes."""
        known = self.roots.get(name)
        if known is not None:
            return known
        stack = [name]
        while stack:
            top = stack[-1]
            waiting = [n for n in self._sources(top) if n not in self.roots]
            if waiting:
                stack.extend(waiting)
                continue
            stack.pop()
            self.roots[top] = self._roots_from_sources(top)
        return self.roots[name]

    def _producer(self, name: str) -> Optional[int]:
        """The constant node computing `name` in this graph, if one does (and it is not stored)."""
        prepared = self.prepared
        index = prepared.table.producer.get(name)
        if index is None or index not in prepared.constant_nodes or prepared.values.is_stored(name):
            return None
        return index

    def _sources(self, name: str) -> list[str]:
        index = self._producer(name)
        if index is None:
            return []
        entry = self.prepared.entries[index]
        if entry is not None and entry.traits.constant == FROM_SHAPE:  # Shape(W) holds W's dims, not its data
            return []
        skip = entry.traits.shape_inputs if entry is not None else _NO_POSITIONS
        return [n for p, n in enumerate(self.prepared.table.inputs[index]) if n and p not in skip]

    def _roots_from_sources(self, name: str) -> frozenset[_Root]:
        prepared = self.prepared
        if name in prepared.values.stored:
            return frozenset({(self, name)})
        if _outer_constant(prepared, name):  # a value of the graph around: its sources there
            return self.outer.roots_of(name) if self.outer is not None else frozenset({(self, name)})
        roots: frozenset[_Root] = frozenset()
        for source in self._sources(name):
            roots |= self.roots[source]
        return roots


def _outer_constant(prepared: PreparedGraph, name: str) -> bool:
    """In a subgraph, a constant of the graph around it counts as stored (a captured weight)."""
    return (prepared.outer is not None and name not in prepared.table.producer
            and name not in prepared.values.declared and prepared.values.is_constant(name))


def _layer_names(table: NodeTable, prefix: str) -> list[str]:
    """Each node's layer name: its label, numbered where labels repeat."""
    return numbered([prefix + label for label in table.labels()])


def _infos(prepared: PreparedGraph, names: Sequence[str]) -> list[TensorInfo]:
    row = prepared.values.row
    return [row(name) for name in names if name]


def _bytes_of(prepared: PreparedGraph, names: Sequence[str]) -> Optional[int]:
    """Bytes of the named tensors together; None when one's size is not known."""
    if "" not in names:  # (an optional input or output left out; a value info may even declare "")
        try:  # the usual case, in C: every size already recorded
            return sum(map(prepared.values.sizes.__getitem__, names))
        except TypeError:  # a size recorded as None
            return None
        except KeyError:  # a size not recorded yet (an initializer, an outer value)
            pass
    nbytes = prepared.values.nbytes
    total = 0
    for name in names:
        if name:
            size = nbytes(name)
            if size is None:
                return None
            total += size
    return total


def _bytes_read(prepared: PreparedGraph, inputs: Sequence[str]) -> Optional[int]:
    """Bytes a runtime layer reads; a constant input whose shape onnx's inference left unknown
    has it worked out first (see _work_out_constant_shapes)."""
    total = _bytes_of(prepared, inputs)
    if total is None and _work_out_constant_shapes(prepared, inputs):
        total = _bytes_of(prepared, inputs)
    return total


def _work_out_constant_shapes(prepared: PreparedGraph, inputs: Sequence[str]) -> bool:
    """Work out the shapes of a node's constant inputs that onnx's inference left unknown (a
    position embedding gathered by a Range of the input's length) from the nodes computing them
    (PreparedGraph.work_out_shape). True when one was worked out."""
    values = prepared.values
    unsized = [name for name in inputs if name and values.shape(name) is None and prepared.is_valued(name)]
    return any([prepared.work_out_shape(name) is not None for name in unsized])  # (a list: each one, not the first)


def _sum_bytes(tensors: Sequence[TensorInfo]) -> Optional[int]:
    total = 0
    for tensor in tensors:
        nbytes = tensor.nbytes
        if nbytes is None:
            return None
        total += nbytes
    return total


def _bytes_bounds(prepared: PreparedGraph, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo],
                  output_bytes: Optional[int], bytes_read: Optional[int], bytes_written: Optional[int]) -> tuple[str, ...]:
    """The byte figures that are upper bounds: those of tensors whose shape is one (a tensor
    whose value alone is a bound, the Shape of NonZero's output, has exact bytes)."""
    bounds = []
    if _sizes_vary(prepared, outputs):
        bounds += [m for m, v in (("output_bytes", output_bytes), ("bytes_written", bytes_written)) if v]
    if bytes_read and _sizes_vary(prepared, inputs):
        bounds.append("bytes_read")
    return tuple(bounds)


def _sizes_vary(prepared: PreparedGraph, tensors: Sequence[TensorInfo]) -> bool:
    """Some tensor's shape is an upper bound (not only its value)."""
    return any(t.bounded and prepared.is_variable_length(t.name) for t in tensors)


def _upper_bounds(prepared: PreparedGraph, cost: OpCost, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo],
                  figures: tuple[Optional[int], Optional[int], Optional[int]], read_a_bound: bool) -> tuple[str, ...]:
    """The figures of a layer that are upper bounds: counts when the rule counts a worst case or
    when they follow from a bound (see _counts_vary); bytes of tensors whose shape is a bound.
    Zeros are exact."""
    if not cost.bound and not any(t.bounded for t in inputs) and not any(t.bounded for t in outputs):
        return ()
    counts = tuple(metric for metric, value in (("macs", cost.macs), ("flops", cost.flops)) if value)
    if not _counts_vary(prepared, inputs, outputs, read_a_bound):
        counts = () if not cost.bound else tuple(
            metric for metric in counts if cost.bound_metrics is None or metric in cost.bound_metrics)
    return counts + _bytes_bounds(prepared, inputs, outputs, *figures)


def _counts_vary(prepared: PreparedGraph, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo],
                 read_a_bound: bool) -> bool:
    """A node's counts follow from a bound when a tensor's shape is one, or when its rule read the
    value of an input that is one (`read_a_bound`). A Min of the Shape of NonZero's output and a
    constant counts exactly its one element."""
    return read_a_bound or _sizes_vary(prepared, inputs) or _sizes_vary(prepared, outputs)


class _WatchedValue(TensorInfo):
    """An input that is an upper bound, as a cost rule sees it: records that the rule read its value."""

    __slots__ = ("read",)

    @property
    def value(self) -> Optional[np.ndarray]:
        self.read = True
        return TensorInfo.value.fget(self)  # type: ignore[attr-defined]


def _watch_bounded_values(view: NodeView) -> list[_WatchedValue]:
    """Give the view watched copies of its inputs that are upper bounds."""
    watches: list[_WatchedValue] = []
    inputs = list(view.inputs)
    for position, tensor in enumerate(inputs):
        if tensor is not None and tensor.bounded:
            watch = inputs[position] = _WatchedValue.__new__(_WatchedValue)
            for slot in TensorInfo.__slots__:
                setattr(watch, slot, getattr(tensor, slot))
            watch.read = False
            watches.append(watch)
    if watches:
        view.inputs = tuple(inputs)
    return watches


def _layer(prepared: PreparedGraph, index: int, name: str, cost: OpCost, status: str, params: tuple[int, int],
           traffic: bool, op_class: str, read_a_bound: bool = True) -> LayerCost:
    """A counted layer's row. `read_a_bound`: the count may come from the value of an input that
    is an upper bound (False when the rule did not read one, see _watch_bounded_values)."""
    table = prepared.table
    output_bytes = _bytes_of(prepared, table.outputs[index])
    bytes_read = _bytes_read(prepared, table.inputs[index]) if traffic else 0
    bytes_written = output_bytes if traffic else 0
    bounds: tuple[str, ...] = ()
    if cost.bound or prepared.any_bounded:
        inputs, outputs = _infos(prepared, table.inputs[index]), _infos(prepared, table.outputs[index])
        bounds = _upper_bounds(prepared, cost, inputs, outputs, (output_bytes, bytes_read, bytes_written), read_a_bound)
    return LayerCost.of({
        "name": name, "op_type": table.op_types[index], "domain": table.domains[index], "macs": cost.macs,
        "flops": cost.flops, "params": params[0], "param_bytes": params[1], "output_bytes": output_bytes,
        "bytes_read": bytes_read, "bytes_written": bytes_written, "status": status, "note": cost.note,
        "op_class": op_class, "upper_bounds": bounds,
    })


# The fields every constant layer shares: each one is a copy with its own name, op and size.
_CONSTANT_LAYER = {
    "name": "", "op_type": "", "domain": "", "macs": 0, "flops": 0, "params": 0, "param_bytes": 0, "output_bytes": 0,
    "bytes_read": 0, "bytes_written": 0, "status": CONSTANT, "note": "computed before the graph runs",
    "op_class": OTHER, "upper_bounds": (),
}


_BYTE_TOTALS = {"bytes_read", "bytes_written", "output_bytes"}  # (output_bytes: of the layers allocating their output)


def _layers_of_unknown_bytes(result: _GraphCost) -> list[str]:
    """The counted layers whose bytes read, written or allocated are not known (a Pad by a
    computed amount): the byte totals leave them out. Unknown layers are reported as such."""
    allocating = set(map(id, result.new_buffers))
    return [layer.name for layer in result.runtime_layers if layer.counted and (
        layer.bytes_read is None or layer.bytes_written is None or (layer.output_bytes is None and id(layer) in allocating))]


_SUMMED_METRICS = ("macs", "flops", "params", "param_bytes", "bytes_read", "bytes_written")
_summed_figures = attrgetter(*_SUMMED_METRICS)


def _totals(result: _GraphCost, peak: Optional[int], peak_bound: bool) -> tuple[Totals, set[str]]:
    """The totals, and the metrics some layer's figure is missing from (not known: left out)."""
    layers = result.runtime_layers  # (a constant layer's counts are all 0 and it has no bounds)
    incomplete: set[str] = set()

    def total(metric: str, values: Sequence[Optional[int]]) -> int:
        try:
            return sum(values)
        except TypeError:  # a None: not known
            incomplete.add(metric)
            return sum(filter(None, values))

    # (one column per metric, in C: zip over each layer's figures)
    columns = list(zip(*map(_summed_figures, layers))) or [()] * len(_SUMMED_METRICS)
    sums = {metric: total(metric, column) for metric, column in zip(_SUMMED_METRICS, columns)}
    bounds: set[str] = set(chain.from_iterable(map(attrgetter("upper_bounds"), layers)))
    if "output_bytes" in bounds and any("output_bytes" in layer.upper_bounds for layer in result.new_buffers):
        bounds.add("activation_bytes")
    if peak_bound and peak:
        bounds.add("peak_activation_bytes")
    if bounds & {"bytes_read", "bytes_written"}:
        bounds.add("memory_traffic_bytes")
    return Totals(
        peak_activation_bytes=peak,
        activation_bytes=total("output_bytes", list(map(attrgetter("output_bytes"), result.new_buffers))),
        upper_bounds=tuple(metric for metric in BOUNDABLE_TOTAL_METRICS if metric in bounds),
        **sums,
    ), incomplete
