"""GitHub `::error` annotations for the regressions of a pull-request report: on the line of the
user's code that builds the layer that grew most, else on the model's budget entry."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from ..budget import INPUTS_CHANGED, change_percent, signed_metric
from ..pr_report.query import entry_total, failures_shown, now_total, regressions, top_grown_layer
from ..pr_report.vocabulary import STATUS_TEXT
from ..units import format_count
from .commands import escape_data, escape_property

MAX_ERROR_ANNOTATIONS = 10            # GitHub shows at most 10 error annotations per step


def annotations(report: Mapping[str, Any], *, budget_path: str, budget_lines: Mapping[str, int],
                max_errors: int = MAX_ERROR_ANNOTATIONS) -> list[str]:
    """One `::error` line per regression, largest first, at most max_errors, then one `::notice`
    for the rest. Each points at the line of the user's code that builds the layer that grew most
    (a line this branch changed, when the report knows one), else at the model's line in the
    budget file."""
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
        file, line = location["file"], location["line"]
    else:
        file, line = budget_path, budget_lines.get(model["name"])
    properties = [("file", file)]
    if line is not None:
        properties.append(("line", str(line)))
    properties.append(("title", _annotation_title(model)))
    rendered = ",".join(f"{key}={escape_property(value)}" for key, value in properties)
    return f"::error {rendered}::{escape_data(_annotation_message(model, location))}"


def _source_location(model: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    """Where the user's code builds the layer that grew most, if the report knows. A changed
    input shape is the test's doing, not a layer's: that points at the budget file."""
    if model["status"] == INPUTS_CHANGED:
        return None
    grown = top_grown_layer(model)
    if grown is None:
        return None
    return (model.get("sources") or {}).get(grown[0])


def _annotation_title(model: Mapping[str, Any]) -> str:
    title = f"pytest-maccbudget: {model['name']}: {STATUS_TEXT[model['status']]}"
    old, new = entry_total(model.get("budget"), "macs"), now_total(model, "macs")
    if old is not None and new is not None and new != old:
        title += f" (MACs {change_percent(old, new) or signed_metric('macs', new - old)})"
    return title


def _annotation_message(model: Mapping[str, Any], location: Optional[Mapping[str, Any]]) -> str:
    lines = [f"model {model['name']!r} ({model['test']}): {STATUS_TEXT[model['status']]}"]
    lines += failures_shown(model["failures"])
    grown = top_grown_layer(model)
    if location is not None and grown is not None:
        where = "this line, changed in this branch, builds it" if location.get("changed") else "it is built here"
        lines.append(f"largest growth: layer {grown[0]} (+{format_count(grown[1])} MACs); {where}")
    return "\n".join(lines)
