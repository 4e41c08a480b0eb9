"""The pull-request report: measurements in, the report JSON out (`build`, contract in `schema`),
shards combined (`merge`), a model's verdict read back (`query`), and the markdown for
`$GITHUB_STEP_SUMMARY` and the sticky PR comment (`markdown`, with its `chart`).

Pure package: `budget`, `units` and the standard library only (no pytest, torch, onnx or git).
The report JSON is documented, field by field, in docs/report-schema.md. The `::error`
annotations are written by `pytest_maccbudget.action.annotations`.
"""
from __future__ import annotations

from ..action.commands import MARKER
from .build import budget_change, build_report, entry_json
from .markdown import render_markdown
from .merge import base_budget_from_reports, entry_from_json, merge_reports, merged_errors, merged_trends
from .query import has_changes, is_regression, regressions
from .schema import SCHEMA, SCHEMA_VERSION, dump_report, load_report
from .vocabulary import STEP_SUMMARY_LIMIT

__all__ = [
    "MARKER", "SCHEMA", "SCHEMA_VERSION", "STEP_SUMMARY_LIMIT", "base_budget_from_reports", "budget_change",
    "build_report", "dump_report", "entry_from_json", "entry_json", "has_changes", "is_regression", "load_report",
    "merge_reports", "merged_errors", "merged_trends", "regressions", "render_markdown",
]
