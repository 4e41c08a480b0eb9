"""Turn what a test gives (a torch module, an ONNX file or ModelProto, or anything an exporter
plugin handles) into an ONNX file the engine can profile.

torch is imported here only, and only inside functions: importing this module costs nothing
when `--macc-budget` is off. onnx is imported only to save a ModelProto or to rename the nodes
of a file just exported.

Exporters for torch models (ini `macc_budget_exporter`):

* ``"torchscript"`` (the default): torch's TorchScript-based exporter (``dynamo=False``).
  A few milliseconds for a small model, about 3 s for a BERT-base encoder. torch >= 2.9 calls it
  deprecated; the warning is silenced during export.
* ``"dynamo"``: the ``torch.export``-based exporter (``dynamo=True``). About 2.5 s per model even
  for a one-layer model (the first export of a process pays most of it), and it needs the
  ``onnxscript`` package.

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

import ast
import contextlib
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
_WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"
_FX_NODE_KEY = "pkg.torch.onnx.fx_node"
_REWRITE_RULE_KEY = "pkg.onnxscript.rewriter.rule_name"
_QUIET_LOGGERS = ("torch.onnx", "onnxscript")  # "torchvision is not installed. Skipping ..." and such


class ExportError(Exception):
    """A model could not be turned into an ONNX file; the message names the model."""


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

    tensors = _example_tensors(torch, specs, _module_device(torch, module))
    by_name = isinstance(inputs, Mapping)
    args = () if by_name else tuple(tensors)
    kwargs = {spec.name: tensor for spec, tensor in zip(specs, tensors)} if by_name else None
    input_names = _onnx_input_names(specs, arg_names, by_name)
    try:
        with _eval_mode(module), torch.no_grad(), _mha_fastpath_disabled(torch), _one_thread(torch), _quiet_export(torch):
            program = torch.onnx.export(
                module,
                args,
                os.fspath(path) if exporter == "torchscript" else None,
                kwargs=kwargs,
                input_names=input_names,
                dynamo=exporter == "dynamo",
                verbose=False,
            )
    except Exception as error:  # anything the exporter raises is the test's failure message
        raise ExportError(f"model {name!r}: {exporter_message(error, exporter)}") from error
    if exporter == "torchscript":
        name_torchscript_nodes_by_module(path, {module_name for module_name, _ in module.named_modules() if module_name})
    else:
        name_dynamo_nodes_by_module(program)
        _save_program(program, path, name)
    return ExportedModel(path=path, exporter=exporter, inputs=recorded_inputs(specs))


def _save_program(program: Any, path: Path, name: str) -> None:
    try:
        program.save(os.fspath(path))  # weights inside the file (external only past protobuf's 2 GB)
    except OSError as error:
        raise ExportError(f"model {name!r}: cannot write {path}: {error}") from error


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


def _module_device(torch: Any, module: Any) -> Any:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def _example_tensors(torch: Any, specs: Sequence[InputSpec], device: Any) -> list[Any]:
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
def _eval_mode(module: Any) -> Iterator[None]:
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
def _mha_fastpath_disabled(torch: Any) -> Iterator[None]:
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


@contextlib.contextmanager
def _quiet_export(torch: Any) -> Iterator[None]:
    """torch's own deprecation notices (the TorchScript exporter, pytree internals), tracer
    warnings raised inside torch's code (nn.functional's shape checks) and the dynamo exporter's
    registry log lines say nothing about the user's model. Tracer warnings from the user's code
    stay: they tell that the traced graph may depend on the example values."""
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"torch\.")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


# --- exporter messages --------------------------------------------------------------------

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_SUMMARY_HEADING = "## Exception summary"
_SUMMARY_END = "(Refer to the full stack trace"
_CLASS_PREFIX = re.compile(r"^<class '(?:[\w.]+\.)?(\w+)'>:\s*")


def exporter_message(error: BaseException, exporter: str = DEFAULT_EXPORTER) -> str:
    """The first meaningful lines of what the exporter said, without a traceback.

    The dynamo exporter wraps the real error in a page of advice; its "Exception summary"
    section holds the errors that matter ("RuntimeError: ..."), so those are kept with the
    page's first sentence."""
    text = _ANSI_ESCAPE.sub("", str(error)).strip()
    if _SUMMARY_HEADING in text:
        lines = [_headline(text)] + _summary_lines(text)
    else:
        body = [line.rstrip() for line in text.splitlines() if line.strip()]
        first = f"{type(error).__name__}: {body[0]}" if body else type(error).__name__
        lines = [first] + body[1:]
    if isinstance(error, ModuleNotFoundError) and error.name == "onnxscript":
        lines.append(f"the {exporter!r} exporter needs the onnxscript package (pip install onnxscript)")
    return "\n".join(_clipped(line) for line in lines[:_MESSAGE_LINES])


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


def _clipped(line: str) -> str:
    return line if len(line) <= _MESSAGE_LINE_CHARS else line[: _MESSAGE_LINE_CHARS - 3] + "..."


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
    recorded = _recorded_scopes(node.metadata_props.get(_NAME_SCOPES_KEY))
    if recorded is None:
        return None  # not made by the exporter from torch code: keep the name it has
    scopes = recorded[1:-1]  # [root, module scopes..., aten op]
    if node.op_type in _WEIGHTED_OPS and _absorbed_batch_norm(node, recorded):
        return _producer_scopes(node, fx_scopes) or _weight_scopes(node, scopes, initializer_names) or scopes
    return scopes


def _recorded_scopes(text: Optional[str]) -> Optional[list[str]]:
    if not text:
        return None
    try:
        scopes = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        return None
    return scopes


def _absorbed_batch_norm(node: Any, recorded: Sequence[str]) -> bool:
    rules = node.metadata_props.get(_REWRITE_RULE_KEY, "")
    return "batch_norm" in recorded[-1] or "FuseBatchNorm" in rules


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
    """The conv's module path from its weight `<path>.weight`, when that module sits beside the
    BatchNorm (the exporter merges identical weights, so a name from another block is refused)."""
    weight = node.inputs[1] if len(node.inputs) > 1 else None
    weight_name = getattr(weight, "name", None) or ""
    if weight_name not in initializer_names or not weight_name.endswith(".weight"):
        return None
    from .layers import module_path

    path = weight_name[: -len(".weight")]
    bn_path = module_path(scopes)
    if path.rpartition(".")[0] != bn_path.rpartition(".")[0]:
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
            load_failures.append(f"exporter plugin {entry_point.name!r} failed to load: {exporter_message(error)}")
            continue
        try:
            handled = plugin.handles(model)
        except Exception as error:
            raise ExportError(f"model {name!r}: exporter plugin {entry_point.name!r} failed in handles(): "
                              f"{exporter_message(error)}") from None
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
        raise ExportError(f"model {name!r}: exporter {plugin_name!r}: {exporter_message(error)}") from error
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
