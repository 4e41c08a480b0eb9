"""export.py: inputs= parsing, ONNX pass-through, real torch exports with both exporters, errors,
exporter plugins.

The cross-exporter tests build small models here, export them with the TorchScript and the
dynamo exporter, profile both files with the engine and check that the per-module MACs are the
same under both and equal to the closed forms written out below:

    Conv:   N x Cout x Hout x Wout x (Cin / groups) x kh x kw
    Linear: rows x in_features x out_features        (rows = every leading dim)
    self-attention over S tokens of width d:  3 S d^2 (in_proj) + S^2 d (QK^T) + S^2 d (AV) + S d^2 (out_proj)
"""
from __future__ import annotations

import copy
import importlib.util
import inspect
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from pytest_maccbudget import profile_model
from pytest_maccbudget.export import (
    _WRITTEN_TENSOR_BYTES,
    ACCEPTED_INPUTS,
    DEFAULT_EXPORTER,
    ENTRY_POINT_GROUP,
    EXPORTERS,
    ExportedModel,
    ExportError,
    InputSpec,
    InputSpecError,
    export_model,
    exporter_message,
    has_torchscript_exporter,
    name_dynamo_nodes_by_module,
    parse_inputs,
    recorded_inputs,
    safe_file_stem,
)
from pytest_maccbudget.layers import layer_macs

dynamo = pytest.param("dynamo", marks=pytest.mark.slow)  # ~1-3 s per export
BOTH_EXPORTERS = ["torchscript", dynamo]


# --- parse_inputs: accepted forms -----------------------------------------------------------


def test_constants() -> None:
    assert EXPORTERS == ("torchscript", "dynamo")
    assert DEFAULT_EXPORTER == "torchscript"
    assert ENTRY_POINT_GROUP == "pytest_maccbudget.exporters"


def test_list_of_shapes_takes_forward_names_then_numbered_names() -> None:
    specs = parse_inputs([(1, 3, 8, 8), [1, 10], (2,)], forward_arg_names=("image", "meta"))
    assert specs == [
        InputSpec("image", (1, 3, 8, 8), "float32"),
        InputSpec("meta", (1, 10), "float32"),
        InputSpec("input_2", (2,), "float32"),
    ]
    assert [spec.name for spec in parse_inputs([(1,), (2,)])] == ["input_0", "input_1"]


def test_single_shape_is_one_input() -> None:
    assert parse_inputs((1, 3, 224, 224)) == [InputSpec("input_0", (1, 3, 224, 224), "float32")]
    assert parse_inputs([1, 10], forward_arg_names=["x"]) == [InputSpec("x", (1, 10), "float32")]
    assert parse_inputs(torch.Size([2, 5])) == [InputSpec("input_0", (2, 5), "float32")]


def test_shape_dtype_pairs_with_string_and_torch_dtypes() -> None:
    assert parse_inputs(((1, 128), "int64")) == [InputSpec("input_0", (1, 128), "int64")]
    specs = parse_inputs([((1, 128), torch.int64), ((1, 128), "bool"), ([4], torch.float16), ((), "torch.int32")])
    assert [(spec.shape, spec.dtype) for spec in specs] == [
        ((1, 128), "int64"), ((1, 128), "bool"), ((4,), "float16"), ((), "int32"),
    ]


def test_example_tensors_keep_the_tensor() -> None:
    ids = torch.arange(6).reshape(1, 6)
    image = torch.rand(1, 3, 4, 4, dtype=torch.float16)
    specs = parse_inputs([ids, image])
    assert [(spec.name, spec.shape, spec.dtype) for spec in specs] == [
        ("input_0", (1, 6), "int64"), ("input_1", (1, 3, 4, 4), "float16"),
    ]
    assert specs[0].example is ids and specs[1].example is image
    assert parse_inputs(ids)[0].example is ids  # a single tensor is one input


def test_dict_names_the_inputs_and_takes_every_item_form() -> None:
    mask = torch.ones(1, 6, dtype=torch.bool)
    specs = parse_inputs(
        {"input_ids": ((1, 6), "int64"), "pixel_values": (1, 3, 8, 8), "mask": mask},
        forward_arg_names=("ignored",),
    )
    assert [(spec.name, spec.shape, spec.dtype) for spec in specs] == [
        ("input_ids", (1, 6), "int64"), ("pixel_values", (1, 3, 8, 8), "float32"), ("mask", (1, 6), "bool"),
    ]
    assert specs[2].example is mask


def test_recorded_inputs() -> None:
    specs = parse_inputs({"ids": ((1, 6), "int64"), "x": (1, 3)})
    assert recorded_inputs(specs) == {"ids": [1, 6], "x": [1, 3]}


# --- parse_inputs: rejections ---------------------------------------------------------------


@pytest.mark.parametrize(
    "inputs, message",
    [
        (None, "inputs=None is not a form this plugin knows"),
        ("1x3x224x224", "inputs='1x3x224x224' is not a form this plugin knows"),
        (224, "inputs=224 is not a form this plugin knows"),
        ([], "inputs=[] names no input"),
        ({}, "inputs={} names no input"),
        ((1, -3, 8), "inputs = (1, -3, 8): dimension -3 is not a positive int"),
        ((1, 3.5), "inputs = (1, 3.5): dimension 3.5 is not a positive int"),
        ((1, True), "inputs = (1, True): dimension True is not a positive int"),
        ([(1, 3), (1, 0)], "inputs[1] = (1, 0): dimension 0 is not a positive int"),
        ([(1, 3), 5], "inputs[1] = 5 is not a shape, (shape, dtype) pair or tensor"),
        ([(1, 3), [(1, 2)]], "inputs[1] = [(1, 2)] is not a shape, (shape, dtype) pair or tensor"),
        ({"x": (1, "3")}, "inputs['x'] = (1, '3'): dimension '3' is not a positive int"),
        ({3: (1, 3)}, "inputs key 3 is not an input name (a non-empty str)"),
        ({"": (1, 3)}, "inputs key '' is not an input name (a non-empty str)"),
    ],
)
def test_rejected_forms_name_the_item_and_list_the_accepted_forms(inputs: object, message: str) -> None:
    with pytest.raises(InputSpecError) as info:
        parse_inputs(inputs)
    assert str(info.value) == f"{message}; {ACCEPTED_INPUTS}"


def test_unknown_dtype_lists_the_known_ones() -> None:
    with pytest.raises(InputSpecError) as info:
        parse_inputs([(1, 3), ((1, 128), "int46")])
    assert str(info.value) == (
        "inputs[1]: unknown dtype 'int46'; known dtypes: bool, uint8, int8, int16, int32, int64, "
        "float16, bfloat16, float32, float64, complex64, complex128"
    )


def test_accepted_forms_text() -> None:
    assert ACCEPTED_INPUTS == (
        "inputs= accepts: a shape such as (1, 3, 224, 224); a list of shapes such as "
        "[(1, 3, 224, 224), (1, 10)]; (shape, dtype) pairs such as ((1, 128), \"int64\") or "
        "((1, 128), torch.int64); torch.Tensor examples; or a dict of input name -> any of these"
    )


# --- ONNX files and ModelProtos -------------------------------------------------------------


def _matmul_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [4, 3], [0.5] * 12)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_onnx_path_is_used_as_is(tmp_path: Path) -> None:
    source = tmp_path / "given.onnx"
    onnx.save_model(_matmul_model(), source)
    workdir = tmp_path / "work"
    for given in (source, str(source)):
        exported = export_model(given, None, name="given", workdir=workdir)
        assert exported == ExportedModel(path=source, exporter="onnx", inputs={})
    assert not workdir.exists() or not list(workdir.iterdir())  # no copy


def test_missing_onnx_path(tmp_path: Path) -> None:
    missing = tmp_path / "exports" / "nope.onnx"
    with pytest.raises(ExportError) as info:
        export_model(missing, None, name="seg", workdir=tmp_path)
    assert str(info.value) == f"model 'seg': ONNX file not found: {missing}"


def test_model_proto_is_saved_to_the_workdir(tmp_path: Path) -> None:
    proto = _matmul_model()
    exported = export_model(proto, None, name="my model/v2", workdir=tmp_path / "work")
    assert exported.path == tmp_path / "work" / f"{safe_file_stem('my model/v2')}.onnx"
    assert (exported.exporter, exported.inputs) == ("onnx", {})
    assert onnx.load(exported.path).SerializeToString() == proto.SerializeToString()
    assert profile_model(exported.path).totals.macs == 12


def test_safe_file_stem_keeps_distinct_names_distinct() -> None:
    assert safe_file_stem("resnet50-v1.5") == "resnet50-v1.5"
    assert safe_file_stem("a/b").startswith("a_b-")
    assert len({safe_file_stem("a/b"), safe_file_stem("a_b"), safe_file_stem("a b")}) == 3
    assert safe_file_stem("..").startswith("model-")


def test_unknown_exporter(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export_model(nn.Linear(2, 2), [(1, 2)], name="m", workdir=tmp_path, exporter="jit")
    assert str(info.value) == "model 'm': unknown exporter 'jit'; choose one of: torchscript, dynamo"


# --- torch models: the models of the cross-exporter tests -----------------------------------


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise, 1x1 project; BN + ReLU6."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.residual else y


class TinyMobileNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        block = InvertedResidual(8, 8, 1, 2)
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(inplace=True)),
            block,
            copy.deepcopy(block),  # identical weights: the dynamo exporter merges them into one initializer
            InvertedResidual(8, 16, 2, 2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def conv_macs(n: int, cout: int, hout: int, wout: int, cin: int, groups: int, k: int) -> int:
    return n * cout * hout * wout * (cin // groups) * k * k


def linear_macs(rows: int, fan_in: int, fan_out: int) -> int:
    return rows * fan_in * fan_out


MOBILENET_INPUT = (1, 3, 32, 32)  # stem stride 2 -> 16x16; features.3 stride 2 -> 8x8
MOBILENET_MACS = {
    "features.0.0": conv_macs(1, 8, 16, 16, 3, 1, 3),
    **{
        f"features.{block}.conv.{index}": macs
        for block in (1, 2)
        for index, macs in (
            (0, conv_macs(1, 16, 16, 16, 8, 1, 1)),
            (3, conv_macs(1, 16, 16, 16, 16, 16, 3)),  # depthwise
            (6, conv_macs(1, 8, 16, 16, 16, 1, 1)),
        )
    },
    "features.3.conv.0": conv_macs(1, 16, 16, 16, 8, 1, 1),
    "features.3.conv.3": conv_macs(1, 16, 8, 8, 16, 16, 3),
    "features.3.conv.6": conv_macs(1, 16, 8, 8, 16, 1, 1),
    "classifier": linear_macs(1, 16, 10),
}

D_MODEL, HEADS, FF, TOKENS, LAYERS, CLASSES = 32, 4, 64, 8, 2, 5


class TinyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, FF, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.head = nn.Linear(D_MODEL, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


ATTENTION_MACS = 3 * TOKENS * D_MODEL**2 + 2 * TOKENS**2 * D_MODEL + TOKENS * D_MODEL**2
ENCODER_MACS = {
    **{
        f"encoder.layers.{i}.{module}": macs
        for i in range(LAYERS)
        for module, macs in (
            ("self_attn", ATTENTION_MACS),
            ("linear1", linear_macs(TOKENS, D_MODEL, FF)),
            ("linear2", linear_macs(TOKENS, FF, D_MODEL)),
        )
    },
    "head": linear_macs(TOKENS, D_MODEL, CLASSES),
}


class Containers(nn.Module):
    """Every way torch nests modules: the TorchScript exporter names each differently."""

    def __init__(self) -> None:
        super().__init__()
        self.seq = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4)))
        self.ml = nn.ModuleList([nn.Linear(4, 4), nn.ModuleList([nn.Linear(4, 4)])])
        self.md = nn.ModuleDict({"a": nn.Linear(4, 4)})
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(4, 4))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ml[1][0](self.ml[0](self.seq(x)))
        return self.blocks[0](self.md["a"](x))


CONTAINER_MACS = {key: linear_macs(1, 4, 4) for key in ("seq.0", "seq.1.0", "ml.0", "ml.1.0", "md.a", "blocks.0.0")}

MODELS: dict[str, tuple[Callable[[], nn.Module], Any, dict[str, int]]] = {
    "mobilenet": (TinyMobileNet, [MOBILENET_INPUT], MOBILENET_MACS),
    "encoder": (TinyEncoder, [(1, TOKENS, D_MODEL)], ENCODER_MACS),
    "containers": (Containers, (1, 4), CONTAINER_MACS),
}


def test_closed_forms() -> None:
    assert MOBILENET_MACS["features.0.0"] == 55_296
    assert MOBILENET_MACS["features.1.conv.3"] == 36_864
    assert ATTENTION_MACS == 36_864
    assert ENCODER_MACS["head"] == 1_280


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], tuple[ExportedModel, dict[str, Any]]]:
    """(model, exporter) -> (ExportedModel, per-module MACs); each pair exported once."""
    workdir = tmp_path_factory.mktemp("exports")
    cache: dict[tuple[str, str], tuple[ExportedModel, dict[str, Any]]] = {}

    def export(model_name: str, exporter: str) -> tuple[ExportedModel, dict[str, Any]]:
        if (model_name, exporter) not in cache:
            build, inputs, _ = MODELS[model_name]
            torch.manual_seed(0)
            result = export_model(build(), inputs, name=f"{model_name}-{exporter}", workdir=workdir, exporter=exporter)
            profile = profile_model(result.path)
            cache[model_name, exporter] = (result, layer_macs([(layer.name, layer.macs) for layer in profile.layers]))
        return cache[model_name, exporter]

    return export


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("exporter", BOTH_EXPORTERS)
def test_layer_keys_are_module_paths_with_the_closed_form_macs(exported: Any, model_name: str, exporter: str) -> None:
    result, macs = exported(model_name, exporter)
    assert result.exporter == exporter
    assert result.path.is_file()
    assert macs == MODELS[model_name][2]


@pytest.mark.slow
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_both_exporters_give_the_same_layers(exported: Any, model_name: str) -> None:
    torchscript, torchscript_macs = exported(model_name, "torchscript")
    dynamo_result, dynamo_macs = exported(model_name, "dynamo")
    assert torchscript_macs == dynamo_macs
    assert torchscript.inputs == dynamo_result.inputs
    assert profile_model(torchscript.path).totals.macs == profile_model(dynamo_result.path).totals.macs


def test_recorded_inputs_use_forward_names(exported: Any) -> None:
    result, _ = exported("mobilenet", "torchscript")
    assert result.inputs == {"x": [1, 3, 32, 32]}


class WideHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(8, 8)
        self.head = nn.Linear(8, 4096)  # 128 KiB of weights: above what the engine reads the bytes of

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@pytest.mark.slow
def test_dynamo_file_has_every_weights_dims_but_only_small_weights_bytes(tmp_path: Path) -> None:
    result = export_model(WideHead(), [(1, 8)], name="wide", workdir=tmp_path, exporter="dynamo")
    assert [p.name for p in tmp_path.iterdir()] == ["wide.onnx"]  # no weight file next to it
    weights = {init.name: init for init in onnx.load(result.path, load_external_data=False).graph.initializer}
    assert weights["body.weight"].raw_data and list(weights["body.weight"].dims) == [8, 8]
    head = weights["head.weight"]
    assert list(head.dims) == [4096, 8] and not head.raw_data
    assert head.data_location == TensorProto.EXTERNAL
    assert {entry.key: entry.value for entry in head.external_data}["location"] == "wide.weights-not-written"
    assert profile_model(result.path).totals.param_bytes == 4 * (8 * 8 + 8 + 4096 * 8 + 4096)


def test_weights_the_engine_reads_are_written() -> None:
    from pytest_maccbudget.engine import loader

    assert _WRITTEN_TENSOR_BYTES >= max(loader.SMALL_TENSOR_BYTES, loader.SMALL_INT_TENSOR_BYTES)


# --- named inputs, dtypes, example tensors --------------------------------------------------


class TokenModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.fc = nn.Linear(8, 2)

    def forward(self, input_ids: torch.Tensor, token_type_ids: Any = None, attention_mask: Any = None) -> torch.Tensor:
        x = self.embed(input_ids)
        if attention_mask is not None:
            x = x * attention_mask.unsqueeze(-1)
        return self.fc(x)


class RecordingTokenModel(TokenModel):
    """Keeps the tensors forward was called with (TorchScript tracing calls it with the real ones)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []

    def forward(self, input_ids: torch.Tensor, token_type_ids: Any = None, attention_mask: Any = None) -> torch.Tensor:
        self.seen = [input_ids, attention_mask]
        return super().forward(input_ids, token_type_ids, attention_mask)


def _graph_inputs(path: Path) -> list[tuple[str, int, list[int]]]:
    graph = onnx.load(path).graph
    return [(i.name, i.type.tensor_type.elem_type, [d.dim_value for d in i.type.tensor_type.shape.dim]) for i in graph.input]


@pytest.mark.parametrize("exporter", BOTH_EXPORTERS)
def test_dict_inputs_reach_the_file_by_name_and_dtype(tmp_path: Path, exporter: str) -> None:
    # given in the opposite order to forward's signature
    inputs = {"attention_mask": (1, 6), "input_ids": ((1, 6), "int64")}
    result = export_model(TokenModel(), inputs, name="tokens", workdir=tmp_path, exporter=exporter)
    assert list(result.inputs.items()) == [("input_ids", [1, 6]), ("attention_mask", [1, 6])]
    assert sorted(_graph_inputs(result.path)) == [
        ("attention_mask", TensorProto.FLOAT, [1, 6]), ("input_ids", TensorProto.INT64, [1, 6]),
    ]


def test_default_tensors_are_zeros_for_integers_and_ones_for_floats(tmp_path: Path) -> None:
    model = RecordingTokenModel()
    export_model(model, {"input_ids": ((1, 6), "int64"), "attention_mask": (1, 6)}, name="t", workdir=tmp_path)
    ids, mask = model.seen
    assert ids.dtype == torch.int64 and not ids.any()
    assert mask.dtype == torch.float32 and bool((mask == 1).all())


def test_example_tensors_are_used_as_given(tmp_path: Path) -> None:
    model = RecordingTokenModel()
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    result = export_model(model, [ids], name="t", workdir=tmp_path)
    assert torch.equal(model.seen[0], ids)
    assert result.inputs == {"input_ids": [1, 5]}
    assert _graph_inputs(result.path) == [("input_ids", TensorProto.INT64, [1, 5])]


def test_torch_model_without_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputSpecError) as info:
        export_model(nn.Linear(2, 2), None, name="m", workdir=tmp_path)
    assert str(info.value) == (
        f"model 'm' is a torch.nn.Module: give inputs=..., e.g. inputs=[(1, 3, 224, 224)]; {ACCEPTED_INPUTS}"
    )


def test_bad_inputs_for_a_torch_model_name_the_model(tmp_path: Path) -> None:
    with pytest.raises(InputSpecError) as info:
        export_model(nn.Linear(2, 2), [(1, 0)], name="m", workdir=tmp_path)
    assert str(info.value) == f"model 'm': inputs[0] = (1, 0): dimension 0 is not a positive int; {ACCEPTED_INPUTS}"


# --- mode, flags, errors --------------------------------------------------------------------


class ModeProbe(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)
        self.modes: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append((self.training, torch.is_grad_enabled()))
        return self.bn(self.fc(x))


def _training_flags(module: nn.Module) -> dict[str, bool]:
    return {name: sub.training for name, sub in module.named_modules()}


def test_export_runs_in_eval_mode_without_grad_and_restores_each_flag(tmp_path: Path) -> None:
    model = ModeProbe().train()
    model.bn.eval()  # a frozen BatchNorm in a training model: its own flag must survive
    before = _training_flags(model)
    export_model(model, [(2, 4)], name="probe", workdir=tmp_path)
    assert model.modes and set(model.modes) == {(False, False)}
    assert _training_flags(model) == before == {"": True, "fc": True, "bn": False}


def test_mha_fastpath_setting_is_restored(tmp_path: Path) -> None:
    previous = torch.backends.mha.get_fastpath_enabled()
    try:
        torch.backends.mha.set_fastpath_enabled(True)
        export_model(TinyEncoder(), [(1, 4, D_MODEL)], name="enc", workdir=tmp_path)
        assert torch.backends.mha.get_fastpath_enabled() is True
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


class DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if bool(x.sum() > 0) else x


def test_tracer_warnings_from_the_users_code_are_the_exports_log(tmp_path: Path) -> None:
    # the only thing a passing export tells: the graph holds the branch the example inputs took
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        result = export_model(DataDependent(), [(2, 2)], name="dd", workdir=tmp_path)
    assert escaped == []
    line = inspect.getsourcelines(DataDependent.forward)[1] + 1
    assert result.log == (
        f"{os.path.relpath(__file__)}:{line}: TracerWarning: Converting a tensor to a Python boolean might cause the "
        "trace to be incorrect. We can't record the data flow of Python values, so this value will be treated as a "
        "constant in the future. This means that the trace might not generalize to other inputs!"
    )


class Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom: forward failed")


class Svd(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.svd(x)[0]


def test_forward_error_is_an_export_error_with_the_exporters_message(tmp_path: Path) -> None:
    model = Boom().train()
    with pytest.raises(ExportError) as info:
        export_model(model, [(4, 4)], name="boom", workdir=tmp_path)
    assert str(info.value) == "model 'boom': RuntimeError: boom: forward failed"
    assert isinstance(info.value.__cause__, RuntimeError)
    assert model.training  # restored after a failed export too


def test_unexportable_op_is_an_export_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export_model(Svd(), [(4, 4)], name="svd", workdir=tmp_path)
    error, fix = str(info.value).splitlines()
    assert error.startswith("model 'svd': UnsupportedOperatorError: Exporting the operator 'aten::linalg_svd' to ONNX")
    assert error.endswith("is not supported")
    assert fix == ("the TorchScript exporter has no ONNX translation for this operator: try the dynamo exporter "
                   "(ini macc_budget_exporter = dynamo)")


@pytest.mark.slow
def test_dynamo_errors_keep_the_summary_not_the_advice(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export_model(Boom(), [(4, 4)], name="boom", workdir=tmp_path, exporter="dynamo")
    assert str(info.value) == (
        "model 'boom': Failed to export the model with torch.export.\nRuntimeError: boom: forward failed"
    )
    with pytest.raises(ExportError) as info:
        export_model(Svd(), [(4, 4)], name="svd", workdir=tmp_path, exporter="dynamo")
    lines = str(info.value).splitlines()
    assert lines[0] == "model 'svd': Failed to convert the exported program to an ONNX model."
    assert lines[1].startswith("DispatchError: No ONNX function found for <OpOverload(op='aten._linalg_svd'")
    assert "\x1b[" not in str(info.value)


def test_exporter_message_keeps_the_first_lines() -> None:
    long = RuntimeError("\n".join(f"line {i}" for i in range(10)) + "\n")
    assert exporter_message(long) == "RuntimeError: line 0\nline 1\nline 2\nline 3\nline 4\nline 5"
    assert exporter_message(ValueError()) == "ValueError"
    missing = ModuleNotFoundError("No module named 'onnxscript'", name="onnxscript")
    assert exporter_message(missing, "dynamo") == (
        "ModuleNotFoundError: No module named 'onnxscript'\n"
        "the 'dynamo' exporter needs the onnxscript package (pip install onnxscript)"
    )


# --- the benchmark's models: what both exporters record ------------------------------------


def _benchmark_models() -> Any:
    """benchmarks/models.py (a script directory, not a package of the project)."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "models.py"
    spec = importlib.util.spec_from_file_location("benchmark_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


BENCHMARK = _benchmark_models()
# The TorchScript exporter stores a few tensors of these two its own way (the LSTM's biases, the
# attention's scale constants): their param_bytes differ by exporter, their MACs do not.
STORED_DIFFERENTLY = {"transformer_encoder", "lstm"}


def _recorded(path: Path) -> dict[str, Any]:
    """What the budget records of a file: layer keys with their MACs, and the totals."""
    profile = profile_model(path)
    totals = profile.totals
    return {"layers": layer_macs((layer.name, layer.macs) for layer in profile.layers), "macs": totals.macs,
            "flops": totals.flops, "param_bytes": totals.param_bytes, "peak": totals.peak_activation_bytes}


@pytest.fixture(scope="module")
def benchmark_exports(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], ExportedModel]:
    workdir = tmp_path_factory.mktemp("benchmark-exports")
    cache: dict[tuple[str, str], ExportedModel] = {}

    def export(model_name: str, exporter: str) -> ExportedModel:
        if (model_name, exporter) not in cache:
            model = BENCHMARK.build(model_name)
            inputs = BENCHMARK.BENCHMARK_MODELS[model_name].inputs
            cache[model_name, exporter] = export_model(model, inputs, name=f"{model_name}-{exporter}", workdir=workdir,
                                                       exporter=exporter)
        return cache[model_name, exporter]

    return export


@pytest.mark.slow
@pytest.mark.parametrize("model_name", sorted(BENCHMARK.BENCHMARK_MODELS))
def test_both_exporters_record_the_same_layers_and_macs_of_the_benchmark_models(
        benchmark_exports: Any, model_name: str) -> None:
    torchscript = _recorded(benchmark_exports(model_name, "torchscript").path)
    dynamo_file = _recorded(benchmark_exports(model_name, "dynamo").path)
    assert torchscript["layers"] == dynamo_file["layers"] and torchscript["layers"]
    assert (torchscript["macs"], torchscript["flops"]) == (dynamo_file["macs"], dynamo_file["flops"])
    if model_name not in STORED_DIFFERENTLY:
        assert torchscript["param_bytes"] == dynamo_file["param_bytes"]


def _with_weight_bytes(path: Path, written: Path) -> None:
    """A copy of `path` whose unwritten weights are written out (zeros of their dims and dtype)."""
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
            del tensor.external_data[:]
            tensor.data_location = TensorProto.DEFAULT
            tensor.raw_data = bytes(itemsize * int(np.prod(tensor.dims)))
    onnx.save(model, written)


@pytest.mark.slow
@pytest.mark.parametrize("model_name", sorted(BENCHMARK.BENCHMARK_MODELS))
def test_unwritten_weight_bytes_change_nothing_the_budget_records(
        benchmark_exports: Any, model_name: str, tmp_path: Path) -> None:
    unwritten = benchmark_exports(model_name, "dynamo").path
    _with_weight_bytes(unwritten, tmp_path / "written.onnx")
    assert _recorded(unwritten) == _recorded(tmp_path / "written.onnx")


def test_this_torch_has_the_torchscript_exporter() -> None:
    assert has_torchscript_exporter()


@pytest.mark.slow
def test_without_the_torchscript_exporter_the_dynamo_exporter_stands_in(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("pytest_maccbudget.export.has_torchscript_exporter", lambda: False)
    result = export_model(nn.Linear(4, 2), [(1, 4)], name="lin", workdir=tmp_path)
    assert result.exporter == "dynamo"
    assert result.log == (
        f"note: torch {torch.__version__} has no TorchScript exporter (torch.onnx.export(dynamo=False)), so the "
        "dynamo exporter ran; set ini macc_budget_exporter = dynamo to say so"
    )
    assert profile_model(result.path).totals.macs == 8


# --- the dynamo renaming's fallbacks (no FX graph at hand) -----------------------------------


def _fused_conv_program(weight_name: str) -> Any:
    """A one-Conv dynamo-style model whose Conv absorbed `block.1.bn`, and no FX graph."""
    ir = pytest.importorskip("onnx_ir")
    conv = helper.make_node("Conv", ["x", weight_name], ["y"], name="node_Conv_7")
    for key, value in {
        "pkg.torch.onnx.name_scopes": "['', 'block', 'block.1', 'block.1.bn', '_native_batch_norm_legit_no_training']",
        "pkg.onnxscript.rewriter.rule_name": "FuseBatchNormIntoConv",
    }.items():
        conv.metadata_props.add(key=key, value=value)
    relu = helper.make_node("Relu", ["y"], ["z"], name="node_relu")
    relu.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'block', 'block.1', 'block.1.act', 'relu']")
    graph = helper.make_graph(
        [conv, relu, helper.make_node("Identity", ["z"], ["out"], name="made_later")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        initializer=[helper.make_tensor(weight_name, TensorProto.FLOAT, [2, 2, 1, 1], [1.0] * 4)],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return SimpleNamespace(model=ir.serde.deserialize_model(proto), exported_program=None)


def test_fused_conv_takes_its_weights_module_when_it_sits_beside_the_batchnorm() -> None:
    program = _fused_conv_program("block.1.conv.weight")
    name_dynamo_nodes_by_module(program)
    assert [node.name for node in program.model.graph] == [
        "/block/block.1/block.1.conv/Conv", "/block/block.1/block.1.act/Relu", "made_later",
    ]


def test_fused_conv_refuses_a_merged_weight_from_another_block() -> None:
    program = _fused_conv_program("block.0.conv.weight")  # identical weights merged across blocks
    name_dynamo_nodes_by_module(program)
    assert next(iter(program.model.graph)).name == "/block/block.1/block.1.bn/Conv"


# --- exporter plugins -----------------------------------------------------------------------


class FakeGraph:
    """Stands for another framework's model."""


class FakeExporter:
    calls: list[tuple[object, object, Path]] = []

    @staticmethod
    def handles(model: object) -> bool:
        return isinstance(model, FakeGraph)

    @staticmethod
    def export(model: object, inputs: object, path: Path) -> dict[str, list[int]]:
        FakeExporter.calls.append((model, inputs, path))
        onnx.save_model(_matmul_model(), path)
        return {"x": [1, 4]}


class NeverHandles:
    @staticmethod
    def handles(model: object) -> bool:
        return False


class FakeEntryPoint:
    def __init__(self, name: str, loaded: object = None, error: Exception | None = None) -> None:
        self.name, self.loaded, self.error = name, loaded, error

    def load(self) -> object:
        if self.error is not None:
            raise self.error
        return self.loaded


def _install(monkeypatch: pytest.MonkeyPatch, *entry_points: FakeEntryPoint) -> None:
    def fake_entry_points(*, group: str) -> list[FakeEntryPoint]:
        return list(entry_points) if group == ENTRY_POINT_GROUP else []

    monkeypatch.setattr("importlib.metadata.entry_points", fake_entry_points)


def test_plugin_exporter_handles_its_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _install(monkeypatch, FakeEntryPoint("never", NeverHandles), FakeEntryPoint("fakeflow", FakeExporter))
    model = FakeGraph()
    FakeExporter.calls.clear()
    result = export_model(model, {"x": (1, 4)}, name="tf model", workdir=tmp_path)
    assert result == ExportedModel(path=tmp_path / f"{safe_file_stem('tf model')}.onnx", exporter="fakeflow", inputs={"x": [1, 4]})
    assert FakeExporter.calls == [(model, {"x": (1, 4)}, result.path)]
    assert profile_model(result.path).totals.macs == 12


def test_no_plugin_handles_the_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _install(monkeypatch, FakeEntryPoint("never", NeverHandles), FakeEntryPoint("broken", error=ImportError("no jax")))
    with pytest.raises(ExportError) as info:
        export_model(FakeGraph(), None, name="x", workdir=tmp_path)
    assert str(info.value) == (
        f"model 'x': don't know how to export {__name__}.FakeGraph; pass a torch.nn.Module, an .onnx path, "
        "an onnx.ModelProto, or install an exporter plugin (entry-point group pytest_maccbudget.exporters)\n"
        "exporter plugin 'broken' failed to load: ImportError: no jax"
    )
    _install(monkeypatch)
    with pytest.raises(ExportError, match=r"^model 'y': don't know how to export int; pass a torch.nn.Module"):
        export_model(3, None, name="y", workdir=tmp_path)


def test_plugin_failures_are_export_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class Failing(FakeExporter):
        @staticmethod
        def export(model: object, inputs: object, path: Path) -> dict[str, list[int]]:
            raise ValueError("unsupported layer Foo\n  at bar")

    class WritesNothing(FakeExporter):
        @staticmethod
        def export(model: object, inputs: object, path: Path) -> dict[str, list[int]]:
            return {}

    class BadDims(FakeExporter):
        @staticmethod
        def export(model: object, inputs: object, path: Path) -> Any:
            onnx.save_model(_matmul_model(), path)
            return {"x": "1x4"}

    expected = {
        Failing: "model 'm': exporter 'p': ValueError: unsupported layer Foo\n  at bar",
        WritesNothing: f"model 'm': exporter 'p' wrote no ONNX file to {tmp_path / 'm.onnx'}",
        BadDims: "model 'm': exporter 'p' returned {'x': '1x4'}; expected a dict of input name -> list of ints",
    }
    for plugin, message in expected.items():
        (tmp_path / "m.onnx").unlink(missing_ok=True)
        _install(monkeypatch, FakeEntryPoint("p", plugin))
        with pytest.raises(ExportError) as info:
            export_model(FakeGraph(), None, name="m", workdir=tmp_path)
        assert str(info.value) == message


# --- import cost ----------------------------------------------------------------------------


def test_importing_and_using_export_without_torch_models_imports_neither_torch_nor_onnx(tmp_path: Path) -> None:
    source = tmp_path / "m.onnx"
    onnx.save_model(_matmul_model(), source)
    code = (
        "import sys\n"
        "import pytest_maccbudget.export as export\n"
        "loaded = sorted(m for m in ('torch', 'onnx') if m in sys.modules)\n"
        "export.parse_inputs({'ids': ((1, 8), 'int64'), 'x': (1, 3)})\n"
        f"export.export_model({str(source)!r}, None, name='m', workdir={str(tmp_path)!r})\n"
        "print(loaded, sorted(m for m in ('torch', 'onnx') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[] []"


class _SharedTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.shared(self.shared(x)).mean((2, 3)))


def test_a_module_called_twice_keeps_its_key_under_torchscript(tmp_path: Path) -> None:
    # TorchScript scopes the second call `shared_1`; the budget key is still `shared`
    exported = export_model(_SharedTwice(), [(1, 4, 8, 8)], name="twice", workdir=tmp_path, exporter="torchscript")
    profile = profile_model(exported.path)
    assert layer_macs((layer.name, layer.macs) for layer in profile.layers) == {
        "head": 4 * 2,
        "shared": 2 * (3 * 3 * 4 * 8 * 8 * 4),
    }
