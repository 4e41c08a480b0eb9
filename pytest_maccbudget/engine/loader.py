"""Load an ONNX model without materialising its weights.

The file is memory-mapped and its protobuf wire format walked directly: the data fields of
large tensors (initializers, tensor attributes, sparse tensors, at any depth of subgraph or
local function) are left out while their dims and dtype are kept. Small tensors keep their
values, since shapes may depend on them (Reshape targets, axes, ConstantOfShape shapes).
External data is never opened, so a model whose weight file is missing still profiles.
"""
from __future__ import annotations

import mmap
import os
import stat
from itertools import chain
from typing import Iterable, Iterator, Optional, Union

import onnx
from onnx import ModelProto, TensorProto

from .errors import ModelError

# A tensor keeps its data when its payload is at most this many bytes...
SMALL_TENSOR_BYTES = 1024
# ...or, for int32/int64 tensors (shapes, axes, indices), at most this many.
SMALL_INT_TENSOR_BYTES = 64 * 1024
# Files up to this size are parsed whole and stripped afterwards.
DIRECT_PARSE_BYTES = 4 * 1024 * 1024
_SHAPE_DTYPES = {TensorProto.INT64, TensorProto.INT32}

# Message kinds and, per kind, the fields that hold nested messages worth walking into.
_MODEL, _GRAPH, _NODE, _ATTRIBUTE, _FUNCTION, _TRAINING, _SPARSE, _TENSOR = range(8)
_CHILDREN: dict[int, dict[int, int]] = {
    _MODEL: {7: _GRAPH, 25: _FUNCTION, 20: _TRAINING},
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},
    _NODE: {5: _ATTRIBUTE},
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _FUNCTION: {7: _NODE},
    _TRAINING: {1: _GRAPH, 2: _GRAPH},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},
}
# TensorProto fields that carry element data: float, int32, string, int64, raw, double, uint64.
_TENSOR_DATA_FIELDS = frozenset({4, 5, 6, 7, 9, 10, 11})
_TENSOR_DATA_TYPE_FIELD = 2

Buffer = Union[bytes, bytearray, memoryview, mmap.mmap]


class _Truncated(Exception):
    pass


def _read_varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise _Truncated(pos)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Truncated(pos)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fields(buf: memoryview, start: int, end: int):
    """Yield (field_number, wire_type, field_start, payload_start, payload_end) for one message."""
    pos = start
    while pos < end:
        field_start = pos
        tag, pos = _read_varint(buf, pos, end)
        field_number, wire_type = tag >> 3, tag & 7
        if field_number == 0:
            raise _Truncated(field_start)
        if wire_type == 0:
            _, next_pos = _read_varint(buf, pos, end)
            payload_start = pos
        elif wire_type == 1:
            payload_start, next_pos = pos, pos + 8
        elif wire_type == 2:
            length, payload_start = _read_varint(buf, pos, end)
            next_pos = payload_start + length
        elif wire_type == 5:
            payload_start, next_pos = pos, pos + 4
        else:  # groups (3/4) do not occur in ONNX
            raise _Truncated(field_start)
        if next_pos > end:
            raise _Truncated(field_start)
        yield field_number, wire_type, field_start, payload_start, next_pos
        pos = next_pos


def _tensor_keeps_data(buf: memoryview, start: int, end: int) -> bool:
    data_type = 0
    payload = 0
    for number, wire_type, _, payload_start, payload_end in _fields(buf, start, end):
        if number == _TENSOR_DATA_TYPE_FIELD and wire_type == 0:
            data_type, _ = _read_varint(buf, payload_start, payload_end)
        elif number in _TENSOR_DATA_FIELDS:
            payload += payload_end - payload_start
    limit = SMALL_INT_TENSOR_BYTES if data_type in _SHAPE_DTYPES else SMALL_TENSOR_BYTES
    return payload <= limit


def _rewrite(buf: memoryview, start: int, end: int, kind: int, out: list) -> None:
    """Append the message's fields to `out`, with large tensor data left out."""
    if kind == _TENSOR:
        if _tensor_keeps_data(buf, start, end):
            out.append(buf[start:end])
            return
        for number, _, field_start, _, field_end in _fields(buf, start, end):
            if number not in _TENSOR_DATA_FIELDS:
                out.append(buf[field_start:field_end])
        return
    children = _CHILDREN[kind]
    run_start = start  # contiguous fields copied as they are
    for number, wire_type, field_start, payload_start, payload_end in _fields(buf, start, end):
        child_kind = children.get(number)
        # a message this small cannot hold tensor data worth leaving out: copy it as it is
        if child_kind is None or wire_type != 2 or payload_end - payload_start <= SMALL_TENSOR_BYTES:
            continue
        if field_start > run_start:
            out.append(buf[run_start:field_start])
        child: list = []
        _rewrite(buf, payload_start, payload_end, child_kind, child)
        body = b"".join(child)
        out.append(buf[field_start:payload_start - _varint_size(payload_end - payload_start)])
        out.append(_encode_varint(len(body)))
        out.append(body)
        run_start = payload_end
    if end > run_start:
        out.append(buf[run_start:end])


def _varint_size(value: int) -> int:
    size = 1
    while value > 0x7F:
        value >>= 7
        size += 1
    return size


def skeleton_bytes(data: Buffer) -> bytes:
    """The serialized model with large tensor data left out (dims and dtypes kept)."""
    view = memoryview(data)
    out: list = []
    problem = None
    try:
        _rewrite(view, 0, len(view), _MODEL, out)
        return b"".join(out)
    except _Truncated as error:
        problem = f"truncated or corrupt protobuf near byte {error.args[0]}"
    except RecursionError:  # protobuf itself refuses nesting this deep
        problem = "messages nested too deeply"
    finally:
        # the slices in `out` export the buffer: drop them (and the frames of the walk, gone with
        # the exception) before releasing it, or the release and the mmap's close fail
        out.clear()
        view.release()
    raise ModelError(f"not a valid ONNX file: {problem}")


def load_skeleton(path: Union[str, os.PathLike]) -> ModelProto:
    """Read an ONNX file's graph, shapes and small constants; weights are not read."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelError("no such file")
    if os.path.isdir(path):
        raise ModelError("is a directory, not an ONNX file")
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise ModelError("the file is empty")
        if size <= DIRECT_PARSE_BYTES:
            return skeleton_of(handle.read())
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            stripped = skeleton_bytes(mapped)
    return parse_model(stripped)


def read_small_file(path: Union[str, os.PathLike]) -> Optional[bytes]:
    """The bytes of a regular file of 1 to DIRECT_PARSE_BYTES bytes; None for any other path (a
    large file, a device, a directory, a missing file...: load_skeleton reads it, or says why not)."""
    path = os.fspath(path)  # (TypeError for what is no path, as load_skeleton gives)
    try:
        with open(path, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode) or not 0 < status.st_size <= DIRECT_PARSE_BYTES:
                return None
            data = handle.read(status.st_size + 1)
    except (OSError, ValueError):  # (ValueError: a NUL or an unencodable character in the path)
        return None
    return data if len(data) == status.st_size else None  # (changed while read: load_skeleton reads it again)


def skeleton_of(data: bytes) -> ModelProto:
    """load_skeleton of a small file's bytes: protobuf's C++ parser, then clearing data, beats
    walking them in Python."""
    model = parse_model(data)
    _strip_model_in_place(model)
    return model


def parse_model(data: bytes) -> ModelProto:
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # protobuf's DecodeError
        raise ModelError("not a valid ONNX file: truncated or corrupt protobuf") from None
    if not model.HasField("graph") or model.ir_version <= 0:
        raise ModelError("not an ONNX model (no graph or IR version in the protobuf)")
    return model


def strip_model(model: ModelProto) -> ModelProto:
    """A copy of an in-memory model with the data of large tensors cleared."""
    skeleton = ModelProto()
    skeleton.CopyFrom(model)
    _strip_model_in_place(skeleton)
    return skeleton


def _strip_model_in_place(model: ModelProto) -> None:
    for tensor in chain(_graph_tensors(model.graph), *[_node_tensors(function.node) for function in model.functions]):
        _strip_tensor(tensor)


def keeps_data(tensor: TensorProto) -> bool:
    """Whether a file parsed whole keeps this tensor's data: its size is within the limit for its type."""
    return tensor.ByteSize() <= (SMALL_INT_TENSOR_BYTES if tensor.data_type in _SHAPE_DTYPES else SMALL_TENSOR_BYTES)


def nodes_keep_all_data(nodes: Iterable[onnx.NodeProto]) -> bool:
    """The data of no tensor held by these nodes (at any depth) would be cleared."""
    return all(map(keeps_data, _node_tensors(nodes)))


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    """The tensors of a graph that may be over their limit, at any depth: the clearing walk."""
    # (SMALL_TENSOR_BYTES is the smaller limit: a tensor within it keeps its data whatever its type)
    yield from (tensor for tensor in graph.initializer if tensor.ByteSize() > SMALL_TENSOR_BYTES)
    yield from (sparse.values for sparse in graph.sparse_initializer)
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: Iterable[onnx.NodeProto]) -> Iterator[TensorProto]:
    # a node too small to hold tensor data worth clearing is skipped without reading its attributes
    for node in nodes:
        if node.ByteSize() <= SMALL_TENSOR_BYTES:
            continue
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _graph_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _graph_tensors(subgraph)


def _strip_tensor(tensor: TensorProto) -> None:
    if keeps_data(tensor):
        return
    for field_name in ("raw_data", "float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data"):
        tensor.ClearField(field_name)
