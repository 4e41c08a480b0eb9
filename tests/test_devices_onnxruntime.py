"""Timing with onnxruntime and `maccbudget calibrate` end to end, on small graphs built here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget.cli import main
from pytest_maccbudget.devices import load_device
from pytest_maccbudget.devices.timing import TimingError, time_model
from pytest_maccbudget.engine.profile import profile_model

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'pytest-maccbudget[calibrate]')")

RNG = np.random.default_rng(0)


def weight(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array((RNG.standard_normal(shape) * 0.1).astype(np.float32), name)


def save(tmp_path: Path, name: str, nodes: list, inputs: list, weights: list) -> Path:
    output = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph(nodes, name, inputs, [output], initializer=weights),
                              opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def convnet(tmp_path: Path) -> Path:
    """conv 3x3 16->32 + relu, depthwise 3x3, conv 1x1 32->64, global pool, gemm to 10."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "wd"], ["d"], name="depthwise", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=32),
        helper.make_node("Conv", ["d", "w2"], ["c2"], name="conv2", kernel_shape=[1, 1]),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"], name="pool"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf"], ["y"], name="fc", transB=1),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 48, 48])]
    return save(tmp_path, "convnet", nodes, inputs,
                [weight("w1", 32, 16, 3, 3), weight("wd", 32, 1, 3, 3), weight("w2", 64, 32, 1, 1), weight("wf", 10, 64)])


def mlp(tmp_path: Path) -> Path:
    """[1,64,128] x [128,256] + b, relu, x [256,128]: matmuls at sequence length 64."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Add", ["h", "b1"], ["hb"], name="bias"),
             helper.make_node("Relu", ["hb"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64, 128])]
    return save(tmp_path, "mlp", nodes, inputs, [weight("w1", 128, 256), weight("b1", 256), weight("w2", 256, 128)])


def streaming(tmp_path: Path) -> Path:
    """Element-wise layers over 1x32x96x96: memory-bound."""
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"], name="sigmoid"),
             helper.make_node("Mul", ["s", "x"], ["m"], name="mul"),
             helper.make_node("Add", ["m", "x"], ["y"], name="add")]
    return save(tmp_path, "streaming", nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 96, 96])], [])


def test_time_model_maps_every_timed_node_to_the_layers_it_runs(tmp_path: Path):
    path = convnet(tmp_path)
    profile = profile_model(str(path))
    timing = time_model(str(path), profile.inputs, runs=3, warmup=1, threads=1)
    assert timing.latency_ms > 0 and len(timing.runs_ms) == 3 and timing.threads == 1
    covered = {name for group in timing.groups for name in group.group.layers}
    costed = {layer.name for layer in profile.layers if layer.macs}
    assert costed <= covered  # every conv, the depthwise and the gemm are timed somewhere
    assert all(group.median_ms >= 0 for group in timing.groups)
    assert 0 < timing.kernel_ms


def test_the_cpu_clock_needs_one_thread(tmp_path: Path):
    path = convnet(tmp_path)
    with pytest.raises(TimingError, match="one intra-op thread"):
        time_model(str(path), {}, threads=2, cpu_clock=True)
    timing = time_model(str(path), profile_model(str(path)).inputs, runs=3, warmup=1, threads=1, cpu_clock=True)
    assert timing.cpu_clock and timing.latency_ms > 0


def test_a_symbolic_input_needs_its_dims(tmp_path: Path):
    with pytest.raises(TimingError, match=r"input 'x' has symbolic dims \['batch', 64, 128\]: give them with --input"):
        time_model(str(mlp(tmp_path)), {}, runs=1, warmup=1)


def test_calibrate_writes_a_profile_that_profile_device_reads(tmp_path: Path, capsys):
    models = [str(convnet(tmp_path)), str(mlp(tmp_path)), str(streaming(tmp_path))]
    output = tmp_path / "runner.yaml"
    code = main(["calibrate", *models, "--output", str(output), "--input", "batch=1", "--runs", "3", "--warmup", "1",
                 "--threads", "1", "--cache", "32MiB", "--base", "github-ubuntu-latest"])
    out = capsys.readouterr().out
    assert code == 0, out
    device = load_device(str(output))
    assert device.name == "runner" and device.device_class == "ci-runner"
    assert device.peak_macs_per_s["fp32"] > 0 and device.memory_bandwidth > 0
    assert device.energy == load_device("github-ubuntu-latest").energy
    assert output.read_text(encoding="utf-8").startswith("# Written by maccbudget calibrate: maccbudget calibrate on 3")
    assert out.startswith(f"profile runner written to {output}\n")
    for name in ("convnet.onnx", "mlp.onnx", "streaming.onnx"):
        assert any(line.split()[0].endswith(name) for line in out.splitlines() if line.strip()), name
    assert "op class" in out and "kernel time" in out
    code = main(["profile", models[0], "--device", str(output), "--format", "json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["total"]["latency_ms"] > 0


def test_calibrate_json(tmp_path: Path, capsys):
    models = [str(convnet(tmp_path)), str(streaming(tmp_path))]
    code = main(["calibrate", *models, "--output", str(tmp_path / "p.yaml"), "--name", "ci", "--runs", "2",
                 "--warmup", "1", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["profile"]["name"] == "ci"
    assert [Path(m["model"]).name for m in report["models"]] == ["convnet.onnx", "streaming.onnx"]
    assert all(m["measured_ms"] > 0 for m in report["models"])


def test_calibrate_refuses_the_cpu_clock_on_several_threads(tmp_path: Path, capsys):
    code = main(["calibrate", str(convnet(tmp_path)), "--output", str(tmp_path / "p.yaml"), "--cpu-clock"])
    assert code == 2
    assert capsys.readouterr().err == "maccbudget: error: --cpu-clock measures one thread: add --threads 1\n"
