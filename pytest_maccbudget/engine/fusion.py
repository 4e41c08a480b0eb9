"""Folding rules: which BatchNormalization (or exporter-emitted Mul+Add pair) is free at inference.

A BN folds backward into the Conv/ConvTranspose/Gemm that produces its input when that output
feeds nothing else, and forward into a following Conv when the BN's output feeds only that Conv.
Anything in between (a ReLU, a second consumer, a graph output) prevents the fold.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Optional, Sequence

from onnx import NodeProto

from .types import TensorInfo

_DEFAULT_DOMAINS = ("", "ai.onnx")
_BACKWARD_TARGETS = {"Conv", "ConvTranspose", "Gemm"}
_FORWARD_TARGETS = {"Conv"}


def layer_name(node: NodeProto) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


class _GraphLinks:
    def __init__(self, nodes: Sequence[NodeProto], graph_outputs: set[str]) -> None:
        self.nodes = nodes
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for index, node in enumerate(nodes):
            for name in node.output:
                if name:
                    self.producer[name] = index
            for name in node.input:
                if name:
                    self.consumers[name].append(index)
        self.graph_outputs = graph_outputs

    def only_consumer(self, tensor: str) -> Optional[int]:
        """The single node reading `tensor`, if exactly one does and it is not a graph output."""
        readers = self.consumers.get(tensor, [])
        if tensor in self.graph_outputs or len(set(readers)) != 1:
            return None
        return readers[0]

    def producer_of(self, tensor: str) -> Optional[int]:
        return self.producer.get(tensor)


def _is_op(node: NodeProto, op_types: set[str]) -> bool:
    return node.op_type in op_types and node.domain in _DEFAULT_DOMAINS


def _affine_span(links: _GraphLinks, index: int, tensors: dict[str, TensorInfo], constant_nodes: set[int]) -> Optional[tuple[list[int], str, str]]:
    """If node `index` starts a per-channel affine (BN, or Mul-by-constant then Add-constant),
    return (the node indices of the span, its input tensor, its output tensor)."""
    node = links.nodes[index]
    if index in constant_nodes or node.domain not in _DEFAULT_DOMAINS:
        return None
    if node.op_type == "BatchNormalization":
        if all(tensors.get(name, TensorInfo(name, None)).is_constant for name in node.input[1:5] if name):
            return [index], node.input[0], node.output[0]
        return None
    if node.op_type != "Mul":
        return None
    data_input = _single_activation_input(node, tensors)
    if data_input is None:
        return None
    next_index = links.only_consumer(node.output[0])
    if next_index is None:
        return None
    add = links.nodes[next_index]
    if not _is_op(add, {"Add"}) or _single_activation_input(add, tensors) != node.output[0]:
        return None
    return [index, next_index], data_input, add.output[0]


def _single_activation_input(node: NodeProto, tensors: dict[str, TensorInfo]) -> Optional[str]:
    """For a binary op with one runtime input and one small (per-channel) constant: the runtime input."""
    if len(node.input) != 2:
        return None
    infos = [tensors.get(name, TensorInfo(name, None)) for name in node.input]
    runtime = [i for i in infos if not i.is_constant]
    constant = [i for i in infos if i.is_constant]
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


def find_folds(
    nodes: Sequence[NodeProto],
    tensors: dict[str, TensorInfo],
    graph_outputs: set[str],
    constant_nodes: set[int],
) -> dict[int, str]:
    """Map node index -> note ("folded into conv1") for every node that is free by folding."""
    links = _GraphLinks(nodes, graph_outputs)
    folds: dict[int, str] = {}
    for index in range(len(nodes)):
        if index in folds:
            continue
        span = _affine_span(links, index, tensors, constant_nodes)
        if span is None:
            continue
        members, span_input, span_output = span
        target = _backward_target(links, span_input, members[0])
        if target is None:
            target = _forward_target(links, span_output)
        if target is not None:
            for member in members:
                folds[member] = f"folded into {layer_name(nodes[target])}"
    return folds


def _backward_target(links: _GraphLinks, span_input: str, first: int) -> Optional[int]:
    producer = links.producer_of(span_input)
    if producer is None or not _is_op(links.nodes[producer], _BACKWARD_TARGETS):
        return None
    return producer if links.only_consumer(span_input) == first else None


def _forward_target(links: _GraphLinks, span_output: str) -> Optional[int]:
    consumer = links.only_consumer(span_output)
    if consumer is None:
        return None
    node = links.nodes[consumer]
    if _is_op(node, _FORWARD_TARGETS) and node.input and node.input[0] == span_output:
        return consumer
    return None
