"""The `maccbudget` CLI end to end, on ONNX files built here with onnx.helper."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Union

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget import __version__
from pytest_maccbudget.cli import main

# --- the conv net and its cost, worked out by hand ----------------------------------------
#
#   x [N,3,32,32] -> conv1 (8x3x3x3 + bias, pad 1)            -> [N,8,32,32]
#                 -> relu1
#                 -> conv2 (16x4x3x3 + bias, group 2, stride 2, pad 1) -> [N,16,16,16]
#                 -> relu2
#                 -> head MatMul with W [16,10]                -> [N,16,16,10]
#
# Conv MACs = Kh*Kw*Cin/g * Hout*Wout*Cout * N; FLOPs = 2*MACs - outputs (+ outputs for bias).
CONV1_MACS = 3 * 3 * 3 * 32 * 32 * 8  # 221_184 per image
CONV2_MACS = 3 * 3 * (8 // 2) * 16 * 16 * 16  # 147_456
HEAD_MACS = (16 * 16 * 10) * 16  # 2_560 outputs, each a dot product of length 16 = 40_960
MACS_PER_IMAGE = CONV1_MACS + CONV2_MACS + HEAD_MACS  # 409_600
RELU1_FLOPS = 8 * 32 * 32
RELU2_FLOPS = 16 * 16 * 16
FLOPS_PER_IMAGE = (
    2 * CONV1_MACS  # 2*MACs - outputs + outputs (bias)
    + RELU1_FLOPS
    + 2 * CONV2_MACS
    + RELU2_FLOPS
    + 2 * HEAD_MACS - 16 * 16 * 10  # no bias
)  # 828_928
PARAMS = (8 * 3 * 3 * 3 + 8) + (16 * 4 * 3 * 3 + 16) + 16 * 10  # 224 + 592 + 160 = 976


def conv_net(batch: Union[int, str] = 1, opset: int = 17, extra_node: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weights = {"w1": (8, 3, 3, 3), "b1": (8,), "w2": (16, 4, 3, 3), "b2": (16,), "w3": (16, 10)}
    initializers = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in weights.items()]
    conv2_input = "f1" if extra_node else "r1"
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", [conv2_input, "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2], group=2),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MatMul", ["r2", "w3"], ["y"], name="head"),
    ]
    opsets = [helper.make_opsetid("", opset)]
    value_info = []
    if extra_node:  # a custom op the engine cannot cost; its output shape is declared
        nodes.insert(2, helper.make_node("Foo", ["r1"], ["f1"], name="foo", domain="com.acme"))
        opsets.append(helper.make_opsetid("com.acme", 1))
        value_info.append(helper.make_tensor_value_info("f1", TensorProto.FLOAT, [batch, 8, 32, 32]))
    graph = helper.make_graph(
        nodes, "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=initializers, value_info=value_info,
    )
    return helper.make_model(graph, opset_imports=opsets)


def save(model: onnx.ModelProto, path: Path) -> str:
    onnx.save(model, str(path))
    return str(path)


def tiny_graph(nodes, opsets) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=opsets)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, *argv, "--format", "json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def conv_path(tmp_path) -> str:
    return save(conv_net(), tmp_path / "convnet.onnx")


@pytest.fixture
def custom_op_path(tmp_path) -> str:
    return save(conv_net(extra_node=True), tmp_path / "custom.onnx")


@pytest.fixture
def dynamic_path(tmp_path) -> str:
    return save(conv_net(batch="N"), tmp_path / "dynamic.onnx")


# --- the conv net -------------------------------------------------------------------------


def test_json_totals_match_hand_count(capsys, conv_path):
    data = run_json(capsys, "profile", conv_path)
    assert data["total"]["macs"] == MACS_PER_IMAGE == 409_600
    assert data["total"]["flops"] == FLOPS_PER_IMAGE == 828_928
    assert data["total"]["params"] == PARAMS == 976
    assert data["total"]["param_bytes"] == 4 * PARAMS
    assert isinstance(data["total"]["peak_activation_bytes"], int)
    assert data["partial"] is False and data["unknown"] == []
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert [(n, layers[n]["op_type"], layers[n]["macs"]) for n in ("conv1", "conv2", "head")] == [
        ("conv1", "Conv", CONV1_MACS), ("conv2", "Conv", CONV2_MACS), ("head", "MatMul", HEAD_MACS),
    ]
    assert layers["conv1"]["flops"] == 2 * CONV1_MACS
    assert layers["relu1"]["flops"] == RELU1_FLOPS
    assert (layers["conv1"]["params"], layers["conv2"]["params"], layers["head"]["params"]) == (224, 592, 160)


def test_table_output(capsys, conv_path):
    code, out, err = run(capsys, "profile", conv_path)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"model: {conv_path} (opset 17)"
    assert lines[1] == "inputs: x [1, 3, 32, 32]"
    header = next(line for line in lines if line.startswith("layer"))
    assert header.split() == ["layer", "op", "MACs", "%", "MACs", "FLOPs", "params", "output", "bytes"]
    conv1 = next(line for line in lines if line.startswith("conv1"))
    assert conv1.split()[:5] == ["conv1", "Conv", "221", "k", "54.0%"]  # 221_184 / 409_600
    total = next(line for line in lines if line.startswith("total"))
    assert total.split() == ["total", "410", "k", "100.0%", "829", "k", "976"]
    assert "coverage:               100.0% of nodes costed (5 of 5)" in lines
    assert "note:" not in out


def test_top(capsys, conv_path):
    code, out, _ = run(capsys, "profile", conv_path, "--top", "2")
    assert code == 0
    rows = [line.split()[0] for line in out.splitlines() if line.startswith(("conv", "relu", "head"))]
    assert rows == ["conv1", "conv2"]
    assert "top 2 of 5 layers by MACs; 3 left out (41.0 k MACs, 10.0% of the total)" in out


def test_markdown_and_csv(capsys, conv_path):
    code, out, _ = run(capsys, "profile", conv_path, "--format", "markdown")
    assert code == 0 and out.startswith("### maccbudget:")
    assert "| `conv1` | Conv | 221 k | 54.0% |" in out
    code, out, _ = run(capsys, "profile", conv_path, "--format", "csv")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("name,op_type,domain,status,macs,flops,params")
    assert lines[1].startswith(f"conv1,Conv,,costed,{CONV1_MACS},{2 * CONV1_MACS},224,")


# --- unknown ops --------------------------------------------------------------------------


def test_unknown_op_is_listed_and_the_rest_still_counted(capsys, custom_op_path):
    code, out, err = run(capsys, "profile", custom_op_path)
    assert code == 0 and err == ""
    assert "83.3% of nodes costed (5 of 6); 1 unknown: com.acme::Foo x1" in out
    foo = next(line for line in out.splitlines() if line.startswith("foo "))
    assert foo.split()[1:5] == ["com.acme::Foo", "?", "?", "?"]
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert total.split()[1:3] == ["410", "k"] and "lower bound" in total


def test_unknown_op_json_is_partial(capsys, custom_op_path):
    data = run_json(capsys, "profile", custom_op_path)
    assert data["partial"] is True
    assert [(u["op_type"], u["name"]) for u in data["unknown"]] == [("Foo", "foo")]
    assert data["total"]["macs"] == MACS_PER_IMAGE
    assert data["coverage"] == pytest.approx(5 / 6, abs=1e-6)
    foo = next(layer for layer in data["layers"] if layer["name"] == "foo")
    assert foo["macs"] is None and foo["flops"] is None


def test_strict_exits_1_when_anything_is_unknown(capsys, custom_op_path, conv_path):
    code, out, err = run(capsys, "profile", custom_op_path, "--strict")
    assert code == 1
    assert "1 unknown: com.acme::Foo x1" in out  # the report is still printed
    assert err.startswith("maccbudget: --strict: 1 op could not be costed")
    code, _, _ = run(capsys, "profile", conv_path, "--strict")
    assert code == 0


# --- symbolic dims ------------------------------------------------------------------------


def test_symbolic_batch_defaults_to_1_with_a_note(capsys, dynamic_path):
    code, out, _ = run(capsys, "profile", dynamic_path)
    assert code == 0
    assert "inputs: x [1, 3, 32, 32]" in out
    assert "note: symbolic batch dimension 'N' of input 'x' taken as 1" in out
    data = run_json(capsys, "profile", dynamic_path)
    assert data["total"]["macs"] == MACS_PER_IMAGE
    assert any("taken as 1" in note for note in data["notes"])


@pytest.mark.parametrize(
    ("args", "batch"),
    [
        (["--batch", "4"], 4),
        (["--input", "x=2,3,32,32"], 2),
        (["--input", "x=2x3x32x32"], 2),
        (["--input", "N=3"], 3),  # a symbolic dim by name
    ],
)
def test_batch_and_input_set_symbolic_dims(capsys, dynamic_path, args, batch):
    data = run_json(capsys, "profile", dynamic_path, *args)
    assert data["inputs"] == {"x": [batch, 3, 32, 32]}
    assert data["total"]["macs"] == batch * MACS_PER_IMAGE
    assert data["total"]["flops"] == batch * FLOPS_PER_IMAGE
    assert data["total"]["params"] == PARAMS  # weights do not scale with the batch
    assert not any("taken as 1" in note for note in data["notes"])


def test_input_naming_no_model_input_is_an_error(capsys, conv_path):
    code, out, err = run(capsys, "profile", conv_path, "--input", "image=1,3,32,32")
    assert code == 2 and out == ""
    assert err.startswith("maccbudget: error: ") and "image" in err and "x" in err
    assert len(err.strip().splitlines()) == 1


def test_input_with_wrong_rank_is_an_error(capsys, conv_path):
    code, _, err = run(capsys, "profile", conv_path, "--input", "x=1,3")
    assert code == 2 and "rank" in err and "Traceback" not in err


def test_input_dims_may_hold_an_empty_dim(capsys, conv_path):
    # a 0 in a list of dims is an empty dim, as ONNX allows: nothing to count
    code, out, _ = run(capsys, "profile", conv_path, "--input", "x=0,3,32,32", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["inputs"]["x"] == [0, 3, 32, 32] and data["total"]["macs"] == 0


@pytest.mark.parametrize("spec", ["x", "x=", "=1,2", "x=a,b", "x=1,-3", "x=0"])
def test_malformed_input_is_a_usage_error(capsys, conv_path, spec):
    code, out, err = run(capsys, "profile", conv_path, "--input", spec)
    assert code == 2 and out == ""
    assert "--input" in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["--batch", "0"], ["--batch", "two"], ["--top", "-1"], ["--format", "xml"]])
def test_bad_option_values(capsys, conv_path, args):
    code, _, err = run(capsys, "profile", conv_path, *args)
    assert code == 2 and "error" in err


# --- bad input files ----------------------------------------------------------------------


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, a fragment the error line must contain)."""
    files: dict[str, tuple[Path, str]] = {}
    files["missing"] = (tmp_path / "missing.onnx", "no such file")
    directory = tmp_path / "folder.onnx"
    directory.mkdir()
    files["directory"] = (directory, "directory")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    files["empty"] = (empty, "empty")
    text = tmp_path / "notes.onnx"
    text.write_text("this is a text file, not a model\n")
    files["text"] = (text, "not")
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    files["random bytes"] = (noise, "not")
    real = conv_net().SerializeToString()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(real[: len(real) * 2 // 3])
    files["truncated"] = (truncated, "not a valid ONNX file")
    big = conv_net()  # > 4 MB: the memory-mapped loading path
    big.graph.initializer.append(numpy_helper.from_array(np.zeros((1024, 1100), np.float32), "unused"))
    big_bytes = big.SerializeToString()
    big_truncated = tmp_path / "big_truncated.onnx"
    big_truncated.write_bytes(big_bytes[: len(big_bytes) - 1000])
    files["big truncated"] = (big_truncated, "not a valid ONNX file")
    undeclared = tiny_graph([helper.make_node("Foo", ["x"], ["y"], name="foo", domain="com.acme")],
                            [helper.make_opsetid("", 17)])
    files["undeclared domain"] = (Path(save(undeclared, tmp_path / "undeclared.onnx")), "com.acme")
    cycle = tiny_graph(
        [helper.make_node("Relu", ["b"], ["a"], name="r1"), helper.make_node("Add", ["a", "x"], ["b"], name="r2"),
         helper.make_node("Relu", ["a"], ["y"], name="r3")],
        [helper.make_opsetid("", 17)],
    )
    files["cycle"] = (Path(save(cycle, tmp_path / "cycle.onnx")), "cycle")
    newer = onnx.defs.onnx_opset_version() + 1
    future = tiny_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], [helper.make_opsetid("", newer)])
    files["newer opset"] = (Path(save(future, tmp_path / "future.onnx")), f"opset {newer}")
    return files


BAD_FILE_CASES = [
    "missing", "directory", "empty", "text", "random bytes", "truncated", "big truncated",
    "undeclared domain", "cycle", "newer opset",
]


@pytest.mark.parametrize("case", BAD_FILE_CASES)
def test_bad_input_is_one_line_naming_the_file_exit_2(capsys, tmp_path, case):
    path, fragment = _bad_files(tmp_path)[case]
    code, out, err = run(capsys, "profile", str(path))
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"maccbudget: error: {path}")
    assert fragment in lines[0]
    assert "Traceback" not in err


def test_big_model_truncated_copy_of_real_model_is_rejected(capsys, tmp_path):
    real = Path(onnx.__file__).parent / "backend/test/data/light/light_resnet50.onnx"
    if not real.exists():
        pytest.skip("onnx test data not installed")
    data = real.read_bytes()
    truncated = tmp_path / "resnet_cut.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    code, out, err = run(capsys, "profile", str(truncated))
    assert code == 2 and out == ""
    assert err.startswith(f"maccbudget: error: {truncated}: ") and len(err.strip().splitlines()) == 1


def test_unreadable_file_is_an_error_not_a_traceback(capsys, tmp_path, conv_path, monkeypatch):
    import pytest_maccbudget.engine.profile as engine_profile

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", conv_path)

    monkeypatch.setattr(engine_profile, "profile_model", denied)
    code, _, err = run(capsys, "profile", conv_path)
    assert code == 2
    assert err == f"maccbudget: error: {conv_path}: Permission denied\n"


def test_unexpected_error_is_one_line_unless_debug(capsys, conv_path, monkeypatch):
    import pytest_maccbudget.engine.profile as engine_profile

    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(engine_profile, "profile_model", broken)
    code, _, err = run(capsys, "profile", conv_path)
    assert code == 2
    assert err.startswith(f"maccbudget: error: {conv_path}: internal error (RuntimeError: boom")
    assert len(err.strip().splitlines()) == 1 and "--debug" in err
    with pytest.raises(RuntimeError):
        main(["--debug", "profile", conv_path])


# --- the program itself -------------------------------------------------------------------


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.startswith(f"maccbudget {__version__} (onnx {onnx.__version__}")


def test_no_command_is_a_usage_error(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "usage: maccbudget" in err


def test_help_lists_profile(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "profile" in out
    code, out, _ = run(capsys, "profile", "--help")
    assert code == 0 and "--strict" in out and "--top" in out


def _cli_command() -> list[str]:
    script = shutil.which("maccbudget")
    return [script] if script else [sys.executable, "-m", "pytest_maccbudget.cli"]


def test_console_script_in_a_real_process(tmp_path, conv_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(_cli_command() + ["profile", conv_path, "--format", "json"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total"]["macs"] == MACS_PER_IMAGE
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    done = subprocess.run(_cli_command() + ["profile", str(bad)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"maccbudget: error: {bad}") and "Traceback" not in done.stderr


def test_python_dash_m_runs_the_cli(conv_path):
    done = subprocess.run([sys.executable, "-m", "pytest_maccbudget.cli", "profile", conv_path, "--strict"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "100.0% of nodes costed" in done.stdout
