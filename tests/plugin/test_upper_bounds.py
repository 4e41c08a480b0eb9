"""A detection model through pytest: what follows a NonMaxSuppression is budgeted as an upper
bound, recorded as such in the budget file, marked in the summary and the reports.

The model (built in code): img [1, 3, 10, 10] -> conv 3x3 (3 -> 8, pad 1) -> 200 boxes and
4 x 200 scores -> NMS keeping at most 5 boxes a class -> the kept boxes [k, 4], k <= 1 x 4 x 5 = 20
-> MatMul [4, W] -> y.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from .conftest import Project

DETNET = '''
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _const(name, value, dtype=np.int64):
    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


def write(path, head_width=8):
    nodes = [
        helper.make_node("Conv", ["img", "w"], ["feat"], name="/backbone/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["feat", "box_shape"], ["boxes"], name="/to_boxes/Reshape"),
        helper.make_node("Reshape", ["feat", "score_shape"], ["scores"], name="/to_scores/Reshape"),
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou"], ["selected"],
                         name="/nms/NonMaxSuppression"),
        helper.make_node("Gather", ["selected", "two"], ["box_index"], name="/box_index/Gather", axis=1),
        helper.make_node("Squeeze", ["boxes", "zero"], ["all_boxes"], name="/all_boxes/Squeeze"),
        helper.make_node("Gather", ["all_boxes", "box_index"], ["kept"], name="/kept/Gather", axis=0),
        helper.make_node("MatMul", ["kept", "head_w"], ["y"], name="/head/MatMul"),
    ]
    inits = [numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "w"),
             numpy_helper.from_array(np.ones((4, head_width), np.float32), "head_w"),
             _const("box_shape", [1, 200, 4]), _const("score_shape", [1, 4, 200]), _const("max_out", [5]),
             _const("iou", [0.5], np.float32), _const("two", 2), _const("zero", [0])]
    graph = helper.make_graph(nodes, "det", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
'''

CONV_MACS = 8 * 10 * 10 * 3 * 3 * 3  # 21,600: exact, before the NMS


def head_macs(width: int) -> int:
    return 20 * 4 * width  # at most 20 kept boxes x 4 coordinates x the head's width


def detector_test(head_width: int = 8) -> str:
    return textwrap.dedent(f"""
        from pathlib import Path

        import pytest
        from detnet import write


        @pytest.mark.macc_budget("detector", model="detector.onnx")
        def test_detector():
            write(Path(__file__).with_name("detector.onnx"), head_width={head_width})
    """)


@pytest.fixture
def detector(project: Project) -> Project:
    project.pytester.makepyfile(detnet=DETNET)
    project.add_test("test_detector.py", detector_test())
    return project


@pytest.mark.parametrize("xdist_args", [()], indirect=True)
def test_an_update_records_which_figures_are_upper_bounds(detector: Project) -> None:
    detector.record()
    entry = detector.budget()["models"]["detector"]
    assert entry["total"]["macs"] == CONV_MACS + head_macs(8)
    assert entry["layers"] == {"backbone": {"macs": CONV_MACS}, "head": {"macs": head_macs(8)}}
    assert entry["upper_bounds"] == {"total": ["macs", "flops", "peak_activation_bytes"], "layers": ["head"]}
    assert "partial" not in entry  # a bound is a figure, not a count left out
    assert "    upper_bounds: {total: [macs, flops, peak_activation_bytes], layers: [head]}\n" in detector.file().read_text(encoding="utf-8")
    result = detector.run("--macc-budget")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["detector  ≤ 22.2 k*ok", "≤: an upper bound *"])


def test_a_wider_head_after_the_nms_fails_as_an_upper_bound(detector: Project, tmp_path: Path) -> None:
    detector.record()
    detector.add_test("test_detector.py", detector_test(head_width=16))
    report = tmp_path / "report.json"
    result = detector.run("--macc-budget", f"--macc-budget-json={report}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*macs (upper bound) 22.9 k > budget 22.2 k (+2.9%, tolerance 0%)*",
        "flops (upper bound) 103 k > budget 102 k (+1.1%, tolerance 0%)",
        "*",
        "layers that changed, largest change first:",
        "layer  budget  measured  change        %",
        "*",
        "head      640  ≤ 1.28 k    +640  +100.0%",
    ])
    assert CONV_MACS + head_macs(16) == 22_880
    measurement = json.loads(report.read_text())["models"][0]["measurement"]
    assert measurement["upper_bounds"] == {"total": ["macs", "flops", "peak_activation_bytes"], "layers": ["head"]}


@pytest.mark.parametrize("xdist_args", [()], indirect=True)
def test_a_hand_edited_upper_bounds_key_is_checked(detector: Project) -> None:
    detector.record()
    detector.edit_budget("upper_bounds: {total: [macs,", "upper_bounds: {total: [latency,")
    result = detector.run("--macc-budget")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*macc_budget.yaml:*: models.detector.upper_bounds.total[[]0[]]: expected one of "
                                 "macs, flops, params, param_bytes, peak_activation_bytes, got 'latency'"])


def test_estimates_on_a_device_from_bounded_figures_are_upper_bounds(detector: Project) -> None:
    detector.ini("macc_budget_devices = github-ubuntu-latest")
    detector.record()
    detector.add_test("test_detector.py", detector_test(head_width=64))
    result = detector.run("--macc-budget")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["latency_ms (upper bound) on github-ubuntu-latest * > budget * (+*, tolerance 0%); "
                                 "MACs +*",
                                 "estimated on devices (roofline of the counted costs):",
                                 "*",
                                 "detector  github-ubuntu-latest  ≤ *  ≤ *"])
