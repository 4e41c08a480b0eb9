"""Real torch models, exported by the plugin (slow: each run imports torch)."""
from __future__ import annotations

import shutil

import pytest

from .conftest import CONV_MACS, Project, fc_macs, net_totals

pytestmark = pytest.mark.slow

# The torch twin of netlib's net, nested: conv + bn + relu inside two Sequentials, then a
# Sequential head. In eval mode the BatchNorm folds into the conv, so the MACs are the net's.
TORCH_NET = """
import pytest
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(256, 10))

    def forward(self, x):
        return self.head(self.features(x))


@pytest.mark.macc_budget("torchnet", inputs=[(1, 3, 8, 8)])
def test_torchnet():
    torch.manual_seed(0)
    return Net()
"""


def _layers_section(text: str) -> str:
    return text[text.index("    layers:\n"):]


def test_both_exporters_give_the_same_layer_keys(project: Project) -> None:
    project.add_test("test_torchnet", TORCH_NET)

    project.record("--macc-budget-file", "torchscript.yaml")
    shutil.copyfile(project.file("torchscript.yaml"), project.file("dynamo.yaml"))
    project.ini("macc_budget_exporter = dynamo")
    # an update over the TorchScript budget: it stays byte-identical if dynamo measures the same
    with_dynamo = project.record("--macc-budget-file", "dynamo.yaml")

    expected_layers = {"features.0.0": {"macs": CONV_MACS}, "head.1": {"macs": fc_macs(10)}}
    for exporter in ("torchscript", "dynamo"):
        entry = project.budget(f"{exporter}.yaml")["models"]["torchnet"]
        assert entry["inputs"] == {"x": [1, 3, 8, 8]}, exporter
        assert entry["layers"] == expected_layers, exporter
        assert entry["total"]["macs"] == net_totals(10)["macs"], exporter
    assert (_layers_section(project.file("torchscript.yaml").read_text(encoding="utf-8"))
            == _layers_section(project.file("dynamo.yaml").read_text(encoding="utf-8")))
    with_dynamo.stdout.fnmatch_lines(["torchnet *9.47 k *= *unchanged", "budget file *dynamo.yaml: unchanged"])


BROKEN_MODELS = """
import pytest
from torch import nn


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        raise RuntimeError("this model cannot be traced: boom")


@pytest.mark.macc_budget("broken", inputs=[(1, 4)])
def test_broken():
    return Broken()


@pytest.mark.macc_budget("no_inputs")
def test_no_inputs():
    return nn.Linear(4, 4)
"""


def test_export_failure_fails_the_test_with_the_exporters_message(project: Project) -> None:
    project.add_test("test_broken", BROKEN_MODELS)

    result = project.run("--macc-budget-update")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*model 'broken': RuntimeError: this model cannot be traced: boom*"])
    result.stdout.fnmatch_lines(["*model 'no_inputs' is a torch.nn.Module: give inputs=*"])
    result.stdout.no_fnmatch_line("*During handling of the above exception*")  # one message, not a chain
    assert not project.file().exists()  # nothing recorded: no empty budget file is created
    # the models whose export failed are in the summary table, not left out of it
    result.stdout.fnmatch_lines(["model *MACs *status", "broken *? *NOT MEASURED (see its test)",
                                 "no_inputs *? *NOT MEASURED (see its test)", "budget file *: not written (nothing recorded)"])


TIED_MODEL = """
import copy

import pytest
from torch import nn


class Tagger(nn.Module):
    \"\"\"A tied embedding (the output layer reuses it) and two deep-copied, untrained blocks:
    exporters store the first transposed twice and merge the byte-identical copies of the second.\"\"\"

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        block = nn.Sequential(nn.Linear(16, 16), nn.ReLU())
        self.blocks = nn.Sequential(block, copy.deepcopy(block))
        self.out = nn.Linear(16, 100, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, tokens):
        return self.out(self.blocks(self.embed(tokens)))


@pytest.mark.macc_budget("tagger", inputs={"tokens": ((1, 8), "int64")})
def test_tagger():
    return Tagger()
"""

# the model's own count, as sum(p.numel() for p in model.parameters()) gives it: the embedding
# once (100 x 16), two Linear 16 -> 16 with bias
TIED_MODEL_PARAMS = 100 * 16 + 2 * (16 * 16 + 16)


@pytest.mark.parametrize("xdist_args", [()], ids=["no-xdist-args"])
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_params_are_the_models_own_count_whichever_exporter(project: Project, exporter: str) -> None:
    project.add_test("test_tagger", TIED_MODEL)
    project.ini(f"macc_budget_exporter = {exporter}")

    project.record()

    total = project.budget()["models"]["tagger"]["total"]
    assert total["params"] == TIED_MODEL_PARAMS
    assert total["param_bytes"] != 4 * TIED_MODEL_PARAMS  # what the export stores is another number


EMPTY_MODELS = """
import pytest
from torch import nn


class ReturnsNone(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        self.fc(x)


class ReturnsAConstant(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc.weight * 2


@pytest.mark.macc_budget("returns_none", inputs=[(1, 4)])
def test_returns_none():
    return ReturnsNone()


@pytest.mark.macc_budget("returns_a_constant", inputs=[(1, 4)])
def test_returns_a_constant():
    return ReturnsAConstant()
"""


@pytest.mark.parametrize("xdist_args", [()], ids=["no-xdist-args"])
def test_a_model_whose_graph_computes_nothing_fails_with_that_reason(project: Project) -> None:
    project.add_test("test_empty", EMPTY_MODELS)

    result = project.run("--macc-budget-update")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=2)
    for name in ("returns_none", "returns_a_constant"):
        result.stdout.fnmatch_lines([f"*model '{name}': its graph computes nothing from its inputs*"])
    assert not project.file().exists()  # never recorded as 0 MACs
