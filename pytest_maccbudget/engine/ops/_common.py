"""What the op modules share: the contrib domain, the FLOPs of building blocks that several
rules reuse, axis normalisation and numpy-rule broadcasting. One copy of each."""
from __future__ import annotations

from typing import Sequence

from ..registry import DEFAULT_DOMAIN, normalize_domain
from ..types import Shape, UnsupportedAttributes

MS_DOMAIN = "com.microsoft"

# Building blocks, FLOPs per element.
SIGMOID = 4  # neg, exp, add, div: 1 / (1 + exp(-x))  (the contract's number)
TANH = 5  # mul, exp, sub, add, div: (exp(2x) - 1) / (exp(2x) + 1)
SOFTMAX = 5  # max-reduce compare, subtract, exp, sum, divide


def is_default_domain(domain: str) -> bool:
    """ONNX's own domain, however it is spelt ("" or "ai.onnx")."""
    return normalize_domain(domain) == DEFAULT_DOMAIN


def normalize_axis(axis: int, rank: int, op_type: str = "") -> int:
    """A possibly negative axis as an index in [0, rank)."""
    if not -rank <= axis < rank:
        raise UnsupportedAttributes(f"{op_type}: axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def broadcast_shapes(*shapes: Sequence[int]) -> Shape:
    """Multidirectional (numpy) broadcasting of shapes; an extent of 1 stretches to any other
    (0 included). Raises UnsupportedAttributes when two extents differ and neither is 1."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for position in range(rank):
        extents = {s[len(s) - rank + position] for s in shapes if len(s) - rank + position >= 0}
        extents.discard(1)
        if len(extents) > 1:
            raise UnsupportedAttributes(f"shapes {[list(s) for s in shapes]} do not broadcast")
        out.append(extents.pop() if extents else 1)
    return tuple(out)
