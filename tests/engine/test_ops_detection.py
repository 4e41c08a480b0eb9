"""NonMaxSuppression: a worst-case rule, so its FLOPs and its output are upper bounds."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

from pytest_maccbudget import profile_model
from pytest_maccbudget.engine.ops.detection import nms_flops, nms_pairs
from tests.engine.onnx_build import node_cost, single_node_model

I64 = TensorProto.INT64


def _nms_inputs(max_out: object = np.array([5], np.int64), score_threshold: bool = False) -> dict:
    inputs = {"boxes": [2, 200, 4], "scores": [2, 3, 200], "max_out": max_out, "iou": np.array([0.5], np.float32)}
    if score_threshold:
        inputs["score"] = np.array([0.1], np.float32)
    return inputs


def test_pairs_are_each_kept_box_against_every_box_after_it() -> None:
    assert nms_pairs(boxes=10, kept=10) == 10 * 9 // 2
    assert nms_pairs(boxes=10, kept=1) == 9
    assert nms_pairs(boxes=10, kept=3) == 9 + 8 + 7
    assert nms_pairs(boxes=10, kept=50) == 45  # never more boxes kept than there are


def test_non_max_suppression_worst_case() -> None:
    # per batch: 200 areas x 3; per batch and class: sort 200 x ceil(log2 200) = 200 x 8,
    # IoU pairs 5 x 199 - 10 = 985 of 13 FLOPs
    cost = node_cost("NonMaxSuppression", _nms_inputs())
    per_class = 200 * 8 + 13 * (5 * 199 - 10)
    assert (cost.macs, cost.flops) == (0, 2 * (3 * 200 + 3 * per_class))
    assert cost.bound


def test_score_threshold_and_center_boxes() -> None:
    cost = node_cost("NonMaxSuppression", _nms_inputs(score_threshold=True), attrs={"center_point_box": 1})
    assert cost.flops == nms_flops(2, 3, 200, 5, center=True, score_threshold=True)
    assert cost.flops == 2 * (7 * 200 + 3 * (200 + 200 * 8 + 13 * (5 * 199 - 10)))


def test_without_a_maximum_nothing_is_kept() -> None:
    # max_output_boxes_per_class defaults to 0: no output, no IoU
    cost = node_cost("NonMaxSuppression", {"boxes": [1, 10, 4], "scores": [1, 2, 10]})
    assert cost.flops == 10 * 3 + 2 * (10 * 4)
    profile = profile_model(single_node_model("NonMaxSuppression", {"boxes": [1, 10, 4], "scores": [1, 2, 10]}))
    assert profile.layers[0].output_bytes == 0


@pytest.mark.parametrize("max_out, kept", [(np.array([5], np.int64), 5), (np.array([500], np.int64), 200)])
def test_output_is_at_most_max_per_class_times_classes_times_batch(max_out: np.ndarray, kept: int) -> None:
    profile = profile_model(single_node_model("NonMaxSuppression", _nms_inputs(max_out)))
    nms = profile.layers[0]
    assert nms.output_bytes == 2 * 3 * kept * 3 * 8  # [B x C x kept, 3] int64
    assert set(nms.upper_bounds) == {"flops", "output_bytes", "bytes_written"}
    assert profile.bounded and not profile.partial


def test_a_maximum_computed_at_run_time_is_bounded_by_the_boxes() -> None:
    inputs = {**_nms_inputs(), "max_out": ([1], I64)}
    profile = profile_model(single_node_model("NonMaxSuppression", inputs))
    assert profile.layers[0].output_bytes == 2 * 3 * 200 * 3 * 8
