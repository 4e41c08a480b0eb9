"""Text for the end of a pytest run: one row per checked model, the layers that changed most,
unused budget entries and what an update wrote. Pure: comparisons in, lines out."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

from .budget import Comparison, LayerChange, MetricChange, change_percent
from .texttable import aligned_table
from .units import format_bytes, format_count

STATUS_TEXT = {
    "ok": "ok",
    "regressed": "REGRESSED",
    "over_limit": "OVER LIMIT",
    "missing": "no budget entry",
    "tightenable": "can be tightened",
    "inputs_changed": "INPUTS CHANGED",
    "unknown": "NOT COUNTED",
}
TOP_LAYERS = 10
SUMMARY_HEADER = ("model", "MACs", "vs budget", "params", "peak act. memory", "status")


def budget_summary_lines(
    comparisons: Sequence[Comparison],
    *,
    unused: Sequence[str],
    budget_path: Path,
    update: str = "",
    update_outcomes: Optional[Mapping[str, str]] = None,
    written: bool = False,
    interrupted: bool = False,
    removed: Sequence[str] = (),
    kept_because: str = "",
    messages: Sequence[str] = (),
) -> list[str]:
    """`update` is "" (a check), "all" (--macc-budget-update) or "new-only"; `update_outcomes`
    says per model what the update did ("recorded", "updated", "unchanged", ...)."""
    if not comparisons and not unused:
        return [f"no model was checked (budget file: {budget_path})"]
    outcomes = update_outcomes if update else None
    lines = model_table(comparisons, outcomes) if comparisons else []
    changed = top_layer_changes(comparisons)
    if changed:
        lines += ["", "layers that changed most:"] + changed
    lines += _unused_lines(unused, removed, update, kept_because)
    lines += [f"note: {message}" for message in messages]
    if update:
        lines.append(f"budget file {budget_path}: {_file_outcome(written, interrupted, budget_path)}")
    return lines


def _file_outcome(written: bool, interrupted: bool, path: Path) -> str:
    if interrupted:
        return "not written (the run was interrupted)"
    if written:
        return "written"
    return "unchanged" if path.exists() else "not written (nothing recorded)"


def model_table(comparisons: Sequence[Comparison], update_outcomes: Optional[Mapping[str, str]] = None) -> list[str]:
    """One row per model; under an update the status is what the update did."""
    rows = [_model_row(c, update_outcomes) for c in comparisons]
    return aligned_table(SUMMARY_HEADER, rows, right_aligned={1, 2, 3, 4})


def _model_row(comparison: Comparison, update_outcomes: Optional[Mapping[str, str]]) -> tuple[str, ...]:
    macs = _metric(comparison, "macs")
    params = _metric(comparison, "params")
    peak = _metric(comparison, "peak_activation_bytes")
    if update_outcomes is None:
        status = STATUS_TEXT.get(comparison.status, comparison.status)
    else:
        status = update_outcomes.get(comparison.name, "NOT RECORDED")
    return (
        comparison.name,
        format_count(macs.new if macs else None),
        _change(macs),
        format_count(params.new if params else None),
        format_bytes(peak.new if peak else None),
        status,
    )


def _metric(comparison: Comparison, name: str) -> Optional[MetricChange]:
    return next((m for m in comparison.metrics if m.metric == name), None)


def _change(metric: Optional[MetricChange]) -> str:
    if metric is None or metric.old is None or metric.new is None:
        return "-"
    if metric.old == metric.new:
        return "="
    if metric.old == 0:
        return f"+{format_count(metric.new)}"
    return change_percent(metric.old, metric.new) or "-"


def top_layer_changes(comparisons: Sequence[Comparison], limit: int = TOP_LAYERS) -> list[str]:
    changes = [(c.name, layer) for c in comparisons for layer in c.layers if layer.status != "unknown"]
    changes.sort(key=lambda item: -abs((item[1].new or 0) - (item[1].old or 0)))
    lines = [f"  {model}  {layer.key}: {_layer_change_text(layer)}" for model, layer in changes[:limit]]
    if len(changes) > limit:
        lines.append(f"  ... and {len(changes) - limit} more")
    return lines


def _layer_change_text(layer: LayerChange) -> str:
    if layer.old is None:
        return f"new, {format_count(layer.new)} MACs"
    if layer.new is None:
        return f"removed (was {format_count(layer.old)} MACs)"
    return f"{format_count(layer.old)} -> {format_count(layer.new)} MACs ({change_percent(layer.old, layer.new) or 'new'})"


NOT_ALL_SELECTED = "this run did not select every test"


def _unused_lines(unused: Sequence[str], removed: Sequence[str], update: str, kept_because: str) -> list[str]:
    if removed:
        return ["", f"removed {len(removed)} unused budget entr{'y' if len(removed) == 1 else 'ies'}: {', '.join(removed)}"]
    if not unused:
        return []
    noun = "entry" if len(unused) == 1 else "entries"
    names = ", ".join(unused)
    if kept_because == NOT_ALL_SELECTED:
        return ["", f"{len(unused)} budget {noun} not checked in this run: {names} ({NOT_ALL_SELECTED})"]
    if update:
        hint = f"kept: {kept_because}" if kept_because else "kept"
    else:
        hint = "run `pytest --macc-budget-update` on the whole suite to remove them"
    return ["", f"{len(unused)} budget {noun} not used by any test: {names} ({hint})"]
