"""Compare a measurement with its budget entry: per metric and per layer, with tolerances and limits."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional, Sequence

from ..units import (
    Number,
    capped_list,
    change_percent,
    format_count,
)
from ..rules import RULES_VERSION, change_text
from .errors import display_path
from .model import (
    DEVICE_METRICS,
    GREW,
    INPUTS_CHANGED,
    LAYER_METRIC,
    MISSING,
    NEW,
    OK,
    OVER_LIMIT,
    REGRESSED,
    REMOVED,
    RULES_CHANGED,
    SHRANK,
    TIGHTENABLE,
    TOTAL_METRICS,
    UNKNOWN,
    UPDATE_COMMAND,
    Budget,
    DeviceEntry,
    ModelEntry,
    Tolerance,
    format_metric,
    signed_metric,
)

_ALWAYS_FAILING = frozenset({REGRESSED, OVER_LIMIT, INPUTS_CHANGED, UNKNOWN, RULES_CHANGED})


def inputs_as_lists(inputs: Any) -> dict[str, list[int]]:
    return {str(name): [int(dim) for dim in shape] for name, shape in dict(inputs).items()}


@dataclass(frozen=True)
class DeviceFigures:
    """A model's estimates on one device (a roofline of its profile): None where unknown."""

    latency_ms: Optional[float]
    energy_mj: Optional[float]
    # the layers that spend longest moving bytes, slowest first: (layer key, milliseconds)
    memory_bound: tuple[tuple[str, float], ...] = ()
    unknown_reason: str = ""  # why an estimate is unknown (a layer not counted, no fp16 peak, ...)
    upper_bound: bool = False  # estimated from figures that are upper bounds (shapes that depend on data)

    def figure(self, metric: str) -> Optional[float]:
        return self.latency_ms if metric == "latency_ms" else self.energy_mj

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"latency_ms": self.latency_ms, "energy_mj": self.energy_mj,
                                "memory_bound": [[layer, ms] for layer, ms in self.memory_bound]}
        if self.unknown_reason:
            data["unknown_reason"] = self.unknown_reason
        if self.upper_bound:
            data["upper_bound"] = True
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeviceFigures:
        def number(key: str) -> Optional[float]:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(latency_ms=number("latency_ms"), energy_mj=number("energy_mj"),
                   memory_bound=tuple((str(layer), float(ms)) for layer, ms in data.get("memory_bound") or ()),
                   unknown_reason=str(data.get("unknown_reason") or ""),
                   upper_bound=bool(data.get("upper_bound", False)))


@dataclass(frozen=True)
class Measurement:
    """What one test measured for one model; JSON-able so xdist workers can send it."""

    name: str
    nodeid: str
    inputs: dict[str, list[int]]
    total: dict[str, Optional[int]]
    layers: dict[str, Optional[int]]
    unknown_ops: tuple[str, ...] = ()
    # the totals count only what could be counted (lower bounds), taken as they are because the
    # project lets uncountable ops pass (ini macc_budget_unknown_ops = warn)
    partial: bool = False
    devices: dict[str, DeviceFigures] = field(default_factory=dict)  # estimates per device name
    # figures that are upper bounds (shapes that depend on data, e.g. after NonMaxSuppression):
    # total metrics, and the layer keys whose MACs are bounds
    upper_bounds: tuple[str, ...] = ()
    bound_layers: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "nodeid": self.nodeid,
            "inputs": inputs_as_lists(self.inputs),
            "total": dict(self.total),
            "layers": dict(self.layers),
            "unknown_ops": list(self.unknown_ops),
        }
        if self.partial:
            data["partial"] = True
        if self.devices:
            data["devices"] = {name: figures.to_json() for name, figures in self.devices.items()}
        if self.upper_bounds or self.bound_layers:
            data["upper_bounds"] = {"total": list(self.upper_bounds), "layers": list(self.bound_layers)}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        return cls(
            name=str(data["name"]),
            nodeid=str(data["nodeid"]),
            inputs=inputs_as_lists(data.get("inputs") or {}),
            total={str(k): None if v is None else int(v) for k, v in (data.get("total") or {}).items()},
            layers={str(k): None if v is None else int(v) for k, v in (data.get("layers") or {}).items()},
            unknown_ops=tuple(str(op) for op in data.get("unknown_ops") or ()),
            partial=bool(data.get("partial", False)),
            devices={str(name): DeviceFigures.from_json(figures) for name, figures in (data.get("devices") or {}).items()},
            upper_bounds=tuple(str(metric) for metric in (data.get("upper_bounds") or {}).get("total") or ()),
            bound_layers=tuple(str(layer) for layer in (data.get("upper_bounds") or {}).get("layers") or ()),
        )


@dataclass(frozen=True)
class MetricChange:
    metric: str
    old: Optional[Number]
    new: Optional[Number]
    tolerance: Optional[Tolerance]
    limit: Optional[Number]
    status: str   # ok, grew (within tolerance), regressed, over_limit, shrank, new, unknown
    device: str = ""  # for latency_ms and energy_mj: the device they are estimated on
    upper_bound: bool = False  # the new figure is an upper bound (shapes that depend on data)

    @property
    def label(self) -> str:
        """"macs"; "latency_ms on phone-cpu"."""
        return f"{self.metric} on {self.device}" if self.device else self.metric


@dataclass(frozen=True)
class LayerChange:
    key: str
    old: Optional[int]
    new: Optional[int]
    status: str   # grew, shrank, new, removed, unknown
    upper_bound: bool = False  # the new MACs are an upper bound (shapes that depend on data)

    @property
    def delta(self) -> Optional[int]:
        if self.new is None and self.status == UNKNOWN:
            return None
        return (self.new or 0) - (self.old or 0)


@dataclass
class Comparison:
    name: str
    nodeid: str
    status: str
    metrics: list[MetricChange]
    layers: list[LayerChange]
    failures: list[str]   # why the status is not "ok" (also when that does not fail the test)
    strict: bool = False
    missing_fails: bool = True
    # per estimated device, its slowest memory-bound layers: (layer key, milliseconds)
    memory_bound: dict[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        if self.status in _ALWAYS_FAILING:
            return True
        if self.status == MISSING:
            return self.missing_fails
        if self.status == TIGHTENABLE:
            return self.strict
        return False


def ops_phrase(unknown_ops: tuple[str, ...]) -> str:
    """" (ops not counted: A (node): why; ... and 197 more)": a message line stays readable."""
    return f" (ops not counted: {capped_list(unknown_ops)})" if unknown_ops else ""


def shapes_text(inputs: Optional[Mapping[str, Sequence[int]]]) -> str:
    """{x: [1, 3, 224, 224]} as written in failure lines and reports; "none" for no inputs."""
    if inputs is None:
        return "none"
    return "{" + ", ".join(f"{name}: [{', '.join(str(d) for d in shape)}]" for name, shape in inputs.items()) + "}"


# How the failure lines about single layers start (the layer table shows the same changes).
LAYER_FINDING_PREFIXES = ("layer ", "new layer ")


@dataclass
class _Findings:
    """Failure lines by kind, gathered while comparing."""

    limit: list[str] = field(default_factory=list)
    regressed: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # estimates on a device not recorded yet
    lower: list[str] = field(default_factory=list)
    lower_layers: int = 0


def _compare_metric(budget: Budget, entry: ModelEntry, measured: Measurement, metric: str,
                    findings: _Findings, against_budget: bool, device: str = "", context: str = "") -> MetricChange:
    """One total, or (with `device`) one estimate on a device. `context` ends its regression
    line ("although MACs +1.0%")."""
    if device:
        recorded = entry.devices.get(device) or DeviceEntry()
        figures = measured.devices[device]
        old, new, limit = recorded.figures.get(metric), figures.figure(metric), recorded.limit.get(metric)
        label = f"{metric} (upper bound) on {device}" if figures.upper_bound else f"{metric} on {device}"
        why_unknown = f"could not be estimated ({figures.unknown_reason or 'unknown layers'})"
    else:
        old, new, limit = entry.total.get(metric), measured.total.get(metric), entry.limit.get(metric)
        label = f"{metric} (upper bound)" if metric in measured.upper_bounds else metric
        why_unknown = f"could not be counted{ops_phrase(measured.unknown_ops)}"
    tolerance = budget.tolerance_for(entry.name, metric, device)
    bound = measured.devices[device].upper_bound if device else metric in measured.upper_bounds
    if new is None:
        compared_with = [f"budget {format_metric(metric, old)}"] if old is not None and against_budget else []
        compared_with += [f"limit {format_metric(metric, limit)}"] if limit is not None else []
        if compared_with:
            findings.unknown.append(f"{label} {why_unknown}; {' and '.join(compared_with)}")
        return MetricChange(metric, old, new, tolerance, limit, UNKNOWN, device, bound)
    status = NEW if old is None else OK
    if old is not None and new != old:
        status = GREW if new > old else SHRANK
    if against_budget and old is not None:
        if not tolerance.allows_growth(old, new):
            status = REGRESSED
            percent = change_percent(old, new) or signed_metric(metric, new - old)
            findings.regressed.append(f"{label} {format_metric(metric, new)} > budget "
                                      f"{format_metric(metric, old)} ({percent}, tolerance {tolerance.describe()})"
                                      + context + _tolerance_hint(budget, entry, metric, tolerance, device))
        elif new < old:
            percent = change_percent(old, new)
            findings.lower.append(f"{label} {format_metric(metric, new)} < budget {format_metric(metric, old)}"
                                  + (f" ({percent})" if percent else ""))
    if limit is not None and new > limit:
        status = OVER_LIMIT
        findings.limit.append(f"{label} {format_metric(metric, new)} > limit {format_metric(metric, limit)}" + context)
    return MetricChange(metric, old, new, tolerance, limit, status, device, bound)


def _macs_context(entry: ModelEntry, measured: Measurement) -> str:
    """How MACs moved, for a device estimate's regression line: "although MACs +1.0%"."""
    old, new = entry.total.get("macs"), measured.total.get("macs")
    if old is None or new is None:
        return ""
    if old == new:
        return "; MACs unchanged"
    return f"; MACs {change_percent(old, new) or signed_metric('macs', new - old)}"


def _compare_devices(budget: Budget, entry: ModelEntry, measured: Measurement, findings: _Findings,
                     against_budget: bool, update_command: str) -> list[MetricChange]:
    """Each estimated device's latency and energy against the entry's; a limit on a device
    that this run did not estimate is a failure (nothing checks it), estimates recorded for one
    are left for an update to drop."""
    changes: list[MetricChange] = []
    context = _macs_context(entry, measured)
    for device in sorted(set(measured.devices) | set(entry.devices)):
        recorded = entry.devices.get(device)
        if device not in measured.devices:
            if recorded is not None and recorded.limit:
                findings.unknown.append(f"limit on device {device} is not checked: this test does not estimate the "
                                        f"model on {device} (ini macc_budget_devices or the marker's devices=)")
            elif recorded is not None and recorded.figures and against_budget:
                findings.lower.append(f"estimates on device {device} are recorded but no longer made")
            continue
        if against_budget and (recorded is None or not recorded.figures):
            findings.missing.append(f"no estimates for device {device} in the budget entry of model "
                                    f"{measured.name!r}; run `{update_command}` to record them")
        changes += [_compare_metric(budget, entry, measured, metric, findings, against_budget, device, context)
                    for metric in DEVICE_METRICS]
    return changes


def _tolerance_hint(budget: Budget, entry: ModelEntry, metric: str, tolerance: Tolerance, device: str = "") -> str:
    """When a metric has no tolerance while others do: say a tolerance covers its metric only."""
    if not tolerance.is_zero:
        return ""
    scopes = [entry.tolerance, budget.default_tolerance]
    if device and device in entry.devices:
        scopes.append(entry.devices[device].tolerance)
    others = sorted({key for tolerances in scopes for key, other in tolerances.items()
                     if key != metric and not other.is_zero})
    if not others:
        return ""
    return (f"; a tolerance on {', '.join(others)} does not cover {metric}: `tolerance: 2%` covers every metric, "
            f"`tolerance: {{all: 2%, {metric}: 0}}` every metric but one")


def _layer_change(key: str, old: Optional[int], new: Optional[int]) -> Optional[LayerChange]:
    if new is None:
        return LayerChange(key, old, None, UNKNOWN)
    if old is None:
        return LayerChange(key, None, new, NEW) if new else None
    if new == old:
        return None
    return LayerChange(key, old, new, GREW if new > old else SHRANK)


def _layer_sort_key(change: LayerChange) -> tuple[int, int, str]:
    delta = change.delta
    return (1, 0, change.key) if delta is None else (0, -abs(delta), change.key)


def _compare_layers(budget: Budget, entry: ModelEntry, measured: Measurement,
                    findings: _Findings) -> list[LayerChange]:
    """Changed layers, largest change first. An entry with no recorded layers has no per-layer
    budget: only its totals are checked."""
    if not entry.layers:
        return []
    tolerance = budget.tolerance_for(entry.name, LAYER_METRIC)
    changes = []
    for key in sorted(set(entry.layers) | set(measured.layers)):
        old = entry.layers.get(key)
        if key not in measured.layers:
            changes.append(LayerChange(key, old, None, REMOVED))
            continue
        change = _layer_change(key, old, measured.layers[key])
        if change is not None:
            changes.append(replace(change, upper_bound=key in measured.bound_layers))
    changes.sort(key=_layer_sort_key)
    for change in changes:
        _layer_finding(change, tolerance, findings)
    return changes


def _layer_finding(change: LayerChange, tolerance: Tolerance, findings: _Findings) -> None:
    if change.status == UNKNOWN:
        if change.old is None:
            findings.unknown.append(f"new layer {change.key}: MACs could not be counted (not in the budget)")
        else:
            findings.unknown.append(f"layer {change.key}: MACs could not be counted; "
                                    f"budget {format_count(change.old)}")
    elif change.status == NEW:
        if not tolerance.allows_growth(0, change.new or 0):
            findings.regressed.append(f"new layer {change.key}: {format_count(change.new)} MACs "
                                      "(not in the budget)")
    elif change.status in (REMOVED, SHRANK):
        findings.lower_layers += 1
    elif change.old is not None and change.new is not None and not tolerance.allows_growth(change.old, change.new):
        percent = change_percent(change.old, change.new) or signed_metric("macs", change.new - change.old)
        bound = " (upper bound)" if change.upper_bound else ""
        findings.regressed.append(f"layer {change.key}: macs{bound} {format_count(change.new)} > budget "
                                  f"{format_count(change.old)} ({percent}, tolerance {tolerance.describe()})")


def _tightenable_line(name: str, findings: _Findings, update_command: str) -> str:
    parts = list(findings.lower)
    if findings.lower_layers:
        noun = "layer" if findings.lower_layers == 1 else "layers"
        parts.append(f"{findings.lower_layers} {noun} lower or removed")
    return (f"model {name!r} is cheaper than its budget ({'; '.join(parts)}); "
            f"run `{update_command}` to tighten the budget")


def _rules_changed_line(name: str, recorded: int, update_command: str) -> str:
    return (f"model {name!r}: counting rules changed ({change_text(recorded)}); its budget was recorded under "
            f"v{recorded} and is not comparable: run `{update_command}` to re-record it")


def compare(budget: Budget, measured: Measurement, *, strict: bool = False,
            missing_fails: bool = True, update_command: str = UPDATE_COMMAND) -> Comparison:
    """Compare one measurement with its budget entry (see Comparison.status for the outcomes).
    `update_command` is the command the failure lines tell to run (the user's own flags kept)."""
    entry = budget.models.get(measured.name)
    settings: dict[str, Any] = dict(strict=strict, missing_fails=missing_fails,
                                    memory_bound={name: figures.memory_bound for name, figures in measured.devices.items()})
    if entry is None:
        metrics = [MetricChange(m, None, measured.total.get(m), None, None,
                                UNKNOWN if measured.total.get(m) is None else NEW, upper_bound=m in measured.upper_bounds)
                   for m in TOTAL_METRICS]
        metrics += [MetricChange(m, None, figures.figure(m), None, None,
                                 UNKNOWN if figures.figure(m) is None else NEW, device, figures.upper_bound)
                    for device, figures in sorted(measured.devices.items()) for m in DEVICE_METRICS]
        text = (f"no budget entry for model {measured.name!r} in {display_path(budget.path)}; "
                f"run `{update_command}` to record it")
        return Comparison(measured.name, measured.nodeid, MISSING, metrics, [], [text], **settings)

    measured_inputs = inputs_as_lists(measured.inputs)
    inputs_changed = entry.inputs is not None and inputs_as_lists(entry.inputs) != measured_inputs
    findings = _Findings()
    metrics = [_compare_metric(budget, entry, measured, metric, findings, not inputs_changed)
               for metric in TOTAL_METRICS]
    metrics += _compare_devices(budget, entry, measured, findings, not inputs_changed, update_command)
    if inputs_changed:
        recorded = shapes_text(inputs_as_lists(entry.inputs))
        text = (f"inputs of model {measured.name!r} changed: the budget was recorded for {recorded}, "
                f"the test measured {shapes_text(measured_inputs)}; run `{update_command}` to record the new inputs")
        return Comparison(measured.name, measured.nodeid, INPUTS_CHANGED, metrics, [],
                          [text] + findings.limit + findings.unknown, **settings)

    layers = _compare_layers(budget, entry, measured, findings)
    if measured.partial and not entry.partial:
        findings.unknown.insert(0, f"model {measured.name!r}: ops could not be counted "
                                   f"({capped_list(measured.unknown_ops)}), while its budget entry counted every op")
    failures = findings.limit + findings.regressed + findings.unknown + findings.missing
    recorded_rules = budget.rules_of(measured.name)
    moved = bool(findings.regressed or findings.lower or findings.lower_layers)
    if findings.limit:
        status = OVER_LIMIT
    elif recorded_rules != RULES_VERSION and moved:
        status = RULES_CHANGED  # the numbers moved with the rules: not the model's regression
        failures = [_rules_changed_line(measured.name, recorded_rules, update_command)] + findings.unknown
    elif entry.partial and not measured.partial:
        status = RULES_CHANGED  # a complete count against lower bounds: the counting changed, not the model
        failures = [f"model {measured.name!r}: every op is counted now, its budget entry holds lower bounds "
                    f"(partial: true) and is not comparable: run `{update_command}` to re-record it"]
    elif measured.partial and not entry.partial:
        status = UNKNOWN
    elif findings.regressed:
        status = REGRESSED
    elif findings.unknown:
        status = UNKNOWN
    elif findings.missing:
        status = MISSING
    elif findings.lower or findings.lower_layers:
        status = TIGHTENABLE
        failures = [_tightenable_line(measured.name, findings, update_command)]
    else:
        status = OK
    return Comparison(measured.name, measured.nodeid, status, metrics, layers, failures, **settings)
