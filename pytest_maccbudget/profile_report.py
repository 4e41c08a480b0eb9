"""Render a Profile as a terminal table, Markdown, CSV or JSON. Pure functions, no I/O.

A layer is named by its budget key (`layers.layer_keys`: the PyTorch module path, whichever
exporter wrote the file, so the rows match the budget file's `layers:`); CSV and JSON keep the
node's own name in `name` and give the key in `layer_key`.

Which layers the human formats (table, Markdown) show:

* layers that compute constants before the graph runs (status "constant") are never shown;
* zero-cost layers (status "free": reshapes, concats, ...) and layers folded into a
  neighbour (status "folded": BatchNormalization after Conv, ...) are hidden unless
  ``show_all`` is set; a line says how many of each were hidden and of which ops;
* unknown and unresolved layers are always shown (their MACs print as "?");
* ``top=N`` keeps the N layers with the most MACs (then FLOPs), largest first, and says how
  many were left out and what share of the MACs they hold; otherwise rows are in graph order.

CSV lists every layer (constant ones too, with their status) in graph order, or the top N;
its numbers are raw integers, unknown cells are empty. JSON is ``Profile.to_dict()`` (plus
``layer_key``) and always
holds every layer, on one line unless an indent is asked for. Unknown values print as "?" in the
human formats, never as 0; a figure that is an upper bound (a shape that depends on data, as
after a NonMaxSuppression) prints with "<=" before it, and CSV's `upper_bound` column names them.
"""
from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from .engine.registry import DEFAULT_DOMAIN, normalize_domain
from .layers import layer_keys
from .engine.results import (
    CONSTANT,
    COSTED,
    FOLDED,
    FREE,
    UNRESOLVED,
    LayerCost,
    Profile,
)
from .markdown_text import code, escape, row
from .texttable import aligned_table
from .units import format_bytes, format_count, format_percent, plural

FORMATS = ("table", "json", "markdown", "csv")

MAX_NAME_WIDTH = 48
MAX_NOTE_WIDTH = 64
HIDDEN_OPS_LISTED = 6  # op types named in a "not shown" line
CSV_COLUMNS = (
    "name", "op_type", "domain", "status", "macs", "flops", "params", "param_bytes",
    "output_bytes", "bytes_read", "bytes_written", "note", "op_class", "upper_bound", "layer_key",
)
UPPER_BOUND_MARK = "<="  # before a figure that is an upper bound
TABLE_HEADER = ("layer", "op", "MACs", "% MACs", "FLOPs", "params", "output bytes", "note")
# Columns aligned to the right (numbers).
_NUMERIC = frozenset({2, 3, 4, 5, 6})


@dataclass
class RowSelection:
    """The layers a human format shows, plus what it left out and why."""

    rows: list[LayerCost]
    hidden: list[str] = field(default_factory=list)  # one phrase per kind of hidden layer
    top_note: Optional[str] = None
    can_show_more: bool = False  # free or folded layers were hidden (show_all shows them)


# --- row selection ------------------------------------------------------------------------


def select_rows(profile: Profile, top: Optional[int] = None, show_all: bool = False) -> RowSelection:
    """Constant layers are dropped; free/folded ones too unless show_all; then the top N."""
    visible: list[LayerCost] = []
    constant: list[LayerCost] = []
    free: list[LayerCost] = []
    folded: list[LayerCost] = []
    for layer in profile.layers:
        if layer.status == CONSTANT:
            constant.append(layer)
        elif layer.status == FREE and not show_all:
            free.append(layer)
        elif layer.status == FOLDED and not show_all:
            folded.append(layer)
        else:
            visible.append(layer)
    hidden = [
        _hidden_phrase(constant, "computing constants before the graph runs", by_op=False),
        _hidden_phrase(folded, "folded into a neighbour"),
        _hidden_phrase(free, "costing nothing"),
    ]
    selection = RowSelection(visible, [h for h in hidden if h], can_show_more=bool(free or folded))
    if top is not None:
        _keep_top(selection, profile, top)
    return selection


def _hidden_phrase(layers: Sequence[LayerCost], what: str, by_op: bool = True) -> str:
    """"58 layers costing nothing (Concat x58)"; "" when there are none."""
    if not layers:
        return ""
    ops = f" ({op_counts(layers, limit=HIDDEN_OPS_LISTED)})" if by_op else ""
    return f"{plural(len(layers), 'layer')} {what}{ops}"


def _keep_top(selection: RowSelection, profile: Profile, top: int) -> None:
    ranked = sorted(selection.rows, key=_rank_key, reverse=True)
    kept = ranked[:top]
    left_out = ranked[top:]
    selection.rows = kept
    if not left_out:
        return
    rest_macs = sum(layer.macs or 0 for layer in left_out)
    share = format_percent(_share(rest_macs, profile.totals.macs))
    selection.top_note = (
        f"top {len(kept)} of {plural(len(ranked), 'layer')} by MACs; {len(left_out)} left out "
        f"({format_count(rest_macs)} MACs, {share} of the total)"
    )


def _rank_key(layer: LayerCost) -> tuple[int, int]:
    macs = -1 if layer.macs is None else layer.macs
    flops = -1 if layer.flops is None else layer.flops
    return macs, flops


def op_counts(layers: Sequence[LayerCost], limit: Optional[int] = None) -> str:
    """"Concat x58, Reshape x2": op types by count, most common first."""
    return _count_phrase(Counter(_op_label(layer.op_type, layer.domain) for layer in layers), limit)


def _count_phrase(counts: Counter, limit: Optional[int] = None) -> str:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shown = ordered if limit is None else ordered[:limit]
    more = len(ordered) - len(shown)
    return ", ".join(f"{op} x{count}" for op, count in shown) + (f", {more} more op types" if more else "")


def _op_label(op_type: str, domain: str) -> str:
    return op_type if normalize_domain(domain) == DEFAULT_DOMAIN else f"{domain}::{op_type}"


def _share(part: Optional[int], whole: int) -> Optional[float]:
    if part is None:
        return None
    if whole == 0:
        return 0.0 if part == 0 else None
    return part / whole


# --- summary lines ------------------------------------------------------------------------


def coverage_line(profile: Profile) -> str:
    """"97.3% of nodes costed (36 of 37); 1 unknown: Foo x1" (+ "; 2 unresolved: ..." for
    known ops whose input shapes or values could not be worked out)."""
    runtime = profile.runtime_layers
    counted = sum(1 for layer in runtime if layer.counted)
    line = f"{format_percent(profile.coverage)} of nodes costed ({counted} of {len(runtime)})"
    unresolved = [u for u in profile.unknown if u.status == UNRESOLVED]
    unknown = [u for u in profile.unknown if u.status != UNRESOLVED]
    for label, group in (("unknown", unknown), ("unresolved (shape or value not known)", unresolved)):
        if group:
            counts = Counter(_op_label(u.op_type, u.domain) for u in group)
            line += f"; {len(group)} {label}: {_count_phrase(counts)}"
    return line


def bounded(text: str, is_bound: bool) -> str:
    """A figure as printed: "<=1.2 G" when it is an upper bound."""
    return f"{UPPER_BOUND_MARK}{text}" if is_bound and text != "?" else text


def summary_items(profile: Profile) -> list[tuple[str, str]]:
    """(label, value) pairs printed under the table."""
    totals = profile.totals
    bound = profile.is_upper_bound
    traffic = (f"{bounded(format_bytes(totals.memory_traffic_bytes), bound('memory_traffic_bytes'))} "
               f"(read {bounded(format_bytes(totals.bytes_read), bound('bytes_read'))}, "
               f"written {bounded(format_bytes(totals.bytes_written), bound('bytes_written'))})")
    items = [
        ("MACs", bounded(format_count(totals.macs), bound("macs"))),
        ("FLOPs", bounded(format_count(totals.flops), bound("flops"))),
        ("parameters", f"{format_count(totals.params)} ({format_bytes(totals.param_bytes)})"),
        ("peak activation memory", bounded(format_bytes(totals.peak_activation_bytes), bound("peak_activation_bytes"))),
        ("memory traffic", traffic),
        ("coverage", coverage_line(profile)),
    ]
    if profile.partial:
        items.append(("partial", "totals add up only the layers that could be costed: they are lower bounds"))
    if profile.bounded:
        items.append(("upper bound", upper_bound_line(profile)))
    return items


def upper_bound_line(profile: Profile) -> str:
    """"FLOPs and peak activation memory are upper bounds (marked <=): 12 layers depend on data"."""
    names = {"macs": "MACs", "flops": "FLOPs", "peak_activation_bytes": "peak activation memory",
             "memory_traffic_bytes": "memory traffic"}
    bounds = [names[m] for m in profile.upper_bounds if m in names]
    layers = sum(1 for layer in profile.runtime_layers if layer.upper_bounds)
    listed = ", ".join(bounds[:-1]) + (" and " if len(bounds) > 1 else "") + bounds[-1] if bounds else "some figures"
    verb = "is an upper bound" if len(bounds) == 1 else "are upper bounds"
    depend = "depends on data and is counted at its largest" if layers == 1 else \
        "depend on data and are counted at their largest"
    return f"{listed} {verb} (marked {UPPER_BOUND_MARK}): {plural(layers, 'layer')} {depend}"


def header_lines(profile: Profile) -> list[str]:
    lines = [f"model: {profile.model_name}" + (f" (opset {profile.opset})" if profile.opset else "")]
    if profile.inputs:
        shapes = ", ".join(f"{name} {list(dims)}" for name, dims in profile.inputs.items())
        lines.append(f"inputs: {shapes}")
    return lines


# --- cells --------------------------------------------------------------------------------


def layer_cells(layer: LayerCost, total_macs: int, label: Optional[str] = None) -> list[str]:
    """A layer's cells; `label` names it (its budget key), else its node name."""
    bounds = layer.upper_bounds
    return [
        layer.name if label is None else label,
        _op_label(layer.op_type, layer.domain),
        bounded(format_count(layer.macs), "macs" in bounds),
        "" if layer.macs == 0 else format_percent(_share(layer.macs, total_macs)),
        bounded(format_count(layer.flops), "flops" in bounds),
        format_count(layer.params) if layer.params else "",
        bounded(format_bytes(layer.output_bytes), "output_bytes" in bounds),
        status_note(layer),
    ]


def total_cells(profile: Profile) -> list[str]:
    totals = profile.totals
    not_costed = sum(1 for layer in profile.runtime_layers if not layer.counted)
    notes = [f"lower bound: {plural(not_costed, 'layer')} not costed"] if profile.partial else []
    if profile.bounded:
        notes.append("upper bound: shapes depend on data")
    return [
        "total", "", bounded(format_count(totals.macs), profile.is_upper_bound("macs")),
        format_percent(1.0 if totals.macs else 0.0),
        bounded(format_count(totals.flops), profile.is_upper_bound("flops")), format_count(totals.params), "",
        "; ".join(notes),
    ]


def status_note(layer: LayerCost) -> str:
    """The note column: the status when it is not plain "costed", then the engine's note."""
    note = " ".join(layer.note.split())
    if layer.status == COSTED:
        return note
    if not note or note.lower().startswith(layer.status):
        return note or layer.status
    return f"{layer.status}: {note}"


def shorten(text: str, width: int, middle: bool = True) -> str:
    """Cut text to width with "..." (in the middle for names, at the end for notes)."""
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:width]
    if not middle:
        return text[: width - 3] + "..."
    head = (width - 3 + 1) // 2
    tail = width - 3 - head
    return text[:head] + "..." + (text[-tail:] if tail else "")


# --- table --------------------------------------------------------------------------------


def table_grid(profile: Profile, selection: RowSelection) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, body rows, total row) as cell strings; the note column is dropped when empty."""
    header = list(TABLE_HEADER)
    keys = layer_keys(profile)
    body = [layer_cells(layer, profile.totals.macs, keys[layer.name]) for layer in selection.rows]
    total = total_cells(profile)
    if not any(row[-1] for row in [*body, total]):
        return header[:-1], [row[:-1] for row in body], total[:-1]
    return header, body, total


def render_table(profile: Profile, top: Optional[int] = None, show_all: bool = False) -> list[str]:
    """Aligned plain-text table for a terminal, with totals, memory, coverage and notes."""
    selection = select_rows(profile, top, show_all)
    header, body, total = table_grid(profile, selection)
    table = aligned_table(header, [_clip(row) for row in body], _NUMERIC, footer=_clip(total))
    if not body:
        table.insert(2, "(no layers to show)")
    return framed_table(profile, table, selection, summary_items(profile))


def framed_table(profile: Profile, table: list[str], selection: RowSelection,
                 items: list[tuple[str, str]]) -> list[str]:
    """The text report around an aligned table: the model's header, what the table left out,
    then `items` as aligned "label: value" lines and the profile's notes."""
    lines = header_lines(profile) + [""] + table + [""]
    left_out = left_out_lines(selection)
    if left_out:
        lines.extend(left_out + [""])
    label_width = max(len(label) for label, _ in items) + 1
    lines.extend(f"{label + ':':<{label_width}} {value}" for label, value in items)
    lines.extend(f"note: {note}" for note in profile.notes)
    return lines


def _clip(cells: list[str]) -> list[str]:
    """Long layer names are cut in the middle, long notes at the end."""
    cells = list(cells)
    cells[0] = shorten(cells[0], MAX_NAME_WIDTH)
    if len(cells) == len(TABLE_HEADER):
        cells[-1] = shorten(cells[-1], MAX_NOTE_WIDTH, middle=False)
    return cells


def _hidden_title(selection: RowSelection) -> str:
    hint = " (--all shows free and folded layers)" if selection.can_show_more else ""
    return f"not shown{hint}:"


def left_out_lines(selection: RowSelection) -> list[str]:
    """What the table left out: the top-N cut, then one line per kind of hidden layer."""
    lines = [selection.top_note] if selection.top_note else []
    if selection.hidden:
        lines.append(_hidden_title(selection))
        lines.extend("  " + phrase for phrase in selection.hidden)
    return lines


# --- markdown -----------------------------------------------------------------------------


def render_markdown(profile: Profile, top: Optional[int] = None, show_all: bool = False) -> list[str]:
    """GitHub-flavoured Markdown: a heading, a table and a bullet list (for PR comments)."""
    selection = select_rows(profile, top, show_all)
    header, body, total = table_grid(profile, selection)
    lines = [f"### maccbudget: {code(profile.model_name)}", ""]
    inputs = header_lines(profile)[1:]
    if inputs:
        lines.extend([f"- {_md_escape(line)}" for line in inputs] + [""])
    lines.append(row(header))
    lines.append(row(["--:" if i in _NUMERIC else "---" for i in range(len(header))]))
    for cells in body:
        lines.append(row([code(cells[0], in_table=True)] + [_md_escape(c) for c in cells[1:]]))
    lines.append(row([f"**{_md_escape(c)}**" if c else "" for c in total]))
    lines.append("")
    if selection.top_note:
        lines.append(f"_{_md_escape(selection.top_note)}_  ")
    if selection.hidden:
        lines.append(f"_{_md_escape(_hidden_title(selection) + ' ' + '; '.join(selection.hidden))}_")
    if selection.top_note or selection.hidden:
        lines.append("")
    lines.extend(f"- **{label}:** {_md_escape(value)}" for label, value in summary_items(profile))
    lines.extend(f"- note: {_md_escape(note)}" for note in profile.notes)
    return lines


def _md_escape(text: str) -> str:
    return escape(text, in_table=True)


# --- csv / json ---------------------------------------------------------------------------


def render_csv(profile: Profile, top: Optional[int] = None) -> str:
    """Every layer in graph order (or the top N by MACs) with raw integers; unknown = empty."""
    layers: Sequence[LayerCost] = profile.layers
    if top is not None:
        layers = sorted((l for l in layers if l.status != CONSTANT), key=_rank_key, reverse=True)[:top]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    keys = layer_keys(profile)
    for layer in layers:
        writer.writerow([_csv_cell(layer, column, keys) for column in CSV_COLUMNS])
    return buffer.getvalue()


def _csv_cell(layer: LayerCost, column: str, keys: dict[str, str]) -> object:
    if column == "upper_bound":
        return ";".join(layer.upper_bounds)
    if column == "layer_key":
        return keys[layer.name]
    value = getattr(layer, column)
    return "" if value is None else value


def render_json(profile: Profile, indent: Optional[int] = None) -> str:
    """Profile.to_dict() as JSON, each layer with its budget key (`layer_key`) beside its node
    name: one compact line, or indented by `indent` spaces. Unknown values are null, never 0."""
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(json_dict(profile), indent=indent, separators=separators)


def json_dict(profile: Profile) -> dict[str, object]:
    """Profile.to_dict() with each layer's budget key (`layer_key`) beside its node name."""
    data = profile.to_dict()
    keys = layer_keys(profile)
    for layer in data["layers"]:
        layer["layer_key"] = keys[layer["name"]]
    return data


# --- dispatch -----------------------------------------------------------------------------


def render(profile: Profile, fmt: str = "table", top: Optional[int] = None, show_all: bool = False,
           indent: Optional[int] = None) -> str:
    """The whole report in one format, ending with a newline (`indent` applies to JSON)."""
    renderers: dict[str, Callable[[], str]] = {
        "table": lambda: "\n".join(render_table(profile, top, show_all)) + "\n",
        "markdown": lambda: "\n".join(render_markdown(profile, top, show_all)) + "\n",
        "csv": lambda: render_csv(profile, top),
        "json": lambda: render_json(profile, indent) + "\n",
    }
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return renderers[fmt]()
