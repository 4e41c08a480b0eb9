"""Device profiles: what a target can compute and move per second, and what it costs in energy.

A profile is YAML (one device per file, or a mapping inside a larger file such as the budget
file), read with PyYAML's safe loader; every problem is a DeviceError naming the file, the line
and the key. Built-in profiles live in catalog.py and go through the same reader.

    name: my-board                      # required
    class: phone-cpu                    # required: microcontroller, phone-cpu, edge-gpu, ...
    description: 4x Cortex-A76 @ 2.4 GHz
    source: datasheet, docs link, or "calibrated with maccbudget calibrate"
    peak_macs_per_s: {fp32: 76.8G, fp16: 153.6G, int8: 307.2G}   # at least one dtype
    memory_bandwidth: 34.1 GB/s
    launch_overhead_us: 5               # per layer (default 0)
    run_overhead_us: 20                 # per inference (default 0)
    efficiency: {default: 0.6, conv: 0.8, depthwise_conv: 0.2}   # default 1 for every class
    cache: {size: 2 MiB, bandwidth: 200 GB/s, pj_per_byte: 1.25}  # optional
    energy: {pj_per_mac: {fp32: 4.6, int8: 0.3}, pj_per_dram_byte: 160}  # optional
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Union

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..budget.errors import display_path
from ..budget.reader import _short_tag
from ..budget.yaml_nodes import TooComplex, compose
from ..units import BYTES_KIND, COUNT_KIND, parse_quantity
from .op_classes import NEAREST_CLASS, OP_CLASSES

DTYPES = ("fp32", "fp16", "int8")
DEFAULT_EFFICIENCY_KEY = "default"
TOP_KEYS = ("name", "class", "description", "source", "peak_macs_per_s", "memory_bandwidth", "launch_overhead_us",
            "run_overhead_us", "efficiency", "cache", "energy")
REQUIRED_KEYS = ("name", "class", "peak_macs_per_s", "memory_bandwidth")
CACHE_KEYS = ("size", "bandwidth", "pj_per_byte")
ENERGY_KEYS = ("pj_per_mac", "pj_per_dram_byte")
_NULL_TAG = "tag:yaml.org,2002:null"


class DeviceError(Exception):
    """A device profile that cannot be read: "file:line: key: what is wrong"."""

    def __init__(self, message: str, *, path: Optional[str] = None, line: Optional[int] = None,
                 key: Optional[str] = None) -> None:
        self.message, self.path, self.line, self.key = message, path, line, key
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.path}{f':{self.line}' if self.line is not None else ''}: " if self.path else ""
        return f"{where}{f'{self.key}: ' if self.key else ''}{self.message}"

    def __str__(self) -> str:
        return self._render()


@dataclass(frozen=True)
class Cache:
    """A cache that holds a layer's whole working set: that layer moves its bytes at cache speed."""

    size_bytes: int
    bandwidth: float  # bytes/s
    pj_per_byte: Optional[float] = None


@dataclass(frozen=True)
class Energy:
    pj_per_mac: Mapping[str, float]  # dtype -> picojoules per multiply-accumulate
    pj_per_dram_byte: float


@dataclass(frozen=True)
class Device:
    """A target's roofline: peak MAC/s per dtype, memory bandwidth, overheads, efficiencies."""

    name: str
    device_class: str
    peak_macs_per_s: Mapping[str, float]
    memory_bandwidth: float  # bytes/s
    launch_overhead_s: float = 0.0
    run_overhead_s: float = 0.0
    efficiency: Mapping[str, float] = field(default_factory=dict)  # op class or "default" -> (0, 1]
    cache: Optional[Cache] = None
    energy: Optional[Energy] = None
    description: str = ""
    source: str = ""

    def efficiency_for(self, op_class: str) -> float:
        """The class's own figure, else its nearest class's (depthwise conv -> conv, ...), else
        the profile's default, else 1 (the plain roofline)."""
        current: Optional[str] = op_class
        while current is not None:
            if current in self.efficiency:
                return self.efficiency[current]
            current = NEAREST_CLASS.get(current)
        return self.efficiency.get(DEFAULT_EFFICIENCY_KEY, 1.0)

    def peak_for(self, dtype: str) -> Optional[float]:
        return self.peak_macs_per_s.get(dtype)

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain data, in the YAML schema's keys and units."""
        data: dict[str, Any] = {"name": self.name, "class": self.device_class}
        if self.description:
            data["description"] = self.description
        if self.source:
            data["source"] = self.source
        data["peak_macs_per_s"] = {dtype: _si(value) for dtype, value in self.peak_macs_per_s.items()}
        data["memory_bandwidth"] = _si(self.memory_bandwidth, "B/s")
        data["launch_overhead_us"] = _round(self.launch_overhead_s * 1e6)
        data["run_overhead_us"] = _round(self.run_overhead_s * 1e6)
        if self.efficiency:
            data["efficiency"] = {key: _round(value) for key, value in self.efficiency.items()}
        if self.cache is not None:
            data["cache"] = {"size": _binary_size(self.cache.size_bytes), "bandwidth": _si(self.cache.bandwidth, "B/s")}
            if self.cache.pj_per_byte is not None:
                data["cache"]["pj_per_byte"] = _round(self.cache.pj_per_byte)
        if self.energy is not None:
            data["energy"] = {"pj_per_mac": {k: _round(v) for k, v in self.energy.pj_per_mac.items()},
                              "pj_per_dram_byte": _round(self.energy.pj_per_dram_byte)}
        return data


def _round(value: float) -> float:
    """Four significant digits: a profile is an estimate, not a measurement to the last bit."""
    return float(f"{value:.4g}")


def _si(value: float, unit: str = "") -> str:
    """125.7e9 -> "125.7G", 34.85e9 B/s -> "34.85 GB/s": four significant digits, as the reader takes them."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            number = f"{value / scale:.4g}"
            return f"{number} {prefix}{unit}" if unit else f"{number}{prefix}"
    return f"{value:.4g} {unit}".strip()


def _binary_size(size: int) -> Union[int, str]:
    """32 MiB for 33554432; a plain number of bytes when no binary unit divides it."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size % scale == 0:
            return f"{size // scale} {unit}"
    return size


def dump_device(device: Device, header: str = "") -> str:
    """The profile as YAML text that load_device reads back."""
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comment + yaml.safe_dump(device.to_dict(), sort_keys=False, default_flow_style=None, width=100)


# --- loading ------------------------------------------------------------------------------


def load_device(name_or_path: Union[str, Path]) -> Device:
    """A built-in profile by name, or a YAML file by path (a path wins when both exist)."""
    from .catalog import BUILTIN_NAMES, builtin_device

    text = str(name_or_path)
    path = Path(text)
    if path.is_file():
        return load_device_file(path)
    if text in BUILTIN_NAMES:
        return builtin_device(text)
    if path.suffix.lower() in (".yaml", ".yml") or "/" in text or "\\" in text:
        raise DeviceError("no such file", path=text)
    raise DeviceError(f"no built-in device {text!r} and no such file; built-in devices: {', '.join(BUILTIN_NAMES)} "
                      "(`maccbudget devices` lists them)")


def load_device_file(path: Union[str, Path]) -> Device:
    where = display_path(Path(path))
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DeviceError(f"cannot read the device profile: {error.strerror or error}", path=where) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DeviceError(f"not UTF-8 text ({error.reason} at byte {error.start})", path=where,
                          line=data.count(b"\n", 0, error.start) + 1) from None
    return parse_device(text, where)


def parse_device(text: str, where: str) -> Device:
    """A profile from YAML text; `where` names it in errors (a file path, "built-in NAME")."""
    root = _compose(text, where)
    if root is None or (isinstance(root, ScalarNode) and root.tag == _NULL_TAG):
        raise DeviceError("empty device profile", path=where)
    return device_from_node(root, where)


def device_from_node(node: Node, where: str, key: str = "") -> Device:
    """A profile from a composed YAML mapping node (so that a larger file, such as the budget
    file, can hold profiles): `key` is the dotted path of that mapping in the file."""
    return _Reader(where).device(node, key)


def _compose(text: str, where: str) -> Optional[Node]:
    try:
        return compose(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        raise DeviceError(f"invalid YAML: {error.problem or error.context or 'cannot be parsed'}", path=where,
                          line=mark.line + 1 if mark is not None else None) from None
    except yaml.reader.ReaderError as error:
        raise DeviceError(f"invalid YAML: {error.reason}", path=where,
                          line=text.count("\n", 0, error.position) + 1) from None
    except TooComplex as error:
        raise DeviceError(f"invalid YAML: {error.problem}", path=where,
                          line=error.problem_mark.line + 1 if error.problem_mark is not None else None) from None
    except yaml.YAMLError as error:
        raise DeviceError(f"invalid YAML: {error}", path=where) from None


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return "nothing" if node.tag == _NULL_TAG else repr(node.value)


class _Reader:
    """Walks a composed YAML node tree (which keeps the line of every key and value)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.loader = yaml.SafeLoader("")

    def error(self, node: Node, key: str, message: str) -> DeviceError:
        return DeviceError(message, path=self.where, line=_line(node), key=key or None)

    def mapping(self, node: Node, key: str, allowed: Optional[tuple[str, ...]], expected: str) -> Iterator[tuple[str, Node]]:
        if not isinstance(node, MappingNode):
            raise self.error(node, key, f"expected {expected}, got {_describe(node)}")
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise self.error(key_node, key, f"keys must be text, got {_describe(key_node)} as a key")
            name = str(key_node.value)
            child = _join(key, name)
            if allowed is not None and name not in allowed:
                raise self.error(key_node, child, f"unknown key {name!r}; allowed: {', '.join(allowed)}")
            if name in seen:
                raise self.error(key_node, child, f"duplicate key {name!r} (first at line {seen[name]})")
            seen[name] = _line(key_node)
            yield name, value_node

    def scalar(self, node: Node, key: str, expected: str) -> Any:
        if not isinstance(node, ScalarNode) or node.tag == _NULL_TAG:
            raise self.error(node, key, f"expected {expected}, got {_describe(node)}")
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as error:
            # PyYAML's own message without its mark (a second line naming "<unicode string>")
            problem = getattr(error, "problem", None) or next(iter(str(error).splitlines()), type(error).__name__)
            raise self.error(node, key, f"expected {expected}, got {node.value!r} ({problem})") from None
        except (LookupError, AttributeError):
            # PyYAML's constructors index into the text without checking it: `!!bool maybe` is a
            # KeyError, `!!int ''` an IndexError, `!!timestamp x` an AttributeError (as in the budget file)
            raise self.error(node, key, f"expected {expected}, got {node.value!r} "
                                        f"(not a valid {_short_tag(node.tag)} value)") from None

    def text(self, node: Node, key: str) -> str:
        value = self.scalar(node, key, "text")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
            raise self.error(node, key, f"expected text, got {_describe(node)}")
        return str(value).strip()

    def number(self, node: Node, key: str, example: str, positive: bool) -> float:
        value = self.scalar(node, key, f"a number such as {example}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(node, key, f"expected a number such as {example}, got {_describe(node)}")
        try:
            value = float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise self.error(node, key, f"expected a number such as {example}, got a number of "
                                        f"{len(str(abs(value)))} digits") from None
        if not math.isfinite(value):
            raise self.error(node, key, f"expected a number such as {example}, got {_describe(node)}")
        if value < 0 or (positive and value == 0):
            raise self.error(node, key, f"expected a {'positive' if positive else 'non-negative'} number, got {node.value!r}")
        return float(value)

    def quantity(self, node: Node, key: str, kind: str, example: str, per_second: bool = False) -> float:
        """A positive amount: a plain number, or text with a unit ("1.2G", "25.6 GB/s", "2 MiB")."""
        value = self.scalar(node, key, f"an amount such as {example}")
        if isinstance(value, str) and per_second:
            value = value.strip().removesuffix("/s")
        try:
            amount = float(parse_quantity(value, kind))
        except OverflowError:  # an integer of hundreds of digits
            raise self.error(node, key, f"expected an amount such as {example}, got a number of "
                                        f"{len(str(node.value).strip())} digits") from None
        except ValueError as error:
            raise self.error(node, key, f"expected an amount such as {example}: {error}") from None
        if not amount > 0:
            raise self.error(node, key, f"expected a positive amount such as {example}, got {node.value!r}")
        return amount

    # -- the schema --

    def device(self, node: Node, key: str) -> Device:
        fields = dict(self.mapping(node, key, TOP_KEYS, f"a device profile: a mapping with keys {', '.join(TOP_KEYS)}"))
        missing = [name for name in REQUIRED_KEYS if name not in fields]
        if missing:
            raise self.error(node, key, f"missing key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
        return Device(
            name=self.text(fields["name"], _join(key, "name")),
            device_class=self.text(fields["class"], _join(key, "class")),
            description=self.text(fields["description"], _join(key, "description")) if "description" in fields else "",
            source=self.text(fields["source"], _join(key, "source")) if "source" in fields else "",
            peak_macs_per_s=self.peaks(fields["peak_macs_per_s"], _join(key, "peak_macs_per_s")),
            memory_bandwidth=self.quantity(fields["memory_bandwidth"], _join(key, "memory_bandwidth"), BYTES_KIND,
                                           "25.6 GB/s", per_second=True),
            launch_overhead_s=self.microseconds(fields, key, "launch_overhead_us"),
            run_overhead_s=self.microseconds(fields, key, "run_overhead_us"),
            efficiency=self.efficiencies(fields["efficiency"], _join(key, "efficiency")) if "efficiency" in fields else {},
            cache=self.cache(fields["cache"], _join(key, "cache")) if "cache" in fields else None,
            energy=self.energy(fields["energy"], _join(key, "energy")) if "energy" in fields else None,
        )

    def microseconds(self, fields: Mapping[str, Node], key: str, name: str) -> float:
        if name not in fields:
            return 0.0
        return self.number(fields[name], _join(key, name), "5", positive=False) * 1e-6

    def peaks(self, node: Node, key: str) -> dict[str, float]:
        peaks = {dtype: self.quantity(value, _join(key, dtype), COUNT_KIND, "1.2T")
                 for dtype, value in self.mapping(node, key, DTYPES, f"a mapping of dtype ({', '.join(DTYPES)}) to MAC/s")}
        if not peaks:
            raise self.error(node, key, f"give the peak of at least one dtype ({', '.join(DTYPES)})")
        return peaks

    def efficiencies(self, node: Node, key: str) -> dict[str, float]:
        allowed = (DEFAULT_EFFICIENCY_KEY,) + OP_CLASSES
        efficiencies: dict[str, float] = {}
        for op_class, value in self.mapping(node, key, allowed, "a mapping of op class to a fraction of the peak"):
            fraction = self.number(value, _join(key, op_class), "0.6", positive=True)
            if fraction > 1:
                raise self.error(value, _join(key, op_class), f"an efficiency is a fraction of the peak, at most 1; got {value.value!r}")
            efficiencies[op_class] = fraction
        return efficiencies

    def cache(self, node: Node, key: str) -> Cache:
        fields = dict(self.mapping(node, key, CACHE_KEYS, f"a mapping with keys {', '.join(CACHE_KEYS)}"))
        for required in ("size", "bandwidth"):
            if required not in fields:
                raise self.error(node, key, f"missing key {required!r}")
        return Cache(
            size_bytes=int(self.quantity(fields["size"], _join(key, "size"), BYTES_KIND, "2 MiB")),
            bandwidth=self.quantity(fields["bandwidth"], _join(key, "bandwidth"), BYTES_KIND, "200 GB/s", per_second=True),
            pj_per_byte=self.number(fields["pj_per_byte"], _join(key, "pj_per_byte"), "1.25", positive=False)
            if "pj_per_byte" in fields else None,
        )

    def energy(self, node: Node, key: str) -> Energy:
        fields = dict(self.mapping(node, key, ENERGY_KEYS, f"a mapping with keys {', '.join(ENERGY_KEYS)}"))
        for required in ENERGY_KEYS:
            if required not in fields:
                raise self.error(node, key, f"missing key {required!r}")
        per_mac_key = _join(key, "pj_per_mac")
        per_mac = {dtype: self.number(value, _join(per_mac_key, dtype), "4.6", positive=False)
                   for dtype, value in self.mapping(fields["pj_per_mac"], per_mac_key, DTYPES,
                                                    f"a mapping of dtype ({', '.join(DTYPES)}) to picojoules")}
        return Energy(pj_per_mac=per_mac,
                      pj_per_dram_byte=self.number(fields["pj_per_dram_byte"], _join(key, "pj_per_dram_byte"), "160",
                                                   positive=False))
