"""Text, Markdown, CSV and JSON for device estimates: the profile table with latency, energy and
bound columns, the list of device profiles, and a calibration's predicted-against-measured table.
Pure functions, no I/O. Unknown values print as "?", never as 0.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Optional, Sequence

from ..engine.results import Profile
from ..markdown_text import code, escape, row
from ..profile_report import (framed_table, header_lines, left_out_lines, select_rows, shorten, summary_items,
                              table_grid)
from ..profile_report import render_csv as render_profile_csv
from ..texttable import aligned_table
from ..units import format_bytes, format_count, plural
from .calibrate import ClassComparison, ModelComparison
from .profiles import Device
from .roofline import LayerEstimate, ModelEstimate, memory_bound_layers

FORMATS = ("table", "json", "markdown", "csv")
DEVICE_FORMATS = ("table", "json")
ESTIMATE_HEADER = ("latency", "energy", "bound")
ESTIMATE_CSV_COLUMNS = ("op_class", "latency_ms", "energy_mj", "bound", "intensity")
MAX_NAME_WIDTH = 48
MAX_NOTE_WIDTH = 64
MEMORY_BOUND_LISTED = 3


# --- units --------------------------------------------------------------------------------


def format_ms(value: Optional[float]) -> str:
    """Milliseconds with 3 significant digits: "8.56 s", "12.3 ms", "456 us"; "?" when unknown."""
    if value is None:
        return "?"
    if value == 0:
        return "0"
    if value >= 1000:
        return f"{_three(value / 1e3)} s"
    if value >= 1:
        return f"{_three(value)} ms"
    if value >= 1e-3:
        return f"{_three(value * 1e3)} us"
    return f"{_three(value * 1e6)} ns"


def format_mj(value: Optional[float]) -> str:
    """Millijoules with 3 significant digits: "4.56 mJ", "789 uJ", "12.0 nJ"."""
    if value is None:
        return "?"
    if value == 0:
        return "0"
    for scale, unit in ((1.0, "mJ"), (1e-3, "uJ"), (1e-6, "nJ")):
        if value >= scale:
            return f"{_three(value / scale)} {unit}"
    return f"{_three(value / 1e-9)} pJ"


def format_rate(value: float, unit: str) -> str:
    """Per-second figures in SI prefixes: "80.8 G" MAC/s, "25.6 GB/s"."""
    return f"{format_bytes(value)}/s" if unit == "B" else f"{format_count(value)}MAC/s"


def _three(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


# --- the profile table with estimates --------------------------------------------------------


def render_profile(profile: Profile, model_estimate: ModelEstimate, fmt: str = "table", top: Optional[int] = None,
                   show_all: bool = False, indent: Optional[int] = None) -> str:
    """`maccbudget profile --device` in one format, ending with a newline; JSON on one compact
    line unless `indent`, like the profile without a device."""
    if fmt == "json":
        separators = (",", ":") if indent is None else (",", ": ")
        return json.dumps(profile_json(profile, model_estimate), indent=indent, separators=separators) + "\n"
    if fmt == "csv":
        return render_csv(profile, model_estimate, top)
    lines = (render_markdown(profile, model_estimate, top, show_all) if fmt == "markdown"
             else render_table(profile, model_estimate, top, show_all))
    return "\n".join(lines) + "\n"


def _by_name(model_estimate: ModelEstimate) -> dict[str, LayerEstimate]:
    return {layer.name: layer for layer in model_estimate.layers}


def _estimate_cells(layer: Optional[LayerEstimate]) -> list[str]:
    if layer is None:
        return ["", "", ""]
    return [format_ms(layer.latency_ms), format_mj(layer.energy_mj), layer.bound or "?"]


def _grid(profile: Profile, model_estimate: ModelEstimate, top: Optional[int],
          show_all: bool) -> tuple[list[str], list[list[str]], list[str], set[int], Any]:
    """The profile's table with the estimate's columns inserted before the note column."""
    selection = select_rows(profile, top, show_all)
    header, body, total = table_grid(profile, selection)
    at = len(header) - 1 if header[-1] == "note" else len(header)
    estimates = _by_name(model_estimate)
    header = header[:at] + list(ESTIMATE_HEADER) + header[at:]
    body = [cells[:at] + _estimate_cells(estimates.get(layer.name)) + cells[at:]
            for cells, layer in zip(body, selection.rows)]
    total_cells = [format_ms(model_estimate.latency_ms), format_mj(model_estimate.energy_mj), ""]
    total = total[:at] + total_cells + total[at:]
    numeric = {2, 3, 4, 5, 6} | {at, at + 1}
    return header, body, total, numeric, selection


def render_table(profile: Profile, model_estimate: ModelEstimate, top: Optional[int] = None,
                 show_all: bool = False) -> list[str]:
    header, body, total, numeric, selection = _grid(profile, model_estimate, top, show_all)
    clip = _clipper(header)
    table = aligned_table(header, [clip(cells) for cells in body], numeric, footer=clip(total))
    if not body:
        table.insert(2, "(no layers to show)")
    return framed_table(profile, table, selection, summary_items(profile) + estimate_items(model_estimate))


def _clipper(header: Sequence[str]) -> Any:
    def clip(cells: list[str]) -> list[str]:
        cells = list(cells)
        cells[0] = shorten(cells[0], MAX_NAME_WIDTH)
        if header[-1] == "note":
            cells[-1] = shorten(cells[-1], MAX_NOTE_WIDTH, middle=False)
        return cells
    return clip


def render_markdown(profile: Profile, model_estimate: ModelEstimate, top: Optional[int] = None,
                    show_all: bool = False) -> list[str]:
    header, body, total, numeric, selection = _grid(profile, model_estimate, top, show_all)
    lines = [f"### maccbudget: {code(profile.model_name)} on {code(model_estimate.device.name)}", ""]
    lines.extend(f"- {escape(line, in_table=True)}" for line in header_lines(profile)[1:])
    lines.append("")
    lines.append(row(header))
    lines.append(row(["--:" if i in numeric else "---" for i in range(len(header))]))
    for cells in body:
        lines.append(row([code(cells[0], in_table=True)] + [escape(c, in_table=True) for c in cells[1:]]))
    lines.append(row([f"**{escape(c, in_table=True)}**" if c else "" for c in total]))
    lines.append("")
    left_out = left_out_lines(selection)
    if left_out:
        lines.append("_" + escape(" ".join(line.strip() for line in left_out), in_table=True) + "_")
        lines.append("")
    lines.extend(f"- **{label}:** {escape(value, in_table=True)}"
                 for label, value in summary_items(profile) + estimate_items(model_estimate))
    lines.extend(f"- note: {escape(note, in_table=True)}" for note in profile.notes)
    return lines


def estimate_items(model_estimate: ModelEstimate) -> list[tuple[str, str]]:
    """(label, value) lines under the table: device, latency with its split, energy, download."""
    device = model_estimate.device
    by_bound = model_estimate.time_by_bound()
    split = ", ".join(f"{bound}-bound {format_ms(by_bound[bound])}" for bound in ("compute", "memory", "overhead")
                      if by_bound[bound])
    if model_estimate.run_overhead_ms:
        split += f", run overhead {format_ms(model_estimate.run_overhead_ms)}"
    items = [("device", f"{device.name} ({device.device_class}; {device.source or 'no source given'})")]
    if model_estimate.latency_ms is None:
        unknown = model_estimate.unknown_latency
        items.append(("latency", f"? ({plural(len(unknown), 'layer')} could not be estimated: "
                                 f"{unknown[0].reason}; the others take {format_ms(model_estimate.known_latency_ms)})"))
    else:
        items.append(("latency", f"{format_ms(model_estimate.latency_ms)}" + (f" ({split})" if split else "")))
    items.append(("energy", _energy_text(model_estimate)))
    slowest = memory_bound_layers(model_estimate, top=MEMORY_BOUND_LISTED)
    if slowest:
        items.append(("slowest memory-bound", ", ".join(f"{layer.name} ({format_ms(layer.latency_ms)})"
                                                          for layer in slowest)))
    download = model_estimate.download
    sizes = ", ".join(f"{format_bytes(download.bytes_as(dtype))} as {dtype}" for dtype in ("fp32", "fp16", "int8"))
    file_text = f"; file {format_bytes(download.file_bytes)}" if download.file_bytes is not None else ""
    items.append(("download", f"{format_count(download.params)} parameters: {sizes}{file_text}"))
    return items


def _energy_text(model_estimate: ModelEstimate) -> str:
    if model_estimate.energy_mj is not None:
        return format_mj(model_estimate.energy_mj)
    reasons = [layer.reason for layer in model_estimate.layers if layer.energy_mj is None and layer.reason]
    return f"? ({reasons[0] if reasons else 'not known'})"


def profile_json(profile: Profile, model_estimate: ModelEstimate) -> dict[str, Any]:
    """Profile.to_dict() with each layer's estimate and `total.latency_ms`, `total.energy_mj`."""
    data = profile.to_dict()
    estimates = _by_name(model_estimate)
    for layer in data["layers"]:
        found = estimates.get(layer["name"])
        if found is not None:
            layer.update({key: value for key, value in found.to_dict().items() if key != "name"})
    data["total"]["latency_ms"] = model_estimate.latency_ms
    data["total"]["energy_mj"] = model_estimate.energy_mj
    data["estimate"] = model_estimate.to_dict()
    return data


def render_csv(profile: Profile, model_estimate: ModelEstimate, top: Optional[int] = None) -> str:
    """The profile's CSV with the estimate's columns after its own."""
    header, *rows = list(csv.reader(io.StringIO(render_profile_csv(profile, top))))
    extra = [column for column in ESTIMATE_CSV_COLUMNS if column not in header]
    estimates = _by_name(model_estimate)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header + extra)
    for cells in rows:
        found = estimates.get(cells[0])
        values = [None if found is None else getattr(found, column) for column in extra]
        writer.writerow(cells + ["" if value is None else value for value in values])
    return buffer.getvalue()


# --- devices ------------------------------------------------------------------------------


def render_devices(devices: Sequence[Device], fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps([device.to_dict() for device in devices], indent=2) + "\n"
    header = ["name", "class", "fp32 peak", "bandwidth", "source"]
    body = [[device.name, device.device_class,
             format_rate(device.peak_macs_per_s["fp32"], "MAC") if "fp32" in device.peak_macs_per_s else "?",
             format_rate(device.memory_bandwidth, "B"), device.source or ""] for device in devices]
    return "\n".join(aligned_table(header, body, {2, 3})) + "\n"


# --- calibration --------------------------------------------------------------------------


def render_calibration(device: Device, models: Sequence[ModelComparison], classes: Sequence[ClassComparison],
                       fmt: str = "table", written_to: str = "") -> str:
    if fmt == "json":
        return json.dumps({
            "profile": device.to_dict(), "written_to": written_to,
            "models": [{"model": m.model, "predicted_ms": m.predicted_ms, "measured_ms": m.measured_ms} for m in models],
            "op_classes": [{"op_class": c.op_class, "nodes": c.groups, "predicted_ms": c.predicted_ms,
                            "measured_ms": c.measured_ms} for c in classes],
        }, indent=2) + "\n"
    cache = (f", cache {format_bytes(device.cache.size_bytes)} at {format_rate(device.cache.bandwidth, 'B')}"
             if device.cache is not None else "")
    figures = (f"  fp32 peak {format_rate(device.peak_macs_per_s['fp32'], 'MAC')}, "
               f"memory {format_rate(device.memory_bandwidth, 'B')}{cache}, "
               f"launch overhead {format_ms(device.launch_overhead_s * 1e3)}, "
               f"run overhead {format_ms(device.run_overhead_s * 1e3)}")
    lines = [f"profile {device.name}" + (f" written to {written_to}" if written_to else ""), figures,
             "  efficiency: " + ", ".join(f"{name} {value:.3g}" for name, value in device.efficiency.items()), ""]
    model_rows = [[m.model, format_ms(m.predicted_ms), format_ms(m.measured_ms), _error(m.predicted_ms, m.measured_ms)]
                  for m in models]
    lines += aligned_table(["model", "predicted", "measured", "error"], model_rows, {1, 2, 3}) + [""]
    class_rows = [[c.op_class, str(c.groups), format_ms(c.predicted_ms), format_ms(c.measured_ms),
                   _error(c.predicted_ms, c.measured_ms)] for c in classes]
    lines += aligned_table(["op class", "nodes", "roofline", "kernel time", "error"], class_rows, {1, 2, 3, 4})
    lines.append("(per op class: onnxruntime's kernel time against the roofline time of the layers each node runs, "
                 "launch overheads left out)")
    return "\n".join(lines) + "\n"


def _error(predicted: Optional[float], measured: float) -> str:
    if predicted is None or not measured:
        return "?"
    return f"{(predicted - measured) / measured:+.0%}"

