"""Rendering a Profile: table, Markdown, CSV and JSON, built from hand-made Profiles."""
from __future__ import annotations

import csv
import io
import json
from typing import Optional

import pytest

from pytest_maccbudget.engine.results import (
    CONSTANT, COSTED, FOLDED, FREE, UNKNOWN, UNRESOLVED, LayerCost, NodeSource, Profile, Totals, UnknownOp,
)
from pytest_maccbudget.profile_report import (
    TABLE_HEADER, coverage_line, json_dict, render, render_csv, render_json, render_markdown, render_table,
    select_rows, shorten,
)


def make_layer(
    name: str, op: str = "Conv", macs: Optional[int] = 0, flops: Optional[int] = 0, *,
    status: str = COSTED, params: int = 0, output_bytes: Optional[int] = 4000, note: str = "", domain: str = "",
) -> LayerCost:
    return LayerCost(
        name=name, op_type=op, domain=domain, macs=macs, flops=flops, params=params, param_bytes=4 * params,
        output_bytes=output_bytes, bytes_read=output_bytes, bytes_written=output_bytes, status=status, note=note,
    )


def make_profile(layers: list[LayerCost], notes: tuple[str, ...] = (), peak: Optional[int] = 1_000_000) -> Profile:
    runtime = [l for l in layers if l.status != CONSTANT]
    unknown = tuple(
        UnknownOp(l.op_type, l.domain, l.name, l.note or "no cost rule", l.status) for l in layers if l.status in (UNKNOWN, UNRESOLVED)
    )
    totals = Totals(
        macs=sum(l.macs or 0 for l in runtime), flops=sum(l.flops or 0 for l in runtime),
        params=sum(l.params for l in layers), param_bytes=sum(l.param_bytes for l in layers),
        peak_activation_bytes=peak, activation_bytes=sum(l.output_bytes or 0 for l in runtime),
        bytes_read=sum(l.bytes_read or 0 for l in runtime), bytes_written=sum(l.bytes_written or 0 for l in runtime),
    )
    return Profile("net.onnx", tuple(layers), totals, unknown, {"x": (1, 3, 224, 224)}, notes, opset=17, ir_version=8)


@pytest.fixture
def big_profile() -> Profile:
    """108 costed layers + 3 unknown (Foo x2, Bar x1): 97.3% of 111 runtime nodes costed."""
    layers = [make_layer(f"w{i}", "Constant", status=CONSTANT) for i in range(4)]
    for i in range(104):
        layers.append(make_layer(f"conv{i}", "Conv", macs=1_000_000 + i, flops=2_000_000 + 2 * i, params=100))
    layers.append(make_layer("reshape0", "Reshape", status=FREE))
    layers.append(make_layer("reshape1", "Reshape", status=FREE))
    layers.append(make_layer("bn0", "BatchNormalization", status=FOLDED, params=8, note="folded into conv0"))
    layers.append(make_layer("concat0", "Concat", status=FREE))
    layers.append(make_layer("foo0", "Foo", None, None, status=UNKNOWN, domain="com.acme", note="no cost rule for com.acme::Foo"))
    layers.append(make_layer("foo1", "Foo", None, None, status=UNKNOWN, domain="com.acme", note="no cost rule for com.acme::Foo"))
    layers.append(make_layer("bar0", "Bar", None, None, status=UNKNOWN, note="no cost rule for ai.onnx::Bar"))
    return make_profile(layers, notes=("symbolic batch dimension 'N' of input 'x' taken as 1",))


@pytest.fixture
def small_profile() -> Profile:
    return make_profile([
        make_layer("const", "ConstantOfShape", status=CONSTANT),
        make_layer("conv1", "Conv", 3_000_000, 6_000_000, params=864, output_bytes=3_211_264),
        make_layer("relu1", "Relu", 0, 802_816, output_bytes=3_211_264),
        make_layer("flatten", "Flatten", status=FREE, output_bytes=3_211_264),
        make_layer("fc", "Gemm", 1_000_000, 2_000_000, params=10_010, output_bytes=40),
    ])


def table_rows(lines: list[str]) -> list[str]:
    """The lines between the two rules of a rendered table."""
    rules = [i for i, line in enumerate(lines) if line.startswith("-----")]
    return lines[rules[0] + 1: rules[1]]


# --- coverage -----------------------------------------------------------------------------


def test_coverage_line_counts_unknown_ops(big_profile):
    assert coverage_line(big_profile) == "97.3% of nodes costed (108 of 111); 3 unknown: com.acme::Foo x2, Bar x1"


def test_coverage_line_complete(small_profile):
    assert coverage_line(small_profile) == "100.0% of nodes costed (4 of 4)"  # free layers count as costed


def test_coverage_line_separates_unresolved_shapes():
    profile = make_profile([
        make_layer("a", "Foo", None, None, status=UNKNOWN),
        make_layer("b", "Conv", None, None, status=UNRESOLVED, note="shape of 'b' is not known"),
        make_layer("c", "Conv", 10, 20),
    ])
    line = coverage_line(profile)
    assert line.startswith("33.3% of nodes costed (1 of 3); 1 unknown: Foo x1; 1 unresolved")
    assert line.endswith("Conv x1")


# --- table --------------------------------------------------------------------------------


def test_table_rows_in_graph_order_with_human_units(small_profile):
    lines = render_table(small_profile)
    assert lines[0] == "model: net.onnx (opset 17)"
    assert lines[1] == "inputs: x [1, 3, 224, 224]"
    rows = table_rows(lines)
    assert [row.split()[0] for row in rows] == ["conv1", "relu1", "fc"]  # constant and free hidden
    assert rows[0].split()[:5] == ["conv1", "Conv", "3.00", "M", "75.0%"]
    assert "3.21 MB" in rows[0]
    assert "1.00 M" in rows[2] and "25.0%" in rows[2] and "10.0 k" in rows[2]


def test_table_columns_are_aligned(small_profile):
    lines = render_table(small_profile)
    header = next(line for line in lines if line.startswith("layer"))
    rows = table_rows(lines)
    for column in ("MACs", "FLOPs", "output bytes"):  # numbers right-aligned under their header
        end = header.index(column) + len(column)
        for line in rows:
            assert line[end - 1] != " " and (len(line) == end or line[end] == " "), (column, line)
    for column in ("layer", "op"):  # text left-aligned
        start = header.index(column)
        for line in rows:
            assert line[start] != " " and (start == 0 or line[start - 1] == " "), (column, line)


def test_table_total_row_and_summary(small_profile):
    lines = render_table(small_profile)
    total = next(line for line in lines if line.startswith("total "))
    assert total.split() == ["total", "4.00", "M", "100.0%", "8.80", "M", "10.9", "k"]
    text = "\n".join(lines)
    assert "peak activation memory: 1.00 MB" in text
    assert "parameters:             10.9 k (43.5 KB)" in text
    assert "memory traffic:" in text
    assert "coverage:               100.0% of nodes costed (4 of 4)" in text
    assert "partial" not in text


def test_table_hides_constant_free_and_folded_layers_with_counts(big_profile):
    text = "\n".join(render_table(big_profile))
    assert "4 layers computing constants before the graph runs" in text
    assert "3 layers costing nothing (Reshape x2, Concat x1)" in text
    assert "1 layer folded into a neighbour (BatchNormalization x1)" in text
    assert "--all shows free and folded layers" in text
    assert "reshape0" not in text and "bn0" not in text and "w0" not in text.split()


def test_show_all_lists_free_and_folded_but_never_constant(big_profile):
    names = [row.split()[0] for row in table_rows(render_table(big_profile, show_all=True))]
    assert {"reshape0", "reshape1", "bn0", "concat0"} <= set(names)
    assert not {"w0", "w1", "w2", "w3"} & set(names)
    assert names.index("reshape0") < names.index("foo0")  # graph order


def test_unknown_cells_print_question_marks_and_reason(big_profile):
    row = next(r for r in table_rows(render_table(big_profile)) if r.startswith("foo0"))
    cells = row.split()
    assert cells[1] == "com.acme::Foo"
    assert cells[2:5] == ["?", "?", "?"]
    assert "unknown: no cost rule for com.acme::Foo" in row


def test_partial_profile_says_totals_are_lower_bounds(big_profile):
    lines = render_table(big_profile)
    text = "\n".join(lines)
    total = next(line for line in lines if line.startswith("total "))
    assert "lower bound: 3 layers not costed" in total
    assert "3 unknown: com.acme::Foo x2, Bar x1" in text
    assert "97.3% of nodes costed" in text
    assert "partial:" in text


def test_notes_are_printed(big_profile):
    assert "note: symbolic batch dimension 'N' of input 'x' taken as 1" in render_table(big_profile)


def test_unknown_peak_prints_question_mark():
    profile = make_profile([make_layer("a", "Conv", 10, 20)], peak=None)
    assert "peak activation memory: ?" in render_table(profile)


def test_top_keeps_largest_layers_and_says_how_many_left_out(big_profile):
    lines = render_table(big_profile, top=3)
    assert [row.split()[0] for row in table_rows(lines)] == ["conv103", "conv102", "conv101"]
    text = "\n".join(lines)
    # 104 conv + 3 unknown visible; the 101 smallest convs and the unknown ones are left out
    assert "top 3 of 107 layers by MACs; 104 left out (101 M MACs, 97.1% of the total)" in text
    assert "3 unknown: com.acme::Foo x2, Bar x1" in text  # still reported


def test_top_breaks_mac_ties_by_flops():
    profile = make_profile([
        make_layer("small", "Relu", 0, 10), make_layer("big", "Relu", 0, 99), make_layer("conv", "Conv", 5, 10),
    ])
    assert [r.split()[0] for r in table_rows(render_table(profile, top=2))] == ["conv", "big"]


def test_top_larger_than_layer_count_leaves_nothing_out(small_profile):
    selection = select_rows(small_profile, top=50)
    assert len(selection.rows) == 3 and selection.top_note is None


def test_long_names_are_shortened_in_the_middle():
    # the row shows the budget key: encoder.layers.11.self_attention.output.dense_with_a_long_suffix (62)
    name = "/encoder/layers.11/self_attention/output/dense_with_a_long_suffix/MatMul"
    profile = make_profile([make_layer(name, "MatMul", 10, 20)])
    row = table_rows(render_table(profile))[0]
    shown = row.split()[0]
    assert "..." in shown and shown.startswith("encoder.layers") and shown.endswith("suffix")
    assert len(shown) <= 48


def test_shorten():
    assert shorten("abcdef", 10) == "abcdef"
    assert shorten("abcdefghij", 7) == "ab...ij"
    assert shorten("abcdefghij", 7, middle=False) == "abcd..."


def test_empty_profile_renders():
    profile = make_profile([])
    text = "\n".join(render_table(profile))
    assert "(no layers to show)" in text
    assert "100.0% of nodes costed (0 of 0)" in text


# --- markdown / csv / json ----------------------------------------------------------------


def test_markdown_table(big_profile):
    lines = render_markdown(big_profile, top=2)
    assert lines[0] == "### maccbudget: `net.onnx`"
    rows = [line for line in lines if line.startswith("| ")]
    assert rows[0] == "| " + " | ".join(TABLE_HEADER) + " |"
    assert rows[1].startswith("| --- | --- | --: |")
    assert len(rows) == 2 + 2 + 1  # header, alignment, 2 layers, total
    assert rows[-1].startswith("| **total** |")
    text = "\n".join(lines)
    assert "- **coverage:** 97.3% of nodes costed (108 of 111); 3 unknown: com.acme::Foo x2, Bar x1" in text


def test_markdown_escapes_pipes_in_names():
    profile = make_profile([make_layer("a|b", "Conv", 10, 20)])
    row = [line for line in render_markdown(profile) if line.startswith("| `")][0]
    assert "`a\\|b`" in row
    assert row.count(" | ") == len(TABLE_HEADER) - 2  # no note column: every separator is a real one


def test_csv_lists_every_layer_with_raw_numbers(big_profile):
    rows = list(csv.DictReader(io.StringIO(render_csv(big_profile))))
    assert len(rows) == len(big_profile.layers)
    conv = next(r for r in rows if r["name"] == "conv7")
    assert conv["macs"] == "1000007" and conv["flops"] == "2000014" and conv["params"] == "100"
    foo = next(r for r in rows if r["name"] == "foo0")
    assert foo["macs"] == "" and foo["status"] == "unknown" and foo["domain"] == "com.acme"
    assert {r["status"] for r in rows} == {"constant", "costed", "free", "folded", "unknown"}


def test_csv_top(big_profile):
    rows = list(csv.DictReader(io.StringIO(render_csv(big_profile, top=2))))
    assert [r["name"] for r in rows] == ["conv103", "conv102"]


def test_json_is_to_dict_with_layer_keys(big_profile):
    data = json.loads(render_json(big_profile))
    assert [layer.pop("layer_key") for layer in data["layers"]] == [layer.name for layer in big_profile.layers]
    assert data == json.loads(json.dumps(big_profile.to_dict()))
    assert data["partial"] is True
    assert data["total"]["macs"] == big_profile.totals.macs
    assert {(u["op_type"], u["name"]) for u in data["unknown"]} == {("Foo", "foo0"), ("Foo", "foo1"), ("Bar", "bar0")}
    foo = next(l for l in data["layers"] if l["name"] == "foo0")
    assert foo["macs"] is None  # unknown is null, never 0


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json"])
def test_render_dispatch_ends_with_newline(small_profile, fmt):
    out = render(small_profile, fmt)
    assert out.endswith("\n") and not out.endswith("\n\n")


def test_render_unknown_format(small_profile):
    with pytest.raises(ValueError, match="xml"):
        render(small_profile, "xml")


def test_json_is_compact_unless_an_indent_is_asked_for(small_profile):
    compact = render_json(small_profile)
    assert "\n" not in compact and ", " not in compact and '": ' not in compact
    indented = render_json(small_profile, indent=2)
    assert indented.startswith('{\n  "model": "net.onnx",')
    assert json.loads(compact) == json.loads(indented) == json_dict(small_profile)
    assert render(small_profile, "json").count("\n") == 1
    assert render(small_profile, "json", indent=4).startswith('{\n    "model"')


# --- upper bounds ------------------------------------------------------------------------------


@pytest.fixture
def bounded_profile() -> Profile:
    """A detection tail: NMS FLOPs and what follows it are upper bounds; the conv is exact."""
    conv = make_layer("conv", "Conv", 21_600, 42_400, params=216, output_bytes=3_200)
    nms = LayerCost(name="nms", op_type="NonMaxSuppression", domain="", macs=0, flops=58_220, params=0, param_bytes=0,
                    output_bytes=480, bytes_read=3_216, bytes_written=480, status=COSTED, note="worst case",
                    op_class="other", upper_bounds=("flops", "output_bytes", "bytes_written"))
    profile = make_profile([conv, nms])
    totals = Totals(**{**profile.totals.__dict__, "upper_bounds": ("flops", "peak_activation_bytes", "bytes_written",
                                                                  "memory_traffic_bytes")})
    return Profile("det.onnx", profile.layers, totals, (), profile.inputs, (), opset=17)


def test_upper_bounds_print_with_a_mark(bounded_profile):
    lines = render_table(bounded_profile, show_all=True)
    rows = table_rows(lines)
    assert "<=58.2 k" in rows[1] and "<=480 B" in rows[1] and "<=" not in rows[0]
    text = "\n".join(lines)
    assert "MACs:                   21.6 k" in text  # exact: no mark
    assert "FLOPs:                  <=" in text
    assert ("upper bound:            FLOPs, peak activation memory and memory traffic are upper bounds "
            "(marked <=): 1 layer depends on data and is counted at its largest") in text
    total = [line for line in lines if line.startswith("total")][0]
    assert "<=101 k" in total and "upper bound: shapes depend on data" in total


def test_upper_bounds_in_csv_and_json(bounded_profile):
    rows = list(csv.DictReader(io.StringIO(render_csv(bounded_profile))))
    assert rows[1]["upper_bound"] == "flops;output_bytes;bytes_written" and rows[0]["upper_bound"] == ""
    assert rows[1]["op_class"] == "other"
    data = json.loads(render_json(bounded_profile))
    assert data["upper_bound"] is True
    assert data["total"]["upper_bound"] == ["flops", "peak_activation_bytes", "bytes_written", "memory_traffic_bytes"]
    assert data["layers"][1]["upper_bound"] == ["flops", "output_bytes", "bytes_written"]
    assert data["layers"][0]["upper_bound"] == []


# --- layer names: budget keys ------------------------------------------------------------------


def test_layers_are_named_by_budget_key_and_json_keeps_the_node_name():
    # a TorchScript name carries the module path; a dynamo node (`node_Conv_3`) carries it in its
    # metadata: [root, scopes..., aten op]; its BatchNorm was merged into it, so the scopes are the
    # BN's and the key comes from the conv's weight (`blk.conv.weight`); a zoo-style name is its own key
    scoped = make_layer("/blk/fc/Gemm", "Gemm", 30, 60)
    dynamo = make_layer("node_Conv_3", "Conv", 100, 200)
    plain = make_layer("n7", "Relu", 0, 5)
    sources = {"node_Conv_3": NodeSource(
        (("pkg.onnxscript.rewriter.rule_name", "FuseBatchNormIntoConv"),
         ("pkg.torch.onnx.name_scopes", "['', 'blk', 'blk.bn', '_native_batch_norm_legit_no_training']")),
        ("x", "blk.conv.weight", "blk.conv.bias"))}
    base = make_profile([scoped, dynamo, plain])
    profile = Profile("m.onnx", base.layers, base.totals, (), base.inputs, sources=sources)
    rows = table_rows(render_table(profile, show_all=True))
    assert [row.split()[0] for row in rows] == ["blk.fc", "blk.conv", "n7"]
    data = json.loads(render_json(profile))
    assert [(l["name"], l["layer_key"]) for l in data["layers"]] == [
        ("/blk/fc/Gemm", "blk.fc"), ("node_Conv_3", "blk.conv"), ("n7", "n7")]
    csv_rows = list(csv.DictReader(io.StringIO(render_csv(profile))))
    assert [(r["name"], r["layer_key"]) for r in csv_rows] == [
        ("/blk/fc/Gemm", "blk.fc"), ("node_Conv_3", "blk.conv"), ("n7", "n7")]


def test_profile_command_prints_compact_json_unless_indent_is_given(tmp_path, capsys):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save_model

    from pytest_maccbudget.cli import main

    # one MatMul [2, 16] x [16, 4] named by scope: 2 * 16 * 4 = 128 MACs, key "blk.fc"
    w = numpy_helper.from_array(np.ones((16, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="/blk/fc/MatMul")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    path = tmp_path / "m.onnx"
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert main(["--debug", "profile", str(path), "--format", "json"]) == 0
    compact = capsys.readouterr().out
    assert compact.count("\n") == 1 and '": ' not in compact
    layer = json.loads(compact)["layers"][0]
    assert (layer["name"], layer["layer_key"], layer["macs"]) == ("/blk/fc/MatMul", "blk.fc", 128)
    assert main(["--debug", "profile", str(path), "--format", "json", "--indent", "2"]) == 0
    indented = capsys.readouterr().out
    assert indented.startswith('{\n  "model": ') and json.loads(indented) == json.loads(compact)
    assert main(["--debug", "profile", str(path), "--indent", "2"]) == 2
    assert "--indent applies to --format json only" in capsys.readouterr().err
    assert main(["--debug", "profile", str(path)]) == 0
    assert "blk.fc  MatMul" in capsys.readouterr().out
