"""The op-cost registry: (domain, op_type) -> cost function.

Three outcomes per op, never a silent default: a registered cost function (costed), an
explicit registration as free (0 MACs, 0 FLOPs by rule), or no entry (unknown).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple, Optional, Union

from .types import CostFn, NodeView, OpCost, Shape

DEFAULT_DOMAIN = ""
_DOMAIN_ALIASES = {"ai.onnx": DEFAULT_DOMAIN}



class TypedShape(NamedTuple):
    """An output shape with an element type other than that of the op's first input."""

    shape: Shape
    dtype: int


# Output-shape functions for ops that onnx's shape inference does not know (contrib domains).
# Each output is a Shape (element type of input 0), a TypedShape, or None (not known).
ShapeFn = Callable[[NodeView], list[Optional[Union[Shape, TypedShape]]]]


def normalize_domain(domain: str) -> str:
    return _DOMAIN_ALIASES.get(domain, domain)


@dataclass(frozen=True)
class OpEntry:
    op_type: str
    domain: str
    cost: CostFn
    free: bool  # registered as costing nothing by rule


def _free_cost(node: NodeView) -> OpCost:
    return OpCost()


class OpRegistry:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], OpEntry] = {}
        self._shape_fns: dict[tuple[str, str], ShapeFn] = {}

    def _add(self, entry: OpEntry) -> None:
        key = (entry.domain, entry.op_type)
        if key in self._entries:
            raise ValueError(f"duplicate cost registration for {entry.domain or 'ai.onnx'}::{entry.op_type}")
        self._entries[key] = entry

    def register(self, *op_types: str, domain: str = DEFAULT_DOMAIN) -> Callable[[CostFn], CostFn]:
        """Decorator: `@REGISTRY.register("Conv", "ConvTranspose")`."""
        def decorate(cost_fn: CostFn) -> CostFn:
            for op_type in op_types:
                self._add(OpEntry(op_type, normalize_domain(domain), cost_fn, free=False))
            return cost_fn
        return decorate

    def register_free(self, *op_types: str, domain: str = DEFAULT_DOMAIN) -> None:
        """Declare ops that cost 0 MACs and 0 FLOPs by rule (data movement, bookkeeping)."""
        for op_type in op_types:
            self._add(OpEntry(op_type, normalize_domain(domain), _free_cost, free=True))

    def register_shape(self, *op_types: str, domain: str) -> Callable[[ShapeFn], ShapeFn]:
        """Decorator for output-shape functions of ops unknown to onnx shape inference."""
        def decorate(shape_fn: ShapeFn) -> ShapeFn:
            for op_type in op_types:
                self._shape_fns[(normalize_domain(domain), op_type)] = shape_fn
            return shape_fn
        return decorate

    def lookup(self, op_type: str, domain: str = DEFAULT_DOMAIN) -> Optional[OpEntry]:
        return self._entries.get((normalize_domain(domain), op_type))

    def shape_fn(self, op_type: str, domain: str = DEFAULT_DOMAIN) -> Optional[ShapeFn]:
        return self._shape_fns.get((normalize_domain(domain), op_type))

    def copy(self) -> "OpRegistry":
        clone = OpRegistry()
        clone._entries = dict(self._entries)
        clone._shape_fns = dict(self._shape_fns)
        return clone

    def __iter__(self) -> Iterator[OpEntry]:
        return iter(sorted(self._entries.values(), key=lambda e: (e.domain, e.op_type)))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return (normalize_domain(key[0]), key[1]) in self._entries


REGISTRY = OpRegistry()
register = REGISTRY.register
register_free = REGISTRY.register_free
register_shape = REGISTRY.register_shape
