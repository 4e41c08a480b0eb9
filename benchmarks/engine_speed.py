#!/usr/bin/env python3
"""Speed and memory of the maccbudget cost engine against its floor.

Files measured (the zoo graphs ship with onnx; the rest are generated in code into a cache
directory on the first run, then reused; nothing is downloaded):

* the nine ``zoo`` graphs of onnx's ``backend/test/data/light`` (weightless: every weight is made
  by ConstantOfShape);
* ``decoder``: a GPT-style transformer decoder of at least 5,000 nodes and 1e9 parameters, built
  with ``onnx.helper`` in the torch-export style (Constant nodes, Shape/Gather/Concat reshape
  targets, MatMul attention with a causal mask, LayerNormalization, tanh-GELU MLP), its weights
  external data in a *sparse* ``weights.bin`` of the right size (no disk blocks; never opened);
* ``series 1k/10k/100k``: the same decoder, narrower (d_model 256), with at least 1,000,
  10,000 and 100,000 nodes, to show how the cost grows with the node count;
* with ``--real-weights``, also ResNet-50 and VGG-16 with random float32 weights inside the file
  (about 100 MB and 550 MB), written like ``torch.onnx.export`` writes them.

Each measurement runs in a fresh interpreter, so peak RSS is that of one call: the child
imports what it needs, times the call alone in CPU time (``time.process_time``: the machine may
be shared), records its peak RSS, then times a second call in the same process (warm).

    floor       onnx.load(path, load_external_data=False) + infer_shapes(model, data_prop=True)
    maccbudget  pytest_maccbudget.profile_model(path)

For the series, one more process counts the function calls (Python functions and the builtins
they call) of a warm engine call, with cProfile: per node, the work the engine does, which,
unlike its time, no cache or memory effect changes; constant calls per node with a growing time
per node is the memory hierarchy, which the floor's own C++ shows too.

Usage: python benchmarks/engine_speed.py [--workdir DIR] [--repeat N] [--json PATH] [--strict]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Bump when a generator changes, so cached files are rebuilt.
GENERATOR_VERSION = 3
OPSET = 17
LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
ZOO = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet",
       "vgg19", "zfnet512")


@dataclass(frozen=True)
class DecoderSpec:
    """A GPT-style decoder: layers are added until it has min_nodes nodes and min_params params."""

    d_model: int
    heads: int
    vocab: int
    positions: int
    seq: int
    min_nodes: int
    min_params: int


DECODER = DecoderSpec(d_model=1024, heads=16, vocab=50257, positions=1024, seq=128, min_nodes=5000,
                      min_params=1_000_000_000)
SERIES = {count: DecoderSpec(d_model=256, heads=4, vocab=1000, positions=256, seq=64, min_nodes=count, min_params=0)
          for count in (1_000, 10_000, 100_000)}

# Goals from the issue.
GOAL_ZOO_COLD_RATIO = 2.5  # every zoo graph: CPU of the first call against the floor's
GOAL_ZOO_RSS_RATIO = 1.2  # every zoo graph: peak RSS against the floor's
GOAL_WARM_RATIO = 3.0  # the decoder and zoo ResNet-50: CPU of a second call against the floor's
GOAL_100K_S = 5.0  # the 100k-node graph, cold
GOAL_LINEAR = 1.5  # microseconds per node at 100k nodes against those at 1k

# A measurement whose first run takes longer than this is not repeated.
SLOW_RUN_S = 5.0


# --------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------

class _GraphBuilder:
    """Collects nodes and initializers; weights are either real arrays or external references."""

    def __init__(self, external_location: Optional[str] = None, seed: int = 0) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.params = 0
        self.external_location = external_location
        self.external_bytes = 0
        self.rng = np.random.default_rng(seed)
        self._counter = 0

    def name(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self._counter}"

    def node(self, op_type: str, inputs: list[str], n_out: int = 1, prefix: Optional[str] = None, **attrs) -> list[str]:
        base = self.name(prefix or op_type)
        outputs = [f"{base}_out{i}" if n_out > 1 else f"{base}_out" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=base, **attrs))
        return outputs

    def op(self, op_type: str, *inputs: str, **attrs) -> str:
        return self.node(op_type, list(inputs), **attrs)[0]

    def const(self, value, dtype) -> str:
        """A Constant node, as torch.onnx.export emits for literals."""
        array = np.asarray(value, dtype=dtype)
        out = self.name("Constant") + "_out"
        self.nodes.append(helper.make_node("Constant", [], [out], name=out[:-4],
                                           value=numpy_helper.from_array(array, out + "_value")))
        return out

    def weight(self, prefix: str, shape: tuple, dtype=np.float32, counts_as_param: bool = True) -> str:
        """A float32 initializer: random data inside the file, or an external-data reference."""
        name = self.name(prefix)
        count = int(np.prod(shape))
        if counts_as_param:
            self.params += count
        if self.external_location is None:
            data = (self.rng.standard_normal(count, dtype=np.float32) * 0.02).astype(dtype, copy=False)
            self.initializers.append(numpy_helper.from_array(data.reshape(shape), name))
            return name
        return self._external(name, shape, dtype, count)

    def _external(self, name: str, shape: tuple, dtype, count: int) -> str:
        offset = (self.external_bytes + 63) // 64 * 64
        length = count * np.dtype(dtype).itemsize
        tensor = TensorProto(name=name, dims=list(shape), data_type=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self.external_location), ("offset", str(offset)), ("length", str(length))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        self.external_bytes = offset + length
        self.initializers.append(tensor)
        return name

    def model(self, graph_name: str, inputs, outputs) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, initializer=self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="maccbudget-bench")
        model.ir_version = 8
        return model


def _attention(g: _GraphBuilder, x: str, spec: DecoderSpec, causal: str) -> str:
    d, heads, seq = spec.d_model, spec.heads, spec.seq
    i64, f32 = np.int64, np.float32
    h = g.op("LayerNormalization", x, g.weight("ln1_g", (d,)), g.weight("ln1_b", (d,)), axis=-1, epsilon=1e-5)
    qkv = g.op("Add", g.op("MatMul", h, g.weight("attn_w", (d, 3 * d))), g.weight("attn_b", (3 * d,)))
    q, k, v = g.node("Split", [qkv, g.const([d, d, d], i64)], n_out=3, axis=2)
    shape = g.op("Shape", h)
    axis0 = g.const([0], i64)
    batch_u = g.op("Unsqueeze", g.op("Gather", shape, g.const(0, i64), axis=0), axis0)
    steps_u = g.op("Unsqueeze", g.op("Gather", shape, g.const(1, i64), axis=0), axis0)
    split_heads = g.op("Concat", batch_u, steps_u, g.const([heads, d // heads], i64), axis=0)
    q = g.op("Transpose", g.op("Reshape", q, split_heads), perm=[0, 2, 1, 3])
    k = g.op("Transpose", g.op("Reshape", k, split_heads), perm=[0, 2, 3, 1])
    v = g.op("Transpose", g.op("Reshape", v, split_heads), perm=[0, 2, 1, 3])
    scores = g.op("Div", g.op("MatMul", q, k), g.const(math.sqrt(d // heads), f32))
    # ends as a literal: onnx's Slice inference ignores data-propagated ends
    mask = g.op("Slice", causal, g.const([0, 0], i64), g.const([seq, seq], i64), g.const([2, 3], i64))
    scores = g.op("Where", mask, scores, g.const(-1e4, f32))
    attn = g.op("Transpose", g.op("MatMul", g.op("Softmax", scores, axis=-1), v), perm=[0, 2, 1, 3])
    attn = g.op("Reshape", attn, g.op("Concat", batch_u, steps_u, g.const([d], i64), axis=0))
    return g.op("Add", g.op("MatMul", attn, g.weight("proj_w", (d, d))), g.weight("proj_b", (d,)))


def _mlp(g: _GraphBuilder, x: str, spec: DecoderSpec) -> str:
    """The tanh GELU that GPT-2 exports spell out."""
    d, ffn, f32 = spec.d_model, 4 * spec.d_model, np.float32
    h = g.op("LayerNormalization", x, g.weight("ln2_g", (d,)), g.weight("ln2_b", (d,)), axis=-1, epsilon=1e-5)
    h = g.op("Add", g.op("MatMul", h, g.weight("fc_w", (d, ffn))), g.weight("fc_b", (ffn,)))
    cube = g.op("Mul", g.op("Pow", h, g.const(3.0, f32)), g.const(0.044715, f32))
    inner = g.op("Mul", g.op("Add", h, cube), g.const(math.sqrt(2.0 / math.pi), f32))
    gate = g.op("Add", g.op("Tanh", inner), g.const(1.0, f32))
    h = g.op("Mul", g.op("Mul", h, g.const(0.5, f32)), gate)
    return g.op("Add", g.op("MatMul", h, g.weight("mlp_proj_w", (ffn, d))), g.weight("mlp_proj_b", (d,)))


def build_decoder(location: str, spec: DecoderSpec) -> tuple[onnx.ModelProto, int, int]:
    """GPT-style decoder with external weights. Returns (model, weight bytes, layers)."""
    d, i64 = spec.d_model, np.int64
    g = _GraphBuilder(external_location=location)
    wte, wpe = g.weight("wte", (spec.vocab, d)), g.weight("wpe", (spec.positions, d))
    # HF GPT-2's causal mask buffer (bool), shared by all layers; not a parameter.
    causal = g.weight("causal_mask", (1, 1, spec.positions, spec.positions), dtype=np.bool_, counts_as_param=False)
    length = g.op("Gather", g.op("Shape", "input_ids"), g.const(1, i64), axis=0)
    positions = g.op("Unsqueeze", g.op("Range", g.const(0, i64), length, g.const(1, i64)), g.const([0], i64))
    x = g.op("Add", g.op("Gather", wte, "input_ids", axis=0), g.op("Gather", wpe, positions, axis=0))
    layers = 0
    while len(g.nodes) + 2 < spec.min_nodes or g.params + d * spec.vocab < spec.min_params:
        layers += 1
        x = g.op("Add", x, _attention(g, x, spec, causal))
        x = g.op("Add", x, _mlp(g, x, spec))
    x = g.op("LayerNormalization", x, g.weight("lnf_g", (d,)), g.weight("lnf_b", (d,)), axis=-1, epsilon=1e-5)
    logits = g.node("MatMul", [x, g.weight("lm_head", (d, spec.vocab))])[0]
    model = g.model(
        "gpt_decoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, spec.seq])],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, [1, spec.seq, spec.vocab])],
    )
    return model, g.external_bytes, layers


def _conv(g: _GraphBuilder, x: str, c_in: int, c_out: int, kernel: int, stride: int = 1, relu: bool = True) -> str:
    w = g.weight("conv_w", (c_out, c_in, kernel, kernel))
    b = g.weight("conv_b", (c_out,))  # BatchNorm folded in, as torch.onnx.export does in eval mode
    pad = kernel // 2
    y = g.op("Conv", x, w, b, kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4)
    return g.op("Relu", y) if relu else y


def build_resnet50() -> onnx.ModelProto:
    g = _GraphBuilder(seed=50)
    x = _conv(g, "input", 3, 64, 7, stride=2)
    x = g.op("MaxPool", x, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for block in range(blocks):
            s = stride if block == 0 else 1
            y = _conv(g, _conv(g, _conv(g, x, c_in, width, 1), width, width, 3, stride=s), width, width * 4, 1, relu=False)
            shortcut = _conv(g, x, c_in, width * 4, 1, stride=s, relu=False) if block == 0 else x
            x = g.op("Relu", g.op("Add", y, shortcut))
            c_in = width * 4
    x = g.op("Flatten", g.op("GlobalAveragePool", x), axis=1)
    out = g.node("Gemm", [x, g.weight("fc_w", (1000, 2048)), g.weight("fc_b", (1000,))], transB=1)[0]
    return g.model("resnet50", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
                   [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 1000])])


def build_vgg16() -> onnx.ModelProto:
    g = _GraphBuilder(seed=16)
    x, c_in = "input", 3
    for item in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if item == "M":
            x = g.op("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
        else:
            x, c_in = _conv(g, x, c_in, item, 3), item
    x = g.op("Flatten", x, axis=1)
    for f_in, f_out, relu in ((512 * 7 * 7, 4096, True), (4096, 4096, True), (4096, 1000, False)):
        x = g.node("Gemm", [x, g.weight("fc_w", (f_out, f_in)), g.weight("fc_b", (f_out,))], transB=1)[0]
        if relu:
            x = g.op("Relu", x)
    return g.model("vgg16", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
                   [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 1000])])


# --------------------------------------------------------------------------------------------
# Cases and their cache
# --------------------------------------------------------------------------------------------

@dataclass
class Case:
    key: str
    label: str
    path: str
    kind: str  # "zoo" | "decoder" | "series" | "real"
    build: Optional[Callable[["Case"], dict]] = None  # writes the file(s); None for files that ship
    extra_files: list[str] = field(default_factory=list)  # external data files

    @property
    def files(self) -> list[str]:
        return [self.path] + self.extra_files


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _write_decoder(spec: DecoderSpec) -> Callable[[Case], dict]:
    def build(case: Case) -> dict:
        model, weight_bytes, layers = build_decoder("weights.bin", spec)
        tmp_weights = case.extra_files[0] + ".tmp"
        with open(tmp_weights, "wb") as handle:
            handle.truncate(weight_bytes)  # sparse: right size, no blocks written
        os.replace(tmp_weights, case.extra_files[0])
        _save(model, case.path)
        return {"layers": layers, "weight_bytes": weight_bytes}
    return build


def _write_model(builder: Callable[[], onnx.ModelProto]) -> Callable[[Case], dict]:
    def build(case: Case) -> dict:
        _save(builder(), case.path)
        return {}
    return build


def _save(model: onnx.ModelProto, path: str) -> None:
    tmp = path + ".tmp"
    onnx.save_model(model, tmp)
    os.replace(tmp, path)


def _decoder_case(workdir: str, key: str, label: str, kind: str, spec: DecoderSpec) -> Case:
    folder = os.path.join(workdir, key)
    os.makedirs(folder, exist_ok=True)
    return Case(key, label, os.path.join(folder, "model.onnx"), kind, _write_decoder(spec),
                [os.path.join(folder, "weights.bin")])


def all_cases(workdir: str, real_weights: bool) -> list[Case]:
    cases = [Case(f"zoo_{name}", f"zoo {name}", os.path.join(LIGHT, f"light_{name}.onnx"), "zoo") for name in ZOO]
    cases.append(_decoder_case(workdir, "decoder", "decoder", "decoder", DECODER))
    cases += [_decoder_case(workdir, f"series_{n}", f"series {n // 1000}k", "series", spec)
              for n, spec in SERIES.items()]
    if real_weights:
        cases += [Case("real_resnet50", "real ResNet-50", os.path.join(workdir, "resnet50_real.onnx"), "real",
                       _write_model(build_resnet50)),
                  Case("real_vgg16", "real VGG-16", os.path.join(workdir, "vgg16_real.onnx"), "real",
                       _write_model(build_vgg16))]
    return cases


def prepare_cases(workdir: str, real_weights: bool) -> list[Case]:
    """Generate the models into `workdir` unless a current copy is already there."""
    os.makedirs(workdir, exist_ok=True)
    manifest_path = os.path.join(workdir, "manifest.json")
    manifest = _read_manifest(manifest_path)
    cases = all_cases(workdir, real_weights)
    for case in cases:
        if case.build is None or _is_current(case, manifest):
            continue
        started = time.perf_counter()
        _log(f"generating {case.label} into {workdir} ...")
        detail = case.build(case)
        manifest["files"][case.key] = {"sizes": [os.path.getsize(f) for f in case.files], **detail}
        with open(manifest_path, "w") as handle:
            json.dump(manifest, handle, indent=1)
        _log(f"  done in {time.perf_counter() - started:.1f} s")
    return cases


def _read_manifest(path: str) -> dict:
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        manifest = {}
    if manifest.get("generator_version") != GENERATOR_VERSION:
        manifest = {"generator_version": GENERATOR_VERSION, "files": {}}
    return manifest


def _is_current(case: Case, manifest: dict) -> bool:
    record = manifest["files"].get(case.key)
    return bool(record) and all(os.path.exists(f) for f in case.files) and \
        record.get("sizes") == [os.path.getsize(f) for f in case.files]


# --------------------------------------------------------------------------------------------
# Measurement in fresh interpreters
# --------------------------------------------------------------------------------------------

CHILD = r"""
import gc, json, resource, sys, time
mode, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
def peak_kb():
    # VmHWM: this process's own high-water mark. ru_maxrss is not: Linux carries it over exec()
    # from the parent, so every child would report at least the parent's peak.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = {}
if mode == "floor":
    import onnx, onnx.shape_inference
    def call():
        model = onnx.load(path, load_external_data=False)
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
        return {"nodes": len(model.graph.node)}
else:  # "maccbudget", "calls"
    from pytest_maccbudget.engine.profile import profile_model
    def call():
        profile = profile_model(path)
        return {"nodes": len(profile.layers), "macs": profile.totals.macs, "unknown": len(profile.unknown)}
if mode == "calls":  # the function calls of one warm call: work per node that no cache changes
    import cProfile, pstats
    call()
    gc.collect()
    profiler = cProfile.Profile()
    profiler.enable()
    result.update(call())
    profiler.disable()
    result["calls"] = sum(entry[1] for entry in pstats.Stats(profiler).stats.values())
    json.dump(result, open(out, "w"))
    sys.exit(0)
gc.collect()
result["idle_kb"] = peak_kb()
try:
    cpu, wall = time.process_time(), time.perf_counter()
    result.update(call())
    result["cold_s"], result["wall_s"] = time.process_time() - cpu, time.perf_counter() - wall
except BaseException as error:
    message = str(error).strip().splitlines()
    result["error"] = f"{type(error).__name__}: {message[0] if message else ''}"[:200]
result["peak_kb"] = peak_kb()
if "error" not in result:
    gc.collect()
    cpu = time.process_time()
    call()
    result["warm_s"] = time.process_time() - cpu
json.dump(result, open(out, "w"))
"""


def run_child(mode: str, path: str, timeout: float) -> dict:
    handle, out = tempfile.mkstemp(suffix=".json", prefix="maccbudget-bench-")
    os.close(handle)
    try:
        try:
            completed = subprocess.run([sys.executable, "-c", CHILD, mode, path, out], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, timeout=timeout, text=True)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        try:
            with open(out) as f:
                return json.load(f)
        except (OSError, ValueError):
            lines = [line for line in (completed.stderr or "").strip().splitlines() if line.strip()]
            return {"error": f"exit code {completed.returncode}" + (f": {lines[-1][:160]}" if lines else "")}
    finally:
        os.unlink(out)


@dataclass
class Measurement:
    runs: list[dict]

    @property
    def error(self) -> Optional[str]:
        return next((r["error"] for r in self.runs if "error" in r), None)

    def median(self, key: str) -> Optional[float]:
        values = [r[key] for r in self.runs if key in r]
        return statistics.median(values) if values and not self.error else None

    @property
    def peak_mb(self) -> Optional[float]:
        peaks = [r["peak_kb"] for r in self.runs if "peak_kb" in r and "error" not in r]
        return max(peaks) / 1024 if peaks else None

    def first(self, key: str):
        return next((r[key] for r in self.runs if key in r), None)

    def summary(self) -> dict:
        return {"runs": len(self.runs), "cold_cpu_s": self.median("cold_s"), "warm_cpu_s": self.median("warm_s"),
                "cold_wall_s": self.median("wall_s"), "peak_rss_mb": self.peak_mb, "error": self.error,
                "cold_cpu_runs_s": [r["cold_s"] for r in self.runs if "cold_s" in r]}


def measure(mode: str, path: str, repeat: int, timeout: float) -> Measurement:
    runs = []
    for index in range(repeat):
        started = time.perf_counter()
        run = run_child(mode, path, timeout)
        runs.append(run)
        if "error" in run or (index == 0 and time.perf_counter() - started > SLOW_RUN_S):
            break  # failures are deterministic; slow runs are measured once
    return Measurement(runs)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

@dataclass
class Figures:
    """One case's figures, engine against floor."""

    case: Case
    floor: Measurement
    engine: Measurement
    calls: Optional[int] = None  # function calls (builtins included) of a warm engine call (the series only)

    @property
    def calls_per_node(self) -> Optional[float]:
        nodes = self.engine.first("nodes")
        return self.calls / nodes if self.calls and nodes else None

    def ratio(self, key: str) -> Optional[float]:
        mine, floor = self.engine.median(key), self.floor.median(key)
        return mine / floor if mine and floor else None

    @property
    def rss_ratio(self) -> Optional[float]:
        mine, floor = self.engine.peak_mb, self.floor.peak_mb
        return mine / floor if mine and floor else None

    @property
    def nodes(self) -> Optional[int]:
        return self.floor.first("nodes") or self.engine.first("nodes")

    @property
    def us_per_node(self) -> Optional[float]:
        warm, nodes = self.engine.median("warm_s"), self.nodes
        return warm / nodes * 1e6 if warm and nodes else None

    @property
    def floor_us_per_node(self) -> Optional[float]:
        warm, nodes = self.floor.median("warm_s"), self.nodes
        return warm / nodes * 1e6 if warm and nodes else None

    @property
    def own_us_per_node(self) -> Optional[float]:
        """Warm CPU per node on top of the floor's: the engine's own Python work."""
        mine, floor = self.us_per_node, self.floor_us_per_node
        return mine - floor if mine is not None and floor is not None else None

    def as_json(self) -> dict:
        return {"label": self.case.label, "kind": self.case.kind, "path": self.case.path, "nodes": self.nodes,
                "macs": self.engine.first("macs"), "unknown": self.engine.first("unknown"),
                "cold_ratio": self.ratio("cold_s"), "warm_ratio": self.ratio("warm_s"), "rss_ratio": self.rss_ratio,
                "us_per_node_warm": self.us_per_node, "floor_us_per_node_warm": self.floor_us_per_node,
                "python_calls_per_node_warm": self.calls_per_node,
                "floor": self.floor.summary(), "maccbudget": self.engine.summary()}


def fmt_time(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}x"


def fmt_mb(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.0f} MB"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [headers] + rows) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))


def table_row(figures: Figures) -> list[str]:
    floor, engine = figures.floor, figures.engine
    if engine.error or floor.error:
        return [figures.case.label, f"{figures.nodes or '-'}", f"error: {engine.error or floor.error}"[:60]]
    return [figures.case.label, f"{figures.nodes:,}", fmt_time(floor.median("cold_s")), fmt_time(engine.median("cold_s")),
            fmt_ratio(figures.ratio("cold_s")), fmt_time(floor.median("warm_s")), fmt_time(engine.median("warm_s")),
            fmt_ratio(figures.ratio("warm_s")), fmt_mb(floor.peak_mb), fmt_mb(engine.peak_mb),
            fmt_ratio(figures.rss_ratio), _us(figures.us_per_node), _us(figures.own_us_per_node)]


def _us(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def _growth(big: Optional[Figures], small: Optional[Figures], attribute: str) -> Optional[float]:
    high, low = (getattr(big, attribute) if big else None), (getattr(small, attribute) if small else None)
    return high / low if high and low else None


def goals(results: list[Figures]) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for each of the issue's goals."""
    checks = []
    by_key = {f.case.key: f for f in results}
    for figures in (f for f in results if f.case.kind == "zoo"):
        cold, rss = figures.ratio("cold_s"), figures.rss_ratio
        checks.append((f"{figures.case.label}: cold CPU <= {GOAL_ZOO_COLD_RATIO}x floor, peak RSS <= "
                       f"{GOAL_ZOO_RSS_RATIO}x", f"{fmt_ratio(cold)}, RSS {fmt_ratio(rss)}",
                       cold is not None and rss is not None and cold <= GOAL_ZOO_COLD_RATIO and rss <= GOAL_ZOO_RSS_RATIO))
    for key in ("decoder", "zoo_resnet50"):
        warm = by_key[key].ratio("warm_s") if key in by_key else None
        checks.append((f"{key}: warm CPU <= {GOAL_WARM_RATIO}x floor", fmt_ratio(warm),
                       warm is not None and warm <= GOAL_WARM_RATIO))
    big = by_key.get("series_100000")
    cold_100k = big.engine.median("cold_s") if big else None
    checks.append((f"100k nodes: under {GOAL_100K_S:.0f} s cold", fmt_time(cold_100k),
                   cold_100k is not None and cold_100k < GOAL_100K_S))
    small = by_key.get("series_1000")
    growth = _growth(big, small, "us_per_node")
    # what the floor's own growth and the engine's work on top of it contribute, to read a miss
    detail = f" (floor {fmt_ratio(_growth(big, small, 'floor_us_per_node'))}, " \
             f"engine's own {fmt_ratio(_growth(big, small, 'own_us_per_node'))})"
    checks.append((f"linear: us/node at 100k <= {GOAL_LINEAR}x that at 1k", fmt_ratio(growth) + detail,
                   growth is not None and growth <= GOAL_LINEAR))
    return checks


def calls_line(results: list[Figures]) -> Optional[str]:
    """Function calls per node across the series: the engine's work per node, which (unlike its
    time) no cache or memory effect changes."""
    series = [f for f in results if f.case.kind == "series"]
    if not series:
        return None
    return "function calls per node (builtins included), warm: " + ", ".join(
        f"{f.case.label} " + (f"{f.calls_per_node:.1f}" if f.calls_per_node is not None else "- (not counted)")
        for f in series)


def report(results: list[Figures], repeat: int) -> list[tuple[str, str, bool]]:
    print(f"pytest-maccbudget engine speed: python {platform.python_version()}, onnx {onnx.__version__}, "
          f"numpy {np.__version__}, {os.cpu_count()} cpu(s)")
    print(f"CPU time (process_time) of the call alone, imports excluded; median of up to {repeat} fresh processes. "
          "cold: the first call in a fresh process; warm: a second call in the same process. RSS: the process's "
          "peak (VmHWM). us/node: warm CPU per node; own: the part above the floor's.")
    print()
    print_table(["file", "nodes", "floor cold", "cold", "x", "floor warm", "warm", "x", "floor RSS", "RSS", "x",
                 "us/node", "own"], [table_row(f) for f in results])
    print()
    checks = goals(results)
    print_table(["goal", "measured", "result"], [[g, m, "PASS" if ok else "MISS"] for g, m, ok in checks])
    line = calls_line(results)
    if line:
        print()
        print(line)
    return checks


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=os.path.join(os.path.expanduser("~"), ".cache", "maccbudget-bench"),
                        help="where generated models are cached (default: ~/.cache/maccbudget-bench)")
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per measurement (default 5)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds before one measurement is abandoned")
    parser.add_argument("--real-weights", action="store_true",
                        help="also measure ResNet-50 and VGG-16 with their weights in the file (650 MB of disk)")
    parser.add_argument("--only", metavar="TEXT", help="measure only the files whose label contains TEXT")
    parser.add_argument("--json", metavar="PATH", help="also save all figures as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    repeat, started = max(1, args.repeat), time.perf_counter()
    cases = prepare_cases(os.path.abspath(os.path.expanduser(args.workdir)), args.real_weights)
    if args.only:
        cases = [case for case in cases if args.only in case.label]
    results = []
    for case in cases:
        _log(f"measuring {case.label} ...")
        figures = Figures(case, measure("floor", case.path, repeat, args.timeout),
                          measure("maccbudget", case.path, repeat, args.timeout))
        if case.kind == "series":
            figures.calls = run_child("calls", case.path, args.timeout).get("calls")
        results.append(figures)
    checks = report(results, repeat)
    missed = sum(1 for _, _, ok in checks if not ok)
    print(f"\ngoals: {len(checks) - missed} met, {missed} missed; run took {time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"python": platform.python_version(), "onnx": onnx.__version__, "numpy": np.__version__,
                       "cpus": os.cpu_count(), "repeat": repeat, "files": [f.as_json() for f in results],
                       "goals": [{"goal": g, "measured": m, "met": ok} for g, m, ok in checks]}, handle, indent=1)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
