"""The re-record command printed in messages keeps the user's own flags."""
from __future__ import annotations

import pytest

from pytest_maccbudget.options import update_command


@pytest.mark.parametrize(("args", "expected"), [
    ([], "pytest --macc-budget-update"),
    (["--macc-budget"], "pytest --macc-budget-update"),
    # the check's report flags go, written either way; the budget file, -k, -n, -p and paths stay
    (["--macc-budget", "--macc-budget-json=r.json", "--macc-budget-report", "r.md", "--macc-budget-base", "origin/main",
      "--macc-budget-shard=1/2", "--macc-budget-strict", "--macc-budget-file", "budgets/b.yaml", "-k", "net and not slow",
      "-n", "2", "-p", "no:cacheprovider", "tests/models"],
     "pytest --macc-budget-update --macc-budget-file budgets/b.yaml -k 'net and not slow' -n 2 -p no:cacheprovider "
     "tests/models"),
    (["--macc-budget-update-new-only", "-o", "macc_budget_file=x.yaml"], "pytest --macc-budget-update -o macc_budget_file=x.yaml"),
])
def test_the_update_command_of_a_run(args: list[str], expected: str) -> None:
    assert update_command(args) == expected


def test_the_whole_suite_command_drops_what_selects_part_of_it() -> None:
    args = ["--macc-budget", "-k", "net", "-mslow", "--lf", "-x", "--deselect=t.py::a", "--ignore", "old",
            "--macc-budget-file=b.yaml", "-n", "2", "tests/models", "tests/other.py"]
    assert update_command(args, whole_suite=True, positional=["tests/models", "tests/other.py"]) == (
        "pytest --macc-budget-update --macc-budget-file=b.yaml -n 2")
