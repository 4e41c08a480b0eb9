"""The fuzzing harness shared by tests/robustness/test_fuzz.py and benchmarks/fuzz.py.

Three kinds of cases, each run through the entry point a user meets:

- valid graphs drawn at random (Conv 1-3-D, ConvTranspose, MatMul, Gemm, pooling, element-wise
  with broadcasting, Concat, Reshape, Slice, Resize, LSTM, Einsum; zero-size, symbolic and huge
  dims), each with its cost worked out here from docs/counting.md, independently of the engine;
- mutated ONNX files: bytes (bit flips, truncations, splices...), the protobuf wire format
  (any varint, string or sub-message) and ONNX fields (negative or huge dims, wrong dtypes,
  non-UTF-8 names, inputs that are not tensors, cycles, opsets...), under and over the 4 MB
  above which the engine memory-maps the file and walks the wire format itself;
- mutated budget files (`load_budget`, i.e. `parse_budget` after UTF-8 decoding) and shard
  report JSON (`maccbudget merge`).

`maccbudget profile` and `maccbudget merge` run as `pytest_maccbudget.cli.main([...])` in a worker
process (each profile forks its own profiling child, as the command does); the worker has a time
limit, so a crash or a hang of the worker is an outcome too. Generators take a `Draw` (hypothesis
in the tests, a seeded `random.Random` in the benchmark), so every case is reproducible.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import multiprocessing
import os
import random
import re
import shutil
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Protocol, Sequence, TypeVar, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

T = TypeVar("T")

# --- outcomes -------------------------------------------------------------------------------

OK = "ok"
CLEAN = "clean error"
WRONG = "wrong output"      # ran, but broke an invariant or a closed form, or an error line without the file
INTERNAL = "internal error"  # "internal error", a traceback, an unexpected exit code or exception
CRASH = "crash"              # the process the user runs died of a signal
HANG = "hang"                # over the time limit
HARNESS = "harness error"    # the harness could not build the case (a bug here, not in the product)
OUTCOMES = (OK, CLEAN, WRONG, INTERNAL, CRASH, HANG)
FINDINGS = (WRONG, INTERNAL, CRASH, HANG)

# entry points
PROFILE = "maccbudget profile"
MERGE = "maccbudget merge"
BUDGET = "load_budget"

MODEL_FILE = "model.onnx"
BUDGET_FILE = "macc_budget.yaml"
SHARD_FILES = ("shard-1.json", "shard-2.json")


@dataclass(frozen=True)
class Case:
    """One input and the entry point it goes through. `files` are written into a fresh directory."""

    family: str
    label: str                           # how it was made (seed file, mutations)
    entry: str                           # PROFILE, MERGE or BUDGET
    files: tuple[tuple[str, bytes], ...]
    args: tuple[str, ...] = ()           # extra `maccbudget profile` arguments
    expected: Optional["ExpectedProfile"] = None  # valid graphs: the closed forms


@dataclass(frozen=True)
class CaseRef:
    """A case by its place in a run (built where it runs, see make_case)."""

    family: str
    seed: int
    index: int


@dataclass(frozen=True)
class Result:
    outcome: str
    detail: str = ""                      # the error line, or what is wrong
    profile: Optional[dict[str, Any]] = None  # `--format json` output of an ok profile
    seconds: float = 0.0
    case: Optional[Case] = None           # the case, sent back when it is a finding (to save a reproducer)
    label: str = ""


def is_finding(outcome: str) -> bool:
    return outcome in FINDINGS


@dataclass(frozen=True)
class Limits:
    profile_timeout_s: float = 8.0     # `maccbudget profile --timeout`: a contained hang is a clean error
    memory: str = "3GB"                # `maccbudget profile --memory-limit` (the default 16 GiB is more than CI has)
    case_timeout_s: float = 40.0       # the worker's own limit: beyond it, the case hangs

    def profile_args(self) -> tuple[str, ...]:
        return ("--timeout", f"{self.profile_timeout_s:g}", "--memory-limit", self.memory)


# --- running one case (in the worker process) --------------------------------------------------


def execute(case: Case, limits: Limits) -> Result:
    """Write the case's files into a fresh directory, run its entry point, classify the outcome."""
    started = time.perf_counter()
    directory = Path(tempfile.mkdtemp(prefix="maccbudget-fuzz-"))
    try:
        for name, data in case.files:
            (directory / name).write_bytes(data)
        result = _ENTRIES[case.entry](case, directory, limits)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return replace(result, seconds=time.perf_counter() - started)


def call_cli(argv: Sequence[str]) -> tuple[Optional[int], str, str]:
    """`maccbudget ARGV` in this process: (exit code or None when it raised, stdout, stderr)."""
    from pytest_maccbudget.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: Optional[int] = main(list(argv))
        except BaseException:  # noqa: BLE001  (anything escaping main is what we look for)
            err.write(traceback.format_exc())
            code = None
    return code, out.getvalue(), err.getvalue()


def _error_line_problem(code: Optional[int], err: str, ok_codes: Sequence[int]) -> Optional[tuple[str, str]]:
    """(outcome, detail) when the run is not ok and not a one-line error; None otherwise."""
    lines = [line for line in err.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if code is None or "Traceback (most recent call last)" in err:
        return INTERNAL, f"exception escaped main: {_last_line(err)}"
    if "internal error" in err:
        return INTERNAL, next(line for line in lines if "internal error" in line)
    if code in ok_codes:
        return None
    if code != 2:
        return INTERNAL, f"exit code {code}: {first}"
    if len(lines) != 1 or not first.startswith("maccbudget: error: "):
        return WRONG, f"exit 2 without one error line: {' | '.join(lines)[:300]}"
    return None


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _run_profile(case: Case, directory: Path, limits: Limits) -> Result:
    path = directory / MODEL_FILE
    code, out, err = call_cli(["profile", str(path), *case.args, *limits.profile_args()])
    problem = _error_line_problem(code, err, ok_codes=(0, 1) if "--strict" in case.args else (0,))
    if problem is not None:
        return Result(problem[0], problem[1].replace(str(directory) + os.sep, ""))
    if code == 2:
        line = err.strip().replace(str(directory) + os.sep, "")
        if case.expected is not None:
            return Result(WRONG, f"a valid graph was refused: {line}")
        if not err.strip().startswith(f"maccbudget: error: {path}: "):
            return Result(WRONG, f"the error line does not start with the file: {line}")
        return Result(CLEAN, line)
    if "--format" in case.args and case.args[case.args.index("--format") + 1] == "json":
        return _check_json_profile(out, case)
    return Result(OK) if out.strip() else Result(WRONG, "exit 0 and nothing printed")


def _check_json_profile(out: str, case: Case) -> Result:
    try:
        profile = json.loads(out)
    except ValueError as error:
        return Result(WRONG, f"--format json printed no JSON object: {error}")
    problems = profile_invariant_problems(profile)
    if case.expected is not None:
        problems += closed_form_problems(profile, case.expected)
    return Result(WRONG, "; ".join(problems), profile) if problems else Result(OK, "", profile)


def _run_merge(case: Case, directory: Path, limits: Limits) -> Result:
    shards = [str(directory / name) for name, _ in case.files if name.endswith(".json")]
    merged = directory / "merged.json"
    argv = ["merge", *shards, "--budget", str(directory / BUDGET_FILE), "--json", str(merged),
            "--report", str(directory / "merged.md")]
    code, out, err = call_cli(argv)
    problem = _error_line_problem(code, err, ok_codes=(0, 1))
    if problem is not None:
        return Result(problem[0], problem[1].replace(str(directory) + os.sep, ""))
    if code == 2:
        return Result(CLEAN, err.strip().replace(str(directory) + os.sep, ""))
    return _check_merged_report(merged)


def _check_merged_report(merged: Path) -> Result:
    """A merge that succeeded must have written a report that merge itself reads back."""
    from pytest_maccbudget.pr_report import load_report

    try:
        load_report(merged.read_text(encoding="utf-8"), str(merged))
    except (OSError, ValueError) as error:
        return Result(WRONG, f"the merged report does not load back: {error}")
    return Result(OK)


def _run_budget(case: Case, directory: Path, limits: Limits) -> Result:
    """`load_budget`, then what a session does with what it loaded: each model compared with a
    measurement and shown in the summary table, the budget updated and written, and the written
    text read again (an update must never write a file the next run refuses)."""
    from pytest_maccbudget.budget import BudgetError, load_budget

    path = directory / BUDGET_FILE
    try:
        budget = load_budget(path)
    except BudgetError as error:
        text = str(error)
        if not text.startswith(f"{path}:{error.line}: ") or len(text.splitlines()) != 1:
            return Result(WRONG, f"the BudgetError does not name the file and line in one line: {text[:300]!r}")
        if error.key is None and not error.message.startswith(_KEYLESS_BUDGET_ERRORS):
            return Result(WRONG, f"the BudgetError does not name the key: {text[:300]!r}")
        return Result(CLEAN, text.replace(str(directory) + os.sep, ""))
    except BaseException as error:  # noqa: BLE001
        return Result(INTERNAL, f"{type(error).__name__}: {_first_line(str(error))}")
    problems = budget_invariant_problems(budget)
    if problems:
        return Result(WRONG, "; ".join(problems))
    try:
        problems = use_budget(budget)
    except BaseException as error:  # noqa: BLE001  (a file that loads but breaks the session)
        return Result(INTERNAL, f"{type(error).__name__} after the file loaded, {escaped_from(error)}: "
                                f"{_first_line(str(error))}")
    return Result(WRONG, "; ".join(problems)) if problems else Result(OK)


def escaped_from(error: BaseException) -> str:
    """'from pytest_maccbudget/PATH:FUNCTION': the project's innermost frame the exception went through."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [frame for frame in frames if f"{os.sep}pytest_maccbudget{os.sep}" in frame.filename]
    frame = (ours or frames)[-1]
    path = frame.filename[frame.filename.rfind(f"{os.sep}pytest_maccbudget{os.sep}") + 1:].replace(os.sep, "/")
    return f"from {path}:{frame.name}"


# what a BudgetError about the file as a whole (not about one key) starts with
_KEYLESS_BUDGET_ERRORS = ("invalid YAML", "not UTF-8", "expected the budget file to be", "keys must be text",
                          "cannot read the budget file", "unknown key ''", "duplicate key ''")  # an empty key names itself


def use_budget(budget: Any) -> list[str]:
    """Compare every model of a loaded budget with a measurement (its own figures, one model a
    tenth over), render the summary table, record the measurements, write the file and read
    it again. Returns what is wrong with the written file; raises what escapes."""
    from pytest_maccbudget.budget import (
        BudgetError, Measurement, compare, display_path, dump_budget, parse_budget, update_budget,
    )
    from pytest_maccbudget.device_estimates import DeviceSpecError, resolve_devices
    from pytest_maccbudget.terminal_summary import model_table

    measurements = []
    for index, (name, entry) in enumerate(sorted(budget.models.items())):
        total = {metric: value + (value // 10 if index == 0 else 0) for metric, value in entry.total.items()}
        inputs = entry.inputs or {"x": [1, 3, 8, 8]}
        measurements.append(Measurement(name=name, nodeid=f"tests/test_models.py::test_{index}", inputs=inputs,
                                        total=total, layers=dict(entry.layers)))
    comparisons = [compare(budget, measured) for measured in measurements]
    model_table(comparisons)
    for name in budget.custom_devices:  # read when a test names the profile
        try:
            resolve_devices([name], budget, budget.path.parent, "macc_budget_devices")
        except DeviceSpecError as error:
            if f"{display_path(budget.path)}:" not in str(error) or len(str(error).splitlines()) != 1:
                return [f"a device profile error does not name the file and line in one line: {str(error)[:300]!r}"]
    updated, _ = update_budget(budget, measurements)
    text = dump_budget(updated)
    try:
        again = parse_budget(text, budget.path)
    except BudgetError as error:
        return [f"the updated file is refused when read again: {error}"]
    lost = sorted(name for name in updated.models if name not in again.models)
    return [f"models lost by writing and reading the updated file: {lost[:3]}"] if lost else []


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:300]


_ENTRIES: dict[str, Callable[[Case, Path, Limits], Result]] = {
    PROFILE: _run_profile, MERGE: _run_merge, BUDGET: _run_budget,
}


# --- invariants of any profile and any budget ---------------------------------------------------

_COUNT_FIELDS = ("macs", "flops", "params", "param_bytes", "output_bytes", "bytes_read", "bytes_written")
_TOTAL_FIELDS = ("macs", "flops", "params", "param_bytes", "peak_activation_bytes", "activation_bytes",
                 "bytes_read", "bytes_written", "memory_traffic_bytes")
_NOT_COUNTED = ("unknown", "unresolved")


def profile_invariant_problems(profile: Mapping[str, Any]) -> list[str]:
    """What a `--format json` profile of any graph breaks: counts never negative, totals the sum
    of the layers, unknown never reported as a number, peak >= every tensor live at a step."""
    layers = profile["layers"]
    runtime = [layer for layer in layers if layer["status"] != "constant"]
    problems = _negative_counts(profile)
    for metric in ("macs", "flops"):
        counted = sum(layer[metric] for layer in runtime if layer[metric] is not None)
        if profile["total"][metric] != counted:
            problems.append(f"total {metric} {profile['total'][metric]} != sum of the layers {counted}")
    for metric in ("params", "param_bytes"):
        if profile["total"][metric] != sum(layer[metric] for layer in layers):
            problems.append(f"total {metric} is not the sum of the layers")
    problems += _unknown_problems(profile, runtime)
    problems += _peak_problems(profile, runtime)
    return problems


def _negative_counts(profile: Mapping[str, Any]) -> list[str]:
    problems = [f"total {key} = {profile['total'][key]}" for key in _TOTAL_FIELDS
                if isinstance(profile["total"].get(key), int) and profile["total"][key] < 0]
    problems += [f"layer {layer['name']!r} {key} = {layer[key]}" for layer in profile["layers"]
                 for key in _COUNT_FIELDS if isinstance(layer.get(key), int) and layer[key] < 0]
    return [f"negative count: {text}" for text in problems[:3]]


def _unknown_problems(profile: Mapping[str, Any], runtime: Sequence[Mapping[str, Any]]) -> list[str]:
    problems = []
    for layer in profile["layers"]:
        not_counted = layer["status"] in _NOT_COUNTED
        if not_counted and (layer["macs"] is not None or layer["flops"] is not None):
            problems.append(f"layer {layer['name']!r} is {layer['status']} but has counts {layer['macs']}/{layer['flops']}")
        if not not_counted and (layer["macs"] is None or layer["flops"] is None):
            problems.append(f"layer {layer['name']!r} is {layer['status']} but has no count")
    uncounted = [layer for layer in runtime if layer["status"] in _NOT_COUNTED]
    names = {layer["name"] for layer in profile["layers"]}
    listed = [entry for entry in profile["unknown"] if entry["name"] in names]  # also lists ops inside If/Loop bodies
    if bool(uncounted) != bool(profile["partial"]) or len(uncounted) != len(listed):
        problems.append(f"partial={profile['partial']} with {len(uncounted)} layers not counted and "
                        f"{len(profile['unknown'])} listed as unknown")
    return problems


def _peak_problems(profile: Mapping[str, Any], runtime: Sequence[Mapping[str, Any]]) -> list[str]:
    peak = profile["total"]["peak_activation_bytes"]
    buffers = [layer for layer in runtime if layer["status"] != "folded" and layer["op_type"] != "Dropout"]
    if peak is None:
        return []
    unknown = [layer["name"] for layer in buffers if layer["output_bytes"] is None]
    if unknown:
        return [f"peak activation memory {peak} while the size of {unknown[0]!r}'s output is unknown"]
    largest = max(buffers, key=lambda layer: layer["output_bytes"], default=None)
    if largest is not None and peak < largest["output_bytes"]:
        return [f"peak activation memory {peak} < {largest['output_bytes']} bytes written by {largest['name']!r}"]
    return []


def budget_invariant_problems(budget: Any) -> list[str]:
    """A budget file that loads holds only non-negative whole numbers and positive input dims."""
    problems = []
    for name, entry in budget.models.items():
        numbers = {**entry.total, **entry.limit, **{f"layers.{k}": v for k, v in entry.layers.items()}}
        problems += [f"models.{name}.{key} = {value!r}" for key, value in numbers.items()
                     if not isinstance(value, int) or isinstance(value, bool) or value < 0]
        for input_name, dims in (entry.inputs or {}).items():
            if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
                problems.append(f"models.{name}.inputs.{input_name} = {dims!r}")
    return problems[:3]


# --- the worker process ---------------------------------------------------------------------------


class CaseRunner:
    """Runs cases one at a time in a worker process under `limits.case_timeout_s`. A worker that
    dies (a crash) or overruns (a hang) is replaced for the next case."""

    def __init__(self, limits: Limits = Limits(), start_method: str = "fork") -> None:
        self.limits = limits
        self.context = multiprocessing.get_context(start_method)
        self.process: Any = None
        self.connection: Optional[Connection] = None
        self.deadline = 0.0

    def run(self, case: Union[Case, CaseRef]) -> Result:
        self.submit(case)
        assert self.connection is not None
        if not self.connection.poll(self.limits.case_timeout_s):
            return self.expire()
        return self.result()

    def submit(self, case: Union[Case, CaseRef]) -> None:
        if self.process is None or not self.process.is_alive():
            self._start()
        assert self.connection is not None
        self.deadline = time.monotonic() + self.limits.case_timeout_s
        self.connection.send(case)

    def result(self) -> Result:
        """The answer to the submitted case (the connection is readable, or the worker died)."""
        assert self.connection is not None
        try:
            return self.connection.recv()
        except (EOFError, OSError):
            self.process.join(timeout=10)
            code = self.process.exitcode
            self.close()
            name = signal.Signals(-code).name if code is not None and code < 0 else f"exit code {code}"
            return Result(CRASH, f"the process running the entry point died: {name}")

    def expire(self) -> Result:
        self.close()
        return Result(HANG, f"no answer within {self.limits.case_timeout_s:g} s", seconds=self.limits.case_timeout_s)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        if self.process is not None:
            if self.process.is_alive():
                _kill_group(self.process.pid)
            self.process.join(timeout=10)
        self.process = self.connection = None

    def _start(self) -> None:
        self.close()
        parent_end, child_end = self.context.Pipe()
        # not a daemon: a daemon may not start processes, and each profile starts one
        self.process = self.context.Process(target=_serve, args=(child_end, parent_end, self.limits),
                                            name="maccbudget fuzz worker")
        self.process.start()
        child_end.close()
        self.connection = parent_end


def _kill_group(pid: int) -> None:
    """The worker and the profiling child it forked (in the worker's own process group)."""
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def _serve(connection: Connection, parent_end: Connection, limits: Limits) -> None:
    parent_end.close()  # the parent's end, inherited: closed, so that the parent going away ends this loop
    os.setpgid(0, 0)  # its own process group: a hang is killed with every child it started
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import pytest_maccbudget.engine.profile  # noqa: F401  (imported once: each profile forks from here)

    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return
        connection.send(run_request(request, limits))


def run_request(request: Union[Case, CaseRef], limits: Limits) -> Result:
    """Build the case if given by reference, run it; the case goes back with a finding."""
    try:
        case = request if isinstance(request, Case) else make_case(request.family, request.seed, request.index)
    except Exception as error:  # noqa: BLE001  (a bug of the harness, reported as such)
        return Result(HARNESS, f"{type(error).__name__}: {error}")
    result = execute(case, limits)
    return replace(result, label=case.label, case=case if is_finding(result.outcome) else None)


# --- where random choices come from ---------------------------------------------------------------


class Draw(Protocol):
    def integer(self, low: int, high: int) -> int: ...
    def choice(self, options: Sequence[T]) -> T: ...
    def boolean(self, chance: float = 0.5) -> bool: ...


class RandomDraw:
    """Choices from a seeded random.Random, biased like hypothesis towards the ends of a range
    and, for wide ranges, towards small values (a 2^40 range is drawn log-uniformly)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        if high <= low:
            return low
        if self.rng.random() < 0.1:
            return self.rng.choice((low, high))
        if high - low > 64:
            return min(high, low + self.rng.randint(0, 2 ** self.rng.randint(0, (high - low).bit_length())))
        return self.rng.randint(low, high)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def boolean(self, chance: float = 0.5) -> bool:
        return self.rng.random() < chance


class HypothesisDraw:
    """The same choices from hypothesis' `draw` (so failing examples shrink)."""

    def __init__(self, draw: Callable[[Any], Any]) -> None:
        self.draw = draw

    def integer(self, low: int, high: int) -> int:
        from hypothesis import strategies as st

        return self.draw(st.integers(low, max(low, high)))

    def choice(self, options: Sequence[T]) -> T:
        from hypothesis import strategies as st

        return self.draw(st.sampled_from(list(options)))

    def boolean(self, chance: float = 0.5) -> bool:
        from hypothesis import strategies as st

        return self.draw(st.booleans())


# --- valid graphs and their closed forms (docs/counting.md) ---------------------------------------

Dim = Union[int, str]           # a declared dim: a size or a symbol
Known = Optional[int]            # a resolved dim: None when the engine cannot know it
HUGE = 2**40
MAX_ELEMENTS = 2**56  # onnx's shape arithmetic is int64: larger tensors are left unknown, not counted
FLOAT_BYTES = 4
MAX_WEIGHT_ELEMENTS = 4096


@dataclass(frozen=True)
class ExpectedLayer:
    name: str
    op_type: str
    status: str                  # costed, free or unresolved
    macs: Known
    flops: Known
    output_bytes: Known
    params: int = 0


@dataclass(frozen=True)
class ExpectedProfile:
    layers: tuple[ExpectedLayer, ...]
    peak: Known                  # peak activation bytes
    description: str = ""


def product(values: Sequence[Known]) -> Known:
    """The product, None when any factor is unknown (a zero does not make it known)."""
    return None if any(v is None for v in values) else math.prod(values)  # type: ignore[arg-type]


def nbytes(dims: Optional[Sequence[Known]]) -> Known:
    count = None if dims is None else product(dims)
    return None if count is None else count * FLOAT_BYTES


def dot_flops(macs: Known, outputs: Known) -> Known:
    """K multiplies and K - 1 adds per output: 2 x MACs - outputs; an empty dot (K = 0) costs 0."""
    if macs is None or outputs is None:
        return None
    return 0 if macs == 0 else 2 * macs - outputs


def add_known(*values: Known) -> Known:
    return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]


BATCH_NAME = re.compile(r"^(n|b|bs)$|batch", re.IGNORECASE)  # docs/counting.md: batch, N, B, bs, batch_size...
SEQUENCE_NAME = re.compile(r"^(s|t)$|seq|time|length", re.IGNORECASE)  # docs/counting.md: seq, time, length, S, T


class Symbols:
    """The symbolic dims of one graph: some get a value on the command line (`--input SYM=V`),
    the others are unknown, except an input's batch dim, which the engine takes as 1
    (docs/counting.md, "Shapes"): the dims named like a batch, else the leading dim of an input
    of rank 2 or more that is symbolic, declared 0 or 1; of an input with no such dim, its
    leading dim."""

    def __init__(self, draw: Draw) -> None:
        self.draw = draw
        self.values: dict[str, int] = {}
        self.names: list[str] = []

    def dim(self, size: int, name: str, allow: bool = True) -> Dim:
        """`size`, or (sometimes) a symbol named `name` that is given `size` or left unknown."""
        if not allow or size <= 0 or not self.draw.boolean(0.25):
            return size
        if name not in self.names:
            self.names.append(name)
            if self.draw.boolean(0.6):
                self.values[name] = size
        return name

    def resolve(self, dims: Sequence[Dim]) -> tuple[Known, ...]:
        batch = [position for position, dim in enumerate(dims) if isinstance(dim, str) and BATCH_NAME.search(dim)]
        if not batch and len(dims) >= 3 and isinstance(dims[0], str) and SEQUENCE_NAME.search(dims[0]):
            # sequence first: the leading dim is not the batch when dim 1 has no size and no name
            batch = [1] if dims[1] == 0 else []
        if not batch and len(dims) >= 2 and dims[0] not in self.values and (isinstance(dims[0], str) or dims[0] in (0, 1)):
            batch = [0]  # (a leading symbol given a value is a size)
        return tuple(self._resolve_one(dim, position in batch or (position == 0 and not batch))
                     for position, dim in enumerate(dims))

    def _resolve_one(self, dim: Dim, taken_as_one: bool) -> Known:
        if isinstance(dim, int) and dim > 0:
            return dim
        if isinstance(dim, str) and dim in self.values:
            return self.values[dim]
        if taken_as_one:
            return 1  # a symbolic batch with no value, or a declared 0 where a batch dim would be
        return 0 if isinstance(dim, int) else None  # a declared 0 elsewhere is a zero-size dim

    def args(self) -> tuple[str, ...]:
        return tuple(arg for name, value in sorted(self.values.items()) for arg in ("--input", f"{name}={value}"))


def draw_size(draw: Draw, low: int = 1, high: int = 8, zero: float = 0.08, huge: float = 0.04) -> int:
    """A dim: usually small, sometimes zero-size, sometimes huge (up to 2^40)."""
    if zero and draw.boolean(zero):
        return 0
    if huge and draw.boolean(huge):
        return draw.choice((HUGE, draw.integer(4097, HUGE)))
    return draw.integer(low, high)


class Redraw(Exception):
    """A drawn graph the closed forms do not cover: draw again."""


class TooLarge(Redraw):
    """A drawn input has more elements than int64 shape arithmetic can hold."""


class ZeroReadAsBatch(Redraw):
    """A drawn input declares 0 where the engine reads a batch dim (docs/counting.md, "Shapes"):
    counted with 1, which breaks the graph where that dim must match another operand's."""


class GraphBuilder:
    """One op (and sometimes a Relu in front of its first input), with what the profile of the
    graph must say: the layers' closed forms and the peak activation memory by liveness."""

    def __init__(self, draw: Draw, opset: int = 21) -> None:
        self.draw = draw
        self.symbols = Symbols(draw)
        self.opset = opset
        self.lead_relu = draw.boolean(0.25)
        self.graph_inputs: list[onnx.ValueInfoProto] = []
        self.resolved: dict[str, tuple[Known, ...]] = {}   # activation name -> resolved dims
        self.initializers: list[TensorProto] = []
        self.nodes: list[onnx.NodeProto] = []
        self.layers: list[ExpectedLayer] = []
        self.steps: list[tuple[str, list[str], dict[str, Known]]] = []  # (op, activation inputs, outputs)
        self.input_bytes: dict[str, Known] = {}

    def activation(self, name: str, dims: Sequence[Dim]) -> str:
        """A graph input; the first one passes through a Relu when `lead_relu`."""
        self.graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims)))
        resolved = self.symbols.resolve(dims)
        if math.prod(d for d in dims if isinstance(d, int)) > MAX_ELEMENTS:
            raise TooLarge(name)
        if any(declared == 0 and known == 1 for declared, known in zip(dims, resolved)):
            raise ZeroReadAsBatch(name)
        self.input_bytes[name] = nbytes(resolved)
        self.resolved[name] = resolved
        if not self.lead_relu or self.nodes:
            return name
        activated = f"{name}_act"
        self.nodes.append(helper.make_node("Relu", [name], [activated], name="act"))
        flops = product(resolved)
        self.layers.append(ExpectedLayer("act", "Relu", "costed" if flops is not None else "unresolved",
                                         0 if flops is not None else None, flops, nbytes(resolved)))
        self.steps.append(("Relu", [name], {activated: nbytes(resolved)}))
        self.resolved[activated] = resolved
        return activated

    def declared_dims(self) -> list[list[Dim]]:
        return [[d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in self.graph_inputs]

    def weight(self, name: str, shape: Sequence[int]) -> str:
        self.initializers.append(numpy_helper.from_array(np.zeros(shape, np.float32), name))
        return name

    def constant(self, name: str, values: Sequence[Union[int, float]], dtype: Any = np.int64) -> str:
        self.initializers.append(numpy_helper.from_array(np.array(values, dtype), name))
        return name

    def op(self, node: onnx.NodeProto, outputs: Mapping[str, Optional[Sequence[Known]]], status: Union[str, tuple[str, ...]],
           macs: Known, flops: Known, params: int = 0, description: str = "") -> Case:
        """The op node, its expected layer, and the finished case."""
        output_bytes = {name: (None if dims is None else nbytes(dims)) for name, dims in outputs.items()}
        total_bytes = add_known(*output_bytes.values())
        if macs is None or flops is None:
            status, macs, flops = "unresolved", None, None
        self.nodes.append(node)
        self.layers.append(ExpectedLayer("op", node.op_type, status if isinstance(status, str) else "|".join(status),
                                         macs, flops, total_bytes, params))
        activations = [name for name in node.input if name in self.resolved]
        self.steps.append((node.op_type, activations, output_bytes))
        peak = expected_peak(self.steps, self.input_bytes, set(outputs))
        expected = ExpectedProfile(tuple(self.layers), peak, description)
        return Case("valid-graph", f"{node.op_type}: {description}", PROFILE, ((MODEL_FILE, self.model_bytes(outputs)),),
                    ("--format", "json", *self.symbols.args()), expected)

    def model_bytes(self, outputs: Mapping[str, Any]) -> bytes:
        graph = helper.make_graph(self.nodes, "fuzz", self.graph_inputs,
                                  [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
                                  self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)], ir_version=10)
        return model.SerializeToString()


_ALIAS_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}


def expected_peak(steps: Sequence[tuple[str, list[str], Mapping[str, Known]]], graph_inputs: Mapping[str, Known],
                  graph_outputs: set[str]) -> Known:
    """Peak live bytes by the rules of docs/counting.md ("Memory"), written independently: a
    tensor lives from its producer (graph inputs: from the start) to its last reader (graph
    outputs: to the end); reshape-like outputs share their input's buffer; the producers of a
    Concat's inputs (not graph inputs) write into its output's buffer."""
    owner: dict[str, str] = {name: name for name in graph_inputs}
    size: dict[str, Known] = dict(graph_inputs)
    born: dict[str, int] = {name: 0 for name in graph_inputs}
    last: dict[str, int] = {name: 0 for name in graph_inputs}

    def root(name: str) -> str:
        while owner[name] != name:
            name = owner[name]
        return name

    for step, (op_type, inputs, outputs) in enumerate(steps):
        for name in inputs:
            last[name] = step
        for name, nbytes_ in outputs.items():
            owner[name], size[name], born[name], last[name] = name, nbytes_, step, step
        first_output = next(iter(outputs))
        if op_type in _ALIAS_OPS and inputs:
            owner[root(first_output)] = root(inputs[0])
        elif op_type == "Concat":
            for name in inputs:
                if name not in graph_inputs and root(name) != root(first_output):
                    owner[root(name)] = root(first_output)
    end = len(steps) - 1
    for name in graph_outputs:
        last[name] = end
    if any(value is None for value in size.values()):
        return None
    buffers: dict[str, tuple[int, int, int]] = {}
    for name in size:
        key = root(name)
        low, high, most = buffers.get(key, (born[name], last[name], 0))
        buffers[key] = (min(low, born[name]), max(high, last[name]), max(most, size[name]))  # type: ignore[type-var]
    return max((sum(nbytes_ for low, high, nbytes_ in buffers.values() if low <= step <= high)
                for step in range(len(steps))), default=0)


# Each generator: one valid graph around one op, and its closed form from docs/counting.md.


def _spatial_rank(draw: Draw) -> int:
    return draw.integer(1, 3)


def _conv_axis(draw: Draw, kernel: int, stride: int, dilation: int) -> tuple[int, int, int]:
    """(input size, pad begin, pad end) of one Conv axis whose output is not empty."""
    extent = (kernel - 1) * dilation + 1
    size = draw_size(draw, 1, 12, zero=0.05)
    pad_begin, pad_end = draw.integer(0, 3), draw.integer(0, 3)
    if size + pad_begin + pad_end < extent:
        pad_end = extent - size - pad_begin
    return size, pad_begin, pad_end


def conv_output_size(size: Known, kernel: int, stride: int, dilation: int, pads: tuple[int, int], auto_pad: str) -> Known:
    if size is None:
        return None
    extent = (kernel - 1) * dilation + 1
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return -(-size // stride)
    if auto_pad == "VALID":
        return (size - extent) // stride + 1
    return (size + pads[0] + pads[1] - extent) // stride + 1


def conv_case(draw: Draw) -> Case:
    """Conv 1-D/2-D/3-D. MACs = out x (Cin/g) x prod(kernel); FLOPs = 2 MACs - out (+ out with a bias)."""
    g = GraphBuilder(draw)
    rank = _spatial_rank(draw)
    group = draw.choice((1, 1, 2, 3))
    in_per_group, out_per_group = draw_size(draw, 1, 4, huge=0), draw_size(draw, 1, 4, huge=0)
    kernel = [draw.integer(1, 4) for _ in range(rank)]
    strides = [draw.integer(1, 3) for _ in range(rank)]
    dilations = [draw.integer(1, 3) for _ in range(rank)]
    axes = [_conv_axis(draw, k, s, d) for k, s, d in zip(kernel, strides, dilations)]
    auto_pad = draw.choice(("NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"))
    if auto_pad == "VALID" and any(size < (k - 1) * d + 1 for (size, _, _), k, d in zip(axes, kernel, dilations)):
        auto_pad = "NOTSET"
    if auto_pad.startswith("SAME") and any(size == 0 for size, _, _ in axes):
        auto_pad = "NOTSET"  # onnx infers 1, not ceil(0 / stride) = 0, for an empty axis (docs/robustness.md)
    batch = draw_size(draw, 1, 3)
    x_dims = [g.symbols.dim(batch, "n"), g.symbols.dim(group * in_per_group, "c"),
              *[g.symbols.dim(size, f"d{axis}") for axis, (size, _, _) in enumerate(axes)]]
    x = g.activation("x", x_dims)
    cout = group * out_per_group
    w = g.weight("w", [cout, in_per_group, *kernel])
    bias = draw.boolean()
    inputs = [x, w] + ([g.weight("b", [cout])] if bias else [])
    attrs: dict[str, Any] = dict(strides=strides, dilations=dilations, group=group)
    if auto_pad == "NOTSET":
        attrs["pads"] = [a[1] for a in axes] + [a[2] for a in axes]
    else:
        attrs["auto_pad"] = auto_pad
    if draw.boolean(0.3):
        attrs["kernel_shape"] = kernel
    resolved = g.resolved[x]
    out = (resolved[0], cout, *[conv_output_size(resolved[2 + i], kernel[i], strides[i], dilations[i], axes[i][1:], auto_pad)
                                for i in range(rank)])
    outputs = product(out)
    macs = product([outputs, in_per_group, math.prod(kernel)])
    flops = add_known(dot_flops(macs, outputs), outputs if bias else 0)
    params = cout * in_per_group * math.prod(kernel) + (cout if bias else 0)
    node = helper.make_node("Conv", inputs, ["y"], name="op", **attrs)
    return g.op(node, {"y": out}, "costed", macs, flops, params, f"x {x_dims} w {[cout, in_per_group, *kernel]} {attrs}")


def transpose_touched(size: int, kernel: int, stride: int, dilation: int, pad_begin: int, out: int) -> int:
    """Output positions of one axis that receive a product: o + pad_begin = i s + j d (brute force)."""
    reached = {i * stride + j * dilation - pad_begin for i in range(size) for j in range(kernel)}
    return sum(1 for position in reached if 0 <= position < out)


def conv_transpose_case(draw: Draw) -> Case:
    """ConvTranspose, input-based: MACs = numel(X) x (Cout/g) x prod(kernel); FLOPs = MACs +
    (MACs - T) (+ out with a bias), T = outputs that receive at least one product."""
    g = GraphBuilder(draw)
    rank = _spatial_rank(draw)
    group = draw.choice((1, 1, 2))
    in_per_group, out_per_group = draw_size(draw, 1, 3, huge=0), draw_size(draw, 1, 3, huge=0)
    kernel = [draw.integer(1, 4) for _ in range(rank)]
    sizes = [draw_size(draw, 1, 10, zero=0) for _ in range(rank)]
    simple = [size > 4096 for size in sizes]  # a huge axis: stride 1, dilation 1 (T = out, no brute force)
    strides = [1 if simple[i] else draw.integer(1, 4) for i in range(rank)]
    dilations = [1 if simple[i] else draw.integer(1, 3) for i in range(rank)]
    output_padding = [0 if simple[i] else draw.integer(0, strides[i] - 1) for i in range(rank)]
    full = [strides[i] * (sizes[i] - 1) + output_padding[i] + (kernel[i] - 1) * dilations[i] + 1 for i in range(rank)]
    pads = [(draw.integer(0, min(2, full[i] // 2)), draw.integer(0, min(2, full[i] // 2))) for i in range(rank)]
    batch = draw_size(draw, 1, 3)
    x_dims = [g.symbols.dim(batch, "n"), g.symbols.dim(group * in_per_group, "c"),
              *[g.symbols.dim(size, f"d{axis}") for axis, size in enumerate(sizes)]]
    x = g.activation("x", x_dims)
    cout = group * out_per_group
    w = g.weight("w", [group * in_per_group, out_per_group, *kernel])
    bias = draw.boolean()
    attrs: dict[str, Any] = dict(strides=strides, dilations=dilations, group=group,
                                 pads=[p[0] for p in pads] + [p[1] for p in pads])
    if any(output_padding):
        attrs["output_padding"] = output_padding
    resolved = g.resolved[x]
    spatial = [None if resolved[2 + i] is None else full[i] - sum(pads[i]) for i in range(rank)]
    out = (resolved[0], cout, *spatial)
    outputs = product(out)
    macs = product([product(resolved), out_per_group, math.prod(kernel)])
    touched: Known = None
    if outputs is not None and macs is not None:
        per_axis = [spatial[i] if simple[i] else transpose_touched(sizes[i], kernel[i], strides[i], dilations[i],
                                                                    pads[i][0], spatial[i]) for i in range(rank)]
        touched = 0 if macs == 0 else resolved[0] * cout * math.prod(per_axis)  # type: ignore[operator]
    flops = None if macs is None or touched is None else macs + (macs - touched) + (outputs if bias else 0)
    inputs = [x, w] + ([g.weight("b", [cout])] if bias else [])
    params = group * in_per_group * out_per_group * math.prod(kernel) + (cout if bias else 0)
    node = helper.make_node("ConvTranspose", inputs, ["y"], name="op", **attrs)
    return g.op(node, {"y": out}, "costed", macs, flops, params, f"x {x_dims} w {[group * in_per_group, out_per_group, *kernel]} {attrs}")


def broadcast(shapes: Sequence[Sequence[Known]]) -> tuple[Known, ...]:
    """numpy broadcasting over resolved dims: a known dim other than 1 wins; a dim the engine
    cannot know stays unknown unless such a dim is there."""
    rank = max((len(shape) for shape in shapes), default=0)
    padded = [[1] * (rank - len(shape)) + list(shape) for shape in shapes]
    out: list[Known] = []
    for axis in range(rank):
        column = [shape[axis] for shape in padded]
        sized = [d for d in column if d is not None and d != 1]
        out.append(sized[0] if sized else (None if None in column else 1))
    return tuple(out)


def _broadcast_operand(draw: Draw, g: GraphBuilder, full: Sequence[int], symbol_prefix: str, rank: int) -> list[Dim]:
    """The last `rank` dims of `full`, each kept or set to 1, some as symbols."""
    dims: list[Dim] = []
    for axis in range(len(full) - rank, len(full)):
        size = full[axis] if draw.boolean(0.75) else 1
        dims.append(g.symbols.dim(size, f"{symbol_prefix}{axis}") if size == full[axis] else size)
    return dims


def matmul_case(draw: Draw) -> Case:
    """MatMul (numpy rules, batched and broadcast, 1-D operands): MACs = numel(Y) x K; FLOPs = 2 MACs - numel(Y)."""
    g = GraphBuilder(draw)
    rank_a, rank_b = draw.integer(1, 4), draw.integer(1, 4)
    m, k, n = draw_size(draw, 1, 6), draw_size(draw, 1, 6, huge=0.01), draw_size(draw, 1, 6)
    batch = [draw_size(draw, 1, 3, huge=0.01) for _ in range(max(rank_a, rank_b) - 2)]
    a_batch = _broadcast_operand(draw, g, batch, "b", max(rank_a - 2, 0))
    b_batch = [d if draw.boolean(0.75) else 1 for d in batch[len(batch) - max(rank_b - 2, 0):]]
    a_dims = [k] if rank_a == 1 else [*a_batch, g.symbols.dim(m, "m"), k]
    b_dims = [k] if rank_b == 1 else [*b_batch, k, n]
    a = g.activation("a", a_dims)
    b_is_weight = math.prod(b_dims) <= MAX_WEIGHT_ELEMENTS and draw.boolean()
    b = g.weight("b", b_dims) if b_is_weight else g.activation("b", b_dims)
    resolved_a = g.resolved[a]
    out_batch = broadcast([resolved_a[:-2] if rank_a > 1 else (), b_dims[:-2] if rank_b > 1 else ()])
    out = (*out_batch, *([resolved_a[-2]] if rank_a > 1 else []), *([n] if rank_b > 1 else []))
    outputs = product(out)
    macs = product([outputs, k])
    node = helper.make_node("MatMul", [a, b], ["y"], name="op")
    return g.op(node, {"y": out}, "costed", macs, dot_flops(macs, outputs), math.prod(b_dims) if b_is_weight else 0,
                f"{a_dims} x {b_dims}")


def gemm_case(draw: Draw) -> Case:
    """Gemm: MACs = M K N; FLOPs = (2K - 1) M N, + M N for C (beta != 0), + M N for alpha != 1,
    + M N for beta != 1 with C."""
    g = GraphBuilder(draw)
    m, k, n = draw_size(draw, 1, 8), draw_size(draw, 1, 8, huge=0), draw_size(draw, 1, 8, huge=0)
    trans_a, trans_b = draw.boolean(), draw.boolean()
    m_dim = m if trans_a else g.symbols.dim(m, "m")
    a_dims = [k, m_dim] if trans_a else [m_dim, k]
    a = g.activation("a", a_dims)
    b_dims = [n, k] if trans_b else [k, n]
    b_is_weight = n * k <= MAX_WEIGHT_ELEMENTS and draw.boolean()
    b = g.weight("b", b_dims) if b_is_weight else g.activation("b", b_dims)
    resolved_m = g.resolved[a][1 if trans_a else 0]
    c_form = draw.choice(("none", "[N]", "[1,N]", "[M,N]", "[M,1]", "[1]", "[]"))
    c_dims = {"none": None, "[N]": [n], "[1,N]": [1, n], "[M,N]": [m_dim, n], "[M,1]": [m_dim, 1], "[1]": [1], "[]": []}[c_form]
    inputs = [a, b]
    params = n * k if b_is_weight else 0
    if c_dims is not None:
        if "M" in c_form or not draw.boolean():
            inputs.append(g.activation("c", c_dims))
        else:
            inputs.append(g.weight("c", c_dims))
            params += math.prod(c_dims)
    alpha, beta = draw.choice((1.0, 1.0, 0.5, 2.0)), draw.choice((1.0, 1.0, 0.0, 0.5))
    out = (resolved_m, n)
    outputs = product(out)
    macs = product([resolved_m, k, n])
    with_c = c_dims is not None and beta != 0  # beta = 0: C takes no part (docs/counting.md says "beta != 1")
    extra = with_c + (alpha != 1) + (with_c and beta != 1)
    flops = add_known(dot_flops(macs, outputs), None if outputs is None else extra * outputs)
    node = helper.make_node("Gemm", inputs, ["y"], name="op", transA=int(trans_a), transB=int(trans_b), alpha=alpha, beta=beta)
    return g.op(node, {"y": out}, "costed", macs, flops, params,
                f"A {a_dims} B {b_dims} C {c_form} transA={int(trans_a)} transB={int(trans_b)} alpha={alpha} beta={beta}")


def pool_output_size(size: Known, kernel: int, stride: int, dilation: int, pads: tuple[int, int], ceil_mode: bool,
                     auto_pad: str) -> Known:
    if size is None:
        return None
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return -(-size // stride)
    extent = (kernel - 1) * dilation + 1
    if auto_pad == "VALID":
        return (size - extent) // stride + 1
    span = size + pads[0] + pads[1] - extent
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pads[0]:
        out -= 1  # the last window must start inside the input or its leading pad
    return out


_POOLS = {"MaxPool": 1, "AveragePool": 1, "LpPool": 3}
_GLOBAL_POOLS = {"GlobalMaxPool": 1, "GlobalAveragePool": 1, "GlobalLpPool": 3}


def pool_case(draw: Draw) -> Case:
    """Pooling: FLOPs = N x C x prod(out spatial) x K (LpPool 3x); global pools N x C x prod(in spatial)."""
    g = GraphBuilder(draw, opset=22)  # before opset 22, onnx's ceil_mode shapes keep a window that starts in the padding
    op_type = draw.choice(tuple(_POOLS) + tuple(_GLOBAL_POOLS))
    rank = _spatial_rank(draw)
    kernel = [draw.integer(1, 4) for _ in range(rank)]
    strides = [draw.integer(1, 3) for _ in range(rank)]
    dilations = [draw.integer(1, 2) if op_type != "LpPool" else 1 for _ in range(rank)]
    pads = [(draw.integer(0, k - 1), draw.integer(0, k - 1)) for k in kernel]
    sizes = [max(draw_size(draw, 1, 12, zero=0), (k - 1) * d + 1) for k, d in zip(kernel, dilations)]
    ceil_mode = op_type != "LpPool" and draw.boolean(0.3)
    auto_pad = "NOTSET" if ceil_mode else draw.choice(("NOTSET", "NOTSET", "SAME_UPPER", "VALID"))
    x_dims = [g.symbols.dim(draw_size(draw, 1, 3), "n"), g.symbols.dim(draw_size(draw, 1, 4), "c"),
              *[g.symbols.dim(size, f"d{axis}") for axis, size in enumerate(sizes)]]
    x = g.activation("x", x_dims)
    resolved = g.resolved[x]
    if op_type in _GLOBAL_POOLS:
        out = (resolved[0], resolved[1], *[1] * rank)
        flops = None if product(out) is None else product(resolved)
        flops = None if flops is None else flops * _GLOBAL_POOLS[op_type]
        node = helper.make_node(op_type, [x], ["y"], name="op")
        return g.op(node, {"y": out}, "costed", 0, flops, 0, f"x {x_dims}")
    attrs: dict[str, Any] = dict(kernel_shape=kernel, strides=strides)
    if auto_pad == "NOTSET":
        attrs["pads"] = [p[0] for p in pads] + [p[1] for p in pads]
    else:
        attrs["auto_pad"] = auto_pad
    if op_type != "LpPool":
        attrs["dilations"] = dilations
        attrs["ceil_mode"] = int(ceil_mode)
    out = (resolved[0], resolved[1], *[pool_output_size(resolved[2 + i], kernel[i], strides[i], dilations[i], pads[i],
                                                         ceil_mode, auto_pad) for i in range(rank)])
    flops = product([product(out), math.prod(kernel), _POOLS[op_type]])
    node = helper.make_node(op_type, [x], ["y"], name="op", **attrs)
    return g.op(node, {"y": out}, "costed", 0, flops, 0, f"x {x_dims} {attrs}")


# FLOPs per output element; "k-1" and "k" are the variadic rules (k inputs)
_UNARY = {"Relu": 1, "Sigmoid": 4, "Tanh": 5, "Abs": 1, "Exp": 1, "Sqrt": 1, "Erf": 1, "LeakyRelu": 2, "Softplus": 3,
          "HardSwish": 5, "Elu": 4, "Selu": 6, "HardSigmoid": 4, "Gelu": 5, "Mish": 9, "Softsign": 3, "Neg": 1}
_BINARY = {"Add": 1, "Sub": 1, "Mul": 1, "Div": 1, "Pow": 1}
_VARIADIC = ("Sum", "Max", "Min", "Mean")


def elementwise_case(draw: Draw) -> Case:
    """Element-wise ops count per output element after broadcasting: unary x its FLOPs, binary 1,
    Sum/Max/Min (k - 1), Mean k (0 for one input), Clip one per bound given."""
    g = GraphBuilder(draw, opset=21)
    op_type = draw.choice(tuple(_UNARY) + tuple(_BINARY) + _VARIADIC + ("Clip",))
    rank = draw.integer(0, 4)
    full = [draw_size(draw, 1, 5) for _ in range(rank)]
    arity = 1 if op_type in _UNARY or op_type == "Clip" else 2 if op_type in _BINARY else draw.integer(1, 4)
    names = []
    for index in range(arity):
        operand_rank = rank if index == 0 or not draw.boolean(0.3) else draw.integer(0, rank)
        dims = _broadcast_operand(draw, g, full, "e", operand_rank) if arity > 1 else \
            [g.symbols.dim(d, f"e{axis}") for axis, d in enumerate(full)]
        names.append(g.activation(f"x{index}", dims))
    out = broadcast([g.resolved[name] for name in names])
    per_element = _UNARY.get(op_type) or _BINARY.get(op_type, 0)
    inputs = list(names)
    if op_type in _VARIADIC:
        per_element = (arity - 1) if op_type != "Mean" else (arity if arity > 1 else 0)
    elif op_type == "Clip":
        bounds = draw.choice(((True, True), (True, False), (False, True), (False, False)))
        inputs += [g.constant("min", -1.0, np.float32) if bounds[0] else "", g.constant("max", 1.0, np.float32) if bounds[1] else ""]
        while inputs and inputs[-1] == "":
            inputs.pop()
        per_element = sum(bounds)
    outputs = product(out)
    flops = None if outputs is None else per_element * outputs
    node = helper.make_node(op_type, inputs, ["y"], name="op")
    status: tuple[str, ...] = ("costed", "free") if per_element == 0 else ("costed",)
    return g.op(node, {"y": out}, status, 0, flops, 0, f"inputs {g.declared_dims()}")


def concat_case(draw: Draw) -> Case:
    """Concat: free (0 MACs, 0 FLOPs); its producers write into its buffer, graph inputs are copied."""
    g = GraphBuilder(draw)
    rank = draw.integer(1, 4)
    axis = draw.integer(-rank, rank - 1)
    base = [draw_size(draw, 1, 5) for _ in range(rank)]
    base_dims = [d if a == axis % rank else g.symbols.dim(d, f"c{a}") for a, d in enumerate(base)]
    names = []
    for index in range(draw.integer(1, 4)):
        dims = list(base_dims)
        dims[axis % rank] = draw_size(draw, 0 if axis % rank else 1, 5)  # a 0 at dim 0 is read as a batch
        names.append(g.activation(f"x{index}", dims))
    resolved = [g.resolved[name] for name in names]
    out = list(resolved[0])
    out[axis % rank] = sum(shape[axis % rank] for shape in resolved)  # type: ignore[misc]
    node = helper.make_node("Concat", names, ["y"], name="op", axis=axis)
    return g.op(node, {"y": out}, "free", 0, 0, 0, f"{len(names)} inputs of {base_dims}, axis {axis}")


def _reshape_target(draw: Draw, dims: list[int]) -> list[int]:
    """Another shape with as many elements: adjacent dims merged, dims split, 1s added or dropped."""
    shape = list(dims)
    for _ in range(draw.integer(0, 3)):
        action = draw.choice(("merge", "split", "one", "drop"))
        if action == "merge" and len(shape) >= 2:
            at = draw.integer(0, len(shape) - 2)
            shape[at:at + 2] = [shape[at] * shape[at + 1]]
        elif action == "split" and shape:
            at = draw.integer(0, len(shape) - 1)
            divisors = [f for f in range(1, min(shape[at], 64) + 1) if shape[at] % f == 0] or [1]
            factor = draw.choice(divisors)
            shape[at:at + 1] = [factor, shape[at] // factor if factor else 0]
        elif action == "one":
            shape.insert(draw.integer(0, len(shape)), 1)
        elif action == "drop" and 1 in shape and len(shape) > 1:
            shape.remove(1)
    return shape


def reshape_case(draw: Draw) -> Case:
    """Reshape: free, and its output is its input's buffer (0 copies the input dim, -1 is inferred)."""
    g = GraphBuilder(draw)
    dims = [draw_size(draw, 1, 6, zero=0.03, huge=0.02) for _ in range(draw.integer(1, 4))]
    x_dims: list[Dim] = [g.symbols.dim(dims[0], "n"), *dims[1:]]
    x = g.activation("x", x_dims)
    resolved = [int(d) for d in g.resolved[x]]  # type: ignore[arg-type]  (position 0 always resolves)
    out = _reshape_target(draw, resolved)
    target = list(out)
    allow_zero = 0 in out  # a zero-size dim can then be written as 0 (otherwise 0 copies the input's dim)
    for position, size in enumerate(out):
        if not allow_zero and position < len(resolved) and resolved[position] == size and draw.boolean(0.3):
            target[position] = 0
    if not allow_zero and out and draw.boolean(0.4):
        target[draw.integer(0, len(out) - 1)] = -1
    shape = g.constant("shape", target)
    node = helper.make_node("Reshape", [x, shape], ["y"], name="op", **({"allowzero": 1} if allow_zero else {}))
    return g.op(node, {"y": out}, "free", 0, 0, 0, f"{x_dims} -> target {target}")


_INT64_MAX, _INT64_MIN = 2**63 - 1, -(2**63)


def _slice_bound(draw: Draw, size: int) -> int:
    return draw.choice((draw.integer(-2 * size - 2, 2 * size + 2), 0, size, -1, 2**62, -(2**62), _INT64_MAX, _INT64_MIN))


def slice_length(size: int, start: int, end: int, step: int) -> int:
    """ONNX Slice on one axis: negative bounds count from the end, then start is clamped to
    [0, size] ([0, size - 1] stepping backwards) and end to [0, size] ([-1, size - 1])."""
    if size == 0:
        return 0
    start, end = start + size if start < 0 else start, end + size if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), size), min(max(end, 0), size)
        return max(0, -(-(end - start) // step))
    start, end = min(max(start, 0), size - 1), min(max(end, -1), size - 1)
    return max(0, -(-(start - end) // -step))


def slice_case(draw: Draw) -> Case:
    """Slice: free (a copy); the output length of each sliced axis by the ONNX clamping rules."""
    g = GraphBuilder(draw, opset=13)
    dims = [draw_size(draw, 1, 10, zero=0.05, huge=0.03) for _ in range(draw.integer(1, 4))]
    x_dims: list[Dim] = [g.symbols.dim(dims[0], "n"), *dims[1:]]
    x = g.activation("x", x_dims)
    resolved = [int(d) for d in g.resolved[x]]  # type: ignore[arg-type]
    rank = len(resolved)
    chosen = [a for a in range(rank) if draw.boolean(0.6)] or [draw.integer(0, rank - 1)]
    axes = [a - rank if draw.boolean(0.3) else a for a in chosen]
    starts = [_slice_bound(draw, resolved[a]) for a in chosen]
    ends = [_slice_bound(draw, resolved[a]) for a in chosen]
    steps = [draw.choice((1, 1, 2, 3, -1, -2, 5)) for _ in chosen]
    with_axes = draw.boolean(0.8) or chosen != list(range(len(chosen)))
    with_steps = draw.boolean(0.7) or any(step != 1 for step in steps)
    inputs = [x, g.constant("starts", starts), g.constant("ends", ends)]
    if with_axes or with_steps:
        inputs.append(g.constant("axes", axes) if with_axes else "")
    if with_steps:
        inputs.append(g.constant("steps", steps))
    out = list(resolved)
    for a, start, end, step in zip(chosen, starts, ends, steps):
        out[a] = slice_length(resolved[a], start, end, step)
    node = helper.make_node("Slice", inputs, ["y"], name="op")
    return g.op(node, {"y": out}, "free", 0, 0, 0, f"{x_dims} starts {starts} ends {ends} axes {axes} steps {steps}")


_SCALES = (0.25, 0.5, 0.75, 1.0, 1.0, 1.5, 2.0, 3.0, 4.0)  # exact in float32: floor(size x scale) is exact
_TAPS = {"nearest": 0, "linear": 2, "cubic": 4}


def resize_taps(mode: str, size: int, out: int, antialias: bool) -> int:
    """Taps of one interpolated axis; antialias widens the filter of a shrinking axis."""
    if mode == "nearest" or not antialias or out >= size or out == 0:
        return _TAPS[mode]
    return 2 * -(-size // out) if mode == "linear" else 2 + 2 * -(-2 * size // out)


def interpolation_flops(taps: Sequence[int]) -> int:
    """Per output element, axis by axis innermost first: sum_j (T_1 ... T_(j-1)) x (2 T_j - 1)."""
    total, prefix = 0, 1
    for tap in taps:
        total += prefix * (2 * tap - 1)
        prefix *= tap
    return total


def resize_case(draw: Draw) -> Case:
    """Resize: FLOPs = output elements x the interpolation FLOPs over the axes whose size changes
    (linear 2 taps, cubic 4, nearest 0)."""
    g = GraphBuilder(draw, opset=19)
    rank = draw.integer(1, 3)
    mode = draw.choice(tuple(_TAPS))
    antialias = mode != "nearest" and draw.boolean(0.3)
    by_sizes = draw.boolean(0.4)
    sizes = [draw_size(draw, 1, 9, zero=0, huge=0.03 if by_sizes else 0) for _ in range(rank)]
    # no zero-size N or C: onnx's Resize inference leaves such a dim unknown
    x_dims = [g.symbols.dim(draw.integer(1, 2), "n"), g.symbols.dim(draw.integer(1, 3), "c"),
              *[g.symbols.dim(size, f"d{axis}") for axis, size in enumerate(sizes)]]
    x = g.activation("x", x_dims)
    spatial_in = g.resolved[x][2:]
    out_spatial: list[Known]
    if by_sizes:
        out_spatial = [draw.choice((size, size * 2, max(size // 2, 1), draw.integer(1, 12))) for size in sizes]
        inputs, how = [x, "", "", g.constant("sizes", out_spatial)], f"sizes {out_spatial}"
    else:
        scales = [draw.choice(_SCALES) for _ in range(rank)]
        out_spatial = [None if size is None else math.floor(size * scale) for size, scale in zip(spatial_in, scales)]
        inputs, how = [x, "", g.constant("scales", scales, np.float32)], f"scales {scales}"
    attrs: dict[str, Any] = dict(mode=mode, axes=list(range(2, 2 + rank)), coordinate_transformation_mode=draw.choice(
        ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "half_pixel_symmetric")))
    if antialias:
        attrs["antialias"] = 1
    out = (*g.resolved[x][:2], *out_spatial)
    flops: Known = None  # even nearest (a copy, 0) needs the input's shape: which axes change
    if None not in spatial_in and product(out) is not None:
        changed = [i for i in range(rank) if out_spatial[i] != spatial_in[i]]
        taps = [resize_taps(mode, spatial_in[i], out_spatial[i], antialias) for i in changed]  # type: ignore[arg-type]
        flops = 0 if mode == "nearest" else product(out) * interpolation_flops(taps)  # type: ignore[operator]
    node = helper.make_node("Resize", inputs, ["y"], name="op", **attrs)
    return g.op(node, {"y": out}, ("costed", "free") if mode == "nearest" else "costed", 0, flops, 0,
                f"x {x_dims} {how} {attrs}")


_RNN_ACTIVATIONS = {"Relu": 1, "Tanh": 5, "Sigmoid": 4, "Affine": 2, "LeakyRelu": 2, "ThresholdedRelu": 1,
                    "ScaledTanh": 7, "HardSigmoid": 4, "Elu": 4, "Softsign": 3, "Softplus": 3}
_LSTM_DEFAULT = ("Sigmoid", "Tanh", "Tanh")


def lstm_case(draw: Draw) -> Case:
    """LSTM: MACs = 4 (I + H) H S B D; FLOPs = S B H x per direction (4 (2 (I + H) - 1) + 8 bias
    + 6 peepholes + 4 state update + 8 clip + 3 f + g + h)."""
    g = GraphBuilder(draw, opset=14)
    seq, batch = draw_size(draw, 1, 6, huge=0.05), draw_size(draw, 1, 4)
    inputs_size, hidden = draw.integer(1, 12), draw.integer(1, 8)
    direction = draw.choice(("forward", "reverse", "bidirectional"))
    directions = 2 if direction == "bidirectional" else 1
    layout = draw.integer(0, 1)
    order = [(seq, "s"), (batch, "b")] if layout == 0 else [(batch, "b"), (seq, "s")]
    x_dims = [*[g.symbols.dim(size, name) for size, name in order], inputs_size]
    x = g.activation("x", x_dims)
    resolved = g.resolved[x]
    seq_r, batch_r = (resolved[0], resolved[1]) if layout == 0 else (resolved[1], resolved[0])
    with_bias, with_peepholes, with_clip = draw.boolean(), draw.boolean(0.3), draw.boolean(0.3)
    inputs = [x, g.weight("W", [directions, 4 * hidden, inputs_size]), g.weight("R", [directions, 4 * hidden, hidden])]
    params = directions * 4 * hidden * (inputs_size + hidden)
    if with_bias or with_peepholes:
        inputs.append(g.weight("B", [directions, 8 * hidden]) if with_bias else "")
        params += directions * 8 * hidden if with_bias else 0
    if with_peepholes:
        inputs += ["", "", "", g.weight("P", [directions, 3 * hidden])]
        params += directions * 3 * hidden
    attrs: dict[str, Any] = dict(hidden_size=hidden, direction=direction, layout=layout)
    activations = [_LSTM_DEFAULT] * directions
    if draw.boolean(0.4):
        activations = [tuple(draw.choice(tuple(_RNN_ACTIVATIONS)) for _ in range(3)) for _ in range(directions)]
        attrs["activations"] = [name for triple in activations for name in triple]
    if with_clip:
        attrs["clip"] = 3.0
    per_unit = sum(4 * (2 * (inputs_size + hidden) - 1) + 8 * with_bias + 6 * with_peepholes + 4 + 8 * with_clip
                   + 3 * _RNN_ACTIVATIONS[f] + _RNN_ACTIVATIONS[c] + _RNN_ACTIVATIONS[h] for f, c, h in activations)
    shapes = {"Y": [seq_r, directions, batch_r, hidden] if layout == 0 else [batch_r, seq_r, directions, hidden],
              "Y_h": [directions, batch_r, hidden] if layout == 0 else [batch_r, directions, hidden]}
    shapes["Y_c"] = shapes["Y_h"]
    wanted = [name for name in ("Y", "Y_h", "Y_c") if draw.boolean(0.7)] or ["Y"]
    node_outputs = [name if name in wanted else "" for name in ("Y", "Y_h", "Y_c")]
    while node_outputs[-1] == "":
        node_outputs.pop()
    steps = product([seq_r, batch_r])
    macs = product([steps, 4 * (inputs_size + hidden) * hidden * directions])
    flops = product([steps, hidden * per_unit])
    node = helper.make_node("LSTM", inputs, node_outputs, name="op", **attrs)
    return g.op(node, {name: shapes[name] for name in wanted}, "costed", macs, flops, params,
                f"x {x_dims} H={hidden} {attrs} bias={with_bias} peepholes={with_peepholes} outputs {wanted}")


def einsum_case(draw: Draw) -> Case:
    """Einsum: P = product of the extents of every label; with 2+ operands MACs = P and FLOPs =
    (operands - 1) P + (P - out); with one, MACs = 0 and FLOPs = P - out."""
    g = GraphBuilder(draw, opset=12)
    labels = "abcdef"[:draw.integer(1, 6)]
    extents = {label: draw_size(draw, 1, 4, zero=0.05, huge=0.02) for label in labels}
    operands = []
    for _ in range(draw.integer(1, 3)):
        chosen = [label for label in labels if draw.boolean(0.5)] or [draw.choice(labels)]
        order = sorted(chosen, key=lambda _: draw.integer(0, 9))
        if draw.boolean(0.1):
            order.append(draw.choice(order))  # a repeated label: a diagonal
        operands.append("".join(order))
    used = sorted(set("".join(operands)))
    if draw.boolean(0.7):
        output = "".join(label for label in sorted(used, key=lambda _: draw.integer(0, 9)) if draw.boolean(0.5))
        equation = f"{','.join(operands)}->{output}"
    else:
        counts = {label: "".join(operands).count(label) for label in used}
        output = "".join(label for label in used if counts[label] == 1)
        equation = ",".join(operands)
    names = [g.activation(f"x{index}", [extents[label] for label in operand]) for index, operand in enumerate(operands)]
    joint = math.prod(extents[label] for label in used)
    outputs = math.prod(extents[label] for label in output)
    adds = max(joint - outputs, 0)
    macs, flops = (joint, (len(operands) - 1) * joint + adds) if len(operands) > 1 else (0, adds)
    node = helper.make_node("Einsum", names, ["y"], name="op", equation=equation)
    return g.op(node, {"y": [extents[label] for label in output]}, "costed", macs, flops, 0,
                f"{equation} extents {extents}")


VALID_GENERATORS: dict[str, Callable[[Draw], Case]] = {
    "conv": conv_case, "conv_transpose": conv_transpose_case, "matmul": matmul_case, "gemm": gemm_case,
    "pool": pool_case, "elementwise": elementwise_case, "concat": concat_case, "reshape": reshape_case,
    "slice": slice_case, "resize": resize_case, "lstm": lstm_case, "einsum": einsum_case,
}


def closed_form_problems(profile: Mapping[str, Any], expected: ExpectedProfile) -> list[str]:
    """Where the profile differs from the closed forms: per layer status, MACs, FLOPs, output
    bytes and parameters, and the peak activation memory."""
    layers = {layer["name"]: layer for layer in profile["layers"]}
    problems = []
    for want in expected.layers:
        got = layers.get(want.name)
        if got is None:
            problems.append(f"no layer {want.name!r}")
            continue
        if got["status"] not in want.status.split("|"):
            problems.append(f"{want.name} status {got['status']} (expected {want.status}: {got['note']})")
        for key in ("macs", "flops", "output_bytes", "params"):
            if got[key] != getattr(want, key):
                unknown_as_zero = " (unknown reported as 0)" if getattr(want, key) is None and got[key] == 0 else ""
                problems.append(f"{want.name} {key} {got[key]} != closed form {getattr(want, key)}{unknown_as_zero}")
    peak = profile["total"]["peak_activation_bytes"]
    if peak != expected.peak:
        problems.append(f"peak activation bytes {peak} != by liveness {expected.peak}")
    return problems


def valid_graph_case(kind: str, draw: Draw) -> Case:
    for _ in range(50):
        try:
            case = VALID_GENERATORS[kind](draw)
        except Redraw:
            continue
        return replace(case, label=f"{kind}: {case.label}")
    raise Redraw(kind)


# --- ONNX seeds: the zoo graphs in the onnx wheel and small graphs built here -------------------


def zoo_paths() -> list[Path]:
    return sorted((Path(onnx.__file__).parent / "backend" / "test" / "data" / "light").glob("light_*.onnx"))


def _vi(name: str, dims: Optional[Sequence[Dim]], elem_type: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, None if dims is None else list(dims))


def _weights(**arrays: Sequence[int]) -> list[TensorProto]:
    rng = np.random.default_rng(0)
    return [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name) for name, shape in arrays.items()]


def _model(nodes: Sequence[onnx.NodeProto], inputs: Sequence[onnx.ValueInfoProto], outputs: Sequence[str],
           initializers: Sequence[TensorProto] = (), opset: int = 17, **extra: Any) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "seed", list(inputs), [_vi(name, None) for name in outputs], list(initializers))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra.pop("domains", {}).items()]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8, **extra)


def seed_convnet() -> onnx.ModelProto:
    """Conv -> BN -> Relu -> MaxPool -> grouped Conv -> residual Add -> pool -> Flatten -> Gemm -> Softmax."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s", "bb", "m", "v"], ["n1"], name="bn1"),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], group=2),
        helper.make_node("Add", ["c2", "p1"], ["a2"], name="add2"),
        helper.make_node("GlobalAveragePool", ["a2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax"),
    ]
    weights = _weights(w1=[8, 3, 3, 3], b1=[8], s=[8], bb=[8], m=[8], v=[8], w2=[8, 4, 3, 3], wf=[10, 8], bf=[10])
    return _model(nodes, [_vi("x", ["batch", 3, 16, 16])], ["probs"], weights)


def seed_lstm() -> onnx.ModelProto:
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "B"], ["y", "y_h"], name="lstm", hidden_size=8),
             helper.make_node("Squeeze", ["y_h", "axes"], ["h"], name="squeeze"),
             helper.make_node("MatMul", ["h", "proj"], ["out"], name="proj")]
    weights = _weights(W=[1, 32, 6], R=[1, 32, 8], B=[1, 64], proj=[8, 4])
    weights.append(numpy_helper.from_array(np.array([0], np.int64), "axes"))
    return _model(nodes, [_vi("x", ["seq", 2, 6])], ["y", "out"], weights)


def seed_control_flow() -> onnx.ModelProto:
    """If with two branches of different cost, and a Loop with a constant trip count."""
    def branch(name: str, width: int) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node("MatMul", ["x", f"w_{name}"], [f"o_{name}"], name=f"mm_{name}")], name, [],
                                 [_vi(f"o_{name}", [1, width])], _weights(**{f"w_{name}": [4, width]}))
    body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep"),
                              helper.make_node("Relu", ["state_in"], ["state_out"], name="body_relu")],
                             "body", [_vi("i", [], TensorProto.INT64), _vi("cond_in", [], TensorProto.BOOL), _vi("state_in", [1, 4])],
                             [_vi("cond_out", [], TensorProto.BOOL), _vi("state_out", [1, 4])])
    nodes = [helper.make_node("If", ["flag"], ["chosen"], name="if", then_branch=branch("then", 8), else_branch=branch("else", 8)),
             helper.make_node("Loop", ["trips", "", "x"], ["looped"], name="loop", body=body)]
    constants = [numpy_helper.from_array(np.array(3, np.int64), "trips")]
    return _model(nodes, [_vi("x", [1, 4]), _vi("flag", [], TensorProto.BOOL)], ["chosen", "looped"], constants)


def seed_shape_arithmetic() -> onnx.ModelProto:
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape, Constant and ConstantOfShape (weights built in the graph)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes"], ["batch1"], name="unsqueeze"),
        helper.make_node("Constant", [], ["minus1"], name="const", value=numpy_helper.from_array(np.array([-1], np.int64))),
        helper.make_node("Concat", ["batch1", "minus1"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"], name="reshape"),
        helper.make_node("ConstantOfShape", ["wshape"], ["w"], name="weights",
                         value=numpy_helper.from_array(np.array([0.5], np.float32))),
        helper.make_node("MatMul", ["flat", "w"], ["y"], name="fc"),
    ]
    constants = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
                 (("zero", 0), ("axes", [0]), ("wshape", [48, 5]))]
    return _model(nodes, [_vi("x", ["n", 3, 4, 4])], ["y"], constants)


def seed_function() -> onnx.ModelProto:
    """A local function (inlined before counting) called twice."""
    function = helper.make_function("local", "Block", ["a", "w"], ["b"],
                                    [helper.make_node("MatMul", ["a", "w"], ["t"]), helper.make_node("Relu", ["t"], ["b"])],
                                    [helper.make_opsetid("", 17)])
    nodes = [helper.make_node("Block", ["x", "w1"], ["h"], name="block1", domain="local"),
             helper.make_node("Block", ["h", "w2"], ["y"], name="block2", domain="local")]
    model = _model(nodes, [_vi("x", [2, 8])], ["y"], _weights(w1=[8, 8], w2=[8, 4]), domains={"local": 1})
    model.functions.append(function)
    return model


def seed_contrib() -> onnx.ModelProto:
    """com.microsoft ops, whose shapes the engine supplies itself."""
    nodes = [helper.make_node("FusedConv", ["x", "w"], ["c"], name="fconv", domain="com.microsoft", activation="Relu",
                              pads=[1, 1, 1, 1]),
             helper.make_node("Flatten", ["c"], ["f"], name="flatten"),
             helper.make_node("FusedMatMul", ["f", "proj"], ["p"], name="fmm", domain="com.microsoft", alpha=0.5),
             helper.make_node("Gelu", ["p"], ["y"], name="gelu", domain="com.microsoft")]
    return _model(nodes, [_vi("x", [1, 2, 4, 4])], ["y"], _weights(w=[4, 2, 3, 3], proj=[64, 6]), domains={"com.microsoft": 1})


def seed_attention() -> onnx.ModelProto:
    """An ONNX Attention (opset 23) with a causal mask, and an Einsum."""
    nodes = [helper.make_node("Attention", ["q", "k", "v"], ["o"], name="attn", is_causal=1),
             helper.make_node("Einsum", ["o", "wo"], ["y"], name="out", equation="bhsd,de->bhse")]
    inputs = [_vi("q", [1, 2, "s", 8]), _vi("k", [1, 2, "s", 8]), _vi("v", [1, 2, "s", 8])]
    return _model(nodes, inputs, ["y"], _weights(wo=[8, 8]), opset=23)


def seed_external_and_sparse() -> onnx.ModelProto:
    """An initializer stored in an external file that is not there, and a sparse initializer."""
    external = TensorProto(name="w_ext", data_type=TensorProto.FLOAT, dims=[16, 16], data_location=TensorProto.EXTERNAL)
    external.external_data.add(key="location", value="weights.bin")
    external.external_data.add(key="offset", value="0")
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(np.ones(3, np.float32), "w_sparse"),
                                       numpy_helper.from_array(np.array([0, 5, 9], np.int64), "w_sparse_idx"), [4, 16])
    nodes = [helper.make_node("MatMul", ["x", "w_ext"], ["h"], name="fc_ext"),
             helper.make_node("MatMul", ["h", "w_sparse_t"], ["y"], name="fc_sparse"),
             helper.make_node("Transpose", ["w_sparse"], ["w_sparse_t"], name="t")]
    model = _model(nodes, [_vi("x", [2, 16])], ["y"], [external])
    model.graph.sparse_initializer.append(sparse)
    return model


BUILT_SEEDS: dict[str, Callable[[], onnx.ModelProto]] = {
    "convnet": seed_convnet, "lstm": seed_lstm, "control_flow": seed_control_flow,
    "shape_arithmetic": seed_shape_arithmetic, "function": seed_function, "contrib": seed_contrib,
    "attention": seed_attention, "external_and_sparse": seed_external_and_sparse,
}

LARGE_BLOB_BYTE = 0xAB
LARGE_FILE_BYTES = 4 * 1024 * 1024 + 64 * 1024  # over the engine's 4 MB direct-parse limit


def with_large_initializer(model: onnx.ModelProto, draw: Draw) -> bytes:
    """The model with a weight of over 4 MB (used by an extra MatMul), placed at a random index
    among the initializers: the engine memory-maps such a file and walks its wire format itself."""
    large = onnx.ModelProto()
    large.CopyFrom(model)
    columns = LARGE_FILE_BYTES // (4 * 16) + 1
    blob = TensorProto(name="large_weight", data_type=TensorProto.FLOAT, dims=[16, columns],
                       raw_data=bytes([LARGE_BLOB_BYTE]) * (16 * columns * 4))
    at = draw.integer(0, len(large.graph.initializer))
    initializers = list(large.graph.initializer)
    initializers.insert(at, blob)
    del large.graph.initializer[:]
    large.graph.initializer.extend(initializers)
    large.graph.input.append(_vi("large_in", [1, 16]))
    large.graph.node.append(helper.make_node("MatMul", ["large_in", "large_weight"], ["large_out"], name="large_fc"))
    large.graph.output.append(_vi("large_out", None))
    return large.SerializeToString()


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes


_SEED_CACHE: dict[str, list[Seed]] = {}


def onnx_seeds() -> list[Seed]:
    """The zoo graphs and the built seeds, serialized (computed once a process)."""
    if "small" not in _SEED_CACHE:
        seeds = [Seed(path.name, path.read_bytes()) for path in zoo_paths()]
        seeds += [Seed(f"{name}.onnx", build().SerializeToString()) for name, build in BUILT_SEEDS.items()]
        _SEED_CACHE["small"] = seeds
    return _SEED_CACHE["small"]


def pick_seed_model(draw: Draw) -> tuple[str, onnx.ModelProto]:
    """A seed: a zoo graph, a built seed, or (one in four) a valid graph drawn as in the valid family."""
    if draw.boolean(0.25):
        kind = draw.choice(tuple(VALID_GENERATORS))
        case = valid_graph_case(kind, draw)
        return f"valid {kind}", onnx.ModelProto.FromString(case.files[0][1])
    seed = draw.choice(onnx_seeds())
    return seed.name, onnx.ModelProto.FromString(seed.data)


# --- byte-level mutations ---------------------------------------------------------------------

_INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x08, 0x0A, 0x12, 0x1A, 0x22)


def _position(draw: Draw, data: bytes, avoid: Optional[tuple[int, int]]) -> int:
    """A position in `data`; with `avoid` (a large blob), mostly outside it."""
    if avoid is not None and draw.boolean(0.85):
        start, end = avoid
        outside = start + (len(data) - end)
        if outside > 0:
            offset = draw.integer(0, outside - 1)
            return offset if offset < start else end + (offset - start)
    return draw.integer(0, max(len(data) - 1, 0))


def flip_bits(draw: Draw, data: bytes, avoid: Optional[tuple[int, int]] = None) -> tuple[bytes, str]:
    if not data:
        return data, "no bits to flip"
    out = bytearray(data)
    count = draw.choice((1, 1, 2, 4, 8, 32))
    for _ in range(count):
        at = _position(draw, out, avoid)
        out[at] ^= 1 << draw.integer(0, 7)
    return bytes(out), f"flip {count} bits"


def set_bytes(draw: Draw, data: bytes, avoid: Optional[tuple[int, int]] = None) -> tuple[bytes, str]:
    if not data:
        return data, "no bytes to set"
    out = bytearray(data)
    count = draw.choice((1, 2, 4))
    for _ in range(count):
        out[_position(draw, out, avoid)] = draw.choice(_INTERESTING_BYTES + (draw.integer(0, 255),))
    return bytes(out), f"set {count} bytes"


def truncate(draw: Draw, data: bytes, avoid: Optional[tuple[int, int]] = None) -> tuple[bytes, str]:
    at = _position(draw, data, avoid) if draw.boolean(0.8) else draw.integer(0, min(len(data), 64))
    return data[:at], f"truncate at {at} of {len(data)}"


def splice(draw: Draw, data: bytes, other: bytes) -> tuple[bytes, str]:
    at, other_at = draw.integer(0, len(data)), draw.integer(0, len(other))
    return data[:at] + other[other_at:], f"splice [:{at}] + other[{other_at}:]"


def edit_chunk(draw: Draw, data: bytes, avoid: Optional[tuple[int, int]] = None) -> tuple[bytes, str]:
    at = _position(draw, data, avoid)
    length = draw.choice((1, 2, 8, 64, 512))
    action = draw.choice(("delete", "duplicate", "insert"))
    if action == "delete":
        return data[:at] + data[at + length:], f"delete {length} bytes at {at}"
    if action == "duplicate":
        return data[:at] + data[at:at + length] * draw.choice((2, 3, 100)) + data[at + length:], f"repeat {length} bytes at {at}"
    noise = bytes(draw.integer(0, 255) for _ in range(min(length, 64)))
    return data[:at] + noise + data[at:], f"insert {len(noise)} bytes at {at}"


def mutate_bytes(draw: Draw, data: bytes, other: bytes, avoid: Optional[tuple[int, int]] = None) -> tuple[bytes, str]:
    """One to three byte-level mutations."""
    notes = []
    for _ in range(draw.choice((1, 1, 2, 3))):
        kind = draw.choice(("flip", "flip", "set", "truncate", "splice", "chunk"))
        if kind == "flip":
            data, note = flip_bits(draw, data, avoid)
        elif kind == "set":
            data, note = set_bytes(draw, data, avoid)
        elif kind == "truncate":
            data, note = truncate(draw, data, avoid)
        elif kind == "splice":
            data, note = splice(draw, data, other)
        else:
            data, note = edit_chunk(draw, data, avoid)
        notes.append(note)
        if not data:
            break
    return data, "; ".join(notes)


# --- wire-level mutations: the protobuf encoding, whatever the schema -------------------------------


@dataclass
class WireField:
    number: int
    wire_type: int              # 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32
    value: Union[int, bytes, list["WireField"]]  # a list: a length-delimited field that parses as a message


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64: ten bytes, two's complement
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def parse_wire(data: bytes, depth: int = 0) -> list[WireField]:
    """The fields of a message; a length-delimited payload that parses (and is not text) is
    parsed as a nested message. Raises ValueError on data that is not a message."""
    fields, at = [], 0
    while at < len(data):
        tag, at = _varint(data, at)
        number, wire_type = tag >> 3, tag & 7
        if number == 0 or wire_type not in (0, 1, 2, 5):
            raise ValueError("bad tag")
        if wire_type == 0:
            value, at = _varint(data, at)
            fields.append(WireField(number, 0, value))
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            if at + size > len(data):
                raise ValueError("short fixed field")
            fields.append(WireField(number, wire_type, int.from_bytes(data[at:at + size], "little")))
            at += size
        else:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ValueError("short length-delimited field")
            payload = bytes(data[at:at + length])
            fields.append(WireField(number, 2, _maybe_message(payload, depth)))
            at += length
    return fields


def _maybe_message(payload: bytes, depth: int) -> Union[bytes, list[WireField]]:
    if depth > 40 or len(payload) < 2 or (payload.isascii() and payload.decode("ascii").isprintable()):
        return payload
    try:
        return parse_wire(payload, depth + 1)
    except ValueError:
        return payload


def encode_wire(fields: Sequence[WireField]) -> bytes:
    out = bytearray()
    for f in fields:
        out += encode_varint(f.number << 3 | f.wire_type)
        if f.wire_type == 0:
            out += encode_varint(int(f.value))  # type: ignore[arg-type]
        elif f.wire_type in (1, 5):
            out += (int(f.value) & ((1 << (64 if f.wire_type == 1 else 32)) - 1)).to_bytes(8 if f.wire_type == 1 else 4, "little")  # type: ignore[arg-type]
        else:
            payload = encode_wire(f.value) if isinstance(f.value, list) else bytes(f.value)  # type: ignore[arg-type]
            out += encode_varint(len(payload)) + payload
    return bytes(out)


def _all_fields(fields: list[WireField]) -> Iterator[tuple[list[WireField], int]]:
    """(the list holding it, index) of every field at any depth."""
    for index, f in enumerate(fields):
        yield fields, index
        if isinstance(f.value, list):
            yield from _all_fields(f.value)


_INTERESTING_VARINTS = (0, 1, -1, 2, 127, 128, 2**31 - 1, 2**31, 2**32, 2**40, 2**62, 2**63 - 1, -(2**63), -(2**31), 10**6)


def mutate_wire(draw: Draw, data: bytes) -> tuple[bytes, str]:
    """One to three edits of the protobuf encoding: a varint set to an edge value, a string made
    non-UTF-8 or emptied, a field deleted, repeated, renumbered or given another wire type."""
    fields = parse_wire(data)
    notes = []
    for _ in range(draw.choice((1, 1, 2, 3))):
        places = list(_all_fields(fields))
        if not places:
            break
        holder, index = draw.choice(places)
        notes.append(_edit_wire_field(draw, holder, index))
    return encode_wire(fields), "; ".join(notes)


def _edit_wire_field(draw: Draw, holder: list[WireField], index: int) -> str:
    f = holder[index]
    where = f"field {f.number} (wire type {f.wire_type})"
    action = draw.choice(("value", "value", "value", "delete", "repeat", "renumber", "retype"))
    if action == "delete":
        del holder[index]
        return f"delete {where}"
    if action == "repeat":
        holder.insert(index, WireField(f.number, f.wire_type, _copy_value(f.value)))
        return f"repeat {where}"
    if action == "renumber":
        f.number = draw.choice((1, 2, 3, 5, 7, 8, 11, 14, 15, 20, 25, 99, 536870911))
        return f"renumber {where} to {f.number}"
    if action == "retype":
        f.wire_type, f.value = (2, encode_varint(int(f.value))) if f.wire_type != 2 else (0, draw.choice(_INTERESTING_VARINTS))  # type: ignore[arg-type]
        return f"{where} as wire type {f.wire_type}"
    if f.wire_type == 2:
        return f"{where}: " + _edit_payload(draw, f)
    f.value = draw.choice(_INTERESTING_VARINTS + (int(f.value) + 1, int(f.value) - 1))  # type: ignore[arg-type]
    return f"{where} = {f.value}"


def _copy_value(value: Union[int, bytes, list[WireField]]) -> Union[int, bytes, list[WireField]]:
    if isinstance(value, list):
        return [WireField(f.number, f.wire_type, _copy_value(f.value)) for f in value]
    return value


def _edit_payload(draw: Draw, f: WireField) -> str:
    raw = encode_wire(f.value) if isinstance(f.value, list) else bytes(f.value)  # type: ignore[arg-type]
    action = draw.choice(("non-utf8", "empty", "long", "noise"))
    if action == "non-utf8":
        f.value = b"\xff\xfe" + raw[:8] + b"\xc3"
    elif action == "empty":
        f.value = b""
    elif action == "long":
        f.value = raw * draw.choice((2, 50))
    else:
        f.value = bytes(draw.integer(0, 255) for _ in range(draw.integer(1, 16)))
    return action


# --- field-level mutations of ONNX models -------------------------------------------------------


def all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from all_graphs(attribute.g)
            for subgraph in attribute.graphs:
                yield from all_graphs(subgraph)


def _value_infos(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    return [vi for g in all_graphs(model.graph) for vi in (*g.input, *g.output, *g.value_info)]


def _nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for g in all_graphs(model.graph) for n in g.node] + [n for f in model.functions for n in f.node]


def _tensor_dims(model: onnx.ModelProto) -> list[Any]:
    """Every repeated dims field: value infos' shapes and initializers' dims."""
    dims: list[Any] = [vi.type.tensor_type.shape.dim for vi in _value_infos(model) if vi.type.tensor_type.HasField("shape")]
    dims += [t.dims for g in all_graphs(model.graph) for t in g.initializer]
    return [d for d in dims if len(d)]


_EDGE_DIMS = (-1, -3, -(2**40), 0, 2**31, 2**40, 2**62, 2**63 - 1)


def edit_dims(draw: Draw, model: onnx.ModelProto) -> str:
    """A dim of a value info or an initializer set to a negative, zero, huge or symbolic size, or a rank changed."""
    candidates = _tensor_dims(model)
    if not candidates:
        return "no dims"
    dims = draw.choice(candidates)
    at = draw.integer(0, len(dims) - 1)
    value = draw.choice(_EDGE_DIMS)
    if isinstance(dims[at], int):
        dims[at] = value
        return f"initializer dim {at} = {value}"
    action = draw.choice(("value", "value", "symbol", "add", "drop"))
    if action == "symbol":
        dims[at].dim_param = draw.choice(("", "batch", "N", "?", "unk__0", "é", "x" * 300))
        return f"dim {at} symbolic {dims[at].dim_param!r}"
    if action == "add":
        dims.add().dim_value = value
        return f"extra dim {value}"
    if action == "drop":
        del dims[at]
        return "dim dropped"
    dims[at].dim_value = value
    return f"dim {at} = {value}"


_ELEM_TYPES = (0, 2, 3, 6, 7, 8, 9, 10, 11, 16, 17, 21, 22, 23, 24, 25, 26, 30, 99, 12345)


def edit_dtype(draw: Draw, model: onnx.ModelProto) -> str:
    """A value info's or an initializer's element type set to another (or no valid) type."""
    value = draw.choice(_ELEM_TYPES)
    initializers = [t for g in all_graphs(model.graph) for t in g.initializer]
    if initializers and draw.boolean(0.4):
        tensor = draw.choice(initializers)
        tensor.data_type = value
        return f"initializer {tensor.name!r} data_type {value}"
    infos = [vi for vi in _value_infos(model) if vi.type.HasField("tensor_type")]
    if not infos:
        return "no value infos"
    info = draw.choice(infos)
    info.type.tensor_type.elem_type = value
    return f"{info.name!r} elem_type {value}"


def edit_input_type(draw: Draw, model: onnx.ModelProto) -> str:
    """A graph input that is not a tensor: a sequence, a map, an optional, a sparse tensor, nothing."""
    infos = [vi for g in all_graphs(model.graph) for vi in g.input] or list(model.graph.output)
    if not infos:
        return "no inputs"
    info = draw.choice(infos)
    kind = draw.choice(("sequence", "map", "optional", "sparse", "empty"))
    elem = info.type.tensor_type.elem_type or TensorProto.FLOAT
    if kind == "sequence":
        info.type.CopyFrom(helper.make_sequence_type_proto(helper.make_tensor_type_proto(elem, None)))
    elif kind == "map":
        info.type.CopyFrom(helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(elem, None)))
    elif kind == "optional":
        info.type.CopyFrom(helper.make_optional_type_proto(helper.make_tensor_type_proto(elem, [1, 2])))
    elif kind == "sparse":
        info.type.CopyFrom(helper.make_sparse_tensor_type_proto(elem, [2, 2]))
    else:
        info.type.Clear()
    return f"input {info.name!r} is a {kind}"


def edit_wiring(draw: Draw, model: onnx.ModelProto) -> str:
    """A node reads a value nobody produces, or a later node's output (a cycle); an output or a
    name duplicated; an input or output dropped."""
    nodes = [n for n in model.graph.node]
    if not nodes:
        return "no nodes"
    index = draw.integer(0, len(nodes) - 1)
    node = nodes[index]
    action = draw.choice(("missing", "cycle", "duplicate_output", "duplicate_node", "duplicate_initializer",
                          "drop_output", "drop_input", "extra_input", "self_loop"))
    if action == "missing" and node.input:
        node.input[draw.integer(0, len(node.input) - 1)] = "no_such_value"
    elif action == "cycle" and node.input:
        later = nodes[draw.integer(index, len(nodes) - 1)]
        node.input[0] = later.output[0] if later.output else "x"
    elif action == "self_loop" and node.input and node.output:
        node.input[0] = node.output[0]
    elif action == "duplicate_output" and node.output:
        node.output[0] = draw.choice(nodes).output[0] if draw.boolean() else (model.graph.input[0].name if model.graph.input else "x")
    elif action == "duplicate_node":
        model.graph.node.insert(index, node)
    elif action == "duplicate_initializer" and model.graph.initializer:
        model.graph.initializer.append(draw.choice(list(model.graph.initializer)))
    elif action == "drop_output" and model.graph.output:
        del model.graph.output[draw.integer(0, len(model.graph.output) - 1)]
    elif action == "drop_input" and model.graph.input:
        del model.graph.input[draw.integer(0, len(model.graph.input) - 1)]
    elif action == "extra_input":
        node.input.extend(["", node.input[0] if node.input else "x"])
    return f"{action} at node {index} ({node.op_type})"


def edit_opsets(draw: Draw, model: onnx.ModelProto) -> str:
    action = draw.choice(("version", "version", "drop", "duplicate", "ir_version"))
    if action == "ir_version":
        model.ir_version = draw.choice((0, 1, 2, 3, 4, 99, 2**40, -1))
        return f"ir_version {model.ir_version}"
    defaults = [op for op in model.opset_import if op.domain in ("", "ai.onnx")]
    if action == "drop" or not defaults:
        del model.opset_import[:]
        return "no opset_import"
    if action == "duplicate":
        model.opset_import.add(domain="", version=draw.choice((1, 7, 13)))
        return "default domain imported twice"
    defaults[0].version = draw.choice((1, 1, 6, 7, 9, 11, 99, 0, -1, 2**40))
    return f"opset {defaults[0].version}"


_OP_TYPES = ("Conv", "MatMul", "Gemm", "Relu", "Add", "If", "Loop", "Scan", "LSTM", "Attention", "Einsum", "Resize",
             "Slice", "Reshape", "Concat", "Expand", "ConstantOfShape", "Tile", "Range", "NonZero", "TopK", "Frobnicate", "")


def edit_op(draw: Draw, model: onnx.ModelProto) -> str:
    """A node's op type or domain replaced (unknown ops, unknown or undeclared domains)."""
    nodes = _nodes(model)
    if not nodes:
        return "no nodes"
    node = draw.choice(nodes)
    if draw.boolean(0.5):
        node.op_type = draw.choice(_OP_TYPES)
        return f"op_type {node.op_type!r}"
    node.domain = draw.choice(("com.unknown", "com.microsoft", "ai.onnx.ml", "ai.onnx", "local", "x" * 200))
    if draw.boolean(0.5):
        model.opset_import.add(domain=node.domain, version=draw.choice((1, 99)))
    return f"domain {node.domain[:20]!r}"


def edit_attribute(draw: Draw, model: onnx.ModelProto) -> str:
    """An attribute's value set to an edge value, its type changed, or the attribute removed or added."""
    nodes = [n for n in _nodes(model)]
    if not nodes:
        return "no nodes"
    node = draw.choice(nodes)
    if not node.attribute or draw.boolean(0.25):
        name = draw.choice(("group", "strides", "pads", "kernel_shape", "axis", "hidden_size", "equation", "mode",
                            "transB", "perm", "to", "num_scan_inputs", "dilations", "axes"))
        value = draw.choice((0, -1, 2**40, [0, 0], [], "abc", 1.5))
        node.attribute.append(helper.make_attribute(name, value) if value != [] else
                              helper.make_attribute(name, [], attr_type=onnx.AttributeProto.INTS))
        return f"{node.op_type} gets {name}={value!r}"
    attribute = draw.choice(list(node.attribute))
    action = draw.choice(("int", "ints", "float", "string", "type", "remove"))
    if action == "remove":
        node.attribute.remove(attribute)
    elif action == "int":
        attribute.i = draw.choice(_INTERESTING_VARINTS)
    elif action == "ints":
        del attribute.ints[:]
        attribute.ints.extend([draw.choice(_INTERESTING_VARINTS) for _ in range(draw.integer(0, 5))])
    elif action == "float":
        attribute.f = draw.choice((float("nan"), float("inf"), -0.0, 1e38, -1.0))
    elif action == "string":
        attribute.s = draw.choice((b"", b"NOTSET", b"SAME_UPPER", b"bij,bjk->bik", b"\xff\xfe", b"...", b"a" * 1000))
    else:
        attribute.type = draw.choice((0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 13, 99))
    return f"{node.op_type}.{attribute.name} {action}"


def edit_data(draw: Draw, model: onnx.ModelProto) -> str:
    """An initializer's data cut or mismatched, or moved to an external file that is not there."""
    initializers = [t for g in all_graphs(model.graph) for t in g.initializer]
    if not initializers:
        return "no initializers"
    tensor = draw.choice(initializers)
    action = draw.choice(("cut", "external", "typed", "huge_dims"))
    if action == "cut":
        tensor.raw_data = tensor.raw_data[:len(tensor.raw_data) // 2]
    elif action == "external":
        tensor.data_location = TensorProto.EXTERNAL
        del tensor.external_data[:]
        tensor.external_data.add(key="location", value=draw.choice(("../../../etc/passwd", "missing.bin", "", "/dev/zero")))
        tensor.external_data.add(key="length", value=draw.choice(("-1", "99999999999999999999", "abc", "4")))
    elif action == "typed":
        tensor.ClearField("raw_data")
        tensor.int64_data.extend([draw.choice(_INTERESTING_VARINTS) for _ in range(3)])
    else:
        del tensor.dims[:]
        tensor.dims.extend([2**31, 2**31, 2**31])
    return f"initializer {tensor.name!r} {action}"


def edit_subgraph_or_function(draw: Draw, model: onnx.ModelProto) -> str:
    """A local function that calls itself, or an If/Loop whose body is empty or missing."""
    if model.functions and draw.boolean(0.6):
        function = model.functions[0]
        function.node.append(helper.make_node(function.name, list(function.input), ["again"], domain=function.domain))
        return "a function that calls itself"
    nodes = [n for n in model.graph.node if any(a.type == onnx.AttributeProto.GRAPH for a in n.attribute)]
    if nodes:
        node = draw.choice(nodes)
        attribute = next(a for a in node.attribute if a.type == onnx.AttributeProto.GRAPH)
        attribute.g.Clear() if draw.boolean() else node.attribute.remove(attribute)
        return f"{node.op_type} body emptied"
    node = draw.choice(list(model.graph.node)) if model.graph.node else None
    if node is None:
        return "no nodes"
    node.attribute.append(helper.make_attribute("then_branch", helper.make_graph([], "empty", [], [])))
    return f"{node.op_type} gets a graph attribute"


FIELD_EDITS: dict[str, Callable[[Draw, onnx.ModelProto], str]] = {
    "dims": edit_dims, "dtype": edit_dtype, "input_type": edit_input_type, "wiring": edit_wiring,
    "opsets": edit_opsets, "op": edit_op, "attribute": edit_attribute, "data": edit_data,
    "subgraph": edit_subgraph_or_function,
}
NON_UTF8_PLACEHOLDER = "\x01maccbudget-non-utf8\x01"


def make_names_non_utf8(draw: Draw, model: onnx.ModelProto) -> tuple[Callable[[bytes], bytes], str]:
    """Give a name (node, value, op type, domain, attribute, doc string) a placeholder, to be
    replaced by invalid UTF-8 of the same length after serializing (protobuf refuses to set one)."""
    nodes = _nodes(model)
    infos = _value_infos(model)
    choices: list[tuple[str, Callable[[str], None]]] = []
    if nodes:
        node = draw.choice(nodes)
        choices += [("node name", lambda text: setattr(node, "name", text)),
                    ("op type", lambda text: setattr(node, "op_type", text)),
                    ("domain", lambda text: setattr(node, "domain", text))]
        if node.attribute:
            attribute = node.attribute[0]
            choices.append(("attribute name", lambda text: setattr(attribute, "name", text)))
    if infos:
        info = draw.choice(infos)
        choices.append(("value name", lambda text: setattr(info, "name", text)))
    choices.append(("doc string", lambda text: setattr(model.graph, "doc_string", text)))
    what, set_text = draw.choice(choices)
    set_text(NON_UTF8_PLACEHOLDER)
    invalid = draw.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82", b"\x80"))
    replacement = (invalid * len(NON_UTF8_PLACEHOLDER))[:len(NON_UTF8_PLACEHOLDER.encode())]
    return (lambda data: data.replace(NON_UTF8_PLACEHOLDER.encode(), replacement)), f"non-UTF-8 {what}"


def _field_edit(draw: Draw, model: onnx.ModelProto) -> str:
    name = draw.choice(tuple(FIELD_EDITS))
    try:
        return FIELD_EDITS[name](draw, model)
    except (TypeError, ValueError, IndexError, AttributeError) as error:  # an edit protobuf refuses: no edit
        return f"{name} edit not possible ({type(error).__name__})"


def mutate_fields(draw: Draw, model: onnx.ModelProto) -> tuple[bytes, str]:
    """One to three field edits, and sometimes a non-UTF-8 name."""
    notes = [_field_edit(draw, model) for _ in range(draw.choice((1, 1, 2, 3)))]
    finish: Callable[[bytes], bytes] = lambda data: data
    if draw.boolean(0.15):
        finish, note = make_names_non_utf8(draw, model)
        notes.append(note)
    return finish(model.SerializeToString()), "; ".join(notes)


# --- ONNX cases -----------------------------------------------------------------------------------

_FORMATS = ("json", "json", "json", "table", "table", "markdown", "csv")


def profile_args(draw: Draw, model: Optional[onnx.ModelProto] = None) -> tuple[str, ...]:
    """Output format and options a user might give (`--input` names taken from the model)."""
    args: list[str] = ["--format", draw.choice(_FORMATS)]
    if draw.boolean(0.1):
        args.append("--strict")
    if draw.boolean(0.1):
        args += ["--top", str(draw.integer(1, 5))]
    if draw.boolean(0.1):
        args.append("--all")
    if draw.boolean(0.1):
        args += ["--batch", str(draw.choice((1, 2, 7, 2**40)))]
    if model is not None and model.graph.input and draw.boolean(0.1):
        name = draw.choice(list(model.graph.input)).name
        if isinstance(name, str) and name and "=" not in name and not name.startswith("-"):
            args += ["--input", f"{name}={','.join(str(draw.integer(1, 9)) for _ in range(draw.integer(1, 4)))},"]
    return tuple(args)


def _model_or_none(data: bytes) -> Optional[onnx.ModelProto]:
    try:
        return onnx.ModelProto.FromString(data)
    except Exception:  # noqa: BLE001  (a mutated file: anything)
        return None


def onnx_bytes_case(draw: Draw) -> Case:
    name, model = pick_seed_model(draw)
    other = draw.choice(onnx_seeds())
    data, note = mutate_bytes(draw, model.SerializeToString(), other.data)
    return Case("onnx-bytes", f"{name}: {note}", PROFILE, ((MODEL_FILE, data),), profile_args(draw, _model_or_none(data)))


def onnx_wire_case(draw: Draw) -> Case:
    name, model = pick_seed_model(draw)
    data, note = mutate_wire(draw, model.SerializeToString())
    return Case("onnx-wire", f"{name}: {note}", PROFILE, ((MODEL_FILE, data),), profile_args(draw, _model_or_none(data)))


def onnx_fields_case(draw: Draw) -> Case:
    name, model = pick_seed_model(draw)
    data, note = mutate_fields(draw, model)
    return Case("onnx-fields", f"{name}: {note}", PROFILE, ((MODEL_FILE, data),), profile_args(draw, _model_or_none(data)))


def blob_span(data: bytes) -> Optional[tuple[int, int]]:
    marker = bytes([LARGE_BLOB_BYTE]) * 64
    start = data.find(marker)
    return None if start < 0 else (start, data.rfind(marker) + len(marker))


def onnx_large_case(draw: Draw) -> Case:
    """A file over 4 MB (memory-mapped, wire format walked by the engine), mutated mostly outside its large weight."""
    name, model = pick_seed_model(draw)
    how = draw.choice(("bytes", "bytes", "wire", "fields", "none"))
    note = "unchanged"
    if how == "fields":
        _, note = mutate_fields(draw, model)
    data = with_large_initializer(model, draw)
    if how == "bytes":
        data, note = mutate_bytes(draw, data, draw.choice(onnx_seeds()).data, blob_span(data))
    elif how == "wire":
        data, note = mutate_wire(draw, data)
    return Case("onnx-large", f"{name} + 4 MB weight: {how}: {note}", PROFILE, ((MODEL_FILE, data),),
                profile_args(draw, None))


# --- budget files ---------------------------------------------------------------------------------

SEED_BUDGETS = (
    """\
version: 1
rules: 2
defaults:
  tolerance: 2%
models:
  net:
    inputs: {x: [1, 3, 16, 16]}
    total: {macs: 1000000, flops: 2000000, params: 5000, param_bytes: 20000, peak_activation_bytes: 40000}
    layers:
      conv1: {macs: 900000}
      fc: {macs: 100000}
  small:
    tolerance: {macs: 2% and 1M, params: 0}
    limit: {macs: 1.2G, peak_activation_bytes: 24MB}
    total: {macs: 80, flops: 150, params: 90, param_bytes: 360, peak_activation_bytes: 64}
""",
    """\
# recorded by pytest --macc-budget-update
version: 1
rules: 2
models:
  "mobilenet_v2-0.5":
    rules: 1
    partial: true
    inputs:
      x:
        - 1
        - 3
        - 128
        - 128
    total:
      macs: 32.1M
      flops: 64,200,000
      params: 756_000
      param_bytes: 3.02MB
      peak_activation_bytes: 1.5 MiB
    layers:
      features.0.0:
        macs: 1_327_104
      classifier.1: {macs: 12.8k}
""",
    "version: 1\nmodels: {}\n",
    """\
version: 1
rules: 2
defaults:
  tolerance: {macs: 1%, latency_ms: 5% and 0.5ms}
devices:
  slow-board:
    class: microcontroller
    peak_macs_per_s: {fp32: 1G, int8: 4G}
    memory_bandwidth: 100 MB/s
    launch_overhead_us: 2
    efficiency: {default: 0.6, conv: 0.8}
    cache: {size: 256 KiB, bandwidth: 1 GB/s, pj_per_byte: 1.25}
    energy: {pj_per_mac: {fp32: 4.6}, pj_per_dram_byte: 160}
models:
  detector:
    total: {macs: 1834000000, flops: 3668000000, params: 2500000, param_bytes: 10MB, peak_activation_bytes: 4MB}
    tolerance: {macs: 2%, latency_ms: 5%}
    devices:
      slow-board:
        latency_ms: 41.27
        energy_mj: 96.1
        tolerance: {latency_ms: 10% and 0.5ms, energy_mj: 1mJ}
        limit: {latency_ms: 50ms, energy_mj: 0.2J}
      jetson-nano: {latency_ms: 800us}
""",
    "{version: 1, rules: 2, defaults: {tolerance: {all: 1%, layer_macs: 5%}}, models: {m: {total: {macs: 7}, layers: {a.b: {macs: 7}}}}}\n",
)

_CONTROL = ("\x00", "\x07", "\x1b", "\x7f", "\x85", "\u2028", "\ufeff", "\t", "\r", "\x0c", "\ud800", "\uffff", "\U0001F600")
_TAGGED = ("!!int 10M", "!!float inf", "!!python/object/apply:os.system ['echo pwned']", "!!python/name:os.system",
           "!!python/object:collections.OrderedDict {}", "!!binary aGVsbG8=", "!!timestamp 2001-12-14", "!!set {a, b}",
           "!!omap [a: 1]", "!custom 5", "!!str 5", "!!null ''", "!!bool yes", "!!int 0x7fffffffffffffffffff",
           "!!float 1e400", "!<tag:yaml.org,2002:int> 12", "!!map {a: 1}", "!!seq [1]", "!!int", "!!float .nan",
           "!!int 1_0", "!!float 1e-400", "!!int -1")
_HUGE = ("1" + "0" * 400, "9" * 5000, "1e400", "-1e400", ".inf", "-.inf", ".nan", "0x7fffffffffffffff", "0o777",
         "1_000_000_000_000_000_000_000", "9" * 30 + "G", "1e308GB", "-0", "-1", "1.5", "0.4", "18446744073709551616",
         "1e19", "9.9e18", "1e18 EB", "3%", "2% and -1M", "nan%", "1e400%")
_WRONG_TYPES = ("[1, 2]", "{a: 1}", "true", "null", "~", "''", '"text"', "[]", "{}", "- 1", "? a", "|\n  block")


def _scalar_spans(text: str) -> list[tuple[int, int]]:
    """Where the values are: after ": " (or "- ") up to the end of the value."""
    return [(m.start(1), m.end(1)) for m in re.finditer(r"(?:: |- )([^\n{}\[\],#]+)", text)]


def _replace_value(draw: Draw, text: str, value: str) -> str:
    spans = _scalar_spans(text)
    if not spans:
        return text + value
    start, end = draw.choice(spans)
    return text[:start] + value + text[end:]


def _nested(draw: Draw) -> str:
    depth = draw.choice((50, 99, 100, 101, 1000, 20000))
    style = draw.choice(("flow list", "flow map", "block"))
    if style == "flow list":
        return "[" * depth + "1" + "]" * depth
    if style == "flow map":
        return "{a: " * depth + "1" + "}" * depth
    return "\n" + "".join("  " * (level + 3) + "a:\n" for level in range(min(depth, 2000))) + "  " * (min(depth, 2000) + 3) + "1"


def _aliases(draw: Draw, text: str) -> tuple[str, str]:
    kind = draw.choice(("laughs", "reuse", "merge", "self", "undefined", "key"))
    if kind == "laughs":
        levels = draw.choice((3, 6, 9))
        lines = ["lol0: &l0 [x, x, x, x, x, x, x, x, x, x]"] + [
            f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
        return "\n".join(lines) + "\n" + text, f"{levels} levels of aliases"
    if kind == "reuse":
        return text.replace("total: {", "total: &t {", 1).replace("total: {macs: 80", "total: *t\n    x: {macs: 80", 1), "reused anchor"
    if kind == "merge":
        return text.replace("models:\n", "base: &b {total: {macs: 1}}\nmodels:\n  merged:\n    <<: *b\n", 1), "merge key"
    if kind == "self":
        return _replace_value(draw, text, "&s [*s]"), "an alias inside its own anchor"
    if kind == "undefined":
        return _replace_value(draw, text, "*nowhere"), "undefined alias"
    return text.replace("models:\n", "models:\n  &k a: 1\n  *k : 2\n", 1), "alias as a key"


def mutate_budget_text(draw: Draw, text: str) -> tuple[bytes, str]:
    """One to three edits of a budget file's text; a byte edit that leaves no UTF-8 text ends it."""
    notes = []
    for _ in range(draw.choice((1, 1, 2, 3))):
        kind = draw.choice(("bytes", "control", "nesting", "aliases", "tag", "huge", "duplicate", "wrong_type",
                            "lines", "unknown_key"))
        if kind == "bytes":
            data, note = mutate_bytes(draw, text.encode("utf-8", "surrogatepass"), SEED_BUDGETS[0].encode())
            notes.append(note)
            if not _decodes(data):
                return data, "; ".join(notes)
            text = data.decode("utf-8", "surrogatepass")
            continue
        text, note = _text_edit(draw, kind, text)
        notes.append(note)
    return text.encode("utf-8", "surrogatepass"), "; ".join(notes)


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8", "surrogatepass")
        return True
    except UnicodeDecodeError:
        return False


def _text_edit(draw: Draw, kind: str, text: str) -> tuple[str, str]:
    if kind == "control":
        char = draw.choice(_CONTROL)
        at = draw.integer(0, len(text))
        return text[:at] + char + text[at:], f"control character {char!r} at {at}"
    if kind == "nesting":
        return _replace_value(draw, text, _nested(draw)), "deep nesting"
    if kind == "aliases":
        return _aliases(draw, text)
    if kind == "tag":
        tagged = draw.choice(_TAGGED)
        return _replace_value(draw, text, tagged), f"tag {tagged[:40]!r}"
    if kind == "huge":
        number = draw.choice(_HUGE)
        return _replace_value(draw, text, number), f"number {number[:20]!r}"
    if kind == "wrong_type":
        value = draw.choice(_WRONG_TYPES)
        return _replace_value(draw, text, value), f"value {value!r}"
    lines = text.split("\n")
    at = draw.integer(0, max(len(lines) - 1, 0))
    if kind == "duplicate":
        lines.insert(at, lines[at])
        return "\n".join(lines), f"line {at + 1} twice"
    if kind == "unknown_key":
        lines.insert(at, " " * draw.choice((0, 2, 4, 6)) + draw.choice(("bogus: 1", "macs: 1", "models: {}", ": 1", "? [a]: 1")))
        return "\n".join(lines), f"key inserted at line {at + 1}"
    action = draw.choice(("delete", "swap", "indent", "dedent", "tab"))
    if action == "delete":
        del lines[at]
    elif action == "swap" and at + 1 < len(lines):
        lines[at], lines[at + 1] = lines[at + 1], lines[at]
    elif action == "indent":
        lines[at] = "  " + lines[at]
    elif action == "dedent":
        lines[at] = lines[at][2:]
    else:
        lines[at] = "\t" + lines[at].lstrip(" ")
    return "\n".join(lines), f"line {at + 1} {action}"


def budget_case(draw: Draw) -> Case:
    index = draw.integer(0, len(SEED_BUDGETS) - 1)
    data, note = mutate_budget_text(draw, SEED_BUDGETS[index])
    return Case("budget", f"budget seed {index}: {note}", BUDGET, ((BUDGET_FILE, data),))


# --- shard reports for `maccbudget merge` ----------------------------------------------------------

_REPORT_BUDGET = """\
version: 1
rules: 2
models:
  net:
    inputs: {x: [1, 3, 16, 16]}
    total: {macs: 1000000, flops: 2000000, params: 5000, param_bytes: 20000, peak_activation_bytes: 40000}
    layers:
      conv1: {macs: 900000}
      fc: {macs: 100000}
  small:
    tolerance: {macs: 5%}
    total: {macs: 80, flops: 150, params: 90, param_bytes: 360, peak_activation_bytes: 64}
  ghost:
    total: {macs: 1, flops: 1, params: 1, param_bytes: 4, peak_activation_bytes: 4}
"""
_BASE = {"ref": "origin/main", "commit": "0123456789abcdef0123456789abcdef01234567"}


def seed_reports() -> tuple[list[str], str]:
    """Two shard reports of one run (made by the real report builder) and the budget file."""
    if "reports" not in _SEED_CACHE:
        from pytest_maccbudget.budget import Measurement, parse_budget
        from pytest_maccbudget.pr_report import build_report, dump_report

        budget = parse_budget(_REPORT_BUDGET, Path(BUDGET_FILE))

        def measure(name: str, macs: Optional[int], layers: dict[str, Optional[int]]) -> Measurement:
            total = {"macs": macs, "flops": 2 * (macs or 0), "params": 90, "param_bytes": 360, "peak_activation_bytes": 64}
            return Measurement(name=name, nodeid=f"tests/test_models.py::test_{name}", inputs={"x": [1, 3, 16, 16]},
                               total=total, layers=layers)
        pairs = [(measure("net", 1_100_000, {"conv1": 1_000_000, "fc": 100_000}), True),
                 (measure("small", 80, {"fc": 80}), False), (measure("fresh", None, {"fc": None}), True)]
        errors = [{"name": "broken", "test": "tests/test_models.py::test_broken", "message": "no such file"}]
        texts = [dump_report(build_report(pairs[index::2], budget, base_budget=budget, base=_BASE, unused=["ghost"],
                                          budget_file=BUDGET_FILE, errors=errors if index else (), shard=(index + 1, 2),
                                          sources={"net": {"conv1": {"file": "models/net.py", "line": 12}}}))
                 for index in range(2)]
        _SEED_CACHE["reports"] = [Seed(name, text.encode()) for name, text in zip(SHARD_FILES, texts)]
    return [seed.data.decode() for seed in _SEED_CACHE["reports"]], _REPORT_BUDGET


_JSON_VALUES: tuple[Any, ...] = (None, True, False, 0, -1, 1.5, 10**30, 2**63, 2**64 + 1, "text", "", [], {}, [None],
                                 {"name": 1}, float("nan"), float("inf"), "\udc80", "a\u0000b")


def _json_places(value: Any) -> Iterator[tuple[Any, Union[str, int]]]:
    """(container, key) of every value inside `value`, depth first, each container before what it
    holds; without recursion (an earlier edit may have nested a value 900 deep)."""
    def places_in(item: Any) -> Iterator[tuple[Any, Union[str, int]]]:
        if isinstance(item, dict):
            return iter([(item, key) for key in item])
        if isinstance(item, list):
            return iter([(item, index) for index in range(len(item))])
        return iter(())

    stack = [places_in(value)]
    while stack:
        place = next(stack[-1], None)
        if place is None:
            stack.pop()
            continue
        yield place
        container, key = place
        stack.append(places_in(container[key]))


def _deep_json(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _edit_json(draw: Draw, data: Any) -> str:
    places = list(_json_places(data))
    if not places:
        return "nothing to edit"
    container, key = draw.choice(places)
    action = draw.choice(("value", "value", "value", "delete", "nest", "duplicate", "rename", "huge"))
    if action == "delete":
        del container[key]
    elif action == "nest":
        container[key] = _deep_json(draw.choice((10, 200, 900)))
    elif action == "duplicate" and isinstance(container, list):
        container.append(json.loads(json.dumps(container[key])))
    elif action == "rename" and isinstance(container, dict):
        container[str(key) + draw.choice(("_", "", "\u0000"))] = container.pop(key)
    elif action == "huge":
        container[key] = draw.choice((10**400, -(10**400), 2**63, 10**4000))
    else:
        container[key] = draw.choice(_JSON_VALUES)
    return f"{action} at {key!r}"


def mutate_report(draw: Draw, text: str) -> tuple[bytes, str]:
    """A shard report with one to three edits of its JSON tree, or of its text and bytes."""
    how = draw.choice(("tree", "tree", "tree", "text", "bytes"))
    if how == "bytes":
        return mutate_bytes(draw, text.encode(), text.encode())
    if how == "text":
        depth = draw.choice((100, 1000, 100000))
        at = draw.integer(0, len(text))
        return (text[:at] + "[" * depth + "]" * depth + text[at:]).encode(), f"{depth} brackets at {at}"
    data = json.loads(text)
    notes = [_edit_json(draw, data) for _ in range(draw.choice((1, 1, 2, 3)))]
    try:
        encoded = json.dumps(data, allow_nan=True)
    except (ValueError, RecursionError) as error:
        return text.encode(), f"unchanged ({type(error).__name__})"
    return encoded.encode("utf-8", "surrogatepass"), "; ".join(notes)


def report_case(draw: Draw) -> Case:
    texts, budget = seed_reports()
    which = draw.choice((0, 1, 0, 1, 2))  # the first, the second, or both shards edited
    files, notes = [], []
    for index, text in enumerate(texts):
        if which in (index, 2):
            data, note = mutate_report(draw, text)
            notes.append(f"{SHARD_FILES[index]}: {note}")
        else:
            data = text.encode()
        files.append((SHARD_FILES[index], data))
    if draw.boolean(0.1):
        files.pop()  # one shard of two: merge must say which is missing
        notes.append("shard-2.json not given")
    files.append((BUDGET_FILE, budget.encode()))
    return Case("report-json", "; ".join(notes), MERGE, tuple(files))


# --- families: what the benchmark draws from ---------------------------------------------------------


def _valid_family_case(draw: Draw) -> Case:
    return valid_graph_case(draw.choice(tuple(VALID_GENERATORS)), draw)


FAMILIES: dict[str, Callable[[Draw], Case]] = {
    "valid-graph": _valid_family_case,
    "onnx-bytes": onnx_bytes_case,
    "onnx-wire": onnx_wire_case,
    "onnx-fields": onnx_fields_case,
    "onnx-large": onnx_large_case,
    "budget": budget_case,
    "report-json": report_case,
}
# share of the cases of a run each family gets
FAMILY_SHARES = {"valid-graph": 0.20, "onnx-bytes": 0.20, "onnx-wire": 0.15, "onnx-fields": 0.20, "onnx-large": 0.05,
                 "budget": 0.12, "report-json": 0.08}


def make_case(family: str, seed: int, index: int) -> Case:
    """The `index`-th case of `family` for `seed`: the same case on every run."""
    case = FAMILIES[family](RandomDraw(random.Random(f"{seed}:{family}:{index}")))
    return replace(case, label=f"{family} #{index} (seed {seed}): {case.label}")


def plan_cases(total: int) -> dict[str, int]:
    """How many cases each family gets out of `total`."""
    counts = {family: int(total * share) for family, share in FAMILY_SHARES.items()}
    counts["onnx-bytes"] += total - sum(counts.values())
    return counts
