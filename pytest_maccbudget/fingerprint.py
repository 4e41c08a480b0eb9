"""What a torch model's exported graph depends on, in two parts, for the measurement cache.

* `static_fingerprint(model, inputs)`: everything readable without running the model: the module
  tree (each module's class and plain attributes: a Conv2d's stride, a block's `self.scale`,
  a config object's fields), every parameter's and buffer's name, shape and dtype, which of
  them are one shared tensor (tied weights), which hold the same bytes (exporters merge those)
  and which are all zeros, TorchScript code of scripted submodules, and the inputs (names,
  shapes, dtypes, and the bytes of example tensors given). A hash of it is the cache key.
* `CodeRecord`: the code that ran while the model computed, recorded during one forward pass
  under `sys.setprofile` when the entry is written: for each function of the user's code its
  module, qualified name and a digest of its bytecode and constants (not its line numbers:
  a comment changes nothing), and the plain global values it reads; for code from installed
  packages, the package's version. `verify` re-reads those functions from the modules as they
  are now: a change inside a helper that forward() calls makes the entry stale.

Python 3.11+ (code objects carry their qualified name). torch is never imported here: the
model and its tensors bring their own methods; `torch` is taken from sys.modules when needed.
"""
from __future__ import annotations

import enum
import hashlib
import importlib
import json
import os
import sys
import sysconfig
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

SUPPORTED = sys.version_info >= (3, 11)
_PLAIN = (type(None), bool, int, float, complex, str, bytes)
_MODULE_INTERNALS = frozenset({"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"})
_HOOK_DICTS = "_hooks"  # torch keeps hooks in dicts whose names end so (_forward_hooks, ...)
_OBJECT_DEPTH = 2  # how far into non-module objects (a config, a dataclass) attributes are read
_STDLIB = (os.path.realpath(sysconfig.get_paths()["stdlib"]), os.path.realpath(sysconfig.get_paths()["platstdlib"]))
_INSTALLED_DIRS = ("site-packages", "dist-packages")


def digest(data: object) -> str:
    """A stable hex digest of JSON-able data."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- what can be read without running the model ----------------------------------------------


def static_fingerprint(model: Any, specs: Iterable[Any], keyword_inputs: bool) -> dict[str, Any]:
    """The model and its inputs as data (see the module docstring); `specs` are
    export.InputSpec values, `keyword_inputs` whether they are passed by name."""
    return {
        "modules": [_module_entry(path, module) for path, module in model.named_modules(remove_duplicate=False)],
        "tensors": _tensor_entries(model),
        "inputs": {"by_name": keyword_inputs, "specs": [_spec_entry(spec) for spec in specs]},
    }


def _module_entry(path: str, module: Any) -> list[Any]:
    cls = type(module)
    entry: list[Any] = [path, f"{cls.__module__}.{cls.__qualname__}", _attributes(module)]
    script_code = getattr(module, "code", None) if _is_script_module(module) else None
    if isinstance(script_code, str):
        entry.append(script_code)
    return entry


def _is_script_module(module: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(module, torch.jit.ScriptModule)


def _attributes(module: Any) -> dict[str, Any]:
    """A module's own attributes that can change its graph: plain values, and what an object
    attribute (a config) holds; hooks by name (their code runs in forward)."""
    attributes: dict[str, Any] = {}
    for name, value in vars(module).items():
        if name in _MODULE_INTERNALS:
            continue
        if name.endswith(_HOOK_DICTS) and isinstance(value, Mapping):
            attributes[name] = [_plain(hook, 0) for hook in value.values()]
            continue
        attributes[name] = _plain(value, 0)
    return attributes


def _plain(value: Any, depth: int) -> Any:
    """`value` as JSON-able data that changes when the value does: plain values as they are,
    containers item by item, functions and classes by name, other objects by their fields."""
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, _PLAIN):
        return value if not isinstance(value, (bytes, complex)) else repr(value)
    if isinstance(value, enum.Enum):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item, depth) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted(repr(_plain(item, depth)) for item in value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item, depth) for key, item in value.items()}
    return _object(value, depth)


def _object(value: Any, depth: int) -> Any:
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
    if _is_tensor(value):
        return {"tensor": list(value.shape), "dtype": str(value.dtype)}
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if type(value).__module__ == "torch":  # torch.dtype, torch.device, torch.Size: their text
        return f"{kind}:{value}"
    fields = getattr(value, "__dict__", None)
    if depth >= _OBJECT_DEPTH or not isinstance(fields, dict) or _is_module(value):
        return kind
    return {"object": kind, "fields": {name: _plain(item, depth + 1) for name, item in fields.items()}}


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _is_module(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def _tensor_entries(model: Any) -> dict[str, Any]:
    """Name, shape and dtype of every parameter and buffer (shared ones under each name), and
    which names are one tensor, hold equal bytes, or are all zeros."""
    named = list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))
    shapes = [[name, list(tensor.shape), str(tensor.dtype)] for name, tensor in named]
    by_object: dict[int, list[str]] = {}
    by_bytes: dict[str, list[str]] = {}
    zeros: list[str] = []
    for name, tensor in named:
        by_object.setdefault(id(tensor), []).append(name)
        content = _content_digest(tensor)
        if content is not None:
            by_bytes.setdefault(content, []).append(name)
            if _all_zero(tensor):
                zeros.append(name)
    return {
        "shapes": shapes,
        "shared": sorted(names for names in by_object.values() if len(names) > 1),
        "equal": sorted(sorted(names) for names in by_bytes.values() if len(names) > 1),
        "zeros": sorted(zeros),
    }


def _content_digest(tensor: Any) -> Optional[str]:
    """A digest of a tensor's bytes (None for one without data, e.g. on the meta device)."""
    if getattr(tensor, "is_meta", False) or getattr(tensor, "is_sparse", False):
        return None
    data = tensor.detach().cpu().contiguous().reshape(-1)
    if data.numel() == 0:
        return "empty:" + str(tensor.dtype)
    raw = data.view(sys.modules["torch"].uint8).numpy()
    return str(tensor.dtype) + ":" + hashlib.blake2b(memoryview(raw), digest_size=16).hexdigest()


def _all_zero(tensor: Any) -> bool:
    return bool((tensor.detach() == 0).all())


def _spec_entry(spec: Any) -> list[Any]:
    example = getattr(spec, "example", None)
    content = _content_digest(example) if example is not None else None
    return [spec.name, list(spec.shape), spec.dtype, content]


# --- the code that ran -------------------------------------------------------------------------


@dataclass
class CodeRecord:
    """What ran while the model computed: user functions by (module, qualified name) with their
    digests and the plain globals they read, and the versions of the installed packages whose
    code ran. JSON-able through `to_json` / `from_json`."""

    functions: dict[str, str] = field(default_factory=dict)        # "module:qualname" -> code digest
    global_values: dict[str, Any] = field(default_factory=dict)    # "module:name" -> plain value
    packages: dict[str, str] = field(default_factory=dict)         # top-level package -> version
    unresolvable: bool = False  # user code that cannot be found again by name (a lambda in a function)

    def to_json(self) -> dict[str, Any]:
        return {"functions": self.functions, "globals": self.global_values, "packages": self.packages,
                "unresolvable": self.unresolvable}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "CodeRecord":
        return cls(dict(data["functions"]), dict(data["globals"]), dict(data["packages"]), bool(data["unresolvable"]))


class CodeRecorder:
    """`with CodeRecorder(is_user_file) as recorder: model(...)` records what ran (a CodeRecord)."""

    def __init__(self, is_user_file: Callable[[str], bool]) -> None:
        self.is_user_file = is_user_file
        self.record = CodeRecord()
        self._seen: set[types.CodeType] = set()
        self._previous: Any = None

    def __enter__(self) -> "CodeRecorder":
        self._previous = sys.getprofile()
        sys.setprofile(self._on_event)
        return self

    def __exit__(self, *exc_info: object) -> None:
        sys.setprofile(self._previous)

    def _on_event(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if event != "call" or frame.f_code in self._seen:
            return
        self._seen.add(frame.f_code)
        try:
            self._note(frame)
        except Exception:  # noqa: BLE001  (recording must never break the model's run)
            self.record.unresolvable = True

    def _note(self, frame: types.FrameType) -> None:
        code = frame.f_code
        filename = code.co_filename
        if filename.startswith("<") or _is_stdlib(filename):
            return
        module = frame.f_globals.get("__name__", "")
        if module.split(".", 1)[0] == _OWN_PACKAGE:  # this recorder's own exit
            return
        if not self.is_user_file(filename):
            self._note_package(module)
            return
        if "<locals>" in code.co_qualname or "<lambda>" in code.co_qualname or not module:
            self.record.unresolvable = True
            return
        self.record.functions[f"{module}:{code.co_qualname}"] = code_digest(code)
        for name in code.co_names:
            value = frame.f_globals.get(name, _MISSING)
            if isinstance(value, _PLAIN + (tuple, list, frozenset, enum.Enum)):
                self.record.global_values[f"{module}:{name}"] = _plain(value, 0)

    def _note_package(self, module: str) -> None:
        package = module.split(".", 1)[0]
        if package and package not in self.record.packages:
            self.record.packages[package] = package_version(package)


_MISSING = object()
_OWN_PACKAGE = __name__.split(".", 1)[0]


def _is_stdlib(filename: str) -> bool:
    path = os.path.realpath(filename)
    return path.startswith(_STDLIB) and not any(part in path for part in _INSTALLED_DIRS)


def package_version(package: str) -> str:
    """The installed version of a top-level package, or "?" when it has none."""
    module = sys.modules.get(package)
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        from importlib.metadata import PackageNotFoundError, version as metadata_version

        return metadata_version(package)
    except (PackageNotFoundError, ValueError):
        return "?"


def code_digest(code: types.CodeType) -> str:
    """A digest of what a code object does: its bytecode, names and constants (nested code by
    its own digest), not where it sits in the file."""
    digest_of = hashlib.sha256()
    digest_of.update(code.co_code)
    digest_of.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
                           code.co_argcount, code.co_kwonlyargcount, code.co_flags)).encode())
    for constant in code.co_consts:
        digest_of.update(_constant_text(constant).encode())
    return digest_of.hexdigest()


def _constant_text(constant: Any) -> str:
    if isinstance(constant, types.CodeType):
        return "code:" + code_digest(constant)
    if isinstance(constant, frozenset):  # its repr's order depends on string hashing
        return "frozenset:" + repr(sorted(repr(item) for item in constant))
    if isinstance(constant, tuple):
        return "(" + ",".join(_constant_text(item) for item in constant) + ")"
    return type(constant).__name__ + ":" + repr(constant)


def verify(record: CodeRecord) -> Optional[str]:
    """None when every function, global and package of the record is as it was; else what
    changed, in a few words (the entry is then stale)."""
    if record.unresolvable:
        return "code that cannot be found again by name ran (a lambda or a function defined inside another)"
    for package, version in record.packages.items():
        if package_version(package) != version:
            return f"package {package} is no longer version {version}"
    for key, expected in record.functions.items():
        if _current_digest(key) != expected:
            return f"{key.replace(':', '.')} changed"
    for key, expected in record.global_values.items():
        if _current_global(key) != expected:
            return f"global {key.replace(':', '.')} changed"
    return None


def _current_digest(key: str) -> Optional[str]:
    module_name, qualname = key.split(":", 1)
    target: Any = _imported(module_name)
    for part in qualname.split("."):
        target = getattr(target, part, None) if target is not None else None
    code = getattr(getattr(target, "__func__", target), "__code__", None)
    return code_digest(code) if isinstance(code, types.CodeType) else None


def _current_global(key: str) -> Any:
    module_name, name = key.split(":", 1)
    module = _imported(module_name)
    return _plain(getattr(module, name), 0) if module is not None and hasattr(module, name) else _MISSING


def _imported(module_name: str) -> Optional[types.ModuleType]:
    module = sys.modules.get(module_name)
    if module is not None:
        return module
    try:
        return importlib.import_module(module_name)
    except Exception:  # noqa: BLE001  (a module that no longer imports: the entry is stale)
        return None


def user_file_test(root: Path) -> Callable[[str], bool]:
    """Whether a file is the user's code: under `root` and not in an installed package."""
    root_text = os.path.realpath(root) + os.sep
    cache: dict[str, bool] = {}

    def is_user_file(filename: str) -> bool:
        if filename not in cache:
            path = os.path.realpath(filename)
            cache[filename] = path.startswith(root_text) and not any(part in path for part in _INSTALLED_DIRS)
        return cache[filename]

    return is_user_file


def record_forward(model: Any, specs: list[Any], by_name: bool, is_user_file: Callable[[str], bool]) -> CodeRecord:
    """Run the model once on the export's example inputs, as the export runs it (eval mode, no
    grad, MultiheadAttention's fused path off) and record what ran. A forward that fails gives
    a record that never verifies: such a model is not cached."""
    from .export import eval_mode, example_tensors, mha_fastpath_disabled, module_device

    torch = sys.modules["torch"]
    tensors = example_tensors(torch, specs, module_device(torch, model))
    recorder = CodeRecorder(is_user_file)
    try:
        with eval_mode(model), torch.no_grad(), mha_fastpath_disabled(torch), recorder:
            if by_name:
                model(**{spec.name: tensor for spec, tensor in zip(specs, tensors)})
            else:
                model(*tensors)
    except Exception:  # noqa: BLE001  (the export succeeded; this run is only for the record)
        recorder.record.unresolvable = True
    return recorder.record
