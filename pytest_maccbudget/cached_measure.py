"""The session's use of the measurement cache: look a torch model up before exporting it, store
its measurement after. ONNX files are not cached: profiling one costs less than hashing it.

Imported only with --macc-budget, when a marked test runs."""
from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

if TYPE_CHECKING:
    from .budget import Measurement
    from .session import BudgetSession


@dataclass(frozen=True)
class CacheKey:
    key: str
    specs: list[Any]     # the parsed inputs, to rerun the model for the code record
    by_name: bool
    hit: Optional[dict[str, Any]]  # the cached measurement (without name and test) on a hit


def cache_lookup(state: "BudgetSession", model: Any, inputs: Any, devices: Sequence[Any] = ()) -> Optional[CacheKey]:
    """The model's cache key and, when its entry is still good, the cached measurement; None
    when the model cannot be cached (no cache, not a torch module, inputs the export will
    refuse, Python < 3.11)."""
    cache = state.cache
    if cache is None or not _is_torch_module(model) or inputs is None:
        return None
    from .export import InputSpecError, forward_arg_names, parse_inputs
    from .fingerprint import SUPPORTED, static_fingerprint
    from .measure_cache import cache_key, environment

    if not SUPPORTED:
        return None
    try:
        specs = parse_inputs(inputs, forward_arg_names=forward_arg_names(model))
        fingerprint = static_fingerprint(model, specs, isinstance(inputs, Mapping))
    except (InputSpecError, Exception):  # noqa: BLE001  (the export reports a bad model; the cache steps aside)
        return None
    settings = environment(state.settings.exporter)
    if devices:  # the estimates depend on the device profiles too
        from .device_estimates import devices_fingerprint

        settings["devices"] = devices_fingerprint(devices)
    key = cache_key(settings, fingerprint)
    hit = cache.lookup(key)
    state.cache_stats.record(hit is not None, cache.stale_reasons.get(key))
    return CacheKey(key, specs, isinstance(inputs, Mapping), None if hit is None else hit.measurement)


def cache_store(state: "BudgetSession", key: CacheKey, model: Any, measurement: "Measurement") -> None:
    """Store a measurement with the record of the code that computed it (a forward pass)."""
    from .fingerprint import record_forward, user_file_test

    if state.cache is None:
        return
    record = record_forward(model, key.specs, key.by_name, user_file_test(state.settings.rootdir))
    if record.unresolvable:
        return  # what ran cannot be checked next time: never a stale hit
    data = measurement.to_json()
    cached = {field: data[field] for field in ("inputs", "total", "layers", "unknown_ops")}
    cached["partial"] = measurement.partial
    for optional in ("devices", "upper_bounds"):
        if optional in data:
            cached[optional] = data[optional]
    state.cache.store(key.key, cached, record)


def _is_torch_module(model: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


@dataclass
class CacheStats:
    """How the cache did in this run, for the summary (summed over xdist workers)."""

    hits: int = 0
    misses: int = 0
    stale: dict[str, int] = field(default_factory=dict)  # why entries were stale, by reason

    def record(self, hit: bool, stale_reason: Optional[str]) -> None:
        if hit:
            self.hits += 1
            return
        self.misses += 1
        if stale_reason:
            self.stale[stale_reason] = self.stale.get(stale_reason, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {"hits": self.hits, "misses": self.misses, "stale": dict(self.stale)}

    def merge(self, data: Mapping[str, Any]) -> None:
        self.hits += int(data.get("hits", 0))
        self.misses += int(data.get("misses", 0))
        for reason, count in (data.get("stale") or {}).items():
            self.stale[reason] = self.stale.get(reason, 0) + int(count)
