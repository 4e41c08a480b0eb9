"""The budget in memory: metric names and statuses, tolerances, a model's entry and the whole
file's content, and how a metric's numbers are shown."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Optional

from ..units import (
    BYTES_KIND,
    COUNT_KIND,
    MJ_KIND,
    MS_KIND,
    PERCENT_KIND,
    Number,
    format_bytes,
    format_count,
    format_duration,
    format_energy,
    parse_quantity,
    parse_whole_quantity,
)
from ..rules import FIRST_VERSION
from .errors import BudgetError

SCHEMA_VERSION = 1
TOTAL_METRICS = ("macs", "flops", "params", "param_bytes", "peak_activation_bytes")
BYTE_METRICS = {"param_bytes", "peak_activation_bytes"}
# Estimates on a target device (a roofline of the profile, devices/): per model and device, in
# milliseconds and millijoules, recorded to 4 significant digits.
LATENCY_METRIC = "latency_ms"
ENERGY_METRIC = "energy_mj"
DEVICE_METRICS = (LATENCY_METRIC, ENERGY_METRIC)
TOTAL_TOLERANCE_KEYS = TOTAL_METRICS + ("layer_macs",)  # what a model's numbers (not its devices') use
TOLERANCE_KEYS = TOTAL_TOLERANCE_KEYS + DEVICE_METRICS
LAYER_METRIC = "layer_macs"
EVERY_METRIC = "all"  # `tolerance: 2%`, or `tolerance: {all: 2%, params: 0}`: every metric not named

TOP_KEYS = ("version", "rules", "defaults", "devices", "models")
DEFAULTS_KEYS = ("tolerance",)
# The largest count or size a budget file may hold: far beyond any model (a zettaMAC machine
# would need 30 years for 1e30 MACs), and within what the summary and the reports can format.
MAX_AMOUNT = 10**30
MAX_AMOUNT_TEXT = "1e30"

MODEL_KEYS = ("inputs", "rules", "partial", "upper_bounds", "limit", "tolerance", "total", "devices", "layers")
DEVICE_ENTRY_KEYS = ("limit", "tolerance") + DEVICE_METRICS
LAYER_KEYS = ("macs",)

UPDATE_COMMAND = "pytest --macc-budget-update"

# Comparison.status values
OK = "ok"
REGRESSED = "regressed"
OVER_LIMIT = "over_limit"
MISSING = "missing"
TIGHTENABLE = "tightenable"
INPUTS_CHANGED = "inputs_changed"
RULES_CHANGED = "rules_changed"  # recorded under other counting rules, and the numbers differ
UNKNOWN = "unknown"

# MetricChange.status values (besides OK, REGRESSED, OVER_LIMIT, UNKNOWN)
GREW = "grew"          # grew within its tolerance
SHRANK = "shrank"
NEW = "new"            # no budget value to compare with
REMOVED = "removed"    # LayerChange only: in the budget, not measured


_DEVICE_KINDS = {LATENCY_METRIC: MS_KIND, ENERGY_METRIC: MJ_KIND}


def metric_kind(metric: str) -> str:
    """"bytes" for the byte metrics, "ms" and "mJ" for the device estimates, "count" for the
    others (MACs, FLOPs, parameters)."""
    if metric in _DEVICE_KINDS:
        return _DEVICE_KINDS[metric]
    return BYTES_KIND if metric in BYTE_METRICS else COUNT_KIND


def format_metric(metric: str, value: Optional[Number]) -> str:
    """1_820_000_000 MACs -> "1.82 G"; 24_000_000 param bytes -> "24.0 MB"; 10.41 latency_ms ->
    "10.4 ms"; None -> "?"."""
    if metric == LATENCY_METRIC:
        return format_duration(value)
    if metric == ENERGY_METRIC:
        return format_energy(value)
    return format_bytes(value) if metric in BYTE_METRICS else format_count(value)


def device_figure(value: Optional[float]) -> Optional[float]:
    """An estimate as it is recorded and compared: 4 significant digits (a roofline is not
    exact beyond that, and a budget file should not change with the last bit of a sum)."""
    return None if value is None else float(f"{value:.4g}")


def signed_metric(metric: str, delta: Number) -> str:
    """A change in a metric's unit with its sign: "+1.20 M", "-4.00 KB"."""
    text = format_metric(metric, delta)
    return f"+{text}" if delta > 0 else text



_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


def _exact(value: Number) -> Fraction:
    """A recorded estimate as the decimal it was written as (10.41, not the float nearest it),
    so that growth exactly at the tolerance passes."""
    return Fraction(value) if isinstance(value, int) else Fraction(Decimal(repr(value)))


@dataclass(frozen=True)
class Tolerance:
    """Growth allowed before a metric fails: relative ("2%"), absolute ("1M"), or both
    ("2% and 1M": fail only when the growth is more than 2% *and* more than 1 M)."""

    relative: Optional[Fraction]
    absolute: Optional[Number]  # a float only for the device estimates (milliseconds, millijoules)
    text: str

    def allows_growth(self, old: Number, new: Number) -> bool:
        growth = _exact(new) - _exact(old)
        if growth <= 0:
            return True
        within_relative = self.relative is not None and growth <= self.relative * _exact(old)
        within_absolute = self.absolute is not None and growth <= _exact(self.absolute)
        return within_relative or within_absolute

    @property
    def is_zero(self) -> bool:
        """True when no growth at all is allowed."""
        return not self.relative and not self.absolute

    def describe(self) -> str:
        """For messages: the text as written; no tolerance at all reads "0%"."""
        return "0%" if self.is_zero else self.text

    @classmethod
    def parse(cls, value: object, metric: str = "macs") -> Tolerance:
        """"2%", "0", 0, "1M", "1.5 MB" (byte metrics), "2% and 1M"; BudgetError otherwise."""
        return parse_tolerance(value, metric, None)


ZERO_TOLERANCE = Tolerance(relative=None, absolute=0, text="0")


_EXAMPLE_AMOUNTS = {BYTES_KIND: "1MB", COUNT_KIND: "1M", MS_KIND: "0.5ms", MJ_KIND: "0.1mJ"}


def _tolerance_examples(metric: str) -> str:
    amount = _EXAMPLE_AMOUNTS[metric_kind(metric)]
    return f"write e.g. '2%', '0', '{amount}' or '2% and {amount}'"


def parse_every_metric_tolerance(value: object, text: Optional[str]) -> Tolerance:
    """A tolerance for every metric: a percentage (an amount like 1M means one thing for MACs
    and another for bytes), or 0."""
    tolerance = parse_tolerance(value, "macs", text)
    if tolerance.absolute:
        raise BudgetError(f"a tolerance for every metric is a percentage such as 2%, got {tolerance.text!r}: "
                          "an amount means different things for MACs and for bytes; give amounts per metric")
    return tolerance


def parse_tolerance(value: object, metric: str, text: Optional[str]) -> Tolerance:
    if text is None:
        text = value.strip() if isinstance(value, str) else str(value)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BudgetError(f"cannot read tolerance {text!r}: {_tolerance_examples(metric)}")
    parts = _AND.split(value.strip()) if isinstance(value, str) else [value]
    relative: Optional[Fraction] = None
    absolute: Optional[int] = None
    for part in parts:
        try:
            if isinstance(part, str) and part.endswith("%"):
                if relative is not None:
                    raise ValueError("more than one percentage")
                relative = Fraction(repr(parse_quantity(part, PERCENT_KIND)))
                negative = relative < 0
            else:
                if absolute is not None:
                    raise ValueError("more than one absolute amount")
                kind = metric_kind(metric)
                absolute = parse_quantity(part, kind) if kind in (MS_KIND, MJ_KIND) else parse_whole_quantity(part, kind)
                negative = absolute < 0
        except ValueError as exc:
            raise BudgetError(f"cannot read tolerance {text!r}: {exc}; {_tolerance_examples(metric)}") from None
        if negative:
            raise BudgetError(f"expected a non-negative tolerance, got {text!r}")
    return Tolerance(relative=relative, absolute=absolute, text=text)


def tolerance_text(tolerance: Tolerance, metric: str) -> str:
    """The text to write: as written when it still says the same thing, else rebuilt."""
    try:
        reparsed = parse_tolerance(tolerance.text, metric, None)
    except BudgetError:
        reparsed = None
    if reparsed is not None and (reparsed.relative, reparsed.absolute) == (tolerance.relative, tolerance.absolute):
        return tolerance.text
    parts = []
    if tolerance.relative is not None:
        parts.append(f"{Decimal(tolerance.relative.numerator * 100) / tolerance.relative.denominator:f}%")
    if tolerance.absolute is not None:
        parts.append(str(tolerance.absolute))
    return " and ".join(parts) or "0"



# --- the budget ---------------------------------------------------------------------------


@dataclass
class DeviceEntry:
    """A model's budget on one device: estimates recorded by update, a limit and a tolerance
    written by hand (an update never changes those)."""

    figures: dict[str, float] = field(default_factory=dict)     # recorded: latency_ms, energy_mj
    limit: dict[str, float] = field(default_factory=dict)
    limit_text: dict[str, str] = field(default_factory=dict)
    tolerance: dict[str, Tolerance] = field(default_factory=dict)

    @property
    def hand_written(self) -> bool:
        return bool(self.limit or self.tolerance)


@dataclass(frozen=True)
class CustomDevice:
    """A device profile defined in the budget file's `devices:` section. Only its YAML is kept
    here (the budget package does not read profiles): `node` for the reader of profiles, whose
    errors then name the budget file's lines; `text` to write the section back as it was."""

    name: str
    node: object  # a yaml MappingNode
    key: str      # its dotted key in the file, e.g. "devices.my-board"


@dataclass
class ModelEntry:
    name: str
    inputs: Optional[dict[str, list[int]]] = None              # recorded by update
    limit: dict[str, int] = field(default_factory=dict)         # hand-written hard ceilings
    limit_text: dict[str, str] = field(default_factory=dict)    # the limits as written
    tolerance: dict[str, Tolerance] = field(default_factory=dict)  # hand-written, per model
    total: dict[str, int] = field(default_factory=dict)         # recorded totals
    layers: dict[str, int] = field(default_factory=dict)        # recorded per-layer MACs
    devices: dict[str, DeviceEntry] = field(default_factory=dict)  # per device name
    rules: Optional[int] = None  # counting rules it was recorded under, when not the file's
    partial: bool = False  # recorded with ops that could not be counted: the totals are lower bounds
    upper_bounds: tuple[str, ...] = ()  # recorded totals that are upper bounds (shapes that depend on data)
    bound_layers: tuple[str, ...] = ()  # recorded layers whose MACs are upper bounds


@dataclass
class Budget:
    path: Path
    exists: bool = True
    default_tolerance: dict[str, Tolerance] = field(default_factory=dict)
    models: dict[str, ModelEntry] = field(default_factory=dict)
    rules: Optional[int] = None  # the file's counting rules; None: not recorded (the first version)
    custom_devices: dict[str, CustomDevice] = field(default_factory=dict)
    custom_devices_text: str = ""  # the `devices:` section as written, comments included

    def rules_of(self, model: str) -> int:
        """The counting rules the model's entry was recorded under."""
        entry = self.models.get(model)
        if entry is not None and entry.rules is not None:
            return entry.rules
        return self.rules if self.rules is not None else FIRST_VERSION

    def tolerance_for(self, model: str, metric: str, device: str = "") -> Tolerance:
        """The metric's own tolerance, the model's then the default one; then (for layers,
        layer_macs falls back to macs) the same for the fallbacks, the one for every metric last.
        A device's estimates look in the model's entry for that device first."""
        entry = self.models.get(model)
        own = entry.tolerance if entry is not None else {}
        device_entry = entry.devices.get(device) if entry is not None and device else None
        scopes = ([device_entry.tolerance] if device_entry is not None else []) + [own, self.default_tolerance]
        lookup = ([metric] if metric != LAYER_METRIC else [LAYER_METRIC, "macs"]) + [EVERY_METRIC]
        for key in lookup:
            for tolerances in scopes:
                if key in tolerances:
                    return tolerances[key]
        return ZERO_TOLERANCE
