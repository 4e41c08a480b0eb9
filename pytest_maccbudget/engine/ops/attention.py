"""Attention ops: ONNX `Attention` (opset 23+) and the com.microsoft contrib ops `Attention`,
`MultiHeadAttention` and `GroupQueryAttention`.

MACs = projections inside the op (contrib `Attention` only) + Q.K^T + A.V, for every query head
(grouped K/V heads are shared, not discounted) and every (query, key) pair: no causal discount.
FLOPs per score: the Q.K^T dot (2 d_qk - 1), scale 1, softmax 5, plus mask 1, additive bias 1 and
softcap 7 where present; then A.V (2 S_k - 1) per output element.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..registry import ATTENTION, register, register_shape
from ..types import NodeView, OpCost, Shape, UnsupportedAttributes
from ._common import MS_DOMAIN, SOFTMAX

SCALE_FLOPS = 1      # one multiply per score (however the runtime folds it into Q or K)
MASK_FLOPS = 1       # per score, once for all masking (attention mask, causal, window, padding)
BIAS_FLOPS = 1       # per score, an additive attention bias input
SOFTCAP_FLOPS = 7    # per score: div, tanh (5), mul
SINK_FLOPS = 3       # per softmax row (smooth softmax / head sink): sub, exp, add to the denominator
ROTARY_FLOPS = 3     # per rotated Q/K element: two muls and one add (cos/sin caches precomputed)


@dataclass(frozen=True)
class AttentionDims:
    """The core of scaled dot-product attention, per query head."""

    batch: int
    q_heads: int
    q_len: int
    kv_len: int  # keys attended per query: past + new
    qk_head: int
    v_head: int

    @property
    def scores(self) -> int:
        return self.batch * self.q_heads * self.q_len * self.kv_len

    @property
    def outputs(self) -> int:
        return self.batch * self.q_heads * self.q_len * self.v_head

    @property
    def rows(self) -> int:
        """Softmax rows: one per query position and head."""
        return self.batch * self.q_heads * self.q_len


# ---- pure math ---------------------------------------------------------------------------

def attention_core_macs(dims: AttentionDims) -> int:
    """Q.K^T (B x H x Sq x Sk x d_qk) + A.V (B x H x Sq x Sk x d_v)."""
    return dims.scores * dims.qk_head + dims.scores * dims.v_head


def attention_core_flops(dims: AttentionDims, per_score_extra: int = 0) -> int:
    """(2 d_qk - 1) + scale + softmax + extras per score, plus (2 Sk - 1) per output element."""
    if dims.scores == 0:
        return 0
    qk = (2 * dims.qk_head - 1) * dims.scores
    av = (2 * dims.kv_len - 1) * dims.outputs
    return qk + av + (SCALE_FLOPS + SOFTMAX + per_score_extra) * dims.scores


def projection_macs(tokens: int, in_features: int, out_features: int) -> int:
    return tokens * in_features * out_features


def projection_flops(tokens: int, in_features: int, out_features: int, bias: bool) -> int:
    flops = (2 * in_features - 1) * tokens * out_features
    return flops + (tokens * out_features if bias else 0)


def per_score_extras(mask: bool, bias: bool, softcap: bool) -> int:
    return (MASK_FLOPS if mask else 0) + (BIAS_FLOPS if bias else 0) + (SOFTCAP_FLOPS if softcap else 0)


def _divide(total: int, parts: int, what: str) -> int:
    if parts <= 0 or total % parts:
        raise UnsupportedAttributes(f"{what}: {total} is not divisible by {parts}")
    return total // parts


def _required_int(node: NodeView, name: str) -> int:
    value = node.attr(name)
    if value is None:
        raise UnsupportedAttributes(f"{node.op_type} needs the {name!r} attribute")
    return int(value)


def _scalar_value(node: NodeView, index: int) -> int:
    value = node.input_value(index)
    return int(value.reshape(-1)[0])


# ---- ONNX Attention (opset 23+) ----------------------------------------------------------

def _bhsd(node: NodeView, index: int, heads_attr: str) -> tuple[int, int, int, int]:
    """(batch, heads, seq, head_size) of a 4-D [B, H, S, d] or 3-D [B, S, H*d] input."""
    shape = node.input_shape(index)
    if len(shape) == 4:
        return shape[0], shape[1], shape[2], shape[3]
    if len(shape) == 3:
        heads = _required_int(node, heads_attr)
        return shape[0], heads, shape[1], _divide(shape[2], heads, f"{node.op_type} input {index} hidden size / {heads_attr}")
    raise UnsupportedAttributes(f"{node.op_type} input {index} must be 3-D or 4-D, got {list(shape)}")


def onnx_attention_dims(node: NodeView) -> AttentionDims:
    batch, q_heads, q_len, qk_head = _bhsd(node, 0, "q_num_heads")
    _, kv_heads, kv_len, k_head = _bhsd(node, 1, "kv_num_heads")
    _, _, _, v_head = _bhsd(node, 2, "kv_num_heads")
    if k_head != qk_head:
        raise UnsupportedAttributes(f"Attention: Q head size {qk_head} differs from K head size {k_head}")
    if q_heads % kv_heads:
        raise UnsupportedAttributes(f"Attention: q heads {q_heads} not a multiple of kv heads {kv_heads}")
    past = node.input_shape(4)[2] if node.has_input(4) else 0
    return AttentionDims(batch, q_heads, q_len, past + kv_len, qk_head, v_head)


def _window_set(node: NodeView, name: str) -> bool:
    value = node.attr(name)
    return value is not None and int(value) >= 0


@register("Attention", op_class=ATTENTION)
def onnx_attention_cost(node: NodeView) -> OpCost:
    """MACs = B x Hq x Sq x Sk x (d_qk + d_v), Sk = past + kv length; FLOPs add scale, mask, softcap, softmax."""
    dims = onnx_attention_dims(node)
    masked = (
        node.has_input(3) or int(node.attr("is_causal", 0)) != 0 or node.has_input(6)
        or _window_set(node, "left_window_size") or _window_set(node, "right_window_size")
    )
    softcap = float(node.attr("softcap", 0.0) or 0.0) != 0.0
    extras = per_score_extras(mask=masked, bias=False, softcap=softcap)
    return OpCost(
        macs=attention_core_macs(dims),
        flops=attention_core_flops(dims, extras),
        note=_note(dims),
    )


def _note(dims: AttentionDims) -> str:
    return (f"attention: batch {dims.batch}, heads {dims.q_heads}, Sq {dims.q_len}, Sk {dims.kv_len}, "
            f"d_qk {dims.qk_head}, d_v {dims.v_head}")


# ---- com.microsoft Attention (QKV projection inside) -------------------------------------

@dataclass(frozen=True)
class MsAttentionShapes:
    batch: int
    seq: int
    in_hidden: int
    q_hidden: int
    k_hidden: int
    v_hidden: int
    heads: int
    past: int  # past sequence length attended
    past_shape: Optional[Shape]


def ms_attention_shapes(node: NodeView) -> MsAttentionShapes:
    x_shape = node.input_shape(0)
    if len(x_shape) != 3:
        raise UnsupportedAttributes(f"com.microsoft Attention input must be 3-D, got {list(x_shape)}")
    batch, seq, in_hidden = x_shape
    w_shape = node.input_shape(1)
    if len(w_shape) != 2:
        raise UnsupportedAttributes(f"com.microsoft Attention weights must be 2-D, got {list(w_shape)}")
    sizes = node.attr("qkv_hidden_sizes")
    if sizes:
        q_hidden, k_hidden, v_hidden = (int(s) for s in sizes)
    else:
        q_hidden = k_hidden = v_hidden = _divide(w_shape[1], 3, "com.microsoft Attention weights width / 3")
    if w_shape[0] != in_hidden or q_hidden + k_hidden + v_hidden != w_shape[1]:
        raise UnsupportedAttributes(
            f"com.microsoft Attention weights {list(w_shape)} do not match input width {in_hidden} "
            f"and hidden sizes {[q_hidden, k_hidden, v_hidden]}"
        )
    heads = _required_int(node, "num_heads")
    past, past_shape = 0, None
    if node.has_input(4):
        past_shape = node.input_shape(4)  # [2, B, N, P, d]
        if int(node.attr("past_present_share_buffer", 0)):
            past = _scalar_value(node, 6)
        else:
            past = past_shape[3]
    return MsAttentionShapes(batch, seq, in_hidden, q_hidden, k_hidden, v_hidden, heads, past, past_shape)


@register("Attention", domain=MS_DOMAIN, op_class=ATTENTION)
def ms_attention_cost(node: NodeView) -> OpCost:
    """MACs = B x S x Din x (Hq + Hk + Hv) projection + B x N x S x (P + S) x (d_qk + d_v) core."""
    s = ms_attention_shapes(node)
    qk_head = _divide(s.q_hidden, s.heads, "q hidden / num_heads")
    v_head = _divide(s.v_hidden, s.heads, "v hidden / num_heads")
    dims = AttentionDims(s.batch, s.heads, s.seq, s.past + s.seq, qk_head, v_head)
    tokens, out_features = s.batch * s.seq, s.q_hidden + s.k_hidden + s.v_hidden
    masked = node.has_input(3) or int(node.attr("unidirectional", 0)) != 0
    extras = per_score_extras(mask=masked, bias=node.has_input(5), softcap=False)
    flops = projection_flops(tokens, s.in_hidden, out_features, bias=node.has_input(2))
    flops += attention_core_flops(dims, extras)
    if int(node.attr("do_rotary", 0)):
        rotary_dim = int(node.attr("rotary_embedding_dim", 0) or qk_head)
        flops += ROTARY_FLOPS * tokens * 2 * s.heads * rotary_dim
    macs = projection_macs(tokens, s.in_hidden, out_features) + attention_core_macs(dims)
    return OpCost(macs=macs, flops=flops, note=_note(dims) + f", QKV projection {s.in_hidden} -> {out_features}")


@register_shape("Attention", domain=MS_DOMAIN)
def ms_attention_shape(node: NodeView) -> list[Optional[Shape]]:
    s = ms_attention_shapes(node)
    qk_head = _divide(s.q_hidden, s.heads, "q hidden / num_heads")
    if s.past_shape is not None and int(node.attr("past_present_share_buffer", 0)):
        present: Optional[Shape] = s.past_shape
    else:
        present = (2, s.batch, s.heads, s.past + s.seq, qk_head)
    return [(s.batch, s.seq, s.v_hidden), present]


# ---- com.microsoft MultiHeadAttention (Q, K, V already projected) ------------------------

@dataclass(frozen=True)
class MhaShapes:
    dims: AttentionDims
    kv_new: int  # new key/value tokens (0 when K/V come as a BNSH cache)
    present_len: int


def mha_shapes(node: NodeView) -> MhaShapes:
    heads = _required_int(node, "num_heads")
    q_shape = node.input_shape(0)
    kv_is_cache = False
    if len(q_shape) == 5:  # packed QKV [B, S, N, 3, H]
        batch, q_len, _, _, qk_head = q_shape
        kv_len, v_head = q_len, qk_head
    elif len(q_shape) == 3:
        batch, q_len, q_hidden = q_shape
        qk_head = _divide(q_hidden, heads, "MultiHeadAttention query hidden / num_heads")
        if not node.has_input(1):
            raise UnsupportedAttributes("MultiHeadAttention with a 3-D query needs a key input")
        k_shape = node.input_shape(1)
        if len(k_shape) == 5:  # packed KV [B, L, N, 2, H]
            kv_len, v_head = k_shape[1], k_shape[4]
        elif len(k_shape) == 4:  # BNSH key, used as is (cross-attention cache)
            kv_is_cache = True
            kv_len = k_shape[2]
            v_head = node.input_shape(2)[3]
        elif len(k_shape) == 3:
            kv_len = k_shape[1]
            v_shape = node.input_shape(2)
            v_head = v_shape[3] if len(v_shape) == 4 else _divide(v_shape[2], heads, "value hidden / num_heads")
        else:
            raise UnsupportedAttributes(f"MultiHeadAttention key must be 3-, 4- or 5-D, got {list(k_shape)}")
    else:
        raise UnsupportedAttributes(f"MultiHeadAttention query must be 3-D or 5-D, got {list(q_shape)}")
    past = 0
    if node.has_input(6) and not kv_is_cache:
        past = _scalar_value(node, 8) if node.has_input(8) else node.input_shape(6)[2]
    total = past + kv_len
    present_len = node.input_shape(6)[2] if node.has_input(6) and node.has_input(8) else total
    dims = AttentionDims(batch, heads, q_len, total, qk_head, v_head)
    return MhaShapes(dims, 0 if kv_is_cache else kv_len, present_len)


@register("MultiHeadAttention", domain=MS_DOMAIN, op_class=ATTENTION)
def mha_cost(node: NodeView) -> OpCost:
    """MACs = B x N x Sq x Sk x (d_qk + d_v), Sk = past + kv length; FLOPs add bias adds, mask, bias, softmax."""
    shapes = mha_shapes(node)
    dims = shapes.dims
    masked = node.has_input(4) or int(node.attr("unidirectional", 0)) != 0
    extras = per_score_extras(mask=masked, bias=node.has_input(5), softcap=False)
    flops = attention_core_flops(dims, extras)
    if node.has_input(3):  # projection bias added to Q and to the new K, V tokens
        flops += dims.batch * dims.q_heads * dims.q_len * dims.qk_head
        flops += dims.batch * dims.q_heads * shapes.kv_new * (dims.qk_head + dims.v_head)
    return OpCost(macs=attention_core_macs(dims), flops=flops, note=_note(dims))


@register_shape("MultiHeadAttention", domain=MS_DOMAIN)
def mha_shape(node: NodeView) -> list[Optional[Shape]]:
    shapes = mha_shapes(node)
    d = shapes.dims
    return [
        (d.batch, d.q_len, d.q_heads * d.v_head),
        (d.batch, d.q_heads, shapes.present_len, d.qk_head),
        (d.batch, d.q_heads, shapes.present_len, d.v_head),
        (d.batch, d.q_heads, d.q_len, d.kv_len),
    ]


# ---- com.microsoft GroupQueryAttention ---------------------------------------------------

@dataclass(frozen=True)
class GqaShapes:
    dims: AttentionDims
    kv_heads: int
    present_len: int


def _known_scalar(node: NodeView, index: int) -> Optional[int]:
    if not node.has_input(index) or node.input(index).value is None:
        return None
    return _scalar_value(node, index)


def gqa_shapes(node: NodeView) -> GqaShapes:
    heads = _required_int(node, "num_heads")
    kv_heads = _required_int(node, "kv_num_heads")
    if kv_heads <= 0 or heads % kv_heads:
        raise UnsupportedAttributes(f"GroupQueryAttention: num_heads {heads} not a multiple of kv_num_heads {kv_heads}")
    q_shape = node.input_shape(0)
    if len(q_shape) != 3:
        raise UnsupportedAttributes(f"GroupQueryAttention query must be 3-D, got {list(q_shape)}")
    batch, q_len, q_hidden = q_shape
    if node.has_input(1):
        head = _divide(q_hidden, heads, "GroupQueryAttention query hidden / num_heads")
        kv_len = node.input_shape(1)[1]
    else:  # packed QKV: (N + 2 Nkv) x head_size
        head = _divide(q_hidden, heads + 2 * kv_heads, "GroupQueryAttention packed QKV width / (num_heads + 2 kv_num_heads)")
        kv_len = q_len
    past = node.input_shape(3)[2] if node.has_input(3) else 0
    total_value = _known_scalar(node, 6)
    total = total_value if total_value is not None else past + kv_len
    present_len = max(past, total) if total_value is not None else past + kv_len
    return GqaShapes(AttentionDims(batch, heads, q_len, total, head, head), kv_heads, present_len)


@register("GroupQueryAttention", domain=MS_DOMAIN, op_class=ATTENTION)
def gqa_cost(node: NodeView) -> OpCost:
    """MACs = B x N x S x T x 2 d, T = total_sequence_length (or past + new); FLOPs add mask, softcap, rotary."""
    for index, what in ((12, "k_scale (quantized KV cache)"), (13, "v_scale (quantized KV cache)"),
                        (14, "q_norm_weight (Q/K RMS norm)"), (15, "k_norm_weight (Q/K RMS norm)")):
        if node.has_input(index):
            raise UnsupportedAttributes(f"GroupQueryAttention with {what} has no counting rule")
    shapes = gqa_shapes(node)
    dims = shapes.dims
    masked = int(node.attr("causal", 1)) != 0 or int(node.attr("local_window_size", -1)) > 0
    softcap = float(node.attr("softcap", 0.0) or 0.0) != 0.0
    extras = per_score_extras(mask=masked, bias=node.has_input(10), softcap=softcap)
    flops = attention_core_flops(dims, extras)
    if int(node.attr("smooth_softmax", 0)) or node.has_input(11):
        flops += SINK_FLOPS * dims.rows
    if int(node.attr("do_rotary", 0)):
        rotary_dim = dims.qk_head
        if node.has_input(7) and node.input(7).shape is not None:
            rotary_dim = 2 * node.input_shape(7)[-1]
        flops += ROTARY_FLOPS * dims.batch * dims.q_len * (dims.q_heads + shapes.kv_heads) * rotary_dim
    return OpCost(macs=attention_core_macs(dims), flops=flops, note=_note(dims) + f", kv heads {shapes.kv_heads}")


@register_shape("GroupQueryAttention", domain=MS_DOMAIN)
def gqa_shape(node: NodeView) -> list[Optional[Shape]]:
    shapes = gqa_shapes(node)
    d = shapes.dims
    present = (d.batch, shapes.kv_heads, shapes.present_len, d.qk_head)
    return [(d.batch, d.q_len, d.q_heads * d.v_head), present, present, (d.batch, d.q_heads, d.q_len, d.kv_len)]

