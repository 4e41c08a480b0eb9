"""onnxruntime's optimized nodes mapped back to the engine's layers, on graphs built here in the
shapes onnxruntime writes (fused nodes, blocked-layout nodes named after a tensor, reorders)."""
from __future__ import annotations

from onnx import GraphProto, TensorProto, helper

from pytest_maccbudget.devices.node_map import (
    NodeGroup,
    engine_layer_names,
    map_optimized_graph,
)


def make_graph(nodes: list) -> GraphProto:
    return helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                             [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)])


ORIGINAL = make_graph([
    helper.make_node("Conv", ["x", "w0"], ["c0"], name="conv0"),
    helper.make_node("BatchNormalization", ["c0", "s", "b", "m", "v"], ["n0"], name="bn0"),
    helper.make_node("Relu", ["n0"], ["r0"], name="relu0"),
    helper.make_node("Identity", ["r0"], ["i0"], name="identity"),
    helper.make_node("Conv", ["i0", "w1"], ["c1"], name="conv1"),
    helper.make_node("Relu", ["c1"], ["r1"]),  # unnamed: the engine names it after its output
    helper.make_node("Add", ["r1", "r0"], ["y"], name="add"),
])


def test_fused_dropped_and_blocked_layout_nodes_map_back():
    optimized = make_graph([
        # Conv + BN + Relu fused by onnxruntime: the fused node computes r0
        helper.make_node("FusedConv", ["x", "w0_fused"], ["r0"], name="conv0", domain="com.microsoft"),
        # the Identity is gone; conv1 + relu run in the blocked layout, named after r1
        helper.make_node("ReorderInput", ["r0"], ["reorder_0"], name="ReorderInput", domain="com.microsoft.nchwc"),
        helper.make_node("Conv", ["reorder_0", "w1_blocked"], ["reorder_1"], name="r1_nchwc", domain="com.microsoft.nchwc"),
        helper.make_node("ReorderOutput", ["reorder_1"], ["r1"], name="ReorderOutput_token_3",
                         domain="com.microsoft.nchwc"),
        helper.make_node("Add", ["r1", "r0"], ["y"], name="add"),
    ])
    assert map_optimized_graph(ORIGINAL, optimized) == [
        NodeGroup(("conv0",), ("conv0", "bn0", "relu0")),
        NodeGroup(("ReorderInput", "r1_nchwc", "ReorderOutput_token_3"), ("identity", "conv1", "r1")),
        NodeGroup(("add",), ("add",)),
    ]


def test_a_node_the_original_graph_does_not_know_maps_to_no_layer():
    optimized = make_graph([
        helper.make_node("Conv", ["x", "w0"], ["c0"], name="conv0"),
        helper.make_node("MemcpyToHost", ["c0"], ["copy"], name="Memcpy"),
        helper.make_node("Identity", ["copy"], ["z"], name="tail"),
    ])
    # Memcpy and tail compute no original tensor and reach no node that does through the
    # tensors only they share: their time belongs to no layer
    assert map_optimized_graph(ORIGINAL, optimized) == [
        NodeGroup(("conv0",), ("conv0",)), NodeGroup(("Memcpy",), ()), NodeGroup(("tail",), ()),
    ]


def test_engine_layer_names_follow_the_engines_rule():
    graph = make_graph([
        helper.make_node("Relu", ["x"], ["a"], name="same"),
        helper.make_node("Relu", ["a"], ["b"], name="same"),
        helper.make_node("Relu", ["b"], ["y"]),
    ])
    assert engine_layer_names(graph) == {0: "same", 1: "same#2", 2: "y"}
