"""Folding rules: which per-channel affine (a BatchNormalization, or an exporter's Mul+Add
pair) is free at inference.

An affine folds backward into the op that produces its input when that op is registered with
fold_into=FOLD_BACKWARD (Conv, ConvTranspose, Gemm) and its output feeds nothing else, and
forward into a following op registered with FOLD_FORWARD (Conv) when the affine's output feeds
only that op's data input. Anything in between (a ReLU, a second consumer, a graph output)
prevents the fold. Which ops are affines is their `affine` trait.
"""
from __future__ import annotations

from typing import Optional

from .graph import PreparedGraph
from .registry import AFFINE_SCALE, AFFINE_SHIFT, AFFINE_WHOLE, DEFAULT_TRAITS, FOLD_BACKWARD, FOLD_FORWARD, OpTraits

Span = tuple[list[int], str, str]  # (member nodes, input tensor, output tensor)


def find_folds(prepared: PreparedGraph) -> dict[int, str]:
    """Map node index -> note ("folded into conv1") for every node that is free by folding."""
    # no op of the graph takes a fold (a transformer's MatMuls do not). Not in a subgraph: the rows
    # the search makes there are copies of the outer graph's, whose later changes they do not see
    if prepared.outer is None and not any(entry.traits.fold_into for entry in prepared.op_entries):
        return {}
    entries = prepared.entries
    affines = [index for index in prepared.runtime if (entry := entries[index]) is not None and entry.traits.affine]
    if not affines:
        return {}
    folds: dict[int, str] = {}
    for index in affines:
        if index in folds or _traits(prepared, index).affine not in (AFFINE_WHOLE, AFFINE_SCALE):
            continue
        span = _affine_span(prepared, index)
        if span is None:
            continue
        members, span_input, span_output = span
        target = _backward_target(prepared, span_input, members[0])
        if target is None:
            target = _forward_target(prepared, span_output)
        if target is not None:
            for member in members:
                folds[member] = f"folded into {prepared.table.label(target)}"
    return folds


def _traits(prepared: PreparedGraph, index: int) -> OpTraits:
    entry = prepared.entries[index]
    return DEFAULT_TRAITS if entry is None else entry.traits


def _only_reader(prepared: PreparedGraph, tensor: str) -> Optional[int]:
    """The single node reading `tensor`, if exactly one does and it is not a graph output."""
    if tensor in prepared.graph_outputs:
        return None
    return prepared.table.only_reader(tensor)


def _affine_span(prepared: PreparedGraph, index: int) -> Optional[Span]:
    """The per-channel affine starting at node `index`: a whole affine (BatchNormalization with
    constant statistics), or a scale followed by its only reader, a shift."""
    table, values = prepared.table, prepared.values
    inputs, outputs = table.inputs[index], table.outputs[index]
    if _traits(prepared, index).affine == AFFINE_WHOLE:
        if all(values.is_constant(name) for name in inputs[1:5] if name):
            return [index], inputs[0], outputs[0]
        return None
    data_input = _single_activation_input(prepared, index)
    if data_input is None:
        return None
    shift = _only_reader(prepared, outputs[0])
    if shift is None or _traits(prepared, shift).affine != AFFINE_SHIFT or shift in prepared.constant_nodes:
        return None
    if _single_activation_input(prepared, shift) != outputs[0]:
        return None
    return [index, shift], data_input, table.outputs[shift][0]


def _single_activation_input(prepared: PreparedGraph, index: int) -> Optional[str]:
    """For a binary op with one runtime input and one small (per-channel) constant: the runtime input."""
    inputs = prepared.table.inputs[index]
    if len(inputs) != 2:
        return None
    infos = [prepared.values[name] for name in inputs]
    runtime = [info for info in infos if not info.is_constant]
    constant = [info for info in infos if info.is_constant]
    if len(runtime) != 1 or len(constant) != 1 or constant[0].shape is None or runtime[0].shape is None:
        return None
    shape = runtime[0].shape
    channels = {shape[1]} if len(shape) > 1 else set()
    if shape:
        channels.add(shape[-1])
    constant_numel = constant[0].numel
    non_unit_dims = [d for d in constant[0].shape if d != 1]
    if constant_numel == 1 or (len(non_unit_dims) == 1 and constant_numel in channels):
        return runtime[0].name
    return None


def _backward_target(prepared: PreparedGraph, span_input: str, first: int) -> Optional[int]:
    producer = prepared.table.producer.get(span_input)
    if producer is None or FOLD_BACKWARD not in _traits(prepared, producer).fold_into:
        return None
    return producer if _only_reader(prepared, span_input) == first else None


def _forward_target(prepared: PreparedGraph, span_output: str) -> Optional[int]:
    reader = _only_reader(prepared, span_output)
    if reader is None or FOLD_FORWARD not in _traits(prepared, reader).fold_into:
        return None
    inputs = prepared.table.inputs[reader]
    return reader if inputs and inputs[0] == span_output else None
