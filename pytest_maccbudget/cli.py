"""The `maccbudget` command line.

    maccbudget profile MODEL.onnx [--input NAME=DIMS ...] [--batch N]
                                  [--format table|json|markdown|csv] [--indent N] [--top N] [--all] [--strict]
                                  [--device NAME|PROFILE.yaml] [--dtype fp32|fp16|int8]
    maccbudget devices [--format table|json] [--show NAME]
    maccbudget calibrate MODEL.onnx... --output PROFILE.yaml [--name NAME] [--format table|json]

Exit codes: 0 profiled; 1 --strict and some ops could not be costed; 2 bad usage or a model
that cannot be profiled (one line on stderr, never a traceback; --debug shows it).
Subcommands plug into `_COMMANDS`.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Optional, Sequence, TextIO, Union

from . import __version__

PROG = "maccbudget"
EXIT_OK = 0
EXIT_STRICT = 1
EXIT_ERROR = 2

InputValue = Union[list[int], int]
Handler = Callable[[argparse.Namespace], int]


# --- argument types -----------------------------------------------------------------------


def parse_input_spec(text: str) -> tuple[str, InputValue]:
    """"NAME=1,3,224,224" (or 1x3x224x224) -> (NAME, [1, 3, 224, 224]): an input's full dims.
    "SYMBOL=4" -> (SYMBOL, 4): the value of a symbolic dimension. A rank-1 input's dims are
    written with a trailing comma: "NAME=4,"."""
    name, sep, value = text.rpartition("=")
    if not sep or not name or not value.strip():
        raise argparse.ArgumentTypeError(
            f"expected NAME=DIMS (e.g. input=1,3,224,224) or SYMBOL=VALUE (e.g. batch=8), got {text!r}"
        )
    value = value.strip().strip("[]()").strip()
    is_dims = "," in value or "x" in value.lower()
    parts = [p.strip() for p in value.lower().replace("x", ",").split(",")]
    if is_dims and parts and parts[-1] == "":
        parts = parts[:-1]  # "4," is the dims [4]
    # a 0 in a list of dims is an empty dim (ONNX allows one); a symbol's value is a size
    if not parts or not all(p.isdigit() and (is_dims or int(p) > 0) for p in parts):
        raise argparse.ArgumentTypeError(f"dims must be integers (positive, or 0 for an empty dim in a list of dims) "
                                         f"separated by commas, got {text!r}")
    dims = [int(p) for p in parts]
    return name, (dims if is_dims else dims[0])


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def memory_limit(text: str) -> Optional[int]:
    """"16GB", "512MiB" -> bytes; "none" -> None (no limit)."""
    from .units import parse_size_limit

    try:
        return parse_size_limit(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size such as 4GB, or none, got {text!r}") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# --- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Static cost of ONNX models: per-layer MACs, FLOPs, parameters and activation memory.",
    )
    parser.add_argument("--version", action="version", version=_version_text())
    parser.add_argument("--debug", action="store_true", help="show a traceback on unexpected errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (add_arguments, _) in _COMMANDS.items():
        add_arguments(subparsers, name)
    return parser


def _version_text() -> str:
    try:
        from importlib.metadata import version

        onnx_version = version("onnx")
    except Exception:  # metadata missing: still print our own version
        onnx_version = "not installed"
    return f"{PROG} {__version__} (onnx {onnx_version}, python {sys.version.split()[0]})"


def _add_profile_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    from .isolation import DEFAULT_MEMORY_BYTES, DEFAULT_TIMEOUT_S
    from .profile_report import FORMATS

    sub = subparsers.add_parser(
        name,
        help="per-layer MACs, FLOPs, parameters and memory of an ONNX model",
        description="Count the cost of an ONNX model without running it (weights are not read).",
        epilog="Exit codes: 0 ok, 1 --strict and some ops could not be costed, 2 the model cannot be profiled.",
    )
    sub.add_argument("model", metavar="MODEL", help="path to an .onnx file")
    sub.add_argument(
        "--input", dest="inputs", metavar="NAME=DIMS", action="append", type=parse_input_spec, default=[],
        help="dims of an input (data=1,3,224,224) or value of a symbolic dim (seq_len=128); repeatable",
    )
    sub.add_argument("--batch", type=positive_int, metavar="N", help="batch size: each input's batch dim, found by its symbolic name (batch, N, B, ...) wherever "
                     "it sits, else the leading dim of an input of rank >= 2 where it is symbolic or 1; a note says "
                     "which dim was set (default: a symbolic batch counts as 1)")
    sub.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    sub.add_argument("--indent", type=positive_int, metavar="N",
                     help="with --format json: indent by N spaces (default: one compact line)")
    sub.add_argument("--top", type=positive_int, metavar="N",
                     help="only the N layers with the most MACs (table, markdown, csv; json lists every layer)")
    sub.add_argument("--all", dest="show_all", action="store_true",
                     help="also list zero-cost and folded layers in the table/markdown")
    sub.add_argument("--strict", action="store_true", help="exit 1 when any op could not be costed")
    sub.add_argument("--timeout", type=positive_float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                     help=f"stop profiling after this long, exit 2 (default: {DEFAULT_TIMEOUT_S:g})")
    sub.add_argument("--memory-limit", type=memory_limit, default=DEFAULT_MEMORY_BYTES, metavar="SIZE",
                     help="address space the profiling may add to what the process had, e.g. 4GB, or none "
                          "(default: 16GiB)")
    sub.add_argument("--device", metavar="NAME|PROFILE.yaml",
                     help="add each layer's latency, energy and bound on this device (`maccbudget devices` lists "
                          "the built-in ones; or a profile file, e.g. from `maccbudget calibrate`)")
    sub.add_argument("--dtype", choices=("fp32", "fp16", "int8"),
                     help="with --device: compute every layer in this dtype (default: the dtype of its weights)")


# --- commands -----------------------------------------------------------------------------


def _run_profile(args: argparse.Namespace) -> int:
    from .profile_report import coverage_line, render
    from .units import plural

    device = _device(args.device) if args.device else None
    if args.dtype and device is None:
        _error("--dtype needs --device")
        return EXIT_ERROR
    if args.indent is not None and args.format != "json":
        _error("--indent applies to --format json only")
        return EXIT_ERROR
    # in a child process: onnx's C++ can abort or hang on a hostile graph; this process then
    # prints its one line and exits 2
    profile = _profile(args)
    if device is None:
        _write(sys.stdout, render(profile, args.format, top=args.top, show_all=args.show_all, indent=args.indent))
    else:
        from .devices import estimate
        from .devices.report import render_profile

        model_estimate = estimate(profile, device, dtype=args.dtype, model_path=args.model)
        _write(sys.stdout, render_profile(profile, model_estimate, args.format, top=args.top, show_all=args.show_all,
                                          indent=args.indent))
    if args.format == "csv":  # CSV has no room for these: say them on stderr
        for note in profile.notes:
            print(f"{PROG}: note: {note}", file=sys.stderr)
        if profile.partial and not args.strict:
            print(f"{PROG}: partial: {coverage_line(profile)}", file=sys.stderr)
    if args.strict and profile.partial:
        print(f"{PROG}: --strict: {plural(len(profile.unknown), 'op')} could not be costed ({coverage_line(profile)})",
              file=sys.stderr)
        return EXIT_STRICT
    return EXIT_OK


def _profile(args: argparse.Namespace) -> Any:
    """The profile, made in a child process: onnx's C++ can abort or hang on a hostile graph, and
    this process then prints its one line and exits 2. --debug profiles here, for the traceback."""
    from .isolation import IsolatedProfiler, InternalError, Limits

    inputs = dict(args.inputs) or None
    if args.debug:
        from .engine.profile import profile_model

        return profile_model(args.model, inputs, batch=args.batch)
    profiler = IsolatedProfiler(Limits(args.timeout, args.memory_limit))
    try:
        return profiler.profile(args.model, inputs, batch=args.batch)
    except InternalError as error:
        raise _Reported(f"{error}; rerun with --debug for the traceback") from None
    finally:
        profiler.close()


class _Reported(Exception):
    """An error whose message is already the one line to print."""


def _device(name_or_path: str) -> Any:
    from .devices import DeviceError, load_device

    try:
        return load_device(name_or_path)
    except DeviceError as error:
        raise _Reported(str(error)) from None


def _add_devices_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    from .devices.report import DEVICE_FORMATS

    sub = subparsers.add_parser(
        name,
        help="list the built-in device profiles for `profile --device`",
        description="The built-in device profiles: name, class, fp32 peak, memory bandwidth and where the figures "
                    "come from (docs/devices.md gives every source).",
        epilog="Exit codes: 0 ok, 2 an unknown name for --show.",
    )
    sub.add_argument("--format", choices=DEVICE_FORMATS, default="table", help="output format (default: table)")
    sub.add_argument("--show", metavar="NAME", help="print this built-in profile as YAML, to start a profile of your own")


def _run_devices(args: argparse.Namespace) -> int:
    from .devices.catalog import BUILTIN_NAMES, builtin_devices, builtin_text
    from .devices.report import render_devices

    if args.show is not None:
        if args.show not in BUILTIN_NAMES:
            _error(f"no built-in device {args.show!r}; built-in devices: {', '.join(BUILTIN_NAMES)}")
            return EXIT_ERROR
        _write(sys.stdout, builtin_text(args.show))
        return EXIT_OK
    _write(sys.stdout, render_devices(builtin_devices(), args.format))
    return EXIT_OK


def _add_calibrate_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    from .devices.report import DEVICE_FORMATS

    sub = subparsers.add_parser(
        name,
        help="time models with onnxruntime on this machine and fit a device profile to them",
        description="Run each model with onnxruntime (CPU), time it (warm-up runs, then the median of timed runs) and "
                    "each of its nodes (onnxruntime's profiler), fit the profile's peak, bandwidth, overheads and "
                    "per-op-class efficiencies, write the profile and print predicted against measured times. "
                    "Needs onnxruntime: pip install 'pytest-maccbudget[calibrate]'.",
        epilog="Exit codes: 0 ok, 2 onnxruntime missing, a model that cannot be run or profiled, or measurements "
               "that cannot determine a profile.",
    )
    sub.add_argument("models", metavar="MODEL.onnx", nargs="+", help="models to time (several, of different kinds)")
    sub.add_argument("--output", required=True, metavar="PROFILE.yaml", help="write the fitted profile here")
    sub.add_argument("--name", help="the profile's name (default: the output file's name without .yaml)")
    sub.add_argument("--format", choices=DEVICE_FORMATS, default="table", help="output format (default: table)")
    sub.add_argument("--input", dest="inputs", metavar="NAME=DIMS", action="append", type=parse_input_spec, default=[],
                     help="dims of an input or value of a symbolic dim, for every model; repeatable")
    sub.add_argument("--runs", type=positive_int, default=20, metavar="N", help="timed runs per model (default: 20)")
    sub.add_argument("--warmup", type=positive_int, default=5, metavar="N", help="warm-up runs per model (default: 5)")
    sub.add_argument("--threads", type=positive_int, metavar="N",
                     help="onnxruntime's intra-op threads (default: onnxruntime's own choice)")
    sub.add_argument("--cpu-clock", action="store_true",
                     help="time the CPU of the thread running the model instead of the wall clock: steadier on a "
                          "shared machine; needs --threads 1")
    sub.add_argument("--cache", type=memory_limit, metavar="SIZE",
                     help="last-level cache size, e.g. 32MiB: layers whose bytes fit get a bandwidth of their own")
    sub.add_argument("--base", metavar="NAME|PROFILE.yaml",
                     help="take the energy figures (which timing cannot measure) and the class from this profile")


def _run_calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .devices.calibrate import CalibrationError, calibrate_device, compare
    from .devices.profiles import dump_device
    from .devices.report import render_calibration
    from .devices.timing import TimingError, onnxruntime_module

    if args.cpu_clock and args.threads != 1:
        _error("--cpu-clock measures one thread: add --threads 1")
        return EXIT_ERROR
    base = _device(args.base) if args.base else None
    try:
        ort = onnxruntime_module()
        measured = [_measured(model, args) for model in args.models]
        name = args.name or Path(args.output).stem
        clock = "the CPU clock of its thread" if args.cpu_clock else "the wall clock"
        threads = f"{args.threads} intra-op thread(s)" if args.threads else "onnxruntime's default threads"
        source = (f"maccbudget calibrate on {len(measured)} model(s), onnxruntime {ort.__version__} CPU, {threads}, "
                  f"{clock}, median of {args.runs} runs")
        device, _ = calibrate_device(measured, name=name, cache_bytes=args.cache, base=base,
                                     description=f"calibrated from {', '.join(Path(m).name for m in args.models)}",
                                     source=source)
    except (TimingError, CalibrationError) as error:
        _error(str(error))
        return EXIT_ERROR
    Path(args.output).write_text(dump_device(device, header=f"Written by {PROG} calibrate: {source}."), encoding="utf-8")
    models, classes = compare(measured, device)
    _write(sys.stdout, render_calibration(device, models, classes, args.format, written_to=args.output))
    return EXIT_OK


def _measured(model: str, args: argparse.Namespace) -> Any:
    from .devices.calibrate import Measured
    from .devices.timing import time_model
    from .isolation import DEFAULT_MEMORY_BYTES, DEFAULT_TIMEOUT_S

    profile_args = argparse.Namespace(model=model, inputs=_inputs_of(model, args.inputs), batch=None,
                                      debug=args.debug, timeout=DEFAULT_TIMEOUT_S, memory_limit=DEFAULT_MEMORY_BYTES)
    profile = _profile(profile_args)
    timing = time_model(model, profile.inputs, runs=args.runs, warmup=args.warmup, threads=args.threads,
                        cpu_clock=args.cpu_clock)
    groups = tuple((group.group.layers, group.median_ms / 1e3) for group in timing.groups)
    return Measured(profile, timing.latency_ms / 1e3, groups)


def _inputs_of(model: str, inputs: Sequence[tuple[str, InputValue]]) -> list[tuple[str, InputValue]]:
    """The --input specs that name an input or a symbolic dim of this model (calibrate's specs
    apply to every model that has them)."""
    from .engine.loader import load_skeleton

    graph = load_skeleton(model).graph
    names = {value.name for value in graph.input}
    names |= {dim.dim_param for value in graph.input for dim in value.type.tensor_type.shape.dim if dim.dim_param}
    return [(name, value) for name, value in inputs if name in names]


def _add_merge_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    sub = subparsers.add_parser(
        name,
        help="combine the --macc-budget-json reports of sharded pytest runs and gate once",
        description="Merge the JSON reports of `pytest --macc-budget --macc-budget-shard I/N --macc-budget-json ...` "
                    "runs into one report, compared with the budget file, as a single run would give.",
        epilog="Exit codes: 0 every model within budget, 1 a model failed its budget, 2 bad input.",
    )
    sub.add_argument("shards", metavar="SHARD.json", nargs="+", help="the shards' --macc-budget-json files")
    sub.add_argument("--budget", metavar="PATH", default="macc_budget.yaml", help="the budget file (default: macc_budget.yaml)")
    sub.add_argument("--report", metavar="PATH", help="write the merged markdown report here")
    sub.add_argument("--json", dest="json_path", metavar="PATH", help="write the merged JSON report here")
    sub.add_argument("--strict", action="store_true", help="models that got cheaper fail too (as --macc-budget-strict)")


def _run_merge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .budget import BudgetError, load_budget
    from .pr_report import (
        base_budget_from_reports, build_report, dump_report, load_report, merge_reports, merged_errors, merged_trends,
        regressions, render_markdown,
    )

    try:
        reports = [load_report(Path(path).read_text(encoding="utf-8"), path) for path in args.shards]
        measurements, base, sources = merge_reports(reports, names=args.shards)
        if not Path(args.budget).is_file():
            raise ValueError(f"{args.budget}: no such budget file (give the one the shards were checked against)")
        budget = load_budget(Path(args.budget))
        base_budget = base_budget_from_reports(reports, Path(args.budget))
    except (BudgetError, ValueError) as error:
        _error(str(error))
        return EXIT_ERROR
    unused = set(reports[0]["unused"]).intersection(*(report["unused"] for report in reports[1:]))
    errors = merged_errors(reports)
    report = build_report(measurements, budget, base_budget=base_budget, base=base, unused=sorted(unused),
                          budget_file=reports[0]["budget_file"], sources=sources, strict=args.strict, errors=errors,
                          trends=merged_trends(reports))
    if args.json_path:
        Path(args.json_path).write_text(dump_report(report), encoding="utf-8")
    if args.report:
        Path(args.report).write_text(render_markdown(report), encoding="utf-8")
    failed = [model["name"] for model in report["models"] if model["failed"]] + [e["name"] for e in errors]
    print(f"{PROG} merge: {len(report['models'])} model(s) from {len(reports)} shard(s); "
          f"{len(regressions(report))} regression(s)" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else EXIT_OK


def _add_history_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    from .history_report import FORMATS

    sub = subparsers.add_parser(
        name,
        help="how each model's recorded MACs, params and peak memory moved over the budget file's git history",
        description="Walk the budget file's first-parent git history (each merged pull request is one step) and "
                    "show, per model, the commits that changed its recorded totals, oldest first.",
        epilog="Exit codes: 0 ok, 2 not a git repository, unknown revision, a budget file never committed there, "
               "or a --model that was never recorded.",
    )
    sub.add_argument("--budget", metavar="PATH", default="macc_budget.yaml",
                     help="the budget file (default: macc_budget.yaml)")
    sub.add_argument("--rev", metavar="REV", default="HEAD", help="walk the history of this commit (default: HEAD)")
    sub.add_argument("--model", dest="models", metavar="NAME", action="append",
                     help="only this model (its exact name); repeatable")
    sub.add_argument("--last", type=positive_int, default=10, metavar="N",
                     help="the N most recent changes of each model (default: 10)")
    sub.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    sub.add_argument("--indent", type=positive_int, metavar="N",
                     help="with --format json: indent by N spaces (default: one compact line)")


def _run_history(args: argparse.Namespace) -> int:
    from .history import HistoryError, budget_history
    from .history_report import render

    if args.indent is not None and args.format != "json":
        _error("--indent applies to --format json only")
        return EXIT_ERROR
    try:
        history = budget_history(os.getcwd(), args.budget, rev=args.rev, models=args.models, last=args.last)
    except HistoryError as error:
        _error(str(error))
        return EXIT_ERROR
    unknown = sorted(set(args.models or ()) - set(history.models))
    if unknown:
        shallow = "; this clone is shallow" if history.shallow_boundary else ""
        _error(f"no model {', '.join(map(repr, unknown))} in the first-parent history of {history.budget_path} "
               f"at {args.rev}{shallow}")
        return EXIT_ERROR
    _write(sys.stdout, render(history, args.format, indent=args.indent))
    if args.format == "csv":  # CSV has no room for these: say them on stderr
        for note in history.notes:
            print(f"{PROG}: note: {note}", file=sys.stderr)
    return EXIT_OK


_COMMANDS: dict[str, tuple[Callable[[argparse._SubParsersAction, str], None], Handler]] = {
    "profile": (_add_profile_parser, _run_profile),
    "merge": (_add_merge_parser, _run_merge),
    "history": (_add_history_parser, _run_history),
    "devices": (_add_devices_parser, _run_devices),
    "calibrate": (_add_calibrate_parser, _run_calibrate),
}


# --- entry point --------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit code (console scripts pass it to sys.exit)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, usage errors: argparse already printed
        return stop.code if isinstance(stop.code, int) else (EXIT_OK if stop.code is None else EXIT_ERROR)
    _, handler = _COMMANDS[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `maccbudget profile m.onnx | head`
        _silence_stdout()
        return EXIT_OK
    except Exception as error:  # noqa: BLE001  (one line, never a traceback, unless --debug)
        if args.debug:
            raise
        _error(_describe(error, args))
        return EXIT_ERROR


def _describe(error: Exception, args: argparse.Namespace) -> str:
    from .engine.errors import ModelError

    if isinstance(error, (ModelError, _Reported)):
        return str(error)  # already starts with the file name
    if isinstance(error, OSError):
        where = error.filename if error.filename is not None else getattr(args, "model", "")
        return f"{where}: {error.strerror or error}"
    where = getattr(args, "model", None)
    prefix = f"{where}: " if where else ""
    text = str(error).strip()
    detail = f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
    return f"{prefix}internal error ({detail}); rerun with --debug for the traceback"


def _error(message: str) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    print(f"{PROG}: error: {first_line}", file=sys.stderr)


def _write(stream: TextIO, text: str) -> None:
    stream.write(text)
    stream.flush()


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
