"""The words of the pull-request report: statuses, what a branch did to a budget entry, metric
labels, and the report's size limits. Shared by every module of the package."""
from __future__ import annotations

from typing import Optional, Union

from ..budget import INPUTS_CHANGED, MISSING, OK, OVER_LIMIT, REGRESSED, RULES_CHANGED, TIGHTENABLE, UNKNOWN
from ..budget import change_percent, signed_metric

STEP_SUMMARY_LIMIT = 1024 * 1024      # GitHub's $GITHUB_STEP_SUMMARY cap (bytes)
TOP_LAYERS = 10                       # rows of a "layers that changed most" table
LAYER_FINDINGS = 3                    # failure lines about single layers listed per model
TRUNCATED = "report truncated to fit GitHub's limit"

STATUSES = (OK, REGRESSED, OVER_LIMIT, MISSING, TIGHTENABLE, INPUTS_CHANGED, UNKNOWN, RULES_CHANGED)
ADDED, RAISED, LOWERED, UNCHANGED, CHANGED, REMOVED = "added", "raised", "lowered", "unchanged", "changed", "removed"
BUDGET_CHANGES = (ADDED, RAISED, LOWERED, UNCHANGED, CHANGED, REMOVED)
FLAGGED_CHANGES = (ADDED, RAISED, CHANGED, REMOVED)   # budget edits a reviewer must look at
REGRESSION_STATUSES = frozenset({REGRESSED, OVER_LIMIT, INPUTS_CHANGED})
REGRESSION_WHEN_FAILED = frozenset({MISSING, UNKNOWN})

METRIC_LABELS = {
    "macs": "MACs",
    "flops": "FLOPs",
    "params": "params",
    "param_bytes": "parameter bytes",
    "peak_activation_bytes": "peak activation memory",
    "layer_macs": "layer MACs",
}
STATUS_TEXT = {
    OK: "ok",
    REGRESSED: "regressed",
    OVER_LIMIT: "over limit",
    MISSING: "no budget entry",
    TIGHTENABLE: "can be tightened",
    INPUTS_CHANGED: "inputs changed",
    UNKNOWN: "not counted",
    RULES_CHANGED: "counting rules changed",
}


def change_cell(metric: str, old: Optional[Union[int, float]], new: Optional[Union[int, float]],
                with_amount: bool = False) -> str:
    """The change from old to new in a report table: "-" with nothing to compare with, "?"
    unknown, "=" none, else the percentage (with the amount, "+1.2 M (+3.0%)", on request)."""
    if old is None:
        return "-"
    if new is None:
        return "?"
    if new == old:
        return "="
    percent = change_percent(old, new)
    amount = signed_metric(metric, new - old)
    if percent is None:
        return amount
    return f"{amount} ({percent})" if with_amount else percent
