"""Peak activation memory by liveness, worked out by hand for small graphs."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pytest_maccbudget import profile_model

F32 = TensorProto.FLOAT


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, list[int]], outputs: list[str], initializers=()) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, F32, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(o, F32, None) for o in outputs], list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_chain_keeps_two_buffers_live() -> None:
    # x, a, b, c: 1*4*8*8 floats = 1024 bytes each. At every step one input and one output are live.
    model = _model([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
                    helper.make_node("Relu", ["b"], ["c"])], {"x": [1, 4, 8, 8]}, ["c"])
    profile = profile_model(model)
    assert profile.totals.peak_activation_bytes == 2 * 1024
    assert profile.totals.activation_bytes == 3 * 1024


def test_fan_out_keeps_the_input_live_until_its_last_reader() -> None:
    # step0 a=relu(x): x,a; step1 b=relu(x): x,a,b (3072); step2 c=a+b: a,b,c (3072)
    model = _model([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["x"], ["b"]),
                    helper.make_node("Add", ["a", "b"], ["c"])], {"x": [1, 4, 8, 8]}, ["c"])
    assert profile_model(model).totals.peak_activation_bytes == 3 * 1024


def test_reshape_aliases_its_input() -> None:
    # a and its reshape r share one buffer: at step2 (b = relu(r)) only r/a and b are live
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, 256])
    model = _model([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Reshape", ["a", "shape"], ["r"]),
                    helper.make_node("Relu", ["r"], ["b"])], {"x": [1, 4, 8, 8]}, ["b"], [shape])
    profile = profile_model(model)
    assert profile.totals.peak_activation_bytes == 2 * 1024
    reshape = profile.layer(profile.layers[1].name)
    assert (reshape.bytes_read, reshape.bytes_written) == (0, 0)


def test_concat_inputs_live_inside_its_output() -> None:
    # a and b (1024 B each) are written into the 2048 B concat buffer, live from step 0.
    # step0: x + concat buffer = 3072; step1 the same; step2 (concat itself, no copy): 2048.
    # Counting a, b and c separately would give 4096 at step 2.
    model = _model([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Sigmoid", ["x"], ["b"]),
                    helper.make_node("Concat", ["a", "b"], ["c"], axis=1)], {"x": [1, 4, 8, 8]}, ["c"])
    profile = profile_model(model)
    assert profile.totals.peak_activation_bytes == 3 * 1024
    concat = profile.layers[2]
    assert (concat.macs, concat.flops, concat.bytes_read, concat.bytes_written) == (0, 0, 0, 0)


def test_concat_of_a_graph_input_copies_it() -> None:
    # x cannot be produced into c's buffer, so it is copied: a lives inside c (2048 B), x (1024 B)
    # stays separate: 3072 at both steps. Were x placed inside c too, the peak would be 2048.
    model = _model([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Concat", ["x", "a"], ["c"], axis=1)],
                   {"x": [1, 4, 8, 8]}, ["c"])
    assert profile_model(model).totals.peak_activation_bytes == 3 * 1024


def test_traffic_counts_inputs_weights_and_outputs() -> None:
    # Transpose copies: reads 1024 B, writes 1024 B; Relu the same.
    model = _model([helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]), helper.make_node("Relu", ["t"], ["y"])],
                   {"x": [1, 4, 8, 8]}, ["y"])
    profile = profile_model(model)
    assert [(l.bytes_read, l.bytes_written) for l in profile.layers] == [(1024, 1024), (1024, 1024)]
    assert profile.totals.memory_traffic_bytes == 4 * 1024


def test_an_output_left_out_and_a_value_info_with_no_name_do_not_hide_the_sizes() -> None:
    # MaxPool's optional Indices output left out (""), and a graph output entry with no name (a
    # file can hold one): the layer's bytes are still its input's and its output's, 1024 B each
    model = _model([helper.make_node("MaxPool", ["x"], ["y", ""], name="pool", kernel_shape=[1, 1])],
                   {"x": [1, 4, 8, 8]}, ["y", ""])
    pool = profile_model(model).layer("pool")
    assert (pool.output_bytes, pool.bytes_read, pool.bytes_written) == (1024, 1024, 1024)


def test_unknown_size_makes_peak_unknown_not_zero() -> None:
    model = _model([helper.make_node("Relu", ["x"], ["a"])], {}, ["a"])
    model.graph.input.append(helper.make_tensor_value_info("x", F32, ["n", "c"]))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "c"
    profile = profile_model(model)  # the batch dim becomes 1; "c" stays unknown
    assert profile.totals.peak_activation_bytes is None
    assert any("peak activation memory unknown" in note for note in profile.notes)


def test_a_counted_layer_of_unknown_size_is_named_not_summed_as_zero() -> None:
    # relu: 6 floats in and out (24 B each); y = Pad(relu's output, p) by pads given at run time:
    # Pad costs no FLOPs whatever it pads, so it is counted, but its output's size is not known
    model = _model([helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Pad", ["r", "p"], ["y"], name="pad")],
                   {"x": [2, 3]}, ["y"])
    model.graph.input.append(helper.make_tensor_value_info("p", TensorProto.INT64, [4]))
    profile = profile_model(model)
    assert not profile.partial and profile.layer("pad").bytes_written is None
    totals = profile.totals
    assert (totals.activation_bytes, totals.bytes_read, totals.bytes_written) == (24, 24 + 24 + 4 * 8, 24)
    assert ("memory traffic incomplete: 1 counted layer(s) read or write tensors of unknown size, left out of the "
            "byte totals, e.g. 'pad'") in profile.notes


def test_an_in_place_concat_of_unknown_size_is_named_too() -> None:
    # c = Concat(Pad(r, p), r): written in place (it moves no bytes), but it allocates its output,
    # whose size is not known either: 2 layers are left out of the activation bytes
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Pad", ["r", "p"], ["padded"], name="pad"),
             helper.make_node("Concat", ["padded", "r"], ["y"], name="concat", axis=0)]
    model = _model(nodes, {"x": [2, 3]}, ["y"])
    model.graph.input.append(helper.make_tensor_value_info("p", TensorProto.INT64, [4]))
    profile = profile_model(model)
    assert (profile.layer("concat").bytes_written, profile.layer("concat").output_bytes) == (0, None)
    assert any(note.startswith("memory traffic incomplete: 2 counted layer(s)") for note in profile.notes)


def test_byte_totals_of_known_sizes_say_nothing() -> None:
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="relu")], {"x": [2, 3]}, ["y"])
    assert not any(note.startswith("memory traffic incomplete") for note in profile_model(model).notes)


def test_a_tensor_read_by_two_concats_lives_in_only_one_of_them() -> None:
    # t = relu(x) is written into A's buffer (with -x); B = concat(t, |x|) copies it (|x| inside B).
    # x, t, -x, |x| are 4,000 B, A, B, y 8,000 B. Step 2 (|x|): x + A + B = 20,000;
    # step 5 (y = A + B): A + B + y = 24,000. Were t inside both, A and B would be one buffer.
    nodes = [helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Neg", ["x"], ["n"]),
             helper.make_node("Abs", ["x"], ["a"]),
             helper.make_node("Concat", ["t", "n"], ["A"], axis=1), helper.make_node("Concat", ["t", "a"], ["B"], axis=1),
             helper.make_node("Add", ["A", "B"], ["y"])]
    profile = profile_model(_model(nodes, {"x": [1, 1000]}, ["y"]))
    assert profile.totals.peak_activation_bytes == 24_000


def test_graph_outputs_stay_live_to_the_end() -> None:
    # a = relu(x) is a graph output read by nothing: it stays live to the end. x and every
    # activation are 1024 B; step 4 (e = c + d) holds a, c, d, e: 4096. Freed after step 0, a
    # would leave a peak of 3072 (x, a, b at step 1; c, d, e at step 4).
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["x"], ["b"]),
             helper.make_node("Abs", ["b"], ["c"]), helper.make_node("Exp", ["c"], ["d"]),
             helper.make_node("Add", ["c", "d"], ["e"])]
    profile = profile_model(_model(nodes, {"x": [1, 4, 8, 8]}, ["a", "e"]))
    assert profile.totals.peak_activation_bytes == 4 * 1024


def test_a_folded_batchnorm_shares_its_conv_buffer() -> None:
    # conv c (1024 B) -> folded BN y -> global pool z (16 B). Step 0: x (768) + c = 1792; step 1
    # (the BN): c and y are one buffer, 1024; step 2: y + z. As two buffers, step 1 would be 2048.
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")] + [
        numpy_helper.from_array(np.ones(4, np.float32), name) for name in ("scale", "bias", "mean", "var")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["y"], name="bn"),
             helper.make_node("GlobalAveragePool", ["y"], ["z"], name="pool")]
    profile = profile_model(_model(nodes, {"x": [1, 3, 8, 8]}, ["z"], inits))
    assert profile.layer("bn").status == "folded"
    assert profile.totals.peak_activation_bytes == 768 + 1024
