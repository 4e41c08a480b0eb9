"""The op registry: (domain, op_type) -> cost function and the op's traits.

Three outcomes per op, never a silent default: a registered cost function (costed), an
explicit registration as free (0 MACs, 0 FLOPs by rule), or no entry (unknown).

A registration also carries everything else the engine needs to know about the op (its
traits), so that the engine core asks the registry instead of naming ops: which inputs are
shapes rather than weights, whether its output is a view of its input, whether a BatchNorm
folds into it, its op class, worst-case output shapes when they depend on data...
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, NamedTuple, Optional, Sequence, Union

from onnx import GraphProto

from .types import CostFn, NodeView, OpCost, Shape

DEFAULT_DOMAIN = ""
_DOMAIN_ALIASES = {"ai.onnx": DEFAULT_DOMAIN}

# Op classes (LayerCost.op_class): what kind of work a layer is, for a device-latency model.
CONV = "conv"
DEPTHWISE_CONV = "depthwise_conv"
MATMUL = "matmul"
ELEMENTWISE = "elementwise"
ACTIVATION = "activation"
POOLING = "pooling"
NORMALIZATION = "normalization"
REDUCTION = "reduction"
MOVEMENT = "movement"
RECURRENT = "recurrent"
ATTENTION = "attention"
CONTROL_FLOW = "control_flow"
OTHER = "other"
OP_CLASSES = (CONV, DEPTHWISE_CONV, MATMUL, ELEMENTWISE, ACTIVATION, POOLING, NORMALIZATION, REDUCTION,
              MOVEMENT, RECURRENT, ATTENTION, CONTROL_FLOW, OTHER)

# Buffer traits: how an op's outputs relate to its inputs' memory.
NEW_BUFFER = "new"    # outputs are new buffers
ALIAS = "alias"       # output 0 is a view of input 0 (no bytes move)
IN_PLACE = "in_place"  # the producers of the inputs write straight into output 0 (Concat)

# Folding traits.
FOLD_BACKWARD = "backward"  # a per-channel affine right after this op folds into it
FOLD_FORWARD = "forward"    # a per-channel affine right before this op (on its data input) folds into it
AFFINE_WHOLE = "whole"      # the op is a per-channel affine by itself (BatchNormalization)
AFFINE_SCALE = "scale"      # the first half of an exporter's affine pair (Mul by a constant)
AFFINE_SHIFT = "shift"      # its second half (Add of a constant)

# How an op produces constants before the graph runs.
COMPUTED = "computed"     # constant when all its inputs are (the default)
STORED = "stored"         # its output is stored data: a parameter root (Constant, ConstantOfShape)
FROM_SHAPE = "from_shape"  # constant once its input's shape is known (Shape, Size)
RANDOM = "random"         # never constant (random generators)


class TypedShape(NamedTuple):
    """An output shape with an element type other than that of the op's first input."""

    shape: Shape
    dtype: int


class Known(NamedTuple):
    """An output shape a bounds function knows exactly (not an upper bound): a Loop's scan
    output when the loop cannot stop early. dtype None: that of the op's first input."""

    shape: Shape
    dtype: Optional[int] = None


# Output-shape functions for ops that onnx's shape inference does not know (contrib domains).
# Each output is a Shape (element type of input 0), a TypedShape, or None (not known).
ShapeFn = Callable[[NodeView], list[Optional[Union[Shape, TypedShape]]]]
# Worst-case output shapes of an op whose output shapes depend on data (NonZero, NMS...); a
# Known shape is exact.
BoundsFn = Callable[[NodeView], list[Optional[Union[Shape, TypedShape, "Known"]]]]
OpClassFn = Callable[[NodeView], str]


class BodyCost(NamedTuple):
    """What one subgraph of a control-flow node costs per run (filled in by the profiler)."""

    attribute: str
    graph: GraphProto
    macs: int
    flops: int
    params: int
    param_bytes: int
    bound: bool  # some count inside is an upper bound


# A control-flow op's rule: the node and its costed bodies -> the op's cost.
BodyCostFn = Callable[[NodeView, Sequence[BodyCost]], OpCost]


def normalize_domain(domain: str) -> str:
    return _DOMAIN_ALIASES.get(domain, domain)


@dataclass(frozen=True)
class OpTraits:
    """Facts about an op besides its cost rule."""

    op_class: Union[str, OpClassFn] = OTHER
    shape_inputs: frozenset[int] = frozenset()  # inputs that are shapes, axes, indices or bounds, never weights
    buffer: str = NEW_BUFFER
    fold_into: frozenset[str] = frozenset()  # FOLD_BACKWARD / FOLD_FORWARD: a BatchNorm may fold into it
    affine: str = ""  # AFFINE_WHOLE / AFFINE_SCALE / AFFINE_SHIFT: it may be (part of) a foldable affine
    constant: str = COMPUTED
    inference_outputs: Optional[int] = None  # outputs that exist at inference (Dropout: the mask does not)
    bounds: Optional[BoundsFn] = None
    # The rule is this many FLOPs per output element and no MAC: the profiler then costs the node
    # from its output's size, without building a NodeView (most of a transformer's nodes).
    flops_per_output: Optional[int] = None

    def class_of(self, node: NodeView) -> str:
        return self.op_class(node) if callable(self.op_class) else self.op_class


DEFAULT_TRAITS = OpTraits()


@dataclass(frozen=True)
class OpEntry:
    op_type: str
    domain: str
    cost: CostFn
    free: bool  # registered as costing nothing by rule
    traits: OpTraits = DEFAULT_TRAITS
    body_cost: Optional[BodyCostFn] = field(default=None, compare=False)  # control flow: costed with its bodies


def _free_cost(node: NodeView) -> OpCost:
    return OpCost()


def _traits(shape_inputs: Sequence[int] = (), fold_into: Sequence[str] = (), **traits: object) -> OpTraits:
    return OpTraits(shape_inputs=frozenset(shape_inputs), fold_into=frozenset(fold_into), **traits)  # type: ignore[arg-type]


class OpRegistry:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], OpEntry] = {}
        self._shape_fns: dict[tuple[str, str], ShapeFn] = {}

    def _add(self, entry: OpEntry) -> None:
        key = (entry.domain, entry.op_type)
        if key in self._entries:
            raise ValueError(f"duplicate cost registration for {entry.domain or 'ai.onnx'}::{entry.op_type}")
        self._entries[key] = entry

    def register(self, *op_types: str, domain: str = DEFAULT_DOMAIN, **traits: object) -> Callable[[CostFn], CostFn]:
        """Decorator: `@REGISTRY.register("Conv", op_class=CONV, fold_into=[FOLD_BACKWARD])`.
        Keyword arguments are the op's traits (OpTraits)."""
        op_traits = _traits(**traits)  # type: ignore[arg-type]

        def decorate(cost_fn: CostFn) -> CostFn:
            for op_type in op_types:
                self._add(OpEntry(op_type, normalize_domain(domain), cost_fn, free=False, traits=op_traits))
            return cost_fn
        return decorate

    def register_free(self, *op_types: str, domain: str = DEFAULT_DOMAIN, **traits: object) -> None:
        """Declare ops that cost 0 MACs and 0 FLOPs by rule (data movement, bookkeeping)."""
        op_traits = _traits(**traits)  # type: ignore[arg-type]
        for op_type in op_types:
            self._add(OpEntry(op_type, normalize_domain(domain), _free_cost, free=True, traits=op_traits))

    def register_control_flow(self, *op_types: str, domain: str = DEFAULT_DOMAIN,
                              **traits: object) -> Callable[[BodyCostFn], BodyCostFn]:
        """Decorator for ops with subgraphs: the rule gets the node and the cost of each body."""
        op_traits = _traits(op_class=CONTROL_FLOW, **traits)  # type: ignore[arg-type]

        def decorate(body_cost: BodyCostFn) -> BodyCostFn:
            for op_type in op_types:
                entry = OpEntry(op_type, normalize_domain(domain), _free_cost, free=False, traits=op_traits,
                                body_cost=body_cost)
                self._add(entry)
            return body_cost
        return decorate

    def register_shape(self, *op_types: str, domain: str) -> Callable[[ShapeFn], ShapeFn]:
        """Decorator for output-shape functions of ops unknown to onnx shape inference."""
        def decorate(shape_fn: ShapeFn) -> ShapeFn:
            for op_type in op_types:
                self._shape_fns[(normalize_domain(domain), op_type)] = shape_fn
            return shape_fn
        return decorate

    def lookup(self, op_type: str, domain: str = DEFAULT_DOMAIN) -> Optional[OpEntry]:
        return self._entries.get((normalize_domain(domain), op_type))

    def traits(self, op_type: str, domain: str = DEFAULT_DOMAIN) -> OpTraits:
        """The op's traits; an unregistered op has the defaults (a new buffer, class "other")."""
        entry = self._entries.get((normalize_domain(domain), op_type))
        return DEFAULT_TRAITS if entry is None else entry.traits

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
register_control_flow = REGISTRY.register_control_flow
register_shape = REGISTRY.register_shape
