"""The budget file: load it (errors name file, line and key), compare a measurement with its
entry, update it, and write it back sorted, stable and atomically.

Pure module: YAML, the standard library and `units` only (no pytest, torch, onnx or git).
The format is described for users in docs/budget-file.md.
"""
from __future__ import annotations

import copy
import os
import re
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .texttable import aligned_table
from .units import BYTES_KIND, COUNT_KIND, PERCENT_KIND, format_bytes, format_count, format_percent, parse_quantity

SCHEMA_VERSION = 1
TOTAL_METRICS = ("macs", "flops", "params", "param_bytes", "peak_activation_bytes")
BYTE_METRICS = {"param_bytes", "peak_activation_bytes"}
TOLERANCE_KEYS = TOTAL_METRICS + ("layer_macs",)
LAYER_METRIC = "layer_macs"

TOP_KEYS = ("version", "defaults", "models")
DEFAULTS_KEYS = ("tolerance",)
MODEL_KEYS = ("inputs", "limit", "tolerance", "total", "layers")
LAYER_KEYS = ("macs",)

UPDATE_COMMAND = "pytest --macc-budget-update"

# Comparison.status values
OK = "ok"
REGRESSED = "regressed"
OVER_LIMIT = "over_limit"
MISSING = "missing"
TIGHTENABLE = "tightenable"
INPUTS_CHANGED = "inputs_changed"
UNKNOWN = "unknown"
_ALWAYS_FAILING = frozenset({REGRESSED, OVER_LIMIT, INPUTS_CHANGED, UNKNOWN})

# MetricChange.status values (besides OK, REGRESSED, OVER_LIMIT, UNKNOWN)
GREW = "grew"          # grew within its tolerance
SHRANK = "shrank"
NEW = "new"            # no budget value to compare with
REMOVED = "removed"    # LayerChange only: in the budget, not measured

_HEADER = (
    "# Model cost budget for pytest-maccbudget, checked by `pytest --macc-budget`.",
    f"# inputs, total and layers are recorded by `{UPDATE_COMMAND}`;",
    "# limit and tolerance are yours: an update never changes them.",
    "# Numbers may carry units: 1.2G, 350M, 1,234 (counts); 24MB, 1.5GiB (bytes).",
)
_TAG_PREFIX = "tag:yaml.org,2002:"
_NULL_TAG = _TAG_PREFIX + "null"
_STR_TAG = _TAG_PREFIX + "str"
_VALUE_TAGS = frozenset({_STR_TAG, _TAG_PREFIX + "int", _TAG_PREFIX + "float"})
_WIDE = 10**9  # line width for yaml's own quoting: never fold a key over two lines


# --- errors -------------------------------------------------------------------------------


def display_path(path: Path) -> str:
    """The path as a user would type it: relative to the working directory when inside it."""
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


class BudgetError(Exception):
    """A budget file or tolerance that cannot be read: "file:line: dotted.key: what is wrong"."""

    def __init__(self, message: str, *, path: Optional[Path] = None, line: Optional[int] = None,
                 key: Optional[str] = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.key = key
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.path is not None:
            where = display_path(self.path) + (f":{self.line}" if self.line is not None else "") + ": "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"

    def __str__(self) -> str:
        return self._render()


# --- quantities ---------------------------------------------------------------------------


def metric_kind(metric: str) -> str:
    """"bytes" for the byte metrics, "count" for the others (MACs, FLOPs, parameters)."""
    return BYTES_KIND if metric in BYTE_METRICS else COUNT_KIND


_NUMBER_AND_UNIT = re.compile(
    r"^\s*(?P<number>[+-]?[0-9_,]*\.?[0-9]*(?:[eE][+-]?[0-9]+)?)\s*(?P<unit>[A-Za-z]*)\s*$")


def _exact_value(value: Union[str, int, float], kind: str) -> Optional[Fraction]:
    """The quantity before parse_quantity rounds it, when it can be worked out exactly."""
    if isinstance(value, (int, float)):
        return Fraction(value)
    match = _NUMBER_AND_UNIT.match(value)
    if match is None:
        return None
    try:
        number = Decimal(match.group("number").replace("_", "").replace(",", ""))
        multiplier = parse_quantity("1" + match.group("unit"), kind)
    except (InvalidOperation, ValueError):
        return None
    return Fraction(number) * int(multiplier)


def parse_whole_quantity(value: Union[str, int, float], kind: str) -> int:
    """A count or byte amount that must be a whole number: "1.2G" yes, "1.5" no (ValueError)."""
    number = parse_quantity(value, kind)
    exact = _exact_value(value, kind)
    if exact is not None and exact != number:
        raise ValueError(f"expected a whole number, got {str(value)!r}")
    return int(number)


def format_metric(metric: str, value: Optional[int]) -> str:
    """1_820_000_000 MACs -> "1.82 G"; 24_000_000 param bytes -> "24.0 MB"; None -> "?"."""
    return format_bytes(value) if metric in BYTE_METRICS else format_count(value)


def signed_metric(metric: str, delta: int) -> str:
    """A change in a metric's unit with its sign: "+1.20 M", "-4.00 KB"."""
    text = format_metric(metric, delta)
    return f"+{text}" if delta > 0 else text


def change_percent(old: int, new: int) -> Optional[str]:
    """Signed relative change ("+1.1%", "-5.6%"); None when the old value is 0."""
    if old == 0:
        return None
    text = format_percent((new - old) / old)
    return f"+{text}" if new > old else text


# --- tolerances ---------------------------------------------------------------------------

_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Tolerance:
    """Growth allowed before a metric fails: relative ("2%"), absolute ("1M"), or both
    ("2% and 1M": fail only when the growth is more than 2% *and* more than 1 M)."""

    relative: Optional[Fraction]
    absolute: Optional[int]
    text: str

    def allows_growth(self, old: int, new: int) -> bool:
        growth = new - old
        if growth <= 0:
            return True
        within_relative = self.relative is not None and growth <= self.relative * old
        within_absolute = self.absolute is not None and growth <= self.absolute
        return within_relative or within_absolute

    @property
    def is_zero(self) -> bool:
        """True when no growth at all is allowed."""
        return not self.relative and not self.absolute

    def describe(self) -> str:
        """For messages: the text as written; no tolerance at all reads "0%"."""
        return "0%" if self.is_zero else self.text

    @classmethod
    def parse(cls, value: object, metric: str = "macs") -> Tolerance:
        """"2%", "0", 0, "1M", "1.5 MB" (byte metrics), "2% and 1M"; BudgetError otherwise."""
        return _parse_tolerance(value, metric, None)


ZERO_TOLERANCE = Tolerance(relative=None, absolute=0, text="0")


def _tolerance_examples(metric: str) -> str:
    amount = "1MB" if metric in BYTE_METRICS else "1M"
    return f"write e.g. '2%', '0', '{amount}' or '2% and {amount}'"


def _parse_tolerance(value: object, metric: str, text: Optional[str]) -> Tolerance:
    if text is None:
        text = value.strip() if isinstance(value, str) else str(value)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BudgetError(f"cannot read tolerance {text!r}: {_tolerance_examples(metric)}")
    parts = _AND.split(value.strip()) if isinstance(value, str) else [value]
    relative: Optional[Fraction] = None
    absolute: Optional[int] = None
    for part in parts:
        try:
            if isinstance(part, str) and part.endswith("%"):
                if relative is not None:
                    raise ValueError("more than one percentage")
                relative = Fraction(repr(parse_quantity(part, PERCENT_KIND)))
                negative = relative < 0
            else:
                if absolute is not None:
                    raise ValueError("more than one absolute amount")
                absolute = parse_whole_quantity(part, metric_kind(metric))
                negative = absolute < 0
        except ValueError as exc:
            raise BudgetError(f"cannot read tolerance {text!r}: {exc}; {_tolerance_examples(metric)}") from None
        if negative:
            raise BudgetError(f"expected a non-negative tolerance, got {text!r}")
    return Tolerance(relative=relative, absolute=absolute, text=text)


def _tolerance_text(tolerance: Tolerance, metric: str) -> str:
    """The text to write: as written when it still says the same thing, else rebuilt."""
    try:
        reparsed = _parse_tolerance(tolerance.text, metric, None)
    except BudgetError:
        reparsed = None
    if reparsed is not None and (reparsed.relative, reparsed.absolute) == (tolerance.relative, tolerance.absolute):
        return tolerance.text
    parts = []
    if tolerance.relative is not None:
        parts.append(f"{Decimal(tolerance.relative.numerator * 100) / tolerance.relative.denominator:f}%")
    if tolerance.absolute is not None:
        parts.append(str(tolerance.absolute))
    return " and ".join(parts) or "0"


# --- the budget ---------------------------------------------------------------------------


@dataclass
class ModelEntry:
    name: str
    inputs: Optional[dict[str, list[int]]] = None              # recorded by update
    limit: dict[str, int] = field(default_factory=dict)         # hand-written hard ceilings
    limit_text: dict[str, str] = field(default_factory=dict)    # the limits as written
    tolerance: dict[str, Tolerance] = field(default_factory=dict)  # hand-written, per model
    total: dict[str, int] = field(default_factory=dict)         # recorded totals
    layers: dict[str, int] = field(default_factory=dict)        # recorded per-layer MACs


@dataclass
class Budget:
    path: Path
    exists: bool = True
    default_tolerance: dict[str, Tolerance] = field(default_factory=dict)
    models: dict[str, ModelEntry] = field(default_factory=dict)

    def tolerance_for(self, model: str, metric: str) -> Tolerance:
        """The model's own tolerance, else the default one. Layers (layer_macs) fall back to
        the macs tolerance, the model's and then the default's."""
        entry = self.models.get(model)
        own = entry.tolerance if entry is not None else {}
        lookup = [metric] if metric != LAYER_METRIC else [LAYER_METRIC, "macs"]
        for key in lookup:
            for tolerances in (own, self.default_tolerance):
                if key in tolerances:
                    return tolerances[key]
        return ZERO_TOLERANCE


# --- loading ------------------------------------------------------------------------------


def load_budget(path: Path) -> Budget:
    """Read a budget file; a missing file is an empty budget with exists=False."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Budget(path=path, exists=False)
    except OSError as exc:
        raise BudgetError(f"cannot read the budget file: {exc.strerror or exc}", path=path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BudgetError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path, line=line) from None
    return parse_budget(text, path)


def parse_budget(text: str, path: Path) -> Budget:
    """Parse budget YAML (safe loader only); every error names the file, line and key."""
    reader = _Reader(text, Path(path))
    return reader.budget()


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _describe(node: Node) -> str:
    """How a node reads in "got ..." messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL_TAG:
        return "nothing"
    return repr(node.value)


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


def _line(node: Node) -> int:
    return node.start_mark.line + 1


class _Reader:
    """Walks the composed YAML node tree, which keeps the line of every key and value."""

    def __init__(self, text: str, path: Path) -> None:
        self.text = text
        self.path = path
        self.loader = yaml.SafeLoader(text)

    def error(self, node: Node, key: str, message: str) -> BudgetError:
        return BudgetError(message, path=self.path, line=_line(node), key=key or None)

    def compose(self) -> Optional[Node]:
        try:
            return self.loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "cannot be parsed"
            if exc.context and exc.problem:
                problem = f"{problem} ({exc.context})"
            raise BudgetError(f"invalid YAML: {problem}", path=self.path,
                              line=mark.line + 1 if mark is not None else None) from None
        except yaml.reader.ReaderError as exc:
            line = self.text.count("\n", 0, exc.position) + 1
            raise BudgetError(f"invalid YAML: unacceptable character #x{exc.character:04x}"
                              if isinstance(exc.character, int) else f"invalid YAML: {exc.reason}",
                              path=self.path, line=line) from None
        except yaml.YAMLError as exc:
            raise BudgetError(f"invalid YAML: {exc}", path=self.path) from None
        finally:
            self.loader.dispose()

    def scalar(self, node: Node, key: str, expected: str) -> Any:
        """The Python value of a scalar node (int, float, str, bool or None)."""
        if not isinstance(node, ScalarNode):
            raise self.error(node, key, f"expected {expected}, got {_describe(node)}")
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.error(node, key, f"expected {expected}, got {node.value!r} ({problem})") from None

    def mapping(self, node: Node, key: str, allowed: Optional[tuple[str, ...]],
                expected: str) -> Iterator[tuple[str, Node]]:
        """(key, value node) pairs of a mapping; unknown and duplicate keys are errors."""
        if not isinstance(node, MappingNode):
            raise self.error(node, key, f"expected {expected}, got {_describe(node)}")
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise self.error(key_node, key, f"keys must be text, got {_describe(key_node)} as a key")
            name = key_node.value
            child = _join(key, name)
            if allowed is not None and name not in allowed:
                raise self.error(key_node, child, f"unknown key {name!r}; allowed: {', '.join(allowed)}")
            if name in first_seen:
                raise self.error(key_node, child, f"duplicate key {name!r} (first at line {first_seen[name]})")
            first_seen[name] = _line(key_node)
            yield name, value_node

    def section(self, node: Node, key: str, allowed: Optional[tuple[str, ...]],
                expected: str) -> Iterator[tuple[str, Node]]:
        """Like mapping(), but an empty value (`limit:` with nothing after it) is an empty section."""
        if _is_null(node):
            return iter(())
        return self.mapping(node, key, allowed, expected)

    # -- the schema --

    def budget(self) -> Budget:
        root = self.compose()
        budget = Budget(path=self.path, exists=True)
        if root is None or _is_null(root):
            return budget
        expected = f"the budget file to be a mapping with keys {', '.join(TOP_KEYS)}"
        for name, node in self.mapping(root, "", TOP_KEYS, expected):
            if name == "version":
                self.check_version(node)
            elif name == "defaults":
                budget.default_tolerance = self.defaults(node)
            else:
                budget.models = self.models(node)
        return budget

    def check_version(self, node: Node) -> None:
        value = self.scalar(node, "version", f"the schema version {SCHEMA_VERSION}")
        if isinstance(value, bool) or value != SCHEMA_VERSION:
            raise self.error(node, "version", f"unsupported budget file version {node.value!r}: this version "
                             f"of pytest-maccbudget reads version {SCHEMA_VERSION} only")

    def defaults(self, node: Node) -> dict[str, Tolerance]:
        tolerance: dict[str, Tolerance] = {}
        for name, value in self.section(node, "defaults", DEFAULTS_KEYS, "a mapping with key tolerance"):
            tolerance = self.tolerances(value, _join("defaults", name))
        return tolerance

    def tolerances(self, node: Node, key: str) -> dict[str, Tolerance]:
        expected = f"a mapping of metric to tolerance ({', '.join(TOLERANCE_KEYS)})"
        tolerances: dict[str, Tolerance] = {}
        for metric, value_node in self.section(node, key, TOLERANCE_KEYS, expected):
            metric_key = _join(key, metric)
            value = self.scalar(value_node, metric_key, "a tolerance such as 2%, 0 or '2% and 1M'")
            try:
                tolerances[metric] = _parse_tolerance(value, metric, value_node.value)
            except BudgetError as exc:
                raise self.error(value_node, metric_key, exc.message) from None
        return tolerances

    def models(self, node: Node) -> dict[str, ModelEntry]:
        models: dict[str, ModelEntry] = {}
        for name, value in self.section(node, "models", None, "a mapping of model name to entry"):
            models[name] = self.model(name, value, _join("models", name))
        return models

    def model(self, name: str, node: Node, key: str) -> ModelEntry:
        entry = ModelEntry(name=name)
        expected = f"a mapping with keys {', '.join(MODEL_KEYS)}"
        for field_name, value in self.mapping(node, key, MODEL_KEYS, expected):
            field_key = _join(key, field_name)
            if field_name == "inputs":
                entry.inputs = None if _is_null(value) else self.inputs(value, field_key)
            elif field_name == "limit":
                entry.limit, entry.limit_text = self.limits(value, field_key)
            elif field_name == "tolerance":
                entry.tolerance = self.tolerances(value, field_key)
            elif field_name == "total":
                entry.total = self.totals(value, field_key)
            else:
                entry.layers = self.layers(value, field_key)
        return entry

    def inputs(self, node: Node, key: str) -> dict[str, list[int]]:
        shapes: dict[str, list[int]] = {}
        for input_name, shape_node in self.mapping(node, key, None, "a mapping of input name to shape"):
            input_key = _join(key, input_name)
            if not isinstance(shape_node, SequenceNode):
                raise self.error(shape_node, input_key,
                                 f"expected a shape such as [1, 3, 224, 224], got {_describe(shape_node)}")
            shape = []
            for index, dim_node in enumerate(shape_node.value):
                dim_key = f"{input_key}[{index}]"
                dim = self.scalar(dim_node, dim_key, "a positive integer")
                if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
                    raise self.error(dim_node, dim_key, f"expected a positive integer, got {_describe(dim_node)}")
                shape.append(dim)
            shapes[input_name] = shape
        return shapes

    def amount(self, node: Node, key: str, metric: str) -> int:
        kind = metric_kind(metric)
        example = "24MB" if kind == BYTES_KIND else "1.2G"
        value = self.scalar(node, key, f"a number such as {example}")
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self.error(node, key, f"expected a number such as {example}, got {_describe(node)}")
        try:
            number = parse_whole_quantity(value, kind)
        except ValueError as exc:
            raise self.error(node, key, str(exc)) from None
        if number < 0:
            raise self.error(node, key, f"expected a non-negative number, got {node.value!r}")
        return number

    def limits(self, node: Node, key: str) -> tuple[dict[str, int], dict[str, str]]:
        limits: dict[str, int] = {}
        texts: dict[str, str] = {}
        expected = f"a mapping of metric to limit ({', '.join(TOTAL_METRICS)})"
        for metric, value in self.section(node, key, TOTAL_METRICS, expected):
            limits[metric] = self.amount(value, _join(key, metric), metric)
            texts[metric] = value.value
        return limits, texts

    def totals(self, node: Node, key: str) -> dict[str, int]:
        expected = f"a mapping of metric to number ({', '.join(TOTAL_METRICS)})"
        return {metric: self.amount(value, _join(key, metric), metric)
                for metric, value in self.section(node, key, TOTAL_METRICS, expected)}

    def layers(self, node: Node, key: str) -> dict[str, int]:
        layers: dict[str, int] = {}
        for layer, value in self.section(node, key, None, "a mapping of layer to {macs: N}"):
            layer_key = _join(key, layer)
            fields = dict(self.mapping(value, layer_key, LAYER_KEYS, "a mapping such as {macs: 1234}"))
            if "macs" not in fields:
                raise self.error(value, layer_key, "missing key 'macs'")
            layers[layer] = self.amount(fields["macs"], _join(layer_key, "macs"), "macs")
        return layers


# --- measurements and comparison ----------------------------------------------------------


def _inputs_as_lists(inputs: Any) -> dict[str, list[int]]:
    return {str(name): [int(dim) for dim in shape] for name, shape in dict(inputs).items()}


@dataclass(frozen=True)
class Measurement:
    """What one test measured for one model; JSON-able so xdist workers can send it."""

    name: str
    nodeid: str
    inputs: dict[str, list[int]]
    total: dict[str, Optional[int]]
    layers: dict[str, Optional[int]]
    unknown_ops: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "nodeid": self.nodeid,
            "inputs": _inputs_as_lists(self.inputs),
            "total": dict(self.total),
            "layers": dict(self.layers),
            "unknown_ops": list(self.unknown_ops),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        return cls(
            name=str(data["name"]),
            nodeid=str(data["nodeid"]),
            inputs=_inputs_as_lists(data.get("inputs") or {}),
            total={str(k): None if v is None else int(v) for k, v in (data.get("total") or {}).items()},
            layers={str(k): None if v is None else int(v) for k, v in (data.get("layers") or {}).items()},
            unknown_ops=tuple(str(op) for op in data.get("unknown_ops") or ()),
        )


@dataclass(frozen=True)
class MetricChange:
    metric: str
    old: Optional[int]
    new: Optional[int]
    tolerance: Optional[Tolerance]
    limit: Optional[int]
    status: str   # ok, grew (within tolerance), regressed, over_limit, shrank, new, unknown


@dataclass(frozen=True)
class LayerChange:
    key: str
    old: Optional[int]
    new: Optional[int]
    status: str   # grew, shrank, new, removed, unknown

    @property
    def delta(self) -> Optional[int]:
        if self.new is None and self.status == UNKNOWN:
            return None
        return (self.new or 0) - (self.old or 0)


@dataclass
class Comparison:
    name: str
    nodeid: str
    status: str
    metrics: list[MetricChange]
    layers: list[LayerChange]
    failures: list[str]   # why the status is not "ok" (also when that does not fail the test)
    strict: bool = False
    missing_fails: bool = True

    @property
    def failed(self) -> bool:
        if self.status in _ALWAYS_FAILING:
            return True
        if self.status == MISSING:
            return self.missing_fails
        if self.status == TIGHTENABLE:
            return self.strict
        return False


def _ops_phrase(unknown_ops: tuple[str, ...]) -> str:
    return f" (ops not counted: {', '.join(unknown_ops)})" if unknown_ops else ""


def shapes_text(inputs: Optional[Mapping[str, Sequence[int]]]) -> str:
    """{x: [1, 3, 224, 224]} as written in failure lines and reports; "none" for no inputs."""
    if inputs is None:
        return "none"
    return "{" + ", ".join(f"{name}: [{', '.join(str(d) for d in shape)}]" for name, shape in inputs.items()) + "}"


# How the failure lines about single layers start (the layer table shows the same changes).
LAYER_FINDING_PREFIXES = ("layer ", "new layer ")


@dataclass
class _Findings:
    """Failure lines by kind, gathered while comparing."""

    limit: list[str] = field(default_factory=list)
    regressed: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    lower: list[str] = field(default_factory=list)
    lower_layers: int = 0


def _compare_metric(budget: Budget, entry: ModelEntry, measured: Measurement, metric: str,
                    findings: _Findings, against_budget: bool) -> MetricChange:
    old = entry.total.get(metric)
    new = measured.total.get(metric)
    limit = entry.limit.get(metric)
    tolerance = budget.tolerance_for(entry.name, metric)
    if new is None:
        compared_with = [f"budget {format_metric(metric, old)}"] if old is not None and against_budget else []
        compared_with += [f"limit {format_metric(metric, limit)}"] if limit is not None else []
        if compared_with:
            findings.unknown.append(f"{metric} could not be counted{_ops_phrase(measured.unknown_ops)}; "
                                    f"{' and '.join(compared_with)}")
        return MetricChange(metric, old, new, tolerance, limit, UNKNOWN)
    status = NEW if old is None else OK
    if old is not None and new != old:
        status = GREW if new > old else SHRANK
    if against_budget and old is not None:
        if not tolerance.allows_growth(old, new):
            status = REGRESSED
            percent = change_percent(old, new) or signed_metric(metric, new - old)
            findings.regressed.append(f"{metric} {format_metric(metric, new)} > budget "
                                      f"{format_metric(metric, old)} ({percent}, tolerance {tolerance.describe()})")
        elif new < old:
            percent = change_percent(old, new)
            findings.lower.append(f"{metric} {format_metric(metric, new)} < budget {format_metric(metric, old)}"
                                  + (f" ({percent})" if percent else ""))
    if limit is not None and new > limit:
        status = OVER_LIMIT
        findings.limit.append(f"{metric} {format_metric(metric, new)} > limit {format_metric(metric, limit)}")
    return MetricChange(metric, old, new, tolerance, limit, status)


def _layer_change(key: str, old: Optional[int], new: Optional[int]) -> Optional[LayerChange]:
    if new is None:
        return LayerChange(key, old, None, UNKNOWN)
    if old is None:
        return LayerChange(key, None, new, NEW) if new else None
    if new == old:
        return None
    return LayerChange(key, old, new, GREW if new > old else SHRANK)


def _layer_sort_key(change: LayerChange) -> tuple[int, int, str]:
    delta = change.delta
    return (1, 0, change.key) if delta is None else (0, -abs(delta), change.key)


def _compare_layers(budget: Budget, entry: ModelEntry, measured: Measurement,
                    findings: _Findings) -> list[LayerChange]:
    """Changed layers, largest change first. An entry with no recorded layers has no per-layer
    budget: only its totals are checked."""
    if not entry.layers:
        return []
    tolerance = budget.tolerance_for(entry.name, LAYER_METRIC)
    changes = []
    for key in sorted(set(entry.layers) | set(measured.layers)):
        old = entry.layers.get(key)
        if key not in measured.layers:
            changes.append(LayerChange(key, old, None, REMOVED))
            continue
        change = _layer_change(key, old, measured.layers[key])
        if change is not None:
            changes.append(change)
    changes.sort(key=_layer_sort_key)
    for change in changes:
        _layer_finding(change, tolerance, findings)
    return changes


def _layer_finding(change: LayerChange, tolerance: Tolerance, findings: _Findings) -> None:
    if change.status == UNKNOWN:
        if change.old is None:
            findings.unknown.append(f"new layer {change.key}: MACs could not be counted (not in the budget)")
        else:
            findings.unknown.append(f"layer {change.key}: MACs could not be counted; "
                                    f"budget {format_count(change.old)}")
    elif change.status == NEW:
        if not tolerance.allows_growth(0, change.new or 0):
            findings.regressed.append(f"new layer {change.key}: {format_count(change.new)} MACs "
                                      "(not in the budget)")
    elif change.status in (REMOVED, SHRANK):
        findings.lower_layers += 1
    elif change.old is not None and change.new is not None and not tolerance.allows_growth(change.old, change.new):
        percent = change_percent(change.old, change.new) or signed_metric("macs", change.new - change.old)
        findings.regressed.append(f"layer {change.key}: macs {format_count(change.new)} > budget "
                                  f"{format_count(change.old)} ({percent}, tolerance {tolerance.describe()})")


def _tightenable_line(name: str, findings: _Findings) -> str:
    parts = list(findings.lower)
    if findings.lower_layers:
        noun = "layer" if findings.lower_layers == 1 else "layers"
        parts.append(f"{findings.lower_layers} {noun} lower or removed")
    return (f"model {name!r} is cheaper than its budget ({'; '.join(parts)}); "
            f"run `{UPDATE_COMMAND}` to tighten the budget")


def compare(budget: Budget, measured: Measurement, *, strict: bool = False,
            missing_fails: bool = True) -> Comparison:
    """Compare one measurement with its budget entry (see Comparison.status for the outcomes)."""
    entry = budget.models.get(measured.name)
    settings = dict(strict=strict, missing_fails=missing_fails)
    if entry is None:
        metrics = [MetricChange(m, None, measured.total.get(m), None, None,
                                UNKNOWN if measured.total.get(m) is None else NEW) for m in TOTAL_METRICS]
        text = (f"no budget entry for model {measured.name!r} in {display_path(budget.path)}; "
                f"run `{UPDATE_COMMAND}` to record it")
        return Comparison(measured.name, measured.nodeid, MISSING, metrics, [], [text], **settings)

    measured_inputs = _inputs_as_lists(measured.inputs)
    inputs_changed = entry.inputs is not None and _inputs_as_lists(entry.inputs) != measured_inputs
    findings = _Findings()
    metrics = [_compare_metric(budget, entry, measured, metric, findings, not inputs_changed)
               for metric in TOTAL_METRICS]
    if inputs_changed:
        recorded = shapes_text(_inputs_as_lists(entry.inputs))
        text = (f"inputs of model {measured.name!r} changed: the budget was recorded for {recorded}, "
                f"the test measured {shapes_text(measured_inputs)}; run `{UPDATE_COMMAND}` to record the new inputs")
        return Comparison(measured.name, measured.nodeid, INPUTS_CHANGED, metrics, [],
                          [text] + findings.limit + findings.unknown, **settings)

    layers = _compare_layers(budget, entry, measured, findings)
    failures = findings.limit + findings.regressed + findings.unknown
    if findings.limit:
        status = OVER_LIMIT
    elif findings.regressed:
        status = REGRESSED
    elif findings.unknown:
        status = UNKNOWN
    elif findings.lower or findings.lower_layers:
        status = TIGHTENABLE
        failures = [_tightenable_line(measured.name, findings)]
    else:
        status = OK
    return Comparison(measured.name, measured.nodeid, status, metrics, layers, failures, **settings)


_TABLE_HEADER = ("layer", "budget", "measured", "change", "%")


def _layer_row(change: LayerChange) -> tuple[str, ...]:
    old = "-" if change.old is None else format_count(change.old)
    if change.status == UNKNOWN:
        return (change.key, old, "?", "?", "?")
    new = "-" if change.status == REMOVED else format_count(change.new)
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
    return aligned_table(_TABLE_HEADER, [_layer_row(change) for change in comparison.layers], right_aligned={1, 2, 3, 4})


# --- update -------------------------------------------------------------------------------


def _refusal(measured: Measurement, entry: Optional[ModelEntry]) -> Optional[str]:
    """Why this measurement must not be recorded, or None."""
    kept = "its budget entry is kept as it was" if entry is not None else "no entry was written"
    unknown_metrics = [m for m in TOTAL_METRICS if measured.total.get(m) is None]
    unknown_layers = sorted(key for key, value in measured.layers.items() if value is None)
    if unknown_metrics or unknown_layers:
        what = unknown_metrics + [f"layer {key}" for key in unknown_layers]
        return (f"not recording model {measured.name!r}: {', '.join(what)} could not be counted"
                f"{_ops_phrase(measured.unknown_ops)}; {kept}")
    if entry is None:
        return None
    over = [m for m in TOTAL_METRICS if m in entry.limit and (measured.total.get(m) or 0) > entry.limit[m]]
    if not over:
        return None
    details = "; ".join(
        f"{m} {format_metric(m, measured.total[m])} ({measured.total[m]}) is over its limit "
        f"{entry.limit_text.get(m, str(entry.limit[m]))} ({format_metric(m, entry.limit[m])})" for m in over)
    return f"refused to record model {measured.name!r}: {details}; {kept}"


def update_budget(budget: Budget, measurements: Iterable[Measurement], *, new_only: bool = False,
                  remove_unused: Iterable[str] = ()) -> tuple[Budget, list[str]]:
    """A new budget with the measured models recorded (limits and tolerances untouched), and
    the messages for measurements that were refused. The input budget is not changed."""
    updated = copy.deepcopy(budget)
    messages: list[str] = []
    recorded_by: dict[str, str] = {}
    for measured in measurements:
        if measured.name in recorded_by and recorded_by[measured.name] != measured.nodeid:
            messages.append(f"model {measured.name!r} was measured by two tests ({recorded_by[measured.name]} "
                            f"and {measured.nodeid}); the last one was recorded")
        entry = updated.models.get(measured.name)
        if new_only and measured.name in budget.models:
            continue
        refusal = _refusal(measured, budget.models.get(measured.name))
        if refusal is not None:
            messages.append(refusal)
            continue
        if entry is None:
            entry = ModelEntry(name=measured.name)
        entry.inputs = _inputs_as_lists(measured.inputs)
        entry.total = {m: int(measured.total[m]) for m in TOTAL_METRICS if measured.total.get(m) is not None}
        entry.layers = {key: int(value) for key, value in sorted(measured.layers.items()) if value is not None}
        updated.models[measured.name] = entry
        recorded_by[measured.name] = measured.nodeid
    for name in remove_unused:
        if name not in recorded_by:
            updated.models.pop(name, None)
    return updated, messages


# --- dump ---------------------------------------------------------------------------------


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


def _tolerance_flow(tolerances: dict[str, Tolerance]) -> str:
    return _flow((m, _value_text(_tolerance_text(tolerances[m], m))) for m in TOLERANCE_KEYS if m in tolerances)


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
    if entry.limit:
        limits = ((m, _limit_text(entry, m)) for m in TOTAL_METRICS if m in entry.limit)
        body.append(f"{inner}limit: {_flow(limits)}")
    if entry.tolerance:
        body.append(f"{inner}tolerance: {_tolerance_flow(entry.tolerance)}")
    if entry.total:
        body.extend(_total_lines(inner, entry.total))
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
    if budget.default_tolerance:
        lines.append("defaults:")
        lines.append(f"  tolerance: {_tolerance_flow(budget.default_tolerance)}")
    if not budget.models:
        lines.append("models: {}")
    else:
        lines.append("models:")
        for name in sorted(budget.models):
            lines.extend(_model_lines(name, budget.models[name]))
    return "\n".join(lines) + "\n"


# --- write --------------------------------------------------------------------------------


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_budget(path: Path, text: str) -> None:
    """Write atomically: a temporary file in the same directory, fsync, then os.replace.
    Any failure (Ctrl-C included) leaves the old file as it was and no temporary file."""
    path = Path(path)
    data = text.encode("utf-8")
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = _new_file_mode()
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except BaseException:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable where the OS allows it (not on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
