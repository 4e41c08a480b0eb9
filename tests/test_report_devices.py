"""Device estimates in the reports: the terminal summary's device table, the report JSON (what
the budget records per device, validated when read back), the markdown table and the note
when latency grew out of proportion to MACs, and a branch that raised a latency budget."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest

from pytest_maccbudget.budget import DeviceFigures, Measurement, compare, parse_budget
from pytest_maccbudget.pr_report import build_report, dump_report, load_report, render_markdown
from pytest_maccbudget.pr_report.build import branch_budget_changes
from pytest_maccbudget.terminal_summary import budget_summary_lines

PATH = Path("macc_budget.yaml")
BASE = {"ref": "origin/main", "commit": "0123456789abcdef0123456789abcdef01234567"}


def budget_yaml(latency: float = 10.0, macs: int = 1_000_000, limit: str = "") -> str:
    return f"""\
version: 1
rules: 6
models:
  net:
    inputs: {{x: [1, 3, 16, 16]}}
    total: {{macs: {macs}, flops: 2000000, params: 5000, param_bytes: 20000, peak_activation_bytes: 40000}}
    devices:
      phone: {{{limit}latency_ms: {latency}, energy_mj: 0.5}}
"""


def measured(latency: Optional[float], macs: int = 1_000_000, energy: float = 0.5) -> Measurement:
    figures = DeviceFigures(latency, energy, memory_bound=(("head", 2.5), ("stem", 1.25)))
    return Measurement(name="net", nodeid="test_m.py::test_net", inputs={"x": [1, 3, 16, 16]},
                       total={"macs": macs, "flops": 2000000, "params": 5000, "param_bytes": 20000,
                              "peak_activation_bytes": 40000},
                       layers={}, devices={"phone": figures})


def report(measurement: Measurement, budget_text: str = budget_yaml(), base_text: Optional[str] = None) -> dict:
    budget = parse_budget(budget_text, PATH)
    base_budget = parse_budget(base_text, PATH) if base_text is not None else None
    comparison = compare(budget, measurement)
    return build_report([(measurement, comparison.failed)], budget, base_budget=base_budget,
                        base=BASE if base_text is not None else None, unused=[], budget_file="macc_budget.yaml")


def test_the_terminal_summary_has_a_row_per_model_and_device() -> None:
    budget = parse_budget(budget_yaml(), PATH)
    lines = budget_summary_lines([compare(budget, measured(10.9, macs=1_010_000))], unused=[], budget_path=PATH)
    start = lines.index("estimated on devices (roofline of the counted costs):")
    assert lines[start + 1:start + 6] == [
        "model  device  latency  vs budget  energy  vs budget",
        "-----  ------  -------  ---------  ------  ---------",
        "net    phone   10.9 ms      +9.0%  500 µJ          =",
        "memory-bound layers that take longest:",
        "  net on phone: head (2.50 ms), stem (1.25 ms)",
    ]


def test_no_device_table_without_devices() -> None:
    plain = Measurement(name="net", nodeid="t", inputs={"x": [1, 3, 16, 16]}, total=measured(1.0).total, layers={})
    lines = budget_summary_lines([compare(parse_budget(budget_yaml(), PATH), plain)], unused=[], budget_path=PATH)
    assert not any("devices" in line for line in lines)


def test_the_report_records_device_figures_and_reads_back() -> None:
    data = report(measured(10.9))
    model = data["models"][0]
    assert model["measurement"]["devices"] == {"phone": {"latency_ms": 10.9, "energy_mj": 0.5,
                                                         "memory_bound": [["head", 2.5], ["stem", 1.25]]}}
    assert model["budget"]["devices"] == {"phone": {"figures": {"latency_ms": 10.0, "energy_mj": 0.5}, "limit": {},
                                                    "tolerance": {"latency_ms": "0%", "energy_mj": "0%"}}}
    assert load_report(dump_report(data), "r.json") == data


def test_an_entry_without_devices_has_no_devices_key() -> None:
    plain = budget_yaml().split("    devices:")[0]
    assert "devices" not in report(measured(10.0), plain)["models"][0]["budget"]


@pytest.mark.parametrize("path, value, problem", [
    (("measurement", "devices", "phone", "latency_ms"), "fast", "expected a non-negative number or null"),
    (("measurement", "devices", "phone", "memory_bound"), [["head"]], "expected a list of [layer, milliseconds] pairs"),
    (("budget", "devices", "phone", "figures", "energy_mj"), None, "expected a non-negative number"),
    (("budget", "devices", "phone", "tolerance"), {"latency_ms": 3}, "expected an object of strings"),
])
def test_a_report_with_bad_device_figures_is_refused(path: tuple[str, ...], value: object, problem: str) -> None:
    data = report(measured(10.9))
    target = data["models"][0]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError) as raised:
        load_report(dump_report(data), "r.json")
    assert str(raised.value) == f"r.json: models[0].{'.'.join(path)}: {problem}"


def test_the_markdown_has_a_device_table_and_says_latency_grew_although_macs_barely_moved() -> None:
    text = render_markdown(report(measured(10.9, macs=1_010_000)))
    assert "- latency on `phone` +9.0% although MACs +1.0%" in text
    assert ("| device | estimate | budget | this commit | vs budget |\n"
            "| :-- | :-- | --: | --: | --: |\n"
            "| `phone` | latency | 10.0 ms | 10.9 ms | +9.0% |\n"
            "| `phone` | energy | 500 µJ | 500 µJ | = |\n") in text
    assert "- memory-bound on `phone`: `head` (2.50 ms), `stem` (1.25 ms)" in text


def test_no_latency_note_when_latency_grew_in_proportion_to_macs() -> None:
    text = render_markdown(report(measured(10.9, macs=1_090_000)))
    assert "although" not in text
    assert "| `phone` | latency | 10.0 ms | 10.9 ms | +9.0% |" in text


def test_a_model_whose_latency_alone_changed_gets_a_section() -> None:
    # the totals equal the budget's; only the estimate moved (within a tolerance, so nothing failed)
    text = budget_yaml().replace("    devices:", "    tolerance: {latency_ms: 10%}\n    devices:")
    data = report(measured(10.5), text)
    assert data["models"][0]["status"] == "ok"
    assert "### `net`" in render_markdown(data)
    assert "### `net`" not in render_markdown(report(measured(10.0)))


def test_a_branch_that_raised_a_latency_budget_is_flagged() -> None:
    data = report(measured(12.0), budget_yaml(latency=12.0), base_text=budget_yaml(latency=10.0))
    assert data["models"][0]["budget_change"] == "raised"
    changes = branch_budget_changes(parse_budget(budget_yaml(latency=10.0), PATH), parse_budget(budget_yaml(12.0), PATH))
    assert changes["raised"] == ["net"]
    loosened = branch_budget_changes(parse_budget(budget_yaml(limit="limit: {latency_ms: 11}, "), PATH),
                                     parse_budget(budget_yaml(limit="limit: {latency_ms: 15}, "), PATH))
    assert loosened["changed"] == ["net"]
    markdown = render_markdown(data)
    assert "| `phone` | latency | 10.0 ms | 12.0 ms | 12.0 ms | = | +20.0% |" in markdown


def test_a_merge_of_shards_keeps_the_base_entrys_devices() -> None:
    from pytest_maccbudget.pr_report import base_budget_from_reports, merge_reports

    data = load_report(dump_report(report(measured(12.0), budget_yaml(latency=12.0), base_text=budget_yaml(10.0))), "r")
    base_budget = base_budget_from_reports([data], PATH)
    assert base_budget is not None
    assert base_budget.models["net"].devices["phone"].figures == {"latency_ms": 10.0, "energy_mj": 0.5}
    pairs, _, _ = merge_reports([data])
    assert pairs[0][0].devices["phone"].latency_ms == 12.0


# --- a partial model's estimates: lower bounds only where the engine could not count ---------------

def _matmul_then_custom_op():
    """x [1, 64] -> MatMul W [64, 32] (2,048 MACs) -> acme::Foo (no cost rule) -> y"""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="/fc/MatMul"),
             helper.make_node("Foo", ["h"], ["y"], name="/foo/Foo", domain="acme")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
                              [numpy_helper.from_array(np.ones((64, 32), np.float32), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme", 1)])


BOARD = "name: board\nclass: test\npeak_macs_per_s: {fp32: 1G}\nmemory_bandwidth: 1 GB/s\n"


def test_a_partial_models_estimates_are_lower_bounds_only_over_what_could_not_be_counted() -> None:
    from pytest_maccbudget import profile_model
    from pytest_maccbudget.device_estimates import device_figures
    from pytest_maccbudget.devices.profiles import parse_device

    profile = profile_model(_matmul_then_custom_op())
    assert profile.partial
    with_energy = parse_device(BOARD + "energy: {pj_per_mac: {fp32: 4}, pj_per_dram_byte: 100}\n", "board.yaml")
    figures = device_figures(profile, [with_energy], partial=True)["board"]
    # the MatMul: 2,048 MACs -> 2.048 us; it reads 256 B + 8 KiB and writes 128 B: 8,576 B -> 8.576 us at 1 GB/s
    assert figures.latency_ms == pytest.approx(0.008576, rel=1e-3)
    # 2,048 x 4 pJ + 8,576 x 100 pJ = 865,792 pJ
    assert figures.energy_mj == pytest.approx(8.658e-4, rel=1e-3)
    # a profile without energy figures cannot estimate any layer's energy: unknown, not a 0 lower bound
    without_energy = parse_device(BOARD, "board.yaml")
    figures = device_figures(profile, [without_energy], partial=True)["board"]
    assert figures.latency_ms == pytest.approx(0.008576, rel=1e-3)
    assert figures.energy_mj is None and "energy" in figures.unknown_reason
    # nor can a device without a peak for the model's dtype estimate its latency
    fp16_only = parse_device(BOARD.replace("{fp32: 1G}", "{fp16: 1G}"), "board.yaml")
    figures = device_figures(profile, [fp16_only], partial=True)["board"]
    assert figures.latency_ms is None and figures.energy_mj is None
