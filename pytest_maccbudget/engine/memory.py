"""Peak activation memory by liveness.

The graph runs in topological order. Each activation buffer is live from the step that
produces it (graph inputs: from the start) to the last step that reads it (graph outputs: to
the end); the peak is the largest sum of live bytes at any step. Reshape-like ops and folded
layers alias their input (one buffer), and Concat's producers write straight into its output
buffer, so Concat inputs live inside it.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

from onnx import NodeProto

from .ops.movement import ALIAS_OPS
from .types import TensorInfo


class _Buffers:
    """Union-find over tensor names; each set is one buffer."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def add(self, name: str) -> None:
        self.parent.setdefault(name, name)

    def find(self, name: str) -> str:
        root = name
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[name] != root:
            self.parent[name], name = root, self.parent[name]
        return root

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def is_alias(node: NodeProto) -> bool:
    return node.op_type in ALIAS_OPS and node.domain in ("", "ai.onnx")


def peak_activation_bytes(
    nodes: Sequence[NodeProto],
    tensors: dict[str, TensorInfo],
    runtime_nodes: Iterable[int],
    aliased_nodes: Iterable[int],
    graph_inputs: Sequence[str],
    graph_outputs: Sequence[str],
) -> tuple[Optional[int], list[str]]:
    """(peak live activation bytes, names of runtime tensors whose size is unknown).

    `runtime_nodes` are the indices of nodes that run at inference; `aliased_nodes` those whose
    output shares their input's buffer (Reshape-like ops, folded BatchNorms).
    """
    runtime = sorted(set(runtime_nodes))
    aliased = set(aliased_nodes)
    buffers = _Buffers()
    produced_at: dict[str, int] = {}
    for name in graph_inputs:
        buffers.add(name)
        produced_at[name] = 0
    for step, index in enumerate(runtime):
        node = nodes[index]
        # an inference-mode Dropout produces no mask: only its (aliased) first output exists
        outputs = node.output[:1] if node.op_type == "Dropout" else node.output
        for name in outputs:
            if name:
                buffers.add(name)
                produced_at[name] = step
    _merge_buffers(nodes, runtime, aliased, buffers, set(graph_inputs))
    last_step = max(len(runtime) - 1, 0)
    last_use: dict[str, int] = {}
    for step, index in enumerate(runtime):
        for name in nodes[index].input:
            if name in produced_at:
                last_use[name] = step
    for name in graph_outputs:
        if name in produced_at:
            last_use[name] = last_step
    return _sweep(buffers, produced_at, last_use, tensors, last_step)


def _merge_buffers(nodes: Sequence[NodeProto], runtime: list[int], aliased: set[int], buffers: _Buffers, graph_inputs: set[str]) -> None:
    placed: set[str] = set()  # tensors already produced into a Concat's buffer
    for index in runtime:
        node = nodes[index]
        if (index in aliased or is_alias(node)) and node.input and node.input[0] in buffers.parent and node.output:
            buffers.union(node.output[0], node.input[0])
        elif node.op_type == "Concat" and node.domain in ("", "ai.onnx") and node.output:
            for name in node.input:
                # a graph input cannot be written into the Concat's buffer, and a tensor can be
                # written into one buffer only: into any other Concat it is copied
                if name in buffers.parent and name not in graph_inputs and name not in placed:
                    placed.add(name)
                    if buffers.find(name) != buffers.find(node.output[0]):
                        buffers.union(name, node.output[0])


def _sweep(buffers: _Buffers, produced_at: dict[str, int], last_use: dict[str, int], tensors: dict[str, TensorInfo], last_step: int) -> tuple[Optional[int], list[str]]:
    size: dict[str, int] = {}
    start: dict[str, int] = {}
    end: dict[str, int] = {}
    missing: list[str] = []
    for name, step in produced_at.items():
        root = buffers.find(name)
        info = tensors.get(name)
        nbytes = info.nbytes if info is not None else None
        if nbytes is None:
            missing.append(name)
            continue
        size[root] = max(size.get(root, 0), nbytes)
        start[root] = min(start.get(root, step), step)
        end[root] = max(end.get(root, step), last_use.get(name, step))
    if missing:
        return None, missing
    delta = [0] * (last_step + 2)
    for root, nbytes in size.items():
        delta[start[root]] += nbytes
        delta[end[root] + 1] -= nbytes
    live = peak = 0
    for change in delta:
        live += change
        peak = max(peak, live)
    return peak, []
