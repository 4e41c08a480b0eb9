"""The pull-request report: measurements in, the report JSON out, and from it the markdown for
`$GITHUB_STEP_SUMMARY` and the sticky PR comment, and the `::error` annotations.

Pure module: `budget`, `units`, `json` and the standard library only (no pytest, torch, onnx or
git). The report JSON is documented, field by field, in docs/report-schema.md; every renderer
here reads only that JSON, so a report loaded from a file renders the same bytes as the one
just built. Unknown values (`null` in the JSON) print as "?", never as 0.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

from .budget import (
    INPUTS_CHANGED,
    MISSING,
    OK,
    OVER_LIMIT,
    REGRESSED,
    TIGHTENABLE,
    TOLERANCE_KEYS,
    TOTAL_METRICS,
    UNKNOWN,
    UPDATE_COMMAND,
    Budget,
    BudgetError,
    Measurement,
    ModelEntry,
    Tolerance,
    change_percent,
    compare,
    format_metric,
    LAYER_FINDING_PREFIXES,
    shapes_text,
    signed_metric,
)
from .action.commands import MARKER, escape_data, escape_property
from .units import format_count, plural

SCHEMA = "pytest-maccbudget-report"
SCHEMA_VERSION = 1
STEP_SUMMARY_LIMIT = 1024 * 1024      # GitHub's $GITHUB_STEP_SUMMARY cap (bytes)
COMMENT_LIMIT = 65536                 # a PR comment's cap (characters)
MAX_ERROR_ANNOTATIONS = 10            # GitHub shows at most 10 error annotations per step
TOP_LAYERS = 10                       # rows of a "layers that changed most" table
CHART_LAYERS = 10                     # bars per series in a chart
LABEL_WIDTH = 24                      # characters of a layer name on a chart's x-axis
LAYER_FINDINGS = 3                    # failure lines about single layers listed per model

STATUSES = (OK, REGRESSED, OVER_LIMIT, MISSING, TIGHTENABLE, INPUTS_CHANGED, UNKNOWN)
ADDED, RAISED, LOWERED, UNCHANGED, CHANGED, REMOVED = "added", "raised", "lowered", "unchanged", "changed", "removed"
BUDGET_CHANGES = (ADDED, RAISED, LOWERED, UNCHANGED, CHANGED, REMOVED)
FLAGGED_CHANGES = (ADDED, RAISED, CHANGED, REMOVED)   # budget edits a reviewer must look at
_REGRESSION_STATUSES = frozenset({REGRESSED, OVER_LIMIT, INPUTS_CHANGED})
_REGRESSION_WHEN_FAILED = frozenset({MISSING, UNKNOWN})

METRIC_LABELS = {
    "macs": "MACs",
    "flops": "FLOPs",
    "params": "params",
    "param_bytes": "parameter bytes",
    "peak_activation_bytes": "peak activation memory",
    "layer_macs": "layer MACs",
}
STATUS_TEXT = {
    OK: "ok",
    REGRESSED: "regressed",
    OVER_LIMIT: "over limit",
    MISSING: "no budget entry",
    TIGHTENABLE: "can be tightened",
    INPUTS_CHANGED: "inputs changed",
    UNKNOWN: "not counted",
}
_STATUS_EMOJI = {OK: "✅", REGRESSED: "❌", OVER_LIMIT: "🛑", INPUTS_CHANGED: "❌", UNKNOWN: "❓"}
_TRUNCATED = "report truncated to fit GitHub's limit"


# --- building -----------------------------------------------------------------------------


def build_report(measurements: Sequence[tuple[Measurement, bool]], budget: Budget, *,
                 base_budget: Optional[Budget], base: Optional[Mapping[str, str]], unused: Sequence[str],
                 budget_file: str, sources: Mapping[str, Mapping[str, Mapping[str, Any]]] = {},
                 strict: bool = False, missing_fails: bool = True,
                 errors: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    """The report JSON for (measurement, failed) pairs: each measurement is compared with
    `budget` again; `base_budget` is the budget file at the merge base (None: no base given).
    `sources` maps model -> layer key -> {"file", "line"}. `errors` lists the models whose check
    failed before they could be measured ({"name", "test", "message"}); the key is present only
    when there are some. Models sorted by name; JSON-able."""
    _check_unique_names((measurement.name, measurement.nodeid) for measurement, _ in measurements)
    ordered = sorted(measurements, key=lambda pair: pair[0].name)
    models = [_model_report(measurement, failed, budget, base_budget, sources.get(measurement.name, {}),
                            strict=strict, missing_fails=missing_fails)
              for measurement, failed in ordered]
    report = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "budget_file": str(budget_file),
        "base": _base_info(base),
        "models": models,
        "unused": sorted({str(name) for name in unused}),
    }
    if errors:
        report["errors"] = sorted(({"name": str(e["name"]), "test": str(e["test"]), "message": str(e["message"])}
                                   for e in errors), key=lambda e: (e["name"], e["test"]))
    return report


def merged_errors(reports: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The models that could not be checked, from every shard report."""
    return [dict(error) for report in reports for error in report.get("errors", ())]


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
    return {"ref": base["ref"], "commit": base["commit"]}


def _model_report(measurement: Measurement, failed: bool, budget: Budget, base_budget: Optional[Budget],
                  sources: Mapping[str, Mapping[str, Any]], *, strict: bool, missing_fails: bool) -> dict[str, Any]:
    comparison = compare(budget, measurement, strict=strict, missing_fails=missing_fails)
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
    """Only well-formed locations ({"file": text, "line": n >= 1}) are kept."""
    kept = {}
    for key in sorted(sources):
        location = sources[key]
        file, line = location.get("file"), location.get("line")
        if isinstance(file, str) and file and _is_count(line) and line >= 1:
            kept[str(key)] = {"file": file, "line": int(line)}
    return kept


def entry_json(budget: Optional[Budget], name: str) -> Optional[dict[str, Any]]:
    """A model's budget entry as report JSON (None when the budget has no such entry); the
    tolerances are the ones in effect for the model (its own, else the defaults)."""
    if budget is None or name not in budget.models:
        return None
    entry = budget.models[name]
    return {
        "inputs": None if entry.inputs is None else {key: [int(d) for d in shape]
                                                     for key, shape in sorted(entry.inputs.items())},
        "limit": {metric: entry.limit[metric] for metric in TOTAL_METRICS if metric in entry.limit},
        "tolerance": {key: budget.tolerance_for(name, key).describe() for key in TOLERANCE_KEYS},
        "total": {metric: entry.total[metric] for metric in TOTAL_METRICS if metric in entry.total},
        "layers": {key: entry.layers[key] for key in sorted(entry.layers)},
    }


def budget_change(base_entry: Optional[Mapping[str, Any]], entry: Optional[Mapping[str, Any]]) -> str:
    """What this branch did to a budget entry: added, removed, raised or lowered (the first total
    that differs decides, MACs first), changed (limits, tolerances, inputs or layers only), unchanged."""
    if base_entry is None:
        return UNCHANGED if entry is None else ADDED
    if entry is None:
        return REMOVED
    moves = _total_moves(base_entry, entry)
    if not _entry_differences(base_entry, entry):
        return UNCHANGED
    if moves == {"up"}:
        return RAISED
    if moves == {"down"} and not _loosened(base_entry, entry):
        return LOWERED
    return RAISED if "up" in moves and "down" not in moves else CHANGED


def _total_moves(base_entry: Mapping[str, Any], entry: Mapping[str, Any]) -> set[str]:
    """"up"/"down" for each recorded total that differs (a raised and a lowered total: both)."""
    moves = set()
    for metric in TOTAL_METRICS:
        old, new = base_entry["total"].get(metric), entry["total"].get(metric)
        if old is not None and new is not None and old != new:
            moves.add("up" if new > old else "down")
    return moves


def _first_moved_metric(base_entry: Mapping[str, Any], entry: Mapping[str, Any], change: str) -> Optional[str]:
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
    return (base_entry.get("tolerance") or {}) != (entry.get("tolerance") or {})


def _entry_differences(base_entry: Mapping[str, Any], entry: Mapping[str, Any]) -> list[str]:
    """One phrase per difference between two entries ("MACs 1.00 M -> 1.08 M (+8.0%)")."""
    phrases = []
    for metric in TOTAL_METRICS:
        old, new = base_entry["total"].get(metric), entry["total"].get(metric)
        if old != new:
            phrases.append(f"{METRIC_LABELS[metric]} {_value(metric, old)} → {_value(metric, new)}"
                           + _percent_suffix(old, new))
    for metric in TOTAL_METRICS:
        old, new = base_entry["limit"].get(metric), entry["limit"].get(metric)
        if old != new:
            phrases.append(f"limit on {METRIC_LABELS[metric]} {_limit_value(metric, old)} → "
                           f"{_limit_value(metric, new)}")
    old_tolerance, new_tolerance = base_entry.get("tolerance") or {}, entry.get("tolerance") or {}
    for key in TOLERANCE_KEYS:
        old, new = old_tolerance.get(key), new_tolerance.get(key)
        if not _same_tolerance(old, new, key):
            phrases.append(f"tolerance on {METRIC_LABELS[key]} {old or '?'} → {new or '?'}")
    if base_entry["inputs"] != entry["inputs"]:
        phrases.append(f"inputs {shapes_text(_sorted(base_entry['inputs']))} → {shapes_text(_sorted(entry['inputs']))}")
    changed_layers = _changed_keys(base_entry["layers"], entry["layers"])
    if changed_layers:
        phrases.append(f"{changed_layers} layer {'entry' if changed_layers == 1 else 'entries'} changed")
    return phrases


def _same_tolerance(old: Optional[str], new: Optional[str], key: str) -> bool:
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


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> int:
    return sum(1 for key in set(old) | set(new) if old.get(key) != new.get(key))


def _sorted(inputs: Optional[Mapping[str, Sequence[int]]]) -> Optional[dict[str, Sequence[int]]]:
    return None if inputs is None else dict(sorted(inputs.items()))


# --- JSON in and out ----------------------------------------------------------------------


def dump_report(report: Mapping[str, Any]) -> str:
    """The report as indented JSON with sorted keys and a final newline: byte-stable."""
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


def load_report(text: str, path: str) -> dict[str, Any]:
    """Parse and validate a report; ValueError "PATH: what is wrong" otherwise."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a JSON report: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a pytest-maccbudget report: expected a JSON object, got {_json_type(data)}")
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a pytest-maccbudget report: \"schema\" is {data.get('schema')!r}, "
                         f"expected {SCHEMA!r}")
    version = data.get("version")
    if not _is_count(version) or version != SCHEMA_VERSION:
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


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _expect(value: Any, kind: type, where: str, what: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _Invalid(where, f"expected {what}, got {_json_type(value)}")


def _expect_counts(value: Any, where: str, nullable: bool) -> None:
    _expect(value, dict, where, "an object")
    for key, number in value.items():
        if number is None and nullable:
            continue
        if not _is_count(number) or number < 0:
            raise _Invalid(f"{where}.{key}", f"expected a non-negative integer{' or null' if nullable else ''}, "
                                             f"got {_json_type(number) if not _is_count(number) else number}")


def _validate_report(data: Mapping[str, Any]) -> None:
    _expect(data.get("budget_file"), str, "budget_file", "a string")
    base = data.get("base")
    if base is not None:
        _expect(base, dict, "base", "null or an object")
        for key in ("ref", "commit"):
            _expect(base.get(key), str, f"base.{key}", "a string")
    _expect(data.get("models"), list, "models", "a list")
    names: dict[str, str] = {}
    for index, model in enumerate(data["models"]):
        where = f"models[{index}]"
        _validate_model(model, where)
        if model["name"] in names:
            raise _Invalid(where, f"model {model['name']!r} is listed twice "
                                  f"({names[model['name']]} and {model['test']})")
        names[model["name"]] = model["test"]
    _expect(data.get("unused"), list, "unused", "a list")
    for index, name in enumerate(data["unused"]):
        _expect(name, str, f"unused[{index}]", "a string")


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
    sources = model.get("sources", {})
    _expect(sources, dict, f"{where}.sources", "an object")
    for key, location in sources.items():
        _expect(location, dict, f"{where}.sources.{key}", "an object")
        _expect(location.get("file"), str, f"{where}.sources.{key}.file", "a string")
        _expect(location.get("line"), int, f"{where}.sources.{key}.line", "an integer")


def _validate_measurement(measurement: Any, where: str, name: str) -> None:
    _expect(measurement, dict, where, "an object")
    _expect(measurement.get("name"), str, f"{where}.name", "a string")
    if measurement["name"] != name:
        raise _Invalid(f"{where}.name", f"{measurement['name']!r} is not the model's name {name!r}")
    _expect(measurement.get("nodeid"), str, f"{where}.nodeid", "a string")
    _validate_inputs(measurement.get("inputs"), f"{where}.inputs")
    _expect_counts(measurement.get("total"), f"{where}.total", nullable=True)
    _expect_counts(measurement.get("layers"), f"{where}.layers", nullable=True)
    ops = measurement.get("unknown_ops", [])
    _expect(ops, list, f"{where}.unknown_ops", "a list")
    for index, op in enumerate(ops):
        _expect(op, str, f"{where}.unknown_ops[{index}]", "a string")


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
    tolerance = entry.get("tolerance", {})
    _expect(tolerance, dict, f"{where}.tolerance", "an object")
    for key, text in tolerance.items():
        _expect(text, str, f"{where}.tolerance.{key}", "a string")


# --- merging shards -----------------------------------------------------------------------

Pairs = list[tuple[Measurement, bool]]


def merge_reports(reports: Sequence[Mapping[str, Any]]
                  ) -> tuple[Pairs, Optional[dict[str, str]], dict[str, dict[str, Any]]]:
    """The (measurement, failed) pairs, base and sources of several shard reports, to rebuild one
    report with build_report. A model in two shards, or shards with different bases: ValueError."""
    if not reports:
        raise ValueError("no reports to merge")
    base = _common_base(reports)
    pairs: Pairs = []
    owners: dict[str, str] = {}
    sources: dict[str, dict[str, Any]] = {}
    for report in reports:
        for model in report["models"]:
            name = model["name"]
            if name in owners:
                raise ValueError(f"model {name!r} is in two shard reports, measured by {owners[name]} and "
                                 f"{model['test']}: each model must be measured by one shard only")
            owners[name] = model["test"]
            pairs.append((Measurement.from_json(model["measurement"]), bool(model["failed"])))
            sources[name] = {key: dict(location) for key, location in (model.get("sources") or {}).items()}
    return pairs, base, sources


def _common_base(reports: Sequence[Mapping[str, Any]]) -> Optional[dict[str, str]]:
    first = reports[0].get("base")
    for index, report in enumerate(reports[1:], start=2):
        other = report.get("base")
        if _base_commit(first) != _base_commit(other):
            raise ValueError(f"shard reports 1 and {index} were compared with different bases "
                             f"({_describe_base(first)} and {_describe_base(other)}): run every shard with the "
                             "same --macc-budget-base on the same commit")
    return None if first is None else {"ref": first["ref"], "commit": first["commit"]}


def _base_commit(base: Optional[Mapping[str, str]]) -> Optional[str]:
    return None if base is None else base["commit"]


def _describe_base(base: Optional[Mapping[str, str]]) -> str:
    return "no base" if base is None else f"{base['ref']} at {base['commit'][:12]}"


def base_budget_from_reports(reports: Sequence[Mapping[str, Any]], path: Path) -> Optional[Budget]:
    """The base budget as far as the reports recorded it (the measured models' base entries),
    for build_report's base_budget when merging shards; None when the reports have no base."""
    if not reports or _common_base(reports) is None:
        return None
    budget = Budget(path=Path(path), exists=True)
    for report in reports:
        for model in report["models"]:
            if model.get("base") is not None:
                budget.models[model["name"]] = entry_from_json(model["name"], model["base"])
    return budget


def entry_from_json(name: str, entry: Mapping[str, Any]) -> ModelEntry:
    """A ModelEntry back from its report JSON (the inverse of entry_json)."""
    inputs = entry.get("inputs")
    return ModelEntry(
        name=name,
        inputs=None if inputs is None else {str(key): [int(d) for d in shape] for key, shape in inputs.items()},
        limit={str(metric): int(value) for metric, value in entry["limit"].items()},
        tolerance={str(key): Tolerance.parse(text, key) for key, text in (entry.get("tolerance") or {}).items()},
        total={str(metric): int(value) for metric, value in entry["total"].items()},
        layers={str(key): int(value) for key, value in entry["layers"].items()},
    )


# --- reading a model out of the report ----------------------------------------------------


def is_regression(model: Mapping[str, Any]) -> bool:
    """Regressed, over a limit, inputs changed; no entry or not counted when that failed the test."""
    status = model["status"]
    if not model["failed"]:  # an update records growth: it is not a regression of that run
        return False
    return status in _REGRESSION_STATUSES or status in _REGRESSION_WHEN_FAILED


def regressions(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The regressed models, largest MACs growth over the budget first, then the others by name."""
    return sorted((model for model in report["models"] if is_regression(model)), key=_regression_order)


def _regression_order(model: Mapping[str, Any]) -> tuple[int, int, str]:
    growth = _macs_growth(model)
    if growth is not None and growth > 0:
        return (0, -growth, model["name"])
    return (1, 0, model["name"])


def _macs_growth(model: Mapping[str, Any]) -> Optional[int]:
    """Measured total MACs minus the budget's; None when either is unknown or absent."""
    old = _entry_total(model.get("budget"), "macs")
    new = _now_total(model, "macs")
    return None if old is None or new is None else new - old


def _entry_total(entry: Optional[Mapping[str, Any]], metric: str) -> Optional[int]:
    return None if entry is None else entry["total"].get(metric)


def _now_total(model: Mapping[str, Any], metric: str) -> Optional[int]:
    return model["measurement"]["total"].get(metric)


def _entry_layers(entry: Optional[Mapping[str, Any]]) -> Optional[Mapping[str, int]]:
    """An entry's per-layer MACs; None when there is no entry or it records no layers."""
    if entry is None or not entry["layers"]:
        return None
    return entry["layers"]


def _top_grown_layer(model: Mapping[str, Any]) -> Optional[tuple[str, int]]:
    """(layer, growth) of the layer that grew most against the budget's layers (the base's when
    the budget records none); a layer not in the reference grew from 0. None: nothing grew."""
    reference = _entry_layers(model.get("budget"))
    if reference is None:
        reference = _entry_layers(model.get("base"))
    if reference is None:
        return None
    grown = [(value - reference.get(key, 0), key) for key, value in model["measurement"]["layers"].items()
             if value is not None and value > reference.get(key, 0)]
    if not grown:
        return None
    # a layer that broke its tolerance (named in the failures) comes before one that only grew
    failing = {key for _, key in grown if any(f"layer {key}:" in line for line in model.get("failures", ()))}
    growth, key = min(grown, key=lambda item: (item[1] not in failing, -item[0], item[1]))
    return key, growth


# --- annotations --------------------------------------------------------------------------


def annotations(report: Mapping[str, Any], *, budget_path: str, budget_lines: Mapping[str, int],
                max_errors: int = MAX_ERROR_ANNOTATIONS) -> list[str]:
    """One `::error` line per regression, largest first, at most max_errors, then one `::notice`
    for the rest. Each points at the source line of the module class of the layer that grew most
    when known, else at the model's line in the budget file."""
    ordered = regressions(report)
    shown = ordered[:max(0, max_errors)]
    lines = [_error_command(model, budget_path, budget_lines) for model in shown]
    rest = len(ordered) - len(shown)
    if rest:
        noun = "regression is" if rest == 1 else "regressions are"
        lines.append("::notice::" + escape_data(
            f"{rest} more budget {noun} not annotated (GitHub shows at most {max_errors} error annotations "
            "per step); see the step summary"))
    return lines


def _error_command(model: Mapping[str, Any], budget_path: str, budget_lines: Mapping[str, int]) -> str:
    location = _source_location(model)
    if location is not None:
        file, line = location
    else:
        file, line = budget_path, budget_lines.get(model["name"])
    properties = [("file", file)]
    if line is not None:
        properties.append(("line", str(line)))
    properties.append(("title", _annotation_title(model)))
    rendered = ",".join(f"{key}={escape_property(value)}" for key, value in properties)
    return f"::error {rendered}::{escape_data(_annotation_message(model, location is not None))}"


def _source_location(model: Mapping[str, Any]) -> Optional[tuple[str, int]]:
    """Where the module class of the layer that grew most is defined, if the report knows.
    A changed input shape is the test's doing, not a layer's: that points at the budget file."""
    if model["status"] == INPUTS_CHANGED:
        return None
    grown = _top_grown_layer(model)
    if grown is None:
        return None
    location = (model.get("sources") or {}).get(grown[0])
    if location is None:
        return None
    return location["file"], int(location["line"])


def _annotation_title(model: Mapping[str, Any]) -> str:
    title = f"pytest-maccbudget: {model['name']}: {STATUS_TEXT[model['status']]}"
    old, new = _entry_total(model.get("budget"), "macs"), _now_total(model, "macs")
    if old is not None and new is not None and new != old:
        title += f" (MACs {change_percent(old, new) or signed_metric('macs', new - old)})"
    return title


def _annotation_message(model: Mapping[str, Any], at_source: bool) -> str:
    lines = [f"model {model['name']!r} ({model['test']}): {STATUS_TEXT[model['status']]}"]
    lines += _failures_shown(model["failures"], _Shape())
    grown = _top_grown_layer(model)
    if at_source and grown is not None:
        lines.append(f"largest growth: layer {grown[0]} (+{format_count(grown[1])} MACs), "
                     "whose module class is defined here")
    return "\n".join(lines)


# --- markdown: text helpers ---------------------------------------------------------------

_MARKDOWN_SPECIAL = "\\*_[]<|~&"
_BLOCK_STARTS = "#>+-="  # would open a heading, quote or list at the start of a line
_ORDERED_ITEM = re.compile(r"^(\d+)[.)]")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _code(text: str, in_table: bool = False) -> str:
    """A code span; a backtick inside becomes a quote, and in a table | is escaped."""
    clean = _one_line(text).replace("`", "'")
    if in_table:
        clean = clean.replace("|", "\\|")
    return f"`{clean}`"


def _escape_plain(text: str) -> str:
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in text)


def _escape_start(text: str) -> str:
    """A backslash before what would open a heading, quote, list or setext rule at the start."""
    if text[:1] and text[0] in _BLOCK_STARTS:
        return "\\" + text
    match = _ORDERED_ITEM.match(text)
    return f"{match.group(1)}\\{text[match.end(1):]}" if match else text


def _escape(text: str, in_table: bool = False) -> str:
    """Plain text for markdown: `code spans` are kept (| escaped in tables), the rest escaped."""
    parts = _one_line(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: no code spans at all
        return _escape_start(_escape_plain(_one_line(text).replace("`", "'")))
    out = []
    for index, part in enumerate(parts):
        if index % 2 == 1 and part:
            out.append(_code(part, in_table))
        else:
            out.append(_escape_plain(part))
    return _escape_start("".join(out))


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int,
           text_after: Optional[int] = None) -> list[str]:
    """A GitHub table with a blank line after it; the columns from numeric_from up to text_after
    (exclusive; None: to the end) hold numbers and are right-aligned."""
    end = len(header) if text_after is None else text_after
    rule = ["--:" if numeric_from <= index < end else ":--" for index in range(len(header))]
    return [_row(header), _row(rule)] + [_row(row) for row in rows] + [""]


# --- markdown: numbers --------------------------------------------------------------------


def _value(metric: str, value: Optional[int]) -> str:
    """A number in human units; None (unknown) is "?"."""
    return format_metric(metric, value)


def _limit_value(metric: str, value: Optional[int]) -> str:
    return "none" if value is None else format_metric(metric, value)


def _cell(metric: str, entry: Optional[Mapping[str, Any]], value: Optional[int]) -> str:
    """A budget or base value: "-" when there is no entry or no such value."""
    return "-" if entry is None or value is None else format_metric(metric, value)


def _percent_suffix(old: Optional[int], new: Optional[int]) -> str:
    if old is None or new is None or old == new:
        return ""
    percent = change_percent(old, new)
    return f" ({percent})" if percent else ""


def _change(metric: str, old: Optional[int], new: Optional[int], with_amount: bool = False) -> str:
    """The change from old to new: "-" with nothing to compare with, "?" unknown, "=" none."""
    if old is None:
        return "-"
    if new is None:
        return "?"
    if new == old:
        return "="
    percent = change_percent(old, new)
    amount = signed_metric(metric, new - old)
    if percent is None:
        return amount
    return f"{amount} ({percent})" if with_amount else percent


# --- markdown: the pieces -----------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """How much of the report to show; smaller shapes are tried until the text fits."""

    layer_rows: int = TOP_LAYERS        # rows of each layer table (and layer findings listed)
    charts: bool = True
    unchanged: bool = True              # the one-line list of unchanged models
    detail_models: Optional[int] = None  # per-model sections, most important first; None: all
    model_rows: Optional[int] = None    # rows of the model, budget-change and unused lists; None: all


def _status_cell(model: Mapping[str, Any]) -> str:
    status = model["status"]
    emoji = _STATUS_EMOJI.get(status) or ("❌" if model["failed"] else "⚠️" if status == MISSING else "📉")
    return f"{emoji} {STATUS_TEXT[status]}"


def _budget_change_phrase(model: Mapping[str, Any]) -> Optional[str]:
    """"budget raised +8.2% in this PR" and the like; None when there is no base or no change."""
    change = model.get("budget_change")
    if change in (None, UNCHANGED):
        return None
    if change in (ADDED, REMOVED):
        return f"budget entry {change} in this PR"
    if change == CHANGED:
        return "budget entry changed in this PR"
    metric = _first_moved_metric(model["base"], model["budget"], change) if model.get("base") and model.get("budget") else None
    if metric is None:
        return f"budget {change} in this PR"
    old, new = model["base"]["total"][metric], model["budget"]["total"][metric]
    amount = change_percent(old, new) or signed_metric(metric, new - old)
    if metric == "macs":
        return f"budget {change} {amount} in this PR"
    return f"budget {change} in this PR ({METRIC_LABELS[metric]} {amount})"


def _is_flagged(model: Mapping[str, Any]) -> bool:
    return model.get("budget_change") in FLAGGED_CHANGES


def _has_changes(model: Mapping[str, Any]) -> bool:
    """Failed, not ok, budget edited, or any measured number differs from the budget or the base."""
    if model["failed"] or model["status"] != OK or _is_flagged(model) or model.get("budget_change") == LOWERED:
        return True
    for entry in (model.get("budget"), model.get("base")):
        if entry is None:
            continue
        if any(entry["total"].get(metric) is not None and entry["total"][metric] != _now_total(model, metric)
               for metric in TOTAL_METRICS):
            return True
    return bool(_layer_rows(model))


def _verdict(report: Mapping[str, Any]) -> tuple[str, str]:
    models = report["models"]
    errors = report.get("errors", [])
    if not models and not errors:
        return "ℹ️", "no model was checked"
    regressed = sum(1 for model in models if is_regression(model))
    other = sum(1 for model in models if model["failed"] and not is_regression(model))
    parts = []
    if regressed:
        parts.append(plural(regressed, "regression"))
    if other:
        parts.append(plural(other, "other failure"))
    if errors:
        parts.append(f"{plural(len(errors), 'model')} could not be checked")
    text = ", ".join(parts) or "all within budget"
    flagged = sum(1 for model in models if _is_flagged(model))
    if flagged:
        text += f", {plural(flagged, 'budget change')} to review"
    return ("❌" if regressed or other or errors else "⚠️" if flagged else "✅"), text


def _title_lines(report: Mapping[str, Any]) -> list[str]:
    emoji, verdict = _verdict(report)
    base = report["base"]
    title = f"## {emoji} pytest-maccbudget: {verdict}"
    if base is not None:
        title += f" (base {_code(base['ref'])} @ {_code(base['commit'][:7])})"
    lines = [title, ""]
    about = f"Budget file {_code(report['budget_file'])}"
    if base is not None:
        about += (f", compared with the same file at {_code(base['commit'])}, the merge base of this commit "
                  f"and {_code(base['ref'])}")
    return lines + [about + ".", ""]


def _main_table(report: Mapping[str, Any], models: Sequence[Mapping[str, Any]], hidden: int) -> list[str]:
    with_base = report["base"] is not None
    header = ["model"] + (["base"] if with_base else []) + ["budget", "this commit", "vs budget"]
    header += (["vs base"] if with_base else []) + ["status"]
    rows = [_main_row(model, with_base) for model in models]
    lines = ["Total MACs per model:", ""] + _table(header, rows, numeric_from=1, text_after=len(header) - 1)
    if hidden:
        lines += [f"_… {plural(hidden, 'more model')} not shown ({_TRUNCATED})_", ""]
    return lines


def _main_row(model: Mapping[str, Any], with_base: bool) -> list[str]:
    budget, base = model.get("budget"), model.get("base")
    old, now = _entry_total(budget, "macs"), _now_total(model, "macs")
    base_value = _entry_total(base, "macs")
    cells = [_code(model["name"], in_table=True)]
    if with_base:
        cells.append(_cell("macs", base, base_value))
    cells += [_cell("macs", budget, old), _value("macs", now), _change("macs", old, now)]
    if with_base:
        cells.append(_change("macs", base_value, now))
    status = _status_cell(model)
    phrase = _budget_change_phrase(model)
    if phrase is not None and _is_flagged(model):
        status += f" · ⚠️ {_escape(phrase, in_table=True)}"
    return cells + [status]


def _budget_change_lines(models: Sequence[Mapping[str, Any]], limit: Optional[int]) -> list[str]:
    changed = [model for model in models if model.get("budget_change") not in (None, UNCHANGED)]
    if not changed:
        return []
    lines = ["### Budget changes in this PR", ""]
    shown = changed if limit is None else changed[:limit]
    for model in shown:
        mark = "⚠️ " if _is_flagged(model) else ""
        details = _budget_change_details(model)
        lines.append(f"- {mark}{_code(model['name'])}: {_escape(_budget_change_phrase(model) or '')}"
                     + (f" — {_escape('; '.join(details))}" if details else ""))
    if len(shown) < len(changed):
        lines.append(f"- … {plural(len(changed) - len(shown), 'more budget change')} not shown ({_TRUNCATED})")
    return lines + [""]


def _budget_change_details(model: Mapping[str, Any]) -> list[str]:
    base, budget = model.get("base"), model.get("budget")
    if base is None or budget is None:
        return []
    return _entry_differences(base, budget)


# --- markdown: per-model sections ----------------------------------------------------------


def _detail_lines(report: Mapping[str, Any], model: Mapping[str, Any], shape: _Shape) -> list[str]:
    lines = [f"### {_code(model['name'])}: {_status_cell(model)}", "", f"Test: {_code(model['test'])}", ""]
    notes = [_escape(line) for line in _failures_shown(model["failures"], shape)]
    phrase = _budget_change_phrase(model)
    if phrase is not None:
        notes.append(("⚠️ " if _is_flagged(model) else "") + _escape(phrase))
    if model["measurement"].get("unknown_ops"):
        notes.append("ops not counted: " + ", ".join(_code(op) for op in model["measurement"]["unknown_ops"]))
    if not _numbers_differ(model):
        notes.append(_numbers_phrase(report, model))
    if notes:
        lines += [f"- {note}" for note in notes] + [""]
    if _numbers_differ(model):
        lines += _metric_table(report, model)
    lines += _layer_section(report, model, shape)
    return lines


def _failures_shown(failures: Sequence[str], shape: _Shape) -> list[str]:
    """The failure lines, with at most LAYER_FINDINGS about single layers (the layer table has
    the numbers) and a line saying how many more there are."""
    cap = min(LAYER_FINDINGS, shape.layer_rows)
    shown, hidden = [], 0
    for line in failures:
        if line.startswith(LAYER_FINDING_PREFIXES):
            if cap == 0:
                hidden += 1
                continue
            cap -= 1
        shown.append(line)
    if hidden:
        shown.append(f"… {plural(hidden, 'more layer finding')} not listed")
    return shown


def _numbers_differ(model: Mapping[str, Any]) -> bool:
    """Whether a total is unknown, has no budget value, or differs from the budget or the base."""
    budget, base = model.get("budget"), model.get("base")
    for metric in TOTAL_METRICS:
        now = _now_total(model, metric)
        if now is None or budget is None or budget["total"].get(metric) != now:
            return True
        if base is not None and base["total"].get(metric) != now:
            return True
    return False


def _numbers_phrase(report: Mapping[str, Any], model: Mapping[str, Any]) -> str:
    values = " · ".join(f"{METRIC_LABELS[metric]} {_value(metric, _now_total(model, metric))}"
                        for metric in TOTAL_METRICS)
    with_base = report["base"] is not None and model.get("base") is not None
    same_as = "the budget and the base" if with_base else "the budget"
    return f"{values}; same as {same_as}"


def _metric_table(report: Mapping[str, Any], model: Mapping[str, Any]) -> list[str]:
    with_base = report["base"] is not None
    budget, base = model.get("budget"), model.get("base")
    with_limit = budget is not None and bool(budget["limit"])
    header = ["metric"] + (["base"] if with_base else []) + ["budget"] + (["limit"] if with_limit else [])
    header += ["this commit", "vs budget"] + (["vs base"] if with_base else [])
    rows = []
    for metric in TOTAL_METRICS:
        old, now, base_value = _entry_total(budget, metric), _now_total(model, metric), _entry_total(base, metric)
        row = [METRIC_LABELS[metric]] + ([_cell(metric, base, base_value)] if with_base else [])
        row.append(_cell(metric, budget, old))
        if with_limit:
            row.append(_cell(metric, budget, budget["limit"].get(metric)))
        row += [_value(metric, now), _change(metric, old, now, with_amount=True)]
        if with_base:
            row.append(_change(metric, base_value, now, with_amount=True))
        rows.append(row)
    return _table(header, rows, numeric_from=1)


@dataclass(frozen=True)
class _LayerRow:
    key: str
    base: Optional[int]       # None: not in the base entry
    budget: Optional[int]     # None: not in the budget entry
    now: Optional[int]        # None: unknown, or not measured
    measured: bool
    vs_budget: Optional[int]  # None: unknown, or no per-layer budget to compare with
    vs_base: Optional[int]

    @property
    def unknown(self) -> bool:
        return self.measured and self.now is None

    def size(self) -> int:
        return max(abs(delta) for delta in (self.vs_budget, self.vs_base, 0) if delta is not None)


def _layer_delta(reference: Optional[Mapping[str, int]], key: str, measured: bool, now: Optional[int]) -> Optional[int]:
    if reference is None or (measured and now is None):
        return None
    return (now or 0) - reference.get(key, 0)


def _layer_rows(model: Mapping[str, Any]) -> list[_LayerRow]:
    """The layers that differ from the budget's or the base's layers, largest change first;
    layers that could not be counted last."""
    measured = model["measurement"]["layers"]
    budget, base = _entry_layers(model.get("budget")), _entry_layers(model.get("base"))
    if budget is None and base is None:
        return []
    rows = []
    for key in sorted(set(measured) | set(budget or {}) | set(base or {})):
        now, was_measured = measured.get(key), key in measured
        row = _LayerRow(key, None if base is None else base.get(key), None if budget is None else budget.get(key),
                        now, was_measured, _layer_delta(budget, key, was_measured, now),
                        _layer_delta(base, key, was_measured, now))
        if row.unknown or row.size():
            rows.append(row)
    rows.sort(key=lambda row: (1, 0, row.key) if row.unknown else (0, -row.size(), row.key))
    return rows


def _layer_change(row: _LayerRow, reference: Optional[int], delta: Optional[int], applicable: bool) -> str:
    if not applicable:
        return "-"
    if delta is None:
        return "?"
    if delta == 0:
        return "="
    amount = signed_metric("macs", delta)
    if reference is None:
        return f"{amount} (new)"
    if not row.measured:
        return f"{amount} (removed)"
    percent = change_percent(reference, row.now or 0)
    return f"{amount} ({percent})" if percent else amount


def _layer_table_row(row: _LayerRow, model: Mapping[str, Any], with_base: bool) -> list[str]:
    has_budget = _entry_layers(model.get("budget")) is not None
    has_base = _entry_layers(model.get("base")) is not None
    now = "?" if row.unknown else format_count(row.now) if row.measured else "-"
    cells = [_code(row.key, in_table=True)]
    if with_base:
        cells.append("-" if row.base is None else format_count(row.base))
    cells += ["-" if row.budget is None else format_count(row.budget), now,
              _layer_change(row, row.budget, row.vs_budget, has_budget)]
    if with_base:
        cells.append(_layer_change(row, row.base, row.vs_base, has_base))
    return cells


def _layer_section(report: Mapping[str, Any], model: Mapping[str, Any], shape: _Shape) -> list[str]:
    rows = _layer_rows(model)
    lines: list[str] = []
    if rows:
        with_base = report["base"] is not None
        shown = rows[:shape.layer_rows]
        if shown:
            header = ["layer"] + (["base"] if with_base else []) + ["budget", "this commit", "vs budget"]
            header += ["vs base"] if with_base else []
            lines += ["Layers that changed most (MACs, largest change first):", ""]
            lines += _table(header, [_layer_table_row(row, model, with_base) for row in shown], numeric_from=1)
        hidden = len(rows) - len(shown)
        if hidden:
            why = _TRUNCATED if shape.layer_rows < TOP_LAYERS else f"the {TOP_LAYERS} largest changes are shown"
            more = "more " if shown else ""
            lines += [f"_… {plural(hidden, more + 'layer')} not shown ({why})_", ""]
    if shape.charts:
        lines += _chart_lines(report, model)
    return lines


# --- markdown: the chart ------------------------------------------------------------------

_SCALES = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k"))


def _mermaid_text(text: str, width: int) -> str:
    """Safe inside a mermaid double-quoted string: no double quotes, backticks or line breaks;
    long names keep their end ("…stage3.conv1"), where module paths differ."""
    clean = _one_line(text).replace('"', "'").replace("`", "'").replace("#", "")
    if len(clean) > width:
        clean = "…" + clean[-(width - 1):].lstrip("./")
    return clean


def _chart_number(value: int, divisor: int) -> str:
    number = (Decimal(value) / Decimal(divisor)).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    text = f"{number:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _chart_lines(report: Mapping[str, Any], model: Mapping[str, Any]) -> list[str]:
    """A mermaid xychart: the top layers by MACs, a bar for the base (the budget when there is
    no base) then one for this commit, and a line marking the base (mermaid draws the second
    bar over the first). No chart when there are no recorded layers to compare with."""
    reference = _entry_layers(model.get("base"))
    reference_name = "base"
    if reference is None:
        reference, reference_name = _entry_layers(model.get("budget")), "budget"
    if reference is None:
        return []
    measured = model["measurement"]["layers"]
    keys = set(reference) | {key for key, value in measured.items() if value is not None}
    points = [(key, reference.get(key, 0), measured.get(key) or 0) for key in keys
              if not (key in measured and measured[key] is None)]
    points.sort(key=lambda point: (-max(point[1], point[2]), point[0]))
    points = points[:CHART_LAYERS]
    biggest = max((max(old, new) for _, old, new in points), default=0)
    if biggest == 0:
        return []
    divisor, unit = next(((scale, prefix) for scale, prefix in _SCALES if biggest >= scale), (1, ""))
    axis = f"MACs ({unit})" if unit else "MACs"
    labels = ", ".join(f'"{_mermaid_text(key, LABEL_WIDTH)}"' for key, _, _ in points)
    olds = ", ".join(_chart_number(old, divisor) for _, old, _ in points)
    news = ", ".join(_chart_number(new, divisor) for _, _, new in points)
    return [
        "```mermaid",
        "xychart-beta",
        f'    title "{_mermaid_text(model["name"], 48)}: top layers by MACs"',
        f"    x-axis [{labels}]",
        f'    y-axis "{axis}"',
        f"    bar [{olds}]",
        f"    bar [{news}]",
        f"    line [{olds}]",
        "```",
        "",
        f"_Bars: {reference_name} (drawn first, and marked by the line) and this commit; "
        f"{plural(len(points), 'layer')} with the most MACs._",
        "",
    ]


# --- markdown: the whole report ------------------------------------------------------------


def _compact_line(report: Mapping[str, Any], model: Mapping[str, Any]) -> str:
    return f"- {_code(model['name'])} ({_status_cell(model)}): {_numbers_phrase(report, model)}"


def _unused_lines(report: Mapping[str, Any], limit: Optional[int]) -> list[str]:
    unused = report["unused"]
    if not unused:
        return []
    shown = unused if limit is None else unused[:limit]
    names = ", ".join(_code(name) for name in shown)
    if len(shown) < len(unused):
        names += f" and {len(unused) - len(shown)} more (not shown: {_TRUNCATED})"
    noun = "entry" if len(unused) == 1 else "entries"
    return ["### Unused budget entries", "",
            f"{len(unused)} budget {noun} in {_code(report['budget_file'])} not used by any test: {names}. "
            f"Run {_code(UPDATE_COMMAND)} on the whole suite to remove {'it' if len(unused) == 1 else 'them'}.", ""]


def _priority(model: Mapping[str, Any]) -> int:
    if is_regression(model) or model["failed"]:
        return 0
    return 1 if _has_changes(model) else 2


def _visible_models(models: Sequence[Mapping[str, Any]], limit: Optional[int]) -> list[Mapping[str, Any]]:
    """All models, or the `limit` most important ones (failures, then changes), in name order."""
    if limit is None or limit >= len(models):
        return list(models)
    ranked = sorted(range(len(models)), key=lambda index: (_priority(models[index]), index))[:limit]
    return [models[index] for index in sorted(ranked)]


def _error_lines(report: Mapping[str, Any]) -> list[str]:
    errors = report.get("errors", [])
    if not errors:
        return []
    lines = ["Could not be checked (the test failed before the model was measured):", ""]
    lines += [f"- {_code(e['name'])} ({_code(e['test'])}): {' '.join(e['message'].split())}" for e in errors]
    return lines + [""]


def _render_lines(report: Mapping[str, Any], shape: _Shape) -> list[str]:
    models = report["models"]
    lines = [MARKER] + _title_lines(report) + _error_lines(report)
    if models:
        visible = _visible_models(models, shape.model_rows)
        lines += _main_table(report, visible, len(models) - len(visible))
        lines += _budget_change_lines(models, shape.model_rows)
        lines += _details(report, shape)
        lines += _unchanged_lines(report, shape)
    lines += _unused_lines(report, shape.model_rows)
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def _changed_models(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The models that get a section of their own: failures first, then by name."""
    return sorted((model for model in report["models"] if _has_changes(model)),
                  key=lambda model: (_priority(model), model["name"]))


def _details(report: Mapping[str, Any], shape: _Shape) -> list[str]:
    changed = _changed_models(report)
    shown = changed if shape.detail_models is None else changed[:shape.detail_models]
    lines: list[str] = []
    for model in shown:
        lines += _detail_lines(report, model, shape)
    if not shape.charts and any(_chart_lines(report, model) for model in shown):
        lines += [f"_Charts not shown ({_TRUNCATED})._", ""]
    hidden = len(changed) - len(shown)
    if hidden and shown:
        lines += [f"_… the sections of {plural(hidden, 'more model')} are not shown ({_TRUNCATED})._", ""]
    elif hidden:
        lines += [f"_Per-model sections not shown ({_TRUNCATED}); the JSON report has every number._", ""]
    return lines


def _unchanged_lines(report: Mapping[str, Any], shape: _Shape) -> list[str]:
    unchanged = [model for model in report["models"] if not _has_changes(model)]
    if not unchanged:
        return []
    if not shape.unchanged:
        return [f"_{plural(len(unchanged), 'unchanged model')} not listed ({_TRUNCATED})._", ""]
    return ["### Unchanged models", ""] + [_compact_line(report, model) for model in unchanged] + [""]


def _halving(start: int) -> Iterator[int]:
    """start // 2, start // 4, ..., 0."""
    value = start
    while value > 0:
        value //= 2
        yield value


def _shapes(report: Mapping[str, Any]) -> Iterator[_Shape]:
    """Ever smaller renderings: fewer layer rows, no charts, no list of unchanged models, fewer
    per-model sections, then fewer rows in the model lists."""
    for rows in range(TOP_LAYERS, -1, -1):
        yield _Shape(layer_rows=rows)
    shape = _Shape(layer_rows=0, charts=False)
    yield shape
    shape = replace(shape, unchanged=False)
    yield shape
    for count in _halving(len(_changed_models(report))):
        shape = replace(shape, detail_models=count)
        yield shape
    shape = replace(shape, detail_models=0)
    for rows in _halving(max(len(report["models"]), len(report["unused"]))):
        yield replace(shape, model_rows=rows)


def render_markdown(report: Mapping[str, Any], *, limit: int = STEP_SUMMARY_LIMIT) -> str:
    """GitHub-flavoured markdown for the step summary and the PR comment, at most `limit` bytes
    of UTF-8. A report that does not fit loses layer rows first, then its charts, then the list
    of unchanged models, then per-model sections, then rows of the model lists; tables and
    fences are never cut. ValueError when not even the title fits."""
    shapes = list(_shapes(report))
    rendered: dict[int, str] = {}

    def fits(index: int) -> bool:
        rendered[index] = "\n".join(_render_lines(report, shapes[index])) + "\n"
        return len(rendered[index].encode("utf-8")) <= limit

    if fits(0):
        return rendered[0]
    if not fits(len(shapes) - 1):
        raise ValueError(f"a markdown report cannot be made to fit in {limit} bytes")
    # Bisect for the largest shape that fits; `low` never fits, `high` always does.
    low, high = 0, len(shapes) - 1
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle
    return rendered[high]
