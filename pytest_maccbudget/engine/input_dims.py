"""Input dims: the shapes given for a model's inputs, symbolic dims and the batch size.

`--batch N` finds each input's batch dim by its symbolic name where it has one (a dim named
`batch`, `N`, `batch_size`... wherever it sits, as in a sequence-first [S, B, I] input), else
takes the leading dim of an input of rank 2 or more when that dim is symbolic, unset or 1 (but
not a leading dim named like a sequence, `seq`, `T`..., when dim 1 of a rank >= 3 input has
neither a size nor a name: dim 1 is the batch it sets). A dim given a value with --input keeps
it. A note says which dim of which input it set and why, or why it set none. Without --batch
the batch dim is found the same way, and a symbolic one with no value becomes 1, with a note; a
dim the file declares as 0 (or negative) where the batch dim is read is such a dim, and named as
such in the note. A dim declared 0 anywhere else is an empty dim, as the file says, named in a note; a
negative one there is refused. Other symbolic dims with no value stay unknown.
"""
from __future__ import annotations

import numbers
import re
from typing import Collection, Container, Iterable, Mapping, NamedTuple, Optional, Sequence, Union

import onnx
from onnx import GraphProto, ModelProto

from .errors import ModelError
from .tables import check_text, describe_dims

InputShapes = Optional[Union[Mapping[str, Union[Sequence[int], int]], Sequence[Sequence[int]]]]

# Symbolic dim names that mean the batch: N, B, bs, or any name containing "batch".
_BATCH_NAME = re.compile(r"^(n|b|bs|nb)$|batch", re.IGNORECASE)
# Names of a sequence (time) dim: S, T, or a name containing seq, time or length.
_SEQUENCE_NAME = re.compile(r"^(s|t)$|seq|time|length", re.IGNORECASE)


def is_batch_name(symbol: str) -> bool:
    return bool(symbol) and bool(_BATCH_NAME.search(symbol))


def real_input_names(input_names: Iterable[str], initializers: Container[str]) -> list[str]:
    """Graph inputs that are not initializers (IR < 4 graphs list every weight as an input)."""
    return [name for name in input_names if name not in initializers]


INT64_MAX = 2**63 - 1  # the largest dim ONNX holds

# onnx's data propagation holds one entry per element of a 1-D tensor it meets (see
# graph.infer_shapes): shape tensors are short, a vector longer than this is not one.
DATA_PROP_MAX_ELEMENTS = 2**16


def apply_input_shapes(model: ModelProto, input_shapes: InputShapes = None, batch: Optional[int] = None,
                       long_vectors: Optional[list[str]] = None) -> list[str]:
    """Fix the dims of the real inputs in place. Returns notes on the values that were set or assumed.

    `input_shapes` maps an input name to full dims, or a symbolic dim name to one value; or it
    lists full dims for the inputs in order. `batch` sets each input's batch dim (see the module
    docstring) unless the input's dims are given in full. The names of the inputs that are then
    vectors longer than DATA_PROP_MAX_ELEMENTS are added to `long_vectors`.
    """
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, numbers.Integral)
                              or not 1 <= batch <= INT64_MAX):
        raise ModelError(f"--batch {batch!r}: a batch size is a whole number, 1 or more, and at most 2**63 - 1")
    batch = None if batch is None else int(batch)
    graph = model.graph
    names = [value_info.name for value_info in graph.input]
    real_inputs = real_input_names(names, {tensor.name for tensor in graph.initializer})
    by_name = dict(zip(names, graph.input))
    check_text(real_inputs, "the name of a graph input")  # read below: protobuf hands over bytes when not UTF-8
    for name in real_inputs:
        check_text([dim.dim_param for dim in by_name[name].type.tensor_type.shape.dim],
                   f"a symbolic dim of graph input {name!r}")
    given = {name: _checked_value(name, dims) if isinstance(dims, int) else _checked_dims(name, dims)
             for name, dims in _checked_shapes(input_shapes, real_inputs, by_name).items() if dims is not None}
    notes: list[str] = []
    left = [by_name[name] for name in real_inputs if name not in given]  # (inputs whose dims are not given in full)
    symbols = _Symbols({k: v for k, v in given.items() if isinstance(v, int)}, {}, _sequence_symbols(left), {}, {})
    _size_symbols_of_given_dims(given, real_inputs, by_name, symbols, notes)
    _read_batch_symbols(left, symbols)
    changed = False
    for name in real_inputs:
        dims = given.get(name)
        if dims is not None and not isinstance(dims, int):
            declared = _fixed_dims(by_name[name])
            _set_dims(by_name[name], dims)
            changed = True
            _note_replaced_dims(name, declared, dims, notes)
        elif by_name[name].type.tensor_type.HasField("shape"):
            changed |= _fill_dims(by_name[name], symbols, batch, notes)
            _refuse_negative_dims(by_name[name])
        if long_vectors is not None:
            dims_now = by_name[name].type.tensor_type.shape.dim
            if len(dims_now) == 1 and dims_now[0].dim_value > DATA_PROP_MAX_ELEMENTS:
                long_vectors.append(name)
    if changed:
        _forget_declared_shapes(graph, set(real_inputs))
    return notes


def _checked_shapes(input_shapes: InputShapes, real_inputs: list[str],
                    by_name: Mapping[str, onnx.ValueInfoProto]) -> dict[str, Union[Sequence[int], int]]:
    """The given shapes by input name; ModelError for a name that is no input and no symbol."""
    shapes = _by_input_name(input_shapes, real_inputs)
    symbols = {d.dim_param for n in real_inputs for d in by_name[n].type.tensor_type.shape.dim if d.dim_param}
    for key, value in list(shapes.items()):
        if isinstance(value, int) and key in real_inputs and key not in symbols:
            shapes[key] = [value]  # a rank-1 input given as one number
    unknown = [k for k, v in shapes.items() if k not in real_inputs and not (isinstance(v, int) and k in symbols)]
    if unknown:
        known = f"inputs are {', '.join(real_inputs) or 'none'}"
        if symbols:
            known += f"; symbolic dims are {', '.join(sorted(symbols))}"
        raise ModelError(f"no model input or symbolic dim named {', '.join(map(repr, unknown))}; {known}")
    return shapes


def _by_input_name(input_shapes: InputShapes, real_inputs: list[str]) -> dict[str, Union[Sequence[int], int]]:
    """Shapes given as a list apply to the model's inputs in order."""
    if input_shapes is None:
        return {}
    if isinstance(input_shapes, Mapping):
        return {key: _plain_int(value) for key, value in input_shapes.items()}
    shapes = list(input_shapes)
    if len(shapes) != len(real_inputs):
        raise ModelError(f"{len(shapes)} input shape(s) given for {len(real_inputs)} model input(s) ({', '.join(real_inputs)})")
    return {name: _plain_int(value) for name, value in zip(real_inputs, shapes)}


def _plain_int(value: object) -> object:
    """A number given as any integer type (numpy's too) as an int; anything else as it is."""
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value


def _is_fixed(dim: onnx.TensorShapeProto.Dimension) -> bool:
    return dim.HasField("dim_value") and dim.dim_value > 0


def _declares_zero(dim: onnx.TensorShapeProto.Dimension) -> bool:
    """A dim declared as 0, or below (no size): read as symbolic where the batch dim would be."""
    return dim.HasField("dim_value") and dim.dim_value <= 0


def is_sequence_name(symbol: str) -> bool:
    return bool(symbol) and bool(_SEQUENCE_NAME.search(symbol))


def _has_no_size(dim: onnx.TensorShapeProto.Dimension) -> bool:
    """Neither a size nor a name: unset, or declared 0 (or below), as exporters write a dynamic batch."""
    return not _is_fixed(dim) and not dim.dim_param


def batch_positions(dims: Sequence[onnx.TensorShapeProto.Dimension], given: Collection[str] = (),
                    not_batch: Collection[str] = (), batch_symbols: Collection[str] = ()) -> list[int]:
    """The input's batch dims: those named like a batch, else those whose symbol another input
    reads as its batch (`batch_symbols`: h0 [2, s0, 20] beside x [s0, 50, 10]), else a leading dim
    (rank >= 2) that is symbolic (with no value `given` for it, and not one of the symbols
    `not_batch`: another input's sequence or other dim), unset, declared 0 or 1; but a leading dim
    named like a sequence ([seq, 0, 4], sequence first) is not the batch when dim 1 of a rank >= 3
    input has neither a size nor a name: dim 1 is. The same reading with and without --batch."""
    named = [position for position, dim in enumerate(dims) if is_batch_name(dim.dim_param)]
    if named:
        return named
    if _is_sequence_first(dims):
        return [1]
    shared = [position for position, dim in enumerate(dims) if dim.dim_param and dim.dim_param in batch_symbols]
    if shared:
        return shared
    if (len(dims) >= 2 and dims[0].dim_param not in given and dims[0].dim_param not in not_batch
            and (not _is_fixed(dims[0]) or dims[0].dim_value == 1)):
        return [0]
    return []


def _is_sequence_first(dims: Sequence[onnx.TensorShapeProto.Dimension]) -> bool:
    """[seq, 0, 4]: a leading dim named like a sequence, then a dim with neither a size nor a name."""
    return (len(dims) >= 3 and is_sequence_name(dims[0].dim_param) and _has_no_size(dims[1])
            and not any(is_batch_name(dim.dim_param) for dim in dims))


def _sequence_symbols(value_infos: Iterable[onnx.ValueInfoProto]) -> dict[str, str]:
    """The symbols some input reads as its sequence dim (sequence first), with that input's name:
    the same symbol is one size in every input, so another input does not take it as its batch."""
    found: dict[str, str] = {}
    for value_info in value_infos:
        dims = value_info.type.tensor_type.shape.dim
        if _is_sequence_first(dims):
            found.setdefault(dims[0].dim_param, value_info.name)
    return found


def _why(symbols: Sequence[str], position: int, name: str, known: "_Symbols") -> str:
    """Why a dim was taken as the batch, where its place or name does not say it (`symbols`: the
    dims' names as the file declares them)."""
    symbol = symbols[position]
    if (symbol in known.batches and known.batches[symbol] != name and not is_batch_name(symbol)
            and (position > 0 or len(symbols) == 1)):  # (a leading dim of rank >= 2 is the batch by its place)
        return f": input {known.batches[symbol]!r} reads {symbol!r} as its batch dim"
    if position == 0 or is_batch_name(symbol):
        return ""
    return f": dim 0 ({symbols[0]!r}) is named like a sequence and dim {position} has no size"


def _dim_label(dim: onnx.TensorShapeProto.Dimension) -> str:
    if dim.dim_param:
        return repr(dim.dim_param)
    if _declares_zero(dim):
        return f"declared {dim.dim_value}"
    return str(dim.dim_value) if _is_fixed(dim) else "unnamed"


class _Symbols(NamedTuple):
    """What the symbolic dims of the inputs are, across inputs (a symbol is one size in every input)."""

    sizes: dict[str, int]  # given with --input SYMBOL=VALUE, or by the dims given for an input
    origins: dict[str, str]  # symbol -> the input whose dims given in full sized it
    sequences: dict[str, str]  # symbol -> an input reading it as its sequence dim (sequence first)
    batches: dict[str, str]  # symbol with no size -> an input reading it as its batch dim
    others: dict[str, str]  # symbol with no size -> an input where it is a dim other than the batch

    def other_dim(self, symbol: str, name: str) -> str:
        """Why `symbol` is not input `name`'s batch: "is also another of its dims", "is a dim
        other than the batch in input 'a'"."""
        where = self.others[symbol]
        return "is also another of its dims" if where == name else f"is a dim other than the batch in input {where!r}"

    @property
    def not_batch(self) -> set[str]:
        """Symbols no input takes as its batch by its place."""
        return set(self.sequences) | set(self.others)

    def given_as(self, symbol: str) -> str:
        """How a symbol got its size, for notes: "is given as 2", "is 2 from the dims given for input 'a'"."""
        origin = self.origins.get(symbol)
        return (f"is {self.sizes[symbol]} from the dims given for input {origin!r}" if origin
                else f"is given as {self.sizes[symbol]}")


def _read_batch_symbols(value_infos: Iterable[onnx.ValueInfoProto], known: _Symbols) -> None:
    """Fill `known.batches`: the symbols with no size some input reads as its batch dim, with that
    input's name; they are the batch dim of every input they are in (a rank-1 [s0] beside
    [s0, 3], or h0 [2, s0, 20] beside x [s0, 50, 10], which have none of their own). And
    `known.others`: those an input has as another dim ([s1] beside [s0, s1], or beside [s0, s1]
    as the leading dim of [s1, 64], or [s0, s0]), which no input then takes as its batch by its
    place: a guess from a leading dim does not make another input's dim the batch.

    An input whose batch dim is a symbol (by its name or its place) or sequence first says both.
    One whose batch is read from a leading 1 or 0 (or from no dim) says only which symbols it has
    as other dims, and that only where no input reads them as its batch (h0 [1, s0, 20] does not
    hide x's batch s0; [1, s1] keeps [s1] from being taken as a batch of 1). A rank-1 input says
    nothing."""
    weak_others: dict[str, str] = {}
    for value_info in value_infos:
        dims = value_info.type.tensor_type.shape.dim
        positions = batch_positions(dims, known.sizes, known.sequences)
        strong = any(dims[position].dim_param for position in positions) or _is_sequence_first(dims)
        if not strong and len(dims) < 2:
            continue
        for position, dim in enumerate(dims):
            symbol = dim.dim_param
            if not symbol or symbol in known.sizes:
                continue
            if not strong:
                weak_others.setdefault(symbol, value_info.name)
            else:
                (known.batches if position in positions else known.others).setdefault(symbol, value_info.name)
    for symbol in known.others:
        known.batches.pop(symbol, None)  # (a symbol named like a batch is at a batch position wherever it is)
    for symbol, name in weak_others.items():
        if symbol not in known.batches:
            known.others.setdefault(symbol, name)


def _fill_dims(value_info: onnx.ValueInfoProto, known: _Symbols, batch: Optional[int], notes: list[str]) -> bool:
    """Give the dims of one input their values. True if a dim changed. A symbol another input
    reads as its sequence dim is not taken as this input's batch."""
    dims = value_info.type.tensor_type.shape.dim
    before = describe_dims(value_info.type)
    symbols = [dim.dim_param for dim in dims]  # (setting a value clears a dim's name)
    symbol_values, sequences = known.sizes, known.sequences
    positions = batch_positions(dims, symbol_values, known.not_batch, known.batches)
    # --batch sets the batch dims that were given no value (a value given holds)
    to_set = [position for position in positions if dims[position].dim_param not in symbol_values]
    changed = False
    if batch is not None:
        changed = _set_batch(value_info.name, dims, symbols, positions, to_set, batch, before, notes, known)
    for position, dim in enumerate(dims):
        if _is_fixed(dim) or (batch is not None and position in to_set):
            continue
        if dim.HasField("dim_value") and dim.dim_value == 0 and position not in positions and (position or positions):
            # not where the batch dim is read: an empty dim, as the file says; named all the same
            notes.append(f"input {value_info.name!r} declares dim {position} as 0 where no batch dim is read: "
                         "counted as an empty dim (what depends on it costs nothing); if it stands for a size "
                         "known only at run time, give it with --input")
            continue
        changed = True
        if dim.dim_param in symbol_values:
            dim.dim_value = symbol_values[dim.dim_param]
        elif dim.dim_param in sequences and sequences[dim.dim_param] != value_info.name:
            if position == 0 and batch_positions(dims, symbol_values) in ([0], []) and (batch is None or len(dims) < 2):
                # the batch dim it would be (or, rank 1, taken as 1), but for the other input (with
                # --batch on rank >= 2, its note says why)
                notes.append(f"dim 0 ({dim.dim_param!r}) of input {value_info.name!r} {before} is not read as a batch "
                             f"dim: input {sequences[dim.dim_param]!r} reads {dim.dim_param!r} as its sequence dim; "
                             f"give it with --input {dim.dim_param}=N")
        elif position == 0 and not positions and dim.dim_param in known.others:
            if batch is None or len(dims) < 2:  # (with --batch on rank >= 2, its note says why)
                notes.append(f"dim 0 ({dim.dim_param!r}) of input {value_info.name!r} {before} is not read as a batch dim: "
                             f"it {known.other_dim(dim.dim_param, value_info.name)}; give it with --input "
                             f"{dim.dim_param}=N")
        elif position in positions or (position == 0 and not positions):
            notes.append(_assumed_batch_note(value_info.name, position, dim, batch is None)
                         + _why(symbols, position, value_info.name, known))
            dim.dim_value = 1
    return changed


def _set_batch(name: str, dims: Sequence[onnx.TensorShapeProto.Dimension], symbols: Sequence[str],
               positions: list[int], to_set: list[int], batch: int, before: str, notes: list[str],
               known: _Symbols) -> bool:
    """Set the batch dims `to_set` (`symbols`: the dims' names as declared); else say why none."""
    given, sequences = known.sizes, known.sequences
    if positions and not to_set:
        given_values = ", ".join(f"{symbols[p]!r} {known.given_as(symbols[p])}" for p in positions)
        notes.append(f"--batch {batch} left input {name!r} {before} as it is: its batch dim {given_values}")
        return False
    if not positions:
        if len(dims) < 2:
            reason = f"it has rank {len(dims)}"
        elif symbols[0] in given:
            reason = f"its leading dim {symbols[0]!r} {known.given_as(symbols[0])}"
        elif symbols[0] in sequences:
            reason = f"its leading dim {symbols[0]!r} is the sequence dim of input {sequences[symbols[0]]!r}"
        elif symbols[0] in known.others:
            reason = f"its leading dim {symbols[0]!r} {known.other_dim(symbols[0], name)}"
        else:
            reason = f"its leading dim is fixed at {dims[0].dim_value}"
        notes.append(f"--batch {batch} left input {name!r} {before} as it is: no dim is named like a batch "
                     f"(batch, N, batch_size...) and {reason}")
        return False
    changed = False
    for position in to_set:
        dim = dims[position]
        notes.append(f"--batch {batch} set dim {position} ({_dim_label(dim)}) of input {name!r} {before}"
                     + _why(symbols, position, name, known))
        changed |= dim.dim_value != batch or not dim.HasField("dim_value")
        dim.dim_value = batch
    return changed


def _assumed_batch_note(name: str, position: int, dim: onnx.TensorShapeProto.Dimension, batch_can_set: bool) -> str:
    """The note for a batch dim taken as 1 (`batch_can_set`: False where --batch was given and
    left it, as a rank-1 input's: only --input sets it)."""
    how = "--batch or --input" if batch_can_set else "--input"
    if _declares_zero(dim):
        return (f"input {name!r} declares dim {position} as {dim.dim_value} (no size): read as a symbolic batch dimension, "
                f"taken as 1 (set it with {how})")
    where = "" if position == 0 else f" (dim {position})"
    return f"symbolic batch dimension {dim.dim_param or '?'!r}{where} of input {name!r} taken as 1 (set it with {how})"


def _refuse_negative_dims(value_info: onnx.ValueInfoProto) -> None:
    """A negative dim left where no batch dim is read (nothing can have that size)."""
    dims = value_info.type.tensor_type.shape.dim
    negative = next((position for position, dim in enumerate(dims) if dim.dim_value < 0), None)
    if negative is not None:
        raise ModelError(f"input {value_info.name!r} declares a negative dim ({dims[negative].dim_value} at position "
                         f"{negative} of {describe_dims(value_info.type)}); give the input's dims")


def _forget_declared_shapes(graph: GraphProto, keep: set[str]) -> None:
    """Drop the shapes the file declares for intermediate values and outputs: they were
    written for the input dims the file was exported with, and inference keeps declared shapes
    over inferred ones."""
    graph.ClearField("value_info")
    for output in graph.output:
        if output.name not in keep and output.type.HasField("tensor_type"):
            output.type.tensor_type.ClearField("shape")


def _size_symbols_of_given_dims(given: Mapping[str, Union[Sequence[int], int]], real_inputs: Sequence[str],
                                by_name: Mapping[str, onnx.ValueInfoProto], known: _Symbols, notes: list[str]) -> None:
    """Add to `known` the sizes the dims given in full give the symbols their input declares: a
    symbol is one size in every input, so the other inputs sharing it get that size too (with a
    note). Two sizes for one symbol are refused."""
    found: dict[str, tuple[int, str, int]] = {}  # symbol -> (size, the input whose dims gave it, at which dim)
    for name in real_inputs:
        dims = given.get(name)
        declared = by_name[name].type.tensor_type.shape.dim
        if dims is None or isinstance(dims, int) or len(declared) != len(dims):
            continue  # (a rank that differs is refused when the dims are set)
        for position, (dim, size) in enumerate(zip(declared, dims)):
            symbol = dim.dim_param
            if not symbol:
                continue
            if symbol in known.sizes and known.sizes[symbol] != size:
                raise ModelError(f"the dims given for input {name!r} make its symbolic dim {symbol!r} {size} (dim "
                                 f"{position}), where --input {symbol}={known.sizes[symbol]} gives it "
                                 f"{known.sizes[symbol]}: a symbol is one size in every input")
            earlier = found.setdefault(symbol, (size, name, position))
            if earlier[0] != size:
                other = "they make" if earlier[1] == name else f"the dims given for input {earlier[1]!r} make"
                raise ModelError(f"the dims given for input {name!r} make its symbolic dim {symbol!r} {size} (dim "
                                 f"{position}), where {other} it {earlier[0]} (dim {earlier[2]}): a symbol is one size "
                                 "in every input")
    for symbol, (size, origin, _) in found.items():
        if symbol in known.sizes:
            continue
        known.sizes[symbol], known.origins[symbol] = size, origin
        readers = [name for name in real_inputs if name not in given
                   and any(dim.dim_param == symbol for dim in by_name[name].type.tensor_type.shape.dim)]
        if readers:
            notes.append(f"symbolic dim {symbol!r} of input{'s' if len(readers) > 1 else ''} "
                         f"{', '.join(map(repr, readers))} is {size}, as the dims given for input "
                         f"{origin!r} make it (a symbol is one size in every input)")


def _fixed_dims(value_info: onnx.ValueInfoProto) -> list[Optional[int]]:
    """The sizes the file fixes, None for the other dims: symbolic, unset, declared 0 or below
    (no size), or the batch dim (giving it another value is what --batch does)."""
    dims = value_info.type.tensor_type.shape.dim
    batch = batch_positions(dims)
    return [dim.dim_value if _is_fixed(dim) and position not in batch else None for position, dim in enumerate(dims)]


def _note_replaced_dims(name: str, declared: Sequence[Optional[int]], given: Sequence[int], notes: list[str]) -> None:
    """Dims given where the file fixes other sizes are taken (profiling an export at another
    resolution), and said: a mistyped channel count would otherwise pass unnoticed."""
    replaced = [position for position, (old, new) in enumerate(zip(declared, given)) if old is not None and old != new]
    if replaced:
        which = ", ".join(f"dim {position} ({declared[position]} -> {given[position]})" for position in replaced)
        notes.append(f"input {name!r} is profiled at {list(given)} as given, where the file fixes other sizes: {which}")


def _set_dims(value_info: onnx.ValueInfoProto, dims: list[int]) -> None:
    tensor_type = value_info.type.tensor_type
    if tensor_type.HasField("shape") and len(tensor_type.shape.dim) not in (0, len(dims)):
        raise ModelError(
            f"input {value_info.name!r} has rank {len(tensor_type.shape.dim)} "
            f"({describe_dims(value_info.type)}) but {len(dims)} dims were given: {dims}"
        )
    tensor_type.ClearField("shape")
    for size in dims:
        tensor_type.shape.dim.add().dim_value = size


def _checked_value(symbol: str, value: int) -> int:
    if isinstance(value, bool) or not 0 <= value <= INT64_MAX:
        raise ModelError(f"symbolic dim {symbol!r} is given as {value}: a size is 0 or more, and at most 2**63 - 1")
    return value


def _checked_dims(name: str, dims: Sequence[int]) -> list[int]:
    """Dims given for an input (or a symbol's value) as sizes: whole numbers, 0 or more (checked
    before they size any symbol)."""
    try:
        if isinstance(dims, (str, bytes)) or any(isinstance(d, bool) for d in dims):
            raise TypeError
        sizes = [int(d) for d in dims]
        if any(size != d for size, d in zip(sizes, dims)):  # (2.7, "3")
            raise ValueError
    except (TypeError, ValueError, OverflowError):  # (OverflowError: an infinity)
        raise ModelError(f"input {name!r}: dims must be whole numbers, got {dims!r}") from None
    if any(size < 0 for size in sizes):
        raise ModelError(f"input {name!r}: dims must be 0 or more, got {list(dims)}")
    if any(size > INT64_MAX for size in sizes):
        raise ModelError(f"input {name!r}: a dim is at most 2**63 - 1 (ONNX's int64), got {list(dims)}")
    return sizes
