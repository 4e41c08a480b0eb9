"""Light reads of an ONNX model's bytes: protobuf's own parser reads the few fields asked for
and skips over the rest (the nodes, tensor data), so a field read here costs no Python work per
node.

* A small file's own bytes, handed to onnx's shape inference as they are (as_it_is).
  Before inference the loader's path parses the file into Python, clears the data of large
  tensors, fills the input dims and inlines local functions, then serializes the model again for
  onnx. For a file of at most DIRECT_PARSE_BYTES with no local functions, whose inputs all have
  fixed dims and whose tensors all keep their data (loader.keeps_data), that path changes
  nothing, and is work for nothing (a tenth of the engine's time on a 5,000-node decoder).
* The name and serialized type of each graph input, output and value info of onnx's inferred
  model (read_value_types): the value table decodes each distinct type once, keyed by its
  bytes, and reading them here saves serializing every type again (a twentieth of that time).
  onnx serializes the model it infers field by field, each field once, so the bytes of a type
  are the whole type.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple, Optional

import onnx
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from .input_dims import DATA_PROP_MAX_ELEMENTS
from .loader import SMALL_TENSOR_BYTES, keeps_data, nodes_keep_all_data
from .tables import ValueTypes


class AsItIs(NamedTuple):
    """A small file's light read, when its bytes can go to onnx's inference as they are."""

    model: Any  # the light read (see _light_classes)
    long_vector_input: bool  # an input (not an initializer) is a vector longer than DATA_PROP_MAX_ELEMENTS


def as_it_is(data: bytes) -> Optional[AsItIs]:
    """The light read of a small file's bytes when the loader's path would not change the model
    before inference (see above); None for any other file, and for anything wrong with it (the
    loader's path reports it)."""
    try:
        model = _light_classes()["Model"].FromString(data)
    except Exception:  # protobuf's DecodeError (or, were onnx's schema to change, a descriptor refused)
        return None
    if not model.HasField("graph") or model.ir_version <= 0 or model.functions or not _keeps_all_data(model.graph):
        return None
    inputs = model.graph.input
    # (an input listed twice is read as its last listing, as the input dims read it)
    types = {value_info.name: value_info.type for value_info in inputs}
    if len(inputs) > 1:  # (an IR < 4 graph lists every weight as an input too: they need no look)
        for initializer in model.graph.initializer:
            types.pop(initializer.name, None)
    kinds = [_input_kind(type_proto.SerializeToString()) for type_proto in types.values()]
    if _NOT_FIXED in kinds:
        return None
    return AsItIs(model, _LONG_VECTOR in kinds)


# The loader measures a tensor parsed and written again (TensorProto.ByteSize), which can take
# twice the bytes it takes in the file (a negative int32 written in 5 bytes takes 10 again; dims
# written packed, a tag each). What is within a quarter of the least limit in the file is within
# every limit; anything larger is parsed and measured as the loader measures it.
_SURELY_KEPT_BYTES = SMALL_TENSOR_BYTES // 4


def _keeps_all_data(graph: Any) -> bool:
    """The loader would clear the data of no tensor of the light read's graph: no tensor is over
    its limit (loader.keeps_data), at any depth of node or body."""
    if graph.sparse_initializer:  # (rare: the loader's path sees to them)
        return False
    byte_size = _light_classes()["Tensor"].ByteSize  # (a light tensor's size counts the fields it skips)
    try:
        for tensor in graph.initializer:  # (weights in the file: most often the first is over, and ends it)
            if byte_size(tensor) > _SURELY_KEPT_BYTES and not keeps_data(
                    onnx.TensorProto.FromString(tensor.SerializeToString())):
                return False
        large_nodes = [node for node in graph.node if len(node) > _SURELY_KEPT_BYTES]
        return nodes_keep_all_data([onnx.NodeProto.FromString(node) for node in large_nodes])
    except Exception:  # protobuf's DecodeError
        return False


def read_value_types(model_bytes: bytes) -> ValueTypes:
    """The graph's inputs, value infos and outputs, each as (name, serialized TypeProto)."""
    graph = _light_classes()["Types"].FromString(model_bytes).graph
    return ([(value_info.name, value_info.type) for value_info in graph.input],
            [(value_info.name, value_info.type) for value_info in graph.value_info],
            [(value_info.name, value_info.type) for value_info in graph.output])


_NOT_FIXED, _FIXED, _LONG_VECTOR = range(3)


@lru_cache(maxsize=256)
def _input_kind(type_bytes: bytes) -> int:
    """What a graph input's serialized TypeProto is: a tensor whose every dim is a size of 1 or
    more (_LONG_VECTOR: a vector longer than DATA_PROP_MAX_ELEMENTS), or another type."""
    type_proto = onnx.TypeProto.FromString(type_bytes)
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return _NOT_FIXED
    dims = type_proto.tensor_type.shape.dim
    if not all(dim.HasField("dim_value") and dim.dim_value > 0 for dim in dims):
        return _NOT_FIXED
    return _LONG_VECTOR if len(dims) == 1 and dims[0].dim_value > DATA_PROP_MAX_ELEMENTS else _FIXED


@lru_cache(maxsize=None)
def _light_classes() -> dict[str, Any]:
    """Messages reading parts of an ONNX model; every other field (tensor data...) is skipped.
    "Model": ir_version, opset_import, functions, and the graph's nodes (serialized), inputs,
    initializers (name, dims and element type) and sparse initializers (serialized). "Types":
    the name and serialized type of each graph input, value info and output."""
    onnx_file = descriptor_pb2.FileDescriptorProto()
    onnx.ModelProto.DESCRIPTOR.file.CopyToProto(onnx_file)
    light = descriptor_pb2.FileDescriptorProto(name="maccbudget_light_model.proto", package="maccbudget_light",
                                               syntax="proto2", dependency=[onnx_file.name])
    onnx_package = f".{onnx_file.package}."
    value_info = ".maccbudget_light.ValueInfo"
    # (a source file's input types as messages: protobuf merges a type written twice, as onnx does)
    _message(light, "Tensor", [("dims", 1, True, "int64"), ("data_type", 2, False, "int32"), ("name", 8, False, "string")])
    _message(light, "ValueInfo", [("name", 1, False, "string"), ("type", 2, False, onnx_package + "TypeProto")])
    _message(light, "Graph", [("node", 1, True, "bytes"), ("initializer", 5, True, ".maccbudget_light.Tensor"),
                              ("input", 11, True, value_info), ("sparse_initializer", 15, True, "bytes")])
    _message(light, "Model", [("ir_version", 1, False, "int64"), ("graph", 7, False, ".maccbudget_light.Graph"),
                              ("opset_import", 8, True, onnx_package + "OperatorSetIdProto"),
                              ("functions", 25, True, onnx_package + "FunctionProto")])
    _message(light, "TypedValue", [("name", 1, False, "string"), ("type", 2, False, "bytes")])
    typed_value = ".maccbudget_light.TypedValue"
    _message(light, "TypesGraph", [("input", 11, True, typed_value), ("output", 12, True, typed_value),
                                   ("value_info", 13, True, typed_value)])
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
            "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
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
