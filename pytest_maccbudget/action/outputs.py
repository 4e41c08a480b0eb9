"""Write the action's outputs from the report JSON to ``$GITHUB_OUTPUT``.

``python -m pytest_maccbudget.action.outputs --json PATH --markdown PATH [--exit-code N]``
appends three lines to the file named by ``$GITHUB_OUTPUT``:

- ``regressions=<n>``: the number of regressions the report counts in its headline
  (``pr_report.regressions``): models that regressed, went over a limit or changed inputs,
  and models with no budget entry or uncountable ops where that failed their test;
- ``report-markdown=<path>`` and ``report-json=<path>``: the reports, absolute.

A report that pytest did not write (it stopped before the end: a usage error, a missing
base ref) gives empty values and a warning; the job still fails on pytest's exit code in
the action's last step. A report that exists but is not a valid version-1 report is an
error. Values are single lines; a path holding a newline is refused rather than written,
since it would inject further outputs.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

from ..pr_report import load_report, regressions
from .commands import error, warning

OUTPUT_NAMES = ("regressions", "report-markdown", "report-json")


class ReportError(Exception):
    """The report JSON cannot be read or is not a valid version-1 pytest-maccbudget report."""


class OutputError(Exception):
    """A value cannot be written as a single-line output."""


def count_regressions(path: Path) -> int:
    """The number of regressions in the report JSON at ``path``; ReportError if it is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"cannot read {path}: {err}") from None
    try:
        report = load_report(text, str(path))
    except ValueError as err:
        raise ReportError(str(err)) from None
    return len(regressions(report))


def format_outputs(values: Mapping[str, str]) -> str:
    """``name=value`` lines for ``$GITHUB_OUTPUT``; OutputError for a multi-line value."""
    lines = []
    for name, value in values.items():
        for text in (name, value):
            if "\n" in text or "\r" in text:
                raise OutputError(f"output {name!r} would span several lines: {text!r}")
        if "=" in name:
            raise OutputError(f"output name {name!r} contains '='")
        lines.append(f"{name}={value}\n")
    return "".join(lines)


def collect_outputs(json_path: Path, markdown_path: Path, exit_code: Optional[str]) -> dict[str, str]:
    """The action's output values; warns and leaves them empty when pytest wrote no report."""
    if not json_path.is_file():
        why = f" (pytest exited with code {exit_code})" if exit_code else ""
        warning(f"pytest wrote no budget report{why}: the pytest log above says why")
        return {name: "" for name in OUTPUT_NAMES}
    count = count_regressions(json_path)
    return {
        "regressions": str(count),
        "report-markdown": os.path.abspath(markdown_path) if markdown_path.is_file() else "",
        "report-json": os.path.abspath(json_path),
    }


def write_outputs(text: str, environ: Mapping[str, str]) -> None:
    """Append ``text`` to ``$GITHUB_OUTPUT``, or print it when not in GitHub Actions."""
    target = environ.get("GITHUB_OUTPUT", "")
    if not target:
        sys.stdout.write(text)
        return
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(text)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_maccbudget.action.outputs",
        description="Write the pytest-maccbudget action's outputs to $GITHUB_OUTPUT.")
    parser.add_argument("--json", required=True, type=Path, help="the report JSON pytest wrote")
    parser.add_argument("--markdown", required=True, type=Path, help="the markdown report pytest wrote")
    parser.add_argument("--exit-code", default=None, help="pytest's exit code, for the message when no report exists")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        for path in (args.json, args.markdown):
            format_outputs({"path": str(path)})
        values = collect_outputs(args.json, args.markdown, args.exit_code)
        text = format_outputs(values)
    except (ReportError, OutputError) as err:
        error(f"cannot set the action's outputs: {err}")
        return 1
    write_outputs(text, os.environ)
    if values["regressions"]:
        print(f"pytest-maccbudget: regressions={values['regressions']}; report: {values['report-markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
