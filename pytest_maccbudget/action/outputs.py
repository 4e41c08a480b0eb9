"""Write the action's outputs from the report JSON to ``$GITHUB_OUTPUT``.

``python -m pytest_maccbudget.action.outputs --json PATH --markdown PATH --exit-code N [--stderr PATH]``
appends three lines to the file named by ``$GITHUB_OUTPUT``:

- ``regressions=<n>``: the number of regressions the report counts in its headline
  (``pr_report.regressions``): models that regressed, went over a limit or changed inputs,
  and models with no budget entry or uncountable ops where that failed their test;
- ``report-markdown=<path>`` and ``report-json=<path>``: the reports, absolute.

Only a run that completed the checks sets them: pytest exited with 0 or 1 and wrote the
report JSON. Any other run (a usage error, an interrupted run, collection errors, no tests)
leaves every output empty, so that the comment step, which runs only when ``regressions`` is
set, leaves the pull request's comment as it was rather than replace it with a partial
report. A notice says so, and the job summary says why pytest stopped, quoting its ``ERROR:``
lines from the captured stderr (``--stderr``). The job still fails on pytest's exit code in
the action's last step. A report that exists but is not a valid version-1 report is an error.
Values are single lines; a path holding a newline is refused rather than written, since it
would inject further outputs.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

from ..pr_report import load_report, regressions
from .commands import error, notice

OUTPUT_NAMES = ("regressions", "report-markdown", "report-json")
COMPLETED_EXIT_CODES = ("0", "1")  # all tests passed / some failed: the checks ran to the end
EXIT_CODE_MEANINGS = {
    "2": "the run was interrupted (collection errors, or a KeyboardInterrupt)",
    "3": "pytest hit an internal error",
    "4": "a usage error: a bad option, ini value, budget file or base",
    "5": "no tests were collected",
}
MAX_QUOTED_LINES = 20
MAX_QUOTED_CHARS = 4000


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
    """The action's output values: empty unless pytest completed the checks and wrote the report."""
    if not completed(json_path, exit_code):
        return {name: "" for name in OUTPUT_NAMES}
    count = count_regressions(json_path)
    return {
        "regressions": str(count),
        "report-markdown": os.path.abspath(markdown_path) if markdown_path.is_file() else "",
        "report-json": os.path.abspath(json_path),
    }


def completed(json_path: Path, exit_code: Optional[str]) -> bool:
    return (exit_code or "").strip() in COMPLETED_EXIT_CODES and json_path.is_file()


def why_incomplete(json_path: Path, exit_code: Optional[str]) -> str:
    """One sentence: how pytest ended without completing the checks."""
    code = (exit_code or "").strip()
    if code in COMPLETED_EXIT_CODES:
        return f"pytest exited with code {code} but wrote no budget report at {json_path}"
    meaning = EXIT_CODE_MEANINGS.get(code, "not a code of a completed run")
    return f"pytest exited with code {code or '(unknown)'} ({meaning}) before completing the budget checks"


def error_lines(stderr_text: str) -> list[str]:
    """What pytest said about stopping: its lines from the first ``ERROR:`` on, else its last lines."""
    lines = [line.rstrip() for line in stderr_text.splitlines() if line.strip()]
    start = next((index for index, line in enumerate(lines) if line.startswith("ERROR:")), None)
    chosen = lines[start:start + MAX_QUOTED_LINES] if start is not None else lines[-MAX_QUOTED_LINES:]
    text = "\n".join(chosen)
    return text[:MAX_QUOTED_CHARS].splitlines() if text else []


def incomplete_summary(reason: str, quoted: list[str]) -> str:
    """The job summary of a run that stopped early: why, and pytest's own words."""
    consequence = ("No model was compared with its budget, the action's outputs are empty and the pull "
                   "request's report comment was left as it was.")
    parts = ["## ❌ pytest-maccbudget: the budget checks did not complete\n\n",
             f"{_escape_markdown(reason)}. {consequence}\n"]
    if quoted:
        body = "\n".join(quoted)
        fence = "`" * max(3, _longest_backtick_run(body) + 1)
        parts.append(f"\npytest said:\n\n{fence}text\n{body}\n{fence}\n")
    else:
        parts.append("\nThe pytest log of this step says why.\n")
    return "".join(parts)


def _escape_markdown(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _longest_backtick_run(text: str) -> int:
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest


def read_stderr(path: Optional[Path]) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def report_incomplete(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """The notice and the job summary of a run that did not complete the checks."""
    reason = why_incomplete(args.json, args.exit_code)
    notice(f"{reason}: the action's outputs are empty and the PR comment is left as it was; "
           "the job summary says why")
    summary = environ.get("GITHUB_STEP_SUMMARY", "")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(incomplete_summary(reason, error_lines(read_stderr(args.stderr))))


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
    parser.add_argument("--exit-code", required=True, help="pytest's exit code: only 0 and 1 completed the checks")
    parser.add_argument("--stderr", default=None, type=Path,
                        help="pytest's captured stderr, quoted in the job summary when the checks did not complete")
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
    if not values["regressions"]:
        report_incomplete(args, os.environ)
    if values["regressions"]:
        print(f"pytest-maccbudget: regressions={values['regressions']}; report: {values['report-markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
