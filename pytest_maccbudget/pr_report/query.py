"""Reading one model's verdict out of the report JSON: is it a regression, which layer grew most,
which layers changed, did anything change at all. Shared by the markdown, the annotations and
the action's outputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from ..budget import LAYER_FINDING_PREFIXES, OK, TOTAL_METRICS
from ..units import plural
from .devices import devices_differ
from .vocabulary import FLAGGED_CHANGES, LAYER_FINDINGS, LOWERED, REGRESSION_STATUSES, REGRESSION_WHEN_FAILED


def is_regression(model: Mapping[str, Any]) -> bool:
    """Regressed, over a limit, inputs changed; no entry or not counted when that failed the test."""
    status = model["status"]
    if not model["failed"]:  # an update records growth: it is not a regression of that run
        return False
    return status in REGRESSION_STATUSES or status in REGRESSION_WHEN_FAILED


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
    old = entry_total(model.get("budget"), "macs")
    new = now_total(model, "macs")
    return None if old is None or new is None else new - old


def entry_total(entry: Optional[Mapping[str, Any]], metric: str) -> Optional[int]:
    return None if entry is None else entry["total"].get(metric)


def now_total(model: Mapping[str, Any], metric: str) -> Optional[int]:
    return model["measurement"]["total"].get(metric)


def entry_layers(entry: Optional[Mapping[str, Any]]) -> Optional[Mapping[str, int]]:
    """An entry's per-layer MACs; None when there is no entry or it records no layers."""
    if entry is None or not entry["layers"]:
        return None
    return entry["layers"]


def top_grown_layer(model: Mapping[str, Any]) -> Optional[tuple[str, int]]:
    """(layer, growth) of the layer that grew most against the budget's layers (the base's when
    the budget records none); a layer not in the reference grew from 0. None: nothing grew."""
    reference = entry_layers(model.get("budget"))
    if reference is None:
        reference = entry_layers(model.get("base"))
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


def failures_shown(failures: Sequence[str], layer_rows: int = LAYER_FINDINGS) -> list[str]:
    """The failure lines, with at most LAYER_FINDINGS about single layers (the layer table has
    the numbers) and a line saying how many more there are."""
    cap = min(LAYER_FINDINGS, layer_rows)
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


@dataclass(frozen=True)
class LayerRow:
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


def layer_rows(model: Mapping[str, Any]) -> list[LayerRow]:
    """The layers that differ from the budget's or the base's layers, largest change first;
    layers that could not be counted last."""
    measured = model["measurement"]["layers"]
    budget, base = entry_layers(model.get("budget")), entry_layers(model.get("base"))
    if budget is None and base is None:
        return []
    rows = []
    for key in sorted(set(measured) | set(budget or {}) | set(base or {})):
        now, was_measured = measured.get(key), key in measured
        row = LayerRow(key, None if base is None else base.get(key), None if budget is None else budget.get(key),
                       now, was_measured, _layer_delta(budget, key, was_measured, now),
                       _layer_delta(base, key, was_measured, now))
        if row.unknown or row.size():
            rows.append(row)
    rows.sort(key=lambda row: (1, 0, row.key) if row.unknown else (0, -row.size(), row.key))
    return rows


def is_flagged(model: Mapping[str, Any]) -> bool:
    return model.get("budget_change") in FLAGGED_CHANGES


def has_changes(model: Mapping[str, Any]) -> bool:
    """Failed, not ok, budget edited, or any measured number differs from the budget or the base."""
    if model["failed"] or model["status"] != OK or is_flagged(model) or model.get("budget_change") == LOWERED:
        return True
    for entry in (model.get("budget"), model.get("base")):
        if entry is None:
            continue
        if any(entry["total"].get(metric) is not None and entry["total"][metric] != now_total(model, metric)
               for metric in TOTAL_METRICS):
            return True
    return bool(layer_rows(model)) or devices_differ(model)
