"""Render a budget ``History`` (pytest_maccbudget.history) as a terminal table, Markdown with a
mermaid chart per model, CSV or JSON. Pure functions, no I/O.

Commit subjects and model names come from the repository: the Markdown escapes them with
`markdown_text`, the mermaid strings go through the pull-request chart's `mermaid_text`, and the terminal table
shows control characters as "?" so that a subject cannot send escape sequences to a terminal.
CSV and JSON hold them as they are. The JSON keys are documented in docs/history.md.
"""
from __future__ import annotations

import csv
import io
import json
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Optional, Sequence

from .budget import TOTAL_METRICS, format_metric, signed_metric
from .history import ADDED, CHANGED, METRIC_LABELS, REMOVED, START, History, HistoryPoint, ModelHistory, trend_phrase
from .markdown_text import code, escape, one_line, table
from .texttable import aligned_table
from .units import change_percent, plural

FORMATS = ("table", "markdown", "csv", "json")
JSON_SCHEMA = "pytest-maccbudget-history"
JSON_VERSION = 1
SHOWN_METRICS = ("macs", "params", "peak_activation_bytes")
_OTHER_METRICS = tuple(metric for metric in TOTAL_METRICS if metric not in SHOWN_METRICS)
TABLE_HEADER = ("commit", "date", "MACs", "params", "peak act. memory", "change", "subject")
MARKDOWN_HEADER = ("commit", "date", "MACs", "params", "peak activation memory", "change", "subject")
_NUMERIC_FROM, _TEXT_AFTER = 2, 5  # the number columns of both tables
SUBJECT_WIDTH = 60  # characters of a subject in the terminal table
CSV_COLUMNS = ("model", "commit", "short", "date", "subject", "kind", *TOTAL_METRICS,
               *(f"{metric}_change" for metric in TOTAL_METRICS))
KIND_TEXT = {ADDED: "added", REMOVED: "removed", START: "oldest commit in this clone"}
_SCALES = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k"))
_TERMINAL_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


# --- shared text -------------------------------------------------------------------------


def change_text(point: HistoryPoint) -> str:
    """What moved at this point: "added", "removed", or "MACs +200 k (+20.0%); params ...":
    the shown metrics that changed, else (FLOPs or parameter bytes alone, e.g. a new dtype)
    the others. JSON and CSV have every metric's change."""
    if point.kind != CHANGED:
        return KIND_TEXT[point.kind]
    for metrics in (SHOWN_METRICS, _OTHER_METRICS):
        moved = [text for text in (_metric_change(point, metric) for metric in metrics) if text]
        if moved:
            return "; ".join(moved)
    return ""


def _metric_change(point: HistoryPoint, metric: str) -> str:
    label = METRIC_LABELS[metric]
    old = None if point.previous is None else point.previous.get(metric)
    new = point.totals.get(metric)
    if old == new:
        return ""
    if old is None or new is None:
        return f"{label} {format_metric(metric, new)} recorded" if old is None else f"{label} no longer recorded"
    percent = change_percent(old, new)
    return f"{label} {signed_metric(metric, new - old)}" + (f" ({percent})" if percent else "")


def _metric_cell(point: HistoryPoint, metric: str) -> str:
    return "-" if point.kind == REMOVED else format_metric(metric, point.totals.get(metric))


def point_cells(point: HistoryPoint) -> list[str]:
    """A table row in plain text: commit, date, the shown metrics, change, subject."""
    return [point.short, point.day, *(_metric_cell(point, metric) for metric in SHOWN_METRICS),
            change_text(point), point.subject]


def model_summary(model: ModelHistory) -> str:
    """"3 changes, oldest first; 2 earlier changes not shown"."""
    summary = f"{plural(len(model.points), 'change')}, oldest first"
    if model.earlier:
        summary += f"; {plural(model.earlier, 'earlier change')} not shown"
    return summary


def history_title(history: History, rev: str = "", commit: str = "") -> str:
    """"first-parent history of REV (COMMIT): 7 commits changed the file, 3 models"; rev and
    commit as given (already formatted), else as plain text."""
    return (f"first-parent history of {rev or history.rev} ({commit or history.commit[:12]}): "
            f"{plural(history.file_commits, 'commit')} changed the file, {plural(len(history.models), 'model')}")


# --- terminal table ----------------------------------------------------------------------


def _terminal(text: str) -> str:
    return _TERMINAL_UNSAFE.sub("?", one_line(text))


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def render_table(history: History) -> list[str]:
    """A title line, then per model its aligned table and trend line; then the notes."""
    lines = [f"{_terminal(history.budget_path)}: {_terminal(history_title(history))}"]
    for model in history.models.values():
        lines += ["", f"{_terminal(model.name)}: {model_summary(model)}"]
        lines += aligned_table(TABLE_HEADER, [_terminal_cells(point) for point in model.points],
                               range(_NUMERIC_FROM, _TEXT_AFTER))
        lines.append(trend_phrase(model.points))
    if history.notes:
        lines += [""] + [f"note: {_terminal(note)}" for note in history.notes]
    return lines


def _terminal_cells(point: HistoryPoint) -> list[str]:
    cells = point_cells(point)
    cells[-1] = _clip(cells[-1], SUBJECT_WIDTH)
    return [_terminal(cell) for cell in cells]


# --- markdown ----------------------------------------------------------------------------


def render_markdown(history: History) -> list[str]:
    """A heading, then per model a table, its mermaid chart and its trend; then the notes."""
    title = history_title(history, code(history.rev), code(history.commit[:12]))
    lines = [f"## Cost history of {code(history.budget_path)}", "", f"{title[0].upper()}{title[1:]}.", ""]
    for model in history.models.values():
        lines += model_markdown(model)
    if history.notes:
        lines += [f"- note: {escape(note)}" for note in history.notes] + [""]
    return lines


def model_markdown(model: ModelHistory) -> list[str]:
    """One model's section: heading, table, chart (two or more points with MACs) and trend."""
    rows = [_markdown_cells(point) for point in model.points]
    return ([f"### {code(model.name)}", "", f"{escape(model_summary(model))}:", ""]
            + table(MARKDOWN_HEADER, rows, _NUMERIC_FROM, _TEXT_AFTER)
            + chart_lines(model)
            + [f"_{escape(trend_phrase(model.points))}_", ""])


def _markdown_cells(point: HistoryPoint) -> list[str]:
    cells = point_cells(point)
    return [code(cells[0], in_table=True)] + [escape(cell, in_table=True) for cell in cells[1:]]


# --- mermaid -----------------------------------------------------------------------------


def _chart_number(value: Decimal) -> str:
    number = value.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    text = f"{number:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def chart_lines(model: ModelHistory) -> list[str]:
    """A mermaid line chart of MACs per point, the value axis from zero to a round number at or
    above the highest point, short SHAs as labels. No chart when fewer than two points have
    MACs (removals and unknown MACs are not drawn)."""
    # Imported here: the pull-request report may import this module, and importing the chart
    # module runs pr_report/__init__, which imports the report's markdown eagerly.
    from .pr_report.chart import TITLE_WIDTH, mermaid_text, nice_top

    charted = [(point.short, point.totals["macs"]) for point in model.points
               if point.kind != REMOVED and point.totals.get("macs") is not None]
    biggest = max((macs for _, macs in charted), default=0)
    if len(charted) < 2 or biggest == 0:
        return []
    divisor, unit = next(((scale, prefix) for scale, prefix in _SCALES if biggest >= scale), (1, ""))
    axis = f"MACs ({unit})" if unit else "MACs"
    labels = ", ".join(f'"{mermaid_text(short, 16)}"' for short, _ in charted)
    values = ", ".join(_chart_number(Decimal(macs) / divisor) for _, macs in charted)
    return [
        "```mermaid",
        "xychart-beta",
        f'    title "{mermaid_text(model.name, TITLE_WIDTH)}: MACs per change"',
        f"    x-axis [{labels}]",
        f'    y-axis "{axis}" 0 --> {_chart_number(nice_top(Decimal(biggest) / divisor))}',
        f"    line [{values}]",
        "```",
        "",
    ]


# --- csv / json --------------------------------------------------------------------------


def render_csv(history: History) -> str:
    """One row per (model, commit); raw integers; empty cells for what is not recorded."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for model in history.models.values():
        writer.writerows(_csv_row(model.name, point) for point in model.points)
    return buffer.getvalue()


def _csv_row(name: str, point: HistoryPoint) -> list[Any]:
    values = [point.totals.get(metric) for metric in TOTAL_METRICS]
    changes = [point.change(metric) for metric in TOTAL_METRICS]
    cells = [name, point.commit, point.short, point.date, point.subject, point.kind, *values, *changes]
    return ["" if cell is None else cell for cell in cells]


def history_json(history: History) -> dict[str, Any]:
    """The JSON object of `maccbudget history --format json` (keys in docs/history.md)."""
    return {
        "schema": JSON_SCHEMA,
        "version": JSON_VERSION,
        "budget_file": history.budget_path,
        "rev": history.rev,
        "commit": history.commit,
        "file_commits": history.file_commits,
        "models": [_model_json(model) for model in history.models.values()],
        "skipped": [{"commit": skip.commit, "short": skip.short, "date": skip.date, "subject": skip.subject,
                     "reason": skip.reason} for skip in history.skipped],
        "shallow_boundary": history.shallow_boundary,
        "notes": list(history.notes),
    }


def _model_json(model: ModelHistory) -> dict[str, Any]:
    return {"name": model.name, "earlier": model.earlier, "points": [_point_json(p) for p in model.points]}


def _point_json(point: HistoryPoint) -> dict[str, Any]:
    changes = {metric: point.change(metric) for metric in TOTAL_METRICS}
    return {
        "commit": point.commit, "short": point.short, "date": point.date, "subject": point.subject,
        "kind": point.kind, "totals": dict(point.totals),
        "previous": None if point.previous is None else dict(point.previous),
        "change": changes if point.kind == CHANGED else None,
    }


def render_json(history: History, indent: Optional[int] = None) -> str:
    """Compact (one line) unless indent is given."""
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(history_json(history), indent=indent, separators=separators)


# --- dispatch ----------------------------------------------------------------------------


def render(history: History, fmt: str = "table", indent: Optional[int] = None) -> str:
    """The whole history in one format, ending with a newline."""
    renderers: dict[str, Callable[[], str]] = {
        "table": lambda: _joined(render_table(history)),
        "markdown": lambda: _joined(render_markdown(history)),
        "csv": lambda: render_csv(history),
        "json": lambda: render_json(history, indent) + "\n",
    }
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return renderers[fmt]()


def _joined(lines: Sequence[str]) -> str:
    return "\n".join(lines).rstrip("\n") + "\n"
