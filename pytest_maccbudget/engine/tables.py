"""The graph read once: a node table and a value table that every pass shares.

Reading a NodeProto field through the protobuf API costs about ten times what reading a
Python tuple does, so each node's op type, domain, name, inputs and outputs are read exactly
once into plain lists; value infos are decoded only for the tensors a pass asks about.
"""
from __future__ import annotations

import math
from collections import Counter, deque
from functools import partial
from itertools import chain, repeat
from operator import ge
from typing import Callable, Collection, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np
import onnx
from onnx import GraphProto, NodeProto, TensorProto

from .errors import ModelError
from .registry import normalize_domain
from .types import _BITS_BY_DTYPE, Shape, TensorInfo


class NodeTable:
    """The nodes of one graph in topological order, as parallel lists indexed by node."""

    __slots__ = ("protos", "op_types", "domains", "names", "inputs", "outputs", "producer", "sources", "_readers")

    def __init__(self) -> None:
        self.protos: list[NodeProto] = []
        self.op_types: list[str] = []
        self.domains: list[str] = []  # normalized: "" for ai.onnx
        self.names: list[str] = []
        self.inputs: list[list[str]] = []
        self.outputs: list[list[str]] = []
        self.producer: dict[str, int] = {}
        # node -> the metadata naming where it came from (SOURCE_METADATA), for nodes whose name
        # does not already say it (a scoped "/a/b/Op" name does)
        self.sources: dict[int, tuple[tuple[str, str], ...]] = {}
        self._readers: Optional[tuple[dict[str, int], dict[str, int]]] = None

    def __len__(self) -> int:
        return len(self.protos)

    def _reader_index(self) -> tuple[dict[str, int], dict[str, int]]:
        """(reads of each tensor, the first node reading it), built on first use, in C."""
        if self._readers is None:
            names = list(chain.from_iterable(self.inputs))
            # pairs from the last to the first: each tensor's first reader is written last
            first = dict(zip(reversed(names), reversed(list(_owners(self.inputs)))))
            self._readers = (Counter(names), first)
        return self._readers

    def is_read(self, tensor: str) -> bool:
        return tensor in self._reader_index()[0]

    def only_reader(self, tensor: str) -> Optional[int]:
        """The single node reading `tensor`, if exactly one does (reading it once or more)."""
        count, first = self._reader_index()
        reads = count.get(tensor)
        if reads is None:
            return None
        reader = first[tensor]
        return reader if reads == 1 or self.inputs[reader].count(tensor) == reads else None

    def label(self, index: int) -> str:
        return node_label(self.names[index], self.outputs[index], self.op_types[index])

    def labels(self) -> list[str]:
        """Every node's label (node_label), in one comprehension: one per node of the graph."""
        return [name or (outputs[0] if outputs else op_type)
                for name, outputs, op_type in zip(self.names, self.outputs, self.op_types)]


def node_label(name: str, outputs: Sequence[str], op_type: str) -> str:
    """A node's name, else its first output, else its op type."""
    return name or (outputs[0] if outputs else op_type)


def numbered(labels: Sequence[str]) -> list[str]:
    """The labels with "#2", "#3"... on the later ones repeating an earlier one: layer names."""
    if len(set(labels)) == len(labels):
        return list(labels)
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        count = seen[label] = seen.get(label, 0) + 1
        unique.append(label if count == 1 else f"{label}#{count}")
    return unique


def read_nodes(graph: GraphProto, available: Iterable[str], sources: bool = True) -> NodeTable:
    """Read every node once; reorder topologically when the file is not (ModelError on a cycle).
    `sources`: whether to read the nodes' metadata naming where they came from."""
    table = _read(graph.node, sources)
    if _is_sorted(table):
        return table
    return _read(_topological_order(table, set(available)), sources)


# Node metadata that names the module a node came from (the dynamo exporter's scopes, and the
# rewrite that merged a BatchNorm into a conv): kept for naming layers, everything else is not.
SOURCE_METADATA = ("pkg.torch.onnx.name_scopes", "pkg.onnxscript.rewriter.rule_name")


def _read(nodes: Iterable[NodeProto], sources: bool) -> NodeTable:
    # one comprehension per field: each reads one field of every node with no other Python work
    table = NodeTable()
    protos = table.protos = list(nodes)
    table.op_types = [node.op_type for node in protos]
    domains = table.domains = [node.domain for node in protos]
    if any(domains):
        table.domains = [normalize_domain(domain) if domain else domain for domain in domains]
    names = table.names = [node.name for node in protos]
    table.inputs = [node.input[:] for node in protos]
    outputs_of = table.outputs = [node.output[:] for node in protos]
    producer = table.producer = {name: index for index, outputs in enumerate(outputs_of) for name in outputs}
    producer.pop("", None)
    try:  # protobuf hands over a string that is not UTF-8 as bytes: one check per list, in C
        "".join(table.op_types), "".join(table.domains), "".join(names)
        "".join(chain.from_iterable(table.inputs)), "".join(chain.from_iterable(outputs_of))
    except TypeError:
        raise ModelError(_not_text(table)) from None
    if sources:
        _read_sources(table)
    if len(producer) < sum(map(len, outputs_of)):  # an optional output left empty, or a name listed twice
        _check_repeated_outputs(table)
    return table


def _read_sources(table: NodeTable) -> None:
    protos = table.protos
    # (a scoped "/a/b/Op" name says where the node came from: its metadata is not read)
    for index in [index for index, name in enumerate(table.names)
                  if not name.startswith("/") and protos[index].metadata_props]:
        source = _source_metadata(protos[index])
        if source:
            table.sources[index] = source


def _check_repeated_outputs(table: NodeTable) -> None:
    """A node listing one output several times would have its tensor counted once per listing."""
    for index, outputs in enumerate(table.outputs):
        named = [name for name in outputs if name]
        if len(set(named)) < len(named):
            name = next(name for name in named if named.count(name) > 1)
            raise ModelError(f"node {table.label(index)!r} ({table.op_types[index]}) lists its output {name!r} "
                             f"{named.count(name)} times; a graph names each tensor once")


def _not_text(table: NodeTable) -> str:
    """Which field of which node is not UTF-8 text."""
    for index in range(len(table)):
        for what, texts in (("op type", [table.op_types[index]]), ("domain", [table.domains[index]]),
                            ("name", [table.names[index]]), ("input name", table.inputs[index]),
                            ("output name", table.outputs[index])):
            text = next((text for text in texts if not isinstance(text, str)), None)
            if text is not None:
                return f"not a valid ONNX file: the {what} of node {index} is not UTF-8 text ({bytes_text(text)})"
    return "not a valid ONNX file: a name is not UTF-8 text"


def bytes_text(data: bytes) -> str:
    """A string field protobuf returned as bytes, shown as far as it is text: b'\\xff\\xffrelu'."""
    return repr(bytes(data[:40])) + ("..." if len(data) > 40 else "")


def check_text(texts: Collection[object], what: str) -> None:
    """ModelError when one of `texts` (names read from the file) is not UTF-8 text."""
    try:
        "".join(texts)  # type: ignore[arg-type]
    except TypeError:
        text = next(text for text in texts if not isinstance(text, str))
        raise ModelError(f"not a valid ONNX file: {what} is not UTF-8 text "
                         f"({bytes_text(text) if isinstance(text, bytes) else type(text).__name__})") from None


def _source_metadata(node: NodeProto) -> tuple[tuple[str, str], ...]:
    found = tuple((entry.key, entry.value) for entry in node.metadata_props if entry.key in SOURCE_METADATA)
    check_text([text for pair in found for text in pair], f"the metadata of node {node.name!r}")
    return found


def _is_sorted(table: NodeTable) -> bool:
    """Every input is produced by an earlier node (or by none: a graph input, an initializer, an
    outer value or a dangling name)."""
    # in C: each input's producer (-1: none) against the index of the node reading it
    producers = map(table.producer.get, chain.from_iterable(table.inputs), repeat(-1))
    return not any(map(ge, producers, _owners(table.inputs)))


def _owners(lists: Sequence[Collection[str]]) -> Iterator[int]:
    """For each element of the lists, one after another, the index of the list holding it."""
    return chain.from_iterable(map(repeat, range(len(lists)), map(len, lists)))


def _topological_order(table: NodeTable, available: set[str]) -> list[NodeProto]:
    """Kahn's algorithm over the table, in file order among ready nodes."""
    pending = [{table.producer[n] for n in inputs if n and n not in available and n in table.producer}
               for inputs in table.inputs]
    dependents: dict[int, list[int]] = {}
    for index, deps in enumerate(pending):
        for dep in deps:
            dependents.setdefault(dep, []).append(index)
    ready = deque(index for index, deps in enumerate(pending) if not deps)
    order: list[int] = []
    while ready:
        index = ready.popleft()
        order.append(index)
        for dependent in dependents.get(index, []):
            pending[dependent].discard(index)
            if not pending[dependent]:
                ready.append(dependent)
    if len(order) != len(table):
        stuck = next(index for index in range(len(table)) if index not in set(order))
        raise ModelError(f"the graph has a cycle through node {table.label(stuck)!r} ({table.op_types[stuck]})")
    return [table.protos[index] for index in order]


def shape_of(type_proto: onnx.TypeProto) -> Optional[Shape]:
    """Fully known dims of a tensor type, else None (a symbolic or missing dim, or no shape)."""
    tensor_type = type_proto.tensor_type
    dims = tensor_type.shape.dim
    shape = tuple([dim.dim_value for dim in dims])
    if 0 in shape and not all(dim.HasField("dim_value") for dim in dims):
        return None  # unset (symbolic or unknown) dims read as 0; a real 0 has its value set
    if not shape and not tensor_type.HasField("shape"):
        return None  # unknown rank, not a scalar
    return shape


def describe_dims(type_proto: onnx.TypeProto) -> str:
    """E.g. "[2, seq]" (symbolic dims by name, unknown ones as "?")."""
    if not type_proto.tensor_type.HasField("shape"):
        return "unknown rank"
    parts = [str(dim.dim_value) if dim.HasField("dim_value") else (dim.dim_param or "?")
             for dim in type_proto.tensor_type.shape.dim]
    parts = [part if isinstance(part, str) else bytes_text(part) for part in parts]  # a name that is not UTF-8
    return "[" + ", ".join(parts) + "]"


Declared = tuple[Optional[Shape], int]  # (shape, element type) as a value info gives them; 0: not a tensor
# (name, serialized TypeProto) of each graph input, each value info and each graph output
ValueTypes = tuple[list[tuple[str, bytes]], list[tuple[str, bytes]], list[tuple[str, bytes]]]


class ValueTable(Mapping[str, TensorInfo]):
    """Shape, element type and constant-ness of every named value of one graph (and, through
    `outer`, of the graphs around it). Value infos are decoded once, in one loop; TensorInfo
    rows are made on first request."""

    def __init__(self, graph: GraphProto, outer: Optional["ValueTable"] = None,
                 value_types: Optional[ValueTypes] = None) -> None:
        self.graph = graph
        self.outer = outer
        self.initializers: dict[str, TensorProto] = {t.name: t for t in graph.initializer}
        # value infos with a negative dim (declared, or inferred from a node whose inputs do not fit it)
        self.negative: dict[str, Shape] = {}
        # bytes of every declared tensor (None: not known), kept in step with the rows
        self.sizes: dict[str, Optional[int]] = {}
        self.declared: dict[str, Declared] = _declared_values(value_types or value_types_of(graph), self.initializers,
                                                              self.negative, self.sizes)
        self.rows: dict[str, TensorInfo] = {}
        self.constants: set[str] = set(self.initializers)  # known before the graph runs
        self.stored: set[str] = set(self.initializers)  # constants that are stored data (parameter roots)
        self.bounded: set[str] = set()  # shapes or values that are upper bounds
        self.valued: set[str] = set()  # computed tensors whose value can be worked out on request
        # computes those values (a weak reference to the prepared graph's method)
        self.valuer: Optional[Callable[[], Optional[Callable[[str], Optional[np.ndarray]]]]] = None

    def is_constant(self, name: str) -> bool:
        if name in self.constants:
            return True
        return self.outer is not None and name not in self.declared and self.outer.is_constant(name)

    def is_bounded(self, name: str) -> bool:
        if name in self.bounded:
            return True
        return self.outer is not None and name not in self.declared and self.outer.is_bounded(name)

    def is_valued(self, name: str) -> bool:
        if name in self.valued or name in self.initializers:
            return True
        return self.outer is not None and name not in self.declared and self.outer.is_valued(name)

    def is_stored(self, name: str) -> bool:
        if name in self.stored:
            return True
        return self.outer is not None and name not in self.declared and self.outer.is_stored(name)

    def __getitem__(self, name: str) -> TensorInfo:
        return self.row(name)

    def row(self, name: str) -> TensorInfo:
        """What is known of `name`, made on first request. A value of the graph around is that
        graph's row, asked for each time (not kept here): that graph may learn its shape later."""
        row = self.rows.get(name)
        if row is None:
            if self.outer is not None and name not in self.initializers and name not in self.declared and name in self.outer:
                return self.outer.row(name)
            row = self.rows[name] = self._make(name)
        return row

    # Shapes and sizes read without making a row: most tensors never need one (a row is made
    # for the inputs and outputs of the nodes a cost function sees, and for what a pass learns).

    def shape(self, name: str) -> Optional[Shape]:
        row = self.rows.get(name)
        if row is not None:
            return row.shape
        declared = self.declared.get(name)
        if declared is not None and name not in self.initializers:
            return declared[0]
        return self.row(name).shape

    def numel(self, name: str) -> Optional[int]:
        shape = self.shape(name)
        return None if shape is None else math.prod(shape)

    def nbytes(self, name: str) -> Optional[int]:
        size = self.sizes.get(name, self)
        if size is self:  # an initializer, an outer value or a name nothing declares
            row = self.row(name)
            size = row.nbytes
            if self.rows.get(name) is row:  # (an outer value's size is asked of its graph each time)
                self.sizes[name] = size
        return size  # type: ignore[return-value]

    def value_info(self, name: str) -> Optional[onnx.ValueInfoProto]:
        """The value info the graph declares for `name` (for messages about symbolic dims)."""
        for group in (self.graph.value_info, self.graph.output, self.graph.input):
            for value_info in group:
                if value_info.name == name:
                    return value_info
        return None

    def learn(self, name: str, shape: Optional[Shape], dtype: Optional[int] = None, bounded: bool = False) -> None:
        """Set what a pass found out about a tensor (a shape inferred late or forgotten, a bound)."""
        known = self.row(name)
        if bounded:
            self.bounded.add(name)
        row = self.rows[name] = self._row(name, shape, known.dtype if dtype is None else dtype)
        self.sizes[name] = row.nbytes

    def _make(self, name: str) -> TensorInfo:
        initializer = self.initializers.get(name)
        if initializer is not None:
            dims = tuple(initializer.dims)
            if self.outer is not None and dims and min(dims) < 0:  # (the main graph's are checked before inference)
                raise ModelError(f"initializer {name!r} declares a negative dim {list(dims)}")
            return TensorInfo(name, dims, initializer.data_type, initializer, True)
        declared = self.declared.get(name)
        if declared is None:
            return TensorInfo(name, None)
        shape, dtype = declared
        return self._row(name, shape, dtype)

    def _row(self, name: str, shape: Optional[Shape], dtype: int) -> TensorInfo:
        source = partial(_value_by, self.valuer, name) if name in self.valued and self.valuer is not None else None
        return TensorInfo(name, shape, dtype, source, name in self.constants, name in self.bounded)

    def __contains__(self, name: object) -> bool:
        return (name in self.rows or name in self.initializers or name in self.declared
                or (self.outer is not None and name in self.outer))

    def __iter__(self) -> Iterator[str]:
        seen = set(self.initializers) | set(self.declared) | set(self.rows)
        return iter(seen | (set(self.outer) if self.outer is not None else set()))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _value_by(valuer: Callable[[], Optional[Callable[[str], Optional[np.ndarray]]]], name: str) -> Optional[np.ndarray]:
    compute = valuer()
    return compute(name) if compute is not None else None


def _decoded(value_types: Iterable[tuple[str, bytes]], into: dict[str, Declared], sizes: dict[str, Optional[int]],
             skip: Mapping[str, object], negative: dict[str, Shape], by_type: dict[bytes, "_Decoded"]) -> None:
    """Decode each value's shape and element type (from its name and serialized TypeProto) into
    `into`, and its bytes into `sizes` (None: not known). A shape with a negative dim is left
    unknown and kept in `negative` (the graph refuses it). Most tensors of a graph share a few
    types: each type is decoded once, found again by its serialized bytes."""
    for name, key in value_types:
        if name in skip:
            continue
        decoded = by_type.get(key)
        if decoded is None:
            decoded = by_type[key] = _decode_type(onnx.TypeProto.FromString(key))
        into[name], sizes[name], negative_shape = decoded
        if negative_shape is not None:
            negative[name] = negative_shape


def value_types_of(graph: GraphProto) -> ValueTypes:
    """What light_read.read_value_types reads, from a graph already in Python (a body's)."""
    def typed(group: Iterable[onnx.ValueInfoProto]) -> list[tuple[str, bytes]]:
        return [(value_info.name, value_info.type.SerializeToString()) for value_info in group]

    return typed(graph.input), typed(graph.value_info), typed(graph.output)


_Decoded = tuple[Declared, Optional[int], Optional[Shape]]  # (shape and type, bytes, the shape if a dim is negative)


def _decode_type(type_proto: onnx.TypeProto) -> _Decoded:
    shape = shape_of(type_proto)  # another type (a sequence) reads as a shapeless tensor
    negative_shape: Optional[Shape] = None
    if shape and min(shape) < 0:
        negative_shape, shape = shape, None
    dtype = type_proto.tensor_type.elem_type
    bits = _BITS_BY_DTYPE.get(dtype)
    nbytes = None if shape is None or bits is None else (math.prod(shape) * bits + 7) // 8
    return (shape, dtype), nbytes, negative_shape


def _declared_values(value_types: ValueTypes, initializers: Mapping[str, TensorProto], negative: dict[str, Shape],
                     sizes: dict[str, Optional[int]]) -> dict[str, Declared]:
    """Shapes by name: inputs (not initializers: IR < 4 graphs list weights as inputs too), then
    inferred values, then outputs (a shapeless output entry does not hide an inferred shape).
    `sizes` receives the bytes of each."""
    inputs, value_infos, graph_outputs = value_types
    declared: dict[str, Declared] = {}
    by_type: dict[bytes, _Decoded] = {}
    _decoded(inputs, declared, sizes, initializers, negative, by_type)
    _decoded(value_infos, declared, sizes, {}, negative, by_type)
    outputs: dict[str, Declared] = {}
    output_sizes: dict[str, Optional[int]] = {}
    _decoded(graph_outputs, outputs, output_sizes, initializers, negative, by_type)
    for name, (shape, dtype) in outputs.items():
        known = declared.get(name)
        if dtype and (known is None or shape is not None or known[0] is None):
            declared[name] = (shape, dtype)
            sizes[name] = output_sizes[name]
    return declared
