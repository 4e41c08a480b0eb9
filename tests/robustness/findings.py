"""What the fuzzing harness (tests/robustness/fuzz_cases.py, benchmarks/fuzz.py) found, each as
the smallest input built in code, with what the entry point should have said.

`FINDINGS` holds the open ones and tells a finding when the fuzzer meets it again
(`known_finding`), so that the in-suite run and the benchmark report only what is new;
tests/robustness/test_findings.py runs each reproducer through its entry point, marked
xfail(strict=True) until it is fixed. `FIXED` says what each fixed one was, where it was fixed
and which test pins it; the fuzzer reports a fixed finding that comes back as new.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .fuzz_cases import LARGE_BLOB_BYTE, LARGE_FILE_BYTES, Case, Result, blob_span


def _save(path: Path, nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[str],
          initializers: list[TensorProto] = (), opset: int = 17, **model_fields: object) -> None:
    graph = helper.make_graph(nodes, "finding", inputs, [helper.make_tensor_value_info(name, TensorProto.UNDEFINED, None)
                                                           for name in outputs], list(initializers))
    opsets = [helper.make_opsetid("", opset)] + list(model_fields.pop("extra_opsets", []))  # type: ignore[arg-type]
    onnx.save(helper.make_model(graph, opset_imports=opsets, **model_fields), str(path))


# --- the reproducers ---------------------------------------------------------------------------------


def write_zero_dim_conv(path: Path, dims: tuple[int, ...] = (0, 3, 8, 8)) -> None:
    """A 3x3 Conv (3 -> 4 channels, no padding) over x declared with `dims`. With [0, 3, 8, 8] the
    engine counted 3,888 MACs: docs/counting.md now says a declared 0 where the batch dim would
    be is read as a symbolic batch (taken as 1, with a note); a 0 anywhere else is an empty axis."""
    _save(path, [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))], ["y"],
          [numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")])


def write_conv_kernel_beyond_input(path: Path) -> None:
    """A 3x3 Conv, no padding, over x [1, 3, 1, 8]: the kernel does not fit the input's height,
    so the graph has no valid output (onnx's inference says height -1)."""
    write_zero_dim_conv(path, (1, 3, 1, 8))


def write_matmul_of_huge_operands(path: Path) -> None:
    """A valid graph: MatMul of two inputs declared [2^62, 2^62] (2^186 MACs, about 1e56)."""
    _save(path, [helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")],
          [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2**62, 2**62]) for name in ("a", "b")], ["y"])


def write_fused_conv_past_int64(path: Path) -> None:
    """A com.microsoft FusedConv (1x1 kernel, pads 1) over x [1, 2, 2^63 - 1, 4], then a Relu:
    the output height 2^63 + 1 does not fit an ONNX dim (int64)."""
    _save(path, [helper.make_node("FusedConv", ["x", "w"], ["c"], name="fconv", domain="com.microsoft", activation="Relu",
                                  pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c"], ["y"], name="act")],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 2**63 - 1, 4])], ["y"],
          [numpy_helper.from_array(np.zeros((4, 2, 1, 1), np.float32), "w")],
          extra_opsets=[helper.make_opsetid("com.microsoft", 1)])


def write_repeated_output_name(path: Path) -> None:
    """A Relu listing its output 'y' three times (onnx's lenient inference lets it through), then a Neg."""
    _save(path, [helper.make_node("Relu", ["x"], ["y", "y", "y"], name="act"), helper.make_node("Neg", ["y"], ["z"], name="neg")],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])], ["z"])


def write_huge_opset_version(path: Path) -> None:
    """A com.microsoft FusedConv with the domain imported at version 2^63 - 1."""
    _save(path, [helper.make_node("FusedConv", ["x", "w"], ["y"], name="fconv", domain="com.microsoft", activation="Relu")],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])], ["y"],
          [numpy_helper.from_array(np.zeros((4, 2, 3, 3), np.float32), "w")],
          extra_opsets=[helper.make_opsetid("com.microsoft", 2**63 - 1)])


def write_einsum_over_an_empty_axis(path: Path) -> None:
    """`ij,kj->ik` with j of extent 0 ([2, 0] and [3, 0]): an empty contraction, 0 MACs. The
    engine binds the extent 0 as 1 and counts 6 MACs."""
    _save(path, [helper.make_node("Einsum", ["a", "b"], ["y"], name="einsum", equation="ij,kj->ik")],
          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 0]),
           helper.make_tensor_value_info("b", TensorProto.FLOAT, [3, 0])], ["y"], opset=12)


HUGE_VECTOR = 2**40


def write_slice_of_a_huge_vector(path: Path) -> None:
    """A valid graph: Slice of a 1-D input of 2^40 elements. onnx's data propagation (shape
    inference with data_prop=True) allocates for every element: under the default 16 GiB limit
    it takes 70 s and 16 GB of memory before `std::bad_alloc`."""
    constants = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("starts", [1]), ("ends", [HUGE_VECTOR]),
                                                                                ("axes", [0]))]
    _save(path, [helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"], name="cut")],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [HUGE_VECTOR])], ["y"], constants, opset=13)


def write_slice_of_a_long_computed_vector(path: Path) -> None:
    """A valid graph: x [2^20, 2^20] flattened by a Reshape, then a Slice of the 2^40-element
    vector. No input or weight is a long vector, so only running out of memory tells."""
    constants = [numpy_helper.from_array(np.array(v, np.int64), n)
                 for n, v in (("flat", [-1]), ("starts", [1]), ("ends", [HUGE_VECTOR]), ("axes", [0]))]
    _save(path, [helper.make_node("Reshape", ["x", "flat"], ["v"], name="flatten"),
                 helper.make_node("Slice", ["v", "starts", "ends", "axes"], ["y"], name="cut")],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2**20, 2**20])], ["y"], constants, opset=13)


def write_window_beyond_input(path: Path, op_type: str) -> None:
    """A MaxPool or AveragePool with a 3x3 window, or a ConvTranspose with pads 5, over x [1, 3, 1, 8]."""
    initializers = [numpy_helper.from_array(np.zeros((3, 2, 3, 3), np.float32), "w")] if op_type == "ConvTranspose" else []
    attributes: dict = {"pads": [5, 5, 5, 5]} if op_type == "ConvTranspose" else {"kernel_shape": [3, 3]}
    _save(path, [helper.make_node(op_type, ["x", *(t.name for t in initializers)], ["y"], name="window", **attributes)],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 1, 8])], ["y"], initializers)


def write_sequence_input(path: Path) -> None:
    """A valid graph whose input is a sequence of tensors (SequenceLength of it)."""
    _save(path, [helper.make_node("SequenceLength", ["x"], ["n"], name="length")],
          [helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, None)], ["n"])


def write_corrupt_large_file(path: Path) -> None:
    """A file over 4 MB (memory-mapped, walked by the engine) with one byte changed after its
    large weight: the tag of the first graph input gets wire type 7, which protobuf does not have."""
    columns = LARGE_FILE_BYTES // (4 * 16) + 1
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[16, columns],
                         raw_data=bytes([LARGE_BLOB_BYTE]) * (16 * columns * 4))
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "large",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
    data = bytearray(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    span = blob_span(bytes(data))
    assert span is not None and data[span[1]] == (11 << 3 | 2)  # graph.input follows the weight
    data[span[1]] = 11 << 3 | 7
    path.write_bytes(bytes(data))


def write_negative_weight_dim(path: Path) -> None:
    """An initializer declared with dims [4, -3]: `maccbudget profile` prints -12 parameters."""
    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, -3])
    _save(path, [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])], ["y"], [weight])


def write_flatten_without_output(path: Path) -> None:
    """A Flatten with no output after a Conv whose pads onnx refuses (3 values for 2 axes), and a
    graph output nobody produces: onnx's lenient shape inference lets the node through."""
    _save(path, [helper.make_node("Conv", ["x", "w"], ["r"], name="conv", pads=[0, 0, 0]),
                 helper.make_node("Flatten", ["r"], [], name="view")],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])], ["y"],
          [numpy_helper.from_array(np.zeros((2, 1, 1, 1), np.float32), "w")])


def write_non_utf8_node_name(path: Path, metadata: bool = False) -> None:
    """A Relu whose node name is the byte 0xff seven times (protobuf parses it; Python gets bytes);
    with `metadata`, the node also carries the dynamo exporter's scope metadata."""
    placeholder = "NONUTF8"
    node = helper.make_node("Relu", ["x"], ["y"], name=placeholder)
    if metadata:
        helper.set_metadata_props(node, {"pkg.torch.onnx.name_scopes": "['', 'act']"})
    graph = helper.make_graph([node], "finding",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    path.write_bytes(data.replace(placeholder.encode(), b"\xff" * len(placeholder)))


def write_non_utf8_symbolic_dim(path: Path) -> None:
    """A Relu over x [NONUTF8, 4] whose symbolic dim is the byte 0xff seven times."""
    placeholder = "NONUTF8"
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="act")], "finding",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [placeholder, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    path.write_bytes(data.replace(placeholder.encode(), b"\xff" * len(placeholder)))


def write_function_called_with_too_many_inputs(path: Path) -> None:
    """A call of a one-input local function with two inputs (onnx's inliner asserts)."""
    function = helper.make_function("local", "Block", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
                                    [helper.make_opsetid("", 17)])
    _save(path, [helper.make_node("Block", ["x", "x"], ["y"], name="block", domain="local")],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])], ["y"],
          extra_opsets=[helper.make_opsetid("local", 1)], functions=[function])


def write_recursive_function(path: Path) -> None:
    """A model-local function that calls itself (onnx's inliner refuses it with ValidationError)."""
    function = helper.make_function("local", "Block", ["a"], ["b"], [helper.make_node("Block", ["a"], ["b"], domain="local")],
                                    [helper.make_opsetid("", 17)])
    _save(path, [helper.make_node("Block", ["x"], ["y"], name="block", domain="local")],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])], ["y"],
          extra_opsets=[helper.make_opsetid("local", 1)], functions=[function])


def write_nameless_constant_of_shape(path: Path) -> None:
    """A ConstantOfShape of a constant shape whose output name is empty (next to a Relu that is the graph)."""
    shape = numpy_helper.from_array(np.array([2, 2], np.int64), "shape")
    _save(path, [helper.make_node("ConstantOfShape", ["shape"], [""], name="fill"), helper.make_node("Relu", ["x"], ["y"], name="act")],
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])], ["y"], [shape])


BAD_TAGGED_SCALARS = ("!!bool maybe", "!!int ''", "!!int -", "!!float _", "!!timestamp x")


def budget_with_tagged_scalar(tagged: str = "!!bool maybe") -> str:
    """A budget file whose MACs are an explicitly tagged scalar PyYAML cannot convert (fixed:
    tests/robustness/test_findings.py::test_a_tagged_scalar_yaml_cannot_convert_is_a_budget_error)."""
    return f"version: 1\nmodels:\n  m:\n    total: {{macs: {tagged}}}\n"


def budget_with_device_overhead(value: str) -> str:
    """A budget file whose own device profile `board` has `launch_overhead_us: VALUE` (line 7)."""
    return ("version: 1\ndevices:\n  board:\n    class: microcontroller\n    peak_macs_per_s: {fp32: 1G}\n"
            f"    memory_bandwidth: 1 GB/s\n    launch_overhead_us: {value}\nmodels: {{}}\n")


# values of a device profile's number that PyYAML cannot convert, or no float can hold
BAD_DEVICE_NUMBERS = ("!!int ''", "!!bool maybe", "!!timestamp x", "1" + "0" * 400)


# --- telling a finding when the fuzzer meets it again ----------------------------------------------


@dataclass(frozen=True)
class Finding:
    """An open finding: what the fuzzer met, and how to tell it when it meets it again."""

    key: str
    family: str
    smallest_input: str
    what_happens: str
    raised_in: str
    should_give: str
    matches: Callable[[Case, Result], bool]


@dataclass(frozen=True)
class Fixed:
    """A finding that is fixed: no longer told apart, so the fuzzer reports it as new if it comes back."""

    key: str
    smallest_input: str
    what_happened: str
    fixed_in: str
    pinned_by: str


# Open findings (none at the moment): add one here, with its reproducer above and an
# xfail(strict=True) test in test_findings.py, when the fuzzer finds something it cannot fix at once.
FINDINGS: tuple[Finding, ...] = ()

FIXED: tuple[Fixed, ...] = (
    Fixed("data-propagation-memory", "Slice of a float input declared [2^40] (write_slice_of_a_huge_vector); Concat too",
          "a valid graph refused: onnx's data propagation allocates per element of a 1-D tensor, "
          "'shape inference failed: std::bad_alloc' after 70 s and 16 GB",
          "engine/graph.py infer_shapes: no data propagation when a 1-D input or initializer is longer than "
          "DATA_PROP_MAX_ELEMENTS (2^16), and inference again without it when it runs out of memory",
          "test_a_slice_of_a_huge_vector_profiles, test_a_long_vector_computed_in_the_graph_profiles"),
    Fixed("large-file-buffer-error", "a corrupt file over 4 MB (write_corrupt_large_file)",
          "internal error (BufferError: cannot close exported pointers exist)",
          "engine/loader.py skeleton_bytes: the slices of the buffer are dropped before it is released",
          "test_a_corrupt_file_over_4_mb_is_one_clean_line"),
    Fixed("conv-kernel-beyond-input", "3x3 Conv, no padding, over x [1, 3, 1, 8] (write_conv_kernel_beyond_input)",
          "exit 0 with -648 MACs: onnx's inferred output height -1 taken as it is",
          "engine/tables.py _decoded keeps a negative dim out of every shape; engine/graph.py PreparedGraph names the "
          "node whose output has it (also pooling, ConvTranspose); engine/profile.py cost_by_rule: a rule's negative "
          "count makes the layer unknown",
          "test_a_conv_whose_kernel_does_not_fit_its_input_is_refused, test_a_window_that_does_not_fit_is_refused"),
    Fixed("negative-dim-counts", "MatMul whose initializer is declared [4, -3] (write_negative_weight_dim)",
          "exit 0 with 'parameters: -12'",
          "engine/graph.py check_initializer_dims (before onnx's inference), engine/input_dims.py "
          "_refuse_negative_dims (graph inputs), engine/tables.py _decoded (value infos)",
          "test_a_negative_declared_dim_is_refused, test_a_negative_input_dim_is_refused"),
    Fixed("local-function-inlining", "a recursive local function; one called with too many inputs",
          "internal error (ValidationError, RuntimeError from onnx's inliner)",
          "engine/graph.py inline_local_functions: calls checked against the function, onnx's errors one line",
          "test_a_local_function_onnx_cannot_inline_is_one_clean_line"),
    Fixed("non-utf8-strings", "a Relu named 0xff x 7 (write_non_utf8_node_name); op types, domains, value names, "
          "symbolic dims, node metadata",
          "internal error (TypeError, UnicodeDecodeError)",
          "engine/tables.py _read and check_text (one join per list), engine/graph.py PreparedGraph (value and "
          "initializer names), engine/input_dims.py apply_input_shapes (input names, symbolic dims)",
          "test_a_non_utf8_node_name_is_one_clean_line, test_a_non_utf8_symbolic_dim_is_one_clean_line"),
    Fixed("count-beyond-formatting", "MatMul of two inputs declared [2^62, 2^62] (write_matmul_of_huge_operands)",
          "internal error (decimal.InvalidOperation) in the table and markdown formats",
          "units.py _scaled / _fixed_for_magnitude: a decimal context as wide as the value",
          "test_a_count_of_any_size_is_shown, tests/test_units.py test_counts_of_any_size_format"),
    Fixed("dim-past-int64", "FusedConv, pads 1, over x [1, 2, 2^63 - 1, 4] (write_fused_conv_past_int64)",
          "internal error (ValueError: Value out of range)",
          "engine/graph.py PreparedGraph._learn: a shape rule's output dim beyond int64 is refused, naming the node",
          "test_an_inferred_dim_beyond_int64_is_one_clean_line"),
    Fixed("repeated-output-name", "a Relu whose outputs are ['y', 'y', 'y'] (write_repeated_output_name)",
          "exit 0, the output's bytes counted three times, above the peak",
          "engine/tables.py _read / _check_repeated_outputs: refused, naming the node and the output",
          "test_a_node_listing_its_output_twice_is_one_clean_line"),
    Fixed("opset-version-beyond-int", "com.microsoft imported at version 2^63 - 1 (write_huge_opset_version)",
          "internal error (TypeError from get_schema)",
          "engine/graph.py _schema: a version beyond a C int is the newest there is",
          "test_an_opset_version_beyond_int_is_profiled"),
    Fixed("device-profile-numbers", "launch_overhead_us: !!int '' / !!bool maybe / !!timestamp x / 401 digits",
          "IndexError, KeyError, AttributeError or OverflowError when a test names the profile",
          "devices/profiles.py _Reader.scalar (as the budget reader), _Reader.number and _Reader.quantity",
          "test_a_device_profile_number_that_cannot_be_read_is_one_clean_line"),
    Fixed("device-profile-error-two-lines", "launch_overhead_us: !custom 5",
          "a DeviceSpecError of two lines, the second naming '<unicode string>'",
          "devices/profiles.py _Reader.scalar: PyYAML's problem without its mark",
          "test_a_device_profile_with_an_unknown_tag_is_one_line"),
)


def known_finding(case: Case, result: Result) -> Optional[Finding]:
    """The open finding this outcome is another instance of, if any."""
    return next((finding for finding in FINDINGS if finding.matches(case, result)), None)
