"""The result of profiling a model: one row per layer, totals, memory, and what could not be counted."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

# Layer status values
COSTED = "costed"        # a cost function counted it
FREE = "free"            # registered as costing nothing (data movement, bookkeeping)
FOLDED = "folded"        # folded into a neighbour at inference (BatchNorm after Conv, ...)
CONSTANT = "constant"    # computes a constant before the graph runs (weights, shape arithmetic)
UNKNOWN = "unknown"      # no cost function for this op: MACs/FLOPs are None, never 0
UNRESOLVED = "unresolved"  # known op, but a shape or value it needs is not known


@dataclass(frozen=True)
class LayerCost:
    """One node of the graph. `macs`/`flops` are None when they could not be counted."""

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

    @property
    def counted(self) -> bool:
        return self.status not in (UNKNOWN, UNRESOLVED)


@dataclass(frozen=True)
class UnknownOp:
    op_type: str
    domain: str
    name: str
    reason: str  # "no cost rule for this op" or the shape/value that is missing
    status: str = UNKNOWN  # UNKNOWN (no rule) or UNRESOLVED (a shape or value is not known)


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

    @property
    def partial(self) -> bool:
        return bool(self.unknown)

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
            },
            "layers": [
                {
                    "name": layer.name, "op_type": layer.op_type, "domain": layer.domain,
                    "macs": layer.macs, "flops": layer.flops, "params": layer.params,
                    "param_bytes": layer.param_bytes, "output_bytes": layer.output_bytes,
                    "bytes_read": layer.bytes_read, "bytes_written": layer.bytes_written,
                    "status": layer.status, "note": layer.note,
                }
                for layer in self.layers
            ],
            "unknown": [
                {"op_type": u.op_type, "domain": u.domain, "name": u.name, "status": u.status, "reason": u.reason}
                for u in self.unknown
            ],
            "notes": list(self.notes),
        }
