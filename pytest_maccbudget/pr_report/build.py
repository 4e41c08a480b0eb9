"""Measurements in, the report JSON out (docs/report-schema.md), and what a branch did to a
budget entry. Pure: `budget` and the standard library only."""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional, Sequence

from ..budget import (
    DEVICE_METRICS, TOTAL_METRICS, TOTAL_TOLERANCE_KEYS, UPDATE_COMMAND, Budget, BudgetError, Measurement, Tolerance, change_percent, compare, signed_metric,
)
from .devices import entry_devices_json
from .schema import SCHEMA, SCHEMA_VERSION, is_count
from .vocabulary import ADDED, CHANGED, LOWERED, METRIC_LABELS, RAISED, REMOVED, UNCHANGED


def build_report(measurements: Sequence[tuple[Measurement, bool]], budget: Budget, *,
                 base_budget: Optional[Budget], base: Optional[Mapping[str, str]], unused: Sequence[str],
                 budget_file: str, sources: Mapping[str, Mapping[str, Mapping[str, Any]]] = {},
                 strict: bool = False, missing_fails: bool = True,
                 errors: Sequence[Mapping[str, str]] = (), shard: Optional[tuple[int, int]] = None,
                 update_command: str = UPDATE_COMMAND, trends: Mapping[str, str] = {}) -> dict[str, Any]:
    """The report JSON for (measurement, failed) pairs: each measurement is compared with
    `budget` again; `base_budget` is the budget file at the merge base (None: no base given).
    `sources` maps model -> layer key -> {"file", "line"}. `errors` lists the models whose check
    failed before they could be measured ({"name", "test", "message"}); the key is present only
    when there are some. `shard` is (I, N) for the I-th of N shards of a sharded run, recorded so
    that a merge can tell a missing or repeated shard. `trends` maps a model to one line on how its
    recorded cost moved on the base branch. Models sorted by name; JSON-able."""
    _check_unique_names((measurement.name, measurement.nodeid) for measurement, _ in measurements)
    ordered = sorted(measurements, key=lambda pair: pair[0].name)
    models = [_model_report(measurement, failed, budget, base_budget, sources.get(measurement.name, {}),
                            strict=strict, missing_fails=missing_fails, update_command=update_command)
              for measurement, failed in ordered]
    for model in models:
        if model["name"] in trends:
            model["trend"] = str(trends[model["name"]])
    report = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "budget_file": str(budget_file),
        "base": _base_info(base),
        "models": models,
        "unused": sorted({str(name) for name in unused}),
    }
    if shard is not None:
        report["shard"] = {"index": int(shard[0]), "count": int(shard[1])}
    if errors:
        report["errors"] = sorted(({"name": str(e["name"]), "test": str(e["test"]), "message": str(e["message"])}
                                   for e in errors), key=lambda e: (e["name"], e["test"]))
    return report


def _check_unique_names(pairs: Iterator[tuple[str, str]]) -> None:
    owners: dict[str, str] = {}
    for name, test in pairs:
        if name in owners:
            raise ValueError(f"model {name!r} was measured twice, by {owners[name]} and {test}: "
                             "a model name must be measured by one test only")
        owners[name] = test


def _base_info(base: Optional[Mapping[str, str]]) -> Optional[dict[str, str]]:
    if base is None:
        return None
    if not isinstance(base.get("ref"), str) or not isinstance(base.get("commit"), str):
        raise ValueError(f"base must be {{'ref': str, 'commit': str}}, got {dict(base)!r}")
    info = {"ref": base["ref"], "commit": base["commit"]}
    if isinstance(base.get("branch"), str) and base["branch"]:
        info["branch"] = base["branch"]
    return info


def _model_report(measurement: Measurement, failed: bool, budget: Budget, base_budget: Optional[Budget],
                  sources: Mapping[str, Mapping[str, Any]], *, strict: bool, missing_fails: bool,
                  update_command: str) -> dict[str, Any]:
    comparison = compare(budget, measurement, strict=strict, missing_fails=missing_fails, update_command=update_command)
    budget_entry = entry_json(budget, measurement.name)
    base_entry = entry_json(base_budget, measurement.name) if base_budget is not None else None
    return {
        "name": measurement.name,
        "test": measurement.nodeid,
        "status": comparison.status,
        "failed": bool(failed),
        "failures": list(comparison.failures),
        "measurement": _measurement_json(measurement),
        "budget": budget_entry,
        "base": base_entry,
        "budget_change": None if base_budget is None else budget_change(base_entry, budget_entry),
        "sources": _sources_json(sources),
    }


def _measurement_json(measurement: Measurement) -> dict[str, Any]:
    data = measurement.to_json()
    data["total"] = {metric: data["total"][metric] for metric in sorted(data["total"])}
    data["layers"] = {key: data["layers"][key] for key in sorted(data["layers"])}
    return data


def _sources_json(sources: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Only well-formed locations ({"file": text, "line": n >= 1}) are kept, with "changed" (the
    line is one this branch changed) when known."""
    kept = {}
    for key in sorted(sources):
        location = sources[key]
        file, line = location.get("file"), location.get("line")
        if isinstance(file, str) and file and is_count(line) and line >= 1:
            kept[str(key)] = {"file": file, "line": int(line)}
            if isinstance(location.get("changed"), bool):
                kept[str(key)]["changed"] = location["changed"]
    return kept


def entry_json(budget: Optional[Budget], name: str) -> Optional[dict[str, Any]]:
    """A model's budget entry as report JSON (None when the budget has no such entry); the
    tolerances are the ones in effect for the model (its own, else the defaults)."""
    if budget is None or name not in budget.models:
        return None
    entry = budget.models[name]
    data = {
        "inputs": None if entry.inputs is None else {key: [int(d) for d in shape]
                                                     for key, shape in sorted(entry.inputs.items())},
        "limit": {metric: entry.limit[metric] for metric in TOTAL_METRICS if metric in entry.limit},
        "tolerance": {key: budget.tolerance_for(name, key).describe() for key in TOTAL_TOLERANCE_KEYS},
        "total": {metric: entry.total[metric] for metric in TOTAL_METRICS if metric in entry.total},
        "layers": {key: entry.layers[key] for key in sorted(entry.layers)},
    }
    if entry.devices:
        data["devices"] = entry_devices_json(budget, name)
    return data


def budget_change(base_entry: Optional[Mapping[str, Any]], entry: Optional[Mapping[str, Any]]) -> str:
    """What this branch did to a budget entry: added, removed, raised or lowered (the first total
    that differs decides, MACs first), changed (limits, tolerances, inputs or layers only), unchanged."""
    if base_entry is None:
        return UNCHANGED if entry is None else ADDED
    if entry is None:
        return REMOVED
    moves = _total_moves(base_entry, entry)
    if not _entries_differ(base_entry, entry):
        return UNCHANGED
    if moves == {"up"}:
        return RAISED
    if moves == {"down"} and not _loosened(base_entry, entry):
        return LOWERED
    return RAISED if "up" in moves and "down" not in moves else CHANGED


def branch_budget_changes(base_budget: Budget, budget: Budget) -> dict[str, list[str]]:
    """The budget edits a reviewer must look at, by kind ("raised", "added", "changed",
    "removed"), each as "name" or "name (MACs +8.2%)", names sorted."""
    changes: dict[str, list[str]] = {RAISED: [], ADDED: [], CHANGED: [], REMOVED: []}
    for name in sorted(set(base_budget.models) | set(budget.models)):
        base_entry, entry = entry_json(base_budget, name), entry_json(budget, name)
        change = budget_change(base_entry, entry)
        if change in changes:
            changes[change].append(name + _raised_by(base_entry, entry, change))
    return changes


def _raised_by(base_entry: Optional[Mapping[str, Any]], entry: Optional[Mapping[str, Any]], change: str) -> str:
    metric = first_moved_metric(base_entry, entry, change) if change == RAISED and base_entry and entry else None
    if metric is None:
        return ""
    old, new = base_entry["total"][metric], entry["total"][metric]  # type: ignore[index]
    return f" ({METRIC_LABELS[metric]} {change_percent(old, new) or signed_metric(metric, new - old)})"


def _entries_differ(base_entry: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    """Whether two entries differ in a total, a limit, a tolerance, the inputs or a layer."""
    old_tolerance, new_tolerance = base_entry.get("tolerance") or {}, entry.get("tolerance") or {}
    return (base_entry["total"] != entry["total"] or base_entry["limit"] != entry["limit"]
            or base_entry["inputs"] != entry["inputs"] or base_entry["layers"] != entry["layers"]
            or (base_entry.get("devices") or {}) != (entry.get("devices") or {})
            or not all(same_tolerance(old_tolerance.get(key), new_tolerance.get(key), key)
                       for key in TOTAL_TOLERANCE_KEYS))


def _total_moves(base_entry: Mapping[str, Any], entry: Mapping[str, Any]) -> set[str]:
    """"up"/"down" for each recorded total that differs (a raised and a lowered total: both)."""
    moves = set()
    pairs = [(base_entry["total"].get(metric), entry["total"].get(metric)) for metric in TOTAL_METRICS]
    old_devices, new_devices = base_entry.get("devices") or {}, entry.get("devices") or {}
    pairs += [(old_devices[device]["figures"].get(metric), new_devices[device]["figures"].get(metric))
              for device in set(old_devices) & set(new_devices) for metric in DEVICE_METRICS]
    for old, new in pairs:
        if old is not None and new is not None and old != new:
            moves.add("up" if new > old else "down")
    return moves


def first_moved_metric(base_entry: Mapping[str, Any], entry: Mapping[str, Any], change: str) -> Optional[str]:
    """The first total (MACs first) that moved the way `change` says."""
    for metric in TOTAL_METRICS:
        old, new = base_entry["total"].get(metric), entry["total"].get(metric)
        if old is not None and new is not None and old != new and (new > old) == (change == RAISED):
            return metric
    return None


def _loosened(base_entry: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    """A hard limit raised or removed, or a tolerance changed: never just "lowered"."""
    old_limits, new_limits = base_entry.get("limit") or {}, entry.get("limit") or {}
    if any(metric not in new_limits or new_limits[metric] > value for metric, value in old_limits.items()):
        return True
    old_devices, new_devices = base_entry.get("devices") or {}, entry.get("devices") or {}
    for device, old_device in old_devices.items():
        new_device = new_devices.get(device) or {}
        new_device_limits = new_device.get("limit") or {}
        if any(metric not in new_device_limits or new_device_limits[metric] > value
               for metric, value in (old_device.get("limit") or {}).items()):
            return True
        if (old_device.get("tolerance") or {}) != (new_device.get("tolerance") or {}):
            return True
    return (base_entry.get("tolerance") or {}) != (entry.get("tolerance") or {})


def same_tolerance(old: Optional[str], new: Optional[str], key: str) -> bool:
    if old == new:
        return True
    if old is None or new is None:
        return False
    try:
        before, after = Tolerance.parse(old, key), Tolerance.parse(new, key)
    except BudgetError:
        return False
    if before.is_zero and after.is_zero:
        return True
    return (before.relative, before.absolute) == (after.relative, after.absolute)
