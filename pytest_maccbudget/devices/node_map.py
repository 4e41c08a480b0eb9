"""Which of the engine's layers each node of onnxruntime's optimized graph runs.

onnxruntime rewrites a graph before running it: it fuses nodes (Conv + BatchNormalization +
Relu become one FusedConv), drops others (Identity, Dropout, folded constants), converts convs
to its blocked layout (an `r2_nchwc` node named after the original tensor it computes, between
`ReorderInput`/`ReorderOutput` nodes it inserts) and renames what it creates. Names alone do not
map back; tensors do: a tensor of the original graph that the optimized graph still carries is
an anchor, and an optimized node covers the original nodes between its anchor inputs and its
anchor outputs. Nodes that compute no original tensor (the layout conversions) join the group
of the node they feed or are fed by, so that their time is charged to the layer that needed them.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from onnx import GraphProto, NodeProto

from ..engine.tables import node_label, numbered

# onnxruntime names a node it converts to the blocked (NCHWc) layout after the original tensor
# the node computes, plus this suffix.
NCHWC_SUFFIX = "_nchwc"


@dataclass(frozen=True)
class NodeGroup:
    """Optimized nodes whose time is charged to the same original layers."""

    ort_nodes: tuple[str, ...]
    layers: tuple[str, ...]  # engine layer names, in graph order; empty when it maps to none


def engine_layer_names(graph: GraphProto) -> dict[int, str]:
    """node index -> the name the engine gives that layer (engine.tables: the node's label,
    numbered where labels repeat), in graph order."""
    return dict(enumerate(numbered([node_label(node.name, node.output, node.op_type) for node in graph.node])))


def map_optimized_graph(original: GraphProto, optimized: GraphProto) -> list[NodeGroup]:
    """Groups of optimized nodes, each with the original layers it runs, in optimized graph order."""
    original_producers = _producers(original.node)
    original_tensors = set(original_producers) | {i.name for i in original.input}
    anchors_of = {node.name: _anchor_outputs(node, original_tensors) for node in optimized.node}
    all_anchors = {tensor for outputs in anchors_of.values() for tensor in outputs} | {i.name for i in original.input}
    names = engine_layer_names(original)
    covered_by: dict[str, list[int]] = {}
    claimed: set[int] = set()
    for node in optimized.node:
        covered = _covered_nodes(anchors_of[node.name], original_producers, all_anchors, original.node, claimed)
        claimed.update(covered)
        covered_by[node.name] = sorted(covered)
    owners = _owners(optimized.node, anchors_of, original_tensors)
    groups: dict[str, list[str]] = defaultdict(list)
    for node in optimized.node:
        groups[owners[node.name]].append(node.name)
    return [
        NodeGroup(tuple(members), tuple(names[i] for i in sorted({i for m in members for i in covered_by[m]})))
        for owner, members in groups.items()
    ]


def _producers(nodes: Sequence[NodeProto]) -> dict[str, int]:
    return {output: index for index, node in enumerate(nodes) for output in node.output if output}


def _anchor_outputs(node: NodeProto, original_tensors: set[str]) -> list[str]:
    if node.domain == "com.microsoft.nchwc" and node.op_type in ("ReorderInput", "ReorderOutput"):
        return []  # a layout conversion: it recomputes a tensor in another layout, computes nothing new
    anchors = [output for output in node.output if output in original_tensors]
    if node.name.endswith(NCHWC_SUFFIX) and node.name[: -len(NCHWC_SUFFIX)] in original_tensors:
        anchors.append(node.name[: -len(NCHWC_SUFFIX)])
    return anchors


def _covered_nodes(outputs: Iterable[str], producers: Mapping[str, int], anchors: set[str],
                   nodes: Sequence[NodeProto], claimed: set[int]) -> set[int]:
    """Original nodes reached walking back from `outputs` until another anchor or a graph input."""
    covered: set[int] = set()
    stack = [producers[name] for name in outputs if name in producers]
    while stack:
        index = stack.pop()
        if index in covered or index in claimed:
            continue
        covered.add(index)
        for tensor in nodes[index].input:
            if tensor and tensor not in anchors and tensor in producers:
                stack.append(producers[tensor])
    return covered


def _owners(nodes: Sequence[NodeProto], anchors_of: Mapping[str, list[str]], original_tensors: set[str]) -> dict[str, str]:
    """node name -> the node whose group it joins: itself when it computes an original tensor,
    else the nearest node that does, reached through tensors the original graph does not have
    (a ReorderInput joins the conv it feeds, a ReorderOutput the conv that feeds it)."""
    links: dict[str, list[str]] = defaultdict(list)  # node -> neighbours through internal tensors
    touching: dict[str, list[str]] = defaultdict(list)  # internal tensor -> nodes reading or writing it
    for node in nodes:
        for tensor in [*node.input, *node.output]:
            if tensor and tensor not in original_tensors:
                touching[tensor].append(node.name)
    for members in touching.values():
        for name in members:
            links[name].extend(m for m in members if m != name)
    return {node.name: node.name if anchors_of[node.name] else _nearest_anchored(node.name, links, anchors_of)
            for node in nodes}


def _nearest_anchored(start: str, links: Mapping[str, list[str]], anchors_of: Mapping[str, list[str]]) -> str:
    """Breadth-first through internal tensors; the node itself when no anchored node is reached."""
    seen = {start}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for name in frontier:
            for neighbour in links.get(name, ()):
                if neighbour in seen:
                    continue
                if anchors_of[neighbour]:
                    return neighbour
                seen.add(neighbour)
                following.append(neighbour)
        frontier = following
    return start
