"""Update a budget with measurements: add and refresh entries, never touch limits or tolerances."""
from __future__ import annotations

import copy
from typing import Iterable, Optional

from ..rules import RULES_VERSION
from .compare import Measurement, inputs_as_lists, ops_phrase
from .model import DEVICE_METRICS, MAX_AMOUNT, MAX_AMOUNT_TEXT, TOTAL_METRICS, Budget, DeviceEntry, ModelEntry, format_metric


PARTIAL_HOW = ("To record what can be counted as a partial entry (lower bounds, `partial: true`), set the ini key "
               "`macc_budget_unknown_ops = warn`; to count the op, add a cost rule (docs/counting.md, \"Adding an op\").")


def _refusal(measured: Measurement, entry: Optional[ModelEntry]) -> Optional[str]:
    """Why this measurement must not be recorded, or None."""
    kept = "its budget entry is kept as it was" if entry is not None else "no entry was written"
    if measured.partial:  # what could be counted is recorded, the rest left out (a partial entry)
        unknown_metrics: list[str] = []
        unknown_layers: list[str] = []
    else:
        unknown_metrics = [m for m in TOTAL_METRICS if measured.total.get(m) is None]
        unknown_layers = sorted(key for key, value in measured.layers.items() if value is None)
    if unknown_metrics or unknown_layers:
        what = unknown_metrics + [f"layer {key}" for key in unknown_layers]
        return (f"not recording model {measured.name!r}: {', '.join(what)} could not be counted"
                f"{ops_phrase(measured.unknown_ops)}; {kept}. {PARTIAL_HOW}")
    too_large = [m for m in TOTAL_METRICS if (measured.total.get(m) or 0) > MAX_AMOUNT]
    too_large += [f"layer {key}" for key, value in sorted(measured.layers.items()) if (value or 0) > MAX_AMOUNT]
    if too_large:
        return (f"not recording model {measured.name!r}: {', '.join(too_large)} over {MAX_AMOUNT_TEXT}, more than "
                f"a budget file may hold (a declared size the graph cannot have?); {kept}")
    if entry is None:
        return None
    over = [m for m in TOTAL_METRICS if m in entry.limit and (measured.total.get(m) or 0) > entry.limit[m]]
    details = [f"{m} {format_metric(m, measured.total[m])} ({measured.total[m]}) is over its limit "
               f"{entry.limit_text.get(m, str(entry.limit[m]))} ({format_metric(m, entry.limit[m])})" for m in over]
    details += _devices_over_limit(measured, entry)
    if not details:
        return None
    return f"refused to record model {measured.name!r}: {'; '.join(details)}; {kept}"


def _devices_over_limit(measured: Measurement, entry: ModelEntry) -> list[str]:
    details = []
    for device, figures in sorted(measured.devices.items()):
        recorded = entry.devices.get(device)
        for metric in DEVICE_METRICS:
            value = figures.figure(metric)
            if recorded is None or metric not in recorded.limit or value is None or value <= recorded.limit[metric]:
                continue
            details.append(f"{metric} on {device} {format_metric(metric, value)} is over its limit "
                           f"{recorded.limit_text.get(metric, str(recorded.limit[metric]))}")
    return details


def _recorded_devices(measured: Measurement, entry: ModelEntry, messages: list[str]) -> dict[str, DeviceEntry]:
    """The entry's devices with this measurement's estimates: a device no longer estimated
    keeps only what its owner wrote (limit, tolerance); an estimate that could not be made is
    left out, and said."""
    devices: dict[str, DeviceEntry] = {}
    for device in sorted(set(entry.devices) | set(measured.devices)):
        before = entry.devices.get(device) or DeviceEntry()
        figures = measured.devices.get(device)
        recorded: dict[str, float] = {}
        if figures is not None:
            recorded = {m: figures.figure(m) for m in DEVICE_METRICS if figures.figure(m) is not None}
            unknown = [m for m in DEVICE_METRICS if figures.figure(m) is None]
            if unknown:
                messages.append(f"model {measured.name!r}: {' and '.join(unknown)} on {device} could not be estimated "
                                f"({figures.unknown_reason or 'unknown layers'}); not recorded")
        if recorded or before.hand_written:
            devices[device] = DeviceEntry(figures=recorded, limit=dict(before.limit), limit_text=dict(before.limit_text),
                                          tolerance=dict(before.tolerance))
    return devices


def update_budget(budget: Budget, measurements: Iterable[Measurement], *, new_only: bool = False,
                  remove_unused: Iterable[str] = ()) -> tuple[Budget, list[str]]:
    """A new budget with the measured models recorded (limits and tolerances untouched), and
    the messages for measurements that were refused. The input budget is not changed."""
    updated = copy.deepcopy(budget)
    messages: list[str] = []
    recorded_by: dict[str, str] = {}
    for measured in measurements:
        if measured.name in recorded_by and recorded_by[measured.name] != measured.nodeid:
            messages.append(f"model {measured.name!r} was measured by two tests ({recorded_by[measured.name]} "
                            f"and {measured.nodeid}); the last one was recorded")
        entry = updated.models.get(measured.name)
        if new_only and measured.name in budget.models:
            continue
        refusal = _refusal(measured, budget.models.get(measured.name))
        if refusal is not None:
            messages.append(refusal)
            continue
        if entry is None:
            entry = ModelEntry(name=measured.name)
        entry.inputs = inputs_as_lists(measured.inputs)
        entry.total = {m: int(measured.total[m]) for m in TOTAL_METRICS if measured.total.get(m) is not None}
        entry.layers = {key: int(value) for key, value in sorted(measured.layers.items()) if value is not None}
        entry.devices = _recorded_devices(measured, entry, messages)
        entry.partial = measured.partial
        entry.upper_bounds = tuple(metric for metric in TOTAL_METRICS if metric in measured.upper_bounds
                                   and metric in entry.total)
        entry.bound_layers = tuple(sorted(key for key in measured.bound_layers if key in entry.layers))
        updated.models[measured.name] = entry
        recorded_by[measured.name] = measured.nodeid
    for name in remove_unused:
        if name not in recorded_by:
            updated.models.pop(name, None)
    if recorded_by:
        _record_rules(budget, updated, set(recorded_by))
    return updated, messages


def _record_rules(before: Budget, updated: Budget, recorded: set[str]) -> None:
    """The file now says the current counting rules; an entry left as it was keeps the rules it
    was recorded under, written on the entry when they differ."""
    for name, entry in updated.models.items():
        rules = RULES_VERSION if name in recorded else before.rules_of(name)
        entry.rules = None if rules == RULES_VERSION else rules
    updated.rules = RULES_VERSION
