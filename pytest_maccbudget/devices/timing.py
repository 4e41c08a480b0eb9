"""Timed inference with onnxruntime: the whole run, and each node through its profiler.

A model is run twice over: once plainly, for its latency (warm-up runs, then the median of the
timed ones), and once with `SessionOptions.enable_profiling`, for each node's kernel time (the
median over the timed runs). Latency is wall-clock time, or with `cpu_clock` (one intra-op
thread only) the CPU time of the thread that runs the model: on a shared machine another
process preempting the run stretches wall time, not CPU time. The profiler's node times are
wall-clock; under `cpu_clock` a model's node medians are scaled down, all by one factor, so
that with the time between nodes they add up to the median CPU time of the profiled runs
(a node preempted in a few runs keeps its typical time; one preempted in most is pulled back). onnxruntime's optimized graph is saved beside the
profile so that its nodes can be mapped back to the engine's layers (node_map.py).
onnxruntime is imported here only: `pip install 'pytest-maccbudget[calibrate]'`.
"""
from __future__ import annotations

import bisect
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..engine.loader import load_skeleton
from .node_map import NodeGroup, map_optimized_graph

INSTALL_HINT = "pip install 'pytest-maccbudget[calibrate]' (or pip install onnxruntime)"
KERNEL_SUFFIX = "_kernel_time"
_NUMPY_DTYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


class TimingError(Exception):
    """The model could not be timed (onnxruntime missing, refused the model, or an input is unknown)."""


@dataclass(frozen=True)
class GroupTiming:
    """The median kernel time of a group of onnxruntime nodes, and the layers they run."""

    group: NodeGroup
    op_types: tuple[str, ...]
    median_ms: float


@dataclass(frozen=True)
class ModelTiming:
    path: str
    latency_ms: float  # median wall-clock time of one run
    runs_ms: tuple[float, ...]
    groups: tuple[GroupTiming, ...]
    threads: Optional[int]  # intra-op threads; None: onnxruntime's default
    cpu_clock: bool = False

    @property
    def spread(self) -> float:
        """Interquartile range of the runs over their median: how noisy the timing was."""
        if len(self.runs_ms) < 4:
            return 0.0
        quartiles = statistics.quantiles(self.runs_ms, n=4)
        return (quartiles[2] - quartiles[0]) / self.latency_ms if self.latency_ms else 0.0

    @property
    def kernel_ms(self) -> float:
        return sum(group.median_ms for group in self.groups)


def onnxruntime_module() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise TimingError(f"onnxruntime is not installed: {INSTALL_HINT}") from None
    return onnxruntime


def time_model(path: str, input_shapes: Mapping[str, Sequence[int]], *, runs: int = 20, warmup: int = 5,
               threads: Optional[int] = None, cpu_clock: bool = False) -> ModelTiming:
    """Latency and per-node kernel times of `path` on onnxruntime's CPU provider;
    `input_shapes` gives the dims of inputs whose declared dims are symbolic."""
    if cpu_clock and threads != 1:
        raise TimingError("the CPU clock measures one thread: use it with one intra-op thread")
    ort = onnxruntime_module()
    with tempfile.TemporaryDirectory(prefix="maccbudget-timing-") as scratch:
        optimized_path = Path(scratch) / "optimized.onnx"
        plain = _session(ort, path, threads, optimized_path=optimized_path)
        feeds = _feeds(plain, input_shapes)
        _run_times(plain, feeds, warmup)
        runs_ms = [cpu if cpu_clock else wall for wall, cpu in _run_times(plain, feeds, runs)]
        del plain
        profiled = _session(ort, path, threads, profile_prefix=str(Path(scratch) / "profile"))
        profiled_cpu_ms = [cpu for _, cpu in _run_times(profiled, feeds, warmup + runs)][warmup:]
        node_ms = _kernel_medians(Path(profiled.end_profiling()), skip=warmup,
                                  cpu_ms=statistics.median(profiled_cpu_ms) if cpu_clock else None)
        groups = map_optimized_graph(load_skeleton(path).graph, load_skeleton(str(optimized_path)).graph)
    return ModelTiming(path=path, latency_ms=statistics.median(runs_ms), runs_ms=tuple(runs_ms),
                       groups=tuple(_group_timings(groups, node_ms, _optimized_ops(groups, node_ms))),
                       threads=threads, cpu_clock=cpu_clock)


def _session(ort: Any, path: str, threads: Optional[int], *, optimized_path: Optional[Path] = None,
             profile_prefix: Optional[str] = None) -> Any:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the optimizer's notes would flood the terminal
    if threads is not None:
        options.intra_op_num_threads = threads
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
        # weights go to a side file: only the graph's structure is read back
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "weights.bin")
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    try:
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001  (onnxruntime raises its own types for a model it refuses)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TimingError(f"{path}: onnxruntime cannot run it: {first_line}") from None


def _feeds(session: Any, input_shapes: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    """Random inputs (zeros for integer inputs: valid indices for any embedding)."""
    import numpy as np

    generator = np.random.default_rng(0)
    feeds = {}
    for model_input in session.get_inputs():
        shape = list(input_shapes.get(model_input.name, ()))
        if not shape:
            shape = [dim if isinstance(dim, int) and dim > 0 else -1 for dim in model_input.shape]
        if any(dim < 0 for dim in shape):
            raise TimingError(f"input {model_input.name!r} has symbolic dims {model_input.shape}: give them with --input")
        dtype = _NUMPY_DTYPES.get(model_input.type)
        if dtype is None:
            raise TimingError(f"input {model_input.name!r} has type {model_input.type}, which cannot be generated")
        if dtype.startswith("float"):
            feeds[model_input.name] = generator.standard_normal(shape).astype(dtype)
        else:
            feeds[model_input.name] = np.zeros(shape, dtype=dtype)
    return feeds


def _run_times(session: Any, feeds: Mapping[str, Any], runs: int) -> list[tuple[float, float]]:
    """(wall, CPU time of this thread) in milliseconds, per run."""
    times = []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.thread_time()
        session.run(None, feeds)
        times.append(((time.perf_counter() - wall) * 1e3, (time.thread_time() - cpu) * 1e3))
    return times


def _kernel_medians(profile_file: Path, skip: int, cpu_ms: Optional[float]) -> dict[str, tuple[str, float]]:
    """node name -> (op type, median kernel milliseconds), the first `skip` runs left out; with
    `cpu_ms`, scaled (never up) so that the medians plus the median time between nodes in a run
    add up to it."""
    events = json.loads(profile_file.read_text(encoding="utf-8"))
    profile_file.unlink(missing_ok=True)
    runs = sorted((event["ts"], event.get("dur", 0) / 1e3) for event in events
                  if event.get("cat") == "Session" and event.get("name") == "model_run")
    run_starts = [start for start, _ in runs]
    kernel_ms_per_run = [0.0] * len(runs)
    durations: dict[str, list[float]] = {}
    op_types: dict[str, str] = {}
    for event in events:
        name = event.get("name", "")
        if event.get("cat") != "Node" or not name.endswith(KERNEL_SUFFIX):
            continue
        run = bisect.bisect_right(run_starts, event.get("ts", 0)) - 1
        if run < skip:
            continue
        node = name[: -len(KERNEL_SUFFIX)]
        durations.setdefault(node, []).append(event.get("dur", 0) / 1e3)
        op_types[node] = event.get("args", {}).get("op_name", "")
        kernel_ms_per_run[run] += event.get("dur", 0) / 1e3
    medians = {node: statistics.median(times) for node, times in durations.items()}
    scale = 1.0
    if cpu_ms is not None and medians and len(runs) > skip:
        between_nodes_ms = statistics.median(max(0.0, run_ms - kernels) for (_, run_ms), kernels
                                             in list(zip(runs, kernel_ms_per_run))[skip:])
        scale = min(1.0, max(0.0, cpu_ms - between_nodes_ms) / sum(medians.values()))
    return {node: (op_types[node], median * scale) for node, median in medians.items()}


def _optimized_ops(groups: Sequence[NodeGroup], node_ms: Mapping[str, tuple[str, float]]) -> dict[str, str]:
    return {node: node_ms[node][0] for group in groups for node in group.ort_nodes if node in node_ms}


def _group_timings(groups: Sequence[NodeGroup], node_ms: Mapping[str, tuple[str, float]],
                   ops: Mapping[str, str]) -> list[GroupTiming]:
    """Groups whose nodes ran; nodes inside control-flow bodies are part of their parent's time."""
    timings = []
    for group in groups:
        ran = [node for node in group.ort_nodes if node in node_ms]
        if ran:
            timings.append(GroupTiming(group, tuple(ops[node] for node in ran), sum(node_ms[node][1] for node in ran)))
    return timings
