"""export.py: what an export tells. A known failure's message ends with its fix; whatever the
exporter warns, logs or prints during an export is kept out of the terminal and handed over as
the log of the ExportedModel or the ExportError. Every export here is a real torch.onnx.export.
"""
from __future__ import annotations

import gc
import inspect
import logging
import os
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from pytest_maccbudget.export import ExportError, export_model

THIS_FILE = os.path.relpath(__file__)


def _line_of(function: object, text: str) -> int:
    """The line number of the line of `function` that holds `text`."""
    lines, first = inspect.getsourcelines(function)  # type: ignore[arg-type]
    return first + next(index for index, line in enumerate(lines) if text in line)


class PackedSequenceIndices(nn.Module):
    """What transformers' find_packed_sequence_indices does for a decoder given no attention mask."""

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        first = position_ids[:, :1] - 1
        return (torch.diff(position_ids, prepend=first, dim=-1) != 1).cumsum(-1)


class ValueBranch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return x


class Gamma(nn.Module):
    """An op neither exporter translates."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch._standard_gamma(x)


# --- known failures: the exporter's error, then the fix --------------------------------------


def test_aten_diff_under_torchscript_says_pass_an_attention_mask_or_use_dynamo(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export_model(PackedSequenceIndices(), [((1, 6), "int64")], name="gpt2", workdir=tmp_path)
    error, fix = str(info.value).splitlines()
    assert error.startswith("model 'gpt2': UnsupportedOperatorError: Exporting the operator 'aten::diff' to ONNX")
    assert fix == (
        "aten::diff is what transformers' mask helpers call for a decoder given no attention mask: pass one in "
        "inputs=, e.g. inputs={'input_ids': ((1, 128), 'int64'), 'attention_mask': torch.ones(1, 128, "
        "dtype=torch.int64)}, or use the dynamo exporter (ini macc_budget_exporter = dynamo), which exports aten::diff"
    )


@pytest.mark.slow
def test_aten_diff_exports_with_dynamo(tmp_path: Path) -> None:
    result = export_model(PackedSequenceIndices(), [((1, 6), "int64")], name="gpt2", workdir=tmp_path,
                          exporter="dynamo")
    assert result.path.is_file() and result.log == ""


@pytest.mark.slow
def test_data_dependent_branch_under_dynamo_says_where_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export_model(ValueBranch(), [(1, 3)], name="branchy", workdir=tmp_path, exporter="dynamo")
    headline, error, fix = str(info.value).splitlines()
    assert headline == "model 'branchy': Failed to export the model with torch.export."
    assert error.startswith("GuardOnDataDependentSymNode: Could not guard on data-dependent expression")
    line = _line_of(ValueBranch.forward, "if x.sum() > 0:")
    assert fix == (
        f"the forward decides on a tensor's value at {THIS_FILE}:{line} (if x.sum() > 0:), which torch.export cannot "
        "trace: use the TorchScript exporter (ini macc_budget_exporter = torchscript), which keeps the branch the "
        "example inputs take, or decide on shapes or Python values instead (torch._check(...) states a fact about a "
        "value, torch.cond keeps both branches)"
    )


def test_unsupported_operator_under_torchscript_says_try_dynamo(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export_model(Gamma(), [(2, 3)], name="gamma", workdir=tmp_path)
    error, fix = str(info.value).splitlines()
    assert error.startswith(
        "model 'gamma': SymbolicValueError: Unsupported: ONNX export of operator _standard_gamma.")
    assert fix == ("the TorchScript exporter has no ONNX translation for this operator: try the dynamo exporter "
                   "(ini macc_budget_exporter = dynamo)")


@pytest.mark.slow
def test_op_without_translation_under_dynamo_says_try_torchscript(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export_model(Gamma(), [(2, 3)], name="gamma", workdir=tmp_path, exporter="dynamo")
    headline, error, fix = str(info.value).splitlines()
    assert headline == "model 'gamma': Failed to convert the exported program to an ONNX model."
    assert error.startswith("DispatchError: No ONNX function found for <OpOverload(op='aten._standard_gamma'")
    assert fix == ("the dynamo exporter has no ONNX translation for aten._standard_gamma: try the TorchScript exporter "
                   "(ini macc_budget_exporter = torchscript)")


# --- what an export says on the side -----------------------------------------------------------


class LSTMTagger(nn.Module):
    """Both exporters warn about an LSTM (batch size; weights assigned during export)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


EXPORTERS = ["torchscript", pytest.param("dynamo", marks=pytest.mark.slow)]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_a_passing_export_prints_warns_and_logs_nothing(
        tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, exporter: str) -> None:
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        result = export_model(LSTMTagger(), [(1, 5, 4)], name="lstm", workdir=tmp_path, exporter=exporter)
    assert escaped == []
    assert capfd.readouterr() == ("", "")
    assert caplog.records == []
    assert result.log == ""


class Chatty(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("forward ran")
        return x + 1


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_print_in_the_users_forward_is_written_out_as_usual(
        tmp_path: Path, capfd: pytest.CaptureFixture[str], exporter: str) -> None:
    result = export_model(Chatty(), [(1, 3)], name="chatty", workdir=tmp_path, exporter=exporter)
    out, err = capfd.readouterr()
    assert out.startswith("forward ran\n") and set(out.splitlines()) == {"forward ran"}
    assert err == "" and result.log == ""


def test_a_failed_export_keeps_what_torchs_cpp_code_printed(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ExportError) as info:
        export_model(PackedSequenceIndices(), [((1, 6), "int64")], name="gpt2", workdir=tmp_path)
    assert capfd.readouterr() == ("", "")
    log = info.value.log.splitlines()
    assert log[0].startswith("Torch IR graph at exception: graph(")  # std::cout of torch's TorchScript exporter
    assert any("aten::diff" in line for line in log)


class LogsThenFails(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logging.getLogger("torch.fx.experimental.symbolic_shapes").warning("guard added: %s", "s0 > 2")
        logging.getLogger("torch.onnx._internal.exporter").warning("torchvision is not installed")
        warnings.warn("deprecated inside torch", DeprecationWarning)
        raise RuntimeError("cannot trace this")


def test_a_failed_export_keeps_log_records_but_not_the_exporters_own_notices(
        tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    handlers = {name: list(logging.getLogger(name).handlers) for name in ("", "torch", "torch.fx")}
    with pytest.raises(ExportError) as info:
        export_model(LogsThenFails(), [(1, 3)], name="logs", workdir=tmp_path)
    assert str(info.value) == "model 'logs': RuntimeError: cannot trace this"
    line = _line_of(LogsThenFails.forward, "warnings.warn")
    assert info.value.log.splitlines() == [
        f"{THIS_FILE}:{line}: DeprecationWarning: deprecated inside torch",  # the user's code warned it: kept
        "WARNING torch.fx.experimental.symbolic_shapes: guard added: s0 > 2",
    ]
    assert capfd.readouterr() == ("", "")
    assert caplog.records == []
    assert {name: logging.getLogger(name).handlers for name in handlers} == handlers


@pytest.mark.slow
def test_export_state_is_restored(tmp_path: Path) -> None:
    from torch.onnx._internal.exporter._registration import ONNXRegistry

    from_torchlib = ONNXRegistry.__dict__["from_torchlib"]
    export_model(nn.Linear(2, 2), [(1, 2)], name="lin", workdir=tmp_path, exporter="dynamo")
    assert ONNXRegistry.__dict__["from_torchlib"] is from_torchlib
    assert gc.isenabled()
