"""The budget file: read it (errors name file, line and key), compare a measurement with its
entry, update it, and write it back sorted, stable and atomically.

- `model`: metric names, statuses, tolerances, `ModelEntry` and `Budget`;
- `reader`: `load_budget` / `parse_budget`;
- `compare`: `Measurement` against its entry -> `Comparison`;
- `update`: `update_budget`, which never rewrites a limit or a tolerance;
- `writer`: `dump_budget` (sorted, byte-stable) and the atomic `write_budget`.

Pure package: YAML, the standard library and `units` only (no pytest, torch, onnx or git).
The format is described for users in docs/budget-file.md.
"""
from __future__ import annotations

from ..units import change_percent, parse_whole_quantity
from .compare import (
    LAYER_FINDING_PREFIXES, Comparison, DeviceFigures, LayerChange, Measurement, MetricChange, compare, shapes_text,
)
from .errors import BudgetError, display_path
from .model import (
    BYTE_METRICS, DEVICE_METRICS, ENERGY_METRIC, LATENCY_METRIC, CustomDevice, DeviceEntry, device_figure, EVERY_METRIC, GREW, INPUTS_CHANGED, LAYER_METRIC, MISSING, NEW, OK, OVER_LIMIT, REGRESSED, REMOVED, RULES_CHANGED,
    SCHEMA_VERSION, SHRANK, TIGHTENABLE, TOLERANCE_KEYS, TOTAL_METRICS, TOTAL_TOLERANCE_KEYS, UNKNOWN, UPDATE_COMMAND, ZERO_TOLERANCE, Budget, ModelEntry,
    Tolerance, format_metric, metric_kind, signed_metric,
)
from .reader import load_budget, model_lines, parse_budget
from .update import update_budget
from .writer import dump_budget, write_budget

__all__ = [
    "BYTE_METRICS", "DEVICE_METRICS", "ENERGY_METRIC", "LATENCY_METRIC", "CustomDevice", "DeviceEntry", "DeviceFigures",
    "device_figure", "EVERY_METRIC", "GREW", "INPUTS_CHANGED", "LAYER_FINDING_PREFIXES", "LAYER_METRIC", "MISSING", "NEW", "OK",
    "OVER_LIMIT", "REGRESSED", "REMOVED", "RULES_CHANGED", "SCHEMA_VERSION", "SHRANK", "TIGHTENABLE", "TOLERANCE_KEYS", "TOTAL_METRICS", "TOTAL_TOLERANCE_KEYS",
    "UNKNOWN", "UPDATE_COMMAND", "ZERO_TOLERANCE", "Budget", "BudgetError", "Comparison", "LayerChange", "Measurement",
    "MetricChange", "ModelEntry", "Tolerance", "change_percent", "compare", "display_path", "dump_budget",
    "format_metric", "load_budget", "metric_kind", "model_lines", "parse_budget", "parse_whole_quantity",
    "shapes_text", "signed_metric", "update_budget", "write_budget",
]
