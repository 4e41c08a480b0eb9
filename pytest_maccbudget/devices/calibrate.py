"""Fit a device profile to measured runs: peak MAC/s, per-class efficiencies, bandwidths, overheads.

The data are, per model, groups of onnxruntime nodes with their median kernel time and the engine
layers they run (timing.py), and the model's latency. A group's predicted kernel time is the sum
over its layers of max(work x a[class], DRAM bytes x b[dram] + cache bytes x b[cache]) + k, where
a[class] is seconds per MAC of that class (1 / (peak x efficiency)), b seconds per byte (bytes
split between DRAM and the cache as in roofline.py) and k a kernel's fixed cost; a recurrent layer
is two of these terms, its projection and its steps (roofline.layer_phases), and one k. With each layer's
bound fixed that is linear in the unknowns: a non-negative least-squares fit of relative errors
(each group weighted by 1 / its measured time: timing noise is proportional to the time, and a
5 us node and a 50 ms node count alike); then every layer is put back on the bound the fit makes
larger, until the bounds stop changing. A class of element-wise-like work none of whose layers
came out compute-bound is then tried compute-bound, bandwidths held, and kept when Schwarz's
criterion says it explains the timings better.

What the kernel times leave out of a model's latency (the runtime's work between nodes, nodes
that cost nothing by the counting rules, the call into the runtime) is fitted separately, as a
cost per layer plus a cost per inference; the profile's launch overhead is k plus that per-layer
cost. The fitted peak is the rate of the fastest op class; every other class's efficiency is its
rate over that peak. Pure numpy: no scipy.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np

from ..engine.results import CONSTANT, FOLDED, LayerCost, Profile
from .op_classes import ATTENTION, CONV, DEPTHWISE_CONV, MATMUL, RECURRENT, op_class_of
from .profiles import DEFAULT_EFFICIENCY_KEY, Cache, Device, Energy
from .roofline import dominant_dtype, estimate, estimate_layer, layer_dtype, layer_phases, weights_stay_cached

MAX_BOUND_ROUNDS = 30
INITIAL_RIDGE = 0.5  # MACs (or FLOPs) a byte
# Classes whose work is dot products over weights: a compute rate for them only comes from their
# own compute-bound layers, never from stretching a weight-streaming one (a batch-1 fully
# connected layer is memory-bound; reading its time as slow arithmetic would slow every GEMM).
DOT_PRODUCT_CLASSES = frozenset({CONV, DEPTHWISE_CONV, MATMUL, RECURRENT, ATTENTION})


class CalibrationError(Exception):
    """The measurements cannot determine a profile (too few, or nothing compute-bound)."""


@dataclass(frozen=True)
class FitLayer:
    """What the fit needs of one layer: its class, work and bytes."""

    name: str
    op_class: str
    work: int
    dram_bytes: int
    cache_bytes: int = 0
    launches: int = 1  # 0 for the steps of a recurrent layer: they run inside its one kernel

    @property
    def bytes_moved(self) -> int:
        return self.dram_bytes + self.cache_bytes


@dataclass(frozen=True)
class FitGroup:
    model: str
    layers: tuple[FitLayer, ...]
    measured_s: float


@dataclass(frozen=True)
class FitModel:
    """A model's latency, its costed layers, and the kernel time of the groups that run them."""

    name: str
    layers: tuple[FitLayer, ...]
    measured_s: float
    kernel_s: float


@dataclass(frozen=True)
class FitResult:
    seconds_per_mac: dict[str, float]  # op class -> 1 / (peak x efficiency), for classes the data determine
    seconds_per_dram_byte: float
    seconds_per_cache_byte: Optional[float]
    launch_overhead_s: float
    run_overhead_s: float
    rounds: int  # how many bound reassignments the fit took
    compute_bound: dict[str, int] = field(default_factory=dict)  # op class -> layers fitted as compute-bound


def fit_layers(layers: Sequence[LayerCost], cache_bytes: Optional[int],
               weights_cached: bool = False, dtype: str = "fp32") -> Optional[tuple[FitLayer, ...]]:
    """The layers that cost something, or None when any of them has unknown work or bytes. A
    recurrent layer whose time steps are known is two: its input projection, then its steps
    (roofline.layer_phases), which run in the same kernel."""
    fitted = []
    for layer in layers:
        if layer.status in (CONSTANT, FOLDED):
            continue
        phases, _ = layer_phases(layer, cache_bytes, weights_cached, dtype)
        known = [(work, split) for work, split in phases if work is not None and split is not None]
        if len(known) < len(phases):
            return None
        if all(work == 0 and sum(split) == 0 for work, split in known):
            continue
        op_class = op_class_of(layer)
        for position, (work, split) in enumerate(known):
            name = layer.name if position == 0 else f"{layer.name} (steps)"
            fitted.append(FitLayer(name, op_class, work, *split, launches=1 if position == 0 else 0))
    return tuple(fitted)


def fit(groups: Sequence[FitGroup], models: Sequence[FitModel], *, cache: bool) -> FitResult:
    """Rates and the kernel cost from the groups, then the overheads from the models."""
    usable = [group for group in groups if group.layers and group.measured_s > 0]
    if len(usable) < 3:
        raise CalibrationError(f"only {len(usable)} timed node(s) map to costed layers: too few to fit")
    classes = sorted({layer.op_class for group in usable for layer in group.layers})
    bounds, rates, rounds = _converge(usable, _initial_bounds(usable), classes, cache)
    bounds, rates, rounds = _try_compute_bound_classes(usable, classes, cache, (bounds, rates, rounds))
    if not any(key.startswith("class:") for key in rates):
        raise CalibrationError("no layer came out compute-bound: the models cannot tell the peak")
    per_layer_s, run_s = _fit_overheads(models)
    return FitResult(
        seconds_per_mac={key[len("class:"):]: value for key, value in rates.items() if key.startswith("class:")},
        seconds_per_dram_byte=rates["dram"], seconds_per_cache_byte=rates.get("cache"),
        launch_overhead_s=rates.get("kernel", 0.0) + per_layer_s, run_overhead_s=run_s, rounds=rounds,
        compute_bound=_count_compute_bound(usable, bounds),
    )


Bounds = dict[tuple[int, int], bool]
Solution = tuple[Bounds, dict[str, float], int]


def _converge(groups: Sequence[FitGroup], bounds: Bounds, classes: Sequence[str], cache: bool,
              fixed: Optional[Mapping[str, float]] = None) -> Solution:
    """Fit, put each layer on the bound the fit makes larger, repeat until the bounds hold."""
    rates: dict[str, float] = {}
    for rounds in range(1, MAX_BOUND_ROUNDS + 1):
        rates = _fit_rates(groups, bounds, classes, cache, fixed or {})
        updated = _reassign(groups, rates)
        if updated == bounds:
            break
        bounds = updated
    return bounds, rates, rounds


def _try_compute_bound_classes(groups: Sequence[FitGroup], classes: Sequence[str], cache: bool,
                               best: Solution) -> Solution:
    """A class none of whose layers came out compute-bound has no rate, so its layers can never
    turn compute-bound (their compute time reads as 0): try each such class of element-wise-like
    work with its layers compute-bound, and keep the result when it explains the timings better
    (LRN, say, which computes slowly enough to take longer than its bytes; for such classes the
    rate also stands for a kernel that reaches less than the full bandwidth). The bandwidths stay
    as fitted: a slow compute rate must not explain away the layers that show the bandwidth."""
    memory = {key: best[1][key] for key in ("dram", "cache") if key in best[1]}
    for op_class in classes:
        if f"class:{op_class}" in best[1] or op_class in DOT_PRODUCT_CLASSES:
            continue
        flipped = {key: bound or (groups[key[0]].layers[key[1]].op_class == op_class
                                  and groups[key[0]].layers[key[1]].work > 0)
                   for key, bound in best[0].items()}
        trial = _converge(groups, flipped, classes, cache, fixed=memory)
        if _explains_better(_relative_residual(groups, best[1]), _relative_residual(groups, trial[1]), len(groups)):
            best = trial
    return best


def _explains_better(before: float, after: float, count: int) -> bool:
    """Whether one more rate earns its place (Schwarz's criterion: the residual must shrink by
    more than a factor exp(ln(n) / n)) and the residual it removes is more than 0.1% rms a group
    (below that, on exact data, it is rounding)."""
    return after < before * math.exp(-math.log(count) / count) and before - after > 1e-6 * count


def _relative_residual(groups: Sequence[FitGroup], rates: Mapping[str, float]) -> float:
    """Sum over groups of ((predicted - measured) / measured)^2, the quantity the fit minimises."""
    total = 0.0
    for group in groups:
        predicted = sum(_layer_seconds(layer, rates) + rates.get("kernel", 0.0) * layer.launches
                        for layer in group.layers)
        total += ((predicted - group.measured_s) / group.measured_s) ** 2
    return total


def _layer_seconds(layer: FitLayer, rates: Mapping[str, float]) -> float:
    return max(layer.work * rates.get(f"class:{layer.op_class}", 0.0), _memory_seconds(layer, rates))


def _memory_seconds(layer: FitLayer, rates: Mapping[str, float]) -> float:
    return layer.dram_bytes * rates["dram"] + layer.cache_bytes * rates.get("cache", rates["dram"])


def _initial_bounds(groups: Sequence[FitGroup]) -> Bounds:
    """(group, layer) -> compute-bound? A first guess from the layer's intensity: above half a
    MAC a byte (a CPU core's ridge point in its cache: 32 MACs against 64 bytes a cycle) compute
    may take longer than the bytes; the fit then moves each layer to the bound it makes larger."""
    return {(g, i): layer.work / max(layer.bytes_moved, 1) > INITIAL_RIDGE
            for g, group in enumerate(groups) for i, layer in enumerate(group.layers)}


def _columns(classes: Sequence[str], cache: bool) -> list[str]:
    return [f"class:{name}" for name in classes] + ["dram"] + (["cache"] if cache else []) + ["kernel"]


def _fit_rates(groups: Sequence[FitGroup], bounds: Bounds, classes: Sequence[str], cache: bool,
               fixed: Mapping[str, float]) -> dict[str, float]:
    """The rates for these bounds; `fixed` rates are not fitted (their terms are taken from the times)."""
    columns = _columns(classes, cache)
    index = {name: position for position, name in enumerate(columns)}
    matrix = np.zeros((len(groups), len(columns)))
    measured = np.array([group.measured_s for group in groups])
    for g, group in enumerate(groups):
        for i, layer in enumerate(group.layers):
            if bounds[(g, i)]:
                matrix[g, index[f"class:{layer.op_class}"]] += layer.work
            else:
                matrix[g, index["dram"]] += layer.dram_bytes
                if layer.cache_bytes:
                    matrix[g, index["cache" if cache else "dram"]] += layer.cache_bytes
            matrix[g, index["kernel"]] += layer.launches
    for name, value in fixed.items():
        measured = measured - matrix[:, index[name]] * value
        matrix[:, index[name]] = 0.0
    used = [c for c in range(len(columns)) if matrix[:, c].any()]
    weights = 1.0 / np.array([group.measured_s for group in groups])
    solution = nnls(matrix[:, used] * weights[:, None], measured * weights)
    rates = {**fixed, **{columns[c]: float(value) for c, value in zip(used, solution)}}
    rates.setdefault("dram", 0.0)
    # a class fitted at 0 s/MAC has no compute-bound layer the data can see: not a rate
    return {key: value for key, value in rates.items() if not (key.startswith("class:") and value <= 0)}


def _reassign(groups: Sequence[FitGroup], rates: Mapping[str, float]) -> Bounds:
    bounds = {}
    for g, group in enumerate(groups):
        for i, layer in enumerate(group.layers):
            bounds[(g, i)] = layer.work * rates.get(f"class:{layer.op_class}", 0.0) > _memory_seconds(layer, rates)
    return bounds


def _count_compute_bound(groups: Sequence[FitGroup], bounds: Bounds) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (g, i), compute_bound in bounds.items():
        if compute_bound:
            op_class = groups[g].layers[i].op_class
            counts[op_class] = counts.get(op_class, 0) + 1
    return counts


def _fit_overheads(models: Sequence[FitModel]) -> tuple[float, float]:
    """(per layer, per inference) seconds from what each model's latency holds beyond its costed
    kernels, against its count of costed layers; weighted by 1 / latency."""
    usable = [model for model in models if model.measured_s > 0]
    if not usable:
        return 0.0, 0.0
    outside = np.array([max(0.0, model.measured_s - model.kernel_s) for model in usable])
    matrix = np.array([[sum(layer.launches for layer in model.layers), 1.0] for model in usable])
    weights = np.array([1.0 / model.measured_s for model in usable])
    per_layer_s, run_s = nnls(matrix * weights[:, None], outside * weights)
    return float(per_layer_s), float(run_s)


def nnls(matrix: np.ndarray, target: np.ndarray, max_iterations: int = 500) -> np.ndarray:
    """min ||matrix x - target|| subject to x >= 0 (Lawson and Hanson's active-set method).
    Columns are scaled to unit norm first: the unknowns here span nine orders of magnitude."""
    scale = np.linalg.norm(matrix, axis=0)
    scale[scale == 0] = 1.0
    scaled = matrix / scale
    rows, cols = scaled.shape
    x = np.zeros(cols)
    passive = np.zeros(cols, dtype=bool)
    tolerance = 1e-12 * max(1.0, float(np.abs(scaled).max()) * max(rows, cols))
    gradient = scaled.T @ (target - scaled @ x)
    for _ in range(max_iterations):
        candidates = ~passive & (gradient > tolerance)
        if not candidates.any():
            break
        passive[int(np.argmax(np.where(candidates, gradient, -np.inf)))] = True
        while True:
            trial = np.zeros(cols)
            trial[passive] = np.linalg.lstsq(scaled[:, passive], target, rcond=None)[0]
            if (trial[passive] > 0).all():
                x = trial
                break
            blocking = passive & (trial <= 0)
            step = np.min(x[blocking] / (x[blocking] - trial[blocking]))
            x = x + step * (trial - x)
            passive &= x > tolerance
            x[~passive] = 0.0
        gradient = scaled.T @ (target - scaled @ x)
    return x / scale


# --- from a fit to a device profile -----------------------------------------------------------


def device_from_fit(result: FitResult, *, name: str, description: str, source: str,
                    cache_bytes: Optional[int], base: Optional[Device] = None) -> Device:
    """The profile: fp32 peak = the fastest class's rate, efficiencies relative to it, `default`
    = the median efficiency of the fitted classes; the class ("measured"), the energy figures and
    the cache's energy (which timing cannot measure) from `base` when given."""
    rates = {op_class: 1.0 / seconds for op_class, seconds in result.seconds_per_mac.items()}
    peak = max(rates.values())
    efficiency = {op_class: rate / peak for op_class, rate in sorted(rates.items())}
    efficiency[DEFAULT_EFFICIENCY_KEY] = statistics.median(efficiency.values())
    if result.seconds_per_dram_byte <= 0 and not result.seconds_per_cache_byte:
        raise CalibrationError("no layer came out memory-bound: the models cannot tell the bandwidth")
    seconds_per_dram_byte = result.seconds_per_dram_byte or result.seconds_per_cache_byte or 0.0
    cache = None
    if cache_bytes is not None and result.seconds_per_cache_byte:
        cache_energy = base.cache.pj_per_byte if base is not None and base.cache is not None else None
        cache = Cache(cache_bytes, 1.0 / result.seconds_per_cache_byte, cache_energy)
    energy: Optional[Energy] = base.energy if base is not None else None
    return Device(
        name=name, device_class="measured" if base is None else base.device_class,
        peak_macs_per_s={"fp32": peak},
        memory_bandwidth=1.0 / seconds_per_dram_byte,
        launch_overhead_s=result.launch_overhead_s, run_overhead_s=result.run_overhead_s,
        efficiency=efficiency, cache=cache, energy=energy, description=description, source=source,
    )


@dataclass(frozen=True)
class Measured:
    """One model's profile and timing: its wall-clock latency and its nodes' kernel times."""

    profile: Profile
    latency_s: float
    groups: tuple[tuple[tuple[str, ...], float], ...]  # (engine layer names, kernel seconds)


def calibrate_device(measured: Sequence[Measured], *, name: str, cache_bytes: Optional[int] = None,
                     base: Optional[Device] = None, description: str = "", source: str = "") -> tuple[Device, FitResult]:
    """Fit a profile to the measured models (see the module docstring)."""
    groups: list[FitGroup] = []
    models: list[FitModel] = []
    for model in measured:
        weights_cached = cache_bytes is not None and model.profile.totals.param_bytes <= cache_bytes
        model_groups = fit_groups(model, cache_bytes, weights_cached)
        groups.extend(model_groups)
        layers = fit_layers(model.profile.layers, cache_bytes, weights_cached, dominant_dtype(model.profile.layers))
        if layers is not None:
            kernel_s = sum(group.measured_s for group in model_groups)
            models.append(FitModel(model.profile.model_name, layers, model.latency_s, kernel_s))
    result = fit(groups, models, cache=cache_bytes is not None)
    return device_from_fit(result, name=name, description=description, source=source, cache_bytes=cache_bytes,
                           base=base), result


def fit_groups(model: Measured, cache_bytes: Optional[int], weights_cached: bool = False) -> list[FitGroup]:
    """The model's timed groups whose layers are all known; groups of layers that cost nothing
    by the counting rules (reshapes, concats) are left out: there is nothing to fit them to."""
    by_name = {layer.name: layer for layer in model.profile.layers}
    dtype = dominant_dtype(model.profile.layers)
    groups = []
    for names, seconds in model.groups:
        layers = fit_layers([by_name[name] for name in names if name in by_name], cache_bytes, weights_cached, dtype)
        if layers:
            groups.append(FitGroup(model.profile.model_name, layers, seconds))
    return groups


# --- predicted against measured ---------------------------------------------------------------


@dataclass(frozen=True)
class ModelComparison:
    model: str
    predicted_ms: Optional[float]  # None when a layer's latency is unknown
    measured_ms: float


@dataclass(frozen=True)
class ClassComparison:
    """Kernel time of the onnxruntime nodes whose costliest layer is of this class, against the
    roofline time of their layers (launch overheads left out: those are fitted to wall-clock totals)."""

    op_class: str
    groups: int
    predicted_ms: float
    measured_ms: float


def compare(measured: Sequence[Measured], device: Device) -> tuple[list[ModelComparison], list[ClassComparison]]:
    models = [ModelComparison(m.profile.model_name, estimate(m.profile, device).latency_ms, m.latency_s * 1e3)
              for m in measured]
    totals: dict[str, list[float]] = {}  # op class -> [nodes, roofline ms, kernel ms]
    for model in measured:
        for op_class, roofline_ms, kernel_ms in _group_comparisons(model, device):
            entry = totals.setdefault(op_class, [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += roofline_ms
            entry[2] += kernel_ms
    classes = [ClassComparison(op_class, int(nodes), roofline_ms, kernel_ms)
               for op_class, (nodes, roofline_ms, kernel_ms) in sorted(totals.items())]
    return models, classes


def _group_comparisons(model: Measured, device: Device) -> list[tuple[str, float, float]]:
    """(class of the costliest layer, roofline ms of the layers, kernel ms) per group whose
    layers all have an estimate; groups of layers that cost nothing are left out."""
    by_name = {layer.name: layer for layer in model.profile.layers}
    model_dtype = dominant_dtype(model.profile.layers)
    cached = weights_stay_cached(model.profile, device)
    comparisons = []
    for names, seconds in model.groups:
        layers = [by_name[name] for name in names if name in by_name and by_name[name].status != CONSTANT]
        estimates = [estimate_layer(layer, device, layer_dtype(layer, model_dtype), weights_cached=cached)
                     for layer in layers]
        costing = [e for e in estimates if e.bound != "free"]
        if not costing or any(e.compute_ms is None or e.memory_ms is None for e in costing):
            continue
        roofline = [(max(e.compute_ms or 0.0, e.memory_ms or 0.0), e.op_class) for e in costing]
        comparisons.append((max(roofline)[1], sum(ms for ms, _ in roofline), seconds * 1e3))
    return comparisons
