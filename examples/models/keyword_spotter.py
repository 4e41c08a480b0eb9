"""A keyword spotter that reaches this repository as an ONNX file (in a real project it would be
converted from another framework, e.g. with tf2onnx): a DS-CNN (Zhang et al., "Hello Edge", 2017)
on 49x10 MFCC frames, built here with onnx.helper so the file can be regenerated.

    python -m models.keyword_spotter        # rewrites exports/keyword_spotter.onnx (byte-identical)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EXPORT_PATH = Path(__file__).resolve().parent.parent / "exports" / "keyword_spotter.onnx"
FRAMES, COEFFICIENTS = 49, 10
CHANNELS = 32
BLOCKS = 4
KEYWORDS = 12  # ten words, "silence" and "unknown"
OPSET = 17


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(0)

    def weight(self, name: str, shape: tuple[int, ...]) -> str:
        values = self.rng.standard_normal(shape).astype(np.float32) * 0.1
        self.initializers.append(numpy_helper.from_array(values, name))
        return name

    def conv_bn_relu(self, scope: str, x: str, in_channels: int, out_channels: int,
                     kernel: tuple[int, int], stride: tuple[int, int], groups: int = 1) -> str:
        pads = [kernel[0] // 2, kernel[1] // 2, (kernel[0] - 1) // 2, (kernel[1] - 1) // 2]
        w = self.weight(f"{scope}/conv/weight", (out_channels, in_channels // groups, *kernel))
        self.nodes.append(helper.make_node("Conv", [x, w], [f"{scope}/conv"], name=f"{scope}/conv",
                                           kernel_shape=list(kernel), strides=list(stride), pads=pads, group=groups))
        bn = [self.weight(f"{scope}/bn/{p}", (out_channels,)) for p in ("scale", "bias", "mean")]
        var = f"{scope}/bn/var"
        self.initializers.append(numpy_helper.from_array(np.ones(out_channels, np.float32), var))
        self.nodes.append(helper.make_node("BatchNormalization", [f"{scope}/conv", *bn, var], [f"{scope}/bn"],
                                           name=f"{scope}/bn"))
        self.nodes.append(helper.make_node("Relu", [f"{scope}/bn"], [f"{scope}/relu"], name=f"{scope}/relu"))
        return f"{scope}/relu"


def build() -> onnx.ModelProto:
    """The keyword spotter with a symbolic batch dim: input `mfcc` [N, 1, 49, 10], output `logits` [N, 12]."""
    b = _Builder()
    x = b.conv_bn_relu("stem", "mfcc", 1, CHANNELS, kernel=(10, 4), stride=(2, 2))
    for index in range(BLOCKS):
        x = b.conv_bn_relu(f"block{index}/dw", x, CHANNELS, CHANNELS, (3, 3), (1, 1), groups=CHANNELS)
        x = b.conv_bn_relu(f"block{index}/pw", x, CHANNELS, CHANNELS, (1, 1), (1, 1))
    b.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    b.nodes.append(helper.make_node("Flatten", ["pool"], ["features"], name="flatten"))
    w, bias = b.weight("fc/weight", (KEYWORDS, CHANNELS)), b.weight("fc/bias", (KEYWORDS,))
    b.nodes.append(helper.make_node("Gemm", ["features", w, bias], ["logits"], name="fc", transB=1))
    graph = helper.make_graph(
        b.nodes, "keyword_spotter",
        [helper.make_tensor_value_info("mfcc", TensorProto.FLOAT, ["N", 1, FRAMES, COEFFICIENTS])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", KEYWORDS])],
        b.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="examples/models/keyword_spotter.py")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def write(path: Path = EXPORT_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build().SerializeToString())
    return path


if __name__ == "__main__":
    print(f"wrote {write()}")
