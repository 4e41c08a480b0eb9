"""Latency and energy of a profiled model on a device, layer by layer, by the roofline model.

For each layer that runs:

    compute = work / (peak[dtype] x efficiency[op class])     work: MACs, or FLOPs for a layer without MACs
    memory  = DRAM bytes / bandwidth + cache bytes / cache bandwidth
    latency = max(compute, memory) + launch overhead
    energy  = MACs x pJ per MAC[dtype] + DRAM bytes x pJ per DRAM byte + cache bytes x pJ per cache byte

Without a cache in the profile every byte moved is a DRAM byte. With one, a layer's weights stay
in the cache from one inference to the next when all the model's weights fit in it, and its
activations (inputs and outputs) when everything the layer moves fits; the rest comes from DRAM.

On a device with a cache, a recurrent layer (LSTM, GRU, RNN) whose time steps are known runs in
two phases, each as long as the slower of its compute and memory: the input projection of the
whole sequence, then the steps, which read the recurrent weights again every step (recurrent.py);
one launch overhead for both.

The layer is compute-, memory- or overhead-bound by the largest of the three terms, and its
arithmetic intensity is work per byte moved. Layers computed before the graph runs cost nothing
and are left out; folded layers and layers that move no bytes (reshapes, in-place concats) cost
nothing; copies (Transpose, Gather, Slice, Pad: 0 FLOPs, bytes moved) cost their memory time.
A layer whose work or bytes are not known has an unknown latency and energy (None, never 0), and
so has the model's total. Arithmetic energy counts MACs only: an element-wise FLOP (0.9 pJ for a
fp32 add) is small beside the bytes it moves (160 pJ a DRAM byte).
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from ..engine.results import CONSTANT, FOLDED, LayerCost, Profile
from .op_classes import RECURRENT, op_class_of
from .profiles import Device
from .recurrent import STEPS_NOT_KNOWN, recurrence_of

COMPUTE = "compute"
MEMORY = "memory"
OVERHEAD = "overhead"
FREE = "free"
BOUNDS = (COMPUTE, MEMORY, OVERHEAD, FREE)

DEFAULT_DTYPE = "fp32"
_DTYPE_OF_WIDTH = {4: "fp32", 2: "fp16", 1: "int8"}
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}
# Ops that compute on 8-bit integers whatever their weights' storage.
_INTEGER_OPS = frozenset({"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm",
                          "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QAttention", "DynamicQuantizeLSTM"})
_PJ_TO_MJ = 1e-9
_S_TO_MS = 1e3


@dataclass(frozen=True)
class LayerEstimate:
    name: str
    op_type: str
    op_class: str
    dtype: str
    work: Optional[int]  # MACs, or FLOPs for a layer without MACs
    bytes_moved: Optional[int]
    dram_bytes: Optional[int]  # the part of bytes_moved from DRAM (all of it without a cache)
    compute_ms: Optional[float]
    memory_ms: Optional[float]
    overhead_ms: float
    latency_ms: Optional[float]
    energy_mj: Optional[float]
    bound: Optional[str]  # compute, memory, overhead, free; None when unknown
    intensity: Optional[float]  # work per byte moved
    reason: str = ""  # why latency or energy is unknown

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "op_class": self.op_class, "dtype": self.dtype, "latency_ms": self.latency_ms,
            "compute_ms": self.compute_ms, "memory_ms": self.memory_ms, "overhead_ms": self.overhead_ms,
            "energy_mj": self.energy_mj, "bound": self.bound, "intensity": self.intensity,
            "dram_bytes": self.dram_bytes, **({"reason": self.reason} if self.reason else {}),
        }


@dataclass(frozen=True)
class DownloadSize:
    """What installing the model costs: its parameters at each dtype, and the ONNX file."""

    params: int
    param_bytes: int  # as the graph stores them
    file_bytes: Optional[int]  # None when the model is not a file at hand

    def bytes_as(self, dtype: str) -> int:
        return self.params * DTYPE_BYTES[dtype]

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "param_bytes": self.param_bytes,
                **{f"{dtype}_bytes": self.bytes_as(dtype) for dtype in DTYPE_BYTES}, "file_bytes": self.file_bytes}


@dataclass(frozen=True)
class ModelEstimate:
    model: str
    device: Device
    dtype: str  # the model's compute dtype (a layer's own weights may say otherwise)
    layers: tuple[LayerEstimate, ...]
    known_latency_ms: float  # the layers whose latency is known, plus the run overhead: a lower bound
    known_energy_mj: float
    run_overhead_ms: float
    download: DownloadSize

    @property
    def unknown_latency(self) -> tuple[LayerEstimate, ...]:
        return tuple(layer for layer in self.layers if layer.latency_ms is None)

    @property
    def latency_ms(self) -> Optional[float]:
        """Milliseconds per inference; None when any layer's latency is unknown."""
        return None if self.unknown_latency else self.known_latency_ms

    @property
    def energy_mj(self) -> Optional[float]:
        """Millijoules per inference; None when any layer's energy is unknown."""
        return None if any(layer.energy_mj is None for layer in self.layers) else self.known_energy_mj

    def time_by_bound(self) -> dict[str, float]:
        """Milliseconds spent in layers of each bound (known layers only)."""
        totals = {bound: 0.0 for bound in BOUNDS}
        for layer in self.layers:
            if layer.bound is not None and layer.latency_ms is not None:
                totals[layer.bound] += layer.latency_ms
        return totals

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": {"name": self.device.name, "class": self.device.device_class, "source": self.device.source},
            "dtype": self.dtype,
            "latency_ms": self.latency_ms, "energy_mj": self.energy_mj,
            "latency_ms_known": self.known_latency_ms, "energy_mj_known": self.known_energy_mj,
            "run_overhead_ms": self.run_overhead_ms,
            "time_by_bound_ms": self.time_by_bound(),
            "download": self.download.to_dict(),
            "unknown": [{"name": layer.name, "reason": layer.reason} for layer in self.layers
                        if layer.latency_ms is None or layer.energy_mj is None],
        }


def estimate(profile: Profile, device: Device, *, dtype: Optional[str] = None,
             model_path: Union[str, "os.PathLike[str]", None] = None) -> ModelEstimate:
    """The model's latency and energy on `device`. `dtype` forces one compute dtype on every layer
    (e.g. "int8" for a model that will ship quantized); by default a layer computes in the dtype of
    its weights, and layers without weights in the dtype that holds most of the model's weights."""
    model_dtype = dtype or dominant_dtype(profile.layers)
    cached = weights_stay_cached(profile, device)
    layers = tuple(estimate_layer(layer, device, dtype or layer_dtype(layer, model_dtype), weights_cached=cached)
                   for layer in profile.layers if layer.status != CONSTANT)
    run_overhead_ms = device.run_overhead_s * _S_TO_MS
    return ModelEstimate(
        model=profile.model_name, device=device, dtype=model_dtype, layers=layers,
        known_latency_ms=sum(layer.latency_ms or 0.0 for layer in layers) + run_overhead_ms,
        known_energy_mj=sum(layer.energy_mj or 0.0 for layer in layers),
        run_overhead_ms=run_overhead_ms,
        download=download_size(profile, model_path),
    )


def weights_stay_cached(profile: Profile, device: Device) -> bool:
    return device.cache is not None and profile.totals.param_bytes <= device.cache.size_bytes


def estimate_layer(layer: LayerCost, device: Device, dtype: str, *, weights_cached: bool = False) -> LayerEstimate:
    op_class = op_class_of(layer)
    bytes_moved = _bytes_moved(layer)
    if layer.status == FOLDED or (layer.macs == 0 and layer.flops == 0 and bytes_moved == 0):
        return LayerEstimate(layer.name, layer.op_type, op_class, dtype, 0, bytes_moved, 0, 0.0, 0.0, 0.0,
                             0.0, 0.0, FREE, None)
    work = layer.macs or layer.flops
    phases, step_note = layer_phases(layer, device.cache.size_bytes if device.cache else None, weights_cached, dtype)
    computes = [_compute_seconds(phase_work, device, dtype, op_class) for phase_work, _ in phases]
    memories = [None if phase_split is None else _memory_seconds(phase_split, device) for _, phase_split in phases]
    compute_s = _sum_known([seconds for seconds, _ in computes])
    memory_s = _sum_known(memories)
    splits = [phase_split for _, phase_split in phases]
    split = None if None in splits else (sum(s[0] for s in splits if s), sum(s[1] for s in splits if s))
    moved = None if split is None else sum(split)
    overhead_s = device.launch_overhead_s
    energy_mj, energy_reason = _energy_mj(layer.macs, split, device, dtype)
    latency_ms = bound = None
    if compute_s is not None and memory_s is not None:
        # the phases run one after the other, each as long as the slower of its arithmetic and its bytes
        latency_s = sum(max(seconds or 0.0, memory or 0.0) for (seconds, _), memory in zip(computes, memories))
        latency_ms = (latency_s + overhead_s) * _S_TO_MS
        bound = _bound(compute_s, memory_s, overhead_s)
    reasons = [computes[0][1], "bytes moved not known" if bytes_moved is None else "", energy_reason, step_note]
    return LayerEstimate(
        name=layer.name, op_type=layer.op_type, op_class=op_class, dtype=dtype, work=work, bytes_moved=moved,
        dram_bytes=None if split is None else split[0],
        compute_ms=None if compute_s is None else compute_s * _S_TO_MS,
        memory_ms=None if memory_s is None else memory_s * _S_TO_MS, overhead_ms=overhead_s * _S_TO_MS,
        latency_ms=latency_ms, energy_mj=energy_mj, bound=bound,
        intensity=work / moved if work is not None and moved else None,
        reason="; ".join(dict.fromkeys(reason for reason in reasons if reason)),
    )


Phase = tuple[Optional[int], Optional[tuple[int, int]]]  # (work, (DRAM bytes, cache bytes)); None: not known


def layer_phases(layer: LayerCost, cache_size: Optional[int], weights_cached: bool,
                 dtype: str = DEFAULT_DTYPE) -> tuple[list[Phase], str]:
    """The parts of the layer that run one after the other, and a note when a recurrent layer's
    time steps are not known. A layer is one phase: its work, and its bytes split as memory_split
    says. A recurrent layer whose time steps are known is two (recurrent.py): the input
    projection, with all the bytes the engine counts; then the steps, whose work is the
    hidden-state products and whose bytes are the recurrent weights read again at every step,
    from the cache when one direction's weights fit in it, else from DRAM. Without a cache
    (`cache_size` None) a recurrent layer is one phase too: the plain roofline counts every byte
    once, an optimistic bound, and the re-reads would come from a cache it does not describe.
    `dtype` gives the width of the recurrent weights when the layer stores none."""
    work = layer.macs or layer.flops
    split = memory_split(layer, cache_size, weights_cached)
    if op_class_of(layer) != RECURRENT or cache_size is None or work is None or split is None or not layer.macs:
        return [(work, split)], ""
    recurrence = recurrence_of(layer, DTYPE_BYTES.get(dtype, DTYPE_BYTES[DEFAULT_DTYPE]))
    if recurrence is None:
        return [(work, split)], STEPS_NOT_KNOWN
    rereads = recurrence.reread_bytes
    in_cache = recurrence.weight_bytes <= cache_size
    return [(work - recurrence.macs, split), (recurrence.macs, (0, rereads) if in_cache else (rereads, 0))], ""


def _sum_known(values: Sequence[Optional[float]]) -> Optional[float]:
    return None if any(value is None for value in values) else sum(value or 0.0 for value in values)


def memory_split(layer: LayerCost, cache_size: Optional[int], weights_cached: bool) -> Optional[tuple[int, int]]:
    """(DRAM bytes, cache bytes) of what the layer moves; None when that is not known. Its weights
    are the parameter bytes it is the first to use, activations the rest."""
    bytes_moved = _bytes_moved(layer)
    if bytes_moved is None:
        return None
    if cache_size is None:
        return bytes_moved, 0
    weight_bytes = min(layer.param_bytes, layer.bytes_read or 0)
    activation_bytes = bytes_moved - weight_bytes
    dram = (0 if weights_cached else weight_bytes) + (0 if bytes_moved <= cache_size else activation_bytes)
    return dram, bytes_moved - dram


def _memory_seconds(split: tuple[int, int], device: Device) -> float:
    dram_bytes, cache_bytes = split
    return dram_bytes / device.memory_bandwidth + (cache_bytes / device.cache.bandwidth if device.cache else 0.0)


def _bytes_moved(layer: LayerCost) -> Optional[int]:
    if layer.bytes_read is None or layer.bytes_written is None:
        return None
    return layer.bytes_read + layer.bytes_written


def _compute_seconds(work: Optional[int], device: Device, dtype: str, op_class: str) -> tuple[Optional[float], str]:
    if work is None:
        return None, "MACs and FLOPs not counted"
    if work == 0:
        return 0.0, ""
    peak = device.peak_for(dtype)
    if peak is None:
        return None, f"device {device.name} has no {dtype} peak"
    return work / (peak * device.efficiency_for(op_class)), ""


def _energy_mj(macs: Optional[int], split: Optional[tuple[int, int]], device: Device,
               dtype: str) -> tuple[Optional[float], str]:
    if device.energy is None:
        return None, f"device {device.name} has no energy figures"
    if macs is None or split is None:
        return None, "MACs or bytes moved not counted"
    per_mac = device.energy.pj_per_mac.get(dtype)
    if per_mac is None and macs:
        return None, f"device {device.name} has no {dtype} energy per MAC"
    dram_bytes, cache_bytes = split
    if cache_bytes and (device.cache is None or device.cache.pj_per_byte is None):
        return None, f"device {device.name} has no energy per cache byte"
    per_cache_byte = device.cache.pj_per_byte if device.cache is not None and device.cache.pj_per_byte else 0.0
    picojoules = macs * (per_mac or 0.0) + dram_bytes * device.energy.pj_per_dram_byte + cache_bytes * per_cache_byte
    return picojoules * _PJ_TO_MJ, ""


def _bound(compute_s: float, memory_s: float, overhead_s: float) -> str:
    if overhead_s > compute_s and overhead_s > memory_s:
        return OVERHEAD
    return COMPUTE if compute_s >= memory_s else MEMORY


def layer_dtype(layer: LayerCost, model_dtype: str) -> str:
    """int8 for integer ops; else the dtype of the layer's weights; else the model's."""
    if layer.op_type in _INTEGER_OPS:
        return "int8"
    if layer.params and layer.param_bytes:
        return _DTYPE_OF_WIDTH.get(round(layer.param_bytes / layer.params), model_dtype)
    return model_dtype


def dominant_dtype(layers: Sequence[LayerCost]) -> str:
    """The dtype that holds the most parameter bytes; fp32 for a model without weights."""
    bytes_by_dtype: Counter[str] = Counter()
    for layer in layers:
        if layer.params and layer.param_bytes:
            width = round(layer.param_bytes / layer.params)
            if width in _DTYPE_OF_WIDTH:
                bytes_by_dtype[_DTYPE_OF_WIDTH[width]] += layer.param_bytes
    return bytes_by_dtype.most_common(1)[0][0] if bytes_by_dtype else DEFAULT_DTYPE


def download_size(profile: Profile, model_path: Union[str, "os.PathLike[str]", None] = None) -> DownloadSize:
    """Parameters and their bytes, and the size of the ONNX file (`model_path`, else the profile's
    model name when that is a file)."""
    candidate = Path(model_path) if model_path is not None else Path(profile.model_name)
    try:
        file_bytes: Optional[int] = candidate.stat().st_size if candidate.is_file() else None
    except OSError:
        file_bytes = None
    return DownloadSize(params=profile.totals.params, param_bytes=profile.totals.param_bytes, file_bytes=file_bytes)


def memory_bound_layers(model_estimate: ModelEstimate, top: int = 5) -> list[LayerEstimate]:
    """The memory-bound layers that take longest, longest first."""
    memory_bound = [layer for layer in model_estimate.layers if layer.bound == MEMORY and layer.latency_ms is not None]
    return sorted(memory_bound, key=lambda layer: layer.latency_ms or 0.0, reverse=True)[:top]
