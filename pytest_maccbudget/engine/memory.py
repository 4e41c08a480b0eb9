"""Peak activation memory by liveness.

The graph runs in topological order. Each activation buffer is live from the step that
produces it (graph inputs: from the start) to the last step that reads it (graph outputs: to
the end); the peak is the largest sum of live bytes at any step. Views (ops registered with
buffer=ALIAS) and folded layers share their input's buffer, and the producers of an in-place
op's inputs (Concat's) write straight into its output buffer, so those inputs live inside it.
"""
from __future__ import annotations

from itertools import accumulate
from typing import Iterable, NamedTuple, Optional

from .graph import PreparedGraph
from .registry import ALIAS, DEFAULT_TRAITS, IN_PLACE


class Peak(NamedTuple):
    bytes: Optional[int]  # None when the size of some activation is not known
    missing: list[str]  # the activations whose size is not known
    bound: bool  # an activation's size is an upper bound, so the peak is one


class _Buffers:
    """Union-find over the tensors that share a buffer with another; any other tensor is its own."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, name: str) -> str:
        parent = self.parent
        root = name
        while parent.get(root, root) != root:
            root = parent[root]
        while name != root:
            parent[name], name = root, parent[name]
        return root

    def union(self, a: str, b: str) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[root_a] = root_b


def peak_activation_bytes(prepared: PreparedGraph, folded: Iterable[int]) -> Peak:
    """The peak of live activation bytes over the runtime nodes of `prepared`; `folded` are the
    nodes folded into a neighbour (their output shares their input's buffer)."""
    produced_at: dict[str, int] = dict.fromkeys(prepared.real_inputs, 0)
    last_use: dict[str, int] = {}
    buffers = _Buffers()
    last_step = _walk(prepared, set(folded), produced_at, last_use, buffers)
    for name in prepared.graph_outputs:
        if name in produced_at:
            last_use[name] = last_step  # graph outputs stay live to the end
    return _sweep(prepared, buffers, produced_at, last_use, last_step)


def _walk(prepared: PreparedGraph, folded: set[int], produced_at: dict[str, int], last_use: dict[str, int],
          buffers: _Buffers) -> int:
    """Record when each activation is made and last read, and which share a buffer. Returns the last step."""
    table, entries = prepared.table, prepared.entries
    graph_inputs = set(prepared.real_inputs)
    placed: set[str] = set()  # tensors already produced into an in-place op's buffer
    step = -1
    for step, index in enumerate(prepared.runtime):
        inputs, outputs = table.inputs[index], table.outputs[index]
        for name in inputs:
            if name in produced_at:
                last_use[name] = step
        entry = entries[index]
        traits = entry.traits if entry is not None else DEFAULT_TRAITS
        kept = outputs if traits.inference_outputs is None else outputs[:traits.inference_outputs]
        for name in kept:
            if name:
                produced_at[name] = step
        if (index in folded or traits.buffer == ALIAS) and inputs and inputs[0] in produced_at and outputs:
            buffers.union(outputs[0], inputs[0])
        elif traits.buffer == IN_PLACE and outputs:
            _place_inputs(inputs, outputs[0], produced_at, graph_inputs, placed, buffers)
    return max(step, 0)


def _place_inputs(inputs: list[str], output: str, produced_at: dict[str, int], graph_inputs: set[str],
                  placed: set[str], buffers: _Buffers) -> None:
    for name in inputs:
        # a graph input cannot be written into the output's buffer, and a tensor can be written
        # into one buffer only: into any other in-place op it is copied
        if name in produced_at and name not in graph_inputs and name not in placed:
            placed.add(name)
            buffers.union(name, output)


def _sweep(prepared: PreparedGraph, buffers: _Buffers, produced_at: dict[str, int], last_use: dict[str, int],
           last_step: int) -> Peak:
    spans: dict[str, list[int]] = {}  # buffer -> [bytes, first step, last step]
    missing: list[str] = []
    bound = False
    # (a tensor whose value alone is an upper bound, the Shape of NonZero's output, has exact bytes)
    size_of, bounded, merged, find = prepared.values.nbytes, prepared.variable_length, buffers.parent, buffers.find
    for name, step in produced_at.items():
        nbytes = size_of(name)
        if nbytes is None:
            missing.append(name)
            continue
        bound |= nbytes > 0 and name in bounded
        root = find(name) if name in merged else name
        used = last_use.get(name, step)
        span = spans.get(root)
        if span is None:
            spans[root] = [nbytes, step, used]
        else:
            span[0], span[1], span[2] = max(span[0], nbytes), min(span[1], step), max(span[2], used)
    if missing:
        return Peak(None, missing, False)
    return Peak(_largest_sum(spans.values(), last_step), [], bound)


def _largest_sum(spans: Iterable[list[int]], last_step: int) -> int:
    """The largest total of the buffers live at one step."""
    delta = [0] * (last_step + 2)
    for nbytes, first, last in spans:
        delta[first] += nbytes
        delta[last + 1] -= nbytes
    return max(accumulate(delta, initial=0))
