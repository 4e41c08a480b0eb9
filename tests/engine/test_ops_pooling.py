"""Pooling family: closed-form FLOPs on one-node graphs."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

from pytest_maccbudget.engine.registry import REGISTRY
from pytest_maccbudget.engine.types import UnresolvedShape
from tests.engine.onnx_build import node_cost


def test_article_max_pool_2x2_stride_2() -> None:
    # The article: 2x2/2 max pool on 112x112x128 = 1,605,632 (= C x Hin x Win when window = stride)
    cost = node_cost("MaxPool", {"x": [1, 128, 112, 112]}, attrs={"kernel_shape": [2, 2], "strides": [2, 2]})
    assert cost.macs == 0
    assert cost.flops == 1_605_632
    assert cost.flops == 128 * 56 * 56 * 2 * 2


def test_max_pool_batch_and_overlapping_window() -> None:
    # 3x3/2, pad 1 on 2x64x112x112 -> 56x56
    cost = node_cost("MaxPool", {"x": [2, 64, 112, 112]},
                     attrs={"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]})
    assert cost.flops == 2 * 64 * 56 * 56 * 3 * 3


def test_max_pool_ceil_mode_enters_through_output_shape() -> None:
    # 7x7, 2x2/2, ceil_mode -> 4x4 (floor would give 3x3)
    cost = node_cost("MaxPool", {"x": [1, 3, 7, 7]}, attrs={"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1})
    assert cost.flops == 3 * 4 * 4 * 2 * 2


def test_max_pool_dilation_enters_through_output_shape() -> None:
    # kernel 2, dilation 2 spans 3 cells: 7 -> 5; still 4 taps per output
    cost = node_cost("MaxPool", {"x": [1, 3, 7, 7]}, attrs={"kernel_shape": [2, 2], "dilations": [2, 2]})
    assert cost.flops == 3 * 5 * 5 * 2 * 2


def test_max_pool_with_indices_output() -> None:
    cost = node_cost("MaxPool", {"x": [1, 2, 4, 4]}, attrs={"kernel_shape": [2, 2], "strides": [2, 2]}, outputs=("y", "idx"))
    assert cost.flops == 2 * 2 * 2 * 2 * 2


def test_max_pool_1d() -> None:
    cost = node_cost("MaxPool", {"x": [1, 4, 20]}, attrs={"kernel_shape": [3], "strides": [1]})
    assert cost.flops == 4 * 18 * 3


def test_average_pool_3d() -> None:
    cost = node_cost("AveragePool", {"x": [1, 3, 8, 8, 8]}, attrs={"kernel_shape": [2, 2, 2], "strides": [2, 2, 2]})
    assert cost.flops == 3 * 4 * 4 * 4 * 8


def test_average_pool_count_include_pad() -> None:
    cost = node_cost("AveragePool", {"x": [1, 3, 10, 10]},
                     attrs={"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1})
    assert cost.flops == 3 * 10 * 10 * 9


def test_lp_pool() -> None:
    cost = node_cost("LpPool", {"x": [1, 2, 6, 6]}, attrs={"kernel_shape": [2, 2], "strides": [2, 2], "p": 2})
    assert cost.flops == 3 * (2 * 3 * 3 * 4)


@pytest.mark.parametrize("op_type", ["GlobalMaxPool", "GlobalAveragePool"])
def test_global_pool(op_type: str) -> None:
    cost = node_cost(op_type, {"x": [2, 512, 7, 7]})
    assert cost.macs == 0
    assert cost.flops == 2 * 512 * 7 * 7


def test_global_average_pool_3d() -> None:
    assert node_cost("GlobalAveragePool", {"x": [1, 16, 4, 5, 6]}).flops == 16 * 4 * 5 * 6


def test_global_lp_pool() -> None:
    assert node_cost("GlobalLpPool", {"x": [1, 8, 5, 5]}, attrs={"p": 2}).flops == 3 * 8 * 5 * 5


def test_max_roi_pool_constant_rois() -> None:
    # RoI 1: corners (0,0)-(7,7) -> 8x8 cells, 2x2 bins of 4x4; RoI 2: (2,2)-(4,4) -> 3x3 cells,
    # bins rows [0,2) [1,3) -> 2 + 2, cols the same: (2 + 2) * (2 + 2) = 16 cells; 3 channels.
    rois = np.array([[0, 0, 0, 7, 7], [0, 2, 2, 4, 4]], dtype=np.float32)
    cost = node_cost("MaxRoiPool", {"x": [1, 3, 16, 16], "rois": rois}, attrs={"pooled_shape": [2, 2]})
    assert cost.flops == 3 * (64 + 16)


def test_max_roi_pool_spatial_scale_and_clipping() -> None:
    # scale 0.5: (0,0)-(30,30) -> (0,0)-(15,15) = 16x16 cells on an 8x8 map; bins of 8 clipped to 8 and 0
    rois = np.array([[0, 0, 0, 30, 30]], dtype=np.float32)
    cost = node_cost("MaxRoiPool", {"x": [1, 1, 8, 8], "rois": rois}, attrs={"pooled_shape": [2, 2], "spatial_scale": 0.5})
    assert cost.flops == 1 * (8 + 0) * (8 + 0)


def test_max_roi_pool_runtime_rois_are_unresolved() -> None:
    with pytest.raises(UnresolvedShape) as info:
        node_cost("MaxRoiPool", {"x": [1, 3, 16, 16], "rois": [4, 5]}, attrs={"pooled_shape": [2, 2]})
    assert info.value.tensor_name == "rois" and info.value.what == "value"


def test_roi_align_fixed_sampling_ratio() -> None:
    # 10 FLOPs per sample (bilinear 9 + reduction 1), 2x2 samples per bin
    cost = node_cost("RoiAlign", {"x": [1, 256, 50, 50], "rois": [100, 4], "bi": ([100], TensorProto.INT64)},
                     attrs={"output_height": 7, "output_width": 7, "sampling_ratio": 2})
    assert cost.flops == 10 * 2 * 2 * 100 * 256 * 7 * 7


def test_roi_align_max_mode() -> None:
    cost = node_cost("RoiAlign", {"x": [1, 4, 20, 20], "rois": [3, 4], "bi": ([3], TensorProto.INT64)},
                     attrs={"output_height": 2, "output_width": 2, "sampling_ratio": 1, "mode": "max"})
    assert cost.flops == 10 * 1 * 3 * 4 * 2 * 2


def test_roi_align_adaptive_sampling_from_constant_rois() -> None:
    # RoI 14 wide, 7 high on a 7x7 output: ceil(7/7) x ceil(14/7) = 2 samples per bin
    rois = np.array([[0, 0, 14, 7]], dtype=np.float32)
    cost = node_cost("RoiAlign", {"x": [1, 3, 16, 16], "rois": rois, "bi": np.array([0], dtype=np.int64)},
                     attrs={"output_height": 7, "output_width": 7})
    assert cost.flops == 10 * 2 * 3 * 7 * 7


def test_roi_align_adaptive_sampling_runtime_rois_are_unresolved() -> None:
    with pytest.raises(UnresolvedShape):
        node_cost("RoiAlign", {"x": [1, 3, 16, 16], "rois": [2, 4], "bi": ([2], TensorProto.INT64)},
                  attrs={"output_height": 7, "output_width": 7, "sampling_ratio": 0})


def test_max_unpool_is_free() -> None:
    cost = node_cost("MaxUnpool", {"x": [1, 3, 4, 4], "i": ([1, 3, 4, 4], TensorProto.INT64)},
                     attrs={"kernel_shape": [2, 2], "strides": [2, 2]})
    assert (cost.macs, cost.flops) == (0, 0)
    assert REGISTRY.lookup("MaxUnpool").free
