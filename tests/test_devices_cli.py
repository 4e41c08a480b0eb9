"""`maccbudget devices` and `maccbudget profile --device`, on graphs built here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget.cli import main
from pytest_maccbudget.devices.catalog import BUILTIN_NAMES


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    """x [1,8,32,32] -> conv 3x3 8->16 (padding 1) -> relu."""
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 8, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[weight])
    path = tmp_path / "net.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_devices_lists_every_builtin_with_class_and_source(capsys):
    code, out, _ = run(capsys, "devices")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "class", "fp32", "peak", "bandwidth", "source"]
    for name in BUILTIN_NAMES:
        assert any(line.startswith(name + " ") and f"docs/devices.md#{name}" in line for line in lines), name


def test_devices_json(capsys):
    code, out, _ = run(capsys, "devices", "--format", "json")
    devices = json.loads(out)
    assert code == 0 and [d["name"] for d in devices] == list(BUILTIN_NAMES)
    assert all({"class", "source", "peak_macs_per_s", "memory_bandwidth"} <= set(d) for d in devices)


def test_devices_show_prints_a_profile_to_start_from(capsys, tmp_path: Path):
    code, out, _ = run(capsys, "devices", "--show", "jetson-nano")
    assert code == 0 and out.startswith("name: jetson-nano\n")
    (tmp_path / "mine.yaml").write_text(out, encoding="utf-8")
    assert run(capsys, "devices", "--show", "nope")[0] == 2


def test_profile_with_a_device_adds_latency_energy_and_bound_columns(capsys, model_path: Path):
    code, out, _ = run(capsys, "profile", str(model_path), "--device", "phone-cortex-a76x4")
    assert code == 0
    header = next(line for line in out.splitlines() if line.startswith("layer"))
    assert header.split()[-3:] == ["latency", "energy", "bound"]
    conv_row = next(line for line in out.splitlines() if line.startswith("conv "))
    assert conv_row.split()[-1] == "compute"
    assert "device:                 phone-cortex-a76x4 (phone-cpu; docs/devices.md#phone-cortex-a76x4" in out
    assert "\nlatency:" in out and "\nenergy:" in out and "\ndownload:" in out


def test_profile_json_has_total_latency_and_energy(capsys, model_path: Path):
    code, out, _ = run(capsys, "profile", str(model_path), "--device", "jetson-nano", "--format", "json")
    data = json.loads(out)
    assert code == 0
    # conv: 9*8*16*32*32 MACs = 1,179,648 / 118e9 MAC/s = 0.0099970 ms; bytes 32,768 + 4,608 + 65,536
    # = 102,912 / 25.6e9 = 0.0040200 ms -> compute-bound; relu: 131,072 bytes -> 0.00512 ms, memory-bound
    assert data["total"]["latency_ms"] == pytest.approx(1_179_648 / 118e9 * 1e3 + 131_072 / 25.6e9 * 1e3)
    # energy: 1,179,648 x 4.6 pJ + (102,912 + 131,072) x 160 pJ
    assert data["total"]["energy_mj"] == pytest.approx((1_179_648 * 4.6 + 233_984 * 160) * 1e-9)
    conv = next(layer for layer in data["layers"] if layer["name"] == "conv")
    assert (conv["bound"], conv["op_class"]) == ("compute", "conv")
    assert data["estimate"]["device"]["name"] == "jetson-nano"


def test_profile_json_with_a_device_is_compact_unless_an_indent_is_asked_for(capsys, model_path: Path):
    code, compact, _ = run(capsys, "profile", str(model_path), "--device", "jetson-nano", "--format", "json")
    assert code == 0 and compact.count("\n") == 1 and compact.startswith('{"model":')
    code, indented, _ = run(capsys, "profile", str(model_path), "--device", "jetson-nano", "--format", "json",
                            "--indent", "2")
    assert code == 0 and indented.startswith('{\n  "model": ')
    assert json.loads(indented) == json.loads(compact)


def test_profile_markdown_and_csv_carry_the_estimate(capsys, model_path: Path):
    code, out, _ = run(capsys, "profile", str(model_path), "--device", "rtx-3090", "--format", "markdown")
    assert code == 0 and "| latency | energy | bound |" in out and "- **latency:**" in out
    code, out, _ = run(capsys, "profile", str(model_path), "--device", "rtx-3090", "--format", "csv")
    header, *rows = out.splitlines()
    assert code == 0 and header.split(",")[-4:] == ["latency_ms", "energy_mj", "bound", "intensity"]
    assert "op_class" in header.split(",")
    # 1,179,648 MACs over 102,912 bytes = 11.5 MACs a byte, under the RTX 3090's ridge point
    # (17.8 T MAC/s / 936 GB/s = 19 MACs a byte): the conv waits on memory there
    assert rows[0].startswith("conv,") and rows[0].split(",")[-2] == "memory"


def test_profile_with_an_unknown_device_is_one_line_exit_2(capsys, model_path: Path):
    code, out, err = run(capsys, "profile", str(model_path), "--device", "pixel-9")
    assert code == 2 and out == ""
    assert err.startswith("maccbudget: error: no built-in device 'pixel-9' and no such file; built-in devices: ")
    assert len(err.splitlines()) == 1


def test_profile_with_a_bad_device_file_names_file_line_and_key(capsys, model_path: Path, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nclass: c\npeak_macs_per_s: {fp32: 1G}\nmemory_bandwidth: lots\n", encoding="utf-8")
    code, _, err = run(capsys, "profile", str(model_path), "--device", str(bad))
    assert code == 2
    assert err.strip().endswith("bad.yaml:4: memory_bandwidth: expected an amount such as 25.6 GB/s: cannot read "
                                "'lots' as a bytes quantity (e.g. 512B, 1.5KB, 24MB, 1.5GiB)")


def test_dtype_needs_a_device(capsys, model_path: Path):
    code, _, err = run(capsys, "profile", str(model_path), "--dtype", "int8")
    assert code == 2 and err == "maccbudget: error: --dtype needs --device\n"


def test_profile_without_a_device_is_unchanged(capsys, model_path: Path):
    code, out, _ = run(capsys, "profile", str(model_path))
    assert code == 0 and "latency" not in out and "device:" not in out
