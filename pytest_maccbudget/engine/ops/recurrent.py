"""Recurrent layers: ONNX `RNN`, `GRU` and `LSTM`.

MACs are the gate matmuls only: per time step, direction and batch row,
gates x (input_size + hidden_size) x hidden_size. Everything element-wise (bias adds,
the GRU reset product, peepholes, activations, clip, the state updates) is counted in FLOPs.
Counts use the full padded sequence length (`sequence_lens` is not consulted).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..registry import RECURRENT, register
from ..types import NodeView, OpCost, UnsupportedAttributes
from ._common import TANH
from .activations import ACTIVATION_FLOPS as OP_ACTIVATION_FLOPS

# The activation functions the ONNX recurrent ops allow that are also ONNX ops cost what those
# ops cost; the two that are not ops are defined here. Names are compared case-insensitively.
_SHARED_ACTIVATIONS = ("Relu", "Tanh", "Sigmoid", "LeakyRelu", "ThresholdedRelu", "HardSigmoid", "Elu",
                       "Softsign", "Softplus")
ACTIVATION_FLOPS: dict[str, int] = {
    **{name.lower(): OP_ACTIVATION_FLOPS[name] for name in _SHARED_ACTIVATIONS},
    "affine": 2,  # alpha * x + beta
    "scaledtanh": 1 + TANH + 1,  # mul(beta), tanh, mul(alpha)
}

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
# Default activations per direction (f, g, h as far as the op has them).
DEFAULT_ACTIVATIONS = {"RNN": ("Tanh",), "GRU": ("Sigmoid", "Tanh"), "LSTM": ("Sigmoid", "Tanh", "Tanh")}
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}

CLIP_FLOPS = 2  # min and max on each value entering an activation
BIAS_FLOPS_PER_GATE_VALUE = 2  # Wb and Rb added to every gate pre-activation
PEEPHOLE_FLOPS = 6  # 3 gates x (mul + add) per hidden unit
GRU_UPDATE_FLOPS = 5  # r (.) H (1) and Ht = (1 - z) (.) h + z (.) H_{t-1} (sub, mul, mul, add)
LSTM_UPDATE_FLOPS = 4  # Ct = f (.) C_{t-1} + i (.) c (mul, mul, add) and Ht = o (.) h(Ct) (mul)


@dataclass(frozen=True)
class RecurrentDims:
    seq_length: int
    batch: int
    input_size: int
    hidden_size: int
    num_directions: int

    @property
    def rows(self) -> int:
        """Cell evaluations per direction: one per time step and batch row."""
        return self.seq_length * self.batch


# ---- pure math ---------------------------------------------------------------------------

def recurrent_macs(gates: int, dims: RecurrentDims) -> int:
    """gates x (input + hidden) x hidden, per step, batch row and direction."""
    return gates * (dims.input_size + dims.hidden_size) * dims.hidden_size * dims.rows * dims.num_directions


def activation_flops(name: str) -> int:
    flops = ACTIVATION_FLOPS.get(name.lower())
    if flops is None:
        raise UnsupportedAttributes(f"recurrent activation {name!r} has no counting rule")
    return flops


def activation_flops_per_hidden(op_type: str, activations: Sequence[str]) -> int:
    """Activation FLOPs per hidden unit and cell step of one direction.

    RNN: f on the one gate. GRU: f on z and r, g on h. LSTM: f on i, f, o; g on c; h on Ct.
    """
    costs = [activation_flops(a) for a in activations]
    if op_type == "RNN":
        return costs[0]
    if op_type == "GRU":
        return 2 * costs[0] + costs[1]
    return 3 * costs[0] + costs[1] + costs[2]


def elementwise_flops_per_hidden(op_type: str, has_bias: bool, has_peephole: bool, clip: bool) -> int:
    """FLOPs per hidden unit and cell step that are neither dot products nor activations."""
    gates = GATES[op_type]
    flops = BIAS_FLOPS_PER_GATE_VALUE * gates if has_bias else 0
    if clip:
        flops += CLIP_FLOPS * gates
    if op_type == "GRU":
        flops += GRU_UPDATE_FLOPS
    elif op_type == "LSTM":
        flops += LSTM_UPDATE_FLOPS + (PEEPHOLE_FLOPS if has_peephole else 0)
    return flops


def dot_flops_per_hidden(gates: int, dims: RecurrentDims) -> int:
    """Each gate value is one length-(I + H) dot product: 2(I + H) - 1 FLOPs."""
    return gates * (2 * (dims.input_size + dims.hidden_size) - 1)


# ---- NodeView adapters -------------------------------------------------------------------

def recurrent_dims(node: NodeView) -> RecurrentDims:
    x_shape = node.input_shape(0)
    if len(x_shape) != 3:
        raise UnsupportedAttributes(f"{node.op_type} input X must be 3-D, got shape {list(x_shape)}")
    layout = int(node.attr("layout", 0))
    if layout == 0:
        seq_length, batch, input_size = x_shape
    elif layout == 1:
        batch, seq_length, input_size = x_shape
    else:
        raise UnsupportedAttributes(f"{node.op_type} layout={layout} is not 0 or 1")
    direction = node.attr("direction", "forward")
    if direction not in DIRECTIONS:
        raise UnsupportedAttributes(f"{node.op_type} direction {direction!r} is not forward, reverse or bidirectional")
    hidden_size = node.attr("hidden_size")
    if hidden_size is None:
        r_shape = node.input_shape(2)  # R: [num_directions, gates * hidden, hidden]
        hidden_size = r_shape[-1]
    return RecurrentDims(int(seq_length), int(batch), int(input_size), int(hidden_size), DIRECTIONS[direction])


def activations_by_direction(node: NodeView, num_directions: int) -> list[tuple[str, ...]]:
    defaults = DEFAULT_ACTIVATIONS[node.op_type]
    given = node.attr("activations")
    if not given:
        return [defaults] * num_directions
    per_direction = len(defaults)
    names = tuple(str(a) for a in given)
    if len(names) == per_direction:
        return [names] * num_directions
    if len(names) == per_direction * num_directions:
        return [names[d * per_direction:(d + 1) * per_direction] for d in range(num_directions)]
    raise UnsupportedAttributes(
        f"{node.op_type} has {len(names)} activations; expected {per_direction} per direction x {num_directions}"
    )


@register("RNN", "GRU", "LSTM", op_class=RECURRENT)
def recurrent_cost(node: NodeView) -> OpCost:
    """MACs = gates x (I + H) x H x seq x batch x directions; FLOPs = dots + bias + gate element-wise work."""
    gates = GATES[node.op_type]
    dims = recurrent_dims(node)
    has_bias = node.has_input(3)
    has_peephole = node.op_type == "LSTM" and node.has_input(7)
    clip = node.attr("clip") is not None
    per_hidden_common = dot_flops_per_hidden(gates, dims) + elementwise_flops_per_hidden(
        node.op_type, has_bias, has_peephole, clip
    )
    flops = 0
    for activations in activations_by_direction(node, dims.num_directions):
        per_hidden = per_hidden_common + activation_flops_per_hidden(node.op_type, activations)
        flops += per_hidden * dims.hidden_size * dims.rows
    note = f"{node.op_type}: seq {dims.seq_length}, batch {dims.batch}, input {dims.input_size}, hidden {dims.hidden_size}"
    if dims.num_directions == 2:
        note += ", bidirectional"
    return OpCost(macs=recurrent_macs(gates, dims), flops=flops, note=note)
