"""Light reads of an ONNX model's bytes: protobuf's own parser reads the few fields asked for
and skips over the rest (the nodes, tensor data), so a field read here costs no Python work per
node.

* A small file's own bytes, handed to onnx's shape inference as they are (read_small_file).
  Before inference the engine may fill input dims, inline local functions and clear the data of
  large tensors. For a file of at most DIRECT_PARSE_BYTES with no local functions whose inputs
  all have fixed dims, none of this changes what the engine reads: the dims are there, and the
  data of a tensor the loader would clear is never decoded (types.decode_small_tensor refuses it
  by the loader's own limits). Parsing such a file whole into Python, clearing it and
  serializing it again for onnx's inference is then work for nothing (a tenth of the engine's
  time on a 5,000-node decoder).
* The name and serialized type of each graph input, output and value info of onnx's inferred
  model (read_value_types): the value table decodes each distinct type once, keyed by its
  bytes, and reading them here saves serializing every type again (a twentieth of that time).
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, NamedTuple, Optional, Union

import onnx
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from .input_dims import DATA_PROP_MAX_ELEMENTS
from .loader import DIRECT_PARSE_BYTES
from .tables import ValueTypes


class SmallFile(NamedTuple):
    data: bytes  # the file's bytes, as they are
    model: Any  # the light read of them (see _light_classes)
    long_vector_input: bool  # an input (not an initializer) is a vector longer than DATA_PROP_MAX_ELEMENTS


def read_small_file(path: Union[str, os.PathLike]) -> Optional[SmallFile]:
    """The file's bytes and their light read when the file is small enough to go to onnx's
    inference as it is, has a graph and no local functions, and every input of its graph that
    is not an initializer is a tensor of fixed dims (nothing for the input dims to fill or
    note); None for any other file, and for anything wrong with it (the loader's path reports it)."""
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size > DIRECT_PARSE_BYTES:
                return None
            data = handle.read()
        model = _light_classes()["Model"].FromString(data)
    except Exception:  # OSError; protobuf's DecodeError (or, were onnx's schema to change, a descriptor refused)
        return None
    if not model.HasField("graph") or model.ir_version <= 0 or model.functions:
        return None
    graph = model.graph
    # (most inputs have fixed dims; an IR < 4 graph lists every weight as an input too)
    others = [(name, kind) for name, kind in [(value_info.name, _input_kind(value_info.type)) for value_info in graph.input]
              if kind != _FIXED]
    initializers = {initializer.name for initializer in graph.initializer} if others else set()
    if any(kind == _CORRUPT or (kind == _NOT_FIXED and name not in initializers) for name, kind in others):
        return None
    return SmallFile(data, model, any(kind == _LONG_VECTOR and name not in initializers for name, kind in others))


def read_value_types(model_bytes: bytes) -> ValueTypes:
    """The graph's inputs, value infos and outputs, each as (name, serialized TypeProto)."""
    graph = _light_classes()["Types"].FromString(model_bytes).graph
    return ([(value_info.name, value_info.type) for value_info in graph.input],
            [(value_info.name, value_info.type) for value_info in graph.value_info],
            [(value_info.name, value_info.type) for value_info in graph.output])


_CORRUPT, _NOT_FIXED, _FIXED, _LONG_VECTOR = range(4)


@lru_cache(maxsize=256)
def _input_kind(type_bytes: bytes) -> int:
    """What a graph input's serialized TypeProto is: a tensor whose every dim is a size of 1 or
    more (_LONG_VECTOR: a vector longer than DATA_PROP_MAX_ELEMENTS), another type, or not a
    TypeProto."""
    try:
        type_proto = onnx.TypeProto.FromString(type_bytes)
    except Exception:  # protobuf's DecodeError
        return _CORRUPT
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return _NOT_FIXED
    dims = type_proto.tensor_type.shape.dim
    if not all(dim.HasField("dim_value") and dim.dim_value > 0 for dim in dims):
        return _NOT_FIXED
    return _LONG_VECTOR if len(dims) == 1 and dims[0].dim_value > DATA_PROP_MAX_ELEMENTS else _FIXED


@lru_cache(maxsize=None)
def _light_classes() -> dict[str, Any]:
    """Messages reading parts of an ONNX model; every other field (the nodes, tensor data) is
    skipped. "Model": ir_version, opset_import, functions, and the graph's inputs (name and
    serialized type) and initializers (name and dims). "Types": the name and serialized type of
    each graph input, value info and output."""
    onnx_file = descriptor_pb2.FileDescriptorProto()
    onnx.ModelProto.DESCRIPTOR.file.CopyToProto(onnx_file)
    light = descriptor_pb2.FileDescriptorProto(name="maccbudget_light_model.proto", package="maccbudget_light",
                                               syntax="proto2", dependency=[onnx_file.name])
    onnx_package = f".{onnx_file.package}."
    value_info = ".maccbudget_light.ValueInfo"
    _message(light, "Tensor", [("dims", 1, True, "int64"), ("name", 8, False, "string")])
    _message(light, "ValueInfo", [("name", 1, False, "string"), ("type", 2, False, "bytes")])
    _message(light, "Graph", [("initializer", 5, True, ".maccbudget_light.Tensor"), ("input", 11, True, value_info)])
    _message(light, "Model", [("ir_version", 1, False, "int64"), ("graph", 7, False, ".maccbudget_light.Graph"),
                              ("opset_import", 8, True, onnx_package + "OperatorSetIdProto"),
                              ("functions", 25, True, onnx_package + "FunctionProto")])
    _message(light, "TypesGraph", [("input", 11, True, value_info), ("output", 12, True, value_info),
                                   ("value_info", 13, True, value_info)])
    _message(light, "Types", [("graph", 7, False, ".maccbudget_light.TypesGraph")])
    pool = descriptor_pool.DescriptorPool()  # (its own pool: nothing added to protobuf's default one)
    pool.Add(onnx_file)
    pool.Add(light)
    # every class of both files held here: protobuf keeps only weak references to the classes of
    # nested messages, which would otherwise be made again on every read
    get_class = getattr(message_factory, "GetMessageClass", None)  # (protobuf < 4.21: a factory's GetPrototype)
    get_class = get_class or message_factory.MessageFactory(pool).GetPrototype
    return {descriptor.name: get_class(descriptor)
            for file in (pool.FindFileByName(onnx_file.name), pool.FindFileByName(light.name))
            for descriptor in file.message_types_by_name.values()}


_SCALARS = {"int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
            "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
            "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES}


def _message(file: descriptor_pb2.FileDescriptorProto, name: str, fields: list[tuple[str, int, bool, str]]) -> None:
    message = file.message_type.add(name=name)
    for field_name, number, repeated, kind in fields:
        field = message.field.add(name=field_name, number=number, label=(
            descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED if repeated
            else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL))
        if kind in _SCALARS:
            field.type = _SCALARS[kind]
        else:
            field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
            field.type_name = kind
