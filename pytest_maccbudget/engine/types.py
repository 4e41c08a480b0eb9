"""Plain data types shared by the cost engine: tensors, node views, costs."""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np
from onnx import AttributeProto, TensorProto, helper, numpy_helper

Shape = tuple[int, ...]


class UnresolvedShape(Exception):
    """Raised by a cost function when a shape (or constant value) it needs is not known."""

    def __init__(self, tensor_name: str, what: str = "shape") -> None:
        super().__init__(f"{what} of tensor {tensor_name!r} is not known")
        self.tensor_name = tensor_name
        self.what = what


class UnsupportedAttributes(Exception):
    """Raised by a cost function for a form of a known op that has no counting rule."""


class InputsDoNotFit(Exception):
    """Raised by a cost function when the node's input shapes contradict each other (an input
    with other channels than its weight reads): no run of the node exists to count."""


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


class TensorInfo:
    """What the engine knows about one tensor. `shape` is None when unknown.

    `bounded`: the shape (or the value) is an upper bound, not the exact figure: it depends on
    data (the boxes NonMaxSuppression keeps, the entries NonZero finds...).
    """

    __slots__ = ("name", "shape", "dtype", "value_source", "is_constant", "bounded", "numel", "nbytes", "_value",
                 "_decoded")

    def __init__(self, name: str, shape: Optional[Shape], dtype: int = TensorProto.FLOAT, value_source: Any = None,
                 is_constant: bool = False, bounded: bool = False) -> None:
        self.name = name
        self.shape = shape
        self.dtype = dtype
        # known value: an array, a TensorProto decoded on first use, or a function computing it
        self.value_source = value_source
        self.is_constant = is_constant  # weight or value known before the graph runs
        self.bounded = bounded
        self.numel: Optional[int] = None if shape is None else math.prod(shape)
        bits = _BITS_BY_DTYPE.get(dtype)
        # bytes of the tensor (None when its shape or element size is not known)
        self.nbytes: Optional[int] = None if self.numel is None or bits is None else (self.numel * bits + 7) // 8
        self._value: Optional[np.ndarray] = None
        self._decoded = False

    @property
    def value(self) -> Optional[np.ndarray]:
        if not self._decoded:
            self._value = _decode_value(self.value_source)
            self._decoded = True
        return self._value

    def __repr__(self) -> str:
        flags = (", constant" if self.is_constant else "") + (", bounded" if self.bounded else "")
        return f"TensorInfo({self.name!r}, {self.shape}, dtype={self.dtype}{flags})"


def _decode_value(source: Any) -> Optional[np.ndarray]:
    if source is None or isinstance(source, np.ndarray):
        return source
    if isinstance(source, TensorProto):
        return decode_small_tensor(source)
    return source()


def attribute_value(attribute: AttributeProto) -> Any:
    """The Python value of an attribute (strings decoded; tensors decoded when small)."""
    kind = attribute.type
    if kind == AttributeProto.INT:
        return attribute.i
    if kind == AttributeProto.INTS:
        return list(attribute.ints)
    if kind == AttributeProto.FLOAT:
        return attribute.f
    if kind == AttributeProto.STRING:
        return attribute.s.decode("utf-8", "replace")
    if kind == AttributeProto.TENSOR:
        return decode_small_tensor(attribute.t)
    if kind == AttributeProto.FLOATS:
        return list(attribute.floats)
    if kind == AttributeProto.STRINGS:
        return [s.decode("utf-8", "replace") for s in attribute.strings]
    return helper.get_attribute_value(attribute)


class NodeView:
    """One ONNX node as a cost function sees it: resolved input/output tensors and attributes.

    Omitted optional inputs/outputs (empty names in ONNX) are None. Attributes are decoded
    when first asked for; subgraphs are not attributes here (the profiler costs them).
    """

    __slots__ = ("name", "op_type", "domain", "inputs", "outputs", "opset", "_attrs", "_proto", "_named")

    def __init__(self, name: str, op_type: str, domain: str, inputs: tuple[Optional[TensorInfo], ...],
                 outputs: tuple[Optional[TensorInfo], ...], attrs: Optional[dict[str, Any]] = None, opset: int = 0,
                 proto: Any = None) -> None:
        self.name = name
        self.op_type = op_type
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.opset = opset  # the model's opset version for this node's domain (0 if not declared)
        self._attrs: Optional[dict[str, Any]] = attrs
        self._proto = proto  # the NodeProto whose attributes are decoded on first use
        self._named: Optional[dict[str, AttributeProto]] = None  # its attributes by name, made on first use

    @property
    def attrs(self) -> dict[str, Any]:
        if self._attrs is None:
            protos = self._proto.attribute if self._proto is not None else ()
            self._attrs = {a.name: attribute_value(a) for a in protos
                           if a.type not in (AttributeProto.GRAPH, AttributeProto.GRAPHS)}
        return self._attrs

    def attr(self, name: str, default: Any = None) -> Any:
        """One attribute, decoded on its own (most rules read one or two of a node's attributes)."""
        if self._attrs is not None or self._proto is None:
            return self.attrs.get(name, default)
        named = self._named
        if named is None:  # (reversed: of two attributes of one name, the first is the one read)
            named = self._named = {attribute.name: attribute for attribute in reversed(self._proto.attribute)
                                   if attribute.type not in (AttributeProto.GRAPH, AttributeProto.GRAPHS)}
        attribute = named.get(name)
        return default if attribute is None else attribute_value(attribute)

    def subgraph(self, name: str) -> Any:
        """The GraphProto of a graph attribute (an If's branch, a Loop's body), None if absent."""
        for attribute in self._proto.attribute if self._proto is not None else ():
            if attribute.name == name and attribute.type == AttributeProto.GRAPH:
                return attribute.g
        return None

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
        value = tensor.value
        if value is None:
            raise UnresolvedShape(tensor.name, "value")
        return value

    def output_numel(self, index: int = 0) -> int:
        return math.prod(self.output_shape(index))

    @property
    def bounded(self) -> bool:
        """Some input or output is an upper bound (its shape or value depends on data)."""
        return any(t is not None and t.bounded for t in self.inputs + self.outputs)


class OpCost(NamedTuple):
    """The compute of one node: multiply-accumulates and primitive floating-point ops."""

    macs: int = 0
    flops: int = 0
    note: str = ""
    bound: bool = False  # the counts are worst cases (the work itself depends on data, as NMS's does)
    # with `bound`: which counts ("macs", "flops") are worst cases; None: both
    bound_metrics: Optional[tuple[str, ...]] = None


CostFn = Callable[[NodeView], OpCost]
