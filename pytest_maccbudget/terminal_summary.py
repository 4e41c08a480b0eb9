"""Text for the end of a pytest run: one row per checked model, the layers that changed most,
unused budget entries and what an update wrote. Pure: comparisons in, lines out."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

from .budget import NEW, REMOVED, UNKNOWN, Budget, Comparison, LayerChange, MetricChange, format_metric, signed_metric
from .units import capped_list, change_percent
from .texttable import aligned_table
from .units import format_bytes, format_count, format_duration, format_energy

STATUS_TEXT = {
    "ok": "ok",
    "regressed": "REGRESSED",
    "over_limit": "OVER LIMIT",
    "missing": "no budget entry",
    "tightenable": "can be tightened",
    "inputs_changed": "INPUTS CHANGED",
    "unknown": "NOT COUNTED",
    "rules_changed": "RULES CHANGED",
}
NOT_MEASURED = "NOT MEASURED (see its test)"
SHOWN_METRICS = ("macs", "peak_activation_bytes")  # the totals the summary table shows, with a "≤" when bounds
TOP_LAYERS = 10
SUMMARY_HEADER = ("model", "MACs", "vs budget", "params", "peak act. memory", "status")
BASE_HEADER = ("model", "MACs", "vs budget", "vs base", "params", "peak act. memory", "status")


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
    base: Optional[tuple[str, Budget, Budget]] = None,
    suite_update_command: str = "pytest --macc-budget-update",
    not_measured: Sequence[str] = (),
) -> list[str]:
    """`update` is "" (a check), "all" (--macc-budget-update) or "new-only"; `update_outcomes`
    says per model what the update did ("recorded", "updated", "unchanged", ...). `base` is
    (the base ref, the budget file there, the budget file here): a "vs base" column and what
    this branch did to the budget entries. `not_measured` names the models whose check failed
    before they could be measured (an export error): their rows say so."""
    if not comparisons and not unused and not not_measured:
        return ([f"no model was checked (budget file: {budget_path})"] + _branch_lines(base)
                + [f"note: {message}" for message in messages])
    outcomes = update_outcomes if update else None
    table = model_table(comparisons, outcomes, base[1] if base else None, not_measured)
    lines = table if comparisons or not_measured else []
    if any(change.upper_bound and (change.device or change.metric in SHOWN_METRICS)
           for comparison in comparisons for change in comparison.metrics):
        lines.append("≤: an upper bound (sizes after an op such as NonMaxSuppression depend on the data)")
    lines += device_table(comparisons)
    lines += _branch_lines(base)
    changed = top_layer_changes(comparisons)
    if changed:
        lines += ["", "layers that changed most:"] + changed
    lines += _unused_lines(unused, removed, update, kept_because, suite_update_command)
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


def model_table(comparisons: Sequence[Comparison], update_outcomes: Optional[Mapping[str, str]] = None,
                base_budget: Optional[Budget] = None, not_measured: Sequence[str] = ()) -> list[str]:
    """One row per model, by name; under an update the status is what the update did. With the
    budget file of the base branch, a "vs base" column compares this run's MACs with it."""
    rows = [_model_row(c, update_outcomes, base_budget) for c in comparisons]
    width = len(BASE_HEADER if base_budget is not None else SUMMARY_HEADER)
    rows += [(name,) + ("?",) * (width - 2) + (NOT_MEASURED,) for name in not_measured]
    rows.sort(key=lambda row: row[0])
    if base_budget is None:
        return aligned_table(SUMMARY_HEADER, rows, right_aligned={1, 2, 3, 4})
    return aligned_table(BASE_HEADER, rows, right_aligned={1, 2, 3, 4, 5})


def _model_row(comparison: Comparison, update_outcomes: Optional[Mapping[str, str]],
               base_budget: Optional[Budget]) -> tuple[str, ...]:
    macs = _metric(comparison, "macs")
    params = _metric(comparison, "params")
    peak = _metric(comparison, "peak_activation_bytes")
    if update_outcomes is None:
        status = STATUS_TEXT.get(comparison.status, comparison.status)
    else:
        status = update_outcomes.get(comparison.name, "NOT RECORDED")
    now = macs.new if macs else None
    cells = [comparison.name, _bound_mark(macs) + format_count(now), _change(macs)]
    if base_budget is not None:
        cells.append(_vs_base(base_budget, comparison.name, now))
    return (*cells, format_count(params.new if params else None),
            _bound_mark(peak) + format_bytes(peak.new if peak else None), status)


def _bound_mark(change: Optional[MetricChange]) -> str:
    """"≤ " before a figure that is an upper bound (shapes that depend on data)."""
    return "≤ " if change is not None and change.upper_bound and change.new is not None else ""


DEVICE_HEADER = ("model", "device", "latency", "vs budget", "energy", "vs budget")


def device_table(comparisons: Sequence[Comparison]) -> list[str]:
    """The models' estimates per device, when any model is estimated on one, then the
    memory-bound layers that take longest on each (a line per model and device: they do not fit
    in an 80-column table)."""
    rows, slowest_lines = [], []
    for comparison in sorted(comparisons, key=lambda c: c.name):
        by_device: dict[str, dict[str, MetricChange]] = {}
        for change in comparison.metrics:
            if change.device:
                by_device.setdefault(change.device, {})[change.metric] = change
        for device in sorted(by_device):
            latency, energy = by_device[device].get("latency_ms"), by_device[device].get("energy_mj")
            rows.append((comparison.name, device, _bound_mark(latency) + format_duration(latency.new if latency else None),
                         _change(latency), _bound_mark(energy) + format_energy(energy.new if energy else None),
                         _change(energy)))
            slowest = ", ".join(f"{layer} ({format_duration(ms)})" for layer, ms in comparison.memory_bound.get(device, ()))
            if slowest:
                slowest_lines.append(f"  {comparison.name} on {device}: {slowest}")
    if not rows:
        return []
    lines = ["", "estimated on devices (roofline of the counted costs):"] + aligned_table(
        DEVICE_HEADER, rows, right_aligned={2, 3, 4, 5})
    if slowest_lines:
        lines += ["memory-bound layers that take longest:"] + slowest_lines
    return lines


def _vs_base(base_budget: Budget, name: str, now: Optional[int]) -> str:
    entry = base_budget.models.get(name)
    old = entry.total.get("macs") if entry is not None else None
    if entry is None:
        return "new"
    if old is None or now is None:
        return "-"
    if old == now:
        return "="
    return change_percent(old, now) or signed_metric("macs", now - old)


def _branch_lines(base: Optional[tuple[str, Budget, Budget]]) -> list[str]:
    """What this branch did to the budget file: "budget raised in this branch (vs origin/main):
    net +8.2% MACs, ..." and the like, one line per kind of change a reviewer must look at."""
    if base is None:
        return []
    from .pr_report.build import branch_budget_changes

    ref, base_budget, budget = base
    changes = branch_budget_changes(base_budget, budget)
    lines = [f"budget {kind} in this branch (vs {ref}): {', '.join(entries)}"
             for kind, entries in changes.items() if entries]
    return ([""] + lines) if lines else []


def _metric(comparison: Comparison, name: str) -> Optional[MetricChange]:
    return next((m for m in comparison.metrics if m.metric == name), None)


def _change(metric: Optional[MetricChange]) -> str:
    if metric is None or metric.old is None or metric.new is None:
        return "-"
    if metric.old == metric.new:
        return "="
    if metric.old == 0:
        return f"+{format_metric(metric.metric, metric.new)}"
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


def _unused_lines(unused: Sequence[str], removed: Sequence[str], update: str, kept_because: str,
                  suite_update_command: str) -> list[str]:
    if removed:
        return ["", f"removed {len(removed)} unused budget entr{'y' if len(removed) == 1 else 'ies'}: {', '.join(removed)}"]
    if not unused:
        return []
    noun = "entry" if len(unused) == 1 else "entries"
    names = capped_list(list(unused), ", ")
    if kept_because == NOT_ALL_SELECTED:
        return ["", f"{len(unused)} budget {noun} not checked in this run: {names} ({NOT_ALL_SELECTED})"]
    if update:
        hint = f"kept: {kept_because}" if kept_because else "kept"
    else:
        hint = f"run `{suite_update_command}` on the whole suite to remove them"
    return ["", f"{len(unused)} budget {noun} not used by any test: {names} ({hint})"]


# --- the layer table of a failing test --------------------------------------------------

LAYER_TABLE_HEADER = ("layer", "budget", "measured", "change", "%")


def _layer_row(change: LayerChange) -> tuple[str, ...]:
    old = "-" if change.old is None else format_count(change.old)
    if change.status == UNKNOWN:
        return (change.key, old, "?", "?", "?")
    new = "-" if change.status == REMOVED else ("≤ " if change.upper_bound else "") + format_count(change.new)
    delta = change.delta or 0
    if change.status in (NEW, REMOVED):
        percent = change.status
    else:
        percent = change_percent(change.old or 0, change.new or 0) or "?"
    return (change.key, old, new, signed_metric("macs", delta), percent)


def render_layer_table(comparison: Comparison) -> list[str]:
    """The changed layers as an aligned text table (MACs), largest change first."""
    if not comparison.layers:
        return []
    return aligned_table(LAYER_TABLE_HEADER, [_layer_row(change) for change in comparison.layers], right_aligned={1, 2, 3, 4})
