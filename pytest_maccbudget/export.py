"""Turn what a test gives (a torch module, an ONNX file or ModelProto, or anything an exporter
plugin handles) into an ONNX file the engine can profile.

torch is imported here only, and only inside functions: importing this module costs nothing
when `--macc-budget` is off. onnx is imported only to save a ModelProto or to rename the nodes
of a file just exported.

Exporters for torch models (ini `macc_budget_exporter`):

* ``"torchscript"`` (the default while torch has it): torch's TorchScript-based exporter
  (``dynamo=False``). 0.01-0.12 s for a small model, about 3.6 s for a BERT-base encoder. torch
  >= 2.9 calls it deprecated; once a torch lacks it, the dynamo exporter stands in, with a note.
* ``"dynamo"``: the ``torch.export``-based exporter (``dynamo=True``); it needs the
  ``onnxscript`` package. 0.2-0.8 s for a small model (its two traces, `torch.export` and the
  decomposition to core ATen ops, cost that), plus about 1.5 s for the first export of a
  process; about 2.4 s for a BERT-base encoder. The plugin builds torch's table of ONNX
  translations once per process, pauses the garbage collector and does not write weights the
  engine never reads (benchmarks/export_cost.py; docs/plugin.md, "What an export costs").

Whatever an exporter warns, logs or prints during the export is kept (`_Transcript`) and handed
over as `ExportedModel.log` (a passing export: only what is worth telling) or `ExportError.log`.

Either way, a node's scoped name reads as its PyTorch module path, so `layers.layer_key` gives
the same budget keys whichever exporter ran. The TorchScript exporter's names mostly do already
(``/layer1/layer1.0/conv1/Conv``); those that do not (``/features/features.1/conv/conv.0/Conv``
for ``features.1.conv.0``, a ModuleDict's ``/a/Gemm`` for ``md.a``) are rewritten with full
paths (``/features/features.1/features.1.conv/features.1.conv.0/Conv``). The dynamo exporter's
nodes (``node_Conv_12``) are renamed from the scopes it records in
``metadata_props["pkg.torch.onnx.name_scopes"]``, full paths already.

Other frameworks plug in through the entry-point group ``pytest_maccbudget.exporters``: each
entry point loads an object with ``handles(model) -> bool`` and
``export(model, inputs, path: Path) -> dict[str, list[int]]`` (it writes the ONNX file to
``path`` and returns the input dims it used; ``inputs`` is what the test gave, unparsed).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import logging
import numbers
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

EXPORTERS = ("torchscript", "dynamo")
DEFAULT_EXPORTER = "torchscript"
ENTRY_POINT_GROUP = "pytest_maccbudget.exporters"

ONNX_FILE_EXPORTER = "onnx"  # ExportedModel.exporter for an ONNX file or ModelProto taken as is

DTYPES = (
    "bool", "uint8", "int8", "int16", "int32", "int64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128",
)
DEFAULT_DTYPE = "float32"

ACCEPTED_INPUTS = (
    "inputs= accepts: a shape such as (1, 3, 224, 224); a list of shapes such as "
    "[(1, 3, 224, 224), (1, 10)]; (shape, dtype) pairs such as ((1, 128), \"int64\") or "
    "((1, 128), torch.int64); torch.Tensor examples; or a dict of input name -> any of these"
)

_MESSAGE_LINES = 6  # lines of an exporter's message kept in an ExportError
_MESSAGE_LINE_CHARS = 400
_FX_NODE_KEY = "pkg.torch.onnx.fx_node"


class ExportError(Exception):
    """A model could not be turned into an ONNX file; the message names the model.

    `log` holds what the exporter said while it failed (its warnings, log records and printed
    output, see `ExportedModel.log`), "" if nothing."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


class InputSpecError(ValueError):
    """An `inputs=` value of a form this module does not accept."""


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # one of DTYPES
    example: object = field(default=None, compare=False)  # a user-given torch.Tensor, used as is for export


@dataclass(frozen=True)
class ExportedModel:
    path: Path  # the ONNX file to profile
    exporter: str  # "torchscript" | "dynamo" | "onnx" | an entry-point name
    inputs: dict[str, list[int]]  # the input dims used ({} for an ONNX file taken as is)
    # What the export said that is worth telling: warnings raised in the user's code (a
    # TracerWarning says the graph may hold only the branch the example inputs took), a note on
    # the exporter used; "" if nothing. Everything else the exporter printed, warned or logged
    # was captured and dropped: a passing export prints nothing.
    log: str = field(default="", compare=False)


# --- inputs= ------------------------------------------------------------------------------


def parse_inputs(inputs: object, *, forward_arg_names: Sequence[str] = ()) -> list[InputSpec]:
    """Input specs from what a test wrote as `inputs=` (see ACCEPTED_INPUTS).

    Unnamed inputs take the names in `forward_arg_names` (the model's forward arguments),
    then `input_<i>`. Never imports torch: a tensor or torch dtype can only exist if torch is.
    """
    if isinstance(inputs, Mapping):
        return _parse_named_inputs(inputs)
    if isinstance(inputs, (list, tuple)) and not inputs:
        raise InputSpecError(f"inputs={_short_repr(inputs)} names no input; {ACCEPTED_INPUTS}")
    if _is_tensor(inputs) or _is_flat(inputs) or _is_shape_dtype_pair(inputs):
        return [_parse_item(inputs, _positional_name(0, forward_arg_names), "inputs")]
    if not isinstance(inputs, (list, tuple)):
        raise InputSpecError(f"inputs={_short_repr(inputs)} is not a form this plugin knows; {ACCEPTED_INPUTS}")
    return [
        _parse_item(item, _positional_name(index, forward_arg_names), f"inputs[{index}]")
        for index, item in enumerate(inputs)
    ]


def recorded_inputs(specs: Sequence[InputSpec]) -> dict[str, list[int]]:
    """{name: dims} as the budget file records them."""
    return {spec.name: list(spec.shape) for spec in specs}


def _positional_name(index: int, forward_arg_names: Sequence[str]) -> str:
    return forward_arg_names[index] if index < len(forward_arg_names) else f"input_{index}"


def _parse_named_inputs(inputs: Mapping[Any, object]) -> list[InputSpec]:
    if not inputs:
        raise InputSpecError(f"inputs={{}} names no input; {ACCEPTED_INPUTS}")
    specs = []
    for name, item in inputs.items():
        if not isinstance(name, str) or not name:
            raise InputSpecError(f"inputs key {name!r} is not an input name (a non-empty str); {ACCEPTED_INPUTS}")
        specs.append(_parse_item(item, name, f"inputs[{name!r}]"))
    return specs


def _parse_item(item: object, name: str, where: str) -> InputSpec:
    if _is_tensor(item):
        return InputSpec(name, tuple(int(d) for d in item.shape), _torch_dtype_name(item.dtype), example=item)  # type: ignore[attr-defined]
    if _is_shape_dtype_pair(item):
        shape, dtype = item  # type: ignore[misc]
        return InputSpec(name, _checked_shape(shape, where), _dtype_name(dtype, where))
    if _is_flat(item):
        return InputSpec(name, _checked_shape(item, where), DEFAULT_DTYPE)  # type: ignore[arg-type]
    raise InputSpecError(f"{where} = {_short_repr(item)} is not a shape, (shape, dtype) pair or tensor; {ACCEPTED_INPUTS}")


def _is_flat(item: object) -> bool:
    """A list/tuple of scalars: meant as a shape (its dims are checked separately)."""
    return isinstance(item, (list, tuple)) and not any(
        isinstance(d, (list, tuple, Mapping)) or _is_tensor(d) for d in item
    )


def _is_shape_dtype_pair(item: object) -> bool:
    return (
        isinstance(item, (list, tuple)) and len(item) == 2
        and isinstance(item[0], (list, tuple)) and _is_dtype_like(item[1])
    )


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _checked_shape(shape: Sequence[object], where: str) -> tuple[int, ...]:
    for dim in shape:
        if not _is_int(dim) or int(dim) <= 0:  # type: ignore[call-overload]
            raise InputSpecError(
                f"{where} = {_short_repr(shape)}: dimension {dim!r} is not a positive int; {ACCEPTED_INPUTS}"
            )
    return tuple(int(d) for d in shape)  # type: ignore[call-overload]


def _is_dtype_like(value: object) -> bool:
    return isinstance(value, str) or _is_torch_dtype(value) or _is_numpy_dtype(value)


def _dtype_name(dtype: object, where: str) -> str:
    if _is_torch_dtype(dtype):
        name = _torch_dtype_name(dtype)
    elif _is_numpy_dtype(dtype):
        import numpy

        name = numpy.dtype(dtype).name  # type: ignore[call-overload]
    else:
        name = str(dtype).strip()
        name = name[len("torch."):] if name.startswith("torch.") else name
    if name not in DTYPES:
        raise InputSpecError(f"{where}: unknown dtype {dtype!r}; known dtypes: {', '.join(DTYPES)}")
    return name


def _is_tensor(value: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _is_torch_dtype(value: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.dtype)


def _is_numpy_dtype(value: object) -> bool:
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return False
    return isinstance(value, numpy.dtype) or (isinstance(value, type) and issubclass(value, numpy.generic))


def _torch_dtype_name(dtype: object) -> str:
    return str(dtype).replace("torch.", "", 1)


def _short_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- export_model -------------------------------------------------------------------------


def export_model(
    model: object,
    inputs: object,
    *,
    name: str,
    workdir: Path,
    exporter: str = DEFAULT_EXPORTER,
) -> ExportedModel:
    """An ONNX file for `model`: an .onnx path is used as is, a ModelProto is saved, a torch
    module is exported with `exporter`, anything else goes to the exporter plugins.
    Files are written to `workdir/<name made file-safe>.onnx`."""
    if exporter not in EXPORTERS:
        raise ExportError(f"model {name!r}: unknown exporter {exporter!r}; choose one of: {', '.join(EXPORTERS)}")
    if isinstance(model, (str, os.PathLike)):
        return _existing_onnx_file(model, name)
    if _is_onnx_model_proto(model):
        return _saved_model_proto(model, name, _output_path(workdir, name))
    if _is_torch_module(model):
        return _exported_torch_module(model, inputs, name, _output_path(workdir, name), exporter)
    return _exported_by_plugin(model, inputs, name, _output_path(workdir, name))


def parameter_count(model: object) -> Optional[int]:
    """The elements of a torch module's parameters, each tensor once: `parameters()` yields a
    parameter shared by two modules (tied embeddings) once. None for anything else."""
    if not _is_torch_module(model):
        return None
    return sum(int(parameter.numel()) for parameter in model.parameters())  # type: ignore[attr-defined]


def safe_file_stem(name: str) -> str:
    """A file name for a model name: unsafe characters become `_`, and a short hash of the name
    keeps two names that differ only there ("a/b", "a_b") from sharing a file."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".") or "model"
    if stem == name:
        return stem
    return f"{stem}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def _output_path(workdir: Path, name: str) -> Path:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir / f"{safe_file_stem(name)}.onnx"


def _existing_onnx_file(model: str | os.PathLike[str], name: str) -> ExportedModel:
    path = Path(os.fspath(model))
    if not path.is_file():
        raise ExportError(f"model {name!r}: ONNX file not found: {path}")
    return ExportedModel(path=path, exporter=ONNX_FILE_EXPORTER, inputs={})


def _is_onnx_model_proto(model: object) -> bool:
    onnx = sys.modules.get("onnx")
    return onnx is not None and isinstance(model, onnx.ModelProto)


def _saved_model_proto(model: Any, name: str, path: Path) -> ExportedModel:
    import onnx

    try:
        onnx.save_model(model, os.fspath(path))
    except (ValueError, OSError) as error:
        raise ExportError(f"model {name!r}: cannot save the ModelProto to {path}: {error}") from error
    return ExportedModel(path=path, exporter=ONNX_FILE_EXPORTER, inputs={})


def _is_torch_module(model: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


# --- torch --------------------------------------------------------------------------------


def _exported_torch_module(module: Any, inputs: object, name: str, path: Path, exporter: str) -> ExportedModel:
    if inputs is None:
        raise InputSpecError(
            f"model {name!r} is a torch.nn.Module: give inputs=..., e.g. inputs=[(1, 3, 224, 224)]; {ACCEPTED_INPUTS}"
        )
    arg_names = forward_arg_names(module)
    try:
        specs = parse_inputs(inputs, forward_arg_names=arg_names)
    except InputSpecError as error:
        raise InputSpecError(f"model {name!r}: {error}") from None
    specs = _in_forward_order(specs, arg_names) if isinstance(inputs, Mapping) else specs
    import torch

    tensors = example_tensors(torch, specs, module_device(torch, module))
    by_name = isinstance(inputs, Mapping)
    args = () if by_name else tuple(tensors)
    kwargs = {spec.name: tensor for spec, tensor in zip(specs, tensors)} if by_name else None
    input_names = _onnx_input_names(specs, arg_names, by_name)
    exporter, note = _installed_exporter(torch, exporter)
    transcript = _Transcript(note)
    try:
        with _exporter_output_kept(transcript), _export_state(torch, module):
            program = _run_exporter(torch, exporter, module, args, kwargs, input_names, path)
    except Exception as error:  # anything the exporter raises is the test's failure message
        message = f"model {name!r}: {exporter_message(error, exporter)}"
        raise ExportError(message, log=transcript.failure_log()) from error
    if exporter == "torchscript":
        name_torchscript_nodes_by_module(path, {module_name for module_name, _ in module.named_modules() if module_name})
    else:
        name_dynamo_nodes_by_module(program)
        _save_program(program, path, name)
    return ExportedModel(path=path, exporter=exporter, inputs=recorded_inputs(specs), log=transcript.success_log())


def _run_exporter(torch: Any, exporter: str, module: Any, args: tuple[Any, ...], kwargs: Optional[dict[str, Any]],
                  input_names: Optional[list[str]], path: Path) -> Any:
    """torch.onnx.export: the TorchScript exporter writes `path`; the dynamo exporter's
    ONNXProgram is returned, to be renamed and saved."""
    if exporter == "torchscript":
        torch.onnx.export(module, args, os.fspath(path), kwargs=kwargs, input_names=input_names, dynamo=False,
                          verbose=False)
        return None
    with _torchlib_registry_reused():
        return torch.onnx.export(module, args, None, kwargs=kwargs, input_names=input_names, dynamo=True,
                                 verbose=False)


@contextlib.contextmanager
def _export_state(torch: Any, module: Any) -> Iterator[None]:
    """What an export runs under; everything is restored afterwards."""
    with eval_mode(module), torch.no_grad(), mha_fastpath_disabled(torch), _one_thread(torch), _collector_paused():
        yield


def _installed_exporter(torch: Any, exporter: str) -> tuple[str, str]:
    """The exporter to run and a note if it is not the one asked for: once torch drops the
    TorchScript exporter, the dynamo exporter stands in for it (same budget keys and MACs)."""
    if exporter != "torchscript" or has_torchscript_exporter():
        return exporter, ""
    return "dynamo", (f"note: torch {torch.__version__} has no TorchScript exporter (torch.onnx.export(dynamo=False)), "
                      "so the dynamo exporter ran; set ini macc_budget_exporter = dynamo to say so")


def has_torchscript_exporter() -> bool:
    """Whether the installed torch still has its deprecated TorchScript-based ONNX exporter: its
    operator table (`symbolic_opset9`) lives in torch.onnx._internal.torchscript_exporter since
    torch 2.9 and in torch.onnx before."""
    from importlib.util import find_spec

    for name in ("torch.onnx._internal.torchscript_exporter.symbolic_opset9", "torch.onnx.symbolic_opset9"):
        try:
            if find_spec(name) is not None:
                return True
        except ImportError:  # its package is gone
            continue
    return False


_TORCHLIB_REGISTRIES: dict[Any, Any] = {}


@contextlib.contextmanager
def _torchlib_registry_reused() -> Iterator[None]:
    """The dynamo exporter rebuilds its table of ONNX translations (onnxscript's torchlib) on
    every export, re-parsing the source of ~500 functions: 0.3-0.6 s a model on a 2-core
    machine, up to half of a small model's export. The table is the same for every export of a
    process and only read, so it is built once. It is private torch API: where torch has moved
    it, each export just builds its own again."""
    try:
        from torch.onnx._internal.exporter import _registration

        registry_class = _registration.ONNXRegistry
        original = registry_class.__dict__["from_torchlib"]
        build = original.__func__
    except (ImportError, AttributeError, KeyError):
        yield
        return

    def reused(cls: Any, *args: Any, **kwargs: Any) -> Any:
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in _TORCHLIB_REGISTRIES:
            _TORCHLIB_REGISTRIES[key] = build(cls, *args, **kwargs)
        return _TORCHLIB_REGISTRIES[key]

    registry_class.from_torchlib = classmethod(reused)
    try:
        yield
    finally:
        registry_class.from_torchlib = original


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Tracing makes objects by the hundred thousand, and each full collection of Python's
    cyclic garbage collector then walks every object of the process (torch's included): pauses
    of up to 0.4 s in a 1 s export. The garbage is collected after the export instead."""
    import gc

    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# Initializers larger than this are saved with their dims and dtype but without their bytes:
# the engine reads no tensor data above 64 KiB (engine.loader: SMALL_INT_TENSOR_BYTES, and
# SMALL_TENSOR_BYTES below it), and writing a BERT-base's 435 MB took 1.9 s of its 4.8 s export.
_WRITTEN_TENSOR_BYTES = 64 * 1024


def _save_program(program: Any, path: Path, name: str) -> None:
    """Save the dynamo exporter's ONNXProgram to `path`, its large weights as references to a
    file that is never written (`<stem>.weights-not-written`): every initializer keeps its name,
    dims and dtype, all the engine reads of a weight."""
    ir = _onnx_ir_package(program.model)
    try:
        if ir is None:
            program.save(os.fspath(path))  # weights inside the file (external only past protobuf's 2 GB)
            return
        with _large_weights_unwritten(ir, program.model, path):
            ir.save(program.model, os.fspath(path))
    except OSError as error:
        raise ExportError(f"model {name!r}: cannot write {path}: {error}") from error


def _onnx_ir_package(model: Any) -> Any:
    """The IR package the program's model is made of (onnx_ir; onnxscript.ir before it), if it
    can save a model with external tensors; else None."""
    import importlib

    name = type(model).__module__  # "onnx_ir" (its public names say so), or a module inside it
    while name:
        package = importlib.import_module(name)
        if hasattr(package, "ExternalTensor") and hasattr(package, "save"):
            return package
        name = name.rpartition(".")[0]
    return None


@contextlib.contextmanager
def _large_weights_unwritten(ir: Any, model: Any, path: Path) -> Iterator[None]:
    """While the model is saved, its initializers above _WRITTEN_TENSOR_BYTES stand as
    external-data references; the model is left as it was."""
    location = f"{path.stem}.weights-not-written"
    replaced = []
    for graph in model.graphs():
        for value in graph.initializers.values():
            tensor = value.const_value
            if tensor is None or tensor.nbytes <= _WRITTEN_TENSOR_BYTES:
                continue
            value.const_value = ir.ExternalTensor(location, 0, tensor.nbytes, tensor.dtype, shape=tensor.shape,
                                                  name=value.name, base_dir=os.fspath(path.parent))
            replaced.append((value, tensor))
    try:
        yield
    finally:
        for value, tensor in replaced:
            value.const_value = tensor


def forward_arg_names(module: Any) -> tuple[str, ...]:
    """Names of the positional arguments of `module.forward` (without self)."""
    try:
        parameters = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return ()
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in parameters if p.kind in positional)


def _in_forward_order(specs: list[InputSpec], arg_names: Sequence[str]) -> list[InputSpec]:
    """Named inputs in the order of forward's signature, the order the TorchScript exporter gives
    keyword inputs; names forward does not list keep their order, after the others."""
    position = {arg: index for index, arg in enumerate(arg_names)}
    return sorted(specs, key=lambda spec: position.get(spec.name, len(position)))


def _onnx_input_names(specs: Sequence[InputSpec], arg_names: Sequence[str], by_name: bool) -> Optional[list[str]]:
    # The TorchScript exporter orders keyword inputs by forward's signature; names it cannot
    # place (forward(**kwargs)) are left to the exporter rather than risk labelling the wrong input.
    if by_name and not all(spec.name in arg_names for spec in specs):
        return None
    return [spec.name for spec in specs]


def module_device(torch: Any, module: Any) -> Any:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def example_tensors(torch: Any, specs: Sequence[InputSpec], device: Any) -> list[Any]:
    """The user's example tensor where given; otherwise ones for floating types and zeros for
    integer and bool ones (a valid index for embeddings, "not masked" for masks)."""
    tensors = []
    for spec in specs:
        if spec.example is not None:
            tensors.append(spec.example)
            continue
        dtype = getattr(torch, spec.dtype)
        fill = torch.ones if (dtype.is_floating_point or dtype.is_complex) else torch.zeros
        tensors.append(fill(spec.shape, dtype=dtype, device=device))
    return tensors


@contextlib.contextmanager
def eval_mode(module: Any) -> Iterator[None]:
    """Eval mode for the export; each submodule's own training flag is restored afterwards
    (a model may keep, say, a frozen BatchNorm in eval mode while training)."""
    flags = [(submodule, submodule.training) for submodule in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for submodule, training in flags:
            submodule.training = training


@contextlib.contextmanager
def _one_thread(torch: Any) -> Iterator[None]:
    """Tracing gains nothing from intra-op threads, and on a busy CI machine they cost: a
    MobileNetV2 export took 1.2-1.9 s with torch's default threads, 0.21 s with one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def mha_fastpath_disabled(torch: Any) -> Iterator[None]:
    """In eval mode under no_grad, nn.TransformerEncoder and nn.MultiheadAttention take a fused
    "fastpath" (aten::_transformer_encoder_layer_fwd) that the TorchScript exporter cannot export."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    previous = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(previous)


# --- what the exporter says while it runs -------------------------------------------------
#
# torch's exporters warn (TracerWarning, deprecations), log (torch's loggers write to stderr
# through their own handlers; onnxscript logs through the root logger, which pytest shows) and
# print (torch's C++ code writes the TorchScript graph of a failed export straight to file
# descriptor 1). All of it is kept in a _Transcript during the export: a failed export's test
# shows it in its report, a passing export prints nothing. print() in the user's own forward is
# the user's: it is written out as usual once the export is over.

_LOG_LINES = 40  # lines of a transcript kept in ExportedModel.log / ExportError.log
_LOG_LINE_CHARS = 300
_EXPORTER_PACKAGES = ("torch", "torchgen", "functorch", "onnx", "onnxscript", "onnx_ir", "sympy", "numpy", "tqdm")
_DEPRECATION_CATEGORIES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
_SILENT_BELOW_ERROR = ("torch.onnx", "onnxscript")  # loggers whose warnings are kept out of a transcript


class _Transcript:
    """What one export said: Python warnings, log records (WARNING and above), and the text
    written to stdout and stderr by the exporter's code."""

    def __init__(self, note: str = "") -> None:
        self.note = note
        self.warnings: list[warnings.WarningMessage] = []
        self.records: list[logging.LogRecord] = []
        self.output: list[str] = []

    def success_log(self) -> str:
        """What a passing export has worth telling: the note, and the warnings of the user's code."""
        user_warnings = [caught for caught in self.warnings if not _is_exporter_file(caught.filename)]
        return _log_text(([self.note] if self.note else []) + _warning_lines(user_warnings))

    def failure_log(self) -> str:
        """All a failed export said, but torch's notices of its own deprecations."""
        kept = [caught for caught in self.warnings
                if not (issubclass(caught.category, _DEPRECATION_CATEGORIES) and _is_exporter_file(caught.filename))]
        lines = [self.note] if self.note else []
        lines += _warning_lines(kept)
        lines += [line for record in self.records if _tells_something(record) for line in _record_lines(record)]
        lines += _distinct_block_lines("".join(self.output))
        return _log_text(lines)


@contextlib.contextmanager
def _exporter_output_kept(transcript: _Transcript) -> Iterator[None]:
    with _log_records_kept(transcript.records), _streams_kept(transcript.output), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # each is kept once (see _warning_lines); none is raised as an error
        try:
            yield
        finally:
            transcript.warnings.extend(caught)


class _RecordKeeper(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.WARNING)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _log_records_kept(records: list[logging.LogRecord]) -> Iterator[None]:
    """Every log record goes to `records` instead of the handlers set up for it (pytest's log
    capture on the root logger, torch's stderr handlers on its non-propagating loggers)."""
    keeper = _RecordKeeper(records)
    root = logging.getLogger()
    loggers = [root] + [logger for logger in list(logging.Logger.manager.loggerDict.values())
                        if isinstance(logger, logging.Logger)]
    saved = [(logger, logger.handlers) for logger in loggers]
    for logger in loggers:
        if logger is root or not logger.propagate:  # where a record's walk up the loggers ends
            logger.handlers = [keeper]
        elif logger.handlers:
            logger.handlers = []
    try:
        yield
    finally:
        for logger, handlers in saved:
            logger.handlers = handlers


class _RoutedStream:
    """Stands for sys.stdout or sys.stderr during an export: text written by the exporter's code
    is kept; text written by any other code (print() in the user's forward) is held, and written
    to the real stream when the export is over. Afterwards (a handler made during the export may
    keep a reference) it writes straight through."""

    def __init__(self, stream: Any, kept: list[str]) -> None:
        self._stream = stream
        self._kept = kept
        self._held: Optional[list[str]] = []

    def write(self, text: str) -> int:
        if self._held is None:
            return self._stream.write(text)
        writer = sys._getframe(1).f_code.co_filename
        (self._kept if _is_exporter_file(writer) else self._held).append(text)
        return len(text)

    def flush(self) -> None:
        if self._held is None:
            self._stream.flush()

    def release(self) -> None:
        held, self._held = self._held or [], None
        if held:
            self._stream.write("".join(held))
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _streams_kept(kept: list[str]) -> Iterator[None]:
    originals = (sys.stdout, sys.stderr)
    routed = [_RoutedStream(stream, kept) if stream is not None else None for stream in originals]
    for stream in originals:
        if stream is not None:
            stream.flush()
    sys.stdout, sys.stderr = routed
    try:
        with _file_descriptors_kept(kept):
            yield
    finally:
        sys.stdout, sys.stderr = originals
        for stream in routed:
            if stream is not None:
                stream.release()


@contextlib.contextmanager
def _file_descriptors_kept(kept: list[str]) -> Iterator[None]:
    """What is written to file descriptors 1 and 2 below Python (torch's C++ code) is kept."""
    import tempfile

    with tempfile.TemporaryFile() as sink:
        saved: list[tuple[int, int]] = []
        try:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
        except OSError:  # no such descriptor (a process without a console)
            pass
        _flush_c_streams()
        for fd, _ in saved:
            os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            _flush_c_streams()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            kept.append(sink.read().decode("utf-8", "replace"))


def _flush_c_streams() -> None:
    """C's stdio buffers what C++ code prints; flushed, it lands where the descriptor points now."""
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, TypeError, AttributeError):  # no C library to flush (Windows)
        pass


def _is_exporter_file(filename: str) -> bool:
    """Code of torch, onnx and their helpers, of this plugin, of Python's standard library, or
    generated code."""
    if filename.startswith("<"):
        return True
    exporter_dirs, standard_dirs, site_dirs = _code_dirs()
    if filename.startswith(exporter_dirs):
        return True
    return filename.startswith(standard_dirs) and not filename.startswith(site_dirs)


@functools.lru_cache(maxsize=None)
def _code_dirs() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(exporter package dirs, standard library dirs, site-packages dirs), each ending in a separator."""
    import site
    import sysconfig
    from importlib.util import find_spec

    packages = [os.path.dirname(os.path.abspath(__file__))]
    for package in _EXPORTER_PACKAGES:
        spec = find_spec(package)
        packages += list(spec.submodule_search_locations or []) if spec is not None else []
    paths = sysconfig.get_paths()
    site_dirs = [paths["purelib"], paths["platlib"], *site.getsitepackages(), site.getusersitepackages()]
    return _dirs(packages), _dirs([paths["stdlib"], paths["platstdlib"]]), _dirs(site_dirs)


def _dirs(paths: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted({os.path.join(path, "") for path in paths if path}))


def _warning_lines(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    """One line per distinct warning, in order, with how often it came."""
    counts: dict[tuple[str, str, str, int], int] = {}
    for warning in caught:
        key = (warning.category.__name__, _first_line(str(warning.message)), warning.filename, warning.lineno)
        counts[key] = counts.get(key, 0) + 1
    return [f"{_short_path(filename)}:{lineno}: {category}" + (f" (x{count})" if count > 1 else "") + f": {text}"
            for (category, text, filename, lineno), count in counts.items()]


def _tells_something(record: logging.LogRecord) -> bool:
    """The exporters' own warnings ("torchvision is not installed. Skipping torchvision::nms") say
    nothing about the model; their errors may."""
    return record.levelno >= logging.ERROR or not record.name.startswith(_SILENT_BELOW_ERROR)


def _distinct_block_lines(text: str) -> list[str]:
    """The lines of `text`, each block (lines between blank lines) once: a failing torch.export
    prints the same graph once per capture strategy."""
    blocks = dict.fromkeys(block.strip("\n") for block in re.split(r"\n\s*\n", text))
    return [line for block in blocks for line in _text_lines(block)]


def _record_lines(record: logging.LogRecord) -> list[str]:
    lines = _text_lines(record.getMessage())
    return [f"{record.levelname} {record.name}: {lines[0]}"] + lines[1:] if lines else []


def _text_lines(text: str) -> list[str]:
    return [line.rstrip() for line in _ANSI_ESCAPE.sub("", text).splitlines() if line.strip()]


def _log_text(lines: Sequence[str]) -> str:
    kept = [_clipped(line, _LOG_LINE_CHARS) for line in lines[:_LOG_LINES]]
    if len(lines) > _LOG_LINES:
        kept.append(f"... ({len(lines) - _LOG_LINES} more lines)")
    return "\n".join(kept)


def _first_line(text: str) -> str:
    lines = _text_lines(text)
    return lines[0] if lines else ""


def _short_path(filename: str) -> str:
    """A file under the working directory relative to it, an installed one from its package."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive
        relative = filename
    if not relative.startswith(".."):
        return relative
    for marker in ("site-packages", "dist-packages"):
        if marker + os.sep in filename:
            return filename.split(marker + os.sep, 1)[1]
    return filename


# --- exporter messages --------------------------------------------------------------------

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_SUMMARY_HEADING = "## Exception summary"
_SUMMARY_END = "(Refer to the full stack trace"
_CLASS_PREFIX = re.compile(r"^<class '(?:[\w.]+\.)?(\w+)'>:\s*")


def exporter_message(error: BaseException, exporter: str = DEFAULT_EXPORTER) -> str:
    """The first meaningful lines of what the exporter said, without a traceback; for a failure
    whose fix is known, its first lines and a last line with the fix.

    The dynamo exporter wraps the real error in a page of advice; its "Exception summary"
    section holds the errors that matter ("RuntimeError: ..."), so those are kept with the
    page's first sentence."""
    text = _ANSI_ESCAPE.sub("", str(error)).strip()
    if _SUMMARY_HEADING in text:
        lines = [_headline(text)] + _summary_lines(text)
        error_lines = 2  # the headline and the error; then come torch's hints for its own developers
    else:
        body = [line.rstrip() for line in text.splitlines() if line.strip()]
        first = f"{type(error).__name__}: {body[0]}" if body else type(error).__name__
        lines = [first] + body[1:]
        error_lines = 1
    fix = _known_fix(error, text, exporter)
    if not fix:
        return "\n".join(_clipped(line) for line in lines[:_MESSAGE_LINES])
    return "\n".join([_clipped(line) for line in lines[:error_lines]] + [fix])


# --- known failures and their fixes (one line each) ---

_USE_DYNAMO = "use the dynamo exporter (ini macc_budget_exporter = dynamo)"
_USE_TORCHSCRIPT = "use the TorchScript exporter (ini macc_budget_exporter = torchscript)"


@dataclass(frozen=True)
class _KnownFailure:
    exporter: str  # the exporter that fails this way
    pattern: re.Pattern[str]  # searched in the exporter's message
    fix: str  # str.format()ted with the pattern's named groups and `where` (" at file:line (code)" or "")


_KNOWN_FAILURES = (
    # transformers' mask helpers (find_packed_sequence_indices) call torch.diff when no attention
    # mask is given: GPT-2, Llama and Whisper decoders of transformers 5 fail so
    _KnownFailure("torchscript", re.compile(r"\baten::diff\b"),
                  "aten::diff is what transformers' mask helpers call for a decoder given no attention mask: pass one "
                  "in inputs=, e.g. inputs={{'input_ids': ((1, 128), 'int64'), 'attention_mask': torch.ones(1, 128, "
                  "dtype=torch.int64)}}, or " + _USE_DYNAMO + ", which exports aten::diff"),
    _KnownFailure("torchscript", re.compile(r"Unsupported: ONNX export of operator|Exporting the operator '.+?' to ONNX"),
                  "the TorchScript exporter has no ONNX translation for this operator: try the dynamo exporter "
                  "(ini macc_budget_exporter = dynamo)"),
    _KnownFailure("dynamo", re.compile(r"GuardOnDataDependentSymNode|data-dependent", re.IGNORECASE),
                  "the forward decides on a tensor's value{where}, which torch.export cannot trace: "
                  + _USE_TORCHSCRIPT + ", which keeps the branch the example inputs take, or decide on shapes or "
                  "Python values instead (torch._check(...) states a fact about a value, torch.cond keeps both branches)"),
    _KnownFailure("dynamo", re.compile(r"No ONNX function found for <OpOverload\(op='(?P<op>[\w.]+)'"),
                  "the dynamo exporter has no ONNX translation for {op}: try the TorchScript exporter "
                  "(ini macc_budget_exporter = torchscript)"),
)


def _known_fix(error: BaseException, text: str, exporter: str) -> str:
    if isinstance(error, ModuleNotFoundError) and error.name == "onnxscript":
        return f"the {exporter!r} exporter needs the onnxscript package (pip install onnxscript)"
    for failure in _KNOWN_FAILURES:
        match = failure.pattern.search(text) if failure.exporter == exporter else None
        if match is not None:
            return failure.fix.format(where=_user_code_location(error), **match.groupdict())
    return ""


def _user_code_location(error: BaseException) -> str:
    """" at <file>:<line> (<code>)": the innermost line of the user's code in the traceback of
    the error, or of the error it was raised from (the dynamo exporter raises its own)."""
    import linecache
    import traceback

    chain: list[BaseException] = []
    current: Optional[BaseException] = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for raised in reversed(chain):  # the original error first: its traceback goes deepest
        lines = [(frame.f_code.co_filename, line) for frame, line in traceback.walk_tb(raised.__traceback__)
                 if not _is_exporter_file(frame.f_code.co_filename)]
        if lines:
            filename, line = lines[-1]
            code = linecache.getline(filename, line).strip()
            return f" at {_short_path(filename)}:{line}" + (f" ({code})" if code else "")
    return ""


def _headline(text: str) -> str:
    first = text.splitlines()[0]
    return first.split(" This is step", 1)[0].strip()


def _summary_lines(text: str) -> list[str]:
    summary = text.split(_SUMMARY_HEADING, 1)[1].split(_SUMMARY_END, 1)[0]
    lines = []
    for line in summary.splitlines():
        line = line.strip()
        if line and line != "⬆️":
            lines.append(_CLASS_PREFIX.sub(lambda match: f"{match.group(1)}: ", line))
    return lines


def _clipped(line: str, limit: int = _MESSAGE_LINE_CHARS) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --- node names: /<module path>/.../<op> ---------------------------------------------------
#
# Both exporters' files are renamed so that every scope in a node name is a full module path
# from the root (`/features/features.1/features.1.conv/features.1.conv.0/Conv`): the form
# `layers.layer_key` reads without guessing.


def name_torchscript_nodes_by_module(path: Path, module_paths: set[str]) -> None:
    """Rename the TorchScript exporter's nodes whose scoped name does not read as their module path.

    That exporter names a scope by the module's last attribute name, keeping the container's
    name before an index (`layer1.0`, `conv.0`, `ml.1.0`, but `a` for `md.a` of a ModuleDict),
    so `/features/features.1/conv/conv.0/Conv` is module `features.1.conv.0`. The real module
    paths (`named_modules()`) tell which reading is right. Names `layer_key` already reads right
    are kept, and the file is rewritten only if a name changed (weights stay where they are).
    """
    import onnx

    from .layers import layer_key

    model = onnx.load(os.fspath(path), load_external_data=False)
    nodes = list(_onnx_nodes(model.graph))
    used = {node.name: 0 for node in nodes}
    resolved: dict[tuple[str, ...], list[str]] = {}
    renamed = False
    for node in nodes:
        parts = node.name.split("/")
        if not node.name.startswith("/") or len(parts) < 3:
            continue  # a root op (`/Flatten`) or a name without scopes (`Identity_10`)
        scopes = tuple(parts[1:-1])
        if scopes not in resolved:
            resolved[scopes] = _full_scope_paths(scopes, module_paths)
        if layer_key(node.name) != resolved[scopes][-1]:
            node.name = _unique("/" + "/".join(resolved[scopes] + [parts[-1]]), used)
            renamed = True
    if renamed:
        Path(path).write_bytes(model.SerializeToString())


def _onnx_nodes(graph: Any) -> Iterator[Any]:
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _onnx_nodes(attribute.g)
            for subgraph in attribute.graphs:
                yield from _onnx_nodes(subgraph)


def _full_scope_paths(scopes: Sequence[str], module_paths: set[str]) -> list[str]:
    """The full module path of each scope of a TorchScript scope chain."""
    paths: list[str] = []
    path = ""
    for scope in scopes:
        path = _child_path(path, scope, module_paths)
        paths.append(path)
    return paths


def _child_path(parent: str, scope: str, module_paths: set[str]) -> str:
    parent_parts = parent.split(".") if parent else []
    scope_parts = scope.split(".")
    candidates = []
    # `conv.0` under `features.1.conv`: the scope repeats the end of the parent's path
    for overlap in range(min(len(scope_parts) - 1, len(parent_parts)), 0, -1):
        if parent_parts[-overlap:] == scope_parts[:overlap]:
            candidates.append(".".join(parent_parts + scope_parts[overlap:]))
    candidates.append(f"{parent}.{scope}" if parent else scope)
    for candidate in candidates:
        if candidate in module_paths:
            return candidate
    # `shared_1`: the second call of module `shared` (TorchScript numbers repeated scopes)
    repeated = re.fullmatch(r"(.+)_\d+", scope)
    if repeated is not None:
        again = _child_path(parent, repeated.group(1), module_paths)
        if again in module_paths:
            return again
    # `a` for `md.a`: the one module below the parent whose path ends with the scope
    below = [p for p in module_paths if p.startswith(f"{parent}." if parent else "") and p.endswith(f".{scope}")]
    return below[0] if len(below) == 1 else candidates[-1]


def name_dynamo_nodes_by_module(program: Any) -> None:
    """Rename the nodes of a dynamo ONNXProgram (`node_Conv_12`) `/<scope>/.../<OpType>` from
    the module scopes the exporter records (full paths already), so `layers.layer_key` gives
    module paths.

    A Conv (or Gemm) that absorbed an eval BatchNorm carries the BatchNorm's scope; it is given
    the scope of the conv it came from (found through the FX graph, else through the name of its
    weight) so both exporters key it alike."""
    fx_scopes = _fx_module_scopes(program)
    graph = program.model.graph
    initializer_names = set(graph.initializers)
    for subgraph in graph.subgraphs():
        initializer_names.update(subgraph.initializers)
    used: dict[str, int] = {}
    for node in graph.all_nodes():
        scopes = _node_module_scopes(node, fx_scopes, initializer_names)
        if scopes is None:
            continue
        node.name = _unique("/" + "/".join(list(scopes) + [node.op_type]), used)


def _node_module_scopes(node: Any, fx_scopes: Mapping[str, list[str]], initializer_names: set[str]) -> Optional[list[str]]:
    from .layers import NAME_SCOPES_KEY, REWRITE_RULE_KEY, WEIGHTED_OPS, absorbed_batch_norm, recorded_scopes

    recorded = recorded_scopes(node.metadata_props.get(NAME_SCOPES_KEY))
    if recorded is None:
        return None  # not made by the exporter from torch code: keep the name it has
    scopes = recorded[1:-1]  # [root, module scopes..., aten op]
    if node.op_type in WEIGHTED_OPS and absorbed_batch_norm(recorded, node.metadata_props.get(REWRITE_RULE_KEY, "")):
        return _producer_scopes(node, fx_scopes) or _weight_scopes(node, scopes, initializer_names) or scopes
    return scopes


def _fx_module_scopes(program: Any) -> dict[str, list[str]]:
    """FX node name -> the module paths it ran under, from the program's nn_module_stack."""
    exported = getattr(program, "exported_program", None)
    if exported is None:
        return {}
    scopes = {}
    for fx_node in exported.graph.nodes:
        stack = fx_node.meta.get("nn_module_stack") or {}
        paths = [entry[0] for entry in stack.values() if isinstance(entry, tuple) and entry and entry[0]]
        scopes[fx_node.name] = paths
    return scopes


_FX_FIRST_ARG = re.compile(r"args = \(%(\w+)")


def _producer_scopes(node: Any, fx_scopes: Mapping[str, list[str]]) -> Optional[list[str]]:
    """The scopes of the FX node whose output the BatchNorm normalized (the conv)."""
    match = _FX_FIRST_ARG.search(node.metadata_props.get(_FX_NODE_KEY, ""))
    if match is None:
        return None
    return fx_scopes.get(match.group(1)) or None


def _weight_scopes(node: Any, scopes: Sequence[str], initializer_names: set[str]) -> Optional[list[str]]:
    """The conv's module path from its weight, as scopes (see layers.weight_module_path)."""
    from .layers import weight_module_path

    weight = node.inputs[1] if len(node.inputs) > 1 else None
    weight_name = getattr(weight, "name", None) or ""
    path = weight_module_path(weight_name, scopes) if weight_name in initializer_names else None
    if path is None:
        return None
    parts = path.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _unique(name: str, used: dict[str, int]) -> str:
    """`name`, or `name_1`, `name_2`... if taken; `used` maps taken names to the last suffix tried."""
    candidate = name
    while candidate in used:
        used[name] += 1
        candidate = f"{name}_{used[name]}"
    used[candidate] = 0
    return candidate


# --- exporter plugins ---------------------------------------------------------------------


def _exported_by_plugin(model: object, inputs: object, name: str, path: Path) -> ExportedModel:
    load_failures = []
    for entry_point in _exporter_entry_points():
        try:
            plugin = entry_point.load()
        except Exception as error:  # a broken plugin must not hide the others
            load_failures.append(
                f"exporter plugin {entry_point.name!r} failed to load: {exporter_message(error, entry_point.name)}")
            continue
        try:
            handled = plugin.handles(model)
        except Exception as error:
            raise ExportError(f"model {name!r}: exporter plugin {entry_point.name!r} failed in handles(): "
                              f"{exporter_message(error, entry_point.name)}") from None
        if not handled:
            continue
        return _run_plugin(plugin, entry_point.name, model, inputs, name, path)
    message = (
        f"model {name!r}: don't know how to export {_type_name(model)}; pass a torch.nn.Module, an .onnx path, "
        f"an onnx.ModelProto, or install an exporter plugin (entry-point group {ENTRY_POINT_GROUP})"
    )
    raise ExportError("\n".join([message] + load_failures))


def _run_plugin(plugin: Any, plugin_name: str, model: object, inputs: object, name: str, path: Path) -> ExportedModel:
    try:
        dims = plugin.export(model, inputs, path)
    except Exception as error:
        raise ExportError(f"model {name!r}: exporter {plugin_name!r}: {exporter_message(error, plugin_name)}") from error
    if not path.is_file():
        raise ExportError(f"model {name!r}: exporter {plugin_name!r} wrote no ONNX file to {path}")
    return ExportedModel(path=path, exporter=plugin_name, inputs=_plugin_dims(dims, plugin_name, name))


def _plugin_dims(dims: object, plugin_name: str, name: str) -> dict[str, list[int]]:
    if dims is None:
        return {}
    valid = isinstance(dims, Mapping) and all(
        isinstance(key, str) and isinstance(value, (list, tuple)) and all(_is_int(d) for d in value)
        for key, value in dims.items()
    )
    if not valid:
        raise ExportError(
            f"model {name!r}: exporter {plugin_name!r} returned {_short_repr(dims)}; "
            "expected a dict of input name -> list of ints"
        )
    return {key: [int(d) for d in value] for key, value in dims.items()}  # type: ignore[union-attr]


def _exporter_entry_points() -> list[Any]:
    from importlib import metadata

    try:
        return list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    except TypeError:  # Python 3.9: entry_points() takes no arguments
        return list(metadata.entry_points().get(ENTRY_POINT_GROUP, []))  # type: ignore[attr-defined]


def _type_name(model: object) -> str:
    cls = type(model)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
