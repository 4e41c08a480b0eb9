"""The pull-request report as GitHub-flavoured markdown, for `$GITHUB_STEP_SUMMARY` and the
sticky PR comment. Reads only the report JSON, so a report loaded from a file renders the same
bytes as the one just built. Unknown values (`null` in the JSON) print as "?", never as 0."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Iterator, Mapping, Optional, Sequence

from ..action.commands import MARKER
from ..budget import MISSING, OK, OVER_LIMIT, REGRESSED, RULES_CHANGED, INPUTS_CHANGED, UNKNOWN, TOTAL_TOLERANCE_KEYS, TOTAL_METRICS, UPDATE_COMMAND
from ..budget import change_percent, format_metric, shapes_text, signed_metric
from ..markdown_text import code, escape, table
from ..units import format_count, plural
from .build import first_moved_metric, same_tolerance
from .chart import chart_lines
from .devices import device_table, latency_notes
from .query import (
    LayerRow, entry_layers, entry_total, failures_shown, has_changes, is_flagged, is_regression, layer_rows, now_total,
)
from .vocabulary import (
    ADDED, CHANGED, METRIC_LABELS, REMOVED, STATUS_TEXT, STEP_SUMMARY_LIMIT, TOP_LAYERS, TRUNCATED, UNCHANGED,
    change_cell,
)

_STATUS_EMOJI = {OK: "✅", REGRESSED: "❌", OVER_LIMIT: "🛑", INPUTS_CHANGED: "❌", UNKNOWN: "❓", RULES_CHANGED: "🔁"}


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




# --- the pieces -----------------------------------------------------------------


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
    metric = first_moved_metric(model["base"], model["budget"], change) if model.get("base") and model.get("budget") else None
    if metric is None:
        return f"budget {change} in this PR"
    old, new = model["base"]["total"][metric], model["budget"]["total"][metric]
    amount = change_percent(old, new) or signed_metric(metric, new - old)
    if metric == "macs":
        return f"budget {change} {amount} in this PR"
    return f"budget {change} in this PR ({METRIC_LABELS[metric]} {amount})"


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
    flagged = sum(1 for model in models if is_flagged(model))
    if flagged:
        text += f", {plural(flagged, 'budget change')} to review"
    return ("❌" if regressed or other or errors else "⚠️" if flagged else "✅"), text


def _title_lines(report: Mapping[str, Any]) -> list[str]:
    emoji, verdict = _verdict(report)
    base = report["base"]
    title = f"## {emoji} pytest-maccbudget: {verdict}"
    if base is not None:
        name = _base_name(base)
        title += f" (base {code(name)} @ {code(base['commit'][:7])})" if name else f" (base {code(base['commit'][:7])})"
    lines = [title, ""]
    about = f"Budget file {code(report['budget_file'])}"
    if base is not None:
        about += f", compared with the same file at {code(base['commit'])}, " + _base_phrase(base)
    return lines + [about + ".", ""]


_HEX_COMMIT = re.compile(r"[0-9a-f]{7,64}")


def _is_the_commit(base: Mapping[str, Any]) -> bool:
    """The base was given as the commit itself (the action passes the pull request's base tip)."""
    return bool(_HEX_COMMIT.fullmatch(base["ref"].lower())) and base["commit"].lower().startswith(base["ref"].lower())


def _base_name(base: Mapping[str, Any]) -> Optional[str]:
    """What to call the base: its branch when known, else the ref given, else nothing."""
    if base.get("branch"):
        return str(base["branch"])
    return None if _is_the_commit(base) else str(base["ref"])


def _base_phrase(base: Mapping[str, Any]) -> str:
    if _is_the_commit(base):
        branch = base.get("branch")
        return (f"the tip of {code(branch)} this pull request merges into" if branch
                else "the base commit this run was given")
    return f"the merge base of this commit and {code(base['ref'])}"


def _main_table(report: Mapping[str, Any], models: Sequence[Mapping[str, Any]], hidden: int) -> list[str]:
    with_base = report["base"] is not None
    header = ["model"] + (["base"] if with_base else []) + ["budget", "this commit", "vs budget"]
    header += (["vs base"] if with_base else []) + ["status"]
    rows = [_main_row(model, with_base) for model in models]
    lines = ["Total MACs per model:", ""] + table(header, rows, numeric_from=1, text_after=len(header) - 1)
    if hidden:
        lines += [f"_… {plural(hidden, 'more model')} not shown ({TRUNCATED})_", ""]
    return lines


def _main_row(model: Mapping[str, Any], with_base: bool) -> list[str]:
    budget, base = model.get("budget"), model.get("base")
    old, now = entry_total(budget, "macs"), now_total(model, "macs")
    base_value = entry_total(base, "macs")
    cells = [code(model["name"], in_table=True)]
    if with_base:
        cells.append(_cell("macs", base, base_value))
    cells += [_cell("macs", budget, old), _value("macs", now), change_cell("macs", old, now)]
    if with_base:
        cells.append(change_cell("macs", base_value, now))
    status = _status_cell(model)
    phrase = _budget_change_phrase(model)
    if phrase is not None and is_flagged(model):
        status += f" · ⚠️ {escape(phrase, in_table=True)}"
    return cells + [status]


def _budget_change_lines(models: Sequence[Mapping[str, Any]], limit: Optional[int]) -> list[str]:
    changed = [model for model in models if model.get("budget_change") not in (None, UNCHANGED)]
    if not changed:
        return []
    lines = ["### Budget changes in this PR", ""]
    shown = changed if limit is None else changed[:limit]
    for model in shown:
        mark = "⚠️ " if is_flagged(model) else ""
        details = _budget_change_details(model)
        lines.append(f"- {mark}{code(model['name'])}: {escape(_budget_change_phrase(model) or '')}"
                     + (f" — {escape('; '.join(details))}" if details else ""))
    if len(shown) < len(changed):
        lines.append(f"- … {plural(len(changed) - len(shown), 'more budget change')} not shown ({TRUNCATED})")
    return lines + [""]


def _budget_change_details(model: Mapping[str, Any]) -> list[str]:
    base, budget = model.get("base"), model.get("budget")
    if base is None or budget is None:
        return []
    return entry_differences(base, budget)


# --- per-model sections ----------------------------------------------------------


def _detail_lines(report: Mapping[str, Any], model: Mapping[str, Any], shape: _Shape) -> list[str]:
    lines = [f"### {code(model['name'])}: {_status_cell(model)}", "", f"Test: {code(model['test'])}", ""]
    notes = [escape(line) for line in failures_shown(model["failures"], shape.layer_rows)]
    phrase = _budget_change_phrase(model)
    if phrase is not None:
        notes.append(("⚠️ " if is_flagged(model) else "") + escape(phrase))
    notes += latency_notes(model)
    if model["measurement"].get("unknown_ops"):
        notes.append("ops not counted: " + ", ".join(code(op) for op in model["measurement"]["unknown_ops"]))
    notes += _upper_bound_notes(model)
    if not _numbers_differ(model):
        notes.append(_numbers_phrase(report, model))
    if model.get("trend"):
        notes.append(f"trend on {code(_base_name(report['base']) or 'the base')}: {escape(model['trend'])}")
    if notes:
        lines += [f"- {note}" for note in notes] + [""]
    if _numbers_differ(model):
        lines += _metric_table(report, model)
    lines += device_table(report, model)
    lines += _layer_section(report, model, shape)
    return lines


def _upper_bounds_of(model: Mapping[str, Any]) -> Mapping[str, Any]:
    return model["measurement"].get("upper_bounds") or {}


def _upper_bound_notes(model: Mapping[str, Any]) -> list[str]:
    """"upper bounds (≤): FLOPs; layers `head.fc`": figures after an op whose output size depends on data."""
    bounds = _upper_bounds_of(model)
    metrics = [METRIC_LABELS[metric] for metric in TOTAL_METRICS if metric in bounds.get("total", ())]
    layers = [code(layer) for layer in bounds.get("layers", ())]
    if not metrics and not layers:
        return []
    parts = metrics + ([f"the MACs of layers {', '.join(layers[:10])}" + (f" and {len(layers) - 10} more"
                                                                           if len(layers) > 10 else "")]
                       if layers else [])
    return ["upper bounds (≤; sizes after an op such as NonMaxSuppression depend on the data): " + ", ".join(parts)]


def _numbers_differ(model: Mapping[str, Any]) -> bool:
    """Whether a total is unknown, has no budget value, or differs from the budget or the base."""
    budget, base = model.get("budget"), model.get("base")
    for metric in TOTAL_METRICS:
        now = now_total(model, metric)
        if now is None or budget is None or budget["total"].get(metric) != now:
            return True
        if base is not None and base["total"].get(metric) != now:
            return True
    return False


def _numbers_phrase(report: Mapping[str, Any], model: Mapping[str, Any]) -> str:
    values = " · ".join(f"{METRIC_LABELS[metric]} {_value(metric, now_total(model, metric))}"
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
        old, now, base_value = entry_total(budget, metric), now_total(model, metric), entry_total(base, metric)
        row = [METRIC_LABELS[metric]] + ([_cell(metric, base, base_value)] if with_base else [])
        row.append(_cell(metric, budget, old))
        if with_limit:
            row.append(_cell(metric, budget, budget["limit"].get(metric)))
        bound = "≤ " if now is not None and metric in _upper_bounds_of(model).get("total", ()) else ""
        row += [bound + _value(metric, now), change_cell(metric, old, now, with_amount=True)]
        if with_base:
            row.append(change_cell(metric, base_value, now, with_amount=True))
        rows.append(row)
    return table(header, rows, numeric_from=1)


def _layer_change(row: LayerRow, reference: Optional[int], delta: Optional[int], applicable: bool) -> str:
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


def _layer_table_row(row: LayerRow, model: Mapping[str, Any], with_base: bool) -> list[str]:
    has_budget = entry_layers(model.get("budget")) is not None
    has_base = entry_layers(model.get("base")) is not None
    now = "?" if row.unknown else format_count(row.now) if row.measured else "-"
    cells = [code(row.key, in_table=True)]
    if with_base:
        cells.append("-" if row.base is None else format_count(row.base))
    cells += ["-" if row.budget is None else format_count(row.budget), now,
              _layer_change(row, row.budget, row.vs_budget, has_budget)]
    if with_base:
        cells.append(_layer_change(row, row.base, row.vs_base, has_base))
    return cells


def _layer_section(report: Mapping[str, Any], model: Mapping[str, Any], shape: _Shape) -> list[str]:
    rows = layer_rows(model)
    lines: list[str] = []
    if rows:
        with_base = report["base"] is not None
        shown = rows[:shape.layer_rows]
        if shown:
            header = ["layer"] + (["base"] if with_base else []) + ["budget", "this commit", "vs budget"]
            header += ["vs base"] if with_base else []
            lines += ["Layers that changed most (MACs, largest change first):", ""]
            lines += table(header, [_layer_table_row(row, model, with_base) for row in shown], numeric_from=1)
        hidden = len(rows) - len(shown)
        if hidden:
            why = TRUNCATED if shape.layer_rows < TOP_LAYERS else f"the {TOP_LAYERS} largest changes are shown"
            more = "more " if shown else ""
            lines += [f"_… {plural(hidden, more + 'layer')} not shown ({why})_", ""]
    if shape.charts:
        lines += chart_lines(report, model)
    return lines




def entry_differences(base_entry: Mapping[str, Any], entry: Mapping[str, Any]) -> list[str]:
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
    for key in TOTAL_TOLERANCE_KEYS:
        old, new = old_tolerance.get(key), new_tolerance.get(key)
        if not same_tolerance(old, new, key):
            phrases.append(f"tolerance on {METRIC_LABELS[key]} {old or '?'} → {new or '?'}")
    if base_entry["inputs"] != entry["inputs"]:
        phrases.append(f"inputs {shapes_text(_sorted(base_entry['inputs']))} → {shapes_text(_sorted(entry['inputs']))}")
    changed_layers = _changed_keys(base_entry["layers"], entry["layers"])
    if changed_layers:
        phrases.append(f"{changed_layers} layer {'entry' if changed_layers == 1 else 'entries'} changed")
    return phrases


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> int:
    return sum(1 for key in set(old) | set(new) if old.get(key) != new.get(key))


def _sorted(inputs: Optional[Mapping[str, Sequence[int]]]) -> Optional[dict[str, Sequence[int]]]:
    return None if inputs is None else dict(sorted(inputs.items()))



# --- the whole report ------------------------------------------------------------


def _compact_line(report: Mapping[str, Any], model: Mapping[str, Any]) -> str:
    return f"- {code(model['name'])} ({_status_cell(model)}): {_numbers_phrase(report, model)}"


def _unused_lines(report: Mapping[str, Any], limit: Optional[int]) -> list[str]:
    unused = report["unused"]
    if not unused:
        return []
    shown = unused if limit is None else unused[:limit]
    names = ", ".join(code(name) for name in shown)
    if len(shown) < len(unused):
        names += f" and {len(unused) - len(shown)} more (not shown: {TRUNCATED})"
    noun = "entry" if len(unused) == 1 else "entries"
    return ["### Unused budget entries", "",
            f"{len(unused)} budget {noun} in {code(report['budget_file'])} not used by any test: {names}. "
            f"Run {code(UPDATE_COMMAND)} on the whole suite to remove {'it' if len(unused) == 1 else 'them'}.", ""]


def _priority(model: Mapping[str, Any]) -> int:
    if is_regression(model) or model["failed"]:
        return 0
    return 1 if has_changes(model) else 2


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
    lines += [f"- {code(e['name'])} ({code(e['test'])}): {escape(e['message'])}" for e in errors]
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
    return sorted((model for model in report["models"] if has_changes(model)),
                  key=lambda model: (_priority(model), model["name"]))


def _details(report: Mapping[str, Any], shape: _Shape) -> list[str]:
    changed = _changed_models(report)
    shown = changed if shape.detail_models is None else changed[:shape.detail_models]
    lines: list[str] = []
    for model in shown:
        lines += _detail_lines(report, model, shape)
    if not shape.charts and any(chart_lines(report, model) for model in shown):
        lines += [f"_Charts not shown ({TRUNCATED})._", ""]
    hidden = len(changed) - len(shown)
    if hidden and shown:
        lines += [f"_… the sections of {plural(hidden, 'more model')} are not shown ({TRUNCATED})._", ""]
    elif hidden:
        lines += [f"_Per-model sections not shown ({TRUNCATED}); the JSON report has every number._", ""]
    return lines


def _unchanged_lines(report: Mapping[str, Any], shape: _Shape) -> list[str]:
    unchanged = [model for model in report["models"] if not has_changes(model)]
    if not unchanged:
        return []
    if not shape.unchanged:
        return [f"_{plural(len(unchanged), 'unchanged model')} not listed ({TRUNCATED})._", ""]
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
