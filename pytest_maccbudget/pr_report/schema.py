"""The report JSON's contract (docs/report-schema.md): write it byte-stable, read it back
validated, with "PATH: where: what is wrong" errors."""
from __future__ import annotations

import json
from typing import Any, Mapping

from .devices import validate_entry_devices, validate_measured_devices
from .vocabulary import BUDGET_CHANGES, STATUSES

SCHEMA = "pytest-maccbudget-report"
SCHEMA_VERSION = 1


def dump_report(report: Mapping[str, Any]) -> str:
    """The report as indented JSON with sorted keys and a final newline: byte-stable."""
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


def load_report(text: str, path: str) -> dict[str, Any]:
    """Parse and validate a report; ValueError "PATH: what is wrong" otherwise."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a JSON report: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:  # json's decoder recurses once per nesting level
        raise ValueError(f"{path}: not a pytest-maccbudget report: nested too deep") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a pytest-maccbudget report: expected a JSON object, got {_json_type(data)}")
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a pytest-maccbudget report: \"schema\" is {data.get('schema')!r}, "
                         f"expected {SCHEMA!r}")
    version = data.get("version")
    if not is_count(version) or version != SCHEMA_VERSION:
        raise ValueError(f"{path}: unsupported report version {version!r}: this version of pytest-maccbudget "
                         f"reads version {SCHEMA_VERSION}")
    try:
        _validate_report(data)
    except _Invalid as exc:
        raise ValueError(f"{path}: {exc.where}: {exc.problem}") from None
    errors = data.get("errors", [])
    if not isinstance(errors, list) or not all(
            isinstance(e, dict) and all(isinstance(e.get(k), str) for k in ("name", "test", "message")) for e in errors):
        raise ValueError(f'{path}: errors: expected a list of {{"name", "test", "message"}} strings')
    return data


class _Invalid(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _expect(value: Any, kind: type, where: str, what: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Invalid(where, f"expected {what}, got {_json_type(value)}")


def _expect_counts(value: Any, where: str, nullable: bool) -> None:
    _expect(value, dict, where, "an object")
    for key, number in value.items():
        if number is None and nullable:
            continue
        if not is_count(number) or number < 0:
            raise _Invalid(f"{where}.{key}", f"expected a non-negative integer{' or null' if nullable else ''}, "
                                             f"got {_json_type(number) if not is_count(number) else number}")


def _validate_report(data: Mapping[str, Any]) -> None:
    _expect(data.get("budget_file"), str, "budget_file", "a string")
    base = data.get("base")
    if base is not None:
        _expect(base, dict, "base", "null or an object")
        for key in ("ref", "commit"):
            _expect(base.get(key), str, f"base.{key}", "a string")
        if "branch" in base:
            _expect(base["branch"], str, "base.branch", "a string")
    _expect(data.get("models"), list, "models", "a list")
    names: dict[str, str] = {}
    for index, model in enumerate(data["models"]):
        where = f"models[{index}]"
        _validate_model(model, where)
        if model["name"] in names:
            raise _Invalid(where, f"model {model['name']!r} is listed twice "
                                  f"({names[model['name']]} and {model['test']})")
        names[model["name"]] = model["test"]
    _validate_shard(data.get("shard"))
    _expect(data.get("unused"), list, "unused", "a list")
    for index, name in enumerate(data["unused"]):
        _expect(name, str, f"unused[{index}]", "a string")


def _validate_shard(shard: Any) -> None:
    if shard is None:
        return
    _expect(shard, dict, "shard", "null or an object")
    for key in ("index", "count"):
        _expect(shard.get(key), int, f"shard.{key}", "an integer")
    if not 1 <= shard["index"] <= shard["count"]:
        raise _Invalid("shard", f"index {shard['index']} is not between 1 and count {shard['count']}")


def _validate_model(model: Any, where: str) -> None:
    _expect(model, dict, where, "an object")
    for key in ("name", "test"):
        _expect(model.get(key), str, f"{where}.{key}", "a string")
    if model.get("status") not in STATUSES:
        raise _Invalid(f"{where}.status", f"expected one of {', '.join(STATUSES)}, got {model.get('status')!r}")
    _expect(model.get("failed"), bool, f"{where}.failed", "true or false")
    _expect(model.get("failures"), list, f"{where}.failures", "a list")
    for index, line in enumerate(model["failures"]):
        _expect(line, str, f"{where}.failures[{index}]", "a string")
    _validate_measurement(model.get("measurement"), f"{where}.measurement", model["name"])
    for key in ("budget", "base"):
        if model.get(key) is not None:
            _validate_entry(model[key], f"{where}.{key}")
    change = model.get("budget_change")
    if change is not None and change not in BUDGET_CHANGES:
        raise _Invalid(f"{where}.budget_change", f"expected null or one of {', '.join(BUDGET_CHANGES)}, got {change!r}")
    if "trend" in model:
        _expect(model["trend"], str, f"{where}.trend", "a string")
    sources = model.get("sources", {})
    _expect(sources, dict, f"{where}.sources", "an object")
    for key, location in sources.items():
        _expect(location, dict, f"{where}.sources.{key}", "an object")
        _expect(location.get("file"), str, f"{where}.sources.{key}.file", "a string")
        _expect(location.get("line"), int, f"{where}.sources.{key}.line", "an integer")
        if "changed" in location:
            _expect(location["changed"], bool, f"{where}.sources.{key}.changed", "true or false")


def _validate_measurement(measurement: Any, where: str, name: str) -> None:
    _expect(measurement, dict, where, "an object")
    _expect(measurement.get("name"), str, f"{where}.name", "a string")
    if measurement["name"] != name:
        raise _Invalid(f"{where}.name", f"{measurement['name']!r} is not the model's name {name!r}")
    _expect(measurement.get("nodeid"), str, f"{where}.nodeid", "a string")
    _validate_inputs(measurement.get("inputs"), f"{where}.inputs")
    _expect_counts(measurement.get("total"), f"{where}.total", nullable=True)
    _expect_counts(measurement.get("layers"), f"{where}.layers", nullable=True)
    if "devices" in measurement:
        validate_measured_devices(measurement["devices"], f"{where}.devices", _Invalid)
    ops = measurement.get("unknown_ops", [])
    _expect(ops, list, f"{where}.unknown_ops", "a list")
    for index, op in enumerate(ops):
        _expect(op, str, f"{where}.unknown_ops[{index}]", "a string")
    if "upper_bounds" in measurement:
        _validate_upper_bounds(measurement["upper_bounds"], f"{where}.upper_bounds")


def _validate_upper_bounds(bounds: Any, where: str) -> None:
    _expect(bounds, dict, where, "an object")
    for key in ("total", "layers"):
        names = bounds.get(key, [])
        _expect(names, list, f"{where}.{key}", "a list")
        for index, name in enumerate(names):
            _expect(name, str, f"{where}.{key}[{index}]", "a string")


def _validate_inputs(inputs: Any, where: str) -> None:
    _expect(inputs, dict, where, "an object")
    for key, shape in inputs.items():
        _expect(shape, list, f"{where}.{key}", "a list of dimensions")
        for index, dim in enumerate(shape):
            _expect(dim, int, f"{where}.{key}[{index}]", "an integer")


def _validate_entry(entry: Any, where: str) -> None:
    _expect(entry, dict, where, "null or an object")
    if entry.get("inputs") is not None:
        _validate_inputs(entry["inputs"], f"{where}.inputs")
    for key in ("limit", "total", "layers"):
        _expect_counts(entry.get(key), f"{where}.{key}", nullable=False)
    if "devices" in entry:
        validate_entry_devices(entry["devices"], f"{where}.devices", _Invalid)
    tolerance = entry.get("tolerance", {})
    _expect(tolerance, dict, f"{where}.tolerance", "an object")
    for key, text in tolerance.items():
        _expect(text, str, f"{where}.tolerance.{key}", "a string")
