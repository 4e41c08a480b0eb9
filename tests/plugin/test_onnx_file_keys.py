"""An .onnx file exported by the user with the dynamo exporter (node names like node_Conv_12)
is budgeted under the module paths its metadata records, the keys `maccbudget profile` prints."""
from __future__ import annotations

import csv
import io

import pytest

from .conftest import Project

DYNAMO_FILE_TEST = '''
from pathlib import Path

import pytest
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))


@pytest.mark.macc_budget("net", model="net.onnx")
def test_net():
    torch.onnx.export(Block().eval(), (torch.zeros(1, 3, 6, 6),), str(Path(__file__).with_name("net.onnx")),
                      dynamo=True)
'''


@pytest.mark.slow
@pytest.mark.parametrize("xdist_args", [()], indirect=True)
def test_a_dynamo_file_is_budgeted_by_module_path(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    project.add_test("test_net.py", DYNAMO_FILE_TEST)
    project.record()
    # conv: 4 x 4 x 4 outputs of 3 x 3 x 3 = 1,728 MACs; head: 4 x 2 = 8
    assert project.budget()["models"]["net"]["layers"] == {"conv": {"macs": 1728}, "head": {"macs": 8}}
    from pytest_maccbudget.cli import main

    capsys.readouterr()
    assert main(["profile", str(project.path / "net.onnx"), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    macs_by_key = {row["layer_key"]: int(row["macs"]) for row in rows if row["macs"] not in ("", "0")}
    assert macs_by_key == {"conv": 1728, "head": 8}
    assert all(row["name"].startswith("node_") for row in rows if row["layer_key"] in macs_by_key)
