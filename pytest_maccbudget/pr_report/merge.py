"""Combining the JSON reports of sharded runs (`--macc-budget-shard I/N`) into the inputs of one
report, as a single run would have built it."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..budget import Budget, DeviceEntry, Measurement, ModelEntry, Tolerance
from ..budget.reader import MAX_AMOUNT, MAX_AMOUNT_TEXT

Pairs = list[tuple[Measurement, bool]]
MISSING_SHARDS_SHOWN = 5  # missing shards named in the error (the others counted)


def merge_reports(reports: Sequence[Mapping[str, Any]], names: Optional[Sequence[str]] = None
                  ) -> tuple[Pairs, Optional[dict[str, str]], dict[str, dict[str, Any]]]:
    """The (measurement, failed) pairs, base and sources of several shard reports, to rebuild one
    report with build_report. `names` label the reports in errors (their files). A missing or
    repeated shard, a model in two shards, or shards with different bases: ValueError."""
    if not reports:
        raise ValueError("no reports to merge")
    names = names or [f"report {index}" for index in range(1, len(reports) + 1)]
    for report, name in zip(reports, names):
        check_values(report, name)
    check_shards(reports, names)
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


def check_values(report: Mapping[str, Any], name: str) -> None:
    """Every value of a report is one the merged report can hold: text that is Unicode (JSON's
    escapes can spell a lone surrogate, which no file can be written with), numbers that are
    finite (json reads NaN and Infinity) and no larger than a budget file may hold.
    ValueError "NAME: where: what is wrong" otherwise."""
    stack: list[tuple[str, Any]] = [("", report)]
    while stack:  # not recursive: the JSON decoder allows nesting deeper than Python's recursion limit
        where, value = stack.pop()
        if isinstance(value, Mapping):
            for key, item in value.items():
                _check_text(key, name, where, "a key")
                stack.append((f"{where}.{key}" if where else str(key), item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{index}]", item) for index, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, name, where, "the text")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name}: {where}: expected a finite number, got {value}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > MAX_AMOUNT:
            raise ValueError(f"{name}: {where}: expected a number up to {MAX_AMOUNT_TEXT}, got {_short_number(value)}")


def _check_text(text: Any, name: str, where: str, what: str) -> None:
    try:
        str(text).encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{name}: {where or 'the report'}: {what} is not Unicode "
                         f"({error.object[error.start]!r} at character {error.start} is half of a surrogate pair)") from None


def _short_number(value: float) -> str:
    if isinstance(value, int) and abs(value) >= 10**40:
        return f"a number of {len(str(abs(value)))} digits"
    return str(value)


def check_shards(reports: Sequence[Mapping[str, Any]], names: Sequence[str]) -> None:
    """Reports of a sharded run (each records its "shard" I/N) must be every shard 1..N of the
    same N, once each: a merge of fewer would call the missing shard's models unused."""
    shards = [report.get("shard") for report in reports]
    if all(shard is None for shard in shards):
        return  # reports of unsharded runs: nothing to check
    unsharded = [name for name, shard in zip(names, shards) if shard is None]
    if unsharded:
        raise ValueError(f"{', '.join(unsharded)}: not the report of a --macc-budget-shard run, "
                         "while the others are: merge the reports of one sharded run")
    counts = sorted({shard["count"] for shard in shards})
    if len(counts) > 1:
        raise ValueError(f"the reports come from runs with different shard counts ({', '.join(map(str, counts))}): "
                         "merge the reports of one sharded run")
    count = counts[0]
    by_index: dict[int, list[str]] = {}
    for name, shard in zip(names, shards):
        by_index.setdefault(shard["index"], []).append(name)
    repeated = [f"shard {index}/{count} ({' and '.join(given)})" for index, given in sorted(by_index.items())
                if len(given) > 1]
    if repeated:
        raise ValueError(f"{'; '.join(repeated)} given more than once: give each shard's report once")
    missing_count = count - len(by_index)  # every index is in 1..count (load_report checks it)
    if missing_count:
        # the first few by number: a report can claim any count, and listing 10^30 shards never ends
        missing = []
        for index in range(1, count + 1):
            if index not in by_index:
                missing.append(f"{index}/{count}")
                if len(missing) == MISSING_SHARDS_SHOWN:
                    break
        more = f" and {missing_count - len(missing):,} more" if missing_count > len(missing) else ""
        noun = "shard" if missing_count == 1 else "shards"
        raise ValueError(f"{noun} {', '.join(missing)}{more} missing: give the reports of all {count:,} shards "
                         "(a shard whose job failed before writing its report must be rerun)")


def _common_base(reports: Sequence[Mapping[str, Any]]) -> Optional[dict[str, str]]:
    first = reports[0].get("base")
    for index, report in enumerate(reports[1:], start=2):
        other = report.get("base")
        if _base_commit(first) != _base_commit(other):
            raise ValueError(f"shard reports 1 and {index} were compared with different bases "
                             f"({_describe_base(first)} and {_describe_base(other)}): run every shard with the "
                             "same --macc-budget-base on the same commit")
    return None if first is None else {key: first[key] for key in ("ref", "commit", "branch") if key in first}


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
        devices={str(device): _device_entry_from_json(data) for device, data in (entry.get("devices") or {}).items()},
    )


def _device_entry_from_json(data: Mapping[str, Any]) -> DeviceEntry:
    return DeviceEntry(
        figures={str(metric): float(value) for metric, value in (data.get("figures") or {}).items()},
        limit={str(metric): float(value) for metric, value in (data.get("limit") or {}).items()},
        tolerance={str(metric): Tolerance.parse(text, metric) for metric, text in (data.get("tolerance") or {}).items()},
    )


def merged_errors(reports: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The models that could not be checked, from every shard report."""
    return [dict(error) for report in reports for error in report.get("errors", ())]


def merged_trends(reports: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each model's trend line on the base branch, from the shard that measured it."""
    return {model["name"]: model["trend"] for report in reports for model in report["models"] if "trend" in model}
