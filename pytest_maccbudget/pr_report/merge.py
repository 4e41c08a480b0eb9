"""Combining the JSON reports of sharded runs (`--macc-budget-shard I/N`) into the inputs of one
report, as a single run would have built it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..budget import Budget, Measurement, ModelEntry, Tolerance

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


def merged_errors(reports: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The models that could not be checked, from every shard report."""
    return [dict(error) for report in reports for error in report.get("errors", ())]
