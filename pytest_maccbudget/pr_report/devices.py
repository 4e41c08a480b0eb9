"""Device estimates in the report: the budget entry's devices as JSON, their validation, and
their part of the markdown (a table per model, the slowest memory-bound layers, and a note when
latency grew more than MACs). Reads the report JSON only."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from ..budget import DEVICE_METRICS, Budget, change_percent, format_metric
from ..markdown_text import code, escape, table
from .vocabulary import change_cell

DEVICE_LABELS = {"latency_ms": "latency", "energy_mj": "energy"}
# a latency note is written when latency grew by at least this many times MACs' relative growth
_OUT_OF_PROPORTION = 2


def entry_devices_json(budget: Budget, name: str) -> dict[str, Any]:
    """The entry's devices: recorded figures, limits and the tolerances in effect there."""
    entry = budget.models[name]
    return {device: {
        "figures": {m: entry.devices[device].figures[m] for m in DEVICE_METRICS if m in entry.devices[device].figures},
        "limit": {m: entry.devices[device].limit[m] for m in DEVICE_METRICS if m in entry.devices[device].limit},
        "tolerance": {m: budget.tolerance_for(name, m, device).describe() for m in DEVICE_METRICS},
    } for device in sorted(entry.devices)}


def _figure(entry: Optional[Mapping[str, Any]], device: str, metric: str) -> Optional[float]:
    if entry is None:
        return None
    return ((entry.get("devices") or {}).get(device) or {}).get("figures", {}).get(metric)


def _now(model: Mapping[str, Any], device: str, metric: str) -> Optional[float]:
    return ((model["measurement"].get("devices") or {}).get(device) or {}).get(metric)


def device_names(model: Mapping[str, Any]) -> list[str]:
    names = set(model["measurement"].get("devices") or {})
    for key in ("budget", "base"):
        if model.get(key) is not None:
            names |= set(model[key].get("devices") or {})
    return sorted(names)


def devices_differ(model: Mapping[str, Any]) -> bool:
    """An estimate unknown, or differing from the budget's or the base's."""
    for device in model["measurement"].get("devices") or {}:
        for metric in DEVICE_METRICS:
            now = _now(model, device, metric)
            if now is None:
                return True
            if any(entry is not None and _figure(entry, device, metric) not in (None, now)
                   for entry in (model.get("budget"), model.get("base"))):
                return True
    return False


# --- markdown ---------------------------------------------------------------------------




def device_table(report: Mapping[str, Any], model: Mapping[str, Any]) -> list[str]:
    """One row per device and metric: budget (and base), this commit, the changes."""
    measured = model["measurement"].get("devices") or {}
    if not measured:
        return []
    with_base = report["base"] is not None
    budget, base = model.get("budget"), model.get("base")
    header = ["device", "estimate"] + (["base"] if with_base else []) + ["budget", "this commit", "vs budget"]
    header += ["vs base"] if with_base else []
    rows = []
    for device in sorted(measured):
        for metric in DEVICE_METRICS:
            now, old, base_value = _now(model, device, metric), _figure(budget, device, metric), _figure(base, device, metric)
            row = [code(device, in_table=True), DEVICE_LABELS[metric]]
            row += [format_metric(metric, base_value) if base_value is not None else "-"] if with_base else []
            bound = "≤ " if now is not None and measured[device].get("upper_bound") else ""
            row += [format_metric(metric, old) if old is not None else "-", bound + format_metric(metric, now),
                    change_cell(metric, old, now)]
            row += [change_cell(metric, base_value, now)] if with_base else []
            rows.append(row)
    lines = ["Estimated on devices (roofline of the counted costs):", ""]
    return lines + table(header, rows, numeric_from=2) + _memory_bound_lines(measured)


def _memory_bound_lines(measured: Mapping[str, Any]) -> list[str]:
    lines = []
    for device in sorted(measured):
        slowest = measured[device].get("memory_bound") or []
        if slowest:
            layers = ", ".join(f"{code(layer)} ({format_metric('latency_ms', ms)})" for layer, ms in slowest)
            lines.append(f"- memory-bound on {code(device)}: {layers}")
    return lines + [""] if lines else []


def latency_notes(model: Mapping[str, Any]) -> list[str]:
    """"latency on `phone` +9.0% although MACs +1.0%": latency grew out of proportion to MACs
    (against the budget), the change a MACs budget alone would not show."""
    budget = model.get("budget")
    macs_old, macs_new = (budget or {}).get("total", {}).get("macs"), model["measurement"]["total"].get("macs")
    if budget is None or macs_old is None or macs_new is None:
        return []
    macs_growth = (macs_new - macs_old) / macs_old if macs_old else 0.0
    notes = []
    for device in sorted(model["measurement"].get("devices") or {}):
        old, new = _figure(budget, device, "latency_ms"), _now(model, device, "latency_ms")
        if old is None or new is None or old == 0 or new <= old:
            continue
        growth = (new - old) / old
        if macs_growth <= 0 or growth >= _OUT_OF_PROPORTION * macs_growth:
            macs = "MACs unchanged" if macs_new == macs_old else f"MACs {change_percent(macs_old, macs_new)}"
            notes.append(f"latency on {code(device)} {change_percent(old, new)} although {escape(macs)}")
    return notes


# --- validation -----------------------------------------------------------------------------


def validate_measured_devices(devices: Any, where: str, invalid: Any) -> None:
    """`invalid(where, problem)` builds the schema's error."""
    if not isinstance(devices, dict):
        raise invalid(where, "expected an object")
    for device, figures in devices.items():
        at = f"{where}.{device}"
        if not isinstance(figures, dict):
            raise invalid(at, "expected an object")
        for metric in DEVICE_METRICS:
            _expect_estimate(figures.get(metric), f"{at}.{metric}", invalid, nullable=True)
        slowest = figures.get("memory_bound", [])
        if not isinstance(slowest, list) or not all(
                isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and _is_number(pair[1])
                for pair in slowest):
            raise invalid(f"{at}.memory_bound", "expected a list of [layer, milliseconds] pairs")
        if not isinstance(figures.get("upper_bound", False), bool):
            raise invalid(f"{at}.upper_bound", "expected true or false")


def validate_entry_devices(devices: Any, where: str, invalid: Any) -> None:
    if not isinstance(devices, dict):
        raise invalid(where, "expected an object")
    for device, entry in devices.items():
        at = f"{where}.{device}"
        if not isinstance(entry, dict):
            raise invalid(at, "expected an object")
        for key in ("figures", "limit"):
            values = entry.get(key, {})
            if not isinstance(values, dict):
                raise invalid(f"{at}.{key}", "expected an object")
            for metric, value in values.items():
                _expect_estimate(value, f"{at}.{key}.{metric}", invalid, nullable=False)
        tolerance = entry.get("tolerance", {})
        if not isinstance(tolerance, dict) or not all(isinstance(text, str) for text in tolerance.values()):
            raise invalid(f"{at}.tolerance", "expected an object of strings")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _expect_estimate(value: Any, where: str, invalid: Any, nullable: bool) -> None:
    if value is None and nullable:
        return
    if not _is_number(value) or value < 0:
        raise invalid(where, f"expected a non-negative number{' or null' if nullable else ''}")
