"""Detection post-processing: `NonMaxSuppression`.

What NMS does depends on the boxes it is given: how many it keeps and how many overlaps it
has to test. The rule counts the worst case, so its FLOPs are an upper bound, and so is its
output (at most max_output_boxes_per_class boxes per batch and class, never more than there
are boxes); what follows it is costed on that largest output.

Per batch: each box's area (x2 - x1, y2 - y1, a multiply: 3 FLOPs; from center form, the
corners first: 2 halvings and 4 adds: 7). Per batch and class, with n boxes and k = min(max
output, n) kept: the score threshold (n compares, when given), the sort (n ceil(log2 n)
compares), and the IoU of each kept box with every box after it,
k (n - 1) - k (k - 1) / 2 pairs of 13 FLOPs (4 max/min for the intersection corners, 2 subs,
2 clamps at 0, 1 mul, union: 1 add and 1 sub, 1 div, 1 compare with the threshold).
"""
from __future__ import annotations

from typing import Optional

from onnx import TensorProto

from ..registry import OTHER, TypedShape, register
from ..types import NodeView, OpCost, UnsupportedAttributes
from .reduce import ceil_log2

AREA_FLOPS = 3  # x2 - x1, y2 - y1, multiply
CENTER_AREA_FLOPS = 7  # w/2, h/2, four corner adds, then w x h
IOU_FLOPS = 13


def nms_pairs(boxes: int, kept: int) -> int:
    """IoUs greedy NMS computes at most: each kept box against every box ranked after it."""
    kept = min(kept, boxes)
    return kept * (boxes - 1) - kept * (kept - 1) // 2


def nms_flops(batch: int, classes: int, boxes: int, kept: int, center: bool, score_threshold: bool) -> int:
    area = (CENTER_AREA_FLOPS if center else AREA_FLOPS) * boxes
    per_class = (boxes if score_threshold else 0) + boxes * ceil_log2(boxes) + IOU_FLOPS * nms_pairs(boxes, kept)
    return batch * (area + classes * per_class)


def _dims(node: NodeView) -> tuple[int, int, int]:
    """(batch, classes, boxes) from boxes [B, n, 4] and scores [B, C, n]."""
    boxes, scores = node.input_shape(0), node.input_shape(1)
    if len(boxes) != 3 or len(scores) != 3 or boxes[1] != scores[2]:
        raise UnsupportedAttributes(f"NonMaxSuppression: boxes {list(boxes)} and scores {list(scores)} do not match")
    return boxes[0], scores[1], boxes[1]


def _max_kept(node: NodeView, boxes: int) -> int:
    """max_output_boxes_per_class: 0 when omitted (no output), every box when computed at run time."""
    if not node.has_input(2):
        return 0
    value = node.input(2).value
    return boxes if value is None or value.size != 1 else max(int(value.reshape(-1)[0]), 0)


def nms_bounds(node: NodeView) -> list[Optional[TypedShape]]:
    batch, classes, boxes = _dims(node)
    return [TypedShape((batch * classes * min(_max_kept(node, boxes), boxes), 3), TensorProto.INT64)]


@register("NonMaxSuppression", op_class=OTHER, shape_inputs=[2, 3, 4], bounds=nms_bounds)
def nms_cost(node: NodeView) -> OpCost:
    """Worst case (an upper bound): B x (area x n + C x (threshold n + n ceil(log2 n) + 13 x IoU pairs))."""
    batch, classes, boxes = _dims(node)
    kept = _max_kept(node, boxes)
    center = int(node.attr("center_point_box", 0)) == 1
    flops = nms_flops(batch, classes, boxes, kept, center, node.has_input(4))
    return OpCost(flops=flops, bound=flops > 0, note="worst case: every box kept and compared")
