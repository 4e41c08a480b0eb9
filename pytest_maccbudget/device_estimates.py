"""The budget check's devices: which profiles a model is estimated on (the ini key, the marker,
profiles defined in the budget file), and its estimates there, as the budget records them.

Imported only when a check names devices: the profiles' reader and the roofline stay out of
runs that do not use them."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Union

from yaml.nodes import MappingNode, ScalarNode

from .budget import Budget, DeviceFigures, device_figure
from .budget.errors import display_path
from .devices.profiles import Device, DeviceError, device_from_node, load_device
from .layers import layer_keys

if TYPE_CHECKING:
    from .engine.results import Profile

MEMORY_BOUND_SHOWN = 3  # memory-bound layers kept per model and device, for the reports


class DeviceSpecError(Exception):
    """A device that cannot be found or read: the message names where it was asked for."""


def resolve_devices(specs: Sequence[str], budget: Budget, base_dir: Path, where: str) -> tuple[Device, ...]:
    """The profiles named by `specs`: a profile defined in the budget file's `devices:` section,
    a YAML file (relative to `base_dir`), or a built-in profile, in that order. `where` says
    who asked (the ini key, a marker) in errors."""
    devices: dict[str, Device] = {}
    asked_as: dict[str, str] = {}
    for spec in specs:
        device = _resolve_one(str(spec).strip(), budget, base_dir, where)
        if device.name in devices and devices[device.name] != device:
            raise DeviceSpecError(f"{where}: {asked_as[device.name]!r} and {spec!r} are two different profiles named "
                                  f"{device.name!r}; a budget records estimates by device name, so names must differ")
        devices[device.name] = device
        asked_as[device.name] = str(spec)
    return tuple(devices.values())


def _resolve_one(spec: str, budget: Budget, base_dir: Path, where: str) -> Device:
    if not spec:
        raise DeviceSpecError(f"{where}: an empty device name")
    try:
        custom = budget.custom_devices.get(spec)
        if custom is not None:
            return _custom_device(custom.node, custom.key, spec, budget)  # type: ignore[arg-type]
        path = Path(spec) if Path(spec).is_absolute() else base_dir / spec
        return load_device(path if path.is_file() else spec)
    except DeviceError as error:
        raise DeviceSpecError(f"{where}: device {spec!r}: {error}") from None


def _custom_device(node: MappingNode, key: str, name: str, budget: Budget) -> Device:
    """A profile from the budget file's `devices:` section, where its key is its name (a `name:`
    inside may repeat it)."""
    where = display_path(budget.path)
    named = next((value for item, value in node.value if isinstance(item, ScalarNode) and item.value == "name"), None)
    if named is None:
        node = MappingNode(node.tag, [(ScalarNode("tag:yaml.org,2002:str", "name", node.start_mark, node.start_mark),
                                       ScalarNode("tag:yaml.org,2002:str", name, node.start_mark, node.start_mark))]
                           + list(node.value), node.start_mark, node.end_mark, node.flow_style)
    elif isinstance(named, ScalarNode) and named.value != name:
        raise DeviceError(f"the profile under {name!r} is named {named.value!r}; leave `name:` out or make them "
                          "the same", path=where, line=named.start_mark.line + 1, key=f"{key}.name")
    return device_from_node(node, where, key)


def devices_fingerprint(devices: Sequence[Device]) -> list[str]:
    """What the estimates depend on besides the graph, exactly: for the measurement cache's key."""
    return [repr(device) for device in devices]


def device_figures(profile: "Profile", devices: Sequence[Device], *, partial: bool,
                   model_path: Union[str, Path, None] = None,
                   keys: Optional[Mapping[str, str]] = None) -> dict[str, DeviceFigures]:
    """The model's latency and energy on each device, as recorded (4 significant digits), and
    its slowest memory-bound layers by budget key. With `partial` (uncounted ops let through),
    the estimates are those of the counted layers, lower bounds like the totals."""
    from .devices.roofline import MEMORY, estimate

    figures: dict[str, DeviceFigures] = {}
    keys = layer_keys(profile) if keys is None else keys
    for device in devices:
        model_estimate = estimate(profile, device, model_path=model_path)
        latency, energy = model_estimate.latency_ms, model_estimate.energy_mj
        if partial:  # lower bounds, when what is missing is only what the engine could not count
            uncounted = {layer.name for layer in profile.layers if not layer.counted}
            if all(layer.name in uncounted for layer in model_estimate.layers if layer.latency_ms is None):
                latency = model_estimate.known_latency_ms
            if all(layer.name in uncounted for layer in model_estimate.layers if layer.energy_mj is None):
                energy = model_estimate.known_energy_mj
        memory_ms: dict[str, float] = defaultdict(float)
        for layer in model_estimate.layers:
            if layer.bound == MEMORY and layer.latency_ms is not None:
                memory_ms[keys.get(layer.name, layer.name)] += layer.latency_ms
        slowest = sorted(memory_ms.items(), key=lambda item: (-item[1], item[0]))[:MEMORY_BOUND_SHOWN]
        figures[device.name] = DeviceFigures(
            latency_ms=device_figure(latency), energy_mj=device_figure(energy),
            memory_bound=tuple((key, device_figure(ms) or 0.0) for key, ms in slowest),
            unknown_reason=_unknown_reason(model_estimate.layers, keys) if latency is None or energy is None else "",
            upper_bound=any(getattr(layer, "upper_bounds", ()) for layer in profile.runtime_layers))
    return figures


def _unknown_reason(layers: Sequence[object], keys: Mapping[str, str]) -> str:
    """"layer head (Foo): MACs and FLOPs not counted; and 3 more layers"."""
    unknown = [layer for layer in layers if getattr(layer, "latency_ms") is None or getattr(layer, "energy_mj") is None]
    if not unknown:
        return ""
    first = unknown[0]
    text = f"layer {keys.get(first.name, first.name)} ({first.op_type}): {first.reason or 'not known'}"  # type: ignore[attr-defined]
    return text + (f"; and {len(unknown) - 1} more layers" if len(unknown) > 1 else "")


def device_names(devices: Optional[Sequence[Device]]) -> tuple[str, ...]:
    return tuple(device.name for device in devices or ())
