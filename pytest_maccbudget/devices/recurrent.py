"""How a recurrent layer (LSTM, GRU, RNN) runs: a projection of the whole sequence, then one step
after another.

A runtime computes the input projection (X times the input weights W) of every time step as one
matrix product, but the recurrence (the hidden state times the recurrent weights R) one time step
at a time: step t needs the state step t - 1 produced. Each step is a small matrix product (batch
rows by gates x hidden) that reads all of R again, so a sequence of T steps reads R T times,
where the engine's memory traffic counts every input once. The re-reads come from the cache
when one direction's R fits in it (the same bytes, read again a few microseconds later), else
from DRAM; a device without a cache is the plain roofline, every byte counted once.

The engine counts a recurrent layer's MACs as gates x (input + hidden) x hidden x T x batch x
directions, and says the dims in the layer's note ("LSTM: seq 100, batch 1, input 40, hidden 256",
", bidirectional" for two directions). The note is read only when the dims it gives reproduce
the layer's MACs exactly: a note in another form, or one that disagrees with the counts, leaves
the time steps unknown, and the layer is then estimated as any other layer (its weights read once).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..engine.results import LayerCost

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_NOTE = re.compile(r"(?P<op>LSTM|GRU|RNN): seq (?P<seq>\d+), batch (?P<batch>\d+), input (?P<input>\d+), "
                   r"hidden (?P<hidden>\d+)(?P<bidirectional>, bidirectional)?")
STEPS_NOT_KNOWN = "time steps not known: recurrent weights charged once, as for any layer"


@dataclass(frozen=True)
class Recurrence:
    """The step-by-step part of a recurrent layer."""

    steps: int  # time steps x directions: the steps run one after another
    step_macs: int  # batch x gates x hidden x hidden: one step's hidden-state product
    weight_bytes: int  # one direction's recurrent weights R (gates x hidden x hidden elements)
    directions: int = 1

    @property
    def macs(self) -> int:
        """The recurrence's share of the layer's MACs; the rest is the input projection."""
        return self.steps * self.step_macs

    @property
    def reread_bytes(self) -> int:
        """R read again at every step after each direction's first (which the engine counts)."""
        return max(0, self.steps - self.directions) * self.weight_bytes


def recurrence_of(layer: LayerCost, element_bytes: int) -> Optional[Recurrence]:
    """The layer's recurrence from its note, when the note's dims reproduce its MACs; None when the
    time steps cannot be known. `element_bytes`: the width of R's elements when the layer stores
    no weights to tell it (R fed as a graph input)."""
    gates = GATES.get(layer.op_type)
    match = _NOTE.fullmatch(layer.note.strip()) if gates is not None and layer.note else None
    if match is None or match["op"] != layer.op_type or not layer.macs:
        return None
    seq, batch, inputs, hidden = (int(match[key]) for key in ("seq", "batch", "input", "hidden"))
    directions = 2 if match["bidirectional"] else 1
    if gates * (inputs + hidden) * hidden * seq * batch * directions != layer.macs:
        return None
    width = layer.param_bytes / layer.params if layer.params and layer.param_bytes else element_bytes
    if width not in (1, 2, 4):  # mixed widths: R's cannot be told
        return None
    return Recurrence(steps=seq * directions, step_macs=batch * gates * hidden * hidden,
                      weight_bytes=gates * hidden * hidden * int(width), directions=directions)
