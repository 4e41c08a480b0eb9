"""Graph preparation: input dims, one shape inference, then one topological pass.

Works on a weightless skeleton (see loader.py): initializers keep dims and dtype, and keep
their values only when small. The pass visits every node once, in order, and decides:

- whether it computes a constant (all inputs constant, or a Shape of a known shape): such
  nodes run before the graph does and cost nothing;
- for a runtime node whose output shape onnx's inference left unknown (shape arithmetic it
  cannot propagate, a contrib op, a shape that depends on data): the node's own inference
  with the values of its constant inputs, the op's registered shape function, or, for an op
  whose output size depends on data (NonMaxSuppression, NonZero...), the op's worst case,
  marked as an upper bound. Later nodes see what was learnt, so one pass reaches the fixpoint.

Values are computed only when a shape or a cost asks for them, node by node, and never one
larger than folding.FOLD_MAX_ELEMENTS: no weight is ever materialised.
"""
from __future__ import annotations

import math
import re
import weakref
from functools import lru_cache
from itertools import chain
from typing import Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np
import onnx
import onnx.inliner
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, helper

from . import folding
from .errors import ModelError
from .input_dims import DATA_PROP_MAX_ELEMENTS, INT64_MAX, InputShapes, apply_input_shapes, real_input_names
from .registry import (
    ALIAS,
    COMPUTED,
    DEFAULT_TRAITS,
    FROM_SHAPE,
    RANDOM,
    Known,
    STORED,
    OpEntry,
    OpRegistry,
    OpTraits,
    TypedShape,
    normalize_domain,
)
from .light_read import as_it_is, read_value_types
from .tables import (
    SOURCE_METADATA,
    NodeTable,
    ValueTable,
    ValueTypes,
    check_text,
    describe_dims,
    read_nodes,
    shape_of,
    value_types_of,
)
from .types import NodeView, Shape, TensorInfo, attribute_value, decode_small_tensor

__all__ = ["InputShapes", "PreparedGraph", "infer_shapes", "prepare_graph"]

# Constant inputs of these element types are passed to a node's own shape inference as data.
_INDEX_DTYPES = frozenset({TensorProto.INT64, TensorProto.INT32})


def _widening_cast(source: Optional[int], target: object) -> bool:
    """A Cast that keeps every non-negative integer of `source` (no wrap-around): to an integer
    type at least as wide (wider when it gains a sign), or from an integer to a float."""
    if source is None or target is None:
        return False
    try:
        src = np.dtype(helper.tensor_dtype_to_np_dtype(int(source)))
        dst = np.dtype(helper.tensor_dtype_to_np_dtype(int(target)))  # type: ignore[arg-type]
    except Exception:
        return False
    if src.kind not in "iu":
        return src == dst
    if dst.kind == "f":
        return True
    if dst.kind not in "iu":
        return False
    if src.kind == "u" and dst.kind == "i":
        return dst.itemsize > src.itemsize
    return dst.itemsize >= src.itemsize


class GraphContext:
    """What every (sub)graph of one model shares."""

    def __init__(self, registry: OpRegistry, model: ModelProto, node_sources: bool = True) -> None:
        self.registry = registry
        self.node_sources = node_sources  # False: no node's metadata names its source (tables.SOURCE_METADATA)
        self.opset_imports = list(model.opset_import)
        self.opsets = declared_opsets(model.opset_import)
        self.ir_version = model.ir_version


class PreparedGraph:
    """A graph with shapes resolved as far as possible and everything a cost function needs."""

    def __init__(self, graph: GraphProto, context: GraphContext, outer: Optional["PreparedGraph"] = None,
                 notes: Optional[list[str]] = None, value_types: Optional[ValueTypes] = None) -> None:
        self.graph = graph
        self.context = context
        self.registry = context.registry
        self.opsets = context.opsets
        self.outer = outer
        value_types = value_types or value_types_of(graph)  # (read once: IR < 4 lists every weight as an input)
        input_names = [name for name, _ in value_types[0]]
        self.values = ValueTable(graph, outer.values if outer is not None else None, value_types)
        # (weakly: the rows hold it, and a cycle through them would leave every table of the
        # graph to the cyclic collector after profiling)
        self.values.valuer = weakref.WeakMethod(self.value_of)
        initializers = self.values.initializers
        check_text(initializers, "an initializer name")
        check_text(self.values.declared, "the name of a graph input, output or value")
        self.real_inputs = real_input_names(input_names, initializers)
        self.table: NodeTable = read_nodes(graph, set(initializers).union(input_names), context.node_sources)
        if self.values.negative:
            raise self._negative_dims()
        self.graph_outputs = [output.name for output in graph.output]
        check_text(self.graph_outputs, "the name of a graph output")
        self.notes: list[str] = notes if notes is not None else []
        self.constant_nodes: set[int] = set()
        self.runtime: list[int] = []  # indices of the nodes that run at inference, in order
        self.entries: list[Optional[OpEntry]] = []  # each node's registry entry (None: no rule)
        self.op_entries: list[OpEntry] = []  # the registry entries of the graph's ops, each once
        self.tainted: set[str] = set()  # tensors made unknown on purpose (after a hard-coded reshape)
        self.variable_length: set[str] = set()  # tensors whose shape (not only value) is an upper bound
        # values computed from an upper bound by an op that does not keep it (N - 1, a Concat with
        # -1...): the node that stopped it, named when a shape is then not known
        self.stopped: dict[str, int] = {}
        self._noted_stops: set[int] = set()
        # node -> what onnx's inference of it said when it refused its inputs (shown where its layer is unresolved)
        self.inference_errors: dict[int, str] = {}
        self._values: dict[str, Optional[np.ndarray]] = {}
        self._body_reads: Optional[set[str]] = None  # see _read_in_bodies
        self._run()

    # ---- the public view -------------------------------------------------------------------

    @property
    def nodes(self) -> list[NodeProto]:
        return self.table.protos

    @property
    def tensors(self) -> ValueTable:
        return self.values

    def entry(self, index: int) -> Optional[OpEntry]:
        return self.entries[index]

    def view(self, node: Union[int, NodeProto]) -> NodeView:
        index = node if isinstance(node, int) else self.table.protos.index(node)
        table, rows, row = self.table, self.values.rows, self.values.row
        domain = table.domains[index]
        return NodeView(table.names[index], table.op_types[index], domain,
                        tuple([(rows.get(n) or row(n)) if n else None for n in table.inputs[index]]),
                        tuple([(rows.get(n) or row(n)) if n else None for n in table.outputs[index]]),
                        None, self.opsets.get(domain, 0), table.protos[index])

    def describe_unknown_inputs(self, index: int) -> str:
        """E.g. "'x' [2, seq]" for each input of the node whose shape is not resolved."""
        parts = []
        for name in self.table.inputs[index]:
            if name and self.values[name].shape is None:
                declared = self._value_info(name)
                parts.append(f"{name!r} {describe_dims(declared.type) if declared is not None else 'unknown rank'}")
        return ", ".join(parts)

    def _value_info(self, name: str) -> Optional[onnx.ValueInfoProto]:
        scope: Optional[PreparedGraph] = self
        while scope is not None:
            if name in scope.values.declared:
                return scope.values.value_info(name)
            scope = scope.outer
        return None

    def is_valued(self, name: str) -> bool:
        return self.values.is_valued(name)

    def work_out_shape(self, name: str) -> Optional[Shape]:
        """The shape of a constant that onnx's inference left unknown, worked out from the nodes
        computing it (see value_of: its value when small, else its shape from its inputs'); None
        when it cannot be. Asked for the Shape of such a constant (NonZero of a weight), and for
        a weight a layer reads: one made by ConstantOfShape of a shape onnx does not propagate
        (computed by Max; in a body, read from the graph around) has no shape until asked."""
        shape = self.values.shape(name)
        if shape is None and self.is_valued(name):
            self.value_of(name)  # (ModelError for dims no tensor can have, as when a cost rule asks)
            shape = self.values.shape(name)
        return shape

    @property
    def any_bounded(self) -> bool:
        """Some tensor here (or in a graph around) is an upper bound."""
        return bool(self.values.bounded) or (self.outer is not None and self.outer.any_bounded)

    def _negative_dims(self) -> "NegativeDims":
        """The first tensor, in graph order, whose shape (declared, or inferred by onnx) has a negative dim."""
        negative, table = self.values.negative, self.table
        for index, outputs in enumerate(table.outputs):
            for name in outputs:
                if name in negative:
                    hint = _NEGATIVE_DIM_HINTS.get(table.op_types[index], "")
                    return NegativeDims(name, negative[name], f"{_node_label(table, index)}: its output {name!r} would "
                                        f"have the dims {list(negative[name])}: its inputs and attributes do not fit the "
                                        f"op{hint}")
        name, dims = next(iter(negative.items()))
        return NegativeDims(name, dims, f"value {name!r} is declared with a negative dim {list(dims)}")

    def _learn(self, index: int, name: str, shape: Shape, dtype: Optional[int], bounded: bool) -> None:
        """Learn an output shape computed here (a shape rule's, a node's own inference): refused
        when a dim is negative or beyond what an ONNX dim (int64) holds."""
        if shape and (min(shape) < 0 or max(shape) > INT64_MAX):
            raise ModelError(f"{_node_label(self.table, index)}: its output {name!r} would have the dims "
                             f"{list(shape)}: " + ("a negative dim (its inputs and attributes do not fit the op)"
                                                   if min(shape) < 0 else "a dim beyond what ONNX holds (int64)"))
        self.values.learn(name, shape, dtype, bounded=bounded)

    # ---- the pass ----------------------------------------------------------------------------

    def _run(self) -> None:
        table = self.table
        self.entries, self.op_entries = _entries(self.registry, table)
        constants, runtime, tainted, inputs_of = self.values.constants, self.runtime, self.tainted, table.inputs
        main_graph = self.outer is None  # (in a subgraph, an input may be a constant of the graph around)
        for index, entry in enumerate(self.entries):
            traits = entry.traits if entry is not None else DEFAULT_TRAITS
            inputs = inputs_of[index]
            if tainted and not tainted.isdisjoint(inputs):
                runtime.append(index)
                self._taint(table.outputs[index])
                continue
            if not inputs and traits.constant == STORED:  # a Constant (a third of a transformer's nodes)
                self._mark_constant(index, traits)
                continue
            if traits.constant == COMPUTED and inputs:  # most nodes: what _computes_constant finds, in C
                all_constant = constants.issuperset(inputs)
                if all_constant and entry is not None and entry.body_cost is None:
                    self._mark_constant(index, traits)
                    continue
                if not all_constant and main_graph and "" not in inputs:
                    runtime.append(index)
                    self._resolve_runtime(index, traits)
                    continue
            if self._computes_constant(index, entry, traits):
                self._mark_constant(index, traits)
            else:
                runtime.append(index)
                self._resolve_runtime(index, traits)

    def _computes_constant(self, index: int, entry: Optional[OpEntry], traits: OpTraits) -> bool:
        """Known before the graph runs: all inputs constant (a Shape: its input's shape known)."""
        kind = traits.constant
        inputs = self.table.inputs[index]
        if kind == RANDOM or (entry is not None and entry.body_cost is not None):
            return False
        if kind == FROM_SHAPE:
            if not inputs:
                return False
            # (the shape of a constant onnx left unknown, NonZero of a weight, say: from its value)
            return self.work_out_shape(inputs[0]) is not None and not self.values.is_bounded(inputs[0])
        if not inputs:
            return kind == STORED  # Constant
        for name in inputs:
            if name and not self.values.is_constant(name):
                return False
        return entry is not None or not _has_subgraph(self.table.protos[index])

    def _mark_constant(self, index: int, traits: OpTraits) -> None:
        self.constant_nodes.add(index)
        outputs = self.table.outputs[index]
        if "" in outputs:
            outputs = [name for name in outputs if name]
        self.values.constants.update(outputs)
        self.values.valued.update(outputs)
        if traits.constant == STORED:
            self.values.stored.update(outputs)

    def _taint(self, names: Sequence[str]) -> None:
        for name in names:
            if name:
                self.tainted.add(name)
                self.values.learn(name, None)

    def _resolve_runtime(self, index: int, traits: OpTraits) -> None:
        shape = self.values.shape
        for name in self.table.outputs[index]:
            if name and shape(name) is None and self._needed(name):
                self._complete(index, traits, for_value=False)
                break
        if traits.buffer == ALIAS:
            self._check_view(index, traits)
        if self.any_bounded:
            self._mark_sized_by_bounds(index, traits)
            self._mark_bounded_values(index, traits)

    def _needed(self, name: str) -> bool:
        return self.table.is_read(name) or name in self.graph_outputs or name in self._read_in_bodies()

    def _read_in_bodies(self) -> set[str]:
        """The names the bodies of this graph's If, Loop and Scan nodes read, at any depth (a value
        of this graph only a branch reads is needed all the same)."""
        if self._body_reads is None:
            self._body_reads = set()
            graphs = [graph for index, entry in enumerate(self.entries) if entry is None or entry.body_cost is not None
                      for graph in _subgraphs(self.table.protos[index])]
            while graphs:
                graph = graphs.pop()
                self._body_reads.update(output.name for output in graph.output)  # (a body may return an outer value)
                for node in graph.node:
                    self._body_reads.update(node.input)
                    graphs.extend(_subgraphs(node))
        return self._body_reads

    def _mark_sized_by_bounds(self, index: int, traits: OpTraits) -> None:
        """Outputs whose dims the file declares (so no pass works them out), sized by an input read
        as a shape that is an upper bound (a ConstantOfShape of the Shape of NonZero's output; a
        Loop's scan outputs, one row per iteration): their sizes are bounds too. Not those onnx's
        inference of the node gives from its inputs' shapes alone (a CumSum's, whatever its axis)."""
        table, values = self.table, self.values
        inputs, outputs = table.inputs[index], table.outputs[index]
        if not any(position < len(inputs) and inputs[position] and values.is_bounded(inputs[position])
                   for position in traits.shape_inputs):
            return
        declared = [name for name in outputs if name and values.shape(name) is not None and not self.is_variable_length(name)]
        if table.op_types[index] == "Loop":  # (its carried values keep their shapes)
            sized = [name for name in declared if outputs.index(name) >= len(inputs) - 2]
        else:
            sized = self._sized_by_values(index, declared)
        for name in sized:
            self._learn(index, name, values.shape(name), None, True)  # type: ignore[arg-type]
            self.variable_length.add(name)

    def _sized_by_values(self, index: int, declared: list[str]) -> list[str]:
        """Those of the node's declared outputs whose shapes onnx's inference does not give without
        the values of its inputs."""
        table = self.table
        schema = _schema(table.op_types[index], self.opsets.get(table.domains[index], 0), table.domains[index])
        if not declared or schema is None or _has_subgraph(table.protos[index]):
            return []  # (not told apart: an If's outputs, which its branches give, and an op onnx has no schema for)
        try:
            from_shapes = self._node_inference(schema, index, [self.values[n] if n else None for n in table.inputs[index]], {})
        except Exception:  # (inputs that do not fit the op: reported where its layer is)
            return []
        return [name for name in declared if from_shapes.get(name, (None, None))[0] is None]

    def _mark_bounded_values(self, index: int, traits: OpTraits) -> None:
        """A runtime node computing from bounded shapes (Shape of NonZero's output...) gives
        values that are upper bounds, usable as shapes further on, as long as the op cannot
        turn a larger input into a smaller output."""
        inputs, outputs = self.table.inputs[index], self.table.outputs[index]
        bounded: list[int] = []
        valued = False
        if traits.constant == FROM_SHAPE:
            usable = bool(inputs) and self.values[inputs[0]].shape is not None
        else:
            bounded = [position for position, name in enumerate(inputs) if name and self.values.is_bounded(name)]
            valued = all(not name or self.is_valued(name) for name in inputs)
            usable = (bool(bounded) and valued and self._grows_with(index, bounded)
                      and self._keeps_count(index, bounded))
        if usable:
            names = [name for name in outputs if name]
            self.values.valued.update(names)
            for name in names:
                self.values.learn(name, self.values[name].shape, bounded=True)
            return
        # the node that stopped a bound this value is computed from: an earlier one, or this one
        # when it had every input's value and the bound was what it could not keep
        stopped_at = None
        if all(not name or name in self.stopped or self.is_valued(name) for name in inputs):
            # (an input that has no value for another reason is reason enough on its own)
            stopped_at = next((self.stopped[name] for name in inputs if name in self.stopped), None)
        if stopped_at is None and bounded and valued:
            stopped_at = index
        if stopped_at is not None:
            self.stopped.update((name, stopped_at) for name in outputs if name)

    def is_variable_length(self, name: str) -> bool:
        """The tensor's shape is an upper bound (its elements may be fewer, and shift)."""
        scope: Optional[PreparedGraph] = self
        while scope is not None:
            if name in scope.variable_length:
                return True
            if name in scope.values.declared:
                return False
            scope = scope.outer
        return False

    def _squeezes_bounded_dims(self, index: int) -> bool:
        """A Squeeze without axes on a tensor whose dims are upper bounds: a dim that is 1 at
        run time is dropped too, so not even the rank of the output is known."""
        table = self.table
        if table.op_types[index] != "Squeeze":
            return False
        inputs = table.inputs[index]
        if not inputs or not inputs[0] or (len(inputs) > 1 and inputs[1]) or "axes" in self._attributes(index):
            return False
        return self.is_variable_length(inputs[0])

    # Ops a value whose length is an upper bound may pass: they do not pick elements by position
    # (a shorter input shifts positions) and cannot decrease as elements are added.
    _ORDER_FREE = frozenset({"Identity", "Cast", "ReduceMax", "ReduceSum"})
    # Inputs that are axes, not values: negative ones count from the end, which is fine.
    _AXES_INPUTS = {"Slice": 3, "Unsqueeze": 1, "Squeeze": 1, "ReduceMax": 1, "ReduceSum": 1, "ReduceMin": 1,
                    "ReduceProd": 1, "Pad": 3}

    def _keeps_count(self, index: int, bounded: Sequence[int]) -> bool:
        """A bounded value is a count that cannot be negative: the node's output stays one only
        if its other inputs cannot be negative either (N + c, Min(N, c), a Gather or Slice from
        the end...), a Cast does not narrow it, and a value whose length is a bound only goes
        through ops that do not pick elements by position."""
        table = self.table
        op_type, inputs = table.op_types[index], table.inputs[index]
        axes_at = self._AXES_INPUTS.get(op_type)
        for position, name in enumerate(inputs):
            if not name or position in bounded or position == axes_at:
                continue
            value = self.value_of(name) if self.is_valued(name) else None
            if value is None:
                return False
            value = np.asarray(value)
            if value.dtype.kind not in "biuf" or (value.size and not bool(np.all(value >= 0))):
                return False
        if any(self.is_variable_length(inputs[p]) for p in bounded) and op_type not in self._ORDER_FREE:
            return False
        if op_type == "Cast":
            return _widening_cast(self.values[inputs[0]].dtype, self._attributes(index).get("to"))
        if op_type == "ConstantOfShape":
            fill = folding.constant_attribute_value(self._attributes(index))
            return fill is None or bool(np.all(np.asarray(fill) >= 0))
        return True

    def _grows_with(self, index: int, bounded: Sequence[int]) -> bool:
        """The node's output cannot shrink as its inputs at `bounded` grow (folding.GROWS_WITH)."""
        op_type = self.table.op_types[index]
        if op_type not in folding.GROWS_WITH:
            return False
        if not callable(folding.GROWS_WITH[op_type]):  # no value needed
            return folding.grows_with(op_type, bounded, (), {})
        inputs = self.table.inputs[index]
        values = [self.value_of(name) if name and self.is_valued(name) else None for name in inputs]
        return folding.grows_with(op_type, bounded, values, self._attributes(index))

    def _attributes(self, index: int) -> dict[str, object]:
        return {a.name: attribute_value(a) for a in self.table.protos[index].attribute
                if a.type not in (AttributeProto.GRAPH, AttributeProto.GRAPHS)}

    # ---- shapes onnx's inference left unknown ------------------------------------------------

    def _complete(self, index: int, traits: OpTraits, for_value: bool, apply_bounds: bool = True) -> None:
        """Infer the node's output shapes from its inputs' shapes and values; failing that (and
        with `apply_bounds`), from the op's worst case (upper bounds)."""
        table = self.table
        for name in table.inputs[index]:
            if name and self.values[name].shape is None and self.is_valued(name):
                self.value_of(name)  # a constant whose shape is known once its producer is resolved
        inputs = [self.values[name] if name else None for name in table.inputs[index]]
        if any(info is not None and info.shape is None for info in inputs):
            return
        data, data_bounded, withheld = self._shape_data(index, traits, all_inputs=for_value)
        bounded = data_bounded or any(info is not None and info.bounded for info in inputs)
        if self._squeezes_bounded_dims(index):
            withheld = withheld + [(0, table.inputs[index][0])]
            outputs = {}
        else:
            outputs = self._inferred_outputs(index, inputs, data) if not (withheld and self._is_contrib(index)) else {}
        varies = data_bounded or any(name and self.is_variable_length(name) for name in table.inputs[index])
        for name, (shape, dtype) in outputs.items():
            if self.values[name].shape is None and shape is not None:
                self._learn(index, name, shape, dtype, bounded)
                if varies:
                    self.variable_length.add(name)
        unknown = any(name and self.values[name].shape is None for name in table.outputs[index])
        if unknown and withheld and not for_value:
            self._withheld_note(index, withheld)
        if traits.bounds is not None and unknown and apply_bounds:
            self._apply_bounds(index, traits)
        if (unknown and self.stopped and not withheld and not for_value
                and any(name and self.values[name].shape is None for name in table.outputs[index])):
            self._stopped_note(index, traits)

    def _shape_data(self, index: int, traits: OpTraits,
                    all_inputs: bool) -> tuple[dict[str, TensorProto], bool, list[tuple[int, str]]]:
        """Values of the inputs that shape inference may read (shapes, axes, indices, scalars),
        whether one is an upper bound, and the upper bounds withheld: those in an input where a
        larger value can give a smaller output (folding.GROWS_WITH), so that the shapes depending
        on them stay unknown instead of coming out too small."""
        data: dict[str, TensorProto] = {}
        bounded = False
        withheld: list[tuple[int, str]] = []
        values: dict[int, np.ndarray] = {}
        inputs = self.table.inputs[index]
        for position, name in enumerate(inputs):
            if not name or not self.is_valued(name):
                continue
            info = self.values[name]
            if not (all_inputs or position in traits.shape_inputs or info.dtype in _INDEX_DTYPES):
                continue
            value = self.value_of(name)
            if value is not None:
                values[position] = value
        bounded_at = [position for position in values if self.values.is_bounded(inputs[position])]
        if bounded_at:
            all_values = [values.get(position) for position in range(len(inputs))]
            op_type, attrs = self.table.op_types[index], self._attributes(index)
            for position in bounded_at:
                if not folding.grows_with(op_type, [position], all_values, attrs):
                    withheld.append((position, inputs[position]))
                    del values[position]
        for position, value in values.items():
            name = inputs[position]
            data[name] = folding.as_tensor(value, name)
            bounded |= position in bounded_at
        return data, bounded, withheld

    def _is_contrib(self, index: int) -> bool:
        table = self.table
        return _schema(table.op_types[index], self.opsets.get(table.domains[index], 0), table.domains[index]) is None

    def _withheld_note(self, index: int, withheld: Sequence[tuple[int, str]]) -> None:
        table = self.table
        which = ", ".join(f"input {position} ({name!r})" for position, name in withheld)
        self.notes.append(f"{table.op_types[index]} {table.label(index)!r}: {which} depends on data and is known only "
                          "as an upper bound, where a larger value can give a smaller output: its output shape, and "
                          "the shapes that follow from it, are not known")

    def _stopped_note(self, index: int, traits: OpTraits) -> None:
        """Name the input computed from a stopped upper bound that leaves this node's shape unknown
        (once for each node that stopped a bound)."""
        table = self.table
        inputs = table.inputs[index]
        unknown_values = [(position, inputs[position]) for position in sorted(traits.shape_inputs)
                          if position < len(inputs) and inputs[position] and not self.is_valued(inputs[position])]
        if not unknown_values or any(name not in self.stopped for _, name in unknown_values):
            return  # no shape input is unknown because of a stopped bound alone
        for position, name in unknown_values:
            origin = self.stopped[name]
            if origin in self._noted_stops:
                continue
            self._noted_stops.add(origin)
            self.notes.append(
                f"{table.op_types[index]} {table.label(index)!r}: input {position} ({name!r}) depends on data known only "
                f"as an upper bound, and {table.op_types[origin]} {table.label(origin)!r} before it can turn a larger "
                "value into a smaller one: its output shape, and the shapes that follow from it, are not known")
            return

    def _inferred_outputs(self, index: int, inputs: Sequence[Optional[TensorInfo]],
                          data: Mapping[str, TensorProto]) -> dict[str, tuple[Optional[Shape], Optional[int]]]:
        table = self.table
        op_type, domain = table.op_types[index], table.domains[index]
        schema = _schema(op_type, self.opsets.get(domain, 0), domain)
        if schema is None:
            return self._contrib_outputs(index)
        try:
            inferred = self._node_inference(schema, index, inputs, data)
        except Exception as error:  # onnx's InferenceError: inputs that do not fit the op
            self.inference_errors[index] = _inference_message(error, inputs)
            return {}
        self.inference_errors.pop(index, None)  # (refused on an earlier attempt, with other inputs known)
        return inferred

    def _node_inference(self, schema: onnx.defs.OpSchema, index: int, inputs: Sequence[Optional[TensorInfo]],
                        data: Mapping[str, TensorProto]) -> dict[str, tuple[Optional[Shape], Optional[int]]]:
        """onnx's inference of one node from its inputs' shapes and the values in `data`."""
        types = {info.name: helper.make_tensor_type_proto(info.dtype, list(info.shape)) for info in inputs
                 if info is not None and info.shape is not None}
        inferred = onnx.shape_inference.infer_node_outputs(
            schema, self.table.protos[index], types, dict(data), opset_imports=self.context.opset_imports,
            ir_version=self.context.ir_version)
        return {name: (shape_of(type_proto), type_proto.tensor_type.elem_type or None)
                for name, type_proto in inferred.items() if type_proto.HasField("tensor_type")}

    def _contrib_outputs(self, index: int) -> dict[str, tuple[Optional[Shape], Optional[int]]]:
        """Outputs of an op onnx has no schema for, from its registered shape function."""
        table = self.table
        shape_fn = self.registry.shape_fn(table.op_types[index], table.domains[index])
        if shape_fn is None:
            return {}
        view = self.view(index)
        try:
            shapes = shape_fn(view)
        except Exception:  # inputs that do not fit the op: the layer is reported later
            return {}
        first_dtype = view.inputs[0].dtype if view.inputs and view.inputs[0] is not None else TensorProto.FLOAT
        return {name: _typed(shape, first_dtype) for name, shape in zip(table.outputs[index], shapes)
                if name and shape is not None}

    def _bound_shapes(self, index: int, traits: OpTraits) -> list[Optional[Union[Shape, TypedShape, Known]]]:
        """The op's worst-case output shapes ([] when its inputs do not fit the op)."""
        try:
            return list(traits.bounds(self.view(index)))  # type: ignore[misc]
        except Exception:  # inputs that do not fit the op: the layer is reported later
            return []

    def _apply_bounds(self, index: int, traits: OpTraits) -> None:
        learnt = []
        for name, shape in zip(self.table.outputs[index], self._bound_shapes(index, traits)):
            if name and shape is not None and self.values[name].shape is None:
                if isinstance(shape, Known):  # a shape the rule knows exactly (a Loop that cannot stop early)
                    self._learn(index, name, tuple(int(d) for d in shape.shape), shape.dtype, False)
                    continue
                bounded_shape, dtype = _typed(shape, None)
                self._learn(index, name, bounded_shape, dtype, True)
                self.variable_length.add(name)
                learnt.append(list(bounded_shape))
        if not learnt:
            return
        label, op_type = self.table.label(index), self.table.op_types[index]
        if index in self.constant_nodes:
            why = "depends on values the engine does not read (weights are never read)"
        else:
            why = "depends on data"
        self.notes.append(f"{op_type} {label!r}: its output {why} and is counted at its largest, "
                          f"{', '.join(map(str, learnt))}; the figures that follow from it are upper bounds")

    def _check_view(self, index: int, traits: OpTraits) -> None:
        """A view (Reshape) whose output cannot hold its input's elements has a target hard-coded
        for other input dims (another batch size): everything computed from it is made unresolved
        instead of being counted at the wrong size."""
        table = self.table
        inputs, outputs = table.inputs[index], table.outputs[index]
        if not inputs or not inputs[0] or not outputs:
            return
        values = self.values
        if values.shape(inputs[0]) is None or values.numel(outputs[0]) == values.numel(inputs[0]):
            return
        shape_inputs = [inputs[p] for p in sorted(traits.shape_inputs) if p < len(inputs) and inputs[p]]
        if any(values.is_bounded(name) or self.is_variable_length(name) for name in (inputs[0], *shape_inputs)):
            return  # a size or a target that depends on data (an upper bound) is not one hard-coded
        source, result = values[inputs[0]], values[outputs[0]]
        targets = [self.value_of(name) for name in shape_inputs]
        target = next((t for t in targets if t is not None), None)
        if result.shape is None and target is None:
            return
        self.notes.append(_view_note(table.op_types[index], table.label(index), source, result, target))
        self._taint(outputs)

    # ---- values -------------------------------------------------------------------------------

    def value_of(self, name: str) -> Optional[np.ndarray]:
        """The value of a constant (or bounded) tensor, computed on first request; None when it
        cannot be known or would be larger than folding.FOLD_MAX_ELEMENTS."""
        if name in self._values:
            return self._values[name]
        if name not in self.table.producer and name not in self.values.initializers and self.outer is not None:
            return self.outer.value_of(name)
        if not self.is_valued(name):
            return None
        stack = [name]
        while stack:
            top = stack[-1]
            waiting = [n for n in self._value_inputs(top) if n not in self._values]
            if waiting:
                stack.extend(waiting)
                continue
            stack.pop()
            if top not in self._values:
                self._compute(top)
        return self._values.get(name)

    def _value_inputs(self, name: str) -> list[str]:
        index = self.table.producer.get(name)
        if index is None:
            return []
        entry = self.entry(index)
        if entry is not None and entry.traits.constant == FROM_SHAPE:
            return []
        return [n for n in self.table.inputs[index] if n and n in self.table.producer and self.is_valued(n)]

    def _compute(self, name: str) -> None:
        index = self.table.producer.get(name)
        if index is None:
            initializer = self.values.initializers.get(name)
            self._values[name] = decode_small_tensor(initializer) if initializer is not None else None
            return
        outputs = [n for n in self.table.outputs[index] if n]
        results = self._evaluate(index)
        unknown = False
        for position, output in enumerate(outputs):
            value = results[position] if results is not None and position < len(results) else None
            self._values[output] = value
            if value is not None and self.values[output].shape is None:
                self.values.learn(output, tuple(value.shape))  # a Shape of a shape learnt late
            unknown |= value is None and self.values[output].shape is None
        if unknown and index in self.constant_nodes:
            # A constant whose value is not worked out (computed from weights, which are not
            # read, or too large): its shape from its inputs' shapes, else the op's worst case.
            entry = self.entry(index)
            self._complete(index, entry.traits if entry is not None else DEFAULT_TRAITS, for_value=False)

    def _evaluate(self, index: int) -> Optional[list[np.ndarray]]:
        table = self.table
        entry = self.entry(index)
        traits = entry.traits if entry is not None else DEFAULT_TRAITS
        attrs = {a.name: attribute_value(a) for a in table.protos[index].attribute
                 if a.type not in (AttributeProto.GRAPH, AttributeProto.GRAPHS)}
        if traits.constant == FROM_SHAPE:
            return folding.from_shape(table.op_types[index], self.values[table.inputs[index][0]].shape, attrs)
        if table.domains[index] != "":
            return None
        inputs = [self.value_of(n) if n else None for n in table.inputs[index]]
        if any(n and value is None for n, value in zip(table.inputs[index], inputs)):
            return None
        if not self._outputs_fit(index, traits):
            return None
        try:
            return folding.evaluate(table.protos[index], inputs, attrs)
        except Exception:  # an op this evaluator cannot run, or too large a value: it stays unknown
            return None

    def _outputs_fit(self, index: int, traits: OpTraits) -> bool:
        """Every output's size is known and within the folding cap (inferring it if need be). An
        op whose output size depends on its input values (NonZero of a constant) is checked at
        its largest output, which is not learnt: the value computed gives the exact shape."""
        outputs = [n for n in self.table.outputs[index] if n]
        if any(self.values[n].shape is None for n in outputs):
            self._complete(index, traits, for_value=True, apply_bounds=False)
        sizes = [self.values[n].numel for n in outputs]
        if traits.bounds is not None and None in sizes:
            worst = self._bound_shapes(index, traits)
            sizes = [size if size is not None or position >= len(worst) or worst[position] is None
                     else math.prod(_typed(worst[position], None)[0])  # type: ignore[arg-type]
                     for position, size in enumerate(sizes)]
        return all(size is not None and size <= folding.FOLD_MAX_ELEMENTS for size in sizes)


_WINDOW_HINT = " (a kernel or window larger than the padded input?)"
_NEGATIVE_DIM_HINTS = {
    **dict.fromkeys(("Conv", "ConvInteger", "QLinearConv", "MaxPool", "AveragePool", "LpPool", "FusedConv", "NhwcConv",
                     "QLinearAveragePool", "NhwcMaxPool", "Col2Im"), _WINDOW_HINT),
    "ConvTranspose": " (pads larger than the output they trim?)",
}


class NegativeDims(ModelError):
    """A tensor's shape has a negative dim (`name`, `dims`): nothing it feeds can be counted."""

    def __init__(self, name: str, dims: Shape, message: str) -> None:
        super().__init__(message)
        self.name, self.dims = name, dims


def _node_label(table: NodeTable, index: int) -> str:
    return f"node {table.label(index)!r} ({table.op_types[index]})"


def _entries(registry: OpRegistry, table: NodeTable) -> tuple[list[Optional[OpEntry]], list[OpEntry]]:
    """Each node's registry entry, looked up once per distinct op; and those entries, each once."""
    keys = list(zip(table.op_types, table.domains))
    found = {key: registry.lookup(*key) for key in dict.fromkeys(keys)}  # (in the order ops first appear)
    return list(map(found.__getitem__, keys)), [entry for entry in found.values() if entry is not None]


def _subgraphs(node: NodeProto) -> list[GraphProto]:
    return [graph for attribute in node.attribute
            for graph in ([attribute.g] if attribute.type == AttributeProto.GRAPH else
                          attribute.graphs if attribute.type == AttributeProto.GRAPHS else [])]


def _has_subgraph(node: NodeProto) -> bool:
    return any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute)


def _schema(op_type: str, opset: int, domain: str) -> Optional[onnx.defs.OpSchema]:
    try:  # a version beyond a C int (the file may say 2^63 - 1) is the newest there is
        return onnx.defs.get_schema(op_type, min(opset, _NEWEST_VERSION) or onnx.defs.onnx_opset_version(), domain)
    except (onnx.defs.SchemaError, TypeError):
        return None


_NEWEST_VERSION = 2**31 - 1


def _typed(shape: Union[Shape, TypedShape, Known], default_dtype: Optional[int]) -> tuple[Shape, Optional[int]]:
    if isinstance(shape, (TypedShape, Known)):
        return tuple(int(d) for d in shape.shape), shape.dtype
    return tuple(int(d) for d in shape), default_dtype


def _inference_message(error: Exception, inputs: Sequence[Optional[TensorInfo]]) -> str:
    """onnx's reason, without its "[ShapeInferenceError]" tag, after the input shapes it saw."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = re.sub(r"^\[\w+\]\s*", "", lines[0]) if lines else type(error).__name__
    shapes = ", ".join(str(list(info.shape)) for info in inputs if info is not None and info.shape is not None)
    return f"{shapes}: {reason}" if shapes else reason


def _view_note(op_type: str, label: str, source: TensorInfo, result: TensorInfo, target: Optional[np.ndarray]) -> str:
    constant = f"its constant shape {[int(d) for d in target.reshape(-1)]}" if target is not None else "its target"
    why = f"{constant} is hard-coded for other input dims (exported at another batch size?); layers after it are unresolved"
    if result.shape is not None:
        return (f"{op_type} {label!r} maps {source.numel:,} elements {list(source.shape or ())} to "
                f"{result.numel:,} {list(result.shape)}: {why}")
    return f"{op_type} {label!r} cannot map {source.numel:,} elements {list(source.shape or ())} to {constant}: {why}"


# onnx's data propagation (the values of shape tensors) holds one entry per element of a 1-D
# tensor it meets, whatever its element type: over a vector of 2^40 elements it allocates until the
# memory runs out. Shape tensors are short; a graph with a longer 1-D input or weight is inferred
# without it (the engine's own constant folding still works out the shapes it needs).


class Inferred(NamedTuple):
    model: ModelProto  # with onnx's inferred value infos
    value_types: ValueTypes  # its graph's inputs, value infos and outputs, read lightly (see light_read)


def infer_shapes(model: Union[ModelProto, bytes], data_prop: bool) -> Inferred:
    """ONNX shape inference of a model (or of a file's bytes as they are); `data_prop`: whether
    onnx's data propagation runs (not when the graph has a 1-D input or weight longer than
    DATA_PROP_MAX_ELEMENTS). Raises ModelError with onnx's own message. When data propagation
    runs out of memory (a long 1-D tensor computed inside the graph), inference runs again
    without it."""
    model_bytes = model if isinstance(model, bytes) else model.SerializeToString()
    try:  # (parsing what onnx gives back may fail too: nesting deeper than protobuf reads)
        inferred = _infer_serialized(model_bytes, False, False, data_prop)
        return Inferred(ModelProto.FromString(inferred), read_value_types(inferred))
    except MemoryError as error:  # onnx's std::bad_alloc
        if data_prop:
            return infer_shapes(model_bytes, data_prop=False)
        raise ModelError("shape inference failed: it needs more memory than the limit allows "
                         f"({str(error).strip() or 'std::bad_alloc'})") from error
    except Exception as error:  # onnx raises InferenceError, ValidationError or RuntimeError
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"shape inference failed: {message}") from error


try:  # what onnx.shape_inference.infer_shapes calls: it takes and gives the serialized model, which
    # the light read of the value infos needs (serializing the parsed model again costs as much as it saves)
    from onnx.onnx_cpp2py_export.shape_inference import infer_shapes as _infer_serialized
except ImportError:  # pragma: no cover - another onnx layout
    def _infer_serialized(model_bytes: bytes, check_type: bool, strict_mode: bool, data_prop: bool) -> bytes:
        return onnx.shape_inference.infer_shapes(model_bytes, check_type, strict_mode, data_prop).SerializeToString()


def inline_local_functions(model: ModelProto) -> ModelProto:
    """The model with its local functions inlined; ModelError for a call onnx's inliner cannot bind
    (it asserts) and for what it refuses (a function calling itself)."""
    functions = {(function.domain, function.name, function.overload): function for function in model.functions}
    graphs: list[GraphProto] = [model.graph]
    callers: list[Sequence[NodeProto]] = [function.node for function in model.functions]
    while graphs or callers:
        nodes = graphs.pop().node if graphs else callers.pop()
        for node in nodes:
            function = functions.get((node.domain, node.op_type, node.overload))
            if function is not None and (len(node.input) > len(function.input) or len(node.output) > len(function.output)):
                label = node.name or (node.output[0] if node.output else node.op_type)
                raise ModelError(f"node {label!r} calls the model-local function {function.domain}::{function.name} with "
                                 f"{len(node.input)} input(s) and {len(node.output)} output(s); it takes "
                                 f"{len(function.input)} and {len(function.output)}")
            graphs.extend(_subgraphs(node))
    try:
        return onnx.inliner.inline_local_functions(model)
    except Exception as error:  # onnx's ValidationError (a recursive function), RuntimeError (its assertions)
        message = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise ModelError(f"cannot inline the model-local functions: {message}") from None


def prepare_graph(
    model: ModelProto,
    registry: OpRegistry,
    input_shapes: InputShapes = None,
    batch: Optional[int] = None,
) -> PreparedGraph:
    """Inline local functions, fix input dims, infer shapes and resolve every tensor."""
    if model.functions:
        model = inline_local_functions(model)
    long_vectors = ["(an initializer)"] if check_initializer_dims(model.graph) else []
    notes = apply_input_shapes(model, input_shapes, batch, long_vectors)
    inferred, value_types = infer_shapes(model, data_prop=not long_vectors)
    try:
        return PreparedGraph(inferred.graph, GraphContext(registry, inferred), notes=notes, value_types=value_types)
    except NegativeDims as error:
        declared = _declared_dims(model.graph, error.name)
        if declared is not None and min(declared, default=0) < 0:  # the file says so, not onnx's inference
            raise ModelError(f"value {error.name!r} is declared with a negative dim {declared}") from None
        raise


def prepare_small_file(data: bytes, registry: OpRegistry) -> Optional[PreparedGraph]:
    """prepare_graph for a small file (loader.read_small_file) whose bytes go to onnx's inference
    as they are (see light_read); None for any other file, and for one that fails here:
    prepare_graph then says what is wrong, as it would have (onnx's inference refuses a node of a
    domain the model does not declare, which check_opsets names)."""
    light = as_it_is(data)
    if light is None or newer_than_installed(declared_opsets(light.model.opset_import)):
        return None
    try:
        long_vectors = check_initializer_dims(light.model.graph) or light.long_vector_input
        inferred, value_types = infer_shapes(data, data_prop=not long_vectors)
        # (a key in no byte of the file is in no node's metadata: their metadata is not read)
        node_sources = any(key.encode() in data for key in SOURCE_METADATA)
        return PreparedGraph(inferred.graph, GraphContext(registry, inferred, node_sources), notes=[],
                             value_types=value_types)
    except ModelError:
        return None


def declared_opsets(opset_import: Sequence[onnx.OperatorSetIdProto]) -> dict[str, int]:
    """The opset version the model declares for each domain ("" for ai.onnx)."""
    return {normalize_domain(op.domain): op.version for op in opset_import}


def newer_than_installed(declared: Mapping[str, int]) -> bool:
    """The model's ai.onnx opset (of declared_opsets) is newer than the installed onnx supports."""
    return declared.get("", 0) > installed_opset()


@lru_cache(maxsize=None)
def installed_opset() -> int:
    return onnx.defs.onnx_opset_version()


def check_initializer_dims(graph: GraphProto) -> bool:
    """No initializer declares a negative dim (checked before onnx's inference sees it). True when
    one is a vector longer than DATA_PROP_MAX_ELEMENTS."""
    dims = [initializer.dims for initializer in graph.initializer]
    if min(chain.from_iterable(dims), default=0) < 0:
        initializer = next(t for t in graph.initializer if min(t.dims, default=0) < 0)
        raise ModelError(f"initializer {initializer.name!r} declares a negative dim {list(initializer.dims)}")
    return any(len(shape) == 1 and shape[0] > DATA_PROP_MAX_ELEMENTS for shape in dims)


def _declared_dims(graph: GraphProto, name: str) -> Optional[list[int]]:
    for value_info in (*graph.value_info, *graph.output, *graph.input):
        if value_info.name == name:
            return [dim.dim_value for dim in value_info.type.tensor_type.shape.dim]
    return None


