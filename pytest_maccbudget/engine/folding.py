"""Evaluate small constant computations: the shape arithmetic of exported graphs.

Only values that a shape or a cost needs are computed, one node at a time, and never one whose
output would hold more than FOLD_MAX_ELEMENTS elements: the caller checks the output's size
(known from shape inference) before calling `evaluate`, and the numpy rules below check the
sizes they derive from their inputs (ConstantOfShape, Expand, Tile, Range) before allocating.
Weights are never computed. Ops without a rule here are run with onnx's reference
implementation, under the same size check.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
from onnx import helper, numpy_helper

# The largest value computed, in elements (a shape, an index list, a small mask).
FOLD_MAX_ELEMENTS = 1 << 16

Values = Sequence[Optional[np.ndarray]]
Attrs = Mapping[str, Any]
Rule = Callable[[Values, Attrs], Optional[np.ndarray]]


class TooLarge(Exception):
    """The value would exceed FOLD_MAX_ELEMENTS: it is not computed."""


def _check_size(shape: Sequence[int]) -> tuple[int, ...]:
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims) or math.prod(dims) > FOLD_MAX_ELEMENTS:
        raise TooLarge(dims)
    return dims


def _axes(values: Values, attrs: Attrs, index: int) -> Optional[list[int]]:
    """Axes from the attribute (old opsets) or the input at `index` (newer ones)."""
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    if index < len(values) and values[index] is not None:
        return [int(a) for a in np.asarray(values[index]).reshape(-1)]
    return None


def _int_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division truncating toward zero (ONNX's Div on integers)."""
    quotient = np.floor_divide(a, b)
    adjust = (np.remainder(a, b) != 0) & ((a < 0) ^ (b < 0))
    return quotient + adjust.astype(quotient.dtype)


def _div(values: Values, attrs: Attrs) -> np.ndarray:
    a, b = values[0], values[1]
    if np.issubdtype(a.dtype, np.integer):
        return _int_divide(a, b).astype(a.dtype)
    return np.divide(a, b).astype(a.dtype)


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Rule:
    def rule(values: Values, attrs: Attrs) -> np.ndarray:
        a, b = values[0], values[1]
        return np.asarray(fn(a, b)).astype(np.result_type(a, b), copy=False)
    return rule


def _compare(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Rule:
    return lambda values, attrs: np.asarray(fn(values[0], values[1]))


def _unary(fn: Callable[[np.ndarray], np.ndarray]) -> Rule:
    return lambda values, attrs: np.asarray(fn(values[0])).astype(values[0].dtype, copy=False)


def _variadic(fn: Callable[..., np.ndarray]) -> Rule:
    def rule(values: Values, attrs: Attrs) -> np.ndarray:
        present = [v for v in values if v is not None]
        result = present[0]
        for value in present[1:]:
            result = fn(result, value)
        return np.asarray(result)
    return rule


def _mod(values: Values, attrs: Attrs) -> np.ndarray:
    a, b = values[0], values[1]
    return np.fmod(a, b) if int(attrs.get("fmod", 0)) else np.mod(a, b)


def _cast(values: Values, attrs: Attrs) -> np.ndarray:
    return values[0].astype(helper.tensor_dtype_to_np_dtype(int(attrs["to"])))


def _gather(values: Values, attrs: Attrs) -> np.ndarray:
    data, indices = values[0], values[1].astype(np.int64)
    axis = int(attrs.get("axis", 0))
    indices = np.where(indices < 0, indices + data.shape[axis], indices)
    return np.take(data, indices, axis=axis)


def _unsqueeze(values: Values, attrs: Attrs) -> np.ndarray:
    axes = _axes(values, attrs, 1) or []
    rank = values[0].ndim + len(axes)
    shape = list(values[0].shape)
    for axis in sorted(a % rank for a in axes):
        shape.insert(axis, 1)
    return values[0].reshape(shape)


def _squeeze(values: Values, attrs: Attrs) -> np.ndarray:
    axes = _axes(values, attrs, 1)
    if axes is None:
        return np.squeeze(values[0])
    return np.squeeze(values[0], axis=tuple(a % values[0].ndim for a in axes))


def _concat(values: Values, attrs: Attrs) -> np.ndarray:
    return np.concatenate([v for v in values if v is not None], axis=int(attrs.get("axis", 0)))


def _slice(values: Values, attrs: Attrs) -> np.ndarray:
    data = values[0]
    if "starts" in attrs:  # opset < 10
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = values[1].reshape(-1), values[2].reshape(-1)
        axes = values[3].reshape(-1) if len(values) > 3 and values[3] is not None else None
        steps = values[4].reshape(-1) if len(values) > 4 and values[4] is not None else None
    axes = list(range(len(starts))) if axes is None else [int(a) % data.ndim for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    index = [slice(None)] * data.ndim
    for axis, start, end, step in zip(axes, starts, ends, steps):
        index[axis] = slice(*_clamped_range(int(start), int(end), step, data.shape[axis]))
    return data[tuple(index)]


def _clamped_range(start: int, end: int, step: int, size: int) -> tuple[Optional[int], Optional[int], int]:
    """ONNX Slice bounds as a Python slice (ends past the axis, like INT64_MAX, clamped)."""
    start, end = (start + size if start < 0 else start), (end + size if end < 0 else end)
    if step > 0:
        return max(0, min(start, size)), max(0, min(end, size)), step
    start = max(-1, min(start, size - 1))
    end = max(-1, min(end, size - 1))
    return start, (None if end < 0 else end), step


def _reshape(values: Values, attrs: Attrs) -> np.ndarray:
    target = [int(d) for d in values[1].reshape(-1)]
    if not int(attrs.get("allowzero", 0)):
        target = [values[0].shape[i] if d == 0 else d for i, d in enumerate(target)]
    return values[0].reshape(target)


def _flatten(values: Values, attrs: Attrs) -> np.ndarray:
    axis = int(attrs.get("axis", 1)) % (values[0].ndim + 1) if values[0].ndim else 0
    return values[0].reshape(math.prod(values[0].shape[:axis]), -1)


def _constant_of_shape(values: Values, attrs: Attrs) -> np.ndarray:
    shape = _check_size(values[0].reshape(-1))
    fill = attrs.get("value")
    fill = np.zeros(1, np.float32) if fill is None else np.asarray(fill).reshape(-1)
    return np.full(shape, fill[0], dtype=fill.dtype)


def _expand(values: Values, attrs: Attrs) -> np.ndarray:
    shape = np.broadcast_shapes(values[0].shape, tuple(int(d) for d in values[1].reshape(-1)))
    return np.broadcast_to(values[0], _check_size(shape)).copy()


def _tile(values: Values, attrs: Attrs) -> np.ndarray:
    repeats = [int(r) for r in values[1].reshape(-1)]
    _check_size([d * r for d, r in zip(values[0].shape, repeats)])
    return np.tile(values[0], repeats)


def _range(values: Values, attrs: Attrs) -> np.ndarray:
    start, limit, delta = (v.reshape(()) for v in values[:3])
    count = max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)
    _check_size([count])
    return (start + delta * np.arange(count)).astype(values[0].dtype)


def _reduce(fn: Callable[..., np.ndarray]) -> Rule:
    def rule(values: Values, attrs: Attrs) -> np.ndarray:
        axes = _axes(values, attrs, 1)
        keepdims = bool(int(attrs.get("keepdims", 1)))
        if not axes:
            if int(attrs.get("noop_with_empty_axes", 0)):
                return values[0]
            return np.asarray(fn(values[0], axis=None, keepdims=keepdims))
        return np.asarray(fn(values[0], axis=tuple(a % values[0].ndim for a in axes), keepdims=keepdims))
    return rule


def _where(values: Values, attrs: Attrs) -> np.ndarray:
    return np.where(values[0], values[1], values[2])


def _transpose(values: Values, attrs: Attrs) -> np.ndarray:
    perm = attrs.get("perm")
    return np.transpose(values[0], None if perm is None else [int(p) for p in perm])


def _identity(values: Values, attrs: Attrs) -> np.ndarray:
    return values[0]


def _constant(values: Values, attrs: Attrs) -> np.ndarray:
    value = constant_attribute_value(attrs)
    if value is None:
        raise ValueError("a Constant without a dense value")
    return value


RULES: dict[str, Rule] = {
    "Constant": _constant, "Identity": _identity, "Cast": _cast, "Gather": _gather, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze,
    "Concat": _concat, "Slice": _slice, "Reshape": _reshape, "Flatten": _flatten,
    "ConstantOfShape": _constant_of_shape, "Expand": _expand, "Tile": _tile, "Range": _range,
    "Transpose": _transpose, "Where": _where,
    "Add": _binary(np.add), "Sub": _binary(np.subtract), "Mul": _binary(np.multiply), "Div": _div, "Mod": _mod,
    "Pow": _binary(np.power), "Neg": _unary(np.negative), "Abs": _unary(np.abs), "Floor": _unary(np.floor),
    "Ceil": _unary(np.ceil), "Sqrt": _unary(np.sqrt), "Reciprocal": _unary(np.reciprocal),
    "Sign": _unary(np.sign), "Not": lambda values, attrs: np.logical_not(values[0]),
    "Equal": _compare(np.equal), "Less": _compare(np.less), "Greater": _compare(np.greater),
    "LessOrEqual": _compare(np.less_equal), "GreaterOrEqual": _compare(np.greater_equal),
    "And": _compare(np.logical_and), "Or": _compare(np.logical_or), "Xor": _compare(np.logical_xor),
    "Min": _variadic(np.minimum), "Max": _variadic(np.maximum), "Sum": _variadic(np.add),
    "ReduceProd": _reduce(np.prod), "ReduceSum": _reduce(np.sum), "ReduceMax": _reduce(np.max),
    "ReduceMin": _reduce(np.min),
}


# Upper bounds through an op. A value that depends on data (the shape of NonZero's output, a
# count computed from it...) is known only as an upper bound. Such a value may be used where a
# bigger input never gives a smaller output: its values element by element and, where it is a
# shape, axis length, count or limit, its size (a Slice's ends, a Reshape's or Expand's target,
# a TopK's k...). Then what comes out is an upper bound too. Anywhere else (a Slice's starts,
# a Range's start, what is subtracted...) a larger value can give a smaller output, and what
# depends on it is not known. One rule for both uses: values computed from upper bounds, and
# shapes inferred from them.
#
# Per op, the inputs where the output grows with the input: None for every input, a set of
# positions, or a function of the node's input values (None where not known) and attributes
# giving that set.
GrowthRule = Union[None, frozenset[int], Callable[[Values, Attrs], frozenset[int]]]
_NONE: frozenset[int] = frozenset()


def _non_negative(value: Optional[np.ndarray]) -> bool:
    return value is not None and value.size > 0 and bool(np.all(np.asarray(value) >= 0))


def _positive(value: Optional[np.ndarray]) -> bool:
    return value is not None and value.size > 0 and bool(np.all(np.asarray(value) > 0))


def _mul_growth(values: Values, attrs: Attrs) -> frozenset[int]:
    """a x b grows with a when b >= 0 (and the other way round)."""
    return frozenset(p for p in range(len(values)) if all(_non_negative(v) for q, v in enumerate(values) if q != p))


def _div_growth(values: Values, attrs: Attrs) -> frozenset[int]:
    return frozenset({0}) if len(values) > 1 and _positive(values[1]) else _NONE


def _sum_growth(values: Values, attrs: Attrs) -> frozenset[int]:
    """A sum over the elements grows with them when none is negative (a longer input then adds
    more). (A product too, for a fixed number of elements: see graph's variable-length check.)"""
    return frozenset({0}) if values and _non_negative(values[0]) else _NONE


def _slice_growth(values: Values, attrs: Attrs) -> frozenset[int]:
    """The data, and the ends when every step is positive (the starts: a larger start keeps less)."""
    if "starts" in attrs:  # opset < 10: starts and ends are attributes
        return frozenset({0})
    steps = values[4] if len(values) > 4 else None
    if len(values) > 4 and not _positive(steps):
        return frozenset({0})
    return frozenset({0, 2})


def _reshape_growth(values: Values, attrs: Attrs) -> frozenset[int]:
    """The data; the target when it has no -1 (a dim inferred from the others shrinks as they grow)."""
    target = values[1] if len(values) > 1 else None
    if target is None or np.any(np.asarray(target) < 0):
        return frozenset({0})
    return frozenset({0, 1})


def _range_growth(values: Values, attrs: Attrs) -> frozenset[int]:
    """The limit, when the step is positive (a larger start or step gives fewer elements)."""
    return frozenset({1}) if len(values) > 2 and _positive(values[2]) else _NONE


# Sub is not listed: N - c can be negative, and what multiplies or sums it then shrinks as N grows.
# A bounded value is a non-negative count (see graph.PreparedGraph._mark_bounded_values).
GROWS_WITH: dict[str, GrowthRule] = {
    "Identity": None, "Cast": None, "Concat": None, "Flatten": None, "Add": None, "Min": None, "Max": None,
    "Sum": None, "Gather": frozenset({0}), "Unsqueeze": frozenset({0}), "Squeeze": frozenset({0}),
    "Mul": _mul_growth, "Div": _div_growth, "ReduceMax": frozenset({0}),
    "ReduceMin": frozenset({0}), "ReduceSum": _sum_growth, "ReduceProd": _sum_growth,
    "Slice": _slice_growth, "Reshape": _reshape_growth, "Expand": frozenset({0, 1}), "Tile": frozenset({0, 1}),
    "ConstantOfShape": frozenset({0}), "Range": _range_growth, "Where": frozenset({1, 2}),
    "TopK": frozenset({1}), "OneHot": frozenset({1}), "Pad": frozenset({0, 1}), "Resize": frozenset({0, 2, 3}),
    "Upsample": frozenset({0, 1}), "CenterCropPad": frozenset({0, 1}), "NonMaxSuppression": frozenset({2}),
    "Loop": frozenset({0}),
}


def grows_with(op_type: str, bounded_inputs: Sequence[int], values: Values, attrs: Attrs) -> bool:
    """True when the op's output (its values and its size) cannot shrink as the inputs at
    `bounded_inputs` grow: upper bounds there give an upper bound out (see GROWS_WITH).
    `values` are the node's input values (None where not known)."""
    if op_type not in GROWS_WITH:
        return False
    rule = GROWS_WITH[op_type]
    if rule is None:
        return True
    growing = rule if isinstance(rule, frozenset) else rule(values, attrs)
    return all(position in growing for position in bounded_inputs)


def from_shape(op_type: str, shape: Optional[Sequence[int]], attrs: Attrs) -> Optional[list[np.ndarray]]:
    """Shape and Size: values read off a known input shape."""
    if shape is None:
        return None
    if op_type == "Size":
        return [np.array(math.prod(shape), dtype=np.int64)]
    start, end = int(attrs.get("start", 0)), attrs.get("end")
    return [np.array(shape[start:None if end is None else int(end)], dtype=np.int64)]


def evaluate(node: Any, values: Values, attrs: Attrs) -> list[np.ndarray]:
    """The outputs of one ONNX-domain node on constant inputs. Raises TooLarge, or any error
    of an op it cannot run (the value then stays unknown)."""
    rule = RULES.get(node.op_type)
    if rule is not None:
        result = rule(values, attrs)
        _check_size(np.shape(result))
        return [np.asarray(result)]
    return _reference_run(node, values)


def _reference_run(node: Any, values: Values) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator  # imported only for ops without a rule above

    feeds = {name: value for name, value in zip(node.input, values) if name and value is not None}
    outputs = ReferenceEvaluator(node).run(None, feeds)
    results = [np.asarray(output) for output in outputs]
    for result in results:
        _check_size(result.shape)
    return results


def constant_attribute_value(attrs: Attrs) -> Optional[np.ndarray]:
    """The value a Constant node holds (value, value_int(s), value_float(s), value_string(s))."""
    if attrs.get("value") is not None:
        return np.asarray(attrs["value"])
    for key, dtype in (("value_int", np.int64), ("value_ints", np.int64), ("value_float", np.float32),
                       ("value_floats", np.float32)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    return None


def as_tensor(value: np.ndarray, name: str) -> Any:
    return numpy_helper.from_array(np.asarray(value), name)
