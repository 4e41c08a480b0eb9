"""Write a budget file: sorted, byte-stable YAML, replaced atomically."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from decimal import Decimal

from ..units import (
    parse_quantity,
    parse_whole_quantity,
)
from ..atomic import write_atomically
from .model import (
    BYTE_METRICS,
    EVERY_METRIC,
    SCHEMA_VERSION,
    TOLERANCE_KEYS,
    TOTAL_METRICS,
    UPDATE_COMMAND,
    DEVICE_METRICS,
    Budget,
    DeviceEntry,
    ModelEntry,
    Tolerance,
    metric_kind,
    tolerance_text,
)

_HEADER = (
    "# Model cost budget for pytest-maccbudget, checked by `pytest --macc-budget`.",
    f"# inputs, total and layers are recorded by `{UPDATE_COMMAND}`;",
    "# limit and tolerance are yours: an update never changes them.",
    "# Numbers may carry units: 1.2G, 350M, 1,234 (counts); 24MB, 1.5GiB (bytes).",
)

_TAG_PREFIX = "tag:yaml.org,2002:"
_STR_TAG = _TAG_PREFIX + "str"
_VALUE_TAGS = frozenset({_STR_TAG, _TAG_PREFIX + "int", _TAG_PREFIX + "float"})
_WIDE = 10**9  # line width for yaml's own quoting: never fold a key over two lines


def _single_quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _double_quoted(text: str) -> str:
    return yaml.safe_dump(text, default_style='"', allow_unicode=True, width=_WIDE).rstrip("\n")


def _compose_or_none(document: str) -> Optional[Node]:
    try:
        return yaml.compose(document, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def _only_pair(node: Optional[Node]) -> Optional[tuple[Node, Node]]:
    if isinstance(node, MappingNode) and len(node.value) == 1:
        return node.value[0]
    return None


@lru_cache(maxsize=65536)
def _key_text(key: str, flow: bool) -> Optional[str]:
    """The key as YAML writes it: plain when YAML reads it back as the same text, quoted
    otherwise; None when not even a quoted simple key works (then `? "key"` is needed)."""
    for candidate in (key, _single_quoted(key), _double_quoted(key)):
        pair = _only_pair(_compose_or_none(f"{{{candidate}: 0}}" if flow else f"{candidate}: 0\n"))
        if pair is None:
            continue
        key_node, value_node = pair
        if (isinstance(key_node, ScalarNode) and key_node.value == key and key_node.tag == _STR_TAG
                and isinstance(value_node, ScalarNode) and value_node.value == "0"):
            return candidate
    return None


@lru_cache(maxsize=4096)
def _value_text(text: str) -> str:
    """A hand-written limit or tolerance as written: plain if YAML reads it back unchanged."""
    for candidate in (text, _single_quoted(text), _double_quoted(text)):
        pair = _only_pair(_compose_or_none(f"{{k: {candidate}}}"))
        if pair is not None:
            value_node = pair[1]
            if isinstance(value_node, ScalarNode) and value_node.value == text and value_node.tag in _VALUE_TAGS:
                return candidate
    return _double_quoted(text)


def _flow_key(key: str) -> str:
    return _key_text(key, True) or f"? {_double_quoted(key)} "


def _flow(items: Iterable[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{_flow_key(key)}: {value}" for key, value in items) + "}"


def _block_entry(indent: str, key: str, value: str) -> list[str]:
    """`key: value` lines at this indent; value "" opens a nested block."""
    written = _key_text(key, False)
    suffix = f" {value}" if value else ""
    if written is not None:
        return [f"{indent}{written}:{suffix}"]
    return [f"{indent}? {_double_quoted(key)}", f"{indent}:{suffix}"]


_PLAIN_ITEM = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
_YAML_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "y", "n", "null"})


def _list_item(text: str) -> str:
    """A layer key or metric as an item of a flow list: plain when YAML reads it back as that text."""
    if _PLAIN_ITEM.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return _double_quoted(text)


def _upper_bounds_line(indent: str, entry: ModelEntry) -> list[str]:
    """`upper_bounds: {total: [flops], layers: [head.fc]}`: the recorded figures that are upper bounds."""
    parts = [(key, "[" + ", ".join(_list_item(item) for item in items) + "]")
             for key, items in (("total", entry.upper_bounds), ("layers", sorted(entry.bound_layers))) if items]
    return [f"{indent}upper_bounds: {_flow(parts)}"] if parts else []


def _limit_text(entry: ModelEntry, metric: str) -> str:
    """The limit as written, unless the number changed since it was read."""
    value = entry.limit[metric]
    text = entry.limit_text.get(metric)
    if text is not None:
        try:
            if parse_whole_quantity(text, metric_kind(metric)) == value:
                return _value_text(text)
        except ValueError:
            pass
    return str(value)


def _estimate_text(value: float) -> str:
    """A recorded estimate as a plain decimal (never 1e-05, which YAML reads as text)."""
    return format(Decimal(repr(float(value))), "f")


def _device_limit_text(device: DeviceEntry, metric: str) -> str:
    value = device.limit[metric]
    text = device.limit_text.get(metric)
    if text is not None:
        try:
            if parse_quantity(text, metric_kind(metric)) == value:
                return _value_text(text)
        except ValueError:
            pass
    return _estimate_text(value)


def _device_lines(indent: str, devices: dict[str, DeviceEntry]) -> list[str]:
    """`devices:` with one flow line per device; a device with a limit or a tolerance gets a
    block of its own, those first, as they were written."""
    lines = [f"{indent}devices:"]
    for name in sorted(devices):
        device = devices[name]
        figures = [(m, _estimate_text(device.figures[m])) for m in DEVICE_METRICS if m in device.figures]
        if not device.hand_written:
            lines.extend(_block_entry(indent + "  ", name, _flow(figures)))
            continue
        lines.extend(_block_entry(indent + "  ", name, ""))
        inner = indent + "    "
        if device.limit:
            lines.append(f"{inner}limit: {_flow((m, _device_limit_text(device, m)) for m in DEVICE_METRICS if m in device.limit)}")
        if device.tolerance:
            lines.append(f"{inner}tolerance: {_tolerance_flow(device.tolerance)}")
        lines.extend(f"{inner}{metric}: {text}" for metric, text in figures)
    return lines


def _tolerance_flow(tolerances: dict[str, Tolerance]) -> str:
    """`2%` when one tolerance covers every metric, else {all: 1%, macs: 2% and 1M, ...}."""
    if set(tolerances) == {EVERY_METRIC}:
        return _value_text(tolerance_text(tolerances[EVERY_METRIC], "macs"))
    keys = (EVERY_METRIC,) + TOLERANCE_KEYS
    return _flow((m, _value_text(tolerance_text(tolerances[m], "macs" if m == EVERY_METRIC else m)))
                 for m in keys if m in tolerances)


def _total_lines(indent: str, total: dict[str, int]) -> list[str]:
    """One flow mapping in TOTAL_METRICS order: counts on the first line, bytes on the second."""
    counts = [f"{m}: {total[m]}" for m in TOTAL_METRICS if m in total and m not in BYTE_METRICS]
    byte_sizes = [f"{m}: {total[m]}" for m in TOTAL_METRICS if m in total and m in BYTE_METRICS]
    groups = [", ".join(group) for group in (counts, byte_sizes) if group]
    opening = f"{indent}total: {{"
    lines = [opening + groups[0]]
    for group in groups[1:]:
        lines[-1] += ","
        lines.append(" " * len(opening) + group)
    lines[-1] += "}"
    return lines


def _model_lines(name: str, entry: ModelEntry) -> list[str]:
    body: list[str] = []
    inner = "    "
    if entry.inputs is not None:
        shapes = ((input_name, "[" + ", ".join(str(d) for d in shape) + "]")
                  for input_name, shape in entry.inputs.items())
        body.append(f"{inner}inputs: {_flow(shapes)}")
    if entry.rules is not None:
        body.append(f"{inner}rules: {entry.rules}")
    if entry.partial:
        body.append(f"{inner}partial: true")
    body.extend(_upper_bounds_line(inner, entry))
    if entry.limit:
        limits = ((m, _limit_text(entry, m)) for m in TOTAL_METRICS if m in entry.limit)
        body.append(f"{inner}limit: {_flow(limits)}")
    if entry.tolerance:
        body.append(f"{inner}tolerance: {_tolerance_flow(entry.tolerance)}")
    if entry.total:
        body.extend(_total_lines(inner, entry.total))
    if entry.devices:
        body.extend(_device_lines(inner, entry.devices))
    if entry.layers:
        body.append(f"{inner}layers:")
        for key in sorted(entry.layers):
            body.extend(_block_entry(inner + "  ", key, f"{{macs: {entry.layers[key]}}}"))
    if not body:
        return _block_entry("  ", name, "{}")
    return _block_entry("  ", name, "") + body


def dump_budget(budget: Budget) -> str:
    """The budget as YAML text: deterministic, sorted, one layer per line; limits and
    tolerances as their owners wrote them."""
    lines = list(_HEADER)
    lines.append(f"version: {SCHEMA_VERSION}")
    if budget.rules is not None:
        lines.append(f"rules: {budget.rules}")
    if budget.default_tolerance:
        lines.append("defaults:")
        lines.append(f"  tolerance: {_tolerance_flow(budget.default_tolerance)}")
    if budget.custom_devices_text:
        lines.extend(budget.custom_devices_text.splitlines())
    if not budget.models:
        lines.append("models: {}")
    else:
        lines.append("models:")
        for name in sorted(budget.models):
            lines.extend(_model_lines(name, budget.models[name]))
    return "\n".join(lines) + "\n"



def write_budget(path: Path, text: str) -> None:
    """Write atomically and durably: any failure (Ctrl-C included) leaves the old file as it
    was and no temporary file."""
    write_atomically(path, text)
