"""The nine model-zoo graphs that ship inside the onnx wheel (onnx/backend/test/data/light).

They are weightless (every weight is a ConstantOfShape output fed by an int64 shape
initializer), IR 3, opset 9, input 1x3x224x224, and a few hundred KB in total, so they profile
in milliseconds and need no download.

For each graph:
1. it profiles with no unknown op and coverage 1.0;
2. its Conv/Gemm/MatMul MACs equal those of an independent counter written here (onnx shape
   inference + closed-form formulas, no engine code), node by node, and the field-notes numbers;
3. its parameters equal an independent count of the weight tensors, and, where the
   architecture is known, a closed form from the architecture's layer table;
4. its totals (MACs, FLOPs, params, peak activation bytes) are pinned as integer literals.

The FLOPs and peak-memory pins encode the counting contract as the engine implements it
(ReLU 1/element, pooling window x output, LRN 9/element, Softmax 5/element, BatchNorm folded
into a preceding Conv, Caffe2 "scale" Mul/Add pairs counted 1/element each). A change to one
of those rules moves these pins: update them deliberately, with the reason in the commit.
docs/counting.md shows the same numbers beside the papers' figures.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest
from onnx import helper, numpy_helper

from pytest_maccbudget import profile_model
from pytest_maccbudget.engine.results import Profile

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


@dataclass(frozen=True)
class Pin:
    macs: int
    flops: int
    params: int
    peak_activation_bytes: int


# Engine totals at batch 1 (the graphs' own input shape), float32 weights and activations.
PINS: dict[str, Pin] = {
    "bvlc_alexnet": Pin(macs=654_560_384, flops=1_314_810_120, params=60_965_224, peak_activation_bytes=2_239_488),
    "densenet121": Pin(macs=2_834_161_664, flops=5_732_084_480, params=8_146_152, peak_activation_bytes=8_830_976),
    "inception_v1": Pin(macs=1_431_556_352, flops=2_884_500_760, params=6_998_552, peak_activation_bytes=6_422_528),
    "inception_v2": Pin(macs=2_018_851_840, flops=4_057_314_952, params=11_234_792, peak_activation_bytes=6_422_528),
    "resnet50": Pin(macs=4_089_184_256, flops=8_184_294_280, params=25_610_152, peak_activation_bytes=9_633_792),
    "shufflenet": Pin(macs=124_664_528, flops=250_799_352, params=1_420_152, peak_activation_bytes=3_110_912),
    "squeezenet": Pin(macs=349_151_936, flops=704_038_808, params=1_235_496, peak_activation_bytes=6_308_352),
    "vgg19": Pin(macs=19_632_062_464, flops=39_285_111_688, params=143_667_240, peak_activation_bytes=25_690_112),
    "zfnet512": Pin(macs=1_481_727_008, flops=2_979_616_008, params=87_250_536, peak_activation_bytes=9_124_608),
}
NAMES = sorted(PINS)

# Independent Conv/Gemm/MatMul MAC counts recorded in /work/shared/field-notes.md.
FIELD_NOTES_MACS = {
    "resnet50": 4_089_184_256,
    "vgg19": 19_632_062_464,
    "squeezenet": 349_151_936,
    "inception_v1": 1_431_556_352,
    "densenet121": 2_834_161_664,
}

DOT_OPS = ("Conv", "Gemm", "MatMul")


def _path(name: str) -> Path:
    return LIGHT / f"light_{name}.onnx"


@functools.lru_cache(maxsize=None)
def _model(name: str) -> onnx.ModelProto:
    return onnx.load(str(_path(name)))


@functools.lru_cache(maxsize=None)
def _profile(name: str) -> Profile:
    return profile_model(_path(name))


def _layer_name(node: onnx.NodeProto) -> str:
    return node.name or node.output[0]


# --- the independent counter (onnx shape inference + closed forms; no engine code) ----------


def _inferred_shapes(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, tuple[int, ...]]]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes: dict[str, tuple[int, ...]] = {}
    for info in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        tensor_type = info.type.tensor_type
        if tensor_type.HasField("shape"):
            shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
    for initializer in inferred.graph.initializer:
        shapes[initializer.name] = tuple(initializer.dims)
    return inferred, shapes


def _numel(shapes: dict[str, tuple[int, ...]], name: str) -> int:
    dims = shapes[name]
    assert all(d > 0 for d in dims), f"{name} has an unresolved shape {dims}"
    return math.prod(dims)


def independent_dot_macs(model: onnx.ModelProto) -> dict[str, int]:
    """MACs of every Conv, Gemm and MatMul node, keyed by node name.

    Conv:   numel(Y) x (Cin/g) x prod(kernel)   with W = [Cout, Cin/g, k...]
    Gemm:   numel(Y) x K                        K = A.shape[0] if transA else A.shape[1]
    MatMul: numel(Y) x A.shape[-1]
    """
    inferred, shapes = _inferred_shapes(model)
    macs: dict[str, int] = {}
    for node in inferred.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        outputs = _numel(shapes, node.output[0]) if node.op_type in DOT_OPS else 0
        if node.op_type == "Conv":
            w = shapes[node.input[1]]
            macs[_layer_name(node)] = outputs * math.prod(w[1:])
        elif node.op_type == "Gemm":
            a = shapes[node.input[0]]
            macs[_layer_name(node)] = outputs * (a[0] if attrs.get("transA", 0) else a[1])
        elif node.op_type == "MatMul":
            macs[_layer_name(node)] = outputs * shapes[node.input[0]][-1]
    return macs


def independent_flops(model: onnx.ModelProto) -> int:
    """Total FLOPs by the contract's per-op rules (counting-rules.md and docs/counting.md), for the
    ops these nine graphs use. `out` = output elements.

    Conv, Gemm       2 x MACs - out, + out with a bias (Gemm's C; alpha = beta = 1 here)
    Relu             out
    LRN              (size + 4) x out: square, size - 1 window adds, scale, bias, pow, divide
    Max/AveragePool  out x window
    GlobalAvgPool    input elements
    Softmax          5 x out: max, subtract, exp, sum, divide
    Sum of k inputs  (k - 1) x out
    BatchNorm        0 when folded: its input comes from a Conv/Gemm that feeds nothing else,
                     or its output feeds only a Conv (as that Conv's data input); else 2 x out
    Mul, Add         1 x out (a Caffe2 "scale" pair folds only directly after a Conv/Gemm or
                     directly before a Conv, which never happens in these graphs)
    Dropout, Reshape, Concat, Transpose, and constant subgraphs: 0
    """
    inferred, shapes = _inferred_shapes(model)
    dot = independent_dot_macs(model)
    producer = {output: node for node in inferred.graph.node for output in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in inferred.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {i.name for i in inferred.graph.initializer}
    total = 0
    for node in inferred.graph.node:
        if all(name in constants for name in node.input):  # ConstantOfShape, Unsqueeze of weights
            constants.update(node.output)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        out = _numel(shapes, node.output[0])
        op = node.op_type
        if op in ("Conv", "Gemm"):
            has_bias = len(node.input) > 2 and bool(node.input[2])
            total += 2 * dot[_layer_name(node)] - out + (out if has_bias else 0)
        elif op == "Relu":
            total += out
        elif op == "LRN":
            total += (attrs["size"] + 4) * out
        elif op in ("MaxPool", "AveragePool"):
            total += out * math.prod(attrs["kernel_shape"])
        elif op == "GlobalAveragePool":
            total += _numel(shapes, node.input[0])
        elif op == "Softmax":
            total += 5 * out
        elif op == "Sum":
            total += (len(node.input) - 1) * out
        elif op == "BatchNormalization":
            source = producer.get(node.input[0])
            after_dot = source is not None and source.op_type in ("Conv", "Gemm") and len(consumers[node.input[0]]) == 1
            readers = consumers.get(node.output[0], [])
            before_conv = len(readers) == 1 and readers[0].op_type == "Conv" and readers[0].input[0] == node.output[0]
            total += 0 if (after_dot or before_conv) else 2 * out
        elif op in ("Mul", "Add"):
            total += out
        else:
            assert op in ("Dropout", "Reshape", "Concat", "Transpose"), op
    return total


def independent_param_count(model: onnx.ModelProto) -> int:
    """Elements of every weight tensor a node reads. Most weights are
    ConstantOfShape(shape initializer): their size is the product of that initializer's values.
    Some are stored as float initializers (ResNet-50 keeps 29 BatchNorm vectors of conv1 and
    res2 that way) and count by their dims. ResNet-50 and ZFNet-512 also carry a 1x1 float
    initializer (`gpu_0/imagenet1k_blobs_queue_..._0`) that no node reads: not a weight of any
    layer, so not a parameter under the contract."""
    initializers = {i.name: i for i in model.graph.initializer}
    read = {name for node in model.graph.node for name in node.input}
    total = 0
    for node in model.graph.node:
        if node.op_type == "ConstantOfShape":
            total += int(math.prod(numpy_helper.to_array(initializers[node.input[0]]).tolist()))
    total += sum(math.prod(i.dims) for i in model.graph.initializer
                 if i.data_type == onnx.TensorProto.FLOAT and i.name in read)
    return total


# --- architecture closed forms (comments give the source of each layer table) ---------------


def _conv(cin: int, cout: int, k: int, bias: bool = True, groups: int = 1) -> int:
    return cout * (cin // groups) * k * k + (cout if bias else 0)


def _fc(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs


def alexnet_bvlc_params() -> int:
    """BVLC reference AlexNet (Caffe): conv2, conv4, conv5 keep the paper's two-GPU split as
    group=2; fc6 sees 256 x 6 x 6. The well-known 60,965,224."""
    return (_conv(3, 96, 11) + _conv(96, 256, 5, groups=2) + _conv(256, 384, 3) + _conv(384, 384, 3, groups=2)
            + _conv(384, 256, 3, groups=2) + _fc(9216, 4096) + _fc(4096, 4096) + _fc(4096, 1000))


def vgg19_params() -> int:
    """VGG configuration E: sixteen 3x3 convs with bias, then 25088 -> 4096 -> 4096 -> 1000."""
    widths = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
    total, cin = 0, 3
    for width in widths:
        total, cin = total + _conv(cin, width, 3), width
    return total + _fc(25088, 4096) + _fc(4096, 4096) + _fc(4096, 1000)


def resnet50_params() -> tuple[int, int]:
    """(learnable params, BatchNorm channels) of ResNet-50: bias-free convs, a BN (gamma, beta)
    after each, bottleneck widths 64/128/256/512 x expansion 4, blocks 3/4/6/3, fc 2048 -> 1000."""
    convs, bn_channels, cin = _conv(3, 64, 7, bias=False), 64, 64
    for width, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3)):
        for block in range(blocks):
            convs += _conv(cin, width, 1, False) + _conv(width, width, 3, False) + _conv(width, 4 * width, 1, False)
            bn_channels += 6 * width
            if block == 0:  # projection shortcut
                convs += _conv(cin, 4 * width, 1, False)
                bn_channels += 4 * width
            cin = 4 * width
    return convs + 2 * bn_channels + _fc(2048, 1000), bn_channels


def squeezenet11_params() -> int:
    """SqueezeNet v1.1 (conv1 3x3/2 with 64 filters; v1.0 has 7x7/2 with 96): eight fire
    modules (squeeze 1x1, expand 1x1 + 3x3), then conv10 1x1 to 1000 classes, all with bias."""
    fires = [(64, 16, 64), (128, 16, 64), (128, 32, 128), (256, 32, 128),
             (256, 48, 192), (384, 48, 192), (384, 64, 256), (512, 64, 256)]
    return (_conv(3, 64, 3) + sum(_conv(c, s, 1) + _conv(s, e, 1) + _conv(s, e, 3) for c, s, e in fires)
            + _conv(512, 1000, 1))


def densenet121_params() -> tuple[int, int]:
    """(learnable params, BatchNorm channels) of DenseNet-121: growth 32, bottleneck 4 x 32,
    blocks 6/12/24/16, transitions halve the channels, bias-free convs, fc 1024 -> 1000."""
    convs, bn_channels, channels = _conv(3, 64, 7, bias=False), 64, 64
    for index, layers in enumerate((6, 12, 24, 16)):
        for _ in range(layers):
            convs += _conv(channels, 128, 1, False) + _conv(128, 32, 3, False)
            bn_channels += channels + 128
            channels += 32
        if index < 3:
            convs += _conv(channels, channels // 2, 1, False)
            bn_channels += channels
            channels //= 2
    bn_channels += channels  # the final norm
    return convs + 2 * bn_channels + _fc(1024, 1000), bn_channels


def googlenet_params() -> int:
    """GoogLeNet (Inception v1) per the paper's Table 1 widths, without the two auxiliary
    classifiers (not part of the inference graph); every conv has a bias."""
    modules = [  # in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
        (192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64),
        (480, 192, 96, 208, 16, 48, 64), (512, 160, 112, 224, 24, 64, 64),
        (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
        (528, 256, 160, 320, 32, 128, 128), (832, 256, 160, 320, 32, 128, 128),
        (832, 384, 192, 384, 48, 128, 128),
    ]
    total = _conv(3, 64, 7) + _conv(64, 64, 1) + _conv(64, 192, 3)
    for cin, c1, r3, c3, r5, c5, proj in modules:
        total += _conv(cin, c1, 1) + _conv(cin, r3, 1) + _conv(r3, c3, 3) + _conv(cin, r5, 1) + _conv(r5, c5, 5) + _conv(cin, proj, 1)
    return total + _fc(1024, 1000)


def zfnet512_params() -> int:
    """ZFNet-512 as this graph has it: the ZF paper's 7x7/2 and 5x5/2 first convs with
    conv3-5 widened to 512, then 18432 -> 4096 -> 1024 -> 1000."""
    return (_conv(3, 96, 7) + _conv(96, 256, 5) + _conv(256, 512, 3) + _conv(512, 512, 3) + _conv(512, 512, 3)
            + _fc(18432, 4096) + _fc(4096, 1024) + _fc(1024, 1000))


# --- tests ---------------------------------------------------------------------------------


def test_the_nine_graphs_are_there() -> None:
    """A new onnx release that adds, drops or renames a light graph shows up here first."""
    assert sorted(p.name for p in LIGHT.glob("*.onnx")) == [f"light_{name}.onnx" for name in NAMES]


@pytest.mark.parametrize("name", NAMES)
def test_profiles_completely(name: str) -> None:
    profile = _profile(name)
    assert profile.unknown == ()
    assert not profile.partial
    assert profile.coverage == 1.0
    assert profile.notes == ()
    assert profile.opset == 9
    assert list(profile.inputs.values()) == [(1, 3, 224, 224)]
    assert all(layer.counted for layer in profile.layers)


@pytest.mark.parametrize("name", NAMES)
def test_dot_macs_match_the_independent_counter(name: str) -> None:
    profile = _profile(name)
    independent = independent_dot_macs(_model(name))
    engine = {layer.name: layer.macs for layer in profile.layers if layer.op_type in DOT_OPS}
    assert engine == independent  # node by node
    # only dot-product layers carry MACs, so the total is their sum
    assert profile.totals.macs == sum(independent.values())
    assert all(layer.macs in (0, None) for layer in profile.layers if layer.op_type not in DOT_OPS)
    if name in FIELD_NOTES_MACS:
        assert profile.totals.macs == FIELD_NOTES_MACS[name]


@pytest.mark.parametrize("name", NAMES)
def test_flops_match_the_contract_rules(name: str) -> None:
    assert _profile(name).totals.flops == independent_flops(_model(name))


@pytest.mark.parametrize("name", NAMES)
def test_params_match_an_independent_count(name: str) -> None:
    profile = _profile(name)
    assert profile.totals.params == independent_param_count(_model(name))
    assert profile.totals.param_bytes == 4 * profile.totals.params  # every weight is float32
    assert sum(layer.params for layer in profile.layers) == profile.totals.params


def test_params_match_the_architectures() -> None:
    params = {name: _profile(name).totals.params for name in NAMES}
    # Graphs without BatchNorm: the zoo graph holds exactly the architecture's weights and biases.
    assert params["bvlc_alexnet"] == alexnet_bvlc_params() == 60_965_224
    assert params["vgg19"] == vgg19_params() == 143_667_240  # the paper's "144 M" (config E)
    assert params["squeezenet"] == squeezenet11_params() == 1_235_496  # v1.1; v1.0 is 1,248,424
    assert params["inception_v1"] == googlenet_params() == 6_998_552
    assert params["zfnet512"] == zfnet512_params() == 87_250_536
    # ResNet-50: 25,557,032 learnable (torchvision's count) + running mean and variance of
    # its 53 BatchNorms (26,560 channels x 2 = 53,120): inference constants are weights too.
    learnable, bn_channels = resnet50_params()
    assert (learnable, bn_channels) == (25_557_032, 26_560)
    assert params["resnet50"] == learnable + 2 * bn_channels == 25_610_152
    # DenseNet-121, Caffe2 layout: each BN node holds scale, bias, mean, var (4 per channel)
    # and a following Mul/Add pair holds the real gamma/beta (2 more): 6 per channel where
    # torchvision's 7,978,856 learnable count has 2.
    learnable, bn_channels = densenet121_params()
    assert (learnable, bn_channels) == (7_978_856, 41_824)
    assert params["densenet121"] == learnable + 4 * bn_channels == 8_146_152


def test_caffe2_batchnorm_layout_holds_six_vectors_per_channel() -> None:
    """Inception v2 and DenseNet-121: every BatchNormalization node is followed by a Mul and
    an Add whose constants have one value per channel, so BN nodes + pairs hold 6 per channel."""
    for name in ("inception_v2", "densenet121"):
        by_op: dict[str, int] = {}
        for layer in _profile(name).layers:
            by_op[layer.op_type] = by_op.get(layer.op_type, 0) + layer.params
        assert by_op["BatchNormalization"] == 4 * by_op["Mul"] == 4 * by_op["Add"]


@pytest.mark.parametrize("name", NAMES)
def test_pinned_totals(name: str) -> None:
    totals = _profile(name).totals
    pin = PINS[name]
    assert (totals.macs, totals.flops, totals.params, totals.peak_activation_bytes) == (
        pin.macs, pin.flops, pin.params, pin.peak_activation_bytes)


@pytest.mark.parametrize("name", NAMES)
def test_peak_activation_is_plausible(name: str) -> None:
    """Not a second liveness model, only bounds: the peak holds at least the largest single
    output buffer plus the graph input, and at most every activation at once."""
    profile = _profile(name)
    peak = profile.totals.peak_activation_bytes
    largest_output = max(layer.output_bytes or 0 for layer in profile.runtime_layers)
    assert largest_output <= peak <= profile.totals.activation_bytes + 3 * 224 * 224 * 4


def test_alexnet_at_caffe_227_crop() -> None:
    """The BVLC model was trained on 227x227 crops (conv1 55x55); the graph declares 224
    (conv1 54x54). At 227 the same graph gives the 724 M MACs usually quoted for AlexNet."""
    profile = profile_model(_path("bvlc_alexnet"), inputs={"data_0": [1, 3, 227, 227]})
    assert profile.unknown == ()
    assert profile.totals.macs == 724_406_816
    assert profile.totals.params == 60_965_224


def test_resnet50_v1_layout_gives_the_paper_number() -> None:
    """This graph is the v1.5 layout (stride 2 on the 3x3 conv of the first block of stages
    2-4). Moving the stride back to the preceding 1x1 conv (the paper's v1 layout) removes
    three times 77,070,336 MACs: 3,857,973,248, the paper's "3.8 x 10^9 FLOPs" (multiply-adds)."""
    model = onnx.ModelProto()
    model.CopyFrom(_model("resnet50"))
    producer = {output: node for node in model.graph.node for output in node.output}
    moved = 0
    for node in model.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Conv" and list(attrs["strides"].ints) == [2, 2] and list(attrs["kernel_shape"].ints) == [3, 3]:
            previous = producer[node.input[0]]
            while previous.op_type != "Conv":  # back through ReLU and BatchNorm
                previous = producer[previous.input[0]]
            attrs["strides"].ints[:] = [1, 1]
            {a.name: a for a in previous.attribute}["strides"].ints[:] = [2, 2]
            moved += 1
    assert moved == 3
    v1 = profile_model(model).totals.macs
    assert v1 == sum(independent_dot_macs(model).values()) == 3_857_973_248
    assert _profile("resnet50").totals.macs - v1 == 3 * 77_070_336


def test_inception_v1_on_the_papers_grid() -> None:
    """The graph pools with floor rounding (55/27/13/6 grids, opset 9 has no ceil_mode); Caffe
    and the paper's Table 1 use 56/28/14/7. Padding the stride-2 max pools by one at the end
    gives the paper's grid and 1.58 G MACs (the paper's budget: "1.5 billion multiply-adds")."""
    model = onnx.ModelProto()
    model.CopyFrom(_model("inception_v1"))
    for node in model.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "MaxPool" and list(attrs["strides"].ints) == [2, 2]:
            attrs["pads"].ints[:] = [0, 0, 1, 1]
        elif node.op_type == "AveragePool":  # 7x7 window on a 7x7 grid: no padding needed
            attrs["pads"].ints[:] = [0, 0, 0, 0]
    profile = profile_model(model)
    assert profile.unknown == ()
    assert profile.totals.macs == sum(independent_dot_macs(model).values()) == 1_582_671_872
