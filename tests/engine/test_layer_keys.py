"""Layer keys over engine rows: a key that merges counted and uncounted nodes is unknown (None),
never the counted part alone, whichever comes first; and the CLI names layers by the budget's keys
whichever exporter wrote the file."""
from __future__ import annotations

import contextlib
import io
import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from pytest_maccbudget import profile_model
from pytest_maccbudget.export import export_model
from pytest_maccbudget.layers import layer_macs, profile_layer_macs
from pytest_maccbudget.profile_report import render

F32 = TensorProto.FLOAT


def _scoped_model() -> object:
    # module "blk.fc": a MatMul (counted) and an op without a rule; module "blk.act": a Relu (no MACs)
    w = numpy_helper.from_array(np.ones((16, 4), np.float32), "w")
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="/blk/act/Relu"),
             helper.make_node("MatMul", ["r", "w"], ["m"], name="/blk/fc/MatMul"),
             helper.make_node("Mystery", ["m"], ["y"], name="/blk/fc/Mystery", domain="acme")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [2, 16])],
                              [helper.make_tensor_value_info("y", F32, None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme", 1)])


def test_a_module_with_an_uncounted_node_is_unknown() -> None:
    profile = profile_model(_scoped_model())
    assert profile.layer("/blk/fc/MatMul").macs == 2 * 16 * 4
    assert layer_macs((layer.name, layer.macs) for layer in profile.layers) == {"blk.fc": None}


def test_counted_and_uncounted_merge_to_unknown_in_any_order() -> None:
    rows = [("/m/a/Conv", 100), ("/m/a/Foo", None), ("/m/a/Relu", 0), ("/m/b/Conv", 7)]
    for order in itertools.permutations(rows):
        assert layer_macs(order) == {"m.a": None, "m.b": 7}


# --- the CLI's names are the budget's keys, whichever exporter wrote the file ---------------------
#
# The plugin exports a torch module itself (export.py renames the nodes by module path) and
# records layer_macs over those names; `maccbudget profile` reads a file the user exported with
# plain torch.onnx.export. Both must name the layers alike.


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)  # both exporters fold it into the conv
        self.proj = nn.Sequential(nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        return self.proj(h.mean(dim=(2, 3)))


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer1 = nn.Sequential(_Block())
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layer1(x))


# Closed forms on a [1, 3, 6, 6] input: conv 3x3, 3 -> 8, same padding: 6*6*8 outputs x 27 = 7,776;
# Linear 8 -> 4: 32; Linear 4 -> 2: 8.
_NET_MACS = {"layer1.0.conv": 7_776, "layer1.0.proj.0": 32, "head": 8}


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = _Net().eval()
    with torch.no_grad():  # a BN that is not the identity, so folding changes the weights' names
        net.layer1[0].bn.running_mean.uniform_(-1, 1)
        net.layer1[0].bn.running_var.uniform_(0.5, 2)
    return net


def _user_export(path: Path, dynamo: bool) -> None:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(_net(), (torch.randn(1, 3, 6, 6),), str(path), dynamo=dynamo)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_cli_names_are_the_budget_keys(tmp_path: Path, exporter: str) -> None:
    recorded = export_model(_net(), [(1, 3, 6, 6)], name="net", workdir=tmp_path, exporter=exporter)
    budget_keys = layer_macs((layer.name, layer.macs) for layer in profile_model(recorded.path).layers)
    assert budget_keys == _NET_MACS

    users_file = tmp_path / f"user-{exporter}.onnx"
    _user_export(users_file, dynamo=exporter == "dynamo")
    profile = profile_model(users_file)
    if exporter == "dynamo":  # the file's own names say nothing of the modules
        assert all(layer.name.startswith("node_") for layer in profile.layers if layer.macs)
    rows = table_rows(render(profile, "table", show_all=True))
    printed = {row.split()[0] for row in rows if row.split()[2] not in ("0", "?")}
    assert printed == set(_NET_MACS)
    assert profile_layer_macs(profile) == _NET_MACS
    data = json.loads(render(profile, "json"))
    assert {layer["layer_key"] for layer in data["layers"] if layer["macs"]} == set(_NET_MACS)
    assert {layer["name"] for layer in data["layers"]} == {layer.name for layer in profile.layers}  # raw names


def table_rows(text: str) -> list[str]:
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("-----")]
    return lines[rules[0] + 1: rules[1]]
