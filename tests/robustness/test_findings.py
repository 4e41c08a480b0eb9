"""Each finding of the fuzzing harness (tests/robustness/findings.py), run through the entry point
a user meets and asserting what it should say. Open findings are xfail(strict=True) with the
reason: a fix turns the test into an unexpected pass, and the mark is removed. Tests without the
mark pin findings that are fixed (findings.FIXED: they are no longer in findings.FINDINGS, so the
fuzzing reports them as new if they come back)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from pytest_maccbudget.budget import BudgetError, parse_budget
from pytest_maccbudget.device_estimates import DeviceSpecError, resolve_devices

from . import findings
from .fuzz_cases import call_cli

FAST = ("--timeout", "60", "--memory-limit", "1GB")  # under 1 GB onnx's data propagation fails in seconds


def profile(path: Path, *args: str) -> tuple[int, str, str]:
    code, out, err = call_cli(["profile", str(path), *args, *FAST])
    assert code is not None, err
    return code, out, err


def assert_one_clean_line(path: Path, code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert "internal error" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"maccbudget: error: {path}: "), err
    assert all(word in lines[0] for word in words), err


def test_a_declared_zero_batch_is_read_as_a_symbolic_batch_and_an_empty_axis_costs_nothing(tmp_path: Path) -> None:
    """First recorded as a wrong count (3,888 MACs for x [0, 3, 8, 8]); docs/counting.md ("Shapes")
    has since made a declared 0 at the batch position a symbolic batch: counted with 1 and said so."""
    path = tmp_path / "zero_batch.onnx"
    findings.write_zero_dim_conv(path)
    code, out, err = profile(path, "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["total"]["macs"] == 4 * 6 * 6 * 3 * 9 == 3888
    assert any("declares dim 0 as 0" in note and "taken as 1" in note for note in result["notes"]), result["notes"]
    findings.write_zero_dim_conv(path, (1, 3, 2, 8))  # height 2 - 3 + 1 = 0: an empty output
    code, out, err = profile(path, "--format", "json")
    assert code == 0, err
    assert (json.loads(out)["total"]["macs"], json.loads(out)["total"]["flops"]) == (0, 0)


def test_a_conv_whose_kernel_does_not_fit_its_input_is_refused(tmp_path: Path) -> None:
    """conv-kernel-beyond-input: exit 0 with -648 MACs (onnx's inferred output height -1)."""
    path = tmp_path / "conv.onnx"
    findings.write_conv_kernel_beyond_input(path)
    code, _, err = profile(path)
    assert_one_clean_line(path, code, err, "node 'conv' (Conv)", "[1, 4, -1, 6]", "kernel")


@pytest.mark.parametrize("op_type", ["MaxPool", "AveragePool", "ConvTranspose"])
def test_a_window_that_does_not_fit_is_refused(tmp_path: Path, op_type: str) -> None:
    """The other sliding-window ops of conv-kernel-beyond-input (negative FLOPs and bytes before)."""
    path = tmp_path / "window.onnx"
    findings.write_window_beyond_input(path, op_type)
    code, _, err = profile(path)
    assert_one_clean_line(path, code, err, f"node 'window' ({op_type})", "-")


def test_an_einsum_over_an_empty_axis_costs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "einsum.onnx"
    findings.write_einsum_over_an_empty_axis(path)
    code, out, err = profile(path, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["layers"][0]["macs"] == 0


def test_a_slice_of_a_huge_vector_profiles(tmp_path: Path) -> None:
    """data-propagation-memory: 'shape inference failed: std::bad_alloc' (onnx's data propagation)."""
    path = tmp_path / "huge_vector.onnx"
    findings.write_slice_of_a_huge_vector(path)
    code, out, err = profile(path, "--format", "json")
    assert code == 0, err
    layer = json.loads(out)["layers"][0]
    assert layer["status"] == "free" and layer["output_bytes"] == 4 * (findings.HUGE_VECTOR - 1), layer


def test_a_long_vector_computed_in_the_graph_profiles(tmp_path: Path) -> None:
    """The same vector made by a Reshape: data propagation runs out of memory, inference runs again without."""
    path = tmp_path / "computed_vector.onnx"
    findings.write_slice_of_a_long_computed_vector(path)
    code, out, err = profile(path, "--format", "json")
    assert code == 0, err
    assert [layer["output_bytes"] for layer in json.loads(out)["layers"]] == [4 * 2**40, 4 * (findings.HUGE_VECTOR - 1)]


def test_a_sequence_input_is_profiled_or_named(tmp_path: Path) -> None:
    path = tmp_path / "sequence.onnx"
    findings.write_sequence_input(path)
    code, out, err = profile(path)
    if code != 0:
        assert_one_clean_line(path, code, err, "'x'")


def test_a_corrupt_file_over_4_mb_is_one_clean_line(tmp_path: Path) -> None:
    """large-file-buffer-error: internal error (BufferError: cannot close exported pointers exist)."""
    path = tmp_path / "large.onnx"
    findings.write_corrupt_large_file(path)
    code, _, err = profile(path)
    assert_one_clean_line(path, code, err, "not a valid ONNX file")


def test_a_negative_declared_dim_is_refused(tmp_path: Path) -> None:
    """negative-dim-counts: exit 0 with 'parameters: -12'."""
    path = tmp_path / "negative.onnx"
    findings.write_negative_weight_dim(path)
    code, _, err = profile(path)
    assert_one_clean_line(path, code, err, "initializer 'w' declares a negative dim [4, -3]")


def test_a_negative_input_dim_is_refused(tmp_path: Path) -> None:
    """A negative dim where no batch dim is read gave negative MACs; at the batch position it is a
    symbolic batch, as a declared 0 is."""
    path = tmp_path / "negative.onnx"
    findings.write_zero_dim_conv(path, (1, 3, -5, 8))
    code, _, err = profile(path)
    assert_one_clean_line(path, code, err, "input 'x' declares a negative dim", "[1, 3, -5, 8]")
    findings.write_zero_dim_conv(path, (-1, 3, 8, 8))
    code, out, err = profile(path, "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["total"]["macs"] == 3888 and any("declares dim 0 as -1" in note for note in result["notes"]), result


@pytest.mark.parametrize("write", [findings.write_recursive_function, findings.write_function_called_with_too_many_inputs],
                         ids=["recursive", "too-many-inputs"])
def test_a_local_function_onnx_cannot_inline_is_one_clean_line(tmp_path: Path, write: Callable[[Path], None]) -> None:
    """local-function-inlining: internal error (ValidationError / RuntimeError from onnx's inliner)."""
    path = tmp_path / "function.onnx"
    write(path)
    code, _, err = profile(path)
    assert_one_clean_line(path, code, err, "local::Block")


def test_a_reshape_like_node_without_output_is_handled(tmp_path: Path) -> None:
    path = tmp_path / "no_output.onnx"
    findings.write_flatten_without_output(path)
    code, _, err = profile(path)
    if code != 0:
        assert_one_clean_line(path, code, err)


@pytest.mark.parametrize("output_format", ["table", "markdown"])
def test_a_count_of_any_size_is_shown(tmp_path: Path, output_format: str) -> None:
    """count-beyond-formatting: internal error (decimal.InvalidOperation in units.format_count)."""
    path = tmp_path / "huge.onnx"
    findings.write_matmul_of_huge_operands(path)
    code, out, err = profile(path, "--format", output_format)
    assert code == 0 and "internal error" not in err, err
    assert "98079714615416886934934209737619787752 E" in out, out  # 2^186 / 10^18, rounded


def test_a_count_of_any_size_is_printed_as_json_and_csv(tmp_path: Path) -> None:
    """The reproducer above is a valid graph whose count the engine gets right: only the table
    and markdown formats fail on it."""
    path = tmp_path / "huge.onnx"
    findings.write_matmul_of_huge_operands(path)
    code, out, err = profile(path, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["total"]["macs"] == 2**62 * 2**62 * 2**62
    code, out, err = profile(path, "--format", "csv")
    assert code == 0 and str(2**186) in out, err


def test_an_inferred_dim_beyond_int64_is_one_clean_line(tmp_path: Path) -> None:
    """dim-past-int64: internal error (ValueError: Value out of range: 9223372036854775809)."""
    path = tmp_path / "fused.onnx"
    findings.write_fused_conv_past_int64(path)
    code, out, err = profile(path)
    assert_one_clean_line(path, code, err, "node 'fconv' (FusedConv)", str(2**63 + 1), "int64")


def test_a_node_listing_its_output_twice_is_one_clean_line(tmp_path: Path) -> None:
    """repeated-output-name: exit 0 with the output's 1,024 bytes counted three times, above the peak."""
    path = tmp_path / "repeated.onnx"
    findings.write_repeated_output_name(path)
    code, out, err = profile(path, "--format", "json")
    assert_one_clean_line(path, code, err, "node 'act' (Relu) lists its output 'y' 3 times")


def test_an_opset_version_beyond_int_is_profiled(tmp_path: Path) -> None:
    """opset-version-beyond-int: internal error (TypeError: get_schema(): incompatible function arguments)."""
    path = tmp_path / "opset.onnx"
    findings.write_huge_opset_version(path)
    code, out, err = profile(path, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["total"]["macs"] == 4 * 2 * 3 * 3 * 2 * 2  # read with the newest schema there is


@pytest.mark.parametrize("output_format", ["table", "json", "csv"])
def test_a_non_utf8_node_name_is_one_clean_line(tmp_path: Path, output_format: str) -> None:
    """non-utf8-strings: internal error (TypeError: ... bytes ...), in every format."""
    path = tmp_path / "non_utf8.onnx"
    findings.write_non_utf8_node_name(path)
    code, _, err = profile(path, "--format", output_format)
    assert_one_clean_line(path, code, err, "not a valid ONNX file: the name of node 0 is not UTF-8 text", "xff")


def test_a_non_utf8_node_name_with_scope_metadata_is_one_clean_line(tmp_path: Path) -> None:
    """The name is checked before the metadata naming its module is read (a TypeError before)."""
    path = tmp_path / "non_utf8.onnx"
    findings.write_non_utf8_node_name(path, metadata=True)
    code, _, err = profile(path)
    assert_one_clean_line(path, code, err, "not a valid ONNX file: the name of node 0 is not UTF-8 text", "xff")


def test_a_non_utf8_symbolic_dim_is_one_clean_line(tmp_path: Path) -> None:
    path = tmp_path / "non_utf8.onnx"
    findings.write_non_utf8_symbolic_dim(path)
    code, _, err = profile(path, "--batch", "2")
    assert_one_clean_line(path, code, err, "a symbolic dim of graph input 'x' is not UTF-8 text")


def test_a_constant_of_shape_without_an_output_name_is_handled(tmp_path: Path) -> None:
    path = tmp_path / "nameless.onnx"
    findings.write_nameless_constant_of_shape(path)
    code, _, err = profile(path)
    if code != 0:
        assert_one_clean_line(path, code, err, "fill")


@pytest.mark.parametrize("tagged", findings.BAD_TAGGED_SCALARS)
def test_a_tagged_scalar_yaml_cannot_convert_is_a_budget_error(tagged: str) -> None:
    with pytest.raises(BudgetError, match=r"^macc_budget\.yaml:4: models\.m\.total\.macs: expected a number"):
        parse_budget(findings.budget_with_tagged_scalar(tagged), Path("macc_budget.yaml"))


def test_a_tagged_scalar_elsewhere_names_its_key_and_line() -> None:
    text = "version: 1\ndefaults:\n  tolerance:\n    macs: !!float _\nmodels:\n  m:\n    inputs: {x: [1, !!int '']}\n"
    with pytest.raises(BudgetError, match=r"^b\.yaml:4: defaults\.tolerance\.macs: expected a tolerance .*"
                                          r"not a valid !!float value"):
        parse_budget(text, Path("b.yaml"))
    with pytest.raises(BudgetError, match=r"^b\.yaml:7: models\.m\.inputs\.x\[1\]: expected a positive integer"):
        parse_budget(text.replace("!!float _", "2%"), Path("b.yaml"))


# --- budget-file numbers no summary can show (found by the fuzzing's session step) -----------------


@pytest.mark.parametrize(("value", "line"), [("1" + "0" * 400, "1" + "0" * 400), ("1e31", "1e31"), ("10**31", None)])
def test_a_count_beyond_1e30_is_a_budget_error(value: str, line: object) -> None:
    """A YAML integer of 401 digits loaded, then the summary stopped with decimal.InvalidOperation
    (units.format_count) and a comparison with OverflowError (units.change_percent)."""
    text = f"version: 1\nmodels:\n  m:\n    total: {{macs: 5}}\n    limit: {{macs: {10**31 if line is None else value}}}\n"
    with pytest.raises(BudgetError, match=r"^b\.yaml:5: models\.m\.limit\.macs: expected a number up to 1e30, got "):
        parse_budget(text, Path("b.yaml"))


def test_the_largest_count_a_budget_file_holds_goes_through_a_session() -> None:
    from pytest_maccbudget.budget.reader import MAX_AMOUNT

    from .fuzz_cases import use_budget

    budget = parse_budget(f"version: 1\nmodels:\n  m:\n    total: {{macs: {MAX_AMOUNT}, params: 1}}\n", Path("b.yaml"))
    assert budget.models["m"].total["macs"] == MAX_AMOUNT
    assert use_budget(budget) == []  # compared (a tenth more), shown, updated, written and read again


@pytest.mark.parametrize("value", ["1e400", "1e400us", "1e31"])
def test_a_device_estimate_beyond_1e30_is_a_budget_error(value: str) -> None:
    """`latency_ms: 1e400` was read as an infinite latency."""
    text = f"version: 1\nmodels:\n  m:\n    total: {{macs: 5}}\n    devices:\n      cpu: {{latency_ms: {value}}}\n"
    with pytest.raises(BudgetError, match=r"^b\.yaml:6: models\.m\.devices\.cpu\.latency_ms: expected a number up to 1e30"):
        parse_budget(text, Path("b.yaml"))


# --- the budget file's own device profiles (devices/profiles.py, read when a test names one) ---------


def _resolve_board(text: str) -> object:
    budget = parse_budget(text, Path("macc_budget.yaml"))
    return resolve_devices(["board"], budget, Path("."), "macc_budget_devices")


def test_a_profile_in_the_budget_file_is_read() -> None:
    """The reproducer's profile is valid with a plain number: only the value makes the findings."""
    (device,) = _resolve_board(findings.budget_with_device_overhead("5"))  # type: ignore[misc]
    assert device.name == "board"


@pytest.mark.parametrize("value", findings.BAD_DEVICE_NUMBERS, ids=["int-empty", "bool-maybe", "timestamp-x", "401-digits"])
def test_a_device_profile_number_that_cannot_be_read_is_one_clean_line(value: str) -> None:
    """device-profile-numbers: IndexError / KeyError / AttributeError / OverflowError escaped."""
    with pytest.raises(DeviceSpecError, match=r"^macc_budget_devices: device 'board': macc_budget\.yaml:7: "
                                              r"devices\.board\.launch_overhead_us: expected a number"):
        _resolve_board(findings.budget_with_device_overhead(value))


def test_a_device_profile_with_an_unknown_tag_is_one_line() -> None:
    """device-profile-error-two-lines: PyYAML's mark ('in "<unicode string>", line 7') on a second line."""
    with pytest.raises(DeviceSpecError) as raised:
        _resolve_board(findings.budget_with_device_overhead("!custom 5"))
    assert "macc_budget.yaml:7: devices.board.launch_overhead_us: " in str(raised.value)
    assert len(str(raised.value).splitlines()) == 1, str(raised.value)


# --- shard reports for `maccbudget merge` --------------------------------------------------------------


def _merge(tmp_path: Path, edit: Callable[[list[dict]], None]) -> tuple[int, str]:
    from .fuzz_cases import SHARD_FILES, seed_reports

    texts, budget = seed_reports()
    reports = [json.loads(text) for text in texts]
    edit(reports)
    shards = []
    for name, report in zip(SHARD_FILES, reports):
        (tmp_path / name).write_text(json.dumps(report), encoding="utf-8")
        shards.append(str(tmp_path / name))
    (tmp_path / "macc_budget.yaml").write_text(budget, encoding="utf-8")
    code, _, err = call_cli(["merge", *shards, "--budget", str(tmp_path / "macc_budget.yaml"),
                             "--json", str(tmp_path / "merged.json"), "--report", str(tmp_path / "merged.md")])
    assert code is not None, err
    return code, err


def _set_params(value: object) -> Callable[[list[dict]], None]:
    def edit(reports: list[dict]) -> None:
        reports[1]["models"][0]["measurement"]["total"]["params"] = value
    return edit


@pytest.mark.parametrize(("value", "problem"), [
    (10**400, "expected a number up to 1e30, got a number of 401 digits"),  # was OverflowError in change_percent
    (10**31, "expected a number up to 1e30, got 10000000000000000000000000000000"),  # was decimal.InvalidOperation
])
def test_merge_refuses_a_count_no_report_can_show(tmp_path: Path, value: object, problem: str) -> None:
    code, err = _merge(tmp_path, _set_params(value))
    assert code == 2 and err.strip() == f"maccbudget: error: {tmp_path / 'shard-2.json'}: " \
                                        f"models[0].measurement.total.params: {problem}", err


@pytest.mark.parametrize(("figures", "where", "problem"), [
    ({"latency_ms": float("inf")}, "latency_ms", "expected a finite number, got inf"),
    ({"latency_ms": 1.5, "memory_bound": [["conv1", float("nan")]]}, "memory_bound[0][1]", "expected a finite number, got nan"),
])
def test_merge_refuses_a_device_figure_that_is_not_finite(tmp_path: Path, figures: dict, where: str, problem: str) -> None:
    """json reads Infinity and NaN, which the report's schema lets through as numbers."""
    def edit(reports: list[dict]) -> None:
        reports[1]["models"][0]["measurement"]["devices"] = {"cpu": {"energy_mj": None, **figures}}
    code, err = _merge(tmp_path, edit)
    assert code == 2 and err.strip() == f"maccbudget: error: {tmp_path / 'shard-2.json'}: " \
                                        f"models[0].measurement.devices.cpu.{where}: {problem}", err


def test_merge_refuses_text_that_is_not_unicode(tmp_path: Path) -> None:
    """JSON's escapes can spell a lone surrogate: the markdown report then failed with UnicodeEncodeError."""
    def edit(reports: list[dict]) -> None:
        reports[1]["errors"][0]["message"] = "no \udc80 file"
    code, err = _merge(tmp_path, edit)
    assert code == 2 and err.strip() == f"maccbudget: error: {tmp_path / 'shard-2.json'}: errors[0].message: the text is " \
                                        "not Unicode ('\\udc80' at character 3 is half of a surrogate pair)", err


def test_merge_names_a_few_missing_shards_of_a_huge_count(tmp_path: Path) -> None:
    """A shard count of 2^64 + 1 listed every missing shard: merge never ended."""
    def edit(reports: list[dict]) -> None:
        for report in reports:
            report["shard"]["count"] = 2**64 + 1
    code, err = _merge(tmp_path, edit)
    assert code == 2, err
    assert "shards 3/18446744073709551617, 4/18446744073709551617, 5/18446744073709551617, 6/18446744073709551617, " \
           "7/18446744073709551617 and 18,446,744,073,709,551,610 more missing" in err, err
