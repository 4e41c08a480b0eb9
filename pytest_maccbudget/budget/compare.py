"""Compare a measurement with its budget entry: per metric and per layer, with tolerances and limits."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from ..units import (
    capped_list,
    change_percent,
    format_count,
)
from ..rules import RULES_VERSION, change_text
from .errors import display_path
from .model import (
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
    ModelEntry,
    Tolerance,
    format_metric,
    signed_metric,
)

_ALWAYS_FAILING = frozenset({REGRESSED, OVER_LIMIT, INPUTS_CHANGED, UNKNOWN, RULES_CHANGED})


def inputs_as_lists(inputs: Any) -> dict[str, list[int]]:
    return {str(name): [int(dim) for dim in shape] for name, shape in dict(inputs).items()}


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
        )


@dataclass(frozen=True)
class MetricChange:
    metric: str
    old: Optional[int]
    new: Optional[int]
    tolerance: Optional[Tolerance]
    limit: Optional[int]
    status: str   # ok, grew (within tolerance), regressed, over_limit, shrank, new, unknown


@dataclass(frozen=True)
class LayerChange:
    key: str
    old: Optional[int]
    new: Optional[int]
    status: str   # grew, shrank, new, removed, unknown

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
    lower: list[str] = field(default_factory=list)
    lower_layers: int = 0


def _compare_metric(budget: Budget, entry: ModelEntry, measured: Measurement, metric: str,
                    findings: _Findings, against_budget: bool) -> MetricChange:
    old = entry.total.get(metric)
    new = measured.total.get(metric)
    limit = entry.limit.get(metric)
    tolerance = budget.tolerance_for(entry.name, metric)
    if new is None:
        compared_with = [f"budget {format_metric(metric, old)}"] if old is not None and against_budget else []
        compared_with += [f"limit {format_metric(metric, limit)}"] if limit is not None else []
        if compared_with:
            findings.unknown.append(f"{metric} could not be counted{ops_phrase(measured.unknown_ops)}; "
                                    f"{' and '.join(compared_with)}")
        return MetricChange(metric, old, new, tolerance, limit, UNKNOWN)
    status = NEW if old is None else OK
    if old is not None and new != old:
        status = GREW if new > old else SHRANK
    if against_budget and old is not None:
        if not tolerance.allows_growth(old, new):
            status = REGRESSED
            percent = change_percent(old, new) or signed_metric(metric, new - old)
            findings.regressed.append(f"{metric} {format_metric(metric, new)} > budget "
                                      f"{format_metric(metric, old)} ({percent}, tolerance {tolerance.describe()})"
                                      + _tolerance_hint(budget, entry, metric, tolerance))
        elif new < old:
            percent = change_percent(old, new)
            findings.lower.append(f"{metric} {format_metric(metric, new)} < budget {format_metric(metric, old)}"
                                  + (f" ({percent})" if percent else ""))
    if limit is not None and new > limit:
        status = OVER_LIMIT
        findings.limit.append(f"{metric} {format_metric(metric, new)} > limit {format_metric(metric, limit)}")
    return MetricChange(metric, old, new, tolerance, limit, status)


def _tolerance_hint(budget: Budget, entry: ModelEntry, metric: str, tolerance: Tolerance) -> str:
    """When a metric has no tolerance while others do: say a tolerance covers its metric only."""
    if not tolerance.is_zero:
        return ""
    others = sorted({key for tolerances in (entry.tolerance, budget.default_tolerance) for key, other in tolerances.items()
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
            changes.append(change)
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
        findings.regressed.append(f"layer {change.key}: macs {format_count(change.new)} > budget "
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
    settings = dict(strict=strict, missing_fails=missing_fails)
    if entry is None:
        metrics = [MetricChange(m, None, measured.total.get(m), None, None,
                                UNKNOWN if measured.total.get(m) is None else NEW) for m in TOTAL_METRICS]
        text = (f"no budget entry for model {measured.name!r} in {display_path(budget.path)}; "
                f"run `{update_command}` to record it")
        return Comparison(measured.name, measured.nodeid, MISSING, metrics, [], [text], **settings)

    measured_inputs = inputs_as_lists(measured.inputs)
    inputs_changed = entry.inputs is not None and inputs_as_lists(entry.inputs) != measured_inputs
    findings = _Findings()
    metrics = [_compare_metric(budget, entry, measured, metric, findings, not inputs_changed)
               for metric in TOTAL_METRICS]
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
    failures = findings.limit + findings.regressed + findings.unknown
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
    elif findings.lower or findings.lower_layers:
        status = TIGHTENABLE
        failures = [_tightenable_line(measured.name, findings, update_command)]
    else:
        status = OK
    return Comparison(measured.name, measured.nodeid, status, metrics, layers, failures, **settings)
