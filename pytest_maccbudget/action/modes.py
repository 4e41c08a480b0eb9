"""When the action creates its pull-request comment: the ``comment`` input's modes, decided on
the report JSON (docs/report-schema.md) as a plain dict.

- ``always``: every pull request gets the comment;
- ``changed``: only a pull request where something differs from the base: a model failed or
  has a status other than ``ok``, its budget entry was added, raised, lowered, changed or
  removed, its measured totals differ from the base's or the budget's, or a check errored;
- ``regressed``: only a pull request whose report counts a regression;
- ``off``: never.

Once the comment exists it is kept current on every push in every mode but ``off``: a comment
that stopped being updated would show an old verdict. Standard library only: the
``workflow_run`` recipe runs the comment script from a bare checkout.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

MODES = ("always", "changed", "regressed", "off")
ALIASES = {"true": "always", "false": "off"}
# The report's statuses (pytest_maccbudget.pr_report.vocabulary, which needs PyYAML): kept
# equal to it by tests/test_action_comment.py.
REGRESSION_STATUSES = frozenset({"regressed", "over_limit", "inputs_changed"})
REGRESSION_WHEN_FAILED = frozenset({"missing", "unknown"})
UNCHANGED_BUDGET = (None, "unchanged")


def parse_mode(text: str) -> Optional[str]:
    """The mode named by the ``comment`` input (case and spaces ignored), or None."""
    word = text.strip().lower()
    word = ALIASES.get(word, word)
    return word if word in MODES else None


def regression_count(report: Mapping[str, Any]) -> int:
    """The models the report counts as regressions (as ``pr_report.regressions`` does)."""
    return sum(1 for model in _models(report) if is_regression(model))


def is_regression(model: Mapping[str, Any]) -> bool:
    if model.get("failed") is not True:  # an update records growth: it is not a regression of that run
        return False
    status = model.get("status")
    return status in REGRESSION_STATUSES or status in REGRESSION_WHEN_FAILED


def report_changed(report: Mapping[str, Any]) -> bool:
    """Whether anything in the report differs from the base (or failed)."""
    return bool(report.get("errors")) or any(model_changed(model) for model in _models(report))


def model_changed(model: Mapping[str, Any]) -> bool:
    if model.get("failed") is not False or model.get("status") != "ok":
        return True
    if model.get("budget_change") not in UNCHANGED_BUDGET:
        return True
    measurement = model.get("measurement")
    measured = measurement.get("total") if isinstance(measurement, Mapping) else None
    if not isinstance(measured, Mapping):
        return True
    return any(_totals_differ(measured, model.get(entry)) for entry in ("base", "budget"))


def _totals_differ(measured: Mapping[str, Any], entry: Any) -> bool:
    """Whether a recorded entry's totals differ from the measured ones (an absent entry does not)."""
    if not isinstance(entry, Mapping):
        return False
    recorded = entry.get("total")
    if not isinstance(recorded, Mapping):
        return True
    return any(measured.get(metric) != value for metric, value in recorded.items())


def wants_new_comment(mode: str, report: Optional[Mapping[str, Any]]) -> bool:
    """Whether a pull request without our comment gets one. Without a readable report the
    answer is yes: a report is better shown than hidden because it could not be read."""
    if mode == "off":
        return False
    if mode == "always" or report is None:
        return True
    if mode == "regressed":
        return regression_count(report) > 0
    return report_changed(report)


def _models(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    models = report.get("models")
    return [model for model in models if isinstance(model, Mapping)] if isinstance(models, list) else []
