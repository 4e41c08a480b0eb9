"""The kind of work a layer does (its op class): a device's efficiency is given per class.

The engine records the class of each layer (`LayerCost.op_class`); for layers without one, the
class follows from the op type here. A conv counts as depthwise when its dot products are as
short as a depthwise kernel's: the counts alone cannot tell a 3x3 depthwise conv from a 1x1 conv
over 9 channels, and both run the same short, poorly vectorised inner loop.
"""
from __future__ import annotations

from typing import Optional

from ..engine.registry import (  # noqa: F401  (the classes, re-exported for the device code)
    ACTIVATION,
    ATTENTION,
    CONTROL_FLOW,
    CONV,
    DEPTHWISE_CONV,
    ELEMENTWISE,
    MATMUL,
    MOVEMENT,
    NORMALIZATION,
    OP_CLASSES,
    OTHER,
    POOLING,
    RECURRENT,
    REDUCTION,
)
from ..engine.results import LayerCost

# The class whose efficiency a class without its own figure borrows: its nearest kind of kernel.
# `default` (a device's catch-all efficiency) comes after the chain ends.
NEAREST_CLASS: dict[str, Optional[str]] = {
    DEPTHWISE_CONV: CONV, CONV: None, MATMUL: CONV, RECURRENT: MATMUL, ATTENTION: MATMUL,
    ACTIVATION: ELEMENTWISE, NORMALIZATION: ELEMENTWISE, REDUCTION: ELEMENTWISE, POOLING: ELEMENTWISE,
    MOVEMENT: ELEMENTWISE, ELEMENTWISE: None, CONTROL_FLOW: None, OTHER: None,
}

# A conv whose dot products hold at most this many terms (a 5x5 depthwise kernel) is classed
# with depthwise convs when the engine does not say.
DEPTHWISE_MAX_DOT_LENGTH = 25

_CONV_OPS = frozenset({"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "FusedConv", "NhwcConv"})
_BY_OP_TYPE: dict[str, str] = {
    **{op: MATMUL for op in ("MatMul", "Gemm", "Einsum", "MatMulInteger", "QLinearMatMul", "FusedMatMul", "FusedGemm",
                             "QGemm", "MatMulNBits", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "AffineGrid")},
    **{op: RECURRENT for op in ("LSTM", "GRU", "RNN", "DynamicQuantizeLSTM")},
    **{op: ATTENTION for op in ("Attention", "MultiHeadAttention", "GroupQueryAttention", "QAttention",
                                "PackedAttention", "PackedMultiHeadAttention", "DecoderMaskedMultiHeadAttention")},
    **{op: POOLING for op in ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool",
                              "GlobalLpPool", "MaxRoiPool", "RoiAlign", "MaxUnpool", "QLinearAveragePool",
                              "QLinearGlobalAveragePool")},
    **{op: NORMALIZATION for op in ("BatchNormalization", "LayerNormalization", "InstanceNormalization",
                                    "GroupNormalization", "RMSNormalization", "SimplifiedLayerNormalization",
                                    "SkipLayerNormalization", "SkipSimplifiedLayerNormalization",
                                    "MeanVarianceNormalization", "LpNormalization", "LRN", "Softmax", "LogSoftmax",
                                    "Hardmax", "BiasSoftmax", "EmbedLayerNormalization")},
    **{op: REDUCTION for op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin",
                                "TopK", "Unique")},
    **{op: ACTIVATION for op in ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu",
                                 "HardSigmoid", "HardSwish", "Softplus", "Softsign", "ThresholdedRelu", "Mish",
                                 "Swish", "FastGelu", "BiasGelu", "QuickGelu", "QLinearSigmoid", "QLinearLeakyRelu")},
    **{op: MOVEMENT for op in ("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Dropout", "Concat",
                               "Gather", "GatherElements", "GatherND", "Split", "Tile", "Expand", "Trilu", "Slice",
                               "Pad", "Compress", "Transpose", "Resize", "Upsample", "GridSample", "Col2Im",
                               "ScatterND", "ScatterElements", "SpaceToDepth", "DepthToSpace", "QLinearConcat",
                               "ReverseSequence")},
    **{op: CONTROL_FLOW for op in ("If", "Loop", "Scan")},
    **{op: OTHER for op in ("Shape", "Size", "Constant", "ConstantOfShape", "Range", "OneHot", "NonZero",
                            "NonMaxSuppression", "Det", "RandomNormal", "RandomUniform", "RandomNormalLike",
                            "RandomUniformLike", "Multinomial", "Bernoulli")},
}


def op_class_of(layer: LayerCost) -> str:
    """The engine's class for the layer when it has one, else the class of its op type;
    ops of no listed kind compute element by element (arithmetic, comparisons, casts)."""
    declared = getattr(layer, "op_class", None)
    if declared in OP_CLASSES:
        return declared
    if layer.op_type in _CONV_OPS:
        return DEPTHWISE_CONV if _short_dot_products(layer) else CONV
    return _BY_OP_TYPE.get(layer.op_type, ELEMENTWISE)


def _short_dot_products(layer: LayerCost) -> bool:
    """True when the conv's MACs per output element (the length of each dot product) are at most
    DEPTHWISE_MAX_DOT_LENGTH; the element count comes from the output bytes and the width of the
    weights' elements. False when either is not known."""
    if not layer.macs or not layer.output_bytes or not layer.params or not layer.param_bytes:
        return False
    element_bytes = layer.param_bytes / layer.params
    output_elements = layer.output_bytes / element_bytes
    return layer.macs / output_elements <= DEPTHWISE_MAX_DOT_LENGTH
