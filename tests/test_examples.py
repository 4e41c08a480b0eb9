"""The shipped example project passes its own committed budget: the README's first command runs
`pytest --macc-budget` in examples/, and a budget left behind by a change of the counting rules
would greet every new user with failures."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
def test_the_example_project_is_within_its_committed_budget(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    project = tmp_path / "examples"
    shutil.copytree(EXAMPLES, project, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pytest", "--macc-budget", "-p", "no:cacheprovider",
                             "-p", "no:randomly"], cwd=project, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RULES CHANGED" not in result.stdout and "REGRESSED" not in result.stdout
    assert (project / "macc_budget.yaml").read_bytes() == (EXAMPLES / "macc_budget.yaml").read_bytes()
