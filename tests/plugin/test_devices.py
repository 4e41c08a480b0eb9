"""Latency and energy budgets on devices, through pytest: recorded per model and device, compared,
toleranced and updated like MACs, reported in the summary.

The device is defined in the budget file so that its figures are ours to work out:

    slow-board: 1 G fp32 MAC/s, 100 MB/s of memory, 2 us per layer, no efficiency loss,
                4 pJ a MAC, 100 pJ a DRAM byte.

The model is a 1x1 conv then a tail of Transposes: conv [1, 8, 16, 16] -> [1, 16, 16, 16].
"""
from __future__ import annotations

import textwrap

import pytest

from .conftest import Project

DEVICE_SECTION = """\
devices:
  slow-board:
    class: microcontroller
    peak_macs_per_s: {fp32: 1G}
    memory_bandwidth: 100 MB/s
    launch_overhead_us: 2
    energy: {pj_per_mac: {fp32: 4}, pj_per_dram_byte: 100}
"""

NET = '''
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def write(path, out_channels=16, transposes=0):
    """x [1, 8, 16, 16] -> conv 1x1 (8 -> out_channels, no bias) -> `transposes` Transposes -> y"""
    weight = numpy_helper.from_array(np.ones((out_channels, 8, 1, 1), np.float32), "conv.weight")
    nodes = [helper.make_node("Conv", ["x", "conv.weight"], ["t0"], name="/conv/Conv", kernel_shape=[1, 1])]
    for index in range(transposes):
        nodes.append(helper.make_node("Transpose", [f"t{index}"], [f"t{index + 1}"], name=f"/tail{index}/Transpose",
                                      perm=[0, 1, 3, 2]))
    nodes.append(helper.make_node("Identity", [f"t{transposes}"], ["y"], name="/out/Identity"))
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
'''

# The conv: 16 x 16 x 16 outputs of 8 MACs = 32,768 MACs -> 32.768 us at 1 G MAC/s; it reads
# 8 KiB of input and 512 B of weights and writes 16 KiB: 25,088 B -> 250.88 us at 100 MB/s:
# memory-bound, 250.88 + 2 = 252.88 us.
CONV_MS = 0.25288
# energy: 32,768 MACs x 4 pJ + 25,088 B x 100 pJ = 2,639,872 pJ = 2.64 uJ
CONV_MJ = 2.639872e-03


def net_test(out_channels: int = 16, transposes: int = 0, devices: str = "") -> str:
    marker_devices = f", devices={devices}" if devices else ""
    return textwrap.dedent(f"""
        from pathlib import Path

        import pytest
        from devnet import write


        @pytest.mark.macc_budget("net", model="net.onnx"{marker_devices})
        def test_net():
            write(Path(__file__).with_name("net.onnx"), out_channels={out_channels}, transposes={transposes})
    """)


@pytest.fixture
def board_project(project: Project) -> Project:
    project.pytester.makepyfile(devnet=NET)
    project.ini("macc_budget_devices = slow-board")
    project.write_budget("version: 1\n" + DEVICE_SECTION)
    project.add_test("test_net.py", net_test())
    return project


def figures(project: Project) -> dict[str, float]:
    return project.budget()["models"]["net"]["devices"]["slow-board"]


@pytest.mark.parametrize("xdist_args", [()], indirect=True)
def test_an_update_records_the_hand_worked_estimates(board_project: Project) -> None:
    board_project.record()
    assert figures(board_project) == {"latency_ms": pytest.approx(CONV_MS, rel=1e-3),
                                      "energy_mj": pytest.approx(CONV_MJ, rel=1e-3)}
    assert figures(board_project) == {"latency_ms": float(f"{CONV_MS:.4g}"), "energy_mj": float(f"{CONV_MJ:.4g}")}
    assert board_project.budget()["devices"]["slow-board"]["memory_bandwidth"] == "100 MB/s"
    result = board_project.run("--macc-budget")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()


def test_a_widened_layer_fails_its_latency_budget(board_project: Project) -> None:
    board_project.record()
    board_project.add_test("test_net.py", net_test(out_channels=24))
    result = board_project.run("--macc-budget")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # 24 channels: 49,152 MACs; reads 8,192 + 768 B, writes 24,576 B: 335.36 + 2 us
    result.stdout.fnmatch_lines(["*latency_ms on slow-board 337 µs > budget 253 µs (+33.4%, tolerance 0%); MACs +50.0%*"])


def test_more_memory_traffic_with_the_same_macs_fails_latency_and_passes_macs(board_project: Project) -> None:
    board_project.record()
    # the tail's buffers raise the peak too: allow that, to see latency alone
    board_project.edit_budget("    inputs:", "    tolerance: {peak_activation_bytes: 100%}\n    inputs:")
    board_project.add_test("test_net.py", net_test(transposes=1))
    result = board_project.run("--macc-budget")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # the Transpose: 32,768 B at 100 MB/s + 2 us = 329.68 us; with the conv's 252.88 us, 582.56 us
    result.stdout.fnmatch_lines([
        "model 'net': latency_ms on slow-board 583 µs > budget 253 µs (+130.4%, tolerance 0%); MACs unchanged; "
        "a tolerance on peak_activation_bytes does not cover latency_ms: * (+1 more below)",
        "latency_ms on slow-board 583 µs > budget 253 µs (+130.4%, tolerance 0%); MACs unchanged; *",
        "energy_mj on slow-board 5.92 µJ > budget 2.64 µJ (+124.1%, tolerance 0%); MACs unchanged; *",
        "-* macc budget -*",
        "net    32.8 k          =     128           32.8 KB  REGRESSED",  # MACs equal their budget
        "*",
        "net    slow-board   583 µs    +130.4%  5.92 µJ    +124.1%",
        "memory-bound layers that take longest:",
        "  net on slow-board: tail0 (330 µs), conv (253 µs)",
    ])


@pytest.mark.parametrize("xdist_args", [()], indirect=True)
def test_a_marker_chooses_its_own_devices(board_project: Project) -> None:
    board_project.add_test("test_net.py", net_test(devices="['github-ubuntu-latest']"))
    board_project.record()
    assert set(board_project.budget()["models"]["net"]["devices"]) == {"github-ubuntu-latest"}
    board_project.add_test("test_net.py", net_test(devices="[]"))
    result = board_project.run("--macc-budget", "--macc-budget-strict")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*estimates on device github-ubuntu-latest are recorded but no longer made*"])


@pytest.mark.parametrize("xdist_args", [()], indirect=True)
def test_a_device_that_cannot_be_found_is_a_clear_error(board_project: Project) -> None:
    board_project.ini("macc_budget_devices = slow-bord")
    result = board_project.run("--macc-budget")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-maccbudget: ini macc_budget_devices: device 'slow-bord': no built-in "
                                 "device 'slow-bord' and no such file; built-in devices: *"])
    board_project.ini()
    board_project.add_test("test_net.py", net_test(devices="['boards/missing.yaml']"))
    result = board_project.run("--macc-budget")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["_* test_net _*", "devices=: device 'boards/missing.yaml': boards/missing.yaml: no such file",
                                 "-* macc budget -*"])


@pytest.mark.parametrize("xdist_args", [()], indirect=True)
def test_a_broken_profile_in_the_budget_file_names_its_line(board_project: Project) -> None:
    board_project.edit_budget("memory_bandwidth: 100 MB/s", "memory_bandwidth: fast")
    result = board_project.run("--macc-budget")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-maccbudget: ini macc_budget_devices: device 'slow-board': "
                                 "macc_budget.yaml:6: devices.slow-board.memory_bandwidth: *"])


TORCH_MODEL = '''
import pytest
from torch import nn


@pytest.mark.macc_budget("net", inputs=[(1, 8, 16, 16)])
def test_net():
    return nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.ReLU())
'''


@pytest.mark.slow
@pytest.mark.parametrize("xdist_args", [()], indirect=True)
def test_cached_measurements_carry_estimates_and_a_changed_profile_is_estimated_again(board_project: Project) -> None:
    pytest.importorskip("torch")
    board_project.add_test("test_net.py", TORCH_MODEL)
    cache_on = ("-p", "cacheprovider")
    board_project.record(*cache_on)
    recorded = figures(board_project)
    again = board_project.run(*cache_on, "--macc-budget")
    assert again.ret == pytest.ExitCode.OK, again.stdout.str()
    again.stdout.fnmatch_lines(["*measurement cache: 1 of 1 torch model unchanged*"])
    assert "slow-board" in again.stdout.str().split("estimated on devices")[1]
    board_project.edit_budget("memory_bandwidth: 100 MB/s", "memory_bandwidth: 50 MB/s")
    slower = board_project.run(*cache_on, "--macc-budget")
    assert slower.ret == pytest.ExitCode.TESTS_FAILED
    slower.stdout.fnmatch_lines(["*latency_ms on slow-board * > budget * (+*, tolerance 0%); MACs unchanged*",
                                 "*measurement cache: 0 of 1 torch model unchanged*"])
    assert recorded["latency_ms"] > 0
