"""The worked numbers of the counting contract (counting-rules.md, from the source article), on
graphs built here and profiled end to end. Expected values are written out by hand."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget import profile_model

F32 = TensorProto.FLOAT
rng = np.random.default_rng(1)


def _w(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def _model(nodes: Sequence[onnx.NodeProto], inits: Sequence[onnx.TensorProto], x_shape: list[int], output: str) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", [helper.make_tensor_value_info("x", F32, x_shape)],
                              [helper.make_tensor_value_info(output, F32, None)], list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _conv(name: str, x: str, y: str, k: int, stride: int = 1, group: int = 1) -> onnx.NodeProto:
    pad = k // 2
    return helper.make_node("Conv", [x, f"{name}_w"], [y], name=name, kernel_shape=[k, k],
                            strides=[stride, stride], pads=[pad] * 4, group=group)


def _bn(name: str, x: str, y: str, channels: int) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    inits = [_w(f"{name}_{k}", channels) for k in ("s", "b", "m")] + [numpy_helper.from_array(np.ones(channels, np.float32), f"{name}_v")]
    return helper.make_node("BatchNormalization", [x] + [i.name for i in inits], [y], name=name), inits


def test_fully_connected_300_to_100() -> None:
    profile = profile_model(_model([helper.make_node("Gemm", ["x", "fc_w"], ["y"], name="fc", transB=1)],
                                   [_w("fc_w", 100, 300)], [1, 300], "y"))
    assert profile.totals.macs == 30_000
    assert profile.totals.flops == (2 * 300 - 1) * 100
    assert profile.totals.params == 30_000


def test_conv3x3_64_to_128_at_112_stride_1_and_2() -> None:
    for stride, expected in ((1, 924_844_032), (2, 231_211_008)):
        model = _model([_conv("conv", "x", "y", 3, stride)], [_w("conv_w", 128, 64, 3, 3)], [1, 64, 112, 112], "y")
        assert profile_model(model).totals.macs == expected


def test_mobilenet_v1_block() -> None:
    nodes = [_conv("dw", "x", "d", 3, group=64), helper.make_node("Relu", ["d"], ["r"], name="relu"),
             _conv("pw", "r", "y", 1)]
    profile = profile_model(_model(nodes, [_w("dw_w", 64, 1, 3, 3), _w("pw_w", 128, 64, 1, 1)], [1, 64, 112, 112], "y"))
    assert profile.layer("dw").macs == 3 * 3 * 64 * 112 * 112 == 7_225_344
    assert profile.layer("pw").macs == 64 * 112 * 112 * 128 == 102_760_448
    assert profile.totals.macs == 109_985_792


def test_mobilenet_v2_block_with_folded_batchnorms() -> None:
    # expand 1x1 64->384, BN, ReLU6; depthwise 3x3 (384), BN, ReLU6; project 1x1 384->128, BN
    nodes, inits = [], [_w("expand_w", 384, 64, 1, 1), _w("dw_w", 384, 1, 3, 3), _w("project_w", 128, 384, 1, 1)]
    for conv, bn_name, x, channels, relu in (
        (_conv("expand", "x", "e", 1), "bn1", "e", 384, True),
        (_conv("dw", "e6", "d", 3, group=384), "bn2", "d", 384, True),
        (_conv("project", "d6", "p", 1), "bn3", "p", 128, False),
    ):
        bn, bn_inits = _bn(bn_name, x, x + "n", channels)
        nodes += [conv, bn]
        inits += bn_inits
        if relu:
            nodes.append(helper.make_node("Clip", [x + "n", "zero", "six"], [x + "6"], name=f"relu6_{x}"))
    inits += [numpy_helper.from_array(np.array(0, np.float32), "zero"), numpy_helper.from_array(np.array(6, np.float32), "six")]
    profile = profile_model(_model(nodes, inits, [1, 64, 112, 112], "pn"))
    assert profile.totals.macs == (3 * 3 + 128 + 64) * 384 * 112 * 112 == 968_196_096
    assert [profile.layer(n).status for n in ("bn1", "bn2", "bn3")] == ["folded"] * 3


def test_conv_bn_relu_worked_example() -> None:
    # Conv2d(64->128, k3, p1, bias) -> BN -> ReLU on 1x64x56x56: 231,211,008 MACs; BN folded;
    # FLOPs: conv 2*MACs - outputs + outputs (bias) = 462,422,016, ReLU 1 per element = 401,408
    bn, bn_inits = _bn("bn", "c", "n", 128)
    nodes = [helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], name="conv", pads=[1, 1, 1, 1]), bn,
             helper.make_node("Relu", ["n"], ["y"], name="relu")]
    profile = profile_model(_model(nodes, [_w("conv_w", 128, 64, 3, 3), _w("conv_b", 128)] + bn_inits, [1, 64, 56, 56], "y"))
    assert profile.totals.macs == 231_211_008
    assert profile.layer("conv").flops == 2 * 231_211_008 == 462_422_016
    assert profile.layer("relu").flops == 128 * 56 * 56 == 401_408
    assert profile.totals.flops == 462_422_016 + 401_408


def test_max_pool_2x2_on_112x112x128() -> None:
    model = _model([helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])], [], [1, 128, 112, 112], "y")
    assert profile_model(model).totals.flops == 1_605_632


def test_sigmoid_is_four_flops_per_element() -> None:
    model = _model([helper.make_node("Sigmoid", ["x"], ["y"], name="sig")], [], [1, 1000], "y")
    profile = profile_model(model)
    assert (profile.totals.macs, profile.totals.flops) == (0, 4_000)


def test_batch_multiplies_the_counts() -> None:
    model = _model([_conv("conv", "x", "y", 3)], [_w("conv_w", 128, 64, 3, 3)], [4, 64, 112, 112], "y")
    assert profile_model(model).totals.macs == 4 * 924_844_032
