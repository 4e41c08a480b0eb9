"""Control flow: `If`, `Loop` and `Scan`, costed from the cost of their bodies.

The profiler costs each subgraph like a graph of its own (the outer graph's tensors visible)
and hands the sums to these rules:

- If: the branch a constant condition selects; otherwise each count (MACs, FLOPs) at its
  largest over the branches, an upper bound where the branches differ; each output at the
  larger of the branches' shapes.
- Loop: the body times the trip count M. It is exact when the loop cannot stop early (no
  condition, or a constant true one that the body passes through unchanged); otherwise M is the
  most it can run and the count is an upper bound. Without a known M it is unresolved. A scan
  output is [M, *body output], exact or an upper bound likewise.
- Scan: the body times the length of the first scan input along its scan axis.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
from onnx import GraphProto, numpy_helper

from ..registry import BodyCost, Known, TypedShape, register_control_flow
from ..tables import shape_of
from ..types import NodeView, OpCost, Shape, UnresolvedShape, UnsupportedAttributes
from ._common import normalize_axis

# M of a Loop that only its condition ends: exporters write the largest int64.
NO_TRIP_LIMIT = np.iinfo(np.int64).max


def _scaled(bodies: Sequence[BodyCost], repeat: int, note: str, bound: bool) -> OpCost:
    macs = sum(body.macs for body in bodies) * repeat
    flops = sum(body.flops for body in bodies) * repeat
    return OpCost(macs=macs, flops=flops, note=note, bound=bound or any(body.bound for body in bodies))


def _constant_condition(node: NodeView) -> Optional[bool]:
    condition = node.input(0).value if node.has_input(0) else None
    if condition is not None and condition.size == 1 and not node.input(0).bounded:
        return bool(condition.reshape(-1)[0])
    return None


def _body_outputs(body: Optional[GraphProto]) -> list[Optional[tuple[Shape, int]]]:
    """Each output of a body: (its shape, element type), or None where the shape is not known."""
    if body is None:
        return []
    found: list[Optional[tuple[Shape, int]]] = []
    for output in body.output:
        shape = shape_of(output.type) if output.type.HasField("tensor_type") else None
        found.append(None if shape is None else (shape, output.type.tensor_type.elem_type))
    return found


def if_bounds(node: NodeView) -> list[Optional[Union[TypedShape, Known]]]:
    """The taken branch's output shapes under a constant condition; otherwise, per output, the
    larger of the branches' shapes, dim by dim (exact when they agree)."""
    taken = _constant_condition(node)
    branches = [_body_outputs(node.subgraph(name)) for name in ("then_branch", "else_branch")]
    if taken is not None:
        return [None if out is None else Known(out[0], out[1]) for out in branches[0 if taken else 1]]
    shapes: list[Optional[Union[TypedShape, Known]]] = []
    for then_out, else_out in zip(*branches):
        if then_out is None or else_out is None or len(then_out[0]) != len(else_out[0]):
            shapes.append(None)
        elif then_out[0] == else_out[0]:
            shapes.append(Known(then_out[0], then_out[1]))
        else:
            shapes.append(TypedShape(tuple(max(a, b) for a, b in zip(then_out[0], else_out[0])), then_out[1]))
    return shapes


@register_control_flow("If", shape_inputs=[0], bounds=if_bounds)
def if_cost(node: NodeView, bodies: Sequence[BodyCost]) -> OpCost:
    """The branch a constant condition takes; else each count at its largest over the branches
    (an upper bound where they differ)."""
    taken = _constant_condition(node)
    if taken is not None:
        attribute = "then_branch" if taken else "else_branch"
        chosen = next(body for body in bodies if body.attribute == attribute)
        return _scaled([chosen], 1, f"{attribute} (constant condition)", bound=False)
    most_macs = max(bodies, key=lambda body: (body.macs, body.flops))
    most_flops = max(bodies, key=lambda body: (body.flops, body.macs))
    differ = tuple(metric for metric in ("macs", "flops") if len({getattr(body, metric) for body in bodies}) > 1)
    if any(body.bound for body in bodies):
        differ = ("macs", "flops")
    if most_macs is most_flops:
        note = f"larger branch ({most_macs.attribute})"
    else:
        note = f"larger branch per count (MACs: {most_macs.attribute}, FLOPs: {most_flops.attribute})"
    return OpCost(macs=most_macs.macs, flops=most_flops.flops, note=note, bound=bool(differ), bound_metrics=differ)


def _loop_runs(node: NodeView) -> tuple[int, bool]:
    """(M, True when the loop runs exactly M times), or UnresolvedShape when M is not known."""
    trips = _trip_limit(node)
    body = node.subgraph("body")
    exact = _starts_true(node) and body is not None and _condition_passes_through(body) and not node.input(0).bounded
    return trips, exact


def loop_bounds(node: NodeView) -> list[Optional[Union[TypedShape, Known]]]:
    """A scan output stacks one body output per iteration: [M, *body output], exact when the
    loop cannot stop early, else at most that. Loop-carried outputs are left to inference."""
    trips, exact = _loop_runs(node)
    carried = max(len(node.inputs) - 2, 0)
    outputs = _body_outputs(node.subgraph("body"))[1 + carried:]
    shapes: list[Optional[Union[TypedShape, Known]]] = [None] * carried
    for out in outputs:
        if out is None:
            shapes.append(None)
        else:
            stacked = (trips, *out[0])
            shapes.append(Known(stacked, out[1]) if exact else TypedShape(stacked, out[1]))
    return shapes


@register_control_flow("Loop", shape_inputs=[0, 1], bounds=loop_bounds)
def loop_cost(node: NodeView, bodies: Sequence[BodyCost]) -> OpCost:
    """Body x M iterations: exact when the loop cannot stop early, else an upper bound."""
    trips, exact = _loop_runs(node)
    bound = not exact
    note = f"body x {'at most ' if bound else ''}{trips} iterations"
    return _scaled(bodies, trips, note, bound)


def _trip_limit(node: NodeView) -> int:
    if not node.has_input(0):
        raise UnresolvedShape(f"{node.name}:trip_count", "trip count (no maximum given)")
    trips = int(node.input_value(0).reshape(-1)[0])
    if trips >= NO_TRIP_LIMIT:
        raise UnresolvedShape(node.input(0).name, "trip count (no maximum given)")
    return trips


def _starts_true(node: NodeView) -> bool:
    if not node.has_input(1):
        return True
    value = node.input(1).value
    return value is not None and value.size == 1 and bool(value.reshape(-1)[0])


def _condition_passes_through(body: GraphProto) -> bool:
    """The body's condition output is its condition input (directly or through Identity) or a
    constant true: the loop then runs exactly M times."""
    if len(body.output) < 1 or len(body.input) < 2:
        return False
    condition_in, condition_out = body.input[1].name, body.output[0].name
    if condition_out == condition_in:
        return True
    producer = next((n for n in body.node if condition_out in n.output), None)
    if producer is not None and producer.op_type == "Identity":
        return list(producer.input) == [condition_in]
    return _is_constant_true(body, condition_out, producer)


def _is_constant_true(body: GraphProto, name: str, producer: Optional[object]) -> bool:
    tensor = next((t for t in body.initializer if t.name == name), None)
    if tensor is None and producer is not None and producer.op_type == "Constant" and producer.attribute:
        tensor = producer.attribute[0].t if producer.attribute[0].name == "value" else None
    if tensor is None:
        return False
    value = numpy_helper.to_array(tensor)
    return value.size == 1 and bool(value.reshape(-1)[0])


@register_control_flow("Scan")
def scan_cost(node: NodeView, bodies: Sequence[BodyCost]) -> OpCost:
    """Body x the length of the first scan input along its scan axis."""
    num_scan_inputs = int(node.attr("num_scan_inputs", 0))
    if num_scan_inputs < 1:
        raise UnsupportedAttributes("Scan without scan inputs has no counting rule")
    first_scan_input = len(node.inputs) - num_scan_inputs
    axes = list(node.attr("scan_input_axes", []) or [0] * num_scan_inputs)
    shape = node.input_shape(first_scan_input)
    length = shape[normalize_axis(int(axes[0]), len(shape), node.op_type)]
    return _scaled(bodies, length, f"body x {length} iterations", bound=False)
