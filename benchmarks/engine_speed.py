#!/usr/bin/env python3
"""Speed and memory of the maccbudget cost engine against its floor and against onnx-tool.

Files measured (all generated in code into a cache directory on the first run, then reused;
nothing is downloaded):

* ``zoo ResNet-50``: onnx's own weightless ``light_resnet50.onnx`` (weights made by ConstantOfShape).
* ``decoder``: a GPT-style transformer decoder of at least 5,000 nodes and 1e9 parameters,
  built with ``onnx.helper`` in the torch-export style (Constant nodes, Shape/Gather/Concat
  reshape targets, MatMul attention with a causal mask, LayerNormalization, tanh-GELU MLP).
  Its weights are external data in ``weights.bin``, which is created as a *sparse* file of the
  right size: it takes no disk blocks, and the engine never opens it anyway.
* ``real ResNet-50`` and ``real VGG-16``: single-file models with random float32 weights stored
  inside the file (about 100 MB and 550 MB), written like ``torch.onnx.export`` writes them
  (BatchNorm folded into Conv, Gemm with transB=1).

Each measurement runs in a fresh interpreter, so peak RSS is that of one call: the child
imports what it needs, records its idle peak RSS, times the call alone, and records its peak
RSS after it. Times are the best and the median of ``--repeat`` fresh processes.

    floor       onnx.load(path, load_external_data=False) + infer_shapes(model, data_prop=True)
    maccbudget  pytest_maccbudget.profile_model(path)
    onnx-tool   onnx_tool.model_profile(path)   (only if onnx-tool is installed; stdout discarded)

Usage: python benchmarks/engine_speed.py [--workdir DIR] [--repeat N] [--json PATH] [--strict]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Bump when a generator changes, so cached files are rebuilt.
GENERATOR_VERSION = 2
OPSET = 17

# Decoder shape: GPT-style, fixed batch 1 and sequence 128 so both floor and engine resolve
# every shape; layers are added until the graph has MIN_NODES nodes and MIN_PARAMS params.
DEC_D_MODEL = 1024
DEC_HEADS = 16
DEC_FFN = 4 * DEC_D_MODEL
DEC_VOCAB = 50257
DEC_POSITIONS = 1024
DEC_SEQ = 128
MIN_NODES = 5000
MIN_PARAMS = 1_000_000_000

# Goals from the issue.
GOAL_FLOOR_RATIO = 1.5
GOAL_DECODER_S = 2.0
GOAL_DECODER_RSS_MB = 300
GOAL_REAL_S = 0.050
GOAL_REAL_RSS_MB = 200
GOAL_SPEEDUP = 20.0

# A measurement whose first run takes longer than this is not repeated (keeps onnx-tool's
# runs on the big files from dominating the total time).
SLOW_RUN_S = 5.0
# The warm (second, same-process) call is measured only after a first call quicker than this.
WARM_MAX_S = 2.0


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
        itemsize = np.dtype(dtype).itemsize
        offset = (self.external_bytes + 63) // 64 * 64
        length = count * itemsize
        tensor = TensorProto(name=name, dims=list(shape),
                             data_type=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
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


def build_decoder(location: str) -> tuple[onnx.ModelProto, int, int]:
    """GPT-style decoder with external weights. Returns (model, weight bytes, layers)."""
    d, heads, ffn, seq = DEC_D_MODEL, DEC_HEADS, DEC_FFN, DEC_SEQ
    head_dim = d // heads
    g = _GraphBuilder(external_location=location)
    i64, f32 = np.int64, np.float32

    wte = g.weight("wte", (DEC_VOCAB, d))
    wpe = g.weight("wpe", (DEC_POSITIONS, d))
    # HF GPT-2's causal mask buffer (bool), shared by all layers; not a parameter.
    causal = g.weight("causal_mask", (1, 1, DEC_POSITIONS, DEC_POSITIONS), dtype=np.bool_, counts_as_param=False)

    tokens = g.op("Gather", wte, "input_ids", axis=0)
    ids_shape = g.op("Shape", "input_ids")
    length = g.op("Gather", ids_shape, g.const(1, i64), axis=0)
    positions = g.op("Range", g.const(0, i64), length, g.const(1, i64))
    positions = g.op("Unsqueeze", positions, g.const([0], i64))
    x = g.op("Add", tokens, g.op("Gather", wpe, positions, axis=0))

    layers = 0
    while len(g.nodes) + 2 < MIN_NODES or g.params + d * DEC_VOCAB < MIN_PARAMS:
        layers += 1
        # attention block
        h = g.op("LayerNormalization", x, g.weight("ln1_g", (d,)), g.weight("ln1_b", (d,)), axis=-1, epsilon=1e-5)
        qkv = g.op("Add", g.op("MatMul", h, g.weight("attn_w", (d, 3 * d))), g.weight("attn_b", (3 * d,)))
        q, k, v = g.node("Split", [qkv, g.const([d, d, d], i64)], n_out=3, axis=2)
        shape = g.op("Shape", h)
        batch = g.op("Gather", shape, g.const(0, i64), axis=0)
        steps = g.op("Gather", shape, g.const(1, i64), axis=0)
        axis0 = g.const([0], i64)
        batch_u = g.op("Unsqueeze", batch, axis0)
        steps_u = g.op("Unsqueeze", steps, axis0)
        split_heads = g.op("Concat", batch_u, steps_u, g.const([heads, head_dim], i64), axis=0)
        q = g.op("Transpose", g.op("Reshape", q, split_heads), perm=[0, 2, 1, 3])
        k = g.op("Transpose", g.op("Reshape", k, split_heads), perm=[0, 2, 3, 1])
        v = g.op("Transpose", g.op("Reshape", v, split_heads), perm=[0, 2, 1, 3])
        scores = g.op("Div", g.op("MatMul", q, k), g.const(math.sqrt(head_dim), f32))
        # ends as a literal: onnx's Slice inference ignores data-propagated ends, which would
        # leave the batch dim of scores unknown and the attention nodes unresolved
        mask = g.op("Slice", causal, g.const([0, 0], i64), g.const([seq, seq], i64), g.const([2, 3], i64))
        scores = g.op("Where", mask, scores, g.const(-1e4, f32))
        attn = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        attn = g.op("Transpose", attn, perm=[0, 2, 1, 3])
        merge_heads = g.op("Concat", batch_u, steps_u, g.const([d], i64), axis=0)
        attn = g.op("Reshape", attn, merge_heads)
        attn = g.op("Add", g.op("MatMul", attn, g.weight("proj_w", (d, d))), g.weight("proj_b", (d,)))
        x = g.op("Add", x, attn)
        # MLP block with the tanh GELU that GPT-2 exports spell out
        h = g.op("LayerNormalization", x, g.weight("ln2_g", (d,)), g.weight("ln2_b", (d,)), axis=-1, epsilon=1e-5)
        h = g.op("Add", g.op("MatMul", h, g.weight("fc_w", (d, ffn))), g.weight("fc_b", (ffn,)))
        cube = g.op("Mul", g.op("Pow", h, g.const(3.0, f32)), g.const(0.044715, f32))
        inner = g.op("Mul", g.op("Add", h, cube), g.const(math.sqrt(2.0 / math.pi), f32))
        gate = g.op("Add", g.op("Tanh", inner), g.const(1.0, f32))
        h = g.op("Mul", g.op("Mul", h, g.const(0.5, f32)), gate)
        h = g.op("Add", g.op("MatMul", h, g.weight("mlp_proj_w", (ffn, d))), g.weight("mlp_proj_b", (d,)))
        x = g.op("Add", x, h)

    x = g.op("LayerNormalization", x, g.weight("lnf_g", (d,)), g.weight("lnf_b", (d,)), axis=-1, epsilon=1e-5)
    logits = g.node("MatMul", [x, g.weight("lm_head", (d, DEC_VOCAB))])[0]
    model = g.model(
        "gpt_decoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, seq])],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, [1, seq, DEC_VOCAB])],
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
            y = _conv(g, x, c_in, width, 1)
            y = _conv(g, y, width, width, 3, stride=s)
            y = _conv(g, y, width, width * 4, 1, relu=False)
            shortcut = _conv(g, x, c_in, width * 4, 1, stride=s, relu=False) if block == 0 else x
            x = g.op("Relu", g.op("Add", y, shortcut))
            c_in = width * 4
    x = g.op("Flatten", g.op("GlobalAveragePool", x), axis=1)
    out = g.node("Gemm", [x, g.weight("fc_w", (1000, 2048)), g.weight("fc_b", (1000,))], transB=1)[0]
    return g.model("resnet50",
                   [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
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
    return g.model("vgg16",
                   [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
                   [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 1000])])


@dataclass
class Case:
    key: str
    label: str
    path: str
    kind: str  # "weightless" | "decoder" | "real"
    extra_files: list[str] = field(default_factory=list)  # external data files


def zoo_resnet50_path() -> str:
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", "light_resnet50.onnx")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare_cases(workdir: str) -> list[Case]:
    """Generate the models into `workdir` unless a current copy is already there."""
    os.makedirs(workdir, exist_ok=True)
    manifest_path = os.path.join(workdir, "manifest.json")
    try:
        with open(manifest_path) as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        manifest = {}
    if manifest.get("generator_version") != GENERATOR_VERSION:
        manifest = {"generator_version": GENERATOR_VERSION, "files": {}}

    zoo = zoo_resnet50_path()
    if not os.path.exists(zoo):
        raise SystemExit(f"onnx's zoo ResNet-50 is missing: {zoo}")
    dec_dir = os.path.join(workdir, "decoder")
    cases = [
        Case("zoo_resnet50", "zoo ResNet-50", zoo, "weightless"),
        Case("decoder", "decoder", os.path.join(dec_dir, "decoder.onnx"), "decoder",
             [os.path.join(dec_dir, "weights.bin")]),
        Case("real_resnet50", "real ResNet-50", os.path.join(workdir, "resnet50_real.onnx"), "real"),
        Case("real_vgg16", "real VGG-16", os.path.join(workdir, "vgg16_real.onnx"), "real"),
    ]

    def current(case: Case) -> bool:
        record = manifest["files"].get(case.key)
        files = [case.path] + case.extra_files
        return bool(record) and all(os.path.exists(f) for f in files) and \
            record.get("sizes") == [os.path.getsize(f) for f in files]

    missing = [c for c in cases[1:] if not current(c)]
    if missing:
        free = shutil.disk_usage(workdir).free
        need = 1_000_000_000  # ~650 MB of real-weight files, with room to spare; weights.bin is sparse
        if free < need:
            raise SystemExit(f"{workdir}: {free / 1e9:.1f} GB free, the generated files need about {need / 1e9:.0f} GB")
    for case in missing:
        started = time.perf_counter()
        _log(f"generating {case.label} into {workdir} ...")
        if case.key == "decoder":
            os.makedirs(dec_dir, exist_ok=True)
            model, weight_bytes, layers = build_decoder("weights.bin")
            tmp_weights = case.extra_files[0] + ".tmp"
            with open(tmp_weights, "wb") as handle:
                handle.truncate(weight_bytes)  # sparse: right size, no blocks written
            os.replace(tmp_weights, case.extra_files[0])
            detail = {"layers": layers, "weight_bytes": weight_bytes}
        else:
            model = build_resnet50() if case.key == "real_resnet50" else build_vgg16()
            detail = {}
        tmp = case.path + ".tmp"
        onnx.save_model(model, tmp)
        os.replace(tmp, case.path)
        del model
        files = [case.path] + case.extra_files
        manifest["files"][case.key] = {"sizes": [os.path.getsize(f) for f in files], **detail}
        with open(manifest_path, "w") as handle:
            json.dump(manifest, handle, indent=1)
        _log(f"  done in {time.perf_counter() - started:.1f} s")
    return cases


# --------------------------------------------------------------------------------------------
# Measurement in fresh interpreters
# --------------------------------------------------------------------------------------------

CHILD = r"""
import gc, json, os, resource, sys, time
mode, path, out, WARM_MAX_S = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
def peak_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = {}
t0 = time.perf_counter()
if mode == "floor":
    import onnx, onnx.shape_inference
    def call():
        model = onnx.load(path, load_external_data=False)
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
        return {"nodes": len(model.graph.node)}
elif mode == "maccbudget":
    import onnx
    from pytest_maccbudget.engine.profile import profile_model
    def call():
        profile = profile_model(path)
        return {"nodes": len(profile.layers), "params": profile.totals.params, "macs": profile.totals.macs,
                "unknown": len(profile.unknown)}
elif mode == "onnx-tool":
    import onnx, onnx_tool
    def call():
        sys.stdout.flush()
        saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # model_profile prints its whole per-node table
        try:
            onnx_tool.model_profile(path)
            sys.stdout.flush()
        finally:
            os.dup2(saved, 1)
            os.close(devnull)
        return {}
result["import_s"] = time.perf_counter() - t0
gc.collect()
result["idle_kb"] = peak_kb()
if path == "-":  # import only
    json.dump(result, open(out, "w")); sys.exit(0)
try:
    t = time.perf_counter()
    facts = call()
    result["time_s"] = time.perf_counter() - t
    result.update(facts)
except BaseException as error:  # onnx-tool calls exit(-1) on a model it cannot load
    message = str(error).strip().splitlines()
    result["error"] = f"{type(error).__name__}: {message[0] if message else ''}"[:200]
result["peak_kb"] = peak_kb()
if "error" not in result and result["time_s"] < WARM_MAX_S:
    # a second call in the same process: without onnx's one-time setup on first use
    gc.collect()
    t = time.perf_counter()
    call()
    result["warm_s"] = time.perf_counter() - t
json.dump(result, open(out, "w"))
"""


def run_child(mode: str, path: str, timeout: float) -> dict:
    handle, out = tempfile.mkstemp(suffix=".json", prefix="maccbudget-bench-")
    os.close(handle)
    try:
        try:
            completed = subprocess.run([sys.executable, "-c", CHILD, mode, path, out, str(WARM_MAX_S)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, timeout=timeout, text=True)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        try:
            with open(out) as f:
                return json.load(f)
        except (OSError, ValueError):
            lines = [line for line in (completed.stderr or "").strip().splitlines() if line.strip()]
            why = f"exit code {completed.returncode}"
            if completed.returncode in (-9, 137):
                why += " (killed: out of memory?)"
            return {"error": why + (f": {lines[-1][:160]}" if lines else "")}
    finally:
        os.unlink(out)


@dataclass
class Measurement:
    runs: list[dict]

    @property
    def error(self) -> Optional[str]:
        return next((r["error"] for r in self.runs if "error" in r), None)

    @property
    def times(self) -> list[float]:
        return [r["time_s"] for r in self.runs if "time_s" in r]

    @property
    def best(self) -> Optional[float]:
        return min(self.times) if self.times and not self.error else None

    @property
    def median(self) -> Optional[float]:
        return statistics.median(self.times) if self.times and not self.error else None

    @property
    def warm(self) -> Optional[float]:
        warm = [r["warm_s"] for r in self.runs if "warm_s" in r]
        return statistics.median(warm) if warm and not self.error else None

    @property
    def peak_mb(self) -> Optional[float]:
        peaks = [r["peak_kb"] for r in self.runs if "peak_kb" in r and "error" not in r]
        return max(peaks) / 1024 if peaks else None

    @property
    def increase_mb(self) -> Optional[float]:
        rises = [r["peak_kb"] - r["idle_kb"] for r in self.runs if "peak_kb" in r and "error" not in r]
        return max(rises) / 1024 if rises else None

    def first(self, key: str):
        return next((r[key] for r in self.runs if key in r), None)

    def summary(self) -> dict:
        return {"runs": len(self.runs), "best_s": self.best, "median_s": self.median, "times_s": self.times,
                "warm_median_s": self.warm,
                "peak_rss_mb": self.peak_mb, "rss_increase_mb": self.increase_mb, "error": self.error,
                "idle_rss_mb": (self.first("idle_kb") or 0) / 1024 or None}


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

def fmt_bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def fmt_time(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_count(n: Optional[int]) -> str:
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def fmt_ratio(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x:.0f}x" if x >= 10 else f"{x:.2f}x" if x < 1 else f"{x:.1f}x"


def fmt_rss(m: Measurement) -> str:
    if m.peak_mb is None:
        return "-"
    return f"{m.peak_mb:.0f} MB (+{m.increase_mb:.0f})"


def print_table(headers: list[str], rows: list[list[str]], right: set[int]) -> None:
    widths = [max(len(str(r[i])) for r in [headers] + rows) for i in range(len(headers))]
    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))


def disk_size(case: Case) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of the model file and its external data."""
    files = [case.path] + case.extra_files
    return (sum(os.path.getsize(f) for f in files),
            sum(os.stat(f).st_blocks * 512 for f in files))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=os.path.join(os.path.expanduser("~"), ".cache", "maccbudget-bench"),
                        help="where generated models are cached (default: ~/.cache/maccbudget-bench)")
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per measurement (default 5)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds before one measurement is abandoned")
    parser.add_argument("--json", metavar="PATH", help="also save all figures as JSON")
    parser.add_argument("--no-onnx-tool", action="store_true", help="skip onnx-tool even when it is installed")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    repeat = max(1, args.repeat)
    started = time.perf_counter()

    workdir = os.path.abspath(os.path.expanduser(args.workdir))
    cases = prepare_cases(workdir)
    onnx_tool_version = None
    if not args.no_onnx_tool:
        probe = subprocess.run([sys.executable, "-c", "import onnx_tool; print(getattr(onnx_tool, 'VERSION', '?'))"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            onnx_tool_version = probe.stdout.strip()
    modes = ["floor", "maccbudget"] + (["onnx-tool"] if onnx_tool_version else [])

    imports = {}
    for mode in modes:
        runs = [run_child(mode, "-", args.timeout) for _ in range(3)]
        times = [r["import_s"] for r in runs if "import_s" in r]
        imports[mode] = {"import_s": statistics.median(times) if times else None,
                         "idle_rss_mb": runs[0].get("idle_kb", 0) / 1024}

    results: dict[str, dict[str, Measurement]] = {}
    for case in cases:
        results[case.key] = {}
        for mode in modes:
            _log(f"measuring {mode:<10} on {case.label} ...")
            results[case.key][mode] = measure(mode, case.path, repeat, args.timeout)

    # ---- tables
    print(f"pytest-maccbudget engine speed: python {platform.python_version()}, onnx {onnx.__version__}, "
          f"numpy {np.__version__}, onnx-tool {onnx_tool_version or 'not installed'}, {os.cpu_count()} cpu(s)")
    print(f"cold: first call in a fresh process, median of up to {repeat} processes (best in brackets), "
          "call only, imports excluded")
    print("RSS: peak of that process (+ rise over its idle peak after imports)")
    print()
    headers = ["file", "on disk", "nodes", "params", "floor", "maccbudget (best)", "x floor", "maccbudget RSS"]
    if onnx_tool_version:
        headers += ["onnx-tool", "onnx-tool RSS", "speedup"]
    rows, warm_rows = [], []
    figures = {}
    for case in cases:
        floor, mb = results[case.key]["floor"], results[case.key]["maccbudget"]
        apparent, allocated = disk_size(case)
        size = fmt_bytes(apparent) + (" *" if allocated < apparent * 0.5 else "")
        ratio = mb.median / floor.median if mb.median and floor.median else None
        warm_ratio = mb.warm / floor.warm if mb.warm and floor.warm else None
        row = [case.label, size, fmt_count(mb.first("nodes") or floor.first("nodes")), fmt_count(mb.first("params")),
               fmt_time(floor.median) if not floor.error else "error",
               f"{fmt_time(mb.median)} ({fmt_time(mb.best)})" if not mb.error else "error",
               f"{ratio:.2f}x" if ratio else "-", fmt_rss(mb)]
        speedup = None
        if onnx_tool_version:
            ot = results[case.key]["onnx-tool"]
            if ot.error:
                row += ["failed (see below)", "-", "-"]
            else:
                speedup = ot.median / mb.median if mb.median else None
                row += [fmt_time(ot.median) + (" (1 run)" if len(ot.runs) == 1 and repeat > 1 else ""),
                        fmt_rss(ot), fmt_ratio(speedup)]
        rows.append(row)
        warm_rows.append([case.label, fmt_time(floor.warm), fmt_time(mb.warm),
                          f"{warm_ratio:.2f}x" if warm_ratio else "-"])
        warm_speedup = None
        if onnx_tool_version:
            ot_warm = results[case.key]["onnx-tool"].warm
            warm_speedup = ot_warm / mb.warm if ot_warm and mb.warm else None
            warm_rows[-1] += [fmt_time(ot_warm), fmt_ratio(warm_speedup)]
        figures[case.key] = {
            "label": case.label, "path": case.path, "kind": case.kind, "bytes": apparent, "allocated_bytes": allocated,
            "nodes": mb.first("nodes") or floor.first("nodes"), "params": mb.first("params"), "macs": mb.first("macs"),
            "unresolved_or_unknown_nodes": mb.first("unknown"),
            "ratio_to_floor": ratio, "warm_ratio_to_floor": warm_ratio, "speedup_vs_onnx_tool": speedup,
            "warm_speedup_vs_onnx_tool": warm_speedup,
            **{mode: results[case.key][mode].summary() for mode in modes},
        }
    print_table(headers, rows, right={1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
    for case in cases:
        apparent, allocated = disk_size(case)
        if allocated < apparent * 0.5:
            print(f"  * {case.label}: size with its external data; the weight file is sparse "
                  f"({fmt_bytes(allocated)} of blocks in use)")
    for case in cases:
        for mode in modes:
            if results[case.key][mode].error:
                print(f"  {mode} on {case.label} failed: {results[case.key][mode].error}")
    print()
    print("warm: second call in the same process (without onnx's one-time setup on first use); "
          f"measured when the first took under {WARM_MAX_S:.0f} s")
    print_table(["file", "floor", "maccbudget", "x floor"] + (["onnx-tool", "speedup"] if onnx_tool_version else []),
                warm_rows, right={1, 2, 3, 4, 5})
    print()
    print("import time (median of 3 fresh processes) and idle RSS: " + "; ".join(
        f"{mode} {fmt_time(v['import_s'])}, {v['idle_rss_mb']:.0f} MB" for mode, v in imports.items()))
    print()

    # ---- goals
    goals = []  # (goal, measured, status)

    def check(goal: str, value: Optional[float], limit: float, shown: str, higher_is_better: bool = False) -> None:
        if value is None:
            goals.append((goal, shown, "MISS"))
        else:
            ok = value >= limit if higher_is_better else value <= limit
            goals.append((goal, shown, "PASS" if ok else "MISS"))

    by_key = {c.key: c for c in cases}
    for key in ("zoo_resnet50", "decoder"):
        ratio = figures[key]["ratio_to_floor"]
        warm_ratio = figures[key]["warm_ratio_to_floor"]
        check(f"{by_key[key].label}: maccbudget within {GOAL_FLOOR_RATIO}x of floor", ratio, GOAL_FLOOR_RATIO,
              (f"{ratio:.2f}x" if ratio else "no figure") + (f" (warm {warm_ratio:.2f}x)" if warm_ratio else ""))
    dec = results["decoder"]["maccbudget"]
    check(f"decoder: profile under {GOAL_DECODER_S:.0f} s", dec.median, GOAL_DECODER_S, fmt_time(dec.median))
    check(f"decoder: peak RSS under {GOAL_DECODER_RSS_MB} MB", dec.peak_mb, GOAL_DECODER_RSS_MB, fmt_rss(dec))
    for key in ("real_resnet50", "real_vgg16"):
        m = results[key]["maccbudget"]
        label = by_key[key].label
        check(f"{label}: profile under {GOAL_REAL_S * 1000:.0f} ms", m.median, GOAL_REAL_S, fmt_time(m.median))
        check(f"{label}: peak RSS under {GOAL_REAL_RSS_MB} MB", m.peak_mb, GOAL_REAL_RSS_MB, fmt_rss(m))
        if onnx_tool_version:
            speedup = figures[key]["speedup_vs_onnx_tool"]
            warm_speedup = figures[key]["warm_speedup_vs_onnx_tool"]
            check(f"{label}: at least {GOAL_SPEEDUP:.0f}x faster than onnx-tool", speedup, GOAL_SPEEDUP,
                  (fmt_ratio(speedup) + (f" (warm {fmt_ratio(warm_speedup)})" if warm_speedup else "")) if speedup
                  else f"no figure ({results[key]['onnx-tool'].error})"[:60],
                  higher_is_better=True)
        else:
            goals.append((f"{label}: at least {GOAL_SPEEDUP:.0f}x faster than onnx-tool", "onnx-tool not installed", "N/A"))
    print("goals (judged on the cold figures: median times, absolute peak RSS)")
    print_table(["goal", "measured", "result"], [list(g) for g in goals], right=set())
    missed = sum(1 for g in goals if g[2] == "MISS")
    total = time.perf_counter() - started
    print()
    print(f"goals: {len(goals) - missed - sum(1 for g in goals if g[2] == 'N/A')} met, {missed} missed; "
          f"run took {total:.0f} s; generated files cached in {workdir}")

    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"python": platform.python_version(), "onnx": onnx.__version__, "numpy": np.__version__,
                       "onnx_tool": onnx_tool_version, "cpus": os.cpu_count(), "repeat": repeat,
                       "imports": imports, "files": figures,
                       "goals": [{"goal": g, "measured": m, "result": r} for g, m, r in goals],
                       "total_s": total}, handle, indent=1)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
