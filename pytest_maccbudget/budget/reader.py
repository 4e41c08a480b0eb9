"""Load a budget file: YAML parsed safely, every problem a BudgetError naming file, line and key."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Optional

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..rules import FIRST_VERSION, RULES_VERSION
from ..units import (
    BYTES_KIND,
    MS_KIND,
    parse_quantity,
    parse_whole_quantity,
)
from .errors import BudgetError
from .yaml_nodes import TooComplex, compose
from .model import (
    DEFAULTS_KEYS,
    DEVICE_ENTRY_KEYS,
    DEVICE_METRICS,
    EVERY_METRIC,
    LAYER_KEYS,
    MAX_AMOUNT,
    MAX_AMOUNT_TEXT,
    MODEL_KEYS,
    SCHEMA_VERSION,
    TOLERANCE_KEYS,
    TOP_KEYS,
    TOTAL_METRICS,
    Budget,
    CustomDevice,
    DeviceEntry,
    ModelEntry,
    Tolerance,
    metric_kind,
    parse_every_metric_tolerance,
    parse_tolerance,
)

_TAG_PREFIX = "tag:yaml.org,2002:"
_NULL_TAG = _TAG_PREFIX + "null"


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


def model_lines(text: str) -> dict[str, int]:
    """The 1-based line of each model's entry (its key under `models:`) in a budget file's text,
    in any YAML layout; {} for a text that does not parse."""
    try:
        root = _Reader(text, Path("budget")).compose()
    except BudgetError:
        return {}
    models = _value_of(root, "models")
    if not isinstance(models, MappingNode):
        return {}
    lines: dict[str, int] = {}
    for key, _ in models.value:
        if isinstance(key, ScalarNode):
            lines.setdefault(str(key.value), _line(key))
    return lines


def _value_of(node: Optional[Node], key: str) -> Optional[Node]:
    if not isinstance(node, MappingNode):
        return None
    return next((value for name, value in node.value if isinstance(name, ScalarNode) and name.value == key), None)


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


def _short_tag(tag: str) -> str:
    """`tag:yaml.org,2002:int` as written in the file: `!!int`."""
    return "!!" + tag[len(_TAG_PREFIX):] if tag.startswith(_TAG_PREFIX) else tag


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


def _line(node: Node) -> int:
    return node.start_mark.line + 1


class _Reader:
    """Walks the composed YAML node tree, which keeps the line of every key and value."""

    def __init__(self, text: str, path: Path) -> None:
        self.text = text
        self.path = path
        self.loader = yaml.SafeLoader("")  # for its constructor only: the text is composed by yaml_nodes

    def error(self, node: Node, key: str, message: str) -> BudgetError:
        return BudgetError(message, path=self.path, line=_line(node), key=key or None)

    def compose(self) -> Optional[Node]:
        try:
            return compose(self.text)
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
        except TooComplex as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
            raise BudgetError(f"invalid YAML: {exc.problem}", path=self.path, line=line) from None
        except yaml.YAMLError as exc:
            raise BudgetError(f"invalid YAML: {exc}", path=self.path) from None

    def scalar(self, node: Node, key: str, expected: str) -> Any:
        """The Python value of a scalar node (int, float, str, bool or None)."""
        if not isinstance(node, ScalarNode):
            raise self.error(node, key, f"expected {expected}, got {_describe(node)}")
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:  # `!!int 10M` is a ValueError
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.error(node, key, f"expected {expected}, got {node.value!r} ({problem})") from None
        except (LookupError, AttributeError):
            # PyYAML's constructors index into the text without checking it: `!!bool maybe` is a
            # KeyError, `!!int ''` and `!!float _` an IndexError, `!!timestamp x` an AttributeError
            raise self.error(node, key, f"expected {expected}, got {node.value!r} "
                                        f"(not a valid {_short_tag(node.tag)} value)") from None

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
            elif name == "rules":
                budget.rules = self.rules(node, "rules")
            elif name == "defaults":
                budget.default_tolerance = self.defaults(node)
            elif name == "devices":
                budget.custom_devices = self.custom_devices(node)
                budget.custom_devices_text = self.section_text(root, name, node)
            else:
                budget.models = self.models(node)
        return budget

    def check_version(self, node: Node) -> None:
        value = self.scalar(node, "version", f"the schema version {SCHEMA_VERSION}")
        if isinstance(value, bool) or value != SCHEMA_VERSION:
            raise self.error(node, "version", f"unsupported budget file version {node.value!r}: this version "
                             f"of pytest-maccbudget reads version {SCHEMA_VERSION} only")

    def rules(self, node: Node, key: str) -> int:
        value = self.scalar(node, key, f"a counting rules version such as {RULES_VERSION}")
        if isinstance(value, bool) or not isinstance(value, int) or value < FIRST_VERSION:
            raise self.error(node, key, f"expected a counting rules version such as {RULES_VERSION}, got {node.value!r}")
        if value > RULES_VERSION:
            raise self.error(node, key, f"recorded under counting rules v{value}, newer than this pytest-maccbudget's "
                                        f"v{RULES_VERSION}: upgrade pytest-maccbudget")
        return value

    def flag(self, node: Node, key: str) -> bool:
        value = self.scalar(node, key, "true or false")
        if not isinstance(value, bool):
            raise self.error(node, key, f"expected true or false, got {node.value!r}")
        return value

    def defaults(self, node: Node) -> dict[str, Tolerance]:
        tolerance: dict[str, Tolerance] = {}
        for name, value in self.section(node, "defaults", DEFAULTS_KEYS, "a mapping with key tolerance"):
            tolerance = self.tolerances(value, _join("defaults", name))
        return tolerance

    def tolerances(self, node: Node, key: str, keys: tuple[str, ...] = (EVERY_METRIC,) + TOLERANCE_KEYS
                   ) -> dict[str, Tolerance]:
        """`tolerance: 2%` (every metric) or a mapping: {macs: '2% and 1M', all: 1%, ...}."""
        if isinstance(node, ScalarNode) and not _is_null(node):
            return {EVERY_METRIC: self.tolerance(node, key, EVERY_METRIC)}
        expected = f"a tolerance for every metric such as 2%, or a mapping of metric to tolerance ({', '.join(keys)})"
        return {metric: self.tolerance(value_node, _join(key, metric), metric)
                for metric, value_node in self.section(node, key, keys, expected)}

    def tolerance(self, node: Node, key: str, metric: str) -> Tolerance:
        value = self.scalar(node, key, "a tolerance such as 2%, 0 or '2% and 1M'")
        try:
            if metric == EVERY_METRIC:
                return parse_every_metric_tolerance(value, node.value)
            return parse_tolerance(value, metric, node.value)
        except BudgetError as exc:
            raise self.error(node, key, exc.message) from None

    def custom_devices(self, node: Node) -> dict[str, CustomDevice]:
        """Device profiles defined in the budget file: name -> profile mapping (read by the
        devices package when a test uses one, so that a typo in one breaks only its users)."""
        devices: dict[str, CustomDevice] = {}
        for name, value in self.section(node, "devices", None, "a mapping of device name to device profile"):
            key = _join("devices", name)
            if not isinstance(value, MappingNode):
                raise self.error(value, key, f"expected a device profile (a mapping with peak_macs_per_s, "
                                             f"memory_bandwidth, ...), got {_describe(value)}")
            devices[name] = CustomDevice(name=name, node=value, key=key)
        return devices

    def section_text(self, root: Node, name: str, value: Node) -> str:
        """A top-level section as written (from its key to the end of its value): the writer
        puts it back unchanged, comments and all."""
        key_node = next(key for key, item in root.value if item is value)
        if key_node.start_mark.column == 0:
            return self.text[key_node.start_mark.index:value.end_mark.index].rstrip()
        # a flow-style file ({version: 1, devices: {...}}): the section's value on a line of its own
        return f"{name}: " + self.text[value.start_mark.index:value.end_mark.index].strip()

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
            elif field_name == "rules":
                entry.rules = self.rules(value, field_key)
            elif field_name == "partial":
                entry.partial = self.flag(value, field_key)
            elif field_name == "upper_bounds":
                entry.upper_bounds, entry.bound_layers = self.upper_bounds(value, field_key)
            elif field_name == "limit":
                entry.limit, entry.limit_text = self.limits(value, field_key)
            elif field_name == "tolerance":
                entry.tolerance = self.tolerances(value, field_key)
            elif field_name == "total":
                entry.total = self.totals(value, field_key)
            elif field_name == "devices":
                entry.devices = self.device_entries(value, field_key)
            else:
                entry.layers = self.layers(value, field_key)
        return entry

    def upper_bounds(self, node: Node, key: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """`{total: [flops], layers: [head.fc]}`: the recorded figures that are upper bounds."""
        found: dict[str, tuple[str, ...]] = {"total": (), "layers": ()}
        for part, items in self.mapping(node, key, ("total", "layers"), "a mapping with keys total, layers"):
            part_key = _join(key, part)
            if not isinstance(items, SequenceNode):
                raise self.error(items, part_key, f"expected a list, got {_describe(items)}")
            names = []
            for index, item in enumerate(items.value):
                name = self.scalar(item, f"{part_key}[{index}]", "a name")
                if not isinstance(name, str) or (part == "total" and name not in TOTAL_METRICS):
                    allowed = f"one of {', '.join(TOTAL_METRICS)}" if part == "total" else "a layer key"
                    raise self.error(item, f"{part_key}[{index}]", f"expected {allowed}, got {_describe(item)}")
                if name in names:
                    raise self.error(item, f"{part_key}[{index}]", f"{name!r} is listed twice")
                names.append(name)
            found[part] = tuple(names)
        return found["total"], found["layers"]

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
        if number > MAX_AMOUNT:
            raise self.error(node, key, f"expected a number up to {MAX_AMOUNT_TEXT}, got {node.value!r}")
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

    def device_entries(self, node: Node, key: str) -> dict[str, DeviceEntry]:
        return {device: self.device_entry(value, _join(key, device))
                for device, value in self.section(node, key, None, "a mapping of device name to its estimates")}

    def device_entry(self, node: Node, key: str) -> DeviceEntry:
        entry = DeviceEntry()
        expected = f"a mapping with keys {', '.join(DEVICE_ENTRY_KEYS)}"
        for name, value in self.section(node, key, DEVICE_ENTRY_KEYS, expected):
            field_key = _join(key, name)
            if name == "limit":
                for metric, limit_node in self.section(value, field_key, DEVICE_METRICS,
                                                       f"a mapping of metric to limit ({', '.join(DEVICE_METRICS)})"):
                    entry.limit[metric] = self.estimate(limit_node, _join(field_key, metric), metric)
                    entry.limit_text[metric] = limit_node.value
            elif name == "tolerance":
                entry.tolerance = self.tolerances(value, field_key, (EVERY_METRIC,) + DEVICE_METRICS)
            else:
                entry.figures[name] = self.estimate(value, field_key, name)
        return entry

    def estimate(self, node: Node, key: str, metric: str) -> float:
        """A latency in ms or an energy in mJ: a number, or one with its unit (800us, 20nJ)."""
        kind = metric_kind(metric)
        example = "12 or 800us" if kind == MS_KIND else "3.2 or 450uJ"
        value = self.scalar(node, key, f"a number such as {example}")
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self.error(node, key, f"expected a number such as {example}, got {_describe(node)}")
        try:
            number = parse_quantity(value, kind)
        except ValueError as exc:
            raise self.error(node, key, str(exc)) from None
        if number < 0:
            raise self.error(node, key, f"expected a non-negative number, got {node.value!r}")
        if not float(number) <= float(MAX_AMOUNT):  # false for an inf ('1e400') and a nan
            raise self.error(node, key, f"expected a number up to {MAX_AMOUNT_TEXT}, got {node.value!r}")
        return float(number)

    def layers(self, node: Node, key: str) -> dict[str, int]:
        layers: dict[str, int] = {}
        for layer, value in self.section(node, key, None, "a mapping of layer to {macs: N}"):
            layer_key = _join(key, layer)
            fields = dict(self.mapping(value, layer_key, LAYER_KEYS, "a mapping such as {macs: 1234}"))
            if "macs" not in fields:
                raise self.error(value, layer_key, "missing key 'macs'")
            layers[layer] = self.amount(fields["macs"], _join(layer_key, "macs"), "macs")
        return layers
