"""Roofline latency and energy, worked out by hand on graphs built here, and the device profiles."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget.devices import (
    DeviceError,
    estimate,
    load_device,
    memory_bound_layers,
    parse_device,
)
from pytest_maccbudget.devices.catalog import (
    BUILTIN_NAMES,
    builtin_device,
    builtin_text,
)
from pytest_maccbudget.devices.profiles import dump_device
from pytest_maccbudget.devices.roofline import COMPUTE, FREE, MEMORY, OVERHEAD
from pytest_maccbudget.engine.profile import profile_model

# The device of the hand-worked examples: round figures, so that every number below can be
# checked on paper.
BOARD = """
name: board
class: test
peak_macs_per_s: {fp32: 100G, fp16: 200G}
memory_bandwidth: 10 GB/s
launch_overhead_us: 5
efficiency: {conv: 0.5, elementwise: 0.25}
energy: {pj_per_mac: {fp32: 4.6, fp16: 1.5}, pj_per_dram_byte: 160}
"""


def board(extra: str = "") -> object:
    return parse_device(BOARD + extra, "board.yaml")


def graph(nodes: list, inputs: list, initializers: list = (), opset: int = 17) -> onnx.ModelProto:
    outputs = [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.UNDEFINED, None)]
    return helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers)),
                             opset_imports=[helper.make_opsetid("", opset)])


def x_input(dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("x", dtype, [1, 64, 56, 56])


def conv_model(dtype: type = np.float32, onnx_dtype: int = TensorProto.FLOAT) -> onnx.ModelProto:
    """3x3 conv, 64 -> 64 channels, 56x56, padding 1, no bias."""
    weight = numpy_helper.from_array(np.zeros((64, 64, 3, 3), dtype), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    return graph([conv], [x_input(onnx_dtype)], [weight])


def elementwise_chain() -> onnx.ModelProto:
    """x -> Relu -> Add(relu, x): two memory-bound layers on 1x64x56x56 fp32 (802,816 bytes each)."""
    return graph([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                  helper.make_node("Add", ["r", "x"], ["y"], name="add")], [x_input()])


# --- the compute-bound conv ----------------------------------------------------------------


def test_compute_bound_conv_by_hand():
    # MACs = 3*3*64 * 56*56*64 = 115,605,504
    # bytes = read x 802,816 + w 147,456 = 950,272, written 802,816: 1,753,088
    # compute = 115,605,504 / (100e9 MAC/s x 0.5) = 2.31211008 ms
    # memory  = 1,753,088 / 10e9 B/s = 0.1753088 ms  -> compute-bound
    # latency = 2.31211008 + 0.005 ms launch overhead = 2.31711008 ms
    # energy  = 115,605,504 x 4.6 pJ + 1,753,088 x 160 pJ = 531,785,318.4 + 280,494,080 pJ = 0.8122793984 mJ
    result = estimate(profile_model(conv_model()), board())
    (conv,) = result.layers
    assert conv.bound == COMPUTE
    assert conv.compute_ms == pytest.approx(2.31211008, rel=1e-12)
    assert conv.memory_ms == pytest.approx(0.1753088, rel=1e-12)
    assert conv.latency_ms == pytest.approx(2.31711008, rel=1e-12)
    assert conv.energy_mj == pytest.approx(0.8122793984, rel=1e-12)
    assert conv.intensity == pytest.approx(115_605_504 / 1_753_088)
    assert result.latency_ms == pytest.approx(2.31711008, rel=1e-12)
    assert result.energy_mj == pytest.approx(0.8122793984, rel=1e-12)


def test_fp16_weights_compute_at_the_fp16_peak():
    # the same conv with fp16 weights and activations: bytes halve to 876,544, MACs stay
    # compute = 115,605,504 / (200e9 x 0.5) = 1.15605504 ms; latency 1.16105504 ms
    # energy  = 115,605,504 x 1.5 + 876,544 x 160 = 173,408,256 + 140,247,040 pJ = 0.313655296 mJ
    result = estimate(profile_model(conv_model(np.float16, TensorProto.FLOAT16)), board())
    (conv,) = result.layers
    assert (conv.dtype, conv.bound) == ("fp16", COMPUTE)
    assert conv.latency_ms == pytest.approx(1.16105504, rel=1e-12)
    assert conv.energy_mj == pytest.approx(0.313655296, rel=1e-12)


# --- the memory-bound element-wise chain ------------------------------------------------------


def test_memory_bound_elementwise_chain_by_hand():
    # relu: 200,704 FLOPs; bytes 802,816 read + 802,816 written = 1,605,632
    #   compute = 200,704 / (100e9 x 0.25) = 0.00802816 ms; memory = 1,605,632 / 10e9 = 0.1605632 ms
    #   latency = 0.1605632 + 0.005 = 0.1655632 ms; energy = 1,605,632 x 160 pJ = 0.25690112 mJ (no MACs)
    # add:  200,704 FLOPs; bytes 1,605,632 read + 802,816 written = 2,408,448
    #   memory = 0.2408448 ms; latency = 0.2458448 ms; energy = 2,408,448 x 160 pJ = 0.38535168 mJ
    # total = 0.4114080 ms, 0.6422528 mJ
    result = estimate(profile_model(elementwise_chain()), board())
    relu, add = result.layers
    assert relu.bound == add.bound == MEMORY
    assert relu.compute_ms == pytest.approx(0.00802816, rel=1e-12)
    assert relu.latency_ms == pytest.approx(0.1655632, rel=1e-12)
    assert relu.energy_mj == pytest.approx(0.25690112, rel=1e-12)
    assert add.latency_ms == pytest.approx(0.2458448, rel=1e-12)
    assert add.energy_mj == pytest.approx(0.38535168, rel=1e-12)
    assert result.latency_ms == pytest.approx(0.411408, rel=1e-12)
    assert result.energy_mj == pytest.approx(0.6422528, rel=1e-12)
    assert result.time_by_bound()[MEMORY] == pytest.approx(0.411408, rel=1e-12)
    assert [layer.name for layer in memory_bound_layers(result, top=1)] == ["add"]


CACHE = "cache: {{size: {size}, bandwidth: 100 GB/s, pj_per_byte: 1.25}}\n"


def test_bytes_that_fit_the_cache_move_at_its_bandwidth_and_energy():
    # relu's 1,605,632 bytes fit a 2 MiB cache: memory = 1,605,632 / 100e9 = 0.01605632 ms,
    # still above compute (0.00802816 ms); energy = 1,605,632 x 1.25 pJ = 0.00200704 mJ.
    # add's 2,408,448 bytes do not fit: all from DRAM, as before.
    result = estimate(profile_model(elementwise_chain()), board(CACHE.format(size="2 MiB")))
    relu, add = result.layers
    assert (relu.dram_bytes, add.dram_bytes) == (0, 2_408_448)
    assert relu.latency_ms == pytest.approx(0.01605632 + 0.005, rel=1e-12)
    assert relu.energy_mj == pytest.approx(0.00200704, rel=1e-12)
    assert add.latency_ms == pytest.approx(0.2458448, rel=1e-12)


def test_weights_stay_in_the_cache_only_when_all_the_weights_fit():
    # the conv moves 1,753,088 bytes: 147,456 of weights, 1,605,632 of activations.
    # 1 MiB cache: the weights (all the model has) fit and stay; the layer does not fit, so its
    # activations come from DRAM: memory = 1,605,632 / 10e9 + 147,456 / 100e9 = 0.16203776 ms;
    # energy = 531,785,318.4 + 1,605,632 x 160 + 147,456 x 1.25 pJ
    #        = 531,785,318.4 + 256,901,120 + 184,320 pJ = 0.7888707584 mJ
    (conv,) = estimate(profile_model(conv_model()), board(CACHE.format(size="1 MiB"))).layers
    assert conv.dram_bytes == 1_605_632
    assert conv.memory_ms == pytest.approx(0.16203776, rel=1e-12)
    assert conv.energy_mj == pytest.approx(0.7888707584, rel=1e-12)
    # 128 KiB: the weights do not fit, nor does the layer: everything from DRAM
    (conv,) = estimate(profile_model(conv_model()), board(CACHE.format(size="128 KiB"))).layers
    assert conv.dram_bytes == 1_753_088
    # 4 MiB: everything from the cache: memory = 1,753,088 / 100e9 = 0.01753088 ms
    (conv,) = estimate(profile_model(conv_model()), board(CACHE.format(size="4 MiB"))).layers
    assert (conv.dram_bytes, conv.memory_ms) == (0, pytest.approx(0.01753088, rel=1e-12))


def test_a_launch_bound_layer_is_overhead_bound():
    tiny = graph([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])])
    (relu,) = estimate(profile_model(tiny), board()).layers
    # 64 bytes / 10e9 = 6.4 ns < 5 us of launch overhead
    assert relu.bound == OVERHEAD
    assert relu.latency_ms == pytest.approx(0.005 + 64 / 10e9 * 1e3, rel=1e-12)


def test_run_overhead_is_added_once_per_inference():
    result = estimate(profile_model(elementwise_chain()), board("run_overhead_us: 20\n"))
    assert result.latency_ms == pytest.approx(0.411408 + 0.020, rel=1e-12)


# --- recurrent layers: a projection, then one step after another ------------------------------


def recurrent_model(op_type: str, seq: int, batch: int, inputs: int, hidden: int,
                    direction: str = "forward") -> onnx.ModelProto:
    """One RNN/GRU/LSTM node, fp32, zero weights W and R (no bias), output Y only."""
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op_type]
    directions = 2 if direction == "bidirectional" else 1
    weights = [numpy_helper.from_array(np.zeros((directions, gates * hidden, size), np.float32), name)
               for name, size in (("w", inputs), ("r", hidden))]
    node = helper.make_node(op_type, ["x", "w", "r"], ["y"], name="rnn", hidden_size=hidden, direction=direction)
    return graph([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, batch, inputs])], weights)


def test_an_lstm_reads_its_recurrent_weights_at_every_step():
    # LSTM, 10 steps, batch 1, input 16, hidden 32, forward; the engine counts
    #   MACs = 4 gates x (16 + 32) x 32 x 10 = 61,440
    #   bytes = read x 640 + W 4x32x16x4 = 8,192 + R 4x32x32x4 = 16,384 (25,216), written Y 1,280: 26,496
    # recurrence: 10 steps of 1 x 4x32 x 32 = 4,096 MACs (40,960); projection 61,440 - 40,960 = 20,480 MACs
    # R is read again at steps 2..10: 9 x 16,384 = 147,456 bytes
    # recurrent borrows matmul's efficiency, matmul conv's: 100G x 0.5 = 50 G MAC/s; DRAM 10 GB/s.
    # A 16,000-byte cache holds neither the 24,576 weight bytes, nor the 26,496 bytes the layer
    # moves, nor R: everything from DRAM.
    #   projection: compute 20,480 / 50e9 = 0.4096 us, memory 26,496 / 10e9 = 2.6496 us  -> 2.6496 us
    #   steps:      compute 40,960 / 50e9 = 0.8192 us, memory 147,456 / 10e9 = 14.7456 us -> 14.7456 us
    # latency = 2.6496 + 14.7456 + 5 us launch = 22.3952 us
    # energy = 61,440 x 4.6 pJ + (26,496 + 147,456) x 160 pJ = 282,624 + 27,832,320 pJ = 0.028114944 mJ
    (lstm,) = estimate(profile_model(recurrent_model("LSTM", 10, 1, 16, 32)), board(CACHE.format(size="16000"))).layers
    assert (lstm.op_class, lstm.work, lstm.bytes_moved, lstm.dram_bytes) == ("recurrent", 61_440, 173_952, 173_952)
    assert lstm.compute_ms == pytest.approx(0.0012288, rel=1e-12)
    assert lstm.memory_ms == pytest.approx(0.0173952, rel=1e-12)
    assert lstm.latency_ms == pytest.approx(0.0223952, rel=1e-12)
    assert lstm.energy_mj == pytest.approx(0.028114944, rel=1e-12)
    assert (lstm.bound, lstm.reason) == (MEMORY, "")


def test_recurrent_weights_read_again_come_from_the_cache_when_they_fit():
    # The LSTM above with a 1 MiB cache at 100 GB/s: the model's 24,576 weight bytes fit, so they
    # stay cached, and the 26,496 bytes the layer moves fit: the projection moves them from the
    # cache, 26,496 / 100e9 = 0.26496 us < compute 0.4096 us; R (16,384 bytes) fits: the 147,456
    # bytes read again come from the cache, 1.47456 us > compute 0.8192 us.
    # latency = 0.4096 + 1.47456 + 5 = 6.88416 us: the 5 us launch is the largest of compute
    # 1.2288 us, memory 0.26496 + 1.47456 = 1.73952 us and the launch
    (lstm,) = estimate(profile_model(recurrent_model("LSTM", 10, 1, 16, 32)),
                       board(CACHE.format(size="1 MiB"))).layers
    assert (lstm.dram_bytes, lstm.bytes_moved) == (0, 173_952)
    assert lstm.memory_ms == pytest.approx(0.00173952, rel=1e-12)
    assert lstm.latency_ms == pytest.approx(0.00688416, rel=1e-12)
    assert lstm.bound == OVERHEAD


def test_without_a_cache_a_recurrent_layer_is_the_plain_roofline():
    # No cache: every byte counted once, as for any layer (an optimistic bound: the re-reads would
    # come from a cache the profile does not describe). compute 61,440 / 50e9 = 1.2288 us against
    # memory 26,496 / 10e9 = 2.6496 us: latency = 2.6496 + 5 = 7.6496 us
    (lstm,) = estimate(profile_model(recurrent_model("LSTM", 10, 1, 16, 32)), board()).layers
    assert (lstm.bytes_moved, lstm.compute_ms) == (26_496, pytest.approx(0.0012288, rel=1e-12))
    assert (lstm.latency_ms, lstm.reason) == (pytest.approx(0.0076496, rel=1e-12), "")


def test_a_bidirectional_gru_runs_its_steps_in_both_directions():
    # GRU, 6 steps, batch 2, input 8, hidden 16, bidirectional; the engine counts
    #   MACs = 3 gates x (8 + 16) x 16 x 6 x 2 x 2 directions = 27,648
    #   bytes = read x 6x2x8x4 = 384 + W 2x48x8x4 = 3,072 + R 2x48x16x4 = 6,144, written Y 6x2x2x16x4 = 1,536: 11,136
    # steps = 6 x 2 directions = 12, each 2 rows x 3x16 x 16 = 1,536 MACs (18,432); projection 9,216 MACs
    # one direction's R is 3x16x16x4 = 3,072 bytes, read again at 12 - 2 steps: 30,720 bytes
    # a 2,000-byte cache holds none of it: from DRAM
    #   projection: compute 9,216 / 50e9 = 0.18432 us, memory 11,136 / 10e9 = 1.1136 us -> 1.1136 us
    #   steps:      compute 18,432 / 50e9 = 0.36864 us, memory 30,720 / 10e9 = 3.072 us -> 3.072 us
    # latency = 1.1136 + 3.072 + 5 = 9.1856 us
    (gru,) = estimate(profile_model(recurrent_model("GRU", 6, 2, 8, 16, "bidirectional")),
                      board(CACHE.format(size="2000"))).layers
    assert (gru.work, gru.bytes_moved, gru.dram_bytes) == (27_648, 41_856, 41_856)
    assert gru.compute_ms == pytest.approx(0.00055296, rel=1e-12)
    assert gru.latency_ms == pytest.approx(0.0091856, rel=1e-12)


def test_a_recurrent_layer_whose_steps_are_not_known_is_charged_as_one_layer_and_says_so():
    # The LSTM above on the 16,000-byte cache (all from DRAM), its note in a form the estimate
    # does not read (or disagreeing with its MACs): as any layer, compute 61,440 / 50e9 = 1.2288 us
    # against memory 26,496 / 10e9 = 2.6496 us, latency = 2.6496 + 5 = 7.6496 us
    import dataclasses

    from pytest_maccbudget.devices.recurrent import STEPS_NOT_KNOWN

    (layer,) = profile_model(recurrent_model("LSTM", 10, 1, 16, 32)).layers
    notes = ("", "LSTM over 10 steps", "LSTM: seq 20, batch 1, input 16, hidden 32", layer.note.replace("LSTM", "GRU"))
    for note in notes:
        profile = profile_model(recurrent_model("LSTM", 10, 1, 16, 32))
        profile = dataclasses.replace(profile, layers=(dataclasses.replace(layer, note=note),))
        (lstm,) = estimate(profile, board(CACHE.format(size="16000"))).layers
        assert (lstm.bytes_moved, lstm.latency_ms) == (26_496, pytest.approx(0.0076496, rel=1e-12)), note
        assert lstm.reason == STEPS_NOT_KNOWN


# --- what costs nothing, and what is unknown -------------------------------------------------


def test_reshapes_and_folded_batchnorm_cost_nothing():
    weight = numpy_helper.from_array(np.ones((64, 64, 1, 1), np.float32), "w")
    bn = [numpy_helper.from_array(np.ones(64, np.float32), name) for name in ("s", "b", "m", "v")]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], name="bn"),
        helper.make_node("Flatten", ["n"], ["y"], name="flatten"),
    ]
    layers = {layer.name: layer for layer in estimate(profile_model(graph(nodes, [x_input()], [weight, *bn])), board()).layers}
    for name in ("bn", "flatten"):
        assert (layers[name].bound, layers[name].latency_ms, layers[name].energy_mj) == (FREE, 0.0, 0.0)
    assert layers["conv"].latency_ms > 0


def test_an_unknown_op_makes_latency_and_energy_unknown_never_zero():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Mystery", ["r"], ["y"], name="mystery", domain="com.acme")]
    model = graph(nodes, [x_input()])
    model.opset_import.append(helper.make_opsetid("com.acme", 1))
    model.graph.value_info.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 56, 56]))
    result = estimate(profile_model(model), board())
    mystery = result.layers[1]
    assert mystery.latency_ms is None and mystery.energy_mj is None and mystery.bound is None
    assert mystery.reason == "MACs and FLOPs not counted; MACs or bytes moved not counted"
    assert result.latency_ms is None and result.energy_mj is None
    assert result.known_latency_ms == pytest.approx(0.1655632, rel=1e-12)
    assert [layer.name for layer in result.unknown_latency] == ["mystery"]


def test_a_dtype_the_device_has_no_peak_for_is_unknown():
    result = estimate(profile_model(conv_model()), board(), dtype="int8")
    (conv,) = result.layers
    assert conv.latency_ms is None
    assert conv.reason == "device board has no int8 peak; device board has no int8 energy per MAC"


def test_a_device_without_energy_figures_gives_unknown_energy():
    device = parse_device(BOARD.replace("energy: {pj_per_mac: {fp32: 4.6, fp16: 1.5}, pj_per_dram_byte: 160}\n", ""),
                          "board.yaml")
    result = estimate(profile_model(elementwise_chain()), device)
    assert result.latency_ms == pytest.approx(0.411408, rel=1e-12)
    assert result.energy_mj is None
    assert result.layers[0].reason == "device board has no energy figures"


def test_download_size_per_dtype_and_file(tmp_path: Path):
    path = tmp_path / "conv.onnx"
    onnx.save(conv_model(), str(path))
    download = estimate(profile_model(str(path)), board()).download
    assert (download.params, download.param_bytes) == (36_864, 147_456)
    assert [download.bytes_as(d) for d in ("fp32", "fp16", "int8")] == [147_456, 73_728, 36_864]
    assert download.file_bytes == path.stat().st_size


# --- device profiles -------------------------------------------------------------------------


def test_every_builtin_profile_loads_and_names_its_source():
    assert len(BUILTIN_NAMES) >= 5
    classes = set()
    for name in BUILTIN_NAMES:
        device = load_device(name)
        assert device.name == name and device.source.startswith(f"docs/devices.md#{name}")
        assert device.peak_macs_per_s and device.memory_bandwidth > 0 and device.energy is not None
        classes.add(device.device_class)
    assert {"microcontroller", "phone-cpu", "edge-gpu", "desktop-gpu", "ci-runner"} <= classes


def test_every_builtin_device_has_a_section_in_docs():
    text = (Path(__file__).resolve().parent.parent / "docs" / "devices.md").read_text(encoding="utf-8")
    for name in BUILTIN_NAMES:
        assert f"### `{name}`" in text


def test_quantities_take_units():
    device = parse_device("name: d\nclass: c\npeak_macs_per_s: {fp32: 1.5T, int8: 6e12}\n"
                          "memory_bandwidth: 25.6 GB/s\ncache: {size: 2 MiB, bandwidth: 1.2e+11}\n", "d.yaml")
    assert device.peak_macs_per_s == {"fp32": 1.5e12, "int8": 6e12}
    assert device.memory_bandwidth == 25.6e9
    assert (device.cache.size_bytes, device.cache.bandwidth) == (2 * 2**20, 1.2e11)


def test_efficiency_falls_back_to_the_nearest_class_then_default():
    device = parse_device("name: d\nclass: c\npeak_macs_per_s: {fp32: 1G}\nmemory_bandwidth: 1GB/s\n"
                          "efficiency: {conv: 0.8, elementwise: 0.3, default: 0.6}\n", "d.yaml")
    assert device.efficiency_for("depthwise_conv") == 0.8  # -> conv
    assert device.efficiency_for("recurrent") == 0.8  # -> matmul -> conv
    assert device.efficiency_for("activation") == 0.3  # -> elementwise
    assert device.efficiency_for("other") == 0.6
    assert parse_device("name: d\nclass: c\npeak_macs_per_s: {fp32: 1G}\nmemory_bandwidth: 1GB/s\n",
                        "d.yaml").efficiency_for("conv") == 1.0


def test_a_dumped_profile_reads_back_the_same():
    device = board("cache: {size: 2 MiB, bandwidth: 100 GB/s, pj_per_byte: 1.25}\nrun_overhead_us: 20\n")
    assert parse_device(dump_device(device, header="a header\n\nline"), "again.yaml") == device


def test_a_profile_file_by_path(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text(builtin_text("jetson-nano").replace("name: jetson-nano", "name: mine"), encoding="utf-8")
    assert load_device(str(path)).name == "mine"
    assert load_device(path).peak_macs_per_s == builtin_device("jetson-nano").peak_macs_per_s


@pytest.mark.parametrize("text, message", [
    ("name: d\nclass: c\npeak_macs_per_s: {fp32: 1G}\nmemory_bandwidth: 1GB/s\nspeed: 3\n",
     "d.yaml:5: speed: unknown key 'speed'; allowed: name, class, description, source, peak_macs_per_s, "
     "memory_bandwidth, launch_overhead_us, run_overhead_us, efficiency, cache, energy"),
    ("name: d\nclass: c\nmemory_bandwidth: 1GB/s\n", "d.yaml:1: missing key 'peak_macs_per_s'"),
    ("name: d\nclass: c\npeak_macs_per_s: {fp32: fast}\nmemory_bandwidth: 1GB/s\n",
     "d.yaml:3: peak_macs_per_s.fp32: expected an amount such as 1.2T: cannot read 'fast' as a count quantity "
     "(e.g. 512, 30k, 350M, 1.82G)"),
    ("name: d\nclass: c\npeak_macs_per_s: {fp64: 1G}\nmemory_bandwidth: 1GB/s\n",
     "d.yaml:3: peak_macs_per_s.fp64: unknown key 'fp64'; allowed: fp32, fp16, int8"),
    ("name: d\nclass: c\npeak_macs_per_s: {fp32: 1G}\nmemory_bandwidth: -1GB/s\n",
     "d.yaml:4: memory_bandwidth: expected a positive amount such as 25.6 GB/s, got '-1GB/s'"),
    ("name: d\nclass: c\npeak_macs_per_s: {fp32: 1G}\nmemory_bandwidth: 1GB/s\nefficiency:\n  conv: 1.5\n",
     "d.yaml:6: efficiency.conv: an efficiency is a fraction of the peak, at most 1; got '1.5'"),
    ("name: d\nclass: c\npeak_macs_per_s: {fp32: 1G}\nmemory_bandwidth: 1GB/s\nefficiency: {convolution: 0.5}\n",
     "d.yaml:5: efficiency.convolution: unknown key 'convolution'; allowed: default, conv, depthwise_conv, matmul, "
     "elementwise, activation, pooling, normalization, reduction, movement, recurrent, attention, control_flow, other"),
    ("name: d\nclass: c\npeak_macs_per_s: {fp32: 1G}\nmemory_bandwidth: 1GB/s\nlaunch_overhead_us: -2\n",
     "d.yaml:5: launch_overhead_us: expected a non-negative number, got '-2'"),
    ("name: d\nclass: c\npeak_macs_per_s: {fp32: 1G}\nmemory_bandwidth: 1GB/s\ncache: {size: 1MiB}\n",
     "d.yaml:5: cache: missing key 'bandwidth'"),
    ("name: d\nclass: c\npeak_macs_per_s: {fp32: 1G}\nmemory_bandwidth: 1GB/s\nenergy: {pj_per_mac: {fp32: 1}}\n",
     "d.yaml:5: energy: missing key 'pj_per_dram_byte'"),
    ("name: d\nname: e\n", "d.yaml:2: name: duplicate key 'name' (first at line 1)"),
    ("name: [d\n", "d.yaml:2: invalid YAML: expected ',' or ']', but got '<stream end>'"),
    ("", "d.yaml: empty device profile"),
    ("- a\n- b\n", "d.yaml:1: expected a device profile: a mapping with keys name, class, description, source, "
                   "peak_macs_per_s, memory_bandwidth, launch_overhead_us, run_overhead_us, efficiency, cache, energy, "
                   "got a list"),
])
def test_schema_errors_name_the_file_line_and_key(text: str, message: str):
    with pytest.raises(DeviceError) as raised:
        parse_device(text, "d.yaml")
    assert str(raised.value) == message


def test_an_unknown_device_name_lists_the_builtins():
    with pytest.raises(DeviceError) as raised:
        load_device("pixel-9")
    assert str(raised.value).startswith("no built-in device 'pixel-9' and no such file; built-in devices: ")
    with pytest.raises(DeviceError, match=r"^missing\.yaml: no such file$"):
        load_device("missing.yaml")


def test_times_and_energies_print_with_three_digits_and_unknown_as_a_question_mark():
    from pytest_maccbudget.devices.report import format_mj, format_ms

    assert [format_ms(v) for v in (None, 0, 8560, 12.34, 0.456, 0.0000123)] == ["?", "0", "8.56 s", "12.3 ms",
                                                                               "456 us", "12.3 ns"]
    assert [format_mj(v) for v in (None, 0, 4.56, 0.789, 1.2e-5)] == ["?", "0", "4.56 mJ", "789 uJ", "12.0 nJ"]
