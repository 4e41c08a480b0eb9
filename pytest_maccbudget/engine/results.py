"""The result of profiling a model: one row per layer, totals, memory, and what could not be counted."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping, NamedTuple, Optional

# Layer status values
COSTED = "costed"        # a cost function counted it
FREE = "free"            # registered as costing nothing (data movement, bookkeeping)
FOLDED = "folded"        # folded into a neighbour at inference (BatchNorm after Conv, ...)
CONSTANT = "constant"    # computes a constant before the graph runs (weights, shape arithmetic)
UNKNOWN = "unknown"      # no cost function for this op: MACs/FLOPs are None, never 0
UNRESOLVED = "unresolved"  # known op, but a shape or value it needs is not known

_new_object, _set_attribute = object.__new__, object.__setattr__

# Figures that can be upper bounds (a shape that depends on data, a worst-case rule).
BOUNDABLE_LAYER_METRICS = ("macs", "flops", "output_bytes", "bytes_read", "bytes_written")
BOUNDABLE_TOTAL_METRICS = ("macs", "flops", "peak_activation_bytes", "activation_bytes", "bytes_read",
                           "bytes_written", "memory_traffic_bytes")


@dataclass(frozen=True)
class LayerCost:
    """One node of the graph. `macs`/`flops` are None when they could not be counted.

    `upper_bounds` names the figures that are upper bounds rather than exact: they depend on
    data (what follows a NonMaxSuppression, a NonZero...). A zero is never a bound.
    `op_class` says what kind of work the layer is (registry.OP_CLASSES: "conv",
    "depthwise_conv", "matmul", "elementwise", ...).
    """

    name: str
    op_type: str
    domain: str
    macs: Optional[int]
    flops: Optional[int]
    params: int
    param_bytes: int
    output_bytes: Optional[int]
    bytes_read: Optional[int]
    bytes_written: Optional[int]
    status: str
    note: str = ""
    op_class: str = "other"
    upper_bounds: tuple[str, ...] = ()

    @property
    def counted(self) -> bool:
        return self.status not in (UNKNOWN, UNRESOLVED)

    @property
    def bound(self) -> bool:
        """Some figure of this layer is an upper bound."""
        return bool(self.upper_bounds)

    @classmethod
    def of(cls, values: dict[str, Any]) -> "LayerCost":
        """A row made from a dict of every field, without the dataclass __init__ (a quarter of
        its cost: the engine makes one per node). The dict becomes the row's own."""
        layer = _new_object(cls)
        _set_attribute(layer, "__dict__", values)
        return layer


LAYER_FIELDS = tuple(field.name for field in fields(LayerCost))


@dataclass(frozen=True)
class UnknownOp:
    op_type: str
    domain: str
    name: str
    reason: str  # "no cost rule for this op" or the shape/value that is missing
    status: str = UNKNOWN  # UNKNOWN (no rule) or UNRESOLVED (a shape or value is not known)


class NodeSource(NamedTuple):
    """Where the file says a node came from, for a node whose name does not say it (the dynamo
    exporter's `node_Conv_12`): its source metadata (tables.SOURCE_METADATA: the module scopes
    the exporter recorded...) and its input names. `pytest_maccbudget.layers` reads the budget
    key from it."""

    metadata: tuple[tuple[str, str], ...]
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class Totals:
    macs: int
    flops: int
    params: int
    param_bytes: int
    peak_activation_bytes: Optional[int]
    activation_bytes: int
    bytes_read: int
    bytes_written: int
    upper_bounds: tuple[str, ...] = ()  # the totals that are upper bounds (see LayerCost)

    @property
    def memory_traffic_bytes(self) -> int:
        return self.bytes_read + self.bytes_written


@dataclass(frozen=True)
class Profile:
    """Per-layer and total costs of one model. Totals sum the layers that could be counted."""

    model_name: str
    layers: tuple[LayerCost, ...]
    totals: Totals
    unknown: tuple[UnknownOp, ...]
    inputs: dict[str, tuple[int, ...]]
    notes: tuple[str, ...] = ()
    opset: int = 0
    ir_version: int = 0
    sources: Mapping[str, NodeSource] = field(default_factory=dict)  # layer name -> NodeSource

    @property
    def partial(self) -> bool:
        """Some layer could not be counted: the totals are lower bounds."""
        return bool(self.unknown)

    @property
    def bounded(self) -> bool:
        """Some total is an upper bound (shapes that depend on data): see `upper_bounds`."""
        return bool(self.totals.upper_bounds)

    @property
    def upper_bounds(self) -> tuple[str, ...]:
        """The totals that are upper bounds, e.g. ("flops", "peak_activation_bytes")."""
        return self.totals.upper_bounds

    def is_upper_bound(self, metric: str) -> bool:
        """True when the total `metric` ("macs", "flops", "peak_activation_bytes"...) is an upper bound."""
        return metric in self.totals.upper_bounds

    @property
    def bound_layers(self) -> tuple[LayerCost, ...]:
        """Layers with a figure that is an upper bound."""
        return tuple(layer for layer in self.layers if layer.upper_bounds)

    @property
    def runtime_layers(self) -> tuple[LayerCost, ...]:
        """Layers that run at inference (not constant computations)."""
        return tuple(layer for layer in self.layers if layer.status != CONSTANT)

    @property
    def coverage(self) -> float:
        """Share of runtime nodes whose cost is known, in [0, 1]."""
        runtime = self.runtime_layers
        if not runtime:
            return 1.0
        return sum(1 for layer in runtime if layer.counted) / len(runtime)

    def layer(self, name: str) -> LayerCost:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the CLI's `--format json`)."""
        totals = self.totals
        return {
            "model": self.model_name,
            "inputs": {k: list(v) for k, v in self.inputs.items()},
            "opset": self.opset,
            "partial": self.partial,
            "upper_bound": self.bounded,
            "coverage": round(self.coverage, 6),
            "total": {
                "macs": totals.macs,
                "flops": totals.flops,
                "params": totals.params,
                "param_bytes": totals.param_bytes,
                "peak_activation_bytes": totals.peak_activation_bytes,
                "activation_bytes": totals.activation_bytes,
                "bytes_read": totals.bytes_read,
                "bytes_written": totals.bytes_written,
                "memory_traffic_bytes": totals.memory_traffic_bytes,
                "upper_bound": list(totals.upper_bounds),
            },
            "layers": [
                {
                    "name": layer.name, "op_type": layer.op_type, "domain": layer.domain,
                    "macs": layer.macs, "flops": layer.flops, "params": layer.params,
                    "param_bytes": layer.param_bytes, "output_bytes": layer.output_bytes,
                    "bytes_read": layer.bytes_read, "bytes_written": layer.bytes_written,
                    "status": layer.status, "note": layer.note, "op_class": layer.op_class,
                    "upper_bound": list(layer.upper_bounds),
                }
                for layer in self.layers
            ],
            "unknown": [
                {"op_type": u.op_type, "domain": u.domain, "name": u.name, "status": u.status, "reason": u.reason}
                for u in self.unknown
            ],
            "notes": list(self.notes),
        }
