"""Attention ops. Scores = B x Hq x Sq x Sk. MACs = scores x (d_qk + d_v) (+ QKV projection for
com.microsoft Attention). FLOPs per score: (2 d_qk - 1) + scale 1 + softmax 5 (+ mask 1, bias 1,
softcap 7); plus (2 Sk - 1) per output element of A.V (see docs/counting.md)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from pytest_maccbudget.engine.graph import prepare_graph
from pytest_maccbudget.engine.registry import REGISTRY
from pytest_maccbudget.engine.types import UnresolvedShape, UnsupportedAttributes
from tests.engine.onnx_build import node_cost, single_node_model, weight

MS = "com.microsoft"
SCALE, SOFTMAX, MASK, BIAS, SOFTCAP, ROTARY = 1, 5, 1, 1, 7, 3
INT32 = TensorProto.INT32


def inferred_shapes(op_type: str, inputs: dict, outputs: tuple[str, ...], **kwargs) -> list:
    """Output shapes of the op as seen downstream: each output feeds an Identity whose output is
    the graph output, so the shape must flow from the registered shape function through onnx."""
    model = single_node_model(op_type, inputs, outputs=outputs, **kwargs)
    del model.graph.output[:]
    for name in outputs:
        model.graph.node.append(helper.make_node("Identity", [name], [name + "_out"]))
        model.graph.output.append(helper.make_tensor_value_info(name + "_out", TensorProto.UNDEFINED, None))
    prepared = prepare_graph(model, REGISTRY)
    return [prepared.tensors[name + "_out"].shape for name in outputs]


# ---- ONNX Attention ----------------------------------------------------------------------

def test_onnx_attention_4d():
    cost = node_cost("Attention", {"Q": [2, 8, 10, 64], "K": [2, 8, 12, 64], "V": [2, 8, 12, 32]}, opset=23)
    assert cost.macs == 2 * 8 * 10 * 12 * 64 + 2 * 8 * 10 * 12 * 32
    assert cost.flops == 2 * 8 * 10 * 12 * (2 * 64 - 1 + SCALE + SOFTMAX) + 2 * 8 * 10 * 32 * (2 * 12 - 1)


def test_onnx_attention_3d_gqa_causal():
    # 8 query heads of 64, 2 kv heads; V head 32: every query head does the full work (no GQA discount)
    inputs = {"Q": [2, 10, 512], "K": [2, 12, 128], "V": [2, 12, 64]}
    attrs = {"q_num_heads": 8, "kv_num_heads": 2, "is_causal": 1}
    cost = node_cost("Attention", inputs, attrs=attrs, opset=23)
    assert cost.macs == 2 * 8 * 10 * 12 * (64 + 32)
    assert cost.flops == 2 * 8 * 10 * 12 * (2 * 64 - 1 + SCALE + MASK + SOFTMAX) + 2 * 8 * 10 * 32 * (2 * 12 - 1)


def test_onnx_attention_past_and_mask():
    inputs = {"Q": [2, 8, 1, 64], "K": [2, 2, 1, 64], "V": [2, 2, 1, 64], "attn_mask": [2, 8, 1, 6],
              "past_key": [2, 2, 5, 64], "past_value": [2, 2, 5, 64]}
    cost = node_cost("Attention", inputs, outputs=("y", "present_key", "present_value"), opset=23)
    sk = 5 + 1
    assert cost.macs == 2 * 8 * 1 * sk * (64 + 64)
    assert cost.flops == 2 * 8 * 1 * sk * (2 * 64 - 1 + SCALE + MASK + SOFTMAX) + 2 * 8 * 1 * 64 * (2 * sk - 1)


def test_onnx_attention_softcap():
    inputs = {"Q": [1, 4, 3, 16], "K": [1, 4, 3, 16], "V": [1, 4, 3, 16]}
    cost = node_cost("Attention", inputs, attrs={"softcap": 30.0}, opset=23)
    assert cost.macs == 1 * 4 * 3 * 3 * (16 + 16)
    assert cost.flops == 4 * 3 * 3 * (2 * 16 - 1 + SCALE + SOFTCAP + SOFTMAX) + 4 * 3 * 16 * (2 * 3 - 1)


def test_onnx_attention_3d_without_heads_is_unsupported():
    inputs = {"Q": [1, 3, 16], "K": [1, 3, 16], "V": [1, 3, 16]}
    with pytest.raises(UnsupportedAttributes):
        node_cost("Attention", inputs, opset=23)


# ---- com.microsoft Attention -------------------------------------------------------------

def test_ms_attention_bert_base_layer():
    inputs = {"input": [1, 128, 768], "weights": weight(768, 2304), "bias": weight(2304),
              "mask_index": ([1, 128], INT32)}
    cost = node_cost("Attention", inputs, attrs={"num_heads": 12}, domain=MS)
    projection = 128 * 768 * 2304
    assert cost.macs == projection + 12 * 128 * 128 * (64 + 64) == 251_658_240
    assert cost.flops == ((2 * 768 - 1) * 128 * 2304 + 128 * 2304
                          + 12 * 128 * 128 * (2 * 64 - 1 + SCALE + MASK + SOFTMAX)
                          + 12 * 128 * 64 * (2 * 128 - 1))


def test_ms_attention_past_unidirectional_and_shapes():
    inputs = {"input": [2, 1, 64], "weights": [64, 192], "bias": None, "mask_index": None,
              "past": [2, 2, 4, 7, 16]}
    attrs = {"num_heads": 4, "unidirectional": 1}
    cost = node_cost("Attention", inputs, attrs=attrs, outputs=("y", "present"), domain=MS)
    sk = 7 + 1
    assert cost.macs == 2 * 1 * 64 * 192 + 2 * 4 * 1 * sk * (16 + 16)
    assert cost.flops == ((2 * 64 - 1) * 2 * 192
                          + 2 * 4 * sk * (2 * 16 - 1 + SCALE + MASK + SOFTMAX) + 2 * 4 * 16 * (2 * sk - 1))
    shapes = inferred_shapes("Attention", inputs, ("y", "present"), attrs=attrs, domain=MS)
    assert shapes == [(2, 1, 64), (2, 2, 4, 8, 16)]


def test_ms_attention_qkv_hidden_sizes_attention_bias_rotary():
    inputs = {"input": [1, 10, 32], "weights": [32, 160], "bias": [160], "mask_index": None,
              "past": None, "attention_bias": [1, 4, 10, 10]}
    attrs = {"num_heads": 4, "qkv_hidden_sizes": [64, 64, 32], "do_rotary": 1}
    cost = node_cost("Attention", inputs, attrs=attrs, domain=MS)
    assert cost.macs == 10 * 32 * 160 + 4 * 10 * 10 * (16 + 8)
    assert cost.flops == ((2 * 32 - 1) * 10 * 160 + 10 * 160
                          + 4 * 10 * 10 * (2 * 16 - 1 + SCALE + BIAS + SOFTMAX) + 4 * 10 * 8 * (2 * 10 - 1)
                          + ROTARY * 10 * (4 + 4) * 16)
    assert inferred_shapes("Attention", inputs, ("y",), attrs=attrs, domain=MS) == [(1, 10, 32)]


def test_ms_attention_shared_buffer_uses_past_sequence_length():
    inputs = {"input": [1, 1, 64], "weights": [64, 192], "bias": None, "mask_index": None,
              "past": [2, 1, 4, 32, 16], "attention_bias": None, "past_sequence_length": np.array(9, dtype=np.int32)}
    attrs = {"num_heads": 4, "past_present_share_buffer": 1}
    cost = node_cost("Attention", inputs, attrs=attrs, domain=MS)
    assert cost.macs == 64 * 192 + 4 * 1 * (9 + 1) * (16 + 16)


def test_ms_attention_shared_buffer_without_length_is_unresolved():
    inputs = {"input": [1, 1, 64], "weights": [64, 192], "bias": None, "mask_index": None,
              "past": [2, 1, 4, 32, 16], "attention_bias": None, "past_sequence_length": ([], INT32)}
    with pytest.raises(UnresolvedShape):
        node_cost("Attention", inputs, attrs={"num_heads": 4, "past_present_share_buffer": 1}, domain=MS)


# ---- com.microsoft MultiHeadAttention ----------------------------------------------------

def test_mha_3d_with_bias_and_shapes():
    inputs = {"query": [2, 10, 64], "key": [2, 12, 64], "value": [2, 12, 32], "bias": [160]}
    cost = node_cost("MultiHeadAttention", inputs, attrs={"num_heads": 4}, domain=MS)
    assert cost.macs == 2 * 4 * 10 * 12 * (16 + 8)
    assert cost.flops == (2 * 4 * 10 * 12 * (2 * 16 - 1 + SCALE + SOFTMAX) + 2 * 4 * 10 * 8 * (2 * 12 - 1)
                          + 2 * 10 * 64 + 2 * 12 * (64 + 32))
    shapes = inferred_shapes("MultiHeadAttention", inputs, ("y",), attrs={"num_heads": 4}, domain=MS)
    assert shapes == [(2, 10, 32)]


def test_mha_packed_qkv():
    cost = node_cost("MultiHeadAttention", {"query": [2, 10, 4, 3, 16]}, attrs={"num_heads": 4}, domain=MS)
    assert cost.macs == 2 * 4 * 10 * 10 * (16 + 16)
    assert cost.flops == 2 * 4 * 10 * 10 * (2 * 16 - 1 + SCALE + SOFTMAX) + 2 * 4 * 10 * 16 * (2 * 10 - 1)


def test_mha_packed_kv_with_masks():
    inputs = {"query": [1, 5, 64], "key": [1, 7, 4, 2, 16], "value": None, "bias": None,
              "key_padding_mask": ([1, 7], INT32), "attention_bias": [1, 4, 5, 7]}
    cost = node_cost("MultiHeadAttention", inputs, attrs={"num_heads": 4}, domain=MS)
    assert cost.macs == 4 * 5 * 7 * (16 + 16)
    assert cost.flops == 4 * 5 * 7 * (2 * 16 - 1 + SCALE + MASK + BIAS + SOFTMAX) + 4 * 5 * 16 * (2 * 7 - 1)


def test_mha_bnsh_cross_cache_biases_only_query():
    inputs = {"query": [2, 3, 64], "key": [2, 4, 20, 16], "value": [2, 4, 20, 16], "bias": [192]}
    cost = node_cost("MultiHeadAttention", inputs, attrs={"num_heads": 4}, domain=MS)
    assert cost.macs == 2 * 4 * 3 * 20 * (16 + 16)
    assert cost.flops == (2 * 4 * 3 * 20 * (2 * 16 - 1 + SCALE + SOFTMAX) + 2 * 4 * 3 * 16 * (2 * 20 - 1)
                          + 2 * 3 * 64)


def test_mha_past_causal_and_present_shapes():
    inputs = {"query": [1, 1, 64], "key": [1, 1, 64], "value": [1, 1, 64], "bias": None,
              "key_padding_mask": None, "attention_bias": None,
              "past_key": [1, 4, 9, 16], "past_value": [1, 4, 9, 16]}
    attrs = {"num_heads": 4, "unidirectional": 1}
    outputs = ("y", "present_key", "present_value")
    cost = node_cost("MultiHeadAttention", inputs, attrs=attrs, outputs=outputs, domain=MS)
    sk = 9 + 1
    assert cost.macs == 4 * 1 * sk * (16 + 16)
    assert cost.flops == 4 * sk * (2 * 16 - 1 + SCALE + MASK + SOFTMAX) + 4 * 16 * (2 * sk - 1)
    shapes = inferred_shapes("MultiHeadAttention", inputs, outputs, attrs=attrs, domain=MS)
    assert shapes == [(1, 1, 64), (1, 4, 10, 16), (1, 4, 10, 16)]


# ---- com.microsoft GroupQueryAttention ---------------------------------------------------

def gqa_inputs(q_len: int, *, past: int = 0, total=None, packed: bool = False, batch: int = 1) -> dict:
    inputs: dict = {"query": [batch, q_len, (8 + 2 * 2) * 32 if packed else 8 * 32],
                    "key": None if packed else [batch, q_len, 2 * 32],
                    "value": None if packed else [batch, q_len, 2 * 32],
                    "past_key": [batch, 2, past, 32] if past else None,
                    "past_value": [batch, 2, past, 32] if past else None,
                    "seqlens_k": ([batch], INT32),
                    "total_sequence_length": np.array(total, dtype=np.int32) if total is not None else ([], INT32)}
    return inputs


def test_gqa_prompt_causal():
    cost = node_cost("GroupQueryAttention", gqa_inputs(16, total=16), attrs={"num_heads": 8, "kv_num_heads": 2},
                     domain=MS)
    assert cost.macs == 1 * 8 * 16 * 16 * (32 + 32)
    assert cost.flops == 8 * 16 * 16 * (2 * 32 - 1 + SCALE + MASK + SOFTMAX) + 8 * 16 * 32 * (2 * 16 - 1)


def test_gqa_decode_with_past_total_unknown_and_shapes():
    attrs = {"num_heads": 8, "kv_num_heads": 2}
    inputs = gqa_inputs(1, past=15)
    outputs = ("y", "present_key", "present_value")
    cost = node_cost("GroupQueryAttention", inputs, attrs=attrs, outputs=outputs, domain=MS)
    sk = 15 + 1
    assert cost.macs == 8 * 1 * sk * (32 + 32)
    assert cost.flops == 8 * sk * (2 * 32 - 1 + SCALE + MASK + SOFTMAX) + 8 * 32 * (2 * sk - 1)
    shapes = inferred_shapes("GroupQueryAttention", inputs, outputs, attrs=attrs, domain=MS)
    assert shapes == [(1, 1, 256), (1, 2, 16, 32), (1, 2, 16, 32)]


def test_gqa_shared_buffer_total_from_input_value():
    # past buffer holds 64 positions, only 20 are valid: total_sequence_length decides
    inputs = gqa_inputs(1, past=64, total=20)
    cost = node_cost("GroupQueryAttention", inputs, attrs={"num_heads": 8, "kv_num_heads": 2}, domain=MS)
    assert cost.macs == 8 * 1 * 20 * (32 + 32)


def test_gqa_packed_qkv_non_causal_softcap():
    attrs = {"num_heads": 8, "kv_num_heads": 2, "causal": 0, "softcap": 50.0}
    cost = node_cost("GroupQueryAttention", gqa_inputs(4, total=4, packed=True, batch=2), attrs=attrs, domain=MS)
    assert cost.macs == 2 * 8 * 4 * 4 * (32 + 32)
    assert cost.flops == 2 * 8 * 4 * 4 * (2 * 32 - 1 + SCALE + SOFTCAP + SOFTMAX) + 2 * 8 * 4 * 32 * (2 * 4 - 1)


def test_gqa_rotary_uses_cos_cache_width():
    inputs = gqa_inputs(16, total=16) | {"cos_cache": [128, 8], "sin_cache": [128, 8]}  # rotary dim 16 of 32
    cost = node_cost("GroupQueryAttention", inputs, attrs={"num_heads": 8, "kv_num_heads": 2, "do_rotary": 1},
                     domain=MS)
    assert cost.macs == 8 * 16 * 16 * (32 + 32)
    assert cost.flops == (8 * 16 * 16 * (2 * 32 - 1 + SCALE + MASK + SOFTMAX) + 8 * 16 * 32 * (2 * 16 - 1)
                          + ROTARY * 16 * (8 + 2) * 16)


def test_gqa_quantized_cache_is_unsupported():
    inputs = gqa_inputs(1, past=15) | {"cos_cache": None, "sin_cache": None, "position_ids": None,
                                       "attention_bias": None, "head_sink": None, "k_scale": [1], "v_scale": [1]}
    with pytest.raises(UnsupportedAttributes):
        node_cost("GroupQueryAttention", inputs, attrs={"num_heads": 8, "kv_num_heads": 2}, domain=MS)


def test_mha_3d_query_without_key_is_unsupported():
    with pytest.raises(UnsupportedAttributes):
        node_cost("MultiHeadAttention", {"query": [1, 4, 64]}, attrs={"num_heads": 4}, domain=MS)


def test_ms_attention_weights_not_matching_hidden_sizes_is_unsupported():
    inputs = {"input": [1, 4, 32], "weights": [32, 96]}
    with pytest.raises(UnsupportedAttributes):
        node_cost("Attention", inputs, attrs={"num_heads": 4, "qkv_hidden_sizes": [32, 32, 64]}, domain=MS)
