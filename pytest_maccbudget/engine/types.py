"""Plain data types shared by the cost engine: tensors, node views, costs, layer rows."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Optional, Sequence

import numpy as np
from onnx import TensorProto, numpy_helper

Shape = tuple[int, ...]


class UnresolvedShape(Exception):
    """Raised by a cost function when a shape (or constant value) it needs is not known."""

    def __init__(self, tensor_name: str, what: str = "shape") -> None:
        super().__init__(f"{what} of tensor {tensor_name!r} is not known")
        self.tensor_name = tensor_name
        self.what = what


class UnsupportedAttributes(Exception):
    """Raised by a cost function for a form of a known op that has no counting rule."""


_BITS_BY_DTYPE: dict[int, int] = {
    TensorProto.FLOAT: 32, TensorProto.UINT8: 8, TensorProto.INT8: 8, TensorProto.UINT16: 16,
    TensorProto.INT16: 16, TensorProto.INT32: 32, TensorProto.INT64: 64, TensorProto.BOOL: 8,
    TensorProto.FLOAT16: 16, TensorProto.DOUBLE: 64, TensorProto.UINT32: 32, TensorProto.UINT64: 64,
    TensorProto.COMPLEX64: 64, TensorProto.COMPLEX128: 128, TensorProto.BFLOAT16: 16,
    TensorProto.FLOAT8E4M3FN: 8, TensorProto.FLOAT8E4M3FNUZ: 8, TensorProto.FLOAT8E5M2: 8,
    TensorProto.FLOAT8E5M2FNUZ: 8, TensorProto.UINT4: 4, TensorProto.INT4: 4,
}
for _name, _bits in (("FLOAT4E2M1", 4), ("INT2", 2), ("UINT2", 2), ("FLOAT8E8M0", 8)):
    if hasattr(TensorProto, _name):
        _BITS_BY_DTYPE[getattr(TensorProto, _name)] = _bits


def dtype_bits(elem_type: int) -> Optional[int]:
    """Bits per element of an ONNX element type; None for strings and unknown types."""
    return _BITS_BY_DTYPE.get(elem_type)


# Largest constant decoded to a numpy value (element count); larger ones only keep dims.
MAX_VALUE_ELEMENTS = 1 << 16


def decode_small_tensor(tensor: TensorProto) -> Optional[np.ndarray]:
    """The value of a small tensor that has its data in the model; None otherwise."""
    count = math.prod(tensor.dims)
    if count > MAX_VALUE_ELEMENTS or tensor.data_location == TensorProto.EXTERNAL:
        return None
    has_data = (tensor.raw_data or tensor.float_data or tensor.int32_data or tensor.int64_data
                or tensor.double_data or tensor.uint64_data or tensor.string_data)
    if count > 0 and not has_data:
        return None
    try:
        return numpy_helper.to_array(tensor)
    except Exception:  # malformed small tensor: its value is just not known
        return None


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


@dataclass(frozen=True)
class TensorInfo:
    """What the engine knows about one tensor. `shape` is None when unknown."""

    name: str
    shape: Optional[Shape]
    dtype: int = TensorProto.FLOAT
    # known constant value (small tensors only): an array, or a TensorProto decoded on first use
    value_source: Any = field(default=None, repr=False, compare=False)
    is_constant: bool = False  # weight or value known before the graph runs

    @cached_property
    def value(self) -> Optional[np.ndarray]:
        source = self.value_source
        if source is None or isinstance(source, np.ndarray):
            return source
        return decode_small_tensor(source)

    @property
    def numel(self) -> Optional[int]:
        return None if self.shape is None else numel(self.shape)

    @property
    def nbytes(self) -> Optional[int]:
        bits = dtype_bits(self.dtype)
        if self.shape is None or bits is None:
            return None
        return (numel(self.shape) * bits + 7) // 8


@dataclass(frozen=True)
class NodeView:
    """One ONNX node as a cost function sees it: resolved input/output tensors and attributes.

    Omitted optional inputs/outputs (empty names in ONNX) are None.
    """

    name: str
    op_type: str
    domain: str
    inputs: tuple[Optional[TensorInfo], ...]
    outputs: tuple[Optional[TensorInfo], ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    opset: int = 0  # the model's opset version for this node's domain (0 if not declared)

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def has_input(self, index: int) -> bool:
        return index < len(self.inputs) and self.inputs[index] is not None

    def input(self, index: int) -> TensorInfo:
        tensor = self.inputs[index] if index < len(self.inputs) else None
        if tensor is None:
            raise UnresolvedShape(f"{self.name}:input{index}", "presence")
        return tensor

    def input_shape(self, index: int) -> Shape:
        tensor = self.input(index)
        if tensor.shape is None:
            raise UnresolvedShape(tensor.name)
        return tensor.shape

    def output_shape(self, index: int = 0) -> Shape:
        tensor = self.outputs[index] if index < len(self.outputs) else None
        if tensor is None or tensor.shape is None:
            raise UnresolvedShape(tensor.name if tensor else f"{self.name}:output{index}")
        return tensor.shape

    def input_value(self, index: int) -> np.ndarray:
        """The constant value of an input (e.g. Reshape target, Resize scales)."""
        tensor = self.input(index)
        if tensor.value is None:
            raise UnresolvedShape(tensor.name, "value")
        return tensor.value

    def output_numel(self, index: int = 0) -> int:
        return numel(self.output_shape(index))


@dataclass(frozen=True)
class OpCost:
    """The compute of one node: multiply-accumulates and primitive floating-point ops."""

    macs: int = 0
    flops: int = 0
    note: str = ""


CostFn = Callable[[NodeView], OpCost]
