"""The version of the counting rules a budget was recorded under.

A budget file records the rules' version (`rules: 2`). When the installed rules differ from
the ones an entry was recorded under, a difference in its numbers is the rules' doing, not the
model's: the check says "counting rules changed (v1 -> v2)" with the command that re-records it,
and an update records the current version. docs/counting.md keeps the same changelog.
"""
from __future__ import annotations

RULES_VERSION = 6
FIRST_VERSION = 1  # a budget file that records no version was written under these

CHANGES = {
    2: "params is the model's own parameter count (each tensor once, tied weights once), "
       "no longer what the export stores",
    3: "figures after ops whose output size depends on data (NonMaxSuppression, NonZero, ...) are upper bounds, "
       "no longer unknown; shape arithmetic is folded to the end (graphs it left partial are counted)",
    4: "params of an ONNX graph's If, Loop and Scan bodies count each constant once in the whole model, at its source",
    5: "shapes onnx's inference leaves unknown are worked out where a constant gives them: a weight made by "
       "ConstantOfShape of a computed shape is counted (it was 0), the Shape of NonZero(a small weight) is known "
       "before the graph runs, and If/Loop/Scan bodies see what the graph around them works out late; a weight "
       "whose size cannot be worked out is named in a note; a weight only read through Shape is no parameter",
    6: "the shape of a constant onnx's inference leaves unknown (a position embedding gathered by a Range of the "
       "input's length) is worked out for the layer reading it: its bytes read were unknown, left out of the byte "
       "totals, and made the model's device estimates unknown, and a rule that needs it (a conv's filters) left the "
       "layer unresolved; a value only an If/Loop/Scan body reads has its shape worked out as one the graph reads; "
       "a value that is an upper bound only in its value (the Shape "
       "of NonZero's output) has exact bytes, and the ops reading it as data exact counts; counted layers whose "
       "bytes are not known are named in a note",
}


def change_text(old: int, new: int = RULES_VERSION) -> str:
    """ "v1 -> v2: params is ..." for the changes between two versions."""
    what = "; ".join(CHANGES[version] for version in range(old + 1, new + 1) if version in CHANGES)
    return f"v{old} -> v{new}" + (f": {what}" if what else "")
