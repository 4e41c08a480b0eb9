#!/usr/bin/env python3
"""How well a device profile calibrated on a few graphs predicts the latency of others.

1. The nine model-zoo graphs that ship with onnx (`onnx/backend/test/data/light/*.onnx`) are
   copied with their ConstantOfShape weight generators replaced by random initializers (the
   timing needs real weights); three micro-graphs are built here for the op classes the zoo
   lacks (a MatMul block, an LSTM, LayerNormalization + Softmax).
2. Twelve graphs of other families are exported from benchmarks/models.py with
   torch.onnx.export (CNNs, depthwise CNNs, residual CNNs, transformer encoders, LSTMs, UNets, at
   two sizes each).
3. Every graph is timed with onnxruntime (latency, and per-node kernel times from its profiler);
   a profile is fitted to the zoo graphs, and another to the zoo graphs and the micro-graphs
   (`pytest_maccbudget.devices.calibrate`); each predicts the twelve from their graphs alone.
4. The tables give predicted and measured latency per graph, the median absolute percentage
   error and the Spearman rank correlation (goal: at most 25% and at least 0.95), and, for
   comparison, what MACs alone predict (MACs x the zoo's median seconds per MAC).

onnxruntime runs on a fixed number of intra-op threads (--threads, default 1: the machine has
2 cores and is shared, and one thread leaves the other core to whoever else is running), and
times are the CPU time of the thread that runs the model (--clock cpu; `--clock wall` for
wall-clock time): on a shared machine another process preempting the run stretches wall time
by up to 2x, CPU time hardly. Each graph is timed in --rounds rounds (all graphs once per round,
so that a slow spell of the machine hits every graph), each round --warmup runs then the median
of --runs; a graph's latency is the median of its round medians. The noise line says how far
rounds and runs spread. About 5 minutes with the defaults on 2 cores.

Usage:
    python benchmarks/calibration.py [--rounds 5] [--runs 20] [--warmup 5] [--threads 1] [--clock cpu|wall]
                                     [--workdir DIR] [--save m.json] [--reuse m.json]
                                     [--profile-out PROFILE.yaml] [--strict]
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))  # benchmarks.models; the package itself comes from the installed checkout

GOAL_MEDIAN_ERROR = 0.25
GOAL_SPEARMAN = 0.95


@dataclass(frozen=True)
class Graph:
    name: str
    family: str
    build: Optional[Callable[[], Any]]  # a torch module; None for a zoo graph
    inputs: Any


def held_out_graphs() -> list[Graph]:
    from benchmarks import models as m

    return [
        Graph("small_cnn-64", "CNN", m.SmallCNN, [(1, 3, 64, 64)]),
        Graph("small_cnn-224", "CNN", m.SmallCNN, [(1, 3, 224, 224)]),
        Graph("resnet_like-64", "residual CNN", m.ResNetLike, [(1, 3, 64, 64)]),
        Graph("resnet_like-wide-160", "residual CNN", lambda: m.ResNetLike(widths=(64, 128, 256)), [(1, 3, 160, 160)]),
        Graph("mobilenet_like-96", "depthwise CNN", m.MobileNetLike, [(1, 3, 96, 96)]),
        Graph("mobilenet_like-224", "depthwise CNN", lambda: m.MobileNetLike(last_channels=512), [(1, 3, 224, 224)]),
        Graph("transformer-d128-64tok", "transformer encoder", m.TokenEncoder, {"tokens": ((1, 64), "int64")}),
        Graph("transformer-d256-128tok", "transformer encoder",
              lambda: m.TokenEncoder(tokens=128, width=256, heads=8, feedforward=1024), {"tokens": ((1, 128), "int64")}),
        Graph("lstm-h128-50", "LSTM", m.LSTMTagger, [(1, 50, 40)]),
        Graph("lstm-h256-100", "LSTM", lambda: m.LSTMTagger(hidden=256), [(1, 100, 40)]),
        Graph("unet-w16-64", "UNet", m.UNet, [(1, 3, 64, 64)]),
        Graph("unet-w32-128", "UNet", lambda: m.UNet(width=32), [(1, 3, 128, 128)]),
    ]


# Small graphs built here for the op classes the zoo lacks (its graphs are all CNNs): a matmul
# block at sequence length 96, an LSTM, and LayerNormalization + Softmax. Their sizes differ from
# every layer of the held-out graphs.
def micro_graphs() -> dict[str, Any]:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    generator = np.random.default_rng(1)

    def weight(name: str, *shape: int) -> Any:
        return numpy_helper.from_array((generator.standard_normal(shape) / math.sqrt(shape[0])).astype(np.float32), name)

    def model(nodes: list, inputs: list, weights: list) -> Any:
        output = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)
        return helper.make_model(helper.make_graph(nodes, "micro", inputs, [output], initializer=weights),
                                 opset_imports=[helper.make_opsetid("", 17)])

    sequence = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 96, 384])
    matmul = model([helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
                    helper.make_node("Add", ["h", "b1"], ["hb"], name="bias1"),
                    helper.make_node("Relu", ["hb"], ["r"], name="relu"),
                    helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2")],
                   [sequence], [weight("w1", 384, 768), weight("b1", 768), weight("w2", 768, 384)])
    lstm = model([helper.make_node("LSTM", ["x", "w", "r"], ["y"], name="lstm", hidden_size=160)],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [60, 1, 48])],
                 [weight("w", 1, 640, 48), weight("r", 1, 640, 160)])
    norm = model([helper.make_node("LayerNormalization", ["x", "scale", "shift"], ["n"], name="layernorm", axis=-1),
                  helper.make_node("Softmax", ["n"], ["y"], name="softmax", axis=-1)],
                 [sequence], [weight("scale", 384), weight("shift", 384)])
    return {"micro-matmul": matmul, "micro-lstm": lstm, "micro-layernorm-softmax": norm}


# --- preparing the graphs ----------------------------------------------------------------------


def zoo_paths() -> list[Path]:
    import onnx

    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    return sorted(light.glob("light_*.onnx"))


def with_random_weights(source: Path, target: Path, seed: int = 0) -> None:
    """A copy of a zoo graph whose ConstantOfShape weights are random initializers: uniform in
    +-sqrt(3 / fan-in) for weights of rank 2 or more (activations stay in range layer after
    layer), ones for BatchNormalization scales and variances, small values for other vectors."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    stored = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    first_use = {}
    for node in graph.node:
        for position, name in enumerate(node.input):
            first_use.setdefault(name, (node.op_type, position))
    generator = np.random.default_rng(seed)
    kept, weights = [], []
    for node in graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in stored:
            kept.append(node)
            continue
        shape = [int(d) for d in stored[node.input[0]]]
        consumer = first_use.get(node.output[0], ("", 0))
        weights.append(numpy_helper.from_array(_random_weight(generator, shape, consumer), node.output[0]))
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in kept for name in node.input}
    initializers = [t for t in graph.initializer if t.name in used] + weights
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    names = {t.name for t in initializers}
    inputs = [i for i in graph.input if i.name not in names and i.name in used]
    del graph.input[:]
    graph.input.extend(inputs)
    model.ir_version = max(model.ir_version, 4)  # initializers need not be graph inputs from IR 4 on
    onnx.save(model, str(target))


def _random_weight(generator: Any, shape: list[int], consumer: tuple[str, int]) -> Any:
    import numpy as np

    if len(shape) >= 2:
        bound = math.sqrt(3.0 / max(1, int(np.prod(shape[1:]))))
        return generator.uniform(-bound, bound, size=shape).astype(np.float32)
    if consumer[0] == "BatchNormalization" and consumer[1] in (1, 4):
        return np.ones(shape, dtype=np.float32)
    return generator.uniform(-0.1, 0.1, size=shape).astype(np.float32)


def export_graph(graph: Graph, workdir: Path) -> Path:
    from benchmarks.models import randomize_weights
    from pytest_maccbudget.export import export_model

    module = graph.build()
    randomize_weights(module)
    return Path(export_model(module.eval(), graph.inputs, name=graph.name, workdir=workdir, exporter="torchscript").path)


# --- measuring ----------------------------------------------------------------------------------


def measure(paths: dict[str, Path], rounds: int, runs: int, warmup: int, threads: int, cpu_clock: bool) -> dict[str, Any]:
    """{graph: {"latency_ms": [per round], "spread": [per round], "groups": [[layers, ops, [ms per round]]]}}"""
    from pytest_maccbudget.devices.timing import time_model
    from pytest_maccbudget.engine.profile import profile_model

    inputs = {name: profile_model(str(path)).inputs for name, path in paths.items()}
    results: dict[str, Any] = {}
    for round_index in range(rounds):
        for name, path in paths.items():
            started = time.perf_counter()
            timing = time_model(str(path), inputs[name], runs=runs, warmup=warmup, threads=threads, cpu_clock=cpu_clock)
            entry = results.setdefault(name, {"latency_ms": [], "spread": [], "groups": None})
            entry["latency_ms"].append(timing.latency_ms)
            entry["spread"].append(timing.spread)
            if entry["groups"] is None:
                entry["groups"] = [[list(g.group.layers), list(g.op_types), []] for g in timing.groups]
            for stored, group in zip(entry["groups"], timing.groups):
                stored[2].append(group.median_ms)
            print(f"  round {round_index + 1}/{rounds} {name}: {timing.latency_ms:.3f} ms "
                  f"(runs spread {timing.spread:.0%}, {time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return results


def measured_model(path: Path, entry: dict[str, Any]) -> Any:
    from pytest_maccbudget.devices.calibrate import Measured
    from pytest_maccbudget.engine.profile import profile_model

    groups = tuple((tuple(layers), statistics.median(times) / 1e3) for layers, _, times in entry["groups"])
    return Measured(profile_model(str(path)), statistics.median(entry["latency_ms"]) / 1e3, groups)


# --- statistics ---------------------------------------------------------------------------------


def ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    position = 0
    while position < len(order):
        end = position
        while end + 1 < len(order) and values[order[end + 1]] == values[order[position]]:
            end += 1
        for k in range(position, end + 1):
            result[order[k]] = (position + end) / 2 + 1
        position = end + 1
    return result


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    ra, rb = ranks(a), ranks(b)
    mean_a, mean_b = statistics.fmean(ra), statistics.fmean(rb)
    covariance = sum((x - mean_a) * (y - mean_b) for x, y in zip(ra, rb))
    return covariance / math.sqrt(sum((x - mean_a) ** 2 for x in ra) * sum((y - mean_b) ** 2 for y in rb))


def absolute_error(predicted: float, measured: float) -> float:
    return abs(predicted - measured) / measured


# --- the report ---------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" if i < 2 else "---:" for i in range(len(header))) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(device: Any, fit: Any, calibration: list[tuple[str, Any]], held_out: list[tuple[Graph, Any]],
           seconds_per_mac: float) -> bool:
    """The fit's profile and its predictions; MACs alone predict MACs x `seconds_per_mac`."""
    from pytest_maccbudget.devices.profiles import dump_device
    from pytest_maccbudget.devices.roofline import estimate
    from pytest_maccbudget.units import format_count

    print("fitted profile:\n")
    print(dump_device(device))
    print(f"bound reassignment rounds: {fit.rounds}; compute-bound layers per class: {fit.compute_bound}\n")

    print("calibration set (the fit's own graphs):\n")
    rows = []
    for name, model in calibration:
        predicted = estimate(model.profile, device).latency_ms
        rows.append([name, format_count(model.profile.totals.macs), f"{predicted:.2f}" if predicted is not None else "?",
                     f"{model.latency_s * 1e3:.2f}",
                     f"{(predicted - model.latency_s * 1e3) / (model.latency_s * 1e3):+.0%}" if predicted is not None else "?"])
    print(table(["graph", "MACs", "predicted ms", "measured ms", "error"], rows) + "\n")

    print("graphs not used in the fit:\n")
    rows, predicted_ms, measured_ms, mac_ms = [], [], [], []
    for graph, model in held_out:
        result = estimate(model.profile, device)
        measured = model.latency_s * 1e3
        by_bound = result.time_by_bound()
        mac_only = model.profile.totals.macs * seconds_per_mac * 1e3
        predicted_ms.append(result.latency_ms if result.latency_ms is not None else float("nan"))
        measured_ms.append(measured)
        mac_ms.append(mac_only)
        rows.append([graph.name, graph.family, format_count(model.profile.totals.macs),
                     f"{result.latency_ms:.3f}" if result.latency_ms is not None else "?", f"{measured:.3f}",
                     f"{(predicted_ms[-1] - measured) / measured:+.0%}",
                     f"{mac_only:.3f}", f"{(mac_only - measured) / measured:+.0%}",
                     " / ".join(f"{by_bound[b]:.2f}" for b in ("compute", "memory", "overhead"))])
    print(table(["graph", "family", "MACs", "predicted ms", "measured ms", "error", "MACs-only ms", "MACs-only error",
                 "compute / memory / overhead ms"], rows) + "\n")
    known = [(p, m) for p, m in zip(predicted_ms, measured_ms) if not math.isnan(p)]
    median_error = statistics.median(absolute_error(p, m) for p, m in known)
    rank_correlation = spearman([p for p, _ in known], [m for _, m in known])
    mac_error = statistics.median(absolute_error(p, m) for p, m in zip(mac_ms, measured_ms))
    mac_rank = spearman(mac_ms, measured_ms)
    passed = median_error <= GOAL_MEDIAN_ERROR and rank_correlation >= GOAL_SPEARMAN
    print(f"roofline profile: median absolute error {median_error:.1%} (goal <= {GOAL_MEDIAN_ERROR:.0%}), "
          f"Spearman {rank_correlation:.3f} (goal >= {GOAL_SPEARMAN}): {'PASS' if passed else 'MISS'}")
    print(f"MACs alone:       median absolute error {mac_error:.1%}, Spearman {mac_rank:.3f}\n")
    return passed


def noise(measurements: dict[str, Any]) -> None:
    between = [max(e["latency_ms"]) / min(e["latency_ms"]) - 1 for e in measurements.values() if len(e["latency_ms"]) > 1]
    within = [s for e in measurements.values() for s in e["spread"]]
    if between:
        print(f"noise: round medians of one graph differ by {statistics.median(between):.1%} (median over graphs), "
              f"{max(between):.1%} at most; runs within a round spread {statistics.median(within):.1%} "
              f"(median interquartile range over median), {max(within):.1%} at most")


def onnxruntime_version() -> str:
    from pytest_maccbudget.devices.timing import onnxruntime_module

    return onnxruntime_module().__version__


# --- main ---------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: the CPU time of the thread running the model (one thread only; preemption by other "
                             "processes does not count); wall: wall-clock time (default: cpu)")
    parser.add_argument("--workdir", type=Path, help="keep the prepared graphs here (default: a temporary directory)")
    parser.add_argument("--save", type=Path, help="write the raw measurements to this JSON file")
    parser.add_argument("--reuse", type=Path,
                        help="fit and report from measurements saved with --save (graphs missing there are timed)")
    parser.add_argument("--profile-out", type=Path, help="write the fitted profile here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="maccbudget-calibration-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        return run(args, workdir)


def run(args: argparse.Namespace, workdir: Path) -> int:
    import onnx

    from pytest_maccbudget.devices.profiles import dump_device

    zoo = {}
    for source in zoo_paths():
        target = workdir / source.name
        if not target.exists():
            with_random_weights(source, target)
        zoo[source.stem] = target
    micro = {}
    for name, model in micro_graphs().items():
        micro[name] = workdir / f"{name}.onnx"
        onnx.save(model, str(micro[name]))
    graphs = held_out_graphs()
    exported = {graph.name: workdir / f"{graph.name}.onnx" for graph in graphs}
    for graph in graphs:
        if not exported[graph.name].exists():
            exported[graph.name] = export_graph(graph, workdir)
    paths = {**zoo, **micro, **exported}
    measurements = json.loads(args.reuse.read_text(encoding="utf-8")) if args.reuse else {}
    missing = {name: path for name, path in paths.items() if name not in measurements}
    if missing:
        measurements.update(measure(missing, args.rounds, args.runs, args.warmup, args.threads,
                                    cpu_clock=args.clock == "cpu"))
    if args.save:
        args.save.write_text(json.dumps(measurements), encoding="utf-8")
    calibration = [(name, measured_model(path, measurements[name])) for name, path in {**zoo, **micro}.items()]
    held_out = [(graph, measured_model(exported[graph.name], measurements[graph.name])) for graph in graphs]
    print(f"# onnxruntime {onnxruntime_version()}, {args.threads} intra-op thread(s), {args.clock} clock, "
          f"{args.rounds} rounds x ({args.warmup} warm-up + {args.runs} runs)\n")
    zoo_seconds_per_mac = statistics.median(model.latency_s / model.profile.totals.macs
                                            for _, model in calibration[:len(zoo)])
    passed = True
    for label, chosen in (("the nine zoo graphs", calibration[:len(zoo)]),
                          ("the nine zoo graphs and the three micro-graphs", calibration)):
        device, fit = calibrate(chosen)
        print(f"# calibrated on {label}\n")
        passed = report(device, fit, chosen, held_out, zoo_seconds_per_mac) and passed
        if args.profile_out and chosen is calibration:
            args.profile_out.write_text(dump_device(device), encoding="utf-8")
    noise(measurements)
    return 1 if args.strict and not passed else 0


def calibrate(chosen: list[tuple[str, Any]]) -> tuple[Any, Any]:
    from pytest_maccbudget.devices.calibrate import calibrate_device
    from pytest_maccbudget.devices.catalog import builtin_device

    return calibrate_device([model for _, model in chosen], name="calibrated", cache_bytes=_l3_bytes(),
                            base=builtin_device("github-ubuntu-latest"),
                            description="fitted by benchmarks/calibration.py", source="benchmarks/calibration.py")


def _l3_bytes() -> Optional[int]:
    """The last-level cache's size from Linux's sysfs; None elsewhere."""
    from pytest_maccbudget.units import BYTES_KIND, parse_quantity

    caches = sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"))
    sizes = [int(parse_quantity(path.read_text().strip() + "iB", BYTES_KIND)) for path in caches if path.read_text().strip()]
    return max(sizes) if sizes else None


if __name__ == "__main__":
    sys.exit(main())
