#!/usr/bin/env python3
"""What exporting a torch model costs the budget check, per exporter, and what the dynamo
exporter's options change.

For each model of benchmarks/models.py and each arm below, a fresh Python process builds the
model, then times `export_model(...)` (torch.onnx.export, renaming the nodes to module paths,
writing the file): "cold" is the first export of the process (it pays the exporter's imports
and one-time set-up, as the first model of a pytest run or of an xdist worker does), "warm" the
median of --repeat exports after it. Each process then profiles its last file with the engine,
so the table can tell whether an arm changed what the budget records (layer keys and MACs,
FLOPs, params, param_bytes).

Arms:
  torchscript     the TorchScript exporter (dynamo=False), as the plugin runs it
  dynamo-before   the dynamo exporter as the plugin ran it before issue 8: torchlib's registry
                  built anew for every export, Python's garbage collector running during it,
                  every weight written into the file
  dynamo-after    the dynamo exporter as the plugin runs it now: the registry built once per
                  process, the collector paused during the export, large weights not written
                  (dims and dtypes only: all the engine reads)
  --options adds one arm per option, each dynamo-before with that one option on (dynamo+registry,
  dynamo+gc, dynamo+weights), and dynamo-no-optimize: dynamo-after with
  torch.onnx.export(optimize=False), which the plugin does not use: it leaves BatchNorms
  unfolded and LSTM weights behind Slice/Concat, so param_bytes, peak memory and the LSTM's
  MACs change.

Times are CPU seconds of the process (user + system) unless --wall: on a shared machine, other
processes stretch wall time but not CPU time, and the export runs torch on one thread.

Usage: python benchmarks/export_cost.py [--repeat 5] [--models small_cnn,lstm] [--large] [--options] [--wall]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
MAIN_ARMS = ("torchscript", "dynamo-before", "dynamo-after")
OPTION_ARMS = ("dynamo+registry", "dynamo+gc", "dynamo+weights", "dynamo-no-optimize")
COUNTS = ("layers", "macs", "flops", "params", "param_bytes")


# --- the child process: one model, one arm -----------------------------------------------------


def arm_patches(arm: str) -> tuple[str, dict[str, Any]]:
    """(exporter, {name in pytest_maccbudget.export: replacement}) that make `arm` out of the plugin's export."""
    from pytest_maccbudget import export

    def unchanged(*args: Any, **kwargs: Any) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def weights_written(program: Any, path: Path, name: str) -> None:
        program.save(str(path))

    before = {"_torchlib_registry_reused": unchanged, "_collector_paused": unchanged, "_save_program": weights_written}
    if arm == "torchscript":
        return "torchscript", {}
    if arm == "dynamo-after":
        return "dynamo", {}
    if arm == "dynamo-before":
        return "dynamo", before
    if arm == "dynamo-no-optimize":
        return "dynamo", {"_run_exporter": _without_optimizer(export._run_exporter)}
    kept = {"dynamo+registry": "_torchlib_registry_reused", "dynamo+gc": "_collector_paused",
            "dynamo+weights": "_save_program"}[arm]
    return "dynamo", {name: patch for name, patch in before.items() if name != kept}


def _without_optimizer(run_exporter: Callable[..., Any]) -> Callable[..., Any]:
    def run(torch: Any, *args: Any, **kwargs: Any) -> Any:
        export = torch.onnx.export

        def unoptimized(*export_args: Any, **export_kwargs: Any) -> Any:
            return export(*export_args, **export_kwargs, optimize=False)

        torch.onnx.export = unoptimized
        try:
            return run_exporter(torch, *args, **kwargs)
        finally:
            torch.onnx.export = export

    return run


def child(model_name: str, arm: str, repeat: int, wall: bool) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    import torch  # noqa: F401  (a test imports torch before the plugin exports its model)

    from benchmarks.models import BENCHMARK_MODELS, LARGE_MODELS, build
    from pytest_maccbudget import export, profile_model
    from pytest_maccbudget.layers import layer_macs

    spec = {**BENCHMARK_MODELS, **LARGE_MODELS}[model_name]
    exporter, patches = arm_patches(arm)
    for name, patch in patches.items():
        setattr(export, name, patch)
    clock = time.perf_counter if wall else time.process_time
    model = build(model_name)
    times = []
    with tempfile.TemporaryDirectory() as workdir:
        for index in range(1 + repeat):
            start = clock()
            exported = export.export_model(model, spec.inputs, name=f"{model_name}-{index}", workdir=Path(workdir),
                                           exporter=exporter)
            times.append(clock() - start)
        profile = profile_model(exported.path)
        file_bytes = exported.path.stat().st_size
    totals = profile.totals
    return {
        "cold": times[0],
        "warm": statistics.median(times[1:]) if repeat else None,
        "file_bytes": file_bytes,
        "counts": {
            "layers": layer_macs((layer.name, layer.macs) for layer in profile.layers),
            "macs": totals.macs, "flops": totals.flops, "params": totals.params, "param_bytes": totals.param_bytes,
        },
    }


# --- the parent: one fresh process per model and arm ------------------------------------------


def measure(model_name: str, arm: str, repeat: int, wall: bool, timeout: float) -> Optional[dict[str, Any]]:
    command = [sys.executable, __file__, "--child", model_name, arm, "--repeat", str(repeat)] + (["--wall"] if wall else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        print(f"  {model_name} / {arm}: timed out after {timeout:.0f} s", file=sys.stderr)
        return None
    if done.returncode != 0:
        print(f"  {model_name} / {arm}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def seconds(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def ratio(numerator: Optional[float], denominator: Optional[float]) -> str:
    if numerator is None or not denominator:
        return "-"
    return f"{numerator / denominator:.1f}x"


def differing_counts(one: Optional[dict[str, Any]], other: Optional[dict[str, Any]]) -> str:
    if one is None or other is None:
        return "?"
    differ = [name for name in COUNTS if one["counts"][name] != other["counts"][name]]
    return "same" if not differ else "differ: " + ", ".join(differ)


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in enumerate(zip(cells, widths)))

    print(line(header))
    print("  ".join("-" * width for width in widths))
    for row in rows:
        print(line(row))


def main_table(results: dict[tuple[str, str], Optional[dict[str, Any]]], models: Sequence[str]) -> None:
    header = ["model", "TorchScript cold", "warm", "dynamo before cold", "warm", "dynamo after cold", "warm",
              "after/TS warm", "after/TS cold", "after vs before", "dynamo vs TorchScript"]
    rows = []
    for model in models:
        ts, before, after = (results.get((model, arm)) for arm in MAIN_ARMS)

        def get(result: Optional[dict[str, Any]], key: str) -> Optional[float]:
            return None if result is None else result[key]

        rows.append([model, seconds(get(ts, "cold")), seconds(get(ts, "warm")), seconds(get(before, "cold")),
                     seconds(get(before, "warm")), seconds(get(after, "cold")), seconds(get(after, "warm")),
                     ratio(get(after, "warm"), get(ts, "warm")), ratio(get(after, "cold"), get(ts, "cold")),
                     differing_counts(before, after), differing_counts(ts, after)])
    print_table(header, rows)


def options_table(results: dict[tuple[str, str], Optional[dict[str, Any]]], models: Sequence[str]) -> None:
    arms = ("dynamo-before",) + OPTION_ARMS + ("dynamo-after",)
    header = ["model"] + [f"{arm} warm" for arm in arms] + [f"{arm} counts" for arm in OPTION_ARMS]
    rows = []
    for model in models:
        before = results.get((model, "dynamo-before"))
        warm = [seconds(None if results.get((model, arm)) is None else results[model, arm]["warm"]) for arm in arms]
        counts = [differing_counts(before, results.get((model, arm))) for arm in OPTION_ARMS]
        rows.append([model] + warm + counts)
    print_table(header, rows)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="warm exports after the cold one (default 5)")
    parser.add_argument("--models", help="comma-separated names from benchmarks/models.py (default: all small ones)")
    parser.add_argument("--large", action="store_true", help="add the BERT-base-sized encoder (about 10 s an export)")
    parser.add_argument("--options", action="store_true", help="also time each dynamo option alone, and optimize=False")
    parser.add_argument("--wall", action="store_true", help="wall-clock seconds instead of CPU seconds")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for one process (default 900)")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "ARM"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.repeat, args.wall)))
        return

    sys.path.insert(0, str(REPO))
    from benchmarks.models import BENCHMARK_MODELS, LARGE_MODELS

    models = args.models.split(",") if args.models else list(BENCHMARK_MODELS) + (list(LARGE_MODELS) if args.large else [])
    arms = MAIN_ARMS + (OPTION_ARMS if args.options else ())
    clock = "wall" if args.wall else "CPU"
    print(f"export cost, {clock} seconds: cold = the first export of a fresh process, "
          f"warm = median of {args.repeat} exports after it")
    results = {}
    for model in models:
        for arm in arms:
            results[model, arm] = measure(model, arm, args.repeat, args.wall, args.timeout)
            print(f"  {model} / {arm}: " + ("failed" if results[model, arm] is None else
                  f"cold {seconds(results[model, arm]['cold'])} s, warm {seconds(results[model, arm]['warm'])} s"),
                  file=sys.stderr, flush=True)
    print()
    main_table(results, models)
    if args.options:
        print()
        options_table(results, models)


if __name__ == "__main__":
    main()
